/*
 * pg_spi.c
 *	  SPI helpers of the glue (see pg_spi.h).
 */
#include "pg_spi.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/*
 * Statements are never run read-only: after SPI_commit a non-atomic
 * procedure has no active snapshot, and read-only execution would use it.
 */
#define SPI_FETCH_BATCH 10000

/*
 * Every statement runs with search_path = pg_catalog, pg_temp, whatever the
 * caller's path is: a function, operator or type that another role planted
 * in a schema of the caller's path is never picked.  The dynamic SQL built
 * by isrf._*_sql() runs under the same path it was built under, so the
 * regclass names it prints (schema-qualified unless in pg_catalog) name the
 * caller's tables.  As for a function's SET clause, an error on the way
 * restores the caller's path with the (sub)transaction it aborts.
 */
static int
spi_path_push(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

static void
spi_path_pop(int level)
{
	AtEOXact_GUC(true, level);
}

/* SPI_execute_with_args under the fixed search_path. */
static int
spi_execute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, long count)
{
	int			level = spi_path_push();
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, count);

	spi_path_pop(level);
	return rc;
}

void
isrf_spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			  int expected)
{
	int			rc = spi_execute(sql, nargs, types, values, nulls, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
}

uint64
isrf_spi_select(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			rc = spi_execute(sql, nargs, types, values, nulls, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
	return SPI_processed;
}

SPITupleTable *
isrf_spi_query(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	if (isrf_spi_select(sql, nargs, types, values, nulls) == 0)
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
	int			rc = spi_execute(sql, nargs, types, values, NULL, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

SPIPlanPtr
isrf_spi_prepare(const char *sql, int nargs, Oid *types)
{
	int			level = spi_path_push();
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	spi_path_pop(level);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s) for: %s", SPI_result_code_string(SPI_result), sql);
	return plan;
}

SPITupleTable *
isrf_spi_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls, uint64 *n)
{
	int			level = spi_path_push();
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	spi_path_pop(level);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed (%s)", SPI_result_code_string(rc));
	*n = SPI_processed;
	return SPI_tuptable;
}

void
isrf_spi_fetch(const char *sql, void (*take) (void *arg, SPITupleTable *tt, uint64 n), void *arg)
{
	int			level = spi_path_push();
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
	spi_path_pop(level);
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
	/* a name of any length is reported by its first 63 bytes */
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s name \"%.*s%s\"", what, (int) pg_mbcliplen(name, (int) Min(len, 1024), 63),
						name, len > 63 ? "..." : ""),
				 errhint("Use 1 to 63 letters, digits and underscores, not starting with a digit.")));
}
