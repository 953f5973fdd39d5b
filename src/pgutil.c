/*
 * pgutil.c - shared PostgreSQL helpers: reading an interactions relation,
 * time conversion and range checks, and core-error reporting.
 *
 * Reading: plain tables and materialized views without row-level security
 * are read with a direct scan (table_beginscan + slot_getsomeattrs), which
 * is several million rows per second; views, partitioned and foreign tables
 * and tables with row-level security enabled are read through SPI with a
 * cursor fetching 50,000 rows at a time, so the executor applies the
 * policies.  Rows with a NULL in any used column are skipped and counted
 * (out->n_null); the caller reports the count in a NOTICE.  The arrays are
 * grown geometrically in the current memory context and their total size is
 * checked against tim4rec.memory_budget while reading.
 */
#include "tim4rec_pg.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* seconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch) */
#define PG_EPOCH_OFFSET 946684800.0

/* ------------------------------------------------------------------ */
/* time                                                                */
/* ------------------------------------------------------------------ */
bool
t4r_pg_time_type_ok(Oid typid)
{
	switch (typid)
	{
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
		case DATEOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			return true;
		default:
			break;
	}
	if (OidIsValid(typid))
	{
		Oid			base = getBaseType(typid);

		if (base != typid)
			return t4r_pg_time_type_ok(base);
	}
	return false;
}

static void
bad_time(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("time value %s cannot be used", what),
			 errhint("Times must be finite.")));
}

/*
 * Times outside t4r_time_ok (NaN, +-Infinity, or |t| > T4R_TIME_ABS_MAX, see
 * tim4rec.h) would make the model's single-precision time features
 * infinite, and then the loss and the scores NaN.  Only floating-point and
 * numeric times can get there: every bigint and every finite timestamp is
 * in range.  SQLSTATE 22003 (numeric_value_out_of_range) is what
 * PostgreSQL's own float8 -> float4 conversion raises for such values.
 */
#define TIME_RANGE_DETAIL \
	"Times must be finite numbers with an absolute value of at most %.4g (2^63); larger ones overflow the model's single-precision time features."

void
t4r_pg_time_range_error(double t, const char *argname, int element)
{
	char	   *val = float8out_internal(t);

	if (element > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s element %d is out of range: %s", argname, element, val),
				 errdetail(TIME_RANGE_DETAIL, T4R_TIME_ABS_MAX),
				 errhint("Give times in the same unit and origin as the training data (epoch seconds for timestamp columns).")));
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("%s is out of range: %s", argname ? argname : "time value", val),
			 errdetail(TIME_RANGE_DETAIL, T4R_TIME_ABS_MAX),
			 errhint("Give times in the same unit and origin as the training data (epoch seconds for timestamp columns).")));
	pg_unreachable();
}

/* the value of a time Datum in epoch seconds, not range-checked (infinite
 * timestamps and dates are an error) */
static double
time_value(Datum d, Oid typid)
{
	double		v;

	switch (typid)
	{
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			{
				Timestamp	t = DatumGetTimestamp(d);

				if (TIMESTAMP_NOT_FINITE(t))
					bad_time("infinity");
				return (double) t / 1e6 + PG_EPOCH_OFFSET;
			}
		case DATEOID:
			{
				DateADT		dt = DatumGetDateADT(d);

				if (DATE_NOT_FINITE(dt))
					bad_time("infinity");
				return (double) dt * 86400.0 + PG_EPOCH_OFFSET;
			}
		case INT2OID:
			return (double) DatumGetInt16(d);
		case INT4OID:
			return (double) DatumGetInt32(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		case FLOAT4OID:
			v = DatumGetFloat4(d);
			break;
		case FLOAT8OID:
			v = DatumGetFloat8(d);
			break;
		case NUMERICOID:
			v = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
			break;
		default:
			{
				Oid			base = OidIsValid(typid) ? getBaseType(typid) : InvalidOid;

				if (OidIsValid(base) && base != typid)
					return time_value(d, base);
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("unsupported time type %s", format_type_be(typid))));
			}
	}
	return v;
}

double
t4r_pg_time_to_epoch(Datum d, Oid typid)
{
	double		v = time_value(d, typid);

	t4r_pg_check_time(v, NULL, 0);
	return v;
}

/* ------------------------------------------------------------------ */
/* core errors                                                         */
/* ------------------------------------------------------------------ */
/* the core's interrupt callback: only a cancel or termination stops it
 * (InterruptPending is also set for interrupts that CHECK_FOR_INTERRUPTS
 * handles without an error); called on the backend's thread only */
int
t4r_pg_interrupt(void *ud)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

void
t4r_pg_core_error(int code, const char *what, const char *msg)
{
	int			sqlstate;

	switch (code)
	{
		case T4R_ENOMEM:
		case T4R_EBUDGET:
			sqlstate = ERRCODE_OUT_OF_MEMORY;
			break;
		case T4R_EFORMAT:
			sqlstate = ERRCODE_INVALID_BINARY_REPRESENTATION;
			break;
		case T4R_ECANCELLED:
			sqlstate = ERRCODE_QUERY_CANCELED;
			break;
		case T4R_EDATA:
			sqlstate = ERRCODE_DATA_EXCEPTION;
			break;
		case T4R_ENONFINITE:
			/* a loss, metric or weight overflowed to Infinity or became NaN:
			 * the class of PostgreSQL's own float overflow errors ("value
			 * out of range: overflow"), not a problem of the options'
			 * syntax (22023) or of the amount of data (22000) */
			sqlstate = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			break;
		case T4R_EIO:
			sqlstate = ERRCODE_IO_ERROR;
			break;
		case T4R_EINVAL:
		case T4R_EMISMATCH:
		default:
			sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
	}
	ereport(ERROR,
			(errcode(sqlstate),
			 (msg && msg[0]) ?
			 errmsg("%s%s%s", what ? what : "", what ? ": " : "", msg) :
			 errmsg("%s%s%s", what ? what : "", what ? ": " : "", t4r_strerror(code)),
			 code == T4R_EBUDGET ?
			 errhint("Raise tim4rec.memory_budget or use smaller options (batch_size, max_seq_len, hidden_size).") :
			 /* only trainings (t4r_fit, the checks before saving) give it */
			 code == T4R_ENONFINITE ?
			 errhint("Nothing was stored. Lower learning_rate, and check the times of the interactions (epoch seconds counted from an origin near the data work best).") : 0));
	pg_unreachable();
}

/* ------------------------------------------------------------------ */
/* reading interactions                                                */
/* ------------------------------------------------------------------ */
typedef struct ColInfo
{
	const char *name;
	AttrNumber	attnum;
	Oid			type;			/* base type */
} ColInfo;

static bool
is_int_type(Oid t)
{
	return t == INT2OID || t == INT4OID || t == INT8OID;
}

static int64
int_value(Datum d, Oid t)
{
	switch (t)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

static void
lookup_column(Relation rel, ColInfo *c, const char *role)
{
	Oid			relid = RelationGetRelid(rel);
	AttrNumber	att = get_attnum(relid, c->name);
	Oid			t;

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						c->name, RelationGetRelationName(rel)),
				 errhint("Name the %s column with the %s_column argument.", role,
						 strcmp(role, "order") == 0 ? "order" : role)));
	t = getBaseType(get_atttype(relid, att));
	if (strcmp(role, "time") == 0)
	{
		if (!t4r_pg_time_type_ok(t))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("time column \"%s\" has unsupported type %s", c->name,
							format_type_be(get_atttype(relid, att))),
					 errhint("Use timestamptz, timestamp, date, or epoch seconds as an integer, floating-point or numeric type.")));
	}
	else if (strcmp(role, "order") == 0)
	{
		if (!is_int_type(t))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s column \"%s\" has unsupported type %s", role, c->name,
							format_type_be(get_atttype(relid, att))),
					 errhint("The %s column must be smallint, integer or bigint.", role)));
	}
	else
		t4r_ids_check_column(t, role, c->name, format_type_be(get_atttype(relid, att)));
	c->attnum = att;
	c->type = t;
}

static void
check_privileges(Relation rel, ColInfo *cols, int ncols)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			user = GetUserId();

	if (pg_class_aclcheck(relid, user, ACL_SELECT) == ACLCHECK_OK)
		return;
	for (int i = 0; i < ncols; i++)
		if (pg_attribute_aclcheck(relid, cols[i].attnum, user, ACL_SELECT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", RelationGetRelationName(rel)),
					 errdetail("Reading the interactions needs SELECT on columns %s, %s and %s%s%s.",
							   quote_identifier(cols[0].name), quote_identifier(cols[1].name),
							   quote_identifier(cols[2].name), ncols > 3 ? " and " : "",
							   ncols > 3 ? quote_identifier(cols[3].name) : "")));
}

typedef struct Reader
{
	T4rInteractions *out;
	size_t		cap;
	size_t		limit;			/* bytes */
	bool		has_order;
	Oid			ttype;
	const char *tcol;			/* name of the time column, for errors */
	Oid			utype;
	Oid			itype;
	Oid			otype;
} Reader;

static size_t
row_bytes(Reader *r)
{
	return 3 * sizeof(int64) + (r->has_order ? sizeof(int64) : 0);
}

static void
grow(Reader *r)
{
	size_t		ncap = r->cap ? r->cap * 2 : 65536;
	T4rInteractions *o = r->out;

	if (ncap * row_bytes(r) > r->limit)
	{
		ncap = r->limit / row_bytes(r);
		if (ncap <= r->cap)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("the interactions do not fit in the training memory budget"),
					 errdetail("More than %zu rows (%zu bytes each) were read; tim4rec.memory_budget is %d MB.",
							   r->cap, row_bytes(r), tim4rec_memory_budget_mb),
					 errhint("Raise tim4rec.memory_budget or train on fewer rows.")));
	}
	if (r->cap == 0)
	{
		o->users = palloc_extended(ncap * sizeof(int64), MCXT_ALLOC_HUGE);
		o->items = palloc_extended(ncap * sizeof(int64), MCXT_ALLOC_HUGE);
		o->ts = palloc_extended(ncap * sizeof(double), MCXT_ALLOC_HUGE);
		if (r->has_order)
			o->order = palloc_extended(ncap * sizeof(int64), MCXT_ALLOC_HUGE);
	}
	else
	{
		o->users = repalloc_huge(o->users, ncap * sizeof(int64));
		o->items = repalloc_huge(o->items, ncap * sizeof(int64));
		o->ts = repalloc_huge(o->ts, ncap * sizeof(double));
		if (r->has_order)
			o->order = repalloc_huge(o->order, ncap * sizeof(int64));
	}
	r->cap = ncap;
}

/* one row: values and nulls in the order user, item, time[, order] */
static inline void
add_row(Reader *r, Datum *v, bool *isnull)
{
	T4rInteractions *o = r->out;
	size_t		i;

	if (isnull[0] || isnull[1] || isnull[2] || (r->has_order && isnull[3]))
	{
		o->n_null++;
		return;
	}
	if (o->n == r->cap)
		grow(r);
	i = o->n++;
	o->users[i] = o->user_dict ? t4r_keydict_add(o->user_dict, v[0], t4r_ids_kind(r->utype))
		: int_value(v[0], r->utype);
	o->items[i] = o->item_dict ? t4r_keydict_add(o->item_dict, v[1], t4r_ids_kind(r->itype))
		: int_value(v[1], r->itype);
	switch (r->ttype)
	{
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			{
				Timestamp	t = DatumGetTimestamp(v[2]);

				if (TIMESTAMP_NOT_FINITE(t))
					bad_time("infinity");
				o->ts[i] = (double) t / 1e6 + PG_EPOCH_OFFSET;
				break;
			}
		case INT4OID:
			o->ts[i] = DatumGetInt32(v[2]);
			break;
		case INT8OID:
			o->ts[i] = (double) DatumGetInt64(v[2]);
			break;
		default:
			/* float, numeric, smallint, date: only float and numeric
			 * values can be out of range */
			o->ts[i] = time_value(v[2], r->ttype);
			if (unlikely(!t4r_time_ok(o->ts[i])))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("time column \"%s\" holds a value out of range: %s",
								r->tcol, float8out_internal(o->ts[i])),
						 errdetail(TIME_RANGE_DETAIL " The value is in the row of user " INT64_FORMAT ", item " INT64_FORMAT ".",
								   T4R_TIME_ABS_MAX, o->users[i], o->items[i]),
						 errhint("Store times as epoch seconds or as a timestamp type, and fix or leave out that row (for example, train on a view without it).")));
			break;
	}
	if (r->has_order)
		o->order[i] = int_value(v[3], r->otype);
}

static void
read_direct(Relation rel, ColInfo *cols, int ncols, Reader *r)
{
	TableScanDesc scan;
	TupleTableSlot *slot;
	AttrNumber	maxatt = 0;
	Datum		v[4];
	bool		isnull[4];
	uint64		count = 0;

	for (int i = 0; i < ncols; i++)
		if (cols[i].attnum > maxatt)
			maxatt = cols[i].attnum;
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		slot_getsomeattrs(slot, maxatt);
		for (int i = 0; i < ncols; i++)
		{
			v[i] = slot->tts_values[cols[i].attnum - 1];
			isnull[i] = slot->tts_isnull[cols[i].attnum - 1];
		}
		add_row(r, v, isnull);
		if ((++count & 0xffff) == 0)
		{
			t4r_pg_progress_rows((int64) count);
			CHECK_FOR_INTERRUPTS();
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
}

static void
read_spi(Relation rel, ColInfo *cols, int ncols, Reader *r)
{
	StringInfoData q;
	Portal		portal;
	SPIPlanPtr	plan;
	int			rc;
	Datum		v[4];
	bool		isnull[4];
	MemoryContext caller = CurrentMemoryContext;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT ");
	for (int i = 0; i < ncols; i++)
		appendStringInfo(&q, "%s%s", i ? ", " : "", quote_identifier(cols[i].name));
	appendStringInfo(&q, " FROM %s",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	plan = SPI_prepare(q.data, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "tim4rec: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 50000);
		if (SPI_processed == 0)
			break;
		for (uint64 j = 0; j < SPI_processed; j++)
		{
			HeapTuple	tup = SPI_tuptable->vals[j];

			for (int i = 0; i < ncols; i++)
				v[i] = SPI_getbinval(tup, SPI_tuptable->tupdesc, i + 1, &isnull[i]);
			/* the arrays live in the caller's context, not SPI's */
			{
				MemoryContext old = MemoryContextSwitchTo(caller);

				add_row(r, v, isnull);
				MemoryContextSwitchTo(old);
			}
		}
		SPI_freetuptable(SPI_tuptable);
		t4r_pg_progress_rows((int64) (r->out->n + r->out->n_null));
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

void
t4r_pg_read_interactions(Oid relid, const char *user_col, const char *item_col,
						 const char *time_col, const char *order_col,
						 T4rInteractions *out)
{
	Relation	rel;
	ColInfo		cols[4];
	int			ncols = order_col ? 4 : 3;
	Reader		r;
	char		kind;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	memset(cols, 0, sizeof(cols));

	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	kind = rel->rd_rel->relkind;
	if (kind != RELKIND_RELATION && kind != RELKIND_MATVIEW && kind != RELKIND_VIEW &&
		kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table, view or materialized view",
						RelationGetRelationName(rel))));

	cols[0].name = user_col;
	cols[1].name = item_col;
	cols[2].name = time_col;
	cols[3].name = order_col;
	lookup_column(rel, &cols[0], "user");
	lookup_column(rel, &cols[1], "item");
	lookup_column(rel, &cols[2], "time");
	if (order_col)
		lookup_column(rel, &cols[3], "order");
	check_privileges(rel, cols, ncols);

	r.out = out;
	r.has_order = order_col != NULL;
	r.utype = cols[0].type;
	r.itype = cols[1].type;
	r.ttype = cols[2].type;
	r.tcol = time_col;
	r.otype = order_col ? cols[3].type : InvalidOid;
	r.limit = (size_t) tim4rec_memory_budget_mb * 1024 * 1024;
	out->user_type = r.utype;
	out->item_type = r.itype;
	if (t4r_ids_kind(r.utype) != T4R_ID_INT)
		out->user_dict = t4r_keydict_create();
	if (t4r_ids_kind(r.itype) != T4R_ID_INT)
		out->item_dict = t4r_keydict_create();

	if (kind == RELKIND_MATVIEW && !RelationIsPopulated(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("materialized view \"%s\" has not been populated",
						RelationGetRelationName(rel))));
	if ((kind == RELKIND_RELATION || kind == RELKIND_MATVIEW) &&
		check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED)
		read_direct(rel, cols, ncols, &r);
	else
		read_spi(rel, cols, ncols, &r);

	/* codes of text and uuid ids in key order (ids.h) */
	if (out->user_dict)
		t4r_keydict_finish(out->user_dict, out->users, out->n);
	if (out->item_dict)
		t4r_keydict_finish(out->item_dict, out->items, out->n);

	/* keep the lock until the end of the transaction */
	table_close(rel, NoLock);
}
