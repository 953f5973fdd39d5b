/*
 * model_cache.c - per-backend cache of loaded models.
 *
 * A loaded model (T4rLoadedModel) holds the core model, one inference
 * context, the vocabulary (item_ids, item_counts), the popularity order, a
 * fast external id -> vocabulary row lookup, and what access checks need
 * (owner, grants, source relation).  Core objects are malloc'd; the rest
 * lives in a per-model memory context under TopMemoryContext.
 *
 * Every call checks the catalog (in a catalog session, access.c): one saved
 * SPI plan reads (version, xmin, ctid) of the requested row (current
 * version, or a given version).  If the row is not the one cached, it is
 * loaded again, so a deploy, drop, grant or new version made by any session
 * is seen by the next call of every backend (the check runs under the
 * calling statement's snapshot), and a drop and re-import inside one
 * transaction is seen too (ctid, plus a counter of this backend's catalog
 * changes for rows its own transaction wrote).
 *
 * Calls pin the model they use (t4r_pg_get_model ... t4r_pg_release_model):
 * a nested call (a source view whose function drops or replaces the model)
 * may replace the cache entry, but the pinned model stays valid until the
 * outer call releases it.  Pins left by calls that raised an error are
 * cleared at the end of the transaction.
 */
#include "postgres.h"

#include <stdlib.h>
#include <string.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/dsm.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "tim4rec_pg.h"

/* the loaded model plus its lookup tables and cache bookkeeping (lm
 * first: a T4rLoadedModel * handed out points to a LoadedFull) */
typedef struct LoadedFull
{
	T4rLoadedModel lm;
	MemoryContext cxt;			/* holds this struct and its arrays */
	/* identity of the catalog row it was loaded from */
	TransactionId xmin;
	ItemPointerData tid;
	uint64		gen;			/* catalog_gen at load time */
	int			pins;			/* calls using it now */
	bool		detached;		/* replaced while pinned: freed at the last unpin */
	struct LoadedFull *next_detached;
	/* parameters, vocabulary and the id -> row lookup (a direct table or a
	 * sorted array): private (in cxt / malloc) or in a shared segment */
	T4rModelArrays a;
} LoadedFull;

typedef struct CacheEntry
{
	char		key[NAMEDATALEN + 16];	/* "name#version" (0 = current) */
	LoadedFull *lf;				/* NULL until loaded */
} CacheEntry;

static HTAB *model_cache = NULL;
static SPIPlanPtr plan_current = NULL;
static SPIPlanPtr plan_version = NULL;
static LoadedFull *detached_list = NULL;
static int	n_pinned = 0;		/* pins outstanding in this transaction */
static uint64 catalog_gen = 0;	/* bumped by every catalog change of this backend */
static bool xact_callback_registered = false;

/* ---------------------------------------------------------------- */

static void
lf_free(LoadedFull *lf)
{
	if (lf->lm.ctx)
		t4r_infer_ctx_free(lf->lm.ctx);
	if (lf->lm.model)
		t4r_model_free(lf->lm.model);	/* shared: the header only */
	if (lf->a.seg)
		dsm_detach(lf->a.seg);
	MemoryContextDelete(lf->cxt);
}

/* the entry stops pointing at lf: free it now, or when its last pin goes */
static void
lf_retire(LoadedFull *lf)
{
	if (lf == NULL)
		return;
	if (lf->pins > 0)
	{
		lf->detached = true;
		lf->next_detached = detached_list;
		detached_list = lf;
	}
	else
		lf_free(lf);
}

static void
free_detached(void)
{
	LoadedFull **pp = &detached_list;

	while (*pp)
	{
		LoadedFull *lf = *pp;

		if (lf->pins <= 0)
		{
			*pp = lf->next_detached;
			lf_free(lf);
		}
		else
			pp = &lf->next_detached;
	}
}

/* at the end of a transaction no call is running: pins left behind by
 * calls that errored out are void */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS st;
	CacheEntry *e;

	if (n_pinned == 0 && detached_list == NULL)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (model_cache)
	{
		hash_seq_init(&st, model_cache);
		while ((e = hash_seq_search(&st)) != NULL)
			if (e->lf)
				e->lf->pins = 0;
	}
	for (LoadedFull *lf = detached_list; lf; lf = lf->next_detached)
		lf->pins = 0;
	n_pinned = 0;
	free_detached();
}

void
t4r_pg_model_cache_reset(void)
{
	HASH_SEQ_STATUS st;
	CacheEntry *e;

	if (plan_current)
		SPI_freeplan(plan_current);
	if (plan_version)
		SPI_freeplan(plan_version);
	plan_current = plan_version = NULL;
	if (model_cache == NULL)
		return;
	hash_seq_init(&st, model_cache);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		lf_retire(e->lf);
		e->lf = NULL;
	}
}

void
t4r_pg_catalog_changed(void)
{
	catalog_gen++;
}

static void
init_cache(void)
{
	HASHCTL		ctl;

	if (!xact_callback_registered)
	{
		RegisterXactCallback(cache_xact_callback, NULL);
		xact_callback_registered = true;
	}
	if (model_cache)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN + 16;
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = TopMemoryContext;
	model_cache = hash_create("tim4rec model cache", 8, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* (version, xmin, ctid) of the requested row; inside a catalog session */
static SPIPlanPtr
prepare_check(const char *table, bool by_version)
{
	StringInfoData q;
	Oid			types[2] = {TEXTOID, INT4OID};
	SPIPlanPtr	p;

	if (!by_version && plan_current)
		return plan_current;
	if (by_version && plan_version)
		return plan_version;
	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT version, xmin, ctid FROM %s WHERE model_name OPERATOR(pg_catalog.=) $1 AND %s",
					 table, by_version ? "version OPERATOR(pg_catalog.=) $2" : "is_current");
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

/* a name (or text) column as a string in cxt; NULL when NULL */
static char *
getstr(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	if (isnull)
		return NULL;
	if (SPI_gettypeid(td, col) == NAMEOID)
		return MemoryContextStrdup(cxt, NameStr(*DatumGetName(d)));
	return MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

static int
getint(HeapTuple tup, TupleDesc td, int col, int dflt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	return isnull ? dflt : pg_strtoint32(TextDatumGetCString(d));
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

/* The small columns of the row at tid (owner, grants, source, filters)
 * into lf; inside a catalog session. */
static void
load_meta(const T4rCatalogSession *cs, LoadedFull *lf, ItemPointer tid)
{
	T4rLoadedModel *lm = &lf->lm;
	Oid			types[1] = {TIDOID};
	Datum		vals[1] = {PointerGetDatum(tid)};
	char	   *q;
	int			rc;
	HeapTuple	tup;
	TupleDesc	td;
	bool		isnull;
	MemoryContext cxt = lf->cxt;

	q = psprintf("SELECT source_schema, source_table, user_column, item_column, time_column, "
				 "order_column, %s, "
				 "config OPERATOR(pg_catalog.->>) 'min_user_interactions', "
				 "config OPERATOR(pg_catalog.->>) 'min_item_interactions', %s "
				 "FROM %s WHERE ctid OPERATOR(pg_catalog.=) $1",
				 cs->acl_columns, cs->id_columns, cs->table);
	rc = SPI_execute_with_args(q, 1, types, vals, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", lm->name, lm->version)));
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;
	lm->acl.source_schema = lm->source_schema = getstr(tup, td, 1, cxt);
	lm->acl.source_table = lm->source_table = getstr(tup, td, 2, cxt);
	lm->acl.user_column = lm->user_column = getstr(tup, td, 3, cxt);
	lm->acl.item_column = lm->item_column = getstr(tup, td, 4, cxt);
	lm->acl.time_column = lm->time_column = getstr(tup, td, 5, cxt);
	lm->order_column = getstr(tup, td, 6, cxt);
	if (lm->order_column && lm->order_column[0] == '\0')
		lm->order_column = NULL;
	lm->acl.order_column = lm->order_column;
	lm->acl.owner = getstr(tup, td, 7, cxt);
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Datum		d = SPI_getbinval(tup, td, 8, &isnull);

		t4r_pg_name_list(d, isnull, &lm->acl.grant_read);
		d = SPI_getbinval(tup, td, 9, &isnull);
		t4r_pg_name_list(d, isnull, &lm->acl.grant_usage);
		MemoryContextSwitchTo(old);
	}
	lm->min_user = getint(tup, td, 10, 5);
	lm->min_item = getint(tup, td, 11, 5);
	{
		char	   *u = getstr(tup, td, 12, cxt);
		char	   *i = getstr(tup, td, 13, cxt);

		lm->user_type = t4r_ids_type_oid(u);
		lm->item_type = t4r_ids_type_oid(i);
		if (!OidIsValid(lm->user_type) || !OidIsValid(lm->item_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" version %d has unknown id types %s / %s",
							lm->name, lm->version, u ? u : "NULL", i ? i : "NULL")));
	}
}

/*
 * The weights and the vocabulary of the row at tid, parsed into private
 * memory: *model (malloc'd by the core) and lf->a (arrays palloc'd in the
 * current memory context).  Inside a catalog session.
 */
/* rows 1..V-1 by popularity (training counts) desc, ties by row */
static void
load_pop_order(T4rModelArrays *a, const int64 *cnts, int V)
{
	PopEnt	   *p = palloc((size_t) V * sizeof(PopEnt));

	for (int r = 1; r < V; r++)
	{
		p[r - 1].cnt = cnts[r];
		p[r - 1].row = r;
	}
	qsort(p, V - 1, sizeof(PopEnt), cmp_pop);
	a->pop = palloc((size_t) V * sizeof(int32));
	for (int i = 0; i < V - 1; i++)
		a->pop[i] = p[i].row;
	pfree(p);
}

/* id -> row lookup: sorted pairs, and a direct table for dense ids */
static void
load_id_lookup(T4rModelArrays *a, const int64 *ids, int V, const char *name, int32 version)
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
	a->sorted_ids = palloc((size_t) V * sizeof(int64));
	a->sorted_rows = palloc((size_t) V * sizeof(int32));
	for (int i = 0; i < V - 1; i++)
	{
		a->sorted_ids[i] = pairs[2 * i];
		a->sorted_rows[i] = (int32) pairs[2 * i + 1];
	}
	pfree(pairs);
	a->drange = 0;
	a->direct = NULL;
	/* dense ids (the usual case): a direct table, at most 4 entries per row */
	if (mx >= mn && (uint64) mx - (uint64) mn < (uint64) 4 * V + 1024)
	{
		int64		range = mx - mn + 1;

		a->direct = palloc((size_t) range * sizeof(int32));
		memset(a->direct, 0xff, (size_t) range * sizeof(int32));
		for (int r = 1; r < V; r++)
			a->direct[ids[r] - mn] = r;
		a->dmin = mn;
		a->drange = range;
	}
}

static void
load_data(const T4rCatalogSession *cs, LoadedFull *lf, ItemPointer tid, t4r_model **model)
{
	const char *name = lf->lm.name;
	int32		version = lf->lm.version;
	T4rModelArrays *a = &lf->a;
	Oid			types[1] = {TIDOID};
	Datum		vals[1] = {PointerGetDatum(tid)};
	char	   *q;
	int			rc;
	HeapTuple	tup;
	TupleDesc	td;
	bool		isnull;
	bytea	   *w;
	char		err[256] = "";
	int			nids,
				ncnt,
				V;
	int64	   *ids,
			   *cnts;
	MemoryContext target = CurrentMemoryContext;

	q = psprintf("SELECT weights, item_ids, item_counts, %s FROM %s WHERE ctid OPERATOR(pg_catalog.=) $1",
				 cs->keys_column, cs->table);
	rc = SPI_execute_with_args(q, 1, types, vals, NULL, true, 1);
	/* SPI returns in its own procedure context (freed by SPI_finish): the
	 * arrays below must outlive the session */
	MemoryContextSwitchTo(target);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", name, version)));
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;

	{
		Datum		wd = SPI_getbinval(tup, td, 1, &isnull);

		if (isnull)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("model \"%s\" version %d has no weights", name, version)));
		w = DatumGetByteaPP(wd);
		rc = t4r_safetensors_read((const uint8_t *) VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w),
								  NULL, model, err, sizeof(err));
		/* the detoasted file is not needed once parsed (it would stay as
		 * long as the model is cached: a second copy of the weights) */
		if ((Pointer) w != DatumGetPointer(wd))
			pfree(w);
	}
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "reading the model's weights", err);

	nids = get_int8_array(SPI_getbinval(tup, td, 2, &isnull), &ids, "item_ids");
	if (isnull)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("item_ids is NULL")));
	memset(&a->keys, 0, sizeof(a->keys));
	{
		Datum		kd = SPI_getbinval(tup, td, 4, &isnull);

		if (!isnull)
		{
			/* text or uuid item ids: the flat key table; item_ids become the
			 * keys' ranks (ids.h) */
			ArrayType  *ka = DatumGetArrayTypeP(kd);
			Datum	   *el;
			bool	   *kn;
			int			nk;
			char	  **keys;

			deconstruct_array(ka, TEXTOID, -1, false, TYPALIGN_INT, &el, &kn, &nk);
			keys = palloc(sizeof(char *) * (nk + 1));
			keys[0] = NULL;
			for (int i = 0; i < nk; i++)
			{
				if (kn[i])
					ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
									errmsg("catalog column item_keys contains a NULL")));
				keys[i + 1] = TextDatumGetCString(el[i]);
			}
			pfree(ids);
			t4r_keys_build(&a->keys, keys, nk, &ids);
			for (int i = 1; i <= nk; i++)
				pfree(keys[i]);
			pfree(keys);
			nids = nk;
		}
	}
	ncnt = get_int8_array(SPI_getbinval(tup, td, 3, &isnull), &cnts, "item_counts");
	if (isnull)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("item_counts is NULL")));
	V = (*model)->cfg.n_items;
	if (nids != V - 1 || ncnt != V - 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" version %d: vocabulary size does not match the weights", name, version),
				 errdetail("The weights have %d item rows, item_ids has %d and item_counts %d elements.",
						   V - 1, nids, ncnt)));
	a->seg = NULL;
	a->cfg = (*model)->cfg;
	a->V = V;
	a->nparams = (*model)->layout.total;
	a->params = (*model)->params;
	a->ids = ids;
	a->counts = cnts;

	load_pop_order(a, cnts, V);
	load_id_lookup(a, ids, V, name, version);

	/* the projections packed for inference: shared with the weights */
	a->npacked = t4r_infer_pack_elems(*model);
	a->packed = palloc((a->npacked + 1) * sizeof(t4r_real));
	if (t4r_infer_pack_fill(*model, a->packed) != T4R_OK)
		elog(ERROR, "tim4rec: packing the weights of model \"%s\" version %d failed", name, version);
}

/*
 * Load the catalog row at tid into a new LoadedFull; inside a catalog
 * session.  With the shared registry, attach the row's segment, or build
 * the model privately and publish it (then free the private copy); a row
 * this transaction wrote, or a model that does not fit, stays private.
 */
static LoadedFull *
load_row(const T4rCatalogSession *cs, const char *name, int32 version,
		 TransactionId xmin, ItemPointer tid)
{
	MemoryContext cxt,
				old;
	LoadedFull *volatile lf = NULL;
	t4r_model  *volatile model = NULL;
	MemoryContext volatile datacxt = NULL;
	T4rSharedKey key;
	volatile bool claimed = false;

	cxt = AllocSetContextCreate(TopMemoryContext, "tim4rec model", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		bool		shared = false;
		bool		can_share = t4r_pg_shared_available() &&
			!TransactionIdIsCurrentTransactionId(xmin);
		int			rc;
		char		err[256] = "";
		T4rLoadedModel *lm;

		lf = palloc0(sizeof(LoadedFull));
		lf->cxt = cxt;
		lm = &lf->lm;
		strlcpy(lm->name, name, NAMEDATALEN);
		lm->version = version;
		load_meta(cs, lf, tid);

		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		key.relid = cs->relid;
		key.xmin = xmin;
		key.tid = *tid;
		/* attach, or be the one backend that loads this row (the others wait
		 * for it rather than each parsing a private copy at the same time) */
		if (can_share)
		{
			T4rSharedWait w = t4r_pg_shared_attach_or_claim(&key, &lf->a);

			shared = w == T4R_SHARED_ATTACHED;
			claimed = w == T4R_SHARED_CLAIMED;
		}
		if (!shared)
		{
			T4rModelArrays pub;
			t4r_model  *m = NULL;

			datacxt = AllocSetContextCreate(cxt, "tim4rec model data", ALLOCSET_DEFAULT_SIZES);
			MemoryContextSwitchTo(datacxt);
			ereport(DEBUG1,
					(errmsg_internal("tim4rec: loading model \"%s\" version %d from the catalog%s",
									 name, version, claimed ? " for the shared registry" : "")));
			load_data(cs, lf, tid, &m);
			model = m;
			MemoryContextSwitchTo(cxt);
			if (can_share)
				shared = t4r_pg_shared_publish(&key, name, &lf->a, &pub);
			if (claimed)
			{
				t4r_pg_shared_unclaim(&key, !shared);
				claimed = false;
			}
			if (shared)
			{
				/* the shared copy replaces the private one */
				t4r_model_free(model);
				model = NULL;
				MemoryContextDelete(datacxt);
				datacxt = NULL;
				lf->a = pub;
			}
		}
		if (shared)
		{
			t4r_model  *m = NULL;

			rc = t4r_model_wrap(&lf->a.cfg, lf->a.params, &m, err, sizeof(err));
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "mapping the shared model", err);
			model = m;
		}
		lm->item_ids = lf->a.ids;
		lm->item_keys = &lf->a.keys;
		lm->item_counts = lf->a.counts;
		lm->pop_order = lf->a.pop;
		{
			t4r_infer_ctx *c = NULL;

			rc = t4r_infer_ctx_create_packed(model, lf->a.packed, &c);
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "creating an inference context", NULL);
			lm->ctx = c;
		}
		lm->model = model;
		lm->packed = lf->a.packed;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		if (claimed)
			t4r_pg_shared_unclaim(&key, false);
		if (lf && lf->lm.ctx)
			t4r_infer_ctx_free(lf->lm.ctx);
		if (model)
			t4r_model_free(model);
		if (lf && lf->a.seg)
			dsm_detach(lf->a.seg);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return lf;
}

static void
make_key(char *key, const char *name, int32 version)
{
	memset(key, 0, NAMEDATALEN + 16);
	snprintf(key, NAMEDATALEN + 16, "%s#%d", name, version);
}

T4rLoadedModel *
t4r_pg_get_model(const char *name, int32 version, int priv)
{
	T4rCatalogSession cs;
	SPIPlanPtr	plan;
	Datum		vals[2];
	int			rc;
	int32		found_version;
	TransactionId xmin;
	ItemPointerData tid;
	char		key[NAMEDATALEN + 16];
	CacheEntry *e;
	LoadedFull *lf;
	bool		found;
	bool		isnull;

	if (name == NULL)
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_name must not be null")));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("model \"%s\" does not exist", name)));
	init_cache();
	make_key(key, name, version);

	t4r_pg_catalog_begin(&cs);
	plan = prepare_check(cs.table, version != 0);
	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);
	rc = SPI_execute_plan(plan, vals, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog check failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
	{
		/* dropped (or never there): free what this backend and the shared
		 * registry still hold */
		if (version == 0)
			t4r_pg_shared_forget(MyDatabaseId, cs.relid, name);
		e = hash_search(model_cache, key, HASH_FIND, NULL);
		if (e)
		{
			lf_retire(e->lf);
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
	xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)),
					&tid);

	/*
	 * Cached under the version asked for (0: current).  The row is the same
	 * when its xmin and ctid are; a row this transaction wrote is also
	 * re-read after any catalog change this backend made since (drop and
	 * re-create inside one transaction repeat version and xmin).
	 */
	e = hash_search(model_cache, key, HASH_ENTER, &found);
	if (!found)
		e->lf = NULL;
	lf = e->lf;
	if (lf == NULL || lf->lm.version != found_version || lf->xmin != xmin ||
		!ItemPointerEquals(&lf->tid, &tid) ||
		(TransactionIdIsCurrentTransactionId(xmin) && lf->gen != catalog_gen))
	{
		e->lf = NULL;
		lf_retire(lf);
		lf = load_row(&cs, name, found_version, xmin, &tid);
		lf->xmin = xmin;
		lf->tid = tid;
		lf->gen = catalog_gen;
		e->lf = lf;
	}
	t4r_pg_catalog_end(&cs);

	/* the caller's privileges (restored by t4r_pg_catalog_end) */
	t4r_pg_model_check(&lf->lm.acl, name, priv, GetUserId());
	lf->pins++;
	n_pinned++;
	return &lf->lm;
}

void
t4r_pg_release_model(T4rLoadedModel *lm)
{
	LoadedFull *lf = (LoadedFull *) lm;

	if (lf == NULL || lf->pins <= 0)
		return;
	lf->pins--;
	n_pinned--;
	if (lf->detached && lf->pins == 0)
		free_detached();
}

int32
t4r_pg_item_row(T4rLoadedModel *lm, int64 item_id)
{
	LoadedFull *e = (LoadedFull *) lm;

	if (e->a.drange > 0)
	{
		uint64		off = (uint64) item_id - (uint64) e->a.dmin;

		if (off >= (uint64) e->a.drange)
			return -1;
		return e->a.direct[off];
	}
	else
	{
		int			lo = 0,
					hi = lm->model->cfg.n_items - 2;

		while (lo <= hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (e->a.sorted_ids[mid] == item_id)
				return e->a.sorted_rows[mid];
			if (e->a.sorted_ids[mid] < item_id)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
		return -1;
	}
}
