/*
 * ops/in_proj.cuh - 3.1 in_proj (model.c's in_proj_forward /
 * in_proj_backward): zxd [S*L, in_dim] = U [S*L, d] in_w^T + in_b, columns
 * z | xBC | dt (widths Di, Di + 2N, H).  cuBLAS only: no kernels of its own.
 */
#ifndef T4R_CUDA_OPS_IN_PROJ_CUH
#define T4R_CUDA_OPS_IN_PROJ_CUH

#include "../trainer.cuh"

/* U [S*L, d] -> zxd [S*L, in_dim] OVERWRITTEN (every row, z included, also
 * in the last layer) */
static int
in_proj_forward(const gop *o)
{
	return affine(o->t, (int) o->R0, o->D->in_dim, o->D->d, o->A->U, o->P->in_w, o->P->in_b,
				  o->A->zxd);
}

/* dzxd [S*L, in_dim] (complete) -> dU [S*L, d] OVERWRITTEN (the residual
 * branch is added by residual_backward), in_w, in_b gradients ACCUMULATED */
static int
in_proj_backward(const gop *o, float *dU)
{
	t4r_cuda_trainer *t = o->t;

	return affine_bwd(t, o->R0, o->D->in_dim, o->D->d, t->dzxd, o->A->U, o->P->in_w,
					  o->GP->in_w, o->GP->in_b, dU);
}

#endif
