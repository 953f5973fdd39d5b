/*
 * ids.c - user and item ids of the common key types: the only place that
 * converts between SQL values of a model's key types and vocabulary rows
 * (see ids.h for the representation).
 */
#include "postgres.h"

#include <string.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "tim4rec_pg.h"
#include "ids.h"

/* ------------------------------------------------------------------ */
/* types                                                               */
/* ------------------------------------------------------------------ */
int
t4r_ids_kind(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return T4R_ID_INT;
		case TEXTOID:
		case VARCHAROID:
			return T4R_ID_TEXT;
		case UUIDOID:
			return T4R_ID_UUID;
		default:
			return -1;
	}
}

const char *
t4r_ids_type_name(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return "smallint";
		case INT4OID:
			return "integer";
		case INT8OID:
			return "bigint";
		case TEXTOID:
			return "text";
		case VARCHAROID:
			return "character varying";
		case UUIDOID:
			return "uuid";
		default:
			return NULL;
	}
}

Oid
t4r_ids_type_oid(const char *name)
{
	static const Oid all[] = {INT2OID, INT4OID, INT8OID, TEXTOID, VARCHAROID, UUIDOID};

	if (name == NULL || name[0] == '\0')
		return INT8OID;
	for (int i = 0; i < lengthof(all); i++)
		if (strcmp(name, t4r_ids_type_name(all[i])) == 0)
			return all[i];
	return InvalidOid;
}

void
t4r_ids_check_column(Oid typid, const char *role, const char *col, const char *typname)
{
	if (t4r_ids_kind(typid) >= 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("%s column \"%s\" has unsupported type %s", role, col, typname),
			 errhint("The %s column must be " T4R_IDS_SUPPORTED ".", role)));
}

static const char *
kind_name(int kind)
{
	return kind == T4R_ID_INT ? "an integer type (smallint, integer or bigint)" :
		kind == T4R_ID_TEXT ? "text or varchar" : "uuid";
}

/* canonical text of a uuid into buf[37] */
static void
uuid_key(const pg_uuid_t *u, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	int			j = 0;

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[j++] = '-';
		buf[j++] = hex[u->data[i] >> 4];
		buf[j++] = hex[u->data[i] & 15];
	}
	buf[j] = '\0';
}

/* the key bytes of a value of an id type of kind TEXT or UUID (or a text
 * value standing for a uuid key) */
static const char *
datum_key(Datum d, Oid typid, char *buf, int *len)
{
	if (typid == UUIDOID)
	{
		uuid_key(DatumGetUUIDP(d), buf);
		*len = 36;
		return buf;
	}
	else
	{
		text	   *t = DatumGetTextPP(d);

		*len = VARSIZE_ANY_EXHDR(t);
		return VARDATA_ANY(t);
	}
}

static inline uint32
key_hash(const char *key, int len)
{
	return hash_bytes((const unsigned char *) key, len);
}

/* ------------------------------------------------------------------ */
/* interning while reading                                             */
/* ------------------------------------------------------------------ */
struct T4rKeyDict
{
	int64		n;
	int64		cap;			/* of off */
	uint64	   *off;			/* [cap + 1]; key c (1..n) at off[c - 1] .. off[c] */
	char	   *data;
	Size		data_cap;
	uint64		nslots;
	int64	   *slots;			/* code, 0 = empty */
	int64	   *order;			/* after finish: order[c - 1] = old code of new code c */
};

T4rKeyDict *
t4r_keydict_create(void)
{
	T4rKeyDict *d = palloc0(sizeof(T4rKeyDict));

	d->cap = 1024;
	d->off = palloc((d->cap + 1) * sizeof(uint64));
	d->off[0] = 0;
	d->data_cap = 16384;
	d->data = palloc(d->data_cap);
	d->nslots = 4096;
	d->slots = palloc0(d->nslots * sizeof(int64));
	return d;
}

static inline const char *
dict_key(const T4rKeyDict *d, int64 c, int *len)
{
	*len = (int) (d->off[c] - d->off[c - 1] - 1);
	return d->data + d->off[c - 1];
}

static void
dict_rehash(T4rKeyDict *d)
{
	uint64		ns = d->nslots * 2;
	int64	   *s = palloc_extended(ns * sizeof(int64), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	for (int64 c = 1; c <= d->n; c++)
	{
		int			len;
		const char *k = dict_key(d, c, &len);
		uint64		h = key_hash(k, len) & (ns - 1);

		while (s[h] != 0)
			h = (h + 1) & (ns - 1);
		s[h] = c;
	}
	pfree(d->slots);
	d->slots = s;
	d->nslots = ns;
}

int64
t4r_keydict_add(T4rKeyDict *d, Datum value, int kind)
{
	char		buf[40];
	int			len;
	const char *key = datum_key(value, kind == T4R_ID_UUID ? UUIDOID : TEXTOID, buf, &len);
	uint64		h = key_hash(key, len) & (d->nslots - 1);
	int64		c;

	while ((c = d->slots[h]) != 0)
	{
		int			l2;
		const char *k2 = dict_key(d, c, &l2);

		if (l2 == len && memcmp(k2, key, len) == 0)
			return c;
		h = (h + 1) & (d->nslots - 1);
	}
	/* a new key */
	if (d->n == d->cap)
	{
		d->cap *= 2;
		d->off = repalloc_huge(d->off, (d->cap + 1) * sizeof(uint64));
	}
	if (d->off[d->n] + len + 1 > d->data_cap)
	{
		while (d->off[d->n] + len + 1 > d->data_cap)
			d->data_cap *= 2;
		d->data = repalloc_huge(d->data, d->data_cap);
	}
	memcpy(d->data + d->off[d->n], key, len);
	d->data[d->off[d->n] + len] = '\0';
	d->off[d->n + 1] = d->off[d->n] + len + 1;
	c = ++d->n;
	d->slots[h] = c;
	if ((uint64) d->n * 2 > d->nslots)
		dict_rehash(d);
	return c;
}

static int
cmp_keys(const char *a, int la, const char *b, int lb)
{
	int			c = memcmp(a, b, Min(la, lb));

	if (c != 0)
		return c;
	return (la > lb) - (la < lb);
}

static const T4rKeyDict *sort_dict;

static int
cmp_dict_codes(const void *pa, const void *pb)
{
	int			la,
				lb;
	const char *a = dict_key(sort_dict, *(const int64 *) pa, &la);
	const char *b = dict_key(sort_dict, *(const int64 *) pb, &lb);

	return cmp_keys(a, la, b, lb);
}

void
t4r_keydict_finish(T4rKeyDict *d, int64 *codes, size_t n)
{
	int64	   *rank;

	d->order = palloc_extended(Max(d->n, 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	for (int64 c = 1; c <= d->n; c++)
		d->order[c - 1] = c;
	sort_dict = d;
	qsort(d->order, d->n, sizeof(int64), cmp_dict_codes);
	sort_dict = NULL;
	rank = palloc_extended((d->n + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < d->n; i++)
		rank[d->order[i]] = i + 1;
	for (size_t i = 0; i < n; i++)
		codes[i] = rank[codes[i]];
	pfree(rank);
}

int64
t4r_keydict_count(const T4rKeyDict *d)
{
	return d->n;
}

const char *
t4r_keydict_key(const T4rKeyDict *d, int64 code, int *len)
{
	int			l;

	if (d->order)
		code = d->order[code - 1];
	if (len == NULL)
		len = &l;
	return dict_key(d, code, len);
}

/* ------------------------------------------------------------------ */
/* flat vocabulary                                                     */
/* ------------------------------------------------------------------ */
static char **sort_keys;

static int
cmp_key_rows(const void *pa, const void *pb)
{
	const char *a = sort_keys[*(const int32 *) pa];
	const char *b = sort_keys[*(const int32 *) pb];

	return cmp_keys(a, strlen(a), b, strlen(b));
}

void
t4r_keys_build(T4rKeys *k, char **keys, int32 n, int64 **ranks)
{
	Size		total = 0;
	uint32		ns = 16;

	while (ns < (uint32) n * 2 + 1)
		ns <<= 1;
	for (int32 r = 1; r <= n; r++)
		total += strlen(keys[r]) + 1;
	k->n = n;
	k->nslots = ns;
	k->data_len = total;
	k->off = palloc_extended((n + 2) * sizeof(uint64), MCXT_ALLOC_HUGE);
	k->data = palloc_extended(Max(total, 1), MCXT_ALLOC_HUGE);
	k->slots = palloc_extended(ns * sizeof(int32), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	k->off[0] = k->off[1] = 0;
	for (int32 r = 1; r <= n; r++)
	{
		Size		len = strlen(keys[r]);
		uint32		h;

		memcpy(k->data + k->off[r], keys[r], len + 1);
		k->off[r + 1] = k->off[r] + len + 1;
		if (t4r_keys_lookup(k, keys[r], (int) len) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("item id \"%s\" appears twice in the vocabulary", keys[r])));
		h = key_hash(keys[r], (int) len) & (ns - 1);
		while (k->slots[h] != 0)
			h = (h + 1) & (ns - 1);
		k->slots[h] = r;
	}
	if (ranks)
	{
		int32	   *ord = palloc(Max(n, 1) * sizeof(int32));

		*ranks = palloc((n + 1) * sizeof(int64));
		(*ranks)[0] = 0;
		for (int32 r = 1; r <= n; r++)
			ord[r - 1] = r;
		sort_keys = keys;
		qsort(ord, n, sizeof(int32), cmp_key_rows);
		sort_keys = NULL;
		for (int32 i = 0; i < n; i++)
			(*ranks)[ord[i]] = i + 1;
		pfree(ord);
	}
}

int32
t4r_keys_lookup(const T4rKeys *k, const char *key, int len)
{
	uint32		mask = k->nslots - 1;
	uint32		h;
	int32		r;

	if (k->n == 0)
		return -1;
	h = key_hash(key, len) & mask;
	while ((r = k->slots[h]) != 0)
	{
		if (k->off[r + 1] - k->off[r] - 1 == (uint64) len &&
			memcmp(k->data + k->off[r], key, len) == 0)
			return r;
		h = (h + 1) & mask;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* ids of a loaded model                                               */
/* ------------------------------------------------------------------ */
Oid
t4r_ids_user_type(T4rLoadedModel *lm)
{
	return OidIsValid(lm->user_type) ? lm->user_type : INT8OID;
}

Oid
t4r_ids_item_type(T4rLoadedModel *lm)
{
	return OidIsValid(lm->item_type) ? lm->item_type : INT8OID;
}

static void
mismatch(T4rLoadedModel *lm, Oid typid, const char *argname, bool user)
{
	const char *u = t4r_ids_type_name(t4r_ids_user_type(lm));
	const char *i = t4r_ids_type_name(t4r_ids_item_type(lm));
	Oid			want = user ? t4r_ids_user_type(lm) : t4r_ids_item_type(lm);

	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("%s has type %s but model \"%s\" has %s ids of type %s",
					argname, format_type_be(typid), lm->name, user ? "user" : "item",
					t4r_ids_type_name(want)),
			 errdetail("%s ids must be %s.", user ? "User" : "Item",
					   kind_name(t4r_ids_kind(want))),
			 errhint("Model \"%s\" has user ids of type %s and item ids of type %s%s", lm->name, u, i,
					 user ? "; cast the user id, e.g. tim4rec_recommend(user_id::text, ...)." :
					 t4r_ids_kind(want) == T4R_ID_INT ?
					 "; pass items and exclusions as bigint[] (and the item type argument as NULL::bigint)." :
					 t4r_ids_kind(want) == T4R_ID_TEXT ?
					 "; pass items and exclusions as text[] (and the item type argument as NULL::text)." :
					 "; pass items and exclusions as uuid[] (and the item type argument as NULL::uuid).")));
}

void
t4r_ids_check_user_type(T4rLoadedModel *lm, Oid typid, const char *argname)
{
	if (t4r_ids_kind(typid) != t4r_ids_kind(t4r_ids_user_type(lm)))
		mismatch(lm, typid, argname, true);
}

void
t4r_ids_check_item_type(T4rLoadedModel *lm, Oid typid, const char *argname)
{
	if (t4r_ids_kind(typid) != t4r_ids_kind(t4r_ids_item_type(lm)))
		mismatch(lm, typid, argname, false);
}

Oid
t4r_ids_user_param_type(T4rLoadedModel *lm)
{
	switch (t4r_ids_kind(t4r_ids_user_type(lm)))
	{
		case T4R_ID_TEXT:
			return TEXTOID;
		case T4R_ID_UUID:
			return UUIDOID;
		default:
			return INT8OID;
	}
}

Datum
t4r_ids_user_param(T4rLoadedModel *lm, Datum d, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return Int64GetDatum((int64) DatumGetInt16(d));
		case INT4OID:
			return Int64GetDatum((int64) DatumGetInt32(d));
		default:
			return d;			/* int8, text (varchar is binary-compatible), uuid */
	}
}

int32
t4r_ids_lookup_item(T4rLoadedModel *lm, Datum d, Oid typid)
{
	char		buf[40];
	int			len;
	const char *key;

	switch (typid)
	{
		case INT2OID:
			return lm->item_keys->n ? -1 : t4r_pg_item_row(lm, DatumGetInt16(d));
		case INT4OID:
			return lm->item_keys->n ? -1 : t4r_pg_item_row(lm, DatumGetInt32(d));
		case INT8OID:
			return lm->item_keys->n ? -1 : t4r_pg_item_row(lm, DatumGetInt64(d));
		default:
			if (lm->item_keys->n == 0)
				return -1;
			key = datum_key(d, typid, buf, &len);
			return t4r_keys_lookup(lm->item_keys, key, len);
	}
}

char *
t4r_ids_item_cstring(T4rLoadedModel *lm, int32 row)
{
	if (lm->item_keys->n == 0)
		return psprintf(INT64_FORMAT, lm->item_ids[row]);
	return pstrdup(lm->item_keys->data + lm->item_keys->off[row]);
}

Datum
t4r_ids_item_datum(T4rLoadedModel *lm, int32 row, Oid typid)
{
	const T4rKeys *k = lm->item_keys;

	switch (typid)
	{
		case INT2OID:
			return Int16GetDatum((int16) lm->item_ids[row]);
		case INT4OID:
			return Int32GetDatum((int32) lm->item_ids[row]);
		case INT8OID:
			return Int64GetDatum(lm->item_ids[row]);
		case UUIDOID:
			return DirectFunctionCall1(uuid_in, CStringGetDatum(k->data + k->off[row]));
		default:
			return PointerGetDatum(cstring_to_text_with_len(k->data + k->off[row],
															(int) (k->off[row + 1] - k->off[row] - 1)));
	}
}

const char *
t4r_ids_query_item_cast(T4rLoadedModel *lm)
{
	return t4r_ids_kind(t4r_ids_item_type(lm)) == T4R_ID_INT ? "::pg_catalog.int8" : "::pg_catalog.text";
}

Oid
t4r_ids_query_item_type(T4rLoadedModel *lm)
{
	return t4r_ids_kind(t4r_ids_item_type(lm)) == T4R_ID_INT ? INT8OID : TEXTOID;
}

void
t4r_ids_map_items(T4rLoadedModel *lm, T4rInteractions *in)
{
	int64	   *map;
	int64		nk;

	if (t4r_ids_kind(in->user_type) != t4r_ids_kind(t4r_ids_user_type(lm)))
		mismatch(lm, in->user_type, psprintf("user column \"%s\"", lm->user_column), true);
	if (t4r_ids_kind(in->item_type) != t4r_ids_kind(t4r_ids_item_type(lm)))
		mismatch(lm, in->item_type, psprintf("item column \"%s\"", lm->item_column), false);
	if (in->item_dict == NULL)
		return;
	nk = t4r_keydict_count(in->item_dict);
	map = palloc_extended((nk + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	map[0] = PG_INT64_MIN;
	for (int64 c = 1; c <= nk; c++)
	{
		int			len;
		const char *key = t4r_keydict_key(in->item_dict, c, &len);
		int32		r = t4r_keys_lookup(lm->item_keys, key, len);

		map[c] = r > 0 ? lm->item_ids[r] : PG_INT64_MIN;
	}
	for (size_t i = 0; i < in->n; i++)
	{
		in->items[i] = map[in->items[i]];
		if ((i & 0xfffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	pfree(map);
}

Datum
t4r_ids_read_user_datum(const T4rInteractions *in, int64 user)
{
	int			len;
	const char *key;

	switch (in->user_type)
	{
		case INT2OID:
			return Int16GetDatum((int16) user);
		case INT4OID:
			return Int32GetDatum((int32) user);
		case INT8OID:
			return Int64GetDatum(user);
		default:
			key = t4r_keydict_key(in->user_dict, user, &len);
			if (in->user_type == UUIDOID)
				return DirectFunctionCall1(uuid_in, CStringGetDatum(key));
			return PointerGetDatum(cstring_to_text_with_len(key, len));
	}
}
