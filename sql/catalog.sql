-- Model catalog: deploy, drop, export, import and their errors.
CREATE FUNCTION cat_err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  h text;
  d text;
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT, d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN d <> '' THEN E'\nDETAIL: ' || d ELSE '' END
         || CASE WHEN h <> '' THEN E'\nHINT: ' || h ELSE '' END;
END $$;
SET tim4rec.threads = 1;
SET client_min_messages = warning;
-- catalog objects, dump marking, signatures
SELECT format_type(a.atttypid, a.atttypmod) AS type, a.attname, a.attnotnull
FROM pg_attribute a WHERE a.attrelid = 'tim4rec_models'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT indexdef FROM pg_indexes WHERE tablename = 'tim4rec_models' ORDER BY indexname;
SELECT extconfig::regclass[] AS dumped, extcondition FROM pg_extension WHERE extname = 'tim4rec';
SELECT attname FROM pg_attribute WHERE attrelid = 'tim4rec_model_list'::regclass AND attnum > 0 ORDER BY attnum;
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result,
       p.provolatile AS volatility, p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc p WHERE p.proname IN ('tim4rec_deploy', 'tim4rec_drop', 'tim4rec_export', 'tim4rec_import',
                                   'tim4rec_item_ids', 'tim4rec_grant', 'tim4rec_revoke', 'tim4rec_alter_owner')
ORDER BY p.proname;
CREATE TABLE c_inter AS
SELECT u AS user_id, ((u + s) % 30 + 101)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 15) s;
\set opts '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}'
SELECT version FROM tim4rec_train('c_inter', 'c_model', options => :'opts');
SELECT version FROM tim4rec_train('c_inter', 'c_model', options => :'opts'::jsonb || '{"seed": 7}');
SELECT version, is_current FROM tim4rec_models WHERE model_name = 'c_model' ORDER BY version;

-- deploy: switch back and forth
SELECT tim4rec_deploy('c_model', 1);
SELECT version, is_current FROM tim4rec_models WHERE model_name = 'c_model' ORDER BY version;
SELECT tim4rec_deploy('c_model', 1);    -- already current: no change
SELECT tim4rec_deploy('c_model', 2);
SELECT version, is_current FROM tim4rec_models WHERE model_name = 'c_model' ORDER BY version;
SELECT cat_err($$ SELECT tim4rec_deploy('c_model', 3) $$);
SELECT cat_err($$ SELECT tim4rec_deploy('nope', 1) $$);
SELECT cat_err($$ SELECT tim4rec_deploy(NULL, 1) $$);
SELECT cat_err($$ SELECT tim4rec_deploy('c_model', NULL) $$);

-- export: the current version's safetensors
SELECT tim4rec_export('c_model') = weights AS export_is_current FROM tim4rec_models WHERE model_name = 'c_model' AND is_current;
SELECT convert_from(substr(tim4rec_export('c_model'), 9, 10), 'UTF8') AS header_start;
SELECT cat_err($$ SELECT tim4rec_export('nope') $$);
SELECT cat_err($$ SELECT tim4rec_export(NULL) $$);

-- import the export with the vocabulary: identical scores for a sequence
SELECT tim4rec_import('c_copy', tim4rec_export('c_model'),
                      (SELECT item_ids FROM tim4rec_models WHERE model_name = 'c_model' AND is_current));
SELECT model_name, version, is_current, n_items, source_schema = '' AS no_source, metrics IS NULL AS no_metrics,
       config->>'hidden_size' AS d
FROM tim4rec_model_list WHERE model_name = 'c_copy';
SELECT count(*) AS rows,
       count(*) FILTER (WHERE a.item_id = b.item_id AND a.score = b.score) AS identical
FROM tim4rec_recommend(ARRAY[101, 102, 103]::bigint[], ARRAY[1, 2, 3]::float8[], 30, 'c_model') WITH ORDINALITY a
JOIN tim4rec_recommend(ARRAY[101, 102, 103]::bigint[], ARRAY[1, 2, 3]::float8[], 30, 'c_copy') WITH ORDINALITY b
  USING (ordinality);
-- importing again makes version 2 current; V ids (first ignored) are accepted too
SELECT tim4rec_import('c_copy', tim4rec_export('c_model'),
                      (SELECT 0 || item_ids FROM tim4rec_models WHERE model_name = 'c_model' AND is_current));
SELECT version, is_current, item_ids[1:3] AS first_ids FROM tim4rec_models WHERE model_name = 'c_copy' ORDER BY version;
-- item_ids NULL: row i is item i
SELECT tim4rec_import('c_rows', tim4rec_export('c_model'));
SELECT item_ids[1:3] AS first_ids, cardinality(item_ids) AS n FROM tim4rec_models WHERE model_name = 'c_rows';
-- an explicit config that matches the file
SELECT tim4rec_import('c_cfg', tim4rec_export('c_model'), NULL,
                      '{"hidden_size": 16, "max_seq_len": 20, "epochs": 1, "batch_size": 64}');
SELECT config->>'hidden_size' AS d, config->>'max_seq_len' AS l FROM tim4rec_models WHERE model_name = 'c_cfg';

-- import errors (nothing is written)
SELECT cat_err($$ SELECT tim4rec_import('c_bad', '\x00010203'::bytea) $$);
SELECT cat_err($$ SELECT tim4rec_import('c_bad', ''::bytea) $$);
SELECT regexp_replace(cat_err($$ SELECT tim4rec_import('c_bad', substr(tim4rec_export('c_model'), 1, 2000)) $$),
                      'header length [0-9]+', 'header length N') AS truncated;
SELECT cat_err($$ SELECT tim4rec_import('c_bad', tim4rec_export('c_model'), '{1,2,3}') $$);
SELECT cat_err($$ SELECT tim4rec_import('c_bad', tim4rec_export('c_model'), ARRAY(SELECT g::bigint FROM generate_series(1, 29) g) || NULL::bigint) $$);
SELECT cat_err($$ SELECT tim4rec_import('c_bad', tim4rec_export('c_model'), ARRAY(SELECT 1::bigint FROM generate_series(1, 30) g)) $$);
SELECT cat_err($$ SELECT tim4rec_import('c_bad', tim4rec_export('c_model'), '{{1,2},{3,4}}') $$);
SELECT cat_err($$ SELECT tim4rec_import('c_bad', tim4rec_export('c_model'), NULL, '{"hidden_size": 32, "max_seq_len": 20}') $$);
SELECT cat_err($$ SELECT tim4rec_import('c_bad', tim4rec_export('c_model'), NULL, '{"bogus": 1}') $$) LIKE '22023: unknown config key "bogus"%Valid keys: preset, %' AS unknown_key;
SELECT cat_err($$ SELECT tim4rec_import('c_bad', NULL) $$);
SELECT cat_err($$ SELECT tim4rec_import(NULL, '\x00'::bytea) $$);
SELECT cat_err($$ SELECT tim4rec_import('', tim4rec_export('c_model')) $$);
SELECT count(*) AS bad_rows FROM tim4rec_models WHERE model_name = 'c_bad';

-- drop: a non-current version; the current version (the newest remaining takes over); everything
SELECT tim4rec_train('c_inter', 'c_model', options => :'opts') IS NOT NULL AS trained_v3;
SELECT tim4rec_deploy('c_model', 2);
SELECT tim4rec_drop('c_model', 1);
SELECT version, is_current FROM tim4rec_models WHERE model_name = 'c_model' ORDER BY version;
SELECT tim4rec_drop('c_model', 2);
SELECT version, is_current FROM tim4rec_models WHERE model_name = 'c_model' ORDER BY version;
SELECT cat_err($$ SELECT tim4rec_drop('c_model', 2) $$);
SELECT cat_err($$ SELECT tim4rec_drop('nope') $$);
SELECT cat_err($$ SELECT tim4rec_drop(NULL) $$);
BEGIN READ ONLY;
SELECT cat_err($$ SELECT tim4rec_drop('c_model') $$);
SELECT cat_err($$ SELECT tim4rec_deploy('c_model', 3) $$);
SELECT cat_err($$ SELECT tim4rec_import('c_model', '\x00'::bytea) $$);
ROLLBACK;
SELECT tim4rec_drop('c_model');
SELECT cat_err($$ SELECT tim4rec_export('c_model') $$);
SELECT tim4rec_drop('c_copy'), tim4rec_drop('c_rows'), tim4rec_drop('c_cfg');
SELECT count(*) AS models_left FROM tim4rec_models;
DROP TABLE c_inter;
DROP FUNCTION cat_err(text);
RESET client_min_messages;
RESET tim4rec.threads;
