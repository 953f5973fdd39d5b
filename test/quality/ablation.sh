#!/usr/bin/env bash
# ablation.sh - issue 12 part 3: does the time path help?  `make quality-ablation`.
#
# Arms, every one trained through SQL (tim4rec_train) on the same split of
# the same table, with the same common options, early stopping on
# validation NDCG@10 and the best epoch's weights kept:
#   robust   "time_features": "robust",  "training": "all_positions"
#   notime   "is_time": false,           "training": "all_positions"
#   official "time_features": "official" (per-prefix training: the official
#            time path is not causal, so all_positions is refused for it)
# Then per user: the rank of the held-out test item (tim4rec_evaluate_users,
# the same ranking as tim4rec_evaluate), a paired bootstrap over users of the
# difference of test NDCG@10 between arms (test/quality/paired_bootstrap.awk),
# per-arm mean +- sd over seeds, and the validation curves (per-epoch
# validation NDCG@10 from the catalog's history) drawn with gnuplot.
#
# Phases (ABL_PHASES, default "train eval report"):
#   train   train every (data set, tie order, arm, seed) not yet in the
#           catalog, ABL_PARALLEL at a time (default 2, ABL_THREADS = 1
#           thread each), cheapest data sets first
#   eval    per-user test ranks of every trained model -> $OUT/ranks/*.tsv,
#           per-epoch history -> $OUT/hist/*.tsv
#   report  tables (markdown, $OUT/ablation.md), bootstrap, curves ($OUT/*.svg)
#
# Knobs (environment; ABL_DATASETS, ABL_SEEDS and ABL_TIE_ORDERS fall back
# on make quality's QUALITY_DATASETS, QUALITY_SEEDS and QUALITY_TIE_ORDERS):
#   ABL_DATASETS   default "synth-timegap ml-100k lastfm-2k-tags ml-latest-small amazon-beauty-5core"
#                  synth-timegap = test/quality/gen_timegap.awk (ABL_SYNTH_USERS
#                  users, 600): the next item depends on the previous items
#                  and a gap the model sees (test/core/test_synthetic.c's
#                  design), the positive control; synth-gap =
#                  test/quality/gen_synth.awk with ABL_SYNTH_USERS users (its
#                  deciding gap leads into the target, so no model can read
#                  it: not a positive control); the others from ../shared/data;
#                  <name>-qgap: <name> with every event at the time of its
#                  user's next event (test/quality/qgap.awk), so the time
#                  path sees the gap to the event it predicts (same order,
#                  same split); <name>-drop1: <name> without each user's last
#                  event (test/quality/drop1.awk; no second 5-core filter), so
#                  its test target is <name>'s validation target
#   ABL_TIE_ORDERS for Amazon data sets: "file item" (default); file = order
#                  column seq (file order), item = order column item_id.
#                  Other data sets: file order.
#   ABL_ARMS       default "robust notime official"; every arm and its
#                  options: test/quality/arms.sh (each names its tie_shuffle
#                  and weight_decay, so the presets' defaults never decide an
#                  arm, except offwd1rf_auto, the amazon preset's default
#                  as a user gets it; notime_pp is is_time=false trained per prefix, as the
#                  official arm, so official - notime_pp isolates the time path)
#   ABL_SEEDS      default "2020 2021 2022"
#   ABL_OFFICIAL_SEEDS  seeds of the (expensive, per-prefix) official arm
#                  (default: ABL_SEEDS); ABL_OFFICIAL_DATASETS: its data sets
#                  (default: ABL_DATASETS)
#   ABL_OPTIONS    common JSON members, default
#                  '"batch_size": 256, "patience": 5, "epochs": 30, "max_seq_len": 50'
#                  (the preset: amazon for Amazon/Last.fm, movielens for
#                  MovieLens and the synthetic set)
#   ABL_PARALLEL, ABL_THREADS, ABL_BOOT (bootstrap resamples, 2000),
#   ABL_BOOT_SEED (12345), ABL_OUT (test/results/ablation),
#   ABL_CLUSTER_DIR  keep the cluster (and its trained models) in this
#                  directory and reuse it on the next call (resumable runs);
#                  default: a throwaway cluster
#   ABL_PORT (54351), T4R_PG_BINDIR, T4R_SKIP_INSTALL=1 (skip build/install)
# Settings are never chosen on test: the test figures are only reported.
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH

DATA=${QUALITY_DATA:-$REPO/../shared/data}
DATASETS=${ABL_DATASETS:-${QUALITY_DATASETS:-synth-timegap ml-100k lastfm-2k-tags ml-latest-small amazon-beauty-5core}}
TIE_ORDERS=${ABL_TIE_ORDERS:-${QUALITY_TIE_ORDERS:-file item}}
ARMS=${ABL_ARMS:-robust notime official}
SEEDS=${ABL_SEEDS:-${QUALITY_SEEDS:-2020 2021 2022}}
OFF_SEEDS=${ABL_OFFICIAL_SEEDS:-$SEEDS}
OFF_DATASETS=${ABL_OFFICIAL_DATASETS:-$DATASETS}
COMMON=${ABL_OPTIONS:-'"batch_size": 256, "patience": 5, "epochs": 30, "max_seq_len": 50'}
PAR=${ABL_PARALLEL:-2}
THREADS=${ABL_THREADS:-1}
OUT=${ABL_OUT:-$REPO/test/results/ablation}
PHASES=${ABL_PHASES:-train eval report}
PORT=${ABL_PORT:-54351}
SYNTH_USERS=${ABL_SYNTH_USERS:-600}
mkdir -p "$OUT/logs" "$OUT/ranks" "$OUT/hist"

log() { printf '[ablation %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# the arms' options: test/quality/arms.sh
# shellcheck source=arms.sh
. "$REPO/test/quality/arms.sh"
# the data-set variants (<name>-qgap, <name>-drop1): test/quality/transforms.sh
# shellcheck source=transforms.sh
. "$REPO/test/quality/transforms.sh"
for a in $ARMS; do
    arm_known "$a" || { log "unknown arm $a (the arms: $(arm_names | tr '\n' ' '))"; exit 2; }
done
has_phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------------ cluster
cluster_up() {
    if [ -n "${ABL_CLUSTER_DIR:-}" ]; then
        local run=() data=$ABL_CLUSTER_DIR/data
        if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); PGUSER=postgres; else PGUSER=$(id -un); fi
        if [ ! -d "$data" ]; then
            mkdir -p "$ABL_CLUSTER_DIR" && chmod 755 "$ABL_CLUSTER_DIR"
            [ "$(id -u)" -eq 0 ] && chown postgres "$ABL_CLUSTER_DIR"
            "${run[@]}" "$T4R_PG_BINDIR/initdb" -D "$data" -A trust -U "$PGUSER" -E UTF8 --no-locale \
                >"$ABL_CLUSTER_DIR/initdb.log" 2>&1 || { cat "$ABL_CLUSTER_DIR/initdb.log" >&2; return 1; }
        fi
        if [ ! -f "$data/postmaster.pid" ]; then
            "${run[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$data" -w -t 60 -l "$ABL_CLUSTER_DIR/server.log" \
                -o "-c listen_addresses='' -k $ABL_CLUSTER_DIR -p $PORT -c fsync=off -c max_connections=40 -c shared_buffers=128MB" \
                start >/dev/null || { cat "$ABL_CLUSTER_DIR/server.log" >&2; return 1; }
        fi
        export PGHOST=$ABL_CLUSTER_DIR PGPORT=$PORT PGUSER
    else
        # a throwaway cluster: results of earlier calls do not belong to it
        rm -f "$OUT"/logs/a_*.log "$OUT"/ranks/a_* "$OUT"/hist/a_*
        t4r_cluster_start "$PORT" >"$OUT/logs/cluster.log" 2>&1 || { cat "$OUT/logs/cluster.log" >&2; return 1; }
        trap 't4r_cluster_stop' EXIT
    fi
    export PGDATABASE=postgres
    psql -X -q -c "CREATE EXTENSION IF NOT EXISTS tim4rec" >/dev/null 2>&1 ||
        { log "CREATE EXTENSION tim4rec failed"; return 1; }
}

# --------------------------------------------------------------- data sets
dsid() { printf '%s' "$1" | tr -c 'A-Za-z0-9\n' '_'; }
base_of() { tf_base "$1"; }      # the directory under $DATA
# a variant's training options (-drop1 sets keep every user and item of
# their already filtered source: no second filter on the shorter histories)
data_opts() { local s; s=$(tf_suffix "$1"); [ -z "$s" ] || tf_field "$s" 3; }
preset_of() { case "$1" in ml-*|movielens*|synth*) echo movielens ;; *) echo amazon ;; esac; }
orders_of() { case "$1" in amazon*) echo "$TIE_ORDERS" ;; *) echo file ;; esac; }
ocol_of() { case "$1" in item) echo item_id ;; *) echo seq ;; esac; }

load_dataset() {    # ds -> table d_<dsid>, loaded once
    local ds=$1 t csv sfx
    t=d_$(dsid "$ds")
    if [ "$(psql -X -At -c "SELECT to_regclass('public.$t') IS NOT NULL")" = t ]; then
        return 0
    fi
    if [ "$ds" = synth-gap ] || [ "$ds" = synth-timegap ]; then
        csv=$OUT/$ds.csv
        if [ "$ds" = synth-gap ]; then
            awk -v seed=2020 -v users="$SYNTH_USERS" -f test/quality/gen_synth.awk >"$csv"
        else
            awk -v seed=2020 -v users="$SYNTH_USERS" -f test/quality/gen_timegap.awk >"$csv"
        fi
    else
        csv=$DATA/$(base_of "$ds")/interactions.csv
        [ -r "$csv" ] || { log "SKIP $ds: $csv not found"; return 1; }
        # a variant (test/quality/transforms.sh): the source through its awk
        sfx=$(tf_suffix "$ds")
        if [ -n "$sfx" ]; then
            awk -f "$(tf_field "$sfx" 2)" "$csv" >"$OUT/$ds.csv"
            csv=$OUT/$ds.csv
        fi
    fi
    test/scripts/load_interactions.sh --replace -t "$t" -f csv "$csv" >>"$OUT/logs/load.log" 2>&1 ||
        { log "load of $ds failed (see $OUT/logs/load.log)"; return 1; }
    [ "$csv" != "$OUT/$ds.csv" ] || rm -f "$csv"
    log "loaded $ds into $t: $(tail -1 "$OUT/logs/load.log")"
}

model_of() { echo "a_$(dsid "$1")_$2_$3_$4"; }     # ds order arm seed

# ------------------------------------------------------------------ train
train_one() {    # ds order arm seed
    local ds=$1 order=$2 arm=$3 seed=$4 model opts logf
    model=$(model_of "$ds" "$order" "$arm" "$seed")
    logf=$OUT/logs/$model.log
    rm -f "$OUT/ranks/$model.tsv" "$OUT/ranks/$model.eval" "$OUT/hist/$model.tsv"
    opts="{$COMMON, \"preset\": \"$(preset_of "$ds")\", \"seed\": $seed, \"threads\": $THREADS, \"order_column\": \"$(ocol_of "$order")\"$(data_opts "$ds"), \"refit\": false, $(arm_opts "$arm")}"
    log "start $model: load $(cut -d' ' -f1 /proc/loadavg); options $opts"
    if psql -X -q -At -F' ' -v ON_ERROR_STOP=1 >"$logf" 2>&1 <<SQL
SELECT 'START', extract(epoch FROM clock_timestamp()), '$(cut -d' ' -f1 /proc/loadavg)';
SELECT 'OPTS', '$opts';
SELECT 'TRAINROW', epochs_run, best_epoch, valid_ndcg10, test_hr10, test_ndcg10, test_mrr10, train_samples, seconds, users, items, interactions
  FROM tim4rec_train('d_$(dsid "$ds")', '$model', options => '$opts'::jsonb);
SELECT 'END', extract(epoch FROM clock_timestamp()), '$(cut -d' ' -f1 /proc/loadavg)';
SQL
    then
        log "done  $model: $(grep '^TRAINROW' "$logf")"
    else
        log "FAILED $model: $(tail -3 "$logf")"
    fi
}

model_exists() {
    [ "$(psql -X -At -c "SELECT count(*) FROM tim4rec_models WHERE model_name = '$1'")" != 0 ]
}

phase_train() {
    local jobs=() ds order arm seed j n=0
    # the cheap arms (all_positions) first, seed by seed (every data set gets
    # its first seed before any gets its second), data sets in the order
    # given; then the per-prefix official arm
    for ds in $DATASETS; do load_dataset "$ds" || true; done
    for seed in $SEEDS; do
        for ds in $DATASETS; do
            [ "$(psql -X -At -c "SELECT to_regclass('public.d_$(dsid "$ds")') IS NOT NULL")" = t ] || continue
            for order in $(orders_of "$ds"); do
                for arm in $ARMS; do
                    [ "$arm" = official ] && continue
                    jobs+=("$ds $order $arm $seed")
                done
            done
        done
    done
    case " $ARMS " in *" official "*)
        for ds in $OFF_DATASETS; do
            case " $DATASETS " in *" $ds "*) ;; *) continue ;; esac
            load_dataset "$ds" || continue
            for order in $(orders_of "$ds"); do
                for seed in $OFF_SEEDS; do jobs+=("$ds $order official $seed"); done
            done
        done ;;
    esac
    log "${#jobs[@]} trainings planned, $PAR at a time, $THREADS thread(s) each"
    for j in "${jobs[@]}"; do
        # shellcheck disable=SC2086
        set -- $j
        if model_exists "$(model_of "$1" "$2" "$3" "$4")"; then
            log "skip $(model_of "$1" "$2" "$3" "$4"): already trained"
            continue
        fi
        train_one "$1" "$2" "$3" "$4" &
        n=$((n + 1))
        if [ "$n" -ge "$PAR" ]; then wait -n; n=$((n - 1)); fi
    done
    wait
}

# ------------------------------------------------------------------ eval
# per model: ranks/<model>.tsv = user_id <TAB> rank (0-based) of the test
# target; hist/<model>.tsv = epoch <TAB> valid_ndcg10 <TAB> loss <TAB> seconds
phase_eval() {
    local m
    for m in $(psql -X -At -c "SELECT model_name FROM tim4rec_models WHERE model_name LIKE 'a\\_%' ORDER BY 1"); do
        psql -X -At -F$'\t' -c "SELECT (e->>'epoch')::int, e->>'valid_ndcg10', e->>'loss', e->>'seconds'
                                  FROM tim4rec_models,
                                       -- a search (tie_shuffle auto may be one): the kept trial's epochs
                                       jsonb_array_elements(CASE WHEN history->0 ? 'trial'
                                           THEN (SELECT t->'epochs' FROM jsonb_array_elements(history) t
                                                  WHERE (t->>'kept')::bool)
                                           ELSE history END) e
                                 WHERE model_name = '$m' ORDER BY 1" >"$OUT/hist/$m.tsv"
        [ -s "$OUT/ranks/$m.tsv" ] && continue
        if psql -X -At -F$'\t' -v ON_ERROR_STOP=1 \
             -c "SELECT user_id, rank FROM tim4rec_evaluate_users('$m', 'test') ORDER BY user_id" \
             >"$OUT/ranks/$m.tmp" 2>"$OUT/logs/eval_$m.err"; then
            mv "$OUT/ranks/$m.tmp" "$OUT/ranks/$m.tsv"
            # the check of the issue: mean of the per-user values = tim4rec_evaluate
            psql -X -At -F' ' -c "SELECT 'EVAL', value FROM tim4rec_evaluate('$m', ARRAY[10])
                                   WHERE model = 'tim4rec' AND split = 'test' AND metric = 'ndcg'" \
                >"$OUT/ranks/$m.eval"
            log "per-user ranks of $m: $(wc -l <"$OUT/ranks/$m.tsv") users"
        else
            log "per-user evaluation of $m failed: $(tail -2 "$OUT/logs/eval_$m.err")"
            rm -f "$OUT/ranks/$m.tmp"
        fi
    done
}

# ------------------------------------------------------------------ report
phase_report() {
    bash test/quality/ablation_report.sh "$OUT"
}

if has_phase train || has_phase eval; then
    if [ "${T4R_SKIP_INSTALL:-0}" != 1 ]; then
        { t4r_ensure_packages && t4r_build_install; } >"$OUT/logs/setup.log" 2>&1 ||
            { tail -20 "$OUT/logs/setup.log"; log "build/install failed"; exit 1; }
    fi
    cluster_up || exit 1
    log "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    has_phase train && phase_train
    has_phase eval && phase_eval
fi
has_phase report && phase_report
exit 0
