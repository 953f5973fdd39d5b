# gen_timegap.awk - the positive control of the time ablation (issue 12
# part 3): a synthetic set whose next item depends on the previous items AND
# on a time gap the model sees, the design of test/core/test_synthetic.c,
# written as CSV user_id,item_id,ts (header, sorted by user then time).
#
#   awk -v seed=2020 -f test/quality/gen_timegap.awk > /tmp/timegap.csv
#   variables: seed (2020), users (600), items (20)
#
# Items 1..items, succ(i) = i + 3 (mod items, 1-based).  Each user has 25-54
# interactions; every interaction after the first follows a gap that is
# short (30-90 s) or long (15-25 min), 50/50, independently of everything
# else.  With last item a (reached after gap g, which the model sees) and
# the item b before it: next = succ(a) if g was long, succ(b) if g was
# short.  A model without time can only split its bet between succ(a) and
# succ(b); one that reads the gaps can rank the right one first.  Times are
# Unix seconds from 2020-01-01 (as a real table would hold them).
# (gen_synth.awk is not a positive control for next-item prediction: there
# the gap that decides an item is the one leading into it, which the model
# cannot see when it predicts that item.)
# Random numbers: Park-Miller minimal standard generator in double
# arithmetic (exact in every awk): the same file with mawk and gawk.
function rnd() { rs = (rs * 16807) % 2147483647; return rs / 2147483647 }
function below(n) { return int(rnd() * n) }
function succ(i) { return 1 + (i - 1 + 3) % items }
BEGIN {
    if (seed == "") seed = 2020
    if (users == "") users = 600
    if (items == "") items = 20
    rs = seed % 2147483646 + 1
    print "user_id,item_id,ts"
    for (u = 1; u <= users; u++) {
        m = 25 + below(30)
        item = 1 + below(items)
        t = 1577836800 + below(86400 * 365)
        longgap = rnd() < 0.5
        prev = item
        for (k = 0; k < m; k++) {
            printf "%d,%d,%d\n", u, item, t
            if (k == 0) { prev = item; item = 1 + below(items) }
            else { base = longgap ? item : prev; prev = item; item = succ(base) }
            longgap = rnd() < 0.5
            t += longgap ? 900 + below(601) : 30 + below(61)
        }
    }
}
