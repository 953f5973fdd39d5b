/*
 * test_warm.c - t4r_model_warm_start and t4r_config_shape_diff (warm
 * start), against plain references written here:
 *  - every tensor but the item embedding equals the parent's, element by
 *    element;
 *  - embedding rows of items the parent knew equal the parent's rows (looked
 *    up by external id with a linear search here), row 0 (padding) included;
 *  - rows of new items equal a fresh t4r_model_init of the new vocabulary
 *    (the official initialisation, computed on a separate model);
 *  - a shape change (hidden_size, num_layers, is_time, max_seq_len) is T4R_EMISMATCH and a bad row map T4R_EINVAL, with the
 *    model unchanged;
 *  - the warm-started model still trains (a step gives a finite loss);
 *  - t4r_model_warm_new_items: a new item's row is the mean direction of
 *    its known neighbours' rows in the training parts (validation and test
 *    items not read), at their mean length, against a reference computed
 *    here in double; a new item without a known neighbour and every other
 *    parameter are unchanged; a dataset of another size is T4R_EINVAL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "tim4rec.h"

static t4r_model *
make(int V, int hidden, int layers, int is_time, int p2p, int L, uint64_t seed)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "amazon");
	c.hidden_size = hidden;
	c.num_layers = layers;
	c.is_time = is_time;
	c.p2p_residual = p2p;
	c.max_seq_len = L;
	c.n_items = V;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "model create: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, seed);
	return m;
}

static int
same_params(const t4r_model *a, const t4r_real *b)
{
	return memcmp(a->params, b, a->layout.total * sizeof(t4r_real)) == 0;
}

int
main(void)
{
	/* parent: items 10..60 (rows 1..6); new table: 30, 10, 70, 60, 80 */
	const int64_t pid[] = {0, 10, 20, 30, 40, 50, 60};
	const int64_t nid[] = {0, 10, 30, 60, 70, 80};
	const int	PV = 7,
				V = 6;
	int32_t		map[6];
	t4r_model  *parent = make(PV, 64, 2, 1, 1, 8, 11);
	t4r_model  *m = make(V, 64, 2, 1, 1, 8, 5);
	t4r_model  *fresh = make(V, 64, 2, 1, 1, 8, 5);
	t4r_real   *before;
	char		err[256];
	int			rc,
				ok;
	int			d = 64;

	/* make the parent's weights differ from any initialisation */
	for (size_t i = 0; i < parent->layout.total; i++)
		parent->params[i] += (t4r_real) (0.001 * (double) (i % 97) + 0.5);

	/* reference map: linear search of each new id among the parent's */
	for (int r = 0; r < V; r++)
	{
		map[r] = -1;
		for (int j = 0; j < PV; j++)
			if (pid[j] == nid[r])
				map[r] = j;
	}
	rc = t4r_model_warm_start(m, parent, map, err, sizeof err);
	tap_ok(rc == T4R_OK, "warm start on a changed vocabulary (%s)", err);

	ok = 1;
	for (int i = 0; i < m->layout.n; i++)
	{
		const t4r_tensor *t = &m->layout.t[i];
		const t4r_real *p = t4r_model_tensor(parent, t->name);

		if (strcmp(t->name, "item_embedding.weight") == 0)
			continue;
		for (size_t k = 0; k < t->numel; k++)
			if (m->params[t->offset + k] != p[k])
				ok = 0;
	}
	tap_ok(ok, "every tensor but the embedding equals the parent's (%d tensors)", m->layout.n - 1);

	{
		const t4r_real *e = t4r_model_tensor(m, "item_embedding.weight");
		const t4r_real *pe = t4r_model_tensor(parent, "item_embedding.weight");
		const t4r_real *fe = t4r_model_tensor(fresh, "item_embedding.weight");
		int			known_ok = 1,
					new_ok = 1,
					nknown = 0,
					nnew = 0;

		for (int r = 0; r < V; r++)
		{
			int			j = -1;

			for (int jj = 0; jj < PV; jj++)
				if (pid[jj] == nid[r])
					j = jj;
			for (int k = 0; k < d; k++)
			{
				if (j >= 0 && e[r * d + k] != pe[j * d + k])
					known_ok = 0;
				if (j < 0 && e[r * d + k] != fe[r * d + k])
					new_ok = 0;
			}
			if (j >= 0)
				nknown++;
			else
				nnew++;
		}
		tap_ok(known_ok && nknown == 4, "rows of known items (and padding) are the parent's rows of the same id (%d rows)", nknown);
		tap_ok(new_ok && nnew == 2, "rows of new items are the official initialisation of the new vocabulary (%d rows)", nnew);
		/* items 20, 40, 50 left: no row of m equals theirs */
		ok = 1;
		for (int r = 0; r < V; r++)
			for (int j = 2; j <= 5; j += (j == 2 ? 2 : 1))
				if (memcmp(e + r * d, pe + j * d, d * sizeof(t4r_real)) == 0)
					ok = 0;
		tap_ok(ok, "rows of dropped items (20, 40, 50) are not in the new model");
	}

	/* errors leave the model unchanged */
	before = malloc(m->layout.total * sizeof(t4r_real));
	memcpy(before, m->params, m->layout.total * sizeof(t4r_real));
	{
		struct
		{
			const char *what;
			t4r_model  *p;
		}			bad[] = {
			{"hidden_size 32", make(PV, 32, 2, 1, 1, 8, 1)},
			{"num_layers 1", make(PV, 64, 1, 1, 1, 8, 1)},
			{"is_time false", make(PV, 64, 2, 0, 1, 8, 1)},
			{"max_seq_len 16", make(PV, 64, 2, 1, 1, 16, 1)},
			{"max_seq_len 16 without p2p_residual", make(PV, 64, 2, 1, 0, 16, 1)},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			err[0] = '\0';
			rc = t4r_model_warm_start(m, bad[i].p, map, err, sizeof err);
			tap_ok(rc == T4R_EMISMATCH && err[0] && same_params(m, before),
				   "parent with %s: T4R_EMISMATCH, model unchanged (%s)", bad[i].what, err);
			t4r_model_free(bad[i].p);
		}
	}
	{
		int32_t		badmap[6];

		memcpy(badmap, map, sizeof map);
		badmap[3] = PV;
		rc = t4r_model_warm_start(m, parent, badmap, err, sizeof err);
		tap_ok(rc == T4R_EINVAL && same_params(m, before), "row map past the parent's rows: T4R_EINVAL, unchanged (%s)", err);
		badmap[3] = -2;
		rc = t4r_model_warm_start(m, parent, badmap, err, sizeof err);
		tap_ok(rc == T4R_EINVAL && same_params(m, before), "row map -2: T4R_EINVAL, unchanged");
	}

	/* shape_diff */
	{
		t4r_config	a,
					b;
		char		buf[256];
		int			n;

		t4r_config_preset(&a, "amazon");
		b = a;
		n = t4r_config_shape_diff(&a, &b, buf, sizeof buf);
		tap_ok(n == 0 && buf[0] == '\0', "shape_diff: same config -> 0");
		b.learning_rate = 0.01;
		b.batch_size = 7;
		b.dropout_prob = 0.1;
		b.seed = 9;
		n = t4r_config_shape_diff(&a, &b, buf, sizeof buf);
		tap_ok(n == 0, "shape_diff: training keys and dropout are not shape keys");
		b.hidden_size = a.hidden_size * 2;
		b.is_time = !a.is_time;
		n = t4r_config_shape_diff(&a, &b, buf, sizeof buf);
		tap_ok(n == 2 && strstr(buf, "hidden_size 64 -> 128") && strstr(buf, "is_time"),
			   "shape_diff: two keys named (%s)", buf);
		n = t4r_config_shape_diff(&a, &b, buf, 8);
		tap_ok(n == 2 && strlen(buf) < 8, "shape_diff: a short buffer is cut, not overrun");
	}

	/* the warm-started model trains */
	{
		t4r_train_opts o = {.threads = 1};
		t4r_trainer *t = NULL;
		int32_t		items[3] = {1, 2, 3};
		double		ts[3] = {100, 200, 300};
		t4r_sample	s = {.items = items, .ts = ts, .n = 3, .target = 4};
		double		loss = NAN;

		rc = t4r_trainer_create(m, &o, &t, err, sizeof err);
		if (rc == T4R_OK)
			rc = t4r_trainer_step(t, &s, 1, &loss);
		tap_ok(rc == T4R_OK && isfinite(loss), "a training step from the warm start: loss %.4f", loss);
		t4r_trainer_free(t);
	}

	/* new items from their neighbours (map: rows 4 (id 70) and 5 (id 80) new) */
	{
		/* u0: 1 4 2 | 3 3   u1: 4 3 | 5 1   u2: 2 5 4 1 | 2 2  (| = end of
		 * the training part): row 4 next to 1, 2 (u0), 3 (u1), 1 (u2; 5 is
		 * new); row 5 next to 2 (u2; 4 is new; its validation position in u1,
		 * next to 3, is not read) */
		int64_t		off[] = {0, 5, 9, 15};
		int32_t		items[] = {1, 4, 2, 3, 3, 4, 3, 5, 1, 2, 5, 4, 1, 2, 2};
		int32_t		items2[] = {1, 4, 2, 3, 3, 4, 3, 5, 1, 2, 5, 4, 1, 2, 2};
		double		ts[15];
		int64_t		ids[] = {0, 10, 30, 60, 70, 80};
		int64_t		uids[] = {1, 2, 3};
		t4r_dataset ds = {.n_users = 3, .n_items = 6, .item_ids = ids, .user_ids = uids,
		.seq_off = off, .seq_items = items, .seq_ts = ts, .n_interactions = 15};
		t4r_real   *e = t4r_model_tensor(m, "item_embedding.weight");
		size_t		eo = (size_t) (e - m->params);	/* the embedding's offset */
		t4r_real   *keep = malloc(m->layout.total * sizeof(t4r_real));
		const int	nb4[] = {1, 2, 3, 1};
		double		ref[64],
					len = 0,
					n2 = 0,
					worst = 0;
		int64_t		set;
		int			others = 1;

		for (int i = 0; i < 15; i++)
			ts[i] = 100.0 * i;
		memcpy(keep, m->params, m->layout.total * sizeof(t4r_real));
		for (int k = 0; k < d; k++)
			ref[k] = 0;
		for (int j = 0; j < 4; j++)
		{
			double		l = 0;

			for (int k = 0; k < d; k++)
			{
				ref[k] += keep[eo + (size_t) (nb4[j] * d + k)];
				l += (double) e[nb4[j] * d + k] * e[nb4[j] * d + k];
			}
			len += sqrt(l) / 4;
		}
		for (int k = 0; k < d; k++)
			n2 += ref[k] * ref[k];
		set = t4r_model_warm_new_items(m, map, &ds);
		for (int k = 0; k < d; k++)
		{
			double		want = ref[k] * len / sqrt(n2),
						got4 = e[4 * d + k],
						want5 = e[2 * d + k];

			worst = fmax(worst, fabs(got4 - want) / (fabs(want) + 1e-3));
			worst = fmax(worst, fabs(e[5 * d + k] - want5) / (fabs(want5) + 1e-3));
		}
		tap_ok(set == 2 && worst < 1e-5,
			   "new items from their known neighbours in the training parts: 2 rows set (%lld), rel. error %.2g",
			   (long long) set, worst);
		for (size_t i = 0; i < m->layout.total; i++)
		{
			if (i >= eo + 4 * (size_t) d && i < eo + 6 * (size_t) d)
				continue;
			if (m->params[i] != keep[i])
				others = 0;
		}
		tap_ok(others, "every other parameter (known items' rows, padding, other tensors) unchanged");
		/* row 5 only next to new or validation items: kept */
		memcpy(m->params, keep, m->layout.total * sizeof(t4r_real));
		items2[9] = 4;			/* u2: 4 5 4 1 */
		ds.seq_items = items2;
		set = t4r_model_warm_new_items(m, map, &ds);
		tap_ok(set == 1 && memcmp(e + 5 * d, keep + eo + 5 * d, d * sizeof(t4r_real)) == 0,
			   "a new item without a known neighbour keeps its initialisation (%lld row set)", (long long) set);
		ds.n_items = 5;
		memcpy(m->params, keep, m->layout.total * sizeof(t4r_real));
		set = t4r_model_warm_new_items(m, map, &ds);
		tap_ok(set == T4R_EINVAL && same_params(m, keep), "a dataset of another vocabulary size: T4R_EINVAL, unchanged");
		free(keep);
	}

	free(before);
	t4r_model_free(parent);
	t4r_model_free(m);
	t4r_model_free(fresh);
	return tap_done();
}
