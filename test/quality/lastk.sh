#!/usr/bin/env bash
# lastk.sh - does the time path help, measured on more test events per user:
# the "last K" protocol (test/bench/QUALITY.md, "More test events per user").
# `make quality-lastk`.
#
# Leave-one-out tests one event per user, so with the 610-1,152 users of the
# small data sets a paired interval is +-0.004 to +-0.006 NDCG@10 wide.
# Here each user's last d = min(K, m - 5) interactions (after the 5-core) are
# held out; every arm trains and early-stops on the rest (its own
# leave-one-out validation), then predicts each held-out event and the
# truncated data's own test event from the true history before it, without
# retraining (build/quality_core --holdout K, on the core library: the calls
# tim4rec_train makes).  Per user: the mean NDCG@10 over those d + 1 events,
# averaged over the seeds; arms are paired user by user
# (test/quality/paired_bootstrap.awk).
#
# Knobs (environment):
#   LK_DATASETS  default "ml-100k ml-latest-small lastfm-2k-tags" (folders of
#                ../shared/data with interactions.csv; file order for ties)
#   LK_ARMS      default "official notime_pp" (table below)
#   LK_PAIRS     comparisons "A-B ...", default "official-notime_pp"
#   LK_SEEDS     default "2020 2021 2022"
#   LK_K         default 10
#   LK_OPTIONS   common --set options, default "batch_size=256 patience=5
#                epochs=30 max_seq_len=50 refit=false tie_shuffle=false"
#                (the preset: movielens for ml-*, else amazon)
#   LK_PARALLEL  trainings at a time (2), one thread each
#   LK_OUT       results (test/results/lastk): one log and one per-user file
#                per run (a run whose per-user file exists is not rerun), the
#                tables (lastk.md) and the validation curves of every run
#                (curves_<data set>_lastk.svg, from the logs' epoch lines)
#   LK_PHASES    "train report" (default)
#   LK_BOOT, LK_BOOT_SEED  bootstrap resamples (2000) and seed (12345)
set -euo pipefail
cd "$(dirname "$0")/../.."

LK_DATASETS=${LK_DATASETS:-"ml-100k ml-latest-small lastfm-2k-tags"}
LK_ARMS=${LK_ARMS:-"official notime_pp"}
LK_PAIRS=${LK_PAIRS:-"official-notime_pp"}
LK_SEEDS=${LK_SEEDS:-"2020 2021 2022"}
LK_K=${LK_K:-10}
LK_OPTIONS=${LK_OPTIONS:-"batch_size=256 patience=5 epochs=30 max_seq_len=50 refit=false tie_shuffle=false"}
LK_PARALLEL=${LK_PARALLEL:-2}
LK_OUT=${LK_OUT:-test/results/lastk}
LK_PHASES=${LK_PHASES:-"train report"}
LK_BOOT=${LK_BOOT:-2000}
LK_BOOT_SEED=${LK_BOOT_SEED:-12345}
DATA=${T4R_DATA_DIR:-../shared/data}

# arm | --set options | label
LK_ARM_TABLE='
official|is_time=true time_features=official|official (prefixes)
notime_pp|is_time=false|is_time=false (prefixes)
robust_pp|is_time=true time_features=robust|robust (prefixes)
'
arm_col() { awk -F'|' -v a="$1" -v c="$2" '$1 == a { print $c; f = 1 } END { exit !f }' <<<"$LK_ARM_TABLE"; }

for a in $LK_ARMS; do
	arm_col "$a" 1 >/dev/null || { echo "lastk.sh: unknown arm $a" >&2; exit 2; }
done
mkdir -p "$LK_OUT"
make -s build/quality_core

preset_of() { case "$1" in ml-*) echo movielens ;; *) echo amazon ;; esac; }

run_one() {
	local ds=$1 arm=$2 seed=$3 base sets=()
	base="$LK_OUT/${ds}_${arm}_${seed}"
	[ -s "$base.users.tsv" ] && return 0
	for o in $LK_OPTIONS $(arm_col "$arm" 2); do sets+=(--set "$o"); done
	if ./build/quality_core --csv "$DATA/$ds/interactions.csv" --preset "$(preset_of "$ds")" \
		--threads 1 --seed "$seed" "${sets[@]}" --holdout "$LK_K" \
		--ranks "$base.users.tmp" >"$base.log" 2>&1; then
		mv "$base.users.tmp" "$base.users.tsv"
	else
		echo "lastk.sh: $ds $arm $seed failed, see $base.log" >&2
		return 1
	fi
}

if [[ " $LK_PHASES " == *" train "* ]]; then
	jobs_file=$(mktemp)
	for ds in $LK_DATASETS; do
		[ -r "$DATA/$ds/interactions.csv" ] || { echo "lastk.sh: no $DATA/$ds/interactions.csv" >&2; exit 2; }
		for seed in $LK_SEEDS; do
			for arm in $LK_ARMS; do echo "$ds $arm $seed"; done
		done
	done >"$jobs_file"
	export -f run_one arm_col preset_of
	export LK_OUT LK_OPTIONS LK_K LK_ARM_TABLE DATA
	xargs -P "$LK_PARALLEL" -L 1 bash -c 'run_one "$@"' _ <"$jobs_file"
	rm -f "$jobs_file"
fi

# the mean of column $2 (per-user NDCG@10) over the seeds' files, per user
seed_mean() {
	awk -F'\t' '{ s[$1] += $2; n[$1]++ } END { for (u in s) printf "%s\t%.9f\t%d\n", u, s[u] / n[u], n[u] }' "$@" | sort -k1,1
}

if [[ " $LK_PHASES " == *" report "* ]]; then
	rep="$LK_OUT/lastk.md"
	{
		echo "Last-K protocol: K=$LK_K, options: $LK_OPTIONS; seeds $LK_SEEDS"
		echo
		echo "| data set | arm | seed | epochs run | best epoch | valid NDCG@10 | users | test events | NDCG@10 (user mean) | HR@10 (user mean) | NDCG@10 (event mean) |"
		echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		for ds in $LK_DATASETS; do
			for arm in $LK_ARMS; do
				for seed in $LK_SEEDS; do
					log="$LK_OUT/${ds}_${arm}_${seed}.log"
					[ -s "$LK_OUT/${ds}_${arm}_${seed}.users.tsv" ] || { echo "| $ds | $arm | $seed | (missing) |"; continue; }
					fit=$(grep '^RESULT fit ' "$log")
					ho=$(grep '^RESULT holdout ' "$log")
					kv() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
					printf '| %s | %s | %s | %s | %s | %.4f | %s | %s | %.4f | %.4f | %.4f |\n' "$ds" \
						"$(arm_col "$arm" 3)" "$seed" "$(kv epochs_run "$fit")" "$(kv best_epoch "$fit")" \
						"$(kv best_valid_ndcg10 "$fit")" "$(kv users "$ho")" "$(kv events "$ho")" \
						"$(kv ndcg10_user_mean "$ho")" "$(kv hr10_user_mean "$ho")" "$(kv ndcg10_event_mean "$ho")"
				done
			done
		done
		echo
		echo "| data set | A - B | seeds | users | A | B | difference | 95% interval | p(<=0) | per-seed differences |"
		echo "|---|---|---|--:|--:|--:|--:|--:|--:|---|"
		for ds in $LK_DATASETS; do
			for pair in $LK_PAIRS; do
				a=${pair%-*} b=${pair#*-} seeds="" per=""
				for seed in $LK_SEEDS; do
					if [ -s "$LK_OUT/${ds}_${a}_${seed}.users.tsv" ] && [ -s "$LK_OUT/${ds}_${b}_${seed}.users.tsv" ]; then
						seeds="$seeds $seed"
						d=$(join -t $'\t' <(sort -k1,1 "$LK_OUT/${ds}_${a}_${seed}.users.tsv") \
							<(sort -k1,1 "$LK_OUT/${ds}_${b}_${seed}.users.tsv") |
							awk -F'\t' '{ s += $2 - $5; n++ } END { printf "%+.4f", s / n }')
						per="$per${per:+, }$seed: $d"
					fi
				done
				[ -n "$seeds" ] || continue
				fa=() fb=()
				for seed in $seeds; do
					fa+=("$LK_OUT/${ds}_${a}_${seed}.users.tsv")
					fb+=("$LK_OUT/${ds}_${b}_${seed}.users.tsv")
				done
				r=$(join -t $'\t' <(seed_mean "${fa[@]}") <(seed_mean "${fb[@]}") | cut -f1,2,4 |
					awk -v B="$LK_BOOT" -v seed="$LK_BOOT_SEED" -f test/quality/paired_bootstrap.awk)
				eval "$(tr ' ' '\n' <<<"$r" | grep -E '^[a-z_0-9]+=[-+0-9.e]+$' | sed 's/^/bs_/')"
				printf '| %s | %s - %s |%s | %s | %.4f | %.4f | **%+.4f** | [%+.4f, %+.4f] | %.3f | %s |\n' \
					"$ds" "$a" "$b" "$seeds" "$bs_n" "$bs_mean_a" "$bs_mean_b" "$bs_diff" \
					"$bs_lo" "$bs_hi" "$bs_p_le0" "$per"
			done
		done
	} >"$rep"
	# validation curves (the epoch lines of each run's log), one picture per data set
	mkdir -p "$LK_OUT/hist"
	for ds in $LK_DATASETS; do
		curves=()
		for arm in $LK_ARMS; do
			for seed in $LK_SEEDS; do
				log="$LK_OUT/${ds}_${arm}_${seed}.log" h="$LK_OUT/hist/${ds}_${arm}_${seed}.tsv"
				[ -s "$log" ] || continue
				sed -n 's/^epoch \([0-9]*\): loss [^ ]* valid NDCG@10 \([^ ]*\) .*/\1\t\2/p' "$log" >"$h"
				curves+=("$h=$(arm_col "$arm" 3) $seed")
			done
		done
		[ ${#curves[@]} -gt 0 ] || continue
		bash test/quality/plot_curves.sh "$LK_OUT/curves_${ds//-/_}_lastk.svg" \
			"validation NDCG@10 per epoch, $ds, last $LK_K held out" "${curves[@]}"
	done
	cat "$rep"
fi
