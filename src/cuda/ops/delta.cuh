/*
 * ops/delta.cuh - 3.4 step size (model.c's delta_forward / delta_backward):
 * delta [S*L, H] = softplus(dt * tdt + dt_bias), dt the last H columns of
 * zxd, tdt [R, L] the time path's scale (1 without is_time).
 */
#ifndef T4R_CUDA_OPS_DELTA_CUH
#define T4R_CUDA_OPS_DELTA_CUH

#include "../trainer.cuh"

/* delta = softplus(dt * tdt + dt_bias) */
__global__ void
k_delta(size_t R0, int L, int H, int in_dim, int dtc, int is_time, const float *zxd,
		const float *tdt, const float *dtb, float *delta)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= R0 * H)
		return;
	size_t		r = i / H;
	int			h = (int) (i % H);
	int			s = (int) (r / L),
				l = (int) (r % L);
	float		v = zxd[r * in_dim + dtc + h];

	if (is_time)
		v *= tdt[((size_t) s * H + h) * L + l];
	delta[i] = t4r_softplus_f32(v + dtb[h]);
}

/* delta backward */
__global__ void
k_delta_bwd(size_t R0, int L, int H, int in_dim, int dtc, int is_time, const float *zxd,
			const float *tdt, const float *dtb, const float *dd, float *gp,
			float *dzxd, float *dtdt)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= R0 * H)
		return;
	size_t		r = i / H;
	int			h = (int) (i % H);
	int			s = (int) (r / L),
				l = (int) (r % L);
	float		dt = zxd[r * in_dim + dtc + h];
	size_t		ti = ((size_t) s * H + h) * L + l;
	float		tf = is_time ? tdt[ti] : 1.0f;
	float		x = dt * tf + dtb[h];
	float		g = dd[i] * t4r_dsoftplus_f32(x);

	gp[i] = g;
	dzxd[r * in_dim + dtc + h] = g * tf;
	if (is_time)
		dtdt[ti] = g * dt;
}

/* zxd's dt columns, tdt -> delta [S*L, H] OVERWRITTEN */
static int
delta_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	int			dtc = 2 * D->Di + 2 * D->N;

	k_delta<<<GRID1(o->R0 * D->H, 256), 256>>>(o->R0, D->L, D->H, D->in_dim, dtc, D->is_time,
												o->A->zxd, o->A->tdt, o->P->dt_bias, o->A->delta);
	KCHECK("k_delta");
	return T4R_OK;
}

/* ddelta [S*L, H] -> the dt columns of dzxd and (is_time) dtdt [R, L]
 * OVERWRITTEN, dt_bias gradient ACCUMULATED (gp [S*L, H] scratch) */
static int
delta_backward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	int			dtc = 2 * D->Di + 2 * D->N;

	k_delta_bwd<<<GRID1(o->R0 * D->H, 256), 256>>>(o->R0, D->L, D->H, D->in_dim, dtc, D->is_time,
													o->A->zxd, o->A->tdt, o->P->dt_bias,
													t->ddelta, t->gp, t->dzxd, t->dtdt);
	KCHECK("k_delta_bwd");
	return colsum(t, t->gp, o->R0, D->H, D->H, o->GP->dt_bias);
}

#endif
