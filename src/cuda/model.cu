/*
 * model.cu - TiM4Rec forward, backward, Adam and inference on a CUDA GPU:
 * the trainer (setup, buffer carve, create/free, upload, the t4r_cuda_*
 * API of t4r_cuda.h) and the passes as call lists of the op launchers.
 *
 * Each op of src/core/model.c (the oracle) has a header in src/cuda/ops/
 * with its forward and backward kernels side by side and host launchers
 * named after the CPU op (embed_forward / embed_backward, ...); the shared
 * device helpers are ops/common.cuh, the trainer's state, error macros,
 * cuBLAS helpers and the op context `gop` are trainer.cuh.
 *
 * Full-L rows per sample: row r = s*L + l of the item-path buffers.
 * Positions l >= n of a right-padded sample are computed (item 0) but
 * cannot reach the output (the item path is causal) and receive exactly
 * zero gradient.  The last layer keeps one row per sample (position n-1)
 * after the SSD, as the CPU does, and its dropout masks are indexed like
 * the CPU's (per sample, d or 4d values).  The time path runs over all L
 * positions, R = S*H rows of length L.
 *
 * The SSD runs as chunked kernels (the CPU core's matrix form: per chunk
 * small masked products in shared memory, states passed between chunks) by
 * default, or as the plain recurrence with checkpoints when
 * T4R_CUDA_SSD=recurrent (see ssd_choose in ops/ssd.cuh).
 *
 * Products go through cuBLAS in full FP32 (CUBLAS_PEDANTIC_MATH: no TF32).
 * Column sums (bias and norm-weight gradients) are GEMVs with a ones vector,
 * so they are deterministic; the embedding scatter-add uses atomics.
 */
#include "trainer.cuh"
/* the ops in docs/MODEL.md's order */
#include "ops/embed.cuh"
#include "ops/time_features.cuh"
#include "ops/in_proj.cuh"
#include "ops/conv.cuh"
#include "ops/time_path.cuh"
#include "ops/delta.cuh"
#include "ops/ssd.cuh"
#include "ops/gnorm.cuh"
#include "ops/out_proj.cuh"
#include "ops/ffn.cuh"
#include "ops/loss.cuh"
#include "ops/adam.cuh"


/* bump allocator over one device allocation (base NULL: size only) */
struct Carve
{
	char	   *base;
	size_t		off;
	template <typename T> T *take(size_t n)
	{
		size_t		o = off;

		off += (n * sizeof(T) + 255) & ~(size_t) 255;
		return base ? (T *) (base + o) : (T *) NULL;
	}
};

static void
carve(t4r_cuda_trainer *t, Carve &c)
{
	const t4r_dims *D = &t->D;
	size_t		S = t->Smax,
				L = D->L,
				R0 = S * L,
				R = S * D->H;
	int			d = D->d,
				Di = D->Di,
				C = D->conv_dim,
				H = D->H,
				N = D->N,
				f = D->ffn_dim;
	int			tr = t->train;

	t->items = c.take<int32_t>(R0);
	t->nv = c.take<int>(S);
	t->tgt = c.take<int>(S);
	t->td = c.take<float>(S * L);
	t->emb = c.take<float>(R0 * d);
	t->e_mu = c.take<float>(R0);
	t->e_rs = c.take<float>(R0);
	t->tdm = c.take<float>(S * L);
	t->t_mu = c.take<float>(S);
	t->t_rs = c.take<float>(S);
	t->logits = c.take<float>(S * D->V);
	t->lossv = c.take<double>(S);
	t->ones = c.take<float>((R0 > R ? R0 : R) + 16);
	for (int li = 0; li < D->layers; li++)
	{
		LAct	   *A = &t->la[li];
		int			last = li == D->layers - 1;
		size_t		rows = last ? S : R0;

		A->U = li == 0 ? c.take<float>(R0 * d) : t->la[li - 1].F;
		A->zxd = c.take<float>(R0 * D->in_dim);
		A->cpre = c.take<float>(R0 * C);
		A->xbc = c.take<float>(R0 * C);
		A->delta = c.take<float>(R0 * H);
		A->y = c.take<float>(R0 * Di);
		A->ckpt = c.take<float>(R * t->nch * D->P * N);
		if (D->is_time)
		{
			A->T = c.take<float>(R * L);
			A->Tm = c.take<float>(R * L);
			A->A1 = c.take<float>(R * L);
			A->SL = c.take<float>(R * L);
			A->Sc = c.take<float>(R * L);
			A->P1 = c.take<float>(R * L);
			A->P2 = c.take<float>(R * L);
			A->tdt = c.take<float>(R * L);
			if (!last)
			{
				A->Tg = c.take<float>(R * L);
				A->gpre = c.take<float>(R * D->G);
				A->GT = c.take<float>(R * D->G);
				A->X = c.take<float>(R * L);
				A->tmu = c.take<float>(R);
				A->trs = c.take<float>(R);
			}
		}
		if (last)
		{
			A->yr = c.take<float>(S * Di);
			A->zr = c.take<float>(S * Di);
			A->Ur = c.take<float>(S * d);
		}
		A->rrs = c.take<float>(rows);
		A->yn = c.take<float>(rows * Di);
		A->a = c.take<float>(rows * d);
		A->a_mu = c.take<float>(rows);
		A->a_rs = c.take<float>(rows);
		A->hh = c.take<float>(rows * d);
		A->f1 = c.take<float>(rows * f);
		A->h1 = c.take<float>(rows * f);
		A->b = c.take<float>(rows * d);
		A->b_mu = c.take<float>(rows);
		A->b_rs = c.take<float>(rows);
		A->F = c.take<float>(rows * d);
	}
	if (!tr)
		return;
	{
		size_t		pw = (size_t) Di > (size_t) D->in_dim ? Di : D->in_dim;
		size_t		np = R0 * pw;

		if (R * L > np)
			np = R * L;
		t->prod = c.take<float>(np);
	}
	t->dzxd = c.take<float>(R0 * D->in_dim);
	t->dxbc = c.take<float>(R0 * C);
	t->ddelta = c.take<float>(R0 * H);
	t->gp = c.take<float>(R0 * H);
	t->dyfull = c.take<float>(R0 * Di);
	t->dyn = c.take<float>(R0 * Di);
	t->db = c.take<float>(R0 * d);
	t->df2 = c.take<float>(R0 * d);
	t->dhh = c.take<float>(R0 * d);
	t->da = c.take<float>(R0 * d);
	t->dob = c.take<float>(R0 * d);
	t->dh1 = c.take<float>(R0 * f);
	t->dUa = c.take<float>(R0 * d);
	t->dUb = c.take<float>(R0 * d);
	t->dBh = c.take<float>(R * L * N);
	t->dCh = c.take<float>(R * L * N);
	t->dAp = c.take<float>(R);
	t->dDp = c.take<float>(R);
	t->cpart = c.take<float>((size_t) CONV_PARTS * C * D->K);
	t->tpart = c.take<float>(R * (2 * D->K + 2));
	if (D->is_time)
	{
		t->dtdt = c.take<float>(R * L);
		t->dTa = c.take<float>(R * L);
		t->dTb = c.take<float>(R * L);
		t->dmix = c.take<float>(R * L);
		t->dgpre = c.take<float>(R * L);
		t->ts1 = c.take<float>(R * L);
		t->ts2 = c.take<float>(R * L);
		t->dtsum = c.take<float>(S * L);
	}
}

__global__ void
k_set(size_t n, float *x, float v)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		x[i] = v;
}

extern "C" int
t4r_cuda_available(char *err, size_t errlen)
{
	int			n = 0,
				drv = 0,
				rt = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	cudaDriverGetVersion(&drv);
	cudaRuntimeGetVersion(&rt);
	if (e != cudaSuccess || n < 1)
	{
		if (err && errlen)
		{
			if (drv == 0)
				snprintf(err, errlen, "no CUDA driver or device (%s)",
						 e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
			else if (e == cudaErrorInsufficientDriver || drv < rt)
				snprintf(err, errlen, "CUDA driver too old (driver %d, runtime %d)", drv, rt);
			else
				snprintf(err, errlen, "no usable CUDA device (%s)",
						 e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
		}
		(void) cudaGetLastError();
		return T4R_EIO;
	}
	return T4R_OK;
}

extern "C" int
t4r_cuda_mem_info(size_t *used, size_t *total)
{
	size_t		fr = 0,
				tot = 0;

	if (cudaMemGetInfo(&fr, &tot) != cudaSuccess)
		return T4R_EIO;
	if (used)
		*used = tot - fr;
	if (total)
		*total = tot;
	return T4R_OK;
}

static int
setup(t4r_cuda_trainer *t)
{
	const t4r_dims *D = &t->D;
	size_t		total = t->total;
	Carve		c = {NULL, 0};
	size_t		S = t->Smax,
				R0 = S * D->L,
				R = S * D->H;

	CB(cublasCreate(&t->cb));
	CB(cublasSetMathMode(t->cb, CUBLAS_PEDANTIC_MATH));
	CK(cudaMalloc((void **) &t->p, total * sizeof(float)));
	CK(cudaMemcpy(t->p, t->m->params, total * sizeof(float), cudaMemcpyHostToDevice));
	if (t->train)
	{
		CK(cudaMalloc((void **) &t->g, total * sizeof(float)));
		CK(cudaMalloc((void **) &t->am, total * sizeof(float)));
		CK(cudaMalloc((void **) &t->av, total * sizeof(float)));
		CK(cudaMemset(t->g, 0, total * sizeof(float)));
		CK(cudaMemset(t->am, 0, total * sizeof(float)));
		CK(cudaMemset(t->av, 0, total * sizeof(float)));
		t4r_pview_build(t->m, t->g, &t->gv);
	}
	t4r_pview_build(t->m, t->p, &t->pv);
	carve(t, c);
	t->ws_bytes = c.off;
	CK(cudaMalloc((void **) &t->ws, c.off));
	c.base = t->ws;
	c.off = 0;
	carve(t, c);
	{
		size_t		no = (R0 > R ? R0 : R) + 16;

		k_set<<<GRID1(no, 256), 256>>>(no, t->ones, 1.0f);
		KCHECK("k_set");
	}
	t->h_items = (int32_t *) malloc(sizeof(int32_t) * R0);
	t->h_n = (int *) malloc(sizeof(int) * S);
	t->h_tgt = (int *) malloc(sizeof(int) * S);
	t->h_td = (float *) malloc(sizeof(float) * S * D->L);
	t->h_loss = (double *) malloc(sizeof(double) * S);
	if (!t->h_items || !t->h_n || !t->h_tgt || !t->h_td || !t->h_loss)
		return T4R_ENOMEM;
	CK(cudaDeviceSynchronize());
	return T4R_OK;
}


/*
 * Which SSD kernels this trainer runs ("chunked (...)" or "recurrent
 * (...)"), for logs and benchmarks.  Not in t4r_cuda.h (whose interface is
 * fixed for now): callers declare it themselves.
 */
extern "C" const char *
t4r_cuda_trainer_ssd_path(const t4r_cuda_trainer *t)
{
	return t ? t->ssd_path : "no trainer";
}

extern "C" void
t4r_cuda_trainer_free(t4r_cuda_trainer *t)
{
	if (!t)
		return;
	if (t->cb)
		cublasDestroy(t->cb);
	cudaFree(t->p);
	cudaFree(t->g);
	cudaFree(t->am);
	cudaFree(t->av);
	cudaFree(t->ws);
	free(t->h_items);
	free(t->h_n);
	free(t->h_tgt);
	free(t->h_td);
	free(t->h_loss);
	free(t);
}

extern "C" int
t4r_cuda_trainer_create(t4r_model *m, int max_batch, int train, t4r_cuda_trainer **out,
						char *err, size_t errlen)
{
	t4r_cuda_trainer *t;
	int			rc;
	int			nw, ppw, npl;

	*out = NULL;
	if (!m)
		return T4R_EINVAL;
	rc = t4r_cuda_available(err, errlen);
	if (rc)
		return rc;
	nw = m->dims.P < 32 ? m->dims.P : 32;
	ppw = (m->dims.P + nw - 1) / nw;
	npl = (m->dims.N + 31) / 32;
	if (m->dims.robust || m->dims.allpos)
	{
		/* the GPU code computes the published model only (official time path, per-prefix training) */
		if (err && errlen)
			snprintf(err, errlen, "the CUDA path supports neither time_features \"robust\" "
					 "nor training \"all_positions\"");
		return T4R_EINVAL;
	}
	if (ppw > 4 || npl > 4 || m->dims.K > 8 || m->dims.layers > T4R_MAX_LAYERS)
	{
		if (err && errlen)
			snprintf(err, errlen, "configuration not supported by the CUDA path "
					 "(head_dim <= 128, d_state <= 128, d_conv <= 8)");
		return T4R_EINVAL;
	}
	t = (t4r_cuda_trainer *) calloc(1, sizeof(*t));
	if (!t)
		return T4R_ENOMEM;
	t->m = m;
	t->D = m->dims;
	t->Smax = max_batch > 0 ? max_batch : m->cfg.batch_size;
	if (t->Smax < 1)
		t->Smax = 1;
	t->train = train ? 1 : 0;
	t->total = m->layout.total;
	rc = ssd_choose(t);
	if (rc == T4R_OK)
		rc = setup(t);
	if (rc)
	{
		if (err && errlen)
			snprintf(err, errlen, "%s", t->err);
		t4r_cuda_trainer_free(t);
		return rc;
	}
	*out = t;
	return T4R_OK;
}

extern "C" const char *
t4r_cuda_trainer_error(const t4r_cuda_trainer *t)
{
	return t ? t->err : "no trainer";
}

extern "C" int64_t
t4r_cuda_trainer_steps(const t4r_cuda_trainer *t)
{
	return t->steps;
}

extern "C" size_t
t4r_cuda_trainer_device_bytes(const t4r_cuda_trainer *t)
{
	return t->ws_bytes + t->total * sizeof(float) * (t->train ? 4 : 1);
}

/* upload S samples (host side validation, td as the CPU computes it) */
static int
upload(t4r_cuda_trainer *t, const t4r_sample *smp, int S, int need_target)
{
	const t4r_dims *D = &t->D;
	int			L = D->L;

	for (int s = 0; s < S; s++)
	{
		int			n = smp[s].n,
					nn,
					start;

		if (n < 1 || !smp[s].items || (D->is_time && !smp[s].ts))
		{
			snprintf(t->err, sizeof(t->err), "sample %d: bad length or missing arrays", s);
			return T4R_EINVAL;
		}
		if (need_target && (smp[s].target < 0 || smp[s].target >= D->V))
		{
			snprintf(t->err, sizeof(t->err), "sample %d: target out of range", s);
			return T4R_EINVAL;
		}
		nn = n > L ? L : n;
		start = n - nn;
		t->h_n[s] = nn;
		t->h_tgt[s] = need_target ? smp[s].target : 0;
		for (int l = 0; l < L; l++)
		{
			int32_t		it = l < nn ? smp[s].items[start + l] : 0;

			if (it < 0 || it >= D->V)
			{
				snprintf(t->err, sizeof(t->err), "sample %d: item out of range", s);
				return T4R_EINVAL;
			}
			t->h_items[(size_t) s * L + l] = it;
		}
		if (D->is_time)
		{
			const double *ts = smp[s].ts + start;
			float	   *td = t->h_td + (size_t) s * L;

			td[0] = 0;
			for (int l = 1; l < L; l++)
			{
				double		a = l < nn ? ts[l] : 0,
							b = l - 1 < nn ? ts[l - 1] : 0;

				td[l] = (float) (a - b);
			}
		}
	}
	CK(cudaMemcpy(t->items, t->h_items, sizeof(int32_t) * S * L, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(t->nv, t->h_n, sizeof(int) * S, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(t->tgt, t->h_tgt, sizeof(int) * S, cudaMemcpyHostToDevice));
	if (D->is_time)
		CK(cudaMemcpy(t->td, t->h_td, sizeof(float) * S * L, cudaMemcpyHostToDevice));
	return T4R_OK;
}

/* run one op launcher, then the op-parity hook */
#define RUN_OP(t, li, bwd, name, call) \
	do { int rc_ = (call); if (rc_) return rc_; DBG_HOOK(t, li, name, bwd); } while (0)

/* U [S*L, d] and (is_time) T [R, L] of layer li -> F [rows, d] (the next
 * layer's U, or hidden) and the next layer's T */
static int
layer_fwd(t4r_cuda_trainer *t, int S, int li, int training, uint64_t step, int idx0)
{
	gop			o;

	gop_init(&o, t, S, li, training, step, idx0);
	RUN_OP(t, li, 0, "in_proj", in_proj_forward(&o));
	RUN_OP(t, li, 0, "conv", conv_forward(&o));
	if (t->D.is_time)
		RUN_OP(t, li, 0, "time", time_forward(&o));
	RUN_OP(t, li, 0, "delta", delta_forward(&o));
	RUN_OP(t, li, 0, "ssd", ssd_forward(&o));
	RUN_OP(t, li, 0, "gnorm", gnorm_forward(&o));
	RUN_OP(t, li, 0, "out", out_forward(&o));
	RUN_OP(t, li, 0, "ffn", ffn_forward(&o));
	return T4R_OK;
}

/* forward of S uploaded samples */
static int
forward(t4r_cuda_trainer *t, int S, int training, uint64_t step, int idx0)
{
	DK			dk = make_dk(t, t->m->cfg.dropout_prob, training, step, idx0);

	t->S = S;
	RUN_OP(t, -1, 0, "embed", embed_forward(t, S, dk));
	if (t->D.is_time)
		RUN_OP(t, -1, 0, "time_features", time_features_forward(t, S, dk));
	for (int li = 0; li < t->D.layers; li++)
	{
		int			rc = layer_fwd(t, S, li, training, step, idx0);

		if (rc)
			return rc;
	}
	return T4R_OK;
}

/* dF: [rows, d] gradient of the layer output; writes dU [S*L, d] (gradient
 * of the layer input); dTn: gradient of T_new (NULL for the last layer);
 * dT: gradient of T (written); parameter gradients ACCUMULATED */
static int
layer_bwd(t4r_cuda_trainer *t, int S, int li, int training, uint64_t step, int idx0,
		  const float *dF, float *dU, const float *dTn, float *dT)
{
	gop			o;

	gop_init(&o, t, S, li, training, step, idx0);
	t->dbg_dF = (float *) dF;
	t->dbg_dU = dU;
	t->dbg_dT = dT;
	RUN_OP(t, li, 1, "ffn", ffn_backward(&o, dF));
	RUN_OP(t, li, 1, "out", out_backward(&o));
	RUN_OP(t, li, 1, "gnorm", gnorm_backward(&o));
	RUN_OP(t, li, 1, "ssd", ssd_backward(&o));
	RUN_OP(t, li, 1, "delta", delta_backward(&o));
	if (t->D.is_time)
		RUN_OP(t, li, 1, "time", time_backward(&o, dTn, dT));
	RUN_OP(t, li, 1, "conv", conv_backward(&o));
	RUN_OP(t, li, 1, "in_proj", in_proj_backward(&o, dU));
	RUN_OP(t, li, 1, "residual", residual_backward(&o, dU));
	return T4R_OK;
}

static int
backward(t4r_cuda_trainer *t, int S, int training, uint64_t step, int idx0, double scale)
{
	const t4r_dims *D = &t->D;
	float	   *dF = t->dUa,
			   *dU = t->dUb,
			   *dT = t->dTa,
			   *dTn = NULL;
	DK			dk = make_dk(t, t->m->cfg.dropout_prob, training, step, idx0);

	t->dbg_dF = dF;
	RUN_OP(t, -1, 1, "loss", prefix_loss(t, S, scale, dF));
	for (int li = D->layers - 1; li >= 0; li--)
	{
		float	   *tmp;
		int			rc = layer_bwd(t, S, li, training, step, idx0, dF, dU, dTn, dT);

		if (rc)
			return rc;
		tmp = dF;
		dF = dU;
		dU = tmp;
		if (D->is_time)
		{
			dTn = dT;
			dT = dT == t->dTa ? t->dTb : t->dTa;
		}
	}
	/* in_layer_norm + embedding; dU is free scratch now */
	RUN_OP(t, -1, 1, "embed", embed_backward(t, S, dk, dF, dU));
	if (D->is_time)
		RUN_OP(t, -1, 1, "time_features", time_features_backward(t, S, dTn));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_loss_grad(t4r_cuda_trainer *t, const t4r_sample *s, int ns, int training,
						   double *loss)
{
	double		lsum = 0;
	int			rc;

	if (loss)
		*loss = 0;
	if (!t || !s || ns < 1)
		return T4R_EINVAL;
	if (!t->train)
	{
		snprintf(t->err, sizeof(t->err), "inference-only context");
		return T4R_EINVAL;
	}
	CK(cudaMemset(t->g, 0, t->total * sizeof(float)));
	for (int i0 = 0; i0 < ns; i0 += t->Smax)
	{
		int			S = ns - i0 < t->Smax ? ns - i0 : t->Smax;

		if ((rc = upload(t, s + i0, S, 1)))
			return rc;
		if ((rc = forward(t, S, training, (uint64_t) t->steps, i0)))
			return rc;
		if ((rc = backward(t, S, training, (uint64_t) t->steps, i0, 1.0 / ns)))
			return rc;
		CK(cudaMemcpy(t->h_loss, t->lossv, sizeof(double) * S, cudaMemcpyDeviceToHost));
		for (int i = 0; i < S; i++)
			lsum += t->h_loss[i];
	}
	CK(cudaDeviceSynchronize());
	if (loss)
		*loss = lsum / ns;
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_step(t4r_cuda_trainer *t, const t4r_sample *s, int ns, double *loss)
{
	int			rc = t4r_cuda_trainer_loss_grad(t, s, ns, 1, loss);

	if (rc == T4R_OK)
		rc = adam_step(t);
	if (rc)
		return rc;
	t->steps++;
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_grads(t4r_cuda_trainer *t, float *host)
{
	if (!t->train)
		return T4R_EINVAL;
	CK(cudaMemcpy(host, t->g, t->total * sizeof(float), cudaMemcpyDeviceToHost));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_sync_to_host(t4r_cuda_trainer *t)
{
	CK(cudaMemcpy(t->m->params, t->p, t->total * sizeof(float), cudaMemcpyDeviceToHost));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_sync_from_host(t4r_cuda_trainer *t)
{
	CK(cudaMemcpy(t->p, t->m->params, t->total * sizeof(float), cudaMemcpyHostToDevice));
	return T4R_OK;
}

extern "C" int
t4r_cuda_trainer_infer(t4r_cuda_trainer *t, const t4r_sample *seqs, int nseq,
					   float *hidden, float *scores)
{
	const t4r_dims *D = &t->D;
	int			rc;

	if (!t || !seqs || nseq < 0)
		return T4R_EINVAL;
	for (int i0 = 0; i0 < nseq; i0 += t->Smax)
	{
		int			S = nseq - i0 < t->Smax ? nseq - i0 : t->Smax;
		float	   *hd = t->la[D->layers - 1].F;

		if ((rc = upload(t, seqs + i0, S, 0)))
			return rc;
		if ((rc = forward(t, S, 0, 0, i0)))
			return rc;
		if (hidden)
			CK(cudaMemcpy(hidden + (size_t) i0 * D->d, hd, sizeof(float) * S * D->d,
						  cudaMemcpyDeviceToHost));
		if (scores)
		{
			if ((rc = gemm(t, 0, 1, S, D->V, D->d, 1, hd, D->d, t->pv.emb, D->d, 0, t->logits, D->V)))
				return rc;
			CK(cudaMemcpy(scores + (size_t) i0 * D->V, t->logits, sizeof(float) * S * D->V,
						  cudaMemcpyDeviceToHost));
		}
	}
	CK(cudaDeviceSynchronize());
	return T4R_OK;
}

extern "C" int
t4r_cuda_infer_batch(const t4r_model *m, const t4r_sample *seqs, int nseq, float *hidden,
					 float *scores, char *err, size_t errlen)
{
	t4r_cuda_trainer *t;
	int			mb = nseq < 1024 ? (nseq > 0 ? nseq : 1) : 1024;
	int			rc = t4r_cuda_trainer_create((t4r_model *) m, mb, 0, &t, err, errlen);

	if (rc)
		return rc;
	rc = t4r_cuda_trainer_infer(t, seqs, nseq, hidden, scores);
	if (rc && err && errlen)
		snprintf(err, errlen, "%s", t->err);
	t4r_cuda_trainer_free(t);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the op-parity debug interface (t4r_cuda_debug.h)                    */
/* ------------------------------------------------------------------ */
extern "C" void
t4r_cuda_trainer_set_debug_hook(t4r_cuda_trainer *t, t4r_cuda_debug_hook hook, void *ctx)
{
	t->dbg = hook;
	t->dbg_ctx = ctx;
}

/* where a debug name lives: device buffer, its row stride, the columns
 * wanted and the row kind (DBG_ITEM: full-L rows packed to the samples'
 * real positions; DBG_SAMPLE: [S, .] as it is; DBG_LAST: full-L rows, each
 * sample's last one; DBG_TIME: [R, L] as it is) */
enum
{
	DBG_ITEM, DBG_SAMPLE, DBG_LAST, DBG_TIME
};

static int
debug_where(t4r_cuda_trainer *t, int li, const char *nm, const float **p, int *ld, int *c0,
			int *nc, int *kind)
{
	const t4r_dims *D = &t->D;
	const LAct *A = &t->la[li];
	int			last = li == D->layers - 1;
	int			rk = last ? DBG_SAMPLE : DBG_ITEM;
	struct
	{
		const char *n;
		const float *p;
		int			ld, c0, nc, kind;
	}			tab[] = {
		{"U", A->U, D->d, 0, D->d, DBG_ITEM},
		{"zxd", A->zxd, D->in_dim, 0, D->in_dim, DBG_ITEM},
		{"xbc", A->xbc, D->conv_dim, 0, D->conv_dim, DBG_ITEM},
		{"delta", A->delta, D->H, 0, D->H, DBG_ITEM},
		{"T", A->T, D->L, 0, D->L, DBG_TIME},
		{"tdt", A->tdt, D->L, 0, D->L, DBG_TIME},
		{"y", A->y, D->Di, 0, D->Di, last ? DBG_LAST : DBG_ITEM},
		{"yn", A->yn, D->Di, 0, D->Di, rk},
		{"hh", A->hh, D->d, 0, D->d, rk},
		{"F", A->F, D->d, 0, D->d, rk},
		{"dF", t->dbg_dF, D->d, 0, D->d, rk},
		{"dhh", t->dhh, D->d, 0, D->d, rk},
		{"da", t->da, D->d, 0, D->d, rk},
		{"dyn", t->dyn, D->Di, 0, D->Di, rk},
		{"dy", t->dyfull, D->Di, 0, D->Di, last ? DBG_LAST : DBG_ITEM},
		{"dxbc", t->dxbc, D->conv_dim, 0, D->conv_dim, DBG_ITEM},
		{"ddelta", t->ddelta, D->H, 0, D->H, DBG_ITEM},
		{"dzxd", t->dzxd, D->in_dim, 0, D->in_dim, DBG_ITEM},
		{"ddt", t->dzxd, D->in_dim, 2 * D->Di + 2 * D->N, D->H, DBG_ITEM},
		{"dU", t->dbg_dU, D->d, 0, D->d, DBG_ITEM},
		{"dtdt", t->dtdt, D->L, 0, D->L, DBG_TIME},
		{"dT", t->dbg_dT, D->L, 0, D->L, DBG_TIME},
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(tab[i].n, nm) == 0)
		{
			*p = tab[i].p;
			*ld = tab[i].ld;
			*c0 = tab[i].c0;
			*nc = tab[i].nc;
			*kind = tab[i].kind;
			return tab[i].p ? T4R_OK : T4R_EINVAL;
		}
	return T4R_EINVAL;
}

extern "C" long
t4r_cuda_trainer_debug_tensor(t4r_cuda_trainer *t, int layer, const char *name, float *out,
							  size_t n, size_t *rows_out, int *cols_out)
{
	const t4r_dims *D = &t->D;
	int			S = t->S,
				L = D->L;
	const float *p;
	int			ld, c0, nc, kind;
	size_t		nsrc, rows = 0;
	float	   *h;

	if (layer < 0 || layer >= D->layers || !name ||
		debug_where(t, layer, name, &p, &ld, &c0, &nc, &kind) != T4R_OK)
		return -1;
	nsrc = kind == DBG_SAMPLE ? (size_t) S * ld : kind == DBG_TIME ? (size_t) S * D->H * L :
		(size_t) S * L * ld;
	if (!(h = (float *) malloc(sizeof(float) * nsrc)))
		return -1;
	if (cudaMemcpy(h, p, sizeof(float) * nsrc, cudaMemcpyDeviceToHost) != cudaSuccess)
	{
		free(h);
		return -1;
	}
	for (int s = 0; s < (kind == DBG_TIME ? S * D->H : S); s++)
	{
		int			l0 = kind == DBG_LAST ? t->h_n[s] - 1 : 0,
					l1 = kind == DBG_ITEM ? t->h_n[s] : l0 + 1;

		for (int l = l0; l < l1; l++)
		{
			size_t		src = kind == DBG_ITEM || kind == DBG_LAST ? (size_t) s * L + l : s;

			if ((rows + 1) * nc > n)
			{
				free(h);
				return -1;
			}
			for (int c = 0; c < nc; c++)
				out[rows * nc + c] = h[src * ld + c0 + c];
			rows++;
		}
	}
	free(h);
	if (rows_out)
		*rows_out = rows;
	if (cols_out)
		*cols_out = nc;
	return (long) (rows * nc);
}
