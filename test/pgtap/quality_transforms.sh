#!/usr/bin/env bash
# The data transforms of make quality-ablation, checked in SQL against an
# independent formulation (window functions over the loaded input).
# 1. test/quality/qgap.awk, the "-qgap" data sets of make quality-ablation
# (test/bench/QUALITY.md, "The gap to the next event"): every event takes the
# time of its user's next event, a user's last event keeps its own.  The
# input is generated here (users with equal timestamps, one-event users, an
# unsorted user id order); the awk output is checked in SQL against a
# window function over the loaded input (an independent formulation), and
# the events' order by (time, seq), which decides tim4rec's order and its
# leave-one-out split, must be the same before and after.
# 2. test/quality/drop1.awk, the "-drop1" data sets (test/bench/QUALITY.md,
# "Does a validation gain carry to the next position?"): each user's last
# event by (time, seq) removed, every other event kept in its order.
# Prints TAP.  Uses PGHOST/PGPORT/PGUSER/PGDATABASE.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
export PATH=$T4R_PG_BINDIR:$PATH
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/t4r_qgap.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

echo "1..9"
# users 7, 3, 12 (file order, not sorted), times with ties, user 5 with a
# single event; the file is sorted by user then time within each user
awk 'BEGIN {
    srand(11); print "user_id,item_id,ts"
    split("7 3 12 5", us, " ")
    for (k = 1; k <= 4; k++) {
        n = (us[k] == 5) ? 1 : 6 + k; t = 1000000 * k
        for (i = 0; i < n; i++) {
            if (rand() < 0.6) t += int(rand() * 5000)    # else: a tie
            print us[k] "," int(rand() * 30) + 1 "," t
        }
    }
}' >"$TMP/in.csv"
awk -f "$REPO/test/quality/qgap.awk" "$TMP/in.csv" >"$TMP/out.csv"
t4r_ok $? "qgap.awk runs"
cmp -s <(cut -d, -f1,2 "$TMP/in.csv") <(cut -d, -f1,2 "$TMP/out.csv")
t4r_ok $? "same header, users and items, in the same order"

"$REPO/test/scripts/load_interactions.sh" --replace -t qg_in -f csv "$TMP/in.csv" >/dev/null 2>&1 &&
"$REPO/test/scripts/load_interactions.sh" --replace -t qg_out -f csv "$TMP/out.csv" >/dev/null 2>&1
t4r_ok $? "both files load"

bad=$(q -c "SELECT count(*) FROM
              (SELECT seq, coalesce(lead(ts) OVER (PARTITION BY user_id ORDER BY seq), ts) AS want FROM qg_in) a
              FULL JOIN qg_out b USING (seq)
             WHERE a.want IS DISTINCT FROM b.ts")
[ "$bad" = 0 ]
t4r_ok $? "each event has the time of its user's next event, the last its own (rows differing: $bad)"

bad=$(q -c "SELECT count(*) FROM
              (SELECT seq, row_number() OVER (PARTITION BY user_id ORDER BY ts, seq) r FROM qg_in) a
              JOIN (SELECT seq, row_number() OVER (PARTITION BY user_id ORDER BY ts, seq) r FROM qg_out) b USING (seq)
             WHERE a.r <> b.r")
n=$(q -c "SELECT count(*) FROM qg_in")
[ "$bad" = 0 ] && [ "$n" -ge 25 ]
t4r_ok $? "the order by (time, seq) of every user is unchanged ($n events, $bad moved)"

ties=$(q -c "SELECT count(*) FROM (SELECT user_id, ts FROM qg_in GROUP BY 1, 2 HAVING count(*) > 1) t")
[ "$ties" -gt 0 ]
t4r_ok $? "the input has equal timestamps ($ties groups), so the order check can fail"

# drop1.awk on the same input
awk -f "$REPO/test/quality/drop1.awk" "$TMP/in.csv" >"$TMP/drop1.csv" &&
"$REPO/test/scripts/load_interactions.sh" --replace -t qd_out -f csv "$TMP/drop1.csv" >/dev/null 2>&1
t4r_ok $? "drop1.awk runs and its output loads"
# each event with its place (time, seq) in its user's history; the input's
# last place per user removed must leave exactly the output
bad=$(q -c "WITH a AS (SELECT user_id, item_id, ts, row_number() OVER w AS r, count(*) OVER (PARTITION BY user_id) AS n
                         FROM qg_in WINDOW w AS (PARTITION BY user_id ORDER BY ts, seq)),
                 b AS (SELECT user_id, item_id, ts, row_number() OVER (PARTITION BY user_id ORDER BY ts, seq) AS r FROM qd_out),
                 want AS (SELECT user_id, item_id, ts, r FROM a WHERE r < n)
            SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM b) x) +
                   (SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM want) y)")
[ "$bad" = 0 ]
t4r_ok $? "the output is the input without each user's last event, the rest in order (rows differing: $bad)"
n_in=$(q -c "SELECT count(*) - count(DISTINCT user_id) FROM qg_in")
n_out=$(q -c "SELECT count(*) FROM qd_out")
[ "$n_out" = "$n_in" ] && [ "$n_out" -gt 0 ]
t4r_ok $? "one event fewer per user ($n_out events kept of $(q -c "SELECT count(*) FROM qg_in"))"
