-- Cancellation: statement_timeout stops a running training within about a
-- second and leaves the catalog unchanged; the backend stays usable.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(7);

-- enough work for many seconds of training
CREATE TABLE tc AS
SELECT u AS user_id, ((u * 7 + s * 3) % 200 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 13 + s) * interval '1 minute' AS ts
FROM generate_series(1, 400) u, generate_series(1, 40) s;
SELECT lives_ok($$ SELECT tim4rec_train('tc', 'keep', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 10, "batch_size": 4096, "min_user_interactions": 40}') $$,
                'a small model exists before');
CREATE TEMP TABLE snap AS SELECT model_name, version, is_current, md5(weights) AS w FROM tim4rec_models;

CREATE FUNCTION pg_temp.train_timed(opts jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM tim4rec_train('tc', 'keep', options => opts);
  RETURN 'finished ' || extract(epoch FROM clock_timestamp() - t0);
EXCEPTION WHEN query_canceled THEN
  RETURN 'cancelled ' || extract(epoch FROM clock_timestamp() - t0);
END $$;

CREATE TEMP TABLE res(r text);
SET statement_timeout = '1500ms';
INSERT INTO res SELECT pg_temp.train_timed('{"epochs": 200, "hidden_size": 64, "max_seq_len": 50, "batch_size": 256}');
RESET statement_timeout;

SELECT alike((SELECT r FROM res), 'cancelled %', 'statement_timeout cancels the training');
SELECT cmp_ok((SELECT split_part(r, ' ', 2)::float8 FROM res), '<', 1.5 + 1.0::float8,
              'the training stops within a second of the timeout');
SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'the catalog is unchanged after the cancel');
SELECT is((SELECT count(*)::int FROM tim4rec_progress WHERE pid = pg_backend_pid()), 0,
          'no progress row is left behind');
SELECT lives_ok($$ SELECT tim4rec_train('tc', 'keep', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 10, "batch_size": 4096, "min_user_interactions": 40}') $$,
                'training works again after the cancel');
SELECT is((SELECT max(version) FROM tim4rec_models WHERE model_name = 'keep'), 2, 'and makes version 2');

SELECT * FROM finish();
ROLLBACK;
