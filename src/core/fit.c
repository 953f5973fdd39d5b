/*
 * fit.c - the fit loop (docs/MODEL.md, "Training"): epochs of shuffled
 * mini-batches (per-prefix samples, or all_positions windows), a check of
 * the weights after every epoch, validation NDCG@10 with early stopping,
 * the best epoch's weights kept (ema_decay: the weights' moving average
 * is validated and kept instead); and refit's second pass (t4r_refit), a
 * fixed number of epochs on the training parts with the validation targets.
 * One step is t4r_trainer_step (train.c) or a backend's step (the CUDA
 * trainer).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tim4rec.h"
#include "ops.h"
#include "dataset.h"
#include "err.h"

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* user owning position p of seq_items (binary search over seq_off) */
static int64_t
user_of_pos(const t4r_dataset *ds, int64_t p)
{
	int64_t		lo = 0,
				hi = ds->n_users;

	while (hi - lo > 1)
	{
		int64_t		mid = lo + (hi - lo) / 2;

		if (ds->seq_off[mid] <= p)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* ------------------------------------------------------------------ */
/* all_positions windows                                               */
/* ------------------------------------------------------------------ */
int64_t
t4r_window_plan(int64_t m, int L, int64_t *start, int32_t *len, int32_t *loss_from)
{
	int64_t		nw = 0,
				covered,
				st = L - L / 2;

	if (m < 1 || L < 1)
		return 0;
	if (m <= L)
	{
		if (start)
		{
			start[0] = 0;
			len[0] = (int32_t) m;
			loss_from[0] = 0;
		}
		return 1;
	}
	if (start)
	{
		start[0] = 0;
		len[0] = L;
		loss_from[0] = 0;
	}
	nw = 1;
	covered = L;
	while (covered < m)
	{
		int64_t		e = covered + st < m ? covered + st : m;
		int64_t		a = e - L;

		if (start)
		{
			start[nw] = a;
			len[nw] = L;
			loss_from[nw] = (int32_t) (covered - a);
		}
		nw++;
		covered = e;
	}
	return nw;
}

typedef struct fit_window
{
	uint32_t	pos;			/* first input item in seq_items */
	int32_t		n;				/* inputs */
	int32_t		lf;				/* first position with a loss */
} fit_window;

/* what one fit needs across its epochs and steps */
typedef struct fit_state
{
	t4r_model  *m;
	const t4r_dataset *ds;
	t4r_fit_opts o;
	t4r_trainer *tr;			/* the CPU trainer, when o.backend is NULL */
	t4r_sample *batch;			/* room for min(batch_size, S) samples */
	const int32_t *items;		/* the training items: ds->seq_items, or
								 * (tie_shuffle) this epoch's copy */
	int			epoch;
	int64_t		step;			/* steps done in this epoch */
	int64_t		steps_per_epoch;
	double		lsum;			/* loss summed over this epoch's terms */
	t4r_real   *ema;			/* ema_decay > 0: the moving average (else NULL) */
	int64_t		ema_steps;		/* steps averaged so far, over the whole fit */
	int			ema_swapped;	/* m->params holds the average, ema the weights */
	char	   *err;
	size_t		errlen;
} fit_state;

/* "what: <backend message or the code's text>" */
static void
backend_err(char *err, size_t errlen, const t4r_backend *b, const char *what, int rc)
{
	const char *msg = (b && b->error) ? b->error(b->ctx) : NULL;

	t4r_set_err(err, errlen, "%s: %s", what, (msg && msg[0]) ? msg : t4r_strerror(rc));
}

/*
 * ema_decay: after optimiser step t (1-based over the fit) the average moves
 * towards the weights with b = min(ema_decay, (1 + t) / (10 + t)), so early
 * on it averages the last ~t/9 steps instead of leaning on the initial
 * weights.  Each update in double, stored as t4r_real; on the fit's
 * threads for a large model.
 */
static void
fit_ema_update(fit_state *f)
{
	const t4r_real *w = f->m->params;
	t4r_real   *e = f->ema;
	size_t		n = f->m->layout.total;
	double		t = (double) ++f->ema_steps,
				b = (1 + t) / (10 + t),
				a;

	if (b > f->m->cfg.ema_decay)
		b = f->m->cfg.ema_decay;
	a = 1 - b;
	/* element-wise, so the same result with any number of threads */
#pragma omp parallel for num_threads(f->o.train.threads) schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++)
		e[i] = (t4r_real) ((double) e[i] + a * ((double) w[i] - (double) e[i]));
}

/* exchange the model's weights and the moving average (in place, no copy) */
static void
fit_ema_swap(fit_state *f)
{
	t4r_real   *w = f->m->params,
			   *e = f->ema;
	size_t		n = f->m->layout.total;

	for (size_t i = 0; i < n; i++)
	{
		t4r_real	t = w[i];

		w[i] = e[i];
		e[i] = t;
	}
	f->ema_swapped = !f->ema_swapped;
}

/*
 * One optimiser step on f->batch[0..ns-1], whose loss is the mean of `terms`
 * loss terms (the epoch's mean loss weighs it so).  Checks for cancellation
 * first; a NaN or infinite loss is an error: the weights are (or are about
 * to be) poisoned, and every later step and metric would be too.
 */
static int
fit_step(fit_state *f, int ns, int64_t terms)
{
	const t4r_backend *be = f->o.backend;
	double		loss = 0;
	int			rc;

	if (f->o.train.interrupt && f->o.train.interrupt(f->o.train.interrupt_ud))
	{
		t4r_set_err(f->err, f->errlen, "training cancelled");
		return T4R_ECANCELLED;
	}
	if (be)
		rc = be->step(be->ctx, f->batch, ns, &loss);
	else
		rc = t4r_trainer_step(f->tr, f->batch, ns, &loss);
	if ((rc == T4R_OK || rc == T4R_ENONFINITE) && !isfinite(loss))
	{
		t4r_set_err(f->err, f->errlen, "training diverged: the loss of epoch %d, step %lld of %lld is %s",
					f->epoch, (long long) f->step + 1, (long long) f->steps_per_epoch,
					isnan(loss) ? "NaN" : "infinite");
		return T4R_ENONFINITE;
	}
	if (rc != T4R_OK)
	{
		if (rc == T4R_ECANCELLED)
			t4r_set_err(f->err, f->errlen, "training cancelled");
		else
			backend_err(f->err, f->errlen, be, "training step failed", rc);
		return rc;
	}
	f->lsum += loss * (double) terms;
	f->step++;
	if (f->ema)
		fit_ema_update(f);
	if (f->o.progress)
		f->o.progress(f->o.ud, f->epoch, f->step, f->steps_per_epoch, loss);
	return T4R_OK;
}

/* Fisher-Yates shuffle of n elements of `size` bytes keyed by (seed, epoch,
 * what): the same order for the same seed on every machine */
static void
fit_shuffle(void *a, int64_t n, size_t size, uint64_t seed, int epoch, uint64_t what)
{
	t4r_rng		rng;
	char		t[sizeof(fit_window) > sizeof(uint32_t) ? sizeof(fit_window) : sizeof(uint32_t)];
	char	   *c = a;

	t4r_rng_seed(&rng, t4r_hash64(seed, (uint64_t) epoch, what, 0));
	for (int64_t i = n - 1; i > 0; i--)
	{
		int64_t		j = (int64_t) t4r_rng_below(&rng, (uint64_t) i + 1);

		memcpy(t, c + i * size, size);
		memcpy(c + i * size, c + j * size, size);
		memcpy(c + j * size, t, size);
	}
}

/*
 * tie_shuffle: the items of every user's training part (positions 0 .. tl-1;
 * the validation and test targets after it stay put) that share a timestamp
 * put in a random order keyed by (seed, epoch) -- each epoch shuffles the
 * previous epoch's order again.  Timestamps are equal within a run, so
 * seq_ts still belongs to `items` position by position.
 */
void
t4r_shuffle_ties(const t4r_dataset *ds, int32_t *items, uint64_t seed, int epoch)
{
	t4r_rng		rng;

	t4r_rng_seed(&rng, t4r_hash64(seed, (uint64_t) epoch, 0x74696573ULL, 0));
	for (int64_t u = 0; u < ds->n_users; u++)
		t4r_shuffle_runs(&rng, items + ds->seq_off[u], ds->seq_ts + ds->seq_off[u],
						 train_len(ds, u));
}

/*
 * The all_positions windows of every user's training part, in canonical
 * order (users ascending, windows in t4r_window_plan order).  Returns the
 * number of windows in *nwin and the array in *out (malloc'd).
 */
static int
fit_windows_build(const t4r_dataset *ds, int L, fit_window **out, int64_t *nwin,
				  char *err, size_t errlen)
{
	fit_window *win;
	int64_t		n = 0,
				k = 0,
				maxw = 0;
	int64_t    *st = NULL;
	int32_t    *ln = NULL,
			   *lf = NULL;

	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		tl = train_len(ds, u);

		if (tl > 1)
		{
			int64_t		nw = t4r_window_plan(tl - 1, L, NULL, NULL, NULL);

			n += nw;
			if (nw > maxw)
				maxw = nw;
		}
	}
	win = malloc((size_t) n * sizeof(fit_window));
	st = malloc(sizeof(int64_t) * (size_t) (maxw > 0 ? maxw : 1));
	ln = malloc(sizeof(int32_t) * (size_t) (maxw > 0 ? maxw : 1));
	lf = malloc(sizeof(int32_t) * (size_t) (maxw > 0 ? maxw : 1));
	if (!win || !st || !ln || !lf)
	{
		free(win);
		free(st);
		free(ln);
		free(lf);
		t4r_set_err(err, errlen, "out of memory for %lld training windows", (long long) n);
		return T4R_ENOMEM;
	}
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		tl = train_len(ds, u),
					nw;

		if (tl < 2)
			continue;
		nw = t4r_window_plan(tl - 1, L, st, ln, lf);
		for (int64_t i = 0; i < nw; i++)
		{
			win[k].pos = (uint32_t) (ds->seq_off[u] + st[i]);
			win[k].n = ln[i];
			win[k].lf = lf[i];
			k++;
		}
	}
	free(st);
	free(ln);
	free(lf);
	*out = win;
	*nwin = n;
	return T4R_OK;
}

/*
 * One all_positions epoch: the windows shuffled by (seed, epoch) -- the
 * previous epoch's order shuffled again, still a function of the seed -- and
 * a batch is the next windows until they hold batch_size loss terms.
 */
static int
fit_epoch_windows(fit_state *f, fit_window *win, int64_t nwin)
{
	const t4r_dataset *ds = f->ds;
	int			B = f->m->cfg.batch_size;
	int64_t		wi = 0,
				acc = 0;
	int			rc;

	fit_shuffle(win, nwin, sizeof(fit_window), f->m->cfg.seed, f->epoch, 0x77696e646f77ULL);
	f->steps_per_epoch = 0;
	for (int64_t i = 0; i < nwin; i++)
	{
		acc += win[i].n - win[i].lf;
		if (acc >= B || i == nwin - 1)
		{
			f->steps_per_epoch++;
			acc = 0;
		}
	}
	while (wi < nwin)
	{
		int			ns = 0;
		int64_t		terms = 0;

		while (wi < nwin && terms < B && ns < B)
		{
			const fit_window *fw = &win[wi++];
			t4r_sample *s = &f->batch[ns++];

			s->items = f->items + fw->pos;
			s->ts = ds->seq_ts + fw->pos;
			s->n = fw->n;
			s->target = f->items[fw->pos + fw->n];
			s->targets = f->items + fw->pos + 1;
			s->loss_from = fw->lf;
			terms += fw->n - fw->lf;
		}
		if ((rc = fit_step(f, ns, terms)) != T4R_OK)
			return rc;
	}
	return T4R_OK;
}

/*
 * tie_targets: the number of positions p, p+1, ... before te (the end of the
 * user's training part, so never a validation or test target) that share
 * position p's timestamp.
 */
static int32_t
tie_run(const t4r_dataset *ds, int64_t p, int64_t te)
{
	int64_t		q = p + 1;

	while (q < te && ds->seq_ts[q] == ds->seq_ts[p])
		q++;
	return (int32_t) (q - p);
}

/*
 * One per-prefix epoch: every target position of the training parts (all[],
 * room for S) in canonical order, shuffled by (seed, epoch); a sample is the
 * at most max_seq_len items before its target.
 */
static int
fit_epoch_prefixes(fit_state *f, uint32_t *all, int64_t S)
{
	const t4r_dataset *ds = f->ds;
	int			B = f->m->cfg.batch_size,
				L = f->m->cfg.max_seq_len,
				tie_targets = f->m->cfg.tie_targets && ds->seq_ts != NULL,
				rc;
	int64_t		si = 0;

	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					tl = train_len(ds, u);

		for (int64_t j = 1; j < tl; j++)
			all[si++] = (uint32_t) (off + j);
	}
	fit_shuffle(all, S, sizeof(uint32_t), f->m->cfg.seed, f->epoch, 0x73687566666c65ULL);
	f->steps_per_epoch = (S + B - 1) / B;
	for (int64_t b0 = 0; b0 < S; b0 += B)
	{
		int			ns = (int) (S - b0 < B ? S - b0 : B);

		for (int i = 0; i < ns; i++)
		{
			int64_t		p = all[b0 + i];
			int64_t		u = user_of_pos(ds, p);
			int64_t		j = p - ds->seq_off[u];
			int32_t		n = (int32_t) (j < L ? j : L);
			t4r_sample *s = &f->batch[i];

			s->items = f->items + p - n;
			s->ts = ds->seq_ts + p - n;
			s->n = n;
			s->target = f->items[p];
			s->targets = NULL;
			s->loss_from = 0;
			s->soft = f->items + p;
			s->nsoft = tie_targets ?
				tie_run(ds, p, ds->seq_off[u] + train_len(ds, u)) : 1;
		}
		if ((rc = fit_step(f, ns, ns)) != T4R_OK)
			return rc;
	}
	return T4R_OK;
}

/*
 * The end of an epoch: the host model follows the backend (the best epoch's
 * weights are kept on the host), the weights are checked (finite losses do
 * not guarantee finite weights: an infinite gradient makes Adam's update
 * NaN; fit_check_weights, all refit's second pass does), then scored:
 * validation NDCG@10 into *ndcg10.  With ema_decay the
 * model holds the moving average from here on (the caller keeps it when it
 * is the best and swaps the weights back).
 */
static int
fit_check_weights(fit_state *f)
{
	const t4r_backend *be = f->o.backend;
	char		msg[256] = "";
	int			rc;

	if (be && (rc = be->sync_to_host(be->ctx)) != T4R_OK)
	{
		backend_err(f->err, f->errlen, be, "copying the parameters back failed", rc);
		return rc;
	}
	if ((rc = t4r_model_check_finite(f->m, msg, sizeof(msg))) != T4R_OK)
		t4r_set_err(f->err, f->errlen, "training diverged in epoch %d: %s", f->epoch, msg);
	return rc;
}

static int
fit_validate(fit_state *f, double *ndcg10)
{
	const t4r_backend *be = f->o.backend;
	const int	k10 = 10;
	int			rc;

	if ((rc = fit_check_weights(f)) != T4R_OK)
		return rc;
	if (f->ema)
		fit_ema_swap(f);
	rc = t4r_evaluate_backend(f->m, f->ds, T4R_SPLIT_VALID, &k10, 1, f->o.train.threads,
							  f->o.train.interrupt, f->o.train.interrupt_ud, be,
							  NULL, ndcg10, NULL);
	if (rc != T4R_OK)
	{
		if (rc == T4R_ECANCELLED)
			t4r_set_err(f->err, f->errlen, "training cancelled");
		else
			backend_err(f->err, f->errlen, be, "validation failed", rc);
		return rc;
	}
	if (!isfinite(*ndcg10))
	{
		t4r_set_err(f->err, f->errlen, "training diverged: the validation NDCG@10 of epoch %d is not finite",
					f->epoch);
		return T4R_ENONFINITE;
	}
	return T4R_OK;
}

/*
 * The checks before any work; the training sample count into *S.  Fills in
 * the robust time path's gap scale from the training data when the config
 * has none.
 */
static int
fit_check(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *o,
		  int64_t *S, char *err, size_t errlen)
{
	int64_t		nvalid = 0;

	*S = 0;
	if (o->train.threads < 1)
	{
		t4r_set_err(err, errlen, "threads must be at least 1 (got %d)", o->train.threads);
		return T4R_EINVAL;
	}
	if (m->cfg.n_items != ds->n_items)
	{
		t4r_set_err(err, errlen, "the model has %d item rows but the dataset %d",
					m->cfg.n_items, (int) ds->n_items);
		return T4R_EMISMATCH;
	}
	if (m->cfg.batch_size < 1 || m->cfg.max_seq_len < 1 ||
		(o->epochs > 0 ? o->epochs : m->cfg.epochs) < 1 ||
		(o->patience > 0 ? o->patience : m->cfg.patience) < 1)
	{
		t4r_set_err(err, errlen, "batch_size, epochs, patience and max_seq_len must be positive");
		return T4R_EINVAL;
	}
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		tl = train_len(ds, u);

		if (tl > 1)
			*S += tl - 1;
		if (ds->seq_off[u + 1] - ds->seq_off[u] >= 3)
			nvalid++;
	}
	if (*S == 0)
	{
		t4r_set_err(err, errlen, "no training samples: every user needs at least 4 interactions "
					"(%lld users, %lld interactions after filtering)",
					(long long) ds->n_users, (long long) ds->n_interactions);
		return T4R_EDATA;
	}
	if (nvalid == 0)
	{
		t4r_set_err(err, errlen, "no user has a validation target (users need at least 3 interactions)");
		return T4R_EDATA;
	}
	if (m->dims.allpos && o->backend != NULL)
	{
		t4r_set_err(err, errlen, "training \"all_positions\" is not supported by this backend");
		return T4R_EINVAL;
	}
	if (m->cfg.ema_decay > 0 && o->backend != NULL)
	{
		t4r_set_err(err, errlen, "option \"ema_decay\" is not supported by this backend");
		return T4R_EINVAL;
	}
	if ((m->cfg.label_smoothing > 0 || m->cfg.tie_targets || m->cfg.tie_average > 1) &&
		o->backend != NULL)
	{
		t4r_set_err(err, errlen, "options \"label_smoothing\", \"tie_targets\" and \"tie_average\" are not supported by this backend");
		return T4R_EINVAL;
	}
	if (m->dims.robust && o->backend != NULL)
	{
		t4r_set_err(err, errlen, "time_features \"robust\" is not supported by this backend");
		return T4R_EINVAL;
	}
	if (o->backend != NULL && (o->backend->step == NULL || o->backend->sync_to_host == NULL))
	{
		t4r_set_err(err, errlen, "t4r_fit: the backend needs step and sync_to_host");
		return T4R_EINVAL;
	}
	/* the robust time path's gap scale comes from the training data */
	if (m->dims.robust && !(m->cfg.time_scale > 0))
		m->cfg.time_scale = t4r_dataset_time_scale(ds);
	return T4R_OK;
}

/*
 * One pass over the epochs.  fixed == 0: t4r_fit (validation after every
 * epoch, early stopping, the best epoch's weights kept); fixed > 0: exactly
 * that many epochs without validation, the last epoch's weights kept
 * (refit's second pass).
 */
static int
fit_run(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *opts, int fixed,
		t4r_fit_result *res, char *err, size_t errlen)
{
	fit_state	f;
	uint32_t   *all = NULL;		/* target positions: 4 bytes per sample */
	fit_window *win = NULL;		/* all_positions: the windows */
	int32_t    *tied = NULL;		/* tie_shuffle: the shuffled items */
	int64_t		nwin = 0,
				S = 0;
	t4r_real   *best = NULL;
	int			epochs,
				patience,
				rc;
	int			best_epoch = 0,
				since_best = 0;
	double		best_ndcg = -1.0,
				lr0 = m ? m->cfg.learning_rate : 0,	/* lr_decay changes it while fitting */
				t0 = now_seconds();

	if (res)
		memset(res, 0, sizeof(*res));
	if (m == NULL || ds == NULL)
	{
		t4r_set_err(err, errlen, "t4r_fit: model and dataset must not be NULL");
		return T4R_EINVAL;
	}
	memset(&f, 0, sizeof(f));
	f.m = m;
	f.ds = ds;
	f.err = err;
	f.errlen = errlen;
	if (opts)
		f.o = *opts;
	else
		f.o.train.threads = 1;
	if ((rc = fit_check(m, ds, &f.o, &S, err, errlen)) != T4R_OK)
		return rc;
	epochs = fixed > 0 ? fixed : f.o.epochs > 0 ? f.o.epochs : m->cfg.epochs;
	patience = f.o.patience > 0 ? f.o.patience : m->cfg.patience;

	if (m->dims.allpos &&
		(rc = fit_windows_build(ds, m->cfg.max_seq_len, &win, &nwin, err, errlen)) != T4R_OK)
		goto done;
	all = malloc(m->dims.allpos ? sizeof(uint32_t) : (size_t) S * sizeof(uint32_t));
	f.batch = malloc((size_t) (m->cfg.batch_size < S ? m->cfg.batch_size : S) * sizeof(t4r_sample));
	best = fixed > 0 ? NULL : malloc(m->layout.total * sizeof(t4r_real));
	if (!all || !f.batch || (fixed == 0 && !best))
	{
		rc = T4R_ENOMEM;
		t4r_set_err(err, errlen, "out of memory for %lld training samples", (long long) S);
		goto done;
	}
	f.items = ds->seq_items;
	if (m->cfg.tie_shuffle && ds->seq_ts != NULL && ds->seq_off[ds->n_users] > 0)
	{
		size_t		nit = (size_t) ds->seq_off[ds->n_users];

		tied = malloc(sizeof(int32_t) * nit);
		if (!tied)
		{
			rc = T4R_ENOMEM;
			t4r_set_err(err, errlen, "out of memory for tie_shuffle's copy of %zu items", nit);
			goto done;
		}
		memcpy(tied, ds->seq_items, sizeof(int32_t) * nit);
		f.items = tied;
	}
	if (m->cfg.ema_decay > 0)
	{
		f.ema = malloc(m->layout.total * sizeof(t4r_real));
		if (!f.ema)
		{
			rc = T4R_ENOMEM;
			t4r_set_err(err, errlen, "out of memory for ema_decay's copy of the weights");
			goto done;
		}
		memcpy(f.ema, m->params, m->layout.total * sizeof(t4r_real));
	}
	if (f.o.backend == NULL &&
		(rc = t4r_trainer_create(m, &f.o.train, &f.tr, err, errlen)) != T4R_OK)
		goto done;

	for (f.epoch = 1; f.epoch <= epochs; f.epoch++)
	{
		double		te = now_seconds(),
					ndcg10 = fixed > 0 ? NAN : 0;
		t4r_epoch_info info;

		f.lsum = 0;
		f.step = 0;
		if (fixed > 0 && f.o.lr_schedule)
			m->cfg.learning_rate = f.o.lr_schedule[f.epoch - 1];
		if (tied)
			t4r_shuffle_ties(ds, tied, m->cfg.seed, f.epoch);
		rc = m->dims.allpos ? fit_epoch_windows(&f, win, nwin) : fit_epoch_prefixes(&f, all, S);
		if (rc == T4R_OK)
			rc = fixed > 0 ? fit_check_weights(&f) : fit_validate(&f, &ndcg10);
		if (rc != T4R_OK)
			goto done;
		if (fixed > 0)
			best_epoch = f.epoch;
		else if (ndcg10 > best_ndcg)
		{
			best_ndcg = ndcg10;
			best_epoch = f.epoch;
			since_best = 0;
			memcpy(best, m->params, m->layout.total * sizeof(t4r_real));
		}
		else if (++since_best % m->cfg.lr_decay_patience == 0 && m->cfg.lr_decay < 1)
			m->cfg.learning_rate *= m->cfg.lr_decay;	/* both backends read it per step */
		if (f.ema_swapped)
			fit_ema_swap(&f);	/* training goes on from the weights */

		memset(&info, 0, sizeof(info));
		info.epoch = f.epoch;
		info.loss = f.lsum / (double) S;
		info.valid_ndcg10 = ndcg10;
		info.seconds = now_seconds() - te;
		info.best_epoch = best_epoch;
		info.best_ndcg10 = fixed > 0 ? NAN : best_ndcg;
		info.learning_rate = m->cfg.learning_rate;
		if (f.o.epoch_done)
			f.o.epoch_done(f.o.ud, &info);
		if (res)
			res->epochs_run = f.epoch;
		if (fixed == 0 && since_best >= patience)
			break;
	}
	if (fixed == 0)
		memcpy(m->params, best, m->layout.total * sizeof(t4r_real));
	else if (f.ema)
		memcpy(m->params, f.ema, m->layout.total * sizeof(t4r_real));
	rc = T4R_OK;
	if (res)
	{
		res->best_epoch = best_epoch;
		res->best_valid_ndcg10 = fixed > 0 ? NAN : best_ndcg;
		res->seconds = now_seconds() - t0;
		res->train_samples = S;
	}

done:
	if (f.ema_swapped)
		fit_ema_swap(&f);
	m->cfg.learning_rate = lr0;
	if (f.tr)
		t4r_trainer_free(f.tr);
	free(all);
	free(win);
	free(tied);
	free(f.batch);
	free(best);
	free(f.ema);
	return rc;
}

/* tie_shuffle "auto": 0 or 1 from the order of ds's training parts (before
 * refit's extension), written into the model's configuration */
static int
fit_resolve_ties(t4r_model *m, const t4r_dataset *ds, char *err, size_t errlen)
{
	t4r_tie_stats t;
	int			rc;

	if (m == NULL || ds == NULL || m->cfg.tie_shuffle != T4R_TIE_SHUFFLE_AUTO)
		return T4R_OK;
	if ((rc = t4r_tie_order_test(ds, &t)) != T4R_OK)
	{
		t4r_set_err(err, errlen, "out of memory for tie_shuffle \"auto\"'s test of the order of equal timestamps");
		return rc;
	}
	m->cfg.tie_shuffle = t4r_tie_shuffle_resolve(&t);
	return T4R_OK;
}

int
t4r_fit(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *opts,
		t4r_fit_result *res, char *err, size_t errlen)
{
	int			rc;

	if (res)
		memset(res, 0, sizeof(*res));
	if ((rc = fit_resolve_ties(m, ds, err, errlen)) != T4R_OK)
		return rc;
	return fit_run(m, ds, opts, 0, res, err, errlen);
}

int
t4r_refit(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *opts,
		  int epochs, t4r_fit_result *res, char *err, size_t errlen)
{
	t4r_dataset with_valid;
	int			rc;

	if (res)
		memset(res, 0, sizeof(*res));
	if (m == NULL || ds == NULL || epochs < 1)
	{
		t4r_set_err(err, errlen, "t4r_refit: model and dataset must not be NULL and epochs must be positive");
		return T4R_EINVAL;
	}
	if (opts && opts->backend)
	{
		t4r_set_err(err, errlen, "option \"refit\" is not supported by this backend");
		return T4R_EINVAL;
	}
	if ((rc = fit_resolve_ties(m, ds, err, errlen)) != T4R_OK)
		return rc;
	with_valid = *ds;			/* shares every array; only train_len differs */
	with_valid.train_on_valid = 1;
	return fit_run(m, &with_valid, opts, epochs, res, err, errlen);
}
