/*
 * ssd.c - the state-space-duality scan of one sequence: the plain
 * recurrence (test oracle) and the chunked (matrix) form.  See ssd.h.
 */
#include <math.h>
#include <string.h>
#include "ssd.h"
#include "ops.h"

/* ------------------------------------------------------------------------
 * Reference: the plain recurrence.
 * ws layout: states S_l for l = 0..n-1 ([n][H][P][N]) in the backward, one
 * running state [H][P][N] in the forward; the backward also keeps the
 * running state gradient G [H][P][N].
 * ------------------------------------------------------------------------ */
void
t4r_ssd_fwd_ref(int n, int H, int P, int N,
				const t4r_real *x, int ldx,
				const t4r_real *B, const t4r_real *C, int ldbc,
				const t4r_real *delta, const t4r_real *A, const t4r_real *D,
				int last_only, t4r_real *y, int ldy, t4r_real *ws)
{
	size_t		hpn = (size_t) H * P * N;
	t4r_real   *S = ws;

	memset(S, 0, hpn * sizeof(t4r_real));
	for (int l = 0; l < n; l++)
	{
		const t4r_real *xl = x + (size_t) l * ldx;
		const t4r_real *Bl = B + (size_t) l * ldbc;
		const t4r_real *Cl = C + (size_t) l * ldbc;
		int			want = !last_only || l == n - 1;
		t4r_real   *yl = last_only ? y : y + (size_t) l * ldy;

		for (int h = 0; h < H; h++)
		{
			t4r_real	dl = delta[(size_t) l * H + h];
			t4r_real	a = (t4r_real) exp((double) dl * A[h]);

			for (int p = 0; p < P; p++)
			{
				t4r_real   *Sp = S + ((size_t) h * P + p) * N;
				t4r_real	u = dl * xl[h * P + p];
				t4r_real	acc = 0;

				for (int k = 0; k < N; k++)
				{
					Sp[k] = a * Sp[k] + u * Bl[k];
					acc += Cl[k] * Sp[k];
				}
				if (want)
					yl[h * P + p] = acc + D[h] * xl[h * P + p];
			}
		}
	}
}

void
t4r_ssd_bwd_ref(int n, int H, int P, int N,
				const t4r_real *x, int ldx,
				const t4r_real *B, const t4r_real *C, int ldbc,
				const t4r_real *delta, const t4r_real *A, const t4r_real *D,
				int last_only, const t4r_real *dy, int lddy,
				t4r_real *dx, t4r_real *dB, t4r_real *dC,
				t4r_real *ddelta, t4r_real *dA, t4r_real *dD,
				t4r_real *ws)
{
	size_t		hpn = (size_t) H * P * N;
	t4r_real   *S = ws;				/* [n][H][P][N]: state after step l */
	t4r_real   *G = ws + (size_t) n * hpn;	/* dLoss/dS_l, running */

	/* forward, keeping every state */
	for (int l = 0; l < n; l++)
	{
		const t4r_real *xl = x + (size_t) l * ldx;
		const t4r_real *Bl = B + (size_t) l * ldbc;
		t4r_real   *Sl = S + (size_t) l * hpn;
		const t4r_real *Sprev = l > 0 ? Sl - hpn : NULL;

		for (int h = 0; h < H; h++)
		{
			t4r_real	dl = delta[(size_t) l * H + h];
			t4r_real	a = (t4r_real) exp((double) dl * A[h]);

			for (int p = 0; p < P; p++)
			{
				size_t		o = ((size_t) h * P + p) * N;
				t4r_real	u = dl * xl[h * P + p];

				for (int k = 0; k < N; k++)
					Sl[o + k] = (Sprev ? a * Sprev[o + k] : 0) + u * Bl[k];
			}
		}
	}

	memset(G, 0, hpn * sizeof(t4r_real));
	for (int l = n - 1; l >= 0; l--)
	{
		const t4r_real *xl = x + (size_t) l * ldx;
		const t4r_real *Bl = B + (size_t) l * ldbc;
		const t4r_real *Cl = C + (size_t) l * ldbc;
		const t4r_real *Sl = S + (size_t) l * hpn;
		const t4r_real *Sprev = l > 0 ? Sl - hpn : NULL;
		const t4r_real *dyl = NULL;
		t4r_real   *dxl = dx + (size_t) l * ldx;
		t4r_real   *dBl = dB + (size_t) l * ldbc;
		t4r_real   *dCl = dC + (size_t) l * ldbc;

		if (!last_only)
			dyl = dy + (size_t) l * lddy;
		else if (l == n - 1)
			dyl = dy;

		for (int k = 0; k < N; k++)
		{
			dBl[k] = 0;
			dCl[k] = 0;
		}
		for (int h = 0; h < H; h++)
		{
			t4r_real	dl = delta[(size_t) l * H + h];
			t4r_real	a = (t4r_real) exp((double) dl * A[h]);
			t4r_real	gxb = 0,	/* sum G x B */
						gs = 0;		/* sum G S_{l-1} */

			for (int p = 0; p < P; p++)
			{
				t4r_real   *Gp = G + ((size_t) h * P + p) * N;
				const t4r_real *Sp = Sl + ((size_t) h * P + p) * N;
				t4r_real	xp = xl[h * P + p];
				t4r_real	g = dyl ? dyl[h * P + p] : 0;
				t4r_real	gb = 0;

				if (dyl)
				{
					dD[h] += g * xp;
					for (int k = 0; k < N; k++)
					{
						Gp[k] += g * Cl[k];
						dCl[k] += g * Sp[k];
					}
				}
				for (int k = 0; k < N; k++)
				{
					gb += Gp[k] * Bl[k];
					dBl[k] += dl * xp * Gp[k];
				}
				dxl[h * P + p] = D[h] * g + dl * gb;
				gxb += xp * gb;
				if (Sprev)
				{
					const t4r_real *Sq = Sprev + ((size_t) h * P + p) * N;

					for (int k = 0; k < N; k++)
						gs += Gp[k] * Sq[k];
				}
				for (int k = 0; k < N; k++)
					Gp[k] *= a;
			}
			/* S_l = a S_{l-1} + dl x B, a = exp(dl A) */
			ddelta[(size_t) l * H + h] = gxb + A[h] * a * gs;
			dA[h] += dl * a * gs;
		}
	}
}

/* ------------------------------------------------------------------------
 * Chunked form (for now: the reference).
 * ------------------------------------------------------------------------ */
size_t
t4r_ssd_ws_size(int n, int H, int P, int N, int chunk)
{
	return ((size_t) n + 1) * H * P * N;
}

void
t4r_ssd_fwd(int n, int H, int P, int N, int chunk,
			const t4r_real *x, int ldx,
			const t4r_real *B, const t4r_real *C, int ldbc,
			const t4r_real *delta, const t4r_real *A, const t4r_real *D,
			int last_only, t4r_real *y, int ldy, t4r_real *ws)
{
	t4r_ssd_fwd_ref(n, H, P, N, x, ldx, B, C, ldbc, delta, A, D,
					last_only, y, ldy, ws);
}

void
t4r_ssd_bwd(int n, int H, int P, int N, int chunk,
			const t4r_real *x, int ldx,
			const t4r_real *B, const t4r_real *C, int ldbc,
			const t4r_real *delta, const t4r_real *A, const t4r_real *D,
			int last_only, const t4r_real *dy, int lddy,
			t4r_real *dx, t4r_real *dB, t4r_real *dC,
			t4r_real *ddelta, t4r_real *dA, t4r_real *dD,
			t4r_real *ws)
{
	t4r_ssd_bwd_ref(n, H, P, N, x, ldx, B, C, ldbc, delta, A, D,
					last_only, dy, lddy, dx, dB, dC, ddelta, dA, dD, ws);
}
