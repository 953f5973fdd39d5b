-- Behaviour of tim4rec_recommend on the golden weights (300 items,
-- ids 1..300) pointed at a synthetic interactions table: history read at
-- call time, unknown items skipped, cold start by popularity, exclusions
-- inside the top-k (exactly min(k, eligible) rows), ties by item id, cache
-- invalidation when the catalog changes, permissions, parallel query.
-- Skipped when ../shared/fixtures is absent.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\if :{?fixtures}
\else
\set fixtures /nonexistent
\endif
SELECT (pg_stat_file(:'fixtures' || '/golden_movielens.safetensors', true)).size IS NOT NULL AS have_golden \gset
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'tim4rec_import') AS have_import \gset

BEGIN;
\if :have_golden
SELECT plan(26);

-- interactions: users 1..40 with 20..39 events at distinct times, user 999 with 250
CREATE TABLE ix (user_id int, item_id int, ts timestamptz);
INSERT INTO ix
SELECT u, ((u * 37 + j * 13) % 300) + 1, timestamptz '2020-01-01' + make_interval(secs => u * 100000 + j * 3600)
FROM generate_series(1, 40) u, generate_series(1, 19 + u % 20) j;
INSERT INTO ix
SELECT 999, (j % 250) + 1, timestamptz '2021-01-01' + make_interval(secs => j * 60)
FROM generate_series(0, 249) j;
CREATE INDEX ix_user_ts ON ix (user_id, ts);
ANALYZE ix;

\set g_table ix
\set g_user user_id
\set g_item item_id
\set g_time ts
\ir golden_model.psql
\o /dev/null
-- popularity with ties: item i counted (i % 7) * 10 times
UPDATE tim4rec_models SET item_counts = ARRAY(SELECT ((g % 7) * 10)::bigint FROM generate_series(1, 300) g)
WHERE model_name = 'g';
\o

CREATE FUNCTION seq_of(u int, OUT items bigint[], OUT times timestamptz[]) LANGUAGE sql AS
$$ SELECT array_agg(item_id::bigint ORDER BY ts), array_agg(ts ORDER BY ts) FROM ix WHERE user_id = u $$;
CREATE FUNCTION recs(u int, k int DEFAULT 10, ex_seen boolean DEFAULT true, ex bigint[] DEFAULT NULL)
RETURNS bigint[] LANGUAGE sql AS
$$ SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(u::bigint, k, 'g', ex_seen, ex) $$;
CREATE FUNCTION recs_seq(s_items bigint[], s_times timestamptz[], k int DEFAULT 10, ex_seen boolean DEFAULT true)
RETURNS bigint[] LANGUAGE sql AS
$$ SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(s_items, s_times, k, 'g', ex_seen) $$;

-- 1-3: the user form equals the ad-hoc form on the user's sequence
SELECT is(recs(1), (SELECT recs_seq(items, times) FROM seq_of(1)), 'user 1: same as the ad-hoc sequence');
SELECT is(recs(7, 20, false), (SELECT recs_seq(items, times, 20, false) FROM seq_of(7)),
          'user 7, exclude_seen false: same as the ad-hoc sequence');
SELECT is((SELECT array_agg(score ORDER BY rank) FROM tim4rec_recommend(3, 5, 'g')),
          (SELECT array_agg(r.score ORDER BY rank) FROM seq_of(3) s, tim4rec_recommend(s.items, s.times, 5, 'g') r),
          'user 3: same scores as the ad-hoc sequence');

-- 4-6: interactions added after training count at once; unknown items are skipped
CREATE TEMP TABLE before AS SELECT recs(5) AS r;
INSERT INTO ix VALUES (5, 123, timestamptz '2030-01-01'), (5, 45, timestamptz '2030-01-02');
SELECT isnt(recs(5), (SELECT r FROM before), 'user 5: new interactions change the recommendations');
SELECT is(recs(5), (SELECT recs_seq(items, times) FROM seq_of(5)), 'user 5: they match the new sequence');
CREATE TEMP TABLE before2 AS SELECT recs(5) AS r;
INSERT INTO ix VALUES (5, 99999, timestamptz '2030-02-01'), (5, -4, timestamptz '2030-02-02');
SELECT is(recs(5), (SELECT r FROM before2), 'user 5: items unknown to the model are skipped');

-- 7-10: cold start: the most popular items, ties by item id, score = count
SELECT is(recs(424242), ARRAY(SELECT g::bigint FROM generate_series(1, 300) g ORDER BY g % 7 DESC, g LIMIT 10),
          'unknown user: most popular items, ties by item id');
SELECT is((SELECT array_agg(score ORDER BY rank) FROM tim4rec_recommend(424242, 3, 'g')), ARRAY[60, 60, 60]::real[],
          'cold start: score is the training count');
INSERT INTO ix VALUES (77, 5000, now()), (77, 5001, now());
SELECT is(recs(77, 10, true, ARRAY[6, 13]::bigint[]),
          ARRAY(SELECT g::bigint FROM generate_series(1, 300) g WHERE g NOT IN (6, 13) ORDER BY g % 7 DESC, g LIMIT 10),
          'only unknown items: popularity minus the exclude list');
SELECT is((SELECT array_agg(rank ORDER BY rank) FROM tim4rec_recommend(424242, 4, 'g')), ARRAY[1, 2, 3, 4],
          'ranks start at 1');

-- 11-17: exclusions inside the top-k: exactly min(k, eligible) rows
SELECT is(cardinality(recs(1, 300)),
          300 - (SELECT count(DISTINCT item_id)::int FROM ix WHERE user_id = 1),
          'k = 300, exclude_seen: every unseen item exactly once');
SELECT is((SELECT count(*)::int FROM unnest(recs(1, 300)) i WHERE i IN (SELECT item_id FROM ix WHERE user_id = 1)), 0,
          'no seen item is recommended');
SELECT is(cardinality(recs(1, 1000, false)), 300, 'k above the catalogue: all 300 items');
SELECT is(cardinality(recs(1, 300, false, ARRAY(SELECT g::bigint FROM generate_series(1, 290) g))), 10,
          'exclude 290 of 300: 10 rows');
SELECT is(cardinality(recs(1, 5, false, ARRAY(SELECT g::bigint FROM generate_series(1, 290) g))), 5,
          'exclude 290 of 300, k = 5: 5 rows');
SELECT is(cardinality(recs(999, 300)), 50, 'user with 250 events (> L = 200): all 250 seen items excluded');
SELECT is((SELECT count(*)::int FROM unnest(recs(999, 300)) i WHERE i <= 250), 0,
          'user with 250 events: even items beyond the last 200 are excluded');

-- 18: ties in the model scores are ordered by item id (ranks strictly by (score desc, id))
SELECT is((SELECT count(*)::int FROM (
             SELECT rank, score, item_id, lag(score) OVER w AS ps, lag(item_id) OVER w AS pi
             FROM tim4rec_recommend(2, 300, 'g', false) WINDOW w AS (ORDER BY rank)) s
           WHERE ps IS NOT NULL AND (score > ps OR (score = ps AND item_id < pi))), 0,
          'rows ordered by score descending, then item id');

-- 19-22: cache invalidation: a new current version is seen at once, and its removal too
CREATE TEMP TABLE v1 AS SELECT recs(1) AS r;
UPDATE tim4rec_models SET is_current = false WHERE model_name = 'g';
INSERT INTO tim4rec_models (model_name, version, is_current, source_schema, source_table, user_column,
                            item_column, time_column, config, item_ids, item_counts, weights)
SELECT model_name, version + 1, true, source_schema, source_table, user_column, item_column, time_column, config,
       ARRAY(SELECT (301 - g)::bigint FROM generate_series(1, 300) g), item_counts, weights
FROM tim4rec_models WHERE model_name = 'g' AND version = 1;
SELECT isnt(recs(1), (SELECT r FROM v1), 'after a new version is made current the result changes');
SELECT is(recs(1), (SELECT recs_seq(items, times) FROM seq_of(1)), 'and it is the new version''s result');
DELETE FROM tim4rec_models WHERE model_name = 'g' AND version = 2;
SELECT throws_ok($$ SELECT recs(1) $$, '42704', NULL, 'no current version after the drop: 42704');
UPDATE tim4rec_models SET is_current = true WHERE model_name = 'g' AND version = 1;
SELECT is(recs(1), (SELECT r FROM v1), 'back on version 1: the first result again');

-- 23-24: permissions: the source relation must be readable by the caller
CREATE ROLE t4r_reader_b NOLOGIN;
SELECT tim4rec_grant('g', 't4r_reader_b');
GRANT USAGE ON SCHEMA public TO t4r_reader_b;
SET LOCAL ROLE t4r_reader_b;
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(1, 5, 'g') $$, '42501', NULL,
                 'user form without SELECT on the source relation: 42501');
SELECT is((SELECT count(*)::int FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 5, 'g')), 5,
          'the sequence form needs no access to the source relation, only the usage grant');
RESET ROLE;

-- 25-26: inside a parallel query (forced), the same results
CREATE TEMP TABLE serial_res AS
SELECT u, r.item_id, r.rank FROM generate_series(1, 40) u, LATERAL tim4rec_recommend(u, 5, 'g') r;
CREATE TABLE users_p AS SELECT generate_series(1, 40) AS u;
ANALYZE users_p;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL force_parallel_mode = on;
CREATE TEMP TABLE plan_txt (l text);
DO $$ DECLARE l text; BEGIN
  FOR l IN EXECUTE $q$EXPLAIN SELECT p.u, r.item_id, r.rank FROM users_p p, LATERAL tim4rec_recommend(p.u, 5, 'g') r$q$ LOOP
    INSERT INTO plan_txt VALUES (l); END LOOP; END $$;
SELECT ok((SELECT bool_or(l ~ 'Gather') FROM plan_txt), 'the recommend query gets a parallel plan');
SELECT set_eq($$ SELECT p.u, r.item_id, r.rank FROM users_p p, LATERAL tim4rec_recommend(p.u, 5, 'g') r $$,
              $$ SELECT u, item_id, rank FROM serial_res $$, 'parallel query: same recommendations');

SELECT * FROM finish();
\else
SELECT plan(1);
SELECT skip('golden fixture absent (../shared/fixtures)', 1);
SELECT * FROM finish();
\endif
ROLLBACK;
