# test/bench/bench.mk - `make bench`: the standalone core benchmark.
# Linked with build/libt4rcore.a, the core objects of tim4rec.so.
# BENCH_QUICK=1 for a < 1 minute smoke run, BENCH_CSV=path/to/interactions.csv
# (+ BENCH_EPOCHS) to also fit on a CSV user_id,item_id,ts, BENCH_ARGS for any
# other option (see test/bench/bench.c).
BENCH_ARGS ?=

build/bench: test/bench/bench.c test/quality/qcsv.h $(CORE_LIB) $(wildcard test/bench/*.h) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) -Itest/bench $< $(CORE_LIB) -o $@ $(CORE_LIBS)

.PHONY: bench bench-quick
bench: build/bench
	./build/bench $(BENCH_ARGS)

bench-quick: build/bench
	BENCH_QUICK=1 ./build/bench $(BENCH_ARGS)

# single-sequence inference latency (t4r_infer at several lengths, CPU-time
# medians) - `make infer-profile`, or build/infer_profile --help
build/infer_profile: test/bench/infer_profile.c $(CORE_LIB) test/core/tap.h $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) -Itest/core $< $(CORE_LIB) -o $@ $(CORE_LIBS)

.PHONY: infer-profile
infer-profile: build/infer_profile
	./build/infer_profile

# training throughput for profiling (t4r_trainer_step on one batch of
# full-length samples; samples/s and useful GFLOP/s as `make bench`) -
# `make train-profile`, TRAIN_PROFILE_ARGS for options, or
# build/train_profile --help.  Linked with --wrap=cblas_sgemm for its
# --gemm-stats call-site counters (the wrapper only forwards otherwise).
TRAIN_PROFILE_ARGS ?=

build/train_profile: test/bench/train_profile.c $(CORE_LIB) $(wildcard test/bench/*.h) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) -Itest/bench $< $(CORE_LIB) -o $@ -Wl,--wrap=cblas_sgemm $(CORE_LIBS) -ldl

.PHONY: train-profile
train-profile: build/train_profile
	./build/train_profile $(TRAIN_PROFILE_ARGS)

# a model with the movielens preset's sizes and docs/MODEL.md's
# initialisation as safetensors on stdout (argument: item rows, padding
# included), for the PostgreSQL benchmarks and test/pgtap/shared_models.sh
build/pg_latency_model: test/bench/pg_latency_model.c $(CORE_LIB) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $< $(CORE_LIB) -o $@ $(CORE_LIBS)

# PostgreSQL benchmarks of the installed extension (not part of
# `make test`; each starts and removes its own throwaway cluster, set
# T4R_PG_BINDIR for another PostgreSQL 15 than /usr/lib/postgresql/15/bin):
#   make bench-pg-load     pgbench: recommend(user) at 1/4/16/64 clients, during a
#                          training, on a hot standby (T4R_LOAD_* in test/bench/pg_load.sh)
#   make bench-pg-memory   private memory per backend serving a 200,000-item model
#                          (T4R_MEM_*, T4R_PRELOAD=1 in test/bench/pg_memory.sh)
# Both append their table to test/bench/RESULTS.md unless T4R_BENCH_NO_APPEND=1.
.PHONY: bench-pg-load bench-pg-memory
bench-pg-load:
	bash test/bench/pg_load.sh

bench-pg-memory:
	bash test/bench/pg_memory.sh

# epoch time and targets/s of training all_positions vs prefixes
# (robust time path) vs the official model, through SQL on the ML-1M-sized
# synthetic table (T4R_AP_* and THREADS in test/bench/pg_all_positions.sh);
# appends its table to test/bench/RESULTS.md unless T4R_BENCH_NO_APPEND=1.
.PHONY: bench-all-positions
bench-all-positions:
	bash test/bench/pg_all_positions.sh

# test metrics after early stopping of all_positions vs prefixes
# (robust) vs official through SQL (T4R_APQ_* in
# test/bench/pg_all_positions_quality.sh); appends to test/bench/QUALITY.md
# unless T4R_BENCH_NO_APPEND=1.
.PHONY: bench-all-positions-quality
bench-all-positions-quality:
	bash test/bench/pg_all_positions_quality.sh

# tim4rec_recommend_all for all 6,040 users of the ML-1M-like set against the
# LATERAL tim4rec_recommend form, interleaved, medians of T4R_BENCH_ROUNDS
# (default 3); appends to test/bench/RESULTS.md unless T4R_BENCH_NO_APPEND=1.
.PHONY: bench-recommend-all
bench-recommend-all:
	bash test/bench/pg_recommend_all.sh

# the core part of tim4rec_recommend_all (6,040 ML-1M-like sequences):
# per-sequence t4r_infer vs t4r_rec_batch_run exact / packed, wall and CPU
# seconds - `make rec-batch-profile` (REC_PROFILE_THREADS, default 2)
REC_PROFILE_THREADS ?= 2
build/rec_batch_profile: test/bench/rec_batch_profile.c $(CORE_LIB) test/core/tap.h $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) -Itest/core $< $(CORE_LIB) -o $@ $(CORE_LIBS)

.PHONY: rec-batch-profile
rec-batch-profile: build/rec_batch_profile
	./build/rec_batch_profile $(REC_PROFILE_THREADS)

# one recommendation's scoring + top k: full score vector vs blocked
# (t4r_infer_topk), alternating call by call - `make topk-profile`
build/topk_profile: test/bench/topk_profile.c $(CORE_LIB) $(wildcard src/core/*.h)
	$(CORE_CC) $(CORE_CFLAGS) $< $(CORE_LIB) -o $@ $(CORE_LIBS)

.PHONY: topk-profile
topk-profile: build/topk_profile
	OPENBLAS_NUM_THREADS=1 ./build/topk_profile
