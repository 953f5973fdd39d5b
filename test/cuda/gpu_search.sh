#!/bin/bash
# Issue 12 part 4 on the GPU machine: a validation-only search for better
# amazon-preset settings on Beauty, then the chosen settings and the
# published ones (`amazon` as of 0.3) over 3 seeds, through tim4rec_train
# with device 'cuda'.  Called by test/cuda/device_pg.sh (mode search) with
# PostgreSQL running and the table `interactions` loaded (file order `seq`).
#
# Phase A (deadline SEARCH_A_S seconds): every trial of TRIALS below, seed
#   2020, file order, patience 5, at most 60 epochs; T4R_SEARCH_W (12) parallel sessions;
#   each finished trial appends "A <trial> <best valid NDCG@10> <best epoch>
#   <epochs> <seconds>" to $OUT/search.log.  No test metric is read.
# Choice: the trial with the best validation NDCG@10 (ties: earlier trial).
# Phase B (until the caller's timeout): the chosen trial and the paper
#   settings, seeds 2020-2022, patience 10, at most 100 epochs, file order
#   (`seq`) and item-id order (`iseq`: equal times ordered by item id);
#   rows "B <arm> <order> <seed> <valid ndcg10> <test hr10 ndcg10 mrr10> <best> <epochs> <s>",
#   and after each training its per-user test ranks into $OUT/ranks.tsv
#   (model, user, rank) for test/quality/paired_bootstrap.awk.
set -u
OUT=$1
NW=${T4R_SEARCH_W:-12}
SEARCH_A_S=${SEARCH_A_S:-170}
# rehearsal knobs (a CPU machine): the device and the epoch caps
DEV=${T4R_SEARCH_DEVICE:-cuda}
EPA=${T4R_SEARCH_EPOCHS_A:-60}
EPB=${T4R_SEARCH_EPOCHS_B:-100}
export DEV EPA EPB
L=$OUT/search.log
T=/tmp/t4r_search
mkdir -p "$T"
q() { psql -X -q -v ON_ERROR_STOP=1 -At -F' ' "$@"; }
q -c "ALTER TABLE interactions ADD COLUMN iseq bigint" \
  -c "UPDATE interactions i SET iseq = r.rn FROM (SELECT seq, row_number() OVER (ORDER BY user_id, ts, item_id, seq) rn FROM interactions) r WHERE r.seq = i.seq" \
  -c "ANALYZE interactions"
PAPER='"batch_size": 2048, "learning_rate": 0.001, "dropout_prob": 0.4, "hidden_size": 64'
TRIALS=(
	"$PAPER"
	'"batch_size": 2048, "learning_rate": 0.002, "dropout_prob": 0.4, "hidden_size": 64'
	'"batch_size": 2048, "learning_rate": 0.004, "dropout_prob": 0.5, "hidden_size": 64'
	'"batch_size": 512, "learning_rate": 0.001, "dropout_prob": 0.4, "hidden_size": 64'
	'"batch_size": 512, "learning_rate": 0.001, "dropout_prob": 0.5, "hidden_size": 64'
	'"batch_size": 512, "learning_rate": 0.002, "dropout_prob": 0.5, "hidden_size": 64'
	'"batch_size": 256, "learning_rate": 0.001, "dropout_prob": 0.5, "hidden_size": 64'
	'"batch_size": 512, "learning_rate": 0.001, "dropout_prob": 0.5, "hidden_size": 128'
	'"batch_size": 512, "learning_rate": 0.001, "dropout_prob": 0.6, "hidden_size": 128'
	'"batch_size": 1024, "learning_rate": 0.002, "dropout_prob": 0.5, "hidden_size": 128'
	'"batch_size": 2048, "learning_rate": 0.002, "dropout_prob": 0.5, "hidden_size": 128'
	'"batch_size": 512, "learning_rate": 0.0005, "dropout_prob": 0.5, "hidden_size": 64'
)
# one training; prints the B/A row fields: valid test(3) best epochs seconds
train1() {	# model options-json
	q -c "SELECT 1 FROM tim4rec_train('interactions', '$1', options => '$2'::jsonb)" >/dev/null 2>"/tmp/t4r_err_$1.txt" || {
		echo "FAILED $(head -c 300 "/tmp/t4r_err_$1.txt" | tr '\n' ' ')"; return 1; }
	q -c "SELECT (SELECT max((e->>'valid_ndcg10')::float8) FROM jsonb_array_elements(history) e),
	             metrics->'test'->>'hr@10', metrics->'test'->>'ndcg@10', metrics->'test'->>'mrr@10',
	             metrics->>'best_epoch', metrics->>'epochs_run', round((metrics->>'seconds')::numeric, 1)
	        FROM tim4rec_models WHERE model_name = '$1' AND is_current"
}
# T4R_SEARCH_TRIALS=FILE: the trials (one options fragment per line)
# instead of the list above; T4R_SEARCH_PHASE=A stops after phase A
if [ -n "${T4R_SEARCH_TRIALS:-}" ]; then
	mapfile -t TRIALS <"$T4R_SEARCH_TRIALS"
fi
export -f q train1
export OUT T
t0=$(date +%s)
echo "# phase A: ${#TRIALS[@]} trials, $NW sessions, deadline ${SEARCH_A_S}s ($(date -u +%T))" >>"$L"
for i in "${!TRIALS[@]}"; do printf '%s\t%s\n' "$i" "${TRIALS[$i]}"; done >"$T/trials.tsv"
cat "$T/trials.tsv" >>"$L"
# a worker starts a trial only before the deadline
deadline=$((t0 + SEARCH_A_S))
export deadline
# a trial still running after T4R_SEARCH_TRIAL_S (140 s) is cancelled
# cleanly (statement_timeout: nothing stored) and counts as not finished
cut -f1 "$T/trials.tsv" | PGOPTIONS="${PGOPTIONS:-} -c statement_timeout=${T4R_SEARCH_TRIAL_S:-140}s" xargs -P "$NW" -I{} bash -c '
	[ "$(date +%s)" -lt "$deadline" ] || exit 0
	opts=$(awk -F"\t" -v i={} "\$1 == i { print \$2 }" "$T/trials.tsv")
	r=$(train1 a{} "{\"preset\": \"amazon\", \"device\": \"$DEV\", \"order_column\": \"seq\", \"seed\": 2020, \"patience\": 5, \"epochs\": $EPA, $opts}")
	# validation only: drop the test columns before anything prints them
	case "$r" in
	FAILED*) echo "A {} $r" >>"$OUT/search.log" ;;
	*) set -- $r; echo "A {} valid=$1 best=$5 epochs=$6 s=$7" >>"$OUT/search.log" ;;
	esac'
best=$(awk '$1 == "A" { split($3, v, "="); if (v[2] != "" && (b == "" || v[2] + 0 > bv)) { bv = v[2] + 0; b = $2 } } END { print b }' "$L")
[ -n "$best" ] || { echo "# no trial finished" >>"$L"; exit 1; }
CHOSEN=$(awk -F'\t' -v i="$best" '$1 == i { print $2 }' "$T/trials.tsv")
echo "# chosen on validation: trial $best: $CHOSEN ($(date -u +%T), $(( $(date +%s) - t0 ))s)" >>"$L"
[ "${T4R_SEARCH_PHASE:-AB}" = A ] && exit 0
# phase B
{
	for seed in 2020 2021 2022; do
		for ord in seq iseq; do
			# the published settings chosen: one arm, not the same runs twice
			[ "$CHOSEN" = "$PAPER" ] || echo "chosen $ord $seed $CHOSEN"
			echo "paper $ord $seed $PAPER"
		done
	done
} >"$T/phaseb.txt"
export CHOSEN PAPER
# file order first (the honest default), so a timeout cuts item-id order first
sort -k2,2r -k3,3 "$T/phaseb.txt" | awk '{print NR "\t" $0}' >"$T/phaseb.tsv"
cut -f1 "$T/phaseb.tsv" | xargs -P "$NW" -I{} bash -c '
	line=$(awk -F"\t" -v i={} "\$1 == i { print \$2 }" "$T/phaseb.tsv")
	set -- $line
	arm=$1 ord=$2 seed=$3; shift 3
	r=$(train1 "b_${arm}_${ord}_${seed}" "{\"preset\": \"amazon\", \"device\": \"$DEV\", \"order_column\": \"$ord\", \"seed\": $seed, \"patience\": 10, \"epochs\": $EPB, $*}")
	echo "B $arm $ord $seed $r" >>"$OUT/search.log"
	# per-user test ranks of this model (the GPU scores them), appended
	# under a lock: ranks.tsv = model<TAB>user<TAB>rank
	m="b_${arm}_${ord}_${seed}"
	q -c "SET tim4rec.device = '"'"'$DEV'"'"'" -F"	" \
	  -c "SELECT '"'"'$m'"'"', user_id, rank FROM tim4rec_evaluate_users('"'"'$m'"'"', '"'"'test'"'"')" >"$T/r_$m.tsv" 2>>"$T/r_err.txt" &&
		flock "$T/ranks.lock" sh -c "cat \"$T/r_$m.tsv\" >>\"$OUT/ranks.tsv\""'
echo "# phase B done ($(date -u +%T), $(( $(date +%s) - t0 ))s)" >>"$L"
