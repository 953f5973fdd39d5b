-- Demo interactions for tim4rec, generated offline and deterministically.
--
--   psql -v users=3000 -f test/scripts/demo_data.sql     (users defaults to 3000)
--
-- Creates (replaces) the table
--   interactions(user_id bigint, item_id bigint, ts timestamptz, seq bigserial)
-- with an index on (user_id, ts), and the table demo_items(item_id, chain, pos)
-- describing the hidden structure.
--
-- Structure (learnable, both sequential and temporal):
-- * 480 items (ids 1001..1480) form 24 "chains" of 20 items: chain c holds
--   items 1001 + 20*c .. 1020 + 20*c, in order.
-- * Every user starts at a random item and then walks.  The gap before each
--   next interaction is short (1-30 minutes, a binge session) or long (2-20
--   days, the user comes back later), each with probability 1/2.
-- * The next item depends on the current item AND on the gap that led to it:
--   after a short gap the user continues the chain (next position), after a
--   long gap the user switches to the "sister" chain (c*7 + 5) mod 24 at the
--   same position.  So a model that sees the items but not the time can only
--   guess between two candidates; a time-aware model can tell which one.
-- * 10% of the steps are noise: a random item from a popularity-skewed
--   distribution (low ids of each chain are more popular).
-- Users have 12..40 interactions (about 26 on average: ~78k rows for 3000 users).

\if :{?users}
\else
\set users 3000
\endif
SET client_min_messages = warning;
SELECT set_config('tim4rec_demo.users', :'users', false) \gset

DROP TABLE IF EXISTS interactions;
DROP TABLE IF EXISTS demo_items;

CREATE TABLE interactions (
    user_id bigint      NOT NULL,
    item_id bigint      NOT NULL,
    ts      timestamptz NOT NULL,
    seq     bigserial
);

CREATE TABLE demo_items (
    item_id bigint PRIMARY KEY,
    chain   int NOT NULL,
    pos     int NOT NULL
);
INSERT INTO demo_items
SELECT 1001 + 20 * c + p, c, p FROM generate_series(0, 23) c, generate_series(0, 19) p;

DO $demo$
DECLARE
    n_users  int := current_setting('tim4rec_demo.users')::int;
    n_chains constant int := 24;
    chain_len constant int := 20;
    u        int;
    n        int;
    i        int;
    c        int;
    p        int;
    t        timestamptz;
    short_gap boolean;
    items    bigint[];
    times    timestamptz[];
BEGIN
    PERFORM setseed(0.4242);
    FOR u IN 1 .. n_users LOOP
        n := 12 + floor(random() * 29)::int;
        c := floor(random() * n_chains)::int;
        p := floor(random() * chain_len)::int;
        t := date_trunc('second', timestamptz '2024-01-01 00:00:00+00' + random() * interval '60 days');
        items := ARRAY[1001 + chain_len * c + p]::bigint[];
        times := ARRAY[t];
        short_gap := random() < 0.5;   -- the gap that led to the current item
        FOR i IN 2 .. n LOOP
            IF random() < 0.1 THEN
                -- noise: popularity-skewed random item
                c := floor(random() * n_chains)::int;
                p := floor(power(random(), 3) * chain_len)::int;
            ELSIF short_gap THEN
                p := (p + 1) % chain_len;
            ELSE
                c := (c * 7 + 5) % n_chains;
            END IF;
            -- the gap before this next item; it decides the step after it
            short_gap := random() < 0.5;
            IF short_gap THEN
                t := date_trunc('second', t + (1 + random() * 29) * interval '1 minute');
            ELSE
                t := date_trunc('second', t + (2 + random() * 18) * interval '1 day');
            END IF;
            items := items || (1001 + chain_len * c + p)::bigint;
            times := times || t;
        END LOOP;
        INSERT INTO interactions (user_id, item_id, ts)
        SELECT u, x.item, x.ts FROM unnest(items, times) AS x(item, ts);
    END LOOP;
END
$demo$;

CREATE INDEX interactions_user_ts ON interactions (user_id, ts);
ANALYZE interactions;
RESET client_min_messages;

SELECT count(*) AS interactions, count(DISTINCT user_id) AS users,
       count(DISTINCT item_id) AS items, min(ts) AS first_ts, max(ts) AS last_ts
FROM interactions;
