# shellcheck shell=bash
# pg_bench_lib.sh - throwaway clusters for test/bench/pg_load.sh and
# test/bench/pg_memory.sh: a primary with the settings a load test needs
# (test/scripts/lib.sh's cluster has max_connections = 40 and no WAL
# senders) and, on request, a hot standby of it (pg_basebackup -R, as
# test/pgtap/standby.sh).  Unix sockets in a private directory only; the
# servers run as `postgres` when we are root.  Source it from bash after
# setting REPO; it sources test/scripts/lib.sh (T4R_PG_BINDIR, t4r_log).
#
#   tb_start PORT [EXTRA -c OPTIONS]   primary; exports PGHOST PGPORT PGUSER, sets TB_DIR
#   tb_standby PORT                    hot standby of it (echo nothing; sets TB_SPORT)
#   tb_stop                            stop everything, remove TB_DIR (idempotent; trap it)
#   tb_machine                         "N CPUs, <model>, load a b c" for result headers
#
# Settings: T4R_BENCH_MAX_CONN (default 100), T4R_BENCH_SHARED_BUFFERS
# (default 256MB), T4R_BENCH_KEEP=1 keeps TB_DIR (logs) after tb_stop.

. "$REPO/test/scripts/lib.sh"

TB_DIR=
TB_DATADIRS=()
TB_EXTRA=()

tb_opts() {
    echo "-c max_connections=${T4R_BENCH_MAX_CONN:-100} -c shared_buffers=${T4R_BENCH_SHARED_BUFFERS:-256MB}" \
         "-c wal_level=replica -c hot_standby=on -c max_wal_senders=4 ${TB_EXTRA[*]}"
}

tb_start() {
    local port=$1
    shift
    TB_EXTRA=("$@")
    t4r_servers_dir t4r_bench || return 1
    TB_DIR=$T4R_SERVERS_DIR
    PGUSER=$T4R_SU
    local data=$TB_DIR/primary
    t4r_initdb "$data" "$TB_DIR/initdb.log" || {
        t4r_log "initdb failed:"; cat "$TB_DIR/initdb.log" >&2; return 1; }
    TB_DATADIRS+=("$data")
    # shellcheck disable=SC2046  # tb_opts prints -c NAME=VALUE words
    t4r_pg_start "$data" "$port" "$TB_DIR/primary.log" $(tb_opts) || {
        t4r_log "pg_ctl start failed:"; tail -20 "$TB_DIR/primary.log" >&2; return 1; }
    export PGHOST=$TB_DIR PGPORT=$port PGUSER
    t4r_log "primary up: PGHOST=$PGHOST PGPORT=$PGPORT ($(tb_opts))"
}

# hot standby of the primary, streaming; waits until it is streaming and has
# replayed everything the primary has written so far
tb_standby() {
    local port=$1 data=$TB_DIR/standby i lsn
    "${T4R_RUN[@]}" "$T4R_PG_BINDIR/pg_basebackup" -h "$TB_DIR" -p "$PGPORT" -U "$PGUSER" -D "$data" \
        -R -X stream -c fast >"$TB_DIR/basebackup.log" 2>&1 || {
        t4r_log "pg_basebackup failed:"; tail -20 "$TB_DIR/basebackup.log" >&2; return 1; }
    TB_DATADIRS+=("$data")
    # shellcheck disable=SC2046
    t4r_pg_start "$data" "$port" "$TB_DIR/standby.log" $(tb_opts) || {
        t4r_log "standby start failed:"; tail -20 "$TB_DIR/standby.log" >&2; return 1; }
    TB_SPORT=$port    # used by the caller
    lsn=$("$T4R_PG_BINDIR/psql" -X -At -p "$PGPORT" -d postgres -c "SELECT pg_current_wal_lsn()") || return 1
    for ((i = 0; i < 600; i++)); do
        [ "$("$T4R_PG_BINDIR/psql" -X -At -p "$port" -d postgres \
             -c "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" 2>/dev/null)" = t ] &&
        [ "$("$T4R_PG_BINDIR/psql" -X -At -p "$PGPORT" -d postgres \
             -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null)" = 1 ] && {
            t4r_log "standby up: port $port, streaming, replayed up to $lsn"
            return 0
        }
        sleep 0.2
    done
    t4r_log "standby did not catch up within 120 s"; tail -20 "$TB_DIR/standby.log" >&2
    return 1
}

tb_stop() {
    [ -n "$TB_DIR" ] && [ -d "$TB_DIR" ] || return 0
    local i dirs=()
    # the standby first (it would complain about the primary going away)
    for ((i = ${#TB_DATADIRS[@]} - 1; i >= 0; i--)); do dirs+=("${TB_DATADIRS[i]}"); done
    t4r_servers_remove "$([ "${T4R_BENCH_KEEP:-0}" = 1 ] && echo keep)" "${dirs[@]}"
    TB_DIR=
    TB_DATADIRS=()
}

tb_machine() {
    echo "$(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
}
