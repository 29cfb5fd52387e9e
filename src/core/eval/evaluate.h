/*
 * eval/evaluate.h
 *	  The evaluation table of isrf_evaluate: the model and the baselines
 *	  (popularity, Markov + item-kNN, LightGCN) on the model's own leak-free
 *	  split, for the sequential task (full ranking) and the direct task (the
 *	  target among 99 untouched items).
 */
#ifndef ISRF_EVALUATE_H
#define ISRF_EVALUATE_H

#include "serve/serve.h"

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

/* Receives each served sequential-task list (item indices, best first). */
typedef void (*IsrfEvalListHook) (void *arg, int32_t user, int32_t n, const int32_t *items);

typedef struct IsrfEvalOptions
{
	int32_t		beam_width;		/* of the served lists (0: the default) */
	bool		skip_lightgcn;	/* leave the LightGCN baseline out (quick runs) */
	IsrfEvalListHook list_hook; /* may be NULL */
	void	   *hook_arg;
} IsrfEvalOptions;

/*
 * Evaluate the session's model on its own split beside the baselines:
 * rows for task sequential and direct and each method (the isrf rows only
 * when the model has a generative part).  The isrf rows come from the code
 * that serves: the sequential task's lists are isrf_serve_recommend's top
 * 10 after the history before the test item, the direct task's scores
 * isrf_serve_rank's, both with the score's terms fitted on the train split
 * (ISRF_SCOPE_TRAIN_SPLIT).  The LightGCN baseline trains with its own
 * defaults and early stopping.  opt may be NULL.  *rows is allocated
 * through env.
 */
IsrfStatus	isrf_evaluate_model(IsrfEnv *env, IsrfServeSession *ss, const IsrfEvalOptions *opt,
								IsrfEvalRow **rows, int32_t *n_rows);

#endif							/* ISRF_EVALUATE_H */
