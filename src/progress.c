/*
 * progress.c - training progress visible from other sessions.
 *
 * A plain function cannot register its own progress command type, so (as
 * Citus does) training reports under an existing one, PROGRESS_COMMAND_COPY,
 * using only parameter slots 8..19 (pg_stat_progress_copy reads slots 0..5,
 * so it shows a row with zeros and a NULL command while training runs).  Slot
 * 10 holds T4R_PROGRESS_MAGIC so that the view tim4rec_progress
 * (sql/install/20_train.sql) shows only tim4rec rows:
 *
 *   slot 10 magic       slot 11 phase        slot 12 epoch
 *   slot 13 max epochs  slot 14 step         slot 15 steps per epoch
 *   slot 16 loss * 1e6  slot 17 best validation NDCG@10 * 1e6
 *   slot 18 rows read   slot 19 epochs done
 *   slot 8  search trial (1-based, 0 = no search)   slot 9 search trials
 *
 * Updates only write this backend's shared-memory status entry; they are
 * called from the backend thread (core callbacks run on the calling thread).
 */
#include "tim4rec_pg.h"

#include <math.h>

#include "commands/progress.h"
#include "pgstat.h"
#include "utils/backend_progress.h"
#include "utils/backend_status.h"

#define SLOT_TRIAL   8
#define SLOT_TRIALS  9
#define SLOT_MAGIC   10
#define SLOT_PHASE   11
#define SLOT_EPOCH   12
#define SLOT_EPOCHS  13
#define SLOT_STEP    14
#define SLOT_STEPS   15
#define SLOT_LOSS    16
#define SLOT_BEST    17
#define SLOT_ROWS    18
#define SLOT_DONE    19

static bool active = false;
static double best_ndcg = -1.0;

static int64
scaled(double v)
{
	if (isnan(v) || isinf(v))
		return -1;
	if (fabs(v) > 9e12)
		return v > 0 ? INT64CONST(9000000000000000000) : -INT64CONST(9000000000000000000);
	return (int64) llround(v * 1e6);
}

void
t4r_pg_progress_start(Oid relid, int epochs)
{
	const int	idx[3] = {SLOT_MAGIC, SLOT_PHASE, SLOT_EPOCHS};
	int64		val[3];

	pgstat_progress_start_command(PROGRESS_COMMAND_COPY, relid);
	val[0] = T4R_PROGRESS_MAGIC;
	val[1] = T4R_PHASE_READING;
	val[2] = epochs;
	pgstat_progress_update_multi_param(3, idx, val);
	active = true;
	best_ndcg = -1.0;
}

void
t4r_pg_progress_phase(int phase)
{
	if (active)
		pgstat_progress_update_param(SLOT_PHASE, phase);
}

void
t4r_pg_progress_rows(int64 rows)
{
	/* also called by the reader outside training: only while reporting */
	if (active && MyBEEntry && MyBEEntry->st_progress_command == PROGRESS_COMMAND_COPY &&
		MyBEEntry->st_progress_param[SLOT_MAGIC] == T4R_PROGRESS_MAGIC)
		pgstat_progress_update_param(SLOT_ROWS, rows);
}

void
t4r_pg_progress_step(int epoch, int64 step, int64 steps_per_epoch, double loss)
{
	const int	idx[4] = {SLOT_EPOCH, SLOT_STEP, SLOT_STEPS, SLOT_LOSS};
	int64		val[4];

	if (!active)
		return;
	val[0] = epoch;
	val[1] = step;
	val[2] = steps_per_epoch;
	val[3] = scaled(loss);
	pgstat_progress_update_multi_param(4, idx, val);
}

void
t4r_pg_progress_epoch(int epoch, double valid_ndcg10)
{
	const int	idx[2] = {SLOT_DONE, SLOT_BEST};
	int64		val[2];

	if (!active)
		return;
	if (valid_ndcg10 > best_ndcg)
		best_ndcg = valid_ndcg10;
	val[0] = epoch;
	val[1] = scaled(best_ndcg);
	pgstat_progress_update_multi_param(2, idx, val);
}

void
t4r_pg_progress_trial(int trial, int trials, int epochs)
{
	const int	idx[7] = {SLOT_TRIAL, SLOT_TRIALS, SLOT_EPOCHS, SLOT_EPOCH, SLOT_STEP, SLOT_DONE, SLOT_LOSS};
	int64		val[7] = {trial, trials, epochs, 0, 0, 0, 0};

	/* best_valid_ndcg10 stays the best of the search so far */
	if (active)
		pgstat_progress_update_multi_param(7, idx, val);
}

void
t4r_pg_progress_refit(int epochs)
{
	const int	idx[6] = {SLOT_PHASE, SLOT_EPOCHS, SLOT_EPOCH, SLOT_STEP, SLOT_DONE, SLOT_LOSS};
	int64		val[6] = {T4R_PHASE_REFITTING, epochs, 0, 0, 0, 0};

	/* best_valid_ndcg10 stays the first pass's */
	if (active)
		pgstat_progress_update_multi_param(6, idx, val);
}

void
t4r_pg_progress_end(void)
{
	if (active)
		pgstat_progress_end_command();
	active = false;
}
