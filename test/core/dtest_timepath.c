/*
 * dtest_timepath.c - double-build checks of the time path (timepath.c):
 * forward against a plain per-row, per-position reference written here
 * (docs/MODEL.md steps 3.3 and 3.7), backward against central finite differences of
 * J = sum(a * tdt) + sum(b * Tnew) with respect to T and every parameter.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 88172645463325252ULL
#include "tap.h"
#include "timepath.h"


/* ---------------- plain reference ---------------- */
static double
ref_sig(double x)
{
	return 1 / (1 + exp(-x));
}
/* FNV-style hash of the hardswish regions seen by the last ref_fwd, so that
 * the finite differences can detect a stencil that straddles a kink */
static uint64_t ref_region_hash;
static double
ref_hsw(double x)
{
	double		r = x + 3;

	ref_region_hash = (ref_region_hash ^ (uint64_t) (x < -3 ? 1 : x > 3 ? 2 : 3)) * 1099511628211ULL;

	if (r < 0)
		r = 0;
	if (r > 6)
		r = 6;
	return x * r / 6;
}

/* parameters in one array, named views */
typedef struct pset
{
	int			R,
				H,
				L,
				K,
				G;
	size_t		n;
	double	   *all;
	t4r_time_params p;
} pset;

static void
pset_init(pset *s, int R, int H, int L, int K, int G)
{
	size_t		o = 0;
	double	   *a;

	memset(&s->p, 0, sizeof(s->p));
	s->R = R;
	s->H = H;
	s->L = L;
	s->K = K;
	s->G = G;
	s->n = 2 * (size_t) L * L + 2 * L + 2 * (size_t) H * K + 2 * H + (size_t) G * L + G + 2 * L;
	a = s->all = calloc(s->n, sizeof(double));
#define TAKE(f, cnt) do { s->p.f = a + o; o += (cnt); } while (0)
	TAKE(w1, (size_t) L * L);
	TAKE(b1, L);
	TAKE(w2, (size_t) L * L);
	TAKE(b2, L);
	TAKE(c1w, (size_t) H * K);
	TAKE(c1b, H);
	TAKE(c2w, (size_t) H * K);
	TAKE(c2b, H);
	TAKE(gw, (size_t) G * L);
	TAKE(gb, G);
	TAKE(lnw, L);
	TAKE(lnb, L);
#undef TAKE
	if (o != s->n)
		abort();
}

/*
 * Reference forward, one row at a time, no GEMM.  tdt [R,L]; Tnew [R,L]
 * or NULL.
 */
static void
ref_fwd(const pset *ps, double eps, const double *T, const double *mm, const double *mg,
		double *tdt, double *Tnew)
{
	int			R = ps->R,
				H = ps->H,
				L = ps->L,
				K = ps->K,
				G = ps->G;
	const t4r_time_params *p = &ps->p;
	double	   *u = malloc(sizeof(double) * L),
			   *hh = malloc(sizeof(double) * L),
			   *q = malloc(sizeof(double) * L),
			   *r1 = malloc(sizeof(double) * L),
			   *x = malloc(sizeof(double) * L),
			   *gt = malloc(sizeof(double) * L);

	ref_region_hash = 14695981039346656037ULL;
	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		const double *t = T + (size_t) r * L;

		for (int i = 0; i < L; i++)
			u[i] = t[i] * (mm ? mm[(size_t) r * L + i] : 1.0);
		for (int j = 0; j < L; j++)
		{
			double		a = p->b1[j];

			for (int i = 0; i < L; i++)
				a += p->w1[(size_t) j * L + i] * u[i];
			hh[j] = a * ref_sig(a);
		}
		for (int j = 0; j < L; j++)
		{
			double		sv = p->b2[j];

			for (int i = 0; i < L; i++)
				sv += p->w2[(size_t) j * L + i] * hh[i];
			q[j] = t[j] * sv;
		}
		for (int l = 0; l < L; l++)
		{
			double		a = p->c1b[h];

			for (int k = 0; k < K; k++)
			{
				int			j = l - (K - 1) + k;

				a += p->c1w[h * K + k] * (j >= 0 ? q[j] : 0.0);
			}
			r1[l] = ref_hsw(a);
		}
		for (int l = 0; l < L; l++)
		{
			double		a = p->c2b[h];

			for (int k = 0; k < K; k++)
			{
				int			j = l - (K - 1) + k;

				a += p->c2w[h * K + k] * (j >= 0 ? r1[j] : 0.0);
			}
			tdt[(size_t) r * L + l] = ref_hsw(a);
		}
		if (!Tnew)
			continue;
		/* gate = sigmoid(Wg . (T * mg) + bg), [G] */
		for (int gi = 0; gi < G; gi++)
		{
			double		z = p->gb[gi];

			for (int i = 0; i < L; i++)
				z += p->gw[(size_t) gi * L + i] * t[i] * (mg ? mg[(size_t) r * L + i] : 1.0);
			gt[gi] = ref_sig(z);
		}
		for (int l = 0; l < L; l++)
		{
			double		gv = G == 1 ? gt[0] : gt[l];

			x[l] = gv * t[l] + (1 - gv) * tdt[(size_t) r * L + l];
		}
		{
			double		mean = 0,
						var = 0;

			for (int l = 0; l < L; l++)
				mean += x[l];
			mean /= L;
			for (int l = 0; l < L; l++)
				var += (x[l] - mean) * (x[l] - mean);
			var /= L;
			for (int l = 0; l < L; l++)
				Tnew[(size_t) r * L + l] = (x[l] - mean) / sqrt(var + eps) * p->lnw[l] + p->lnb[l];
		}
	}
	free(u);
	free(hh);
	free(q);
	free(r1);
	free(x);
	free(gt);
}

static int	fd_shrinks = 0;
static double overall_grad_err = 0,
			overall_fwd_err = 0;

/*
 * d J / d *x by the five-point stencil (error O(h^4)); the objective is
 * evaluated as the differences of the outputs, summed, to limit cancellation.
 */
static double
fdiff(const pset *ps, double eps, double *T, const double *mm, const double *mg,
	  const double *A, const double *B, double *x, double h, double *tdt, double *Tnew)
{
	size_t		n = (size_t) ps->R * ps->L;
	static const double c[4] = {1, -8, 8, -1};
	static const double off[4] = {-2, -1, 1, 2};
	double		keep = *x,
				acc = 0;
	double	   *yt = malloc(sizeof(double) * n * 4),
			   *yn = malloc(sizeof(double) * n * 4);
	int			tries = 0;

	/* shrink h while the stencil crosses a hardswish kink */
	for (;;)
	{
		uint64_t	hs[4];

		for (int s = 0; s < 4; s++)
		{
			*x = keep + off[s] * h;
			ref_fwd(ps, eps, T, mm, mg, yt + s * n, B ? yn + s * n : NULL);
			hs[s] = ref_region_hash;
		}
		*x = keep;
		if ((hs[0] == hs[1] && hs[1] == hs[2] && hs[2] == hs[3]) || ++tries > 6)
			break;
		h /= 4;
		fd_shrinks++;
	}
	for (size_t i = 0; i < n; i++)
	{
		double		dt = 0,
					dn = 0;

		for (int s = 0; s < 4; s++)
		{
			dt += c[s] * yt[s * n + i];
			if (B)
				dn += c[s] * yn[s * n + i];
		}
		acc += A[i] * dt + (B ? B[i] * dn : 0);
	}
	free(yt);
	free(yn);
	(void) tdt;
	(void) Tnew;
	return acc / (12 * h);
}

static double
relerr(double an, double fd)
{
	double		d = fabs(an - fd);
	double		m = fmax(fabs(an), fabs(fd));

	return d / fmax(m, 1e-4);
}

/* one configuration: forward check + full finite-difference gradient check */
static void
run_case(int R, int H, int L, int K, int G, double eps, int masks, int with_tnew)
{
	pset		ps,
				gs;
	size_t		n = (size_t) R * L;
	double	   *T = malloc(sizeof(double) * n),
			   *mm = NULL,
			   *mg = NULL,
			   *A = malloc(sizeof(double) * n),
			   *B = with_tnew ? malloc(sizeof(double) * n) : NULL,
			   *tdt = malloc(sizeof(double) * n),
			   *Tn = malloc(sizeof(double) * n),
			   *rtdt = malloc(sizeof(double) * n),
			   *rTn = malloc(sizeof(double) * n),
			   *dT = malloc(sizeof(double) * n),
			   *g0;
	double	   *cache = malloc(sizeof(double) * t4r_time_cache_size(R, L, G));
	double	   *scratch = malloc(sizeof(double) * t4r_time_scratch_size(R, L, G));
	double		fwd_err = 0,
				max_err = 0,
				h = 1e-3,
				worst_fd = 0,
				worst_an = 0;
	const char *worst = "";
	char		desc[200];
	static const char *names[] = {"w1", "b1", "w2", "b2", "c1w", "c1b", "c2w", "c2b",
	"gw", "gb", "lnw", "lnb"};
	int			untouched_ok = 1;

	snprintf(desc, sizeof desc, "R=%d H=%d L=%d K=%d G=%d eps=%g masks=%d Tnew=%d",
			 R, H, L, K, G, eps, masks, with_tnew);
	pset_init(&ps, R, H, L, K, G);
	pset_init(&gs, R, H, L, K, G);

	/* parameters: MLP weights around the init scale but larger so that the
	 * path is well exercised; convs kaiming-like; gate and LN random */
	for (size_t i = 0; i < ps.n; i++)
		ps.all[i] = 0.3 * nrand();
	for (int i = 0; i < H * K; i++)
	{
		ps.p.c1w[i] = sqrt(2.0 / K) * nrand();
		ps.p.c2w[i] = sqrt(2.0 / K) * nrand();
	}
	for (int l = 0; l < L; l++)
		ps.p.lnw[l] = 1 + 0.3 * nrand();
	/* T: normalised-looking rows with one large padding-like outlier */
	for (size_t i = 0; i < n; i++)
		T[i] = nrand();
	for (int r = 0; r < R; r++)
		T[(size_t) r * L + (r % L)] = -2.5;
	if (masks)
	{
		mm = malloc(sizeof(double) * n);
		mg = malloc(sizeof(double) * n);
		for (size_t i = 0; i < n; i++)
		{
			mm[i] = urand() < 0.3 ? 0 : 1 / 0.7;
			mg[i] = urand() < 0.3 ? 0 : 1 / 0.7;
		}
	}
	for (size_t i = 0; i < n; i++)
	{
		A[i] = nrand();
		if (B)
			B[i] = nrand();
	}

	/* forward */
	for (size_t i = 0; i < n; i++)
		Tn[i] = 12345;
	t4r_time_fwd(&ps.p, R, H, L, K, G, eps, T, mm, mg, tdt, with_tnew ? Tn : NULL, cache);
	ref_fwd(&ps, eps, T, mm, mg, rtdt, rTn);
	for (size_t i = 0; i < n; i++)
	{
		fwd_err = fmax(fwd_err, fabs(tdt[i] - rtdt[i]));
		if (with_tnew)
			fwd_err = fmax(fwd_err, fabs(Tn[i] - rTn[i]));
		else if (Tn[i] != 12345)
			fwd_err = INFINITY;	/* Tnew == NULL must not be written */
	}
	tap_ok(fwd_err < 1e-12, "fwd vs reference %s (max abs err %.3g)", desc, fwd_err);

	/* backward: g preloaded with random values to check accumulation */
	for (size_t i = 0; i < gs.n; i++)
		gs.all[i] = nrand();
	g0 = malloc(sizeof(double) * gs.n);
	memcpy(g0, gs.all, sizeof(double) * gs.n);
	for (size_t i = 0; i < n; i++)
		dT[i] = 1e30;			/* must be overwritten */
	t4r_time_bwd(&ps.p, &gs.p, R, H, L, K, G, eps, T, mm, mg, cache, A, B, dT, scratch);

	/* dT by finite differences */
	for (size_t i = 0; i < n; i++)
	{
		double		fd,
					e;

		fd = fdiff(&ps, eps, T, mm, mg, A, B, &T[i], h, rtdt, rTn);
		e = relerr(dT[i], fd);
		if (e > max_err)
		{
			max_err = e;
			worst = "T";
			worst_an = dT[i];
			worst_fd = fd;
		}
	}
	/* every parameter */
	{
		size_t		off = 0;
		double	   *starts[12] = {ps.p.w1, ps.p.b1, ps.p.w2, ps.p.b2, ps.p.c1w, ps.p.c1b,
		ps.p.c2w, ps.p.c2b, ps.p.gw, ps.p.gb, ps.p.lnw, ps.p.lnb};

		for (size_t i = 0; i < ps.n; i++)
		{
			double		fd,
						an = gs.all[i] - g0[i],
						e;
			int			which = 0;

			for (int w = 0; w < 12; w++)
				if (ps.all + i >= starts[w])
					which = w;
			if (!with_tnew && which >= 8)
			{
				/* gate / LN params: no gradient expected, must be untouched */
				if (gs.all[i] != g0[i])
					untouched_ok = 0;
				continue;
			}
			fd = fdiff(&ps, eps, T, mm, mg, A, B, &ps.all[i], h, rtdt, rTn);
			e = relerr(an, fd);
			if (e > max_err)
			{
				max_err = e;
				worst = names[which];
				worst_an = an;
				worst_fd = fd;
			}
		}
		(void) off;
	}
	overall_grad_err = fmax(overall_grad_err, max_err);
	overall_fwd_err = fmax(overall_fwd_err, fwd_err);
	tap_ok(max_err < 1e-6, "grad vs finite differences %s (max rel err %.3g at %s: %.10g vs %.10g)",
		   desc, max_err, worst, worst_an, worst_fd);
	if (!with_tnew)
		tap_ok(untouched_ok, "dTnew == NULL leaves gate/LN gradients untouched %s", desc);

	free(ps.all);
	free(gs.all);
	free(g0);
	free(T);
	free(mm);
	free(mg);
	free(A);
	free(B);
	free(tdt);
	free(Tn);
	free(rtdt);
	free(rTn);
	free(dT);
	free(cache);
	free(scratch);
}

/* forward is deterministic and independent of how rows are batched:
 * running the rows of two samples in one call equals two calls */
static void
run_split_case(void)
{
	int			R = 6,
				H = 3,
				L = 9,
				K = 4,
				G = 9;
	pset		ps;
	size_t		n = (size_t) R * L;
	double	   *T = malloc(sizeof(double) * n),
			   *t1 = malloc(sizeof(double) * n),
			   *n1 = malloc(sizeof(double) * n),
			   *t2 = malloc(sizeof(double) * n),
			   *n2 = malloc(sizeof(double) * n),
			   *cache = malloc(sizeof(double) * t4r_time_cache_size(R, L, G));
	double		d = 0;

	pset_init(&ps, R, H, L, K, G);
	for (size_t i = 0; i < ps.n; i++)
		ps.all[i] = 0.3 * nrand();
	for (size_t i = 0; i < n; i++)
		T[i] = nrand();
	t4r_time_fwd(&ps.p, R, H, L, K, G, 1e-5, T, NULL, NULL, t1, n1, cache);
	t4r_time_fwd(&ps.p, 3, H, L, K, G, 1e-5, T, NULL, NULL, t2, n2, cache);
	t4r_time_fwd(&ps.p, 3, H, L, K, G, 1e-5, T + 3 * L, NULL, NULL, t2 + 3 * L, n2 + 3 * L, cache);
	for (size_t i = 0; i < n; i++)
		d = fmax(d, fmax(fabs(t1[i] - t2[i]), fabs(n1[i] - n2[i])));
	tap_ok(d < 1e-13, "fwd of all rows == fwd of samples separately (max diff %.3g)", d);
	free(ps.all);
	free(T);
	free(t1);
	free(n1);
	free(t2);
	free(n2);
	free(cache);
}

/* kernel variant selector in timepath.c: 1 = baseline, 0 = automatic */
extern int	t4r_time_isa;

int
main(void)
{
	for (int isa = 1; isa >= 0; isa--)
	{
		t4r_time_isa = isa;
		tap_diag("kernels: %s", isa ? "baseline" : "automatic (AVX2+FMA where available)");
		/* R, H, L, K, G, eps, masks, with_tnew */
		for (int masks = 0; masks <= 1; masks++)
			for (int tn = 1; tn >= 0; tn--)
			{
				run_case(6, 2, 7, 3, 1, 1e-5, masks, tn);
				run_case(6, 2, 7, 3, 7, 1e-5, masks, tn);
				run_case(6, 3, 12, 4, 1, 1e-12, masks, tn);
				run_case(6, 3, 12, 4, 12, 1e-12, masks, tn);
			}
		run_case(5, 3, 12, 4, 12, 1e-5, 1, 1);	/* R not a multiple of H */
		run_case(4, 2, 2, 3, 2, 1e-5, 1, 1);	/* L < K */
		run_case(4, 2, 3, 4, 1, 1e-5, 1, 1);	/* L < K = 4 */
		run_case(6, 3, 21, 4, 21, 1e-5, 1, 1);	/* L past the 8-wide blocks */
		run_case(6, 3, 11, 5, 1, 1e-5, 1, 0);	/* K = 5 */
		run_split_case();
	}
	tap_diag("finite-difference steps shrunk %d times to avoid hardswish kinks", fd_shrinks);
	tap_diag("largest forward abs error %.3g, largest gradient rel error %.3g (all cases)",
			 overall_fwd_err, overall_grad_err);
	return tap_done();
}
