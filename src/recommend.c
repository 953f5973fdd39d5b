/*
 * recommend.c - tim4rec_recommend in its four forms.
 *
 *   tim4rec_recommend(user_id bigint, k, model_name, exclude_seen, exclude)
 *   tim4rec_recommend(items bigint[], times timestamptz[], k, ...)
 *   tim4rec_recommend(items bigint[], times float8[], k, ...)
 *   tim4rec_recommend(seq tim4rec_sequence, k, ...)
 *
 * All return TABLE(item_id bigint, score real, rank int): the top k items by
 * raw model score, exclusions applied inside the top-k selection (so exactly
 * min(k, eligible) rows), ranks from 1, equal scores ordered by item id.
 *
 * History: the user form reads the user's most recent L (= max_seq_len)
 * interactions from the model's source relation at call time with a saved
 * SPI plan (ORDER BY time DESC, order_column DESC (or item DESC) LIMIT L; an
 * index on (user, time) makes it an index scan).  Items unknown to the model
 * are skipped.  With exclude_seen, every item of the user's history is
 * excluded (all of it: when the user has more than L rows a second query
 * reads the rest).  A history with no known item gives the most popular
 * items of the training data (score = training count), minus exclusions.
 *
 * Ad-hoc sequences are sorted by time, stably (equal times keep array
 * order), and only the most recent L count for the model.
 *
 * Nothing here writes: the functions are STABLE PARALLEL SAFE and work on a
 * hot standby.
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "tim4rec_pg.h"

/* OpenBLAS thread control (cblas.h of OpenBLAS declares these) */
extern void openblas_set_num_threads(int);
extern int	openblas_get_num_threads(void);

PG_FUNCTION_INFO_V1(tim4rec_recommend_user);
PG_FUNCTION_INFO_V1(tim4rec_recommend_user_any);
PG_FUNCTION_INFO_V1(tim4rec_recommend_tstz);
PG_FUNCTION_INFO_V1(tim4rec_recommend_f8);
PG_FUNCTION_INFO_V1(tim4rec_recommend_seq);

/* ---------------------------------------------------------------- */
/* common arguments                                                  */
/* ---------------------------------------------------------------- */

typedef struct RecArgs
{
	int			k;
	char	   *model_name;
	bool		exclude_seen;
	ArrayType  *exclude;		/* may be NULL */
	Oid			item_type;		/* type of the result's item_id */
} RecArgs;

/* k, model_name, exclude_seen, exclude start at argument `first` */
static void
get_common_args(FunctionCallInfo fcinfo, int first, RecArgs *a)
{
	if (PG_ARGISNULL(first))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("k must not be null")));
	a->k = PG_GETARG_INT32(first);
	if (a->k <= 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("k must be positive"),
						errdetail("k = %d.", a->k)));
	if (PG_ARGISNULL(first + 1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_name must not be null")));
	a->model_name = text_to_cstring(PG_GETARG_TEXT_PP(first + 1));
	/* the generic user form may end before exclude_seen or exclude */
	if (PG_NARGS() > first + 2 && PG_ARGISNULL(first + 2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("exclude_seen must not be null")));
	a->exclude_seen = PG_NARGS() > first + 2 ? PG_GETARG_BOOL(first + 2) : true;
	a->exclude = PG_NARGS() <= first + 3 || PG_ARGISNULL(first + 3) ? NULL :
		PG_GETARG_ARRAYTYPE_P(first + 3);
	{
		TupleDesc	td;

		if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
			ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							errmsg("tim4rec_recommend: could not determine the result type")));
		a->item_type = TupleDescAttr(td, 0)->atttypid;
	}
}

/* the model's item ids must be of the result's item_id type and of the
 * exclude array's element type */
static void
check_item_types(T4rLoadedModel *lm, const RecArgs *a)
{
	t4r_ids_check_item_type(lm, a->item_type, "item_id (the result column)");
	if (a->exclude)
		t4r_ids_check_item_type(lm, ARR_ELEMTYPE(a->exclude), "exclude");
}

/* elements of a one-dimensional array without NULLs (any dims flattened) */
static int
array_elems(ArrayType *a, Oid elemtype, Datum **elems, const char *what)
{
	bool	   *nulls;
	int16		typlen;
	bool		byval;
	char		align;
	int			n;

	get_typlenbyvalalign(elemtype, &typlen, &byval, &align);
	deconstruct_array(a, elemtype, typlen, byval, align, elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("%s must not contain NULL elements", what),
							errdetail("Element %d is NULL.", i + 1)));
	return n;
}

/* ---------------------------------------------------------------- */
/* scoring and result                                                */
/* ---------------------------------------------------------------- */

static int
cmp_int32(const void *pa, const void *pb)
{
	int32		a = *(const int32 *) pa,
				b = *(const int32 *) pb;

	return (a > b) - (a < b);
}

/*
 * rows/ts: the known history (vocabulary rows), oldest first, n >= 0.
 * seen: the rows to exclude when exclude_seen (may include rows not in the
 * model input, e.g. beyond L), nseen of them.
 */
static void
emit_recommendations(FunctionCallInfo fcinfo, T4rLoadedModel *lm, const RecArgs *a,
					 const int32 *rows, const double *ts, int n,
					 const int32 *seen, int nseen)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			V = lm->model->cfg.n_items;
	int			k = a->k < V - 1 ? a->k : V - 1;
	int32	   *out_rows = palloc((size_t) (k > 0 ? k : 1) * sizeof(int32));
	t4r_real   *out_vals = palloc((size_t) (k > 0 ? k : 1) * sizeof(t4r_real));
	int			cnt = 0;

	/*
	 * The rows to exclude as a list, not a mask of V bytes: the per-call
	 * memory of a backend stays independent of the vocabulary (with a model
	 * in shared memory, a backend's private memory is scratch only).
	 */
	int32	   *excl;
	int			nexcl = 0,
				maxexcl = (a->exclude_seen ? nseen : 0) +
		(a->exclude ? ArrayGetNItems(ARR_NDIM(a->exclude), ARR_DIMS(a->exclude)) : 0);

	excl = palloc((size_t) (maxexcl > 0 ? maxexcl : 1) * sizeof(int32));
	if (a->exclude_seen)
		for (int i = 0; i < nseen; i++)
			if (seen[i] > 0 && seen[i] < V)
				excl[nexcl++] = seen[i];
	if (a->exclude)
	{
		Datum	   *el;
		Oid			et = ARR_ELEMTYPE(a->exclude);
		int			ne = array_elems(a->exclude, et, &el, "exclude");

		for (int i = 0; i < ne; i++)
		{
			int32		r = t4r_ids_lookup_item(lm, el[i], et);

			if (r > 0)
				excl[nexcl++] = r;
		}
	}

	if (n > 0)
	{
		/* one sequence: BLAS calls are small, waking BLAS threads costs more
		 * than it gains (measured ~7% slower); restore the setting after */
		int			blas_threads = openblas_get_num_threads();

		if (blas_threads != 1)
			openblas_set_num_threads(1);
		cnt = t4r_infer_topk(lm->ctx, rows, ts, n, k > 0 ? k : 0, excl, nexcl, out_rows, out_vals);
		/* not while a tim4rec_recommend_all of this backend scores in the
		 * background: it needs the setting at 1 until it ends */
		if (blas_threads != 1 && !t4r_pg_background_scoring())
			openblas_set_num_threads(blas_threads);
		if (cnt < 0)
			t4r_pg_core_error(cnt, "scoring the sequence", NULL);
	}
	else
	{
		/* cold start: most popular items of the training data */
		qsort(excl, nexcl, sizeof(int32), cmp_int32);
		for (int i = 0; i < V - 1 && cnt < k; i++)
		{
			int32		r = lm->pop_order[i];

			if (nexcl > 0 && bsearch(&r, excl, nexcl, sizeof(int32), cmp_int32))
				continue;
			out_rows[cnt] = r;
			out_vals[cnt] = (t4r_real) lm->item_counts[r];
			cnt++;
		}
	}

	/* equal scores by item id (rows of trained models are already in id order) */
	for (int i = 1; i < cnt; i++)
	{
		int32		r = out_rows[i];
		t4r_real	v = out_vals[i];
		int			j = i - 1;

		while (j >= 0 && out_vals[j] == v && lm->item_ids[out_rows[j]] > lm->item_ids[r])
		{
			out_rows[j + 1] = out_rows[j];
			out_vals[j + 1] = out_vals[j];
			j--;
		}
		out_rows[j + 1] = r;
		out_vals[j + 1] = v;
	}

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < cnt; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = t4r_ids_item_datum(lm, out_rows[i], a->item_type);
		values[1] = Float4GetDatum((float4) out_vals[i]);
		values[2] = Int32GetDatum(i + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* ---------------------------------------------------------------- */
/* ad-hoc sequences                                                  */
/* ---------------------------------------------------------------- */

typedef struct SeqEv
{
	double		ts;
	int			pos;
	Datum		item;
} SeqEv;

static int
cmp_ev(const void *pa, const void *pb)
{
	const SeqEv *a = pa,
			   *b = pb;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return (a->pos > b->pos) - (a->pos < b->pos);
}

static Datum
recommend_sequence(FunctionCallInfo fcinfo, ArrayType *items, ArrayType *times,
				   Oid time_type, const RecArgs *a)
{
	T4rLoadedModel *lm;
	Datum	   *ie,
			   *te;
	int			ni,
				nt,
				n = 0,
				nseen = 0;
	SeqEv	   *ev;
	int32	   *rows,
			   *seen;
	double	   *ts;

	Oid			itype = ARR_ELEMTYPE(items);

	ni = array_elems(items, itype, &ie, "items");
	nt = array_elems(times, time_type, &te, "times");
	if (ni != nt)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						errmsg("items and times must have the same length"),
						errdetail("items has %d elements, times has %d.", ni, nt)));

	ev = palloc((size_t) (ni > 0 ? ni : 1) * sizeof(SeqEv));
	for (int i = 0; i < ni; i++)
	{
		double		t = time_type == FLOAT8OID ? DatumGetFloat8(te[i])
			: t4r_pg_time_to_epoch(te[i], time_type);

		t4r_pg_check_time(t, "times", i + 1);
		ev[i].ts = t;
		ev[i].pos = i;
		ev[i].item = ie[i];
	}
	qsort(ev, ni, sizeof(SeqEv), cmp_ev);
	lm = t4r_pg_get_model(a->model_name, 0, T4R_PRIV_USAGE);
	t4r_ids_check_item_type(lm, itype, "items");
	check_item_types(lm, a);
	rows = palloc((size_t) (ni > 0 ? ni : 1) * sizeof(int32));
	seen = palloc((size_t) (ni > 0 ? ni : 1) * sizeof(int32));
	ts = palloc((size_t) (ni > 0 ? ni : 1) * sizeof(double));
	for (int i = 0; i < ni; i++)
	{
		int32		r = t4r_ids_lookup_item(lm, ev[i].item, itype);

		if (r <= 0)
			continue;
		seen[nseen++] = r;
		rows[n] = r;
		ts[n] = ev[i].ts;
		n++;
	}
	emit_recommendations(fcinfo, lm, a, rows, ts, n, seen, nseen);
	t4r_pg_release_model(lm);
	return (Datum) 0;
}

Datum
tim4rec_recommend_tstz(PG_FUNCTION_ARGS)
{
	RecArgs		a;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("items and times must not be null")));
	get_common_args(fcinfo, 2, &a);
	return recommend_sequence(fcinfo, PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_ARRAYTYPE_P(1),
							  TIMESTAMPTZOID, &a);
}

Datum
tim4rec_recommend_f8(PG_FUNCTION_ARGS)
{
	RecArgs		a;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("items and times must not be null")));
	get_common_args(fcinfo, 2, &a);
	return recommend_sequence(fcinfo, PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_ARRAYTYPE_P(1),
							  FLOAT8OID, &a);
}

Datum
tim4rec_recommend_seq(PG_FUNCTION_ARGS)
{
	RecArgs		a;
	HeapTupleHeader seq;
	bool		n1,
				n2;
	Datum		items,
				times;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("seq must not be null")));
	get_common_args(fcinfo, 1, &a);
	seq = PG_GETARG_HEAPTUPLEHEADER(0);
	items = GetAttributeByNum(seq, 1, &n1);
	times = GetAttributeByNum(seq, 2, &n2);
	if (n1 || n2)
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("the items and times of seq must not be null")));
	return recommend_sequence(fcinfo, DatumGetArrayTypeP(items), DatumGetArrayTypeP(times),
							  FLOAT8OID, &a);
}

/* ---------------------------------------------------------------- */
/* user history from the source relation                             */
/* ---------------------------------------------------------------- */

#define MAX_PLANS 16
typedef struct HistPlan
{
	char	   *query;			/* TopMemoryContext; the cache key */
	SPIPlanPtr	plan;
} HistPlan;
static HistPlan hist_plans[MAX_PLANS];
static int	n_hist_plans = 0;

static SPIPlanPtr
get_plan(const char *query, int nargs, Oid *types)
{
	SPIPlanPtr	p;
	int			slot;

	for (int i = 0; i < n_hist_plans; i++)
		if (strcmp(hist_plans[i].query, query) == 0)
			return hist_plans[i].plan;
	p = SPI_prepare(query, nargs, types);
	if (p == NULL)
		elog(ERROR, "tim4rec: SPI_prepare failed for \"%s\": %s", query,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(p);
	if (n_hist_plans < MAX_PLANS)
		slot = n_hist_plans++;
	else
	{
		/* full: drop the oldest */
		SPI_freeplan(hist_plans[0].plan);
		pfree(hist_plans[0].query);
		memmove(hist_plans, hist_plans + 1, sizeof(HistPlan) * (MAX_PLANS - 1));
		slot = MAX_PLANS - 1;
	}
	hist_plans[slot].query = MemoryContextStrdup(TopMemoryContext, query);
	hist_plans[slot].plan = p;
	return p;
}

/* the source relation of lm, checked for existence and SELECT privilege
 * (row-level security, if any, applies to the history query) */
static Oid
source_relation(T4rLoadedModel *lm)
{
	return t4r_pg_source_relation(lm, true, "The model was imported, not trained on a table.",
								  "Use tim4rec_recommend(items, times, ...) with the user's sequence.",
								  "tim4rec_recommend(user_id, ...) reads the user's history");
}

/*
 * The user forms: tim4rec_recommend(user_id bigint | text | uuid, k, ...)
 * (first = 1) and tim4rec_recommend(user_id anyelement, item_type
 * anycompatible, k, ...) (first = 2).
 */
static Datum
recommend_user(FunctionCallInfo fcinfo, int first)
{
	RecArgs		a;
	Datum		user;
	Oid			user_type;
	T4rLoadedModel *lm;
	int			L,
				rc,
				n = 0,
				nrows,
				nseen = 0;
	StringInfoData q;
	Oid			types[2] = {INT8OID, INT4OID};
	const char *item_cast;
	Oid			item_qtype;
	Datum		vals[2];
	SPIPlanPtr	plan;
	const char *rel;
	int32	   *rows,
			   *seen;
	double	   *ts;
	Oid			time_type;
	MemoryContext callcxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("user_id must not be null")));
	user = PG_GETARG_DATUM(0);
	user_type = getBaseType(get_fn_expr_argtype(fcinfo->flinfo, 0));
	get_common_args(fcinfo, first, &a);
	lm = t4r_pg_get_model(a.model_name, 0, T4R_PRIV_USAGE);
	t4r_ids_check_user_type(lm, user_type, "user_id");
	check_item_types(lm, &a);
	types[0] = t4r_ids_user_param_type(lm);
	item_cast = t4r_ids_query_item_cast(lm);
	item_qtype = t4r_ids_query_item_type(lm);
	(void) source_relation(lm);
	L = lm->model->cfg.max_seq_len;

	rel = quote_qualified_identifier(lm->source_schema, lm->source_table);
	initStringInfo(&q);
	/* every operator and type schema-qualified: this text runs with the
	 * caller's search_path (the source may be a view that needs it) */
	appendStringInfo(&q, "SELECT %s%s, %s FROM %s "
					 "WHERE %s OPERATOR(pg_catalog.=) $1 AND %s IS NOT NULL AND %s IS NOT NULL "
					 "ORDER BY %s DESC, %s DESC LIMIT $2",
					 quote_identifier(lm->item_column), item_cast, quote_identifier(lm->time_column), rel,
					 quote_identifier(lm->user_column),
					 quote_identifier(lm->item_column), quote_identifier(lm->time_column),
					 quote_identifier(lm->time_column),
					 quote_identifier(lm->order_column ? lm->order_column : lm->item_column));

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	plan = get_plan(q.data, 2, types);
	vals[0] = t4r_ids_user_param(lm, user, user_type);
	vals[1] = Int32GetDatum(L);
	rc = SPI_execute_plan(plan, vals, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: reading the history failed: %s", SPI_result_code_string(rc));
	nrows = (int) SPI_processed;
	time_type = SPI_gettypeid(SPI_tuptable->tupdesc, 2);
	if (!t4r_pg_time_type_ok(time_type))
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("column %s of %s has an unsupported type for a time column",
							   quote_identifier(lm->time_column), rel)));

	rows = MemoryContextAlloc(callcxt, (size_t) (nrows + 1) * sizeof(int32));
	ts = MemoryContextAlloc(callcxt, (size_t) (nrows + 1) * sizeof(double));
	/* rows come newest first: fill from the end so the result is oldest first */
	for (int i = nrows - 1; i >= 0; i--)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		item = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
		Datum		td = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);
		int32		r = t4r_ids_lookup_item(lm, item, item_qtype);

		if (r <= 0)
			continue;
		rows[n] = r;
		ts[n] = t4r_pg_time_to_epoch(td, time_type);
		n++;
	}
	seen = rows;
	nseen = n;
	if (a.exclude_seen && nrows >= L)
	{
		/* the user may have more history than the model reads: exclude all of it */
		resetStringInfo(&q);
		appendStringInfo(&q, "SELECT %s%s FROM %s WHERE %s OPERATOR(pg_catalog.=) $1 AND %s IS NOT NULL",
						 quote_identifier(lm->item_column), item_cast, rel,
						 quote_identifier(lm->user_column), quote_identifier(lm->item_column));
		plan = get_plan(q.data, 1, types);
		rc = SPI_execute_plan(plan, vals, NULL, true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "tim4rec: reading the history failed: %s", SPI_result_code_string(rc));
		seen = MemoryContextAlloc(callcxt, (size_t) (SPI_processed + 1) * sizeof(int32));
		nseen = 0;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		item = SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 1, &isnull);
			int32		r = t4r_ids_lookup_item(lm, item, item_qtype);

			if (r > 0)
				seen[nseen++] = r;
		}
	}
	SPI_finish();

	emit_recommendations(fcinfo, lm, &a, rows, ts, n, seen, nseen);
	t4r_pg_release_model(lm);
	return (Datum) 0;
}

Datum
tim4rec_recommend_user(PG_FUNCTION_ARGS)
{
	return recommend_user(fcinfo, 1);
}

/* tim4rec_recommend(user_id anyelement, item_type anycompatible, k, ...) */
Datum
tim4rec_recommend_user_any(PG_FUNCTION_ARGS)
{
	return recommend_user(fcinfo, 2);
}
