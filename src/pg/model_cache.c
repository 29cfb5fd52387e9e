/*
 * model_cache.c
 *	  The models a process keeps in memory (a backend serving in-process, or
 *	  the model server), each with its serving session: a version is read
 *	  from isrf.model_chunks once and prepared for serving once, and an entry
 *	  is only reused for the very version asked for, so nothing needs
 *	  invalidating by hand.
 *
 * Sessions live on the process's compute backend, opened on first use as
 * isrf.device says and kept (a CUDA context is costly to create); when the
 * setting comes to resolve to another kind of device, every session is
 * closed and the backend reopened.  Building a session holds interrupts: it
 * is bounded work, and a cancel half way would leave device memory no one
 * frees.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "model_cache.h"
#include "model_catalogue.h"
#include "pg_env.h"

#define CACHE_SLOTS 4

typedef struct CachedModel
{
	bool		used;
	char		name[NAMEDATALEN];
	int32		version;
	TimestampTz created_at;
	uint64		last_use;
	IsrfPgEnv	penv;			/* owns the model's and the session's memory */
	IsrfModel	model;
	IsrfServeSession *session;	/* prepared on first use; NULL until then */
} CachedModel;

static CachedModel model_cache[CACHE_SLOTS];
static uint64 model_cache_clock = 0;

/* the process's serving backend, and the isrf.device value it was opened for */
static IsrfPgEnv cache_be_env;
static IsrfBackend *cache_be = NULL;
static int	cache_be_device = -1;

static void
cache_evict(CachedModel *c)
{
	if (c->used)
	{
		isrf_serve_session_close(c->session);
		isrf_pg_env_done(&c->penv);
	}
	memset(c, 0, sizeof(*c));
}

/* Read a version into an emptied slot; on error the slot stays empty. */
static void
cache_fill(CachedModel *slot, const char *name, int32 version)
{
	size_t		bytes;

	isrf_pg_env_init(&slot->penv, TopMemoryContext, DEBUG1);
	PG_TRY();
	{
		isrf_pg_model_read(&slot->penv, name, version, &slot->model, &bytes);
	}
	PG_CATCH();
	{
		isrf_pg_env_done(&slot->penv);
		memset(slot, 0, sizeof(*slot));
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* The slot of a version, read if it is not cached. */
static CachedModel *
cache_slot(const char *name, int32 version, TimestampTz created_at)
{
	CachedModel *slot = NULL;
	int			i;

	for (i = 0; i < CACHE_SLOTS; i++)
	{
		CachedModel *c = &model_cache[i];

		if (c->used && strcmp(c->name, name) == 0)
		{
			if (c->version == version && c->created_at == created_at)
			{
				c->last_use = ++model_cache_clock;
				return c;
			}
			cache_evict(c);		/* another version of the same model */
		}
	}
	for (i = 0; i < CACHE_SLOTS; i++)
		if (slot == NULL || (slot->used && (!model_cache[i].used || model_cache[i].last_use < slot->last_use)))
			slot = &model_cache[i];
	cache_evict(slot);
	cache_fill(slot, name, version);
	strlcpy(slot->name, name, sizeof(slot->name));
	slot->version = version;
	slot->created_at = created_at;
	slot->last_use = ++model_cache_clock;
	slot->used = true;
	return slot;
}

const IsrfModel *
isrf_model_cache_get(const char *name, int32 version, TimestampTz created_at)
{
	return &cache_slot(name, version, created_at)->model;
}

IsrfBackend *
isrf_model_cache_backend(void)
{
	int			i;

	if (cache_be != NULL && cache_be_device == isrf_device_guc)
		return cache_be;
	/* another device asked for: sessions on the old backend go first */
	for (i = 0; i < CACHE_SLOTS; i++)
	{
		isrf_serve_session_close(model_cache[i].session);
		model_cache[i].session = NULL;
	}
	if (cache_be != NULL)
	{
		isrf_backend_close(cache_be);
		isrf_pg_env_done(&cache_be_env);
		cache_be = NULL;
	}
	isrf_pg_env_init(&cache_be_env, TopMemoryContext, DEBUG1);
	PG_TRY();
	{
		cache_be = isrf_pg_backend_open(&cache_be_env);
	}
	PG_CATCH();
	{
		isrf_pg_env_done(&cache_be_env);
		PG_RE_THROW();
	}
	PG_END_TRY();
	cache_be_device = isrf_device_guc;
	return cache_be;
}

IsrfServeSession *
isrf_model_cache_session(const char *name, int32 version, TimestampTz created_at)
{
	IsrfBackend *be = isrf_model_cache_backend();
	CachedModel *slot = cache_slot(name, version, created_at);
	IsrfServeSession *ss;
	IsrfStatus	st;

	if (slot->session != NULL)
		return slot->session;
	HOLD_INTERRUPTS();
	st = isrf_serve_session_open(&slot->penv.env, be, &slot->model, &ss);
	RESUME_INTERRUPTS();
	isrf_model_cache_check(&slot->penv.env, st, "could not prepare the model for serving");
	slot->session = ss;
	return ss;
}

void
isrf_model_cache_check(IsrfEnv *env, IsrfStatus st, const char *context)
{
	if (st != ISRF_OK && env->status == ISRF_OK && cache_be != NULL &&
		cache_be->env->status != ISRF_OK)
	{
		env->status = cache_be->env->status;
		strlcpy(env->errmsg, cache_be->env->errmsg, sizeof(env->errmsg));
		cache_be->env->status = ISRF_OK;
		cache_be->env->errmsg[0] = '\0';
	}
	isrf_pg_check(env, st, context);
}

void
isrf_model_cache_describe(char *buf, size_t len)
{
	int			i;
	size_t		off = 0;

	buf[0] = '\0';
	for (i = 0; i < CACHE_SLOTS && off < len; i++)
		if (model_cache[i].used)
			off += snprintf(buf + off, len - off, "%s%s v%d", off ? ", " : "",
							model_cache[i].name, model_cache[i].version);
}
