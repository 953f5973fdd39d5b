/*
 * quality_core.c - the quality pipeline of `make quality` on the C core
 * directly (fallback of the SQL path and a cross-check of it).
 *
 *   build/quality_core --csv FILE [--preset movielens|amazon] [--threads T]
 *                      [--epochs E] [--patience P] [--seed S]
 *                      [--set key=value ...] [--max-epochs-only] [--save FILE]
 *                      [--holdout K --ranks FILE]
 *
 * Reads a CSV user_id,item_id,ts (header line optional; a 4th column, if
 * present, is the tie-break order, else the line number = file order, like
 * the seq column of test/scripts/load_interactions.sh), builds the data set
 * (5-core, leave-one-out: t4r_dataset_build), fits with early stopping on
 * validation NDCG@10 (t4r_fit keeps the best epoch's weights), with refit
 * (the amazon preset's default) trains the second pass as tim4rec_train
 * does (t4r_refit from the initial weights, validation taken before it), and
 * prints valid/test HR/NDCG/MRR at 10/20/50 for the model and for
 * most-popular.
 * The final lines are machine readable: "RESULT key=value ...".
 * --save writes the final model as safetensors (for test/quality/time_prior.c).
 * --holdout K: the "last K" protocol (test/bench/QUALITY.md, "More test
 * events per user"): each user's last d = min(K, m - 5) interactions are
 * held out (t4r_dataset_truncate), the model trains and early-stops on the
 * rest, then predicts each held-out event and the truncated data's own test
 * event (d + 1 events) from the true history before it, without
 * retraining.  --ranks FILE gets one line per user: "user<TAB>mean
 * NDCG@10<TAB>events<TAB>mean HR@10" over those events.
 * Options --set apply any option key of tim4rec_train (t4r_config_set),
 * after the preset, e.g. --set is_time=false --set batch_size=512.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "tim4rec.h"
#include "qcsv.h"

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double
peak_rss_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024.0;
}

static void
die(const char *what, int rc, const char *err)
{
	fprintf(stderr, "quality_core: %s: %s (%s)\n", what, t4r_strerror(rc), err ? err : "");
	exit(1);
}

typedef struct run_log
{
	double		t_start;
	double		train_seconds;	/* sum of the epochs' seconds */
	double		max_seconds;	/* wall-clock cap of the fit (0 = none) */
	int			stop;			/* set when the next epoch would pass the cap */
	int			epochs_done;
	int			best_epoch;
	double		best_ndcg10;
	t4r_model  *m;
	t4r_real   *best;			/* copy of the best epoch's weights */
	int64_t		max_steps;		/* --max-steps: stop after this many steps */
	int64_t		steps;
	int64_t		steps_per_epoch;
	double		t_steps;		/* time of the first step's end (warm-up excluded) */
	double		t_last;
	int			every;			/* progress line every this many steps */
} run_log;

static void
on_progress(void *ud, int epoch, int64_t step, int64_t spe, double loss)
{
	run_log    *r = ud;

	r->steps++;
	r->steps_per_epoch = spe;
	r->t_last = now();
	if (r->steps == 1)
		r->t_steps = r->t_last;
	if (r->every > 0 && (step % r->every == 0 || step == spe))
	{
		fprintf(stderr, "  epoch %d step %lld/%lld loss %.4f, %.0f s\n", epoch, (long long) step,
				(long long) spe, loss, r->t_last - r->t_start);
	}
	if (r->max_steps > 0 && r->steps >= r->max_steps)
		r->stop = 2;
}

static int
on_interrupt(void *ud)
{
	return ((run_log *) ud)->stop;
}

static void
on_epoch(void *ud, const t4r_epoch_info *info)
{
	run_log    *r = ud;

	r->train_seconds += info->seconds;
	r->epochs_done = info->epoch;
	if (info->best_epoch == info->epoch)
	{
		memcpy(r->best, r->m->params, r->m->layout.total * sizeof(t4r_real));
		r->best_epoch = info->best_epoch;
		r->best_ndcg10 = info->best_ndcg10;
	}
	/* stop at this epoch boundary when one more epoch would pass the cap */
	if (r->max_seconds > 0 && now() - r->t_start + info->seconds > r->max_seconds)
		r->stop = 1;
	printf("epoch %d: loss %.4f valid NDCG@10 %.4f (%.1f s, best epoch %d, %.4f) peak RSS %.0f MiB\n",
		   info->epoch, info->loss, info->valid_ndcg10, info->seconds, info->best_epoch,
		   info->best_ndcg10, peak_rss_mib());
	fflush(stdout);
}

static void
print_metrics(const char *tag, const double *hr, const double *nd, const double *mr)
{
	printf("RESULT %s hr10=%.6f ndcg10=%.6f mrr10=%.6f hr20=%.6f ndcg20=%.6f mrr20=%.6f "
		   "hr50=%.6f ndcg50=%.6f mrr50=%.6f\n", tag, hr[0], nd[0], mr[0], hr[1], nd[1], mr[1],
		   hr[2], nd[2], mr[2]);
}

/*
 * --holdout: the model (trained on tr = full without drop[u] of each user)
 * predicts, for k = 0 .. K, the event of each user with k <= drop[u] that
 * is the test target of full truncated by k (its last max_seq_len items
 * before it as input, t4r_evaluate_ranks).  k = drop[u] is tr's own test
 * event: checked against t4r_evaluate_ranks on tr.
 */
static void
eval_holdout(const t4r_model *m, const t4r_dataset *full, const t4r_dataset *tr,
			 const int64_t *drop, int K, int threads, const char *path)
{
	int64_t		nu = full->n_users,
				n,
				events = 0,
				mismatch = 0;
	int64_t    *users = malloc(sizeof(int64_t) * (size_t) nu),
			   *ranks = malloc(sizeof(int64_t) * (size_t) nu),
			   *dk = malloc(sizeof(int64_t) * (size_t) nu),
			   *own = malloc(sizeof(int64_t) * (size_t) nu),
			   *cnt = calloc((size_t) nu, sizeof(int64_t));
	double	   *nd = calloc((size_t) nu, sizeof(double)),
			   *hr = calloc((size_t) nu, sizeof(double)),
				sum_user = 0,
				sum_ev = 0,
				sum_hr_user = 0;
	int			rc;
	FILE	   *f;

	if (!users || !ranks || !dk || !own || !cnt || !nd || !hr)
		die("malloc", T4R_ENOMEM, NULL);
	rc = t4r_evaluate_ranks(m, tr, T4R_SPLIT_TEST, threads, NULL, NULL, NULL, users, own, &n);
	if (rc != T4R_OK || n != nu)
		die("t4r_evaluate_ranks", rc ? rc : T4R_EINVAL, "the truncated data's test");
	for (int k = 0; k <= K; k++)
	{
		t4r_dataset *dsk;

		for (int64_t u = 0; u < nu; u++)
			dk[u] = k <= drop[u] ? k : drop[u];
		rc = t4r_dataset_truncate(full, dk, &dsk);
		if (rc != T4R_OK)
			die("t4r_dataset_truncate", rc, NULL);
		rc = t4r_evaluate_ranks(m, dsk, T4R_SPLIT_TEST, threads, NULL, NULL, NULL, users, ranks, &n);
		if (rc != T4R_OK)
			die("t4r_evaluate_ranks", rc, NULL);
		for (int64_t i = 0; i < n; i++)
		{
			int64_t		u = users[i];

			if (k > drop[u])
				continue;
			if (k == drop[u] && ranks[i] != own[i])
				mismatch++;
			nd[u] += t4r_rank_ndcg(ranks[i], 10);
			hr[u] += t4r_rank_hr(ranks[i], 10);
			cnt[u]++;
			sum_ev += t4r_rank_ndcg(ranks[i], 10);
			events++;
		}
		t4r_dataset_free(dsk);
	}
	if ((f = fopen(path, "w")) == NULL)
	{
		perror(path);
		exit(1);
	}
	for (int64_t u = 0; u < nu; u++)
	{
		if (cnt[u] != drop[u] + 1)
			die("holdout", T4R_EINVAL, "a user's event count");
		fprintf(f, "%lld\t%.9f\t%lld\t%.9f\n", (long long) full->user_ids[u], nd[u] / cnt[u],
				(long long) cnt[u], hr[u] / cnt[u]);
		sum_user += nd[u] / cnt[u];
		sum_hr_user += hr[u] / cnt[u];
	}
	if (fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
	printf("RESULT holdout k=%d users=%lld events=%lld ndcg10_user_mean=%.6f hr10_user_mean=%.6f "
		   "ndcg10_event_mean=%.6f own_test_rank_mismatches=%lld\n", K, (long long) nu,
		   (long long) events, sum_user / nu, sum_hr_user / nu, sum_ev / events,
		   (long long) mismatch);
	if (mismatch)
		die("holdout", T4R_EINVAL, "ranks of the truncated data's test events differ");
	free(users);
	free(ranks);
	free(dk);
	free(own);
	free(cnt);
	free(nd);
	free(hr);
}

int
main(int argc, char **argv)
{
	const char *csv = NULL,
			   *preset = "movielens";
	int			threads = 2,
				epochs = 0,
				patience = 0,
				nset = 0,
				rc,
				ks[3] = {10, 20, 50};
	long long	seed = -1;
	double		max_seconds = 0;
	long long	max_steps = 0;
	int			every = 0;
	const char *sets[64];
	int64_t    *u,
			   *it,
			   *ord;
	double	   *ts,
				t0,
				tbuild;
	size_t		n;
	t4r_dataset *ds = NULL;
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_real   *init = NULL;		/* refit: the initial weights */
	const char *save = NULL,
			   *ranks_file = NULL;
	int			holdout = 0;
	t4r_dataset *full = NULL;	/* --holdout: the whole data; ds is its truncation */
	int64_t    *drop = NULL;
	t4r_fit_opts o;
	t4r_fit_result res;
	run_log		rl;
	char		err[512] = "";
	double		hr[3],
				nd[3],
				mr[3];

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
			csv = argv[++i];
		else if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
			preset = argv[++i];
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
			epochs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--patience") == 0 && i + 1 < argc)
			patience = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			seed = atoll(argv[++i]);
		else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
			max_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--max-steps") == 0 && i + 1 < argc)
			max_steps = atoll(argv[++i]);
		else if (strcmp(argv[i], "--progress") == 0 && i + 1 < argc)
			every = atoi(argv[++i]);
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && nset < 64)
			sets[nset++] = argv[++i];
		else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc)
			save = argv[++i];
		else if (strcmp(argv[i], "--holdout") == 0 && i + 1 < argc)
			holdout = atoi(argv[++i]);
		else if (strcmp(argv[i], "--ranks") == 0 && i + 1 < argc)
			ranks_file = argv[++i];
		else
		{
			fprintf(stderr, "usage: %s --csv FILE [--preset movielens|amazon] [--threads T] "
					"[--epochs E] [--patience P] [--seed S] [--max-seconds X] [--max-steps N] [--progress EVERY] [--set key=value ...] [--save FILE] [--holdout K --ranks FILE]\n", argv[0]);
			return 2;
		}
	}
	if (!csv || threads < 1 || holdout < 0 || (holdout > 0) != (ranks_file != NULL))
	{
		fprintf(stderr, "quality_core: --csv FILE is required (threads >= 1; --holdout K > 0 "
				"goes with --ranks FILE)\n");
		return 2;
	}

	rc = t4r_config_preset(&c, preset);
	if (rc != T4R_OK)
		die("preset", rc, preset);
	for (int i = 0; i < nset; i++)
	{
		char		key[64];
		const char *eq = strchr(sets[i], '=');

		if (!eq || eq - sets[i] >= (long) sizeof(key))
		{
			fprintf(stderr, "quality_core: --set wants key=value, got %s\n", sets[i]);
			return 2;
		}
		memcpy(key, sets[i], eq - sets[i]);
		key[eq - sets[i]] = 0;
		rc = t4r_config_set(&c, key, eq + 1, err, sizeof(err));
		if (rc != T4R_OK)
			die("--set", rc, err);
	}
	if (seed >= 0)
		c.seed = (uint64_t) seed;

	if (qcsv_read(csv, &u, &it, &ts, &ord, &n) != 0)
	{
		fprintf(stderr, "quality_core: cannot read %s\n", csv);
		return 1;
	}
	t0 = now();
	rc = t4r_dataset_build(u, it, ts, ord, n, 5, 5, &ds, err, sizeof(err));
	tbuild = now() - t0;
	free(u);
	free(it);
	free(ts);
	free(ord);
	if (rc != T4R_OK)
		die("t4r_dataset_build", rc, err);
	printf("data %s: %zu rows -> %lld users, %d items (V incl. padding), %zu interactions after "
		   "5-core, %lld training samples, built in %.3f s\n", csv, n, (long long) ds->n_users,
		   ds->n_items, ds->n_interactions, (long long) ds->n_train_samples, tbuild);
	if (holdout > 0)
	{
		int64_t		held = 0;

		full = ds;
		drop = malloc(sizeof(int64_t) * (size_t) full->n_users);
		if (!drop)
			die("malloc", T4R_ENOMEM, NULL);
		for (int64_t u = 0; u < full->n_users; u++)
		{
			int64_t		m = full->seq_off[u + 1] - full->seq_off[u];

			drop[u] = m - 5 < holdout ? (m > 5 ? m - 5 : 0) : holdout;
			held += drop[u];
		}
		rc = t4r_dataset_truncate(full, drop, &ds);
		if (rc != T4R_OK)
			die("t4r_dataset_truncate", rc, NULL);
		printf("holdout %d: %lld interactions held out, %zu left to train and validate on, "
			   "%lld training samples; %lld test events\n", holdout, (long long) held,
			   ds->n_interactions, (long long) ds->n_train_samples,
			   (long long) (held + full->n_users));
	}

	if (c.tie_shuffle == T4R_TIE_SHUFFLE_AUTO)
	{
		/* tie_shuffle "auto" (the amazon preset): resolved here as t4r_fit
		 * would; tim4rec_train trains both forms when the order is
		 * consistent, this driver keeps the table's order then */
		t4r_tie_stats tst;

		rc = t4r_tie_order_test(ds, &tst);
		if (rc != T4R_OK)
			die("t4r_tie_order_test", rc, NULL);
		c.tie_shuffle = t4r_tie_shuffle_resolve(&tst);
		printf("tie_order tied_pairs=%lld repeated_pairs=%lld agreement=%.4f z=%.1f by_item_id=%d "
			   "consistent=%d -> tie_shuffle=%d%s\n", (long long) tst.tied_pairs,
			   (long long) tst.repeated_pairs, tst.agreement, tst.z, tst.by_item_id, tst.consistent,
			   c.tie_shuffle, tst.consistent ?
			   " (tim4rec_train would also train tie_shuffle=1 and keep the better on validation:"
			   " rerun with --set tie_shuffle=true to compare)" : "");
	}
	c.n_items = ds->n_items;
	rc = t4r_model_create(&c, &m, err, sizeof(err));
	if (rc != T4R_OK)
		die("t4r_model_create", rc, err);
	t4r_model_init(m, c.seed);
	if (c.refit)
	{
		/* refit (as tim4rec_train): the weights the fit starts from */
		init = malloc(m->layout.total * sizeof(t4r_real));
		if (!init)
			die("malloc", T4R_ENOMEM, NULL);
		memcpy(init, m->params, m->layout.total * sizeof(t4r_real));
	}
	{
		char	   *js = t4r_config_to_json(&c);

		printf("config %s epochs=%d patience=%d lr=%g batch_size=%d seed=%llu threads=%d\n",
			   js ? js : "?", epochs > 0 ? epochs : c.epochs, patience > 0 ? patience : c.patience,
			   c.learning_rate, c.batch_size, (unsigned long long) c.seed, threads);
		free(js);
	}
	fflush(stdout);

	memset(&o, 0, sizeof(o));
	memset(&rl, 0, sizeof(rl));
	o.train.threads = threads;
	o.epochs = epochs;
	o.patience = patience;
	o.epoch_done = on_epoch;
	o.ud = &rl;
	o.train.interrupt = on_interrupt;
	o.train.interrupt_ud = &rl;
	rl.m = m;
	rl.max_seconds = max_seconds;
	rl.best = malloc(m->layout.total * sizeof(t4r_real));
	if (!rl.best)
		die("malloc", T4R_ENOMEM, NULL);
	rl.max_steps = max_steps;
	rl.every = every;
	o.progress = on_progress;
	rl.t_start = now();
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	if (rc == T4R_ECANCELLED && rl.stop == 2)
	{
		/* --max-steps: a throughput measurement, no evaluation */
		double		per_step = rl.steps > 1 ? (rl.t_last - rl.t_steps) / (rl.steps - 1) : 0;
		double		sps = per_step > 0 ? c.batch_size / per_step : 0;

		printf("RESULT partial steps=%lld steps_per_epoch=%lld batch_size=%d seconds=%.2f "
			   "first_step_s=%.2f samples_per_s=%.1f projected_epoch_s=%.0f peak_rss_mib=%.0f\n",
			   (long long) rl.steps, (long long) rl.steps_per_epoch, c.batch_size,
			   rl.t_last - rl.t_start, rl.t_steps - rl.t_start, sps,
			   sps > 0 ? ds->n_train_samples / sps : 0.0, peak_rss_mib());
		free(rl.best);
		t4r_model_free(m);
		t4r_dataset_free(ds);
		return 0;
	}
	if (rc == T4R_ECANCELLED && rl.stop && rl.epochs_done > 0)
	{
		/* wall-clock cap reached at an epoch boundary: keep the best epoch */
		memcpy(m->params, rl.best, m->layout.total * sizeof(t4r_real));
		res.epochs_run = rl.epochs_done;
		res.best_epoch = rl.best_epoch;
		res.best_valid_ndcg10 = rl.best_ndcg10;
		res.seconds = now() - rl.t_start;
		res.train_samples = ds->n_train_samples;
		printf("stopped by --max-seconds %.0f after %d epochs (not by early stopping)\n",
			   max_seconds, rl.epochs_done);
		rc = T4R_OK;
	}
	if (rc != T4R_OK)
		die("t4r_fit", rc, err);

	printf("RESULT fit capped=%d epochs_run=%d best_epoch=%d best_valid_ndcg10=%.6f seconds=%.2f "
		   "train_samples=%lld samples_per_s=%.1f peak_rss_mib=%.0f n_users=%lld n_items=%d "
		   "n_interactions=%zu\n", rl.stop, res.epochs_run, res.best_epoch, res.best_valid_ndcg10,
		   res.seconds, (long long) res.train_samples,
		   res.seconds > 0 ? res.train_samples * (double) res.epochs_run / res.seconds : 0.0,
		   peak_rss_mib(), (long long) ds->n_users, ds->n_items - 1, ds->n_interactions);

	rc = t4r_evaluate(m, ds, T4R_SPLIT_VALID, ks, 3, threads, NULL, NULL, hr, nd, mr);
	if (rc != T4R_OK)
		die("t4r_evaluate", rc, NULL);
	print_metrics("model_valid", hr, nd, mr);
	if (init)
	{
		/* refit: validation above is the first pass's, test the refitted model's */
		t4r_fit_result rr;

		memcpy(m->params, init, m->layout.total * sizeof(t4r_real));
		o.epoch_done = NULL;
		o.progress = NULL;
		o.train.interrupt = NULL;
		rc = t4r_refit(m, ds, &o, res.best_epoch, &rr, err, sizeof(err));
		if (rc != T4R_OK)
			die("t4r_refit", rc, err);
		printf("RESULT refit epochs=%d train_samples=%lld seconds=%.2f\n", rr.epochs_run,
			   (long long) rr.train_samples, rr.seconds);
		free(init);
		init = NULL;
	}
	rc = t4r_evaluate(m, ds, T4R_SPLIT_TEST, ks, 3, threads, NULL, NULL, hr, nd, mr);
	if (rc != T4R_OK)
		die("t4r_evaluate", rc, NULL);
	print_metrics("model_test", hr, nd, mr);
	rc = t4r_evaluate(NULL, ds, T4R_SPLIT_VALID, ks, 3, threads, NULL, NULL, hr, nd, mr);
	if (rc != T4R_OK)
		die("t4r_evaluate", rc, NULL);
	print_metrics("pop_valid", hr, nd, mr);
	rc = t4r_evaluate(NULL, ds, T4R_SPLIT_TEST, ks, 3, threads, NULL, NULL, hr, nd, mr);
	if (rc != T4R_OK)
		die("t4r_evaluate", rc, NULL);
	print_metrics("pop_test", hr, nd, mr);
	if (holdout > 0)
		eval_holdout(m, full, ds, drop, holdout, threads, ranks_file);
	if (save)
	{
		uint8_t    *buf;
		size_t		len;
		FILE	   *o;

		rc = t4r_safetensors_write(m, &buf, &len);
		if (rc != T4R_OK)
			die("t4r_safetensors_write", rc, NULL);
		if ((o = fopen(save, "wb")) == NULL || fwrite(buf, 1, len, o) != len || fclose(o) != 0)
		{
			perror(save);
			exit(1);
		}
		free(buf);
	}
	printf("RESULT end peak_rss_mib=%.0f\n", peak_rss_mib());
	free(rl.best);
	t4r_model_free(m);
	t4r_dataset_free(ds);
	t4r_dataset_free(full);
	free(drop);
	return 0;
}
