/*
 * catalog.c - the model catalog: new versions (training and import),
 * deploy (switch / rollback), drop, export and import.
 *
 * Every change runs in the caller's transaction through SPI with the
 * caller's privileges, serialised per model name by a transaction-level
 * advisory lock (key: hash of 'tim4rec' and the name), so concurrent
 * trainings of one name get consecutive versions and at most one current
 * version (the partial unique index tim4rec_models_current guarantees it).
 *
 * Dropping the current version makes the newest remaining version current
 * (so a model keeps serving after the newest version is removed); dropping
 * every version (version NULL) removes the model.
 */
#include "tim4rec_pg.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(tim4rec_deploy);
PG_FUNCTION_INFO_V1(tim4rec_drop);
PG_FUNCTION_INFO_V1(tim4rec_export);
PG_FUNCTION_INFO_V1(tim4rec_import);

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */
const char *
t4r_pg_extension_schema(void)
{
	Oid			ext = get_extension_oid("tim4rec", true);
	Oid			nsp = InvalidOid;
	int			rc;
	char	   *name;

	if (!OidIsValid(ext))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tim4rec\" is not installed in this database")));
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	{
		Oid			types[1] = {OIDOID};
		Datum		vals[1] = {ObjectIdGetDatum(ext)};
		bool		isnull;

		rc = SPI_execute_with_args("SELECT extnamespace FROM pg_catalog.pg_extension WHERE oid = $1",
								   1, types, vals, NULL, true, 1);
		if (rc == SPI_OK_SELECT && SPI_processed == 1)
			nsp = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	name = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	if (name == NULL)
		elog(ERROR, "tim4rec: could not find the extension's schema");
	return name;
}

static char *
catalog_name(void)
{
	return psprintf("%s.%s", quote_identifier(t4r_pg_extension_schema()), T4R_CATALOG_TABLE);
}

/* serialise catalog changes of one model name (caller is SPI-connected) */
static void
lock_model(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(name)};
	int			rc;

	rc = SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('tim4rec'), "
							   "pg_catalog.hashtext($1))", 1, types, vals, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: advisory lock failed: %s", SPI_result_code_string(rc));
}

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

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
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

int32
t4r_pg_catalog_insert(const T4rNewVersion *nv, bool *deployed)
{
	char	   *tab = catalog_name();
	char	   *q;
	int			rc;
	bool		isnull;
	int32		version = 1;
	bool		deploy = nv->deploy != 0;
	bytea	   *w;

	check_name(nv->model_name);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	lock_model(nv->model_name);

	/* next version; validation NDCG@10 of the current one */
	{
		Oid			types[1] = {TEXTOID};
		Datum		vals[1] = {CStringGetTextDatum(nv->model_name)};

		q = psprintf("SELECT coalesce(max(version), 0) + 1, "
					 "(array_agg((metrics->'valid'->>'ndcg@10')::float8) FILTER (WHERE is_current))[1], "
					 "bool_or(is_current) "
					 "FROM %s WHERE model_name = $1", tab);
		rc = SPI_execute_with_args(q, 1, types, vals, NULL, false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
		version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (nv->deploy == 2)
		{
			Datum		cur = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

			/* no current version or one without metrics: nothing to beat */
			if (!isnull && !(nv->valid_ndcg10 > DatumGetFloat8(cur)))
				deploy = false;
		}
	}

	if (deploy)
	{
		Oid			types[1] = {TEXTOID};
		Datum		vals[1] = {CStringGetTextDatum(nv->model_name)};

		q = psprintf("UPDATE %s SET is_current = false WHERE model_name = $1 AND is_current", tab);
		rc = SPI_execute_with_args(q, 1, types, vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	}

	w = palloc_extended(VARHDRSZ + nv->weights_len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(w, VARHDRSZ + nv->weights_len);
	memcpy(VARDATA(w), nv->weights, nv->weights_len);
	{
		Oid			types[16] = {TEXTOID, INT4OID, BOOLOID, NAMEOID, NAMEOID, NAMEOID, NAMEOID,
		NAMEOID, NAMEOID, JSONBOID, INT8ARRAYOID, INT8ARRAYOID, JSONBOID, JSONBOID, BYTEAOID};
		Datum		vals[15];
		char		nulls[16] = "               ";
		int			V = nv->n_items;

		vals[0] = CStringGetTextDatum(nv->model_name);
		vals[1] = Int32GetDatum(version);
		vals[2] = BoolGetDatum(deploy);
		vals[3] = name_datum(nv->source_schema);
		vals[4] = name_datum(nv->source_table);
		vals[5] = name_datum(nv->user_column);
		vals[6] = name_datum(nv->item_column);
		vals[7] = name_datum(nv->time_column);
		vals[8] = name_datum(nv->order_column);
		if (nv->order_column == NULL)
			nulls[8] = 'n';
		vals[9] = DirectFunctionCall1(jsonb_in, CStringGetDatum(nv->config_json));
		vals[10] = int8_array(nv->item_ids + 1, V - 1, false);
		vals[11] = int8_array(nv->item_counts ? nv->item_counts + 1 : NULL, V - 1,
							  nv->item_counts == NULL);
		if (nv->metrics_json)
			vals[12] = DirectFunctionCall1(jsonb_in, CStringGetDatum(nv->metrics_json));
		else
			nulls[12] = 'n';
		if (nv->history_json)
			vals[13] = DirectFunctionCall1(jsonb_in, CStringGetDatum(nv->history_json));
		else
			nulls[13] = 'n';
		vals[14] = PointerGetDatum(w);
		nulls[15] = '\0';

		q = psprintf("INSERT INTO %s (model_name, version, is_current, source_schema, source_table, "
					 "user_column, item_column, time_column, order_column, config, item_ids, "
					 "item_counts, metrics, history, weights) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)", tab);
		rc = SPI_execute_with_args(q, 15, types, vals, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "tim4rec: catalog insert failed: %s", SPI_result_code_string(rc));
	}
	SPI_finish();
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
	char	   *tab;
	int			rc;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];

	PreventCommandIfReadOnly("tim4rec_deploy()");

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name and version must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	version = PG_GETARG_INT32(1);
	tab = catalog_name();
	vals[0] = CStringGetTextDatum(name);
	vals[1] = Int32GetDatum(version);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	lock_model(name);
	rc = SPI_execute_with_args(psprintf("SELECT is_current FROM %s WHERE model_name = $1 AND version = $2 FOR UPDATE", tab),
							   2, types, vals, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", name, version),
				 errhint("SELECT * FROM tim4rec_model_list lists the models and their versions.")));
	/* two statements: the partial unique index is checked row by row */
	rc = SPI_execute_with_args(psprintf("UPDATE %s SET is_current = false "
										"WHERE model_name = $1 AND is_current AND version <> $2", tab),
							   2, types, vals, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args(psprintf("UPDATE %s SET is_current = true "
										"WHERE model_name = $1 AND version = $2 AND NOT is_current", tab),
							   2, types, vals, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------ */
/* tim4rec_drop(model_name text, version int DEFAULT NULL) RETURNS int */
/* (number of versions dropped)                                        */
/* ------------------------------------------------------------------ */
Datum
tim4rec_drop(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *tab;
	int			rc;
	uint64		ndropped;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		vals[2];
	bool		all = PG_ARGISNULL(1);

	PreventCommandIfReadOnly("tim4rec_drop()");

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	tab = catalog_name();
	vals[0] = CStringGetTextDatum(name);
	vals[1] = all ? Int32GetDatum(0) : PG_GETARG_DATUM(1);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	lock_model(name);
	if (all)
		rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE model_name = $1", tab),
								   1, types, vals, NULL, false, 0);
	else
		rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE model_name = $1 AND version = $2", tab),
								   2, types, vals, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "tim4rec: catalog delete failed: %s", SPI_result_code_string(rc));
	ndropped = SPI_processed;
	if (ndropped == 0)
	{
		if (all)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" does not exist", name)));
		else
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" version %d does not exist", name, PG_GETARG_INT32(1))));
	}
	if (!all)
	{
		/* the dropped version was current: the newest remaining one takes over */
		rc = SPI_execute_with_args(psprintf("UPDATE %1$s SET is_current = true WHERE model_name = $1 "
											"AND version = (SELECT max(version) FROM %1$s WHERE model_name = $1) "
											"AND NOT EXISTS (SELECT 1 FROM %1$s WHERE model_name = $1 AND is_current)",
											tab),
								   1, types, vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "tim4rec: catalog update failed: %s", SPI_result_code_string(rc));
	}
	SPI_finish();
	PG_RETURN_INT32((int32) ndropped);
}

/* ------------------------------------------------------------------ */
/* tim4rec_export(model_name text) RETURNS bytea                       */
/* ------------------------------------------------------------------ */
Datum
tim4rec_export(PG_FUNCTION_ARGS)
{
	char	   *name;
	int			rc;
	bool		isnull;
	bytea	   *w;
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	vals[0] = CStringGetTextDatum(name);
	{
		char	   *tab = catalog_name();

		if ((rc = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
		rc = SPI_execute_with_args(psprintf("SELECT weights FROM %s WHERE model_name = $1 AND is_current", tab),
								   1, types, vals, NULL, true, 1);
	}
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: catalog read failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller);

		w = DatumGetByteaPCopy(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PG_RETURN_BYTEA_P(w);
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
	int32		version = 0;
	T4rTrainOptions opts;
	bool		have_cfg = !PG_ARGISNULL(3);
	char		err[512] = "";

	PreventCommandIfReadOnly("tim4rec_import()");

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name and weights must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name(name);
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
		if (PG_ARGISNULL(2))
		{
			for (int r = 1; r < V; r++)
				ids[r] = r;
		}
		else
		{
			ArrayType  *a = PG_GETARG_ARRAYTYPE_P(2);
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
			/* distinct ids */
			{
				int64	   *s = palloc(sizeof(int64) * (V - 1));

				memcpy(s, ids + 1, sizeof(int64) * (V - 1));
				qsort(s, V - 1, sizeof(int64), cmp_int64);
				for (int i = 1; i < V - 1; i++)
					if (s[i] == s[i - 1])
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("item_ids contains the id " INT64_FORMAT " more than once", s[i])));
				pfree(s);
			}
		}

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
			nv.config_json = t4r_pg_options_json(&opts);
			nv.item_ids = ids;
			nv.item_counts = NULL;
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
