/*
 * eval/baselines.h
 *	  The reference baselines reported beside the model, exactly as
 *	  ../shared/data/README.md defines them, fitted on train data only:
 *
 *	  popularity: items by their number of train interactions.
 *	  Markov + item-kNN: for the last 5 input items a (weight w = 0.6^j for
 *		the j-th most recent), score b += w * P(b | a), the first-order
 *		transition probability between consecutive train items, plus
 *		0.5 * w * co(a, b) / sqrt(deg a * deg b), where co counts users whose
 *		last 50 train items contain both and deg is an item's train count.
 *
 * Both exclude the input history from the answer and fill a short list with
 * the most popular remaining items.  Full-ranking ties go to the lower item
 * index; on the direct task candidates are ranked by score, then by
 * popularity.  Scores are summed in double in the same order as
 * referee.py, so equal scores there are equal here.
 */
#ifndef ISRF_BASELINES_H
#define ISRF_BASELINES_H

#include "eval/metrics.h"

#define ISRF_MARKOV_HISTORY 5
#define ISRF_MARKOV_DECAY 0.6
#define ISRF_KNN_WEIGHT 0.5
#define ISRF_KNN_WINDOW 50

typedef enum IsrfBaselineMethod
{
	ISRF_BASELINE_POPULARITY = 0,
	ISRF_BASELINE_MARKOV_KNN,
	ISRF_N_BASELINES
} IsrfBaselineMethod;

typedef struct IsrfBaselines
{
	int32_t		n_items;
	int32_t    *pop;			/* [n_items] train interactions (= deg) */
	int32_t    *pop_order;		/* [n_items] by count desc, then index */

	/* transitions a -> b between consecutive train items, counted */
	int32_t    *tr_ptr;			/* [n_items + 1] */
	int32_t    *tr_col;
	int32_t    *tr_cnt;
	int32_t    *tr_total;		/* [n_items] transitions out of a */

	/* co-occurrence within each user's last ISRF_KNN_WINDOW train items */
	int64_t    *co_ptr;			/* [n_items + 1] */
	int32_t    *co_col;
	int32_t    *co_cnt;

	/* scratch for one query (the struct is not shareable between threads) */
	double	   *score;			/* [n_items], zero between queries */
	int32_t    *touched;		/* [n_items] items with a score */
	bool	   *in_input;		/* [n_items] */
} IsrfBaselines;

/* Fit both baselines on the train split of ds. */
IsrfStatus	isrf_baselines_fit(IsrfEnv *env, const IsrfDataset *ds, IsrfBaselines *out);

void		isrf_baselines_free(IsrfEnv *env, IsrfBaselines *b);

/* "popularity" / "markov_knn" */
const char *isrf_baseline_name(IsrfBaselineMethod m);

/*
 * The k best items for an input history (item indices, oldest first), best
 * first, the input excluded; -1 pads when fewer items remain.  out_score
 * (may be NULL) gets the method's score (0 for popularity fill items of
 * Markov + item-kNN).
 */
IsrfStatus	isrf_baselines_recommend(IsrfEnv *env, IsrfBaselines *b,
									 IsrfBaselineMethod m, const int32_t *input,
									 int32_t n_input, int32_t k, int32_t *out_items,
									 double *out_score);

/*
 * The two parts of Markov + item-kNN for every item after an input history:
 * markov[i] the decayed transition probabilities into i, knn[i] the decayed
 * co-occurrence similarities (without ISRF_KNN_WEIGHT), so that
 * markov + ISRF_KNN_WEIGHT * knn is the baseline's score (up to the order
 * of the additions).  Both arrays have n_items entries.
 */
IsrfStatus	isrf_baselines_markov_parts(IsrfEnv *env, IsrfBaselines *b, const int32_t *input,
										int32_t n_input, double *markov, double *knn);

/*
 * Score the candidates cand[0..n) for an input history: score[] is the
 * method's score and tie[] the popularity used to break its ties.
 */
IsrfStatus	isrf_baselines_score(IsrfEnv *env, IsrfBaselines *b, IsrfBaselineMethod m,
								 const int32_t *input, int32_t n_input,
								 const int32_t *cand, int32_t n, double *score,
								 double *tie);

typedef struct IsrfBaselineEval
{
	IsrfMetrics sequential[ISRF_N_BASELINES];	/* means */
	IsrfMetrics direct[ISRF_N_BASELINES];	/* means; users = 0 when not run */
} IsrfBaselineEval;

/*
 * Evaluate both baselines for the target: full ranking over every evaluated
 * user, and, when direct is not NULL (built for the same target), the direct
 * task; ties_to_target as in isrf_direct_rank.
 */
IsrfStatus	isrf_baselines_evaluate(IsrfEnv *env, IsrfBaselines *b,
									const IsrfDataset *ds, IsrfTarget target,
									const IsrfDirectTask *direct,
									bool ties_to_target, IsrfBaselineEval *out);

#endif							/* ISRF_BASELINES_H */
