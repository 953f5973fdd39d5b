/*
 * warm.c - warm start: a new model that continues from a parent model's
 * weights on a changed item vocabulary.
 *
 * The caller creates the new model for the new vocabulary and initialises it
 * with t4r_model_init (the same path as a fresh training: new items get the
 * official initialisation), then t4r_model_warm_start copies every tensor of
 * the parent and the embedding rows of the items both vocabularies share.
 * Matching external item ids to rows is the caller's business (row_map), so
 * this file does not depend on the id type.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tim4rec.h"
#include "err.h"

#define EMB "item_embedding.weight"

static void
shape_text(const t4r_tensor *t, char *buf, size_t len)
{
	size_t		o = 0;

	buf[0] = '\0';
	for (int i = 0; i < t->ndim && o + 1 < len; i++)
	{
		int			w = snprintf(buf + o, len - o, "%s%lld", i ? "x" : "", (long long) t->shape[i]);

		if (w < 0)
			break;
		o += (size_t) w;
	}
}

int
t4r_model_warm_start(t4r_model *m, const t4r_model *parent,
					 const int32_t *row_map, char *err, size_t errlen)
{
	const t4r_layout *nl,
			   *pl;
	int			ei,
				pei,
				d;
	int32_t		V,
				PV;

	if (err && errlen)
		err[0] = '\0';
	if (m == NULL || parent == NULL || row_map == NULL)
	{
		t4r_set_err(err, errlen, "warm start: NULL argument");
		return T4R_EINVAL;
	}
	nl = &m->layout;
	pl = &parent->layout;
	ei = t4r_layout_find(nl, EMB);
	pei = t4r_layout_find(pl, EMB);
	if (ei < 0 || pei < 0)
	{
		t4r_set_err(err, errlen, "warm start: a model has no %s", EMB);
		return T4R_EMISMATCH;
	}
	d = (int) nl->t[ei].shape[1];
	V = (int32_t) nl->t[ei].shape[0];
	PV = (int32_t) pl->t[pei].shape[0];

	/* check everything before changing anything */
	if (nl->n != pl->n)
	{
		t4r_set_err(err, errlen, "warm start: the parent has %d tensors, the new model %d", pl->n, nl->n);
		return T4R_EMISMATCH;
	}
	for (int i = 0; i < nl->n; i++)
	{
		const t4r_tensor *a = &nl->t[i];
		int			j = t4r_layout_find(pl, a->name);
		const t4r_tensor *b;
		int			same;

		if (j < 0)
		{
			t4r_set_err(err, errlen, "warm start: the parent has no tensor %s", a->name);
			return T4R_EMISMATCH;
		}
		b = &pl->t[j];
		same = a->ndim == b->ndim;
		for (int k = 0; same && k < a->ndim; k++)
			if (a->shape[k] != b->shape[k] && !(i == ei && k == 0))
				same = 0;
		if (!same)
		{
			char		sa[64],
						sb[64];

			shape_text(b, sb, sizeof sb);
			shape_text(a, sa, sizeof sa);
			t4r_set_err(err, errlen, "warm start: tensor %s has shape %s in the parent and %s in the new model",
					a->name, sb, sa);
			return T4R_EMISMATCH;
		}
	}
	for (int32_t r = 0; r < V; r++)
		if (row_map[r] < -1 || row_map[r] >= PV)
		{
			t4r_set_err(err, errlen, "warm start: row %d maps to parent row %d, outside -1..%d",
					(int) r, (int) row_map[r], (int) PV - 1);
			return T4R_EINVAL;
		}

	for (int i = 0; i < nl->n; i++)
	{
		const t4r_tensor *a = &nl->t[i];
		const t4r_tensor *b = &pl->t[t4r_layout_find(pl, a->name)];

		if (i != ei)
			memcpy(m->params + a->offset, parent->params + b->offset, a->numel * sizeof(t4r_real));
	}
	{
		t4r_real   *dst = m->params + nl->t[ei].offset;
		const t4r_real *src = parent->params + pl->t[pei].offset;

		for (int32_t r = 0; r < V; r++)
			if (row_map[r] >= 0)
				memcpy(dst + (size_t) r * d, src + (size_t) row_map[r] * d, (size_t) d * sizeof(t4r_real));
	}
	return T4R_OK;
}

int
t4r_config_shape_diff(const t4r_config *a, const t4r_config *b, char *buf, size_t len)
{
	struct
	{
		const char *key;
		int			va,
					vb;
	}			k[] = {
		{"hidden_size", a->hidden_size, b->hidden_size},
		{"num_layers", a->num_layers, b->num_layers},
		{"d_state", a->d_state, b->d_state},
		{"d_conv", a->d_conv, b->d_conv},
		{"expand", a->expand, b->expand},
		{"head_dim", a->head_dim, b->head_dim},
		{"max_seq_len", a->max_seq_len, b->max_seq_len},
		{"is_time", a->is_time != 0, b->is_time != 0},
		{"p2p_residual", a->p2p_residual != 0, b->p2p_residual != 0},
	};
	int			n = 0;
	size_t		o = 0;

	if (buf && len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
	{
		if (k[i].va == k[i].vb)
			continue;
		n++;
		if (buf && o + 1 < len)
		{
			int			w;

			if (!strcmp(k[i].key, "is_time") || !strcmp(k[i].key, "p2p_residual"))
				w = snprintf(buf + o, len - o, "%s%s %s -> %s", n > 1 ? ", " : "", k[i].key,
							 k[i].va ? "true" : "false", k[i].vb ? "true" : "false");
			else
				w = snprintf(buf + o, len - o, "%s%s %d -> %d", n > 1 ? ", " : "", k[i].key,
							 k[i].va, k[i].vb);
			if (w > 0)
				o = o + (size_t) w < len ? o + (size_t) w : len - 1;
		}
	}
	return n;
}
