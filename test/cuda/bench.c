/*
 * bench.c - GPU training and inference throughput of the CUDA path,
 * movielens preset (L = 200, d = 64, V = 3707 rows, batch 2048), synthetic
 * full-length samples (every sample has n >= L: the most expensive case).
 * Prints a small table (markdown) with samples/s, ms per step, device memory
 * (trainer buffers and cudaMemGetInfo used) and inference sequences/s.
 * Every row names the SSD kernels it ran (t4r_cuda_trainer_ssd_path):
 * the default (chunked) path first, then the recurrent fallback
 * (T4R_CUDA_SSD=recurrent) for comparison, unless argv[2] is "default"
 * (only the path that T4R_CUDA_SSD, or its absence, selects).
 * Without a usable GPU: prints the reason and exits 0.
 * Options: argv[1] = timed steps (default 10), argv[2] = "default" (or
 * "both"), argv[3] = preset "movielens" (default) or "amazon" (L = 50,
 * V = 12102 rows: Beauty's item count; samples still full length, as in
 * test/bench/train_profile --preset amazon, so the two compare).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tim4rec.h"
#include "t4r_cuda.h"
#define TAP_RNG_SEED 0x1234567887654321ULL
#include "tap.h"


static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}


int
main(int argc, char **argv)
{
	char		err[256] = "";
	t4r_config	c;
	t4r_model  *m = NULL;
	t4r_cuda_trainer *t = NULL;
	int			steps = argc > 1 ? atoi(argv[1]) : 10;
	int			only_default = argc > 2 && strcmp(argv[2], "default") == 0,
				chunked = 0;
	const char *preset = argc > 3 ? argv[3] : "movielens";
	int			B,
				L,
				V = strcmp(preset, "amazon") == 0 ? 12102 : 3707,
				n;
	int32_t    *items;
	double	   *ts;
	t4r_sample *s;
	double		t0,
				t1,
				loss = 0,
				first = 0;
	size_t		used0 = 0,
				used1 = 0,
				tot = 0;
	float	   *hid,
			   *sc;
	int			rc;

	if (t4r_cuda_available(err, sizeof(err)) != T4R_OK)
	{
		printf("# SKIP cuda_bench: %s\n", err);
		return 0;
	}
	if (steps < 1)
		steps = 10;
	if (t4r_config_preset(&c, preset) != T4R_OK)
	{
		fprintf(stderr, "unknown preset %s\n", preset);
		return 1;
	}
	c.n_items = V;
	B = c.batch_size;
	L = c.max_seq_len;
	n = L + 20;
	if (t4r_model_create(&c, &m, err, sizeof(err)) != T4R_OK)
	{
		fprintf(stderr, "model: %s\n", err);
		return 1;
	}
	t4r_model_init(m, c.seed);
	items = malloc(sizeof(int32_t) * (size_t) B * n);
	ts = malloc(sizeof(double) * (size_t) B * n);
	s = malloc(sizeof(t4r_sample) * B);
	for (int i = 0; i < B; i++)
	{
		double		tt = 9.6e8 + urand() * 1e7;

		for (int l = 0; l < n; l++)
		{
			items[(size_t) i * n + l] = 1 + (int) (urand() * (V - 1));
			tt += 1 + (int) (urand() * 3600);
			ts[(size_t) i * n + l] = tt;
		}
		s[i].items = items + (size_t) i * n;
		s[i].ts = ts + (size_t) i * n;
		s[i].n = n;
		s[i].target = 1 + (int) (urand() * (V - 1));
	}
	hid = malloc(sizeof(float) * (size_t) B * c.hidden_size);
	sc = malloc(sizeof(float) * (size_t) B * V);
	printf("| figure | SSD kernels | value |\n|---|---|---:|\n");
	for (int pass = 0; pass < 2; pass++)
	{
		const char *path;

		if (pass == 1)
		{
			/* the fallback for comparison, unless it was the default */
			if (only_default || !chunked)
				break;
			setenv("T4R_CUDA_SSD", "recurrent", 1);
		}
		t4r_cuda_mem_info(&used0, &tot);
		rc = t4r_cuda_trainer_create(m, B, 1, &t, err, sizeof(err));
		if (rc != T4R_OK)
		{
			fprintf(stderr, "trainer: %s\n", err);
			return 1;
		}
		path = t4r_cuda_trainer_ssd_path(t);
		if (pass == 0)
			chunked = strncmp(path, "chunked", 7) == 0;
		fprintf(stderr, "cuda_bench: SSD %s\n", path);
		/* warm-up */
		rc = t4r_cuda_trainer_step(t, s, B, &first);
		if (rc != T4R_OK)
		{
			fprintf(stderr, "step: %d %s\n", rc, t4r_cuda_trainer_error(t));
			return 1;
		}
		t0 = now();
		for (int i = 0; i < steps; i++)
			if ((rc = t4r_cuda_trainer_step(t, s, B, &loss)) != T4R_OK)
			{
				fprintf(stderr, "step: %d %s\n", rc, t4r_cuda_trainer_error(t));
				return 1;
			}
		t1 = now();
		t4r_cuda_mem_info(&used1, &tot);
		printf("| train %s L=%d d=%d V=%d batch %d full length (samples/s) | %s | %.0f |\n",
			   preset, L, c.hidden_size, V, B, path, (double) B * steps / (t1 - t0));
		printf("| ms per optimiser step (%d timed steps after 1 warm-up) | %s | %.1f |\n", steps,
			   path, 1000 * (t1 - t0) / steps);
		printf("| loss first / last step | %s | %.4f / %.4f |\n", path, first, loss);
		printf("| trainer device buffers (MiB) | %s | %.0f |\n", path,
			   t4r_cuda_trainer_device_bytes(t) / 1048576.0);
		printf("| GPU memory used by the process incl. CUDA context (cudaMemGetInfo, MiB) | %s | %.0f (before trainer %.0f, card %.0f) |\n",
			   path, used1 / 1048576.0, used0 / 1048576.0, tot / 1048576.0);
		t4r_cuda_trainer_free(t);
		t = NULL;

		/* batched inference: hidden + all V scores */
		rc = t4r_cuda_trainer_create(m, B, 0, &t, err, sizeof(err));
		if (rc == T4R_OK)
			rc = t4r_cuda_trainer_infer(t, s, B, hid, sc);	/* warm-up */
		if (rc == T4R_OK)
		{
			t0 = now();
			for (int i = 0; i < 3 && rc == T4R_OK; i++)
				rc = t4r_cuda_trainer_infer(t, s, B, hid, sc);
			t1 = now();
			if (rc == T4R_OK)
				printf("| batched inference, %d sequences of L=%d, hidden + %d scores copied to host (sequences/s) | %s | %.0f |\n",
					   B, L, V, t4r_cuda_trainer_ssd_path(t), 3.0 * B / (t1 - t0));
		}
		if (rc != T4R_OK)
			fprintf(stderr, "inference: %d %s\n", rc, t ? t4r_cuda_trainer_error(t) : err);
		t4r_cuda_trainer_free(t);
		t = NULL;
		fflush(stdout);		/* rows survive a timeout in the next pass */
		if (rc != T4R_OK)
			break;
	}
	unsetenv("T4R_CUDA_SSD");
	t4r_model_free(m);
	free(hid);
	free(sc);
	free(items);
	free(ts);
	free(s);
	return rc == T4R_OK ? 0 : 1;
}
