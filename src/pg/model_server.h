/*
 * model_server.h
 *	  The model server (model_server.c): set-up from _PG_init, and the call a
 *	  backend makes to have a recommendation answered by it.
 */
#ifndef ISRF_PG_SERVER_H
#define ISRF_PG_SERVER_H

#include "postgres.h"

#include "utils/timestamp.h"

/* Largest k a server slot carries; larger requests are served in-process. */
#define ISRF_SERVER_MAX_K 1000
/* Longest history a slot carries; longer ones are served in-process. */
#define ISRF_SERVER_MAX_HIST 2048

/* isrf.server_fallback: what a request does when no server can answer it */
#define ISRF_SERVER_FALLBACK_ERROR 0
#define ISRF_SERVER_FALLBACK_IN_PROCESS 1

/* From _PG_init: shared memory hooks and static workers (preload only). */
void		isrf_server_init(void);

/* true when isrf is preloaded and isrf.device is not "cpu". */
bool		isrf_server_available(void);

/*
 * Post one recommendation request for a resolved model version and wait
 * for the answer: user_id's history as the caller read it (external item
 * ids, oldest first, at most ISRF_SERVER_MAX_HIST), served with the
 * caller's beam width; errors come back as the server raised them.  items
 * and scores have room for min(k, ISRF_SERVER_MAX_K) entries.  When no
 * server can answer (it could not start, or exited while answering) this is
 * an error (08006), or, with isrf.server_fallback = in_process, false: the
 * caller answers itself.
 */
bool		isrf_server_recommend(const char *model, int32 version, TimestampTz created_at,
								  int64 user_id, int32 k, int32 beam_width,
								  const int64 *hist, int32 n_hist, int64 *items,
								  float *scores, int32 *count, bool *cold_start);

/*
 * Tell this database's running server, if any, to load a newly deployed
 * version now rather than on its first request.  Does not wait.
 */
void		isrf_server_preload(const char *model, int32 version, TimestampTz created_at);

#endif							/* ISRF_PG_SERVER_H */
