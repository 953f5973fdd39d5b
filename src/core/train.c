/*
 * train.c - the trainer: micro-batched, multi-threaded loss/gradient and
 * Adam (torch.optim.Adam semantics; with cfg.weight_decay > 0 torch.optim.AdamW's
 * decoupled weight decay).
 *
 * A batch of ns samples is cut into one contiguous part per thread, of about
 * equal cost (rows of the item path plus a per-sample share for the time
 * path and scoring); thread t runs its part in micro-batches of at most mb
 * samples (mb from the memory budget) on its own workspace and accumulates
 * into its own gradient buffer; the buffers are reduced in thread order.  Results are therefore deterministic
 * for a fixed thread count, and micro-batching changes only the float
 * summation order.  Dropout masks are keyed by (seed, step, sample index in
 * the batch, site), so they do not depend on the split either.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>
#include <cblas.h>
#include "model_internal.h"
#include "ops.h"

struct t4r_trainer
{
	t4r_model  *m;
	t4r_train_opts opts;
	int			threads;
	int			mb;
	t4r_real   *grads;			/* [total] reduced gradient */
	t4r_real   *am, *av;		/* Adam moments */
	t4r_real  **tg;				/* per-thread gradient buffers (tg[0] == grads if 1 thread) */
	t4r_ws	  **ws;
	t4r_pview  *gv;				/* per-thread views of tg[t] */
	int64_t		steps;
};

#define DEFAULT_BUDGET ((size_t) 1 << 30)

static int
mb_cap(const t4r_config *cfg)
{
	int			L = cfg->max_seq_len;
	int			cap = 8192 / (L > 0 ? L : 1);

	if (cap < 8)
		cap = 8;
	if (cap > cfg->batch_size)
		cap = cfg->batch_size;
	if (cap < 1)
		cap = 1;
	return cap;
}

static size_t
trainer_bytes(const t4r_dims *D, int chunk, size_t total, int threads, int mb)
{
	size_t		b = 0;
	size_t		e = t4r_ws_elems(D, chunk, mb, 1);

	if (e == (size_t) -1)
		return (size_t) -1;
	b += 3 * total * sizeof(t4r_real);	/* grads, Adam m, v */
	if (threads > 1)
		b += (size_t) threads * total * sizeof(t4r_real);
	b += (size_t) threads * ((e + 16) * sizeof(t4r_real) + sizeof(t4r_ws) +
							 (size_t) mb * (sizeof(int) + sizeof(size_t)) +
							 (size_t) mb * D->L * sizeof(int32_t) * (D->allpos ? 2 : 1));
	b += (size_t) threads * sizeof(t4r_pview);
	return b;
}

int
t4r_trainer_estimate(const t4r_config *cfg, const t4r_train_opts *opts,
					 size_t *needed, int *micro_batch)
{
	t4r_dims	D;
	t4r_layout	lay;
	size_t		budget,
				total,
				b1;
	int			threads,
				cap,
				lo,
				hi;
	int			rc;

	if (needed)
		*needed = 0;
	if (micro_batch)
		*micro_batch = 0;
	if (!cfg || !opts || opts->threads < 1)
		return T4R_EINVAL;
	rc = t4r_layout_build(cfg, &lay);
	if (rc != T4R_OK)
		return rc;
	total = lay.total;
	t4r_layout_free(&lay);
	t4r_dims_from_config(cfg, &D);
	if (D.layers > T4R_MAX_LAYERS)
		return T4R_EINVAL;
	budget = opts->mem_budget ? opts->mem_budget : DEFAULT_BUDGET;
	threads = opts->threads;
	b1 = trainer_bytes(&D, cfg->chunk_size, total, threads, 1);
	if (b1 == (size_t) -1)
		return T4R_ENOMEM;
	if (b1 > budget)
	{
		if (needed)
			*needed = b1;
		return T4R_EBUDGET;
	}
	/* largest mb <= cap that fits (bytes grow monotonically with mb) */
	cap = mb_cap(cfg);
	lo = 1;
	hi = cap;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo + 1) / 2;

		if (trainer_bytes(&D, cfg->chunk_size, total, threads, mid) <= budget)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (needed)
		*needed = trainer_bytes(&D, cfg->chunk_size, total, threads, lo);
	if (micro_batch)
		*micro_batch = lo;
	return T4R_OK;
}

void
t4r_trainer_free(t4r_trainer *t)
{
	if (!t)
		return;
	if (t->ws)
		for (int i = 0; i < t->threads; i++)
			t4r_ws_free(t->ws[i]);
	if (t->tg)
		for (int i = 1; i < t->threads; i++)
			free(t->tg[i]);
	if (t->tg && t->threads > 1 && t->tg[0] != t->grads)
		free(t->tg[0]);
	free(t->ws);
	free(t->tg);
	free(t->gv);
	free(t->grads);
	free(t->am);
	free(t->av);
	free(t);
}

int
t4r_trainer_create(t4r_model *m, const t4r_train_opts *opts, t4r_trainer **out,
				   char *err, size_t errlen)
{
	t4r_trainer *t;
	size_t		needed = 0,
				total;
	int			mb = 0;
	int			rc;

	*out = NULL;
	if (!m || !opts || opts->threads < 1)
	{
		if (err && errlen)
			snprintf(err, errlen, "invalid trainer options");
		return T4R_EINVAL;
	}
	rc = t4r_trainer_estimate(&m->cfg, opts, &needed, &mb);
	if (rc == T4R_EBUDGET)
	{
		if (err && errlen)
			snprintf(err, errlen, "memory budget too small: training needs at least %zu bytes",
					 needed);
		return rc;
	}
	if (rc != T4R_OK)
	{
		if (err && errlen)
			snprintf(err, errlen, "cannot size the trainer: %s", t4r_strerror(rc));
		return rc;
	}
	total = m->layout.total;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->m = m;
	t->opts = *opts;
	t->threads = opts->threads;
	t->mb = mb;
	t->grads = calloc(total ? total : 1, sizeof(t4r_real));
	t->am = calloc(total ? total : 1, sizeof(t4r_real));
	t->av = calloc(total ? total : 1, sizeof(t4r_real));
	t->tg = calloc(t->threads, sizeof(t4r_real *));
	t->ws = calloc(t->threads, sizeof(t4r_ws *));
	t->gv = calloc(t->threads, sizeof(t4r_pview));
	if (!t->grads || !t->am || !t->av || !t->tg || !t->ws || !t->gv)
		goto nomem;
	for (int i = 0; i < t->threads; i++)
	{
		if (t->threads == 1)
			t->tg[i] = t->grads;
		else
		{
			t->tg[i] = calloc(total ? total : 1, sizeof(t4r_real));
			if (!t->tg[i])
				goto nomem;
		}
		t4r_pview_build(m, t->tg[i], &t->gv[i]);
		rc = t4r_ws_create(m, mb, 1, &t->ws[i]);
		if (rc != T4R_OK)
			goto nomem;
	}
	*out = t;
	return T4R_OK;
nomem:
	t4r_trainer_free(t);
	if (err && errlen)
		snprintf(err, errlen, "out of memory creating the trainer");
	return T4R_ENOMEM;
}

t4r_real *
t4r_trainer_grads(t4r_trainer *t)
{
	return t->grads;
}

int64_t
t4r_trainer_steps(const t4r_trainer *t)
{
	return t->steps;
}

/* relative cost of one sample: its item-path rows plus the time path and
 * scoring, which every sample pays whatever its length */
static inline double
sample_cost(const t4r_sample *s, int L)
{
	int			n = s->n < L ? s->n : L;

	return (double) (n > 0 ? n : 1) + L / 16.0 + 4.0;
}

/* cross-entropy terms of one sample: one, or (all_positions trainer) one per
 * loss position of the last L */
static inline int64_t
sample_terms(const t4r_sample *s, int L, int allpos)
{
	int			n,
				lf;

	if (!allpos || s->targets == NULL)
		return 1;
	n = s->n < L ? s->n : L;
	lf = s->loss_from - (s->n - n);
	lf = lf < 0 ? 0 : lf > n ? n : lf;
	return n - lf;
}

int
t4r_trainer_loss_grad(t4r_trainer *t, const t4r_sample *s, int ns, int training,
					  double *loss)
{
	size_t		total = t->m->layout.total;
	int			nt = t->threads;
	int			L = t->m->dims.L;
	int		   *part;
	double	   *tl;
	int		   *trc;
	int			rc = T4R_OK;
	int			stop = 0;
	uint64_t	step = (uint64_t) t->steps;
	int64_t		terms = 0;

	if (loss)
		*loss = 0;
	if (!s || ns < 1)
		return T4R_EINVAL;
	/* the loss is the mean over cross-entropy terms (= samples, except in
	 * all_positions training) */
	for (int i = 0; i < ns; i++)
		terms += sample_terms(&s[i], L, t->m->dims.allpos);
	if (terms < 1)
		return T4R_EINVAL;
	tl = calloc(nt, sizeof(double));
	trc = calloc(nt, sizeof(int));
	part = calloc(nt + 1, sizeof(int));
	if (!tl || !trc || !part)
	{
		free(tl);
		free(trc);
		free(part);
		return T4R_ENOMEM;
	}
	/* contiguous parts of about equal cost, one per thread (deterministic
	 * for a given batch and thread count) */
	{
		double		tot = 0,
					acc = 0;
		int			k = 1;

		for (int i = 0; i < ns; i++)
			tot += sample_cost(&s[i], L);
		part[0] = 0;
		for (int i = 0; i < ns && k < nt; i++)
		{
			acc += sample_cost(&s[i], L);
			while (k < nt && acc >= tot * k / nt)
				part[k++] = i + 1;
		}
		while (k <= nt)
			part[k++] = ns;
	}
	openblas_set_num_threads(1);
	for (int i = 0; i < nt; i++)
		memset(t->tg[i], 0, sizeof(t4r_real) * total);

#pragma omp parallel num_threads(nt)
	{
		int			tid = omp_get_thread_num();
		int			i0 = part[tid],
					i1 = part[tid + 1];

		for (;;)
		{
			int			cnt = i1 - i0 < t->mb ? i1 - i0 : t->mb;
			double		ls = 0;
			int			e,
						stopped;

#pragma omp atomic read
			stopped = stop;
			if (stopped || i0 >= i1)
				break;

			e = t4r_ws_forward(t->ws[tid], s + i0, cnt, i0, training, step);
			if (e == T4R_OK)
				e = t4r_ws_backward(t->ws[tid], s + i0, &t->gv[tid], 1.0 / (double) terms, &ls);
			if (e != T4R_OK)
			{
				trc[tid] = e;
#pragma omp atomic write
				stop = 1;
				break;
			}
			tl[tid] += ls;
			i0 += cnt;
			/* the calling thread polls the interrupt callback */
			if (tid == 0 && t->opts.interrupt && t->opts.interrupt(t->opts.interrupt_ud))
			{
				trc[0] = T4R_ECANCELLED;
#pragma omp atomic write
				stop = 1;
			}
		}
	}
	for (int i = 0; i < nt; i++)
		if (trc[i] != T4R_OK && rc == T4R_OK)
			rc = trc[i];
	if (rc == T4R_OK)
	{
		double		ls = 0;

		for (int i = 0; i < nt; i++)
			ls += tl[i];
		if (loss)
			*loss = ls / (double) terms;
		if (nt > 1)
		{
			t4r_real   *g = t->grads;
			t4r_real  **tg = t->tg;

#pragma omp parallel for num_threads(nt) schedule(static)
			for (size_t i = 0; i < total; i++)
			{
				t4r_real	acc = tg[0][i];

				for (int k = 1; k < nt; k++)
					acc += tg[k][i];
				g[i] = acc;
			}
		}
	}
	free(tl);
	free(trc);
	free(part);
	return rc;
}

int
t4r_trainer_step(t4r_trainer *t, const t4r_sample *s, int ns, double *loss)
{
	double		l = 0;
	int			rc = t4r_trainer_loss_grad(t, s, ns, 1, &l);
	size_t		total = t->m->layout.total;
	double		lr = t->m->cfg.learning_rate;
	/* AdamW: p *= 1 - lr * wd before the Adam update (1 exactly: Adam) */
	t4r_real	decay = (t4r_real) (1 - lr * t->m->cfg.weight_decay);
	double		b1 = 0.9,
				b2 = 0.999,
				eps = 1e-8;
	double		k,
				bc1,
				bc2s;
	t4r_real   *p = t->m->params,
			   *g = t->grads,
			   *am = t->am,
			   *av = t->av;

	if (loss)
		*loss = l;
	if (rc != T4R_OK)
		return rc;
	/* a non-finite loss means non-finite gradients: updating would poison
	 * every weight, so leave the parameters and Adam's state as they are */
	if (!isfinite(l))
		return T4R_ENONFINITE;
	k = (double) (t->steps + 1);
	bc1 = 1 - pow(b1, k);
	bc2s = sqrt(1 - pow(b2, k));
#pragma omp parallel for num_threads(t->threads) schedule(static)
	for (size_t i = 0; i < total; i++)
	{
		double		gi = g[i];
		double		mi = b1 * am[i] + (1 - b1) * gi;
		double		vi = b2 * av[i] + (1 - b2) * gi * gi;

		am[i] = (t4r_real) mi;
		av[i] = (t4r_real) vi;
		if (decay != 1)
			p[i] *= decay;
		p[i] -= (t4r_real) ((lr / bc1) * mi / (sqrt(vi) / bc2s + eps));
	}
	t->steps++;
	return T4R_OK;
}
