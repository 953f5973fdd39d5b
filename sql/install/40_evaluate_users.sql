-- Per-user leave-one-out evaluation (issue 12 part 3): the evaluation of
-- tim4rec_evaluate, one row per user with a target in the split: the user
-- id and the held-out item as text, and the 1-based rank of that item among
-- all the model's items (the same ranking: no masking, equal scores by item
-- row).  HR@k = (rank <= k), NDCG@k = 1/log2(rank + 1), MRR@k = 1/rank when
-- rank <= k: their means over the rows are tim4rec_evaluate's figures.  For
-- paired comparisons of models trained on the same table (README
-- "Evaluation").  baseline: the most-popular baseline instead of the model.
CREATE FUNCTION @extschema@.tim4rec_evaluate_users(model_name text DEFAULT 'default',
                                                   split text DEFAULT 'test',
                                                   baseline boolean DEFAULT false)
RETURNS TABLE(user_id text, item_id text, rank bigint)
AS 'MODULE_PATHNAME', 'tim4rec_evaluate_users'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT;
COMMENT ON FUNCTION @extschema@.tim4rec_evaluate_users(text, text, boolean) IS
  'per-user leave-one-out evaluation: user_id, held-out item_id (as text) and its 1-based rank among all items, for tim4rec_evaluate''s metrics per user; model_name, split (''test'' or ''valid''), baseline (most-popular instead of the model)';
