/*
 * pg_spi.c
 *	  SPI helpers of the glue (see pg_spi.h).
 */
#include "pg_spi.h"

#include "miscadmin.h"
#include "utils/builtins.h"

/*
 * Statements are never run read-only: after SPI_commit a non-atomic
 * procedure has no active snapshot, and read-only execution would use it.
 */
#define SPI_FETCH_BATCH 10000

void
isrf_spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			  int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
}

SPITupleTable *
isrf_spi_query(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
	if (SPI_processed == 0)
		elog(ERROR, "query returned no row: %s", sql);
	return SPI_tuptable;
}

Datum
isrf_spi_scalar(const char *sql, int nargs, Oid *types, Datum *values)
{
	SPITupleTable *tt = isrf_spi_query(sql, nargs, types, values, NULL);
	bool		isnull;
	Datum		d = SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull);

	if (isnull)
		elog(ERROR, "query returned NULL: %s", sql);
	return d;
}

char *
isrf_spi_scalar_text(const char *sql, int nargs, Oid *types, Datum *values)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

void
isrf_spi_fetch(const char *sql, void (*take) (void *arg, SPITupleTable *tt, uint64 n), void *arg)
{
	Portal		portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, false, 0);

	for (;;)
	{
		SPI_cursor_fetch(portal, true, SPI_FETCH_BATCH);
		if (SPI_processed == 0)
			break;
		take(arg, SPI_tuptable, SPI_processed);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

void
isrf_pg_check_name(const char *what, const char *name)
{
	size_t		len = strlen(name),
				i;
	bool		ok = len >= 1 && len <= 63 && !(name[0] >= '0' && name[0] <= '9');

	for (i = 0; ok && i < len; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
			(name[i] >= '0' && name[i] <= '9') || name[i] == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s name \"%s\"", what, name),
				 errhint("Use 1 to 63 letters, digits and underscores, not starting with a digit.")));
}
