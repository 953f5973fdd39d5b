#!/usr/bin/env bash
# `make demo`: from a fresh Debian bookworm machine to a running demo.
# Installs missing packages (apt-get, through sudo when not root), builds,
# installs the extension, starts a throwaway cluster (initdb in a temporary
# directory, unix socket only), generates demo interactions, trains, prints
# recommendations for two users and the evaluation table, then stops and
# removes the cluster.  Options (environment): DEMO_USERS (default 2000),
# T4R_SKIP_INSTALL=1 (skip packages/build/install).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# shellcheck source=lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH

if [ "${T4R_SKIP_INSTALL:-0}" != 1 ]; then
    t4r_log "checking packages"
    t4r_ensure_packages
    t4r_log "building and installing the extension"
    t4r_build_install >/tmp/tim4rec-demo-build.$$.log 2>&1 || {
        tail -40 /tmp/tim4rec-demo-build.$$.log; t4r_log "build failed"; exit 1; }
    rm -f /tmp/tim4rec-demo-build.$$.log
fi

trap 't4r_cluster_stop' EXIT
trap 'exit 130' INT TERM
t4r_log "starting a throwaway cluster"
t4r_cluster_start 54330
export PGDATABASE=tim4rec_demo
psql -X -q -d postgres -c "CREATE DATABASE tim4rec_demo"

t4r_log "generating demo interactions (${DEMO_USERS:-2000} users)"
psql -X -q -v ON_ERROR_STOP=1 -v users="${DEMO_USERS:-2000}" -f test/scripts/demo_data.sql
psql -X -q -v ON_ERROR_STOP=1 -f test/scripts/demo.sql
t4r_log "demo done; stopping and removing the cluster"
