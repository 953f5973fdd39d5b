/*
 * evaluate.c - tim4rec_evaluate(model_name, ks).
 *
 * Reads the model's source relation as it is now, keeps the interactions of
 * items the model knows (the others are dropped, with a NOTICE giving the
 * count), builds the dataset with the protocol of docs/MODEL.md ("Data protocol") (min_user / min_item
 * filter from the model's config, leave-one-out), expresses it in the model's
 * vocabulary rows and computes HR, NDCG and MRR at each k on the validation
 * and test targets for the model and for the most-popular baseline (training
 * part counts of the current data).  No masking of seen items.
 *
 * tim4rec_evaluate_users(model_name, split, baseline) gives the same
 * evaluation per user (the rank of each user's held-out item), for paired
 * comparisons of models over users (issue 12 part 3): both read and build
 * the data through eval_prepare, so the mean over users of a metric computed
 * from the ranks is tim4rec_evaluate's figure.
 */
#include "postgres.h"

#include <stdlib.h>
#include <string.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "tim4rec_pg.h"

PG_FUNCTION_INFO_V1(tim4rec_evaluate);
PG_FUNCTION_INFO_V1(tim4rec_evaluate_wide);
PG_FUNCTION_INFO_V1(tim4rec_evaluate_users);

static const char *const eval_models[2] = {"tim4rec", "most_popular"};
static const char *const eval_splits[2] = {"valid", "test"};
static const char *const eval_metrics[3] = {"hr", "ndcg", "mrr"};

/* index of metric me at the j-th k of model m, split sp in eval_compute's result */
#define EVAL_AT(m, sp, me, j, nk) ((size_t) (((m) * 2 + (sp)) * 3 + (me)) * (nk) + (j))

static Oid
eval_source_relation(T4rLoadedModel *lm)
{
	/* privileges on the relation: checked when it is read */
	return t4r_pg_source_relation(lm, false,
								  "The model was imported, not trained on a table, so there is no data to evaluate it on.",
								  NULL, "tim4rec_evaluate");
}

/*
 * Read the model's source relation as it is now and keep the interactions of
 * items the model knows (NOTICE with the count of the others).  in keeps the
 * user keys (text and uuid users) for tim4rec_evaluate_users.
 */
static size_t
eval_read(T4rLoadedModel *lm, T4rInteractions *in)
{
	Oid			relid = eval_source_relation(lm);
	size_t		kept = 0,
				dropped = 0;

	memset(in, 0, sizeof(*in));
	t4r_pg_read_interactions(relid, lm->user_column, lm->item_column, lm->time_column,
							 lm->order_column, in);
	t4r_ids_map_items(lm, in);
	/* keep the interactions of known items (compacting in place) */
	for (size_t i = 0; i < in->n; i++)
	{
		if (t4r_pg_item_row(lm, in->items[i]) <= 0)
		{
			dropped++;
			continue;
		}
		in->users[kept] = in->users[i];
		in->items[kept] = in->items[i];
		in->ts[kept] = in->ts[i];
		if (in->order)
			in->order[kept] = in->order[i];
		kept++;
	}
	if (dropped > 0)
		ereport(NOTICE,
				(errmsg("%zu interactions with items unknown to model \"%s\" version %d were left out of the evaluation",
						dropped, lm->name, lm->version)));
	return kept;
}

/*
 * Build the evaluation data of the kept interactions with the model's
 * protocol (min_user / min_item, leave-one-out) and express it in the
 * model's vocabulary rows.  Call inside PG_TRY: *dsp is set as soon as the
 * dataset exists, so that the caller's PG_FINALLY frees it on error.
 */
static void
eval_build(T4rLoadedModel *lm, T4rInteractions *in, size_t kept,
		   t4r_dataset *volatile *dsp)
{
	t4r_dataset *d = NULL;
	t4r_dataset *ds;
	int32	   *map;
	int64_t    *cnt,
			   *ids;
	int			V = lm->model->cfg.n_items;
	char		err[256] = "";
	int			rc;

	rc = t4r_dataset_build_ex(in->users, in->items, in->ts, in->order, kept,
							  lm->min_user, lm->min_item, t4r_pg_interrupt, NULL, &d, err, sizeof(err));
	*dsp = d;
	ds = d;
	if (rc == T4R_ECANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (rc != T4R_OK)
		t4r_pg_core_error(rc, "building the evaluation data", err);

	/* dataset rows -> model rows (the dataset's items are a subset) */
	map = palloc(sizeof(int32) * ds->n_items);
	map[0] = 0;
	for (int r = 1; r < ds->n_items; r++)
		map[r] = t4r_pg_item_row(lm, ds->item_ids[r]);
	cnt = calloc(V, sizeof(int64_t));
	ids = malloc(sizeof(int64_t) * V);
	if (!cnt || !ids)
	{
		free(cnt);
		free(ids);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	for (int r = 1; r < ds->n_items; r++)
		cnt[map[r]] = ds->item_count[r];
	memcpy(ids, lm->item_ids, sizeof(int64_t) * V);
	for (int64_t i = 0; i < ds->seq_off[ds->n_users]; i++)
		ds->seq_items[i] = map[ds->seq_items[i]];
	free(ds->item_count);
	free(ds->item_ids);
	ds->item_count = cnt;
	ds->item_ids = ids;
	ds->n_items = V;
	pfree(map);
}

/*
 * The evaluation shared by both result shapes: arguments (model_name, ks),
 * data, one pass of scoring per model and split.  Returns the metrics as
 * [2 models][2 splits][3 metrics][nk] (EVAL_AT) and the ks in *ks_out.
 */
static double *
eval_compute(FunctionCallInfo fcinfo, int **ks_out, int *nk_out)
{
	char	   *name;
	T4rLoadedModel *lm;
	int		   *ks;
	int			nk;
	T4rInteractions in;
	size_t		kept;
	t4r_dataset *volatile ds = NULL;
	double	   *res;			/* [2 models][2 splits][3 metrics][nk] */
	int			rc;
	bool		use_cuda;
	T4rDevice	dev;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("ks must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(1);
		Datum	   *el;
		bool	   *nulls;

		deconstruct_array(a, INT4OID, 4, true, TYPALIGN_INT, &el, &nulls, &nk);
		if (nk == 0)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("ks must not be empty")));
		ks = palloc(sizeof(int) * nk);
		for (int i = 0; i < nk; i++)
		{
			if (nulls[i])
				ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
								errmsg("ks must not contain NULL elements")));
			ks[i] = DatumGetInt32(el[i]);
			if (ks[i] <= 0)
				ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("every k in ks must be positive"),
								errdetail("ks[%d] = %d.", i + 1, ks[i])));
		}
	}

	lm = t4r_pg_get_model(name, 0, T4R_PRIV_USAGE);
	kept = eval_read(lm, &in);

	res = palloc0(sizeof(double) * 12 * nk);
	use_cuda = t4r_pg_use_cuda_for(t4r_pg_device_name(tim4rec_device), "evaluation",
								   &lm->model->cfg);
	memset(&dev, 0, sizeof(dev));
	PG_TRY();
	{
		eval_build(lm, &in, kept, &ds);
		if (use_cuda)
			t4r_pg_device_open(&dev, lm->model, false);
		for (int m = 0; m < 2; m++)
			for (int sp = 0; sp < 2; sp++)
			{
				double	   *o = res + (size_t) ((m * 2 + sp) * 3) * nk;

				CHECK_FOR_INTERRUPTS();
				rc = t4r_evaluate_backend(m == 0 ? lm->model : NULL, ds,
										  sp == 0 ? T4R_SPLIT_VALID : T4R_SPLIT_TEST,
										  ks, nk, t4r_pg_threads(), t4r_pg_interrupt, NULL,
										  t4r_pg_device_backend(&dev),
										  o, o + nk, o + 2 * nk);
				if (rc == T4R_ECANCELLED)
					CHECK_FOR_INTERRUPTS();
				if (rc != T4R_OK)
					t4r_pg_core_error(rc, "evaluating the model", NULL);
			}
	}
	PG_FINALLY();
	{
		t4r_pg_device_close(&dev);
		if (ds)
			t4r_dataset_free(ds);
	}
	PG_END_TRY();

	t4r_pg_release_model(lm);
	*ks_out = ks;
	*nk_out = nk;
	return res;
}

/* Long form: one row per (model, split, metric, k). */
Datum
tim4rec_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int		   *ks;
	int			nk;
	double	   *res = eval_compute(fcinfo, &ks, &nk);

	InitMaterializedSRF(fcinfo, 0);
	for (int m = 0; m < 2; m++)
		for (int sp = 0; sp < 2; sp++)
			for (int me = 0; me < 3; me++)
				for (int j = 0; j < nk; j++)
				{
					Datum		values[5];
					bool		nulls[5] = {0, 0, 0, 0, 0};

					values[0] = CStringGetTextDatum(eval_models[m]);
					values[1] = CStringGetTextDatum(eval_splits[sp]);
					values[2] = CStringGetTextDatum(eval_metrics[me]);
					values[3] = Int32GetDatum(ks[j]);
					values[4] = Float8GetDatum(res[EVAL_AT(m, sp, me, j, nk)]);
					tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
				}
	PG_RETURN_NULL();
}

/*
 * Compact form (README "Evaluation"): one row per (model, split, k) with
 * the three metrics as columns hr, ndcg, mrr, in the order of the long form
 * (model, split, then ks as given).  A fixed set of columns cannot carry
 * one column per k when ks is an argument, and a row per k keeps each
 * number readable in psql (float8[] columns would not line up).  The same
 * numbers as the long form: computed once by eval_compute.
 */
Datum
tim4rec_evaluate_wide(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int		   *ks;
	int			nk;
	double	   *res = eval_compute(fcinfo, &ks, &nk);

	InitMaterializedSRF(fcinfo, 0);
	for (int m = 0; m < 2; m++)
		for (int sp = 0; sp < 2; sp++)
			for (int j = 0; j < nk; j++)
			{
				Datum		values[6];
				bool		nulls[6] = {0, 0, 0, 0, 0, 0};

				values[0] = CStringGetTextDatum(eval_models[m]);
				values[1] = CStringGetTextDatum(eval_splits[sp]);
				values[2] = Int32GetDatum(ks[j]);
				for (int me = 0; me < 3; me++)
					values[3 + me] = Float8GetDatum(res[EVAL_AT(m, sp, me, j, nk)]);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
	PG_RETURN_NULL();
}

/*
 * tim4rec_evaluate_users(model_name, split, baseline): one row per user with
 * a target in split ('valid' or 'test'): user_id (the source's user id as
 * text), item_id (the held-out item as text) and rank, the 1-based rank of
 * that item among all the model's items with tim4rec_evaluate's ranking (no
 * masking, equal scores ordered by item row), for the model or, with
 * baseline, for the most-popular baseline.  HR@k = rank <= k, NDCG@k =
 * 1/log2(rank + 1) and MRR@k = 1/rank when rank <= k (else 0): their means
 * over the rows are tim4rec_evaluate's figures.
 */
Datum
tim4rec_evaluate_users(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	char	   *split_s;
	int			split;
	bool		baseline;
	T4rLoadedModel *lm;
	T4rInteractions in;
	size_t		kept;
	t4r_dataset *volatile ds = NULL;
	int64_t    *volatile users = NULL;
	int64_t    *volatile ranks = NULL;
	bool		use_cuda;
	T4rDevice	dev;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("split must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("baseline must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	split_s = text_to_cstring(PG_GETARG_TEXT_PP(1));
	baseline = PG_GETARG_BOOL(2);
	if (strcmp(split_s, "test") == 0)
		split = T4R_SPLIT_TEST;
	else if (strcmp(split_s, "valid") == 0)
		split = T4R_SPLIT_VALID;
	else
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid split \"%s\"", split_s),
						errhint("Use 'test' or 'valid'.")));

	lm = t4r_pg_get_model(name, 0, T4R_PRIV_USAGE);
	kept = eval_read(lm, &in);

	InitMaterializedSRF(fcinfo, 0);
	use_cuda = !baseline &&
		t4r_pg_use_cuda_for(t4r_pg_device_name(tim4rec_device), "evaluation",
							&lm->model->cfg);
	memset(&dev, 0, sizeof(dev));
	PG_TRY();
	{
		int64_t		n = 0;
		int			rc;

		eval_build(lm, &in, kept, &ds);
		users = malloc(sizeof(int64_t) * (ds->n_users > 0 ? ds->n_users : 1));
		ranks = malloc(sizeof(int64_t) * (ds->n_users > 0 ? ds->n_users : 1));
		if (!users || !ranks)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		if (use_cuda)
			t4r_pg_device_open(&dev, lm->model, false);
		CHECK_FOR_INTERRUPTS();
		rc = t4r_evaluate_ranks(baseline ? NULL : lm->model, ds, split,
								t4r_pg_threads(), t4r_pg_interrupt, NULL,
								t4r_pg_device_backend(&dev), users, ranks, &n);
		if (rc == T4R_ECANCELLED)
			CHECK_FOR_INTERRUPTS();
		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "evaluating the model", NULL);
		for (int64_t i = 0; i < n; i++)
		{
			Datum		values[3];
			bool		nulls[3] = {0, 0, 0};
			int64_t		u = users[i];
			int64_t		off = ds->seq_off[u],
						m = ds->seq_off[u + 1] - off;
			int32_t		row = ds->seq_items[off + (split == T4R_SPLIT_VALID ? m - 2 : m - 1)];

			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
			if (in.user_dict)
			{
				int			len;
				const char *key = t4r_keydict_key(in.user_dict, ds->user_ids[u], &len);

				values[0] = PointerGetDatum(cstring_to_text_with_len(key, len));
			}
			else
				values[0] = CStringGetTextDatum(psprintf(INT64_FORMAT, (int64) ds->user_ids[u]));
			values[1] = CStringGetTextDatum(t4r_ids_item_cstring(lm, row));
			values[2] = Int64GetDatum(ranks[i] + 1);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		t4r_pg_device_close(&dev);
		if (ds)
			t4r_dataset_free(ds);
		free(users);
		free(ranks);
	}
	PG_END_TRY();

	t4r_pg_release_model(lm);
	PG_RETURN_NULL();
}
