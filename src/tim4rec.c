/*
 * tim4rec.c - module entry point: PG_MODULE_MAGIC, the GUCs and the
 * effective thread count.
 *
 *   tim4rec.threads        threads used by training/evaluation/batch scoring
 *                          (0 = number of CPUs, at most 64); USERSET
 *   tim4rec.memory_budget  training memory budget (MB); USERSET, checked
 *                          before anything large is allocated
 */
#include "tim4rec_pg.h"

#include <limits.h>
#include <unistd.h>

#include "utils/guc.h"

PG_MODULE_MAGIC;

int			tim4rec_threads = 0;
int			tim4rec_memory_budget_mb = 1024;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("tim4rec.threads",
							"Number of threads tim4rec uses for training, evaluation and batch scoring.",
							"0 means the number of CPUs (at most 64).",
							&tim4rec_threads,
							0, 0, 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tim4rec.memory_budget",
							"Memory budget of one tim4rec training run.",
							"Training estimates what it needs before allocating and fails when that exceeds this budget.",
							&tim4rec_memory_budget_mb,
							1024, 16, 1024 * 1024,
							PGC_USERSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("tim4rec");
}

int
t4r_pg_threads(void)
{
	int			n = tim4rec_threads;

	if (n <= 0)
	{
		long		c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c > 0 ? (int) c : 1;
	}
	if (n > 64)
		n = 64;
	return n < 1 ? 1 : n;
}
