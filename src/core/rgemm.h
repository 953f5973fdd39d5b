/*
 * rgemm.h - the row-stable projection kernel of inference (rgemm.c):
 *   C[i, j] = bias[j] + sum_k A[i, k] W[j, k], one fma chain per element in
 * k order, so a row's result does not depend on the other rows computed.
 */
#ifndef T4R_RGEMM_H
#define T4R_RGEMM_H

#include <stddef.h>
#include "tim4rec.h"

/* elements of W [N, K] packed for t4r_rgemm */
size_t		t4r_rgemm_elems(int N, int K);
/* pack W [N, K] (leading dimension ldw) into Wp [t4r_rgemm_elems(N, K)] */
void		t4r_rgemm_pack(const t4r_real *W, int ldw, int N, int K, t4r_real *Wp);
/* C [M, N] (ldc) = bias [N] (or 0 if NULL) + A [M, K] (lda) W^T; C OVERWRITTEN */
void		t4r_rgemm(int M, int N, int K, const t4r_real *A, int lda, const t4r_real *Wp,
					  const t4r_real *bias, t4r_real *C, int ldc);
/* C [M, N] (ldc) = beta C + op(A) B, B [K, N] (ldb) row-major in place,
 * op(A) = A [M, K] (lda) or (ta) A^T with A [K, M] (lda): one fma chain per
 * element in k order, from beta * C (0 when beta is 0).  Only for N with
 * t4r_sgemm_fixed_ok(N) (a multiple of 32). */
int			t4r_sgemm_fixed_ok(int N);
void		t4r_sgemm_fixed(int ta, int M, int N, int K, const t4r_real *A, int lda,
							const t4r_real *B, int ldb, t4r_real beta, t4r_real *C, int ldc);

#endif
