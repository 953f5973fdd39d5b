-- tim4rec.device and the training option "device" in a build without CUDA
-- (the pg_regress suite runs against the default build): 'cpu' is the
-- default, 'cuda' is a clear error, 'auto' falls back to the CPU with a
-- NOTICE; the option overrides the setting.  The CUDA build is checked by
-- test/pgtap/cuda_build.sh.
CREATE FUNCTION dev_err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  h text;
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN h <> '' THEN E'\nHINT: ' || h ELSE '' END;
END $$;
LOAD 'tim4rec';   -- defines the settings
SET tim4rec.threads = 1;
SHOW tim4rec.device;
SELECT name, setting, enumvals, context FROM pg_settings WHERE name = 'tim4rec.device';
SET tim4rec.device = 'tpu';
SET tim4rec.device = 'CUDA';
SHOW tim4rec.device;
RESET tim4rec.device;
CREATE TABLE d_inter AS
SELECT u AS user_id, ((u + s) % 20 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 30) u, generate_series(1, 10) s;
\set opts '{"epochs": 1, "hidden_size": 16, "max_seq_len": 12, "batch_size": 64}'
-- the setting alone
SET tim4rec.device = 'cuda';
SELECT dev_err($$ SELECT tim4rec_train('d_inter', 'd_model') $$);
SELECT dev_err($$ SELECT tim4rec_evaluate('no_such_model') $$);
-- the option overrides the setting (per-epoch NOTICEs carry timings: hidden)
SET client_min_messages = warning;
SELECT version, users FROM tim4rec_train('d_inter', 'd_model', options => :'opts'::jsonb || '{"device": "cpu"}');
RESET client_min_messages;
SELECT dev_err($$ SELECT tim4rec_evaluate('d_model') $$);
SET tim4rec.device = 'cpu';
SELECT dev_err($$ SELECT tim4rec_train('d_inter', 'd_model', options => '{"device": "cuda"}') $$);
-- 'auto': a NOTICE, then the CPU
SET tim4rec.device = 'auto';
SELECT count(*) > 0 AS evaluated FROM tim4rec_evaluate('d_model');
SET client_min_messages = warning;
SELECT version FROM tim4rec_train('d_inter', 'd_model', options => :'opts');
RESET client_min_messages;
-- the device that was used is what the catalog records
SELECT version, config->>'device' AS device FROM tim4rec_models WHERE model_name = 'd_model' ORDER BY version;
RESET tim4rec.device;
