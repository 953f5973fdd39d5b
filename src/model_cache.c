/*
 * model_cache.c - per-backend cache of loaded models (PG-B).
 *
 * A loaded model (T4rLoadedModel) holds the core model, one inference
 * context, the vocabulary (item_ids, item_counts), the popularity order and a
 * fast external id -> vocabulary row lookup.  Core objects are malloc'd and
 * freed when the entry is replaced; the rest lives in a per-entry memory
 * context under TopMemoryContext.
 *
 * Every call checks the catalog: one saved SPI plan reads (version, xmin) of
 * the requested row (current version, or a given version).  If it differs
 * from the cached entry the row is loaded again, so a deploy, drop or new
 * version made by any session is seen by the next call of every backend
 * (the check runs under the calling statement's snapshot).
 */
#include "postgres.h"

#include <stdlib.h>
#include <string.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "tim4rec_pg.h"

/* the loaded model plus its lookup tables (lm first: a T4rLoadedModel *
 * handed out points to a LoadedFull) */
typedef struct LoadedFull
{
	T4rLoadedModel lm;
	/* id -> row lookup: either a direct table or a sorted array */
	int64		dmin;
	int64		drange;			/* 0 when not direct */
	int32	   *direct;			/* [drange] row or -1 */
	int64	   *sorted_ids;		/* [V-1] */
	int32	   *sorted_rows;	/* [V-1] */
} LoadedFull;

typedef struct CacheEntry
{
	char		key[NAMEDATALEN + 16];	/* "name#version" (0 = current) */
	T4rLoadedModel *lm;			/* NULL until loaded; a LoadedFull */
	MemoryContext cxt;			/* holds lm and its arrays */
	TransactionId xmin;			/* of the catalog row it was loaded from */
} CacheEntry;

static HTAB *model_cache = NULL;
static Oid	cached_ext_oid = InvalidOid;
static char *cached_schema = NULL;	/* TopMemoryContext */
static SPIPlanPtr plan_current = NULL;
static SPIPlanPtr plan_version = NULL;

/* ---------------------------------------------------------------- */

static char *
extension_schema_name(void)
{
	Oid			ext = get_extension_oid("tim4rec", true);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;
	char	   *name;

	if (!OidIsValid(ext))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"tim4rec\" is not installed in this database")));
	if (ext == cached_ext_oid && cached_schema)
		return cached_schema;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	name = get_namespace_name(nsp);
	if (name == NULL)
		elog(ERROR, "tim4rec: could not find the extension's schema");

	/* extension (re)created: forget plans and models */
	if (plan_current)
	{
		SPI_freeplan(plan_current);
		plan_current = NULL;
	}
	if (plan_version)
	{
		SPI_freeplan(plan_version);
		plan_version = NULL;
	}
	if (cached_schema)
		pfree(cached_schema);
	cached_schema = MemoryContextStrdup(TopMemoryContext, name);
	cached_ext_oid = ext;
	return cached_schema;
}

static void
entry_release(CacheEntry *e)
{
	if (e->lm)
	{
		if (e->lm->ctx)
			t4r_infer_ctx_free(e->lm->ctx);
		if (e->lm->model)
			t4r_model_free(e->lm->model);
	}
	e->lm = NULL;
	if (e->cxt)
		MemoryContextDelete(e->cxt);
	e->cxt = NULL;
}

static void
init_cache(void)
{
	HASHCTL		ctl;

	if (model_cache)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN + 16;
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = TopMemoryContext;
	model_cache = hash_create("tim4rec model cache", 8, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

static SPIPlanPtr
prepare_check(bool by_version)
{
	const char *schema = extension_schema_name();
	StringInfoData q;
	Oid			types[2] = {TEXTOID, INT4OID};
	SPIPlanPtr	p;

	if (!by_version && plan_current)
		return plan_current;
	if (by_version && plan_version)
		return plan_version;
	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT version, xmin::text::bigint FROM %s.%s WHERE model_name = $1 AND %s",
					 quote_identifier(schema), T4R_CATALOG_TABLE,
					 by_version ? "version = $2" : "is_current");
	p = SPI_prepare(q.data, by_version ? 2 : 1, types);
	if (p == NULL)
		elog(ERROR, "tim4rec: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(p);
	if (by_version)
		plan_version = p;
	else
		plan_current = p;
	return p;
}

static int
cmp_id_row(const void *a, const void *b)
{
	const int64 *x = a,
			   *y = b;

	return (*x > *y) - (*x < *y);
}

static char *
getstr(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	if (isnull)
		return NULL;
	return MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

/* deconstruct a bigint[] (no NULL elements); returns count */
static int
get_int8_array(Datum d, int64 **out, const char *what)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_ELEMTYPE(a) != INT8OID || ARR_NDIM(a) > 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("catalog column %s must be a one-dimensional bigint[]", what)));
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, 'd', &elems, &nulls, &n);
	*out = palloc((size_t) (n + 1) * sizeof(int64));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("catalog column %s contains a NULL", what)));
		(*out)[i + 1] = DatumGetInt64(elems[i]);
	}
	(*out)[0] = 0;
	return n;
}

typedef struct PopEnt
{
	int64		cnt;
	int32		row;
} PopEnt;

static int
cmp_pop(const void *a, const void *b)
{
	const PopEnt *x = a,
			   *y = b;

	if (x->cnt != y->cnt)
		return x->cnt > y->cnt ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

/* Load row (name, version) into e (already released).  Runs inside SPI. */
static void
load_entry(CacheEntry *e, const char *name, int32 version, TransactionId xmin)
{
	const char *schema = extension_schema_name();
	StringInfoData q;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];
	int			rc;
	HeapTuple	tup;
	TupleDesc	td;
	bool		isnull;
	bytea	   *w;
	MemoryContext cxt,
				old;
	T4rLoadedModel *lm;
	LoadedFull *lf;
	t4r_model  *volatile model = NULL;
	t4r_infer_ctx *volatile ctx = NULL;
	char		err[256] = "";
	int			nids,
				ncnt,
				V;
	int64	   *ids,
			   *cnts;

	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT weights, item_ids, item_counts, source_schema::text, source_table::text, "
					 "user_column::text, item_column::text, time_column::text, order_column::text "
					 "FROM %s.%s WHERE model_name = $1 AND version = $2",
					 quote_identifier(schema), T4R_CATALOG_TABLE);
	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);
	rc = SPI_execute_with_args(q.data, 2, types, vals, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", name, version)));
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;

	cxt = AllocSetContextCreate(TopMemoryContext, "tim4rec model", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		lf = palloc0(sizeof(LoadedFull));
		lm = &lf->lm;
		strlcpy(lm->name, name, NAMEDATALEN);
		lm->version = version;

		w = DatumGetByteaPP(SPI_getbinval(tup, td, 1, &isnull));
		if (isnull)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("model \"%s\" version %d has no weights", name, version)));
		{
			t4r_model  *m = NULL;

			rc = t4r_safetensors_read((const uint8_t *) VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w),
									  NULL, &m, err, sizeof(err));
			model = m;
		}
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "reading the model's weights", err);

		nids = get_int8_array(SPI_getbinval(tup, td, 2, &isnull), &ids, "item_ids");
		if (isnull)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("item_ids is NULL")));
		ncnt = get_int8_array(SPI_getbinval(tup, td, 3, &isnull), &cnts, "item_counts");
		if (isnull)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("item_counts is NULL")));
		V = model->cfg.n_items;
		if (nids != V - 1 || ncnt != V - 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" version %d: vocabulary size does not match the weights", name, version),
					 errdetail("The weights have %d item rows, item_ids has %d and item_counts %d elements.",
							   V - 1, nids, ncnt)));
		lm->item_ids = ids;
		lm->item_counts = cnts;

		/* popularity order */
		{
			PopEnt	   *p = palloc((size_t) V * sizeof(PopEnt));

			for (int r = 1; r < V; r++)
			{
				p[r - 1].cnt = cnts[r];
				p[r - 1].row = r;
			}
			qsort(p, V - 1, sizeof(PopEnt), cmp_pop);
			lm->pop_order = palloc((size_t) V * sizeof(int32));
			for (int i = 0; i < V - 1; i++)
				lm->pop_order[i] = p[i].row;
			pfree(p);
		}

		/* id -> row lookup */
		{
			int64	   *pairs = palloc((size_t) 2 * (V - 1) * sizeof(int64));
			int64		mn = PG_INT64_MAX,
						mx = PG_INT64_MIN;

			for (int r = 1; r < V; r++)
			{
				pairs[2 * (r - 1)] = ids[r];
				pairs[2 * (r - 1) + 1] = r;
				if (ids[r] < mn)
					mn = ids[r];
				if (ids[r] > mx)
					mx = ids[r];
			}
			qsort(pairs, V - 1, 2 * sizeof(int64), cmp_id_row);
			for (int i = 1; i < V - 1; i++)
				if (pairs[2 * i] == pairs[2 * (i - 1)])
					ereport(ERROR,
							(errcode(ERRCODE_DATA_CORRUPTED),
							 errmsg("model \"%s\" version %d: item id " INT64_FORMAT " appears twice in item_ids",
									name, version, pairs[2 * i])));
			lf->sorted_ids = palloc((size_t) V * sizeof(int64));
			lf->sorted_rows = palloc((size_t) V * sizeof(int32));
			for (int i = 0; i < V - 1; i++)
			{
				lf->sorted_ids[i] = pairs[2 * i];
				lf->sorted_rows[i] = (int32) pairs[2 * i + 1];
			}
			pfree(pairs);
			lf->drange = 0;
			lf->direct = NULL;
			/* dense ids (the usual case): a direct table, at most 4 entries per row */
			if (mx >= mn && (uint64) mx - (uint64) mn < (uint64) 4 * V + 1024)
			{
				int64		range = mx - mn + 1;

				lf->direct = palloc((size_t) range * sizeof(int32));
				memset(lf->direct, 0xff, (size_t) range * sizeof(int32));
				for (int r = 1; r < V; r++)
					lf->direct[ids[r] - mn] = r;
				lf->dmin = mn;
				lf->drange = range;
			}
		}

		lm->source_schema = getstr(tup, td, 4, cxt);
		lm->source_table = getstr(tup, td, 5, cxt);
		lm->user_column = getstr(tup, td, 6, cxt);
		lm->item_column = getstr(tup, td, 7, cxt);
		lm->time_column = getstr(tup, td, 8, cxt);
		lm->order_column = getstr(tup, td, 9, cxt);
		if (lm->order_column && lm->order_column[0] == '\0')
			lm->order_column = NULL;

		{
			t4r_infer_ctx *c = NULL;

			rc = t4r_infer_ctx_create(model, &c);
			ctx = c;
		}
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "creating an inference context", NULL);
		lm->model = model;
		lm->ctx = ctx;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		if (ctx)
			t4r_infer_ctx_free(ctx);
		if (model)
			t4r_model_free(model);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	e->lm = lm;
	e->cxt = cxt;
	e->xmin = xmin;
}

T4rLoadedModel *
t4r_pg_get_model(const char *name, int32 version)
{
	SPIPlanPtr	plan;
	Datum		vals[2];
	int			rc;
	int32		found_version;
	TransactionId xmin;
	char		key[NAMEDATALEN + 16];
	CacheEntry *e;
	bool		found;
	bool		isnull;

	if (name == NULL)
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_name must not be null")));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("model \"%s\" does not exist", name)));
	init_cache();

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	plan = prepare_check(version != 0);
	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);
	rc = SPI_execute_plan(plan, vals, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog check failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
	{
		/* dropped (or never there): free what this backend still holds */
		memset(key, 0, sizeof(key));
		snprintf(key, sizeof(key), "%s#%d", name, version);
		e = hash_search(model_cache, key, HASH_FIND, NULL);
		if (e)
		{
			entry_release(e);
			hash_search(model_cache, key, HASH_REMOVE, NULL);
		}
		if (version == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" does not exist", name),
					 errhint("See tim4rec_model_list for the models of this database.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" version %d does not exist", name, version),
					 errhint("See tim4rec_model_list for the models of this database.")));
	}
	found_version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	xmin = (TransactionId) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/* cached under the version found; a lookup by name alone uses key version 0 */
	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%s#%d", name, version);
	e = hash_search(model_cache, key, HASH_ENTER, &found);
	if (!found)
	{
		e->lm = NULL;
		e->cxt = NULL;
	}
	if (e->lm == NULL || e->lm->version != found_version || e->xmin != xmin)
	{
		entry_release(e);
		load_entry(e, name, found_version, xmin);
	}
	SPI_finish();
	return e->lm;
}

int32
t4r_pg_item_row(T4rLoadedModel *lm, int64 item_id)
{
	LoadedFull *e = (LoadedFull *) lm;

	if (e->drange > 0)
	{
		uint64		off = (uint64) item_id - (uint64) e->dmin;

		if (off >= (uint64) e->drange)
			return -1;
		return e->direct[off];
	}
	else
	{
		int			lo = 0,
					hi = lm->model->cfg.n_items - 2;

		while (lo <= hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (e->sorted_ids[mid] == item_id)
				return e->sorted_rows[mid];
			if (e->sorted_ids[mid] < item_id)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
		return -1;
	}
}
