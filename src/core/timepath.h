/*
 * timepath.h - the per-layer time path of TiM4Rec (internal); MODEL.md
 * forward steps 3.3 and 3.7.
 *
 * Works on R rows of length L at once, row r = sample s * H + head h
 * (head h = r % H selects the per-head conv parameters).  For each row:
 *   u    = T[r] * mask_mlp[r]                     (time_dropout; NULL mask = identity)
 *   s    = W2 . silu(W1 . u + b1) + b2            (mlp4time_scale.1 / .3, [L, L])
 *   q    = T[r] * s
 *   r1   = hardswish(causalconv(q; c1w[h,:], c1b[h]))   (conv1d4time_1, width K)
 *   tdt  = hardswish(causalconv(r1; c2w[h,:], c2b[h]))  (conv1d4time_2)
 *   if Tnew != NULL:
 *     gate = sigmoid(Wg . (T[r] * mask_gate[r]) + bg)  (time_gate_residual.1, [G, L])
 *            (G == 1: one scalar per row, broadcast over L; G == L: a vector)
 *     Tnew[r] = LayerNorm_L(gate * T[r] + (1 - gate) * tdt)  (time_layer_norm, eps)
 * causalconv(v)[l] = b + sum_k w[k] * v[l-(K-1)+k], v[<0] = 0.
 *
 * cache: t4r_time_cache_size(R, L, G) elements written by forward and read
 * by backward (same T, masks, params).
 *
 * Backward: dtdt [R, L] (may be zero beyond each sample's length), dTnew
 * [R, L] or NULL (then the gate/LN branch gets no gradient and its params
 * none).  OVERWRITES dT [R, L]; ACCUMULATES parameter gradients into g
 * (same struct shape as p).  scratch: t4r_time_scratch_size(R, L, G)
 * elements.  Products over rows use GEMM (t4r_gemm in ops.h).
 */
#ifndef T4R_TIMEPATH_H
#define T4R_TIMEPATH_H
#include "tim4rec.h"

typedef struct t4r_time_params
{
	t4r_real   *w1, *b1;		/* [L, L], [L]   mlp4time_scale.1 */
	t4r_real   *w2, *b2;		/* [L, L], [L]   mlp4time_scale.3 */
	t4r_real   *c1w, *c1b;		/* [H, K], [H]   conv1d4time_1 */
	t4r_real   *c2w, *c2b;		/* [H, K], [H]   conv1d4time_2 */
	t4r_real   *gw, *gb;		/* [G, L], [G]   time_gate_residual.1 */
	t4r_real   *lnw, *lnb;		/* [L], [L]      time_layer_norm */
} t4r_time_params;

size_t		t4r_time_cache_size(int R, int L, int G);
size_t		t4r_time_scratch_size(int R, int L, int G);

void		t4r_time_fwd(const t4r_time_params *p, int R, int H, int L, int K, int G,
						 double eps, const t4r_real *T,
						 const t4r_real *mask_mlp, const t4r_real *mask_gate,
						 t4r_real *tdt, t4r_real *Tnew, t4r_real *cache);

void		t4r_time_bwd(const t4r_time_params *p, const t4r_time_params *g,
						 int R, int H, int L, int K, int G, double eps,
						 const t4r_real *T,
						 const t4r_real *mask_mlp, const t4r_real *mask_gate,
						 const t4r_real *cache,
						 const t4r_real *dtdt, const t4r_real *dTnew,
						 t4r_real *dT, t4r_real *scratch);
#endif
