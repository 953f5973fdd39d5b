/*
 * timepath.c - the per-layer time path of TiM4Rec (MODEL.md steps 3.3 and
 * 3.7): time MLP scale, two per-head causal convs with hardswish, the gate
 * residual and the time layer norm.  Forward and backward over R rows of
 * length L; the [L, L] linears of all rows go through one GEMM each.
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
 * Scratch (backward): three R*L blocks and 6 L row buffers.
 */
#include <string.h>
#include "timepath.h"
#include "ops.h"

#define RL ((size_t) R * (size_t) L)
#define TP_MAXHK 256

size_t
t4r_time_cache_size(int R, int L, int G)
{
	return 7 * RL + (size_t) R * G + 2 * (size_t) R;
}

size_t
t4r_time_scratch_size(int R, int L, int G)
{
	(void) G;
	return 3 * RL + 6 * (size_t) L;
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

/* out[l] = b + sum_k w[k] v[l-(K-1)+k] (v[<0] = 0) */
static inline void
conv_row(const t4r_real *restrict v, int L, const t4r_real *restrict w, t4r_real b,
		 int K, t4r_real *restrict out)
{
	int			l;

	/* left edge */
	for (l = 0; l < K - 1 && l < L; l++)
	{
		t4r_real	acc = b;

		for (int k = K - 1 - l; k < K; k++)
			acc += w[k] * v[l - (K - 1) + k];
		out[l] = acc;
	}
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
		for (; l < L; l++)
		{
			t4r_real	acc = b;
			const t4r_real *vv = v + l - (K - 1);

			for (int k = 0; k < K; k++)
				acc += w[k] * vv[k];
			out[l] = acc;
		}
	}
}

/*
 * Backward of conv_row: dv OVERWRITTEN, dw[K] and *db ACCUMULATED (double).
 * dv[j] = sum_k w[k] dout[j+(K-1)-k] (dout beyond L-1 is 0),
 * dw[k] = sum_l dout[l] v[l-(K-1)+k].
 */
static inline void
conv_row_bwd(const t4r_real *restrict v, int L, const t4r_real *restrict w, int K,
			 const t4r_real *restrict dout, t4r_real *restrict dv,
			 double *restrict dw, double *restrict db,
			 t4r_real *restrict dwr, t4r_real *restrict dbr)
{
	double		sb = 0;

	for (int l = 0; l < L; l++)
		sb += dout[l];
	if (db)
		*db += sb;
	else
		*dbr += (t4r_real) sb;
	for (int k = 0; k < K; k++)
	{
		double		acc = 0;
		int			off = k - (K - 1);	/* v index = l + off */

		for (int l = -off; l < L; l++)
			acc += (double) dout[l] * v[l + off];
		if (dw)
			dw[k] += acc;
		else
			dwr[k] += (t4r_real) acc;
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

void
t4r_time_fwd(const t4r_time_params *p, int R, int H, int L, int K, int G,
			 double eps, const t4r_real *T,
			 const t4r_real *mask_mlp, const t4r_real *mask_gate,
			 t4r_real *tdt, t4r_real *Tnew, t4r_real *cache)
{
	cache_view c;

	if (R <= 0 || L <= 0)
		return;
	cache_split(cache, R, L, G, &c);

	/* u = T * mask_mlp; a1 = b1 broadcast */
	for (int r = 0; r < R; r++)
	{
		const t4r_real *t = T + (size_t) r * L;
		t4r_real   *u = c.U + (size_t) r * L;
		t4r_real   *a = c.A1 + (size_t) r * L;

		if (mask_mlp)
		{
			const t4r_real *m = mask_mlp + (size_t) r * L;

			for (int l = 0; l < L; l++)
				u[l] = t[l] * m[l];
		}
		else
			memcpy(u, t, sizeof(t4r_real) * L);
		memcpy(a, p->b1, sizeof(t4r_real) * L);
	}
	/* a1 += U W1^T */
	t4r_gemm(0, 1, R, L, L, 1, c.U, L, p->w1, L, 1, c.A1, L);

	/* sg = sigmoid(a1), h = a1 * sg (h lives in P1 for now); s = b2 */
	for (size_t i = 0; i < RL; i++)
	{
		t4r_real	a = c.A1[i];
		t4r_real	sg = t4r_sigmoid(a);

		c.SG[i] = sg;
		c.P1[i] = a * sg;
	}
	for (int r = 0; r < R; r++)
		memcpy(c.S + (size_t) r * L, p->b2, sizeof(t4r_real) * L);
	/* s += h W2^T */
	t4r_gemm(0, 1, R, L, L, 1, c.P1, L, p->w2, L, 1, c.S, L);

	/* G == L: gate pre-activation = Tg gw^T + gb, Tg staged in X */
	if (Tnew && G == L && G > 1)
	{
		const t4r_real *tg = T;

		if (mask_gate)
		{
			for (size_t i = 0; i < RL; i++)
				c.X[i] = T[i] * mask_gate[i];
			tg = c.X;
		}
		for (int r = 0; r < R; r++)
			memcpy(c.GT + (size_t) r * L, p->gb, sizeof(t4r_real) * L);
		t4r_gemm(0, 1, R, L, L, 1, tg, L, p->gw, L, 1, c.GT, L);
	}

	/* per row: q, conv1, hardswish, conv2, hardswish, gate, mix, LN */
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

		/* q = T * s staged in td; p1 = conv1(q) */
		for (int l = 0; l < L; l++)
			td[l] = t[l] * s[l];
		conv_row(td, L, p->c1w + (size_t) h * K, p->c1b[h], K, p1);
		/* r1 = hardswish(p1) staged in td; p2 = conv2(r1) */
		for (int l = 0; l < L; l++)
			td[l] = t4r_hardswish(p1[l]);
		conv_row(td, L, p->c2w + (size_t) h * K, p->c2b[h], K, p2);
		for (int l = 0; l < L; l++)
			td[l] = t4r_hardswish(p2[l]);

		if (!Tnew)
			continue;
		if (G == L && G > 1)
		{
			t4r_real   *g = c.GT + o;

			for (int l = 0; l < L; l++)
			{
				t4r_real	gv = t4r_sigmoid(g[l]);

				g[l] = gv;
				x[l] = gv * t[l] + (1 - gv) * td[l];
			}
		}
		else
		{
			double		z = p->gb[0];
			t4r_real	gv;

			if (mask_gate)
			{
				const t4r_real *m = mask_gate + o;

				for (int l = 0; l < L; l++)
					z += (double) p->gw[l] * (t[l] * m[l]);
			}
			else
				for (int l = 0; l < L; l++)
					z += (double) p->gw[l] * t[l];
			gv = t4r_sigmoid((t4r_real) z);
			c.GT[r] = gv;
			for (int l = 0; l < L; l++)
				x[l] = gv * t[l] + (1 - gv) * td[l];
		}
		t4r_layernorm_fwd(x, L, p->lnw, p->lnb, eps, Tnew + o, &c.MU[r], &c.RS[r]);
	}
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
	cache_view c;
	int			pgl = (G == L && G > 1);
	t4r_real   *B0 = scratch,
			   *B1 = scratch + RL,
			   *DS = scratch + 2 * RL,
			   *row = scratch + 3 * RL;
	t4r_real   *dtt = row,
			   *r1 = row + L,
			   *dr = row + 2 * L,
			   *q = row + 3 * L,
			   *dq = row + 4 * L,
			   *acc = row + 5 * L;
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

	/* ---- phase 1: per row, LN + gate + convs ---- */
	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		size_t		o = (size_t) r * L;
		const t4r_real *t = T + o;
		const t4r_real *s = c.S + o;
		const t4r_real *p1 = c.P1 + o;
		const t4r_real *p2 = c.P2 + o;
		const t4r_real *dd = dtdt ? dtdt + o : NULL;
		t4r_real   *dt = dT + o;
		t4r_real   *ds = DS + o;
		double	   *w1acc = dacc ? dcw1 + (size_t) h * K : NULL;
		double	   *w2acc = dacc ? dcw2 + (size_t) h * K : NULL;
		double	   *b1acc = dacc ? dcb1 + h : NULL;
		double	   *b2acc = dacc ? dcb2 + h : NULL;

		if (dTnew)
		{
			t4r_real   *dm = B0 + o;

			t4r_layernorm_bwd(c.X + o, dTnew + o, L, p->lnw, c.MU[r], c.RS[r], dm,
							  g->lnw, g->lnb);
			if (pgl)
			{
				const t4r_real *gt = c.GT + o;
				t4r_real   *dz = B1 + o;

				for (int l = 0; l < L; l++)
				{
					t4r_real	gv = gt[l];
					t4r_real	tdv = t4r_hardswish(p2[l]);

					dt[l] = gv * dm[l];
					dtt[l] = (dd ? dd[l] : 0) + (1 - gv) * dm[l];
					dz[l] = dm[l] * (t[l] - tdv) * gv * (1 - gv);
				}
			}
			else
			{
				t4r_real	gv = c.GT[r];
				double		dgs = 0;
				t4r_real	dz;

				for (int l = 0; l < L; l++)
				{
					t4r_real	tdv = t4r_hardswish(p2[l]);

					dt[l] = gv * dm[l];
					dtt[l] = (dd ? dd[l] : 0) + (1 - gv) * dm[l];
					dgs += (double) dm[l] * (t[l] - tdv);
				}
				dz = (t4r_real) (dgs * gv * (1 - gv));
				dgb += dz;
				if (mask_gate)
				{
					const t4r_real *m = mask_gate + o;

					for (int l = 0; l < L; l++)
					{
						g->gw[l] += dz * t[l] * m[l];
						dt[l] += dz * p->gw[l] * m[l];
					}
				}
				else
				{
					for (int l = 0; l < L; l++)
					{
						g->gw[l] += dz * t[l];
						dt[l] += dz * p->gw[l];
					}
				}
			}
		}
		else
		{
			memset(dt, 0, sizeof(t4r_real) * L);
			if (dd)
				memcpy(dtt, dd, sizeof(t4r_real) * L);
			else
				memset(dtt, 0, sizeof(t4r_real) * L);
		}

		/* dp2 = dtt * hardswish'(p2) (in dtt) */
		for (int l = 0; l < L; l++)
		{
			dtt[l] *= t4r_dhardswish(p2[l]);
			r1[l] = t4r_hardswish(p1[l]);
		}
		conv_row_bwd(r1, L, p->c2w + (size_t) h * K, K, dtt, dr, w2acc, b2acc,
					 g->c2w + (size_t) h * K, g->c2b + h);
		/* dp1 = dr1 * hardswish'(p1); q = T * s */
		for (int l = 0; l < L; l++)
		{
			dr[l] *= t4r_dhardswish(p1[l]);
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

	/* ---- phase 2: gate linear (G == L) ---- */
	if (dTnew)
	{
		if (pgl)
		{
			const t4r_real *tg = T;

			/* gb += colsum dz */
			memset(acc, 0, sizeof(t4r_real) * L);
			for (int r = 0; r < R; r++)
			{
				const t4r_real *dz = B1 + (size_t) r * L;

				for (int l = 0; l < L; l++)
					acc[l] += dz[l];
			}
			for (int l = 0; l < L; l++)
				g->gb[l] += acc[l];
			if (mask_gate)
			{
				for (size_t i = 0; i < RL; i++)
					B0[i] = T[i] * mask_gate[i];
				tg = B0;
			}
			/* dgw += dz^T Tg */
			t4r_gemm(1, 0, L, L, R, 1, B1, L, tg, L, 1, g->gw, L);
			/* dTg = dz gw */
			t4r_gemm(0, 0, R, L, L, 1, B1, L, p->gw, L, 0, B0, L);
			if (mask_gate)
				for (size_t i = 0; i < RL; i++)
					dT[i] += B0[i] * mask_gate[i];
			else
				for (size_t i = 0; i < RL; i++)
					dT[i] += B0[i];
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

		for (int l = 0; l < L; l++)
		{
			B1[o + l] = c.A1[o + l] * c.SG[o + l];
			acc[l] += DS[o + l];
		}
	}
	for (int l = 0; l < L; l++)
		g->b2[l] += acc[l];
	/* dW2 += ds^T h */
	t4r_gemm(1, 0, L, L, R, 1, DS, L, B1, L, 1, g->w2, L);
	/* dh = ds W2 (in B0) */
	t4r_gemm(0, 0, R, L, L, 1, DS, L, p->w2, L, 0, B0, L);
	/* da1 = dh * silu'(a1); db1 += colsum */
	memset(acc, 0, sizeof(t4r_real) * L);
	for (int r = 0; r < R; r++)
	{
		size_t		o = (size_t) r * L;

		for (int l = 0; l < L; l++)
		{
			t4r_real	a = c.A1[o + l],
						sg = c.SG[o + l];
			t4r_real	v = B0[o + l] * sg * (1 + a * (1 - sg));

			B0[o + l] = v;
			acc[l] += v;
		}
	}
	for (int l = 0; l < L; l++)
		g->b1[l] += acc[l];
	/* dW1 += da1^T u */
	t4r_gemm(1, 0, L, L, R, 1, B0, L, c.U, L, 1, g->w1, L);
	/* du = da1 W1 (in B1); dT += du * mask_mlp */
	t4r_gemm(0, 0, R, L, L, 1, B0, L, p->w1, L, 0, B1, L);
	if (mask_mlp)
		for (size_t i = 0; i < RL; i++)
			dT[i] += B1[i] * mask_mlp[i];
	else
		for (size_t i = 0; i < RL; i++)
			dT[i] += B1[i];
}
