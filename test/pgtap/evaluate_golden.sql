-- tim4rec_evaluate on the golden weights pointed at a synthetic table,
-- checked against an independent computation in SQL: the model's metrics
-- from the ranks that tim4rec_recommend(prefix, k => 300, exclude_seen =>
-- false) gives to each leave-one-out target, the most-popular baseline from
-- training-part counts.  Interactions of items unknown to the model are left
-- out.  Skipped when ../shared/fixtures is absent.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\if :{?fixtures}
\else
\set fixtures /nonexistent
\endif
SELECT (pg_stat_file(:'fixtures' || '/golden_movielens.safetensors', true)).size IS NOT NULL AS have_golden \gset
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'tim4rec_import') AS have_import \gset

BEGIN;
\if :have_golden
SELECT plan(9);

-- 40 users x 30 events over items 1..60 (every item >= 5 times: no filtering),
-- distinct times; plus events of unknown items that must be left out
CREATE TABLE ev (uid int, iid int, t float8);
INSERT INTO ev
SELECT u, ((u * 7 + j * j * 3 + j) % 60) + 1, u * 1e6 + j * 1000 + (j * j % 17)
FROM generate_series(1, 40) u, generate_series(1, 30) j;
INSERT INTO ev SELECT u, 7000 + u, u * 1e6 + 999999 FROM generate_series(1, 40, 3) u;

\set g_table ev
\set g_user uid
\set g_item iid
\set g_time t
\ir golden_model.psql

CREATE TEMP TABLE got AS SELECT * FROM tim4rec_evaluate('g', '{1,10,20}');

SELECT is((SELECT count(*)::int FROM got), 2 * 2 * 3 * 3, '36 rows: 2 models x 2 splits x 3 metrics x 3 ks');
SELECT set_eq($$ SELECT DISTINCT model, split, metric, k FROM got $$,
              $$ SELECT m, s, me, k FROM unnest(ARRAY['tim4rec', 'most_popular']) m, unnest(ARRAY['valid', 'test']) s,
                        unnest(ARRAY['hr', 'ndcg', 'mrr']) me, unnest(ARRAY[1, 10, 20]) k $$,
              'every (model, split, metric, k) once');

-- independent computation
CREATE TEMP TABLE seqs AS
SELECT uid, array_agg(iid::bigint ORDER BY t, iid) AS items, array_agg(t ORDER BY t, iid) AS ts, count(*)::int AS n
FROM ev WHERE iid <= 300 GROUP BY uid;
CREATE TEMP TABLE targets AS
SELECT uid, 'valid' AS split, items[1:n - 2] AS pi, ts[1:n - 2] AS pt, items[n - 1] AS target FROM seqs
UNION ALL
SELECT uid, 'test', items[1:n - 1], ts[1:n - 1], items[n] FROM seqs;
CREATE TEMP TABLE model_ranks AS
SELECT g.uid, g.split, (SELECT r.rank FROM tim4rec_recommend(g.pi, g.pt, k => 300, model_name => 'g', exclude_seen => false) r
                         WHERE r.item_id = g.target) AS rnk
FROM targets g;
-- popularity: counts in the training part (all but the last two events of each user)
CREATE TEMP TABLE pop AS
SELECT i AS iid, (SELECT count(*) FROM seqs s, unnest(s.items[1:s.n - 2]) x WHERE x = i) AS c
FROM generate_series(1, 300) i;
CREATE TEMP TABLE pop_ranks AS
SELECT g.uid, g.split,
       1 + (SELECT count(*) FROM pop p2, pop p1 WHERE p1.iid = g.target
              AND (p2.c > p1.c OR (p2.c = p1.c AND p2.iid < p1.iid)))::int AS rnk
FROM targets g;
CREATE TEMP TABLE want AS
SELECT m, split, me AS metric, k,
       avg(CASE WHEN rnk > k THEN 0
                WHEN me = 'hr' THEN 1
                WHEN me = 'ndcg' THEN 1 / log(2, rnk + 1.0)
                ELSE 1.0 / rnk END)::float8 AS value
FROM (SELECT 'tim4rec' AS m, * FROM model_ranks UNION ALL SELECT 'most_popular', * FROM pop_ranks) r,
     unnest(ARRAY['hr', 'ndcg', 'mrr']) me, unnest(ARRAY[1, 10, 20]) k
GROUP BY m, split, me, k;

SELECT is((SELECT count(*)::int FROM model_ranks WHERE rnk IS NULL), 0, 'every target is ranked by recommend');
SELECT ok((SELECT max(abs(g.value - w.value)) FROM got g JOIN want w ON w.m = g.model AND w.split = g.split
           AND w.metric = g.metric AND w.k = g.k WHERE g.model = 'tim4rec' AND g.split = 'valid') < 1e-6,
          'tim4rec, valid: metrics match the ranks of tim4rec_recommend');
SELECT ok((SELECT max(abs(g.value - w.value)) FROM got g JOIN want w ON w.m = g.model AND w.split = g.split
           AND w.metric = g.metric AND w.k = g.k WHERE g.model = 'tim4rec' AND g.split = 'test') < 1e-6,
          'tim4rec, test: metrics match the ranks of tim4rec_recommend');
SELECT ok((SELECT max(abs(g.value - w.value)) FROM got g JOIN want w ON w.m = g.model AND w.split = g.split
           AND w.metric = g.metric AND w.k = g.k WHERE g.model = 'most_popular') < 1e-9,
          'most_popular: metrics match training-part popularity ranks');
SELECT ok((SELECT bool_and(value BETWEEN 0 AND 1) FROM got), 'all values in [0, 1]');
SELECT ok((SELECT bool_and(a.value <= b.value) FROM got a JOIN got b USING (model, split, metric)
           WHERE a.metric = 'hr' AND a.k < b.k), 'HR grows with k');
SELECT throws_ok($$ SELECT * FROM tim4rec_evaluate('g', '{0}') $$, '22023', NULL, 'k = 0: 22023');

SELECT * FROM finish();
\else
SELECT plan(1);
SELECT skip('golden fixture absent (../shared/fixtures)', 1);
SELECT * FROM finish();
\endif
ROLLBACK;
