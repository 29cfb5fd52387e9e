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

/* Read and validate a stored version; damage is ERRCODE_DATA_CORRUPTED. */
void		isrf_pg_model_read(IsrfPgEnv *penv, const char *name, int32 version,
							   IsrfModel *out, size_t *bytes);

#endif							/* ISRF_MODEL_CATALOGUE_H */
