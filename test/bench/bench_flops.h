/*
 * bench_flops.h - shared by test/bench/bench.c and train_profile.c: the
 * useful-FLOP model of one training sample and the sgemm rate measurement,
 * so that both programs report GFLOP/s and peaks the same way.
 *
 * Useful FLOPs per training sample with real input length n (multiply-add =
 * 2 FLOPs; only the work the output needs; element-wise work, norms and the
 * softmax not counted), r_i = n for layers before the last, 1 for the last:
 *   per layer i:  in_proj   2 n d (2Di+2N+H)
 *                 conv      2 n (Di+2N) K
 *                 SSD       3 n Di N (state updates) + 2 r_i Di N (read-out)
 *                 time path 4 H L^2 (MLP, two L x L) + 4 H L K (two convs)
 *                           + 2 H G L (gate; not in the last layer)  [is_time]
 *                 out_proj  2 r_i Di d
 *                 FFN       16 r_i d^2
 *   scoring       2 V d
 *   training = 3 x forward (backward counted as twice the forward).
 * Needs tim4rec.h and ops.h (cblas.h) included before it.
 */
#ifndef T4R_BENCH_FLOPS_H
#define T4R_BENCH_FLOPS_H

#include <stdlib.h>
#include <time.h>

/* useful forward FLOPs of one sample of input length n (n <= L) */
static double
fwd_flops(const t4r_dims *D, int n)
{
	double		f = 0;

	for (int i = 0; i < D->layers; i++)
	{
		int			last = i == D->layers - 1;
		double		r = last ? 1 : n;

		f += 2.0 * n * D->d * D->in_dim;
		f += 2.0 * n * D->conv_dim * D->K;
		f += 3.0 * n * D->Di * D->N + 2.0 * r * D->Di * D->N;
		if (D->is_time)
		{
			f += 4.0 * D->H * (double) D->L * D->L + 4.0 * D->H * D->L * D->K;
			if (!last)
				f += 2.0 * D->H * (double) D->G * D->L;
		}
		f += 2.0 * r * D->Di * D->d;
		f += 16.0 * r * D->d * D->d;
	}
	f += 2.0 * D->V * D->d;
	return f;
}

/* seconds on `clock` (CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, ...) */
static inline double
bench_clock(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
bench_cmp_dbl(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* GFLOP/s of cblas_sgemm C[M,N] = A[M,K] op(B) with `threads` OpenBLAS
 * threads: median of `reps` calls after one warm-up call, timed with
 * `clock` (CLOCK_MONOTONIC: wall time; CLOCK_PROCESS_CPUTIME_ID: CPU time,
 * a per-CPU-second rate that other processes on the machine disturb less) */
static double
sgemm_gflops_clock(int M, int N, int K, int transB, int threads, int reps, clockid_t clock)
{
	float	   *A = malloc((size_t) M * K * sizeof(float));
	float	   *B = malloc((size_t) K * N * sizeof(float));
	float	   *C = malloc((size_t) M * N * sizeof(float));
	double	   *t = malloc(reps * sizeof(double));
	double		g,
				med;
	t4r_rng		r;

	t4r_rng_seed(&r, 1);
	for (size_t i = 0; i < (size_t) M * K; i++)
		A[i] = (float) (t4r_rng_u01(&r) - 0.5);
	for (size_t i = 0; i < (size_t) K * N; i++)
		B[i] = (float) (t4r_rng_u01(&r) - 0.5);
	openblas_set_num_threads(threads);
	/* warm-up */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
				1.0f, A, K, B, transB ? K : N, 0.0f, C, N);
	for (int i = 0; i < reps; i++)
	{
		struct timespec t0,
					t1;

		clock_gettime(clock, &t0);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
					1.0f, A, K, B, transB ? K : N, 0.0f, C, N);
		clock_gettime(clock, &t1);
		t[i] = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
	}
	qsort(t, reps, sizeof(double), bench_cmp_dbl);
	med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
	g = 2.0 * M * N * K / med / 1e9;
	free(A);
	free(B);
	free(C);
	free(t);
	return g;
}

static double
sgemm_gflops(int M, int N, int K, int transB, int threads, int reps)
{
	return sgemm_gflops_clock(M, N, K, transB, threads, reps, CLOCK_MONOTONIC);
}

#endif							/* T4R_BENCH_FLOPS_H */
