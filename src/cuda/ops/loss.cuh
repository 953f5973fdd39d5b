/*
 * ops/loss.cuh - 4. the loss (model.c's prefix_loss): logits [S, V] =
 * hidden E^T, softmax cross-entropy at each sample's target, dlogits in
 * place; the embedding gradient and the gradient of hidden.
 */
#ifndef T4R_CUDA_OPS_LOSS_CUH
#define T4R_CUDA_OPS_LOSS_CUH

#include "../trainer.cuh"

/* softmax cross-entropy over V rows: one block per sample; dlogits in
 * place, scaled by `scale` */
__global__ void
k_softmax_ce(int V, float *lg, const int *tgt, float scale, double *loss)
{
	__shared__ float smax[32];
	__shared__ double ssum[32];
	int			s = blockIdx.x;
	float	   *x = lg + (size_t) s * V;
	int			lane = threadIdx.x & 31,
				warp = threadIdx.x >> 5,
				nw = blockDim.x >> 5;
	float		mx = -INFINITY;

	for (int v = threadIdx.x; v < V; v += blockDim.x)
		mx = fmaxf(mx, x[v]);
	for (int o = 16; o > 0; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
	if (lane == 0)
		smax[warp] = mx;
	__syncthreads();
	mx = smax[0];
	for (int w = 1; w < nw; w++)
		mx = fmaxf(mx, smax[w]);
	double		sum = 0;

	for (int v = threadIdx.x; v < V; v += blockDim.x)
	{
		float		e = expf(x[v] - mx);

		sum += e;
	}
	sum = warp_sumd(sum);
	if (lane == 0)
		ssum[warp] = sum;
	__syncthreads();
	sum = 0;
	for (int w = 0; w < nw; w++)
		sum += ssum[w];
	int			tg = tgt[s];
	float		tl = x[tg];

	__syncthreads();
	if (threadIdx.x == 0)
		loss[s] = log(sum) + mx - tl;
	float		inv = (float) (scale / sum);

	for (int v = threadIdx.x; v < V; v += blockDim.x)
	{
		float		e = expf(x[v] - mx) * inv;

		x[v] = v == tg ? e - scale : e;
	}
}

/* hidden [S, d] (the last layer's F) -> lossv [S] (per-sample loss),
 * logits [S, V] (dlogits, scaled by `scale`), dF [S, d] = dlogits E
 * OVERWRITTEN; embedding gradient ACCUMULATED with dlogits^T hidden */
static int
prefix_loss(t4r_cuda_trainer *t, int S, double scale, float *dF)
{
	const t4r_dims *D = &t->D;
	int			d = D->d,
				V = D->V;
	float	   *hidden = t->la[D->layers - 1].F;
	int			rc;

	if ((rc = gemm(t, 0, 1, S, V, d, 1, hidden, d, t->pv.emb, d, 0, t->logits, V)))
		return rc;
	k_softmax_ce<<<S, 256>>>(V, t->logits, t->tgt, (float) scale, t->lossv);
	KCHECK("k_softmax_ce");
	if ((rc = gemm(t, 1, 0, V, d, S, 1, t->logits, V, hidden, d, 1, t->gv.emb, d)))
		return rc;
	return gemm(t, 0, 0, S, d, V, 1, t->logits, V, t->pv.emb, d, 0, dF, d);
}

#endif
