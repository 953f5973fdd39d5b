-- The training option "refit" through SQL: after early stopping has chosen
-- the best epoch E on validation, train again from the same initial weights
-- for E epochs on the training parts extended by every user's validation
-- target, and keep that model.
-- The catalog records it (false when not given); the first pass is the
-- training without it (the same validation metrics, bit for bit); the
-- metrics name the second pass (its epochs = the best epoch, one more
-- sample per user with a validation target); the stored model is the
-- refitted one (tim4rec_evaluate gives the test metrics the training
-- recorded, and the weights differ from the training without it); it never
-- trains on a test item (two tables that differ only in their test items
-- give the same weights bit for bit); it replays lr_decay's step sizes; a
-- search refits the kept trial only; a warm start keeps it; a value that is
-- not a boolean or a search over it is 22023 and the CUDA device refuses it
-- (0A000).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(23);

CREATE TABLE ev AS
SELECT u AS user_id, ((u * 5 + s * 3 + (u % 7) * s) % 50 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 97 + s) * interval '1 minute' AS ts
FROM generate_series(1, 100) u, generate_series(1, 15) s;
-- the same with other items at the test position (s = 15); every item
-- still occurs before it, so the vocabulary is the same
CREATE TABLE ev2 AS
SELECT user_id, CASE WHEN ts = timestamptz '2024-01-01' + (user_id * 97 + 15) * interval '1 minute'
                     THEN ((user_id * 11) % 50 + 1)::int ELSE item_id END AS item_id, ts
FROM ev;
SELECT is((SELECT count(DISTINCT item_id) FROM ev2
            WHERE ts < timestamptz '2024-01-01' + (user_id * 97 + 15) * interval '1 minute'), 50::bigint,
          'all 50 items occur before the test items');
SELECT cmp_ok((SELECT count(*) FROM ev JOIN ev2 USING (user_id, ts) WHERE ev.item_id <> ev2.item_id), '>', 50::bigint,
              'ev2 has other test items for most users');

SELECT lives_ok($$ SELECT tim4rec_train('ev', 'plain', options => '{"epochs": 4, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01}') $$,
                'training without refit');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'rf', options => '{"epochs": 4, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "refit": true}') $$,
                'the same with refit');
SELECT is((SELECT array_agg(model_name || ':' || (config->>'refit') ORDER BY model_name)
             FROM tim4rec_models WHERE model_name IN ('plain', 'rf')),
          ARRAY['plain:false', 'rf:true'], 'the catalog records refit (false when not given)');
SELECT is((SELECT metrics->'valid' FROM tim4rec_models WHERE model_name = 'rf'),
          (SELECT metrics->'valid' FROM tim4rec_models WHERE model_name = 'plain'),
          'the validation metrics are the first pass''s: those of the training without refit');
SELECT is((SELECT (metrics->'refit'->>'epochs')::int FROM tim4rec_models WHERE model_name = 'rf'),
          (SELECT (metrics->>'best_epoch')::int FROM tim4rec_models WHERE model_name = 'plain'),
          'the second pass runs the best epoch''s number of epochs');
SELECT is((SELECT (metrics->'refit'->>'train_samples')::bigint FROM tim4rec_models WHERE model_name = 'rf'),
          (SELECT (metrics->>'train_samples')::bigint FROM tim4rec_models WHERE model_name = 'plain') + 100,
          'the second pass trains on one more sample per user (the 100 validation targets)');
SELECT ok((SELECT NOT (metrics ? 'refit') FROM tim4rec_models WHERE model_name = 'plain'),
          'a training without refit has no refit metrics');
SELECT isnt(tim4rec_export('rf'), tim4rec_export('plain'), 'the stored model is not the first pass''s');
SELECT is((SELECT round(value::numeric, 12) FROM tim4rec_evaluate('rf', ARRAY[10]) WHERE model = 'tim4rec' AND split = 'test' AND metric = 'ndcg'),
          (SELECT round((metrics->'test'->>'ndcg@10')::numeric, 12) FROM tim4rec_models WHERE model_name = 'rf'),
          'the recorded test NDCG@10 is the stored (refitted) model''s');

-- never a test item
SELECT lives_ok($$ SELECT tim4rec_train('ev2', 'rf2', options => '{"epochs": 4, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "refit": true}') $$,
                'refit on the table with other test items');
SELECT is(md5(tim4rec_export('rf2')), md5(tim4rec_export('rf')),
          'refit never trains on a test item: the same weights bit for bit');

-- lr_decay, search, warm start
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'rf_lrd', options => '{"epochs": 6, "patience": 3, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.05, "lr_decay": 0.5, "lr_decay_patience": 1, "refit": true}') $$,
                'refit with lr_decay');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'rf_search', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "refit": true, "search": {"learning_rate": [0.003, 0.01]}}') $$,
                'refit with a search');
SELECT is((SELECT (metrics->'refit'->>'epochs')::int FROM tim4rec_models WHERE model_name = 'rf_search'),
          (SELECT (t->>'best_epoch')::int FROM tim4rec_models, jsonb_array_elements(history) t
            WHERE model_name = 'rf_search' AND (t->>'kept')::boolean),
          'a search refits the kept trial, for its best epoch');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'rf', options => '{"init_from": "rf", "epochs": 1}') $$,
                'warm start from the refit model');
SELECT is((SELECT (config->>'refit') || ':' || (metrics ? 'refit')::text FROM tim4rec_models WHERE model_name = 'rf' AND version = 2),
          'true:true', 'a warm start keeps the parent''s refit');

-- the presets: the amazon preset refits, movielens does not
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'amz', options => '{"preset": "amazon", "epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64}') $$,
                'amazon preset training');
SELECT is((SELECT array_agg(model_name || ':' || (config->>'refit') || ':' || (metrics ? 'refit')::text ORDER BY model_name)
             FROM tim4rec_models WHERE model_name IN ('amz', 'plain')),
          ARRAY['amz:true:true', 'plain:false:false'],
          'refit is the amazon preset''s default and not the movielens preset''s');

-- refusals
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"refit": "often"}') $$,
                 '22023', NULL, 'a refit that is not a boolean: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"search": {"refit": [false, true]}}') $$,
                 '22023', 'option "refit" cannot be searched', 'refit cannot be searched: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"refit": true, "device": "cuda"}') $$,
                 '0A000', 'the CUDA backend does not support refit', 'refit on the CUDA device: 0A000');

SELECT * FROM finish();
ROLLBACK;
