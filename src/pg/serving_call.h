/*
 * serving_call.h
 *	  What every serving function of the glue does first: check its
 *	  arguments, resolve the model argument under the caller's rights, read
 *	  the user's history as it is now, and reach the process's serving
 *	  session of that version (serving_call.c).
 */
#ifndef ISRF_SERVING_CALL_H
#define ISRF_SERVING_CALL_H

#include "postgres.h"

#include "fmgr.h"

#include "history.h"
#include "model_catalogue.h"
#include "serve/serve.h"

typedef struct IsrfServingCall
{
	IsrfPgServing src;			/* the model version and its dataset */
	int64	   *hist_ids;		/* the user's history, external ids, oldest first */
	int			n_hist;
} IsrfServingCall;

/* Error (22004) when argument argno is NULL, naming it. */
void		isrf_serving_require(FunctionCallInfo fcinfo, int argno, const char *name);

/*
 * Resolve the model argument argno (NULL: isrf.default_model, else the only
 * deployed model) and, with read_history, read user_id's history from the
 * dataset's reviews table (NOTICE once per session when no index serves it).
 */
void		isrf_serving_call_begin(FunctionCallInfo fcinfo, int model_argno, bool read_history,
									int64 user_id, IsrfServingCall *c);

/* The process's serving session of the call's model version (read and prepared once). */
IsrfServeSession *isrf_serving_call_session(const IsrfServingCall *c);

/* The call's history in the model's items (unknown items skipped and counted). */
void		isrf_serving_call_history(const IsrfServingCall *c, const IsrfModel *m,
									  IsrfPgHistory *h);

#endif							/* ISRF_SERVING_CALL_H */
