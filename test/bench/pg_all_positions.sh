#!/usr/bin/env bash
# pg_all_positions.sh - training time of "training": "all_positions"
# against the per-prefix form, through SQL (tim4rec_train), on a throwaway
# cluster of the installed extension (T4R_PG_BINDIR as test/scripts/lib.sh).
#
# Arms (every arm: movielens preset, L = 200, batch 2048, epochs 1, THREADS
# threads, seed 2020), run interleaved in one session so that they share the
# machine's load:
#   official/prefixes     the published model and samples
#   robust/prefixes       the causal time path, one sample per prefix
#   robust/all_positions  the causal time path, one pass per window
# Data: test/bench/ml1m_like.sql (ML-1M-sized, 6,040 users, ~1 M rows).  The
# per-prefix epoch of the whole table takes ~15 min on 2 cores, so by default
# the prefix arms run on a user subset (user_id <= T4R_AP_SUBSET, default
# 1000) and all_positions on the subset and the whole table; the comparison
# is in targets (training samples) per second of the same run.
# T4R_AP_FULL_PREFIX=1 also runs robust/prefixes on the whole table.
#
# Output: one line per arm (rows, targets, epoch seconds from the epoch
# NOTICE, targets/s) and a markdown table; appended to test/bench/RESULTS.md
# unless T4R_BENCH_NO_APPEND=1.  T4R_AP_REPEAT (default 1) repeats the arms.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH
THREADS=${THREADS:-2}
SUBSET=${T4R_AP_SUBSET:-1000}
REPEAT=${T4R_AP_REPEAT:-1}
TMP=$(mktemp -d)
trap 't4r_cluster_stop; rm -rf "$TMP"' EXIT
t4r_cluster_start "${T4R_AP_PORT:-54341}" >"$TMP/cluster.log" 2>&1 || { cat "$TMP/cluster.log"; exit 1; }
export PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION tim4rec"
psql -X -q -v ON_ERROR_STOP=1 -f test/bench/ml1m_like.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE bench_sub AS SELECT * FROM bench_ix WHERE user_id <= $SUBSET;
CREATE INDEX ON bench_sub (user_id, ts);
VACUUM ANALYZE bench_sub;
SQL

# arm TABLE NAME OPTIONS -> "name table rows targets epoch_s call_s ndcg"
arm() {
    local tbl=$1 name=$2 opts=$3
    psql -X -q -At -F' ' -v ON_ERROR_STOP=1 >"$TMP/arm.log" 2>&1 <<SQL
SET client_min_messages = notice;
SELECT 'ROW', interactions, train_samples, seconds, test_ndcg10
  FROM tim4rec_train('$tbl', '$name', 'user_id', 'item_id', 'ts',
       '{"preset": "movielens", "epochs": 1, "threads": $THREADS, "seed": 2020, $opts}'::jsonb);
SQL
    local row ep
    row=$(grep '^ROW' "$TMP/arm.log" | head -1) || { cat "$TMP/arm.log" >&2; return 1; }
    ep=$(sed -n 's/.*epoch 1\/1: .*), \([0-9.]*\) s, .*/\1/p' "$TMP/arm.log" | head -1)
    # shellcheck disable=SC2086
    set -- $row
    echo "$name $tbl $2 $3 ${ep:-nan} $4 $5"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), threads $THREADS" | tee "$TMP/results"
for r in $(seq "$REPEAT"); do
    arm bench_sub "off_pre_$r" '"time_features": "official"' | tee -a "$TMP/results"
    arm bench_sub "rob_all_sub_$r" '"time_features": "robust", "training": "all_positions"' | tee -a "$TMP/results"
    arm bench_sub "rob_pre_$r" '"time_features": "robust"' | tee -a "$TMP/results"
    arm bench_ix "rob_all_full_$r" '"time_features": "robust", "training": "all_positions"' | tee -a "$TMP/results"
    if [ "${T4R_AP_FULL_PREFIX:-0}" = 1 ]; then
        arm bench_ix "rob_pre_full_$r" '"time_features": "robust"' | tee -a "$TMP/results"
    fi
done

{
    echo
    echo "#### all_positions vs prefixes through SQL - $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs shared with other agents, threads $THREADS"
    echo
    echo "Command: \`THREADS=$THREADS T4R_AP_SUBSET=$SUBSET make bench-all-positions\` (arms interleaved in one session; epoch = training + validation, from the epoch NOTICE)"
    echo
    echo "| arm | table | rows | targets/epoch | epoch s | targets/s | test NDCG@10 after 1 epoch |"
    echo "|---|---|--:|--:|--:|--:|--:|"
    awk 'NR > 1 { printf "| %s | %s | %d | %d | %.1f | %.0f | %.4f |\n", $1, $2, $3, $4, $5, $4 / $5, $7 }' "$TMP/results"
} | tee "$TMP/table.md"
if [ "${T4R_BENCH_NO_APPEND:-0}" != 1 ]; then
    cat "$TMP/table.md" >>test/bench/RESULTS.md
fi
