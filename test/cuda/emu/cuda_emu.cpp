/* cuda_emu.cpp - fiber scheduler of the CPU CUDA emulator (cuda_emu.h) */
#include <ucontext.h>
#include <stdio.h>
#include <vector>
#include "cuda_emu.h"

EmuThread  *emu_cur;
dim3		emu_blk, emu_bdim, emu_gdim;
char	   *emu_dyn_shared;

enum { F_RUN, F_WBLOCK, F_WWARP, F_DONE };
struct Fiber
{
	EmuThread	th;
	ucontext_t	ctx;
	int			state;
};
static std::vector<Fiber> fibers;
static std::vector<char *> stacks;
static std::vector<double> xch;
static ucontext_t sched_ctx;
static const std::function<void()> *body_g;
static Fiber *curf;
static const size_t STK = 96 * 1024;
static std::vector<char> dynbuf;

static void
fiber_main(void)
{
	(*body_g) ();
	curf->state = F_DONE;
	swapcontext(&curf->ctx, &sched_ctx);
}

void
emu_barrier_block(void)
{
	curf->state = F_WBLOCK;
	swapcontext(&curf->ctx, &sched_ctx);
}

void
emu_barrier_warp(void)
{
	curf->state = F_WWARP;
	swapcontext(&curf->ctx, &sched_ctx);
}

double
emu_exchange(double v, int src)
{
	int			me = (int) (curf - &fibers[0]);
	int			w0 = me & ~31;
	double		r;

	xch[me] = v;
	emu_barrier_warp();
	r = xch[w0 + src];
	emu_barrier_warp();
	return r;
}

static void
run_block(void)
{
	int			nt = (int) (emu_bdim.x * emu_bdim.y * emu_bdim.z);

	if ((int) fibers.size() < nt)
		fibers.resize(nt);
	while ((int) stacks.size() < nt)
		stacks.push_back((char *) malloc(STK));
	if ((int) xch.size() < nt + 32)
		xch.resize(nt + 32);
	for (int i = 0; i < nt; i++)
	{
		Fiber	   *f = &fibers[i];

		f->th.t = dim3(i % emu_bdim.x, (i / emu_bdim.x) % emu_bdim.y, i / (emu_bdim.x * emu_bdim.y));
		getcontext(&f->ctx);
		f->ctx.uc_stack.ss_sp = stacks[i];
		f->ctx.uc_stack.ss_size = STK;
		f->ctx.uc_link = NULL;
		makecontext(&f->ctx, fiber_main, 0);
		f->state = F_RUN;
	}
	for (;;)
	{
		int			alive = 0,
					released = 0;

		for (int i = 0; i < nt; i++)
			if (fibers[i].state == F_RUN)
			{
				curf = &fibers[i];
				emu_cur = &fibers[i].th;
				swapcontext(&sched_ctx, &fibers[i].ctx);
			}
		for (int i = 0; i < nt; i++)
			alive += fibers[i].state != F_DONE;
		if (!alive)
			break;
		for (int w = 0; w < nt; w += 32)
		{
			int			aw = 0,
						ww = 0;

			for (int i = w; i < w + 32 && i < nt; i++)
			{
				aw += fibers[i].state != F_DONE;
				ww += fibers[i].state == F_WWARP;
			}
			if (aw > 0 && aw == ww)
			{
				for (int i = w; i < w + 32 && i < nt; i++)
					if (fibers[i].state == F_WWARP)
						fibers[i].state = F_RUN;
				released = 1;
			}
		}
		if (!released)
		{
			int			wb = 0;

			for (int i = 0; i < nt; i++)
				wb += fibers[i].state == F_WBLOCK;
			if (wb == alive)
			{
				for (int i = 0; i < nt; i++)
					if (fibers[i].state == F_WBLOCK)
						fibers[i].state = F_RUN;
				released = 1;
			}
		}
		if (!released)
		{
			fprintf(stderr, "cuda_emu: barrier deadlock (divergent barrier) in block %u,%u\n",
					emu_blk.x, emu_blk.y);
			abort();
		}
	}
}

void
emu_launch(dim3 g, dim3 b, size_t shm, const std::function<void()> &body, int sync)
{
	static EmuThread direct;

	emu_gdim = g;
	emu_bdim = b;
	body_g = &body;
	if (dynbuf.size() < shm + 16)
		dynbuf.resize(shm + 16);
	emu_dyn_shared = dynbuf.data();
	for (unsigned z = 0; z < g.z; z++)
		for (unsigned y = 0; y < g.y; y++)
			for (unsigned x = 0; x < g.x; x++)
			{
				emu_blk = dim3(x, y, z);
				memset(emu_dyn_shared, 0x7f, shm);	/* garbage, as on a GPU */
				if (sync)
					run_block();
				else
				{
					int			nt = (int) (b.x * b.y * b.z);

					emu_cur = &direct;
					for (int i = 0; i < nt; i++)
					{
						direct.t = dim3(i % b.x, (i / b.x) % b.y, i / (b.x * b.y));
						body();
					}
				}
			}
}
