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

/* between phases and every CANCEL_EVERY rows/users of the long loops */
#define CANCEL_EVERY 262144
#define CHECK_CANCEL() \
	do { \
		if (interrupt && interrupt(ud)) \
		{ \
			rc = T4R_ECANCELLED; \
			t4r_set_err(err, errlen, "building the dataset was cancelled"); \
			goto fail; \
		} \
	} while (0)

int
t4r_dataset_build_ex(const int64_t *users, const int64_t *items,
					 const double *ts, const int64_t *order, size_t n,
					 int min_user, int min_item,
					 int (*interrupt) (void *ud), void *ud,
					 t4r_dataset **out, char *err, size_t errlen)
{
	int			rc = T4R_ENOMEM;
	uint64_t   *uu = NULL,
			   *ui = NULL;
	size_t		nu = 0,
				ni = 0;
	uint32_t   *uidx = NULL,
			   *iidx = NULL,
			   *ulist = NULL,
			   *ilist = NULL,
			   *queue = NULL;
	size_t	   *uoff = NULL,
			   *ioff = NULL;
	uint32_t   *ucnt = NULL,
			   *icnt = NULL;
	uint8_t    *alive = NULL,
			   *udead = NULL,
			   *idead = NULL;
	int32_t    *irow = NULL;
	seq_ent    *ent = NULL;
	t4r_dataset *ds = NULL;
	size_t		qh = 0,
				qt = 0;
	uint32_t	mu,
				mi;
	size_t		keep_users = 0,
				keep_items = 0,
				keep_n = 0,
				maxm = 0;

	if (out == NULL)
	{
		t4r_set_err(err, errlen, "t4r_dataset_build: out is NULL");
		return T4R_EINVAL;
	}
	*out = NULL;
	if (n > 0 && (users == NULL || items == NULL || ts == NULL))
	{
		t4r_set_err(err, errlen, "t4r_dataset_build: users, items and ts must not be NULL");
		return T4R_EINVAL;
	}
	if (n >= (size_t) INT32_MAX)
	{
		t4r_set_err(err, errlen, "too many interactions (%zu; at most %d)", n, INT32_MAX - 1);
		return T4R_EINVAL;
	}
	for (size_t k = 0; k < n; k++)
		if (!t4r_time_ok(ts[k]))
		{
			if (isfinite(ts[k]))
				t4r_set_err(err, errlen, "timestamp of interaction %zu (user %lld, item %lld) is out of range: %g "
						"(times must be finite with an absolute value of at most %g)",
						k, (long long) users[k], (long long) items[k], ts[k], T4R_TIME_ABS_MAX);
			else
				t4r_set_err(err, errlen, "timestamp of interaction %zu (user %lld, item %lld) is not a finite number",
						k, (long long) users[k], (long long) items[k]);
			return T4R_EINVAL;
		}
	if (n == 0)
	{
		t4r_set_err(err, errlen, "no interactions");
		return T4R_EDATA;
	}
	mu = min_user < 1 ? 1 : (uint32_t) min_user;
	mi = min_item < 1 ? 1 : (uint32_t) min_item;

	/* dense ids: rank among the distinct external ids */
	CHECK_CANCEL();
	if (distinct_sorted(users, n, &uu, &nu) != T4R_OK)
		goto fail;
	CHECK_CANCEL();
	if (distinct_sorted(items, n, &ui, &ni) != T4R_OK)
		goto fail;
	CHECK_CANCEL();
	uidx = malloc(n * sizeof(uint32_t));
	iidx = malloc(n * sizeof(uint32_t));
	ulist = malloc(n * sizeof(uint32_t));
	ilist = malloc(n * sizeof(uint32_t));
	alive = malloc(n);
	uoff = calloc(nu + 1, sizeof(size_t));
	ioff = calloc(ni + 1, sizeof(size_t));
	ucnt = calloc(nu, sizeof(uint32_t));
	icnt = calloc(ni, sizeof(uint32_t));
	udead = calloc(nu, 1);
	idead = calloc(ni, 1);
	queue = malloc((nu + ni) * sizeof(uint32_t));
	if (!uidx || !iidx || !ulist || !ilist || !alive || !uoff || !ioff ||
		!ucnt || !icnt || !udead || !idead || !queue)
		goto fail;
	for (size_t k = 0; k < n; k++)
	{
		if (k % CANCEL_EVERY == CANCEL_EVERY - 1)
			CHECK_CANCEL();
		uidx[k] = find_key(uu, nu, key_of(users[k]));
		iidx[k] = find_key(ui, ni, key_of(items[k]));
		ucnt[uidx[k]]++;
		icnt[iidx[k]]++;
		alive[k] = 1;
	}
	/* CSR lists (counting sort, input order kept within a user / item) */
	for (size_t u = 0; u < nu; u++)
		uoff[u + 1] = uoff[u] + ucnt[u];
	for (size_t i = 0; i < ni; i++)
		ioff[i + 1] = ioff[i] + icnt[i];
	{
		size_t	   *pu = malloc((nu + ni) * sizeof(size_t));

		if (!pu)
			goto fail;
		memcpy(pu, uoff, nu * sizeof(size_t));
		memcpy(pu + nu, ioff, ni * sizeof(size_t));
		for (size_t k = 0; k < n; k++)
		{
			ulist[pu[uidx[k]]++] = (uint32_t) k;
			ilist[pu[nu + iidx[k]]++] = (uint32_t) k;
		}
		free(pu);
	}

	CHECK_CANCEL();
	/* iterative filter as a work queue: each removal is done once */
	for (size_t u = 0; u < nu; u++)
		if (ucnt[u] < mu)
		{
			udead[u] = 1;
			queue[qt++] = (uint32_t) u;
		}
	for (size_t i = 0; i < ni; i++)
		if (icnt[i] < mi)
		{
			idead[i] = 1;
			queue[qt++] = (uint32_t) (nu + i);
		}
	while (qh < qt)
	{
		size_t		x = queue[qh++];

		if (x < nu)
		{
			for (size_t j = uoff[x]; j < uoff[x + 1]; j++)
			{
				uint32_t	k = ulist[j];

				if (!alive[k])
					continue;
				alive[k] = 0;
				ucnt[x]--;
				if (--icnt[iidx[k]] < mi && !idead[iidx[k]])
				{
					idead[iidx[k]] = 1;
					queue[qt++] = (uint32_t) (nu + iidx[k]);
				}
			}
		}
		else
		{
			size_t		i = x - nu;

			for (size_t j = ioff[i]; j < ioff[i + 1]; j++)
			{
				uint32_t	k = ilist[j];

				if (!alive[k])
					continue;
				alive[k] = 0;
				icnt[i]--;
				if (--ucnt[uidx[k]] < mu && !udead[uidx[k]])
				{
					udead[uidx[k]] = 1;
					queue[qt++] = (uint32_t) uidx[k];
				}
			}
		}
	}
	free(queue);
	queue = NULL;
	free(ilist);
	ilist = NULL;
	free(ioff);
	ioff = NULL;
	CHECK_CANCEL();

	for (size_t u = 0; u < nu; u++)
		if (!udead[u])
		{
			keep_users++;
			keep_n += ucnt[u];
			if (ucnt[u] > maxm)
				maxm = ucnt[u];
		}
	irow = malloc(ni * sizeof(int32_t));
	if (!irow)
		goto fail;
	for (size_t i = 0; i < ni; i++)
		irow[i] = idead[i] ? 0 : (int32_t) (++keep_items);
	if (keep_users == 0 || keep_items == 0 || keep_n == 0)
	{
		t4r_set_err(err, errlen,
				"no interactions left after filtering users with fewer than %d and items with fewer than %d interactions "
				"(input: %zu interactions, %zu users, %zu items; remaining: %zu users, %zu items)",
				(int) mu, (int) mi, n, nu, ni, keep_users, keep_items);
		rc = T4R_EDATA;
		goto fail;
	}

	ds = calloc(1, sizeof(*ds));
	if (!ds)
		goto fail;
	ds->n_users = (int64_t) keep_users;
	ds->n_items = (int32_t) (keep_items + 1);
	ds->n_interactions = keep_n;
	ds->item_ids = calloc(keep_items + 1, sizeof(int64_t));
	ds->user_ids = malloc(keep_users * sizeof(int64_t));
	ds->seq_off = malloc((keep_users + 1) * sizeof(int64_t));
	ds->seq_items = malloc(keep_n * sizeof(int32_t));
	ds->seq_ts = malloc(keep_n * sizeof(double));
	ds->item_count = calloc(keep_items + 1, sizeof(int64_t));
	ent = malloc(maxm * sizeof(seq_ent));
	if (!ds->item_ids || !ds->user_ids || !ds->seq_off || !ds->seq_items ||
		!ds->seq_ts || !ds->item_count || !ent)
		goto fail;
	for (size_t i = 0; i < ni; i++)
		if (irow[i])
			ds->item_ids[irow[i]] = (int64_t) (ui[i] ^ 0x8000000000000000ULL);

	{
		size_t		uo = 0,
					p = 0;

		ds->seq_off[0] = 0;
		for (size_t u = 0; u < nu; u++)
		{
			size_t		m = 0;

			if (udead[u])
				continue;
			if (uo % 4096 == 4095)
				CHECK_CANCEL();
			for (size_t j = uoff[u]; j < uoff[u + 1]; j++)
			{
				uint32_t	k = ulist[j];

				if (!alive[k])
					continue;
				ent[m].ts = ts[k];
				ent[m].tie = order ? order[k] : items[k];
				ent[m].pos = k;
				ent[m].row = irow[iidx[k]];
				m++;
			}
			sort_seq(ent, m);
			for (size_t j = 0; j < m; j++)
			{
				ds->seq_items[p + j] = ent[j].row;
				ds->seq_ts[p + j] = ent[j].ts;
			}
			ds->user_ids[uo] = (int64_t) (uu[u] ^ 0x8000000000000000ULL);
			p += m;
			ds->seq_off[++uo] = (int64_t) p;
		}
	}
	/* popularity over the training parts, sample count */
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
	rc = T4R_OK;
	*out = ds;
	ds = NULL;

fail:
	if (rc == T4R_ENOMEM)
		t4r_set_err(err, errlen, "out of memory building the dataset (%zu interactions)", n);
	t4r_dataset_free(ds);
	free(uu);
	free(ui);
	free(uidx);
	free(iidx);
	free(ulist);
	free(ilist);
	free(alive);
	free(uoff);
	free(ioff);
	free(ucnt);
	free(icnt);
	free(udead);
	free(idead);
	free(queue);
	free(irow);
	free(ent);
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
