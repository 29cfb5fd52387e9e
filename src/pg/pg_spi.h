/*
 * pg_spi.h
 *	  Small SPI helpers for the glue: run a statement with parameters and
 *	  check its result, fetch a scalar, stream a large result in batches, and
 *	  check names of models and datasets.
 */
#ifndef ISRF_PG_SPI_H
#define ISRF_PG_SPI_H

#include "postgres.h"

#include "executor/spi.h"

/*
 * Every statement of these helpers runs with search_path = pg_catalog,
 * pg_temp, whatever the caller's search_path (see pg_spi.c): SQL of the glue
 * calls functions and operators unqualified, and the caller's path must not
 * choose them.
 *
 * Run sql with parameters; error unless SPI returns expected.  nulls is
 * SPI's: NULL for none, else ' ' / 'n' per parameter.
 */
void		isrf_spi_exec(const char *sql, int nargs, Oid *types, Datum *values,
						  const char *nulls, int expected);

/* Run a query; returns the number of rows, left in SPI_tuptable. */
uint64		isrf_spi_select(const char *sql, int nargs, Oid *types, Datum *values,
							const char *nulls);

/* Run a query that must return at least one row; returns SPI_tuptable. */
SPITupleTable *isrf_spi_query(const char *sql, int nargs, Oid *types, Datum *values,
							  const char *nulls);

/* First column of the first row; error when there is none or it is NULL. */
Datum		isrf_spi_scalar(const char *sql, int nargs, Oid *types, Datum *values);

/* First column of the first row as a palloc'd string, or NULL. */
char	   *isrf_spi_scalar_text(const char *sql, int nargs, Oid *types, Datum *values);

/* Prepare a statement (under the fixed search_path; keep it with SPI_keepplan). */
SPIPlanPtr	isrf_spi_prepare(const char *sql, int nargs, Oid *types);

/* Run a prepared query; *n gets the number of rows, returned in the table. */
SPITupleTable *isrf_spi_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls,
									 uint64 *n);

/* Run a query through a cursor and hand each batch of rows to take(). */
void		isrf_spi_fetch(const char *sql,
						   void (*take) (void *arg, SPITupleTable *tt, uint64 n),
						   void *arg);

/* Error unless name is 1-63 letters, digits or underscores, not starting with a digit. */
void		isrf_pg_check_name(const char *what, const char *name);

#endif							/* ISRF_PG_SPI_H */
