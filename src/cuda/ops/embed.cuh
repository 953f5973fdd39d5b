/*
 * ops/embed.cuh - 1. embedding, dropout, in_layer_norm (model.c's
 * embed_forward / embed_backward), one warp per item-path row.
 */
#ifndef T4R_CUDA_OPS_EMBED_CUH
#define T4R_CUDA_OPS_EMBED_CUH

#include "../trainer.cuh"

/* embedding gather, dropout, in_layer_norm: one warp per row */
__global__ void
k_embed(int R0, int L, int d, const int32_t *items, const float *E, DK dk,
		const float *lw, const float *lb, double eps, float *emb, float *U,
		float *mu, float *rs)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= R0)
		return;
	int			s = r / L,
				l = r % L;
	const float *e = E + (size_t) items[r] * d;
	float	   *o = emb + (size_t) r * d;

	for (int c = lane; c < d; c += 32)
		o[c] = e[c] * d_mask(dk, s, T4R_SITE_EMB, (uint64_t) l * d + c);
	__syncwarp();
	warp_ln_fwd(o, d, lw, lb, eps, U + (size_t) r * d, mu + r, rs + r);
}

/* in_layer_norm backward and embedding scatter-add (row 0 skipped) */
__global__ void
k_embed_bwd(int R0, int L, int d, const int32_t *items, const float *emb, const float *dF,
			const float *lw, const float *mu, const float *rs, DK dk, float *dx,
			float *prod, float *gE)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= R0)
		return;
	float	   *x = dx + (size_t) r * d;

	warp_ln_bwd(emb + (size_t) r * d, dF + (size_t) r * d, d, lw, mu[r], rs[r], x,
				prod + (size_t) r * d);
	__syncwarp();
	int			it = items[r];

	if (it == 0)
		return;
	int			s = r / L,
				l = r % L;

	for (int c = lane; c < d; c += 32)
		atomicAdd(gE + (size_t) it * d + c,
				  x[c] * d_mask(dk, s, T4R_SITE_EMB, (uint64_t) l * d + c));
}

/* items [S*L] -> emb [S*L, d] = Dropout(E[items]), the first layer's U
 * [S*L, d] = LN(emb), e_mu, e_rs [S*L] OVERWRITTEN */
static int
embed_forward(t4r_cuda_trainer *t, int S, DK dk)
{
	const t4r_dims *D = &t->D;
	const t4r_pview *pv = &t->pv;
	size_t		R0 = (size_t) S * D->L;

	k_embed<<<WARP_GRID(R0), 256>>>((int) R0, D->L, D->d, t->items, pv->emb, dk, pv->in_ln_w,
									pv->in_ln_b, t->m->cfg.norm_eps, t->emb, t->la[0].U,
									t->e_mu, t->e_rs);
	KCHECK("k_embed");
	return T4R_OK;
}

/* dF [S*L, d] (gradient of the first layer's U) -> dU [S*L, d] scratch,
 * in_ln and embedding-row gradients ACCUMULATED */
static int
embed_backward(t4r_cuda_trainer *t, int S, DK dk, const float *dF, float *dU)
{
	const t4r_dims *D = &t->D;
	size_t		R0 = (size_t) S * D->L;

	k_embed_bwd<<<WARP_GRID(R0), 256>>>((int) R0, D->L, D->d, t->items, t->emb, dF,
										t->pv.in_ln_w, t->e_mu, t->e_rs, dk, dU, t->prod,
										t->gv.emb);
	KCHECK("k_embed_bwd");
	return norm_grads(t, t->prod, dF, R0, D->d, t->gv.in_ln_w, t->gv.in_ln_b);
}

#endif
