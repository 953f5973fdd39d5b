/*
 * time_prior.c - does a causal, time-local popularity prior add to a
 * trained model?  A screen for a time feature outside the model
 * (test/bench/QUALITY.md, "Popularity at the time of the request").
 *
 *   build/time_prior --csv FILE [--model FILE.st] [--out PREFIX]
 *
 * The CSV as build/quality_core reads it (test/quality/qcsv.h; 5-core,
 * leave-one-out).  At the time t of a history's last input event,
 * D_j(t) = sum over every event of item j with ts < t (strictly: nothing of
 * that second or day, or later) of exp(-(t - ts) / tau).  With --model (a
 * model trained without refit, so that its validation targets are unseen,
 * e.g. build/quality_core --set refit=false --save FILE.st):
 * score_j = log_softmax(model)_j + alpha * log(1 + D_j(t)); (tau, alpha) is
 * chosen on validation NDCG@10 (alpha 0 is the model alone), test is read
 * once, and PREFIX_pair.tsv gets per-user test NDCG@10 (user, with the
 * prior, the model alone) for test/quality/paired_bootstrap.awk.  Without
 * --model: test NDCG@10 of ranking by D_j(t) alone, per tau (tau = 1e9
 * days is popularity so far).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tim4rec.h"
#include "qcsv.h"

#define NT 6
#define NA 9
static const double taud[NT] = {3, 14, 60, 240, 1000, 1e9};
static const double alpha[NA] = {0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5};

typedef struct
{
	double		t;
	int64_t		i;
} tev;

static int
cmp_tev(const void *a, const void *b)
{
	double		x = ((const tev *) a)->t,
				y = ((const tev *) b)->t;

	return (x > y) - (x < y);
}

/* the held-out targets of one split */
typedef struct
{
	int			nq;
	int32_t    *tgt;			/* target row */
	double	   *t;				/* time of the last input event */
	int64_t    *user;			/* external user id */
	int64_t    *pos,			/* the target's index in seq_items */
			   *off;			/* the user's first index */
	float	   *lp;				/* [nq * V] log-softmax of the model, or NULL */
} split;

static t4r_dataset *ds;
static int	V;
static tev *ev;					/* every event (time, item row), by time */
static int64_t nev;

static void
fail(const char *what, int rc, const char *err)
{
	fprintf(stderr, "time_prior: %s: %s (%s)\n", what, t4r_strerror(rc), err ? err : "");
	exit(1);
}

static void
model_scores(split *s, const t4r_model *m)
{
	const int	ch = 512;
	int			L = m->cfg.max_seq_len;
	t4r_sample *smp = calloc(ch, sizeof(t4r_sample));
	t4r_real   *sc = malloc((size_t) ch * V * sizeof(t4r_real));

	s->lp = malloc((size_t) s->nq * V * sizeof(float));
	for (int q0 = 0; q0 < s->nq; q0 += ch)
	{
		int			nc = s->nq - q0 < ch ? s->nq - q0 : ch;
		int			rc;

		for (int i = 0; i < nc; i++)
		{
			int64_t		p = s->pos[q0 + i],
						st = p - s->off[q0 + i] > L ? p - L : s->off[q0 + i];

			memset(&smp[i], 0, sizeof(smp[i]));
			smp[i].items = ds->seq_items + st;
			smp[i].ts = ds->seq_ts + st;
			smp[i].n = (int32_t) (p - st);
			smp[i].target = s->tgt[q0 + i];
		}
		if ((rc = t4r_infer_batch(m, smp, nc, 1, NULL, sc)) != T4R_OK)
			fail("t4r_infer_batch", rc, NULL);
		for (int i = 0; i < nc; i++)
		{
			const t4r_real *x = sc + (size_t) i * V;
			float	   *o = s->lp + (size_t) (q0 + i) * V;
			double		mx = -INFINITY,
						z = 0,
						lz;

			for (int j = 1; j < V; j++)
				mx = x[j] > mx ? x[j] : mx;
			for (int j = 1; j < V; j++)
				z += exp(x[j] - mx);
			lz = mx + log(z);
			o[0] = -INFINITY;
			for (int j = 1; j < V; j++)
				o[j] = (float) (x[j] - lz);
		}
	}
	free(smp);
	free(sc);
}

static void
split_build(split *s, int test, const t4r_model *m)
{
	memset(s, 0, sizeof(*s));
	s->tgt = malloc(ds->n_users * sizeof(int32_t));
	s->t = malloc(ds->n_users * sizeof(double));
	s->user = malloc(ds->n_users * sizeof(int64_t));
	s->pos = malloc(ds->n_users * sizeof(int64_t));
	s->off = malloc(ds->n_users * sizeof(int64_t));
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		off = ds->seq_off[u],
					n = ds->seq_off[u + 1] - off,
					p;

		if (n < 3)
			continue;
		p = off + (test ? n - 1 : n - 2);
		s->tgt[s->nq] = ds->seq_items[p];
		s->t[s->nq] = ds->seq_ts[p - 1];
		s->user[s->nq] = ds->user_ids[u];
		s->pos[s->nq] = p;
		s->off[s->nq] = off;
		s->nq++;
	}
	if (m)
		model_scores(s, m);
}

static double
ndcg10(int64_t r)
{
	return r < 10 ? 1.0 / log2((double) r + 2.0) : 0.0;
}

/*
 * NDCG@10 sums nd[tau][alpha] of split s, the queries taken in time order
 * while D follows the events before each query's time.  Without a model
 * the score is D alone (alpha ignored, nd[tau][0]).  only_tau >= 0: that
 * tau alone, and the per-query NDCG@10 of (only_tau, only_alpha) and of
 * alpha 0 into sel / base.
 */
static void
evaluate(const split *s, double nd[NT][NA], int only_tau, int only_alpha, double *sel, double *base)
{
	tev		   *qs = malloc(s->nq * sizeof(tev));
	double	   *D = malloc(V * sizeof(double));
	float	   *pr = malloc(V * sizeof(float));

	for (int q = 0; q < s->nq; q++)
	{
		qs[q].t = s->t[q];
		qs[q].i = q;
	}
	qsort(qs, s->nq, sizeof(tev), cmp_tev);
	for (int ti = 0; ti < NT; ti++)
	{
		double		tau = taud[ti] * 86400.0,
					tc = -INFINITY;
		int64_t		e = 0;

		if (only_tau >= 0 && ti != only_tau)
			continue;
		memset(D, 0, V * sizeof(double));
		for (int k = 0; k < s->nq; k++)
		{
			int			q = (int) qs[k].i,
						g = s->tgt[q];
			double		t = qs[k].t;

			if (t != tc)
			{
				if (isfinite(tc))
				{
					double		f = exp(-(t - tc) / tau);

					for (int j = 0; j < V; j++)
						D[j] *= f;
				}
				tc = t;
				for (; e < nev && ev[e].t < t; e++)
					D[ev[e].i] += exp(-(t - ev[e].t) / tau);
				for (int j = 0; j < V; j++)
					pr[j] = (float) log1p(D[j]);
			}
			for (int ai = 0; ai < (s->lp ? NA : 1); ai++)
			{
				const float *lp = s->lp ? s->lp + (size_t) q * V : NULL;
				float		a = (float) alpha[ai],
							st = lp ? lp[g] + a * pr[g] : pr[g];
				int64_t		r = 0;

				if (only_tau >= 0 && ai != only_alpha && ai != 0)
					continue;
				for (int j = 1; j < V; j++)
				{
					float		v = lp ? lp[j] + a * pr[j] : pr[j];

					if (j != g && (v > st || (v == st && j < g)))
						r++;
				}
				nd[ti][ai] += ndcg10(r);
				if (sel && ai == only_alpha)
					sel[q] = ndcg10(r);
				if (base && ai == 0)
					base[q] = ndcg10(r);
			}
		}
	}
	free(qs);
	free(D);
	free(pr);
}

int
main(int argc, char **argv)
{
	const char *csv = NULL,
			   *mfile = NULL,
			   *out = "time_prior";
	int64_t    *u,
			   *it,
			   *ord;
	double	   *ts;
	size_t		n;
	char		err[512] = "";
	int			rc;
	t4r_model  *m = NULL;
	split		sv,
				st;
	double		nv[NT][NA] = {{0}},
				nt[NT][NA] = {{0}};

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
			csv = argv[++i];
		else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
			mfile = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else
			csv = NULL, i = argc;
	}
	if (csv == NULL)
	{
		fprintf(stderr, "usage: %s --csv FILE [--model FILE.st] [--out PREFIX]\n", argv[0]);
		return 2;
	}
	if (qcsv_read(csv, &u, &it, &ts, &ord, &n) != 0)
	{
		fprintf(stderr, "time_prior: cannot read %s\n", csv);
		return 1;
	}
	if ((rc = t4r_dataset_build(u, it, ts, ord, n, 5, 5, &ds, err, sizeof(err))) != T4R_OK)
		fail("t4r_dataset_build", rc, err);
	V = ds->n_items;
	if (mfile)
	{
		FILE	   *f = fopen(mfile, "rb");
		long		len;
		uint8_t    *buf;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
			(buf = malloc(len)) == NULL || fread(buf, 1, len, f) != (size_t) len)
		{
			perror(mfile);
			return 1;
		}
		fclose(f);
		if ((rc = t4r_safetensors_read(buf, len, NULL, &m, err, sizeof(err))) != T4R_OK)
			fail(mfile, rc, err);
		free(buf);
		if (m->cfg.n_items != V)
		{
			fprintf(stderr, "time_prior: the model has %d item rows, the data %d\n", m->cfg.n_items, V);
			return 1;
		}
	}
	nev = ds->seq_off[ds->n_users];
	ev = malloc(nev * sizeof(tev));
	for (int64_t i = 0; i < nev; i++)
	{
		ev[i].t = ds->seq_ts[i];
		ev[i].i = ds->seq_items[i];
	}
	qsort(ev, nev, sizeof(tev), cmp_tev);

	if (m == NULL)
	{
		split_build(&st, 1, NULL);
		evaluate(&st, nt, -1, 0, NULL, NULL);
		printf("%s: %d users, %d items; test NDCG@10 of the prior alone\n", csv, st.nq, V - 1);
		for (int ti = 0; ti < NT; ti++)
			printf("tau %10.0f days  %.5f\n", taud[ti], nt[ti][0] / st.nq);
		return 0;
	}

	split_build(&sv, 0, m);
	evaluate(&sv, nv, -1, 0, NULL, NULL);
	{
		int			bt = 0,
					ba = 0;
		double	   *sel,
				   *base;
		FILE	   *o;
		char		path[1024];

		printf("validation NDCG@10 (rows: tau in days, columns: alpha)\n%10s", "");
		for (int ai = 0; ai < NA; ai++)
			printf(" %7.2f", alpha[ai]);
		printf("\n");
		for (int ti = 0; ti < NT; ti++)
		{
			printf("%10.0f", taud[ti]);
			for (int ai = 0; ai < NA; ai++)
			{
				printf(" %.5f", nv[ti][ai] / sv.nq);
				if (nv[ti][ai] > nv[bt][ba])
					bt = ti, ba = ai;
			}
			printf("\n");
		}
		printf("chosen on validation: tau %.0f days, alpha %.2f (validation %.5f; the model alone %.5f)\n",
			   taud[bt], alpha[ba], nv[bt][ba] / sv.nq, nv[0][0] / sv.nq);
		free(sv.lp);
		split_build(&st, 1, m);
		sel = malloc(st.nq * sizeof(double));
		base = malloc(st.nq * sizeof(double));
		evaluate(&st, nt, bt, ba, sel, base);
		printf("RESULT test_ndcg10_prior=%.5f test_ndcg10_model=%.5f users=%d\n",
			   nt[bt][ba] / st.nq, nt[bt][0] / st.nq, st.nq);
		snprintf(path, sizeof(path), "%s_pair.tsv", out);
		if ((o = fopen(path, "w")) == NULL)
		{
			perror(path);
			return 1;
		}
		for (int q = 0; q < st.nq; q++)
			fprintf(o, "%lld\t%.6f\t%.6f\n", (long long) st.user[q], sel[q], base[q]);
		fclose(o);
	}
	return 0;
}
