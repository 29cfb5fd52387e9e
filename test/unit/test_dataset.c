/*
 * test_dataset.c
 *	  Unit tests of isrf_dataset_build: ordering by (order key, item id),
 *	  duplicates, the split, id lookups, the catalogue union, train counts,
 *	  bad input, and a randomised comparison with a plain reference.
 */
#include "data/dataset.h"
#include "unit.h"

#include <string.h>

static IsrfEnv env;

/* user 7: ties on order 2 between items 30 and 20; a later repeat of 20 */
static void
test_order_ties_duplicates(void)
{
	int64_t		u[] = {7, 7, 7, 7, 7, 3, 3, 9, 9, 9};
	int64_t		it[] = {30, 10, 20, 5, 20, 40, 10, 10, 10, 40};
	double		o[] = {2, 1, 2, 3, 9, 5, 6, 1, 1, 0.5};
	IsrfInteractions rows = {10, u, it, o};
	int64_t		cat[] = {99, 5, 10};
	IsrfDataset ds;
	int32_t		u7,
				u3,
				u9;
	const int32_t *h;

	CHECK(isrf_dataset_build(&env, &rows, cat, 3, &ds) == ISRF_OK);
	CHECK(ds.n_users == 3);
	CHECK(ds.user_ids[0] == 3 && ds.user_ids[1] == 7 && ds.user_ids[2] == 9);
	/* items: 5 10 20 30 40 and catalogue-only 99 */
	CHECK(ds.n_items == 6);
	CHECK(ds.item_ids[0] == 5 && ds.item_ids[1] == 10 && ds.item_ids[2] == 20 &&
		  ds.item_ids[3] == 30 && ds.item_ids[4] == 40 && ds.item_ids[5] == 99);
	CHECK(ds.n_duplicates == 2);	/* (7,20) at 9 and the second (9,10) */
	CHECK(ds.n_interactions == 8);

	u7 = isrf_dataset_user_index(&ds, 7);
	u3 = isrf_dataset_user_index(&ds, 3);
	u9 = isrf_dataset_user_index(&ds, 9);
	CHECK(u7 == 1 && u3 == 0 && u9 == 2);
	CHECK(isrf_dataset_user_index(&ds, 8) == -1);
	CHECK(isrf_dataset_user_index(&ds, -1) == -1);
	CHECK(isrf_dataset_item_index(&ds, 99) == 5);
	CHECK(isrf_dataset_item_index(&ds, 6) == -1);
	CHECK(isrf_dataset_item_index(&ds, 100) == -1);

	/* user 7: 10 (1), 20 (2), 30 (2, tie -> by id), 5 (3); 20 at 9 dropped */
	CHECK(isrf_dataset_len(&ds, u7) == 4);
	h = ds.seq + ds.seq_ptr[u7];
	CHECK(ds.item_ids[h[0]] == 10 && ds.item_ids[h[1]] == 20 &&
		  ds.item_ids[h[2]] == 30 && ds.item_ids[h[3]] == 5);
	CHECK(ds.evaluated[u7] && ds.n_train[u7] == 2);
	/* user 3: two interactions, trains on both, not evaluated */
	CHECK(isrf_dataset_len(&ds, u3) == 2 && !ds.evaluated[u3] && ds.n_train[u3] == 2);
	h = ds.seq + ds.seq_ptr[u3];
	CHECK(ds.item_ids[h[0]] == 40 && ds.item_ids[h[1]] == 10);
	/* user 9: 40 (0.5) then 10 once */
	CHECK(isrf_dataset_len(&ds, u9) == 2);
	h = ds.seq + ds.seq_ptr[u9];
	CHECK(ds.item_ids[h[0]] == 40 && ds.item_ids[h[1]] == 10);
	CHECK(ds.n_evaluated == 1);

	/* train counts: user 7 {10,20}, user 3 {40,10}, user 9 {40,10} */
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 10)] == 3);
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 20)] == 1);
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 40)] == 2);
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 30)] == 0);
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 5)] == 0);
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 99)] == 0);
	CHECK(ds.n_train_interactions == 6);
	isrf_dataset_free(&env, &ds);
	CHECK(ds.seq == NULL && ds.n_users == 0);
}

/* A duplicate that comes earlier in time than the first row given wins. */
static void
test_duplicate_keeps_earliest(void)
{
	int64_t		u[] = {1, 1, 1, 1};
	int64_t		it[] = {1, 2, 3, 3};
	double		o[] = {1, 2, 3, 0};
	IsrfInteractions rows = {4, u, it, o};
	IsrfDataset ds;
	const int32_t *h;

	CHECK(isrf_dataset_build(&env, &rows, NULL, 0, &ds) == ISRF_OK);
	h = ds.seq;
	CHECK(isrf_dataset_len(&ds, 0) == 3);
	CHECK(ds.item_ids[h[0]] == 3 && ds.item_ids[h[1]] == 1 && ds.item_ids[h[2]] == 2);
	CHECK(ds.n_duplicates == 1 && ds.n_train[0] == 1 && ds.evaluated[0]);
	CHECK(ds.item_train_count[isrf_dataset_item_index(&ds, 3)] == 1);
	isrf_dataset_free(&env, &ds);
}

static void
test_bad_input(void)
{
	int64_t		u[] = {1, 2};
	int64_t		it[] = {1, 2};
	double		o[] = {1, NAN};
	IsrfInteractions rows = {2, u, it, o};
	IsrfInteractions none = {0, NULL, NULL, NULL};
	IsrfInteractions neg = {-1, u, it, o};
	IsrfDataset ds;
	int64_t		cat[] = {4, 4, 2};

	CHECK(isrf_dataset_build(&env, &rows, NULL, 0, &ds) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "NaN") && strstr(env.errmsg, "user 2"), "%s", env.errmsg);
	CHECK(ds.seq == NULL && ds.user_ids == NULL);
	CHECK(isrf_dataset_build(&env, &neg, NULL, 0, &ds) == ISRF_ERR_INVALID);
	CHECK(isrf_dataset_build(&env, &none, cat, -2, &ds) == ISRF_ERR_INVALID);

	/* no interactions: a catalogue-only item index (repeats merged) */
	CHECK(isrf_dataset_build(&env, &none, cat, 3, &ds) == ISRF_OK);
	CHECK(ds.n_users == 0 && ds.n_items == 2 && ds.item_ids[0] == 2 && ds.item_ids[1] == 4);
	CHECK(ds.n_interactions == 0 && ds.n_evaluated == 0 && ds.seq_ptr[0] == 0);
	isrf_dataset_free(&env, &ds);
}

/* Reference: history of user uid by repeated minimum search, O(n^2). */
static int
ref_history(const IsrfInteractions *r, int64_t uid, int64_t *out_items)
{
	int			n = 0;
	double		last_o = -INFINITY;
	int64_t		last_i = INT64_MIN;

	for (;;)
	{
		int64_t		best = -1;
		int64_t		k;

		for (k = 0; k < r->n; k++)
		{
			bool		dup = false;
			int			j;

			if (r->user_id[k] != uid)
				continue;
			/* skip items already taken (the earliest occurrence is taken first) */
			for (j = 0; j < n; j++)
				if (out_items[j] == r->item_id[k])
					dup = true;
			if (dup)
				continue;
			if (r->order[k] < last_o || (r->order[k] == last_o && r->item_id[k] <= last_i))
				continue;
			if (best < 0 || r->order[k] < r->order[best] ||
				(r->order[k] == r->order[best] && r->item_id[k] < r->item_id[best]))
				best = k;
		}
		if (best < 0)
			return n;
		out_items[n++] = r->item_id[best];
		last_o = r->order[best];
		last_i = r->item_id[best];
	}
}

static void
test_random_against_reference(void)
{
	unsigned long long seed = 7;
	enum
	{
	N = 600};
	int64_t		u[N],
				it[N];
	double		o[N];
	int64_t		items[N];
	IsrfInteractions rows = {N, u, it, o};
	IsrfDataset ds;
	int			k,
				bad = 0;
	int64_t		total = 0;

	for (k = 0; k < N; k++)
	{
		u[k] = (int64_t) (unit_rand_next(&seed) % 40) * 1000 - 5000;
		it[k] = (int64_t) (unit_rand_next(&seed) % 30);
		o[k] = (double) (unit_rand_next(&seed) % 8);	/* many ties */
	}
	CHECK(isrf_dataset_build(&env, &rows, NULL, 0, &ds) == ISRF_OK);
	for (k = 0; k < ds.n_users; k++)
	{
		int			n = ref_history(&rows, ds.user_ids[k], items);
		int			j;

		total += n;
		if (n != isrf_dataset_len(&ds, k))
			bad++;
		else
			for (j = 0; j < n; j++)
				if (ds.item_ids[ds.seq[ds.seq_ptr[k] + j]] != items[j])
					bad++;
		if (k > 0 && ds.user_ids[k] <= ds.user_ids[k - 1])
			bad++;
		if (ds.n_train[k] != (n >= 3 ? n - 2 : n) || ds.evaluated[k] != (n >= 3))
			bad++;
	}
	CHECK_MSG(bad == 0, "%d mismatches against the reference", bad);
	CHECK(total == ds.n_interactions && ds.n_duplicates == N - total);
	isrf_dataset_free(&env, &ds);
}

int
main(void)
{
	isrf_env_init_malloc(&env);
	test_order_ties_duplicates();
	test_duplicate_keeps_earliest();
	test_bad_input();
	test_random_against_reference();
	UNIT_END("test_dataset");
}
