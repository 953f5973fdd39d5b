-- The loss options through SQL.
-- "label_smoothing": the catalog records it (0 when not given), it trains
-- other weights, a warm start keeps it, values outside [0, 1) are 22023 and
-- the CUDA device refuses it (0A000).
-- "tie_targets" (a prefix whose target shares its timestamp with the
-- following items of the training part takes all of them as its target):
-- the catalog records it (false when not given), it is exactly a no-op on a
-- table without equal timestamps, it trains other weights on one with them,
-- it never takes a validation or test item as a target (changing only those
-- items leaves the trained weights bit for bit the same, though every event
-- of a user shares one timestamp), it is refused with all_positions
-- training (22023), a value that is not a boolean is 22023, and the CUDA
-- device refuses it (0A000).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(21);

-- distinct times
CREATE TABLE ev AS
SELECT u AS user_id, ((u * 5 + s * 3 + (u % 7) * s) % 50 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 97 + s) * interval '1 minute' AS ts
FROM generate_series(1, 100) u, generate_series(1, 15) s;
-- every event of a user on one day, seq orders them
CREATE TABLE sameday AS
SELECT u AS user_id, ((u * 7 + s * 3) % 40 + 1)::int AS item_id,
       date '2024-01-01' + u % 5 AS ts, s AS seq
FROM generate_series(1, 80) u, generate_series(1, 12) s;
-- the same, with other items at the validation and test positions (s 11
-- and 12); every item still occurs in the training parts, so the
-- vocabulary is the same
CREATE TABLE sameday2 AS
SELECT user_id, CASE WHEN seq > 10 THEN ((user_id * 11 + seq * 5) % 40 + 1)::int ELSE item_id END AS item_id,
       ts, seq
FROM sameday;
SELECT is((SELECT count(DISTINCT item_id) FROM sameday WHERE seq <= 10), 40::bigint,
          'all 40 items occur in the training parts');

-- label_smoothing
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'plain', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01}') $$,
                'training without label_smoothing');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'ls', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "label_smoothing": 0.2}') $$,
                'the same with label_smoothing 0.2');
SELECT is((SELECT array_agg(model_name || ':' || (config->>'label_smoothing') || ':' || (config->>'tie_targets') ORDER BY model_name)
             FROM tim4rec_models WHERE model_name IN ('plain', 'ls')),
          ARRAY['ls:0.2:false', 'plain:0:false'],
          'the catalog records label_smoothing and tie_targets (0 and false when not given)');
SELECT isnt(tim4rec_export('ls'), tim4rec_export('plain'), 'label_smoothing trains other weights');
SELECT cmp_ok((SELECT (history->0->>'loss')::float8 FROM tim4rec_models WHERE model_name = 'ls'), '>',
              (SELECT (history->0->>'loss')::float8 FROM tim4rec_models WHERE model_name = 'plain'),
              'the smoothed loss of the first epoch is larger (it adds the cross-entropy against a uniform target)');
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'ls', options => '{"init_from": "ls", "epochs": 1}') $$,
                'warm start from the label_smoothing model');
SELECT is((SELECT config->>'label_smoothing' FROM tim4rec_models WHERE model_name = 'ls' AND version = 2), '0.2',
          'a warm start keeps the parent''s label_smoothing');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"label_smoothing": 1}') $$,
                 '22023', 'invalid options: option "label_smoothing" must be in [0, 1) (got 1)', 'label_smoothing 1: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"label_smoothing": -0.1}') $$,
                 '22023', NULL, 'a negative label_smoothing: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"label_smoothing": 0.1, "device": "cuda"}') $$,
                 '0A000', 'the CUDA backend does not support label_smoothing', 'label_smoothing on the CUDA device: 0A000');

-- tie_targets
SELECT lives_ok($$ SELECT tim4rec_train('ev', 'tt_none', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "tie_targets": true}') $$,
                'tie_targets on distinct times');
SELECT is(md5(tim4rec_export('tt_none')), md5(tim4rec_export('plain')),
          'without equal timestamps, tie_targets is a no-op: the same weights bit for bit');
SELECT lives_ok($$ SELECT tim4rec_train('sameday', 'sd', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "order_column": "seq"}') $$,
                'one day per user, without tie_targets');
SELECT lives_ok($$ SELECT tim4rec_train('sameday', 'sd_tt', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "order_column": "seq", "tie_targets": true}') $$,
                'one day per user, with tie_targets');
SELECT isnt(tim4rec_export('sd_tt'), tim4rec_export('sd'), 'with equal timestamps, tie_targets trains other weights');
SELECT lives_ok($$ SELECT tim4rec_train('sameday2', 'sd2_tt', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "order_column": "seq", "tie_targets": true}') $$,
                'the same with other validation and test items');
SELECT is(md5(tim4rec_export('sd2_tt')), md5(tim4rec_export('sd_tt')),
          'tie_targets never trains on a validation or test item: the same weights bit for bit');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"tie_targets": true, "training": "all_positions", "time_features": "robust"}') $$,
                 '22023', 'invalid options: option "tie_targets" needs per-prefix training, but "training" is "all_positions"',
                 'tie_targets with all_positions training: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"tie_targets": "often"}') $$,
                 '22023', NULL, 'a tie_targets that is not a boolean: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ev', 'bad', options => '{"tie_targets": true, "device": "cuda"}') $$,
                 '0A000', 'the CUDA backend does not support tie_targets', 'tie_targets on the CUDA device: 0A000');

SELECT * FROM finish();
ROLLBACK;
