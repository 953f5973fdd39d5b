/*
 * dtest_rtime.c - double build: the robust (causal) time path of
 * timepath_robust.c (time_features = robust).
 *
 *  1. t4r_rtime_fwd against a plain reference written from the equations in
 *     timepath.h (per position, explicit convolution sums), with and without
 *     the time dropout masks and Tnew, rows of different lengths;
 *  2. causality: changing T at position p changes no output before p, and
 *     padded slots (l >= n) are exactly 0;
 *  3. t4r_rtime_bwd against central finite differences of a random linear
 *     functional of (tdt, Tnew), for T and every parameter;
 *  4. t4r_rtime_features: the formula, zeros in padded slots, and invariance
 *     to the origin and the unit of the timestamps (scale and shift them and
 *     the scale: the same features).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x853C49E6748FEA9BULL
#include "tap.h"
#include "timepath.h"


#define S 3
#define H 2
#define R (S * H)
#define L 9
#define K 3
#define J 4

static double
hsw(double x)
{
	return x <= -3 ? 0 : x >= 3 ? x : x * (x + 3) / 6;
}

static double
sig(double x)
{
	return 1 / (1 + exp(-x));
}

typedef struct
{
	double		w1[H * J],
				b1[H * J],
				w2[H * J],
				b2[H],
				c1w[H * K],
				c1b[H],
				c2w[H * K],
				c2b[H],
				gw[H],
				gb[H],
				aw[H],
				ab[H];
} pset;

static void
view(pset *ps, t4r_time_params *p)
{
	memset(p, 0, sizeof(*p));
	p->w1 = ps->w1;
	p->b1 = ps->b1;
	p->w2 = ps->w2;
	p->b2 = ps->b2;
	p->c1w = ps->c1w;
	p->c1b = ps->c1b;
	p->c2w = ps->c2w;
	p->c2b = ps->c2b;
	p->gw = ps->gw;
	p->gb = ps->gb;
	p->lnw = ps->aw;
	p->lnb = ps->ab;
}

/* the reference: one row, the equations of timepath.h written out */
static void
ref_row(const pset *p, int h, int n, const double *T, const double *mm, const double *mg,
		double *tdt, double *Tn)
{
	double		q[L],
				r1[L];

	for (int l = 0; l < L; l++)
		tdt[l] = Tn[l] = 0;
	for (int l = 0; l < n; l++)
	{
		double		u = T[l] * (mm ? mm[l] : 1);
		double		s = p->b2[h];

		for (int j = 0; j < J; j++)
		{
			double		a = p->w1[h * J + j] * u + p->b1[h * J + j];

			s += p->w2[h * J + j] * a * sig(a);
		}
		q[l] = T[l] * s;
	}
	for (int l = 0; l < n; l++)
	{
		double		a = p->c1b[h];

		for (int k = 0; k < K; k++)
			if (l - (K - 1) + k >= 0)
				a += p->c1w[h * K + k] * q[l - (K - 1) + k];
		r1[l] = hsw(a);
	}
	for (int l = 0; l < n; l++)
	{
		double		a = p->c2b[h];

		for (int k = 0; k < K; k++)
			if (l - (K - 1) + k >= 0)
				a += p->c2w[h * K + k] * r1[l - (K - 1) + k];
		tdt[l] = hsw(a);
	}
	for (int l = 0; l < n; l++)
	{
		double		g = sig(p->gw[h] * T[l] * (mg ? mg[l] : 1) + p->gb[h]);

		Tn[l] = p->aw[h] * (g * T[l] + (1 - g) * tdt[l]) + p->ab[h];
	}
}

static pset P;
static double T[R * L],
			mm[R * L],
			mg[R * L],
			A1[R * L],
			A2[R * L];
static int	nlen[S] = {L, 4, 1};

/* f = sum A1 * tdt + sum A2 * Tnew */
static double
func(const double *Tin, int with_masks)
{
	t4r_time_params p;
	double		tdt[R * L],
				Tn[R * L],
				cache[5 * R * L];
	double		f = 0;

	view(&P, &p);
	t4r_rtime_fwd(&p, R, H, L, K, J, nlen, Tin, with_masks ? mm : NULL, with_masks ? mg : NULL,
				  tdt, Tn, cache);
	for (int i = 0; i < R * L; i++)
		f += A1[i] * tdt[i] + A2[i] * Tn[i];
	return f;
}

int
main(void)
{
	t4r_time_params p,
				gp;
	pset		G;
	double		tdt[R * L],
				Tn[R * L],
				cache[5 * R * L],
				scratch[4 * L],
				dT[R * L];
	double		worst;

	for (size_t i = 0; i < sizeof(P) / sizeof(double); i++)
		((double *) &P)[i] = 0.7 * nrand();
	for (int i = 0; i < R * L; i++)
	{
		T[i] = nrand();
		mm[i] = urand() < 0.25 ? 0 : 1 / 0.75;
		mg[i] = urand() < 0.25 ? 0 : 1 / 0.75;
		A1[i] = nrand();
		A2[i] = nrand();
	}
	view(&P, &p);

	/* 1. forward against the reference */
	for (int masks = 0; masks < 2; masks++)
	{
		double		err = 0;

		t4r_rtime_fwd(&p, R, H, L, K, J, nlen, T, masks ? mm : NULL, masks ? mg : NULL, tdt, Tn,
					  cache);
		for (int r = 0; r < R; r++)
		{
			double		rt[L],
						rn[L];

			ref_row(&P, r % H, nlen[r / H], T + r * L, masks ? mm + r * L : NULL,
					masks ? mg + r * L : NULL, rt, rn);
			for (int l = 0; l < L; l++)
			{
				err = fmax(err, fabs(rt[l] - tdt[r * L + l]));
				err = fmax(err, fabs(rn[l] - Tn[r * L + l]));
			}
		}
		tap_ok(err < 1e-12, "forward == plain reference (%s masks): max abs diff %.3g",
			   masks ? "with" : "without", err);
	}
	/* tdt only (Tnew NULL) gives the same tdt */
	{
		double		t2[R * L];
		int			same = 1;

		t4r_rtime_fwd(&p, R, H, L, K, J, nlen, T, mm, mg, tdt, Tn, cache);
		t4r_rtime_fwd(&p, R, H, L, K, J, nlen, T, mm, NULL, t2, NULL, cache);
		for (int i = 0; i < R * L; i++)
			same &= t2[i] == tdt[i];
		tap_ok(same, "Tnew == NULL: the same tdt");
	}

	/* 2. causality and padded slots */
	{
		int			causal = 1,
					padzero = 1,
					moved = 0;

		t4r_rtime_fwd(&p, R, H, L, K, J, nlen, T, mm, mg, tdt, Tn, cache);
		for (int pos = 0; pos < L; pos++)
		{
			double		T2[R * L],
						t2[R * L],
						n2[R * L];

			memcpy(T2, T, sizeof T);
			for (int r = 0; r < R; r++)
				T2[r * L + pos] += 1.5;
			t4r_rtime_fwd(&p, R, H, L, K, J, nlen, T2, mm, mg, t2, n2, cache);
			for (int r = 0; r < R; r++)
				for (int l = 0; l < L; l++)
				{
					int			i = r * L + l;

					if (l < pos && (t2[i] != tdt[i] || n2[i] != Tn[i]))
						causal = 0;
					if (l >= pos && l < nlen[r / H] && (t2[i] != tdt[i] || n2[i] != Tn[i]))
						moved = 1;
					if (l >= nlen[r / H] && (t2[i] != 0 || n2[i] != 0))
						padzero = 0;
				}
		}
		tap_ok(causal && moved, "causal: T at position p changes no output before p (and some after)");
		tap_ok(padzero, "padded slots (l >= n) are 0 whatever T holds there");
	}

	/* 3. backward against finite differences */
	memset(&G, 0, sizeof G);
	view(&G, &gp);
	t4r_rtime_fwd(&p, R, H, L, K, J, nlen, T, mm, mg, tdt, Tn, cache);
	t4r_rtime_bwd(&p, &gp, R, H, L, K, J, nlen, T, mm, mg, cache, A1, A2, dT, scratch);
	worst = 0;
	{
		double		h = 1e-6;
		double		num = 0,
					den = 0;

		for (int i = 0; i < R * L; i++)
		{
			double		T2[R * L],
						fp,
						fm,
						fd;

			memcpy(T2, T, sizeof T);
			T2[i] += h;
			fp = func(T2, 1);
			T2[i] -= 2 * h;
			fm = func(T2, 1);
			fd = (fp - fm) / (2 * h);
			num += (fd - dT[i]) * (fd - dT[i]);
			den += fd * fd;
		}
		worst = sqrt(num / den);
		tap_ok(worst < 1e-6, "dT vs finite differences: rel L2 %.3g", worst);
		num = den = 0;
		for (size_t i = 0; i < sizeof(P) / sizeof(double); i++)
		{
			double	   *pp = (double *) &P + i;
			double		p0 = *pp,
						fp,
						fm,
						fd,
						an = ((double *) &G)[i];

			*pp = p0 + h;
			fp = func(T, 1);
			*pp = p0 - h;
			fm = func(T, 1);
			*pp = p0;
			fd = (fp - fm) / (2 * h);
			num += (fd - an) * (fd - an);
			den += fd * fd;
		}
		worst = sqrt(num / den);
		tap_ok(worst < 1e-6, "parameter gradients vs finite differences: rel L2 %.3g", worst);
	}
	/* dTnew == NULL: the gate and affine get nothing */
	{
		int			none = 1;

		memset(&G, 0, sizeof G);
		t4r_rtime_bwd(&p, &gp, R, H, L, K, J, nlen, T, mm, NULL, cache, A1, NULL, dT, scratch);
		for (int h = 0; h < H; h++)
			none &= G.gw[h] == 0 && G.gb[h] == 0 && G.aw[h] == 0 && G.ab[h] == 0;
		tap_ok(none, "dTnew == NULL: no gradient for the gate and the affine map");
	}

	/* 4. input features */
	{
		double		ts[7] = {1.6e9, 1.6e9 + 30, 1.6e9 + 30, 1.6e9 + 3630, 1.6e9 + 3600, 1.6e9 + 90000,
		1.6e9 + 90001};
		double		ts2[7];
		double		g1[10],
					g2[10];
		double		scale = 120,
					err = 0,
					ferr = 0;
		int			pad = 1;

		t4r_rtime_features(ts, 7, 10, scale, g1);
		for (int l = 0; l < 10; l++)
		{
			double		want = 0;

			if (l > 0 && l < 7)
			{
				double		d = ts[l] - ts[l - 1];

				want = (d < 0 ? -1 : 1) * log(1 + fabs(d) / scale);
			}
			ferr = fmax(ferr, fabs(want - g1[l]));
			if (l >= 7 && g1[l] != 0)
				pad = 0;
		}
		tap_ok(ferr < 1e-14 && pad, "features: sign(d) log1p(|d| / scale), 0 in padded slots");
		/* milliseconds since another origin, scale in milliseconds */
		for (int i = 0; i < 7; i++)
			ts2[i] = (ts[i] - 9.46e8) * 1000 + 123456789;
		t4r_rtime_features(ts2, 7, 10, scale * 1000, g2);
		for (int l = 0; l < 10; l++)
			err = fmax(err, fabs(g1[l] - g2[l]));
		tap_ok(err < 1e-12, "features invariant to the timestamps' unit and origin: max diff %.3g", err);
		/* truncation: n > L keeps the first L of what it is given */
		t4r_rtime_features(ts, 7, 4, scale, g2);
		tap_ok(g2[3] == g1[3] && g2[0] == 0, "n > L: the first L slots");
	}
	return tap_done();
}
