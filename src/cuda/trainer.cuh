/*
 * trainer.cuh - the CUDA trainer's state (struct t4r_cuda_trainer, the
 * per-layer activations LAct), its error macros, the cuBLAS helpers every
 * op uses (gemm, colsum, affine and its backward, norm_grads) and the op
 * context `gop` handed to the op launchers in src/cuda/ops/ (the CUDA
 * counterpart of src/core/model.c's lop).  The trainer's functions (setup,
 * carve, create/free, upload, the t4r_cuda_* API) are in model.cu.
 *
 * Row layout: full-L rows per sample, row r = s*L + l of the item-path
 * buffers ([S*L, cols], positions l >= n of a padded sample computed but
 * unread); the last layer keeps one row per sample after the SSD ([S,
 * cols]); the time path has R = S*H rows of length L.
 */
#ifndef T4R_CUDA_TRAINER_CUH
#define T4R_CUDA_TRAINER_CUH

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "ops/common.cuh"
#include "t4r_cuda.h"
#include "t4r_cuda_debug.h"

struct LAct
{
	float	   *U, *zxd, *cpre, *xbc, *delta, *y, *ckpt;
	float	   *T, *Tm, *A1, *SL, *Sc, *P1, *P2, *tdt, *Tg, *gpre, *GT, *X, *tmu, *trs;
	float	   *yr, *zr, *Ur;
	float	   *rrs, *yn, *a, *a_mu, *a_rs, *hh, *f1, *h1, *b, *b_mu, *b_rs, *F;
};

struct t4r_cuda_trainer
{
	t4r_model  *m;
	t4r_dims	D;
	int			Smax,
				train,
				nch,			/* SSD chunks (checkpoints) per sample */
				ssd_chunked,	/* 1: chunked SSD kernels, 0: recurrence */
				ssd_q;			/* their chunk length */
	size_t		shm_fwd,
				shm_bwd;		/* chunk kernels' dynamic shared memory */
	char		ssd_path[128];
	int64_t		steps;
	cublasHandle_t cb;
	char		err[256];
	size_t		total;
	float	   *p, *g, *am, *av;	/* device parameter-shaped buffers */
	t4r_pview	pv, gv;			/* device views */
	size_t		ws_bytes;
	char	   *ws;
	/* batch inputs */
	int32_t    *items;
	int		   *nv, *tgt;
	float	   *td;
	/* forward */
	float	   *emb, *e_mu, *e_rs, *tdm, *t_mu, *t_rs, *logits, *ones;
	double	   *lossv;
	LAct		la[T4R_MAX_LAYERS];
	/* backward */
	float	   *dzxd, *dxbc, *ddelta, *gp, *dyfull, *dyn, *db, *df2, *dhh, *da, *dob, *dh1;
	float	   *dUa, *dUb, *prod, *dBh, *dCh, *dAp, *dDp, *cpart, *tpart;
	float	   *dtdt, *dTa, *dTb, *dmix, *dgpre, *ts1, *ts2, *dtsum;
	/* host staging */
	int32_t    *h_items;
	int		   *h_n, *h_tgt;
	float	   *h_td;
	double	   *h_loss;
	/* current micro-batch and the op-parity hook (t4r_cuda_debug.h) */
	int			S;
	t4r_cuda_debug_hook dbg;
	void	   *dbg_ctx;
	float	   *dbg_dF, *dbg_dU, *dbg_dT;	/* the layer's gradient buffers */
};

static int
cuerr(t4r_cuda_trainer *t, cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return T4R_OK;
	if (t)
		snprintf(t->err, sizeof(t->err), "%s: %s", what, cudaGetErrorString(e));
	return e == cudaErrorMemoryAllocation ? T4R_ENOMEM : T4R_EIO;
}

static int
cberr(t4r_cuda_trainer *t, cublasStatus_t e, const char *what)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return T4R_OK;
	if (t)
		snprintf(t->err, sizeof(t->err), "%s: cuBLAS status %d", what, (int) e);
	return e == CUBLAS_STATUS_ALLOC_FAILED ? T4R_ENOMEM : T4R_EIO;
}

#define CK(x) do { int rc_ = cuerr(t, (x), #x); if (rc_) return rc_; } while (0)
#define CB(x) do { int rc_ = cberr(t, (x), #x); if (rc_) return rc_; } while (0)
#define KCHECK(what) do { int rc_ = cuerr(t, cudaGetLastError(), what); if (rc_) return rc_; } while (0)

/* row-major C[M,N] = alpha op(A) op(B) + beta C */
static int
gemm(t4r_cuda_trainer *t, int ta, int tb, int M, int N, int K, float alpha,
	 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0 || K <= 0)
		return T4R_OK;
	CB(cublasSgemm(t->cb, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
				   N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
	return T4R_OK;
}

/* out[c] += sum_r X[r*ld + c] */
static int
colsum(t4r_cuda_trainer *t, const float *X, size_t rows, int cols, int ld, float *out)
{
	const float one = 1.0f;

	if (rows == 0 || cols == 0)
		return T4R_OK;
	CB(cublasSgemv(t->cb, CUBLAS_OP_N, cols, (int) rows, &one, X, ld, t->ones, 1, &one, out, 1));
	return T4R_OK;
}

/* Y[rows, out] = X[rows, in] W^T + b (W [out, in], X packed) */
static int
affine(t4r_cuda_trainer *t, int rows, int out, int in, const float *X, const float *W,
	   const float *b, float *Y)
{
	k_fill_bias<<<GRID1((size_t) rows * out, 256), 256>>>(Y, rows, out, b);
	return gemm(t, 0, 1, rows, out, in, 1, X, in, W, in, 1, Y, out);
}

/* backward of affine() given dY [rows, out]: gb += column sums of dY,
 * gW += dY^T X, dX = dY W */
static int
affine_bwd(t4r_cuda_trainer *t, size_t rows, int out, int in, const float *dY,
		   const float *X, const float *W, float *gW, float *gb, float *dX)
{
	int			rc;

	if ((rc = colsum(t, dY, rows, out, out, gb)) ||
		(rc = gemm(t, 1, 0, out, in, (int) rows, 1, dY, out, X, in, 1, gW, in)))
		return rc;
	return gemm(t, 0, 0, (int) rows, in, out, 1, dY, out, W, in, 0, dX, in);
}

/* weight and bias gradients of a normalisation over rows x cols: column
 * sums of prod (dy * xhat) and of dy */
static int
norm_grads(t4r_cuda_trainer *t, const float *prod, const float *dy, size_t rows, int cols,
		   float *gw, float *gb)
{
	int			rc = colsum(t, prod, rows, cols, cols, gw);

	return rc ? rc : colsum(t, dy, rows, cols, cols, gb);
}

static DK
make_dk(const t4r_cuda_trainer *t, double p, int training, uint64_t step, int idx0)
{
	DK			k;

	k.seed = t->m->cfg.seed;
	k.step = step;
	k.thr = (uint64_t) (p * 4294967296.0);
	k.keep = (float) (1.0 / (1.0 - p));
	k.on = training && p > 0;
	k.idx0 = idx0;
	return k;
}

/* what every op launcher of one layer reads (model.c's lop): shapes as in
 * the launchers' comments, R0 = S*L item-path rows, R = S*H time-path rows,
 * rows = the rows after the SSD (S in the last layer, else R0) */
struct gop
{
	t4r_cuda_trainer *t;
	const t4r_dims *D;
	const t4r_config *cfg;
	const t4r_lparams *P;		/* the layer's parameters */
	const t4r_lparams *GP;		/* their gradients (training) */
	LAct	   *A;				/* the layer's activations */
	int			S,
				li,
				last,			/* the last layer (one row per sample) */
				rows,
				R;
	size_t		R0;
	DK			dk,				/* dropout_prob */
				dkt;			/* time_dropout */
};

static void
gop_init(gop *o, t4r_cuda_trainer *t, int S, int li, int training, uint64_t step, int idx0)
{
	o->t = t;
	o->D = &t->D;
	o->cfg = &t->m->cfg;
	o->P = &t->pv.l[li];
	o->GP = t->train ? &t->gv.l[li] : NULL;
	o->A = &t->la[li];
	o->S = S;
	o->li = li;
	o->last = li == t->D.layers - 1;
	o->R0 = (size_t) S * t->D.L;
	o->R = S * t->D.H;
	o->rows = o->last ? S : (int) o->R0;
	o->dk = make_dk(t, o->cfg->dropout_prob, training, step, idx0);
	o->dkt = make_dk(t, o->cfg->time_dropout, training, step, idx0);
}

/* the op-parity hook after an op (layer -1: embed, time_features, loss) */
#define DBG_HOOK(t, li, op, bwd) \
	do { if ((t)->dbg) (t)->dbg((t)->dbg_ctx, (li), (op), (bwd)); } while (0)

#endif
