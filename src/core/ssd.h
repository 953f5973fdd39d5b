/*
 * ssd.h - the state-space-duality scan of one sequence (internal).
 *
 * Per head h (H heads of width P), state S[h] [P, N] starts at 0:
 *   S[h] <- exp(delta[l,h] * A[h]) * S[h] + delta[l,h] * x[l,h,:] outer B[l,:]
 *   y[l,h,p] = sum_n C[l,n] * S[h][p,n] + D[h] * x[l,h,p]
 * with x[l,h,p] = x[l*ldx + h*P + p], B[l,n] = B[l*ldbc + n], C likewise,
 * delta [n, H] row-major, A[h] = -exp(A_log[h]) (the caller converts).
 *
 * t4r_ssd_* is the chunked (matrix) form; t4r_ssd_*_ref the plain
 * recurrence, its test oracle.  Both give the same function for any n >= 1
 * and any chunk >= 1.
 *
 * last_only: only y at l = n-1 is needed.  Forward then writes just that row
 * (to y[0 .. H*P-1]); backward reads just that row of dy (dy[0 .. H*P-1]).
 *
 * Backward OVERWRITES dx, dB, dC, ddelta and ACCUMULATES into dA[H], dD[H]
 * (gradients w.r.t. A itself, not A_log).  dx/dB/dC use leading dimensions
 * ldx/ldbc like the inputs, so the caller can point them into one [n, Di+2N]
 * gradient buffer.
 *
 * ws: scratch of t4r_ssd_ws_size(...) elements, no alignment needs beyond
 * t4r_real; the size never decreases with n, so one ws sized for the
 * maximum length serves every shorter sequence.  Functions are thread-safe
 * given distinct outputs and ws.
 */
#ifndef T4R_SSD_H
#define T4R_SSD_H
#include "tim4rec.h"

size_t		t4r_ssd_ws_size(int n, int H, int P, int N, int chunk);

void		t4r_ssd_fwd(int n, int H, int P, int N, int chunk,
						const t4r_real *x, int ldx,
						const t4r_real *B, const t4r_real *C, int ldbc,
						const t4r_real *delta, const t4r_real *A, const t4r_real *D,
						int last_only, t4r_real *y, int ldy, t4r_real *ws);

/* the same with inference's fixed-order products (rgemm.c) where the shapes
 * allow: results may differ from t4r_ssd_fwd in the last bits, never between
 * calls; used by inference only (training keeps OpenBLAS, whose results the
 * parity checks pin) */
void		t4r_ssd_fwd_fixed(int n, int H, int P, int N, int chunk,
							  const t4r_real *x, int ldx,
							  const t4r_real *B, const t4r_real *C, int ldbc,
							  const t4r_real *delta, const t4r_real *A, const t4r_real *D,
							  int last_only, t4r_real *y, int ldy, t4r_real *ws);

void		t4r_ssd_bwd(int n, int H, int P, int N, int chunk,
						const t4r_real *x, int ldx,
						const t4r_real *B, const t4r_real *C, int ldbc,
						const t4r_real *delta, const t4r_real *A, const t4r_real *D,
						int last_only, const t4r_real *dy, int lddy,
						t4r_real *dx, t4r_real *dB, t4r_real *dC,
						t4r_real *ddelta, t4r_real *dA, t4r_real *dD,
						t4r_real *ws);

/* oracle: same contracts, plain recurrence (ws of t4r_ssd_ws_size(n,H,P,N,1)
 * or more) */
void		t4r_ssd_fwd_ref(int n, int H, int P, int N,
							const t4r_real *x, int ldx,
							const t4r_real *B, const t4r_real *C, int ldbc,
							const t4r_real *delta, const t4r_real *A, const t4r_real *D,
							int last_only, t4r_real *y, int ldy, t4r_real *ws);
void		t4r_ssd_bwd_ref(int n, int H, int P, int N,
							const t4r_real *x, int ldx,
							const t4r_real *B, const t4r_real *C, int ldbc,
							const t4r_real *delta, const t4r_real *A, const t4r_real *D,
							int last_only, const t4r_real *dy, int lddy,
							t4r_real *dx, t4r_real *dB, t4r_real *dC,
							t4r_real *ddelta, t4r_real *dA, t4r_real *dD,
							t4r_real *ws);
#endif
