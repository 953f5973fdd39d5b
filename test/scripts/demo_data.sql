-- Demo interactions for tim4rec, generated offline and deterministically.
--
--   psql -v users=3000 -f test/scripts/demo_data.sql     (users defaults to 3000)
--
-- Creates (replaces) the table
--   interactions(user_id bigint, item_id bigint, ts bigint, seq bigserial)
-- with an index on (user_id, ts), where ts is in seconds since the start of
-- the log (2024-01-01 00:00 UTC; every user starts within its first day), and
-- the table demo_items(item_id, chain, pos) describing the hidden structure.
--
-- Structure (learnable, both sequential and temporal):
-- * 480 items (ids 1001..1480) form 24 series ("chains") of 20 items: chain c
--   holds items 1001 + 20*c .. 1020 + 20*c, in order; succ(i) is the next
--   item of i's chain (wrapping around).
-- * Users follow two series at once.  The gap before each interaction is
--   short (1-30 minutes) or long (2-20 days), each with probability 1/2.
-- * With a = the last item and b = the item before it, the next item is
--   succ(a) if the gap that led to a was long (after a break the user goes on
--   with what they watched last), succ(b) if it was short (a quick look at a
--   and back to the other series).  A model that ignores time can only guess
--   between succ(a) and succ(b); a time-aware model can tell which.
-- * 10% of the steps are noise: a random item from a popularity-skewed
--   distribution (the first items of every chain are more popular).
-- Users have 10..30 interactions (about 20 on average: ~40k rows for 2000 users).

\if :{?users}
\else
\set users 2000
\endif
SET client_min_messages = warning;
SELECT set_config('tim4rec_demo.users', :'users', false) \gset

DROP TABLE IF EXISTS interactions;
DROP TABLE IF EXISTS demo_items;

CREATE TABLE interactions (
    user_id bigint      NOT NULL,
    item_id bigint      NOT NULL,
    ts      bigint      NOT NULL,   -- seconds since 2024-01-01 00:00 UTC
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
    n_users   int := current_setting('tim4rec_demo.users')::int;
    n_chains  constant int := 24;
    chain_len constant int := 20;
    u         int;
    n         int;
    i         int;
    a         int;          -- last item (0-based index c*chain_len + pos)
    b         int;          -- the item before it
    nxt       int;
    t         bigint;
    long_gap  boolean;      -- the gap that led to a
    items     bigint[];
    times     bigint[];
BEGIN
    PERFORM setseed(0.4242);
    FOR u IN 1 .. n_users LOOP
        n := 10 + floor(random() * 21)::int;
        b := floor(random() * n_chains * chain_len)::int;
        a := floor(random() * n_chains * chain_len)::int;
        t := floor(random() * 86400)::bigint;
        long_gap := random() < 0.5;
        items := ARRAY[1001 + b, 1001 + a]::bigint[];
        times := ARRAY[t, t + CASE WHEN long_gap THEN floor((2 + random() * 18) * 86400)
                                   ELSE floor((1 + random() * 29) * 60) END]::bigint[];
        t := times[2];
        FOR i IN 3 .. n LOOP
            IF random() < 0.1 THEN
                -- noise: popularity-skewed random item
                nxt := floor(random() * n_chains)::int * chain_len
                       + floor(power(random(), 3) * chain_len)::int;
            ELSE
                nxt := CASE WHEN long_gap THEN a ELSE b END;
                nxt := (nxt / chain_len) * chain_len + (nxt % chain_len + 1) % chain_len;
            END IF;
            long_gap := random() < 0.5;       -- the gap that leads to nxt
            t := t + CASE WHEN long_gap THEN floor((2 + random() * 18) * 86400)
                          ELSE floor((1 + random() * 29) * 60) END;
            b := a;
            a := nxt;
            items := items || (1001 + nxt)::bigint;
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
       count(DISTINCT item_id) AS items,
       timestamptz '2024-01-01 00:00+00' + max(ts) * interval '1 second' AS last_interaction
FROM interactions;
