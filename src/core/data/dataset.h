/*
 * data/dataset.h
 *	  Interactions as the engine sees them: external ids mapped to dense
 *	  indices, each user's history in order, and the leak-free split of
 *	  DESIGN.md section 7.
 *
 * Per user, interactions are ordered by (order key, item id) so that ties
 * split deterministically; a repeated (user, item) pair keeps its first
 * occurrence and is counted as a duplicate.  Users with at least three
 * interactions get: test = last item, validation = second-to-last, train =
 * the rest.  Users with fewer train on everything and are not evaluated.
 *
 * The item index covers the union of items seen in interactions and the
 * catalogue (items table), so an item known only from its metadata still has
 * an index, features and a semantic ID.
 */
#ifndef ISRF_DATASET_H
#define ISRF_DATASET_H

#include "base/env.h"

/* Raw interaction rows, in any order, as loaded from SQL or CSV. */
typedef struct IsrfInteractions
{
	int64_t		n;
	const int64_t *user_id;
	const int64_t *item_id;
	const double *order;		/* order key; ties broken by item id */
} IsrfInteractions;

typedef struct IsrfDataset
{
	int32_t		n_users;
	int32_t		n_items;		/* interactions' items plus catalogue items */
	int64_t    *user_ids;		/* [n_users] external id, ascending */
	int64_t    *item_ids;		/* [n_items] external id, ascending */

	/* Full ordered, de-duplicated history of user u: seq[seq_ptr[u] .. seq_ptr[u+1]) */
	int32_t    *seq_ptr;		/* [n_users + 1] */
	int32_t    *seq;			/* item indices */

	/*
	 * Split: the first n_train[u] items of the history are train; when
	 * evaluated[u], history[len-2] is validation and history[len-1] is test.
	 */
	int32_t    *n_train;		/* [n_users] */
	bool	   *evaluated;		/* [n_users] */
	int32_t		n_evaluated;

	int64_t		n_interactions; /* after de-duplication */
	int64_t		n_train_interactions;
	int64_t		n_duplicates;	/* rows dropped as repeated (user, item) */
	int32_t    *item_train_count;	/* [n_items] train interactions per item */
} IsrfDataset;

/*
 * Build a dataset.  catalogue_item_ids (may be NULL) lists the items of the
 * items table; items of interactions missing from a non-empty catalogue are
 * not dropped here (the SQL loader counts and drops them before).
 */
IsrfStatus	isrf_dataset_build(IsrfEnv *env, const IsrfInteractions *rows,
							   const int64_t *catalogue_item_ids,
							   int64_t n_catalogue, IsrfDataset *out);

void		isrf_dataset_free(IsrfEnv *env, IsrfDataset *ds);

/* Index of id in the ascending ids[0..n), or -1 (binary search). */
int32_t		isrf_id_index(const int64_t *ids, int32_t n, int64_t id);

/* Dense index of an external id, or -1. (binary search) */
int32_t		isrf_dataset_user_index(const IsrfDataset *ds, int64_t user_id);
int32_t		isrf_dataset_item_index(const IsrfDataset *ds, int64_t item_id);

/*
 * A dataset over histories and a split owned elsewhere (a trained model's):
 * the ids stay NULL, evaluated and item_train_count are computed and owned
 * by the view (isrf_dataset_view_free).
 */
IsrfStatus	isrf_dataset_view(IsrfEnv *env, int32_t n_users, int32_t n_items,
							  const int32_t *seq_ptr, const int32_t *seq,
							  const int32_t *n_train, IsrfDataset *out);
void		isrf_dataset_view_free(IsrfEnv *env, IsrfDataset *ds);

/*
 * The split's one rule for who is evaluated: at least three interactions,
 * train = all but the last two (validation = second-to-last, test = last).
 */
static inline bool
isrf_split_evaluated(int32_t len, int32_t n_train)
{
	return len >= 3 && n_train == len - 2;
}

/* Length of user u's full history. */
static inline int32_t
isrf_dataset_len(const IsrfDataset *ds, int32_t u)
{
	return ds->seq_ptr[u + 1] - ds->seq_ptr[u];
}

#endif							/* ISRF_DATASET_H */
