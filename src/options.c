/*
 * options.c - the options jsonb of tim4rec_train and the config of
 * tim4rec_import: parsing into T4rTrainOptions (t4r_pg_parse_options), the
 * stored form (t4r_pg_options_json, built with the jsonb API), the warm
 * start keys (init_from, the parent's options) and the hyper-parameter
 * search ("search", "search_trials": t4r_pg_search_plan).
 *
 * Pure option handling: no catalog access (train.c looks up the parent
 * version and hands its options in), so catalog.c and train.c both use
 * this file and neither calls the other back.
 */
#include "tim4rec_pg.h"

#include <limits.h>
#include <math.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/numeric.h"

#define EXTRA_KEYS "threads, min_user_interactions, min_item_interactions, deploy, order_column, device, init_from, warm_scope, warm_new_items, search, search_trials"

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
	JsonbValue	v;
	char	   *key;
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
		while (t4r_jb_next_pair(&it, &key, &v))
		{
			char	   *val;

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

Jsonb *
t4r_pg_options_json(const T4rTrainOptions *o)
{
	char	   *core = t4r_config_to_json(&o->cfg);
	Jsonb	   *base;
	JsonbParseState *st = NULL;

	if (core == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not serialise the configuration")));
	{
		/* the core's malloc'd text into palloc'd memory before anything can fail */
		size_t		len = strlen(core);
		char	   *txt = palloc_extended(len + 1, MCXT_ALLOC_NO_OOM);

		if (txt)
			memcpy(txt, core, len + 1);
		free(core);
		if (txt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not serialise the configuration")));
		base = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(txt)));
	}

	/* the keys the core does not serialise; they win over the core's */
	t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
	t4r_jb_key(&st, "learning_rate");
	t4r_jb_float(&st, o->cfg.learning_rate);
	t4r_jb_key(&st, "weight_decay");
	t4r_jb_float(&st, o->cfg.weight_decay);
	t4r_jb_key(&st, "lr_decay");
	t4r_jb_float(&st, o->cfg.lr_decay);
	t4r_jb_key(&st, "lr_decay_patience");
	t4r_jb_int(&st, o->cfg.lr_decay_patience);
	t4r_jb_key(&st, "ema_decay");
	t4r_jb_float(&st, o->cfg.ema_decay);
	t4r_jb_key(&st, "label_smoothing");
	t4r_jb_float(&st, o->cfg.label_smoothing);
	t4r_jb_key(&st, "tie_targets");
	t4r_jb_bool(&st, o->cfg.tie_targets != 0);
	t4r_jb_key(&st, "refit");
	t4r_jb_bool(&st, o->cfg.refit != 0);
	t4r_jb_key(&st, "batch_size");
	t4r_jb_int(&st, o->cfg.batch_size);
	t4r_jb_key(&st, "epochs");
	t4r_jb_int(&st, o->cfg.epochs);
	t4r_jb_key(&st, "patience");
	t4r_jb_int(&st, o->cfg.patience);
	t4r_jb_key(&st, "seed");
	t4r_jb_numtext(&st, psprintf(UINT64_FORMAT, (uint64) o->cfg.seed));
	t4r_jb_key(&st, "min_user_interactions");
	t4r_jb_int(&st, o->min_user);
	t4r_jb_key(&st, "min_item_interactions");
	t4r_jb_int(&st, o->min_item);
	t4r_jb_key(&st, "deploy");
	t4r_jb_str(&st, o->deploy == 2 ? "if_better" : "always");
	t4r_jb_key(&st, "device");
	t4r_jb_str(&st, o->device);
	if (o->cfg.training == T4R_TRAIN_ALL_POSITIONS)
	{
		t4r_jb_key(&st, "training");
		t4r_jb_str(&st, "all_positions");
	}
	/* always recorded: the amazon preset's default is true, so a warm
	 * start's child must not take it from the preset */
	t4r_jb_key(&st, "tie_shuffle");
	if (o->cfg.tie_shuffle == T4R_TIE_SHUFFLE_AUTO)
		t4r_jb_str(&st, "auto");
	else
		t4r_jb_bool(&st, o->cfg.tie_shuffle != 0);
	t4r_jb_key(&st, "tie_average");
	t4r_jb_int(&st, o->cfg.tie_average);
	if (o->threads > 0)
	{
		t4r_jb_key(&st, "threads");
		t4r_jb_int(&st, o->threads);
	}
	if (o->order_column)
	{
		t4r_jb_key(&st, "order_column");
		t4r_jb_str(&st, o->order_column);
	}
	return t4r_jb_concat(base, t4r_jb_end(&st, WJB_END_OBJECT));
}

/* ------------------------------------------------------------------ */
/* warm start ("init_from")                                            */
/* ------------------------------------------------------------------ */
/*
 * options->init_from: "name" (the current version) or {"model": "name",
 * "version": n}.  On return *name and *version (0 = current); false when
 * the key is absent.
 */
bool
t4r_pg_init_from_option(Jsonb *opts, char **name, int32 *version)
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
		JsonbValue	x;
		char	   *key;

		while (t4r_jb_next_pair(&it, &key, &x))
		{
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
Jsonb *
t4r_pg_warm_options(Jsonb *parent_cfg, Jsonb *user)
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
 * A per-call string key of a warm start, one of choices (NULL-terminated):
 * its index, or -1 when absent; taken out of the options (never stored in
 * the config, never inherited); ERROR 22023 for another value.
 */
static int
warm_choice_option(Jsonb **opts, const char *key, const char *const *choices,
				   const char *detail)
{
	JsonbValue *v;

	if (*opts == NULL || !JB_ROOT_IS_OBJECT(*opts) || JB_ROOT_IS_SCALAR(*opts))
		return -1;
	v = getKeyJsonValueFromContainer(&(*opts)->root, key, strlen(key), NULL);
	if (v == NULL)
		return -1;
	for (int i = 0; choices[i]; i++)
		if (v->type == jbvString && v->val.string.len == (int) strlen(choices[i]) &&
			memcmp(v->val.string.val, choices[i], v->val.string.len) == 0)
		{
			*opts = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(*opts),
													   CStringGetTextDatum(key)));
			return i;
		}
	bad_option("options", key, detail);
	return -1;					/* not reached */
}

/*
 * options->warm_scope: what a warm start trains and early-stops on.  'all'
 * (the default): every user; 'new': only the users with an interaction newer
 * than the parent version's newest (their whole histories).
 */
int
t4r_pg_warm_scope_option(Jsonb **opts)
{
	static const char *const choices[] = {"all", "new", NULL};

	return warm_choice_option(opts, "warm_scope", choices, "warm_scope is 'all' or 'new'.");
}

/*
 * options->warm_new_items: the embedding rows of a warm start's new items.
 * 'random' (the default): the official initialisation, as a fresh model;
 * 'neighbors': from the rows of the known items next to them in the
 * training histories (t4r_model_warm_new_items).
 */
int
t4r_pg_warm_new_items_option(Jsonb **opts)
{
	static const char *const choices[] = {"random", "neighbors", NULL};

	return warm_choice_option(opts, "warm_new_items", choices,
							  "warm_new_items is 'random' or 'neighbors'.");
}

/* ------------------------------------------------------------------ */
/* serving options of a trained model (tim4rec_set_serving)            */
/* ------------------------------------------------------------------ */
static bool core_key(const char *key);

/*
 * lead, then the core's option keys that keep() accepts, comma-separated,
 * then tail: the key lists of the serving and search hints
 */
static char *
config_key_list(const char *lead, bool (*keep) (const char *key), const char *tail)
{
	StringInfoData s;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfoString(&s, lead);
	for (const char *const *k = t4r_config_keys(); *k; k++)
	{
		if (!keep(*k))
			continue;
		appendStringInfo(&s, "%s%s", first ? "" : ", ", *k);
		first = false;
	}
	appendStringInfoString(&s, tail);
	return s.data;
}

static bool
serving_key(const char *key)
{
	return t4r_config_key_serving(key) != 0;
}

/* "Options a trained model can change: k1, k2. ..." from the core's list */
static const char *
serving_hint(void)
{
	return config_key_list("Options a trained model can change: ", serving_key,
						   ". Train a new version to change the others.");
}

void
t4r_pg_serving_options(Jsonb *opts, t4r_config *cfg)
{
	JsonbIterator *it;
	JsonbValue	v;
	char	   *key;
	char		err[512] = "";

	if (!JB_ROOT_IS_OBJECT(opts) || JB_ROOT_IS_SCALAR(opts) || JB_ROOT_COUNT(opts) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a non-empty JSON object"),
				 errhint("For example '{\"tie_average\": 8}'.")));
	it = JsonbIteratorInit(&opts->root);
	while (t4r_jb_next_pair(&it, &key, &v))
	{
		if (!t4r_config_key_serving(key))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" cannot be changed on a trained model", key),
					 core_key(key) ?
					 errdetail("It changes the weights or the training; only what a model serves can be changed afterwards.") :
					 errdetail("There is no option \"%s\".", key),
					 errhint("%s", serving_hint())));
		if (t4r_config_set(cfg, key, scalar_text(&v, "options", key), err, sizeof(err)) != T4R_OK)
			bad_option("options", key, err);
	}
	if (t4r_config_validate(cfg, err, sizeof(err)) != T4R_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid options: %s", err)));
}

/* ------------------------------------------------------------------ */
/* hyper-parameter search                                              */
/* ------------------------------------------------------------------ */
/*
 * options.search is {key: [values...], ...} over the model and training
 * keys; the trials are the grid of all combinations (keys alphabetically,
 * the last key varying fastest), or, when options.search_trials is below
 * the grid size, that many distinct grid points drawn at random from the
 * options' seed (reproducible).  Or it is a list of points,
 * [{key: value, ...}, ...], tried in the given order (or search_trials of
 * them drawn at random): combinations a grid cannot express.  Every
 * trial's options are the call's options with the trial's values; all are
 * checked before any training.
 */
static bool
search_listed_key(const char *key)
{
	return strcmp(key, "preset") != 0;
}

static const char *
search_hint(void)
{
	return config_key_list("Searchable keys: ", search_listed_key,
						   ". Example: \"search\": {\"learning_rate\": [0.001, 0.003], \"dropout_prob\": [0.2, 0.4]}, \"search_trials\": 4; "
						   "or a list of points: \"search\": [{\"learning_rate\": 0.003}, {\"learning_rate\": 0.001, \"dropout_prob\": 0.4}].");
}

static void
bad_search(const char *msg, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("%s", search_hint())));
}

/* why a key cannot be searched (NULL: it can) */
static const char *
unsearchable(const char *key)
{
	if (strcmp(key, "search") == 0 || strcmp(key, "search_trials") == 0)
		return "A search cannot be nested.";
	if (strcmp(key, "init_from") == 0)
		return "Every trial of a search trains from scratch.";
	if (strcmp(key, "preset") == 0)
		return "A preset resets every other key: set \"preset\" outside \"search\".";
	if (strcmp(key, "min_user_interactions") == 0 || strcmp(key, "min_item_interactions") == 0 ||
		strcmp(key, "order_column") == 0)
		return "It changes the training data; every trial trains and is compared on the same data and split.";
	if (strcmp(key, "deploy") == 0 || strcmp(key, "device") == 0 || strcmp(key, "threads") == 0)
		return "It does not change the model: set it outside \"search\".";
	if (strcmp(key, "refit") == 0)
		return "A search compares trials on validation, which refit's second pass trains on: set it outside \"search\" (the kept trial is refitted).";
	return NULL;
}

static bool
core_key(const char *key)
{
	for (const char *const *k = t4r_config_keys(); *k; k++)
		if (strcmp(*k, key) == 0)
			return true;
	return false;
}

static bool
same_scalar(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		default:
			return false;
	}
}

typedef struct SearchErrCtx
{
	int			trial;			/* 1-based */
	Jsonb	   *trial_values;
} SearchErrCtx;

static void
search_errcontext(void *arg)
{
	SearchErrCtx *c = (SearchErrCtx *) arg;

	errcontext("search trial %d: %s", c->trial,
			   JsonbToCString(NULL, &c->trial_values->root, VARSIZE(c->trial_values)));
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* splitmix64: the trial sampler's generator */
static uint64
search_rng(uint64 *s)
{
	uint64		z = (*s += UINT64CONST(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* a key a search may set: searchable, known, and not set outside the search */
static void
search_check_key(const T4rSearchPlan *p, const char *key)
{
	const char *why;

	if ((why = unsearchable(key)) != NULL)
		bad_search(psprintf("option \"%s\" cannot be searched", key), why);
	if (!core_key(key))
		bad_search(psprintf("unknown option \"%s\" in \"search\"", key), NULL);
	if (getKeyJsonValueFromContainer(&p->base->root, key, strlen(key), NULL) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is set both in \"search\" and outside it", key),
				 errhint("Remove one of them: the search sets it for every trial.")));
}

/* the searched keys, alphabetically, each searchable and set only there */
static void
search_keys(JsonbContainer *spec, T4rSearchPlan *p)
{
	JsonbIterator *it;
	JsonbValue	v;
	char	   *key;

	p->keys = palloc(sizeof(char *) * JsonContainerSize(spec));
	it = JsonbIteratorInit(spec);
	while (t4r_jb_next_pair(&it, &key, &v))
	{
		search_check_key(p, key);
		p->keys[p->n_keys++] = key;
	}
	qsort(p->keys, p->n_keys, sizeof(char *), cmp_cstr);
}

/* a value its key accepts: a number, boolean or string, valid alone
 * (combinations: search_trial_options); what names it in errors */
static void
search_check_value(const char *key, JsonbValue *e, const char *what)
{
	t4r_config	c;
	char		err[512] = "";

	if (e->type != jbvNumeric && e->type != jbvBool && e->type != jbvString)
		bad_search(psprintf("%s of \"%s\" must be a number, boolean or string", what, key), NULL);
	if (strcmp(key, "tie_shuffle") == 0 && e->type == jbvString)
		bad_search(psprintf("%s of \"tie_shuffle\" must be true or false", what),
				   "\"auto\" is itself a choice between the two: search [true, false], or set \"auto\" outside \"search\".");
	t4r_config_preset(&c, NULL);
	if (t4r_config_set(&c, key, scalar_text(e, "search", key), err, sizeof(err)) != T4R_OK)
		bad_search(psprintf("%s of \"%s\" is invalid", what, key), err[0] ? err : NULL);
}

/* the values of each key: non-empty arrays of distinct valid scalars */
static void
search_values(JsonbContainer *spec, T4rSearchPlan *p)
{
	p->n_values = palloc0(sizeof(int) * p->n_keys);
	p->values = palloc0(sizeof(JsonbValue *) * p->n_keys);
	p->grid_size = 1;
	for (int i = 0; i < p->n_keys; i++)
	{
		JsonbValue *arr = getKeyJsonValueFromContainer(spec, p->keys[i], strlen(p->keys[i]), NULL);
		int			n;

		if (arr->type != jbvBinary || !JsonContainerIsArray(arr->val.binary.data) ||
			JsonContainerIsScalar(arr->val.binary.data) ||
			(n = JsonContainerSize(arr->val.binary.data)) == 0)
			bad_search(psprintf("search values of \"%s\" must be a non-empty JSON array", p->keys[i]),
					   NULL);
		if (n > T4R_SEARCH_MAX_VALUES)
			bad_search(psprintf("search has %d values of \"%s\", more than %d", n, p->keys[i],
								T4R_SEARCH_MAX_VALUES), NULL);
		p->values[i] = palloc(sizeof(JsonbValue) * n);
		for (int j = 0; j < n; j++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(arr->val.binary.data, j);

			search_check_value(p->keys[i], e, psprintf("search value %d", j + 1));
			for (int q = 0; q < j; q++)
				if (same_scalar(&p->values[i][q], e))
					bad_search(psprintf("search value %d of \"%s\" repeats value %d", j + 1,
										p->keys[i], q + 1),
							   "Each value is tried once.");
			p->values[i][j] = *e;
		}
		p->n_values[i] = n;
		p->grid_size *= n;
	}
}

/* a list of points: non-empty objects of searchable keys, no point twice */
static void
search_list(JsonbContainer *spec, T4rSearchPlan *p)
{
	int			n = JsonContainerSize(spec);

	if (n > T4R_SEARCH_MAX_TRIALS)
		bad_search(psprintf("search has %d points, more than %d", n, T4R_SEARCH_MAX_TRIALS), NULL);
	p->n_points = n;
	p->points = palloc(sizeof(Jsonb *) * n);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(spec, i);
		JsonbIterator *it;
		JsonbValue	v;
		char	   *key;

		if (e->type != jbvBinary || !JsonContainerIsObject(e->val.binary.data) ||
			JsonContainerSize(e->val.binary.data) == 0)
			bad_search(psprintf("search point %d must be a non-empty JSON object", i + 1),
					   "A list of points is [{\"key\": value, ...}, ...], one object per trial.");
		it = JsonbIteratorInit(e->val.binary.data);
		while (t4r_jb_next_pair(&it, &key, &v))
		{
			search_check_key(p, key);
			search_check_value(key, &v, psprintf("search point %d: the value", i + 1));
		}
		p->points[i] = JsonbValueToJsonb(e);
		for (int q = 0; q < i; q++)
			if (DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(p->points[q]),
												 JsonbPGetDatum(p->points[i]))))
				bad_search(psprintf("search point %d repeats point %d", i + 1, q + 1),
						   "Each point is tried once.");
	}
	p->grid_size = n;
}

/* how many trials: search_trials (1..cap), else the whole grid (<= cap) */
static void
search_count(JsonbValue *ntrials, T4rSearchPlan *p)
{
	int			cap;

	if (ntrials != NULL)
	{
		char	   *txt = ntrials->type == jbvNumeric ?
			DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(ntrials->val.numeric))) : NULL;
		char	   *end;
		long		n;

		errno = 0;
		n = txt ? strtol(txt, &end, 10) : 0;
		if (txt == NULL || errno != 0 || end == txt || *end != '\0' || n < 1 || n > T4R_SEARCH_MAX_TRIALS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"search_trials\" must be an integer between 1 and %d",
							T4R_SEARCH_MAX_TRIALS),
					 errhint("Leave it out to try the whole grid (at most %d points).",
							 T4R_SEARCH_MAX_TRIALS)));
		cap = (int) n;
	}
	else if (p->grid_size > T4R_SEARCH_MAX_TRIALS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the search grid has %.0f points, more than %d", p->grid_size,
						T4R_SEARCH_MAX_TRIALS),
				 errhint("Set \"search_trials\" (at most %d) to try that many points drawn at random.",
						 T4R_SEARCH_MAX_TRIALS)));
	else
		cap = (int) p->grid_size;
	p->random = cap < p->grid_size;
	p->n_trials = p->random ? cap : (int) p->grid_size;
}

/* the grid points (or listed points: one dimension) of the trials: in
 * order, or drawn without repetition */
static int **
search_points(T4rSearchPlan *p)
{
	int		  **idx = palloc(sizeof(int *) * p->n_trials);
	int			ndim = p->points ? 1 : p->n_keys;
	const int  *nval = p->points ? &p->n_points : p->n_values;
	/* the sampler's seed: the call's "seed" outside "search", else the preset's */
	t4r_config	c;
	JsonbValue *pv = getKeyJsonValueFromContainer(&p->base->root, "preset", strlen("preset"), NULL);
	JsonbValue *sv = getKeyJsonValueFromContainer(&p->base->root, "seed", strlen("seed"), NULL);
	char		err[256];
	uint64		rs;

	t4r_config_preset(&c, NULL);
	if (pv && pv->type == jbvString)
		(void) t4r_config_set(&c, "preset", scalar_text(pv, "options", "preset"), err, sizeof(err));
	if (sv && sv->type == jbvNumeric)
		(void) t4r_config_set(&c, "seed", scalar_text(sv, "options", "seed"), err, sizeof(err));
	rs = (uint64) c.seed ^ UINT64CONST(0x5EA4C4);

	for (int t = 0; t < p->n_trials; t++)
	{
		bool		dup;

		idx[t] = palloc(sizeof(int) * ndim);
		do
		{
			CHECK_FOR_INTERRUPTS();
			if (p->random)
				for (int i = 0; i < ndim; i++)
					idx[t][i] = (int) (search_rng(&rs) % (uint64) nval[i]);
			else
			{
				int			r = t;

				for (int i = ndim - 1; i >= 0; i--)
				{
					idx[t][i] = r % nval[i];
					r /= nval[i];
				}
			}
			dup = false;
			for (int u = 0; u < t && !dup; u++)
				dup = memcmp(idx[u], idx[t], sizeof(int) * ndim) == 0;
		} while (dup);
	}
	return idx;
}

/* each trial's values and options, every trial checked as a whole */
static void
search_trial_options(T4rSearchPlan *p, int **idx)
{
	ErrorContextCallback ecb;
	SearchErrCtx ectx;

	p->trial = palloc(sizeof(Jsonb *) * p->n_trials);
	p->opts = palloc(sizeof(T4rTrainOptions) * p->n_trials);
	ecb.callback = search_errcontext;
	ecb.arg = &ectx;
	ecb.previous = error_context_stack;
	for (int t = 0; t < p->n_trials; t++)
	{
		if (p->points)
			p->trial[t] = p->points[idx[t][0]];
		else
		{
			JsonbParseState *st = NULL;

			t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
			for (int i = 0; i < p->n_keys; i++)
			{
				t4r_jb_key(&st, p->keys[i]);
				t4r_jb_value(&st, &p->values[i][idx[t][i]]);
			}
			p->trial[t] = t4r_jb_end(&st, WJB_END_OBJECT);
		}
		ectx.trial = t + 1;
		ectx.trial_values = p->trial[t];
		error_context_stack = &ecb;
		t4r_pg_parse_options(t4r_jb_concat(p->base, p->trial[t]), &p->opts[t], "options");
		error_context_stack = ecb.previous;
	}
}

bool
t4r_pg_search_plan(Jsonb *opts, T4rSearchPlan *p)
{
	JsonbValue *spec,
			   *ntrials;

	memset(p, 0, sizeof(*p));
	if (opts == NULL || !JB_ROOT_IS_OBJECT(opts) || JB_ROOT_IS_SCALAR(opts))
		return false;
	spec = getKeyJsonValueFromContainer(&opts->root, "search", strlen("search"), NULL);
	ntrials = getKeyJsonValueFromContainer(&opts->root, "search_trials", strlen("search_trials"), NULL);
	if (spec == NULL)
	{
		if (ntrials != NULL)
			bad_search("option \"search_trials\" needs option \"search\"",
					   "search_trials is the number of trials of a hyper-parameter search.");
		return false;
	}
	if (spec->type != jbvBinary || JsonContainerIsScalar(spec->val.binary.data) ||
		JsonContainerSize(spec->val.binary.data) == 0)
		bad_search("option \"search\" must be a non-empty JSON object or array",
				   "A grid is {\"key\": [values], ...}; a list of points is [{\"key\": value, ...}, ...].");
	if (getKeyJsonValueFromContainer(&opts->root, "init_from", strlen("init_from"), NULL) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"search\" and \"init_from\" cannot be combined"),
				 errdetail("Every trial of a search trains from scratch."),
				 errhint("Search without init_from, then warm-start from the kept version.")));

	/* the options of every trial but the searched ones */
	p->base = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(opts),
												 CStringGetTextDatum("search")));
	p->base = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(p->base),
												 CStringGetTextDatum("search_trials")));
	if (JsonContainerIsArray(spec->val.binary.data))
		search_list(spec->val.binary.data, p);
	else
	{
		search_keys(spec->val.binary.data, p);
		search_values(spec->val.binary.data, p);
	}
	search_count(ntrials, p);
	search_trial_options(p, search_points(p));
	p->spec = DatumGetJsonbP(DirectFunctionCall2(jsonb_object_field, JsonbPGetDatum(opts),
												 CStringGetTextDatum("search")));
	return true;
}
