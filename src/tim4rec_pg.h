/*
 * tim4rec_pg.h - declarations shared by the PostgreSQL glue (src/*.c).
 * Only the glue includes postgres.h; the core (src/core) never does.
 */
#ifndef TIM4REC_PG_H
#define TIM4REC_PG_H

#include "postgres.h"
#include "fmgr.h"
#include "tim4rec.h"

/* ---- GUCs (defined in src/tim4rec.c, _PG_init) ---- */
extern int	tim4rec_threads;			/* tim4rec.threads, default 0 = number of CPUs (max 64) */
extern int	tim4rec_memory_budget_mb;	/* tim4rec.memory_budget (MB, GUC_UNIT_MB), default 1024 */
int			t4r_pg_threads(void);		/* effective thread count >= 1 */

/* ---- catalog names (schema-qualified at run time via the extension schema) ---- */
#define T4R_CATALOG_TABLE "tim4rec_models"

/* ---- reading an interactions relation (src/pgutil.c) ---- */
typedef struct T4rInteractions
{
	size_t		n;				/* rows read (NULL rows skipped) */
	size_t		n_null;			/* rows skipped because a column was NULL */
	int64	   *users;
	int64	   *items;
	double	   *ts;				/* epoch seconds */
	int64	   *order;			/* NULL unless an order column was given */
} T4rInteractions;

/*
 * Checks the caller's SELECT privilege, that the columns exist and have
 * supported types (user/item: int2/int4/int8; time: timestamptz, timestamp,
 * date, any integer, float4/float8, numeric; order: any integer), then reads
 * all rows in the current memory context.  ereport(ERROR) with the right
 * SQLSTATE on any problem.  order_col may be NULL.
 */
void		t4r_pg_read_interactions(Oid relid, const char *user_col, const char *item_col,
									 const char *time_col, const char *order_col,
									 T4rInteractions *out);

/* time Datum of type `typid` (a supported time type) -> epoch seconds */
double		t4r_pg_time_to_epoch(Datum d, Oid typid);
bool		t4r_pg_time_type_ok(Oid typid);

/* ereport(ERROR) with a message for a core error code (SQLSTATE chosen by code) */
void		t4r_pg_core_error(int code, const char *what, const char *msg) pg_attribute_noreturn();

/* ---- loaded-model cache (src/model_cache.c) ---- */
typedef struct T4rLoadedModel
{
	char		name[NAMEDATALEN];
	int32		version;
	t4r_model  *model;			/* malloc'd by the core */
	t4r_infer_ctx *ctx;			/* one inference context for this backend */
	int64	   *item_ids;		/* [V]; item_ids[0] = 0 (padding) */
	int64	   *item_counts;	/* [V] popularity in the training data */
	int32	   *pop_order;		/* rows 1..V-1 by popularity desc, ties by row */
	/* source relation (for history reads at call time) */
	char	   *source_schema;
	char	   *source_table;
	char	   *user_column;
	char	   *item_column;
	char	   *time_column;
	char	   *order_column;	/* may be NULL */
} T4rLoadedModel;

/* current version when version == 0; ereport(ERROR) if unknown.  The cache
 * is checked against the catalog on each call (another session may deploy
 * or drop). */
T4rLoadedModel *t4r_pg_get_model(const char *name, int32 version);
/* vocabulary row of an external item id, -1 if unknown */
int32		t4r_pg_item_row(T4rLoadedModel *lm, int64 item_id);

#endif
