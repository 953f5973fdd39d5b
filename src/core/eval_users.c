/*
 * eval_users.c - per-user leave-one-out ranks (issue 12 part 3: paired
 * tests over users need each user's result, not only the mean).
 *
 * The same sample and ranking rules as t4r_evaluate_backend (data.c):
 * a user with m >= 3 interactions has the validation target seq[m-2] and
 * the test target seq[m-1], the input is the last max_seq_len items before
 * the target, and the 0-based rank of the target row t is
 * #{r < t : s[r] >= s[t]} + #{r > t : s[r] > s[t]} over rows 1..V-1 (equal
 * scores rank the smaller row first), V for a NaN score.  HR@k, NDCG@k and
 * MRR@k of a user are 1, 1/log2(rank + 2) and 1/(rank + 1) when rank < k;
 * their means over the users are t4r_evaluate's figures (test/pgtap
 * evaluate_users.sql checks it through SQL).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "eval_users.h"

static int
eu_sample(const t4r_dataset *ds, int64_t u, int split, int L, t4r_sample *smp)
{
	int64_t		off = ds->seq_off[u],
				m = ds->seq_off[u + 1] - off;
	int64_t		p,
				start;

	if (m < 3)
		return 0;
	p = off + (split == T4R_SPLIT_VALID ? m - 2 : m - 1);
	start = p - off > L ? p - L : off;
	smp->items = ds->seq_items + start;
	smp->ts = ds->seq_ts + start;
	smp->n = (int32_t) (p - start);
	smp->target = ds->seq_items[p];
	return 1;
}

static int64_t
eu_rank(const t4r_real *s, int V, int32_t t)
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

typedef struct eu_pop
{
	int64_t		cnt;
	int32_t		row;
} eu_pop;

/* training count descending, then row ascending */
static int
eu_cmp_pop(const void *pa, const void *pb)
{
	const eu_pop *a = pa,
			   *b = pb;

	if (a->cnt != b->cnt)
		return a->cnt > b->cnt ? -1 : 1;
	return a->row < b->row ? -1 : (a->row > b->row);
}

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
		/* most popular: rank of row r = number of rows before it when
		 * ordered by training count descending, then row ascending */
		int64_t    *rk = malloc((size_t) V * sizeof(int64_t));
		eu_pop    *ord = malloc((size_t) V * sizeof(eu_pop));

		if (!rk || !ord)
		{
			free(rk);
			free(ord);
			return T4R_ENOMEM;
		}
		for (int r = 1; r < V; r++)
		{
			ord[r - 1].cnt = ds->item_count[r];
			ord[r - 1].row = r;
		}
		qsort(ord, (size_t) V - 1, sizeof(eu_pop), eu_cmp_pop);
		rk[0] = V;
		for (int i = 0; i < V - 1; i++)
			rk[ord[i].row] = i;
		free(ord);
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			t4r_sample	smp;

			if (eu_sample(ds, u, split, INT32_MAX, &smp))
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
				if (eu_sample(ds, u, split, L, &smp[nc]))
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
				ranks[n + i] = eu_rank(scores + (size_t) i * V, V, smp[i].target);
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
