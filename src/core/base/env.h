/*
 * base/env.h
 *	  The engine's common contract: status codes, the environment the caller
 *	  hands in (allocator, cancel poll, progress sink), and small helpers.
 *
 * Nothing under src/core includes a PostgreSQL header or exits the process.
 * Every fallible function returns an IsrfStatus and leaves a message in
 * env->errmsg; the PostgreSQL glue turns that into ereport(ERROR).  Memory is
 * taken only through env->alloc, from the calling thread, so that the glue can
 * back it with a memory context that an error or a cancel frees wholesale.
 */
#ifndef ISRF_CORE_H
#define ISRF_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum IsrfStatus
{
	ISRF_OK = 0,
	ISRF_ERR_NOMEM,			/* allocation failed */
	ISRF_ERR_INVALID,		/* bad argument or bad data: the caller's fault */
	ISRF_ERR_CANCELLED,		/* the cancel poll asked us to stop */
	ISRF_ERR_DEVICE,		/* the compute device or its library failed */
	ISRF_ERR_UNAVAILABLE,	/* a requested backend or library is not present */
	ISRF_ERR_CORRUPT,		/* corrupt or truncated serialized data */
	ISRF_ERR_IO,			/* file could not be read or written */
	ISRF_ERR_INTERNAL		/* a bug: an invariant did not hold */
} IsrfStatus;

#define ISRF_ERRMSG_LEN 1024

typedef struct IsrfEnv
{
	/* 64-byte aligned; returns NULL on failure (or does not return at all) */
	void	   *(*alloc) (void *ctx, size_t bytes);
	void		(*free) (void *ctx, void *ptr);
	/* polled in long loops; true means stop (it may also not return) */
	bool		(*cancelled) (void *ctx);
	/* progress lines; may be NULL */
	void		(*log) (void *ctx, const char *msg);
	void	   *ctx;

	IsrfStatus	status;			/* last failure recorded by isrf_fail */
	char		errmsg[ISRF_ERRMSG_LEN];
} IsrfEnv;

/*
 * Record a failure in env and return st (so: return isrf_fail(...)); an
 * argument may be env->errmsg, to add context to the failure before.
 */
IsrfStatus	isrf_fail(IsrfEnv *env, IsrfStatus st, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Allocate through env; on failure records ISRF_ERR_NOMEM and returns NULL. */
void	   *isrf_alloc(IsrfEnv *env, size_t bytes);

/* Zeroed n*size bytes, overflow-checked. */
void	   *isrf_calloc(IsrfEnv *env, size_t n, size_t size);

/* Free through env; NULL is ignored. */
void		isrf_free(IsrfEnv *env, void *ptr);

/* ISRF_ERR_CANCELLED (recorded) when the caller asked to stop, else ISRF_OK. */
IsrfStatus	isrf_poll(IsrfEnv *env);

/* Progress line through env->log, if set. */
void		isrf_log(IsrfEnv *env, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* An environment on aligned_alloc/free with no cancel, for tools and tests. */
void		isrf_env_init_malloc(IsrfEnv *env);

/* "ok", "out of memory", ... */
const char *isrf_status_name(IsrfStatus st);

/* Monotonic wall clock in seconds, for stage timings. */
double		isrf_now(void);

#define ISRF_TRY(expr) \
	do { \
		IsrfStatus	isrf_try_st_ = (expr); \
		if (isrf_try_st_ != ISRF_OK) \
			return isrf_try_st_; \
	} while (0)

#endif							/* ISRF_CORE_H */
