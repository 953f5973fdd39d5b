-- tim4rec_recommend and tim4rec_evaluate on a trained model: tiny
-- synthetic data with a sequential chain (item after i is i + 1), small
-- options so each training takes well under a second.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(24);

CREATE TABLE rt AS
SELECT u AS user_id, ((u * 7 + s) % 40 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 50 + s) * interval '1 hour' AS ts
FROM generate_series(1, 120) u, generate_series(1, 10 + u % 7) s;
CREATE INDEX ON rt (user_id, ts);
CREATE TEMP TABLE o(j jsonb);
INSERT INTO o VALUES ('{"epochs": 3, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SELECT is((SELECT version FROM tim4rec_train('rt', 'rt', options => (SELECT j FROM o))), 1, 'trained version 1');

CREATE FUNCTION recs(u bigint, k int DEFAULT 10, ex_seen boolean DEFAULT true) RETURNS bigint[] LANGUAGE sql AS
$$ SELECT array_agg(item_id ORDER BY rank) FROM tim4rec_recommend(u, k, 'rt', ex_seen) $$;
CREATE FUNCTION scores(u bigint) RETURNS real[] LANGUAGE sql AS
$$ SELECT array_agg(score ORDER BY rank) FROM tim4rec_recommend(u, 10, 'rt', false) $$;

-- 2-6: the user form
SELECT is(cardinality(recs(3, 5)), 5, 'k = 5: 5 rows');
SELECT is(cardinality(recs(3, 100)), 40 - (SELECT count(DISTINCT item_id)::int FROM rt WHERE user_id = 3),
          'k above the catalogue, exclude_seen: every unseen item');
SELECT is(cardinality(recs(3, 100, false)), 40, 'k above the catalogue: all 40 items');
SELECT is((SELECT (recs(u, 1, false))[1] FROM (VALUES (5::bigint)) v(u)),
          (SELECT (item_id % 40 + 1)::bigint FROM rt WHERE user_id = 5 ORDER BY ts DESC LIMIT 1),
          'the learnt chain: the next item is recommended first');
SELECT is(recs(3, 10, false), (SELECT array_agg(r.item_id ORDER BY r.rank) FROM
            (SELECT tim4rec_seq(item_id, ts) AS s FROM rt WHERE user_id = 3) q,
            LATERAL tim4rec_recommend(q.s, 10, 'rt', false) r),
          'user form = sequence form on tim4rec_seq of the same rows');

-- 7-8: interactions added after training count at once, without retraining
CREATE TEMP TABLE b AS SELECT recs(5, 3, false) AS r;
INSERT INTO rt VALUES (5, 20, timestamptz '2030-01-01');
SELECT isnt(recs(5, 3, false), (SELECT r FROM b), 'a new interaction changes the recommendations');
SELECT is((SELECT max(version) FROM tim4rec_models WHERE model_name = 'rt'), 1, 'no retraining happened');

-- 9-10: cold start
SELECT is(recs(100000, 5), (SELECT array_agg(id ORDER BY c DESC, id) FROM
            (SELECT id, c FROM tim4rec_models m, unnest(m.item_ids, m.item_counts) AS x(id, c)
             WHERE m.model_name = 'rt' AND m.is_current ORDER BY c DESC, id LIMIT 5) t),
          'unknown user: most popular training items (ties by id)');
SELECT is((SELECT count(*)::int FROM tim4rec_recommend(100000, 100, 'rt')), 40, 'cold start with k = 100: all 40 items');

-- 11-16: evaluation reproduces the training's metrics on unchanged data
DELETE FROM rt WHERE ts >= timestamptz '2030-01-01';
CREATE TEMP TABLE ev AS SELECT * FROM tim4rec_evaluate('rt', '{10}');
SELECT is((SELECT count(*)::int FROM ev), 12, '12 rows for one k');
SELECT ok((SELECT abs(value - (m.metrics->'valid'->>'ndcg@10')::float8) < 1e-9 FROM ev, tim4rec_models m
           WHERE m.model_name = 'rt' AND m.version = 1 AND ev.model = 'tim4rec' AND split = 'valid' AND metric = 'ndcg'),
          'valid NDCG@10 = the training''s');
SELECT ok((SELECT abs(value - (m.metrics->'test'->>'hr@10')::float8) < 1e-9 FROM ev, tim4rec_models m
           WHERE m.model_name = 'rt' AND m.version = 1 AND ev.model = 'tim4rec' AND split = 'test' AND metric = 'hr'),
          'test HR@10 = the training''s');
SELECT ok((SELECT abs(value - (m.metrics->'test'->>'mrr@10')::float8) < 1e-9 FROM ev, tim4rec_models m
           WHERE m.model_name = 'rt' AND m.version = 1 AND ev.model = 'tim4rec' AND split = 'test' AND metric = 'mrr'),
          'test MRR@10 = the training''s');
SELECT ok((SELECT t.value > p.value FROM ev t, ev p WHERE t.model = 'tim4rec' AND p.model = 'most_popular'
           AND t.split = 'test' AND p.split = 'test' AND t.metric = 'ndcg' AND p.metric = 'ndcg'),
          'the model beats most-popular on this sequential data');
INSERT INTO rt SELECT u, 500 + u, timestamptz '2031-01-01' + u * interval '1 s' FROM generate_series(1, 120) u;
SELECT is((SELECT count(*)::int FROM tim4rec_evaluate('rt', '{5,10}')), 24,
          'new items unknown to the model are left out (NOTICE), evaluation still runs');

-- 17-22: cache invalidation: new version, rollback, drop, all in this session
CREATE TEMP TABLE v AS SELECT 1 AS v, scores(7) AS s;
SELECT is((SELECT version FROM tim4rec_train('rt', 'rt', options => (SELECT j || '{"seed": 5}' FROM o))), 2, 'trained version 2');
INSERT INTO v SELECT 2, scores(7);
SELECT isnt((SELECT s FROM v WHERE v = 2), (SELECT s FROM v WHERE v = 1), 'the new version is used at once');
SELECT lives_ok($$ SELECT tim4rec_deploy('rt', 1) $$, 'rollback to version 1');
SELECT is(scores(7), (SELECT s FROM v WHERE v = 1), 'version 1''s scores again');
SELECT lives_ok($$ SELECT tim4rec_drop('rt', 1) $$, 'drop version 1 (the current one)');
SELECT is(scores(7), (SELECT s FROM v WHERE v = 2), 'the remaining version 2 is used');

-- 23-24: models without a source relation
SELECT lives_ok($$ SELECT tim4rec_import('rt_copy', tim4rec_export('rt')) $$, 'export + import');
SELECT throws_ok($$ SELECT * FROM tim4rec_recommend(7, 10, 'rt_copy') $$, '55000', NULL,
                 'user form on an imported model: 55000 (no source relation)');

SELECT * FROM finish();
ROLLBACK;
