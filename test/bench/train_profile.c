/*
 * train_profile.c - training throughput of the core for profiling
 * (t4r_trainer_step on one fixed batch of full-length samples).
 *
 *   build/train_profile [--threads T] [--batch B] [--steps N] [--seconds S]
 *                       [--preset movielens|amazon] [--warmup W]
 *                       [--no-peak] [--gemm-stats] [--dump FILE]
 *
 * Model: the preset (movielens: d = 64, L = 200; amazon: L = 50) with
 * V = 3707 rows (movielens) or 12102 (amazon), docs/MODEL.md's initialisation
 * from a fixed seed.  Batch: B (default 2048) samples of full length
 * n = L, random items and increasing timestamps, fixed seed.  Runs W
 * warm-up steps (default 1), then N steps (default 5), or as many steps as
 * fit in S seconds when --seconds is given (at least one).  Prints per step
 * the wall time, samples/s and useful GFLOP/s (test/bench/bench_flops.h,
 * the formula of `make bench`), the process CPU time per step (the machine
 * may be shared: CPU use below T x 100% means other processes took the
 * cores), and the medians; with the peak (default) also the square 2048^3
 * sgemm rate at T OpenBLAS threads and the ratio to 30% of it, and -
 * robust to a loaded machine - the useful FLOPs per CPU-second against the
 * one-thread 2048^3 and 16384x324x64 sgemm rates per CPU-second.
 *
 * --gemm-stats: every cblas_sgemm the core calls goes through a counting
 * wrapper (the binary is linked with -Wl,--wrap=cblas_sgemm); after the
 * timed steps it prints per call site (source line, via addr2line) the
 * number of calls, the largest shape, FLOPs per step, the CPU time inside
 * sgemm (thread CPU clock, summed over threads; meaningful on a loaded
 * machine) and the achieved GFLOP/s per CPU-second.  The wrapper adds two
 * thread-CPU-clock reads per call (a system call each, ~0.1-0.2 us; a few
 * per cent of a step at ~0.6 M calls/step).  Without the option the
 * wrapper only forwards the call.
 *
 * --dump FILE writes the parameters after the last step as raw floats (to
 * check that an optimisation keeps training bit-for-bit: same options,
 * compare the files with cmp).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

#include "tim4rec.h"
#include "ops.h"				/* t4r_rng, cblas.h (OpenBLAS) */
#include "bench_flops.h"		/* fwd_flops, sgemm_gflops */

static double
median_of(const double *v, int n)
{
	double	   *c = malloc(n * sizeof(double)),
				m;

	memcpy(c, v, n * sizeof(double));
	qsort(c, n, sizeof(double), bench_cmp_dbl);
	m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
	free(c);
	return m;
}

/* ------------------------------------------------------------------ */
/* sgemm call-site statistics (--gemm-stats)                           */
/* ------------------------------------------------------------------ */
#define GS_THREADS 16
#define GS_SITES 128

typedef struct gemm_site
{
	const void *ret;			/* return address inside the calling function */
	long		calls;
	double		flops;
	double		seconds;
	int			M, N, K, ta, tb;	/* the largest call's shape */
} gemm_site;

typedef struct gemm_tab
{
	gemm_site	s[GS_SITES];
	int			n;
	long		overflow;
	char		pad[64];
} gemm_tab;

static gemm_tab gs_tab[GS_THREADS];
static volatile int gs_on = 0;

void		__real_cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
							   const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N,
							   const blasint K, const float alpha, const float *A,
							   const blasint lda, const float *B, const blasint ldb,
							   const float beta, float *C, const blasint ldc);
void		__wrap_cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
							   const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N,
							   const blasint K, const float alpha, const float *A,
							   const blasint lda, const float *B, const blasint ldb,
							   const float beta, float *C, const blasint ldc);

void
__wrap_cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
				   const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N,
				   const blasint K, const float alpha, const float *A,
				   const blasint lda, const float *B, const blasint ldb,
				   const float beta, float *C, const blasint ldc)
{
	const void *ret;
	int			tid;
	gemm_tab   *tab;
	gemm_site  *site = NULL;
	struct timespec t0,
				t1;
	double		fl;

	if (!gs_on)
	{
		__real_cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	ret = __builtin_return_address(0);
	tid = omp_get_thread_num();
	tab = &gs_tab[tid < GS_THREADS ? tid : GS_THREADS - 1];
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	__real_cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	for (int i = 0; i < tab->n; i++)
		if (tab->s[i].ret == ret)
		{
			site = &tab->s[i];
			break;
		}
	if (!site)
	{
		if (tab->n == GS_SITES)
		{
			tab->overflow++;
			return;
		}
		site = &tab->s[tab->n++];
		memset(site, 0, sizeof(*site));
		site->ret = ret;
	}
	fl = 2.0 * M * N * K;
	site->calls++;
	site->flops += fl;
	site->seconds += (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
	if (fl >= 2.0 * site->M * site->N * site->K)
	{
		site->M = M;
		site->N = N;
		site->K = K;
		site->ta = ta == CblasTrans;
		site->tb = tb == CblasTrans;
	}
}

static int
cmp_site(const void *a, const void *b)
{
	const gemm_site *x = a,
			   *y = b;

	return (x->seconds < y->seconds) - (x->seconds > y->seconds);
}

/* "function file:line" of a code address in this executable (addr2line) */
static void
site_name(const void *addr, char *buf, size_t len)
{
	Dl_info		di;
	char		cmd[512],
				fn[256] = "?",
				fl[256] = "?";
	FILE	   *p;

	snprintf(buf, len, "%p", addr);
	if (!dladdr(addr, &di) || !di.dli_fname)
		return;
	/* the return address is one past the call: look up the call itself */
	snprintf(cmd, sizeof(cmd), "addr2line -f -i -e '%s' 0x%lx 2>/dev/null", di.dli_fname,
			 (unsigned long) ((uintptr_t) addr - (uintptr_t) di.dli_fbase - 1));
	p = popen(cmd, "r");
	if (!p)
		return;
	/* with -i the first pair is the innermost inlined frame (t4r_gemm in
	 * ops.h); keep the first frame outside ops.h */
	while (fgets(fn, sizeof(fn), p) && fgets(fl, sizeof(fl), p))
	{
		fn[strcspn(fn, "\n")] = 0;
		fl[strcspn(fl, "\n")] = 0;
		if (!strstr(fl, "ops.h"))
			break;
	}
	pclose(p);
	{
		const char *base = strrchr(fl, '/');
		char	   *disc = strstr(fl, " (discriminator");

		if (disc)
			*disc = 0;
		snprintf(buf, len, "%s %s", fn, base ? base + 1 : fl);
	}
}

static void
gemm_report(int steps, double step_cpu)
{
	gemm_site	all[GS_SITES * 2];
	int			n = 0;
	double		tf = 0,
				tsec = 0;
	long		tcalls = 0,
				ovf = 0;

	for (int t = 0; t < GS_THREADS; t++)
	{
		ovf += gs_tab[t].overflow;
		for (int i = 0; i < gs_tab[t].n; i++)
		{
			gemm_site  *s = &gs_tab[t].s[i],
					   *d = NULL;

			for (int j = 0; j < n; j++)
				if (all[j].ret == s->ret)
					d = &all[j];
			if (!d && n < GS_SITES * 2)
			{
				d = &all[n++];
				*d = *s;
				continue;
			}
			if (!d)
				continue;
			d->calls += s->calls;
			d->flops += s->flops;
			d->seconds += s->seconds;
			if (2.0 * s->M * s->N * s->K > 2.0 * d->M * d->N * d->K)
			{
				d->M = s->M;
				d->N = s->N;
				d->K = s->K;
				d->ta = s->ta;
				d->tb = s->tb;
			}
		}
	}
	qsort(all, n, sizeof(gemm_site), cmp_site);
	for (int i = 0; i < n; i++)
	{
		tf += all[i].flops;
		tsec += all[i].seconds;
		tcalls += all[i].calls;
	}
	printf("\n# sgemm call sites, per step (%d steps); time = CPU seconds inside sgemm (thread CPU "
		   "clock, summed over threads); %% = share of the process CPU time (mean %.3f s per step); "
		   "GFLOP/s per CPU-second\n", steps, step_cpu);
	printf("%-44s %9s %22s %9s %8s %6s %8s\n", "call site", "calls", "largest shape MxNxK", "GFLOP",
		   "time s", "%", "GFLOP/s");
	for (int i = 0; i < n; i++)
	{
		char		name[160],
					shape[64];

		site_name(all[i].ret, name, sizeof(name));
		snprintf(shape, sizeof(shape), "%dx%dx%d%s%s", all[i].M, all[i].N, all[i].K,
				 all[i].ta ? " tA" : "", all[i].tb ? " tB" : "");
		printf("%-44.44s %9.0f %22s %9.3f %8.3f %6.1f %8.1f\n", name, all[i].calls / (double) steps,
			   shape, all[i].flops / steps / 1e9, all[i].seconds / steps,
			   100.0 * all[i].seconds / steps / step_cpu,
			   all[i].seconds > 0 ? all[i].flops / all[i].seconds / 1e9 : 0);
	}
	printf("%-44s %9.0f %22s %9.3f %8.3f %6.1f %8.1f\n", "all sgemm", tcalls / (double) steps, "",
		   tf / steps / 1e9, tsec / steps, 100.0 * tsec / steps / step_cpu,
		   tsec > 0 ? tf / tsec / 1e9 : 0);
	if (ovf)
		printf("# %ld calls from sites beyond the table were not counted\n", ovf);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */
static void
usage(const char *p)
{
	fprintf(stderr, "usage: %s [--threads T] [--batch B] [--steps N] [--seconds S] "
			"[--preset movielens|amazon] [--warmup W] [--no-peak] [--gemm-stats] [--dump FILE]\n", p);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *preset = "movielens";
	const char *dump = NULL;
	int			threads = 2,
				batch = 2048,
				steps = 5,
				warmup = 1,
				peak = 1,
				gstats = 0;
	double		seconds = 0;
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_trainer *tr = NULL;
	t4r_train_opts o;
	char		err[256] = "";
	int			rc,
				mb = 0,
				L,
				cap;
	int32_t    *items;
	double	   *ts,
			   *st_wall,
			   *st_cpu,
				flops_step,
				peak_sq = 0,
				peak_cpu1 = 0,
				k64_cpu1 = 0,
				loss = 0,
				t_run,
				cpu_run;
	t4r_sample *smp;
	t4r_rng		r;
	int			done = 0;

	for (int i = 1; i < argc; i++)
	{
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
			warmup = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--preset") && i + 1 < argc)
			preset = argv[++i];
		else if (!strcmp(argv[i], "--no-peak"))
			peak = 0;
		else if (!strcmp(argv[i], "--gemm-stats"))
			gstats = 1;
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump = argv[++i];
		else
			usage(argv[0]);
	}
	if (threads < 1 || batch < 1 || steps < 1 || warmup < 0)
		usage(argv[0]);

	if (t4r_config_preset(&c, preset) != T4R_OK)
	{
		fprintf(stderr, "unknown preset %s\n", preset);
		return 2;
	}
	c.n_items = strcmp(preset, "amazon") == 0 ? 12102 : 3707;
	c.batch_size = batch;
	rc = t4r_model_create(&c, &m, err, sizeof(err));
	if (rc != T4R_OK)
	{
		fprintf(stderr, "t4r_model_create: %s %s\n", t4r_strerror(rc), err);
		return 1;
	}
	t4r_model_init(m, c.seed);
	L = m->dims.L;

	/* one batch of full-length samples: sample i reads items[i .. i+L-1]
	 * and predicts items[i+L] */
	items = malloc((size_t) (batch + L) * sizeof(int32_t));
	ts = malloc((size_t) (batch + L) * sizeof(double));
	smp = malloc((size_t) batch * sizeof(t4r_sample));
	t4r_rng_seed(&r, 3);
	{
		double		t = 9.7e8;

		for (int i = 0; i < batch + L; i++)
		{
			items[i] = 1 + (int32_t) t4r_rng_below(&r, (uint64_t) m->dims.V - 1);
			t += floor(4e4 * t4r_rng_u01(&r));
			ts[i] = t;
		}
	}
	for (int i = 0; i < batch; i++)
	{
		smp[i].items = items + i;
		smp[i].ts = ts + i;
		smp[i].n = L;
		smp[i].target = items[i + L];
	}
	flops_step = batch * 3.0 * fwd_flops(&m->dims, L);

	if (peak)
	{
		peak_sq = sgemm_gflops(2048, 2048, 2048, 0, threads, 5);
		/* one thread, CPU time: the per-core rates, less disturbed by a
		 * loaded machine (2048^3 scales ~2.0x to 2 threads unloaded) */
		peak_cpu1 = sgemm_gflops_clock(2048, 2048, 2048, 0, 1, 5, CLOCK_PROCESS_CPUTIME_ID);
		k64_cpu1 = sgemm_gflops_clock(16384, 324, 64, 1, 1, 5, CLOCK_PROCESS_CPUTIME_ID);
		openblas_set_num_threads(1);
	}

	memset(&o, 0, sizeof(o));
	o.threads = threads;
	t4r_trainer_estimate(&m->cfg, &o, NULL, &mb);
	rc = t4r_trainer_create(m, &o, &tr, err, sizeof(err));
	if (rc != T4R_OK)
	{
		fprintf(stderr, "t4r_trainer_create: %s %s\n", t4r_strerror(rc), err);
		return 1;
	}
	printf("# train_profile: preset %s (d = %d, L = %d, V = %d), batch %d of full length n = %d, "
		   "%d thread(s), micro-batch %d; useful %.1f MFLOP/sample, %.1f GFLOP/step\n",
		   preset, m->dims.d, L, m->dims.V, batch, L, threads, mb,
		   3.0 * fwd_flops(&m->dims, L) / 1e6, flops_step / 1e9);
	if (peak)
		printf("# sgemm 2048^3 with %d OpenBLAS thread(s): %.1f GFLOP/s wall (30%%: %.1f); one thread "
			   "per CPU-second: 2048^3 %.1f, model shape 16384x324x64 (tB) %.1f GFLOP/s\n", threads,
			   peak_sq, 0.3 * peak_sq, peak_cpu1, k64_cpu1);
	fflush(stdout);

	for (int i = 0; i < warmup; i++)
	{
		rc = t4r_trainer_step(tr, smp, batch, &loss);
		if (rc != T4R_OK)
		{
			fprintf(stderr, "t4r_trainer_step: %s\n", t4r_strerror(rc));
			return 1;
		}
	}

	cap = seconds > 0 ? 100000 : steps;
	st_wall = malloc(cap * sizeof(double));
	st_cpu = malloc(cap * sizeof(double));
	printf("%5s %9s %10s %12s %9s %8s %8s\n", "step", "wall_s", "samples/s", "useful_GF/s", "cpu_s",
		   "cpu_use", "loss");
	gs_on = gstats;
	t_run = bench_clock(CLOCK_MONOTONIC);
	cpu_run = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	for (;;)
	{
		double		w0 = bench_clock(CLOCK_MONOTONIC),
					c0 = bench_clock(CLOCK_PROCESS_CPUTIME_ID),
					dw,
					dc;

		rc = t4r_trainer_step(tr, smp, batch, &loss);
		dw = bench_clock(CLOCK_MONOTONIC) - w0;
		dc = bench_clock(CLOCK_PROCESS_CPUTIME_ID) - c0;
		if (rc != T4R_OK)
		{
			fprintf(stderr, "t4r_trainer_step: %s\n", t4r_strerror(rc));
			return 1;
		}
		st_wall[done] = dw;
		st_cpu[done] = dc;
		printf("%5d %9.3f %10.1f %12.1f %9.3f %7.0f%% %8.4f\n", done, dw, batch / dw,
			   flops_step / dw / 1e9, dc, 100.0 * dc / dw, loss);
		fflush(stdout);
		done++;
		if (done >= cap)
			break;
		if (seconds > 0 ? bench_clock(CLOCK_MONOTONIC) - t_run >= seconds : done >= steps)
			break;
	}
	gs_on = 0;
	t_run = bench_clock(CLOCK_MONOTONIC) - t_run;
	cpu_run = bench_clock(CLOCK_PROCESS_CPUTIME_ID) - cpu_run;
	{
		double		mw = median_of(st_wall, done),
					mc = median_of(st_cpu, done);

		printf("# median of %d steps: %.3f s/step, %.1f samples/s, %.1f useful GFLOP/s", done, mw,
			   batch / mw, flops_step / mw / 1e9);
		if (peak)
			printf(" = %.2fx 30%% of the %d-thread sgemm peak", flops_step / mw / 1e9 / (0.3 * peak_sq),
				   threads);
		printf("\n# CPU time: median %.3f s/step (%.0f%% of %d thread(s) x wall); per CPU-second %.1f "
			   "useful GFLOP (x %d = %.1f GFLOP/s if the %d core(s) were not shared)\n",
			   mc, 100.0 * mc / (mw * threads), threads, flops_step / mc / 1e9, threads,
			   threads * flops_step / mc / 1e9, threads);
		if (peak)
			printf("# CPU-normalised: %.1f useful GFLOP per CPU-second = %.2fx 30%% of the one-thread "
				   "2048^3 rate per CPU-second (%.1f), %.0f%% of the K = 64 model shape's\n",
				   flops_step / mc / 1e9, flops_step / mc / 1e9 / (0.3 * peak_cpu1), peak_cpu1,
				   100.0 * flops_step / mc / 1e9 / k64_cpu1);
		printf("# total: %d steps in %.2f s wall, %.2f s CPU\n", done, t_run, cpu_run);
		if (gstats)
			gemm_report(done, cpu_run / done);
	}
	if (dump)
	{
		FILE	   *f = fopen(dump, "wb");

		if (!f || fwrite(m->params, sizeof(t4r_real), m->layout.total, f) != m->layout.total)
		{
			perror(dump);
			return 1;
		}
		fclose(f);
		printf("# parameters (%zu floats) written to %s\n", m->layout.total, dump);
	}
	t4r_trainer_free(tr);
	t4r_model_free(m);
	free(items);
	free(ts);
	free(smp);
	free(st_wall);
	free(st_cpu);
	return 0;
}
