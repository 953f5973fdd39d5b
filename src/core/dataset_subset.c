/*
 * dataset_subset.c - a dataset restricted to some of its users, for a warm
 * start that trains and early-stops on the users with new interactions only
 * (options.warm_scope = 'new').
 *
 * The subset keeps the vocabulary (item rows, external ids) and the item
 * counts of the whole dataset (the model's popularity fallback is that of
 * all the data), and each kept user's whole history, so the leave-one-out
 * split of a kept user is the same as in the full dataset.
 *
 * t4r_dataset_truncate: the same dataset with the last interactions of each
 * user removed, for the "last K" evaluation (test/quality/quality_core.c
 * --holdout): a model trains on the truncated data and is then tested on
 * the held-out events one at a time.
 */
#include <stdlib.h>
#include <string.h>
#include "tim4rec.h"
#include "dataset.h"

/* a dataset shaped like ds (its item rows, ids and flags) with room for nu
 * users and ni interactions; item_count zeroed; NULL when out of memory */
static t4r_dataset *
ds_alloc_like(const t4r_dataset *ds, int64_t nu, size_t ni)
{
	t4r_dataset *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->n_users = nu;
	s->n_items = ds->n_items;
	s->n_interactions = ni;
	s->item_ids = malloc(sizeof(int64_t) * (size_t) ds->n_items);
	s->item_count = calloc((size_t) ds->n_items, sizeof(int64_t));
	s->user_ids = malloc(sizeof(int64_t) * (size_t) (nu > 0 ? nu : 1));
	s->seq_off = malloc(sizeof(int64_t) * (size_t) (nu + 1));
	s->seq_items = malloc(sizeof(int32_t) * (ni > 0 ? ni : 1));
	s->seq_ts = malloc(sizeof(double) * (ni > 0 ? ni : 1));
	if (!s->item_ids || !s->item_count || !s->user_ids || !s->seq_off || !s->seq_items ||
		!s->seq_ts)
	{
		t4r_dataset_free(s);
		return NULL;
	}
	memcpy(s->item_ids, ds->item_ids, sizeof(int64_t) * (size_t) ds->n_items);
	s->train_on_valid = ds->train_on_valid;
	s->ties_by_order = ds->ties_by_order;
	s->seq_off[0] = 0;
	return s;
}

int
t4r_dataset_subset(const t4r_dataset *ds, const uint8_t *keep, t4r_dataset **out)
{
	t4r_dataset *s;
	int64_t		nu = 0;
	size_t		ni = 0;

	*out = NULL;
	if (!ds || !keep)
		return T4R_EINVAL;
	for (int64_t u = 0; u < ds->n_users; u++)
		if (keep[u])
		{
			nu++;
			ni += (size_t) (ds->seq_off[u + 1] - ds->seq_off[u]);
		}
	s = ds_alloc_like(ds, nu, ni);
	if (!s)
		return T4R_ENOMEM;
	memcpy(s->item_count, ds->item_count, sizeof(int64_t) * (size_t) ds->n_items);
	nu = 0;
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		a = ds->seq_off[u],
					m = ds->seq_off[u + 1] - a,
					o = s->seq_off[nu];
		int64_t		tl = train_len(ds, u);

		if (!keep[u])
			continue;
		memcpy(s->seq_items + o, ds->seq_items + a, sizeof(int32_t) * (size_t) m);
		memcpy(s->seq_ts + o, ds->seq_ts + a, sizeof(double) * (size_t) m);
		s->user_ids[nu] = ds->user_ids[u];
		s->seq_off[nu + 1] = o + m;
		if (tl > 1)
			s->n_train_samples += tl - 1;
		nu++;
	}
	*out = s;
	return T4R_OK;
}

int
t4r_dataset_truncate(const t4r_dataset *ds, const int64_t *drop, t4r_dataset **out)
{
	t4r_dataset *s;
	size_t		ni = 0;

	*out = NULL;
	if (!ds || !drop)
		return T4R_EINVAL;
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		m = ds->seq_off[u + 1] - ds->seq_off[u];

		if (drop[u] < 0 || drop[u] > m - 1)
			return T4R_EINVAL;
		ni += (size_t) (m - drop[u]);
	}
	s = ds_alloc_like(ds, ds->n_users, ni);
	if (!s)
		return T4R_ENOMEM;
	memcpy(s->user_ids, ds->user_ids, sizeof(int64_t) * (size_t) ds->n_users);
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		a = ds->seq_off[u],
					m = ds->seq_off[u + 1] - a - drop[u],
					o = s->seq_off[u];

		memcpy(s->seq_items + o, ds->seq_items + a, sizeof(int32_t) * (size_t) m);
		memcpy(s->seq_ts + o, ds->seq_ts + a, sizeof(double) * (size_t) m);
		s->seq_off[u + 1] = o + m;
	}
	t4r_ds_count(s);			/* over the shortened training parts */
	*out = s;
	return T4R_OK;
}
