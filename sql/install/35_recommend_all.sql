-- 35_recommend_all.sql: recommendations for every user in one call.

-- The top k items of every user of the model's source relation (or of the
-- users given), equal to tim4rec_recommend(user, k, model_name,
-- exclude_seen) for each: same items, scores, ranks and ties.  The source is
-- read once, in user order, through a cursor; users are scored in batches
-- on tim4rec.threads threads and the rows come back batch by batch (the
-- function holds one batch, not the result).  users: only these users
-- (any order, each distinct id once; NULLs skipped with a NOTICE; a user
-- without rows gets the cold-start answer); bigint[], integer[] or
-- smallint[].  Rows are ordered by user_id, rank.  Never writes.
CREATE FUNCTION tim4rec_recommend_all(model_name text DEFAULT 'default', k int DEFAULT 10,
                                      users anyarray DEFAULT NULL::bigint[],
                                      exclude_seen boolean DEFAULT true)
RETURNS TABLE(user_id bigint, item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT COST 1000000 ROWS 100000;

COMMENT ON FUNCTION tim4rec_recommend_all(text, int, anyarray, boolean) IS
'Top k items of every user of a model''s source (or of the users array) in one call: model_name, k, users (NULL = all), exclude_seen; equals tim4rec_recommend per user, streamed in batches';

-- The same for every id type: user_id comes back in the users array's
-- element type, item_id in item_type's type (a NULL of the model's item id
-- type), e.g. tim4rec_recommend_all('shop', 10, NULL::text[], NULL::uuid)
-- for text users and uuid items (users NULL::text[] = every user).
CREATE FUNCTION tim4rec_recommend_all(model_name text, k int, users anyarray,
                                      item_type anycompatible, exclude_seen boolean DEFAULT true)
RETURNS TABLE(user_id anyelement, item_id anycompatible, score real, rank int)
AS 'MODULE_PATHNAME', 'tim4rec_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED CALLED ON NULL INPUT COST 1000000 ROWS 100000;

COMMENT ON FUNCTION tim4rec_recommend_all(text, int, anyarray, anycompatible, boolean) IS
'Top k items of every user for any id types: model_name, k, users (typed array; NULL::text[] = all), item_type (NULL of the item id type), exclude_seen; user_id and item_id in those types';
