#!/bin/bash
# The prepared GPU run: nvidia-smi, parity suite, benchmark; logs to $OUT.
# Run from the repository root on the GPU machine, with .devcarry/ carried.
OUT=${OUT:-/tmp/t4r_cuda_out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.devcarry:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
for d in $(find /usr/local /opt -name 'libcublas.so.13' 2>/dev/null | head -3); do
	LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$d")
done
export LD_LIBRARY_PATH
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } 2>&1 | tee "$OUT/nvidia_smi.log"
ldd .devcarry/cuda_parity 2>&1 | tee "$OUT/ldd.log" | grep -E 'not found|cublas'
timeout 150 .devcarry/cuda_parity 2>&1 | tee "$OUT/parity.log"
echo "parity exit: ${PIPESTATUS[0]}" | tee -a "$OUT/parity.log"
timeout 200 .devcarry/cuda_bench 10 2>&1 | tee "$OUT/bench.log"
echo "bench exit: ${PIPESTATUS[0]}" | tee -a "$OUT/bench.log"
# memory checker on a few small configurations (slow tool, short run)
if command -v compute-sanitizer >/dev/null; then
	T4R_PARITY_QUICK=3 timeout 80 compute-sanitizer --tool memcheck --print-limit 20 .devcarry/cuda_parity 2>&1 | tail -60 | tee "$OUT/sanitizer.log"
	# shared-memory races in the chunked SSD kernels
	T4R_PARITY_QUICK=2 timeout 80 compute-sanitizer --tool racecheck --print-limit 20 .devcarry/cuda_parity 2>&1 | tail -40 | tee "$OUT/racecheck.log"
fi
