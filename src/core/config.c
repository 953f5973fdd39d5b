/*
 * config.c - configuration, presets, validation, parameter layout and the
 * model's lifecycle (allocation): docs/MODEL.md "Options" and
 * "Parameters".
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tim4rec.h"
#include "err.h"

const char *
t4r_strerror(int code)
{
	switch (code)
	{
		case T4R_OK:
			return "success";
		case T4R_EINVAL:
			return "invalid argument";
		case T4R_ENOMEM:
			return "out of memory";
		case T4R_EFORMAT:
			return "malformed input";
		case T4R_EMISMATCH:
			return "input does not match the configuration";
		case T4R_ECANCELLED:
			return "cancelled";
		case T4R_EDATA:
			return "not enough data";
		case T4R_EIO:
			return "I/O error";
		case T4R_EBUDGET:
			return "memory budget exceeded";
		case T4R_ENONFINITE:
			return "non-finite value (NaN or infinity)";
	}
	return "unknown error";
}

/* ------------------------------------------------------------------ */
/* presets                                                             */
/* ------------------------------------------------------------------ */
int
t4r_config_preset(t4r_config *c, const char *preset)
{
	int			amazon;

	if (preset == NULL || strcmp(preset, "movielens") == 0)
		amazon = 0;
	else if (strcmp(preset, "amazon") == 0)
		amazon = 1;
	else
		return T4R_EINVAL;

	memset(c, 0, sizeof(*c));
	c->hidden_size = 64;
	c->num_layers = 2;
	c->dropout_prob = amazon ? 0.4 : 0.2;
	c->time_dropout = amazon ? 0.0 : 0.2;
	c->d_state = 32;
	c->d_conv = 4;
	c->expand = 2;
	c->head_dim = 32;
	c->chunk_size = 32;
	c->max_seq_len = amazon ? 50 : 200;
	c->norm_eps = amazon ? 1e-5 : 1e-12;
	c->p2p_residual = amazon ? 1 : 0;
	c->is_time = 1;
	c->kaiming_init = amazon ? 0 : 1;
	c->learning_rate = 1e-3;
	c->batch_size = 2048;
	c->epochs = 300;
	c->patience = 20;
	c->seed = 2020;
	/* not the published training: chosen on Beauty's validation split
	 * (test/bench/QUALITY.md, "Shuffling equal timestamps in training",
	 * "Regularising the amazon preset", "Training on the validation
	 * targets too") */
	c->tie_shuffle = amazon ? T4R_TIE_SHUFFLE_AUTO : 0;
	c->weight_decay = amazon ? 1 : 0;
	c->lr_decay = 1;
	c->lr_decay_patience = 2;
	c->ema_decay = 0;
	c->label_smoothing = 0;
	c->tie_targets = 0;
	c->refit = amazon ? 1 : 0;
	c->tie_average = 1;
	snprintf(c->preset, sizeof(c->preset), "%s", amazon ? "amazon" : "movielens");
	c->n_items = 0;
	return T4R_OK;
}

/* ------------------------------------------------------------------ */
/* option keys                                                         */
/* ------------------------------------------------------------------ */
typedef enum
{
	KT_INT, KT_DOUBLE, KT_BOOL, KT_U64, KT_PRESET, KT_TIMEF, KT_TRAINING, KT_TIES
} key_type;

typedef struct
{
	const char *name;
	key_type	type;
	size_t		off;
} key_def;

#define KD(n, t) { #n, t, offsetof(t4r_config, n) }
static const key_def key_defs[] = {
	{"preset", KT_PRESET, 0},
	KD(hidden_size, KT_INT),
	KD(num_layers, KT_INT),
	KD(dropout_prob, KT_DOUBLE),
	KD(time_dropout, KT_DOUBLE),
	KD(d_state, KT_INT),
	KD(d_conv, KT_INT),
	KD(expand, KT_INT),
	KD(head_dim, KT_INT),
	KD(chunk_size, KT_INT),
	KD(max_seq_len, KT_INT),
	KD(norm_eps, KT_DOUBLE),
	KD(p2p_residual, KT_BOOL),
	KD(is_time, KT_BOOL),
	KD(kaiming_init, KT_BOOL),
	KD(learning_rate, KT_DOUBLE),
	KD(batch_size, KT_INT),
	KD(epochs, KT_INT),
	KD(patience, KT_INT),
	KD(time_features, KT_TIMEF),
	KD(time_scale, KT_DOUBLE),
	KD(training, KT_TRAINING),
	KD(tie_shuffle, KT_TIES),
	KD(weight_decay, KT_DOUBLE),
	KD(lr_decay, KT_DOUBLE),
	KD(lr_decay_patience, KT_INT),
	KD(ema_decay, KT_DOUBLE),
	KD(label_smoothing, KT_DOUBLE),
	KD(tie_targets, KT_BOOL),
	KD(refit, KT_BOOL),
	KD(tie_average, KT_INT),
	KD(seed, KT_U64),
};
#define N_KEYS ((int) (sizeof(key_defs) / sizeof(key_defs[0])))

static const char *key_names[N_KEYS + 1];
static char keys_joined[640];

static void
init_key_names(void)
{
	/* idempotent and race-free in effect: every thread writes the same data */
	if (key_names[0] != NULL)
		return;
	{
		size_t		pos = 0;

		keys_joined[0] = '\0';
		for (int i = 0; i < N_KEYS; i++)
		{
			int			w = snprintf(keys_joined + pos, sizeof(keys_joined) - pos, "%s%s",
									 i ? ", " : "", key_defs[i].name);

			if (w > 0 && (size_t) w < sizeof(keys_joined) - pos)
				pos += (size_t) w;
		}
	}
	for (int i = N_KEYS - 1; i >= 0; i--)
		key_names[i] = key_defs[i].name;
	key_names[N_KEYS] = NULL;
}

const char *const *
t4r_config_keys(void)
{
	init_key_names();
	return key_names;
}

const char *
t4r_config_keys_joined(void)
{
	init_key_names();
	return keys_joined;
}

/* keys that change only what a trained model serves, not its weights or
 * its training (tim4rec_set_serving) */
static const char *const serving_keys[] = {"tie_average", NULL};

int
t4r_config_key_serving(const char *key)
{
	for (const char *const *k = serving_keys; *k; k++)
		if (strcmp(*k, key) == 0)
			return 1;
	return 0;
}

static int
parse_double(const char *s, double *out)
{
	char	   *end;
	double		v;

	if (s == NULL)
		return 0;
	while (isspace((unsigned char) *s))
		s++;
	if (*s == '\0')
		return 0;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return 0;
	while (isspace((unsigned char) *end))
		end++;
	if (*end != '\0' || !isfinite(v))
		return 0;
	*out = v;
	return 1;
}

static int
parse_int(const char *s, int *out)
{
	double		v;

	if (!parse_double(s, &v))
		return 0;
	if (v != floor(v) || v < -2147483647.0 || v > 2147483647.0)
		return 0;
	*out = (int) v;
	return 1;
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char	   *end;
	unsigned long long v;

	if (s == NULL)
		return 0;
	while (isspace((unsigned char) *s))
		s++;
	if (*s == '\0' || *s == '-')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == 0 && end != s)
	{
		while (isspace((unsigned char) *end))
			end++;
		if (*end == '\0')
		{
			*out = (uint64_t) v;
			return 1;
		}
	}
	/* also accept an integral float such as "2020.0" */
	{
		double		d;

		if (parse_double(s, &d) && d >= 0 && d == floor(d) && d < 1.8e19)
		{
			*out = (uint64_t) d;
			return 1;
		}
	}
	return 0;
}

static int
parse_bool(const char *s, int *out)
{
	static const char *yes[] = {"true", "t", "1", "yes", "on", NULL};
	static const char *no[] = {"false", "f", "0", "no", "off", NULL};

	if (s == NULL)
		return 0;
	for (int i = 0; yes[i]; i++)
		if (strcasecmp(s, yes[i]) == 0)
		{
			*out = 1;
			return 1;
		}
	for (int i = 0; no[i]; i++)
		if (strcasecmp(s, no[i]) == 0)
		{
			*out = 0;
			return 1;
		}
	return 0;
}

int
t4r_config_set(t4r_config *c, const char *key, const char *value,
			   char *err, size_t errlen)
{
	const key_def *kd = NULL;

	if (c == NULL || key == NULL)
	{
		t4r_set_err(err, errlen, "missing option key");
		return T4R_EINVAL;
	}
	for (int i = 0; i < N_KEYS; i++)
		if (strcmp(key_defs[i].name, key) == 0)
			kd = &key_defs[i];
	if (kd == NULL)
	{
		t4r_set_err(err, errlen, "unknown option \"%s\"; valid options are: %s",
				key, t4r_config_keys_joined());
		return T4R_EINVAL;
	}
	if (value == NULL)
	{
		t4r_set_err(err, errlen, "option \"%s\" needs a value", key);
		return T4R_EINVAL;
	}
	switch (kd->type)
	{
		case KT_PRESET:
			{
				int			n_items = c->n_items;

				if (t4r_config_preset(c, value) != T4R_OK)
				{
					t4r_set_err(err, errlen, "invalid value \"%s\" for option \"preset\": expected \"movielens\" or \"amazon\"", value);
					return T4R_EINVAL;
				}
				c->n_items = n_items;
				return T4R_OK;
			}
		case KT_TIMEF:
			if (strcmp(value, "official") == 0)
				c->time_features = T4R_TIME_OFFICIAL;
			else if (strcmp(value, "robust") == 0)
				c->time_features = T4R_TIME_ROBUST;
			else
			{
				t4r_set_err(err, errlen, "invalid value \"%s\" for option \"time_features\": expected \"official\" or \"robust\"", value);
				return T4R_EINVAL;
			}
			return T4R_OK;
		case KT_TRAINING:
			if (strcmp(value, "prefixes") == 0)
				c->training = T4R_TRAIN_PREFIXES;
			else if (strcmp(value, "all_positions") == 0)
				c->training = T4R_TRAIN_ALL_POSITIONS;
			else
			{
				t4r_set_err(err, errlen, "invalid value \"%s\" for option \"training\": expected \"prefixes\" or \"all_positions\"", value);
				return T4R_EINVAL;
			}
			return T4R_OK;
		case KT_INT:
			{
				int			v;

				if (!parse_int(value, &v))
				{
					t4r_set_err(err, errlen, "invalid value \"%s\" for option \"%s\": expected an integer", value, key);
					return T4R_EINVAL;
				}
				*(int *) ((char *) c + kd->off) = v;
				return T4R_OK;
			}
		case KT_DOUBLE:
			{
				double		v;

				if (!parse_double(value, &v))
				{
					t4r_set_err(err, errlen, "invalid value \"%s\" for option \"%s\": expected a finite number", value, key);
					return T4R_EINVAL;
				}
				*(double *) ((char *) c + kd->off) = v;
				return T4R_OK;
			}
		case KT_TIES:
			{
				int			v;

				if (strcmp(value, "auto") == 0)
					v = T4R_TIE_SHUFFLE_AUTO;
				else if (!parse_bool(value, &v))
				{
					t4r_set_err(err, errlen, "invalid value \"%s\" for option \"%s\": expected true, false or \"auto\"", value, key);
					return T4R_EINVAL;
				}
				*(int *) ((char *) c + kd->off) = v;
				return T4R_OK;
			}
		case KT_BOOL:
			{
				int			v;

				if (!parse_bool(value, &v))
				{
					t4r_set_err(err, errlen, "invalid value \"%s\" for option \"%s\": expected true or false", value, key);
					return T4R_EINVAL;
				}
				*(int *) ((char *) c + kd->off) = v;
				return T4R_OK;
			}
		case KT_U64:
			{
				uint64_t	v;

				if (!parse_u64(value, &v))
				{
					t4r_set_err(err, errlen, "invalid value \"%s\" for option \"%s\": expected a non-negative integer", value, key);
					return T4R_EINVAL;
				}
				*(uint64_t *) ((char *) c + kd->off) = v;
				return T4R_OK;
			}
	}
	return T4R_EINVAL;
}

#define CHECK_RANGE_INT(field, lo, hi) \
	do { \
		if (c->field < (lo) || c->field > (hi)) \
		{ \
			t4r_set_err(err, errlen, "option \"" #field "\" must be between %d and %d (got %d)", (lo), (hi), c->field); \
			return T4R_EINVAL; \
		} \
	} while (0)

int
t4r_config_validate(const t4r_config *c, char *err, size_t errlen)
{
	if (c == NULL)
	{
		t4r_set_err(err, errlen, "missing configuration");
		return T4R_EINVAL;
	}
	CHECK_RANGE_INT(hidden_size, 1, 4096);
	CHECK_RANGE_INT(num_layers, 1, 64);
	CHECK_RANGE_INT(d_state, 1, 1024);
	CHECK_RANGE_INT(d_conv, 1, 64);
	CHECK_RANGE_INT(expand, 1, 64);
	CHECK_RANGE_INT(head_dim, 1, 4096);
	CHECK_RANGE_INT(chunk_size, 1, 4096);
	CHECK_RANGE_INT(max_seq_len, 2, 4096);
	CHECK_RANGE_INT(batch_size, 1, 1 << 20);
	CHECK_RANGE_INT(epochs, 1, 100000);
	CHECK_RANGE_INT(patience, 1, 100000);
	CHECK_RANGE_INT(p2p_residual, 0, 1);
	CHECK_RANGE_INT(is_time, 0, 1);
	CHECK_RANGE_INT(kaiming_init, 0, 1);
	CHECK_RANGE_INT(time_features, 0, 1);
	CHECK_RANGE_INT(training, 0, 1);
	CHECK_RANGE_INT(tie_shuffle, 0, T4R_TIE_SHUFFLE_AUTO);
	if (!(c->time_scale >= 0 && c->time_scale <= 1e300))
	{
		t4r_set_err(err, errlen, "option \"time_scale\" must be a finite number >= 0 (got %g)", c->time_scale);
		return T4R_EINVAL;
	}
	if (c->training == T4R_TRAIN_ALL_POSITIONS && c->is_time &&
		c->time_features != T4R_TIME_ROBUST)
	{
		t4r_set_err(err, errlen, "option \"training\" = \"all_positions\" needs a causal model, but time_features \"official\" is not causal (set \"time_features\": \"robust\")");
		return T4R_EINVAL;
	}
	if (!(c->dropout_prob >= 0 && c->dropout_prob < 1))
	{
		t4r_set_err(err, errlen, "option \"dropout_prob\" must be in [0, 1) (got %g)", c->dropout_prob);
		return T4R_EINVAL;
	}
	if (!(c->time_dropout >= 0 && c->time_dropout < 1))
	{
		t4r_set_err(err, errlen, "option \"time_dropout\" must be in [0, 1) (got %g)", c->time_dropout);
		return T4R_EINVAL;
	}
	if (!(c->norm_eps > 0 && c->norm_eps < 1))
	{
		t4r_set_err(err, errlen, "option \"norm_eps\" must be in (0, 1) (got %g)", c->norm_eps);
		return T4R_EINVAL;
	}
	if (!(c->learning_rate > 0 && c->learning_rate <= 10))
	{
		t4r_set_err(err, errlen, "option \"learning_rate\" must be in (0, 10] (got %g)", c->learning_rate);
		return T4R_EINVAL;
	}
	if (!(c->weight_decay >= 0 && c->weight_decay * c->learning_rate < 1))
	{
		t4r_set_err(err, errlen, "option \"weight_decay\" must be >= 0 and learning_rate * weight_decay below 1 (got %g)", c->weight_decay);
		return T4R_EINVAL;
	}
	if (!(c->lr_decay > 0 && c->lr_decay <= 1))
	{
		t4r_set_err(err, errlen, "option \"lr_decay\" must be in (0, 1] (got %g)", c->lr_decay);
		return T4R_EINVAL;
	}
	if (c->lr_decay_patience < 1)
	{
		t4r_set_err(err, errlen, "option \"lr_decay_patience\" must be at least 1 (got %d)", c->lr_decay_patience);
		return T4R_EINVAL;
	}
	if (!(c->ema_decay >= 0 && c->ema_decay < 1))
	{
		t4r_set_err(err, errlen, "option \"ema_decay\" must be in [0, 1) (got %g)", c->ema_decay);
		return T4R_EINVAL;
	}
	if (!(c->label_smoothing >= 0 && c->label_smoothing < 1))
	{
		t4r_set_err(err, errlen, "option \"label_smoothing\" must be in [0, 1) (got %g)", c->label_smoothing);
		return T4R_EINVAL;
	}
	CHECK_RANGE_INT(tie_targets, 0, 1);
	CHECK_RANGE_INT(refit, 0, 1);
	CHECK_RANGE_INT(tie_average, 1, 64);
	if (c->tie_targets && c->training == T4R_TRAIN_ALL_POSITIONS)
	{
		t4r_set_err(err, errlen, "option \"tie_targets\" needs per-prefix training, but \"training\" is \"all_positions\"");
		return T4R_EINVAL;
	}
	if ((c->expand * c->hidden_size) % c->head_dim != 0)
	{
		t4r_set_err(err, errlen, "expand * hidden_size (%d) must be divisible by head_dim (%d)",
				c->expand * c->hidden_size, c->head_dim);
		return T4R_EINVAL;
	}
	if ((long) c->expand * c->hidden_size > 65536)
	{
		t4r_set_err(err, errlen, "expand * hidden_size (%ld) is too large (at most 65536)",
				(long) c->expand * c->hidden_size);
		return T4R_EINVAL;
	}
	if (strcmp(c->preset, "movielens") != 0 && strcmp(c->preset, "amazon") != 0)
	{
		t4r_set_err(err, errlen, "option \"preset\" must be \"movielens\" or \"amazon\"");
		return T4R_EINVAL;
	}
	if (c->n_items != 0 && (c->n_items < 2 || (double) c->n_items * c->hidden_size > 2e9))
	{
		t4r_set_err(err, errlen, "the item vocabulary must have between 2 and %.0f rows (got %d)",
				2e9 / c->hidden_size, c->n_items);
		return T4R_EINVAL;
	}
	return T4R_OK;
}

void
t4r_dims_from_config(const t4r_config *c, t4r_dims *o)
{
	memset(o, 0, sizeof(*o));
	o->d = c->hidden_size;
	o->Di = c->expand * c->hidden_size;
	o->P = c->head_dim;
	o->H = c->head_dim > 0 ? o->Di / c->head_dim : 0;
	o->N = c->d_state;
	o->K = c->d_conv;
	o->L = c->max_seq_len;
	o->V = c->n_items;
	o->G = c->p2p_residual ? c->max_seq_len : 1;
	o->conv_dim = o->Di + 2 * o->N;
	o->in_dim = 2 * o->Di + 2 * o->N + o->H;
	o->ffn_dim = 4 * o->d;
	o->layers = c->num_layers;
	o->is_time = c->is_time;
	o->p2p = c->p2p_residual;
	o->robust = c->is_time && c->time_features == T4R_TIME_ROBUST;
	o->allpos = c->training == T4R_TRAIN_ALL_POSITIONS;
	o->TJ = T4R_RTIME_J;
}

/* ------------------------------------------------------------------ */
/* layout                                                              */
/* ------------------------------------------------------------------ */
typedef struct
{
	t4r_layout *lay;
	int			cap;
	int			failed;
} layout_builder;

static void
add_tensor(layout_builder *b, const char *name, int ndim, int64_t s0, int64_t s1, int64_t s2)
{
	t4r_layout *lay = b->lay;
	t4r_tensor *t;
	size_t		numel;

	if (b->failed)
		return;
	if (lay->n == b->cap)
	{
		int			ncap = b->cap ? b->cap * 2 : 64;
		t4r_tensor *nt = realloc(lay->t, sizeof(t4r_tensor) * ncap);

		if (nt == NULL)
		{
			b->failed = 1;
			return;
		}
		lay->t = nt;
		b->cap = ncap;
	}
	t = &lay->t[lay->n++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ndim = ndim;
	t->shape[0] = s0;
	t->shape[1] = ndim > 1 ? s1 : 0;
	t->shape[2] = ndim > 2 ? s2 : 0;
	numel = (size_t) s0;
	if (ndim > 1)
		numel *= (size_t) s1;
	if (ndim > 2)
		numel *= (size_t) s2;
	t->numel = numel;
	t->offset = lay->total;
	lay->total += (numel + 15) & ~(size_t) 15;
}

int
t4r_layout_build(const t4r_config *c, t4r_layout *out)
{
	t4r_dims	D;
	layout_builder b;
	char		nm[T4R_NAME_MAX];

	memset(out, 0, sizeof(*out));
	if (t4r_config_validate(c, NULL, 0) != T4R_OK || c->n_items < 2)
		return T4R_EINVAL;
	t4r_dims_from_config(c, &D);
	b.lay = out;
	b.cap = 0;
	b.failed = 0;

	add_tensor(&b, "item_embedding.weight", 2, D.V, D.d, 0);
	add_tensor(&b, "in_layer_norm.weight", 1, D.d, 0, 0);
	add_tensor(&b, "in_layer_norm.bias", 1, D.d, 0, 0);
	if (D.robust)
	{
		add_tensor(&b, "time_input.weight", 1, D.H, 0, 0);
		add_tensor(&b, "time_input.bias", 1, D.H, 0, 0);
	}
	else if (D.is_time)
	{
		add_tensor(&b, "layer_norm_time.weight", 1, D.L, 0, 0);
		add_tensor(&b, "layer_norm_time.bias", 1, D.L, 0, 0);
	}
	for (int i = 0; i < D.layers; i++)
	{
#define T(suffix, nd, a, bb, cc) \
		do { snprintf(nm, sizeof(nm), "ssd_layers.%d.%s", i, suffix); add_tensor(&b, nm, nd, a, bb, cc); } while (0)
		T("ssd.in_proj.weight", 2, D.in_dim, D.d, 0);
		T("ssd.in_proj.bias", 1, D.in_dim, 0, 0);
		T("ssd.conv1d.weight", 3, D.conv_dim, 1, D.K);
		T("ssd.conv1d.bias", 1, D.conv_dim, 0, 0);
		if (D.robust)
		{
			T("ssd.conv1d4time_1.weight", 3, D.H, 1, D.K);
			T("ssd.conv1d4time_1.bias", 1, D.H, 0, 0);
			T("ssd.conv1d4time_2.weight", 3, D.H, 1, D.K);
			T("ssd.conv1d4time_2.bias", 1, D.H, 0, 0);
			T("ssd.time_mlp.1.weight", 2, D.H, D.TJ, 0);
			T("ssd.time_mlp.1.bias", 2, D.H, D.TJ, 0);
			T("ssd.time_mlp.3.weight", 2, D.H, D.TJ, 0);
			T("ssd.time_mlp.3.bias", 1, D.H, 0, 0);
			T("ssd.time_gate.weight", 1, D.H, 0, 0);
			T("ssd.time_gate.bias", 1, D.H, 0, 0);
			T("ssd.time_affine.weight", 1, D.H, 0, 0);
			T("ssd.time_affine.bias", 1, D.H, 0, 0);
		}
		else if (D.is_time)
		{
			T("ssd.conv1d4time_1.weight", 3, D.H, 1, D.K);
			T("ssd.conv1d4time_1.bias", 1, D.H, 0, 0);
			T("ssd.conv1d4time_2.weight", 3, D.H, 1, D.K);
			T("ssd.conv1d4time_2.bias", 1, D.H, 0, 0);
			T("ssd.mlp4time_scale.1.weight", 2, D.L, D.L, 0);
			T("ssd.mlp4time_scale.1.bias", 1, D.L, 0, 0);
			T("ssd.mlp4time_scale.3.weight", 2, D.L, D.L, 0);
			T("ssd.mlp4time_scale.3.bias", 1, D.L, 0, 0);
			T("ssd.time_gate_residual.1.weight", 2, D.G, D.L, 0);
			T("ssd.time_gate_residual.1.bias", 1, D.G, 0, 0);
			T("ssd.time_layer_norm.weight", 1, D.L, 0, 0);
			T("ssd.time_layer_norm.bias", 1, D.L, 0, 0);
		}
		T("ssd.dt_bias", 1, D.H, 0, 0);
		T("ssd.A_log", 1, D.H, 0, 0);
		T("ssd.D", 1, D.H, 0, 0);
		T("ssd.norm.weight", 1, D.Di, 0, 0);
		T("ssd.out_proj.weight", 2, D.d, D.Di, 0);
		T("ssd.out_proj.bias", 1, D.d, 0, 0);
		T("layer_norm.weight", 1, D.d, 0, 0);
		T("layer_norm.bias", 1, D.d, 0, 0);
		T("ffn.fc1.weight", 2, D.ffn_dim, D.d, 0);
		T("ffn.fc1.bias", 1, D.ffn_dim, 0, 0);
		T("ffn.fc2.weight", 2, D.d, D.ffn_dim, 0);
		T("ffn.fc2.bias", 1, D.d, 0, 0);
		T("ffn.layer_norm.weight", 1, D.d, 0, 0);
		T("ffn.layer_norm.bias", 1, D.d, 0, 0);
#undef T
	}
	if (b.failed)
	{
		t4r_layout_free(out);
		return T4R_ENOMEM;
	}
	return T4R_OK;
}

void
t4r_layout_free(t4r_layout *lay)
{
	if (lay == NULL)
		return;
	free(lay->t);
	lay->t = NULL;
	lay->n = 0;
	lay->total = 0;
}

int
t4r_layout_find(const t4r_layout *lay, const char *name)
{
	if (lay == NULL || name == NULL)
		return -1;
	for (int i = 0; i < lay->n; i++)
		if (strcmp(lay->t[i].name, name) == 0)
			return i;
	return -1;
}

/* ------------------------------------------------------------------ */
/* model lifecycle                                                     */
/* ------------------------------------------------------------------ */
/* a model struct with validated config, dims and layout; params unset */
static int
model_header(const t4r_config *cfg, t4r_model **out, char *err, size_t errlen)
{
	t4r_model  *m;
	int			rc;

	*out = NULL;
	rc = t4r_config_validate(cfg, err, errlen);
	if (rc != T4R_OK)
		return rc;
	if (cfg->n_items < 2)
	{
		t4r_set_err(err, errlen, "the model needs an item vocabulary of at least 2 rows (got %d)", cfg->n_items);
		return T4R_EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
	{
		t4r_set_err(err, errlen, "out of memory");
		return T4R_ENOMEM;
	}
	m->cfg = *cfg;
	t4r_dims_from_config(cfg, &m->dims);
	rc = t4r_layout_build(cfg, &m->layout);
	if (rc != T4R_OK)
	{
		free(m);
		t4r_set_err(err, errlen, "out of memory");
		return rc;
	}
	*out = m;
	return T4R_OK;
}

int
t4r_model_create(const t4r_config *cfg, t4r_model **out, char *err, size_t errlen)
{
	t4r_model  *m;
	int			rc = model_header(cfg, &m, err, errlen);

	*out = NULL;
	if (rc != T4R_OK)
		return rc;
	m->owns_params = 1;
	m->params = calloc(m->layout.total ? m->layout.total : 1, sizeof(t4r_real));
	if (m->params == NULL)
	{
		size_t		total = m->layout.total;

		t4r_layout_free(&m->layout);
		free(m);
		t4r_set_err(err, errlen, "out of memory allocating %zu parameters", total);
		return T4R_ENOMEM;
	}
	*out = m;
	return T4R_OK;
}

void
t4r_model_free(t4r_model *m)
{
	if (m == NULL)
		return;
	if (m->owns_params)
		free(m->params);
	t4r_layout_free(&m->layout);
	free(m);
}

int
t4r_model_wrap(const t4r_config *cfg, t4r_real *params, t4r_model **out, char *err, size_t errlen)
{
	int			rc;

	*out = NULL;
	if (params == NULL)
	{
		t4r_set_err(err, errlen, "no parameters to wrap");
		return T4R_EINVAL;
	}
	rc = model_header(cfg, out, err, errlen);
	if (rc != T4R_OK)
		return rc;
	(*out)->params = params;
	(*out)->owns_params = 0;
	return T4R_OK;
}

t4r_real *
t4r_model_tensor(const t4r_model *m, const char *name)
{
	int			i = t4r_layout_find(&m->layout, name);

	if (i < 0)
		return NULL;
	return m->params + m->layout.t[i].offset;
}

int
t4r_model_check_finite(const t4r_model *m, char *err, size_t errlen)
{
	if (m == NULL || m->params == NULL)
	{
		t4r_set_err(err, errlen, "no model");
		return T4R_EINVAL;
	}
	for (int i = 0; i < m->layout.n; i++)
	{
		const t4r_tensor *t = &m->layout.t[i];
		const t4r_real *p = m->params + t->offset;

		for (size_t j = 0; j < t->numel; j++)
			if (!isfinite(p[j]))
			{
				t4r_set_err(err, errlen, "tensor %s holds a non-finite value (%s at element %zu)",
						t->name, isnan(p[j]) ? "NaN" : p[j] > 0 ? "Infinity" : "-Infinity", j);
				return T4R_ENONFINITE;
			}
	}
	return T4R_OK;
}
