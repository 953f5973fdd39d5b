-- Versions, the atomic switch, deploy 'if_better', rollback, and failed
-- trainings that change nothing.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(22);

CREATE TABLE tv AS
SELECT u AS user_id, ((u * 3 + s) % 40 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 11 + s) * interval '1 hour' AS ts
FROM generate_series(1, 80) u, generate_series(1, 12) s;
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');

SELECT is((SELECT version FROM tim4rec_train('tv', 'm', options => (SELECT j FROM o))), 1, 'first training is version 1');
SELECT is((SELECT version FROM tim4rec_train('tv', 'm', options => (SELECT j || '{"seed": 11}' FROM o))), 2, 'second training is version 2');
SELECT is((SELECT array_agg(version ORDER BY version) FROM tim4rec_models WHERE model_name = 'm' AND is_current), ARRAY[2],
          'the newest version is the only current one');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'm'), 2, 'the older version is kept');

-- recommendations follow the current version
CREATE TEMP TABLE r AS SELECT 2 AS v, array_agg(item_id ORDER BY rank) AS items, array_agg(score ORDER BY rank) AS scores
FROM tim4rec_recommend(7::bigint, 10, 'm');
SELECT lives_ok($$ SELECT tim4rec_deploy('m', 1) $$, 'rollback to version 1');
SELECT is((SELECT version FROM tim4rec_models WHERE model_name = 'm' AND is_current), 1, 'version 1 is current after rollback');
INSERT INTO r SELECT 1, array_agg(item_id ORDER BY rank), array_agg(score ORDER BY rank) FROM tim4rec_recommend(7::bigint, 10, 'm');
SELECT isnt((SELECT scores FROM r WHERE v = 1), (SELECT scores FROM r WHERE v = 2),
            'recommend uses the deployed version (different seeds, different scores)');
SELECT lives_ok($$ SELECT tim4rec_deploy('m', 2) $$, 'switch forward to version 2');
SELECT is((SELECT scores FROM (SELECT array_agg(score ORDER BY rank) AS scores FROM tim4rec_recommend(7::bigint, 10, 'm')) s),
          (SELECT scores FROM r WHERE v = 2), 'scores of version 2 again after switching back');
SELECT throws_ok($$ SELECT tim4rec_deploy('m', 9) $$, '42704', NULL, 'deploying an unknown version fails');
SELECT is((SELECT version FROM tim4rec_models WHERE model_name = 'm' AND is_current), 2, 'a failed deploy changes nothing');

-- if_better: a training that does not improve validation NDCG@10 is stored but not deployed
UPDATE tim4rec_models SET metrics = jsonb_set(metrics, '{valid,ndcg@10}', '1.5') WHERE model_name = 'm' AND version = 2;
SELECT is((SELECT version FROM tim4rec_train('tv', 'm', options => (SELECT j || '{"deploy": "if_better"}' FROM o))), 3,
          'if_better training stores version 3');
SELECT is((SELECT version FROM tim4rec_models WHERE model_name = 'm' AND is_current), 2,
          'if_better keeps the current version when NDCG@10 does not improve');
UPDATE tim4rec_models SET metrics = jsonb_set(metrics, '{valid,ndcg@10}', '-1') WHERE model_name = 'm' AND version = 2;
SELECT is((SELECT version FROM tim4rec_train('tv', 'm', options => (SELECT j || '{"deploy": "if_better"}' FROM o))), 4,
          'if_better training stores version 4');
SELECT is((SELECT version FROM tim4rec_models WHERE model_name = 'm' AND is_current), 4,
          'if_better deploys when NDCG@10 improves');

-- failures change nothing
CREATE TEMP TABLE snap AS SELECT model_name, version, is_current, md5(weights) AS w FROM tim4rec_models;
SELECT throws_ok($$ SELECT tim4rec_train('tv', 'm', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "bogus": 1}') $$,
                 '22023', NULL, 'bad option fails');
SET LOCAL tim4rec.memory_budget = '16MB';
SELECT throws_ok($$ SELECT tim4rec_train('tv', 'm', options => '{"hidden_size": 512, "head_dim": 64, "batch_size": 4096}') $$,
                 '53200', NULL, 'over-budget training fails before allocating');
RESET tim4rec.memory_budget;
SELECT throws_ok($$ SELECT tim4rec_train('tv', 'm', options => '{"min_user_interactions": 100}') $$,
                 '22000', NULL, 'too little data fails');
-- an error after training (inside the same statement) rolls the new version back
SELECT throws_ok($$ SELECT (SELECT version FROM tim4rec_train('tv', 'm', options => (SELECT j FROM o))) / 0 $$,
                 '22012', NULL, 'an error later in the statement');
SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'the catalog is unchanged by failed trainings');

-- drop the current version: the newest remaining becomes current
SELECT is(tim4rec_drop('m', 4), 1, 'drop the current version');
SELECT is((SELECT version FROM tim4rec_models WHERE model_name = 'm' AND is_current), 3,
          'the newest remaining version became current');

SELECT * FROM finish();
ROLLBACK;
