#!/usr/bin/env bash
# Install-time search_path hijack.  Before CREATE
# EXTENSION, a role with CREATE on the target schema plants better-matching
# look-alikes of the built-ins that 0.1's install script bound without
# schema qualification: cardinality(bigint[]) (tim4rec_model_list), the
# operator / (bigint, float8) (tim4rec_progress) and format(text, name)
# (the GRANT in a DO block run by the installing superuser; 0.2 only: with
# it, 0.1's script fails to install at all).  Each trap logs
# and, run by a superuser, makes the planter a superuser.  With 0.2 nothing
# runs at install time or when the views are read, and no view depends on
# a planted object.  The same plant against the frozen 0.1 script (when
# installed) shows that the test catches the hole.  Prints TAP.
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
DB=t4r_hijack_$$
q() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
cleanup() {
    "$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS t4r_planter" >/dev/null 2>&1
}
trap cleanup EXIT
SHARE=$("$BIN/pg_config" --sharedir)/extension
HAVE01=0
[ -f "$SHARE/tim4rec--0.1.sql" ] && HAVE01=1

plant() {   # $1: database, $2: 1 = also format(text, name)
    { cat <<'SQL'
SET client_min_messages = warning;
GRANT CREATE, USAGE ON SCHEMA public TO t4r_planter;
CREATE TABLE interactions AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 15) s;
SET ROLE t4r_planter;
CREATE TABLE public.trap_log(who name, what text);
GRANT INSERT, SELECT ON public.trap_log TO PUBLIC;
CREATE FUNCTION public.trap(what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.trap_log VALUES (pg_catalog.current_user(), what);
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()) THEN
    EXECUTE 'ALTER ROLE t4r_planter SUPERUSER';
  END IF;
END $f$;
CREATE FUNCTION public.cardinality(bigint[]) RETURNS int LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('cardinality(bigint[])'); RETURN pg_catalog.cardinality($1); END $f$;
CREATE FUNCTION public.trap_div(bigint, float8) RETURNS float8 LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('/(bigint, float8)'); RETURN $1::float8 OPERATOR(pg_catalog./) $2; END $f$;
CREATE OPERATOR public./ (LEFTARG = bigint, RIGHTARG = float8, FUNCTION = public.trap_div);
SQL
      # (0.1's install script fails outright with this one: format(unknown, text)
      # becomes ambiguous in its aggregate loop, so the control leaves it out)
      [ "$2" = 1 ] && cat <<'SQL'
CREATE FUNCTION public.format(text, name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('format(text, name)'); RETURN pg_catalog.format($1, $2); END $f$;
SQL
      echo "RESET ROLE;"
    } | q -d "$1" >/dev/null
}
# what the superuser does after installing: train, list, watch progress
use_it() {   # $1: database
    q -d "$1" >/dev/null <<'SQL'
SET client_min_messages = warning;
SET tim4rec.threads = 1;
SELECT tim4rec_train('interactions', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SELECT * FROM tim4rec_model_list;
SELECT * FROM tim4rec_progress;
SQL
}

echo "1..$((6 + 3 * HAVE01))"
q -d postgres -c "CREATE ROLE t4r_planter" -c "CREATE DATABASE $DB" >/dev/null
plant "$DB" 1
t4r_ok $? "the planter's functions and operator are in public before CREATE EXTENSION"
q -d "$DB" -c "CREATE EXTENSION tim4rec" >/dev/null
t4r_ok $? "CREATE EXTENSION tim4rec (0.2) into public"
use_it "$DB"
t4r_ok $? "train, read tim4rec_model_list and tim4rec_progress"
log=$(q -d "$DB" -c "SELECT coalesce(string_agg(what, ', '), '') FROM public.trap_log")
[ -z "$log" ]
t4r_ok $? "no planted object ran during install or use (ran: '${log}')"
[ "$(q -d "$DB" -c "SELECT rolsuper FROM pg_roles WHERE rolname = 't4r_planter'")" = f ]
t4r_ok $? "the planter is not a superuser"
DEPS="
  SELECT count(*) FROM pg_depend d
  LEFT JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
  LEFT JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
  WHERE d.classid IN ('pg_rewrite'::regclass, 'pg_proc'::regclass, 'pg_aggregate'::regclass)
    AND (p.proowner = 't4r_planter'::regrole OR o.oprowner = 't4r_planter'::regrole)"
deps=$(q -d "$DB" -c "$DEPS")
[ "$deps" = 0 ]
t4r_ok $? "no view, function or aggregate of the extension depends on a planted object ($deps)"

if [ $HAVE01 = 1 ]; then
    q -d postgres -c "DROP DATABASE $DB" -c "CREATE DATABASE $DB" >/dev/null
    plant "$DB" 0
    q -d "$DB" -c "CREATE EXTENSION tim4rec VERSION '0.1'" >/dev/null
    use_it "$DB"
    log=$(q -d "$DB" -c "SELECT coalesce(string_agg(DISTINCT what, ', ' ORDER BY what), '') FROM public.trap_log")
    [ "$log" = "cardinality(bigint[])" ]
    t4r_ok $? "control: the same plant against the 0.1 script runs the traps (ran: '${log}')"
    [ "$(q -d "$DB" -c "SELECT rolsuper FROM pg_roles WHERE rolname = 't4r_planter'")" = t ]
    t4r_ok $? "control: and the planter became superuser through 0.1"
    deps=$(q -d "$DB" -c "$DEPS")
    [ "$deps" = 2 ]
    t4r_ok $? "control: 0.1's views depend on the planted cardinality and / ($deps)"
fi
