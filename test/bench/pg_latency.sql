-- pg_latency.sql - recommendation latency on a warm backend.
-- Run by test/bench/pg_latency.sh with psql variables: model_hex_file (a
-- file holding the safetensors bytes of a movielens-preset model with 3,706
-- items, hex), n_calls.  Prints a markdown table.
\set QUIET 1
\set model_hex `cat :model_hex_file`
\pset pager off
SET client_min_messages = warning;
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'tim4rec_import') AS have_import \gset
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'tim4rec_item_keys') AS have_ids \gset

-- ML-1M-like synthetic interactions (6,040 users, 3,706 items, ~1 M rows)
\ir ml1m_like.sql
SELECT count(*) AS bench_rows FROM bench_ix \gset

DELETE FROM tim4rec_models WHERE model_name = 'bench';
\o /dev/null
\if :have_import
SELECT tim4rec_import('bench', decode(:'model_hex', 'hex'), ARRAY(SELECT g::bigint FROM generate_series(1, 3706) g));
UPDATE tim4rec_models SET source_schema = current_schema(), source_table = 'bench_ix', user_column = 'user_id',
       item_column = 'item_id', time_column = 'ts' WHERE model_name = 'bench';
\else
INSERT INTO tim4rec_models (model_name, version, is_current, source_schema, source_table,
                            user_column, item_column, time_column, config, item_ids, item_counts, weights)
VALUES ('bench', 1, true, current_schema(), 'bench_ix', 'user_id', 'item_id', 'ts', '{}',
        ARRAY(SELECT g::bigint FROM generate_series(1, 3706) g), array_fill(0::bigint, ARRAY[3706]),
        decode(:'model_hex', 'hex'));
\endif
UPDATE tim4rec_models SET item_counts = ARRAY(SELECT count(b.item_id) FROM generate_series(1, 3706) g
                                              LEFT JOIN bench_ix b ON b.item_id = g GROUP BY g ORDER BY g)
WHERE model_name = 'bench';
\o

-- text ids (README "Id types"): the same model and interactions keyed by
-- text ('u<id>', 'sku-<id>'), measured interleaved with the bigint ids
\if :have_ids
DELETE FROM tim4rec_models WHERE model_name = 'bench_text';
DROP TABLE IF EXISTS bench_ix_text;
CREATE TABLE bench_ix_text AS SELECT 'u' || user_id AS user_id, 'sku-' || item_id AS item_id, ts FROM bench_ix;
CREATE INDEX ON bench_ix_text (user_id, ts);
VACUUM ANALYZE bench_ix_text;
INSERT INTO tim4rec_models (model_name, version, is_current, source_schema, source_table, user_column, item_column,
                            time_column, config, item_ids, item_counts, weights, user_id_type, item_id_type, item_keys)
SELECT 'bench_text', 1, true, current_schema(), 'bench_ix_text', 'user_id', 'item_id', 'ts', config, '{}',
       item_counts, weights, 'text', 'text', ARRAY(SELECT 'sku-' || g FROM generate_series(1, 3706) g ORDER BY g)
FROM tim4rec_models WHERE model_name = 'bench';
\endif

CREATE TEMP TABLE bench_seqs AS
SELECT user_id, tim4rec_seq(item_id, ts, 200) AS s FROM bench_ix GROUP BY user_id;
CREATE INDEX ON bench_seqs (user_id);
CREATE TABLE bench_users AS SELECT DISTINCT user_id FROM bench_ix;
ANALYZE bench_users;
ANALYZE bench_seqs;

-- per-call latency (ms) of one form, n calls over users spread over the table
CREATE FUNCTION pg_temp.lat(form text, n int) RETURNS TABLE(p50 float8, p99 float8, mean float8)
LANGUAGE plpgsql AS $$
DECLARE
  d float8[] := array_fill(0::float8, ARRAY[n]);
  t0 timestamptz;
  u int;
  c int;
  sq tim4rec_sequence;
BEGIN
  FOR i IN 1..n LOOP
    u := 1 + (i * 7919) % 6040;
    IF form = 'user' THEN
      t0 := clock_timestamp();
      SELECT count(*) INTO c FROM tim4rec_recommend(u, 10, 'bench');
    ELSE
      sq := (SELECT s FROM bench_seqs WHERE user_id = u);
      t0 := clock_timestamp();
      SELECT count(*) INTO c FROM tim4rec_recommend(sq, 10, 'bench');
    END IF;
    d[i] := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF c <> 10 THEN RAISE EXCEPTION 'expected 10 rows, got %', c; END IF;
  END LOOP;
  RETURN QUERY SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.99) WITHIN GROUP (ORDER BY x), avg(x)
               FROM unnest(d) x;
END $$;

-- bigint and text ids, interleaved call by call: p50 and p99 of each arm
CREATE FUNCTION pg_temp.lat_ids(n int) RETURNS TABLE(big_p50 float8, big_p99 float8, text_p50 float8, text_p99 float8)
LANGUAGE plpgsql AS $$
DECLARE
  db float8[] := array_fill(0::float8, ARRAY[n]);
  dt float8[] := array_fill(0::float8, ARRAY[n]);
  t0 timestamptz;
  u int;
  ut text;
  c int;
BEGIN
  FOR i IN 1..n LOOP
    u := 1 + (i * 7919) % 6040;
    ut := 'u' || u;
    t0 := clock_timestamp();
    SELECT count(*) INTO c FROM tim4rec_recommend(u, 10, 'bench');
    db[i] := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF c <> 10 THEN RAISE EXCEPTION 'expected 10 rows, got %', c; END IF;
    t0 := clock_timestamp();
    SELECT count(*) INTO c FROM tim4rec_recommend(ut, 10, 'bench_text');
    dt[i] := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF c <> 10 THEN RAISE EXCEPTION 'expected 10 rows, got %', c; END IF;
  END LOOP;
  RETURN QUERY SELECT (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(db) x),
                      (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY x) FROM unnest(db) x),
                      (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(dt) x),
                      (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY x) FROM unnest(dt) x);
END $$;

CREATE FUNCTION pg_temp.secs(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); BEGIN
  EXECUTE q;
  RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;

-- warm-up: model load, plan caches
SELECT * FROM pg_temp.lat('user', 300) \gset warm_
SELECT * FROM pg_temp.lat('seq', 300) \gset warm_
SELECT * FROM pg_temp.lat('user', :n_calls) \gset user_
SELECT * FROM pg_temp.lat('seq', :n_calls) \gset seq_
\if :have_ids
SELECT * FROM pg_temp.lat_ids(300) \gset warmids_
SELECT * FROM pg_temp.lat_ids(:n_calls) \gset ids_
\endif

SET max_parallel_workers_per_gather = 0;
SELECT pg_temp.secs($$ SELECT count(*) FROM bench_ix $$) AS scan_s \gset
SELECT pg_temp.secs($$ SELECT count(*) FROM (SELECT user_id, tim4rec_seq(item_id, ts) FROM bench_ix GROUP BY user_id) q $$) AS agg_s \gset
SELECT pg_temp.secs($$ SELECT count(*) FROM (SELECT user_id, count(item_id), max(ts) FROM bench_ix GROUP BY user_id) q $$) AS countagg_s \gset
SELECT pg_temp.secs($$ SELECT count(*) FROM (SELECT user_id, tim4rec_seq(item_id, ts) s FROM bench_ix GROUP BY user_id) q,
                       LATERAL tim4rec_recommend(q.s, 10, 'bench') r $$) AS bulk_seq_s \gset
SELECT pg_temp.secs($$ SELECT count(*) FROM bench_users u, LATERAL tim4rec_recommend(u.user_id, 10, 'bench') r $$) AS bulk_user_s \gset
RESET max_parallel_workers_per_gather;
-- parallel: LATERAL function scans are costed as cheap rescans, so the planner
-- only parallelises the select-list form (COST 10000 per call) of a table
-- with parallel_workers set (6,040 rows are below min_parallel_table_scan_size)
ALTER TABLE bench_users SET (parallel_workers = 2);
SELECT pg_temp.secs($$ SELECT count(*) FROM (SELECT u.user_id, tim4rec_recommend(u.user_id, 10, 'bench') FROM bench_users u) x $$) AS bulk_user_par_s \gset
SELECT pg_temp.secs($$ SELECT count(*) FROM (SELECT user_id, tim4rec_seq(item_id, ts) FROM bench_ix GROUP BY user_id) q $$) AS agg_par_s \gset

\pset format unaligned
\pset tuples_only on
SELECT format('| recommend(user, 10) p50, warm backend, index on (user, ts) | %s ms | <= 1 ms | %s |', round(:user_p50::numeric, 3), round(1 / :user_p50::numeric, 2));
SELECT format('| recommend(user, 10) p99 | %s ms | <= 3 ms | %s |', round(:user_p99::numeric, 3), round(3 / :user_p99::numeric, 2));
SELECT format('| recommend(user, 10) mean | %s ms | | |', round(:user_mean::numeric, 3));
\if :have_ids
SELECT format('| recommend(user, 10) p50, bigint ids (interleaved with the text arm below) | %s ms | <= 1 ms | %s |', round(:ids_big_p50::numeric, 3), round(1 / :ids_big_p50::numeric, 2));
SELECT format('| recommend(user, 10) p50, text ids (''u<id>'' users, ''sku-<id>'' items) | %s ms | <= 1 ms | %s |', round(:ids_text_p50::numeric, 3), round(1 / :ids_text_p50::numeric, 2));
SELECT format('| recommend(user, 10) p99, bigint ids / text ids (same loop) | %s / %s ms | <= 3 ms | %s |', round(:ids_big_p99::numeric, 3), round(:ids_text_p99::numeric, 3), round(3 / greatest(:ids_big_p99, :ids_text_p99)::numeric, 2));
\endif
SELECT format('| recommend(seq, 10) p50 (ad-hoc sequence, L <= 200) | %s ms | <= 1 ms | %s |', round(:seq_p50::numeric, 3), round(1 / :seq_p50::numeric, 2));
SELECT format('| recommend(seq, 10) p99 | %s ms | <= 3 ms | %s |', round(:seq_p99::numeric, 3), round(3 / :seq_p99::numeric, 2));
SELECT format('| bulk: all 6,040 users, tim4rec_seq + LATERAL recommend(seq, 10) | %s s | <= 5 s | %s |', round(:bulk_seq_s::numeric, 2), round(5 / :bulk_seq_s::numeric, 2));
SELECT format('| bulk: all 6,040 users, LATERAL recommend(user, 10) | %s s | <= 5 s | %s |', round(:bulk_user_s::numeric, 2), round(5 / :bulk_user_s::numeric, 2));
SELECT format('| bulk: SELECT user_id, tim4rec_recommend(user_id, 10) FROM users (parallel_workers = 2, 2 workers) | %s s | <= 5 s | %s |', round(:bulk_user_par_s::numeric, 2), round(5 / :bulk_user_par_s::numeric, 2));
SELECT format('| tim4rec_seq GROUP BY user over %s rows (serial) | %s M rows/s | >= 2 M rows/s | %s |', :bench_rows,
              round(:bench_rows / :agg_s::numeric / 1e6, 2), round(:bench_rows / :agg_s::numeric / 2e6, 2));
SELECT format('| same, parallel workers allowed | %s M rows/s | | |', round(:bench_rows / :agg_par_s::numeric / 1e6, 2));
SELECT format('| reference: count(item), max(ts) GROUP BY user (serial) | %s M rows/s | | |', round(:bench_rows / :countagg_s::numeric / 1e6, 2));
SELECT format('| reference: count(*) seq scan | %s M rows/s | | |', round(:bench_rows / :scan_s::numeric / 1e6, 2));

DROP TABLE bench_ix, bench_users CASCADE;
DROP TABLE IF EXISTS bench_ix_text;
DELETE FROM tim4rec_models WHERE model_name IN ('bench', 'bench_text');
