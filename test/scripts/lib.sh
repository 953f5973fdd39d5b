# shellcheck shell=bash
# Helpers shared by test/run_tests.sh and test/scripts/demo.sh:
#   t4r_ensure_packages   apt-get install what is missing (sudo when not root)
#   t4r_build_install     make + make install (the only step that needs root)
#   t4r_cluster_start     throwaway cluster: initdb in a temp dir, unix socket only
#   t4r_cluster_stop      stop it and remove the directory
# Source it from bash with `set -u` tolerated.  Nothing here prompts for input.

T4R_PG_BINDIR=${T4R_PG_BINDIR:-/usr/lib/postgresql/15/bin}
T4R_PACKAGES=(build-essential postgresql-15 postgresql-server-dev-15 libopenblas-dev
              libjansson-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
              postgresql-15-plproxy postgresql-15-cron)

t4r_log() { printf '[tim4rec] %s\n' "$*" >&2; }

# run a command as root: directly when we are root, else through sudo
t4r_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        t4r_log "need root for: $* (not root and sudo is not installed)"
        return 1
    fi
}

t4r_missing_packages() {
    local p missing=()
    for p in "${T4R_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    echo "${missing[@]}"
}

t4r_ensure_packages() {
    local missing
    missing=$(t4r_missing_packages)
    if [ -z "$missing" ]; then
        t4r_log "packages: all present"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        t4r_log "missing packages ($missing) and no apt-get: install them by hand"
        return 1
    fi
    t4r_log "installing: $missing"
    # shellcheck disable=SC2086
    t4r_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    t4r_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

# make -j and make install of the extension; PG_CONFIG is the PostgreSQL 15 one
t4r_build_install() {
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    make -j"$jobs" PG_CONFIG="$T4R_PG_BINDIR/pg_config" || return 1
    t4r_as_root make install PG_CONFIG="$T4R_PG_BINDIR/pg_config"
}

# Start a throwaway cluster.  Sets and exports PGHOST (the socket directory),
# PGPORT, PGUSER, T4R_CLUSTER_DIR.  The server runs as `postgres` when we are
# root (PostgreSQL refuses to run as root), else as the current user.
t4r_cluster_start() {
    local port=${1:-54329}
    T4R_CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tim4rec-pg.XXXXXX") || return 1
    chmod 755 "$T4R_CLUSTER_DIR"
    local run=()
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { t4r_log "user postgres does not exist"; return 1; }
        chown postgres "$T4R_CLUSTER_DIR"
        run=(runuser -u postgres --)
        PGUSER=postgres
    else
        PGUSER=$(id -un)
    fi
    local data=$T4R_CLUSTER_DIR/data
    "${run[@]}" "$T4R_PG_BINDIR/initdb" -D "$data" -A trust -U "$PGUSER" -E UTF8 --locale=C.UTF-8 \
        >"$T4R_CLUSTER_DIR/initdb.log" 2>&1 ||
    "${run[@]}" "$T4R_PG_BINDIR/initdb" -D "$data" -A trust -U "$PGUSER" -E UTF8 --no-locale \
        >"$T4R_CLUSTER_DIR/initdb.log" 2>&1 || {
        t4r_log "initdb failed:"; cat "$T4R_CLUSTER_DIR/initdb.log" >&2; return 1; }
    # unix socket only, in our private directory; small but sane settings
    "${run[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$data" -w -t 60 -l "$T4R_CLUSTER_DIR/server.log" \
        -o "-c listen_addresses='' -k $T4R_CLUSTER_DIR -p $port -c fsync=off -c max_connections=40 -c shared_buffers=128MB" \
        start >/dev/null || {
        t4r_log "pg_ctl start failed:"; cat "$T4R_CLUSTER_DIR/server.log" >&2; return 1; }
    export PGHOST=$T4R_CLUSTER_DIR PGPORT=$port PGUSER T4R_CLUSTER_DIR
    T4R_CLUSTER_RUN=("${run[@]}")
    t4r_log "cluster up: PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER"
}

# Stop and remove the cluster (safe to call twice, and from a trap).
# With T4R_KEEP_LOG=<file>, the server log is copied there first.
t4r_cluster_stop() {
    [ -n "${T4R_CLUSTER_DIR:-}" ] && [ -d "$T4R_CLUSTER_DIR" ] || return 0
    if [ -f "$T4R_CLUSTER_DIR/data/postmaster.pid" ]; then
        "${T4R_CLUSTER_RUN[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$T4R_CLUSTER_DIR/data" -m fast -w -t 60 stop \
            >/dev/null 2>&1 ||
        "${T4R_CLUSTER_RUN[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$T4R_CLUSTER_DIR/data" -m immediate stop \
            >/dev/null 2>&1
    fi
    if [ -n "${T4R_KEEP_LOG:-}" ] && [ -f "$T4R_CLUSTER_DIR/server.log" ]; then
        cp "$T4R_CLUSTER_DIR/server.log" "$T4R_KEEP_LOG" 2>/dev/null
    fi
    rm -rf "$T4R_CLUSTER_DIR"
    T4R_CLUSTER_DIR=
}
