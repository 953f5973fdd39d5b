/*
 * ids.h - user and item ids of the common key types (src/ids.c).
 *
 * A model's user and item columns may be smallint, integer, bigint (the
 * "integer" family), text or varchar (the "text" family) or uuid, in any
 * combination.  Every id conversion lives in src/ids.c:
 *
 *  - integer ids are used as they are (int64);
 *  - text and uuid ids are keys (the text, or the uuid's canonical
 *    36-character form).  While reading a relation they are interned in a
 *    T4rKeyDict and replaced by int64 codes, numbered 1..n in the keys' byte
 *    order, so the numerical core (which sorts ids) gives vocabulary rows in
 *    key order.  A loaded model keeps its item keys in a flat, pointer-free
 *    T4rKeys (offsets + bytes + an open-addressing hash table of rows), so
 *    the same layout works in private and in shared memory; its int64
 *    item_ids are then the keys' ranks in byte order (1..V-1), which keeps
 *    "equal scores ordered by item id" and the direct id -> row table.
 *
 * Item lookups are hash lookups (or the direct table for dense integers),
 * never scans.
 */
#ifndef TIM4REC_IDS_H
#define TIM4REC_IDS_H

#include "postgres.h"

typedef enum T4rIdKind
{
	T4R_ID_INT = 0,				/* smallint, integer, bigint */
	T4R_ID_TEXT = 1,			/* text, varchar */
	T4R_ID_UUID = 2
} T4rIdKind;

#define T4R_IDS_SUPPORTED "smallint, integer, bigint, text, varchar or uuid"

/* kind of a (base) type, -1 when not a supported id type */
int			t4r_ids_kind(Oid typid);
/* the catalog's name of a supported id type ("bigint", "text", ...) */
const char *t4r_ids_type_name(Oid typid);
/* catalog name -> type OID (INT8OID for NULL or "", InvalidOid if unknown) */
Oid			t4r_ids_type_oid(const char *name);
/* ERROR 42804 naming the supported types unless typid is one; role is
 * "user" or "item", col the column name */
void		t4r_ids_check_column(Oid typid, const char *role, const char *col, const char *typname);

/* ---- interning keys while reading (text and uuid columns) ---- */
typedef struct T4rKeyDict T4rKeyDict;

T4rKeyDict *t4r_keydict_create(void);	/* in CurrentMemoryContext */
/* the code (1..n, first-seen order until t4r_keydict_finish) of the key of
 * Datum d of kind kind (T4R_ID_TEXT or T4R_ID_UUID) */
int64		t4r_keydict_add(T4rKeyDict *d, Datum value, int kind);
/* renumber the codes by the keys' byte order (1..n) and rewrite
 * codes[0..n-1] accordingly */
void		t4r_keydict_finish(T4rKeyDict *d, int64 *codes, size_t n);
int64		t4r_keydict_count(const T4rKeyDict *d);
/* key of a code (after finish: in sorted order), NUL-terminated */
const char *t4r_keydict_key(const T4rKeyDict *d, int64 code, int *len);

/* ---- flat key vocabulary of a loaded model ---- */
typedef struct T4rKeys
{
	int32		n;				/* keys of rows 1..n (0: an integer model) */
	uint32		nslots;			/* hash slots, a power of two */
	Size		data_len;		/* bytes of data */
	uint64	   *off;			/* [n + 2]: key r is data[off[r], off[r+1]) */
	char	   *data;			/* the keys, each followed by a NUL */
	int32	   *slots;			/* [nslots]: row, 0 = empty */
} T4rKeys;

/* build from keys[1..n] (keys[0] unused) in the current memory context;
 * ERROR (data corrupted) for a duplicate key; *ranks[r] = rank of key r in
 * byte order (1..n), palloc'd, when ranks is not NULL */
void		t4r_keys_build(T4rKeys *k, char **keys, int32 n, int64 **ranks);
/* row of key, -1 when unknown */
int32		t4r_keys_lookup(const T4rKeys *k, const char *key, int len);

/* ---- ids of a loaded model (T4rLoadedModel in tim4rec_pg.h) ---- */
struct T4rLoadedModel;

/* the types recorded for the model (InvalidOid never: bigint by default) */
Oid			t4r_ids_user_type(struct T4rLoadedModel *lm);
Oid			t4r_ids_item_type(struct T4rLoadedModel *lm);

/* ERROR 42804 (with a hint naming the model's id types) unless a value of
 * typid may be used as the model's user id / item id; argname names the
 * argument in the message */
void		t4r_ids_check_user_type(struct T4rLoadedModel *lm, Oid typid, const char *argname);
void		t4r_ids_check_item_type(struct T4rLoadedModel *lm, Oid typid, const char *argname);

/* the type of the parameter that compares with the model's user column
 * (int8, text or uuid) and the value d of type typid as that parameter */
Oid			t4r_ids_user_param_type(struct T4rLoadedModel *lm);
Datum		t4r_ids_user_param(struct T4rLoadedModel *lm, Datum d, Oid typid);

/* vocabulary row of item d (of type typid, checked with
 * t4r_ids_check_item_type), -1 when unknown: a hash lookup */
int32		t4r_ids_lookup_item(struct T4rLoadedModel *lm, Datum d, Oid typid);
/* the id of vocabulary row r (1..V-1) as a Datum of type typid (checked
 * with t4r_ids_check_item_type; palloc'd for text and uuid) */
Datum		t4r_ids_item_datum(struct T4rLoadedModel *lm, int32 row, Oid typid);
/* the id of row r as text (palloc'd) */
char	   *t4r_ids_item_cstring(struct T4rLoadedModel *lm, int32 row);

/* after t4r_pg_read_interactions on the model's source: checks the
 * columns' types against the model's (ERROR 42804) and replaces the items
 * by the model's int64 item ids (t4r_pg_item_row finds them; unknown items
 * get an id no row has) */
struct T4rInteractions;
void		t4r_ids_map_items(struct T4rLoadedModel *lm, struct T4rInteractions *in);

/* a user of t4r_pg_read_interactions' output (in->users[i]) as a Datum of
 * the user column's type in->user_type (text and uuid: palloc'd) */
Datum		t4r_ids_read_user_datum(const struct T4rInteractions *in, int64 user);

/* the SQL cast that reads the model's item column in a query, as
 * "::pg_catalog.int8" or "::pg_catalog.text" (uuid keys are compared as
 * their canonical text); the values then go to t4r_ids_lookup_item with
 * t4r_ids_query_item_type(lm) */
const char *t4r_ids_query_item_cast(struct T4rLoadedModel *lm);
Oid			t4r_ids_query_item_type(struct T4rLoadedModel *lm);

#endif
