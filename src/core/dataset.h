/*
 * dataset.h - internal helpers on a built t4r_dataset, shared by dataset.c,
 * evaluate.c and fit.c (the layout is documented in tim4rec.h and at the top
 * of dataset.c).
 */
#ifndef T4R_DATASET_H
#define T4R_DATASET_H
#include <stdint.h>
#include "tim4rec.h"

/*
 * Length of user u's training part: seq[0..m-3] for a user with m >= 3
 * interactions (the last two are the validation and test targets), the whole
 * sequence otherwise; with ds->train_on_valid seq[0..m-2] (only the test
 * target held out).
 */
static inline int64_t
train_len(const t4r_dataset *ds, int64_t u)
{
	int64_t		m = ds->seq_off[u + 1] - ds->seq_off[u];

	return m >= 3 ? m - 2 + (ds->train_on_valid != 0) : m;
}

/* item_count (zeroed by the caller) and n_train_samples over the training
 * parts (dataset.c) */
void		t4r_ds_count(t4r_dataset *ds);
#endif
