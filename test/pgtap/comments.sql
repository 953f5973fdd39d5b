-- Every object of the extension explains itself in psql:
-- each function and aggregate (every overload, as \df+ tim4rec* lists
-- them), view, table and type that belongs to the extension (pg_depend
-- deptype 'e') has a description.  Array types and the row types of tables
-- and views are not members in their own right and are left out.  The lists
-- name the objects without a description, so a failure says which.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(8);

CREATE TEMP VIEW members AS
SELECT d.classid, d.objid
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tim4rec')
  AND d.deptype = 'e';

-- not vacuous: the members \dx+ tim4rec lists, and each kind is there
SELECT cmp_ok((SELECT count(*)::int FROM members), '>', 0, '\dx+ tim4rec lists objects');
SELECT cmp_ok((SELECT count(*)::int FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
               WHERE p.prokind = 'a'), '>=', 14, 'the tim4rec_seq aggregates are members');
SELECT cmp_ok((SELECT count(*)::int FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
               WHERE p.proname = 'tim4rec_recommend'), '>=', 10, 'the tim4rec_recommend overloads are members');
SELECT set_has($$ SELECT c.relname::text FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid $$,
               $$ VALUES ('tim4rec_models'), ('tim4rec_model_list'), ('tim4rec_progress') $$,
               'the catalog table and both views are members');
SELECT set_has($$ SELECT t.typname::text FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid $$,
               $$ VALUES ('tim4rec_sequence'), ('tim4rec_sequence_text'), ('tim4rec_sequence_uuid') $$,
               'the sequence types are members');

-- functions and aggregates (every overload)
SELECT is_empty($$
  SELECT p.oid::regprocedure::text
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
  WHERE obj_description(p.oid, 'pg_proc') IS NULL
  ORDER BY 1 $$,
  'every function and aggregate of the extension has a comment');

-- tables and views, and types other than array types and row types of
-- tables / views (a composite type's own pg_class row is skipped: its
-- description is the type's)
SELECT is_empty($$
  SELECT c.oid::regclass::text
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  WHERE c.relkind <> 'c' AND obj_description(c.oid, 'pg_class') IS NULL
  UNION ALL
  SELECT t.oid::regtype::text
  FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
  WHERE t.typcategory <> 'A'
    AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
    AND obj_description(t.oid, 'pg_type') IS NULL
  ORDER BY 1 $$,
  'every table, view and type of the extension has a comment');

-- any other kind of member (operators, casts, ... should one be added)
SELECT is_empty($$
  SELECT pg_describe_object(m.classid, m.objid, 0)
  FROM members m
  WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass)
    AND obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)) IS NULL
  ORDER BY 1 $$,
  'every other member of the extension has a comment');

SELECT * FROM finish();
ROLLBACK;
