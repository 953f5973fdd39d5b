/*
 * test_model.c - float build checks of the model driver:
 *  - t4r_infer against a plain full-length (padded to L) reference forward
 *    written here in double straight from docs/MODEL.md, on several
 *    configurations (time path on/off, p2p, 1 and 2 layers, both presets);
 *  - a sequence longer than L gives the same output as its last L items;
 *  - t4r_infer_batch == t4r_infer;
 *  - the trainer: identical loss/gradient for a fixed thread count run twice,
 *    1 vs 2 threads and a small memory budget (several micro-batches) agree
 *    within float tolerance, same seed -> bitwise same weights after a few
 *    t4r_trainer_step calls, the loss goes down on a repeated batch;
 *  - t4r_model_init statistics and t4r_trainer_estimate's budget check.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x243F6A8885A308D3ULL
#include "tap.h"
#include "tim4rec.h"
#include "ops.h"
#include "model_internal.h"


/* ---------------- plain reference forward (double) ---------------- */
static const t4r_real *
P(const t4r_model *m, int layer, const char *name)
{
	char		nm[T4R_NAME_MAX];
	const t4r_real *p;

	if (layer >= 0)
		snprintf(nm, sizeof nm, "ssd_layers.%d.%s", layer, name);
	else
		snprintf(nm, sizeof nm, "%s", name);
	p = t4r_model_tensor(m, nm);
	if (!p)
	{
		fprintf(stderr, "missing tensor %s\n", nm);
		exit(2);
	}
	return p;
}

static double
r_hsw(double x)
{
	double		r = x + 3;

	r = r < 0 ? 0 : r > 6 ? 6 : r;
	return x * r / 6;
}
static double
r_sig(double x)
{
	return 1 / (1 + exp(-x));
}
static double
r_softplus(double x)
{
	return x > 20 ? x : log1p(exp(x));
}
static void
r_ln(const double *x, int n, const t4r_real *w, const t4r_real *b, double eps, double *y)
{
	double		mu = 0,
				v = 0;

	for (int i = 0; i < n; i++)
		mu += x[i];
	mu /= n;
	for (int i = 0; i < n; i++)
		v += (x[i] - mu) * (x[i] - mu);
	v /= n;
	for (int i = 0; i < n; i++)
		y[i] = (x[i] - mu) / sqrt(v + eps) * w[i] + b[i];
}
/* y[o] = b[o] + sum_i W[o, i] x[i] */
static void
r_linear(const double *x, int in, const t4r_real *W, const t4r_real *b, int out, double *y)
{
	for (int o = 0; o < out; o++)
	{
		double		acc = b ? b[o] : 0;

		for (int i = 0; i < in; i++)
			acc += W[(size_t) o * in + i] * x[i];
		y[o] = acc;
	}
}

static void
ref_forward(const t4r_model *m, const int32_t *items, const double *ts, int n, double *hidden)
{
	const t4r_dims *D = &m->dims;
	int			L = D->L,
				d = D->d,
				Di = D->Di,
				H = D->H,
				Pd = D->P,
				N = D->N,
				K = D->K,
				C = D->conv_dim,
				G = D->G,
				f = D->ffn_dim,
				in_dim = D->in_dim;
	double		eps = m->cfg.norm_eps;
	int			nn = n > L ? L : n,
				start = n - nn;
	double	   *U = calloc((size_t) L * d, sizeof(double));
	double	   *F = calloc((size_t) L * d, sizeof(double));
	double	   *T = calloc((size_t) H * L, sizeof(double));
	double	   *Tn = calloc((size_t) H * L, sizeof(double));
	double	   *tdt = calloc((size_t) H * L, sizeof(double));
	double	   *zxd = calloc((size_t) L * in_dim, sizeof(double));
	double	   *xbc = calloc((size_t) L * C, sizeof(double));
	double	   *y = calloc((size_t) L * Di, sizeof(double));
	double	   *St = calloc((size_t) H * Pd * N, sizeof(double));
	double	   *tmp = calloc((size_t) (L + f + Di + d) * 4, sizeof(double));
	double	   *tsp = calloc(L, sizeof(double));
	int		   *it = calloc(L, sizeof(int));

	for (int l = 0; l < L; l++)
	{
		it[l] = l < nn ? items[start + l] : 0;
		tsp[l] = l < nn ? ts[start + l] : 0;
	}
	for (int l = 0; l < L; l++)
	{
		const t4r_real *e = P(m, -1, "item_embedding.weight") + (size_t) it[l] * d;

		for (int c = 0; c < d; c++)
			tmp[c] = e[c];
		r_ln(tmp, d, P(m, -1, "in_layer_norm.weight"), P(m, -1, "in_layer_norm.bias"), eps, U + (size_t) l * d);
	}
	if (D->is_time)
	{
		tmp[0] = 0;
		for (int l = 1; l < L; l++)
			tmp[l] = (double) (t4r_real) (tsp[l] - tsp[l - 1]);
		r_ln(tmp, L, P(m, -1, "layer_norm_time.weight"), P(m, -1, "layer_norm_time.bias"), eps, T);
		for (int h = 1; h < H; h++)
			memcpy(T + (size_t) h * L, T, sizeof(double) * L);
	}
	for (int li = 0; li < D->layers; li++)
	{
		const t4r_real *cw = P(m, li, "ssd.conv1d.weight"),
				   *cb = P(m, li, "ssd.conv1d.bias");

		for (int l = 0; l < L; l++)
			r_linear(U + (size_t) l * d, d, P(m, li, "ssd.in_proj.weight"), P(m, li, "ssd.in_proj.bias"),
					 in_dim, zxd + (size_t) l * in_dim);
		for (int l = 0; l < L; l++)
			for (int c = 0; c < C; c++)
			{
				double		acc = cb[c];

				for (int k = 0; k < K; k++)
				{
					int			j = l - (K - 1) + k;

					if (j >= 0)
						acc += cw[c * K + k] * zxd[(size_t) j * in_dim + Di + c];
				}
				xbc[(size_t) l * C + c] = r_hsw(acc);
			}
		if (D->is_time)
		{
			for (int h = 0; h < H; h++)
			{
				double	   *a1 = tmp,
						   *s = tmp + L,
						   *q = tmp + 2 * L,
						   *r = tmp + 3 * L;
				const double *Th = T + (size_t) h * L;
				const t4r_real *c1w = P(m, li, "ssd.conv1d4time_1.weight") + h * K,
						   *c2w = P(m, li, "ssd.conv1d4time_2.weight") + h * K;
				double		c1b = P(m, li, "ssd.conv1d4time_1.bias")[h],
							c2b = P(m, li, "ssd.conv1d4time_2.bias")[h];

				r_linear(Th, L, P(m, li, "ssd.mlp4time_scale.1.weight"),
						 P(m, li, "ssd.mlp4time_scale.1.bias"), L, a1);
				for (int l = 0; l < L; l++)
					a1[l] = a1[l] * r_sig(a1[l]);
				r_linear(a1, L, P(m, li, "ssd.mlp4time_scale.3.weight"),
						 P(m, li, "ssd.mlp4time_scale.3.bias"), L, s);
				for (int l = 0; l < L; l++)
					q[l] = Th[l] * s[l];
				for (int l = 0; l < L; l++)
				{
					double		acc = c1b;

					for (int k = 0; k < K; k++)
					{
						int			j = l - (K - 1) + k;

						if (j >= 0)
							acc += c1w[k] * q[j];
					}
					r[l] = r_hsw(acc);
				}
				for (int l = 0; l < L; l++)
				{
					double		acc = c2b;

					for (int k = 0; k < K; k++)
					{
						int			j = l - (K - 1) + k;

						if (j >= 0)
							acc += c2w[k] * r[j];
					}
					tdt[(size_t) h * L + l] = r_hsw(acc);
				}
				/* new time features */
				{
					double	   *gt = tmp,
							   *mix = tmp + L;

					r_linear(Th, L, P(m, li, "ssd.time_gate_residual.1.weight"),
							 P(m, li, "ssd.time_gate_residual.1.bias"), G, gt);
					for (int l = 0; l < L; l++)
					{
						double		g = r_sig(gt[G == 1 ? 0 : l]);

						mix[l] = g * Th[l] + (1 - g) * tdt[(size_t) h * L + l];
					}
					r_ln(mix, L, P(m, li, "ssd.time_layer_norm.weight"),
						 P(m, li, "ssd.time_layer_norm.bias"), eps, Tn + (size_t) h * L);
				}
			}
		}
		/* SSD recurrence over all L positions */
		{
			const t4r_real *dtb = P(m, li, "ssd.dt_bias"),
					   *Alog = P(m, li, "ssd.A_log"),
					   *Dp = P(m, li, "ssd.D");

			memset(St, 0, sizeof(double) * H * Pd * N);
			for (int l = 0; l < L; l++)
			{
				const double *x = xbc + (size_t) l * C,
						   *B = x + Di,
						   *Cm = x + Di + N;

				for (int h = 0; h < H; h++)
				{
					double		dt = zxd[(size_t) l * in_dim + 2 * Di + 2 * N + h];
					double		delta,
								decay;

					if (D->is_time)
						dt *= tdt[(size_t) h * L + l];
					delta = r_softplus(dt + dtb[h]);
					decay = exp(delta * -exp((double) Alog[h]));
					for (int p = 0; p < Pd; p++)
					{
						double	   *Sp = St + ((size_t) h * Pd + p) * N;
						double		acc = 0;

						for (int k = 0; k < N; k++)
						{
							Sp[k] = decay * Sp[k] + delta * x[h * Pd + p] * B[k];
							acc += Cm[k] * Sp[k];
						}
						y[(size_t) l * Di + h * Pd + p] = acc + Dp[h] * x[h * Pd + p];
					}
				}
			}
		}
		/* gated norm, out_proj, residual LN, FFN */
		for (int l = 0; l < L; l++)
		{
			double	   *g = tmp,
					   *o = tmp + Di,
					   *a = tmp + Di + d,
					   *hh = tmp + Di + 2 * d,
					   *f1 = tmp + Di + 3 * d,
					   *b = tmp + Di + 3 * d + f;
			const double *z = zxd + (size_t) l * in_dim;
			const t4r_real *nw = P(m, li, "ssd.norm.weight");
			double		ss = 0;

			for (int c = 0; c < Di; c++)
			{
				g[c] = y[(size_t) l * Di + c] * z[c] * r_sig(z[c]);
				ss += g[c] * g[c];
			}
			for (int c = 0; c < Di; c++)
				g[c] = g[c] / sqrt(ss / Di + eps) * nw[c];
			r_linear(g, Di, P(m, li, "ssd.out_proj.weight"), P(m, li, "ssd.out_proj.bias"), d, o);
			for (int c = 0; c < d; c++)
				a[c] = o[c] + (D->layers > 1 ? U[(size_t) l * d + c] : 0);
			r_ln(a, d, P(m, li, "layer_norm.weight"), P(m, li, "layer_norm.bias"), eps, hh);
			r_linear(hh, d, P(m, li, "ffn.fc1.weight"), P(m, li, "ffn.fc1.bias"), f, f1);
			for (int c = 0; c < f; c++)
				f1[c] = r_hsw(f1[c]);
			r_linear(f1, f, P(m, li, "ffn.fc2.weight"), P(m, li, "ffn.fc2.bias"), d, b);
			for (int c = 0; c < d; c++)
				b[c] += hh[c];
			r_ln(b, d, P(m, li, "ffn.layer_norm.weight"), P(m, li, "ffn.layer_norm.bias"), 1e-12,
				 F + (size_t) l * d);
		}
		memcpy(U, F, sizeof(double) * L * d);
		memcpy(T, Tn, sizeof(double) * H * L);
	}
	memcpy(hidden, U + (size_t) (nn - 1) * d, sizeof(double) * d);
	free(U);
	free(F);
	free(T);
	free(Tn);
	free(tdt);
	free(zxd);
	free(xbc);
	free(y);
	free(St);
	free(tmp);
	free(tsp);
	free(it);
}

/* ---------------- helpers ---------------- */
static t4r_model *
make_model(const char *preset, int is_time, int p2p, int layers, int L, int V, uint64_t seed,
		   double noise)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	char		err[256];

	t4r_config_preset(&c, preset);
	c.is_time = is_time;
	c.p2p_residual = p2p;
	c.num_layers = layers;
	c.max_seq_len = L;
	c.n_items = V;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "model create: %s\n", err);
		exit(2);
	}
	t4r_model_init(m, seed);
	if (noise > 0)
		for (size_t i = 0; i < m->layout.total; i++)
			m->params[i] += (t4r_real) (noise * nrand());
	return m;
}

typedef struct seqset
{
	int			ns;
	int32_t   **items;
	double	  **ts;
	t4r_sample *s;
} seqset;

static void
make_seqs(seqset *q, int ns, const int *lens, int V)
{
	q->ns = ns;
	q->items = calloc(ns, sizeof(int32_t *));
	q->ts = calloc(ns, sizeof(double *));
	q->s = calloc(ns, sizeof(t4r_sample));
	for (int i = 0; i < ns; i++)
	{
		int			n = lens[i];
		double		t0 = 9.5e8 + 1e8 * urand();

		q->items[i] = malloc(sizeof(int32_t) * n);
		q->ts[i] = malloc(sizeof(double) * n);
		for (int k = 0; k < n; k++)
		{
			q->items[i][k] = 1 + (int32_t) (urand() * (V - 1));
			if (urand() > 0.15)
				t0 += floor(1 + 86400 * urand() * urand());
			q->ts[i][k] = t0;
		}
		q->s[i].items = q->items[i];
		q->s[i].ts = q->ts[i];
		q->s[i].n = n;
		q->s[i].target = 1 + (int32_t) (urand() * (V - 1));
	}
}

static void
free_seqs(seqset *q)
{
	for (int i = 0; i < q->ns; i++)
	{
		free(q->items[i]);
		free(q->ts[i]);
	}
	free(q->items);
	free(q->ts);
	free(q->s);
}

static double
rel_l2f(const t4r_real *a, const t4r_real *b, size_t n)
{
	double		num = 0,
				den = 0;

	for (size_t i = 0; i < n; i++)
	{
		num += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
		den += (double) b[i] * b[i];
	}
	return sqrt(num) / (den > 0 ? sqrt(den) : 1);
}

/* ---------------- tests ---------------- */
static void
test_reference(const char *preset, int is_time, int p2p, int layers, int L)
{
	int			V = 57;
	t4r_model  *m = make_model(preset, is_time, p2p, layers, L, V, 11, 0.05);
	int			lens[] = {1, 2, 7, L - 1, L, L + 9};
	int			ns = 6;
	seqset		q;
	t4r_infer_ctx *ctx = NULL;
	t4r_real   *h = malloc(sizeof(t4r_real) * m->dims.d);
	double	   *hr = malloc(sizeof(double) * m->dims.d);
	double		worst = 0;
	int			ok;

	make_seqs(&q, ns, lens, V);
	ok = t4r_infer_ctx_create(m, &ctx) == T4R_OK;
	for (int i = 0; ok && i < ns; i++)
	{
		double		num = 0,
					den = 0,
					e;

		ok = t4r_infer(ctx, q.s[i].items, q.s[i].ts, q.s[i].n, h, NULL) == T4R_OK;
		ref_forward(m, q.s[i].items, q.s[i].ts, q.s[i].n, hr);
		for (int c = 0; c < m->dims.d; c++)
		{
			num += (h[c] - hr[c]) * (h[c] - hr[c]);
			den += hr[c] * hr[c];
		}
		e = sqrt(num / den);
		if (e > worst)
			worst = e;
	}
	tap_ok(ok && worst < 1e-4,
		   "%s preset, is_time %d, p2p %d, %d layer(s), L %d: t4r_infer == full-length padded reference (rel L2 %.3g)",
		   preset, is_time, p2p, layers, L, worst);
	free(h);
	free(hr);
	t4r_infer_ctx_free(ctx);
	free_seqs(&q);
	t4r_model_free(m);
}

static void
test_long_and_batch(void)
{
	int			V = 101,
				L = 30;
	t4r_model  *m = make_model("movielens", 1, 0, 2, L, V, 5, 0.03);
	int			lens[] = {L + 17, 4, L, 1, 19, L + 1, 2, 25, 9, L, 3, 8, 11, 12, 13, 14, 15, 16, 17, 18};
	int			ns = 20;
	seqset		q;
	t4r_infer_ctx *ctx = NULL;
	int			d = m->dims.d;
	t4r_real   *h1 = malloc(sizeof(t4r_real) * d),
			   *h2 = malloc(sizeof(t4r_real) * d);
	t4r_real   *s1 = malloc(sizeof(t4r_real) * V);
	t4r_real   *hb = malloc(sizeof(t4r_real) * d * ns),
			   *sb = malloc(sizeof(t4r_real) * V * ns);
	double		worst = 0;
	int			ok;

	make_seqs(&q, ns, lens, V);
	t4r_infer_ctx_create(m, &ctx);
	/* longer than L == last L items */
	ok = t4r_infer(ctx, q.items[0], q.ts[0], q.s[0].n, h1, NULL) == T4R_OK &&
		t4r_infer(ctx, q.items[0] + 17, q.ts[0] + 17, L, h2, NULL) == T4R_OK;
	tap_ok(ok && memcmp(h1, h2, sizeof(t4r_real) * d) == 0,
		   "a sequence of L + 17 items gives exactly the output of its last L items");
	/* bad input */
	tap_ok(t4r_infer(ctx, q.items[0], q.ts[0], 0, h1, NULL) == T4R_EINVAL, "n = 0 -> T4R_EINVAL");
	{
		int32_t		bad[2] = {1, V};
		double		bts[2] = {1, 2};

		tap_ok(t4r_infer(ctx, bad, bts, 2, h1, NULL) == T4R_EINVAL, "item row >= V -> T4R_EINVAL");
	}
	/* batch == one by one */
	ok = t4r_infer_batch(m, q.s, ns, 2, hb, sb) == T4R_OK;
	for (int i = 0; ok && i < ns; i++)
	{
		double		e1,
					e2;

		ok = t4r_infer(ctx, q.items[i], q.ts[i], q.s[i].n, h1, s1) == T4R_OK;
		e1 = rel_l2f(hb + (size_t) i * d, h1, d);
		e2 = rel_l2f(sb + (size_t) i * V, s1, V);
		if (e1 > worst)
			worst = e1;
		if (e2 > worst)
			worst = e2;
	}
	tap_ok(ok && worst < 1e-5, "t4r_infer_batch (2 threads, 20 sequences) == t4r_infer (rel %.3g)", worst);
	/* scores = E s */
	{
		const t4r_real *E = t4r_model_tensor(m, "item_embedding.weight");
		double		w2 = 0;

		t4r_infer(ctx, q.items[1], q.ts[1], q.s[1].n, h1, s1);
		for (int v = 0; v < V; v++)
		{
			double		acc = 0;

			for (int c = 0; c < d; c++)
				acc += (double) E[(size_t) v * d + c] * h1[c];
			if (fabs(acc - s1[v]) > w2)
				w2 = fabs(acc - s1[v]);
		}
		tap_ok(w2 < 1e-4, "scores are E s over all V rows (max abs diff %.3g)", w2);
	}
	free(h1);
	free(h2);
	free(s1);
	free(hb);
	free(sb);
	t4r_infer_ctx_free(ctx);
	free_seqs(&q);
	t4r_model_free(m);
}

static void
test_trainer(void)
{
	int			V = 83,
				L = 24;
	int			ns = 37;
	int		   *lens = malloc(sizeof(int) * ns);
	seqset		q;
	t4r_model  *m = make_model("amazon", 1, 1, 2, L, V, 3, 0.02);
	t4r_model  *m2 = make_model("amazon", 1, 1, 2, L, V, 3, 0);
	size_t		total = m->layout.total;
	t4r_real   *g1 = malloc(sizeof(t4r_real) * total),
			   *g2 = malloc(sizeof(t4r_real) * total),
			   *g3 = malloc(sizeof(t4r_real) * total);
	double		l1 = 0,
				l1b = 0,
				l2 = 0,
				l3 = 0;
	t4r_train_opts o;
	t4r_trainer *t1 = NULL,
			   *t2 = NULL,
			   *t3 = NULL;
	char		err[256];
	int			ok;

	m->cfg.dropout_prob = 0.3;
	m->cfg.time_dropout = 0.2;
	for (int i = 0; i < ns; i++)
		lens[i] = 1 + (int) (urand() * (L + 5));
	make_seqs(&q, ns, lens, V);

	memset(&o, 0, sizeof o);
	o.threads = 1;
	ok = t4r_trainer_create(m, &o, &t1, err, sizeof err) == T4R_OK;
	o.threads = 2;
	ok = ok && t4r_trainer_create(m, &o, &t2, err, sizeof err) == T4R_OK;
	/* a budget that allows only a few samples per micro-batch */
	{
		size_t		need1 = 0,
					need = 0;
		int			mb = 0;

		o.threads = 1;
		int			erc;

		o.mem_budget = 1;
		erc = t4r_trainer_estimate(&m->cfg, &o, &need1, &mb);
		tap_ok(erc == T4R_EBUDGET && need1 > 0,
			   "a 1-byte budget -> T4R_EBUDGET with the minimum (%zu bytes)", need1);
		o.mem_budget = need1 + (need1 / 20);
		ok = ok && t4r_trainer_estimate(&m->cfg, &o, &need, &mb) == T4R_OK;
		tap_ok(ok && mb >= 1 && mb < 8 && need <= o.mem_budget,
			   "a budget just above the minimum gives a small micro-batch (%d samples, %zu bytes)", mb, need);
		ok = ok && t4r_trainer_create(m, &o, &t3, err, sizeof err) == T4R_OK;
	}
	tap_ok(ok, "trainers created (1 thread, 2 threads, small budget) %s", ok ? "" : err);
	if (!ok)
		return;
	/* training-mode loss and gradient */
	t4r_trainer_loss_grad(t1, q.s, ns, 1, &l1);
	memcpy(g1, t4r_trainer_grads(t1), sizeof(t4r_real) * total);
	t4r_trainer_loss_grad(t1, q.s, ns, 1, &l1b);
	tap_ok(l1 == l1b && memcmp(g1, t4r_trainer_grads(t1), sizeof(t4r_real) * total) == 0,
		   "same thread count, same step: bitwise identical loss and gradient");
	t4r_trainer_loss_grad(t2, q.s, ns, 1, &l2);
	memcpy(g2, t4r_trainer_grads(t2), sizeof(t4r_real) * total);
	t4r_trainer_loss_grad(t2, q.s, ns, 1, &l1b);
	tap_ok(l2 == l1b && memcmp(g2, t4r_trainer_grads(t2), sizeof(t4r_real) * total) == 0,
		   "2 threads run twice: bitwise identical loss and gradient");
	t4r_trainer_loss_grad(t3, q.s, ns, 1, &l3);
	memcpy(g3, t4r_trainer_grads(t3), sizeof(t4r_real) * total);
	{
		double		e2 = rel_l2f(g2, g1, total),
					e3 = rel_l2f(g3, g1, total);

		tap_ok(fabs(l2 - l1) < 1e-5 * l1 && e2 < 1e-5,
			   "1 vs 2 threads (dropout on): loss %.7f vs %.7f, gradient rel L2 %.3g", l1, l2, e2);
		tap_ok(fabs(l3 - l1) < 1e-5 * l1 && e3 < 1e-5,
			   "small micro-batches vs one micro-batch: loss %.7f vs %.7f, gradient rel L2 %.3g", l3, l1, e3);
	}
	/* dropout changes the loss; eval mode is dropout-free */
	{
		double		le = 0;

		t4r_trainer_loss_grad(t1, q.s, ns, 0, &le);
		tap_ok(le != l1, "training-mode loss (%.6f) differs from eval-mode loss (%.6f)", l1, le);
	}
	t4r_trainer_free(t1);
	t4r_trainer_free(t2);
	t4r_trainer_free(t3);

	/* same seed -> same weights after a few steps; loss goes down */
	{
		t4r_model  *ma = make_model("amazon", 1, 1, 2, L, V, 99, 0);
		t4r_model  *mb = make_model("amazon", 1, 1, 2, L, V, 99, 0);
		t4r_trainer *ta = NULL,
				   *tb = NULL;
		double		first = 0,
					lastl = 0,
					lb = 0;

		o.threads = 2;
		o.mem_budget = 0;
		t4r_trainer_create(ma, &o, &ta, err, sizeof err);
		t4r_trainer_create(mb, &o, &tb, err, sizeof err);
		for (int k = 0; k < 30; k++)
		{
			t4r_trainer_step(ta, q.s, ns, &lastl);
			t4r_trainer_step(tb, q.s, ns, &lb);
			if (k == 0)
				first = lastl;
		}
		tap_ok(memcmp(ma->params, mb->params, sizeof(t4r_real) * ma->layout.total) == 0 &&
			   t4r_trainer_steps(ta) == 30,
			   "same seed, same thread count: bitwise identical weights after 30 steps");
		tap_ok(lastl < 0.8 * first, "30 Adam steps on one batch lower the loss (%.4f -> %.4f)", first, lastl);
		t4r_trainer_free(ta);
		t4r_trainer_free(tb);
		t4r_model_free(ma);
		t4r_model_free(mb);
	}

	/*
	 * weight_decay: each step against AdamW written out in double from the
	 * weights before the step and the step's gradient (torch.optim.AdamW:
	 * p *= 1 - lr * wd, then the Adam update); the moments are kept in
	 * double on the reference side over 5 steps
	 */
	{
		t4r_model  *ma = make_model("amazon", 1, 1, 2, L, V, 99, 0);
		t4r_model  *mb = make_model("amazon", 1, 1, 2, L, V, 99, 0);
		t4r_trainer *ta = NULL,
				   *tb = NULL;
		size_t		n = ma->layout.total;
		double	   *rm = calloc(n, sizeof(double)),
				   *rv = calloc(n, sizeof(double));
		t4r_real   *p0 = malloc(sizeof(t4r_real) * n);
		double		lr = 0.01,
					wd = 2.0,
					worst = 0,
					na = 0,
					nb = 0,
					l = 0;

		ma->cfg.learning_rate = mb->cfg.learning_rate = lr;
		ma->cfg.weight_decay = wd;
		mb->cfg.weight_decay = 0;	/* the amazon preset's default is 1 */
		o.threads = 2;
		t4r_trainer_create(ma, &o, &ta, err, sizeof err);
		t4r_trainer_create(mb, &o, &tb, err, sizeof err);
		for (int k = 1; k <= 5; k++)
		{
			const t4r_real *g;
			double		bc1 = 1 - pow(0.9, k),
						bc2 = 1 - pow(0.999, k);

			memcpy(p0, ma->params, sizeof(t4r_real) * n);
			t4r_trainer_step(ta, q.s, ns, &l);
			t4r_trainer_step(tb, q.s, ns, &l);
			g = t4r_trainer_grads(ta);
			for (size_t i = 0; i < n; i++)
			{
				double		want;

				rm[i] = 0.9 * rm[i] + 0.1 * g[i];
				rv[i] = 0.999 * rv[i] + 0.001 * (double) g[i] * g[i];
				want = p0[i] * (1 - lr * wd) - lr * (rm[i] / bc1) / (sqrt(rv[i] / bc2) + 1e-8);
				worst = fmax(worst, fabs(ma->params[i] - want) / (1e-3 + fabs(want)));
			}
		}
		for (size_t i = 0; i < n; i++)
		{
			na += (double) ma->params[i] * ma->params[i];
			nb += (double) mb->params[i] * mb->params[i];
		}
		tap_ok(worst < 1e-5, "weight_decay %.1f: 5 steps equal AdamW written out in double (worst relative error %.3g)", wd, worst);
		tap_ok(sqrt(na) < 0.95 * sqrt(nb), "weight_decay shrinks the weights: norm %.4f against %.4f without it",
			   sqrt(na), sqrt(nb));
		t4r_trainer_free(ta);
		t4r_trainer_free(tb);
		t4r_model_free(ma);
		t4r_model_free(mb);
		free(rm);
		free(rv);
		free(p0);
	}
	free(g1);
	free(g2);
	free(g3);
	free(lens);
	free_seqs(&q);
	t4r_model_free(m);
	t4r_model_free(m2);
}

static int	n_interrupt_calls = 0;
static int
interrupt_after_two(void *ud)
{
	(void) ud;
	return ++n_interrupt_calls >= 2;
}

static void
test_interrupt(void)
{
	int			V = 40,
				L = 16,
				ns = 64;
	int		   *lens = malloc(sizeof(int) * ns);
	seqset		q;
	t4r_model  *m = make_model("movielens", 1, 0, 2, L, V, 8, 0);
	t4r_train_opts o;
	t4r_trainer *t = NULL;
	char		err[256];
	double		loss = 0;
	t4r_real   *p0 = malloc(sizeof(t4r_real) * m->layout.total);
	int			rc;

	for (int i = 0; i < ns; i++)
		lens[i] = 1 + i % L;
	make_seqs(&q, ns, lens, V);
	memset(&o, 0, sizeof o);
	o.threads = 2;
	/* budget for about 2 samples per micro-batch: many micro-batches */
	{
		size_t		need = 0;
		int			mb = 0;

		o.mem_budget = 1;
		t4r_trainer_estimate(&m->cfg, &o, &need, &mb);
		o.mem_budget = need * 2;
	}
	o.interrupt = interrupt_after_two;
	t4r_trainer_create(m, &o, &t, err, sizeof err);
	memcpy(p0, m->params, sizeof(t4r_real) * m->layout.total);
	rc = t4r_trainer_step(t, q.s, ns, &loss);
	tap_ok(rc == T4R_ECANCELLED && n_interrupt_calls == 2 && t4r_trainer_steps(t) == 0 &&
		   memcmp(p0, m->params, sizeof(t4r_real) * m->layout.total) == 0,
		   "interrupt callback: polled between micro-batches, cancels the step without an update (rc %d, %d calls)",
		   rc, n_interrupt_calls);
	o.interrupt = NULL;
	t4r_trainer_free(t);
	t = NULL;
	t4r_trainer_create(m, &o, &t, err, sizeof err);
	tap_ok(t4r_trainer_step(t, q.s, ns, &loss) == T4R_OK && t4r_trainer_steps(t) == 1,
		   "without the callback the same step completes");
	{
		t4r_sample	bad = q.s[0];

		bad.target = V;
		tap_ok(t4r_trainer_step(t, &bad, 1, &loss) == T4R_EINVAL && t4r_trainer_steps(t) == 1,
			   "target out of range -> T4R_EINVAL, no step");
	}
	t4r_trainer_free(t);
	free(p0);
	free(lens);
	free_seqs(&q);
	t4r_model_free(m);
}

static void
test_masks(void)
{
	t4r_real	a[777],
				b[777];
	int			bad = 0;
	double		kept = 0;
	int			cnt = 0;

	for (int n = 1; n <= 777; n += 31)
		for (int site = 0; site < 6; site++)
		{
			double		p = 0.15 * site;

			t4r_dropout_mask(a, n, p, 2020, 11, 3 * site + n, site + 1);
			t4r_model_dropout_mask(b, n, p, 2020, 11, 3 * site + n, site + 1);
			if (memcmp(a, b, sizeof(t4r_real) * n) != 0)
				bad++;
			if (site == 2)
				for (int i = 0; i < n; i++, cnt++)
					kept += b[i] != 0;
		}
	tap_ok(bad == 0, "the model's vectorised dropout masks equal t4r_dropout_mask (ops.h)");
	tap_ok(fabs(kept / cnt - 0.7) < 0.02, "dropout p = 0.3 keeps %.3f of the elements", kept / cnt);
}

static void
test_init(void)
{
	t4r_model  *m = make_model("movielens", 1, 0, 2, 200, 3707, 2020, 0);
	t4r_model  *m2 = make_model("movielens", 1, 0, 2, 200, 3707, 2020, 0);
	const t4r_real *E = t4r_model_tensor(m, "item_embedding.weight");
	size_t		nE = (size_t) 3707 * 64;
	double		s = 0,
				s2 = 0;
	int			ok = 1;

	for (size_t i = 0; i < nE; i++)
	{
		s += E[i];
		s2 += (double) E[i] * E[i];
	}
	s /= nE;
	s2 = sqrt(s2 / nE - s * s);
	tap_ok(fabs(s) < 1e-3 && fabs(s2 - 0.02) < 5e-4, "embedding ~ N(0, 0.02): mean %.2g, std %.5f", s, s2);
	{
		const t4r_real *cw = t4r_model_tensor(m, "ssd_layers.0.ssd.conv1d.weight");
		size_t		n = 192 * 4;
		double		v = 0;

		for (size_t i = 0; i < n; i++)
			v += (double) cw[i] * cw[i];
		v = sqrt(v / n);
		tap_ok(fabs(v - sqrt(0.5)) < 0.08, "kaiming conv init std %.3f ~ sqrt(2/K) = 0.707", v);
	}
	for (int li = 0; li < 2; li++)
	{
		char		nm[T4R_NAME_MAX];
		const t4r_real *al,
				   *dtb,
				   *Dp,
				   *lw,
				   *bb;

		snprintf(nm, sizeof nm, "ssd_layers.%d.ssd.A_log", li);
		al = t4r_model_tensor(m, nm);
		snprintf(nm, sizeof nm, "ssd_layers.%d.ssd.dt_bias", li);
		dtb = t4r_model_tensor(m, nm);
		snprintf(nm, sizeof nm, "ssd_layers.%d.ssd.D", li);
		Dp = t4r_model_tensor(m, nm);
		snprintf(nm, sizeof nm, "ssd_layers.%d.ffn.layer_norm.weight", li);
		lw = t4r_model_tensor(m, nm);
		snprintf(nm, sizeof nm, "ssd_layers.%d.ssd.in_proj.bias", li);
		bb = t4r_model_tensor(m, nm);
		for (int h = 0; h < 4; h++)
		{
			double		dt = log1p(exp((double) dtb[h]));

			if (!(al[h] >= 0 && al[h] <= log(16.0) + 1e-6 && dt >= 1e-3 - 1e-7 && dt <= 0.1 + 1e-6 &&
				  Dp[h] == 1))
				ok = 0;
		}
		for (int c = 0; c < 64; c++)
			if (lw[c] != 1)
				ok = 0;
		for (int c = 0; c < 324; c++)
			if (bb[c] != 0)
				ok = 0;
	}
	tap_ok(ok, "A_log in [0, ln 16], softplus(dt_bias) in [1e-3, 0.1], D = 1, LN weight 1, Linear bias 0");
	tap_ok(memcmp(m->params, m2->params, sizeof(t4r_real) * m->layout.total) == 0,
		   "same seed -> identical initialisation");
	t4r_model_free(m);
	t4r_model_free(m2);
}

/* t4r_model_wrap: a model over caller-owned parameters (the shared-memory
 * cache of the glue) scores exactly like the model it was copied from, and
 * freeing it leaves the parameters alone */
static void
test_wrap(void)
{
	t4r_config	c;
	t4r_model  *m = NULL,
			   *w = NULL;
	t4r_infer_ctx *cm = NULL,
			   *cw = NULL;
	char		err[256] = "";
	t4r_real   *buf,
			   *s1,
			   *s2;
	int32_t		items[5] = {3, 7, 1, 12, 9};
	double		ts[5] = {0, 60, 3600, 3700, 90000};
	int			rc;

	t4r_config_preset(&c, "amazon");
	c.n_items = 40;
	c.hidden_size = 16;
	c.max_seq_len = 8;
	rc = t4r_model_create(&c, &m, err, sizeof err);
	tap_ok(rc == T4R_OK, "wrap: create the source model (%s)", err);
	t4r_model_init(m, 11);
	buf = malloc(sizeof(t4r_real) * m->layout.total);
	memcpy(buf, m->params, sizeof(t4r_real) * m->layout.total);
	rc = t4r_model_wrap(&c, buf, &w, err, sizeof err);
	tap_ok(rc == T4R_OK && w != NULL && w->params == buf && !w->owns_params && m->owns_params,
		   "wrap: the wrapped model points at the caller's buffer and does not own it");
	{
		t4r_model  *x = m;

		tap_ok(t4r_model_wrap(&c, NULL, &x, err, sizeof err) == T4R_EINVAL && x == NULL,
			   "wrap: NULL parameters are T4R_EINVAL");
	}
	s1 = malloc(sizeof(t4r_real) * c.n_items);
	s2 = malloc(sizeof(t4r_real) * c.n_items);
	t4r_infer_ctx_create(m, &cm);
	t4r_infer_ctx_create(w, &cw);
	t4r_infer(cm, items, ts, 5, NULL, s1);
	t4r_infer(cw, items, ts, 5, NULL, s2);
	tap_ok(memcmp(s1, s2, sizeof(t4r_real) * c.n_items) == 0, "wrap: identical scores to the source model");
	t4r_infer_ctx_free(cw);
	t4r_model_free(w);
	tap_ok(memcmp(buf, m->params, sizeof(t4r_real) * m->layout.total) == 0,
		   "wrap: freeing the wrapper leaves the caller's parameters intact");
	{
		char		e2[256] = "";
		t4r_config	bad = c;

		bad.n_items = 1;
		tap_ok(t4r_model_wrap(&bad, buf, &w, e2, sizeof e2) == T4R_EINVAL && e2[0] != '\0',
			   "wrap: an invalid config is T4R_EINVAL with a message (%s)", e2);
	}
	t4r_infer_ctx_free(cm);
	t4r_model_free(m);
	free(buf);
	free(s1);
	free(s2);
}

/*
 * t4r_infer_topk (blocked scores, streamed top k, sorted exclusion list)
 * against t4r_infer's full score vector + t4r_topk with a V-byte mask:
 * same rows, bitwise the same values, for vocabularies around the block
 * size, every k class and exclusion lists with duplicates, padding and
 * out-of-range rows.
 */
static void
test_infer_topk(void)
{
	static const int Vs[] = {17, T4R_SCORE_BLOCK - 1, T4R_SCORE_BLOCK, T4R_SCORE_BLOCK + 1,
	3 * T4R_SCORE_BLOCK + 37};
	int			cases = 0,
				ok = 1;

	for (size_t vi = 0; vi < sizeof(Vs) / sizeof(Vs[0]); vi++)
	{
		int			V = Vs[vi],
					L = 12;
		t4r_model  *m = make_model("movielens", 1, 0, 2, L, V, 11 + vi, 0.05);
		int			lens[] = {5, L + 3, 1};
		seqset		q;
		t4r_infer_ctx *ctx = NULL;
		t4r_real   *sc = malloc(sizeof(t4r_real) * V);
		uint8_t    *mask = calloc(V, 1);
		int32_t    *r1 = malloc(sizeof(int32_t) * V),
				   *r2 = malloc(sizeof(int32_t) * V);
		t4r_real   *v1 = malloc(sizeof(t4r_real) * V),
				   *v2 = malloc(sizeof(t4r_real) * V);
		int			ks[] = {1, 10, 100, V - 1, V + 5};

		make_seqs(&q, 3, lens, V);
		t4r_infer_ctx_create(m, &ctx);
		for (int i = 0; i < q.ns; i++)
			for (size_t kk = 0; kk < sizeof(ks) / sizeof(ks[0]); kk++)
			{
				int32_t		ex[40];
				int			nex = (int) (urand() * 40),
							c1,
							c2;

				for (int e = 0; e < nex; e++)
				{
					double		u = urand();

					ex[e] = u < 0.1 ? 0 : u < 0.15 ? -3 : u < 0.2 ? V + 2 :
						u < 0.3 && e > 0 ? ex[e - 1] : 1 + (int32_t) (urand() * (V - 1));
				}
				memset(mask, 0, V);
				for (int e = 0; e < nex; e++)
					if (ex[e] > 0 && ex[e] < V)
						mask[ex[e]] = 1;
				c1 = t4r_infer(ctx, q.items[i], q.ts[i], q.s[i].n, NULL, sc) == T4R_OK ?
					t4r_topk(sc, V, ks[kk], mask, r1, v1) : -1;
				c2 = t4r_infer_topk(ctx, q.items[i], q.ts[i], q.s[i].n, ks[kk], ex, nex, r2, v2);
				if (c1 < 0 || c1 != c2 || memcmp(r1, r2, sizeof(int32_t) * c1) != 0 ||
					memcmp(v1, v2, sizeof(t4r_real) * c1) != 0)
				{
					ok = 0;
					tap_diag("V %d seq %d k %d: counts %d / %d", V, i, ks[kk], c1, c2);
				}
				cases++;
			}
		tap_ok(t4r_infer_topk(ctx, q.items[0], q.ts[0], 0, 5, NULL, 0, r2, v2) == T4R_EINVAL &&
			   t4r_infer_topk(ctx, q.items[0], q.ts[0], q.s[0].n, -1, NULL, 0, r2, v2) == T4R_EINVAL &&
			   t4r_infer_topk(ctx, q.items[0], q.ts[0], q.s[0].n, 5, NULL, 3, r2, v2) == T4R_EINVAL &&
			   t4r_infer_topk(ctx, q.items[0], q.ts[0], q.s[0].n, 0, NULL, 0, NULL, NULL) == 0,
			   "t4r_infer_topk (V %d): bad n, k < 0, exclude NULL with nexclude > 0 -> T4R_EINVAL; k = 0 -> 0", V);
		free(sc);
		free(mask);
		free(r1);
		free(r2);
		free(v1);
		free(v2);
		t4r_infer_ctx_free(ctx);
		free_seqs(&q);
		t4r_model_free(m);
	}
	tap_ok(ok, "t4r_infer_topk == t4r_infer + t4r_topk: same rows, bitwise the same scores (%d cases, "
		   "V around the %d-row score block, k 1 .. V+5, exclusions with duplicates and bad rows)",
		   cases, T4R_SCORE_BLOCK);
}

int
main(void)
{
	test_reference("movielens", 1, 0, 2, 40);
	test_reference("amazon", 1, 1, 2, 20);
	test_reference("movielens", 0, 0, 2, 16);
	test_reference("amazon", 1, 0, 1, 12);
	test_reference("movielens", 0, 1, 1, 9);
	test_reference("amazon", 1, 1, 3, 17);
	test_long_and_batch();
	test_infer_topk();
	test_trainer();
	test_interrupt();
	test_masks();
	test_init();
	test_wrap();
	return tap_done();
}
