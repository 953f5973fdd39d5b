-- The demo run by `make demo` (test/scripts/demo.sh), on a database that
-- already holds the generated `interactions` table (test/scripts/demo_data.sql:
-- ts = seconds since 2024-01-01 00:00 UTC, shown below as timestamps).
\set ON_ERROR_STOP on
\pset footer off
\timing off

\echo
\echo '=== CREATE EXTENSION tim4rec'
CREATE EXTENSION IF NOT EXISTS tim4rec;

\echo
\echo '=== train (small options so that it finishes quickly; a NOTICE per epoch)'
\timing on
SELECT * FROM tim4rec_train('interactions', 'demo',
    options => '{"preset": "amazon", "max_seq_len": 30, "hidden_size": 32,
                 "dropout_prob": 0.1, "time_dropout": 0.0, "learning_rate": 0.005,
                 "batch_size": 256, "epochs": 8, "patience": 3}');
\timing off

\echo
\echo '=== the models in the catalog'
SELECT model_name, version, is_current, created_at FROM tim4rec_model_list;

\echo
\echo '=== user 1: the last 5 interactions (chain/pos = the hidden series), then the top 10'
SELECT i.item_id, d.chain, d.pos,
       timestamptz '2024-01-01 00:00+00' + i.ts * interval '1 second' AS at,
       justify_hours((i.ts - lag(i.ts) OVER (ORDER BY i.ts, i.seq)) * interval '1 second') AS gap
FROM interactions i JOIN demo_items d USING (item_id)
WHERE user_id = 1 ORDER BY i.ts DESC, i.seq DESC LIMIT 5;
SELECT r.rank, r.item_id, d.chain, d.pos, round(r.score::numeric, 3) AS score
FROM tim4rec_recommend(1, 10, 'demo') r JOIN demo_items d USING (item_id) ORDER BY r.rank;

\echo
\echo '=== user 2: the last 5 interactions, then the top 10'
SELECT i.item_id, d.chain, d.pos,
       timestamptz '2024-01-01 00:00+00' + i.ts * interval '1 second' AS at,
       justify_hours((i.ts - lag(i.ts) OVER (ORDER BY i.ts, i.seq)) * interval '1 second') AS gap
FROM interactions i JOIN demo_items d USING (item_id)
WHERE user_id = 2 ORDER BY i.ts DESC, i.seq DESC LIMIT 5;
SELECT r.rank, r.item_id, d.chain, d.pos, round(r.score::numeric, 3) AS score
FROM tim4rec_recommend(2, 10, 'demo') r JOIN demo_items d USING (item_id) ORDER BY r.rank;

\echo
\echo '=== anonymous sessions: series 0 and 1 alternating with 10-minute gaps, then the'
\echo '    last gap is short (expected: back to series 0, item 1004) or long (stay on series 1, item 1024)'
SELECT 'last gap 10 minutes' AS session, r.rank, r.item_id, d.chain, d.pos
FROM tim4rec_recommend(ARRAY[1001, 1021, 1002, 1022, 1003, 1023]::bigint[],
       ARRAY[1000000, 1000600, 1001200, 1001800, 1002400, 1003000]::float8[],
       3, 'demo') r JOIN demo_items d USING (item_id)
UNION ALL
SELECT 'last gap 10 days', r.rank, r.item_id, d.chain, d.pos
FROM tim4rec_recommend(ARRAY[1001, 1021, 1002, 1022, 1003, 1023]::bigint[],
       ARRAY[1000000, 1000600, 1001200, 1001800, 1002400, 1866400]::float8[],
       3, 'demo') r JOIN demo_items d USING (item_id)
ORDER BY 1 DESC, 2;

\echo
\echo '=== tim4rec_evaluate: leave-one-out HR / NDCG / MRR, the model vs a most-popular baseline'
SELECT * FROM tim4rec_evaluate('demo');
