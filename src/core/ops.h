/*
 * ops.h - small shared kernels of the CPU core (internal): layer norm, GEMM
 * wrapper, random numbers, dropout masks; the scalar functions
 * (activations, the dropout hash) are in mathfn.h.
 * All static inline so that each compilation unit (float or double build)
 * gets its own copy.
 */
#ifndef T4R_OPS_H
#define T4R_OPS_H

#include <math.h>
#include <stdint.h>
#include <cblas.h>
#include "tim4rec.h"
#include "mathfn.h"

/* ---------------- layer norm (two-pass, double accumulation) ----------------
 * y = (x - mean) * rstd * w + b over n values with stride 1.
 * Saves mean and rstd for the backward pass (may be NULL). */
static inline void
t4r_layernorm_fwd(const t4r_real *x, int n, const t4r_real *w, const t4r_real *b,
				  double eps, t4r_real *y, t4r_real *mean_out, t4r_real *rstd_out)
{
	double		s = 0,
				v = 0,
				mean,
				rstd;

	for (int i = 0; i < n; i++)
		s += x[i];
	mean = s / n;
	for (int i = 0; i < n; i++)
	{
		double		c = x[i] - mean;

		v += c * c;
	}
	v /= n;
	rstd = 1.0 / sqrt(v + eps);
	for (int i = 0; i < n; i++)
		y[i] = (t4r_real) ((x[i] - mean) * rstd * w[i] + b[i]);
	if (mean_out)
		*mean_out = (t4r_real) mean;
	if (rstd_out)
		*rstd_out = (t4r_real) rstd;
}

/* Backward of t4r_layernorm_fwd given the input x and saved mean/rstd.
 * dx is OVERWRITTEN (may alias dy); dw, db ACCUMULATED (may be NULL). */
static inline void
t4r_layernorm_bwd(const t4r_real *x, const t4r_real *dy, int n, const t4r_real *w,
				  t4r_real mean, t4r_real rstd, t4r_real *dx, t4r_real *dw, t4r_real *db)
{
	double		sg = 0,
				sgx = 0;

	for (int i = 0; i < n; i++)
	{
		double		xh = (x[i] - (double) mean) * rstd;
		double		g = (double) dy[i] * w[i];

		if (dw)
			dw[i] += (t4r_real) (dy[i] * xh);
		if (db)
			db[i] += dy[i];
		sg += g;
		sgx += g * xh;
	}
	sg /= n;
	sgx /= n;
	for (int i = 0; i < n; i++)
	{
		double		xh = (x[i] - (double) mean) * rstd;
		double		g = (double) dy[i] * w[i];

		dx[i] = (t4r_real) ((g - sg - xh * sgx) * rstd);
	}
}

/* ---------------- GEMM (row-major) ----------------
 * C[M,N] = alpha * op(A) op(B) + beta * C; ta/tb nonzero = transposed. */
static inline void
t4r_gemm(int ta, int tb, int M, int N, int K, t4r_real alpha,
		 const t4r_real *A, int lda, const t4r_real *B, int ldb,
		 t4r_real beta, t4r_real *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0)
	{
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				C[(size_t) i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t) i * ldc + j];
		return;
	}
#ifdef T4R_DOUBLE
	cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
				M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
				M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* ---------------- random numbers ----------------
 * Sequential generator (initialisation, shuffling): splitmix64-seeded
 * xoshiro256**.  Counter-based hash (dropout, mathfn.h): t4r_hash64(key...)
 * gives reproducible masks independent of thread count and micro-batching. */
typedef struct t4r_rng
{
	uint64_t	s[4];
} t4r_rng;

static inline void
t4r_rng_seed(t4r_rng *r, uint64_t seed)
{
	uint64_t	x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = t4r_splitmix64(&x);
}

static inline uint64_t
t4r_rng_next(t4r_rng *r)
{
	uint64_t   *s = r->s;
	uint64_t	x = s[1] * 5;
	uint64_t	res = ((x << 7) | (x >> 57)) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = (s[3] << 45) | (s[3] >> 19);
	return res;
}

/* uniform in [0, 1) with 53 bits */
static inline double
t4r_rng_u01(t4r_rng *r)
{
	return (t4r_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* standard normal (Box-Muller, one value per call) */
static inline double
t4r_rng_normal(t4r_rng *r)
{
	double		u1,
				u2;

	do
		u1 = t4r_rng_u01(r);
	while (u1 <= 0);
	u2 = t4r_rng_u01(r);
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* uniform integer in [0, n) (n > 0), for shuffles */
static inline uint64_t
t4r_rng_below(t4r_rng *r, uint64_t n)
{
	return (uint64_t) (t4r_rng_u01(r) * (double) n) % n;
}

/* every run of equal ts in items[0..n-1] put in a random order
 * (Fisher-Yates from the back of each run, one generator for all runs):
 * tie_shuffle (fit.c) and tie_average (infer.c) */
static inline void
t4r_shuffle_runs(t4r_rng *r, int32_t *items, const double *ts, int64_t n)
{
	for (int64_t a = 0; a < n;)
	{
		int64_t		b = a + 1;

		while (b < n && ts[b] == ts[a])
			b++;
		for (int64_t i = b - a - 1; i > 0; i--)
		{
			int64_t		j = (int64_t) t4r_rng_below(r, (uint64_t) i + 1);
			int32_t		t = items[a + i];

			items[a + i] = items[a + j];
			items[a + j] = t;
		}
		a = b;
	}
}

/* Fill mask[0..n-1] with dropout multipliers: 0 with probability p, else
 * 1/(1-p).  Keyed by (seed, step, sample, site), element i from
 * t4r_dropout_bits; the plain form of t4r_model_dropout_mask (model.c). */
static inline void
t4r_dropout_mask(t4r_real *mask, size_t n, double p, uint64_t seed, uint64_t step,
				 uint64_t sample, uint64_t site)
{
	t4r_real	keep = (t4r_real) (1.0 / (1.0 - p));
	uint64_t	base = t4r_hash64(seed, step, sample, site);
	/* threshold on 32-bit uniforms */
	uint64_t	thr = (uint64_t) (p * 4294967296.0);

	for (size_t i = 0; i < n; i++)
		mask[i] = t4r_dropout_bits(base, i) < thr ? 0 : keep;
}

#endif							/* T4R_OPS_H */
