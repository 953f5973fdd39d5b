-- "tie_shuffle": "auto" (the amazon preset's default) through SQL:
--  * an order column in a random order: shuffled, one training, the weights
--    of "tie_shuffle": true bit for bit;
--  * an order column that orders equal timestamps consistently: both forms
--    trained as trials (the table's order also with weight_decay 0 when the
--    preset's is not 0 and the caller set none), the best on validation
--    kept (its weights are those of that form trained alone), all in the
--    history;
--  * no order column (ties by item id, the builder's own rule): shuffled;
--  * no equal timestamps: nothing to shuffle (false);
--  * with a search, or a warm start, a consistent order is kept, not
--    searched; "auto" cannot be a searched value (22023); metrics.tie_order
--    reports the test; tim4rec_tie_order reports it before training.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(32);

-- day-resolution times, runs of up to four events of a user on a day;
-- rnd: a loader's order that is random within a day; byitem: the same rows
-- numbered in item order within each day
CREATE TABLE tied AS
SELECT u AS user_id, ((u * 5 + s * 3 + (u % 7) * s * s) % 40 + 1)::int AS item_id,
       date '2024-01-01' + (u % 9 + s / 4) AS ts,
       s AS seq
FROM generate_series(1, 200) u, generate_series(1, 16) s;
ALTER TABLE tied ADD COLUMN rnd int, ADD COLUMN byitem int;
UPDATE tied SET rnd = hashint4(user_id * 1000 + seq), byitem = item_id * 100 + seq;
CREATE TABLE untied AS
SELECT user_id, item_id, timestamptz '2024-01-01' + (user_id * 97 + seq) * interval '1 minute' AS ts
FROM tied;

CREATE FUNCTION o(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS
$$ SELECT '{"preset": "amazon", "epochs": 2, "hidden_size": 16, "head_dim": 16, "max_seq_len": 8, "batch_size": 64, "refit": false}'::jsonb || extra $$;

-- 1. random order
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'r_auto', options => o('{"order_column": "rnd"}')) $$, 'auto, random order');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'r_true', options => o('{"order_column": "rnd", "tie_shuffle": true}')) $$, 'true, random order');
SELECT is((SELECT metrics->'tie_order'->>'order' || ':' || (metrics->'tie_order'->>'both_trained') || ':' ||
                  (config->>'tie_shuffle') || ':' || jsonb_typeof(history->0->'epoch')
             FROM tim4rec_models WHERE model_name = 'r_auto'),
          'random:false:true:number',
          'a random order: reported random, trained once (no trials in the history), shuffled');
SELECT is(tim4rec_export('r_auto'), tim4rec_export('r_true'), 'a random order: the weights of tie_shuffle true, bit for bit');

-- 2. a consistent order: shuffled, the table's order and (the amazon
-- preset's weight_decay is 1) the table's order with weight_decay 0; the
-- best on validation kept
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'c_auto', options => o('{"order_column": "byitem"}')) $$, 'auto, consistent order');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'c_true', options => o('{"order_column": "byitem", "tie_shuffle": true}')) $$, 'true, consistent order');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'c_false', options => o('{"order_column": "byitem", "tie_shuffle": false}')) $$, 'false, consistent order');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'c_false_wd0', options => o('{"order_column": "byitem", "tie_shuffle": false, "weight_decay": 0}')) $$, 'false with weight_decay 0, consistent order');
SELECT is((SELECT metrics->'tie_order'->>'order' || ':' || (metrics->'tie_order'->>'both_trained') || ':' ||
                  jsonb_array_length(history) || ':' || (metrics->'search'->>'trials') || ':' || (metrics->'search'->>'mode')
             FROM tim4rec_models WHERE model_name = 'c_auto'),
          'consistent:true:3:3:list',
          'a consistent order: reported, the forms trained as three trials of a list search');
SELECT is((SELECT array_agg(h->'options' ORDER BY (h->>'trial')::int) FROM tim4rec_models, jsonb_array_elements(history) h WHERE model_name = 'c_auto'),
          ARRAY['{"tie_shuffle": true}', '{"tie_shuffle": false}', '{"tie_shuffle": false, "weight_decay": 0}']::jsonb[],
          'the trials: shuffled, the table''s order, and it with weight_decay 0');
SELECT ok((SELECT (metrics->'tie_order'->>'agreement')::float8 >= 0.6 AND (metrics->'tie_order'->>'z')::float8 >= 4
             FROM tim4rec_models WHERE model_name = 'c_auto'),
          'its agreement and z are reported and pass the thresholds');
-- the kept trial: the form with the best validation NDCG@10 of the three
-- trained alone (ties: the earlier), and its weights
CREATE TEMP TABLE alone AS
SELECT model_name, ord, (metrics->'valid'->>'ndcg@10')::float8 AS ndcg
FROM tim4rec_models JOIN (VALUES ('c_true', 1), ('c_false', 2), ('c_false_wd0', 3)) v(model_name, ord) USING (model_name);
SELECT is((SELECT (config->>'tie_shuffle') || ':' || (config->>'weight_decay') FROM tim4rec_models WHERE model_name = 'c_auto'),
          (SELECT (config->>'tie_shuffle') || ':' || (config->>'weight_decay') FROM tim4rec_models
            WHERE model_name = (SELECT model_name FROM alone ORDER BY ndcg DESC, ord LIMIT 1)),
          'the kept form is the one with the best validation NDCG@10 when trained alone');
SELECT is(tim4rec_export('c_auto'),
          (SELECT tim4rec_export(model_name) FROM alone ORDER BY ndcg DESC, ord LIMIT 1),
          'its weights are those of that form trained alone, bit for bit');
SELECT ok((SELECT count(DISTINCT ndcg) > 1 FROM alone), 'the three forms score differently (the choice is not vacuous)');
-- a weight_decay of the caller's own: two trials, weight_decay kept
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'c_wd', options => o('{"order_column": "byitem", "weight_decay": 0.5}')) $$, 'auto with the caller''s weight_decay');
SELECT is((SELECT jsonb_array_length(history) || ':' || (config->>'weight_decay') FROM tim4rec_models WHERE model_name = 'c_wd'),
          '2:0.5', 'with the caller''s weight_decay: two trials (shuffled, the table''s order), its weight_decay kept');

-- 3. no order column: ties by item id, the builder's rule, not a signal
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'i_auto', options => o()) $$, 'auto without an order column');
SELECT is((SELECT metrics->'tie_order'->>'order' || ':' || (metrics->'tie_order'->>'both_trained') || ':' || (config->>'tie_shuffle')
             FROM tim4rec_models WHERE model_name = 'i_auto'),
          'item id (no order_column):false:true',
          'without an order column: ties by item id are not taken for a signal; shuffled, once');

-- 4. no equal timestamps
SELECT lives_ok($$ SELECT tim4rec_train('untied', 'u_auto', options => o()) $$, 'auto without equal timestamps');
SELECT is((SELECT metrics->'tie_order'->>'order' || ':' || (config->>'tie_shuffle')
             FROM tim4rec_models WHERE model_name = 'u_auto'),
          'no ties:false', 'without equal timestamps: nothing to shuffle');

-- 5. a search keeps a consistent order (its trials are the user's); a warm
-- start keeps the parent's choice
SELECT lives_ok($$ SELECT tim4rec_train('tied', 's_auto', options => o('{"order_column": "byitem", "search": {"dropout_prob": [0.2, 0.3]}}')) $$,
                'auto, consistent order, with a search');
SELECT is((SELECT jsonb_array_length(history) || ':' || (config->>'tie_shuffle') || ':' || (metrics->'tie_order'->>'both_trained')
             FROM tim4rec_models WHERE model_name = 's_auto'),
          '2:false:false', 'with a search, a consistent order is kept and the trials are not doubled');
SELECT lives_ok($$ SELECT tim4rec_train('tied', 'r_auto', options => '{"init_from": "r_auto", "epochs": 1}') $$,
                'warm start from the random-order model');
SELECT is((SELECT config->>'tie_shuffle' FROM tim4rec_models WHERE model_name = 'r_auto' AND version = 2),
          'true', 'a warm start keeps the resolved choice of its parent');

SELECT throws_ok($$ SELECT tim4rec_train('tied', 'bad', options => '{"search": {"tie_shuffle": [true, "auto"]}}') $$,
                 '22023', 'search value 2 of "tie_shuffle" must be true or false', '"auto" as a searched value: 22023');
-- 6. tim4rec_tie_order: the same test before training
SELECT is((SELECT tied_pairs || ':' || repeated_pairs || ':' || round(z::numeric, 6) || ':' || ties_ordered_by || ':' || consistent || ':' || auto_trains
             FROM tim4rec_tie_order('tied', options => '{"order_column": "byitem"}')),
          (SELECT (metrics->'tie_order'->>'tied_pairs') || ':' || (metrics->'tie_order'->>'repeated_pairs') || ':' ||
                  round((metrics->'tie_order'->>'z')::numeric, 6) || ':order_column:true:both forms, the better on validation'
             FROM tim4rec_models WHERE model_name = 'c_auto'),
          'tim4rec_tie_order before training reports what the training reported (consistent order; movielens preset, weight_decay 0: two forms)');
SELECT is((SELECT auto_trains FROM tim4rec_tie_order('tied', options => '{"preset": "amazon", "order_column": "byitem"}')),
          'three trials (shuffled ties, the table''s order, and it with weight_decay 0), the best on validation',
          'tim4rec_tie_order with the amazon preset: three trials');
SELECT is((SELECT ties_ordered_by || ':' || consistent || ':' || auto_trains || ':' || (abs(z) < 4)
             FROM tim4rec_tie_order('tied', 'user_id', 'item_id', 'ts', '{"order_column": "rnd"}')),
          'order_column:false:shuffled ties:true', 'tim4rec_tie_order: a random order');
SELECT is((SELECT ties_ordered_by || ':' || consistent || ':' || agreement FROM tim4rec_tie_order('tied')),
          'item id:false:1', 'tim4rec_tie_order without an order column: ties by item id, agreement 1, not consistent');
SELECT is((SELECT tied_pairs || ':' || coalesce(z::text, 'null') || ':' || auto_trains FROM tim4rec_tie_order('untied')),
          '0:null:nothing to shuffle', 'tim4rec_tie_order without equal timestamps');
SELECT throws_ok($$ SELECT * FROM tim4rec_tie_order(NULL) $$, '22004', NULL, 'tim4rec_tie_order(NULL): 22004');
CREATE ROLE tie_reader_wo_select;
SET LOCAL ROLE tie_reader_wo_select;
SELECT throws_ok($$ SELECT * FROM tim4rec_tie_order('tied') $$, '42501', NULL,
                 'tim4rec_tie_order on a table the role may not read: 42501');
RESET ROLE;
SELECT * FROM finish();
ROLLBACK;
