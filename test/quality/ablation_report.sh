#!/usr/bin/env bash
# ablation_report.sh OUT - the report phase of test/quality/ablation.sh:
# from OUT/logs/<model>.log (tim4rec_train's row), OUT/ranks/<model>.tsv
# (per-user test ranks from tim4rec_evaluate_users), OUT/ranks/<model>.eval
# (tim4rec_evaluate's test NDCG@10) and OUT/hist/<model>.tsv (per-epoch
# validation NDCG@10 from the catalog's history) writes OUT/ablation.md:
# per data set and tie order the runs, the per-arm mean +- sd over seeds,
# the paired bootstrap of per-user test NDCG@10 between arms
# (test/quality/paired_bootstrap.awk; users paired on their mean over the
# seeds both arms have, plus the per-seed differences) and the validation
# curves (OUT/curves_<data set>_<order>.svg, test/quality/plot_curves.sh:
# gnuplot, installed from Debian's gnuplot-nox when missing).  Models are named a_<data set>_<order>_<arm>_<seed>.
# ABL_BOOT (2000 resamples), ABL_BOOT_SEED (12345).
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:?usage: ablation_report.sh OUT}
BOOT=${ABL_BOOT:-2000}
BOOT_SEED=${ABL_BOOT_SEED:-12345}
MD=$OUT/ablation.md
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"

# model name -> "dsid order arm seed"
# (an arm may end in _ts, the arm with tie_shuffle, or _pp, trained per prefix)
split_name() { echo "$1" | awk -F_ '{ s = $NF; a = $(NF-1); k = NF - 2
    if (a == "ts" || a == "pp") { a = $(NF-2) "_" a; k = NF - 3 }
    o = $k; d = $2; for (i = 3; i < k; i++) d = d "_" $i; print d, o, a, s }'; }

# every trained model (a TRAINROW in its log)
: >"$TMP/runs"
for f in "$OUT"/logs/a_*.log; do
    [ -f "$f" ] || continue
    m=$(basename "$f" .log)
    row=$(grep -m1 '^TRAINROW' "$f") || continue
    # shellcheck disable=SC2046
    set -- $(split_name "$m")
    ld=$(awk '$1 == "START" { print $3; exit }' "$f")
    # epoch cap and patience of the run (the OPTS line; 30 and 5 before it existed)
    cap=$(grep -m1 '^OPTS' "$f" | grep -o '"epochs": *[0-9]*' | grep -o '[0-9]*$')
    pat=$(grep -m1 '^OPTS' "$f" | grep -o '"patience": *[0-9]*' | grep -o '[0-9]*$')
    echo "$m $1 $2 $3 $4 ${row#TRAINROW } ${ld:--} ${cap:-30} ${pat:-5}" >>"$TMP/runs"
done
# columns: model dsid order arm seed epochs best valid hr ndcg mrr samples secs users items inter load cap patience
sort -k2,2 -k3,3 -k4,4 -k5,5n "$TMP/runs" -o "$TMP/runs"

# the arms' labels and comparisons: test/quality/arms.sh
# shellcheck source=arms.sh
. "$REPO/test/quality/arms.sh"
# the data-set variants' labels: test/quality/transforms.sh
# shellcheck source=transforms.sh
. "$REPO/test/quality/transforms.sh"
order_label() { case $1 in item) echo 'ties: item id (order_column item_id)' ;; *) echo 'ties: file order (order_column seq)' ;; esac; }

# per-user test NDCG@10 of a model: user <TAB> value
user_ndcg() { awk -F'\t' '{ r = $2 + 0; printf "%s\t%.10f\n", $1, (r <= 10 ? log(2) / log(r + 1) : 0) }' "$OUT/ranks/$1.tsv"; }

: >"$TMP/summary"
{
# the check: mean of per-user NDCG@10 = tim4rec_evaluate's figure
worst=0; nchk=0
for r in "$OUT"/ranks/a_*.tsv; do
    [ -f "$r" ] || continue
    m=$(basename "$r" .tsv)
    [ -f "$OUT/ranks/$m.eval" ] || continue
    ev=$(awk '$1 == "EVAL" { print $2 }' "$OUT/ranks/$m.eval")
    mu=$(user_ndcg "$m" | awk -F'\t' '{ s += $2; n++ } END { printf "%.12f", s / n }')
    worst=$(awk -v a="$mu" -v b="$ev" -v w="$worst" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "%.3g", (d > w ? d : w) }')
    nchk=$((nchk + 1))
done
echo
echo "Check: for $nchk models the mean over users of the per-user test NDCG@10 (from tim4rec_evaluate_users) equals tim4rec_evaluate's test NDCG@10 to $worst (largest absolute difference; values printed to 10 digits)."
for key in $(awk '{ print $2 "/" $3 }' "$TMP/runs" | uniq); do
    ds=${key%/*}; order=${key#*/}
    awk -v d="$ds" -v o="$order" '$2 == d && $3 == o' "$TMP/runs" >"$TMP/sel"
    name=${ds//_/-}     # the data set's name (names use '-', model names '_')
    echo
    sfx=$(tf_suffix "$name")
    if [ -n "$sfx" ]; then
        base=$(tf_base "$name")
        label=$(tf_field "$sfx" 4)
        echo "#### $name: $base ${label//NAME/$base}, $(order_label "$order")"
    else case $name in
        amazon*) echo "#### $name, $(order_label "$order")" ;;
        synth-timegap) echo "#### synth-timegap: positive control (test/quality/gen_timegap.awk: the next item depends on the last two items and the gap into the last one; $(order_label "$order"))" ;;
        synth-gap) echo "#### synth-gap (test/quality/gen_synth.awk: the gap into the target decides it, which no model sees; $(order_label "$order"))" ;;
        *) echo "#### $name ($(order_label "$order"))" ;;
    esac
    fi
    echo
    r1=$(head -1 "$TMP/sel")
    # shellcheck disable=SC2086
    set -- $r1
    echo "${14} users, ${15} items, ${16} interactions after the filter; ${12} training targets per epoch."
    echo
    echo "| arm | seed | epochs run | best epoch | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | train s | load at start |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    while read -r m _ _ arm seed ep best val hr nd mr _ secs _ _ _ ld cap pat; do
        # stopped by the epoch cap, not by early stopping
        [ "$ep" -ge "$cap" ] && [ "$best" -gt $((ep - pat)) ] && ep="$ep (cap)"
        printf '| %s | %s | %s | %s | %.4f | %.4f | %.4f | %.4f | %.0f | %s |\n' \
            "$(arm_label "$arm")" "$seed" "$ep" "$best" "$val" "$hr" "$nd" "$mr" "$secs" "$ld"
    done <"$TMP/sel"
    echo
    echo "| arm | seeds | test NDCG@10 | test HR@10 | test MRR@10 | valid NDCG@10 |"
    echo "|---|--:|--:|--:|--:|--:|"
    for arm in $(arm_names); do
        awk -v a="$arm" '$4 == a' "$TMP/sel" >"$TMP/arm"
        [ -s "$TMP/arm" ] || continue
        awk -v lab="$(arm_label "$arm")" '
            function ms(c,   i, m, s) { m = 0; for (i = 1; i <= n; i++) m += v[i, c]; m /= n
                s = 0; for (i = 1; i <= n; i++) s += (v[i, c] - m) ^ 2
                return n > 1 ? sprintf("%.4f +- %.4f", m, sqrt(s / (n - 1))) : sprintf("%.4f", m) }
            { n++; v[n, 1] = $10; v[n, 2] = $9; v[n, 3] = $11; v[n, 4] = $8 }
            END { printf "| %s | %d | %s | %s | %s | %s |\n", lab, n, ms(1), ms(2), ms(3), ms(4) }' "$TMP/arm"
    done
    echo
    echo "(mean +- sample sd over the seeds.)"
    # paired effects
    pairs=""
    for p in $(arm_pairs); do
        a=${p%:*}; b=${p#*:}
        sa=$(awk -v x="$a" '$4 == x { print $5 }' "$TMP/sel" | sort -n)
        sb=$(awk -v x="$b" '$4 == x { print $5 }' "$TMP/sel" | sort -n)
        common=$(comm -12 <(echo "$sa") <(echo "$sb") | tr '\n' ' ')
        common=${common% }
        [ -n "$common" ] || continue
        pairs="$pairs $a:$b:${common// /,}"
    done
    if [ -n "$pairs" ]; then
        echo
        echo "Paired effect on test NDCG@10 (A - B; users paired; per user the mean over the seeds both arms have; $BOOT bootstrap resamples of the users, seed $BOOT_SEED, 95% percentile interval; p(<=0) = share of resamples with a difference <= 0):"
        echo
        echo "| A - B | seeds | users | A | B | difference | 95% interval | p(<=0) | per-seed differences |"
        echo "|---|--:|--:|--:|--:|--:|--:|--:|---|"
        for p in $pairs; do
            a=${p%%:*}; rest=${p#*:}; b=${rest%%:*}; seeds=${rest#*:}
            : >"$TMP/ua"; : >"$TMP/ub"; per=""; ok=1
            for s in ${seeds//,/ }; do
                ma=a_${ds}_${order}_${a}_$s; mb=a_${ds}_${order}_${b}_$s
                if [ ! -s "$OUT/ranks/$ma.tsv" ] || [ ! -s "$OUT/ranks/$mb.tsv" ]; then ok=0; break; fi
                user_ndcg "$ma" >>"$TMP/ua"; user_ndcg "$mb" >>"$TMP/ub"
                d=$(awk -F'\t' 'FNR == NR { a[$1] = $2; next } ($1 in a) { s += a[$1] - $2; n++ } END { printf "%+.4f", s / n }' \
                      <(user_ndcg "$ma") <(user_ndcg "$mb"))
                per="$per $s: $d,"
            done
            if [ $ok = 0 ]; then
                echo "| $a - $b | ${seeds//,/ } | - | - | - | - | per-user ranks missing | - | - |"
                continue
            fi
            awk -F'\t' 'FNR == NR { sa[$1] += $2; na[$1]++; next } { sb[$1] += $2; nb[$1]++ }
                END { for (u in sa) if (u in sb) printf "%s\t%.10f\t%.10f\n", u, sa[u] / na[u], sb[u] / nb[u] }' \
                "$TMP/ua" "$TMP/ub" | sort >"$TMP/paired"
            res=$(awk -v B="$BOOT" -v seed="$BOOT_SEED" -f "$REPO/test/quality/paired_bootstrap.awk" "$TMP/paired")
            echo "$res" | tr ' ' '\n' | awk -F= -v a="$a" -v b="$b" -v s="${seeds//,/ }" -v per="${per%,}" '
                { v[$1] = $2 }
                END { printf "| %s - %s | %s | %d | %.4f | %.4f | **%+.4f** | [%+.4f, %+.4f] | %.3f |%s |\n",
                             a, b, s, v["n"], v["mean_a"], v["mean_b"], v["diff"], v["lo"], v["hi"], v["p_le0"], per }'
            echo "$res" | tr ' ' '\n' | awk -F= -v d="$name" -v o="$order" -v a="$a" -v b="$b" -v s="${seeds//,/ }" '
                { v[$1] = $2 }
                END { verdict = v["lo"] > 0 ? "A better" : (v["hi"] < 0 ? "B better" : "no difference shown")
                      printf "| %s | %s | %s - %s | %s | %d | %+.4f | [%+.4f, %+.4f] | %s |\n",
                             d, o, a, b, s, v["n"], v["diff"], v["lo"], v["hi"], verdict }' >>"$TMP/summary"
        done
    fi
    # curves (test/quality/plot_curves.sh)
    svg=$OUT/curves_${ds}_${order}.svg
    args=()
    while read -r m _ _ arm seed _; do
        args+=("$OUT/hist/$m.tsv=$arm $seed")
    done <"$TMP/sel"
    rm -f "$svg"
    bash "$REPO/test/quality/plot_curves.sh" "$svg" "$name ($order order): validation NDCG@10 per epoch" "${args[@]}" >&2
    [ -s "$svg" ] && { echo; echo "![validation NDCG@10 per epoch, $name, $order order](ablation/$(basename "$svg"))"; }
done
} >"$TMP/sections"
{
echo "<!-- generated by test/quality/ablation_report.sh from $OUT, $(date -u '+%Y-%m-%d %H:%M UTC') -->"
echo
echo "Summary: paired effect on test NDCG@10 per data set (A - B, users paired on their mean over the common seeds, 95% paired-bootstrap interval):"
echo
echo "| data set | ties | A - B | seeds | users | difference | 95% interval | reading |"
echo "|---|---|---|---|--:|--:|--:|---|"
cat "$TMP/summary"
cat "$TMP/sections"
} >"$MD"
echo "report: $MD" >&2
