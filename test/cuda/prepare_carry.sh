#!/bin/bash
# Build the CUDA test binaries here (nvcc, no GPU needed) and pack what the
# GPU machine needs into .devcarry/carry.tar.xz (.devcarry/ is ignored
# through .git/info/exclude); test/cuda/device_run.sh unpacks it there.
#
#   test/cuda/prepare_carry.sh [PGROOT]
#
# The archive holds bin/ (cuda_parity, cuda_bench, train_profile), lib/
# (the shared libraries a stock CUDA image may lack: OpenBLAS and its
# Fortran runtime, jansson, and with PGROOT every library PostgreSQL needs
# except glibc's own) and, with PGROOT, pg/: a relocatable copy of a
# PostgreSQL 15 tree (PGROOT/usr/lib/postgresql/15, PGROOT/usr/share/
# postgresql/15, as `dpkg -x` of Debian's packages gives) in which tim4rec was
# installed with `make USE_CUDA=1 PG_CONFIG=PGROOT/usr/lib/postgresql/15/
# bin/pg_config install`, trimmed to the server, initdb, pg_ctl, psql and
# the modules they load (PL/pgSQL, snowball, tim4rec; no JIT).  The Beauty interactions (../shared/data) go into
# data/ when present.  Everything is compressed: the working tree that
# travels is limited to 64 MiB.
set -e
cd "$(dirname "$0")/../.."
PGROOT=${1:-}
make USE_CUDA=1 cuda-tests build/train_profile
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
mkdir -p .devcarry "$S/bin" "$S/lib" "$S/data"
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
cp build/cuda_parity build/cuda_bench build/train_profile "$S/bin/"
strip --strip-debug "$S"/bin/*
deps() {
	ldd "$@" | awk '/=>/ && $3 ~ /^\// {print $3}' |
		grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libcudart|libcublas|libcublasLt)\.so' | sort -u
}
if [ -n "$PGROOT" ]; then
	P=$PGROOT/usr/lib/postgresql/15
	[ -f "$P/lib/tim4rec.so" ] || { echo "no tim4rec.so in $P/lib" >&2; exit 1; }
	ldd "$P/lib/tim4rec.so" | grep -q libcudart || { echo "$P/lib/tim4rec.so is not a USE_CUDA=1 build" >&2; exit 1; }
	mkdir -p "$S/pg/usr/lib/postgresql/15/bin" "$S/pg/usr/lib/postgresql/15/lib" "$S/pg/usr/share/postgresql"
	for b in postgres initdb pg_ctl psql; do cp "$P/bin/$b" "$S/pg/usr/lib/postgresql/15/bin/"; done
	# the modules initdb and the tests load: PL/pgSQL, the snowball
	# dictionaries (initdb's text search configurations) and tim4rec
	for so in plpgsql dict_snowball tim4rec; do cp "$P/lib/$so.so" "$S/pg/usr/lib/postgresql/15/lib/"; done
	cp -a "$PGROOT/usr/share/postgresql/15" "$S/pg/usr/share/postgresql/"
	for f in $(deps "$S"/bin/* "$S"/pg/usr/lib/postgresql/15/bin/* "$S"/pg/usr/lib/postgresql/15/lib/*.so); do
		cp -L "$f" "$S/lib/"
	done
else
	for f in $(deps "$S"/bin/* | grep -E 'openblas|gfortran|quadmath|jansson|gomp'); do
		cp -L "$f" "$S/lib/"
	done
fi
B=../shared/data/amazon-beauty-5core/interactions.csv
[ -r "$B" ] && cp "$B" "$S/data/beauty.csv"
rm -f .devcarry/carry.tar.*
tar -cJf .devcarry/carry.tar.xz -C "$S" .
ls -la .devcarry
du -sh .devcarry
