/*
 * seqagg.c - aggregate tim4rec_seq(item bigint, ts <time type> [, max_len int])
 * returning tim4rec_sequence(items bigint[], times float8[]).
 *
 * The state is a compact array of (epoch seconds, item) pairs, 16 bytes per
 * row, in the aggregate's memory context.  The final function sorts it by
 * time, equal times by item id (aggregate input order is not guaranteed, so
 * that is the deterministic tie rule; it is also the training's rule when the
 * model has no order column), and keeps the most recent max_len events when
 * max_len is given.  The state starts small (16 events) and doubles as rows
 * arrive; it is never sized from max_len alone, so a large max_len on a small
 * group costs nothing.  With max_len the capacity stops growing at 2 * max_len
 * and the state is pruned to the most recent max_len events whenever it is
 * full, so it never holds more than max(16, 2 * max_len) events (combine may
 * briefly hold the sum of two such states).  Rows whose item or time is NULL
 * are skipped.  Parallel aggregation: combine, serialize and deserialize
 * functions are provided.
 *
 * max_len must be between 1 and T4R_SEQ_MAX_LEN (1,000,000), or NULL (keep
 * everything, like the two-argument form); anything else is ERROR 22023.
 * Why 1,000,000: max_len exists to cut a history to what a model reads, and a
 * model reads at most 4096 items (max_seq_len); a million is far above any
 * sensible cut but still a size whose state (16 MB) and result arrays (16 MB)
 * a backend can hold.  A larger value is almost certainly a "no limit"
 * sentinel or a mistake, and for "no limit" the two-argument form exists.
 */
#include "postgres.h"

#include <math.h>
#include <string.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "tim4rec_pg.h"

/* the largest max_len accepted (see the comment above) */
#define T4R_SEQ_MAX_LEN 1000000
/* initial capacity of a state, in events */
#define T4R_SEQ_INIT_CAP 16

PG_FUNCTION_INFO_V1(tim4rec_seq_transfn);
PG_FUNCTION_INFO_V1(tim4rec_seq_finalfn);
PG_FUNCTION_INFO_V1(tim4rec_seq_combinefn);
PG_FUNCTION_INFO_V1(tim4rec_seq_serialfn);
PG_FUNCTION_INFO_V1(tim4rec_seq_deserialfn);

/* item: the id, or for text and uuid items (tim4rec_seq(item text | uuid,
 * ...), README "Id types") a pointer to the key (NUL-terminated, uuids in
 * canonical form) allocated in the aggregate's context */
typedef struct SeqPair
{
	double		ts;
	int64		item;
} SeqPair;

#define PAIR_KEY(p) ((char *) (intptr_t) (p)->item)

typedef struct SeqState
{
	int64		n;
	int64		cap;
	int32		max_len;		/* 0 = keep everything */
	Oid			time_type;
	bool		keyed;			/* items are keys (text or uuid) */
	SeqPair    *ev;
} SeqState;

static int
cmp_pair(const void *pa, const void *pb)
{
	const SeqPair *a = pa,
			   *b = pb;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return (a->item > b->item) - (a->item < b->item);
}

/* keys: equal times ordered by the keys' bytes */
static int
cmp_pair_key(const void *pa, const void *pb)
{
	const SeqPair *a = pa,
			   *b = pb;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return strcmp(PAIR_KEY(a), PAIR_KEY(b));
}

static void
sort_pairs(SeqState *s)
{
	qsort(s->ev, s->n, sizeof(SeqPair), s->keyed ? cmp_pair_key : cmp_pair);
}

/* a new state with room for cap events (at least T4R_SEQ_INIT_CAP); callers
 * pass a small constant or the number of events they are about to store,
 * never a size derived from max_len */
static SeqState *
state_new(MemoryContext aggcxt, int32 max_len, int64 cap)
{
	SeqState   *s = MemoryContextAlloc(aggcxt, sizeof(SeqState));

	s->n = 0;
	s->cap = cap < T4R_SEQ_INIT_CAP ? T4R_SEQ_INIT_CAP : cap;
	s->max_len = max_len;
	s->time_type = InvalidOid;
	s->keyed = false;
	s->ev = MemoryContextAllocHuge(aggcxt, (size_t) s->cap * sizeof(SeqPair));
	return s;
}

/* keep the most recent max_len events (sorted) */
static void
state_prune(SeqState *s)
{
	if (s->max_len <= 0 || s->n <= s->max_len)
		return;
	sort_pairs(s);
	if (s->keyed)
		for (int64 i = 0; i < s->n - s->max_len; i++)
			pfree(PAIR_KEY(&s->ev[i]));
	memmove(s->ev, s->ev + (s->n - s->max_len), (size_t) s->max_len * sizeof(SeqPair));
	s->n = s->max_len;
}

/*
 * Make room for extra more events.  With max_len, a full state that holds at
 * least 2 * max_len events is pruned first, and the capacity grows (doubling)
 * only up to 2 * max_len, or to what the extra events need.
 */
static void
state_reserve(SeqState *s, int64 extra)
{
	int64		need = s->n + extra;
	int64		nc;

	if (need <= s->cap)
		return;
	if (s->max_len > 0 && s->n >= 2 * (int64) s->max_len)
	{
		state_prune(s);
		need = s->n + extra;
		if (need <= s->cap)
			return;
	}
	nc = s->cap * 2;
	while (nc < need)
		nc *= 2;
	if (s->max_len > 0)
	{
		int64		limit = Max(2 * (int64) s->max_len, need);

		if (nc > limit)
			nc = limit;
	}
	s->ev = repalloc_huge(s->ev, (size_t) nc * sizeof(SeqPair));
	s->cap = nc;
}

/* (internal, bigint, anytime [, int]) */
Datum
tim4rec_seq_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	SeqState   *s;
	double		t;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "tim4rec_seq_transfn called in a non-aggregate context");
	s = PG_ARGISNULL(0) ? NULL : (SeqState *) PG_GETARG_POINTER(0);
	if (s == NULL)
	{
		int32		max_len = 0;

		if (PG_NARGS() > 3)
		{
			if (PG_ARGISNULL(3))
				max_len = 0;
			else
			{
				max_len = PG_GETARG_INT32(3);
				if (max_len <= 0 || max_len > T4R_SEQ_MAX_LEN)
					ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
									errmsg("tim4rec_seq: max_len %d is out of range", max_len),
									errhint("max_len must be between 1 and %d; leave it out (or pass NULL) to keep every event.",
											T4R_SEQ_MAX_LEN)));
			}
		}
		/* start small; the state grows as rows arrive */
		s = state_new(aggcxt, max_len, T4R_SEQ_INIT_CAP);
		s->time_type = get_fn_expr_argtype(fcinfo->flinfo, 2);
		s->keyed = t4r_ids_kind(getBaseType(get_fn_expr_argtype(fcinfo->flinfo, 1))) != T4R_ID_INT;
		if (!t4r_pg_time_type_ok(s->time_type))
			ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
							errmsg("unsupported time type %s", format_type_be(s->time_type))));
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	switch (s->time_type)
	{
		case FLOAT8OID:
			t = PG_GETARG_FLOAT8(2);
			break;
		case INT8OID:
			t = (double) PG_GETARG_INT64(2);
			break;
		case INT4OID:
			t = (double) PG_GETARG_INT32(2);
			break;
		default:
			t = t4r_pg_time_to_epoch(PG_GETARG_DATUM(2), s->time_type);
			break;
	}
	t4r_pg_check_time(t, "time argument of tim4rec_seq", 0);
	state_reserve(s, 1);
	s->ev[s->n].ts = t;
	if (s->keyed)
	{
		Oid			it = getBaseType(get_fn_expr_argtype(fcinfo->flinfo, 1));
		char	   *key;

		if (it == UUIDOID)
			key = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(1)));
		else
			key = TextDatumGetCString(PG_GETARG_DATUM(1));
		s->ev[s->n].item = (int64) (intptr_t) MemoryContextStrdup(aggcxt, key);
	}
	else
		s->ev[s->n].item = PG_GETARG_INT64(1);
	s->n++;
	PG_RETURN_POINTER(s);
}

Datum
tim4rec_seq_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	SeqState   *a,
			   *b;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "tim4rec_seq_combinefn called in a non-aggregate context");
	a = PG_ARGISNULL(0) ? NULL : (SeqState *) PG_GETARG_POINTER(0);
	b = PG_ARGISNULL(1) ? NULL : (SeqState *) PG_GETARG_POINTER(1);
	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
	{
		a = state_new(aggcxt, b->max_len, b->n);
		a->time_type = b->time_type;
		a->keyed = b->keyed;
	}
	state_reserve(a, b->n);
	memcpy(a->ev + a->n, b->ev, (size_t) b->n * sizeof(SeqPair));
	if (a->keyed)
		for (int64 i = 0; i < b->n; i++)
			a->ev[a->n + i].item = (int64) (intptr_t) MemoryContextStrdup(aggcxt, PAIR_KEY(&b->ev[i]));
	a->n += b->n;
	if (a->max_len > 0 && a->n >= 2 * (int64) a->max_len)
		state_prune(a);
	PG_RETURN_POINTER(a);
}

Datum
tim4rec_seq_serialfn(PG_FUNCTION_ARGS)
{
	SeqState   *s = (SeqState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	state_prune(s);
	pq_begintypsend(&buf);
	pq_sendint64(&buf, s->n);
	pq_sendint32(&buf, s->max_len);
	pq_sendint32(&buf, s->time_type);
	pq_sendbyte(&buf, s->keyed ? 1 : 0);
	for (int64 i = 0; i < s->n; i++)
	{
		pq_sendfloat8(&buf, s->ev[i].ts);
		if (s->keyed)
			pq_sendstring(&buf, PAIR_KEY(&s->ev[i]));
		else
			pq_sendint64(&buf, s->ev[i].item);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
tim4rec_seq_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	StringInfoData buf;
	SeqState   *s;
	int64		n;
	int32		max_len;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "tim4rec_seq_deserialfn called in a non-aggregate context");
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	n = pq_getmsgint64(&buf);
	max_len = pq_getmsgint(&buf, 4);
	if (n < 0 || (size_t) n > (buf.len - buf.cursor) / 9 ||
		max_len < 0 || max_len > T4R_SEQ_MAX_LEN)
		elog(ERROR, "tim4rec_seq_deserialfn: malformed state");
	s = state_new(aggcxt, max_len, n);
	s->time_type = pq_getmsgint(&buf, 4);
	s->keyed = pq_getmsgbyte(&buf) != 0;
	for (int64 i = 0; i < n; i++)
	{
		s->ev[i].ts = pq_getmsgfloat8(&buf);
		if (s->keyed)
			s->ev[i].item = (int64) (intptr_t) MemoryContextStrdup(aggcxt, pq_getmsgstring(&buf));
		else
			s->ev[i].item = pq_getmsgint64(&buf);
	}
	s->n = n;
	pq_getmsgend(&buf);
	pfree(buf.data);
	PG_RETURN_POINTER(s);
}

Datum
tim4rec_seq_finalfn(PG_FUNCTION_ARGS)
{
	SeqState   *s = PG_ARGISNULL(0) ? NULL : (SeqState *) PG_GETARG_POINTER(0);
	TupleDesc	tupdesc;
	Datum	   *items,
			   *times;
	int64		n = 0,
				start = 0;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	HeapTuple	tup;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "tim4rec_seq_finalfn: return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (s != NULL && s->n > 0)
	{
		/* sorting in place is fine: the final function may be called again
		 * on the same state only for identical results (sorting is idempotent) */
		sort_pairs(s);
		n = s->n;
		if (s->max_len > 0 && n > s->max_len)
		{
			start = n - s->max_len;
			n = s->max_len;
		}
		if (n > (int64) MaxAllocSize / sizeof(Datum))
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							errmsg("tim4rec_seq: sequence too long (" INT64_FORMAT " events)", n)));
	}
	items = palloc((size_t) (n > 0 ? n : 1) * sizeof(Datum));
	times = palloc((size_t) (n > 0 ? n : 1) * sizeof(Datum));
	{
		/* element type of the result's items: bigint, text or uuid */
		Oid			arrt = TupleDescAttr(tupdesc, 0)->atttypid;
		Oid			et = get_element_type(arrt);
		int16		elen;
		bool		ebyval;
		char		ealign;

		if (s != NULL && s->keyed != (et != INT8OID))
			elog(ERROR, "tim4rec_seq_finalfn: item type does not match the result type");
		for (int64 i = 0; i < n; i++)
		{
			const SeqPair *p = &s->ev[start + i];

			items[i] = et == INT8OID ? Int64GetDatum(p->item) :
				et == UUIDOID ? DirectFunctionCall1(uuid_in, CStringGetDatum(PAIR_KEY(p))) :
				CStringGetTextDatum(PAIR_KEY(p));
			times[i] = Float8GetDatum(p->ts);
		}
		get_typlenbyvalalign(et, &elen, &ebyval, &ealign);
		values[0] = PointerGetDatum(construct_array(items, (int) n, et, elen, ebyval, ealign));
	}
	values[1] = PointerGetDatum(construct_array(times, (int) n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	tup = heap_form_tuple(tupdesc, values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(tup));
}
