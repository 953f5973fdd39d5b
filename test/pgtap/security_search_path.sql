-- Run-time search_path hijack.  A role with CREATE
-- on a schema in the caller's search_path plants look-alikes of every
-- built-in function, aggregate and operator the extension's internal
-- queries could use (0.1 used an unqualified array_agg(float8) in the
-- catalog insert).  Each trap logs the role it ran as and, if that role is
-- a superuser, makes the planting role a superuser.  A superuser then uses
-- every function of the extension with the planter's schema FIRST in its
-- search_path (worse than the default, where pg_catalog comes first): no
-- trap may run.  The last tests show that the traps are live.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET tim4rec.threads = 1;
BEGIN;
SELECT plan(6);

CREATE ROLE t4r_mallory NOLOGIN;
GRANT CREATE, USAGE ON SCHEMA public TO t4r_mallory;
CREATE TABLE tp AS
SELECT u AS user_id, ((u + s) % 30 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 7 + s) * interval '1 hour' AS ts
FROM generate_series(1, 60) u, generate_series(1, 15) s;

SET LOCAL ROLE t4r_mallory;
CREATE TABLE public.trap_log(who name, what text);
GRANT INSERT, SELECT ON public.trap_log TO PUBLIC;
CREATE FUNCTION public.trap(what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.trap_log VALUES (pg_catalog.current_user(), what);
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()) THEN
    EXECUTE 'ALTER ROLE t4r_mallory SUPERUSER';
  END IF;
END $f$;
-- aggregates
CREATE FUNCTION public.trap_sf8(float8[], float8) RETURNS float8[] LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('array_agg(float8)'); RETURN pg_catalog.array_append($1, $2); END $f$;
CREATE AGGREGATE public.array_agg(float8) (SFUNC = public.trap_sf8, STYPE = float8[]);
CREATE FUNCTION public.trap_max(int, int) RETURNS int LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('max(int)'); RETURN pg_catalog.int4larger($1, $2); END $f$;
CREATE AGGREGATE public.max(int) (SFUNC = public.trap_max, STYPE = int);
CREATE FUNCTION public.trap_boolor(bool, bool) RETURNS bool LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('bool_or'); RETURN $1 OR $2; END $f$;
CREATE AGGREGATE public.bool_or(bool) (SFUNC = public.trap_boolor, STYPE = bool);
-- functions
CREATE FUNCTION public.cardinality(bigint[]) RETURNS int LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('cardinality'); RETURN pg_catalog.cardinality($1); END $f$;
CREATE FUNCTION public.hashtext(text) RETURNS int LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('hashtext'); RETURN pg_catalog.hashtext($1); END $f$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('now'); RETURN pg_catalog.now(); END $f$;
CREATE FUNCTION public.array_append(name[], name) RETURNS name[] LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.trap('array_append'); RETURN pg_catalog.array_append($1, $2); END $f$;
-- operators on every pair of types the internal queries compare
DO $d$
DECLARE
  p text[];
BEGIN
  FOREACH p SLICE 1 IN ARRAY ARRAY[
      ['=', 'text', 'text'], ['=', 'integer', 'integer'], ['=', 'bigint', 'integer'],
      ['=', 'integer', 'bigint'], ['=', 'bigint', 'bigint'], ['=', 'name', 'name'],
      ['=', 'tid', 'tid'], ['=', 'oid', 'oid'], ['<>', 'integer', 'integer'],
      ['>', 'bigint', 'integer'], ['>', 'double precision', 'double precision'],
      ['/', 'bigint', 'double precision'], ['+', 'integer', 'integer'],
      ['->>', 'jsonb', 'text'], ['->', 'jsonb', 'text']]
  LOOP
    EXECUTE pg_catalog.format(
      'CREATE FUNCTION public.%s(a %s, b %s) RETURNS %s LANGUAGE plpgsql AS $t$ '
      'BEGIN PERFORM public.trap(%L); RETURN a OPERATOR(pg_catalog.%s) b; END $t$',
      'trap_op_' || pg_catalog.md5(p[1] || p[2] || p[3]), p[2], p[3],
      CASE p[1] WHEN '/' THEN 'double precision' WHEN '+' THEN 'integer' WHEN '->>' THEN 'text'
                WHEN '->' THEN 'jsonb' ELSE 'boolean' END,
      p[1] || '(' || p[2] || ', ' || p[3] || ')', p[1]);
    EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.%s)',
      p[1], p[2], p[3], 'trap_op_' || pg_catalog.md5(p[1] || p[2] || p[3]));
  END LOOP;
END
$d$;
RESET ROLE;

-- the superuser's session, with the planter's schema first
SET search_path = public, pg_catalog;
SELECT version FROM tim4rec_train('tp', 'hj', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64}');
SELECT version FROM tim4rec_train('tp', 'hj', options => '{"epochs": 1, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "deploy": "if_better", "seed": 7}');
SELECT count(*) FROM tim4rec_recommend(5::bigint, 3, 'hj');
SELECT count(*) FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, 2]::float8[], 3, 'hj');
SELECT count(*) FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY['2024-01-01', '2024-01-02']::timestamptz[], 3, 'hj');
SELECT count(*) FROM tim4rec_evaluate('hj');
SELECT length(tim4rec_export('hj'));
SELECT tim4rec_import('hj2', tim4rec_export('hj'), tim4rec_item_ids('hj'));
SELECT tim4rec_deploy('hj', 1);
SELECT tim4rec_grant('hj', 't4r_mallory', 'usage');
SELECT tim4rec_grant('hj', 'public', 'read');
SELECT tim4rec_revoke('hj', 't4r_mallory');
SELECT tim4rec_alter_owner('hj2', 'postgres');
SELECT * FROM tim4rec_model_list;
SELECT * FROM tim4rec_progress;
SELECT tim4rec_seq(item_id::bigint, ts) FROM tp;
SELECT tim4rec_drop('hj', 2);
SELECT tim4rec_drop('hj2');
RESET search_path;

SELECT is((SELECT count(*)::int FROM public.trap_log), 0, 'no planted function or operator ran');
SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM public.trap_log), NULL, 'list of the traps that ran (none)');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 't4r_mallory'), false, 'the planting role did not become superuser');
SELECT is((SELECT count(*)::int FROM tim4rec_model_list WHERE model_name = 'hj'), 1, 'the calls did their work');

-- the traps are live: a superuser query that resolves through the planted
-- objects runs them (0.1's catalog insert used array_agg(float8) this way,
-- even with the default search_path)
SELECT (SELECT array_agg(x) FROM (VALUES (1.0::float8)) v(x)) IS NOT NULL;
SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM public.trap_log), 'array_agg(float8)',
          'with the default search_path an unqualified array_agg(float8) runs the trap');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 't4r_mallory'), true,
          '... and the planting role becomes superuser (what 0.1 allowed)');

SELECT * FROM finish();
ROLLBACK;
