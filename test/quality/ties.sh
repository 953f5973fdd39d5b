#!/usr/bin/env bash
# ties.sh - `make quality-ties`: tie_shuffle against the published training
# on Amazon Beauty in file order (test/bench/QUALITY.md, "Shuffling equal
# timestamps in training"), through test/quality/ablation.sh:
#   fast      is_time=false, all_positions, the ablation's settings (batch
#             256, patience 5, at most 30 epochs): arms notime_ts, notime
#   defaults  the amazon preset as a user gets it (batch 2048, lr 0.001,
#             patience 20, official time path, per-prefix training), with
#             tie_shuffle (official_ts, the preset's default since it was
#             chosen) and without (official, the published training)
#   decay     the same protocol with tie_shuffle, with weight_decay 1
#             (offwd1_ts) and without (official_ts); TIES_DECAY_ARMS adds
#             the other arms of test/bench/QUALITY.md's "Regularising"
#             section (offwd01_ts offlrd_ts offbs512_ts offnl1_ts) or of
#             "A moving average of the weights" (offwd1ema_ts offema_ts)
#   auto      the same protocol, the amazon preset's defaults: tie_shuffle
#             "auto" with the preset's weight_decay and refit
#             (offwd1rf_auto; with a consistent order it trains three
#             trials), against tie_shuffle true (offwd1rf_ts, the previous
#             default); run it with TIES_ORDERS="file item" (README "Equal
#             timestamps")
# Each part: trainings (TIES_PARALLEL at a time, one thread each), per-user
# ranks, paired bootstrap, tables and validation curves in
# $TIES_OUT/{fast,defaults,decay,auto}/ablation.md.  Knobs: TIES_PARTS ("fast
# defaults decay"), TIES_SEEDS ("2020 2021 2022"), TIES_DATASETS
# (amazon-beauty-5core), TIES_ORDERS (file), TIES_OUT
# (test/results/ties), TIES_PARALLEL (2), and ablation.sh's T4R_PG_BINDIR,
# T4R_SKIP_INSTALL, ABL_CLUSTER_DIR (kept and resumed per part: its value
# with /fast, /defaults, /decay or /auto appended).
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
OUTB=${TIES_OUT:-$REPO/test/results/ties}
rc=0
for part in ${TIES_PARTS:-fast defaults decay}; do
    case $part in
        fast) arms="notime_ts notime" opts='"batch_size": 256, "patience": 5, "epochs": 30, "max_seq_len": 50' ;;
        defaults) arms="official_ts official" opts='"patience": 20' ;;
        decay) arms="offwd1_ts official_ts ${TIES_DECAY_ARMS:-}" opts='"patience": 20' ;;
        auto) arms="offwd1rf_auto offwd1rf_ts" opts='"patience": 20' ;;
        *) echo "ties.sh: unknown part $part (fast, defaults, decay, auto)" >&2; exit 2 ;;
    esac
    ABL_OUT=$OUTB/$part ABL_ARMS=$arms ABL_OPTIONS=$opts \
    ABL_DATASETS=${TIES_DATASETS:-amazon-beauty-5core} ABL_TIE_ORDERS=${TIES_ORDERS:-file} \
    ABL_SEEDS=${TIES_SEEDS:-2020 2021 2022} ABL_PARALLEL=${TIES_PARALLEL:-2} \
    ABL_CLUSTER_DIR=${ABL_CLUSTER_DIR:+$ABL_CLUSTER_DIR/$part} \
        bash test/quality/ablation.sh || rc=1
    T4R_SKIP_INSTALL=1
    export T4R_SKIP_INSTALL
done
exit $rc
