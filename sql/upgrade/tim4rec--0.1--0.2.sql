-- tim4rec 0.1 -> 0.2 (ALTER EXTENSION tim4rec UPDATE): model owners and
-- grants, no raw privileges on the catalog, schema-qualified views.
-- Existing models are carried over unchanged (weights, versions, current
-- version); each gets the database owner as its owner (in 0.1 the database
-- owner was the role with write access by default); a superuser can hand a
-- model to another role with tim4rec_alter_owner().
\echo Use "ALTER EXTENSION tim4rec UPDATE TO '0.2'" to load this file. \quit

ALTER TABLE @extschema@.tim4rec_models
  ADD COLUMN owner name,
  ADD COLUMN grant_read name[] NOT NULL DEFAULT '{}',
  ADD COLUMN grant_usage name[] NOT NULL DEFAULT '{}',
  ALTER COLUMN created_at SET DEFAULT pg_catalog.now();
UPDATE @extschema@.tim4rec_models
SET owner = (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d
             WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
ALTER TABLE @extschema@.tim4rec_models ALTER COLUMN owner SET NOT NULL,
  ALTER COLUMN owner SET DEFAULT CURRENT_USER;
COMMENT ON TABLE @extschema@.tim4rec_models IS
  'tim4rec models: one row per version; item_ids[r] is the external id of vocabulary row r (row 0, padding, not stored); weights are safetensors; owner, grant_read and grant_usage govern access (functions only)';

-- nobody but the table's owner keeps a privilege on the catalog
DO $revoke$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT DISTINCT a.grantee
    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
    WHERE c.oid OPERATOR(pg_catalog.=) '@extschema@.tim4rec_models'::pg_catalog.regclass
      AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
  LOOP
    IF r.grantee OPERATOR(pg_catalog.=) 0 THEN
      REVOKE ALL ON @extschema@.tim4rec_models FROM PUBLIC;
    ELSE
      EXECUTE pg_catalog.format('REVOKE ALL ON @extschema@.tim4rec_models FROM %I',
                                pg_catalog.pg_get_userbyid(r.grantee));
    END IF;
  END LOOP;
END
$revoke$;

CREATE FUNCTION @extschema@.tim4rec_model_readable(owner name, grant_read name[],
                                       source_schema name, source_table name,
                                       user_column name, item_column name,
                                       time_column name, order_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tim4rec_model_readable'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;

DROP VIEW @extschema@.tim4rec_model_list;
CREATE VIEW @extschema@.tim4rec_model_list WITH (security_barrier) AS
SELECT m.model_name, m.version, m.is_current, m.created_at, m.owner,
       m.source_schema, m.source_table, m.user_column, m.item_column, m.time_column, m.order_column,
       pg_catalog.cardinality(m.item_ids) AS n_items, m.config, m.metrics, m.history,
       m.grant_read, m.grant_usage
FROM @extschema@.tim4rec_models m
WHERE @extschema@.tim4rec_model_readable(m.owner, m.grant_read, m.source_schema, m.source_table,
                                         m.user_column, m.item_column, m.time_column, m.order_column);
GRANT SELECT ON @extschema@.tim4rec_model_list TO PUBLIC;
CREATE OR REPLACE VIEW @extschema@.tim4rec_progress AS
SELECT s.pid,
       s.datid,
       d.datname,
       CAST(s.relid AS pg_catalog.regclass) AS relation,
       CASE WHEN s.param12 OPERATOR(pg_catalog.=) 1 THEN 'reading interactions'
            WHEN s.param12 OPERATOR(pg_catalog.=) 2 THEN 'building dataset'
            WHEN s.param12 OPERATOR(pg_catalog.=) 3 THEN 'training'
            WHEN s.param12 OPERATOR(pg_catalog.=) 4 THEN 'evaluating'
            WHEN s.param12 OPERATOR(pg_catalog.=) 5 THEN 'saving' END AS phase,
       CAST(s.param13 AS pg_catalog.int4) AS epoch,
       CAST(s.param14 AS pg_catalog.int4) AS max_epochs,
       s.param15 AS step,
       s.param16 AS steps_per_epoch,
       CAST(s.param17 AS pg_catalog.float8) OPERATOR(pg_catalog./) CAST(1e6 AS pg_catalog.float8) AS loss,
       CASE WHEN s.param20 OPERATOR(pg_catalog.>) 0
            THEN CAST(s.param18 AS pg_catalog.float8) OPERATOR(pg_catalog./) CAST(1e6 AS pg_catalog.float8) END
         AS best_valid_ndcg10,
       CAST(s.param20 AS pg_catalog.int4) AS epochs_done,
       s.param19 AS rows_read
FROM pg_catalog.pg_stat_get_progress_info('COPY') s
LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.datid
WHERE s.param11 OPERATOR(pg_catalog.=) 1949594112;
GRANT SELECT ON @extschema@.tim4rec_progress TO PUBLIC;

-- training and import create models: EXECUTE for the database owner and
-- roles granted it, no longer for PUBLIC
REVOKE EXECUTE ON FUNCTION @extschema@.tim4rec_train(regclass, text, name, name, name, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.tim4rec_import(text, bytea, bigint[], jsonb) FROM PUBLIC;
DO $grant$
BEGIN
  EXECUTE pg_catalog.format(
    'GRANT EXECUTE ON FUNCTION @extschema@.tim4rec_train(regclass, text, name, name, name, jsonb), '
    '@extschema@.tim4rec_import(text, bytea, bigint[], jsonb) TO %I',
    (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d
     WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
END
$grant$;

CREATE FUNCTION @extschema@.tim4rec_item_ids(model_name text, version int DEFAULT NULL)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'tim4rec_item_ids'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;
CREATE FUNCTION @extschema@.tim4rec_grant(model_name text, role name, privilege text DEFAULT 'usage')
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_grant'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;
CREATE FUNCTION @extschema@.tim4rec_revoke(model_name text, role name, privilege text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_revoke'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;
CREATE FUNCTION @extschema@.tim4rec_alter_owner(model_name text, new_owner name)
RETURNS void
AS 'MODULE_PATHNAME', 'tim4rec_alter_owner'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;

CREATE FUNCTION @extschema@.tim4rec_shared_model_list()
RETURNS TABLE(model_name text, bytes bigint, segment bigint, row_xmin bigint)
AS 'MODULE_PATHNAME', 'tim4rec_shared_model_list'
LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE EXECUTE ON FUNCTION @extschema@.tim4rec_shared_model_list() FROM PUBLIC;
