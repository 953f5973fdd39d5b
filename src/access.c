/*
 * access.c - how the glue reaches the model catalog, and who may do what
 * with a model.
 *
 * The catalog session.  The catalog table (tim4rec_models) grants nothing
 * to anyone: every read and write of it goes through t4r_pg_catalog_begin /
 * _end, which (1) switch the current user to the catalog's owner as a
 * security-restricted operation, the way PostgreSQL runs referential
 * integrity queries as the table owner, and (2) pin search_path to
 * "pg_catalog, pg_temp" for the duration, so that no internal query can
 * resolve a function or operator through a schema the caller (or anyone
 * with CREATE on a schema in the caller's path) controls.  Every internal
 * query is also written with schema-qualified names; the fixed path is the
 * second line of defence.  The checks that decide whether the caller may
 * do something are made in C with the caller's identity, saved before the
 * switch.  Errors need no cleanup: (sub)transaction abort restores the
 * user and the GUC nest level.
 *
 * A catalog still in the 0.1 layout (library upgraded, ALTER EXTENSION
 * tim4rec UPDATE not run yet) has no owner or grant columns: it keeps
 * working, with no owner (only superusers manage existing models) and no
 * grants, until the update.
 *
 * Model privileges (README "Privileges"):
 *   OWNER  the role named in the catalog's owner column (the role that
 *          created version 1), its members and superusers: add versions
 *          (train, import), deploy, drop, grant, revoke, change the owner;
 *   READ   OWNER, roles granted 'read', and roles that may read every row
 *          of the model's source: SELECT on the relation (or on all the
 *          columns the model uses) and no row-level security in force for
 *          them.  READ shows the catalog row (tim4rec_model_list), the
 *          vocabulary (tim4rec_item_ids) and the weights (tim4rec_export);
 *   USAGE  READ or roles granted 'usage': tim4rec_recommend (including its
 *          cold-start popularity order) and tim4rec_evaluate.
 * Granting to PUBLIC stores the name "public".
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"

#include "tim4rec_pg.h"

PG_FUNCTION_INFO_V1(tim4rec_model_readable);

/* ------------------------------------------------------------------ */
/* the extension's schema and the catalog relation                     */
/* ------------------------------------------------------------------ */
/*
 * The one lookup of the extension's schema: by the extension's OID in
 * pg_extension, cached per backend and redone when the extension was
 * re-created (its OID changed).
 */
static Oid	cached_ext_oid = InvalidOid;
static Oid	cached_nsp = InvalidOid;
static char *cached_schema = NULL;	/* TopMemoryContext */
static char *cached_table = NULL;	/* quoted schema.table, TopMemoryContext */

static void
lookup_extension(void)
{
	Oid			ext = get_extension_oid("tim4rec", true);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;
	char	   *name;

	if (!OidIsValid(ext))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tim4rec\" is not installed in this database")));
	if (ext == cached_ext_oid && cached_schema)
		return;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	name = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	if (name == NULL)
		elog(ERROR, "tim4rec: could not find the extension's schema");
	if (cached_schema)
		pfree(cached_schema);
	if (cached_table)
		pfree(cached_table);
	cached_schema = MemoryContextStrdup(TopMemoryContext, name);
	cached_table = MemoryContextStrdup(TopMemoryContext,
									   psprintf("%s.%s", quote_identifier(name), T4R_CATALOG_TABLE));
	cached_nsp = nsp;
	cached_ext_oid = ext;
	t4r_pg_model_cache_reset();
}

const char *
t4r_pg_extension_schema(void)
{
	lookup_extension();
	return cached_schema;
}

const char *
t4r_pg_catalog_table(void)
{
	lookup_extension();
	return cached_table;
}

/* ------------------------------------------------------------------ */
/* the catalog session                                                 */
/* ------------------------------------------------------------------ */
void
t4r_pg_catalog_begin(T4rCatalogSession *s)
{
	Oid			nsp,
				relid;
	HeapTuple	tup;
	Oid			owner;
	int			rc;

	lookup_extension();
	nsp = cached_nsp;
	relid = get_relname_relid(T4R_CATALOG_TABLE, nsp);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("catalog table %s does not exist", cached_table),
				 errhint("Recreate the extension: DROP EXTENSION tim4rec; CREATE EXTENSION tim4rec;")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "tim4rec: cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	s->table = cached_table;
	s->relid = relid;
	s->has_acl = get_attnum(relid, "owner") != InvalidAttrNumber;
	s->acl_columns = s->has_acl ? "owner, grant_read, grant_usage" :
		"NULL::pg_catalog.name, '{}'::pg_catalog.name[], '{}'::pg_catalog.name[]";
	s->has_ids = get_attnum(relid, "item_id_type") != InvalidAttrNumber;
	s->id_columns = s->has_ids ? "user_id_type, item_id_type" :
		"'bigint'::pg_catalog.text, 'bigint'::pg_catalog.text";
	s->keys_column = s->has_ids ? "item_keys" : "NULL::pg_catalog.text[]";
	s->caller = GetUserId();
	GetUserIdAndSecContext(&s->saved_uid, &s->saved_sec);
	SetUserIdAndSecContext(owner, s->saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	s->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "tim4rec: SPI_connect failed: %s", SPI_result_code_string(rc));
}

void
t4r_pg_catalog_end(T4rCatalogSession *s)
{
	SPI_finish();
	AtEOXact_GUC(true, s->guc_level);
	SetUserIdAndSecContext(s->saved_uid, s->saved_sec);
}

/* serialise catalog changes of one model name (inside a session) */
void
t4r_pg_catalog_lock(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(name)};
	int			rc;

	rc = SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('tim4rec'), "
							   "pg_catalog.hashtext($1))", 1, types, vals, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tim4rec: advisory lock failed: %s", SPI_result_code_string(rc));
}

/* ------------------------------------------------------------------ */
/* privileges                                                          */
/* ------------------------------------------------------------------ */

/* roleid has the privileges of the role named `name` ("public": everyone) */
static bool
role_has(Oid roleid, const char *name)
{
	Oid			r;

	if (name == NULL || name[0] == '\0')
		return false;
	if (strcmp(name, "public") == 0)
		return true;
	r = get_role_oid(name, true);
	return OidIsValid(r) && has_privs_of_role(roleid, r);
}

static bool
in_list(Oid roleid, const T4rNameList *l)
{
	for (int i = 0; i < l->n; i++)
		if (role_has(roleid, l->names[i]))
			return true;
	return false;
}

T4rSourceAccess
t4r_pg_source_access(const T4rModelAcl *acl, Oid roleid, Oid *relid_out)
{
	Oid			nsp,
				relid;
	const char *cols[4];

	if (relid_out)
		*relid_out = InvalidOid;
	if (acl->source_table == NULL || acl->source_table[0] == '\0')
		return T4R_SOURCE_NONE;
	nsp = get_namespace_oid(acl->source_schema ? acl->source_schema : "", true);
	relid = OidIsValid(nsp) ? get_relname_relid(acl->source_table, nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return T4R_SOURCE_MISSING;
	if (relid_out)
		*relid_out = relid;
	if (pg_class_aclcheck(relid, roleid, ACL_SELECT) != ACLCHECK_OK)
	{
		cols[0] = acl->user_column;
		cols[1] = acl->item_column;
		cols[2] = acl->time_column;
		cols[3] = acl->order_column;
		for (int i = 0; i < 4; i++)
		{
			AttrNumber	att;

			if (cols[i] == NULL || cols[i][0] == '\0')
				continue;
			att = get_attnum(relid, cols[i]);
			if (att == InvalidAttrNumber ||
				pg_attribute_aclcheck(relid, att, roleid, ACL_SELECT) != ACLCHECK_OK)
				return T4R_SOURCE_DENIED;
		}
	}
	/* RLS_ENABLED: policies filter the rows; RLS_NONE_ENV: they would, but
	 * row_security is off, so a read would fail: not every row either way */
	if (check_enable_rls(relid, roleid, true) != RLS_NONE)
		return T4R_SOURCE_ROWS_LIMITED;
	return T4R_SOURCE_READABLE;
}

/*
 * The source relation of a loaded model for a function that reads it
 * (recommend by user, recommend_all, evaluate): ERROR 55000 for an imported
 * model (none_detail, none_hint), 42P01 when the relation is gone and, when
 * check_select, 42501 without SELECT on it or a used column (detail:
 * "<reader> from the source relation of model ..."); row-level security
 * applies to the reading query itself.
 */
Oid
t4r_pg_source_relation(const T4rLoadedModel *lm, bool check_select, const char *none_detail,
					   const char *none_hint, const char *reader)
{
	Oid			relid;

	switch (t4r_pg_source_access(&lm->acl, GetUserId(), &relid))
	{
		case T4R_SOURCE_NONE:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has no source relation", lm->name),
					 errdetail("%s", none_detail),
					 none_hint ? errhint("%s", none_hint) : 0));
			break;
		case T4R_SOURCE_MISSING:
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("source relation %s.%s of model \"%s\" does not exist",
							quote_identifier(lm->source_schema ? lm->source_schema : ""),
							quote_identifier(lm->source_table), lm->name)));
			break;
		case T4R_SOURCE_DENIED:
			if (check_select)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied for table %s",
								quote_qualified_identifier(lm->source_schema, lm->source_table)),
						 errdetail("%s from the source relation of model \"%s\".", reader, lm->name)));
			break;
		case T4R_SOURCE_ROWS_LIMITED:
		case T4R_SOURCE_READABLE:
			break;
	}
	return relid;
}

bool
t4r_pg_model_allowed(const T4rModelAcl *acl, int priv, Oid roleid)
{
	if (role_has(roleid, acl->owner) || superuser_arg(roleid))
		return true;
	if (priv == T4R_PRIV_OWNER)
		return false;
	if (in_list(roleid, &acl->grant_read))
		return true;
	if (t4r_pg_source_access(acl, roleid, NULL) == T4R_SOURCE_READABLE)
		return true;
	if (priv == T4R_PRIV_READ)
		return false;
	return in_list(roleid, &acl->grant_usage);
}

static const char *
priv_name(int priv)
{
	return priv == T4R_PRIV_OWNER ? "owner" : priv == T4R_PRIV_READ ? "read" : "usage";
}

void
t4r_pg_model_check(const T4rModelAcl *acl, const char *model_name, int priv, Oid roleid)
{
	if (t4r_pg_model_allowed(acl, priv, roleid))
		return;
	if (priv == T4R_PRIV_OWNER)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of model \"%s\"", model_name),
				 errdetail("Model \"%s\" is owned by role \"%s\"; only its owner, members of that role and superusers may add versions, deploy, drop or grant it.",
						   model_name, acl->owner ? acl->owner : ""),
				 errhint("Choose another model name, or ask the owner (or a superuser) to change the owner with tim4rec_alter_owner().")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for model \"%s\"", model_name),
			 errdetail("This needs the %s privilege on the model: its owner, a role granted %s, or a role that may read every row of the model's source relation.",
					   priv_name(priv), priv == T4R_PRIV_READ ? "'read'" : "'usage' or 'read'"),
			 errhint("The owner (\"%s\") can grant it: SELECT tim4rec_grant('%s', 'role_name', '%s');",
					 acl->owner ? acl->owner : "", model_name, priv_name(priv))));
}

/* a name[] Datum -> list of C strings in the current memory context */
void
t4r_pg_name_list(Datum d, bool isnull, T4rNameList *out)
{
	ArrayType  *a;
	Datum	   *el;
	bool	   *nulls;
	int			n;

	out->n = 0;
	out->names = NULL;
	if (isnull)
		return;
	a = DatumGetArrayTypeP(d);
	deconstruct_array(a, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &el, &nulls, &n);
	out->names = palloc(sizeof(char *) * (n > 0 ? n : 1));
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			out->names[out->n++] = pstrdup(NameStr(*DatumGetName(el[i])));
}

/*
 * tim4rec_model_readable(owner name, grant_read name[], source_schema name,
 *     source_table name, user_column name, item_column name,
 *     time_column name, order_column name) RETURNS boolean
 * The READ rule for one catalog row, for the current user (the filter of
 * the security-barrier view tim4rec_model_list).
 */
Datum
tim4rec_model_readable(PG_FUNCTION_ARGS)
{
	T4rModelAcl acl;
	const char *s[7];

	for (int i = 0; i < 7; i++)
	{
		int			arg = i == 0 ? 0 : i + 1;

		s[i] = PG_ARGISNULL(arg) ? NULL : NameStr(*PG_GETARG_NAME(arg));
	}
	memset(&acl, 0, sizeof(acl));
	acl.owner = s[0];
	t4r_pg_name_list(PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1), PG_ARGISNULL(1), &acl.grant_read);
	acl.source_schema = s[1];
	acl.source_table = s[2];
	acl.user_column = s[3];
	acl.item_column = s[4];
	acl.time_column = s[5];
	acl.order_column = s[6];
	PG_RETURN_BOOL(t4r_pg_model_allowed(&acl, T4R_PRIV_READ, GetUserId()));
}
