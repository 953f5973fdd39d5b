# transforms.sh - the data-set variants of test/quality/ablation.sh in one
# table, sourced by ablation.sh (how a variant is made and trained) and
# ablation_report.sh (its section label).  <name>-<suffix> is the data set
# <name> (a directory under QUALITY_DATA) passed through an awk script.  A
# new variant is one line here.  Columns, separated by "|":
#   suffix | awk script | JSON members added to the training options |
#   label in the report after "<name>-<suffix>: <name> " (NAME stands for
#   <name>)
# shellcheck shell=bash
T4R_TRANSFORMS=$(cat <<'TABLE'
qgap|test/quality/qgap.awk||with every event at the time of the user's next event (test/quality/qgap.awk: the time path sees the gap to the event it predicts)
drop1|test/quality/drop1.awk|, "min_user_interactions": 1, "min_item_interactions": 1|without each user's last event (test/quality/drop1.awk: its test target is NAME's validation target, its validation target the event before)
TABLE
)

# the suffix of data set $1 ("" for none)
tf_suffix() { awk -F'|' -v n="$1" 'NF > 1 { s = "-" $1; if (length(n) > length(s) && substr(n, length(n) - length(s) + 1) == s) { print $1; exit } }' <<<"$T4R_TRANSFORMS"; }
# column $2 of suffix $1
tf_field() { awk -F'|' -v s="$1" -v c="$2" '$1 == s { print $c; exit }' <<<"$T4R_TRANSFORMS"; }
# the source data set of $1 (itself without a suffix)
tf_base() { local s; s=$(tf_suffix "$1"); if [ -n "$s" ]; then echo "${1%-"$s"}"; else echo "$1"; fi; }
