/*
 * tim4rec.c - module entry point: PG_MODULE_MAGIC, the GUCs and the
 * effective thread count.
 *
 *   tim4rec.threads        threads used by training/evaluation/batch scoring
 *                          (0 = number of CPUs, at most 64); USERSET
 *   tim4rec.memory_budget  training memory budget (MB); USERSET, checked
 *                          before anything large is allocated
 *   tim4rec.shared_models  on (default): with shared_preload_libraries =
 *                          'tim4rec', one copy of each model per server in
 *                          dynamic shared memory (shared_cache.c); USERSET
 *   tim4rec.shared_memory  cap of the shared models' memory (default 1GB); SIGHUP
 *   tim4rec.device         'cpu' (default), 'cuda' or 'auto': where training
 *                          and batched scoring (tim4rec_evaluate) run; the
 *                          training option "device" overrides it (device.c)
 */
#include "tim4rec_pg.h"

#include <limits.h>
#include <unistd.h>

#include "utils/guc.h"

PG_MODULE_MAGIC;

int			tim4rec_threads = 0;
int			tim4rec_memory_budget_mb = 1024;
int			tim4rec_device = T4R_DEVICE_CPU;

static const struct config_enum_entry device_options[] = {
	{"cpu", T4R_DEVICE_CPU, false},
	{"cuda", T4R_DEVICE_CUDA, false},
	{"auto", T4R_DEVICE_AUTO, false},
	{NULL, 0, false}
};

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
	DefineCustomEnumVariable("tim4rec.device",
							 "Where tim4rec trains and scores in batches: cpu, cuda or auto.",
							 "cuda needs a build with USE_CUDA=1 and a usable GPU; auto uses the GPU when it can, else the CPU.",
							 &tim4rec_device,
							 T4R_DEVICE_CPU, device_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("tim4rec.shared_models",
							 "Serve models from one copy in shared memory per server.",
							 "Needs shared_preload_libraries = 'tim4rec'; otherwise, or when off, each backend loads its own copy.",
							 &tim4rec_shared_models,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("tim4rec.shared_memory",
							"Most dynamic shared memory the shared models may use.",
							"A model that does not fit is loaded into the backend's private memory, with a NOTICE.",
							&tim4rec_shared_memory_kb,
							1024 * 1024, 64, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("tim4rec");
	t4r_pg_shared_init();
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
