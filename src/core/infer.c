/*
 * infer.c - inference (eval mode, no dropout): one sequence on a context, or
 * many sequences on several threads in micro-batches.
 */
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <cblas.h>
#include "model_internal.h"
#include "ops.h"

struct t4r_infer_ctx
{
	const t4r_model *m;
	t4r_ws	   *ws;
};

int
t4r_infer_ctx_create(const t4r_model *m, t4r_infer_ctx **out)
{
	t4r_infer_ctx *c;
	int			rc;

	*out = NULL;
	if (!m)
		return T4R_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return T4R_ENOMEM;
	c->m = m;
	rc = t4r_ws_create(m, 1, 0, &c->ws);
	if (rc != T4R_OK)
	{
		free(c);
		return rc;
	}
	*out = c;
	return T4R_OK;
}

void
t4r_infer_ctx_free(t4r_infer_ctx *ctx)
{
	if (!ctx)
		return;
	t4r_ws_free(ctx->ws);
	free(ctx);
}

int
t4r_infer(t4r_infer_ctx *ctx, const int32_t *items, const double *ts, int n,
		  t4r_real *hidden, t4r_real *scores)
{
	t4r_sample	s;
	int			rc;

	if (!ctx || n < 1 || !items)
		return T4R_EINVAL;
	s.items = items;
	s.ts = ts;
	s.n = n;
	s.target = 0;
	rc = t4r_ws_forward(ctx->ws, &s, 1, 0, 0, 0);
	if (rc != T4R_OK)
		return rc;
	if (hidden)
		memcpy(hidden, ctx->ws->hidden, sizeof(t4r_real) * ctx->m->dims.d);
	if (scores)
		t4r_ws_scores(ctx->ws, scores);
	return T4R_OK;
}

#define INFER_MB 16

int
t4r_infer_batch(const t4r_model *m, const t4r_sample *seqs, int nseq, int threads,
				t4r_real *hidden, t4r_real *scores)
{
	int			nch,
				rc = T4R_OK;
	int			d,
				V;

	if (!m || nseq < 0 || (nseq > 0 && !seqs))
		return T4R_EINVAL;
	if (nseq == 0)
		return T4R_OK;
	if (threads < 1)
		threads = 1;
	nch = (nseq + INFER_MB - 1) / INFER_MB;
	if (threads > nch)
		threads = nch;
	d = m->dims.d;
	V = m->dims.V;
	openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads)
	{
		t4r_ws	   *ws = NULL;
		int			e = t4r_ws_create(m, INFER_MB, 0, &ws);

		if (e != T4R_OK)
		{
#pragma omp critical
			rc = e;
		}
#pragma omp for schedule(dynamic, 1)
		for (int c = 0; c < nch; c++)
		{
			int			i0 = c * INFER_MB;
			int			cnt = nseq - i0 < INFER_MB ? nseq - i0 : INFER_MB;
			int			e2;

			if (ws == NULL)
				continue;
			e2 = t4r_ws_forward(ws, seqs + i0, cnt, 0, 0, 0);
			if (e2 != T4R_OK)
			{
#pragma omp critical
				rc = e2;
				continue;
			}
			if (hidden)
				memcpy(hidden + (size_t) i0 * d, ws->hidden, sizeof(t4r_real) * cnt * d);
			if (scores)
				t4r_ws_scores(ws, scores + (size_t) i0 * V);
		}
		t4r_ws_free(ws);
	}
	return rc;
}
