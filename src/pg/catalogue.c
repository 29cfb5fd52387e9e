/*
 * catalogue.c
 *	  The one way into the catalogue tables: a gate that runs the writers
 *	  isrf._cat_*(invoker oid, ...) as the extension's owner on behalf of the
 *	  calling role; the training lock of a model; and the filter that shows a
 *	  role only the models it may see in isrf_status().
 *
 * PUBLIC may read the catalogue (row-level security shows each role its own
 * rows) but not write it.  Each writer is an SQL function PUBLIC may not
 * execute; it takes the acting role as its first argument and checks that
 * the role owns what it writes (a superuser may act on anything).  The
 * acting role must be nothing a caller can claim, so it is taken here, in
 * C, as GetUserId(): the current user of the calling context, that is the
 * role after SET ROLE, or the owner inside a SECURITY DEFINER function, as
 * for every privilege check.  (Inside a SECURITY DEFINER SQL function there
 * is no way to learn who called it: a writer taking the role as an argument
 * from SQL would have to trust that argument.)
 *
 * SQL reaches the gate through isrf._catalogue(fn, VARIADIC "any"), which
 * opens only to the writers behind isrf.create_dataset and the other SQL
 * functions; the writers of a training run (its status row, the model's
 * bytes, its interactions and group graph) are called from C only, so no
 * role can write model bytes of its own making.  So are those of the LLM
 * jobs' rows and of the embedding cache (llm_job.c, llm_embed.c): a job's
 * background worker runs as the job's owner, so GetUserId() there is the
 * role whose job it is.  On a hot standby the gate refuses at once
 * (25006): the catalogue changes on the primary and arrives through WAL.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pg_catalogue.h"
#include "pg_spi.h"

/*
 * field4 of the training lock's tag: SQL's advisory lock functions use 1
 * and 2, so no SQL function can take (or wait for) this lock.  The view
 * isrf.training_progress looks for it (objsubid 18771) in pg_locks.
 */
#define CATALOGUE_LOCK_FIELD4 0x4953

/* The writers SQL may call through isrf._catalogue(). */
static const char *const catalogue_sql_writers[] = {
	"_cat_dataset_put",
	"_cat_dataset_drop",
	"_cat_model_drop",
	"_cat_synthetic_register",
	"_cat_llm_bind",
	"_cat_llm_job_cancel",
	"_cat_llm_embeddings_drop",
	"_cat_deploy",
	"_cat_rollback",
	"_cat_set_policy",
	"_cat_grant",
	"_cat_revoke",
};

/* Error unless fn is a writer's name: "_cat_" and lower-case letters or "_". */
static void
catalogue_check_writer(const char *fn)
{
	const char *p;
	bool		ok = strncmp(fn, "_cat_", 5) == 0 && strlen(fn) < NAMEDATALEN;

	for (p = fn; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || *p == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("\"%.63s\" is not a catalogue writer", fn)));
}

/* The extension's owner: the owner of the catalogue tables. */
static Oid
catalogue_owner(void)
{
	return DatumGetObjectId(isrf_spi_scalar("SELECT e.extowner FROM pg_catalog.pg_extension e"
											" WHERE e.extname = 'isrf'", 0, NULL, NULL));
}

Datum
isrf_catalogue_call(const char *fn, int nargs, const Oid *types, const Datum *values,
					const char *nulls, bool *isnull)
{
	Oid			invoker = GetUserId();
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	StringInfoData sql;
	Oid		   *t = palloc(sizeof(Oid) * (nargs + 1));
	Datum	   *v = palloc(sizeof(Datum) * (nargs + 1));
	char	   *n = palloc(nargs + 2);
	SPITupleTable *tt;
	Datum		result = (Datum) 0;
	bool		result_null = true;
	int			i;

	catalogue_check_writer(fn);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot change the isrf catalogue on a hot standby"),
				 errdetail("Datasets, models, deployments and grants are changed on the primary and reach the standby through WAL."),
				 errhint("Connect to the primary.")));
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT isrf.%s($1", fn);
	t[0] = OIDOID;
	v[0] = ObjectIdGetDatum(invoker);
	n[0] = ' ';
	for (i = 0; i < nargs; i++)
	{
		appendStringInfo(&sql, ", $%d", i + 2);
		t[i + 1] = types[i];
		v[i + 1] = values[i];
		n[i + 1] = nulls ? nulls[i] : ' ';
	}
	n[nargs + 1] = '\0';
	appendStringInfoChar(&sql, ')');

	owner = catalogue_owner();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		tt = isrf_spi_query(sql.data, nargs + 1, t, v, n);
		if (tt->tupdesc->natts >= 1 && TupleDescAttr(tt->tupdesc, 0)->atttypid != VOIDOID)
			result = SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &result_null);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	if (isnull)
		*isnull = result_null;
	return result;
}

PG_FUNCTION_INFO_V1(isrf_catalogue_sql);

/*
 * isrf._catalogue(fn text, VARIADIC args "any"): call one of the writers SQL
 * may use, as isrf_catalogue_call does, with the arguments as given (an
 * untyped literal is taken as text).
 */
Datum
isrf_catalogue_sql(PG_FUNCTION_ARGS)
{
	int			nargs = PG_NARGS() - 1;
	char	   *fn;
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;
	bool		allowed = false;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("catalogue writer must not be NULL")));
	fn = text_to_cstring(PG_GETARG_TEXT_PP(0));
	catalogue_check_writer(fn);
	for (i = 0; i < (int) lengthof(catalogue_sql_writers); i++)
		allowed |= strcmp(fn, catalogue_sql_writers[i]) == 0;
	if (!allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("catalogue writer \"%s\" cannot be called from SQL", fn),
				 errhint("isrf_train and the LLM jobs write these rows themselves.")));
	if (get_fn_expr_variadic(fcinfo->flinfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the arguments of isrf._catalogue() must be given one by one, not as a VARIADIC array")));

	types = palloc(sizeof(Oid) * (nargs + 1));
	values = palloc(sizeof(Datum) * (nargs + 1));
	nulls = palloc(nargs + 1);
	for (i = 0; i < nargs; i++)
	{
		types[i] = get_fn_expr_argtype(fcinfo->flinfo, i + 1);
		if (!OidIsValid(types[i]))
			elog(ERROR, "could not determine the type of argument %d of isrf._catalogue()", i + 2);
		nulls[i] = PG_ARGISNULL(i + 1) ? 'n' : ' ';
		values[i] = PG_ARGISNULL(i + 1) ? (Datum) 0 : PG_GETARG_DATUM(i + 1);
		if (types[i] == UNKNOWNOID)
		{
			types[i] = TEXTOID;
			if (!PG_ARGISNULL(i + 1))
				values[i] = CStringGetTextDatum(DatumGetCString(values[i]));
		}
	}
	SPI_connect();
	(void) isrf_catalogue_call(fn, nargs, types, values, nulls, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/* The lock tag of a model's training, in this database. */
static void
catalogue_model_locktag(LOCKTAG *tag, const char *model)
{
	uint64		h = hash_bytes_extended((const unsigned char *) model, (int) strlen(model), 0);

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, CATALOGUE_LOCK_FIELD4);
}

bool
isrf_model_lock(const char *model)
{
	LOCKTAG		tag;
	LockAcquireResult r;

	catalogue_model_locktag(&tag, model);
	r = LockAcquire(&tag, ExclusiveLock, true, true);
	if (r == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (r != LOCKACQUIRE_OK)
	{
		/* this session holds it already: a training inside a training */
		LockRelease(&tag, ExclusiveLock, true);
		return false;
	}
	return true;
}

void
isrf_model_unlock(const char *model)
{
	LOCKTAG		tag;

	catalogue_model_locktag(&tag, model);
	LockRelease(&tag, ExclusiveLock, true);
}

char *
isrf_visible_models(Oid dbid, const char *models)
{
	MemoryContext caller = CurrentMemoryContext;
	char	   *visible;

	if (superuser())
		return pstrdup(models);
	if (dbid != MyDatabaseId)
		return NULL;
	SPI_connect();
	visible = isrf_spi_scalar_text("SELECT coalesce(string_agg(u.e, ', ' ORDER BY u.o), '')"
								   "  FROM unnest(string_to_array(nullif($1, ''), ', ')) WITH ORDINALITY AS u(e, o)"
								   " WHERE EXISTS (SELECT FROM isrf.models m WHERE m.name = split_part(u.e, ' v', 1))",
								   1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(models)});
	visible = visible ? MemoryContextStrdup(caller, visible) : NULL;
	SPI_finish();
	return visible;
}
