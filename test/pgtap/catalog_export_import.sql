-- Export then import gives identical scores; the golden file imports with
-- config NULL; the exported bytes are a valid safetensors file.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\if :{?fixtures}
\else
\set fixtures /nonexistent
\endif
SELECT (pg_stat_file(:'fixtures' || '/golden_movielens.safetensors', true)).size IS NOT NULL AS have_golden \gset
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(15);

CREATE TABLE te AS
SELECT u AS user_id, ((u * 5 + s * 2) % 50 + 1000)::int AS item_id,
       timestamptz '2024-01-01' + (u * 17 + s) * interval '1 hour' AS ts
FROM generate_series(1, 100) u, generate_series(1, 14) s;
SELECT is((SELECT version FROM tim4rec_train('te', 'src', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}')),
          1, 'trained');

-- the safetensors layout: u64 little-endian header length, JSON header, data
CREATE TEMP TABLE f AS SELECT tim4rec_export('src') AS b;
CREATE TEMP TABLE h AS
SELECT convert_from(substr(b, 9, n), 'UTF8')::jsonb AS j, n, length(b) AS total FROM f,
LATERAL (SELECT get_byte(b, 0) + get_byte(b, 1) * 256 + get_byte(b, 2) * 65536 + get_byte(b, 3) * 16777216 AS n) x;
SELECT is((SELECT j->'__metadata__'->>'format' FROM h), 'tim4rec', 'metadata format');
SELECT is((SELECT (j->'__metadata__'->>'config')::jsonb->>'hidden_size' FROM h), '16', 'metadata config');
SELECT is((SELECT j->'item_embedding.weight'->'shape' FROM h), '[51, 16]'::jsonb, 'item embedding shape [V, d]');
SELECT is((SELECT bool_and(v->>'dtype' = 'F32') FROM h, jsonb_each(j) e(k, v) WHERE k <> '__metadata__'), true, 'every tensor is F32');
SELECT is((SELECT max((v->'data_offsets'->>1)::bigint) + 8 + n FROM h, jsonb_each(j) e(k, v) WHERE k <> '__metadata__' GROUP BY n),
          (SELECT total::bigint FROM h), 'data offsets cover the file exactly');

-- import with the vocabulary: identical scores for every user and for a session
SELECT is(tim4rec_import('dst', (SELECT b FROM f), (SELECT item_ids FROM tim4rec_models WHERE model_name = 'src')), 1, 'imported');
SELECT is((SELECT count(*)::int FROM generate_series(1, 100) u,
           LATERAL (SELECT array_agg(item_id ORDER BY rank) i, array_agg(score ORDER BY rank) s
                    FROM tim4rec_recommend(ARRAY(SELECT item_id::bigint FROM te WHERE user_id = u ORDER BY ts),
                                           ARRAY(SELECT extract(epoch FROM ts)::float8 FROM te WHERE user_id = u ORDER BY ts),
                                           50, 'src', false)) a,
           LATERAL (SELECT array_agg(item_id ORDER BY rank) i, array_agg(score ORDER BY rank) s
                    FROM tim4rec_recommend(ARRAY(SELECT item_id::bigint FROM te WHERE user_id = u ORDER BY ts),
                                           ARRAY(SELECT extract(epoch FROM ts)::float8 FROM te WHERE user_id = u ORDER BY ts),
                                           50, 'dst', false)) b
           WHERE a.i = b.i AND a.s = b.s), 100, 'identical items and scores for 100 sequences');
SELECT is(tim4rec_export('dst'), (SELECT b FROM f), 'exporting the imported model gives the same bytes');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(5::bigint, 5, 'dst') $$, '55000', NULL,
                 'an imported model has no source relation for user-based recommend');

-- the golden file with config NULL
\if :have_golden
SELECT is(tim4rec_import('golden', pg_read_binary_file(:'fixtures' || '/golden_movielens.safetensors')), 1, 'golden file imports with config NULL');
SELECT is((SELECT n_items FROM tim4rec_model_list WHERE model_name = 'golden'), 300, 'golden vocabulary: 300 items');
SELECT is((SELECT count(*)::int FROM tim4rec_recommend(ARRAY[1, 2, 3]::bigint[], ARRAY[0, 60, 120]::float8[], k => 300,
                                                    model_name => 'golden', exclude_seen => false)), 300,
          'golden model scores the whole catalogue');
-- the export of the imported golden model has the official state dict's
-- tensors: same names, dtypes, shapes and identical data bytes
CREATE TEMP TABLE gf AS
SELECT 'golden' AS which, pg_read_binary_file(:'fixtures' || '/golden_movielens.safetensors') AS b
UNION ALL SELECT 'export', tim4rec_export('golden');
CREATE TEMP TABLE gt AS
SELECT which, k AS name, v->>'dtype' AS dtype, v->'shape' AS shape,
       md5(substr(b, 9 + n + (v->'data_offsets'->>0)::int,
                  (v->'data_offsets'->>1)::int - (v->'data_offsets'->>0)::int)) AS data
FROM gf, LATERAL (SELECT get_byte(b, 0) + get_byte(b, 1) * 256 + get_byte(b, 2) * 65536 + get_byte(b, 3) * 16777216 AS n) x,
     LATERAL jsonb_each(convert_from(substr(b, 9, n), 'UTF8')::jsonb) e(k, v)
WHERE k <> '__metadata__';
SELECT ok((SELECT count(*) FROM gt WHERE which = 'golden') > 10, 'the golden file has the model tensors');
SELECT set_eq($$ SELECT name, dtype, shape::text, data FROM gt WHERE which = 'export' $$,
              $$ SELECT name, dtype, shape::text, data FROM gt WHERE which = 'golden' $$,
              'export of the imported golden model: same tensor names, dtypes, shapes and bytes as the PyTorch file');
\else
SELECT skip('golden fixture not available', 5);
\endif

SELECT * FROM finish();
ROLLBACK;
