/*
 * ops/ssd.cuh - 3.4 the SSD (selective state space scan; model.c's
 * ssd_forward / ssd_backward, src/core/ssd.c): per (sample, head) over x |
 * B | C (the xbc columns) and delta -> y [S*L, Di].  Two implementations:
 * the chunked kernels (the default: the CPU core's matrix form) and the
 * plain recurrence with checkpoints (T4R_CUDA_SSD=recurrent, or when the
 * chunk kernels' shared memory does not fit); ssd_choose picks one when a
 * trainer is created.
 */
#ifndef T4R_CUDA_OPS_SSD_CUH
#define T4R_CUDA_OPS_SSD_CUH

#include "../trainer.cuh"

#define SSD_CH 16				/* checkpoint interval of the recurrent SSD */

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
 * partials per (sample, head).
 * One long kernel (~200 lines, over the 150-line rule) on purpose: the
 * chunk's states and their gradients live in registers (stc, dS) across all
 * its phases; split into device functions they would be passed as arrays
 * (local memory) and the arithmetic order would have to be re-proven. */
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
 * A) and dD partials, like k_ssd_bwd.
 * One long kernel (~350 lines, over the 150-line rule) on purpose: its
 * phases share the chunk's shared-memory tiles, the carried dS and the
 * barriers between them; split into device functions each would take a
 * dozen shared pointers and the barrier structure would be harder to see.
 * The phases are marked by comments inside. */
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

/* xbc [S*L, C], delta [S*L, H] -> y [S*L, Di] and the SSD's saved states
 * ckpt [R, nch, P, N] OVERWRITTEN */
static int
ssd_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	LAct	   *A = o->A;
	const t4r_lparams *P = o->P;

	if (t->ssd_chunked)
		k_ssd_chunk_fwd<<<o->S * D->H, SSD_THREADS, t->shm_fwd>>>(D->L, D->H, D->P, D->N,
																	D->conv_dim, D->Di, t->ssd_q,
																	t->nch, A->xbc, A->delta,
																	P->A_log, P->D, A->y, A->ckpt);
	else
		ssd_rec(t, o->S, A, P, 0);
	KCHECK("ssd forward");
	return T4R_OK;
}

/* dyfull [S*L, Di] (gradient of y) -> dxbc [S*L, C] (x, and B, C summed
 * over the heads by k_bc_reduce) and ddelta [S*L, H] OVERWRITTEN, A_log
 * and D gradients ACCUMULATED (dBh, dCh, dAp, dDp scratch) */
static int
ssd_backward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	LAct	   *A = o->A;
	const t4r_lparams *P = o->P;

	if (t->ssd_chunked)
		k_ssd_chunk_bwd<<<o->S * D->H, SSD_THREADS, t->shm_bwd>>>(D->L, D->H, D->P, D->N,
																	D->conv_dim, D->Di, t->ssd_q,
																	t->nch, A->xbc, A->delta,
																	P->A_log, P->D, A->ckpt,
																	t->dyfull, t->dxbc, t->dBh,
																	t->dCh, t->ddelta, t->dAp,
																	t->dDp);
	else
		ssd_rec(t, o->S, A, P, 1);
	KCHECK("ssd backward");
	k_bc_reduce<<<GRID1(o->R0 * D->N, 256), 256>>>(o->R0, D->L, D->H, D->N, D->conv_dim, D->Di,
													t->dBh, t->dCh, t->dxbc);
	k_ad_reduce<<<GRID1(D->H, 32), 32>>>(o->S, D->H, t->dAp, t->dDp, P->A_log, o->GP->A_log,
										 o->GP->D);
	KCHECK("ssd reduce");
	return T4R_OK;
}

#endif
