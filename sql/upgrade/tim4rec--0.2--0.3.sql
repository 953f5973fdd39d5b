-- tim4rec 0.2 -> 0.3 (ALTER EXTENSION tim4rec UPDATE).  Each change made
-- to sql/install/*.sql after 0.2 has its counterpart here, in the same
-- order; test/pgtap/upgrade.sh checks that an updated database has the
-- same objects as a fresh install.  Every name is schema-qualified, as in
-- the install script.
\echo Use "ALTER EXTENSION tim4rec UPDATE TO '0.3'" to load this file. \quit

-- ---- warm start (issue 14 part 2): the parent version of a warm start ----
ALTER TABLE @extschema@.tim4rec_models ADD COLUMN parent_model text, ADD COLUMN parent_version int;
COMMENT ON COLUMN @extschema@.tim4rec_models.parent_model IS
  'warm start (options init_from): the model this version continued training from; NULL for a training from scratch or an import';
COMMENT ON COLUMN @extschema@.tim4rec_models.parent_version IS
  'warm start: the version of parent_model this version continued training from';
CREATE OR REPLACE VIEW @extschema@.tim4rec_model_list WITH (security_barrier) AS
SELECT m.model_name, m.version, m.is_current, m.created_at, m.owner,
       m.source_schema, m.source_table, m.user_column, m.item_column, m.time_column, m.order_column,
       pg_catalog.cardinality(m.item_ids) AS n_items, m.config, m.metrics, m.history,
       m.grant_read, m.grant_usage, m.parent_model, m.parent_version
FROM @extschema@.tim4rec_models m
WHERE @extschema@.tim4rec_model_readable(m.owner, m.grant_read, m.source_schema, m.source_table,
                                         m.user_column, m.item_column, m.time_column, m.order_column);
