#!/usr/bin/env bash
# pg_memory.sh - per-backend memory of serving one big model:
# how much private memory each backend adds when it serves a model, relative
# to the size of the model's weights.  Appended to test/bench/RESULTS.md.
#
#   test/bench/pg_memory.sh                  # extension installed (make install) in T4R_PG_BINDIR's PostgreSQL
#   T4R_PRELOAD=1 test/bench/pg_memory.sh    # the cluster with shared_preload_libraries = 'tim4rec'
#   T4R_MEM_BACKENDS=N (default 32), T4R_MEM_ITEMS=N (items of the big model, default 200000),
#   T4R_MEM_CALLS=N (recommend calls per backend, default 3), T4R_BENCH_NO_APPEND=1 (print only),
#   T4R_BENCH_KEEP=1 (keep the cluster directory and its logs), T4R_BENCH_NOTE="text" (a paragraph
#   under the heading, e.g. which build was measured)
#
# Model 'big': movielens preset (d 64, L 200) with T4R_MEM_ITEMS items
# (T4R_MEM_ITEMS + 1 vocabulary rows with the padding row), initialised from a
# seed by test/bench/pg_latency_model.c, imported with tim4rec_import (item_ids
# NULL: row i = item i); model 'tiny': the same with 100 items.
# Four groups of N backends, one group after the other, each group N psql
# sessions kept open (FIFOs) that run their statements, then stay idle while
# /proc/PID/smaps_rollup of each backend (pids from pg_stat_activity) is read:
#   idle       SELECT 1 (never called recommend: the baseline)
#   loaded     LOAD 'tim4rec' (the library, no model)
#   tiny       T4R_MEM_CALLS x recommend(ARRAY[1,2,3], ..., 10, 'tiny')
#   big        T4R_MEM_CALLS x recommend(ARRAY[1,2,3], ..., 10, 'big')
# Private = Private_Clean + Private_Dirty (pages mapped by this process only:
# a model copy in backend-local memory counts in full, a model in shared
# memory mapped by every backend does not); Pss splits shared pages between
# the processes that map them.  The figure of merit is
#   (mean private of a 'big' backend - mean private of an 'idle' one) / weights
# where weights = octet_length(tim4rec_export('big')); target <= 5 %.
set -eu -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
. test/bench/pg_bench_lib.sh
export PATH=$T4R_PG_BINDIR:$PATH
unset PGDATABASE PGSERVICE PGOPTIONS PGHOSTADDR PGAPPNAME

NB=${T4R_MEM_BACKENDS:-32}
NITEMS=${T4R_MEM_ITEMS:-200000}
NCALLS=${T4R_MEM_CALLS:-3}
PRELOAD=${T4R_PRELOAD:-0}
START=$(date +%s)

make -s build/pg_latency_model >/dev/null

W=$(mktemp -d "${TMPDIR:-/tmp}/t4r_mem.XXXXXX")
SES_FDS=()
SES_PIDS=()
cleanup() {
    local fd p
    for fd in "${SES_FDS[@]}"; do exec {fd}>&- 2>/dev/null || true; done
    for p in "${SES_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    tb_stop
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$PRELOAD" = 1 ]; then
    tb_start 54351 "-c shared_preload_libraries=tim4rec"
else
    tb_start 54351
fi
# the server reads the model files itself (pg_read_binary_file): put them in
# the cluster's directory, which the server's OS user can read
./build/pg_latency_model $((NITEMS + 1)) > "$TB_DIR/big.safetensors"
./build/pg_latency_model 101 > "$TB_DIR/tiny.safetensors"
chmod 644 "$TB_DIR"/*.safetensors

export PGDATABASE=t4r_mem
psql -X -q -d postgres -c "CREATE DATABASE t4r_mem" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION tim4rec;
SELECT tim4rec_import('big', pg_read_binary_file('$TB_DIR/big.safetensors'));
SELECT tim4rec_import('tiny', pg_read_binary_file('$TB_DIR/tiny.safetensors'));
SQL
WEIGHTS=$(psql -X -At -c "SELECT octet_length(tim4rec_export('big'))")
WEIGHTS_TINY=$(psql -X -At -c "SELECT octet_length(tim4rec_export('tiny'))")
NV=$(psql -X -At -c "SELECT n_items FROM tim4rec_model_list WHERE model_name = 'big' AND is_current")
t4r_log "model 'big': $NV items, $WEIGHTS bytes of safetensors; 'tiny': $WEIGHTS_TINY bytes"

# sessions_open TAG SQL: NB psql sessions (application_name t4r_mem_TAG),
# each runs SQL and then stays connected and idle
sessions_open() {
    local tag=$1 sql=$2 i fd n t
    SES_FDS=()
    SES_PIDS=()
    for ((i = 0; i < NB; i++)); do
        mkfifo "$W/$tag.in.$i"
        PGAPPNAME=t4r_mem_$tag psql -X -q -At <"$W/$tag.in.$i" >"$W/$tag.out.$i" 2>&1 &
        SES_PIDS+=($!)
        exec {fd}>"$W/$tag.in.$i"
        SES_FDS+=("$fd")
        printf '%s\n\\echo __done__\n' "$sql" >&"$fd"
    done
    for ((t = 0; t < 1200; t++)); do
        n=$(cat "$W/$tag".out.* | grep -c '^__done__$' || true)
        [ "$n" = "$NB" ] && return 0
        sleep 0.5
    done
    t4r_log "$tag: only $n of $NB sessions finished within 600 s"
    return 1
}

sessions_close() {
    local fd p
    for fd in "${SES_FDS[@]}"; do exec {fd}>&-; done
    for p in "${SES_PIDS[@]}"; do wait "$p" || true; done
    SES_FDS=()
    SES_PIDS=()
}

# measure TAG: kB sums over the group's backends -> "n rss pss private"
measure() {
    local tag=$1 pids p
    pids=$(psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 't4r_mem_$tag'
                           AND backend_type = 'client backend' AND state = 'idle'")
    for p in $pids; do
        cat "/proc/$p/smaps_rollup"
    done | awk '/^Rss:/ {rss += $2; n++} /^Pss:/ {pss += $2} /^Private_(Clean|Dirty):/ {priv += $2}
                END {printf "%d %d %d %d\n", n, rss, pss, priv}'
}

# maps TAG: mean private kB per backend by kind of mapping -> "kind kB" lines
# (heap, anon, main shared memory /dev/zero, DSM segments /dev/shm, the
# postgres binary, tim4rec.so, other libraries)
maps() {
    local tag=$1 pids p
    pids=$(psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 't4r_mem_$tag'
                           AND backend_type = 'client backend' AND state = 'idle'")
    for p in $pids; do
        echo "__pid__"
        cat "/proc/$p/smaps"
    done | awk '/^__pid__/ {n++}
                /^[0-9a-f]+-[0-9a-f]+ / {k = $6; if (k == "") k = "anonymous";
                   else if (k == "[heap]") k = "heap"; else if (k ~ /^\/dev\/zero/) k = "main shared memory";
                   else if (k ~ /^\/dev\/shm\//) k = "DSM segments"; else if (k ~ /tim4rec\.so$/) k = "tim4rec.so";
                   else if (k ~ /\/postgres$/) k = "postgres binary"; else k = "other mappings"}
                /^Private_(Clean|Dirty):/ {p[k] += $2}
                END {for (k in p) printf "%s|%.0f\n", k, p[k] / n}' | sort
}

if [ -n "${T4R_MEM_WARM:-}" ]; then
    psql -X -q -c "SELECT count(*) FROM tim4rec_recommend(ARRAY[1,2,3]::bigint[], ARRAY[1,2,3]::float8[], 10, 'big')" \
         -c "SELECT count(*) FROM tim4rec_recommend(ARRAY[1,2,3]::bigint[], ARRAY[1,2,3]::float8[], 10, 'tiny')" >/dev/null
fi
declare -A RES MAPS
for tag in idle loaded tiny big; do
    case $tag in
        idle)   sql="SELECT 1;" ;;
        loaded) sql="LOAD 'tim4rec';" ;;
        tiny|big)
            sql=
            for ((c = 0; c < NCALLS; c++)); do
                sql+="SELECT count(*) FROM tim4rec_recommend(ARRAY[1,2,3]::bigint[], ARRAY[1,2,3]::float8[], 10, '$tag');"$'\n'
            done ;;
    esac
    t0=$(date +%s%N)
    sessions_open "$tag" "$sql"
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
    if grep -l 'ERROR\|FATAL' "$W/$tag".out.* >/dev/null 2>&1; then
        t4r_log "$tag: a session failed:"; cat "$(grep -l 'ERROR\|FATAL' "$W/$tag".out.* | head -1)" >&2
        exit 1
    fi
    if [ "$tag" = tiny ] || [ "$tag" = big ]; then
        nten=$(cat "$W/$tag".out.* | grep -c '^10$' || true)
        [ "$nten" = $((NB * NCALLS)) ] || { t4r_log "$tag: $nten of $((NB * NCALLS)) calls returned 10 rows"; exit 1; }
    fi
    RES[$tag]=$(measure "$tag")
    MAPS[$tag]=$(maps "$tag")
    t4r_log "$tag: $NB sessions ready in ${secs}s; backends, kB sums of Rss Pss Private: ${RES[$tag]}"
    read -r n _ _ _ <<<"${RES[$tag]}"
    [ "$n" = "$NB" ] || { t4r_log "$tag: found $n idle backends in pg_stat_activity, expected $NB"; exit 1; }
    sessions_close
done

row() {    # tag label
    read -r n rss pss priv <<<"${RES[$1]}"
    awk -v l="$2" -v n="$n" -v rss="$rss" -v pss="$pss" -v priv="$priv" 'BEGIN {
        printf "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", l, n, rss / n / 1024, pss / n / 1024, priv / n / 1024, priv / 1024 }'
}
extra() {    # tag label weights: mean private above the idle group, per backend, and / weights
    read -r n _ _ priv <<<"${RES[$1]}"
    read -r n0 _ _ priv0 <<<"${RES[idle]}"
    awk -v l="$2" -v n="$n" -v p="$priv" -v n0="$n0" -v p0="$priv0" -v w="$3" 'BEGIN {
        e = (p / n - p0 / n0) * 1024
        if (w > 0)
            printf "| %s | %.2f MiB | %.2f MiB | %.3f | %s |\n", l, e / 1048576, w / 1048576, e / w, (e / w <= 0.05 ? "yes" : "no")
        else
            printf "| %s | %.2f MiB | - | - | |\n", l, e / 1048576 }'
}

OUT=$W/result.md
{
    echo
    echo "## PostgreSQL memory per backend serving one big model ($(date -u '+%Y-%m-%d %H:%M UTC'), $(tb_machine))"
    echo
    [ -z "${T4R_BENCH_NOTE:-}" ] || { echo "$T4R_BENCH_NOTE"; echo; }
    echo "test/bench/pg_memory.sh$([ "$PRELOAD" = 1 ] && echo " with T4R_PRELOAD=1 (shared_preload_libraries = 'tim4rec')"):"
    echo "model 'big' = movielens preset (d 64, L 200) with $NV items, safetensors $WEIGHTS bytes"
    echo "($(awk -v w="$WEIGHTS" 'BEGIN {printf "%.1f", w / 1048576}') MiB, octet_length(tim4rec_export('big'))); 'tiny' = the same with 100 items."
    echo "Each group: $NB backends kept open and idle after their statements ('big', 'tiny': $NCALLS x"
    echo "\`SELECT count(*) FROM tim4rec_recommend(ARRAY[1,2,3]::bigint[], ARRAY[1,2,3]::float8[], 10, name)\`),"
    echo "/proc/PID/smaps_rollup of each backend; private = Private_Clean + Private_Dirty. Means per backend in MiB."
    echo
    echo "| group | backends | Rss | Pss | private | private, sum of all |"
    echo "|---|--:|--:|--:|--:|--:|"
    row idle "idle, never called recommend (baseline): SELECT 1"
    row loaded "LOAD 'tim4rec' (library, no model)"
    row tiny "recommend on 'tiny' (100 items)"
    row big "recommend on 'big' ($NV items)"
    echo
    echo "| extra private memory per backend over the baseline | per backend | weights of its model | / weights | <= 5 % |"
    echo "|---|--:|--:|--:|:-:|"
    extra loaded "LOAD 'tim4rec'" 0
    extra tiny "recommend on 'tiny'" "$WEIGHTS_TINY"
    extra big "**recommend on 'big'**" "$WEIGHTS"
    read -r n1 _ _ p1 <<<"${RES[tiny]}"
    read -r n2 _ _ p2 <<<"${RES[big]}"
    awk -v p1="$p1" -v n1="$n1" -v p2="$p2" -v n2="$n2" -v w1="$WEIGHTS_TINY" -v w2="$WEIGHTS" 'BEGIN {
        e = (p2 / n2 - p1 / n1) * 1024; w = w2 - w1
        printf "| size-dependent part: big minus tiny, per backend, / (weights big - weights tiny) | %.2f MiB | %.2f MiB | %.3f | |\n", e / 1048576, w / 1048576, e / w }'
    echo
    echo
    echo "Where the private memory is: mean private kB per backend by kind of mapping (/proc/PID/smaps)."
    echo
    echo "| mapping | idle | tiny | big | big - idle |"
    echo "|---|--:|--:|--:|--:|"
    join -t'|' -a1 -a2 -e0 -o 0,1.2,2.2 <(echo "${MAPS[idle]}") <(echo "${MAPS[tiny]}") |
        join -t'|' -a1 -a2 -e0 -o 0,1.2,1.3,2.2 - <(echo "${MAPS[big]}") |
        awk -F'|' '{printf "| %s | %d | %d | %d | %d |\n", $1, $2, $3, $4, $4 - $2}'
    echo
    echo "Run time $(( $(date +%s) - START )) s."
} >"$OUT"
cat "$OUT"
if [ "${T4R_BENCH_NO_APPEND:-0}" != 1 ]; then
    cat "$OUT" >> test/bench/RESULTS.md
fi
