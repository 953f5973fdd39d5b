-- tim4rec_recommend / tim4rec_evaluate with a (tiny) trained model: result
-- shapes and the errors that need a model.  Only counts and codes are
-- shown, so the output does not depend on float round-off.
SET client_min_messages = warning;
SET tim4rec.threads = 1;
CREATE FUNCTION rm_err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE rm_ix AS
SELECT u AS user_id, ((u * 7 + s) % 40 + 1)::bigint AS item_id,
       (1700000000 + (u * 50 + s) * 3600)::bigint AS ts
FROM generate_series(1, 100) u, generate_series(1, 8 + u % 5) s;
SELECT version, users, items FROM tim4rec_train('rm_ix', 'rm',
       options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 10, "batch_size": 64}');
-- shapes: k rows, ranks 1..k, exclusions inside the top-k
SELECT count(*), min(rank), max(rank), count(DISTINCT item_id) FROM tim4rec_recommend(3, 7, 'rm');
SELECT count(*) FROM tim4rec_recommend(3, 1000, 'rm', exclude_seen => false);
SELECT count(*) = 40 - (SELECT count(DISTINCT item_id) FROM rm_ix WHERE user_id = 3) AS all_unseen
FROM tim4rec_recommend(3, 1000, 'rm');
SELECT count(*) FROM tim4rec_recommend(3, 1000, 'rm', false, ARRAY(SELECT g::bigint FROM generate_series(1, 35) g));
SELECT count(*) FROM tim4rec_recommend(3, 1000, 'rm', false, ARRAY[1, 2, 999999]::bigint[]);
SELECT count(*) FROM tim4rec_recommend(ARRAY[1, 2, 3]::bigint[], ARRAY[3, 1, 2]::float8[], 40, 'rm');
SELECT count(*) FROM tim4rec_recommend(ARRAY[]::bigint[], ARRAY[]::timestamptz[], 5, 'rm');
SELECT count(*) FROM tim4rec_recommend(987654, 5, 'rm');
-- bulk through tim4rec_seq and LATERAL
SELECT count(*), count(DISTINCT user_id) FROM
  (SELECT user_id, tim4rec_seq(item_id, ts) AS s FROM rm_ix GROUP BY user_id) q,
  LATERAL tim4rec_recommend(q.s, 3, 'rm') r;
-- evaluation: 2 models x 2 splits x 3 metrics x 3 ks
SELECT model, split, count(*), bool_and(value BETWEEN 0 AND 1) AS in_range
FROM tim4rec_evaluate('rm') GROUP BY model, split ORDER BY model, split;
SELECT array_agg(DISTINCT k ORDER BY k) FROM tim4rec_evaluate('rm', '{5,1}');
-- errors that need a model
SELECT rm_err($$ SELECT * FROM tim4rec_recommend(3, 5, 'rm', true, ARRAY[1, NULL]::bigint[]) $$);
SELECT tim4rec_import('rm_imported', tim4rec_export('rm')) AS imported_version;
SELECT rm_err($$ SELECT * FROM tim4rec_recommend(3, 5, 'rm_imported') $$);
SELECT rm_err($$ SELECT * FROM tim4rec_evaluate('rm_imported') $$);
SELECT count(*) FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 5, 'rm_imported');
ALTER TABLE rm_ix RENAME TO rm_ix_moved;
SELECT rm_err($$ SELECT * FROM tim4rec_recommend(3, 5, 'rm') $$);
SELECT rm_err($$ SELECT * FROM tim4rec_evaluate('rm') $$);
ALTER TABLE rm_ix_moved RENAME TO rm_ix;
-- a role without any privilege on the model or its source
CREATE ROLE regress_rm_nobody;
SET ROLE regress_rm_nobody;
SELECT rm_err($$ SELECT * FROM tim4rec_recommend(3, 5, 'rm') $$);
SELECT rm_err($$ SELECT * FROM tim4rec_evaluate('rm') $$);
SELECT rm_err($$ SELECT count(*) FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 5, 'rm') $$);
RESET ROLE;
-- granted usage: sequences work; the user form still needs SELECT on the source
SELECT tim4rec_grant('rm', 'regress_rm_nobody');
SET ROLE regress_rm_nobody;
SELECT count(*) FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 5, 'rm');
SELECT rm_err($$ SELECT * FROM tim4rec_recommend(3, 5, 'rm') $$);
RESET ROLE;
SELECT tim4rec_revoke('rm', 'regress_rm_nobody');
DROP ROLE regress_rm_nobody;
SELECT tim4rec_drop('rm') + tim4rec_drop('rm_imported') AS dropped;
SELECT rm_err($$ SELECT * FROM tim4rec_recommend(3, 5, 'rm') $$);
DROP TABLE rm_ix;
DROP FUNCTION rm_err(text);
