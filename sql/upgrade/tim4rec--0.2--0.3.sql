-- tim4rec 0.2 -> 0.3 (ALTER EXTENSION tim4rec UPDATE).  Each change made
-- to sql/install/*.sql after 0.2 has its counterpart here, in the same
-- order; test/pgtap/upgrade.sh checks that an updated database has the
-- same objects as a fresh install.  Every name is schema-qualified, as in
-- the install script.
\echo Use "ALTER EXTENSION tim4rec UPDATE TO '0.3'" to load this file. \quit

-- ---- recommend_all (issue 14 part 3): tim4rec_recommend_all ----
CREATE FUNCTION @extschema@.tim4rec_recommend_all(model_name text DEFAULT 'default', k int DEFAULT 10,
                                                  users anyarray DEFAULT NULL::bigint[],
                                                  exclude_seen boolean DEFAULT true)
RETURNS TABLE(user_id bigint, item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT COST 1000000 ROWS 100000;

COMMENT ON FUNCTION @extschema@.tim4rec_recommend_all(text, int, anyarray, boolean) IS
'Top k items of every user of a model''s source (or of the users array) in one call: model_name, k, users (NULL = all), exclude_seen; equals tim4rec_recommend per user, streamed in batches';
