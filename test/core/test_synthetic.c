/*
 * test_synthetic.c - a small synthetic sequential task whose next item
 * depends on both the previous item AND the time gap, trained end to end
 * with t4r_fit (dataset build -> fit -> evaluate).
 *
 * Task: items 1..NI, succ(i) = i + 3 (mod NI, 1-based).  Every interaction
 * after the first comes after a gap drawn from one of two well-separated
 * distributions (short: 0.5..1.5, long: 15..25 time units, 50/50,
 * independently of everything else).  With last item a (reached after gap
 * g = ts[n-1] - ts[n-2], which the model sees) and the item b before it,
 *     next = succ(a) if g was long, succ(b) if g was short,
 * i.e. a long pause "resets" the context to the last item, a short one
 * continues from the earlier item: the next item depends on the previous
 * items AND the time gap.  Without time a model can only guess between
 * succ(a) and succ(b) (HR@1 near 0.5-0.6); chance is 1/NI.
 * (A variant where the gap picks between two successor functions of the
 * last item alone was not learnt by either model in a few epochs.)
 *
 * Checked: the training loss goes down, test HR@1 of the time-aware model is
 * far above chance, and the time-aware model beats is_time = 0; the same for
 * the robust (causal) time path, trained per prefix and (with 2.5x the
 * epochs, see below) on all positions.
 * Environment (for tuning, not needed): SYN_EPOCHS, SYN_USERS, SYN_THREADS,
 * SYN_SEED (data), SYN_D (hidden size), SYN_LR_E4 (learning rate * 1e4).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tim4rec.h"
#include "ops.h"
#include "tap.h"

#define NI 20

static int
env_int(const char *name, int dflt)
{
	const char *v = getenv(name);

	return v && *v ? atoi(v) : dflt;
}

typedef struct run_log
{
	double		loss[256];
	int			epochs;
} run_log;

static void
on_epoch(void *ud, const t4r_epoch_info *info)
{
	run_log    *r = ud;

	if (info->epoch <= 256)
		r->loss[info->epoch - 1] = info->loss;
	r->epochs = info->epoch;
	tap_diag("  epoch %d: loss %.4f valid NDCG@10 %.4f (%.1f s)", info->epoch, info->loss,
			 info->valid_ndcg10, info->seconds);
}

static int
succ(int i)
{
	return 1 + (i - 1 + 3) % NI;
}

static t4r_dataset *
make_dataset(int nusers, uint64_t seed)
{
	t4r_rng		r;
	size_t		cap = (size_t) nusers * 64,
				n = 0;
	int64_t    *u = malloc(cap * sizeof(int64_t)),
			   *it = malloc(cap * sizeof(int64_t));
	double	   *ts = malloc(cap * sizeof(double));
	t4r_dataset *ds = NULL;
	char		err[256];

	t4r_rng_seed(&r, seed);
	for (int user = 0; user < nusers; user++)
	{
		int			m = 25 + (int) t4r_rng_below(&r, 30);
		int			item = 1 + (int) t4r_rng_below(&r, NI);
		double		t = 10 * t4r_rng_u01(&r);
		int			long_gap = t4r_rng_u01(&r) < 0.5;
		int			prev = item;

		for (int k = 0; k < m; k++)
		{
			u[n] = user;
			it[n] = item;
			ts[n] = t;
			n++;
			/* next item from the gap that led into the last item: long ->
			 * successor of the last item, short -> successor of the item
			 * before it (the first two items are random) */
			if (k == 0)
			{
				prev = item;
				item = 1 + (int) t4r_rng_below(&r, NI);
			}
			else
			{
				int			base = long_gap ? item : prev;

				prev = item;
				item = succ(base);
			}
			long_gap = t4r_rng_u01(&r) < 0.5;
			t += long_gap ? 15 + 10 * t4r_rng_u01(&r) : 0.5 + t4r_rng_u01(&r);
		}
	}
	if (t4r_dataset_build(u, it, ts, NULL, n, 5, 5, &ds, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("dataset: %s", err);
		ds = NULL;
	}
	free(u);
	free(it);
	free(ts);
	return ds;
}

/* train one model; returns test HR@1 (or -1 on error, -2 to skip) */
static double
train_one(const t4r_dataset *ds, int is_time, int robust, int allpos, int epochs, int threads,
		  run_log *log, double *hr10)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_trainer *probe = NULL;
	t4r_fit_opts o;
	t4r_fit_result res;
	t4r_train_opts to;
	char		err[256] = "";
	int			ks[2] = {1, 10};
	double		hr[2],
				nd[2];
	int			rc;

	t4r_config_preset(&c, "movielens");
	c.hidden_size = env_int("SYN_D", 16);
	c.head_dim = 16;
	c.d_state = 16;
	c.num_layers = 2;
	c.max_seq_len = 20;
	c.chunk_size = 8;
	c.dropout_prob = 0.0;
	c.time_dropout = 0.0;
	c.learning_rate = env_int("SYN_LR_E4", 50) * 1e-4;
	c.batch_size = 128;
	c.is_time = is_time;
	c.time_features = robust ? T4R_TIME_ROBUST : T4R_TIME_OFFICIAL;
	c.training = allpos ? T4R_TRAIN_ALL_POSITIONS : T4R_TRAIN_PREFIXES;
	c.seed = 7;
	c.n_items = ds->n_items;
	if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("model: %s", err);
		return -1;
	}
	t4r_model_init(m, c.seed);

	memset(&to, 0, sizeof(to));
	to.threads = threads;
	if (t4r_trainer_create(m, &to, &probe, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("no trainer (%s)", err);
		t4r_model_free(m);
		return -2;
	}
	t4r_trainer_free(probe);

	memset(&o, 0, sizeof(o));
	o.train.threads = threads;
	o.epochs = epochs;
	o.patience = epochs;
	o.epoch_done = on_epoch;
	o.ud = log;
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	if (rc != T4R_OK)
	{
		tap_diag("fit: %s", err);
		t4r_model_free(m);
		return -1;
	}
	rc = t4r_evaluate(m, ds, T4R_SPLIT_TEST, ks, 2, threads, NULL, NULL, hr, nd, NULL);
	t4r_model_free(m);
	if (rc != T4R_OK)
		return -1;
	*hr10 = hr[1];
	tap_diag("is_time=%d%s%s: best epoch %d, %.1f s, test HR@1 %.4f HR@10 %.4f", is_time,
			 robust ? " robust" : "", allpos ? " all_positions" : "",
			 res.best_epoch, res.seconds, hr[0], hr[1]);
	return hr[0];
}

int
main(void)
{
	int			epochs = env_int("SYN_EPOCHS", 5);
	int			nusers = env_int("SYN_USERS", 300);
	int			threads = env_int("SYN_THREADS", 2);

	t4r_dataset *ds = make_dataset(nusers, (uint64_t) env_int("SYN_SEED", 2024));
	run_log		lt,
				ln;
	double		h10t = 0,
				h10n = 0,
				ht,
				hn;
	double		chance = 1.0 / NI;

	memset(&lt, 0, sizeof(lt));
	memset(&ln, 0, sizeof(ln));
	if (!tap_ok(ds != NULL, "synthetic data set builds"))
		return tap_done();
	tap_diag("%lld users, %d rows, %lld training samples per epoch",
			 (long long) ds->n_users, ds->n_items, (long long) ds->n_train_samples);
	ht = train_one(ds, 1, 0, 0, epochs, threads, &lt, &h10t);
	if (ht == -2)
	{
		printf("ok %d - # SKIP trainer not available\n", ++tap_n_);
		t4r_dataset_free(ds);
		return tap_done();
	}
	hn = train_one(ds, 0, 0, 0, epochs, threads, &ln, &h10n);
	tap_ok(ht >= 0 && hn >= 0, "both models train and evaluate");
	tap_ok(lt.epochs == epochs && lt.loss[epochs - 1] < 0.7 * lt.loss[0],
		   "time-aware training loss goes down: %.4f -> %.4f", lt.loss[0], lt.loss[epochs - 1]);
	tap_ok(ln.epochs == epochs && ln.loss[epochs - 1] < 0.9 * ln.loss[0],
		   "is_time=0 training loss goes down: %.4f -> %.4f", ln.loss[0], ln.loss[epochs - 1]);
	tap_ok(ht > 10 * chance, "time-aware test HR@1 %.4f far above chance %.4f", ht, chance);
	tap_ok(ht > hn + 0.15, "time-aware HR@1 %.4f beats is_time=0 HR@1 %.4f by more than 0.15", ht, hn);
	tap_ok(hn < 0.8, "is_time=0 cannot know the gap: HR@1 %.4f stays well below 1", hn);
	{
		run_log		lr,
					la;
		double		h10r = 0,
					h10a = 0,
					hr,
					ha;

		memset(&lr, 0, sizeof(lr));
		memset(&la, 0, sizeof(la));
		hr = train_one(ds, 1, 1, 0, epochs, threads, &lr, &h10r);
		/* all_positions: the same number of targets and steps per epoch,
		 * but a step's ~128 targets come from ~6 windows (correlated), and
		 * the gap signal is picked up about 3-4 epochs later (measured:
		 * HR@1 0.64 after 5 epochs, 1.0 after 12); so 2.5x the epochs,
		 * each of them cheaper */
		ha = train_one(ds, 1, 1, 1, epochs * 5 / 2, threads, &la, &h10a);
		tap_ok(hr > hn + 0.15, "robust time path, prefixes: HR@1 %.4f beats is_time=0 HR@1 %.4f by more than 0.15",
			   hr, hn);
		tap_ok(ha > hn + 0.15, "robust time path, all_positions: HR@1 %.4f beats is_time=0 HR@1 %.4f by more than 0.15",
			   ha, hn);
	}
	t4r_dataset_free(ds);
	return tap_done();
}
