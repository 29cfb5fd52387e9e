/*
 * model_cache.h
 *	  The model versions a process keeps (a backend serving in-process, or
 *	  the model server), each with its one serving session on the process's
 *	  compute backend: isrf_recommend, isrf_rank, isrf_evaluate and the
 *	  model server all answer through it.
 */
#ifndef ISRF_MODEL_CACHE_H
#define ISRF_MODEL_CACHE_H

#include "model/model.h"
#include "serve/serve.h"

#include "utils/timestamp.h"

/*
 * A model version as kept by this process: read from isrf.model_chunks the
 * first time, then reused while the same version stays requested (a few
 * models are kept, least recently used evicted).  SPI connected.
 */
const IsrfModel *isrf_model_cache_get(const char *name, int32 version, TimestampTz created_at);

/*
 * The serving session of a model version in this process (the model read
 * as isrf_model_cache_get does; weights, token table, trie and prior
 * prepared once, on the process's compute backend).  SPI connected.
 */
IsrfServeSession *isrf_model_cache_session(const char *name, int32 version, TimestampTz created_at);

/*
 * The compute backend this process serves on, opened on first use as
 * isrf.device says and kept while the setting resolves the same way (a GPU
 * context is costly to make); a change of isrf.device closes every session
 * and opens another.
 */
IsrfBackend *isrf_model_cache_backend(void);

/*
 * isrf_pg_check for a call that ran on this process's serving backend: a
 * backend records its failures (a device error, say) in its own
 * environment, which this adopts into env when env has none, so that the
 * error raised carries the backend's status and message.
 */
void		isrf_model_cache_check(IsrfEnv *env, IsrfStatus st, const char *context);

/* Names and versions of the cached models, "a v1, b v3" (for isrf_status). */
void		isrf_model_cache_describe(char *buf, size_t len);

#endif							/* ISRF_MODEL_CACHE_H */
