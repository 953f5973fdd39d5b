#!/usr/bin/env bash
# The whole test suite (`make test`, `.ci/run`).  From a fresh Debian bookworm
# machine: installs missing packages, builds, installs the extension (the only
# root step), then on a throwaway cluster it starts and removes itself runs
#   0. strict build         the extension with -Wall -Wextra -Werror and assert
#                           checking (make T4R_STRICT=1), in a copy
#   1. core unit tests      build/test_* and build/dtest_* (TAP)
#   1b. CUDA                make USE_CUDA=1 in a copy when nvcc exists, GPU parity
#                           (SKIP without a GPU) and its CPU emulation; the CUDA
#                           build's tim4rec.so is kept for test/pgtap/cuda_build.sh
#   2. pg_regress           make installcheck (sql/*.sql vs expected/*.out)
#   3. pgTAP                pg_prove test/pgtap/*.sql, each file in a fresh database
#                           created with pgtap and tim4rec
#   4. scripts              test/pgtap/*.sh (print TAP), each with a fresh database
# and ends with the line "N passed, M failed"; exit status 1 if anything failed.
# Logs: test/results/ (ignored by git).
#
# Environment seen by pgTAP files and scripts: PGHOST PGPORT PGUSER PGDATABASE,
# T4R_PG_BINDIR (pg_dump, pg_restore, psql...), T4R_FIXTURES (only when
# ../shared/fixtures exists: skip cleanly otherwise), T4R_DATA (../shared/data,
# when present), T4R_REPO (repository root).  pg_prove gets the psql variables
# fixtures and data with the same values (-S fixtures=... -S data=...).
# Options (environment): T4R_SKIP_INSTALL=1 skips packages/build/install (for a
# quick rerun), T4R_ONLY="unit regress pgtap scripts" restricts the stages.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
# shellcheck source=scripts/lib.sh
. "$REPO/test/scripts/lib.sh"

RES=$REPO/test/results
# only what this script writes: test/results/quality (make quality) and
# test/results/bench may hold a long run's logs
rm -rf "$RES/unit" "$RES/cuda" "$RES/pgtap" "$RES/scripts" "$RES/summary.log" \
       "$RES/setup.log" "$RES/regress.log" "$RES/regression.diffs" "$RES/server.log"
mkdir -p "$RES/unit" "$RES/pgtap" "$RES/scripts"
export T4R_REPO=$REPO T4R_PG_BINDIR
export PATH=$T4R_PG_BINDIR:$PATH
# ../shared/fixtures and ../shared/data, unless already set in the environment
if [ -z "${T4R_FIXTURES:-}" ] && [ -d "$REPO/../shared/fixtures" ]; then
    T4R_FIXTURES=$(realpath "$REPO/../shared/fixtures")
fi
if [ -z "${T4R_DATA:-}" ] && [ -d "$REPO/../shared/data" ]; then
    T4R_DATA=$(realpath "$REPO/../shared/data")
fi
[ -n "${T4R_FIXTURES:-}" ] && export T4R_FIXTURES
[ -n "${T4R_DATA:-}" ] && export T4R_DATA
ONLY=${T4R_ONLY:-unit cuda regress pgtap scripts}
stage_on() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

PASS=0
FAIL=0
FAILED_ITEMS=()
START=$(date +%s)

note() { printf '%s\n' "$*" | tee -a "$RES/summary.log"; }
fail_item() { FAILED_ITEMS+=("$1"); }

# Count TAP results of one output file.  Args: name file exit_status.
# ok -> pass, not ok -> fail (TODO lines count as passes, as TAP says);
# tests missing from a "1..N" plan, or a non-zero exit with no "not ok",
# count as one more failure each.
tap_count() {
    local name=$1 file=$2 rc=$3 ok nok plan extra=0
    ok=$(grep -cE '^[[:space:]]*ok( |$)' "$file")
    nok=$(grep -E '^[[:space:]]*not ok( |$)' "$file" | grep -vcE '#[[:space:]]*TODO')
    local todo
    todo=$(grep -E '^[[:space:]]*not ok( |$)' "$file" | grep -cE '#[[:space:]]*TODO')
    ok=$((ok + todo))
    plan=$(grep -oE '^[[:space:]]*1\.\.[0-9]+' "$file" | head -1 | sed 's/.*\.\.//')
    if [ -n "$plan" ] && [ $((ok + nok)) -lt "$plan" ]; then
        extra=$((plan - ok - nok))
    elif [ -z "$plan" ] && [ $((ok + nok)) -eq 0 ]; then
        extra=1            # no plan and no test: the file died early
    fi
    if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ] && [ "$extra" -eq 0 ]; then
        extra=1
    fi
    PASS=$((PASS + ok))
    FAIL=$((FAIL + nok + extra))
    local status=ok
    if [ $((nok + extra)) -gt 0 ]; then status=FAILED; fail_item "$name"; fi
    note "$(printf '  %-44s %4d passed %3d failed  %s' "$name" "$ok" $((nok + extra)) "$status")"
}

CUDA_SO_DIR=
INSTALLED_OLD_SQL=
cleanup() {
    T4R_KEEP_LOG=$RES/server.log t4r_cluster_stop
    [ -n "$INSTALLED_OLD_SQL" ] && t4r_as_root rm -f $INSTALLED_OLD_SQL
    [ -n "$CUDA_SO_DIR" ] && rm -rf "$CUDA_SO_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
    local secs=$(( $(date +%s) - START ))
    note ""
    if [ ${#FAILED_ITEMS[@]} -gt 0 ]; then
        note "failed: ${FAILED_ITEMS[*]}"
        note "logs: $RES"
    fi
    note "time: ${secs}s"
    cleanup
    note "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

# ---------------------------------------------------------------- setup
note "== setup (log: test/results/setup.log)"
if [ "${T4R_SKIP_INSTALL:-0}" != 1 ]; then
    if ! t4r_ensure_packages >>"$RES/setup.log" 2>&1; then
        tail -20 "$RES/setup.log"; FAIL=$((FAIL + 1)); fail_item packages; finish
    fi
    if ! t4r_build_install >>"$RES/setup.log" 2>&1; then
        tail -40 "$RES/setup.log"; FAIL=$((FAIL + 1)); fail_item build; finish
    fi
    note "  packages, build, make install: ok"
    # the frozen install scripts of released versions (test/upgrade/), for
    # test/pgtap/upgrade.sh and install_hijack.sh only (removed again when
    # the run ends)
    for old in "$REPO"/test/upgrade/tim4rec--*.sql; do
        OLD_SQL=$("$T4R_PG_BINDIR/pg_config" --sharedir)/extension/$(basename "$old")
        if t4r_as_root install -m 644 "$old" "$OLD_SQL" >>"$RES/setup.log" 2>&1; then
            INSTALLED_OLD_SQL="$INSTALLED_OLD_SQL $OLD_SQL"
        fi
    done
fi

# ---------------------------------------------------------------- strict build
# The extension (glue and core library) must build without a warning under
# -Wall -Wextra -Werror (-Wno-unused-parameter -Wno-sign-compare for
# PostgreSQL's own headers) and with PostgreSQL's assert checking
# (-DUSE_ASSERT_CHECKING): make T4R_STRICT=1, see the Makefile.  In a copy of
# the tree so that the installed build's objects stay as they are.  One
# check, counted with the unit stage.
if stage_on unit && [ "${T4R_SKIP_STRICT:-0}" != 1 ]; then
    STRICT_TREE=$(mktemp -d /tmp/t4r-strict.XXXXXX)
    tar -C "$REPO" --exclude=./build --exclude=./test/results --exclude='*.o' \
        --exclude='*.so' --exclude='*.bc' --exclude=./.git -cf - . | tar -C "$STRICT_TREE" -xf -
    if ( cd "$STRICT_TREE" && make -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$T4R_PG_BINDIR/pg_config" \
             T4R_STRICT=1 with_llvm=no ) >"$RES/unit/strict_build.log" 2>&1 &&
       ! grep -q 'warning:' "$RES/unit/strict_build.log"; then
        PASS=$((PASS + 1)); note "  strict build (-Wall -Wextra -Werror, assert checking): ok"
    else
        grep -E 'error:|warning:' "$RES/unit/strict_build.log" | head -20
        FAIL=$((FAIL + 1)); fail_item strict-build
        note "  strict build (-Wall -Wextra -Werror, assert checking): FAILED (test/results/unit/strict_build.log)"
    fi
    rm -rf "$STRICT_TREE"
fi

# ---------------------------------------------------------------- core unit tests
if stage_on unit; then
    note "== core unit tests (test/results/unit/)"
    BINS=$(make -s print-UNIT_BINS PG_CONFIG="$T4R_PG_BINDIR/pg_config")
    if ! make -j"$(nproc 2>/dev/null || echo 2)" core-tests PG_CONFIG="$T4R_PG_BINDIR/pg_config" \
            >"$RES/unit/build.log" 2>&1; then
        tail -30 "$RES/unit/build.log"
        note "  core-tests build failed: running the binaries that built"
        FAIL=$((FAIL + 1)); fail_item core-tests-build
    fi
    for b in $BINS; do
        n=$(basename "$b")
        if [ ! -x "$b" ]; then
            note "  $n: not built"; FAIL=$((FAIL + 1)); fail_item "$n"; continue
        fi
        ( ulimit -c 0; timeout 600 "./$b" ) >"$RES/unit/$n.tap" 2>&1
        tap_count "unit/$n" "$RES/unit/$n.tap" $?
    done
fi

# ---------------------------------------------------------------- CUDA build
# The CUDA path must never rot: when a CUDA toolkit is present, build the
# extension and the CUDA test binaries with USE_CUDA=1 in a copy of the tree
# (so the CPU build's objects stay as they are), then run the GPU parity
# suite (it reports a SKIP with the reason when no GPU is usable) and the CPU
# emulation of the same kernels (test/cuda/README.md).
if stage_on cuda; then
    note "== CUDA build and parity (test/results/cuda/)"
    mkdir -p "$RES/cuda"
    NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
    if [ ! -x "$NVCC" ]; then
        printf '1..0 # SKIP no CUDA toolkit (%s not found)\n' "$NVCC" >"$RES/cuda/skip.tap"
        note "  skipped: no CUDA toolkit at $NVCC"
    else
        CUDA_TREE=$(mktemp -d /tmp/t4r-cuda.XXXXXX)
        tar -C "$REPO" --exclude=./build --exclude=./test/results --exclude='*.o' \
            --exclude='*.so' --exclude='*.bc' --exclude=./.git -cf - . | tar -C "$CUDA_TREE" -xf -
        if ( cd "$CUDA_TREE" && make USE_CUDA=1 PG_CONFIG="$T4R_PG_BINDIR/pg_config" \
                 && make USE_CUDA=1 PG_CONFIG="$T4R_PG_BINDIR/pg_config" cuda-tests ) \
                >"$RES/cuda/build.log" 2>&1; then
            PASS=$((PASS + 1)); note "  make USE_CUDA=1 (extension + cuda-tests): ok"
            ( ulimit -c 0; cd "$CUDA_TREE" && timeout 600 ./build/cuda_parity ) \
                >"$RES/cuda/cuda_parity.tap" 2>&1
            tap_count "cuda/cuda_parity" "$RES/cuda/cuda_parity.tap" $?
            # keep the CUDA build's library for test/pgtap/cuda_build.sh
            # (readable by the server's user)
            CUDA_SO_DIR=$(mktemp -d /tmp/t4r-cudaso.XXXXXX)
            chmod 755 "$CUDA_SO_DIR"
            install -m 644 "$CUDA_TREE/tim4rec.so" "$CUDA_SO_DIR/tim4rec.so" &&
                export T4R_CUDA_SO=$CUDA_SO_DIR/tim4rec.so
        else
            tail -30 "$RES/cuda/build.log"
            FAIL=$((FAIL + 1)); fail_item cuda-build
        fi
        rm -rf "$CUDA_TREE"
    fi
    # a representative subset of the emulated suite (T4R_PARITY_SUBSET=1:
    # 5 of 19 configurations, a 6-step run, a small fit; the whole suite,
    # ~40 CPU-minutes on a loaded 2-core machine, is `make cuda-emu-parity`)
    if ( cd "$REPO" && make cuda-emu-parity-ci PG_CONFIG="$T4R_PG_BINDIR/pg_config" ) \
            >"$RES/cuda/cuda_parity_emu.tap" 2>&1; then rc=0; else rc=$?; fi
    tap_count "cuda/cuda_parity_emu" "$RES/cuda/cuda_parity_emu.tap" $rc
fi

# ---------------------------------------------------------------- cluster
NEED_CLUSTER=0
for s in regress pgtap scripts; do stage_on $s && NEED_CLUSTER=1; done
if [ $NEED_CLUSTER = 1 ]; then
    note "== throwaway cluster"
    if ! t4r_cluster_start 54329 >>"$RES/setup.log" 2>&1; then
        tail -20 "$RES/setup.log"; FAIL=$((FAIL + 1)); fail_item cluster; finish
    fi
    note "  PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER"
    export PGDATABASE=postgres
fi

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# fresh database with pgtap + tim4rec; name in $1
make_db() {
    psql_q -d postgres -c "DROP DATABASE IF EXISTS \"$1\"" -c "CREATE DATABASE \"$1\"" &&
    psql_q -d "$1" -c "CREATE EXTENSION IF NOT EXISTS pgtap" -c "CREATE EXTENSION tim4rec"
}

# ---------------------------------------------------------------- pg_regress
if stage_on regress; then
    note "== pg_regress (test/results/regress.log, regression.diffs)"
    rm -f regression.diffs regression.out
    NREG=$(make -s print-REGRESS PG_CONFIG="$T4R_PG_BINDIR/pg_config" | wc -w)
    if [ "$NREG" -eq 0 ]; then
        note "  no sql/*.sql tests yet"
    else
        make installcheck PG_CONFIG="$T4R_PG_BINDIR/pg_config" \
            PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" >"$RES/regress.log" 2>&1
        rc=$?
        ok=$(grep -cE '^(test )?[[:space:]]*[A-Za-z0-9_]+[[:space:]]+\.\.\. ok' "$RES/regress.log")
        bad=$(grep -cE '\.\.\. (FAILED|failed)' "$RES/regress.log")
        [ -f regression.diffs ] && cp regression.diffs "$RES/regression.diffs"
        if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
        PASS=$((PASS + ok)); FAIL=$((FAIL + bad))
        grep -E '\.\.\. ' "$RES/regress.log" | sed 's/^/  /' | tee -a "$RES/summary.log"
        if [ "$bad" -gt 0 ]; then
            fail_item pg_regress
            tail -15 "$RES/regress.log"
        fi
        note "  pg_regress: $ok passed, $bad failed"
    fi
fi

# ---------------------------------------------------------------- pgTAP
if stage_on pgtap; then
    note "== pgTAP (test/results/pgtap/)"
    shopt -s nullglob
    files=(test/pgtap/*.sql)
    [ ${#files[@]} -eq 0 ] && note "  no test/pgtap/*.sql yet"
    PROVE_SETS=()
    [ -n "${T4R_FIXTURES:-}" ] && PROVE_SETS+=(-S "fixtures=$T4R_FIXTURES")
    [ -n "${T4R_DATA:-}" ] && PROVE_SETS+=(-S "data=$T4R_DATA")
    for f in "${files[@]}"; do
        n=$(basename "$f" .sql)
        db="t4r_tap_$n"
        out="$RES/pgtap/$n.tap"
        if ! make_db "$db" >"$out" 2>&1; then
            note "  $n: could not create database with pgtap + tim4rec"
            cat "$out"; FAIL=$((FAIL + 1)); fail_item "pgtap/$n"; continue
        fi
        PGDATABASE=$db timeout 900 pg_prove --verbose --nocolor -d "$db" "${PROVE_SETS[@]}" "$f" \
            >>"$out" 2>&1
        rc=$?
        # pg_prove -v prints the raw TAP lines; "file.sql .. " may prefix the plan
        sed -i 's/^test\/pgtap\/[^ ]*\.sql \.\.[ .]*//' "$out"
        tap_count "pgtap/$n" "$out" $rc
        psql_q -d postgres -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1
    done
fi

# ---------------------------------------------------------------- scripts
if stage_on scripts; then
    note "== test scripts (test/results/scripts/)"
    shopt -s nullglob
    for f in test/pgtap/*.sh; do
        n=$(basename "$f" .sh)
        db="t4r_sh_$n"
        out="$RES/scripts/$n.tap"
        if ! make_db "$db" >"$out" 2>&1; then
            note "  $n: could not create database"; FAIL=$((FAIL + 1)); fail_item "scripts/$n"; continue
        fi
        PGDATABASE=$db timeout 900 bash "$f" </dev/null >>"$out" 2>&1
        tap_count "scripts/$n" "$out" $?
        psql_q -d postgres -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1
    done
fi

finish
