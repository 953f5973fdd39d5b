/*
 * infer_profile.c - single-sequence inference latency of the core
 * (t4r_infer: hidden + scores of all V rows, eval mode, one thread).
 *
 *   build/infer_profile [--preset movielens|amazon] [--calls N]
 *                       [--lens 1,10,50,100,200] [--dump FILE] [--check FILE]
 *                       [--loop N_LEN SECONDS]
 *
 * For each length n: median (and p90/p99) CPU time of N calls (default 500)
 * measured with CLOCK_THREAD_CPUTIME_ID (the machine is shared and loaded;
 * wall time would count other processes), plus the wall-clock median.
 * Model: the preset with docs/MODEL.md's initialisation from a fixed seed,
 * V = 3707 rows (MovieLens-1M's 3,706 items + padding), random items and
 * increasing timestamps with realistic gaps.
 * --dump FILE writes hidden + scores of the test sequences (one per length)
 * as raw floats; --check FILE compares against such a dump and prints the
 * largest absolute difference (to keep optimisations exact).
 * --loop N SECONDS only calls t4r_infer at length N for that long (for perf).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tim4rec.h"
#include "tap.h"				/* tap_rng_u64: test data independent of the core's RNG */
#include "ops.h"				/* t4r_rng, cblas.h (OpenBLAS) */

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_dbl(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static double
pct(double *v, int n, double q)
{
	int			i = (int) (q * (n - 1) + 0.5);

	return v[i];
}


int
main(int argc, char **argv)
{
	const char *preset = "movielens";
	const char *dump = NULL,
			   *check = NULL;
	int			calls = 500;
	int			lens[32] = {1, 10, 50, 100, 200};
	int			nlens = 5;
	int			loop_n = 0;
	double		loop_s = 0;
	t4r_config	c;
	t4r_model  *m;
	t4r_infer_ctx *ctx;
	char		err[256];
	int			rc,
				V,
				d,
				maxn = 0;
	int32_t    *items;
	double	   *ts;
	float	   *hidden,
			   *scores;
	double	   *tc,
			   *tw;
	FILE	   *df = NULL,
			   *cf = NULL;
	double		maxdiff = 0;

	for (int i = 1; i < argc; i++)
	{
		if (!strcmp(argv[i], "--preset") && i + 1 < argc)
			preset = argv[++i];
		else if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			calls = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump = argv[++i];
		else if (!strcmp(argv[i], "--check") && i + 1 < argc)
			check = argv[++i];
		else if (!strcmp(argv[i], "--loop") && i + 2 < argc)
		{
			loop_n = atoi(argv[++i]);
			loop_s = atof(argv[++i]);
		}
		else if (!strcmp(argv[i], "--lens") && i + 1 < argc)
		{
			char	   *p = argv[++i];

			nlens = 0;
			while (*p && nlens < 32)
			{
				lens[nlens++] = (int) strtol(p, &p, 10);
				if (*p == ',')
					p++;
			}
		}
		else
		{
			fprintf(stderr, "usage: %s [--preset P] [--calls N] [--lens a,b,..] "
					"[--dump F] [--check F] [--loop N SECONDS]\n", argv[0]);
			return 2;
		}
	}
	if (calls < 1)
		calls = 1;
	openblas_set_num_threads(1);

	if (t4r_config_preset(&c, preset) != T4R_OK)
	{
		fprintf(stderr, "unknown preset %s\n", preset);
		return 2;
	}
	c.n_items = strcmp(preset, "amazon") == 0 ? 12102 : 3707;
	rc = t4r_model_create(&c, &m, err, sizeof(err));
	if (rc != T4R_OK)
	{
		fprintf(stderr, "t4r_model_create: %d %s\n", rc, err);
		return 1;
	}
	t4r_model_init(m, 42);
	V = m->dims.V;
	d = m->dims.d;
	if (t4r_infer_ctx_create(m, &ctx) != T4R_OK)
	{
		fprintf(stderr, "t4r_infer_ctx_create failed\n");
		return 1;
	}
	for (int i = 0; i < nlens; i++)
		if (lens[i] > maxn)
			maxn = lens[i];
	if (loop_n > maxn)
		maxn = loop_n;
	items = malloc(sizeof(int32_t) * maxn);
	ts = malloc(sizeof(double) * maxn);
	hidden = malloc(sizeof(float) * d);
	scores = malloc(sizeof(float) * V);
	tc = malloc(sizeof(double) * calls);
	tw = malloc(sizeof(double) * calls);
	{
		double		t = 978300760.0;

		for (int l = 0; l < maxn; l++)
		{
			items[l] = 1 + (int32_t) (tap_rng_u64() % (uint64_t) (V - 1));
			t += (double) (tap_rng_u64() % 100000) * ((tap_rng_u64() & 3) == 0 ? 10 : 1);
			ts[l] = t;
		}
	}

	if (loop_n > 0)
	{
		double		t0 = wall_now();
		long		k = 0;

		while (wall_now() - t0 < loop_s)
		{
			t4r_infer(ctx, items, ts, loop_n, hidden, scores);
			k++;
		}
		printf("%ld calls at n = %d\n", k, loop_n);
		return 0;
	}

	if (dump && !(df = fopen(dump, "wb")))
	{
		perror(dump);
		return 1;
	}
	if (check && !(cf = fopen(check, "rb")))
	{
		perror(check);
		return 1;
	}

	printf("# t4r_infer, preset %s (d = %d, L = %d, V = %d), one thread, %d calls per length\n",
		   preset, d, m->dims.L, V, calls);
	printf("%6s %12s %12s %12s %12s\n", "n", "cpu_p50_ms", "cpu_p90_ms", "cpu_p99_ms",
		   "wall_p50_ms");
	for (int li = 0; li < nlens; li++)
	{
		int			n = lens[li];

		/* warm-up */
		for (int k = 0; k < 5; k++)
			t4r_infer(ctx, items, ts, n, hidden, scores);
		for (int k = 0; k < calls; k++)
		{
			double		w0 = wall_now(),
						c0 = cpu_now();

			rc = t4r_infer(ctx, items, ts, n, hidden, scores);
			tc[k] = cpu_now() - c0;
			tw[k] = wall_now() - w0;
			if (rc != T4R_OK)
			{
				fprintf(stderr, "t4r_infer failed: %d\n", rc);
				return 1;
			}
		}
		qsort(tc, calls, sizeof(double), cmp_dbl);
		qsort(tw, calls, sizeof(double), cmp_dbl);
		printf("%6d %12.4f %12.4f %12.4f %12.4f\n", n, pct(tc, calls, 0.5) * 1e3,
			   pct(tc, calls, 0.9) * 1e3, pct(tc, calls, 0.99) * 1e3,
			   pct(tw, calls, 0.5) * 1e3);
		if (df)
		{
			fwrite(hidden, sizeof(float), d, df);
			fwrite(scores, sizeof(float), V, df);
		}
		if (cf)
		{
			float	   *ref = malloc(sizeof(float) * (d + V));

			if (fread(ref, sizeof(float), d + V, cf) != (size_t) (d + V))
			{
				fprintf(stderr, "%s: short file\n", check);
				return 1;
			}
			for (int i = 0; i < d; i++)
				maxdiff = fmax(maxdiff, fabs((double) ref[i] - hidden[i]));
			for (int i = 0; i < V; i++)
				maxdiff = fmax(maxdiff, fabs((double) ref[d + i] - scores[i]));
			free(ref);
		}
	}
	if (df)
		fclose(df);
	if (cf)
	{
		fclose(cf);
		printf("# max |difference| against %s: %.3g\n", check, maxdiff);
	}
	t4r_infer_ctx_free(ctx);
	t4r_model_free(m);
	free(items);
	free(ts);
	free(hidden);
	free(scores);
	free(tc);
	free(tw);
	return 0;
}
