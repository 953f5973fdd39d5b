-- options.warm_new_items: the embedding rows of a warm start's new items,
-- 'random' (the default: the official initialisation) or 'neighbors' (from
-- the rows of the known items next to them in the training histories;
-- t4r_model_warm_new_items, whose values test/core/test_warm.c checks
-- against a reference).  Here: the option reaches the core, the catalog
-- records it and how many rows were set (expected count computed in SQL
-- from the table), it is a per-call key, and bad uses are errors.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(10);

CREATE TABLE tn AS
SELECT u AS user_id, ((u * 3 + s) % 30 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 13 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 12) s;
SELECT is((SELECT version FROM tim4rec_train('tn', 'p', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": 7}')),
          1, 'parent p version 1');

-- new items 101-104: each user 1-40 gets one, before all its other rows
-- (so next to the user's first, known item, inside the training part);
-- item 105 only for users 41-46, right before another new item (106), so
-- it has no known neighbour... but 106's other neighbour is known
INSERT INTO tn SELECT u, 100 + (u % 4) + 1, timestamptz '2023-12-01' + u * interval '1 minute' FROM generate_series(1, 40) u;
INSERT INTO tn SELECT u, 105, timestamptz '2023-11-01' FROM generate_series(41, 46) u;
INSERT INTO tn SELECT u, 106, timestamptz '2023-11-02' FROM generate_series(41, 46) u;
-- expected: the new items with a known item right before or after them in
-- a training part (time order; a user's last two rows excluded)
CREATE TEMP TABLE ord AS
SELECT user_id, item_id, row_number() OVER w AS pos, count(*) OVER (PARTITION BY user_id) AS m
FROM tn WINDOW w AS (PARTITION BY user_id ORDER BY ts, item_id);
CREATE TEMP TABLE expect AS
SELECT count(DISTINCT a.item_id) AS n
FROM ord a JOIN ord b ON b.user_id = a.user_id AND abs(b.pos - a.pos) = 1
WHERE a.item_id > 100 AND b.item_id <= 30 AND a.pos <= a.m - 2 AND b.pos <= b.m - 2;

SELECT lives_ok($$ SELECT tim4rec_train('tn', 'w', options => '{"init_from": "p", "warm_new_items": "neighbors", "epochs": 1}') $$,
                'warm start with warm_new_items neighbors');
SELECT is((SELECT metrics ->> 'warm_new_items' FROM tim4rec_models WHERE model_name = 'w'), 'neighbors',
          'metrics.warm_new_items = neighbors');
SELECT is((SELECT (metrics ->> 'warm_new_items_set')::bigint FROM tim4rec_models WHERE model_name = 'w'),
          (SELECT n FROM expect), 'metrics.warm_new_items_set = the new items with a known neighbour, counted in SQL');
SELECT is((SELECT n FROM expect), 5::bigint, '(the SQL count: 101-104 and 106, not 105)');
SELECT is((SELECT config ? 'warm_new_items' FROM tim4rec_models WHERE model_name = 'w'), false,
          'a per-call key: not in the stored config');
SELECT tim4rec_train('tn', 'w2', options => '{"init_from": "p", "epochs": 1}') \g /dev/null
SELECT is((SELECT metrics ->> 'warm_new_items' FROM tim4rec_models WHERE model_name = 'w2'), 'random',
          'the default: random (metrics.warm_new_items)');

SELECT throws_ok($$ SELECT tim4rec_train('tn', 'w3', options => '{"warm_new_items": "neighbors"}') $$,
                 '22023', 'option "warm_new_items" needs "init_from"', 'warm_new_items without init_from: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tn', 'w3', options => '{"init_from": "p", "warm_new_items": "similar"}') $$,
                 '22023', NULL, 'warm_new_items other than random/neighbors: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tn', 'w3', options => '{"init_from": "p", "warm_new_items": true}') $$,
                 '22023', NULL, 'warm_new_items that is not a string: 22023');

SELECT * FROM finish();
ROLLBACK;
