/*
 * test_data.c - the data protocol (src/core/data.c): dataset building
 * (iterative filter, ordering, leave-one-out), metrics against a plain
 * brute-force computation, top-k against a full sort, the most-popular
 * baseline by hand, and (when the model is linked) evaluation of a model and
 * the fitting loop's bookkeeping.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tim4rec.h"
#include "ops.h"
#include "tap.h"

/* a growable list of interactions */
typedef struct ilist
{
	size_t		n,
				cap;
	int64_t    *u,
			   *i,
			   *o;
	double	   *t;
} ilist;

static void
il_add(ilist *l, int64_t u, int64_t i, double t, int64_t o)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? 2 * l->cap : 64;
		l->u = realloc(l->u, l->cap * sizeof(int64_t));
		l->i = realloc(l->i, l->cap * sizeof(int64_t));
		l->o = realloc(l->o, l->cap * sizeof(int64_t));
		l->t = realloc(l->t, l->cap * sizeof(double));
	}
	l->u[l->n] = u;
	l->i[l->n] = i;
	l->t[l->n] = t;
	l->o[l->n] = o;
	l->n++;
}

static void
il_free(ilist *l)
{
	free(l->u);
	free(l->i);
	free(l->o);
	free(l->t);
	memset(l, 0, sizeof(*l));
}

static int64_t
user_index(const t4r_dataset *ds, int64_t ext)
{
	for (int64_t u = 0; u < ds->n_users; u++)
		if (ds->user_ids[u] == ext)
			return u;
	return -1;
}

static int
row_of(const t4r_dataset *ds, int64_t ext)
{
	for (int r = 1; r < ds->n_items; r++)
		if (ds->item_ids[r] == ext)
			return r;
	return -1;
}

/* ------------------------------------------------------------------ */
/* filter                                                              */
/* ------------------------------------------------------------------ */
static void
test_filter_chain(void)
{
	ilist		l = {0};
	t4r_dataset *ds = NULL;
	char		err[256] = "";
	int			rc,
				ok;
	double		t = 1000;

	/* core: users 101..105 x items 1..5 (a stable 5-core).  Around it a
	 * chain that needs four rounds of a round-by-round filter:
	 *   round 1: user 107 (4 interactions) and item 6 (4) go;
	 *   round 2: item 7 (users 107, 101..103, 108) and user 106 (items 6,
	 *            1..4) drop to 4 and go;
	 *   round 3: user 108 (items 1, 2, 4, 7, 8) drops to 4 and goes;
	 *   round 4: item 8 (users 108, 101..104) drops to 4 and goes. */
	for (int u = 101; u <= 105; u++)
		for (int i = 1; i <= 5; i++)
			il_add(&l, u, i, t++, 0);
	il_add(&l, 107, 1, t++, 0);
	il_add(&l, 107, 2, t++, 0);
	il_add(&l, 107, 3, t++, 0);
	il_add(&l, 107, 7, t++, 0);
	for (int u = 101; u <= 103; u++)
		il_add(&l, u, 7, t++, 0);
	il_add(&l, 108, 1, t++, 0);
	il_add(&l, 108, 2, t++, 0);
	il_add(&l, 108, 7, t++, 0);
	il_add(&l, 108, 8, t++, 0);
	il_add(&l, 108, 4, t++, 0);
	for (int u = 101; u <= 104; u++)
		il_add(&l, u, 8, t++, 0);
	for (int u = 101; u <= 103; u++)
		il_add(&l, u, 6, t++, 0);
	il_add(&l, 106, 6, t++, 0);
	for (int i = 1; i <= 4; i++)
		il_add(&l, 106, i, t++, 0);

	rc = t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 5, 5, &ds, err, sizeof(err));
	tap_ok(rc == T4R_OK, "chain filter builds (%s)", rc ? err : "ok");
	if (rc != T4R_OK)
	{
		il_free(&l);
		return;
	}
	ok = ds->n_users == 5 && ds->n_items == 6 && ds->n_interactions == 25;
	tap_ok(ok, "chain filter: 5 users, items 1..5 remain (got %lld users, V=%d, %zu interactions)",
		   (long long) ds->n_users, ds->n_items, ds->n_interactions);
	ok = 1;
	for (int u = 0; u < 5 && u < ds->n_users; u++)
		ok &= ds->user_ids[u] == 101 + u;
	for (int r = 1; r < 6 && r < ds->n_items; r++)
		ok &= ds->item_ids[r] == r;
	ok &= ds->item_ids[0] == 0;
	tap_ok(ok, "chain filter: users 101..105 ascending, rows 1..5 = items 1..5");
	t4r_dataset_free(ds);

	/* with thresholds 4 nothing goes */
	rc = t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 4, 4, &ds, err, sizeof(err));
	ok = rc == T4R_OK && ds->n_users == 8 && ds->n_items == 9 && ds->n_interactions == l.n;
	tap_ok(ok, "thresholds 4: all 8 users and 8 items remain (got %lld users, V=%d)",
		   rc ? -1LL : (long long) ds->n_users, rc ? -1 : ds->n_items);
	if (rc == T4R_OK)
		t4r_dataset_free(ds);

	/* thresholds that remove everything */
	err[0] = 0;
	rc = t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 6, 6, &ds, err, sizeof(err));
	tap_ok(rc == T4R_EDATA && ds == NULL && strstr(err, "0 users") && strstr(err, "0 items"),
		   "6-core of the chain is empty: T4R_EDATA with counts (%s)", err);
	il_free(&l);
}

/* plain iterative filter, round by round, over alive flags */
static void
naive_filter(const ilist *l, int mu, int mi, uint8_t *alive)
{
	int			changed = 1;

	for (size_t k = 0; k < l->n; k++)
		alive[k] = 1;
	while (changed)
	{
		changed = 0;
		for (size_t k = 0; k < l->n; k++)
		{
			int			cu = 0,
						ci = 0;

			if (!alive[k])
				continue;
			for (size_t j = 0; j < l->n; j++)
				if (alive[j])
				{
					cu += l->u[j] == l->u[k];
					ci += l->i[j] == l->i[k];
				}
			if (cu < mu || ci < mi)
			{
				/* remove all of this user's or item's interactions at once
				 * would also be fine; removing one at a time converges to
				 * the same fixed point, but do it per entity for clarity */
				for (size_t j = 0; j < l->n; j++)
					if ((cu < mu && l->u[j] == l->u[k]) || (ci < mi && l->i[j] == l->i[k]))
						alive[j] = 0;
				changed = 1;
			}
		}
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return x < y ? -1 : (x > y);
}

/* random data: the dataset must equal the naive filter + a plain sort */
static void
test_filter_random(void)
{
	int			all_ok = 1;

	for (int trial = 0; trial < 40; trial++)
	{
		t4r_rng		r;
		ilist		l = {0};
		uint8_t    *alive;
		int			mu = 1 + trial % 6,
					mi = 1 + (trial / 6) % 6;
		int			nusers = 5 + trial % 13,
					nitems = 4 + trial % 11;
		t4r_dataset *ds = NULL;
		char		err[256];
		int			rc;
		int64_t    *eu,
				   *ei;
		size_t		neu = 0,
					nei = 0,
					nalive = 0;
		int			ok = 1;
		int			use_order = trial & 1;

		t4r_rng_seed(&r, 1000 + trial);
		{
			int			n = 20 + (int) t4r_rng_below(&r, 200);

			for (int k = 0; k < n; k++)
			{
				/* ids spread over negative and large values; few distinct
				 * timestamps so ties are common */
				int64_t		u = ((int64_t) t4r_rng_below(&r, nusers) - 3) * 7919;
				int64_t		i = ((int64_t) t4r_rng_below(&r, nitems) - 2) * 1000003LL;
				double		ts = (double) t4r_rng_below(&r, 6);

				il_add(&l, u, i, ts, (int64_t) t4r_rng_below(&r, 3));
			}
		}
		alive = malloc(l.n);
		naive_filter(&l, mu, mi, alive);
		eu = malloc(l.n * sizeof(int64_t));
		ei = malloc(l.n * sizeof(int64_t));
		for (size_t k = 0; k < l.n; k++)
			if (alive[k])
			{
				eu[neu++] = l.u[k];
				ei[nei++] = l.i[k];
				nalive++;
			}
		qsort(eu, neu, sizeof(int64_t), cmp_i64);
		qsort(ei, nei, sizeof(int64_t), cmp_i64);
		{
			size_t		a = 0,
						b = 0;

			for (size_t k = 0; k < neu; k++)
				if (a == 0 || eu[k] != eu[a - 1])
					eu[a++] = eu[k];
			for (size_t k = 0; k < nei; k++)
				if (b == 0 || ei[k] != ei[b - 1])
					ei[b++] = ei[k];
			neu = a;
			nei = b;
		}
		rc = t4r_dataset_build(l.u, l.i, l.t, use_order ? l.o : NULL, l.n, mu, mi, &ds, err, sizeof(err));
		if (nalive == 0)
			ok = rc == T4R_EDATA && ds == NULL;
		else if (rc != T4R_OK)
			ok = 0;
		else
		{
			int64_t		nts = 0;

			ok &= ds->n_users == (int64_t) neu && ds->n_items == (int32_t) nei + 1 &&
				ds->n_interactions == nalive;
			for (size_t k = 0; ok && k < neu; k++)
				ok &= ds->user_ids[k] == eu[k];
			for (size_t k = 0; ok && k < nei; k++)
				ok &= ds->item_ids[k + 1] == ei[k];
			/* each user's sequence: the alive interactions of that user in
			 * (ts, order or item, input position) order, selection sort */
			for (int64_t u = 0; ok && u < ds->n_users; u++)
			{
				size_t		m = 0;
				int64_t		off = ds->seq_off[u];
				uint8_t    *used = calloc(l.n, 1);

				for (size_t k = 0; k < l.n; k++)
					m += alive[k] && l.u[k] == ds->user_ids[u];
				ok &= (int64_t) m == ds->seq_off[u + 1] - off;
				for (size_t j = 0; ok && j < m; j++)
				{
					size_t		best = (size_t) -1;

					for (size_t k = 0; k < l.n; k++)
					{
						int64_t		tk,
									tb;

						if (!alive[k] || used[k] || l.u[k] != ds->user_ids[u])
							continue;
						if (best == (size_t) -1)
						{
							best = k;
							continue;
						}
						tk = use_order ? l.o[k] : l.i[k];
						tb = use_order ? l.o[best] : l.i[best];
						if (l.t[k] < l.t[best] || (l.t[k] == l.t[best] && tk < tb))
							best = k;
					}
					used[best] = 1;
					ok &= ds->seq_items[off + j] >= 1 && ds->seq_items[off + j] < ds->n_items &&
						ds->item_ids[ds->seq_items[off + j]] == l.i[best] &&
						ds->seq_ts[off + j] == l.t[best];
				}
				free(used);
				if (m >= 3)
					nts += (int64_t) m - 3;
				else if (m == 2)
					nts += 1;
			}
			ok &= ds->n_train_samples == nts;
			t4r_dataset_free(ds);
		}
		if (!ok)
			tap_diag("random filter trial %d (min_user %d, min_item %d, n %zu) differs", trial, mu, mi, l.n);
		all_ok &= ok;
		free(alive);
		free(eu);
		free(ei);
		il_free(&l);
	}
	tap_ok(all_ok, "40 random data sets: users, item rows, per-user order and sample counts equal a naive filter and sort");
}

/* ------------------------------------------------------------------ */
/* ordering, leave-one-out, counts                                     */
/* ------------------------------------------------------------------ */
static void
test_order_and_split(void)
{
	ilist		l = {0};
	t4r_dataset *ds = NULL;
	char		err[256];
	int			rc,
				ok;

	/* user 5: equal timestamps in a block; items 30, 10, 20 at t=100 with
	 * order 1, 3, 2; item 40 at t=50; item 10 again at t=200 order 0 twice
	 * (a duplicate: input order decides) */
	il_add(&l, 5, 30, 100, 1);
	il_add(&l, 5, 10, 100, 3);
	il_add(&l, 5, 20, 100, 2);
	il_add(&l, 5, 40, 50, 9);
	il_add(&l, 5, 10, 200, 0);
	il_add(&l, 5, 50, 200, 0);
	/* user 2: 2 interactions (no valid/test with min_user 1) */
	il_add(&l, 2, 50, 7, 0);
	il_add(&l, 2, 40, 3, 0);
	/* user 9: 3 interactions: empty training part... m=3 -> training
	 * part of 1 item, no training sample, valid and test targets */
	il_add(&l, 9, 20, 1, 0);
	il_add(&l, 9, 30, 2, 0);
	il_add(&l, 9, 40, 3, 0);

	rc = t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 1, 1, &ds, err, sizeof(err));
	tap_ok(rc == T4R_OK, "small set without filtering builds");
	if (rc == T4R_OK)
	{
		int64_t		u5 = user_index(ds, 5);
		const int32_t *s = ds->seq_items + ds->seq_off[u5];
		int			want[6] = {40, 10, 20, 30, 10, 50};

		ok = ds->n_users == 3 && ds->user_ids[0] == 2 && ds->user_ids[1] == 5 && ds->user_ids[2] == 9 &&
			ds->n_items == 6;
		tap_ok(ok, "users ascending (2, 5, 9), V = 6");
		ok = ds->seq_off[u5 + 1] - ds->seq_off[u5] == 6;
		for (int j = 0; ok && j < 6; j++)
			ok &= ds->item_ids[s[j]] == want[j];
		tap_ok(ok, "without order: equal timestamps ordered by item id (40, 10, 20, 30, 10, 50)");
		/* training parts: user 2: {50?} m=2 -> whole sequence (40, 50);
		 * user 5: 40, 10, 20, 30; user 9: 20 */
		ok = ds->item_count[0] == 0 &&
			ds->item_count[row_of(ds, 10)] == 1 && ds->item_count[row_of(ds, 20)] == 2 &&
			ds->item_count[row_of(ds, 30)] == 1 && ds->item_count[row_of(ds, 40)] == 2 &&
			ds->item_count[row_of(ds, 50)] == 1;
		tap_ok(ok, "item_count counts the training parts only (10:1 20:2 30:1 40:2 50:1)");
		tap_ok(ds->n_train_samples == 1 + 3 + 0, "n_train_samples = 1 (m=2) + 3 (m=6) + 0 (m=3): %lld",
			   (long long) ds->n_train_samples);
		{
			/* user 2's sequence is in time order: 40 (t=3), 50 (t=7) */
			int64_t		u2 = user_index(ds, 2);
			const int32_t *s2 = ds->seq_items + ds->seq_off[u2];

			tap_ok(ds->item_ids[s2[0]] == 40 && ds->item_ids[s2[1]] == 50 &&
				   ds->seq_ts[ds->seq_off[u2]] == 3, "timestamps order a user's interactions");
		}
		t4r_dataset_free(ds);
	}
	rc = t4r_dataset_build(l.u, l.i, l.t, l.o, l.n, 1, 1, &ds, err, sizeof(err));
	if (rc == T4R_OK)
	{
		int64_t		u5 = user_index(ds, 5);
		const int32_t *s = ds->seq_items + ds->seq_off[u5];
		int			want[6] = {40, 30, 20, 10, 10, 50};

		ok = 1;
		for (int j = 0; j < 6; j++)
			ok &= ds->item_ids[s[j]] == want[j];
		tap_ok(ok, "with order: equal timestamps by order value, then input position (40, 30, 20, 10, 10, 50)");
		t4r_dataset_free(ds);
	}
	else
		tap_ok(0, "with order: builds");
	il_free(&l);

	/* most-popular baseline on this set by hand:
	 * training-part counts: 10:1 20:2 30:1 40:2 50:1 -> rows by (count desc,
	 * row asc): 20 (row 2) rank 0, 40 (row 4) rank 1, 10 (row 1) rank 2,
	 * 30 (row 3) rank 3, 50 (row 5) rank 4.
	 * Users with targets: 5 (valid 10, test 50), 9 (valid 30, test 40). */
	{
		ilist		l2 = {0};
		int			ks[3] = {1, 2, 4};
		double		hr[3],
					nd[3],
					mr[3];

		il_add(&l2, 5, 30, 100, 1);
		il_add(&l2, 5, 10, 100, 3);
		il_add(&l2, 5, 20, 100, 2);
		il_add(&l2, 5, 40, 50, 9);
		il_add(&l2, 5, 10, 200, 0);
		il_add(&l2, 5, 50, 200, 0);
		il_add(&l2, 2, 50, 7, 0);
		il_add(&l2, 2, 40, 3, 0);
		il_add(&l2, 9, 20, 1, 0);
		il_add(&l2, 9, 30, 2, 0);
		il_add(&l2, 9, 40, 3, 0);
		rc = t4r_dataset_build(l2.u, l2.i, l2.t, NULL, l2.n, 1, 1, &ds, err, sizeof(err));
		if (rc == T4R_OK)
		{
			/* valid: user 5 target 10 rank 2, user 9 target 30 rank 3 */
			rc = t4r_evaluate(NULL, ds, T4R_SPLIT_VALID, ks, 3, 1, NULL, NULL, hr, nd, mr);
			ok = rc == T4R_OK &&
				hr[0] == 0 && hr[1] == 0 && hr[2] == 1.0 &&
				fabs(nd[2] - (1 / log2(4.0) + 1 / log2(5.0)) / 2) < 1e-12 &&
				fabs(mr[2] - (1 / 3.0 + 1 / 4.0) / 2) < 1e-12 && nd[0] == 0 && mr[1] == 0;
			tap_ok(ok, "most-popular valid by hand: HR@4 = 1, NDCG@4 = (1/log2 4 + 1/log2 5)/2, MRR@4 = (1/3 + 1/4)/2");
			/* test: user 5 target 50 rank 4, user 9 target 40 rank 1 */
			rc = t4r_evaluate(NULL, ds, T4R_SPLIT_TEST, ks, 3, 2, NULL, NULL, hr, nd, mr);
			ok = rc == T4R_OK && hr[0] == 0 && hr[1] == 0.5 && hr[2] == 0.5 &&
				fabs(nd[1] - 0.5 / log2(3.0)) < 1e-12 && fabs(mr[2] - 0.25) < 1e-12;
			tap_ok(ok, "most-popular test by hand: HR@1 = 0, HR@2 = HR@4 = 1/2, NDCG@2 = 1/(2 log2 3), MRR@4 = 1/4");
			tap_ok(t4r_evaluate(NULL, ds, 7, ks, 3, 1, NULL, NULL, hr, nd, mr) == T4R_EINVAL &&
				   t4r_evaluate(NULL, ds, 0, ks, 0, 1, NULL, NULL, hr, nd, mr) == T4R_EINVAL,
				   "evaluate rejects a bad split and nk = 0");
			t4r_dataset_free(ds);
		}
		else
			tap_ok(0, "popular set builds");
		il_free(&l2);
	}
}

static void
test_errors(void)
{
	int64_t		u[3] = {1, 1, 1},
				i[3] = {1, 2, 3};
	double		t[3] = {1, NAN, 3};
	t4r_dataset *ds = (t4r_dataset *) 1;
	char		err[256] = "";

	tap_ok(t4r_dataset_build(u, i, t, NULL, 3, 1, 1, &ds, err, sizeof(err)) == T4R_EINVAL && ds == NULL &&
		   strstr(err, "finite"), "NaN timestamp: T4R_EINVAL (%s)", err);
	tap_ok(t4r_dataset_build(u, i, t, NULL, 3, 1, 1, NULL, err, sizeof(err)) == T4R_EINVAL,
		   "NULL out: T4R_EINVAL");
	tap_ok(t4r_dataset_build(NULL, i, t, NULL, 3, 1, 1, &ds, err, sizeof(err)) == T4R_EINVAL,
		   "NULL users: T4R_EINVAL");
	tap_ok(t4r_dataset_build(u, i, t, NULL, 0, 1, 1, &ds, err, sizeof(err)) == T4R_EDATA,
		   "no interactions: T4R_EDATA");
}

/* ------------------------------------------------------------------ */
/* metrics vs brute force (most-popular path, many ties)               */
/* ------------------------------------------------------------------ */
static void
brute_metrics(const double *sc, int V, int target, const int *ks, int nk,
			  double *hr, double *nd, double *mr)
{
	/* sort rows 1..V-1 by (score desc, row asc) by selection and find the
	 * target's position */
	int		   *ord = malloc(V * sizeof(int));
	int			rank = -1;

	for (int r = 1; r < V; r++)
		ord[r - 1] = r;
	for (int a = 0; a < V - 1; a++)
	{
		int			b = a;

		for (int c = a + 1; c < V - 1; c++)
			if (sc[ord[c]] > sc[ord[b]] || (sc[ord[c]] == sc[ord[b]] && ord[c] < ord[b]))
				b = c;
		{
			int			x = ord[a];

			ord[a] = ord[b];
			ord[b] = x;
		}
		if (ord[a] == target)
		{
			rank = a;
			break;
		}
	}
	free(ord);
	for (int j = 0; j < nk; j++)
		if (rank < ks[j])
		{
			hr[j] += 1;
			nd[j] += 1 / log2(rank + 2.0);
			mr[j] += 1.0 / (rank + 1);
		}
}

static void
test_popular_random(void)
{
	int			all_ok = 1;
	int			ks[4] = {1, 3, 10, 20};

	for (int trial = 0; trial < 20; trial++)
	{
		t4r_rng		r;
		ilist		l = {0};
		t4r_dataset *ds = NULL;
		char		err[256];
		int			nusers = 30 + trial * 3,
					nitems = 15 + trial;

		t4r_rng_seed(&r, 77 + trial);
		for (int u = 0; u < nusers; u++)
		{
			int			m = 1 + (int) t4r_rng_below(&r, 12);

			for (int k = 0; k < m; k++)
				/* skewed item draw: popularity with many ties */
				il_add(&l, u, (int64_t) (t4r_rng_below(&r, nitems) * t4r_rng_u01(&r)), k, 0);
		}
		if (t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 1, 1, &ds, err, sizeof(err)) != T4R_OK)
		{
			all_ok = 0;
			il_free(&l);
			continue;
		}
		for (int split = 0; split < 2; split++)
		{
			double		hr[4] = {0},
						nd[4] = {0},
						mr[4] = {0},
						bh[4] = {0},
						bn[4] = {0},
						bm[4] = {0};
			double	   *sc = malloc(ds->n_items * sizeof(double));
			int			cnt = 0,
						rc;

			/* popularity recomputed here from the sequences */
			for (int q = 0; q < ds->n_items; q++)
				sc[q] = 0;
			for (int64_t u = 0; u < ds->n_users; u++)
			{
				int64_t		m = ds->seq_off[u + 1] - ds->seq_off[u];
				int64_t		tl = m >= 3 ? m - 2 : m;

				for (int64_t j = 0; j < tl; j++)
					sc[ds->seq_items[ds->seq_off[u] + j]] += 1;
			}
			for (int64_t u = 0; u < ds->n_users; u++)
			{
				int64_t		m = ds->seq_off[u + 1] - ds->seq_off[u];

				if (m < 3)
					continue;
				cnt++;
				brute_metrics(sc, ds->n_items, ds->seq_items[ds->seq_off[u] + m - (split ? 1 : 2)],
							  ks, 4, bh, bn, bm);
			}
			rc = t4r_evaluate(NULL, ds, split, ks, 4, 1, NULL, NULL, hr, nd, mr);
			if (cnt == 0)
				all_ok &= rc == T4R_EDATA;
			else
			{
				all_ok &= rc == T4R_OK;
				for (int j = 0; j < 4; j++)
					all_ok &= fabs(hr[j] - bh[j] / cnt) < 1e-12 && fabs(nd[j] - bn[j] / cnt) < 1e-12 &&
						fabs(mr[j] - bm[j] / cnt) < 1e-12;
			}
			free(sc);
		}
		t4r_dataset_free(ds);
		il_free(&l);
	}
	tap_ok(all_ok, "most-popular metrics on 20 random sets (ties) equal a brute-force sort, both splits");
}

/* ------------------------------------------------------------------ */
/* top-k vs full sort                                                  */
/* ------------------------------------------------------------------ */
static void
test_topk(void)
{
	int			all_ok = 1;
	t4r_rng		r;

	t4r_rng_seed(&r, 4242);
	for (int trial = 0; trial < 300; trial++)
	{
		int			V = 1 + (int) t4r_rng_below(&r, 300);
		int			k = (int) t4r_rng_below(&r, 90);
		t4r_real   *sc = malloc(V * sizeof(t4r_real));
		uint8_t    *ex = malloc(V);
		int32_t    *rows = malloc((k + 1) * sizeof(int32_t));
		t4r_real   *vals = malloc((k + 1) * sizeof(t4r_real));
		int		   *ord = malloc(V * sizeof(int));
		int			ne = 0,
					got;
		int			use_ex = trial % 3 != 0;

		for (int q = 0; q < V; q++)
		{
			/* few distinct values: many ties; row 0 often the best */
			sc[q] = (t4r_real) ((int) t4r_rng_below(&r, 7) - 3) * 0.5f;
			if (q == 0)
				sc[q] = 100;
			ex[q] = use_ex && t4r_rng_u01(&r) < 0.3;
		}
		for (int q = 1; q < V; q++)
			if (!use_ex || !ex[q])
				ord[ne++] = q;
		/* insertion sort of eligible rows by (score desc, row asc) */
		for (int a = 1; a < ne; a++)
		{
			int			x = ord[a],
						b = a;

			while (b > 0 && (sc[ord[b - 1]] < sc[x] || (sc[ord[b - 1]] == sc[x] && ord[b - 1] > x)))
			{
				ord[b] = ord[b - 1];
				b--;
			}
			ord[b] = x;
		}
		got = t4r_topk(sc, V, k, use_ex ? ex : NULL, rows, vals);
		{
			int			want = k < ne ? k : ne;
			int			ok = got == want;

			for (int j = 0; ok && j < want; j++)
				ok &= rows[j] == ord[j] && vals[j] == sc[ord[j]];
			if (!ok)
				tap_diag("topk trial %d: V %d k %d eligible %d got %d", trial, V, k, ne, got);
			all_ok &= ok;
		}
		free(sc);
		free(ex);
		free(rows);
		free(vals);
		free(ord);
	}
	tap_ok(all_ok, "t4r_topk equals a full sort on 300 random cases (ties, exclusions, k > eligible, row 0 best)");
	{
		t4r_real	sc[5] = {9, 1, 2, 3, 4};
		int32_t		rows[5];

		tap_ok(t4r_topk(sc, 5, -1, NULL, rows, NULL) == T4R_EINVAL && t4r_topk(NULL, 5, 1, NULL, rows, NULL) == T4R_EINVAL,
			   "t4r_topk rejects k < 0 and NULL scores");
		tap_ok(t4r_topk(sc, 5, 2, NULL, rows, NULL) == 2 && rows[0] == 4 && rows[1] == 3,
			   "t4r_topk with vals == NULL");
	}
}

/* ------------------------------------------------------------------ */
/* scale                                                               */
/* ------------------------------------------------------------------ */
static void
test_scale(void)
{
	size_t		n = 1000000;
	int64_t    *u = malloc(n * sizeof(int64_t)),
			   *i = malloc(n * sizeof(int64_t));
	double	   *t = malloc(n * sizeof(double));
	t4r_rng		r;
	t4r_dataset *ds = NULL;
	char		err[256];
	struct timespec a,
				b;
	int			rc;
	double		sec;

	t4r_rng_seed(&r, 9);
	for (size_t k = 0; k < n; k++)
	{
		u[k] = (int64_t) t4r_rng_below(&r, 6040) * 13 + 1;
		i[k] = (int64_t) (3706 * pow(t4r_rng_u01(&r), 2.0));
		t[k] = 9.6e8 + (double) t4r_rng_below(&r, 90000000);
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = t4r_dataset_build(u, i, t, NULL, n, 5, 5, &ds, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &b);
	sec = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
	tap_ok(rc == T4R_OK && ds->n_users == 6040 && ds->n_interactions > 990000,
		   "1M interactions build (%.3f s, %lld users, V=%d)", sec,
		   rc ? -1LL : (long long) ds->n_users, rc ? -1 : ds->n_items);
	/* the build time is a benchmark figure, not a test (shared machines) */
	tap_diag("1M interactions built in %.3f s", sec);
	if (rc == T4R_OK)
		t4r_dataset_free(ds);
	free(u);
	free(i);
	free(t);
}

/* ------------------------------------------------------------------ */
/* with the model: evaluation vs brute force, fit bookkeeping          */
/* ------------------------------------------------------------------ */
/*
 * A random data set: users with 3 .. maxlen interactions.  days < 0:
 * continuous times; days = 0: one interaction a day (no equal times);
 * days > 0: runs of 1 .. days interactions share a day (tie_shuffle's test).
 */
static t4r_dataset *
random_dataset_days(uint64_t seed, int nusers, int nitems, int maxlen, int days)
{
	t4r_rng		r;
	ilist		l = {0};
	t4r_dataset *ds = NULL;
	char		err[256];

	t4r_rng_seed(&r, seed);
	for (int u = 0; u < nusers; u++)
	{
		int			m = 3 + (int) t4r_rng_below(&r, maxlen - 2);
		double		ts = days < 0 ? 1e6 * t4r_rng_u01(&r) :
			86400.0 * (1000 + (int) t4r_rng_below(&r, 1000));
		int			left = 0;

		for (int k = 0; k < m; k++)
		{
			if (days < 0)
				ts += 1 + 1000 * t4r_rng_u01(&r);
			else if (left-- <= 0)
			{
				ts += 86400.0 * (1 + (int) t4r_rng_below(&r, 5));
				left = days > 0 ? (int) t4r_rng_below(&r, days) : 0;
			}
			il_add(&l, u, 1 + (int64_t) t4r_rng_below(&r, nitems), ts, 0);
		}
	}
	if (t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 1, 1, &ds, err, sizeof(err)) != T4R_OK)
		ds = NULL;
	il_free(&l);
	return ds;
}

static t4r_dataset *
random_dataset(uint64_t seed, int nusers, int nitems, int maxlen)
{
	return random_dataset_days(seed, nusers, nitems, maxlen, -1);
}

static int	small_L = 12;

static t4r_model *
small_model(int V, int is_time, uint64_t seed)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "movielens");
	c.hidden_size = 16;
	c.head_dim = 8;
	c.d_state = 8;
	c.max_seq_len = small_L;
	c.chunk_size = 4;
	c.num_layers = 2;
	c.is_time = is_time;
	c.n_items = V;
	c.batch_size = 64;
	c.seed = seed;
	if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("model create: %s", err);
		return NULL;
	}
	t4r_model_init(m, seed);
	return m;
}

static int
cancel_now(void *ud)
{
	return 1;
}

static void
test_model_eval(void)
{
	t4r_dataset *ds;
	t4r_model  *m;
	t4r_infer_ctx *ctx = NULL;
	int			ks[3] = {1, 10, 50};

	ds = random_dataset(31, 1300, 80, 20);
	m = ds ? small_model(ds->n_items, 1, 5) : NULL;
	if (!m || t4r_infer_ctx_create(m, &ctx) != T4R_OK)
	{
		tap_ok(0, "model for evaluation");
		t4r_dataset_free(ds);
		t4r_model_free(m);
		return;
	}
	for (int split = 0; split < 3; split++)
	{
		double		bh[3] = {0},
					bn[3] = {0},
					bm[3] = {0},
					hr[3],
					nd[3],
					mr[3];
		double	   *sc = malloc(ds->n_items * sizeof(double));
		t4r_real   *fs = malloc(ds->n_items * sizeof(t4r_real));
		t4r_real   *hid = malloc(m->dims.d * sizeof(t4r_real));
		int			cnt = 0,
					ok = 1;

		if (split == 2)
		{
			/* exact ties: rows with an all-zero embedding score exactly 0
			 * whatever the summation order; the tie-break by row decides */
			t4r_real   *E = t4r_model_tensor(m, "item_embedding.weight");

			for (int q = 2; q < ds->n_items; q += 2)
				memset(E + (size_t) q * m->dims.d, 0, m->dims.d * sizeof(t4r_real));
		}
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			int64_t		off = ds->seq_off[u],
						m_u = ds->seq_off[u + 1] - off;
			int64_t		p = off + m_u - (split ? 1 : 2);
			int64_t		st = p - off > 12 ? p - 12 : off;

			if (m_u < 3)
				continue;
			cnt++;
			ok &= t4r_infer(ctx, ds->seq_items + st, ds->seq_ts + st, (int) (p - st), hid, fs) == T4R_OK;
			for (int q = 0; q < ds->n_items; q++)
				sc[q] = fs[q];
			brute_metrics(sc, ds->n_items, ds->seq_items[p], ks, 3, bh, bn, bm);
		}
		for (int th = 1; th <= 2; th++)
		{
			int			rc = t4r_evaluate(m, ds, split ? T4R_SPLIT_TEST : T4R_SPLIT_VALID, ks, 3, th,
										  NULL, NULL, hr, nd, mr);

			ok &= rc == T4R_OK;
			for (int j = 0; j < 3; j++)
				ok &= fabs(hr[j] - bh[j] / cnt) < 1e-12 && fabs(nd[j] - bn[j] / cnt) < 1e-12 &&
					fabs(mr[j] - bm[j] / cnt) < 1e-12;
		}
		tap_ok(ok, "%s metrics of a model (%d users, several chunks, 1 and 2 threads) equal t4r_infer + brute-force ranks"
			   " (HR@10 %.4f)", split == 2 ? "tied-score test" : split ? "test" : "valid", cnt, hr[1]);
		free(sc);
		free(fs);
		free(hid);
	}
	{
		double		nd[1];
		int			k10 = 10;

		tap_ok(t4r_evaluate(m, ds, 0, &k10, 1, 1, cancel_now, NULL, NULL, nd, NULL) == T4R_ECANCELLED,
			   "evaluate honours the interrupt callback");
	}
	{
		t4r_model  *m2 = small_model(ds->n_items + 1, 1, 5);
		double		nd[1];
		int			k10 = 10;

		tap_ok(m2 && t4r_evaluate(m2, ds, 0, &k10, 1, 1, NULL, NULL, NULL, nd, NULL) == T4R_EMISMATCH,
			   "evaluate rejects a model with another vocabulary size");
		t4r_model_free(m2);
	}
	t4r_infer_ctx_free(ctx);
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

typedef struct fit_log
{
	int			epochs;
	int64_t		steps;
	int64_t		steps_per_epoch;
	int			bad_order;
	double		ndcg[64];
	double		lr[64];			/* learning rate after each epoch */
	double		loss[64];
	int			cancel_after_steps;
	double		loss1;
} fit_log;

static void
log_progress(void *ud, int epoch, int64_t step, int64_t spe, double loss)
{
	fit_log    *f = ud;

	if (step < 1 || step > spe || epoch != f->epochs + 1)
		f->bad_order = 1;
	f->steps++;
	f->steps_per_epoch = spe;
}

static void
log_epoch(void *ud, const t4r_epoch_info *info)
{
	fit_log    *f = ud;

	if (info->epoch != f->epochs + 1)
		f->bad_order = 1;
	if (info->epoch <= 64)
	{
		f->ndcg[info->epoch - 1] = info->valid_ndcg10;
		f->lr[info->epoch - 1] = info->learning_rate;
		f->loss[info->epoch - 1] = info->loss;
	}
	f->epochs++;
}

static void
log_epoch_loss(void *ud, const t4r_epoch_info *info)
{
	fit_log    *f = ud;

	f->loss1 = info->loss;
	log_epoch(ud, info);
}

static int
log_cancel(void *ud)
{
	fit_log    *f = ud;

	return f->cancel_after_steps >= 0 && f->steps >= f->cancel_after_steps;
}

/*
 * lr_decay: the step size after every epoch against the rule recomputed from
 * the epochs' validation NDCG@10 (an epoch that is not better adds one to
 * the count, an improvement resets it, every lr_decay_patience-th counted
 * epoch multiplies by lr_decay); the same fit without decay has the same
 * losses up to the epoch after the first decay and other losses from then
 * on; the model's learning_rate is the configured one afterwards
 */
static void
test_lr_decay(void)
{
	t4r_dataset *ds = random_dataset(31, 60, 30, 14);
	t4r_model  *a = ds ? small_model(ds->n_items, 1, 5) : NULL,
			   *b = ds ? small_model(ds->n_items, 1, 5) : NULL;
	t4r_fit_opts o;
	t4r_fit_result res;
	fit_log		fa,
				fb;
	char		err[256] = "";
	int			E = 14,
				p = 2,
				first = 0,
				decays = 0,
				sched_ok = 1,
				same_before = 1,
				differ_after = 0;
	double		lr0 = 0.03,
				best = -1,
				lr;

	if (!a || !b)
	{
		tap_ok(0, "lr_decay setup");
		return;
	}
	a->cfg.learning_rate = b->cfg.learning_rate = lr0;
	a->cfg.lr_decay = 0.5;
	a->cfg.lr_decay_patience = p;
	memset(&o, 0, sizeof(o));
	memset(&fa, 0, sizeof(fa));
	memset(&fb, 0, sizeof(fb));
	o.train.threads = 1;
	o.epochs = E;
	o.patience = 100;
	o.epoch_done = log_epoch;
	o.ud = &fa;
	tap_ok(t4r_fit(a, ds, &o, &res, err, sizeof(err)) == T4R_OK && fa.epochs == E,
		   "fit with lr_decay 0.5, lr_decay_patience %d (%s)", p, err);
	o.ud = &fb;
	tap_ok(t4r_fit(b, ds, &o, &res, err, sizeof(err)) == T4R_OK && fb.epochs == E, "the same fit without lr_decay");
	lr = lr0;
	for (int e = 0, cnt = 0; e < E; e++)
	{
		if (fa.ndcg[e] > best)
		{
			best = fa.ndcg[e];
			cnt = 0;
		}
		else if (++cnt % p == 0)
		{
			lr *= 0.5;
			decays++;
			if (!first)
				first = e + 1;
		}
		sched_ok &= fa.lr[e] == lr && fb.lr[e] == lr0;
	}
	tap_ok(sched_ok && decays >= 1,
		   "the learning rate after each of %d epochs follows the rule (%d decays, the first after epoch %d, %g at the end)",
		   E, decays, first, fa.lr[E - 1]);
	for (int e = 0; e < E; e++)
	{
		if (first && e <= first - 1)
			same_before &= fa.loss[e] == fb.loss[e];
		else if (first && fa.loss[e] != fb.loss[e])
			differ_after = 1;
	}
	tap_ok(first > 0 && first < E && same_before && differ_after,
		   "losses equal the undecayed fit's up to epoch %d and differ after it", first);
	tap_ok(a->cfg.learning_rate == lr0, "the model keeps its configured learning_rate after the fit");
	t4r_model_free(a);
	t4r_model_free(b);
	t4r_dataset_free(ds);
}

static void
test_fit(void)
{
	t4r_dataset *ds;
	t4r_model  *m,
			   *m2;
	t4r_fit_opts o;
	t4r_fit_result res;
	fit_log		f;
	char		err[256] = "";
	int			rc;

	ds = random_dataset(8, 60, 30, 14);
	m = ds ? small_model(ds->n_items, 1, 11) : NULL;
	m2 = ds ? small_model(ds->n_items, 1, 11) : NULL;
	if (!m || !m2)
	{
		tap_ok(0, "fit setup");
		return;
	}
	memset(&o, 0, sizeof(o));
	memset(&f, 0, sizeof(f));
	f.cancel_after_steps = -1;
	o.train.threads = 1;
	o.epochs = 4;
	o.patience = 50;
	o.progress = log_progress;
	o.epoch_done = log_epoch;
	o.ud = &f;
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_OK, "t4r_fit runs 4 epochs (%s)", rc ? err : "ok");
	tap_ok(res.epochs_run == 4 && f.epochs == 4 && !f.bad_order &&
		   res.train_samples == ds->n_train_samples &&
		   f.steps_per_epoch == (ds->n_train_samples + 63) / 64 && f.steps == 4 * f.steps_per_epoch,
		   "callbacks: %lld steps of %lld per epoch, 4 epoch_done, samples %lld",
		   (long long) f.steps, (long long) f.steps_per_epoch, (long long) res.train_samples);
	{
		int			be = 1;
		double		nd;
		int			k10 = 10;

		for (int e = 2; e <= 4; e++)
			if (f.ndcg[e - 1] > f.ndcg[be - 1])
				be = e;
		rc = t4r_evaluate(m, ds, T4R_SPLIT_VALID, &k10, 1, 1, NULL, NULL, NULL, &nd, NULL);
		tap_ok(res.best_epoch == be && res.best_valid_ndcg10 == f.ndcg[be - 1] && rc == T4R_OK &&
			   nd == res.best_valid_ndcg10,
			   "best epoch %d (first maximum of %.4f %.4f %.4f %.4f) restored: valid NDCG@10 %.4f",
			   res.best_epoch, f.ndcg[0], f.ndcg[1], f.ndcg[2], f.ndcg[3], nd);
	}
	/* same seed, same thread count: identical weights */
	memset(&f, 0, sizeof(f));
	f.cancel_after_steps = -1;
	rc = t4r_fit(m2, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_OK && memcmp(m->params, m2->params, m->layout.total * sizeof(t4r_real)) == 0,
		   "a second fit with the same seed gives identical weights");
	/* and with 2 threads: two runs identical to each other */
	{
		t4r_model  *a = small_model(ds->n_items, 1, 11),
				   *b = small_model(ds->n_items, 1, 11);
		int			rca,
					rcb;

		o.train.threads = 2;
		memset(&f, 0, sizeof(f));
		f.cancel_after_steps = -1;
		rca = t4r_fit(a, ds, &o, &res, err, sizeof(err));
		memset(&f, 0, sizeof(f));
		f.cancel_after_steps = -1;
		rcb = t4r_fit(b, ds, &o, &res, err, sizeof(err));
		tap_ok(rca == T4R_OK && rcb == T4R_OK &&
			   memcmp(a->params, b->params, a->layout.total * sizeof(t4r_real)) == 0,
			   "two fits with the same seed on 2 threads give identical weights");
		o.train.threads = 1;
		t4r_model_free(a);
		t4r_model_free(b);
	}
	/* patience 1: stops at the first epoch without improvement */
	t4r_model_init(m2, 11);
	memset(&f, 0, sizeof(f));
	f.cancel_after_steps = -1;
	o.epochs = 30;
	o.patience = 1;
	rc = t4r_fit(m2, ds, &o, &res, err, sizeof(err));
	{
		int			stop = 0;

		for (int e = 2; e <= f.epochs; e++)
		{
			double		b = 0;

			for (int q = 1; q < e; q++)
				if (f.ndcg[q - 1] > b)
					b = f.ndcg[q - 1];
			if (f.ndcg[e - 1] <= b && e != 1)
			{
				stop = e;
				break;
			}
		}
		tap_ok(rc == T4R_OK && (stop ? res.epochs_run == stop : res.epochs_run == 30),
			   "patience 1 stops at the first epoch without a better NDCG@10 (ran %d)", res.epochs_run);
	}
	/* a learning rate so small that no weight changes: every epoch has the
	 * same NDCG@10, the first stays the best (strictly better needed) and
	 * patience 3 stops after epoch 4 */
	{
		t4r_model  *m3 = small_model(ds->n_items, 1, 12);
		int			same = 1;

		m3->cfg.learning_rate = 1e-30;
		memset(&f, 0, sizeof(f));
		f.cancel_after_steps = -1;
		o.patience = 3;
		rc = t4r_fit(m3, ds, &o, &res, err, sizeof(err));
		for (int e = 2; e <= f.epochs; e++)
			same &= f.ndcg[e - 1] == f.ndcg[0];
		tap_ok(rc == T4R_OK && same && res.best_epoch == 1 && res.epochs_run == 4,
			   "equal NDCG@10 is no improvement: best epoch 1, patience 3 stops at epoch 4 (ran %d, best %d)",
			   res.epochs_run, res.best_epoch);
		t4r_model_free(m3);
	}
	/* the samples fit forms: every prefix of each training part (its last L
	 * items) predicting the next item.  Without dropout and with one batch
	 * holding all samples, the first epoch's loss is the loss of the
	 * untrained model on exactly those samples, whatever their order. */
	{
		t4r_dataset *ds4 = random_dataset(9, 40, 30, 30);
		t4r_model  *m4;

		small_L = 4;			/* most samples are cut to L */
		m4 = small_model(ds4->n_items, 1, 13);
		small_L = 12;
		t4r_trainer *tr = NULL;
		t4r_train_opts to;
		t4r_sample *smp = malloc(ds4->n_train_samples * sizeof(t4r_sample));
		int64_t		k = 0;
		int			L = m4->cfg.max_seq_len,
					truncated = 0;
		double		want = 0;

		/* large embeddings: the loss then depends visibly on every input */
		{
			t4r_real   *E = t4r_model_tensor(m4, "item_embedding.weight");

			for (size_t q = 0; q < (size_t) ds4->n_items * m4->dims.d; q++)
				E[q] *= 50;
		}
		m4->cfg.dropout_prob = 0;
		m4->cfg.time_dropout = 0;
		m4->cfg.batch_size = (int) ds4->n_train_samples;
		for (int64_t u = 0; u < ds4->n_users; u++)
		{
			int64_t		off = ds4->seq_off[u],
						mu = ds4->seq_off[u + 1] - off;

			for (int64_t t = 1; t < mu - 2; t++)
			{
				int64_t		st = t > L ? off + t - L : off;

				truncated += t > L;
				smp[k].items = ds4->seq_items + st;
				smp[k].ts = ds4->seq_ts + st;
				smp[k].n = (int32_t) (off + t - st);
				smp[k].target = ds4->seq_items[off + t];
				k++;
			}
		}
		memset(&to, 0, sizeof(to));
		to.threads = 1;
		rc = t4r_trainer_create(m4, &to, &tr, err, sizeof(err));
		if (rc == T4R_OK)
			rc = t4r_trainer_loss_grad(tr, smp, (int) k, 0, &want);
		t4r_trainer_free(tr);
		memset(&f, 0, sizeof(f));
		f.cancel_after_steps = -1;
		o.epochs = 1;
		o.epoch_done = log_epoch_loss;
		if (rc == T4R_OK)
			rc = t4r_fit(m4, ds4, &o, &res, err, sizeof(err));
		o.epoch_done = log_epoch;
		tap_ok(rc == T4R_OK && k == ds4->n_train_samples && truncated > 0 && f.steps == 1 &&
			   fabs(f.loss1 - want) < 1e-5 * fabs(want),
			   "fit's samples are the prefixes (%lld, %d cut to L): first loss %.7f = loss of the enumerated samples %.7f",
			   (long long) k, truncated, f.loss1, want);
		free(smp);
		t4r_model_free(m4);
		t4r_dataset_free(ds4);
	}
	/* interrupt */
	memset(&f, 0, sizeof(f));
	f.cancel_after_steps = 2;
	o.train.interrupt = log_cancel;
	o.train.interrupt_ud = &f;
	rc = t4r_fit(m2, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_ECANCELLED, "interrupt after 2 steps: T4R_ECANCELLED (%s)", err);
	t4r_model_free(m);
	t4r_model_free(m2);
	t4r_dataset_free(ds);
}

/* ---- t4r_fit with a pluggable backend ----
 * The test backend is the CPU trainer on a model of its own (as the CUDA
 * trainer keeps its own device copy): sync_to_host copies its weights into
 * the fitted model.  The fit must be identical to the plain CPU fit. */
typedef struct test_backend
{
	t4r_trainer *tr;
	t4r_model  *own;
	t4r_model  *host;
	int			steps,
				syncs,
				scored,
				fail_at;		/* step number that fails (-1: none) */
} test_backend;

static int
tb_step(void *ctx, const t4r_sample *s, int ns, double *loss)
{
	test_backend *b = ctx;

	if (b->steps++ == b->fail_at)
		return T4R_EIO;
	return t4r_trainer_step(b->tr, s, ns, loss);
}

static int
tb_sync(void *ctx)
{
	test_backend *b = ctx;

	b->syncs++;
	memcpy(b->host->params, b->own->params, b->own->layout.total * sizeof(t4r_real));
	return T4R_OK;
}

static int
tb_scores(void *ctx, const t4r_sample *s, int ns, t4r_real *scores)
{
	test_backend *b = ctx;

	b->scored += ns;
	return t4r_infer_batch(b->own, s, ns, 1, NULL, scores);
}

static const char *
tb_error(void *ctx)
{
	return "device lost (test)";
}

static void
test_fit_backend(void)
{
	t4r_dataset *ds = random_dataset(8, 60, 30, 14);
	t4r_model  *ref = ds ? small_model(ds->n_items, 1, 11) : NULL;
	t4r_fit_opts o;
	t4r_fit_result rres,
				res;
	fit_log		f,
				fr;
	char		err[256] = "";
	int			rc;

	if (!ref)
	{
		tap_ok(0, "fit backend setup");
		return;
	}
	memset(&o, 0, sizeof(o));
	memset(&fr, 0, sizeof(fr));
	fr.cancel_after_steps = -1;
	o.train.threads = 1;
	o.epochs = 3;
	o.patience = 50;
	o.epoch_done = log_epoch_loss;
	o.ud = &fr;
	rc = t4r_fit(ref, ds, &o, &rres, err, sizeof(err));
	tap_ok(rc == T4R_OK, "reference CPU fit (%s)", rc ? err : "ok");

	for (int with_scores = 0; with_scores <= 1; with_scores++)
	{
		t4r_model  *host = small_model(ds->n_items, 1, 11),
				   *own = small_model(ds->n_items, 1, 11);
		test_backend tb = {0};
		t4r_backend be = {0};
		t4r_train_opts to = {0};

		to.threads = 1;
		if (!host || !own || t4r_trainer_create(own, &to, &tb.tr, err, sizeof(err)) != T4R_OK)
		{
			tap_ok(0, "backend setup (%s)", err);
			return;
		}
		/* the host starts from other weights: only sync_to_host may fix that */
		for (size_t i = 0; i < host->layout.total; i++)
			host->params[i] = 0.5f;
		tb.own = own;
		tb.host = host;
		tb.fail_at = -1;
		be.ctx = &tb;
		be.step = tb_step;
		be.sync_to_host = tb_sync;
		be.scores = with_scores ? tb_scores : NULL;
		be.error = tb_error;
		o.backend = &be;
		memset(&f, 0, sizeof(f));
		f.cancel_after_steps = -1;
		o.ud = &f;
		rc = t4r_fit(host, ds, &o, &res, err, sizeof(err));
		tap_ok(rc == T4R_OK && res.epochs_run == rres.epochs_run && res.best_epoch == rres.best_epoch &&
			   res.best_valid_ndcg10 == rres.best_valid_ndcg10 &&
			   memcmp(f.ndcg, fr.ndcg, sizeof(f.ndcg)) == 0 && f.loss1 == fr.loss1,
			   "backend fit (%s scores): same epochs, losses and validation NDCG@10 as the CPU fit "
			   "(best %d, %.6f vs %.6f)", with_scores ? "backend" : "host",
			   res.best_epoch, res.best_valid_ndcg10, rres.best_valid_ndcg10);
		tap_ok(memcmp(host->params, ref->params, host->layout.total * sizeof(t4r_real)) == 0,
			   "backend fit (%s scores): the host model holds the best epoch's weights, bit-identical to the CPU fit",
			   with_scores ? "backend" : "host");
		tap_ok(tb.syncs == res.epochs_run &&
			   (with_scores ? tb.scored > 0 : tb.scored == 0),
			   "backend fit: %d syncs for %d epochs, %d sequences scored by the backend",
			   tb.syncs, res.epochs_run, tb.scored);

		/* a failing step: its code and the backend's message, nothing else */
		tb.steps = 0;
		tb.fail_at = 2;
		o.ud = &f;
		memset(&f, 0, sizeof(f));
		err[0] = '\0';
		rc = t4r_fit(host, ds, &o, &res, err, sizeof(err));
		tap_ok(rc == T4R_EIO && strstr(err, "device lost (test)") != NULL,
			   "a failing backend step returns its code with the backend's message (%s)", err);
		t4r_trainer_free(tb.tr);
		t4r_model_free(host);
		t4r_model_free(own);
	}
	{
		t4r_backend be = {0};
		t4r_model  *host = small_model(ds->n_items, 1, 11);

		be.step = tb_step;		/* no sync_to_host */
		o.backend = &be;
		err[0] = '\0';
		rc = t4r_fit(host, ds, &o, &res, err, sizeof(err));
		tap_ok(rc == T4R_EINVAL && err[0], "a backend without sync_to_host is refused (%s)", err);
		t4r_model_free(host);
	}
	t4r_model_free(ref);
	t4r_dataset_free(ds);
}

/*
 * ema_decay: the weights after every step are logged (progress callback);
 * an exponential moving average recomputed from them in double, with
 * b = min(ema_decay, (1 + t) / (10 + t)), must give each epoch's validation
 * NDCG@10 (scored here by t4r_evaluate on a model holding the average) and,
 * at the best epoch, the weights the fit returns.  Training itself is not
 * touched: the same losses as a fit without the option, and the raw weights
 * are in the model again when each epoch is reported.  A backend is refused.
 */
typedef struct ema_log
{
	t4r_model  *m;
	double	   *traj;			/* [cap][P]: the weights after each step */
	int64_t		steps,
				cap,
				at[64];			/* steps done when epoch e + 1 ended */
	size_t		P;
	int			epochs,
				raw_ok;
	double		ndcg[64],
				loss[64];
} ema_log;

static void
ema_progress(void *ud, int epoch, int64_t step, int64_t spe, double loss)
{
	ema_log    *l = ud;

	if (l->steps < l->cap)
		for (size_t i = 0; i < l->P; i++)
			l->traj[l->steps * l->P + i] = (double) l->m->params[i];
	l->steps++;
}

static void
ema_epoch(void *ud, const t4r_epoch_info *info)
{
	ema_log    *l = ud;

	if (l->epochs < 64)
	{
		l->ndcg[l->epochs] = info->valid_ndcg10;
		l->loss[l->epochs] = info->loss;
		l->at[l->epochs] = l->steps;
	}
	if (l->traj && l->steps >= 1 && l->steps <= l->cap)
		for (size_t i = 0; i < l->P; i++)
			if ((double) l->m->params[i] != l->traj[(l->steps - 1) * l->P + i])
				l->raw_ok = 0;
	l->epochs++;
}

/*
 * big: a model above 65536 weights (fit_ema_update's threaded path) trained
 * with `threads` threads, a few large batches so that the logged weights
 * stay small
 */
static void
test_ema_decay(int threads, int big)
{
	t4r_dataset *ds = big ? random_dataset(43, 600, 20000, 14) : random_dataset(41, 60, 30, 14);
	t4r_model  *a = ds ? small_model(ds->n_items, 1, 5) : NULL,
			   *b = ds ? small_model(ds->n_items, 1, 5) : NULL,
			   *c = ds ? small_model(ds->n_items, 1, 5) : NULL;
	t4r_fit_opts o;
	t4r_fit_result res;
	ema_log		la,
				lb;
	char		err[256] = "";
	const int	E = big ? 4 : 10,
				k10 = 10;
	const double beta = big ? 0.5 : 0.8;	/* the cap reached within the steps */
	size_t		P = a ? a->layout.total : 0;
	double	   *e = NULL,
			   *ebest = NULL,
				worst_nd = 0,
				worst_w = 0;
	int			same_loss = 1,
				capped = 0,
				rc;

	if (!a || !b || !c)
	{
		tap_ok(0, "ema_decay setup");
		return;
	}
	if (big)
	{
		tap_ok(P > 65536, "threads %d: the model has %zu weights, above the threaded update's 65536",
			   threads, P);
		a->cfg.batch_size = b->cfg.batch_size = c->cfg.batch_size = 1024;
	}
	memset(&la, 0, sizeof(la));
	memset(&lb, 0, sizeof(lb));
	la.m = a;
	la.P = P;
	la.cap = big ? 64 : 400;
	la.raw_ok = 1;
	la.traj = malloc(sizeof(double) * P * la.cap);
	e = malloc(sizeof(double) * P);
	ebest = malloc(sizeof(double) * P);
	if (!la.traj || !e || !ebest)
	{
		tap_ok(0, "ema_decay setup (memory)");
		return;
	}
	for (size_t i = 0; i < P; i++)
		e[i] = (double) a->params[i];	/* the average starts at the initial weights */
	a->cfg.ema_decay = beta;
	memset(&o, 0, sizeof(o));
	o.train.threads = threads;
	o.epochs = E;
	o.patience = 100;
	o.progress = ema_progress;
	o.epoch_done = ema_epoch;
	o.ud = &la;
	rc = t4r_fit(a, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_OK && la.epochs == E && la.steps <= la.cap && la.steps >= 2 * E,
		   "fit with ema_decay %.1f, %d thread(s): %d epochs, %lld steps (%s)", beta, threads,
		   la.epochs, (long long) la.steps, rc ? err : "ok");
	o.progress = NULL;
	o.ud = &lb;
	tap_ok(t4r_fit(b, ds, &o, NULL, err, sizeof(err)) == T4R_OK && lb.epochs == E, "the same fit without ema_decay");
	for (int k = 0; k < E; k++)
		same_loss &= la.loss[k] == lb.loss[k];
	tap_ok(same_loss, "ema_decay does not change training: the %d epochs' losses equal the plain fit's", E);
	tap_ok(la.raw_ok, "after each epoch's validation the model holds the trained weights again, not the average");

	/* the average recomputed in double; each epoch scored on model c */
	for (int64_t t = 1, k = 0; t <= la.steps && k < E; t++)
	{
		double		bt = (1.0 + t) / (10.0 + t),
					nd = 0;

		if (bt > beta)
		{
			bt = beta;
			capped = 1;
		}
		for (size_t i = 0; i < P; i++)
			e[i] = bt * e[i] + (1 - bt) * la.traj[(t - 1) * P + i];
		if (t != la.at[k])
			continue;
		for (size_t i = 0; i < P; i++)
			c->params[i] = (t4r_real) e[i];
		if (t4r_evaluate(c, ds, T4R_SPLIT_VALID, &k10, 1, 1, NULL, NULL, NULL, &nd, NULL) != T4R_OK)
			nd = -1;
		if (fabs(nd - la.ndcg[k]) > worst_nd)
			worst_nd = fabs(nd - la.ndcg[k]);
		if (k + 1 == res.best_epoch)
			memcpy(ebest, e, sizeof(double) * P);
		k++;
	}
	tap_ok(capped && worst_nd < 1e-9,
		   "every epoch's validation NDCG@10 is that of the moving average recomputed in double "
		   "(worst difference %.3g over %d epochs, the cap %.1f reached)", worst_nd, E, beta);
	for (size_t i = 0; i < P; i++)
	{
		double		d = fabs((double) a->params[i] - ebest[i]) / (fabs(ebest[i]) + 1e-3);

		if (d > worst_w)
			worst_w = d;
	}
	tap_ok(res.best_epoch >= 1 && worst_w < 1e-5,
		   "the fit returns the moving average of its best epoch %d (worst relative difference %.3g)",
		   res.best_epoch, worst_w);
	if (!big)
	{
		t4r_backend be = {0};

		be.step = tb_step;
		be.sync_to_host = tb_sync;
		o.backend = &be;
		o.ud = &lb;
		err[0] = '\0';
		rc = t4r_fit(a, ds, &o, NULL, err, sizeof(err));
		tap_ok(rc == T4R_EINVAL && strstr(err, "ema_decay") != NULL,
			   "ema_decay with a backend is refused before any step (%s)", err);
	}
	free(la.traj);
	free(e);
	free(ebest);
	t4r_model_free(a);
	t4r_model_free(b);
	t4r_model_free(c);
	t4r_dataset_free(ds);
}

/* ---- t4r_dataset_build_ex: cancellation at every check point ---- */
typedef struct build_cancel
{
	int			calls,
				cancel_at;		/* -1: never */
} build_cancel;

static int
build_cancel_cb(void *ud)
{
	build_cancel *b = ud;

	return b->calls++ == b->cancel_at;
}

static void
test_build_cancel(void)
{
	size_t		n = 300000;		/* more than one row-loop check */
	int64_t    *u = malloc(n * sizeof(int64_t)),
			   *it = malloc(n * sizeof(int64_t));
	double	   *t = malloc(n * sizeof(double));
	t4r_dataset *a = NULL,
			   *b = NULL;
	build_cancel bc = {0, -1};
	char		err[256] = "";
	int			rc,
				allc = 1,
				ncalls;
	t4r_rng		rng;

	if (!u || !it || !t)
	{
		tap_ok(0, "build cancel setup");
		return;
	}
	t4r_rng_seed(&rng, 99);
	for (size_t k = 0; k < n; k++)
	{
		u[k] = (int64_t) (k % 9000);
		it[k] = (int64_t) t4r_rng_below(&rng, 3000);
		t[k] = (double) (k / 9000) * 60.0 + (double) t4r_rng_below(&rng, 30);
	}
	rc = t4r_dataset_build(u, it, t, NULL, n, 5, 5, &a, err, sizeof(err));
	tap_ok(rc == T4R_OK, "build without a callback (%s)", rc ? err : "ok");
	rc = t4r_dataset_build_ex(u, it, t, NULL, n, 5, 5, build_cancel_cb, &bc, &b, err, sizeof(err));
	ncalls = bc.calls;
	tap_ok(rc == T4R_OK && a && b && a->n_users == b->n_users && a->n_items == b->n_items &&
		   a->n_interactions == b->n_interactions &&
		   memcmp(a->seq_items, b->seq_items, a->n_interactions * sizeof(int32_t)) == 0 &&
		   memcmp(a->seq_ts, b->seq_ts, a->n_interactions * sizeof(double)) == 0,
		   "a callback that never cancels: the same dataset (%d check points for %zu rows)", ncalls, n);
	tap_ok(ncalls >= 8, "at least 8 check points (between phases, in the row and user loops): %d", ncalls);
	for (int k = 0; k < ncalls; k++)
	{
		t4r_dataset *c = (t4r_dataset *) 0x1;

		bc.calls = 0;
		bc.cancel_at = k;
		err[0] = '\0';
		rc = t4r_dataset_build_ex(u, it, t, NULL, n, 5, 5, build_cancel_cb, &bc, &c, err, sizeof(err));
		if (!(rc == T4R_ECANCELLED && c == NULL && strstr(err, "cancelled") && bc.calls == k + 1))
		{
			allc = 0;
			tap_diag("cancel at check %d: rc %d, out %p, calls %d, %s", k, rc, (void *) c, bc.calls, err);
		}
	}
	tap_ok(allc, "cancelling at each of the %d check points returns T4R_ECANCELLED, no dataset, stops at once", ncalls);
	t4r_dataset_free(a);
	t4r_dataset_free(b);
	free(u);
	free(it);
	free(t);
}

/* ------------------------------------------------------------------ */
/* tie_shuffle (t4r_shuffle_ties and the fit loop)                     */
/* ------------------------------------------------------------------ */

static int
cmp_i32_asc(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a,
				y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

static void
test_tie_shuffle(void)
{
	t4r_dataset *ds = random_dataset_days(5, 200, 40, 16, 4);
	size_t		n;
	int32_t    *a,
			   *b,
			   *sa,
			   *sb;
	int			kept_targets = 1,
				same_sets = 1,
				singles_kept = 1,
				moved = 0,
				runs = 0;

	if (!ds)
	{
		tap_ok(0, "tie_shuffle setup");
		return;
	}
	n = (size_t) ds->seq_off[ds->n_users];
	a = malloc(n * sizeof(int32_t));
	b = malloc(n * sizeof(int32_t));
	sa = malloc(n * sizeof(int32_t));
	sb = malloc(n * sizeof(int32_t));
	memcpy(a, ds->seq_items, n * sizeof(int32_t));
	t4r_shuffle_ties(ds, a, 2020, 1);
	/* by hand: the runs of equal times inside each training part (the last
	 * two of a user with >= 3 interactions are outside it) */
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					m = ds->seq_off[u + 1] - off,
					tl = m >= 3 ? m - 2 : m;

		for (int64_t p = tl; p < m; p++)
			kept_targets &= a[off + p] == ds->seq_items[off + p];
		for (int64_t x = 0; x < tl;)
		{
			int64_t		y = x + 1;

			while (y < tl && ds->seq_ts[off + y] == ds->seq_ts[off + x])
				y++;
			if (y - x == 1)
				singles_kept &= a[off + x] == ds->seq_items[off + x];
			else
			{
				runs++;
				memcpy(sa, a + off + x, (y - x) * sizeof(int32_t));
				memcpy(sb, ds->seq_items + off + x, (y - x) * sizeof(int32_t));
				qsort(sa, y - x, sizeof(int32_t), cmp_i32_asc);
				qsort(sb, y - x, sizeof(int32_t), cmp_i32_asc);
				same_sets &= memcmp(sa, sb, (y - x) * sizeof(int32_t)) == 0;
				moved += memcmp(a + off + x, ds->seq_items + off + x, (y - x) * sizeof(int32_t)) != 0;
			}
			x = y;
		}
	}
	tap_ok(kept_targets, "tie_shuffle: every validation and test target stays where it is");
	tap_ok(singles_kept && same_sets,
		   "tie_shuffle: an item without a tie stays put; each of %d runs of equal times keeps its items", runs);
	tap_ok(runs > 100 && moved > runs / 3,
		   "tie_shuffle: %d of %d runs of equal times change order", moved, runs);
	memcpy(b, ds->seq_items, n * sizeof(int32_t));
	t4r_shuffle_ties(ds, b, 2020, 1);
	tap_ok(memcmp(a, b, n * sizeof(int32_t)) == 0, "tie_shuffle: the same (seed, epoch) gives the same order");
	memcpy(b, ds->seq_items, n * sizeof(int32_t));
	t4r_shuffle_ties(ds, b, 2020, 2);
	tap_ok(memcmp(a, b, n * sizeof(int32_t)) != 0, "tie_shuffle: another epoch gives another order");

	/* a run of 3 distinct items: every one of the 6 orders about equally
	 * often over 1,200 epochs (each expected 200) */
	{
		int64_t		u = -1,
					x0 = -1;
		int			cnt[6] = {0},
					ok = 1;

		for (int64_t v = 0; v < ds->n_users && u < 0; v++)
		{
			int64_t		off = ds->seq_off[v],
						m = ds->seq_off[v + 1] - off,
						tl = m >= 3 ? m - 2 : m;

			for (int64_t x = 0; x + 2 < tl && u < 0; x++)
				if (ds->seq_ts[off + x] == ds->seq_ts[off + x + 2] &&
					(x == 0 || ds->seq_ts[off + x - 1] != ds->seq_ts[off + x]) &&
					(x + 3 >= tl || ds->seq_ts[off + x + 3] != ds->seq_ts[off + x]) &&
					ds->seq_items[off + x] != ds->seq_items[off + x + 1] &&
					ds->seq_items[off + x] != ds->seq_items[off + x + 2] &&
					ds->seq_items[off + x + 1] != ds->seq_items[off + x + 2])
				{
					u = v;
					x0 = off + x;
				}
		}
		if (u < 0)
			ok = 0;
		memcpy(b, ds->seq_items, n * sizeof(int32_t));
		for (int e = 1; ok && e <= 1200; e++)
		{
			int32_t		i0 = ds->seq_items[x0],
						i1 = ds->seq_items[x0 + 1];
			int			p0,
						p1;

			t4r_shuffle_ties(ds, b, 7, e);
			p0 = b[x0] == i0 ? 0 : b[x0] == i1 ? 1 : 2;
			p1 = b[x0 + 1] == i0 ? 0 : b[x0 + 1] == i1 ? 1 : 2;
			cnt[p0 * 2 + (p1 > p0 ? p1 - 1 : p1)]++;
		}
		for (int c = 0; c < 6; c++)
			ok &= cnt[c] >= 140 && cnt[c] <= 260;
		tap_ok(ok, "tie_shuffle: the 6 orders of a run of 3 over 1,200 epochs: %d %d %d %d %d %d (200 each expected)",
			   cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5]);
	}
	free(a);
	free(b);
	free(sa);
	free(sb);

	/* the fit loop: tie_shuffle changes the training when there are ties,
	 * and is exactly a no-op when there are none */
	for (int ties = 0; ties <= 1; ties++)
	{
		t4r_dataset *d2 = random_dataset_days(9, 80, 30, 14, ties ? 4 : 0);
		t4r_model  *m0 = d2 ? small_model(d2->n_items, 1, 11) : NULL,
				   *m1 = d2 ? small_model(d2->n_items, 1, 11) : NULL;
		t4r_fit_opts o;
		t4r_fit_result r0,
					r1;
		char		err[256] = "";
		int			rc0,
					rc1,
					same;

		if (!m0 || !m1)
		{
			tap_ok(0, "tie_shuffle fit setup");
			return;
		}
		memset(&o, 0, sizeof(o));
		o.train.threads = 1;
		o.epochs = 2;
		o.patience = 50;
		m1->cfg.tie_shuffle = 1;
		rc0 = t4r_fit(m0, d2, &o, &r0, err, sizeof(err));
		rc1 = t4r_fit(m1, d2, &o, &r1, err, sizeof(err));
		same = memcmp(m0->params, m1->params, m0->layout.total * sizeof(t4r_real)) == 0;
		if (ties)
			tap_ok(rc0 == T4R_OK && rc1 == T4R_OK && !same,
				   "tie_shuffle on a data set with ties trains other weights (%s)", rc1 ? err : "ok");
		else
			tap_ok(rc0 == T4R_OK && rc1 == T4R_OK && same,
				   "tie_shuffle on a data set without ties is a no-op: bit-identical weights (%s)",
				   rc1 ? err : "ok");
		t4r_model_free(m0);
		t4r_model_free(m1);
		t4r_dataset_free(d2);
	}
	t4r_dataset_free(ds);
}

/* t4r_dataset_truncate against an independent path: the builder run on the
 * raw rows without each user's last drop[u] interactions */
static void
test_truncate(void)
{
	ilist		l = {0},
				lt = {0};
	t4r_dataset *ds = NULL,
			   *tr = NULL,
			   *ref = NULL;
	char		err[256] = "";
	int			rc,
				ok;
	int64_t		drop[31];
	int			len[31];
	uint64_t	st = 77;

	/* user 1000 holds every item 1..20 and keeps all of them, so the item
	 * rows are the same with and without the dropped rows; users 1..30
	 * have 3..12 interactions at increasing times */
	for (int i = 1; i <= 20; i++)
		il_add(&l, 1000, i, 100.0 * i, 0);
	for (int u = 1; u <= 30; u++)
	{
		len[u] = 3 + (int) ((st = st * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % 10;
		for (int j = 0; j < len[u]; j++)
		{
			int			item = 1 + (int) ((st = st * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % 20;

			il_add(&l, u, item, 5000.0 + 10.0 * j + u, 0);
		}
	}
	rc = t4r_dataset_build(l.u, l.i, l.t, NULL, l.n, 1, 1, &ds, err, sizeof(err));
	tap_ok(rc == T4R_OK && ds->n_users == 31, "truncate: the dataset builds (%s)", rc ? err : "ok");
	if (rc != T4R_OK)
	{
		il_free(&l);
		return;
	}
	/* ds's users are ascending: 1..30, then 1000 */
	for (int64_t u = 0; u < 31; u++)
		drop[u] = u < 30 ? (u * 7) % len[u + 1] : 0;	/* 0 .. m-1 */
	{
		size_t		k = 0;

		for (int u = 1; u <= 30; u++)
		{
			for (int j = 0; j < len[u]; j++)
			{
				while (l.u[k] != u)
					k++;
				if (j < len[u] - drop[u - 1])
					il_add(&lt, u, l.i[k], l.t[k], 0);
				k++;
			}
		}
		for (int i = 1; i <= 20; i++)
			il_add(&lt, 1000, i, 100.0 * i, 0);
	}
	rc = t4r_dataset_build(lt.u, lt.i, lt.t, NULL, lt.n, 1, 1, &ref, err, sizeof(err));
	tap_ok(rc == T4R_OK, "truncate: the reference builds (%s)", rc ? err : "ok");
	rc = t4r_dataset_truncate(ds, drop, &tr);
	tap_ok(rc == T4R_OK, "truncate: returns T4R_OK (%d)", rc);
	if (ref && tr)
	{
		ok = tr->n_users == ref->n_users && tr->n_items == ref->n_items &&
			tr->n_interactions == ref->n_interactions &&
			tr->n_train_samples == ref->n_train_samples &&
			tr->train_on_valid == ref->train_on_valid;
		tap_ok(ok, "truncate: counts equal the reference's (%zu interactions, %lld samples vs %zu, %lld)",
			   tr->n_interactions, (long long) tr->n_train_samples, ref->n_interactions,
			   (long long) ref->n_train_samples);
		ok = ok && memcmp(tr->item_ids, ref->item_ids, sizeof(int64_t) * ref->n_items) == 0 &&
			memcmp(tr->user_ids, ref->user_ids, sizeof(int64_t) * ref->n_users) == 0 &&
			memcmp(tr->seq_off, ref->seq_off, sizeof(int64_t) * (ref->n_users + 1)) == 0 &&
			memcmp(tr->seq_items, ref->seq_items, sizeof(int32_t) * ref->n_interactions) == 0 &&
			memcmp(tr->seq_ts, ref->seq_ts, sizeof(double) * ref->n_interactions) == 0;
		tap_ok(ok, "truncate: ids, offsets, items and times equal the reference's");
		ok = ok && memcmp(tr->item_count, ref->item_count, sizeof(int64_t) * ref->n_items) == 0;
		tap_ok(ok, "truncate: training-part item counts equal the reference's");
		ok = tr->n_interactions < ds->n_interactions && ds->n_interactions == l.n;
		tap_ok(ok, "truncate: rows were dropped (%zu of %zu kept), the input is unchanged",
			   tr->n_interactions, ds->n_interactions);
	}
	t4r_dataset_free(tr);
	t4r_dataset_free(ref);
	tr = NULL;
	/* no drop: a copy */
	memset(drop, 0, sizeof(drop));
	rc = t4r_dataset_truncate(ds, drop, &tr);
	ok = rc == T4R_OK && tr->n_interactions == ds->n_interactions &&
		memcmp(tr->seq_items, ds->seq_items, sizeof(int32_t) * ds->n_interactions) == 0 &&
		memcmp(tr->item_count, ds->item_count, sizeof(int64_t) * ds->n_items) == 0 &&
		tr->n_train_samples == ds->n_train_samples;
	tap_ok(ok, "truncate: dropping nothing copies the dataset");
	t4r_dataset_free(tr);
	tr = NULL;
	/* bounds: a whole history, a negative count */
	drop[0] = len[1];
	rc = t4r_dataset_truncate(ds, drop, &tr);
	tap_ok(rc == T4R_EINVAL && tr == NULL, "truncate: dropping a whole history is T4R_EINVAL (%d)", rc);
	drop[0] = -1;
	rc = t4r_dataset_truncate(ds, drop, &tr);
	tap_ok(rc == T4R_EINVAL && tr == NULL, "truncate: a negative count is T4R_EINVAL (%d)", rc);
	t4r_dataset_free(ds);
	il_free(&l);
	il_free(&lt);
}

int
main(void)
{
	test_filter_chain();
	test_filter_random();
	test_order_and_split();
	test_errors();
	test_popular_random();
	test_topk();
	test_scale();
	test_model_eval();
	test_fit();
	test_lr_decay();
	test_fit_backend();
	test_ema_decay(1, 0);
	test_ema_decay(2, 1);
	test_build_cancel();
	test_tie_shuffle();
	test_truncate();
	return tap_done();
}
