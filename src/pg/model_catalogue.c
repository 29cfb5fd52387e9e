/*
 * model_catalogue.c
 *	  Reading a stored model version back from isrf.model_chunks, and the
 *	  isrf.model_check() function that verifies it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "model/model.h"
#include "pg_env.h"
#include "pg_spi.h"
#include "model_catalogue.h"

void
isrf_pg_model_resolve(const char *requested, char **name, int32 *version, TimestampTz *created_at)
{
	SPITupleTable *tt;
	bool		isnull;

	tt = isrf_spi_query("SELECT r.name, r.version, m.created_at FROM isrf._resolve_model($1) r"
						" JOIN isrf.models m ON m.name = r.name AND m.version = r.version", 1,
						(Oid[]) {TEXTOID},
						(Datum[]) {requested ? CStringGetTextDatum(requested) : (Datum) 0},
						requested ? NULL : "n");
	*name = SPI_getvalue(tt->vals[0], tt->tupdesc, 1);
	*version = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 2, &isnull));
	*created_at = DatumGetTimestampTz(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
}

void
isrf_pg_model_resolve_serving(const char *requested, MemoryContext mcxt, IsrfPgServing *out)
{
	SPITupleTable *tt;
	bool		isnull;

	tt = isrf_spi_query("SELECT r.name, r.version, m.created_at, s.history_sql, s.reviews::oid, s.has_index"
						" FROM isrf._resolve_model($1) r"
						" JOIN isrf.models m ON m.name = r.name AND m.version = r.version,"
						" LATERAL isrf._serving_source(r.name, r.version) s", 1,
						(Oid[]) {TEXTOID},
						(Datum[]) {requested ? CStringGetTextDatum(requested) : (Datum) 0},
						requested ? NULL : "n");
	out->name = MemoryContextStrdup(mcxt, SPI_getvalue(tt->vals[0], tt->tupdesc, 1));
	out->version = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 2, &isnull));
	out->created_at = DatumGetTimestampTz(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
	out->history_sql = MemoryContextStrdup(mcxt, SPI_getvalue(tt->vals[0], tt->tupdesc, 4));
	out->reviews = DatumGetObjectId(SPI_getbinval(tt->vals[0], tt->tupdesc, 5, &isnull));
	out->has_index = DatumGetBool(SPI_getbinval(tt->vals[0], tt->tupdesc, 6, &isnull));
}

void
isrf_pg_model_read(IsrfPgEnv *penv, const char *name, int32 version, IsrfModel *out,
				   size_t *bytes)
{
	IsrfEnv    *env = &penv->env;
	uint64		i;
	size_t		total = 0,
				off = 0;
	uint8_t    *buf;
	IsrfStatus	st;

	(void) isrf_spi_select("SELECT seq, data FROM isrf.model_chunks WHERE name = $1 AND version = $2 ORDER BY seq",
						   2, (Oid[]) {TEXTOID, INT4OID},
						   (Datum[]) {CStringGetTextDatum(name), Int32GetDatum(version)}, NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		seq = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *d = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		if (seq != (int32) i)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" version %d is damaged: chunk %d is missing", name, version, (int) i)));
		total += VARSIZE_ANY_EXHDR(d);
	}
	buf = isrf_alloc(env, total ? total : 1);
	if (buf == NULL)
		isrf_pg_raise(env, NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *d = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		memcpy(buf + off, VARDATA_ANY(d), VARSIZE_ANY_EXHDR(d));
		off += VARSIZE_ANY_EXHDR(d);
	}
	st = isrf_model_load(env, buf, total, out);
	isrf_free(env, buf);
	if (st != ISRF_OK)
		ereport(ERROR,
				(errcode(st == ISRF_ERR_CORRUPT ? ERRCODE_DATA_CORRUPTED : ERRCODE_INTERNAL_ERROR),
				 errmsg("model \"%s\" version %d is damaged: %s", name, version, env->errmsg),
				 errhint("Train it again with CALL isrf_train(...).")));
	*bytes = total;
}

PG_FUNCTION_INFO_V1(isrf_model_check);

/*
 * isrf.model_check(model text DEFAULT NULL): read the deployed version back
 * through the same path serving uses, verify it, and report its sizes.
 */
Datum
isrf_model_check(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	IsrfPgEnv	penv;
	IsrfModel	model;
	char	   *name;
	int32		version;
	TimestampTz created_at;
	size_t		bytes;
	Datum		values[7];
	bool		nulls[7] = {false};
	MemoryContext caller;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	caller = CurrentMemoryContext;
	isrf_pg_env_init(&penv, caller, DEBUG1);
	SPI_connect();
	isrf_pg_model_resolve(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
						  &name, &version, &created_at);
	isrf_pg_model_read(&penv, name, version, &model, &bytes);
	name = MemoryContextStrdup(caller, name);	/* SPI_finish frees SPI's memory */
	SPI_finish();
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	values[2] = Int64GetDatum((int64) bytes);
	values[3] = Int32GetDatum(model.n_users);
	values[4] = Int32GetDatum(model.n_items);
	values[5] = Int32GetDatum(model.dm);
	values[6] = Int64GetDatum(model.group.nnz);
	isrf_pg_env_done(&penv);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
