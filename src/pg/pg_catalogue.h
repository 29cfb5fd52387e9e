/*
 * pg_catalogue.h
 *	  Writing the catalogue (isrf.datasets, isrf.models and the tables of a
 *	  model version, the LLM jobs and the embedding cache) on behalf of the
 *	  calling role, the training lock of a model, and what of the model
 *	  servers' state a role may see.
 */
#ifndef ISRF_PG_CATALOGUE_H
#define ISRF_PG_CATALOGUE_H

#include "postgres.h"

/*
 * Call the catalogue writer isrf.<fn>(invoker, $1 .. $nargs) as the
 * extension's owner, invoker being the current user (GetUserId()); the
 * writer checks that the invoker may write what it writes.  nulls is SPI's
 * (NULL: none).  Returns the first column of the result (a by-value type),
 * *isnull telling NULL when isnull is not NULL.  SPI connected.
 */
Datum		isrf_catalogue_call(const char *fn, int nargs, const Oid *types, const Datum *values,
								const char *nulls, bool *isnull);

/*
 * Take the training lock of a model in this database without waiting:
 * false when another session (or this one, in a nested call) holds it.  A
 * session-level lock only C code can take (no SQL function takes a lock
 * with its tag), released by isrf_model_unlock or when the session ends.
 */
bool		isrf_model_lock(const char *model);
void		isrf_model_unlock(const char *model);

/*
 * The part of a model server's list of loaded models ("a v1, b v3") the
 * current user may see: for this database's server, the models with a row
 * in isrf.models it can read (row-level security); for another database's,
 * nothing (NULL).  A superuser sees everything.  Not SPI connected.
 */
char	   *isrf_visible_models(Oid dbid, const char *models);

#endif							/* ISRF_PG_CATALOGUE_H */
