-- options.warm_scope: a warm start that trains and early-stops only on the
-- users with interactions newer than the parent version's newest one
-- ('new'), against the default ('all').  Every version records the time of
-- its newest interaction (metrics.time_max); the warm versions record their
-- scope and how many users they trained on.  Expected counts are computed
-- here in SQL from the table: a user with m interactions has m - 2 training
-- items and m - 3 training samples (leave-one-out).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(16);

CREATE TABLE tw AS
SELECT u AS user_id, ((u * 3 + s) % 30 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 13 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 12) s;
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "patience": 3, "seed": 7}');

-- 1-2: the parent records its newest interaction
SELECT is((SELECT version FROM tim4rec_train('tw', 'p', options => (SELECT j FROM o))), 1, 'parent p version 1');
SELECT is((SELECT (metrics ->> 'time_max')::float8 FROM tim4rec_models WHERE model_name = 'p'),
          (SELECT extract(epoch FROM max(ts))::float8 FROM tw), 'metrics.time_max = the newest ts (epoch seconds)');

-- 3: nothing new yet
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": "p", "warm_scope": "new", "epochs": 1}') $$,
                 '22000', 'no user has interactions newer than those model "p" version 1 was trained on',
                 'warm_scope new without newer interactions: 22000');

-- the table moves on: users 1-10 get one more interaction each, after the parent's newest
CREATE TEMP TABLE cut AS SELECT max(ts) AS t FROM tw;
INSERT INTO tw SELECT u, ((u * 7) % 30 + 1)::bigint, timestamptz '2024-03-01' + u * interval '1 hour'
FROM generate_series(1, 10) u;
CREATE TEMP TABLE expect AS
SELECT count(*) FILTER (WHERE newest > (SELECT t FROM cut)) AS new_users,
       (sum(m - 3) FILTER (WHERE newest > (SELECT t FROM cut)))::bigint AS new_samples,
       sum(m - 3)::bigint AS all_samples, count(*) AS users
FROM (SELECT user_id, count(*) AS m, max(ts) AS newest FROM tw GROUP BY user_id) x;

-- 4-9: warm_scope new
CREATE TEMP TABLE rn AS SELECT * FROM tim4rec_train('tw', 'c', options => '{"init_from": "p", "warm_scope": "new", "epochs": 1}');
SELECT is((SELECT train_samples FROM rn), (SELECT new_samples FROM expect),
          'warm_scope new trains on the samples of the users with newer interactions only');
SELECT is((SELECT users FROM rn), (SELECT users FROM expect), 'its result row still counts every user');
SELECT is((SELECT metrics ->> 'warm_scope' FROM tim4rec_models WHERE model_name = 'c'), 'new', 'metrics.warm_scope = new');
SELECT is((SELECT (metrics ->> 'warm_users')::bigint FROM tim4rec_models WHERE model_name = 'c'),
          (SELECT new_users FROM expect), 'metrics.warm_users = the users with newer interactions');
SELECT is((SELECT config ? 'warm_scope' FROM tim4rec_models WHERE model_name = 'c'), false,
          'warm_scope is a per-call key: not in the stored config');
SELECT is((SELECT (metrics ->> 'time_max')::float8 FROM tim4rec_models WHERE model_name = 'c'),
          (SELECT extract(epoch FROM max(ts))::float8 FROM tw), 'the warm version records the new newest ts');

-- 10-12: the default scope trains on everyone
CREATE TEMP TABLE ra AS SELECT * FROM tim4rec_train('tw', 'c2', options => '{"init_from": "p", "epochs": 1}');
SELECT is((SELECT train_samples FROM ra), (SELECT all_samples FROM expect), 'warm_scope all (default) trains on every user');
SELECT is((SELECT metrics ->> 'warm_scope' FROM tim4rec_models WHERE model_name = 'c2'), 'all', 'metrics.warm_scope = all');
SELECT is((SELECT (metrics ->> 'warm_users')::bigint FROM tim4rec_models WHERE model_name = 'c2'),
          (SELECT users FROM expect), 'metrics.warm_users = every user');

-- 13-16: errors
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c3', options => '{"warm_scope": "new"}') $$,
                 '22023', 'option "warm_scope" needs "init_from"', 'warm_scope without init_from: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c3', options => '{"init_from": "p", "warm_scope": "recent"}') $$,
                 '22023', NULL, 'warm_scope other than all/new: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c3', options => '{"init_from": "p", "warm_scope": 1}') $$,
                 '22023', NULL, 'warm_scope that is not a string: 22023');
-- a version from before metrics.time_max existed
UPDATE tim4rec_models SET metrics = metrics - 'time_max' WHERE model_name = 'p';
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c3', options => '{"init_from": "p", "warm_scope": "new"}') $$,
                 '55000', 'model "p" version 1 does not record the time of its newest interaction',
                 'a parent without metrics.time_max: 55000');

SELECT * FROM finish();
ROLLBACK;
