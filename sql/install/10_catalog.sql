-- 10_catalog.sql: the model catalog and the functions that manage it.
--
-- Every function and operator below is schema-qualified (pg_catalog. or
-- @extschema@.), so objects planted in the target schema before CREATE
-- EXTENSION cannot capture a call (PostgreSQL's guidance for extension
-- scripts); the C code does the same and runs its catalog queries with
-- search_path pinned to pg_catalog (src/access.c).
--
-- tim4rec_models holds every trained or imported version of every model.
-- At most one version per name is current (the one recommend uses).  The
-- table is marked with pg_extension_config_dump, so pg_dump / pg_restore
-- keep the models.  Imported models have no source relation: their
-- source_schema, source_table and column names are '' (empty).
--
-- Privileges (README "Privileges"): nobody but the table's owner (the
-- superuser who created the extension) has any privilege on the table; the
-- functions read and write it on the caller's behalf after checking the
-- model's owner and grants (columns owner, grant_read, grant_usage, the
-- same on every version row of a model).  tim4rec_model_list shows the
-- rows the caller may read.
CREATE TABLE tim4rec_models (
  model_name      text        NOT NULL,
  version         int         NOT NULL,
  is_current      boolean     NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
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
  owner           name        NOT NULL DEFAULT CURRENT_USER,
  grant_read      name[]      NOT NULL DEFAULT '{}',
  grant_usage     name[]      NOT NULL DEFAULT '{}',
  -- id types (README "Id types"): 'smallint', 'integer', 'bigint', 'text',
  -- 'character varying' or 'uuid'; text and uuid item ids are in item_keys
  -- (element r = vocabulary row r) and item_ids is then empty
  user_id_type    text        NOT NULL DEFAULT 'bigint',
  item_id_type    text        NOT NULL DEFAULT 'bigint',
  item_keys       text[],
  parent_model    text,
  parent_version  int,
  PRIMARY KEY (model_name, version)
);
CREATE UNIQUE INDEX tim4rec_models_current ON tim4rec_models (model_name) WHERE is_current;
SELECT pg_catalog.pg_extension_config_dump('tim4rec_models', '');
REVOKE ALL ON tim4rec_models FROM PUBLIC;

COMMENT ON TABLE tim4rec_models IS
  'tim4rec models: one row per version; item_ids[r] (bigint ids) or item_keys[r] (text and uuid ids, as text) is the external id of vocabulary row r (row 0, padding, not stored); weights are safetensors; owner, grant_read and grant_usage govern access (functions only)';
COMMENT ON COLUMN tim4rec_models.parent_model IS
  'warm start (options init_from): the model this version continued training from; NULL for a training from scratch or an import';
COMMENT ON COLUMN tim4rec_models.parent_version IS
  'warm start: the version of parent_model this version continued training from';

-- The READ rule of one catalog row for the current user: its owner (or a
-- member, or a superuser), a role granted 'read', or a role that may read
-- every row of the model's source (SELECT without row-level security).
CREATE FUNCTION tim4rec_model_readable(owner name, grant_read name[],
                                       source_schema name, source_table name,
                                       user_column name, item_column name,
                                       time_column name, order_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tim4rec_model_readable'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;

-- The models the caller may read.  security_barrier: the caller's own
-- conditions cannot run on rows the filter hides.
CREATE VIEW tim4rec_model_list WITH (security_barrier) AS
SELECT m.model_name, m.version, m.is_current, m.created_at, m.owner,
       m.source_schema, m.source_table, m.user_column, m.item_column, m.time_column, m.order_column,
       pg_catalog.cardinality(m.item_counts) AS n_items, m.config, m.metrics, m.history,
       m.grant_read, m.grant_usage, m.user_id_type, m.item_id_type, m.parent_model, m.parent_version
FROM @extschema@.tim4rec_models m
WHERE @extschema@.tim4rec_model_readable(m.owner, m.grant_read, m.source_schema, m.source_table,
                                         m.user_column, m.item_column, m.time_column, m.order_column);
GRANT SELECT ON tim4rec_model_list TO PUBLIC;

-- Make a version current (switch or roll back).  Unknown name or version:
-- ERROR 42704; not the model's owner: 42501 (the same for drop, grant,
-- revoke, alter_owner and for new versions by train or import).
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

-- Change what a trained version serves (README "Changing what a model
-- serves"): tie_average only, in place (weights' metadata and config; the
-- weights, metrics and history stay).  version NULL: the current version.
-- Returns the new config.  Owner only (42501); other keys 22023.
CREATE FUNCTION tim4rec_set_serving(model_name text, options jsonb, version int DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tim4rec_set_serving'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;

-- The current version's weights as safetensors (tensor names of the
-- official PyTorch model; __metadata__.config holds the model options).
-- Needs the read privilege on the model.
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
-- Training and import create models: EXECUTE is not granted to PUBLIC; the
-- database owner gets it here, other roles by GRANT EXECUTE (README).
REVOKE EXECUTE ON FUNCTION tim4rec_import(text, bytea, bigint[], jsonb) FROM PUBLIC;

-- The vocabulary of the current (or a given) version: element r is the
-- item id of vocabulary row r (the padding row 0 is not included), as
-- tim4rec_import's item_ids expects.  Needs the read privilege.
CREATE FUNCTION tim4rec_item_ids(model_name text, version int DEFAULT NULL)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'tim4rec_item_ids'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;

-- The vocabulary as text, for models with ids of any type (README "Id
-- types"): element r is the item id of vocabulary row r.  Needs the read
-- privilege.
CREATE FUNCTION tim4rec_item_keys(model_name text, version int DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'tim4rec_item_keys'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;
COMMENT ON FUNCTION tim4rec_item_keys(text, int) IS
  'item ids of a model version (default: current) as text[], element r = vocabulary row r, for every id type';

-- Model privileges: 'usage' (recommend, evaluate) or 'read' (usage, plus
-- the catalog row in tim4rec_model_list, tim4rec_item_ids and
-- tim4rec_export), to a role or to PUBLIC.  Only the owner (a member of
-- the owning role, or a superuser) grants and revokes; revoke without a
-- privilege revokes both.
CREATE FUNCTION tim4rec_grant(model_name text, role name, privilege text DEFAULT 'usage')
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_grant'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;
CREATE FUNCTION tim4rec_revoke(model_name text, role name, privilege text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_revoke'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;

-- Give a model (every version) to another role; the caller must own the
-- model and be a member of the new owner (or be a superuser).
CREATE FUNCTION tim4rec_alter_owner(model_name text, new_owner name)
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_alter_owner'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;
