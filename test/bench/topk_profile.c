/*
 * topk_profile.c - one recommendation's scoring and top k, two ways, on the
 * movielens preset (d 64, L 200): t4r_infer's full score vector + t4r_topk
 * with a V-byte exclusion mask (what tim4rec_recommend did before) against
 * t4r_infer_topk (scores in blocks of T4R_SCORE_BLOCK rows, a streamed top
 * k, an exclusion list: what it does now).  The two arms alternate call by
 * call on the same sequences; prints the median time per call of each and
 * their ratio for a few vocabulary sizes.  `make topk-profile`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tim4rec.h"

static double
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int
cmp_d(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	int			Vs[] = {3707, 50001, 200001};
	int			reps = argc > 1 ? atoi(argv[1]) : 200;

	printf("| V | full scores + t4r_topk, median us | t4r_infer_topk, median us | ratio |\n|--:|--:|--:|--:|\n");
	for (size_t vi = 0; vi < sizeof(Vs) / sizeof(Vs[0]); vi++)
	{
		t4r_config	c;
		t4r_model  *m = NULL;
		t4r_infer_ctx *ctx = NULL;
		char		err[256];
		int			V = Vs[vi],
					n = 50,
					k = 10;
		int32_t		items[50],
					ex[50],
					r[10];
		double		ts[50];
		t4r_real	v[10];
		t4r_real   *sc = malloc(sizeof(t4r_real) * V);
		uint8_t    *mask = calloc(V, 1);
		double	   *ta = malloc(sizeof(double) * reps),
				   *tb = malloc(sizeof(double) * reps);

		t4r_config_preset(&c, "movielens");
		c.n_items = V;
		if (t4r_model_create(&c, &m, err, sizeof(err)) != 0 || t4r_infer_ctx_create(m, &ctx) != 0)
		{
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		t4r_model_init(m, 7);
		for (int i = 0; i < reps; i++)
		{
			double		t0;

			for (int j = 0; j < n; j++)
			{
				items[j] = 1 + (int32_t) ((i * 7919L + j * 104729L) % (V - 1));
				ts[j] = 1.0e6 + 3600.0 * j;
				ex[j] = items[j];
			}
			t0 = now_us();
			for (int j = 0; j < n; j++)
				mask[ex[j]] = 1;
			t4r_infer(ctx, items, ts, n, NULL, sc);
			t4r_topk(sc, V, k, mask, r, v);
			for (int j = 0; j < n; j++)
				mask[ex[j]] = 0;
			ta[i] = now_us() - t0;
			t0 = now_us();
			t4r_infer_topk(ctx, items, ts, n, k, ex, n, r, v);
			tb[i] = now_us() - t0;
		}
		qsort(ta, reps, sizeof(double), cmp_d);
		qsort(tb, reps, sizeof(double), cmp_d);
		printf("| %d | %.1f | %.1f | %.3f |\n", V, ta[reps / 2], tb[reps / 2], tb[reps / 2] / ta[reps / 2]);
		free(sc);
		free(mask);
		free(ta);
		free(tb);
		t4r_infer_ctx_free(ctx);
		t4r_model_free(m);
	}
	return 0;
}
