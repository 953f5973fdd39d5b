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
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tim4rec.h"
#include "dataset.h"
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

int64_t
t4r_model_warm_new_items(t4r_model *m, const int32_t *row_map, const t4r_dataset *ds)
{
	int			ei = t4r_layout_find(&m->layout, EMB);
	int			d;
	int32_t		V;
	double	   *sum,
			   *nsum;
	int64_t    *cnt,
				set = 0;
	t4r_real   *E;

	if (m == NULL || row_map == NULL || ds == NULL || ei < 0)
		return T4R_EINVAL;
	d = (int) m->layout.t[ei].shape[1];
	V = (int32_t) m->layout.t[ei].shape[0];
	if (ds->n_items != V)
		return T4R_EINVAL;
	E = m->params + m->layout.t[ei].offset;
	sum = calloc((size_t) V * d, sizeof(double));
	nsum = calloc((size_t) V, sizeof(double));
	cnt = calloc((size_t) V, sizeof(int64_t));
	if (!sum || !nsum || !cnt)
	{
		free(sum);
		free(nsum);
		free(cnt);
		return T4R_ENOMEM;
	}
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					tl = train_len(ds, u);

		for (int64_t j = 0; j < tl; j++)
		{
			int32_t		a = ds->seq_items[off + j];

			if (a <= 0 || a >= V || row_map[a] >= 0)
				continue;
			for (int side = -1; side <= 1; side += 2)
			{
				int64_t		k = j + side;
				int32_t		b;
				const t4r_real *e;
				double		nn = 0;

				if (k < 0 || k >= tl)
					continue;
				b = ds->seq_items[off + k];
				if (b <= 0 || b >= V || row_map[b] < 0)
					continue;
				e = E + (size_t) b * d;
				for (int c = 0; c < d; c++)
				{
					sum[(size_t) a * d + c] += e[c];
					nn += (double) e[c] * e[c];
				}
				nsum[a] += sqrt(nn);
				cnt[a]++;
			}
		}
	}
	for (int32_t r = 1; r < V; r++)
	{
		double		n2 = 0,
					scale;

		if (row_map[r] >= 0 || cnt[r] == 0)
			continue;
		for (int c = 0; c < d; c++)
			n2 += sum[(size_t) r * d + c] * sum[(size_t) r * d + c];
		if (!(n2 > 0))
			continue;
		/* the neighbours' mean direction, at their mean length */
		scale = (nsum[r] / (double) cnt[r]) / sqrt(n2);
		for (int c = 0; c < d; c++)
			E[(size_t) r * d + c] = (t4r_real) (sum[(size_t) r * d + c] * scale);
		set++;
	}
	free(sum);
	free(nsum);
	free(cnt);
	return set;
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
