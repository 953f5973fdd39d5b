/*
 * data.c - the data protocol of MODEL.md ("Data protocol"): building the
 * compact per-user sequences from raw interactions (iterative min-count
 * filter, leave-one-out split), fitting with early stopping on validation
 * NDCG@10, leave-one-out evaluation and top-k selection.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tim4rec.h"
#include "ops.h"
#include "err.h"



static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* length of user u's training part (see the header comment) */
static inline int64_t
train_len(const t4r_dataset *ds, int64_t u)
{
	int64_t		m = ds->seq_off[u + 1] - ds->seq_off[u];

	return m >= 3 ? m - 2 : m;
}

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
		pop_ent    *ord = malloc((size_t) V * sizeof(pop_ent));
		int64_t    *rk = malloc((size_t) V * sizeof(int64_t));

		if (!ord || !rk)
		{
			free(ord);
			free(rk);
			free(acc);
			return T4R_ENOMEM;
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
		for (int64_t u = 0; u < ds->n_users; u++)
		{
			t4r_sample	smp;

			if (split_sample(ds, u, split, INT32_MAX, &smp))
				add_metrics(rk[smp.target], ks, nk, acc, acc + nk, acc + 2 * nk);
		}
		free(ord);
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
/* fitting                                                             */
/* ------------------------------------------------------------------ */
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
