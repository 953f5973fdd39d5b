/*
 * dataset.c - building the compact per-user sequences from raw interactions
 * (docs/MODEL.md, "Data protocol"): iterative min-count filter, item rows,
 * per-user ordering, the leave-one-out split; and the robust time path's gap
 * scale, a statistic of the training parts.  Evaluation and top-k are in
 * evaluate.c, the fit loop in fit.c.
 *
 * Protocol details (documented choices):
 *  - Every input row is one interaction; repeated (user, item) pairs are kept
 *    and counted (as RecBole does).
 *  - Filter: users with fewer than min_user and items with fewer than min_item
 *    interactions are removed, repeatedly, until no count is below its
 *    threshold (the greatest such subset, which is unique).  Thresholds below 1
 *    act as 1: a user or item with no interaction left is never kept.
 *  - Item rows 1..V-1 in ascending external item id; users in ascending
 *    external user id.  Per user, interactions are ordered by timestamp, ties
 *    by the order value when given, else by external item id, remaining ties
 *    by position in the input (a stable sort).
 *  - Leave-one-out: a user with m >= 3 interactions has the training part
 *    seq[0..m-3], validation target seq[m-2], test target seq[m-1].  A user
 *    with m < 3 (possible only with min_user < 3) has no validation or test
 *    target: the whole sequence is its training part (m - 1 samples).
 *  - item_count[r] counts row r over the training parts only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tim4rec.h"
#include "dataset.h"
#include "err.h"

/* ------------------------------------------------------------------ */
/* sorting helpers                                                     */
/* ------------------------------------------------------------------ */

/* LSD radix sort of n uint64 keys (8-bit digits, passes with a single
 * populated bucket skipped).  tmp has room for n keys. */
static void
radix_sort_u64(uint64_t *a, uint64_t *tmp, size_t n)
{
	uint64_t   *src = a,
			   *dst = tmp;

	for (int shift = 0; shift < 64; shift += 8)
	{
		size_t		cnt[256];
		size_t		sum = 0;
		int			trivial = 0;

		memset(cnt, 0, sizeof(cnt));
		for (size_t i = 0; i < n; i++)
			cnt[(src[i] >> shift) & 255]++;
		for (int b = 0; b < 256; b++)
		{
			size_t		c = cnt[b];

			if (c == n)
				trivial = 1;
			cnt[b] = sum;
			sum += c;
		}
		if (trivial)
			continue;
		for (size_t i = 0; i < n; i++)
			dst[cnt[(src[i] >> shift) & 255]++] = src[i];
		{
			uint64_t   *t = src;

			src = dst;
			dst = t;
		}
	}
	if (src != a)
		memcpy(a, src, n * sizeof(uint64_t));
}

static inline uint64_t
key_of(int64_t v)
{
	return (uint64_t) v ^ 0x8000000000000000ULL;
}

/* sorted distinct keys of v[0..n-1] into *uniq (malloc'd), count in *nu */
static int
distinct_sorted(const int64_t *v, size_t n, uint64_t **uniq, size_t *nu)
{
	uint64_t   *a = malloc((n ? n : 1) * sizeof(uint64_t));
	uint64_t   *t = malloc((n ? n : 1) * sizeof(uint64_t));
	size_t		k = 0;

	if (!a || !t)
	{
		free(a);
		free(t);
		return T4R_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		a[i] = key_of(v[i]);
	radix_sort_u64(a, t, n);
	free(t);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || a[i] != a[k - 1])
			a[k++] = a[i];
	*uniq = realloc(a, (k ? k : 1) * sizeof(uint64_t));
	if (*uniq == NULL)
		*uniq = a;
	*nu = k;
	return T4R_OK;
}

/* index of key in sorted uniq[0..nu-1] (present by construction) */
static inline uint32_t
find_key(const uint64_t *uniq, size_t nu, uint64_t key)
{
	size_t		lo = 0,
				hi = nu;

	while (hi - lo > 1)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (uniq[mid] <= key)
			lo = mid;
		else
			hi = mid;
	}
	return (uint32_t) lo;
}

typedef struct seq_ent
{
	double		ts;
	int64_t		tie;
	uint32_t	pos;
	int32_t		row;
} seq_ent;

static int
cmp_seq_ent(const void *pa, const void *pb)
{
	const seq_ent *a = pa,
			   *b = pb;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	if (a->tie != b->tie)
		return a->tie < b->tie ? -1 : 1;
	return a->pos < b->pos ? -1 : (a->pos > b->pos);
}

static void
sort_seq(seq_ent *e, size_t m)
{
	if (m <= 16)
	{
		/* insertion sort: the common short case */
		for (size_t i = 1; i < m; i++)
		{
			seq_ent		x = e[i];
			size_t		j = i;

			while (j > 0 && cmp_seq_ent(&e[j - 1], &x) > 0)
			{
				e[j] = e[j - 1];
				j--;
			}
			e[j] = x;
		}
	}
	else
		qsort(e, m, sizeof(seq_ent), cmp_seq_ent);
}

/* ------------------------------------------------------------------ */
/* dataset                                                             */
/* ------------------------------------------------------------------ */
void
t4r_dataset_free(t4r_dataset *ds)
{
	if (ds == NULL)
		return;
	free(ds->item_ids);
	free(ds->user_ids);
	free(ds->seq_off);
	free(ds->seq_items);
	free(ds->seq_ts);
	free(ds->item_count);
	free(ds);
}

int
t4r_dataset_build(const int64_t *users, const int64_t *items,
				  const double *ts, const int64_t *order, size_t n,
				  int min_user, int min_item, t4r_dataset **out,
				  char *err, size_t errlen)
{
	return t4r_dataset_build_ex(users, items, ts, order, n, min_user, min_item,
								NULL, NULL, out, err, errlen);
}

/*
 * The builder's state, phase by phase: dense user / item ids (rank among the
 * distinct external ids), per-user and per-item lists of interaction
 * indices (CSR, input order kept), the iterative filter's marks, item rows.
 * All arrays are malloc'd and freed by build_free.
 */
typedef struct ds_builder
{
	const int64_t *users,
			   *items,
			   *order;
	const double *ts;
	size_t		n;
	uint32_t	mu,				/* thresholds, at least 1 */
				mi;
	int			(*interrupt) (void *ud);
	void	   *ud;
	char	   *err;
	size_t		errlen;
	uint64_t   *uu,				/* sorted distinct user keys [nu] */
			   *ui;				/* sorted distinct item keys [ni] */
	size_t		nu,
				ni;
	uint32_t   *uidx,			/* [n] dense user of interaction k */
			   *iidx;			/* [n] dense item of interaction k */
	uint32_t   *ulist,			/* [n] interactions by user (CSR over uoff) */
			   *ilist;			/* [n] interactions by item (CSR over ioff) */
	size_t	   *uoff,			/* [nu + 1] */
			   *ioff;			/* [ni + 1] */
	uint32_t   *ucnt,			/* [nu] interactions alive */
			   *icnt;			/* [ni] */
	uint8_t    *alive,			/* [n] interaction kept */
			   *udead,			/* [nu] user removed */
			   *idead;			/* [ni] item removed */
	int32_t    *irow;			/* [ni] row of a kept item, 0 if removed */
	size_t		keep_users,
				keep_items,
				keep_n,
				maxm;			/* longest kept user sequence */
} ds_builder;

/* checked between phases and every CANCEL_EVERY rows/users of the long loops */
#define CANCEL_EVERY 262144

static int
build_cancelled(ds_builder *b)
{
	if (b->interrupt && b->interrupt(b->ud))
	{
		t4r_set_err(b->err, b->errlen, "building the dataset was cancelled");
		return 1;
	}
	return 0;
}

static void
build_free(ds_builder *b)
{
	free(b->uu);
	free(b->ui);
	free(b->uidx);
	free(b->iidx);
	free(b->ulist);
	free(b->ilist);
	free(b->uoff);
	free(b->ioff);
	free(b->ucnt);
	free(b->icnt);
	free(b->alive);
	free(b->udead);
	free(b->idead);
	free(b->irow);
}

/* arguments and timestamps */
static int
build_check_input(const ds_builder *b, t4r_dataset **out)
{
	if (out == NULL)
	{
		t4r_set_err(b->err, b->errlen, "t4r_dataset_build: out is NULL");
		return T4R_EINVAL;
	}
	*out = NULL;
	if (b->n > 0 && (b->users == NULL || b->items == NULL || b->ts == NULL))
	{
		t4r_set_err(b->err, b->errlen, "t4r_dataset_build: users, items and ts must not be NULL");
		return T4R_EINVAL;
	}
	if (b->n >= (size_t) INT32_MAX)
	{
		t4r_set_err(b->err, b->errlen, "too many interactions (%zu; at most %d)", b->n, INT32_MAX - 1);
		return T4R_EINVAL;
	}
	for (size_t k = 0; k < b->n; k++)
		if (!t4r_time_ok(b->ts[k]))
		{
			if (isfinite(b->ts[k]))
				t4r_set_err(b->err, b->errlen, "timestamp of interaction %zu (user %lld, item %lld) is out of range: %g "
							"(times must be finite with an absolute value of at most %g)",
							k, (long long) b->users[k], (long long) b->items[k], b->ts[k], T4R_TIME_ABS_MAX);
			else
				t4r_set_err(b->err, b->errlen, "timestamp of interaction %zu (user %lld, item %lld) is not a finite number",
							k, (long long) b->users[k], (long long) b->items[k]);
			return T4R_EINVAL;
		}
	if (b->n == 0)
	{
		t4r_set_err(b->err, b->errlen, "no interactions");
		return T4R_EDATA;
	}
	return T4R_OK;
}

/* dense ids, counts and the CSR lists */
static int
build_index(ds_builder *b)
{
	size_t		n = b->n,
				nu,
				ni;
	size_t	   *pu;

	if (build_cancelled(b))
		return T4R_ECANCELLED;
	if (distinct_sorted(b->users, n, &b->uu, &b->nu) != T4R_OK)
		return T4R_ENOMEM;
	if (build_cancelled(b))
		return T4R_ECANCELLED;
	if (distinct_sorted(b->items, n, &b->ui, &b->ni) != T4R_OK)
		return T4R_ENOMEM;
	if (build_cancelled(b))
		return T4R_ECANCELLED;
	nu = b->nu;
	ni = b->ni;
	b->uidx = malloc(n * sizeof(uint32_t));
	b->iidx = malloc(n * sizeof(uint32_t));
	b->ulist = malloc(n * sizeof(uint32_t));
	b->ilist = malloc(n * sizeof(uint32_t));
	b->alive = malloc(n);
	b->uoff = calloc(nu + 1, sizeof(size_t));
	b->ioff = calloc(ni + 1, sizeof(size_t));
	b->ucnt = calloc(nu, sizeof(uint32_t));
	b->icnt = calloc(ni, sizeof(uint32_t));
	b->udead = calloc(nu, 1);
	b->idead = calloc(ni, 1);
	if (!b->uidx || !b->iidx || !b->ulist || !b->ilist || !b->alive || !b->uoff || !b->ioff ||
		!b->ucnt || !b->icnt || !b->udead || !b->idead)
		return T4R_ENOMEM;
	for (size_t k = 0; k < n; k++)
	{
		if (k % CANCEL_EVERY == CANCEL_EVERY - 1 && build_cancelled(b))
			return T4R_ECANCELLED;
		b->uidx[k] = find_key(b->uu, nu, key_of(b->users[k]));
		b->iidx[k] = find_key(b->ui, ni, key_of(b->items[k]));
		b->ucnt[b->uidx[k]]++;
		b->icnt[b->iidx[k]]++;
		b->alive[k] = 1;
	}
	/* CSR lists (counting sort, input order kept within a user / item) */
	for (size_t u = 0; u < nu; u++)
		b->uoff[u + 1] = b->uoff[u] + b->ucnt[u];
	for (size_t i = 0; i < ni; i++)
		b->ioff[i + 1] = b->ioff[i] + b->icnt[i];
	pu = malloc((nu + ni) * sizeof(size_t));
	if (!pu)
		return T4R_ENOMEM;
	memcpy(pu, b->uoff, nu * sizeof(size_t));
	memcpy(pu + nu, b->ioff, ni * sizeof(size_t));
	for (size_t k = 0; k < n; k++)
	{
		b->ulist[pu[b->uidx[k]]++] = (uint32_t) k;
		b->ilist[pu[nu + b->iidx[k]]++] = (uint32_t) k;
	}
	free(pu);
	return T4R_OK;
}

/*
 * The iterative min-count filter as a work queue: a user or item whose count
 * falls below its threshold is queued once, and removing it decrements the
 * counts of the other side.  The result is the greatest subset in which no
 * count is below its threshold.  Frees the per-item lists (no longer needed).
 */
static int
build_filter(ds_builder *b)
{
	size_t		nu = b->nu,
				ni = b->ni,
				qh = 0,
				qt = 0;
	uint32_t   *queue = malloc((nu + ni) * sizeof(uint32_t));

	if (!queue)
		return T4R_ENOMEM;
	if (build_cancelled(b))
	{
		free(queue);
		return T4R_ECANCELLED;
	}
	for (size_t u = 0; u < nu; u++)
		if (b->ucnt[u] < b->mu)
		{
			b->udead[u] = 1;
			queue[qt++] = (uint32_t) u;
		}
	for (size_t i = 0; i < ni; i++)
		if (b->icnt[i] < b->mi)
		{
			b->idead[i] = 1;
			queue[qt++] = (uint32_t) (nu + i);
		}
	while (qh < qt)
	{
		size_t		x = queue[qh++];
		int			is_user = x < nu;
		size_t		e = is_user ? x : x - nu;
		const size_t *off = is_user ? b->uoff : b->ioff;
		const uint32_t *list = is_user ? b->ulist : b->ilist;

		for (size_t j = off[e]; j < off[e + 1]; j++)
		{
			uint32_t	k = list[j];

			if (!b->alive[k])
				continue;
			b->alive[k] = 0;
			if (is_user)
			{
				b->ucnt[e]--;
				if (--b->icnt[b->iidx[k]] < b->mi && !b->idead[b->iidx[k]])
				{
					b->idead[b->iidx[k]] = 1;
					queue[qt++] = (uint32_t) (nu + b->iidx[k]);
				}
			}
			else
			{
				b->icnt[e]--;
				if (--b->ucnt[b->uidx[k]] < b->mu && !b->udead[b->uidx[k]])
				{
					b->udead[b->uidx[k]] = 1;
					queue[qt++] = (uint32_t) b->uidx[k];
				}
			}
		}
	}
	free(queue);
	free(b->ilist);
	b->ilist = NULL;
	free(b->ioff);
	b->ioff = NULL;
	return build_cancelled(b) ? T4R_ECANCELLED : T4R_OK;
}

/* what the filter kept: sizes, item rows in ascending external id */
static int
build_rows(ds_builder *b)
{
	for (size_t u = 0; u < b->nu; u++)
		if (!b->udead[u])
		{
			b->keep_users++;
			b->keep_n += b->ucnt[u];
			if (b->ucnt[u] > b->maxm)
				b->maxm = b->ucnt[u];
		}
	b->irow = malloc(b->ni * sizeof(int32_t));
	if (!b->irow)
		return T4R_ENOMEM;
	for (size_t i = 0; i < b->ni; i++)
		b->irow[i] = b->idead[i] ? 0 : (int32_t) (++b->keep_items);
	if (b->keep_users == 0 || b->keep_items == 0 || b->keep_n == 0)
	{
		t4r_set_err(b->err, b->errlen,
					"no interactions left after filtering users with fewer than %d and items with fewer than %d interactions "
					"(input: %zu interactions, %zu users, %zu items; remaining: %zu users, %zu items)",
					(int) b->mu, (int) b->mi, b->n, b->nu, b->ni, b->keep_users, b->keep_items);
		return T4R_EDATA;
	}
	return T4R_OK;
}

/* the dataset's arrays, item ids and every kept user's ordered sequence */
static int
build_sequences(ds_builder *b, t4r_dataset *ds)
{
	seq_ent    *ent;
	size_t		uo = 0,
				p = 0;

	ds->n_users = (int64_t) b->keep_users;
	ds->n_items = (int32_t) (b->keep_items + 1);
	ds->n_interactions = b->keep_n;
	ds->item_ids = calloc(b->keep_items + 1, sizeof(int64_t));
	ds->user_ids = malloc(b->keep_users * sizeof(int64_t));
	ds->seq_off = malloc((b->keep_users + 1) * sizeof(int64_t));
	ds->seq_items = malloc(b->keep_n * sizeof(int32_t));
	ds->seq_ts = malloc(b->keep_n * sizeof(double));
	ds->item_count = calloc(b->keep_items + 1, sizeof(int64_t));
	ent = malloc(b->maxm * sizeof(seq_ent));
	if (!ds->item_ids || !ds->user_ids || !ds->seq_off || !ds->seq_items ||
		!ds->seq_ts || !ds->item_count || !ent)
	{
		free(ent);
		return T4R_ENOMEM;
	}
	for (size_t i = 0; i < b->ni; i++)
		if (b->irow[i])
			ds->item_ids[b->irow[i]] = (int64_t) (b->ui[i] ^ 0x8000000000000000ULL);

	ds->seq_off[0] = 0;
	for (size_t u = 0; u < b->nu; u++)
	{
		size_t		m = 0;

		if (b->udead[u])
			continue;
		if (uo % 4096 == 4095 && build_cancelled(b))
		{
			free(ent);
			return T4R_ECANCELLED;
		}
		for (size_t j = b->uoff[u]; j < b->uoff[u + 1]; j++)
		{
			uint32_t	k = b->ulist[j];

			if (!b->alive[k])
				continue;
			ent[m].ts = b->ts[k];
			ent[m].tie = b->order ? b->order[k] : b->items[k];
			ent[m].pos = k;
			ent[m].row = b->irow[b->iidx[k]];
			m++;
		}
		sort_seq(ent, m);
		for (size_t j = 0; j < m; j++)
		{
			ds->seq_items[p + j] = ent[j].row;
			ds->seq_ts[p + j] = ent[j].ts;
		}
		ds->user_ids[uo] = (int64_t) (b->uu[u] ^ 0x8000000000000000ULL);
		p += m;
		ds->seq_off[++uo] = (int64_t) p;
	}
	free(ent);
	return T4R_OK;
}

/* popularity over the training parts, training sample count (item_count
 * zeroed by the caller) */
void
t4r_ds_count(t4r_dataset *ds)
{
	ds->n_train_samples = 0;
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		tl = train_len(ds, u);
		const int32_t *s = ds->seq_items + ds->seq_off[u];

		for (int64_t j = 0; j < tl; j++)
			ds->item_count[s[j]]++;
		if (tl > 1)
			ds->n_train_samples += tl - 1;
	}
}

int
t4r_dataset_build_ex(const int64_t *users, const int64_t *items,
					 const double *ts, const int64_t *order, size_t n,
					 int min_user, int min_item,
					 int (*interrupt) (void *ud), void *ud,
					 t4r_dataset **out, char *err, size_t errlen)
{
	ds_builder	b;
	t4r_dataset *ds = NULL;
	int			rc;

	memset(&b, 0, sizeof(b));
	b.users = users;
	b.items = items;
	b.ts = ts;
	b.order = order;
	b.n = n;
	b.mu = min_user < 1 ? 1 : (uint32_t) min_user;
	b.mi = min_item < 1 ? 1 : (uint32_t) min_item;
	b.interrupt = interrupt;
	b.ud = ud;
	b.err = err;
	b.errlen = errlen;
	if ((rc = build_check_input(&b, out)) != T4R_OK)
		return rc;
	if ((rc = build_index(&b)) == T4R_OK &&
		(rc = build_filter(&b)) == T4R_OK &&
		(rc = build_rows(&b)) == T4R_OK)
	{
		ds = calloc(1, sizeof(*ds));
		rc = ds ? build_sequences(&b, ds) : T4R_ENOMEM;
	}
	if (rc == T4R_OK)
	{
		t4r_ds_count(ds);
		ds->ties_by_order = order != NULL;
		*out = ds;
		ds = NULL;
	}
	else if (rc == T4R_ENOMEM)
		t4r_set_err(err, errlen, "out of memory building the dataset (%zu interactions)", n);
	t4r_dataset_free(ds);
	build_free(&b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* robust time path: the gap scale                                     */
/* ------------------------------------------------------------------ */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

double
t4r_dataset_time_scale(const t4r_dataset *ds)
{
	int64_t		npos = 0,
				k = 0,
				stride,
				seen = 0;
	double	   *g,
				med;
	const int64_t cap = (int64_t) 1 << 20;

	if (ds == NULL)
		return 1.0;
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					tl = train_len(ds, u);

		for (int64_t j = 1; j < tl; j++)
			if (ds->seq_ts[off + j] - ds->seq_ts[off + j - 1] > 0)
				npos++;
	}
	if (npos == 0)
		return 1.0;
	/* at most ~1M gaps: every stride-th positive gap in data order */
	stride = (npos + cap - 1) / cap;
	g = malloc(sizeof(double) * (size_t) (npos / stride + 1));
	if (g == NULL)
		return 1.0;
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					tl = train_len(ds, u);

		for (int64_t j = 1; j < tl; j++)
		{
			double		gap = ds->seq_ts[off + j] - ds->seq_ts[off + j - 1];

			if (gap > 0 && seen++ % stride == 0)
				g[k++] = gap;
		}
	}
	qsort(g, (size_t) k, sizeof(double), cmp_double);
	med = (k % 2) ? g[k / 2] : 0.5 * (g[k / 2 - 1] + g[k / 2]);
	free(g);
	return med > 0 && isfinite(med) ? med : 1.0;
}
