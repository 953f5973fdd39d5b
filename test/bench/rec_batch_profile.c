/*
 * rec_batch_profile.c - the core part of tim4rec_recommend_all on an
 * ML-1M-sized workload: 6,040 sequences with test/bench/ml1m_like.sql's
 * length distribution (20 + LogNormal(median 76, sigma 1.137), capped at
 * L = 200), movielens preset, V = 3,707, top 10 with the sequence's items
 * excluded.  Times (wall and process CPU) for
 *   - t4r_infer + t4r_topk per sequence (tim4rec_recommend's arithmetic),
 *   - t4r_rec_batch_run in T4R_REC_EXACT mode (tim4rec_recommend_all),
 *   - t4r_rec_batch_run in T4R_REC_PACKED mode,
 * in batches of 1,024, and whether the exact mode's output equals the
 * per-sequence path bit for bit.
 *   make rec-batch-profile  (REC_PROFILE_THREADS=n, default 2)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "tim4rec.h"
#define TAP_RNG_SEED 0x853C49E6748FEA9BULL
#include "tap.h"

static double
now(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* uniform in (0, 1): tap.h's generator, half a step off zero */
static double
urand_open(void)
{
	return ((tap_rng_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

int
main(int argc, char **argv)
{
	int			V = 3707,
				ns = 6040,
				k = 10,
				threads = argc > 1 ? atoi(argv[1]) : 2;
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];
	t4r_rec_job *jobs = calloc(ns, sizeof(*jobs));
	int32_t    *rrows = malloc(sizeof(int32_t) * k);
	t4r_real   *rvals = malloc(sizeof(t4r_real) * k);
	t4r_real   *sc = malloc(sizeof(t4r_real) * V);
	uint8_t    *mask = calloc(V, 1);
	t4r_infer_ctx *ctx = NULL;
	t4r_rec_batch *b = NULL;
	long		tot = 0;

	t4r_config_preset(&c, "movielens");
	c.n_items = V;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	t4r_model_init(m, 7);
	for (int i = 0; i < ns; i++)
	{
		double		z = sqrt(-2 * log(urand_open())) * cos(6.283185307179586 * urand_open());
		int			n = 20 + (int) floor(exp(log(76) + 1.137 * z));
		int32_t    *it;
		double	   *ts;

		if (n > c.max_seq_len)
			n = c.max_seq_len;
		it = malloc(sizeof(int32_t) * n);
		ts = malloc(sizeof(double) * n);
		for (int j = 0; j < n; j++)
		{
			it[j] = 1 + (int32_t) (urand_open() * urand_open() * (V - 1));
			ts[j] = 9.8e8 + j * (60 + 600 * urand_open());
		}
		jobs[i].seq.items = it;
		jobs[i].seq.ts = ts;
		jobs[i].seq.n = n;
		jobs[i].exclude = it;
		jobs[i].nexclude = n;
		jobs[i].rows = malloc(sizeof(int32_t) * k);
		jobs[i].vals = malloc(sizeof(t4r_real) * k);
		tot += n;
	}
	printf("# %d sequences, mean length %.1f, V %d, k %d, %d thread(s)\n", ns, (double) tot / ns, V, k, threads);
	openblas_set_num_threads(1);
	t4r_infer_ctx_create(m, &ctx);
	t4r_rec_batch_create(m, threads, &b);
	for (int round = 0; round < 3; round++)
	{
		double		w0 = now(CLOCK_MONOTONIC),
					c0 = now(CLOCK_PROCESS_CPUTIME_ID);

		for (int i = 0; i < ns; i++)
		{
			t4r_infer(ctx, jobs[i].seq.items, jobs[i].seq.ts, jobs[i].seq.n, NULL, sc);
			for (int x = 0; x < jobs[i].nexclude; x++)
				mask[jobs[i].exclude[x]] = 1;
			t4r_topk(sc, V, k, mask, rrows, rvals);
			memset(mask, 0, V);
		}
		printf("t4r_infer + t4r_topk, 1 thread: wall %.3f s, CPU %.3f s\n",
			   now(CLOCK_MONOTONIC) - w0, now(CLOCK_PROCESS_CPUTIME_ID) - c0);
		for (int mode = T4R_REC_EXACT; mode <= T4R_REC_PACKED; mode++)
		{
			t4r_rec_batch_set_scores(b, mode);
			w0 = now(CLOCK_MONOTONIC);
			c0 = now(CLOCK_PROCESS_CPUTIME_ID);
			for (int j0 = 0; j0 < ns; j0 += 1024)
				t4r_rec_batch_run(b, jobs + j0, ns - j0 < 1024 ? ns - j0 : 1024, k);
			printf("t4r_rec_batch_run %s, %d thread(s): wall %.3f s, CPU %.3f s\n",
				   mode == T4R_REC_EXACT ? "exact " : "packed", threads,
				   now(CLOCK_MONOTONIC) - w0, now(CLOCK_PROCESS_CPUTIME_ID) - c0);
		}
	}
	/* exact mode == per-sequence path, bitwise */
	{
		int			same = 1;

		t4r_rec_batch_set_scores(b, T4R_REC_EXACT);
		t4r_rec_batch_run(b, jobs, ns, k);
		for (int i = 0; i < ns && same; i++)
		{
			int			cnt;

			t4r_infer(ctx, jobs[i].seq.items, jobs[i].seq.ts, jobs[i].seq.n, NULL, sc);
			for (int x = 0; x < jobs[i].nexclude; x++)
				mask[jobs[i].exclude[x]] = 1;
			cnt = t4r_topk(sc, V, k, mask, rrows, rvals);
			memset(mask, 0, V);
			same = cnt == jobs[i].count && memcmp(rrows, jobs[i].rows, sizeof(int32_t) * cnt) == 0 &&
				memcmp(rvals, jobs[i].vals, sizeof(t4r_real) * cnt) == 0;
		}
		printf("exact mode == t4r_infer + t4r_topk bitwise for all %d sequences: %s\n", ns, same ? "yes" : "NO");
	}
	return 0;
}
