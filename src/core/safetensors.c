/*
 * safetensors.c - read and write models in the safetensors format.
 *
 * File layout: u64 little-endian header length H, H bytes of JSON header,
 * then the tensor data.  The header maps tensor names to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * start of the data) and may hold "__metadata__" (an object of strings).
 *
 * The reader treats its input as hostile: every length and offset is checked
 * before use, the header is parsed strictly (exactly its bytes, no NULs, no
 * duplicate keys), and the tensors must match the expected layout exactly.
 * Errors: T4R_EFORMAT for a malformed file (a NaN or infinite weight
 * included), T4R_EMISMATCH for a well-formed file that does not fit the
 * configuration, with a message in err.
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

#define ST_MAX_HEADER	100000000u	/* 100 MB, the safetensors limit */
#define ST_MAX_NDIM		8

/* ------------------------------------------------------------------ */
/* little-endian helpers                                               */
/* ------------------------------------------------------------------ */

static uint64_t
rd_u64le(const uint8_t *p)
{
	uint64_t	v = 0;
	int			i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
wr_u64le(uint8_t *p, uint64_t v)
{
	int			i;

	for (i = 0; i < 8; i++)
	{
		p[i] = (uint8_t) (v & 0xff);
		v >>= 8;
	}
}

static float
rd_f32le(const uint8_t *p)
{
	uint32_t	u = (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static void
wr_f32le(uint8_t *p, float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	p[0] = (uint8_t) (u & 0xff);
	p[1] = (uint8_t) ((u >> 8) & 0xff);
	p[2] = (uint8_t) ((u >> 16) & 0xff);
	p[3] = (uint8_t) ((u >> 24) & 0xff);
}

/* ------------------------------------------------------------------ */
/* writer                                                              */
/* ------------------------------------------------------------------ */

int
t4r_safetensors_write(const t4r_model *m, uint8_t **buf, size_t *len)
{
	const t4r_layout *lay;
	sbuf		h = {0};
	char	   *cfg_json;
	size_t		data_bytes = 0;
	size_t		hlen,
				total;
	uint8_t    *out;
	uint8_t    *dp;
	int			i;

	if (m == NULL || buf == NULL || len == NULL || m->params == NULL)
		return T4R_EINVAL;
	*buf = NULL;
	*len = 0;
	lay = &m->layout;

	cfg_json = t4r_config_to_json(&m->cfg);
	if (cfg_json == NULL)
		return T4R_ENOMEM;

	sb_str(&h, "{\"__metadata__\":{\"format\":\"tim4rec\",\"config\":");
	sb_jstr(&h, cfg_json);
	sb_str(&h, "}");
	free(cfg_json);

	for (i = 0; i < lay->n; i++)
	{
		const t4r_tensor *t = &lay->t[i];
		char		tmp[96];
		int			k;

		if (t->offset + t->numel > lay->total || t->numel > SIZE_MAX / 4)
		{
			free(h.p);
			return T4R_EINVAL;
		}
		sb_str(&h, ",");
		sb_jstr(&h, t->name);
		sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
		for (k = 0; k < t->ndim; k++)
		{
			snprintf(tmp, sizeof(tmp), "%s%lld", k ? "," : "", (long long) t->shape[k]);
			sb_str(&h, tmp);
		}
		snprintf(tmp, sizeof(tmp), "],\"data_offsets\":[%zu,%zu]}",
				 data_bytes, data_bytes + t->numel * 4);
		sb_str(&h, tmp);
		data_bytes += t->numel * 4;
	}
	sb_str(&h, "}");
	/* pad with spaces so that the data starts 8-byte aligned */
	while (!h.failed && h.len % 8 != 0)
		sb_str(&h, " ");
	if (h.failed)
	{
		free(h.p);
		return T4R_ENOMEM;
	}
	hlen = h.len;
	total = 8 + hlen + data_bytes;
	out = malloc(total);
	if (out == NULL)
	{
		free(h.p);
		return T4R_ENOMEM;
	}
	wr_u64le(out, (uint64_t) hlen);
	memcpy(out + 8, h.p, hlen);
	free(h.p);

	dp = out + 8 + hlen;
	for (i = 0; i < lay->n; i++)
	{
		const t4r_tensor *t = &lay->t[i];
		const t4r_real *src = m->params + t->offset;
		size_t		j;

		for (j = 0; j < t->numel; j++, dp += 4)
			wr_f32le(dp, (float) src[j]);
	}
	*buf = out;
	*len = total;
	return T4R_OK;
}

/* ------------------------------------------------------------------ */
/* reader: header parsing and generic checks                           */
/* ------------------------------------------------------------------ */

typedef struct st_entry
{
	const char *name;			/* points into the JSON tree */
	int			ndim;
	int64_t		shape[ST_MAX_NDIM];
	uint64_t	numel;
	uint64_t	begin,
				end;			/* byte offsets relative to the data start */
} st_entry;

typedef struct st_file
{
	json_t	   *root;
	json_t	   *meta;			/* borrowed, may be NULL */
	st_entry   *ents;
	int			n;
	const uint8_t *data;
	uint64_t	dlen;
} st_file;

static void
st_free(st_file *f)
{
	free(f->ents);
	if (f->root)
		json_decref(f->root);
	memset(f, 0, sizeof(*f));
}

static void
fmt_shape(char *out, size_t outlen, int ndim, const int64_t *shape)
{
	size_t		pos = 0;
	int			k;

	if (outlen == 0)
		return;
	out[0] = '\0';
	pos += snprintf(out + pos, outlen - pos, "[");
	for (k = 0; k < ndim && pos < outlen; k++)
		pos += snprintf(out + pos, outlen - pos, "%s%lld", k ? ", " : "",
						(long long) shape[k]);
	if (pos < outlen)
		snprintf(out + pos, outlen - pos, "]");
}

static int
cmp_begin(const void *a, const void *b)
{
	const st_entry *x = *(const st_entry *const *) a;
	const st_entry *y = *(const st_entry *const *) b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* one tensor entry: exactly dtype, shape, data_offsets */
static int
parse_entry(const char *name, json_t *obj, uint64_t dlen, st_entry *e,
			char *err, size_t errlen)
{
	json_t	   *dtype,
			   *shape,
			   *offs,
			   *jb,
			   *je;
	const char *key;
	json_t	   *val;
	size_t		k;
	uint64_t	numel = 1;
	int			overflow = 0;
	json_int_t	b,
				en;

	e->name = name;
	if (!json_is_object(obj))
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: entry is not a JSON object", name);
		return T4R_EFORMAT;
	}
	json_object_foreach(obj, key, val)
	{
		if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
			strcmp(key, "data_offsets") != 0)
		{
			t4r_set_err_ascii(err, errlen, "tensor %.80s: unexpected field \"%.40s\"", name, key);
			return T4R_EFORMAT;
		}
	}
	dtype = json_object_get(obj, "dtype");
	shape = json_object_get(obj, "shape");
	offs = json_object_get(obj, "data_offsets");
	if (dtype == NULL || shape == NULL || offs == NULL)
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: missing field \"%s\"", name,
				dtype == NULL ? "dtype" : shape == NULL ? "shape" : "data_offsets");
		return T4R_EFORMAT;
	}
	if (!json_is_string(dtype))
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: dtype is not a string", name);
		return T4R_EFORMAT;
	}
	if (strcmp(json_string_value(dtype), "F32") != 0)
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: dtype \"%.20s\" is not supported (only F32)",
				name, json_string_value(dtype));
		return T4R_EFORMAT;
	}
	if (!json_is_array(shape))
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: shape is not an array", name);
		return T4R_EFORMAT;
	}
	if (json_array_size(shape) > ST_MAX_NDIM)
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: shape has %zu dimensions (at most %d supported)",
				name, json_array_size(shape), ST_MAX_NDIM);
		return T4R_EFORMAT;
	}
	e->ndim = (int) json_array_size(shape);
	for (k = 0; k < json_array_size(shape); k++)
	{
		json_t	   *d = json_array_get(shape, k);
		json_int_t	dv;

		if (!json_is_integer(d) || (dv = json_integer_value(d)) < 0)
		{
			t4r_set_err_ascii(err, errlen, "tensor %.80s: shape[%zu] is not a non-negative integer",
					name, k);
			return T4R_EFORMAT;
		}
		e->shape[k] = (int64_t) dv;
		if (dv != 0 && numel > UINT64_MAX / 4 / (uint64_t) dv)
			overflow = 1;
		else
			numel *= (uint64_t) dv;
	}
	if (!json_is_array(offs) || json_array_size(offs) != 2)
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: data_offsets is not an array of two integers",
				name);
		return T4R_EFORMAT;
	}
	jb = json_array_get(offs, 0);
	je = json_array_get(offs, 1);
	if (!json_is_integer(jb) || !json_is_integer(je))
	{
		t4r_set_err_ascii(err, errlen, "tensor %.80s: data_offsets is not an array of two integers",
				name);
		return T4R_EFORMAT;
	}
	b = json_integer_value(jb);
	en = json_integer_value(je);
	if (b < 0 || en < b || (uint64_t) en > dlen)
	{
		t4r_set_err_ascii(err, errlen,
				"tensor %.80s: data_offsets [%lld, %lld] outside the data (%llu bytes)",
				name, (long long) b, (long long) en, (unsigned long long) dlen);
		return T4R_EFORMAT;
	}
	if (overflow || (uint64_t) (en - b) != numel * 4)
	{
		char		sh[160];

		fmt_shape(sh, sizeof(sh), e->ndim, e->shape);
		t4r_set_err_ascii(err, errlen,
				"tensor %.80s: data_offsets [%lld, %lld] span %lld bytes, shape %s needs %s",
				name, (long long) b, (long long) en, (long long) (en - b), sh,
				overflow ? "more than fits" : "numel*4");
		return T4R_EFORMAT;
	}
	e->numel = numel;
	e->begin = (uint64_t) b;
	e->end = (uint64_t) en;
	return T4R_OK;
}

/* Parse and check everything that does not depend on the layout. */
static int
st_parse(const uint8_t *buf, size_t len, st_file *f, char *err, size_t errlen)
{
	uint64_t	hlen;
	const char *hdr;
	json_error_t jerr;
	const char *key;
	json_t	   *val;
	size_t		nkeys;
	st_entry  **order = NULL;
	int			i,
				rc;

	memset(f, 0, sizeof(*f));
	if (buf == NULL || len < 8)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: %zu bytes is too short for a header length",
				buf == NULL ? (size_t) 0 : len);
		return T4R_EFORMAT;
	}
	hlen = rd_u64le(buf);
	if (hlen > (uint64_t) (len - 8))
	{
		t4r_set_err_ascii(err, errlen, "safetensors: header length %llu exceeds the %zu bytes after it",
				(unsigned long long) hlen, len - 8);
		return T4R_EFORMAT;
	}
	if (hlen > ST_MAX_HEADER)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: header length %llu exceeds the 100 MB limit",
				(unsigned long long) hlen);
		return T4R_EFORMAT;
	}
	if (hlen < 2)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: header length %llu is too small",
				(unsigned long long) hlen);
		return T4R_EFORMAT;
	}
	hdr = (const char *) buf + 8;
	if (memchr(hdr, '\0', (size_t) hlen) != NULL)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: header contains a NUL byte");
		return T4R_EFORMAT;
	}
	f->root = json_loadb(hdr, (size_t) hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (f->root == NULL)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: header is not valid JSON: %s (at byte %d)",
				jerr.text, jerr.position);
		return T4R_EFORMAT;
	}
	if (!json_is_object(f->root))
	{
		t4r_set_err_ascii(err, errlen, "safetensors: header is not a JSON object");
		st_free(f);
		return T4R_EFORMAT;
	}
	f->data = buf + 8 + hlen;
	f->dlen = (uint64_t) (len - 8) - hlen;

	/* metadata: optional, an object of strings */
	f->meta = json_object_get(f->root, "__metadata__");
	if (f->meta != NULL)
	{
		if (!json_is_object(f->meta))
		{
			t4r_set_err_ascii(err, errlen, "safetensors: __metadata__ is not an object");
			st_free(f);
			return T4R_EFORMAT;
		}
		json_object_foreach(f->meta, key, val)
		{
			if (!json_is_string(val))
			{
				t4r_set_err_ascii(err, errlen, "safetensors: __metadata__.%.60s is not a string", key);
				st_free(f);
				return T4R_EFORMAT;
			}
		}
	}

	nkeys = json_object_size(f->root) - (f->meta != NULL ? 1 : 0);
	if (nkeys > 1000000)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: too many tensors (%zu)", nkeys);
		st_free(f);
		return T4R_EFORMAT;
	}
	f->ents = calloc(nkeys ? nkeys : 1, sizeof(st_entry));
	order = malloc((nkeys ? nkeys : 1) * sizeof(st_entry *));
	if (f->ents == NULL || order == NULL)
	{
		free(order);
		t4r_set_err_ascii(err, errlen, "safetensors: out of memory");
		st_free(f);
		return T4R_ENOMEM;
	}
	json_object_foreach(f->root, key, val)
	{
		if (strcmp(key, "__metadata__") == 0)
			continue;
		if ((size_t) f->n >= nkeys)
			break;				/* cannot happen */
		rc = parse_entry(key, val, f->dlen, &f->ents[f->n], err, errlen);
		if (rc != T4R_OK)
		{
			free(order);
			st_free(f);
			return rc;
		}
		order[f->n] = &f->ents[f->n];
		f->n++;
	}

	/* no two tensors may share bytes */
	qsort(order, (size_t) f->n, sizeof(st_entry *), cmp_begin);
	for (i = 1; i < f->n; i++)
	{
		const st_entry *a = order[i - 1],
				   *b = order[i];

		if (b->begin < a->end)
		{
			t4r_set_err_ascii(err, errlen,
					"safetensors: tensors %.80s [%llu, %llu] and %.80s [%llu, %llu] overlap",
					a->name, (unsigned long long) a->begin, (unsigned long long) a->end,
					b->name, (unsigned long long) b->begin, (unsigned long long) b->end);
			free(order);
			st_free(f);
			return T4R_EFORMAT;
		}
	}
	free(order);
	return T4R_OK;
}

static const st_entry *
st_find(const st_file *f, const char *name)
{
	int			i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->ents[i].name, name) == 0)
			return &f->ents[i];
	return NULL;
}

/* Every entry must be a tensor of lay with its exact shape, and every tensor
 * of lay must be present. */
static int
st_match(const st_file *f, const t4r_layout *lay, char *err, size_t errlen)
{
	int			i,
				k;

	for (i = 0; i < f->n; i++)
	{
		const st_entry *e = &f->ents[i];
		int			idx = t4r_layout_find(lay, e->name);
		const t4r_tensor *t;
		int			same;

		if (idx < 0 || idx >= lay->n)
		{
			t4r_set_err_ascii(err, errlen, "tensor %.80s: not a parameter of this configuration",
					e->name);
			return T4R_EMISMATCH;
		}
		t = &lay->t[idx];
		same = (e->ndim == t->ndim);
		for (k = 0; same && k < t->ndim; k++)
			same = (e->shape[k] == t->shape[k]);
		if (!same || e->numel != (uint64_t) t->numel)
		{
			char		got[160],
						want[160];

			fmt_shape(got, sizeof(got), e->ndim, e->shape);
			fmt_shape(want, sizeof(want), t->ndim, t->shape);
			t4r_set_err_ascii(err, errlen, "tensor %.80s: shape %s does not match the expected %s",
					e->name, got, want);
			return T4R_EMISMATCH;
		}
	}
	/* names are unique (duplicate keys are rejected) and all known, so equal
	 * counts mean every tensor is present; otherwise name a missing one */
	if (f->n != lay->n)
	{
		for (i = 0; i < lay->n; i++)
			if (st_find(f, lay->t[i].name) == NULL)
			{
				t4r_set_err_ascii(err, errlen, "tensor %.80s: missing from the file", lay->t[i].name);
				return T4R_EMISMATCH;
			}
		t4r_set_err_ascii(err, errlen, "safetensors: %d tensors, expected %d", f->n, lay->n);
		return T4R_EMISMATCH;
	}
	return T4R_OK;
}

/* copy the tensors (after st_match) into dst; a NaN or +-Inf value is
 * T4R_EFORMAT: such a model would only ever score NaN */
static int
st_copy(const st_file *f, const t4r_layout *lay, t4r_real *dst, char *err, size_t errlen)
{
	int			i;

	for (i = 0; i < f->n; i++)
	{
		const st_entry *e = &f->ents[i];
		const t4r_tensor *t = &lay->t[t4r_layout_find(lay, e->name)];
		const uint8_t *src = f->data + e->begin;
		t4r_real   *d = dst + t->offset;
		size_t		j;

		for (j = 0; j < t->numel; j++)
		{
			float		v = rd_f32le(src + 4 * j);

			if (!isfinite(v))
			{
				t4r_set_err_ascii(err, errlen, "tensor %.80s: element %zu is %s (weights must be finite)",
						e->name, j, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
				return T4R_EFORMAT;
			}
			d[j] = (t4r_real) v;
		}
	}
	return T4R_OK;
}

/* ------------------------------------------------------------------ */
/* public readers                                                      */
/* ------------------------------------------------------------------ */

int
t4r_safetensors_read_into(const uint8_t *buf, size_t len,
						  const t4r_layout *lay, t4r_real *dst,
						  char *err, size_t errlen)
{
	st_file		f;
	int			rc;

	if (err && errlen)
		err[0] = '\0';
	if (lay == NULL || dst == NULL || (lay->n > 0 && lay->t == NULL))
	{
		t4r_set_err_ascii(err, errlen, "safetensors: NULL argument");
		return T4R_EINVAL;
	}
	rc = st_parse(buf, len, &f, err, errlen);
	if (rc != T4R_OK)
		return rc;
	rc = st_match(&f, lay, err, errlen);
	if (rc == T4R_OK)
		rc = st_copy(&f, lay, dst, err, errlen);
	st_free(&f);
	return rc;
}

int
t4r_safetensors_read(const uint8_t *buf, size_t len, const t4r_config *cfg,
					 t4r_model **out, char *err, size_t errlen)
{
	st_file		f;
	t4r_config	c;
	t4r_model  *m = NULL;
	const st_entry *emb;
	char		msg[512];
	int			rc;

	if (err && errlen)
		err[0] = '\0';
	if (out == NULL)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: NULL argument");
		return T4R_EINVAL;
	}
	*out = NULL;
	rc = st_parse(buf, len, &f, err, errlen);
	if (rc != T4R_OK)
		return rc;

	/* configuration */
	if (cfg != NULL)
		c = *cfg;
	else
	{
		json_t	   *jc = f.meta ? json_object_get(f.meta, "config") : NULL;

		rc = t4r_config_preset(&c, "movielens");
		if (rc != T4R_OK)
		{
			t4r_set_err_ascii(err, errlen, "safetensors: cannot apply the movielens preset");
			st_free(&f);
			return rc;
		}
		c.n_items = 0;
		if (jc != NULL)
		{
			const char *s = json_string_value(jc);	/* checked: a string */

			msg[0] = '\0';
			rc = t4r_config_from_json(&c, s, json_string_length(jc), msg, sizeof(msg));
			if (rc != T4R_OK)
			{
				t4r_set_err_ascii(err, errlen, "safetensors: __metadata__.config: %s", msg);
				st_free(&f);
				return T4R_EFORMAT;
			}
		}
	}

	/* vocabulary size from the embedding */
	emb = st_find(&f, "item_embedding.weight");
	if (emb == NULL)
	{
		t4r_set_err_ascii(err, errlen, "tensor item_embedding.weight: missing from the file");
		st_free(&f);
		return T4R_EMISMATCH;
	}
	if (c.n_items == 0)
	{
		if (emb->ndim != 2 || emb->shape[1] != c.hidden_size || c.hidden_size <= 0)
		{
			char		got[160];

			fmt_shape(got, sizeof(got), emb->ndim, emb->shape);
			t4r_set_err_ascii(err, errlen,
					"tensor item_embedding.weight: shape %s does not match the expected [V, %d]",
					got, c.hidden_size);
			st_free(&f);
			return T4R_EMISMATCH;
		}
		if (emb->shape[0] < 2 || (double) emb->shape[0] * c.hidden_size > 2e9)
		{
			t4r_set_err_ascii(err, errlen,
					"tensor item_embedding.weight: %lld rows is not a valid vocabulary size",
					(long long) emb->shape[0]);
			st_free(&f);
			return T4R_EMISMATCH;
		}
		c.n_items = (int) emb->shape[0];
	}

	msg[0] = '\0';
	rc = t4r_config_validate(&c, msg, sizeof(msg));
	if (rc != T4R_OK)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: invalid configuration: %s", msg);
		st_free(&f);
		return cfg != NULL ? T4R_EINVAL : T4R_EFORMAT;
	}
	msg[0] = '\0';
	rc = t4r_model_create(&c, &m, msg, sizeof(msg));
	if (rc != T4R_OK)
	{
		t4r_set_err_ascii(err, errlen, "safetensors: cannot create the model: %s", msg);
		st_free(&f);
		return rc;
	}
	rc = st_match(&f, &m->layout, err, errlen);
	if (rc != T4R_OK)
	{
		t4r_model_free(m);
		st_free(&f);
		return rc;
	}
	rc = st_copy(&f, &m->layout, m->params, err, errlen);
	st_free(&f);
	if (rc != T4R_OK)
	{
		t4r_model_free(m);
		return rc;
	}
	*out = m;
	return T4R_OK;
}
