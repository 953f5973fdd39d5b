/*
 * test_eval_users.c - per-user leave-one-out ranks (src/core/evaluate.c,
 * issue 12 part 3) against plain references: each rank equals a brute-force
 * count over scores from t4r_infer (one sequence at a time), for the model
 * (with exact score ties too) and for the most-popular baseline (counts by
 * hand); the means of HR/NDCG/MRR from the ranks equal t4r_evaluate's; the
 * users are those with >= 3 interactions; errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tim4rec.h"
#include "ops.h"
#include "tap.h"

static t4r_dataset *
make_dataset(uint64_t seed, int nusers, int nitems, int maxlen)
{
	t4r_rng		r;
	size_t		cap = (size_t) nusers * maxlen,
				n = 0;
	int64_t    *us = malloc(cap * sizeof(int64_t)),
			   *it = malloc(cap * sizeof(int64_t));
	double	   *ts = malloc(cap * sizeof(double));
	t4r_dataset *ds = NULL;
	char		err[256];

	t4r_rng_seed(&r, seed);
	for (int u = 0; u < nusers; u++)
	{
		/* some users with 1-2 interactions: no target, not evaluated */
		int			m = 1 + (int) t4r_rng_below(&r, maxlen);
		double		t = 1e6 * t4r_rng_u01(&r);

		for (int k = 0; k < m; k++)
		{
			t += 1 + 1000 * t4r_rng_u01(&r);
			us[n] = 1000 + 7 * u;
			it[n] = 1 + (int64_t) t4r_rng_below(&r, nitems);
			ts[n] = t;
			n++;
		}
	}
	if (t4r_dataset_build(us, it, ts, NULL, n, 1, 1, &ds, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("dataset: %s", err);
		ds = NULL;
	}
	free(us);
	free(it);
	free(ts);
	return ds;
}

static t4r_model *
make_model(int V, uint64_t seed)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "movielens");
	c.hidden_size = 16;
	c.head_dim = 8;
	c.d_state = 8;
	c.max_seq_len = 12;
	c.chunk_size = 4;
	c.num_layers = 2;
	c.n_items = V;
	c.seed = seed;
	if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("model: %s", err);
		return NULL;
	}
	t4r_model_init(m, seed);
	return m;
}

/* plain reference: 0-based rank of row t, ties by row, rows 1..V-1 */
static int64_t
brute_rank(const double *s, int V, int t)
{
	int64_t		c = 0;

	if (isnan(s[t]))
		return V;
	for (int r = 1; r < V; r++)
		if (r != t && (s[r] > s[t] || (s[r] == s[t] && r < t)))
			c++;
	return c;
}

static int
cancel_now(void *ud)
{
	return 1;
}

int
main(void)
{
	t4r_dataset *ds = make_dataset(77, 1500, 90, 22);
	t4r_model  *m = ds ? make_model(ds->n_items, 3) : NULL;
	t4r_infer_ctx *ctx = NULL;
	int64_t    *users,
			   *ranks;
	int			ks[3] = {1, 10, 50};

	if (!m || t4r_infer_ctx_create(m, &ctx) != T4R_OK)
	{
		tap_ok(0, "dataset and model");
		return tap_done();
	}
	users = malloc(ds->n_users * sizeof(int64_t));
	ranks = malloc(ds->n_users * sizeof(int64_t));

	for (int pass = 0; pass < 3; pass++)
	{
		int			split = pass == 0 ? T4R_SPLIT_VALID : T4R_SPLIT_TEST;
		double	   *sc = malloc(ds->n_items * sizeof(double));
		t4r_real   *fs = malloc(ds->n_items * sizeof(t4r_real));
		t4r_real   *hid = malloc(m->dims.d * sizeof(t4r_real));
		int64_t		n = -1,
					expect_n = 0;
		int			ok_users = 1,
					ok_ranks = 1,
					ok_means = 1,
					ties = 0;

		if (pass == 2)
		{
			/* exact ties: all-zero embeddings score exactly 0 */
			t4r_real   *E = t4r_model_tensor(m, "item_embedding.weight");

			for (int q = 2; q < ds->n_items; q += 2)
				memset(E + (size_t) q * m->dims.d, 0, m->dims.d * sizeof(t4r_real));
		}
		for (int th = 1; th <= 2; th++)
		{
			int64_t		i = 0;

			tap_ok(t4r_evaluate_ranks(m, ds, split, th, NULL, NULL, NULL, users, ranks, &n) == T4R_OK,
				   "ranks computed (%s, %d thread%s)", pass == 0 ? "valid" : pass == 1 ? "test" : "test with tied scores",
				   th, th > 1 ? "s" : "");
			expect_n = 0;
			for (int64_t u = 0; u < ds->n_users; u++)
			{
				int64_t		off = ds->seq_off[u],
							mu = ds->seq_off[u + 1] - off;
				int64_t		p,
							st;

				if (mu < 3)
					continue;
				expect_n++;
				if (i >= n || users[i] != u)
				{
					ok_users = 0;
					break;
				}
				p = off + mu - (split == T4R_SPLIT_VALID ? 2 : 1);
				st = p - off > 12 ? p - 12 : off;
				if (t4r_infer(ctx, ds->seq_items + st, ds->seq_ts + st, (int) (p - st), hid, fs) != T4R_OK)
					ok_ranks = 0;
				for (int q = 0; q < ds->n_items; q++)
					sc[q] = fs[q];
				for (int q = 1; q < ds->n_items; q++)
					ties += q != ds->seq_items[p] && sc[q] == sc[ds->seq_items[p]];
				if (ranks[i] != brute_rank(sc, ds->n_items, ds->seq_items[p]))
					ok_ranks = 0;
				i++;
			}
			ok_users &= n == expect_n && i == n;
			{
				double		hr[3],
							nd[3],
							mr[3],
							sh[3] = {0},
							sn[3] = {0},
							sm[3] = {0};

				ok_means &= t4r_evaluate(m, ds, split, ks, 3, th, NULL, NULL, hr, nd, mr) == T4R_OK;
				for (int64_t j = 0; j < n; j++)
					for (int k = 0; k < 3; k++)
					{
						sh[k] += t4r_rank_hr(ranks[j], ks[k]);
						sn[k] += t4r_rank_ndcg(ranks[j], ks[k]);
						sm[k] += t4r_rank_mrr(ranks[j], ks[k]);
					}
				for (int k = 0; k < 3; k++)
					ok_means &= fabs(sh[k] / n - hr[k]) < 1e-12 && fabs(sn[k] / n - nd[k]) < 1e-12 &&
						fabs(sm[k] / n - mr[k]) < 1e-12;
			}
		}
		tap_ok(ok_users, "one row per user with >= 3 interactions, in dataset order (%lld of %lld users)",
			   (long long) expect_n, (long long) ds->n_users);
		tap_ok(ok_ranks, "every rank equals a brute-force count over t4r_infer scores%s",
			   pass == 2 ? " (with exact score ties, broken by row)" : "");
		if (pass == 2)
			tap_ok(ties > 0, "the tied-score pass has ties (%d)", ties);
		tap_ok(ok_means, "means of HR/NDCG/MRR@{1,10,50} from the ranks equal t4r_evaluate");
		free(sc);
		free(fs);
		free(hid);
	}

	/* most popular: ranks by training count, ties by row, by hand */
	{
		int64_t		n = 0;
		int			ok = t4r_evaluate_ranks(NULL, ds, T4R_SPLIT_TEST, 1, NULL, NULL, NULL, users, ranks, &n) == T4R_OK;
		double		hr[3],
					nd[3],
					mr[3],
					sn[3] = {0};

		for (int64_t j = 0; ok && j < n; j++)
		{
			int64_t		u = users[j],
						off = ds->seq_off[u],
						mu = ds->seq_off[u + 1] - off;
			int			t = ds->seq_items[off + mu - 1];
			int64_t		c = 0;

			for (int r = 1; r < ds->n_items; r++)
				c += r != t && (ds->item_count[r] > ds->item_count[t] ||
								(ds->item_count[r] == ds->item_count[t] && r < t));
			ok &= ranks[j] == c;
			for (int k = 0; k < 3; k++)
				sn[k] += t4r_rank_ndcg(ranks[j], ks[k]);
		}
		tap_ok(ok, "most-popular ranks equal the count by hand (training counts, ties by row)");
		ok = t4r_evaluate(NULL, ds, T4R_SPLIT_TEST, ks, 3, 1, NULL, NULL, hr, nd, mr) == T4R_OK;
		for (int k = 0; k < 3; k++)
			ok &= fabs(sn[k] / n - nd[k]) < 1e-12;
		tap_ok(ok, "most-popular mean NDCG@{1,10,50} from the ranks equals t4r_evaluate");
	}

	/* errors */
	{
		int64_t		n = 5;
		t4r_model  *m2 = make_model(ds->n_items + 1, 3);

		tap_ok(t4r_evaluate_ranks(m, ds, 9, 1, NULL, NULL, NULL, users, ranks, &n) == T4R_EINVAL &&
			   t4r_evaluate_ranks(m, ds, T4R_SPLIT_TEST, 0, NULL, NULL, NULL, users, ranks, &n) == T4R_EINVAL &&
			   t4r_evaluate_ranks(m, NULL, T4R_SPLIT_TEST, 1, NULL, NULL, NULL, users, ranks, &n) == T4R_EINVAL,
			   "bad split, thread count or dataset: T4R_EINVAL");
		tap_ok(m2 && t4r_evaluate_ranks(m2, ds, T4R_SPLIT_TEST, 1, NULL, NULL, NULL, users, ranks, &n) == T4R_EMISMATCH,
			   "a model with another vocabulary size: T4R_EMISMATCH");
		tap_ok(t4r_evaluate_ranks(m, ds, T4R_SPLIT_TEST, 1, cancel_now, NULL, NULL, users, ranks, &n) == T4R_ECANCELLED &&
			   n == 0, "the interrupt callback stops it (T4R_ECANCELLED, nothing counted)");
		t4r_model_free(m2);
	}
	free(users);
	free(ranks);
	t4r_infer_ctx_free(ctx);
	t4r_model_free(m);
	t4r_dataset_free(ds);
	return tap_done();
}
