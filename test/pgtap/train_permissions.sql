-- Privileges with three roles (README "Privileges").  Functions run with the caller's rights; nobody has raw
-- privileges on tim4rec_models; training needs EXECUTE on tim4rec_train
-- and SELECT on the relation; a model belongs to the role that created
-- version 1 and only that role (its members, superusers) adds versions,
-- deploys, drops, grants; what a model reveals (catalog row, item ids,
-- counts, metrics, weights, cold-start popularity) is visible only to its
-- owner, to roles granted 'read', and to roles that may read every row of
-- its source; 'usage' allows recommend and evaluate.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(45);

CREATE ROLE t4r_alice NOLOGIN;
CREATE ROLE t4r_bob NOLOGIN;
CREATE ROLE t4r_carol NOLOGIN;
CREATE ROLE t4r_alice_team NOLOGIN;
GRANT t4r_alice TO t4r_alice_team;
CREATE TABLE tp AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts, 0 AS secret
FROM generate_series(1, 60) u, generate_series(1, 15) s;
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
GRANT SELECT ON o TO t4r_alice, t4r_bob, t4r_carol, t4r_alice_team;

-- 1-6: the extension and the catalog
SELECT is((SELECT superuser FROM pg_available_extension_versions WHERE name = 'tim4rec' AND version = '0.2'), true,
          'installing the extension needs a superuser');
SELECT is((SELECT trusted FROM pg_available_extension_versions WHERE name = 'tim4rec' AND version = '0.2'), false,
          'the extension is not trusted');
SELECT is((SELECT count(*)::int FROM pg_class c, aclexplode(c.relacl) a
           WHERE c.oid = 'tim4rec_models'::regclass AND a.grantee <> c.relowner), 0,
          'nobody but its owner has a privilege on tim4rec_models');
SELECT is((SELECT bool_or(prosecdef) FROM pg_proc WHERE proname LIKE 'tim4rec\_%'), false, 'no SECURITY DEFINER function');
SELECT ok(has_function_privilege((SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
                                 'tim4rec_train(regclass, text, name, name, name, jsonb)', 'EXECUTE'),
          'the database owner may train');
SELECT ok(NOT has_function_privilege('t4r_alice', 'tim4rec_train(regclass, text, name, name, name, jsonb)', 'EXECUTE'),
          'other roles may not train until granted EXECUTE');

-- 7-10: training: EXECUTE and SELECT on the relation
SET LOCAL ROLE t4r_alice;
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', options => (SELECT j FROM o)) $$, '42501',
                 NULL, 'without EXECUTE on tim4rec_train: permission denied');
RESET ROLE;
GRANT EXECUTE ON FUNCTION tim4rec_train(regclass, text, name, name, name, jsonb),
                          tim4rec_import(text, bytea, bigint[], jsonb) TO t4r_alice, t4r_bob, t4r_carol, t4r_alice_team;
SET LOCAL ROLE t4r_alice;
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', options => (SELECT j FROM o)) $$, '42501',
                 'permission denied for table tp', 'no SELECT on the relation: permission denied');
RESET ROLE;
GRANT SELECT (user_id, item_id, ts) ON tp TO t4r_alice;
SET LOCAL ROLE t4r_alice;
SELECT is((SELECT version FROM tim4rec_train('tp', 'pm', options => (SELECT j FROM o))), 1,
          'SELECT on the three used columns is enough to train');
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', 'secret', options => (SELECT j FROM o)) $$, '42501', NULL,
                 'a column without SELECT cannot be used');
RESET ROLE;

-- 11-12: the creator owns the model
SELECT is((SELECT owner::text FROM tim4rec_model_list WHERE model_name = 'pm'), 't4r_alice',
          'the role that created version 1 owns the model');
SET LOCAL ROLE t4r_alice;
SELECT lives_ok($$ SELECT tim4rec_deploy('pm', 1) $$, 'the owner deploys');
RESET ROLE;

-- 13-19: another role may not touch alice's model
GRANT SELECT ON tp TO t4r_bob;
SET LOCAL ROLE t4r_bob;
SELECT throws_ok($$ SELECT tim4rec_train('tp', 'pm', options => (SELECT j FROM o)) $$, '42501',
                 'must be owner of model "pm"', 'bob cannot add a version to alice''s model');
SELECT throws_ok($$ SELECT tim4rec_import('pm', tim4rec_export('pm')) $$, '42501',
                 'must be owner of model "pm"', 'bob cannot import over it');
SELECT throws_ok($$ SELECT tim4rec_deploy('pm', 1) $$, '42501', 'must be owner of model "pm"', 'bob cannot deploy it');
SELECT throws_ok($$ SELECT tim4rec_drop('pm') $$, '42501', 'must be owner of model "pm"', 'bob cannot drop it');
SELECT throws_ok($$ SELECT tim4rec_grant('pm', 't4r_bob', 'read') $$, '42501', 'must be owner of model "pm"',
                 'bob cannot grant himself anything');
SELECT throws_ok($$ UPDATE tim4rec_models SET is_current = false $$, '42501', NULL,
                 'and has no raw access to the catalog');
SELECT throws_ok($$ SELECT tim4rec_alter_owner('pm', 't4r_bob') $$, '42501', NULL, 'nor can he take it over');
RESET ROLE;

-- 20-22: members of the owning role and superusers manage it
SET LOCAL ROLE t4r_alice_team;
SELECT is((SELECT version FROM tim4rec_train('tp', 'pm', options => (SELECT j FROM o))), 2,
          'a member of the owning role adds a version');
RESET ROLE;
SELECT lives_ok($$ SELECT tim4rec_deploy('pm', 1) $$, 'a superuser deploys any model');
SELECT is((SELECT array_agg(DISTINCT owner::text) FROM tim4rec_models WHERE model_name = 'pm'), ARRAY['t4r_alice'],
          'new versions keep the owner');

-- 23-31: what the model reveals: carol may not read tp
SET LOCAL ROLE t4r_carol;
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'pm'), 0,
          'carol (no SELECT on the source) does not see the catalog rows');
SELECT throws_ok($$ SELECT item_ids FROM tim4rec_models $$, '42501', NULL, 'nor the raw table (item ids, counts)');
SELECT throws_ok($$ SELECT tim4rec_export('pm') $$, '42501', 'permission denied for model "pm"', 'nor the weights');
SELECT throws_ok($$ SELECT tim4rec_item_ids('pm') $$, '42501', 'permission denied for model "pm"', 'nor the item ids');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[1]::float8[], 3, 'pm') $$, '42501',
                 'permission denied for model "pm"', 'nor recommendations for a sequence');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[]::bigint[], ARRAY[]::float8[], 3, 'pm') $$, '42501',
                 'permission denied for model "pm"', 'nor the cold-start popularity order');
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate('pm') $$, '42501', NULL, 'nor evaluation');
RESET ROLE;
CREATE TEMP TABLE w AS SELECT md5(weights) AS m FROM tim4rec_models WHERE model_name = 'pm' AND is_current;
GRANT SELECT ON w TO t4r_bob;
SET LOCAL ROLE t4r_bob;
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'pm'), 2,
          'bob (SELECT on the whole source) sees the catalog rows');
SELECT is(md5(tim4rec_export('pm')), (SELECT m FROM w),
          'and may export the weights');
RESET ROLE;

-- 32-37: grants
SELECT tim4rec_grant('pm', 't4r_carol', 'usage');
SET LOCAL ROLE t4r_carol;
SELECT is((SELECT count(*)::int FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 5, 'pm')), 5,
          'granted usage: carol gets recommendations for a sequence');
SELECT throws_ok($$ SELECT tim4rec_export('pm') $$, '42501', NULL, 'but usage does not reveal the weights');
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'pm'), 0, 'nor the catalog rows');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(5::bigint, 3, 'pm') $$, '42501',
                 'permission denied for table public.tp', 'the user form still needs SELECT on the source');
RESET ROLE;
SELECT tim4rec_grant('pm', 't4r_carol', 'read');
SET LOCAL ROLE t4r_carol;
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'pm'), 2, 'granted read: carol sees the rows');
RESET ROLE;
SELECT tim4rec_revoke('pm', 't4r_carol');
SET LOCAL ROLE t4r_carol;
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[1]::float8[], 3, 'pm') $$, '42501',
                 NULL, 'revoked: nothing again');
RESET ROLE;

-- 38-41: row-level security: a role that sees only some rows is not a reader
ALTER TABLE tp ENABLE ROW LEVEL SECURITY;
CREATE POLICY half ON tp FOR SELECT TO t4r_bob USING (user_id <= 30);
SET LOCAL ROLE t4r_bob;
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'pm'), 0,
          'under row-level security bob no longer sees alice''s model');
SELECT throws_ok($$ SELECT tim4rec_export('pm') $$, '42501', NULL, 'nor exports it');
SELECT is((SELECT users FROM tim4rec_train('tp', 'pb', options => (SELECT j FROM o))), 30::bigint,
          'bob trains his own model on the rows he may see');
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'pb'), 1, 'and, as its owner, sees it');
RESET ROLE;

-- 42-45: ownership changes; errors
SELECT throws_ok($$ SELECT tim4rec_grant('pm', 'no_such_role') $$, '42704', NULL, 'granting to an unknown role: 42704');
SELECT throws_ok($$ SELECT tim4rec_grant('pm', 't4r_bob', 'write') $$, '22023', NULL, 'an unknown privilege: 22023');
SELECT lives_ok($$ SELECT tim4rec_alter_owner('pm', 't4r_bob') $$, 'a superuser hands the model to bob');
SET LOCAL ROLE t4r_alice;
SELECT throws_ok($$ SELECT tim4rec_drop('pm') $$, '42501', NULL, 'and alice no longer manages it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
