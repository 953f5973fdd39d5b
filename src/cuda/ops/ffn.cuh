/*
 * ops/ffn.cuh - 3.9 the FFN (model.c's ffn_forward / ffn_backward): f1
 * [rows, 4d] = hh fc1_w^T + fc1_b, h1 = Dropout(hardswish(f1)), b [rows, d]
 * = Dropout(h1 fc2_w^T + fc2_b) + hh, F = LN(b) (eps 1e-12).  Its kernels
 * are shared: k_rowmask (common.cuh), k_res_ln and k_ln_bwd (out_proj.cuh).
 */
#ifndef T4R_CUDA_OPS_FFN_CUH
#define T4R_CUDA_OPS_FFN_CUH

#include "../trainer.cuh"
#include "out_proj.cuh"

/* hh [rows, d] -> f1, h1 [rows, 4d], b, F [rows, d] (the next layer's U or
 * the hidden state), b_mu, b_rs [rows] OVERWRITTEN */
static int
ffn_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	const t4r_lparams *P = o->P;
	LAct	   *A = o->A;
	int			d = D->d,
				f = D->ffn_dim,
				rows = o->rows;
	int			rc;

	if ((rc = affine(t, rows, f, d, A->hh, P->fc1_w, P->fc1_b, A->f1)))
		return rc;
	k_rowmask<<<GRID1((size_t) rows * f, 256), 256>>>(rows, f, D->L, o->last, t->nv, o->dk,
													  T4R_SITE_LAYER(o->li, T4R_LSITE_FFN1),
													  A->f1, NULL, A->h1, 0);
	if ((rc = affine(t, rows, d, f, A->h1, P->fc2_w, P->fc2_b, A->b)))
		return rc;
	/* b = b * m2 + hh, LayerNorm eps 1e-12 */
	k_res_ln<<<WARP_GRID(rows), 256>>>(rows, d, D->L, o->last, t->nv, o->dk,
									   T4R_SITE_LAYER(o->li, T4R_LSITE_FFN2), A->b, A->hh, 1,
									   P->fln_w, P->fln_b, 1e-12, A->F, A->b_mu, A->b_rs);
	KCHECK("k_res_ln 2");
	return T4R_OK;
}

/* dF [rows, d] (gradient of F) -> dhh [rows, d] (gradient of hh through fc1
 * and the residual), db, df2 [rows, d], dh1 [rows, 4d] OVERWRITTEN; fln,
 * fc2, fc1 gradients ACCUMULATED */
static int
ffn_backward(const gop *o, const float *dF)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	const t4r_lparams *P = o->P,
			   *GP = o->GP;
	LAct	   *A = o->A;
	int			d = D->d,
				f = D->ffn_dim,
				rows = o->rows;
	int			rc;

	k_ln_bwd<<<WARP_GRID(rows), 256>>>(rows, d, A->b, dF, P->fln_w, A->b_mu, A->b_rs, t->db,
									   t->prod);
	KCHECK("k_ln_bwd ffn");
	if ((rc = norm_grads(t, t->prod, dF, rows, d, GP->fln_w, GP->fln_b)))
		return rc;
	/* fc2 after its dropout */
	k_rowmask<<<GRID1((size_t) rows * d, 256), 256>>>(rows, d, D->L, o->last, t->nv, o->dk,
													  T4R_SITE_LAYER(o->li, T4R_LSITE_FFN2),
													  t->db, NULL, t->df2, 1);
	if ((rc = affine_bwd(t, rows, d, f, t->df2, A->h1, P->fc2_w, GP->fc2_w, GP->fc2_b, t->dh1)))
		return rc;
	k_rowmask<<<GRID1((size_t) rows * f, 256), 256>>>(rows, f, D->L, o->last, t->nv, o->dk,
													  T4R_SITE_LAYER(o->li, T4R_LSITE_FFN1),
													  NULL, A->f1, t->dh1, 2);
	KCHECK("k_rowmask");
	if ((rc = affine_bwd(t, rows, f, d, t->dh1, A->hh, P->fc1_w, GP->fc1_w, GP->fc1_b, t->dhh)))
		return rc;
	k_add<<<GRID1((size_t) rows * d, 256), 256>>>((size_t) rows * d, t->dhh, t->db);
	KCHECK("k_add ffn");
	return T4R_OK;
}

#endif
