/*
 * tim4rec_pg.h - declarations shared by the PostgreSQL glue (the .c files in src/).
 * Only the glue includes postgres.h; the core (src/core) never does.
 */
#ifndef TIM4REC_PG_H
#define TIM4REC_PG_H

#include "postgres.h"
#include "fmgr.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"
#include "tim4rec.h"
#include "ids.h"

/* ---- GUCs (defined in src/tim4rec.c, _PG_init) ---- */
extern int	tim4rec_threads;			/* tim4rec.threads, default 0 = number of CPUs (max 64) */
extern int	tim4rec_memory_budget_mb;	/* tim4rec.memory_budget (MB, GUC_UNIT_MB), default 1024 */
extern int	tim4rec_device;				/* tim4rec.device, T4R_DEVICE_*, default cpu */

/* ---- device selection (src/device.c) ---- */
#define T4R_DEVICE_CPU  0
#define T4R_DEVICE_CUDA 1
#define T4R_DEVICE_AUTO 2
typedef struct T4rDevice
{
	bool		active;			/* a GPU trainer is open */
	void	   *trainer;		/* t4r_cuda_trainer * (CUDA builds) */
	t4r_backend backend;		/* drives it from t4r_fit / t4r_evaluate_backend */
} T4rDevice;

const char *t4r_pg_device_name(int device);
/* device: "cpu", "cuda" or "auto"; true when `what` runs on the GPU.
 * ERROR for 'cuda' without CUDA support or a usable GPU; NOTICE and false
 * for 'auto' in that case. */
bool		t4r_pg_use_cuda(const char *device, const char *what);
bool		t4r_pg_use_cuda_for(const char *device, const char *what, const t4r_config *cfg);
/* a GPU copy of m (train: with gradients and Adam); ERROR on failure */
void		t4r_pg_device_open(T4rDevice *d, t4r_model *m, bool train);
const t4r_backend *t4r_pg_device_backend(const T4rDevice *d);	/* NULL: CPU */
void		t4r_pg_device_sync_from_host(T4rDevice *d);
size_t		t4r_pg_device_bytes(const T4rDevice *d);
void		t4r_pg_device_close(T4rDevice *d);	/* safe when not open */
int			t4r_pg_threads(void);		/* effective thread count >= 1 */

/* ---- the catalog and model privileges (src/access.c) ---- */
#define T4R_CATALOG_TABLE "tim4rec_models"

/* schema of the extension (where the catalog lives), cached per backend */
const char *t4r_pg_extension_schema(void);
/* quoted schema.table of the catalog */
const char *t4r_pg_catalog_table(void);

/*
 * Every internal query of the catalog runs between t4r_pg_catalog_begin and
 * t4r_pg_catalog_end: SPI-connected, as the catalog's owner (a
 * security-restricted operation) and with search_path pinned to
 * "pg_catalog, pg_temp".  caller is the user before the switch: the one
 * whose privileges are checked.
 */
typedef struct T4rCatalogSession
{
	const char *table;			/* quoted schema.table */
	Oid			relid;			/* its OID */
	Oid			caller;
	Oid			saved_uid;
	int			saved_sec;
	int			guc_level;
	bool		has_acl;		/* false: a 0.1 catalog (no owner/grant columns)
								 * until ALTER EXTENSION tim4rec UPDATE */
	const char *acl_columns;	/* "owner, grant_read, grant_usage" or NULLs */
	bool		has_ids;		/* false: a catalog before 0.3 (bigint ids only) */
	const char *id_columns;		/* "user_id_type, item_id_type" or defaults */
	const char *keys_column;	/* "item_keys" or NULL::text[] */
} T4rCatalogSession;
void		t4r_pg_catalog_begin(T4rCatalogSession *s);
void		t4r_pg_catalog_end(T4rCatalogSession *s);
/* transaction-level advisory lock serialising changes of one model name */
void		t4r_pg_catalog_lock(const char *name);

#define T4R_PRIV_USAGE 1		/* recommend, evaluate */
#define T4R_PRIV_READ  2		/* + catalog row, item ids, export */
#define T4R_PRIV_OWNER 3		/* + new versions, deploy, drop, grants */

typedef struct T4rNameList
{
	int			n;
	char	  **names;
} T4rNameList;

/* what decides who may use a model: its owner, grants and source */
typedef struct T4rModelAcl
{
	const char *owner;			/* role name */
	T4rNameList grant_read;
	T4rNameList grant_usage;
	const char *source_schema;	/* "" or NULL: imported, no source */
	const char *source_table;
	const char *user_column;
	const char *item_column;
	const char *time_column;
	const char *order_column;	/* may be NULL */
} T4rModelAcl;

typedef enum T4rSourceAccess
{
	T4R_SOURCE_NONE,			/* imported model */
	T4R_SOURCE_MISSING,			/* the relation does not exist (any more) */
	T4R_SOURCE_DENIED,			/* no SELECT on it or a used column */
	T4R_SOURCE_ROWS_LIMITED,	/* SELECT, but row-level security applies */
	T4R_SOURCE_READABLE			/* every row of the used columns */
} T4rSourceAccess;

T4rSourceAccess t4r_pg_source_access(const T4rModelAcl *acl, Oid roleid, Oid *relid);
bool		t4r_pg_model_allowed(const T4rModelAcl *acl, int priv, Oid roleid);
/* ERROR 42501 unless roleid has priv on the model */
void		t4r_pg_model_check(const T4rModelAcl *acl, const char *model_name, int priv, Oid roleid);
/* name[] -> strings (palloc'd); isnull gives an empty list */
void		t4r_pg_name_list(Datum d, bool isnull, T4rNameList *out);

/* ---- reading an interactions relation (src/pgutil.c) ---- */
typedef struct T4rInteractions
{
	size_t		n;				/* rows read (NULL rows skipped) */
	size_t		n_null;			/* rows skipped because a column was NULL */
	int64	   *users;
	int64	   *items;
	double	   *ts;				/* epoch seconds */
	int64	   *order;			/* NULL unless an order column was given */
	Oid			user_type;		/* the columns' (base) types */
	Oid			item_type;
	/* text and uuid columns: their keys (users/items hold the codes,
	 * numbered in key order; see ids.h); NULL for integer columns */
	T4rKeyDict *user_dict;
	T4rKeyDict *item_dict;
} T4rInteractions;

/*
 * Checks the caller's SELECT privilege, that the columns exist and have
 * supported types (user/item: int2/int4/int8, text/varchar, uuid; time: timestamptz, timestamp,
 * date, any integer, float4/float8, numeric; order: any integer), then reads
 * all rows in the current memory context.  ereport(ERROR) with the right
 * SQLSTATE on any problem.  order_col may be NULL.
 */
void		t4r_pg_read_interactions(Oid relid, const char *user_col, const char *item_col,
									 const char *time_col, const char *order_col,
									 T4rInteractions *out);

/* time Datum of type `typid` (a supported time type) -> epoch seconds;
 * ERROR 22008 for an infinite timestamp or date, 22003 for a float or
 * numeric time that fails t4r_time_ok (NaN, +-Infinity, |t| > 2^63) */
double		t4r_pg_time_to_epoch(Datum d, Oid typid);
bool		t4r_pg_time_type_ok(Oid typid);

/* ERROR 22003 for a time that fails t4r_time_ok, naming the argument:
 * "<argname> element <element> is out of range" when element > 0, else
 * "<argname> is out of range" (argname NULL: "time value") */
void		t4r_pg_time_range_error(double t, const char *argname, int element) pg_attribute_noreturn();
static inline void
t4r_pg_check_time(double t, const char *argname, int element)
{
	if (unlikely(!t4r_time_ok(t)))
		t4r_pg_time_range_error(t, argname, element);
}

/* ereport(ERROR) with a message for a core error code (SQLSTATE chosen by code) */
void		t4r_pg_core_error(int code, const char *what, const char *msg) pg_attribute_noreturn();
/* interrupt callback for the core: true on a pending cancel/termination */
int			t4r_pg_interrupt(void *ud);

/* ---- training progress (src/progress.c) ----
 * Reported through the backend progress API under PROGRESS_COMMAND_COPY in
 * parameter slots 10..19 (slot 10 holds T4R_PROGRESS_MAGIC), shown by the
 * view tim4rec_progress. */
#define T4R_PROGRESS_MAGIC 0x74347200	/* "t4r\0" */
enum
{
	T4R_PHASE_READING = 1, T4R_PHASE_BUILDING, T4R_PHASE_TRAINING,
	T4R_PHASE_EVALUATING, T4R_PHASE_SAVING, T4R_PHASE_REFITTING
};
void		t4r_pg_progress_start(Oid relid, int epochs);
void		t4r_pg_progress_phase(int phase);
void		t4r_pg_progress_rows(int64 rows);
void		t4r_pg_progress_step(int epoch, int64 step, int64 steps_per_epoch, double loss);
void		t4r_pg_progress_epoch(int epoch, double valid_ndcg10);
/* trial i of n of a search (i >= 1), of at most epochs epochs */
void		t4r_pg_progress_trial(int trial, int trials, int epochs);
/* refit's second pass begins: phase 'refitting', max_epochs = epochs */
void		t4r_pg_progress_refit(int epochs);
void		t4r_pg_progress_end(void);

/* ---- catalog writes (src/catalog.c) ---- */
typedef struct T4rNewVersion
{
	const char *model_name;
	const char *source_schema;	/* "" for imported models */
	const char *source_table;
	const char *user_column;
	const char *item_column;
	const char *time_column;
	const char *order_column;	/* NULL if none */
	Jsonb	   *config;			/* options (t4r_pg_options_json) */
	const int64 *item_ids;		/* [V]; element 0 (padding) not stored */
	char	  **item_keys;		/* [V] text/uuid item ids (item_ids unused); NULL: integer */
	Oid			user_type;		/* id types (InvalidOid: bigint) */
	Oid			item_type;
	const int64 *item_counts;	/* [V]; NULL = zeros */
	int32		n_items;		/* V */
	Jsonb	   *metrics;		/* may be NULL */
	Jsonb	   *history;		/* may be NULL */
	const uint8 *weights;
	size_t		weights_len;
	int			deploy;			/* 0 = never, 1 = always, 2 = if validation NDCG@10 improves */
	double		valid_ndcg10;	/* for deploy = 2 */
	const char *parent_model;	/* warm start: the model and version it */
	int32		parent_version; /* continued from; NULL / 0 otherwise */
} T4rNewVersion;

/* ---- options (src/options.c) ----
 * options jsonb of tim4rec_train / config of tim4rec_import:
 * "preset" first, then the core keys (t4r_config_set) and the keys below;
 * ERROR 22023 with a hint listing the valid keys on anything unknown/bad
 * ("init_from", "search" and "search_trials" are taken out by train.c). */
typedef struct T4rTrainOptions
{
	t4r_config	cfg;
	int			threads;		/* 0 = tim4rec.threads */
	int			min_user;
	int			min_item;
	int			deploy;			/* 1 always, 2 if_better */
	char		device[8];		/* "cpu", "cuda", "auto" */
	char	   *order_column;	/* NULL if none */
} T4rTrainOptions;
void		t4r_pg_parse_options(Jsonb *opts, T4rTrainOptions *o, const char *argname);
/* every option as stored in the catalog's config column */
Jsonb	   *t4r_pg_options_json(const T4rTrainOptions *o);
/* options of a trained model's serving (t4r_config_key_serving keys) set on
 * cfg and checked; ERROR 22023 for any other key or a bad value */
void		t4r_pg_serving_options(Jsonb *opts, t4r_config *cfg);
/* options->init_from: "name" (current version) or {"model": name,
 * "version": n}; false when absent */
bool		t4r_pg_init_from_option(Jsonb *opts, char **name, int32 *version);
/* a warm start's options: the parent's stored ones (less deploy, device,
 * threads), then the caller's (less init_from); ERROR 22023 for another preset */
Jsonb	   *t4r_pg_warm_options(Jsonb *parent_cfg, Jsonb *user);
/* true while a tim4rec_recommend_all of this backend scores a batch in a
 * background thread: OpenBLAS's thread count must then stay at 1 */
bool		t4r_pg_background_scoring(void);

/* options->warm_scope ('all' or 'new'), removed from *opts: -1 when absent,
 * 0 all, 1 new; ERROR 22023 for another value */
int			t4r_pg_warm_scope_option(Jsonb **opts);
/* options->warm_new_items ('random' or 'neighbors'), removed from *opts: -1
 * when absent, 0 random, 1 neighbors; ERROR 22023 for another value */
int			t4r_pg_warm_new_items_option(Jsonb **opts);

/* hyper-parameter search: options "search" {key: [values]} and "search_trials" */
#define T4R_SEARCH_MAX_TRIALS 100
#define T4R_SEARCH_MAX_VALUES 100
typedef struct T4rSearchPlan
{
	Jsonb	   *spec;			/* options->search as given */
	Jsonb	   *base;			/* the options less search and search_trials */
	/* a grid, {key: [values], ...} */
	int			n_keys;
	char	  **keys;			/* the searched keys, alphabetically */
	int		   *n_values;		/* [n_keys] */
	JsonbValue **values;		/* [n_keys][n_values[i]] scalars */
	/* or a list, [{key: value, ...}, ...] (points != NULL) */
	int			n_points;
	Jsonb	  **points;			/* [n_points] */
	double		grid_size;		/* product of n_values, or n_points */
	bool		random;			/* sampled: search_trials < grid_size */
	int			n_trials;
	Jsonb	  **trial;			/* [n_trials] {key: value} of each trial */
	T4rTrainOptions *opts;		/* [n_trials] each trial's parsed options */
} T4rSearchPlan;
/* false (and *p zeroed) without options->search; ERROR 22023 with a hint
 * for a bad spec; every trial's options are checked */
bool		t4r_pg_search_plan(Jsonb *opts, T4rSearchPlan *p);

/* ---- building jsonb (src/jsonbuild.c) ---- */
void		t4r_jb_begin(JsonbParseState **st, JsonbIteratorToken tok);
Jsonb	   *t4r_jb_end(JsonbParseState **st, JsonbIteratorToken tok);	/* the value when outermost */
void		t4r_jb_key(JsonbParseState **st, const char *key);
void		t4r_jb_null(JsonbParseState **st);
void		t4r_jb_str(JsonbParseState **st, const char *s);
void		t4r_jb_bool(JsonbParseState **st, bool b);
void		t4r_jb_int(JsonbParseState **st, int64 i);
void		t4r_jb_float(JsonbParseState **st, double d);	/* null when not finite */
void		t4r_jb_numtext(JsonbParseState **st, const char *text);
void		t4r_jb_jsonb(JsonbParseState **st, Jsonb *j);
void		t4r_jb_value(JsonbParseState **st, JsonbValue *v);
/* reading: the next key (palloc'd) and value of an object's top level,
 * from *it = JsonbIteratorInit(container); false at its end */
bool		t4r_jb_next_pair(JsonbIterator **it, char **key, JsonbValue *val);
Jsonb	   *t4r_jb_concat(Jsonb *a, Jsonb *b);

/* Inserts the next version of a model (max + 1) into the catalog in the
 * caller's transaction; returns the version.  *deployed tells whether it
 * became the current version. */
int32		t4r_pg_catalog_insert(const T4rNewVersion *nv, bool *deployed);
/* config column of (name, version > 0); the caller checked READ (ERROR 42704
 * when there is no such row) */
Jsonb	   *t4r_pg_catalog_config(const char *name, int32 version);
Jsonb	   *t4r_pg_catalog_metrics(const char *name, int32 version);
/* ERROR 42501 when model_name exists and the caller does not own it
 * (train and import check before the long work; insert checks again) */
void		t4r_pg_check_model_writable(const char *model_name);

/* ---- models in shared memory (src/shared_cache.c) ---- */
extern bool tim4rec_shared_models;		/* tim4rec.shared_models */
extern int	tim4rec_shared_memory_kb;	/* tim4rec.shared_memory (kB) */

/* identity of a catalog row (unique within a catalog: see model_cache.c) */
typedef struct T4rSharedKey
{
	Oid			dbid;
	Oid			relid;			/* the catalog table */
	TransactionId xmin;
	ItemPointerData tid;
} T4rSharedKey;

/* everything inference needs that does not depend on the backend */
typedef struct T4rModelArrays
{
	struct dsm_segment *seg;	/* NULL: private memory */
	t4r_config	cfg;
	int32		V;
	size_t		nparams;
	t4r_real   *params;
	int64	   *ids;			/* [V], ids[0] = 0 */
	int64	   *counts;			/* [V] */
	int32	   *pop;			/* [V-1] rows by popularity */
	int64		dmin;
	int64		drange;			/* 0: no direct table */
	int32	   *direct;			/* [drange] */
	int64	   *sorted_ids;		/* [V-1] */
	int32	   *sorted_rows;	/* [V-1] */
	T4rKeys		keys;			/* text/uuid item ids (keys.n = 0: integer) */
	size_t		npacked;
	t4r_real   *packed;			/* [npacked] t4r_infer_pack_fill */
} T4rModelArrays;

void		t4r_pg_shared_init(void);	/* _PG_init, when preloaded */
bool		t4r_pg_shared_available(void);
/* attach the registered segment of key; false if none */
bool		t4r_pg_shared_attach(const T4rSharedKey *key, T4rModelArrays *out);
/* copy src into a new registered segment (out: its view); false, with a
 * NOTICE, when it does not fit (the caller keeps its private copy) */
bool		t4r_pg_shared_publish(const T4rSharedKey *key, const char *name,
								  const T4rModelArrays *src, T4rModelArrays *out);
/*
 * One loader per row: when no segment is registered for key, the first
 * backend claims the row (T4R_SHARED_CLAIMED: it loads and publishes, then
 * calls t4r_pg_shared_unclaim, also on error); the others wait for it and
 * attach its segment (T4R_SHARED_ATTACHED) instead of each loading a
 * private copy at once.  A claim whose backend is gone (killed while
 * loading) or older than a minute is taken over; a claim whose publish
 * failed sends the waiters to private loading (T4R_SHARED_PRIVATE).
 * Waiting checks for interrupts.
 */
typedef enum T4rSharedWait
{
	T4R_SHARED_ATTACHED,
	T4R_SHARED_CLAIMED,
	T4R_SHARED_PRIVATE
} T4rSharedWait;
T4rSharedWait t4r_pg_shared_attach_or_claim(const T4rSharedKey *key, T4rModelArrays *out);
/* publish_failed: the waiters load privately; else (published, or the
 * load failed with an error) the claim is gone: they attach or claim */
void		t4r_pg_shared_unclaim(const T4rSharedKey *key, bool publish_failed);
/* release the registry's segments of a model (it is gone from the catalog) */
void		t4r_pg_shared_forget(Oid dbid, Oid relid, const char *name);

/* ---- loaded-model cache (src/model_cache.c) ---- */
typedef struct T4rLoadedModel
{
	char		name[NAMEDATALEN];
	int32		version;
	t4r_model  *model;			/* malloc'd by the core */
	t4r_infer_ctx *ctx;			/* one inference context for this backend */
	const t4r_real *packed;		/* its packed projections (shared when the
								 * model is) for tim4rec_recommend_all */
	int64	   *item_ids;		/* [V]; item_ids[0] = 0 (padding); for text
								 * and uuid items the keys' ranks (ids.h) */
	const T4rKeys *item_keys;	/* text and uuid item ids (n = 0: integer) */
	Oid			user_type;		/* id types of the model (ids.h) */
	Oid			item_type;
	int64	   *item_counts;	/* [V] popularity in the training data */
	int32	   *pop_order;		/* rows 1..V-1 by popularity desc, ties by row */
	int			min_user;		/* the training's filters (evaluate) */
	int			min_item;
	/* owner, grants and source relation (history reads at call time) */
	T4rModelAcl acl;
	const char *source_schema;	/* = acl.source_* (kept for the readers) */
	const char *source_table;
	const char *user_column;
	const char *item_column;
	const char *time_column;
	const char *order_column;	/* may be NULL */
} T4rLoadedModel;

/*
 * The current version when version == 0; ereport(ERROR) if unknown or if
 * the caller lacks priv (T4R_PRIV_*) on it.  The cache is checked against
 * the catalog row on each call (another session may deploy or drop; this
 * one may replace a row within its transaction).  The model is pinned: it
 * stays valid, even if a nested call replaces or drops it, until
 * t4r_pg_release_model (or the end of the transaction).
 */
T4rLoadedModel *t4r_pg_get_model(const char *name, int32 version, int priv);
void		t4r_pg_release_model(T4rLoadedModel *lm);
/* forget every cached model (the extension was re-created) */
void		t4r_pg_model_cache_reset(void);
/* this backend changed the catalog (new row ids may repeat in one xact) */
void		t4r_pg_catalog_changed(void);
/* the source relation of lm for a reader: ERROR 55000 (imported model),
 * 42P01 (gone), 42501 (check_select and no SELECT); see access.c */
Oid			t4r_pg_source_relation(const T4rLoadedModel *lm, bool check_select,
								   const char *none_detail, const char *none_hint,
								   const char *reader);
/* vocabulary row of an external item id, -1 if unknown */
int32		t4r_pg_item_row(T4rLoadedModel *lm, int64 item_id);

#endif
