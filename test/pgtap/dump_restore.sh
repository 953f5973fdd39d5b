#!/usr/bin/env bash
# pg_dump of a database with a trained model, restored into a new database,
# gives identical recommendations (the catalog is marked with
# pg_extension_config_dump).  Prints TAP.  Uses PGHOST/PGPORT/PGUSER (and
# PGDATABASE when set) from the environment; T4R_PG_BINDIR for the tools.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
SRC=t4r_dump_src_$$
DST=t4r_dump_dst_$$
DUMP=$(mktemp "${TMPDIR:-/tmp}/t4r_dump.XXXXXX")
q() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
cleanup() {
    "$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $SRC" -c "DROP DATABASE IF EXISTS $DST" >/dev/null 2>&1
    rm -f "$DUMP"
}
trap cleanup EXIT

echo "1..9"
q -d postgres -c "CREATE DATABASE $SRC" -c "CREATE DATABASE $DST" >/dev/null 2>&1
t4r_ok $? "create two databases"

q -d "$SRC" >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE EXTENSION tim4rec;
CREATE TABLE interactions AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 15) s;
CREATE INDEX ON interactions (user_id, ts);
SELECT tim4rec_train('interactions', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SELECT tim4rec_train('interactions', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": 5}');
SELECT tim4rec_deploy('default', 1);
SELECT tim4rec_grant('default', 'public', 'usage');
-- a model keyed by text users and uuid items (README "Id types")
CREATE TABLE shop AS
SELECT 'customer-' || user_id AS customer, ('00000000-0000-4000-8000-' || lpad(item_id::text, 12, '0'))::uuid AS product, ts
FROM interactions;
CREATE INDEX ON shop (customer, ts);
SELECT tim4rec_train('shop', 'shop', 'customer', 'product', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SQL
t4r_ok $? "train two versions and deploy version 1 in the source database"

RECS="SELECT string_agg(u || ':' || item_id || ':' || score || ':' || rank, ',' ORDER BY u, rank)
      FROM generate_series(1, 60) u, LATERAL tim4rec_recommend(u::bigint, 10) r"
CAT="SELECT string_agg(model_name || ':' || version || ':' || is_current || ':' || md5(weights) || ':' ||
                       md5(item_ids::text) || ':' || md5(config::text) || ':' || md5(coalesce(metrics::text, '')) || ':' ||
                       owner || ':' || grant_usage::text, ',' ORDER BY model_name, version)
     FROM tim4rec_models"
TRECS="SELECT string_agg(u || ':' || item_id || ':' || score || ':' || rank, ',' ORDER BY u, rank)
       FROM generate_series(1, 60) u, LATERAL tim4rec_recommend('customer-' || u, NULL::uuid, 10, 'shop') r"
TCAT="SELECT string_agg(model_name || ':' || user_id_type || ':' || item_id_type || ':' || md5(item_keys::text), ',')
      FROM tim4rec_models WHERE model_name = 'shop'"
before=$(q -d "$SRC" -c "$RECS" 2>&1)
tbefore=$(q -d "$SRC" -c "$TRECS" 2>&1)
tcat_before=$(q -d "$SRC" -c "$TCAT" 2>&1)
cat_before=$(q -d "$SRC" -c "$CAT" 2>&1)

"$BIN/pg_dump" -Fc -f "$DUMP" "$SRC" 2>/dev/null
t4r_ok $? "pg_dump -Fc"
"$BIN/pg_restore" --exit-on-error -d "$DST" "$DUMP" 2>/dev/null
t4r_ok $? "pg_restore into a new database"

cat_after=$(q -d "$DST" -c "$CAT" 2>&1)
[ -n "$cat_before" ] && [ "$cat_before" = "$cat_after" ]
t4r_ok $? "the catalog (versions, current flag, weights, vocabulary, config, metrics, owner, grants) survives"

after=$(q -d "$DST" -c "$RECS" 2>&1)
[ -n "$before" ] && [ "$(echo "$before" | tr ',' '\n' | wc -l)" -eq 600 ] && [ "$before" = "$after" ]
t4r_ok $? "identical recommendations for 60 users (600 rows) after the restore"

tcat_after=$(q -d "$DST" -c "$TCAT" 2>&1)
tafter=$(q -d "$DST" -c "$TRECS" 2>&1)
[ -n "$tcat_before" ] && [ "$tcat_before" = "$tcat_after" ] && [ "$tcat_before" != "${tcat_before#shop:text:uuid:}" ]
t4r_ok $? "a text/uuid-keyed model keeps its id types and vocabulary (got: $tcat_after)"
[ -n "$tbefore" ] && [ "$(echo "$tbefore" | tr ',' '\n' | wc -l)" -eq 600 ] && [ "$tbefore" = "$tafter" ]
t4r_ok $? "and gives identical uuid recommendations for 60 text-keyed users after the restore"

# training in the restored database continues the version sequence
v=$(q -d "$DST" -c "SET client_min_messages = warning" -c "SELECT version FROM tim4rec_train('interactions', options => '{\"epochs\": 1, \"hidden_size\": 16, \"max_seq_len\": 20, \"batch_size\": 64}')" 2>&1)
[ "$v" = "3" ]
t4r_ok $? "training in the restored database makes version 3 (got: $v)"

t4r_tap_status
