-- 90_comments.sql: one-line descriptions (\df+, \dv+, \dT+, \dx+) for the
-- objects of the earlier files that were created without one.  Objects
-- added after this file carry their COMMENT next to their CREATE;
-- test/pgtap/comments.sql fails on any object of the extension without a
-- description.  The same statements are in
-- sql/upgrade/tim4rec--0.2--0.3.sql (section "comments").

-- catalog (10_catalog.sql)
COMMENT ON FUNCTION @extschema@.tim4rec_model_readable(name, name[], name, name, name, name, name, name) IS
  'whether the current user may read a catalog row: owner (or member, superuser), a role in grant_read, or SELECT on every row of the source (internal, used by tim4rec_model_list)';
COMMENT ON VIEW @extschema@.tim4rec_model_list IS
  'the model versions the current user may read: name, version, is_current, owner, source, n_items, config, metrics, history, grants, id types';
COMMENT ON FUNCTION @extschema@.tim4rec_deploy(text, int) IS
  'make a version of a model current (switch or roll back); model_name, version; owner only';
COMMENT ON FUNCTION @extschema@.tim4rec_drop(text, int) IS
  'drop one version of a model, or every version when version is NULL; returns the number dropped; model_name, version; owner only';
COMMENT ON FUNCTION @extschema@.tim4rec_set_serving(text, jsonb, int) IS
  'change what a trained version serves (tie_average) in place; model_name, options, version (NULL: current); returns the new config; owner only';
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
COMMENT ON FUNCTION @extschema@.tim4rec_tie_order(regclass, name, name, name, jsonb) IS
  'the order of equal timestamps as tie_shuffle "auto" tests it before training: tied neighbour pairs, repeated item pairs, agreement, z, ties ordered by, consistent, what auto trains; relation, user_column, item_column, time_column, options (order_column, filters)';
COMMENT ON VIEW @extschema@.tim4rec_progress IS
  'trainings in progress in any session: pid, relation, phase, epoch, step, loss, best validation NDCG@10, rows read, search trial i of trials';

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
