# tim4rec - PGXS build of the extension plus the standalone core, its unit
# tests and benchmarks.  See README.md for the two commands that matter.

EXTENSION   = tim4rec
EXTVERSION  = 0.3
MODULE_big  = tim4rec

# The numerical core (src/core, plain C, no PostgreSQL headers) is compiled
# ONCE, position-independent, into build/libt4rcore.a; that archive is linked
# into tim4rec.so and into every unit test and benchmark binary, so the tests
# run the objects that ship.  It is compiled with CORE_CFLAGS plus
# CORE_NUMFLAGS (-fno-strict-aliasing -fwrapv, the flags PGXS compiled the
# core with up to 0.3): without them GCC vectorises other loops, which
# changes the last bits of training (a 3-epoch training stored different
# weights), so the published figures would not reproduce.  Hot loops that
# store through struct fields read through local restrict pointers instead.
# An explicit list, one object a line: a new core file adds its line here
# (the check below names a file that is missing).
CORE_OBJS   = \
	build/core/config.o \
	build/core/config_json.o \
	build/core/dataset.o \
	build/core/dataset_subset.o \
	build/core/err.o \
	build/core/evaluate.o \
	build/core/fit.o \
	build/core/infer.o \
	build/core/model.o \
	build/core/rgemm.o \
	build/core/safetensors.o \
	build/core/ssd.o \
	build/core/tieorder.o \
	build/core/timepath.o \
	build/core/timepath_robust.o \
	build/core/train.o \
	build/core/warm.o \
	build/core/ws_debug.o
CORE_LIB    = build/libt4rcore.a
CORE_UNLISTED = $(filter-out $(CORE_OBJS),$(patsubst src/core/%.c,build/core/%.o,$(wildcard src/core/*.c)))
ifneq ($(CORE_UNLISTED),)
$(error core sources missing from CORE_OBJS in the Makefile: $(CORE_UNLISTED:build/core/%.o=src/core/%.c))
endif
GLUE_SRCS   = $(wildcard src/*.c)
OBJS        = $(GLUE_SRCS:.c=.o)

# The install script is generated from sql/install/*.sql (concatenated in
# name order); it is a build output, never committed.
INSTALL_SQL = $(sort $(wildcard sql/install/*.sql))
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
# upgrade scripts (committed): sql/upgrade/tim4rec--OLD--NEW.sql
DATA        = $(wildcard sql/upgrade/$(EXTENSION)--*--*.sql)
# PostgreSQL 15 is the target: prefer its pg_config over whatever is on PATH.
PG_CONFIG  ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

# Optimisation flags for the numerical core (portable by default).
T4R_OPT    ?= -O3
PG_CPPFLAGS = -Isrc -Isrc/core -fopenmp
PG_CFLAGS   = $(T4R_OPT) -std=gnu11 -fopenmp
SHLIB_LINK  = $(CORE_LIB) -lopenblas -ljansson -fopenmp -lm

# T4R_STRICT=1 (the strict build stage of test/run_tests.sh): every warning of
# our code is an error, the glue is compiled with PostgreSQL's assert checking
# (Assert() then calls ExceptionalCondition, which every server exports) and
# -Wno-unused-parameter -Wno-sign-compare only for PostgreSQL's own headers.
# A compile check: such a .so is not meant to be installed on a server built
# without assertions (MEMORY_CONTEXT_CHECKING changes structures).
ifeq ($(T4R_STRICT),1)
PG_CPPFLAGS += -DUSE_ASSERT_CHECKING
PG_CFLAGS   += -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Werror
CORE_WERROR  = -Werror
endif

# headers of the CUDA path (also the emulator's, src/cuda/cuda.mk)
CUDA_HDRS   = $(wildcard src/cuda/*.h src/cuda/*.cuh src/cuda/ops/*.cuh)

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
src/cuda/%.o: src/cuda/%.cu $(CUDA_HDRS)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@
endif

# pg_regress tests: sql/<name>.sql with expected/<name>.out
REGRESS     = $(filter-out $(EXTENSION)--%,$(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

EXTRA_CLEAN = build sql/$(EXTENSION)--$(EXTVERSION).sql test/results

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
# Bootstrap mode (fresh machine, no postgresql-server-dev-15 yet): only
# `make demo` and `make test` work; they install the build dependencies.
all:
	@echo "PostgreSQL 15 development files not found ($(PG_CONFIG) --pgxs)."
	@echo "Run 'make demo' or 'make test' (they apt-get install what is missing),"
	@echo "or: apt-get install postgresql-server-dev-15 libopenblas-dev libjansson-dev"
	@exit 1
endif

# PGXS does not track headers: the glue objects depend on them
$(GLUE_SRCS:.c=.o): $(wildcard src/*.h) $(wildcard src/core/*.h)
# the library links the core archive
$(MODULE_big)$(DLSUFFIX): $(CORE_LIB)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_SQL) Makefile sql/install
	@mkdir -p $(dir $@)
	{ printf '%s\n' '-- GENERATED by the Makefile from sql/install/*.sql: edit those files, not this one.'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(INSTALL_SQL); do printf '\n-- ---- %s ----\n' "$$f"; cat "$$f"; done; } > $@

# ---------------------------------------------------------------------------
# The core library, unit tests (TAP) and benchmarks.
# test/core/test_*.c and every benchmark link build/libt4rcore.a, the same
# objects as tim4rec.so.  test/core/dtest_*.c link a second build of the core
# with t4r_real = double (-DT4R_DOUBLE, build/double/): the finite-difference
# gradient checks need double precision, so that build is separate by nature
# and never ships.  (The libFuzzer harness, test/fuzz/fuzz.mk, also compiles
# its few core files itself: it needs the sanitizer instrumentation.)
# ---------------------------------------------------------------------------
CORE_CC      ?= gcc
CORE_CFLAGS  ?= -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fopenmp -Isrc/core
CORE_LIBS     = -lopenblas -ljansson -fopenmp -lm
# the arithmetic of 0.3's extension build (see CORE_OBJS above)
CORE_NUMFLAGS = -fno-strict-aliasing -fwrapv
# the core's own objects also get PostgreSQL's warning set (PGXS compiled
# them with it before they had a library); warnings never change the code
CORE_WARN     = -Wmissing-prototypes -Wpointer-arith -Wdeclaration-after-statement \
                -Werror=vla -Wendif-labels -Wmissing-format-attribute \
                -Wimplicit-fallthrough=3 -Wcast-function-type -Wformat-security $(CORE_WERROR)

DOUBLE_OBJS = $(patsubst build/core/%.o,build/double/%.o,$(CORE_OBJS))
UNIT_SRCS   = $(wildcard test/core/test_*.c)
DUNIT_SRCS  = $(wildcard test/core/dtest_*.c)
UNIT_BINS   = $(patsubst test/core/%.c,build/%,$(UNIT_SRCS) $(DUNIT_SRCS))

build/core/%.o: src/core/%.c $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) $(CORE_WARN) $(T4R_OPT) $(CORE_NUMFLAGS) -fPIC -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $(CORE_OBJS)

build/double/%.o: src/core/%.c $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) $(CORE_WARN) -DT4R_DOUBLE -fPIC -c $< -o $@

build/test_%: test/core/test_%.c $(CORE_LIB) $(wildcard test/core/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -Itest/core $< $(CORE_LIB) -o $@ $(CORE_LIBS)

build/dtest_%: test/core/dtest_%.c $(DOUBLE_OBJS) $(wildcard test/core/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -DT4R_DOUBLE -Itest/core $< $(DOUBLE_OBJS) -o $@ $(CORE_LIBS)

.PHONY: core-tests unit
core-tests: $(UNIT_BINS)

# run every core unit test binary (each prints TAP)
unit: core-tests
	@for t in $(UNIT_BINS); do echo "# $$t"; ./$$t || exit 1; done

# print a make variable (used by test/run_tests.sh): make -s print-UNIT_BINS
print-%:
	@echo $($*)

# ---------------------------------------------------------------------------
# The two commands of the README.  Both install missing Debian packages
# (apt-get, through sudo when not root), build, install the extension and run
# a throwaway PostgreSQL cluster that they start and remove themselves.
# ---------------------------------------------------------------------------
.PHONY: demo test
demo:
	@bash test/scripts/demo.sh

test:
	@bash test/run_tests.sh

# Fragments: test/bench/bench.mk (make bench), test/fuzz/fuzz.mk (make fuzz),
# src/cuda/cuda.mk, ...
-include $(wildcard test/*/*.mk src/*/*.mk)
