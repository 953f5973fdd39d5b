-- Golden check of the SQL scoring path: the golden safetensors file,
-- imported with config NULL and item_ids NULL (row i = item i), must give
-- the fixture's expected raw scores for its 9 cases through
-- tim4rec_recommend(items, times float8[], k => 300, exclude_seen => false),
-- within 1e-4 relative L2.  Skipped when ../shared/fixtures is absent.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\if :{?fixtures}
\else
\set fixtures /nonexistent
\endif
SELECT (pg_stat_file(:'fixtures' || '/golden_movielens.safetensors', true)).size IS NOT NULL
   AND (pg_stat_file(:'fixtures' || '/golden_movielens.json', true)).size IS NOT NULL AS have_golden \gset
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'tim4rec_import') AS have_import \gset

BEGIN;
\if :have_golden
SELECT plan(22);

\o /dev/null
\if :have_import
SELECT tim4rec_import('golden', pg_read_binary_file(:'fixtures' || '/golden_movielens.safetensors'));
\else
-- tim4rec_import not there yet: the catalog row by hand
INSERT INTO tim4rec_models (model_name, version, is_current, source_schema, source_table,
                            user_column, item_column, time_column, config, item_ids, item_counts, weights)
SELECT 'golden', 1, true, '', '', '', '', '', '{}',
       ARRAY(SELECT g::bigint FROM generate_series(1, 300) g), array_fill(0::bigint, ARRAY[300]),
       pg_read_binary_file(:'fixtures' || '/golden_movielens.safetensors');
\endif
\o

CREATE TEMP TABLE golden AS
SELECT pg_read_file(:'fixtures' || '/golden_movielens.json')::jsonb AS j;

CREATE TEMP TABLE cases AS
SELECT c.ord::int AS case_no,
       ARRAY(SELECT e::bigint FROM jsonb_array_elements_text(c.cs->'items') WITH ORDINALITY AS x(e, o) ORDER BY o) AS items,
       ARRAY(SELECT e::float8 FROM jsonb_array_elements_text(c.cs->'ts') WITH ORDINALITY AS x(e, o) ORDER BY o) AS ts,
       ARRAY(SELECT e::float8 FROM jsonb_array_elements_text(c.cs->'scores') WITH ORDINALITY AS x(e, o) ORDER BY o) AS expected
FROM golden, jsonb_array_elements(j->'cases') WITH ORDINALITY AS c(cs, ord);

SELECT is((SELECT count(*)::int FROM cases), 9, 'the fixture has 9 cases');

CREATE TEMP TABLE got AS
SELECT c.case_no, r.item_id, r.score, r.rank, c.expected[r.item_id + 1] AS expected
FROM cases c,
     LATERAL tim4rec_recommend(c.items, c.ts, k => 300, model_name => 'golden', exclude_seen => false) r;

-- every case: all 300 items come back, and the scores match within 1e-4 relative L2
SELECT ok(n = 300 AND n_items = 300,
          format('case %s (length %s): k => 300 returns all 300 items once', case_no, len))
FROM (SELECT g.case_no, count(*) AS n, count(DISTINCT item_id) AS n_items, cardinality(c.items) AS len
      FROM got g JOIN cases c USING (case_no) GROUP BY g.case_no, c.items) s
ORDER BY case_no;

SELECT cmp_ok(rel, '<', 1e-4::float8,
              format('case %s: scores match the golden scores (relative L2 %s)', case_no, to_char(rel, '9.99EEEE')))
FROM (SELECT case_no, sqrt(sum((score::float8 - expected) ^ 2)) / sqrt(sum(expected ^ 2)) AS rel
      FROM got GROUP BY case_no) s
ORDER BY case_no;

-- ranks follow the scores: rank 1 is the item with the highest expected score
SELECT is((SELECT count(*)::int FROM got g
           WHERE g.rank = 1
             AND g.item_id = (SELECT i FROM cases c, generate_series(1, 300) i
                              WHERE c.case_no = g.case_no ORDER BY c.expected[i + 1] DESC, i LIMIT 1)),
          9, 'rank 1 is the best expected item in every case');

-- rank numbering 1..300 without gaps, score non-increasing with rank
SELECT is((SELECT count(*)::int FROM (
             SELECT case_no, rank, score, lag(score) OVER (PARTITION BY case_no ORDER BY rank) AS prev
             FROM got) s
           WHERE prev IS NOT NULL AND score > prev), 0, 'scores never increase with rank');

-- sparse external ids (binary-search lookup instead of the dense table): same scores
\o /dev/null
\if :have_import
SELECT tim4rec_import('golden_sparse', pg_read_binary_file(:'fixtures' || '/golden_movielens.safetensors'),
                      ARRAY(SELECT g::bigint * 1000003 + 7 FROM generate_series(1, 300) g));
\else
INSERT INTO tim4rec_models (model_name, version, is_current, source_schema, source_table,
                            user_column, item_column, time_column, config, item_ids, item_counts, weights)
SELECT 'golden_sparse', 1, true, '', '', '', '', '', '{}',
       ARRAY(SELECT g::bigint * 1000003 + 7 FROM generate_series(1, 300) g), array_fill(0::bigint, ARRAY[300]),
       pg_read_binary_file(:'fixtures' || '/golden_movielens.safetensors');
\endif
\o
SELECT is((SELECT count(*)::int FROM cases c,
             LATERAL tim4rec_recommend(ARRAY(SELECT i * 1000003 + 7 FROM unnest(c.items) i), c.ts, k => 300,
                                       model_name => 'golden_sparse', exclude_seen => false) r
           , got g WHERE g.case_no = c.case_no AND g.item_id * 1000003 + 7 = r.item_id
                     AND g.score = r.score AND g.rank = r.rank),
          9 * 300, 'sparse item ids: the same scores and ranks for every case');

SELECT * FROM finish();
\else
SELECT plan(1);
SELECT skip('golden fixture absent (../shared/fixtures)', 1);
SELECT * FROM finish();
\endif
ROLLBACK;
