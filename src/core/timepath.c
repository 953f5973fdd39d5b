/*
 * timepath.c - the per-layer time path of TiM4Rec (MODEL.md steps 3.3 and
 * 3.7): time MLP scale, two per-head causal convs with hardswish, the gate
 * residual and the time layer norm.  Forward and backward over R rows of
 * length L; the [L, L] linears of all rows go through one GEMM each, the
 * elementwise chains are fused into a few passes per row that the compiler
 * can vectorise (sums use 8 independent double lanes).
 *
 * Single-threaded by design: the trainer runs one micro-batch per thread.
 *
 * Cache layout (t4r_real elements, R*L blocks unless noted):
 *   U   u = T * mask_mlp (a copy of T when mask_mlp == NULL)
 *   A1  a1 = u W1^T + b1
 *   SG  sigmoid(a1)                      (silu(a1) = a1 * SG)
 *   S   s = silu(a1) W2^T + b2
 *   P1  conv1d4time_1 pre-activation
 *   P2  conv1d4time_2 pre-activation     (tdt = hardswish(P2))
 *   X   gate mix before the layer norm
 *   GT  gate values, R*G
 *   MU, RS  layer norm mean and rstd, R each
 * Scratch (backward): three R*L blocks and TP_ROWBUF row buffers of L.
 */

/*
 * Comparisons in the elementwise loops (hardswish and its derivative) keep
 * GCC from vectorising them unless it may ignore floating-point exception
 * flags; the results are unchanged.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-trapping-math")
#endif

#include <string.h>
#include "timepath.h"
#include "ops.h"

#define RL ((size_t) R * (size_t) L)
#define TP_MAXHK 256			/* per-head conv grads kept in double up to H*K */
#define TP_ROWBUF 7

size_t
t4r_time_cache_size(int R, int L, int G)
{
	return 7 * RL + (size_t) R * G + 2 * (size_t) R;
}

size_t
t4r_time_scratch_size(int R, int L, int G)
{
	(void) G;
	return 3 * RL + TP_ROWBUF * (size_t) L;
}

typedef struct cache_view
{
	t4r_real   *U,
			   *A1,
			   *SG,
			   *S,
			   *P1,
			   *P2,
			   *X,
			   *GT,
			   *MU,
			   *RS;
} cache_view;

static void
cache_split(t4r_real *c, int R, int L, int G, cache_view *v)
{
	v->U = c;
	v->A1 = c + RL;
	v->SG = c + 2 * RL;
	v->S = c + 3 * RL;
	v->P1 = c + 4 * RL;
	v->P2 = c + 5 * RL;
	v->X = c + 6 * RL;
	v->GT = c + 7 * RL;
	v->MU = v->GT + (size_t) R * G;
	v->RS = v->MU + R;
}

/* ---------------- elementwise helpers ---------------- */

#ifdef T4R_DOUBLE
#define tp_sigmoid(x) ((t4r_real) (1 / (1 + exp(-(double) (x)))))
#else
/*
 * sigmoid in float without branches (vectorisable): e = exp(-|a|) by range
 * reduction and a degree-6 polynomial (|a| clamped to 87 so that e stays
 * normal), then 1/(1+e) or e/(1+e) chosen by the sign bit.  Relative error
 * under 2e-7 wherever sigmoid(a) is a normal float.
 */
static inline float
tp_sigmoid(float a)
{
	int32_t		ab,
				mb,
				mask,
				vb,
				ni,
				sb,
				pb,
				nb,
				rb;
	float		m,
				t,
				v,
				n,
				r,
				p,
				s,
				e,
				sp,
				sn,
				res;

	memcpy(&ab, &a, 4);
	mask = ab >> 31;			/* all ones when a < 0 (or -0) */
	mb = ab & 0x7fffffff;
	mb = mb < 0x42AE0000 ? mb : 0x42AE0000;	/* |a| <= 87 */
	memcpy(&m, &mb, 4);
	/* exp(-m): -m = n ln2 + r, |r| <= ln2/2 */
	t = -m * 1.44269504088896341f;
	v = t + 12582912.0f;		/* 1.5 * 2^23: round to nearest integer */
	n = v - 12582912.0f;
	memcpy(&vb, &v, 4);
	ni = vb - 0x4B400000;
	r = -m - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	sb = (ni + 127) << 23;
	memcpy(&s, &sb, 4);
	e = p * s;
	sp = 1.0f / (1.0f + e);
	sn = e * sp;
	memcpy(&pb, &sp, 4);
	memcpy(&nb, &sn, 4);
	rb = (pb & ~mask) | (nb & mask);
	memcpy(&res, &rb, 4);
	return res;
}
#endif

/* hardswish and PyTorch's derivative, written as selects */
static inline t4r_real
tp_hsw(t4r_real x)
{
	t4r_real	r = x + 3;
	t4r_real	v = x * r / 6;

	v = r <= 0 ? 0 : v;
	return r >= 6 ? x : v;
}

static inline t4r_real
tp_dhsw(t4r_real x)
{
	t4r_real	v = (2 * x + 3) * (t4r_real) (1.0 / 6);

	v = x < -3 ? 0 : v;
	return x > 3 ? 1 : v;
}

/* sums in 8 independent double lanes (vectorisable, order fixed) */
#define TP_LANE_REDUCE(acc) \
	((((acc)[0] + (acc)[1]) + ((acc)[2] + (acc)[3])) + \
	 (((acc)[4] + (acc)[5]) + ((acc)[6] + (acc)[7])))

static inline double
tp_sum(const t4r_real *restrict x, int n)
{
	double		a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			a[j] += x[i + j];
	for (; i < n; i++)
		a[i & 7] += x[i];
	return TP_LANE_REDUCE(a);
}

static inline double
tp_dot(const t4r_real *restrict x, const t4r_real *restrict y, int n)
{
	double		a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			a[j] += (double) x[i + j] * y[i + j];
	for (; i < n; i++)
		a[i & 7] += (double) x[i] * y[i];
	return TP_LANE_REDUCE(a);
}

/* sum (x - m)^2 */
static inline double
tp_sqdev(const t4r_real *restrict x, int n, double m)
{
	double		a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
		{
			double		c = x[i + j] - m;

			a[j] += c * c;
		}
	for (; i < n; i++)
	{
		double		c = x[i] - m;

		a[i & 7] += c * c;
	}
	return TP_LANE_REDUCE(a);
}

/* ---------------- causal conv of one row ---------------- */

/* out[l] = b + sum_k w[k] v[l-(K-1)+k] (v[<0] = 0) */
static inline void
conv_row(const t4r_real *restrict v, int L, const t4r_real *restrict w, t4r_real b,
		 int K, t4r_real *restrict out)
{
	int			l;

	for (l = 0; l < K - 1 && l < L; l++)
	{
		t4r_real	acc = b;

		for (int k = K - 1 - l; k < K; k++)
			acc += w[k] * v[l - (K - 1) + k];
		out[l] = acc;
	}
	if (l >= L)
		return;
	if (K == 4)
	{
		t4r_real	w0 = w[0],
					w1 = w[1],
					w2 = w[2],
					w3 = w[3];

		for (; l < L; l++)
			out[l] = b + w0 * v[l - 3] + w1 * v[l - 2] + w2 * v[l - 1] + w3 * v[l];
	}
	else
	{
		int			l0 = l;

		for (; l < L; l++)
			out[l] = b;
		for (int k = 0; k < K; k++)
		{
			t4r_real	wk = w[k];
			const t4r_real *vv = v + k - (K - 1);

			for (l = l0; l < L; l++)
				out[l] += wk * vv[l];
		}
	}
}

/*
 * Backward of conv_row: dv OVERWRITTEN; dw[K], *db ACCUMULATED, in double
 * (dw != NULL) or straight into t4r_real (dwr, dbr).
 *   dv[j]  = sum_k w[k] dout[j+(K-1)-k]  (dout beyond L-1 is 0)
 *   dw[k]  = sum_j dout[j+(K-1)-k] v[j]
 */
static inline void
conv_row_bwd(const t4r_real *restrict v, int L, const t4r_real *restrict w, int K,
			 const t4r_real *restrict dout, t4r_real *restrict dv,
			 double *restrict dw, double *restrict db,
			 t4r_real *restrict dwr, t4r_real *restrict dbr)
{
	double		sb = tp_sum(dout, L);
	int			j = 0;

	if (db)
		*db += sb;
	else
		*dbr += (t4r_real) sb;
	for (int k = 0; k < K; k++)
	{
		int			sh = K - 1 - k;
		double		acc = sh < L ? tp_dot(dout + sh, v, L - sh) : 0;

		if (dw)
			dw[k] += acc;
		else
			dwr[k] += (t4r_real) acc;
	}
	if (K == 4)
	{
		t4r_real	w0 = w[0],
					w1 = w[1],
					w2 = w[2],
					w3 = w[3];

		for (; j + 3 < L; j++)
			dv[j] = w3 * dout[j] + w2 * dout[j + 1] + w1 * dout[j + 2] + w0 * dout[j + 3];
	}
	for (; j < L; j++)
	{
		t4r_real	acc = 0;

		for (int k = 0; k < K; k++)
		{
			int			l = j + (K - 1) - k;

			if (l < L)
				acc += w[k] * dout[l];
		}
		dv[j] = acc;
	}
}

/* ---------------- row kernels of the backward ----------------
 * (separate functions so that the restrict parameters let the loops
 * vectorise) */

/* layer norm backward of one row: dm = (gy - mean(gy) - xh mean(gy xh)) rstd,
 * gy = dy * lnw, xh = (x - mean) rstd (left in xh); lnw/lnb grads += */
static void
ln_bwd_row(const t4r_real *restrict x, const t4r_real *restrict dy,
		   const t4r_real *restrict lw, t4r_real mf, t4r_real rf, int L,
		   t4r_real *restrict dm, t4r_real *restrict xh,
		   t4r_real *restrict glw, t4r_real *restrict glb)
{
	t4r_real	sgf,
				sgxf;

	for (int l = 0; l < L; l++)
	{
		t4r_real	xv = (x[l] - mf) * rf;

		xh[l] = xv;
		dm[l] = dy[l] * lw[l];
		glw[l] += dy[l] * xv;
		glb[l] += dy[l];
	}
	sgf = (t4r_real) (tp_sum(dm, L) / L);
	sgxf = (t4r_real) (tp_dot(dm, xh, L) / L);
	for (int l = 0; l < L; l++)
		dm[l] = (dm[l] - sgf - xh[l] * sgxf) * rf;
}

/* x = g T + (1 - g) tdt with a gate vector: dT = g dm (overwritten),
 * dtdt = (1 - g) dm, dz = d(pre-sigmoid gate) */
static void
mix_bwd_vec(const t4r_real *restrict gt, const t4r_real *restrict p2,
			const t4r_real *restrict t, const t4r_real *restrict dm, int L,
			t4r_real *restrict dt, t4r_real *restrict dtt, t4r_real *restrict dz)
{
	for (int l = 0; l < L; l++)
	{
		t4r_real	gv = gt[l];
		t4r_real	tdv = tp_hsw(p2[l]);

		dt[l] = gv * dm[l];
		dtt[l] = (1 - gv) * dm[l];
		dz[l] = dm[l] * (t[l] - tdv) * gv * (1 - gv);
	}
}

/* same with a scalar gate; diff = T - tdt for the gate's gradient */
static void
mix_bwd_scalar(t4r_real gv, const t4r_real *restrict p2,
			   const t4r_real *restrict t, const t4r_real *restrict dm, int L,
			   t4r_real *restrict dt, t4r_real *restrict dtt, t4r_real *restrict diff)
{
	for (int l = 0; l < L; l++)
	{
		diff[l] = t[l] - tp_hsw(p2[l]);
		dt[l] = gv * dm[l];
		dtt[l] = (1 - gv) * dm[l];
	}
}

/* ---------------- forward ---------------- */

void
t4r_time_fwd(const t4r_time_params *p, int R, int H, int L, int K, int G,
			 double eps, const t4r_real *T,
			 const t4r_real *mask_mlp, const t4r_real *mask_gate,
			 t4r_real *tdt, t4r_real *Tnew, t4r_real *cache)
{
	cache_view c;
	int			pgl = (G == L && G > 1);

	if (R <= 0 || L <= 0)
		return;
	cache_split(cache, R, L, G, &c);

	/* u = T * mask_mlp; a1 = b1 broadcast, then a1 += U W1^T */
	for (int r = 0; r < R; r++)
	{
		size_t		o = (size_t) r * L;

		if (mask_mlp)
		{
			const t4r_real *restrict t = T + o;
			const t4r_real *restrict m = mask_mlp + o;
			t4r_real   *restrict u = c.U + o;

			for (int l = 0; l < L; l++)
				u[l] = t[l] * m[l];
		}
		else
			memcpy(c.U + o, T + o, sizeof(t4r_real) * L);
		memcpy(c.A1 + o, p->b1, sizeof(t4r_real) * L);
	}
	t4r_gemm(0, 1, R, L, L, 1, c.U, L, p->w1, L, 1, c.A1, L);

	/* sg = sigmoid(a1); h = a1 * sg staged in P1; s = b2 + h W2^T */
	{
		const t4r_real *restrict a1 = c.A1;
		t4r_real   *restrict sg = c.SG;
		t4r_real   *restrict hh = c.P1;

		for (size_t i = 0; i < RL; i++)
		{
			t4r_real	a = a1[i];
			t4r_real	sv = tp_sigmoid(a);

			sg[i] = sv;
			hh[i] = a * sv;
		}
	}
	for (int r = 0; r < R; r++)
		memcpy(c.S + (size_t) r * L, p->b2, sizeof(t4r_real) * L);
	t4r_gemm(0, 1, R, L, L, 1, c.P1, L, p->w2, L, 1, c.S, L);

	/* G == L: gate = sigmoid(Tg gw^T + gb), Tg staged in X */
	if (Tnew && pgl)
	{
		const t4r_real *tg = T;

		if (mask_gate)
		{
			t4r_real   *restrict x = c.X;

			for (size_t i = 0; i < RL; i++)
				x[i] = T[i] * mask_gate[i];
			tg = c.X;
		}
		for (int r = 0; r < R; r++)
			memcpy(c.GT + (size_t) r * L, p->gb, sizeof(t4r_real) * L);
		t4r_gemm(0, 1, R, L, L, 1, tg, L, p->gw, L, 1, c.GT, L);
		{
			t4r_real   *restrict gt = c.GT;

			for (size_t i = 0; i < RL; i++)
				gt[i] = tp_sigmoid(gt[i]);
		}
	}

	/* per row: q, conv1, hardswish, conv2, hardswish, gate mix, LN */
	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		size_t		o = (size_t) r * L;
		const t4r_real *restrict t = T + o;
		const t4r_real *restrict s = c.S + o;
		t4r_real   *restrict p1 = c.P1 + o;
		t4r_real   *restrict p2 = c.P2 + o;
		t4r_real   *restrict td = tdt + o;
		t4r_real   *restrict x = c.X + o;

		/* q = T * s staged in td */
		for (int l = 0; l < L; l++)
			td[l] = t[l] * s[l];
		conv_row(td, L, p->c1w + (size_t) h * K, p->c1b[h], K, p1);
		for (int l = 0; l < L; l++)
			td[l] = tp_hsw(p1[l]);
		conv_row(td, L, p->c2w + (size_t) h * K, p->c2b[h], K, p2);
		for (int l = 0; l < L; l++)
			td[l] = tp_hsw(p2[l]);

		if (!Tnew)
			continue;
		if (pgl)
		{
			const t4r_real *restrict g = c.GT + o;

			for (int l = 0; l < L; l++)
				x[l] = g[l] * t[l] + (1 - g[l]) * td[l];
		}
		else
		{
			double		z;
			t4r_real	gv;

			if (mask_gate)
			{
				const t4r_real *restrict m = mask_gate + o;
				double		a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
				int			i = 0;

				for (; i + 8 <= L; i += 8)
					for (int j = 0; j < 8; j++)
						a[j] += (double) p->gw[i + j] * (t[i + j] * m[i + j]);
				for (; i < L; i++)
					a[i & 7] += (double) p->gw[i] * (t[i] * m[i]);
				z = TP_LANE_REDUCE(a);
			}
			else
				z = tp_dot(p->gw, t, L);
			gv = t4r_sigmoid((t4r_real) (z + p->gb[0]));
			c.GT[r] = gv;
			for (int l = 0; l < L; l++)
				x[l] = gv * t[l] + (1 - gv) * td[l];
		}
		/* layer norm over L, two-pass */
		{
			double		mean = tp_sum(x, L) / L;
			double		var = tp_sqdev(x, L, mean) / L;
			double		rstd = 1.0 / sqrt(var + eps);
			t4r_real	mf = (t4r_real) mean,
						rf = (t4r_real) rstd;
			const t4r_real *restrict lw = p->lnw;
			const t4r_real *restrict lb = p->lnb;
			t4r_real   *restrict y = Tnew + o;

			for (int l = 0; l < L; l++)
				y[l] = (x[l] - mf) * rf * lw[l] + lb[l];
			c.MU[r] = mf;
			c.RS[r] = rf;
		}
	}
}

/* ---------------- backward ---------------- */

void
t4r_time_bwd(const t4r_time_params *p, const t4r_time_params *g,
			 int R, int H, int L, int K, int G, double eps,
			 const t4r_real *T,
			 const t4r_real *mask_mlp, const t4r_real *mask_gate,
			 const t4r_real *cache,
			 const t4r_real *dtdt, const t4r_real *dTnew,
			 t4r_real *dT, t4r_real *scratch)
{
	cache_view c;
	int			pgl = (G == L && G > 1);
	t4r_real   *B0 = scratch,
			   *B1 = scratch + RL,
			   *DS = scratch + 2 * RL,
			   *row = scratch + 3 * RL;
	t4r_real   *restrict dtt = row,
			   *restrict r1 = row + L,
			   *restrict dr = row + 2 * L,
			   *restrict q = row + 3 * L,
			   *restrict dq = row + 4 * L,
			   *restrict acc = row + 5 * L,
			   *restrict xh = row + 6 * L;
	/* per-head conv gradients accumulated in double when they fit */
	double		dcw1[TP_MAXHK],
				dcw2[TP_MAXHK],
				dcb1[TP_MAXHK],
				dcb2[TP_MAXHK];
	int			dacc = ((size_t) H * K <= TP_MAXHK);
	double		dgb = 0;

	(void) eps;
	if (R <= 0 || L <= 0)
		return;
	cache_split((t4r_real *) cache, R, L, G, &c);
	if (dacc)
	{
		memset(dcw1, 0, sizeof(double) * H * K);
		memset(dcw2, 0, sizeof(double) * H * K);
		memset(dcb1, 0, sizeof(double) * H);
		memset(dcb2, 0, sizeof(double) * H);
	}

	/* ---- phase 1: per row, LN + gate mix + convs + q = T * s ---- */
	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		size_t		o = (size_t) r * L;
		const t4r_real *restrict t = T + o;
		const t4r_real *restrict s = c.S + o;
		const t4r_real *restrict p1 = c.P1 + o;
		const t4r_real *restrict p2 = c.P2 + o;
		const t4r_real *restrict dd = dtdt ? dtdt + o : NULL;
		t4r_real   *restrict dt = dT + o;
		t4r_real   *restrict ds = DS + o;
		double	   *w1acc = dacc ? dcw1 + (size_t) h * K : NULL;
		double	   *w2acc = dacc ? dcw2 + (size_t) h * K : NULL;
		double	   *b1acc = dacc ? dcb1 + h : NULL;
		double	   *b2acc = dacc ? dcb2 + h : NULL;

		if (dTnew)
		{
			const t4r_real *restrict dy = dTnew + o;
			const t4r_real *restrict x = c.X + o;
			const t4r_real *restrict lw = p->lnw;
			t4r_real   *restrict glw = g->lnw;
			t4r_real   *restrict glb = g->lnb;
			t4r_real   *restrict dm = B0 + o;

			ln_bwd_row(x, dy, lw, c.MU[r], c.RS[r], L, dm, xh, glw, glb);

			/* gate mix x = gate T + (1 - gate) tdt */
			if (pgl)
			{
				const t4r_real *restrict gt = c.GT + o;
				t4r_real   *restrict dz = B1 + o;

				mix_bwd_vec(gt, p2, t, dm, L, dt, dtt, dz);
			}
			else
			{
				t4r_real	gv = c.GT[r];
				t4r_real	dz;

				/* d gate = sum dm (T - tdt), staged through xh */
				mix_bwd_scalar(gv, p2, t, dm, L, dt, dtt, xh);
				dz = (t4r_real) (tp_dot(dm, xh, L) * gv * (1 - gv));
				dgb += dz;
				if (mask_gate)
				{
					const t4r_real *restrict m = mask_gate + o;
					const t4r_real *restrict gw = p->gw;
					t4r_real   *restrict ggw = g->gw;

					for (int l = 0; l < L; l++)
					{
						ggw[l] += dz * (t[l] * m[l]);
						dt[l] += dz * gw[l] * m[l];
					}
				}
				else
				{
					const t4r_real *restrict gw = p->gw;
					t4r_real   *restrict ggw = g->gw;

					for (int l = 0; l < L; l++)
					{
						ggw[l] += dz * t[l];
						dt[l] += dz * gw[l];
					}
				}
			}
			if (dd)
				for (int l = 0; l < L; l++)
					dtt[l] = (dd[l] + dtt[l]) * tp_dhsw(p2[l]);
			else
				for (int l = 0; l < L; l++)
					dtt[l] *= tp_dhsw(p2[l]);
		}
		else
		{
			memset(dt, 0, sizeof(t4r_real) * L);
			if (dd)
				for (int l = 0; l < L; l++)
					dtt[l] = dd[l] * tp_dhsw(p2[l]);
			else
				memset(dtt, 0, sizeof(t4r_real) * L);
		}

		/* dtt = d p2; conv2 backward gives d r1 */
		for (int l = 0; l < L; l++)
			r1[l] = tp_hsw(p1[l]);
		conv_row_bwd(r1, L, p->c2w + (size_t) h * K, K, dtt, dr, w2acc, b2acc,
					 g->c2w + (size_t) h * K, g->c2b + h);
		/* d p1 = d r1 * hardswish'(p1); q = T * s; conv1 backward gives dq */
		for (int l = 0; l < L; l++)
		{
			dr[l] *= tp_dhsw(p1[l]);
			q[l] = t[l] * s[l];
		}
		conv_row_bwd(q, L, p->c1w + (size_t) h * K, K, dr, dq, w1acc, b1acc,
					 g->c1w + (size_t) h * K, g->c1b + h);
		/* q = T * s: dT += dq * s, ds = dq * T */
		for (int l = 0; l < L; l++)
		{
			dt[l] += dq[l] * s[l];
			ds[l] = dq[l] * t[l];
		}
	}
	if (dacc)
	{
		for (int i = 0; i < H * K; i++)
		{
			g->c1w[i] += (t4r_real) dcw1[i];
			g->c2w[i] += (t4r_real) dcw2[i];
		}
		for (int i = 0; i < H; i++)
		{
			g->c1b[i] += (t4r_real) dcb1[i];
			g->c2b[i] += (t4r_real) dcb2[i];
		}
	}

	/* ---- phase 2: gate linear ---- */
	if (dTnew)
	{
		if (pgl)
		{
			const t4r_real *tg = T;

			/* gb += colsum dz */
			memset(acc, 0, sizeof(t4r_real) * L);
			for (int r = 0; r < R; r++)
			{
				const t4r_real *restrict dz = B1 + (size_t) r * L;

				for (int l = 0; l < L; l++)
					acc[l] += dz[l];
			}
			for (int l = 0; l < L; l++)
				g->gb[l] += acc[l];
			if (mask_gate)
			{
				t4r_real   *restrict b0 = B0;

				for (size_t i = 0; i < RL; i++)
					b0[i] = T[i] * mask_gate[i];
				tg = B0;
			}
			/* dgw += dz^T Tg; dTg = dz gw */
			t4r_gemm(1, 0, L, L, R, 1, B1, L, tg, L, 1, g->gw, L);
			t4r_gemm(0, 0, R, L, L, 1, B1, L, p->gw, L, 0, B0, L);
			{
				const t4r_real *restrict b0 = B0;

				if (mask_gate)
					for (size_t i = 0; i < RL; i++)
						dT[i] += b0[i] * mask_gate[i];
				else
					for (size_t i = 0; i < RL; i++)
						dT[i] += b0[i];
			}
		}
		else
			g->gb[0] += (t4r_real) dgb;
	}

	/* ---- phase 3: MLP ---- */
	/* h = a1 * sg in B1; db2 += colsum ds */
	memset(acc, 0, sizeof(t4r_real) * L);
	for (int r = 0; r < R; r++)
	{
		size_t		o = (size_t) r * L;
		const t4r_real *restrict a1 = c.A1 + o;
		const t4r_real *restrict sg = c.SG + o;
		const t4r_real *restrict ds = DS + o;
		t4r_real   *restrict hh = B1 + o;

		for (int l = 0; l < L; l++)
		{
			hh[l] = a1[l] * sg[l];
			acc[l] += ds[l];
		}
	}
	for (int l = 0; l < L; l++)
		g->b2[l] += acc[l];
	/* dW2 += ds^T h; dh = ds W2 (in B0) */
	t4r_gemm(1, 0, L, L, R, 1, DS, L, B1, L, 1, g->w2, L);
	t4r_gemm(0, 0, R, L, L, 1, DS, L, p->w2, L, 0, B0, L);
	/* da1 = dh * silu'(a1) = dh sg (1 + a1 (1 - sg)); db1 += colsum */
	memset(acc, 0, sizeof(t4r_real) * L);
	for (int r = 0; r < R; r++)
	{
		size_t		o = (size_t) r * L;
		const t4r_real *restrict a1 = c.A1 + o;
		const t4r_real *restrict sg = c.SG + o;
		t4r_real   *restrict dh = B0 + o;

		for (int l = 0; l < L; l++)
		{
			t4r_real	v = dh[l] * sg[l] * (1 + a1[l] * (1 - sg[l]));

			dh[l] = v;
			acc[l] += v;
		}
	}
	for (int l = 0; l < L; l++)
		g->b1[l] += acc[l];
	/* dW1 += da1^T u; du = da1 W1 (in B1); dT += du * mask_mlp */
	t4r_gemm(1, 0, L, L, R, 1, B0, L, c.U, L, 1, g->w1, L);
	t4r_gemm(0, 0, R, L, L, 1, B0, L, p->w1, L, 0, B1, L);
	{
		const t4r_real *restrict b1 = B1;

		if (mask_mlp)
			for (size_t i = 0; i < RL; i++)
				dT[i] += b1[i] * mask_mlp[i];
		else
			for (size_t i = 0; i < RL; i++)
				dT[i] += b1[i];
	}
}
