# qgap.awk - the "query gap" form of an interactions file (user_id,item_id,ts
# with a header, sorted by user then time, ties in the file's order; as
# ../shared/data/*/interactions.csv): every event takes the time of the
# user's NEXT event, the last event of a user keeps its own.  Event order and
# the leave-one-out split are unchanged, but the gap a causal time path reads
# at position l (ts[l] - ts[l-1]) becomes the gap from event l to event l+1:
# at the last input position, the time from the last known event to the
# moment the prediction is asked for (the held-out event's time), which a
# live system knows ("now").  test/quality/ablation.sh builds the data set
# <name>-qgap with it (test/bench/QUALITY.md, "The gap to the next event").
# Usage: awk -F, -f qgap.awk interactions.csv > qgap.csv
BEGIN { FS = ","; OFS = "," }
NR == 1 { print; next }
{
    if (n > 0) {
        t = ($1 == pu) ? $3 : pt
        print pu, pi, t
    }
    pu = $1; pi = $2; pt = $3; n++
}
END { if (n > 0) print pu, pi, pt }
