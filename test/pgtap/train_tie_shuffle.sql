-- "tie_shuffle": true through SQL: the catalog records it, it changes the
-- trained weights of a table with equal timestamps, it is exactly a no-op on
-- a table without them, the best epoch is reported as usual, the amazon
-- preset's default ("auto": true here) and its published form (false, kept by a warm
-- start), and a value that is not a boolean is an error (22023).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(12);

-- day-resolution times: runs of up to three events of a user share a day;
-- seq orders them as a loader would
CREATE TABLE tied AS
SELECT u AS user_id, ((u * 5 + s * 3 + (u % 7) * s) % 50 + 1)::int AS item_id,
       date '2024-01-01' + (u % 9 + s / 3) AS ts, s AS seq
FROM generate_series(1, 100) u, generate_series(1, 15) s;
-- the same events with distinct times
CREATE TABLE untied AS
SELECT user_id, item_id, timestamptz '2024-01-01' + (user_id * 97 + seq) * interval '1 minute' AS ts
FROM tied;

CREATE TEMP TABLE r AS
SELECT 'plain' AS arm, * FROM tim4rec_train('tied', 'plain', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "order_column": "seq"}')
UNION ALL
SELECT 'shuf', * FROM tim4rec_train('tied', 'shuf', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "order_column": "seq", "tie_shuffle": true}');
SELECT is((SELECT config->>'tie_shuffle' FROM tim4rec_models WHERE model_name = 'shuf'), 'true',
          'the catalog records tie_shuffle');
SELECT is((SELECT config->>'tie_shuffle' FROM tim4rec_models WHERE model_name = 'plain'), 'false',
          'a model trained without it (movielens preset) records tie_shuffle false');
SELECT ok((SELECT best_epoch BETWEEN 1 AND 2 AND test_ndcg10 BETWEEN 0 AND 1 FROM r WHERE arm = 'shuf'),
          'a tie_shuffle training reports its best epoch and test metrics');
SELECT isnt(tim4rec_export('shuf'), tim4rec_export('plain'),
            'with equal timestamps, tie_shuffle trains other weights');

SELECT lives_ok($$ SELECT tim4rec_train('untied', 'u_plain', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64}') $$,
                'training on distinct times');
SELECT lives_ok($$ SELECT tim4rec_train('untied', 'u_shuf', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "tie_shuffle": true}') $$,
                'training on distinct times with tie_shuffle');
SELECT is(tim4rec_export('u_shuf'), tim4rec_export('u_plain'),
          'without equal timestamps, tie_shuffle is a no-op: the same weights bit for bit');

-- the amazon preset shuffles by default ("auto", without an order column:
-- ties by item id, test/pgtap/train_tie_auto.sql); "tie_shuffle": false is
-- the published training, and a warm start keeps the parent's choice
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'amz', options => '{"preset": "amazon", "epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64}') $$,
                'amazon preset training');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'amz_paper', options => '{"preset": "amazon", "tie_shuffle": false, "epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "order_column": "seq"}') $$,
                'amazon preset with tie_shuffle false');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'amz_paper', options => '{"init_from": "amz_paper", "epochs": 1}') $$,
                'warm start from it');
SELECT is((SELECT array_agg(model_name || ':' || version || ':' || (config->>'tie_shuffle') ORDER BY model_name, version)
             FROM tim4rec_models WHERE model_name LIKE 'amz%'),
          ARRAY['amz:1:true', 'amz_paper:1:false', 'amz_paper:2:false'],
          'amazon preset: tie_shuffle true by default, false when set, and a warm start keeps false');

SELECT throws_ok($$ SELECT tim4rec_train('tied', 'bad', options => '{"tie_shuffle": "sometimes"}') $$,
                 '22023', NULL, 'a tie_shuffle that is not a boolean: 22023');

SELECT * FROM finish();
ROLLBACK;
