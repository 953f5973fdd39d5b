-- Progress from another session and pg_cancel_backend.  A second
-- connection (dblink) trains; this session watches tim4rec_progress, then
-- cancels the training with pg_cancel_backend and checks that it stops
-- within about a second and writes nothing.  Skipped without dblink.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SELECT count(*) > 0 AS have_dblink FROM pg_available_extensions WHERE name = 'dblink' \gset
SET client_min_messages = warning;
BEGIN;
\if :have_dblink
SELECT plan(9);
CREATE EXTENSION IF NOT EXISTS dblink;
\o /dev/null
SELECT dblink_connect('bg', format('host=%s port=%s dbname=%s user=%s',
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_database(), current_user));
SELECT dblink_exec('bg', 'SET tim4rec.threads = 1');
SELECT dblink_exec('bg', 'SET client_min_messages = warning');
SELECT dblink_exec('bg', $$CREATE TABLE tprog AS
  SELECT u AS user_id, ((u * 7 + s * 3) % 200 + 1)::int AS item_id,
         timestamptz '2024-01-01' + (u * 13 + s) * interval '1 minute' AS ts
  FROM generate_series(1, 400) u, generate_series(1, 40) s$$);
\o
CREATE TEMP TABLE bg AS SELECT pid FROM dblink('bg', 'SELECT pg_backend_pid()') AS t(pid int);

SELECT is(dblink_send_query('bg', $$SELECT version FROM tim4rec_train('tprog', 'prog',
          options => '{"epochs": 200, "hidden_size": 64, "max_seq_len": 50, "batch_size": 256}')$$), 1,
          'training started in a second session');

-- wait (at most 60 s) until it reports training steps
CREATE FUNCTION pg_temp.wait_progress(p int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..600 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF EXISTS (SELECT 1 FROM tim4rec_progress WHERE pid = p AND phase = 'training' AND step >= 1) THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN false;
END $$;
SELECT ok(pg_temp.wait_progress((SELECT pid FROM bg)), 'the training shows up in tim4rec_progress');
SELECT pg_stat_clear_snapshot();
CREATE TEMP TABLE seen AS SELECT * FROM tim4rec_progress WHERE pid = (SELECT pid FROM bg);
SELECT is((SELECT relation FROM seen), 'tprog'::regclass, 'progress names the relation');
SELECT is((SELECT max_epochs FROM seen), 200, 'progress shows the epoch limit');
SELECT ok((SELECT steps_per_epoch > 0 AND step BETWEEN 1 AND steps_per_epoch AND epoch >= 1 FROM seen),
          'progress shows epoch, step and steps per epoch');
SELECT ok((SELECT loss > 0 AND loss < 20 FROM seen), 'progress shows a plausible loss');

-- cancel it
CREATE FUNCTION pg_temp.cancel_and_wait(p int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM pg_cancel_backend(p);
  FOR i IN 1..300 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF (SELECT state FROM pg_stat_activity WHERE pid = p) <> 'active' THEN
      RETURN extract(epoch FROM clock_timestamp() - t0);
    END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
  RETURN 999;
END $$;
SELECT cmp_ok(pg_temp.cancel_and_wait((SELECT pid FROM bg)), '<', 1.5::float8,
              'pg_cancel_backend stops the training within about a second');
CREATE TEMP TABLE gr AS SELECT * FROM dblink_get_result('bg', false) AS t(version int);
SELECT alike((SELECT string_agg(e, ' ') FROM (SELECT dblink_error_message('bg') AS e) x), '%cancel%',
             'the training session got a cancel error');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'prog'), 0, 'the cancelled training wrote nothing');
CREATE TEMP TABLE gr2 AS SELECT * FROM dblink_get_result('bg', false) AS t(version int);
\o /dev/null
SELECT dblink_exec('bg', 'DROP TABLE tprog');
SELECT dblink_disconnect('bg');
\o
\else
SELECT plan(1);
SELECT skip('dblink not available', 1);
\endif
SELECT * FROM finish();
ROLLBACK;
