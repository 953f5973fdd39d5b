-- The per-backend model cache, two hazards.
-- 1. a drop and re-import under the same name inside one transaction
--    repeats the version number and the row's xmin; the cache must still
--    serve the new row.
-- 2. re-entrancy: a source view whose function drops a version and calls
--    recommend on the same model while an outer recommend / evaluate of
--    that model is reading the view; the outer call must finish with the
--    model it started with (it is pinned), not with freed memory, zero rows
--    or another version.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(9);

CREATE TABLE tp AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 15) s;
CREATE TEMP TABLE o(seed int, j jsonb);
INSERT INTO o SELECT s, ('{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": ' || s || '}')::jsonb
FROM generate_series(1, 3) s;
CREATE FUNCTION recs(m text) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(item_id::text || ':' || round(score::numeric, 4), ',' ORDER BY rank)
  FROM tim4rec_recommend(ARRAY[1, 2, 3]::bigint[], ARRAY[1, 2, 3]::float8[], 10, m) $$;

-- ---- 6: same version number and xmin, different rows ----
SELECT tim4rec_train('tp', 'a', options => (SELECT j FROM o WHERE seed = 1));
SELECT tim4rec_train('tp', 'b', options => (SELECT j FROM o WHERE seed = 2));
CREATE TEMP TABLE expect AS SELECT recs('a') AS ra, recs('b') AS rb;
SELECT isnt((SELECT ra FROM expect), (SELECT rb FROM expect), 'the two models recommend differently');
SELECT is(tim4rec_import('z', tim4rec_export('a'), tim4rec_item_ids('a')), 1, 'import A as z version 1');
SELECT is(recs('z'), (SELECT ra FROM expect), 'z serves A');
SELECT tim4rec_drop('z');
SELECT is(tim4rec_import('z', tim4rec_export('b'), tim4rec_item_ids('b')), 1,
          'drop and import B as z: version 1 again, in the same transaction');
SELECT is(recs('z'), (SELECT rb FROM expect), 'z now serves B, not the cached A');

-- ---- 7: a nested call drops the version an outer call is using ----
CREATE TEMP TABLE arm(armed bool);
INSERT INTO arm VALUES (false);
CREATE FUNCTION hook() RETURNS bool LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF (SELECT armed FROM arm) THEN
    UPDATE arm SET armed = false;
    PERFORM tim4rec_drop('r', (SELECT max(version) FROM tim4rec_model_list WHERE model_name = 'r'));
    PERFORM count(*) FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[1]::float8[], 3, 'r');
  END IF;
  RETURN true;
END $$;
CREATE VIEW rv AS SELECT user_id, item_id, ts FROM tp WHERE hook();
SELECT tim4rec_train('rv', 'r', options => j) FROM o ORDER BY seed;

-- evaluate: version 3 is current; the view's function drops it mid-read
CREATE TEMP TABLE ev3 AS SELECT * FROM tim4rec_evaluate('r');
UPDATE arm SET armed = true;
CREATE TEMP TABLE ev_nested AS SELECT * FROM tim4rec_evaluate('r');
SELECT is((SELECT armed FROM arm), false, 'the nested drop ran during evaluate');
SELECT set_eq($$ SELECT * FROM ev_nested $$, $$ SELECT * FROM ev3 $$,
              'evaluate finished with the version it started with (3)');

-- recommend: version 2 is current now; the view's function drops it mid-read
CREATE TEMP TABLE rec2 AS SELECT * FROM tim4rec_recommend(5::bigint, 10, 'r');
UPDATE arm SET armed = true;
CREATE TEMP TABLE rec_nested AS SELECT * FROM tim4rec_recommend(5::bigint, 10, 'r');
SELECT is((SELECT armed FROM arm), false, 'the nested drop ran during recommend');
SELECT results_eq($$ SELECT item_id, score, rank FROM rec_nested ORDER BY rank $$,
                  $$ SELECT item_id, score, rank FROM rec2 ORDER BY rank $$,
                  'recommend returned version 2''s full result, not zero rows or version 1''s');

SELECT * FROM finish();
ROLLBACK;
