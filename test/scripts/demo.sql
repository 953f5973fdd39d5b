-- The demo run by `make demo` (test/scripts/demo.sh), on a database that
-- already holds the generated `interactions` table (test/scripts/demo_data.sql).
\set ON_ERROR_STOP on
\pset footer off
\timing off

\echo
\echo '=== CREATE EXTENSION tim4rec'
CREATE EXTENSION IF NOT EXISTS tim4rec;

\echo
\echo '=== train (small options so it finishes in well under a minute; a NOTICE per epoch)'
\timing on
SELECT * FROM tim4rec_train('interactions', 'demo',
    options => '{"preset": "amazon", "max_seq_len": 50, "hidden_size": 32,
                 "dropout_prob": 0.1, "time_dropout": 0.0, "learning_rate": 0.003,
                 "batch_size": 256, "epochs": 12, "patience": 3}');
\timing off

\echo
\echo '=== the models in the catalog'
SELECT model_name, version, is_current, created_at FROM tim4rec_model_list;

\echo
\echo '=== user 1: the last 5 interactions, then the top 10 recommendations'
SELECT i.item_id, d.chain, d.pos, i.ts,
       i.ts - lag(i.ts) OVER (ORDER BY i.ts, i.seq) AS gap
FROM interactions i JOIN demo_items d USING (item_id)
WHERE user_id = 1 ORDER BY i.ts DESC, i.seq DESC LIMIT 5;
SELECT r.rank, r.item_id, d.chain, d.pos, round(r.score::numeric, 3) AS score
FROM tim4rec_recommend(1, 10, 'demo') r JOIN demo_items d USING (item_id) ORDER BY r.rank;

\echo
\echo '=== user 2: the last 5 interactions, then the top 10 recommendations'
SELECT i.item_id, d.chain, d.pos, i.ts,
       i.ts - lag(i.ts) OVER (ORDER BY i.ts, i.seq) AS gap
FROM interactions i JOIN demo_items d USING (item_id)
WHERE user_id = 2 ORDER BY i.ts DESC, i.seq DESC LIMIT 5;
SELECT r.rank, r.item_id, d.chain, d.pos, round(r.score::numeric, 3) AS score
FROM tim4rec_recommend(2, 10, 'demo') r JOIN demo_items d USING (item_id) ORDER BY r.rank;

\echo
\echo '=== an anonymous session: same items, short gaps (continue the chain) vs long gaps (switch chain)'
SELECT 'short gaps' AS session, r.rank, r.item_id, d.chain, d.pos
FROM tim4rec_recommend(ARRAY[1001, 1002, 1003]::bigint[],
       ARRAY['2024-06-01 10:00', '2024-06-01 10:05', '2024-06-01 10:12']::timestamptz[],
       3, 'demo') r JOIN demo_items d USING (item_id)
UNION ALL
SELECT 'long gaps', r.rank, r.item_id, d.chain, d.pos
FROM tim4rec_recommend(ARRAY[1001, 1002, 1003]::bigint[],
       ARRAY['2024-06-01 10:00', '2024-06-01 10:05', '2024-06-12 09:00']::timestamptz[],
       3, 'demo') r JOIN demo_items d USING (item_id)
ORDER BY 1 DESC, 2;

\echo
\echo '=== tim4rec_evaluate: leave-one-out HR / NDCG / MRR, the model vs a most-popular baseline'
SELECT * FROM tim4rec_evaluate('demo');
