/*
 * timepath.h - the per-layer time path of TiM4Rec (internal); docs/MODEL.md
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
	/* inference only: w1, w2, gw packed for the row-stable kernel
	 * (t4r_rgemm, model_internal.h), or NULL */
	const t4r_real *w1p, *w2p, *gwp;
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

/*
 * The robust, causal time path (time_features = robust; timepath_robust.c).
 * Same row convention (row r = sample r / H, head r % H), but each row has
 * its own length n = nlen[r / H] (clamped to L): only positions l < n are
 * read or written with values, the rest of every output row is set to 0
 * (dT too), so padded slots never enter any computation.
 *
 * Input features of a sample (model level, t4r_rtime_features):
 *   g[0] = 0, g[l] = sign(d) * log1p(|d| / time_scale) with d = ts[l] - ts[l-1]
 *   (l < n; 0 beyond), time_scale stored with the model (the median positive
 *   gap of the training data), so a shift or a change of unit of the
 *   timestamps gives the same g.  Then T[h, l] = time_input.weight[h] *
 *   Dropout(g)[l] + time_input.bias[h] for l < n.
 * Per layer and row (p's fields reused: w1,b1 [H, J]; w2 [H, J]; b2 [H];
 * c1*, c2* as official; gw, gb [H] the gate; lnw, lnb [H] the output affine):
 *   u    = T * mask_mlp
 *   s[l] = b2[h] + sum_j w2[h,j] * silu(w1[h,j] * u[l] + b1[h,j])   (per position)
 *   q    = T * s
 *   r1   = hardswish(causalconv(q; c1w[h,:], c1b[h]))
 *   tdt  = hardswish(causalconv(r1; c2w[h,:], c2b[h]))
 *   if Tnew: gate[l] = sigmoid(gw[h] * (T * mask_gate)[l] + gb[h])
 *            Tnew[l] = lnw[h] * (gate T + (1 - gate) tdt)[l] + lnb[h]
 * No normalisation over positions and no mixing other than the causal convs.
 */
size_t		t4r_rtime_cache_size(int R, int L);
size_t		t4r_rtime_scratch_size(int L);
void		t4r_rtime_features(const double *ts, int n, int L, double scale, t4r_real *g);
void		t4r_rtime_fwd(const t4r_time_params *p, int R, int H, int L, int K, int J,
						  const int *nlen, const t4r_real *T,
						  const t4r_real *mask_mlp, const t4r_real *mask_gate,
						  t4r_real *tdt, t4r_real *Tnew, t4r_real *cache);
/* OVERWRITES dT [R, L]; ACCUMULATES parameter gradients into g */
void		t4r_rtime_bwd(const t4r_time_params *p, const t4r_time_params *g,
						  int R, int H, int L, int K, int J, const int *nlen,
						  const t4r_real *T,
						  const t4r_real *mask_mlp, const t4r_real *mask_gate,
						  const t4r_real *cache,
						  const t4r_real *dtdt, const t4r_real *dTnew,
						  t4r_real *dT, t4r_real *scratch);
#endif
