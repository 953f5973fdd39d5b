-- Non-finite models: times that are finite in double
-- precision but too large for the model's single-precision time features
-- (and NaN / Infinity times) are rejected with 22003 when training reads
-- them and when recommend gets them; a training that diverges fails with
-- 22003; a safetensors file with a NaN or infinite weight is rejected with
-- 22P03.  Nothing is stored by a failure and the good current version stays
-- current.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(32);

-- 'SQLSTATE: message / hint' of the error a statement raises
CREATE FUNCTION pg_temp.err_of(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    s text;
    m text;
    h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, h = PG_EXCEPTION_HINT;
    RETURN s || ': ' || m || ' / ' || coalesce(h, '');
END
$f$;

-- float8 epoch seconds
CREATE TABLE nf AS
SELECT u::bigint AS user_id, ((u * 3 + s) % 40 + 1)::bigint AS item_id,
       (1000000 + (u * 11 + s) * 3600)::float8 AS ts
FROM generate_series(1, 80) u, generate_series(1, 12) s;
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');

SELECT is((SELECT version FROM tim4rec_train('nf', 'm', options => (SELECT j FROM o))), 1,
          'a good model is trained (version 1)');
CREATE TEMP TABLE snap AS SELECT model_name, version, is_current, md5(weights) AS w FROM tim4rec_models;
CREATE TEMP TABLE good AS SELECT array_agg(item_id ORDER BY rank) AS items, array_agg(score ORDER BY rank) AS scores
FROM tim4rec_recommend(ARRAY[4, 7, 10]::bigint[], ARRAY[1000000, 1003600, 1007200]::float8[], 5, 'm');

-- ---- training reads an out-of-range time ----
CREATE TABLE nf_big AS SELECT * FROM nf;
UPDATE nf_big SET ts = 1e38 WHERE user_id = 5 AND ts = (SELECT min(ts) FROM nf WHERE user_id = 5);
SELECT throws_ok(format($$ SELECT tim4rec_train('nf_big', 'm', options => %L) $$, (SELECT j FROM o)),
                 '22003', NULL, 'training on a time of 1e38 (finite in float8, too large for float4 features) fails with 22003');
SELECT matches(pg_temp.err_of(format($$ SELECT tim4rec_train('nf_big', 'm', options => %L) $$, (SELECT j FROM o))),
               '^22003: time column "ts" holds a value out of range: 1e\+38 / .*row',
               'the error names the time column and the value, with a hint');
UPDATE nf_big SET ts = 'NaN' WHERE ts = 1e38;
SELECT throws_ok(format($$ SELECT tim4rec_train('nf_big', 'm', options => %L) $$, (SELECT j FROM o)),
                 '22003', NULL, 'training on a NaN time fails with 22003');
UPDATE nf_big SET ts = 'Infinity' WHERE ts = 'NaN';
SELECT throws_ok(format($$ SELECT tim4rec_train('nf_big', 'm', options => %L) $$, (SELECT j FROM o)),
                 '22003', NULL, 'training on an Infinity time fails with 22003');
UPDATE nf_big SET ts = '-Infinity' WHERE ts = 'Infinity';
SELECT throws_ok(format($$ SELECT tim4rec_train('nf_big', 'm', options => %L) $$, (SELECT j FROM o)),
                 '22003', NULL, 'training on a -Infinity time fails with 22003');
-- numeric times: 1e19 is above the bound (2^63)
CREATE TABLE nf_num AS SELECT user_id, item_id, ts::numeric AS ts FROM nf;
UPDATE nf_num SET ts = 1e19 WHERE user_id = 9 AND ts = (SELECT max(ts) FROM nf WHERE user_id = 9);
SELECT throws_ok(format($$ SELECT tim4rec_train('nf_num', 'm', options => %L) $$, (SELECT j FROM o)),
                 '22003', NULL, 'training on a numeric time of 1e19 fails with 22003');
SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'no version was stored by the failed trainings; version 1 is still current');

-- every bigint is a usable time: a bigint column with values near 2^63 trains
CREATE TABLE nf_edge AS
SELECT user_id, item_id,
       CASE WHEN ts = (SELECT max(ts) FROM nf) THEN 9223372036854775807
            WHEN ts = (SELECT min(ts) FROM nf) THEN -9223372036854775808
            ELSE ts::bigint END AS ts
FROM nf;
SELECT is((SELECT version FROM tim4rec_train('nf_edge', 'edge', options => (SELECT j FROM o))), 1,
          'times of -2^63 and 2^63 - 1 in a bigint column train');
SELECT ok((SELECT bool_and(score::float8 NOT IN ('NaN', 'Infinity', '-Infinity')) AND count(*) = 5
           FROM tim4rec_recommend(ARRAY[4, 7]::bigint[], ARRAY[-9.2e18, 9.2e18]::float8[], 5, 'edge')),
          'and score times of +-9.2e18 to 5 finite scores');
SELECT is(tim4rec_drop('edge'), 1, 'drop the edge model');

-- ---- a training that diverges ----
SELECT throws_ok(format($$ SELECT tim4rec_train('nf', 'm', options => %L) $$,
                        (SELECT j || '{"learning_rate": 10, "epochs": 5}' FROM o)),
                 '22003', NULL, 'a training whose loss becomes NaN (learning_rate 10) fails with 22003');
SELECT matches(pg_temp.err_of(format($$ SELECT tim4rec_train('nf', 'm', options => %L) $$,
                                     (SELECT j || '{"learning_rate": 10, "epochs": 5}' FROM o))),
               '^22003: training failed: training diverged: .* / Nothing was stored\. Lower learning_rate',
               'the error says the training diverged and hints at the learning rate');
SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'the diverged training stored nothing; version 1 is still current');

-- ---- recommend with explicit times ----
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[4, 7]::bigint[], ARRAY[1000000, 1e300]::float8[], 5, 'm') $$,
                 '22003', NULL, 'recommend with a float8 time of 1e300 fails with 22003');
SELECT matches(pg_temp.err_of($$ SELECT * FROM tim4rec_recommend(ARRAY[4, 7]::bigint[], ARRAY[1000000, 1e300]::float8[], 5, 'm') $$),
               '^22003: times element 2 is out of range: 1e\+300 / .',
               'the error names the element of times and the value, with a hint');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[4, 7]::bigint[], ARRAY['NaN', 1000000]::float8[], 5, 'm') $$,
                 '22003', NULL, 'recommend with a NaN time fails with 22003');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[4, 7]::bigint[], ARRAY[1000000, 'Infinity']::float8[], 5, 'm') $$,
                 '22003', NULL, 'recommend with an Infinity time fails with 22003');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[4, 7]::bigint[], ARRAY[1000000, 1e38]::float8[], 5, 'm') $$,
                 '22003', NULL, 'recommend with a time of 1e38 fails with 22003');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ROW(ARRAY[4, 7]::bigint[], ARRAY[1000000, 1e300]::float8[])::tim4rec_sequence, 5, 'm') $$,
                 '22003', NULL, 'recommend with a tim4rec_sequence holding a time of 1e300 fails with 22003');
SELECT throws_ok($$ SELECT tim4rec_seq(i, t) FROM (VALUES (4::bigint, 1e300::float8)) v(i, t) $$,
                 '22003', NULL, 'tim4rec_seq rejects a time of 1e300 with 22003');
-- the user's history in the source table holds such a time
INSERT INTO nf VALUES (3, 7, 1e300);
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(3::bigint, 5, 'm') $$,
                 '22003', NULL, 'recommend for a user whose history holds a time of 1e300 fails with 22003');
DELETE FROM nf WHERE ts = 1e300;
SELECT is((SELECT array_agg(score ORDER BY rank)
           FROM tim4rec_recommend(ARRAY[4, 7, 10]::bigint[], ARRAY[1000000, 1003600, 1007200]::float8[], 5, 'm')),
          (SELECT scores FROM good), 'recommend with good times gives the same scores as before the failures');

-- ---- import of a file with a NaN or infinite weight ----
CREATE TEMP TABLE hdr AS
SELECT b, 8 + hlen AS data0, convert_from(substring(b FROM 9 FOR hlen), 'UTF8')::jsonb AS h
FROM (SELECT b, get_byte(b, 0) + 256 * get_byte(b, 1) + 65536 * get_byte(b, 2) AS hlen
      FROM (SELECT tim4rec_export('m') AS b) e) s;
-- the bytes of element k of tensor t replaced by the little-endian float p
CREATE FUNCTION pg_temp.poison(t text, k int, p bytea) RETURNS bytea LANGUAGE sql AS $f$
    SELECT overlay(b PLACING p FROM data0 + (h->t->'data_offsets'->>0)::int + 4 * k + 1 FOR 4) FROM hdr
$f$;
SELECT is(get_byte(b, 3) + get_byte(b, 4) + get_byte(b, 5) + get_byte(b, 6) + get_byte(b, 7), 0,
          'the export has a small header (length in the first 3 bytes)') FROM hdr;
SELECT lives_ok($$ SELECT tim4rec_import('imp_ok', b) FROM hdr $$, 'the unmodified export imports');
SELECT throws_ok($$ SELECT tim4rec_import('imp', pg_temp.poison('ssd_layers.1.ffn.fc1.weight', 5, '\x0000c07f')) $$,
                 '22P03', NULL, 'importing a file with a NaN weight fails with 22P03');
SELECT matches(pg_temp.err_of($$ SELECT tim4rec_import('imp', pg_temp.poison('ssd_layers.1.ffn.fc1.weight', 5, '\x0000c07f')) $$),
               '^22P03: invalid model file: tensor ssd_layers\.1\.ffn\.fc1\.weight: element 5 is NaN',
               'the error names the tensor and the element');
SELECT throws_ok($$ SELECT tim4rec_import('imp', pg_temp.poison('item_embedding.weight', 0, '\x0000807f')) $$,
                 '22P03', NULL, 'importing a file with a +Infinity weight fails with 22P03');
SELECT throws_ok($$ SELECT tim4rec_import('m', pg_temp.poison('in_layer_norm.bias', 0, '\x000080ff')) $$,
                 '22P03', NULL, 'importing a -Infinity weight as a new version of m fails with 22P03');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'imp'), 0, 'no model imp was stored');
SELECT is(tim4rec_drop('imp_ok'), 1, 'drop imp_ok');

SELECT set_eq($$ SELECT model_name, version, is_current, md5(weights) FROM tim4rec_models $$,
              $$ SELECT * FROM snap $$, 'after every failure version 1 of m is the only version and current');

SELECT * FROM finish();
ROLLBACK;
