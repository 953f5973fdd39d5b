/*
 * dtest_grad_model.c - double build: the analytic gradient of the mean
 * cross-entropy (t4r_trainer_loss_grad) against central finite differences
 * of the loss, for every parameter tensor, on small configurations: time
 * path on/off, p2p on/off, 1/2/3 layers, conv width 3/4, dropout off/on,
 * batches mixing lengths 1, short, L-1, L and > L; the robust (causal) time
 * path, trained per prefix and on all positions (a loss at every position
 * from loss_from on, windows longer than L included); label_smoothing and
 * tie_targets (soft targets), whose loss is also checked against a plain
 * evaluation of its formula on the model's scores.
 *
 * The weights are the docs/MODEL.md initialisation plus random noise, so that no
 * path is degenerate (layer norm weights != 1, biases != 0, ...).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x9E3779B97F4A7C15ULL
#include "tap.h"
#include "tim4rec.h"


typedef struct gcase
{
	const char *name;
	const char *preset;
	int			is_time,
				p2p,
				layers,
				K;
	double		dropout,
				tdropout;
	int			robust,
				allpos;
	double		ls;				/* label_smoothing */
	int			tt;				/* tie_targets */
} gcase;

#define NS 7
static int	lens_tmpl[NS] = {1, 3, -1, 0, 3, 5, 2};	/* -1 = L-1, 0 = L, 3 at index 4 = L+3 */

static double worst_all = 0;

static double
loss_at(t4r_trainer *tr, const t4r_sample *s, int ns, int training)
{
	double		l = 0;
	int			rc = t4r_trainer_loss_grad(tr, s, ns, training, &l);

	if (rc != T4R_OK)
	{
		fprintf(stderr, "loss_grad failed: %d\n", rc);
		exit(2);
	}
	return l;
}

static double
fd5(t4r_trainer *tr, const t4r_sample *smp, int training, t4r_real *p, double h)
{
	t4r_real	p0 = *p;
	double		lp,
				lm,
				lp2,
				lm2;

	*p = p0 + h;
	lp = loss_at(tr, smp, NS, training);
	*p = p0 - h;
	lm = loss_at(tr, smp, NS, training);
	*p = p0 + 2 * h;
	lp2 = loss_at(tr, smp, NS, training);
	*p = p0 - 2 * h;
	lm2 = loss_at(tr, smp, NS, training);
	*p = p0;
	return (8 * (lp - lm) - (lp2 - lm2)) / (12 * h);
}

static void
run_case(const gcase *gc)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_trainer *tr = NULL;
	t4r_train_opts opts;
	char		err[256];
	int			L = 10,
				V = 13;
	int32_t    *items[NS];
	int32_t    *tgts[NS];
	int32_t		soft[NS][3];
	double	   *ts[NS];
	t4r_sample	smp[NS];
	t4r_real   *an;
	double		loss;
	double		worst = 0;
	const char *worst_name = "";
	int			zero_ok = 1;
	int			training = gc->dropout > 0 || gc->tdropout > 0;

	t4r_config_preset(&c, gc->preset);
	c.hidden_size = 8;
	c.expand = 2;
	c.head_dim = 4;
	c.d_state = 4;
	c.d_conv = gc->K;
	c.max_seq_len = L;
	c.chunk_size = 4;
	c.num_layers = gc->layers;
	c.is_time = gc->is_time;
	c.p2p_residual = gc->p2p;
	c.dropout_prob = gc->dropout;
	c.time_dropout = gc->tdropout;
	c.n_items = V;
	c.batch_size = NS;
	c.time_features = gc->robust ? T4R_TIME_ROBUST : T4R_TIME_OFFICIAL;
	c.time_scale = 900.0;
	c.training = gc->allpos ? T4R_TRAIN_ALL_POSITIONS : T4R_TRAIN_PREFIXES;
	c.label_smoothing = gc->ls;
	c.tie_targets = gc->tt;
	if (t4r_model_create(&c, &m, err, sizeof err) != T4R_OK)
	{
		tap_ok(0, "%s: model create: %s", gc->name, err);
		return;
	}
	t4r_model_init(m, 7);
	/* move away from the initialisation */
	for (int ti = 0; ti < m->layout.n; ti++)
	{
		const t4r_tensor *t = &m->layout.t[ti];
		double		sc = 0.3;

		if (strstr(t->name, "A_log") || strstr(t->name, "dt_bias"))
			sc = 0.2;
		if (strstr(t->name, "mlp4time") || strstr(t->name, "time_mlp") ||
			strstr(t->name, "in_proj.weight") ||
			strstr(t->name, "fc"))
			sc = 0.25;
		for (size_t i = 0; i < t->numel; i++)
			m->params[t->offset + i] += (t4r_real) (sc * nrand());
	}
	/* samples */
	for (int s = 0; s < NS; s++)
	{
		int			n = lens_tmpl[s];
		double		t0 = 1.1e9 + 1e6 * urand();

		if (n == -1)
			n = L - 1;
		else if (n == 0)
			n = L;
		if (s == 4)
			n = L + 3;
		items[s] = malloc(sizeof(int32_t) * n);
		ts[s] = malloc(sizeof(double) * n);
		for (int i = 0; i < n; i++)
		{
			items[s][i] = 1 + (int32_t) (urand() * (V - 1));
			if (i > 0 && urand() < 0.2)
				t0 += 0;		/* equal timestamps */
			else if (i > 0)
				t0 += floor(1 + 5000 * urand());
			ts[s][i] = t0;
		}
		smp[s].items = items[s];
		smp[s].ts = ts[s];
		smp[s].n = n;
		smp[s].target = (int32_t) (urand() * V);	/* row 0 possible too */
		tgts[s] = malloc(sizeof(int32_t) * n);
		for (int i = 0; i < n; i++)
			tgts[s][i] = (int32_t) (urand() * V);
		smp[s].targets = NULL;
		smp[s].loss_from = 0;
		if (gc->allpos && s % 3 != 2)
		{
			/* a loss at every position from loss_from on (s % 3 == 2: a
			 * plain sample, one loss at the end) */
			smp[s].targets = tgts[s];
			smp[s].loss_from = (s == 4) ? 5 : (s % 2) * (n / 2);
		}
	}
	smp[0].target = 0;
	/* tie_targets: 1, 2 or 3 targets, a row listed twice in sample 5 */
	for (int s = 0; s < NS; s++)
	{
		soft[s][0] = smp[s].target;
		/* fixed rows: drawing them would shift the shared random stream
		 * and so the other cases' checked elements */
		soft[s][1] = 1 + (5 * s + 3) % (V - 1);
		soft[s][2] = s == 5 ? soft[s][1] : 1 + (7 * s + 1) % (V - 1);
		smp[s].soft = soft[s];
		smp[s].nsoft = 1 + s % 3;
	}

	memset(&opts, 0, sizeof opts);
	opts.threads = 1;
	/* small budget: several micro-batches per batch */
	{
		size_t		need = 0;
		int			mb = 0;

		opts.mem_budget = 0;
		t4r_trainer_estimate(&c, &opts, &need, &mb);
	}
	if (t4r_trainer_create(m, &opts, &tr, err, sizeof err) != T4R_OK)
	{
		tap_ok(0, "%s: trainer create: %s", gc->name, err);
		t4r_model_free(m);
		return;
	}
	loss = loss_at(tr, smp, NS, training);
	if ((gc->ls > 0 || gc->tt) && !training && !gc->allpos)
	{
		/* the loss against its formula on the model's own scores: mean
		 * over samples of log sum exp(z) - sum_v q_v z_v, q built plainly */
		double		plain = 0;
		t4r_real   *sc = malloc(sizeof(t4r_real) * NS * V);

		if (t4r_infer_batch(m, smp, NS, 1, NULL, sc) != T4R_OK)
			tap_ok(0, "%s: inference", gc->name);
		for (int s = 0; s < NS; s++)
		{
			const t4r_real *z = sc + (size_t) s * V;
			double		q[64] = {0},
						mx = z[0],
						se = 0,
						dot = 0;
			int			nt = gc->tt ? smp[s].nsoft : 1;

			for (int v = 0; v < V; v++)
				q[v] = gc->ls / V;
			for (int j = 0; j < nt; j++)
				q[gc->tt ? smp[s].soft[j] : smp[s].target] += (1 - gc->ls) / nt;
			for (int v = 0; v < V; v++)
				mx = z[v] > mx ? z[v] : mx;
			for (int v = 0; v < V; v++)
			{
				se += exp(z[v] - mx);
				dot += q[v] * z[v];
			}
			plain += log(se) + mx - dot;
		}
		plain /= NS;
		tap_ok(fabs(plain - loss) < 1e-10 * (1 + fabs(plain)),
			   "%s: loss %.12f = its formula on the scores %.12f", gc->name, loss, plain);
		free(sc);
	}
	an = malloc(sizeof(t4r_real) * m->layout.total);
	memcpy(an, t4r_trainer_grads(tr), sizeof(t4r_real) * m->layout.total);

	for (int ti = 0; ti < m->layout.n; ti++)
	{
		const t4r_tensor *t = &m->layout.t[ti];
		int			nsamp = t->numel <= 48 ? (int) t->numel : 48;
		double		num = 0,
					den = 0,
					maxan = 0,
					maxfd = 0;

		for (int k = 0; k < nsamp; k++)
		{
			size_t		idx = t->numel <= 48 ? (size_t) k : (size_t) (urand() * t->numel);
			t4r_real   *p = &m->params[t->offset + idx];
			t4r_real	p0 = *p;
			double		fd;
			double		fd1,
						fd2,
						a;

			/* five-point stencils at two step sizes (truncation O(h^4),
			 * rounding O(eps/h)); a hardswish kink inside one stencil spoils
			 * only that one, so the closer of the two is used */
			fd1 = fd5(tr, smp, training, p, 1e-4 * (fabs(p0) > 1 ? fabs(p0) : 1));
			fd2 = fd5(tr, smp, training, p, 3e-4 * (fabs(p0) > 1 ? fabs(p0) : 1));
			*p = p0;
			a = an[t->offset + idx];
			fd = fabs(fd1 - a) <= fabs(fd2 - a) ? fd1 : fd2;
			num += (fd - a) * (fd - a);
			den += fd * fd;
			if (fabs(a) > maxan)
				maxan = fabs(a);
			if (fabs(fd) > maxfd)
				maxfd = fabs(fd);
		}
		if (maxfd < 1e-9 && maxan < 1e-9)
		{
			/* a parameter without gradient (last layer's gate / time LN) */
			int			last_gate = strstr(t->name, "time_gate") ||
				strstr(t->name, "time_layer_norm") || strstr(t->name, "time_affine");

			if (!last_gate)
			{
				tap_diag("%s: %s has zero gradient", gc->name, t->name);
				zero_ok = 0;
			}
			continue;
		}
		{
			double		rel = sqrt(num) / (sqrt(den) > 1e-12 ? sqrt(den) : 1e-12);

			if (getenv("GRAD_VERBOSE"))
				tap_diag("  %-45s rel %.3g  |fd| %.3g", t->name, rel, sqrt(den));
			if (rel > worst)
			{
				worst = rel;
				worst_name = t->name;
			}
		}
	}
	/* tensors that must get no gradient: the last layer's gate and time LN */
	if (gc->is_time)
	{
		char		nm[T4R_NAME_MAX];
		const char *sfx_o[] = {"ssd.time_gate_residual.1.weight", "ssd.time_gate_residual.1.bias",
		"ssd.time_layer_norm.weight", "ssd.time_layer_norm.bias"};
		const char *sfx_r[] = {"ssd.time_gate.weight", "ssd.time_gate.bias",
		"ssd.time_affine.weight", "ssd.time_affine.bias"};
		const char **sfx = gc->robust ? sfx_r : sfx_o;

		for (int k = 0; k < 4; k++)
		{
			int			ti;

			snprintf(nm, sizeof nm, "ssd_layers.%d.%s", gc->layers - 1, sfx[k]);
			ti = t4r_layout_find(&m->layout, nm);
			if (ti < 0)
				zero_ok = 0;
			else
				for (size_t i = 0; i < m->layout.t[ti].numel; i++)
					if (an[m->layout.t[ti].offset + i] != 0)
						zero_ok = 0;
		}
	}
	tap_diag("%s: loss %.6f, worst relative error %.3g (%s)", gc->name, loss, worst, worst_name);
	tap_ok(worst < 1e-6, "%s: gradient vs finite differences (rel L2 per tensor < 1e-6)", gc->name);
	tap_ok(zero_ok, "%s: exactly the expected tensors have zero gradient", gc->name);
	if (worst > worst_all)
		worst_all = worst;
	free(an);
	for (int s = 0; s < NS; s++)
	{
		free(items[s]);
		free(tgts[s]);
		free(ts[s]);
	}
	t4r_trainer_free(tr);
	t4r_model_free(m);
}

int
main(void)
{
	static const gcase cases[] = {
		{"time, gate scalar, 2 layers, K4, eval", "movielens", 1, 0, 2, 4, 0, 0, 0, 0, 0, 0},
		{"time, p2p, 2 layers, K3, dropout", "amazon", 1, 1, 2, 3, 0.2, 0.3, 0, 0, 0, 0},
		{"no time, 2 layers, K4, dropout", "movielens", 0, 0, 2, 4, 0.3, 0, 0, 0, 0, 0},
		{"time, p2p, 1 layer, K4, eval", "amazon", 1, 1, 1, 4, 0, 0, 0, 0, 0, 0},
		{"time, gate scalar, 1 layer, K3, dropout", "movielens", 1, 0, 1, 3, 0.2, 0.2, 0, 0, 0, 0},
		{"no time, 1 layer, K4, eval", "amazon", 0, 0, 1, 4, 0, 0, 0, 0, 0, 0},
		{"time, gate scalar, 3 layers, K4, dropout", "movielens", 1, 0, 3, 4, 0.2, 0.25, 0, 0, 0, 0},
		{"time, p2p, 3 layers, K2, eval", "movielens", 1, 1, 3, 2, 0, 0, 0, 0, 0, 0},
		{"robust, 2 layers, K4, eval", "movielens", 1, 0, 2, 4, 0, 0, 1, 0, 0, 0},
		{"robust, 2 layers, K3, dropout", "amazon", 1, 1, 2, 3, 0.2, 0.3, 1, 0, 0, 0},
		{"robust, all_positions, 2 layers, K4, eval", "movielens", 1, 0, 2, 4, 0, 0, 1, 1, 0, 0},
		{"robust, all_positions, 3 layers, K4, dropout", "movielens", 1, 0, 3, 4, 0.2, 0.25, 1, 1, 0, 0},
		{"robust, all_positions, 1 layer, K2, dropout", "amazon", 1, 0, 1, 2, 0.3, 0.2, 1, 1, 0, 0},
		{"no time, all_positions, 2 layers, K4, dropout", "movielens", 0, 0, 2, 4, 0.2, 0, 0, 1, 0, 0},
		{"label_smoothing 0.1, time, gate scalar, 2 layers, K4, eval", "movielens", 1, 0, 2, 4, 0, 0, 0, 0, 0.1, 0},
		{"tie_targets, time, p2p, 3 layers, K2, eval", "movielens", 1, 1, 3, 2, 0, 0, 0, 0, 0, 1},
		{"tie_targets, label_smoothing 0.3, 1 layer, K3, eval", "movielens", 1, 0, 1, 3, 0, 0, 0, 0, 0.3, 1},
		{"tie_targets, label_smoothing 0.2, p2p, 2 layers, K3, dropout", "amazon", 1, 1, 2, 3, 0.2, 0.3, 0, 0, 0.2, 1},
		{"label_smoothing 0.2, robust, all_positions, 2 layers, dropout", "movielens", 1, 0, 2, 4, 0.2, 0.25, 1, 1, 0.2, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	tap_diag("largest relative gradient error over all cases: %.3g", worst_all);
	return tap_done();
}
