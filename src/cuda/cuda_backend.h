/*
 * cuda_backend.h - the CUDA trainer (t4r_cuda.h) as a t4r_backend of the
 * core's t4r_fit / t4r_evaluate_backend (tim4rec.h).  Header-only so that
 * the PostgreSQL glue and the CUDA tests share it; float core only.
 *
 *   t4r_cuda_trainer *t;  t4r_backend b;
 *   t4r_cuda_trainer_create(model, 0, 1, &t, err, errlen);
 *   t4r_cuda_backend(t, &b);   ... fit_opts.backend = &b; t4r_fit(...)
 */
#ifndef T4R_CUDA_BACKEND_H
#define T4R_CUDA_BACKEND_H

#include <string.h>
#include "t4r_cuda.h"

static inline int
t4r_cuda_backend_step_(void *ctx, const t4r_sample *s, int ns, double *loss)
{
	return t4r_cuda_trainer_step((t4r_cuda_trainer *) ctx, s, ns, loss);
}

static inline int
t4r_cuda_backend_sync_(void *ctx)
{
	return t4r_cuda_trainer_sync_to_host((t4r_cuda_trainer *) ctx);
}

static inline int
t4r_cuda_backend_scores_(void *ctx, const t4r_sample *s, int ns, t4r_real *scores)
{
	return t4r_cuda_trainer_infer((t4r_cuda_trainer *) ctx, s, ns, NULL, scores);
}

static inline const char *
t4r_cuda_backend_error_(void *ctx)
{
	return t4r_cuda_trainer_error((const t4r_cuda_trainer *) ctx);
}

/* fill b so that the core drives trainer t (train = 0 trainers: scores only) */
static inline void
t4r_cuda_backend(t4r_cuda_trainer *t, t4r_backend *b)
{
	memset(b, 0, sizeof(*b));
	b->ctx = t;
	b->step = t4r_cuda_backend_step_;
	b->sync_to_host = t4r_cuda_backend_sync_;
	b->scores = t4r_cuda_backend_scores_;
	b->error = t4r_cuda_backend_error_;
}

#endif
