/*
 * bench.c - standalone benchmark of the TiM4Rec core (no database).
 *
 *   build/bench [--quick] [--threads 1,2] [--steps N] [--csv FILE]
 *               [--epochs E] [--preset movielens|amazon] [--results PATH]
 *               [--no-append]
 *
 * Figures: the machine's sgemm peak (a large square product and the
 * model's K = 64 shape), training throughput of the movielens preset with
 * full-length sequences and with MovieLens-1M-like prefix lengths, of the
 * amazon preset with Beauty-like prefixes, useful GFLOP/s (formula below),
 * peak RSS, inference latency per sequence, building a 1M-interaction data
 * set, leave-one-out evaluation of 6,040 users, thread scaling; optionally a
 * couple of epochs of t4r_fit on a CSV user_id,item_id,ts.  Prints one
 * table (figure, value, target, ratio; ratio >= 1 means the target is met)
 * and appends it, dated with the machine, to test/bench/RESULTS.md.
 *
 * Useful FLOPs per training sample with real input length n (multiply-add =
 * 2 FLOPs; only the work the output needs; element-wise work, norms and the
 * softmax not counted), r_i = n for layers before the last, 1 for the last:
 *   per layer i:  in_proj   2 n d (2Di+2N+H)
 *                 conv      2 n (Di+2N) K
 *                 SSD       3 n Di N (state updates) + 2 r_i Di N (read-out)
 *                 time path 4 H L^2 (MLP, two L x L) + 4 H L K (two convs)
 *                           + 2 H G L (gate; not in the last layer)  [is_time]
 *                 out_proj  2 r_i Di d
 *                 FFN       16 r_i d^2
 *   scoring       2 V d
 *   training = 3 x forward (backward counted as twice the forward).
 * Environment: BENCH_QUICK=1 is --quick; BENCH_CSV, BENCH_EPOCHS,
 * BENCH_THREADS, BENCH_STEPS as the options.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "tim4rec.h"
#include "ops.h"				/* t4r_rng, cblas.h (OpenBLAS) */
#include "bench_flops.h"		/* fwd_flops, sgemm_gflops */
#include "../quality/qcsv.h"		/* qcsv_read */

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static double
quantile(double *v, int n, double q)
{
	int			i;

	qsort(v, n, sizeof(double), bench_cmp_dbl);
	i = (int) ceil(q * n) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), bench_cmp_dbl);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double
peak_rss_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024.0;	/* KiB on Linux */
}

static void
loadavg(char *buf, size_t len)
{
	FILE	   *f = fopen("/proc/loadavg", "r");
	double		a = -1,
				b = -1,
				c = -1;

	if (f)
	{
		if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
			a = b = c = -1;
		fclose(f);
	}
	snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
}

static void
die(const char *what, int rc, const char *err)
{
	fprintf(stderr, "bench: %s failed: %s%s%s\n", what, t4r_strerror(rc),
			err && *err ? ": " : "", err ? err : "");
	exit(1);
}

/* ------------------------------------------------------------------ */
/* result table                                                        */
/* ------------------------------------------------------------------ */
typedef struct row
{
	char		figure[128];
	char		value[40];
	char		target[40];
	char		ratio[16];
} row;

static row	rows[64];
static int	nrows = 0;

/* higher_better: ratio = value / target, else target / value; target <= 0:
 * no target */
static void
add_row(const char *figure, double value, const char *fmt, double target,
		int higher_better, const char *tfmt)
{
	row		   *r = &rows[nrows++];

	snprintf(r->figure, sizeof(r->figure), "%s", figure);
	snprintf(r->value, sizeof(r->value), fmt, value);
	if (target > 0)
	{
		snprintf(r->target, sizeof(r->target), tfmt, target);
		snprintf(r->ratio, sizeof(r->ratio), "%.2f",
				 higher_better ? value / target : target / value);
	}
	else
	{
		snprintf(r->target, sizeof(r->target), "-");
		snprintf(r->ratio, sizeof(r->ratio), "-");
	}
	printf("  %-66s %10s   target %-6s ratio %s\n", r->figure, r->value, r->target, r->ratio);
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* synthetic data                                                      */
/* ------------------------------------------------------------------ */
typedef struct synth_spec
{
	int			users;
	int			items;			/* distinct items (V - 1) */
	int			min_len;
	double		ln_median;		/* median of the log-normal excess over min_len */
	double		ln_sigma;
	int			max_len;
	uint64_t	seed;
} synth_spec;

/* interactions with user lengths min_len + LogNormal, clipped to max_len;
 * every item appears (the first `items` interactions cycle through them),
 * the rest drawn with a mild popularity skew */
static t4r_dataset *
synth_dataset(const synth_spec *sp, double *build_seconds, size_t *n_out)
{
	t4r_rng		r;
	int		   *len = malloc(sp->users * sizeof(int));
	size_t		n = 0,
				k = 0;
	int64_t    *u,
			   *it;
	double	   *ts;
	t4r_dataset *ds = NULL;
	char		err[256];
	int			rc;
	double		t0;

	t4r_rng_seed(&r, sp->seed);
	for (int i = 0; i < sp->users; i++)
	{
		double		x = sp->ln_median * exp(sp->ln_sigma * t4r_rng_normal(&r));
		long		l = sp->min_len + lround(x);

		len[i] = (int) (l > sp->max_len ? sp->max_len : l);
		n += len[i];
	}
	u = malloc(n * sizeof(int64_t));
	it = malloc(n * sizeof(int64_t));
	ts = malloc(n * sizeof(double));
	for (int i = 0; i < sp->users; i++)
	{
		double		t = 9.5e8 + 3e7 * t4r_rng_u01(&r);

		for (int j = 0; j < len[i]; j++, k++)
		{
			u[k] = i + 1;
			if (k < (size_t) sp->items)
				it[k] = (int64_t) k + 1;
			else
				it[k] = 1 + (int64_t) (sp->items * pow(t4r_rng_u01(&r), 1.5));
			if (it[k] > sp->items)
				it[k] = sp->items;
			/* gaps: a mix of seconds (sessions) and days */
			t += t4r_rng_u01(&r) < 0.7 ? floor(600 * t4r_rng_u01(&r)) : floor(3e5 * t4r_rng_u01(&r));
			ts[k] = t;
		}
	}
	t0 = bench_clock(CLOCK_MONOTONIC);
	rc = t4r_dataset_build(u, it, ts, NULL, n, 1, 1, &ds, err, sizeof(err));
	*build_seconds = bench_clock(CLOCK_MONOTONIC) - t0;
	if (rc != T4R_OK)
		die("t4r_dataset_build", rc, err);
	*n_out = n;
	free(len);
	free(u);
	free(it);
	free(ts);
	return ds;
}

static void
describe_lengths(const t4r_dataset *ds, const char *name, int L)
{
	int64_t		nu = ds->n_users;
	double	   *m = malloc(nu * sizeof(double));
	double		sum = 0,
				psum = 0;
	int64_t		ns = 0;

	for (int64_t u = 0; u < nu; u++)
	{
		int64_t		mu = ds->seq_off[u + 1] - ds->seq_off[u];
		int64_t		tl = mu >= 3 ? mu - 2 : mu;

		m[u] = (double) mu;
		sum += mu;
		for (int64_t j = 1; j < tl; j++)
		{
			psum += j < L ? j : L;
			ns++;
		}
	}
	qsort(m, nu, sizeof(double), bench_cmp_dbl);
	printf("# %s: %lld users, V=%d, %zu interactions; user length min %.0f median %.0f mean %.1f max %.0f; "
		   "%lld training samples, mean input length %.1f (cap L=%d)\n",
		   name, (long long) nu, ds->n_items, ds->n_interactions, m[0], m[nu / 2], sum / nu, m[nu - 1],
		   (long long) ns, ns ? psum / ns : 0, L);
	free(m);
}

/* every training sample of ds (as t4r_fit forms them), shuffled */
static t4r_sample *
all_samples(const t4r_dataset *ds, int L, int64_t *count, uint64_t seed)
{
	int64_t		S = ds->n_train_samples,
				k = 0;
	t4r_sample *s = malloc((size_t) S * sizeof(t4r_sample));
	t4r_rng		r;

	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					mu = ds->seq_off[u + 1] - off,
					tl = mu >= 3 ? mu - 2 : mu;

		for (int64_t j = 1; j < tl; j++)
		{
			int			n = (int) (j < L ? j : L);
			int64_t		p = off + j;

			s[k].items = ds->seq_items + p - n;
			s[k].ts = ds->seq_ts + p - n;
			s[k].n = n;
			s[k].target = ds->seq_items[p];
			k++;
		}
	}
	t4r_rng_seed(&r, seed);
	for (int64_t i = k - 1; i > 0; i--)
	{
		int64_t		j = (int64_t) t4r_rng_below(&r, (uint64_t) i + 1);
		t4r_sample	t = s[i];

		s[i] = s[j];
		s[j] = t;
	}
	*count = k;
	return s;
}

/* ------------------------------------------------------------------ */
/* training throughput                                                 */
/* ------------------------------------------------------------------ */
typedef struct train_result
{
	double		samples_per_s;
	double		gflops;			/* useful */
	double		mean_n;
	int			micro_batch;
	double		loss;
} train_result;

static t4r_model *
make_model(const char *preset, int V, int batch)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];
	int			rc;

	t4r_config_preset(&c, preset);
	c.n_items = V;
	c.batch_size = batch;
	rc = t4r_model_create(&c, &m, err, sizeof(err));
	if (rc != T4R_OK)
		die("t4r_model_create", rc, err);
	t4r_model_init(m, c.seed);
	return m;
}

/* samples/s over `steps` batches of `batch` taken from s[] (cycling), after
 * one warm-up step; median of the per-step rates */
static train_result
train_throughput(t4r_model *m, const t4r_sample *s, int64_t ns, int batch, int steps, int threads)
{
	t4r_trainer *tr = NULL;
	t4r_train_opts o;
	train_result res;
	char		err[256] = "";
	double	   *rate = malloc(steps * sizeof(double));
	double	   *gf = malloc(steps * sizeof(double));
	double		nsum = 0;
	int64_t		pos = 0;
	int			rc;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	o.threads = threads;
	t4r_trainer_estimate(&m->cfg, &o, NULL, &res.micro_batch);
	rc = t4r_trainer_create(m, &o, &tr, err, sizeof(err));
	if (rc != T4R_OK)
		die("t4r_trainer_create", rc, err);
	for (int st = -1; st < steps; st++)
	{
		t4r_sample *b = malloc(batch * sizeof(t4r_sample));
		double		fl = 0,
					t0,
					dt,
					loss = 0;

		for (int i = 0; i < batch; i++)
		{
			b[i] = s[pos];
			pos = (pos + 1) % ns;
			fl += 3.0 * fwd_flops(&m->dims, b[i].n < m->dims.L ? b[i].n : m->dims.L);
			if (st >= 0)
				nsum += b[i].n < m->dims.L ? b[i].n : m->dims.L;
		}
		t0 = bench_clock(CLOCK_MONOTONIC);
		rc = t4r_trainer_step(tr, b, batch, &loss);
		dt = bench_clock(CLOCK_MONOTONIC) - t0;
		if (rc != T4R_OK)
			die("t4r_trainer_step", rc, NULL);
		if (st >= 0)
		{
			rate[st] = batch / dt;
			gf[st] = fl / dt / 1e9;
		}
		res.loss = loss;
		free(b);
	}
	res.samples_per_s = median(rate, steps);
	res.gflops = median(gf, steps);
	res.mean_n = nsum / ((double) steps * batch);
	t4r_trainer_free(tr);
	free(rate);
	free(gf);
	return res;
}

typedef struct csv_log
{
	int64_t		steps_per_epoch;
	double		t_epoch0;
} csv_log;

static void
csv_progress(void *ud, int epoch, int64_t step, int64_t spe, double loss)
{
	csv_log    *c = ud;

	c->steps_per_epoch = spe;
	if (step % 10 == 0 || step == spe)
	{
		fprintf(stderr, "\r  epoch %d step %lld/%lld loss %.4f   ", epoch, (long long) step,
				(long long) spe, loss);
		if (step == spe)
			fprintf(stderr, "\n");
	}
}

static void
csv_epoch(void *ud, const t4r_epoch_info *info)
{
	printf("#   epoch %d: loss %.4f, valid NDCG@10 %.4f, %.1f s (best epoch %d)\n", info->epoch,
		   info->loss, info->valid_ndcg10, info->seconds, info->best_epoch);
	fflush(stdout);
}

static void
csv_run(const char *path, const char *preset, int epochs, int threads)
{
	int64_t    *u,
			   *it,
			   *ord;
	double	   *ts,
				t0,
				tb;
	size_t		n;
	t4r_dataset *ds = NULL;
	t4r_model  *m;
	t4r_fit_opts o;
	t4r_fit_result res;
	csv_log		cl;
	char		err[256] = "",
				fig[96];
	int			rc,
				ks[3] = {10, 20, 50};
	double		hr[3],
				nd[3],
				mr[3],
				phr[3],
				pnd[3],
				pmr[3];

	if (qcsv_read(path, &u, &it, &ts, &ord, &n) != 0)
	{
		fprintf(stderr, "bench: cannot read %s\n", path);
		exit(1);
	}
	free(ord);					/* ties by item id, as the benchmark always did */
	t0 = bench_clock(CLOCK_MONOTONIC);
	rc = t4r_dataset_build(u, it, ts, NULL, n, 5, 5, &ds, err, sizeof(err));
	tb = bench_clock(CLOCK_MONOTONIC) - t0;
	free(u);
	free(it);
	free(ts);
	if (rc != T4R_OK)
		die("t4r_dataset_build", rc, err);
	printf("# CSV %s: %zu rows -> %lld users, V=%d, %zu interactions after 5-core, built in %.3f s\n",
		   path, n, (long long) ds->n_users, ds->n_items, ds->n_interactions, tb);
	describe_lengths(ds, "CSV", strcmp(preset, "amazon") == 0 ? 50 : 200);
	m = make_model(preset, ds->n_items, 2048);
	memset(&o, 0, sizeof(o));
	memset(&cl, 0, sizeof(cl));
	o.train.threads = threads;
	o.epochs = epochs;
	o.patience = epochs;
	o.progress = csv_progress;
	o.epoch_done = csv_epoch;
	o.ud = &cl;
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	if (rc != T4R_OK)
		die("t4r_fit", rc, err);
	t4r_evaluate(m, ds, T4R_SPLIT_TEST, ks, 3, threads, NULL, NULL, hr, nd, mr);
	t4r_evaluate(NULL, ds, T4R_SPLIT_TEST, ks, 3, threads, NULL, NULL, phr, pnd, pmr);
	printf("#   test after %d epochs: HR@10 %.4f NDCG@10 %.4f MRR@10 %.4f | HR@20 %.4f NDCG@20 %.4f | HR@50 %.4f NDCG@50 %.4f\n",
		   res.epochs_run, hr[0], nd[0], mr[0], hr[1], nd[1], hr[2], nd[2]);
	printf("#   most popular:      HR@10 %.4f NDCG@10 %.4f MRR@10 %.4f\n", phr[0], pnd[0], pmr[0]);
	snprintf(fig, sizeof(fig), "CSV fit (%s preset, %d thr): samples/s incl. validation", preset, threads);
	add_row(fig, res.train_samples * (double) res.epochs_run / res.seconds, "%.0f", 0, 1, "");
	snprintf(fig, sizeof(fig), "CSV after %d epochs: test NDCG@10 (most popular %.4f)", res.epochs_run, pnd[0]);
	add_row(fig, nd[0], "%.4f", 0, 1, "");
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */
static void
cpu_model(char *buf, size_t len)
{
	FILE	   *f = fopen("/proc/cpuinfo", "r");
	char		line[512];

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "model name", 10) == 0)
		{
			char	   *p = strchr(line, ':');

			if (p)
			{
				p++;
				while (*p == ' ')
					p++;
				p[strcspn(p, "\n")] = 0;
				snprintf(buf, len, "%s", p);
			}
			break;
		}
	fclose(f);
}

int
main(int argc, char **argv)
{
	int			quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK")) != 0;
	const char *csv = getenv("BENCH_CSV");
	const char *preset = "movielens";
	const char *results = "test/bench/RESULTS.md";
	int			append = 1;
	int			epochs = getenv("BENCH_EPOCHS") ? atoi(getenv("BENCH_EPOCHS")) : 2;
	int			steps = getenv("BENCH_STEPS") ? atoi(getenv("BENCH_STEPS")) : 0;
	int			thr[4] = {1, 2},
				nthr = 2;
	const char *thr_env = getenv("BENCH_THREADS");
	int			maxthr;
	char		cpu[256],
				fig[128],
				load0[64],
				load1[64];
	struct utsname un;
	time_t		tnow = time(NULL);
	char		date[64];
	double		t_start = bench_clock(CLOCK_MONOTONIC);

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
			csv = argv[++i];
		else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
			epochs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
			preset = argv[++i];
		else if (strcmp(argv[i], "--results") == 0 && i + 1 < argc)
			results = argv[++i];
		else if (strcmp(argv[i], "--no-append") == 0)
			append = 0;
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			thr_env = argv[++i];
		else
		{
			fprintf(stderr, "usage: %s [--quick] [--threads 1,2] [--steps N] [--csv FILE] [--epochs E] "
					"[--preset movielens|amazon] [--results PATH] [--no-append]\n", argv[0]);
			return 2;
		}
	}
	if (thr_env && *thr_env)
	{
		const char *p = thr_env;

		nthr = 0;
		while (*p && nthr < 4)
		{
			thr[nthr] = atoi(p);
			if (thr[nthr] >= 1)
				nthr++;
			p += strcspn(p, ",");
			if (*p == ',')
				p++;
		}
		if (nthr == 0)
		{
			thr[0] = 1;
			nthr = 1;
		}
	}
	maxthr = thr[0];
	for (int i = 1; i < nthr; i++)
		if (thr[i] > maxthr)
			maxthr = thr[i];
	if (steps <= 0)
		steps = quick ? 2 : 5;

	cpu_model(cpu, sizeof(cpu));
	loadavg(load0, sizeof(load0));
	uname(&un);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&tnow));
	printf("# tim4rec bench, %s, %s, %s, threads %d..%d, %s mode\n", date, un.machine, cpu, thr[0],
		   maxthr, quick ? "quick" : "full");
	printf("# useful FLOPs/sample (training = 3 x forward): per layer 2n d(2Di+2N+H) + 2n(Di+2N)K + 3n Di N + 2r Di N"
		   " + [4H L^2 + 4H L K + 2H G L (not last)] + 2r Di d + 16r d^2, r = n (last layer: 1); + 2V d\n");

	/* ---- sgemm peak ---- */
	double		peak_sq[8] = {0},
				peak_k64[8] = {0};

	for (int i = 0; i < nthr; i++)
	{
		int			T = thr[i];

		peak_sq[i] = sgemm_gflops(quick ? 1024 : 2048, quick ? 1024 : 2048, quick ? 1024 : 2048, 0, T,
								  quick ? 3 : 7);
		peak_k64[i] = sgemm_gflops(16384, 324, 64, 1, T, quick ? 3 : 9);
		snprintf(fig, sizeof(fig), "sgemm peak, %d^3 (GFLOP/s, %d thr)", quick ? 1024 : 2048, T);
		add_row(fig, peak_sq[i], "%.1f", 0, 1, "");
		snprintf(fig, sizeof(fig), "sgemm, model shape 16384x324x64 (GFLOP/s, %d thr)", T);
		add_row(fig, peak_k64[i], "%.1f", 0, 1, "");
	}
	openblas_set_num_threads(1);

	/* ---- data sets ---- */
	synth_spec	ml = {6040, 3706, 20, 76.0, 1.137, 2314, 11};
	synth_spec	am = {22363, 12101, 5, 1.0, 1.647, 200, 12};
	double		tb_ml,
				tb_am;
	size_t		n_ml,
				n_am;
	t4r_dataset *dml = synth_dataset(&ml, &tb_ml, &n_ml);
	t4r_dataset *dam = synth_dataset(&am, &tb_am, &n_am);

	describe_lengths(dml, "ML-1M-like", 200);
	describe_lengths(dam, "Beauty-like", 50);
	snprintf(fig, sizeof(fig), "dataset build, %zu interactions (s)", n_ml);
	add_row(fig, tb_ml, "%.3f", 1.0, 0, "%.1f");

	/* ---- training ---- */
	int			batch = quick ? 256 : 2048;
	t4r_model  *mml = make_model("movielens", dml->n_items, batch);
	t4r_model  *mam = make_model("amazon", dam->n_items, batch);
	int			L = mml->dims.L;
	int64_t		nfull = 4096,
				nml,
				nam;
	int32_t    *fitems = malloc((nfull + L) * sizeof(int32_t));
	double	   *fts = malloc((nfull + L) * sizeof(double));
	t4r_sample *full = malloc(nfull * sizeof(t4r_sample));
	t4r_sample *sml = all_samples(dml, L, &nml, 5);
	t4r_sample *sam = all_samples(dam, mam->dims.L, &nam, 6);
	t4r_rng		r;
	double		sps_full[8] = {0};

	t4r_rng_seed(&r, 3);
	{
		double		t = 9.7e8;

		for (int64_t i = 0; i < nfull + L; i++)
		{
			fitems[i] = 1 + (int32_t) t4r_rng_below(&r, (uint64_t) dml->n_items - 1);
			t += floor(4e4 * t4r_rng_u01(&r));
			fts[i] = t;
		}
	}
	for (int64_t i = 0; i < nfull; i++)
	{
		full[i].items = fitems + i;
		full[i].ts = fts + i;
		full[i].n = L;
		full[i].target = fitems[i + L];
	}
	printf("# training: batch %d, median of %d steps after 1 warm-up step; useful FLOPs/sample at n=L: %.1f MFLOP (movielens), "
		   "%.1f MFLOP (amazon, n=L)\n", batch, steps, 3 * fwd_flops(&mml->dims, L) / 1e6,
		   3 * fwd_flops(&mam->dims, mam->dims.L) / 1e6);
	for (int i = 0; i < nthr; i++)
	{
		int			T = thr[i];
		train_result a;
		double		again;

		/* the peak again right before this block: on a shared machine the
		 * ratio uses the better of the two measurements */
		again = sgemm_gflops(quick ? 1024 : 2048, quick ? 1024 : 2048, quick ? 1024 : 2048, 0, T, 3);
		openblas_set_num_threads(1);
		if (again > peak_sq[i])
		{
			printf("#   %d-thr sgemm peak re-measured: %.1f GFLOP/s (used for the ratios below)\n", T, again);
			peak_sq[i] = again;
		}
		a = train_throughput(mml, full, nfull, batch, steps, T);
		train_result b,
					c;

		sps_full[i] = a.samples_per_s;
		snprintf(fig, sizeof(fig), "train movielens L=200 full length (samples/s, %d thr)", T);
		add_row(fig, a.samples_per_s, "%.1f", 350, 1, "%.0f");
		snprintf(fig, sizeof(fig), "  useful GFLOP/s vs 30%% of %d-thr sgemm peak", T);
		add_row(fig, a.gflops, "%.1f", 0.3 * peak_sq[i], 1, "%.1f");
		b = train_throughput(mml, sml, nml, batch, steps, T);
		snprintf(fig, sizeof(fig), "train movielens ML-1M prefixes, mean n %.0f (samples/s, %d thr)", b.mean_n, T);
		add_row(fig, b.samples_per_s, "%.1f", 600, 1, "%.0f");
		snprintf(fig, sizeof(fig), "  => one ML-1M-like epoch, %lld samples, training only (s, %d thr)", (long long) nml, T);
		add_row(fig, nml / b.samples_per_s, "%.0f", 0, 0, "");
		snprintf(fig, sizeof(fig), "  useful GFLOP/s vs 30%% of %d-thr sgemm peak", T);
		add_row(fig, b.gflops, "%.1f", 0.3 * peak_sq[i], 1, "%.1f");
		c = train_throughput(mam, sam, nam, batch, steps, T);
		snprintf(fig, sizeof(fig), "train amazon L=50 Beauty prefixes, mean n %.1f (samples/s, %d thr)", c.mean_n, T);
		add_row(fig, c.samples_per_s, "%.0f", 5000, 1, "%.0f");
		snprintf(fig, sizeof(fig), "  useful GFLOP/s vs 30%% of %d-thr sgemm peak", T);
		add_row(fig, c.gflops, "%.1f", 0.3 * peak_sq[i], 1, "%.1f");
		printf("#   (%d thr: micro-batch %d movielens, %d amazon; last losses %.3f %.3f %.3f)\n", T,
			   a.micro_batch, c.micro_batch, a.loss, b.loss, c.loss);
	}
	for (int i = 1; i < nthr; i++)
		if (sps_full[0] > 0)
		{
			snprintf(fig, sizeof(fig), "thread scaling, movielens full length, %d thr vs %d thr", thr[i], thr[0]);
			add_row(fig, sps_full[i] / sps_full[0], "%.2fx", 0, 1, "");
		}

	/* ---- inference latency ---- */
	{
		t4r_infer_ctx *ctx = NULL;
		int			calls = quick ? 300 : 1000;
		double	   *lat = malloc(calls * sizeof(double));
		t4r_real   *hid = malloc(mml->dims.d * sizeof(t4r_real));
		t4r_real   *sc = malloc((size_t) mml->dims.V * sizeof(t4r_real));
		int32_t		top[10];
		int			rc;

		openblas_set_num_threads(1);
		rc = t4r_infer_ctx_create(mml, &ctx);
		if (rc != T4R_OK)
			die("t4r_infer_ctx_create", rc, NULL);
		for (int i = -20; i < calls; i++)
		{
			int64_t		o = (int64_t) t4r_rng_below(&r, (uint64_t) nfull);
			double		t0 = bench_clock(CLOCK_MONOTONIC);

			rc = t4r_infer(ctx, fitems + o, fts + o, L, hid, sc);
			if (rc == T4R_OK)
				rc = t4r_topk(sc, mml->dims.V, 10, NULL, top, NULL) == 10 ? T4R_OK : T4R_EINVAL;
			if (rc != T4R_OK)
				die("t4r_infer", rc, NULL);
			if (i >= 0)
				lat[i] = (bench_clock(CLOCK_MONOTONIC) - t0) * 1e3;
		}
		add_row("inference L=200 V=3707 + top-10, p50 (ms, 1 thr)", quantile(lat, calls, 0.5), "%.3f", 1.0, 0, "%.0f");
		add_row("inference L=200 V=3707 + top-10, p99 (ms, 1 thr)", quantile(lat, calls, 0.99), "%.3f", 3.0, 0, "%.0f");
		t4r_infer_ctx_free(ctx);
		free(lat);
		free(hid);
		free(sc);
	}
	/* ---- leave-one-out evaluation of all users (bulk recommendation) ---- */
	{
		int			ks[3] = {10, 20, 50};
		double		hr[3],
					nd[3],
					t0 = bench_clock(CLOCK_MONOTONIC);
		int			rc = t4r_evaluate(mml, dml, T4R_SPLIT_TEST, ks, 3, maxthr, NULL, NULL, hr, nd, NULL);

		if (rc != T4R_OK)
			die("t4r_evaluate", rc, NULL);
		snprintf(fig, sizeof(fig), "evaluate %lld users (infer_batch + rank, s, %d thr)", (long long) dml->n_users, maxthr);
		add_row(fig, bench_clock(CLOCK_MONOTONIC) - t0, "%.2f", 5.0, 0, "%.0f");
	}
	if (csv && *csv)
		csv_run(csv, preset, epochs > 0 ? epochs : 2, maxthr);
	add_row("peak RSS of the bench process (MiB)", peak_rss_mib(), "%.0f", 1024, 0, "%.0f");

	loadavg(load1, sizeof(load1));
	printf("# load average at start %s, at end %s (2 cores: above ~0.5 others were running)\n", load0, load1);

	/* ---- RESULTS.md ---- */
	if (append)
	{
		FILE	   *f = fopen(results, "a");

		if (!f)
			fprintf(stderr, "bench: cannot append to %s\n", results);
		else
		{
			fprintf(f, "\n## %s - %s, %s, %ld CPUs online, threads %d..%d, %s mode%s%s\n\n", date, un.machine, cpu,
					sysconf(_SC_NPROCESSORS_ONLN), thr[0], maxthr, quick ? "quick (batch 256)" : "full (batch 2048)",
					csv && *csv ? ", CSV " : "", csv && *csv ? csv : "");
			fprintf(f, "| figure | value | target | ratio |\n|---|---:|---:|---:|\n");
			for (int i = 0; i < nrows; i++)
				fprintf(f, "| %s | %s | %s | %s |\n", rows[i].figure, rows[i].value, rows[i].target, rows[i].ratio);
			fprintf(f, "\nBench wall time %.0f s; load average at start %s, at end %s. Ratio >= 1 means the target is met "
					"(value/target for rates, target/value for times). sgemm peak used for a ratio: the better of the "
					"measurement at the start and one right before that thread count's training figures.\n",
					bench_clock(CLOCK_MONOTONIC) - t_start, load0, load1);
			fclose(f);
			printf("# appended to %s\n", results);
		}
	}
	t4r_model_free(mml);
	t4r_model_free(mam);
	t4r_dataset_free(dml);
	t4r_dataset_free(dam);
	free(fitems);
	free(fts);
	free(full);
	free(sml);
	free(sam);
	return 0;
}
