-- Permissions with a second role (PG-A): functions run with the caller's
-- rights; reading the interactions needs SELECT (table or the used
-- columns), row-level security applies, writing a model needs INSERT and
-- UPDATE on the catalog; the extension is not trusted (superuser installs).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(16);

CREATE ROLE t4r_alice NOLOGIN;
CREATE TABLE tp AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts, 0 AS secret
FROM generate_series(1, 60) u, generate_series(1, 15) s;
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
GRANT SELECT ON o TO t4r_alice;

SELECT is((SELECT superuser FROM pg_available_extension_versions WHERE name = 'tim4rec' AND version = '0.1'), true,
          'installing the extension needs a superuser');
SELECT is((SELECT trusted FROM pg_available_extension_versions WHERE name = 'tim4rec' AND version = '0.1'), false,
          'the extension is not trusted');
SELECT ok(has_table_privilege((SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
                               'tim4rec_models', 'INSERT, UPDATE, DELETE'), 'the database owner may write the catalog');
SELECT is((SELECT bool_or(prosecdef) FROM pg_proc WHERE proname LIKE 'tim4rec\_%'), false, 'no SECURITY DEFINER function');

GRANT INSERT, UPDATE, DELETE ON tim4rec_models TO t4r_alice;
SET LOCAL ROLE t4r_alice;
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', options => (SELECT j FROM o)) $$, '42501',
                 'permission denied for table tp', 'no SELECT on the relation: permission denied');
RESET ROLE;
REVOKE INSERT, UPDATE, DELETE ON tim4rec_models FROM t4r_alice;
GRANT SELECT ON tp TO t4r_alice;
SET LOCAL ROLE t4r_alice;
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', options => (SELECT j FROM o)) $$, '42501',
                 'permission denied for table tim4rec_models', 'no INSERT on the catalog: permission denied');
SELECT lives_ok($$ SELECT * FROM tim4rec_model_list $$, 'everyone can list the models');
RESET ROLE;
GRANT INSERT, UPDATE, DELETE ON tim4rec_models TO t4r_alice;
SET LOCAL ROLE t4r_alice;
SELECT is((SELECT version FROM tim4rec_train('tp', 'pm', options => (SELECT j FROM o))), 1,
          'with SELECT on the relation and write access to the catalog the role trains');
SELECT lives_ok($$ SELECT tim4rec_deploy('pm', 1) $$, 'and deploys');
RESET ROLE;

-- column privileges are enough
REVOKE SELECT ON tp FROM t4r_alice;
GRANT SELECT (user_id, item_id, ts) ON tp TO t4r_alice;
SET LOCAL ROLE t4r_alice;
SELECT is((SELECT version FROM tim4rec_train('tp', 'pm', options => (SELECT j FROM o))), 2,
          'SELECT on the three used columns is enough');
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', 'secret', options => (SELECT j FROM o)) $$, '42501', NULL,
                 'a column without SELECT cannot be used');
RESET ROLE;

-- row-level security applies to training
ALTER TABLE tp ENABLE ROW LEVEL SECURITY;
CREATE POLICY half ON tp FOR SELECT TO t4r_alice USING (user_id <= 30);
SET LOCAL ROLE t4r_alice;
SELECT is((SELECT users FROM tim4rec_train('tp', 'pm', options => (SELECT j FROM o))), 30::bigint,
          'row-level security: the role trains on the rows it may see');
RESET ROLE;
SELECT is((SELECT users FROM tim4rec_train('tp', 'pm', options => (SELECT j FROM o))), 60::bigint,
          'the owner (superuser) sees every row');

-- recommend for a model whose source the caller may not read
REVOKE SELECT (user_id, item_id, ts) ON tp FROM t4r_alice;
SET LOCAL ROLE t4r_alice;
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(5::bigint, 5, 'pm') $$, '42501', NULL,
                 'recommend needs SELECT on the source relation');
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', options => (SELECT j FROM o)) $$, '42501', NULL,
                 'training again without SELECT fails');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'pm'), 4, 'only successful trainings wrote versions');

SELECT * FROM finish();
ROLLBACK;
