/*
 * test_nonfinite.c - times out of range and trainings that diverge.
 *
 *  - t4r_time_ok and T4R_TIME_ABS_MAX (2^63): the dataset builder and the
 *    forward pass (t4r_infer) reject NaN, +-Infinity and |t| > 2^63 with
 *    T4R_EINVAL; times up to the bound train and score to finite values
 *    (the bound is safe for the single-precision time features).
 *  - t4r_model_check_finite names the tensor holding a NaN.
 *  - t4r_trainer_step returns T4R_ENONFINITE on a NaN loss and leaves the
 *    weights alone.
 *  - t4r_fit stops with T4R_ENONFINITE on a NaN loss (poisoned weights, an
 *    absurd learning rate, a backend reporting a NaN loss) and on weights
 *    that are not finite after an epoch (a backend whose loss stays finite),
 *    before the epoch is scored or kept.
 * (NaN / Infinity weights in safetensors files: test_safetensors.c.)
 *
 * TAP.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tim4rec.h"
#include "ops.h"
#include "tap.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

/* nu users with m interactions each over 10 items; user u's times go from
 * lo to hi in m - 1 equal steps (plus a per-user jitter of up to `jitter`
 * on the inner ones) */
static t4r_dataset *
make_dataset(int nu, int m, double lo, double hi, double jitter, char *err, size_t errlen)
{
	size_t		n = (size_t) nu * m,
				k = 0;
	int64_t    *u = malloc(n * sizeof(int64_t)),
			   *it = malloc(n * sizeof(int64_t));
	double	   *ts = malloc(n * sizeof(double));
	t4r_dataset *ds = NULL;
	t4r_rng		r;

	t4r_rng_seed(&r, 77);
	for (int a = 0; a < nu; a++)
		for (int j = 0; j < m; j++, k++)
		{
			u[k] = a + 1;
			it[k] = 1 + (int64_t) t4r_rng_below(&r, 10);
			ts[k] = j == 0 ? lo : j == m - 1 ? hi :
				lo + (hi - lo) / (m - 1) * j + jitter * t4r_rng_u01(&r);
		}
	if (t4r_dataset_build(u, it, ts, NULL, n, 1, 1, &ds, err, errlen) != T4R_OK)
		ds = NULL;
	free(u);
	free(it);
	free(ts);
	return ds;
}

static t4r_model *
small_model(int V, double lr)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "movielens");	/* time_dropout 0.2: the mask scales the features */
	c.hidden_size = 16;
	c.head_dim = 8;
	c.d_state = 8;
	c.max_seq_len = 12;
	c.chunk_size = 4;
	c.n_items = V;
	c.batch_size = 32;
	c.learning_rate = lr;
	c.seed = 3;
	if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
	{
		tap_diag("model create: %s", err);
		return NULL;
	}
	t4r_model_init(m, 3);
	return m;
}

typedef struct fit_log
{
	int			epochs;
	int			nonfinite;		/* epochs reported with a non-finite loss or metric */
} fit_log;

static void
on_epoch(void *ud, const t4r_epoch_info *info)
{
	fit_log    *f = ud;

	f->epochs++;
	if (!isfinite(info->loss) || !isfinite(info->valid_ndcg10))
		f->nonfinite++;
}

static void
fit_opts(t4r_fit_opts *o, fit_log *f, int epochs)
{
	memset(o, 0, sizeof(*o));
	memset(f, 0, sizeof(*f));
	o->train.threads = 1;
	o->epochs = epochs;
	o->patience = 100;
	o->epoch_done = on_epoch;
	o->ud = f;
}

static int
all_finite(const t4r_real *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* times                                                               */
/* ------------------------------------------------------------------ */

static void
test_time_bound(void)
{
	double		two63 = 9223372036854775808.0;

	tap_ok(T4R_TIME_ABS_MAX == two63 && t4r_time_ok(two63) && t4r_time_ok(-two63) &&
		   t4r_time_ok(0) && t4r_time_ok(1.7e9) && t4r_time_ok((double) INT64_MIN) &&
		   t4r_time_ok((double) INT64_MAX),
		   "t4r_time_ok: 0, 1.7e9, +-2^63 and every int64 are usable times");
	tap_ok(!t4r_time_ok(NAN) && !t4r_time_ok(-NAN) && !t4r_time_ok(INFINITY) &&
		   !t4r_time_ok(-INFINITY) && !t4r_time_ok(nextafter(two63, INFINITY)) &&
		   !t4r_time_ok(-1e19) && !t4r_time_ok(1e38) && !t4r_time_ok(3.5e38) && !t4r_time_ok(1e300),
		   "t4r_time_ok: NaN, +-Infinity, just above 2^63, -1e19, 1e38, 3.5e38, 1e300 are not");
	tap_ok(strcmp(t4r_strerror(T4R_ENONFINITE), t4r_strerror(-100)) != 0 &&
		   strstr(t4r_strerror(T4R_ENONFINITE), "NaN") != NULL,
		   "t4r_strerror(T4R_ENONFINITE): \"%s\"", t4r_strerror(T4R_ENONFINITE));
}

static void
test_dataset_times(void)
{
	int64_t		u[4] = {1, 1, 1, 1},
				i[4] = {1, 2, 3, 4};
	double		t[4] = {1, 2, 1e38, 4};
	t4r_dataset *ds = (t4r_dataset *) 1;
	char		err[256] = "";
	int			rc;

	rc = t4r_dataset_build(u, i, t, NULL, 4, 1, 1, &ds, err, sizeof(err));
	tap_ok(rc == T4R_EINVAL && ds == NULL && strstr(err, "interaction 2") && strstr(err, "out of range"),
		   "dataset: a time of 1e38 (finite in double) -> T4R_EINVAL (%s)", err);
	t[2] = -INFINITY;
	err[0] = '\0';
	rc = t4r_dataset_build(u, i, t, NULL, 4, 1, 1, &ds, err, sizeof(err));
	tap_ok(rc == T4R_EINVAL && ds == NULL && strstr(err, "finite"),
		   "dataset: -Infinity -> T4R_EINVAL (%s)", err);
	t[2] = nextafter(T4R_TIME_ABS_MAX, INFINITY);
	rc = t4r_dataset_build(u, i, t, NULL, 4, 1, 1, &ds, err, sizeof(err));
	tap_ok(rc == T4R_EINVAL && ds == NULL, "dataset: the next double above 2^63 -> T4R_EINVAL");
	t[0] = -T4R_TIME_ABS_MAX;
	t[2] = T4R_TIME_ABS_MAX;
	rc = t4r_dataset_build(u, i, t, NULL, 4, 1, 1, &ds, err, sizeof(err));
	tap_ok(rc == T4R_OK && ds != NULL, "dataset: times of exactly -2^63 and 2^63 are accepted");
	t4r_dataset_free(rc == T4R_OK ? ds : NULL);
}

/* the bound is safe: times spanning [-2^63, 2^63] (differences up to
 * 2^64 / 7, and the padding slot's -ts[n-1] of 2^63) train and score to
 * finite numbers */
static void
test_bound_is_safe(void)
{
	char		err[256] = "";
	t4r_dataset *ds = make_dataset(40, 8, -T4R_TIME_ABS_MAX, T4R_TIME_ABS_MAX, 1e17,
								   err, sizeof(err));
	t4r_model  *m = ds ? small_model(ds->n_items, 0.001) : NULL;
	t4r_fit_opts o;
	t4r_fit_result res;
	fit_log		f;
	int			rc;

	if (!m)
	{
		tap_ok(0, "bound: setup (%s)", err);
		t4r_dataset_free(ds);
		return;
	}
	fit_opts(&o, &f, 2);
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_OK && f.epochs == 2 && f.nonfinite == 0 &&
		   all_finite(m->params, m->layout.total),
		   "bound: 2 epochs on times from -2^63 to 2^63 (time dropout 0.2): finite losses, metrics and weights (%s)",
		   rc ? err : "ok");
	{
		t4r_infer_ctx *ctx = NULL;
		int32_t		items[3] = {1, 2, 3};
		double		ts[3] = {-T4R_TIME_ABS_MAX, 0, T4R_TIME_ABS_MAX};
		t4r_real   *scores = malloc(sizeof(t4r_real) * m->cfg.n_items);

		rc = t4r_infer_ctx_create(m, &ctx);
		if (rc == T4R_OK)
			rc = t4r_infer(ctx, items, ts, 3, NULL, scores);
		tap_ok(rc == T4R_OK && all_finite(scores, m->cfg.n_items),
			   "bound: scoring times -2^63, 0, 2^63 gives finite scores");

		/* out of range: rejected, whether it is the newest time or not */
		{
			const double bad[4] = {1e300, NAN, 3.5e38, -1e19};
			int			nok = 0;

			for (int b = 0; b < 4; b++)
				for (int pos = 0; pos < 3; pos++)
				{
					double		t2[3] = {1, 2, 3};

					t2[pos] = bad[b];
					nok += t4r_infer(ctx, items, t2, 3, NULL, scores) == T4R_EINVAL;
				}
			tap_ok(nok == 12, "infer: a time of 1e300, NaN, 3.5e38 or -1e19 at any position -> T4R_EINVAL (%d of 12)",
				   nok);
		}
		/* only the times the model reads (the last L) count */
		{
			int			n = m->cfg.max_seq_len + 1;
			int32_t    *it = malloc(sizeof(int32_t) * n);
			double	   *t2 = malloc(sizeof(double) * n);

			for (int j = 0; j < n; j++)
			{
				it[j] = 1 + j % 5;
				t2[j] = j;
			}
			t2[0] = NAN;
			rc = t4r_infer(ctx, it, t2, n, NULL, scores);
			tap_ok(rc == T4R_OK && all_finite(scores, m->cfg.n_items),
				   "infer: a NaN time older than the last max_seq_len is not read");
			free(it);
			free(t2);
		}
		t4r_infer_ctx_free(ctx);
		free(scores);
	}
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

/* ------------------------------------------------------------------ */
/* non-finite weights and losses                                       */
/* ------------------------------------------------------------------ */

static void
test_check_finite(void)
{
	t4r_model  *m = small_model(12, 0.001);
	char		err[256] = "";
	t4r_real   *w;

	if (!m)
	{
		tap_ok(0, "check_finite: setup");
		return;
	}
	tap_ok(t4r_model_check_finite(m, err, sizeof(err)) == T4R_OK,
		   "check_finite: an initialised model is finite");
	w = t4r_model_tensor(m, "ssd_layers.1.ffn.fc2.bias");
	w[3] = -INFINITY;
	tap_ok(t4r_model_check_finite(m, err, sizeof(err)) == T4R_ENONFINITE &&
		   strstr(err, "ssd_layers.1.ffn.fc2.bias") && strstr(err, "-Infinity at element 3"),
		   "check_finite: -Infinity -> T4R_ENONFINITE naming the tensor (%s)", err);
	t4r_model_free(m);
}

static void
test_step_nan(void)
{
	char		err[256] = "";
	t4r_dataset *ds = make_dataset(20, 6, 0, 5000, 100, err, sizeof(err));
	t4r_model  *m = ds ? small_model(ds->n_items, 0.001) : NULL;
	t4r_trainer *tr = NULL;
	t4r_train_opts to;
	t4r_real   *before = NULL;
	t4r_sample	s[4];
	double		loss = 0;
	int			rc;

	memset(&to, 0, sizeof(to));
	to.threads = 1;
	if (!m || t4r_trainer_create(m, &to, &tr, err, sizeof(err)) != T4R_OK)
	{
		tap_ok(0, "step: setup (%s)", err);
		t4r_model_free(m);
		t4r_dataset_free(ds);
		return;
	}
	for (int i = 0; i < 4; i++)
	{
		int64_t		off = ds->seq_off[i];

		s[i].items = ds->seq_items + off;
		s[i].ts = ds->seq_ts + off;
		s[i].n = 3;
		s[i].target = ds->seq_items[off + 3];
	}
	rc = t4r_trainer_step(tr, s, 4, &loss);
	tap_ok(rc == T4R_OK && isfinite(loss) && t4r_trainer_steps(tr) == 1,
		   "step: a finite step (loss %.4f)", loss);
	/* one NaN in the embedding's row 2: the scores of every sample, hence
	 * the loss, are NaN */
	t4r_model_tensor(m, "item_embedding.weight")[2 * m->cfg.hidden_size] = NAN;
	before = malloc(m->layout.total * sizeof(t4r_real));
	memcpy(before, m->params, m->layout.total * sizeof(t4r_real));
	rc = t4r_trainer_step(tr, s, 4, &loss);
	tap_ok(rc == T4R_ENONFINITE && isnan(loss) && t4r_trainer_steps(tr) == 1 &&
		   memcmp(before, m->params, m->layout.total * sizeof(t4r_real)) == 0,
		   "step: a NaN loss -> T4R_ENONFINITE, no update, step count unchanged (rc %d)", rc);
	free(before);
	t4r_trainer_free(tr);
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

static void
test_fit_poisoned(void)
{
	char		err[256] = "";
	t4r_dataset *ds = make_dataset(40, 8, 0, 5000, 100, err, sizeof(err));
	t4r_model  *m = ds ? small_model(ds->n_items, 0.001) : NULL;
	t4r_fit_opts o;
	t4r_fit_result res;
	fit_log		f;
	int			rc;

	if (!m)
	{
		tap_ok(0, "fit poisoned: setup (%s)", err);
		t4r_dataset_free(ds);
		return;
	}
	t4r_model_tensor(m, "in_layer_norm.weight")[0] = NAN;
	fit_opts(&o, &f, 3);
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_ENONFINITE && f.epochs == 0 && strstr(err, "diverged") &&
		   strstr(err, "loss of epoch 1, step 1 ") && strstr(err, "NaN"),
		   "fit: a NaN weight -> T4R_ENONFINITE at the first step, no epoch reported (rc %d: %s)", rc, err);
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

static void
test_fit_lr(void)
{
	char		err[256] = "";
	t4r_dataset *ds = make_dataset(40, 8, 0, 5000, 100, err, sizeof(err));
	t4r_model  *m = ds ? small_model(ds->n_items, 10.0) : NULL;	/* the largest allowed */
	t4r_fit_opts o;
	t4r_fit_result res;
	fit_log		f;
	int			rc;

	if (!m)
	{
		tap_ok(0, "fit lr: setup (%s)", err);
		t4r_dataset_free(ds);
		return;
	}
	fit_opts(&o, &f, 20);
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_ENONFINITE && f.nonfinite == 0 && strstr(err, "diverged"),
		   "fit: learning_rate 10 diverges -> T4R_ENONFINITE after %d finite epochs (rc %d: %s)",
		   f.epochs, rc, err);
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

/* a backend (as the CUDA trainer) that takes no real steps: it reports
 * `loss` from step number nan_at on (NaN) and, when poison, writes a NaN
 * into the host model's ssd.D on every sync */
typedef struct fake_backend
{
	t4r_model  *host;
	int			steps;
	int			nan_at;			/* -1: never */
	int			poison;
	int			syncs;
} fake_backend;

static int
fb_step(void *ctx, const t4r_sample *s, int ns, double *loss)
{
	fake_backend *b = ctx;

	*loss = b->steps++ >= b->nan_at && b->nan_at >= 0 ? NAN : 1.0;
	return T4R_OK;
}

static int
fb_sync(void *ctx)
{
	fake_backend *b = ctx;

	b->syncs++;
	if (b->poison)
		t4r_model_tensor(b->host, "ssd_layers.0.ssd.D")[1] = NAN;
	return T4R_OK;
}

static void
test_fit_backend(void)
{
	char		err[256] = "";
	t4r_dataset *ds = make_dataset(40, 8, 0, 5000, 100, err, sizeof(err));
	t4r_model  *m = ds ? small_model(ds->n_items, 0.001) : NULL;
	t4r_backend be;
	fake_backend fb;
	t4r_fit_opts o;
	t4r_fit_result res;
	fit_log		f;
	int			rc;

	if (!m)
	{
		tap_ok(0, "fit backend: setup (%s)", err);
		t4r_dataset_free(ds);
		return;
	}
	memset(&be, 0, sizeof(be));
	be.ctx = &fb;
	be.step = fb_step;
	be.sync_to_host = fb_sync;

	/* the backend reports a NaN loss at its 4th step */
	memset(&fb, 0, sizeof(fb));
	fb.host = m;
	fb.nan_at = 3;
	fit_opts(&o, &f, 3);
	o.backend = &be;
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_ENONFINITE && fb.steps == 4 && f.epochs == 0 &&
		   strstr(err, "loss of epoch 1, step 4 "),
		   "fit (backend): a NaN loss from the backend -> T4R_ENONFINITE at that step (%s)", err);

	/* finite losses, but the weights that come back hold a NaN: stopped
	 * before the epoch is scored (a NaN model can rank every target first) */
	memset(&fb, 0, sizeof(fb));
	fb.host = m;
	fb.nan_at = -1;
	fb.poison = 1;
	fit_opts(&o, &f, 3);
	o.backend = &be;
	err[0] = '\0';
	rc = t4r_fit(m, ds, &o, &res, err, sizeof(err));
	tap_ok(rc == T4R_ENONFINITE && fb.syncs == 1 && f.epochs == 0 &&
		   strstr(err, "epoch 1") && strstr(err, "ssd_layers.0.ssd.D"),
		   "fit (backend): finite losses but NaN weights after epoch 1 -> T4R_ENONFINITE naming the tensor (%s)",
		   err);
	t4r_model_free(m);
	t4r_dataset_free(ds);
}

int
main(void)
{
	test_time_bound();
	test_dataset_times();
	test_bound_is_safe();
	test_check_finite();
	test_step_nan();
	test_fit_poisoned();
	test_fit_lr();
	test_fit_backend();
	return tap_done();
}
