/*
 * test_recbatch.c - t4r_rec_batch_run (tim4rec_recommend_all's scorer)
 * against the per-user path of tim4rec_recommend: t4r_infer on one
 * sequence, then t4r_topk with the same exclusions.  With the default
 * score mode the top-k rows and scores must be bitwise identical, for 1
 * and 3 threads, sequences shorter and longer than L, a partial last
 * micro-batch, and k larger than the eligible rows.  Bad input gives
 * T4R_EINVAL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x9E3779B97F4A7C15ULL
#include "tap.h"
#include "tim4rec.h"
#include "model_internal.h"


static t4r_model *
make_model(const char *preset, int is_time, int layers, int L, int V)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, preset);
	c.is_time = is_time;
	c.num_layers = layers;
	c.max_seq_len = L;
	c.n_items = V;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "model create: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, 7);
	for (size_t i = 0; i < m->layout.total; i++)
		m->params[i] += (t4r_real) (0.05 * (urand() - 0.5));
	return m;
}

/* ns sequences of random lengths 1..maxlen, exclusions = a random subset */
static void
check(const char *preset, int is_time, int layers, int L, int V, int ns, int maxlen, int k,
	  int threads)
{
	t4r_model  *m = make_model(preset, is_time, layers, L, V);
	t4r_infer_ctx *ctx = NULL;
	t4r_rec_batch *b = NULL;
	t4r_rec_job *jobs = calloc(ns, sizeof(t4r_rec_job));
	int32_t   **items = calloc(ns, sizeof(int32_t *));
	double	  **ts = calloc(ns, sizeof(double *));
	int32_t   **excl = calloc(ns, sizeof(int32_t *));
	int			kk = k < V - 1 ? k : V - 1;
	t4r_real   *sc = malloc(sizeof(t4r_real) * V);
	uint8_t    *mask = calloc(V, 1);
	int32_t    *rrows = malloc(sizeof(int32_t) * (kk + 1));
	t4r_real   *rvals = malloc(sizeof(t4r_real) * (kk + 1));
	int			same = 1,
				same_gemm = 1,
				ok;
	double		worst_gemm = 0;

	for (int i = 0; i < ns; i++)
	{
		int			n = 1 + (int) (urand() * maxlen);
		double		t0 = 9.7e8 + 1e7 * urand();
		int			ne = (int) (urand() * 4);

		items[i] = malloc(sizeof(int32_t) * n);
		ts[i] = malloc(sizeof(double) * n);
		excl[i] = malloc(sizeof(int32_t) * (n + ne + 1));
		for (int j = 0; j < n; j++)
		{
			items[i][j] = 1 + (int32_t) (urand() * (V - 1));
			if (urand() > 0.2)
				t0 += floor(1 + 3600 * urand());
			ts[i][j] = t0;
			excl[i][j] = items[i][j];
		}
		for (int j = 0; j < ne; j++)
			excl[i][n + j] = 1 + (int32_t) (urand() * (V - 1));
		jobs[i].seq.items = items[i];
		jobs[i].seq.ts = ts[i];
		jobs[i].seq.n = n;
		/* every other job excludes its items (exclude_seen) */
		jobs[i].exclude = i % 2 ? excl[i] : NULL;
		jobs[i].nexclude = i % 2 ? n + ne : 0;
		jobs[i].rows = malloc(sizeof(int32_t) * (kk + 1));
		jobs[i].vals = malloc(sizeof(t4r_real) * (kk + 1));
	}
	ok = t4r_infer_ctx_create(m, &ctx) == T4R_OK && t4r_rec_batch_create(m, threads, &b) == T4R_OK;
	ok = ok && t4r_rec_batch_run(b, jobs, ns, k) == T4R_OK;
	for (int i = 0; ok && i < ns; i++)
	{
		int			cnt;

		ok = t4r_infer(ctx, items[i], ts[i], jobs[i].seq.n, NULL, sc) == T4R_OK;
		for (int x = 0; x < jobs[i].nexclude; x++)
			mask[jobs[i].exclude[x]] = 1;
		cnt = t4r_topk(sc, V, k, mask, rrows, rvals);
		memset(mask, 0, V);
		if (cnt != jobs[i].count || memcmp(rrows, jobs[i].rows, sizeof(int32_t) * cnt) != 0 ||
			memcmp(rvals, jobs[i].vals, sizeof(t4r_real) * cnt) != 0)
			same = 0;
	}
	tap_ok(ok && same,
		   "%s, is_time %d, %d layer(s), L %d, V %d, %d sequences up to %d long, k %d, %d thread(s): "
		   "batched top-k == t4r_infer + t4r_topk bitwise", preset, is_time, layers, L, V, ns,
		   maxlen, k, threads);
	/* the one-GEMM score block: same items here, scores within float rounding */
	ok = ok && t4r_rec_batch_set_scores(b, T4R_REC_PACKED) == T4R_OK;
	if (ok)
	{
		t4r_rec_job *j2 = calloc(ns, sizeof(t4r_rec_job));

		for (int i = 0; i < ns; i++)
		{
			j2[i] = jobs[i];
			j2[i].rows = malloc(sizeof(int32_t) * (kk + 1));
			j2[i].vals = malloc(sizeof(t4r_real) * (kk + 1));
		}
		ok = t4r_rec_batch_run(b, j2, ns, k) == T4R_OK;
		for (int i = 0; ok && i < ns; i++)
		{
			for (int r = 0; r < j2[i].count; r++)
			{
				double		e = fabs((double) j2[i].vals[r] - jobs[i].vals[r]) /
					(fabs((double) jobs[i].vals[r]) + 1e-6);

				if (e > worst_gemm)
					worst_gemm = e;
			}
			if (j2[i].count != jobs[i].count ||
				memcmp(j2[i].vals, jobs[i].vals, sizeof(t4r_real) * j2[i].count) != 0)
				same_gemm = 0;
			free(j2[i].rows);
			free(j2[i].vals);
		}
		free(j2);
		tap_ok(ok && worst_gemm < 1e-5, "packed mode: top-k scores within %.3g relative (%s)",
			   worst_gemm, same_gemm ? "bitwise equal here" : "not bitwise equal");
	}
	else
		tap_ok(0, "packed mode");
	for (int i = 0; i < ns; i++)
	{
		free(items[i]);
		free(ts[i]);
		free(excl[i]);
		free(jobs[i].rows);
		free(jobs[i].vals);
	}
	free(items);
	free(ts);
	free(excl);
	free(jobs);
	free(sc);
	free(mask);
	free(rrows);
	free(rvals);
	t4r_rec_batch_free(b);
	t4r_infer_ctx_free(ctx);
	t4r_model_free(m);
}

int
main(void)
{
	check("movielens", 1, 2, 50, 301, 53, 80, 10, 1);
	check("movielens", 1, 2, 50, 301, 53, 80, 10, 3);
	check("movielens", 0, 1, 20, 97, 40, 30, 7, 2);
	check("amazon", 1, 2, 30, 211, 35, 45, 20, 2);
	/* k beyond the eligible rows: everything not excluded */
	check("movielens", 1, 1, 10, 12, 20, 12, 50, 2);
	/* bad input */
	{
		t4r_model  *m = make_model("movielens", 1, 1, 10, 20);
		t4r_rec_batch *b = NULL;
		int32_t		it[2] = {1, 2},
					bad_ex[1] = {20},
					rows[5];
		double		t[2] = {1e9, 1e9 + 5};
		t4r_real	vals[5];
		t4r_rec_job j = {{it, t, 2, 0, NULL, 0}, NULL, 0, rows, vals, 0};

		tap_ok(t4r_rec_batch_create(m, 2, &b) == T4R_OK, "create");
		tap_ok(t4r_rec_batch_run(b, &j, 1, 5) == T4R_OK && j.count == 5, "one job");
		j.seq.n = 0;
		tap_ok(t4r_rec_batch_run(b, &j, 1, 5) == T4R_EINVAL, "empty sequence -> T4R_EINVAL");
		j.seq.n = 2;
		j.exclude = bad_ex;
		j.nexclude = 1;
		tap_ok(t4r_rec_batch_run(b, &j, 1, 5) == T4R_EINVAL, "exclusion row >= V -> T4R_EINVAL");
		tap_ok(t4r_rec_batch_run(b, NULL, 0, 5) == T4R_OK, "no jobs");
		t4r_rec_batch_free(b);
		t4r_model_free(m);
	}
	return tap_done();
}
