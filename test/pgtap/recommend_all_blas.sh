#!/usr/bin/env bash
# tim4rec_recommend_all's background scoring and OpenBLAS's thread count,
# which is one setting per process.  The scoring needs it at 1: the score
# GEMV over a vocabulary of thousands of items is split over OpenBLAS
# threads otherwise, and a split rounds some rows differently, so the rows
# would differ from tim4rec_recommend's.  Two calls scoring in the
# background at once (one select list), and tim4rec_recommend called
# between the batches of a streaming call, must leave it at 1 while any
# scoring runs.  A model with 3,706 items (test/bench/pg_latency_model.c)
# on 3,000 users: five batches.  With the bug this fixed, the first check
# failed in 4 of 6 runs on 2 cores.  Prints TAP.  Uses PGHOST/PGPORT/PGUSER/
# PGDATABASE (the database has tim4rec) and T4R_PG_BINDIR.
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../scripts/lib.sh
. "$REPO/test/scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH
HEXF=$(mktemp "${TMPDIR:-/tmp}/t4r_blas.XXXXXX")
trap 'rm -f "$HEXF"' EXIT

echo "1..6"
(cd "$REPO" && make -s build/pg_latency_model >/dev/null) && "$REPO/build/pg_latency_model" | od -An -v -tx1 | tr -d ' \n' >"$HEXF"
t4r_ok $? "the 3,706-item model (build/pg_latency_model)"

psql -X -q -v ON_ERROR_STOP=1 -v hexf="$HEXF" >/dev/null 2>&1 <<'SQL'
\set model_hex `cat :hexf`
SET client_min_messages = warning;
SELECT setseed(0.25);
CREATE TABLE blas_ix AS
SELECT u AS user_id, (1 + floor(3706 * random() ^ 2))::bigint AS item_id,
       timestamptz '2001-01-01' + make_interval(secs => u * 10 + j * 60) AS ts
FROM generate_series(1, 3000) u, generate_series(1, 10 + u % 25) j;
CREATE INDEX ON blas_ix (user_id, ts);
ANALYZE blas_ix;
SELECT tim4rec_import('blas', decode(:'model_hex', 'hex'), ARRAY(SELECT g::bigint FROM generate_series(1, 3706) g));
UPDATE tim4rec_models SET source_schema = current_schema(), source_table = 'blas_ix', user_column = 'user_id',
       item_column = 'item_id', time_column = 'ts' WHERE model_name = 'blas';
SQL
t4r_ok $? "setup: 3,000 users, the model imported and pointed at them"

for round in 1 2 3; do
    r=$(psql -X -At -c "SET tim4rec.threads = 2" \
        -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE a IS DISTINCT FROM b)
            FROM (SELECT tim4rec_recommend_all('blas', 5) AS a, tim4rec_recommend_all('blas', 5) AS b) s" 2>&1 | tail -1)
    [ "$r" = "15000 0" ]
    t4r_ok $? "round $round: two calls in one select list, both in the background: the same 15000 rows ($r)"
done
r=$(psql -X -At -c "SET tim4rec.threads = 2" \
    -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE (s.a).item_id IS DISTINCT FROM x.item_id OR (s.a).score IS DISTINCT FROM x.score)
        FROM (SELECT tim4rec_recommend_all('blas', 1) AS a) s, LATERAL tim4rec_recommend((s.a).user_id, 1, 'blas') x" 2>&1 | tail -1)
[ "$r" = "3000 0" ]
t4r_ok $? "tim4rec_recommend between the batches of a streaming call: the same answers for 3000 users ($r)"
t4r_tap_status
