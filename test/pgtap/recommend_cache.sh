#!/usr/bin/env bash
# The per-backend model cache sees deploys, new versions and drops made by
# ANOTHER session at once.  One psql session (one backend) keeps the
# model cached and runs the other session's commands through \! (a separate
# psql, i.e. another backend) between its own calls.  Prints TAP.  Uses
# PGHOST/PGPORT/PGUSER/PGDATABASE from the environment (the database has
# tim4rec), T4R_PG_BINDIR for psql.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
export PATH=$BIN:$PATH
OUT=$(mktemp "${TMPDIR:-/tmp}/t4r_cache.XXXXXX")
trap 'rm -f "$OUT"' EXIT
val() { grep "^$1 " "$OUT" | head -1 | cut -d' ' -f2-; }

echo "1..9"
psql -X -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE EXTENSION IF NOT EXISTS tim4rec;
DROP TABLE IF EXISTS cache_ix;
CREATE TABLE cache_ix AS
SELECT u AS user_id, ((u * 7 + s) % 40 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 50 + s) * interval '1 hour' AS ts
FROM generate_series(1, 120) u, generate_series(1, 10 + u % 7) s;
SELECT tim4rec_train('cache_ix', 'cc', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SQL
t4r_ok $? "setup: train version 1"

# the other session's commands; FRESH prints what a new backend computes
OTHER='psql -X -q -v ON_ERROR_STOP=1 -At -c "SET client_min_messages = warning" -c "SET tim4rec.threads = 1"'
FRESH="psql -X -q -At -c \"SELECT array_agg(score ORDER BY rank)::text FROM tim4rec_recommend(7, 10, 'cc', false)\""

psql -X -q -At -v ON_ERROR_STOP=0 > "$OUT" 2>&1 <<SQL
\\pset format unaligned
SELECT 'PID0 ' || pg_backend_pid();
SELECT 'S1 ' || array_agg(score ORDER BY rank)::text FROM tim4rec_recommend(7, 10, 'cc', false);
\\! $OTHER -c "SELECT tim4rec_train('cache_ix', 'cc', options => '{\"epochs\": 2, \"hidden_size\": 16, \"max_seq_len\": 20, \"batch_size\": 64, \"seed\": 77}')" >/dev/null
SELECT 'S2 ' || array_agg(score ORDER BY rank)::text FROM tim4rec_recommend(7, 10, 'cc', false);
\\! echo "F2 \$($FRESH)"
\\! $OTHER -c "SELECT tim4rec_deploy('cc', 1)" >/dev/null
SELECT 'S3 ' || array_agg(score ORDER BY rank)::text FROM tim4rec_recommend(7, 10, 'cc', false);
\\! $OTHER -c "SELECT tim4rec_drop('cc')" >/dev/null
SELECT 'S4 ' || array_agg(score ORDER BY rank)::text FROM tim4rec_recommend(7, 10, 'cc', false);
SELECT 'PID1 ' || pg_backend_pid();
SQL

s1=$(val S1); s2=$(val S2); f2=$(val F2); s3=$(val S3)
[ -n "$s1" ] && [ -n "$s2" ]; t4r_ok $? "recommendations before and after another session trained version 2"
[ "$(val PID0)" = "$(val PID1)" ] && [ -n "$(val PID0)" ]; t4r_ok $? "one backend all along (the cache stayed warm)"
[ "$s1" != "$s2" ]; t4r_ok $? "version 2 trained in another session is used at once"
[ "$s2" = "$f2" ]; t4r_ok $? "and gives what a new backend computes"
[ "$s3" = "$s1" ]; t4r_ok $? "rollback (tim4rec_deploy) in another session is seen at once"
grep -q '^S4 ' "$OUT"; [ $? -ne 0 ]; t4r_ok $? "no result after the model was dropped in another session"
grep -q 'model "cc" does not exist' "$OUT"; t4r_ok $? "the drop gives: model \"cc\" does not exist"
psql -X -q -c "DROP TABLE cache_ix" >/dev/null 2>&1
t4r_ok $? "cleanup"
