/*
 * ops/adam.cuh - the Adam update of every parameter (src/core/train.c's
 * step): one thread per parameter, moments am, av on the device; with
 * weight_decay > 0 AdamW's decoupled decay p *= decay first.
 */
#ifndef T4R_CUDA_OPS_ADAM_CUH
#define T4R_CUDA_OPS_ADAM_CUH

#include "../trainer.cuh"

__global__ void
k_adam(size_t n, float *p, const float *g, float *m, float *v, double lrbc1, double bc2s,
	   float decay)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= n)
		return;
	const double b1 = 0.9,
				b2 = 0.999,
				eps = 1e-8;
	double		gi = g[i];
	double		mi = b1 * m[i] + (1 - b1) * gi;
	double		vi = b2 * v[i] + (1 - b2) * gi * gi;

	m[i] = (float) mi;
	v[i] = (float) vi;
	if (decay != 1.0f)
		p[i] *= decay;
	p[i] -= (float) (lrbc1 * mi / (sqrt(vi) / bc2s + eps));
}

/* p [total] updated from g with the moments am, av (step t->steps + 1) */
static int
adam_step(t4r_cuda_trainer *t)
{
	double		lr = t->m->cfg.learning_rate,
				k,
				bc1,
				bc2s;

	k = (double) (t->steps + 1);
	bc1 = 1 - pow(0.9, k);
	bc2s = sqrt(1 - pow(0.999, k));
	k_adam<<<GRID1(t->total, 256), 256>>>(t->total, t->p, t->g, t->am, t->av, lr / bc1, bc2s,
											   (float) (1 - lr * t->m->cfg.weight_decay));
	KCHECK("k_adam");
	return T4R_OK;
}

#endif
