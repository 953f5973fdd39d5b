# shellcheck shell=bash
# Helpers shared by test/run_tests.sh, test/scripts/demo.sh, the shell test
# scripts test/pgtap/*.sh and the benchmark scripts:
#   t4r_ensure_packages   apt-get install what is missing (sudo when not root)
#   t4r_build_install     make + make install (the only step that needs root)
#   t4r_cluster_start     throwaway cluster: initdb in a temp dir, unix socket only
#   t4r_cluster_stop      stop it and remove the directory
# Servers of a script's own (standby.sh, plproxy.sh, shared_models.sh,
# pg_cron.sh, test/bench/pg_bench_lib.sh; t4r_cluster_start uses them too):
#   t4r_servers_dir NAME  private temporary directory for data directories,
#                         logs and unix sockets (ports cannot clash with
#                         anyone's); sets T4R_SERVERS_DIR, T4R_SU (the servers'
#                         OS user) and T4R_RUN (runs a program as that user)
#   t4r_initdb DATADIR LOG              initdb: trust, UTF8, C.UTF-8 (else no locale)
#   t4r_pg_start DATADIR PORT LOG [-c NAME=VALUE...]
#                         start it, unix socket in T4R_SERVERS_DIR only, fsync off
#   t4r_pg_stop DATADIR...              stop those that run: fast, else immediate
#   t4r_servers_remove KEEP DATADIR...  stop them, remove T4R_SERVERS_DIR unless
#                                       KEEP is non-empty (then say where it is)
# TAP for the shell test scripts:
#   t4r_ok STATUS DESCRIPTION           "ok N - ..." when STATUS is 0, else "not ok N"
#   t4r_diag LINE...                    "# LINE" each
#   t4r_tap_status                      exit status for the end: 1 if any failed
#   t4r_wait_for SECONDS CMD...         until CMD prints t (every T4R_WAIT_STEP,
#                                       default 0.1 s); status 1 on time-out
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

# ---------------------------------------------------------------- servers
# PostgreSQL refuses to run as root: as root the servers run as `postgres`.
t4r_servers_dir() {
    T4R_SERVERS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/${1:-t4r}.XXXXXX") || return 1
    chmod 755 "$T4R_SERVERS_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { t4r_log "user postgres does not exist"; return 1; }
        chown postgres "$T4R_SERVERS_DIR"
        T4R_RUN=(runuser -u postgres --)
        T4R_SU=postgres
    else
        T4R_RUN=()
        T4R_SU=$(id -un)
    fi
}

t4r_initdb() {    # DATADIR LOG
    { "${T4R_RUN[@]}" "$T4R_PG_BINDIR/initdb" -D "$1" -A trust -U "$T4R_SU" -E UTF8 --locale=C.UTF-8 ||
      { rm -rf "$1"; "${T4R_RUN[@]}" "$T4R_PG_BINDIR/initdb" -D "$1" -A trust -U "$T4R_SU" -E UTF8 --no-locale; }
    } >"$2" 2>&1
}

t4r_pg_start() {    # DATADIR PORT LOG [-c NAME=VALUE...]
    local data=$1 port=$2 log=$3
    shift 3
    "${T4R_RUN[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$data" -w -t 120 -l "$log" \
        -o "-c listen_addresses='' -k $T4R_SERVERS_DIR -p $port -c fsync=off $*" start >/dev/null 2>&1
}

t4r_pg_stop() {    # DATADIR...
    local d
    for d in "$@"; do
        [ -f "$d/postmaster.pid" ] || continue
        "${T4R_RUN[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        "${T4R_RUN[@]}" "$T4R_PG_BINDIR/pg_ctl" -D "$d" -m immediate -w -t 60 stop >/dev/null 2>&1
    done
}

t4r_servers_remove() {    # KEEP DATADIR...
    local keep=$1
    shift
    [ -n "${T4R_SERVERS_DIR:-}" ] && [ -d "$T4R_SERVERS_DIR" ] || return 0
    t4r_pg_stop "$@"
    if [ -n "$keep" ]; then
        echo "# kept $T4R_SERVERS_DIR" >&2
    else
        rm -rf "$T4R_SERVERS_DIR"
    fi
    T4R_SERVERS_DIR=
}

# ---------------------------------------------------------------- TAP
T4R_TAP_N=0
T4R_TAP_FAILS=0
t4r_ok() {    # STATUS DESCRIPTION
    T4R_TAP_N=$((T4R_TAP_N + 1))
    if [ "$1" = 0 ]; then
        echo "ok $T4R_TAP_N - $2"
    else
        echo "not ok $T4R_TAP_N - $2"
        T4R_TAP_FAILS=$((T4R_TAP_FAILS + 1))
    fi
}
t4r_diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
t4r_tap_status() { [ "$T4R_TAP_FAILS" -eq 0 ]; }

t4r_wait_for() {    # SECONDS CMD...
    local end=$((SECONDS + $1))
    shift
    while :; do
        [ "$("$@" 2>/dev/null)" = t ] && return 0
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep "${T4R_WAIT_STEP:-0.1}"
    done
}

# ---------------------------------------------------------------- the suite's cluster
# Start a throwaway cluster.  Sets and exports PGHOST (the socket directory),
# PGPORT, PGUSER, T4R_CLUSTER_DIR.
t4r_cluster_start() {
    local port=${1:-54329}
    t4r_servers_dir tim4rec-pg || return 1
    T4R_CLUSTER_DIR=$T4R_SERVERS_DIR
    PGUSER=$T4R_SU
    local data=$T4R_CLUSTER_DIR/data
    t4r_initdb "$data" "$T4R_CLUSTER_DIR/initdb.log" || {
        t4r_log "initdb failed:"; cat "$T4R_CLUSTER_DIR/initdb.log" >&2; return 1; }
    # small but sane settings
    t4r_pg_start "$data" "$port" "$T4R_CLUSTER_DIR/server.log" \
        -c max_connections=40 -c shared_buffers=128MB || {
        t4r_log "pg_ctl start failed:"; cat "$T4R_CLUSTER_DIR/server.log" >&2; return 1; }
    export PGHOST=$T4R_CLUSTER_DIR PGPORT=$port PGUSER T4R_CLUSTER_DIR
    t4r_log "cluster up: PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER"
}

# Stop and remove the cluster (safe to call twice, and from a trap).
# With T4R_KEEP_LOG=<file>, the server log is copied there first.
t4r_cluster_stop() {
    [ -n "${T4R_CLUSTER_DIR:-}" ] && [ -d "$T4R_CLUSTER_DIR" ] || return 0
    t4r_pg_stop "$T4R_CLUSTER_DIR/data"
    if [ -n "${T4R_KEEP_LOG:-}" ] && [ -f "$T4R_CLUSTER_DIR/server.log" ]; then
        cp "$T4R_CLUSTER_DIR/server.log" "$T4R_KEEP_LOG" 2>/dev/null
    fi
    rm -rf "$T4R_CLUSTER_DIR"
    T4R_CLUSTER_DIR=
}
