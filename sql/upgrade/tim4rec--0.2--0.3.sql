-- tim4rec 0.2 -> 0.3 (ALTER EXTENSION tim4rec UPDATE).  Each change made
-- to sql/install/*.sql after 0.2 has its counterpart here, in the same
-- order; test/pgtap/upgrade.sh checks that an updated database has the
-- same objects as a fresh install.  Every name is schema-qualified, as in
-- the install script.
\echo Use "ALTER EXTENSION tim4rec UPDATE TO '0.3'" to load this file. \quit

-- ---- id types ----
ALTER TABLE @extschema@.tim4rec_models
  ADD COLUMN user_id_type text NOT NULL DEFAULT 'bigint',
  ADD COLUMN item_id_type text NOT NULL DEFAULT 'bigint',
  ADD COLUMN item_keys text[];
CREATE OR REPLACE VIEW @extschema@.tim4rec_model_list WITH (security_barrier) AS
SELECT m.model_name, m.version, m.is_current, m.created_at, m.owner,
       m.source_schema, m.source_table, m.user_column, m.item_column, m.time_column, m.order_column,
       pg_catalog.cardinality(m.item_counts) AS n_items, m.config, m.metrics, m.history,
       m.grant_read, m.grant_usage, m.user_id_type, m.item_id_type
FROM @extschema@.tim4rec_models m
WHERE @extschema@.tim4rec_model_readable(m.owner, m.grant_read, m.source_schema, m.source_table,
                                         m.user_column, m.item_column, m.time_column, m.order_column);

CREATE FUNCTION @extschema@.tim4rec_item_keys(model_name text, version int DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'tim4rec_item_keys'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT;
COMMENT ON FUNCTION @extschema@.tim4rec_item_keys(text, int) IS
  'item ids of a model version (default: current) as text[], element r = vocabulary row r, for every id type';

CREATE FUNCTION @extschema@.tim4rec_recommend(user_id text, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(text, int, text, boolean, text[]) IS
  'top-k items (text ids) for a text-keyed user from the source relation; k, model_name, exclude_seen, exclude';
CREATE FUNCTION @extschema@.tim4rec_recommend(user_id uuid, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(uuid, int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for a uuid-keyed user from the source relation; k, model_name, exclude_seen, exclude';
CREATE FUNCTION @extschema@.tim4rec_recommend(user_id anyelement, item_type anycompatible, k int,
                                  model_name text, exclude_seen boolean DEFAULT true)
RETURNS TABLE(item_id anycompatible, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user_any'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(anyelement, anycompatible, int, text, boolean) IS
  'top-k items for a user of any id type; item_type: a NULL of the model''s item id type, which item_id takes; k, model_name, exclude_seen';
CREATE FUNCTION @extschema@.tim4rec_recommend(user_id anyelement, item_type anycompatible, k int,
                                  model_name text, exclude_seen boolean, exclude anycompatiblearray)
RETURNS TABLE(item_id anycompatible, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user_any'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(anyelement, anycompatible, int, text, boolean, anycompatiblearray) IS
  'top-k items for a user of any id type, with exclusions of the item id type; item_type: a NULL of the model''s item id type; k, model_name, exclude_seen, exclude';

CREATE FUNCTION @extschema@.tim4rec_recommend(items text[], times timestamptz[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_tstz'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(text[], timestamptz[], int, text, boolean, text[]) IS
  'top-k items (text ids) for an ad-hoc sequence of text item ids with timestamptz times; k, model_name, exclude_seen, exclude';
CREATE FUNCTION @extschema@.tim4rec_recommend(items text[], times float8[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_f8'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(text[], float8[], int, text, boolean, text[]) IS
  'top-k items (text ids) for an ad-hoc sequence of text item ids with epoch-second times; k, model_name, exclude_seen, exclude';
CREATE FUNCTION @extschema@.tim4rec_recommend(items uuid[], times timestamptz[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_tstz'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(uuid[], timestamptz[], int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for an ad-hoc sequence of uuid item ids with timestamptz times; k, model_name, exclude_seen, exclude';
CREATE FUNCTION @extschema@.tim4rec_recommend(items uuid[], times float8[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_f8'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(uuid[], float8[], int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for an ad-hoc sequence of uuid item ids with epoch-second times; k, model_name, exclude_seen, exclude';

-- tim4rec_seq over text (or varchar) and uuid item ids (README "Id
-- types"): the same aggregate, giving a sequence type whose items have
-- that type; equal times are ordered by the ids' bytes.  tim4rec_recommend
-- takes those sequences too, item_id of the same type.
CREATE TYPE @extschema@.tim4rec_sequence_text AS (items text[], times float8[]);
COMMENT ON TYPE @extschema@.tim4rec_sequence_text IS
  'interaction sequence with text item ids, oldest first: items text[], times float8[] (epoch seconds); from tim4rec_seq';
CREATE TYPE @extschema@.tim4rec_sequence_uuid AS (items uuid[], times float8[]);
COMMENT ON TYPE @extschema@.tim4rec_sequence_uuid IS
  'interaction sequence with uuid item ids, oldest first: items uuid[], times float8[] (epoch seconds); from tim4rec_seq';
CREATE FUNCTION @extschema@.tim4rec_seq_finalfn_text(internal) RETURNS @extschema@.tim4rec_sequence_text
AS 'MODULE_PATHNAME', 'tim4rec_seq_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.tim4rec_seq_finalfn_text(internal) IS
  'final function of tim4rec_seq over text item ids (internal)';
CREATE FUNCTION @extschema@.tim4rec_seq_finalfn_uuid(internal) RETURNS @extschema@.tim4rec_sequence_uuid
AS 'MODULE_PATHNAME', 'tim4rec_seq_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.tim4rec_seq_finalfn_uuid(internal) IS
  'final function of tim4rec_seq over uuid item ids (internal)';

DO $do$
DECLARE
    t text;
    it text;
BEGIN
    FOREACH it IN ARRAY ARRAY['text', 'uuid']
    LOOP
    FOREACH t IN ARRAY ARRAY['timestamptz', 'timestamp', 'date', 'bigint', 'integer', 'double precision', 'numeric']
    LOOP
        EXECUTE pg_catalog.format($f$
            CREATE FUNCTION @extschema@.tim4rec_seq_transfn(internal, %2$s, %1$s) RETURNS internal
            AS 'MODULE_PATHNAME', 'tim4rec_seq_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
            COMMENT ON FUNCTION @extschema@.tim4rec_seq_transfn(internal, %2$s, %1$s) IS
              'transition function of tim4rec_seq (internal)';
            CREATE FUNCTION @extschema@.tim4rec_seq_transfn(internal, %2$s, %1$s, integer) RETURNS internal
            AS 'MODULE_PATHNAME', 'tim4rec_seq_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
            COMMENT ON FUNCTION @extschema@.tim4rec_seq_transfn(internal, %2$s, %1$s, integer) IS
              'transition function of tim4rec_seq (internal)';
            CREATE AGGREGATE @extschema@.tim4rec_seq(item %2$s, ts %1$s) (
                SFUNC = @extschema@.tim4rec_seq_transfn, STYPE = internal,
                FINALFUNC = @extschema@.tim4rec_seq_finalfn_%2$s,
                COMBINEFUNC = @extschema@.tim4rec_seq_combinefn,
                SERIALFUNC = @extschema@.tim4rec_seq_serialfn, DESERIALFUNC = @extschema@.tim4rec_seq_deserialfn,
                PARALLEL = SAFE);
            COMMENT ON AGGREGATE @extschema@.tim4rec_seq(%2$s, %1$s) IS
              'time-ordered interaction sequence (tim4rec_sequence_%2$s) of a group: item, ts';
            CREATE AGGREGATE @extschema@.tim4rec_seq(item %2$s, ts %1$s, max_len integer) (
                SFUNC = @extschema@.tim4rec_seq_transfn, STYPE = internal,
                FINALFUNC = @extschema@.tim4rec_seq_finalfn_%2$s,
                COMBINEFUNC = @extschema@.tim4rec_seq_combinefn,
                SERIALFUNC = @extschema@.tim4rec_seq_serialfn, DESERIALFUNC = @extschema@.tim4rec_seq_deserialfn,
                PARALLEL = SAFE);
            COMMENT ON AGGREGATE @extschema@.tim4rec_seq(%2$s, %1$s, integer) IS
              'the most recent max_len events of a group as a tim4rec_sequence_%2$s: item, ts, max_len';
        $f$, t, it);
    END LOOP;
    END LOOP;
END
$do$;

CREATE FUNCTION @extschema@.tim4rec_recommend(seq @extschema@.tim4rec_sequence_text, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_seq'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(@extschema@.tim4rec_sequence_text, int, text, boolean, text[]) IS
  'top-k items (text ids) for a tim4rec_sequence_text; k, model_name, exclude_seen, exclude';
CREATE FUNCTION @extschema@.tim4rec_recommend(seq @extschema@.tim4rec_sequence_uuid, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_seq'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(@extschema@.tim4rec_sequence_uuid, int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for a tim4rec_sequence_uuid; k, model_name, exclude_seen, exclude';

-- ---- recommend_all: tim4rec_recommend_all ----
CREATE FUNCTION @extschema@.tim4rec_recommend_all(model_name text DEFAULT 'default', k int DEFAULT 10,
                                                  users anyarray DEFAULT NULL::bigint[],
                                                  exclude_seen boolean DEFAULT true)
RETURNS TABLE(user_id bigint, item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT COST 1000000 ROWS 100000;

COMMENT ON FUNCTION @extschema@.tim4rec_recommend_all(text, int, anyarray, boolean) IS
'Top k items of every user of a model''s source (or of the users array) in one call: model_name, k, users (NULL = all), exclude_seen; equals tim4rec_recommend per user, streamed in batches';

-- ---- warm start: the parent version of a warm start ----
ALTER TABLE @extschema@.tim4rec_models ADD COLUMN parent_model text, ADD COLUMN parent_version int;
COMMENT ON COLUMN @extschema@.tim4rec_models.parent_model IS
  'warm start (options init_from): the model this version continued training from; NULL for a training from scratch or an import';
COMMENT ON COLUMN @extschema@.tim4rec_models.parent_version IS
  'warm start: the version of parent_model this version continued training from';
CREATE OR REPLACE VIEW @extschema@.tim4rec_model_list WITH (security_barrier) AS
SELECT m.model_name, m.version, m.is_current, m.created_at, m.owner,
       m.source_schema, m.source_table, m.user_column, m.item_column, m.time_column, m.order_column,
       pg_catalog.cardinality(m.item_counts) AS n_items, m.config, m.metrics, m.history,
       m.grant_read, m.grant_usage, m.user_id_type, m.item_id_type, m.parent_model, m.parent_version
FROM @extschema@.tim4rec_models m
WHERE @extschema@.tim4rec_model_readable(m.owner, m.grant_read, m.source_schema, m.source_table,
                                         m.user_column, m.item_column, m.time_column, m.order_column);

-- ---- compact evaluation: tim4rec_evaluate_wide ----
CREATE FUNCTION @extschema@.tim4rec_evaluate_wide(model_name text DEFAULT 'default',
                                                  ks int[] DEFAULT '{10,20,50}')
RETURNS TABLE(model text, split text, k int, hr float8, ndcg float8, mrr float8)
AS 'MODULE_PATHNAME', 'tim4rec_evaluate_wide'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT;
COMMENT ON FUNCTION @extschema@.tim4rec_evaluate_wide(text, int[]) IS
  'leave-one-out evaluation, one row per model (tim4rec, most_popular), split and k with columns hr, ndcg, mrr; model_name, ks (default {10,20,50})';

-- comments: the statements of sql/install/90_comments.sql
-- catalog (10_catalog.sql)
-- (the table's comment of 0.2, with the item_keys of the id types)
COMMENT ON TABLE @extschema@.tim4rec_models IS
  'tim4rec models: one row per version; item_ids[r] (bigint ids) or item_keys[r] (text and uuid ids, as text) is the external id of vocabulary row r (row 0, padding, not stored); weights are safetensors; owner, grant_read and grant_usage govern access (functions only)';
COMMENT ON FUNCTION @extschema@.tim4rec_model_readable(name, name[], name, name, name, name, name, name) IS
  'whether the current user may read a catalog row: owner (or member, superuser), a role in grant_read, or SELECT on every row of the source (internal, used by tim4rec_model_list)';
COMMENT ON VIEW @extschema@.tim4rec_model_list IS
  'the model versions the current user may read: name, version, is_current, owner, source, n_items, config, metrics, history, grants, id types';
COMMENT ON FUNCTION @extschema@.tim4rec_deploy(text, int) IS
  'make a version of a model current (switch or roll back); model_name, version; owner only';
COMMENT ON FUNCTION @extschema@.tim4rec_drop(text, int) IS
  'drop one version of a model, or every version when version is NULL; returns the number dropped; model_name, version; owner only';
COMMENT ON FUNCTION @extschema@.tim4rec_export(text) IS
  'the current version of a model as safetensors (official PyTorch tensor names, options in __metadata__.config); model_name; read privilege';
COMMENT ON FUNCTION @extschema@.tim4rec_import(text, bytea, bigint[], jsonb) IS
  'store a safetensors file as a new current version, returns the version; model_name, weights, item_ids (NULL: row i is item i), config (NULL: the file''s)';
COMMENT ON FUNCTION @extschema@.tim4rec_item_ids(text, int) IS
  'bigint item ids of a model version (default: current), element r = vocabulary row r, as tim4rec_import expects; model_name, version; read privilege';
COMMENT ON FUNCTION @extschema@.tim4rec_grant(text, name, text) IS
  'grant a model privilege (''usage'': recommend, evaluate; ''read'': also the catalog row, export) to a role or PUBLIC; model_name, role, privilege; owner only';
COMMENT ON FUNCTION @extschema@.tim4rec_revoke(text, name, text) IS
  'revoke a model privilege (''usage'' or ''read''; NULL: both) from a role or PUBLIC; model_name, role, privilege; owner only';
COMMENT ON FUNCTION @extschema@.tim4rec_alter_owner(text, name) IS
  'give every version of a model to another role; model_name, new_owner; owner only, and a member of new_owner';

-- training (20_train.sql)
COMMENT ON FUNCTION @extschema@.tim4rec_train(regclass, text, name, name, name, jsonb) IS
  'train a model on an interactions relation and store it as a new version; relation, model_name, user_column, item_column, time_column, options (jsonb, README "Options")';
COMMENT ON VIEW @extschema@.tim4rec_progress IS
  'trainings in progress in any session: pid, relation, phase, epoch, step, loss, best validation NDCG@10, rows read';

-- recommendations, the sequence aggregate, evaluation (30_recommend.sql)
COMMENT ON TYPE @extschema@.tim4rec_sequence IS
  'interaction sequence with bigint item ids, oldest first: items bigint[], times float8[] (epoch seconds); from tim4rec_seq';
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(bigint, int, text, boolean, bigint[]) IS
  'top-k items for a user from the user''s recent history in the source relation (cold start: most popular); user_id, k, model_name, exclude_seen, exclude';
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(bigint[], timestamptz[], int, text, boolean, bigint[]) IS
  'top-k items for an ad-hoc sequence of bigint item ids with timestamptz times; items, times, k, model_name, exclude_seen, exclude';
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(bigint[], float8[], int, text, boolean, bigint[]) IS
  'top-k items for an ad-hoc sequence of bigint item ids with epoch-second times; items, times, k, model_name, exclude_seen, exclude';
COMMENT ON FUNCTION @extschema@.tim4rec_recommend(@extschema@.tim4rec_sequence, int, text, boolean, bigint[]) IS
  'top-k items for a tim4rec_sequence (e.g. from tim4rec_seq); seq, k, model_name, exclude_seen, exclude';
COMMENT ON FUNCTION @extschema@.tim4rec_seq_finalfn(internal) IS
  'final function of tim4rec_seq over bigint item ids (internal)';
COMMENT ON FUNCTION @extschema@.tim4rec_seq_combinefn(internal, internal) IS
  'combine function of tim4rec_seq for parallel aggregation (internal)';
COMMENT ON FUNCTION @extschema@.tim4rec_seq_serialfn(internal) IS
  'serialization function of tim4rec_seq for parallel aggregation (internal)';
COMMENT ON FUNCTION @extschema@.tim4rec_seq_deserialfn(bytea, internal) IS
  'deserialization function of tim4rec_seq for parallel aggregation (internal)';
DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['timestamptz', 'timestamp', 'date', 'bigint', 'integer', 'double precision', 'numeric']
    LOOP
        EXECUTE pg_catalog.format($f$
            COMMENT ON FUNCTION @extschema@.tim4rec_seq_transfn(internal, bigint, %1$s) IS
              'transition function of tim4rec_seq (internal)';
            COMMENT ON FUNCTION @extschema@.tim4rec_seq_transfn(internal, bigint, %1$s, integer) IS
              'transition function of tim4rec_seq (internal)';
            COMMENT ON AGGREGATE @extschema@.tim4rec_seq(bigint, %1$s) IS
              'time-ordered interaction sequence (tim4rec_sequence) of a group: item, ts';
            COMMENT ON AGGREGATE @extschema@.tim4rec_seq(bigint, %1$s, integer) IS
              'the most recent max_len events of a group as a tim4rec_sequence: item, ts, max_len';
        $f$, t);
    END LOOP;
END
$do$;
COMMENT ON FUNCTION @extschema@.tim4rec_evaluate(text, int[]) IS
  'leave-one-out HR / NDCG / MRR on validation and test for the model and a most-popular baseline, one row per (model, split, metric, k); model_name, ks (default {10,20,50})';
COMMENT ON FUNCTION @extschema@.tim4rec_shared_model_list() IS
  'the models this database serves from shared memory (shared_preload_libraries): model_name, bytes, segment, row_xmin; for DBAs';

-- ---- recommend_all for every id type ----
CREATE FUNCTION @extschema@.tim4rec_recommend_all(model_name text, k int, users anyarray,
                                                  item_type anycompatible, exclude_seen boolean DEFAULT true)
RETURNS TABLE(user_id anyelement, item_id anycompatible, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT COST 1000000 ROWS 100000;
COMMENT ON FUNCTION @extschema@.tim4rec_recommend_all(text, int, anyarray, anycompatible, boolean) IS
'Top k items of every user for any id types: model_name, k, users (typed array; NULL::text[] = all), item_type (NULL of the item id type), exclude_seen; user_id and item_id in those types';

-- ---- hyper-parameter search: trial / trials in tim4rec_progress ----
CREATE OR REPLACE VIEW @extschema@.tim4rec_progress AS
SELECT s.pid,
       s.datid,
       d.datname,
       CAST(s.relid AS pg_catalog.regclass) AS relation,
       CASE WHEN s.param12 OPERATOR(pg_catalog.=) 1 THEN 'reading interactions'
            WHEN s.param12 OPERATOR(pg_catalog.=) 2 THEN 'building dataset'
            WHEN s.param12 OPERATOR(pg_catalog.=) 3 THEN 'training'
            WHEN s.param12 OPERATOR(pg_catalog.=) 4 THEN 'evaluating'
            WHEN s.param12 OPERATOR(pg_catalog.=) 5 THEN 'saving'
            WHEN s.param12 OPERATOR(pg_catalog.=) 6 THEN 'refitting' END AS phase,
       CAST(s.param13 AS pg_catalog.int4) AS epoch,
       CAST(s.param14 AS pg_catalog.int4) AS max_epochs,
       s.param15 AS step,
       s.param16 AS steps_per_epoch,
       CAST(s.param17 AS pg_catalog.float8) OPERATOR(pg_catalog./) CAST(1e6 AS pg_catalog.float8) AS loss,
       CASE WHEN s.param20 OPERATOR(pg_catalog.>) 0
            THEN CAST(s.param18 AS pg_catalog.float8) OPERATOR(pg_catalog./) CAST(1e6 AS pg_catalog.float8) END
         AS best_valid_ndcg10,
       CAST(s.param20 AS pg_catalog.int4) AS epochs_done,
       s.param19 AS rows_read,
       CASE WHEN s.param9 OPERATOR(pg_catalog.>) 0 THEN CAST(s.param9 AS pg_catalog.int4) END AS trial,
       CASE WHEN s.param9 OPERATOR(pg_catalog.>) 0 THEN CAST(s.param10 AS pg_catalog.int4) END AS trials
FROM pg_catalog.pg_stat_get_progress_info('COPY') s
LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.datid
WHERE s.param11 OPERATOR(pg_catalog.=) 1949594112;
COMMENT ON VIEW @extschema@.tim4rec_progress IS
  'trainings in progress in any session: pid, relation, phase, epoch, step, loss, best validation NDCG@10, rows read, search trial i of trials';

-- ---- per-user evaluation (issue 12 part 3, branch feat/ablation): tim4rec_evaluate_users ----
CREATE FUNCTION @extschema@.tim4rec_evaluate_users(model_name text DEFAULT 'default',
                                                   split text DEFAULT 'test',
                                                   baseline boolean DEFAULT false)
RETURNS TABLE(user_id text, item_id text, rank bigint)
AS 'MODULE_PATHNAME', 'tim4rec_evaluate_users'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT;
COMMENT ON FUNCTION @extschema@.tim4rec_evaluate_users(text, text, boolean) IS
  'per-user leave-one-out evaluation: user_id, held-out item_id (as text) and its 1-based rank among all items, for tim4rec_evaluate''s metrics per user; model_name, split (''test'' or ''valid''), baseline (most-popular instead of the model)';

-- tie_shuffle "auto"'s test, before training (20_train.sql)
-- The test that tie_shuffle "auto" makes before training (README "Equal
-- timestamps"), on the relation as tim4rec_train would read it with these
-- options (order_column and the interaction filters): neighbours of the
-- training histories that share a timestamp, how often the same two items
-- come the same way round, and what "auto" would train.  Needs SELECT on
-- the columns, as training does.
CREATE FUNCTION @extschema@.tim4rec_tie_order(relation regclass,
                                  user_column name DEFAULT 'user_id',
                                  item_column name DEFAULT 'item_id',
                                  time_column name DEFAULT 'ts',
                                  options jsonb DEFAULT '{}')
RETURNS TABLE(tied_pairs bigint, repeated_pairs bigint, agreement float8, z float8,
              ties_ordered_by text, consistent boolean, auto_trains text)
AS 'MODULE_PATHNAME', 'tim4rec_tie_order'
LANGUAGE C STABLE PARALLEL UNSAFE CALLED ON NULL INPUT ROWS 1;
COMMENT ON FUNCTION @extschema@.tim4rec_tie_order(regclass, name, name, name, jsonb) IS
  'the order of equal timestamps as tie_shuffle "auto" tests it before training: tied neighbour pairs, repeated item pairs, agreement, z, ties ordered by, consistent, what auto trains; relation, user_column, item_column, time_column, options (order_column, filters)';

-- Change what a trained version serves (README "Changing what a model
-- serves"): tie_average only, in place (weights' metadata and config; the
-- weights, metrics and history stay).  version NULL: the current version.
-- Returns the new config.  Owner only (42501); other keys 22023.
CREATE FUNCTION @extschema@.tim4rec_set_serving(model_name text, options jsonb, version int DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tim4rec_set_serving'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT;

COMMENT ON FUNCTION @extschema@.tim4rec_set_serving(text, jsonb, int) IS
  'change what a trained version serves (tie_average) in place; model_name, options, version (NULL: current); returns the new config; owner only';
