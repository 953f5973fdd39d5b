/*
 * recommend_all.c - tim4rec_recommend_all: the top k items of every user of
 * a model's source relation (or of the users given), in one call.
 *
 *   tim4rec_recommend_all(model_name text DEFAULT 'default', k int DEFAULT 10,
 *                         users anyarray DEFAULT NULL, exclude_seen boolean DEFAULT true)
 *   RETURNS TABLE(user_id bigint, item_id bigint, score real, rank int)
 *
 * The answer of every user is the answer of tim4rec_recommend(user, k,
 * model_name, exclude_seen): same items, ranks, ties and scores, bit for bit
 * (the core runs each user's forward and score GEMV exactly as t4r_infer
 * does; see t4r_rec_batch_run).  How:
 *
 *   - one query reads the source relation once, grouped by user (ORDER BY
 *     the user column: with an index on (user, time) an index scan, else
 *     one sort), through a cursor that stays open across calls; each
 *     user's rows are then put in the per-user history query's order (time
 *     DESC, order column or item DESC) with the types' own btree
 *     comparators, the ones the executor's sort uses;
 *   - a value-per-call SRF: each time its rows run out it fetches rows
 *     until a batch of users is complete (RA_BATCH_USERS, fewer when k is
 *     large: about RA_BATCH_ROWS result rows) (a user is complete when the
 *     next user's rows start), scores them on tim4rec.threads threads with
 *     t4r_rec_batch_run, and returns the batch's rows one per call.  With
 *     more than one thread the scoring of a batch runs in a background
 *     thread (no PostgreSQL code in it, all signals blocked) while this
 *     backend reads the next batch and returns the rows of the previous
 *     one: the reading and the result rows no longer wait for the GEMMs.
 *     Memory is two batches (their users' windows and exclusions, k rows
 *     each) plus per-thread scratch, whatever the number of users;
 *   - per user, exactly what tim4rec_recommend_user does: the window is the
 *     user's most recent max_seq_len rows with an item and a time, items
 *     unknown to the model dropped after the window is taken; with
 *     exclude_seen the window's known items are excluded, or, when the
 *     window is full, every known item of the user's rows with an item;
 *     a user without a known item gets the cold-start popularity order.
 *
 * users: the users to answer (each distinct id once, in id order), those
 * without rows get the cold-start answer like tim4rec_recommend; NULL
 * elements are skipped with a NOTICE.  Without it: every user with a
 * non-NULL id in the source relation.  Rows come ordered by user, rank.
 *
 * Privileges are tim4rec_recommend's: USAGE on the model, SELECT on the
 * source's columns (row-level security applies to the query).  Nothing is
 * written: it works on a hot standby.
 *
 * Ids: the bigint signature returns bigint ids (models with integer ids);
 * the generic one, (model_name, k, users anyarray, item_type anycompatible,
 * exclude_seen), returns user_id in the users array's element type and
 * item_id in item_type's type, for every id type (src/ids.h).  Users are
 * read and compared as the query's user parameter type (int8, text, uuid)
 * in the user column's order and collation (the cursor's ORDER BY), so the
 * users filter merges with the scan; items go through t4r_ids_lookup_item;
 * ties of equal times break on the order column, else the item column, in
 * their own types and collations, as the per-user history query does.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/sortsupport.h"
#include "utils/datum.h"
#include "parser/parse_oper.h"

#include "tim4rec_pg.h"

/* OpenBLAS thread control (cblas.h of OpenBLAS declares these) */
extern void openblas_set_num_threads(int);
extern int	openblas_get_num_threads(void);

PG_FUNCTION_INFO_V1(tim4rec_recommend_all);

#define RA_BATCH_USERS 1024		/* users scored per batch (at most about) */
#define RA_BATCH_ROWS (256 * 1024)	/* ... and about this many result rows */
#define RA_FETCH_ROWS 8192		/* rows per cursor fetch, at most */

/* ---------------------------------------------------------------- */
/* id conversions (bigint ids for now)                               */
/* ---------------------------------------------------------------- */

/*
 * A user id as a Datum of the query's user parameter type (int8, text or
 * uuid: t4r_ids_user_param_type), compared with the user column's own
 * ordering (its btree comparator and collation), the order the query's
 * ORDER BY user gives.
 */
typedef Datum RaUser;

/* ---------------------------------------------------------------- */
/* state                                                             */
/* ---------------------------------------------------------------- */

/* one user of a batch */
typedef struct RaUserRec
{
	RaUser		user;
	int32	   *rows;			/* window, oldest first (known items) */
	double	   *ts;
	int			n;
	int32	   *seen;			/* exclusions (exclude_seen) */
	int			nseen;
	int32	   *out_rows;		/* [k] */
	t4r_real   *out_vals;
	int			cnt;
} RaUserRec;

/* one source row of the user being read */
typedef struct RaSrcRow
{
	int32		row;			/* vocabulary row, <= 0 if unknown */
	bool		tnull;
	bool		onull;
	Datum		t;				/* time */
	Datum		o;				/* order column (or the item id) */
} RaSrcRow;

/* one output row */
typedef struct RaRow
{
	RaUser		user;
	int32		row;
	float4		score;
	int32		rank;
} RaRow;

/*
 * One batch of users: read, scored, then returned row by row.  Two of them
 * alternate, so that one can be scored (in the background) while the next
 * is read and the rows of the previous are returned.
 */
typedef struct RaBatch
{
	MemoryContext cxt;			/* everything of the batch below */
	RaUserRec  *users;
	int			nusers;
	int			users_cap;
	t4r_rec_job *jobs;			/* the users with a known item */
	int			njobs;
	RaRow	   *out;			/* the result rows, after the scoring */
	int			nout;
	int			opos;

	/* the scoring: t4r_rec_batch_run(rb, jobs, njobs, k) in `th` */
	t4r_rec_batch *rb;
	int			k;
	int			rc;
	int			blas_threads;	/* OpenBLAS's setting before the scoring */
	bool		bg;				/* scored in a background thread */
	bool		running;		/* th started and not yet joined */
	pthread_t	th;
	struct RaBatch *next_running;	/* ra_running */
	MemoryContextCallback cb;	/* joins th before cxt is reset or freed */
} RaBatch;

typedef struct RaState
{
	T4rLoadedModel *lm;
	int			k;				/* min(k, V - 1) */
	int			k_arg;
	bool		exclude_seen;
	int			V;
	int			L;
	int			threads;
	int			batch_users;	/* users per batch: RA_BATCH_USERS, fewer for a large k */
	t4r_rec_batch *rb;			/* malloc'd by the core: freed by rb_free_cb */
	MemoryContextCallback rb_cb;
	char	   *portal_name;	/* NULL once the cursor is closed */
	Oid			time_type;
	bool		eof;
	ExprContext *econtext;
	bool		cb_registered;

	/* user ids: the parameter type, its storage, the column's order */
	Oid			user_ptype;
	bool		user_byval;
	int16		user_len;
	SortSupportData ssup_user;
	Oid			out_user_type;	/* the result's column types */
	Oid			out_item_type;

	/* users filter: sorted, distinct; next to emit */
	RaUser	   *fusers;
	int			nfusers;
	int			fpos;

	/* the user being read: every row with an item, in scan order */
	bool		cur_valid;
	RaUser		cur_user;
	RaSrcRow   *cur_src;
	int			cur_nsrc;
	int			cur_src_cap;
	MemoryContext user_cxt;		/* by-reference time / order values */
	int32	   *cur_rows;		/* [L] window, newest first (known items) */
	double	   *cur_ts;

	/* the per-user history query's ORDER BY time DESC, order DESC: the
	 * types' own btree comparators (what the executor's sort uses) */
	bool		sort_ready;
	Oid			order_type;
	bool		time_byval,
				order_byval;
	int16		time_len,
				order_len;
	SortSupportData ssup_time;
	SortSupportData ssup_order;

	/* the batches: rd being read, sc being scored, em being returned */
	RaBatch		slot[2];
	RaBatch    *rd;
	RaBatch    *sc;
	RaBatch    *em;
	bool		background;		/* score in a background thread (threads > 1) */
	int			nbatches;		/* batches read so far */
} RaState;

static void ra_score_join(RaBatch *b);

/* no scoring thread of st runs after this */
static void
ra_join_slots(RaState *st)
{
	ra_score_join(&st->slot[0]);
	ra_score_join(&st->slot[1]);
}

static void
rb_free_cb(void *arg)
{
	RaState    *st = (RaState *) arg;

	ra_join_slots(st);
	t4r_rec_batch_free(st->rb);
	st->rb = NULL;
}

/* ---------------------------------------------------------------- */
/* source relation and query                                         */
/* ---------------------------------------------------------------- */

static void
ra_source_check(T4rLoadedModel *lm, Oid *relid)
{
	*relid = t4r_pg_source_relation(lm, true,
									 "The model was imported, not trained on a table; tim4rec_recommend_all reads the users' histories from the source relation.",
									 "Use tim4rec_recommend(items, times, ...) with each user's sequence.",
									 "tim4rec_recommend_all reads the users' histories");
}

/*
 * Every row of the source with a user id, grouped by user (ORDER BY the
 * user column: an index on (user, ...) gives that order without a sort);
 * each user's rows are put in the per-user history query's order (time
 * DESC, order column or item DESC) here, with the types' comparators.
 * Every operator and type schema-qualified: the text runs with the
 * caller's search_path (the source may be a view that needs it).
 */
static char *
ra_query(T4rLoadedModel *lm, Oid user_ptype, bool filter)
{
	StringInfoData q;
	const char *ucol = quote_identifier(lm->user_column);
	const char *icol = quote_identifier(lm->item_column);

	initStringInfo(&q);
	/* user (as the parameter type), item (as the lookup type), time, and
	 * the tie-break key of the history query: the order column, else the
	 * item column itself (its own type and collation) */
	appendStringInfo(&q, "SELECT s.%s::%s, s.%s%s, s.%s, s.%s",
					 ucol, user_ptype == INT8OID ? "pg_catalog.int8" :
					 user_ptype == UUIDOID ? "pg_catalog.uuid" : "pg_catalog.text",
					 icol, t4r_ids_query_item_cast(lm), quote_identifier(lm->time_column),
					 lm->order_column ? quote_identifier(lm->order_column) : icol);
	appendStringInfo(&q, " FROM %s s WHERE s.%s IS NOT NULL",
					 quote_qualified_identifier(lm->source_schema, lm->source_table), ucol);
	if (filter)
		appendStringInfo(&q, " AND s.%s OPERATOR(pg_catalog.=) ANY ($1)", ucol);
	/* qualified: a bare name would sort by the cast output column */
	appendStringInfo(&q, " ORDER BY s.%s", ucol);
	return q.data;
}

/* ---------------------------------------------------------------- */
/* reading and batching                                              */
/* ---------------------------------------------------------------- */

static inline int
ra_cmp_user(RaState *st, RaUser a, RaUser b)
{
	return ApplySortComparator(a, false, b, false, &st->ssup_user);
}

static int
ra_qsort_user(const void *pa, const void *pb, void *arg)
{
	return ra_cmp_user((RaState *) arg, *(const RaUser *) pa, *(const RaUser *) pb);
}

/* a user (parameter type) as the result column's type */
static Datum
ra_user_out(RaState *st, RaUser u)
{
	int64		v;

	switch (st->out_user_type)
	{
		case INT4OID:
		case INT2OID:
			v = DatumGetInt64(u);
			if ((st->out_user_type == INT4OID && (v < PG_INT32_MIN || v > PG_INT32_MAX)) ||
				(st->out_user_type == INT2OID && (v < PG_INT16_MIN || v > PG_INT16_MAX)))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("user id " INT64_FORMAT " is out of range for type %s", v,
								format_type_be(st->out_user_type)),
						 errhint("Pass users as a bigint[] array (or NULL::bigint[]).")));
			return st->out_user_type == INT4OID ? Int32GetDatum((int32) v) : Int16GetDatum((int16) v);
		default:
			return u;			/* int8, text (varchar: binary-compatible), uuid */
	}
}

static RaUserRec *
ra_new_user(RaState *st, RaUser u)
{
	RaBatch    *b = st->rd;
	RaUserRec  *r;

	if (b->nusers == b->users_cap)
	{
		b->users_cap *= 2;
		b->users = repalloc(b->users, sizeof(RaUserRec) * b->users_cap);
	}
	r = &b->users[b->nusers++];
	memset(r, 0, sizeof(*r));
	r->user = datumCopy(u, st->user_byval, st->user_len);
	return r;
}

/* users of the filter below u (or all remaining if !upto) have no rows:
 * cold start */
static void
ra_flush_filter(RaState *st, bool upto, RaUser u)
{
	while (st->fpos < st->nfusers && (!upto || ra_cmp_user(st, st->fusers[st->fpos], u) < 0))
		(void) ra_new_user(st, st->fusers[st->fpos++]);
	if (upto && st->fpos < st->nfusers && ra_cmp_user(st, st->fusers[st->fpos], u) == 0)
		st->fpos++;
}

static int
ra_cmp_src(const void *pa, const void *pb, void *arg)
{
	const RaSrcRow *a = pa,
			   *b = pb;
	RaState    *st = arg;
	int			c;

	c = ApplySortComparator(a->t, false, b->t, false, &st->ssup_time);
	if (c != 0)
		return c;
	return ApplySortComparator(a->o, a->onull, b->o, b->onull, &st->ssup_order);
}

/* ORDER BY <typid> DESC (NULLS FIRST, the default) */
static void
ra_sort(SortSupport ssup, Oid typid, Oid collation, bool desc)
{
	Oid			op;

	if (desc)
		get_sort_group_operators(typid, false, false, true, NULL, NULL, &op, NULL);
	else
		get_sort_group_operators(typid, true, false, false, &op, NULL, NULL, NULL);
	memset(ssup, 0, sizeof(*ssup));
	ssup->ssup_cxt = CurrentMemoryContext;
	ssup->ssup_collation = collation;
	ssup->ssup_nulls_first = desc;	/* DESC: NULLS FIRST, ASC: NULLS LAST */
	ssup->abbreviate = false;
	PrepareSortSupportFromOrderingOp(op, ssup);
}

/*
 * The user being read is complete: its history as tim4rec_recommend_user
 * reads it, into the batch being read (st->rd).  The window is the first L rows
 * with a time in time DESC, order DESC order (L = max_seq_len: that
 * query's LIMIT), unknown items dropped after; with exclude_seen the
 * window's known items are excluded, or, when the window is full, every
 * known item of the user's rows.
 */
static void
ra_finish_user(RaState *st)
{
	RaUserRec  *r;
	MemoryContext old;
	int			ntimed = 0,
				nwin,
				n = 0;

	if (!st->cur_valid)
		return;
	st->cur_valid = false;

	/* rows with a time first (scan order kept), then sort those */
	for (int i = 0; i < st->cur_nsrc; i++)
		if (!st->cur_src[i].tnull)
		{
			RaSrcRow	tmp = st->cur_src[i];

			st->cur_src[i] = st->cur_src[ntimed];
			st->cur_src[ntimed++] = tmp;
		}
	if (ntimed > 1)
	{
		/* the scan often returns a user's rows in time order, the reverse
		 * of the one wanted: when every key is strictly smaller than the
		 * next one (no equal keys, so the order is the one any sort gives)
		 * a reversal is the sort */
		bool		rev = true;

		for (int i = 1; i < ntimed && rev; i++)
			rev = ra_cmp_src(&st->cur_src[i - 1], &st->cur_src[i], st) > 0;
		if (rev)
			for (int i = 0, j = ntimed - 1; i < j; i++, j--)
			{
				RaSrcRow	tmp = st->cur_src[i];

				st->cur_src[i] = st->cur_src[j];
				st->cur_src[j] = tmp;
			}
		else
			qsort_arg(st->cur_src, ntimed, sizeof(RaSrcRow), ra_cmp_src, st);
	}
	nwin = ntimed < st->L ? ntimed : st->L;
	for (int i = 0; i < nwin; i++)
	{
		if (st->cur_src[i].row <= 0)
			continue;
		st->cur_rows[n] = st->cur_src[i].row;
		st->cur_ts[n] = t4r_pg_time_to_epoch(st->cur_src[i].t, st->time_type);
		n++;
	}

	old = MemoryContextSwitchTo(st->rd->cxt);
	if (st->fusers)
		ra_flush_filter(st, true, st->cur_user);
	r = ra_new_user(st, st->cur_user);
	r->n = n;
	if (n > 0)
	{
		r->rows = palloc(sizeof(int32) * n);
		r->ts = palloc(sizeof(double) * n);
		/* newest first: reverse */
		for (int i = 0; i < n; i++)
		{
			r->rows[i] = st->cur_rows[n - 1 - i];
			r->ts[i] = st->cur_ts[n - 1 - i];
		}
	}
	if (st->exclude_seen)
	{
		if (nwin >= st->L)
		{
			r->seen = palloc(sizeof(int32) * (st->cur_nsrc > 0 ? st->cur_nsrc : 1));
			for (int i = 0; i < st->cur_nsrc; i++)
				if (st->cur_src[i].row > 0)
					r->seen[r->nseen++] = st->cur_src[i].row;
		}
		else
		{
			r->seen = palloc(sizeof(int32) * (n > 0 ? n : 1));
			memcpy(r->seen, st->cur_rows, sizeof(int32) * n);
			r->nseen = n;
		}
	}
	MemoryContextSwitchTo(old);
}

static void
ra_start_user(RaState *st, RaUser u)
{
	st->cur_valid = true;
	st->cur_nsrc = 0;
	MemoryContextReset(st->user_cxt);
	{
		MemoryContext old = MemoryContextSwitchTo(st->user_cxt);

		st->cur_user = datumCopy(u, st->user_byval, st->user_len);
		MemoryContextSwitchTo(old);
	}
}

/* fetch and consume rows until the batch has its users (batch_users, fewer
 * for the first batches) or the source is exhausted */
static void
ra_read_batch(RaState *st)
{
	/* in the background mode the first batches are smaller (64, 256, then
	 * batch_users users): the scoring starts early, and reading a batch
	 * takes about as long as scoring the one before it */
	int			target = st->batch_users;

	if (st->background && st->nbatches < 2)
		target = Max(T4R_REC_MB, Min(target, 64 << (2 * st->nbatches)));
	st->nbatches++;
	while (!st->eof && st->rd->nusers < target)
	{
		Portal		portal;
		SPITupleTable *tt;
		uint64		nr;
		long		want;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		if ((rc = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
		portal = SPI_cursor_find(st->portal_name);
		if (portal == NULL)
			elog(ERROR, "tim4rec: cursor \"%s\" of tim4rec_recommend_all is gone", st->portal_name);
		/* a fetch completes at most one user per row: fetch no more rows
		 * than users missing, so a batch holds <= batch_users + T4R_REC_MB */
		want = Min(RA_FETCH_ROWS, Max(target - st->rd->nusers, T4R_REC_MB));
		SPI_cursor_fetch(portal, true, want);
		tt = SPI_tuptable;
		nr = SPI_processed;
		if (!st->sort_ready)
		{
			MemoryContext old = MemoryContextSwitchTo(st->user_cxt->parent);

			st->time_type = SPI_gettypeid(tt->tupdesc, 3);
			if (!t4r_pg_time_type_ok(st->time_type))
				ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
								errmsg("column %s of %s has an unsupported type for a time column",
									   quote_identifier(st->lm->time_column),
									   quote_qualified_identifier(st->lm->source_schema,
																  st->lm->source_table))));
			st->order_type = SPI_gettypeid(tt->tupdesc, 4);
			get_typlenbyval(st->time_type, &st->time_len, &st->time_byval);
			get_typlenbyval(st->order_type, &st->order_len, &st->order_byval);
			ra_sort(&st->ssup_time, st->time_type, TupleDescAttr(tt->tupdesc, 2)->attcollation, true);
			ra_sort(&st->ssup_order, st->order_type, TupleDescAttr(tt->tupdesc, 3)->attcollation, true);
			st->sort_ready = true;
			MemoryContextSwitchTo(old);
		}
		for (uint64 i = 0; i < nr; i++)
		{
			HeapTuple	tup = tt->vals[i];
			bool		unull,
						inull,
						tnull,
						onull;
			Datum		ud = SPI_getbinval(tup, tt->tupdesc, 1, &unull);
			Datum		id = SPI_getbinval(tup, tt->tupdesc, 2, &inull);
			RaUser		u;
			RaSrcRow   *sr;

			if (unull)
				continue;		/* the query excludes them */
			u = ud;
			if (!st->cur_valid || ra_cmp_user(st, u, st->cur_user) != 0)
			{
				ra_finish_user(st);
				ra_start_user(st, u);
			}
			if (inull)
				continue;		/* in no history query */
			if (st->cur_nsrc == st->cur_src_cap)
			{
				st->cur_src_cap *= 2;
				st->cur_src = repalloc(st->cur_src, sizeof(RaSrcRow) * st->cur_src_cap);
			}
			sr = &st->cur_src[st->cur_nsrc++];
			{
				int32		row = t4r_ids_lookup_item(st->lm, id, t4r_ids_query_item_type(st->lm));

				sr->row = row > 0 ? row : 0;
			}
			sr->t = SPI_getbinval(tup, tt->tupdesc, 3, &tnull);
			sr->tnull = tnull;
			sr->o = SPI_getbinval(tup, tt->tupdesc, 4, &onull);
			sr->onull = onull;
			/* values that live in the tuple: copy (the tuples go with SPI) */
			if ((!tnull && !st->time_byval) || (!onull && !st->order_byval))
			{
				MemoryContext old = MemoryContextSwitchTo(st->user_cxt);

				if (!tnull && !st->time_byval)
					sr->t = datumCopy(sr->t, false, st->time_len);
				if (!onull && !st->order_byval)
					sr->o = datumCopy(sr->o, false, st->order_len);
				MemoryContextSwitchTo(old);
			}
		}
		if (nr < (uint64) want)
		{
			st->eof = true;
			SPI_cursor_close(portal);
			st->portal_name = NULL;
		}
		SPI_finish();
	}
	if (st->eof)
	{
		MemoryContext old;

		ra_finish_user(st);
		old = MemoryContextSwitchTo(st->rd->cxt);
		if (st->fusers)
			ra_flush_filter(st, false, 0);
		MemoryContextSwitchTo(old);
	}
}

/*
 * The scoring of a batch, in a background thread or inline.  The thread runs
 * only the core (malloc, OpenMP, OpenBLAS; no PostgreSQL code, no palloc,
 * no ereport) on memory of the batch's context that the backend leaves
 * alone until the thread is joined: the jobs, the windows, the
 * exclusions and the output arrays.  It is joined by ra_score_wait before
 * the rows are laid out, and, should the backend leave early, before that
 * memory or the model can go: by the batch context's reset callback (a
 * context is reset or deleted, also on error), by ra_shutdown (early end
 * of the scan: the model is released there) and by the transaction
 * callback below (an error: the model cache clears its pins at abort, in
 * an earlier-registered callback, so after this one).
 */
static RaBatch *ra_running;		/* batches whose thread is not joined */
static bool ra_xact_cb_registered;

/*
 * OpenBLAS's thread count is one setting for the whole process, and the
 * scoring needs it at 1: a GEMV split over threads rounds some rows
 * differently, and the rows would then differ from tim4rec_recommend's.
 * So while any background scoring runs, nobody in this backend puts it
 * back (t4r_pg_background_scoring tells tim4rec_recommend); the setting
 * found when the first of them started is restored when the last one is
 * joined.
 */
static int	ra_blas_saved = -1;

bool
t4r_pg_background_scoring(void)
{
	return ra_running != NULL;
}

static void *
ra_score_main(void *arg)
{
	RaBatch    *b = arg;

	b->rc = t4r_rec_batch_run(b->rb, b->jobs, b->njobs, b->k);
	return NULL;
}

/* join b's thread if it runs; safe in error and abort paths */
static void
ra_score_join(RaBatch *b)
{
	if (!b->running)
		return;
	pthread_join(b->th, NULL);
	b->running = false;
	for (RaBatch **pp = &ra_running; *pp; pp = &(*pp)->next_running)
		if (*pp == b)
		{
			*pp = b->next_running;
			break;
		}
	b->next_running = NULL;
	if (ra_running == NULL && ra_blas_saved > 0)
	{
		if (openblas_get_num_threads() != ra_blas_saved)
			openblas_set_num_threads(ra_blas_saved);
		ra_blas_saved = -1;
	}
}

static void
ra_batch_reset_cb(void *arg)
{
	ra_score_join((RaBatch *) arg);
}

/* no scoring thread of this backend runs after this */
static void
ra_join_all(void)
{
	while (ra_running)
		ra_score_join(ra_running);
}

static void
ra_xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ra_join_all();
}

static void
ra_subxact_cb(SubXactEvent event, SubTransactionId mySubid,
			  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ra_join_all();
}

/* the batch's jobs (users with a known item) and the cold-start answers */
static void
ra_prepare_batch(RaState *st, RaBatch *b)
{
	T4rLoadedModel *lm = st->lm;
	MemoryContext old = MemoryContextSwitchTo(b->cxt);
	int			kbuf = st->k > 0 ? st->k : 1;
	uint8	   *excl = NULL;

	b->jobs = palloc(sizeof(t4r_rec_job) * (b->nusers > 0 ? b->nusers : 1));
	b->njobs = 0;
	for (int i = 0; i < b->nusers; i++)
	{
		RaUserRec  *r = &b->users[i];

		r->out_rows = palloc(sizeof(int32) * kbuf);
		r->out_vals = palloc(sizeof(t4r_real) * kbuf);
		if (r->n > 0)
		{
			t4r_rec_job *j = &b->jobs[b->njobs++];

			j->seq.items = r->rows;
			j->seq.ts = r->ts;
			j->seq.n = r->n;
			j->seq.target = 0;
			j->exclude = r->seen;
			j->nexclude = r->seen ? r->nseen : 0;
			j->rows = r->out_rows;
			j->vals = r->out_vals;
			j->count = 0;
		}
		else
		{
			/* cold start: most popular items of the training data */
			if (excl == NULL)
				excl = palloc0(st->V);
			for (int x = 0; x < r->nseen; x++)
				excl[r->seen[x]] = 1;
			r->cnt = 0;
			for (int p = 0; p < st->V - 1 && r->cnt < st->k; p++)
			{
				int32		row = lm->pop_order[p];

				if (excl[row])
					continue;
				r->out_rows[r->cnt] = row;
				r->out_vals[r->cnt] = (t4r_real) lm->item_counts[row];
				r->cnt++;
			}
			for (int x = 0; x < r->nseen; x++)
				excl[r->seen[x]] = 0;
		}
	}
	MemoryContextSwitchTo(old);
}

/* start scoring b: in a background thread when st->background, else here */
static void
ra_score_start(RaState *st, RaBatch *b)
{
	sigset_t	all,
				saved;

	b->rb = st->rb;
	b->k = st->k;
	b->rc = T4R_OK;
	b->bg = false;
	b->blas_threads = openblas_get_num_threads();
	if (b->njobs == 0)
		return;
	if (st->background)
	{
		if (!ra_xact_cb_registered)
		{
			RegisterXactCallback(ra_xact_cb, NULL);
			RegisterSubXactCallback(ra_subxact_cb, NULL);
			ra_xact_cb_registered = true;
		}
		b->cb.func = ra_batch_reset_cb;
		b->cb.arg = b;
		MemoryContextRegisterResetCallback(b->cxt, &b->cb);
		/* the thread (and its OpenMP team) must never run a signal
		 * handler of the backend: all signals blocked while it starts */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &saved);
		b->running = pthread_create(&b->th, NULL, ra_score_main, b) == 0;
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		if (b->running)
		{
			b->bg = true;
			if (ra_running == NULL)
				ra_blas_saved = b->blas_threads;
			b->next_running = ra_running;
			ra_running = b;
			return;
		}
	}
	/* one thread, or no thread could be started: score here */
	ra_score_main(b);
}

/* wait for b's scoring and lay out its rows (ties by item id) */
static void
ra_score_wait(RaState *st, RaBatch *b)
{
	T4rLoadedModel *lm = st->lm;
	MemoryContext old;
	int			total = 0,
				nj = 0;

	ra_score_join(b);
	/* inline scoring: put OpenBLAS's setting back (after a background
	 * scoring ra_score_join did, when it was the last one running) */
	if (!b->bg && b->njobs > 0 && !t4r_pg_background_scoring() &&
		b->blas_threads != openblas_get_num_threads())
		openblas_set_num_threads(b->blas_threads);
	if (b->rc != T4R_OK)
		t4r_pg_core_error(b->rc, "scoring a batch of users", NULL);
	for (int i = 0; i < b->nusers; i++)
	{
		RaUserRec  *r = &b->users[i];

		if (r->n > 0)
			r->cnt = b->jobs[nj++].count;
		total += r->cnt;
	}
	old = MemoryContextSwitchTo(b->cxt);
	b->out = palloc(sizeof(RaRow) * (total > 0 ? total : 1));
	b->nout = 0;
	b->opos = 0;
	for (int i = 0; i < b->nusers; i++)
	{
		RaUserRec  *r = &b->users[i];
		int32	   *rows = r->out_rows;
		t4r_real   *vals = r->out_vals;

		/* equal scores by item id, as tim4rec_recommend */
		for (int a = 1; a < r->cnt; a++)
		{
			int32		rr = rows[a];
			t4r_real	v = vals[a];
			int			c = a - 1;

			while (c >= 0 && vals[c] == v && lm->item_ids[rows[c]] > lm->item_ids[rr])
			{
				rows[c + 1] = rows[c];
				vals[c + 1] = vals[c];
				c--;
			}
			rows[c + 1] = rr;
			vals[c + 1] = v;
		}
		for (int a = 0; a < r->cnt; a++)
		{
			RaRow	   *o = &b->out[b->nout++];

			o->user = r->user;
			o->row = rows[a];
			o->score = (float4) vals[a];
			o->rank = a + 1;
		}
	}
	MemoryContextSwitchTo(old);
}

static bool
ra_more_to_read(RaState *st)
{
	return !(st->eof && !st->cur_valid && (st->fusers == NULL || st->fpos >= st->nfusers));
}

/*
 * The next batch of rows (false when there is none).  Called when the
 * rows of st->em are used up: reads the next batch into the free slot
 * while st->sc is being scored, waits for st->sc, which becomes st->em,
 * and starts scoring the batch just read.
 */
static bool
ra_next_batch(RaState *st)
{
	for (;;)
	{
		RaBatch    *nb = NULL;

		st->em = NULL;
		if (ra_more_to_read(st))
		{
			RaBatch    *b = st->sc == &st->slot[0] ? &st->slot[1] : &st->slot[0];

			MemoryContextReset(b->cxt);
			b->users = MemoryContextAlloc(b->cxt, sizeof(RaUserRec) * 64);
			b->users_cap = 64;
			b->nusers = b->njobs = 0;
			b->out = NULL;
			b->nout = b->opos = 0;
			st->rd = b;
			ra_read_batch(st);
			st->rd = NULL;
			if (b->nusers > 0)
			{
				ra_prepare_batch(st, b);
				nb = b;
			}
		}
		if (st->sc)
		{
			RaBatch    *b = st->sc;

			st->sc = NULL;
			ra_score_wait(st, b);
			st->em = b;
		}
		if (nb)
		{
			ra_score_start(st, nb);
			st->sc = nb;
		}
		CHECK_FOR_INTERRUPTS();
		if (st->em && st->em->nout > 0)
			return true;
		if (st->sc == NULL && !ra_more_to_read(st))
			return false;
	}
}

/* normal end or early shutdown of the scan (not called on error: the
 * transaction's abort closes the cursor and unpins the model) */
static void
ra_shutdown(Datum arg)
{
	RaState    *st = (RaState *) DatumGetPointer(arg);

	/* the model and the scratch go below: no thread may use them */
	ra_join_slots(st);
	if (st->portal_name)
	{
		Portal		p = GetPortalByName(st->portal_name);

		if (PortalIsValid(p))
			SPI_cursor_close(p);
		st->portal_name = NULL;
	}
	if (st->lm)
	{
		t4r_pg_release_model(st->lm);
		st->lm = NULL;
	}
	t4r_rec_batch_free(st->rb);
	st->rb = NULL;
}

/* ---------------------------------------------------------------- */
/* the function                                                      */
/* ---------------------------------------------------------------- */

/* the users argument: its ids in the user column's type, distinct, sorted
 * (NULLs skipped with a NOTICE) */
static void
ra_users_filter(RaState *st, ArrayType *farr)
{
	Oid			et = ARR_ELEMTYPE(farr);
	int16		typlen;
	bool		byval;
	char		align;
	Datum	   *el;
	bool	   *nulls;
	int			n,
				nn = 0,
				nnull = 0;

	get_typlenbyvalalign(et, &typlen, &byval, &align);
	deconstruct_array(farr, et, typlen, byval, align, &el, &nulls, &n);
	st->fusers = palloc(sizeof(RaUser) * (n > 0 ? n : 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
		{
			nnull++;
			continue;
		}
		st->fusers[nn++] = datumCopy(t4r_ids_user_param(st->lm, el[i], et), st->user_byval,
									 st->user_len);
	}
	if (nnull > 0)
		ereport(NOTICE,
				(errmsg("%d NULL user id%s in users skipped", nnull, nnull == 1 ? "" : "s")));
	qsort_arg(st->fusers, nn, sizeof(RaUser), ra_qsort_user, st);
	n = 0;
	for (int i = 0; i < nn; i++)
		if (n == 0 || ra_cmp_user(st, st->fusers[n - 1], st->fusers[i]) != 0)
			st->fusers[n++] = st->fusers[i];
	st->nfusers = n;
}

/* the cursor over the source (SPI connected only while it is opened) */
static void
ra_open_cursor(RaState *st, FuncCallContext *fctx)
{
	SPIPlanPtr	plan;
	Portal		portal;
	Datum		vals[1] = {(Datum) 0};
	Oid			types[1];
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
	types[0] = get_array_type(st->user_ptype);
	plan = SPI_prepare_cursor(ra_query(st->lm, st->user_ptype, st->fusers != NULL), st->fusers ? 1 : 0,
							  types, CURSOR_OPT_NO_SCROLL);
	if (plan == NULL)
		elog(ERROR, "tim4rec: SPI_prepare failed for the source query: %s",
			 SPI_result_code_string(SPI_result));
	if (st->fusers)
	{
		int16		tl;
		bool		tb;
		char		ta;

		get_typlenbyvalalign(st->user_ptype, &tl, &tb, &ta);
		vals[0] = PointerGetDatum(construct_array(st->fusers, st->nfusers, st->user_ptype, tl, tb, ta));
	}
	portal = SPI_cursor_open(NULL, plan, vals, NULL, true);
	if (portal == NULL)
		elog(ERROR, "tim4rec: opening the source cursor failed: %s",
			 SPI_result_code_string(SPI_result));
	st->portal_name = MemoryContextStrdup(fctx->multi_call_memory_ctx, portal->name);
	SPI_finish();
}

static RaState *
ra_init(FunctionCallInfo fcinfo, FuncCallContext *fctx)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RaState    *st;
	char	   *model_name;
	TupleDesc	tupdesc;
	T4rLoadedModel *lm;
	ArrayType  *farr = NULL;
	Oid			felem = InvalidOid;
	int			rc;
	bool		generic = PG_NARGS() == 5;	/* (..., users, item_type, exclude_seen) */
	int			arg_excl = generic ? 4 : 3;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("k must not be null")));
	if (PG_GETARG_INT32(1) <= 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("k must be positive"),
						errdetail("k = %d.", PG_GETARG_INT32(1))));
	if (PG_ARGISNULL(arg_excl))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("exclude_seen must not be null")));
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || rsinfo->econtext == NULL)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("set-valued function called in context that cannot accept a set")));
	if (!PG_ARGISNULL(2))
	{
		Oid			atype = get_fn_expr_argtype(fcinfo->flinfo, 2);

		farr = PG_GETARG_ARRAYTYPE_P(2);
		if (!OidIsValid(atype) || !OidIsValid(get_element_type(atype)))
			ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
							errmsg("users must be an array")));
		felem = ARR_ELEMTYPE(farr);
	}
	model_name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	st = palloc0(sizeof(RaState));
	st->k_arg = PG_GETARG_INT32(1);
	st->exclude_seen = PG_GETARG_BOOL(arg_excl);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "tim4rec: return type must be a row type");
	fctx->tuple_desc = BlessTupleDesc(tupdesc);
	st->out_user_type = getBaseType(TupleDescAttr(tupdesc, 0)->atttypid);
	st->out_item_type = getBaseType(TupleDescAttr(tupdesc, 1)->atttypid);

	/* the model and its id types: the result's types and the users must fit */
	lm = t4r_pg_get_model(model_name, 0, T4R_PRIV_USAGE);
	st->lm = lm;
	t4r_ids_check_user_type(lm, st->out_user_type, generic ? "users" : "user_id (bigint)");
	t4r_ids_check_item_type(lm, st->out_item_type, generic ? "item_type" : "item_id (bigint)");
	if (farr)
		t4r_ids_check_user_type(lm, felem, "users");
	st->user_ptype = t4r_ids_user_param_type(lm);
	get_typlenbyval(st->user_ptype, &st->user_len, &st->user_byval);
	{
		/* the user column's order (ORDER BY s.user): its collation */
		Oid			relid,
					typ = InvalidOid,
					coll = InvalidOid;
		int32		typmod;

		ra_source_check(lm, &relid);
		if (OidIsValid(relid))
		{
			AttrNumber	att = get_attnum(relid, lm->user_column);

			if (att != InvalidAttrNumber)
				get_atttypetypmodcoll(relid, att, &typ, &typmod, &coll);
		}
		ra_sort(&st->ssup_user, st->user_ptype, coll, false);
	}

	if (farr)
		ra_users_filter(st, farr);

	st->V = lm->model->cfg.n_items;
	st->L = lm->model->cfg.max_seq_len;
	st->k = st->k_arg < st->V - 1 ? st->k_arg : st->V - 1;
	st->threads = t4r_pg_threads();
	st->batch_users = RA_BATCH_ROWS / st->k;
	st->batch_users = Max(T4R_REC_MB, Min(RA_BATCH_USERS, st->batch_users));
	st->cur_rows = palloc(sizeof(int32) * st->L);
	st->cur_ts = palloc(sizeof(double) * st->L);
	st->cur_src_cap = 256;
	st->cur_src = palloc(sizeof(RaSrcRow) * st->cur_src_cap);
	st->user_cxt = AllocSetContextCreate(CurrentMemoryContext, "tim4rec_recommend_all user",
										 ALLOCSET_SMALL_SIZES);
	for (int i = 0; i < 2; i++)
		st->slot[i].cxt = AllocSetContextCreate(CurrentMemoryContext, "tim4rec_recommend_all batch",
												ALLOCSET_DEFAULT_SIZES);
	st->background = st->threads > 1;

	/* core scratch (malloc): freed at shutdown, or with this context on error */
	st->rb_cb.func = rb_free_cb;
	st->rb_cb.arg = st;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &st->rb_cb);
	rc = t4r_rec_batch_create_packed(lm->model, st->threads, lm->packed, &st->rb);
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "allocating the inference scratch memory", NULL);

	ra_open_cursor(st, fctx);

	st->econtext = rsinfo->econtext;
	RegisterExprContextCallback(st->econtext, ra_shutdown, PointerGetDatum(st));
	st->cb_registered = true;
	return st;
}

Datum
tim4rec_recommend_all(PG_FUNCTION_ARGS)
{
	FuncCallContext *fctx;
	RaState    *st;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;

		fctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(fctx->multi_call_memory_ctx);
		fctx->user_fctx = ra_init(fcinfo, fctx);
		MemoryContextSwitchTo(old);
	}
	fctx = SRF_PERCALL_SETUP();
	st = (RaState *) fctx->user_fctx;

	if (st->em == NULL || st->em->opos >= st->em->nout)
	{
		MemoryContext old = MemoryContextSwitchTo(fctx->multi_call_memory_ctx);
		bool		more = ra_next_batch(st);

		MemoryContextSwitchTo(old);
		if (!more)
		{
			UnregisterExprContextCallback(st->econtext, ra_shutdown, PointerGetDatum(st));
			ra_shutdown(PointerGetDatum(st));
			SRF_RETURN_DONE(fctx);
		}
	}
	{
		RaRow	   *o = &st->em->out[st->em->opos++];
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = ra_user_out(st, o->user);
		values[1] = t4r_ids_item_datum(st->lm, o->row, st->out_item_type);
		values[2] = Float4GetDatum(o->score);
		values[3] = Int32GetDatum(o->rank);
		SRF_RETURN_NEXT(fctx, HeapTupleGetDatum(heap_form_tuple(fctx->tuple_desc, values, nulls)));
	}
}
