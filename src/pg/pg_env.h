/*
 * pg_env.h
 *	  The bridge between PostgreSQL and the engine: an IsrfEnv backed by a
 *	  memory context, engine failures raised as ereport(ERROR), and compute
 *	  backends opened according to isrf.device.
 */
#ifndef ISRF_PG_ENV_H
#define ISRF_PG_ENV_H

#include "postgres.h"

#include "compute/backend.h"

typedef struct IsrfPgEnv
{
	IsrfEnv		env;
	MemoryContext mcxt;			/* everything the engine allocates */
	int			log_level;		/* elevel for engine progress lines */
} IsrfPgEnv;

/* GUC-backed settings (isrf.c) */
extern int	isrf_device_guc;
extern char *isrf_cuda_library_guc;
extern int	isrf_blas_threads_guc;

/*
 * Set up an engine environment whose memory lives in a child of parent.
 * Interrupts are serviced (CHECK_FOR_INTERRUPTS) whenever the engine polls.
 */
void		isrf_pg_env_init(IsrfPgEnv *penv, MemoryContext parent, int log_level);

/* Release the environment's memory context. */
void		isrf_pg_env_done(IsrfPgEnv *penv);

/* Raise the failure recorded in env as an ERROR with a fitting SQLSTATE. */
void		isrf_pg_raise(IsrfEnv *env, const char *context) pg_attribute_noreturn();

/* Raise if st is not ISRF_OK. */
static inline void
isrf_pg_check(IsrfEnv *env, IsrfStatus st, const char *context)
{
	if (st != ISRF_OK)
	{
		/* a failure recorded in another environment: its code at least */
		if (env->status == ISRF_OK)
			env->status = st;
		isrf_pg_raise(env, context);
	}
}

/* Path of the CUDA backend library (isrf.cuda_library or $libdir/isrf_cuda.so). */
const char *isrf_pg_cuda_library(void);

/*
 * Open the compute backend that isrf.device asks for.  Never call from the
 * postmaster: CUDA does not survive fork.  The caller must close it, in
 * PG_FINALLY where an error may intervene, to release device memory.
 */
IsrfBackend *isrf_pg_backend_open(IsrfPgEnv *penv);

#endif							/* ISRF_PG_ENV_H */
