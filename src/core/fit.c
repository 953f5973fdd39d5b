/*
 * fit.c - the fit loop (docs/MODEL.md, "Training"): epochs of shuffled
 * mini-batches (per-prefix samples, or all_positions windows), a check of
 * the weights after every epoch, validation NDCG@10 with early stopping,
 * the best epoch's weights kept.  One step is t4r_trainer_step (train.c) or
 * a backend's step (the CUDA trainer).
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

/* "what: <backend message or the code's text>" */
static void
backend_err(char *err, size_t errlen, const t4r_backend *b, const char *what, int rc)
{
	const char *msg = (b && b->error) ? b->error(b->ctx) : NULL;

	t4r_set_err(err, errlen, "%s: %s", what, (msg && msg[0]) ? msg : t4r_strerror(rc));
}

int
t4r_fit(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *opts,
		t4r_fit_result *res, char *err, size_t errlen)
{
	t4r_fit_opts o;
	t4r_trainer *tr = NULL;
	uint32_t   *all = NULL;		/* target positions: 4 bytes per sample */
	fit_window *win = NULL;		/* all_positions: the windows */
	int64_t		nwin = 0;
	int			allpos = m ? m->dims.allpos : 0;
	t4r_sample *batch = NULL;
	t4r_real   *best = NULL;
	int64_t		S = 0,
				nvalid = 0,
				si = 0;
	int			L,
				B,
				epochs,
				patience,
				rc;
	int			best_epoch = 0,
				since_best = 0,
				epoch;
	double		best_ndcg = -1.0,
				t0 = now_seconds();
	int64_t		steps_per_epoch;
	const int	k10 = 10;

	if (res)
		memset(res, 0, sizeof(*res));
	if (m == NULL || ds == NULL)
	{
		t4r_set_err(err, errlen, "t4r_fit: model and dataset must not be NULL");
		return T4R_EINVAL;
	}
	if (opts)
		o = *opts;
	else
	{
		memset(&o, 0, sizeof(o));
		o.train.threads = 1;
	}
	if (o.train.threads < 1)
	{
		t4r_set_err(err, errlen, "threads must be at least 1 (got %d)", o.train.threads);
		return T4R_EINVAL;
	}
	if (m->cfg.n_items != ds->n_items)
	{
		t4r_set_err(err, errlen, "the model has %d item rows but the dataset %d",
				m->cfg.n_items, (int) ds->n_items);
		return T4R_EMISMATCH;
	}
	L = m->cfg.max_seq_len;
	B = m->cfg.batch_size;
	epochs = o.epochs > 0 ? o.epochs : m->cfg.epochs;
	patience = o.patience > 0 ? o.patience : m->cfg.patience;
	if (B < 1 || epochs < 1 || patience < 1 || L < 1)
	{
		t4r_set_err(err, errlen, "batch_size, epochs, patience and max_seq_len must be positive");
		return T4R_EINVAL;
	}
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		tl = train_len(ds, u);

		if (tl > 1)
			S += tl - 1;
		if (ds->seq_off[u + 1] - ds->seq_off[u] >= 3)
			nvalid++;
	}
	if (S == 0)
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
	if (allpos && o.backend != NULL)
	{
		t4r_set_err(err, errlen, "training \"all_positions\" is not supported by this backend");
		return T4R_EINVAL;
	}
	if (m->dims.robust && o.backend != NULL)
	{
		t4r_set_err(err, errlen, "time_features \"robust\" is not supported by this backend");
		return T4R_EINVAL;
	}
	/* the robust time path's gap scale comes from the training data */
	if (m->dims.robust && !(m->cfg.time_scale > 0))
		m->cfg.time_scale = t4r_dataset_time_scale(ds);

	if (allpos)
	{
		int64_t		k = 0;

		for (int64_t u = 0; u < ds->n_users; u++)
		{
			int64_t		tl = train_len(ds, u);

			if (tl > 1)
				nwin += t4r_window_plan(tl - 1, L, NULL, NULL, NULL);
		}
		win = malloc((size_t) nwin * sizeof(fit_window));
		if (win == NULL)
		{
			rc = T4R_ENOMEM;
			t4r_set_err(err, errlen, "out of memory for %lld training windows", (long long) nwin);
			goto done;
		}
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			int64_t		tl = train_len(ds, u);
			int64_t		st[64];
			int32_t		ln[64],
						lf[64];

			if (tl < 2)
				continue;
			/* the plan in pieces of at most 64 windows (long histories) */
			{
				int64_t		nw = t4r_window_plan(tl - 1, L, NULL, NULL, NULL);
				int64_t	   *pst = nw <= 64 ? st : malloc(sizeof(int64_t) * nw);
				int32_t    *pln = nw <= 64 ? ln : malloc(sizeof(int32_t) * nw);
				int32_t    *plf = nw <= 64 ? lf : malloc(sizeof(int32_t) * nw);

				if (!pst || !pln || !plf)
				{
					if (nw > 64)
					{
						free(pst);
						free(pln);
						free(plf);
					}
					rc = T4R_ENOMEM;
					t4r_set_err(err, errlen, "out of memory for the training windows");
					goto done;
				}
				t4r_window_plan(tl - 1, L, pst, pln, plf);
				for (int64_t i = 0; i < nw; i++)
				{
					win[k].pos = (uint32_t) (ds->seq_off[u] + pst[i]);
					win[k].n = pln[i];
					win[k].lf = plf[i];
					k++;
				}
				if (nw > 64)
				{
					free(pst);
					free(pln);
					free(plf);
				}
			}
		}
	}

	all = allpos ? malloc(sizeof(uint32_t)) : malloc((size_t) S * sizeof(uint32_t));
	batch = malloc((size_t) (B < S ? B : S) * sizeof(t4r_sample));
	best = malloc(m->layout.total * sizeof(t4r_real));
	if (!all || !batch || !best)
	{
		rc = T4R_ENOMEM;
		t4r_set_err(err, errlen, "out of memory for %lld training samples", (long long) S);
		goto done;
	}
	if (o.backend == NULL)
	{
		rc = t4r_trainer_create(m, &o.train, &tr, err, errlen);
		if (rc != T4R_OK)
			goto done;
	}
	else if (o.backend->step == NULL || o.backend->sync_to_host == NULL)
	{
		rc = T4R_EINVAL;
		t4r_set_err(err, errlen, "t4r_fit: the backend needs step and sync_to_host");
		goto done;
	}

	steps_per_epoch = (S + B - 1) / B;
	for (epoch = 1; epoch <= epochs; epoch++)
	{
		t4r_rng		rng;
		double		lsum = 0,
					te = now_seconds(),
					ndcg10 = 0;
		int64_t		step = 0;
		t4r_epoch_info info;

		if (allpos)
		{
			/* windows in canonical order, shuffled by (seed, epoch); a
			 * batch is the next windows until they hold batch_size targets */
			int64_t		wi = 0;

			t4r_rng_seed(&rng, t4r_hash64(m->cfg.seed, (uint64_t) epoch, 0x77696e646f77ULL, 0));
			for (int64_t i = nwin - 1; i > 0; i--)
			{
				int64_t		j = (int64_t) t4r_rng_below(&rng, (uint64_t) i + 1);
				fit_window	t = win[i];

				win[i] = win[j];
				win[j] = t;
			}
			/* win was built in canonical order once; later epochs shuffle
			 * the previous epoch's order, still a function of the seed */
			steps_per_epoch = 0;
			{
				int64_t		acc = 0;

				for (int64_t i = 0; i < nwin; i++)
				{
					acc += win[i].n - win[i].lf;
					if (acc >= B || i == nwin - 1)
					{
						steps_per_epoch++;
						acc = 0;
					}
				}
			}
			while (wi < nwin)
			{
				int			ns = 0;
				int64_t		terms = 0;
				double		loss = 0;

				if (o.train.interrupt && o.train.interrupt(o.train.interrupt_ud))
				{
					rc = T4R_ECANCELLED;
					t4r_set_err(err, errlen, "training cancelled");
					goto done;
				}
				while (wi < nwin && terms < B && ns < B)
				{
					const fit_window *fw = &win[wi++];

					batch[ns].items = ds->seq_items + fw->pos;
					batch[ns].ts = ds->seq_ts + fw->pos;
					batch[ns].n = fw->n;
					batch[ns].target = ds->seq_items[fw->pos + fw->n];
					batch[ns].targets = ds->seq_items + fw->pos + 1;
					batch[ns].loss_from = fw->lf;
					terms += fw->n - fw->lf;
					ns++;
				}
				rc = t4r_trainer_step(tr, batch, ns, &loss);
				if ((rc == T4R_OK || rc == T4R_ENONFINITE) && !isfinite(loss))
				{
					rc = T4R_ENONFINITE;
					t4r_set_err(err, errlen, "training diverged: the loss of epoch %d, step %lld of %lld is %s",
							epoch, (long long) step + 1, (long long) steps_per_epoch,
							isnan(loss) ? "NaN" : "infinite");
					goto done;
				}
				if (rc != T4R_OK)
				{
					if (rc == T4R_ECANCELLED)
						t4r_set_err(err, errlen, "training cancelled");
					else
						backend_err(err, errlen, NULL, "training step failed", rc);
					goto done;
				}
				lsum += loss * (double) terms;
				step++;
				if (o.progress)
					o.progress(o.ud, epoch, step, steps_per_epoch, loss);
			}
			goto epoch_end;
		}
		/* canonical order, then a shuffle keyed by (seed, epoch) */
		si = 0;
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			int64_t		off = ds->seq_off[u],
						tl = train_len(ds, u);

			for (int64_t j = 1; j < tl; j++)
				all[si++] = (uint32_t) (off + j);
		}
		t4r_rng_seed(&rng, t4r_hash64(m->cfg.seed, (uint64_t) epoch, 0x73687566666c65ULL, 0));
		for (int64_t i = S - 1; i > 0; i--)
		{
			int64_t		j = (int64_t) t4r_rng_below(&rng, (uint64_t) i + 1);
			uint32_t	t = all[i];

			all[i] = all[j];
			all[j] = t;
		}

		for (int64_t b0 = 0; b0 < S; b0 += B)
		{
			int			ns = (int) (S - b0 < B ? S - b0 : B);
			double		loss = 0;

			if (o.train.interrupt && o.train.interrupt(o.train.interrupt_ud))
			{
				rc = T4R_ECANCELLED;
				t4r_set_err(err, errlen, "training cancelled");
				goto done;
			}
			for (int i = 0; i < ns; i++)
			{
				int64_t		p = all[b0 + i];
				int64_t		j = p - ds->seq_off[user_of_pos(ds, p)];
				int32_t		n = (int32_t) (j < L ? j : L);

				batch[i].items = ds->seq_items + p - n;
				batch[i].ts = ds->seq_ts + p - n;
				batch[i].n = n;
				batch[i].target = ds->seq_items[p];
				batch[i].targets = NULL;
				batch[i].loss_from = 0;
			}
			if (o.backend)
				rc = o.backend->step(o.backend->ctx, batch, ns, &loss);
			else
				rc = t4r_trainer_step(tr, batch, ns, &loss);
			/* a NaN or infinite loss: the weights are (or are about to be)
			 * poisoned, and every later step and metric would be too */
			if ((rc == T4R_OK || rc == T4R_ENONFINITE) && !isfinite(loss))
			{
				rc = T4R_ENONFINITE;
				t4r_set_err(err, errlen, "training diverged: the loss of epoch %d, step %lld of %lld is %s",
						epoch, (long long) step + 1, (long long) steps_per_epoch,
						isnan(loss) ? "NaN" : "infinite");
				goto done;
			}
			if (rc != T4R_OK)
			{
				if (rc == T4R_ECANCELLED)
					t4r_set_err(err, errlen, "training cancelled");
				else
					backend_err(err, errlen, o.backend, "training step failed", rc);
				goto done;
			}
			lsum += loss * ns;
			step++;
			if (o.progress)
				o.progress(o.ud, epoch, step, steps_per_epoch, loss);
		}

epoch_end:
		/* the host model follows the backend once per epoch (the best
		 * epoch's weights are kept on the host) */
		if (o.backend && (rc = o.backend->sync_to_host(o.backend->ctx)) != T4R_OK)
		{
			backend_err(err, errlen, o.backend, "copying the parameters back failed", rc);
			goto done;
		}
		/* finite losses do not guarantee finite weights (an infinite
		 * gradient makes Adam's update NaN): check them once per epoch,
		 * before they are scored or kept as the best */
		{
			char		msg[256] = "";

			if ((rc = t4r_model_check_finite(m, msg, sizeof(msg))) != T4R_OK)
			{
				t4r_set_err(err, errlen, "training diverged in epoch %d: %s", epoch, msg);
				goto done;
			}
		}
		rc = t4r_evaluate_backend(m, ds, T4R_SPLIT_VALID, &k10, 1, o.train.threads,
								  o.train.interrupt, o.train.interrupt_ud, o.backend,
								  NULL, &ndcg10, NULL);
		if (rc != T4R_OK)
		{
			if (rc == T4R_ECANCELLED)
				t4r_set_err(err, errlen, "training cancelled");
			else
				backend_err(err, errlen, o.backend, "validation failed", rc);
			goto done;
		}
		if (!isfinite(ndcg10))
		{
			rc = T4R_ENONFINITE;
			t4r_set_err(err, errlen, "training diverged: the validation NDCG@10 of epoch %d is not finite",
					epoch);
			goto done;
		}
		if (ndcg10 > best_ndcg)
		{
			best_ndcg = ndcg10;
			best_epoch = epoch;
			since_best = 0;
			memcpy(best, m->params, m->layout.total * sizeof(t4r_real));
		}
		else
			since_best++;

		memset(&info, 0, sizeof(info));
		info.epoch = epoch;
		info.loss = lsum / (double) S;
		info.valid_ndcg10 = ndcg10;
		info.seconds = now_seconds() - te;
		info.best_epoch = best_epoch;
		info.best_ndcg10 = best_ndcg;
		if (o.epoch_done)
			o.epoch_done(o.ud, &info);
		if (res)
			res->epochs_run = epoch;
		if (since_best >= patience)
			break;
	}
	memcpy(m->params, best, m->layout.total * sizeof(t4r_real));
	rc = T4R_OK;
	if (res)
	{
		res->best_epoch = best_epoch;
		res->best_valid_ndcg10 = best_ndcg;
		res->seconds = now_seconds() - t0;
		res->train_samples = S;
	}

done:
	if (tr)
		t4r_trainer_free(tr);
	free(all);
	free(win);
	free(batch);
	free(best);
	return rc;
}
