/*
 * test_rgemm.c - the row-stable projection kernel of inference (rgemm.c):
 *  - bitwise equal to its contract written as a plain loop (one fmaf chain
 *    per element, bias first, k in order) on shapes around the kernel's
 *    blocking (rows 1 .. 13 and 113, columns around the 32-wide panels,
 *    K from 1 to 200, with and without bias, strided A and C);
 *  - close to a double-precision reference (the maths, not just the order);
 *  - row stability: every row computed alone, or the rows split at another
 *    point, gives the same bits as all rows at once;
 *  - columns beyond N are never written;
 *  - an inference context reading a caller's packed buffer
 *    (t4r_infer_pack_fill, as the server's shared copy) gives the bits of one
 *    that packs its own, and really reads that buffer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x9E3779B97F4A7C15ULL
#include "tap.h"
#include "rgemm.h"
#include "tim4rec.h"

/* uniform in [-1, 1) */
static float
frand(void)
{
	return (float) (urand() * 2 - 1);
}

/* the contract: C[i, j] = fma chain over k starting at bias[j] */
static void
contract(int M, int N, int K, const float *A, int lda, const float *W, const float *bias,
		 float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++)
		{
			float		acc = bias ? bias[j] : 0;

			for (int k = 0; k < K; k++)
				acc = fmaf(A[(size_t) i * lda + k], W[(size_t) j * K + k], acc);
			C[(size_t) i * ldc + j] = acc;
		}
}

static int
one_shape(int M, int N, int K, int with_bias, double *worst)
{
	int			lda = K + 3,
				ldc = N + 5;
	float	   *A = malloc(sizeof(float) * (size_t) M * lda),
			   *W = malloc(sizeof(float) * (size_t) N * K),
			   *b = malloc(sizeof(float) * N),
			   *Wp = malloc(sizeof(float) * t4r_rgemm_elems(N, K)),
			   *C = malloc(sizeof(float) * (size_t) M * ldc),
			   *R = malloc(sizeof(float) * (size_t) M * ldc),
			   *S = malloc(sizeof(float) * (size_t) M * ldc);
	const float *bias = with_bias ? b : NULL;
	int			ok = 1,
				split = M / 2 + 1;

	for (size_t i = 0; i < (size_t) M * lda; i++)
		A[i] = frand();
	for (size_t i = 0; i < (size_t) N * K; i++)
		W[i] = frand();
	for (int j = 0; j < N; j++)
		b[j] = frand();
	for (size_t i = 0; i < (size_t) M * ldc; i++)
		C[i] = R[i] = S[i] = -777.0f;
	t4r_rgemm_pack(W, K, N, K, Wp);
	t4r_rgemm(M, N, K, A, lda, Wp, bias, C, ldc);
	contract(M, N, K, A, lda, W, bias, R, ldc);
	/* bitwise: the contract, and the padding columns untouched */
	if (memcmp(C, R, sizeof(float) * (size_t) M * ldc) != 0)
		ok = 0;
	/* the maths: a double reference, error relative to sum |a w| */
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++)
		{
			double		ref = bias ? bias[j] : 0,
						mag = fabs(ref);

			for (int k = 0; k < K; k++)
			{
				ref += (double) A[(size_t) i * lda + k] * W[(size_t) j * K + k];
				mag += fabs((double) A[(size_t) i * lda + k] * W[(size_t) j * K + k]);
			}
			mag = fabs(C[(size_t) i * ldc + j] - ref) / (mag + 1e-30);
			if (mag > *worst)
				*worst = mag;
		}
	/* row stability: one row at a time, and split in two calls */
	for (int i = 0; i < M; i++)
		t4r_rgemm(1, N, K, A + (size_t) i * lda, lda, Wp, bias, S + (size_t) i * ldc, ldc);
	if (memcmp(C, S, sizeof(float) * (size_t) M * ldc) != 0)
		ok = 0;
	if (split < M)
	{
		t4r_rgemm(split, N, K, A, lda, Wp, bias, S, ldc);
		t4r_rgemm(M - split, N, K, A + (size_t) split * lda, lda, Wp, bias,
				  S + (size_t) split * ldc, ldc);
		if (memcmp(C, S, sizeof(float) * (size_t) M * ldc) != 0)
			ok = 0;
	}
	free(A);
	free(W);
	free(b);
	free(Wp);
	free(C);
	free(R);
	free(S);
	return ok;
}

/* a borrowed packed buffer == an own copy (preset, time path on/off) */
static void
packed_buffer(const char *preset, int is_time)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_infer_ctx *own = NULL,
			   *bor = NULL;
	char		err[256];
	int32_t		items[30];
	double		ts[30];
	float		h1[64],
				h2[64];
	size_t		n;
	float	   *buf;
	int			ok;

	t4r_config_preset(&c, preset);
	c.n_items = 40;
	c.max_seq_len = 24;
	c.hidden_size = 32;
	c.is_time = is_time;
	ok = t4r_model_create(&c, &m, err, sizeof(err)) == T4R_OK;
	if (ok)
		t4r_model_init(m, 11);
	for (int i = 0; i < 30; i++)
	{
		items[i] = 1 + (i * 7) % 39;
		ts[i] = 1.6e9 + i * 3600.0 * (1 + i % 3);
	}
	n = ok ? t4r_infer_pack_elems(m) : 0;
	buf = malloc(sizeof(float) * (n + 1));
	ok = ok && n > 0 && buf && t4r_infer_pack_fill(m, buf) == T4R_OK &&
		t4r_infer_ctx_create(m, &own) == T4R_OK &&
		t4r_infer_ctx_create_packed(m, buf, &bor) == T4R_OK &&
		t4r_infer(own, items, ts, 30, h1, NULL) == T4R_OK &&
		t4r_infer(bor, items, ts, 30, h2, NULL) == T4R_OK;
	tap_ok(ok && memcmp(h1, h2, sizeof(float) * 32) == 0,
		   "%s preset, is_time %d: a context on a borrowed packed buffer (%zu elements) == one with its own copy",
		   preset, is_time, n);
	/* the borrowed buffer is what it reads: scaling it changes the output */
	for (size_t i = 0; ok && i < n; i++)
		buf[i] *= 0.5f;
	ok = ok && t4r_infer(bor, items, ts, 30, h2, NULL) == T4R_OK;
	tap_ok(ok && memcmp(h1, h2, sizeof(float) * 32) != 0,
		   "%s preset, is_time %d: the context reads the borrowed buffer (halving it changes the output)",
		   preset, is_time);
	t4r_infer_ctx_free(own);
	t4r_infer_ctx_free(bor);
	t4r_model_free(m);
	free(buf);
}

/*
 * t4r_sgemm_fixed against its contract written out plainly (acc = beta *
 * C or 0, then one fmaf per k in order), bitwise, for op(A) = A and A^T,
 * beta 0, 1 and 0.75, the row blocks' remainders, and columns of C beyond N
 * untouched; and against a double reference.
 */
static void
test_fixed(void)
{
	static const int Ms[] = {1, 2, 3, 5, 6, 7, 12, 13, 32};
	static const int Ns[] = {32, 64};
	static const int Ks[] = {1, 17, 32};
	static const float betas[] = {0, 1, 0.75f};
	int			bad = 0,
				cases = 0;
	double		worst = 0;

	tap_ok(t4r_sgemm_fixed_ok(32) && t4r_sgemm_fixed_ok(96) && !t4r_sgemm_fixed_ok(31) &&
		   !t4r_sgemm_fixed_ok(0), "t4r_sgemm_fixed_ok: multiples of 32 only");
	for (int ta = 0; ta <= 1; ta++)
		for (int mi = 0; mi < 9; mi++)
			for (int ni = 0; ni < 2; ni++)
				for (int ki = 0; ki < 3; ki++)
					for (int bi = 0; bi < 3; bi++)
					{
						int			M = Ms[mi],
									N = Ns[ni],
									K = Ks[ki];
						int			lda = (ta ? M : K) + 2,
									ldb = N + 3,
									ldc = N + 5;
						size_t		na = (size_t) (ta ? K : M) * lda;
						float	   *A = malloc(sizeof(float) * na),
								   *B = malloc(sizeof(float) * (size_t) K * ldb),
								   *C = malloc(sizeof(float) * (size_t) M * ldc),
								   *R = malloc(sizeof(float) * (size_t) M * ldc);
						float		beta = betas[bi];
						int			ok = 1;

						for (size_t i = 0; i < na; i++)
							A[i] = frand();
						for (size_t i = 0; i < (size_t) K * ldb; i++)
							B[i] = frand();
						for (size_t i = 0; i < (size_t) M * ldc; i++)
							C[i] = R[i] = frand();
						for (int i = 0; i < M; i++)
							for (int j = 0; j < N; j++)
							{
								float		acc = beta == 0 ? 0 : beta * R[(size_t) i * ldc + j];
								double		ref = beta == 0 ? 0 : (double) beta * R[(size_t) i * ldc + j],
											mag = fabs(ref);

								for (int k = 0; k < K; k++)
								{
									float		a = ta ? A[(size_t) k * lda + i] : A[(size_t) i * lda + k];

									acc = fmaf(a, B[(size_t) k * ldb + j], acc);
									ref += (double) a * B[(size_t) k * ldb + j];
									mag += fabs((double) a * B[(size_t) k * ldb + j]);
								}
								R[(size_t) i * ldc + j] = acc;
								if (fabs(acc - ref) / (mag > 0 ? mag : 1) > worst)
									worst = fabs(acc - ref) / (mag > 0 ? mag : 1);
							}
						t4r_sgemm_fixed(ta, M, N, K, A, lda, B, ldb, beta, C, ldc);
						ok = memcmp(C, R, sizeof(float) * (size_t) M * ldc) == 0;
						if (!ok && bad == 0)
							tap_diag("first mismatch: ta %d M %d N %d K %d beta %g", ta, M, N, K, beta);
						bad += !ok;
						cases++;
						free(A);
						free(B);
						free(C);
						free(R);
					}
	tap_ok(bad == 0, "t4r_sgemm_fixed: %d shapes (A and A^T, beta 0 / 1 / 0.75) bitwise equal to the "
		   "fma-chain contract, padding columns untouched (%d differ)", cases, bad);
	tap_ok(worst < 1e-5, "t4r_sgemm_fixed: error vs double reference %.3g of sum |a b| (< 1e-5)", worst);
}

int
main(void)
{
	static const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 113};
	static const int Ns[] = {1, 4, 31, 32, 33, 64, 100, 324};
	static const int Ks[] = {1, 7, 64, 200};

	for (int ki = 0; ki < 4; ki++)
		for (int bi = 0; bi < 2; bi++)
		{
			int			bad = 0,
						cases = 0;
			double		worst = 0;

			for (int mi = 0; mi < 12; mi++)
				for (int ni = 0; ni < 8; ni++)
				{
					if (!one_shape(Ms[mi], Ns[ni], Ks[ki], bi, &worst))
					{
						if (bad == 0)
							tap_diag("first mismatch: M %d N %d K %d bias %d", Ms[mi], Ns[ni],
									 Ks[ki], bi);
						bad++;
					}
					cases++;
				}
			tap_ok(bad == 0, "K %d, %s: %d shapes bitwise equal to the fma-chain contract, row by row "
				   "and split, padding untouched (%d differ)", Ks[ki], bi ? "bias" : "no bias",
				   cases, bad);
			tap_ok(worst < 1e-5, "K %d, %s: error vs double reference %.3g of sum |a w| (< 1e-5)",
				   Ks[ki], bi ? "bias" : "no bias", worst);
		}
	packed_buffer("movielens", 1);
	packed_buffer("movielens", 0);
	packed_buffer("amazon", 1);
	test_fixed();
	return tap_done();
}
