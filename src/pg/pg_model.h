/*
 * pg_model.h
 *	  Finding and reading stored models from SQL-callable code.
 */
#ifndef ISRF_PG_MODEL_H
#define ISRF_PG_MODEL_H

#include "model/model.h"
#include "pg_env.h"

#include "utils/timestamp.h"

/*
 * The model a NULL-able argument means (see isrf._resolve_model), under the
 * caller's row-level security; SPI connected.  created_at tells a version
 * apart from an earlier one that had the same number (dropped, retrained).
 */
void		isrf_pg_model_resolve(const char *requested, char **name, int32 *version,
								  TimestampTz *created_at);

/*
 * A model version as kept by this process: read from isrf.model_chunks the
 * first time, then reused while the same version stays requested (a few
 * models are kept, least recently used evicted).  SPI connected.
 */
const IsrfModel *isrf_model_cache_get(const char *name, int32 version, TimestampTz created_at);

/*
 * An id unique to the read that put m in the cache (0 if m is not cached):
 * state derived from a cached model is valid while this stays the same.
 */
uint64		isrf_model_cache_load_id(const IsrfModel *m);

/* Names and versions of the cached models, "a v1, b v3" (for isrf_status). */
void		isrf_model_cache_describe(char *buf, size_t len);

/* Read and validate a stored version; damage is ERRCODE_DATA_CORRUPTED. */
void		isrf_pg_model_read(IsrfPgEnv *penv, const char *name, int32 version,
							   IsrfModel *out, size_t *bytes);

#endif							/* ISRF_PG_MODEL_H */
