/*
 * eval_users.h - per-user leave-one-out ranks (src/core/eval_users.c), the
 * per-user form of t4r_evaluate: the mean over users of a metric computed
 * from these ranks is t4r_evaluate's figure.
 */
#ifndef TIM4REC_EVAL_USERS_H
#define TIM4REC_EVAL_USERS_H

#include "tim4rec.h"

#ifdef __cplusplus
extern "C"
{
#endif

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

#endif							/* TIM4REC_EVAL_USERS_H */
