-- tim4rec_recommend: SQL surface and argument errors.  Errors are
-- shown as SQLSTATE: message so the codes are part of the expected output.
CREATE FUNCTION rec_err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- signatures, volatility and parallel safety
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result,
       p.provolatile AS volatility, p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'tim4rec'
WHERE p.proname IN ('tim4rec_recommend', 'tim4rec_evaluate')
ORDER BY p.proname, arguments;
SELECT format_type(a.atttypid, a.atttypmod) AS attribute_types
FROM pg_attribute a WHERE a.attrelid = 'tim4rec_sequence'::regclass AND a.attnum > 0 ORDER BY a.attnum;
-- k
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1, 0) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1, -5) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1, NULL) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[1]::float8[], 0) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[now()], k => 0) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ROW(ARRAY[1], ARRAY[1])::tim4rec_sequence, 0) $$);
-- unknown model
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1, 10, 'no_such_model') $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[1]::float8[], model_name => 'nope') $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[timestamptz '2020-01-01'], model_name => 'nope') $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ROW(ARRAY[1], ARRAY[1])::tim4rec_sequence, model_name => 'nope') $$);
-- arrays of different lengths, NULL elements, NULL arguments
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1]::float8[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[now(), now()]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ROW(ARRAY[1, 2, 3], ARRAY[1])::tim4rec_sequence) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1, NULL]::bigint[], ARRAY[1, 2]::float8[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1, 2]::bigint[], ARRAY[1, NULL]::float8[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY[NULL]::timestamptz[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(NULL::bigint[], ARRAY[1]::float8[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], NULL::float8[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(NULL::bigint) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(NULL::tim4rec_sequence) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ROW(NULL, ARRAY[1])::tim4rec_sequence) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1, 10, NULL) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(1, 10, 'default', NULL) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY['infinity']::float8[]) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_recommend(ARRAY[1]::bigint[], ARRAY['NaN']::float8[]) $$);
-- the LATERAL pattern over tim4rec_seq parses and reaches the model lookup
SELECT rec_err($$ SELECT q.u, r.* FROM (SELECT 1 AS u, tim4rec_seq(1, 1.0::float8) AS s) q,
                  LATERAL tim4rec_recommend(q.s, 5) r $$);
-- evaluate: arguments
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate('nope') $$);
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate() $$);
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate(NULL) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate('nope', NULL) $$);
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate('nope', '{}') $$);
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate('nope', '{10,0}') $$);
SELECT rec_err($$ SELECT * FROM tim4rec_evaluate('nope', '{10,NULL}') $$);
DROP FUNCTION rec_err(text);
