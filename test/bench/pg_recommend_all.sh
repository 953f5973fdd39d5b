#!/usr/bin/env bash
# pg_recommend_all.sh - tim4rec_recommend_all for every user of the
# ML-1M-like set against the LATERAL tim4rec_recommend form, interleaved in
# the same run (median of T4R_BENCH_ROUNDS, default 3), appended to
# test/bench/RESULTS.md (`make bench-recommend-all`).
#
#   test/bench/pg_recommend_all.sh            # throwaway cluster (make install first)
#   T4R_BENCH_SERVER=1 ...                    # use PGHOST/PGPORT/PGUSER/PGDATABASE
#   T4R_BENCH_NO_APPEND=1                     # print only
#
# Model: the movielens preset (d 64, L 200, 3,706 items) of
# test/bench/pg_latency_model.c; data: test/bench/ml1m_like.sql.
set -eu -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
. test/scripts/lib.sh
export PATH=$T4R_PG_BINDIR:$PATH

make -s build/pg_latency_model >/dev/null
HEXF=$(mktemp)
./build/pg_latency_model | od -An -v -tx1 | tr -d ' \n' > "$HEXF"

if [ "${T4R_BENCH_SERVER:-0}" != 1 ]; then
    trap t4r_cluster_stop EXIT
    t4r_cluster_start 54341
    psql -q -d postgres -c "CREATE DATABASE t4r_bench" >/dev/null
    export PGDATABASE=t4r_bench
    psql -q -c "CREATE EXTENSION tim4rec" >/dev/null
fi

OUT=$(mktemp)
PGOPTIONS="-c t4r.rounds=${T4R_BENCH_ROUNDS:-3}" \
psql -X -v ON_ERROR_STOP=1 -v model_hex_file="$HEXF" -f test/bench/pg_recommend_all.sql > "$OUT"
{
    echo
    echo "## tim4rec_recommend_all vs LATERAL ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "test/bench/pg_recommend_all.sh (\`make bench-recommend-all\`): movielens-preset model (d 64, L 200, 3,706 items),"
    echo "ML-1M-like table (6,040 users, ~1 M rows), one backend, no parallel workers; the arms run interleaved,"
    echo "${T4R_BENCH_ROUNDS:-3} rounds, medians (every run listed); the machine is shared with other jobs, so the backend's CPU seconds (/proc/PID/stat, all threads) are given too. Ratio >= 1 means the target is met."
    echo
    echo "| figure | value (wall, median) | target | ratio | backend CPU s (median, all threads) |"
    echo "|---|---|---|---|---|"
    grep '^|' "$OUT"
} > "$OUT.md"
cat "$OUT.md"
if [ "${T4R_BENCH_NO_APPEND:-0}" != 1 ]; then
    cat "$OUT.md" >> test/bench/RESULTS.md
fi
rm -f "$OUT" "$OUT.md" "$HEXF"
