/*
 * serving_call.c
 *	  The first steps of every serving function (see serving_call.h).
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "model_cache.h"
#include "serving_call.h"

void
isrf_serving_require(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
}

void
isrf_serving_call_begin(FunctionCallInfo fcinfo, int model_argno, bool read_history,
						int64 user_id, IsrfServingCall *c)
{
	char	   *requested = PG_ARGISNULL(model_argno) ? NULL :
		text_to_cstring(PG_GETARG_TEXT_PP(model_argno));
	MemoryContext caller = CurrentMemoryContext;

	memset(c, 0, sizeof(*c));
	SPI_connect();
	isrf_pg_model_resolve_serving(requested, caller, &c->src);
	if (read_history)
	{
		int64	   *ids;

		isrf_pg_history_index_notice(c->src.reviews, c->src.has_index);
		ids = isrf_pg_history_read(c->src.history_sql, user_id, &c->n_hist);
		/* SPI_finish frees SPI's memory */
		c->hist_ids = MemoryContextAlloc(caller, sizeof(int64) * (c->n_hist + 1));
		memcpy(c->hist_ids, ids, sizeof(int64) * c->n_hist);
	}
	SPI_finish();
}

IsrfServeSession *
isrf_serving_call_session(const IsrfServingCall *c)
{
	IsrfServeSession *ss;

	SPI_connect();
	ss = isrf_model_cache_session(c->src.name, c->src.version, c->src.created_at);
	SPI_finish();
	return ss;
}

void
isrf_serving_call_history(const IsrfServingCall *c, const IsrfModel *m, IsrfPgHistory *h)
{
	isrf_pg_history_map(c->hist_ids, c->n_hist, m, h);
	if (h->unknown > 0)
		ereport(DEBUG1,
				(errmsg("isrf: %d of the user's %d items are not in model \"%s\" version %d; skipped",
						h->unknown, c->n_hist, c->src.name, c->src.version)));
}
