-- tim4rec_seq: the time-ordered sequence of a group
SET timezone = 'UTC';
SET extra_float_digits = 0;
CREATE TABLE seq_ix (user_id int, item_id bigint, ts timestamptz);
-- user 1: out of order; user 2: equal times (ordered by item id whatever the
-- input order); user 3: NULL item / time rows are skipped
INSERT INTO seq_ix VALUES
  (1, 30, '2020-01-03 00:00:00+00'), (1, 10, '2020-01-01 00:00:00+00'), (1, 20, '2020-01-02 00:00:00+00'),
  (2, 9, '2020-01-05 00:00:00+00'), (2, 7, '2020-01-05 00:00:00+00'), (2, 8, '2020-01-04 00:00:00+00'),
  (2, 5, '2020-01-05 00:00:00+00'),
  (3, NULL, '2020-01-01 00:00:00+00'), (3, 4, NULL), (3, 6, '2020-01-09 00:00:00+00');
SELECT user_id, (s).items, (s).times
FROM (SELECT user_id, tim4rec_seq(item_id, ts) AS s FROM seq_ix GROUP BY user_id) q
ORDER BY user_id;
-- the same whatever the physical order
SELECT user_id, (tim4rec_seq(item_id, ts)).items
FROM (SELECT * FROM seq_ix ORDER BY item_id DESC) q GROUP BY user_id ORDER BY user_id;
-- max_len keeps the most recent events
SELECT user_id, (tim4rec_seq(item_id, ts, 2)).items AS last2
FROM seq_ix GROUP BY user_id ORDER BY user_id;
-- every time type: epoch seconds
SELECT (tim4rec_seq(i, t::timestamp)).times AS ts_timestamp,
       (tim4rec_seq(i, t::date)).times AS ts_date,
       (tim4rec_seq(i, extract(epoch FROM t)::bigint)).times AS ts_bigint,
       (tim4rec_seq(i, extract(epoch FROM t)::int)).times AS ts_int,
       (tim4rec_seq(i, extract(epoch FROM t)::float8 + 0.5)).times AS ts_float8,
       (tim4rec_seq(i, extract(epoch FROM t)::numeric)).times AS ts_numeric,
       (tim4rec_seq(i, (extract(epoch FROM t)::bigint % 1000)::smallint)).items AS ts_smallint_items
FROM (VALUES (1::bigint, timestamptz '2020-01-01 00:00:00+00'), (2, timestamptz '1999-12-31 00:00:00+00')) v(i, t);
-- int items are accepted (implicit cast to bigint)
SELECT tim4rec_seq(x::int, x) FROM generate_series(3, 1, -1) x;
-- no rows: an empty sequence
SELECT tim4rec_seq(item_id, ts) FROM seq_ix WHERE false;
SELECT (tim4rec_seq(item_id, ts, 5)).items FROM seq_ix WHERE false;
-- a max_len far above the group size costs nothing (the state grows as rows
-- arrive, it is not sized from max_len): the maximum, 1000000, returns every
-- event; so does a NULL max_len
SELECT user_id, (tim4rec_seq(item_id, ts, 1000000)).items AS max_allowed,
       (tim4rec_seq(item_id, ts, NULL)).items AS null_max_len
FROM seq_ix GROUP BY user_id ORDER BY user_id;
-- ... also in many groups at once: hash aggregation keeps every state alive,
-- and 2000 groups of 3 rows with max_len 1000000 fit in work_mem in one batch
-- (a state sized from max_len would take 32 MB per group and spill)
SET work_mem = '64MB';
SET enable_sort = off;
CREATE FUNCTION seq_hashagg(q text, OUT batches int, OUT peak_kb int) LANGUAGE plpgsql AS $$
DECLARE p jsonb; n jsonb; BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) ' || q INTO p;
  n := jsonb_path_query_first(p, 'strict $.**?(@."Strategy" == "Hashed")');
  batches := (n->>'HashAgg Batches')::int;
  peak_kb := (n->>'Peak Memory Usage')::int;
END $$;
SELECT batches, peak_kb < 16384 AS under_16mb
FROM seq_hashagg('SELECT g % 2000, tim4rec_seq(g, g, 1000000) FROM generate_series(1, 6000) g GROUP BY 1');
SELECT count(*) AS groups, sum(cardinality((s).items)) AS events
FROM (SELECT g % 2000 AS grp, tim4rec_seq(g, g, 1000000) AS s
      FROM generate_series(1, 6000) g GROUP BY 1) q;
RESET work_mem;
RESET enable_sort;
-- errors: max_len outside 1..1000000 is invalid_parameter_value (22023)
SELECT tim4rec_seq(item_id, ts, 0) FROM seq_ix;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tim4rec_seq(item_id, ts, -3) FROM seq_ix;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tim4rec_seq(item_id, ts, -1) FROM seq_ix;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tim4rec_seq(item_id, ts, 1000001) FROM seq_ix;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tim4rec_seq(item_id, ts, 2147483647) FROM seq_ix;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tim4rec_seq(item_id, extract(epoch FROM ts)::bigint, 2147483647) FROM seq_ix WHERE user_id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tim4rec_seq(item_id, 'infinity'::float8) FROM seq_ix;
SELECT tim4rec_seq(item_id, 'x'::text) FROM seq_ix;
-- a large group with max_len stays bounded and keeps the last max_len events
SELECT cardinality((s).items), (s).items[1], (s).items[5], (s).times[5]
FROM (SELECT tim4rec_seq(g, g::float8, 5) AS s FROM generate_series(1, 100000) g) q;
-- ... whatever the input order and max_len: exactly the most recent max_len
-- events, oldest first (100,000 rows in descending time order)
SELECT m, cardinality((s).items) AS n,
       (s).items = ARRAY(SELECT x::bigint FROM generate_series(100001 - m, 100000) x) AS last_m_items,
       (s).times = ARRAY(SELECT x::float8 FROM generate_series(100001 - m, 100000) x) AS last_m_times
FROM (VALUES (1), (7), (16), (17), (1000), (65537)) v(m),
     LATERAL (SELECT tim4rec_seq(g, g, m) AS s FROM generate_series(100000, 1, -1) g) q
ORDER BY m;
-- ... and with equal times the largest item ids win the last places
SELECT (tim4rec_seq(g % 1000, g / 1000, 3)).items AS last3
FROM generate_series(1, 99999) g;
-- parallel aggregation gives the same result as the serial one
CREATE TABLE seq_big AS
SELECT (g % 500) AS user_id, ((g * 7919) % 1000)::bigint AS item_id, (g / 3)::float8 AS ts
FROM generate_series(1, 60000) g;
ANALYZE seq_big;
CREATE TABLE seq_serial AS
SELECT user_id, tim4rec_seq(item_id, ts) AS s, tim4rec_seq(item_id, ts, 7) AS s7 FROM seq_big GROUP BY user_id;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET enable_hashagg = off;
CREATE FUNCTION seq_plan_has(pat text, q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE l text; BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF l ~ pat THEN RETURN true; END IF;
  END LOOP;
  RETURN false;
END $$;
SELECT seq_plan_has('Partial', 'SELECT user_id, tim4rec_seq(item_id, ts) FROM seq_big GROUP BY user_id') AS partial_plan;
SELECT count(*) AS differing_groups
FROM (SELECT user_id, tim4rec_seq(item_id, ts) AS s, tim4rec_seq(item_id, ts, 7) AS s7,
             tim4rec_seq(item_id, ts, 1000000) AS sm FROM seq_big GROUP BY user_id) p
FULL JOIN seq_serial s USING (user_id)
WHERE p.s IS DISTINCT FROM s.s OR p.s7 IS DISTINCT FROM s.s7 OR p.sm IS DISTINCT FROM s.s;
RESET ALL;
