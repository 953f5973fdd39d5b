/*
 * ops/out_proj.cuh - 3.6 + 3.8 out_proj, dropout, residual, LayerNorm_d
 * (model.c's out_forward / out_backward / residual_backward): a [rows, d] =
 * Dropout(yn out_w^T + out_b) + U (no residual with one layer), hh =
 * LN(a).  Its residual + layer norm kernel and the layer norm backward also
 * serve the FFN (ffn.cuh).
 */
#ifndef T4R_CUDA_OPS_OUT_PROJ_CUH
#define T4R_CUDA_OPS_OUT_PROJ_CUH

#include "../trainer.cuh"

/* a = a * mask_o + U (residual), LayerNorm_d: one warp per row */
__global__ void
k_res_ln(int rows, int d, int L, int last, const int *nv, DK dk, uint64_t site,
		 float *a, const float *U, int residual, const float *lw, const float *lb,
		 double eps, float *out, float *mu, float *rs)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= rows)
		return;
	int			s,
				l;

	row_sl(r, last, L, nv, &s, &l);
	float	   *ar = a + (size_t) r * d;
	const float *u = U + (size_t) r * d;

	for (int c = lane; c < d; c += 32)
	{
		uint64_t	i = last ? (uint64_t) c : (uint64_t) l * d + c;

		ar[c] = ar[c] * d_mask(dk, s, site, i) + (residual ? u[c] : 0.0f);
	}
	__syncwarp();
	warp_ln_fwd(ar, d, lw, lb, eps, out + (size_t) r * d, mu + r, rs + r);
}

/* layer norm backward over rows (one warp per row): dx, prod = dy*xhat */
__global__ void
k_ln_bwd(int rows, int n, const float *x, const float *dy, const float *w, const float *mu,
		 const float *rs, float *dx, float *prod)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);

	if (r >= rows)
		return;
	warp_ln_bwd(x + (size_t) r * n, dy + (size_t) r * n, n, w, mu[r], rs[r],
				dx ? dx + (size_t) r * n : NULL, prod + (size_t) r * n);
}

/* dU[row of r] += da[r] */
__global__ void
k_add_rows(int rows, int d, int L, int last, const int *nv, float *dU, const float *da)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= (size_t) rows * d)
		return;
	int			r = (int) (i / d),
				c = (int) (i % d);
	size_t		gr = last ? (size_t) r * L + nv[r] - 1 : (size_t) r;

	dU[gr * d + c] += da[i];
}

/* yn [rows, Di], U (last layer: Ur [S, d], gathered here) -> a, hh [rows,
 * d], a_mu, a_rs [rows] OVERWRITTEN */
static int
out_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	LAct	   *A = o->A;
	int			d = D->d,
				rows = o->rows;
	const float *U = A->U;
	int			rc;

	if (o->last)
	{
		k_gather_last<<<GRID1((size_t) o->S * d, 256), 256>>>(o->S, D->L, t->nv, A->U, d, d, A->Ur, d);
		KCHECK("k_gather_last");
		U = A->Ur;
	}
	if ((rc = affine(t, rows, d, D->Di, A->yn, o->P->out_w, o->P->out_b, A->a)))
		return rc;
	k_res_ln<<<WARP_GRID(rows), 256>>>(rows, d, D->L, o->last, t->nv, o->dk,
									   T4R_SITE_LAYER(o->li, T4R_LSITE_O), A->a, U, D->layers > 1,
									   o->P->ln_w, o->P->ln_b, o->cfg->norm_eps, A->hh, A->a_mu,
									   A->a_rs);
	KCHECK("k_res_ln");
	return T4R_OK;
}

/* dhh [rows, d] (gradient of hh, FFN residual included) -> da [rows, d]
 * (read again by residual_backward), dob [rows, d], dyn [rows, Di]
 * OVERWRITTEN; ln, out_w, out_b gradients ACCUMULATED */
static int
out_backward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	LAct	   *A = o->A;
	int			d = D->d,
				rows = o->rows;
	int			rc;

	k_ln_bwd<<<WARP_GRID(rows), 256>>>(rows, d, A->a, t->dhh, o->P->ln_w, A->a_mu, A->a_rs, t->da,
									   t->prod);
	KCHECK("k_ln_bwd res");
	if ((rc = norm_grads(t, t->prod, t->dhh, rows, d, o->GP->ln_w, o->GP->ln_b)))
		return rc;
	k_rowmask<<<GRID1((size_t) rows * d, 256), 256>>>(rows, d, D->L, o->last, t->nv, o->dk,
													  T4R_SITE_LAYER(o->li, T4R_LSITE_O),
													  t->da, NULL, t->dob, 1);
	return affine_bwd(t, rows, d, D->Di, t->dob, A->yn, o->P->out_w, o->GP->out_w, o->GP->out_b,
					  t->dyn);
}

/* the residual branch of out_forward: dU [S*L, d] (at each row's position)
 * ACCUMULATED with da; runs after in_proj_backward, which OVERWRITES dU */
static int
residual_backward(const gop *o, float *dU)
{
	t4r_cuda_trainer *t = o->t;

	if (o->D->layers > 1)
		k_add_rows<<<GRID1((size_t) o->rows * o->D->d, 256), 256>>>(o->rows, o->D->d, o->D->L,
																	 o->last, t->nv, dU, t->da);
	KCHECK("residual bwd");
	return T4R_OK;
}

#endif
