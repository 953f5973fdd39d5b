/*
 * timepath.c - the per-layer time path of TiM4Rec (docs/MODEL.md steps 3.3 and
 * 3.7): time MLP scale, two per-head causal convs with hardswish, the gate
 * residual and the time layer norm.  Forward and backward over R rows of
 * length L; the [L, L] linears of all rows go through one GEMM each, the
 * elementwise chains are fused into a few passes per row written so that the
 * compiler vectorises them (reductions use 8 explicit lanes).
 *
 * Single-threaded by design: the trainer runs one micro-batch per thread.
 *
 * The kernels are compiled twice from this one file (it includes itself
 * with TP_BODY_PASS defined): a baseline build and, on x86-64 with GCC or
 * clang, an AVX2+FMA build chosen at run time when the CPU has it.  The
 * variable t4r_time_isa (not in the header; tests declare it) forces one:
 * 0 = automatic, 1 = baseline, 2 = AVX2 if the CPU has it.
 *
 * Cache layout (t4r_real elements, R*L blocks unless noted):
 *   U   u = T * mask_mlp (unused when mask_mlp == NULL: u = T)
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
#ifndef TP_BODY_PASS

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
#include "rgemm.h"
#include "ops.h"

#define RL ((size_t) R * (size_t) L)
#define TP_MAXHK 256			/* per-head conv grads kept in double up to H*K */
#define TP_ROWBUF 6

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(T4R_NO_AVX2)
#define TP_DISPATCH 1
#endif

int			t4r_time_isa = 0;

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

/* baseline kernels */
#define TP_BODY_PASS 1
#define TP_V(name) name##_base
#define TP_TGT
#include "timepath.c"
#undef TP_V
#undef TP_TGT

#ifdef TP_DISPATCH
/* AVX2 + FMA kernels */
#define TP_V(name) name##_avx2
#define TP_TGT __attribute__((target("avx2,fma")))
#include "timepath.c"
#undef TP_V
#undef TP_TGT

static int
tp_use_avx2(void)
{
	if (t4r_time_isa == 1)
		return 0;
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

void
t4r_time_fwd(const t4r_time_params *p, int R, int H, int L, int K, int G,
			 double eps, const t4r_real *T,
			 const t4r_real *mask_mlp, const t4r_real *mask_gate,
			 t4r_real *tdt, t4r_real *Tnew, t4r_real *cache)
{
	if (R <= 0 || L <= 0)
		return;
#ifdef TP_DISPATCH
	if (tp_use_avx2())
	{
		time_fwd_avx2(p, R, H, L, K, G, eps, T, mask_mlp, mask_gate, tdt, Tnew, cache);
		return;
	}
#endif
	time_fwd_base(p, R, H, L, K, G, eps, T, mask_mlp, mask_gate, tdt, Tnew, cache);
}

void
t4r_time_bwd(const t4r_time_params *p, const t4r_time_params *g,
			 int R, int H, int L, int K, int G, double eps,
			 const t4r_real *T,
			 const t4r_real *mask_mlp, const t4r_real *mask_gate,
			 const t4r_real *cache,
			 const t4r_real *dtdt, const t4r_real *dTnew,
			 t4r_real *dT, t4r_real *scratch)
{
	if (R <= 0 || L <= 0)
		return;
#ifdef TP_DISPATCH
	if (tp_use_avx2())
	{
		time_bwd_avx2(p, g, R, H, L, K, G, T, mask_mlp, mask_gate, cache, dtdt, dTnew,
					  dT, scratch);
		return;
	}
#endif
	time_bwd_base(p, g, R, H, L, K, G, T, mask_mlp, mask_gate, cache, dtdt, dTnew,
				  dT, scratch);
}

#else							/* TP_BODY_PASS: the kernels, once per target */

/* ---------------- elementwise helpers ---------------- */

#ifdef T4R_DOUBLE
TP_TGT static inline t4r_real
TP_V(sigm) (t4r_real x)
{
	return t4r_sigmoid(x);
}
#else
/*
 * sigmoid in float without branches (vectorisable; mathfn.h): e =
 * exp(-|a|) with |a| clamped to 87.3 (0x42AE999A) so that e stays normal,
 * then 1/(1+e) or e/(1+e) chosen by the sign bit; NaN passes through.
 * Relative error under 2e-7 wherever sigmoid(a) is a normal float (checked
 * against double in test_timepath).
 */
TP_TGT static inline float
TP_V(sigm) (float a)
{
	float		s = t4r_fsigmoid_e(a, t4r_fexpneg(a, 0x42AE999A));
	int32_t		ab,
				rb;

	memcpy(&ab, &a, 4);
	memcpy(&rb, &s, 4);
	rb = (ab & 0x7fffffff) > 0x7f800000 ? ab : rb;	/* NaN stays NaN */
	memcpy(&s, &rb, 4);
	return s;
}
#endif

#define LANES_SUM(a) \
	((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))

/* sum x in 8 double lanes */
TP_TGT static double
TP_V(sumd) (const t4r_real *restrict x, int n)
{
	double		a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			a[j] += x[i + j];
	for (; i < n; i++)
		a[i & 7] += x[i];
	return LANES_SUM(a);
}

/* sum (x - m)^2 in 8 double lanes */
TP_TGT static double
TP_V(sqdevd) (const t4r_real *restrict x, int n, double m)
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
	return LANES_SUM(a);
}

/* sum x y in 8 double lanes */
TP_TGT static double
TP_V(dotd) (const t4r_real *restrict x, const t4r_real *restrict y, int n)
{
	double		a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			a[j] += (double) x[i + j] * y[i + j];
	for (; i < n; i++)
		a[i & 7] += (double) x[i] * y[i];
	return LANES_SUM(a);
}

/* row-level sums (at most L terms) in 8 t4r_real lanes */
TP_TGT static t4r_real
TP_V(sumr) (const t4r_real *restrict x, int n)
{
	t4r_real	a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			a[j] += x[i + j];
	for (; i < n; i++)
		a[i & 7] += x[i];
	return LANES_SUM(a);
}

TP_TGT static t4r_real
TP_V(dotr) (const t4r_real *restrict x, const t4r_real *restrict y, int n)
{
	t4r_real	a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			a[j] += x[i + j] * y[i + j];
	for (; i < n; i++)
		a[i & 7] += x[i] * y[i];
	return LANES_SUM(a);
}

/* ---------------- whole-array passes ---------------- */

/* out = a * b */
TP_TGT static void
TP_V(mul) (const t4r_real *restrict a, const t4r_real *restrict b, size_t n,
		   t4r_real *restrict out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] * b[i];
}

/* out += a (* m if m) */
TP_TGT static void
TP_V(addm) (const t4r_real *restrict a, const t4r_real *restrict m, size_t n,
			t4r_real *restrict out)
{
	if (m)
		for (size_t i = 0; i < n; i++)
			out[i] += a[i] * m[i];
	else
		for (size_t i = 0; i < n; i++)
			out[i] += a[i];
}

/* every row of out [R, L] = v [L] */
TP_TGT static void
TP_V(bcast) (const t4r_real *restrict v, int R, int L, t4r_real *restrict out)
{
	for (int r = 0; r < R; r++)
		memcpy(out + (size_t) r * L, v, sizeof(t4r_real) * L);
}

/* sg = sigmoid(a), h = a * sg */
TP_TGT static void
TP_V(silu_fwd) (const t4r_real *restrict a, size_t n, t4r_real *restrict sg,
				t4r_real *restrict h)
{
	for (size_t i = 0; i < n; i++)
	{
		t4r_real	av = a[i];
		t4r_real	sv = TP_V(sigm) (av);

		sg[i] = sv;
		h[i] = av * sv;
	}
}

TP_TGT static void
TP_V(sigm_inplace) (t4r_real *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = TP_V(sigm) (x[i]);
}

/* g[l] += sum_r X[r, l] */
TP_TGT static void
TP_V(colsum_add) (const t4r_real *restrict X, int R, int L, t4r_real *restrict acc,
				  t4r_real *restrict g)
{
	memset(acc, 0, sizeof(t4r_real) * L);
	for (int r = 0; r < R; r++)
	{
		const t4r_real *restrict x = X + (size_t) r * L;

		for (int l = 0; l < L; l++)
			acc[l] += x[l];
	}
	for (int l = 0; l < L; l++)
		g[l] += acc[l];
}

/* h = a1 * sg (silu recomputed from the cache) */
/* da1 = dh * silu'(a1) = dh sg (1 + a1 (1 - sg)), in place */
TP_TGT static void
TP_V(dsilu) (const t4r_real *restrict a1, const t4r_real *restrict sg, size_t n,
			 t4r_real *restrict dh)
{
	for (size_t i = 0; i < n; i++)
		dh[i] = dh[i] * sg[i] * (1 + a1[i] * (1 - sg[i]));
}

/* ---------------- causal conv of one row, any K ---------------- */

/* out[l] = b + sum_k w[k] v[l-(K-1)+k] (v[<0] = 0) */
TP_TGT static void
TP_V(conv_row) (const t4r_real *restrict v, int L, const t4r_real *restrict w,
				t4r_real b, int K, t4r_real *restrict out)
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
 * (dw != NULL) or else straight into t4r_real (dwr, dbr).
 *   dv[j]  = sum_k w[k] dout[j+(K-1)-k]  (dout beyond L-1 is 0)
 *   dw[k]  = sum_j dout[j+(K-1)-k] v[j]
 */
TP_TGT static void
TP_V(conv_row_bwd) (const t4r_real *restrict v, int L, const t4r_real *restrict w, int K,
					const t4r_real *restrict dout, t4r_real *restrict dv,
					double *restrict dw, double *restrict db,
					t4r_real *restrict dwr, t4r_real *restrict dbr)
{
	t4r_real	sb = TP_V(sumr) (dout, L);

	if (dw)
		*db += sb;
	else
		*dbr += sb;
	for (int k = 0; k < K; k++)
	{
		int			sh = K - 1 - k;
		t4r_real	a = sh < L ? TP_V(dotr) (dout + sh, v, L - sh) : 0;

		if (dw)
			dw[k] += a;
		else
			dwr[k] += a;
	}
	for (int j = 0; j < L; j++)
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

/* ---------------- fused row kernels for K = 4 ---------------- */

/* p1 = conv1(T * s) and r1 = hardswish(p1); p2 = conv2(r1), tdt = hardswish(p2) */
TP_TGT static void
TP_V(fwd_convs4) (const t4r_real *restrict t, const t4r_real *restrict s, int L,
				  const t4r_real *restrict w1, t4r_real b1,
				  const t4r_real *restrict w2, t4r_real b2,
				  t4r_real *restrict p1, t4r_real *restrict r1,
				  t4r_real *restrict p2, t4r_real *restrict td)
{
	t4r_real	a0 = w1[0],
				a1 = w1[1],
				a2 = w1[2],
				a3 = w1[3],
				c0 = w2[0],
				c1 = w2[1],
				c2 = w2[2],
				c3 = w2[3];
	t4r_real	q0 = 0,
				q1 = 0,
				q2 = 0;
	int			l;

	/* left edge (positions 0..2), zero padding */
	for (l = 0; l < 3 && l < L; l++)
	{
		t4r_real	q3 = t[l] * s[l];

		p1[l] = b1 + a0 * q0 + a1 * q1 + a2 * q2 + a3 * q3;
		r1[l] = t4r_hardswish_tp(p1[l]);
		q0 = q1;
		q1 = q2;
		q2 = q3;
	}
	for (; l < L; l++)
		p1[l] = b1 + a0 * (t[l - 3] * s[l - 3]) + a1 * (t[l - 2] * s[l - 2]) +
			a2 * (t[l - 1] * s[l - 1]) + a3 * (t[l] * s[l]);
	for (l = 3; l < L; l++)
		r1[l] = t4r_hardswish_tp(p1[l]);
	/* conv2 */
	for (l = 0; l < 3 && l < L; l++)
	{
		t4r_real	acc = b2 + c3 * r1[l];

		if (l >= 1)
			acc += c2 * r1[l - 1];
		if (l >= 2)
			acc += c1 * r1[l - 2];
		p2[l] = acc;
		td[l] = t4r_hardswish_tp(acc);
	}
	for (; l < L; l++)
	{
		t4r_real	v = b2 + c0 * r1[l - 3] + c1 * r1[l - 2] + c2 * r1[l - 1] + c3 * r1[l];

		p2[l] = v;
		td[l] = t4r_hardswish_tp(v);
	}
}

/*
 * conv backward for K = 4 fused with the next elementwise step:
 *   dv[j] = sum_k w[k] dout[j+3-k]; dw[k] += sum_j dout[j+3-k] v[j];
 *   db += sum dout.
 * v is given as va * vb (vb may be NULL: v = va).
 */
TP_TGT static void
TP_V(conv4_bwd) (const t4r_real *restrict va, const t4r_real *restrict vb, int L,
				 const t4r_real *restrict w, const t4r_real *restrict dout,
				 t4r_real *restrict dv, double *restrict dw, double *restrict db)
{
	t4r_real	w0 = w[0],
				w1 = w[1],
				w2 = w[2],
				w3 = w[3];
	t4r_real	e0[8] = {0},
				e1[8] = {0},
				e2[8] = {0},
				e3[8] = {0},
				eb[8] = {0};
	int			j = 0;
	int			n = L - 3;		/* positions with all four taps inside */

	if (vb)
	{
		for (; j + 8 <= n; j += 8)
			for (int i = 0; i < 8; i++)
			{
				int			jj = j + i;
				t4r_real	x = va[jj] * vb[jj];
				t4r_real	d0 = dout[jj + 3],
							d1 = dout[jj + 2],
							d2 = dout[jj + 1],
							d3 = dout[jj];

				dv[jj] = w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3;
				e0[i] += d0 * x;
				e1[i] += d1 * x;
				e2[i] += d2 * x;
				e3[i] += d3 * x;
				eb[i] += d3;
			}
	}
	else
	{
		for (; j + 8 <= n; j += 8)
			for (int i = 0; i < 8; i++)
			{
				int			jj = j + i;
				t4r_real	x = va[jj];
				t4r_real	d0 = dout[jj + 3],
							d1 = dout[jj + 2],
							d2 = dout[jj + 1],
							d3 = dout[jj];

				dv[jj] = w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3;
				e0[i] += d0 * x;
				e1[i] += d1 * x;
				e2[i] += d2 * x;
				e3[i] += d3 * x;
				eb[i] += d3;
			}
	}
	for (; j < L; j++)
	{
		t4r_real	x = vb ? va[j] * vb[j] : va[j];
		t4r_real	d0 = j + 3 < L ? dout[j + 3] : 0,
					d1 = j + 2 < L ? dout[j + 2] : 0,
					d2 = j + 1 < L ? dout[j + 1] : 0,
					d3 = dout[j];

		dv[j] = w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3;
		e0[0] += d0 * x;
		e1[0] += d1 * x;
		e2[0] += d2 * x;
		e3[0] += d3 * x;
		eb[0] += d3;
	}
	dw[0] += LANES_SUM(e0);
	dw[1] += LANES_SUM(e1);
	dw[2] += LANES_SUM(e2);
	dw[3] += LANES_SUM(e3);
	*db += LANES_SUM(eb);
}

/* ---------------- row kernels of the gate / layer norm ---------------- */

/* x = g T + (1 - g) tdt (g a vector or, when gv is NULL, the scalar g0) */
TP_TGT static void
TP_V(mix_fwd) (const t4r_real *restrict gv, t4r_real g0, const t4r_real *restrict t,
			   const t4r_real *restrict td, int L, t4r_real *restrict x)
{
	if (gv)
		for (int l = 0; l < L; l++)
			x[l] = gv[l] * t[l] + (1 - gv[l]) * td[l];
	else
		for (int l = 0; l < L; l++)
			x[l] = g0 * t[l] + (1 - g0) * td[l];
}

/* layer norm of one row over L, two-pass; returns mean and rstd */
TP_TGT static void
TP_V(ln_fwd_row) (const t4r_real *restrict x, int L, const t4r_real *restrict w,
				  const t4r_real *restrict b, double eps, t4r_real *restrict y,
				  t4r_real *mu, t4r_real *rs)
{
	double		mean = TP_V(sumd) (x, L) / L;
	double		var = TP_V(sqdevd) (x, L, mean) / L;
	t4r_real	mf = (t4r_real) mean,
				rf = (t4r_real) (1.0 / sqrt(var + eps));

	for (int l = 0; l < L; l++)
		y[l] = (x[l] - mf) * rf * w[l] + b[l];
	*mu = mf;
	*rs = rf;
}

/* layer norm backward of one row: dm = (gy - mean(gy) - xh mean(gy xh)) rstd,
 * gy = dy * lnw, xh = (x - mean) rstd; lnw/lnb grads += */
TP_TGT static void
TP_V(ln_bwd_row) (const t4r_real *restrict x, const t4r_real *restrict dy,
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
	sgf = (t4r_real) (TP_V(sumd) (dm, L) / L);
	sgxf = (t4r_real) (TP_V(dotd) (dm, xh, L) / L);
	for (int l = 0; l < L; l++)
		dm[l] = (dm[l] - sgf - xh[l] * sgxf) * rf;
}

/*
 * Gate mix backward, fused with the hardswish of conv2 and the r1 recompute:
 *   dT = g dm (overwritten), dp2 = (dtdt + (1 - g) dm) hardswish'(p2),
 *   r1 = hardswish(p1), and the gate gradient: per position into dz (vector
 *   gate) or as diff = T - tdt (scalar gate).  dm NULL: no Tnew branch.
 */
TP_TGT static void
TP_V(mix_bwd) (const t4r_real *restrict gv, t4r_real g0, const t4r_real *restrict p1,
			   const t4r_real *restrict p2, const t4r_real *restrict t,
			   const t4r_real *restrict dm, const t4r_real *restrict dd, int L,
			   t4r_real *restrict dt, t4r_real *restrict dp2, t4r_real *restrict r1,
			   t4r_real *restrict dz, t4r_real *restrict diff)
{
	if (!dm)
	{
		for (int l = 0; l < L; l++)
		{
			dt[l] = 0;
			dp2[l] = (dd ? dd[l] : 0) * t4r_dhardswish_tp(p2[l]);
			r1[l] = t4r_hardswish_tp(p1[l]);
		}
		return;
	}
	if (gv)
		for (int l = 0; l < L; l++)
		{
			t4r_real	g = gv[l];
			t4r_real	pv = p2[l];
			t4r_real	tdv = t4r_hardswish_tp(pv);

			dt[l] = g * dm[l];
			dp2[l] = ((dd ? dd[l] : 0) + (1 - g) * dm[l]) * t4r_dhardswish_tp(pv);
			dz[l] = dm[l] * (t[l] - tdv) * g * (1 - g);
			r1[l] = t4r_hardswish_tp(p1[l]);
		}
	else
		for (int l = 0; l < L; l++)
		{
			t4r_real	pv = p2[l];

			diff[l] = t[l] - t4r_hardswish_tp(pv);
			dt[l] = g0 * dm[l];
			dp2[l] = ((dd ? dd[l] : 0) + (1 - g0) * dm[l]) * t4r_dhardswish_tp(pv);
			r1[l] = t4r_hardswish_tp(p1[l]);
		}
}

/* scalar gate input: gw grad += dz Tg, dT += dz gw * mask */
TP_TGT static void
TP_V(gate_scalar_bwd) (t4r_real dz, const t4r_real *restrict t,
					   const t4r_real *restrict m, const t4r_real *restrict gw, int L,
					   t4r_real *restrict ggw, t4r_real *restrict dt)
{
	if (m)
		for (int l = 0; l < L; l++)
		{
			ggw[l] += dz * (t[l] * m[l]);
			dt[l] += dz * gw[l] * m[l];
		}
	else
		for (int l = 0; l < L; l++)
		{
			ggw[l] += dz * t[l];
			dt[l] += dz * gw[l];
		}
}

/* dp1 = dr1 * hardswish'(p1), in place */
TP_TGT static void
TP_V(dhsw_mul) (const t4r_real *restrict p, int L, t4r_real *restrict d)
{
	for (int l = 0; l < L; l++)
		d[l] *= t4r_dhardswish_tp(p[l]);
}

/* q = T * s: dT += dq * s, ds = dq * T */
TP_TGT static void
TP_V(q_bwd) (const t4r_real *restrict dq, const t4r_real *restrict t,
			 const t4r_real *restrict s, int L, t4r_real *restrict dt,
			 t4r_real *restrict ds)
{
	for (int l = 0; l < L; l++)
	{
		dt[l] += dq[l] * s[l];
		ds[l] = dq[l] * t[l];
	}
}

/* ---------------- forward ---------------- */

TP_TGT static void
TP_V(time_fwd) (const t4r_time_params *p, int R, int H, int L, int K, int G,
				double eps, const t4r_real *T,
				const t4r_real *mask_mlp, const t4r_real *mask_gate,
				t4r_real *tdt, t4r_real *Tnew, t4r_real *cache)
{
	cache_view c;
	int			pgl = (G == L && G > 1);

	cache_split(cache, R, L, G, &c);

	/* u = T * mask_mlp (T itself without a mask); a1 = b1 + U W1^T */
	if (mask_mlp)
		TP_V(mul) (T, mask_mlp, RL, c.U);
	if (p->w1p)
		t4r_rgemm(R, L, L, mask_mlp ? c.U : T, L, p->w1p, p->b1, c.A1, L);
	else
	{
		TP_V(bcast) (p->b1, R, L, c.A1);
		t4r_gemm(0, 1, R, L, L, 1, mask_mlp ? c.U : T, L, p->w1, L, 1, c.A1, L);
	}

	/* sg = sigmoid(a1); h = a1 * sg staged in P1; s = b2 + h W2^T */
	TP_V(silu_fwd) (c.A1, RL, c.SG, c.P1);
	if (p->w2p)
		t4r_rgemm(R, L, L, c.P1, L, p->w2p, p->b2, c.S, L);
	else
	{
		TP_V(bcast) (p->b2, R, L, c.S);
		t4r_gemm(0, 1, R, L, L, 1, c.P1, L, p->w2, L, 1, c.S, L);
	}

	/* G == L: gate = sigmoid(Tg gw^T + gb), Tg staged in X */
	if (Tnew && pgl)
	{
		const t4r_real *tg = T;

		if (mask_gate)
		{
			TP_V(mul) (T, mask_gate, RL, c.X);
			tg = c.X;
		}
		if (p->gwp)
			t4r_rgemm(R, L, L, tg, L, p->gwp, p->gb, c.GT, L);
		else
		{
			TP_V(bcast) (p->gb, R, L, c.GT);
			t4r_gemm(0, 1, R, L, L, 1, tg, L, p->gw, L, 1, c.GT, L);
		}
		TP_V(sigm_inplace) (c.GT, RL);
	}

	/* per row: q, conv1, hardswish, conv2, hardswish, gate mix, LN */
	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		size_t		o = (size_t) r * L;
		const t4r_real *t = T + o;
		const t4r_real *s = c.S + o;
		t4r_real   *p1 = c.P1 + o;
		t4r_real   *p2 = c.P2 + o;
		t4r_real   *td = tdt + o;
		t4r_real   *x = c.X + o;

		if (K == 4)
			/* r1 staged in x (written again below) */
			TP_V(fwd_convs4) (t, s, L, p->c1w + (size_t) h * K, p->c1b[h],
							  p->c2w + (size_t) h * K, p->c2b[h], p1, x, p2, td);
		else
		{
			TP_V(mul) (t, s, L, td);
			TP_V(conv_row) (td, L, p->c1w + (size_t) h * K, p->c1b[h], K, p1);
			for (int l = 0; l < L; l++)
				td[l] = t4r_hardswish_tp(p1[l]);
			TP_V(conv_row) (td, L, p->c2w + (size_t) h * K, p->c2b[h], K, p2);
			for (int l = 0; l < L; l++)
				td[l] = t4r_hardswish_tp(p2[l]);
		}

		if (!Tnew)
			continue;
		if (pgl)
			TP_V(mix_fwd) (c.GT + o, 0, t, td, L, x);
		else
		{
			double		z;
			t4r_real	gv;

			if (mask_gate)
			{
				/* Tg staged in x */
				TP_V(mul) (t, mask_gate + o, L, x);
				z = TP_V(dotd) (p->gw, x, L);
			}
			else
				z = TP_V(dotd) (p->gw, t, L);
			gv = TP_V(sigm) ((t4r_real) (z + p->gb[0]));
			c.GT[r] = gv;
			TP_V(mix_fwd) (NULL, gv, t, td, L, x);
		}
		TP_V(ln_fwd_row) (x, L, p->lnw, p->lnb, eps, Tnew + o, &c.MU[r], &c.RS[r]);
	}
}

/* ---------------- backward ---------------- */

TP_TGT static void
TP_V(time_bwd) (const t4r_time_params *p, const t4r_time_params *g,
				int R, int H, int L, int K, int G,
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
	t4r_real   *dp2 = row,
			   *r1 = row + L,
			   *dr = row + 2 * L,
			   *dq = row + 3 * L,
			   *acc = row + 4 * L,
			   *xh = row + 5 * L;
	/* per-head conv gradients accumulated in double */
	double		dcw1[TP_MAXHK],
				dcw2[TP_MAXHK],
				dcb1[TP_MAXHK],
				dcb2[TP_MAXHK];
	int			dacc = ((size_t) H * K <= TP_MAXHK);
	double		dgb = 0;

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
		const t4r_real *t = T + o;
		const t4r_real *s = c.S + o;
		const t4r_real *p1 = c.P1 + o;
		const t4r_real *p2 = c.P2 + o;
		const t4r_real *dd = dtdt ? dtdt + o : NULL;
		const t4r_real *dm = NULL;
		t4r_real   *dt = dT + o;
		/* per-head double sums; NULL for very large H * K (then the conv
		 * grads go straight into g, row by row) */
		double	   *w1acc = dacc ? dcw1 + (size_t) h * K : NULL;
		double	   *w2acc = dacc ? dcw2 + (size_t) h * K : NULL;
		double	   *b1acc = dacc ? dcb1 + h : NULL;
		double	   *b2acc = dacc ? dcb2 + h : NULL;

		if (dTnew)
		{
			TP_V(ln_bwd_row) (c.X + o, dTnew + o, p->lnw, c.MU[r], c.RS[r], L, B0 + o, xh,
							  g->lnw, g->lnb);
			dm = B0 + o;
		}
		TP_V(mix_bwd) (pgl ? c.GT + o : NULL, pgl ? 0 : c.GT[r], p1, p2, t, dm, dd, L,
					   dt, dp2, r1, B1 + o, xh);
		if (dTnew && !pgl)
		{
			t4r_real	gv = c.GT[r];
			t4r_real	dz = (t4r_real) (TP_V(dotd) (dm, xh, L) * gv * (1 - gv));

			dgb += dz;
			TP_V(gate_scalar_bwd) (dz, t, mask_gate ? mask_gate + o : NULL, p->gw, L,
								   g->gw, dt);
		}

		if (K == 4 && dacc)
		{
			/* conv2 backward (v = r1), then d p1 = d r1 hardswish'(p1) */
			TP_V(conv4_bwd) (r1, NULL, L, p->c2w + (size_t) h * K, dp2, dr, w2acc, b2acc);
			TP_V(dhsw_mul) (p1, L, dr);
			/* conv1 backward (v = q = T * s) */
			TP_V(conv4_bwd) (t, s, L, p->c1w + (size_t) h * K, dr, dq, w1acc, b1acc);
		}
		else
		{
			TP_V(conv_row_bwd) (r1, L, p->c2w + (size_t) h * K, K, dp2, dr, w2acc, b2acc,
								g->c2w + (size_t) h * K, g->c2b + h);
			TP_V(dhsw_mul) (p1, L, dr);
			TP_V(mul) (t, s, L, r1);	/* q; r1 is free now */
			TP_V(conv_row_bwd) (r1, L, p->c1w + (size_t) h * K, K, dr, dq, w1acc, b1acc,
								g->c1w + (size_t) h * K, g->c1b + h);
		}
		TP_V(q_bwd) (dq, t, s, L, dt, DS + o);
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

			TP_V(colsum_add) (B1, R, L, acc, g->gb);
			if (mask_gate)
			{
				TP_V(mul) (T, mask_gate, RL, B0);
				tg = B0;
			}
			/* dgw += dz^T Tg; dTg = dz gw; dT += dTg * mask_gate */
			t4r_gemm(1, 0, L, L, R, 1, B1, L, tg, L, 1, g->gw, L);
			t4r_gemm(0, 0, R, L, L, 1, B1, L, p->gw, L, 0, B0, L);
			TP_V(addm) (B0, mask_gate, RL, dT);
		}
		else
			g->gb[0] += (t4r_real) dgb;
	}

	/* ---- phase 3: MLP ---- */
	/* h = a1 * sg in B1; db2 += colsum ds; dW2 += ds^T h; dh = ds W2 (B0) */
	TP_V(mul) (c.A1, c.SG, RL, B1);
	TP_V(colsum_add) (DS, R, L, acc, g->b2);
	t4r_gemm(1, 0, L, L, R, 1, DS, L, B1, L, 1, g->w2, L);
	t4r_gemm(0, 0, R, L, L, 1, DS, L, p->w2, L, 0, B0, L);
	/* da1 = dh * silu'(a1); db1 += colsum; dW1 += da1^T u; du = da1 W1 (B1) */
	TP_V(dsilu) (c.A1, c.SG, RL, B0);
	TP_V(colsum_add) (B0, R, L, acc, g->b1);
	t4r_gemm(1, 0, L, L, R, 1, B0, L, mask_mlp ? c.U : T, L, 1, g->w1, L);
	t4r_gemm(0, 0, R, L, L, 1, B0, L, p->w1, L, 0, B1, L);
	/* dT += du * mask_mlp */
	TP_V(addm) (B1, mask_mlp, RL, dT);
}

#endif							/* TP_BODY_PASS */
