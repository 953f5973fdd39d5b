#!/bin/bash
# tie_average.sh - does averaging over orders of equal timestamps help a
# trained model?  (test/bench/QUALITY.md, "Averaging over orders of equal
# timestamps".)  For each model of an ablation cluster (test/quality/
# ablation.sh with ABL_CLUSTER_DIR), and each K of TA_KS, a copy of the model
# with "tie_average": K: the same weights (tim4rec_export / tim4rec_import),
# the same source table and order column.  Then per K: validation NDCG@10
# and a paired bootstrap over users of copy minus model (validation); with
# TA_TEST_K set (chosen on validation), the test figures of that K.
#
#   ABL_CLUSTER_DIR=/tmp/abl ABL_PORT=54351 TA_MODELS="a_amazon_beauty_5core_file_official_ts_2020" \
#     TA_KS="4 8 16" TA_TEST_K=8 make quality-tie-average
#
# TA_MODELS defaults to every model of the cluster whose name matches
# TA_MATCH (default ^a_amazon_beauty_5core_).  Output: markdown on stdout,
# per-user files under TA_OUT (default test/results/tie_average).
# The copies' source is set by updating the catalog row: run it as the
# cluster's superuser, on a throwaway ablation cluster only.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${ABL_CLUSTER_DIR:?set ABL_CLUSTER_DIR (an ablation cluster, test/quality/ablation.sh)}"
ABL_PORT=${ABL_PORT:-54351}    # as test/quality/ablation.sh
TA_KS=${TA_KS:-"4 8 16"}
TA_MATCH=${TA_MATCH:-'^a_amazon_beauty_5core_'}
TA_OUT=${TA_OUT:-test/results/tie_average}
TA_TEST_K=${TA_TEST_K:-}
B=${TA_B:-2000}
export PGHOST="$ABL_CLUSTER_DIR" PGPORT="$ABL_PORT" PGUSER=${PGUSER:-postgres} PGDATABASE=${PGDATABASE:-postgres}
q() { psql -X -At -v ON_ERROR_STOP=1 "$@"; }
mkdir -p "$TA_OUT"

models=${TA_MODELS:-$(q -c "SELECT model_name FROM tim4rec_models WHERE is_current AND model_name ~ '$TA_MATCH' AND model_name !~ '^ta[0-9]+_' ORDER BY 1")}
[ -n "$models" ] || { echo "tie_average.sh: no model matches" >&2; exit 2; }

copy_of() { echo "ta$2_$1"; }
make_copy() {		# model K
    local m=$1 k=$2 c
    c=$(copy_of "$m" "$k")
    if [ -z "$(q -c "SELECT 1 FROM tim4rec_models WHERE model_name = '$c'")" ]; then
        q -c "SELECT tim4rec_import('$c', tim4rec_export('$m'), tim4rec_item_ids('$m'),
                (SELECT config - 'order_column' - 'threads' - 'init_from' || jsonb_build_object('tie_average', $k)
                   FROM tim4rec_models WHERE model_name = '$m' AND is_current))" >/dev/null
        q -c "UPDATE tim4rec_models t SET source_schema = s.source_schema, source_table = s.source_table,
                     user_column = s.user_column, item_column = s.item_column, time_column = s.time_column,
                     order_column = s.order_column
                FROM tim4rec_models s
               WHERE s.model_name = '$m' AND s.is_current AND t.model_name = '$c'" >/dev/null
    fi
}
ndcg() { q -c "SELECT round(ndcg::numeric, 5) FROM tim4rec_evaluate_wide('$1', ARRAY[10]) WHERE model = 'tim4rec' AND split = '$2'"; }
# NDCG@10 / HR@10 / MRR@10 on test
test_figs() { q -c "SELECT round(ndcg::numeric, 4) || ' / ' || round(hr::numeric, 4) || ' / ' || round(mrr::numeric, 4)
                      FROM tim4rec_evaluate_wide('$1', ARRAY[10]) WHERE model = 'tim4rec' AND split = 'test'"; }
# the paired bootstrap of a pairs file as table cells: difference | interval | p(<=0)
boot() {
    awk -v B="$B" -v seed=12345 -f test/quality/paired_bootstrap.awk "$1" |
        awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
               printf "%+.4f | [%+.4f, %+.4f] | %.3f\n", v["diff"], v["lo"], v["hi"], v["p_le0"] }'
}
# per user: NDCG@10 of A and of B on a split (ranks are 1-based)
pairs() {
    q -F $'\t' -c "SELECT a.user_id, CASE WHEN a.rank <= 10 THEN 1 / log(2, a.rank + 1) ELSE 0 END,
                          CASE WHEN b.rank <= 10 THEN 1 / log(2, b.rank + 1) ELSE 0 END
                     FROM tim4rec_evaluate_users('$1', '$3') a JOIN tim4rec_evaluate_users('$2', '$3') b USING (user_id)"
}

echo "| model | valid NDCG@10, K = 1 |$(for k in $TA_KS; do printf ' K = %s |' "$k"; done)"
echo "|---|--:|$(for k in $TA_KS; do printf -- '--:|'; done)"
for m in $models; do
    row="| $m | $(ndcg "$m" valid) |"
    for k in $TA_KS; do
        make_copy "$m" "$k"
        row="$row $(ndcg "$(copy_of "$m" "$k")" valid) |"
    done
    echo "$row"
done
echo
echo "Paired bootstrap over users, validation NDCG@10, copy minus model (B = $B, seed 12345):"
echo
echo "| model | K | difference | 95% interval | p(<=0) |"
echo "|---|--:|--:|--:|--:|"
for m in $models; do
    for k in $TA_KS; do
        f="$TA_OUT/valid_${m}_$k.tsv"
        pairs "$(copy_of "$m" "$k")" "$m" valid >"$f"
        echo "| $m | $k | $(boot "$f") |"
    done
done
if [ -n "$TA_TEST_K" ]; then
    echo
    echo "Test, K = $TA_TEST_K against K = 1 (NDCG@10 HR@10 MRR@10), and the paired difference of NDCG@10:"
    echo
    echo "| model | K = 1 | K = $TA_TEST_K | difference | 95% interval |"
    echo "|---|---|---|--:|--:|"
    for m in $models; do
        c=$(copy_of "$m" "$TA_TEST_K")
        f="$TA_OUT/test_${m}_$TA_TEST_K.tsv"
        pairs "$c" "$m" test >"$f"
        echo "| $m | $(test_figs "$m") | $(test_figs "$c") | $(boot "$f" | cut -d'|' -f1-2 | sed 's/ *$//') |"
    done
fi
