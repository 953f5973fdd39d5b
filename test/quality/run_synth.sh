#!/usr/bin/env bash
# `make quality-synth`: time to train one epoch and peak memory at the paper's
# main scale (ML-1M-sized synthetic set, movielens preset, L = 200).
# The set (test/quality/gen_synth.awk, ~0.97 M interactions) is written to a
# temporary directory and removed at the end (never committed).
# Variables: SYNTH_SEED (2020), THREADS (nproc), SYNTH_STEPS (default 5: time
# the first steps and project the epoch; 0 = train one full epoch and
# evaluate), SYNTH_OPTIONS (key=value,... e.g. is_time=false).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
STEPS=${SYNTH_STEPS:-5}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tim4rec-synth.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
make -s build/quality_core
awk -v seed="${SYNTH_SEED:-2020}" -f test/quality/gen_synth.awk >"$TMP/synth.csv"
echo "synthetic set: $(($(wc -l <"$TMP/synth.csv") - 1)) interactions, md5 $(md5sum <"$TMP/synth.csv" | cut -c1-32)"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, THREADS=$THREADS"
args=(--csv "$TMP/synth.csv" --preset movielens --threads "$THREADS" --progress 10)
IFS=, read -r -a kvs <<<"${SYNTH_OPTIONS:-}"
for kv in "${kvs[@]}"; do [ -n "$kv" ] && args+=(--set "$kv"); done
if [ "$STEPS" -gt 0 ]; then
    args+=(--max-steps "$STEPS")
else
    args+=(--epochs 1)
fi
echo "build/quality_core ${args[*]}"
./build/quality_core "${args[@]}"
