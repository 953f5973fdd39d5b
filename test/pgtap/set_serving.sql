-- tim4rec_set_serving: change what a trained version serves (tie_average)
-- in place.  The reference is the existing path to the same model: an
-- import of the version's exported file with tie_average in its config.
-- After the change the version recommends what that import recommends, by
-- history and (the point of changing in place) by user id, in the same
-- transaction as the change (the model cache reloads); before it, the two
-- differ.  The rest of the config, the metrics, the history, the file's
-- training counts and the
-- tensors stay (the version then serves as the import of its own file does);
-- the exported file carries the new value.  Errors: NULL
-- arguments 22004, unknown model or version 42704, not the owner 42501,
-- keys that change the weights or training, unknown keys and bad values
-- 22023, none of which writes anything.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(22);

\set tied_table sv
\ir tied_days.psql
\o /dev/null
SELECT tim4rec_train('sv', 'm', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "order_column": "seq"}');
SELECT tim4rec_train('sv', 'm', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "learning_rate": 0.01, "order_column": "seq"}');
SELECT tim4rec_deploy('m', 1);
-- the reference: version 1's file imported with tie_average 4
SELECT tim4rec_import('ref', tim4rec_export('m'), tim4rec_item_ids('m'),
                      (SELECT config || '{"tie_average": 4}' FROM tim4rec_models WHERE model_name = 'm' AND version = 1));
\o
CREATE TEMP TABLE before AS SELECT version, config, metrics, history, weights FROM tim4rec_models WHERE model_name = 'm';
-- every user's history but the last event, in the model's order
CREATE TEMP TABLE hist AS
SELECT user_id, array_agg(item_id::bigint ORDER BY ts, seq) AS items, array_agg(ts ORDER BY ts, seq) AS times
FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, seq DESC) AS back FROM sv) x
WHERE back > 1 GROUP BY user_id;
CREATE FUNCTION pg_temp.recs(model text) RETURNS TABLE(user_id int, item_id bigint, rank int) LANGUAGE sql AS $$
  SELECT h.user_id, x.item_id, x.rank FROM hist h, LATERAL tim4rec_recommend(h.items, h.times, 10, model, false) x $$;
-- the version is cached in this session before the change
CREATE TEMP TABLE r0 AS SELECT * FROM pg_temp.recs('m');
SELECT ok(EXISTS (SELECT * FROM r0 EXCEPT SELECT * FROM pg_temp.recs('ref')),
          'before: version 1 (tie_average 1) and the reference (4) recommend differently');

CREATE TEMP TABLE ret AS SELECT tim4rec_set_serving('m', '{"tie_average": 4}') AS c;
SELECT is((SELECT c->>'tie_average' FROM ret), '4', 'returns the new config');
SELECT is((SELECT config FROM tim4rec_models WHERE model_name = 'm' AND version = 1), (SELECT c FROM ret),
          'which the catalog holds');
SELECT is((SELECT c - 'tie_average' FROM ret), (SELECT config - 'tie_average' FROM before WHERE version = 1),
          'the other keys of the config are unchanged');
SELECT is((SELECT (metrics, history)::text FROM tim4rec_models WHERE model_name = 'm' AND version = 1),
          (SELECT (metrics, history)::text FROM before WHERE version = 1), 'metrics and history are unchanged');
CREATE FUNCTION pg_temp.counts_meta(w bytea) RETURNS text LANGUAGE sql AS
$$ SELECT substring(encode(substring(w from 9 for 65536), 'escape') from 'tim4rec_item_counts[^]]*]') $$;
SELECT ok((SELECT pg_temp.counts_meta(weights) IS NOT NULL FROM before WHERE version = 1)
          AND (SELECT pg_temp.counts_meta(weights) FROM tim4rec_models WHERE model_name = 'm' AND version = 1)
              IS NOT DISTINCT FROM (SELECT pg_temp.counts_meta(weights) FROM before WHERE version = 1),
          'the stored file keeps its training counts (metadata tim4rec_item_counts)');
SELECT is((SELECT (config, weights)::text FROM tim4rec_models WHERE model_name = 'm' AND version = 2),
          (SELECT (config, weights)::text FROM before WHERE version = 2), 'version 2 is untouched');
SELECT ok(position('\"tie_average\": 4' in convert_from(substring(tim4rec_export('m') from 9 for 4000), 'UTF8')) > 0,
          'the exported file carries tie_average 4');
SELECT set_eq($$ SELECT * FROM pg_temp.recs('m') $$, $$ SELECT * FROM pg_temp.recs('ref') $$,
              'after: the version recommends what the reference does (same transaction: the cache reloaded)');
SELECT set_eq($$ SELECT u.user_id::int, x.item_id, x.rank FROM (SELECT DISTINCT user_id FROM sv) u, LATERAL tim4rec_recommend(u.user_id::bigint, 10, 'm', false) x $$,
              $$ SELECT h.user_id, x.item_id, x.rank FROM (SELECT user_id, array_agg(item_id::bigint ORDER BY ts, seq) AS items, array_agg(ts ORDER BY ts, seq) AS times FROM sv GROUP BY user_id) h,
                        LATERAL tim4rec_recommend(h.items, h.times, 10, 'ref', false) x $$,
              'and by user id (its source table is kept), as the reference over each full history');
SELECT is((SELECT tim4rec_set_serving('m', '{"tie_average": 1}', 1)->>'tie_average'), '1',
          'an explicit version, back to 1');
SELECT set_eq($$ SELECT * FROM pg_temp.recs('m') $$, $$ SELECT * FROM r0 $$,
              'which recommends as before the first change');

-- errors, nothing written
CREATE TEMP TABLE snap AS SELECT version, config, weights FROM tim4rec_models WHERE model_name = 'm';
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', NULL) $$, '22004', 'options must not be NULL', 'NULL options: 22004');
SELECT throws_ok($$ SELECT tim4rec_set_serving('nope', '{"tie_average": 2}') $$, '42704', NULL, 'unknown model: 42704');
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', '{"tie_average": 2}', 9) $$, '42704', 'model "m" version 9 does not exist', 'unknown version: 42704');
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', '{"learning_rate": 0.1}') $$, '22023',
                 'option "learning_rate" cannot be changed on a trained model', 'a training key: 22023');
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', '{"tie_averag": 2}') $$, '22023', NULL, 'an unknown key: 22023');
-- the hint lists the keys a trained model can change (from the core's list)
\ir err_hint.psql
SELECT is(pg_temp.err_hint($$ SELECT tim4rec_set_serving('m', '{"dropout_prob": 0.1}') $$),
          'Options a trained model can change: tie_average. Train a new version to change the others.',
          'the hint of a key that cannot change names the serving keys');
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', '{"tie_average": 65}') $$, '22023', NULL, 'tie_average 65: 22023');
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', '[1]') $$, '22023', 'options must be a non-empty JSON object', 'not an object: 22023');
CREATE ROLE t4r_sv_other;
SET ROLE t4r_sv_other;
SELECT throws_ok($$ SELECT tim4rec_set_serving('m', '{"tie_average": 2}') $$, '42501', NULL, 'not the owner: 42501');
RESET ROLE;
SELECT set_eq($$ SELECT version, config, weights FROM tim4rec_models WHERE model_name = 'm' $$, $$ SELECT * FROM snap $$,
              'failed calls write nothing');

SELECT * FROM finish();
ROLLBACK;
