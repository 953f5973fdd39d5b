-- pg_recommend_all.sql - tim4rec_recommend_all against the LATERAL form.
-- Run by test/bench/pg_recommend_all.sh with psql
-- variables model_hex_file (safetensors bytes of a movielens-preset model
-- with 3,706 items, hex) and rounds.  Prints a markdown table.
\set QUIET 1
\set model_hex `cat :model_hex_file`
\pset pager off
SET client_min_messages = warning;
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'tim4rec_import') AS have_import \gset

\ir ml1m_like.sql
SELECT count(*) AS bench_rows FROM bench_ix \gset

DELETE FROM tim4rec_models WHERE model_name = 'bench';
\o /dev/null
SELECT tim4rec_import('bench', decode(:'model_hex', 'hex'), ARRAY(SELECT g::bigint FROM generate_series(1, 3706) g));
UPDATE tim4rec_models SET source_schema = current_schema(), source_table = 'bench_ix', user_column = 'user_id',
       item_column = 'item_id', time_column = 'ts' WHERE model_name = 'bench';
UPDATE tim4rec_models SET item_counts = ARRAY(SELECT count(b.item_id) FROM generate_series(1, 3706) g
                                              LEFT JOIN bench_ix b ON b.item_id = g GROUP BY g ORDER BY g)
WHERE model_name = 'bench';
\o
DROP TABLE IF EXISTS bench_users, bench_recs;
CREATE TABLE bench_users AS SELECT DISTINCT user_id FROM bench_ix;
ANALYZE bench_users;
CREATE TABLE bench_recs (user_id bigint, item_id bigint, score real, rank int);

-- CPU seconds of this backend, all its threads (utime + stime of /proc/PID/stat)
CREATE FUNCTION pg_temp.cpu() RETURNS float8 LANGUAGE sql AS $$
  SELECT (f[12]::float8 + f[13]::float8) / 100
  FROM (SELECT string_to_array(split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ') ', 2), ' ') f) x $$;
-- wall-clock and CPU seconds of one statement
CREATE FUNCTION pg_temp.secs(q text, OUT wall float8, OUT cpu float8) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); c0 float8 := pg_temp.cpu(); BEGIN
  EXECUTE q;
  wall := extract(epoch FROM clock_timestamp() - t0);
  cpu := pg_temp.cpu() - c0;
END $$;

SET max_parallel_workers_per_gather = 0;
-- warm-up (model load, plans, buffers) and the check that both forms agree
SELECT count(*) AS n_all FROM tim4rec_recommend_all('bench', 10) \gset
SELECT count(*) AS n_diff FROM (
  (SELECT * FROM tim4rec_recommend_all('bench', 10)
   EXCEPT ALL SELECT u.user_id, r.* FROM bench_users u, LATERAL tim4rec_recommend(u.user_id, 10, 'bench') r)
  UNION ALL
  (SELECT u.user_id, r.* FROM bench_users u, LATERAL tim4rec_recommend(u.user_id, 10, 'bench') r
   EXCEPT ALL SELECT * FROM tim4rec_recommend_all('bench', 10))) d \gset

-- the arms interleaved, :rounds rounds
CREATE TEMP TABLE t (round int, arm text, s float8, c float8);
DO $$
DECLARE threads text := current_setting('tim4rec.threads');
BEGIN
  FOR i IN 1..current_setting('t4r.rounds')::int LOOP
    -- the 'all1' arm's SET LOCAL lasts to the end of this DO block's
    -- transaction: restore the session's setting every round
    PERFORM set_config('tim4rec.threads', threads, true);
    INSERT INTO t SELECT i, 'all', * FROM pg_temp.secs($q$ SELECT count(*) FROM tim4rec_recommend_all('bench', 10) $q$);
    INSERT INTO t SELECT i, 'lateral', * FROM pg_temp.secs($q$ SELECT count(*) FROM bench_users u, LATERAL tim4rec_recommend(u.user_id, 10, 'bench') r $q$);
    TRUNCATE bench_recs;
    INSERT INTO t SELECT i, 'insert', * FROM pg_temp.secs($q$ INSERT INTO bench_recs SELECT * FROM tim4rec_recommend_all('bench', 20) $q$);
    INSERT INTO t SELECT i, 'all1', * FROM pg_temp.secs($q$ SET LOCAL tim4rec.threads = 1; SELECT count(*) FROM tim4rec_recommend_all('bench', 10) $q$);
  END LOOP;
END $$;
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS all_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS all_runs,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY c) AS all_c FROM t WHERE arm = 'all' \gset
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS lat_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS lat_runs,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY c) AS lat_c FROM t WHERE arm = 'lateral' \gset
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS ins_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS ins_runs,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY c) AS ins_c FROM t WHERE arm = 'insert' \gset
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS one_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS one_runs,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY c) AS one_c FROM t WHERE arm = 'all1' \gset
SELECT count(*) AS n_ins FROM bench_recs \gset

\pset format unaligned
\pset tuples_only on
SELECT format('| tim4rec_recommend_all(''bench'', 10), all 6,040 users (%s rows), tim4rec.threads = %s | %s s (runs %s) | <= 1 s | %s | %s s |',
              :n_all, current_setting('tim4rec.threads'), round(:all_s::numeric, 3), :'all_runs', round(1 / :all_s::numeric, 2), round(:all_c::numeric, 2));
SELECT format('| same, tim4rec.threads = 1 | %s s (runs %s) | | | %s s |', round(:one_s::numeric, 3), :'one_runs', round(:one_c::numeric, 2));
SELECT format('| LATERAL tim4rec_recommend(user_id, 10) over the 6,040 users, same run | %s s (runs %s) | | | %s s |',
              round(:lat_s::numeric, 3), :'lat_runs', round(:lat_c::numeric, 2));
SELECT format('| speed-up recommend_all vs LATERAL (medians, wall) | %sx | >= 5x | %s | |',
              round(:lat_s::numeric / :all_s::numeric, 2), round(:lat_s::numeric / :all_s::numeric / 5, 2));
SELECT format('| speed-up, CPU seconds (LATERAL / recommend_all with tim4rec.threads = 1) | %sx | | | |',
              round(:lat_c::numeric / :one_c::numeric, 2));
SELECT format('| INSERT INTO recs SELECT * FROM tim4rec_recommend_all(''bench'', 20) (%s rows) | %s s (runs %s) | | | %s s |',
              :n_ins, round(:ins_s::numeric, 3), :'ins_runs', round(:ins_c::numeric, 2));
SELECT format('| rows differing between recommend_all and LATERAL (EXCEPT ALL both ways) | %s | 0 | | |', :n_diff);

DROP TABLE bench_ix, bench_users, bench_recs CASCADE;
DELETE FROM tim4rec_models WHERE model_name = 'bench';
