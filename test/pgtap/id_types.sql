-- Ids of the common key types (README "Id types"): models
-- trained on tables keyed by text, varchar, uuid, smallint and integer (in
-- mixed combinations) give exactly the recommendations of the same data
-- keyed by bigint.  The keyed tables are built from the bigint table with
-- order-preserving keys (zero-padded text, uuids ending in the padded id),
-- so the vocabulary rows, the user order and hence the trained weights are
-- the same; the expected answers come from the bigint model, mapped through
-- the key expressions in plain SQL.  Also: the sequence forms, exclusions,
-- tim4rec_seq, tim4rec_evaluate, export / import with the types,
-- mismatched types (42804), unsupported column types, NULL ids.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(40);

CREATE TABLE ib AS
SELECT u::bigint AS user_id, ((u * 7 + s * 3) % 40 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 13 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 12 + u % 5) s;
-- the key expressions (order-preserving)
CREATE FUNCTION tk(i bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'sku-' || lpad(i::text, 5, '0') $$;
CREATE FUNCTION uk(i bigint) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid $$;
CREATE FUNCTION tu(u bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'user/' || lpad(u::text, 4, '0') $$;

CREATE TABLE t_text AS SELECT tu(user_id) AS user_id, tk(item_id) AS item_id, ts FROM ib;
CREATE TABLE t_vc_uuid AS SELECT tu(user_id)::varchar(20) AS user_id, uk(item_id) AS item_id, ts FROM ib;
CREATE TABLE t_uuid_int AS SELECT uk(user_id) AS user_id, item_id::int AS item_id, ts FROM ib;
CREATE TABLE t_int2_text AS SELECT user_id::int2 AS user_id, tk(item_id)::varchar AS item_id, ts FROM ib;
CREATE TABLE t_int AS SELECT user_id::int AS user_id, item_id::int2 AS item_id, ts FROM ib;
CREATE INDEX ON t_text (user_id, ts);

CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "seed": 7}');
CREATE TEMP TABLE trained AS
SELECT t.* FROM (VALUES ('ib', 'mb'), ('t_text', 'm_text'), ('t_vc_uuid', 'm_vc_uuid'),
                        ('t_uuid_int', 'm_uuid_int'), ('t_int2_text', 'm_int2_text'), ('t_int', 'm_int')) v(rel, name),
     LATERAL tim4rec_train(v.rel::regclass, v.name, options => (SELECT j FROM o)) t;

-- 1-2: catalog
SELECT is((SELECT count(*)::int FROM trained), 6, 'six models trained');
SELECT results_eq($$ SELECT model_name, user_id_type, item_id_type, n_items FROM tim4rec_model_list ORDER BY model_name $$,
                  $$ VALUES ('m_int', 'integer', 'smallint', 40),
                            ('m_int2_text', 'smallint', 'character varying', 40),
                            ('m_text', 'text', 'text', 40),
                            ('m_uuid_int', 'uuid', 'integer', 40),
                            ('m_vc_uuid', 'character varying', 'uuid', 40),
                            ('mb', 'bigint', 'bigint', 40) $$,
                  'the catalog records the id types of each model');
-- 3: the same training (same validation / test metrics)
SELECT is((SELECT count(DISTINCT (test_ndcg10, valid_ndcg10))::int FROM trained), 1,
          'every keyed model has the validation and test metrics of the bigint model');

-- the bigint model's answers for every user
CREATE TEMP TABLE want AS
SELECT u AS user_id, r.item_id, r.score, r.rank
FROM generate_series(1, 60) u, LATERAL tim4rec_recommend(u::bigint, 8, 'mb') r;

-- 4-7: the user forms, item_id in the item column's type
SELECT set_eq($$ SELECT u.user_id, r.item_id, r.score, r.rank
                 FROM (SELECT DISTINCT user_id FROM ib) u, LATERAL tim4rec_recommend(tu(u.user_id), 8, 'm_text') r $$,
              $$ SELECT user_id, tk(item_id), score, rank FROM want $$,
              'text users and items: tim4rec_recommend(text) gives the bigint model''s items (as text), scores and ranks');
SELECT set_eq($$ SELECT u.user_id, r.item_id, r.score, r.rank
                 FROM (SELECT DISTINCT user_id FROM ib) u,
                      LATERAL tim4rec_recommend(tu(u.user_id)::varchar, NULL::uuid, 8, 'm_vc_uuid') r $$,
              $$ SELECT user_id, uk(item_id), score, rank FROM want $$,
              'varchar users, uuid items: the item_type form returns uuid item ids');
SELECT set_eq($$ SELECT u.user_id, r.item_id, r.score, r.rank
                 FROM (SELECT DISTINCT user_id FROM ib) u, LATERAL tim4rec_recommend(uk(u.user_id), NULL::int, 8, 'm_uuid_int') r $$,
              $$ SELECT user_id, item_id::int, score, rank FROM want $$,
              'uuid users, integer items: integer item ids');
SELECT set_eq($$ SELECT u.user_id, r.item_id, r.score, r.rank
                 FROM (SELECT DISTINCT user_id FROM ib) u, LATERAL tim4rec_recommend(u.user_id::int2, NULL::varchar, 8, 'm_int2_text') r $$,
              $$ SELECT user_id, tk(item_id)::varchar, score, rank FROM want $$,
              'smallint users, varchar items');
-- 8: the bigint form on a model with integer ids of other widths
SELECT set_eq($$ SELECT u.user_id, r.item_id, r.score, r.rank
                 FROM (SELECT DISTINCT user_id FROM ib) u, LATERAL tim4rec_recommend(u.user_id, 8, 'm_int') r $$,
              $$ SELECT * FROM want $$,
              'integer users, smallint items: the bigint form, bigint item ids');

-- 9-12: exclusions of the item type, exclude_seen
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(tu(3), 5, 'm_text', true, ARRAY[tk(30), tk(33)])),
          (SELECT array_agg(tk(item_id) ORDER BY rank) FROM tim4rec_recommend(3::bigint, 5, 'mb', true, ARRAY[30, 33]::bigint[])),
          'text exclusions');
SELECT is((SELECT array_agg(item_id ORDER BY rank)
           FROM tim4rec_recommend(tu(3)::varchar, NULL::uuid, 5, 'm_vc_uuid', false, ARRAY[uk(30), uk(1), uk(999)])),
          (SELECT array_agg(uk(item_id) ORDER BY rank) FROM tim4rec_recommend(3::bigint, 5, 'mb', false, ARRAY[30, 1, 999]::bigint[])),
          'uuid exclusions (an unknown id is ignored), exclude_seen off');
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(tu(3), 100, 'm_text')),
          (SELECT array_agg(tk(item_id) ORDER BY rank) FROM tim4rec_recommend(3::bigint, 100, 'mb')),
          'exclude_seen: all the text-keyed user''s history is excluded');
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend('user/9999'::text, 5, 'm_text')),
          (SELECT array_agg(tk(item_id) ORDER BY rank) FROM tim4rec_recommend(9999::bigint, 5, 'mb')),
          'a user without history gets the most popular items (text ids)');

-- 13-16: the sequence forms
CREATE TEMP TABLE sq AS
SELECT ARRAY[3, 17, 3, 25, 999]::bigint[] AS items, ARRAY[10, 20, 30, 40, 50]::float8[] AS times;
SELECT is((SELECT array_agg(row(item_id, score, rank)::text ORDER BY rank)
           FROM sq, tim4rec_recommend(ARRAY(SELECT tk(i) FROM unnest(sq.items) WITH ORDINALITY x(i, n) ORDER BY n), sq.times, 6, 'm_text')),
          (SELECT array_agg(row(tk(item_id), score, rank)::text ORDER BY rank) FROM sq, tim4rec_recommend(sq.items, sq.times, 6, 'mb')),
          'text[] items with float8 times (an unknown item skipped)');
SELECT is((SELECT array_agg(row(item_id, score, rank)::text ORDER BY rank)
           FROM sq, tim4rec_recommend(ARRAY(SELECT uk(i) FROM unnest(sq.items) WITH ORDINALITY x(i, n) ORDER BY n),
                                      ARRAY(SELECT to_timestamp(t) FROM unnest(sq.times) WITH ORDINALITY x(t, n) ORDER BY n),
                                      6, 'm_vc_uuid', false, ARRAY[uk(17)])),
          (SELECT array_agg(row(uk(item_id), score, rank)::text ORDER BY rank)
           FROM sq, tim4rec_recommend(sq.items, sq.times, 6, 'mb', false, ARRAY[17]::bigint[])),
          'uuid[] items with timestamptz times and uuid exclusions');
SELECT is((SELECT array_agg(row(item_id, score, rank)::text ORDER BY rank)
           FROM (SELECT tim4rec_seq(item_id, ts, 20) AS s FROM t_text WHERE user_id = tu(7)) q,
                tim4rec_recommend(q.s, 6, 'm_text')),
          (SELECT array_agg(row(tk(item_id), score, rank)::text ORDER BY rank) FROM tim4rec_recommend(7::bigint, 6, 'mb')),
          'tim4rec_seq over text items and tim4rec_recommend(tim4rec_sequence_text) equal the user form');
SELECT is((SELECT array_agg(row(item_id, score, rank)::text ORDER BY rank)
           FROM (SELECT tim4rec_seq(item_id, ts) AS s FROM t_vc_uuid WHERE user_id = tu(7)) q,
                tim4rec_recommend(q.s, 6, 'm_vc_uuid')),
          (SELECT array_agg(row(uk(item_id), score, rank)::text ORDER BY rank) FROM tim4rec_recommend(7::bigint, 6, 'mb')),
          'tim4rec_seq over uuid items and tim4rec_recommend(tim4rec_sequence_uuid)');

-- 17-18: evaluation
SELECT set_eq($$ SELECT model, split, metric, k, value FROM tim4rec_evaluate('m_text', '{5,10}') $$,
              $$ SELECT model, split, metric, k, value FROM tim4rec_evaluate('mb', '{5,10}') $$,
              'tim4rec_evaluate on text ids equals the bigint model''s evaluation');
SELECT set_eq($$ SELECT model, split, metric, k, value FROM tim4rec_evaluate('m_uuid_int', '{10}') $$,
              $$ SELECT model, split, metric, k, value FROM tim4rec_evaluate('mb', '{10}') $$,
              'and on uuid users with integer items');

-- 19-23: mismatched types: 42804 with the model's types in the hint
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(uk(1), 5, 'm_text') $$, '42804',
                 'user_id has type uuid but model "m_text" has user ids of type text',
                 'a uuid user for a text-keyed model');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(1::bigint, 5, 'm_text') $$, '42804', NULL,
                 'a bigint user for a text-keyed model');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 5, 'm_text') $$, '42804', NULL,
                 'bigint items for a text-keyed model');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(tu(1)::varchar, NULL::text, 5, 'm_vc_uuid') $$,
                 '42804', 'item_id (the result column) has type text but model "m_vc_uuid" has item ids of type uuid',
                 'a text result for a model with uuid items');
\ir err_hint.psql
SELECT matches(pg_temp.err_hint($$ SELECT * FROM tim4rec_recommend(uk(1), 5, 'm_vc_uuid') $$),
               'user ids of type character varying and item ids of type uuid',
               'the hint names the model''s id types');

-- 24-27: unsupported id column types, nothing written
CREATE TABLE t_bad AS SELECT user_id::numeric AS u_num, item_id::float8 AS i_f8, to_jsonb(item_id) AS i_json,
                             ARRAY[item_id] AS i_arr, user_id, item_id, ts FROM ib;
SELECT throws_ok($$ SELECT tim4rec_train('t_bad', 'bad', user_column => 'u_num') $$, '42804',
                 'user column "u_num" has unsupported type numeric', 'numeric user column');
SELECT throws_ok($$ SELECT tim4rec_train('t_bad', 'bad', item_column => 'i_f8') $$, '42804',
                 'item column "i_f8" has unsupported type double precision', 'float item column');
SELECT matches(pg_temp.err_hint($$ SELECT tim4rec_train('t_bad', 'bad', item_column => 'i_json') $$),
               'smallint, integer, bigint, text, varchar or uuid', 'jsonb item column: the hint names the supported types');
SELECT throws_ok($$ SELECT tim4rec_train('t_bad', 'bad', item_column => 'i_arr') $$, '42804', NULL, 'array item column');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'bad'), 0, 'nothing was written');

-- 28-29: NULL ids are skipped
CREATE TABLE t_nulls AS SELECT * FROM t_text UNION ALL SELECT NULL, tk(1), now() UNION ALL SELECT tu(1), NULL, now();
SELECT is((SELECT interactions::int FROM tim4rec_train('t_nulls', 'm_nulls', options => (SELECT j FROM o))),
          (SELECT count(*)::int FROM ib), 'rows with a NULL text id are skipped');
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(tu(3), 5, 'm_nulls')),
          (SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(tu(3), 5, 'm_text')),
          'and the model is the one without them');

-- 30-34: export / import keep the ids and their types
SELECT is(tim4rec_import('m_text_copy', tim4rec_export('m_text')), 1, 'a text-keyed export imports');
SELECT results_eq($$ SELECT user_id_type, item_id_type FROM tim4rec_model_list WHERE model_name = 'm_text_copy' $$,
                  $$ VALUES ('text', 'text') $$, 'the id types come back from the file''s metadata');
SELECT is(tim4rec_item_keys('m_text_copy'), (SELECT array_agg(tk(i) ORDER BY tk(i)) FROM generate_series(1, 40) i),
          'the text vocabulary comes back');
SELECT is(tim4rec_import('m_uuid_copy', tim4rec_export('m_vc_uuid')), 1, 'a uuid-keyed export imports');
SELECT is((SELECT array_agg(row(item_id, score, rank)::text ORDER BY rank)
           FROM sq, tim4rec_recommend(ARRAY(SELECT uk(i) FROM unnest(sq.items) WITH ORDINALITY x(i, n) ORDER BY n), sq.times, 6, 'm_uuid_copy')),
          (SELECT array_agg(row(uk(item_id), score, rank)::text ORDER BY rank) FROM sq, tim4rec_recommend(sq.items, sq.times, 6, 'mb')),
          'the imported uuid model recommends uuid items like the bigint model');
-- 35-37
SELECT throws_ok($$ SELECT tim4rec_item_ids('m_text') $$, '42804', NULL, 'tim4rec_item_ids on text ids points to tim4rec_item_keys');
SELECT is(tim4rec_item_keys('mb'), (SELECT array_agg(i::text ORDER BY i) FROM generate_series(1, 40) i),
          'tim4rec_item_keys on bigint ids');

-- 38-40: tim4rec_seq over keys: ties in byte order, parallel aggregation
SELECT is((SELECT (tim4rec_seq(i, 1.0::float8)).items FROM unnest(ARRAY['b', 'a', 'sku-10', 'B', 'sku-9']) i),
          ARRAY['B', 'a', 'b', 'sku-10', 'sku-9'], 'equal times: text items in byte order');
CREATE TABLE big_t AS
SELECT 'u' || (g % 50) AS user_id, 'sku-' || (g * 7 % 300) AS item_id, (g % 977)::float8 AS ts, uk(g * 13 % 999) AS iu
FROM generate_series(1, 100000) g;
ANALYZE big_t;
CREATE TEMP TABLE serial_r AS SELECT user_id, tim4rec_seq(item_id, ts, 50) s, tim4rec_seq(iu, ts) su FROM big_t GROUP BY user_id;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL enable_hashagg = off;
CREATE FUNCTION plan_text(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r record; t text := '';
BEGIN
  FOR r IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP t := t || r."QUERY PLAN" || E'\n'; END LOOP;
  RETURN t;
END $f$;
SELECT matches(plan_text('SELECT user_id, tim4rec_seq(item_id, ts, 50) s, tim4rec_seq(iu, ts) su FROM big_t GROUP BY user_id'),
               'Partial GroupAggregate.*Workers Launched: [1-9]|Workers Launched: [1-9].*Partial GroupAggregate',
               'the text / uuid aggregate runs in parallel workers (partial aggregates, serialised states)');
CREATE TEMP TABLE big_t_par AS SELECT user_id, tim4rec_seq(item_id, ts, 50) s, tim4rec_seq(iu, ts) su FROM big_t GROUP BY user_id;
SELECT set_eq($$ SELECT user_id, s::text, su::text FROM big_t_par $$,
              $$ SELECT user_id, s::text, su::text FROM serial_r $$,
              'parallel aggregation over text and uuid items equals the serial one');

SELECT * FROM finish();
ROLLBACK;
