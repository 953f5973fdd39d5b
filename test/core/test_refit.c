/*
 * test_refit.c - refit's second pass (t4r_refit, src/core/fit.c):
 *  - it trains on every user's training part extended by the validation
 *    target and nothing else: its epoch losses and final weights are bit
 *    for bit those of t4r_fit for the same number of epochs on a table
 *    where every user has one more event at the end (so that table's
 *    training parts are exactly the extended ones), and its sample count is
 *    the first pass's plus one per user with a validation target;
 *  - it keeps the last epoch's weights (no validation, no early stopping);
 *  - lr_schedule: a constant schedule equal to learning_rate changes
 *    nothing, another schedule changes the weights;
 *  - it differs from the first pass's training, leaves the caller's dataset
 *    as it was, and refuses a backend and a non-positive epoch count.
 * With tie_shuffle on and equal timestamps in the data (the amazon preset,
 * tie_shuffle set to true rather than its "auto").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x7265666974ULL
#include "tap.h"
#include "tim4rec.h"

#define NU 40
#define NI 25
#define E 3

typedef struct rows
{
	int64_t		u[NU * 16],
				i[NU * 16];
	double		t[NU * 16];
	size_t		n;
} rows;

/* users with 3..14 events, some sharing a timestamp; plus: one more event
 * per user after its last, with an item of its own history */
static void
make_rows(rows *r, int plus)
{
	r->n = 0;
	for (int u = 1; u <= NU; u++)
	{
		int			m = 3 + (int) (tap_rng_u64() % 12);
		double		ts = 1e6 * u;

		for (int j = 0; j < m; j++)
		{
			ts += (tap_rng_u64() % 3 == 0) ? 0 : 3600;
			r->u[r->n] = u;
			r->i[r->n] = 1 + (int64_t) ((u * 7 + j * 3 + (int) (tap_rng_u64() % 5)) % NI);
			r->t[r->n] = ts;
			r->n++;
		}
		if (plus)
		{
			r->u[r->n] = u;
			r->i[r->n] = r->i[r->n - m];
			r->t[r->n] = ts + 7200;
			r->n++;
		}
	}
}

static t4r_model *
make_model(int V)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, "amazon");
	c.hidden_size = 16;
	c.head_dim = 16;
	c.max_seq_len = 6;
	c.batch_size = 16;
	c.learning_rate = 0.01;
	c.weight_decay = 0.5;
	c.tie_shuffle = 1;		/* not "auto": the same form on both tables */
	c.n_items = V;
	c.seed = 11;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "model create: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, 5);
	return m;
}

/* epoch_done: the losses, and the weights after epoch E */
typedef struct watch
{
	double		loss[E];
	t4r_model  *m;
	t4r_real   *snap;
} watch;

static void
on_epoch(void *ud, const t4r_epoch_info *info)
{
	watch	   *w = ud;

	if (info->epoch >= 1 && info->epoch <= E)
		w->loss[info->epoch - 1] = info->loss;
	if (info->epoch == E && w->snap)
		memcpy(w->snap, w->m->params, w->m->layout.total * sizeof(t4r_real));
}

static t4r_dataset *
build(rows *r)
{
	t4r_dataset *ds = NULL;
	char		err[256];

	if (t4r_dataset_build(r->u, r->i, r->t, NULL, r->n, 1, 1, &ds, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "dataset: %s\n", err);
		exit(2);
	}
	return ds;
}

int
main(void)
{
	static rows r0,
				r1;
	uint64_t	state = tap_rng_state;
	t4r_dataset *ds,
			   *dplus;
	t4r_model  *mr,
			   *mp,
			   *mf,
			   *ms;
	t4r_fit_opts o;
	t4r_fit_result rr,
				rp,
				rf;
	watch		wr,
				wp;
	char		err[256] = "";
	int64_t		with_valid = 0;
	size_t		bytes;
	int			rc,
				same_loss = 1;
	double		lr_same[E],
				lr_other[E];

	memset(&wr, 0, sizeof wr);
	memset(&wp, 0, sizeof wp);
	make_rows(&r0, 0);
	tap_rng_state = state;		/* the same histories, each one event longer */
	make_rows(&r1, 1);
	ds = build(&r0);
	dplus = build(&r1);
	tap_ok(ds->n_items == dplus->n_items && ds->n_users == dplus->n_users,
		   "the longer table has the same users and items (V %d and %d)", ds->n_items, dplus->n_items);
	for (int64_t u = 0; u < ds->n_users; u++)
		with_valid += ds->seq_off[u + 1] - ds->seq_off[u] >= 3;

	mr = make_model(ds->n_items);
	mp = make_model(ds->n_items);
	mf = make_model(ds->n_items);
	bytes = mr->layout.total * sizeof(t4r_real);
	wp.m = mp;
	wp.snap = malloc(bytes);
	wr.m = mr;

	memset(&o, 0, sizeof o);
	o.train.threads = 1;
	o.epoch_done = on_epoch;
	o.ud = &wr;
	rc = t4r_refit(mr, ds, &o, E, &rr, err, sizeof err);
	tap_ok(rc == T4R_OK && rr.epochs_run == E && rr.best_epoch == E && isnan(rr.best_valid_ndcg10),
		   "t4r_refit runs exactly %d epochs (rc %d, %s)", E, rc, err);
	tap_ok(ds->train_on_valid == 0, "the caller's dataset is left as it was");

	o.ud = &wp;
	o.epochs = E;
	o.patience = E;
	rc = t4r_fit(mp, dplus, &o, &rp, err, sizeof err);
	tap_ok(rc == T4R_OK && rp.epochs_run == E, "t4r_fit on the longer table, %d epochs (rc %d)", E, rc);
	tap_ok(rr.train_samples == rp.train_samples,
		   "refit trains on as many samples as the longer table's training parts (%lld, %lld)",
		   (long long) rr.train_samples, (long long) rp.train_samples);
	for (int e = 0; e < E; e++)
		same_loss &= wr.loss[e] == wp.loss[e];
	tap_ok(same_loss, "the same loss in every epoch, bit for bit (epoch 1: %.9g and %.9g; %d: %.9g and %.9g)",
		   wr.loss[0], wp.loss[0], E, wr.loss[E - 1], wp.loss[E - 1]);
	tap_ok(memcmp(mr->params, wp.snap, bytes) == 0,
		   "refit keeps the weights of its last epoch: those of the longer table after epoch %d", E);

	o.ud = &wr;
	o.epoch_done = NULL;
	rc = t4r_fit(mf, ds, &o, &rf, err, sizeof err);
	tap_ok(rc == T4R_OK && rr.train_samples == rf.train_samples + with_valid,
		   "one more sample per user with a validation target than the first pass (%lld = %lld + %lld)",
		   (long long) rr.train_samples, (long long) rf.train_samples, (long long) with_valid);
	tap_ok(memcmp(mr->params, mf->params, bytes) != 0, "refit trains other weights than the first pass");

	/* lr_schedule */
	for (int e = 0; e < E; e++)
	{
		lr_same[e] = mr->cfg.learning_rate;
		lr_other[e] = e == 0 ? mr->cfg.learning_rate : mr->cfg.learning_rate / 4;
	}
	ms = make_model(ds->n_items);
	o.epochs = o.patience = 0;
	o.lr_schedule = lr_same;
	rc = t4r_refit(ms, ds, &o, E, NULL, err, sizeof err);
	tap_ok(rc == T4R_OK && memcmp(ms->params, mr->params, bytes) == 0,
		   "a schedule of the config's learning rate gives the same weights bit for bit");
	tap_ok(ms->cfg.learning_rate == mr->cfg.learning_rate, "the config's learning rate is restored");
	t4r_model_free(ms);
	ms = make_model(ds->n_items);
	o.lr_schedule = lr_other;
	rc = t4r_refit(ms, ds, &o, E, NULL, err, sizeof err);
	tap_ok(rc == T4R_OK && memcmp(ms->params, mr->params, bytes) != 0,
		   "a smaller step size from epoch 2 on gives other weights");
	t4r_model_free(ms);

	/* refusals */
	{
		t4r_backend be = {0};

		o.lr_schedule = NULL;
		o.backend = &be;
		tap_ok(t4r_refit(mf, ds, &o, E, NULL, err, sizeof err) == T4R_EINVAL && strstr(err, "refit"),
			   "a backend is refused: %s", err);
		o.backend = NULL;
		tap_ok(t4r_refit(mf, ds, &o, 0, NULL, err, sizeof err) == T4R_EINVAL,
			   "0 epochs is refused: %s", err);
	}

	free(wp.snap);
	t4r_model_free(mr);
	t4r_model_free(mp);
	t4r_model_free(mf);
	t4r_dataset_free(ds);
	t4r_dataset_free(dplus);
	return tap_done();
}
