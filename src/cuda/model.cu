/*
 * model.cu - TiM4Rec forward, backward, Adam and inference on a CUDA GPU.
 *
 * Mirrors src/core/model.c (the oracle) with full-L rows per sample: row
 * r = s*L + l of the item-path buffers.  Positions l >= n of a right-padded
 * sample are computed (item 0) but cannot reach the output (the item path
 * is causal) and receive exactly zero gradient.  The last layer keeps one
 * row per sample (position n-1) after the SSD, as the CPU does, and its
 * dropout masks are indexed like the CPU's (per sample, d or 4d values).
 * The time path runs over all L positions, R = S*H rows of length L.
 *
 * The SSD runs as chunked kernels (the CPU core's matrix form: per chunk
 * small masked products in shared memory, states passed between chunks) by
 * default, or as the plain recurrence with checkpoints when
 * T4R_CUDA_SSD=recurrent (see ssd_choose).
 *
 * Products go through cuBLAS in full FP32 (CUBLAS_PEDANTIC_MATH: no TF32).
 * Column sums (bias and norm-weight gradients) are GEMVs with a ones vector,
 * so they are deterministic; the embedding scatter-add uses atomics.
 */
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

extern "C" {
#include "model_internal.h"
}
#include "mathfn.h"
#include "t4r_cuda.h"

#define SSD_CH 16				/* checkpoint interval of the recurrent SSD */
#define CONV_PARTS 256			/* row chunks of the conv weight gradient */

/* ------------------------------------------------------------------ */
/* device helpers                                                      */
/* ------------------------------------------------------------------ */
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

/* ------------------------------------------------------------------ */
/* forward kernels                                                     */
/* ------------------------------------------------------------------ */
__global__ void
k_fill_bias(float *X, size_t rows, int cols, const float *b)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < rows * cols)
		X[i] = b[i % cols];
}

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

/* out[r, l] = in[r, l] * time-dropout mask (rows r = s*H + h, index h*L+l) */
__global__ void
k_time_mask(int R, int L, int H, const float *in, DK dk, uint64_t site, float *out, int add)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= (size_t) R * L)
		return;
	int			r = (int) (i / L),
				l = (int) (i % L);
	float		v = in[i] * d_mask(dk, r / H, site, (uint64_t) (r % H) * L + l);

	if (add)
		out[i] += v;
	else
		out[i] = v;
}

__global__ void
k_silu(size_t n, const float *a, float *o)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		o[i] = a[i] * t4r_sigmoid_f32(a[i]);
}

/* per time row: q = T*s, two causal convs with hardswish */
__global__ void
k_time_conv(int L, int H, int K, const float *T, const float *Sc, const float *c1w,
			const float *c1b, const float *c2w, const float *c2b, float *P1, float *P2,
			float *tdt)
{
	extern __shared__ float sm[];
	float	   *q = sm,
			   *r1 = sm + L;
	int			r = blockIdx.x,
				h = r % H;
	size_t		o = (size_t) r * L;

	for (int l = threadIdx.x; l < L; l += blockDim.x)
		q[l] = T[o + l] * Sc[o + l];
	__syncthreads();
	for (int l = threadIdx.x; l < L; l += blockDim.x)
	{
		float		acc = c1b[h];

		for (int k = 0; k < K; k++)
		{
			int			j = l - (K - 1) + k;

			if (j >= 0)
				acc += c1w[h * K + k] * q[j];
		}
		P1[o + l] = acc;
		r1[l] = t4r_hardswish(acc);
	}
	__syncthreads();
	for (int l = threadIdx.x; l < L; l += blockDim.x)
	{
		float		acc = c2b[h];

		for (int k = 0; k < K; k++)
		{
			int			j = l - (K - 1) + k;

			if (j >= 0)
				acc += c2w[h * K + k] * r1[j];
		}
		P2[o + l] = acc;
		tdt[o + l] = t4r_hardswish(acc);
	}
}

/* gate mix and time_layer_norm: one warp per time row */
__global__ void
k_gate_fwd(int R, int L, int G, const float *gpre, const float *T, const float *tdt,
		   const float *lw, const float *lb, double eps, float *GT, float *X,
		   float *Tn, float *mu, float *rs)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= R)
		return;
	size_t		o = (size_t) r * L;

	for (int l = lane; l < L; l += 32)
	{
		float		g = t4r_sigmoid_f32(gpre[(size_t) r * G + (G == 1 ? 0 : l)]);

		if (G != 1 || l == 0)
			GT[(size_t) r * G + (G == 1 ? 0 : l)] = g;
		X[o + l] = g * T[o + l] + (1 - g) * tdt[o + l];
	}
	__syncwarp();
	warp_ln_fwd(X + o, L, lw, lb, eps, Tn + o, mu + r, rs + r);
}

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

/* SSD recurrence forward, one block per (sample, head): warp w holds rows
 * p = w + nw*k of the state, lane the columns n = lane + 32*j.
 * Launched with up to 32 warps (1024 threads) per block: __launch_bounds__
 * caps the registers at 64 per thread so that such a block fits the
 * register file (65,536 per block).  Without it the backward used 165-255
 * registers and every launch with head_dim >= 32 failed on a real GPU
 * ("too many resources requested for launch"; the CPU emulator has no
 * register file, so only the H200 run of 2026-12-04 showed it). */
template <int PPW, int NPL>
__global__ void __launch_bounds__(1024, 1)
k_ssd_fwd(int L, int H, int P, int N, int C, int Di, int nch, const float *xbc,
		  const float *delta, const float *A_log, const float *Dp, float *y, float *ckpt)
{
	int			sh = blockIdx.x,
				s = sh / H,
				h = sh % H;
	int			warp = threadIdx.x >> 5,
				lane = threadIdx.x & 31,
				nw = blockDim.x >> 5;
	float		a = (float) (-exp((double) A_log[h]));
	float		Dh = Dp[h];
	float		st[PPW][NPL];

#pragma unroll
	for (int k = 0; k < PPW; k++)
#pragma unroll
		for (int j = 0; j < NPL; j++)
			st[k][j] = 0;
	for (int l = 0; l < L; l++)
	{
		size_t		row = (size_t) s * L + l;
		const float *xr = xbc + row * C;
		float		dl = delta[row * H + h];
		float		dA = expf(dl * a);
		float		Bv[NPL],
					Cv[NPL];

#pragma unroll
		for (int j = 0; j < NPL; j++)
		{
			int			n = lane + 32 * j;

			Bv[j] = n < N ? xr[Di + n] : 0;
			Cv[j] = n < N ? xr[Di + N + n] : 0;
		}
#pragma unroll
		for (int k = 0; k < PPW; k++)
		{
			int			p = warp + nw * k;
			float		xv = p < P ? xr[h * P + p] : 0;
			float		acc = 0;

#pragma unroll
			for (int j = 0; j < NPL; j++)
			{
				st[k][j] = dA * st[k][j] + dl * xv * Bv[j];
				acc += Cv[j] * st[k][j];
			}
			acc = warp_sum(acc);
			if (p < P && lane == 0)
				y[row * Di + h * P + p] = acc + Dh * xv;
		}
		if ((l % SSD_CH) == SSD_CH - 1 || l == L - 1)
		{
			int			c = l / SSD_CH;

#pragma unroll
			for (int k = 0; k < PPW; k++)
#pragma unroll
				for (int j = 0; j < NPL; j++)
				{
					int			p = warp + nw * k,
								n = lane + 32 * j;

					if (p < P && n < N)
						ckpt[(((size_t) sh * nch + c) * P + p) * N + n] = st[k][j];
				}
		}
	}
}

/* SSD backward, same mapping; states recomputed per chunk from the
 * checkpoints.  dB/dC per head (summed over heads later), ddelta, dA and dD
 * partials per (sample, head). */
template <int PPW, int NPL>
__global__ void __launch_bounds__(1024, 1)
k_ssd_bwd(int L, int H, int P, int N, int C, int Di, int nch, const float *xbc,
		  const float *delta, const float *A_log, const float *Dp, const float *ckpt,
		  const float *dy, float *dx, float *dBh, float *dCh, float *ddelta,
		  float *dAp, float *dDp)
{
	extern __shared__ float sm[];
	int			sh = blockIdx.x,
				s = sh / H,
				h = sh % H;
	int			warp = threadIdx.x >> 5,
				lane = threadIdx.x & 31,
				nw = blockDim.x >> 5;
	float	   *sB = sm,
			   *sC = sm + nw * N,
			   *sdd = sm + 2 * nw * N;
	float		a = (float) (-exp((double) A_log[h]));
	float		Dh = Dp[h];
	float		dS[PPW][NPL];
	float		anext = 0,
				dAacc = 0,
				dDacc = 0;

#pragma unroll
	for (int k = 0; k < PPW; k++)
#pragma unroll
		for (int j = 0; j < NPL; j++)
			dS[k][j] = 0;

	for (int c = nch - 1; c >= 0; c--)
	{
		int			l0 = c * SSD_CH;
		float		sp[PPW][NPL];
		float		stc[SSD_CH][PPW][NPL];

#pragma unroll
		for (int k = 0; k < PPW; k++)
#pragma unroll
			for (int j = 0; j < NPL; j++)
			{
				int			p = warp + nw * k,
							n = lane + 32 * j;

				sp[k][j] = (c > 0 && p < P && n < N) ?
					ckpt[(((size_t) sh * nch + c - 1) * P + p) * N + n] : 0;
			}
		/* recompute the chunk's states */
#pragma unroll
		for (int t = 0; t < SSD_CH; t++)
		{
			int			l = l0 + t;

			if (l < L)
			{
				size_t		row = (size_t) s * L + l;
				const float *xr = xbc + row * C;
				float		dl = delta[row * H + h];
				float		dA = expf(dl * a);

#pragma unroll
				for (int k = 0; k < PPW; k++)
				{
					int			p = warp + nw * k;
					float		xv = p < P ? xr[h * P + p] : 0;

#pragma unroll
					for (int j = 0; j < NPL; j++)
					{
						int			n = lane + 32 * j;
						float		Bv = n < N ? xr[Di + n] : 0;
						float		prev = t > 0 ? stc[t > 0 ? t - 1 : 0][k][j] : sp[k][j];

						stc[t][k][j] = dA * prev + dl * xv * Bv;
					}
				}
			}
		}
		/* backward through the chunk */
#pragma unroll
		for (int t = SSD_CH - 1; t >= 0; t--)
		{
			int			l = l0 + t;

			if (l >= L)
				continue;
			size_t		row = (size_t) s * L + l;
			const float *xr = xbc + row * C;
			float		dl = delta[row * H + h];
			float		al = expf(dl * a);
			float		Bv[NPL],
						Cv[NPL],
						bpart[NPL],
						cpart[NPL];
			float		ddp = 0;

#pragma unroll
			for (int j = 0; j < NPL; j++)
			{
				int			n = lane + 32 * j;

				Bv[j] = n < N ? xr[Di + n] : 0;
				Cv[j] = n < N ? xr[Di + N + n] : 0;
				bpart[j] = 0;
				cpart[j] = 0;
			}
#pragma unroll
			for (int k = 0; k < PPW; k++)
			{
				int			p = warp + nw * k;
				bool		pv = p < P;
				float		xv = pv ? xr[h * P + p] : 0;
				float		dyv = pv ? dy[row * Di + h * P + p] : 0;
				float		dxs = 0;

#pragma unroll
				for (int j = 0; j < NPL; j++)
				{
					float		sprev = t > 0 ? stc[t > 0 ? t - 1 : 0][k][j] : sp[k][j];
					float		ds = dS[k][j] * anext + dyv * Cv[j];
					float		ta;

					dS[k][j] = ds;
					cpart[j] += dyv * stc[t][k][j];
					dxs += ds * Bv[j];
					bpart[j] += xv * ds;
					ta = ds * al * sprev;
					ddp += ds * xv * Bv[j] + a * ta;
					dAacc += dl * ta;
				}
				dxs = warp_sum(dxs);
				if (pv && lane == 0)
				{
					dx[row * C + h * P + p] = Dh * dyv + dl * dxs;
					dDacc += dyv * xv;
				}
			}
			anext = al;
#pragma unroll
			for (int j = 0; j < NPL; j++)
			{
				int			n = lane + 32 * j;

				if (n < N)
				{
					sB[warp * N + n] = bpart[j] * dl;
					sC[warp * N + n] = cpart[j];
				}
			}
			ddp = warp_sum(ddp);
			if (lane == 0)
				sdd[warp] = ddp;
			__syncthreads();
			for (int n = threadIdx.x; n < N; n += blockDim.x)
			{
				float		b = 0,
							cc = 0;

				for (int w = 0; w < nw; w++)
				{
					b += sB[w * N + n];
					cc += sC[w * N + n];
				}
				dBh[((size_t) sh * L + l) * N + n] = b;
				dCh[((size_t) sh * L + l) * N + n] = cc;
			}
			if (threadIdx.x == 0)
			{
				float		dd = 0;

				for (int w = 0; w < nw; w++)
					dd += sdd[w];
				ddelta[row * H + h] = dd;
			}
			__syncthreads();
		}
	}
	/* block sums of dA, dD */
	dAacc = warp_sum(dAacc);
	dDacc = warp_sum(dDacc);
	if (lane == 0)
	{
		sB[warp] = dAacc;
		sC[warp] = dDacc;
	}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		float		x1 = 0,
					x2 = 0;

		for (int w = 0; w < nw; w++)
		{
			x1 += sB[w];
			x2 += sC[w];
		}
		dAp[sh] = x1;
		dDp[sh] = x2;
	}
}

/* ------------------------------------------------------------------ */
/* chunked SSD (the default): the CPU core's matrix form (src/core/ssd.c)
 * per (sample, head) block, chunks of Q positions walked in order, the
 * chunk's operands in shared memory.  Per chunk (a_i = exp(dt_i A)):
 *   L[i][j] = prod_{j<k<=i} a_k, E[i] = prod_{k<=i} a_k, r[j] = L[q-1][j]
 *   M'      = (C B^T) o L o dt_j + D I
 *   Y       = M' X + diag(E) C S^T
 *   S'      = E[q-1] S + X^T diag(r o dt) B
 * Running products are flushed to 0 below SSD_TINY, like the CPU.  The
 * forward stores the state entering each chunk c >= 1 in ckpt (the
 * backward's only saved state); the backward walks the chunks backwards
 * carrying dS and collects the scalar gradients as in ssd.c: dcum_i (w.r.t.
 * the chunk-local log decay A T_i) plus the direct dt terms, ddelta_k =
 * direct_k + A sum_{i>=k} dcum_i, and dA term by term with the segment
 * sums of dt themselves (no differences of cumulative sums).
 * ------------------------------------------------------------------ */
#define SSD_QMAX 64				/* largest chunk the kernels take */
#define SSD_THREADS 256			/* block size of both chunk kernels */
#define SSD_TINY 1e-25f

__device__ __forceinline__ float
ssd_flush(float v)
{
	return v < SSD_TINY ? 0.0f : v;
}

/* shared memory layout of the chunk kernels, in floats (host and device);
 * rows of B, C, S, dS, U, V are padded to N+1 (no bank conflicts when a
 * warp walks rows) */
struct SsdShm
{
	int			X, dY, B, C, S, dS, U, V, M, D, G, vec, red, total;
};

__host__ __device__ inline SsdShm
ssd_shm(int Q, int P, int N, int bwd)
{
	SsdShm		o;
	int			ldn = N + 1,
				k = 0;

	o.X = k; k += Q * P;
	o.dY = k; k += bwd ? Q * P : 0;
	o.B = k; k += Q * ldn;
	o.C = k; k += Q * ldn;
	o.S = k; k += P * ldn;
	o.dS = k; k += bwd ? P * ldn : 0;
	o.U = k; k += bwd ? Q * ldn : 0;
	o.V = k; k += bwd ? Q * ldn : 0;
	o.M = k; k += Q * Q;
	o.D = k; k += bwd ? Q * Q : 0;
	o.G = k; k += bwd ? Q * Q : 0;
	o.vec = k; k += (bwd ? 11 : 4) * Q;
	o.red = k; k += 32;
	o.total = k;
	return o;
}

/* chunk c of block (s, h): operands into shared memory (dy too if sdY) */
__device__ __forceinline__ void
ssd_load_chunk(size_t r0, int q, int H, int h, int P, int N, int C, int Di, const float *xbc,
			   const float *dy, float *sX, float *sdY, float *sB, float *sC)
{
	int			ldn = N + 1;

	for (int e = threadIdx.x; e < q * P; e += blockDim.x)
	{
		int			i = e / P,
					p = e % P;

		sX[i * P + p] = xbc[(r0 + i) * C + h * P + p];
		if (sdY)
			sdY[i * P + p] = dy[(r0 + i) * Di + h * P + p];
	}
	for (int e = threadIdx.x; e < q * N; e += blockDim.x)
	{
		int			i = e / N,
					n = e % N;
		const float *xr = xbc + (r0 + i) * C + Di;

		sB[i * ldn + n] = xr[n];
		sC[i * ldn + n] = xr[N + n];
	}
}

__global__ void __launch_bounds__(SSD_THREADS, 4)
k_ssd_chunk_fwd(int L, int H, int P, int N, int C, int Di, int Q, int nc, const float *xbc,
				const float *delta, const float *A_log, const float *Dp, float *y, float *ckpt)
{
	extern __shared__ float sm[];
	SsdShm		o = ssd_shm(Q, P, N, 0);
	int			sh = blockIdx.x,
				s = sh / H,
				h = sh % H,
				tid = threadIdx.x,
				nt = blockDim.x,
				ldn = N + 1;
	float	   *sX = sm + o.X,
			   *sB = sm + o.B,
			   *sC = sm + o.C,
			   *sS = sm + o.S,
			   *sM = sm + o.M,
			   *sdt = sm + o.vec,
			   *sa = sdt + Q,
			   *sE = sa + Q,
			   *sw = sE + Q;
	float		A = (float) (-exp((double) A_log[h]));
	float		Dh = Dp[h];

	for (int c = 0; c < nc; c++)
	{
		int			t0 = c * Q,
					q = L - t0 < Q ? L - t0 : Q;
		size_t		r0 = (size_t) s * L + t0;

		ssd_load_chunk(r0, q, H, h, P, N, C, Di, xbc, NULL, sX, NULL, sB, sC);
		for (int i = tid; i < q; i += nt)
		{
			float		dt = delta[(r0 + i) * H + h];

			sdt[i] = dt;
			sa[i] = expf(dt * A);
		}
		__syncthreads();
		/* decays: L by columns (thread j), E and r o dt (two spare threads;
		 * q <= SSD_QMAX < nt - 2) */
		if (tid < q)
		{
			float		Lv = 1;

			sM[tid * Q + tid] = 1;
			for (int i = tid + 1; i < q; i++)
			{
				Lv = ssd_flush(Lv * sa[i]);
				sM[i * Q + tid] = Lv;
			}
		}
		else if (tid == nt - 1)
		{
			float		e = 1;

			for (int i = 0; i < q; i++)
			{
				e = ssd_flush(e * sa[i]);
				sE[i] = e;
			}
		}
		else if (tid == nt - 2)
		{
			float		r = 1;

			sw[q - 1] = sdt[q - 1];
			for (int j = q - 2; j >= 0; j--)
			{
				r = ssd_flush(r * sa[j + 1]);
				sw[j] = r * sdt[j];
			}
		}
		__syncthreads();
		/* M' = (C B^T) o L o dt_j + D I, lower triangle, in place of L */
		for (int e = tid; e < q * q; e += nt)
		{
			int			i = e / q,
						j = e % q;

			if (j > i)
				continue;
			float		cb = 0;

			for (int n = 0; n < N; n++)
				cb += sC[i * ldn + n] * sB[j * ldn + n];
			sM[i * Q + j] = i == j ? cb * sdt[j] + Dh : cb * sM[i * Q + j] * sdt[j];
		}
		__syncthreads();
		/* Y = M' X + diag(E) C S^T; the entering state to ckpt */
		for (int e = tid; e < q * P; e += nt)
		{
			int			i = e / P,
						p = e % P;
			float		acc = 0;

			for (int j = 0; j <= i; j++)
				acc += sM[i * Q + j] * sX[j * P + p];
			if (c > 0)
			{
				float		st = 0;

				for (int n = 0; n < N; n++)
					st += sC[i * ldn + n] * sS[p * ldn + n];
				acc += sE[i] * st;
			}
			y[(r0 + i) * Di + h * P + p] = acc;
		}
		if (c > 0)
			for (int e = tid; e < P * N; e += nt)
				ckpt[((size_t) sh * nc + c) * P * N + e] = sS[(e / N) * ldn + e % N];
		__syncthreads();
		/* S' = E[q-1] S + X^T diag(r o dt) B */
		if (c < nc - 1)
			for (int e = tid; e < P * N; e += nt)
			{
				int			p = e / N,
							n = e % N;
				float		acc = 0;

				for (int j = 0; j < q; j++)
					acc += sX[j * P + p] * (sw[j] * sB[j * ldn + n]);
				sS[p * ldn + n] = c == 0 ? acc : sE[q - 1] * sS[p * ldn + n] + acc;
			}
		__syncthreads();
	}
}

/* chunked SSD backward, same blocks; writes dx (into dxbc), per-head dB/dC
 * (k_bc_reduce sums the heads), ddelta and the per-(sample, head) dA (w.r.t.
 * A) and dD partials, like k_ssd_bwd */
__global__ void __launch_bounds__(SSD_THREADS, 4)
k_ssd_chunk_bwd(int L, int H, int P, int N, int C, int Di, int Q, int nc, const float *xbc,
				const float *delta, const float *A_log, const float *Dp, const float *ckpt,
				const float *dy, float *dx, float *dBh, float *dCh, float *ddelta,
				float *dAp, float *dDp)
{
	extern __shared__ float sm[];
	__shared__ double dred[32];
	SsdShm		o = ssd_shm(Q, P, N, 1);
	int			sh = blockIdx.x,
				s = sh / H,
				h = sh % H,
				tid = threadIdx.x,
				nt = blockDim.x,
				lane = tid & 31,
				warp = tid >> 5,
				nw = (nt + 31) >> 5,
				ldn = N + 1;
	float	   *sX = sm + o.X,
			   *sdY = sm + o.dY,
			   *sB = sm + o.B,
			   *sC = sm + o.C,
			   *sS = sm + o.S,
			   *sdS = sm + o.dS,
			   *sU = sm + o.U,
			   *sV = sm + o.V,
			   *sM = sm + o.M,
			   *sD = sm + o.D,
			   *sG = sm + o.G,
			   *sred = sm + o.red;
	float	   *sdt = sm + o.vec,
			   *sa = sdt + Q,
			   *sE = sa + Q,
			   *sT = sE + Q,		/* sum dt over [0, i] */
			   *sr = sT + Q,
			   *sw = sr + Q,		/* r o dt */
			   *sse = sw + Q,		/* sum dt over (j, q-1] */
			   *srow = sse + Q,		/* -> dcum */
			   *scol = srow + Q,	/* -> direct ddelta terms */
			   *ssum = scol + Q,	/* C_i . (dY_i S) */
			   *sdw = ssum + Q;		/* B_j . (X_j dS) */
	float		A = (float) (-exp((double) A_log[h]));
	float		Dh = Dp[h];
	double		daacc = 0;
	float		ddacc = 0;

	for (int c = nc - 1; c >= 0; c--)
	{
		int			t0 = c * Q,
					q = L - t0 < Q ? L - t0 : Q,
					has_state = c > 0,
					has_dS = c < nc - 1;
		size_t		r0 = (size_t) s * L + t0;

		ssd_load_chunk(r0, q, H, h, P, N, C, Di, xbc, dy, sX, sdY, sB, sC);
		for (int i = tid; i < q; i += nt)
		{
			float		dt = delta[(r0 + i) * H + h];

			sdt[i] = dt;
			sa[i] = expf(dt * A);
		}
		if (has_state)
			for (int e = tid; e < P * N; e += nt)
				sS[(e / N) * ldn + e % N] = ckpt[((size_t) sh * nc + c) * P * N + e];
		__syncthreads();
		/* L and the segment sums of dt over (j, i] by columns; E, T; r, r o
		 * dt and the sums of dt over (j, q-1] */
		if (tid < q)
		{
			float		Lv = 1,
						sg = 0;

			sM[tid * Q + tid] = 1;
			sD[tid * Q + tid] = 0;
			for (int i = tid + 1; i < q; i++)
			{
				Lv = ssd_flush(Lv * sa[i]);
				sg += sdt[i];
				sM[i * Q + tid] = Lv;
				sD[i * Q + tid] = sg;
			}
		}
		else if (tid == nt - 1)
		{
			float		e = 1,
						tt = 0;

			for (int i = 0; i < q; i++)
			{
				e = ssd_flush(e * sa[i]);
				tt += sdt[i];
				sE[i] = e;
				sT[i] = tt;
			}
		}
		else if (tid == nt - 2)
		{
			float		r = 1,
						se = 0;

			sr[q - 1] = 1;
			sw[q - 1] = sdt[q - 1];
			sse[q - 1] = 0;
			for (int j = q - 2; j >= 0; j--)
			{
				r = ssd_flush(r * sa[j + 1]);
				se += sdt[j + 1];
				sr[j] = r;
				sw[j] = r * sdt[j];
				sse[j] = se;
			}
		}
		__syncthreads();
		/* lower triangle: M' (for dX), dCB = dM o L o dt_j (for dB, dC) and
		 * G = dM o (C B^T) o L (for the scalars), dM = dY X^T; dD = trace
		 * dM; the L terms of dA */
		for (int e = tid; e < q * q; e += nt)
		{
			int			i = e / q,
						j = e % q;

			if (j > i)
				continue;
			float		cb = 0,
						dm = 0,
						dtj = sdt[j];

			for (int n = 0; n < N; n++)
				cb += sC[i * ldn + n] * sB[j * ldn + n];
			for (int p = 0; p < P; p++)
				dm += sdY[i * P + p] * sX[j * P + p];
			if (i == j)
			{
				sM[i * Q + j] = cb * dtj + Dh;
				sD[i * Q + j] = dm * dtj;
				sG[i * Q + j] = dm * cb;
				ddacc += dm;
			}
			else
			{
				float		Lv = sM[i * Q + j],
							sg = sD[i * Q + j],
							zm = dm * Lv,
							g = zm * cb;

				sM[i * Q + j] = cb * Lv * dtj;
				sD[i * Q + j] = zm * dtj;
				sG[i * Q + j] = g;
				daacc += (double) (g * dtj * sg);
			}
		}
		__syncthreads();
		/* dX = M'^T dY + diag(r o dt) B dS^T */
		for (int e = tid; e < q * P; e += nt)
		{
			int			j = e / P,
						p = e % P;
			float		acc = 0;

			for (int i = j; i < q; i++)
				acc += sM[i * Q + j] * sdY[i * P + p];
			if (has_dS)
			{
				float		v = 0;

				for (int n = 0; n < N; n++)
					v += sdS[p * ldn + n] * sB[j * ldn + n];
				acc += sw[j] * v;
			}
			dx[(r0 + j) * C + h * P + p] = acc;
		}
		/* dC = dCB B + diag(E) dY S; U = (dY S) o C */
		for (int e = tid; e < q * N; e += nt)
		{
			int			i = e / N,
						n = e % N;
			float		acc = 0;

			for (int j = 0; j <= i; j++)
				acc += sD[i * Q + j] * sB[j * ldn + n];
			if (has_state)
			{
				float		u = 0;

				for (int p = 0; p < P; p++)
					u += sdY[i * P + p] * sS[p * ldn + n];
				acc += sE[i] * u;
				sU[i * ldn + n] = u * sC[i * ldn + n];
			}
			dCh[((size_t) sh * L + t0 + i) * N + n] = acc;
		}
		/* dB = dCB^T C + diag(r o dt) X dS; V = (X dS) o B */
		for (int e = tid; e < q * N; e += nt)
		{
			int			j = e / N,
						n = e % N;
			float		acc = 0;

			for (int i = j; i < q; i++)
				acc += sD[i * Q + j] * sC[i * ldn + n];
			if (has_dS)
			{
				float		v = 0;

				for (int p = 0; p < P; p++)
					v += sX[j * P + p] * sdS[p * ldn + n];
				acc += sw[j] * v;
				sV[j * ldn + n] = v * sB[j * ldn + n];
			}
			dBh[((size_t) sh * L + t0 + j) * N + n] = acc;
		}
		/* G: row sums (times dt_j, off the diagonal) and column sums (off
		 * the diagonal); the diagonal cancels in dcum */
		for (int k = tid; k < 2 * q; k += nt)
		{
			float		acc = 0;

			if (k < q)
			{
				for (int j = 0; j < k; j++)
					acc += sG[k * Q + j] * sdt[j];
				srow[k] = acc;
			}
			else
			{
				int			j = k - q;

				for (int i = j + 1; i < q; i++)
					acc += sG[i * Q + j];
				scol[j] = acc;
			}
		}
		__syncthreads();
		/* dS <- gradient w.r.t. the state entering this chunk:
		 * E[q-1] dS + dY^T diag(E) C, and <dS, S> for the E[q-1] term */
		{
			float		de = 0;

			if (has_state)
				for (int e = tid; e < P * N; e += nt)
				{
					int			p = e / N,
								n = e % N;
					float		acc = 0,
								old = has_dS ? sdS[p * ldn + n] : 0;

					de += old * sS[p * ldn + n];
					for (int i = 0; i < q; i++)
						acc += sdY[i * P + p] * (sE[i] * sC[i * ldn + n]);
					sdS[p * ldn + n] = has_dS ? sE[q - 1] * old + acc : acc;
				}
			de = warp_sum(de);
			if (lane == 0)
				sred[warp] = de;
		}
		for (int k = tid; k < 2 * q; k += nt)
		{
			float		acc = 0;

			if (k < q)
			{
				if (has_state)
					for (int n = 0; n < N; n++)
						acc += sU[k * ldn + n];
				ssum[k] = acc;
			}
			else
			{
				if (has_dS)
					for (int n = 0; n < N; n++)
						acc += sV[(k - q) * ldn + n];
				sdw[k - q] = acc;
			}
		}
		__syncthreads();
		/* the scalar chain, O(q), one thread */
		if (tid == 0)
		{
			float		suf = 0;

			for (int k = 0; k < q; k++)
			{
				float		dcum = srow[k] - sdt[k] * scol[k];

				scol[k] += sG[k * Q + k];	/* direct: sum_{i>=k} G[i][k] */
				srow[k] = dcum;
			}
			if (has_dS)
			{
				float		tsum = 0;

				for (int j = q - 1; j >= 0; j--)
				{
					float		t = sdw[j] * sw[j];

					tsum += t;
					srow[j] -= t;
					scol[j] += sdw[j] * sr[j];
					daacc += (double) t * sse[j];
				}
				srow[q - 1] += tsum;
				if (has_state)
				{
					float		de = 0;

					for (int w = 0; w < nw; w++)
						de += sred[w];
					srow[q - 1] += de * sE[q - 1];
					daacc += (double) de * sE[q - 1] * sT[q - 1];
				}
			}
			if (has_state)
				for (int i = 0; i < q; i++)
				{
					srow[i] += ssum[i] * sE[i];
					daacc += (double) ssum[i] * sE[i] * sT[i];
				}
			for (int k = q - 1; k >= 0; k--)
			{
				suf += srow[k];
				ddelta[(r0 + k) * H + h] = scol[k] + A * suf;
			}
		}
		__syncthreads();
	}
	/* block sums of dA, dD */
	daacc = warp_sumd(daacc);
	ddacc = warp_sum(ddacc);
	if (lane == 0)
	{
		dred[warp] = daacc;
		sred[warp] = ddacc;
	}
	__syncthreads();
	if (tid == 0)
	{
		double		x1 = 0;
		float		x2 = 0;

		for (int w = 0; w < nw; w++)
		{
			x1 += dred[w];
			x2 += sred[w];
		}
		dAp[sh] = (float) x1;
		dDp[sh] = x2;
	}
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

/* softmax cross-entropy over V rows: one block per sample; dlogits in
 * place, scaled by `scale` */
__global__ void
k_softmax_ce(int V, float *lg, const int *tgt, float scale, double *loss)
{
	__shared__ float smax[32];
	__shared__ double ssum[32];
	int			s = blockIdx.x;
	float	   *x = lg + (size_t) s * V;
	int			lane = threadIdx.x & 31,
				warp = threadIdx.x >> 5,
				nw = blockDim.x >> 5;
	float		mx = -INFINITY;

	for (int v = threadIdx.x; v < V; v += blockDim.x)
		mx = fmaxf(mx, x[v]);
	for (int o = 16; o > 0; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
	if (lane == 0)
		smax[warp] = mx;
	__syncthreads();
	mx = smax[0];
	for (int w = 1; w < nw; w++)
		mx = fmaxf(mx, smax[w]);
	double		sum = 0;

	for (int v = threadIdx.x; v < V; v += blockDim.x)
	{
		float		e = expf(x[v] - mx);

		sum += e;
	}
	sum = warp_sumd(sum);
	if (lane == 0)
		ssum[warp] = sum;
	__syncthreads();
	sum = 0;
	for (int w = 0; w < nw; w++)
		sum += ssum[w];
	int			tg = tgt[s];
	float		tl = x[tg];

	__syncthreads();
	if (threadIdx.x == 0)
		loss[s] = log(sum) + mx - tl;
	float		inv = (float) (scale / sum);

	for (int v = threadIdx.x; v < V; v += blockDim.x)
	{
		float		e = expf(x[v] - mx) * inv;

		x[v] = v == tg ? e - scale : e;
	}
}

/* ------------------------------------------------------------------ */
/* backward kernels                                                    */
/* ------------------------------------------------------------------ */
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

__global__ void
k_add(size_t n, float *a, const float *b)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		a[i] += b[i];
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

/* sum the per-head dB, dC into dxbc */
__global__ void
k_bc_reduce(size_t R0, int L, int H, int N, int C, int Di, const float *dBh,
			const float *dCh, float *dxbc)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= R0 * N)
		return;
	size_t		r = i / N;
	int			n = (int) (i % N);
	int			s = (int) (r / L),
				l = (int) (r % L);
	float		b = 0,
				c = 0;

	for (int h = 0; h < H; h++)
	{
		size_t		o = (((size_t) s * H + h) * L + l) * N + n;

		b += dBh[o];
		c += dCh[o];
	}
	dxbc[r * C + Di + n] = b;
	dxbc[r * C + Di + N + n] = c;
}

/* A_log and D gradients from the per-(sample, head) partials */
__global__ void
k_ad_reduce(int S, int H, const float *dAp, const float *dDp, const float *A_log,
			float *gA, float *gD)
{
	int			h = blockIdx.x * blockDim.x + threadIdx.x;

	if (h >= H)
		return;
	double		x1 = 0,
				x2 = 0;

	for (int s = 0; s < S; s++)
	{
		x1 += dAp[(size_t) s * H + h];
		x2 += dDp[(size_t) s * H + h];
	}
	float		a = (float) (-exp((double) A_log[h]));

	gA[h] += (float) x1 * a;
	gD[h] += (float) x2;
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

/* time gate / time_layer_norm backward: one warp per time row */
__global__ void
k_gate_bwd(int R, int L, int G, const float *dTn, const float *X, const float *mu,
		   const float *rs, const float *lw, const float *GT, const float *T,
		   const float *tdt, float *prod, float *dmix, float *dT, float *dtdt,
		   float *dgpre)
{
	int			r = blockIdx.x * 8 + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;

	if (r >= R)
		return;
	size_t		o = (size_t) r * L;

	warp_ln_bwd(X + o, dTn + o, L, lw, mu[r], rs[r], dmix + o, prod + o);
	__syncwarp();
	float		acc = 0;

	for (int l = lane; l < L; l += 32)
	{
		float		g = GT[(size_t) r * G + (G == 1 ? 0 : l)];
		float		dm = dmix[o + l];
		float		dg = dm * (T[o + l] - tdt[o + l]);

		dT[o + l] = dm * g;
		dtdt[o + l] += dm * (1 - g);
		if (G == 1)
			acc += dg;
		else
			dgpre[o + l] = dg * g * (1 - g);
	}
	if (G == 1)
	{
		acc = warp_sum(acc);
		if (lane == 0)
		{
			float		g = GT[r];

			dgpre[r] = acc * g * (1 - g);
		}
	}
}

/* time convs backward, one block per time row; ds = dq * T, dT += dq * s,
 * per-row conv parameter partials part[r][2K+2] */
__global__ void
k_time_conv_bwd(int L, int H, int K, const float *T, const float *Sc, const float *P1,
				const float *P2, const float *c1w, const float *c2w, const float *dtdt,
				float *ds, float *dT, float *part)
{
	extern __shared__ float sm[];
	float	   *dc2 = sm,
			   *r1 = sm + L,
			   *dc1 = sm + 2 * L,
			   *q = sm + 3 * L;
	int			r = blockIdx.x,
				h = r % H;
	size_t		o = (size_t) r * L;

	for (int l = threadIdx.x; l < L; l += blockDim.x)
	{
		r1[l] = t4r_hardswish(P1[o + l]);
		q[l] = T[o + l] * Sc[o + l];
		dc2[l] = dtdt[o + l] * t4r_dhardswish(P2[o + l]);
	}
	__syncthreads();
	for (int j = threadIdx.x; j < L; j += blockDim.x)
	{
		float		acc = 0;

		for (int k = 0; k < K; k++)
		{
			int			l = j + (K - 1) - k;

			if (l < L)
				acc += dc2[l] * c2w[h * K + k];
		}
		dc1[j] = acc * t4r_dhardswish(P1[o + j]);
	}
	__syncthreads();
	for (int j = threadIdx.x; j < L; j += blockDim.x)
	{
		float		dq = 0;

		for (int k = 0; k < K; k++)
		{
			int			l = j + (K - 1) - k;

			if (l < L)
				dq += dc1[l] * c1w[h * K + k];
		}
		ds[o + j] = dq * T[o + j];
		dT[o + j] += dq * Sc[o + j];
	}
	int			t = threadIdx.x;

	if (t < 2 * K + 2)
	{
		const float *g = t <= K ? dc2 : dc1;
		const float *v = t <= K ? r1 : q;
		int			k = t <= K ? t : t - K - 1;
		double		acc = 0;

		if (k == K)				/* bias */
			for (int l = 0; l < L; l++)
				acc += g[l];
		else
			for (int l = 0; l < L; l++)
			{
				int			j = l - (K - 1) + k;

				if (j >= 0)
					acc += (double) g[l] * v[j];
			}
		part[(size_t) r * (2 * K + 2) + t] = (float) acc;
	}
}

/* per-head conv parameter gradients from the row partials */
__global__ void
k_tconv_reduce(int S, int H, int K, const float *part, float *gc1w, float *gc1b,
			   float *gc2w, float *gc2b)
{
	int			i = blockIdx.x * blockDim.x + threadIdx.x;
	int			W = 2 * K + 2;

	if (i >= H * W)
		return;
	int			h = i / W,
				t = i % W;
	double		acc = 0;

	for (int s = 0; s < S; s++)
		acc += part[((size_t) s * H + h) * W + t];
	if (t < K)
		gc2w[h * K + t] += (float) acc;
	else if (t == K)
		gc2b[h] += (float) acc;
	else if (t < 2 * K + 1)
		gc1w[h * K + t - K - 1] += (float) acc;
	else
		gc1b[h] += (float) acc;
}

/* da1 = dsl * dsilu(a1), in place */
__global__ void
k_dsilu(size_t n, float *g, const float *a)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
	{
		float		s = t4r_sigmoid_f32(a[i]);

		g[i] *= s * (1 + a[i] * (1 - s));
	}
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

__global__ void
k_adam(size_t n, float *p, const float *g, float *m, float *v, double lrbc1, double bc2s)
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
	p[i] -= (float) (lrbc1 * mi / (sqrt(vi) / bc2s + eps));
}

/* ------------------------------------------------------------------ */
/* host side                                                           */
/* ------------------------------------------------------------------ */
struct LAct
{
	float	   *U, *zxd, *cpre, *xbc, *delta, *y, *ckpt;
	float	   *T, *Tm, *A1, *SL, *Sc, *P1, *P2, *tdt, *Tg, *gpre, *GT, *X, *tmu, *trs;
	float	   *yr, *zr, *Ur;
	float	   *rrs, *yn, *a, *a_mu, *a_rs, *hh, *f1, *h1, *b, *b_mu, *b_rs, *F;
};

struct t4r_cuda_trainer
{
	t4r_model  *m;
	t4r_dims	D;
	int			Smax,
				train,
				nch,			/* SSD chunks (checkpoints) per sample */
				ssd_chunked,	/* 1: chunked SSD kernels, 0: recurrence */
				ssd_q;			/* their chunk length */
	size_t		shm_fwd,
				shm_bwd;		/* chunk kernels' dynamic shared memory */
	char		ssd_path[128];
	int64_t		steps;
	cublasHandle_t cb;
	char		err[256];
	size_t		total;
	float	   *p, *g, *am, *av;	/* device parameter-shaped buffers */
	t4r_pview	pv, gv;			/* device views */
	size_t		ws_bytes;
	char	   *ws;
	/* batch inputs */
	int32_t    *items;
	int		   *nv, *tgt;
	float	   *td;
	/* forward */
	float	   *emb, *e_mu, *e_rs, *tdm, *t_mu, *t_rs, *logits, *ones;
	double	   *lossv;
	LAct		la[T4R_MAX_LAYERS];
	/* backward */
	float	   *dzxd, *dxbc, *ddelta, *gp, *dyfull, *dyn, *db, *df2, *dhh, *da, *dob, *dh1;
	float	   *dUa, *dUb, *prod, *dBh, *dCh, *dAp, *dDp, *cpart, *tpart;
	float	   *dtdt, *dTa, *dTb, *dmix, *dgpre, *ts1, *ts2, *dtsum;
	/* host staging */
	int32_t    *h_items;
	int		   *h_n, *h_tgt;
	float	   *h_td;
	double	   *h_loss;
};

static int
cuerr(t4r_cuda_trainer *t, cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return T4R_OK;
	if (t)
		snprintf(t->err, sizeof(t->err), "%s: %s", what, cudaGetErrorString(e));
	return e == cudaErrorMemoryAllocation ? T4R_ENOMEM : T4R_EIO;
}

static int
cberr(t4r_cuda_trainer *t, cublasStatus_t e, const char *what)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return T4R_OK;
	if (t)
		snprintf(t->err, sizeof(t->err), "%s: cuBLAS status %d", what, (int) e);
	return e == CUBLAS_STATUS_ALLOC_FAILED ? T4R_ENOMEM : T4R_EIO;
}

#define CK(x) do { int rc_ = cuerr(t, (x), #x); if (rc_) return rc_; } while (0)
#define CB(x) do { int rc_ = cberr(t, (x), #x); if (rc_) return rc_; } while (0)
#define KCHECK(what) do { int rc_ = cuerr(t, cudaGetLastError(), what); if (rc_) return rc_; } while (0)

/* row-major C[M,N] = alpha op(A) op(B) + beta C */
static int
gemm(t4r_cuda_trainer *t, int ta, int tb, int M, int N, int K, float alpha,
	 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0 || K <= 0)
		return T4R_OK;
	CB(cublasSgemm(t->cb, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
				   N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
	return T4R_OK;
}

/* out[c] += sum_r X[r*ld + c] */
static int
colsum(t4r_cuda_trainer *t, const float *X, size_t rows, int cols, int ld, float *out)
{
	const float one = 1.0f;

	if (rows == 0 || cols == 0)
		return T4R_OK;
	CB(cublasSgemv(t->cb, CUBLAS_OP_N, cols, (int) rows, &one, X, ld, t->ones, 1, &one, out, 1));
	return T4R_OK;
}

/* Y[rows, out] = X[rows, in] W^T + b (W [out, in], X packed) */
static int
affine(t4r_cuda_trainer *t, int rows, int out, int in, const float *X, const float *W,
	   const float *b, float *Y)
{
	k_fill_bias<<<GRID1((size_t) rows * out, 256), 256>>>(Y, rows, out, b);
	return gemm(t, 0, 1, rows, out, in, 1, X, in, W, in, 1, Y, out);
}

/* backward of affine() given dY [rows, out]: gb += column sums of dY,
 * gW += dY^T X, dX = dY W */
static int
affine_bwd(t4r_cuda_trainer *t, size_t rows, int out, int in, const float *dY,
		   const float *X, const float *W, float *gW, float *gb, float *dX)
{
	int			rc;

	if ((rc = colsum(t, dY, rows, out, out, gb)) ||
		(rc = gemm(t, 1, 0, out, in, (int) rows, 1, dY, out, X, in, 1, gW, in)))
		return rc;
	return gemm(t, 0, 0, (int) rows, in, out, 1, dY, out, W, in, 0, dX, in);
}

/* weight and bias gradients of a normalisation over rows x cols: column
 * sums of prod (dy * xhat) and of dy */
static int
norm_grads(t4r_cuda_trainer *t, const float *prod, const float *dy, size_t rows, int cols,
		   float *gw, float *gb)
{
	int			rc = colsum(t, prod, rows, cols, cols, gw);

	return rc ? rc : colsum(t, dy, rows, cols, cols, gb);
}

/* bump allocator over one device allocation (base NULL: size only) */
struct Carve
{
	char	   *base;
	size_t		off;
	template <typename T> T *take(size_t n)
	{
		size_t		o = off;

		off += (n * sizeof(T) + 255) & ~(size_t) 255;
		return base ? (T *) (base + o) : (T *) NULL;
	}
};

static void
carve(t4r_cuda_trainer *t, Carve &c)
{
	const t4r_dims *D = &t->D;
	size_t		S = t->Smax,
				L = D->L,
				R0 = S * L,
				R = S * D->H;
	int			d = D->d,
				Di = D->Di,
				C = D->conv_dim,
				H = D->H,
				N = D->N,
				f = D->ffn_dim;
	int			tr = t->train;

	t->items = c.take<int32_t>(R0);
	t->nv = c.take<int>(S);
	t->tgt = c.take<int>(S);
	t->td = c.take<float>(S * L);
	t->emb = c.take<float>(R0 * d);
	t->e_mu = c.take<float>(R0);
	t->e_rs = c.take<float>(R0);
	t->tdm = c.take<float>(S * L);
	t->t_mu = c.take<float>(S);
	t->t_rs = c.take<float>(S);
	t->logits = c.take<float>(S * D->V);
	t->lossv = c.take<double>(S);
	t->ones = c.take<float>((R0 > R ? R0 : R) + 16);
	for (int li = 0; li < D->layers; li++)
	{
		LAct	   *A = &t->la[li];
		int			last = li == D->layers - 1;
		size_t		rows = last ? S : R0;

		A->U = li == 0 ? c.take<float>(R0 * d) : t->la[li - 1].F;
		A->zxd = c.take<float>(R0 * D->in_dim);
		A->cpre = c.take<float>(R0 * C);
		A->xbc = c.take<float>(R0 * C);
		A->delta = c.take<float>(R0 * H);
		A->y = c.take<float>(R0 * Di);
		A->ckpt = c.take<float>(R * t->nch * D->P * N);
		if (D->is_time)
		{
			A->T = c.take<float>(R * L);
			A->Tm = c.take<float>(R * L);
			A->A1 = c.take<float>(R * L);
			A->SL = c.take<float>(R * L);
			A->Sc = c.take<float>(R * L);
			A->P1 = c.take<float>(R * L);
			A->P2 = c.take<float>(R * L);
			A->tdt = c.take<float>(R * L);
			if (!last)
			{
				A->Tg = c.take<float>(R * L);
				A->gpre = c.take<float>(R * D->G);
				A->GT = c.take<float>(R * D->G);
				A->X = c.take<float>(R * L);
				A->tmu = c.take<float>(R);
				A->trs = c.take<float>(R);
			}
		}
		if (last)
		{
			A->yr = c.take<float>(S * Di);
			A->zr = c.take<float>(S * Di);
			A->Ur = c.take<float>(S * d);
		}
		A->rrs = c.take<float>(rows);
		A->yn = c.take<float>(rows * Di);
		A->a = c.take<float>(rows * d);
		A->a_mu = c.take<float>(rows);
		A->a_rs = c.take<float>(rows);
		A->hh = c.take<float>(rows * d);
		A->f1 = c.take<float>(rows * f);
		A->h1 = c.take<float>(rows * f);
		A->b = c.take<float>(rows * d);
		A->b_mu = c.take<float>(rows);
		A->b_rs = c.take<float>(rows);
		A->F = c.take<float>(rows * d);
	}
	if (!tr)
		return;
	{
		size_t		pw = (size_t) Di > (size_t) D->in_dim ? Di : D->in_dim;
		size_t		np = R0 * pw;

		if (R * L > np)
			np = R * L;
		t->prod = c.take<float>(np);
	}
	t->dzxd = c.take<float>(R0 * D->in_dim);
	t->dxbc = c.take<float>(R0 * C);
	t->ddelta = c.take<float>(R0 * H);
	t->gp = c.take<float>(R0 * H);
	t->dyfull = c.take<float>(R0 * Di);
	t->dyn = c.take<float>(R0 * Di);
	t->db = c.take<float>(R0 * d);
	t->df2 = c.take<float>(R0 * d);
	t->dhh = c.take<float>(R0 * d);
	t->da = c.take<float>(R0 * d);
	t->dob = c.take<float>(R0 * d);
	t->dh1 = c.take<float>(R0 * f);
	t->dUa = c.take<float>(R0 * d);
	t->dUb = c.take<float>(R0 * d);
	t->dBh = c.take<float>(R * L * N);
	t->dCh = c.take<float>(R * L * N);
	t->dAp = c.take<float>(R);
	t->dDp = c.take<float>(R);
	t->cpart = c.take<float>((size_t) CONV_PARTS * C * D->K);
	t->tpart = c.take<float>(R * (2 * D->K + 2));
	if (D->is_time)
	{
		t->dtdt = c.take<float>(R * L);
		t->dTa = c.take<float>(R * L);
		t->dTb = c.take<float>(R * L);
		t->dmix = c.take<float>(R * L);
		t->dgpre = c.take<float>(R * L);
		t->ts1 = c.take<float>(R * L);
		t->ts2 = c.take<float>(R * L);
		t->dtsum = c.take<float>(S * L);
	}
}

__global__ void
k_set(size_t n, float *x, float v)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		x[i] = v;
}

extern "C" int
t4r_cuda_available(char *err, size_t errlen)
{
	int			n = 0,
				drv = 0,
				rt = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	cudaDriverGetVersion(&drv);
	cudaRuntimeGetVersion(&rt);
	if (e != cudaSuccess || n < 1)
	{
		if (err && errlen)
		{
			if (drv == 0)
				snprintf(err, errlen, "no CUDA driver or device (%s)",
						 e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
			else if (e == cudaErrorInsufficientDriver || drv < rt)
				snprintf(err, errlen, "CUDA driver too old (driver %d, runtime %d)", drv, rt);
			else
				snprintf(err, errlen, "no usable CUDA device (%s)",
						 e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
		}
		(void) cudaGetLastError();
		return T4R_EIO;
	}
	return T4R_OK;
}

extern "C" int
t4r_cuda_mem_info(size_t *used, size_t *total)
{
	size_t		fr = 0,
				tot = 0;

	if (cudaMemGetInfo(&fr, &tot) != cudaSuccess)
		return T4R_EIO;
	if (used)
		*used = tot - fr;
	if (total)
		*total = tot;
	return T4R_OK;
}

static int
setup(t4r_cuda_trainer *t)
{
	const t4r_dims *D = &t->D;
	size_t		total = t->total;
	Carve		c = {NULL, 0};
	size_t		S = t->Smax,
				R0 = S * D->L,
				R = S * D->H;

	CB(cublasCreate(&t->cb));
	CB(cublasSetMathMode(t->cb, CUBLAS_PEDANTIC_MATH));
	CK(cudaMalloc((void **) &t->p, total * sizeof(float)));
	CK(cudaMemcpy(t->p, t->m->params, total * sizeof(float), cudaMemcpyHostToDevice));
	if (t->train)
	{
		CK(cudaMalloc((void **) &t->g, total * sizeof(float)));
		CK(cudaMalloc((void **) &t->am, total * sizeof(float)));
		CK(cudaMalloc((void **) &t->av, total * sizeof(float)));
		CK(cudaMemset(t->g, 0, total * sizeof(float)));
		CK(cudaMemset(t->am, 0, total * sizeof(float)));
		CK(cudaMemset(t->av, 0, total * sizeof(float)));
		t4r_pview_build(t->m, t->g, &t->gv);
	}
	t4r_pview_build(t->m, t->p, &t->pv);
	carve(t, c);
	t->ws_bytes = c.off;
	CK(cudaMalloc((void **) &t->ws, c.off));
	c.base = t->ws;
	c.off = 0;
	carve(t, c);
	{
		size_t		no = (R0 > R ? R0 : R) + 16;

		k_set<<<GRID1(no, 256), 256>>>(no, t->ones, 1.0f);
		KCHECK("k_set");
	}
	t->h_items = (int32_t *) malloc(sizeof(int32_t) * R0);
	t->h_n = (int *) malloc(sizeof(int) * S);
	t->h_tgt = (int *) malloc(sizeof(int) * S);
	t->h_td = (float *) malloc(sizeof(float) * S * D->L);
	t->h_loss = (double *) malloc(sizeof(double) * S);
	if (!t->h_items || !t->h_n || !t->h_tgt || !t->h_td || !t->h_loss)
		return T4R_ENOMEM;
	CK(cudaDeviceSynchronize());
	return T4R_OK;
}

/*
 * SSD path: the chunked kernels (chunk length cfg.chunk_size, at most
 * SSD_QMAX and L; halved while their shared memory exceeds the device's
 * per-block limit), or the recurrence with checkpoints every SSD_CH
 * positions when T4R_CUDA_SSD=recurrent or when even a chunk of 8 does not
 * fit.  Sets nch (the checkpoint layout) and the description.
 */
static int
ssd_choose(t4r_cuda_trainer *t)
{
	const t4r_dims *D = &t->D;
	const char *env = getenv("T4R_CUDA_SSD");
	int			Q = t->m->cfg.chunk_size;
	const char *why = NULL;

	if (Q > SSD_QMAX)
		Q = SSD_QMAX;
	if (Q > D->L)
		Q = D->L;
	if (Q < 1)
		Q = 1;
	t->ssd_chunked = 0;
	if (env && *env && strcmp(env, "chunked") != 0 && strcmp(env, "recurrent") != 0)
	{
		snprintf(t->err, sizeof(t->err), "T4R_CUDA_SSD='%s': expected chunked or recurrent", env);
		return T4R_EINVAL;
	}
	if (env && strcmp(env, "recurrent") == 0)
		why = "T4R_CUDA_SSD=recurrent";
	else
	{
		int			dev = 0,
					optin = 0;

		CK(cudaGetDevice(&dev));
		CK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
		for (;;)
		{
			/* + the backward's static reduction buffer */
			size_t		need = sizeof(float) * ssd_shm(Q, D->P, D->N, t->train).total +
				32 * sizeof(double);

			if (need <= (size_t) optin)
			{
				t->ssd_chunked = 1;
				break;
			}
			if (Q <= 8)
				break;
			Q = (Q + 1) / 2;
		}
		if (!t->ssd_chunked)
			why = "chunk kernels exceed the shared memory per block";
	}
	if (t->ssd_chunked)
	{
		t->ssd_q = Q;
		t->shm_fwd = sizeof(float) * ssd_shm(Q, D->P, D->N, 0).total;
		t->shm_bwd = sizeof(float) * ssd_shm(Q, D->P, D->N, 1).total;
		/* above the default 48 KiB a kernel must opt in */
		if (t->shm_fwd > 48 * 1024)
			CK(cudaFuncSetAttribute(k_ssd_chunk_fwd, cudaFuncAttributeMaxDynamicSharedMemorySize,
									(int) t->shm_fwd));
		if (t->train && t->shm_bwd > 48 * 1024)
			CK(cudaFuncSetAttribute(k_ssd_chunk_bwd, cudaFuncAttributeMaxDynamicSharedMemorySize,
									(int) t->shm_bwd));
		snprintf(t->ssd_path, sizeof(t->ssd_path), "chunked (chunk %d, %zu B shared fwd, %zu B bwd)",
				 Q, t->shm_fwd, t->train ? t->shm_bwd : (size_t) 0);
	}
	else
	{
		t->ssd_q = SSD_CH;
		snprintf(t->ssd_path, sizeof(t->ssd_path), "recurrent (checkpoint every %d; %s)",
				 SSD_CH, why);
	}
	t->nch = (D->L + t->ssd_q - 1) / t->ssd_q;
	return T4R_OK;
}

/*
 * Which SSD kernels this trainer runs ("chunked (...)" or "recurrent
 * (...)"), for logs and benchmarks.  Not in t4r_cuda.h (whose interface is
 * fixed for now): callers declare it themselves.
 */
extern "C" const char *
t4r_cuda_trainer_ssd_path(const t4r_cuda_trainer *t)
{
	return t ? t->ssd_path : "no trainer";
}

extern "C" void
t4r_cuda_trainer_free(t4r_cuda_trainer *t)
{
	if (!t)
		return;
	if (t->cb)
		cublasDestroy(t->cb);
	cudaFree(t->p);
	cudaFree(t->g);
	cudaFree(t->am);
	cudaFree(t->av);
	cudaFree(t->ws);
	free(t->h_items);
	free(t->h_n);
	free(t->h_tgt);
	free(t->h_td);
	free(t->h_loss);
	free(t);
}

extern "C" int
t4r_cuda_trainer_create(t4r_model *m, int max_batch, int train, t4r_cuda_trainer **out,
						char *err, size_t errlen)
{
	t4r_cuda_trainer *t;
	int			rc;
	int			nw, ppw, npl;

	*out = NULL;
	if (!m)
		return T4R_EINVAL;
	rc = t4r_cuda_available(err, errlen);
	if (rc)
		return rc;
	nw = m->dims.P < 32 ? m->dims.P : 32;
	ppw = (m->dims.P + nw - 1) / nw;
	npl = (m->dims.N + 31) / 32;
	if (m->dims.robust || m->dims.allpos)
	{
		/* the GPU code computes the published model only (official time path, per-prefix training) */
		if (err && errlen)
			snprintf(err, errlen, "the CUDA path supports neither time_features \"robust\" "
					 "nor training \"all_positions\"");
		return T4R_EINVAL;
	}
	if (ppw > 4 || npl > 4 || m->dims.K > 8 || m->dims.layers > T4R_MAX_LAYERS)
	{
		if (err && errlen)
			snprintf(err, errlen, "configuration not supported by the CUDA path "
					 "(head_dim <= 128, d_state <= 128, d_conv <= 8)");
		return T4R_EINVAL;
	}
	t = (t4r_cuda_trainer *) calloc(1, sizeof(*t));
	if (!t)
		return T4R_ENOMEM;
	t->m = m;
	t->D = m->dims;
	t->Smax = max_batch > 0 ? max_batch : m->cfg.batch_size;
	if (t->Smax < 1)
		t->Smax = 1;
	t->train = train ? 1 : 0;
	t->total = m->layout.total;
	rc = ssd_choose(t);
	if (rc == T4R_OK)
		rc = setup(t);
	if (rc)
	{
		if (err && errlen)
			snprintf(err, errlen, "%s", t->err);
		t4r_cuda_trainer_free(t);
		return rc;
	}
	*out = t;
	return T4R_OK;
}

extern "C" const char *
t4r_cuda_trainer_error(const t4r_cuda_trainer *t)
{
	return t ? t->err : "no trainer";
}

extern "C" int64_t
t4r_cuda_trainer_steps(const t4r_cuda_trainer *t)
{
	return t->steps;
}

extern "C" size_t
t4r_cuda_trainer_device_bytes(const t4r_cuda_trainer *t)
{
	return t->ws_bytes + t->total * sizeof(float) * (t->train ? 4 : 1);
}

/* upload S samples (host side validation, td as the CPU computes it) */
static int
upload(t4r_cuda_trainer *t, const t4r_sample *smp, int S, int need_target)
{
	const t4r_dims *D = &t->D;
	int			L = D->L;

	for (int s = 0; s < S; s++)
	{
		int			n = smp[s].n,
					nn,
					start;

		if (n < 1 || !smp[s].items || (D->is_time && !smp[s].ts))
		{
			snprintf(t->err, sizeof(t->err), "sample %d: bad length or missing arrays", s);
			return T4R_EINVAL;
		}
		if (need_target && (smp[s].target < 0 || smp[s].target >= D->V))
		{
			snprintf(t->err, sizeof(t->err), "sample %d: target out of range", s);
			return T4R_EINVAL;
		}
		nn = n > L ? L : n;
		start = n - nn;
		t->h_n[s] = nn;
		t->h_tgt[s] = need_target ? smp[s].target : 0;
		for (int l = 0; l < L; l++)
		{
			int32_t		it = l < nn ? smp[s].items[start + l] : 0;

			if (it < 0 || it >= D->V)
			{
				snprintf(t->err, sizeof(t->err), "sample %d: item out of range", s);
				return T4R_EINVAL;
			}
			t->h_items[(size_t) s * L + l] = it;
		}
		if (D->is_time)
		{
			const double *ts = smp[s].ts + start;
			float	   *td = t->h_td + (size_t) s * L;

			td[0] = 0;
			for (int l = 1; l < L; l++)
			{
				double		a = l < nn ? ts[l] : 0,
							b = l - 1 < nn ? ts[l - 1] : 0;

				td[l] = (float) (a - b);
			}
		}
	}
	CK(cudaMemcpy(t->items, t->h_items, sizeof(int32_t) * S * L, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(t->nv, t->h_n, sizeof(int) * S, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(t->tgt, t->h_tgt, sizeof(int) * S, cudaMemcpyHostToDevice));
	if (D->is_time)
		CK(cudaMemcpy(t->td, t->h_td, sizeof(float) * S * L, cudaMemcpyHostToDevice));
	return T4R_OK;
}

static DK
make_dk(const t4r_cuda_trainer *t, double p, int training, uint64_t step, int idx0)
{
	DK			k;

	k.seed = t->m->cfg.seed;
	k.step = step;
	k.thr = (uint64_t) (p * 4294967296.0);
	k.keep = (float) (1.0 / (1.0 - p));
	k.on = training && p > 0;
	k.idx0 = idx0;
	return k;
}

/* the recurrence kernels of one template shape (warp rows PPW, lane
 * columns NPL): forward or backward */
template <int PPW, int NPL>
static void
ssd_rec_run(t4r_cuda_trainer *t, int S, LAct *A, const t4r_lparams *P, int bwd)
{
	const t4r_dims *D = &t->D;
	int			nw = D->P < 32 ? D->P : 32;
	dim3		g(S * D->H),
				b(32 * nw);
	size_t		shm = sizeof(float) * (2 * nw * D->N + nw + 64);

	if (!bwd)
		k_ssd_fwd<PPW, NPL><<<g, b>>>(D->L, D->H, D->P, D->N, D->conv_dim, D->Di, t->nch,
									  A->xbc, A->delta, P->A_log, P->D, A->y, A->ckpt);
	else
		k_ssd_bwd<PPW, NPL><<<g, b, shm>>>(D->L, D->H, D->P, D->N, D->conv_dim, D->Di,
										   t->nch, A->xbc, A->delta, P->A_log, P->D, A->ckpt,
										   t->dyfull, t->dxbc, t->dBh, t->dCh, t->ddelta,
										   t->dAp, t->dDp);
}

typedef void (*ssd_rec_fn) (t4r_cuda_trainer *, int, LAct *, const t4r_lparams *, int);

/* the recurrence: pick the template shape for head_dim and d_state */
static void
ssd_rec(t4r_cuda_trainer *t, int S, LAct *A, const t4r_lparams *P, int bwd)
{
	static const ssd_rec_fn tab[3][3] = {
		{ssd_rec_run<1, 1>, ssd_rec_run<1, 2>, ssd_rec_run<1, 4>},
		{ssd_rec_run<2, 1>, ssd_rec_run<2, 2>, ssd_rec_run<2, 4>},
		{ssd_rec_run<4, 1>, ssd_rec_run<4, 2>, ssd_rec_run<4, 4>},
	};
	const t4r_dims *D = &t->D;
	int			nw = D->P < 32 ? D->P : 32;
	int			ppw = (D->P + nw - 1) / nw,
				npl = (D->N + 31) / 32;

	tab[ppw <= 1 ? 0 : ppw <= 2 ? 1 : 2][npl <= 1 ? 0 : npl <= 2 ? 1 : 2] (t, S, A, P, bwd);
}

static int
ssd_fwd_launch(t4r_cuda_trainer *t, int S, LAct *A, const t4r_lparams *P)
{
	const t4r_dims *D = &t->D;

	if (t->ssd_chunked)
		k_ssd_chunk_fwd<<<S * D->H, SSD_THREADS, t->shm_fwd>>>(D->L, D->H, D->P, D->N,
																 D->conv_dim, D->Di, t->ssd_q,
																 t->nch, A->xbc, A->delta,
																 P->A_log, P->D, A->y, A->ckpt);
	else
		ssd_rec(t, S, A, P, 0);
	KCHECK("ssd forward");
	return T4R_OK;
}

static int
ssd_bwd_launch(t4r_cuda_trainer *t, int S, LAct *A, const t4r_lparams *P)
{
	const t4r_dims *D = &t->D;

	if (t->ssd_chunked)
		k_ssd_chunk_bwd<<<S * D->H, SSD_THREADS, t->shm_bwd>>>(D->L, D->H, D->P, D->N,
																 D->conv_dim, D->Di, t->ssd_q,
																 t->nch, A->xbc, A->delta,
																 P->A_log, P->D, A->ckpt,
																 t->dyfull, t->dxbc, t->dBh,
																 t->dCh, t->ddelta, t->dAp,
																 t->dDp);
	else
		ssd_rec(t, S, A, P, 1);
	KCHECK("ssd backward");
	return T4R_OK;
}

/* forward of S uploaded samples */
static int
forward(t4r_cuda_trainer *t, int S, int training, uint64_t step, int idx0)
{
	const t4r_dims *D = &t->D;
	const t4r_config *cfg = &t->m->cfg;
	const t4r_pview *pv = &t->pv;
	int			L = D->L,
				d = D->d,
				Di = D->Di,
				C = D->conv_dim,
				H = D->H,
				N = D->N,
				K = D->K,
				f = D->ffn_dim,
				in_dim = D->in_dim,
				G = D->G;
	size_t		R0 = (size_t) S * L;
	int			R = S * H;
	int			dtc = 2 * Di + 2 * N;
	DK			dk = make_dk(t, cfg->dropout_prob, training, step, idx0);
	DK			dkt = make_dk(t, cfg->time_dropout, training, step, idx0);
	int			residual = D->layers > 1;
	int			rc;

	k_embed<<<WARP_GRID(R0), 256>>>((int) R0, L, d, t->items, pv->emb, dk, pv->in_ln_w,
									pv->in_ln_b, cfg->norm_eps, t->emb, t->la[0].U,
									t->e_mu, t->e_rs);
	KCHECK("k_embed");
	if (D->is_time)
	{
		k_td_ln<<<WARP_GRID(S), 256>>>(S, L, H, t->td, dk, pv->tln_w, pv->tln_b,
									   cfg->norm_eps, t->tdm, t->la[0].T, t->t_mu, t->t_rs);
		KCHECK("k_td_ln");
	}
	for (int li = 0; li < D->layers; li++)
	{
		const t4r_lparams *P = &pv->l[li];
		LAct	   *A = &t->la[li];
		int			last = li == D->layers - 1;
		int			rows = last ? S : (int) R0;
		const float *U = A->U;
		const float *z = A->zxd;
		const float *y = A->y;
		int			ldz = in_dim;

		if ((rc = affine(t, (int) R0, in_dim, d, A->U, P->in_w, P->in_b, A->zxd)))
			return rc;
		k_conv_fwd<<<GRID1(R0 * C, 256), 256>>>(R0, L, in_dim, Di, C, K, A->zxd, P->conv_w,
												 P->conv_b, A->cpre, A->xbc);
		KCHECK("k_conv_fwd");
		if (D->is_time)
		{
			const t4r_time_params *tp = &P->tp;
			const float *Tm = A->T;
			size_t		RL = (size_t) R * L;

			if (dkt.on)
			{
				k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, A->T, dkt,
													 T4R_SITE_LAYER(li, T4R_LSITE_TMLP), A->Tm, 0);
				Tm = A->Tm;
			}
			if ((rc = affine(t, R, L, L, Tm, tp->w1, tp->b1, A->A1)))
				return rc;
			k_silu<<<GRID1(RL, 256), 256>>>(RL, A->A1, A->SL);
			if ((rc = affine(t, R, L, L, A->SL, tp->w2, tp->b2, A->Sc)))
				return rc;
			k_time_conv<<<R, 128, 2 * L * sizeof(float)>>>(L, H, K, A->T, A->Sc, tp->c1w, tp->c1b,
															tp->c2w, tp->c2b, A->P1, A->P2, A->tdt);
			KCHECK("k_time_conv");
			if (!last)
			{
				const float *Tg = A->T;

				if (dkt.on)
				{
					k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, A->T, dkt,
														 T4R_SITE_LAYER(li, T4R_LSITE_TGATE), A->Tg, 0);
					Tg = A->Tg;
				}
				if ((rc = affine(t, R, G, L, Tg, tp->gw, tp->gb, A->gpre)))
					return rc;
				k_gate_fwd<<<WARP_GRID(R), 256>>>(R, L, G, A->gpre, A->T, A->tdt, tp->lnw, tp->lnb,
												  cfg->norm_eps, A->GT, A->X, t->la[li + 1].T,
												  A->tmu, A->trs);
				KCHECK("k_gate_fwd");
			}
		}
		k_delta<<<GRID1(R0 * H, 256), 256>>>(R0, L, H, in_dim, dtc, D->is_time, A->zxd, A->tdt,
											 P->dt_bias, A->delta);
		KCHECK("k_delta");
		if ((rc = ssd_fwd_launch(t, S, A, P)))
			return rc;
		if (last)
		{
			k_gather_last<<<GRID1((size_t) S * Di, 256), 256>>>(S, L, t->nv, A->y, Di, Di, A->yr, Di);
			k_gather_last<<<GRID1((size_t) S * Di, 256), 256>>>(S, L, t->nv, A->zxd, in_dim, Di, A->zr, Di);
			k_gather_last<<<GRID1((size_t) S * d, 256), 256>>>(S, L, t->nv, A->U, d, d, A->Ur, d);
			KCHECK("k_gather_last");
			U = A->Ur;
			z = A->zr;
			y = A->yr;
			ldz = Di;
		}
		k_rms_fwd<<<WARP_GRID(rows), 256>>>(rows, Di, y, z, ldz, P->norm_w, cfg->norm_eps, A->rrs, A->yn);
		KCHECK("k_rms_fwd");
		if ((rc = affine(t, rows, d, Di, A->yn, P->out_w, P->out_b, A->a)))
			return rc;
		k_res_ln<<<WARP_GRID(rows), 256>>>(rows, d, L, last, t->nv, dk, T4R_SITE_LAYER(li, T4R_LSITE_O),
										   A->a, U, residual, P->ln_w, P->ln_b, cfg->norm_eps,
										   A->hh, A->a_mu, A->a_rs);
		KCHECK("k_res_ln");
		if ((rc = affine(t, rows, f, d, A->hh, P->fc1_w, P->fc1_b, A->f1)))
			return rc;
		k_rowmask<<<GRID1((size_t) rows * f, 256), 256>>>(rows, f, L, last, t->nv, dk,
														  T4R_SITE_LAYER(li, T4R_LSITE_FFN1),
														  A->f1, NULL, A->h1, 0);
		if ((rc = affine(t, rows, d, f, A->h1, P->fc2_w, P->fc2_b, A->b)))
			return rc;
		/* b = b * m2 + hh, LayerNorm eps 1e-12 */
		k_res_ln<<<WARP_GRID(rows), 256>>>(rows, d, L, last, t->nv, dk, T4R_SITE_LAYER(li, T4R_LSITE_FFN2),
										   A->b, A->hh, 1, P->fln_w, P->fln_b, 1e-12,
										   A->F, A->b_mu, A->b_rs);
		KCHECK("k_res_ln 2");
	}
	return T4R_OK;
}

static int
layer_bwd(t4r_cuda_trainer *t, int S, int li, int training, uint64_t step, int idx0,
		  const float *dF, float *dU, const float *dTn, float *dT)
{
	const t4r_dims *D = &t->D;
	const t4r_config *cfg = &t->m->cfg;
	const t4r_lparams *P = &t->pv.l[li];
	const t4r_lparams *GP = &t->gv.l[li];
	LAct	   *A = &t->la[li];
	int			L = D->L,
				d = D->d,
				Di = D->Di,
				C = D->conv_dim,
				H = D->H,
				N = D->N,
				K = D->K,
				f = D->ffn_dim,
				in_dim = D->in_dim,
				G = D->G;
	size_t		R0 = (size_t) S * L;
	int			R = S * H;
	size_t		RL = (size_t) R * L;
	int			dtc = 2 * Di + 2 * N;
	int			last = li == D->layers - 1;
	int			rows = last ? S : (int) R0;
	DK			dk = make_dk(t, cfg->dropout_prob, training, step, idx0);
	DK			dkt = make_dk(t, cfg->time_dropout, training, step, idx0);
	const float *z = last ? A->zr : A->zxd;
	const float *y = last ? A->yr : A->y;
	int			ldz = last ? Di : in_dim;
	int			rc;

	/* FFN layer norm */
	k_ln_bwd<<<WARP_GRID(rows), 256>>>(rows, d, A->b, dF, P->fln_w, A->b_mu, A->b_rs, t->db, t->prod);
	KCHECK("k_ln_bwd ffn");
	if ((rc = norm_grads(t, t->prod, dF, rows, d, GP->fln_w, GP->fln_b)))
		return rc;
	/* fc2 after its dropout */
	k_rowmask<<<GRID1((size_t) rows * d, 256), 256>>>(rows, d, L, last, t->nv, dk,
													  T4R_SITE_LAYER(li, T4R_LSITE_FFN2),
													  t->db, NULL, t->df2, 1);
	if ((rc = affine_bwd(t, rows, d, f, t->df2, A->h1, P->fc2_w, GP->fc2_w, GP->fc2_b, t->dh1)))
		return rc;
	k_rowmask<<<GRID1((size_t) rows * f, 256), 256>>>(rows, f, L, last, t->nv, dk,
													  T4R_SITE_LAYER(li, T4R_LSITE_FFN1),
													  NULL, A->f1, t->dh1, 2);
	KCHECK("k_rowmask");
	if ((rc = affine_bwd(t, rows, f, d, t->dh1, A->hh, P->fc1_w, GP->fc1_w, GP->fc1_b, t->dhh)))
		return rc;
	k_add<<<GRID1((size_t) rows * d, 256), 256>>>((size_t) rows * d, t->dhh, t->db);
	k_ln_bwd<<<WARP_GRID(rows), 256>>>(rows, d, A->a, t->dhh, P->ln_w, A->a_mu, A->a_rs, t->da, t->prod);
	KCHECK("k_ln_bwd res");
	if ((rc = norm_grads(t, t->prod, t->dhh, rows, d, GP->ln_w, GP->ln_b)))
		return rc;
	k_rowmask<<<GRID1((size_t) rows * d, 256), 256>>>(rows, d, L, last, t->nv, dk,
													  T4R_SITE_LAYER(li, T4R_LSITE_O),
													  t->da, NULL, t->dob, 1);
	if ((rc = affine_bwd(t, rows, d, Di, t->dob, A->yn, P->out_w, GP->out_w, GP->out_b, t->dyn)))
		return rc;
	/* gated RMS norm */
	if (last)
	{
		CK(cudaMemsetAsync(t->dyfull, 0, sizeof(float) * R0 * Di));
		CK(cudaMemsetAsync(t->dzxd, 0, sizeof(float) * R0 * in_dim));
	}
	k_rms_bwd<<<WARP_GRID(rows), 256>>>(rows, Di, L, last, t->nv, y, z, ldz, A->rrs, t->dyn,
										P->norm_w, t->dyfull, t->dzxd, in_dim, t->prod);
	KCHECK("k_rms_bwd");
	if ((rc = colsum(t, t->prod, rows, Di, Di, GP->norm_w)))
		return rc;
	/* SSD */
	if ((rc = ssd_bwd_launch(t, S, A, P)))
		return rc;
	k_bc_reduce<<<GRID1(R0 * N, 256), 256>>>(R0, L, H, N, C, Di, t->dBh, t->dCh, t->dxbc);
	k_ad_reduce<<<GRID1(H, 32), 32>>>(S, H, t->dAp, t->dDp, P->A_log, GP->A_log, GP->D);
	KCHECK("ssd reduce");
	/* delta */
	k_delta_bwd<<<GRID1(R0 * H, 256), 256>>>(R0, L, H, in_dim, dtc, D->is_time, A->zxd, A->tdt,
											 P->dt_bias, t->ddelta, t->gp, t->dzxd, t->dtdt);
	KCHECK("k_delta_bwd");
	if ((rc = colsum(t, t->gp, R0, H, H, GP->dt_bias)))
		return rc;
	/* conv + hardswish */
	k_conv_dc<<<GRID1(R0 * C, 256), 256>>>(R0 * C, t->dxbc, A->cpre);
	if ((rc = colsum(t, t->dxbc, R0, C, C, GP->conv_b)))
		return rc;
	k_conv_dv<<<GRID1(R0 * C, 256), 256>>>(R0, L, in_dim, Di, C, K, t->dxbc, P->conv_w, t->dzxd);
	{
		dim3		g((C + 127) / 128, CONV_PARTS);

		k_conv_dw<<<g, 128>>>(R0, L, in_dim, Di, C, K, t->dxbc, A->zxd, t->cpart);
	}
	KCHECK("conv bwd");
	if ((rc = colsum(t, t->cpart, CONV_PARTS, C * K, C * K, GP->conv_w)))
		return rc;
	/* time path */
	if (D->is_time)
	{
		const t4r_time_params *tp = &P->tp;
		const t4r_time_params *gt = &GP->tp;
		const float *Tm = dkt.on ? A->Tm : A->T;

		if (!last)
		{
			const float *Tg = dkt.on ? A->Tg : A->T;

			k_gate_bwd<<<WARP_GRID(R), 256>>>(R, L, G, dTn, A->X, A->tmu, A->trs, tp->lnw, A->GT,
											  A->T, A->tdt, t->prod, t->dmix, dT, t->dtdt, t->dgpre);
			KCHECK("k_gate_bwd");
			if ((rc = norm_grads(t, t->prod, dTn, R, L, gt->lnw, gt->lnb)) ||
				(rc = affine_bwd(t, R, G, L, t->dgpre, Tg, tp->gw, gt->gw, gt->gb, t->ts1)))
				return rc;
			k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, t->ts1, dkt,
												 T4R_SITE_LAYER(li, T4R_LSITE_TGATE), dT, 1);
		}
		else
			CK(cudaMemsetAsync(dT, 0, sizeof(float) * RL));
		k_time_conv_bwd<<<R, 128, 4 * L * sizeof(float)>>>(L, H, K, A->T, A->Sc, A->P1, A->P2,
															 tp->c1w, tp->c2w, t->dtdt, t->ts1, dT,
															 t->tpart);
		KCHECK("k_time_conv_bwd");
		k_tconv_reduce<<<GRID1(H * (2 * K + 2), 64), 64>>>(S, H, K, t->tpart, gt->c1w, gt->c1b,
															gt->c2w, gt->c2b);
		/* ds = ts1: mlp4time_scale.3 */
		if ((rc = affine_bwd(t, R, L, L, t->ts1, A->SL, tp->w2, gt->w2, gt->b2, t->ts2)))
			return rc;
		k_dsilu<<<GRID1(RL, 256), 256>>>(RL, t->ts2, A->A1);
		if ((rc = affine_bwd(t, R, L, L, t->ts2, Tm, tp->w1, gt->w1, gt->b1, t->ts1)))
			return rc;
		if (dkt.on)
			k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, t->ts1, dkt,
												 T4R_SITE_LAYER(li, T4R_LSITE_TMLP), dT, 1);
		else
			k_add<<<GRID1(RL, 256), 256>>>(RL, dT, t->ts1);
		KCHECK("time bwd");
	}
	/* in_proj */
	if ((rc = affine_bwd(t, R0, in_dim, d, t->dzxd, A->U, P->in_w, GP->in_w, GP->in_b, dU)))
		return rc;
	if (D->layers > 1)
		k_add_rows<<<GRID1((size_t) rows * d, 256), 256>>>(rows, d, L, last, t->nv, dU, t->da);
	KCHECK("in_proj bwd");
	return T4R_OK;
}

static int
backward(t4r_cuda_trainer *t, int S, int training, uint64_t step, int idx0, double scale)
{
	const t4r_dims *D = &t->D;
	const t4r_config *cfg = &t->m->cfg;
	int			L = D->L,
				d = D->d,
				V = D->V,
				H = D->H;
	size_t		R0 = (size_t) S * L;
	float	   *hidden = t->la[D->layers - 1].F;
	float	   *dF = t->dUa,
			   *dU = t->dUb,
			   *dT = t->dTa,
			   *dTn = NULL;
	DK			dk = make_dk(t, cfg->dropout_prob, training, step, idx0);
	int			rc;

	if ((rc = gemm(t, 0, 1, S, V, d, 1, hidden, d, t->pv.emb, d, 0, t->logits, V)))
		return rc;
	k_softmax_ce<<<S, 256>>>(V, t->logits, t->tgt, (float) scale, t->lossv);
	KCHECK("k_softmax_ce");
	if ((rc = gemm(t, 1, 0, V, d, S, 1, t->logits, V, hidden, d, 1, t->gv.emb, d)) ||
		(rc = gemm(t, 0, 0, S, d, V, 1, t->logits, V, t->pv.emb, d, 0, dF, d)))
		return rc;
	for (int li = D->layers - 1; li >= 0; li--)
	{
		float	   *tmp;

		if ((rc = layer_bwd(t, S, li, training, step, idx0, dF, dU, dTn, dT)))
			return rc;
		tmp = dF;
		dF = dU;
		dU = tmp;
		if (D->is_time)
		{
			dTn = dT;
			dT = dT == t->dTa ? t->dTb : t->dTa;
		}
	}
	/* in_layer_norm + embedding; dU is free scratch now */
	k_embed_bwd<<<WARP_GRID(R0), 256>>>((int) R0, L, d, t->items, t->emb, dF, t->pv.in_ln_w,
										t->e_mu, t->e_rs, dk, dU, t->prod, t->gv.emb);
	KCHECK("k_embed_bwd");
	if ((rc = norm_grads(t, t->prod, dF, R0, d, t->gv.in_ln_w, t->gv.in_ln_b)))
		return rc;
	if (D->is_time)
	{
		k_td_bwd<<<WARP_GRID(S), 256>>>(S, L, H, dTn, t->tdm, t->pv.tln_w, t->t_mu, t->t_rs,
										t->dtsum, t->prod);
		KCHECK("k_td_bwd");
		if ((rc = norm_grads(t, t->prod, t->dtsum, S, L, t->gv.tln_w, t->gv.tln_b)))
			return rc;
	}
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_loss_grad(t4r_cuda_trainer *t, const t4r_sample *s, int ns, int training,
						   double *loss)
{
	double		lsum = 0;
	int			rc;

	if (loss)
		*loss = 0;
	if (!t || !s || ns < 1)
		return T4R_EINVAL;
	if (!t->train)
	{
		snprintf(t->err, sizeof(t->err), "inference-only context");
		return T4R_EINVAL;
	}
	CK(cudaMemset(t->g, 0, t->total * sizeof(float)));
	for (int i0 = 0; i0 < ns; i0 += t->Smax)
	{
		int			S = ns - i0 < t->Smax ? ns - i0 : t->Smax;

		if ((rc = upload(t, s + i0, S, 1)))
			return rc;
		if ((rc = forward(t, S, training, (uint64_t) t->steps, i0)))
			return rc;
		if ((rc = backward(t, S, training, (uint64_t) t->steps, i0, 1.0 / ns)))
			return rc;
		CK(cudaMemcpy(t->h_loss, t->lossv, sizeof(double) * S, cudaMemcpyDeviceToHost));
		for (int i = 0; i < S; i++)
			lsum += t->h_loss[i];
	}
	CK(cudaDeviceSynchronize());
	if (loss)
		*loss = lsum / ns;
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_step(t4r_cuda_trainer *t, const t4r_sample *s, int ns, double *loss)
{
	int			rc = t4r_cuda_trainer_loss_grad(t, s, ns, 1, loss);
	double		lr = t->m->cfg.learning_rate,
				k,
				bc1,
				bc2s;

	if (rc)
		return rc;
	k = (double) (t->steps + 1);
	bc1 = 1 - pow(0.9, k);
	bc2s = sqrt(1 - pow(0.999, k));
	k_adam<<<GRID1(t->total, 256), 256>>>(t->total, t->p, t->g, t->am, t->av, lr / bc1, bc2s);
	KCHECK("k_adam");
	t->steps++;
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_grads(t4r_cuda_trainer *t, float *host)
{
	if (!t->train)
		return T4R_EINVAL;
	CK(cudaMemcpy(host, t->g, t->total * sizeof(float), cudaMemcpyDeviceToHost));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_sync_to_host(t4r_cuda_trainer *t)
{
	CK(cudaMemcpy(t->m->params, t->p, t->total * sizeof(float), cudaMemcpyDeviceToHost));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_sync_from_host(t4r_cuda_trainer *t)
{
	CK(cudaMemcpy(t->p, t->m->params, t->total * sizeof(float), cudaMemcpyHostToDevice));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_infer(t4r_cuda_trainer *t, const t4r_sample *seqs, int nseq,
					   float *hidden, float *scores)
{
	const t4r_dims *D = &t->D;
	int			rc;

	if (!t || !seqs || nseq < 0)
		return T4R_EINVAL;
	for (int i0 = 0; i0 < nseq; i0 += t->Smax)
	{
		int			S = nseq - i0 < t->Smax ? nseq - i0 : t->Smax;
		float	   *hd = t->la[D->layers - 1].F;

		if ((rc = upload(t, seqs + i0, S, 0)))
			return rc;
		if ((rc = forward(t, S, 0, 0, i0)))
			return rc;
		if (hidden)
			CK(cudaMemcpy(hidden + (size_t) i0 * D->d, hd, sizeof(float) * S * D->d,
						  cudaMemcpyDeviceToHost));
		if (scores)
		{
			if ((rc = gemm(t, 0, 1, S, D->V, D->d, 1, hd, D->d, t->pv.emb, D->d, 0, t->logits, D->V)))
				return rc;
			CK(cudaMemcpy(scores + (size_t) i0 * D->V, t->logits, sizeof(float) * S * D->V,
						  cudaMemcpyDeviceToHost));
		}
	}
	CK(cudaDeviceSynchronize());
	return T4R_OK;
}

extern "C" int
t4r_cuda_infer_batch(const t4r_model *m, const t4r_sample *seqs, int nseq, float *hidden,
					 float *scores, char *err, size_t errlen)
{
	t4r_cuda_trainer *t;
	int			mb = nseq < 1024 ? (nseq > 0 ? nseq : 1) : 1024;
	int			rc = t4r_cuda_trainer_create((t4r_model *) m, mb, 0, &t, err, errlen);

	if (rc)
		return rc;
	rc = t4r_cuda_trainer_infer(t, seqs, nseq, hidden, scores);
	if (rc && err && errlen)
		snprintf(err, errlen, "%s", t->err);
	t4r_cuda_trainer_free(t);
	return rc;
}
