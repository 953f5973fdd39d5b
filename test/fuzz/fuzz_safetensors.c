/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors reader.
 *
 * Each input is handed to t4r_safetensors_read (configuration from the
 * file) and to t4r_safetensors_read_into (layout of a tiny fixed
 * configuration).  A file that reads is written back and read again; the
 * second read must give the same configuration and parameters.
 *
 * Built by `make fuzz` (test/fuzz/fuzz.mk) with clang -fsanitize=fuzzer,
 * address,undefined.  Compiled with -DFUZZ_SEED_MAIN instead, this file is
 * a small program that writes a seed corpus of valid files into a folder.
 */
#include "tim4rec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
tiny_config(t4r_config *c, int variant)
{
	t4r_config_preset(c, variant == 2 ? "amazon" : "movielens");
	c->hidden_size = 8;
	c->expand = 2;
	c->head_dim = 4;
	c->d_state = 4;
	c->d_conv = 2;
	c->chunk_size = 4;
	c->max_seq_len = 4;
	c->num_layers = variant == 1 ? 1 : 2;
	c->is_time = variant == 1 ? 0 : 1;
	c->n_items = 5;
	if (variant == 3)
	{
		/* the smallest model: short files, fast fuzzing */
		c->hidden_size = 2;
		c->expand = 1;
		c->head_dim = 1;
		c->d_state = 1;
		c->d_conv = 1;
		c->max_seq_len = 2;
		c->n_items = 2;
	}
}

#ifndef FUZZ_SEED_MAIN

static t4r_layout fixed_layout;
static t4r_real *fixed_dst;

static void
check(int cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_safetensors: invariant violated: %s\n", what);
		abort();
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		err[512];
	t4r_model  *m = NULL;
	int			rc;

	if (fixed_dst == NULL)
	{
		t4r_config	c;

		tiny_config(&c, 0);
		if (t4r_layout_build(&c, &fixed_layout) != T4R_OK)
			abort();
		fixed_dst = malloc(fixed_layout.total * sizeof(t4r_real));
	}

	err[0] = '\0';
	rc = t4r_safetensors_read(data, size, NULL, &m, err, sizeof(err));
	check(rc == T4R_OK || rc == T4R_EFORMAT || rc == T4R_EMISMATCH, "read: unexpected return code");
	check(rc == T4R_OK || err[0] != '\0', "read: failure without a message");
	check((rc == T4R_OK) == (m != NULL), "read: model iff OK");
	if (m != NULL)
	{
		uint8_t    *buf = NULL;
		size_t		len = 0;
		t4r_model  *m2 = NULL;

		check(t4r_safetensors_write(m, &buf, &len) == T4R_OK, "write of a model that was read");
		rc = t4r_safetensors_read(buf, len, NULL, &m2, err, sizeof(err));
		check(rc == T4R_OK, "re-read of a written model");
		check(m2->layout.total == m->layout.total && m2->cfg.n_items == m->cfg.n_items,
			  "re-read: same size");
		for (int t = 0; t < m->layout.n; t++)
			check(memcmp(m->params + m->layout.t[t].offset, m2->params + m2->layout.t[t].offset,
						 m->layout.t[t].numel * sizeof(t4r_real)) == 0, "re-read: same parameters");
		t4r_model_free(m2);
		free(buf);
		t4r_model_free(m);
	}

	err[0] = '\0';
	rc = t4r_safetensors_read_into(data, size, &fixed_layout, fixed_dst, err, sizeof(err));
	check(rc == T4R_OK || rc == T4R_EFORMAT || rc == T4R_EMISMATCH, "read_into: unexpected return code");
	check(rc == T4R_OK || err[0] != '\0', "read_into: failure without a message");
	return 0;
}

#else							/* FUZZ_SEED_MAIN: write a seed corpus */

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";

	for (int v = 0; v < 4; v++)
	{
		t4r_config	c;
		t4r_model  *m = NULL;
		uint8_t    *buf = NULL;
		size_t		len = 0;
		char		err[256],
					path[1024];
		FILE	   *f;

		tiny_config(&c, v);
		if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
		{
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		for (size_t i = 0; i < m->layout.total; i++)
			m->params[i] = (t4r_real) ((double) (i % 97) / 7.0 - 5.0);
		if (t4r_safetensors_write(m, &buf, &len) != T4R_OK)
			return 1;
		snprintf(path, sizeof(path), "%s/seed%d.safetensors", dir, v);
		f = fopen(path, "wb");
		if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		{
			perror(path);
			return 1;
		}
		printf("%s: %zu bytes\n", path, len);
		free(buf);
		t4r_model_free(m);
	}
	return 0;
}
#endif
