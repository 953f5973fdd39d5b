/*
 * evaluate.c - leave-one-out evaluation (docs/MODEL.md, "Data protocol"):
 * HR, NDCG and MRR at several cut-offs on the validation or test target of
 * every user that has one, for a model or the most-popular baseline; and the
 * streaming top-k selection that recommendation shares (t4r_topk,
 * t4r_infer_topk).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tim4rec.h"

/* ------------------------------------------------------------------ */
/* top-k                                                               */
/* ------------------------------------------------------------------ */

/* total order: higher score first, NaN after everything, ties smaller row */
static inline int
better(t4r_real sa, int32_t ra, t4r_real sb, int32_t rb)
{
	int			na = isnan(sa),
				nb = isnan(sb);

	if (na != nb)
		return nb;
	if (!na && sa != sb)
		return sa > sb;
	return ra < rb;
}

/* min-heap on "better": the root is the worst kept entry */
static void
heap_sift_down(int32_t *hr, t4r_real *hv, int cnt, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					w = i;

		if (l < cnt && better(hv[w], hr[w], hv[l], hr[l]))
			w = l;
		if (r < cnt && better(hv[w], hr[w], hv[r], hr[r]))
			w = r;
		if (w == i)
			return;
		{
			int32_t		tr = hr[i];
			t4r_real	tv = hv[i];

			hr[i] = hr[w];
			hv[i] = hv[w];
			hr[w] = tr;
			hv[w] = tv;
		}
		i = w;
	}
}

static void
heap_sift_up(int32_t *hr, t4r_real *hv, int i)
{
	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (!better(hv[p], hr[p], hv[i], hr[i]))
			return;
		{
			int32_t		tr = hr[i];
			t4r_real	tv = hv[i];

			hr[i] = hr[p];
			hv[i] = hv[p];
			hr[p] = tr;
			hv[p] = tv;
		}
		i = p;
	}
}

/*
 * Streaming top k: rows are pushed in ascending order (any blocks), the
 * heap keeps the k best; t4r_topk_finish sorts them.  t4r_topk and
 * t4r_infer_topk share it, so a blocked scoring gives the same answer as
 * a full score vector.
 */
int
t4r_topk_init(t4r_topk_state *t, int k, int32_t *rows)
{
	t->k = k;
	t->cnt = 0;
	t->rows = rows;
	t->hv = k <= T4R_TOPK_SMALL ? t->small : malloc((size_t) k * sizeof(t4r_real));
	return t->hv ? T4R_OK : T4R_ENOMEM;
}

void
t4r_topk_push(t4r_topk_state *t, const t4r_real *scores, int32_t r0, int nr,
			  const uint8_t *exclude)
{
	int32_t    *rows = t->rows;
	t4r_real   *hv = t->hv;

	for (int i = 0; i < nr; i++)
	{
		int32_t		r = r0 + i;
		t4r_real	s = scores[i];

		if (r == 0 || (exclude && exclude[i]))
			continue;
		if (t->cnt < t->k)
		{
			rows[t->cnt] = r;
			hv[t->cnt] = s;
			heap_sift_up(rows, hv, t->cnt);
			t->cnt++;
		}
		else if (t->k > 0 && better(s, r, hv[0], rows[0]))
		{
			rows[0] = r;
			hv[0] = s;
			heap_sift_down(rows, hv, t->cnt, 0);
		}
	}
}

int
t4r_topk_finish(t4r_topk_state *t, t4r_real *vals)
{
	int32_t    *rows = t->rows;
	t4r_real   *hv = t->hv;
	int			cnt = t->cnt;

	/* heap sort: repeatedly move the worst to the end */
	for (int e = cnt - 1; e > 0; e--)
	{
		int32_t		tr = rows[0];
		t4r_real	tv = hv[0];

		rows[0] = rows[e];
		hv[0] = hv[e];
		rows[e] = tr;
		hv[e] = tv;
		heap_sift_down(rows, hv, e, 0);
	}
	if (vals)
		memcpy(vals, hv, (size_t) cnt * sizeof(t4r_real));
	if (hv != t->small)
		free(hv);
	t->hv = NULL;
	return cnt;
}

int
t4r_topk(const t4r_real *scores, int V, int k, const uint8_t *exclude,
		 int32_t *rows, t4r_real *vals)
{
	t4r_topk_state t;

	if (scores == NULL || rows == NULL || V < 0 || k < 0)
		return T4R_EINVAL;
	if (k == 0 || V <= 1)
		return 0;
	if (k > V - 1)
		k = V - 1;
	if (t4r_topk_init(&t, k, rows) != T4R_OK)
		return T4R_ENOMEM;
	t4r_topk_push(&t, scores, 0, V, exclude);
	return t4r_topk_finish(&t, vals);
}

/* ------------------------------------------------------------------ */
/* evaluation                                                          */
/* ------------------------------------------------------------------ */

/* rank of row t: rows r >= 1 with a higher score, plus rows r < t with an
 * equal one.  A NaN target score ranks last. */
static int64_t
rank_of(const t4r_real *s, int V, int32_t t)
{
	t4r_real	st = s[t];
	int64_t		c = 0;

	if (isnan(st))
		return V;
	for (int r = 1; r < t; r++)
		c += s[r] >= st;
	for (int r = t + 1; r < V; r++)
		c += s[r] > st;
	return c;
}

/* the input/target of user u in a split; returns 0 if the user has none */
static int
split_sample(const t4r_dataset *ds, int64_t u, int split, int L, t4r_sample *smp)
{
	int64_t		off = ds->seq_off[u],
				m = ds->seq_off[u + 1] - off;
	int64_t		p,
				start;

	if (m < 3)
		return 0;
	p = off + (split == T4R_SPLIT_VALID ? m - 2 : m - 1);	/* target position */
	start = p - off > L ? p - L : off;
	smp->items = ds->seq_items + start;
	smp->ts = ds->seq_ts + start;
	smp->n = (int32_t) (p - start);
	smp->target = ds->seq_items[p];
	return 1;
}

typedef struct pop_ent
{
	int64_t		cnt;
	int32_t		row;
} pop_ent;

static int
cmp_pop(const void *pa, const void *pb)
{
	const pop_ent *a = pa,
			   *b = pb;

	if (a->cnt != b->cnt)
		return a->cnt > b->cnt ? -1 : 1;
	return a->row < b->row ? -1 : (a->row > b->row);
}

/*
 * The most-popular baseline's rank of every row: rank of row r = rows before
 * it ordered by training count descending, then row ascending; row 0
 * (padding) gets V.  malloc'd, NULL when out of memory.
 */
static int64_t *
pop_rank_table(const t4r_dataset *ds)
{
	int			V = ds->n_items;
	int64_t    *rk = malloc((size_t) V * sizeof(int64_t));
	pop_ent    *ord = malloc((size_t) V * sizeof(pop_ent));

	if (!rk || !ord)
	{
		free(rk);
		free(ord);
		return NULL;
	}
	for (int r = 1; r < V; r++)
	{
		ord[r - 1].cnt = ds->item_count[r];
		ord[r - 1].row = r;
	}
	qsort(ord, (size_t) V - 1, sizeof(pop_ent), cmp_pop);
	rk[0] = V;
	for (int i = 0; i < V - 1; i++)
		rk[ord[i].row] = i;
	free(ord);
	return rk;
}

static void
add_metrics(int64_t rank, const int *ks, int nk, double *shr, double *sndcg, double *smrr)
{
	for (int j = 0; j < nk; j++)
		if (rank < ks[j])
		{
			shr[j] += 1.0;
			sndcg[j] += 1.0 / log2((double) rank + 2.0);
			smrr[j] += 1.0 / ((double) rank + 1.0);
		}
}

int
t4r_evaluate(const t4r_model *m, const t4r_dataset *ds, int split,
			 const int *ks, int nk, int threads,
			 int (*interrupt) (void *ud), void *ud,
			 double *hr, double *ndcg, double *mrr)
{
	return t4r_evaluate_backend(m, ds, split, ks, nk, threads, interrupt, ud, NULL,
								hr, ndcg, mrr);
}

int
t4r_evaluate_backend(const t4r_model *m, const t4r_dataset *ds, int split,
					 const int *ks, int nk, int threads,
					 int (*interrupt) (void *ud), void *ud,
					 const t4r_backend *backend,
					 double *hr, double *ndcg, double *mrr)
{
	double	   *acc;
	int64_t		nusers = 0;
	int			V;
	int			rc = T4R_OK;

	if (ds == NULL || ks == NULL || nk < 1 || threads < 1 ||
		(split != T4R_SPLIT_VALID && split != T4R_SPLIT_TEST))
		return T4R_EINVAL;
	for (int j = 0; j < nk; j++)
		if (ks[j] < 1)
			return T4R_EINVAL;
	V = ds->n_items;
	if (m != NULL && m->cfg.n_items != V)
		return T4R_EMISMATCH;
	for (int64_t u = 0; u < ds->n_users; u++)
		if (ds->seq_off[u + 1] - ds->seq_off[u] >= 3)
			nusers++;
	if (nusers == 0)
		return T4R_EDATA;
	acc = calloc(3 * (size_t) nk, sizeof(double));
	if (acc == NULL)
		return T4R_ENOMEM;

	if (m == NULL)
	{
		/* most popular: the rank depends on the target row only */
		int64_t    *rk = pop_rank_table(ds);

		if (!rk)
		{
			free(acc);
			return T4R_ENOMEM;
		}
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			t4r_sample	smp;

			if (split_sample(ds, u, split, INT32_MAX, &smp))
				add_metrics(rk[smp.target], ks, nk, acc, acc + nk, acc + 2 * nk);
		}
		free(rk);
	}
	else
	{
		int			L = m->cfg.max_seq_len;
		size_t		chunk = ((size_t) 32 << 20) / ((size_t) V * sizeof(t4r_real));
		t4r_sample *smp;
		t4r_real   *scores;
		int64_t    *ranks;
		int64_t		u = 0;

		if (chunk < 1)
			chunk = 1;
		if (chunk > 1024)
			chunk = 1024;
		if ((int64_t) chunk > nusers)
			chunk = (size_t) nusers;
		smp = malloc(chunk * sizeof(t4r_sample));
		scores = malloc(chunk * (size_t) V * sizeof(t4r_real));
		ranks = malloc(chunk * sizeof(int64_t));
		if (!smp || !scores || !ranks)
			rc = T4R_ENOMEM;
		while (rc == T4R_OK && u < ds->n_users)
		{
			int			nc = 0;

			if (interrupt && interrupt(ud))
			{
				rc = T4R_ECANCELLED;
				break;
			}
			while (u < ds->n_users && nc < (int) chunk)
			{
				if (split_sample(ds, u, split, L, &smp[nc]))
					nc++;
				u++;
			}
			if (nc == 0)
				break;
			if (backend && backend->scores)
				rc = backend->scores(backend->ctx, smp, nc, scores);
			else
				rc = t4r_infer_batch(m, smp, nc, threads, NULL, scores);
			if (rc != T4R_OK)
				break;
#pragma omp parallel for num_threads(threads) schedule(static)
			for (int i = 0; i < nc; i++)
				ranks[i] = rank_of(scores + (size_t) i * V, V, smp[i].target);
			for (int i = 0; i < nc; i++)
				add_metrics(ranks[i], ks, nk, acc, acc + nk, acc + 2 * nk);
		}
		free(smp);
		free(scores);
		free(ranks);
	}
	if (rc == T4R_OK)
		for (int j = 0; j < nk; j++)
		{
			if (hr)
				hr[j] = acc[j] / (double) nusers;
			if (ndcg)
				ndcg[j] = acc[nk + j] / (double) nusers;
			if (mrr)
				mrr[j] = acc[2 * nk + j] / (double) nusers;
		}
	free(acc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* per-user ranks (issue 12 part 3: paired tests over users)           */
/* ------------------------------------------------------------------ */

/* metrics of a 0-based rank at cut-off k, as add_metrics counts them */
double
t4r_rank_hr(int64_t rank, int k)
{
	return rank < k ? 1.0 : 0.0;
}

double
t4r_rank_ndcg(int64_t rank, int k)
{
	return rank < k ? 1.0 / log2((double) rank + 2.0) : 0.0;
}

double
t4r_rank_mrr(int64_t rank, int k)
{
	return rank < k ? 1.0 / ((double) rank + 1.0) : 0.0;
}

int
t4r_evaluate_ranks(const t4r_model *m, const t4r_dataset *ds, int split,
				   int threads, int (*interrupt) (void *ud), void *ud,
				   const t4r_backend *backend,
				   int64_t *users, int64_t *ranks, int64_t *n_out)
{
	int			V;
	int64_t		n = 0;
	int			rc = T4R_OK;

	if (ds == NULL || users == NULL || ranks == NULL || n_out == NULL || threads < 1 ||
		(split != T4R_SPLIT_VALID && split != T4R_SPLIT_TEST))
		return T4R_EINVAL;
	*n_out = 0;
	V = ds->n_items;
	if (m != NULL && m->cfg.n_items != V)
		return T4R_EMISMATCH;

	if (m == NULL)
	{
		/* most popular (pop_rank_table) */
		int64_t    *rk = pop_rank_table(ds);

		if (!rk)
			return T4R_ENOMEM;
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			t4r_sample	smp;

			if (split_sample(ds, u, split, INT32_MAX, &smp))
			{
				users[n] = u;
				ranks[n] = rk[smp.target];
				n++;
			}
		}
		free(rk);
	}
	else
	{
		int			L = m->cfg.max_seq_len;
		size_t		chunk = ((size_t) 32 << 20) / ((size_t) V * sizeof(t4r_real));
		t4r_sample *smp;
		int64_t    *who;
		t4r_real   *scores;
		int64_t		u = 0;

		if (chunk < 1)
			chunk = 1;
		if (chunk > 1024)
			chunk = 1024;
		smp = malloc(chunk * sizeof(t4r_sample));
		who = malloc(chunk * sizeof(int64_t));
		scores = malloc(chunk * (size_t) V * sizeof(t4r_real));
		if (!smp || !who || !scores)
			rc = T4R_ENOMEM;
		while (rc == T4R_OK && u < ds->n_users)
		{
			int			nc = 0;

			if (interrupt && interrupt(ud))
			{
				rc = T4R_ECANCELLED;
				break;
			}
			while (u < ds->n_users && nc < (int) chunk)
			{
				if (split_sample(ds, u, split, L, &smp[nc]))
					who[nc++] = u;
				u++;
			}
			if (nc == 0)
				break;
			if (backend && backend->scores)
				rc = backend->scores(backend->ctx, smp, nc, scores);
			else
				rc = t4r_infer_batch(m, smp, nc, threads, NULL, scores);
			if (rc != T4R_OK)
				break;
#pragma omp parallel for num_threads(threads) schedule(static)
			for (int i = 0; i < nc; i++)
				ranks[n + i] = rank_of(scores + (size_t) i * V, V, smp[i].target);
			for (int i = 0; i < nc; i++)
				users[n + i] = who[i];
			n += nc;
		}
		free(smp);
		free(who);
		free(scores);
	}
	if (rc == T4R_OK)
		*n_out = n;
	return rc;
}
