#!/usr/bin/env bash
# `make quality-warm`: warm start against a full retrain on Amazon Beauty
# split by time.  Not part of `make test`.
#
# One throwaway cluster (test/scripts/lib.sh), Beauty loaded as `make quality`
# does (test/scripts/load_interactions.sh, seq = file order = order_column).
# CUT = the smallest ts such that about 10% of the interactions have
# ts >= CUT; interactions_base = the rows with ts < CUT.  Arms (WARM_ARMS, in
# this order by default):
#   base  tim4rec_train('interactions_base', 'w_base', OPTS)      (the parent)
#   warm  tim4rec_train('interactions', 'w_warm_pN', {"init_from": "w_base",
#                       "patience": N, "threads": THREADS}) for each N in
#                       WARM_PATIENCE (every other option from w_base)
#   full  tim4rec_train('interactions', 'w_full', OPTS)            (reference)
# OPTS = amazon preset, seed, order_column seq, batch 256, patience 5,
# epochs 200, threads THREADS (the protocol of test/bench/QUALITY.md).
# Metrics: tim4rec_evaluate of each model in a fresh session (leave-one-out on
# its own table: warm and full are both evaluated on the full table);
# time = the whole tim4rec_train call.
#
# Variables: WARM_ARMS (default "base warm full"), WARM_PATIENCE (default "1 2":
# one warm arm per value), WARM_SCOPES (default "all"; "new all": one warm arm
# per options.warm_scope and patience), WARM_EXTRA (more warm options as a JSON
# fragment, e.g. '"training": "all_positions"'; the model names get WARM_TAG),
# WARM_EPOCHS (default 200), WARM_SEED (2020), THREADS (nproc),
# QUALITY_DATA (../shared/data), T4R_PG_BINDIR, T4R_SKIP_INSTALL=1,
# WARM_BASE_COPY (a file with w_base's catalog row, as written by
# \copy (SELECT * FROM tim4rec_models WHERE model_name = 'w_base') TO file:
# the base arm loads it instead of training).
# Output: table rows on stdout and in test/results/quality-warm/rows.md.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH

DATA=${QUALITY_DATA:-$REPO/../shared/data}
CSV=$DATA/amazon-beauty-5core/interactions.csv
ARMS=${WARM_ARMS:-base warm full}
WPAT=${WARM_PATIENCE:-1 2}
WSCOPES=${WARM_SCOPES:-all}
EPOCHS=${WARM_EPOCHS:-200}
SEED=${WARM_SEED:-2020}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
OUTDIR=$REPO/test/results/quality-warm
mkdir -p "$OUTDIR"
ROWS=$OUTDIR/rows.md
: >"$ROWS"
log() { printf '[quality-warm] %s\n' "$*" >&2; }

[ -r "$CSV" ] || { log "cannot read $CSV"; exit 1; }
if [ "${T4R_SKIP_INSTALL:-0}" != 1 ]; then
    t4r_ensure_packages >>"$OUTDIR/setup.log" 2>&1 && t4r_build_install >>"$OUTDIR/setup.log" 2>&1 ||
        { tail -20 "$OUTDIR/setup.log"; log "build/install failed"; exit 1; }
fi
trap 'T4R_KEEP_LOG=$OUTDIR/server.log t4r_cluster_stop' EXIT
trap 'exit 130' INT TERM
t4r_cluster_start "${WARM_PORT:-54341}" >>"$OUTDIR/setup.log" 2>&1 || { log "cluster start failed"; exit 1; }
export PGDATABASE=tim4rec_warm
psql -X -q -d postgres -c "CREATE DATABASE tim4rec_warm" && psql -X -q -c "CREATE EXTENSION tim4rec" || exit 1
test/scripts/load_interactions.sh --replace -f csv "$CSV" >"$OUTDIR/load.log" 2>&1 || { log "load failed"; exit 1; }

# the time cut: about 10% of the rows at or after it
read -r CUT TOTAL AFTER <<<"$(psql -X -At -F' ' <<'SQL'
WITH c AS (SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY ts) AS cut FROM interactions)
SELECT c.cut, count(*), count(*) FILTER (WHERE i.ts >= c.cut) FROM interactions i, c GROUP BY c.cut;
SQL
)"
psql -X -q -v ON_ERROR_STOP=1 <<SQL || exit 1
CREATE TABLE interactions_base AS SELECT * FROM interactions WHERE ts < $CUT;
CREATE INDEX ON interactions_base (user_id, ts);
ANALYZE interactions_base;
SQL
log "cut ts $CUT ($(date -u -d "@$CUT" +%F)): $AFTER of $TOTAL interactions at or after it"

opts() {  # args: patience
    echo "{\"preset\": \"amazon\", \"is_time\": true, \"seed\": $SEED, \"order_column\": \"seq\", \"epochs\": $EPOCHS, \"patience\": $1, \"batch_size\": 256, \"threads\": $THREADS}"
}
# a warm start repeats no option: the rest comes from the parent
warm_opts() {  # args: patience [warm_scope]
    echo "{\"init_from\": \"w_base\", \"patience\": $1, \"threads\": $THREADS${2:+, \"warm_scope\": \"$2\"}${WARM_EXTRA:+, $WARM_EXTRA}}"
}

NOW=$(date -u '+%Y-%m-%d %H:%M UTC')
CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
echo
echo "Warm start vs full retrain: $NOW, $CPU, $(nproc) CPUs, THREADS=$THREADS, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cut ts $CUT: $AFTER of $TOTAL interactions ($(awk -v a="$AFTER" -v t="$TOTAL" 'BEGIN { printf "%.1f", 100 * a / t }')%) at or after it"
echo
echo "| arm | table | options | HR@10 | NDCG@10 | MRR@10 | best epoch | epochs run | train s | load avg at start | validation NDCG@10 by epoch |"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|---|---|"

run_arm() {  # args: arm table model options
    local arm=$1 table=$2 model=$3 o=$4 logf=$OUTDIR/$3.log la
    la=$(cut -d' ' -f1 /proc/loadavg)
    log "$arm: tim4rec_train('$table', '$model', options => '$o')  (log: $logf)"
    if ! psql -X -q -v ON_ERROR_STOP=1 -At -F' ' >"$logf" 2>&1 <<SQL
\\echo T0
SELECT extract(epoch FROM clock_timestamp());
SELECT 'TRAINROW', epochs_run, best_epoch FROM tim4rec_train('$table', '$model', options => '$o'::jsonb);
\\echo T1
SELECT extract(epoch FROM clock_timestamp());
SQL
    then log "  FAILED: $(tail -5 "$logf")"; return 1; fi
    psql -X -q -v ON_ERROR_STOP=1 -At -F' ' >>"$logf" 2>&1 <<SQL || { log "  evaluate FAILED"; return 1; }
\\echo EVAL
SELECT model, split, metric, k, value FROM tim4rec_evaluate('$model');
SELECT 'HIST', string_agg(round((e->>'valid_ndcg10')::numeric, 4)::text, ' ' ORDER BY (e->>'epoch')::int)
FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = '$model' AND is_current;
SQL
    local t0 t1 secs m run best
    t0=$(awk '/^T0$/ { getline; print; exit }' "$logf")
    t1=$(awk '/^T1$/ { getline; print; exit }' "$logf")
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    m=$(awk '/^EVAL$/ { on = 1; next } on && $2 == "test" && tolower($1) !~ /pop/ { v[tolower($3) $4] = $5 }
        END { printf "%.4f | %.4f | %.4f", v["hr10"], v["ndcg10"], v["mrr10"] }' "$logf")
    read -r run best <<<"$(awk '$1 == "TRAINROW" { print $2, $3; exit }' "$logf")"
    hist=$(awk '$1 == "HIST" { $1 = ""; sub(/^ /, ""); print; exit }' "$logf")
    printf '| %s | %s | `%s` | %s | %s | %s | %s | %s | %s |\n' "$arm" "$table" "$o" "$m" "$best" "$run" "$secs" "$la" "$hist" |
        tee -a "$ROWS"
}

FAILS=0
for arm in $ARMS; do
    case $arm in
        base)
            if [ -n "${WARM_BASE_COPY:-}" ]; then
                # the base model of an earlier run (a COPY of its catalog row)
                psql -X -q -v ON_ERROR_STOP=1 -c "\\copy tim4rec_models FROM '$WARM_BASE_COPY'" ||
                    { log "loading $WARM_BASE_COPY failed"; FAILS=$((FAILS + 1)); }
                log "base: loaded from $WARM_BASE_COPY"
            else
                run_arm base interactions_base w_base "$(opts 5)" || FAILS=$((FAILS + 1))
                # for WARM_BASE_COPY in later runs
                psql -X -q -c "\\copy (SELECT * FROM tim4rec_models WHERE model_name = 'w_base') TO '$OUTDIR/w_base.copy'" ||
                    log "saving w_base failed"
            fi ;;
        warm)
            for sc in $WSCOPES; do
                for p in $WPAT; do
                    run_arm "warm (scope $sc, patience $p${WARM_EXTRA:+, $WARM_EXTRA})" interactions \
                        "w_warm_${sc}_p$p${WARM_TAG:-}" "$(warm_opts "$p" "$sc")" ||
                        FAILS=$((FAILS + 1))
                done
            done ;;
        full) run_arm full interactions w_full "$(opts 5)" || FAILS=$((FAILS + 1)) ;;
        *) log "unknown arm $arm"; FAILS=$((FAILS + 1)) ;;
    esac
done
echo
echo "rows: $ROWS; logs: $OUTDIR"
[ $FAILS -eq 0 ]
