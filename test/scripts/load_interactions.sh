#!/usr/bin/env bash
# Load an interaction file into a table usable by tim4rec_train:
#   TABLE(user_id bigint, item_id bigint, ts bigint | timestamptz, seq bigserial)
# seq numbers the rows in file order (a stable tie-break for equal times);
# an index on (user_id, ts) is created after the load (tim4rec_recommend reads
# a user's recent history through it).
#
# usage: test/scripts/load_interactions.sh [options] FILE
#   -t, --table NAME     target table (default: interactions; may be schema.table)
#   -f, --format FMT     auto (default) | ratings.dat | u.data | ratings.csv | csv
#         ratings.dat    MovieLens 1M/10M: user::item::rating::timestamp
#         u.data         MovieLens 100K: user<TAB>item<TAB>rating<TAB>timestamp
#         ratings.csv    MovieLens latest: header userId,movieId,rating,timestamp
#         csv            generic user_id,item_id,ts (header line optional; extra
#                        columns ignored; ts = epoch seconds, or any timestamp
#                        text with --timestamptz)
#   --timestamptz        store ts as timestamptz (epoch seconds are converted)
#   --replace            drop the table first if it exists
#   --append             append to an existing table (same columns)
#   -d, --dbname DB      database (otherwise PGDATABASE etc., as for psql)
# Connection settings come from the usual libpq variables (PGHOST, PGPORT,
# PGUSER, PGDATABASE).  The file is streamed through `psql \copy`, so it is
# read on the client side and needs no server file access.
# Example (ml-100k):
#   test/scripts/load_interactions.sh --replace -d mydb ../shared/data/ml-100k/u.data
#   psql -d mydb -c "SELECT * FROM tim4rec_train('interactions')"
set -euo pipefail

table=interactions
format=auto
tstz=0
mode=create
db=()
file=
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -t|--table) table=$2; shift 2 ;;
        -f|--format) format=$2; shift 2 ;;
        --timestamptz) tstz=1; shift ;;
        --replace) mode=replace; shift ;;
        --append) mode=append; shift ;;
        -d|--dbname) db=(-d "$2"); shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option: $1" >&2; usage 2 ;;
        *) [ -z "$file" ] || { echo "only one file" >&2; exit 2; }; file=$1; shift ;;
    esac
done
[ -n "$file" ] || usage 2
[ -r "$file" ] || { echo "cannot read $file" >&2; exit 1; }

if [ "$format" = auto ]; then
    base=$(basename "$file")
    first=$(head -c 4096 "$file" | head -n 1)
    case "$base" in
        *.dat) format=ratings.dat ;;
        u.data|*.data) format=u.data ;;
        ratings.csv) format=ratings.csv ;;
        *)
            if [[ "$first" == *::* ]]; then format=ratings.dat
            elif [[ "$first" == *$'\t'* ]]; then format=u.data
            elif [[ "$first" == userId,movieId,* ]]; then format=ratings.csv
            else format=csv
            fi ;;
    esac
fi

# header detection for the generic csv: a first line with a letter in its
# first three fields (and not an ISO timestamp) is a header
csv_header=0
if [ "$format" = csv ]; then
    first=$(head -c 4096 "$file" | head -n 1 | tr -d '\r')
    if printf '%s' "$first" | cut -d, -f1-2 | grep -q '[A-Za-z_]'; then csv_header=1; fi
fi

# stream: the file converted to "user,item,ts" lines
stream() {
    case "$format" in
        ratings.dat) tr -d '\r' <"$file" | sed 's/::/,/g' | cut -d, -f1,2,4 ;;
        u.data)      tr -d '\r' <"$file" | cut -f1,2,4 | tr '\t' ',' ;;
        ratings.csv) tail -n +2 "$file" | tr -d '\r' | cut -d, -f1,2,4 ;;
        csv)         tail -n +$((1 + csv_header)) "$file" | tr -d '\r' | cut -d, -f1-3 ;;
        *) echo "unknown format: $format" >&2; return 2 ;;
    esac
}

ts_type=bigint
# a generic csv with non-numeric times must go through text -> timestamptz
if [ "$tstz" = 1 ]; then ts_type=timestamptz; fi
load_type=$ts_type
if [ "$format" = csv ] && [ "$tstz" = 1 ]; then load_type=text; fi
if [ "$tstz" = 1 ] && [ "$format" != csv ]; then load_type=bigint; fi

# quoted identifier of the table (schema.table allowed)
qtable=$(printf '%s' "$table" | awk -F. '{ for (i = 1; i <= NF; i++) { gsub(/"/, "\"\"", $i); printf "%s\"%s\"", (i > 1 ? "." : ""), $i } }')
stage=$(printf '%s' "${table##*.}_load" | tr -c 'A-Za-z0-9_\n' '_')

psqlc=(psql -X -q -v ON_ERROR_STOP=1 "${db[@]}")
ddl=()
case "$mode" in
    replace) ddl=(-c "DROP TABLE IF EXISTS $qtable") ;;
esac
if [ "$mode" != append ]; then
    ddl+=(-c "CREATE TABLE $qtable (user_id bigint NOT NULL, item_id bigint NOT NULL, ts $ts_type NOT NULL, seq bigserial)")
fi

start=$EPOCHREALTIME
if [ "$load_type" = "$ts_type" ]; then
    # direct COPY into the target: seq follows the file order.  psql -1 runs
    # the -c commands in one transaction; \copy ... FROM pstdin reads our stdin.
    stream | "${psqlc[@]}" -1 "${ddl[@]}" \
        -c "\\copy $qtable (user_id, item_id, ts) FROM pstdin WITH (FORMAT csv)"
else
    # COPY into a temporary staging table, then convert the time column
    if [ "$load_type" = bigint ]; then
        conv="to_timestamp(ts)"
    else
        conv="CASE WHEN ts ~ '^-?[0-9]+(\\.[0-9]*)?\$' THEN to_timestamp(ts::float8) ELSE ts::timestamptz END"
    fi
    stream | "${psqlc[@]}" -1 "${ddl[@]}" \
        -c "CREATE TEMP TABLE \"$stage\" (user_id bigint, item_id bigint, ts $load_type, n bigserial)" \
        -c "\\copy \"$stage\" (user_id, item_id, ts) FROM pstdin WITH (FORMAT csv)" \
        -c "INSERT INTO $qtable (user_id, item_id, ts) SELECT user_id, item_id, $conv FROM \"$stage\" ORDER BY n" \
        -c "DROP TABLE \"$stage\""
fi
idx=$(printf '%s' "${table##*.}_user_ts" | tr -c 'A-Za-z0-9_\n' '_')
"${psqlc[@]}" -c "CREATE INDEX IF NOT EXISTS \"$idx\" ON $qtable (user_id, ts)" -c "ANALYZE $qtable"
end=$EPOCHREALTIME
"${psqlc[@]}" -At -F' ' -c "SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id) FROM $qtable" |
    awk -v t0="$start" -v t1="$end" -v tb="$table" -v f="$format" \
        '{ printf "loaded %s (%s): %s rows, %s users, %s items in %.2f s\n", tb, f, $1, $2, $3, t1 - t0 }'
