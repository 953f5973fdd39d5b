/*
 * test_robust.c - the robust time path and all_positions training at the
 * model level (float build):
 *  1. invariance: the same robust model on timestamps in seconds and on the
 *     same events in milliseconds from another origin (time_scale in the same
 *     unit) gives the same hidden vectors (sanity: a time_scale left in
 *     seconds on millisecond data does change them, so the check can fail);
 *  2. (causality of the whole model is dtest_allpos: one pass over a
 *     sequence gives every prefix's loss and gradient);
 *  3. export/import: the safetensors metadata says "time_features": "robust"
 *     with the time_scale, the file reads back into the same model (same
 *     scores), and an official model's config JSON has no such keys;
 *  4. the gap scale: t4r_dataset_time_scale is the median positive gap of the
 *     training parts (a plain sort here), scales with the unit, and t4r_fit
 *     stores it in the model (with all_positions training, which runs, early
 *     stops and reports a finite loss);
 *  5. options: time_features / training values, bad values rejected.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x6A09E667F3BCC909ULL
#include "tap.h"
#include "tim4rec.h"


static t4r_model *
small_model(int robust, double scale, int V)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "movielens");
	c.hidden_size = 16;
	c.head_dim = 8;
	c.d_state = 8;
	c.max_seq_len = 20;
	c.chunk_size = 8;
	c.n_items = V;
	c.time_features = robust ? T4R_TIME_ROBUST : T4R_TIME_OFFICIAL;
	c.time_scale = scale;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "create: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, 5);
	/* move away from the initialisation so that the time path matters */
	for (size_t i = 0; i < m->layout.total; i++)
		m->params[i] += (t4r_real) (0.15 * (urand() - 0.5));
	return m;
}

static double
max_rel(const t4r_real *a, const t4r_real *b, int n)
{
	double		mx = 0,
				nb = 0;

	for (int i = 0; i < n; i++)
	{
		mx = fmax(mx, fabs((double) a[i] - b[i]));
		nb = fmax(nb, fabs((double) b[i]));
	}
	return mx / (nb > 0 ? nb : 1);
}

static void
invariance_and_causality(void)
{
	int			V = 30,
				n = 14,
				d;
	int32_t		items[14];
	double		ts[14],
				tms[14];
	t4r_real	h1[16],
				h2[16],
				h3[16];
	t4r_model  *m = small_model(1, 600.0, V),
			   *mms = small_model(1, 600.0 * 1000, V),
			   *off = small_model(0, 0, V);
	t4r_infer_ctx *c1,
			   *c2,
			   *c3;
	double		t = 1.0e9;

	memcpy(mms->params, m->params, sizeof(t4r_real) * m->layout.total);
	d = m->cfg.hidden_size;
	for (int i = 0; i < n; i++)
	{
		items[i] = 1 + (int32_t) (urand() * (V - 1));
		t += (i % 4 == 0) ? 0 : floor(10 + 7200 * urand());
		ts[i] = t;
		tms[i] = (t - 978307200.0) * 1000.0;	/* ms since 2001-01-01 */
	}
	t4r_infer_ctx_create(m, &c1);
	t4r_infer_ctx_create(mms, &c2);
	t4r_infer_ctx_create(off, &c3);
	t4r_infer(c1, items, ts, n, h1, NULL);
	t4r_infer(c2, items, tms, n, h2, NULL);
	tap_ok(max_rel(h1, h2, d) < 1e-5, "robust: seconds vs milliseconds from another origin give the same hidden vector (rel %.3g)",
		   max_rel(h1, h2, d));
	{
		double		sh[14];

		for (int i = 0; i < n; i++)
			sh[i] = ts[i] + 86400.0 * 365;
		t4r_infer(c1, items, sh, n, h2, NULL);
		tap_ok(max_rel(h1, h2, d) < 1e-6, "robust: shifted timestamps give the same hidden vector (rel %.3g)",
			   max_rel(h1, h2, d));
		/* the model in seconds fed milliseconds: different */
		t4r_infer(c1, items, ts, n, h2, NULL);
		t4r_infer(c1, items, tms, n, h3, NULL);
		tap_ok(max_rel(h2, h3, d) > 1e-4, "robust: a time_scale in another unit changes the hidden vector (rel %.3g): the check can fail",
			   max_rel(h2, h3, d));
		t4r_infer(c3, items, ts, n, h2, NULL);
	}
	t4r_infer_ctx_free(c1);
	t4r_infer_ctx_free(c2);
	t4r_infer_ctx_free(c3);
	t4r_model_free(m);
	t4r_model_free(mms);
	t4r_model_free(off);
}

static void
export_import(void)
{
	t4r_model  *m = small_model(1, 1234.5, 25),
			   *r = NULL,
			   *o = small_model(0, 0, 25);
	uint8_t    *buf = NULL;
	size_t		len = 0;
	char		err[256] = "";
	char	   *js;
	int32_t		items[5] = {3, 4, 5, 6, 7};
	double		ts[5] = {100, 200, 260, 5000, 5001};
	t4r_real	s1[25],
				s2[25],
				h[16];
	t4r_infer_ctx *c;

	tap_ok(t4r_safetensors_write(m, &buf, &len) == T4R_OK, "robust model: write");
	tap_ok(buf && memmem(buf, len, "time_features", 13) && memmem(buf, len, "robust", 6) &&
		   memmem(buf, len, "1234.5", 6), "the metadata says time_features robust and the time_scale");
	tap_ok(t4r_safetensors_read(buf, len, NULL, &r, err, sizeof err) == T4R_OK &&
		   r->cfg.time_features == T4R_TIME_ROBUST && r->cfg.time_scale == 1234.5 &&
		   t4r_model_tensor(r, "time_input.weight") != NULL,
		   "read back: robust, same time_scale %s", err);
	if (r)
	{
		t4r_infer_ctx_create(m, &c);
		t4r_infer(c, items, ts, 5, h, s1);
		t4r_infer_ctx_free(c);
		t4r_infer_ctx_create(r, &c);
		t4r_infer(c, items, ts, 5, h, s2);
		t4r_infer_ctx_free(c);
		tap_ok(memcmp(s1, s2, sizeof s1) == 0, "read back: the same scores");
	}
	js = t4r_config_to_json(&o->cfg);
	tap_ok(js && !strstr(js, "time_features") && !strstr(js, "time_scale"),
		   "official config JSON keeps the published key set");
	free(js);
	free(buf);
	t4r_model_free(r);
	t4r_model_free(m);
	t4r_model_free(o);
}

static int
cmpd(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static void
scale_and_fit(void)
{
	enum
	{
	NUSER = 60, PER = 16
	};
	int64_t		u[NUSER * PER],
				it[NUSER * PER];
	double		t[NUSER * PER],
				t2[NUSER * PER];
	double		gaps[NUSER * PER];
	int			ng = 0;
	t4r_dataset *ds = NULL,
			   *ds2 = NULL;
	char		err[256] = "";
	double		want,
				got,
				got2;

	for (int a = 0; a < NUSER; a++)
	{
		double		tt = 1e9 + a * 1000;

		for (int j = 0; j < PER; j++)
		{
			int			k = a * PER + j;

			u[k] = a + 1;
			it[k] = 1 + (a * 7 + j * 3) % 20;
			tt += (j % 5 == 1) ? 0 : floor(1 + 3000 * urand());
			t[k] = tt;
			t2[k] = tt * 1000 - 5e11;
			/* training part: all but the last two of each user */
			if (j >= 1 && j < PER - 2 && t[k] - t[k - 1] > 0)
				gaps[ng++] = t[k] - t[k - 1];
		}
	}
	qsort(gaps, ng, sizeof(double), cmpd);
	want = ng % 2 ? gaps[ng / 2] : (gaps[ng / 2 - 1] + gaps[ng / 2]) / 2;
	t4r_dataset_build(u, it, t, NULL, NUSER * PER, 1, 1, &ds, err, sizeof err);
	t4r_dataset_build(u, it, t2, NULL, NUSER * PER, 1, 1, &ds2, err, sizeof err);
	got = t4r_dataset_time_scale(ds);
	got2 = t4r_dataset_time_scale(ds2);
	tap_ok(got == want, "time scale = median positive training gap (%g vs %g)", got, want);
	tap_ok(fabs(got2 / got - 1000) < 1e-9, "time scale follows the unit (%g)", got2 / got);

	{
		t4r_config	c;
		t4r_model  *m = NULL;
		t4r_fit_opts fo;
		t4r_fit_result res;
		int			rc;

		t4r_config_preset(&c, "movielens");
		c.hidden_size = 16;
		c.head_dim = 8;
		c.d_state = 8;
		c.max_seq_len = 6;		/* histories longer than L: windows */
		c.chunk_size = 8;
		c.batch_size = 64;
		c.n_items = ds->n_items;
		c.time_features = T4R_TIME_ROBUST;
		c.training = T4R_TRAIN_ALL_POSITIONS;
		t4r_model_create(&c, &m, err, sizeof err);
		t4r_model_init(m, 3);
		memset(&fo, 0, sizeof fo);
		fo.train.threads = 2;
		fo.epochs = 3;
		fo.patience = 2;
		rc = t4r_fit(m, ds, &fo, &res, err, sizeof err);
		tap_ok(rc == T4R_OK && res.epochs_run >= 2 && isfinite(res.best_valid_ndcg10),
			   "all_positions fit runs (%d epochs, best %d, %lld targets/epoch) %s", res.epochs_run,
			   res.best_epoch, (long long) res.train_samples, err);
		tap_ok(m->cfg.time_scale == got, "the fit stores the data's time scale in the model (%g)",
			   m->cfg.time_scale);
		t4r_model_free(m);
	}
	t4r_dataset_free(ds);
	t4r_dataset_free(ds2);
}

static void
options(void)
{
	t4r_config	c;
	char		err[256];

	t4r_config_preset(&c, NULL);
	tap_ok(c.time_features == T4R_TIME_OFFICIAL && c.training == T4R_TRAIN_PREFIXES,
		   "defaults: official time features, prefixes");
	tap_ok(t4r_config_set(&c, "time_features", "robust", err, sizeof err) == T4R_OK &&
		   t4r_config_set(&c, "training", "all_positions", err, sizeof err) == T4R_OK &&
		   t4r_config_validate(&c, err, sizeof err) == T4R_OK, "robust + all_positions accepted");
	tap_ok(t4r_config_set(&c, "time_features", "causal", err, sizeof err) == T4R_EINVAL &&
		   strstr(err, "official"), "bad time_features rejected: %s", err);
	tap_ok(t4r_config_set(&c, "training", "all", err, sizeof err) == T4R_EINVAL &&
		   strstr(err, "all_positions"), "bad training rejected: %s", err);
	c.time_scale = -1;
	tap_ok(t4r_config_validate(&c, err, sizeof err) == T4R_EINVAL, "negative time_scale rejected");
	{
		const char *j = "{\"time_features\": \"robust\", \"time_scale\": 60.0}";
		t4r_config	c2;

		t4r_config_preset(&c2, NULL);
		tap_ok(t4r_config_from_json(&c2, j, strlen(j), err, sizeof err) == T4R_OK &&
			   c2.time_features == T4R_TIME_ROBUST && c2.time_scale == 60.0,
			   "config JSON: time_features and time_scale read");
	}
}

int
main(void)
{
	invariance_and_causality();
	export_import();
	scale_and_fit();
	options();
	return tap_done();
}
