-- tim4rec_evaluate_users (issue 12 part 3): per-user leave-one-out ranks.
-- Checked independently:
--  * the users and held-out items: each user's last (test) / second-to-last
--    (valid) interaction by time, computed in plain SQL;
--  * the most-popular ranks: 1 + items with a larger training count (counts
--    over each user's interactions but the last two, in plain SQL) + items
--    with the same count and a smaller id;
--  * the model's ranks: mean over users of HR/NDCG/MRR at 10 and 20 from the
--    ranks equal tim4rec_evaluate's figures (test and valid, model and
--    baseline), and each rank is the target's position in
--    tim4rec_recommend's full ranking of the same history (same model);
--  * text user ids come back as the source's keys; errors.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(17);
SET LOCAL client_min_messages = warning;
SET LOCAL tim4rec.threads = 1;

-- distinct times per user, so the order of a user's history is the time order
CREATE TABLE eu_inter AS
SELECT u AS user_id, ((u * 7 + s * s + (u % 5) * s) % 40 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 31 + s) * interval '1 hour' AS ts
FROM generate_series(1, 80) u, generate_series(1, 14) s;
SELECT lives_ok($$ SELECT tim4rec_train('eu_inter', 'eu',
                    options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64}') $$,
                'train a small model');
SELECT is(pg_get_function_result('tim4rec_evaluate_users(text, text, boolean)'::regprocedure),
          'TABLE(user_id text, item_id text, rank bigint)', 'result columns: user_id, item_id, rank');

CREATE TEMP TABLE t_test AS SELECT * FROM tim4rec_evaluate_users('eu', 'test');
CREATE TEMP TABLE t_valid AS SELECT * FROM tim4rec_evaluate_users('eu', 'valid');
CREATE TEMP TABLE t_pop AS SELECT * FROM tim4rec_evaluate_users('eu', 'test', baseline => true);

-- users and held-out items in plain SQL
CREATE TEMP TABLE pos AS
SELECT user_id, item_id, ts, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC) AS back
FROM eu_inter;
SELECT set_eq($$ SELECT user_id, item_id FROM t_test $$,
              $$ SELECT user_id::text, item_id::text FROM pos WHERE back = 1 $$,
              'test: one row per user with its last item');
SELECT set_eq($$ SELECT user_id, item_id FROM t_valid $$,
              $$ SELECT user_id::text, item_id::text FROM pos WHERE back = 2 $$,
              'valid: one row per user with its second-to-last item');
SELECT ok((SELECT bool_and(rank BETWEEN 1 AND 40) FROM t_test), 'ranks between 1 and the number of items');

-- most-popular ranks in plain SQL: training counts exclude the last two items
CREATE TEMP TABLE cnt AS
SELECT i.item_id, count(p.item_id) AS c
FROM (SELECT DISTINCT item_id FROM eu_inter) i LEFT JOIN pos p ON p.item_id = i.item_id AND p.back > 2
GROUP BY i.item_id;
SELECT set_eq($$ SELECT user_id, rank FROM t_pop $$,
              $$ SELECT p.user_id::text, 1 + (SELECT count(*) FROM cnt o
                                              WHERE o.c > t.c OR (o.c = t.c AND o.item_id < t.item_id))
                 FROM pos p JOIN cnt t ON t.item_id = p.item_id WHERE p.back = 1 $$,
              'baseline ranks = ranks by training count (ties by item id), computed in SQL');

-- means over users = tim4rec_evaluate
CREATE FUNCTION pg_temp.per_user(r bigint, metric text, k int) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN r > k THEN 0
              WHEN metric = 'hr' THEN 1
              WHEN metric = 'ndcg' THEN ln(2.0::float8) / ln((r + 1)::float8)
              ELSE 1.0 / r END $$;
CREATE TEMP TABLE ev AS SELECT * FROM tim4rec_evaluate('eu', ARRAY[10, 20]);
CREATE TEMP TABLE means AS
SELECT m.model, m.split, x.metric, x.k,
       avg(pg_temp.per_user(m.rank, x.metric, x.k)) AS value
FROM (SELECT 'tim4rec' AS model, 'test' AS split, rank FROM t_test
      UNION ALL SELECT 'tim4rec', 'valid', rank FROM t_valid
      UNION ALL SELECT 'most_popular', 'test', rank FROM t_pop) m,
     (VALUES ('hr', 10), ('ndcg', 10), ('mrr', 10), ('hr', 20), ('ndcg', 20), ('mrr', 20)) x(metric, k)
GROUP BY 1, 2, 3, 4;
SELECT is((SELECT count(*) FROM means m JOIN ev e USING (model, split, metric, k)), 18::bigint,
          'every (model, split, metric, k) of the comparison is in tim4rec_evaluate');
SELECT is((SELECT count(*) FROM means m JOIN ev e USING (model, split, metric, k)
           WHERE abs(m.value - e.value) > 1e-12), 0::bigint,
          'mean over users of HR/NDCG/MRR at 10 and 20 = tim4rec_evaluate (model test and valid, baseline test)');
SELECT ok((SELECT count(DISTINCT rank) > 3 FROM t_test), 'model ranks differ between users (the check is not vacuous)');

-- each model rank = the target's position in tim4rec_recommend's ranking of
-- the same history (the last max_seq_len = 8 items before the target)
SELECT is((SELECT count(*) FROM t_test t
           WHERE t.rank <> (SELECT r.rank FROM tim4rec_recommend(
                                (SELECT array_agg(item_id ORDER BY ts) FROM
                                   (SELECT item_id, ts FROM pos WHERE user_id = t.user_id::bigint AND back > 1
                                    ORDER BY ts DESC LIMIT 8) h),
                                (SELECT array_agg(ts ORDER BY ts) FROM
                                   (SELECT ts FROM pos WHERE user_id = t.user_id::bigint AND back > 1
                                    ORDER BY ts DESC LIMIT 8) h),
                                40, 'eu', false) r
                            WHERE r.item_id = t.item_id::bigint)), 0::bigint,
          'each model rank = the position of the held-out item in tim4rec_recommend (no exclusions)');

-- text user ids
CREATE TABLE eu_text AS SELECT 'u' || user_id AS user_id, item_id, ts FROM eu_inter;
SELECT lives_ok($$ SELECT tim4rec_train('eu_text', 'eut',
                    options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64}') $$,
                'train on text user ids');
SELECT set_eq($$ SELECT user_id, item_id FROM tim4rec_evaluate_users('eut') $$,
              $$ SELECT 'u' || user_id, item_id::text FROM pos WHERE back = 1 $$,
              'text user ids come back as the source''s keys');

-- errors
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate_users('eu', 'train') $$, '22023', NULL,
                 'an unknown split is an error');
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate_users(NULL) $$, '22004', NULL, 'a NULL model name is an error');
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate_users('eu', NULL) $$, '22004', NULL, 'a NULL split is an error');
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate_users('no_such_model') $$, '42704', NULL,
                 'an unknown model is an error');
SELECT ok(obj_description('tim4rec_evaluate_users(text, text, boolean)'::regprocedure, 'pg_proc') IS NOT NULL,
          'tim4rec_evaluate_users has a comment');

SELECT * FROM finish();
ROLLBACK;
