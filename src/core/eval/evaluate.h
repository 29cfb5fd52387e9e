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

/*
 * Evaluate the session's model on its own split beside the baselines:
 * rows for task sequential and direct and each method (the isrf rows only
 * when the model has a generative part).  *rows is allocated through env.
 */
IsrfStatus	isrf_evaluate_model(IsrfEnv *env, IsrfServeSession *ss, IsrfEvalRow **rows,
								int32_t *n_rows);

#endif							/* ISRF_EVALUATE_H */
