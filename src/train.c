/*
 * train.c - tim4rec_train: read the interactions, build the dataset (5-core
 * filter, leave-one-out), check the memory budget, fit with early stopping,
 * evaluate, and store the new version in the catalog, all in the caller's
 * transaction with the caller's privileges.
 *
 * The call runs as steps that fill one TrainRun: train_args (arguments,
 * options, the warm start's parent, the search plan), train_read,
 * train_dataset, train_budget, then per trial train_fit and
 * train_evaluate, then train_save and the result row.  Without
 * options.search there is one trial; with it (options.c) every trial
 * trains on the same dataset and split, and the one with the best
 * validation NDCG@10 is kept (ties: the earlier trial); the others' models
 * are freed as soon as they lose.
 *
 * Core memory (dataset, models, serialised weights) is malloc'd; it is freed
 * in PG_FINALLY so that errors and cancellation leak nothing and store
 * nothing (the catalog is written only by train_save, after every trial).
 * The core calls t4r_pg_interrupt between micro-batches on this (the
 * backend's) thread; it only reads the pending-interrupt flags, and after
 * the core returns T4R_ECANCELLED and everything is freed,
 * CHECK_FOR_INTERRUPTS() raises the cancel (statement_timeout,
 * pg_cancel_backend, termination).
 */
#include "tim4rec_pg.h"
#include "ids.h"

#include <math.h>
#include <sys/time.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(tim4rec_train);
PG_FUNCTION_INFO_V1(tim4rec_tie_order);

/* ------------------------------------------------------------------ */
/* the state of one call                                               */
/* ------------------------------------------------------------------ */
typedef struct TrainState
{
	int			max_epochs;
	int			n_hist;
	t4r_epoch_info *hist;		/* [max_epochs] */
	const char *prefix;			/* "" or "trial i/N: " for the NOTICEs */
	int			refit_epochs;	/* refit's second pass: its epochs */
} TrainState;

/* one training of one set of options: the only one, or a search trial */
typedef struct TrainTrial
{
	T4rTrainOptions opts;
	Jsonb	   *values;			/* the searched values; NULL without search */
	bool		use_cuda;
	size_t		mem_budget;		/* the trainer's share (train_budget) */
	TrainState	st;
	t4r_fit_result fres;
	t4r_real   *init;			/* refit: the weights the fit started from */
	t4r_fit_result rres;		/* refit's second pass */
	double		vhr,
				vndcg,
				vmrr,
				thr,
				tndcg,
				tmrr;
	double		seconds;
	const char *failed;			/* a search trial that diverged: why */
} TrainTrial;

/* what the call returns (one row) */
typedef struct T4rTrainResult
{
	int32		version;
	bool		deployed;
	int64		n_users;
	int64		n_items;
	int64		n_inter;
	int64		train_samples;
	int			epochs_run;
	int			best_epoch;
	double		vhr,
				vndcg,
				vmrr,
				thr,
				tndcg,
				tmrr;
	double		seconds;
} T4rTrainResult;

typedef struct TrainRun
{
	/* arguments */
	Oid			relid;
	char	   *model_name;
	char	   *user_col;
	char	   *item_col;
	char	   *time_col;
	char	   *parent_name;	/* warm start (NULL: none) */
	int32		parent_version;
	T4rLoadedModel *parent;		/* pinned until the model is initialised */
	int			warm_scope;		/* options.warm_scope: 0 all, 1 new */
	int			warm_new_items;	/* options.warm_new_items: 0 random, 1 neighbors */
	int64		warm_new_set;	/* new items' rows set from their neighbours */
	double		parent_tmax;	/* the parent's newest interaction (scope new) */
	t4r_dataset *fitds;			/* scope new: the users with newer interactions */
	Jsonb	   *uopts;			/* the call's options (less the warm-start keys) */
	bool		search;
	T4rSearchPlan plan;
	int			n_trials;
	TrainTrial *trials;
	int			threads;
	double		t0;
	/* data */
	T4rInteractions in;
	/* core objects: malloc'd, freed in PG_FINALLY */
	t4r_dataset *ds;
	t4r_model  *model;			/* the trial in training */
	t4r_model  *best;			/* the kept trial's model */
	int			best_trial;		/* its index, -1: none yet */
	T4rDevice	dev;
	uint8_t    *wbuf;
	T4rTrainResult res;
	/* tie_shuffle "auto": the test of the order of equal timestamps */
	bool		ties_tested;
	bool		ties_searched;	/* both forms trained as two trials */
	t4r_tie_stats ties;
} TrainRun;

static double
now_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

static char *
bytes_text(double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		return psprintf("%.1f GB", b / (1024.0 * 1024 * 1024));
	return psprintf("%.0f MB", ceil(b / (1024.0 * 1024)));
}

/* ------------------------------------------------------------------ */
/* warm start                                                          */
/* ------------------------------------------------------------------ */
/*
 * Row of the parent's vocabulary for each row of the new one (row 0, the
 * padding, maps to 0), -1 for items the parent does not know: matched by
 * external item id, integer ids directly, text and uuid ids by their keys
 * (ids.h).  The only place of the warm start that knows the id types.
 * *known: how many of rows 1..V-1 the parent knows.
 */
static void
warm_check_item_type(T4rLoadedModel *parent, const T4rInteractions *in, const char *item_col)
{
	Oid			pt = t4r_ids_item_type(parent);

	if (t4r_ids_kind(pt) != t4r_ids_kind(in->item_type))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("item column \"%s\" has type %s, the parent model's item ids are %s",
						item_col, format_type_be(in->item_type), t4r_ids_type_name(pt)),
				 errhint("A warm start matches items by id: train from scratch to change the id type.")));
}

static int32_t *
warm_row_map(T4rLoadedModel *parent, const T4rInteractions *in, const t4r_dataset *ds, int64 *known)
{
	int32_t    *map = palloc(sizeof(int32_t) * ds->n_items);
	bool		keys = in->item_dict != NULL;

	*known = 0;
	map[0] = 0;
	for (int32 r = 1; r < ds->n_items; r++)
	{
		if (keys)
		{
			int			len;
			const char *k = t4r_keydict_key(in->item_dict, ds->item_ids[r], &len);

			map[r] = parent->item_keys && parent->item_keys->n > 0 ?
				t4r_keys_lookup(parent->item_keys, k, len) : -1;
		}
		else
			map[r] = t4r_pg_item_row(parent, ds->item_ids[r]);
		if (map[r] >= 0)
			(*known)++;
	}
	return map;
}

/* ------------------------------------------------------------------ */
/* callbacks                                                           */
/* ------------------------------------------------------------------ */
static void
progress_cb(void *ud, int epoch, int64_t step, int64_t steps_per_epoch, double loss)
{
	t4r_pg_progress_step(epoch, step, steps_per_epoch, loss);
}

static void
epoch_cb(void *ud, const t4r_epoch_info *info)
{
	TrainState *st = (TrainState *) ud;
	double		per,
				left;

	if (st->n_hist < st->max_epochs)
		st->hist[st->n_hist++] = *info;
	t4r_pg_progress_epoch(info->epoch, info->valid_ndcg10);
	per = 0;
	for (int i = 0; i < st->n_hist; i++)
		per += st->hist[i].seconds;
	per /= st->n_hist > 0 ? st->n_hist : 1;
	left = per * (st->max_epochs - info->epoch);
	ereport(NOTICE,
			(errmsg("%sepoch %d/%d: loss %.4f, validation NDCG@10 %.4f (best %.4f at epoch %d), %.1f s, at most %.0f s left%s",
					st->prefix, info->epoch, st->max_epochs, info->loss, info->valid_ndcg10,
					info->best_ndcg10, info->best_epoch, info->seconds, ceil(left),
					st->n_hist > 1 && info->learning_rate != st->hist[st->n_hist - 2].learning_rate ?
					psprintf("; learning rate now %g", info->learning_rate) : "")));
}

/* each trial's device and threads */
static void
train_devices(TrainRun *r)
{
	for (int t = 0; t < r->n_trials; t++)
	{
		T4rTrainOptions *o = &r->trials[t].opts;

		r->trials[t].use_cuda = t4r_pg_use_cuda_for(o->device, "training", &o->cfg);
		strlcpy(o->device, r->trials[t].use_cuda ? "cuda" : "cpu", sizeof(o->device));
		o->threads = o->threads > 0 ? o->threads : t4r_pg_threads();
	}
	/* every trial shares threads, filters and order column (options.c) */
	r->threads = r->trials[0].opts.threads;
}

/* options with "search": its trials (false without one) */
static bool
train_plan(TrainRun *r, Jsonb *opts)
{
	r->search = t4r_pg_search_plan(opts, &r->plan);
	if (!r->search)
		return false;
	r->n_trials = r->plan.n_trials;
	r->trials = palloc0(sizeof(TrainTrial) * r->n_trials);
	for (int t = 0; t < r->n_trials; t++)
	{
		r->trials[t].opts = r->plan.opts[t];
		r->trials[t].values = r->plan.trial[t];
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* step 1: arguments and options                                       */
/* ------------------------------------------------------------------ */
/* metrics->time_max of the parent version (warm_scope 'new') */
static double
warm_parent_tmax(const char *name, int32 version)
{
	Jsonb	   *m = t4r_pg_catalog_metrics(name, version);
	JsonbValue *v = m ? getKeyJsonValueFromContainer(&m->root, "time_max", strlen("time_max"), NULL)
		: NULL;

	if (v == NULL || v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d does not record the time of its newest interaction",
						name, version),
				 errdetail("warm_scope 'new' trains on the users with interactions newer than the parent's; versions trained before tim4rec 0.3 do not record it."),
				 errhint("Use warm_scope 'all' (the default) once; the new version records it.")));
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/*
 * warm_scope 'new': the users with an interaction after the parent's newest
 * (whole histories) are what the warm start trains and early-stops on; the
 * final metrics stay those of every user.
 */
static void
warm_subset(TrainRun *r)
{
	const t4r_dataset *ds = r->ds;
	uint8_t    *keep = palloc0(ds->n_users > 0 ? ds->n_users : 1);
	int64		n = 0;
	int			rc;

	for (int64 u = 0; u < ds->n_users; u++)
	{
		/* a history is in time order: its last interaction is its newest */
		int64		last = ds->seq_off[u + 1] - 1;

		if (last >= ds->seq_off[u] && ds->seq_ts[last] > r->parent_tmax)
		{
			keep[u] = 1;
			n++;
		}
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("no user has interactions newer than those model \"%s\" version %d was trained on",
						r->parent_name, r->parent_version),
				 errhint("Add the new interactions first, or use warm_scope 'all'.")));
	rc = t4r_dataset_subset(ds, keep, &r->fitds);
	pfree(keep);
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "selecting the users with new interactions", NULL);
	ereport(NOTICE,
			(errmsg("warm start on the " INT64_FORMAT " of " INT64_FORMAT " users with interactions newer than the parent's",
					n, (int64) ds->n_users)));
}

/* the newest interaction of the data (metrics "time_max") */
static double
data_tmax(const t4r_dataset *ds)
{
	double		m = 0;
	bool		any = false;

	for (int64 u = 0; u < ds->n_users; u++)
	{
		int64		last = ds->seq_off[u + 1] - 1;

		if (last >= ds->seq_off[u] && (!any || ds->seq_ts[last] > m))
		{
			m = ds->seq_ts[last];
			any = true;
		}
	}
	return m;
}

static void
train_args(FunctionCallInfo fcinfo, TrainRun *r)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *uopts;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %s of tim4rec_train must not be NULL",
							i == 0 ? "relation" : i == 1 ? "model_name" : i == 2 ? "user_column" :
							i == 3 ? "item_column" : "time_column")));
	r->relid = PG_GETARG_OID(0);
	r->model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	r->user_col = NameStr(*PG_GETARG_NAME(2));
	r->item_col = NameStr(*PG_GETARG_NAME(3));
	r->time_col = NameStr(*PG_GETARG_NAME(4));
	if (r->model_name[0] == '\0' || strlen(r->model_name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must be non-empty and at most %d bytes", NAMEDATALEN - 1)));

	uopts = PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5);
	r->warm_scope = t4r_pg_warm_scope_option(&uopts);
	r->warm_new_items = t4r_pg_warm_new_items_option(&uopts);
	if ((r->warm_scope >= 0 || r->warm_new_items >= 0) &&
		(uopts == NULL ||
		 getKeyJsonValueFromContainer(&uopts->root, "init_from", strlen("init_from"), NULL) == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" needs \"init_from\"",
						r->warm_scope >= 0 ? "warm_scope" : "warm_new_items"),
				 errhint("%s a warm start; add \"init_from\": \"model\", or leave it out.",
						 r->warm_scope >= 0 ? "warm_scope chooses what" : "warm_new_items initialises the new items of")));
	r->uopts = uopts;
	if (!train_plan(r, uopts))
	{
		r->n_trials = 1;
		r->trials = palloc0(sizeof(TrainTrial));
		if (t4r_pg_init_from_option(uopts, &r->parent_name, &r->parent_version))
		{
			/* READ on the parent (42704 / 42501 from here); pinned until
			 * the model is initialised */
			r->parent = t4r_pg_get_model(r->parent_name, r->parent_version, T4R_PRIV_READ);
			r->parent_version = r->parent->version;
			uopts = t4r_pg_warm_options(t4r_pg_catalog_config(r->parent_name, r->parent_version), uopts);
			if (r->warm_scope == 1)
				r->parent_tmax = warm_parent_tmax(r->parent_name, r->parent_version);
		}
		t4r_pg_parse_options(uopts, &r->trials[0].opts, "options");
	}
	if (r->parent)
	{
		char		diff[512];

		if (t4r_config_shape_diff(&r->parent->model->cfg, &r->trials[0].opts.cfg, diff, sizeof(diff)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options change the shape of the weights of model \"%s\" version %d",
							r->parent_name, r->parent_version),
					 errdetail("A warm start keeps the parent's shapes; these options differ: %s.", diff),
					 errhint("Leave these keys out (init_from takes them from the parent), or train without init_from to change them.")));
	}

	train_devices(r);

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tim4rec_train must be called in a context that accepts a set")));

	/* fail now rather than after the training */
	PreventCommandIfReadOnly("tim4rec_train()");
	PreventCommandDuringRecovery("tim4rec_train()");
	t4r_pg_check_model_writable(r->model_name);
}

/* ------------------------------------------------------------------ */
/* step 2: read the interactions                                       */
/* ------------------------------------------------------------------ */
static void
train_read(TrainRun *r)
{
	const T4rTrainOptions *o = &r->trials[0].opts;
	T4rInteractions *in = &r->in;

	t4r_pg_read_interactions(r->relid, r->user_col, r->item_col, r->time_col, o->order_column, in);
	if (r->parent)
		warm_check_item_type(r->parent, in, r->item_col);
	t4r_pg_progress_rows((int64) in->n);
	elog(DEBUG1, "tim4rec: read %zu interactions in %.3f s", in->n, now_s() - r->t0);
	if (in->n_null > 0)
		ereport(NOTICE,
				(errmsg("skipped %zu rows with a NULL %s", in->n_null,
						o->order_column ? "user, item, time or order value" : "user, item or time")));
	if (in->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation \"%s\" has no interactions to train on", get_rel_name(r->relid))));

	/* building the dataset needs the raw rows plus about 64 bytes a row
	 * (indexes, filters, the compact sequences): check before it starts */
	{
		double		raw = (double) in->n * (3 + (in->order ? 1 : 0)) * sizeof(int64);
		double		build = raw + (double) in->n * 64;

		if (build > (double) tim4rec_memory_budget_mb * 1024 * 1024)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("training needs more memory than tim4rec.memory_budget allows"),
					 errdetail("Building the training data from %zu interactions needs about %s; the budget is %d MB.",
							   in->n, bytes_text(build), tim4rec_memory_budget_mb),
					 errhint("Raise tim4rec.memory_budget (e.g. SET tim4rec.memory_budget = '4GB') or train on fewer rows.")));
	}
}

/* ------------------------------------------------------------------ */
/* step 3: the dataset (filters, leave-one-out split)                  */
/* ------------------------------------------------------------------ */
static void
train_dataset(TrainRun *r)
{
	const T4rTrainOptions *o = &r->trials[0].opts;
	T4rInteractions *in = &r->in;
	char		err[512] = "";
	int			rc;

	t4r_pg_progress_phase(T4R_PHASE_BUILDING);
	rc = t4r_dataset_build_ex(in->users, in->items, in->ts, in->order, in->n,
							  o->min_user, o->min_item, t4r_pg_interrupt, NULL,
							  &r->ds, err, sizeof(err));
	pfree(in->users);
	pfree(in->items);
	pfree(in->ts);
	if (in->order)
		pfree(in->order);
	if (rc == T4R_ECANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (rc == T4R_EDATA || (rc == T4R_OK && (r->ds->n_users == 0 || r->ds->n_items < 2)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("too little data to train on after filtering"),
				 errdetail("%s", err[0] ? err : "No user and item pass the filters."),
				 errhint("Every user needs at least 4 interactions; lower min_user_interactions / min_item_interactions (now %d / %d) or add data.",
						 o->min_user, o->min_item)));
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "building the training data", err);
	r->res.n_users = r->ds->n_users;
	r->res.n_items = r->ds->n_items - 1;
	r->res.n_inter = (int64) r->ds->n_interactions;
	if (r->warm_scope == 1)
		warm_subset(r);
	CHECK_FOR_INTERRUPTS();
}

/* ------------------------------------------------------------------ */
/* step 3b: tie_shuffle "auto" (src/core/tieorder.c)                   */
/* ------------------------------------------------------------------ */
static Jsonb *
jsonb_text(const char *txt)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(txt)));
}

/* the forms of a consistent order: shuffled, the table's order, and the
 * table's order with the published training's weight_decay 0 (QUALITY.md
 * "Keeping the table's order: weight_decay 0 as a third trial") */
#define TIES_SEARCH2 "{\"search\": [{\"tie_shuffle\": true}, {\"tie_shuffle\": false}]}"
#define TIES_SEARCH3 "{\"search\": [{\"tie_shuffle\": true}, {\"tie_shuffle\": false}, " \
	"{\"tie_shuffle\": false, \"weight_decay\": 0}]}"

/* the third form: weight_decay 0, unless the caller chose a weight_decay
 * or it is 0 already */
static bool
ties_wd0(const T4rTrainOptions *o, Jsonb *uopts)
{
	return o->cfg.weight_decay != 0 &&
		(uopts == NULL ||
		 getKeyJsonValueFromContainer(&uopts->root, "weight_decay", strlen("weight_decay"), NULL) == NULL);
}

/*
 * A random order of equal timestamps (or none) resolves "auto" to shuffling
 * (or not); a consistent one may be a real event order or an artefact the
 * evaluation rewards, which only validation can tell: without a search or
 * a warm start both forms are trained as trials (the table's order also
 * with weight_decay 0) and the best on validation is kept; otherwise the
 * table's order is kept.
 */
static void
train_ties(TrainRun *r)
{
	const t4r_dataset *ds = r->fitds ? r->fitds : r->ds;
	bool		any = false;
	int			rc;

	for (int t = 0; t < r->n_trials; t++)
		any |= r->trials[t].opts.cfg.tie_shuffle == T4R_TIE_SHUFFLE_AUTO;
	if (!any)
		return;
	if ((rc = t4r_tie_order_test(ds, &r->ties)) != T4R_OK)
		t4r_pg_core_error(rc, "testing the order of equal timestamps", NULL);
	r->ties_tested = true;
	if (r->ties.consistent && !r->search && r->parent == NULL)
	{
		/* the call's options as a search over the forms; weight_decay 0
		 * unless the caller chose a weight_decay, or it is 0 already */
		Jsonb	   *o = r->uopts ? r->uopts : jsonb_text("{}");
		bool		wd0 = ties_wd0(&r->trials[0].opts, o);

		o = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(o),
											   CStringGetTextDatum("tie_shuffle")));
		o = t4r_jb_concat(o, jsonb_text(wd0 ? TIES_SEARCH3 : TIES_SEARCH2));
		if (!train_plan(r, o))
			elog(ERROR, "tim4rec: no trials for tie_shuffle \"auto\"");
		train_devices(r);
		r->ties_searched = true;
		ereport(NOTICE,
				(errmsg("equal timestamps keep a consistent order (agreement %.2f, z %.1f over %lld item pairs): training with that order%s and with shuffled ties, keeping the best on validation",
						r->ties.agreement, r->ties.z, (long long) r->ties.repeated_pairs,
						wd0 ? " (with and without weight_decay)" : ""),
				 errhint("Set \"tie_shuffle\" to false to keep the table's order and train once, or to true to shuffle.")));
		return;
	}
	for (int t = 0; t < r->n_trials; t++)
		if (r->trials[t].opts.cfg.tie_shuffle == T4R_TIE_SHUFFLE_AUTO)
			r->trials[t].opts.cfg.tie_shuffle = t4r_tie_shuffle_resolve(&r->ties);
	if (r->ties.consistent)
		ereport(NOTICE,
				(errmsg("equal timestamps keep a consistent order (agreement %.2f, z %.1f over %lld item pairs): trained with that order",
						r->ties.agreement, r->ties.z, (long long) r->ties.repeated_pairs),
				 errhint("%s", r->search ?
						 "Add \"tie_shuffle\": [true, false] to \"search\" to compare it with shuffled ties." :
						 "A warm start does not compare both forms; set \"tie_shuffle\" to true to shuffle.")));
}

/* ------------------------------------------------------------------ */
/* step 4: the memory estimate of every trial, before any model exists */
/* ------------------------------------------------------------------ */
static void
train_budget(TrainRun *r)
{
	const t4r_dataset *ds = r->ds;
	size_t		budget = (size_t) tim4rec_memory_budget_mb * 1024 * 1024;
	size_t		kept = 0;
	int			V = ds->n_items;

	/* a search also holds the best model so far */
	for (int pass = 0; pass < 2; pass++)
		for (int t = 0; t < r->n_trials; t++)
		{
			TrainTrial *tr = &r->trials[t];
			t4r_config *cfg = &tr->opts.cfg;
			char		err[512] = "";
			int			rc;
			size_t		used,
						need = 0;
			int			mb = 0;
			t4r_layout	lay;
			t4r_train_opts to;

			cfg->n_items = V;
			if ((rc = t4r_config_validate(cfg, err, sizeof(err))) != T4R_OK)
				t4r_pg_core_error(rc, "invalid options", err);
			if ((rc = t4r_layout_build(cfg, &lay)) != T4R_OK)
				t4r_pg_core_error(rc, "invalid options", NULL);
			if (pass == 0)
			{
				if (r->search && lay.total * sizeof(t4r_real) > kept)
					kept = lay.total * sizeof(t4r_real);
				t4r_layout_free(&lay);
				continue;
			}
			used = ds->n_interactions * (sizeof(int32_t) + sizeof(double)) +
				(size_t) V * (2 * sizeof(int64_t)) +
				(size_t) ds->n_users * (3 * sizeof(int64_t)) +
				2 * lay.total * sizeof(t4r_real) +	/* model + best weights */
				kept +							/* the kept trial's model */
				/* the sample order: 4 bytes a target, or (all_positions) 12
				 * bytes a window, at most one window a target */
				(size_t) ds->n_train_samples *
				(cfg->training == T4R_TRAIN_ALL_POSITIONS ? 12 : sizeof(uint32_t)) +
				(size_t) cfg->batch_size * sizeof(t4r_sample) +
				(size_t) tr->opts.threads * V * sizeof(t4r_real) * 2 +	/* evaluation scores */
				lay.total * sizeof(float) + 4096 * 1024;	/* serialised weights */
			t4r_layout_free(&lay);
			memset(&to, 0, sizeof(to));
			to.threads = tr->opts.threads;
			to.mem_budget = used < budget ? budget - used : 1;
			tr->mem_budget = to.mem_budget;
			/* on the GPU the trainer's buffers are device memory */
			rc = tr->use_cuda ? T4R_OK : t4r_trainer_estimate(cfg, &to, &need, &mb);
			if (rc == T4R_EBUDGET || used >= budget)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("training needs more memory than tim4rec.memory_budget allows"),
						 errdetail("The data and model need about %s and the trainer at least %s; the budget is %d MB.",
								   bytes_text((double) used), bytes_text((double) need),
								   tim4rec_memory_budget_mb),
						 r->search ? errcontext("search trial %d", t + 1) : 0,
						 errhint("Raise tim4rec.memory_budget (e.g. SET tim4rec.memory_budget = '4GB') or use smaller batch_size, max_seq_len or hidden_size.")));
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "estimating the training memory", NULL);
		}
}

/* ------------------------------------------------------------------ */
/* step 5: create, initialise and fit the model of one trial            */
/* ------------------------------------------------------------------ */
/* false: a search trial diverged (tr->failed says why; r->model freed) */
static bool
train_fit(TrainRun *r, TrainTrial *tr)
{
	const T4rTrainOptions *o = &tr->opts;
	char		err[512] = "";
	int			rc;
	t4r_fit_opts fo;

	rc = t4r_model_create(&o->cfg, &r->model, err, sizeof(err));
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "creating the model", err);
	t4r_model_init(r->model, o->cfg.seed);
	if (r->parent)
	{
		/* warm start: the parent's weights over the fresh initialisation
		 * (new items keep theirs); before the GPU copy is made */
		int64		known;
		int32_t    *map = warm_row_map(r->parent, &r->in, r->ds, &known);

		err[0] = '\0';
		rc = t4r_model_warm_start(r->model, r->parent->model, map, err, sizeof(err));
		if (rc == T4R_OK && r->warm_new_items == 1)
		{
			r->warm_new_set = t4r_model_warm_new_items(r->model, map, r->ds);
			if (r->warm_new_set < 0)
				rc = (int) r->warm_new_set;
		}
		pfree(map);
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "warm start", err);
		ereport(NOTICE,
				(errmsg("warm start from model \"%s\" version %d: " INT64_FORMAT " known items, " INT64_FORMAT " new, " INT64_FORMAT " dropped",
						r->parent_name, r->parent_version, known, (int64) (r->ds->n_items - 1) - known,
						(int64) (r->parent->model->cfg.n_items - 1) - known)));
		if (r->warm_new_items == 1)
			ereport(NOTICE,
					(errmsg("warm start: " INT64_FORMAT " of " INT64_FORMAT " new items initialised from their neighbours in the histories",
							r->warm_new_set, (int64) (r->ds->n_items - 1) - known)));
		t4r_pg_release_model(r->parent);
		r->parent = NULL;
	}
	if (o->cfg.refit)
	{
		size_t		bytes = r->model->layout.total * sizeof(t4r_real);

		tr->init = MemoryContextAllocHuge(CurrentMemoryContext, bytes);
		memcpy(tr->init, r->model->params, bytes);
	}
	memset(&fo, 0, sizeof(fo));
	fo.train.threads = o->threads;
	fo.train.mem_budget = tr->mem_budget;
	if (tr->use_cuda)
	{
		t4r_pg_device_open(&r->dev, r->model, true);
		fo.backend = t4r_pg_device_backend(&r->dev);
		elog(DEBUG1, "tim4rec: training on the GPU, %zu bytes of device memory",
			 t4r_pg_device_bytes(&r->dev));
	}

	t4r_pg_progress_phase(T4R_PHASE_TRAINING);
	tr->st.max_epochs = o->cfg.epochs;
	tr->st.hist = palloc0(sizeof(t4r_epoch_info) * (tr->st.max_epochs > 0 ? tr->st.max_epochs : 1));
	fo.train.interrupt = t4r_pg_interrupt;
	fo.progress = progress_cb;
	fo.epoch_done = epoch_cb;
	fo.ud = &tr->st;
	err[0] = '\0';
	rc = t4r_fit(r->model, r->fitds ? r->fitds : r->ds, &fo, &tr->fres, err, sizeof(err));
	if (rc == T4R_ECANCELLED)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
						errmsg("canceling statement due to user request")));
	}
	if (rc == T4R_EDATA)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("too little data to train on after filtering"),
				 errdetail("%s", err),
				 errhint("Lower min_user_interactions / min_item_interactions (now %d / %d) or add data.",
						 o->min_user, o->min_item)));
	if (rc == T4R_ENONFINITE && r->search)
	{
		/* one diverged trial does not end the search */
		tr->failed = pstrdup(err[0] ? err : "the training diverged");
		t4r_pg_device_close(&r->dev);
		t4r_model_free(r->model);
		r->model = NULL;
		return false;
	}
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "training failed", err);
	return true;
}

/* ------------------------------------------------------------------ */
/* step 6: validation and test metrics of the fitted model               */
/* ------------------------------------------------------------------ */
/* refit: validation only (with_valid), then the test after the refit */
static void
train_evaluate(TrainRun *r, TrainTrial *tr, t4r_model *m, bool with_valid, bool with_test)
{
	const int	k10 = 10;
	int			rc = T4R_OK;

	t4r_pg_progress_phase(T4R_PHASE_EVALUATING);
	/* the host holds the best epoch's weights, the GPU the last's */
	t4r_pg_device_sync_from_host(&r->dev);
	if (with_valid)
		rc = t4r_evaluate_backend(m, r->ds, T4R_SPLIT_VALID, &k10, 1, tr->opts.threads,
								  t4r_pg_interrupt, NULL, t4r_pg_device_backend(&r->dev),
								  &tr->vhr, &tr->vndcg, &tr->vmrr);
	if (rc == T4R_OK && with_test)
		rc = t4r_evaluate_backend(m, r->ds, T4R_SPLIT_TEST, &k10, 1, tr->opts.threads,
								  t4r_pg_interrupt, NULL, t4r_pg_device_backend(&r->dev),
								  &tr->thr, &tr->tndcg, &tr->tmrr);
	t4r_pg_device_close(&r->dev);
	if (rc == T4R_ECANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "evaluating the model", NULL);
}

/* refit's second pass: NOTICE per epoch, nothing kept in the history */
static void
refit_epoch_cb(void *ud, const t4r_epoch_info *info)
{
	TrainState *st = (TrainState *) ud;

	t4r_pg_progress_epoch(info->epoch, NAN);
	ereport(NOTICE,
			(errmsg("%srefit epoch %d/%d (training parts with the validation targets): loss %.4f, %.1f s",
					st->prefix, info->epoch, st->refit_epochs, info->loss, info->seconds)));
}

/*
 * refit: m back to the weights its fit started from, then the best epoch's
 * number of epochs on the training parts extended by the validation targets
 * (t4r_refit), with the first pass's step size epoch by epoch (lr_decay).
 * The validation metrics were taken before: the refitted model has trained
 * on the validation targets.
 */
static void
train_refit(TrainRun *r, TrainTrial *tr, t4r_model *m)
{
	int			E = tr->fres.best_epoch;
	double	   *lr = palloc(sizeof(double) * (E > 0 ? E : 1));
	char		err[512] = "";
	t4r_fit_opts fo;
	int			rc;

	Assert(tr->init != NULL && E >= 1 && tr->st.n_hist >= E);
	memcpy(m->params, tr->init, m->layout.total * sizeof(t4r_real));
	pfree(tr->init);
	tr->init = NULL;
	/* hist[i].learning_rate: the step size of epoch i + 2 */
	for (int e = 1; e <= E; e++)
		lr[e - 1] = e == 1 ? tr->opts.cfg.learning_rate : tr->st.hist[e - 2].learning_rate;
	memset(&fo, 0, sizeof(fo));
	fo.train.threads = tr->opts.threads;
	fo.train.mem_budget = tr->mem_budget;
	fo.train.interrupt = t4r_pg_interrupt;
	fo.progress = progress_cb;
	fo.epoch_done = refit_epoch_cb;
	fo.ud = &tr->st;
	fo.lr_schedule = lr;
	tr->st.refit_epochs = E;
	t4r_pg_progress_refit(E);
	rc = t4r_refit(m, r->fitds ? r->fitds : r->ds, &fo, E, &tr->rres, err, sizeof(err));
	pfree(lr);
	if (rc == T4R_ECANCELLED)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
						errmsg("canceling statement due to user request")));
	}
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "refit failed", err);
}

/* keep r->model as the best when it beats the kept one (search) */
static void
train_keep(TrainRun *r, int t)
{
	TrainTrial *tr = &r->trials[t];
	bool		finite = isfinite(tr->vhr) && isfinite(tr->vndcg) && isfinite(tr->vmrr) &&
		isfinite(tr->thr) && isfinite(tr->tndcg) && isfinite(tr->tmrr);

	if (r->search && !finite)
		tr->failed = "the validation or test metrics of the trained model are not finite";
	if (!r->search || (tr->failed == NULL &&
					   (r->best_trial < 0 || tr->vndcg > r->trials[r->best_trial].vndcg)))
	{
		if (r->best)
			t4r_model_free(r->best);
		if (r->best_trial >= 0 && r->trials[r->best_trial].init)
		{
			/* refit: only the kept trial's starting weights are needed */
			pfree(r->trials[r->best_trial].init);
			r->trials[r->best_trial].init = NULL;
		}
		r->best = r->model;
		r->best_trial = t;
	}
	else
	{
		t4r_model_free(r->model);
		if (tr->init)
			pfree(tr->init);
		tr->init = NULL;
	}
	r->model = NULL;
}

/* ------------------------------------------------------------------ */
/* step 7: store the kept model as the next version                     */
/* ------------------------------------------------------------------ */
static void
push_metrics(JsonbParseState **st, const char *split, double hr, double ndcg, double mrr)
{
	t4r_jb_key(st, split);
	t4r_jb_begin(st, WJB_BEGIN_OBJECT);
	t4r_jb_key(st, "hr@10");
	t4r_jb_float(st, hr);
	t4r_jb_key(st, "ndcg@10");
	t4r_jb_float(st, ndcg);
	t4r_jb_key(st, "mrr@10");
	t4r_jb_float(st, mrr);
	(void) t4r_jb_end(st, WJB_END_OBJECT);
}

/* per-epoch history: [{"epoch", "loss", "valid_ndcg10", "seconds",
 * "learning_rate" (for the next epoch)}, ...];
 * the array is left open (the caller closes it) */
static void
push_epochs(JsonbParseState **st, const TrainState *ts)
{
	t4r_jb_begin(st, WJB_BEGIN_ARRAY);
	for (int i = 0; i < ts->n_hist; i++)
	{
		t4r_jb_begin(st, WJB_BEGIN_OBJECT);
		t4r_jb_key(st, "epoch");
		t4r_jb_int(st, ts->hist[i].epoch);
		t4r_jb_key(st, "loss");
		t4r_jb_float(st, ts->hist[i].loss);
		t4r_jb_key(st, "valid_ndcg10");
		t4r_jb_float(st, ts->hist[i].valid_ndcg10);
		t4r_jb_key(st, "seconds");
		t4r_jb_float(st, ts->hist[i].seconds);
		t4r_jb_key(st, "learning_rate");
		t4r_jb_float(st, ts->hist[i].learning_rate);
		(void) t4r_jb_end(st, WJB_END_OBJECT);
	}
}

static Jsonb *
train_metrics(TrainRun *r, const TrainTrial *b)
{
	JsonbParseState *st = NULL;

	t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
	push_metrics(&st, "valid", b->vhr, b->vndcg, b->vmrr);
	push_metrics(&st, "test", b->thr, b->tndcg, b->tmrr);
	t4r_jb_key(&st, "users");
	t4r_jb_int(&st, r->res.n_users);
	t4r_jb_key(&st, "items");
	t4r_jb_int(&st, r->res.n_items);
	t4r_jb_key(&st, "interactions");
	t4r_jb_int(&st, r->res.n_inter);
	t4r_jb_key(&st, "train_samples");
	t4r_jb_int(&st, (int64) b->fres.train_samples);
	/* the newest interaction trained on: a later warm_scope 'new' starts after it */
	t4r_jb_key(&st, "time_max");
	t4r_jb_float(&st, data_tmax(r->ds));
	if (r->parent_name)
	{
		t4r_jb_key(&st, "warm_scope");
		t4r_jb_str(&st, r->warm_scope == 1 ? "new" : "all");
		t4r_jb_key(&st, "warm_users");
		t4r_jb_int(&st, r->fitds ? r->fitds->n_users : r->ds->n_users);
		t4r_jb_key(&st, "warm_new_items");
		t4r_jb_str(&st, r->warm_new_items == 1 ? "neighbors" : "random");
		if (r->warm_new_items == 1)
		{
			t4r_jb_key(&st, "warm_new_items_set");
			t4r_jb_int(&st, r->warm_new_set);
		}
	}
	t4r_jb_key(&st, "epochs_run");
	t4r_jb_int(&st, b->fres.epochs_run);
	t4r_jb_key(&st, "best_epoch");
	t4r_jb_int(&st, b->fres.best_epoch);
	if (b->opts.cfg.refit)
	{
		/* the second pass; "valid" above is the first pass's best model */
		t4r_jb_key(&st, "refit");
		t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
		t4r_jb_key(&st, "epochs");
		t4r_jb_int(&st, b->rres.epochs_run);
		t4r_jb_key(&st, "train_samples");
		t4r_jb_int(&st, (int64) b->rres.train_samples);
		t4r_jb_key(&st, "seconds");
		t4r_jb_float(&st, b->rres.seconds);
		(void) t4r_jb_end(&st, WJB_END_OBJECT);
	}
	if (r->ties_tested)
	{
		/* tie_shuffle "auto": what the order of equal timestamps looked like */
		t4r_jb_key(&st, "tie_order");
		t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
		t4r_jb_key(&st, "order");
		t4r_jb_str(&st, r->ties.tied_pairs == 0 ? "no ties" :
				   r->ties.by_item_id ? "item id (no order_column)" :
				   r->ties.consistent ? "consistent" : "random");
		t4r_jb_key(&st, "tied_pairs");
		t4r_jb_int(&st, r->ties.tied_pairs);
		t4r_jb_key(&st, "repeated_pairs");
		t4r_jb_int(&st, r->ties.repeated_pairs);
		t4r_jb_key(&st, "agreement");
		t4r_jb_float(&st, r->ties.repeated_pairs ? r->ties.agreement : NAN);
		t4r_jb_key(&st, "z");
		t4r_jb_float(&st, r->ties.repeated_pairs ? r->ties.z : NAN);
		t4r_jb_key(&st, "both_trained");
		t4r_jb_bool(&st, r->ties_searched);
		t4r_jb_key(&st, "tie_shuffle");
		t4r_jb_bool(&st, b->opts.cfg.tie_shuffle != 0);
		(void) t4r_jb_end(&st, WJB_END_OBJECT);
	}
	t4r_jb_key(&st, "threads");
	t4r_jb_int(&st, r->threads);
	t4r_jb_key(&st, "seconds");
	t4r_jb_float(&st, now_s() - r->t0);
	if (r->search)
	{
		t4r_jb_key(&st, "search");
		t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
		t4r_jb_key(&st, "spec");
		t4r_jb_jsonb(&st, r->plan.spec);
		t4r_jb_key(&st, "mode");
		t4r_jb_str(&st, r->plan.random ? "random" : r->plan.points ? "list" : "grid");
		t4r_jb_key(&st, "grid_size");
		t4r_jb_float(&st, r->plan.grid_size);
		t4r_jb_key(&st, "trials");
		t4r_jb_int(&st, r->n_trials);
		t4r_jb_key(&st, "kept_trial");
		t4r_jb_int(&st, r->best_trial + 1);
		(void) t4r_jb_end(&st, WJB_END_OBJECT);
	}
	return t4r_jb_end(&st, WJB_END_OBJECT);
}

/*
 * history: the epochs of the training; for a search one object per trial
 * {"trial", "options" (the searched values), "valid" {hr@10, ndcg@10,
 * mrr@10}, "best_epoch", "epochs_run", "seconds", "kept", "epochs" [...]}
 * (validation only: a search never looks at the test split), with "error"
 * and null metrics for a trial that diverged.
 */
static Jsonb *
train_history(TrainRun *r)
{
	JsonbParseState *st = NULL;

	if (!r->search)
	{
		push_epochs(&st, &r->trials[0].st);
		return t4r_jb_end(&st, WJB_END_ARRAY);
	}
	t4r_jb_begin(&st, WJB_BEGIN_ARRAY);
	for (int t = 0; t < r->n_trials; t++)
	{
		const TrainTrial *tr = &r->trials[t];
		bool		ok = tr->failed == NULL;

		t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
		t4r_jb_key(&st, "trial");
		t4r_jb_int(&st, t + 1);
		t4r_jb_key(&st, "options");
		t4r_jb_jsonb(&st, tr->values);
		push_metrics(&st, "valid", ok ? tr->vhr : NAN, ok ? tr->vndcg : NAN, ok ? tr->vmrr : NAN);
		t4r_jb_key(&st, "best_epoch");
		t4r_jb_int(&st, tr->fres.best_epoch);
		t4r_jb_key(&st, "epochs_run");
		t4r_jb_int(&st, tr->st.n_hist);
		t4r_jb_key(&st, "seconds");
		t4r_jb_float(&st, tr->seconds);
		t4r_jb_key(&st, "kept");
		t4r_jb_bool(&st, t == r->best_trial);
		if (!ok)
		{
			t4r_jb_key(&st, "error");
			t4r_jb_str(&st, tr->failed);
		}
		t4r_jb_key(&st, "epochs");
		push_epochs(&st, &tr->st);
		(void) t4r_jb_end(&st, WJB_END_ARRAY);
		(void) t4r_jb_end(&st, WJB_END_OBJECT);
	}
	return t4r_jb_end(&st, WJB_END_ARRAY);
}

static void
train_save(TrainRun *r)
{
	TrainTrial *b = &r->trials[r->best_trial];
	T4rTrainOptions *o = &b->opts;
	const t4r_dataset *ds = r->ds;
	int			V = ds->n_items;
	size_t		len = 0;
	T4rNewVersion nv;
	char		err[512] = "";
	int			rc;

	t4r_pg_progress_phase(T4R_PHASE_SAVING);

	/*
	 * Never store a model with a NaN or infinite metric or weight: with
	 * "deploy": "always" it would replace the current version, and with
	 * "if_better" a NaN validation NDCG@10 compares as neither better nor
	 * worse.  t4r_fit already stops a training that diverges
	 * (T4R_ENONFINITE); this makes it impossible whatever the path.  The
	 * ERROR rolls back: nothing is stored.
	 */
	if (!isfinite(b->vhr) || !isfinite(b->vndcg) || !isfinite(b->vmrr) ||
		!isfinite(b->thr) || !isfinite(b->tndcg) || !isfinite(b->tmrr))
		t4r_pg_core_error(T4R_ENONFINITE, "training failed",
						  "the validation or test metrics of the trained model are not finite");
	if ((rc = t4r_model_check_finite(r->best, err, sizeof(err))) != T4R_OK)
		t4r_pg_core_error(rc, "training failed", err);

	rc = t4r_safetensors_write(r->best, &r->wbuf, &len);
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "serialising the model", NULL);

	/* the robust time path's gap scale fitted on this data */
	o->cfg.time_scale = r->best->cfg.time_scale;

	memset(&nv, 0, sizeof(nv));
	nv.model_name = r->model_name;
	nv.source_schema = get_namespace_name(get_rel_namespace(r->relid));
	nv.source_table = get_rel_name(r->relid);
	nv.user_column = r->user_col;
	nv.item_column = r->item_col;
	nv.time_column = r->time_col;
	nv.order_column = o->order_column;
	nv.config = t4r_pg_options_json(o);
	nv.item_ids = ds->item_ids;
	nv.user_type = r->in.user_type;
	nv.item_type = r->in.item_type;
	if (r->in.item_dict)
	{
		/* rows are in code order, codes in key order (ids.h) */
		nv.item_keys = palloc(sizeof(char *) * V);
		nv.item_keys[0] = NULL;
		for (int i = 1; i < V; i++)
			nv.item_keys[i] = (char *) t4r_keydict_key(r->in.item_dict, ds->item_ids[i], NULL);
	}
	nv.item_counts = ds->item_count;
	nv.n_items = V;
	nv.metrics = train_metrics(r, b);
	nv.history = train_history(r);
	nv.weights = r->wbuf;
	nv.weights_len = len;
	nv.deploy = o->deploy;
	nv.valid_ndcg10 = b->vndcg;
	nv.parent_model = r->parent_name;
	nv.parent_version = r->parent_version;
	r->res.version = t4r_pg_catalog_insert(&nv, &r->res.deployed);

	r->res.train_samples = (int64) b->fres.train_samples;
	r->res.epochs_run = b->fres.epochs_run;
	r->res.best_epoch = b->fres.best_epoch;
	r->res.vhr = b->vhr;
	r->res.vndcg = b->vndcg;
	r->res.vmrr = b->vmrr;
	r->res.thr = b->thr;
	r->res.tndcg = b->tndcg;
	r->res.tmrr = b->tmrr;
}

/* ------------------------------------------------------------------ */
/* the trials: one, or every trial of a search                          */
/* ------------------------------------------------------------------ */
static void
train_trials(TrainRun *r)
{
	for (int t = 0; t < r->n_trials; t++)
	{
		TrainTrial *tr = &r->trials[t];
		double		t1 = now_s();

		tr->st.prefix = "";
		if (r->search)
		{
			tr->st.prefix = psprintf("trial %d/%d: ", t + 1, r->n_trials);
			t4r_pg_progress_trial(t + 1, r->n_trials, tr->opts.cfg.epochs);
		}
		if (train_fit(r, tr))
		{
			/* refit: the test metrics are those of the refitted model */
			train_evaluate(r, tr, r->model, true, !tr->opts.cfg.refit);
			train_keep(r, t);
		}
		tr->seconds = now_s() - t1;
		if (r->search)
		{
			if (tr->failed)
				ereport(NOTICE,
						(errmsg("trial %d/%d %s failed: %s", t + 1, r->n_trials,
								JsonbToCString(NULL, &tr->values->root, VARSIZE(tr->values)),
								tr->failed)));
			else
				ereport(NOTICE,
						(errmsg("trial %d/%d %s: validation NDCG@10 %.4f at epoch %d%s",
								t + 1, r->n_trials,
								JsonbToCString(NULL, &tr->values->root, VARSIZE(tr->values)),
								tr->vndcg, tr->fres.best_epoch,
								r->best_trial == t ? " (best so far)" : "")));
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (r->best_trial < 0)
		t4r_pg_core_error(T4R_ENONFINITE, "training failed",
						  psprintf("every trial of the search diverged; the first: %s",
								   r->trials[0].failed));
	/* refit: only the kept trial (a search chooses on validation alone) */
	if (r->trials[r->best_trial].opts.cfg.refit)
	{
		TrainTrial *b = &r->trials[r->best_trial];

		train_refit(r, b, r->best);
		train_evaluate(r, b, r->best, false, true);
	}
}

/* ------------------------------------------------------------------ */
/* tim4rec_train                                                       */
/* ------------------------------------------------------------------ */
Datum
tim4rec_train(PG_FUNCTION_ARGS)
{
	TrainRun   *r = palloc0(sizeof(TrainRun));

	r->t0 = now_s();
	r->best_trial = -1;
	train_args(fcinfo, r);
	t4r_pg_progress_start(r->relid, r->trials[0].opts.cfg.epochs);
	train_read(r);
	PG_TRY();
	{
		train_dataset(r);
		train_ties(r);
		train_budget(r);
		train_trials(r);
		train_save(r);
	}
	PG_FINALLY();
	{
		/* a parent still pinned is released at the end of the transaction */
		t4r_pg_device_close(&r->dev);
		if (r->model)
			t4r_model_free(r->model);
		if (r->best)
			t4r_model_free(r->best);
		if (r->ds)
			t4r_dataset_free(r->ds);
		if (r->fitds)
			t4r_dataset_free(r->fitds);
		r->fitds = NULL;
		free(r->wbuf);
		r->model = r->best = NULL;
		r->ds = NULL;
		r->wbuf = NULL;
	}
	PG_END_TRY();
	t4r_pg_progress_end();

	if (!r->res.deployed)
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d was not deployed: its validation NDCG@10 does not beat the current version's",
						r->model_name, r->res.version)));

	/* ---- the result row ---- */
	{
		ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
		Datum		vals[15];
		bool		nulls[15] = {0};

		InitMaterializedSRF(fcinfo, 0);
		vals[0] = CStringGetTextDatum(r->model_name);
		vals[1] = Int32GetDatum(r->res.version);
		vals[2] = Int64GetDatum(r->res.n_users);
		vals[3] = Int64GetDatum(r->res.n_items);
		vals[4] = Int64GetDatum(r->res.n_inter);
		vals[5] = Int64GetDatum(r->res.train_samples);
		vals[6] = Int32GetDatum(r->res.epochs_run);
		vals[7] = Int32GetDatum(r->res.best_epoch);
		vals[8] = Float8GetDatum(r->res.vhr);
		vals[9] = Float8GetDatum(r->res.vndcg);
		vals[10] = Float8GetDatum(r->res.vmrr);
		vals[11] = Float8GetDatum(r->res.thr);
		vals[12] = Float8GetDatum(r->res.tndcg);
		vals[13] = Float8GetDatum(r->res.tmrr);
		vals[14] = Float8GetDatum(now_s() - r->t0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, vals, nulls);
	}
	return (Datum) 0;
}

/* ------------------------------------------------------------------ */
/* tim4rec_tie_order: the test of tie_shuffle "auto", before training  */
/* ------------------------------------------------------------------ */
/*
 * Reads and filters the relation as tim4rec_train would with these options
 * (order_column, min_user_interactions, min_item_interactions), then tests
 * the order of equal timestamps in the training parts (src/core/tieorder.c):
 * one row of what metrics.tie_order would report and what "auto" would do.
 */
Datum
tim4rec_tie_order(PG_FUNCTION_ARGS)
{
	TrainRun   *r = palloc0(sizeof(TrainRun));
	t4r_tie_stats s;
	int			rc = T4R_OK;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %s of tim4rec_tie_order must not be NULL",
							i == 0 ? "relation" : i == 1 ? "user_column" :
							i == 2 ? "item_column" : "time_column")));
	r->t0 = now_s();
	r->relid = PG_GETARG_OID(0);
	r->user_col = NameStr(*PG_GETARG_NAME(1));
	r->item_col = NameStr(*PG_GETARG_NAME(2));
	r->time_col = NameStr(*PG_GETARG_NAME(3));
	r->n_trials = 1;
	r->trials = palloc0(sizeof(TrainTrial));
	r->uopts = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	t4r_pg_parse_options(r->uopts, &r->trials[0].opts, "options");
	train_read(r);
	PG_TRY();
	{
		train_dataset(r);
		rc = t4r_tie_order_test(r->ds, &s);
	}
	PG_FINALLY();
	{
		if (r->ds)
			t4r_dataset_free(r->ds);
		r->ds = NULL;
	}
	PG_END_TRY();
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "testing the order of equal timestamps", NULL);

	{
		ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
		Datum		vals[7];
		bool		nulls[7] = {0};

		InitMaterializedSRF(fcinfo, 0);
		vals[0] = Int64GetDatum(s.tied_pairs);
		vals[1] = Int64GetDatum(s.repeated_pairs);
		vals[2] = Float8GetDatum(s.agreement);
		vals[3] = Float8GetDatum(s.z);
		nulls[2] = nulls[3] = s.repeated_pairs == 0;
		vals[4] = CStringGetTextDatum(s.by_item_id ? "item id" : "order_column");
		vals[5] = BoolGetDatum(s.consistent != 0);
		vals[6] = CStringGetTextDatum(s.tied_pairs == 0 ? "nothing to shuffle" :
									  !s.consistent ? "shuffled ties" :
									  ties_wd0(&r->trials[0].opts, r->uopts) ?
									  "three trials (shuffled ties, the table's order, and it with weight_decay 0), the best on validation" :
									  s.consistent ? "both forms, the better on validation" :
									  "shuffled ties");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, vals, nulls);
	}
	return (Datum) 0;
}
