/*
 * pg_model.h
 *	  Finding and reading stored models from SQL-callable code.
 */
#ifndef ISRF_PG_MODEL_H
#define ISRF_PG_MODEL_H

#include "model.h"
#include "pg_env.h"

/* The model a NULL-able argument means (see isrf._resolve_model); SPI connected. */
void		isrf_pg_model_resolve(const char *requested, char **name, int32 *version);

/* Read and validate a stored version; damage is ERRCODE_DATA_CORRUPTED. */
void		isrf_pg_model_read(IsrfPgEnv *penv, const char *name, int32 version,
							   IsrfModel *out, size_t *bytes);

#endif							/* ISRF_PG_MODEL_H */
