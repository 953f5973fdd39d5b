/*
 * ops/common.cuh - device helpers shared by the op headers of the CUDA path
 * (src/cuda/ops/): the dropout key and mask (the CPU's
 * t4r_dropout_mask values), warp reductions, one warp's layer norm forward
 * and backward, the row mapping of the last layer, the dropout row-mask
 * kernel, bias fill, elementwise add, the gather of each sample's last row
 * (last layer), the launch-grid macros.
 */
#ifndef T4R_CUDA_OPS_COMMON_CUH
#define T4R_CUDA_OPS_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "model_internal.h"
}
#include "mathfn.h"

/* dropout key: on == 0 means identity */
struct DK
{
	uint64_t	seed, step, thr;
	float		keep;
	int			on;
	int			idx0;			/* batch index of sample 0 */
};

/* element i of t4r_dropout_mask(seed, step, sample, site) */
__device__ __forceinline__ float
d_mask(const DK &k, int s, uint64_t site, uint64_t i)
{
	if (!k.on)
		return 1.0f;
	uint64_t	base = t4r_hash64(k.seed, k.step, (uint64_t) (k.idx0 + s), site);

	return t4r_dropout_bits(base, i) < k.thr ? 0.0f : k.keep;
}

__device__ __forceinline__ float
warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ double
warp_sumd(double v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* two-pass layer norm of x[0..n-1] by one warp (double accumulation) */
__device__ void
warp_ln_fwd(const float *x, int n, const float *w, const float *b, double eps,
			float *y, float *mu_out, float *rs_out)
{
	int			lane = threadIdx.x & 31;
	double		s = 0,
				v = 0,
				mean,
				rstd;

	for (int i = lane; i < n; i += 32)
		s += x[i];
	s = warp_sumd(s);
	mean = s / n;
	for (int i = lane; i < n; i += 32)
	{
		double		c = x[i] - mean;

		v += c * c;
	}
	v = warp_sumd(v) / n;
	rstd = 1.0 / sqrt(v + eps);
	for (int i = lane; i < n; i += 32)
		y[i] = (float) ((x[i] - mean) * rstd * w[i] + b[i]);
	if (lane == 0)
	{
		*mu_out = (float) mean;
		*rs_out = (float) rstd;
	}
}

/* layer norm backward by one warp: dx written (may be NULL), prod[i] =
 * dy*xhat (for the weight gradient; may be NULL) */
__device__ void
warp_ln_bwd(const float *x, const float *dy, int n, const float *w, float mu, float rs,
			float *dx, float *prod)
{
	int			lane = threadIdx.x & 31;
	double		sg = 0,
				sgx = 0;

	for (int i = lane; i < n; i += 32)
	{
		double		xh = (x[i] - (double) mu) * rs;
		double		g = (double) dy[i] * w[i];

		if (prod)
			prod[i] = (float) (dy[i] * xh);
		sg += g;
		sgx += g * xh;
	}
	sg = warp_sumd(sg) / n;
	sgx = warp_sumd(sgx) / n;
	if (dx)
		for (int i = lane; i < n; i += 32)
		{
			double		xh = (x[i] - (double) mu) * rs;
			double		g = (double) dy[i] * w[i];

			dx[i] = (float) ((g - sg - xh * sgx) * rs);
		}
}

#define GRID1(total, bs) ((unsigned) (((total) + (bs) - 1) / (bs)))
#define WARP_GRID(rows) ((unsigned) (((rows) + 7) / 8))

__global__ void
k_fill_bias(float *X, size_t rows, int cols, const float *b)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < rows * cols)
		X[i] = b[i % cols];
}

/* row r -> sample, position */
__device__ __forceinline__ void
row_sl(int r, int last, int L, const int *nv, int *s, int *l)
{
	if (last)
	{
		*s = r;
		*l = nv[r] - 1;
	}
	else
	{
		*s = r / L;
		*l = r % L;
	}
}

/* mode 0: out = hardswish(in) * mask; 1: out = in * mask; 2: out *= mask *
 * dhardswish(aux) */
__global__ void
k_rowmask(size_t rows, int w, int L, int last, const int *nv, DK dk, uint64_t site,
		  const float *in, const float *aux, float *out, int mode)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= rows * w)
		return;
	int			r = (int) (i / w),
				c = (int) (i % w),
				s,
				l;

	row_sl(r, last, L, nv, &s, &l);
	float		m = d_mask(dk, s, site, last ? (uint64_t) c : (uint64_t) l * w + c);

	if (mode == 0)
		out[i] = t4r_hardswish(in[i]) * m;
	else if (mode == 1)
		out[i] = in[i] * m;
	else
		out[i] = out[i] * m * t4r_dhardswish(aux[i]);
}

__global__ void
k_add(size_t n, float *a, const float *b)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		a[i] += b[i];
}

/* dst[s, 0..cols) = src[(s*L + n[s]-1), 0..cols) */
__global__ void
k_gather_last(int S, int L, const int *nv, const float *src, int lds, int cols,
			  float *dst, int ldd)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= (size_t) S * cols)
		return;
	int			s = (int) (i / cols),
				c = (int) (i % cols);

	dst[(size_t) s * ldd + c] = src[((size_t) s * L + nv[s] - 1) * lds + c];
}

#endif
