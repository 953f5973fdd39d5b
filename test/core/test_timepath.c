/*
 * test_timepath.c - float-build checks of the time path (timepath.c) at the
 * real size L = 200: forward against a plain double reference written here,
 * backward against directional finite differences of that reference, and a
 * micro-benchmark (printed, never asserted).
 *
 * Micro-benchmark, R = 256 rows (64 samples x 4 heads), L = 200, K = 4,
 * float (OpenBLAS, one thread): see the "# bench" lines this program prints
 * (--bench-only: benchmark only, more repetitions; --no-bench: tests only);
 * numbers measured while writing it are in the comment at the end of this
 * file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#define TAP_RNG_SEED 0x9E3779B97F4A7C15ULL
#include "tap.h"
#include "timepath.h"


/* parameters: float storage for the library, double views for the reference */
enum
{
	W1, B1, W2, B2, C1W, C1B, C2W, C2B, GW, GB, LNW, LNB, NPAR
};

typedef struct pset
{
	int			R,
				H,
				L,
				K,
				G;
	size_t		off[NPAR + 1];
	float	   *f;
	double	   *d;
	t4r_time_params p;
} pset;

static void
pset_init(pset *s, int R, int H, int L, int K, int G)
{
	size_t		cnt[NPAR] = {(size_t) L * L, L, (size_t) L * L, L, (size_t) H * K, H,
	(size_t) H * K, H, (size_t) G * L, G, L, L};

	memset(&s->p, 0, sizeof(s->p));
	s->R = R;
	s->H = H;
	s->L = L;
	s->K = K;
	s->G = G;
	s->off[0] = 0;
	for (int i = 0; i < NPAR; i++)
		s->off[i + 1] = s->off[i] + cnt[i];
	s->f = calloc(s->off[NPAR], sizeof(float));
	s->d = calloc(s->off[NPAR], sizeof(double));
	s->p.w1 = s->f + s->off[W1];
	s->p.b1 = s->f + s->off[B1];
	s->p.w2 = s->f + s->off[W2];
	s->p.b2 = s->f + s->off[B2];
	s->p.c1w = s->f + s->off[C1W];
	s->p.c1b = s->f + s->off[C1B];
	s->p.c2w = s->f + s->off[C2W];
	s->p.c2b = s->f + s->off[C2B];
	s->p.gw = s->f + s->off[GW];
	s->p.gb = s->f + s->off[GB];
	s->p.lnw = s->f + s->off[LNW];
	s->p.lnb = s->f + s->off[LNB];
}

static void
pset_free(pset *s)
{
	free(s->f);
	free(s->d);
}

static double
ref_sig(double x)
{
	return 1 / (1 + exp(-x));
}
static double
ref_hsw(double x)
{
	return x * fmin(fmax(x + 3, 0), 6) / 6;
}

/* plain double reference of docs/MODEL.md steps 3.3 / 3.7, per row and position */
static void
ref_fwd(const pset *ps, const double *P, double eps, const double *T, const double *mm,
		const double *mg, double *tdt, double *Tnew)
{
	int			R = ps->R,
				H = ps->H,
				L = ps->L,
				K = ps->K,
				G = ps->G;
	const double *w1 = P + ps->off[W1],
			   *b1 = P + ps->off[B1],
			   *w2 = P + ps->off[W2],
			   *b2 = P + ps->off[B2],
			   *c1w = P + ps->off[C1W],
			   *c1b = P + ps->off[C1B],
			   *c2w = P + ps->off[C2W],
			   *c2b = P + ps->off[C2B],
			   *gw = P + ps->off[GW],
			   *gb = P + ps->off[GB],
			   *lnw = P + ps->off[LNW],
			   *lnb = P + ps->off[LNB];
	double	   *u = malloc(sizeof(double) * L * 6),
			   *hh = u + L,
			   *q = u + 2 * L,
			   *r1 = u + 3 * L,
			   *x = u + 4 * L,
			   *gt = u + 5 * L;

	for (int r = 0; r < R; r++)
	{
		int			h = r % H;
		const double *t = T + (size_t) r * L;
		double	   *td = tdt + (size_t) r * L;

		for (int i = 0; i < L; i++)
			u[i] = t[i] * (mm ? mm[(size_t) r * L + i] : 1.0);
		for (int j = 0; j < L; j++)
		{
			double		a = b1[j];

			for (int i = 0; i < L; i++)
				a += w1[(size_t) j * L + i] * u[i];
			hh[j] = a * ref_sig(a);
		}
		for (int j = 0; j < L; j++)
		{
			double		sv = b2[j];

			for (int i = 0; i < L; i++)
				sv += w2[(size_t) j * L + i] * hh[i];
			q[j] = t[j] * sv;
		}
		for (int l = 0; l < L; l++)
		{
			double		a = c1b[h];

			for (int k = 0; k < K; k++)
				if (l - (K - 1) + k >= 0)
					a += c1w[h * K + k] * q[l - (K - 1) + k];
			r1[l] = ref_hsw(a);
		}
		for (int l = 0; l < L; l++)
		{
			double		a = c2b[h];

			for (int k = 0; k < K; k++)
				if (l - (K - 1) + k >= 0)
					a += c2w[h * K + k] * r1[l - (K - 1) + k];
			td[l] = ref_hsw(a);
		}
		if (!Tnew)
			continue;
		for (int gi = 0; gi < G; gi++)
		{
			double		z = gb[gi];

			for (int i = 0; i < L; i++)
				z += gw[(size_t) gi * L + i] * t[i] * (mg ? mg[(size_t) r * L + i] : 1.0);
			gt[gi] = ref_sig(z);
		}
		{
			double		mean = 0,
						var = 0;

			for (int l = 0; l < L; l++)
			{
				double		gv = G == 1 ? gt[0] : gt[l];

				x[l] = gv * t[l] + (1 - gv) * td[l];
				mean += x[l];
			}
			mean /= L;
			for (int l = 0; l < L; l++)
				var += (x[l] - mean) * (x[l] - mean);
			var /= L;
			for (int l = 0; l < L; l++)
				Tnew[(size_t) r * L + l] = (x[l] - mean) / sqrt(var + eps) * lnw[l] + lnb[l];
		}
	}
	free(u);
}

/* realistic time features: layer_norm_time of right-padded time differences
 * (td[n] = -ts[n-1] ~ -1e9 at the padding slot), copied to every head */
static void
make_T(double *T, int R, int H, int L)
{
	double	   *td = malloc(sizeof(double) * L);

	for (int r0 = 0; r0 < R; r0 += H)
	{
		int			n = 1 + (int) (urand() * L);
		double		ts = 1.0e9 + urand() * 1e8,
					mean = 0,
					var = 0;

		td[0] = 0;
		for (int l = 1; l < L; l++)
		{
			if (l < n)
			{
				double		d = floor(-log(urand() + 1e-12) * 3600 * 24);

				td[l] = d;
				ts += d;
			}
			else
				td[l] = (l == n) ? -ts : 0;
		}
		for (int l = 0; l < L; l++)
			mean += td[l];
		mean /= L;
		for (int l = 0; l < L; l++)
			var += (td[l] - mean) * (td[l] - mean);
		var /= L;
		for (int h = 0; h < H && r0 + h < R; h++)
			for (int l = 0; l < L; l++)
				T[(size_t) (r0 + h) * L + l] = (float) ((td[l] - mean) / sqrt(var + 1e-12));
	}
	free(td);
}

static void
case_float(int R, int H, int L, int K, int G, int masks)
{
	pset		ps,
				gs;
	size_t		n = (size_t) R * L,
				np;
	float	   *Tf = malloc(sizeof(float) * n),
			   *mmf = NULL,
			   *mgf = NULL,
			   *tdt = malloc(sizeof(float) * n),
			   *Tn = malloc(sizeof(float) * n),
			   *Af = malloc(sizeof(float) * n),
			   *Bf = malloc(sizeof(float) * n),
			   *dT = malloc(sizeof(float) * n),
			   *cache = malloc(sizeof(float) * t4r_time_cache_size(R, L, G)),
			   *scratch = malloc(sizeof(float) * t4r_time_scratch_size(R, L, G));
	double	   *T = malloc(sizeof(double) * n),
			   *mm = NULL,
			   *mg = NULL,
			   *rtdt = malloc(sizeof(double) * n),
			   *rTn = malloc(sizeof(double) * n),
			   *vT = malloc(sizeof(double) * n),
			   *Pd,
			   *vP;
	double		et = 0,
				en = 0,
				st = 0;
	char		desc[160];

	snprintf(desc, sizeof desc, "R=%d H=%d L=%d K=%d G=%d masks=%d", R, H, L, K, G, masks);
	pset_init(&ps, R, H, L, K, G);
	pset_init(&gs, R, H, L, K, G);
	np = ps.off[NPAR];
	/* weights: std 0.05 Linear-like (a bit above the 0.02 init), kaiming convs */
	for (size_t i = 0; i < np; i++)
		ps.f[i] = (float) (0.05 * nrand());
	for (int i = 0; i < H * K; i++)
	{
		ps.p.c1w[i] = (float) (sqrt(2.0 / K) * nrand());
		ps.p.c2w[i] = (float) (sqrt(2.0 / K) * nrand());
	}
	for (int l = 0; l < L; l++)
		ps.p.lnw[l] = (float) (1 + 0.1 * nrand());
	for (size_t i = 0; i < np; i++)
		ps.d[i] = ps.f[i];
	make_T(T, R, H, L);
	for (size_t i = 0; i < n; i++)
		Tf[i] = (float) T[i], T[i] = Tf[i];
	if (masks)
	{
		mmf = malloc(sizeof(float) * n);
		mgf = malloc(sizeof(float) * n);
		mm = malloc(sizeof(double) * n);
		mg = malloc(sizeof(double) * n);
		for (size_t i = 0; i < n; i++)
		{
			mm[i] = mmf[i] = urand() < 0.2 ? 0 : 1.25f;
			mg[i] = mgf[i] = urand() < 0.2 ? 0 : 1.25f;
		}
	}

	t4r_time_fwd(&ps.p, R, H, L, K, G, 1e-12, Tf, mmf, mgf, tdt, Tn, cache);
	ref_fwd(&ps, ps.d, 1e-12, T, mm, mg, rtdt, rTn);
	for (size_t i = 0; i < n; i++)
	{
		et = fmax(et, fabs(tdt[i] - rtdt[i]));
		en = fmax(en, fabs(Tn[i] - rTn[i]));
		st = fmax(st, fabs(rtdt[i]));
	}
	tap_ok(et <= 1e-5 * fmax(1, st) && en <= 1e-4,
		   "float fwd vs double reference %s (max abs err tdt %.3g (scale %.3g), Tnew %.3g)",
		   desc, et, st, en);

	/* backward: directional derivatives along random directions */
	for (size_t i = 0; i < n; i++)
	{
		Af[i] = (float) nrand();
		Bf[i] = (float) nrand();
	}
	t4r_time_bwd(&ps.p, &gs.p, R, H, L, K, G, 1e-12, Tf, mmf, mgf, cache, Af, Bf, dT, scratch);
	{
		double		an = 0,
					fd = 0,
					h = 1e-4,
					ant = 0,
					fdt = 0;
		static const double c[4] = {1, -8, 8, -1},
					o[4] = {-2, -1, 1, 2};
		double	   *Tp = malloc(sizeof(double) * n);

		Pd = malloc(sizeof(double) * np);
		vP = malloc(sizeof(double) * np);
		for (size_t i = 0; i < n; i++)
			vT[i] = nrand();
		for (size_t i = 0; i < np; i++)
			vP[i] = nrand() * fmax(fabs(ps.d[i]), 0.01);
		/* parameters direction */
		for (size_t i = 0; i < np; i++)
			an += gs.f[i] * vP[i];
		for (size_t i = 0; i < n; i++)
			ant += dT[i] * vT[i];
		for (int s = 0; s < 4; s++)
		{
			double		J = 0,
						Jt = 0;

			for (size_t i = 0; i < np; i++)
				Pd[i] = ps.d[i] + o[s] * h * vP[i];
			ref_fwd(&ps, Pd, 1e-12, T, mm, mg, rtdt, rTn);
			for (size_t i = 0; i < n; i++)
				J += Af[i] * rtdt[i] + Bf[i] * rTn[i];
			for (size_t i = 0; i < n; i++)
				Tp[i] = T[i] + o[s] * h * vT[i];
			ref_fwd(&ps, ps.d, 1e-12, Tp, mm, mg, rtdt, rTn);
			for (size_t i = 0; i < n; i++)
				Jt += Af[i] * rtdt[i] + Bf[i] * rTn[i];
			fd += c[s] * J;
			fdt += c[s] * Jt;
		}
		fd /= 12 * h;
		fdt /= 12 * h;
		tap_ok(fabs(an - fd) <= 1e-3 * fabs(fd) + 1e-4,
			   "float param grads . v vs finite differences %s (%.8g vs %.8g)", desc, an, fd);
		tap_ok(fabs(ant - fdt) <= 1e-3 * fabs(fdt) + 1e-4,
			   "float dT . v vs finite differences %s (%.8g vs %.8g)", desc, ant, fdt);
		free(Tp);
	}

	pset_free(&ps);
	pset_free(&gs);
	free(Tf);
	free(mmf);
	free(mgf);
	free(tdt);
	free(Tn);
	free(Af);
	free(Bf);
	free(dT);
	free(cache);
	free(scratch);
	free(T);
	free(mm);
	free(mg);
	free(rtdt);
	free(rTn);
	free(vT);
	free(Pd);
	free(vP);
}

static int	bench_iters = 30;

/* kernel variant selector in timepath.c: 1 = baseline, 0 = automatic */
extern int	t4r_time_isa;

/*
 * The float sigmoid of timepath.c against double: with W1 = 0 the cached
 * sigmoid(a1) block (offset 2 R L of the cache, see timepath.c) holds
 * sigmoid(b1).  Also NaN and infinities.
 */
static void
case_sigmoid(void)
{
	int			R = 1,
				H = 1,
				L = 4096,
				K = 4,
				G = 1;
	pset		ps;
	float	   *T = calloc(L, sizeof(float)),
			   *tdt = malloc(sizeof(float) * L),
			   *cache = malloc(sizeof(float) * t4r_time_cache_size(R, L, G));
	const float *sg;
	double		worst = 0,
				at = 0;
	int			special_ok;

	pset_init(&ps, R, H, L, K, G);
	for (int l = 0; l < L - 3; l++)
		ps.p.b1[l] = (float) (-87.0 + 174.0 * l / (L - 4)) + (float) (1e-3 * nrand());
	ps.p.b1[L - 3] = NAN;
	ps.p.b1[L - 2] = INFINITY;
	ps.p.b1[L - 1] = -INFINITY;
	t4r_time_fwd(&ps.p, R, H, L, K, G, 1e-12, T, NULL, NULL, tdt, NULL, cache);
	sg = cache + 2 * (size_t) R * L;
	for (int l = 0; l < L - 3; l++)
	{
		double		x = ps.p.b1[l];
		double		ref = 1 / (1 + exp(-x));
		double		e = fabs(sg[l] - ref) / ref;

		if (e > worst)
			worst = e, at = x;
	}
	special_ok = isnan(sg[L - 3]) && sg[L - 2] == 1 && sg[L - 1] >= 0 && sg[L - 1] < 1e-37;
	tap_ok(worst < 1e-6 && special_ok,
		   "float sigmoid vs double on [-87, 87]: max rel err %.3g (at %.4g); NaN -> %g, +inf -> %g, -inf -> %g",
		   worst, at, sg[L - 3], sg[L - 2], sg[L - 1]);
	pset_free(&ps);
	free(T);
	free(tdt);
	free(cache);
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static void
bench(int R, int H, int L, int K, int G)
{
	pset		ps,
				gs;
	size_t		n = (size_t) R * L;
	float	   *T = malloc(sizeof(float) * n),
			   *mm = malloc(sizeof(float) * n),
			   *mg = malloc(sizeof(float) * n),
			   *tdt = malloc(sizeof(float) * n),
			   *Tn = malloc(sizeof(float) * n),
			   *dT = malloc(sizeof(float) * n),
			   *cache = malloc(sizeof(float) * t4r_time_cache_size(R, L, G)),
			   *scratch = malloc(sizeof(float) * t4r_time_scratch_size(R, L, G));
	double	   *Td = malloc(sizeof(double) * n);
	double		tf = 1e30,
				tb = 1e30;

	pset_init(&ps, R, H, L, K, G);
	pset_init(&gs, R, H, L, K, G);
	for (size_t i = 0; i < ps.off[NPAR]; i++)
		ps.f[i] = (float) (0.02 * nrand());
	make_T(Td, R, H, L);
	for (size_t i = 0; i < n; i++)
	{
		T[i] = (float) Td[i];
		mm[i] = urand() < 0.2 ? 0 : 1.25f;
		mg[i] = urand() < 0.2 ? 0 : 1.25f;
	}
	for (int it = 0; it < bench_iters; it++)
	{
		double		t0 = now_us(),
					t1,
					t2;

		t4r_time_fwd(&ps.p, R, H, L, K, G, 1e-12, T, mm, mg, tdt, Tn, cache);
		t1 = now_us();
		t4r_time_bwd(&ps.p, &gs.p, R, H, L, K, G, 1e-12, T, mm, mg, cache, T, Tn, dT, scratch);
		t2 = now_us();
		tf = fmin(tf, t1 - t0);
		tb = fmin(tb, t2 - t1);
	}
	tap_diag("bench R=%d L=%d H=%d K=%d G=%d (masks on): fwd %.0f us, bwd %.0f us (best of %d)",
			 R, L, H, K, G, tf, tb, bench_iters);
	if (G == 1)
	{
		/* the floor: one of the [R, L] x [L, L] products (fwd does 2, bwd 4;
		 * with G == L one and two more) */
		double		tg = 1e30;

		for (int it = 0; it < bench_iters; it++)
		{
			double		t0 = now_us();

			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, L, L, 1, T, L,
						ps.p.w1, L, 0, tdt, L);
			tg = fmin(tg, now_us() - t0);
		}
		tap_diag("bench one sgemm [%d x %d] x [%d x %d]^T: %.0f us", R, L, L, L, tg);
	}
	pset_free(&ps);
	pset_free(&gs);
	free(T);
	free(mm);
	free(mg);
	free(tdt);
	free(Tn);
	free(dT);
	free(cache);
	free(scratch);
	free(Td);
}

int
main(int argc, char **argv)
{
	int			bench_only = argc > 1 && strcmp(argv[1], "--bench-only") == 0;

	if (!bench_only)
		for (int isa = 1; isa >= 0; isa--)
		{
			t4r_time_isa = isa;
			tap_diag("kernels: %s", isa ? "baseline" : "automatic (AVX2+FMA where available)");
			case_sigmoid();
			case_float(8, 4, 200, 4, 1, 0);
			case_float(8, 4, 200, 4, 1, 1);
			case_float(8, 4, 200, 4, 200, 1);
			case_float(8, 4, 50, 4, 50, 0);
		}
	if (!(argc > 1 && strcmp(argv[1], "--no-bench") == 0))
	{
		/* one thread, as the trainer runs it (one micro-batch per thread) */
		openblas_set_num_threads(1);
		if (bench_only)
			bench_iters = 300;
		for (int isa = 1; isa >= 0; isa--)
		{
			t4r_time_isa = isa;
			tap_diag("kernels: %s", isa ? "baseline" : "automatic");
			bench(256, 4, 200, 4, 1);
			bench(256, 4, 200, 4, 200);
		}
	}
	return tap_done();
}

/*
 * Measured with --bench-only (best of 300; one OpenBLAS thread as in the
 * trainer; R = 256 rows = 64 samples x 4 heads, L = 200, K = 4, float, masks
 * on; 2-core Xeon @ 2.5 GHz development VM shared with other builds, so
 * +-10%):
 *                          G = 1 fwd / bwd     G = L fwd / bwd
 *   first version           1650 / 2650 us      2330 / 3130 us
 *   baseline kernels        1000 / 1400 us      1450 / 2100 us
 *   AVX2+FMA kernels         700 / 1200 us      1000 / 1650 us
 * One [256 x 200] x [200 x 200] sgemm takes about 205 us, so the GEMMs alone
 * are about 410 / 820 us (G = 1) and 615 / 1230 us (G = L).
 */
