/*
 * pg_latency_model.c - writes a movielens-preset model (d = 64, L = 200,
 * n_items rows incl. padding, docs/MODEL.md initialisation from a seed) as
 * safetensors to stdout, for test/bench/pg_latency.sh.  Latency does not
 * depend on the weights' values, only on the sizes, so an untrained model
 * measures the serving path exactly.
 * Usage: pg_latency_model [n_items_rows] > model.safetensors
 */
#include <stdio.h>
#include <stdlib.h>
#include "tim4rec.h"

int
main(int argc, char **argv)
{
	t4r_config	c;
	t4r_model  *m = NULL;
	uint8_t    *buf = NULL;
	size_t		len = 0;
	char		err[256];

	t4r_config_preset(&c, "movielens");
	c.n_items = argc > 1 ? atoi(argv[1]) : 3707;
	if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
	{
		fprintf(stderr, "model: %s\n", err);
		return 1;
	}
	t4r_model_init(m, 42);
	if (t4r_safetensors_write(m, &buf, &len) != T4R_OK ||
		fwrite(buf, 1, len, stdout) != len)
	{
		fprintf(stderr, "write failed\n");
		return 1;
	}
	free(buf);
	t4r_model_free(m);
	return 0;
}
