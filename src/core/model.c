/*
 * model.c - TiM4Rec initialisation and the forward/backward pass of one
 * micro-batch (docs/MODEL.md).  The trainer (train.c) and inference (infer.c)
 * drive the workspace defined in model_internal.h.
 *
 * Item path: only the real positions of each sample are computed (packed
 * rows); the last layer works on one row per sample after the SSD.  Time
 * path: all L positions, R = S*H rows, in timepath.c.
 *
 * Layout: parameter views, initialisation, the workspace, elementwise
 * helpers; then the ops of a layer, each forward function followed by its
 * backward (in_proj, causal conv, time path, step size, SSD, gated RMS
 * norm, out_proj + residual + LayerNorm, FFN), layer_fwd / layer_bwd as
 * short call lists of them; the model's input (embedding, time features)
 * and loss; the drivers t4r_ws_forward / t4r_ws_backward.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "model_internal.h"
#include "ops.h"
#include "ssd.h"
#include "timepath.h"

/*
 * The hot loops are written to vectorise; on x86-64 with GCC they are built
 * for the baseline and for AVX2 / AVX-512 and chosen at load time (ifunc).
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
	!defined(T4R_DOUBLE) && !defined(T4R_NO_CLONES)
#define T4R_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define T4R_CLONES
#endif

/* ------------------------------------------------------------------ */
/* parameter views                                                     */
/* ------------------------------------------------------------------ */
static t4r_real *
vptr(const t4r_model *m, t4r_real *base, const char *name)
{
	int			i = t4r_layout_find(&m->layout, name);

	if (i < 0)
		return NULL;
	return base + m->layout.t[i].offset;
}

void
t4r_pview_build(const t4r_model *m, t4r_real *base, t4r_pview *v)
{
	char		nm[T4R_NAME_MAX];

	memset(v, 0, sizeof(*v));
	v->emb = vptr(m, base, "item_embedding.weight");
	v->in_ln_w = vptr(m, base, "in_layer_norm.weight");
	v->in_ln_b = vptr(m, base, "in_layer_norm.bias");
	v->tln_w = vptr(m, base, "layer_norm_time.weight");
	v->tln_b = vptr(m, base, "layer_norm_time.bias");
	if (m->dims.robust)
	{
		/* robust time path: time_input.* in the slots of layer_norm_time */
		v->tln_w = vptr(m, base, "time_input.weight");
		v->tln_b = vptr(m, base, "time_input.bias");
	}
	v->layers = m->dims.layers;
	for (int i = 0; i < m->dims.layers && i < T4R_MAX_LAYERS; i++)
	{
		t4r_lparams *l = &v->l[i];

#define LP(field, suffix) \
		do { snprintf(nm, sizeof(nm), "ssd_layers.%d.%s", i, suffix); l->field = vptr(m, base, nm); } while (0)
		LP(in_w, "ssd.in_proj.weight");
		LP(in_b, "ssd.in_proj.bias");
		LP(conv_w, "ssd.conv1d.weight");
		LP(conv_b, "ssd.conv1d.bias");
		LP(tp.c1w, "ssd.conv1d4time_1.weight");
		LP(tp.c1b, "ssd.conv1d4time_1.bias");
		LP(tp.c2w, "ssd.conv1d4time_2.weight");
		LP(tp.c2b, "ssd.conv1d4time_2.bias");
		LP(tp.w1, "ssd.mlp4time_scale.1.weight");
		LP(tp.b1, "ssd.mlp4time_scale.1.bias");
		LP(tp.w2, "ssd.mlp4time_scale.3.weight");
		LP(tp.b2, "ssd.mlp4time_scale.3.bias");
		LP(tp.gw, "ssd.time_gate_residual.1.weight");
		LP(tp.gb, "ssd.time_gate_residual.1.bias");
		LP(tp.lnw, "ssd.time_layer_norm.weight");
		LP(tp.lnb, "ssd.time_layer_norm.bias");
		LP(dt_bias, "ssd.dt_bias");
		LP(A_log, "ssd.A_log");
		LP(D, "ssd.D");
		LP(norm_w, "ssd.norm.weight");
		LP(out_w, "ssd.out_proj.weight");
		LP(out_b, "ssd.out_proj.bias");
		LP(ln_w, "layer_norm.weight");
		LP(ln_b, "layer_norm.bias");
		LP(fc1_w, "ffn.fc1.weight");
		LP(fc1_b, "ffn.fc1.bias");
		LP(fc2_w, "ffn.fc2.weight");
		LP(fc2_b, "ffn.fc2.bias");
		LP(fln_w, "ffn.layer_norm.weight");
		LP(fln_b, "ffn.layer_norm.bias");
		if (m->dims.robust)
		{
			/* robust time path (timepath.h): its tensors in the same slots */
			LP(tp.w1, "ssd.time_mlp.1.weight");
			LP(tp.b1, "ssd.time_mlp.1.bias");
			LP(tp.w2, "ssd.time_mlp.3.weight");
			LP(tp.b2, "ssd.time_mlp.3.bias");
			LP(tp.gw, "ssd.time_gate.weight");
			LP(tp.gb, "ssd.time_gate.bias");
			LP(tp.lnw, "ssd.time_affine.weight");
			LP(tp.lnb, "ssd.time_affine.bias");
		}
#undef LP
	}
}

/* ------------------------------------------------------------------ */
/* initialisation (docs/MODEL.md)                                           */
/* ------------------------------------------------------------------ */
static int
ends_with(const char *s, const char *suf)
{
	size_t		a = strlen(s),
				b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

void
t4r_model_init(t4r_model *m, uint64_t seed)
{
	t4r_rng		rng;
	int			K = m->dims.K;

	t4r_rng_seed(&rng, seed);
	for (int ti = 0; ti < m->layout.n; ti++)
	{
		const t4r_tensor *t = &m->layout.t[ti];
		const char *nm = t->name;
		t4r_real   *p = m->params + t->offset;
		size_t		n = t->numel;

		if (strstr(nm, "ssd.time_mlp.") || strstr(nm, "ssd.time_gate.") ||
			strstr(nm, "ssd.time_affine.") || strncmp(nm, "time_input.", 11) == 0)
		{
			/*
			 * robust time path (not in the published model): the MLP starts
			 * near s = 1 (q = T), the gate at 1/2, the affine maps at
			 * identity: w1 ~ N(0, 1), w2 ~ N(0, 1/J), b2 = 1, the rest 0 /
			 * weights 1
			 */
			int			is_w = ends_with(nm, ".weight");

			for (size_t i = 0; i < n; i++)
			{
				if (strstr(nm, "ssd.time_mlp.1.weight"))
					p[i] = (t4r_real) t4r_rng_normal(&rng);
				else if (strstr(nm, "ssd.time_mlp.3.weight"))
					p[i] = (t4r_real) (t4r_rng_normal(&rng) / m->dims.TJ);
				else if (strstr(nm, "ssd.time_mlp.3.bias"))
					p[i] = 1;
				else if (strstr(nm, "ssd.time_gate."))
					p[i] = 0;
				else
					p[i] = is_w ? 1 : 0;
			}
		}
		else if (strstr(nm, "conv1d"))
		{
			/* ssd.conv1d, conv1d4time_1, conv1d4time_2 */
			int			is_w = ends_with(nm, ".weight");

			if (m->cfg.kaiming_init)
			{
				double		sd = sqrt(2.0 / K);

				for (size_t i = 0; i < n; i++)
					p[i] = is_w ? (t4r_real) (sd * t4r_rng_normal(&rng)) : 0;
			}
			else
			{
				double		bound = 1.0 / sqrt((double) K);

				for (size_t i = 0; i < n; i++)
					p[i] = (t4r_real) ((2 * t4r_rng_u01(&rng) - 1) * bound);
			}
		}
		else if (ends_with(nm, "ssd.dt_bias"))
		{
			for (size_t i = 0; i < n; i++)
			{
				double		lo = log(1e-3),
							hi = log(1e-1);
				double		dt = exp(lo + (hi - lo) * t4r_rng_u01(&rng));

				if (dt < 1e-4)
					dt = 1e-4;
				p[i] = (t4r_real) (dt + log(-expm1(-dt)));
			}
		}
		else if (ends_with(nm, "ssd.A_log"))
		{
			for (size_t i = 0; i < n; i++)
				p[i] = (t4r_real) log(1 + 15 * t4r_rng_u01(&rng));
		}
		else if (ends_with(nm, "ssd.D") || ends_with(nm, "ssd.norm.weight"))
		{
			for (size_t i = 0; i < n; i++)
				p[i] = 1;
		}
		else if (strstr(nm, "layer_norm") || strstr(nm, "in_layer_norm"))
		{
			/* in_layer_norm, layer_norm_time, time_layer_norm, layer_norm,
			 * ffn.layer_norm */
			t4r_real	v = ends_with(nm, ".weight") ? 1 : 0;

			for (size_t i = 0; i < n; i++)
				p[i] = v;
		}
		else if (ends_with(nm, ".weight"))
		{
			/* embedding and every Linear */
			for (size_t i = 0; i < n; i++)
				p[i] = (t4r_real) (0.02 * t4r_rng_normal(&rng));
		}
		else
		{
			/* Linear biases */
			for (size_t i = 0; i < n; i++)
				p[i] = 0;
		}
	}
}

/* ------------------------------------------------------------------ */
/* workspace                                                           */
/* ------------------------------------------------------------------ */
#define ALIGN_E 16

typedef struct carver
{
	t4r_real   *base;
	size_t		cur;
} carver;

static t4r_real *
take(carver *c, size_t n)
{
	t4r_real   *p = c->base ? c->base + c->cur : NULL;

	c->cur += (n + ALIGN_E - 1) / ALIGN_E * ALIGN_E;
	return p;
}

/* rows of logits an all_positions workspace computes at once: up to 256,
 * about 512K logits (2 MiB in float), never fewer than Smax (what the
 * per-prefix workspace holds); larger blocks repack E less often */
static int
ws_lchunk(const t4r_dims *D, int Smax)
{
	int			ch = (int) ((1 << 19) / (D->V > 0 ? D->V : 1));
	int			mrows = Smax * D->L;

	if (ch > 256)
		ch = 256;
	if (ch > mrows)
		ch = mrows;
	return Smax > ch ? Smax : ch;
}

static size_t
ws_carve(t4r_ws *w, const t4r_dims *D, int chunk, int Smax, int train, t4r_real *base)
{
	carver		c = {base, 0};
	int			allpos = train && D->allpos;
	size_t		M = (size_t) Smax * D->L;
	size_t		S = (size_t) Smax;
	size_t		R = (size_t) Smax * D->H;
	size_t		RL = R * D->L;
	int			d = D->d,
				Di = D->Di,
				C = D->conv_dim,
				f = D->ffn_dim;

	w->emb = take(&c, M * d);
	w->memb = train ? take(&c, M * d) : NULL;
	w->e_mu = take(&c, M);
	w->e_rs = take(&c, M);
	if (D->is_time)
	{
		w->td = take(&c, S * D->L);
		w->t_mu = take(&c, S);
		w->t_rs = take(&c, S);
	}
	for (int i = 0; i < D->layers; i++)
	{
		t4r_lact   *a = &w->la[i];
		int			last = (i == D->layers - 1);
		size_t		rows = (last && !allpos) ? S : M;

		a->U = take(&c, M * d);
		if (D->is_time)
		{
			a->T = take(&c, RL);
			a->mmlp = train ? take(&c, RL) : NULL;
			a->mgate = (train && !last) ? take(&c, RL) : NULL;
			a->tdt = take(&c, RL);
			a->tcache = take(&c, D->robust ? t4r_rtime_cache_size((int) R, D->L) :
							 t4r_time_cache_size((int) R, D->L, D->G));
		}
		if (!train && i > 0)
		{
			/*
			 * Inference only (no backward): a layer's item-path buffers are
			 * dead once its output (the next layer's U) is written, so every
			 * layer reuses layer 0's (sized for M rows); a smaller working
			 * set per call.  U, T, tdt and the time cache stay per layer.
			 */
			const t4r_lact *a0 = &w->la[0];

			a->zxd = a0->zxd;
			a->cpre = a0->cpre;
			a->xbc = a0->xbc;
			a->delta = a0->delta;
			a->y = a0->y;
			a->rrs = a0->rrs;
			a->yn = a0->yn;
			a->mo = NULL;
			a->a = a0->a;
			a->a_mu = a0->a_mu;
			a->a_rs = a0->a_rs;
			a->hh = a0->hh;
			a->f1 = a0->f1;
			a->m1 = NULL;
			a->h1 = a0->h1;
			a->m2 = NULL;
			a->b = a0->b;
			a->b_mu = a0->b_mu;
			a->b_rs = a0->b_rs;
			continue;
		}
		a->zxd = take(&c, M * D->in_dim);
		a->cpre = take(&c, M * C);
		a->xbc = take(&c, M * C);
		a->delta = take(&c, M * D->H);
		a->y = take(&c, rows * Di);
		a->rrs = take(&c, rows);
		a->yn = take(&c, rows * Di);
		a->mo = train ? take(&c, rows * d) : NULL;
		a->a = take(&c, rows * d);
		a->a_mu = take(&c, rows);
		a->a_rs = take(&c, rows);
		a->hh = take(&c, rows * d);
		a->f1 = take(&c, rows * f);
		a->m1 = train ? take(&c, rows * f) : NULL;
		a->h1 = take(&c, rows * f);
		a->m2 = train ? take(&c, rows * d) : NULL;
		a->b = take(&c, rows * d);
		a->b_mu = take(&c, rows);
		a->b_rs = take(&c, rows);
	}
	for (int i = 0; i < D->layers; i++)
		w->la[i].F = (i + 1 < D->layers) ? w->la[i + 1].U : NULL;
	w->hidden = take(&c, (allpos ? M : S) * d);
	if (D->layers > 0)
		w->la[D->layers - 1].F = w->hidden;
	w->logits = take(&c, (allpos ? (size_t) ws_lchunk(D, Smax) : S) * D->V);
	w->convT = take(&c, (size_t) D->K * C + D->H);
	w->ones = take(&c, f > d ? f : d);
	w->zeros = take(&c, C > d ? C : d);
	w->ssd_ws = take(&c, t4r_ssd_ws_size(D->L, D->H, D->P, D->N, chunk) + 16);
	if (train)
	{
		w->dU0 = take(&c, M * d);
		w->dU1 = take(&c, M * d);
		w->db = take(&c, M * d);
		w->df2 = take(&c, M * d);
		w->dhh = take(&c, M * d);
		w->da = take(&c, M * d);
		w->dob = take(&c, M * d);
		w->dh1 = take(&c, M * f);
		w->dyn = take(&c, M * Di);
		w->dy = take(&c, M * Di);
		w->dzxd = take(&c, M * D->in_dim);
		w->dxbc = take(&c, M * C);
		w->ddelta = take(&c, M * D->H);
		if (D->is_time)
		{
			w->dtdt = take(&c, RL);
			w->dT0 = take(&c, RL);
			w->dT1 = take(&c, RL);
			w->tscratch = take(&c, D->robust ? t4r_rtime_scratch_size(D->L) :
							   t4r_time_scratch_size((int) R, D->L, D->G));
		}
		w->dconvT = take(&c, (size_t) D->K * C);
		w->dA = take(&c, D->H);
		w->gtmp = take(&c, 2 * (size_t) Di);
		w->dtsum = take(&c, D->L);
		w->dtmp = take(&c, D->L);
	}
	return c.cur;
}

size_t
t4r_ws_elems(const t4r_dims *D, int chunk, int Smax, int train)
{
	t4r_ws	   *tmp = calloc(1, sizeof(t4r_ws));
	size_t		n;

	if (!tmp)
		return (size_t) -1;
	n = ws_carve(tmp, D, chunk, Smax, train, NULL);
	free(tmp);
	return n;
}

int
t4r_ws_create(const t4r_model *m, int Smax, int train, t4r_ws **out)
{
	t4r_ws	   *w;
	size_t		n;

	*out = NULL;
	if (Smax < 1 || m->dims.layers > T4R_MAX_LAYERS)
		return T4R_EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return T4R_ENOMEM;
	w->m = m;
	w->D = m->dims;
	w->Smax = Smax;
	w->Mmax = (size_t) Smax * m->dims.L;
	w->train = train;
	w->allpos = train && w->D.allpos;
	w->lchunk = w->allpos ? ws_lchunk(&w->D, Smax) : Smax;
	n = ws_carve(w, &w->D, m->cfg.chunk_size, Smax, train, NULL);
	w->mem = malloc((n + ALIGN_E) * sizeof(t4r_real));
	w->n = malloc(sizeof(int) * Smax);
	w->off = malloc(sizeof(size_t) * Smax);
	w->items = malloc(sizeof(int32_t) * w->Mmax);
	w->rtgt = w->allpos ? malloc(sizeof(int32_t) * w->Mmax) : NULL;
	if (!w->mem || !w->n || !w->off || !w->items || (w->allpos && !w->rtgt))
	{
		t4r_ws_free(w);
		return T4R_ENOMEM;
	}
	w->nreal = n;
	ws_carve(w, &w->D, m->cfg.chunk_size, Smax, train, w->mem);
	for (int i = 0; i < w->D.ffn_dim || i < w->D.d; i++)
		w->ones[i] = 1;
	for (int i = 0; i < w->D.d || i < w->D.conv_dim; i++)
		w->zeros[i] = 0;
	t4r_pview_build(m, m->params, &w->pv);
	*out = w;
	return T4R_OK;
}

void
t4r_ws_free(t4r_ws *w)
{
	if (!w)
		return;
	free(w->mem);
	free(w->n);
	free(w->off);
	free(w->items);
	free(w->rtgt);
	free(w);
}


/* ------------------------------------------------------------------ */
/* elementwise functions (mathfn.h)                                    */
/* ------------------------------------------------------------------ */
/* the float build uses the vectorisable forms: exp(-|m|) with |m| clamped
 * to 87 (0x42AE0000), the sign-selected sigmoid, hardswish with integer
 * selects; the double build the reference forms */
#ifdef T4R_DOUBLE
static inline t4r_real
m_expneg(t4r_real m)
{
	return exp(-fabs(m));
}
#define m_sigmoid t4r_sigmoid
#define m_hardswish t4r_hardswish
#define m_dhardswish t4r_dhardswish
#else
static inline float
m_expneg(float m)
{
	return t4r_fexpneg(m, 0x42AE0000);
}

static inline float
m_sigmoid(float a)
{
	return t4r_fsigmoid_e(a, m_expneg(a));
}
#define m_hardswish t4r_hardswish_sel
#define m_dhardswish t4r_dhardswish_sel
#endif

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */
#define NLANE 16

static inline void
fill_rows(t4r_real *restrict X, size_t rows, int cols, const t4r_real *restrict b)
{
	for (size_t r = 0; r < rows; r++)
		memcpy(X + r * cols, b, sizeof(t4r_real) * cols);
}

/*
 * Layer norm over one row of n values (n small: the hidden size), float
 * lanes so that the loops vectorise; mean and variance two-pass.  Same
 * contract as t4r_layernorm_fwd/_bwd in ops.h (which the double build and
 * the long time rows use).
 */
static inline void
ln_fwd(const t4r_real *restrict x, int n, const t4r_real *restrict w,
	   const t4r_real *restrict b, double eps, t4r_real *restrict y, t4r_real *mu_out,
	   t4r_real *rs_out)
{
#ifdef T4R_DOUBLE
	t4r_layernorm_fwd(x, n, w, b, eps, y, mu_out, rs_out);
#else
	float		acc[NLANE] = {0};
	double		s = 0,
				v = 0;
	float		mu,
				rs;
	int			i;

	for (i = 0; i + NLANE <= n; i += NLANE)
		for (int j = 0; j < NLANE; j++)
			acc[j] += x[i + j];
	for (; i < n; i++)
		s += x[i];
	for (int j = 0; j < NLANE; j++)
		s += acc[j];
	mu = (float) (s / n);
	for (int j = 0; j < NLANE; j++)
		acc[j] = 0;
	for (i = 0; i + NLANE <= n; i += NLANE)
		for (int j = 0; j < NLANE; j++)
		{
			float		c = x[i + j] - mu;

			acc[j] += c * c;
		}
	for (; i < n; i++)
		v += (double) (x[i] - mu) * (x[i] - mu);
	for (int j = 0; j < NLANE; j++)
		v += acc[j];
	rs = (float) (1.0 / sqrt(v / n + eps));
	for (i = 0; i < n; i++)
		y[i] = (x[i] - mu) * rs * w[i] + b[i];
	*mu_out = mu;
	*rs_out = rs;
#endif
}

/* dx OVERWRITTEN (may alias dy), dw/db ACCUMULATED */
static inline void
ln_bwd(const t4r_real *restrict x, const t4r_real *dy, int n, const t4r_real *restrict w,
	   t4r_real mu, t4r_real rs, t4r_real *dx, t4r_real *restrict dw, t4r_real *restrict db)
{
#ifdef T4R_DOUBLE
	t4r_layernorm_bwd(x, dy, n, w, mu, rs, dx, dw, db);
#else
	float		a1[NLANE] = {0},
				a2[NLANE] = {0};
	double		sg = 0,
				sgx = 0;
	float		msg,
				msgx;
	int			i;

	for (i = 0; i + NLANE <= n; i += NLANE)
	{
		/* block pointers: x[i + j] defeats GCC's data-ref analysis under
		 * -fwrapv (int i + j may wrap) and the loop stayed scalar */
		const t4r_real *restrict xb = x + i,
				   *restrict yb = dy + i,
				   *restrict wb = w + i;
		t4r_real   *restrict dwb = dw + i,
				   *restrict dbb = db + i;

		for (int j = 0; j < NLANE; j++)
		{
			float		xh = (xb[j] - mu) * rs;
			float		g = yb[j] * wb[j];

			dwb[j] += yb[j] * xh;
			dbb[j] += yb[j];
			a1[j] += g;
			a2[j] += g * xh;
		}
	}
	for (; i < n; i++)
	{
		float		xh = (x[i] - mu) * rs;
		float		g = dy[i] * w[i];

		dw[i] += dy[i] * xh;
		db[i] += dy[i];
		sg += g;
		sgx += (double) g * xh;
	}
	for (int j = 0; j < NLANE; j++)
	{
		sg += a1[j];
		sgx += a2[j];
	}
	msg = (float) (sg / n);
	msgx = (float) (sgx / n);
	for (i = 0; i < n; i++)
	{
		float		xh = (x[i] - mu) * rs;

		dx[i] = (dy[i] * w[i] - msg - xh * msgx) * rs;
	}
#endif
}

/* out[c] += sum_r X[r*ld + c] */
static inline void
colsum_add(const t4r_real *restrict X, size_t rows, int cols, int ld, t4r_real *restrict out)
{
	for (size_t r = 0; r < rows; r++)
	{
		const t4r_real *x = X + r * ld;

		for (int c = 0; c < cols; c++)
			out[c] += x[c];
	}
}

/* sum of squares / triple dot product with lane partial sums (vectorise) */
static inline double
sumsq(const t4r_real *restrict x, int n)
{
	t4r_real	acc[NLANE] = {0};
	double		s = 0;
	int			i = 0;

	for (; i + NLANE <= n; i += NLANE)
		for (int j = 0; j < NLANE; j++)
			acc[j] += x[i + j] * x[i + j];
	for (; i < n; i++)
		s += (double) x[i] * x[i];
	for (int j = 0; j < NLANE; j++)
		s += acc[j];
	return s;
}

static inline double
dot3(const t4r_real *restrict a, const t4r_real *restrict b, const t4r_real *restrict c, int n)
{
	t4r_real	acc[NLANE] = {0};
	double		s = 0;
	int			i = 0;

	for (; i + NLANE <= n; i += NLANE)
		for (int j = 0; j < NLANE; j++)
			acc[j] += a[i + j] * b[i + j] * c[i + j];
	for (; i < n; i++)
		s += (double) a[i] * b[i] * c[i];
	for (int j = 0; j < NLANE; j++)
		s += acc[j];
	return s;
}

/* numerically stable softmax of x[0..n-1] in place (x <- exp(x - max)),
 * returns the max in *mx and the sum of the exponentials */
T4R_CLONES static double
softmax_exp(t4r_real *restrict x, int n, t4r_real *mx_out)
{
	t4r_real	mxl[NLANE];
	t4r_real	mx;
	double		sum = 0;
	int			i;

	for (int j = 0; j < NLANE; j++)
		mxl[j] = x[0];
	for (i = 0; i + NLANE <= n; i += NLANE)
		for (int j = 0; j < NLANE; j++)
			mxl[j] = x[i + j] > mxl[j] ? x[i + j] : mxl[j];
	mx = mxl[0];
	for (int j = 1; j < NLANE; j++)
		mx = mxl[j] > mx ? mxl[j] : mx;
	for (; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	/* exponentials in blocks; lane sums flushed to double per block */
	for (int b0 = 0; b0 < n; b0 += 1024)
	{
		int			b1 = b0 + 1024 < n ? b0 + 1024 : n;
		t4r_real	acc[NLANE] = {0};

		for (i = b0; i + NLANE <= b1; i += NLANE)
		{
			/* a block pointer: under -fwrapv, x[i + j] (int i + j may wrap)
			 * defeats GCC's data-ref analysis and the loop stayed scalar */
			t4r_real   *restrict xb = x + i;

			for (int j = 0; j < NLANE; j++)
			{
				t4r_real	e = m_expneg(mx - xb[j]);

				xb[j] = e;
				acc[j] += e;
			}
		}
		for (; i < b1; i++)
		{
			x[i] = m_expneg(mx - x[i]);
			sum += x[i];
		}
		for (int j = 0; j < NLANE; j++)
			sum += acc[j];
	}
	*mx_out = mx;
	return sum;
}

/*
 * Fused softmax cross-entropy of one row of logits lg [V] with target tg:
 * returns the row's loss log(sum exp) + max - lg[tg] and overwrites lg with
 * its gradient, scaled: scale * (softmax(lg) - onehot(tg)).
 */
static double
xent_row(t4r_real *lg, int V, int tg, double scale)
{
	t4r_real	mx;
	t4r_real	tl = lg[tg];
	double		sum = softmax_exp(lg, V, &mx);
	t4r_real	inv = (t4r_real) (scale / sum);

	for (int v = 0; v < V; v++)
		lg[v] *= inv;
	lg[tg] -= (t4r_real) scale;
	return log(sum) + mx - tl;
}

/*
 * The same with a soft target distribution q (label_smoothing eps,
 * tie_targets): q = eps / V on every row plus (1 - eps) / nt on each of
 * tg[0 .. nt-1] (a row listed twice gets twice the share).  Returns the
 * row's loss log(sum exp) + max - sum_v q_v lg_v and overwrites lg with
 * scale * (softmax(lg) - q).
 */
static double
xent_row_soft(t4r_real *lg, int V, const int32_t *tg, int nt, double eps, double scale)
{
	t4r_real	mx;
	double		lsum = 0,
				tsum = 0,
				sum;
	double		w = (1 - eps) / nt;
	t4r_real	inv,
				sub = (t4r_real) (scale * eps / V),
				tw = (t4r_real) (scale * w);

	if (eps > 0)
		for (int v = 0; v < V; v++)
			lsum += lg[v];
	for (int j = 0; j < nt; j++)
		tsum += lg[tg[j]];
	sum = softmax_exp(lg, V, &mx);
	inv = (t4r_real) (scale / sum);
	for (int v = 0; v < V; v++)
		lg[v] = lg[v] * inv - sub;
	for (int j = 0; j < nt; j++)
		lg[tg[j]] -= tw;
	return log(sum) + mx - eps / V * lsum - w * tsum;
}

/* one loss row: the published cross-entropy unless the configuration asks
 * for a soft target (soft/nsoft: tie_targets' list, NULL for one target) */
static double
xent_row_cfg(t4r_real *lg, int V, int tg, const int32_t *soft, int nsoft,
			 double eps, double scale)
{
	int32_t		t1 = (int32_t) tg;

	if (soft == NULL || nsoft < 1)
	{
		soft = &t1;
		nsoft = 1;
	}
	if (eps == 0 && nsoft == 1)
		return xent_row(lg, V, tg, scale);
	return xent_row_soft(lg, V, soft, nsoft, eps, scale);
}

/*
 * t4r_dropout_mask (ops.h) with the pairs loop written so that it vectorises
 * (64-bit multiplies: AVX-512DQ); the values are exactly the same function
 * of (seed, step, sample, site, element index).
 */
T4R_CLONES void
t4r_model_dropout_mask(t4r_real *restrict mask, size_t n, double p, uint64_t seed,
					   uint64_t step, uint64_t sample, uint64_t site)
{
	t4r_real	keep = (t4r_real) (1.0 / (1.0 - p));
	uint64_t	base = t4r_hash64(seed, step, sample, site);
	uint64_t	thr = (uint64_t) (p * 4294967296.0);
	size_t		np = n / 2;

	for (size_t j = 0; j < np; j++)
	{
		uint64_t	z = t4r_mix64(base + (uint64_t) (2 * j) * T4R_GOLDEN64 + T4R_GOLDEN64);

		mask[2 * j] = ((z & 0xffffffffu) < thr) ? 0 : keep;
		mask[2 * j + 1] = ((z >> 32) < thr) ? 0 : keep;
	}
	if (n & 1)
		mask[n - 1] = t4r_dropout_bits(base, n - 1) < thr ? 0 : keep;
}

static inline void
mask_gen(t4r_real *mask, size_t n, double p, const t4r_config *cfg, uint64_t step,
		 uint64_t sample, uint64_t site)
{
	t4r_model_dropout_mask(mask, n, p, cfg->seed, step, sample, site);
}

/* global row of the row r of a layer's output buffers */
static inline size_t
out_row(const t4r_ws *w, int last, size_t r)
{
	return last ? w->off[r] + (size_t) w->n[r] - 1 : r;
}

/* ------------------------------------------------------------------ */
/* the ops of a layer: each forward followed by its backward           */
/* ------------------------------------------------------------------ */
/*
 * Shapes: M rows of the packed item path (sample s owns rows off[s] ..
 * off[s] + n[s] - 1), R = S*H rows of length L for the time path; `rows`
 * = the rows an op after the SSD works on: M, or S in the last layer
 * (lastr: one row per sample, its last position).  Forward functions
 * OVERWRITE their outputs in the layer's activations (t4r_lact); backward
 * functions OVERWRITE the gradient buffers they name and ACCUMULATE into
 * the parameter gradients GP.  The backward pass of layer li runs after the
 * forward of every later layer, which overwrote the shared scratch (convT,
 * the SSD's A), so the backward functions recompute what they read there.
 */

/* what every op of one layer reads */
typedef struct lop
{
	t4r_ws	   *w;
	const t4r_dims *D;
	const t4r_config *cfg;
	const t4r_lparams *P;		/* the layer's parameters */
	const t4r_lparams *GP;		/* their gradients (backward only) */
	t4r_lact   *A;				/* the layer's activations */
	int			li,
				last,			/* the last layer */
				lastr;			/* last layer with one row per sample */
	size_t		rows;			/* rows after the SSD: S if lastr, else M */
	double		pd,				/* dropout_prob in this pass (0: eval) */
				ptd;			/* time_dropout in this pass */
	uint64_t	step;			/* dropout key (forward only) */
	int			idx0;
	/* inference with packed weights: the row-stable projections (rgemm.c),
	 * NULL in training */
	const t4r_ipack *ip;
} lop;

static void
lop_init(lop *o, t4r_ws *w, int li, const t4r_pview *g, uint64_t step, int idx0)
{
	const t4r_dims *D = &w->D;

	o->w = w;
	o->D = D;
	o->cfg = &w->m->cfg;
	o->P = &w->pv.l[li];
	o->GP = g ? &g->l[li] : NULL;
	o->A = &w->la[li];
	o->li = li;
	o->last = (li == D->layers - 1);
	/* rows of the item path after the SSD: one per sample in the last
	 * layer, except in all_positions training (every position has a loss) */
	o->lastr = o->last && !w->allpos;
	o->rows = o->lastr ? (size_t) w->S : w->M;
	o->pd = w->training ? o->cfg->dropout_prob : 0;
	o->ptd = w->training ? o->cfg->time_dropout : 0;
	o->step = step;
	o->idx0 = idx0;
	o->ip = w->training ? NULL : w->ip;
}

/* dropout mask of `site` for every sample: per row block [n[s] * width]
 * at row off[s], or (lastr) one row [width] per sample */
static void
lop_masks(const lop *o, t4r_real *mask, int width, int lastr, int site)
{
	const t4r_ws *w = o->w;

	for (int s = 0; s < w->S; s++)
	{
		if (lastr)
			mask_gen(mask + (size_t) s * width, width, o->pd, o->cfg, o->step, o->idx0 + s,
					 T4R_SITE_LAYER(o->li, site));
		else
			mask_gen(mask + w->off[s] * width, (size_t) w->n[s] * width, o->pd, o->cfg,
					 o->step, o->idx0 + s, T4R_SITE_LAYER(o->li, site));
	}
}

/* a linear layer, Y [rows, out] = X [rows, in] W^T + b (W [out, in]);
 * Y OVERWRITTEN.  Wp: W packed for the row-stable kernel of inference
 * (rgemm.c), or NULL (OpenBLAS, as in training) */
static void
linear_forward(size_t rows, int in, int out, const t4r_real *X, const t4r_real *W,
			   const t4r_real *Wp, const t4r_real *b, t4r_real *Y)
{
	if (Wp)
	{
		t4r_rgemm((int) rows, out, in, X, in, Wp, b, Y, out);
		return;
	}
	fill_rows(Y, rows, out, b);
	t4r_gemm(0, 1, (int) rows, out, in, 1, X, in, W, in, 1, Y, out);
}

/* its backward from dZ [rows, out], the gradient of X W^T: gW [out, in]
 * ACCUMULATED, dX [rows, in] OVERWRITTEN (the bias gradient is the column
 * sum of dZ, left to the caller's elementwise pass) */
static void
linear_backward(size_t rows, int in, int out, const t4r_real *dZ, const t4r_real *X,
				const t4r_real *W, t4r_real *gW, t4r_real *dX)
{
	t4r_gemm(1, 0, out, in, (int) rows, 1, dZ, out, X, in, 1, gW, in);
	t4r_gemm(0, 0, (int) rows, in, out, 1, dZ, out, W, in, 0, dX, in);
}

/* the backward of Dropout(X W^T + b) from dY [rows, out]: dZ = dY * mask
 * (mask [rows, out], NULL: no dropout) OVERWRITTEN, gb ACCUMULATED with
 * its column sums in the same pass, then linear_backward */
T4R_CLONES static void
dropout_linear_backward(const t4r_ws *w, size_t rows, int in, int out, const t4r_real *dY,
						const t4r_real *mask, const t4r_real *X, const t4r_real *W,
						t4r_real *dZ, t4r_real *gW, t4r_real *gb, t4r_real *dX)
{
	for (size_t r = 0; r < rows; r++)
	{
		const t4r_real *restrict m = mask ? mask + r * out : w->ones;
		const t4r_real *restrict dy = dY + r * out;
		t4r_real   *restrict dz = dZ + r * out;
		t4r_real   *restrict g = gb;

		for (int c = 0; c < out; c++)
		{
			dz[c] = dy[c] * m[c];
			g[c] += dz[c];
		}
	}
	linear_backward(rows, in, out, dZ, X, W, gW, dX);
}

/*
 * 3.1 in_proj: zxd [M, in_dim] = U [M, d] in_w^T + in_b, columns
 * z | xBC | dt (widths Di, Di + 2N, H).  zxd OVERWRITTEN; lastr: z only at
 * each sample's last row (the only one the gated norm reads).
 */
T4R_CLONES static void
in_proj_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P;
	t4r_lact   *A = o->A;
	size_t		M = w->M;
	int			d = o->D->d,
				Di = o->D->Di,
				in_dim = o->D->in_dim;

	if (o->ip)
	{
		/* inference: the row-stable kernel; z only where read */
		t4r_rgemm((int) M, in_dim - Di, d, A->U, d, o->ip->l[o->li].inr, P->in_b + Di,
				  A->zxd + Di, in_dim);
		if (!o->lastr)
			t4r_rgemm((int) M, Di, d, A->U, d, o->ip->l[o->li].inz, P->in_b, A->zxd, in_dim);
		else
			for (int s = 0; s < w->S; s++)
			{
				size_t		gr = w->off[s] + w->n[s] - 1;

				t4r_rgemm(1, Di, d, A->U + gr * d, d, o->ip->l[o->li].inz, P->in_b,
						  A->zxd + gr * in_dim, in_dim);
			}
		return;
	}
	if (!o->lastr)
	{
		linear_forward(M, d, in_dim, A->U, P->in_w, NULL, P->in_b, A->zxd);
		return;
	}
	for (size_t r = 0; r < M; r++)
		memcpy(A->zxd + r * in_dim + Di, P->in_b + Di, sizeof(t4r_real) * (in_dim - Di));
	t4r_gemm(0, 1, (int) M, in_dim - Di, d, 1, A->U, d, P->in_w + (size_t) Di * d, d, 1,
			 A->zxd + Di, in_dim);
	for (int s = 0; s < w->S; s++)
	{
		size_t		gr = w->off[s] + w->n[s] - 1;

		memcpy(A->zxd + gr * in_dim, P->in_b, sizeof(t4r_real) * Di);
		t4r_gemm(0, 1, 1, Di, d, 1, A->U + gr * d, d, P->in_w, d, 1, A->zxd + gr * in_dim,
				 in_dim);
	}
}

/*
 * dzxd [M, in_dim] (complete; lastr: z columns only at the last rows) ->
 * dU [M, d] OVERWRITTEN (residual_backward adds the residual branch
 * afterwards), in_w gradient ACCUMULATED.  The in_b gradient is
 * accumulated by conv_backward while dzxd's rows are in cache.
 */
T4R_CLONES static void
in_proj_backward(const lop *o, t4r_real *dU)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P,
			   *GP = o->GP;
	t4r_lact   *A = o->A;
	size_t		M = w->M;
	int			d = o->D->d,
				Di = o->D->Di,
				in_dim = o->D->in_dim;

	if (!o->lastr)
	{
		linear_backward(M, d, in_dim, w->dzxd, A->U, P->in_w, GP->in_w, dU);
		return;
	}
	/* z columns hold a gradient only at each sample's last row */
	t4r_gemm(1, 0, in_dim - Di, d, (int) M, 1, w->dzxd + Di, in_dim, A->U, d, 1,
			 GP->in_w + (size_t) Di * d, d);
	t4r_gemm(0, 0, (int) M, d, in_dim - Di, 1, w->dzxd + Di, in_dim,
			 P->in_w + (size_t) Di * d, d, 0, dU, d);
	for (int s = 0; s < w->S; s++)
	{
		size_t		gr = w->off[s] + w->n[s] - 1;

		t4r_gemm(1, 0, Di, d, 1, 1, w->dzxd + gr * in_dim, in_dim, A->U + gr * d, d, 1,
				 GP->in_w, d);
		t4r_gemm(0, 0, 1, d, Di, 1, w->dzxd + gr * in_dim, in_dim, P->in_w, d, 1,
				 dU + gr * d, d);
	}
}

/* convT [K, C] (OVERWRITTEN) = conv_w [C, K] transposed: tap k's weights
 * of every channel contiguous */
static void
conv_weights_t(const lop *o)
{
	int			C = o->D->conv_dim,
				K = o->D->K;

	for (int c = 0; c < C; c++)
		for (int k = 0; k < K; k++)
			o->w->convT[(size_t) k * C + c] = o->P->conv_w[(size_t) c * K + k];
}

/* one row of the width-4 causal conv + hardswish: o = b + sum_k w_k v_k
 * (convT rows w_k = convT + k C), xo = hardswish(o); restrict arguments so
 * that the loop vectorises */
static inline __attribute__((always_inline)) void
conv4_row(int C, const t4r_real *restrict convT, const t4r_real *restrict cb,
		  const t4r_real *restrict v0, const t4r_real *restrict v1,
		  const t4r_real *restrict v2, const t4r_real *restrict v3,
		  t4r_real *restrict o, t4r_real *restrict xo, const int store_pre)
{
	const t4r_real *restrict w0 = convT,
			   *restrict w1 = convT + C,
			   *restrict w2 = convT + 2 * C,
			   *restrict w3 = convT + 3 * C;

	for (int c = 0; c < C; c++)
	{
		t4r_real	acc = cb[c] + w0[c] * v0[c] + w1[c] * v1[c] + w2[c] * v2[c] +
			w3[c] * v3[c];

		if (store_pre)
			o[c] = acc;
		xo[c] = m_hardswish(acc);
	}
}

/*
 * 3.2 causal conv (width K, per channel) + hardswish on the xBC columns of
 * zxd: cpre [M, C] (pre-activation, kept for a backward pass) and xbc
 * [M, C] OVERWRITTEN, C = Di + 2N; convT OVERWRITTEN.
 */
T4R_CLONES static void
conv_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P;
	t4r_lact   *A = o->A;
	int			C = o->D->conv_dim,
				K = o->D->K,
				Di = o->D->Di,
				in_dim = o->D->in_dim;
	t4r_real   *convT = w->convT;

	conv_weights_t(o);
	for (int s = 0; s < w->S; s++)
	{
		size_t		off = w->off[s];
		int			n = w->n[s];

		if (K == 4)
		{
			/* the default width: one fused pass per row; the pre-activation
			 * is kept only for a backward pass */
#define CONV4_ROW(pre) \
			conv4_row(C, convT, P->conv_b, \
					  l >= 3 ? A->zxd + (off + l - 3) * in_dim + Di : w->zeros, \
					  l >= 2 ? A->zxd + (off + l - 2) * in_dim + Di : w->zeros, \
					  l >= 1 ? A->zxd + (off + l - 1) * in_dim + Di : w->zeros, \
					  A->zxd + (off + l) * in_dim + Di, \
					  A->cpre + (off + l) * C, A->xbc + (off + l) * C, pre)
			if (w->train)
				for (int l = 0; l < n; l++)
					CONV4_ROW(1);
			else
				for (int l = 0; l < n; l++)
					CONV4_ROW(0);
#undef CONV4_ROW
			continue;
		}
		for (int l = 0; l < n; l++)
		{
			t4r_real   *restrict pre = A->cpre + (off + l) * C;
			t4r_real   *restrict xo = A->xbc + (off + l) * C;

			for (int c = 0; c < C; c++)
				pre[c] = P->conv_b[c];
			for (int k = 0; k < K; k++)
			{
				int			j = l - (K - 1) + k;
				const t4r_real *restrict v;
				const t4r_real *restrict wk = convT + (size_t) k * C;

				if (j < 0)
					continue;
				v = A->zxd + (off + j) * in_dim + Di;
				for (int c = 0; c < C; c++)
					pre[c] += wk[c] * v[c];
			}
			for (int c = 0; c < C; c++)
				xo[c] = m_hardswish(pre[c]);
		}
	}
}

/* one input row of the width-4 causal conv's backward, gather form: the
 * input gradient dv = d0 w0 + d1 w1 + d2 w2 + d3 w3 (d_k the output
 * gradient rows that read this input through tap k, zeros past the end) and
 * the weight gradients dw_k += d_k v.  Every pointer is a separate restrict
 * argument (the taps are disjoint rows of convT / dconvT) so that the loop
 * vectorises; it was scalar with the stores through plain pointers. */
static inline __attribute__((always_inline)) void
conv4_bwd_row(int C, const t4r_real *restrict w0, const t4r_real *restrict w1,
			  const t4r_real *restrict w2, const t4r_real *restrict w3,
			  const t4r_real *restrict d0, const t4r_real *restrict d1,
			  const t4r_real *restrict d2, const t4r_real *restrict d3,
			  const t4r_real *restrict v, t4r_real *restrict dv,
			  t4r_real *restrict dw0, t4r_real *restrict dw1,
			  t4r_real *restrict dw2, t4r_real *restrict dw3)
{
	for (int c = 0; c < C; c++)
	{
		dv[c] = d0[c] * w0[c] + d1[c] * w1[c] + d2[c] * w2[c] + d3[c] * w3[c];
		dw0[c] += d0[c] * v[c];
		dw1[c] += d1[c] * v[c];
		dw2[c] += d2[c] * v[c];
		dw3[c] += d3[c] * v[c];
	}
}

/* the general width's scatter form of one sample's conv input gradient:
 * the xBC columns of dzxd OVERWRITTEN, dconvT ACCUMULATED */
T4R_CLONES static void
conv_bwd_scatter(const lop *o, size_t off, int n)
{
	t4r_ws	   *w = o->w;
	int			C = o->D->conv_dim,
				K = o->D->K,
				Di = o->D->Di,
				in_dim = o->D->in_dim;

	for (int l = 0; l < n; l++)
		memset(w->dzxd + (off + l) * in_dim + Di, 0, sizeof(t4r_real) * C);
	for (int l = 0; l < n; l++)
	{
		const t4r_real *restrict dc = w->dxbc + (off + l) * C;

		for (int k = 0; k < K; k++)
		{
			int			j = l - (K - 1) + k;
			t4r_real   *restrict dv;
			const t4r_real *restrict v;
			const t4r_real *restrict wk = w->convT + (size_t) k * C;
			t4r_real   *restrict dwk = w->dconvT + (size_t) k * C;

			if (j < 0)
				continue;
			dv = w->dzxd + (off + j) * in_dim + Di;
			v = o->A->zxd + (off + j) * in_dim + Di;
			for (int c = 0; c < C; c++)
			{
				dv[c] += dc[c] * wk[c];
				dwk[c] += dc[c] * v[c];
			}
		}
	}
}

/*
 * dxbc [M, C] (gradient of xbc) -> dxbc OVERWRITTEN with the gradient of
 * the pre-activation, the xBC columns of dzxd OVERWRITTEN; conv_w, conv_b
 * and, once a sample's rows of dzxd are complete (z and dt columns written
 * by gnorm_backward and delta_backward), in_b gradients ACCUMULATED.
 * convT, dconvT OVERWRITTEN.
 */
T4R_CLONES static void
conv_backward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *GP = o->GP;
	t4r_lact   *A = o->A;
	int			C = o->D->conv_dim,
				K = o->D->K,
				Di = o->D->Di,
				in_dim = o->D->in_dim;
	t4r_real   *convT = w->convT;

	conv_weights_t(o);
	memset(w->dconvT, 0, sizeof(t4r_real) * K * C);
	for (int s = 0; s < w->S; s++)
	{
		size_t		off = w->off[s];
		int			n = w->n[s];

		for (int l = 0; l < n; l++)
		{
			t4r_real   *restrict dc = w->dxbc + (off + l) * C;
			const t4r_real *restrict cp = A->cpre + (off + l) * C;

			t4r_real   *restrict gcb = GP->conv_b;

			for (int c = 0; c < C; c++)
			{
				dc[c] *= m_dhardswish(cp[c]);
				gcb[c] += dc[c];
			}
		}
		if (K == 4)
		{
			/* gather form: each input row's gradient written once */
			for (int j = 0; j < n; j++)
			{
				const t4r_real *d3 = w->dxbc + (off + j) * C;

				conv4_bwd_row(C, convT, convT + C, convT + 2 * C, convT + 3 * C,
							  j + 3 < n ? d3 + 3 * C : w->zeros,
							  j + 2 < n ? d3 + 2 * C : w->zeros,
							  j + 1 < n ? d3 + C : w->zeros, d3,
							  A->zxd + (off + j) * in_dim + Di,
							  w->dzxd + (off + j) * in_dim + Di,
							  w->dconvT, w->dconvT + C, w->dconvT + 2 * C, w->dconvT + 3 * C);
			}
		}
		else
			conv_bwd_scatter(o, off, n);
		/* the sample's rows of dzxd are complete: in_proj bias gradient
		 * while they are in cache */
		if (o->lastr)
		{
			colsum_add(w->dzxd + off * in_dim + Di, n, in_dim - Di, in_dim, GP->in_b + Di);
			colsum_add(w->dzxd + (off + n - 1) * in_dim, 1, Di, in_dim, GP->in_b);
		}
		else
			colsum_add(w->dzxd + off * in_dim, n, in_dim, in_dim, GP->in_b);
	}
	for (int c = 0; c < C; c++)
		for (int k = 0; k < K; k++)
			GP->conv_w[(size_t) c * K + k] += w->dconvT[(size_t) k * C + c];
}

/*
 * 3.3 + 3.7 time path (is_time; timepath.c / timepath_robust.c): T [R, L]
 * -> tdt [R, L] (the dt scale of delta_forward) and, except in the last
 * layer, the next layer's T [R, L] (gate residual + time layer norm); both
 * and the time cache OVERWRITTEN, time dropout masks drawn in training.
 */
T4R_CLONES static void
time_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_dims *D = o->D;
	t4r_lact   *A = o->A;
	int			S = w->S,
				H = D->H,
				L = D->L,
				K = D->K;
	const t4r_real *mm = NULL,
			   *mg = NULL;
	t4r_time_params tp;

	if (o->ptd > 0)
	{
		for (int s = 0; s < S; s++)
		{
			mask_gen(A->mmlp + (size_t) s * H * L, (size_t) H * L, o->ptd, o->cfg, o->step,
					 o->idx0 + s, T4R_SITE_LAYER(o->li, T4R_LSITE_TMLP));
			if (!o->last)
				mask_gen(A->mgate + (size_t) s * H * L, (size_t) H * L, o->ptd, o->cfg,
						 o->step, o->idx0 + s, T4R_SITE_LAYER(o->li, T4R_LSITE_TGATE));
		}
		mm = A->mmlp;
		mg = o->last ? NULL : A->mgate;
	}
	if (D->robust)
	{
		t4r_rtime_fwd(&o->P->tp, S * H, H, L, K, D->TJ, w->n, A->T, mm, mg,
					  A->tdt, o->last ? NULL : w->la[o->li + 1].T, A->tcache);
		return;
	}
	/* inference: the MLP and gate through the row-stable kernel */
	tp = o->P->tp;
	if (o->ip)
	{
		tp.w1p = o->ip->l[o->li].tw1;
		tp.w2p = o->ip->l[o->li].tw2;
		tp.gwp = o->ip->l[o->li].tgw;
	}
	t4r_time_fwd(&tp, S * H, H, L, K, D->G, o->cfg->norm_eps, A->T, mm, mg,
				 A->tdt, o->last ? NULL : w->la[o->li + 1].T, A->tcache);
}

/* dtdt [R, L] (gradient of tdt) and dTn [R, L] (of the next layer's T; not
 * read in the last layer) -> dT [R, L] OVERWRITTEN, time path parameter
 * gradients ACCUMULATED */
T4R_CLONES static void
time_backward(const lop *o, const t4r_real *dTn, t4r_real *dT)
{
	t4r_ws	   *w = o->w;
	const t4r_dims *D = o->D;
	t4r_lact   *A = o->A;
	int			S = w->S,
				H = D->H,
				L = D->L,
				K = D->K;
	const t4r_real *mm = o->ptd > 0 ? A->mmlp : NULL;
	const t4r_real *mg = (o->ptd > 0 && !o->last) ? A->mgate : NULL;

	if (D->robust)
		t4r_rtime_bwd(&o->P->tp, &o->GP->tp, S * H, H, L, K, D->TJ, w->n, A->T, mm, mg,
					  A->tcache, w->dtdt, o->last ? NULL : dTn, dT, w->tscratch);
	else
		t4r_time_bwd(&o->P->tp, &o->GP->tp, S * H, H, L, K, D->G, o->cfg->norm_eps, A->T,
					 mm, mg, A->tcache, w->dtdt, o->last ? NULL : dTn, dT, w->tscratch);
}

/*
 * 3.4 step size: delta [M, H] = softplus(dt * tdt + dt_bias) (OVERWRITTEN),
 * dt the last H columns of zxd, tdt [R, L] the time path's scale (1
 * without is_time).
 */
T4R_CLONES static void
delta_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_dims *D = o->D;
	t4r_lact   *A = o->A;
	int			H = D->H,
				L = D->L,
				in_dim = D->in_dim,
				dtc = 2 * D->Di + 2 * D->N;

	for (int s = 0; s < w->S; s++)
	{
		size_t		off = w->off[s];
		int			n = w->n[s];

		for (int l = 0; l < n; l++)
		{
			const t4r_real *dt = A->zxd + (off + l) * in_dim + dtc;
			t4r_real   *dl = A->delta + (off + l) * H;

			for (int h = 0; h < H; h++)
			{
				t4r_real	v = dt[h];

				if (D->is_time)
					v *= A->tdt[((size_t) s * H + h) * L + l];
				dl[h] = t4r_softplus(v + o->P->dt_bias[h]);
			}
		}
	}
}

/* ddelta [M, H] -> the dt columns of dzxd OVERWRITTEN, dtdt [R, L]
 * OVERWRITTEN (is_time; 0 at padded positions), dt_bias gradient
 * ACCUMULATED */
T4R_CLONES static void
delta_backward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_dims *D = o->D;
	t4r_lact   *A = o->A;
	int			H = D->H,
				L = D->L,
				in_dim = D->in_dim,
				dtc = 2 * D->Di + 2 * D->N;

	for (int s = 0; s < w->S; s++)
	{
		size_t		off = w->off[s];
		int			n = w->n[s];

		for (int l = 0; l < n; l++)
		{
			const t4r_real *dt = A->zxd + (off + l) * in_dim + dtc;
			t4r_real   *ddt = w->dzxd + (off + l) * in_dim + dtc;
			const t4r_real *dd = w->ddelta + (off + l) * H;

			for (int h = 0; h < H; h++)
			{
				t4r_real	tf = D->is_time ? A->tdt[((size_t) s * H + h) * L + l] : 1;
				t4r_real	gp = dd[h] * t4r_dsoftplus(dt[h] * tf + o->P->dt_bias[h]);

				o->GP->dt_bias[h] += gp;
				ddt[h] = gp * tf;
				if (D->is_time)
					w->dtdt[((size_t) s * H + h) * L + l] = gp * dt[h];
			}
		}
		if (D->is_time)
			for (int h = 0; h < H; h++)
				for (int l = n; l < L; l++)
					w->dtdt[((size_t) s * H + h) * L + l] = 0;
	}
}

/* the SSD's decay a [H] = -exp(A_log), OVERWRITTEN after convT's [K, C] */
static t4r_real *
ssd_a(const lop *o)
{
	t4r_real   *Aneg = o->w->convT + (size_t) o->D->K * o->D->conv_dim;

	for (int h = 0; h < o->D->H; h++)
		Aneg[h] = (t4r_real) (-exp((double) o->P->A_log[h]));
	return Aneg;
}

/*
 * 3.4 SSD (ssd.c) per sample over x | B | C (the xbc columns) and delta:
 * y [rows, Di] OVERWRITTEN (lastr: only each sample's last position).
 */
T4R_CLONES static void
ssd_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_dims *D = o->D;
	t4r_lact   *A = o->A;
	int			Di = D->Di,
				N = D->N,
				C = D->conv_dim,
				H = D->H;
	t4r_real   *Aneg = ssd_a(o);

	for (int s = 0; s < w->S; s++)
	{
		size_t		off = w->off[s];
		const t4r_real *x = A->xbc + off * C;

		/* inference (o->ip): the fixed-order products of rgemm.c */
		(o->ip ? t4r_ssd_fwd_fixed : t4r_ssd_fwd) (w->n[s], H, D->P, N, o->cfg->chunk_size, x, C,
												   x + Di, x + Di + N, C, A->delta + off * H,
												   Aneg, o->P->D, o->lastr,
												   o->lastr ? A->y + (size_t) s * Di : A->y + off * Di,
												   Di, w->ssd_ws);
	}
}

/* dy [rows, Di] -> dxbc [M, C] and ddelta [M, H] OVERWRITTEN, A_log and D
 * gradients ACCUMULATED (dA [H] OVERWRITTEN) */
T4R_CLONES static void
ssd_backward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_dims *D = o->D;
	t4r_lact   *A = o->A;
	int			Di = D->Di,
				N = D->N,
				C = D->conv_dim,
				H = D->H;
	t4r_real   *Aneg = ssd_a(o);

	memset(w->dA, 0, sizeof(t4r_real) * H);
	for (int s = 0; s < w->S; s++)
	{
		size_t		off = w->off[s];
		const t4r_real *x = A->xbc + off * C;
		t4r_real   *dx = w->dxbc + off * C;

		t4r_ssd_bwd(w->n[s], H, D->P, N, o->cfg->chunk_size, x, C, x + Di, x + Di + N, C,
					A->delta + off * H, Aneg, o->P->D, o->lastr,
					o->lastr ? w->dy + (size_t) s * Di : w->dy + off * Di, Di,
					dx, dx + Di, dx + Di + N, w->ddelta + off * H, w->dA, o->GP->D, w->ssd_ws);
	}
	for (int h = 0; h < H; h++)
		o->GP->A_log[h] += w->dA[h] * Aneg[h];
}

/*
 * 3.5 gated RMS norm: g = y * silu(z), yn [rows, Di] = g / sqrt(mean(g^2)
 * + eps) * norm_w; yn and rrs [rows] (the rstd) OVERWRITTEN.
 */
T4R_CLONES static void
gnorm_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	t4r_lact   *A = o->A;
	int			Di = o->D->Di,
				in_dim = o->D->in_dim;

	for (size_t r = 0; r < o->rows; r++)
	{
		/* local restrict pointers: under -fno-strict-aliasing the loops
		 * below stayed scalar reading through o->P */
		const t4r_real *restrict z = A->zxd + out_row(w, o->lastr, r) * in_dim;
		const t4r_real *restrict y = A->y + r * Di;
		t4r_real   *restrict yn = A->yn + r * Di;
		const t4r_real *restrict nw = o->P->norm_w;
		double		ss = 0,
					rs;

		t4r_real	rsr;

		for (int c = 0; c < Di; c++)
			yn[c] = y[c] * z[c] * m_sigmoid(z[c]);
		ss = sumsq(yn, Di);
		rs = 1.0 / sqrt(ss / Di + o->cfg->norm_eps);
		A->rrs[r] = (t4r_real) rs;
		rsr = (t4r_real) rs;
		for (int c = 0; c < Di; c++)
			yn[c] = yn[c] * rsr * nw[c];
	}
}

/* gated RMS norm backward of one row, after the reduction: dg = rs dyn nw -
 * k2 g, dy = dg z sg, dz = dg y sg (1 + z (1 - sg)); restrict arguments so
 * that the loop vectorises (it was scalar) */
static inline __attribute__((always_inline)) void
gnorm_bwd_row(int Di, t4r_real rs, t4r_real k2, const t4r_real *restrict dyn,
			  const t4r_real *restrict nw, const t4r_real *restrict gbuf,
			  const t4r_real *restrict sbuf, const t4r_real *restrict z,
			  const t4r_real *restrict y, t4r_real *restrict dy, t4r_real *restrict dz)
{
	for (int c = 0; c < Di; c++)
	{
		t4r_real	sg = sbuf[c];
		t4r_real	dg = rs * dyn[c] * nw[c] - k2 * gbuf[c];

		dy[c] = dg * z[c] * sg;
		dz[c] = dg * y[c] * sg * (1 + z[c] * (1 - sg));
	}
}

/* dyn [rows, Di] -> dy [rows, Di] and the z columns of dzxd (at out_row)
 * OVERWRITTEN, norm_w gradient ACCUMULATED; gtmp [2 Di] scratch */
T4R_CLONES static void
gnorm_backward(const lop *o)
{
	t4r_ws	   *w = o->w;
	t4r_lact   *A = o->A;
	int			Di = o->D->Di,
				in_dim = o->D->in_dim;

	for (size_t r = 0; r < o->rows; r++)
	{
		size_t		gr = out_row(w, o->lastr, r);
		const t4r_real *z = A->zxd + gr * in_dim;
		const t4r_real *y = A->y + r * Di;
		const t4r_real *dyn = w->dyn + r * Di;
		t4r_real   *dy = w->dy + r * Di;
		t4r_real   *dz = w->dzxd + gr * in_dim;
		t4r_real	rs = A->rrs[r];
		t4r_real   *gbuf = w->gtmp;
		t4r_real   *sbuf = w->gtmp + Di;
		t4r_real	k2;
		double		dot;

		for (int c = 0; c < Di; c++)
		{
			t4r_real	sg = m_sigmoid(z[c]);

			sbuf[c] = sg;
			gbuf[c] = y[c] * z[c] * sg;
		}
		for (int c = 0; c < Di; c++)
			o->GP->norm_w[c] += dyn[c] * gbuf[c] * rs;
		dot = dot3(dyn, o->P->norm_w, gbuf, Di);
		k2 = (t4r_real) ((double) rs * rs * rs * dot / Di);
		gnorm_bwd_row(Di, rs, k2, dyn, o->P->norm_w, gbuf, sbuf, z, y, dy, dz);
	}
}

/*
 * 3.6 + 3.8 out_proj, dropout, residual, LayerNorm_d: a [rows, d] =
 * Dropout(yn out_w^T + out_b) + U (no residual with one layer), hh = LN(a);
 * a, hh, a_mu, a_rs [rows] and the mask mo OVERWRITTEN.
 */
T4R_CLONES static void
out_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P;
	t4r_lact   *A = o->A;
	size_t		rows = o->rows;
	int			d = o->D->d,
				Di = o->D->Di;
	int			residual = o->D->layers > 1;

	linear_forward(rows, Di, d, A->yn, P->out_w, o->ip ? o->ip->l[o->li].out : NULL, P->out_b,
				   A->a);
	if (o->pd > 0)
		lop_masks(o, A->mo, d, o->lastr, T4R_LSITE_O);
	for (size_t r = 0; r < rows; r++)
	{
		t4r_real   *a = A->a + r * d;
		const t4r_real *u = A->U + out_row(w, o->lastr, r) * d;

		const t4r_real *restrict mo = o->pd > 0 ? A->mo + r * d : w->ones;
		const t4r_real *restrict uu = residual ? u : w->zeros;

		for (int c = 0; c < d; c++)
			a[c] = a[c] * mo[c] + uu[c];
		ln_fwd(a, d, P->ln_w, P->ln_b, o->cfg->norm_eps, A->hh + r * d,
			   &A->a_mu[r], &A->a_rs[r]);
	}
}

/* dhh [rows, d] (gradient of hh, FFN residual included) -> da [rows, d]
 * (gradient of a, read again by residual_backward), dob [rows, d], dyn
 * [rows, Di] OVERWRITTEN; ln, out_w, out_b gradients ACCUMULATED */
T4R_CLONES static void
out_backward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P,
			   *GP = o->GP;
	t4r_lact   *A = o->A;
	size_t		rows = o->rows;
	int			d = o->D->d,
				Di = o->D->Di;

	for (size_t r = 0; r < rows; r++)
		ln_bwd(A->a + r * d, w->dhh + r * d, d, P->ln_w, A->a_mu[r], A->a_rs[r],
			   w->da + r * d, GP->ln_w, GP->ln_b);
	dropout_linear_backward(w, rows, Di, d, w->da, o->pd > 0 ? A->mo : NULL, A->yn, P->out_w,
							w->dob, GP->out_w, GP->out_b, w->dyn);
}

/* the residual branch of out_forward: dU [M, d] (at out_row) ACCUMULATED
 * with da; runs after in_proj_backward, which OVERWRITES dU */
T4R_CLONES static void
residual_backward(const lop *o, t4r_real *dU)
{
	int			d = o->D->d;

	if (o->D->layers < 2)
		return;
	for (size_t r = 0; r < o->rows; r++)
	{
		t4r_real   *du = dU + out_row(o->w, o->lastr, r) * d;
		const t4r_real *da = o->w->da + r * d;

		for (int c = 0; c < d; c++)
			du[c] += da[c];
	}
}

/*
 * 3.9 FFN: f1 [rows, 4d] = hh fc1_w^T + fc1_b, h1 = Dropout(hardswish(f1)),
 * b [rows, d] = Dropout(h1 fc2_w^T + fc2_b) + hh, F = LN(b) (eps 1e-12);
 * f1, h1, b, F, b_mu, b_rs and the masks m1, m2 OVERWRITTEN.
 */
T4R_CLONES static void
ffn_forward(const lop *o)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P;
	t4r_lact   *A = o->A;
	size_t		rows = o->rows;
	size_t		tot = rows * o->D->ffn_dim;
	int			d = o->D->d,
				f = o->D->ffn_dim;

	linear_forward(rows, d, f, A->hh, P->fc1_w, o->ip ? o->ip->l[o->li].fc1 : NULL, P->fc1_b,
				   A->f1);
	{
		/* local restrict pointers: under -fno-strict-aliasing a store
		 * through A->h1 could change A's fields, and the loop stayed scalar */
		t4r_real   *restrict h1 = A->h1;
		const t4r_real *restrict f1 = A->f1;
		const t4r_real *restrict m1 = A->m1;

		if (o->pd > 0)
		{
			lop_masks(o, A->m1, f, o->lastr, T4R_LSITE_FFN1);
			lop_masks(o, A->m2, d, o->lastr, T4R_LSITE_FFN2);
			for (size_t i = 0; i < tot; i++)
				h1[i] = m_hardswish(f1[i]) * m1[i];
		}
		else
			for (size_t i = 0; i < tot; i++)
				h1[i] = m_hardswish(f1[i]);
	}
	linear_forward(rows, f, d, A->h1, P->fc2_w, o->ip ? o->ip->l[o->li].fc2 : NULL, P->fc2_b,
				   A->b);
	for (size_t r = 0; r < rows; r++)
	{
		t4r_real   *b = A->b + r * d;
		const t4r_real *hh = A->hh + r * d;

		const t4r_real *restrict m2 = o->pd > 0 ? A->m2 + r * d : w->ones;

		for (int c = 0; c < d; c++)
			b[c] = b[c] * m2[c] + hh[c];
		ln_fwd(b, d, P->fln_w, P->fln_b, 1e-12, A->F + r * d, &A->b_mu[r], &A->b_rs[r]);
	}
}

/* dF [rows, d] (gradient of F) -> dhh [rows, d] (gradient of hh through fc1
 * and the residual) OVERWRITTEN, db, df2 [rows, d], dh1 [rows, 4d]
 * OVERWRITTEN; fln, fc2, fc1 gradients ACCUMULATED */
T4R_CLONES static void
ffn_backward(const lop *o, const t4r_real *dF)
{
	t4r_ws	   *w = o->w;
	const t4r_lparams *P = o->P,
			   *GP = o->GP;
	t4r_lact   *A = o->A;
	size_t		rows = o->rows;
	int			d = o->D->d,
				f = o->D->ffn_dim;

	for (size_t r = 0; r < rows; r++)
		ln_bwd(A->b + r * d, dF + r * d, d, P->fln_w, A->b_mu[r], A->b_rs[r],
			   w->db + r * d, GP->fln_w, GP->fln_b);
	dropout_linear_backward(w, rows, f, d, w->db, o->pd > 0 ? A->m2 : NULL, A->h1, P->fc2_w,
							w->df2, GP->fc2_w, GP->fc2_b, w->dh1);
	/* dropout + hardswish; fc1 bias gradient */
	for (size_t r = 0; r < rows; r++)
	{
		const t4r_real *restrict m1 = o->pd > 0 ? A->m1 + r * f : w->ones;
		const t4r_real *restrict f1 = A->f1 + r * f;
		t4r_real   *restrict dh = w->dh1 + r * f;
		t4r_real   *restrict gb = GP->fc1_b;

		for (int c = 0; c < f; c++)
		{
			dh[c] *= m1[c] * m_dhardswish(f1[c]);
			gb[c] += dh[c];
		}
	}
	/* fc1, then the residual */
	linear_backward(rows, d, f, w->dh1, A->hh, P->fc1_w, GP->fc1_w, w->dhh);
	for (size_t r = 0; r < rows; r++)
	{
		t4r_real   *restrict dhh = w->dhh + r * d;
		const t4r_real *restrict db = w->db + r * d;

		for (int c = 0; c < d; c++)
			dhh[c] += db[c];
	}
}

/* ------------------------------------------------------------------ */
/* a layer: the ops in docs/MODEL.md's order, and back                      */
/* ------------------------------------------------------------------ */

/* the per-op parity hook after an op (model_internal.h) */
#define OP_HOOK(w, li, op, bwd) \
	do { if ((w)->dbg) (w)->dbg((w)->dbg_ctx, (li), (op), (bwd)); } while (0)

/* U [M, d] and (is_time) T [R, L] of layer li -> F [rows, d] (the next
 * layer's U, or hidden) and the next layer's T */
static void
layer_fwd(t4r_ws *w, int li, uint64_t step, int idx0)
{
	lop			o;

	lop_init(&o, w, li, NULL, step, idx0);
	in_proj_forward(&o);
	OP_HOOK(w, li, "in_proj", 0);
	conv_forward(&o);
	OP_HOOK(w, li, "conv", 0);
	if (o.D->is_time)
	{
		time_forward(&o);
		OP_HOOK(w, li, "time", 0);
	}
	delta_forward(&o);
	OP_HOOK(w, li, "delta", 0);
	ssd_forward(&o);
	OP_HOOK(w, li, "ssd", 0);
	gnorm_forward(&o);
	OP_HOOK(w, li, "gnorm", 0);
	out_forward(&o);
	OP_HOOK(w, li, "out", 0);
	ffn_forward(&o);
	OP_HOOK(w, li, "ffn", 0);
}

/* dF: [rows, d] gradient of the layer output; writes dU [M, d] (gradient of
 * the layer input); dTn: gradient of T_new (NULL for the last layer);
 * dT: gradient of T (written); parameter gradients ACCUMULATED into g */
static void
layer_bwd(t4r_ws *w, int li, const t4r_pview *g, const t4r_real *dF, t4r_real *dU,
		  const t4r_real *dTn, t4r_real *dT)
{
	lop			o;

	lop_init(&o, w, li, g, 0, 0);
	w->dbg_dF = (t4r_real *) dF;
	w->dbg_dU = dU;
	w->dbg_dT = dT;
	ffn_backward(&o, dF);
	OP_HOOK(w, li, "ffn", 1);
	out_backward(&o);
	OP_HOOK(w, li, "out", 1);
	gnorm_backward(&o);
	OP_HOOK(w, li, "gnorm", 1);
	ssd_backward(&o);
	OP_HOOK(w, li, "ssd", 1);
	delta_backward(&o);
	OP_HOOK(w, li, "delta", 1);
	if (o.D->is_time)
	{
		time_backward(&o, dTn, dT);
		OP_HOOK(w, li, "time", 1);
	}
	conv_backward(&o);
	OP_HOOK(w, li, "conv", 1);
	in_proj_backward(&o, dU);
	OP_HOOK(w, li, "in_proj", 1);
	residual_backward(&o, dU);
	OP_HOOK(w, li, "residual", 1);
}

/* ------------------------------------------------------------------ */
/* the model's input and loss, forward and backward                    */
/* ------------------------------------------------------------------ */

/* packs the last L items of each sample into the rows of w (n, off,
 * items, S, M); T4R_EINVAL on a bad sample before anything is computed */
static int
ws_pack(t4r_ws *w, const t4r_sample *smp, int S)
{
	const t4r_dims *D = &w->D;
	int			L = D->L;
	size_t		M = 0;

	for (int s = 0; s < S; s++)
	{
		int			n = smp[s].n;
		int			nn,
					start;

		if (n < 1 || smp[s].items == NULL || (D->is_time && smp[s].ts == NULL))
			return T4R_EINVAL;
		nn = n > L ? L : n;
		start = n - nn;
		w->n[s] = nn;
		w->off[s] = M;
		for (int l = 0; l < nn; l++)
		{
			int32_t		it = smp[s].items[start + l];

			if (it < 0 || it >= D->V)
				return T4R_EINVAL;
			/* times beyond T4R_TIME_ABS_MAX would give non-finite features */
			if (D->is_time && !t4r_time_ok(smp[s].ts[start + l]))
				return T4R_EINVAL;
			w->items[M + l] = it;
		}
		M += nn;
	}
	w->S = S;
	w->M = M;
	return T4R_OK;
}

/*
 * 1. embedding, dropout, in_layer_norm: emb [M, d] = Dropout(E[items])
 * (memb the mask), the first layer's U [M, d] = LN(emb); emb, memb, U,
 * e_mu, e_rs [M] OVERWRITTEN.
 */
T4R_CLONES static void
embed_forward(t4r_ws *w, double pd, uint64_t step, int idx0)
{
	const t4r_config *cfg = &w->m->cfg;
	const t4r_pview *pv = &w->pv;
	size_t		M = w->M;
	int			d = w->D.d;

	for (size_t r = 0; r < M; r++)
		memcpy(w->emb + r * d, pv->emb + (size_t) w->items[r] * d, sizeof(t4r_real) * d);
	if (pd > 0)
	{
		for (int s = 0; s < w->S; s++)
			mask_gen(w->memb + w->off[s] * d, (size_t) w->n[s] * d, pd, cfg, step, idx0 + s,
					 T4R_SITE_EMB);
		for (size_t i = 0; i < M * d; i++)
			w->emb[i] *= w->memb[i];
	}
	for (size_t r = 0; r < M; r++)
		ln_fwd(w->emb + r * d, d, pv->in_ln_w, pv->in_ln_b, cfg->norm_eps,
			   w->la[0].U + r * d, &w->e_mu[r], &w->e_rs[r]);
}

/* dX [M, d] (gradient of the first layer's U) -> dX OVERWRITTEN with the
 * gradient of emb; in_ln and embedding-row gradients ACCUMULATED (row 0,
 * padding, gets nothing from the lookup) */
T4R_CLONES static void
embed_backward(t4r_ws *w, const t4r_pview *g, double pd, t4r_real *dX)
{
	const t4r_pview *pv = &w->pv;
	int			d = w->D.d;

	for (size_t r = 0; r < w->M; r++)
	{
		t4r_real   *dx = dX + r * d;
		int32_t		it = w->items[r];

		ln_bwd(w->emb + r * d, dx, d, pv->in_ln_w, w->e_mu[r], w->e_rs[r], dx,
			   g->in_ln_w, g->in_ln_b);
		if (it != 0)
		{
			t4r_real   *ge = g->emb + (size_t) it * d;

			if (pd > 0)
			{
				const t4r_real *mk = w->memb + r * d;

				for (int c = 0; c < d; c++)
					ge[c] += dx[c] * mk[c];
			}
			else
				for (int c = 0; c < d; c++)
					ge[c] += dx[c];
		}
	}
}

/*
 * 2. time features (is_time): the first layer's T [R, L] OVERWRITTEN, td
 * [S, L] (the time differences after dropout) OVERWRITTEN.  Official form:
 * td = differences of the padded times, T = LayerNorm_L(Dropout(td)) on
 * every head (t_mu, t_rs [S] OVERWRITTEN).  Robust form (timepath.h):
 * log-scaled gaps, a per-head affine map, zero in padded slots.
 */
T4R_CLONES static void
time_features_forward(t4r_ws *w, const t4r_sample *smp, double pd, uint64_t step, int idx0)
{
	const t4r_dims *D = &w->D;
	const t4r_config *cfg = &w->m->cfg;
	const t4r_pview *pv = &w->pv;
	int			L = D->L,
				H = D->H;

	for (int s = 0; s < w->S; s++)
	{
		int			n = w->n[s];
		int			start = smp[s].n - n;
		const double *ts = smp[s].ts + start;
		t4r_real   *td = w->td + (size_t) s * L;
		t4r_real   *T = w->la[0].T + (size_t) s * H * L;

		if (D->robust)
			t4r_rtime_features(ts, n, L, cfg->time_scale, td);
		else
		{
			td[0] = 0;
			for (int l = 1; l < L; l++)
			{
				double		a = l < n ? ts[l] : 0,
							b = l - 1 < n ? ts[l - 1] : 0;

				td[l] = (t4r_real) (a - b);
			}
		}
		if (pd > 0)
		{
			/* T's first row as a temporary for the mask */
			mask_gen(T, L, pd, cfg, step, idx0 + s, T4R_SITE_TD);
			for (int l = 0; l < L; l++)
				td[l] *= T[l];
		}
		if (D->robust)
		{
			for (int h = 0; h < H; h++)
				for (int l = 0; l < L; l++)
					T[(size_t) h * L + l] = l < n ? pv->tln_w[h] * td[l] + pv->tln_b[h] : 0;
			continue;
		}
		t4r_layernorm_fwd(td, L, pv->tln_w, pv->tln_b, cfg->norm_eps, T,
						  &w->t_mu[s], &w->t_rs[s]);
		for (int h = 1; h < H; h++)
			memcpy(T + (size_t) h * L, T, sizeof(t4r_real) * L);
	}
}

/* dT [R, L] (gradient of the first layer's T) -> layer_norm_time (robust:
 * the per-head affine map) gradients ACCUMULATED; dtsum, dtmp [L] scratch */
T4R_CLONES static void
time_features_backward(t4r_ws *w, const t4r_pview *g, const t4r_real *dT)
{
	const t4r_dims *D = &w->D;
	const t4r_pview *pv = &w->pv;
	int			L = D->L,
				H = D->H;

	for (int s = 0; s < w->S; s++)
	{
		const t4r_real *dTs = dT + (size_t) s * H * L;

		if (D->robust)
		{
			const t4r_real *td = w->td + (size_t) s * L;

			for (int h = 0; h < H; h++)
			{
				double		aw = 0,
							ab = 0;

				for (int l = 0; l < w->n[s]; l++)
				{
					aw += (double) dTs[(size_t) h * L + l] * td[l];
					ab += dTs[(size_t) h * L + l];
				}
				g->tln_w[h] += (t4r_real) aw;
				g->tln_b[h] += (t4r_real) ab;
			}
			continue;
		}
		for (int l = 0; l < L; l++)
		{
			t4r_real	acc = 0;

			for (int h = 0; h < H; h++)
				acc += dTs[(size_t) h * L + l];
			w->dtsum[l] = acc;
		}
		t4r_layernorm_bwd(w->td + (size_t) s * L, w->dtsum, L, pv->tln_w, w->t_mu[s],
						  w->t_rs[s], w->dtmp, g->tln_w, g->tln_b);
	}
}

T4R_CLONES int
t4r_ws_forward(t4r_ws *w, const t4r_sample *smp, int S, int idx0, int training,
			   uint64_t step)
{
	const t4r_dims *D = &w->D;
	double		pd = training ? w->m->cfg.dropout_prob : 0;
	int			rc;

	if (S < 1 || S > w->Smax)
		return T4R_EINVAL;
	if (training && !w->train)
		return T4R_EINVAL;
	if ((rc = ws_pack(w, smp, S)) != T4R_OK)
		return rc;
	w->training = training;
	embed_forward(w, pd, step, idx0);
	OP_HOOK(w, -1, "embed", 0);
	if (D->is_time)
	{
		time_features_forward(w, smp, pd, step, idx0);
		OP_HOOK(w, -1, "time_features", 0);
	}
	for (int li = 0; li < D->layers; li++)
		layer_fwd(w, li, step, idx0);
	return T4R_OK;
}

/* scores of rows r0 .. r0+nr-1 for the one sequence of w (S = 1): each
 * row's dot product is computed by the same GEMV kernel whatever the block,
 * as long as blocks start at multiples of 16 rows (test_model checks that
 * blocked and full scores are bitwise equal) */
void
t4r_ws_scores_rows(t4r_ws *w, int r0, int nr, t4r_real *scores)
{
	const t4r_dims *D = &w->D;

#ifdef T4R_DOUBLE
	cblas_dgemv(CblasRowMajor, CblasNoTrans, nr, D->d, 1, w->pv.emb + (size_t) r0 * D->d, D->d,
				w->hidden, 1, 0, scores, 1);
#else
	cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, D->d, 1, w->pv.emb + (size_t) r0 * D->d, D->d,
				w->hidden, 1, 0, scores, 1);
#endif
}

void
t4r_ws_scores(t4r_ws *w, t4r_real *scores)
{
	const t4r_dims *D = &w->D;

	if (w->S == 1)
	{
		/* one sequence: one GEMV over the embedding in place (sgemm would
		 * pack the whole [V, d] table first, every call) */
		t4r_ws_scores_rows(w, 0, D->V, scores);
		return;
	}
	t4r_gemm(0, 1, w->S, D->V, D->d, 1, w->hidden, D->d, w->pv.emb, D->d, 0, scores, D->V);
}

/*
 * all_positions: the cross-entropy of every loss position (rows of w->hidden,
 * all of the last layer's rows in this mode) in runs of at most lchunk
 * contiguous rows: logits = hidden E^T, softmax, dlogits scaled by `scale`,
 * dE += dlogits^T hidden, dF = dlogits E (rows without a loss: dF = 0).
 */
static int
allpos_loss(t4r_ws *w, const t4r_sample *smp, const t4r_pview *g, double scale,
			double *loss_sum)
{
	const t4r_dims *D = &w->D;
	int			V = D->V,
				d = D->d;
	size_t		M = w->M;
	int32_t    *rt = w->rtgt;
	t4r_real   *dF = w->dU0;
	double		lsum = 0;

	/* target of every row (-1: no loss), all checked before any gradient */
	for (int s = 0; s < w->S; s++)
	{
		int			n = w->n[s];
		int			start = smp[s].n - n;
		int			lf;

		if (smp[s].targets)
		{
			lf = smp[s].loss_from - start;
			lf = lf < 0 ? 0 : lf > n ? n : lf;
		}
		else
			lf = n - 1;
		for (int l = 0; l < n; l++)
		{
			int32_t		tg = -1;

			if (l >= lf)
			{
				tg = smp[s].targets ? smp[s].targets[start + l] : smp[s].target;
				if (tg < 0 || tg >= V)
					return T4R_EINVAL;
			}
			rt[w->off[s] + l] = tg;
		}
	}
	memset(dF, 0, sizeof(t4r_real) * M * d);
	for (size_t r0 = 0; r0 < M;)
	{
		size_t		cnt = 0;
		const t4r_real *hid;

		if (rt[r0] < 0)
		{
			r0++;
			continue;
		}
		while (r0 + cnt < M && cnt < (size_t) w->lchunk && rt[r0 + cnt] >= 0)
			cnt++;
		hid = w->hidden + r0 * d;
		t4r_gemm(0, 1, (int) cnt, V, d, 1, hid, d, w->pv.emb, d, 0, w->logits, V);
		for (size_t i = 0; i < cnt; i++)
			lsum += xent_row_cfg(w->logits + i * V, V, rt[r0 + i], NULL, 1,
								 w->m->cfg.label_smoothing, scale);
		t4r_gemm(1, 0, V, d, (int) cnt, 1, w->logits, V, hid, d, 1, g->emb, d);
		t4r_gemm(0, 0, (int) cnt, d, V, 1, w->logits, V, w->pv.emb, d, 0, dF + r0 * d, d);
		r0 += cnt;
	}
	*loss_sum = lsum;
	return T4R_OK;
}


/*
 * prefixes: the cross-entropy of each sample's last row (hidden [S, d]):
 * logits [S, V] = hidden E^T, dlogits in place scaled by `scale`, the
 * embedding gradient ACCUMULATED with dlogits^T hidden, dF [S, d] (w->dU0)
 * OVERWRITTEN with dlogits E.
 */
T4R_CLONES static int
prefix_loss(t4r_ws *w, const t4r_sample *smp, const t4r_pview *g, double scale,
			double *loss_sum)
{
	int			S = w->S,
				V = w->D.V,
				d = w->D.d;
	double		lsum = 0;
	double		eps = w->m->cfg.label_smoothing;
	int			tt = w->m->cfg.tie_targets;

	for (int s = 0; s < S; s++)
	{
		if (smp[s].target < 0 || smp[s].target >= V)
			return T4R_EINVAL;
		if (tt && smp[s].soft != NULL && smp[s].nsoft > 1)
		{
			if (smp[s].soft[0] != smp[s].target)
				return T4R_EINVAL;
			for (int j = 1; j < smp[s].nsoft; j++)
				if (smp[s].soft[j] < 0 || smp[s].soft[j] >= V)
					return T4R_EINVAL;
		}
	}
	/* scores and fused softmax / cross-entropy */
	t4r_ws_scores(w, w->logits);
	for (int s = 0; s < S; s++)
		lsum += xent_row_cfg(w->logits + (size_t) s * V, V, smp[s].target,
							 tt ? smp[s].soft : NULL, tt ? smp[s].nsoft : 1,
							 eps, scale);
	*loss_sum = lsum;
	/* dE += dlogits^T hidden; dhidden = dlogits E */
	t4r_gemm(1, 0, V, d, S, 1, w->logits, V, w->hidden, d, 1, g->emb, d);
	t4r_gemm(0, 0, S, d, V, 1, w->logits, V, w->pv.emb, d, 0, w->dU0, d);
	return T4R_OK;
}

T4R_CLONES int
t4r_ws_backward(t4r_ws *w, const t4r_sample *smp, const t4r_pview *g, double scale,
				double *loss_sum)
{
	const t4r_dims *D = &w->D;
	double		pd = w->training ? w->m->cfg.dropout_prob : 0;
	t4r_real   *dF = w->dU0,
			   *dU = w->dU1;
	t4r_real   *dTn = NULL,
			   *dT = w->dT0;
	int			rc;

	if (!w->train)
		return T4R_EINVAL;
	rc = w->allpos ? allpos_loss(w, smp, g, scale, loss_sum) :
		prefix_loss(w, smp, g, scale, loss_sum);
	if (rc != T4R_OK)
		return rc;
	w->dbg_dF = dF;
	OP_HOOK(w, -1, "loss", 1);
	/* layers, last first; dF, dU and dT, dTn ping-pong */
	for (int li = D->layers - 1; li >= 0; li--)
	{
		t4r_real   *tmp;

		layer_bwd(w, li, g, dF, dU, dTn, dT);
		tmp = dF;
		dF = dU;
		dU = tmp;
		if (D->is_time)
		{
			dTn = dT;
			dT = (dT == w->dT0) ? w->dT1 : w->dT0;
		}
	}
	/* dF: gradient of the first layer's input, dTn of its T */
	embed_backward(w, g, pd, dF);
	OP_HOOK(w, -1, "embed", 1);
	if (D->is_time)
	{
		time_features_backward(w, g, dTn);
		OP_HOOK(w, -1, "time_features", 1);
	}
	return T4R_OK;
}
