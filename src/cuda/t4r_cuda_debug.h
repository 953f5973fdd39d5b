/*
 * t4r_cuda_debug.h - the CUDA trainer's debug interface for the per-op
 * parity test (test/cuda/parity.c, "ops:" lines); internal, not part of
 * t4r_cuda.h.  The CPU side is t4r_ws_debug_tensor in
 * src/core/model_internal.h, with the same names and the same layout.
 *
 * A hook set on a trainer is called after every op of a forward and
 * backward pass, in src/core/model.c's order: hook(ctx, layer, op,
 * backward) with op one of "embed", "time_features" (layer -1), "in_proj",
 * "conv", "time", "delta", "ssd", "gnorm", "out", "ffn" (forward, layer
 * 0..), "loss" (backward, layer -1), "ffn", "out", "gnorm", "ssd", "delta",
 * "time", "conv", "in_proj", "residual" (backward, layers last..0),
 * "embed", "time_features" (backward, layer -1).  Inside the hook,
 * t4r_cuda_trainer_debug_tensor copies a named buffer of the current
 * micro-batch to the host in the CPU core's row layout:
 *   item path [M, cols]: the rows of the samples' real positions, sample
 *     after sample (the GPU's full-L rows s*L + l, l < n[s], packed);
 *   after the SSD in the last layer [S, cols]: one row per sample (its
 *     last position; gathered from full-L buffers where the GPU keeps them);
 *   time path [R, L], R = S*H: as they are.
 * Names (layer li): U zxd xbc delta [M, .]; y yn hh F [rows, .]; T tdt [R,
 * L]; gradients dF (of the layer output, [rows, d]), dhh da [rows, d], dyn
 * dy [rows, Di], dxbc ddelta dzxd ddt (the dt columns of dzxd) dU [M, .],
 * dtdt dT [R, L] (the current backward's buffers: read them in the hook of
 * the op that writes them).  Returns the element count (rows * cols) or a
 * negative value for an unknown name / short buffer (*rows, *cols set when
 * not NULL).
 */
#ifndef T4R_CUDA_DEBUG_H
#define T4R_CUDA_DEBUG_H

#include <stddef.h>
#include "t4r_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*t4r_cuda_debug_hook) (void *ctx, int layer, const char *op, int backward);

void		t4r_cuda_trainer_set_debug_hook(t4r_cuda_trainer *t, t4r_cuda_debug_hook hook,
											void *ctx);
long		t4r_cuda_trainer_debug_tensor(t4r_cuda_trainer *t, int layer, const char *name,
										  float *out, size_t n, size_t *rows, int *cols);

#ifdef __cplusplus
}
#endif

#endif
