-- "weight_decay" (AdamW's decoupled decay) through SQL: the catalog records
-- it (0 when not given), it changes the trained weights and shrinks them, a
-- warm start keeps the parent's value, a search can vary it, and a negative
-- or too large value (learning_rate * weight_decay >= 1) is an error (22023) that stores nothing.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(10);

CREATE TABLE ev AS
SELECT u AS user_id, ((u * 5 + s * 3 + (u % 7) * s) % 50 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 97 + s) * interval '1 minute' AS ts
FROM generate_series(1, 100) u, generate_series(1, 15) s;

SELECT lives_ok($$ SELECT tim4rec_train('ev', 'plain', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01}') $$,
                'training without weight_decay (learning_rate 0.01)');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'wd', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "weight_decay": 5}') $$,
                'training with weight_decay 5');
SELECT is((SELECT array_agg(model_name || ':' || (config->>'weight_decay') ORDER BY model_name)
             FROM tim4rec_models WHERE model_name IN ('plain', 'wd')),
          ARRAY['plain:0', 'wd:5'], 'the catalog records weight_decay (0 when not given)');
SELECT isnt(tim4rec_export('wd'), tim4rec_export('plain'), 'weight_decay trains other weights');
-- every weight, the item embeddings and the norms' gains included, is
-- decayed towards 0 (lr * wd = 0.05 per step), so the scores shrink
SELECT ok((SELECT avg(abs(score)) FROM generate_series(1, 20) u, tim4rec_recommend(u::bigint, 10, model_name => 'wd')) <
          0.5 * (SELECT avg(abs(score)) FROM generate_series(1, 20) u, tim4rec_recommend(u::bigint, 10, model_name => 'plain')),
          'weight_decay shrinks the scores');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'wd', options => '{"init_from": "wd", "epochs": 1}') $$,
                'warm start from the decayed model');
SELECT is((SELECT config->>'weight_decay' FROM tim4rec_models WHERE model_name = 'wd' AND version = 2), '5',
          'a warm start keeps the parent''s weight_decay');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"weight_decay": -0.1}') $$,
                 '22023', NULL, 'a negative weight_decay: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"learning_rate": 0.01, "weight_decay": 100}') $$,
                 '22023', NULL, 'learning_rate * weight_decay of 1 (every weight set to 0 each step): 22023');
SELECT is((SELECT count(*) FROM tim4rec_models WHERE model_name = 'bad'), 0::bigint,
          'nothing is stored for a bad weight_decay');
ROLLBACK;
