-- Warm start: tim4rec_train(..., options => '{"init_from":
-- ...}') continues from a parent version's weights on the table as it is
-- now.  Known items keep their embedding rows (by external id), new items
-- get the rows a fresh training initialises, dropped items disappear;
-- unspecified options come from the parent; shape-changing options,
-- a preset other than the parent's, a missing parent and missing privileges are errors; the
-- catalog records the parent; deploy "if_better" records why a version
-- stays non-current.
--
-- The rows are compared in the stored safetensors (emb_row below reads row
-- r of item_embedding.weight straight from the file's header offsets).  To
-- compare weights "before training", the warm start and the reference run
-- one epoch with learning_rate 1e-30: an Adam step then moves no weight of
-- the embedding by a representable amount.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(34);

-- row r (0 = padding) of item_embedding.weight ([V, d] float32) of a safetensors file
CREATE FUNCTION emb_row(w bytea, r int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT substring(w FROM 9 + h.hl + o.off0 + r * o.d * 4 FOR o.d * 4)
  FROM (SELECT get_byte(w, 0) + get_byte(w, 1) * 256 + get_byte(w, 2) * 65536 + get_byte(w, 3) * 16777216 AS hl) h,
       LATERAL (SELECT (j -> 'item_embedding.weight' -> 'data_offsets' ->> 0)::int AS off0,
                       (j -> 'item_embedding.weight' -> 'shape' ->> 1)::int AS d
                FROM (SELECT convert_from(substring(w FROM 9 FOR h.hl), 'UTF8')::jsonb AS j) x) o
$$;
-- vocabulary row of an item in a version (item_ids[r] = id of row r)
CREATE FUNCTION row_of(m text, v int, item bigint) RETURNS int LANGUAGE sql STABLE AS $$
  SELECT array_position(item_ids, item) FROM tim4rec_models WHERE model_name = m AND version = v
$$;

CREATE TABLE tw AS
SELECT u AS user_id, ((u * 3 + s) % 30 + 1)::bigint AS item_id,
       timestamptz '2024-01-01' + (u * 13 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 12) s;
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "patience": 3, "seed": 7}');

-- 1-2: the parent
SELECT is((SELECT version FROM tim4rec_train('tw', 'p', options => (SELECT j FROM o))), 1, 'parent p version 1');
SELECT is((SELECT parent_model IS NULL AND parent_version IS NULL FROM tim4rec_model_list WHERE model_name = 'p'), true,
          'a training from scratch has no parent');

-- the table moves on: items 1-3 disappear, items 101-104 arrive (8 users each)
DELETE FROM tw WHERE item_id <= 3;
INSERT INTO tw SELECT u, 100 + (u % 4) + 1, timestamptz '2024-03-01' + u * interval '1 hour'
FROM generate_series(1, 32) u;

-- 3-9: warm start into a new model, learning rate ~0, one epoch
SELECT is((SELECT version FROM tim4rec_train('tw', 'c', options => '{"init_from": "p", "learning_rate": 1e-30, "epochs": 1}')),
          1, 'warm start from p stores c version 1');
SELECT is((SELECT parent_model || ' ' || parent_version FROM tim4rec_model_list WHERE model_name = 'c'), 'p 1',
          'tim4rec_model_list shows the parent version');
SELECT is((SELECT (config ->> 'hidden_size') || ' ' || (config ->> 'max_seq_len') || ' ' || (config ->> 'patience') || ' ' ||
                  (config ->> 'seed') || ' ' || ((config ->> 'learning_rate')::float8 = 1e-30)
           FROM tim4rec_models WHERE model_name = 'c'), '16 20 3 7 true',
          'unset options come from the parent (hidden_size, max_seq_len, patience, seed), set ones from the call');
SELECT is((SELECT array(SELECT unnest(item_ids) ORDER BY 1) FROM tim4rec_models WHERE model_name = 'c'),
          (SELECT array_agg(DISTINCT item_id ORDER BY item_id) FROM tw),
          'the vocabulary is the table''s now: dropped items gone, new items in');
SELECT is((SELECT bool_and(emb_row(c.weights, row_of('c', 1, i)) = emb_row(p.weights, row_of('p', 1, i)))
           FROM tim4rec_models c, tim4rec_models p, generate_series(4, 30) i
           WHERE c.model_name = 'c' AND p.model_name = 'p'), true,
          'known items (4-30) keep the parent''s embedding rows, matched by item id');
SELECT is((SELECT emb_row(c.weights, 0) = emb_row(p.weights, 0)
           FROM tim4rec_models c, tim4rec_models p WHERE c.model_name = 'c' AND p.model_name = 'p'), true,
          'the padding row is the parent''s');
-- the reference: a fresh training on the table as it is now, same options
SELECT is((SELECT version FROM tim4rec_train('tw', 'f', options => (SELECT j || '{"learning_rate": 1e-30, "epochs": 1}' FROM o))),
          1, 'reference f: a fresh training with the same seed');
SELECT is((SELECT bool_and(emb_row(c.weights, row_of('c', 1, i)) = emb_row(f.weights, row_of('f', 1, i)))
           FROM tim4rec_models c, tim4rec_models f, generate_series(101, 104) i
           WHERE c.model_name = 'c' AND f.model_name = 'f'), true,
          'new items (101-104) get the rows a fresh training initialises');
SELECT is((SELECT bool_or(emb_row(c.weights, row_of('c', 1, i)) = emb_row(f.weights, row_of('f', 1, i)))
           FROM tim4rec_models c, tim4rec_models f, generate_series(4, 30) i
           WHERE c.model_name = 'c' AND f.model_name = 'f'), false,
          '... while known items do not (the check can tell the two apart)');

SELECT is((SELECT version FROM tim4rec_train('tw', 'c', options => '{"init_from": "p", "preset": "movielens", "epochs": 1}')), 2,
          'the parent''s own preset is accepted with init_from (it changes nothing)');

-- 13-16: a real warm start continues; explicit versions; the same model name
SELECT is((SELECT version FROM tim4rec_train('tw', 'p', options => '{"init_from": "p"}')), 2,
          'warm start of p from its current version stores p version 2');
SELECT is((SELECT parent_model || ' ' || parent_version || ' ' || is_current FROM tim4rec_model_list WHERE model_name = 'p' AND version = 2),
          'p 1 true', 'p version 2 records parent p version 1 and is deployed');
SELECT is((SELECT version FROM tim4rec_train('tw', 'p', options => '{"init_from": {"model": "p", "version": 1}, "epochs": 1}')), 3,
          'init_from {"model": "p", "version": 1}');
SELECT is((SELECT parent_version FROM tim4rec_model_list WHERE model_name = 'p' AND version = 3), 1,
          'the explicit parent version is recorded');

-- 17-18: deploy "if_better" with no improvement: stored, not current, reason recorded
UPDATE tim4rec_models SET metrics = jsonb_set(metrics, '{valid,ndcg@10}', '1.5') WHERE model_name = 'p' AND is_current;
SELECT is((SELECT version FROM tim4rec_train('tw', 'p', options => '{"init_from": "p", "epochs": 1, "deploy": "if_better"}')), 4,
          'if_better warm start stores version 4');
SELECT is((SELECT NOT is_current AND metrics ->> 'not_deployed' LIKE 'if_better: validation NDCG@10 % does not beat 1.500000 of the current version 3'
           FROM tim4rec_model_list WHERE model_name = 'p' AND version = 4), true,
          'version 4 stays non-current and says why');

-- 19-25: errors, nothing stored
CREATE TEMP TABLE snap AS SELECT model_name, version, is_current FROM tim4rec_models;
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": "p", "hidden_size": 32}') $$,
                 '22023', 'options change the shape of the weights of model "p" version 3',
                 'hidden_size differing from the parent: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": "p", "max_seq_len": 30, "num_layers": 1}') $$,
                 '22023', NULL, 'max_seq_len and num_layers differing from the parent: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": "p", "preset": "amazon"}') $$,
                 '22023', 'option "preset" differs from the parent''s preset', 'another preset than the parent''s: 22023');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": "nosuch"}') $$,
                 '42704', 'model "nosuch" does not exist', 'a missing parent model: 42704');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": {"model": "p", "version": 99}}') $$,
                 '42704', NULL, 'a missing parent version: 42704');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": 3}') $$,
                 '22023', NULL, 'init_from that is not a name or {model, version}: 22023');
SELECT is((SELECT count(*)::int FROM (SELECT model_name, version, is_current FROM tim4rec_models
                                       EXCEPT SELECT * FROM snap) d), 0, 'failed warm starts store nothing');

-- 26-28: text ids: items matched by key; the id type must match the parent's
CREATE TABLE twt AS SELECT user_id, 'sku-' || item_id AS item_id, ts FROM tw WHERE item_id < 100;
SELECT is((SELECT version FROM tim4rec_train('twt', 'pt', options => (SELECT j FROM o))), 1, 'text-keyed parent pt');
INSERT INTO twt SELECT user_id, 'sku-' || item_id, ts FROM tw WHERE item_id > 100;
CREATE TEMP TABLE ctv AS SELECT version FROM tim4rec_train('twt', 'ct', options => '{"init_from": "pt", "learning_rate": 1e-30, "epochs": 1}');
SELECT is((SELECT bool_and(emb_row(c.weights, array_position(c.item_keys, k)) = emb_row(p.weights, array_position(p.item_keys, k)))
              AND count(*) = 27 AND bool_or(array_position(c.item_keys, k) <> array_position(p.item_keys, k))
           FROM tim4rec_models p, tim4rec_models c, unnest(p.item_keys) k
           WHERE p.model_name = 'pt' AND c.model_name = 'ct'), true,
          'text ids: the 27 known items keep the parent''s rows, matched by key (some at other row numbers)');
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'c', options => '{"init_from": "pt"}') $$,
                 '42804', 'item column "item_id" has type bigint, the parent model''s item ids are text',
                 'a bigint item column cannot warm start from a text-keyed parent: 42804');

-- 29-34: privileges: READ on the parent, OWNER of the target
CREATE ROLE t4r_warm_a NOLOGIN;
CREATE ROLE t4r_warm_b NOLOGIN;
GRANT SELECT ON tw TO t4r_warm_b;
GRANT EXECUTE ON FUNCTION tim4rec_train(regclass, text, name, name, name, jsonb) TO t4r_warm_b;
-- t4r_warm_b cannot read p: p's source is readable by b, so take that away via a private copy
CREATE TABLE tw_private AS SELECT * FROM tw;
SELECT lives_ok($$ SELECT tim4rec_train('tw_private', 'q', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}') $$,
                'q trained on a table t4r_warm_b cannot read');
SET LOCAL ROLE t4r_warm_b;
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'bq', options => '{"init_from": "q", "epochs": 1}') $$,
                 '42501', NULL, 'no READ on the parent: 42501');
RESET ROLE;
SELECT lives_ok($$ SELECT tim4rec_grant('q', 't4r_warm_b', 'read') $$, 'grant read on q to t4r_warm_b');
SET LOCAL ROLE t4r_warm_b;
SELECT throws_ok($$ SELECT tim4rec_train('tw', 'p', options => '{"init_from": "q", "epochs": 1}') $$,
                 '42501', NULL, 'READ on the parent but not OWNER of the target model: 42501');
SELECT is((SELECT version FROM tim4rec_train('tw', 'bq', options => '{"init_from": "q", "epochs": 1}')), 1,
          'with READ on the parent and its own target model the warm start works');
SELECT is((SELECT parent_model || ' ' || parent_version || ' ' || owner FROM tim4rec_model_list WHERE model_name = 'bq'),
          'q 1 t4r_warm_b', 'bq records its parent q 1 and belongs to t4r_warm_b');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
