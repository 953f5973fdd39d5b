#!/usr/bin/env bash
# pg_load.sh - recommendations under concurrent load: pgbench on a
# unix socket, `tim4rec_recommend(user, 10)` for random users of an
# ML-1M-like table with a movielens-sized model, at several client counts;
# then the same while a training runs in another session; then on a hot
# standby.  TPS, p50/p99 latency (per-transaction pgbench logs) and failed
# transactions (must be 0) per run, as a markdown table appended to
# test/bench/RESULTS.md.
#
#   test/bench/pg_load.sh        # extension installed (make install) in T4R_PG_BINDIR's PostgreSQL
#
# Settings (environment):
#   T4R_LOAD_SECS=20              pgbench -T of every measured run
#   T4R_LOAD_WARMUP=3             an unreported pgbench run first, on the primary and on the standby
#   T4R_LOAD_CLIENTS="1 4 16 64"  client counts on the primary
#   T4R_LOAD_TRAIN_CLIENTS=16     client counts while a training runs ("" skips that part)
#   T4R_LOAD_STANDBY_CLIENTS="1 4 16 64"  client counts on the standby ("" skips the standby)
#   T4R_LOAD_THREADS=2            pgbench -j (at most the client count)
#   T4R_LOAD_TRAIN_OPTS           options of the background training (JSON), see below
#   T4R_PRELOAD=1                 shared_preload_libraries = 'tim4rec' on both servers
#   T4R_BENCH_NOTE="text"         a paragraph under the heading (e.g. which build was measured)
#   T4R_BENCH_NO_APPEND=1         print only; T4R_BENCH_KEEP=1 keeps the cluster directory
#
# Model 'ml': movielens preset (d 64, L 200, 3,706 items) from a seed
# (test/bench/pg_latency_model.c, as pg_latency.sh), imported with
# tim4rec_import, source table bench_ix (test/bench/ml1m_like.sql: 6,040
# users, ~1 M rows, index on (user_id, ts)).  The pgbench script:
#   \set u random(1, 6040)
#   SELECT count(*) FROM tim4rec_recommend(:u::bigint, 10, 'ml');
# with -M prepared, -n, new connections per run (each backend loads the
# model at its first call; that call is in the figures).
# The background training: tim4rec_train on train_ix (2,000 users x 30
# interactions over 500 items) with small options and epochs/patience so
# large that it outlasts the runs; it must be in phase 'training' (checked in
# tim4rec_progress) when each run starts and still when it ends, and it is
# cancelled after the last of them.  Its progress during each run (optimizer
# steps) is reported.
set -eu -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
. test/bench/pg_bench_lib.sh
export PATH=$T4R_PG_BINDIR:$PATH
unset PGDATABASE PGSERVICE PGOPTIONS PGHOSTADDR PGAPPNAME

SECS=${T4R_LOAD_SECS:-20}
WARMUP=${T4R_LOAD_WARMUP:-3}
CLIENTS=${T4R_LOAD_CLIENTS-1 4 16 64}
TRAIN_CLIENTS=${T4R_LOAD_TRAIN_CLIENTS-16}
STANDBY_CLIENTS=${T4R_LOAD_STANDBY_CLIENTS-1 4 16 64}
THREADS=${T4R_LOAD_THREADS:-2}
TRAIN_OPTS=${T4R_LOAD_TRAIN_OPTS:-'{"hidden_size": 32, "max_seq_len": 50, "batch_size": 256, "learning_rate": 0.003, "epochs": 10000, "patience": 10000}'}
PRELOAD=${T4R_PRELOAD:-0}
START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

make -s build/pg_latency_model >/dev/null

W=$(mktemp -d "${TMPDIR:-/tmp}/t4r_load.XXXXXX")
TRAIN_PID=
cleanup() {
    if [ -n "$TRAIN_PID" ]; then
        kill "$TRAIN_PID" 2>/dev/null || true
        wait "$TRAIN_PID" 2>/dev/null || true
    fi
    tb_stop
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$PRELOAD" = 1 ]; then
    tb_start 54353 "-c shared_preload_libraries=tim4rec"
else
    tb_start 54353
fi
PPORT=$PGPORT
./build/pg_latency_model > "$TB_DIR/ml.safetensors"    # 3,707 rows (3,706 items + padding)
chmod 644 "$TB_DIR/ml.safetensors"

export PGDATABASE=t4r_load
psql -X -q -d postgres -c "CREATE DATABASE t4r_load" >/dev/null
t4r_log "setup: ML-1M-like table, model 'ml', training table"
psql -X -q -v ON_ERROR_STOP=1 -v model_file="$TB_DIR/ml.safetensors" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION tim4rec;
\i test/bench/ml1m_like.sql
SELECT tim4rec_import('ml', pg_read_binary_file(:'model_file'), ARRAY(SELECT g::bigint FROM generate_series(1, 3706) g));
UPDATE tim4rec_models SET source_schema = current_schema(), source_table = 'bench_ix', user_column = 'user_id',
       item_column = 'item_id', time_column = 'ts',
       item_counts = ARRAY(SELECT count(b.item_id) FROM generate_series(1, 3706) g
                           LEFT JOIN bench_ix b ON b.item_id = g GROUP BY g ORDER BY g)
WHERE model_name = 'ml';
-- the smaller table of the background training
SELECT setseed(0.77);
CREATE TABLE train_ix AS
SELECT u::bigint AS user_id, (1 + floor(500 * random() ^ 2))::bigint AS item_id,
       1000000000 + u * 1000 + s * (60 + floor(3600 * random()))::bigint AS ts
FROM generate_series(1, 2000) u, generate_series(1, 30) s;
CREATE INDEX ON train_ix (user_id, ts);
ANALYZE train_ix;
CHECKPOINT;
SQL
# sanity: one call, 10 rows
[ "$(psql -X -At -c "SELECT count(*) FROM tim4rec_recommend(42::bigint, 10, 'ml')")" = 10 ]

cat >"$W/recommend.pgb" <<'EOF'
\set u random(1, 6040)
SELECT count(*) FROM tim4rec_recommend(:u::bigint, 10, 'ml');
EOF

ROWS=()
NOTES=()
BAD=0
# bench NAME CLIENTS [note]: one pgbench run against PGPORT; appends a table row
bench() {
    local name=$1 c=$2 note=${3:-} j=$THREADS rc=0 tx tps failed aborted n p50 p99 pmax
    [ "$j" -le "$c" ] || j=$c
    rm -f "$W"/pgb.*
    pgbench -n -M prepared -c "$c" -j "$j" -T "$SECS" -f "$W/recommend.pgb" \
        --log --log-prefix="$W/pgb" >"$W/pgbench.out" 2>"$W/pgbench.err" || rc=$?
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$W/pgbench.out")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$W/pgbench.out" |
          awk '{printf "%.0f", $1}')
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$W/pgbench.out")
    aborted=$(grep -c 'aborted in command' "$W/pgbench.err" || true)
    # per-transaction logs: client, tx, latency (us) or failed/skipped, script, epoch s, us
    cat "$W"/pgb.* | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n >"$W/lat"
    n=$(wc -l <"$W/lat")
    local nbad
    nbad=$(cat "$W"/pgb.* | awk '$3 !~ /^[0-9]+$/' | wc -l)
    [ "${failed:-0}" -ge "$nbad" ] || failed=$nbad
    p50=$(awk -v n="$n" 'NR == int(n * 0.50 + 0.999999) {printf "%.2f", $1 / 1000}' "$W/lat")
    p99=$(awk -v n="$n" 'NR == int(n * 0.99 + 0.999999) {printf "%.2f", $1 / 1000}' "$W/lat")
    pmax=$(tail -1 "$W/lat" | awk '{printf "%.1f", $1 / 1000}')
    if [ "$rc" != 0 ] || [ -z "$tx" ] || [ "${failed:-x}" != 0 ] || [ "$aborted" != 0 ] || [ "$n" != "$tx" ]; then
        BAD=$((BAD + 1))
        t4r_log "$name, $c clients: pgbench exit $rc, tx $tx, logged $n, failed ${failed:-?}, aborted $aborted:"
        tail -5 "$W/pgbench.err" >&2
    fi
    ROWS+=("| $name | $c | $j | $SECS | ${tx:-?} | ${tps:-?} | ${p50:-?} | ${p99:-?} | ${pmax:-?} | ${failed:-?} | $aborted |")
    NOTES+=("$note")
    t4r_log "$name, $c clients: ${ROWS[-1]}"
}

warmup() {
    pgbench -n -M prepared -c 4 -j 2 -T "$WARMUP" -f "$W/recommend.pgb" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- primary
warmup
for c in $CLIENTS; do
    bench primary "$c"
done

# ---------------------------------------------------------------- primary, training in another session
progress() {    # -> "phase epoch step steps_per_epoch epochs_done" of our training, or nothing
    psql -X -At -F ' ' -c "SELECT phase, epoch, step, steps_per_epoch, epochs_done FROM tim4rec_progress
                            WHERE pid = $TPID" 2>/dev/null
}
if [ -n "$TRAIN_CLIENTS" ]; then
    PGAPPNAME=t4r_load_train psql -X -q -At -c "SET client_min_messages = warning" \
        -c "SELECT version FROM tim4rec_train('train_ix', 'train_bg', options => '$TRAIN_OPTS')" \
        >"$W/train.out" 2>&1 &
    TRAIN_PID=$!
    TPID=
    for ((i = 0; i < 600; i++)); do
        TPID=$(psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 't4r_load_train'
                               AND state = 'active'" 2>/dev/null || true)
        [ -n "$TPID" ] && [ "$(progress | cut -d' ' -f1)" = training ] && break
        sleep 0.2
    done
    [ "$(progress | cut -d' ' -f1)" = training ] || {
        t4r_log "the background training did not reach phase 'training' in 120 s:"; cat "$W/train.out" >&2; exit 1; }
    # the training alone, for comparison: steps over T4R_LOAD_TRAIN_ALONE seconds
    read -r _ e0 s0 _ _ <<<"$(progress)"
    sleep "${T4R_LOAD_TRAIN_ALONE:-5}"
    read -r _ e1 s1 spe1 _ <<<"$(progress)"
    TRAIN_ALONE=$(awk -v st=$(( (e1 - e0) * spe1 + s1 - s0 )) -v t="${T4R_LOAD_TRAIN_ALONE:-5}" 'BEGIN {printf "%.1f", st / t}')
    for c in $TRAIN_CLIENTS; do
        read -r ph0 e0 s0 _ _ <<<"$(progress)"
        bench "primary, training running" "$c"
        read -r ph1 e1 s1 spe1 _ <<<"$(progress)" || true
        if [ "${ph0:-}" = training ] && [ "${ph1:-}" = training ]; then
            steps=$(( (e1 - e0) * spe1 + s1 - s0 ))
            NOTES[-1]="training ran throughout: epoch $e0 step $s0 -> epoch $e1 step $s1 ($steps steps, $(awk -v st="$steps" -v t="$SECS" 'BEGIN {printf "%.1f", st / t}') steps/s; alone: $TRAIN_ALONE steps/s)"
        else
            NOTES[-1]="**training not running throughout** (phase ${ph0:-none} -> ${ph1:-none})"
            BAD=$((BAD + 1))
        fi
        t4r_log "with training, $c clients: ${NOTES[-1]}"
    done
    psql -X -At -c "SELECT pg_cancel_backend($TPID)" >/dev/null
    wait "$TRAIN_PID" || true
    TRAIN_PID=
    grep -q 'canceling statement due to user request' "$W/train.out" ||
        { t4r_log "the background training ended otherwise than by our cancel:"; cat "$W/train.out" >&2; BAD=$((BAD + 1)); }
    TRAIN_THREADS=$(psql -X -q -At -c "LOAD 'tim4rec'" -c "SHOW tim4rec.threads")
fi

# ---------------------------------------------------------------- hot standby
if [ -n "$STANDBY_CLIENTS" ]; then
    tb_standby 54354
    export PGPORT=$TB_SPORT
    [ "$(psql -X -At -c "SELECT pg_is_in_recovery()")" = t ]
    warmup
    for c in $STANDBY_CLIENTS; do
        bench "hot standby" "$c"
    done
    export PGPORT=$PPORT
fi

OUT=$W/result.md
{
    echo
    echo "## PostgreSQL recommend under load, pgbench ($(date -u '+%Y-%m-%d %H:%M UTC'), $(tb_machine | sed 's/, load .*//'), load at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    [ -z "${T4R_BENCH_NOTE:-}" ] || { echo "$T4R_BENCH_NOTE"; echo; }
    echo "test/bench/pg_load.sh$([ "$PRELOAD" = 1 ] && echo " with T4R_PRELOAD=1 (shared_preload_libraries = 'tim4rec')"):"
    echo "\`SELECT count(*) FROM tim4rec_recommend(:u::bigint, 10, 'ml')\` with \`\\set u random(1, 6040)\`,"
    echo "movielens-sized model (d 64, L 200, 3,706 items), ML-1M-like table (6,040 users, ~1 M rows, index on (user_id, ts)),"
    echo "pgbench -n -M prepared -T $SECS on the unix socket, new connections per run (the model load of each backend's first call is included),"
    echo "latency percentiles from the per-transaction logs (--log); server max_connections ${T4R_BENCH_MAX_CONN:-100}, shared_buffers ${T4R_BENCH_SHARED_BUFFERS:-256MB}, fsync off."
    if [ -n "$TRAIN_CLIENTS" ]; then
        echo "Training: tim4rec_train on another table (2,000 users x 30 interactions, 500 items), options $TRAIN_OPTS,"
        echo "tim4rec.threads = ${TRAIN_THREADS:-0} (0 = all CPUs), in phase 'training' in tim4rec_progress at the start and the end of the run, cancelled afterwards."
    fi
    [ -z "$STANDBY_CLIENTS" ] || echo "Hot standby: pg_basebackup -R streaming replica of the primary, same settings, pgbench pointed at it."
    echo
    echo "| server | clients | threads | s | transactions | TPS | p50 ms | p99 ms | max ms | failed | aborted clients | note |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        echo "${ROWS[i]} ${NOTES[i]} |"
    done
    echo
    echo "Run time $(( $(date +%s) - START )) s$([ "$BAD" = 0 ] && echo ", no failed transactions." || echo ", **$BAD run(s) with errors**.")"
} >"$OUT"
cat "$OUT"
if [ "${T4R_BENCH_NO_APPEND:-0}" != 1 ]; then
    cat "$OUT" >> test/bench/RESULTS.md
fi
[ "$BAD" = 0 ]
