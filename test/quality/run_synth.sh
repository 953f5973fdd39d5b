#!/usr/bin/env bash
# `make quality-synth`: time to train one epoch and peak memory at the paper's
# main scale (ML-1M-sized synthetic set, movielens preset, L = 200).
# The set (test/quality/gen_synth.awk, ~0.97 M interactions) is written to a
# temporary directory and removed at the end (never committed).
# Variables: SYNTH_SEED (2020), THREADS (nproc), SYNTH_OPTIONS (key=value,...
# e.g. is_time=false), SYNTH_PATH:
#   core (default)  build/quality_core; SYNTH_STEPS (default 5) times the first
#                   steps and projects the epoch, 0 = one full epoch + evaluation
#   sql             a throwaway cluster, the set loaded with
#                   test/scripts/load_interactions.sh, tim4rec_train(epochs 1)
#                   in one backend while another session samples
#                   tim4rec_progress and the backend's /proc status every
#                   SYNTH_SAMPLE seconds (5); SYNTH_SECONDS > 0 stops the
#                   training by statement_timeout after that many seconds
#                   (default 0: the whole epoch, then validation/test and
#                   saving).  Prints the backend's peak memory (VmHWM), the
#                   steps done and samples/s.  SYNTH_BUDGET sets
#                   tim4rec.memory_budget (default: the setting's 1GB).
#                   T4R_SKIP_INSTALL=1 skips packages/build/install.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
STEPS=${SYNTH_STEPS:-5}
SPATH=${SYNTH_PATH:-core}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tim4rec-synth.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
[ "$SPATH" = core ] && make -s build/quality_core
awk -v seed="${SYNTH_SEED:-2020}" -f test/quality/gen_synth.awk >"$TMP/synth.csv"
echo "synthetic set: $(($(wc -l <"$TMP/synth.csv") - 1)) interactions, md5 $(md5sum <"$TMP/synth.csv" | cut -c1-32)"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, THREADS=$THREADS, load average $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$SPATH" = core ]; then
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
    exit
fi

# ---------------------------------------------------------------- SQL path
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH
SECONDS_CAP=${SYNTH_SECONDS:-0}
SAMPLE=${SYNTH_SAMPLE:-5}
if [ "${T4R_SKIP_INSTALL:-0}" != 1 ]; then
    { t4r_ensure_packages && t4r_build_install; } >"$TMP/setup.log" 2>&1 ||
        { tail -20 "$TMP/setup.log"; echo "build/install failed" >&2; exit 1; }
fi
trap 't4r_cluster_stop; rm -rf "$TMP"' EXIT
t4r_cluster_start 54332 >"$TMP/cluster.log" 2>&1 || { cat "$TMP/cluster.log"; exit 1; }
export PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION tim4rec"
t0=$(date +%s.%N)
test/scripts/load_interactions.sh --replace -f csv "$TMP/synth.csv" >"$TMP/load.log" 2>&1 ||
    { cat "$TMP/load.log"; exit 1; }
echo "loaded in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s: $(tail -1 "$TMP/load.log")"

opts="\"preset\": \"movielens\", \"epochs\": 1, \"threads\": $THREADS, \"order_column\": \"seq\""
IFS=, read -r -a kvs <<<"${SYNTH_OPTIONS:-}"
for kv in "${kvs[@]}"; do
    [ -n "$kv" ] || continue
    v=${kv#*=}
    case "$v" in true|false|[0-9-]*) ;; *) v="\"$v\"" ;; esac
    opts="$opts, \"${kv%%=*}\": $v"
done
budget_sql=""
[ -n "${SYNTH_BUDGET:-}" ] && budget_sql="SET tim4rec.memory_budget = '${SYNTH_BUDGET}';"
timeout_sql=""
[ "$SECONDS_CAP" -gt 0 ] && timeout_sql="SET statement_timeout = '${SECONDS_CAP}s';"
echo "tim4rec_train('interactions', 'synth', options => '{$opts}')  ${budget_sql} ${timeout_sql}"

# the training backend; the sampler reads its pid from $TMP/pid
psql -X -q -At >"$TMP/train.log" 2>&1 <<SQL &
\\o $TMP/pid
SELECT pg_backend_pid();
\\o
LOAD 'tim4rec';
$budget_sql
SELECT 'BUDGET', current_setting('tim4rec.memory_budget');
$timeout_sql
SELECT 'TRAIN', users, items, interactions, train_samples, epochs_run, seconds, test_ndcg10, test_hr10
  FROM tim4rec_train('interactions', 'synth', options => '{$opts}'::jsonb);
RESET statement_timeout;
SELECT 'HWM', regexp_replace(l, '[^0-9]', '', 'g') FROM regexp_split_to_table(pg_read_file('/proc/' || pg_backend_pid() || '/status'), E'\\n') l WHERE l LIKE 'VmHWM%';
SQL
tpid=$!
for _ in $(seq 100); do [ -s "$TMP/pid" ] && break; sleep 0.1; done
bpid=$(tr -dc 0-9 <"$TMP/pid")
echo "training backend pid $bpid; samples every ${SAMPLE}s: time phase epoch step/steps_per_epoch VmRSS(kB)"
: >"$TMP/samples"
while kill -0 "$tpid" 2>/dev/null; do
    psql -X -q -At -F' ' -c "SELECT extract(epoch FROM clock_timestamp()), coalesce(replace(phase, ' ', '_'), '-'), coalesce(epoch, 0), coalesce(step, 0), coalesce(steps_per_epoch, 0) FROM tim4rec_progress WHERE pid = $bpid" \
        -c "SELECT regexp_replace(l, '[^0-9]', '', 'g') FROM regexp_split_to_table(pg_read_file('/proc/$bpid/status'), E'\\n') l WHERE l LIKE 'VmRSS%'" \
        2>/dev/null | paste -sd' ' >>"$TMP/samples" || true
    tail -1 "$TMP/samples"
    sleep "$SAMPLE"
done
wait "$tpid" || true
cat "$TMP/train.log"
hwm=$(awk '$1 == "HWM" || /^HWM\|/ { gsub(/[^0-9]/, "", $0); print; exit }' "$TMP/train.log")
# rate: steps over the time between the first and last sample in the training phase
batch=$(printf '%s' "${SYNTH_OPTIONS:-}" | { grep -o 'batch_size=[0-9]*' || true; } | cut -d= -f2)
awk -v b="${batch:-2048}" '
    $2 == "training" && $4 > 0 { if (!t0) { t0 = $1; s0 = $4 } t1 = $1; s1 = $4; spe = $5 }
    END {
        if (t1 > t0 && s1 > s0) {
            r = (s1 - s0) * b / (t1 - t0)
            printf "training rate: %d steps in %.0f s = %.1f samples/s (batch %d); one epoch of %d steps = %.0f s\n",
                   s1 - s0, t1 - t0, r, b, spe, spe * b / r
        } else print "training rate: not enough samples in the training phase"
    }' "$TMP/samples"
maxrss=$(awk '{ if ($NF + 0 > m) m = $NF + 0 } END { print m + 0 }' "$TMP/samples")
echo "peak memory of the training backend: VmHWM $hwm kB = $(awk -v h="$hwm" 'BEGIN { printf "%.0f", h / 1024 }') MiB (largest sampled VmRSS $maxrss kB)"
