/*
 * infer.c - inference (eval mode, no dropout): one sequence on a context, or
 * many sequences on several threads in micro-batches.
 */
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <cblas.h>
#include "model_internal.h"
#include "ops.h"

struct t4r_infer_ctx
{
	const t4r_model *m;
	t4r_ws	   *ws;
	t4r_ipack  *ip;				/* packed projections (rgemm.c) */
	t4r_real	block[T4R_SCORE_BLOCK];	/* t4r_infer_topk's scores */
	uint8_t		bmask[T4R_SCORE_BLOCK]; /* and exclusions (all 0 between) */
};

int
t4r_infer_ctx_create(const t4r_model *m, t4r_infer_ctx **out)
{
	return t4r_infer_ctx_create_packed(m, NULL, out);
}

int
t4r_infer_ctx_create_packed(const t4r_model *m, const t4r_real *packed, t4r_infer_ctx **out)
{
	t4r_infer_ctx *c;
	int			rc;

	*out = NULL;
	if (!m)
		return T4R_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return T4R_ENOMEM;
	c->m = m;
	rc = t4r_ws_create(m, 1, 0, &c->ws);
	if (rc == T4R_OK)
		rc = t4r_ipack_create(m, packed, &c->ip);
	if (rc != T4R_OK)
	{
		t4r_ws_free(c->ws);
		free(c);
		return rc;
	}
	c->ws->ip = c->ip;
	*out = c;
	return T4R_OK;
}

void
t4r_infer_ctx_free(t4r_infer_ctx *ctx)
{
	if (!ctx)
		return;
	t4r_ws_free(ctx->ws);
	t4r_ipack_free(ctx->ip);
	free(ctx);
}

void
t4r_tie_order(uint64_t seed, int k, const int32_t *items, const double *ts, int n,
			  int32_t *out)
{
	uint64_t	h = 1469598103934665603ULL;	/* FNV-1a over the items */
	t4r_rng		rng;

	for (int i = 0; i < n; i++)
		h = (h ^ (uint64_t) (uint32_t) items[i]) * 1099511628211ULL;
	t4r_rng_seed(&rng, t4r_hash64(seed, (uint64_t) k, h, 0x7469656176ULL));
	memmove(out, items, sizeof(int32_t) * (size_t) n);
	if (k != 0 && ts != NULL)
		t4r_shuffle_runs(&rng, out, ts, n);
}

/*
 * The forward of inference: t4r_ws_forward in eval mode, then, with
 * tie_average K > 1, the histories whose window (the last L items) holds
 * equal timestamps are run K - 1 more times, each time with every run of
 * equal timestamps in the window put in a random order (Fisher-Yates keyed
 * by the model's seed, k and a hash of the window's items, so a history
 * always gets the same orders), and their final hidden vectors averaged.
 * The scores are linear in the hidden vector, so this averages the scores.
 * Histories without equal timestamps (or without times) are run once and
 * come out bit for bit as without the option.  Leaves w->hidden [S, d]
 * and w->S = S for t4r_ws_scores / t4r_ws_scores_rows.
 */
/* whether the window (the last L items) of smp holds two equal times */
static int
window_has_ties(const t4r_sample *smp, int L)
{
	int			w0 = smp->n > L ? smp->n - L : 0;

	for (int i = w0 + 1; smp->ts && i < smp->n; i++)
		if (smp->ts[i] == smp->ts[i - 1])
			return 1;
	return 0;
}

static int
infer_forward(t4r_ws *w, const t4r_sample *smp, int S)
{
	int			K = w->m->cfg.tie_average,
				L = w->m->cfg.max_seq_len,
				d = w->D.d,
				nt = 0,
				rc = t4r_ws_forward(w, smp, S, 0, 0, 0);
	int		   *tied;
	double	   *acc;
	int32_t    *perm;
	t4r_sample *sub;

	if (rc != T4R_OK || K <= 1)
		return rc;
	for (int s = 0; s < S; s++)
		nt += window_has_ties(&smp[s], L);
	if (nt == 0)
		return T4R_OK;			/* no allocation for histories without ties */
	tied = malloc(sizeof(int) * (size_t) nt);
	if (!tied)
		return T4R_ENOMEM;
	nt = 0;
	for (int s = 0; s < S; s++)
		if (window_has_ties(&smp[s], L))
			tied[nt++] = s;
	acc = malloc(sizeof(double) * (size_t) S * d);
	perm = malloc(sizeof(int32_t) * (size_t) nt * L);
	sub = malloc(sizeof(t4r_sample) * (size_t) nt);
	if (!acc || !perm || !sub)
		rc = T4R_ENOMEM;
	for (size_t i = 0; rc == T4R_OK && i < (size_t) S * d; i++)
		acc[i] = w->hidden[i];
	for (int k = 1; rc == T4R_OK && k < K; k++)
	{
		for (int j = 0; j < nt; j++)
		{
			const t4r_sample *o = &smp[tied[j]];
			int			w0 = o->n > L ? o->n - L : 0,
						n = o->n - w0;
			int32_t    *it = perm + (size_t) j * L;

			t4r_tie_order(w->m->cfg.seed, k, o->items + w0, o->ts + w0, n, it);
			sub[j] = *o;
			sub[j].items = it;
			sub[j].ts = o->ts + w0;
			sub[j].n = n;
		}
		rc = t4r_ws_forward(w, sub, nt, 0, 0, 0);
		for (int j = 0; rc == T4R_OK && j < nt; j++)
			for (int c = 0; c < d; c++)
				acc[(size_t) tied[j] * d + c] += w->hidden[(size_t) j * d + c];
	}
	if (rc == T4R_OK)
	{
		for (int j = 0; j < nt; j++)
			for (int c = 0; c < d; c++)
				acc[(size_t) tied[j] * d + c] /= K;
		for (size_t i = 0; i < (size_t) S * d; i++)
			w->hidden[i] = (t4r_real) acc[i];
		w->S = S;
	}
	free(tied);
	free(acc);
	free(perm);
	free(sub);
	return rc;
}

int
t4r_infer(t4r_infer_ctx *ctx, const int32_t *items, const double *ts, int n,
		  t4r_real *hidden, t4r_real *scores)
{
	t4r_sample	s;
	int			rc;

	if (!ctx || n < 1 || !items)
		return T4R_EINVAL;
	s.items = items;
	s.ts = ts;
	s.n = n;
	s.target = 0;
	rc = infer_forward(ctx->ws, &s, 1);
	if (rc != T4R_OK)
		return rc;
	if (hidden)
		memcpy(hidden, ctx->ws->hidden, sizeof(t4r_real) * ctx->m->dims.d);
	if (scores)
		t4r_ws_scores(ctx->ws, scores);
	return T4R_OK;
}

static int
cmp_i32(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a,
				y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

int
t4r_infer_topk(t4r_infer_ctx *ctx, const int32_t *items, const double *ts, int n,
			   int k, const int32_t *exclude, int nexclude, int32_t *rows, t4r_real *vals)
{
	t4r_sample	s;
	t4r_topk_state t;
	int32_t    *ex = NULL;
	int			rc,
				V,
				e = 0;

	if (!ctx || n < 1 || !items || k < 0 || (k > 0 && !rows) || nexclude < 0 ||
		(nexclude > 0 && !exclude))
		return T4R_EINVAL;
	V = ctx->m->dims.V;
	if (k > V - 1)
		k = V - 1;
	s.items = items;
	s.ts = ts;
	s.n = n;
	s.target = 0;
	rc = infer_forward(ctx->ws, &s, 1);
	if (rc != T4R_OK || k == 0)
		return rc;
	if (nexclude > 0)
	{
		ex = malloc(sizeof(int32_t) * (size_t) nexclude);
		if (!ex)
			return T4R_ENOMEM;
		memcpy(ex, exclude, sizeof(int32_t) * (size_t) nexclude);
		qsort(ex, nexclude, sizeof(int32_t), cmp_i32);
	}
	if (t4r_topk_init(&t, k, rows) != T4R_OK)
	{
		free(ex);
		return T4R_ENOMEM;
	}
	for (int r0 = 0; r0 < V; r0 += T4R_SCORE_BLOCK)
	{
		int			nr = V - r0 < T4R_SCORE_BLOCK ? V - r0 : T4R_SCORE_BLOCK;
		int			e0;

		t4r_ws_scores_rows(ctx->ws, r0, nr, ctx->block);
		while (e < nexclude && ex[e] < r0)
			e++;
		e0 = e;
		for (; e < nexclude && ex[e] < r0 + nr; e++)
			ctx->bmask[ex[e] - r0] = 1;
		t4r_topk_push(&t, ctx->block, r0, nr, ctx->bmask);
		for (int x = e0; x < e; x++)
			ctx->bmask[ex[x] - r0] = 0;
	}
	free(ex);
	return t4r_topk_finish(&t, vals);
}

#define INFER_MB 16

int
t4r_infer_batch(const t4r_model *m, const t4r_sample *seqs, int nseq, int threads,
				t4r_real *hidden, t4r_real *scores)
{
	int			nch,
				rc = T4R_OK;
	int			d,
				V;

	if (!m || nseq < 0 || (nseq > 0 && !seqs))
		return T4R_EINVAL;
	if (nseq == 0)
		return T4R_OK;
	if (threads < 1)
		threads = 1;
	nch = (nseq + INFER_MB - 1) / INFER_MB;
	if (threads > nch)
		threads = nch;
	d = m->dims.d;
	V = m->dims.V;
	openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads)
	{
		t4r_ws	   *ws = NULL;
		int			e = t4r_ws_create(m, INFER_MB, 0, &ws);

		if (e != T4R_OK)
		{
#pragma omp critical
			rc = e;
		}
#pragma omp for schedule(dynamic, 1)
		for (int c = 0; c < nch; c++)
		{
			int			i0 = c * INFER_MB;
			int			cnt = nseq - i0 < INFER_MB ? nseq - i0 : INFER_MB;
			int			e2;

			if (ws == NULL)
				continue;
			e2 = infer_forward(ws, seqs + i0, cnt);
			if (e2 != T4R_OK)
			{
#pragma omp critical
				rc = e2;
				continue;
			}
			if (hidden)
				memcpy(hidden + (size_t) i0 * d, ws->hidden, sizeof(t4r_real) * cnt * d);
			if (scores)
				t4r_ws_scores(ws, scores + (size_t) i0 * V);
		}
		t4r_ws_free(ws);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* top-k recommendations for many sequences (tim4rec_recommend_all)    */
/* ------------------------------------------------------------------ */

/*
 * Per thread: a workspace of T4R_REC_MB sequences, their [MB, V] score
 * block and an exclusion mask of V bytes (all zero between jobs).  The
 * workspace is reused for every batch, so a batch costs no allocation.
 */
struct t4r_rec_batch
{
	const t4r_model *m;
	int			threads;
	int			score_mode;
	t4r_ws	  **ws;				/* [threads] */
	t4r_ipack  *ip;				/* packed projections, shared read-only */
	t4r_real  **scores;			/* [threads][T4R_REC_MB * V] */
	uint8_t   **mask;			/* [threads][V] */
};

int
t4r_rec_batch_create(const t4r_model *m, int threads, t4r_rec_batch **out)
{
	return t4r_rec_batch_create_packed(m, threads, NULL, out);
}

int
t4r_rec_batch_create_packed(const t4r_model *m, int threads, const t4r_real *packed,
							t4r_rec_batch **out)
{
	t4r_rec_batch *b;
	int			V;

	*out = NULL;
	if (!m)
		return T4R_EINVAL;
	if (threads < 1)
		threads = 1;
	V = m->dims.V;
	b = calloc(1, sizeof(*b));
	if (!b)
		return T4R_ENOMEM;
	b->m = m;
	b->threads = threads;
	b->score_mode = T4R_REC_EXACT;
	b->ws = calloc(threads, sizeof(t4r_ws *));
	b->scores = calloc(threads, sizeof(t4r_real *));
	b->mask = calloc(threads, sizeof(uint8_t *));
	if (!b->ws || !b->scores || !b->mask || t4r_ipack_create(m, packed, &b->ip) != T4R_OK)
	{
		t4r_rec_batch_free(b);
		return T4R_ENOMEM;
	}
	for (int t = 0; t < threads; t++)
	{
		int			rc = t4r_ws_create(m, T4R_REC_MB, 0, &b->ws[t]);

		if (rc != T4R_OK)
		{
			t4r_rec_batch_free(b);
			return rc;
		}
		b->ws[t]->ip = b->ip;
		b->scores[t] = malloc(sizeof(t4r_real) * (size_t) T4R_REC_MB * V);
		b->mask[t] = calloc((size_t) V, 1);
		if (!b->scores[t] || !b->mask[t])
		{
			t4r_rec_batch_free(b);
			return T4R_ENOMEM;
		}
	}
	*out = b;
	return T4R_OK;
}

void
t4r_rec_batch_free(t4r_rec_batch *b)
{
	if (!b)
		return;
	for (int t = 0; t < b->threads; t++)
	{
		if (b->ws)
			t4r_ws_free(b->ws[t]);
		if (b->scores)
			free(b->scores[t]);
		if (b->mask)
			free(b->mask[t]);
	}
	free(b->ws);
	t4r_ipack_free(b->ip);
	free(b->scores);
	free(b->mask);
	free(b);
}

int
t4r_rec_batch_set_scores(t4r_rec_batch *b, int mode)
{
	if (!b || (mode != T4R_REC_EXACT && mode != T4R_REC_PACKED))
		return T4R_EINVAL;
	b->score_mode = mode;
	return T4R_OK;
}

int
t4r_rec_batch_run(t4r_rec_batch *b, t4r_rec_job *jobs, int njobs, int k)
{
	int			nch,
				mb,
				threads,
				rc = T4R_OK,
				V;

	if (!b || njobs < 0 || (njobs > 0 && !jobs) || k < 0)
		return T4R_EINVAL;
	V = b->m->dims.V;
	for (int j = 0; j < njobs; j++)
	{
		jobs[j].count = 0;
		if (jobs[j].seq.n < 1 || !jobs[j].rows || (k > 0 && !jobs[j].vals))
			return T4R_EINVAL;
		for (int e = 0; e < jobs[j].nexclude; e++)
			if (jobs[j].exclude[e] < 0 || jobs[j].exclude[e] >= V)
				return T4R_EINVAL;
	}
	if (njobs == 0)
		return T4R_OK;
	/* the unit of work handed to a thread: one sequence in the exact mode
	 * (the threads end a batch at most one sequence apart), T4R_REC_MB
	 * sequences (one packed forward) in the packed mode */
	mb = b->score_mode == T4R_REC_EXACT ? 1 : T4R_REC_MB;
	nch = (njobs + mb - 1) / mb;
	threads = b->threads < nch ? b->threads : nch;
	openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads)
	{
		int			t = omp_get_thread_num();
		t4r_ws	   *ws = b->ws[t];
		t4r_real   *sc = b->scores[t];
		uint8_t    *mask = b->mask[t];

#pragma omp for schedule(dynamic, 1)
		for (int c = 0; c < nch; c++)
		{
			int			j0 = c * mb;
			int			cnt = njobs - j0 < mb ? njobs - j0 : mb;
			t4r_sample	smp[T4R_REC_MB];
			int			e;

			for (int s = 0; s < cnt; s++)
				smp[s] = jobs[j0 + s].seq;
			if (b->score_mode == T4R_REC_EXACT)
			{
				/* one forward and one GEMV per sequence, as t4r_infer: the
				 * packed forward's GEMMs over more rows may round differently */
				e = T4R_OK;
				for (int s = 0; s < cnt && e == T4R_OK; s++)
				{
					e = infer_forward(ws, smp + s, 1);
					if (e == T4R_OK)
						t4r_ws_scores(ws, sc + (size_t) s * V);
				}
			}
			else
			{
				e = infer_forward(ws, smp, cnt);
				if (e == T4R_OK)
					t4r_ws_scores(ws, sc);
			}
			if (e != T4R_OK)
			{
#pragma omp critical
				rc = e;
				continue;
			}
			for (int s = 0; s < cnt; s++)
			{
				t4r_rec_job *jb = &jobs[j0 + s];
				int			got;

				for (int x = 0; x < jb->nexclude; x++)
					mask[jb->exclude[x]] = 1;
				got = t4r_topk(sc + (size_t) s * V, V, k, mask, jb->rows, jb->vals);
				for (int x = 0; x < jb->nexclude; x++)
					mask[jb->exclude[x]] = 0;
				if (got < 0)
				{
#pragma omp critical
					rc = got;
					continue;
				}
				jb->count = got;
			}
		}
	}
	return rc;
}
