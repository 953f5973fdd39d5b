#!/usr/bin/env bash
# Upgrade 0.1 -> current (0.1 -> 0.2 -> ...): install version 0.1 from its
# frozen script (test/upgrade/tim4rec--0.1.sql, byte-identical to what the
# Makefile generated at the last 0.1 commit; test/run_tests.sh installs it
# next to the current scripts), train two versions and deploy one, then
# ALTER EXTENSION tim4rec UPDATE: the models, versions, current version and
# recommendations are identical, every model gets the database owner as
# owner, the raw catalog grants of 0.1 are gone, and the database looks like
# a fresh install (same catalog columns, functions, views and comments).
# Prints TAP.  Uses PGHOST/PGPORT/PGUSER; T4R_PG_BINDIR for the tools.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
DB=t4r_upgrade_$$
FRESH=t4r_upgrade_fresh_$$
q() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
cleanup() {
    "$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP DATABASE IF EXISTS $FRESH" \
        -c "DROP ROLE IF EXISTS t4r_up_app" >/dev/null 2>&1
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT

SHARE=$("$BIN/pg_config" --sharedir)/extension
if [ ! -f "$SHARE/tim4rec--0.1.sql" ]; then
    echo "1..0 # SKIP $SHARE/tim4rec--0.1.sql is not installed (test/run_tests.sh installs it unless T4R_SKIP_INSTALL=1)"
    exit 0
fi

echo "1..13"
q -d postgres -c "CREATE DATABASE $DB" -c "CREATE DATABASE $FRESH" -c "CREATE ROLE t4r_up_app" >/dev/null
q -d "$DB" -c "CREATE EXTENSION tim4rec VERSION '0.1'" >/dev/null
t4r_ok $? "CREATE EXTENSION tim4rec VERSION '0.1'"
[ "$(q -d "$DB" -c "SELECT extversion FROM pg_extension WHERE extname = 'tim4rec'")" = 0.1 ]
t4r_ok $? "the installed version is 0.1"

q -d "$DB" >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE TABLE interactions AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 15) s;
SELECT tim4rec_train('interactions', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SELECT tim4rec_train('interactions', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": 5}');
SELECT tim4rec_deploy('default', 1);
SELECT tim4rec_import('copy', tim4rec_export('default'), (SELECT item_ids FROM tim4rec_models WHERE is_current));
GRANT INSERT, UPDATE, DELETE ON tim4rec_models TO t4r_up_app;
SQL
t4r_ok $? "with the 0.1 catalog: train two versions, deploy version 1, import a copy, grant raw catalog rights"

RECS="SELECT string_agg(u || ':' || item_id || ':' || score || ':' || rank, ',' ORDER BY u, rank)
      FROM generate_series(1, 60) u, LATERAL tim4rec_recommend(u::bigint, 10) r"
SEQ="SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank)
     FROM tim4rec_recommend(ARRAY[1, 2, 3]::bigint[], ARRAY[1, 2, 3]::float8[], 10, 'copy')"
CAT="SELECT string_agg(model_name || ':' || version || ':' || is_current || ':' || md5(weights) || ':' ||
                       md5(item_ids::text) || ':' || md5(config::text) || ':' || md5(coalesce(metrics::text, '')), ','
                       ORDER BY model_name, version)
     FROM tim4rec_models"
before=$(q -d "$DB" -c "$RECS" 2>&1)
seq_before=$(q -d "$DB" -c "$SEQ" 2>&1)
cat_before=$(q -d "$DB" -c "$CAT" 2>&1)

q -d "$DB" -c "ALTER EXTENSION tim4rec UPDATE" >/dev/null
t4r_ok $? "ALTER EXTENSION tim4rec UPDATE"
CUR=$(q -d "$DB" -c "SELECT default_version FROM pg_available_extensions WHERE name = 'tim4rec'")
[ "$(q -d "$DB" -c "SELECT extversion FROM pg_extension WHERE extname = 'tim4rec'")" = "$CUR" ]
t4r_ok $? "the installed version is the default version ($CUR)"

cat_after=$(q -d "$DB" -c "$CAT" 2>&1)
[ -n "$cat_before" ] && [ "$cat_before" = "$cat_after" ]
t4r_ok $? "models, versions, current flags, weights, vocabularies, configs and metrics are carried over"

after=$(q -d "$DB" -c "$RECS" 2>&1)
[ "$(echo "$before" | tr ',' '\n' | wc -l)" -eq 600 ] && [ "$before" = "$after" ]
t4r_ok $? "identical recommendations for 60 users (600 rows) after the update"
seq_after=$(q -d "$DB" -c "$SEQ" 2>&1)
[ -n "$seq_before" ] && [ "$seq_before" = "$seq_after" ]
t4r_ok $? "identical recommendations of the imported model for a sequence"

owners=$(q -d "$DB" -c "SELECT string_agg(DISTINCT owner::text, ',') FROM tim4rec_models")
dbowner=$(q -d "$DB" -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
[ -n "$owners" ] && [ "$owners" = "$dbowner" ]
t4r_ok $? "every model is owned by the database owner ($owners)"

[ "$(q -d "$DB" -c "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
                    WHERE c.oid = 'tim4rec_models'::regclass AND a.grantee <> c.relowner")" = 0 ]
t4r_ok $? "no role keeps raw privileges on the catalog (PUBLIC, the database owner and t4r_up_app lost theirs)"

# the updated database has the same objects as a fresh install of the default version
q -d "$FRESH" -c "CREATE EXTENSION tim4rec" >/dev/null
SHAPE="SELECT string_agg(x, E'\n' ORDER BY x) FROM (
         SELECT 'col ' || attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' ||
                coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS x
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = 'tim4rec_models'::regclass AND a.attnum > 0 AND NOT a.attisdropped
         UNION ALL
         SELECT 'fn ' || p.oid::regprocedure::text || ' ' || pg_get_function_result(p.oid) || ' ' || p.provolatile::text ||
                p.proparallel::text || ' ' || coalesce(array_to_string(p.proacl, ','), 'default')
         FROM pg_proc p JOIN pg_depend dp ON dp.objid = p.oid AND dp.classid = 'pg_proc'::regclass AND dp.deptype = 'e'
         WHERE dp.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tim4rec')
         UNION ALL
         SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid)) || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
         FROM pg_class c WHERE c.relname IN ('tim4rec_model_list', 'tim4rec_progress')
         UNION ALL
         SELECT 'comment ' || pg_describe_object(dp.classid, dp.objid, 0) || ' ' ||
                coalesce(obj_description(dp.objid, (SELECT relname FROM pg_class WHERE oid = dp.classid)), '(none)')
         FROM pg_depend dp
         WHERE dp.refclassid = 'pg_extension'::regclass AND dp.deptype = 'e'
           AND dp.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tim4rec')) s"
# an error in the query must not compare equal on both sides (text ||
# "char" was ambiguous here once, and the check passed on two identical errors)
shape_up=$(q -d "$DB" -c "$SHAPE") || shape_up=""
shape_fresh=$(q -d "$FRESH" -c "$SHAPE") || shape_fresh=""
if [ -n "$shape_up" ] && [ "$shape_up" = "$shape_fresh" ]; then t4r_ok 0 "catalog columns, functions (with privileges), views and the comments of every member match a fresh $CUR install"
else t4r_ok 1 "catalog columns, functions (with privileges), views and the comments of every member match a fresh $CUR install"
     diff <(echo "$shape_up") <(echo "$shape_fresh") | sed 's/^/# /'; fi

q -d "$DB" >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
SELECT tim4rec_grant('default', 't4r_up_app');
SELECT tim4rec_train('interactions', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SQL
[ "$(q -d "$DB" -c "SELECT string_agg(version || ':' || is_current || ':' || array_to_string(grant_usage, '+'), ',' ORDER BY version)
                    FROM tim4rec_model_list WHERE model_name = 'default'")" = "1:false:t4r_up_app,2:false:t4r_up_app,3:true:t4r_up_app" ]
t4r_ok $? "after the update: grants work and a new version keeps the owner and grants"

# id types (0.3): the old rows read as bigint ids, and a text-keyed model
# trains and serves in the updated database
q -d "$DB" >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE TABLE interactions_text AS SELECT 'u' || user_id AS user_id, 'i' || item_id AS item_id, ts FROM interactions;
SELECT tim4rec_train('interactions_text', 'text_model', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SQL
[ "$(q -d "$DB" -c "SELECT string_agg(DISTINCT user_id_type || '/' || item_id_type, ',') FROM tim4rec_model_list WHERE model_name = 'copy' OR (model_name = 'default' AND version <= 2)")" = "bigint/bigint" ] &&
[ "$(q -d "$DB" -c "SELECT count(*) FROM tim4rec_recommend('u1'::text, 10, 'text_model') WHERE item_id LIKE 'i%'")" = 10 ]
t4r_ok $? "after the update: the old models have bigint id types, a text-keyed model trains and recommends text items"
