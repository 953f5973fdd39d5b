/*
 * test_golden.c - the golden movielens case (../shared/fixtures, or
 * $T4R_FIXTURES): inference of the 9 cases (hidden vector and scores) with
 * t4r_infer and t4r_infer_batch, then the loss and every parameter gradient
 * of one deterministic training step (dropout off) against the fixture's
 * float64 values.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tap.h"
#include "tim4rec.h"

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? n : 1);
	if (buf && fread(buf, 1, n, f) != (size_t) n)
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t) n;
	return buf;
}

/* ||a - b|| / ||b|| */
static double
rel_l2(const t4r_real *a, const double *b, size_t n)
{
	double		num = 0,
				den = 0;

	for (size_t i = 0; i < n; i++)
	{
		num += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
		den += b[i] * b[i];
	}
	return sqrt(num) / (den > 0 ? sqrt(den) : 1);
}

static double *
json_doubles(json_t *arr, size_t *n)
{
	double	   *v;

	*n = json_array_size(arr);
	v = malloc(sizeof(double) * (*n ? *n : 1));
	for (size_t i = 0; i < *n; i++)
		v[i] = json_number_value(json_array_get(arr, i));
	return v;
}

int
main(void)
{
	const char *dir = getenv("T4R_FIXTURES");
	char		path[1024];
	uint8_t    *wbuf,
			   *gbuf;
	size_t		wlen,
				glen;
	json_t	   *root;
	json_error_t jerr;
	t4r_model  *m = NULL;
	char		err[256];
	int			ncase;
	int32_t   **items;
	double	  **ts;
	double	  **exp_h,
			  **exp_s;
	int		   *lens;
	t4r_sample *smp;
	int			d,
				V;
	double		max_h = 0,
				max_s = 0,
				max_bh = 0,
				max_bs = 0;

	if (!dir)
		dir = "../shared/fixtures";
	snprintf(path, sizeof path, "%s/golden_movielens.safetensors", dir);
	wbuf = slurp(path, &wlen);
	if (!wbuf)
	{
		printf("ok 1 - golden case # SKIP fixtures absent (%s)\n1..1\n", path);
		return 0;
	}
	snprintf(path, sizeof path, "%s/golden_movielens.json", dir);
	root = json_load_file(path, 0, &jerr);
	snprintf(path, sizeof path, "%s/golden_movielens.grads.safetensors", dir);
	gbuf = slurp(path, &glen);
	if (!root || !gbuf)
	{
		printf("ok 1 - golden case # SKIP fixtures incomplete\n1..1\n");
		return 0;
	}

	err[0] = 0;
	{
		int			rrc = t4r_safetensors_read(wbuf, wlen, NULL, &m, err, sizeof err);

		if (!tap_ok(rrc == T4R_OK, "read golden weights %s", err))
			return tap_done();
	}
	d = m->dims.d;
	V = m->dims.V;
	tap_ok(V == (int) json_integer_value(json_object_get(root, "n_rows")) && d == 64 &&
		   m->dims.L == 200, "golden model: V = %d, d = %d, L = %d", V, d, m->dims.L);

	{
		json_t	   *cases = json_object_get(root, "cases");

		ncase = (int) json_array_size(cases);
		items = calloc(ncase, sizeof(*items));
		ts = calloc(ncase, sizeof(*ts));
		exp_h = calloc(ncase, sizeof(*exp_h));
		exp_s = calloc(ncase, sizeof(*exp_s));
		lens = calloc(ncase, sizeof(int));
		smp = calloc(ncase, sizeof(t4r_sample));
		for (int c = 0; c < ncase; c++)
		{
			json_t	   *cs = json_array_get(cases, c);
			json_t	   *it = json_object_get(cs, "items");
			size_t		n,
						nh,
						nsc;

			n = json_array_size(it);
			lens[c] = (int) n;
			items[c] = malloc(sizeof(int32_t) * n);
			for (size_t i = 0; i < n; i++)
				items[c][i] = (int32_t) json_integer_value(json_array_get(it, i));
			ts[c] = json_doubles(json_object_get(cs, "ts"), &n);
			exp_h[c] = json_doubles(json_object_get(cs, "seq_output"), &nh);
			exp_s[c] = json_doubles(json_object_get(cs, "scores"), &nsc);
			if (nh != (size_t) d || nsc != (size_t) V || n != (size_t) lens[c])
			{
				tap_ok(0, "case %d: malformed fixture", c);
				return tap_done();
			}
			smp[c].items = items[c];
			smp[c].ts = ts[c];
			smp[c].n = lens[c];
		}
	}
	tap_ok(ncase == 9, "9 golden cases (%d)", ncase);

	/* inference, one at a time */
	{
		t4r_infer_ctx *ctx = NULL;
		t4r_real   *h = malloc(sizeof(t4r_real) * d);
		t4r_real   *s = malloc(sizeof(t4r_real) * V);
		int			ok = t4r_infer_ctx_create(m, &ctx) == T4R_OK;

		for (int c = 0; ok && c < ncase; c++)
		{
			double		eh,
						es;

			if (t4r_infer(ctx, items[c], ts[c], lens[c], h, s) != T4R_OK)
			{
				ok = 0;
				break;
			}
			eh = rel_l2(h, exp_h[c], d);
			es = rel_l2(s, exp_s[c], V);
			tap_diag("case %d (n = %d): hidden rel L2 %.3g, scores rel L2 %.3g", c, lens[c], eh, es);
			if (eh > max_h)
				max_h = eh;
			if (es > max_s)
				max_s = es;
		}
		tap_ok(ok, "t4r_infer runs on every case");
		tap_ok(ok && max_h < 1e-4, "t4r_infer hidden vectors: max relative L2 error %.3g < 1e-4", max_h);
		tap_ok(ok && max_s < 1e-4, "t4r_infer scores: max relative L2 error %.3g < 1e-4", max_s);
		free(h);
		free(s);
		t4r_infer_ctx_free(ctx);
	}

	/* inference, batched on two threads */
	{
		t4r_real   *h = malloc(sizeof(t4r_real) * d * ncase);
		t4r_real   *s = malloc(sizeof(t4r_real) * V * ncase);
		int			ok = t4r_infer_batch(m, smp, ncase, 2, h, s) == T4R_OK;

		for (int c = 0; ok && c < ncase; c++)
		{
			double		eh = rel_l2(h + (size_t) c * d, exp_h[c], d);
			double		es = rel_l2(s + (size_t) c * V, exp_s[c], V);

			if (eh > max_bh)
				max_bh = eh;
			if (es > max_bs)
				max_bs = es;
		}
		tap_ok(ok && max_bh < 1e-4 && max_bs < 1e-4,
			   "t4r_infer_batch (2 threads): max relative L2 error hidden %.3g, scores %.3g",
			   max_bh, max_bs);
		free(h);
		free(s);
	}

	/* the deterministic training step: loss and gradients */
	{
		json_t	   *tsj = json_object_get(root, "train_step");
		json_t	   *tg = json_object_get(tsj, "targets");
		double		exp_loss = json_number_value(json_object_get(tsj, "loss"));
		t4r_real   *gold = malloc(sizeof(t4r_real) * m->layout.total);
		double	   *goldd = malloc(sizeof(double) * m->layout.total);
		int			okread;

		for (int c = 0; c < ncase; c++)
			smp[c].target = (int32_t) json_integer_value(json_array_get(tg, c));
		okread = t4r_safetensors_read_into(gbuf, glen, &m->layout, gold, err, sizeof err) == T4R_OK;
		tap_ok(okread, "read golden gradients %s", okread ? "" : err);
		for (size_t i = 0; i < m->layout.total; i++)
			goldd[i] = gold[i];

		for (int threads = 1; okread && threads <= 2; threads++)
		{
			t4r_train_opts opts;
			t4r_trainer *tr = NULL;
			double		loss = 0,
						worst = 0,
						worst_zero = 0;
			const char *worst_name = "";
			int			ok;

			memset(&opts, 0, sizeof opts);
			opts.threads = threads;
			ok = t4r_trainer_create(m, &opts, &tr, err, sizeof err) == T4R_OK &&
				t4r_trainer_loss_grad(tr, smp, ncase, 0, &loss) == T4R_OK;
			if (!tap_ok(ok, "%d thread(s): loss and gradient computed", threads))
			{
				t4r_trainer_free(tr);
				continue;
			}
			tap_ok(fabs(loss - exp_loss) <= 1e-5 * fabs(exp_loss),
				   "%d thread(s): loss %.9f vs %.9f (rel %.3g)", threads, loss, exp_loss,
				   fabs(loss - exp_loss) / fabs(exp_loss));
			{
				const t4r_real *g = t4r_trainer_grads(tr);

				for (int ti = 0; ti < m->layout.n; ti++)
				{
					const t4r_tensor *t = &m->layout.t[ti];
					double		gn = 0;

					for (size_t i = 0; i < t->numel; i++)
						gn += goldd[t->offset + i] * goldd[t->offset + i];
					if (gn == 0)
					{
						for (size_t i = 0; i < t->numel; i++)
							if (fabs(g[t->offset + i]) > worst_zero)
								worst_zero = fabs(g[t->offset + i]);
					}
					else
					{
						double		e = rel_l2(g + t->offset, goldd + t->offset, t->numel);

						if (e > worst)
						{
							worst = e;
							worst_name = t->name;
						}
					}
				}
			}
			tap_diag("%d thread(s): worst gradient relative L2 error %.3g (%s); max |grad| where golden is 0: %.3g",
					 threads, worst, worst_name, worst_zero);
			tap_ok(worst < 1e-3, "%d thread(s): every parameter gradient within 1e-3 relative L2 (worst %.3g)",
				   threads, worst);
			tap_ok(worst_zero < 1e-9, "%d thread(s): zero golden gradients are zero here (max %.3g)",
				   threads, worst_zero);
			t4r_trainer_free(tr);
		}
		free(gold);
		free(goldd);
	}

	t4r_model_free(m);
	json_decref(root);
	free(wbuf);
	free(gbuf);
	return tap_done();
}
