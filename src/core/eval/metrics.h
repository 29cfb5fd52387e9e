/*
 * eval/metrics.h
 *	  Leave-one-out evaluation (DESIGN.md section 7): HR@k and NDCG@k of a
 *	  ranked list against one target, their mean over users, the full-ranking
 *	  top-k with the user's history excluded, and the candidates of the
 *	  direct task.
 *
 * Ranks are 0-based: a target at rank r counts for HR@k when r < k and adds
 * 1 / log2(r + 2) to NDCG@k (one relevant item, so the ideal DCG is 1).
 *
 * Direct task: each evaluated user's target plus 99 distinct items drawn
 * uniformly from the whole item index (catalogue included) that the user
 * never touched in any split.  The draw reproduces, number for number, the
 * direct task of ../shared/tools/referee.py (Python's random.Random, the
 * Mersenne Twister, seeded with ISRF_DIRECT_SEED): evaluated users are taken
 * in ascending id order and shuffled; for each user in that order negatives
 * are drawn with random.choice over all items, repeats and touched items
 * redrawn; the candidate list is the target followed by the negatives in
 * ascending id order, then shuffled.  So the first 2000 users and their
 * candidates are exactly the referee's, and every method is scored on the
 * same candidates.
 */
#ifndef ISRF_METRICS_H
#define ISRF_METRICS_H

#include "data/dataset.h"

#define ISRF_DIRECT_SEED 20261122
#define ISRF_DIRECT_NEGATIVES 99

/* Which held-out item is predicted. */
typedef enum IsrfTarget
{
	ISRF_TARGET_TEST = 0,		/* last item; input = all items before it */
	ISRF_TARGET_VALIDATION		/* second-to-last; input = the train items */
} IsrfTarget;

/* Sums while accumulating, means after isrf_metrics_mean. */
typedef struct IsrfMetrics
{
	int64_t		users;
	double		hr5;
	double		ndcg5;
	double		hr10;
	double		ndcg10;
} IsrfMetrics;

/* HR@k / NDCG@k of one target at 0-based rank (negative = not ranked). */
double		isrf_hr_at(int32_t rank, int32_t k);
double		isrf_ndcg_at(int32_t rank, int32_t k);

/*
 * Full ranking: the 0-based rank of item target among score[0..n) -- the
 * items scoring higher plus those tying with it at a lower index; NaN
 * scores (excluded items) never count, a NaN target is not ranked (-1).
 * Counting stops at cap when cap > 0 (cap is then returned for any rank
 * >= cap: enough for HR/NDCG@cap).
 */
int32_t		isrf_full_rank(const float *score, int32_t n, int32_t target, int32_t cap);

/* The same under the blended score a[i] + wb * (float) b[i]. */
int32_t		isrf_full_rank_blend(const float *a, const double *b, float wb, int32_t n,
								 int32_t target, int32_t cap);

/* The same under a[i] + wb * (float) b[i] + wg * g[i]. */
int32_t		isrf_full_rank_blend2(const float *a, const double *b, float wb, const float *g,
								  float wg, int32_t n, int32_t target, int32_t cap);

/* 0-based position of target in list[0..n), or -1. */
int32_t		isrf_rank_in_list(const int32_t *list, int32_t n, int32_t target);

/* Add one user's target rank (negative = not ranked) to the sums. */
void		isrf_metrics_add(IsrfMetrics *acc, int32_t rank);

/* Means of accumulated sums (all zero when no user was added). */
IsrfMetrics isrf_metrics_mean(const IsrfMetrics *acc);

/*
 * The input history of evaluated user u for a target: its first n items are
 * ds->seq + ds->seq_ptr[u]; the target item is returned.
 */
int32_t		isrf_eval_input(const IsrfDataset *ds, int32_t u, IsrfTarget target,
							int32_t *n_input);

/*
 * Full ranking: the k best items of score[0..n_items) (descending, ties to
 * the lower item index, NaN never chosen) that are not in exclude[0..n_ex).
 * Fewer than k candidates pad out_idx with -1.  out_score may be NULL.
 */
void		isrf_topk_excluding(const float *score, int32_t n_items,
								const int32_t *exclude, int32_t n_exclude,
								int32_t k, int32_t *out_idx, float *out_score);

/*
 * Rank of candidate target_pos among n candidates, by score and then, where
 * tie_score is not NULL, by tie_score: the number of candidates ordered
 * strictly before it, plus, when !ties_to_target, the number that tie with
 * it fully and come before it in candidate order (candidates are shuffled,
 * so that is a fair random tie-break).  referee.py resolves full ties in the
 * target's favour (ties_to_target = true).  A NaN target score ranks last.
 */
int32_t		isrf_direct_rank(const double *score, const double *tie_score,
							 int32_t n, int32_t target_pos, bool ties_to_target);

/* The candidates of the direct task. */
typedef struct IsrfDirectTask
{
	IsrfTarget	target;
	int32_t		n_users;		/* users sampled */
	int32_t		n_cand;			/* 1 + negatives */
	int32_t    *user;			/* [n_users] user indices, in sampled order */
	int32_t    *cand;			/* [n_users * n_cand] item indices, shuffled */
	int32_t    *target_pos;		/* [n_users] where the target is in its row */
} IsrfDirectTask;

/*
 * Negatives per user of the direct task: ISRF_DIRECT_NEGATIVES as the
 * protocol says, or, for a catalogue too small for that (tests, toy data),
 * as many as every user can have (n_items minus the longest history; < 1:
 * the direct task cannot be drawn).
 */
int32_t		isrf_direct_negatives(const IsrfDataset *ds);

/*
 * Draw the candidates for the evaluated users (max_users > 0: only the first
 * max_users of the shuffled order, as referee.py does with 2000).  A user
 * who touched so many items that fewer than n_negatives are left untouched
 * is an error.
 */
IsrfStatus	isrf_direct_task_build(IsrfEnv *env, const IsrfDataset *ds,
								   IsrfTarget target, uint64_t seed,
								   int32_t n_negatives, int32_t max_users,
								   IsrfDirectTask *out);

void		isrf_direct_task_free(IsrfEnv *env, IsrfDirectTask *t);

#endif							/* ISRF_METRICS_H */
