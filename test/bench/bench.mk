# test/bench/bench.mk - `make bench`: the standalone core benchmark.
# Built from the float core (build/float/*.o, compiled with T4R_OPT) with the
# same optimisation flags.  BENCH_QUICK=1 for a < 1 minute smoke run,
# BENCH_CSV=path/to/interactions.csv (+ BENCH_EPOCHS) to also fit on a CSV
# user_id,item_id,ts, BENCH_ARGS for any other option (see test/bench/bench.c).
BENCH_ARGS ?=

build/bench: test/bench/bench.c $(FLOAT_OBJS) $(wildcard test/bench/*.h) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) -Itest/bench $< $(FLOAT_OBJS) -o $@ $(CORE_LIBS)

.PHONY: bench bench-quick
bench: build/bench
	./build/bench $(BENCH_ARGS)

bench-quick: build/bench
	BENCH_QUICK=1 ./build/bench $(BENCH_ARGS)

# single-sequence inference latency (t4r_infer at several lengths, CPU-time
# medians) - `make infer-profile`, or build/infer_profile --help
build/infer_profile: test/bench/infer_profile.c $(FLOAT_OBJS) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) $< $(FLOAT_OBJS) -o $@ $(CORE_LIBS)

.PHONY: infer-profile
infer-profile: build/infer_profile
	./build/infer_profile
