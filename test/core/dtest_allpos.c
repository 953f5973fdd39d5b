/*
 * dtest_allpos.c - double build: all_positions training is the same
 * learning problem as the per-prefix form for a causal model.
 *
 * On a small robust (causal) model, without dropout:
 *  1. one all_positions pass over whole histories (m <= L inputs, a loss at
 *     every position) gives the same summed loss as the per-prefix samples
 *     of the same histories (one trainer call per form), and the same
 *     gradient of every parameter;
 *  2. the same for windows that start inside a history with loss_from > 0
 *     against the prefixes cut to the window (the context the window gives);
 *  3. t4r_window_plan trains every target of a history exactly once, the
 *     first L with their full context and the rest with >= L/2 + 1 items;
 *  4. is_time = false (causal too) with all_positions is accepted, and
 *     official time features with all_positions are rejected.
 * The references are computed by the per-prefix code path (the published
 * form), not by the code under test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TAP_RNG_SEED 0x2545F4914F6CDD1DULL
#include "tap.h"
#include "tim4rec.h"


#define NU 4
#define MAXN 40

static void
make_cfg(t4r_config *c, int training, int is_time, int L, int V, int layers)
{
	t4r_config_preset(c, "movielens");
	c->hidden_size = 8;
	c->expand = 2;
	c->head_dim = 4;
	c->d_state = 4;
	c->d_conv = 4;
	c->max_seq_len = L;
	c->chunk_size = 4;
	c->num_layers = layers;
	c->is_time = is_time;
	c->time_features = T4R_TIME_ROBUST;
	c->time_scale = 1000.0;
	c->training = training;
	c->dropout_prob = 0;
	c->time_dropout = 0;
	c->n_items = V;
	c->batch_size = 4096;
}

/* loss (mean) and gradient; the trainer is created on m */
static double
loss_grad(t4r_model *m, const t4r_sample *s, int ns, t4r_real *grad)
{
	t4r_trainer *tr = NULL;
	t4r_train_opts o;
	char		err[256];
	double		l = 0;
	int			rc;

	memset(&o, 0, sizeof o);
	o.threads = 1;
	o.mem_budget = 0;
	if (t4r_trainer_create(m, &o, &tr, err, sizeof err) != T4R_OK)
	{
		fprintf(stderr, "trainer: %s\n", err);
		exit(2);
	}
	rc = t4r_trainer_loss_grad(tr, s, ns, 0, &l);
	if (rc != T4R_OK)
	{
		fprintf(stderr, "loss_grad: %d\n", rc);
		exit(2);
	}
	memcpy(grad, t4r_trainer_grads(tr), sizeof(t4r_real) * m->layout.total);
	t4r_trainer_free(tr);
	return l;
}

static double
rel_diff(const t4r_real *a, const t4r_real *b, size_t n)
{
	double		num = 0,
				den = 0;

	for (size_t i = 0; i < n; i++)
	{
		num += (a[i] - b[i]) * (a[i] - b[i]);
		den += b[i] * b[i];
	}
	return sqrt(num) / (sqrt(den) > 1e-300 ? sqrt(den) : 1e-300);
}

static void
run(int is_time, int layers)
{
	int			L = 12,
				V = 17;
	t4r_config	ca,
				cp;
	t4r_model  *ma = NULL,
			   *mp = NULL;
	char		err[256];
	int32_t		items[NU][MAXN];
	double		ts[NU][MAXN];
	int			len[NU] = {2, 7, L + 1, 5};	/* inputs + 1 target each: m = len - 1 <= L */
	t4r_sample	win[NU + 1],
				pre[NU * MAXN];
	int			nwin = 0,
				npre = 0;
	t4r_real   *ga,
			   *gp;
	double		la,
				lp,
				worst;

	make_cfg(&ca, T4R_TRAIN_ALL_POSITIONS, is_time, L, V, layers);
	make_cfg(&cp, T4R_TRAIN_PREFIXES, is_time, L, V, layers);
	if (t4r_model_create(&ca, &ma, err, sizeof err) != T4R_OK ||
		t4r_model_create(&cp, &mp, err, sizeof err) != T4R_OK)
	{
		tap_ok(0, "create: %s", err);
		return;
	}
	t4r_model_init(ma, 11);
	for (size_t i = 0; i < ma->layout.total; i++)
		ma->params[i] += (t4r_real) (0.2 * (urand() - 0.5));
	memcpy(mp->params, ma->params, sizeof(t4r_real) * ma->layout.total);

	for (int u = 0; u < NU; u++)
	{
		double		t = 1.6e9 + 1e5 * urand();

		for (int i = 0; i < len[u]; i++)
		{
			items[u][i] = 1 + (int32_t) (urand() * (V - 1));
			t += (urand() < 0.2) ? 0 : floor(1 + 20000 * urand());
			ts[u][i] = t;
		}
	}
	/* whole histories: one window per user, loss everywhere */
	for (int u = 0; u < NU; u++)
	{
		int			m = len[u] - 1;

		memset(&win[nwin], 0, sizeof win[0]);
		win[nwin].items = items[u];
		win[nwin].ts = ts[u];
		win[nwin].n = m;
		win[nwin].targets = items[u] + 1;
		win[nwin].loss_from = 0;
		win[nwin].target = items[u][m];
		nwin++;
		for (int j = 1; j <= m; j++)
		{
			memset(&pre[npre], 0, sizeof pre[0]);
			pre[npre].items = items[u];
			pre[npre].ts = ts[u];
			pre[npre].n = j;
			pre[npre].target = items[u][j];
			npre++;
		}
	}
	ga = malloc(sizeof(t4r_real) * ma->layout.total);
	gp = malloc(sizeof(t4r_real) * ma->layout.total);
	la = loss_grad(ma, win, nwin, ga);
	lp = loss_grad(mp, pre, npre, gp);
	tap_diag("is_time %d, %d layers: summed loss all_positions %.12f, prefixes %.12f (%d targets)",
			 is_time, layers, la * npre, lp * npre, npre);
	tap_ok(fabs(la - lp) * npre < 1e-9 * (1 + fabs(lp * npre)),
		   "is_time %d, %d layers: summed per-position loss of one pass == sum of the per-prefix losses",
		   is_time, layers);
	worst = rel_diff(ga, gp, ma->layout.total);
	tap_ok(worst < 1e-10, "is_time %d, %d layers: gradients equal (rel L2 %.3g)", is_time, layers, worst);

	/* a window inside a history, loss only from position lf */
	{
		int			u = 2,
					a = 3,
					n = L - 3,
					lf = 4;
		t4r_sample	w1;

		memset(&w1, 0, sizeof w1);
		w1.items = items[u] + a;
		w1.ts = ts[u] + a;
		w1.n = n;
		w1.targets = items[u] + a + 1;
		w1.loss_from = lf;
		w1.target = items[u][a + n];
		npre = 0;
		for (int j = lf; j < n; j++)
		{
			/* prefix: the window's items a .. a+j, target a+j+1 */
			memset(&pre[npre], 0, sizeof pre[0]);
			pre[npre].items = items[u] + a;
			pre[npre].ts = ts[u] + a;
			pre[npre].n = j + 1;
			pre[npre].target = items[u][a + j + 1];
			npre++;
		}
		la = loss_grad(ma, &w1, 1, ga);
		lp = loss_grad(mp, pre, npre, gp);
		tap_ok(fabs(la - lp) < 1e-11 * (1 + fabs(lp)) && rel_diff(ga, gp, ma->layout.total) < 1e-10,
			   "is_time %d, %d layers: window with loss_from > 0 == its prefixes (loss %.10f vs %.10f)",
			   is_time, layers, la, lp);
	}
	free(ga);
	free(gp);
	t4r_model_free(ma);
	t4r_model_free(mp);
}

static void
window_plan(void)
{
	int			ok = 1;

	for (int L = 2; L <= 13 && ok; L++)
		for (int64_t m = 1; m <= 5 * L + 3 && ok; m++)
		{
			int64_t		nw = t4r_window_plan(m, L, NULL, NULL, NULL);
			int64_t    *st = malloc(sizeof(int64_t) * nw);
			int32_t    *ln = malloc(sizeof(int32_t) * nw);
			int32_t    *lf = malloc(sizeof(int32_t) * nw);
			int		   *cnt = calloc(m, sizeof(int));

			t4r_window_plan(m, L, st, ln, lf);
			for (int64_t w = 0; w < nw; w++)
			{
				if (st[w] < 0 || ln[w] < 1 || ln[w] > L || st[w] + ln[w] > m || lf[w] < 0 ||
					lf[w] >= ln[w])
					ok = 0;
				for (int j = lf[w]; ok && j < ln[w]; j++)
				{
					int64_t		in = st[w] + j;	/* input index, target in + 1 */
					int64_t		ctx = j + 1;
					int64_t		full = in + 1 < L ? in + 1 : L;

					cnt[in]++;
					if (in < L && ctx != full)
						ok = 0;
					if (ctx < L / 2 + 1 && ctx != full)
						ok = 0;
				}
			}
			for (int64_t i = 0; i < m; i++)
				if (cnt[i] != 1)
					ok = 0;
			if (!ok)
				tap_diag("plan fails for m=%lld L=%d", (long long) m, L);
			free(st);
			free(ln);
			free(lf);
			free(cnt);
		}
	tap_ok(ok, "window plan: every target exactly once, full context for the first L, >= L/2+1 after");
}

int
main(void)
{
	t4r_config	c;
	char		err[256];

	run(1, 2);
	run(1, 1);
	run(1, 3);
	run(0, 2);
	window_plan();
	make_cfg(&c, T4R_TRAIN_ALL_POSITIONS, 1, 12, 17, 2);
	c.time_features = T4R_TIME_OFFICIAL;
	tap_ok(t4r_config_validate(&c, err, sizeof err) == T4R_EINVAL && strstr(err, "robust"),
		   "all_positions with official time features is rejected: %s", err);
	c.is_time = 0;
	tap_ok(t4r_config_validate(&c, err, sizeof err) == T4R_OK,
		   "all_positions without the time path is accepted");
	return tap_done();
}
