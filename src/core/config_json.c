/*
 * config_json.c - configuration <-> JSON.
 *
 * t4r_config_to_json writes the model option keys and "preset" as one JSON
 * object (time_features and time_scale only for the robust time path)
 * object with sorted keys and native types, in the same form Python's
 * json.dumps(..., sort_keys=True) gives (", " and ": " separators, reals in
 * their shortest round-trip form, always with a '.' or an exponent).
 *
 * t4r_config_from_json parses strictly with jansson (duplicates rejected,
 * exactly the given bytes, an object required), applies "preset" first and
 * every other key through t4r_config_set, then validates.
 */
#include "tim4rec.h"
#include "strbuf.h"
#include "err.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages quote names and values from untrusted input and may be cut at
 * any byte: keep them printable ASCII so that callers can pass them on. */
static void
ascii_only(char *s)
{
	for (; s && *s; s++)
		if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
			*s = '?';
}

/* ------------------------------------------------------------------ */
/* writing                                                             */
/* ------------------------------------------------------------------ */

/* v as Python's repr() writes it: the shortest digits that read back to
 * exactly v, fixed notation for decimal exponents -4..15 (always with a
 * fractional part, "1.0"), otherwise d.ddde+XX */
static int
fmt_real(char *out, size_t outlen, double v)
{
	char		tmp[40];
	char		digits[24];
	int			nd = 0,
				exp10,
				prec;
	size_t		pos = 0;
	const char *p;

	if (!isfinite(v) || outlen < 32)
		return -1;
	for (prec = 1; prec <= 17; prec++)
	{
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* tmp = [-]d[.ddd]e(+|-)XX */
	p = tmp;
	if (*p == '-')
	{
		out[pos++] = '-';
		p++;
	}
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9' && nd < (int) sizeof(digits) - 1)
			digits[nd++] = *p;
	exp10 = (*p == 'e') ? atoi(p + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';

	if (exp10 >= -4 && exp10 < 16)
	{
		if (exp10 >= 0)
		{
			for (int i = 0; i <= exp10; i++)
				out[pos++] = i < nd ? digits[i] : '0';
			out[pos++] = '.';
			if (nd > exp10 + 1)
				for (int i = exp10 + 1; i < nd; i++)
					out[pos++] = digits[i];
			else
				out[pos++] = '0';
		}
		else
		{
			out[pos++] = '0';
			out[pos++] = '.';
			for (int i = 0; i < -exp10 - 1; i++)
				out[pos++] = '0';
			for (int i = 0; i < nd; i++)
				out[pos++] = digits[i];
		}
		out[pos] = '\0';
	}
	else
	{
		out[pos++] = digits[0];
		if (nd > 1)
		{
			out[pos++] = '.';
			for (int i = 1; i < nd; i++)
				out[pos++] = digits[i];
		}
		snprintf(out + pos, outlen - pos, "e%c%02d", exp10 < 0 ? '-' : '+',
				 exp10 < 0 ? -exp10 : exp10);
	}
	return 0;
}

static void
kv_int(sbuf *b, const char *key, long long v, int *first)
{
	char		tmp[32];

	if (!*first)
		sb_str(b, ", ");
	*first = 0;
	sb_jstr(b, key);
	snprintf(tmp, sizeof(tmp), ": %lld", v);
	sb_str(b, tmp);
}

static int
kv_real(sbuf *b, const char *key, double v, int *first)
{
	char		tmp[40];

	if (fmt_real(tmp, sizeof(tmp), v) != 0)
		return -1;
	if (!*first)
		sb_str(b, ", ");
	*first = 0;
	sb_jstr(b, key);
	sb_str(b, ": ");
	sb_str(b, tmp);
	return 0;
}

static void
kv_bool(sbuf *b, const char *key, int v, int *first)
{
	if (!*first)
		sb_str(b, ", ");
	*first = 0;
	sb_jstr(b, key);
	sb_str(b, v ? ": true" : ": false");
}

char *
t4r_config_to_json(const t4r_config *c)
{
	sbuf		b = {0};
	int			first = 1;
	int			bad = 0;
	char		preset[sizeof(c->preset) + 1];

	if (c == NULL)
		return NULL;
	/* preset may not be NUL-terminated if someone filled it by hand */
	memcpy(preset, c->preset, sizeof(c->preset));
	preset[sizeof(c->preset)] = '\0';

	/* keys in sorted (byte) order */
	sb_str(&b, "{");
	kv_int(&b, "chunk_size", c->chunk_size, &first);
	kv_int(&b, "d_conv", c->d_conv, &first);
	kv_int(&b, "d_state", c->d_state, &first);
	bad |= kv_real(&b, "dropout_prob", c->dropout_prob, &first);
	kv_int(&b, "expand", c->expand, &first);
	kv_int(&b, "head_dim", c->head_dim, &first);
	kv_int(&b, "hidden_size", c->hidden_size, &first);
	kv_bool(&b, "is_time", c->is_time, &first);
	kv_bool(&b, "kaiming_init", c->kaiming_init, &first);
	kv_int(&b, "max_seq_len", c->max_seq_len, &first);
	bad |= kv_real(&b, "norm_eps", c->norm_eps, &first);
	kv_int(&b, "num_layers", c->num_layers, &first);
	kv_bool(&b, "p2p_residual", c->p2p_residual, &first);
	if (!first)
		sb_str(&b, ", ");
	sb_jstr(&b, "preset");
	sb_str(&b, ": ");
	sb_jstr(&b, preset[0] ? preset : "movielens");
	/* not published: only when set, so a published model's JSON keeps the
	 * published key set */
	if (c->tie_average != 1)
		kv_int(&b, "tie_average", c->tie_average, &first);
	bad |= kv_real(&b, "time_dropout", c->time_dropout, &first);
	/* the robust time path only: an official model's JSON stays exactly
	 * the published key set */
	if (c->time_features == T4R_TIME_ROBUST)
	{
		sb_str(&b, ", ");
		sb_jstr(&b, "time_features");
		sb_str(&b, ": ");
		sb_jstr(&b, "robust");
		bad |= kv_real(&b, "time_scale", c->time_scale, &first);
	}
	sb_str(&b, "}");

	if (b.failed || bad)
	{
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */
/* ------------------------------------------------------------------ */

static int
known_key(const char *key)
{
	const char *const *k = t4r_config_keys();

	for (; k != NULL && *k != NULL; k++)
		if (strcmp(*k, key) == 0)
			return 1;
	return 0;
}

int
t4r_config_from_json(t4r_config *c, const char *json, size_t len,
					 char *err, size_t errlen)
{
	json_t	   *root;
	json_error_t jerr;
	json_t	   *v;
	const char *key;
	t4r_config	work;
	int			rc;
	int			n_items;

	if (err && errlen)
		err[0] = '\0';
	if (c == NULL || (json == NULL && len > 0))
	{
		t4r_set_err(err, errlen, "config JSON: NULL argument");
		return T4R_EINVAL;
	}
	if (json == NULL || len == 0)
	{
		t4r_set_err(err, errlen, "config JSON: empty input");
		return T4R_EFORMAT;
	}
	if (memchr(json, '\0', len) != NULL)
	{
		t4r_set_err(err, errlen, "config JSON: embedded NUL byte");
		return T4R_EFORMAT;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		t4r_set_err(err, errlen, "config JSON: %s (line %d, column %d)",
				jerr.text, jerr.line, jerr.column);
		return T4R_EFORMAT;
	}
	if (!json_is_object(root))
	{
		t4r_set_err(err, errlen, "config JSON: expected an object");
		json_decref(root);
		return T4R_EFORMAT;
	}

	work = *c;
	n_items = c->n_items;

	/* the preset first: it resets every other option */
	v = json_object_get(root, "preset");
	if (v != NULL)
	{
		if (!json_is_string(v))
		{
			t4r_set_err(err, errlen, "config JSON: \"preset\" must be a string");
			json_decref(root);
			return T4R_EINVAL;
		}
		rc = t4r_config_set(&work, "preset", json_string_value(v), err, errlen);
		if (rc != T4R_OK)
		{
			if (err && errlen)
				ascii_only(err);
			json_decref(root);
			return rc;
		}
		work.n_items = n_items;
	}

	json_object_foreach(root, key, v)
	{
		char		text[64];
		const char *val = text;

		if (strcmp(key, "preset") == 0)
			continue;
		if (!known_key(key))
		{
			t4r_set_err(err, errlen, "config JSON: unknown key \"%.64s\" (valid keys: %s)",
					key, t4r_config_keys_joined());
			json_decref(root);
			return T4R_EINVAL;
		}
		switch (json_typeof(v))
		{
			case JSON_INTEGER:
				snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT,
						 json_integer_value(v));
				break;
			case JSON_REAL:
				snprintf(text, sizeof(text), "%.17g", json_real_value(v));
				break;
			case JSON_TRUE:
				val = "true";
				break;
			case JSON_FALSE:
				val = "false";
				break;
			case JSON_STRING:
				val = json_string_value(v);
				break;
			default:
				t4r_set_err(err, errlen,
						"config JSON: key \"%s\" must be a number, a boolean or a string",
						key);
				json_decref(root);
				return T4R_EINVAL;
		}
		rc = t4r_config_set(&work, key, val, err, errlen);
		if (rc != T4R_OK)
		{
			if (err && errlen)
				ascii_only(err);
			if (err && errlen && err[0] == '\0')
				t4r_set_err(err, errlen, "config JSON: bad value for \"%s\"", key);
			json_decref(root);
			return rc;
		}
	}
	json_decref(root);

	rc = t4r_config_validate(&work, err, errlen);
	if (rc != T4R_OK)
	{
		if (err && errlen && err[0] == '\0')
			t4r_set_err(err, errlen, "config JSON: invalid configuration");
		return rc;
	}
	*c = work;
	return T4R_OK;
}
