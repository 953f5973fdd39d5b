#!/usr/bin/env bash
# pg_latency.sh - recommendation latency and bulk throughput of the installed
# extension, appended to test/bench/RESULTS.md.
#
#   test/bench/pg_latency.sh            # throwaway cluster (extension must be installed: make install)
#   T4R_BENCH_SERVER=1 test/bench/pg_latency.sh   # use the server of PGHOST/PGPORT/PGUSER/PGDATABASE
#   T4R_BENCH_CALLS=N  (default 3000), T4R_BENCH_NO_APPEND=1 (print only)
#
# Model: movielens preset (d = 64, L = 200, 3,706 items), initialised from a
# seed by test/bench/pg_latency_model.c (latency depends on the sizes, not on
# the weight values).  Data: ML-1M-like synthetic table (6,040 users,
# ~1 M rows), index on (user_id, ts).  Latency = server-side time of one
# `SELECT count(*) FROM tim4rec_recommend(...)` in a plpgsql loop on a warm
# backend (after 300 warm-up calls), users spread over the table.
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
    t4r_cluster_start 54339
    psql -q -d postgres -c "CREATE DATABASE t4r_bench" >/dev/null
    export PGDATABASE=t4r_bench
    psql -q -c "CREATE EXTENSION tim4rec" >/dev/null
fi

OUT=$(mktemp)
psql -X -v ON_ERROR_STOP=1 -v model_hex_file="$HEXF" -v n_calls="${T4R_BENCH_CALLS:-3000}" \
     -f test/bench/pg_latency.sql > "$OUT"
{
    echo
    echo "## PostgreSQL recommend latency ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "test/bench/pg_latency.sh: movielens-preset model (d 64, L 200, 3,706 items), ML-1M-like table (6,040 users),"
    echo "${T4R_BENCH_CALLS:-3000} calls per form on one warm backend, server-side time per call; ratio >= 1 means the target is met."
    echo
    echo "| figure | value | target | ratio |"
    echo "|---|---|---|---|"
    grep '^|' "$OUT"
} > "$OUT.md"
cat "$OUT.md"
if [ "${T4R_BENCH_NO_APPEND:-0}" != 1 ]; then
    cat "$OUT.md" >> test/bench/RESULTS.md
fi
rm -f "$OUT" "$OUT.md" "$HEXF"
