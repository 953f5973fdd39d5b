-- tim4rec_recommend_all: every user's answer equals
-- tim4rec_recommend(user, ...) exactly (items, ranks, tie order and the
-- float4 scores compared with =), in user, rank order, for exclude_seen
-- true and false, an order column, equal timestamps, items unknown to the
-- model, rows with NULL items / times / users, users beyond max_seq_len,
-- cold-start users, more than one batch (1,300 users, > 8,192 rows); the
-- users filter (bigint[], int[], smallint[], duplicates, NULLs, unknown
-- users); k edge cases and argument errors as tim4rec_recommend;
-- privileges (USAGE, source table); INSERT ... SELECT, LIMIT, a cursor
-- closed early and the select-list form; scoring in the background thread
-- and inline, an error while the background scores.  Trains its own small models.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
SELECT plan(46);

-- 1,300 users (more than one batch of 1,024, more rows than one fetch of 8,192); times with ties (several events per hour); users 1..60 have
-- more events than max_seq_len (20)
CREATE TABLE ix (user_id int, item_id int, ts timestamptz, seq int);
INSERT INTO ix
SELECT u, ((u * 37 + j * 13 + (j * j) % 7) % 120) + 1,
       timestamptz '2020-01-01' + make_interval(secs => u * 100000 + (j / 3) * 3600),
       (u * 7 + j * 11) % 50
FROM generate_series(1, 1300) u, generate_series(1, CASE WHEN u <= 60 THEN 25 + u % 20 ELSE 4 + u % 5 END) j;
SELECT setseed(0.5);
SELECT version FROM tim4rec_train('ix', 'ra', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 256, "seed": 3}') \g /dev/null
SELECT version FROM tim4rec_train('ix', 'rao', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 256, "seed": 4, "order_column": "seq"}') \g /dev/null

-- after training: unknown items (1000+), NULL items and times, NULL users,
-- a new user with only unknown items (cold start), a new user with known items
INSERT INTO ix SELECT u, 1000 + u, timestamptz '2030-01-01' + make_interval(secs => u), 1 FROM generate_series(1, 1300, 7) u;
INSERT INTO ix SELECT u, NULL, timestamptz '2031-01-01', 1 FROM generate_series(3, 1300, 11) u;
INSERT INTO ix SELECT u, 5, NULL, 1 FROM generate_series(5, 1300, 13) u;
INSERT INTO ix SELECT u, 7, NULL, 1 FROM generate_series(1, 60, 4) u;
INSERT INTO ix VALUES (NULL, 3, now(), 1), (NULL, NULL, NULL, NULL);
INSERT INTO ix SELECT 9000, 2000 + j, timestamptz '2020-01-01' + make_interval(secs => j), 1 FROM generate_series(1, 5) j;
-- equal times: the item (no order column) or seq (order column) decides
INSERT INTO ix SELECT 9001, j, timestamptz '2020-01-01', 100 - j FROM generate_series(1, 8) j;
CREATE TABLE ra_users AS SELECT DISTINCT user_id FROM ix WHERE user_id IS NOT NULL;

CREATE FUNCTION lateral_recs(m text, k int, ex boolean) RETURNS TABLE(user_id bigint, item_id bigint, score real, rank int)
LANGUAGE sql AS $$
  SELECT u.user_id, r.item_id, r.score, r.rank FROM ra_users u, LATERAL tim4rec_recommend(u.user_id, k, m, ex) r
  ORDER BY 1, 4 $$;

-- 1-6: equality, in order
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 10) $$,
                  $$ SELECT * FROM lateral_recs('ra', 10, true) $$,
                  'all users, k 10, exclude_seen: rows equal tim4rec_recommend per user, ordered by user, rank');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 7, exclude_seen => false) $$,
                  $$ SELECT * FROM lateral_recs('ra', 7, false) $$,
                  'exclude_seen false: equal');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('rao', 10) $$,
                  $$ SELECT * FROM lateral_recs('rao', 10, true) $$,
                  'model with an order column: equal');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('rao', 10, NULL::bigint[], false) $$,
                  $$ SELECT * FROM lateral_recs('rao', 10, false) $$,
                  'order column, exclude_seen false: equal');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 1) $$,
                  $$ SELECT * FROM lateral_recs('ra', 1, true) $$, 'k 1: equal');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 100000, ARRAY[1, 2, 9000, 9001]) $$,
                  $$ SELECT * FROM lateral_recs('ra', 100000, true) WHERE user_id IN (1, 2, 9000, 9001) $$,
                  'k beyond the vocabulary: every eligible item, equal');

-- 7-10: the data behind the cases is there
SELECT ok((SELECT count(*) FROM ix WHERE user_id = 1 AND item_id IS NOT NULL AND ts IS NOT NULL) > 20,
          'user 1 has more timed rows than max_seq_len');
SELECT ok((SELECT count(*) FROM (SELECT user_id, ts FROM ix GROUP BY 1, 2 HAVING count(*) > 1) d) > 1000
          AND (SELECT count(*) FROM ix) > 8192,
          'many equal timestamps within users; more rows than one fetch');
SELECT is((SELECT count(DISTINCT user_id) FROM tim4rec_recommend_all('ra', 3)), (SELECT count(*) FROM ra_users),
          'one answer per user (2,600 + 2 users: several batches)');

SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', 10, NULL, false) $$, '42804', NULL,
                 'an untyped NULL for users is ambiguous (anyarray): 42804; omit it or write NULL::bigint[]');

-- 11-14: cold start and exclusions
SELECT results_eq($$ SELECT item_id, score FROM tim4rec_recommend_all('ra', 5, ARRAY[9000]) $$,
                  $$ SELECT item_id, score FROM tim4rec_recommend(9000, 5, 'ra') $$,
                  'user with only unknown items: the cold-start popularity answer');
SELECT is((SELECT count(*) FROM tim4rec_recommend_all('ra', 200, ARRAY[9001]::bigint[])), 120::bigint - 8,
          'exclude_seen removes the user''s items (120 items, 8 seen)');
SELECT is((SELECT count(*) FROM tim4rec_recommend_all('ra', 5) a JOIN ix ON ix.user_id = a.user_id AND ix.item_id = a.item_id AND ix.ts IS NOT NULL), 0::bigint,
          'no recommended item was seen by its user (all of the timed history, beyond max_seq_len too)');
SELECT results_eq($$ SELECT item_id, score FROM tim4rec_recommend_all('ra', 5, ARRAY[424242]) $$,
                  $$ SELECT item_id, score FROM tim4rec_recommend(424242, 5, 'ra') $$,
                  'user without any row: the cold-start answer');

-- 15-19: the users filter
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 2, NULL::int[]) $$,
                  $$ SELECT * FROM lateral_recs('ra', 2, true) $$, 'users NULL::int[]: every user');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 4, ARRAY[77, 5, 5, 424242, 3]::int[]) $$,
                  $$ SELECT u, r.item_id, r.score, r.rank FROM unnest(ARRAY[3, 5, 77, 424242]::bigint[]) u, LATERAL tim4rec_recommend(u, 4, 'ra') r ORDER BY 1, 4 $$,
                  'users int[] (duplicates, unknown user): distinct users in id order, equal');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 4, ARRAY[2, 1]::smallint[], false) $$,
                  $$ SELECT * FROM lateral_recs('ra', 4, false) WHERE user_id IN (1, 2) $$, 'users smallint[]');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 4, ARRAY[NULL, 8]::bigint[]) $$,
                  $$ SELECT * FROM lateral_recs('ra', 4, true) WHERE user_id = 8 $$, 'a NULL user id is skipped');
SELECT is_empty($$ SELECT * FROM tim4rec_recommend_all('ra', 4, '{}'::bigint[]) $$, 'empty users: no rows');

-- 18-24: errors, as tim4rec_recommend
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', 0) $$, '22023', 'k must be positive', 'k 0: 22023');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', -3) $$, '22023', 'k must be positive', 'k < 0: 22023');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', NULL) $$, '22004', 'k must not be null', 'k NULL: 22004');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(1, NULL, 'ra') $$, '22004', 'k must not be null', '(tim4rec_recommend: the same)');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', 5, ARRAY['a']::text[]) $$, '42804', NULL, 'users text[]: 42804');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('nope', 5) $$, '42704', NULL, 'unknown model: 42704');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all(NULL, 5) $$, '22004', NULL, 'model_name NULL: 22004');

-- 25-27: privileges
CREATE ROLE ra_nobody NOLOGIN;
CREATE ROLE ra_user NOLOGIN;
SELECT tim4rec_grant('ra', 'ra_user', 'usage') \g /dev/null
SET LOCAL ROLE ra_nobody;
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', 5) $$, '42501', NULL, 'no USAGE on the model: 42501');
RESET ROLE;
SET LOCAL ROLE ra_user;
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', 5) $$, '42501', 'permission denied for table public.ix',
                 'USAGE but no SELECT on the source: 42501');
RESET ROLE;
GRANT SELECT ON ix TO ra_user;
SET LOCAL ROLE ra_user;
SELECT is((SELECT count(*) FROM tim4rec_recommend_all('ra', 5, ARRAY[1, 2])), 10::bigint, 'USAGE and SELECT: answers');
RESET ROLE;

-- 28-31: INSERT ... SELECT, early stop, cursor, select-list form
CREATE TABLE recs (user_id bigint, item_id bigint, score real, rank int);
INSERT INTO recs SELECT * FROM tim4rec_recommend_all('ra', 20);
SELECT results_eq($$ SELECT * FROM recs ORDER BY user_id, rank $$, $$ SELECT * FROM lateral_recs('ra', 20, true) $$,
                  'INSERT INTO recs SELECT * FROM tim4rec_recommend_all(...): the same rows');
SELECT is((SELECT count(*) FROM (SELECT * FROM tim4rec_recommend_all('ra', 5) LIMIT 3) x), 3::bigint, 'LIMIT stops early');
DECLARE c CURSOR FOR SELECT * FROM tim4rec_recommend_all('ra', 5);
FETCH 2 FROM c \g /dev/null
CLOSE c;
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 5, ARRAY[1]) $$, $$ SELECT * FROM lateral_recs('ra', 5, true) WHERE user_id = 1 $$,
                  'after a cursor closed early, the next call answers');
SELECT is((SELECT count(*) FROM (SELECT tim4rec_recommend_all('ra', 3) AS r) s), (SELECT count(*) * 3 FROM ra_users),
          'select-list (value-per-call) form');

-- 34-35: ties by item id when vocabulary rows are not in id order: 'ra'
-- imported with its ids reversed, pointed at ix; imported models have no
-- item counts, so every cold-start score ties at 0
SELECT tim4rec_import('rarev', tim4rec_export('ra'), ARRAY(SELECT i FROM unnest(tim4rec_item_ids('ra')) i ORDER BY i DESC)) \g /dev/null
UPDATE tim4rec_models SET source_schema = 'public', source_table = 'ix', user_column = 'user_id',
       item_column = 'item_id', time_column = 'ts' WHERE model_name = 'rarev';
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('rarev', 6, ARRAY[424242, 9000, 1, 2, 3]) $$,
                  $$ SELECT u, r.item_id, r.score, r.rank FROM unnest(ARRAY[1, 2, 3, 9000, 424242]::bigint[]) u,
                            LATERAL tim4rec_recommend(u, 6, 'rarev') r ORDER BY 1, 4 $$,
                  'ids not in row order: equal, ties included');
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend_all('rarev', 4, ARRAY[424242])),
          (SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(424242, 4, 'rarev')),
          'cold start with all scores tied: the same ids in the same order');

-- 36-37: a bad time in a window is tim4rec_recommend's error; nothing is left behind
INSERT INTO ix VALUES (4, 5, 'infinity', 1);
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra', 3) $$, '22008', NULL,
                 'an infinite time in a user''s window: 22008, as tim4rec_recommend');
DELETE FROM ix WHERE ts = 'infinity';
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 3, ARRAY[4]) $$, $$ SELECT * FROM lateral_recs('ra', 3, true) WHERE user_id = 4 $$,
                  'after the error, the next call answers');

-- 38-42: other id types (the generic form): integer users with text items,
-- text users with uuid items (users filter with duplicates, a NULL and an
-- unknown user), against tim4rec_recommend's generic form per user
CREATE TABLE ix_text AS SELECT user_id, 'sku-' || item_id AS item_id, ts FROM ix
WHERE user_id <= 300 AND item_id IS NOT NULL AND ts IS NOT NULL AND ts < '2030-01-01';
SELECT version FROM tim4rec_train('ix_text', 'ra_text', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 256}') \g /dev/null
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra_text', 3) $$, '42804', NULL,
                 'a model with text item ids through the bigint signature: 42804');
SELECT results_eq(
  $$ SELECT * FROM tim4rec_recommend_all('ra_text', 3, NULL::int[], NULL::text) $$,
  $$ SELECT u.user_id, r.item_id, r.score, r.rank
     FROM (SELECT DISTINCT user_id FROM ix_text) u,
          LATERAL tim4rec_recommend(u.user_id, NULL::text, 3, 'ra_text') r ORDER BY u.user_id, r.rank $$,
  'integer users, text items: every user equals tim4rec_recommend (items as text, scores, ranks)');
CREATE TABLE ix_tu AS
SELECT 'c' || lpad(user_id::text, 5, '0') AS customer,
       ('00000000-0000-4000-8000-' || lpad((item_id * 7919 % 1000)::text, 12, '0'))::uuid AS product, ts
FROM ix WHERE user_id <= 300 AND item_id IS NOT NULL AND ts IS NOT NULL AND ts < '2030-01-01';
SELECT version FROM tim4rec_train('ix_tu', 'ra_tu', 'customer', 'product', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 256}') \g /dev/null
SELECT results_eq(
  $$ SELECT * FROM tim4rec_recommend_all('ra_tu', 4, NULL::text[], NULL::uuid) $$,
  $$ SELECT u.customer, r.item_id, r.score, r.rank
     FROM (SELECT DISTINCT customer FROM ix_tu) u,
          LATERAL tim4rec_recommend(u.customer, NULL::uuid, 4, 'ra_tu') r ORDER BY u.customer, r.rank $$,
  'text users, uuid items: every user equals tim4rec_recommend, in the user column''s order');
SELECT results_eq(
  $$ SELECT * FROM tim4rec_recommend_all('ra_tu', 4, ARRAY['c00120', 'c00007', NULL, 'c00120', 'nobody']::text[], NULL::uuid, false) $$,
  $$ SELECT u, r.item_id, r.score, r.rank
     FROM unnest(ARRAY['c00007', 'c00120', 'nobody']::text[]) u,
          LATERAL tim4rec_recommend(u, NULL::uuid, 4, 'ra_tu', false) r ORDER BY u, r.rank $$,
  'text users filter (duplicates, NULL, an unknown user: cold start), exclude_seen false');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend_all('ra_tu', 4, NULL::text[], NULL::text) $$, '42804', NULL,
                 'item_type text for a uuid-keyed model: 42804');

-- 43-46: the scoring of a batch in a background thread (threads > 1) and
-- inline (threads = 1) give the same rows; an error in the consumer while
-- the second batch is being scored in the background (the select-list form
-- streams: the first row's division fails right after that batch's scoring
-- started) leaves a backend that answers again
SET LOCAL tim4rec.threads = 1;
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 10) $$,
                  $$ SELECT * FROM lateral_recs('ra', 10, true) $$,
                  'tim4rec.threads = 1 (scoring inline): equal');
SET LOCAL tim4rec.threads = 2;
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('rao', 10, NULL::bigint[], false) $$,
                  $$ SELECT * FROM lateral_recs('rao', 10, false) $$,
                  'tim4rec.threads = 2 (scoring in the background): equal');
SELECT throws_ok($$ SELECT 1 / ((r).rank - (r).rank) FROM (SELECT tim4rec_recommend_all('ra', 10) AS r) s $$,
                 '22012', NULL, 'an error in the consumer while a batch is scored in the background: the error, no crash');
SELECT results_eq($$ SELECT * FROM tim4rec_recommend_all('ra', 10) $$,
                  $$ SELECT * FROM lateral_recs('ra', 10, true) $$,
                  'after that error, the next call answers');
RESET tim4rec.threads;

SELECT * FROM finish();
ROLLBACK;
