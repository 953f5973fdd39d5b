/*
 * ops/time_path.cuh - 3.3 + 3.7 the time path of a layer (is_time; model.c's
 * time_forward / time_backward, the official form of src/core/timepath.c):
 * over R = S*H rows of length L, T -> time dropout -> MLP (w1, silu, w2) ->
 * the two time convs -> tdt (delta's scale); except in the last layer the
 * gate (gw, gb), its residual and layer norm -> the next layer's T.
 */
#ifndef T4R_CUDA_OPS_TIME_PATH_CUH
#define T4R_CUDA_OPS_TIME_PATH_CUH

#include "../trainer.cuh"

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

/* T [R, L] -> tdt [R, L] and, except in the last layer, the next layer's
 * T [R, L]; Tm, A1, SL, Sc, P1, P2 (and Tg, gpre, GT, X, tmu, trs) [R, .]
 * OVERWRITTEN */
static int
time_forward(const gop *o)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	const t4r_time_params *tp = &o->P->tp;
	LAct	   *A = o->A;
	int			R = o->R,
				L = D->L,
				H = D->H,
				li = o->li;
	const float *Tm = A->T;
	size_t		RL = (size_t) R * L;
	int			rc;

	if (o->dkt.on)
	{
		k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, A->T, o->dkt,
											 T4R_SITE_LAYER(li, T4R_LSITE_TMLP), A->Tm, 0);
		Tm = A->Tm;
	}
	if ((rc = affine(t, R, L, L, Tm, tp->w1, tp->b1, A->A1)))
		return rc;
	k_silu<<<GRID1(RL, 256), 256>>>(RL, A->A1, A->SL);
	if ((rc = affine(t, R, L, L, A->SL, tp->w2, tp->b2, A->Sc)))
		return rc;
	k_time_conv<<<R, 128, 2 * L * sizeof(float)>>>(L, H, D->K, A->T, A->Sc, tp->c1w, tp->c1b,
													tp->c2w, tp->c2b, A->P1, A->P2, A->tdt);
	KCHECK("k_time_conv");
	if (!o->last)
	{
		const float *Tg = A->T;

		if (o->dkt.on)
		{
			k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, A->T, o->dkt,
												 T4R_SITE_LAYER(li, T4R_LSITE_TGATE), A->Tg, 0);
			Tg = A->Tg;
		}
		if ((rc = affine(t, R, D->G, L, Tg, tp->gw, tp->gb, A->gpre)))
			return rc;
		k_gate_fwd<<<WARP_GRID(R), 256>>>(R, L, D->G, A->gpre, A->T, A->tdt, tp->lnw, tp->lnb,
										  o->cfg->norm_eps, A->GT, A->X, t->la[li + 1].T,
										  A->tmu, A->trs);
		KCHECK("k_gate_fwd");
	}
	return T4R_OK;
}

/* dtdt [R, L] (gradient of tdt, added to by the gate) and dTn [R, L] (of
 * the next layer's T; not read in the last layer) -> dT [R, L]
 * OVERWRITTEN, time path parameter gradients ACCUMULATED (ts1, ts2, dmix,
 * dgpre, tpart, prod scratch) */
static int
time_backward(const gop *o, const float *dTn, float *dT)
{
	t4r_cuda_trainer *t = o->t;
	const t4r_dims *D = o->D;
	const t4r_time_params *tp = &o->P->tp;
	const t4r_time_params *gt = &o->GP->tp;
	LAct	   *A = o->A;
	int			R = o->R,
				L = D->L,
				H = D->H,
				K = D->K,
				li = o->li;
	size_t		RL = (size_t) R * L;
	const float *Tm = o->dkt.on ? A->Tm : A->T;
	int			rc;

	if (!o->last)
	{
		const float *Tg = o->dkt.on ? A->Tg : A->T;

		k_gate_bwd<<<WARP_GRID(R), 256>>>(R, L, D->G, dTn, A->X, A->tmu, A->trs, tp->lnw, A->GT,
										  A->T, A->tdt, t->prod, t->dmix, dT, t->dtdt, t->dgpre);
		KCHECK("k_gate_bwd");
		if ((rc = norm_grads(t, t->prod, dTn, R, L, gt->lnw, gt->lnb)) ||
			(rc = affine_bwd(t, R, D->G, L, t->dgpre, Tg, tp->gw, gt->gw, gt->gb, t->ts1)))
			return rc;
		k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, t->ts1, o->dkt,
											 T4R_SITE_LAYER(li, T4R_LSITE_TGATE), dT, 1);
	}
	else
		CK(cudaMemsetAsync(dT, 0, sizeof(float) * RL));
	k_time_conv_bwd<<<R, 128, 4 * L * sizeof(float)>>>(L, H, K, A->T, A->Sc, A->P1, A->P2,
														 tp->c1w, tp->c2w, t->dtdt, t->ts1, dT,
														 t->tpart);
	KCHECK("k_time_conv_bwd");
	k_tconv_reduce<<<GRID1(H * (2 * K + 2), 64), 64>>>(o->S, H, K, t->tpart, gt->c1w, gt->c1b,
														gt->c2w, gt->c2b);
	/* ds = ts1: mlp4time_scale.3 */
	if ((rc = affine_bwd(t, R, L, L, t->ts1, A->SL, tp->w2, gt->w2, gt->b2, t->ts2)))
		return rc;
	k_dsilu<<<GRID1(RL, 256), 256>>>(RL, t->ts2, A->A1);
	if ((rc = affine_bwd(t, R, L, L, t->ts2, Tm, tp->w1, gt->w1, gt->b1, t->ts1)))
		return rc;
	if (o->dkt.on)
		k_time_mask<<<GRID1(RL, 256), 256>>>(R, L, H, t->ts1, o->dkt,
											 T4R_SITE_LAYER(li, T4R_LSITE_TMLP), dT, 1);
	else
		k_add<<<GRID1(RL, 256), 256>>>(RL, dT, t->ts1);
	KCHECK("time bwd");
	return T4R_OK;
}

#endif
