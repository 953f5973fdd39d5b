/*
 * catalog.c - the model catalog: new versions (training and import),
 * deploy (switch / rollback), drop, export, the vocabulary, and the
 * owner and grants of a model.
 *
 * Every statement runs in a catalog session (access.c: as the catalog's
 * owner, search_path pinned, every name schema-qualified) in the caller's
 * transaction; the caller's rights are checked in C first (access.c has
 * the rules).  Changes of one model name are serialised by a
 * transaction-level advisory lock, so concurrent trainings of one name get
 * consecutive versions and at most one current version (the partial unique
 * index tim4rec_models_current guarantees it).
 *
 * Owner and grants belong to the model (the name): every version row
 * carries the same owner, grant_read and grant_usage; a new version copies
 * them; the role that creates version 1 becomes the owner.
 *
 * Dropping the current version makes the newest remaining version current
 * (so a model keeps serving after the newest version is removed); dropping
 * every version (version NULL) removes the model, its owner and grants.
 */
#include "tim4rec_pg.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(tim4rec_deploy);
PG_FUNCTION_INFO_V1(tim4rec_drop);
PG_FUNCTION_INFO_V1(tim4rec_set_serving);
PG_FUNCTION_INFO_V1(tim4rec_export);
PG_FUNCTION_INFO_V1(tim4rec_import);
PG_FUNCTION_INFO_V1(tim4rec_item_ids);
PG_FUNCTION_INFO_V1(tim4rec_item_keys);
PG_FUNCTION_INFO_V1(tim4rec_grant);
PG_FUNCTION_INFO_V1(tim4rec_revoke);
PG_FUNCTION_INFO_V1(tim4rec_alter_owner);

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */
static void
check_name(const char *name)
{
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty")));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name \"%s\" is too long", name),
				 errdetail("Model names have at most %d bytes.", NAMEDATALEN - 1)));
}

static char *
name_arg(FunctionCallInfo fcinfo, int i, const char *what)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* ERROR (code) "<what> contains the id X more than once" unless ids[0..n-1]
 * are distinct */
static void
check_distinct_ids(const int64 *ids, int n, int code, const char *what)
{
	int64	   *srt;

	if (n < 2)
		return;
	srt = palloc(sizeof(int64) * n);
	memcpy(srt, ids, sizeof(int64) * n);
	qsort(srt, n, sizeof(int64), cmp_int64);
	for (int i = 1; i < n; i++)
		if (srt[i] == srt[i - 1])
			ereport(ERROR,
					(errcode(code),
					 errmsg("%s contains the id " INT64_FORMAT " more than once", what, srt[i])));
	pfree(srt);
}

static Datum
int8_array(const int64 *v, int n, bool zeros)
{
	Datum	   *d = palloc(sizeof(Datum) * (n > 0 ? n : 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(zeros ? 0 : v[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
name_datum(const char *s)
{
	return DirectFunctionCall1(namein, CStringGetDatum(s ? s : ""));
}

static Datum
name_array(const T4rNameList *l)
{
	Datum	   *d = palloc(sizeof(Datum) * (l->n > 0 ? l->n : 1));

	for (int i = 0; i < l->n; i++)
		d[i] = name_datum(l->names[i]);
	return PointerGetDatum(construct_array(d, l->n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

static void
not_found(const char *name, int32 version)
{
	if (version == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("SELECT * FROM tim4rec_model_list lists the models you may read.")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" version %d does not exist", name, version),
			 errhint("SELECT * FROM tim4rec_model_list lists the models you may read and their versions.")));
}

#define SOURCE_COLUMNS "source_schema, source_table, " \
	"user_column, item_column, time_column, order_column"
#define N_ACL_COLUMNS 9

/* the access columns of a result row into acl (strings palloc'd) */
static void
acl_from_row(HeapTuple tup, TupleDesc td, T4rModelAcl *acl)
{
	const char *s[N_ACL_COLUMNS];
	bool		isnull;

	memset(acl, 0, sizeof(*acl));
	for (int c = 0; c < N_ACL_COLUMNS; c++)
	{
		Datum		d = SPI_getbinval(tup, td, c + 1, &isnull);

		s[c] = NULL;
		if (c == 1 || c == 2)
			t4r_pg_name_list(d, isnull, c == 1 ? &acl->grant_read : &acl->grant_usage);
		else if (!isnull)
			s[c] = pstrdup(NameStr(*DatumGetName(d)));
	}
	acl->owner = s[0];
	acl->source_schema = s[3];
	acl->source_table = s[4];
	acl->user_column = s[5];
	acl->item_column = s[6];
	acl->time_column = s[7];
	acl->order_column = s[8];
}

/*
 * Inside a session: the row of (name, version) (version 0: the current
 * one; version -1: any row, e.g. for owner checks) with its access columns
 * in acl and, when nextra > 0, the nextra columns (or expressions) of the
 * comma-separated list extra_cols in extra[] / extra_null[] (varlena values
 * detoasted and copied into `into`).  false when there is no such row.
 */
static bool
fetch_row(T4rCatalogSession *cs, const char *name, int32 version, T4rModelAcl *acl,
		  const char *extra_cols, int nextra, Datum *extra, bool *extra_null,
		  MemoryContext into, bool for_update)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];
	int			rc;
	char	   *q;

	Assert(nextra == 0 || (extra_cols && extra && extra_null));
	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);
	q = psprintf("SELECT %s, " SOURCE_COLUMNS "%s%s FROM %s WHERE model_name OPERATOR(pg_catalog.=) $1%s%s",
				 cs->acl_columns, nextra ? ", " : "", nextra ? extra_cols : "", cs->table,
				 version > 0 ? " AND version OPERATOR(pg_catalog.=) $2" :
				 version == 0 ? " AND is_current" : " ORDER BY version DESC LIMIT 1",
				 for_update ? " FOR UPDATE" : "");
	rc = SPI_execute_with_args(q, version > 0 ? 2 : 1, types, vals, NULL, !for_update, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		return false;
	if (SPI_tuptable->tupdesc->natts != N_ACL_COLUMNS + nextra)
		elog(ERROR, "tim4rec: catalog read returned %d columns, expected %d",
			 SPI_tuptable->tupdesc->natts, N_ACL_COLUMNS + nextra);
	{
		MemoryContext old = MemoryContextSwitchTo(into);

		acl_from_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, acl);
		for (int i = 0; i < nextra; i++)
		{
			Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, N_ACL_COLUMNS + i);
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  N_ACL_COLUMNS + i + 1, &extra_null[i]);

			if (extra_null[i])
				extra[i] = (Datum) 0;
			else if (att->attlen == -1)
				extra[i] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
			else
				extra[i] = datumCopy(d, att->attbyval, att->attlen);
		}
		MemoryContextSwitchTo(old);
	}
	return true;
}

/* ERROR unless the caller owns the (existing) model; false if it does not exist */
static bool
check_owner(T4rCatalogSession *cs, const char *name, T4rModelAcl *acl)
{
	if (!fetch_row(cs, name, -1, acl, NULL, 0, NULL, NULL, CurrentMemoryContext, false))
		return false;
	t4r_pg_model_check(acl, name, T4R_PRIV_OWNER, cs->caller);
	return true;
}

void
t4r_pg_check_model_writable(const char *model_name)
{
	T4rCatalogSession cs;
	T4rModelAcl acl;

	check_name(model_name);
	t4r_pg_catalog_begin(&cs);
	(void) check_owner(&cs, model_name, &acl);
	t4r_pg_catalog_end(&cs);
}

static bytea *meta_inject(const char *data, Size len, const char *meta, int meta_len,
							const char *name);

/*
 * The config column of (name, version) (version > 0), copied into the
 * current memory context; the caller must have checked the read privilege
 * (t4r_pg_get_model).  ERROR 42704 when the row does not exist.
 */
static Jsonb *
catalog_jsonb(const char *name, int32 version, const char *column)
{
	T4rCatalogSession cs;
	T4rModelAcl acl;
	Datum		d = (Datum) 0;
	bool		isnull = true;
	MemoryContext target = CurrentMemoryContext;
	bool		found;

	t4r_pg_catalog_begin(&cs);
	found = fetch_row(&cs, name, version, &acl, column, 1, &d, &isnull, target, false);
	MemoryContextSwitchTo(target);
	t4r_pg_catalog_end(&cs);
	if (!found || isnull)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", name, version)));
	return DatumGetJsonbP(d);
}

Jsonb *
t4r_pg_catalog_config(const char *name, int32 version)
{
	return catalog_jsonb(name, version, "config");
}

Jsonb *
t4r_pg_catalog_metrics(const char *name, int32 version)
{
	return catalog_jsonb(name, version, "metrics");
}

/* the INSERT of a new version, one column at a time */
typedef struct InsertArgs
{
	int			n;
	Oid			types[32];
	Datum		vals[32];
	char		nulls[33];
	StringInfoData cols;
	StringInfoData params;
} InsertArgs;

static void
ins_add(InsertArgs *a, const char *col, Oid type, Datum val, bool isnull)
{
	Assert(a->n < 32);
	a->types[a->n] = type;
	a->vals[a->n] = val;
	a->nulls[a->n] = isnull ? 'n' : ' ';
	a->n++;
	a->nulls[a->n] = '\0';
	appendStringInfo(&a->cols, "%s%s", a->n > 1 ? ", " : "", col);
	appendStringInfo(&a->params, "%s$%d", a->n > 1 ? ", " : "", a->n);
}

/*
 * The model's versions: the next version number, and the current version
 * with its validation NDCG@10 (*have_metric false when it has none usable).
 */
static int32
insert_versions(const T4rCatalogSession *cs, const char *name, int32 *cur_version,
				bool *have_metric, double *cur_metric)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(name)};
	int32		version = 1;
	char	   *q;
	int			rc;

	*cur_version = 0;
	*have_metric = false;
	*cur_metric = 0;
	q = psprintf("SELECT version, is_current, "
				 "(metrics OPERATOR(pg_catalog.->) 'valid') OPERATOR(pg_catalog.->>) 'ndcg@10' "
				 "FROM %s WHERE model_name OPERATOR(pg_catalog.=) $1", cs->table);
	rc = SPI_execute_with_args(q, 1, types, vals, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		v = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		Datum		m;

		if (v >= version)
			version = v + 1;
		if (!DatumGetBool(SPI_getbinval(tup, td, 2, &isnull)))
			continue;
		*cur_version = v;
		m = SPI_getbinval(tup, td, 3, &isnull);
		if (!isnull)
		{
			char	   *txt = TextDatumGetCString(m);
			char	   *end;
			double		x = strtod(txt, &end);

			/* a current version without a usable metric: nothing to beat */
			if (end != txt && isfinite(x))
			{
				*have_metric = true;
				*cur_metric = x;
			}
		}
	}
	return version;
}

/* the stored weights: the training counts travel with them (metadata
 * tim4rec_item_counts, rows 1..V-1), so an exported copy imported elsewhere
 * (a shard, another server) keeps the cold-start order */
static bytea *
insert_weights(const T4rNewVersion *nv)
{
	StringInfoData cnt,
				meta;
	bytea	   *w;

	if (nv->item_counts == NULL || nv->n_items <= 1)
	{
		w = palloc_extended(VARHDRSZ + nv->weights_len, MCXT_ALLOC_HUGE);
		SET_VARSIZE(w, VARHDRSZ + nv->weights_len);
		memcpy(VARDATA(w), nv->weights, nv->weights_len);
		return w;
	}
	initStringInfo(&cnt);
	appendStringInfoChar(&cnt, '[');
	for (int r = 1; r < nv->n_items; r++)
		appendStringInfo(&cnt, r > 1 ? "," INT64_FORMAT : INT64_FORMAT, nv->item_counts[r]);
	appendStringInfoChar(&cnt, ']');
	initStringInfo(&meta);
	appendStringInfoString(&meta, "\"tim4rec_item_counts\":");
	escape_json(&meta, cnt.data);
	appendStringInfoChar(&meta, ',');
	return meta_inject((const char *) nv->weights, nv->weights_len, meta.data, meta.len,
					   nv->model_name);
}

/* INSERT the row of the new version (columns the catalog has) */
static void
insert_row(const T4rCatalogSession *cs, const T4rNewVersion *nv, int32 version, bool deploy,
		   Jsonb *metrics, bytea *w, const T4rModelAcl *acl)
{
	InsertArgs	a;
	int			V = nv->n_items;
	Oid			utype = OidIsValid(nv->user_type) ? nv->user_type : INT8OID;
	Oid			itype = OidIsValid(nv->item_type) ? nv->item_type : INT8OID;
	int			rc;

	if (!cs->has_ids && (t4r_ids_kind(utype) != T4R_ID_INT || t4r_ids_kind(itype) != T4R_ID_INT))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the model catalog has no id types yet"),
				 errdetail("The model has user ids of type %s and item ids of type %s.",
						   t4r_ids_type_name(utype), t4r_ids_type_name(itype)),
				 errhint("Run ALTER EXTENSION tim4rec UPDATE (as a superuser).")));
	/* the parent columns came with 0.3; a warm start needs them */
	if (nv->parent_model != NULL && get_attnum(cs->relid, "parent_model") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tim4rec catalog has no parent_model column"),
				 errhint("Run ALTER EXTENSION tim4rec UPDATE (as a superuser).")));

	memset(&a, 0, sizeof(a));
	initStringInfo(&a.cols);
	initStringInfo(&a.params);
	ins_add(&a, "model_name", TEXTOID, CStringGetTextDatum(nv->model_name), false);
	ins_add(&a, "version", INT4OID, Int32GetDatum(version), false);
	ins_add(&a, "is_current", BOOLOID, BoolGetDatum(deploy), false);
	ins_add(&a, "source_schema", NAMEOID, name_datum(nv->source_schema), false);
	ins_add(&a, "source_table", NAMEOID, name_datum(nv->source_table), false);
	ins_add(&a, "user_column", NAMEOID, name_datum(nv->user_column), false);
	ins_add(&a, "item_column", NAMEOID, name_datum(nv->item_column), false);
	ins_add(&a, "time_column", NAMEOID, name_datum(nv->time_column), false);
	ins_add(&a, "order_column", NAMEOID, name_datum(nv->order_column), nv->order_column == NULL);
	ins_add(&a, "config", JSONBOID, JsonbPGetDatum(nv->config), false);
	ins_add(&a, "item_ids", INT8ARRAYOID, int8_array(nv->item_ids + 1, nv->item_keys ? 0 : V - 1, false),
			false);
	ins_add(&a, "item_counts", INT8ARRAYOID,
			int8_array(nv->item_counts ? nv->item_counts + 1 : NULL, V - 1, nv->item_counts == NULL),
			false);
	ins_add(&a, "metrics", JSONBOID, metrics ? JsonbPGetDatum(metrics) : (Datum) 0, metrics == NULL);
	ins_add(&a, "history", JSONBOID, nv->history ? JsonbPGetDatum(nv->history) : (Datum) 0,
			nv->history == NULL);
	ins_add(&a, "weights", BYTEAOID, PointerGetDatum(w), false);
	if (cs->has_acl)
	{
		ins_add(&a, "owner", NAMEOID, name_datum(acl->owner), false);
		ins_add(&a, "grant_read", NAMEARRAYOID, name_array(&acl->grant_read), false);
		ins_add(&a, "grant_usage", NAMEARRAYOID, name_array(&acl->grant_usage), false);
	}
	if (cs->has_ids)
	{
		Datum		keys = (Datum) 0;

		if (nv->item_keys)
		{
			Datum	   *k = palloc(sizeof(Datum) * (V > 1 ? V - 1 : 1));

			for (int r = 1; r < V; r++)
				k[r - 1] = CStringGetTextDatum(nv->item_keys[r]);
			keys = PointerGetDatum(construct_array(k, V - 1, TEXTOID, -1, false, TYPALIGN_INT));
		}
		ins_add(&a, "user_id_type", TEXTOID, CStringGetTextDatum(t4r_ids_type_name(utype)), false);
		ins_add(&a, "item_id_type", TEXTOID, CStringGetTextDatum(t4r_ids_type_name(itype)), false);
		ins_add(&a, "item_keys", TEXTARRAYOID, keys, nv->item_keys == NULL);
	}
	if (nv->parent_model != NULL)
	{
		ins_add(&a, "parent_model", TEXTOID, CStringGetTextDatum(nv->parent_model), false);
		ins_add(&a, "parent_version", INT4OID, Int32GetDatum(nv->parent_version), false);
	}
	rc = SPI_execute_with_args(psprintf("INSERT INTO %s (%s) VALUES (%s)", cs->table, a.cols.data,
										a.params.data),
							   a.n, a.types, a.vals, a.nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "tim4rec: catalog insert failed: %s", SPI_result_code_string(rc));
}

int32
t4r_pg_catalog_insert(const T4rNewVersion *nv, bool *deployed)
{
	T4rCatalogSession cs;
	int			rc;
	int32		version,
				cur_version;
	bool		deploy = nv->deploy != 0;
	bool		have_cur_metric;
	double		cur_metric;
	Jsonb	   *metrics = nv->metrics;
	T4rModelAcl acl;

	check_name(nv->model_name);
	t4r_pg_catalog_begin(&cs);
	t4r_pg_catalog_lock(nv->model_name);

	/* owner and grants of an existing model: the caller must own it */
	memset(&acl, 0, sizeof(acl));
	if (!check_owner(&cs, nv->model_name, &acl))
		acl.owner = GetUserNameFromId(cs.caller, false);

	version = insert_versions(&cs, nv->model_name, &cur_version, &have_cur_metric, &cur_metric);
	if (nv->deploy == 2 && have_cur_metric && !(nv->valid_ndcg10 > cur_metric))
		deploy = false;
	/* a model whose validation metric is not a number is never deployed */
	if (isnan(nv->valid_ndcg10))
		deploy = false;
	/* a version that is not deployed says why, in its metrics */
	if (!deploy && nv->deploy != 0 && metrics != NULL)
	{
		JsonbParseState *st = NULL;
		char	   *why;

		if (isnan(nv->valid_ndcg10))
			why = "validation NDCG@10 is not a number";
		else
			why = psprintf("if_better: validation NDCG@10 %.6f does not beat %.6f of the current version %d",
						   nv->valid_ndcg10, cur_metric, cur_version);
		t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
		t4r_jb_key(&st, "not_deployed");
		t4r_jb_str(&st, why);
		metrics = t4r_jb_concat(metrics, t4r_jb_end(&st, WJB_END_OBJECT));
	}

	if (deploy)
	{
		Oid			types[1] = {TEXTOID};
		Datum		vals[1] = {CStringGetTextDatum(nv->model_name)};

		rc = SPI_execute_with_args(psprintf("UPDATE %s SET is_current = false "
											"WHERE model_name OPERATOR(pg_catalog.=) $1 AND is_current",
											cs.table),
								   1, types, vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	}
	insert_row(&cs, nv, version, deploy, metrics, insert_weights(nv), &acl);
	t4r_pg_catalog_changed();
	t4r_pg_catalog_end(&cs);
	if (deployed)
		*deployed = deploy;
	return version;
}

/* ------------------------------------------------------------------ */
/* tim4rec_deploy(model_name text, version int) RETURNS void           */
/* ------------------------------------------------------------------ */
Datum
tim4rec_deploy(PG_FUNCTION_ARGS)
{
	char	   *name;
	int32		version;
	T4rCatalogSession cs;
	T4rModelAcl acl;
	int			rc;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];

	PreventCommandIfReadOnly("tim4rec_deploy()");
	name = name_arg(fcinfo, 0, "model_name");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("version must not be NULL")));
	version = PG_GETARG_INT32(1);
	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);

	t4r_pg_catalog_begin(&cs);
	t4r_pg_catalog_lock(name);
	if (!check_owner(&cs, name, &acl))
		not_found(name, 0);
	if (!fetch_row(&cs, name, version, &acl, NULL, 0, NULL, NULL, CurrentMemoryContext, true))
		not_found(name, version);
	/* two statements: the partial unique index is checked row by row */
	rc = SPI_execute_with_args(psprintf("UPDATE %s SET is_current = false "
										"WHERE model_name OPERATOR(pg_catalog.=) $1 AND is_current "
										"AND version OPERATOR(pg_catalog.<>) $2", cs.table),
							   2, types, vals, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args(psprintf("UPDATE %s SET is_current = true "
										"WHERE model_name OPERATOR(pg_catalog.=) $1 "
										"AND version OPERATOR(pg_catalog.=) $2 AND NOT is_current", cs.table),
							   2, types, vals, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	t4r_pg_catalog_changed();
	t4r_pg_catalog_end(&cs);
	PG_RETURN_VOID();
}

static int64 *import_meta_counts(bytea *wb, int V);

/* ------------------------------------------------------------------ */
/* tim4rec_set_serving(model_name text, options jsonb,                */
/*                     version int DEFAULT NULL) RETURNS jsonb         */
/* ------------------------------------------------------------------ */
/*
 * Change what a trained version serves (tie_average), in place: the
 * weights' metadata and the config column; the weights, metrics and
 * history stay.  The model caches key on the row's xmin and ctid, so every
 * session serves the new options from its next call.  Owner only.
 */
Datum
tim4rec_set_serving(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *opts;
	int32		version = 0;
	T4rCatalogSession cs;
	T4rModelAcl acl;
	Datum		row[3];
	bool		rownull[3];
	int			rc;
	bytea	   *wb;
	Jsonb	   *config;
	t4r_model  *volatile model = NULL;
	uint8_t    *volatile buf = NULL;
	Jsonb	   *volatile result = NULL;
	MemoryContext target = CurrentMemoryContext;

	PreventCommandIfReadOnly("tim4rec_set_serving()");
	PreventCommandDuringRecovery("tim4rec_set_serving()");
	name = name_arg(fcinfo, 0, "model_name");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("options must not be NULL")));
	opts = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
	{
		version = PG_GETARG_INT32(2);
		if (version < 1)
			not_found(name, version);
	}
	/* keys and values before any catalog access */
	{
		t4r_config	c;

		t4r_config_preset(&c, NULL);
		t4r_pg_serving_options(opts, &c);
	}

	t4r_pg_catalog_begin(&cs);
	t4r_pg_catalog_lock(name);
	if (!check_owner(&cs, name, &acl))
		not_found(name, 0);
	if (!fetch_row(&cs, name, version, &acl, "version, config, weights", 3, row, rownull,
				   CurrentMemoryContext, true))
	{
		if (version == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" has no current version", name),
					 errhint("Name a version, or make one current with tim4rec_deploy().")));
		not_found(name, version);
	}
	if (rownull[0] || rownull[1] || rownull[2])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\": catalog row with a NULL version, config or weights", name)));
	version = DatumGetInt32(row[0]);
	config = DatumGetJsonbP(row[1]);
	wb = DatumGetByteaPP(row[2]);

	PG_TRY();
	{
		t4r_model  *m = NULL;
		char		err[512] = "";
		size_t		len = 0;
		uint8_t    *b = NULL;
		T4rTrainOptions o;
		Jsonb	   *echo;
		JsonbParseState *st = NULL;
		JsonbIterator *it;
		JsonbValue	v;
		char	   *key;

		rc = t4r_safetensors_read((const uint8_t *) VARDATA_ANY(wb), VARSIZE_ANY_EXHDR(wb),
								  NULL, &m, err, sizeof(err));
		model = m;
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "reading the stored model", err);
		t4r_pg_serving_options(opts, &model->cfg);
		rc = t4r_safetensors_write(model, &b, &len);
		buf = b;
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "serialising the model", NULL);

		/* the changed keys as the config column writes them */
		t4r_pg_parse_options(config, &o, "config");
		o.cfg = model->cfg;
		echo = t4r_pg_options_json(&o);
		t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
		it = JsonbIteratorInit(&opts->root);
		while (t4r_jb_next_pair(&it, &key, &v))
		{
			t4r_jb_key(&st, key);
			t4r_jb_value(&st, getKeyJsonValueFromContainer(&echo->root, key, strlen(key), NULL));
		}
		result = t4r_jb_concat(config, t4r_jb_end(&st, WJB_END_OBJECT));

		{
			Oid			ut[4] = {TEXTOID, INT4OID, BYTEAOID, JSONBOID};
			Datum		uv[4];
			T4rNewVersion nv;
			bytea	   *nw;

			/* stored as a new version's file is: the training counts too */
			memset(&nv, 0, sizeof(nv));
			nv.model_name = name;
			nv.weights = buf;
			nv.weights_len = len;
			nv.n_items = model->cfg.n_items;
			nv.item_counts = import_meta_counts(wb, nv.n_items);
			nw = insert_weights(&nv);
			uv[0] = CStringGetTextDatum(name);
			uv[1] = Int32GetDatum(version);
			uv[2] = PointerGetDatum(nw);
			uv[3] = JsonbPGetDatum(result);
			rc = SPI_execute_with_args(psprintf("UPDATE %s SET weights = $3, config = $4 "
												"WHERE model_name OPERATOR(pg_catalog.=) $1 "
												"AND version OPERATOR(pg_catalog.=) $2", cs.table),
									   4, ut, uv, NULL, false, 0);
			if (rc != SPI_OK_UPDATE || SPI_processed != 1)
				elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
		}
	}
	PG_FINALLY();
	{
		if (model)
			t4r_model_free(model);
		free(buf);
	}
	PG_END_TRY();
	t4r_pg_catalog_changed();
	/* the result outlives the catalog session's SPI memory */
	{
		MemoryContext old = MemoryContextSwitchTo(target);

		result = DatumGetJsonbPCopy(JsonbPGetDatum(result));
		MemoryContextSwitchTo(old);
	}
	t4r_pg_catalog_end(&cs);
	PG_RETURN_JSONB_P(result);
}

/* ------------------------------------------------------------------ */
/* tim4rec_drop(model_name text, version int DEFAULT NULL) RETURNS int */
/* (number of versions dropped)                                        */
/* ------------------------------------------------------------------ */
Datum
tim4rec_drop(PG_FUNCTION_ARGS)
{
	char	   *name;
	T4rCatalogSession cs;
	T4rModelAcl acl;
	int			rc;
	uint64		ndropped;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];
	bool		all = PG_ARGISNULL(1);

	PreventCommandIfReadOnly("tim4rec_drop()");
	name = name_arg(fcinfo, 0, "model_name");
	vals[0] = CStringGetTextDatum(name);
	vals[1] = all ? Int32GetDatum(0) : PG_GETARG_DATUM(1);

	t4r_pg_catalog_begin(&cs);
	t4r_pg_catalog_lock(name);
	if (!check_owner(&cs, name, &acl))
		not_found(name, 0);
	if (all)
		rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE model_name OPERATOR(pg_catalog.=) $1",
											cs.table),
								   1, types, vals, NULL, false, 0);
	else
		rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE model_name OPERATOR(pg_catalog.=) $1 "
											"AND version OPERATOR(pg_catalog.=) $2", cs.table),
								   2, types, vals, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "tim4rec: catalog delete failed: %s", SPI_result_code_string(rc));
	ndropped = SPI_processed;
	if (ndropped == 0)
		not_found(name, all ? 0 : PG_GETARG_INT32(1));
	if (!all)
	{
		/* the dropped version was current: the newest remaining one takes over */
		rc = SPI_execute_with_args(psprintf("UPDATE %1$s SET is_current = true "
											"WHERE model_name OPERATOR(pg_catalog.=) $1 "
											"AND version OPERATOR(pg_catalog.=) (SELECT version FROM %1$s "
											"  WHERE model_name OPERATOR(pg_catalog.=) $1 ORDER BY version DESC LIMIT 1) "
											"AND NOT EXISTS (SELECT FROM %1$s "
											"  WHERE model_name OPERATOR(pg_catalog.=) $1 AND is_current)",
											cs.table),
								   1, types, vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	}
	t4r_pg_catalog_changed();
	t4r_pg_catalog_end(&cs);
	PG_RETURN_INT32((int32) ndropped);
}

/* one column of the current (or a given) version, for a caller with READ */
static Datum
read_column(FunctionCallInfo fcinfo, const char *name, int32 version, const char *col)
{
	T4rCatalogSession cs;
	T4rModelAcl acl;
	Datum		d;
	bool		isnull;
	MemoryContext caller = CurrentMemoryContext;

	t4r_pg_catalog_begin(&cs);
	/* "expression for a 0.3 catalog|expression for an older one" */
	if (strchr(col, '|'))
	{
		char	   *bar = strchr(col, '|');

		col = cs.has_ids ? pnstrdup(col, bar - col) : pstrdup(bar + 1);
	}
	if (!fetch_row(&cs, name, version, &acl, col, 1, &d, &isnull, caller, false))
		not_found(name, version);
	t4r_pg_catalog_end(&cs);
	t4r_pg_model_check(&acl, name, T4R_PRIV_READ, GetUserId());
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\": catalog column %s is NULL", name, col)));
	return d;
}

/* ------------------------------------------------------------------ */
/* tim4rec_export(model_name text) RETURNS bytea                       */
/* ------------------------------------------------------------------ */
/*
 * Models with text or uuid ids also record them in the file's
 * __metadata__ (strings, as safetensors requires): tim4rec_user_id_type,
 * tim4rec_item_id_type and tim4rec_item_ids (a JSON array of the item ids
 * of rows 1..V-1, as text), which tim4rec_import reads back.
 */
#define META_PREFIX "{\"__metadata__\":{"

/*
 * A tim4rec safetensors file (data, len) with the metadata entries `meta`
 * (`"key":"value",` pairs, each value a JSON string) added right after
 * "{"__metadata__":{", the header's trailing spaces trimmed and re-padded
 * to 8 bytes.  ERROR 22P03-like (data corrupted) if the file does not
 * start with our header.
 */
static bytea *
meta_inject(const char *data, Size len, const char *meta, int meta_len, const char *name)
{
	uint64		hlen = 0,
				old_h,
				new_h;
	StringInfoData out;

	for (int i = 0; i < 8 && i < (int) len; i++)
		hlen |= (uint64) (uint8) data[i] << (8 * i);
	if (len < 8 || hlen > len - 8 || hlen < strlen(META_PREFIX) ||
		memcmp(data + 8, META_PREFIX, strlen(META_PREFIX)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\": the weights are not a tim4rec safetensors file", name)));
	old_h = hlen;
	while (old_h > 0 && data[8 + old_h - 1] == ' ')
		old_h--;
	new_h = old_h + meta_len;
	while (new_h % 8 != 0)
		new_h++;
	initStringInfo(&out);
	enlargeStringInfo(&out, VARHDRSZ + 8 + new_h + (len - 8 - hlen));
	appendBinaryStringInfo(&out, "0123", VARHDRSZ);
	for (int i = 0; i < 8; i++)
		appendStringInfoChar(&out, (char) ((new_h >> (8 * i)) & 0xff));
	appendBinaryStringInfo(&out, data + 8, strlen(META_PREFIX));
	appendBinaryStringInfo(&out, meta, meta_len);
	appendBinaryStringInfo(&out, data + 8 + strlen(META_PREFIX), old_h - strlen(META_PREFIX));
	for (uint64 i = old_h + meta_len; i < new_h; i++)
		appendStringInfoChar(&out, ' ');
	appendBinaryStringInfo(&out, data + 8 + hlen, len - 8 - hlen);
	SET_VARSIZE(out.data, out.len);
	return (bytea *) out.data;
}

Datum
tim4rec_export(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, "model_name");
	Datum		w = read_column(fcinfo, name, 0, "weights");
	char	   *types = TextDatumGetCString(read_column(fcinfo, name, 0,
														"pg_catalog.concat(user_id_type, ',', item_id_type)|'bigint,bigint'::pg_catalog.text"));
	bytea	   *b = DatumGetByteaPP(w);
	const char *data = VARDATA_ANY(b);
	Size		len = VARSIZE_ANY_EXHDR(b);
	uint64		hlen = 0;
	char	   *comma = strchr(types, ',');
	StringInfoData meta;
	ArrayType  *keys;
	Datum	   *el;
	bool	   *nulls;
	int			n;

	/* integer ids: the file as stored (ids come from tim4rec_item_ids) */
	if (comma == NULL)
		PG_RETURN_DATUM(w);
	*comma = '\0';
	if (t4r_ids_kind(t4r_ids_type_oid(types)) == T4R_ID_INT &&
		t4r_ids_kind(t4r_ids_type_oid(comma + 1)) == T4R_ID_INT)
		PG_RETURN_DATUM(w);
	for (int i = 0; i < 8 && i < (int) len; i++)
		hlen |= (uint64) (uint8) data[i] << (8 * i);
	if (len < 8 || hlen > len - 8 || hlen < strlen(META_PREFIX) ||
		memcmp(data + 8, META_PREFIX, strlen(META_PREFIX)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\": the stored weights are not a tim4rec safetensors file", name)));
	keys = DatumGetArrayTypeP(read_column(fcinfo, name, 0,
										  "COALESCE(item_keys, CAST(item_ids AS pg_catalog.text[]))|CAST(item_ids AS pg_catalog.text[])"));
	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &el, &nulls, &n);
	{
		StringInfoData ids;

		initStringInfo(&ids);
		appendStringInfoChar(&ids, '[');
		for (int i = 0; i < n; i++)
		{
			if (i)
				appendStringInfoChar(&ids, ',');
			escape_json(&ids, TextDatumGetCString(el[i]));
		}
		appendStringInfoChar(&ids, ']');
		initStringInfo(&meta);
		appendStringInfoString(&meta, "\"tim4rec_user_id_type\":");
		escape_json(&meta, types);
		appendStringInfoString(&meta, ",\"tim4rec_item_id_type\":");
		escape_json(&meta, comma + 1);
		appendStringInfoString(&meta, ",\"tim4rec_item_ids\":");
		escape_json(&meta, ids.data);
		appendStringInfoChar(&meta, ',');
	}
	PG_RETURN_BYTEA_P(meta_inject(data, len, meta.data, meta.len, name));
}

/* a string of the file's __metadata__, NULL when absent */
static char *
file_meta(const uint8 *data, Size len, const char *key)
{
	uint64		hlen = 0;
	char	   *txt;
	Jsonb	   *j;
	JsonbValue	k,
			   *m,
			   *v;

	if (len < 8)
		return NULL;
	for (int i = 0; i < 8; i++)
		hlen |= (uint64) data[i] << (8 * i);
	if (hlen > len - 8)
		return NULL;
	txt = pnstrdup((const char *) data + 8, hlen);
	j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(txt)));
	if (!JB_ROOT_IS_OBJECT(j))
		return NULL;
	k.type = jbvString;
	k.val.string.val = "__metadata__";
	k.val.string.len = strlen("__metadata__");
	m = findJsonbValueFromContainer(&j->root, JB_FOBJECT, &k);
	if (m == NULL || m->type != jbvBinary)
		return NULL;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(m->val.binary.data, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* ------------------------------------------------------------------ */
/* tim4rec_item_ids(model_name text, version int DEFAULT NULL)          */
/* RETURNS bigint[]: item_ids[r] is the id of vocabulary row r          */
/* ------------------------------------------------------------------ */
Datum
tim4rec_item_ids(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, "model_name");
	int32		version = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);

	char	   *itype;

	if (!PG_ARGISNULL(1) && version <= 0)
		not_found(name, version);
	itype = TextDatumGetCString(read_column(fcinfo, name, version, "item_id_type|'bigint'::pg_catalog.text"));
	if (t4r_ids_kind(t4r_ids_type_oid(itype)) != T4R_ID_INT)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("model \"%s\" has item ids of type %s, not bigint", name, itype),
				 errhint("Use tim4rec_item_keys(model_name), which gives the item ids of any type as text[].")));
	PG_RETURN_DATUM(read_column(fcinfo, name, version, "item_ids"));
}

/* tim4rec_item_keys(model_name text, version int DEFAULT NULL) RETURNS
 * text[]: the item ids of any type as text, in vocabulary row order */
Datum
tim4rec_item_keys(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, "model_name");
	int32		version = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);

	if (!PG_ARGISNULL(1) && version <= 0)
		not_found(name, version);
	PG_RETURN_DATUM(read_column(fcinfo, name, version,
								"COALESCE(item_keys, CAST(item_ids AS pg_catalog.text[]))|CAST(item_ids AS pg_catalog.text[])"));
}

/* ------------------------------------------------------------------ */
/* grants and owner                                                    */
/* ------------------------------------------------------------------ */

/* role argument: an existing role or PUBLIC; returns the stored name */
static char *
role_arg(FunctionCallInfo fcinfo, int i, const char *what)
{
	char	   *r;

	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
	r = pstrdup(NameStr(*PG_GETARG_NAME(i)));
	if (pg_strcasecmp(r, "public") == 0)
		return pstrdup("public");
	(void) get_role_oid(r, false);	/* ERROR 42704 if there is no such role */
	return r;
}

/* privilege argument: 'usage' or 'read' (NULL: both when allow_null) */
static int
priv_arg(FunctionCallInfo fcinfo, int i, bool allow_null)
{
	char	   *p;

	if (PG_ARGISNULL(i))
	{
		if (allow_null)
			return 0;
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("privilege must not be NULL")));
	}
	p = text_to_cstring(PG_GETARG_TEXT_PP(i));
	if (pg_strcasecmp(p, "usage") == 0)
		return T4R_PRIV_USAGE;
	if (pg_strcasecmp(p, "read") == 0)
		return T4R_PRIV_READ;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown model privilege \"%s\"", p),
			 errhint("Model privileges are 'usage' (recommend, evaluate) and 'read' (usage, plus the catalog row, item ids and export).")));
	return 0;
}

static bool
list_has(const T4rNameList *l, const char *r)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->names[i], r) == 0)
			return true;
	return false;
}

static void
list_set(T4rNameList *l, const char *r, bool present)
{
	if (present && !list_has(l, r))
	{
		char	  **n = palloc(sizeof(char *) * (l->n + 1));

		for (int i = 0; i < l->n; i++)
			n[i] = l->names[i];
		n[l->n++] = pstrdup(r);
		l->names = n;
	}
	else if (!present)
	{
		int			k = 0;

		for (int i = 0; i < l->n; i++)
			if (strcmp(l->names[i], r) != 0)
				l->names[k++] = l->names[i];
		l->n = k;
	}
}

/* store owner and grants on every version row of the model */
static void
update_acl(T4rCatalogSession *cs, const char *name, const T4rModelAcl *acl)
{
	Oid			types[4] = {TEXTOID, NAMEOID, NAMEARRAYOID, NAMEARRAYOID};
	Datum		vals[4];
	int			rc;

	if (!cs->has_acl)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the model catalog has no owners or grants yet"),
				 errhint("Run ALTER EXTENSION tim4rec UPDATE (as a superuser).")));
	vals[0] = CStringGetTextDatum(name);
	vals[1] = name_datum(acl->owner);
	vals[2] = name_array(&acl->grant_read);
	vals[3] = name_array(&acl->grant_usage);
	rc = SPI_execute_with_args(psprintf("UPDATE %s SET owner = $2, grant_read = $3, grant_usage = $4 "
										"WHERE model_name OPERATOR(pg_catalog.=) $1", cs->table),
							   4, types, vals, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	t4r_pg_catalog_changed();
}

static Datum
change_grant(FunctionCallInfo fcinfo, bool grant)
{
	char	   *name;
	char	   *role;
	int			priv;
	T4rCatalogSession cs;
	T4rModelAcl acl;

	PreventCommandIfReadOnly(grant ? "tim4rec_grant()" : "tim4rec_revoke()");
	name = name_arg(fcinfo, 0, "model_name");
	role = role_arg(fcinfo, 1, "role");
	priv = priv_arg(fcinfo, 2, !grant);

	t4r_pg_catalog_begin(&cs);
	t4r_pg_catalog_lock(name);
	if (!check_owner(&cs, name, &acl))
		not_found(name, 0);
	if (priv == 0 || priv == T4R_PRIV_READ)
		list_set(&acl.grant_read, role, grant);
	if (priv == 0 || priv == T4R_PRIV_USAGE)
		list_set(&acl.grant_usage, role, grant);
	update_acl(&cs, name, &acl);
	t4r_pg_catalog_end(&cs);
	PG_RETURN_VOID();
}

/* tim4rec_grant(model_name text, role name, privilege text DEFAULT 'usage') */
Datum
tim4rec_grant(PG_FUNCTION_ARGS)
{
	return change_grant(fcinfo, true);
}

/* tim4rec_revoke(model_name text, role name, privilege text DEFAULT NULL = both) */
Datum
tim4rec_revoke(PG_FUNCTION_ARGS)
{
	return change_grant(fcinfo, false);
}

/* tim4rec_alter_owner(model_name text, new_owner name): the owner (or a
 * superuser) hands the model to a role the caller is a member of */
Datum
tim4rec_alter_owner(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *role;
	Oid			roleid;
	T4rCatalogSession cs;
	T4rModelAcl acl;

	PreventCommandIfReadOnly("tim4rec_alter_owner()");
	name = name_arg(fcinfo, 0, "model_name");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("new_owner must not be NULL")));
	role = pstrdup(NameStr(*PG_GETARG_NAME(1)));
	roleid = get_role_oid(role, false);
	if (!superuser() && !is_member_of_role(GetUserId(), roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be member of role \"%s\"", role),
				 errdetail("The new owner of a model must be a role you are a member of.")));

	t4r_pg_catalog_begin(&cs);
	t4r_pg_catalog_lock(name);
	if (!check_owner(&cs, name, &acl))
		not_found(name, 0);
	acl.owner = role;
	update_acl(&cs, name, &acl);
	t4r_pg_catalog_end(&cs);
	PG_RETURN_VOID();
}

/*
 * The training counts a file carries (metadata tim4rec_item_counts, written
 * with every version since 0.3: a JSON array of V-1 non-negative integers,
 * rows 1..V-1), as [V] with [0] = 0; NULL when the file has none (older
 * files, or files from elsewhere: the cold start then lists rows in order).
 * ERROR 22P03 when malformed.
 */
static int64 *
import_meta_counts(bytea *wb, int V)
{
	char	   *json = file_meta((const uint8 *) VARDATA_ANY(wb), VARSIZE_ANY_EXHDR(wb), "tim4rec_item_counts");
	Jsonb	   *j;
	int64	   *counts;

	if (json == NULL)
		return NULL;
	j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	if (!JB_ROOT_IS_ARRAY(j) || JB_ROOT_COUNT(j) != (uint32) (V - 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid model file: __metadata__.tim4rec_item_counts must be an array of %d counts", V - 1)));
	counts = palloc0(sizeof(int64) * V);
	for (int i = 0; i < V - 1; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&j->root, i);
		bool		ok = v != NULL && v->type == jbvNumeric;

		if (ok)
		{
			Datum		n = NumericGetDatum(v->val.numeric);

			ok = DatumGetBool(DirectFunctionCall2(numeric_ge, n, DirectFunctionCall1(int8_numeric, Int64GetDatum(0))));
			if (ok)
				counts[i + 1] = DatumGetInt64(DirectFunctionCall1(numeric_int8, n));
		}
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid model file: __metadata__.tim4rec_item_counts[%d] is not a non-negative integer", i)));
	}
	return counts;
}

/*
 * The item ids of an exported file's metadata (a JSON array of strings, one
 * per row 1..V-1): integer ids into ids[], text and uuid ids returned as
 * keys[V] (uuids in canonical form).  ERROR 22P03 when malformed.
 */
static char **
import_meta_ids(const char *json, int V, Oid item_type, int64 *ids)
{
	Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	int			kind = t4r_ids_kind(item_type);
	char	  **keys = NULL;
	int			n;

	if (!JB_ROOT_IS_ARRAY(j) || (n = JB_ROOT_COUNT(j)) != V - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid model file: __metadata__.tim4rec_item_ids must be an array of %d ids", V - 1)));
	if (kind != T4R_ID_INT)
		keys = palloc0(sizeof(char *) * V);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&j->root, i);
		char	   *str;

		if (v == NULL || v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid model file: __metadata__.tim4rec_item_ids[%d] is not a string", i)));
		str = pnstrdup(v->val.string.val, v->val.string.len);
		if (kind == T4R_ID_INT)
			ids[i + 1] = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(str)));
		else if (kind == T4R_ID_UUID)
			keys[i + 1] = DatumGetCString(DirectFunctionCall1(uuid_out,
															  DirectFunctionCall1(uuid_in, CStringGetDatum(str))));
		else
			keys[i + 1] = str;
	}
	if (keys)
	{
		/* distinct keys (t4r_keys_build finds duplicates) */
		T4rKeys		k;

		t4r_keys_build(&k, keys, V - 1, NULL);
	}
	else
		check_distinct_ids(ids + 1, V - 1, ERRCODE_INVALID_BINARY_REPRESENTATION,
						   "invalid model file: __metadata__.tim4rec_item_ids");
	return keys;
}

/* ------------------------------------------------------------------ */
/* tim4rec_import(model_name text, weights bytea, item_ids bigint[]     */
/*                DEFAULT NULL, config jsonb DEFAULT NULL) RETURNS int  */
/* (the new version, made current)                                     */
/*                                                                     */
/* item_ids: NULL = row i is item i; V-1 elements = rows 1..V-1; V     */
/* elements = rows 0..V-1 with element 1 (padding) ignored.  Ids must   */
/* be distinct and not NULL.  config NULL: from the file's metadata;    */
/* otherwise options as for tim4rec_train (missing keys: preset).       */
/*
 * An id type recorded in the file's metadata (tim4rec_export): its OID;
 * dflt when the key is absent (InvalidOid: absent is an error too).
 */
static Oid
import_type_meta(bytea *wb, const char *key, const char *what, Oid dflt)
{
	char	   *t = file_meta((const uint8 *) VARDATA_ANY(wb), VARSIZE_ANY_EXHDR(wb), key);
	Oid			typ;

	if (t == NULL && OidIsValid(dflt))
		return dflt;
	typ = t ? t4r_ids_type_oid(t) : InvalidOid;
	if (!OidIsValid(typ))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid model file: unknown %s id type \"%s\"", what, t ? t : "(none)"),
				 errhint("Id types are " T4R_IDS_SUPPORTED ".")));
	return typ;
}

/* tim4rec_import's item_ids argument: one id per item row (V - 1), or V
 * whose first (the padding row) is ignored; no NULLs, no repeats */
static void
import_ids_array(ArrayType *a, int V, int64 *ids)
{
	Datum	   *el;
	bool	   *nulls;
	int			n,
				first;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("item_ids must be a one-dimensional array")));
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &el, &nulls, &n);
	if (n != V - 1 && n != V)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("item_ids has %d elements but the model has %d items", n, V - 1),
				 errdetail("Give one id per item row (%d elements), or %d elements whose first (the padding row) is ignored.",
						   V - 1, V)));
	first = (n == V) ? 1 : 0;
	for (int i = first; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("item_ids must not contain NULL elements"),
					 errdetail("item_ids[%d] is NULL.", i + 1)));
		ids[i - first + 1] = DatumGetInt64(el[i]);
	}
	check_distinct_ids(ids + 1, V - 1, ERRCODE_INVALID_PARAMETER_VALUE, "item_ids");
}

/* ------------------------------------------------------------------ */
Datum
tim4rec_import(PG_FUNCTION_ARGS)
{
	char	   *name;
	bytea	   *wb;
	t4r_model  *volatile model = NULL;
	uint8_t    *volatile buf = NULL;
	int64	   *ids;
	int			V;
	volatile int32 version = 0;
	T4rTrainOptions opts;
	bool		have_cfg = !PG_ARGISNULL(3);
	volatile Oid user_type = INT8OID;
	volatile Oid item_type = INT8OID;
	char	  **volatile item_keys = NULL;
	char		err[512] = "";

	PreventCommandIfReadOnly("tim4rec_import()");

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name and weights must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	t4r_pg_check_model_writable(name);
	wb = PG_GETARG_BYTEA_PP(1);

	memset(&opts, 0, sizeof(opts));
	if (have_cfg)
		t4r_pg_parse_options(PG_GETARG_JSONB_P(3), &opts, "config");

	PG_TRY();
	{
		int			rc;
		t4r_model  *m = NULL;

		rc = t4r_safetensors_read((const uint8_t *) VARDATA_ANY(wb), VARSIZE_ANY_EXHDR(wb),
								  have_cfg ? &opts.cfg : NULL, &m, err, sizeof(err));
		model = m;
		if (rc != T4R_OK)
			t4r_pg_core_error(rc == T4R_EINVAL ? T4R_EFORMAT : rc, "invalid model file", err);
		V = model->cfg.n_items;
		if (!have_cfg)
		{
			/* options of the file: its model keys, the rest from its preset */
			t4r_pg_parse_options(NULL, &opts, "config");
			opts.cfg = model->cfg;
		}
		opts.cfg.n_items = V;

		/* the vocabulary */
		ids = palloc(sizeof(int64) * V);
		ids[0] = 0;
		user_type = import_type_meta(wb, "tim4rec_user_id_type", "user", INT8OID);
		if (PG_ARGISNULL(2) &&
			file_meta((const uint8 *) VARDATA_ANY(wb), VARSIZE_ANY_EXHDR(wb), "tim4rec_item_ids") != NULL)
		{
			/* ids recorded by tim4rec_export, with their type */
			item_type = import_type_meta(wb, "tim4rec_item_id_type", "item", InvalidOid);
			item_keys = import_meta_ids(file_meta((const uint8 *) VARDATA_ANY(wb), VARSIZE_ANY_EXHDR(wb),
												  "tim4rec_item_ids"), V, item_type, ids);
		}
		else if (PG_ARGISNULL(2))
		{
			for (int r = 1; r < V; r++)
				ids[r] = r;
		}
		else
			import_ids_array(PG_GETARG_ARRAYTYPE_P(2), V, ids);

		/* re-serialise: the stored file's metadata is the configuration used */
		{
			size_t		len = 0;
			uint8_t    *b = NULL;
			T4rNewVersion nv;
			bool		deployed;

			rc = t4r_safetensors_write(model, &b, &len);
			buf = b;
			if (rc != T4R_OK)
				t4r_pg_core_error(rc, "serialising the model", NULL);

			memset(&nv, 0, sizeof(nv));
			nv.model_name = name;
			nv.source_schema = nv.source_table = "";
			nv.user_column = nv.item_column = nv.time_column = "";
			nv.order_column = NULL;
			opts.cfg = model->cfg;
			nv.config = t4r_pg_options_json(&opts);
			nv.item_ids = ids;
			nv.item_keys = item_keys;
			nv.user_type = user_type;
			nv.item_type = item_type;
			nv.item_counts = import_meta_counts(wb, V);
			nv.n_items = V;
			nv.weights = buf;
			nv.weights_len = len;
			nv.deploy = 1;
			version = t4r_pg_catalog_insert(&nv, &deployed);
		}
	}
	PG_FINALLY();
	{
		if (model)
			t4r_model_free(model);
		free(buf);
	}
	PG_END_TRY();
	PG_RETURN_INT32(version);
}
