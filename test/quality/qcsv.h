/*
 * qcsv.h - the CSV reader of the quality drivers (quality_core.c,
 * time_prior.c): user_id,item_id,ts[,order], header line optional; without
 * a 4th column the order is the line number (file order, like the seq
 * column of test/scripts/load_interactions.sh).
 */
#ifndef T4R_QCSV_H
#define T4R_QCSV_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static int
qcsv_read(const char *path, int64_t **u, int64_t **it, double **ts, int64_t **ord, size_t *n)
{
	FILE	   *f = fopen(path, "r");
	char		line[512];
	size_t		cap = 1 << 16,
				k = 0;
	long		lineno = 0;

	if (!f)
		return -1;
	*u = malloc(cap * sizeof(int64_t));
	*it = malloc(cap * sizeof(int64_t));
	*ts = malloc(cap * sizeof(double));
	*ord = malloc(cap * sizeof(int64_t));
	while (fgets(line, sizeof(line), f))
	{
		long long	a,
					b,
					o;
		double		t;
		int			got;

		lineno++;
		got = sscanf(line, "%lld,%lld,%lf,%lld", &a, &b, &t, &o);
		if (got < 3)
		{
			if (lineno == 1 || line[0] == '\n')
				continue;		/* header or empty line */
			fprintf(stderr, "%s:%ld: cannot parse \"%s\"\n", path, lineno, line);
			fclose(f);
			return -1;
		}
		if (k == cap)
		{
			cap *= 2;
			*u = realloc(*u, cap * sizeof(int64_t));
			*it = realloc(*it, cap * sizeof(int64_t));
			*ts = realloc(*ts, cap * sizeof(double));
			*ord = realloc(*ord, cap * sizeof(int64_t));
			if (!*u || !*it || !*ts || !*ord)
			{
				fclose(f);
				return -1;
			}
		}
		(*u)[k] = a;
		(*it)[k] = b;
		(*ts)[k] = t;
		(*ord)[k] = got == 4 ? o : (int64_t) k;
		k++;
	}
	fclose(f);
	*n = k;
	return 0;
}

#endif
