-- 30_recommend.sql: recommendations, the sequence aggregate, evaluation.
--
-- Recommendations read the model from tim4rec_models (cached per backend and
-- re-checked on every call, so a deploy or drop in any session is seen at
-- once) and never write: STABLE PARALLEL SAFE, usable on a hot standby.
-- COST 10000 (about a millisecond per call) lets the planner put calls in
-- parallel workers, e.g. recommendations for all users of a table with
-- ALTER TABLE users SET (parallel_workers = 2) (small tables are otherwise
-- below min_parallel_table_scan_size).

-- An interaction sequence, oldest first: vocabulary-independent item ids and
-- epoch seconds.  Built by the aggregate tim4rec_seq or by hand.
CREATE TYPE tim4rec_sequence AS (items bigint[], times float8[]);

-- Top-k items for a user from the user's most recent max_seq_len interactions
-- in the model's source relation, read at call time (an index on
-- (user_column, time_column) makes that an index scan).  Items unknown to the
-- model are skipped; a user without usable history gets the most popular
-- items of the training data (score = training count).  exclude_seen
-- excludes every item of the user's history, exclude more items; both are
-- applied inside the top-k selection, so min(k, eligible) rows come back.
-- Ranks start at 1; equal scores are ordered by item id.
CREATE FUNCTION tim4rec_recommend(user_id bigint, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude bigint[] DEFAULT NULL)
RETURNS TABLE(item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;

-- Users keyed by text (or varchar) and by uuid (README "Id types"):
-- item_id (and exclude) have the same type as the user id, which suits
-- models whose users and items share a key type; for other combinations
-- use the form with an item_type argument below.
CREATE FUNCTION tim4rec_recommend(user_id text, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(text, int, text, boolean, text[]) IS
  'top-k items (text ids) for a text-keyed user from the source relation; k, model_name, exclude_seen, exclude';
CREATE FUNCTION tim4rec_recommend(user_id uuid, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(uuid, int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for a uuid-keyed user from the source relation; k, model_name, exclude_seen, exclude';

-- Any combination of user and item id types: item_type is a NULL of the
-- model's item id type (NULL::text, NULL::bigint, NULL::uuid), which gives
-- item_id its type, e.g. tim4rec_recommend(user_uuid, NULL::text, 10, 'shop').
-- k and model_name have no defaults here (so that calls of the bigint form
-- such as tim4rec_recommend(1, NULL) stay unambiguous); the second form
-- takes exclusions of the item id type.
CREATE FUNCTION tim4rec_recommend(user_id anyelement, item_type anycompatible, k int,
                                  model_name text, exclude_seen boolean DEFAULT true)
RETURNS TABLE(item_id anycompatible, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user_any'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(anyelement, anycompatible, int, text, boolean) IS
  'top-k items for a user of any id type; item_type: a NULL of the model''s item id type, which item_id takes; k, model_name, exclude_seen';
CREATE FUNCTION tim4rec_recommend(user_id anyelement, item_type anycompatible, k int,
                                  model_name text, exclude_seen boolean, exclude anycompatiblearray)
RETURNS TABLE(item_id anycompatible, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_user_any'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(anyelement, anycompatible, int, text, boolean, anycompatiblearray) IS
  'top-k items for a user of any id type, with exclusions of the item id type; item_type: a NULL of the model''s item id type; k, model_name, exclude_seen, exclude';

-- Ad-hoc sequence (anonymous session): items with their times, in any order;
-- they are sorted by time, equal times keeping array order, and the most
-- recent max_seq_len count.  exclude_seen excludes the items of the sequence.
CREATE FUNCTION tim4rec_recommend(items bigint[], times timestamptz[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude bigint[] DEFAULT NULL)
RETURNS TABLE(item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_tstz'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;

-- The same with times as epoch seconds.
CREATE FUNCTION tim4rec_recommend(items bigint[], times float8[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude bigint[] DEFAULT NULL)
RETURNS TABLE(item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_f8'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;

-- Text and uuid item ids (README "Id types"): the same forms with items
-- and exclude of the model's item id type; item_id comes back in it.
CREATE FUNCTION tim4rec_recommend(items text[], times timestamptz[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_tstz'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(text[], timestamptz[], int, text, boolean, text[]) IS
  'top-k items (text ids) for an ad-hoc sequence of text item ids with timestamptz times; k, model_name, exclude_seen, exclude';
CREATE FUNCTION tim4rec_recommend(items text[], times float8[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude text[] DEFAULT NULL)
RETURNS TABLE(item_id text, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_f8'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(text[], float8[], int, text, boolean, text[]) IS
  'top-k items (text ids) for an ad-hoc sequence of text item ids with epoch-second times; k, model_name, exclude_seen, exclude';
CREATE FUNCTION tim4rec_recommend(items uuid[], times timestamptz[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_tstz'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(uuid[], timestamptz[], int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for an ad-hoc sequence of uuid item ids with timestamptz times; k, model_name, exclude_seen, exclude';
CREATE FUNCTION tim4rec_recommend(items uuid[], times float8[], k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude uuid[] DEFAULT NULL)
RETURNS TABLE(item_id uuid, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_f8'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;
COMMENT ON FUNCTION tim4rec_recommend(uuid[], float8[], int, text, boolean, uuid[]) IS
  'top-k items (uuid ids) for an ad-hoc sequence of uuid item ids with epoch-second times; k, model_name, exclude_seen, exclude';

-- The same for a tim4rec_sequence (e.g. from tim4rec_seq in a LATERAL join).
CREATE FUNCTION tim4rec_recommend(seq tim4rec_sequence, k int DEFAULT 10,
                                  model_name text DEFAULT 'default',
                                  exclude_seen boolean DEFAULT true,
                                  exclude bigint[] DEFAULT NULL)
RETURNS TABLE(item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_seq'
LANGUAGE C STABLE PARALLEL SAFE CALLED ON NULL INPUT COST 10000 ROWS 10;

-- tim4rec_seq(item, ts [, max_len]): the time-ordered sequence of a group.
-- Equal times are ordered by item id (aggregate input order is not defined);
-- rows with a NULL item or time are skipped; with max_len only the most
-- recent max_len events are kept (and held: the state grows as rows arrive
-- and stays below about 2 * max_len events).  max_len must be between 1 and
-- 1000000 (a model reads at most 4096 items; larger values are mistakes or
-- "no limit", which is the two-argument form or a NULL max_len); anything
-- else is ERROR 22023.  Parallel aggregation capable.
CREATE FUNCTION tim4rec_seq_finalfn(internal) RETURNS tim4rec_sequence
AS 'MODULE_PATHNAME', 'tim4rec_seq_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION tim4rec_seq_combinefn(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'tim4rec_seq_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION tim4rec_seq_serialfn(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'tim4rec_seq_serialfn' LANGUAGE C IMMUTABLE PARALLEL SAFE STRICT;
CREATE FUNCTION tim4rec_seq_deserialfn(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'tim4rec_seq_deserialfn' LANGUAGE C IMMUTABLE PARALLEL SAFE STRICT;

DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['timestamptz', 'timestamp', 'date', 'bigint', 'integer', 'double precision', 'numeric']
    LOOP
        EXECUTE pg_catalog.format($f$
            CREATE FUNCTION tim4rec_seq_transfn(internal, bigint, %1$s) RETURNS internal
            AS 'MODULE_PATHNAME', 'tim4rec_seq_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
            CREATE FUNCTION tim4rec_seq_transfn(internal, bigint, %1$s, integer) RETURNS internal
            AS 'MODULE_PATHNAME', 'tim4rec_seq_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
            CREATE AGGREGATE tim4rec_seq(item bigint, ts %1$s) (
                SFUNC = @extschema@.tim4rec_seq_transfn, STYPE = internal,
                FINALFUNC = @extschema@.tim4rec_seq_finalfn,
                COMBINEFUNC = @extschema@.tim4rec_seq_combinefn,
                SERIALFUNC = @extschema@.tim4rec_seq_serialfn, DESERIALFUNC = @extschema@.tim4rec_seq_deserialfn,
                PARALLEL = SAFE);
            CREATE AGGREGATE tim4rec_seq(item bigint, ts %1$s, max_len integer) (
                SFUNC = @extschema@.tim4rec_seq_transfn, STYPE = internal,
                FINALFUNC = @extschema@.tim4rec_seq_finalfn,
                COMBINEFUNC = @extschema@.tim4rec_seq_combinefn,
                SERIALFUNC = @extschema@.tim4rec_seq_serialfn, DESERIALFUNC = @extschema@.tim4rec_seq_deserialfn,
                PARALLEL = SAFE);
        $f$, t);
    END LOOP;
END
$do$;

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

-- Leave-one-out HR / NDCG / MRR at each k on the validation and test
-- targets, for the model and a most-popular baseline, on the model's source
-- relation as it is now (interactions of items unknown to the model are left
-- out, with a NOTICE).  No masking of seen items (docs/MODEL.md, "Data protocol").
CREATE FUNCTION tim4rec_evaluate(model_name text DEFAULT 'default',
                                 ks int[] DEFAULT '{10,20,50}')
RETURNS TABLE(model text, split text, metric text, k int, value float8)
AS 'MODULE_PATHNAME', 'tim4rec_evaluate'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT;

-- The same evaluation in compact form (README "Evaluation"): one row per
-- model, split and k with the metrics as columns hr, ndcg, mrr; the same
-- numbers as tim4rec_evaluate, computed once.  A separate name rather than
-- a boolean argument: the result columns differ.
CREATE FUNCTION @extschema@.tim4rec_evaluate_wide(model_name text DEFAULT 'default',
                                                  ks int[] DEFAULT '{10,20,50}')
RETURNS TABLE(model text, split text, k int, hr float8, ndcg float8, mrr float8)
AS 'MODULE_PATHNAME', 'tim4rec_evaluate_wide'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT;
COMMENT ON FUNCTION @extschema@.tim4rec_evaluate_wide(text, int[]) IS
  'leave-one-out evaluation, one row per model (tim4rec, most_popular), split and k with columns hr, ndcg, mrr; model_name, ks (default {10,20,50})';

-- The models this database serves from shared memory (one copy per server,
-- with shared_preload_libraries = 'tim4rec'): name, bytes, the segment's
-- handle and the catalog row's xmin.  Empty without the preload.  For DBAs:
-- EXECUTE is not granted to PUBLIC.
CREATE FUNCTION tim4rec_shared_model_list()
RETURNS TABLE(model_name text, bytes bigint, segment bigint, row_xmin bigint)
AS 'MODULE_PATHNAME', 'tim4rec_shared_model_list'
LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE EXECUTE ON FUNCTION tim4rec_shared_model_list() FROM PUBLIC;
