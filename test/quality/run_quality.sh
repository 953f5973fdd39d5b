#!/usr/bin/env bash
# `make quality`: the paper's protocol end to end on the real data sets in
# ../shared/data (not part of `make test`).  For each data set present:
#   TiM4Rec (is_time = true) with the preset that fits (amazon for Amazon and
#   Last.fm, movielens for MovieLens), the SSD-only ablation (is_time = false,
#   first seed only) and the most-popular baseline; test HR/NDCG/MRR at
#   10/20/50, best epoch, epochs run, time, samples/s, peak memory.
#
# Two paths (QUALITY_PATH):
#   sql   a throwaway cluster (test/scripts/lib.sh), the data loaded with
#         test/scripts/load_interactions.sh (seq = file order, used as
#         order_column), tim4rec_train + tim4rec_evaluate; peak memory =
#         VmHWM of the training backend (/proc/<pid>/status)
#   core  build/quality_core (test/quality/quality_core.c): the same protocol
#         on the C core directly (t4r_dataset_build, t4r_fit, t4r_evaluate);
#         peak memory = max RSS of the process
#   both  both, to cross-check (same seed -> same metrics expected)
#   auto  (default) sql when the extension defines tim4rec_train, else core
#
# Variables (environment):
#   QUALITY_DATASETS  default "amazon-beauty-5core ml-100k ml-latest-small lastfm-2k-tags"
#   QUALITY_EPOCHS    epoch cap (default: the preset's 300)
#   QUALITY_PATIENCE  early-stopping patience (default: the preset's 20)
#   QUALITY_SEEDS     seeds for TiM4Rec (default 2020); the ablation uses the first
#   QUALITY_ABLATION  1 (default) also fits the is_time=false ablation; 0 skips it
#   QUALITY_BATCH     batch_size override (default: the preset's 2048)
#   QUALITY_OPTIONS   extra options as key=value,key=value (both paths)
#   QUALITY_MAX_SECONDS  wall-clock cap per core fit, stops at an epoch
#                     boundary keeping the best epoch (core path only; 0 = none)
#   QUALITY_TIE_ORDERS  how equal timestamps of a user are ordered, for the
#                     Amazon data sets on the sql path (default "file item"):
#                     file = the file's order (order_column seq: the honest
#                     default, what a user's table gives); item = item id
#                     (order_column item_id: in these files item ids follow
#                     product ids, the order the paper's RecBole files keep
#                     for same-day events).  Every row says which.  Other
#                     data sets and the core path: file order only.
#   QUALITY_DATA      data directory (default ../shared/data)
#   THREADS           training threads (default: nproc)
#   T4R_SKIP_INSTALL=1  skip packages/build/install (sql path)
# Output: a table on stdout; logs and rows.md (table rows for
# test/bench/QUALITY.md) under test/results/quality/.
# Validation curves: the per-epoch validation NDCG@10 of every fit (the
# catalog's history) is drawn per data set into
# test/results/quality/curves_<data set>.svg (gnuplot, installed from
# Debian's gnuplot-nox when missing).
#
# QUALITY_SUITE=ablation runs the time ablation of issue 12 part 3 instead
# (test/quality/ablation.sh, knobs ABL_*: arms robust / notime / official,
# seeds, data sets, tie orders, paired bootstrap over users, curves).
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
if [ "${QUALITY_SUITE:-}" = ablation ]; then
    exec bash test/quality/ablation.sh
fi
CURVES=()
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH

DATA=${QUALITY_DATA:-$REPO/../shared/data}
DATASETS=${QUALITY_DATASETS:-amazon-beauty-5core ml-100k ml-latest-small lastfm-2k-tags}
SEEDS=${QUALITY_SEEDS:-2020}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
EPOCHS=${QUALITY_EPOCHS:-}
PATIENCE=${QUALITY_PATIENCE:-}
TIE_ORDERS=${QUALITY_TIE_ORDERS:-file item}
BATCH=${QUALITY_BATCH:-}
EXTRA=${QUALITY_OPTIONS:-}
MAXSEC=${QUALITY_MAX_SECONDS:-0}
QPATH=${QUALITY_PATH:-auto}
ABLATION=${QUALITY_ABLATION:-1}
OUTDIR=$REPO/test/results/quality
mkdir -p "$OUTDIR"
ROWS=$OUTDIR/rows.md
: >"$ROWS"

log() { printf '[quality] %s\n' "$*" >&2; }

CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
NOW=$(date -u '+%Y-%m-%d %H:%M UTC')
log "$NOW, $CPU, $(nproc) CPUs, THREADS=$THREADS"

if [ "$QPATH" = auto ]; then
    if cat sql/install/*.sql 2>/dev/null | grep -qiE 'FUNCTION[[:space:]]+tim4rec_train[[:space:]]*\('; then
        QPATH=sql
    else
        QPATH=core
        log "tim4rec_train is not defined in sql/install/*.sql yet: using the C driver (build/quality_core)"
    fi
fi

preset_of() {
    case "$1" in
        ml-*|movielens*|synth*) echo movielens ;;
        *) echo amazon ;;
    esac
}

# options as a JSON object for tim4rec_train; args: preset is_time seed [order_column]
json_opts() {
    local j="\"preset\": \"$1\", \"is_time\": $2, \"seed\": $3, \"order_column\": \"${4:-seq}\""
    [ -n "$EPOCHS" ] && j="$j, \"epochs\": $EPOCHS"
    [ -n "$PATIENCE" ] && j="$j, \"patience\": $PATIENCE"
    [ -n "$BATCH" ] && j="$j, \"batch_size\": $BATCH"
    local kv
    IFS=, read -r -a kvs <<<"$EXTRA"
    for kv in "${kvs[@]}"; do
        [ -n "$kv" ] || continue
        local v=${kv#*=}
        case "$v" in
            true|false|[0-9-]*) ;;
            *) v="\"$v\"" ;;
        esac
        j="$j, \"${kv%%=*}\": $v"
    done
    echo "{$j, \"threads\": $THREADS}"
}

# ---------------------------------------------------------------- row output
# one row: data set | model | seed | HR/NDCG/MRR@10,20,50 | best ep | ep run | s | samples/s | MiB | path
# args: dataset label seed path "hr10 nd10 mr10 hr20 nd20 mr20 hr50 nd50 mr50" best run secs sps mib
emit_row() {
    local ds=$1 label=$2 seed=$3 p=$4 m=$5 best=$6 run=$7 secs=$8 sps=$9 mib=${10}
    # shellcheck disable=SC2086
    set -- $m
    printf '| %s | %s | %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %s | %s | %s | %s | %s | %s |\n' \
        "$ds" "$label" "$seed" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "$best" "$run" "$secs" "$sps" "$mib" "$p" |
        tee -a "$ROWS"
}

# metrics of a RESULT line of quality_core, in emit_row's order
core_metrics() {
    grep "^RESULT $1 " "$2" | tr ' ' '\n' | awk -F= '
        { v[$1] = $2 }
        END { printf "%s %s %s %s %s %s %s %s %s", v["hr10"], v["ndcg10"], v["mrr10"],
                     v["hr20"], v["ndcg20"], v["mrr20"], v["hr50"], v["ndcg50"], v["mrr50"] }'
}
core_field() { grep "^RESULT $1 " "$2" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'; }

run_core() {
    local ds=$1 csv=$2 preset=$3 seed=$4 is_time=$5 label=$6
    local logf
    logf=$OUTDIR/core_${ds}_$(printf '%s' "$label" | tr -c 'A-Za-z0-9_.\n-' '_')_s${seed}.log
    local args=(--csv "$csv" --preset "$preset" --threads "$THREADS" --seed "$seed"
                --set "is_time=$is_time" --max-seconds "$MAXSEC")
    [ -n "$EPOCHS" ] && args+=(--epochs "$EPOCHS")
    [ -n "$PATIENCE" ] && args+=(--patience "$PATIENCE")
    [ -n "$BATCH" ] && args+=(--set "batch_size=$BATCH")
    local kv
    IFS=, read -r -a kvs <<<"$EXTRA"
    for kv in "${kvs[@]}"; do [ -n "$kv" ] && args+=(--set "$kv"); done
    log "$ds $label seed $seed (core): build/quality_core ${args[*]}  (log: $logf)"
    if ! ./build/quality_core "${args[@]}" >"$logf" 2>&1; then
        log "  FAILED: $(tail -3 "$logf")"
        return 1
    fi
    local capped best run secs sps mib
    capped=$(core_field fit "$logf" capped)
    best=$(core_field fit "$logf" best_epoch)
    run=$(core_field fit "$logf" epochs_run)
    [ "$capped" = 1 ] && run="$run (time cap)"
    secs=$(core_field fit "$logf" seconds)
    sps=$(core_field fit "$logf" samples_per_s)
    mib=$(core_field end "$logf" peak_rss_mib)
    emit_row "$ds" "$label" "$seed" core "$(core_metrics model_test "$logf")" "$best" "$run" "$secs" "$sps" "$mib"
    if [ "${label%% *}" = TiM4Rec ] && [ "$seed" = "${SEEDS%% *}" ]; then
        emit_row "$ds" most-popular - core "$(core_metrics pop_test "$logf")" - - - - -
    fi
}

# ---------------------------------------------------------------- SQL path
SQL_READY=0
sql_setup() {
    [ $SQL_READY = 1 ] && return 0
    if [ "${T4R_SKIP_INSTALL:-0}" != 1 ]; then
        t4r_ensure_packages >>"$OUTDIR/setup.log" 2>&1 &&
        t4r_build_install >>"$OUTDIR/setup.log" 2>&1 || {
            tail -20 "$OUTDIR/setup.log"; log "build/install failed"; return 1; }
    fi
    trap 'T4R_KEEP_LOG=$OUTDIR/server.log t4r_cluster_stop' EXIT
    trap 'exit 130' INT TERM
    t4r_cluster_start 54331 >>"$OUTDIR/setup.log" 2>&1 || { log "cluster start failed"; return 1; }
    export PGDATABASE=tim4rec_quality
    psql -X -q -d postgres -c "CREATE DATABASE tim4rec_quality" &&
    psql -X -q -c "CREATE EXTENSION tim4rec" || return 1
    SQL_READY=1
}

run_sql() {
    local ds=$1 csv=$2 preset=$3 seed=$4 is_time=$5 label=$6 ocol=${7:-seq}
    local logf model="q_${label}_${seed}"
    logf=$OUTDIR/sql_${ds}_$(printf '%s' "$label" | tr -c 'A-Za-z0-9_.\n-' '_')_s${seed}.log
    model=$(printf '%s' "$model" | tr -c 'A-Za-z0-9_\n' '_')
    local opts
    opts=$(json_opts "$preset" "$is_time" "$seed" "$ocol")
    log "$ds $label seed $seed (sql): tim4rec_train('interactions', '$model', options => '$opts')  (log: $logf)"
    # one session: backend pid, train (timed), VmHWM of that backend; then evaluate
    if ! psql -X -q -v ON_ERROR_STOP=1 -At -F' ' >"$logf" 2>&1 <<SQL
\\echo PID
SELECT pg_backend_pid();
\\echo T0
SELECT extract(epoch FROM clock_timestamp());
SELECT 'TRAINROW', epochs_run, best_epoch, train_samples, seconds, users, items, interactions
  FROM tim4rec_train('interactions', '$model', options => '$opts'::jsonb);
\\echo T1
SELECT extract(epoch FROM clock_timestamp());
\\echo HWM
SELECT regexp_replace(l, '[^0-9]', '', 'g') FROM regexp_split_to_table(pg_read_file('/proc/' || pg_backend_pid() || '/status'), E'\\n') l WHERE l LIKE 'VmHWM%';
SQL
    then
        log "  FAILED: $(tail -5 "$logf")"
        return 1
    fi
    # evaluate in a fresh session (a new backend)
    if ! psql -X -q -v ON_ERROR_STOP=1 -At -F' ' >>"$logf" 2>&1 <<SQL
\\echo EVAL
SELECT model, split, metric, k, value FROM tim4rec_evaluate('$model');
SQL
    then
        log "  FAILED: $(tail -5 "$logf")"
        return 1
    fi
    # the per-epoch history (validation curve) from the catalog
    mkdir -p "$OUTDIR/hist"
    psql -X -At -F$'\t' -c "SELECT (e->>'epoch')::int, e->>'valid_ndcg10', e->>'loss', e->>'seconds'
                               FROM tim4rec_models, jsonb_array_elements(history) e
                              WHERE model_name = '$model' ORDER BY 1" >"$OUTDIR/hist/$model.tsv" 2>/dev/null
    CURVES+=("$ds|$OUTDIR/hist/$model.tsv=$label $seed")
    local t0 t1 hwm secs mib
    t0=$(awk '/^T0$/ { getline; print; exit }' "$logf")
    t1=$(awk '/^T1$/ { getline; print; exit }' "$logf")
    hwm=$(awk '/^HWM$/ { getline; print; exit }' "$logf")
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    mib=$(awk -v h="$hwm" 'BEGIN { printf "%.0f", h / 1024 }')
    # metrics: EVAL rows "model split metric k value"; model rows vs popularity rows
    local mm pm
    mm=$(awk '/^EVAL$/ { on = 1; next } on && $2 == "test" && tolower($1) !~ /pop/ { v[tolower($3) $4] = $5 }
        END { printf "%s %s %s %s %s %s %s %s %s", v["hr10"], v["ndcg10"], v["mrr10"], v["hr20"], v["ndcg20"], v["mrr20"], v["hr50"], v["ndcg50"], v["mrr50"] }' "$logf")
    pm=$(awk '/^EVAL$/ { on = 1; next } on && $2 == "test" && tolower($1) ~ /pop/ { v[tolower($3) $4] = $5 }
        END { printf "%s %s %s %s %s %s %s %s %s", v["hr10"], v["ndcg10"], v["mrr10"], v["hr20"], v["ndcg20"], v["mrr20"], v["hr50"], v["ndcg50"], v["mrr50"] }' "$logf")
    # tim4rec_train's row: TRAINROW epochs_run best_epoch train_samples seconds users items interactions
    local best run sps
    read -r run best sps <<<"$(awk '$1 == "TRAINROW" { printf "%s %s %.1f", $2, $3, ($5 > 0 ? $4 * $2 / $5 : 0); exit }' "$logf")"
    emit_row "$ds" "$label" "$seed" sql "$mm" "$best" "$run" "$secs" "$sps" "$mib"
    if [ "${label%% *}" = TiM4Rec ] && [ "$seed" = "${SEEDS%% *}" ]; then
        emit_row "$ds" "most-popular${label#TiM4Rec}" - sql "$pm" - - - - -
    fi
}

# ---------------------------------------------------------------- main
case "$QPATH" in
    core|both)
        make -s build/quality_core >"$OUTDIR/build.log" 2>&1 || {
            tail -20 "$OUTDIR/build.log"; log "cannot build build/quality_core"; exit 1; } ;;
esac

echo
echo "Quality: $NOW, $CPU, $(nproc) CPUs, THREADS=$THREADS, path $QPATH"
echo "epochs ${EPOCHS:-preset} patience ${PATIENCE:-preset} batch ${BATCH:-preset} seeds $SEEDS${EXTRA:+ options $EXTRA}"
echo
echo "| data set | model | seed | HR@10 | NDCG@10 | MRR@10 | HR@20 | NDCG@20 | MRR@20 | HR@50 | NDCG@50 | MRR@50 | best epoch | epochs run | train s | samples/s | peak MiB | path |"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
FAILS=0
for ds in $DATASETS; do
    csv=$DATA/$ds/interactions.csv
    if [ ! -r "$csv" ]; then
        log "SKIP $ds: $csv not found (data sets live in ../shared/data, never in the repository)"
        continue
    fi
    preset=$(preset_of "$ds")
    if [ "$QPATH" = sql ] || [ "$QPATH" = both ]; then
        if sql_setup; then
            test/scripts/load_interactions.sh --replace -f csv "$csv" >>"$OUTDIR/load.log" 2>&1 ||
                { log "load of $csv failed (see $OUTDIR/load.log)"; FAILS=$((FAILS + 1)); }
            case "$ds" in
                amazon*) orders=$TIE_ORDERS ;;
                *) orders=file ;;
            esac
            for order in $orders; do
                case "$order" in
                    item) ocol=item_id; tag=" [ties: item id]" ;;
                    *) ocol=seq; tag=" [ties: file order]" ;;
                esac
                first=1
                for seed in $SEEDS; do
                    run_sql "$ds" "$csv" "$preset" "$seed" true "TiM4Rec$tag" "$ocol" || FAILS=$((FAILS + 1))
                    if [ $first = 1 ] && [ "$ABLATION" = 1 ]; then
                        run_sql "$ds" "$csv" "$preset" "$seed" false "ablation(is_time=false)$tag" "$ocol" ||
                            FAILS=$((FAILS + 1))
                    fi
                    first=0
                done
            done
        else
            FAILS=$((FAILS + 1))
        fi
    fi
    if [ "$QPATH" = core ] || [ "$QPATH" = both ]; then
        first=1
        for seed in $SEEDS; do
            run_core "$ds" "$csv" "$preset" "$seed" true TiM4Rec || FAILS=$((FAILS + 1))
            if [ $first = 1 ] && [ "$ABLATION" = 1 ]; then
                run_core "$ds" "$csv" "$preset" "$seed" false "ablation(is_time=false)" || FAILS=$((FAILS + 1))
            fi
            first=0
        done
    fi
done
# validation curves of every arm, one picture per data set
# (test/quality/plot_curves.sh, gnuplot)
for ds in $DATASETS; do
    args=()
    for c in "${CURVES[@]}"; do
        [ "${c%%|*}" = "$ds" ] && args+=("${c#*|}")
    done
    [ ${#args[@]} -gt 0 ] || continue
    bash test/quality/plot_curves.sh "$OUTDIR/curves_$ds.svg" "$ds: validation NDCG@10 per epoch" "${args[@]}" &&
        [ -s "$OUTDIR/curves_$ds.svg" ] && echo "curves: $OUTDIR/curves_$ds.svg"
done
echo
echo "rows: $ROWS; logs: $OUTDIR"
[ $FAILS -eq 0 ]
