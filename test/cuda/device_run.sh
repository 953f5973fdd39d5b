#!/bin/bash
# The prepared GPU run (issue 16): unpack .devcarry/carry.tar.xz (made by
# test/cuda/prepare_carry.sh), then, each step under its own timeout so that
# a slow step cannot cost the others: nvidia-smi, the parity suite, the
# training/inference benchmark (movielens and amazon presets, chunked and
# recurrent SSD), the CPU trainer on the same machine's cores for the
# GPU/CPU ratio (train_profile, same presets, full-length samples),
# tim4rec_train through PostgreSQL with device 'cuda' (test/cuda/device_pg.sh)
# and compute-sanitizer memcheck and racecheck on small cases.  Logs go to
# $OUT (8 files at most come back: they are grouped accordingly).
# Run from the repository root on the GPU machine, with .devcarry carried.
OUT=${OUT:-/tmp/t4r_cuda_out}
mkdir -p "$OUT"
D=/tmp/t4rdev
rm -rf "$D" && mkdir -p "$D"
tar -xJf .devcarry/carry.tar.xz -C "$D" 2>/dev/null ||
	python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .devcarry/carry.tar.xz "$D"
# the Beauty table may travel beside the archive (made in a clone without ../shared)
[ -r "$D/data/beauty.csv" ] || [ ! -r .devcarry/beauty.csv.xz ] || { mkdir -p "$D/data"; xz -dc .devcarry/beauty.csv.xz >"$D/data/beauty.csv" 2>/dev/null ||
	python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' .devcarry/beauty.csv.xz "$D/data/beauty.csv"; }
chmod -R a+rX "$D"
# keep only the carried libraries this image lacks: its own (newer)
# libstdc++ and friends must win over Debian's
for f in "$D"/lib/*; do
	if ldconfig -p | grep -q " $(basename "$f") "; then rm -f "$f"; fi
done
export LD_LIBRARY_PATH=$D/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for d in $(find /usr/local /opt -name 'libcublas.so.13' 2>/dev/null | head -3); do
	LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$d")
done
export LD_LIBRARY_PATH
S=$OUT/summary.log
step() {	# step NAME SECONDS LOGFILE command...: timed, appended to LOGFILE
	local name=$1 secs=$2 log=$3 t0 rc
	shift 3
	echo "=== $name ($(date -u +%T), limit ${secs}s): $*" >>"$log"
	t0=$EPOCHREALTIME
	timeout "$secs" "$@" >>"$log" 2>&1
	rc=$?
	printf '%-28s rc=%-3s %6.1f s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" >>"$S"
}
{
	nvidia-smi
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
	nproc; grep -m1 'model name' /proc/cpuinfo; free -g
	ls "$D/lib"
	ldd "$D/bin/cuda_parity" | grep -E 'not found|cublas|openblas'
} >"$OUT/machine.log" 2>&1
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 250 >"$OUT/smi_mem.log" 2>&1 &
SMI=$!
# T4R_DEVICE_MODE=recommend_all: only PostgreSQL, running the
# recommend_all-vs-LATERAL benchmark on all of this machine's cores
# (test/bench/pg_recommend_all.sql; the model's hex in .devcarry/model.hex.xz,
# written by build/pg_latency_model)
if [ "${T4R_DEVICE_MODE:-}" = recommend_all ]; then
	step recommend_all "${T4R_SEARCH_S:-300}" "$OUT/pg.log" bash test/cuda/device_pg.sh "$D" "$OUT" recommend_all
	kill "$SMI" 2>/dev/null
	cat "$S"
	grep '^|' "$OUT/pg.log"
	exit 0
fi
# T4R_DEVICE_MODE=search: only PostgreSQL, running test/cuda/gpu_search.sh
if [ "${T4R_DEVICE_MODE:-}" = search ]; then
	# T4R_DEVICE_PARITY=1: the parity suite first (a new build's check)
	[ "${T4R_DEVICE_PARITY:-0}" = 1 ] && step parity 90 "$OUT/parity.log" "$D/bin/cuda_parity"
	step search "${T4R_SEARCH_S:-420}" "$OUT/pg.log" bash test/cuda/device_pg.sh "$D" "$OUT" search
	kill "$SMI" 2>/dev/null
	grep -E '^not ok|^# (fail|pass)|^1\.\.' "$OUT/parity.log" 2>/dev/null | head -30 >>"$S"
	cat "$S" "$OUT/search.log"
	exit 0
fi
step parity 120 "$OUT/parity.log" "$D/bin/cuda_parity"
step bench_movielens 75 "$OUT/bench.log" "$D/bin/cuda_bench" 10 both movielens
step bench_amazon 45 "$OUT/bench.log" "$D/bin/cuda_bench" 20 both amazon
N=$(nproc)
# T4R_DEVICE_CPU=0 skips the CPU comparison (a rerun after a fix)
[ "${T4R_DEVICE_CPU:-1}" = 0 ] || {
step cpu_movielens 45 "$OUT/bench.log" "$D/bin/train_profile" --threads "$N" --preset movielens --steps 3 --no-peak
step cpu_amazon 30 "$OUT/bench.log" "$D/bin/train_profile" --threads "$N" --preset amazon --steps 5 --no-peak
}
if [ -d "$D/pg" ]; then
	step postgres 150 "$OUT/pg.log" bash test/cuda/device_pg.sh "$D" "$OUT"
fi
kill "$SMI" 2>/dev/null
if command -v compute-sanitizer >/dev/null; then
	T4R_PARITY_QUICK=8 step memcheck 60 "$OUT/sanitizer.log" compute-sanitizer --tool memcheck --print-limit 20 "$D/bin/cuda_parity"
	T4R_PARITY_ONLY="chunk32 L33" step racecheck 90 "$OUT/sanitizer.log" compute-sanitizer --tool racecheck --print-limit 20 "$D/bin/cuda_parity"
else
	echo "no compute-sanitizer" >>"$S"
fi
grep -E '^not ok|^# (fail|pass)|^1\.\.' "$OUT/parity.log" | head -30 >>"$S"
grep -E '^\||^# (median|train_profile)' "$OUT/bench.log" >>"$S"
grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Error' "$OUT/sanitizer.log" 2>/dev/null | head -10 >>"$S"
cat "$S"
