/*
 * tim4rec.h - public interface of the TiM4Rec numerical core.
 *
 * Plain C11, no PostgreSQL headers.  Errors are reported by return codes
 * (T4R_OK == 0, negative on failure) and, where a function takes
 * (char *err, size_t errlen), by a human-readable message written there.
 * Nothing here calls exit(), palloc() or ereport(); memory comes from malloc.
 *
 * The maths is docs/MODEL.md (the published model, quirks included).
 *
 * Build variants: by default t4r_real is float.  Compiled with -DT4R_DOUBLE the
 * whole core computes in double; the unit tests use that build for
 * finite-difference gradient checks.
 */
#ifndef TIM4REC_H
#define TIM4REC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef T4R_DOUBLE
typedef double t4r_real;
#else
typedef float t4r_real;
#endif

/* ------------------------------------------------------------------ */
/* Error codes                                                         */
/* ------------------------------------------------------------------ */
enum
{
	T4R_OK = 0,
	T4R_EINVAL = -1,			/* invalid argument or option value */
	T4R_ENOMEM = -2,			/* malloc failed */
	T4R_EFORMAT = -3,			/* malformed input (file, JSON) */
	T4R_EMISMATCH = -4,			/* input does not match the configuration */
	T4R_ECANCELLED = -5,		/* a callback asked to stop */
	T4R_EDATA = -6,				/* not enough data (after filtering) */
	T4R_EIO = -7,				/* file I/O */
	T4R_EBUDGET = -8,			/* memory budget too small */
	T4R_ENONFINITE = -9			/* a loss, metric or weight became NaN or infinite */
};
const char *t4r_strerror(int code);

/* ------------------------------------------------------------------ */
/* Times                                                               */
/* ------------------------------------------------------------------ */
/* Largest accepted |time| (any unit; epoch seconds in the glue): 2^63,
 * about 9.22e18, so every bigint time is accepted.  The model turns times
 * into single-precision features: the differences of consecutive times and
 * -ts[n-1] (the padding slot of docs/MODEL.md, "Time path"), scaled by at most 1 / (1 - p) by time
 * dropout.  Within this bound those are at most 2^64 * 2^53, about 1.7e35,
 * and stay finite in float (whose largest value is about 3.4e38), whereas
 * times near 3.4e38 give infinite features and a NaN loss.  The layer norms
 * that follow compute their moments in double. */
#define T4R_TIME_ABS_MAX 9223372036854775808.0

/* true when t is a usable time: finite and |t| <= T4R_TIME_ABS_MAX (NaN fails) */
static inline int
t4r_time_ok(double t)
{
	return t >= -T4R_TIME_ABS_MAX && t <= T4R_TIME_ABS_MAX;
}

/* ------------------------------------------------------------------ */
/* Configuration (src/core/config.c)                                   */
/* ------------------------------------------------------------------ */
typedef struct t4r_config
{
	/* model option keys (docs/MODEL.md, "Options") */
	int			hidden_size;	/* d */
	int			num_layers;
	double		dropout_prob;
	double		time_dropout;
	int			d_state;		/* N */
	int			d_conv;			/* K */
	int			expand;
	int			head_dim;		/* P */
	int			chunk_size;
	int			max_seq_len;	/* L */
	double		norm_eps;
	int			p2p_residual;	/* bool */
	int			is_time;		/* bool */
	int			kaiming_init;	/* bool */
	/* training option keys */
	double		learning_rate;
	int			batch_size;
	int			epochs;
	int			patience;
	uint64_t	seed;
	char		preset[16];		/* "movielens" or "amazon" */
	/* time path form (model key "time_features"): T4R_TIME_OFFICIAL (the
	 * published, non-causal one) or T4R_TIME_ROBUST (causal, log-scaled
	 * gaps; timepath.h) */
	int			time_features;
	/* robust form only (model key "time_scale"): gaps are divided by it
	 * before log1p; 0 = not fitted yet (t4r_fit sets the median positive
	 * gap of the training data) */
	double		time_scale;
	/* training key "training": T4R_TRAIN_PREFIXES (one sample per prefix,
	 * the published form) or T4R_TRAIN_ALL_POSITIONS (one pass per window
	 * of a history, a loss at every position; needs a causal model) */
	int			training;
	/* training key "tie_shuffle" (true, false or "auto"): each epoch, the
	 * items of a user's training part that share a timestamp are put in a
	 * fresh random order (seeded by seed and epoch); validation and test
	 * targets stay put.  T4R_TIE_SHUFFLE_AUTO: shuffle unless the training
	 * data's order of equal timestamps is consistent (t4r_tie_order_test);
	 * t4r_fit resolves it to 0 or 1 in the model's configuration before it
	 * trains (tim4rec_train also trains the shuffled form when the order is
	 * consistent and keeps the better on validation) */
	int			tie_shuffle;
	/* training key "weight_decay" (>= 0): decoupled weight decay as
	 * torch.optim.AdamW, every parameter p -= learning_rate * weight_decay
	 * * p before its Adam update; 0 (the default) is Adam exactly */
	double		weight_decay;
	/* training keys "lr_decay" (in (0, 1]) and "lr_decay_patience" (>= 1):
	 * each time lr_decay_patience more epochs have passed without a better
	 * validation NDCG@10, the step size is multiplied by lr_decay (as
	 * torch's ReduceLROnPlateau, mode max, no threshold or cooldown); an
	 * improvement restarts the count; 1 (the default) never changes it */
	double		lr_decay;
	int			lr_decay_patience;
	/* training key "ema_decay" (in [0, 1)): validation, early stopping and
	 * the kept weights use an exponential moving average of the weights
	 * over the optimiser steps -- e = the weights before the first step,
	 * after step t (counted over the whole fit) e = b * e + (1 - b) * w with
	 * b = min(ema_decay, (1 + t) / (10 + t)) -- while training goes on from
	 * the weights themselves; 0 (the default) is off (the published
	 * training).  CPU trainer only. */
	double		ema_decay;
	/* training key "label_smoothing" (in [0, 1)): the cross-entropy's
	 * target distribution gives label_smoothing / V to every row of the
	 * vocabulary (padding included, as torch's CrossEntropyLoss) and the
	 * rest to the target; 0 (the default) is the published loss */
	double		label_smoothing;
	/* training key "tie_targets" (bool; per-prefix training only): a
	 * prefix whose target shares its timestamp with the items after it in
	 * the user's training part takes all of them as its target, each with
	 * an equal share -- the expectation of tie_shuffle's random order,
	 * without its noise; validation and test targets are never included.
	 * false (the default) is the published loss. */
	int			tie_targets;
	/* training key "refit" (bool): after early stopping has chosen the best
	 * epoch E on validation, train again from the same initial weights for
	 * E epochs on the training parts extended by each user's validation
	 * target (the test target stays held out), and keep that model.  The
	 * caller does the second pass (t4r_refit); false (the default) is the
	 * published training. */
	int			refit;
	/* model key "tie_average" (1 .. 64): evaluation and recommendation
	 * score a history whose last max_seq_len items hold equal timestamps
	 * in the given order and tie_average - 1 random orders of those ties
	 * (seeded by seed and the history), and average the scores; 1 (the
	 * default) is the published model.  CPU only. */
	int			tie_average;
	/* not an option key: vocabulary rows including row 0 (padding); >= 2 */
	int			n_items;
} t4r_config;

#define T4R_TIME_OFFICIAL 0
#define T4R_TIME_ROBUST 1
#define T4R_TRAIN_PREFIXES 0
#define T4R_TRAIN_ALL_POSITIONS 1
/* hidden width of the robust time path's per-position MLP */
#define T4R_RTIME_J 8

/* Fill *c with a preset ("movielens" = default when preset is NULL, "amazon").
 * n_items is left 0 (must be set before creating a model). */
int			t4r_config_preset(t4r_config *c, const char *preset);

/* Set one option from its text form ("64", "0.2", "true"/"false"/"1"/"0").
 * Unknown key or unparsable value: T4R_EINVAL with a message.  Key "preset"
 * re-applies a preset (callers apply "preset" before other keys). */
int			t4r_config_set(t4r_config *c, const char *key, const char *value,
						   char *err, size_t errlen);

/* Check every value and the relations between them (expand*hidden_size
 * divisible by head_dim, max_seq_len >= 2, 0 <= dropout < 1, ...).  If
 * n_items == 0 it is not checked (config without vocabulary). */
int			t4r_config_validate(const t4r_config *c, char *err, size_t errlen);

/* NULL-terminated list of every option key accepted by t4r_config_set
 * (model keys, training keys and "preset"). */
const char *const *t4r_config_keys(void);
/* the same list joined with ", " (static string), for hints */
const char *t4r_config_keys_joined(void);
/* 1 when the key changes only what a trained model serves (evaluation and
 * recommendations: tie_average), not its weights or its training */
int			t4r_config_key_serving(const char *key);

/* The option keys that decide a weight's shape or which tensors exist
 * (hidden_size, num_layers, d_state, d_conv, expand, head_dim, max_seq_len,
 * is_time, p2p_residual) on which a and b differ, written "key a -> b" and
 * joined with ", " into buf (may be NULL); returns how many differ. */
int			t4r_config_shape_diff(const t4r_config *a, const t4r_config *b,
								  char *buf, size_t len);

/* Derived sizes */
typedef struct t4r_dims
{
	int			d,				/* hidden_size */
				Di,				/* expand * d */
				H,				/* Di / P */
				P,				/* head_dim */
				N,				/* d_state */
				K,				/* d_conv */
				L,				/* max_seq_len */
				V,				/* n_items (rows incl. padding) */
				G,				/* time gate width: L if p2p_residual else 1 */
				conv_dim,		/* Di + 2N */
				in_dim,			/* 2*Di + 2N + H */
				ffn_dim,		/* 4*d */
				layers,
				is_time,
				p2p,
				robust,			/* time_features == robust (and is_time) */
				allpos,			/* training == all_positions */
				TJ;				/* robust time MLP width (T4R_RTIME_J) */
} t4r_dims;
void		t4r_dims_from_config(const t4r_config *c, t4r_dims *out);

/* ------------------------------------------------------------------ */
/* Parameter layout: docs/MODEL.md "Parameters" (src/core/config.c)    */
/* ------------------------------------------------------------------ */
#define T4R_NAME_MAX 64
typedef struct t4r_tensor
{
	char		name[T4R_NAME_MAX];
	int			ndim;
	int64_t		shape[3];
	size_t		offset;			/* in elements, into the parameter buffer */
	size_t		numel;
} t4r_tensor;

typedef struct t4r_layout
{
	int			n;				/* number of tensors */
	t4r_tensor *t;				/* malloc'd array of n */
	size_t		total;			/* total elements */
} t4r_layout;

/* Tensors in this order: item_embedding.weight, in_layer_norm.{weight,bias},
 * [layer_norm_time.{weight,bias}], then per layer i with prefix
 * "ssd_layers.{i}.": ssd.in_proj.{weight,bias}, ssd.conv1d.{weight,bias},
 * [ssd.conv1d4time_1.{weight,bias}, ssd.conv1d4time_2.{weight,bias},
 *  ssd.mlp4time_scale.1.{weight,bias}, ssd.mlp4time_scale.3.{weight,bias},
 *  ssd.time_gate_residual.1.{weight,bias}, ssd.time_layer_norm.{weight,bias}],
 * ssd.dt_bias, ssd.A_log, ssd.D, ssd.norm.weight, ssd.out_proj.{weight,bias},
 * layer_norm.{weight,bias}, ffn.fc1.{weight,bias}, ffn.fc2.{weight,bias},
 * ffn.layer_norm.{weight,bias}.  Offsets are 16-element aligned.
 * Requires a validated config with n_items >= 2. */
int			t4r_layout_build(const t4r_config *c, t4r_layout *out);
void		t4r_layout_free(t4r_layout *lay);
int			t4r_layout_find(const t4r_layout *lay, const char *name);	/* index or -1 */

/* ------------------------------------------------------------------ */
/* Model (src/core/model.c)                                            */
/* ------------------------------------------------------------------ */
typedef struct t4r_model
{
	t4r_config	cfg;
	t4r_dims	dims;
	t4r_layout	layout;
	t4r_real   *params;			/* layout.total elements, one allocation */
	int			owns_params;	/* 0: params belong to the caller (t4r_model_wrap) */
} t4r_model;

/* Validates cfg (n_items must be >= 2), allocates zeroed parameters. */
int			t4r_model_create(const t4r_config *cfg, t4r_model **out,
							 char *err, size_t errlen);
void		t4r_model_free(t4r_model *m);
/* A model over parameters the caller owns (layout.total elements laid out as
 * t4r_layout_build says, e.g. in shared memory): t4r_model_free frees the
 * struct and the layout, never params.  Validates cfg as t4r_model_create. */
int			t4r_model_wrap(const t4r_config *cfg, t4r_real *params, t4r_model **out,
						   char *err, size_t errlen);
/* docs/MODEL.md "Initialisation" from a seed. */
void		t4r_model_init(t4r_model *m, uint64_t seed);
/*
 * Warm start (continue training from a parent model): m has been created for
 * the new vocabulary and initialised by t4r_model_init (so rows without a
 * parent keep exactly the official initialisation).  Every tensor but
 * item_embedding.weight is copied from parent and must have the same shape
 * there (T4R_EMISMATCH with a message naming the first one that differs).
 * Row r of item_embedding.weight (r = 0..V-1, row 0 = padding) becomes
 * parent's row row_map[r] when row_map[r] >= 0 and keeps m's initialisation
 * when it is -1; row_map[r] >= parent's V is T4R_EINVAL.  Nothing is changed
 * on an error.
 */
int			t4r_model_warm_start(t4r_model *m, const t4r_model *parent,
								 const int32_t *row_map, char *err, size_t errlen);
/*
 * After t4r_model_warm_start: the embedding row of every new item (row r > 0
 * with row_map[r] == -1) becomes the mean direction of the rows of the known
 * items next to it (just before or just after) in the training parts of
 * ds's histories (each user's items but the last two: no validation or test
 * target is read), scaled to those rows' mean length.  ds is the dataset the
 * model was created for (ds->n_items rows).  A new item without a known
 * neighbour keeps its initialisation.  Returns the number of rows set, or
 * T4R_EINVAL / T4R_ENOMEM (nothing changed).
 */
struct t4r_dataset;
int64_t		t4r_model_warm_new_items(t4r_model *m, const int32_t *row_map,
									 const struct t4r_dataset *ds);
/* pointer to a named tensor's data, NULL if the model has no such tensor */
t4r_real   *t4r_model_tensor(const t4r_model *m, const char *name);
/* T4R_OK when every parameter is finite; otherwise T4R_ENONFINITE with a
 * message naming the first tensor (and element) holding a NaN or +-Inf. */
int			t4r_model_check_finite(const t4r_model *m, char *err, size_t errlen);

/* One training sample / one inference sequence.  items are vocabulary rows
 * (1..V-1), ts epoch seconds, oldest first.  If n > L only the most recent L
 * are used.  target is the vocabulary row of the next item (training only). */
typedef struct t4r_sample
{
	const int32_t *items;
	const double *ts;
	int32_t		n;
	int32_t		target;
	/* all_positions training only (a trainer of a config with training =
	 * all_positions; NULL elsewhere): targets[j] is the next item after
	 * items[j], and the positions j >= loss_from (indexes into items, of
	 * those the model reads: the last L) each add a cross-entropy term.
	 * targets == NULL: one term, at the last position, against target. */
	const int32_t *targets;
	int32_t		loss_from;
	/* per-prefix training with tie_targets only (else ignored): when
	 * nsoft > 1 the loss's target is soft[0 .. nsoft-1] (soft[0] ==
	 * target), each with weight 1 / nsoft */
	const int32_t *soft;
	int32_t		nsoft;
} t4r_sample;

/* ---- inference ---- */
/* tie_average's order k of a window items[0..n-1] with times ts: a copy in
 * out (may be items) with every run of equal ts put in a random order keyed
 * by (seed, k, the items); k = 0 is the given order */
void		t4r_tie_order(uint64_t seed, int k, const int32_t *items, const double *ts,
						  int n, int32_t *out);

/* A context holds the scratch memory for inference on one thread.  Not
 * thread-safe; create one per thread.  Inference is eval mode (no dropout). */
typedef struct t4r_infer_ctx t4r_infer_ctx;
int			t4r_infer_ctx_create(const t4r_model *m, t4r_infer_ctx **out);

/*
 * Inference reads the projection weights packed for its row-stable kernel
 * (rgemm.c).  Each context packs its own copy, unless given a buffer of
 * t4r_infer_pack_elems(m) elements filled by t4r_infer_pack_fill(m, buf):
 * a server keeps one such copy in shared memory for all its backends.  The
 * buffer is only read and must outlive the contexts using it.
 */
size_t		t4r_infer_pack_elems(const t4r_model *m);
int			t4r_infer_pack_fill(const t4r_model *m, t4r_real *buf);
int			t4r_infer_ctx_create_packed(const t4r_model *m, const t4r_real *packed,
										t4r_infer_ctx **out);
void		t4r_infer_ctx_free(t4r_infer_ctx *ctx);

/* Final hidden vector (d values) and, if scores != NULL, the raw scores of
 * all V rows (row 0 included).  n >= 1 and, when the model uses time, every
 * time it reads (the last L) t4r_time_ok (T4R_EINVAL otherwise). */
int			t4r_infer(t4r_infer_ctx *ctx, const int32_t *items, const double *ts,
					  int n, t4r_real *hidden, t4r_real *scores);

/* Top k of one sequence without a score vector of V floats: the scores
 * are computed in blocks of T4R_SCORE_BLOCK rows (the same GEMV per row as
 * t4r_infer, so the same values) and streamed through t4r_topk_push.
 * exclude: rows to skip, any order, duplicates and rows outside 1..V-1
 * ignored (nexclude may be 0).  Returns the count written to rows/vals
 * (min(k, eligible rows)) or a negative error.  The context keeps one
 * block buffer; per call it allocates only a sorted copy of exclude. */
#define T4R_SCORE_BLOCK 8192
int			t4r_infer_topk(t4r_infer_ctx *ctx, const int32_t *items, const double *ts,
						   int n, int k, const int32_t *exclude, int nexclude,
						   int32_t *rows, t4r_real *vals);

/* Many sequences on `threads` threads: hidden [nseq*d] (may be NULL),
 * scores [nseq*V] (may be NULL). */
int			t4r_infer_batch(const t4r_model *m, const t4r_sample *seqs, int nseq,
							int threads, t4r_real *hidden, t4r_real *scores);

/* Top-k recommendations for many sequences (tim4rec_recommend_all): each
 * job's sequence is scored and its top k rows selected (t4r_topk, rows in
 * exclude[] skipped), on the batch's threads in micro-batches of
 * T4R_REC_MB sequences.  The default T4R_REC_EXACT runs each sequence's
 * forward and score GEMV on its own, the arithmetic of t4r_infer bit for
 * bit (the packed forward's GEMMs over a micro-batch's rows round
 * differently in OpenBLAS); T4R_REC_PACKED runs one packed forward per
 * micro-batch and one [MB, d] x [d, V] GEMM for its scores (faster, equal
 * within float rounding only).  A batch object holds the per-thread
 * scratch memory and is reused. */
#define T4R_REC_MB 16
#define T4R_REC_EXACT 0
#define T4R_REC_PACKED 1
typedef struct t4r_rec_job
{
	t4r_sample	seq;			/* n >= 1 */
	const int32_t *exclude;		/* rows to skip (0 <= row < V), may be NULL */
	int32_t		nexclude;
	int32_t    *rows;			/* out [k] */
	t4r_real   *vals;			/* out [k] */
	int32_t		count;			/* out: min(k, eligible) */
} t4r_rec_job;
typedef struct t4r_rec_batch t4r_rec_batch;
int			t4r_rec_batch_create(const t4r_model *m, int threads, t4r_rec_batch **out);
/* the same with packed weights from t4r_infer_pack_fill (NULL: own copy) */
int			t4r_rec_batch_create_packed(const t4r_model *m, int threads, const t4r_real *packed,
										t4r_rec_batch **out);
void		t4r_rec_batch_free(t4r_rec_batch *b);
int			t4r_rec_batch_set_scores(t4r_rec_batch *b, int mode);
int			t4r_rec_batch_run(t4r_rec_batch *b, t4r_rec_job *jobs, int njobs, int k);

/* Top-k of scores[0..V-1], row 0 (padding) never returned, rows with
 * exclude[row] != 0 skipped (exclude may be NULL).  Order: score descending,
 * ties by smaller row.  Does not sort all rows.  Writes min(k, eligible)
 * entries and returns that count (or a negative error). */
int			t4r_topk(const t4r_real *scores, int V, int k, const uint8_t *exclude,
					 int32_t *rows, t4r_real *vals);

/* The same selection, streamed: init with k >= 0 and rows [k]; push
 * scores[0..nr-1] of rows r0 .. r0+nr-1, blocks in ascending row order
 * (row 0 and rows with exclude[i] != 0, i = row - r0, skipped; exclude
 * may be NULL);
 * finish writes vals [cnt] (may be NULL), frees the state and returns cnt. */
#define T4R_TOPK_SMALL 64
typedef struct t4r_topk_state
{
	int			k,
				cnt;
	int32_t    *rows;
	t4r_real   *hv;
	t4r_real	small[T4R_TOPK_SMALL];
} t4r_topk_state;
int			t4r_topk_init(t4r_topk_state *t, int k, int32_t *rows);
void		t4r_topk_push(t4r_topk_state *t, const t4r_real *scores, int32_t r0, int nr,
						  const uint8_t *exclude);
int			t4r_topk_finish(t4r_topk_state *t, t4r_real *vals);

/* ---- training ---- */
typedef struct t4r_train_opts
{
	int			threads;		/* >= 1 */
	size_t		mem_budget;		/* bytes for the trainer's buffers; 0 = 1 GiB */
	/* called from the calling thread between micro-batches (at least every
	 * ~100 ms of work); a non-zero return aborts with T4R_ECANCELLED */
	int			(*interrupt) (void *ud);
	void	   *interrupt_ud;
} t4r_train_opts;

typedef struct t4r_trainer t4r_trainer;

/* Bytes a trainer for this config/opts allocates (parameters copies for
 * grads + Adam moments, activations for the chosen micro-batch size).
 * Returns T4R_EBUDGET (with *needed = the minimum) when even a micro-batch
 * of one sample does not fit in opts->mem_budget. */
int			t4r_trainer_estimate(const t4r_config *cfg, const t4r_train_opts *opts,
								 size_t *needed, int *micro_batch);
int			t4r_trainer_create(t4r_model *m, const t4r_train_opts *opts,
							   t4r_trainer **out, char *err, size_t errlen);
void		t4r_trainer_free(t4r_trainer *t);

/* One optimiser step over the whole batch (ns samples): training-mode
 * forward (dropout drawn from a generator keyed by cfg.seed, the step number
 * and the sample's index in the batch), backward, gradient = mean over the
 * batch's cross-entropy terms (one per sample, or one per loss position of
 * an all_positions sample), Adam (lr, 0.9, 0.999, eps 1e-8; with
 * cfg.weight_decay > 0 AdamW's decoupled decay first).  *loss = mean
 * cross-entropy.
 * A loss that is NaN or infinite returns T4R_ENONFINITE (*loss set) without
 * touching the parameters, Adam's state or the step count. */
int			t4r_trainer_step(t4r_trainer *t, const t4r_sample *s, int ns, double *loss);

/* Loss and gradient only (no update): grads = d(mean loss)/d(params), in
 * t4r_trainer_grads().  training != 0 applies dropout (keyed as for the
 * step number t4r_trainer_steps()), 0 = deterministic eval-mode forward. */
int			t4r_trainer_loss_grad(t4r_trainer *t, const t4r_sample *s, int ns,
								  int training, double *loss);
t4r_real   *t4r_trainer_grads(t4r_trainer *t);		/* layout.total elements */
int64_t		t4r_trainer_steps(const t4r_trainer *t);	/* Adam steps done */

/* ------------------------------------------------------------------ */
/* safetensors (src/core/safetensors.c)                                */
/* ------------------------------------------------------------------ */
/* Serialise the model: F32 tensors with the layout's names, __metadata__ =
 * {"format": "tim4rec", "config": "<JSON object of the model option keys
 * and preset, native JSON numbers/booleans/strings>"}.  *buf is malloc'd. */
int			t4r_safetensors_write(const t4r_model *m, uint8_t **buf, size_t *len);

/* Parse a safetensors buffer (untrusted) into a new model.  A NaN or +-Inf
 * weight is T4R_EFORMAT (the message names the tensor).  cfg == NULL:
 * configuration from __metadata__.config (missing keys take the movielens
 * preset, or the preset named there), n_items from item_embedding.weight's
 * first dimension.  cfg != NULL: that configuration (n_items 0 = from the
 * file).  Every tensor must be F32 with the expected shape, offsets inside
 * the buffer, not overlapping, all present and none unknown. */
int			t4r_safetensors_read(const uint8_t *buf, size_t len, const t4r_config *cfg,
								 t4r_model **out, char *err, size_t errlen);

/* Lower level: read the tensors of `lay` from buf into dst (layout.total
 * elements), same checks.  Used for gradient files in tests. */
int			t4r_safetensors_read_into(const uint8_t *buf, size_t len,
									  const t4r_layout *lay, t4r_real *dst,
									  char *err, size_t errlen);

/* Configuration <-> JSON (config.c uses jansson; strict parse) */
char	   *t4r_config_to_json(const t4r_config *c);	/* malloc'd; model keys + preset */
int			t4r_config_from_json(t4r_config *c, const char *json, size_t len,
								 char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Data protocol (dataset.c), fitting (fit.c), evaluation (evaluate.c) */
/* ------------------------------------------------------------------ */
typedef struct t4r_dataset
{
	int64_t		n_users;
	int32_t		n_items;		/* V: rows including row 0 */
	int64_t    *item_ids;		/* [V]: external id of each row (row 0: 0) */
	int64_t    *user_ids;		/* [n_users] external user ids */
	int64_t    *seq_off;		/* [n_users+1] into seq_items / seq_ts */
	int32_t    *seq_items;		/* vocabulary rows, time order per user */
	double	   *seq_ts;
	size_t		n_interactions; /* after filtering */
	int64_t    *item_count;		/* [V] training-part counts (popularity) */
	int64_t		n_train_samples;
	/* 0: a user with m >= 3 interactions trains on seq[0..m-3] (the last two
	 * are the validation and test targets); 1: on seq[0..m-2], the
	 * validation target included (refit's second pass, fit.c).  Builders
	 * set 0; item_count and n_train_samples are those of 0. */
	int			train_on_valid;
	/* 1: equal timestamps are in the order of the caller's order values; 0:
	 * by external item id, the builder's own rule (tie_shuffle "auto" does
	 * not take that order for a signal) */
	int			ties_by_order;
} t4r_dataset;

/* Build from raw interactions: n rows of (user, item, ts, order).  order may
 * be NULL (tie-break for equal ts: order value, else item id).  Every ts must
 * be t4r_time_ok (T4R_EINVAL with a message otherwise).  Iterative
 * min_user / min_item filter, leave-one-out split.  Item rows are assigned
 * in ascending external item id order. */
int			t4r_dataset_build(const int64_t *users, const int64_t *items,
							  const double *ts, const int64_t *order, size_t n,
							  int min_user, int min_item, t4r_dataset **out,
							  char *err, size_t errlen);
/* As t4r_dataset_build, calling interrupt(ud) (may be NULL) between its
 * phases and every few hundred thousand rows / few thousand users: a
 * non-zero return stops it with T4R_ECANCELLED and frees everything. */
int			t4r_dataset_build_ex(const int64_t *users, const int64_t *items,
								 const double *ts, const int64_t *order, size_t n,
								 int min_user, int min_item,
								 int (*interrupt) (void *ud), void *ud,
								 t4r_dataset **out, char *err, size_t errlen);
void		t4r_dataset_free(t4r_dataset *ds);

/* A copy of ds with only the users u where keep[u] != 0 (their whole
 * histories, in order): same item rows, ids and item counts (those of all of
 * ds).  The leave-one-out split of a kept user is unchanged. */
int			t4r_dataset_subset(const t4r_dataset *ds, const uint8_t *keep, t4r_dataset **out);

/* A copy of ds without the last drop[u] interactions of each user u
 * (0 <= drop[u] <= m_u - 1, else T4R_EINVAL): same users, item rows and ids;
 * the leave-one-out split is that of the shortened histories, and
 * item_count / n_train_samples are recounted over their training parts. */
int			t4r_dataset_truncate(const t4r_dataset *ds, const int64_t *drop, t4r_dataset **out);

/* The robust time path's gap scale for this data: the median of the
 * positive gaps between consecutive training interactions of a user (over
 * at most ~1M of them, evenly spread), 1.0 when there is none.  t4r_fit
 * sets cfg.time_scale to it when the model is robust and time_scale is 0. */
double		t4r_dataset_time_scale(const t4r_dataset *ds);

/* all_positions training windows of a history with m inputs (a user with
 * tl training items has m = tl - 1: inputs 0..m-1, input j predicts item
 * j+1): returns the number of windows; when start != NULL also writes each
 * window's first input, length and first loss position (relative to the
 * window).  m <= L: one window [0, m), a loss everywhere, exactly the
 * per-prefix contexts.  m > L: [0, L) with a loss everywhere, then windows
 * of L inputs advancing by L - L/2 whose loss positions are the inputs not
 * trained yet: every target exactly once, with at least L/2 + 1 items of
 * context (the per-prefix form gives those targets L). */
int64_t		t4r_window_plan(int64_t m, int L, int64_t *start, int32_t *len,
							int32_t *loss_from);

/* tie_shuffle's epoch step: the items of each user's training part that
 * share a timestamp (runs of equal ds->seq_ts) put in a random order keyed by
 * (seed, epoch); items has ds's layout (a copy of seq_items); the validation
 * and test targets (the last two of a user with >= 3) are left where they are */
void		t4r_shuffle_ties(const t4r_dataset *ds, int32_t *items, uint64_t seed, int epoch);

/* does the order of equal timestamps in the training parts carry a signal?
 * (tieorder.c: neighbours sharing a timestamp, counted per unordered item
 * pair; a random order agrees with itself half the time, a fixed one always) */
#define T4R_TIE_SHUFFLE_AUTO 2
#define T4R_TIE_ORDER_Z 4.0				/* consistent: z at least this */
#define T4R_TIE_ORDER_AGREEMENT 0.6		/* ... and agreement at least this */
#define T4R_TIE_ORDER_MAX_PAIRS ((int64_t) 1 << 24)	/* occurrences read, at most */
typedef struct t4r_tie_stats
{
	int64_t		tied_pairs;		/* neighbours with one timestamp, distinct items */
	int64_t		repeated_pairs; /* unordered item pairs among them seen >= 2 times */
	int64_t		repeated_occurrences;	/* the occurrences of those pairs */
	double		agreement;		/* two occurrences of a pair in the same order: share */
	double		z;				/* about N(0,1) when the order is random */
	int			by_item_id;		/* the dataset ordered its ties by item id itself */
	int			consistent;		/* z >= T4R_TIE_ORDER_Z, agreement >= ..._AGREEMENT,
								 * and the order is the caller's (not by_item_id) */
} t4r_tie_stats;

/* fills *out (all zero without equal timestamps); T4R_ENOMEM */
int			t4r_tie_order_test(const t4r_dataset *ds, t4r_tie_stats *out);

/* tie_shuffle "auto" on its own: 1 (shuffle) unless the order is consistent
 * or there is nothing to shuffle */
int			t4r_tie_shuffle_resolve(const t4r_tie_stats *t);

#define T4R_SPLIT_VALID 0
#define T4R_SPLIT_TEST  1

typedef struct t4r_epoch_info
{
	int			epoch;			/* 1-based */
	double		loss;			/* mean training loss */
	double		valid_ndcg10;
	double		seconds;
	int			best_epoch;
	double		best_ndcg10;
	double		learning_rate;	/* step size for the next epoch (lr_decay) */
} t4r_epoch_info;

/* A compute backend other than the CPU trainer (the CUDA trainer of
 * src/cuda/ is one).  t4r_fit drives it exactly as it drives the CPU
 * trainer: same batches in the same order, same dropout keys; the backend
 * holds its own copy of the parameters and the optimiser state. */
typedef struct t4r_backend
{
	void	   *ctx;
	/* one optimiser step, as t4r_trainer_step */
	int			(*step) (void *ctx, const t4r_sample *s, int ns, double *loss);
	/* copy the backend's parameters into the host model */
	int			(*sync_to_host) (void *ctx);
	/* eval-mode scores [ns * V] of the backend's current parameters; NULL:
	 * score on the CPU from the host model (after sync_to_host) */
	int			(*scores) (void *ctx, const t4r_sample *s, int ns, t4r_real *scores);
	/* message of the last failure (may be NULL) */
	const char *(*error) (void *ctx);
} t4r_backend;

typedef struct t4r_fit_opts
{
	t4r_train_opts train;		/* threads, budget, interrupt callback */
	/* NULL: the CPU trainer (t4r_trainer_*); else this backend takes every
	 * optimiser step and (when it has scores) the validation scoring */
	const t4r_backend *backend;
	int			epochs;			/* overrides cfg.epochs when > 0 */
	int			patience;		/* overrides cfg.patience when > 0 */
	/* progress: called from the calling thread after each step */
	void		(*progress) (void *ud, int epoch, int64_t step, int64_t steps_per_epoch,
							 double loss);
	void		(*epoch_done) (void *ud, const t4r_epoch_info *info);
	void	   *ud;
	/* t4r_refit only: the step size of epoch e (1-based) is lr_schedule[e-1]
	 * (the first pass's, so lr_decay's steps are replayed); NULL: the
	 * config's learning_rate throughout */
	const double *lr_schedule;
} t4r_fit_opts;

typedef struct t4r_fit_result
{
	int			epochs_run;
	int			best_epoch;
	double		best_valid_ndcg10;
	double		seconds;
	int64_t		train_samples;	/* per epoch */
} t4r_fit_result;

/* Train m (already initialised) on ds with early stopping on validation
 * NDCG@10; on return m holds the best epoch's weights.  A step whose loss is
 * not finite, weights that are not finite after an epoch, or a validation
 * NDCG@10 that is not finite stop it with T4R_ENONFINITE and a message (the
 * weights are then unspecified: do not keep the model). */
int			t4r_fit(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *opts,
					t4r_fit_result *res, char *err, size_t errlen);

/* refit's second pass: train m (which the caller has put back to the
 * weights the first pass started from) for exactly `epochs` epochs on ds's
 * training parts extended by each user's validation target (train_on_valid),
 * the test target still held out; no validation and no early stopping, the
 * last epoch's weights (ema_decay: their moving average) are kept.  The
 * batches of epoch e are shuffled by (seed, e) as in t4r_fit; epoch_done gets
 * valid_ndcg10 = NaN.  CPU trainer only (a backend in opts: T4R_EINVAL).
 * res->best_epoch = epochs_run = epochs. */
int			t4r_refit(t4r_model *m, const t4r_dataset *ds, const t4r_fit_opts *opts,
					  int epochs, t4r_fit_result *res, char *err, size_t errlen);

/* Leave-one-out metrics over all users with a target in the split.  Rank of
 * the target = #rows (padding excluded) with a higher score + #rows with an
 * equal score and a smaller row.  hr/ndcg/mrr are [nk].  model == NULL gives
 * the most-popular baseline (scores = ds->item_count). */
int			t4r_evaluate(const t4r_model *m, const t4r_dataset *ds, int split,
						 const int *ks, int nk, int threads,
						 int (*interrupt) (void *ud), void *ud,
						 double *hr, double *ndcg, double *mrr);

/* As t4r_evaluate, with the model's scores computed by backend->scores when
 * backend (and its scores) is not NULL; ranking stays on the CPU. */
int			t4r_evaluate_backend(const t4r_model *m, const t4r_dataset *ds, int split,
								 const int *ks, int nk, int threads,
								 int (*interrupt) (void *ud), void *ud,
								 const t4r_backend *backend,
								 double *hr, double *ndcg, double *mrr);

/*
 * For every user u of ds with a target in split (users with >= 3
 * interactions, in ds's user order): users[i] = u (index into ds),
 * ranks[i] = 0-based rank of the target among the rows 1..V-1, with the
 * ranking of t4r_evaluate (#rows with a higher score + #rows with an equal
 * score and a smaller row; a NaN target score ranks V).  The input is the
 * last max_seq_len items before the target, as in t4r_evaluate.  m == NULL:
 * the most-popular baseline (ds->item_count, ties by row).  backend (may be
 * NULL) computes the model's scores as in t4r_evaluate_backend.  users and
 * ranks hold ds->n_users entries; *n_out = the number written.
 */
int			t4r_evaluate_ranks(const t4r_model *m, const t4r_dataset *ds, int split,
							   int threads, int (*interrupt) (void *ud), void *ud,
							   const t4r_backend *backend,
							   int64_t *users, int64_t *ranks, int64_t *n_out);

/* metrics of a 0-based rank at cut-off k (0 when rank >= k) */
double		t4r_rank_hr(int64_t rank, int k);
double		t4r_rank_ndcg(int64_t rank, int k);
double		t4r_rank_mrr(int64_t rank, int k);

#ifdef __cplusplus
}
#endif

#endif							/* TIM4REC_H */
