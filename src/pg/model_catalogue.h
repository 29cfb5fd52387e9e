/*
 * model_catalogue.h
 *	  The model catalogue as SQL-callable code reads it: which stored
 *	  version a model argument means, and reading that version back.
 */
#ifndef ISRF_MODEL_CATALOGUE_H
#define ISRF_MODEL_CATALOGUE_H

#include "model/model.h"
#include "pg_env.h"

#include "utils/timestamp.h"

/*
 * The model version a NULL-able argument means (see isrf._resolve_model),
 * under the caller's row-level security; SPI connected.  created_at tells a
 * version apart from an earlier one that had the same number (dropped,
 * retrained).
 */
void		isrf_pg_model_resolve(const char *requested, char **name, int32 *version,
								  TimestampTz *created_at);

/* A resolved model version and what serving it reads of its dataset. */
typedef struct IsrfPgServing
{
	char	   *name;			/* palloc'd in the caller's context */
	int32		version;
	TimestampTz created_at;
	char	   *history_sql;	/* isrf._history_sql() of its dataset */
	Oid			reviews;		/* the dataset's reviews table */
	bool		has_index;		/* an index of it leads with user_id */
} IsrfPgServing;

/*
 * Resolve a NULL-able model argument as isrf_pg_model_resolve does and
 * find its dataset (errors name a bound table dropped since); the strings
 * are copied into mcxt.  SPI connected.
 */
void		isrf_pg_model_resolve_serving(const char *requested, MemoryContext mcxt,
										  IsrfPgServing *out);

/* Read and validate a stored version; damage is ERRCODE_DATA_CORRUPTED. */
void		isrf_pg_model_read(IsrfPgEnv *penv, const char *name, int32 version,
							   IsrfModel *out, size_t *bytes);

#endif							/* ISRF_MODEL_CATALOGUE_H */
