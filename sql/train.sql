-- tim4rec_train: SQL surface, options and every error path.
-- Errors are shown as SQLSTATE: message (hint) through a helper so the codes
-- are part of the expected output; metrics are compared, never printed.
CREATE FUNCTION train_err(q text, full_hint boolean DEFAULT false) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  h text;
  d text;
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT, d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN d <> '' THEN E'\nDETAIL: ' || d ELSE '' END
         || CASE WHEN h <> '' AND (full_hint OR h NOT LIKE 'Valid keys:%') THEN E'\nHINT: ' || h
                 WHEN h <> '' THEN E'\nHINT: Valid keys: ...' ELSE '' END;
END $$;
SET tim4rec.threads = 1;
SET client_min_messages = warning;   -- per-epoch NOTICEs carry timings
-- signature, volatility, parallel safety, no SECURITY DEFINER
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result,
       p.provolatile AS volatility, p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc p WHERE p.proname = 'tim4rec_train';
-- 60 users x 15 events over 30 items, each user walking the items in order
CREATE TABLE t_inter AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts,
       s AS seq
FROM generate_series(1, 60) u, generate_series(1, 15) s;
\set opts '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}'
-- as written in the docs: one composite value
SELECT (r).model_name, (r).version, (r).users, (r).items, (r).interactions,
       (r).train_samples, (r).epochs_run, (r).best_epoch BETWEEN 1 AND 2 AS best_epoch_ok,
       (r).valid_ndcg10 BETWEEN 0 AND 1 AS ndcg_ok, (r).valid_hr10 >= (r).valid_ndcg10 AS hr_ge_ndcg,
       (r).test_mrr10 <= (r).test_ndcg10 AS mrr_le_ndcg, (r).seconds > 0 AS timed
FROM (SELECT tim4rec_train('t_inter', 't_model', options => :'opts') AS r) s;
SHOW tim4rec.threads;
SHOW tim4rec.memory_budget;
-- a second training: version 2, current; version 1 kept
SELECT model_name, version, users, items FROM tim4rec_train('t_inter', 't_model', options => :'opts');
SELECT model_name, version, is_current, n_items, source_table, user_column, item_column, time_column,
       order_column, config->>'hidden_size' AS d, config->>'min_user_interactions' AS min_user,
       jsonb_array_length(history) AS epochs, metrics ? 'valid' AS has_valid,
       (metrics->'valid'->>'ndcg@10')::float8 BETWEEN 0 AND 1 AS ndcg_ok
FROM tim4rec_model_list WHERE model_name = 't_model' ORDER BY version;
-- the same seed and thread count give the same weights
SELECT count(DISTINCT md5(weights)) AS distinct_weights FROM tim4rec_models WHERE model_name = 't_model';
-- item vocabulary: ascending external ids, popularity of the training part
SELECT item_ids[1:5] AS first_ids, cardinality(item_counts) AS n_counts,
       (SELECT sum(c) FROM unnest(item_counts) c) AS training_events
FROM tim4rec_models WHERE model_name = 't_model' AND version = 1;
-- other column names and types: bigint user, smallint item, epoch seconds as numeric, an order column
CREATE TABLE t_inter2 AS
SELECT user_id::bigint AS uid, item_id::smallint AS iid,
       extract(epoch FROM ts)::numeric AS t, seq::bigint AS o FROM t_inter;
SELECT version, users, items, interactions FROM tim4rec_train('t_inter2', 't_model2', 'uid', 'iid', 't',
       :'opts'::jsonb || '{"order_column": "o", "preset": "amazon", "num_layers": 1, "max_seq_len": 20}');
SELECT config->>'preset' AS preset, config->>'num_layers' AS layers, order_column
FROM tim4rec_models WHERE model_name = 't_model2';
-- date and double precision times work as well
CREATE TABLE t_inter3 AS SELECT user_id, item_id, (ts::date + user_id) AS d,
       extract(epoch FROM ts)::float8 AS f FROM t_inter;
SELECT version, users FROM tim4rec_train('t_inter3', 't_model3', time_column => 'd', options => :'opts');
SELECT version, users FROM tim4rec_train('t_inter3', 't_model3', time_column => 'f', options => :'opts');
-- a view is read through SPI (so row-level security and view logic apply)
CREATE VIEW t_view AS SELECT * FROM t_inter WHERE user_id <= 40;
SELECT version, users, interactions FROM tim4rec_train('t_view', 't_model4', options => :'opts');
-- partitioned tables are read through SPI too; an unpopulated materialized view is an error
CREATE TABLE t_part (user_id int, item_id int, ts timestamptz) PARTITION BY RANGE (user_id);
CREATE TABLE t_part1 PARTITION OF t_part FOR VALUES FROM (0) TO (30);
CREATE TABLE t_part2 PARTITION OF t_part FOR VALUES FROM (30) TO (1000);
INSERT INTO t_part SELECT user_id, item_id, ts FROM t_inter;
SELECT version, users, interactions FROM tim4rec_train('t_part', 't_model4', options => :'opts');
CREATE MATERIALIZED VIEW t_mv AS SELECT * FROM t_inter WITH NO DATA;
SELECT train_err($$ SELECT tim4rec_train('t_mv') $$);
REFRESH MATERIALIZED VIEW t_mv;
SELECT version, users FROM tim4rec_train('t_mv', 't_model4', options => :'opts');
-- deploy 'if_better': same data and seed give the same NDCG, which does not improve
SELECT version FROM tim4rec_train('t_inter', 't_model', options => :'opts'::jsonb || '{"deploy": "if_better"}');
SELECT version, is_current FROM tim4rec_models WHERE model_name = 't_model' ORDER BY version;
-- device 'auto' falls back to the CPU
SELECT version FROM tim4rec_train('t_inter', 't_model3', time_column => 'ts', options => :'opts'::jsonb || '{"device": "auto"}');

-- ---------------------------------------------------------------- errors
-- missing relation / column, wrong types
SELECT train_err($$ SELECT tim4rec_train('no_such_table') $$);
SELECT train_err($$ SELECT tim4rec_train(NULL) $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', NULL) $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', '') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', user_column => 'nope') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', item_column => 'nope') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', time_column => 'nope') $$);
CREATE TABLE t_badtypes (user_id text, item_id int, ts text, f float8, item_num numeric);
SELECT train_err($$ SELECT tim4rec_train('t_badtypes') $$);
SELECT train_err($$ SELECT tim4rec_train('t_badtypes', user_column => 'item_id', item_column => 'f') $$);
SELECT train_err($$ SELECT tim4rec_train('t_badtypes', user_column => 'item_id', item_column => 'item_id') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"order_column": "nope"}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"order_column": "ts"}') $$);
CREATE SEQUENCE t_seq;
SELECT train_err($$ SELECT tim4rec_train('t_seq') $$);
-- options
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hiden_size": 16}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hiden_size": 16}') $$, true) LIKE '%Valid keys: preset, hidden_size, %, seed, threads, min_user_interactions, min_item_interactions, deploy, order_column, device, init_from, warm_scope, warm_new_items, search, search_trials.' AS full_hint;
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '[1, 2]') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hidden_size": "abc"}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hidden_size": 16.5}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hidden_size": null}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hidden_size": [16]}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"dropout_prob": 1.5}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"hidden_size": 10, "head_dim": 32}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"preset": "nope"}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"deploy": "sometimes"}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"device": "tpu"}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"device": "cuda"}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"threads": 0.5}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"threads": 65}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"min_user_interactions": 0}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"epochs": 0}') $$);
-- data: empty, too little after filtering, NULL rows skipped with a NOTICE
CREATE TABLE t_empty (user_id int, item_id int, ts timestamptz);
SELECT train_err($$ SELECT tim4rec_train('t_empty') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"min_user_interactions": 16}') $$);
SELECT train_err($$ SELECT tim4rec_train('t_inter', options => '{"min_item_interactions": 1000}') $$);
INSERT INTO t_empty SELECT g, NULL, now() FROM generate_series(1, 3) g;
INSERT INTO t_empty SELECT 1, g, NULL FROM generate_series(1, 2) g;
INSERT INTO t_empty SELECT 1, 1, timestamptz '2024-01-01';
SET client_min_messages = notice;
SELECT train_err($$ SELECT tim4rec_train('t_empty') $$);
SET client_min_messages = warning;
INSERT INTO t_empty VALUES (1, 1, 'infinity');
SELECT train_err($$ SELECT tim4rec_train('t_empty') $$);
-- a read-only transaction is refused before any work
BEGIN READ ONLY;
SELECT train_err($$ SELECT tim4rec_train('t_inter') $$);
ROLLBACK;
-- memory budget: refused before anything large is allocated
SET tim4rec.memory_budget = '16MB';
SELECT regexp_replace(train_err($$ SELECT tim4rec_train('t_inter', options => '{"hidden_size": 512, "head_dim": 64, "max_seq_len": 200, "batch_size": 2048}') $$),
                      'about [0-9.]+ [MG]B and the trainer at least [0-9.]+ [MG]B', 'about N MB and the trainer at least M MB') AS budget_error;
CREATE TABLE t_many AS SELECT g / 20 AS user_id, g % 1000 AS item_id, g::bigint AS ts FROM generate_series(1, 250000) g;
SELECT train_err($$ SELECT tim4rec_train('t_many') $$);
RESET tim4rec.memory_budget;
DROP TABLE t_many;
SELECT train_err($$ SET tim4rec.memory_budget = '1MB' $$);
SELECT train_err($$ SET tim4rec.threads = 100 $$);
SELECT train_err($$ SET tim4rec.no_such_setting = 1 $$);
-- nothing was written by the failed calls
SELECT model_name, count(*) AS versions, max(version) AS newest FROM tim4rec_models
WHERE model_name LIKE 't\_model%' GROUP BY model_name ORDER BY model_name;
-- progress view exists and shows nothing when no training runs
SELECT count(*) AS running FROM tim4rec_progress;

-- clean up (the regression database is shared by the other test files)
SELECT tim4rec_drop('t_model'), tim4rec_drop('t_model2'), tim4rec_drop('t_model3'), tim4rec_drop('t_model4');
DROP VIEW t_view;
DROP MATERIALIZED VIEW t_mv;
DROP TABLE t_part;
DROP TABLE t_inter, t_inter2, t_inter3, t_badtypes, t_empty;
DROP SEQUENCE t_seq;
DROP FUNCTION train_err(text, boolean);
RESET client_min_messages;
RESET tim4rec.threads;
