-- pg_recommend_all.sql - tim4rec_recommend_all against the LATERAL form
-- (issue 14 part 3).  Run by test/bench/pg_recommend_all.sh with psql
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

CREATE FUNCTION pg_temp.secs(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); BEGIN
  EXECUTE q;
  RETURN extract(epoch FROM clock_timestamp() - t0);
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
CREATE TEMP TABLE t (round int, arm text, s float8);
DO $$
BEGIN
  FOR i IN 1..current_setting('t4r.rounds')::int LOOP
    INSERT INTO t SELECT i, 'all', pg_temp.secs($q$ SELECT count(*) FROM tim4rec_recommend_all('bench', 10) $q$);
    INSERT INTO t SELECT i, 'lateral', pg_temp.secs($q$ SELECT count(*) FROM bench_users u, LATERAL tim4rec_recommend(u.user_id, 10, 'bench') r $q$);
    TRUNCATE bench_recs;
    INSERT INTO t SELECT i, 'insert', pg_temp.secs($q$ INSERT INTO bench_recs SELECT * FROM tim4rec_recommend_all('bench', 20) $q$);
    INSERT INTO t SELECT i, 'all1', pg_temp.secs($q$ SET LOCAL tim4rec.threads = 1; SELECT count(*) FROM tim4rec_recommend_all('bench', 10) $q$);
  END LOOP;
END $$;
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS all_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS all_runs FROM t WHERE arm = 'all' \gset
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS lat_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS lat_runs FROM t WHERE arm = 'lateral' \gset
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS ins_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS ins_runs FROM t WHERE arm = 'insert' \gset
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS one_s, string_agg(round(s::numeric, 2)::text, ', ' ORDER BY round) AS one_runs FROM t WHERE arm = 'all1' \gset
SELECT count(*) AS n_ins FROM bench_recs \gset

\pset format unaligned
\pset tuples_only on
SELECT format('| tim4rec_recommend_all(''bench'', 10), all 6,040 users (%s rows), tim4rec.threads = %s | %s s (runs %s) | <= 1 s | %s |',
              :n_all, current_setting('tim4rec.threads'), round(:all_s::numeric, 3), :'all_runs', round(1 / :all_s::numeric, 2));
SELECT format('| same, tim4rec.threads = 1 | %s s (runs %s) | | |', round(:one_s::numeric, 3), :'one_runs');
SELECT format('| LATERAL tim4rec_recommend(user_id, 10) over the 6,040 users, same run | %s s (runs %s) | | |',
              round(:lat_s::numeric, 3), :'lat_runs');
SELECT format('| speed-up recommend_all vs LATERAL (medians) | %sx | >= 5x | %s |',
              round(:lat_s::numeric / :all_s::numeric, 2), round(:lat_s::numeric / :all_s::numeric / 5, 2));
SELECT format('| INSERT INTO recs SELECT * FROM tim4rec_recommend_all(''bench'', 20) (%s rows) | %s s (runs %s) | | |',
              :n_ins, round(:ins_s::numeric, 3), :'ins_runs');
SELECT format('| rows differing between recommend_all and LATERAL (EXCEPT ALL both ways) | %s | 0 | |', :n_diff);

DROP TABLE bench_ix, bench_users, bench_recs CASCADE;
DELETE FROM tim4rec_models WHERE model_name = 'bench';
