/*
 * test_rgemm.c - the row-stable projection kernel of inference (rgemm.c):
 *  - bitwise equal to its contract written as a plain loop (one fmaf chain
 *    per element, bias first, k in order) on shapes around the kernel's
 *    blocking (rows 1 .. 13 and 113, columns around the 32-wide panels,
 *    K from 1 to 200, with and without bias, strided A and C);
 *  - close to a double-precision reference (the maths, not just the order);
 *  - row stability: every row computed alone, or the rows split at another
 *    point, gives the same bits as all rows at once;
 *  - columns beyond N are never written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "rgemm.h"

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static float
frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float) ((rs >> 11) * (1.0 / 9007199254740992.0) * 2 - 1);
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
	return tap_done();
}
