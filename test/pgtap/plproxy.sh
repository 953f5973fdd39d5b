#!/usr/bin/env bash
# Sharding tim4rec with PL/Proxy.  Starts its OWN three
# clusters in a private temporary directory (unix sockets there only):
#   proxy cluster:  database `single` (the reference: ALL interactions, the
#                   model trained there) and database `proxy` (CREATE
#                   EXTENSION plproxy, SQL/MED cluster `shards`, the function
#                   proxy.tim4rec_recommend(user_id, k));
#   shard0, shard1: database `shard` with the interactions of the users whose
#                   hashint8(user_id) & 1 is 0 resp. 1 (PL/Proxy's own
#                   partition rule for 2 partitions), the model copied from
#                   `single` with tim4rec_export / tim4rec_import (item ids
#                   kept), and the wrapper shard_recommend(user_id, k), which
#                   builds the user's sequence from the local rows with
#                   tim4rec_seq and calls tim4rec_recommend(seq, k, model).
# Checks: the data split and PL/Proxy's routing agree; for every user the
# proxy's answer (items, ranks, scores as text) equals the single node's,
# both through the same wrapper and through the user form
# tim4rec_recommend(user_id, k, model); both shards serve users; cold start
# for unknown users; a shard without the model raises the single node's
# error (SQLSTATE and message) through the proxy.  README "Scaling out"
# shows the same SQL as a recipe.
# Prints TAP.  Ignores PGHOST/PGPORT/PGDATABASE of the suite's cluster;
# T4R_PG_BINDIR gives initdb, pg_ctl, psql (and must hold plproxy and tim4rec).
# As root, the servers run as the `postgres` OS user (as test/scripts/lib.sh).
# T4R_PLPROXY_KEEP=1 keeps the directory (logs) after the run.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGHOSTADDR
START=$(date +%s)

t4r_servers_dir t4r_plproxy || { echo "1..0 # SKIP no private directory for the servers"; exit 1; }
TOP=$T4R_SERVERS_DIR
SU=$T4R_SU
cd "$TOP" || exit 1                # the server's user may not read the caller's cwd
SOCK=$TOP                          # private, so the ports cannot clash with anyone
XPORT=$((57000 + $$ % 300))        # proxy cluster (databases `proxy` and `single`)
PORT0=$((XPORT + 300))             # shard 0
PORT1=$((XPORT + 600))             # shard 1
MODEL=shop
OPTS='{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}'
# shellcheck disable=SC2089  # JSON text, never word-split; declare -p quotes it for the rollout script
OPTS2='{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": 77}'
NUSERS=200
K=10

cleanup() { t4r_servers_remove "${T4R_PLPROXY_KEEP:-}" "$TOP/proxy" "$TOP/shard0" "$TOP/shard1"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# psql: q PORT DB [psql args...]
q() {
    local port=$1 db=$2
    shift 2
    "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" -U "$SU" -d "$db" "$@"
}
qsingle() { q "$XPORT" single "$@"; }
qproxy() { q "$XPORT" proxy "$@"; }
qshard() { local i=$1; shift; q "$([ "$i" = 0 ] && echo "$PORT0" || echo "$PORT1")" shard "$@"; }

echo "1..21"

# ---------------------------------------------------------------- clusters
# one initdb, copied: three initdb runs cost seconds on a small machine
start_cluster() {    # $1 = data directory, $2 = port
    t4r_pg_start "$1" "$2" "$1.log" -c max_connections=30 -c shared_buffers=32MB -c tim4rec.threads=1
}
{
    t4r_initdb "$TOP/proxy" "$TOP/initdb.log" &&
    cp -a "$TOP/proxy" "$TOP/shard0" && cp -a "$TOP/proxy" "$TOP/shard1" &&
    start_cluster "$TOP/proxy" "$XPORT" && start_cluster "$TOP/shard0" "$PORT0" &&
    start_cluster "$TOP/shard1" "$PORT1"
}
rc=$?
t4r_ok $rc "three clusters up: proxy (port $XPORT), shard0 ($PORT0), shard1 ($PORT1); unix sockets only"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/initdb.log" "$TOP"/*.log 2>&1)"

# ---------------------------------------------------------------- the single node: all data, the model
# The wrapper each shard runs (and the single node too, as the reference): the
# user's sequence from the local interactions, then the sequence form of
# tim4rec_recommend.  An imported model has no source relation, so the user
# form cannot read the history on a shard.  A user without rows gets an empty
# sequence (tim4rec_seq over no rows), which recommend answers with its cold
# start.
SHARD_FN="
CREATE FUNCTION public.shard_recommend(user_id bigint, k int DEFAULT 10)
RETURNS TABLE(item_id bigint, score real, rank int)
LANGUAGE sql STABLE AS \$\$
    SELECT r.item_id, r.score, r.rank
    FROM (SELECT public.tim4rec_seq(i.item_id, i.ts) AS seq
          FROM public.interactions i
          WHERE i.user_id = shard_recommend.user_id) s,
         LATERAL public.tim4rec_recommend(s.seq, shard_recommend.k, '$MODEL') r
\$\$;"
TABLE_DDL="CREATE TABLE public.interactions (user_id bigint NOT NULL, item_id bigint NOT NULL, ts timestamptz NOT NULL);"

q "$XPORT" postgres -c "CREATE DATABASE single" -c "CREATE DATABASE proxy" >"$TOP/setup.log" 2>&1 &&
qsingle >>"$TOP/setup.log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION tim4rec;
$TABLE_DDL
-- $NUSERS users x 12 interactions over 40 items; distinct times per user
INSERT INTO interactions
SELECT u, ((u * 7 + s * (1 + u % 3) + (s / 5) * (u % 5)) % 40 + 1),
       timestamptz '2024-01-01 00:00+00' + (u * 50 + s * (1 + (u + s) % 4)) * interval '1 hour'
FROM generate_series(1, $NUSERS) u, generate_series(1, 12) s;
CREATE INDEX ON interactions (user_id, ts);
SELECT version FROM tim4rec_train('interactions', '$MODEL', options => '$OPTS');
$SHARD_FN
SQL
rc=$?
t4r_ok $rc "single node: $NUSERS users x 12 interactions, model '$MODEL' trained, shard_recommend created"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/setup.log")"

# ---------------------------------------------------------------- the shards: their users, the model
# copy the single node's current version to shard $1 as a new current
# version: the safetensors bytes and the item ids, through a COPY pipe
copy_model() {
    qsingle -c "COPY (SELECT tim4rec_export('$MODEL'), tim4rec_item_ids('$MODEL')) TO STDOUT" |
        qshard "$1" -c "CREATE TEMP TABLE m (weights bytea, item_ids bigint[])" -c "COPY m FROM STDIN" \
            -c "SELECT tim4rec_import('$MODEL', weights, item_ids) FROM m"
}
for i in 0 1; do
    q "$([ $i = 0 ] && echo "$PORT0" || echo "$PORT1")" postgres -c "CREATE DATABASE shard" &&
    qshard $i -c "SET client_min_messages = warning" -c "CREATE EXTENSION tim4rec" -c "$TABLE_DDL" &&
    # PL/Proxy's partition of a row: hashint8(user_id) & (partitions - 1)
    qsingle -c "COPY (SELECT * FROM interactions WHERE hashint8(user_id) & 1 = $i) TO STDOUT" |
        qshard $i -c "COPY interactions FROM STDIN" &&
    qshard $i -c "CREATE INDEX ON interactions (user_id, ts)" -c "$SHARD_FN" &&
    copy_model $i
done >>"$TOP/setup.log" 2>&1
rc=$?
t4r_ok $rc "shards: interactions split by hashint8(user_id) & 1, model imported (export + item ids), shard_recommend created"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/setup.log")"

Q_SPLIT="SELECT count(*) || ' ' || count(DISTINCT user_id) || ' ' || count(*) FILTER (WHERE hashint8(user_id) & 1 <> :i)
         FROM interactions"
s0=$(qshard 0 -v i=0 <<<"$Q_SPLIT" 2>&1)
s1=$(qshard 1 -v i=1 <<<"$Q_SPLIT" 2>&1)
read -r rows0 users0 wrong0 <<<"$s0"
read -r rows1 users1 wrong1 <<<"$s1"
[ "${wrong0:-x}" = 0 ] && [ "${wrong1:-x}" = 0 ] && [ "${users0:-0}" -gt 0 ] && [ "${users1:-0}" -gt 0 ] &&
[ $((rows0 + rows1)) = $((NUSERS * 12)) ] && [ $((users0 + users1)) = "$NUSERS" ]
t4r_ok $? "the split: shard0 has $users0 users ($rows0 rows), shard1 $users1 ($rows1), together all $((NUSERS * 12)) rows, none misplaced"

# the keys that shape inference (an import keeps the file's model keys; the
# training-only keys such as epochs or batch_size come from the preset)
Q_VOCAB="SELECT md5(tim4rec_item_ids('$MODEL')::text) || ' ' ||
                (SELECT jsonb_object_agg(key, value) FROM jsonb_each(config)
                 WHERE key IN ('hidden_size', 'num_layers', 'd_state', 'd_conv', 'expand', 'head_dim',
                               'chunk_size', 'max_seq_len', 'norm_eps', 'p2p_residual', 'is_time'))
         FROM tim4rec_model_list WHERE model_name = '$MODEL' AND is_current"
v=$(qsingle -c "$Q_VOCAB" 2>&1)
v0=$(qshard 0 -c "$Q_VOCAB" 2>&1)
v1=$(qshard 1 -c "$Q_VOCAB" 2>&1)
[[ "$v" =~ ^[0-9a-f]{32}\ \{.*\"hidden_size\":\ 16 ]] && [ "$v" = "$v0" ] && [ "$v" = "$v1" ]
t4r_ok $? "each shard's model has the single node's item ids and model options"
[ "$v" = "$v0" ] && [ "$v" = "$v1" ] || t4r_diag "single: $v" "shard0: $v0" "shard1: $v1"

# ---------------------------------------------------------------- the proxy
qproxy >"$TOP/proxy_setup.log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION plproxy;
-- the cluster: partition i = hash & 1 is p<i>
CREATE SERVER shards FOREIGN DATA WRAPPER plproxy OPTIONS (
    connection_lifetime '1800',
    p0 'host=$SOCK port=$PORT0 dbname=shard connect_timeout=10',
    p1 'host=$SOCK port=$PORT1 dbname=shard connect_timeout=10');
CREATE USER MAPPING FOR PUBLIC SERVER shards OPTIONS (user '$SU');
CREATE SCHEMA proxy;
CREATE FUNCTION proxy.tim4rec_recommend(user_id bigint, k int DEFAULT 10)
RETURNS TABLE(item_id bigint, score real, rank int)
LANGUAGE plproxy AS \$\$
    CLUSTER 'shards';
    RUN ON hashint8(user_id);
    SELECT item_id, score, rank FROM public.shard_recommend(user_id, k);
\$\$;
-- for the test only: where a user is routed, and how many rows it has there
CREATE FUNCTION proxy.where_is(user_id bigint, OUT port int, OUT nrows bigint)
LANGUAGE plproxy AS \$\$
    CLUSTER 'shards';
    RUN ON hashint8(user_id);
    SELECT current_setting('port')::int AS port, count(*) AS nrows
    FROM public.interactions i WHERE i.user_id = user_id;
\$\$;
-- for the test only: the shard backend that serves a user
CREATE FUNCTION proxy.shard_pid(user_id bigint) RETURNS int
LANGUAGE plproxy AS \$\$
    CLUSTER 'shards';
    RUN ON hashint8(user_id);
    SELECT pg_backend_pid();
\$\$;
SQL
rc=$?
t4r_ok $rc "proxy: CREATE EXTENSION plproxy, SERVER shards (p0, p1 on the shards' sockets), proxy.tim4rec_recommend"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/proxy_setup.log")"
[ ! -x "$BIN/pg_config" ] || [ -f "$("$BIN/pg_config" --sharedir)/extension/plproxy.control" ] ||
    t4r_diag "PL/Proxy is not installed for $BIN (Debian: postgresql-15-plproxy, in T4R_PACKAGES of test/scripts/lib.sh)"

W=$(qproxy -c "SELECT string_agg(w.port || ':' || w.nrows || ':' || c, ',' ORDER BY w.port, w.nrows)
              FROM (SELECT w.port, w.nrows, count(*) AS c
                    FROM generate_series(1, $NUSERS) u, LATERAL proxy.where_is(u) w
                    GROUP BY 1, 2) w" 2>&1)
[ "$W" = "$PORT0:12:$users0,$PORT1:12:$users1" ]
t4r_ok $? "PL/Proxy routes each user to the shard holding its 12 rows; both shards receive users (port:rows:users $W)"
[ "$W" = "$PORT0:12:$users0,$PORT1:12:$users1" ] || t4r_diag "expected $PORT0:12:$users0,$PORT1:12:$users1"

# ---------------------------------------------------------------- the answers
# one line per user: user|item:rank:score,... (scores as text: exact float4)
answers() {    # $1 = set-returning call for user u
    echo "SELECT u || '|' || string_agg(r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY r.rank)
          FROM generate_series(1, $NUSERS) u, LATERAL $1 r GROUP BY u ORDER BY u"
}
same_lines() {    # $1 = name, $2 = proxy output, $3 = reference output
    local bad
    if [ -n "$2" ] && [ "$2" = "$3" ] && [[ "$2" != *ERROR* ]]; then
        t4r_ok 0 "$1"
    else
        t4r_ok 1 "$1"
        bad=$(diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | grep -c '^<')
        t4r_diag "$bad of $(printf '%s\n' "$2" | wc -l) lines differ; first differences (< proxy, > reference):"
        t4r_diag "$(diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -6 | cut -c1-200)"
    fi
}
P=$(qproxy -c "$(answers "proxy.tim4rec_recommend(u, $K)")" 2>&1)
R_SEQ=$(qsingle -c "$(answers "shard_recommend(u, $K)")" 2>&1)
R_USER=$(qsingle -c "$(answers "tim4rec_recommend(u::bigint, $K, '$MODEL')")" 2>&1)
nl=$(printf '%s\n' "$P" | grep -c '^[0-9]*|')
[ "$nl" = "$NUSERS" ] && [ "$(printf '%s\n' "$P" | grep -c ',')" = "$NUSERS" ]
t4r_ok $? "the proxy answers for all $NUSERS users ($nl users with top-$K lists)"
same_lines "for every user, the proxy's top $K (items, ranks, scores) equals the single node's, same wrapper (tim4rec_seq + recommend(seq))" \
    "$P" "$R_SEQ"
same_lines "... and equals the single node's user form tim4rec_recommend(user_id, $K, '$MODEL')" "$P" "$R_USER"

# another k, a few users, both shards
P3=$(qproxy -c "SELECT string_agg(u || ':' || r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY u, r.rank)
                FROM generate_series(1, 20) u, LATERAL proxy.tim4rec_recommend(u, 3) r" 2>&1)
R3=$(qsingle -c "SELECT string_agg(u || ':' || r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY u, r.rank)
                 FROM generate_series(1, 20) u, LATERAL tim4rec_recommend(u::bigint, 3, '$MODEL') r" 2>&1)
[[ "$P3" != *ERROR* ]] && [ "$P3" = "$R3" ] && [ "$(tr ',' '\n' <<<"$P3" | wc -l)" = 60 ]
t4r_ok $? "k = 3 for users 1..20: the proxy equals the single node (60 rows)"

# ---------------------------------------------------------------- cold start
# two user ids without any interaction, one for each partition
read -r C0 C1 <<<"$(qproxy -F ' ' -c "SELECT min(u) FILTER (WHERE hashint8(u) & 1 = 0), min(u) FILTER (WHERE hashint8(u) & 1 = 1)
                                      FROM generate_series(1000001::bigint, 1000100) u" 2>&1)"
cold() {    # $1 = psql function, $2 = call for user u
    "$1" -c "SELECT string_agg(u || ':' || r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY u, r.rank)
             FROM unnest(ARRAY[$C0, $C1]::bigint[]) u, LATERAL $2 r" 2>&1
}
PC=$(cold qproxy "proxy.tim4rec_recommend(u, $K)")
RC_SEQ=$(cold qsingle "shard_recommend(u, $K)")
RC_USER=$(cold qsingle "tim4rec_recommend(u, $K, '$MODEL')")
[[ "$RC_USER" != *ERROR* ]] && [ "$RC_SEQ" = "$RC_USER" ] && [ "$(tr ',' '\n' <<<"$RC_USER" | wc -l)" = $((2 * K)) ]
t4r_ok $? "single node: users $C0 and $C1 (no data) get the cold start, the same through shard_recommend and the user form"
[ "$RC_SEQ" = "$RC_USER" ] || t4r_diag "shard_recommend: ${RC_SEQ:0:300}" "user form: ${RC_USER:0:300}"
# the training counts travel with the exported file (metadata
# tim4rec_item_counts), so the shards' imported copies give the single
# node's cold start: the most popular items with their counts
[ -n "$PC" ] && [ "$PC" = "$RC_USER" ]
t4r_ok $? "through the proxy (user $C0 on shard0, $C1 on shard1) the cold start equals the single node's"
[ "$PC" = "$RC_USER" ] || t4r_diag "proxy:  ${PC:0:300}" "single: ${RC_USER:0:300}"
# what the proxy path itself adds: nothing; the single node serving an
# imported copy of the model gives the same cold start as the shards
RC_IMP=$(qsingle -c "SELECT tim4rec_import('${MODEL}_imported', tim4rec_export('$MODEL'), tim4rec_item_ids('$MODEL'))" \
                 -c "SELECT string_agg(u || ':' || r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY u, r.rank)
                     FROM unnest(ARRAY[$C0, $C1]::bigint[]) u,
                          LATERAL tim4rec_recommend((SELECT tim4rec_seq(i.item_id, i.ts) FROM interactions i
                                                     WHERE i.user_id = u), $K, '${MODEL}_imported') r" 2>&1 | tail -1)
[ -n "$PC" ] && [[ "$PC" != *ERROR* ]] && [ "$PC" = "$RC_IMP" ]
t4r_ok $? "through the proxy the cold start equals the single node's with an imported copy of the model"
[ "$PC" = "$RC_IMP" ] || t4r_diag "proxy:    ${PC:0:300}" "imported: ${RC_IMP:0:300}"

# ---------------------------------------------------------------- a new version, rolled out
# One proxy session all along: answers (version 1), then a new version is
# trained on the single node and copied to both shards (psql \! runs the
# rollout script), then answers again.  PL/Proxy keeps its shard connections;
# the shards' backends must serve the new current version without reconnecting.
# one user of each shard
read -r U0 U1 <<<"$(qproxy -F ' ' -c "SELECT min(u) FILTER (WHERE hashint8(u) & 1 = 0), min(u) FILTER (WHERE hashint8(u) & 1 = 1)
                                      FROM generate_series(1::bigint, $NUSERS) u" 2>&1)"
train_v2() { qsingle -c "SELECT version FROM tim4rec_train('interactions', '$MODEL', options => '$OPTS2')"; }
{
    # shellcheck disable=SC2090
    declare -p BIN SOCK SU XPORT PORT0 PORT1 MODEL OPTS2
    declare -f q qsingle qshard copy_model train_v2
    echo "set -o pipefail"
    echo "train_v2 && copy_model 0 && copy_model 1 && echo rolled-out"
} >"$TOP/rollout.sh"
PIDS="SELECT string_agg(p::text, ',' ORDER BY u) FROM unnest(ARRAY[$U0, $U1]::bigint[]) u, LATERAL proxy.shard_pid(u) p;"
ROLL=$(qproxy 2>&1 <<SQL
$PIDS
\echo ==v1
$(answers "proxy.tim4rec_recommend(u, $K)");
\echo ==rollout
\! bash $TOP/rollout.sh >$TOP/rollout.log 2>&1 && echo rolled-out
\echo ==v2
$(answers "proxy.tim4rec_recommend(u, $K)");
\echo ==pids
$PIDS
SQL
)
section() { printf '%s\n' "$ROLL" | sed -n "/^==$1\$/,/^==/p" | grep -v '^=='; }
PIDS1=$(printf '%s\n' "$ROLL" | head -1)
P_V1=$(section v1)
P_V2=$(section v2)
PIDS2=$(section pids)
R_V2=$(qsingle -c "$(answers "shard_recommend(u, $K)")" 2>&1)
[ "$(section rollout)" = rolled-out ] &&
[ "$(qsingle -c "SELECT max(version) FROM tim4rec_model_list WHERE model_name = '$MODEL' AND is_current")" = 2 ] &&
[ "$(qshard 0 -c "SELECT version FROM tim4rec_model_list WHERE model_name = '$MODEL' AND is_current")" = 2 ] &&
[ "$(qshard 1 -c "SELECT version FROM tim4rec_model_list WHERE model_name = '$MODEL' AND is_current")" = 2 ]
rc=$?
t4r_ok $rc "rollout: version 2 trained on the single node (another seed) and imported on both shards as version 2"
[ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/rollout.log")"
[ -n "$P_V1" ] && [[ "$P_V1$P_V2" != *ERROR* ]] && [ "$P_V1" = "$P" ] && [ -n "$P_V2" ] && [ "$P_V2" != "$P_V1" ]
t4r_ok $? "one proxy session: version 1's answers before, different answers after the rollout"
same_lines "... and after the rollout, every user's answer through the proxy equals the single node's version 2" \
    "$P_V2" "$R_V2"
[[ "$PIDS1" =~ ^[0-9]+,[0-9]+$ ]] && [ "$PIDS1" = "$PIDS2" ]
t4r_ok $? "the same shard backends (pids $PIDS1 = $PIDS2) served both versions: no reconnection"

# ---------------------------------------------------------------- a shard without the model
DROPPED=$(qshard 1 -c "SELECT tim4rec_drop('$MODEL')" 2>&1)
# err PSQLFN CALL: run CALL, print "SQLSTATE|message" of its error
err() {
    "$1" -v ON_ERROR_STOP=0 2>/dev/null <<SQL
SELECT count(*) FROM $2;
\\echo :SQLSTATE|:LAST_ERROR_MESSAGE
SQL
}
# PL/Proxy re-raises a remote ERROR with the remote SQLSTATE (its
# plproxy_remote_error: errcode(remote PG_DIAG_SQLSTATE), XX000 only when libpq
# has none) and the message "<function>(<nargs>): [<dbname>] REMOTE <severity>:
# <remote message>", remote detail, hint and context prefixed with "Remote ".
# So the caller sees 42704, as on a single node, and the same text after
# the prefix.
E_PROXY=$(err qproxy "proxy.tim4rec_recommend($U1, $K)")
# (tim4rec_drop without a version drops both versions: it returns 2)
[ "$DROPPED" = 2 ] && [ "${E_PROXY%%|*}" = 42704 ] && [[ "${E_PROXY#*|}" == *"model \"$MODEL\" does not exist" ]]
t4r_ok $? "model dropped on shard1: a shard1 user through the proxy gets SQLSTATE 42704, model \"$MODEL\" does not exist (got: $E_PROXY)"

P0=$(qproxy -c "SELECT string_agg(r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY r.rank)
                FROM proxy.tim4rec_recommend($U0, $K) r" 2>&1)
R0=$(qsingle -c "SELECT string_agg(r.item_id || ':' || r.rank || ':' || r.score, ',' ORDER BY r.rank)
                 FROM tim4rec_recommend($U0::bigint, $K, '$MODEL') r" 2>&1)
[ -n "$P0" ] && [[ "$P0" != *ERROR* ]] && [ "$P0" = "$R0" ]
t4r_ok $? "shard0 (model still there) goes on serving its users through the proxy (user $U0)"

# the single node without the model: the same SQLSTATE, and the same message
# as behind PL/Proxy's prefix
qsingle -c "SELECT tim4rec_drop('$MODEL')" >/dev/null 2>&1
E_SINGLE=$(err qsingle "shard_recommend($U1, $K)")
E_SINGLE_USER=$(err qsingle "tim4rec_recommend($U1::bigint, $K, '$MODEL')")
[ "$E_SINGLE" = "42704|model \"$MODEL\" does not exist" ] && [ "$E_SINGLE_USER" = "$E_SINGLE" ] &&
[ "${E_PROXY%%|*}" = "${E_SINGLE%%|*}" ] && [ "${E_PROXY#*|}" = "proxy.tim4rec_recommend(2): [shard] REMOTE ERROR: ${E_SINGLE#*|}" ]
t4r_ok $? "a single node without the model: $E_SINGLE (wrapper and user form); the proxy re-raised it with the same SQLSTATE"
t4r_diag "proxy:  $E_PROXY" "single: $E_SINGLE"

t4r_diag "plproxy.sh: $(( $(date +%s) - START )) s"
t4r_tap_status
