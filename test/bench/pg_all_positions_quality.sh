#!/usr/bin/env bash
# pg_all_positions_quality.sh - test metrics after early stopping of
# training "all_positions" vs "prefixes" (same robust model) vs the official
# model, through SQL (tim4rec_train) on a throwaway cluster of the installed
# extension (T4R_PG_BINDIR as test/scripts/lib.sh).
#
#   T4R_APQ_DATA     data set directory under ../shared/data (default ml-100k;
#                    its interactions.csv, loaded with test/scripts/load_interactions.sh)
#   T4R_APQ_SEEDS    seeds (default "2020")
#   T4R_APQ_ARMS     arms (default "official_prefixes robust_prefixes robust_all_positions")
#   T4R_APQ_OPTIONS  extra options shared by every arm (JSON members), default
#                    '"preset": "movielens", "max_seq_len": 50, "batch_size": 256, "patience": 3, "epochs": 15'
#   T4R_APQ_PARALLEL arms run at the same time (default 3, one thread each), so
#                    that they share the machine's load
#   T4R_APQ_ORDER    order_column (default none; "seq" = file order)
#
# Every arm: leave-one-out, early stopping on validation NDCG@10, test
# metrics of the best epoch (what tim4rec_train returns); the per-epoch
# seconds come from the catalog's history.  Prints a markdown table; appends
# it to test/bench/QUALITY.md unless T4R_BENCH_NO_APPEND=1.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH
DATA=${T4R_APQ_DATA:-ml-100k}
SEEDS=${T4R_APQ_SEEDS:-2020}
ARMS=${T4R_APQ_ARMS:-official_prefixes robust_prefixes robust_all_positions}
COMMON=${T4R_APQ_OPTIONS:-'"preset": "movielens", "max_seq_len": 50, "batch_size": 256, "patience": 3, "epochs": 15'}
PAR=${T4R_APQ_PARALLEL:-3}
ORDER=${T4R_APQ_ORDER:-}
TMP=$(mktemp -d)
trap 't4r_cluster_stop; rm -rf "$TMP"' EXIT
t4r_cluster_start "${T4R_APQ_PORT:-54342}" >"$TMP/cluster.log" 2>&1 || { cat "$TMP/cluster.log"; exit 1; }
export PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION tim4rec"
test/scripts/load_interactions.sh --replace -f csv "$REPO/../shared/data/$DATA/interactions.csv" >"$TMP/load.log" 2>&1 ||
    { cat "$TMP/load.log"; exit 1; }
ordopt=""
[ -n "$ORDER" ] && ordopt=", \"order_column\": \"$ORDER\""

arm_opts() {
    case $1 in
        official_prefixes) echo '"time_features": "official"' ;;
        robust_prefixes) echo '"time_features": "robust"' ;;
        robust_all_positions) echo '"time_features": "robust", "training": "all_positions"' ;;
        notime_all_positions) echo '"is_time": false, "training": "all_positions"' ;;
        notime_prefixes) echo '"is_time": false' ;;
        *) echo "unknown arm $1" >&2; return 1 ;;
    esac
}

run_arm() {    # arm seed
    local a=$1 s=$2 o
    o=$(arm_opts "$a")
    psql -X -q -At -F' ' -v ON_ERROR_STOP=1 >"$TMP/$a.$s.log" 2>&1 <<SQL
SET client_min_messages = warning;
SELECT 'ROW', '$a', $s, epochs_run, best_epoch, valid_ndcg10, test_hr10, test_ndcg10, test_mrr10, train_samples, seconds
  FROM tim4rec_train('interactions', '${a}_$s', 'user_id', 'item_id', 'ts',
       '{$COMMON, "threads": 1, "seed": $s$ordopt, $o}'::jsonb);
SELECT 'EPOCH', '$a', $s, avg((e->>'seconds')::float8) FROM tim4rec_models, jsonb_array_elements(history) e
 WHERE model_name = '${a}_$s' GROUP BY 1, 2, 3;
SQL
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), data $DATA, options {$COMMON$ordopt}"
jobs_run=0
for s in $SEEDS; do
    for a in $ARMS; do
        run_arm "$a" "$s" &
        jobs_run=$((jobs_run + 1))
        if [ "$jobs_run" -ge "$PAR" ]; then
            wait -n || true
            jobs_run=$((jobs_run - 1))
        fi
    done
done
wait || true
cat "$TMP"/*.log | grep -E '^(ROW|EPOCH)' >"$TMP/rows" || true
grep -h ERROR "$TMP"/*.log >&2 || true
{
    echo
    echo "#### all_positions vs prefixes, quality through SQL - $DATA, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs shared with other agents"
    echo
    echo "Command: \`T4R_APQ_DATA=$DATA T4R_APQ_SEEDS=\"$SEEDS\" make bench-all-positions-quality\`; common options \`{$COMMON$ordopt}\`, one thread per arm, $PAR arms at a time. Test metrics of the best validation epoch."
    echo
    echo "| arm | seed | epochs run | best epoch | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | targets/epoch | mean epoch s | call s |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    awk '$1 == "EPOCH" { ep[$2 " " $3] = $4 }
         $1 == "ROW" { row[++n] = $0; key[n] = $2 " " $3 }
         END { for (i = 1; i <= n; i++) { split(row[i], f, " ");
               printf "| %s | %s | %d | %d | %.4f | %.4f | %.4f | %.4f | %d | %.1f | %.0f |\n",
                      f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], ep[key[i]], f[11] } }' "$TMP/rows" | sort
} | tee "$TMP/table.md"
if [ "${T4R_BENCH_NO_APPEND:-0}" != 1 ]; then
    cat "$TMP/table.md" >>test/bench/QUALITY.md
fi
