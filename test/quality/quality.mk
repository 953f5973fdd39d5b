# test/quality/quality.mk - `make quality`: the paper's protocol end to end on
# the real data sets in ../shared/data (see test/quality/run_quality.sh and
# test/bench/QUALITY.md).  Not part of `make test`.
# Variables (environment or make): QUALITY_EPOCHS, QUALITY_PATIENCE,
# QUALITY_DATASETS, QUALITY_SEEDS, THREADS, QUALITY_PATH (auto|sql|core),
# QUALITY_SUITE=ablation (the time ablation, test/quality/ablation.sh).
# build/quality_core is the C driver on the core library (fallback / cross-check).

build/quality_core: test/quality/quality_core.c test/quality/qcsv.h $(CORE_LIB) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) $< $(CORE_LIB) -o $@ $(CORE_LIBS)

.PHONY: quality quality-synth quality-ablation
quality: build/quality_core
	@bash test/quality/run_quality.sh

# does the time path help? robust / official / is_time=false, paired
# bootstrap over users, validation curves (issue 12 part 3; knobs ABL_* in
# test/quality/ablation.sh; the same as QUALITY_SUITE=ablation make quality)
quality-ablation:
	@bash test/quality/ablation.sh

# the time path against no time on more test events per user: each user's
# last K events held out and predicted one by one (test/quality/lastk.sh;
# knobs LK_*; results in test/results/lastk)
.PHONY: quality-lastk
quality-lastk:
	@bash test/quality/lastk.sh

# tie_shuffle against the published training on Beauty in file order
# (test/quality/ties.sh; knobs TIES_*; results in test/results/ties)
.PHONY: quality-ties
quality-ties:
	@bash test/quality/ties.sh

# one epoch of the ML-1M-sized synthetic set (movielens preset, L = 200)
quality-synth: build/quality_core
	@bash test/quality/run_synth.sh

# warm start vs full retrain on Amazon Beauty split by time:
# test/bench/quality_warm.sh, results in test/bench/QUALITY.md
.PHONY: quality-warm
quality-warm:
	@bash test/bench/quality_warm.sh

# averaging over orders of equal timestamps (tie_average) on the trained
# models of an ablation cluster: test/quality/tie_average.sh, knobs TA_*
.PHONY: quality-tie-average
quality-tie-average:
	@bash test/quality/tie_average.sh

# a causal, time-local popularity prior next to a trained model (a screen;
# test/quality/time_prior.c, QUALITY.md "Popularity at the time of the request")
build/time_prior: test/quality/time_prior.c test/quality/qcsv.h $(CORE_LIB) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) $(CORE_CFLAGS) $(T4R_OPT) $< $(CORE_LIB) -o $@ $(CORE_LIBS)
