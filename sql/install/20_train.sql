-- 20_train.sql (PG-A): training and its progress view.

-- Train a model on an interactions relation and store it as a new version
-- (made current unless options.deploy = 'if_better' and the validation
-- NDCG@10 does not improve).  Rows with a NULL in a used column are skipped
-- (a NOTICE gives the count).  See README for the options.
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

-- Trainings in progress (any session).  Reported through the backend
-- progress API under the COPY command type (slots 11-20, slot 11 = marker
-- 1949594112), so pg_stat_progress_copy also shows a row with zeros while
-- a training runs.  Other users' rows need pg_read_all_stats for details.
CREATE VIEW tim4rec_progress AS
SELECT s.pid,
       s.datid,
       d.datname,
       s.relid::regclass AS relation,
       CASE s.param12 WHEN 1 THEN 'reading interactions'
                      WHEN 2 THEN 'building dataset'
                      WHEN 3 THEN 'training'
                      WHEN 4 THEN 'evaluating'
                      WHEN 5 THEN 'saving' END AS phase,
       s.param13::int AS epoch,
       s.param14::int AS max_epochs,
       s.param15 AS step,
       s.param16 AS steps_per_epoch,
       s.param17 / 1e6::float8 AS loss,
       CASE WHEN s.param20 > 0 THEN s.param18 / 1e6::float8 END AS best_valid_ndcg10,
       s.param20::int AS epochs_done,
       s.param19 AS rows_read
FROM pg_catalog.pg_stat_get_progress_info('COPY') s
LEFT JOIN pg_catalog.pg_database d ON d.oid = s.datid
WHERE s.param11 = 1949594112;
GRANT SELECT ON tim4rec_progress TO PUBLIC;
