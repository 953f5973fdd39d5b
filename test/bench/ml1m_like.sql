-- ml1m_like.sql - the ML-1M-like synthetic interactions table bench_ix of
-- test/bench/pg_latency.sql and test/bench/pg_load.sh: 6,040 users, 3,706
-- items, lengths 20 + LogNormal(median 76, sigma 1.137) capped at 2,314,
-- popularity-skewed items, increasing times per user (~1 M rows, seeded),
-- with an index on (user_id, ts).  Include with \ir.
SELECT setseed(0.4242);
DROP TABLE IF EXISTS bench_ix;
CREATE TABLE bench_ix AS
WITH u AS (
  SELECT g AS user_id,
         least(2314, 20 + floor(exp(ln(76) + 1.137 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))::int AS n
  FROM generate_series(1, 6040) g)
SELECT u.user_id, (1 + floor(3706 * random() ^ 2))::int AS item_id,
       timestamptz '2001-01-01' + make_interval(secs => u.user_id * 10 + j * (60 + 600 * random())) AS ts
FROM u, generate_series(1, u.n) j;
CREATE INDEX bench_ix_user_ts ON bench_ix (user_id, ts);
VACUUM ANALYZE bench_ix;
