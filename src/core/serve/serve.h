/*
 * serve/serve.h
 *	  What the SQL functions (and the model server) ask of a trained model:
 *	  top-k recommendations by constrained beam search rescored by the dense
 *	  head, exact scores of a candidate list, and the evaluation table of
 *	  isrf_evaluate.  Deterministic: the same model and request give the same
 *	  answer, bit for bit, on one backend.
 */
#ifndef ISRF_SERVE_H
#define ISRF_SERVE_H

#include "compute/backend.h"
#include "model/model.h"

typedef struct IsrfServeConfig
{
	int32_t		beam_width;		/* constrained beam search width (default 20) */
} IsrfServeConfig;

void		isrf_serve_config_default(IsrfServeConfig *cfg);

typedef struct IsrfRecRequest
{
	int32_t		user;			/* model user index, or -1: a user the model does not know */
	int32_t		k;				/* items wanted, >= 1 */
} IsrfRecRequest;

typedef struct IsrfRecResult
{
	int32_t    *items;			/* [k] item indices, best first (caller's memory) */
	float	   *scores;			/* [k] */
	int32_t		count;			/* how many were filled: min(k, items not in the history) */
	bool		cold_start;		/* the answer did not come from the user's history */
} IsrfRecResult;

/*
 * Recommend for a batch of requests at once (the server drains all pending
 * requests into one call).  Every result is a real item, none from the
 * user's whole history (all splits), no duplicates.  Unknown users get the
 * most popular items (train counts), marked cold_start.
 */
IsrfStatus	isrf_serve_recommend(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
								 const IsrfServeConfig *cfg, int32_t n,
								 const IsrfRecRequest *req, IsrfRecResult *res);

/*
 * A serving session: what answering from one model on one backend needs
 * (weights on the device, the item token table, the transition prior,
 * popularity), prepared once for many calls -- the model server keeps one
 * per loaded model.  env must outlive the session; the model too.
 */
typedef struct IsrfServeSession IsrfServeSession;

IsrfStatus	isrf_serve_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
									IsrfServeSession **out);
void		isrf_serve_session_close(IsrfServeSession *ss);

/* isrf_serve_recommend through a prepared session; env is for this call's scratch. */
IsrfStatus	isrf_serve_recommend_session(IsrfEnv *env, IsrfServeSession *ss,
										 const IsrfServeConfig *cfg, int32_t n,
										 const IsrfRecRequest *req, IsrfRecResult *res);

/*
 * Exact scores of candidate items for one user (the paper's direct
 * recommendation): scores[i] for cand[i]; a candidate of -1 (unknown item)
 * gets NaN.  user -1 scores by popularity.
 */
IsrfStatus	isrf_serve_rank(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
							int32_t user, int32_t n_cand, const int32_t *cand, float *scores);

/* One row of isrf_evaluate. */
typedef struct IsrfEvalRow
{
	char		task[16];		/* "sequential" or "direct" */
	char		method[16];		/* "isrf", "popularity", "markov_knn", "lightgcn" */
	double		hr5,
				ndcg5,
				hr10,
				ndcg10;
	int32_t		users;
} IsrfEvalRow;

/*
 * Evaluate the model on its own split (DESIGN.md section 7) beside the
 * baselines, computed by the same code on the same split: rows for task
 * sequential and direct and each method.  *rows is allocated through env.
 */
IsrfStatus	isrf_serve_evaluate(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
								IsrfEvalRow **rows, int32_t *n_rows);

#endif							/* ISRF_SERVE_H */
