#!/usr/bin/env bash
# Scheduled retraining with pg_cron (README "Retraining on
# a schedule").  Starts its OWN cluster with shared_preload_libraries =
# 'pg_cron' (unix socket only, private temporary directory; jobs run in
# background workers, cron.database_name = the test database) and checks
# that
#   * the README's job (a warm start of the current version with
#     "deploy": "if_better") scheduled with cron.schedule for every minute
#     runs at the next minute and stores a new version;
#   * that version records its parent, and, as its validation NDCG@10 cannot
#     beat the current version's (set to 1.5 beforehand), stays non-current
#     with the reason in metrics->'not_deployed';
#   * cron.job_run_details says the run succeeded; cron.unschedule removes
#     the job.
# Waits are bounded (240 s for the job: it starts at the next minute).
# pg_cron 1.4 (Debian bookworm's postgresql-15-cron) has no seconds syntax.
# Prints TAP; "1..0 # SKIP" when pg_cron is not installed for T4R_PG_BINDIR.
# Ignores the suite's PG* settings.  As root the server runs as `postgres`.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGHOSTADDR
trap '' PIPE

LIBDIR=$("$BIN/pg_config" --pkglibdir 2>/dev/null)
SHAREDIR=$("$BIN/pg_config" --sharedir 2>/dev/null)
if [ ! -f "$LIBDIR/pg_cron.so" ] || [ ! -f "$SHAREDIR/extension/pg_cron.control" ]; then
    echo "1..0 # SKIP pg_cron is not installed for $BIN (Debian package postgresql-15-cron)"
    exit 0
fi

t4r_servers_dir t4r_cron || { echo "1..0 # SKIP no private directory for the server"; exit 1; }
TOP=$T4R_SERVERS_DIR
SU=$T4R_SU
cd "$TOP" || exit 1
DATA=$TOP/data
SOCK=$TOP
PORT=$((57500 + $$ % 400))

cleanup() { t4r_servers_remove "${T4R_KEEP:-}" "$DATA"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$SU" -d t4r "$@"; }
T4R_WAIT_STEP=1                    # polls of the job tables: once a second

echo "1..8"
t4r_initdb "$DATA" "$TOP/initdb.log" &&
t4r_pg_start "$DATA" "$PORT" "$TOP/server.log" -c max_connections=20 -c shared_preload_libraries=pg_cron \
    -c cron.database_name=t4r -c cron.use_background_workers=on -c max_worker_processes=16 -c timezone=UTC
rc=$?
t4r_ok $rc "cluster with shared_preload_libraries = 'pg_cron' starts"
[ $rc = 0 ] || { t4r_diag "$(tail -5 "$TOP/initdb.log" "$TOP/server.log" 2>&1)"; exit 1; }

"$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U "$SU" -d postgres -c "CREATE DATABASE t4r" >/dev/null &&
q >"$TOP/setup.log" 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION tim4rec;
CREATE EXTENSION pg_cron;
ALTER DATABASE t4r SET tim4rec.threads = 1;
CREATE TABLE interactions AS
SELECT u::bigint AS user_id, ((u * 7 + s * (1 + u % 3)) % 40 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 50 + s) * interval '1 hour' AS ts
FROM generate_series(1, 120) u, generate_series(1, 12) s;
CREATE INDEX ON interactions (user_id, ts);
SET tim4rec.threads = 1;
SELECT tim4rec_train('interactions', 'shop',
                     options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
-- new data arrives: items 41-44
INSERT INTO interactions SELECT u, 40 + u % 4 + 1, timestamptz '2024-06-01' + u * interval '1 hour'
FROM generate_series(1, 40) u;
SQL
rc=$?; t4r_ok $rc "pg_cron and tim4rec installed, model shop version 1 trained"; [ $rc = 0 ] || t4r_diag "$(tail -5 "$TOP/setup.log")"

# version 1 cannot be beaten: the scheduled retraining must stay non-current
q -c "UPDATE tim4rec_models SET metrics = jsonb_set(metrics, '{valid,ndcg@10}', '1.5') WHERE model_name = 'shop'" >/dev/null

# the README's job, every minute instead of nightly
jobid=$(q -c "SELECT cron.schedule('tim4rec-shop', '* * * * *', \$\$SELECT version FROM tim4rec_train('interactions', 'shop', options => '{\"init_from\": \"shop\", \"deploy\": \"if_better\", \"learning_rate\": 0.004, \"epochs\": 3}')\$\$)")
[ -n "$jobid" ] && [ "$(q -c "SELECT count(*) FROM cron.job WHERE jobid = $jobid AND schedule = '* * * * *' AND database = 't4r'")" = 1 ]
t4r_ok $? "cron.schedule('tim4rec-shop', '* * * * *', ...) creates job $jobid"

t4r_wait_for 240 q -c "SELECT EXISTS (SELECT 1 FROM tim4rec_models WHERE model_name = 'shop' AND version = 2)"
rc=$?
q -c "SELECT cron.unschedule($jobid)" >/dev/null
t4r_ok $rc "the job runs at the next minute and stores shop version 2"
[ $rc = 0 ] || t4r_diag "$(q -c "SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details" 2>&1)" "$(tail -5 "$TOP/server.log")"

[ "$(q -c "SELECT parent_model || ' ' || parent_version FROM tim4rec_model_list WHERE model_name = 'shop' AND version = 2")" = "shop 1" ]
t4r_ok $? "version 2 was warm-started from shop version 1"

r=$(q -c "SELECT is_current || ' ' || (metrics ->> 'not_deployed') FROM tim4rec_model_list WHERE model_name = 'shop' AND version = 2")
case "$r" in "false if_better: validation NDCG@10 "*" does not beat 1.500000 of the current version 1") rc=0 ;; *) rc=1 ;; esac
t4r_ok $rc "with if_better and no improvement it stays non-current, the reason recorded"
[ $rc = 0 ] || t4r_diag "$r"

t4r_wait_for 60 q -c "SELECT EXISTS (SELECT 1 FROM cron.job_run_details WHERE jobid = $jobid AND status = 'succeeded')"
t4r_ok $? "cron.job_run_details: the run succeeded"

[ "$(q -c "SELECT count(*) FROM cron.job WHERE jobid = $jobid")" = 0 ] &&
[ "$(q -c "SELECT version FROM tim4rec_models WHERE model_name = 'shop' AND is_current")" = 1 ]
t4r_ok $? "cron.unschedule removed the job; version 1 is still current"
