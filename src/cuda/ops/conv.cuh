/*
 * ops/conv.cuh - 3.2 causal depthwise conv over the xBC columns + hardswish
 * (model.c's conv_forward / conv_backward), per sample along its L rows.
 */
#ifndef T4R_CUDA_OPS_CONV_CUH
#define T4R_CUDA_OPS_CONV_CUH

#include "../trainer.cuh"

#define CONV_PARTS 256			/* row chunks of the conv weight gradient */

/* causal depthwise conv + hardswish over the xBC columns of zxd */
__global__ void
k_conv_fwd(size_t R0, int L, int in_dim, int Di, int C, int K, const float *zxd,
		   const float *w, const float *b, float *cpre, float *xbc)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= R0 * C)
		return;
	size_t		r = i / C;
	int			c = (int) (i % C);
	int			l = (int) (r % L);
	float		acc = b[c];

	for (int k = 0; k < K; k++)
	{
		int			j = l - (K - 1) + k;

		if (j >= 0)
			acc += w[c * K + k] * zxd[(r - (K - 1) + k) * in_dim + Di + c];
	}
	cpre[i] = acc;
	xbc[i] = t4r_hardswish(acc);
}

/* conv: dc = dxbc * dhardswish(cpre) in place */
__global__ void
k_conv_dc(size_t n, float *dc, const float *cpre)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		dc[i] *= t4r_dhardswish(cpre[i]);
}

/* conv input gradient into dzxd's xBC columns */
__global__ void
k_conv_dv(size_t R0, int L, int in_dim, int Di, int C, int K, const float *dc,
		  const float *w, float *dzxd)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= R0 * C)
		return;
	size_t		r = i / C;
	int			c = (int) (i % C);
	int			j = (int) (r % L);
	float		acc = 0;

	for (int k = 0; k < K; k++)
	{
		int			l = j + (K - 1) - k;

		if (l < L)
			acc += dc[(r + (K - 1) - k) * C + c] * w[c * K + k];
	}
	dzxd[r * in_dim + Di + c] = acc;
}

/* conv weight gradient partials: part[chunk][c*K + k] */
__global__ void
k_conv_dw(size_t R0, int L, int in_dim, int Di, int C, int K, const float *dc,
		  const float *zxd, float *part)
{
	int			chunk = blockIdx.y;
	size_t		per = (R0 + gridDim.y - 1) / gridDim.y;
	size_t		r0 = chunk * per,
				r1 = r0 + per < R0 ? r0 + per : R0;

	for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x)
	{
		float		acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};

		for (size_t r = r0; r < r1; r++)
		{
			int			l = (int) (r % L);
			float		g = dc[r * C + c];

			for (int k = 0; k < K; k++)
			{
				int			j = l - (K - 1) + k;

				if (j >= 0)
					acc[k] += g * zxd[(r - (K - 1) + k) * in_dim + Di + c];
			}
		}
		for (int k = 0; k < K; k++)
			part[(size_t) chunk * C * K + (size_t) c * K + k] = acc[k];
	}
}

/* the xBC columns of zxd [S*L, in_dim] -> cpre [S*L, C] (before the
 * hardswish), xbc [S*L, C] OVERWRITTEN */
static int
conv_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	size_t		R0 = o->R0;
	int			C = D->conv_dim;

	k_conv_fwd<<<GRID1(R0 * C, 256), 256>>>(R0, D->L, D->in_dim, D->Di, C, D->K, o->A->zxd,
											 o->P->conv_w, o->P->conv_b, o->A->cpre, o->A->xbc);
	KCHECK("k_conv_fwd");
	return T4R_OK;
}

/* dxbc [S*L, C] (gradient of xbc) -> dxbc through the hardswish (in
 * place), the xBC columns of dzxd [S*L, in_dim] OVERWRITTEN; conv_b,
 * conv_w gradients ACCUMULATED (cpart [CONV_PARTS, C*K] scratch) */
static int
conv_backward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	size_t		R0 = o->R0;
	int			C = D->conv_dim,
				K = D->K;
	int			rc;

	k_conv_dc<<<GRID1(R0 * C, 256), 256>>>(R0 * C, t->dxbc, o->A->cpre);
	if ((rc = colsum(t, t->dxbc, R0, C, C, o->GP->conv_b)))
		return rc;
	k_conv_dv<<<GRID1(R0 * C, 256), 256>>>(R0, D->L, D->in_dim, D->Di, C, K, t->dxbc,
											o->P->conv_w, t->dzxd);
	{
		dim3		g((C + 127) / 128, CONV_PARTS);

		k_conv_dw<<<g, 128>>>(R0, D->L, D->in_dim, D->Di, C, K, t->dxbc, o->A->zxd, t->cpart);
	}
	KCHECK("conv bwd");
	return colsum(t, t->cpart, CONV_PARTS, C * K, C * K, o->GP->conv_w);
}

#endif
