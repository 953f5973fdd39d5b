-- Hyper-parameter search from SQL (options "search" and "search_trials"):
-- grid and seeded random trials on one split, the kept version = the trial
-- with the best validation NDCG@10 recorded in its history (recomputed here
-- in SQL, and checked against a plain training with that trial's options),
-- deploy rules, 22023 errors for bad specs, statement_timeout and (with
-- dblink) trial i/N in tim4rec_progress and pg_cancel_backend in the second
-- trial, none of which writes anything.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SELECT count(*) > 0 AS have_dblink FROM pg_available_extensions WHERE name = 'dblink' \gset
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(54);

CREATE TABLE ts_inter AS
SELECT u AS user_id, ((u * 3 + s) % 40 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 11 + s) * interval '1 hour' AS ts
FROM generate_series(1, 80) u, generate_series(1, 12) s;
-- every trial's options but the searched ones (tiny model, few epochs)
CREATE TEMP TABLE base(j jsonb);
INSERT INTO base VALUES ('{"epochs": 3, "patience": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
-- the grid, computed independently of the extension
CREATE TEMP TABLE grid AS
SELECT jsonb_build_object('learning_rate', lr, 'dropout_prob', dp) AS o
FROM unnest(ARRAY[0.001, 0.01]::numeric[]) lr, unnest(ARRAY[0.2, 0.4]::numeric[]) dp;

-- ---- grid: search_trials 8 >= 4 grid points: every point once ----
CREATE TEMP TABLE g AS
SELECT * FROM tim4rec_train('ts_inter', 'sg', options => (SELECT j || '{"search": {"learning_rate": [0.001, 0.01], "dropout_prob": [0.2, 0.4]}, "search_trials": 8}' FROM base));
CREATE TEMP VIEW gh AS
SELECT t FROM tim4rec_models m, jsonb_array_elements(m.history) t WHERE m.model_name = 'sg' AND m.version = 1;
SELECT is((SELECT version FROM g), 1, 'a search stores one version');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'sg'), 1, 'and only one');
SELECT is((SELECT count(*)::int FROM gh), 4, 'trials recorded = min(grid 4, search_trials 8)');
SELECT set_eq($$ SELECT t->'options' FROM gh $$, $$ SELECT o FROM grid $$,
              'the trials are exactly the grid points');
SELECT is((SELECT array_agg((t->>'trial')::int ORDER BY (t->>'trial')::int) FROM gh), ARRAY[1, 2, 3, 4],
          'trials are numbered 1..4');
SELECT is((SELECT array_agg(t->'options' ORDER BY (t->>'trial')::int) FROM gh),
          (SELECT array_agg(o ORDER BY o->'dropout_prob', o->'learning_rate') FROM grid),
          'grid order: keys alphabetically, the last key varying fastest');
SELECT is((SELECT metrics->'search'->>'mode' FROM tim4rec_models WHERE model_name = 'sg'), 'grid',
          'metrics.search.mode is grid');
SELECT ok((SELECT bool_and(jsonb_typeof(t->'valid'->'ndcg@10') = 'number' AND jsonb_typeof(t->'valid'->'hr@10') = 'number'
                           AND jsonb_typeof(t->'valid'->'mrr@10') = 'number') FROM gh),
          'every trial records its validation HR/NDCG/MRR@10');
SELECT ok((SELECT bool_and((t->>'best_epoch')::int BETWEEN 1 AND (t->>'epochs_run')::int
                           AND jsonb_array_length(t->'epochs') = (t->>'epochs_run')::int
                           AND (t->>'epochs_run')::int <= 3) FROM gh),
          'every trial records its best epoch and its epochs (at most epochs = 3)');
SELECT ok((SELECT bool_and(NOT t ? 'test') FROM gh),
          'the trials record no test metrics');
-- the best trial by validation NDCG@10, from the recorded history (ties: the earlier trial)
CREATE TEMP TABLE gbest AS
SELECT t FROM gh ORDER BY (t->'valid'->>'ndcg@10')::float8 DESC, (t->>'trial')::int LIMIT 1;
SELECT ok((SELECT config @> (SELECT t->'options' FROM gbest) FROM tim4rec_models WHERE model_name = 'sg'),
          'the kept version''s options are the best trial''s');
SELECT ok((SELECT config @> (SELECT j FROM base) AND NOT config ? 'search' AND NOT config ? 'search_trials'
           FROM tim4rec_models WHERE model_name = 'sg'),
          'and the call''s other options, without the search keys');
SELECT is((SELECT valid_ndcg10 FROM g), (SELECT (t->'valid'->>'ndcg@10')::float8 FROM gbest),
          'the returned validation NDCG@10 is the best recorded');
SELECT is((SELECT best_epoch FROM g), (SELECT (t->>'best_epoch')::int FROM gbest),
          'the returned best epoch is the best trial''s');
SELECT is((SELECT array_agg((t->>'trial')::int) FROM gh WHERE (t->>'kept')::boolean),
          ARRAY[(SELECT (t->>'trial')::int FROM gbest)], 'only the best trial is marked kept');
SELECT is((SELECT (metrics->'search'->>'kept_trial')::int FROM tim4rec_models WHERE model_name = 'sg'),
          (SELECT (t->>'trial')::int FROM gbest), 'metrics.search.kept_trial names it');
SELECT is((SELECT (metrics->'valid'->>'ndcg@10')::float8 FROM tim4rec_models WHERE model_name = 'sg'),
          (SELECT (t->'valid'->>'ndcg@10')::float8 FROM gbest), 'the version''s metrics are the best trial''s');
SELECT ok((SELECT count(DISTINCT t->'valid'->>'ndcg@10') > 1 FROM gh),
          'the trials differ (the selection is not vacuous)');
-- the kept model is the plain training of the best trial's options on the same data
CREATE TEMP TABLE p AS
SELECT * FROM tim4rec_train('ts_inter', 'plain', options => (SELECT j || (SELECT t->'options' FROM gbest) FROM base));
SELECT is((SELECT valid_ndcg10 FROM p), (SELECT valid_ndcg10 FROM g),
          'a plain training with the best trial''s options gives the same validation NDCG@10');
SELECT is((SELECT test_ndcg10 FROM p), (SELECT test_ndcg10 FROM g), 'and the same test NDCG@10');
SELECT is((SELECT md5(weights) FROM tim4rec_models WHERE model_name = 'plain'),
          (SELECT md5(weights) FROM tim4rec_models WHERE model_name = 'sg'), 'and the same weights');
SELECT is((SELECT is_current FROM tim4rec_models WHERE model_name = 'sg'), true, 'deploy always: the search version is current');

-- ---- random: search_trials 3 < 4 grid points, seeded ----
CREATE TEMP TABLE r1 AS
SELECT * FROM tim4rec_train('ts_inter', 'sr', options => (SELECT j || '{"search": {"learning_rate": [0.001, 0.01], "dropout_prob": [0.2, 0.4]}, "search_trials": 3}' FROM base));
CREATE TEMP TABLE r2 AS
SELECT * FROM tim4rec_train('ts_inter', 'sr', options => (SELECT j || '{"search": {"learning_rate": [0.001, 0.01], "dropout_prob": [0.2, 0.4]}, "search_trials": 3}' FROM base));
CREATE TEMP VIEW rh AS
SELECT m.version, t FROM tim4rec_models m, jsonb_array_elements(m.history) t WHERE m.model_name = 'sr';
SELECT is((SELECT count(*)::int FROM rh WHERE version = 1), 3, 'random: trials recorded = search_trials 3');
SELECT is((SELECT count(DISTINCT t->'options')::int FROM rh WHERE version = 1), 3, 'random: the trials are distinct');
SELECT ok((SELECT bool_and(t->'options' IN (SELECT o FROM grid)) FROM rh WHERE version = 1), 'random: every trial is a grid point');
SELECT is((SELECT metrics->'search'->>'mode' FROM tim4rec_models WHERE model_name = 'sr' AND version = 1), 'random',
          'metrics.search.mode is random');
SELECT is((SELECT array_agg(t->'options' ORDER BY (t->>'trial')::int) FROM rh WHERE version = 2),
          (SELECT array_agg(t->'options' ORDER BY (t->>'trial')::int) FROM rh WHERE version = 1),
          'random: the same options and seed draw the same trials in the same order');
SELECT is((SELECT array_agg(t->'valid' ORDER BY (t->>'trial')::int) FROM rh WHERE version = 2),
          (SELECT array_agg(t->'valid' ORDER BY (t->>'trial')::int) FROM rh WHERE version = 1),
          'random: and the same validation metrics');

-- ---- a list of points: tried in the given order, keys may differ ----
CREATE TEMP TABLE pts AS
SELECT ord, o FROM (VALUES (1, '{"learning_rate": 0.01}'::jsonb),
                           (2, '{"learning_rate": 0.001, "dropout_prob": 0.4}'::jsonb),
                           (3, '{"dropout_prob": 0.2}'::jsonb)) v(ord, o);
CREATE TEMP TABLE l1 AS
SELECT * FROM tim4rec_train('ts_inter', 'sl', options => (SELECT j || jsonb_build_object('search', (SELECT jsonb_agg(o ORDER BY ord) FROM pts)) FROM base));
CREATE TEMP VIEW lh AS
SELECT m.version, t FROM tim4rec_models m, jsonb_array_elements(m.history) t WHERE m.model_name = 'sl';
SELECT is((SELECT array_agg(t->'options' ORDER BY (t->>'trial')::int) FROM lh WHERE version = 1),
          (SELECT array_agg(o ORDER BY ord) FROM pts), 'list: one trial per point, in the given order');
SELECT is((SELECT metrics->'search'->>'mode' FROM tim4rec_models WHERE model_name = 'sl' AND version = 1), 'list',
          'metrics.search.mode is list');
CREATE TEMP TABLE lbest AS
SELECT t FROM lh WHERE version = 1 ORDER BY (t->'valid'->>'ndcg@10')::float8 DESC, (t->>'trial')::int LIMIT 1;
CREATE TEMP TABLE lp AS
SELECT * FROM tim4rec_train('ts_inter', 'lplain', options => (SELECT j || (SELECT t->'options' FROM lbest) FROM base));
SELECT is((SELECT md5(weights) FROM tim4rec_models WHERE model_name = 'sl' AND version = 1),
          (SELECT md5(weights) FROM tim4rec_models WHERE model_name = 'lplain'),
          'list: the kept version is the best point trained alone');
CREATE TEMP TABLE l2 AS
SELECT * FROM tim4rec_train('ts_inter', 'sl', options => (SELECT j || jsonb_build_object('search', (SELECT jsonb_agg(o ORDER BY ord) FROM pts), 'search_trials', 2) FROM base));
SELECT is((SELECT count(DISTINCT t->'options')::int FROM lh WHERE version = 2 AND t->'options' IN (SELECT o FROM pts))
          + 10 * (SELECT count(*)::int FROM lh WHERE version = 2),
          22, 'list with search_trials 2: two distinct points of the list');

-- ---- deploy if_better ----
UPDATE tim4rec_models SET metrics = jsonb_set(metrics, '{valid,ndcg@10}', '1.5') WHERE model_name = 'sr' AND version = 2;
SELECT is((SELECT version FROM tim4rec_train('ts_inter', 'sr', options => (SELECT j || '{"deploy": "if_better", "search": {"learning_rate": [0.001, 0.01]}, "search_trials": 1}' FROM base))),
          3, 'if_better search stores version 3');
SELECT is((SELECT version FROM tim4rec_models WHERE model_name = 'sr' AND is_current), 2,
          'if_better: a search that does not beat the current version is not deployed');

-- ---- bad specs: 22023, nothing written ----
CREATE TEMP TABLE snap AS SELECT model_name, version, is_current, md5(weights) AS w FROM tim4rec_models;
CREATE FUNCTION pg_temp.bad(spec jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tim4rec_train('ts_inter', 'sbad', options => (SELECT j FROM base) || spec);
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN CASE WHEN SQLSTATE = '22023' THEN 'ok' ELSE SQLSTATE || ' ' || SQLERRM END;
END $$;
CREATE TEMP TABLE bad(what text, spec jsonb);
INSERT INTO bad VALUES
  ('an unknown option in search', '{"search": {"learning_rat": [0.001]}}'),
  ('values not an array', '{"search": {"learning_rate": 0.001}}'),
  ('an empty array of values', '{"search": {"learning_rate": []}}'),
  ('a value of the wrong type', '{"search": {"learning_rate": ["fast"]}}'),
  ('an integer option given 1.5', '{"search": {"hidden_size": [16, 1.5]}}'),
  ('an object as a value', '{"search": {"dropout_prob": [{"a": 1}]}}'),
  ('a repeated value', '{"search": {"dropout_prob": [0.2, 0.20]}}'),
  ('init_from in search', '{"search": {"init_from": ["sg"]}}'),
  ('search in search', '{"search": {"search": [1]}}'),
  ('preset in search', '{"search": {"preset": ["amazon"]}}'),
  ('a data filter in search', '{"search": {"min_user_interactions": [5, 6]}}'),
  ('an empty search', '{"search": {}}'),
  ('a list point not an object', '{"search": [1, 2]}'),
  ('search a string', '{"search": "learning_rate"}'),
  ('an empty list', '{"search": []}'),
  ('an empty point', '{"search": [{"learning_rate": 0.01}, {}]}'),
  ('a repeated point', '{"search": [{"dropout_prob": 0.2}, {"dropout_prob": 0.20}]}'),
  ('an unknown key in a point', '{"search": [{"learning_rat": 0.01}]}'),
  ('refit in a point', '{"search": [{"refit": true}]}'),
  ('an array as a point value', '{"search": [{"learning_rate": [0.01]}]}'),
  ('an invalid point value', '{"search": [{"dropout_prob": 2}]}'),
  ('auto as a point value', '{"search": [{"tie_shuffle": "auto"}]}'),
  ('a point key also set outside', '{"search": [{"learning_rate": 0.01}], "learning_rate": 0.01}'),
  ('a list over the cap', jsonb_build_object('search', (SELECT jsonb_agg(jsonb_build_object('seed', g)) FROM generate_series(1, 101) g))),
  ('search_trials 0', '{"search": {"learning_rate": [0.001]}, "search_trials": 0}'),
  ('search_trials above the cap', '{"search": {"learning_rate": [0.001]}, "search_trials": 101}'),
  ('search_trials not a number', '{"search": {"learning_rate": [0.001]}, "search_trials": "all"}'),
  ('search_trials without search', '{"search_trials": 2}'),
  ('search with init_from', '{"search": {"learning_rate": [0.001]}, "init_from": "sg"}'),
  ('a key both searched and set', '{"search": {"learning_rate": [0.001]}, "learning_rate": 0.01}'),
  ('a grid over the cap without search_trials', '{"search": {"seed": [1,2,3,4,5,6,7,8,9,10,11], "patience": [1,2,3,4,5,6,7,8,9,10]}}'),
  ('a trial whose options conflict', '{"search": {"head_dim": [16, 7]}}');
SELECT is((SELECT string_agg(what || ': ' || pg_temp.bad(spec), '; ') FILTER (WHERE pg_temp.bad(spec) <> 'ok') FROM bad),
          NULL, 'every bad search spec fails with 22023');
SELECT throws_like($$ SELECT tim4rec_train('ts_inter', 'sbad', options => '{"search": {"learning_rat": [0.001]}}') $$,
                   'unknown option "learning_rat" in "search"', 'the error names the unknown key');
SELECT throws_like($$ SELECT tim4rec_train('ts_inter', 'sbad', options => '{"search": {"init_from": ["sg"]}}') $$,
                   'option "init_from" cannot be searched', 'init_from cannot be searched');
CREATE FUNCTION pg_temp.hint(spec jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text;
BEGIN
  PERFORM tim4rec_train('ts_inter', 'sbad', options => spec);
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  RETURN h;
END $$;
SELECT alike(pg_temp.hint('{"search": {"learning_rate": 0.001}}'), 'Searchable keys: %learning_rate%Example: %',
             'a bad spec''s hint lists the searchable keys and an example');
SELECT alike(pg_temp.hint('{"search": {"seed": [1,2,3,4,5,6,7,8,9,10,11], "patience": [1,2,3,4,5,6,7,8,9,10]}}'),
             '%search_trials%', 'a grid over the cap hints at search_trials');
CREATE FUNCTION pg_temp.context(spec jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE c text;
BEGIN
  PERFORM tim4rec_train('ts_inter', 'sbad', options => (SELECT j FROM base) || spec);
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS c = PG_EXCEPTION_CONTEXT;
  RETURN c;
END $$;
SELECT alike(pg_temp.context('{"search": {"head_dim": [16, 7]}}'), 'search trial 2: {"head_dim": 7}%',
             'a trial whose options do not go together is named in the error context');
SELECT alike(pg_temp.context('{"search": [{"head_dim": 16}, {"head_dim": 7}]}'), 'search trial 2: {"head_dim": 7}%',
             'so is a listed point');
SELECT throws_like($$ SELECT tim4rec_train('ts_inter', 'sbad', options => '{"search": [{"dropout_prob": 0.2}, {"dropout_prob": 0.20}]}') $$,
                   'search point 2 repeats point 1', 'the error names the repeated point');
SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'failed searches write nothing');
-- keys that only go together: each trial is checked as a whole
SELECT is((SELECT count(*)::int FROM tim4rec_train('ts_inter', 'spair',
           options => '{"epochs": 1, "max_seq_len": 20, "batch_size": 64, "expand": 1, "search": {"hidden_size": [16, 32], "head_dim": [16]}}')),
          1, 'searched keys are checked together (hidden_size 16 with head_dim 16, not the default 32)');
\o /dev/null
SELECT tim4rec_drop('spair');
\o

-- ---- statement_timeout: nothing half-written ----
CREATE TABLE tc AS
SELECT u AS user_id, ((u * 7 + s * 3) % 200 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 13 + s) * interval '1 minute' AS ts
FROM generate_series(1, 400) u, generate_series(1, 40) s;
CREATE FUNCTION pg_temp.search_timed(opts jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tim4rec_train('tc', 'scancel', options => opts);
  RETURN 'finished';
EXCEPTION WHEN query_canceled THEN
  RETURN 'cancelled';
END $$;
CREATE TEMP TABLE res(r text);
SET statement_timeout = '1500ms';
INSERT INTO res SELECT pg_temp.search_timed('{"epochs": 200, "hidden_size": 64, "max_seq_len": 50, "batch_size": 256, "search": {"learning_rate": [0.001, 0.002]}}');
RESET statement_timeout;
SELECT is((SELECT r FROM res), 'cancelled', 'statement_timeout cancels a search');
SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'the catalog is unchanged after the cancel');
SELECT is((SELECT count(*)::int FROM tim4rec_progress WHERE pid = pg_backend_pid()), 0,
          'no progress row is left behind');

-- ---- a second session: trial i/N in tim4rec_progress, cancel in trial 2 ----
\if :have_dblink
CREATE EXTENSION IF NOT EXISTS dblink;
\o /dev/null
SELECT dblink_connect('bg', format('host=%s port=%s dbname=%s user=%s',
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_database(), current_user));
SELECT dblink_exec('bg', 'SET tim4rec.threads = 1');
SELECT dblink_exec('bg', 'SET client_min_messages = warning');
SELECT dblink_exec('bg', $$CREATE TABLE tsprog AS
  SELECT u AS user_id, ((u * 7 + s * 3) % 200 + 1)::int AS item_id,
         timestamptz '2024-01-01' + (u * 13 + s) * interval '1 minute' AS ts
  FROM generate_series(1, 400) u, generate_series(1, 40) s$$);
\o
CREATE TEMP TABLE bg AS SELECT pid FROM dblink('bg', 'SELECT pg_backend_pid()') AS t(pid int);
-- trial 1: one epoch; trial 2: many
SELECT is(dblink_send_query('bg', $$SELECT version FROM tim4rec_train('tsprog', 'sprog',
          options => '{"hidden_size": 16, "max_seq_len": 10, "batch_size": 256, "min_user_interactions": 40, "search": {"epochs": [1, 500]}}')$$), 1,
          'a search started in a second session');
CREATE FUNCTION pg_temp.wait_trial(p int, tr int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..1200 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF EXISTS (SELECT 1 FROM tim4rec_progress WHERE pid = p AND trial = tr AND phase = 'training' AND step >= 1) THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SELECT ok(pg_temp.wait_trial((SELECT pid FROM bg), 2), 'tim4rec_progress shows trial 2');
SELECT pg_stat_clear_snapshot() \g /dev/null
CREATE TEMP TABLE seen AS SELECT * FROM tim4rec_progress WHERE pid = (SELECT pid FROM bg);
SELECT is((SELECT trial || '/' || trials || ' of at most ' || max_epochs || ' epochs' FROM seen), '2/2 of at most 500 epochs',
          'progress shows trial 2 of 2 and that trial''s epoch limit');
CREATE FUNCTION pg_temp.cancel_and_wait(p int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_cancel_backend(p);
  FOR i IN 1..1200 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF (SELECT state FROM pg_stat_activity WHERE pid = p) <> 'active' THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SELECT ok(pg_temp.cancel_and_wait((SELECT pid FROM bg)), 'pg_cancel_backend stops the search');
CREATE TEMP TABLE gr AS SELECT * FROM dblink_get_result('bg', false) AS t(version int);
SELECT alike((SELECT string_agg(e, ' ') FROM (SELECT dblink_error_message('bg') AS e) x), '%cancel%',
             'the search session got a cancel error');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'sprog'), 0,
          'a search cancelled after a finished trial wrote nothing');
CREATE TEMP TABLE gr2 AS SELECT * FROM dblink_get_result('bg', false) AS t(version int);
SELECT is((SELECT count(*)::int FROM dblink('bg', $$SELECT pid FROM tim4rec_progress WHERE pid = pg_backend_pid()$$) AS t(pid int)), 0,
          'no progress row is left in the cancelled session');
\o /dev/null
SELECT dblink_exec('bg', 'DROP TABLE tsprog');
SELECT dblink_disconnect('bg');
\o
\else
SELECT skip('dblink not available', 7);
\endif

SELECT * FROM finish();
ROLLBACK;
