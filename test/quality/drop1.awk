# drop1.awk - an interactions file (user_id,item_id,ts with a header, sorted
# by user then time, ties in the file's order; as ../shared/data/*/
# interactions.csv) without each user's last event.  The held-out items
# move one step back: the new test target is the old validation target and
# the new validation target the event before it.  test/quality/ablation.sh
# builds the data set <name>-drop1 with it, to check whether a difference
# seen on validation carries over to the next position without reading the
# real test split (test/bench/QUALITY.md, "Does a validation gain carry to
# the next position?").
# Usage: awk -f drop1.awk interactions.csv > drop1.csv
BEGIN { FS = ","; OFS = "," }
NR == 1 { print; next }
{
    if (n > 0 && $1 == pu)
        print prev
    prev = $0; pu = $1; n++
}
