/*
 * jsonbuild.c - building jsonb values with PostgreSQL's jsonb API
 * (pushJsonbValue), for the catalog's config, metrics and history columns.
 *
 * Usage: JsonbParseState *st = NULL; t4r_jb_begin(&st, WJB_BEGIN_OBJECT);
 * t4r_jb_key(&st, "a"); t4r_jb_int(&st, 1); ... Jsonb *j = t4r_jb_end(&st,
 * WJB_END_OBJECT).  A value is an object member right after t4r_jb_key,
 * otherwise an array element.  Non-finite doubles become JSON null (JSON
 * has no NaN); finite ones keep their shortest exact text (float8out), as
 * the text form jsonb_in parsed before.
 */
#include "tim4rec_pg.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/numeric.h"

static void
push_value(JsonbParseState **st, JsonbValue *v)
{
	JsonbIteratorToken tok = (*st)->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE;

	(void) pushJsonbValue(st, tok, v);
}

void
t4r_jb_begin(JsonbParseState **st, JsonbIteratorToken tok)
{
	(void) pushJsonbValue(st, tok, NULL);
}

Jsonb *
t4r_jb_end(JsonbParseState **st, JsonbIteratorToken tok)
{
	JsonbValue *res = pushJsonbValue(st, tok, NULL);

	/* the outermost container closed: its value */
	if (*st == NULL)
		return JsonbValueToJsonb(res);
	return NULL;
}

void
t4r_jb_key(JsonbParseState **st, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = pstrdup(key);
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(st, WJB_KEY, &k);
}

void
t4r_jb_null(JsonbParseState **st)
{
	JsonbValue	v;

	v.type = jbvNull;
	push_value(st, &v);
}

void
t4r_jb_str(JsonbParseState **st, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = pstrdup(s);
	v.val.string.len = strlen(s);
	push_value(st, &v);
}

void
t4r_jb_bool(JsonbParseState **st, bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	push_value(st, &v);
}

void
t4r_jb_int(JsonbParseState **st, int64 i)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	push_value(st, &v);
}

void
t4r_jb_float(JsonbParseState **st, double d)
{
	JsonbValue	v;

	if (!isfinite(d))
	{
		t4r_jb_null(st);
		return;
	}
	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														CStringGetDatum(float8out_internal(d)),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	push_value(st, &v);
}

/* a number given by its text (e.g. an unsigned 64-bit value) */
void
t4r_jb_numtext(JsonbParseState **st, const char *text)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														CStringGetDatum(text),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	push_value(st, &v);
}

/* a whole jsonb document as a value (object member or array element) */
void
t4r_jb_jsonb(JsonbParseState **st, Jsonb *j)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(j))
	{
		JsonbValue	s;

		(void) JsonbExtractScalar(&j->root, &s);
		push_value(st, &s);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &j->root;
	v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	push_value(st, &v);
}

/* one scalar JsonbValue (from an iterator) as a value */
void
t4r_jb_value(JsonbParseState **st, JsonbValue *v)
{
	push_value(st, v);
}

/* a || b (top-level keys of b win), as the || operator */
Jsonb *
t4r_jb_concat(Jsonb *a, Jsonb *b)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(a), JsonbPGetDatum(b)));
}

bool
t4r_jb_next_pair(JsonbIterator **it, char **key, JsonbValue *val)
{
	JsonbValue	k;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(it, &k, true)) != WJB_DONE)
		if (tok == WJB_KEY)
		{
			*key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(it, val, true);
			return true;
		}
	return false;
}
