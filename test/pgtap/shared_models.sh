#!/usr/bin/env bash
# One copy of a model per server (src/shared_cache.c).
# Starts its OWN cluster with shared_preload_libraries = 'tim4rec' (unix
# socket only, private temporary directory) and checks that
#   * the first backend publishes the current version in dynamic shared
#     memory and the others attach it: one registry entry, one segment;
#   * shared and private (tim4rec.shared_models = off) serving give the same
#     recommendations;
#   * a new version replaces the shared one at the next call of an already
#     connected backend, and the old segment disappears from /dev/shm when
#     the last backend that mapped it moves on;
#   * a terminated backend, and a backend killed with SIGKILL (the server
#     restarts), leave the model usable for everybody else;
#   * a model that does not fit into tim4rec.shared_memory is served from
#     private memory with a NOTICE, never an error, with the same answers.
# Prints TAP.  Ignores the suite's PG* settings; T4R_PG_BINDIR gives the
# tools.  As root the server runs as the `postgres` OS user.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGHOSTADDR
trap '' PIPE

t4r_servers_dir t4r_shared || { echo "1..0 # SKIP no private directory for the server"; exit 1; }
TOP=$T4R_SERVERS_DIR
SU=$T4R_SU
cd "$TOP" || exit 1
DATA=$TOP/data
SOCK=$TOP
PORT=$((57000 + $$ % 500))
OPTS='{"epochs": 1, "hidden_size": 32, "max_seq_len": 20, "batch_size": 64}'

A_PID=
cleanup() {
    stop_a
    t4r_servers_remove "${T4R_KEEP:-}" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$SU" -d t4r "$@"; }
RECS="SELECT string_agg(u || ':' || item_id || ':' || score || ':' || rank, ',' ORDER BY u, rank)
      FROM generate_series(1, 20) u, LATERAL tim4rec_recommend(u::bigint, 10, 'sm') r"
REG="SELECT coalesce(string_agg(model_name || ':' || segment, ','), '') FROM tim4rec_shared_model_list()"
segfile() { echo "/dev/shm/PostgreSQL.$1"; }

stop_a() {
    if [ -n "$A_PID" ]; then kill "$A_PID" 2>/dev/null; wait "$A_PID" 2>/dev/null; fi
    A_PID=
}
# a long-lived session: send SQL, read one line back
start_a() {
    coproc A { "$BIN/psql" -X -q -At -h "$SOCK" -p "$PORT" -U "$SU" -d t4r 2>&1; }
    A_PID=$A_PID
    exec {A_IN}>&"${A[1]}"
}
ask_a() {   # one statement whose output is one line
    local line
    printf '%s;\n' "$1" >&"$A_IN"
    IFS= read -r -t 60 line <&"${A[0]}" || line="(no answer)"
    printf '%s\n' "$line"
}

echo "1..20"
t4r_initdb "$DATA" "$TOP/initdb.log" &&
t4r_pg_start "$DATA" "$PORT" "$TOP/server.log" -c max_connections=20 -c shared_preload_libraries=tim4rec
rc=$?
t4r_ok $rc "cluster with shared_preload_libraries = 'tim4rec' starts"
[ $rc = 0 ] || { t4r_diag "$(tail -5 "$TOP/initdb.log" "$TOP/server.log" 2>&1)"; exit 1; }

"$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U "$SU" -d postgres -c "CREATE DATABASE t4r" >/dev/null &&
q >"$TOP/setup.log" 2>&1 <<SQL
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE EXTENSION tim4rec;
CREATE TABLE interactions AS
SELECT u::bigint AS user_id, ((u * 7 + s * (1 + u % 3)) % 40 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 50 + s) * interval '1 hour' AS ts
FROM generate_series(1, 150) u, generate_series(1, 12) s;
CREATE INDEX ON interactions (user_id, ts);
SELECT tim4rec_train('interactions', 'sm', options => '$OPTS');
SQL
rc=$?; t4r_ok $rc "train model sm (version 1)"; [ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/setup.log")"

start_a
r1=$(ask_a "$RECS")
reg1=$(q -c "$REG")
h1=${reg1#sm:}
[ -n "$h1" ] && [ "$reg1" = "sm:$h1" ] && [ -e "$(segfile "$h1")" ]
t4r_ok $? "the first call publishes the model: one registry entry and its segment in /dev/shm ($reg1)"

r_other=$(q -c "$RECS")
[ "$(q -c "$REG")" = "$reg1" ] && [ -n "$r1" ] && [ "$r_other" = "$r1" ]
t4r_ok $? "another backend attaches the same segment and answers the same"

r_priv=$(q -c "SET tim4rec.shared_models = off" -c "$RECS")
[ "$r_priv" = "$r1" ] && [ "$(echo "$r1" | tr ',' '\n' | wc -l)" = 200 ]
t4r_ok $? "private serving (tim4rec.shared_models = off) gives the same 200 rows"

q -c "SET client_min_messages = warning" -c "SET tim4rec.threads = 1" \
  -c "SELECT tim4rec_train('interactions', 'sm', options => '{\"epochs\": 1, \"hidden_size\": 32, \"max_seq_len\": 20, \"batch_size\": 64, \"seed\": 9}')" >/dev/null
r2_fresh=$(q -c "$RECS")
reg2=$(q -c "$REG")
h2=${reg2#sm:}
[ -n "$h2" ] && [ "$h2" != "$h1" ] && [ "$r2_fresh" != "$r1" ]
t4r_ok $? "version 2: a new backend publishes a new segment ($reg2), the old entry is released"
[ -e "$(segfile "$h1")" ]
t4r_ok $? "the old segment still exists while the connected session still maps it"
r2_a=$(ask_a "$RECS")
[ "$r2_a" = "$r2_fresh" ]
t4r_ok $? "the connected session serves version 2 at its next call, without reconnecting"
t4r_wait_for 10 bash -c "[ -e '$(segfile "$h1")' ] && echo f || echo t"
t4r_ok $? "and the old segment is gone from /dev/shm once no backend maps it"

# a terminated backend
pid_a=$(ask_a "SELECT pg_backend_pid()")
q -c "SELECT pg_terminate_backend($pid_a)" >/dev/null
stop_a
[ "$(q -c "$RECS")" = "$r2_fresh" ] && [ "$(q -c "$REG")" = "$reg2" ] && [ -e "$(segfile "$h2")" ]
t4r_ok $? "after pg_terminate_backend of a session that mapped it, the shared model serves the others"

# SIGKILL of a backend that maps the model: the server restarts all backends
start_a
ask_a "$RECS" >/dev/null
pid_a=$(ask_a "SELECT pg_backend_pid()")
kill -KILL "$pid_a" 2>/dev/null
stop_a
t4r_wait_for 60 q -c "SELECT true"
r_after=$(q -c "$RECS")
[ "$r_after" = "$r2_fresh" ] && [ -n "$(q -c "$REG")" ]
t4r_ok $? "after a backend was killed with SIGKILL (server restart) the model is published again and answers the same"

# a model that does not fit: private memory, with a NOTICE
q -c "ALTER SYSTEM SET tim4rec.shared_memory = '64kB'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
q -c "SET client_min_messages = warning" -c "SET tim4rec.threads = 1" \
  -c "SELECT tim4rec_train('interactions', 'sm', options => '{\"epochs\": 1, \"hidden_size\": 32, \"max_seq_len\": 20, \"batch_size\": 64, \"seed\": 10}')" >/dev/null
out=$("$BIN/psql" -X -At -h "$SOCK" -p "$PORT" -U "$SU" -d t4r -c "$RECS" 2>&1)
echo "$out" | grep -q "NOTICE:  model \"sm\" is loaded into this backend's private memory"
t4r_ok $? "with tim4rec.shared_memory = 64kB the model is loaded privately with a NOTICE"
r3_priv=$(q -c "SET tim4rec.shared_models = off" -c "$RECS")
[ "$(echo "$out" | grep -v NOTICE | grep -v DETAIL | grep -v HINT)" = "$r3_priv" ]
t4r_ok $? "and answers as private serving does"
[ "$(q -c "$REG")" = "" ]
t4r_ok $? "nothing is left in the registry for the model (the stale version 2 entry was released)"
q -c "ALTER SYSTEM RESET tim4rec.shared_memory" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
q -c "$RECS" >/dev/null
[ -n "$(q -c "$REG")" ]
t4r_ok $? "with the default cap the next backend shares the model again"

# text users and uuid items (README "Id types"): the keys and their hash
# table live in the segment (flat, pointer-free) and serve other backends
q >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE TABLE shop AS
SELECT 'c' || lpad(user_id::text, 4, '0') AS customer,
       ('00000000-0000-4000-8000-' || lpad(item_id::text, 12, '0'))::uuid AS product, ts
FROM interactions;
CREATE INDEX ON shop (customer, ts);
SELECT tim4rec_train('shop', 'smt', 'customer', 'product', options => '{"epochs": 1, "hidden_size": 32, "max_seq_len": 20, "batch_size": 64}');
SQL
TRECS="SELECT string_agg(u || ':' || item_id || ':' || score || ':' || rank, ',' ORDER BY u, rank)
       FROM generate_series(1, 20) u, LATERAL tim4rec_recommend('c' || lpad(u::text, 4, '0'), NULL::uuid, 10, 'smt') r"
t1=$(q -c "$TRECS")
t2=$(q -c "$TRECS")
[ -n "$t1" ] && [ "$t1" = "$t2" ] && q -c "$REG" | tr ',' '\n' | grep -q '^smt:'
t4r_ok $? "a text/uuid-keyed model is published in shared memory and another backend answers the same"
t_priv=$(q -c "SET tim4rec.shared_models = off" -c "$TRECS")
[ "$t_priv" = "$t1" ] && [ "$(echo "$t1" | tr ',' '\n' | wc -l)" = 200 ] && echo "$t1" | grep -q ':00000000-0000-4000-8000-'
t4r_ok $? "and gives the 200 uuid rows of private serving"

# a cold start under load: 8 backends ask for a 100,000-item model (25 MB of
# weights) at the same moment; one of them loads it from the catalog and
# publishes it, the others wait for it and attach (a DEBUG1 message names
# each load from the catalog) instead of each parsing a private copy at once
REPO=${T4R_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
if ( cd "$REPO" && make -s build/pg_latency_model ) >"$TOP/gen.log" 2>&1 &&
   "$REPO/build/pg_latency_model" 100001 >"$TOP/wide.safetensors" && chmod 644 "$TOP/wide.safetensors" &&
   q -c "SELECT tim4rec_import('wide', pg_read_binary_file('$TOP/wide.safetensors'))" >/dev/null; then
    WREC="SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank)
          FROM tim4rec_recommend(ARRAY[5, 17, 99]::bigint[], ARRAY[1, 2, 3]::float8[], 10, 'wide')"
    pids=()
    for i in 1 2 3 4 5 6 7 8; do
        q -c "SET client_min_messages = debug1" -c "$WREC" >"$TOP/cold.$i" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    loads=$(cat "$TOP"/cold.* | grep -c 'loading model "wide"')
    answers=$(grep -hv '^DEBUG\|^NOTICE\|^LOG' "$TOP"/cold.* | sort -u | wc -l)
    [ "$loads" = 1 ] && [ "$answers" = 1 ]
    t4r_ok $? "8 backends at once on a cold 100,000-item model: loaded from the catalog $loads time(s), 1 expected; $answers distinct answer(s)"
    [ "$(q -c "$REG" | tr ',' '\n' | grep -c '^wide:')" = 1 ]
    t4r_ok $? "one registry entry for it"
    r_wide=$(q -c "SET tim4rec.shared_models = off" -c "$WREC")
    [ -n "$r_wide" ] && [ "$r_wide" = "$(grep -hv '^DEBUG\|^NOTICE\|^LOG' "$TOP/cold.1")" ]
    t4r_ok $? "and the waiters answer as private serving does"
else
    t4r_diag "$(tail -5 "$TOP/gen.log")"
    for t in 1 2 3; do t4r_ok 1 "cold start under load: could not build or import the 100,000-item model"; done
fi

