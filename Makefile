# tim4rec - PGXS build of the extension plus the standalone core, its unit
# tests and benchmarks.  See README.md for the two commands that matter.

EXTENSION   = tim4rec
EXTVERSION  = 0.1
MODULE_big  = tim4rec

CORE_SRCS   = $(wildcard src/core/*.c)
GLUE_SRCS   = $(wildcard src/*.c)
OBJS        = $(GLUE_SRCS:.c=.o) $(CORE_SRCS:.c=.o)

DATA        = sql/$(EXTENSION)--$(EXTVERSION).sql
PG_CONFIG  ?= pg_config

# Optimisation flags for the numerical core (portable by default).
T4R_OPT    ?= -O3
PG_CPPFLAGS = -Isrc -Isrc/core -fopenmp
PG_CFLAGS   = $(T4R_OPT) -std=gnu11 -fopenmp
SHLIB_LINK  = -lopenblas -ljansson -fopenmp -lm

ifeq ($(USE_CUDA),1)
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(CUDA_HOME)/bin/nvcc
CUDA_SRCS   = $(wildcard src/cuda/*.cu)
OBJS       += $(CUDA_SRCS:.cu=.o)
PG_CPPFLAGS += -DT4R_USE_CUDA -I$(CUDA_HOME)/include
SHLIB_LINK += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas
NVCC_FLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC -Isrc/core \
              -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
src/cuda/%.o: src/cuda/%.cu
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@
endif

# pg_regress tests: sql/<name>.sql with expected/<name>.out
REGRESS     = $(filter-out $(EXTENSION)--%,$(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

EXTRA_CLEAN = build

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# ---------------------------------------------------------------------------
# Standalone core: float and double builds, unit tests (TAP), benchmarks.
# test/core/test_*.c link the float core; test/core/dtest_*.c the double core.
# ---------------------------------------------------------------------------
CORE_CC      ?= gcc
CORE_CFLAGS  ?= -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fopenmp -Isrc/core
CORE_LIBS     = -lopenblas -ljansson -fopenmp -lm

FLOAT_OBJS  = $(patsubst src/core/%.c,build/float/%.o,$(CORE_SRCS))
DOUBLE_OBJS = $(patsubst src/core/%.c,build/double/%.o,$(CORE_SRCS))
UNIT_SRCS   = $(wildcard test/core/test_*.c)
DUNIT_SRCS  = $(wildcard test/core/dtest_*.c)
UNIT_BINS   = $(patsubst test/core/%.c,build/%,$(UNIT_SRCS) $(DUNIT_SRCS))

build/float/%.o: src/core/%.c $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) -fPIC -c $< -o $@

build/double/%.o: src/core/%.c $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) -DT4R_DOUBLE -fPIC -c $< -o $@

build/test_%: test/core/test_%.c $(FLOAT_OBJS) $(wildcard test/core/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -Itest/core $< $(FLOAT_OBJS) -o $@ $(CORE_LIBS)

build/dtest_%: test/core/dtest_%.c $(DOUBLE_OBJS) $(wildcard test/core/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -DT4R_DOUBLE -Itest/core $< $(DOUBLE_OBJS) -o $@ $(CORE_LIBS)

.PHONY: core-tests unit
core-tests: $(UNIT_BINS)

# run every core unit test binary (each prints TAP)
unit: core-tests
	@for t in $(UNIT_BINS); do echo "# $$t"; ./$$t || exit 1; done
