/*
 * rgemm.c - the row-stable projection kernel of inference, and the packed
 * copies of a model's projection weights it reads.
 *
 *   C[i, j] = bias[j] + sum_k A[i, k] W[j, k]     (W is [N, K], row-major)
 *
 * Every element is computed by one chain of fused multiply-adds,
 *   acc = bias[j];  for k = 0 .. K-1:  acc = fma(A[i, k], W[j, k], acc)
 * so a row of C depends only on its row of A: not on how many rows are
 * computed together, on the blocking, or on the instruction set the loops
 * were vectorised for (an FMA lane rounds exactly as fma()).  That is what
 * lets tim4rec_recommend (one sequence) and tim4rec_recommend_all (many
 * sequences on several threads) return bit-identical scores.  OpenBLAS gives
 * no such promise (its result for a row may change with the number of rows),
 * and on the inference shapes (M ~ 100 rows, K = 64 .. 256) this kernel is
 * also about twice as fast (test/bench/RESULTS.md, "row-stable projections").
 *
 * Training keeps OpenBLAS (model.c): its results are those of the published
 * parity checks and must not move.
 *
 * W is packed once per model into panels of RG_NR columns,
 *   Wp[p][k][j] = W[p * RG_NR + j, k]   (zero beyond N),
 * so the inner loop reads RG_NR consecutive weights per k.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model_internal.h"

#define RG_NR 32				/* columns per panel */
#define RG_MR 6					/* rows per register block */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
	!defined(T4R_DOUBLE) && !defined(T4R_NO_CLONES)
#define RG_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define RG_CLONES
#endif

#ifdef T4R_DOUBLE
#define RG_FMA fma
#else
#define RG_FMA fmaf
#endif

size_t
t4r_rgemm_elems(int N, int K)
{
	return (size_t) ((N + RG_NR - 1) / RG_NR) * RG_NR * (size_t) K;
}

void
t4r_rgemm_pack(const t4r_real *W, int ldw, int N, int K, t4r_real *Wp)
{
	int			np = (N + RG_NR - 1) / RG_NR;

	for (int p = 0; p < np; p++)
		for (int k = 0; k < K; k++)
			for (int j = 0; j < RG_NR; j++)
			{
				int			c = p * RG_NR + j;

				Wp[((size_t) p * K + k) * RG_NR + j] = c < N ? W[(size_t) c * ldw + k] : 0;
			}
}

/*
 * mr rows (a constant at every call, so acc stays in registers) of one
 * panel of RG_NR columns: C[r, j] = init + sum_k op(A)[r, k] B[k][j] for
 * j < nj, with init = b0[j] (b0 != NULL), else beta * C[r, j] (0 when beta
 * is 0); op(A)[r, k] = A[r * lda + k], or (ta) A[k * lda + r]; B's row k at
 * B + k * ldb (a packed panel: ldb = RG_NR).  Every call site passes mr,
 * ta and whether b0 is NULL as constants, so each inlined copy keeps only
 * its own branch.
 */
static inline __attribute__((always_inline)) void
rg_block(const int mr, const int ta, int K, const t4r_real *A, int lda, const t4r_real *B,
		 int ldb, const t4r_real *b0, t4r_real beta, t4r_real *C, int ldc, int nj)
{
	t4r_real	acc[RG_MR][RG_NR];

	for (int r = 0; r < mr; r++)
		for (int j = 0; j < RG_NR; j++)
			acc[r][j] = b0 ? b0[j] : beta == 0 ? 0 : beta * C[(size_t) r * ldc + j];
	for (int k = 0; k < K; k++)
	{
		const t4r_real *b = B + (size_t) k * ldb;

		for (int r = 0; r < mr; r++)
		{
			t4r_real	a = ta ? A[(size_t) k * lda + r] : A[(size_t) r * lda + k];

			for (int j = 0; j < RG_NR; j++)
				acc[r][j] = RG_FMA(a, b[j], acc[r][j]);
		}
	}
	for (int r = 0; r < mr; r++)
		memcpy(C + (size_t) r * ldc, acc[r], sizeof(t4r_real) * nj);
}

/* rows 0 .. M-1 of a panel in blocks of RG_MR, then 4, 2 and 1 (the same fma
 * chain per element in every block, only fewer rows share a pass over the
 * panel); ROWS(mr) computes the block at row i */
#define RG_ROW_BLOCKS(M, ROWS) \
	do { \
		int			i = 0; \
		for (; i + RG_MR <= (M); i += RG_MR) \
			ROWS(RG_MR); \
		if ((M) - i >= 4) \
		{ \
			ROWS(4); \
			i += 4; \
		} \
		if ((M) - i >= 2) \
		{ \
			ROWS(2); \
			i += 2; \
		} \
		if ((M) - i >= 1) \
			ROWS(1); \
	} while (0)

/*
 * C [M, N] (leading dimension ldc) = bias + A [M, K] (lda) x W^T, W packed
 * by t4r_rgemm_pack; bias [N] or NULL (zero).  C OVERWRITTEN.
 */
RG_CLONES void
t4r_rgemm(int M, int N, int K, const t4r_real *A, int lda, const t4r_real *Wp,
		  const t4r_real *bias, t4r_real *C, int ldc)
{
	int			np = (N + RG_NR - 1) / RG_NR;

	for (int p = 0; p < np; p++)
	{
		const t4r_real *bp = Wp + (size_t) p * K * RG_NR;
		int			j0 = p * RG_NR,
					nj = N - j0 < RG_NR ? N - j0 : RG_NR;
		t4r_real	b0[RG_NR];

		for (int j = 0; j < RG_NR; j++)
			b0[j] = (bias && j < nj) ? bias[j0 + j] : 0;
#define RG_ROWS(mr) \
		rg_block(mr, 0, K, A + (size_t) i * lda, lda, bp, RG_NR, b0, 0, \
				 C + (size_t) i * ldc + j0, ldc, nj)
		RG_ROW_BLOCKS(M, RG_ROWS);
#undef RG_ROWS
	}
}

/*
 * The same fma chains for a plain row-major product of inference's small
 * operands (the SSD's 32x32x32 products): C [M, N] = beta C + op(A) B with
 * B [K, N] read in place (ldb), op(A) = A [M, K] or (ta) A^T for A [K, M].
 * Each element: acc = beta * C (0 when beta is 0), then acc = fma(a_k,
 * b_k, acc) for k = 0 .. K-1.  N must be a multiple of RG_NR (callers fall
 * back to OpenBLAS otherwise).  No packing, no allocation, no lock: at these
 * sizes OpenBLAS spends as long copying its operands as multiplying them.
 */
int
t4r_sgemm_fixed_ok(int N)
{
	return N > 0 && N % RG_NR == 0;
}

RG_CLONES void
t4r_sgemm_fixed(int ta, int M, int N, int K, const t4r_real *A, int lda, const t4r_real *B,
				int ldb, t4r_real beta, t4r_real *C, int ldc)
{
	for (int j0 = 0; j0 < N; j0 += RG_NR)
	{
		/* A's row i starts at A + i * lda, or (ta) at column i: A + i */
#define RG_NN(mr) \
		do { \
			if (ta) \
				rg_block(mr, 1, K, A + i, lda, B + j0, ldb, NULL, beta, \
						 C + (size_t) i * ldc + j0, ldc, RG_NR); \
			else \
				rg_block(mr, 0, K, A + (size_t) i * lda, lda, B + j0, ldb, NULL, beta, \
						 C + (size_t) i * ldc + j0, ldc, RG_NR); \
		} while (0)
		RG_ROW_BLOCKS(M, RG_NN);
#undef RG_NN
	}
}

/* ------------------------------------------------------------------ */
/* a model's packed projections                                        */
/* ------------------------------------------------------------------ */

/*
 * The packed layout of m: every packed matrix in turn from base (fill: also
 * write them).  Returns the elements used.
 */
static size_t
ipack_layout(const t4r_model *m, t4r_real *base, int fill, t4r_ipack *ip)
{
	const t4r_dims *D = &m->dims;
	t4r_pview	pv;
	size_t		o = 0;
	int			d = D->d,
				Di = D->Di,
				f = D->ffn_dim,
				in_dim = D->in_dim,
				L = D->L;

	if (fill)
		t4r_pview_build(m, m->params, &pv);
	for (int li = 0; li < D->layers; li++)
	{
		const t4r_lparams *P = fill ? &pv.l[li] : NULL;

#define RG_PACK(field, W, N, K) \
		do { \
			if (ip) \
				ip->l[li].field = base + o; \
			if (fill) \
				t4r_rgemm_pack(W, K, N, K, base + o); \
			o += t4r_rgemm_elems(N, K); \
		} while (0)
		RG_PACK(inz, P->in_w, Di, d);
		RG_PACK(inr, P->in_w + (size_t) Di * d, in_dim - Di, d);
		RG_PACK(out, P->out_w, d, Di);
		RG_PACK(fc1, P->fc1_w, f, d);
		RG_PACK(fc2, P->fc2_w, d, f);
		if (D->is_time && !D->robust)
		{
			RG_PACK(tw1, P->tp.w1, L, L);
			RG_PACK(tw2, P->tp.w2, L, L);
			if (D->G == L && L > 1)
				RG_PACK(tgw, P->tp.gw, L, L);
		}
#undef RG_PACK
	}
	return o;
}

size_t
t4r_infer_pack_elems(const t4r_model *m)
{
	if (!m || m->dims.layers > T4R_MAX_LAYERS)
		return 0;
	return ipack_layout(m, NULL, 0, NULL);
}

int
t4r_infer_pack_fill(const t4r_model *m, t4r_real *buf)
{
	if (!m || !buf || m->dims.layers > T4R_MAX_LAYERS)
		return T4R_EINVAL;
	ipack_layout(m, buf, 1, NULL);
	return T4R_OK;
}

/* packed: a buffer filled by t4r_infer_pack_fill (borrowed), or NULL (an
 * own copy is packed here) */
int
t4r_ipack_create(const t4r_model *m, const t4r_real *packed, t4r_ipack **out)
{
	t4r_ipack  *ip;

	*out = NULL;
	if (!m || m->dims.layers > T4R_MAX_LAYERS)
		return T4R_EINVAL;
	ip = calloc(1, sizeof(*ip));
	if (!ip)
		return T4R_ENOMEM;
	if (packed == NULL)
	{
		ip->mem = malloc(sizeof(t4r_real) * (t4r_infer_pack_elems(m) + 1));
		if (!ip->mem)
		{
			free(ip);
			return T4R_ENOMEM;
		}
		ipack_layout(m, ip->mem, 1, ip);
	}
	else						/* pointers only: the buffer is read, never written */
		ipack_layout(m, (t4r_real *) packed, 0, ip);
	*out = ip;
	return T4R_OK;
}

void
t4r_ipack_free(t4r_ipack *ip)
{
	if (!ip)
		return;
	free(ip->mem);
	free(ip);
}
