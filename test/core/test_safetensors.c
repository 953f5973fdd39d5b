/*
 * test_safetensors.c - configuration JSON and safetensors reader/writer.
 *
 * TAP.  Environment: T4R_FIXTURES (default ../shared/fixtures, relative to
 * the repository root) for the golden files; T4R_FUZZ_ITERS (default 20000)
 * for the seeded mutation fuzz.
 */
#include "tim4rec.h"
#include "tap.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint32_t
rnd_below(uint32_t n)
{
	return n ? (uint32_t) ((rnd() >> 32) % n) : 0;
}

/* a random finite float with a random exponent (bit patterns, so the round
 * trip is tested on all kinds of values, subnormals included) */
static float
rnd_float(void)
{
	for (;;)
	{
		uint32_t	u = (uint32_t) (rnd() >> 32);
		float		f;

		memcpy(&f, &u, 4);
		if (isfinite(f))
			return f;
	}
}

static int
model_cfg_equal(const t4r_config *a, const t4r_config *b)
{
	return a->hidden_size == b->hidden_size && a->num_layers == b->num_layers &&
		a->dropout_prob == b->dropout_prob && a->time_dropout == b->time_dropout &&
		a->d_state == b->d_state && a->d_conv == b->d_conv && a->expand == b->expand &&
		a->head_dim == b->head_dim && a->chunk_size == b->chunk_size &&
		a->max_seq_len == b->max_seq_len && a->norm_eps == b->norm_eps &&
		a->p2p_residual == b->p2p_residual && a->is_time == b->is_time &&
		a->kaiming_init == b->kaiming_init && strcmp(a->preset, b->preset) == 0;
}

static int
check_err(int rc, int want, const char *err, const char *substr, const char *desc)
{
	int			ok = (rc == want && err[0] != '\0' &&
					  (substr == NULL || strstr(err, substr) != NULL));

	tap_ok(ok, "%s", desc);
	if (!ok)
		tap_diag("  got rc %d (want %d), message: \"%s\" (want substring \"%s\")",
				 rc, want, err, substr ? substr : "");
	return ok;
}

static uint8_t *
read_whole(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		return NULL;
	}
	buf = malloc(n ? (size_t) n : 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t) n;
	return buf;
}

static uint64_t
u64le(const uint8_t *p)
{
	uint64_t	v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t) (v & 0xff);
}

/* a file from a header text (length field = hlen_field) and data */
static uint8_t *
assemble(const char *hdr, size_t hlen, uint64_t hlen_field,
		 const uint8_t *data, size_t dlen, size_t *outlen)
{
	uint8_t    *b = malloc(8 + hlen + dlen + 1);

	put_u64le(b, hlen_field);
	memcpy(b + 8, hdr, hlen);
	if (dlen)
		memcpy(b + 8 + hlen, data, dlen);
	*outlen = 8 + hlen + dlen;
	return b;
}

/* a model with random parameters */
static t4r_model *
random_model(const t4r_config *c)
{
	t4r_model  *m = NULL;
	char		err[256];

	if (t4r_model_create(c, &m, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("model_create: %s", err);
		return NULL;
	}
	for (int t = 0; t < m->layout.n; t++)
		for (size_t i = 0; i < m->layout.t[t].numel; i++)
			m->params[m->layout.t[t].offset + i] = rnd_float();
	return m;
}

/* the tensors of lay are bit-identical in a and b (alignment gaps ignored) */
static int
params_equal(const t4r_layout *lay, const t4r_real *a, const t4r_real *b)
{
	for (int t = 0; t < lay->n; t++)
		if (memcmp(a + lay->t[t].offset, b + lay->t[t].offset,
				   lay->t[t].numel * sizeof(t4r_real)) != 0)
			return 0;
	return 1;
}

/* independent decoding of a file with jansson: checks every layout tensor
 * is there with the layout's shape and returns 1 if the data equals dst
 * bit for bit (dst in layout order) */
static int
file_equals_params(const uint8_t *buf, size_t len, const t4r_layout *lay,
				   const t4r_real *dst, int require_contiguous)
{
	uint64_t	hlen;
	json_t	   *root;
	json_error_t je;
	int			ok = 1;
	size_t		expect_begin = 0;

	if (len < 8)
		return 0;
	hlen = u64le(buf);
	if (hlen > len - 8)
		return 0;
	root = json_loadb((const char *) buf + 8, hlen, 0, &je);
	if (root == NULL)
		return 0;
	if ((size_t) json_object_size(root) != (size_t) lay->n + (json_object_get(root, "__metadata__") ? 1 : 0))
		ok = 0;
	for (int i = 0; ok && i < lay->n; i++)
	{
		const t4r_tensor *t = &lay->t[i];
		json_t	   *e = json_object_get(root, t->name);
		json_t	   *sh,
				   *of;
		size_t		b,
					en;

		if (e == NULL)
		{
			ok = 0;
			break;
		}
		sh = json_object_get(e, "shape");
		of = json_object_get(e, "data_offsets");
		if ((int) json_array_size(sh) != t->ndim)
			ok = 0;
		for (int k = 0; ok && k < t->ndim; k++)
			if (json_integer_value(json_array_get(sh, k)) != t->shape[k])
				ok = 0;
		if (!ok)
			break;
		b = (size_t) json_integer_value(json_array_get(of, 0));
		en = (size_t) json_integer_value(json_array_get(of, 1));
		if (en - b != t->numel * 4 || 8 + hlen + en > len)
		{
			ok = 0;
			break;
		}
		if (require_contiguous)
		{
			if (b != expect_begin)
				ok = 0;
			expect_begin = en;
		}
		for (size_t j = 0; ok && j < t->numel; j++)
		{
			float		f = (float) dst[t->offset + j];
			float		g;

			memcpy(&g, buf + 8 + hlen + b + 4 * j, 4);	/* x86: little-endian */
			if (memcmp(&f, &g, 4) != 0)
				ok = 0;
		}
	}
	if (require_contiguous && ok && 8 + hlen + expect_begin != len)
		ok = 0;
	json_decref(root);
	return ok;
}

static const char *
fixtures_dir(void)
{
	const char *d = getenv("T4R_FIXTURES");

	return d && *d ? d : "../shared/fixtures";
}

/* ------------------------------------------------------------------ */
/* configuration JSON                                                  */
/* ------------------------------------------------------------------ */

static void
test_config_json(void)
{
	const char *presets[] = {"movielens", "amazon"};
	char		err[512];

	/* round trips */
	for (int p = 0; p < 2; p++)
	{
		t4r_config a,
					b;
		char	   *js;
		json_t	   *root;
		json_error_t je;
		int			rc;

		t4r_config_preset(&a, presets[p]);
		js = t4r_config_to_json(&a);
		tap_ok(js != NULL, "to_json %s", presets[p]);
		if (js == NULL)
			continue;
		/* native types, 15 keys */
		root = json_loads(js, 0, &je);
		tap_ok(root != NULL && json_object_size(root) == 15 &&
			   json_is_integer(json_object_get(root, "hidden_size")) &&
			   json_is_integer(json_object_get(root, "max_seq_len")) &&
			   json_is_real(json_object_get(root, "norm_eps")) &&
			   json_is_real(json_object_get(root, "dropout_prob")) &&
			   json_is_real(json_object_get(root, "time_dropout")) &&
			   json_is_boolean(json_object_get(root, "is_time")) &&
			   json_is_boolean(json_object_get(root, "p2p_residual")) &&
			   json_is_string(json_object_get(root, "preset")) &&
			   json_real_value(json_object_get(root, "norm_eps")) == a.norm_eps,
			   "to_json %s: 15 keys with native JSON types", presets[p]);
		json_decref(root);

		/* from the other preset, so that every value has to come from the JSON */
		t4r_config_preset(&b, presets[1 - p]);
		rc = t4r_config_from_json(&b, js, strlen(js), err, sizeof(err));
		tap_ok(rc == T4R_OK && model_cfg_equal(&a, &b), "from_json(to_json(%s)) round trip", presets[p]);
		if (rc != T4R_OK)
			tap_diag("  %s", err);
		free(js);
	}

	/* edited configurations */
	{
		struct
		{
			const char *k,
					   *v;
		}			edits[][6] = {
			{{"hidden_size", "32"}, {"head_dim", "16"}, {"norm_eps", "1e-7"}, {"dropout_prob", "0.123456789"}, {NULL, NULL}},
			{{"preset", "amazon"}, {"p2p_residual", "false"}, {"is_time", "false"}, {"time_dropout", "0.30000000000000004"}, {"num_layers", "1"}, {NULL, NULL}},
			{{"max_seq_len", "7"}, {"kaiming_init", "false"}, {"d_conv", "3"}, {"d_state", "5"}, {"chunk_size", "3"}, {NULL, NULL}},
			{{"expand", "3"}, {"head_dim", "48"}, {"dropout_prob", "0"}, {"norm_eps", "2.5e-300"}, {NULL, NULL}},
		};

		for (size_t e = 0; e < sizeof(edits) / sizeof(edits[0]); e++)
		{
			t4r_config	a,
						b;
			char	   *js;
			int			rc = T4R_OK;

			t4r_config_preset(&a, "movielens");
			for (int i = 0; edits[e][i].k && rc == T4R_OK; i++)
				rc = t4r_config_set(&a, edits[e][i].k, edits[e][i].v, err, sizeof(err));
			if (rc == T4R_OK)
				rc = t4r_config_validate(&a, err, sizeof(err));
			if (rc != T4R_OK)
			{
				tap_ok(0, "edited config %zu is valid (%s)", e, err);
				continue;
			}
			js = t4r_config_to_json(&a);
			t4r_config_preset(&b, "amazon");
			rc = js ? t4r_config_from_json(&b, js, strlen(js), err, sizeof(err)) : -99;
			tap_ok(rc == T4R_OK && model_cfg_equal(&a, &b),
				   "edited config %zu round trips: %s", e, js ? js : "(null)");
			if (rc != T4R_OK)
				tap_diag("  %s", err);
			free(js);
		}
	}

	/* no preset key: *c kept as given; training keys; 1e-12 as a real */
	{
		t4r_config	c,
					ref;
		const char *js = "{\"hidden_size\": 32, \"norm_eps\": 1e-12, \"learning_rate\": 0.01, "
		"\"batch_size\": 16, \"epochs\": 3, \"patience\": 2, \"seed\": 7, \"is_time\": false, "
		"\"head_dim\": \"16\"}";
		int			rc;

		t4r_config_preset(&c, "amazon");
		ref = c;
		rc = t4r_config_from_json(&c, js, strlen(js), err, sizeof(err));
		tap_ok(rc == T4R_OK && strcmp(c.preset, "amazon") == 0 && c.hidden_size == 32 &&
			   c.norm_eps == 1e-12 && c.learning_rate == 0.01 && c.batch_size == 16 &&
			   c.epochs == 3 && c.patience == 2 && c.seed == 7 && c.is_time == 0 &&
			   c.head_dim == 16 && c.max_seq_len == ref.max_seq_len &&
			   c.p2p_residual == ref.p2p_residual && c.time_dropout == ref.time_dropout,
			   "from_json without preset keeps the given config, applies training keys and 1e-12 exactly");
		if (rc != T4R_OK)
			tap_diag("  %s", err);
	}

	/* preset applied first whatever its position; n_items kept */
	{
		t4r_config	c;
		const char *js = "{\"max_seq_len\": 20, \"preset\": \"amazon\"}";
		int			rc;

		t4r_config_preset(&c, "movielens");
		c.n_items = 42;
		rc = t4r_config_from_json(&c, js, strlen(js), err, sizeof(err));
		tap_ok(rc == T4R_OK && strcmp(c.preset, "amazon") == 0 && c.max_seq_len == 20 &&
			   c.p2p_residual == 1 && c.n_items == 42,
			   "preset is applied before the other keys, n_items kept");
	}

	/* reals in Python's repr form (expected strings from python3 repr()) */
	{
		struct
		{
			double		v;
			const char *py;
		}			rr[] = {
			{0.30000000000000004, "0.30000000000000004"}, {1e-05, "1e-05"}, {0.0, "0.0"},
			{0.0001, "0.0001"}, {1e16, "1e+16"}, {100000.0, "100000.0"}, {2.5e-300, "2.5e-300"},
			{123456789012345.6, "123456789012345.6"}, {0.123456789, "0.123456789"},
		};

		for (size_t i = 0; i < sizeof(rr) / sizeof(rr[0]); i++)
		{
			t4r_config	c;
			char	   *js;
			char		want[80];

			t4r_config_preset(&c, "movielens");
			c.norm_eps = rr[i].v;
			js = t4r_config_to_json(&c);
			snprintf(want, sizeof(want), "\"norm_eps\": %s,", rr[i].py);
			tap_ok(js && strstr(js, want) != NULL, "to_json writes %s as Python does", rr[i].py);
			free(js);
		}
	}

	/* golden form of the movielens preset */
	{
		char		path[1024];
		size_t		len;
		uint8_t    *buf;

		snprintf(path, sizeof(path), "%s/golden_movielens.safetensors", fixtures_dir());
		buf = read_whole(path, &len);
		if (buf == NULL)
			tap_ok(1, "# SKIP golden file %s absent", path);
		else
		{
			uint64_t	hlen = u64le(buf);
			json_error_t je;
			json_t	   *root = json_loadb((const char *) buf + 8, hlen, 0, &je);
			const char *gold = json_string_value(json_object_get(json_object_get(root, "__metadata__"), "config"));
			t4r_config	c;
			char	   *js;

			t4r_config_preset(&c, "movielens");
			js = t4r_config_to_json(&c);
			tap_ok(gold && js && strcmp(gold, js) == 0,
				   "to_json(movielens) is byte-identical to the golden file's config");
			if (!(gold && js && strcmp(gold, js) == 0))
				tap_diag("  golden: %s\n#   ours:   %s", gold ? gold : "(none)", js ? js : "(null)");
			free(js);
			json_decref(root);
			free(buf);
		}
	}

	/* rejections */
	{
		struct
		{
			const char *js;
			int			want;
			const char *substr;
			const char *desc;
		}			bad[] = {
			{"{\"hidden_sise\": 64}", T4R_EINVAL, "hidden_sise", "unknown key"},
			{"{\"n_items\": 64}", T4R_EINVAL, "n_items", "n_items is not an option key"},
			{"{\"hidden_size\": 1.5}", T4R_EINVAL, "hidden_size", "real for an integer key"},
			{"{\"hidden_size\": [64]}", T4R_EINVAL, "hidden_size", "array value"},
			{"{\"hidden_size\": {\"a\": 1}}", T4R_EINVAL, "hidden_size", "object value"},
			{"{\"hidden_size\": null}", T4R_EINVAL, "hidden_size", "null value"},
			{"{\"hidden_size\": true}", T4R_EINVAL, "hidden_size", "boolean for an integer key"},
			{"{\"hidden_size\": \"sixty\"}", T4R_EINVAL, "hidden_size", "non-numeric string"},
			{"{\"is_time\": 2}", T4R_EINVAL, "is_time", "2 for a boolean"},
			{"{\"is_time\": \"maybe\"}", T4R_EINVAL, "is_time", "\"maybe\" for a boolean"},
			{"{\"dropout_prob\": false}", T4R_EINVAL, "dropout_prob", "boolean for a real key"},
			{"{\"seed\": -1}", T4R_EINVAL, "seed", "negative seed"},
			{"{\"preset\": 5}", T4R_EINVAL, "preset", "non-string preset"},
			{"{\"preset\": \"netflix\"}", T4R_EINVAL, "preset", "unknown preset"},
			{"{\"head_dim\": 48}", T4R_EINVAL, "head_dim", "head_dim not dividing expand*hidden_size"},
			{"{\"max_seq_len\": 1}", T4R_EINVAL, "max_seq_len", "max_seq_len 1"},
			{"{\"dropout_prob\": 1.0}", T4R_EINVAL, "dropout_prob", "dropout 1"},
			{"{\"norm_eps\": 0}", T4R_EINVAL, "norm_eps", "norm_eps 0"},
			{"{\"hidden_size\": 0}", T4R_EINVAL, "hidden_size", "hidden_size 0"},
			{"{\"hidden_size\": 99999999999999999999}", T4R_EFORMAT, NULL, "integer overflow in JSON"},
			{"{\"hidden_size\": 64, \"hidden_size\": 64}", T4R_EFORMAT, "duplicate", "duplicate key"},
			{"[1, 2]", T4R_EFORMAT, "object", "array instead of an object"},
			{"42", T4R_EFORMAT, NULL, "number instead of an object"},
			{"\"x\"", T4R_EFORMAT, NULL, "string instead of an object"},
			{"", T4R_EFORMAT, NULL, "empty input"},
			{"{} {}", T4R_EFORMAT, NULL, "trailing garbage"},
			{"{\"hidden_size\": 64", T4R_EFORMAT, NULL, "truncated JSON"},
			{"{\"preset\": \"movie\\u0000lens\"}", T4R_EFORMAT, NULL, "\\u0000 in a string"},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			t4r_config	c,
						before;
			int			rc;
			char		d[160];

			t4r_config_preset(&c, "movielens");
			c.n_items = 7;
			before = c;
			err[0] = '\0';
			rc = t4r_config_from_json(&c, bad[i].js, strlen(bad[i].js), err, sizeof(err));
			snprintf(d, sizeof(d), "config JSON rejects: %s", bad[i].desc);
			check_err(rc, bad[i].want, err, bad[i].substr, d);
			tap_ok(memcmp(&c, &before, sizeof(c)) == 0, "  ... and leaves the config unchanged");
		}
		/* an embedded NUL byte inside the given length */
		{
			t4r_config	c;
			int			rc;

			t4r_config_preset(&c, "movielens");
			rc = t4r_config_from_json(&c, "{}\0 ", 4, err, sizeof(err));
			check_err(rc, T4R_EFORMAT, err, "NUL", "config JSON rejects an embedded NUL byte");
		}
	}
}

/* ------------------------------------------------------------------ */
/* write -> read round trips                                           */
/* ------------------------------------------------------------------ */

static void
tiny_config(t4r_config *c)
{
	t4r_config_preset(c, "movielens");
	c->hidden_size = 8;
	c->expand = 2;
	c->head_dim = 4;
	c->d_state = 4;
	c->d_conv = 2;
	c->chunk_size = 4;
	c->max_seq_len = 4;
	c->num_layers = 2;
	c->n_items = 5;
}

static void
test_roundtrip(void)
{
	struct
	{
		const char *desc;
		const char *preset;
		const char *k[4],
				   *v[4];
		int			n_items;
	}			cases[] = {
		{"movielens preset", "movielens", {NULL}, {NULL}, 40},
		{"amazon preset", "amazon", {NULL}, {NULL}, 33},
		{"is_time off", "movielens", {"is_time", "hidden_size", "head_dim", NULL}, {"false", "32", "16", NULL}, 20},
		{"p2p on", "movielens", {"p2p_residual", "max_seq_len", "norm_eps", NULL}, {"true", "30", "1e-7", NULL}, 17},
		{"1 layer", "amazon", {"num_layers", "d_state", "dropout_prob", NULL}, {"1", "8", "0.123456789", NULL}, 2},
	};

	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
	{
		t4r_config	c,
					c2;
		t4r_model  *m,
				   *r = NULL,
				   *r2 = NULL;
		uint8_t    *buf = NULL;
		size_t		len = 0;
		char		err[512];
		int			rc;

		t4r_config_preset(&c, cases[ci].preset);
		for (int i = 0; i < 4 && cases[ci].k[i]; i++)
			t4r_config_set(&c, cases[ci].k[i], cases[ci].v[i], err, sizeof(err));
		c.n_items = cases[ci].n_items;
		m = random_model(&c);
		if (m == NULL)
		{
			tap_ok(0, "round trip %s: model", cases[ci].desc);
			continue;
		}
		/* a few special values */
		m->params[0] = -0.0f;
		m->params[1] = FLT_MIN / 8;
		m->params[2] = FLT_MAX;
		m->params[3] = -FLT_TRUE_MIN;

		rc = t4r_safetensors_write(m, &buf, &len);
		tap_ok(rc == T4R_OK && buf != NULL && len > 8 && u64le(buf) % 8 == 0,
			   "round trip %s: write (%zu bytes, header length multiple of 8)", cases[ci].desc, len);
		if (rc != T4R_OK)
		{
			t4r_model_free(m);
			continue;
		}
		tap_ok(file_equals_params(buf, len, &m->layout, m->params, 1),
			   "round trip %s: independent decode sees exactly the layout's names, shapes, "
			   "contiguous offsets and the parameters", cases[ci].desc);

		rc = t4r_safetensors_read(buf, len, NULL, &r, err, sizeof(err));
		tap_ok(rc == T4R_OK && r != NULL, "round trip %s: read with cfg NULL", cases[ci].desc);
		if (rc != T4R_OK)
			tap_diag("  %s", err);
		if (r != NULL)
		{
			tap_ok(model_cfg_equal(&r->cfg, &m->cfg) && r->cfg.n_items == m->cfg.n_items,
				   "round trip %s: identical config (n_items %d)", cases[ci].desc, r->cfg.n_items);
			tap_ok(r->layout.total == m->layout.total &&
				   params_equal(&m->layout, r->params, m->params),
				   "round trip %s: bit-identical parameters (%zu)", cases[ci].desc, m->layout.total);
		}

		/* with an explicit config, n_items from the file */
		c2 = c;
		c2.n_items = 0;
		rc = t4r_safetensors_read(buf, len, &c2, &r2, err, sizeof(err));
		tap_ok(rc == T4R_OK && r2 != NULL && r2->cfg.n_items == c.n_items &&
			   params_equal(&m->layout, r2->params, m->params),
			   "round trip %s: read with an explicit config (n_items 0)", cases[ci].desc);
		if (rc != T4R_OK)
			tap_diag("  %s", err);
		t4r_model_free(r2);
		r2 = NULL;

		/* with an explicit config whose n_items does not match */
		c2.n_items = c.n_items + 1;
		rc = t4r_safetensors_read(buf, len, &c2, &r2, err, sizeof(err));
		check_err(rc, T4R_EMISMATCH, err, "item_embedding.weight", "explicit config with another n_items: EMISMATCH");
		tap_ok(r2 == NULL, "  ... and no model");

		/* read_into */
		{
			t4r_real   *dst = calloc(m->layout.total, sizeof(t4r_real));

			rc = t4r_safetensors_read_into(buf, len, &m->layout, dst, err, sizeof(err));
			tap_ok(rc == T4R_OK && params_equal(&m->layout, dst, m->params),
				   "round trip %s: read_into", cases[ci].desc);
			free(dst);
		}
		t4r_model_free(r);
		t4r_model_free(m);
		free(buf);
	}
}

/* ------------------------------------------------------------------ */
/* golden files                                                        */
/* ------------------------------------------------------------------ */

static void
test_golden(void)
{
	char		path[1024];
	size_t		len,
				glen;
	uint8_t    *buf,
			   *gbuf;
	t4r_model  *m = NULL;
	char		err[512];
	int			rc;

	snprintf(path, sizeof(path), "%s/golden_movielens.safetensors", fixtures_dir());
	buf = read_whole(path, &len);
	if (buf == NULL)
	{
		tap_ok(1, "# SKIP golden file %s absent (set T4R_FIXTURES)", path);
		return;
	}
	rc = t4r_safetensors_read(buf, len, NULL, &m, err, sizeof(err));
	tap_ok(rc == T4R_OK && m != NULL, "golden: loads with cfg NULL");
	if (rc != T4R_OK)
	{
		tap_diag("  %s", err);
		free(buf);
		return;
	}
	{
		t4r_config	ml;

		t4r_config_preset(&ml, "movielens");
		tap_ok(m->cfg.n_items == 301 && m->dims.V == 301, "golden: V = 301 (got %d)", m->cfg.n_items);
		tap_ok(model_cfg_equal(&m->cfg, &ml), "golden: the movielens config");
	}
	tap_ok(file_equals_params(buf, len, &m->layout, m->params, 0),
		   "golden: every tensor equals an independent decode of the file");

	snprintf(path, sizeof(path), "%s/golden_movielens.grads.safetensors", fixtures_dir());
	gbuf = read_whole(path, &glen);
	if (gbuf == NULL)
		tap_ok(1, "# SKIP %s absent", path);
	else
	{
		t4r_real   *g = calloc(m->layout.total, sizeof(t4r_real));
		double		s = 0;

		rc = t4r_safetensors_read_into(gbuf, glen, &m->layout, g, err, sizeof(err));
		for (size_t i = 0; i < m->layout.total; i++)
			s += fabs((double) g[i]);
		tap_ok(rc == T4R_OK && s > 0 && file_equals_params(gbuf, glen, &m->layout, g, 0),
			   "golden grads: read_into loads them (sum |g| = %g)", s);
		if (rc != T4R_OK)
			tap_diag("  %s", err);
		/* the gradient file has no config: cfg NULL reads it with the
		 * movielens preset, which is its configuration */
		{
			t4r_model  *gm = NULL;

			rc = t4r_safetensors_read(gbuf, glen, NULL, &gm, err, sizeof(err));
			tap_ok(rc == T4R_OK && gm && gm->cfg.n_items == 301 && params_equal(&m->layout, gm->params, g),
				   "golden grads: read with cfg NULL (no config in the metadata) gives the same");
			t4r_model_free(gm);
		}
		free(g);
		free(gbuf);
	}
	/* a second write of the loaded model reads back identically */
	{
		uint8_t    *w = NULL;
		size_t		wl = 0;
		t4r_model  *m2 = NULL;

		rc = t4r_safetensors_write(m, &w, &wl);
		if (rc == T4R_OK)
			rc = t4r_safetensors_read(w, wl, NULL, &m2, err, sizeof(err));
		tap_ok(rc == T4R_OK && m2 && params_equal(&m->layout, m2->params, m->params) &&
			   model_cfg_equal(&m2->cfg, &m->cfg) && m2->cfg.n_items == 301,
			   "golden: rewrite and reread is identical");
		t4r_model_free(m2);
		free(w);
	}
	t4r_model_free(m);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* hostile inputs                                                      */
/* ------------------------------------------------------------------ */

typedef struct base_file
{
	t4r_model  *m;
	uint8_t    *buf;
	size_t		len;
	uint64_t	hlen;
	const uint8_t *data;
	size_t		dlen;
} base_file;

static int
make_base(base_file *bf)
{
	t4r_config	c;

	memset(bf, 0, sizeof(*bf));
	tiny_config(&c);
	bf->m = random_model(&c);
	if (bf->m == NULL || t4r_safetensors_write(bf->m, &bf->buf, &bf->len) != T4R_OK)
		return 0;
	bf->hlen = u64le(bf->buf);
	bf->data = bf->buf + 8 + bf->hlen;
	bf->dlen = bf->len - 8 - bf->hlen;
	return 1;
}

static void
free_base(base_file *bf)
{
	t4r_model_free(bf->m);
	free(bf->buf);
}

static json_t *
base_header(const base_file *bf)
{
	json_error_t je;

	return json_loadb((const char *) bf->buf + 8, bf->hlen, 0, &je);
}

/* run read_into (and read with cfg NULL) on a file and check the outcome */
static void
expect_both(const uint8_t *buf, size_t len, const base_file *bf, int want,
			const char *substr, const char *desc)
{
	char		err[512],
				d[256];
	t4r_real   *dst = calloc(bf->m->layout.total, sizeof(t4r_real));
	t4r_model  *m = NULL;
	int			rc;

	err[0] = '\0';
	rc = t4r_safetensors_read_into(buf, len, &bf->m->layout, dst, err, sizeof(err));
	snprintf(d, sizeof(d), "hostile (read_into): %s", desc);
	check_err(rc, want, err, substr, d);
	err[0] = '\0';
	rc = t4r_safetensors_read(buf, len, NULL, &m, err, sizeof(err));
	snprintf(d, sizeof(d), "hostile (read): %s", desc);
	check_err(rc, want, err, substr, d);
	if (m != NULL)
		tap_diag("  read returned a model on failure");
	t4r_model_free(m);
	free(dst);
}

/* a file from an edited header tree */
static uint8_t *
from_tree(json_t *root, const base_file *bf, size_t *len)
{
	char	   *s = json_dumps(root, JSON_COMPACT);
	uint8_t    *b = assemble(s, strlen(s), strlen(s), bf->data, bf->dlen, len);

	free(s);
	return b;
}

static json_t *
entry(json_t *root, const char *name)
{
	return json_object_get(root, name);
}

static void
set_offsets(json_t *e, long long b, long long en)
{
	json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t) b, (json_int_t) en));
}

static long long
off_of(json_t *e, int k)
{
	return (long long) json_integer_value(json_array_get(json_object_get(e, "data_offsets"), k));
}

static void
test_hostile(void)
{
	base_file	bf;
	uint8_t    *b;
	size_t		len;
	json_t	   *root;
	const char *D = "ssd_layers.0.ssd.D";
	const char *DT = "ssd_layers.0.ssd.dt_bias";

	if (!make_base(&bf))
	{
		tap_ok(0, "hostile: base file");
		return;
	}
	/* the base itself is fine */
	{
		char		err[256];
		t4r_real   *dst = calloc(bf.m->layout.total, sizeof(t4r_real));

		tap_ok(t4r_safetensors_read_into(bf.buf, bf.len, &bf.m->layout, dst, err, sizeof(err)) == T4R_OK,
			   "hostile: the unmodified base file reads");
		free(dst);
	}

	/* --- length field and framing --- */
	expect_both(bf.buf, 0, &bf, T4R_EFORMAT, "too short", "empty buffer");
	expect_both(bf.buf, 7, &bf, T4R_EFORMAT, "too short", "7 bytes");
	b = malloc(8);
	put_u64le(b, 0);
	expect_both(b, 8, &bf, T4R_EFORMAT, "header length", "8 bytes, header length 0");
	free(b);

	b = malloc(bf.len);
	memcpy(b, bf.buf, bf.len);
	put_u64le(b, bf.len - 8 + 1);
	expect_both(b, bf.len, &bf, T4R_EFORMAT, "exceeds", "header length one past the buffer");
	put_u64le(b, UINT64_MAX);
	expect_both(b, bf.len, &bf, T4R_EFORMAT, "exceeds", "header length 2^64-1");
	put_u64le(b, UINT64_C(1) << 63);
	expect_both(b, bf.len, &bf, T4R_EFORMAT, "exceeds", "header length 2^63");
	{
		uint64_t	cut = bf.hlen;

		while (cut > 0 && b[8 + cut - 1] == ' ')
			cut--;
		put_u64le(b, cut - 1);
	}
	expect_both(b, bf.len, &bf, T4R_EFORMAT, "JSON", "header length one short (cuts the JSON)");
	free(b);

	/* a header over 100 MB that is valid JSON (and fits the buffer) */
	{
		size_t		hl = 100u * 1024u * 1024u + 8;
		uint8_t    *big = malloc(8 + hl);

		if (big)
		{
			memset(big + 8, ' ', hl);
			big[8] = '{';
			big[8 + hl - 1] = '}';
			put_u64le(big, hl);
			expect_both(big, 8 + hl, &bf, T4R_EFORMAT, "100 MB", "header over 100 MB");
			free(big);
		}
	}

	/* NUL byte in the header's padding */
	{
		b = malloc(bf.len);
		memcpy(b, bf.buf, bf.len);
		/* the last header byte is '}' or padding: turn the final padding space
		 * (or append after '}') into a NUL by rebuilding */
		{
			char	   *s = malloc(bf.hlen + 8);
			size_t		hl = bf.hlen;

			memcpy(s, bf.buf + 8, hl);
			while (hl > 0 && s[hl - 1] == ' ')
				hl--;
			s[hl++] = '\0';
			while (hl % 8)
				s[hl++] = ' ';
			free(b);
			b = assemble(s, hl, hl, bf.data, bf.dlen, &len);
			free(s);
		}
		expect_both(b, len, &bf, T4R_EFORMAT, "NUL", "NUL byte after the header JSON");
		free(b);
	}

	/* invalid JSON, trailing garbage, non-object */
	{
		const char *s;

		s = "{\"a\": }";
		b = assemble(s, strlen(s), strlen(s), bf.data, bf.dlen, &len);
		expect_both(b, len, &bf, T4R_EFORMAT, "JSON", "invalid JSON");
		free(b);

		s = "[1, 2, 3]";
		b = assemble(s, strlen(s), strlen(s), bf.data, bf.dlen, &len);
		expect_both(b, len, &bf, T4R_EFORMAT, "not a JSON object", "header is an array");
		free(b);

		root = base_header(&bf);
		{
			char	   *t = json_dumps(root, JSON_COMPACT);
			size_t		tl = strlen(t);
			char	   *u = malloc(tl + 3);

			memcpy(u, t, tl);
			memcpy(u + tl, " x", 2);
			b = assemble(u, tl + 2, tl + 2, bf.data, bf.dlen, &len);
			expect_both(b, len, &bf, T4R_EFORMAT, "JSON", "trailing garbage after the header object");
			free(b);
			/* duplicate: the same entry twice, identical */
			{
				const char *key = "\"in_layer_norm.bias\":";
				char	   *p = strstr(t, key);
				char	   *q = p ? strchr(p, '}') : NULL;

				if (p && q)
				{
					size_t		elen = (size_t) (q + 1 - p);
					char	   *w = malloc(tl + elen + 2);
					size_t		pos = (size_t) (q + 1 - t);

					memcpy(w, t, pos);
					w[pos] = ',';
					memcpy(w + pos + 1, p, elen);
					memcpy(w + pos + 1 + elen, t + pos, tl - pos);
					b = assemble(w, tl + elen + 1, tl + elen + 1, bf.data, bf.dlen, &len);
					expect_both(b, len, &bf, T4R_EFORMAT, "duplicate", "duplicate tensor entry");
					free(b);
					free(w);
				}
				else
					tap_ok(0, "duplicate entry: could not build");
			}
			free(u);
			free(t);
		}
		json_decref(root);
	}

	/* --- entries --- */
#define EDIT_CASE(code, want, substr, desc) \
	do { \
		root = base_header(&bf); \
		{ code; } \
		b = from_tree(root, &bf, &len); \
		expect_both(b, len, &bf, want, substr, desc); \
		free(b); \
		json_decref(root); \
	} while (0)

	EDIT_CASE(json_object_set_new(root, D, json_integer(5)), T4R_EFORMAT, "not a JSON object",
			  "tensor entry is a number");
	EDIT_CASE(json_object_set_new(entry(root, D), "foo", json_integer(1)), T4R_EFORMAT, "unexpected field",
			  "tensor entry with an extra field");
	EDIT_CASE(json_object_del(entry(root, D), "dtype"), T4R_EFORMAT, "missing field",
			  "tensor entry without dtype");
	EDIT_CASE(json_object_del(entry(root, D), "data_offsets"), T4R_EFORMAT, "missing field",
			  "tensor entry without data_offsets");
	EDIT_CASE(json_object_set_new(entry(root, D), "dtype", json_string("F16")), T4R_EFORMAT, "F32",
			  "dtype F16 (same byte length)");
	EDIT_CASE(json_object_set_new(entry(root, D), "dtype", json_string("I32")), T4R_EFORMAT, "F32",
			  "dtype I32 (same element size)");
	EDIT_CASE(json_object_set_new(entry(root, D), "dtype", json_integer(32)), T4R_EFORMAT, "dtype",
			  "dtype not a string");
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_integer(4)), T4R_EFORMAT, "shape is not an array",
			  "shape not an array");
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_pack("[i,i,i,i,i,i,i,i,i]", 1, 1, 1, 1, 1, 1, 1, 1, 4)),
			  T4R_EFORMAT, "dimensions", "shape with 9 dimensions");
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_pack("[i]", -4)), T4R_EFORMAT, "non-negative",
			  "negative shape");
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_pack("[f]", 4.0)), T4R_EFORMAT, "non-negative integer",
			  "real in shape");
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_pack("[s]", "4")), T4R_EFORMAT, "non-negative integer",
			  "string in shape");
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_pack("[I,I,I]", (json_int_t) 1 << 40, (json_int_t) 1 << 40, (json_int_t) 1 << 40)),
			  T4R_EFORMAT, "shape", "shape whose element count overflows");
	EDIT_CASE(json_object_set_new(entry(root, D), "data_offsets", json_pack("[i]", 0)), T4R_EFORMAT, "two integers",
			  "data_offsets with one element");
	EDIT_CASE(json_object_set_new(entry(root, D), "data_offsets", json_pack("[i,i,i]", 0, 16, 32)), T4R_EFORMAT, "two integers",
			  "data_offsets with three elements");
	EDIT_CASE(json_object_set_new(entry(root, D), "data_offsets", json_pack("[s,i]", "0", 16)), T4R_EFORMAT, "two integers",
			  "data_offsets with a string");
	EDIT_CASE(json_object_set_new(entry(root, D), "data_offsets", json_pack("[f,f]", 0.0, 16.0)), T4R_EFORMAT, "two integers",
			  "data_offsets with reals");
	EDIT_CASE(set_offsets(entry(root, D), (long long) bf.dlen, (long long) bf.dlen + 16), T4R_EFORMAT, "outside",
			  "data_offsets past the end of the data (length right)");
	EDIT_CASE(set_offsets(entry(root, D), -16, 0), T4R_EFORMAT, "outside",
			  "negative data_offsets begin");
	EDIT_CASE(set_offsets(entry(root, D), 32, 16), T4R_EFORMAT, "outside",
			  "data_offsets begin > end");
	EDIT_CASE(set_offsets(entry(root, D), off_of(entry(root, D), 0), off_of(entry(root, D), 1) - 4), T4R_EFORMAT, "span",
			  "data_offsets span one element short");
	EDIT_CASE(set_offsets(entry(root, D), off_of(entry(root, D), 0), off_of(entry(root, D), 1) + 4), T4R_EFORMAT, NULL,
			  "data_offsets span one element long");
	EDIT_CASE(set_offsets(entry(root, D), off_of(entry(root, DT), 0), off_of(entry(root, DT), 1)), T4R_EFORMAT, "overlap",
			  "two tensors on the same bytes");
	EDIT_CASE(set_offsets(entry(root, D), off_of(entry(root, DT), 0) + 4, off_of(entry(root, DT), 1) + 4), T4R_EFORMAT, "overlap",
			  "two tensors overlapping by 12 bytes");
	EDIT_CASE(set_offsets(entry(root, D), (long long) bf.dlen - 16, (long long) bf.dlen), T4R_EFORMAT, "overlap",
			  "tensor overlapping the last tensor");

	/* --- layout mismatches (well-formed) --- */
	EDIT_CASE(json_object_set_new(entry(root, D), "shape", json_pack("[i,i]", 2, 2)), T4R_EMISMATCH,
			  "tensor ssd_layers.0.ssd.D: shape [2, 2] does not match the expected [4]",
			  "shape with the right size but the wrong dimensions");
	EDIT_CASE(json_object_set_new(entry(root, "ssd_layers.1.ssd.conv1d.weight"), "shape", json_pack("[i,i,i]", 16, 1, 3)),
			  T4R_EMISMATCH, "does not match the expected [24, 1, 2]", "conv weight shape");
	EDIT_CASE(json_object_del(root, "ssd_layers.1.ffn.fc2.bias"), T4R_EMISMATCH,
			  "ssd_layers.1.ffn.fc2.bias: missing", "missing tensor");
	EDIT_CASE(json_object_del(root, "item_embedding.weight"), T4R_EMISMATCH,
			  "item_embedding.weight", "missing embedding");
	EDIT_CASE(json_object_set_new(root, "ssd_layers.2.ssd.D", json_pack("{s:s,s:[i],s:[I,I]}", "dtype", "F32", "shape", 4,
																	  "data_offsets", (json_int_t) bf.dlen, (json_int_t) bf.dlen)),
			  T4R_EFORMAT, NULL, "unknown tensor whose offsets lie past the data");
	{
		/* unknown tensor with valid, non-overlapping bytes: append 16 bytes */
		uint8_t    *data2 = malloc(bf.dlen + 16);
		char	   *s;

		memcpy(data2, bf.data, bf.dlen);
		memset(data2 + bf.dlen, 0, 16);
		root = base_header(&bf);
		json_object_set_new(root, "ssd_layers.2.ssd.D", json_pack("{s:s,s:[i],s:[I,I]}", "dtype", "F32", "shape", 4,
																  "data_offsets", (json_int_t) bf.dlen, (json_int_t) bf.dlen + 16));
		s = json_dumps(root, JSON_COMPACT);
		b = assemble(s, strlen(s), strlen(s), data2, bf.dlen + 16, &len);
		expect_both(b, len, &bf, T4R_EMISMATCH, "ssd_layers.2.ssd.D: not a parameter", "unknown tensor");
		free(b);
		free(s);
		json_decref(root);
		free(data2);
	}

	{
		/* unknown tensor with a non-ASCII name: the message stays ASCII */
		uint8_t    *data2 = malloc(bf.dlen + 16);
		char	   *s;
		char		err[512];
		t4r_real   *dst = calloc(bf.m->layout.total, sizeof(t4r_real));
		int			rc,
					ascii = 1;

		memcpy(data2, bf.data, bf.dlen);
		memset(data2 + bf.dlen, 0, 16);
		root = base_header(&bf);
		json_object_set_new(root, "caf\xc3\xa9\ttensor", json_pack("{s:s,s:[i],s:[I,I]}", "dtype", "F32", "shape", 4,
																	"data_offsets", (json_int_t) bf.dlen, (json_int_t) bf.dlen + 16));
		s = json_dumps(root, JSON_COMPACT);
		b = assemble(s, strlen(s), strlen(s), data2, bf.dlen + 16, &len);
		rc = t4r_safetensors_read_into(b, len, &bf.m->layout, dst, err, sizeof(err));
		for (const char *q = err; *q; q++)
			if ((unsigned char) *q < 0x20 || (unsigned char) *q >= 0x7f)
				ascii = 0;
		tap_ok(rc == T4R_EMISMATCH && ascii && strstr(err, "caf??") != NULL,
			   "non-ASCII tensor name: EMISMATCH with a printable ASCII message (%s)", err);
		free(b);
		free(s);
		free(dst);
		json_decref(root);
		free(data2);
	}

	/* --- metadata --- */
	EDIT_CASE(json_object_set_new(root, "__metadata__", json_integer(1)), T4R_EFORMAT, "__metadata__",
			  "__metadata__ not an object");
	EDIT_CASE(json_object_set_new(json_object_get(root, "__metadata__"), "x", json_integer(1)), T4R_EFORMAT,
			  "__metadata__.x", "__metadata__ with a non-string value");

	/* read_into accepts a file without metadata; read with cfg NULL then
	 * uses the movielens preset, which does not fit the tiny model */
	{
		char		err[512];
		t4r_real   *dst = calloc(bf.m->layout.total, sizeof(t4r_real));
		t4r_model  *m = NULL;
		int			rc;

		root = base_header(&bf);
		json_object_del(root, "__metadata__");
		b = from_tree(root, &bf, &len);
		rc = t4r_safetensors_read_into(b, len, &bf.m->layout, dst, err, sizeof(err));
		tap_ok(rc == T4R_OK && params_equal(&bf.m->layout, dst, bf.m->params),
			   "read_into: __metadata__ is optional");
		rc = t4r_safetensors_read(b, len, NULL, &m, err, sizeof(err));
		check_err(rc, T4R_EMISMATCH, err, "item_embedding.weight", "read without metadata: movielens preset does not fit");
		t4r_model_free(m);
		m = NULL;
		rc = t4r_safetensors_read(b, len, &bf.m->cfg, &m, err, sizeof(err));
		tap_ok(rc == T4R_OK && m && params_equal(&bf.m->layout, m->params, bf.m->params),
			   "read without metadata but with an explicit config");
		t4r_model_free(m);
		free(b);
		json_decref(root);
		free(dst);
	}

	/* --- config from the metadata (read with cfg NULL only) --- */
	{
		struct
		{
			const char *cfgjs;
			int			want;
			const char *substr;
			const char *desc;
		}			mc[] = {
			{"{\"hidden_size\": 8", T4R_EFORMAT, "__metadata__.config", "metadata config is not JSON"},
			{"{\"hidden_size\": 8, \"bogus\": 1}", T4R_EFORMAT, "bogus", "metadata config with an unknown key"},
			{"{\"hidden_size\": 8, \"head_dim\": 5}", T4R_EFORMAT, "head_dim", "metadata config invalid"},
			{"[]", T4R_EFORMAT, "__metadata__.config", "metadata config not an object"},
		};

		for (size_t i = 0; i < sizeof(mc) / sizeof(mc[0]); i++)
		{
			char		err[512];
			t4r_model  *m = NULL;
			int			rc;

			root = base_header(&bf);
			json_object_set_new(json_object_get(root, "__metadata__"), "config", json_string(mc[i].cfgjs));
			b = from_tree(root, &bf, &len);
			err[0] = '\0';
			rc = t4r_safetensors_read(b, len, NULL, &m, err, sizeof(err));
			check_err(rc, mc[i].want, err, mc[i].substr, mc[i].desc);
			t4r_model_free(m);
			free(b);
			json_decref(root);
		}
	}
	{
		/* embedding of one row (offsets consistent) */
		char		err[512];
		t4r_model  *m = NULL;
		int			rc;
		json_t	   *e;

		root = base_header(&bf);
		e = entry(root, "item_embedding.weight");
		json_object_set_new(e, "shape", json_pack("[i,i]", 1, 8));
		set_offsets(e, off_of(e, 0), off_of(e, 0) + 32);
		b = from_tree(root, &bf, &len);
		rc = t4r_safetensors_read(b, len, NULL, &m, err, sizeof(err));
		check_err(rc, T4R_EMISMATCH, err, "vocabulary", "read: embedding with 1 row");
		t4r_model_free(m);
		free(b);
		json_decref(root);

		/* embedding width not hidden_size */
		m = NULL;
		root = base_header(&bf);
		e = entry(root, "item_embedding.weight");
		json_object_set_new(e, "shape", json_pack("[i,i]", 10, 4));
		b = from_tree(root, &bf, &len);
		rc = t4r_safetensors_read(b, len, NULL, &m, err, sizeof(err));
		check_err(rc, T4R_EMISMATCH, err, "[10, 4] does not match the expected [V, 8]", "read: embedding width != hidden_size");
		t4r_model_free(m);
		free(b);
		json_decref(root);

		/* embedding of rank 1 */
		m = NULL;
		root = base_header(&bf);
		e = entry(root, "item_embedding.weight");
		json_object_set_new(e, "shape", json_pack("[i]", 40));
		b = from_tree(root, &bf, &len);
		rc = t4r_safetensors_read(b, len, NULL, &m, err, sizeof(err));
		check_err(rc, T4R_EMISMATCH, err, "item_embedding.weight", "read: embedding of rank 1");
		t4r_model_free(m);
		free(b);
		json_decref(root);
	}
	/* a config that does not fit the file (d_state differs) */
	{
		t4r_config	c = bf.m->cfg;
		char		err[512];
		t4r_model  *m = NULL;
		int			rc;

		c.d_state = 5;
		rc = t4r_safetensors_read(bf.buf, bf.len, &c, &m, err, sizeof(err));
		check_err(rc, T4R_EMISMATCH, err, "does not match the expected", "explicit config with another d_state");
		t4r_model_free(m);
	}
#undef EDIT_CASE
	free_base(&bf);
}

/* ------------------------------------------------------------------ */
/* non-finite weights                                                  */
/* ------------------------------------------------------------------ */

/* a copy of the base file with the 4 bytes of element k of tensor `name`
 * replaced by the little-endian float bit pattern `bits` */
static uint8_t *
poisoned(const base_file *bf, const char *name, long long k, uint32_t bits)
{
	json_t	   *root = base_header(bf);
	json_t	   *e = root ? entry(root, name) : NULL;
	uint8_t    *b;
	size_t		at;

	if (e == NULL)
	{
		json_decref(root);
		return NULL;
	}
	if (k < 0)					/* from the end */
		k += (off_of(e, 1) - off_of(e, 0)) / 4;
	at = 8 + bf->hlen + (size_t) off_of(e, 0) + 4 * (size_t) k;
	json_decref(root);
	b = malloc(bf->len);
	if (b == NULL)
		return NULL;
	memcpy(b, bf->buf, bf->len);
	b[at] = (uint8_t) (bits & 0xff);
	b[at + 1] = (uint8_t) ((bits >> 8) & 0xff);
	b[at + 2] = (uint8_t) ((bits >> 16) & 0xff);
	b[at + 3] = (uint8_t) (bits >> 24);
	return b;
}

static void
test_nonfinite(void)
{
	base_file	bf;
	char		last[T4R_NAME_MAX + 32];
	static const struct
	{
		const char *name;		/* NULL: the model's last tensor */
		long long	k;			/* element; negative: from the end */
		uint32_t	bits;
		const char *what;
	}			cases[] =
	{
		{"item_embedding.weight", 0, 0x7fc00000u, "a quiet NaN in the first element of the file"},
		{"ssd_layers.0.ssd.A_log", 1, 0x7f800001u, "a signalling NaN in ssd.A_log"},
		{"ssd_layers.1.ffn.fc1.weight", 7, 0x7f800000u, "+Infinity in ffn.fc1.weight"},
		{"in_layer_norm.bias", -1, 0xff800000u, "-Infinity in the last element of in_layer_norm.bias"},
		{NULL, -1, 0xffc00000u, "a negative NaN in the last element of the last tensor"},
	};

	if (!make_base(&bf))
	{
		tap_ok(0, "non-finite: base file");
		return;
	}
	snprintf(last, sizeof(last), "%s", bf.m->layout.t[bf.m->layout.n - 1].name);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *name = cases[i].name ? cases[i].name : last;
		size_t		len = bf.len;
		uint8_t    *b = poisoned(&bf, name, cases[i].k, cases[i].bits);
		char		desc[256];

		if (b == NULL)
		{
			tap_ok(0, "non-finite: tensor %s in the base file", name);
			continue;
		}
		/* EFORMAT from read_into and read, the message naming the tensor */
		snprintf(desc, sizeof(desc), "non-finite weight: %s -> T4R_EFORMAT naming %s",
				 cases[i].what, name);
		expect_both(b, len, &bf, T4R_EFORMAT, name, desc);
		free(b);
	}
	/* the largest finite float is a weight like any other */
	{
		uint8_t    *b = poisoned(&bf, "ssd_layers.0.ssd.D", 0, 0x7f7fffffu);
		t4r_model  *m = NULL;
		char		err[512] = "";
		int			rc = b ? t4r_safetensors_read(b, bf.len, NULL, &m, err, sizeof(err)) : T4R_EINVAL;

		tap_ok(rc == T4R_OK && m && t4r_model_tensor(m, "ssd_layers.0.ssd.D")[0] == FLT_MAX,
			   "non-finite weight: FLT_MAX (finite) still reads (%s)", rc ? err : "ok");
		t4r_model_free(m);
		free(b);
	}
	free_base(&bf);
}

/* ------------------------------------------------------------------ */
/* seeded mutation fuzz                                                */
/* ------------------------------------------------------------------ */

typedef struct mbuf
{
	uint8_t    *p;
	size_t		len,
				cap;
} mbuf;

static void
mb_reserve(mbuf *m, size_t n)
{
	if (n > m->cap)
	{
		m->cap = n * 2;
		m->p = realloc(m->p, m->cap);
	}
}

static void
mb_replace(mbuf *m, size_t pos, size_t del, const char *ins, size_t inslen)
{
	if (pos > m->len)
		pos = m->len;
	if (del > m->len - pos)
		del = m->len - pos;
	mb_reserve(m, m->len - del + inslen + 1);
	memmove(m->p + pos + inslen, m->p + pos + del, m->len - pos - del);
	memcpy(m->p + pos, ins, inslen);
	m->len = m->len - del + inslen;
}

/* header-level mutation on h (the header text) */
static void
mutate_header(mbuf *h)
{
	static const char special[] = "{}[]\",:0123456789-.eE \\tfnu";
	uint32_t	op = rnd_below(9);
	char		tmp[64];

	if (h->len == 0)
		return;
	switch (op)
	{
		case 0:					/* bit flip */
			h->p[rnd_below((uint32_t) h->len)] ^= (uint8_t) (1u << rnd_below(8));
			break;
		case 1:					/* byte overwrite with a JSON-ish or random byte */
			h->p[rnd_below((uint32_t) h->len)] = rnd_below(4) ? (uint8_t) special[rnd_below(sizeof(special) - 1)]
				: (uint8_t) rnd_below(256);
			break;
		case 2:
		case 3:
		case 4:					/* change a number */
			{
				size_t		start = rnd_below((uint32_t) h->len),
							i,
							e;
				long long	old;
				static const char *const repl[] = {"0", "1", "-1", "4", "-0", "1.0", "4e0",
					"4294967296", "9223372036854775807", "-9223372036854775808",
					"99999999999999999999", "18446744073709551615", "1e400", "2"};

				for (i = 0; i < h->len; i++)
				{
					size_t		p = (start + i) % h->len;

					if (h->p[p] >= '0' && h->p[p] <= '9')
					{
						start = p;
						break;
					}
				}
				if (i == h->len)
					break;
				while (start > 0 && h->p[start - 1] >= '0' && h->p[start - 1] <= '9')
					start--;
				e = start;
				old = 0;
				while (e < h->len && h->p[e] >= '0' && h->p[e] <= '9')
				{
					if (old < 100000000000LL)
						old = old * 10 + (h->p[e] - '0');
					e++;
				}
				if (rnd_below(2))
					snprintf(tmp, sizeof(tmp), "%s", repl[rnd_below(sizeof(repl) / sizeof(repl[0]))]);
				else
				{
					static const long long deltas[] = {-16, -8, -4, -1, 1, 4, 8, 16};
					long long	nv = rnd_below(4) == 0 ? old * 2 : old + deltas[rnd_below(8)];

					snprintf(tmp, sizeof(tmp), "%lld", nv);
				}
				mb_replace(h, start, e - start, tmp, strlen(tmp));
			}
			break;
		case 5:					/* duplicate an entry */
		case 6:					/* remove an entry */
		case 7:					/* rename an entry */
			{
				/* entries look like ,"name":{...} ; find one at random */
				size_t		start = rnd_below((uint32_t) h->len),
							i,
							p = 0,
							q;
				int			found = 0;

				for (i = 0; i < h->len; i++)
				{
					p = (start + i) % h->len;
					if (p + 2 < h->len && h->p[p] == ',' && h->p[p + 1] == '"')
					{
						found = 1;
						break;
					}
				}
				if (!found)
					break;
				q = p + 1;
				while (q < h->len && h->p[q] != '}')
					q++;
				if (q >= h->len)
					break;
				q++;			/* one past '}' */
				if (op == 5)
				{
					size_t		n = q - p;
					char	   *copy = malloc(n);

					memcpy(copy, h->p + p, n);
					if (rnd_below(2) && n > 4)
						copy[2 + rnd_below((uint32_t) (n - 4))] ^= 1;	/* mutated duplicate */
					mb_replace(h, q, 0, copy, n);
					free(copy);
				}
				else if (op == 6)
					mb_replace(h, p, q - p, "", 0);
				else
					h->p[p + 2] = (uint8_t) ('a' + rnd_below(26));
			}
			break;
		case 8:					/* dtype edit / random JSON token insertion */
			{
				static const char *const toks[] = {"\"F16\"", "\"F64\"", "null", "[]", "{}", "[[", ",", "\"",
				"\"__metadata__\":1,", "\"x\":{},", "true"};
				const char *t = toks[rnd_below(sizeof(toks) / sizeof(toks[0]))];
				size_t		pos = rnd_below((uint32_t) h->len + 1);

				if (rnd_below(2))
				{
					/* replace a "F32" */
					for (size_t i = 0; i + 5 <= h->len; i++)
					{
						size_t		p = (pos + i) % (h->len - 4);

						if (memcmp(h->p + p, "\"F32\"", 5) == 0)
						{
							mb_replace(h, p, 5, t, strlen(t));
							return;
						}
					}
				}
				mb_replace(h, pos, 0, t, strlen(t));
			}
			break;
	}
}

static void
test_fuzz(void)
{
	base_file	bf;
	long		iters = 20000;
	const char *env = getenv("T4R_FUZZ_ITERS");
	long		rejected = 0,
				accepted = 0,
				bad_rc = 0,
				no_msg = 0,
				model_on_fail = 0;
	long		by_code[3] = {0, 0, 0};
	mbuf		h = {0},
				f = {0};
	clock_t		t0 = clock();

	if (env && *env)
		iters = atol(env);
	rng_state = 0x1234567887654321ULL;
	if (!make_base(&bf))
	{
		tap_ok(0, "fuzz: base file");
		return;
	}
	for (long it = 0; it < iters; it++)
	{
		uint32_t	nmut = 1 + rnd_below(3);
		uint64_t	hfield;
		char		err[256];
		t4r_model  *m = NULL;
		t4r_real   *dst;
		int			rc;

		/* header text and data */
		h.len = 0;
		mb_replace(&h, 0, 0, (const char *) bf.buf + 8, bf.hlen);
		for (uint32_t k = 0; k < nmut; k++)
			if (rnd_below(4) != 0)
				mutate_header(&h);
		hfield = h.len;
		f.len = 0;
		mb_reserve(&f, 8 + h.len + bf.dlen + 1);
		put_u64le(f.p, hfield);
		memcpy(f.p + 8, h.p, h.len);
		memcpy(f.p + 8 + h.len, bf.data, bf.dlen);
		f.len = 8 + h.len + bf.dlen;

		/* byte-level mutations */
		for (uint32_t k = 0; k < nmut; k++)
		{
			switch (rnd_below(8))
			{
				case 0:			/* bit flip anywhere */
					f.p[rnd_below((uint32_t) f.len)] ^= (uint8_t) (1u << rnd_below(8));
					break;
				case 1:			/* byte overwrite in the data */
					if (f.len > 8 + h.len)
						f.p[8 + h.len + rnd_below((uint32_t) (f.len - 8 - h.len))] = (uint8_t) rnd_below(256);
					break;
				case 2:			/* truncation */
					if (rnd_below(2) == 0)
						f.len = rnd_below((uint32_t) f.len + 1);
					break;
				case 3:			/* header-length field edit */
					{
						uint64_t	v;

						switch (rnd_below(6))
						{
							case 0:
								v = rnd();
								break;
							case 1:
								v = hfield + rnd_below(17) - 8;
								break;
							case 2:
								v = f.len >= 8 ? f.len - 8 : 0;
								break;
							case 3:
								v = (uint64_t) 100 * 1024 * 1024 + rnd_below(3) - 1;
								break;
							case 4:
								v = UINT64_MAX - rnd_below(16);
								break;
							default:
								v = rnd_below(16);
								break;
						}
						if (f.len >= 8)
							put_u64le(f.p, v);
					}
					break;
				default:
					break;		/* no byte-level mutation */
			}
		}

		err[0] = '\0';
		rc = t4r_safetensors_read(f.p, f.len, NULL, &m, err, sizeof(err));
		if (rc == T4R_OK)
		{
			accepted++;
			if (m == NULL)
				bad_rc++;
			t4r_model_free(m);
		}
		else
		{
			rejected++;
			if (rc == T4R_EFORMAT)
				by_code[0]++;
			else if (rc == T4R_EMISMATCH)
				by_code[1]++;
			else
			{
				by_code[2]++;
				bad_rc++;
				if (bad_rc <= 5)
					tap_diag("fuzz iteration %ld: unexpected rc %d: %s", it, rc, err);
			}
			if (err[0] == '\0')
				no_msg++;
			if (m != NULL)
			{
				model_on_fail++;
				t4r_model_free(m);
			}
		}
		/* read_into on the same input */
		dst = malloc(bf.m->layout.total * sizeof(t4r_real));
		err[0] = '\0';
		rc = t4r_safetensors_read_into(f.p, f.len, &bf.m->layout, dst, err, sizeof(err));
		if (rc != T4R_OK && rc != T4R_EFORMAT && rc != T4R_EMISMATCH)
			bad_rc++;
		if (rc != T4R_OK && err[0] == '\0')
			no_msg++;
		free(dst);
	}
	tap_diag("fuzz: %ld mutated files, %ld rejected by read (%ld EFORMAT, %ld EMISMATCH, %ld other), "
			 "%ld accepted, %.2f s", iters, rejected, by_code[0], by_code[1], by_code[2], accepted,
			 (double) (clock() - t0) / CLOCKS_PER_SEC);
	tap_ok(bad_rc == 0, "fuzz: every call returned OK, EFORMAT or EMISMATCH (%ld unexpected)", bad_rc);
	tap_ok(no_msg == 0, "fuzz: every rejection came with a message (%ld without)", no_msg);
	tap_ok(model_on_fail == 0, "fuzz: no model returned on failure");
	tap_ok(iters < 100 || (rejected > iters / 2 && accepted > 0),
		   "fuzz: most mutations rejected, some accepted (%ld rejected of %ld)", rejected, iters);
	free(h.p);
	free(f.p);
	free_base(&bf);
}

int
main(void)
{
	test_config_json();
	test_roundtrip();
	test_golden();
	test_hostile();
	test_nonfinite();
	test_fuzz();
	return tap_done();
}
