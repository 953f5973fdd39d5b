#!/bin/bash
# Build the CUDA test binaries here (nvcc, no GPU needed) and put them, with
# the shared libraries a stock CUDA image may lack (OpenBLAS + its Fortran
# runtime, jansson), into .devcarry/ (ignored through .git/info/exclude).
set -e
cd "$(dirname "$0")/../.."
make USE_CUDA=1 cuda-tests
mkdir -p .devcarry
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
cp build/cuda_parity build/cuda_bench test/cuda/device_run.sh .devcarry/
for lib in $(ldd build/cuda_parity | awk '/=>/ {print $3}' | grep -E 'openblas|gfortran|quadmath|jansson|gomp'); do
	cp -L "$lib" .devcarry/
done
ls -la .devcarry
