/*
 * device.c - where training and batched scoring run: the tim4rec.device
 * GUC and the training option "device" ('cpu', 'cuda', 'auto').
 *
 * 'cuda' in a build without CUDA (make USE_CUDA=1), or on a machine without
 * a usable GPU, is an error; 'auto' falls back to the CPU with a NOTICE.
 * With CUDA the core's fit/evaluate drive the CUDA trainer through a
 * t4r_backend (src/cuda/cuda_backend.h); everything CUDA-specific of the
 * glue is in this file.
 */
#include "tim4rec_pg.h"

#ifdef T4R_USE_CUDA
#include "cuda/cuda_backend.h"
#endif

const char *
t4r_pg_device_name(int device)
{
	switch (device)
	{
		case T4R_DEVICE_CUDA:
			return "cuda";
		case T4R_DEVICE_AUTO:
			return "auto";
		default:
			return "cpu";
	}
}

bool
t4r_pg_use_cuda(const char *device, const char *what)
{
	bool		want = strcmp(device, "cuda") == 0,
				maybe = strcmp(device, "auto") == 0;

	if (!want && !maybe)
		return false;
#ifdef T4R_USE_CUDA
	{
		char		err[256] = "";

		if (t4r_cuda_available(err, sizeof(err)) == T4R_OK)
			return true;
		if (want)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no usable CUDA GPU for %s", what),
					 errdetail("%s", err[0] ? err : "The CUDA runtime reports no device."),
					 errhint("Use device 'cpu', or 'auto' to fall back to the CPU when no GPU can be used.")));
		ereport(NOTICE,
				(errmsg("no usable CUDA GPU (%s): %s runs on the CPU", err[0] ? err : "no device", what)));
	}
#else
	if (want)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this build of tim4rec has no CUDA support"),
				 errhint("Use device 'cpu' or 'auto', or build the extension with make USE_CUDA=1.")));
	ereport(NOTICE,
			(errmsg("this build of tim4rec has no CUDA support: %s runs on the CPU", what)));
#endif
	return false;
}

/*
 * As t4r_pg_use_cuda for a model of configuration cfg: the CUDA backend
 * computes the published model only.  A model or training that needs
 * anything else (the table below, first match wins) runs on the CPU
 * ('auto') or is an error ('cuda').
 */
bool
t4r_pg_use_cuda_for(const char *device, const char *what, const t4r_config *cfg)
{
	const char *why = NULL,
			   *fix = NULL;
	bool		training = strcmp(what, "training") == 0;
	/* what the GPU code lacks: applies?, what, how to get the GPU */
	const struct
	{
		bool		on;
		const char *why,
				   *fix;
	}			gaps[] = {
		{cfg->is_time && cfg->time_features == T4R_TIME_ROBUST, "time_features \"robust\"", "time_features \"official\""},
		{training && cfg->training == T4R_TRAIN_ALL_POSITIONS, "training \"all_positions\"", "training \"prefixes\""},
		{cfg->tie_average > 1, "tie_average", "\"tie_average\": 1"},
		{training && cfg->ema_decay > 0, "ema_decay", "\"ema_decay\": 0"},
		{training && cfg->label_smoothing > 0, "label_smoothing", "\"label_smoothing\": 0"},
		{training && cfg->tie_targets, "tie_targets", "\"tie_targets\": false"},
		{training && cfg->refit, "refit", "\"refit\": false"},
	};

	for (size_t i = 0; i < lengthof(gaps) && why == NULL; i++)
		if (gaps[i].on)
		{
			why = gaps[i].why;
			fix = gaps[i].fix;
		}
	if (why == NULL)
		return t4r_pg_use_cuda(device, what);
	if (strcmp(device, "cuda") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the CUDA backend does not support %s", why),
				 errdetail("The GPU code computes the published model and training (official time features, per-prefix samples) only."),
				 errhint("Use device 'cpu' (or 'auto', which runs such models on the CPU), or %s.", fix)));
	if (strcmp(device, "auto") == 0)
		ereport(DEBUG1,
				(errmsg("tim4rec: %s runs on the CPU: the CUDA backend does not support %s", what, why)));
	return false;
}

void
t4r_pg_device_open(T4rDevice *d, t4r_model *m, bool train)
{
	memset(d, 0, sizeof(*d));
#ifdef T4R_USE_CUDA
	{
		char		err[256] = "";
		t4r_cuda_trainer *t = NULL;
		int			rc = t4r_cuda_trainer_create(m, 0, train ? 1 : 0, &t, err, sizeof(err));

		if (rc != T4R_OK)
			ereport(ERROR,
					(errcode(rc == T4R_ENOMEM ? ERRCODE_OUT_OF_MEMORY : ERRCODE_IO_ERROR),
					 errmsg("could not set up the model on the GPU: %s", err[0] ? err : t4r_strerror(rc)),
					 rc == T4R_ENOMEM ?
					 errhint("Use a smaller batch_size, max_seq_len or hidden_size, or device 'cpu'.") : 0));
		d->trainer = t;
		t4r_cuda_backend(t, &d->backend);
		d->active = true;
	}
#else
	elog(ERROR, "tim4rec: no CUDA support in this build");
#endif
}

const t4r_backend *
t4r_pg_device_backend(const T4rDevice *d)
{
	return d && d->active ? &d->backend : NULL;
}

void
t4r_pg_device_sync_from_host(T4rDevice *d)
{
#ifdef T4R_USE_CUDA
	if (d && d->active)
	{
		int			rc = t4r_cuda_trainer_sync_from_host((t4r_cuda_trainer *) d->trainer);

		if (rc != T4R_OK)
			t4r_pg_core_error(rc, "copying the model to the GPU",
							  t4r_cuda_trainer_error((t4r_cuda_trainer *) d->trainer));
	}
#endif
}

size_t
t4r_pg_device_bytes(const T4rDevice *d)
{
#ifdef T4R_USE_CUDA
	if (d && d->active)
		return t4r_cuda_trainer_device_bytes((const t4r_cuda_trainer *) d->trainer);
#endif
	return 0;
}

void
t4r_pg_device_close(T4rDevice *d)
{
#ifdef T4R_USE_CUDA
	if (d && d->active)
		t4r_cuda_trainer_free((t4r_cuda_trainer *) d->trainer);
#endif
	if (d)
		memset(d, 0, sizeof(*d));
}
