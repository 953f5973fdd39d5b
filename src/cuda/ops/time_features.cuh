/*
 * ops/time_features.cuh - 2. time features (is_time; model.c's
 * time_features_forward / time_features_backward): td [S, L] -> layer norm
 * over L (layer_norm_time) broadcast to the first layer's T [R, L], R = S*H.
 */
#ifndef T4R_CUDA_OPS_TIME_FEATURES_CUH
#define T4R_CUDA_OPS_TIME_FEATURES_CUH

#include "../trainer.cuh"

/* time differences (given), dropout, layer_norm_time, copy to H heads */
__global__ void
k_td_ln(int S, int L, int H, const float *td, DK dk, const float *lw, const float *lb,
		double eps, float *tdm, float *T0, float *mu, float *rs)
{
	int			s = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (s >= S)
		return;
	float	   *x = tdm + (size_t) s * L;
	float	   *T = T0 + (size_t) s * H * L;

	for (int l = lane; l < L; l += 32)
		x[l] = td[(size_t) s * L + l] * d_mask(dk, s, T4R_SITE_TD, l);
	__syncwarp();
	warp_ln_fwd(x, L, lw, lb, eps, T, mu + s, rs + s);
	__syncwarp();
	for (int h = 1; h < H; h++)
		for (int l = lane; l < L; l += 32)
			T[(size_t) h * L + l] = T[l];
}

/* layer_norm_time backward: dtsum = sum over heads, prod = dtsum * xhat */
__global__ void
k_td_bwd(int S, int L, int H, const float *dT, const float *tdm, const float *lw,
		 const float *mu, const float *rs, float *dtsum, float *prod)
{
	int			s = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (s >= S)
		return;
	float	   *o = dtsum + (size_t) s * L;

	for (int l = lane; l < L; l += 32)
	{
		float		acc = 0;

		for (int h = 0; h < H; h++)
			acc += dT[((size_t) s * H + h) * L + l];
		o[l] = acc;
	}
	__syncwarp();
	warp_ln_bwd(tdm + (size_t) s * L, o, L, lw, mu[s], rs[s], NULL, prod + (size_t) s * L);
}

/* td [S, L] -> tdm [S, L] (after dropout), the first layer's T [R, L],
 * t_mu, t_rs [S] OVERWRITTEN */
static int
time_features_forward(t4r_cuda_trainer *t, int S, DK dk)
{
	const t4r_dims *D = &t->D;

	k_td_ln<<<WARP_GRID(S), 256>>>(S, D->L, D->H, t->td, dk, t->pv.tln_w, t->pv.tln_b,
								   t->m->cfg.norm_eps, t->tdm, t->la[0].T, t->t_mu, t->t_rs);
	KCHECK("k_td_ln");
	return T4R_OK;
}

/* dT [R, L] (gradient of the first layer's T) -> layer_norm_time gradients
 * ACCUMULATED; dtsum [S, L] scratch */
static int
time_features_backward(t4r_cuda_trainer *t, int S, const float *dT)
{
	const t4r_dims *D = &t->D;

	k_td_bwd<<<WARP_GRID(S), 256>>>(S, D->L, D->H, dT, t->tdm, t->pv.tln_w, t->t_mu, t->t_rs,
									t->dtsum, t->prod);
	KCHECK("k_td_bwd");
	return norm_grads(t, t->prod, t->dtsum, S, D->L, t->gv.tln_w, t->gv.tln_b);
}

#endif
