#!/usr/bin/env bash
# tim4rec on a hot standby.  Starts its OWN primary and a streaming
# replica (pg_basebackup -R) in a private temporary directory, unix sockets
# only, and checks that
#   * reads work on the standby and give the primary's answers: recommend
#     (user form, items with timestamptz[] / float8[] times, a
#     tim4rec_sequence), tim4rec_recommend_all (also equal to the LATERAL
#     per-user form there), tim4rec_evaluate, tim4rec_model_list, tim4rec_export;
#   * writes (tim4rec_train, tim4rec_deploy, tim4rec_drop, tim4rec_import)
#     fail with SQLSTATE 25006 (read_only_sql_transaction);
#   * ONE standby session, kept open all along (a psql coprocess), serves the
#     new current version once the primary's new version (and later a
#     rollback) has been replayed, without reconnecting.
# Prints TAP.  Ignores PGHOST/PGPORT/PGDATABASE of the suite's cluster (it
# uses none of it); T4R_PG_BINDIR gives initdb, pg_ctl, pg_basebackup, psql.
# As root, the servers run as the `postgres` OS user (as test/scripts/lib.sh).
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGHOSTADDR
trap '' PIPE                      # a dead psql coprocess must not kill us
START=$(date +%s)

t4r_servers_dir t4r_standby || { echo "1..0 # SKIP no private directory for the servers"; exit 1; }
TOP=$T4R_SERVERS_DIR
SU=$T4R_SU
cd "$TOP" || exit 1                # the server's user may not read the caller's cwd
PDATA=$TOP/primary
SDATA=$TOP/standby
SOCK=$TOP                          # private, so the ports cannot clash with anyone
PPORT=$((56000 + $$ % 500))
SPORT=$((PPORT + 500))
MODEL=sb
OPTS='{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}'
OPTS2='{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": 77}'

SB_PID=                            # set by coproc SB below
cleanup() {
    if [ -n "$SB_PID" ]; then
        exec {SB_IN}>&- 2>/dev/null
        kill "$SB_PID" 2>/dev/null
        wait "$SB_PID" 2>/dev/null
    fi
    t4r_servers_remove "${T4R_STANDBY_KEEP:-}" "$SDATA" "$PDATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# psql on the primary / a new connection to the standby
qp() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PPORT" -U "$SU" "$@"; }
qs() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$SPORT" -U "$SU" "$@"; }

SERVER_OPTS=(-c max_connections=20 -c shared_buffers=32MB -c wal_level=replica -c hot_standby=on
             -c max_wal_senders=4)

# Wait until the standby has replayed everything the primary has written.
wait_replay() {
    local lsn
    lsn=$(qp -d postgres -c "SELECT pg_current_wal_lsn()") || return 1
    t4r_wait_for 60 qs -d postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" && return 0
    t4r_diag "standby did not replay up to $lsn within 60 s (replayed: $(qs -d postgres -c 'SELECT pg_last_wal_replay_lsn()' 2>&1))"
    return 1
}

echo "1..29"

# ---------------------------------------------------------------- clusters
t4r_initdb "$PDATA" "$TOP/initdb.log" && t4r_pg_start "$PDATA" "$PPORT" "$TOP/primary.log" "${SERVER_OPTS[@]}"
rc=$?
t4r_ok $rc "primary: initdb and start (wal_level=replica, unix socket only, port $PPORT)"
[ $rc = 0 ] || { t4r_diag "$(tail -5 "$TOP/initdb.log" "$TOP/primary.log" 2>&1)"; }

"${T4R_RUN[@]}" "$BIN/pg_basebackup" -h "$SOCK" -p "$PPORT" -U "$SU" -D "$SDATA" -R -X stream -c fast \
    >"$TOP/basebackup.log" 2>&1 &&
t4r_pg_start "$SDATA" "$SPORT" "$TOP/standby.log" "${SERVER_OPTS[@]}" &&
[ "$(qs -d postgres -c "SELECT pg_is_in_recovery()")" = t ] &&
t4r_wait_for 30 qp -d postgres -c "SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming'"
rc=$?
t4r_ok $rc "standby: pg_basebackup -R, hot standby in recovery, streaming from the primary (port $SPORT)"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/basebackup.log" "$TOP/standby.log" 2>&1)"

# ---------------------------------------------------------------- primary: data + version 1
qp -d postgres -c "CREATE DATABASE t4r" >/dev/null 2>&1 &&
qp -d t4r >"$TOP/setup.log" 2>&1 <<SQL
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE EXTENSION tim4rec;
-- 150 users x 12 interactions over 40 items
CREATE TABLE interactions AS
SELECT u::bigint AS user_id, ((u * 7 + s * (1 + u % 3)) % 40 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 50 + s) * interval '1 hour' AS ts
FROM generate_series(1, 150) u, generate_series(1, 12) s;
CREATE INDEX ON interactions (user_id, ts);
SELECT version FROM tim4rec_train('interactions', '$MODEL', options => '$OPTS');
SQL
rc=$?
t4r_ok $rc "primary: CREATE EXTENSION, 150 users x 12 interactions, train version 1"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/setup.log")"

wait_replay
t4r_ok $? "standby replayed the primary's WAL (pg_last_wal_replay_lsn >= pg_current_wal_lsn)"

# ---------------------------------------------------------------- the long-lived standby session
coproc SB { exec "$BIN/psql" -X -q -At -h "$SOCK" -p "$SPORT" -U "$SU" -d t4r 2>&1; }
exec {SB_IN}>&"${SB[1]}" {SB_OUT}<&"${SB[0]}"
# sq SQL: run SQL (statements end with ';') in the standby session, print its output
sq() {
    local line out=
    printf '%s\n' "$1" '\echo __t4r_end__' >&"$SB_IN" 2>/dev/null || return 1
    while IFS= read -r -t 120 line <&"$SB_OUT"; do
        [ "$line" = __t4r_end__ ] && { printf '%s' "$out"; return 0; }
        out+=$line$'\n'
    done
    printf '%s' "$out"
    return 1
}
sq "SET client_min_messages = warning; SET tim4rec.threads = 1;" >/dev/null
PID0=$(sq "SELECT pg_backend_pid();")
[ -n "$PID0" ] && [ "$(sq "SELECT pg_is_in_recovery();")" = t ] &&
[ "$(sq "SELECT current_setting('transaction_read_only');")" = on ]
t4r_ok $? "one standby session opened (backend pid $PID0), in recovery, read only"

# the queries, run on the primary (new connections) and in the standby session
USERS="ARRAY[1, 2, 3, 17, 42, 99, 120, 150]"
Q_USERS="SELECT string_agg(u || ':' || item_id || ':' || rank || ':' || score, ',' ORDER BY u, rank)
         FROM unnest($USERS) u, LATERAL tim4rec_recommend(u::bigint, 10, '$MODEL') r;"
Q_TSTZ="SELECT string_agg(item_id || ':' || rank || ':' || score, ',' ORDER BY rank)
        FROM tim4rec_recommend(ARRAY[3, 11, 19, 27]::bigint[],
             ARRAY['2024-03-01 10:00+00', '2024-03-01 11:00+00', '2024-03-02 09:00+00', '2024-03-05 09:00+00']::timestamptz[],
             8, '$MODEL');"
Q_F8="SELECT string_agg(item_id || ':' || rank || ':' || score, ',' ORDER BY rank)
      FROM tim4rec_recommend(ARRAY[5, 6, 7]::bigint[], ARRAY[1.7e9, 1.7e9 + 600, 1.7e9 + 86400]::float8[],
           8, '$MODEL', exclude => ARRAY[8]::bigint[]);"
Q_SEQ="SELECT string_agg(s.user_id || ':' || item_id || ':' || rank || ':' || score, ',' ORDER BY s.user_id, rank)
       FROM (SELECT user_id, tim4rec_seq(item_id, ts, 20) AS seq FROM interactions
             WHERE user_id IN (4, 44, 144) GROUP BY user_id) s,
            LATERAL tim4rec_recommend(s.seq, 5, '$MODEL') r;"
Q_EVAL="SELECT count(*) || ' rows: ' || string_agg(model || ':' || split || ':' || metric || ':' || k || ':' ||
                round(value::numeric, 6), ',' ORDER BY model, split, metric, k)
        FROM tim4rec_evaluate('$MODEL', '{5,10}');"
Q_LIST="SELECT string_agg(model_name || ':' || version || ':' || is_current || ':' || n_items || ':' ||
                md5(config::text), ',' ORDER BY version)
        FROM tim4rec_model_list WHERE model_name = '$MODEL';"
Q_ALL="SELECT count(*) || ' rows ' || md5(string_agg(user_id || ':' || item_id || ':' || rank || ':' || score, ','
                ORDER BY user_id, rank)) FROM tim4rec_recommend_all('$MODEL', 10);"
Q_ALL_LAT="SELECT count(*) || ' rows ' || md5(string_agg(u.user_id || ':' || item_id || ':' || rank || ':' || score, ','
                ORDER BY u.user_id, rank)) FROM (SELECT DISTINCT user_id FROM interactions) u,
                LATERAL tim4rec_recommend(u.user_id, 10, '$MODEL') r;"
Q_CUR="SELECT version FROM tim4rec_model_list WHERE model_name = '$MODEL' AND is_current;"
Q_EXP="SELECT md5(tim4rec_export('$MODEL')) || ' ' || length(tim4rec_export('$MODEL'));"

same() {    # $1 = name, $2 = query: the standby session's answer equals the primary's
    local p s
    p=$(qp -d t4r -c "SET client_min_messages = warning" -c "SET tim4rec.threads = 1" -c "$2" 2>&1)
    s=$(sq "$2")
    if [ -n "$p" ] && [ "$p" = "$s" ] && [[ "$p" != *ERROR* ]]; then
        t4r_ok 0 "$1"
    else
        t4r_ok 1 "$1"
        t4r_diag "primary: ${p:0:300}" "standby: ${s:0:300}"
    fi
}

same "recommend, user form (8 users, top 10: items, ranks and scores) equals the primary's" "$Q_USERS"
R1=$(sq "$Q_USERS")
same "recommend with items and timestamptz[] times equals the primary's" "$Q_TSTZ"
same "recommend with items and float8[] times (and exclude) equals the primary's" "$Q_F8"
same "recommend with a tim4rec_sequence from tim4rec_seq equals the primary's" "$Q_SEQ"
same "tim4rec_recommend_all (all 150 users, top 10) equals the primary's" "$Q_ALL"
A_ALL=$(sq "$Q_ALL")
[[ "$A_ALL" == "1500 rows "* ]] && [ "$A_ALL" = "$(sq "$Q_ALL_LAT")" ]
t4r_ok $? "on the standby, tim4rec_recommend_all equals the LATERAL tim4rec_recommend form (${A_ALL:0:40})"
same "tim4rec_evaluate equals the primary's" "$Q_EVAL"
same "tim4rec_model_list equals the primary's" "$Q_LIST"
same "tim4rec_export: the same bytes as on the primary (md5, length)" "$Q_EXP"

# writes: each must fail with 25006 read_only_sql_transaction
write_fails() {    # $1 = name, $2 = statement
    local out st
    out=$(sq "$2
\\echo SQLSTATE :SQLSTATE")
    st=$(printf '%s\n' "$out" | sed -n 's/^SQLSTATE //p' | tail -1)
    [ "$st" = 25006 ]
    t4r_ok $? "$1 on the standby fails with SQLSTATE 25006 (got $st)"
    [ "$st" = 25006 ] || t4r_diag "${out:0:300}"
}
write_fails "tim4rec_train" "SELECT version FROM tim4rec_train('interactions', '$MODEL', options => '$OPTS');"
write_fails "tim4rec_deploy" "SELECT tim4rec_deploy('$MODEL', 1);"
write_fails "tim4rec_drop" "SELECT tim4rec_drop('$MODEL', 1);"
write_fails "tim4rec_import" "SELECT tim4rec_import('${MODEL}_copy', tim4rec_export('$MODEL'));"
[ "$(sq "$Q_CUR")" = 1 ] && [ "$(sq "$Q_LIST")" = "$(qp -d t4r -c "$Q_LIST")" ]
t4r_ok $? "after the failed writes the standby still has version 1 only, as the primary"

# ---------------------------------------------------------------- a new version on the primary
V2=$(qp -d t4r -c "SET client_min_messages = warning" -c "SET tim4rec.threads = 1" \
        -c "SELECT version FROM tim4rec_train('interactions', '$MODEL', options => '$OPTS2')" 2>&1)
[ "$V2" = 2 ] && wait_replay
t4r_ok $? "primary trained version 2 (got: ${V2:0:100}) and the standby replayed it"

[ "$(sq "$Q_CUR")" = 2 ]
t4r_ok $? "the same standby session sees version 2 as current in tim4rec_model_list"
same "the same standby session recommends what the primary's version 2 does" "$Q_USERS"
R2=$(sq "$Q_USERS")
[ -n "$R1" ] && [ -n "$R2" ] && [ "$R1" != "$R2" ]
t4r_ok $? "and that differs from its version 1 answers (its cached model was replaced)"
same "the same standby session: recommend with a tim4rec_sequence follows version 2" "$Q_SEQ"
same "the same standby session: tim4rec_recommend_all follows version 2" "$Q_ALL"
same "the same standby session: tim4rec_export gives version 2's bytes" "$Q_EXP"

# ---------------------------------------------------------------- rollback on the primary
qp -d t4r -c "SELECT tim4rec_deploy('$MODEL', 1)" >/dev/null 2>&1 && wait_replay &&
[ "$(sq "$Q_CUR")" = 1 ]
t4r_ok $? "primary deployed version 1 again; the standby session sees it current"
R3=$(sq "$Q_USERS")
[ -n "$R1" ] && [ "$R3" = "$R1" ] && [ "$R3" = "$(qp -d t4r -c "$Q_USERS")" ]
t4r_ok $? "the same standby session gives version 1's recommendations again, as the primary"

PID1=$(sq "SELECT pg_backend_pid();")
[ -n "$PID0" ] && [ "$PID0" = "$PID1" ] && kill -0 "$SB_PID" 2>/dev/null
t4r_ok $? "one standby backend all along, never reconnected (pid $PID0 = $PID1)"

t4r_diag "standby.sh: $(( $(date +%s) - START )) s"
t4r_tap_status
