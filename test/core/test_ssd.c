/*
 * test_ssd.c - float-build checks of the SSD scan (ssd.c): chunked form
 * against the reference recurrence at the movielens / amazon sizes (H=4,
 * P=32, N=32, chunk 32, n up to 200), forward and every backward output,
 * full and last_only, with the strided layout the model uses (x, B and C in
 * one [n, Di + 2N] row); plus a micro-benchmark printed as TAP comments
 * (no timing assertions).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#define TAP_RNG_SEED 0x9E3779B97F4A7C15ULL
#include "tap.h"
#include "ssd.h"


/* current shape (the movielens one by default); LD = the model's row of
 * x | B | C, plus pad */
static int	H = 4,
			P = 32,
			N = 32,
			HP = 128,
			LD = 192;

static void
set_shape(int h, int p, int nst, int pad)
{
	H = h;
	P = p;
	N = nst;
	HP = h * p;
	LD = HP + 2 * nst + pad;
}

typedef struct bufs
{
	int			n;
	float	   *xbc,			/* [n, LD]: x | B | C */
			   *delta,
			   *A,
			   *D,
			   *dy,				/* [n, HP] */
			   *y,
			   *dxbc,
			   *ddelta,
			   *dA,
			   *dD,
			   *ws;
} bufs;

static void
bufs_init(bufs *b, int n, int chunk)
{
	size_t		wsn = t4r_ssd_ws_size(n, H, P, N, chunk),
				wr = t4r_ssd_ws_size(n, H, P, N, 1);

	b->n = n;
	b->xbc = malloc(sizeof(float) * n * LD);
	b->delta = malloc(sizeof(float) * n * H);
	b->A = malloc(sizeof(float) * H);
	b->D = malloc(sizeof(float) * H);
	b->dy = malloc(sizeof(float) * n * HP);
	b->y = malloc(sizeof(float) * n * HP);
	b->dxbc = malloc(sizeof(float) * n * LD);
	b->ddelta = malloc(sizeof(float) * n * H);
	b->dA = calloc(H, sizeof(float));
	b->dD = calloc(H, sizeof(float));
	b->ws = malloc(sizeof(float) * (wsn > wr ? wsn : wr));
	/* magnitudes like the model's: hardswish'd conv outputs, softplus dt */
	for (int i = 0; i < n * LD; i++)
		b->xbc[i] = (float) (0.7 * nrand());
	for (int i = 0; i < n * H; i++)
		b->delta[i] = (float) exp(log(1e-3) + urand() * (log(0.5) - log(1e-3)));
	for (int h = 0; h < H; h++)
	{
		b->A[h] = (float) -(1 + 15 * urand());
		b->D[h] = 1;
	}
	for (int i = 0; i < n * HP; i++)
		b->dy[i] = (float) nrand();
}

static void
bufs_free(bufs *b)
{
	free(b->xbc);
	free(b->delta);
	free(b->A);
	free(b->D);
	free(b->dy);
	free(b->y);
	free(b->dxbc);
	free(b->ddelta);
	free(b->dA);
	free(b->dD);
	free(b->ws);
}

static void
fwd(bufs *b, int chunk, int last_only, int ref)
{
	if (ref)
		t4r_ssd_fwd_ref(b->n, H, P, N, b->xbc, LD, b->xbc + HP, b->xbc + HP + N, LD,
						b->delta, b->A, b->D, last_only, b->y, HP, b->ws);
	else
		t4r_ssd_fwd(b->n, H, P, N, chunk, b->xbc, LD, b->xbc + HP, b->xbc + HP + N, LD,
					b->delta, b->A, b->D, last_only, b->y, HP, b->ws);
}

static void
bwd(bufs *b, int chunk, int last_only, int ref)
{
	if (ref)
		t4r_ssd_bwd_ref(b->n, H, P, N, b->xbc, LD, b->xbc + HP, b->xbc + HP + N, LD,
						b->delta, b->A, b->D, last_only, b->dy, HP,
						b->dxbc, b->dxbc + HP, b->dxbc + HP + N, b->ddelta, b->dA, b->dD, b->ws);
	else
		t4r_ssd_bwd(b->n, H, P, N, chunk, b->xbc, LD, b->xbc + HP, b->xbc + HP + N, LD,
					b->delta, b->A, b->D, last_only, b->dy, HP,
					b->dxbc, b->dxbc + HP, b->dxbc + HP + N, b->ddelta, b->dA, b->dD, b->ws);
}

/* max |a - b| / max |b| over rows x cols with leading dimension ld */
static double
relerr(const float *a, const float *b, int rows, int cols, int ld)
{
	double		md = 0,
				mv = 0;

	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++)
		{
			double		d = fabs((double) a[r * ld + c] - b[r * ld + c]);

			if (!isfinite(a[r * ld + c]))
				return INFINITY;
			if (d > md)
				md = d;
			if (fabs(b[r * ld + c]) > mv)
				mv = fabs(b[r * ld + c]);
		}
	return md / (mv > 0 ? mv : 1e-30);
}

static void
agree(int n, int chunk, int last_only)
{
	bufs		b;
	float	   *yr,
			   *gr,
			   *ddr,
				dAr[16],
				dDr[16];
	int			rows = last_only ? 1 : n;
	double		ey,
				ex,
				eB,
				eC,
				ed,
				eA,
				eD,
				tol = 1e-4;

	bufs_init(&b, n, chunk);
	yr = malloc(sizeof(float) * n * HP);
	gr = malloc(sizeof(float) * n * LD);
	ddr = malloc(sizeof(float) * n * H);

	fwd(&b, chunk, last_only, 1);
	memcpy(yr, b.y, sizeof(float) * rows * HP);
	bwd(&b, chunk, last_only, 1);
	memcpy(gr, b.dxbc, sizeof(float) * n * LD);
	memcpy(ddr, b.ddelta, sizeof(float) * n * H);
	memcpy(dAr, b.dA, sizeof(float) * H);
	memcpy(dDr, b.dD, sizeof(float) * H);
	memset(b.dA, 0, sizeof(float) * H);
	memset(b.dD, 0, sizeof(float) * H);

	fwd(&b, chunk, last_only, 0);
	bwd(&b, chunk, last_only, 0);
	ey = relerr(b.y, yr, rows, HP, HP);
	ex = relerr(b.dxbc, gr, n, HP, LD);
	eB = relerr(b.dxbc + HP, gr + HP, n, N, LD);
	eC = relerr(b.dxbc + HP + N, gr + HP + N, n, N, LD);
	ed = relerr(b.ddelta, ddr, n, H, H);
	eA = relerr(b.dA, dAr, 1, H, H);
	eD = relerr(b.dD, dDr, 1, H, H);
	tap_ok(ey < tol && ex < tol && eB < tol && eC < tol && ed < tol && eA < tol && eD < tol,
		   "float chunked vs reference H=%d P=%d N=%d n=%d chunk=%d last_only=%d: y %.1e dx %.1e dB %.1e dC %.1e "
		   "ddelta %.1e dA %.1e dD %.1e", H, P, N, n, chunk, last_only, ey, ex, eB, eC, ed, eA, eD);
	free(yr);
	free(gr);
	free(ddr);
	bufs_free(&b);
}

/* inference's fixed-order forward (t4r_ssd_fwd_fixed) against the plain
 * recurrence, and bitwise repeatable */
static void
agree_fixed(int n, int chunk, int last_only)
{
	bufs		b;
	float	   *yr;
	int			rows = last_only ? 1 : n;
	double		ey;
	int			same;

	bufs_init(&b, n, chunk);
	yr = malloc(sizeof(float) * n * HP);
	fwd(&b, chunk, last_only, 1);
	memcpy(yr, b.y, sizeof(float) * rows * HP);
	t4r_ssd_fwd_fixed(b.n, H, P, N, chunk, b.xbc, LD, b.xbc + HP, b.xbc + HP + N, LD,
					  b.delta, b.A, b.D, last_only, b.y, HP, b.ws);
	ey = relerr(b.y, yr, rows, HP, HP);
	memcpy(yr, b.y, sizeof(float) * rows * HP);
	t4r_ssd_fwd_fixed(b.n, H, P, N, chunk, b.xbc, LD, b.xbc + HP, b.xbc + HP + N, LD,
					  b.delta, b.A, b.D, last_only, b.y, HP, b.ws);
	same = memcmp(yr, b.y, sizeof(float) * rows * HP) == 0;
	tap_ok(ey < 1e-4 && same, "fixed-order forward vs reference H=%d P=%d N=%d n=%d chunk=%d last_only=%d: "
		   "y %.1e, repeatable %s", H, P, N, n, chunk, last_only, ey, same ? "yes" : "no");
	free(yr);
	bufs_free(&b);
}

/* thread CPU time: robust on a shared, loaded machine */
static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/* best-of-5 mean time of `reps` calls, microseconds per call */
#define TIME_IT(out, reps, stmt) do { \
	double best_ = 1e30; \
	for (int t_ = 0; t_ < 5; t_++) { \
		double t0_ = now_us(); \
		for (int r_ = 0; r_ < (reps); r_++) { stmt; } \
		double e_ = (now_us() - t0_) / (reps); \
		if (e_ < best_) best_ = e_; \
	} \
	(out) = best_; } while (0)

static void
bench(int n)
{
	bufs		b;
	int			chunk = 32,
				reps = n >= 100 ? 200 : 800;
	double		tf,
				tb,
				tfl,
				tbl,
				trf,
				trb;

	bufs_init(&b, n, chunk);
	TIME_IT(tf, reps, fwd(&b, chunk, 0, 0));
	TIME_IT(tb, reps, bwd(&b, chunk, 0, 0));
	TIME_IT(tfl, reps, fwd(&b, chunk, 1, 0));
	TIME_IT(tbl, reps, bwd(&b, chunk, 1, 0));
	TIME_IT(trf, reps / 4 + 1, fwd(&b, chunk, 0, 1));
	TIME_IT(trb, reps / 4 + 1, bwd(&b, chunk, 0, 1));
	tap_diag("bench n=%d H=%d P=%d N=%d chunk=%d (1 thread, CPU time per call): chunked fwd %.1f us, bwd %.1f us, "
			 "fwd+bwd %.1f us; last_only fwd %.1f us, bwd %.1f us; reference fwd %.1f us, bwd %.1f us",
			 n, H, P, N, chunk, tf, tb, tf + tb, tfl, tbl, trf, trb);
	bufs_free(&b);
}

int
main(int argc, char **argv)
{
	static const int lens[] = {1, 17, 32, 33, 50, 64, 150, 200};

	openblas_set_num_threads(1);
	for (int li = 0; li < 8; li++)
		for (int lo = 0; lo <= 1; lo++)
			agree(lens[li], 32, lo);
	agree(200, 16, 0);
	agree(200, 64, 0);
	agree(50, 8, 1);
	agree_fixed(1, 32, 0);
	agree_fixed(33, 32, 0);
	agree_fixed(150, 32, 0);
	agree_fixed(200, 32, 1);
	agree_fixed(64, 16, 0);
	/* odd shape: remainders of the blocked loops */
	set_shape(3, 5, 7, 3);
	for (int li = 0; li < 8; li++)
		agree(lens[li], 6, li % 2);
	set_shape(4, 32, 32, 0);
	if (!(argc > 1 && strcmp(argv[1], "--no-bench") == 0))
	{
		bench(200);
		bench(50);
	}
	return tap_done();
}
