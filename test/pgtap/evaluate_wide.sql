-- tim4rec_evaluate_wide: the compact form of
-- tim4rec_evaluate, one row per (model, split, k) with columns hr, ndcg,
-- mrr.  Checked against a pivot of the long form in plain SQL: the same
-- rows, the same numbers (compared with =, both computed with one thread on
-- the same data), in the long form's order (model, split, ks as given);
-- the same errors; existing calls of tim4rec_evaluate unchanged.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(12);
SET LOCAL client_min_messages = warning;
SET LOCAL tim4rec.threads = 1;

CREATE TABLE ew_inter AS
SELECT u AS user_id, ((u * 7 + s * s) % 40 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 31 + s) * interval '1 hour' AS ts
FROM generate_series(1, 80) u, generate_series(1, 14) s;
SELECT lives_ok($$ SELECT tim4rec_train('ew_inter', 'ew',
                    options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}') $$,
                'train a small model');

SELECT is(pg_get_function_result('tim4rec_evaluate_wide(text, int[])'::regprocedure),
          'TABLE(model text, split text, k integer, hr double precision, ndcg double precision, mrr double precision)',
          'result columns: model, split, k, hr, ndcg, mrr');

-- the pivot of the long form, in plain SQL
CREATE FUNCTION pg_temp.pivot(ks int[]) RETURNS TABLE(model text, split text, k int, hr float8, ndcg float8, mrr float8)
LANGUAGE sql AS $$
  SELECT l.model, l.split, l.k,
         max(l.value) FILTER (WHERE l.metric = 'hr'),
         max(l.value) FILTER (WHERE l.metric = 'ndcg'),
         max(l.value) FILTER (WHERE l.metric = 'mrr')
  FROM tim4rec_evaluate('ew', ks) l
  GROUP BY l.model, l.split, l.k
$$;
-- the order the compact form promises: model, split, then ks as given
CREATE FUNCTION pg_temp.expected_order(ks int[]) RETURNS TABLE(model text, split text, k int)
LANGUAGE sql AS $$
  SELECT m, s, k FROM unnest(ARRAY['tim4rec', 'most_popular']) WITH ORDINALITY AS a(m, i),
                      unnest(ARRAY['valid', 'test']) WITH ORDINALITY AS b(s, j),
                      unnest(ks) WITH ORDINALITY AS c(k, o)
  ORDER BY i, j, o
$$;

SELECT set_eq($$ SELECT * FROM tim4rec_evaluate_wide('ew') $$,
              $$ SELECT * FROM pg_temp.pivot('{10,20,50}') $$,
              'default ks: every row equals the pivot of tim4rec_evaluate (values compared with =)');
SELECT results_eq($$ SELECT model, split, k FROM tim4rec_evaluate_wide('ew') $$,
                  $$ SELECT * FROM pg_temp.expected_order('{10,20,50}') $$,
                  'default ks {10,20,50}: 12 rows in the order model, split, k');
SELECT set_eq($$ SELECT * FROM tim4rec_evaluate_wide('ew', '{20,1,5}') $$,
              $$ SELECT * FROM pg_temp.pivot('{20,1,5}') $$,
              'ks {20,1,5}: every row equals the pivot of tim4rec_evaluate');
SELECT results_eq($$ SELECT model, split, k FROM tim4rec_evaluate_wide('ew', '{20,1,5}') $$,
                  $$ SELECT * FROM pg_temp.expected_order('{20,1,5}') $$,
                  'ks {20,1,5}: rows follow the ks as given');
SELECT ok((SELECT bool_and(hr > 0 AND hr <= 1 AND ndcg > 0 AND ndcg <= hr AND mrr > 0 AND mrr <= ndcg)
           FROM tim4rec_evaluate_wide('ew', '{20}')),
          'not vacuous: at k = 20 every model and split has 0 < mrr <= ndcg <= hr <= 1');
SELECT is((SELECT count(*)::int FROM tim4rec_evaluate_wide(model_name => 'ew', ks => '{5}')), 4,
          'named arguments: one k gives 2 models x 2 splits');

-- the long form is unchanged: its calls still resolve to it
SELECT is((SELECT count(*)::int FROM tim4rec_evaluate('ew')), 36, 'tim4rec_evaluate(name): 36 rows of the long form');
SELECT is((SELECT count(*)::int FROM tim4rec_evaluate(model_name => 'ew', ks => '{10}')), 12,
          'tim4rec_evaluate with named arguments: the long form');

SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate_wide('ew', '{}') $$, '22023', NULL, 'empty ks: 22023, as the long form');
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate_wide('no_such_model') $$, '42704', NULL, 'unknown model: 42704, as the long form');

SELECT * FROM finish();
ROLLBACK;
