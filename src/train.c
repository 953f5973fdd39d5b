/*
 * train.c - tim4rec_train: read the interactions, build the dataset (5-core
 * filter, leave-one-out), check the memory budget, fit with early stopping,
 * evaluate, and store the new version in the catalog, all in the caller's
 * transaction with the caller's privileges.
 *
 * Core memory (dataset, model, serialised weights) is malloc'd; it is freed
 * in PG_FINALLY so that errors and cancellation leak nothing.  The core calls
 * t4r_pg_interrupt between micro-batches on this (the backend's) thread; it only
 * reads the pending-interrupt flags, and after the core returns
 * T4R_ECANCELLED and everything is freed, CHECK_FOR_INTERRUPTS() raises the
 * cancel (statement_timeout, pg_cancel_backend, termination).
 */
#include "tim4rec_pg.h"
#include "ids.h"

#include <math.h>
#include <sys/time.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(tim4rec_train);

#define EXTRA_KEYS "threads, min_user_interactions, min_item_interactions, deploy, order_column, device, init_from"

/* ------------------------------------------------------------------ */
/* options                                                             */
/* ------------------------------------------------------------------ */
static char *
valid_keys_hint(void)
{
	return psprintf("Valid keys: %s, %s.", t4r_config_keys_joined(), EXTRA_KEYS);
}

static void
bad_option(const char *argname, const char *key, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for %s key \"%s\"", argname, key),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("%s", valid_keys_hint())));
}

/* text form of a scalar jsonb value (numbers, booleans, strings) */
static char *
scalar_text(JsonbValue *v, const char *argname, const char *key)
{
	switch (v->type)
	{
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		default:
			bad_option(argname, key, "Values must be numbers, booleans or strings.");
	}
	return NULL;
}

static int
int_option(const char *text, const char *argname, const char *key, long lo, long hi)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
		bad_option(argname, key,
				   psprintf("\"%s\" is not an integer between %ld and %ld.", text, lo, hi));
	return (int) v;
}

void
t4r_pg_parse_options(Jsonb *opts, T4rTrainOptions *o, const char *argname)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	char		err[512];

	memset(o, 0, sizeof(*o));
	t4r_config_preset(&o->cfg, NULL);
	o->min_user = 5;
	o->min_item = 5;
	o->deploy = 1;
	strlcpy(o->device, t4r_pg_device_name(tim4rec_device), sizeof(o->device));
	if (opts == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(opts) || JB_ROOT_IS_SCALAR(opts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", argname),
				 errhint("%s", valid_keys_hint())));

	/* pass 0: "preset" (resets every model/training key); pass 1: the rest */
	for (int pass = 0; pass < 2; pass++)
	{
		it = JsonbIteratorInit(&opts->root);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key,
					   *val;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			tok = JsonbIteratorNext(&it, &v, true);
			if ((strcmp(key, "preset") == 0) != (pass == 0))
				continue;
			if (v.type == jbvNull)
				bad_option(argname, key, "Values must not be null.");
			val = scalar_text(&v, argname, key);

			if (strcmp(key, "threads") == 0)
				o->threads = int_option(val, argname, key, 0, 64);
			else if (strcmp(key, "min_user_interactions") == 0)
				o->min_user = int_option(val, argname, key, 1, INT_MAX);
			else if (strcmp(key, "min_item_interactions") == 0)
				o->min_item = int_option(val, argname, key, 1, INT_MAX);
			else if (strcmp(key, "deploy") == 0)
			{
				if (strcmp(val, "always") == 0)
					o->deploy = 1;
				else if (strcmp(val, "if_better") == 0)
					o->deploy = 2;
				else
					bad_option(argname, key, "deploy is 'always' or 'if_better'.");
			}
			else if (strcmp(key, "order_column") == 0)
			{
				if (v.type != jbvString || val[0] == '\0' || strlen(val) >= NAMEDATALEN)
					bad_option(argname, key, "order_column is the name of an integer column.");
				o->order_column = val;
			}
			else if (strcmp(key, "device") == 0)
			{
				if (strcmp(val, "cpu") != 0 && strcmp(val, "cuda") != 0 && strcmp(val, "auto") != 0)
					bad_option(argname, key, "device is 'cpu', 'cuda' or 'auto'.");
				strlcpy(o->device, val, sizeof(o->device));
			}
			else
			{
				int			nitems = o->cfg.n_items;
				bool		known = false;

				for (const char *const *kk = t4r_config_keys(); *kk; kk++)
					if (strcmp(*kk, key) == 0)
						known = true;
				if (!known)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unknown %s key \"%s\"", argname, key),
							 errhint("%s", valid_keys_hint())));
				err[0] = '\0';
				if (t4r_config_set(&o->cfg, key, val, err, sizeof(err)) != T4R_OK)
					bad_option(argname, key, err[0] ? err : NULL);
				o->cfg.n_items = nitems;
			}
		}
	}
	if (o->cfg.training == T4R_TRAIN_ALL_POSITIONS && o->cfg.is_time &&
		o->cfg.time_features != T4R_TIME_ROBUST)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: training \"all_positions\" needs a causal model", argname),
				 errdetail("The official time features mix all positions of a sequence (a layer norm and an L x L MLP over them), so every prefix must be its own sample."),
				 errhint("Set \"time_features\": \"robust\" (a causal time path), or use \"training\": \"prefixes\".")));
	err[0] = '\0';
	if (t4r_config_validate(&o->cfg, err, sizeof(err)) != T4R_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: %s", argname, err),
				 errhint("%s", valid_keys_hint())));
}

char *
t4r_pg_options_json(const T4rTrainOptions *o)
{
	char	   *core = t4r_config_to_json(&o->cfg);
	StringInfoData s;
	size_t		len;

	if (core == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not serialise the configuration")));
	initStringInfo(&s);
	len = strlen(core);
	while (len > 0 && core[len - 1] != '}')
		len--;
	appendBinaryStringInfo(&s, core, len > 0 ? len - 1 : 0);
	free(core);
	appendStringInfo(&s, ", \"learning_rate\": %s, \"batch_size\": %d, \"epochs\": %d, "
					 "\"patience\": %d, \"seed\": " UINT64_FORMAT ", "
					 "\"min_user_interactions\": %d, \"min_item_interactions\": %d, "
					 "\"deploy\": \"%s\", \"device\": \"%s\"",
					 float8out_internal(o->cfg.learning_rate), o->cfg.batch_size, o->cfg.epochs,
					 o->cfg.patience, (uint64) o->cfg.seed, o->min_user, o->min_item,
					 o->deploy == 2 ? "if_better" : "always", o->device);
	if (o->cfg.training == T4R_TRAIN_ALL_POSITIONS)
		appendStringInfoString(&s, ", \"training\": \"all_positions\"");
	if (o->threads > 0)
		appendStringInfo(&s, ", \"threads\": %d", o->threads);
	if (o->order_column)
	{
		appendStringInfoString(&s, ", \"order_column\": ");
		escape_json(&s, o->order_column);
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

/* ------------------------------------------------------------------ */
/* warm start ("init_from")                                            */
/* ------------------------------------------------------------------ */
/*
 * options->init_from: "name" (the current version) or {"model": "name",
 * "version": n}.  On return *name and *version (0 = current); false when
 * the key is absent.
 */
static bool
init_from_option(Jsonb *opts, char **name, int32 *version)
{
	JsonbValue *v;
	const char *usage = "init_from is a model name or {\"model\": name, \"version\": n}.";

	*name = NULL;
	*version = 0;
	if (opts == NULL || !JB_ROOT_IS_OBJECT(opts) || JB_ROOT_IS_SCALAR(opts))
		return false;
	v = getKeyJsonValueFromContainer(&opts->root, "init_from", strlen("init_from"), NULL);
	if (v == NULL)
		return false;
	if (v->type == jbvString)
		*name = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	k,
					x;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &x, true);
			if (strcmp(key, "model") == 0 && x.type == jbvString)
				*name = pnstrdup(x.val.string.val, x.val.string.len);
			else if (strcmp(key, "version") == 0 && x.type == jbvNumeric)
				*version = int_option(DatumGetCString(DirectFunctionCall1(numeric_out,
																		   NumericGetDatum(x.val.numeric))),
									  "options", "init_from", 1, INT_MAX);
			else if (strcmp(key, "version") == 0 && x.type == jbvNull)
				*version = 0;
			else
				bad_option("options", "init_from", usage);
		}
	}
	else
		bad_option("options", "init_from", usage);
	if (*name == NULL || (*name)[0] == '\0' || strlen(*name) >= NAMEDATALEN)
		bad_option("options", "init_from", usage);
	return true;
}

/*
 * The options of a warm start: the parent's stored options (all but the
 * per-call keys deploy, device and threads), then the caller's, without
 * init_from.  A "preset" other than the parent's would reset the parent's
 * keys: refused.
 */
static Jsonb *
warm_options(Jsonb *parent_cfg, Jsonb *user)
{
	Datum		p = JsonbPGetDatum(parent_cfg);
	Datum		u = JsonbPGetDatum(user);
	JsonbValue *up = getKeyJsonValueFromContainer(&user->root, "preset", strlen("preset"), NULL);

	if (up != NULL)
	{
		JsonbValue *pp = getKeyJsonValueFromContainer(&parent_cfg->root, "preset", strlen("preset"), NULL);

		/* the parent's own preset changes nothing; another one would reset
		 * the parent's keys */
		if (up->type != jbvString || pp == NULL || pp->type != jbvString ||
			up->val.string.len != pp->val.string.len ||
			memcmp(up->val.string.val, pp->val.string.val, up->val.string.len) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"preset\" differs from the parent's preset"),
					 errdetail("A warm start takes every option the call does not set from the parent version%s%.*s%s.",
							   pp && pp->type == jbvString ? " (preset \"" : "",
							   pp && pp->type == jbvString ? pp->val.string.len : 0,
							   pp && pp->type == jbvString ? pp->val.string.val : "",
							   pp && pp->type == jbvString ? "\")" : ""),
					 errhint("Leave \"preset\" out with init_from and set single keys (e.g. \"patience\").")));
	}
	p = DirectFunctionCall2(jsonb_delete, p, CStringGetTextDatum("deploy"));
	p = DirectFunctionCall2(jsonb_delete, p, CStringGetTextDatum("device"));
	p = DirectFunctionCall2(jsonb_delete, p, CStringGetTextDatum("threads"));
	u = DirectFunctionCall2(jsonb_delete, u, CStringGetTextDatum("init_from"));
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, p, u));
}

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
typedef struct TrainState
{
	int			max_epochs;
	int			n_hist;
	t4r_epoch_info *hist;		/* [max_epochs] */
	double		t_start;
} TrainState;

static double
now_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

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
			(errmsg("epoch %d/%d: loss %.4f, validation NDCG@10 %.4f (best %.4f at epoch %d), %.1f s, at most %.0f s left",
					info->epoch, st->max_epochs, info->loss, info->valid_ndcg10,
					info->best_ndcg10, info->best_epoch, info->seconds, ceil(left))));
}

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */
static char *
bytes_text(double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		return psprintf("%.1f GB", b / (1024.0 * 1024 * 1024));
	return psprintf("%.0f MB", ceil(b / (1024.0 * 1024)));
}

/* a JSON number, null when not finite */
static char *
jnum(double v)
{
	return isfinite(v) ? float8out_internal(v) : pstrdup("null");
}

static void
metric_json(StringInfo s, const char *split, double hr, double ndcg, double mrr)
{
	appendStringInfo(s, "\"%s\": {\"hr@10\": %s, \"ndcg@10\": %s, \"mrr@10\": %s}", split,
					 jnum(hr), jnum(ndcg), jnum(mrr));
}

/* ------------------------------------------------------------------ */
/* tim4rec_train                                                       */
/* ------------------------------------------------------------------ */
Datum
tim4rec_train(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid;
	char	   *model_name;
	char	   *user_col,
			   *item_col,
			   *time_col;
	T4rTrainOptions opts;
	T4rInteractions in;
	t4r_dataset *volatile ds = NULL;
	t4r_model  *volatile model = NULL;
	uint8_t    *volatile wbuf = NULL;
	TrainState	st;
	t4r_fit_result fres;
	double		t0 = now_s();
	double		vhr = 0,
				vndcg = 0,
				vmrr = 0,
				thr = 0,
				tndcg = 0,
				tmrr = 0;
	volatile int32 version = 0;
	bool		deployed = false;
	int			threads;
	bool		use_cuda;
	T4rDevice	dev;
	char		err[512] = "";
	volatile int64 n_users = 0,
				n_items = 0,
				n_inter = 0;
	char	   *volatile parent_name = NULL;
	int32		parent_version = 0;
	T4rLoadedModel *volatile parent = NULL;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %s of tim4rec_train must not be NULL",
							i == 0 ? "relation" : i == 1 ? "model_name" : i == 2 ? "user_column" :
							i == 3 ? "item_column" : "time_column")));
	relid = PG_GETARG_OID(0);
	model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	user_col = NameStr(*PG_GETARG_NAME(2));
	item_col = NameStr(*PG_GETARG_NAME(3));
	time_col = NameStr(*PG_GETARG_NAME(4));
	if (model_name[0] == '\0' || strlen(model_name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must be non-empty and at most %d bytes", NAMEDATALEN - 1)));
	{
		Jsonb	   *uopts = PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5);
		char	   *pname = NULL;
		bool		warm = init_from_option(uopts, &pname, &parent_version);

		parent_name = pname;
		if (warm)
		{
			/* READ on the parent (42704 / 42501 from here); pinned until
			 * the end of the call */
			parent = t4r_pg_get_model(parent_name, parent_version, T4R_PRIV_READ);
			parent_version = parent->version;
			uopts = warm_options(t4r_pg_catalog_config(parent_name, parent_version), uopts);
		}
		t4r_pg_parse_options(uopts, &opts, "options");
	}
	if (parent)
	{
		char		diff[512];

		if (t4r_config_shape_diff(&parent->model->cfg, &opts.cfg, diff, sizeof(diff)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options change the shape of the weights of model \"%s\" version %d",
							parent_name, parent_version),
					 errdetail("A warm start keeps the parent's shapes; these options differ: %s.", diff),
					 errhint("Leave these keys out (init_from takes them from the parent), or train without init_from to change them.")));
	}

	use_cuda = t4r_pg_use_cuda_for(opts.device, "training", &opts.cfg);
	strlcpy(opts.device, use_cuda ? "cuda" : "cpu", sizeof(opts.device));
	threads = opts.threads > 0 ? opts.threads : t4r_pg_threads();
	opts.threads = threads;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tim4rec_train must be called in a context that accepts a set")));

	/* fail now rather than after the training */
	PreventCommandIfReadOnly("tim4rec_train()");
	PreventCommandDuringRecovery("tim4rec_train()");
	t4r_pg_check_model_writable(model_name);
	t4r_pg_progress_start(relid, opts.cfg.epochs);

	/* ---- read ---- */
	t4r_pg_read_interactions(relid, user_col, item_col, time_col, opts.order_column, &in);
	if (parent)
		warm_check_item_type(parent, &in, item_col);
	t4r_pg_progress_rows((int64) in.n);
	elog(DEBUG1, "tim4rec: read %zu interactions in %.3f s", in.n, now_s() - t0);
	if (in.n_null > 0)
		ereport(NOTICE,
				(errmsg("skipped %zu rows with a NULL %s", in.n_null,
						opts.order_column ? "user, item, time or order value" : "user, item or time")));
	if (in.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation \"%s\" has no interactions to train on", get_rel_name(relid))));

	/* building the dataset needs the raw rows plus about 64 bytes a row
	 * (indexes, filters, the compact sequences): check before it starts */
	{
		double		raw = (double) in.n * (3 + (in.order ? 1 : 0)) * sizeof(int64);
		double		build = raw + (double) in.n * 64;

		if (build > (double) tim4rec_memory_budget_mb * 1024 * 1024)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("training needs more memory than tim4rec.memory_budget allows"),
					 errdetail("Building the training data from %zu interactions needs about %s; the budget is %d MB.",
							   in.n, bytes_text(build), tim4rec_memory_budget_mb),
					 errhint("Raise tim4rec.memory_budget (e.g. SET tim4rec.memory_budget = '4GB') or train on fewer rows.")));
	}

	memset(&fres, 0, sizeof(fres));
	memset(&st, 0, sizeof(st));
	memset(&dev, 0, sizeof(dev));
	PG_TRY();
	{
		int			rc;
		t4r_dataset *d = NULL;
		t4r_model  *m = NULL;
		size_t		budget = (size_t) tim4rec_memory_budget_mb * 1024 * 1024;
		size_t		used,
					need = 0;
		int			mb = 0;
		t4r_layout	lay;
		t4r_fit_opts fo;
		int			V;

		/* ---- dataset ---- */
		t4r_pg_progress_phase(T4R_PHASE_BUILDING);
		rc = t4r_dataset_build_ex(in.users, in.items, in.ts, in.order, in.n,
								  opts.min_user, opts.min_item, t4r_pg_interrupt, NULL,
								  &d, err, sizeof(err));
		ds = d;
		pfree(in.users);
		pfree(in.items);
		pfree(in.ts);
		if (in.order)
			pfree(in.order);
		if (rc == T4R_ECANCELLED)
			CHECK_FOR_INTERRUPTS();
		if (rc == T4R_EDATA || (rc == T4R_OK && (ds->n_users == 0 || ds->n_items < 2)))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("too little data to train on after filtering"),
					 errdetail("%s", err[0] ? err : "No user and item pass the filters."),
					 errhint("Every user needs at least 4 interactions; lower min_user_interactions / min_item_interactions (now %d / %d) or add data.",
							 opts.min_user, opts.min_item)));
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "building the training data", err);
		V = ds->n_items;
		n_users = ds->n_users;
		n_items = V - 1;
		n_inter = (int64) ds->n_interactions;
		CHECK_FOR_INTERRUPTS();

		/* ---- memory estimate, before the model exists ---- */
		opts.cfg.n_items = V;
		err[0] = '\0';
		if ((rc = t4r_config_validate(&opts.cfg, err, sizeof(err))) != T4R_OK)
			t4r_pg_core_error(rc, "invalid options", err);
		if ((rc = t4r_layout_build(&opts.cfg, &lay)) != T4R_OK)
			t4r_pg_core_error(rc, "invalid options", NULL);
		used = ds->n_interactions * (sizeof(int32_t) + sizeof(double)) +
			(size_t) V * (2 * sizeof(int64_t)) +
			(size_t) ds->n_users * (3 * sizeof(int64_t)) +
			2 * lay.total * sizeof(t4r_real) +			/* model + best weights */
			/* the sample order: 4 bytes a target, or (all_positions) 12
			 * bytes a window, at most one window a target */
			(size_t) ds->n_train_samples *
			(opts.cfg.training == T4R_TRAIN_ALL_POSITIONS ? 12 : sizeof(uint32_t)) +
			(size_t) opts.cfg.batch_size * sizeof(t4r_sample) +
			(size_t) threads * V * sizeof(t4r_real) * 2 +	/* evaluation scores */
			lay.total * sizeof(float) + 4096 * 1024;	/* serialised weights */
		t4r_layout_free(&lay);
		memset(&fo, 0, sizeof(fo));
		fo.train.threads = threads;
		fo.train.mem_budget = used < budget ? budget - used : 1;
		/* on the GPU the trainer's buffers are device memory */
		rc = use_cuda ? T4R_OK : t4r_trainer_estimate(&opts.cfg, &fo.train, &need, &mb);
		if (rc == T4R_EBUDGET || used >= budget)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("training needs more memory than tim4rec.memory_budget allows"),
					 errdetail("The data and model need about %s and the trainer at least %s; the budget is %d MB.",
							   bytes_text((double) used), bytes_text((double) need),
							   tim4rec_memory_budget_mb),
					 errhint("Raise tim4rec.memory_budget (e.g. SET tim4rec.memory_budget = '4GB') or use smaller batch_size, max_seq_len or hidden_size.")));
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "estimating the training memory", NULL);

		/* ---- model ---- */
		err[0] = '\0';
		rc = t4r_model_create(&opts.cfg, &m, err, sizeof(err));
		model = m;
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "creating the model", err);
		t4r_model_init(model, opts.cfg.seed);
		if (parent)
		{
			/* warm start: the parent's weights over the fresh initialisation
			 * (new items keep theirs); before the GPU copy is made */
			int64		known;
			int32_t    *map = warm_row_map(parent, &in, ds, &known);

			err[0] = '\0';
			rc = t4r_model_warm_start(model, parent->model, map, err, sizeof(err));
			pfree(map);
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "warm start", err);
			ereport(NOTICE,
					(errmsg("warm start from model \"%s\" version %d: " INT64_FORMAT " known items, " INT64_FORMAT " new, " INT64_FORMAT " dropped",
							parent_name, parent_version, known, (int64) (V - 1) - known,
							(int64) (parent->model->cfg.n_items - 1) - known)));
			t4r_pg_release_model(parent);
			parent = NULL;
		}
		if (use_cuda)
		{
			t4r_pg_device_open(&dev, model, true);
			fo.backend = t4r_pg_device_backend(&dev);
			elog(DEBUG1, "tim4rec: training on the GPU, %zu bytes of device memory",
				 t4r_pg_device_bytes(&dev));
		}

		/* ---- fit ---- */
		t4r_pg_progress_phase(T4R_PHASE_TRAINING);
		st.max_epochs = opts.cfg.epochs;
		st.hist = palloc0(sizeof(t4r_epoch_info) * (st.max_epochs > 0 ? st.max_epochs : 1));
		st.t_start = now_s();
		fo.train.interrupt = t4r_pg_interrupt;
		fo.progress = progress_cb;
		fo.epoch_done = epoch_cb;
		fo.ud = &st;
		err[0] = '\0';
		rc = t4r_fit(model, ds, &fo, &fres, err, sizeof(err));
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
							 opts.min_user, opts.min_item)));
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "training failed", err);

		/* ---- evaluate ---- */
		t4r_pg_progress_phase(T4R_PHASE_EVALUATING);
		{
			const int	k10 = 10;

			/* the host holds the best epoch's weights, the GPU the last's */
			t4r_pg_device_sync_from_host(&dev);
			rc = t4r_evaluate_backend(model, ds, T4R_SPLIT_VALID, &k10, 1, threads, t4r_pg_interrupt, NULL,
									  t4r_pg_device_backend(&dev), &vhr, &vndcg, &vmrr);
			if (rc == T4R_OK)
				rc = t4r_evaluate_backend(model, ds, T4R_SPLIT_TEST, &k10, 1, threads, t4r_pg_interrupt, NULL,
										  t4r_pg_device_backend(&dev), &thr, &tndcg, &tmrr);
			t4r_pg_device_close(&dev);
			if (rc == T4R_ECANCELLED)
				CHECK_FOR_INTERRUPTS();
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "evaluating the model", NULL);
		}

		/* ---- save ---- */
		t4r_pg_progress_phase(T4R_PHASE_SAVING);
		{
			uint8_t    *b = NULL;
			size_t		len = 0;
			T4rNewVersion nv;
			StringInfoData metrics,
						hist;
			Oid			nsp = get_rel_namespace(relid);

			/*
			 * Never store a model with a NaN or infinite metric or weight:
			 * with "deploy": "always" it would replace the current version,
			 * and with "if_better" a NaN validation NDCG@10 compares as
			 * neither better nor worse.  t4r_fit already stops a training
			 * that diverges (T4R_ENONFINITE); this makes it impossible
			 * whatever the path.  The ERROR rolls back: nothing is stored.
			 */
			if (!isfinite(vhr) || !isfinite(vndcg) || !isfinite(vmrr) ||
				!isfinite(thr) || !isfinite(tndcg) || !isfinite(tmrr))
				t4r_pg_core_error(T4R_ENONFINITE, "training failed",
								  "the validation or test metrics of the trained model are not finite");
			err[0] = '\0';
			if ((rc = t4r_model_check_finite(model, err, sizeof(err))) != T4R_OK)
				t4r_pg_core_error(rc, "training failed", err);

			rc = t4r_safetensors_write(model, &b, &len);
			wbuf = b;
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "serialising the model", NULL);

			/* the robust time path's gap scale fitted on this data */
			opts.cfg.time_scale = model->cfg.time_scale;
			initStringInfo(&metrics);
			appendStringInfoChar(&metrics, '{');
			metric_json(&metrics, "valid", vhr, vndcg, vmrr);
			appendStringInfoString(&metrics, ", ");
			metric_json(&metrics, "test", thr, tndcg, tmrr);
			appendStringInfo(&metrics, ", \"users\": " INT64_FORMAT ", \"items\": " INT64_FORMAT
							 ", \"interactions\": " INT64_FORMAT ", \"train_samples\": " INT64_FORMAT
							 ", \"epochs_run\": %d, \"best_epoch\": %d, \"threads\": %d, \"seconds\": %s}",
							 n_users, n_items, n_inter, (int64) fres.train_samples,
							 fres.epochs_run, fres.best_epoch, threads,
							 jnum(now_s() - t0));
			initStringInfo(&hist);
			appendStringInfoChar(&hist, '[');
			for (int i = 0; i < st.n_hist; i++)
				appendStringInfo(&hist, "%s{\"epoch\": %d, \"loss\": %s, \"valid_ndcg10\": %s, \"seconds\": %s}",
								 i ? ", " : "", st.hist[i].epoch,
								 jnum(st.hist[i].loss), jnum(st.hist[i].valid_ndcg10),
								 jnum(st.hist[i].seconds));
			appendStringInfoChar(&hist, ']');

			memset(&nv, 0, sizeof(nv));
			nv.model_name = model_name;
			nv.source_schema = get_namespace_name(nsp);
			nv.source_table = get_rel_name(relid);
			nv.user_column = user_col;
			nv.item_column = item_col;
			nv.time_column = time_col;
			nv.order_column = opts.order_column;
			nv.config_json = t4r_pg_options_json(&opts);
			nv.item_ids = ds->item_ids;
			nv.user_type = in.user_type;
			nv.item_type = in.item_type;
			if (in.item_dict)
			{
				/* rows are in code order, codes in key order (ids.h) */
				nv.item_keys = palloc(sizeof(char *) * V);
				nv.item_keys[0] = NULL;
				for (int r = 1; r < V; r++)
					nv.item_keys[r] = (char *) t4r_keydict_key(in.item_dict, ds->item_ids[r], NULL);
			}
			nv.item_counts = ds->item_count;
			nv.n_items = V;
			nv.metrics_json = metrics.data;
			nv.history_json = hist.data;
			nv.weights = wbuf;
			nv.weights_len = len;
			nv.deploy = opts.deploy;
			nv.valid_ndcg10 = vndcg;
			nv.parent_model = parent_name;
			nv.parent_version = parent_version;
			version = t4r_pg_catalog_insert(&nv, &deployed);
		}
	}
	PG_FINALLY();
	{
		t4r_pg_device_close(&dev);
		if (model)
			t4r_model_free(model);
		if (ds)
			t4r_dataset_free(ds);
		free(wbuf);
	}
	PG_END_TRY();
	t4r_pg_progress_end();

	if (!deployed)
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d was not deployed: its validation NDCG@10 does not beat the current version's",
						model_name, version)));

	/* ---- the result row ---- */
	{
		TupleDesc	tupdesc;
		Tuplestorestate *ts;
		MemoryContext old;
		Datum		vals[15];
		bool		nulls[15] = {0};

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "tim4rec_train: return type must be a row type");
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		tupdesc = CreateTupleDescCopy(tupdesc);
		ts = tuplestore_begin_heap(true, false, work_mem);
		vals[0] = CStringGetTextDatum(model_name);
		vals[1] = Int32GetDatum(version);
		vals[2] = Int64GetDatum(n_users);
		vals[3] = Int64GetDatum(n_items);
		vals[4] = Int64GetDatum(n_inter);
		vals[5] = Int64GetDatum((int64) fres.train_samples);
		vals[6] = Int32GetDatum(fres.epochs_run);
		vals[7] = Int32GetDatum(fres.best_epoch);
		vals[8] = Float8GetDatum(vhr);
		vals[9] = Float8GetDatum(vndcg);
		vals[10] = Float8GetDatum(vmrr);
		vals[11] = Float8GetDatum(thr);
		vals[12] = Float8GetDatum(tndcg);
		vals[13] = Float8GetDatum(tmrr);
		vals[14] = Float8GetDatum(now_s() - t0);
		tuplestore_putvalues(ts, tupdesc, vals, nulls);
		MemoryContextSwitchTo(old);
		rsinfo->returnMode = SFRM_Materialize;
		rsinfo->setResult = ts;
		rsinfo->setDesc = tupdesc;
	}
	return (Datum) 0;
}
