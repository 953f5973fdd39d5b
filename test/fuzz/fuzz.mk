# test/fuzz/fuzz.mk - libFuzzer harness for the safetensors reader.
#   make fuzz                      build build/fuzz_safetensors and its seed corpus
#   make fuzz-run FUZZ_SECONDS=60  run it (corpus in build/fuzz_corpus)
# Needs clang with the fuzzer runtime (Debian: clang, libclang-rt-14-dev).

FUZZ_CC      ?= clang
FUZZ_CFLAGS  ?= -g -O1 -std=gnu11 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRCS     = test/fuzz/fuzz_safetensors.c src/core/safetensors.c \
                src/core/config_json.c src/core/config.c
FUZZ_SECONDS ?= 60

build/fuzz_safetensors: $(FUZZ_SRCS) $(wildcard src/core/*.h)
	@mkdir -p build
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc/core $(FUZZ_SRCS) -o $@ -ljansson -lm

build/fuzz_seed: $(FUZZ_SRCS) $(wildcard src/core/*.h)
	@mkdir -p build
	$(CORE_CC) -std=gnu11 -O1 -g -DFUZZ_SEED_MAIN -Isrc/core $(FUZZ_SRCS) -o $@ -ljansson -lm

build/fuzz_corpus/.seeded: build/fuzz_seed
	@mkdir -p build/fuzz_corpus
	./build/fuzz_seed build/fuzz_corpus
	@touch $@

.PHONY: fuzz fuzz-run
fuzz: build/fuzz_safetensors build/fuzz_corpus/.seeded

fuzz-run: fuzz
	./build/fuzz_safetensors -max_total_time=$(FUZZ_SECONDS) -max_len=32768 \
	    -rss_limit_mb=2048 -dict=test/fuzz/safetensors.dict build/fuzz_corpus
