-- 20_train.sql: training and its progress view (names schema-qualified, see 10_catalog.sql).

-- Train a model on an interactions relation and store it as a new version
-- (made current unless options.deploy = 'if_better' and the validation
-- NDCG@10 does not improve).  Rows with a NULL in a used column are skipped
-- (a NOTICE gives the count).  options.init_from continues from a stored
-- version (warm start; parent_model / parent_version record it).  See
-- README for the options.
CREATE FUNCTION tim4rec_train(relation regclass,
                              model_name text DEFAULT 'default',
                              user_column name DEFAULT 'user_id',
                              item_column name DEFAULT 'item_id',
                              time_column name DEFAULT 'ts',
                              options jsonb DEFAULT '{}')
RETURNS TABLE(model_name text, version int, users bigint, items bigint,
              interactions bigint, train_samples bigint, epochs_run int,
              best_epoch int, valid_hr10 float8, valid_ndcg10 float8,
              valid_mrr10 float8, test_hr10 float8, test_ndcg10 float8,
              test_mrr10 float8, seconds float8)
AS 'MODULE_PATHNAME', 'tim4rec_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE CALLED ON NULL INPUT ROWS 1;
-- Training creates models: EXECUTE only for the database owner (below) and
-- for roles granted it (README "Privileges").
REVOKE EXECUTE ON FUNCTION tim4rec_train(regclass, text, name, name, name, jsonb) FROM PUBLIC;
DO $grant$
BEGIN
  EXECUTE pg_catalog.format(
    'GRANT EXECUTE ON FUNCTION @extschema@.tim4rec_train(regclass, text, name, name, name, jsonb), '
    '@extschema@.tim4rec_import(text, bytea, bigint[], jsonb) TO %I',
    (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d
     WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
END
$grant$;

-- Trainings in progress (any session).  Reported through the backend
-- progress API under the COPY command type (slots 9-20, slot 11 = marker
-- 1949594112), so pg_stat_progress_copy also shows a row with zeros while
-- a training runs.  trial / trials: the trial of a hyper-parameter search
-- (options.search), NULL otherwise.  Other users' rows need pg_read_all_stats for details.
CREATE VIEW tim4rec_progress AS
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
GRANT SELECT ON tim4rec_progress TO PUBLIC;

-- The test that tie_shuffle "auto" makes before training (README "Equal
-- timestamps"), on the relation as tim4rec_train would read it with these
-- options (order_column and the interaction filters): neighbours of the
-- training histories that share a timestamp, how often the same two items
-- come the same way round, and what "auto" would train.  Needs SELECT on
-- the columns, as training does.
CREATE FUNCTION tim4rec_tie_order(relation regclass,
                                  user_column name DEFAULT 'user_id',
                                  item_column name DEFAULT 'item_id',
                                  time_column name DEFAULT 'ts',
                                  options jsonb DEFAULT '{}')
RETURNS TABLE(tied_pairs bigint, repeated_pairs bigint, agreement float8, z float8,
              ties_ordered_by text, consistent boolean, auto_trains text)
AS 'MODULE_PATHNAME', 'tim4rec_tie_order'
LANGUAGE C STABLE PARALLEL UNSAFE CALLED ON NULL INPUT ROWS 1;
