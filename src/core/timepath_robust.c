/*
 * timepath_robust.c - the "robust" time path (time_features = robust): a
 * causal replacement of docs/MODEL.md steps 2, 3.3 and 3.7 that plugs into the
 * same places (the SSD's dt scaling and the per-layer time features).
 *
 * Every operation is per position or a causal convolution, so the time
 * features at position l depend only on positions <= l (the model is causal
 * and can be trained on all positions of a sequence at once), padded slots
 * are never read, and the input is the log-scaled gap between consecutive
 * events, so the origin and the unit of the timestamps do not matter.  See
 * timepath.h for the equations.
 */
#include <math.h>
#include <string.h>
#include "timepath.h"
#include "ops.h"

size_t
t4r_rtime_cache_size(int R, int L)
{
	return 5 * (size_t) R * (size_t) L;
}

size_t
t4r_rtime_scratch_size(int L)
{
	return 4 * (size_t) L;
}

void
t4r_rtime_features(const double *ts, int n, int L, double scale, t4r_real *g)
{
	double		inv = scale > 0 ? 1.0 / scale : 1.0;

	if (n > L)
		n = L;
	for (int l = 0; l < L; l++)
	{
		double		v = 0;

		if (l > 0 && l < n)
		{
			double		gap = ts[l] - ts[l - 1];

			v = log1p(fabs(gap) * inv);
			if (gap < 0)
				v = -v;
		}
		g[l] = (t4r_real) v;
	}
}

/* causal conv of one row over positions [0, n): o[l] = b + sum_k w[k] v[l-(K-1)+k] */
static void
cconv(const t4r_real *v, int n, int K, const t4r_real *w, t4r_real b, t4r_real *o)
{
	for (int l = 0; l < n; l++)
	{
		t4r_real	acc = b;

		for (int k = 0; k < K; k++)
		{
			int			j = l - (K - 1) + k;

			if (j >= 0)
				acc += w[k] * v[j];
		}
		o[l] = acc;
	}
}

void
t4r_rtime_fwd(const t4r_time_params *p, int R, int H, int L, int K, int J,
			  const int *nlen, const t4r_real *T,
			  const t4r_real *mask_mlp, const t4r_real *mask_gate,
			  t4r_real *tdt, t4r_real *Tnew, t4r_real *cache)
{
	size_t		RL = (size_t) R * L;
	t4r_real   *CS = cache,
			   *CP1 = cache + RL,
			   *CP2 = cache + 2 * RL,
			   *CGT = cache + 3 * RL,
			   *CX = cache + 4 * RL;

	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		int			n = nlen[r / H];
		size_t		o = (size_t) r * L;
		const t4r_real *t = T + o;
		const t4r_real *w1 = p->w1 + (size_t) h * J,
				   *b1 = p->b1 + (size_t) h * J,
				   *w2 = p->w2 + (size_t) h * J;
		t4r_real   *s = CS + o,
				   *p1 = CP1 + o,
				   *p2 = CP2 + o,
				   *td = tdt + o;

		if (n > L)
			n = L;
		/* s = w2 . silu(w1 u + b1) + b2 per position; q = T s (into td) */
		for (int l = 0; l < n; l++)
		{
			t4r_real	u = mask_mlp ? t[l] * mask_mlp[o + l] : t[l];
			t4r_real	acc = p->b2[h];

			for (int j = 0; j < J; j++)
				acc += w2[j] * t4r_silu(w1[j] * u + b1[j]);
			s[l] = acc;
			td[l] = t[l] * acc;
		}
		/* conv1 + hardswish (r1 into td after use: p1 kept) */
		cconv(td, n, K, p->c1w + (size_t) h * K, p->c1b[h], p1);
		for (int l = 0; l < n; l++)
			td[l] = t4r_hardswish(p1[l]);
		cconv(td, n, K, p->c2w + (size_t) h * K, p->c2b[h], p2);
		for (int l = 0; l < n; l++)
			td[l] = t4r_hardswish(p2[l]);
		for (int l = n; l < L; l++)
		{
			s[l] = p1[l] = p2[l] = 0;
			td[l] = 0;
		}
		if (Tnew)
		{
			t4r_real   *gt = CGT + o,
					   *x = CX + o,
					   *tn = Tnew + o;

			for (int l = 0; l < n; l++)
			{
				t4r_real	ug = mask_gate ? t[l] * mask_gate[o + l] : t[l];
				t4r_real	gv = t4r_sigmoid(p->gw[h] * ug + p->gb[h]);

				gt[l] = gv;
				x[l] = gv * t[l] + (1 - gv) * td[l];
				tn[l] = p->lnw[h] * x[l] + p->lnb[h];
			}
			for (int l = n; l < L; l++)
				gt[l] = x[l] = tn[l] = 0;
		}
	}
}

/* a K-wide causal conv over n positions, out[l] = b + sum_k w[k]
 * v[l-(K-1)+k]: its weight gradient gw[k] += sum_l dp[l] v[l-(K-1)+k]
 * (ACCUMULATED, summed in double) */
static void
rconv_wgrad(const t4r_real *dp, const t4r_real *v, int n, int K, t4r_real *gw)
{
	for (int k = 0; k < K; k++)
	{
		double		a = 0;

		for (int l = 0; l < n; l++)
		{
			int			j = l - (K - 1) + k;

			if (j >= 0)
				a += (double) dp[l] * v[j];
		}
		gw[k] += (t4r_real) a;
	}
}

/* ... and the gradient of its input at position j */
static inline t4r_real
rconv_dinput(const t4r_real *dp, const t4r_real *w, int n, int K, int j)
{
	t4r_real	a = 0;

	for (int k = 0; k < K; k++)
	{
		int			l = j + (K - 1) - k;

		if (l < n)
			a += dp[l] * w[k];
	}
	return a;
}

/*
 * backward of the gate mix and time layer norm of row o (head h, n real
 * positions), given dTnew: dt and dp2 (the gradient of tdt's
 * pre-activation so far) ACCUMULATED; lnw, lnb, gw, gb gradients
 * ACCUMULATED.
 */
static void
rtime_bwd_gate(const t4r_time_params *p, const t4r_time_params *g, int h, int n, size_t o,
			   const t4r_real *t, const t4r_real *p2, const t4r_real *gt, const t4r_real *x,
			   const t4r_real *mask_gate, const t4r_real *dTnew, t4r_real *dt, t4r_real *dp2)
{
	double		aw = 0,
				ab = 0,
				gw = 0,
				gb = 0;

	for (int l = 0; l < n; l++)
	{
		t4r_real	dn = dTnew[o + l];
		t4r_real	dx = dn * p->lnw[h];
		t4r_real	tdv = t4r_hardswish(p2[l]);
		t4r_real	ug = mask_gate ? t[l] * mask_gate[o + l] : t[l];
		t4r_real	dz = dx * (t[l] - tdv) * gt[l] * (1 - gt[l]);

		aw += (double) dn * x[l];
		ab += dn;
		dt[l] += dx * gt[l] + dz * p->gw[h] * (mask_gate ? mask_gate[o + l] : 1);
		dp2[l] += dx * (1 - gt[l]);
		gw += (double) dz * ug;
		gb += dz;
	}
	g->lnw[h] += (t4r_real) aw;
	g->lnb[h] += (t4r_real) ab;
	g->gw[h] += (t4r_real) gw;
	g->gb[h] += (t4r_real) gb;
}

/*
 * backward of q = T s and of the per-position MLP s = b2 + sum_i w2[i]
 * silu(w1[i] u + b1[i]) (u = T * mask_mlp) of row o, given dp1 (the
 * gradient of conv1's output): dt ACCUMULATED; w1, b1, w2, b2 gradients
 * ACCUMULATED (the first 64 hidden units).
 */
static void
rtime_bwd_mlp(const t4r_time_params *p, const t4r_time_params *g, int h, int J, int K,
			  int n, size_t o, const t4r_real *t, const t4r_real *s,
			  const t4r_real *mask_mlp, const t4r_real *dp1, t4r_real *dt)
{
	const t4r_real *w1 = p->w1 + (size_t) h * J,
			   *b1 = p->b1 + (size_t) h * J,
			   *w2 = p->w2 + (size_t) h * J,
			   *c1w = p->c1w + (size_t) h * K;
	double		gw1[64],
				gb1[64],
				gw2[64],
				acc_b2 = 0;
	int			Jc = J < 64 ? J : 64;

	for (int j = 0; j < Jc; j++)
		gw1[j] = gb1[j] = gw2[j] = 0;
	for (int j = 0; j < n; j++)
	{
		t4r_real	dq = rconv_dinput(dp1, c1w, n, K, j);
		t4r_real	u = mask_mlp ? t[j] * mask_mlp[o + j] : t[j];
		t4r_real	du = 0;
		t4r_real	ds;

		dt[j] += dq * s[j];
		ds = dq * t[j];
		acc_b2 += ds;
		for (int i = 0; i < Jc; i++)
		{
			t4r_real	a = w1[i] * u + b1[i];
			t4r_real	da = ds * w2[i] * t4r_dsilu(a);

			gw2[i] += (double) ds * t4r_silu(a);
			gw1[i] += (double) da * u;
			gb1[i] += da;
			du += da * w1[i];
		}
		dt[j] += du * (mask_mlp ? mask_mlp[o + j] : 1);
	}
	for (int i = 0; i < Jc; i++)
	{
		g->w1[(size_t) h * J + i] += (t4r_real) gw1[i];
		g->b1[(size_t) h * J + i] += (t4r_real) gb1[i];
		g->w2[(size_t) h * J + i] += (t4r_real) gw2[i];
	}
	g->b2[h] += (t4r_real) acc_b2;
}

void
t4r_rtime_bwd(const t4r_time_params *p, const t4r_time_params *g,
			  int R, int H, int L, int K, int J, const int *nlen,
			  const t4r_real *T,
			  const t4r_real *mask_mlp, const t4r_real *mask_gate,
			  const t4r_real *cache,
			  const t4r_real *dtdt, const t4r_real *dTnew,
			  t4r_real *dT, t4r_real *scratch)
{
	size_t		RL = (size_t) R * L;
	const t4r_real *CS = cache,
			   *CP1 = cache + RL,
			   *CP2 = cache + 2 * RL,
			   *CGT = cache + 3 * RL,
			   *CX = cache + 4 * RL;
	t4r_real   *dp2 = scratch,
			   *dp1 = scratch + L,
			   *r1 = scratch + 2 * L,
			   *q = scratch + 3 * L;

	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		int			n = nlen[r / H];
		size_t		o = (size_t) r * L;
		const t4r_real *t = T + o,
				   *s = CS + o,
				   *p1 = CP1 + o,
				   *p2 = CP2 + o;
		const t4r_real *c2w = p->c2w + (size_t) h * K;
		t4r_real   *dt = dT + o;
		double		acc_c1b = 0,
					acc_c2b = 0;

		if (n > L)
			n = L;
		for (int l = 0; l < L; l++)
			dt[l] = 0;
		/* gradient of tdt (own + through the gate mix) */
		for (int l = 0; l < n; l++)
			dp2[l] = dtdt[o + l];
		if (dTnew)
			rtime_bwd_gate(p, g, h, n, o, t, p2, CGT + o, CX + o, mask_gate, dTnew, dt, dp2);
		/* tdt = hardswish(p2) */
		for (int l = 0; l < n; l++)
		{
			dp2[l] *= t4r_dhardswish(p2[l]);
			acc_c2b += dp2[l];
			r1[l] = t4r_hardswish(p1[l]);
		}
		/* conv2: p2[l] = c2b + sum_k c2w[k] r1[l-(K-1)+k] */
		rconv_wgrad(dp2, r1, n, K, g->c2w + (size_t) h * K);
		g->c2b[h] += (t4r_real) acc_c2b;
		for (int j = 0; j < n; j++)
		{
			/* r1 = hardswish(p1) */
			dp1[j] = rconv_dinput(dp2, c2w, n, K, j) * t4r_dhardswish(p1[j]);
			acc_c1b += dp1[j];
			q[j] = t[j] * s[j];
		}
		/* conv1 over q */
		rconv_wgrad(dp1, q, n, K, g->c1w + (size_t) h * K);
		g->c1b[h] += (t4r_real) acc_c1b;
		/* dq -> dT (through q = T s) and ds -> the per-position MLP */
		rtime_bwd_mlp(p, g, h, J, K, n, o, t, s, mask_mlp, dp1, dt);
	}
}
