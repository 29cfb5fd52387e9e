/*
 * pg_env.c
 *	  IsrfEnv on a PostgreSQL memory context, status-to-SQLSTATE mapping,
 *	  and opening the compute backend named by isrf.device.
 */
#include "pg_env.h"

#include "miscadmin.h"
#include "utils/memutils.h"

/* Every engine block is 64-byte aligned; the raw palloc pointer sits before it. */
#define PG_ENV_ALIGN 64

static void *
pg_env_alloc(void *ctx, size_t bytes)
{
	IsrfPgEnv  *penv = ctx;
	char	   *raw;
	char	   *aligned;

	if (bytes > MaxAllocHugeSize - 2 * PG_ENV_ALIGN)
		return NULL;
	raw = MemoryContextAllocExtended(penv->mcxt, bytes + 2 * PG_ENV_ALIGN,
									 MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	if (raw == NULL)
		return NULL;
	aligned = (char *) TYPEALIGN(PG_ENV_ALIGN, raw + sizeof(void *));
	((void **) aligned)[-1] = raw;
	return aligned;
}

static void
pg_env_free(void *ctx, void *ptr)
{
	(void) ctx;
	pfree(((void **) ptr)[-1]);
}

static bool
pg_env_cancelled(void *ctx)
{
	(void) ctx;
	/* an interrupt longjmps out; the memory context frees what was left */
	CHECK_FOR_INTERRUPTS();
	return false;
}

static void
pg_env_log(void *ctx, const char *msg)
{
	IsrfPgEnv  *penv = ctx;

	ereport(penv->log_level, (errmsg_internal("%s", msg)));
}

void
isrf_pg_env_init(IsrfPgEnv *penv, MemoryContext parent, int log_level)
{
	memset(penv, 0, sizeof(*penv));
	penv->mcxt = AllocSetContextCreate(parent, "isrf engine", ALLOCSET_DEFAULT_SIZES);
	penv->log_level = log_level;
	penv->env.alloc = pg_env_alloc;
	penv->env.free = pg_env_free;
	penv->env.cancelled = pg_env_cancelled;
	penv->env.log = pg_env_log;
	penv->env.ctx = penv;
}

void
isrf_pg_env_done(IsrfPgEnv *penv)
{
	if (penv->mcxt)
		MemoryContextDelete(penv->mcxt);
	penv->mcxt = NULL;
}

void
isrf_pg_raise(IsrfEnv *env, const char *context)
{
	int			code;
	const char *msg = env->errmsg[0] ? env->errmsg : isrf_status_name(env->status);

	switch (env->status)
	{
		case ISRF_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case ISRF_ERR_INVALID:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case ISRF_ERR_CANCELLED:
			code = ERRCODE_QUERY_CANCELED;
			break;
		case ISRF_ERR_DEVICE:
			code = ERRCODE_SYSTEM_ERROR;
			break;
		case ISRF_ERR_UNAVAILABLE:
			code = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
			break;
		case ISRF_ERR_CORRUPT:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case ISRF_ERR_IO:
			code = ERRCODE_IO_ERROR;
			break;
		default:
			code = ERRCODE_INTERNAL_ERROR;
			break;
	}
	if (context)
		ereport(ERROR, (errcode(code), errmsg("%s: %s", context, msg)));
	ereport(ERROR, (errcode(code), errmsg("%s", msg)));
	pg_unreachable();
}

const char *
isrf_pg_cuda_library(void)
{
	static char path[MAXPGPATH];

	if (isrf_cuda_library_guc && isrf_cuda_library_guc[0])
		return isrf_cuda_library_guc;
	snprintf(path, sizeof(path), "%s/isrf_cuda.so", pkglib_path);
	return path;
}

IsrfBackend *
isrf_pg_backend_open(IsrfPgEnv *penv)
{
	IsrfBackend *be = NULL;
	IsrfStatus	st;

	Assert(!IsPostmasterEnvironment || IsUnderPostmaster);
	st = isrf_backend_open(&penv->env, (IsrfDevicePref) isrf_device_guc,
						   isrf_pg_cuda_library(), &be);
	if (st == ISRF_ERR_UNAVAILABLE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("isrf.device is \"cuda\" but no CUDA device can be used"),
				 errdetail("%s", penv->env.errmsg),
				 errhint("Set isrf.device to \"auto\" or \"cpu\".")));
	isrf_pg_check(&penv->env, st, "could not open the compute backend");
	if (isrf_blas_threads_guc > 0 && strcmp(be->name, "cpu") == 0)
		isrf_cpu_set_threads(isrf_blas_threads_guc);
	return be;
}
