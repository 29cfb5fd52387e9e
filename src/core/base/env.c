/*
 * base/env.c
 *	  Status messages, allocation and cancel polling through IsrfEnv.
 */
#include "base/env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

IsrfStatus
isrf_fail(IsrfEnv *env, IsrfStatus st, const char *fmt,...)
{
	va_list		ap;
	char		msg[ISRF_ERRMSG_LEN];

	/* through a copy: an argument may be env->errmsg itself (adding context) */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(env->errmsg, msg, sizeof(msg));
	env->status = st;
	return st;
}

void *
isrf_alloc(IsrfEnv *env, size_t bytes)
{
	void	   *p;

	if (bytes == 0)
		bytes = 1;
	p = env->alloc(env->ctx, bytes);
	if (p == NULL)
		isrf_fail(env, ISRF_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
	return p;
}

void *
isrf_calloc(IsrfEnv *env, size_t n, size_t size)
{
	void	   *p;

	if (size != 0 && n > SIZE_MAX / size)
	{
		isrf_fail(env, ISRF_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
		return NULL;
	}
	p = isrf_alloc(env, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void
isrf_free(IsrfEnv *env, void *ptr)
{
	if (ptr)
		env->free(env->ctx, ptr);
}

IsrfStatus
isrf_poll(IsrfEnv *env)
{
	if (env->cancelled && env->cancelled(env->ctx))
		return isrf_fail(env, ISRF_ERR_CANCELLED, "canceling statement due to user request");
	return ISRF_OK;
}

void
isrf_log(IsrfEnv *env, const char *fmt,...)
{
	char		buf[1024];
	va_list		ap;

	if (env->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	env->log(env->ctx, buf);
}

static void *
env_malloc_alloc(void *ctx, size_t bytes)
{
	(void) ctx;
	/* aligned_alloc wants a multiple of the alignment */
	return aligned_alloc(64, (bytes + 63) & ~(size_t) 63);
}

static void
env_malloc_free(void *ctx, void *ptr)
{
	(void) ctx;
	free(ptr);
}

void
isrf_env_init_malloc(IsrfEnv *env)
{
	memset(env, 0, sizeof(*env));
	env->alloc = env_malloc_alloc;
	env->free = env_malloc_free;
}

const char *
isrf_status_name(IsrfStatus st)
{
	switch (st)
	{
		case ISRF_OK:
			return "ok";
		case ISRF_ERR_NOMEM:
			return "out of memory";
		case ISRF_ERR_INVALID:
			return "invalid input";
		case ISRF_ERR_CANCELLED:
			return "cancelled";
		case ISRF_ERR_DEVICE:
			return "device error";
		case ISRF_ERR_UNAVAILABLE:
			return "unavailable";
		case ISRF_ERR_CORRUPT:
			return "corrupt data";
		case ISRF_ERR_IO:
			return "i/o error";
		case ISRF_ERR_INTERNAL:
			return "internal error";
	}
	return "unknown status";
}

double
isrf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}
