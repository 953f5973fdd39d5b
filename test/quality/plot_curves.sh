#!/usr/bin/env bash
# plot_curves.sh OUT.svg|OUT.png TITLE FILE=LABEL ... - validation curves with gnuplot
# (Debian gnuplot-nox; installed when missing, as test/run_tests.sh installs
# its packages).  Each FILE holds "epoch<TAB>valid_ndcg10[<TAB>...]" lines
# (the catalog's per-epoch history, see test/quality/ablation.sh and
# run_quality.sh); one line per FILE, titled LABEL.  Colours by the first
# word of LABEL, dash pattern by the order of appearance within it.
# Exit status 0 also when gnuplot is unavailable (a message says so).
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
svg=$1 title=$2
shift 2
if ! command -v gnuplot >/dev/null 2>&1; then
    t4r_log "installing gnuplot-nox (Debian) for the validation curves"
    { t4r_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox ||
      { t4r_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        t4r_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox; }
    } >/dev/null 2>&1 || { t4r_log "gnuplot-nox could not be installed: no curves"; exit 0; }
fi
colours=('#1b9e77' '#d95f02' '#7570b3' '#e7298a' '#66a61e' '#e6ab02' '#a6761d' '#666666')
declare -A col dash
nc=0
plot=""
for fl in "$@"; do
    f=${fl%%=*} lab=${fl#*=}
    [ -s "$f" ] || continue
    g=${lab%% *}
    if [ -z "${col[$g]:-}" ]; then col[$g]=${colours[$((nc % 8))]}; nc=$((nc + 1)); dash[$g]=0; fi
    dash[$g]=$((dash[$g] + 1))
    plot="$plot${plot:+, }'$f' using 1:2 with linespoints lw 1.5 pt 7 ps 0.4 lc rgb '${col[$g]}' dt ${dash[$g]} title '$lab'"
done
[ -n "$plot" ] || exit 0
term="svg size 720,420 noenhanced font 'sans,11' background '#ffffff'"
case $svg in *.png) term="pngcairo size 720,420 noenhanced font 'sans,10' background '#ffffff'" ;; esac
gnuplot <<GP || { t4r_log "gnuplot failed for $svg"; exit 0; }
set terminal $term
set output '$svg'
set title '$title'
set xlabel 'epoch'
set ylabel 'validation NDCG@10'
set key outside right
set grid
plot $plot
GP
