/*
 * t4r_cuda.h - optional CUDA path of the TiM4Rec core (float only).
 *
 * Built only with `make USE_CUDA=1` (T4R_USE_CUDA defined).  The interface
 * mirrors the CPU trainer/inference of tim4rec.h; the CPU core is the
 * oracle (test/cuda/parity.c compares both).  Parameters, gradients and the
 * Adam moments live on the GPU for the trainer's whole life; the host model
 * is updated only by t4r_cuda_trainer_sync_to_host().
 *
 * Dropout masks are the CPU's t4r_dropout_mask values (same counter-based
 * hash, keyed by seed, step, sample index in the batch and site), computed
 * on the device, so training-mode losses and gradients match the CPU's.
 *
 * All functions return core error codes (T4R_OK, T4R_EINVAL, T4R_ENOMEM,
 * T4R_EIO for a CUDA/cuBLAS failure); messages go to err where given, else
 * to the trainer (t4r_cuda_trainer_error).  No exit(), no printing.
 * Not thread-safe per trainer; one trainer uses the current CUDA device.
 */
#ifndef T4R_CUDA_H
#define T4R_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "tim4rec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 when a usable GPU is present; else an error code and a message (no
 * device, driver older than the runtime, ...). */
int			t4r_cuda_available(char *err, size_t errlen);

/* used and total device memory in bytes (cudaMemGetInfo) */
int			t4r_cuda_mem_info(size_t *used, size_t *total);

typedef struct t4r_cuda_trainer t4r_cuda_trainer;

/* Copies m's parameters to the GPU.  max_batch: samples per device
 * micro-batch (0 = cfg.batch_size); larger batches are processed in
 * several micro-batches with the same gradient.  train == 0: inference
 * only (no gradient / Adam buffers).  m must outlive the trainer. */
int			t4r_cuda_trainer_create(t4r_model *m, int max_batch, int train,
									t4r_cuda_trainer **out, char *err, size_t errlen);
void		t4r_cuda_trainer_free(t4r_cuda_trainer *t);
const char *t4r_cuda_trainer_error(const t4r_cuda_trainer *t);

/* as t4r_trainer_loss_grad / t4r_trainer_step (same dropout keys) */
int			t4r_cuda_trainer_loss_grad(t4r_cuda_trainer *t, const t4r_sample *s, int ns,
									   int training, double *loss);
int			t4r_cuda_trainer_step(t4r_cuda_trainer *t, const t4r_sample *s, int ns,
								  double *loss);
int64_t		t4r_cuda_trainer_steps(const t4r_cuda_trainer *t);
/* copy the gradient of the last loss_grad/step to host (layout.total) */
int			t4r_cuda_trainer_grads(t4r_cuda_trainer *t, float *host);
/* copy the device parameters into the host model */
int			t4r_cuda_trainer_sync_to_host(t4r_cuda_trainer *t);
/* re-upload the host model's parameters (after the host changed them) */
int			t4r_cuda_trainer_sync_from_host(t4r_cuda_trainer *t);

/* Eval-mode inference with the trainer's device parameters: hidden
 * [nseq*d] and scores [nseq*V] (either may be NULL). */
int			t4r_cuda_trainer_infer(t4r_cuda_trainer *t, const t4r_sample *seqs, int nseq,
								   float *hidden, float *scores);

/* one-shot batched inference from a host model */
int			t4r_cuda_infer_batch(const t4r_model *m, const t4r_sample *seqs, int nseq,
								 float *hidden, float *scores, char *err, size_t errlen);

/* device bytes held by the trainer's buffers */
size_t		t4r_cuda_trainer_device_bytes(const t4r_cuda_trainer *t);

/* the SSD kernels the trainer runs: "chunked" (default) or "recurrent"
 * (T4R_CUDA_SSD=recurrent, or when no chunk fits the shared memory) */
const char *t4r_cuda_trainer_ssd_path(const t4r_cuda_trainer *t);

#ifdef __cplusplus
}
#endif

#endif
