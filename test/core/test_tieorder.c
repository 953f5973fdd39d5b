/*
 * test_tieorder.c - tie_shuffle "auto" (src/core/tieorder.c, fit.c):
 *  - t4r_tie_order_test against a plain recount: every pair of tied
 *    neighbours of every training part listed, each unordered pair's
 *    occurrences counted by a quadratic scan, the statistics summed in
 *    double, on random tables of several shapes;
 *  - a random order of equal timestamps is not called consistent, the same
 *    rows sorted by item id (or in reverse) are; the item-id order the
 *    dataset gives ties without order values is not; targets are not read;
 *  - t4r_fit resolves "auto" into the model's configuration: the weights
 *    after a fit with "auto" are bit for bit those of the resolved value;
 *  - the option's parsing: "auto", true, false; anything else is refused;
 *    the amazon preset's default is "auto", movielens' false.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x7469656f72ULL
#include "tap.h"
#include "tim4rec.h"

#define MAXR 40000

typedef struct rows
{
	int64_t		u[MAXR],
				i[MAXR],
				o[MAXR];
	double		t[MAXR];
	size_t		n;
} rows;

/*
 * nu users with 4..4+span events over ni items; a run of equal timestamps
 * follows each new time with probability ptie; order 0: items in the
 * order drawn, 1: each run sorted ascending by item, -1: descending
 */
static void
make_rows(rows *r, int nu, int ni, int span, double ptie, int order)
{
	r->n = 0;
	for (int u = 1; u <= nu; u++)
	{
		int			m = 4 + (int) (tap_rng_u64() % (uint64_t) (span + 1));
		double		ts = 1e6 * u;
		size_t		run0 = r->n;

		for (int j = 0; j < m && r->n < MAXR; j++)
		{
			if (j > 0 && urand() >= ptie)
			{
				ts += 86400;
				run0 = r->n;
			}
			r->u[r->n] = u;
			r->i[r->n] = 1 + (int64_t) (tap_rng_u64() % (uint64_t) ni);
			r->t[r->n] = ts;
			r->o[r->n] = (int64_t) r->n;
			/* keep the run sorted as it grows (insertion) */
			for (size_t k = r->n; order != 0 && k > run0 &&
				 (order > 0 ? r->i[k] < r->i[k - 1] : r->i[k] > r->i[k - 1]); k--)
			{
				int64_t		x = r->i[k];

				r->i[k] = r->i[k - 1];
				r->i[k - 1] = x;
			}
			r->n++;
		}
	}
}

/* with the rows' order values (the row index: the order they were made in) */
static t4r_dataset *
build_ex(const rows *r, int with_order)
{
	t4r_dataset *ds = NULL;
	char		err[256];

	if (t4r_dataset_build(r->u, r->i, r->t, with_order ? r->o : NULL, r->n, 1, 1, &ds,
						  err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "dataset: %s\n", err);
		exit(2);
	}
	return ds;
}

static t4r_dataset *
build(const rows *r)
{
	return build_ex(r, 1);
}

/* the plain recount: occurrences listed, pairs matched by a quadratic scan */
static void
recount(const t4r_dataset *ds, t4r_tie_stats *o)
{
	int64_t		cap = ds->seq_off[ds->n_users] + 1,
				n = 0;
	int32_t    *lo = malloc(sizeof(int32_t) * cap),
			   *hi = malloc(sizeof(int32_t) * cap),
			   *up = malloc(sizeof(int32_t) * cap);
	char	   *seen = calloc((size_t) cap, 1);
	double		s = 0,
				e = 0,
				v = 0,
				ag = 0,
				pr = 0;

	memset(o, 0, sizeof(*o));
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		m = ds->seq_off[u + 1] - ds->seq_off[u],
					tl = m >= 3 ? m - 2 : m;

		for (int64_t j = 1; j < tl; j++)
		{
			int64_t		p = ds->seq_off[u] + j;
			int32_t		a = ds->seq_items[p - 1],
						b = ds->seq_items[p];

			if (ds->seq_ts[p] != ds->seq_ts[p - 1] || a == b)
				continue;
			lo[n] = a < b ? a : b;
			hi[n] = a < b ? b : a;
			up[n] = a < b;
			n++;
		}
	}
	o->tied_pairs = n;
	for (int64_t x = 0; x < n; x++)
	{
		double		c = 0,
					k = 0;

		if (seen[x])
			continue;
		for (int64_t y = x; y < n; y++)
			if (lo[y] == lo[x] && hi[y] == hi[x])
			{
				seen[y] = 1;
				c += 1;
				k += up[y];
			}
		if (c < 2)
			continue;
		o->repeated_pairs++;
		o->repeated_occurrences += (int64_t) c;
		s += (2 * k - c) * (2 * k - c);
		e += c;
		v += 2 * c * c - 2 * c;
		ag += k * (k - 1) / 2 + (c - k) * (c - k - 1) / 2;
		pr += c * (c - 1) / 2;
	}
	if (v > 0)
	{
		o->z = (s - e) / sqrt(v);
		o->agreement = ag / pr;
	}
	free(lo);
	free(hi);
	free(up);
	free(seen);
}

static int
same_stats(const t4r_tie_stats *a, const t4r_tie_stats *b)
{
	return a->tied_pairs == b->tied_pairs && a->repeated_pairs == b->repeated_pairs &&
		a->repeated_occurrences == b->repeated_occurrences &&
		fabs(a->z - b->z) <= 1e-9 * (1 + fabs(b->z)) &&
		fabs(a->agreement - b->agreement) <= 1e-12;
}

static t4r_model *
fit_model(const t4r_dataset *ds, int tie_shuffle, t4r_real **w)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_fit_opts o;
	t4r_fit_result fr;
	char		err[256];

	t4r_config_preset(&c, "amazon");
	c.hidden_size = 16;
	c.head_dim = 16;
	c.max_seq_len = 8;
	c.batch_size = 64;
	c.epochs = 2;
	c.tie_shuffle = tie_shuffle;
	c.n_items = ds->n_items;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "model: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, 3);
	memset(&o, 0, sizeof(o));
	o.train.threads = 1;
	if (t4r_fit(m, ds, &o, &fr, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "fit: %s\n", err);
		exit(2);
	}
	*w = m->params;
	return m;
}

/* a fit with "auto" on r: resolved to want, and the weights of want, not of
 * the other value */
static int
fit_resolves(const rows *r, int want)
{
	t4r_dataset *ds = build(r);
	t4r_real   *wa,
			   *wb,
			   *wc;
	t4r_model  *ma = fit_model(ds, T4R_TIE_SHUFFLE_AUTO, &wa),
			   *mb = fit_model(ds, want, &wb),
			   *mc = fit_model(ds, !want, &wc);
	size_t		bytes = ma->layout.total * sizeof(t4r_real);
	int			ok = ma->cfg.tie_shuffle == want && memcmp(wa, wb, bytes) == 0 &&
		memcmp(wa, wc, bytes) != 0;

	t4r_model_free(ma);
	t4r_model_free(mb);
	t4r_model_free(mc);
	t4r_dataset_free(ds);
	return ok;
}

int
main(void)
{
	static rows r;
	t4r_tie_stats got,
				want;
	t4r_dataset *ds;
	int			same = 1,
				checked = 0;

	/* 1. against the recount, random tables of several shapes */
	for (int k = 0; k < 12; k++)
	{
		int			nu = 20 + (int) (tap_rng_u64() % 300),
					ni = 3 + (int) (tap_rng_u64() % 60),
					span = (int) (tap_rng_u64() % 30);
		double		ptie = urand() * 0.8;
		int			order = (int) (tap_rng_u64() % 3) - 1;

		make_rows(&r, nu, ni, span, ptie, order);
		ds = build(&r);
		if (t4r_tie_order_test(ds, &got) != T4R_OK)
			same = 0;
		recount(ds, &want);
		if (!same_stats(&got, &want))
		{
			same = 0;
			tap_diag("table %d: got %lld/%lld/%lld z %.6f a %.6f, want %lld/%lld/%lld z %.6f a %.6f", k,
					 (long long) got.tied_pairs, (long long) got.repeated_pairs,
					 (long long) got.repeated_occurrences, got.z, got.agreement,
					 (long long) want.tied_pairs, (long long) want.repeated_pairs,
					 (long long) want.repeated_occurrences, want.z, want.agreement);
		}
		checked += want.repeated_pairs > 0;
		t4r_dataset_free(ds);
	}
	tap_ok(same && checked >= 6, "t4r_tie_order_test equals the plain recount on 12 random tables (%d with repeated pairs)", checked);

	/* 2. random, sorted, reversed: the same draws three ways */
	{
		uint64_t	st = tap_rng_state;
		t4r_tie_stats rnd,
					asc,
					desc;

		make_rows(&r, 2000, 12, 12, 0.6, 0);
		ds = build(&r);
		t4r_tie_order_test(ds, &rnd);
		t4r_dataset_free(ds);
		tap_rng_state = st;
		make_rows(&r, 2000, 12, 12, 0.6, 1);
		ds = build(&r);
		t4r_tie_order_test(ds, &asc);
		t4r_dataset_free(ds);
		tap_rng_state = st;
		make_rows(&r, 2000, 12, 12, 0.6, -1);
		ds = build(&r);
		t4r_tie_order_test(ds, &desc);
		t4r_dataset_free(ds);
		tap_ok(rnd.repeated_pairs > 50 && !rnd.consistent && fabs(rnd.z) < T4R_TIE_ORDER_Z &&
			   fabs(rnd.agreement - 0.5) < 0.05,
			   "a random order is not consistent (z %.2f, agreement %.3f over %lld pairs)",
			   rnd.z, rnd.agreement, (long long) rnd.repeated_pairs);
		tap_ok(asc.consistent && asc.agreement == 1.0 && asc.z > 10,
			   "the same rows sorted by item are consistent (z %.1f, agreement %.3f)", asc.z, asc.agreement);
		tap_ok(desc.consistent && desc.agreement == 1.0 && desc.z > 10,
			   "sorted in reverse, too (z %.1f, %lld tied pairs)", desc.z, (long long) desc.tied_pairs);
		tap_ok(t4r_tie_shuffle_resolve(&rnd) == 1 && t4r_tie_shuffle_resolve(&asc) == 0,
			   "auto alone: shuffle the random order, keep the consistent one");
		/* the random draws without order values: the builder sorts each
		 * run by item id itself, which is not the caller's order */
		tap_rng_state = st;
		make_rows(&r, 2000, 12, 12, 0.6, 0);
		ds = build_ex(&r, 0);
		t4r_tie_order_test(ds, &rnd);
		t4r_dataset_free(ds);
		tap_ok(rnd.by_item_id && rnd.agreement == 1.0 && !rnd.consistent &&
			   t4r_tie_shuffle_resolve(&rnd) == 1 && !asc.by_item_id,
			   "without order values the ties are by item id (agreement %.3f): not consistent, shuffled",
			   rnd.agreement);
	}

	/* 3. no ties; ties only among the validation and test targets */
	{
		t4r_tie_stats none;

		make_rows(&r, 50, 20, 5, 0.0, 0);
		ds = build(&r);
		t4r_tie_order_test(ds, &none);
		tap_ok(none.tied_pairs == 0 && none.repeated_pairs == 0 && !none.consistent &&
			   t4r_tie_shuffle_resolve(&none) == 0,
			   "without equal timestamps: nothing tied, nothing to shuffle");
		t4r_dataset_free(ds);
		/* every user: 4 distinct times, then the two targets on one time,
		 * always in the same order */
		r.n = 0;
		for (int u = 1; u <= 200; u++)
			for (int j = 0; j < 6; j++)
			{
				r.u[r.n] = u;
				r.i[r.n] = j < 4 ? 1 + (u + j) % 9 : 10 + j;
				r.t[r.n] = 1e6 * u + (j < 4 ? j : 4);
				r.n++;
			}
		ds = build(&r);
		t4r_tie_order_test(ds, &none);
		tap_ok(none.tied_pairs == 0, "equal timestamps of the validation and test targets are not read (%lld tied pairs)",
			   (long long) none.tied_pairs);
		t4r_dataset_free(ds);
	}

	/* 4. t4r_fit resolves auto: bit for bit the resolved value's weights */
	make_rows(&r, 300, 15, 10, 0.6, 1);
	tap_ok(fit_resolves(&r, 0), "fit with auto on a consistent order: tie_shuffle resolved to false, the weights of false (not of true)");
	make_rows(&r, 300, 15, 10, 0.6, 0);
	tap_ok(fit_resolves(&r, 1), "fit with auto on a random order: resolved to true, the weights of true (not of false)");

	/* 5. parsing and presets */
	{
		t4r_config	c;
		char		err[256] = "";
		int			ok;

		t4r_config_preset(&c, "amazon");
		tap_ok(c.tie_shuffle == T4R_TIE_SHUFFLE_AUTO, "the amazon preset's tie_shuffle is auto");
		t4r_config_preset(&c, "movielens");
		tap_ok(c.tie_shuffle == 0, "the movielens preset's tie_shuffle is false");
		ok = t4r_config_set(&c, "tie_shuffle", "auto", err, sizeof err) == T4R_OK &&
			c.tie_shuffle == T4R_TIE_SHUFFLE_AUTO &&
			t4r_config_set(&c, "tie_shuffle", "true", err, sizeof err) == T4R_OK && c.tie_shuffle == 1 &&
			t4r_config_set(&c, "tie_shuffle", "false", err, sizeof err) == T4R_OK && c.tie_shuffle == 0;
		tap_ok(ok, "tie_shuffle takes auto, true and false");
		err[0] = '\0';
		tap_ok(t4r_config_set(&c, "tie_shuffle", "sometimes", err, sizeof err) == T4R_EINVAL &&
			   strstr(err, "\"auto\"") != NULL,
			   "any other value is refused, naming the three (%s)", err);
		c.n_items = 10;
		c.tie_shuffle = 3;
		tap_ok(t4r_config_validate(&c, err, sizeof err) == T4R_EINVAL, "validate refuses a tie_shuffle of 3");
	}
	return tap_done();
}
