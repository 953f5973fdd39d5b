-- time_features "robust" and training "all_positions" through SQL:
-- training, the stored configuration (catalog and safetensors
-- metadata with the fitted time_scale), export/import with the same scores,
-- invariance of the trained model to the origin of the timestamps, and the
-- errors: all_positions with the official time path (22023 with a hint),
-- the CUDA device with either option (0A000), cancellation by
-- statement_timeout (57014, nothing stored).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(16);

CREATE TABLE ap AS
SELECT u AS user_id, ((u * 5 + s * 2 + (u % 7) * s) % 60 + 1)::int AS item_id,
       timestamptz '2024-01-01' + ((u * 17 + s * s) * interval '1 hour') AS ts
FROM generate_series(1, 120) u, generate_series(1, 18) s;
-- the same events with bigint seconds since another origin
CREATE TABLE ap_shift AS
SELECT user_id, item_id, (extract(epoch FROM ts) - 1000000000)::bigint AS ts FROM ap;

CREATE TEMP TABLE r1 AS
SELECT * FROM tim4rec_train('ap', 'rob', options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "time_features": "robust", "training": "all_positions"}');
SELECT is((SELECT version FROM r1), 1, 'robust all_positions model trained');
SELECT ok((SELECT train_samples = 120 * 15 FROM r1), 'targets per epoch: every training target once');
SELECT ok((SELECT test_ndcg10 BETWEEN 0 AND 1 FROM r1), 'test metrics computed as for the per-prefix form');
SELECT is((SELECT config->>'training' FROM tim4rec_models WHERE model_name = 'rob'), 'all_positions',
          'the catalog records training all_positions');
SELECT is((SELECT config->>'time_features' FROM tim4rec_models WHERE model_name = 'rob'), 'robust',
          'the catalog records time_features robust');
SELECT ok((SELECT (config->>'time_scale')::float8 > 0 FROM tim4rec_models WHERE model_name = 'rob'),
          'the catalog records the fitted time_scale');

-- the exported file says which form it needs and imports back
CREATE TEMP TABLE f AS SELECT tim4rec_export('rob') AS b;
CREATE TEMP TABLE h AS
SELECT convert_from(substr(b, 9, n), 'UTF8')::jsonb AS j FROM f,
LATERAL (SELECT get_byte(b, 0) + get_byte(b, 1) * 256 + get_byte(b, 2) * 65536 + get_byte(b, 3) * 16777216 AS n) x;
SELECT is((SELECT (j->'__metadata__'->>'config')::jsonb->>'time_features' FROM h), 'robust',
          'safetensors metadata: time_features robust');
SELECT is((SELECT ((j->'__metadata__'->>'config')::jsonb->>'time_scale')::float8 FROM h),
          (SELECT (config->>'time_scale')::float8 FROM tim4rec_models WHERE model_name = 'rob'),
          'safetensors metadata: the same time_scale');
SELECT is(tim4rec_import('rob2', (SELECT b FROM f), (SELECT item_ids FROM tim4rec_models WHERE model_name = 'rob')), 1,
          'the robust file imports');
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(ARRAY[3, 8, 13]::bigint[],
             ARRAY[timestamptz '2024-02-01', '2024-02-02', '2024-02-05'], 5, model_name => 'rob2')),
          (SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(ARRAY[3, 8, 13]::bigint[],
             ARRAY[timestamptz '2024-02-01', '2024-02-02', '2024-02-05'], 5, model_name => 'rob')),
          'imported model recommends the same items');

-- the origin of the timestamps does not matter: the same metrics
SELECT is((SELECT row(test_ndcg10, test_hr10, valid_ndcg10)::text FROM tim4rec_train('ap_shift', 'robs',
              options => '{"epochs": 2, "hidden_size": 16, "max_seq_len": 8, "batch_size": 64, "time_features": "robust", "training": "all_positions"}')),
          (SELECT row(test_ndcg10, test_hr10, valid_ndcg10)::text FROM r1),
          'bigint seconds from another origin train the same model as timestamptz');

SELECT throws_ok($$ SELECT tim4rec_train('ap', 'bad', options => '{"training": "all_positions"}') $$,
                 '22023', 'invalid options: training "all_positions" needs a causal model',
                 'all_positions with the official time path: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ap', 'bad', options => '{"training": "everything"}') $$,
                 '22023', NULL, 'unknown training mode: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('ap', 'bad', options => '{"time_features": "robust", "device": "cuda"}') $$,
                 '0A000', 'the CUDA backend does not support time_features "robust"',
                 'robust time path on the CUDA device: 0A000');

-- cancellation: statement_timeout stops an all_positions training, nothing stored
CREATE FUNCTION pg_temp.train_cancel(opts jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tim4rec_train('ap', 'slow', options => opts);
  RETURN 'finished';
EXCEPTION WHEN query_canceled THEN
  RETURN 'cancelled';
END $$;
SET statement_timeout = '300ms';
CREATE TEMP TABLE res AS SELECT pg_temp.train_cancel('{"epochs": 300, "patience": 300, "hidden_size": 64, "max_seq_len": 16, "batch_size": 16, "time_features": "robust", "training": "all_positions"}') AS r;
RESET statement_timeout;
SELECT is((SELECT r FROM res), 'cancelled', 'statement_timeout cancels an all_positions training');
SELECT is((SELECT count(*)::int FROM tim4rec_models WHERE model_name = 'slow'), 0, 'nothing stored');

SELECT * FROM finish();
ROLLBACK;
