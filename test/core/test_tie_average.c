/*
 * test_tie_average.c - the model key tie_average (src/core/infer.c):
 *  - t4r_tie_order: order 0 is the given one; every order is a permutation
 *    that keeps each run of equal times in place as a set; the same call
 *    gives the same order; some order differs from the given one;
 *  - a history without equal times in its window (none at all, or only
 *    before the last L items) scores bit for bit as with tie_average 1;
 *  - a history with them scores as the plain reference: the mean over
 *    k = 0 .. K-1 of the scores of the same weights without the option on
 *    the window in order k;
 *  - t4r_infer_batch (mixed histories), t4r_infer_topk and t4r_infer agree.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "tim4rec.h"

#define V 30
#define L 8
#define K 5
#define NH 4

static t4r_model *
make(int tie_average)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "amazon");
	c.hidden_size = 16;
	c.head_dim = 16;
	c.num_layers = 2;
	c.max_seq_len = L;
	c.n_items = V;
	c.seed = 99;
	c.tie_average = tie_average;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "model create: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, 7);
	return m;
}

static double
max_rel(const t4r_real *a, const t4r_real *b, int n)
{
	double		w = 0,
				s = 0;

	for (int i = 0; i < n; i++)
	{
		w = fmax(w, fabs((double) a[i] - b[i]));
		s = fmax(s, fabs((double) b[i]));
	}
	return w / (s > 0 ? s : 1);
}

static void
scores1(t4r_infer_ctx *ctx, const int32_t *it, const double *ts, int n, t4r_real *out)
{
	if (t4r_infer(ctx, it, ts, n, NULL, out) != T4R_OK)
	{
		fprintf(stderr, "t4r_infer failed\n");
		exit(2);
	}
}

int
main(void)
{
	/* h0: no equal times; h1: runs of 3 and 2; h2: 12 items, equal times
	 * only among the first 4 (outside the window of 8); h3: 12 items, a run
	 * crossing the window's start and a run of 4 inside it */
	static const int32_t it0[6] = {3, 7, 1, 9, 12, 4};
	static const double ts0[6] = {10, 20, 30, 40, 50, 60};
	static const int32_t it1[7] = {5, 8, 2, 11, 6, 14, 3};
	static const double ts1[7] = {10, 20, 20, 20, 30, 40, 40};
	static const int32_t it2[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	static const double ts2[12] = {5, 5, 5, 5, 6, 7, 8, 9, 10, 11, 12, 13};
	static const int32_t it3[12] = {13, 17, 21, 25, 29, 2, 4, 6, 8, 10, 12, 14};
	static const double ts3[12] = {1, 2, 3, 3, 3, 4, 5, 6, 6, 6, 6, 7};
	const int32_t *its[NH] = {it0, it1, it2, it3};
	const double *tss[NH] = {ts0, ts1, ts2, ts3};
	int			ns[NH] = {6, 7, 12, 12};
	t4r_model  *m1 = make(1),
			   *mk = make(K);
	t4r_infer_ctx *c1 = NULL,
			   *ck = NULL;
	t4r_real	s1[V],
				sk[V],
				ref[V],
				tmp[V],
				batch[NH * V];
	t4r_sample	smp[NH];
	int			ok;

	memcpy(mk->params, m1->params, sizeof(t4r_real) * m1->layout.total);
	if (t4r_infer_ctx_create(m1, &c1) != T4R_OK || t4r_infer_ctx_create(mk, &ck) != T4R_OK)
	{
		tap_ok(0, "contexts");
		return tap_done();
	}

	/* t4r_tie_order */
	{
		int32_t		o[12],
					o2[12];
		int			perm_ok = 1,
					differs = 0;

		t4r_tie_order(99, 0, it3, ts3, 12, o);
		tap_ok(memcmp(o, it3, sizeof o) == 0, "order 0 is the given order");
		for (int k = 1; k < 20; k++)
		{
			t4r_tie_order(99, k, it3, ts3, 12, o);
			t4r_tie_order(99, k, it3, ts3, 12, o2);
			perm_ok &= memcmp(o, o2, sizeof o) == 0;
			differs |= memcmp(o, it3, sizeof o) != 0;
			/* each position holds an item of the same time in the input */
			for (int i = 0; i < 12; i++)
			{
				int			found = 0;

				for (int j = 0; j < 12; j++)
					found |= o[i] == it3[j] && ts3[i] == ts3[j];
				perm_ok &= found;
			}
			/* and each input item occurs once (the items are distinct) */
			for (int j = 0; j < 12; j++)
			{
				int			cnt = 0;

				for (int i = 0; i < 12; i++)
					cnt += o[i] == it3[j];
				perm_ok &= cnt == 1;
			}
		}
		tap_ok(perm_ok, "orders 1..19 are repeatable permutations within runs of equal times");
		tap_ok(differs, "some order differs from the given one");
	}

	/* no equal times in the window: bit for bit as without the option */
	for (int h = 0; h < NH; h += 2)
	{
		scores1(c1, its[h], tss[h], ns[h], s1);
		scores1(ck, its[h], tss[h], ns[h], sk);
		tap_ok(memcmp(s1, sk, sizeof s1) == 0,
			   "history %d (no equal times in its window): the same scores bit for bit", h);
	}

	/* equal times: the mean of the K orders' scores */
	for (int h = 1; h < NH; h += 2)
	{
		int			w0 = ns[h] > L ? ns[h] - L : 0,
					n = ns[h] - w0;
		int32_t		o[L];
		double		r;

		for (int v = 0; v < V; v++)
			ref[v] = 0;
		for (int k = 0; k < K; k++)
		{
			t4r_tie_order(99, k, its[h] + w0, tss[h] + w0, n, o);
			scores1(c1, o, tss[h] + w0, n, tmp);
			for (int v = 0; v < V; v++)
				ref[v] += tmp[v] / K;
		}
		scores1(c1, its[h], tss[h], ns[h], s1);
		scores1(ck, its[h], tss[h], ns[h], sk);
		r = max_rel(sk, ref, V);
		tap_ok(r < 1e-5, "history %d: scores = the mean over %d orders (max rel. error %.2g)", h, K, r);
		tap_ok(max_rel(s1, ref, V) > 1e-4, "history %d: and they differ from the given order's", h);
	}

	/* t4r_infer_batch and t4r_infer_topk agree with t4r_infer */
	for (int h = 0; h < NH; h++)
	{
		smp[h].items = its[h];
		smp[h].ts = tss[h];
		smp[h].n = ns[h];
		smp[h].target = 0;
		smp[h].targets = NULL;
		smp[h].loss_from = 0;
		smp[h].soft = NULL;
		smp[h].nsoft = 0;
	}
	ok = t4r_infer_batch(mk, smp, NH, 2, NULL, batch) == T4R_OK;
	for (int h = 0; ok && h < NH; h++)
	{
		scores1(ck, its[h], tss[h], ns[h], sk);
		ok = max_rel(batch + h * V, sk, V) < 1e-5;
	}
	tap_ok(ok, "t4r_infer_batch over mixed histories = t4r_infer");
	{
		int32_t		rows[5];
		t4r_real	vals[5];
		int			got,
					top_ok = 1;

		scores1(ck, it3, ts3, 12, sk);
		got = t4r_infer_topk(ck, it3, ts3, 12, 5, NULL, 0, rows, vals);
		top_ok = got == 5;
		for (int i = 0; top_ok && i < 5; i++)
		{
			int			above = 0;

			/* rows[i] has exactly i scores above it (no ties in these;
			 * row 0, padding, is never recommended) */
			for (int v = 1; v < V; v++)
				above += sk[v] > sk[rows[i]];
			top_ok = above == i && fabs((double) vals[i] - sk[rows[i]]) <= 1e-6 * fabs((double) sk[rows[i]]) + 1e-7;
		}
		tap_ok(top_ok, "t4r_infer_topk returns the top 5 of the averaged scores");
	}

	t4r_infer_ctx_free(c1);
	t4r_infer_ctx_free(ck);
	t4r_model_free(m1);
	t4r_model_free(mk);
	return tap_done();
}
