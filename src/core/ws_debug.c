/*
 * ws_debug.c - the workspace's debug interface for the per-op parity test
 * of the CUDA path (test/cuda/parity.c, "ops:" lines): a named activation
 * or gradient buffer of the current micro-batch copied out as float.  The
 * GPU side, t4r_cuda_trainer_debug_tensor (src/cuda/t4r_cuda_debug.h),
 * takes the same names and converts its full-L rows to this layout.
 *
 * Row layout (the workspace's own): item path [M, cols], the rows of the
 * samples' real positions sample after sample; after the SSD in the last
 * layer [S, cols], one row per sample (its last position); time path [R,
 * L], R = S*H.  Names and their rows: see model_internal.h.
 */
#include <string.h>
#include "model_internal.h"

long
t4r_ws_debug_tensor(const t4r_ws *w, int layer, const char *name, float *out, size_t n,
					size_t *rows_out, int *cols_out)
{
	const t4r_dims *D = &w->D;
	const t4r_lact *A;
	size_t		M = w->M,
				R = (size_t) w->S * D->H,
				rows;
	int			lastr,
				Di = D->Di,
				d = D->d;
	struct
	{
		const char *n;
		const t4r_real *p;
		size_t		rows;
		int			ld, c0, nc;
	}			tab[22];
	int			nt = 0;

	if (layer < 0 || layer >= D->layers || !name)
		return -1;
	A = &w->la[layer];
	lastr = layer == D->layers - 1 && !w->allpos;
	rows = lastr ? (size_t) w->S : M;
#define ENT(nm, ptr, r, ld_, c0_, nc_) \
	do { tab[nt].n = (nm); tab[nt].p = (ptr); tab[nt].rows = (r); tab[nt].ld = (ld_); \
		 tab[nt].c0 = (c0_); tab[nt].nc = (nc_); nt++; } while (0)
	ENT("U", A->U, M, d, 0, d);
	ENT("zxd", A->zxd, M, D->in_dim, 0, D->in_dim);
	ENT("xbc", A->xbc, M, D->conv_dim, 0, D->conv_dim);
	ENT("delta", A->delta, M, D->H, 0, D->H);
	ENT("T", A->T, R, D->L, 0, D->L);
	ENT("tdt", A->tdt, R, D->L, 0, D->L);
	ENT("y", A->y, rows, Di, 0, Di);
	ENT("yn", A->yn, rows, Di, 0, Di);
	ENT("hh", A->hh, rows, d, 0, d);
	ENT("F", A->F, rows, d, 0, d);
	ENT("dF", w->dbg_dF, rows, d, 0, d);
	ENT("dhh", w->dhh, rows, d, 0, d);
	ENT("da", w->da, rows, d, 0, d);
	ENT("dyn", w->dyn, rows, Di, 0, Di);
	ENT("dy", w->dy, rows, Di, 0, Di);
	ENT("dxbc", w->dxbc, M, D->conv_dim, 0, D->conv_dim);
	ENT("ddelta", w->ddelta, M, D->H, 0, D->H);
	ENT("dzxd", w->dzxd, M, D->in_dim, 0, D->in_dim);
	ENT("ddt", w->dzxd, M, D->in_dim, 2 * Di + 2 * D->N, D->H);
	ENT("dU", w->dbg_dU, M, d, 0, d);
	ENT("dtdt", w->dtdt, R, D->L, 0, D->L);
	ENT("dT", w->dbg_dT, R, D->L, 0, D->L);
#undef ENT
	for (int i = 0; i < nt; i++)
	{
		if (strcmp(tab[i].n, name) != 0)
			continue;
		if (!tab[i].p || tab[i].rows * tab[i].nc > n)
			return -1;
		for (size_t r = 0; r < tab[i].rows; r++)
			for (int c = 0; c < tab[i].nc; c++)
				out[r * tab[i].nc + c] = (float) tab[i].p[r * tab[i].ld + tab[i].c0 + c];
		if (rows_out)
			*rows_out = tab[i].rows;
		if (cols_out)
			*cols_out = tab[i].nc;
		return (long) (tab[i].rows * tab[i].nc);
	}
	return -1;
}
