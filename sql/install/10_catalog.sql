-- 10_catalog.sql (PG-A): the model catalog and the functions that manage it.
--
-- tim4rec_models holds every trained or imported version of every model.
-- At most one version per name is current (the one recommend uses).  The
-- table is marked with pg_extension_config_dump, so pg_dump / pg_restore
-- keep the models.  Imported models have no source relation: their
-- source_schema, source_table and column names are '' (empty).
--
-- Privileges: functions run with the caller's rights.  SELECT on the
-- catalog is granted to PUBLIC (recommend reads it; recommend also checks
-- SELECT on the model's source relation); training, deploy, drop and import
-- write to it, which needs INSERT / UPDATE / DELETE: granted to the
-- database owner at CREATE EXTENSION, to other roles by hand, e.g.
-- GRANT INSERT, UPDATE, DELETE ON tim4rec_models TO app_trainer;
CREATE TABLE tim4rec_models (
  model_name      text        NOT NULL,
  version         int         NOT NULL,
  is_current      boolean     NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  source_schema   name        NOT NULL,
  source_table    name        NOT NULL,
  user_column     name        NOT NULL,
  item_column     name        NOT NULL,
  time_column     name        NOT NULL,
  order_column    name,
  config          jsonb       NOT NULL,
  item_ids        bigint[]    NOT NULL,
  item_counts     bigint[]    NOT NULL,
  metrics         jsonb,
  history         jsonb,
  weights         bytea       NOT NULL,
  PRIMARY KEY (model_name, version)
);
CREATE UNIQUE INDEX tim4rec_models_current ON tim4rec_models (model_name) WHERE is_current;
SELECT pg_catalog.pg_extension_config_dump('tim4rec_models', '');
GRANT SELECT ON tim4rec_models TO PUBLIC;
-- the database owner may train and manage models from the start
DO $grant$
BEGIN
  EXECUTE format('GRANT INSERT, UPDATE, DELETE ON tim4rec_models TO %I',
                 (SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database
                  WHERE datname = pg_catalog.current_database()));
END
$grant$;

COMMENT ON TABLE tim4rec_models IS
  'tim4rec models: one row per version; item_ids[r] is the external id of vocabulary row r (row 0, padding, not stored); weights are safetensors';

CREATE VIEW tim4rec_model_list AS
SELECT model_name, version, is_current, created_at,
       source_schema, source_table, user_column, item_column, time_column, order_column,
       cardinality(item_ids) AS n_items, config, metrics, history
FROM tim4rec_models;
GRANT SELECT ON tim4rec_model_list TO PUBLIC;

-- Make a version current (switch or roll back).  Unknown name or version:
-- ERROR 42704.
CREATE FUNCTION tim4rec_deploy(model_name text, version int)
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_deploy'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;

-- Drop one version, or every version when version is NULL; returns the
-- number of versions dropped.  Dropping the current version makes the
-- newest remaining version current.
CREATE FUNCTION tim4rec_drop(model_name text, version int DEFAULT NULL)
RETURNS int
AS 'MODULE_PATHNAME', 'tim4rec_drop'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;

-- The current version's weights as safetensors (tensor names of the
-- official PyTorch model; __metadata__.config holds the model options).
CREATE FUNCTION tim4rec_export(model_name text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'tim4rec_export'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;

-- Store a safetensors file as a new current version; returns the version.
-- config NULL: the file's __metadata__.config (keys it lacks from its
-- preset); otherwise options as for tim4rec_train.  item_ids NULL: row i is
-- item i; otherwise V-1 ids (rows 1..V-1) or V ids whose first (the padding
-- row) is ignored; ids distinct, no NULLs.  A malformed or mismatched file:
-- ERROR 22P03 (or 22023) with the reader's message.
CREATE FUNCTION tim4rec_import(model_name text, weights bytea,
                               item_ids bigint[] DEFAULT NULL, config jsonb DEFAULT NULL)
RETURNS int
AS 'MODULE_PATHNAME', 'tim4rec_import'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;
