/*
 * model_internal.h - internals shared by model.c (forward/backward of a
 * micro-batch), train.c (trainer, Adam) and infer.c (inference).
 *
 * A workspace (t4r_ws) holds every activation of one micro-batch of up to
 * Smax samples.  The item path is packed: sample s owns rows
 * [off[s], off[s] + n[s]) of the [M, .] row buffers, M = sum n[s] (no rows
 * for padded positions: the item path is causal and the output is read at
 * position n-1).  The time path runs over all L positions, R = S*H rows.
 * The last layer keeps only one row per sample (position n-1) after the
 * SSD.
 */
#ifndef T4R_MODEL_INTERNAL_H
#define T4R_MODEL_INTERNAL_H

#include "tim4rec.h"
#include "timepath.h"
#include "rgemm.h"

#define T4R_MAX_LAYERS 64

/* pointers to one layer's tensors inside a parameter-shaped buffer */
typedef struct t4r_lparams
{
	t4r_real   *in_w, *in_b, *conv_w, *conv_b;
	t4r_time_params tp;
	t4r_real   *dt_bias, *A_log, *D, *norm_w, *out_w, *out_b;
	t4r_real   *ln_w, *ln_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *fln_w, *fln_b;
} t4r_lparams;

typedef struct t4r_pview
{
	t4r_real   *emb, *in_ln_w, *in_ln_b, *tln_w, *tln_b;
	int			layers;
	t4r_lparams l[T4R_MAX_LAYERS];
} t4r_pview;

/* per-layer saved activations */
typedef struct t4r_lact
{
	t4r_real   *U;				/* [M, d] layer input */
	t4r_real   *zxd;			/* [M, in_dim] in_proj output */
	t4r_real   *cpre;			/* [M, conv_dim] conv output before hardswish */
	t4r_real   *xbc;			/* [M, conv_dim] after hardswish */
	t4r_real   *T;				/* [R, L] time features entering the layer */
	t4r_real   *mmlp, *mgate;	/* [R, L] time dropout masks (training) */
	t4r_real   *tdt;			/* [R, L] */
	t4r_real   *tcache;			/* time path cache */
	t4r_real   *delta;			/* [M, H] */
	t4r_real   *y;				/* [rows, Di] SSD output */
	t4r_real   *rrs;			/* [rows] gated RMS norm rstd */
	t4r_real   *yn;				/* [rows, Di] normalised */
	t4r_real   *mo;				/* [rows, d] dropout mask of o */
	t4r_real   *a;				/* [rows, d] residual sum (pre-LN) */
	t4r_real   *a_mu, *a_rs;	/* [rows] */
	t4r_real   *hh;				/* [rows, d] */
	t4r_real   *f1;				/* [rows, 4d] fc1 output */
	t4r_real   *m1;				/* [rows, 4d] mask after hardswish */
	t4r_real   *h1;				/* [rows, 4d] hardswish(f1) * m1 */
	t4r_real   *m2;				/* [rows, d] mask after fc2 */
	t4r_real   *b;				/* [rows, d] pre-LN of the FFN */
	t4r_real   *b_mu, *b_rs;	/* [rows] */
	t4r_real   *F;				/* [rows, d] layer output */
} t4r_lact;

/* the per-op parity hook (test/cuda/parity.c): called after every op of a
 * forward and backward pass, in layer_fwd / layer_bwd's order, with the
 * op's name as in src/cuda/t4r_cuda_debug.h (layer -1: embed,
 * time_features, loss) */
typedef void (*t4r_debug_hook) (void *ctx, int layer, const char *op, int backward);

typedef struct t4r_ws
{
	const t4r_model *m;
	t4r_dims	D;
	int			Smax;			/* sample capacity */
	size_t		Mmax;			/* row capacity (Smax * L) */
	int			train;			/* backward buffers present */
	int			allpos;			/* all_positions training: every row of the
								 * last layer kept, a loss at every position */
	int			lchunk;			/* rows of logits computed at once (allpos) */
	size_t		nreal;			/* elements in mem */
	t4r_real   *mem;			/* one allocation */
	t4r_pview	pv;				/* parameter pointers (model params) */

	/* current micro-batch */
	int			S;
	size_t		M;
	int			training;		/* dropout on */
	int		   *n;				/* [Smax] lengths (<= L) */
	size_t	   *off;			/* [Smax] first row */
	int32_t    *items;			/* [Mmax] item of each row */
	int32_t    *rtgt;			/* [Mmax] allpos: target of each row, -1 = no loss */

	/* forward */
	t4r_real   *emb;			/* [M, d] embedding after dropout */
	t4r_real   *memb;			/* [M, d] embedding dropout mask */
	t4r_real   *e_mu, *e_rs;	/* [M] */
	t4r_real   *td;				/* [S, L] time differences after dropout */
	t4r_real   *t_mu, *t_rs;	/* [S] */
	t4r_real   *T0;				/* [S, L] layer_norm_time output */
	t4r_lact	la[T4R_MAX_LAYERS];
	t4r_real   *hidden;			/* [S, d] = la[last].F ([M, d] if allpos) */
	t4r_real   *logits;			/* [S, V] (dlogits in place); [lchunk, V] if allpos */
	t4r_real   *convT;			/* [K, conv_dim] transposed conv weights (+ [H] A) */
	t4r_real   *ones, *zeros;	/* constants: ones [max(4d, d)], zeros [d] */
	t4r_real   *ssd_ws;

	/* backward scratch */
	t4r_real   *dU0, *dU1;		/* [M, d] ping-pong */
	t4r_real   *db, *df2, *dhh, *da, *dob;	/* [M, d] */
	t4r_real   *dh1;			/* [M, 4d] */
	t4r_real   *dyn, *dy;		/* [M, Di] */
	t4r_real   *dzxd;			/* [M, in_dim] */
	t4r_real   *dxbc;			/* [M, conv_dim] */
	t4r_real   *ddelta;			/* [M, H] */
	t4r_real   *dtdt;			/* [R, L] */
	t4r_real   *dT0, *dT1;		/* [R, L] ping-pong */
	t4r_real   *tscratch;
	t4r_real   *dconvT;			/* [K, conv_dim] */
	t4r_real   *dA;				/* [H] */
	t4r_real   *gtmp;			/* [2 Di] */
	t4r_real   *dtsum;			/* [L] */
	t4r_real   *dtmp;			/* [L] */

	/* inference only: the projections' packed weights for the row-stable
	 * kernel (rgemm.c), or NULL (OpenBLAS, as in training) */
	const struct t4r_ipack *ip;

	/* the per-op parity hook (NULL: none) and the current backward's
	 * gradient buffers of a layer (dF its output's, dU its input's, dT its
	 * T's), for t4r_ws_debug_tensor */
	t4r_debug_hook dbg;
	void	   *dbg_ctx;
	t4r_real   *dbg_dF, *dbg_dU, *dbg_dT;
} t4r_ws;

/*
 * rgemm.c: the row-stable projection kernel of inference and a model's
 * packed projection weights (in_proj split into its z rows [Di] and the rest
 * [in_dim - Di], out_proj, fc1, fc2 of every layer).
 */
typedef struct t4r_ipack
{
	t4r_real   *mem;			/* own copy, or NULL: a borrowed buffer */
	struct
	{
		t4r_real   *inz, *inr, *out, *fc1, *fc2;
		t4r_real   *tw1, *tw2, *tgw;	/* official time path (NULL otherwise) */
	}			l[T4R_MAX_LAYERS];
} t4r_ipack;

int			t4r_ipack_create(const t4r_model *m, const t4r_real *packed, t4r_ipack **out);
void		t4r_ipack_free(t4r_ipack *ip);

/*
 * ws_debug.c: a named buffer of layer `layer` of the current micro-batch
 * copied to out[n] as float, in the workspace's row layout (item path [M,
 * cols]: the samples' real positions sample after sample; after the SSD in
 * the last layer [S, cols]; time path [R, L]).  Names: U zxd xbc delta [M,
 * .]; T tdt [R, L]; y yn hh F [rows, .]; gradients dF dhh da [rows, d], dyn
 * dy [rows, Di], dxbc ddelta dzxd ddt (dt columns of dzxd) dU [M, .], dtdt
 * dT [R, L] (read in the hook of the op that writes them).  Returns the
 * element count, -1 for an unknown name or a short out.  The GPU side
 * (src/cuda/t4r_cuda_debug.h) answers the same names in the same layout.
 */
long		t4r_ws_debug_tensor(const t4r_ws *w, int layer, const char *name, float *out,
								size_t n, size_t *rows, int *cols);

void		t4r_pview_build(const t4r_model *m, t4r_real *base, t4r_pview *v);

/* elements a workspace of Smax samples needs (train: with backward; a
 * training workspace of a config with training = all_positions keeps every
 * row of the last layer and computes the logits in chunks) */
size_t		t4r_ws_elems(const t4r_dims *D, int chunk, int Smax, int train);
int			t4r_ws_create(const t4r_model *m, int Smax, int train, t4r_ws **out);
void		t4r_ws_free(t4r_ws *w);

/* Forward of samples s[0..S-1] (S <= Smax); idx0 = index of s[0] in the
 * optimiser batch (dropout key), step = dropout step.  training != 0
 * applies dropout.  Writes w->hidden [S, d].  Returns T4R_EINVAL on a bad
 * sample (n < 1, item out of range). */
int			t4r_ws_forward(t4r_ws *w, const t4r_sample *s, int S, int idx0,
						   int training, uint64_t step);

/* After t4r_ws_forward: logits, cross-entropy against s[i].target (allpos
 * workspace: against s[i].targets[j] at every position j >= loss_from, or
 * s[i].target at the last position when targets is NULL), backward,
 * parameter gradients ACCUMULATED into gview (a view of a gradient buffer),
 * dlogits scaled by `scale` (1/batch).  Returns the summed (unscaled) loss
 * of the S samples in *loss_sum. */
int			t4r_ws_backward(t4r_ws *w, const t4r_sample *s, const t4r_pview *gview,
							double scale, double *loss_sum);

/* scores [S, V] = hidden E^T (ld V) */
void		t4r_ws_scores(t4r_ws *w, t4r_real *scores);
void		t4r_ws_scores_rows(t4r_ws *w, int r0, int nr, t4r_real *scores);

/* t4r_dropout_mask (ops.h), same values, vectorisable loop */
void		t4r_model_dropout_mask(t4r_real *mask, size_t n, double p, uint64_t seed,
								   uint64_t step, uint64_t sample, uint64_t site);

/* dropout site ids */
#define T4R_SITE_EMB 1
#define T4R_SITE_TD 2
#define T4R_SITE_LAYER(i, k) (16 + (uint64_t) (i) * 8 + (k))
#define T4R_LSITE_TMLP 0
#define T4R_LSITE_TGATE 1
#define T4R_LSITE_O 2
#define T4R_LSITE_FFN1 3
#define T4R_LSITE_FFN2 4

#endif
