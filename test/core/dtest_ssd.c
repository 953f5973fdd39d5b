/*
 * dtest_ssd.c - double-build checks of the SSD scan (ssd.c):
 *  1. the reference recurrence against a naive state recurrence written here
 *     (forward), and its backward against central finite differences of
 *     J = sum(w * y) for every input element (x, B, C, delta, A, D), with
 *     dA/dD pre-filled (they must accumulate) and dx/dB/dC/ddelta pre-filled
 *     with garbage (they must be overwritten); full and last_only modes;
 *  2. the chunked form against the reference: forward y and every backward
 *     output, chunk 1, 3, 8, 32, 64, lengths 1 .. 200, last_only 0 and 1,
 *     strided layouts (B and C interleaved in one row as the model does);
 *  3. buffers outside the contract are neither read nor written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 88172645463325252ULL
#include "tap.h"
#include "ssd.h"


#define SENT 1234567.0
static const char *const decay_name[] = {"model", "strong", "extreme", "none"};			/* sentinel for "must not be written" */

/* one problem: inputs and strides */
typedef struct prob
{
	int			n,
				H,
				P,
				N,
				ldx,
				ldbc,
				ldy,
				lddy;
	double	   *x;				/* [n, ldx] */
	double	   *bc;				/* [n, ldbc]: B at 0, C at N + 1 */
	double	   *delta;			/* [n, H] */
	double	   *A,
			   *D;				/* [H] */
	double	   *w;				/* [n, lddy]: dy */
} prob;

#define PB(p) ((p)->bc)
#define PC(p) ((p)->bc + (p)->N + 1)

/* decay: 0 = model-like (delta in [1e-3, 0.5], A in [-16, -1]),
 *        1 = strong (delta up to 6, so delta*A down to -96 per step),
 *        2 = extreme (delta up to 100: delta*A down to -1600, exp underflows),
 *        3 = almost none (A in [-1e-3, -1e-4]: the state keeps everything) */
static void
prob_init(prob *p, int n, int H, int P, int Nst, int pad, int decay)
{
	p->n = n;
	p->H = H;
	p->P = P;
	p->N = Nst;
	p->ldx = H * P + pad;
	p->ldbc = 2 * Nst + 1 + pad;
	p->ldy = H * P + 2 * pad;
	p->lddy = H * P + pad + 1;
	p->x = malloc(sizeof(double) * n * p->ldx);
	p->bc = malloc(sizeof(double) * n * p->ldbc);
	p->delta = malloc(sizeof(double) * n * H);
	p->A = malloc(sizeof(double) * H);
	p->D = malloc(sizeof(double) * H);
	p->w = malloc(sizeof(double) * n * p->lddy);
	for (int i = 0; i < n * p->ldx; i++)
		p->x[i] = nrand();
	for (int i = 0; i < n * p->ldbc; i++)
		p->bc[i] = 0.5 * nrand();
	for (int i = 0; i < n * H; i++)
		p->delta[i] = exp(log(1e-3) + urand() * (log(decay == 0 ? 0.5 : decay == 2 ? 100.0 : 6.0) - log(1e-3)));
	for (int h = 0; h < H; h++)
	{
		p->A[h] = decay == 3 ? -exp(log(1e-4) + urand() * log(10.0)) : -exp(urand() * log(16.0));
		p->D[h] = nrand();
	}
	for (int i = 0; i < n * p->lddy; i++)
		p->w[i] = nrand();
}

static void
prob_free(prob *p)
{
	free(p->x);
	free(p->bc);
	free(p->delta);
	free(p->A);
	free(p->D);
	free(p->w);
}

/* naive forward written here: S kept per head, y at all positions [n, H*P] */
static void
naive_fwd(const prob *p, double *y)
{
	int			H = p->H,
				P = p->P,
				N = p->N;
	double	   *S = calloc((size_t) H * P * N, sizeof(double));

	for (int l = 0; l < p->n; l++)
		for (int h = 0; h < H; h++)
		{
			double		dl = p->delta[l * H + h];

			for (int q = 0; q < P; q++)
			{
				double		xv = p->x[l * p->ldx + h * P + q];
				double		acc = 0;

				for (int k = 0; k < N; k++)
				{
					double	   *s = &S[(h * P + q) * N + k];

					*s = exp(dl * p->A[h]) * *s + dl * xv * PB(p)[l * p->ldbc + k];
					acc += PC(p)[l * p->ldbc + k] * *s;
				}
				y[(l * H + h) * P + q] = acc + p->D[h] * xv;
			}
		}
	free(S);
}

/* J = sum w * y (all rows, or row n-1 against w[0..] when last_only) */
static double
objective(const prob *p, int last_only, int use_chunk, int chunk, double *ws)
{
	int			HP = p->H * p->P;
	double	   *y = malloc(sizeof(double) * p->n * p->ldy);
	double		J = 0;

	if (use_chunk)
		t4r_ssd_fwd(p->n, p->H, p->P, p->N, chunk, p->x, p->ldx, PB(p), PC(p), p->ldbc,
					p->delta, p->A, p->D, last_only, y, p->ldy, ws);
	else
		t4r_ssd_fwd_ref(p->n, p->H, p->P, p->N, p->x, p->ldx, PB(p), PC(p), p->ldbc,
						p->delta, p->A, p->D, last_only, y, p->ldy, ws);
	if (last_only)
		for (int i = 0; i < HP; i++)
			J += p->w[i] * y[i];
	else
		for (int l = 0; l < p->n; l++)
			for (int i = 0; i < HP; i++)
				J += p->w[l * p->lddy + i] * y[l * p->ldy + i];
	free(y);
	return J;
}

typedef struct grads
{
	double	   *dx,
			   *dbc,
			   *ddelta,
			   *dA,
			   *dD;
} grads;

static void
grads_alloc(grads *g, const prob *p)
{
	g->dx = malloc(sizeof(double) * p->n * p->ldx);
	g->dbc = malloc(sizeof(double) * p->n * p->ldbc);
	g->ddelta = malloc(sizeof(double) * p->n * p->H);
	g->dA = malloc(sizeof(double) * p->H);
	g->dD = malloc(sizeof(double) * p->H);
}

static void
grads_free(grads *g)
{
	free(g->dx);
	free(g->dbc);
	free(g->ddelta);
	free(g->dA);
	free(g->dD);
}

/* garbage in the overwritten outputs, SENT in the strides' padding (checked
 * afterwards), given values in dA/dD */
static void
grads_prefill(grads *g, const prob *p, double a0, double d0)
{
	for (int i = 0; i < p->n * p->ldx; i++)
		g->dx[i] = (i % p->ldx) < p->H * p->P ? 777.0 + i : SENT;
	for (int i = 0; i < p->n * p->ldbc; i++)
	{
		int			c = i % p->ldbc;

		g->dbc[i] = (c < p->N || (c > p->N && c <= 2 * p->N)) ? -555.0 - i : SENT;
	}
	for (int i = 0; i < p->n * p->H; i++)
		g->ddelta[i] = 999.0;
	for (int h = 0; h < p->H; h++)
	{
		g->dA[h] = a0 * (h + 1);
		g->dD[h] = d0 * (h + 1);
	}
}

static int
padding_intact(const grads *g, const prob *p)
{
	for (int i = 0; i < p->n * p->ldx; i++)
		if ((i % p->ldx) >= p->H * p->P && g->dx[i] != SENT)
			return 0;
	for (int i = 0; i < p->n * p->ldbc; i++)
	{
		int			c = i % p->ldbc;

		if (!(c < p->N || (c > p->N && c <= 2 * p->N)) && g->dbc[i] != SENT)
			return 0;
	}
	return 1;
}

static void
run_bwd(const prob *p, int last_only, int use_chunk, int chunk, grads *g, double *ws,
		const double *dy, int lddy)
{
	if (use_chunk)
		t4r_ssd_bwd(p->n, p->H, p->P, p->N, chunk, p->x, p->ldx, PB(p), PC(p), p->ldbc,
					p->delta, p->A, p->D, last_only, dy, lddy,
					g->dx, g->dbc, g->dbc + p->N + 1, g->ddelta, g->dA, g->dD, ws);
	else
		t4r_ssd_bwd_ref(p->n, p->H, p->P, p->N, p->x, p->ldx, PB(p), PC(p), p->ldbc,
						p->delta, p->A, p->D, last_only, dy, lddy,
						g->dx, g->dbc, g->dbc + p->N + 1, g->ddelta, g->dA, g->dD, ws);
}

/* dy buffer for last_only: exactly H*P values followed by NaNs (must not be
 * read) */
static double *
last_dy(const prob *p)
{
	int			HP = p->H * p->P;
	double	   *d = malloc(sizeof(double) * (HP + 64));

	memcpy(d, p->w, sizeof(double) * HP);
	for (int i = HP; i < HP + 64; i++)
		d[i] = NAN;
	return d;
}

/* ---------------- 1. finite differences ---------------- */
static double
fd_one(prob *p, double *v, int last_only, int use_chunk, int chunk, double *ws)
{
	double		v0 = *v,
				h = 1e-5 * fmax(1.0, fabs(v0)),
				jp,
				jm;

	*v = v0 + h;
	jp = objective(p, last_only, use_chunk, chunk, ws);
	*v = v0 - h;
	jm = objective(p, last_only, use_chunk, chunk, ws);
	*v = v0;
	return (jp - jm) / (2 * h);
}

/* max |analytic - fd| / max(1, max |fd|) for one array of `cnt` values
 * at v[idx(i)] */
typedef struct erracc
{
	double		maxdiff,
				maxval;
} erracc;

static void
acc_add(erracc *e, double an, double fd)
{
	if (fabs(an - fd) > e->maxdiff || isnan(an))
		e->maxdiff = isnan(an) ? INFINITY : fabs(an - fd);
	if (fabs(fd) > e->maxval)
		e->maxval = fabs(fd);
}

static double
acc_rel(const erracc *e)
{
	return e->maxdiff / fmax(1.0, e->maxval);
}

static void
fd_check(int n, int H, int P, int Nst, int pad, int decay, int last_only, int use_chunk,
		 int chunk)
{
	prob		p;
	grads		g;
	double	   *ws,
			   *dyl = NULL;
	erracc		ex = {0},
				eb = {0},
				ec = {0},
				ed = {0},
				ea = {0},
				eD = {0};
	const char *name = use_chunk ? "chunked" : "reference";
	double		tol = 1e-7;
	char		csuf[32] = "";

	if (use_chunk)
		snprintf(csuf, sizeof(csuf), " chunk=%d", chunk);
	prob_init(&p, n, H, P, Nst, pad, decay);
	ws = malloc(sizeof(double) * t4r_ssd_ws_size(n, H, P, Nst, use_chunk ? chunk : 1));
	grads_alloc(&g, &p);
	grads_prefill(&g, &p, 0.25, -0.5);
	if (last_only)
		dyl = last_dy(&p);
	run_bwd(&p, last_only, use_chunk, chunk, &g, ws, last_only ? dyl : p.w,
			last_only ? 0 : p.lddy);

	for (int l = 0; l < n; l++)
	{
		for (int i = 0; i < H * P; i++)
			acc_add(&ex, g.dx[l * p.ldx + i],
					fd_one(&p, &p.x[l * p.ldx + i], last_only, use_chunk, chunk, ws));
		for (int k = 0; k < Nst; k++)
		{
			acc_add(&eb, g.dbc[l * p.ldbc + k],
					fd_one(&p, &PB(&p)[l * p.ldbc + k], last_only, use_chunk, chunk, ws));
			acc_add(&ec, g.dbc[l * p.ldbc + Nst + 1 + k],
					fd_one(&p, &PC(&p)[l * p.ldbc + k], last_only, use_chunk, chunk, ws));
		}
		for (int h = 0; h < H; h++)
			acc_add(&ed, g.ddelta[l * H + h],
					fd_one(&p, &p.delta[l * H + h], last_only, use_chunk, chunk, ws));
	}
	for (int h = 0; h < H; h++)
	{
		acc_add(&ea, g.dA[h] - 0.25 * (h + 1),
				fd_one(&p, &p.A[h], last_only, use_chunk, chunk, ws));
		acc_add(&eD, g.dD[h] - (-0.5) * (h + 1),
				fd_one(&p, &p.D[h], last_only, use_chunk, chunk, ws));
	}
	tap_ok(acc_rel(&ex) < tol && acc_rel(&eb) < tol && acc_rel(&ec) < tol &&
		   acc_rel(&ed) < tol && acc_rel(&ea) < tol && acc_rel(&eD) < tol,
		   "%s bwd vs finite differences (n=%d H=%d P=%d N=%d pad=%d decay=%s last_only=%d%s): "
		   "rel err dx %.1e dB %.1e dC %.1e ddelta %.1e dA(accum) %.1e dD(accum) %.1e",
		   name, n, H, P, Nst, pad, decay_name[decay], last_only, csuf,
		   acc_rel(&ex), acc_rel(&eb), acc_rel(&ec), acc_rel(&ed), acc_rel(&ea), acc_rel(&eD));
	tap_ok(padding_intact(&g, &p), "%s bwd leaves stride padding of dx/dB/dC untouched (n=%d last_only=%d)",
		   name, n, last_only);
	free(dyl);
	free(ws);
	grads_free(&g);
	prob_free(&p);
}

/* reference forward against the naive recurrence above */
static void
ref_vs_naive(int n, int H, int P, int Nst, int pad, int decay)
{
	prob		p;
	double	   *yn,
			   *y,
			   *y1,
			   *ws,
				md = 0,
				mv = 0,
				md1 = 0;
	int			HP = H * P,
				sent_ok = 1;

	prob_init(&p, n, H, P, Nst, pad, decay);
	yn = malloc(sizeof(double) * n * HP);
	y = malloc(sizeof(double) * n * p.ldy);
	y1 = malloc(sizeof(double) * (HP + 16));
	ws = malloc(sizeof(double) * t4r_ssd_ws_size(n, H, P, Nst, 1));
	naive_fwd(&p, yn);
	for (int i = 0; i < n * p.ldy; i++)
		y[i] = SENT;
	for (int i = 0; i < HP + 16; i++)
		y1[i] = SENT;
	t4r_ssd_fwd_ref(n, H, P, Nst, p.x, p.ldx, PB(&p), PC(&p), p.ldbc, p.delta, p.A, p.D,
					0, y, p.ldy, ws);
	t4r_ssd_fwd_ref(n, H, P, Nst, p.x, p.ldx, PB(&p), PC(&p), p.ldbc, p.delta, p.A, p.D,
					1, y1, 0, ws);
	for (int l = 0; l < n; l++)
	{
		for (int i = 0; i < HP; i++)
		{
			md = fmax(md, fabs(y[l * p.ldy + i] - yn[l * HP + i]));
			mv = fmax(mv, fabs(yn[l * HP + i]));
		}
		for (int i = HP; i < p.ldy; i++)
			sent_ok &= y[l * p.ldy + i] == SENT;
	}
	for (int i = 0; i < HP; i++)
		md1 = fmax(md1, fabs(y1[i] - yn[(n - 1) * HP + i]));
	for (int i = HP; i < HP + 16; i++)
		sent_ok &= y1[i] == SENT;
	tap_ok(md / fmax(mv, 1e-300) < 1e-13 && md1 / fmax(mv, 1e-300) < 1e-13 && sent_ok,
		   "reference fwd == naive recurrence (n=%d H=%d P=%d N=%d): rel err %.1e, last_only %.1e, padding %s",
		   n, H, P, Nst, md / fmax(mv, 1e-300), md1 / fmax(mv, 1e-300), sent_ok ? "intact" : "WRITTEN");
	free(yn);
	free(y);
	free(y1);
	free(ws);
	prob_free(&p);
}

/* ---------------- 2. chunked vs reference ---------------- */
static double
relerr(const double *a, const double *b, int rows, int cols, int lda)
{
	double		md = 0,
				mv = 0;

	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++)
		{
			double		d = fabs(a[(size_t) r * lda + c] - b[(size_t) r * lda + c]);

			if (isnan(d))
				return INFINITY;
			md = fmax(md, d);
			mv = fmax(mv, fabs(b[(size_t) r * lda + c]));
		}
	return md / fmax(mv, 1e-300);
}

static double worst_fwd = 0,
			worst_bwd = 0;

static void
chunk_vs_ref(int n, int H, int P, int Nst, int pad, int decay, int chunk, int last_only)
{
	prob		p;
	grads		gr,
				gc;
	double	   *yr,
			   *yc,
			   *wsr,
			   *wsc,
			   *dyl = NULL;
	size_t		wsn = t4r_ssd_ws_size(n, H, P, Nst, chunk);
	int			HP = H * P,
				yrows = last_only ? 1 : n,
				finite = 1,
				sent_ok;
	double		ef,
				ex,
				eb,
				ec,
				ed,
				ea,
				eD,
				eb_all;
	double		tol = 1e-12;

	prob_init(&p, n, H, P, Nst, pad, decay);
	yr = malloc(sizeof(double) * n * p.ldy);
	yc = malloc(sizeof(double) * n * p.ldy);
	wsr = malloc(sizeof(double) * t4r_ssd_ws_size(n, H, P, Nst, 1));
	/* exactly the advertised size, with a guard region behind it */
	wsc = malloc(sizeof(double) * (wsn + 16));
	for (int i = 0; i < 16; i++)
		wsc[wsn + i] = SENT;
	for (int i = 0; i < n * p.ldy; i++)
		yr[i] = yc[i] = SENT;
	t4r_ssd_fwd_ref(n, H, P, Nst, p.x, p.ldx, PB(&p), PC(&p), p.ldbc, p.delta, p.A, p.D,
					last_only, yr, p.ldy, wsr);
	t4r_ssd_fwd(n, H, P, Nst, chunk, p.x, p.ldx, PB(&p), PC(&p), p.ldbc, p.delta, p.A, p.D,
				last_only, yc, p.ldy, wsc);
	ef = relerr(yc, yr, yrows, HP, p.ldy);
	sent_ok = 1;
	for (int i = 0; i < n * p.ldy; i++)
	{
		int			row = i / p.ldy,
					col = i % p.ldy;

		if ((row >= yrows || col >= HP) && yc[i] != SENT)
			sent_ok = 0;
		if (row < yrows && col < HP && !isfinite(yc[i]))
			finite = 0;
	}

	grads_alloc(&gr, &p);
	grads_alloc(&gc, &p);
	grads_prefill(&gr, &p, 0.5, 0.75);
	grads_prefill(&gc, &p, 0.5, 0.75);
	if (last_only)
		dyl = last_dy(&p);
	run_bwd(&p, last_only, 0, 0, &gr, wsr, last_only ? dyl : p.w, last_only ? 0 : p.lddy);
	run_bwd(&p, last_only, 1, chunk, &gc, wsc, last_only ? dyl : p.w, last_only ? 0 : p.lddy);
	ex = relerr(gc.dx, gr.dx, n, HP, p.ldx);
	eb = relerr(gc.dbc, gr.dbc, n, Nst, p.ldbc);
	ec = relerr(gc.dbc + Nst + 1, gr.dbc + Nst + 1, n, Nst, p.ldbc);
	ed = relerr(gc.ddelta, gr.ddelta, n, H, H);
	ea = relerr(gc.dA, gr.dA, 1, H, H);
	eD = relerr(gc.dD, gr.dD, 1, H, H);
	eb_all = fmax(fmax(fmax(ex, eb), fmax(ec, ed)), fmax(ea, eD));
	for (int i = 0; i < 16; i++)
		sent_ok &= wsc[wsn + i] == SENT;
	sent_ok &= padding_intact(&gc, &p);
	if (ef > worst_fwd)
		worst_fwd = ef;
	if (eb_all > worst_bwd)
		worst_bwd = eb_all;
	tap_ok(ef < tol && eb_all < tol && finite && sent_ok,
		   "chunked == reference (n=%d H=%d P=%d N=%d chunk=%d last_only=%d decay=%s): "
		   "y %.1e dx %.1e dB %.1e dC %.1e ddelta %.1e dA %.1e dD %.1e%s",
		   n, H, P, Nst, chunk, last_only, decay_name[decay],
		   ef, ex, eb, ec, ed, ea, eD,
		   !finite ? " NON-FINITE" : !sent_ok ? " WROTE OUTSIDE ITS BUFFERS" : "");
	free(dyl);
	free(yr);
	free(yc);
	free(wsr);
	free(wsc);
	grads_free(&gr);
	grads_free(&gc);
	prob_free(&p);
}

int
main(void)
{
	static const int chunks[] = {1, 3, 8, 32, 64};
	static const int lens[] = {1, 2, 5, 31, 32, 33, 64, 100, 200};

	/* 1. reference: forward against the naive recurrence, backward against
	 * finite differences */
	ref_vs_naive(1, 2, 3, 4, 0, 0);
	ref_vs_naive(9, 3, 4, 5, 3, 0);
	ref_vs_naive(40, 4, 32, 32, 5, 1);
	for (int lo = 0; lo <= 1; lo++)
	{
		fd_check(1, 2, 3, 4, 0, 0, lo, 0, 0);
		fd_check(7, 2, 3, 4, 2, 0, lo, 0, 0);
		fd_check(6, 3, 2, 5, 1, 1, lo, 0, 0);
		/* and the chunked form directly, several chunks with a partial one */
		fd_check(7, 2, 3, 4, 2, 0, lo, 1, 3);
		fd_check(9, 2, 3, 4, 1, 1, lo, 1, 4);
	}

	/* the workspace size never decreases with n (callers size it once for
	 * the maximum length), and chunk 1 covers the reference */
	{
		int			mono = 1,
					refok = 1;

		for (int ci = 0; ci < 5; ci++)
			for (int n = 1; n < 300; n++)
				if (t4r_ssd_ws_size(n + 1, 4, 32, 32, chunks[ci]) < t4r_ssd_ws_size(n, 4, 32, 32, chunks[ci]) ||
					t4r_ssd_ws_size(n + 1, 3, 5, 7, chunks[ci]) < t4r_ssd_ws_size(n, 3, 5, 7, chunks[ci]))
					mono = 0;
		for (int n = 1; n < 300; n++)
			if (t4r_ssd_ws_size(n, 4, 32, 32, 1) < (size_t) (n + 1) * 4 * 32 * 32)
				refok = 0;
		tap_ok(mono, "t4r_ssd_ws_size is nondecreasing in n (chunk 1..64, n 1..300)");
		tap_ok(refok, "t4r_ssd_ws_size(n, .., chunk 1) holds the reference's n+1 states");
	}

	/* 2. chunked vs reference */
	for (int ci = 0; ci < 5; ci++)
		for (int li = 0; li < 9; li++)
			for (int lo = 0; lo <= 1; lo++)
				chunk_vs_ref(lens[li], 4, 32, 32, 3, (li + ci) % 2, chunks[ci], lo);
	/* odd shapes */
	for (int ci = 0; ci < 5; ci++)
		for (int li = 0; li < 9; li += 2)
			for (int lo = 0; lo <= 1; lo++)
				chunk_vs_ref(lens[li], 3, 5, 7, 2, (li + ci + 1) % 2, chunks[ci], lo);
	/* extreme and vanishing decay: nothing overflows, nothing is lost */
	for (int lo = 0; lo <= 1; lo++)
	{
		chunk_vs_ref(200, 4, 32, 32, 1, 2, 32, lo);
		chunk_vs_ref(100, 3, 5, 7, 2, 2, 64, lo);
		chunk_vs_ref(200, 4, 32, 32, 1, 3, 32, lo);
		chunk_vs_ref(77, 3, 5, 7, 2, 3, 8, lo);
		fd_check(8, 2, 3, 4, 1, 2, lo, 1, 3);
		fd_check(8, 2, 3, 4, 1, 3, lo, 1, 3);
	}
	tap_diag("worst chunked-vs-reference relative error: forward %.2e, backward %.2e",
			 worst_fwd, worst_bwd);
	return tap_done();
}
