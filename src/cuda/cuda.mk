# src/cuda/cuda.mk - extra rules of the optional CUDA path (USE_CUDA=1 only).
#
# Sources: src/cuda/model.cu (the trainer and the passes as call lists) is
# the one translation unit; it includes trainer.cuh and one header per op
# in src/cuda/ops/ (forward and backward kernels + launchers named after
# src/core/model.c's ops).  Every object and the emulator's rewritten copy
# depend on all of them (CUDA_HDRS, defined in the Makefile).
#
#   make USE_CUDA=1              the extension with src/cuda/*.cu (main Makefile)
#   make USE_CUDA=1 cuda-tests   build/cuda_parity and build/cuda_bench
#
# The test binaries link the core library (build/libt4rcore.a), the CUDA objects
# compiled into build/cuda/, the CUDA runtime STATICALLY (libcudart_static)
# and cuBLAS dynamically (this toolkit ships no libcublas_static; the rpath
# points at $(CUDA_HOME)/lib64, where the GPU machines' CUDA 13 toolkit has
# libcublas.so.13).  Without a GPU both binaries print a SKIP line, exit 0.
ifeq ($(USE_CUDA),1)
CUDA_TEST_OBJS = $(patsubst src/cuda/%.cu,build/cuda/%.o,$(CUDA_SRCS))
CUDA_TEST_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 \
                 -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++

build/cuda/%.o: src/cuda/%.cu $(CUDA_HDRS) $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

build/cuda_%: test/cuda/%.c $(CUDA_TEST_OBJS) $(CORE_LIB) $(wildcard src/cuda/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -Isrc/cuda -Itest/core $< $(CUDA_TEST_OBJS) $(CORE_LIB) \
	  -o $@ $(CUDA_TEST_LIBS) $(CORE_LIBS)

# PGXS builds LLVM bitcode of every object for JIT inlining when the server
# has LLVM; there is none of CUDA code: an empty module stands in for it.
src/cuda/%.bc: src/cuda/%.cu
	$(CLANG) -x c -c -emit-llvm -flto=thin -o $@ /dev/null

.PHONY: cuda-tests cuda-parity cuda-bench
cuda-tests: build/cuda_parity build/cuda_bench

cuda-parity: build/cuda_parity
	./build/cuda_parity

cuda-bench: build/cuda_bench
	./build/cuda_bench
else
.PHONY: cuda-tests
cuda-tests:
	@echo "cuda-tests needs make USE_CUDA=1" >&2; exit 1
endif

# ---------------------------------------------------------------------------
# CPU emulation of the CUDA path (no toolkit, no GPU needed): model.cu, with
# the .cuh headers it includes inlined, is rewritten by
# test/cuda/emu/transform.py (kernel launches -> a fiber
# scheduler, cuBLAS -> CBLAS) and linked with the same parity test.  Checks
# the kernels' logic (indexing, barriers, maths) against the CPU core; it
# says nothing about speed or about GPU-only failure modes.
#   make cuda-emu-parity     every configuration, the 20-step run and the fit
#                            (~40 CPU-minutes on a loaded 2-core machine)
#                            (T4R_PARITY_QUICK=k: first k configurations)
#   make cuda-emu-parity-ci  the representative subset `make test` runs
#                            (T4R_PARITY_SUBSET=1, a few minutes)
# ---------------------------------------------------------------------------
build/emu/model_emu.cpp: src/cuda/model.cu $(CUDA_HDRS) test/cuda/emu/transform.py
	@mkdir -p build/emu
	python3 test/cuda/emu/transform.py $< $@

build/emu/%.o: build/emu/%.cpp test/cuda/emu/cuda_emu.h src/cuda/t4r_cuda.h $(wildcard src/core/*.h)
	g++ -std=c++17 -O2 -g -Isrc/core -Isrc/cuda -Itest/cuda/emu -c $< -o $@

build/emu/cuda_emu.o: test/cuda/emu/cuda_emu.cpp test/cuda/emu/cuda_emu.h
	@mkdir -p build/emu
	g++ -std=c++17 -O2 -g -Itest/cuda/emu -c $< -o $@

build/cuda_parity_emu: test/cuda/parity.c build/emu/model_emu.o build/emu/cuda_emu.o $(CORE_LIB) $(wildcard src/cuda/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -DT4R_CUDA_EMU -Isrc/cuda -Itest/core $< build/emu/model_emu.o build/emu/cuda_emu.o \
	  $(CORE_LIB) -o $@ $(CORE_LIBS) -lstdc++

.PHONY: cuda-emu-parity cuda-emu-parity-ci
cuda-emu-parity: build/cuda_parity_emu
	./build/cuda_parity_emu
cuda-emu-parity-ci: build/cuda_parity_emu
	T4R_PARITY_SUBSET=1 ./build/cuda_parity_emu
