/*
 * model_cache.c
 *	  The models a process keeps in memory (a backend serving in-process, or
 *	  the model server): each version is read from isrf.model_chunks once,
 *	  and an entry is only reused for the very version asked for, so nothing
 *	  needs invalidating by hand.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "pg_model.h"

#define CACHE_SLOTS 4

typedef struct CachedModel
{
	bool		used;
	char		name[NAMEDATALEN];
	int32		version;
	TimestampTz created_at;
	uint64		last_use;
	uint64		load_id;		/* unique per read: tells a reloaded copy apart */
	IsrfPgEnv	penv;			/* owns the model's memory */
	IsrfModel	model;
} CachedModel;

static CachedModel model_cache[CACHE_SLOTS];
static uint64 model_cache_clock = 0;
static uint64 model_cache_loads = 0;

static void
cache_evict(CachedModel *c)
{
	if (c->used)
		isrf_pg_env_done(&c->penv);
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

const IsrfModel *
isrf_model_cache_get(const char *name, int32 version, TimestampTz created_at)
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
				return &c->model;
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
	slot->load_id = ++model_cache_loads;
	slot->used = true;
	return &slot->model;
}

uint64
isrf_model_cache_load_id(const IsrfModel *m)
{
	int			i;

	for (i = 0; i < CACHE_SLOTS; i++)
		if (model_cache[i].used && &model_cache[i].model == m)
			return model_cache[i].load_id;
	return 0;
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
