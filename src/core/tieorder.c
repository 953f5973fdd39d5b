/*
 * tieorder.c - does the order of equal timestamps carry a signal?
 *
 * tie_shuffle "auto" (tim4rec.h) asks this of the training data before it
 * trains.  An order kept by accident (the order rows were loaded in, a
 * random id) is noise for the model: shuffling it helps (Beauty in file
 * order, ml-100k; test/bench/QUALITY.md).  An order kept on purpose -- a
 * sequence number, rows sorted by item id -- places the same two items the
 * same way round every time they share a timestamp, and shuffling it throws
 * that away (ml-latest-small).
 *
 * The test: every two neighbours of a user's training part (positions
 * 0 .. train_len-1) that share a timestamp and differ are one occurrence of
 * the unordered pair {a, b}, "up" when a < b.  A pair seen n >= 2 times with
 * k of them up gives X = 2k - n.  Under a random order each occurrence is up
 * with probability 1/2 independently, so E[X^2] = n and Var[X^2] = 2n^2 - 2n;
 * the statistic z = (sum X^2 - sum n) / sqrt(sum (2n^2 - 2n)) is about
 * N(0, 1), and grows with the number of pairs when the order is fixed.
 * agreement (the share of two occurrences of one pair that agree) is the
 * effect size: 1/2 for a random order, 1 for a fixed one.  The order is
 * called consistent when both are clear: z >= T4R_TIE_ORDER_Z and agreement
 * >= T4R_TIE_ORDER_AGREEMENT, and when it is the caller's order: without
 * order values the dataset orders equal timestamps by item id itself, which
 * is always consistent and never an event order (README "Equal timestamps").
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "tim4rec.h"

static int
cmp_u64(const void *pa, const void *pb)
{
	uint64_t	a = *(const uint64_t *) pa,
				b = *(const uint64_t *) pb;

	return a < b ? -1 : a > b;
}

int
t4r_tie_order_test(const t4r_dataset *ds, t4r_tie_stats *out)
{
	uint64_t   *occ;
	int64_t		n = 0,
				cap = 0;
	double		s = 0,
				e = 0,
				v = 0,
				agree = 0,
				pairs = 0;

	if (ds == NULL || out == NULL)
		return T4R_EINVAL;
	memset(out, 0, sizeof(*out));
	out->by_item_id = !ds->ties_by_order;
	if (ds->seq_ts == NULL)
		return T4R_OK;
	for (int64_t u = 0; u < ds->n_users; u++)
	{
		int64_t		tl = train_len(ds, u),
					o = ds->seq_off[u];

		for (int64_t j = 1; j < tl; j++)
			if (ds->seq_ts[o + j] == ds->seq_ts[o + j - 1] &&
				ds->seq_items[o + j] != ds->seq_items[o + j - 1])
				cap++;
	}
	if (cap > T4R_TIE_ORDER_MAX_PAIRS)
		cap = T4R_TIE_ORDER_MAX_PAIRS;
	if (cap == 0)
		return T4R_OK;
	occ = malloc(sizeof(uint64_t) * (size_t) cap);
	if (occ == NULL)
		return T4R_ENOMEM;
	/* one 64-bit key per occurrence: min item, max item, up bit; sorting
	 * puts the occurrences of a pair side by side */
	for (int64_t u = 0; u < ds->n_users && n < cap; u++)
	{
		int64_t		tl = train_len(ds, u),
					o = ds->seq_off[u];

		for (int64_t j = 1; j < tl && n < cap; j++)
		{
			uint32_t	a = (uint32_t) ds->seq_items[o + j - 1],
						b = (uint32_t) ds->seq_items[o + j];

			if (ds->seq_ts[o + j] != ds->seq_ts[o + j - 1] || a == b)
				continue;
			occ[n++] = ((uint64_t) (a < b ? a : b) << 32) |
				((uint64_t) (a < b ? b : a) << 1) | (uint64_t) (a < b);
		}
	}
	qsort(occ, (size_t) n, sizeof(uint64_t), cmp_u64);
	for (int64_t i = 0; i < n;)
	{
		int64_t		j = i,
					k = 0;
		double		c,
					x;

		while (j < n && (occ[j] >> 1) == (occ[i] >> 1))
			k += (int64_t) (occ[j++] & 1);
		c = (double) (j - i);
		i = j;
		if (c < 2)
			continue;
		out->repeated_pairs++;
		out->repeated_occurrences += (int64_t) c;
		x = 2.0 * (double) k - c;
		s += x * x;
		e += c;
		v += 2 * c * c - 2 * c;
		agree += ((double) k * (double) (k - 1) + (c - (double) k) * (c - (double) k - 1)) / 2;
		pairs += c * (c - 1) / 2;
	}
	free(occ);
	out->tied_pairs = n;
	if (v > 0)
	{
		out->z = (s - e) / sqrt(v);
		out->agreement = agree / pairs;
		out->consistent = !out->by_item_id && out->z >= T4R_TIE_ORDER_Z &&
			out->agreement >= T4R_TIE_ORDER_AGREEMENT;
	}
	return T4R_OK;
}

int
t4r_tie_shuffle_resolve(const t4r_tie_stats *t)
{
	if (t->tied_pairs == 0)
		return 0;				/* nothing to shuffle */
	return t->consistent ? 0 : 1;
}
