/*
 * ops/gnorm.cuh - 3.5 gated RMS norm (model.c's gnorm_forward /
 * gnorm_backward): g = y * silu(z), yn [rows, Di] = g / sqrt(mean(g^2) +
 * eps) * norm_w, one warp per row.  In the last layer y and z are first
 * gathered at each sample's last position (rows = S).
 */
#ifndef T4R_CUDA_OPS_GNORM_CUH
#define T4R_CUDA_OPS_GNORM_CUH

#include "../trainer.cuh"

/* gated RMS norm forward: one warp per row */
__global__ void
k_rms_fwd(int rows, int Di, const float *y, const float *z, int ldz, const float *nw,
		  double eps, float *rrs, float *yn)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= rows)
		return;
	const float *yr = y + (size_t) r * Di;
	const float *zr = z + (size_t) r * ldz;
	float	   *o = yn + (size_t) r * Di;
	double		ss = 0;

	for (int c = lane; c < Di; c += 32)
	{
		float		g = yr[c] * zr[c] * t4r_sigmoid_f32(zr[c]);

		o[c] = g;
		ss += (double) g * g;
	}
	ss = warp_sumd(ss);
	double		rs = 1.0 / sqrt(ss / Di + eps);
	float		rsr = (float) rs;

	if (lane == 0)
		rrs[r] = rsr;
	for (int c = lane; c < Di; c += 32)
		o[c] = o[c] * rsr * nw[c];
}

/* gated RMS norm backward: one warp per row; dy/dz rows mapped (last: to
 * s*L + n-1 of full-row buffers) */
__global__ void
k_rms_bwd(int rows, int Di, int L, int last, const int *nv, const float *y,
		  const float *z, int ldz, const float *rrs, const float *dyn, const float *nw,
		  float *dy, float *dz, int lddz, float *prod)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= rows)
		return;
	size_t		gr = last ? (size_t) r * L + nv[r] - 1 : (size_t) r;
	const float *yr = y + (size_t) r * Di;
	const float *zr = z + (size_t) r * ldz;
	const float *dn = dyn + (size_t) r * Di;
	float		rs = rrs[r];
	double		dot = 0;

	for (int c = lane; c < Di; c += 32)
	{
		float		g = yr[c] * zr[c] * t4r_sigmoid_f32(zr[c]);

		prod[(size_t) r * Di + c] = dn[c] * g * rs;
		dot += (double) dn[c] * nw[c] * g;
	}
	dot = warp_sumd(dot);
	float		k2 = (float) ((double) rs * rs * rs * dot / Di);

	for (int c = lane; c < Di; c += 32)
	{
		float		sg = t4r_sigmoid_f32(zr[c]);
		float		g = yr[c] * zr[c] * sg;
		float		dg = rs * dn[c] * nw[c] - k2 * g;

		dy[gr * Di + c] = dg * zr[c] * sg;
		dz[gr * lddz + c] = dg * yr[c] * sg * (1 + zr[c] * (1 - sg));
	}
}

/* y [S*L, Di], the z columns of zxd -> (last layer: yr, zr [S, Di] their
 * last rows) yn [rows, Di] and rrs [rows] OVERWRITTEN */
static int
gnorm_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	LAct	   *A = o->A;
	int			S = o->S,
				Di = D->Di;
	const float *z = A->zxd;
	const float *y = A->y;
	int			ldz = D->in_dim;

	if (o->last)
	{
		k_gather_last<<<GRID1((size_t) S * Di, 256), 256>>>(S, D->L, t->nv, A->y, Di, Di, A->yr, Di);
		k_gather_last<<<GRID1((size_t) S * Di, 256), 256>>>(S, D->L, t->nv, A->zxd, D->in_dim, Di, A->zr, Di);
		KCHECK("k_gather_last");
		z = A->zr;
		y = A->yr;
		ldz = Di;
	}
	k_rms_fwd<<<WARP_GRID(o->rows), 256>>>(o->rows, Di, y, z, ldz, o->P->norm_w, o->cfg->norm_eps,
										   A->rrs, A->yn);
	KCHECK("k_rms_fwd");
	return T4R_OK;
}

/* dyn [rows, Di] -> dyfull [S*L, Di] (gradient of y) and the z columns of
 * dzxd OVERWRITTEN (last layer: both zeroed first, written at the last
 * rows), norm_w gradient ACCUMULATED */
static int
gnorm_backward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	LAct	   *A = o->A;
	int			Di = D->Di,
				in_dim = D->in_dim;
	const float *z = o->last ? A->zr : A->zxd;
	const float *y = o->last ? A->yr : A->y;
	int			ldz = o->last ? Di : in_dim;

	if (o->last)
	{
		CK(cudaMemsetAsync(t->dyfull, 0, sizeof(float) * o->R0 * Di));
		CK(cudaMemsetAsync(t->dzxd, 0, sizeof(float) * o->R0 * in_dim));
	}
	k_rms_bwd<<<WARP_GRID(o->rows), 256>>>(o->rows, Di, D->L, o->last, t->nv, y, z, ldz, A->rrs,
										   t->dyn, o->P->norm_w, t->dyfull, t->dzxd, in_dim,
										   t->prod);
	KCHECK("k_rms_bwd");
	return colsum(t, t->prod, o->rows, Di, Di, o->GP->norm_w);
}

#endif
