-- The optimiser's options through SQL.
-- "weight_decay" (AdamW's decoupled decay): the catalog records it (0 when
-- not given), it changes the trained weights and shrinks them, a warm start
-- keeps the parent's value, and a negative or too large value
-- (learning_rate * weight_decay >= 1) is an error (22023) that stores nothing.
-- "lr_decay", "lr_decay_patience" (the step size multiplied by lr_decay after
-- every lr_decay_patience epochs without a better validation NDCG@10): the
-- catalog records them, each epoch's history has its learning rate, which
-- follows the rule recomputed from the history's validation NDCG@10, and
-- bad values are 22023.
-- "ema_decay" (validation, early stopping and the stored weights use a moving
-- average of the weights): the catalog records it (0 when not given), the
-- training losses are those of the same training without it while the
-- stored weights differ, the stored model scores the best validation
-- NDCG@10 of its history (so the averaged weights were stored, not the last
-- trained ones), a warm start keeps it, values outside [0, 1) are 22023, and
-- the CUDA device refuses it (0A000).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(27);

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

-- lr_decay_patience 1: every epoch that is not better halves the step size
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'lrd', options => '{"epochs": 10, "patience": 10, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.05, "lr_decay": 0.5, "lr_decay_patience": 1}') $$,
                'training with lr_decay 0.5, lr_decay_patience 1');
SELECT is((SELECT array_agg(model_name || ':' || (config->>'lr_decay') || ':' || (config->>'lr_decay_patience') ORDER BY model_name)
             FROM tim4rec_models WHERE model_name IN ('plain', 'lrd')),
          ARRAY['lrd:0.5:1', 'plain:1:2'], 'the catalog records lr_decay and lr_decay_patience (1 and 2 when not given)');
CREATE TEMP TABLE h AS
SELECT (e->>'epoch')::int AS epoch, (e->>'valid_ndcg10')::float8 AS nd, (e->>'learning_rate')::float8 AS lr
FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = 'lrd';
CREATE TEMP TABLE hb AS
SELECT epoch, lr, nd <= max(nd) OVER (ORDER BY epoch ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS worse
FROM h;
SELECT ok((SELECT count(*) FROM hb) = 10 AND (SELECT count(*) FILTER (WHERE worse) FROM hb) >= 1 AND
          (SELECT bool_and(lr = 0.05 * 0.5 ^ (SELECT count(*) FILTER (WHERE worse) FROM hb x WHERE x.epoch <= hb.epoch)) FROM hb),
          'each epoch''s learning rate is 0.05 halved once per epoch so far that was not better');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"lr_decay": 0}') $$,
                 '22023', NULL, 'lr_decay 0: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"lr_decay": 1.5}') $$,
                 '22023', NULL, 'lr_decay above 1: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"lr_decay_patience": 0}') $$,
                 '22023', NULL, 'lr_decay_patience 0: 22023');

SELECT lives_ok($$ SELECT tim4rec_train('ev', 'noema', options => '{"epochs": 4, "patience": 10, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01}') $$,
                'four epochs without ema_decay');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'ema', options => '{"epochs": 4, "patience": 10, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "ema_decay": 0.9}') $$,
                'the same with ema_decay 0.9');
SELECT is((SELECT array_agg(model_name || ':' || (config->>'ema_decay') ORDER BY model_name)
             FROM tim4rec_models WHERE model_name IN ('noema', 'ema')),
          ARRAY['ema:0.9', 'noema:0'], 'the catalog records ema_decay (0 when not given)');
SELECT is((SELECT array_agg((e->>'loss')::float8 ORDER BY (e->>'epoch')::int) FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = 'ema'),
          (SELECT array_agg((e->>'loss')::float8 ORDER BY (e->>'epoch')::int) FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = 'noema'),
          'ema_decay leaves training alone: the same loss in every epoch');
SELECT isnt(tim4rec_export('ema'), tim4rec_export('noema'), 'ema_decay stores other weights');
SELECT is((SELECT round(value::numeric, 9) FROM tim4rec_evaluate('ema', ARRAY[10]) WHERE model = 'tim4rec' AND split = 'valid' AND metric = 'ndcg'),
          (SELECT round(max((e->>'valid_ndcg10')::float8)::numeric, 9) FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = 'ema'),
          'the stored model scores the best validation NDCG@10 of its history: the average was stored');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'ema', options => '{"init_from": "ema", "epochs": 1}') $$,
                'warm start from the averaged model');
SELECT is((SELECT config->>'ema_decay' FROM tim4rec_models WHERE model_name = 'ema' AND version = 2), '0.9',
          'a warm start keeps the parent''s ema_decay');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"ema_decay": 1}') $$,
                 '22023', 'invalid options: option "ema_decay" must be in [0, 1) (got 1)', 'ema_decay 1: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"ema_decay": -0.5}') $$,
                 '22023', NULL, 'a negative ema_decay: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"ema_decay": 0.9, "device": "cuda"}') $$,
                 '0A000', 'the CUDA backend does not support ema_decay', 'ema_decay on the CUDA device: 0A000');
ROLLBACK;
