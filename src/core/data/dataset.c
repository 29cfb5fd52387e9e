/*
 * data/dataset.c
 *	  Building an IsrfDataset from raw interaction rows: id maps, ordered and
 *	  de-duplicated histories, and the leak-free split (see dataset.h).
 */
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One interaction while it is being sorted. */
typedef struct DsRow
{
	int32_t		u;
	int32_t		i;
	double		order;
	int64_t		row;			/* input position: "first occurrence" tie-break */
} DsRow;

static int
ds_cmp_int64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* (user, item, order, input row): equal (user, item) pairs become adjacent */
static int
ds_cmp_pair(const void *a, const void *b)
{
	const DsRow *x = a;
	const DsRow *y = b;

	if (x->u != y->u)
		return x->u < y->u ? -1 : 1;
	if (x->i != y->i)
		return x->i < y->i ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

/* (user, order, item): the history order of dataset.h */
static int
ds_cmp_history(const void *a, const void *b)
{
	const DsRow *x = a;
	const DsRow *y = b;

	if (x->u != y->u)
		return x->u < y->u ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* Sort v[0..n) and drop repeats; returns the new length. */
static int64_t
ds_sort_unique(int64_t *v, int64_t n)
{
	int64_t		w = 0;
	int64_t		r;

	if (n == 0)
		return 0;
	qsort(v, (size_t) n, sizeof(int64_t), ds_cmp_int64);
	for (r = 1; r < n; r++)
		if (v[r] != v[w])
			v[++w] = v[r];
	return w + 1;
}

int32_t
isrf_id_index(const int64_t *ids, int32_t n, int64_t id)
{
	int32_t		lo = 0;
	int32_t		hi = n - 1;

	while (lo <= hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (ids[mid] < id)
			lo = mid + 1;
		else if (ids[mid] > id)
			hi = mid - 1;
		else
			return mid;
	}
	return -1;
}

/* Copy the first n ids of tmp into a fresh exact-size array. */
static IsrfStatus
ds_take_ids(IsrfEnv *env, const int64_t *tmp, int64_t n, const char *what,
			int64_t **out, int32_t *n_out)
{
	if (n > INT32_MAX - 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "too many distinct %s ids: %lld (at most %d)",
						 what, (long long) n, INT32_MAX - 1);
	*out = isrf_alloc(env, sizeof(int64_t) * (size_t) (n > 0 ? n : 1));
	if (*out == NULL)
		return ISRF_ERR_NOMEM;
	if (n > 0)
		memcpy(*out, tmp, sizeof(int64_t) * (size_t) n);
	*n_out = (int32_t) n;
	return ISRF_OK;
}

/*
 * The counts that follow from the histories and the split: who is
 * evaluated (isrf_split_evaluated), interactions and each item's train
 * interactions.  evaluated and item_train_count are allocated and zeroed.
 */
static void
ds_count_split(IsrfDataset *ds)
{
	int32_t		u,
				j;

	ds->n_evaluated = 0;
	ds->n_interactions = ds->seq_ptr[ds->n_users];
	ds->n_train_interactions = 0;
	for (u = 0; u < ds->n_users; u++)
	{
		ds->evaluated[u] = isrf_split_evaluated(isrf_dataset_len(ds, u), ds->n_train[u]);
		ds->n_evaluated += ds->evaluated[u];
		ds->n_train_interactions += ds->n_train[u];
		for (j = 0; j < ds->n_train[u]; j++)
			ds->item_train_count[ds->seq[ds->seq_ptr[u] + j]]++;
	}
}

/* The body of isrf_dataset_build; the caller frees out on failure. */
static IsrfStatus
ds_build(IsrfEnv *env, const IsrfInteractions *rows,
		 const int64_t *catalogue_item_ids, int64_t n_catalogue,
		 IsrfDataset *out, int64_t **tmp_ids, DsRow **tmp_rows)
{
	int64_t		n = rows->n;
	int64_t		r,
				n_ids,
				kept;
	DsRow	   *rec;
	int32_t		u;

	if (n < 0 || n_catalogue < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "negative row count (%lld interactions, %lld catalogue items)",
						 (long long) n, (long long) n_catalogue);
	if (n > 0 && (rows->user_id == NULL || rows->item_id == NULL || rows->order == NULL))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "interaction rows without user, item or order column");
	if (n_catalogue > 0 && catalogue_item_ids == NULL)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "%lld catalogue items given without their ids",
						 (long long) n_catalogue);
	for (r = 0; r < n; r++)
		if (isnan(rows->order[r]))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "interaction row %lld (user %lld, item %lld) has a NaN order key",
							 (long long) r + 1, (long long) rows->user_id[r],
							 (long long) rows->item_id[r]);
	ISRF_TRY(isrf_poll(env));

	/* users: distinct ids of the rows */
	*tmp_ids = isrf_alloc(env, sizeof(int64_t) * (size_t) (n + n_catalogue + 1));
	if (*tmp_ids == NULL)
		return ISRF_ERR_NOMEM;
	if (n > 0)
		memcpy(*tmp_ids, rows->user_id, sizeof(int64_t) * (size_t) n);
	n_ids = ds_sort_unique(*tmp_ids, n);
	ISRF_TRY(ds_take_ids(env, *tmp_ids, n_ids, "user", &out->user_ids, &out->n_users));

	/* items: union of the rows' items and the catalogue */
	if (n > 0)
		memcpy(*tmp_ids, rows->item_id, sizeof(int64_t) * (size_t) n);
	if (n_catalogue > 0)
		memcpy(*tmp_ids + n, catalogue_item_ids, sizeof(int64_t) * (size_t) n_catalogue);
	n_ids = ds_sort_unique(*tmp_ids, n + n_catalogue);
	ISRF_TRY(ds_take_ids(env, *tmp_ids, n_ids, "item", &out->item_ids, &out->n_items));
	isrf_free(env, *tmp_ids);
	*tmp_ids = NULL;
	ISRF_TRY(isrf_poll(env));

	*tmp_rows = rec = isrf_alloc(env, sizeof(DsRow) * (size_t) (n > 0 ? n : 1));
	if (rec == NULL)
		return ISRF_ERR_NOMEM;
	for (r = 0; r < n; r++)
	{
		rec[r].u = isrf_id_index(out->user_ids, out->n_users, rows->user_id[r]);
		rec[r].i = isrf_id_index(out->item_ids, out->n_items, rows->item_id[r]);
		rec[r].order = rows->order[r];
		rec[r].row = r;
	}

	/* de-duplicate (user, item), keeping the earliest (then first given) row */
	qsort(rec, (size_t) n, sizeof(DsRow), ds_cmp_pair);
	ISRF_TRY(isrf_poll(env));
	kept = 0;
	for (r = 0; r < n; r++)
	{
		if (kept > 0 && rec[kept - 1].u == rec[r].u && rec[kept - 1].i == rec[r].i)
			continue;
		rec[kept++] = rec[r];
	}
	out->n_duplicates = n - kept;
	out->n_interactions = kept;
	if (kept > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "%lld distinct interactions, more than 2^31-1",
						 (long long) kept);
	qsort(rec, (size_t) kept, sizeof(DsRow), ds_cmp_history);
	ISRF_TRY(isrf_poll(env));

	out->seq_ptr = isrf_calloc(env, (size_t) out->n_users + 1, sizeof(int32_t));
	out->seq = isrf_alloc(env, sizeof(int32_t) * (size_t) (kept > 0 ? kept : 1));
	out->n_train = isrf_calloc(env, (size_t) out->n_users + 1, sizeof(int32_t));
	out->evaluated = isrf_calloc(env, (size_t) out->n_users + 1, sizeof(bool));
	out->item_train_count = isrf_calloc(env, (size_t) out->n_items + 1, sizeof(int32_t));
	if (!out->seq_ptr || !out->seq || !out->n_train || !out->evaluated ||
		!out->item_train_count)
		return ISRF_ERR_NOMEM;
	for (r = 0; r < kept; r++)
	{
		out->seq[r] = rec[r].i;
		out->seq_ptr[rec[r].u + 1]++;
	}
	for (u = 0; u < out->n_users; u++)
		out->seq_ptr[u + 1] += out->seq_ptr[u];

	for (u = 0; u < out->n_users; u++)
	{
		int32_t		len = isrf_dataset_len(out, u);

		out->n_train[u] = len >= 3 ? len - 2 : len;
	}
	ds_count_split(out);
	return ISRF_OK;
}

/*
 * Build a dataset from raw rows (see dataset.h).  On failure nothing is left
 * allocated and *out is zeroed.
 */
IsrfStatus
isrf_dataset_build(IsrfEnv *env, const IsrfInteractions *rows,
				   const int64_t *catalogue_item_ids, int64_t n_catalogue,
				   IsrfDataset *out)
{
	int64_t    *tmp_ids = NULL;
	DsRow	   *tmp_rows = NULL;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	st = ds_build(env, rows, catalogue_item_ids, n_catalogue, out, &tmp_ids, &tmp_rows);
	isrf_free(env, tmp_ids);
	isrf_free(env, tmp_rows);
	if (st != ISRF_OK)
		isrf_dataset_free(env, out);
	return st;
}

/* Release everything a dataset holds; safe on a zeroed struct. */
void
isrf_dataset_free(IsrfEnv *env, IsrfDataset *ds)
{
	isrf_free(env, ds->user_ids);
	isrf_free(env, ds->item_ids);
	isrf_free(env, ds->seq_ptr);
	isrf_free(env, ds->seq);
	isrf_free(env, ds->n_train);
	isrf_free(env, ds->evaluated);
	isrf_free(env, ds->item_train_count);
	memset(ds, 0, sizeof(*ds));
}

IsrfStatus
isrf_dataset_view(IsrfEnv *env, int32_t n_users, int32_t n_items, const int32_t *seq_ptr,
				  const int32_t *seq, const int32_t *n_train, IsrfDataset *out)
{
	memset(out, 0, sizeof(*out));
	out->n_users = n_users;
	out->n_items = n_items;
	out->seq_ptr = (int32_t *) seq_ptr;
	out->seq = (int32_t *) seq;
	out->n_train = (int32_t *) n_train;
	out->evaluated = isrf_calloc(env, (size_t) n_users + 1, sizeof(bool));
	out->item_train_count = isrf_calloc(env, (size_t) n_items + 1, 4);
	if (!out->evaluated || !out->item_train_count)
	{
		isrf_dataset_view_free(env, out);
		return ISRF_ERR_NOMEM;
	}
	ds_count_split(out);
	return ISRF_OK;
}

void
isrf_dataset_view_free(IsrfEnv *env, IsrfDataset *ds)
{
	isrf_free(env, ds->evaluated);
	isrf_free(env, ds->item_train_count);
	memset(ds, 0, sizeof(*ds));
}

int32_t
isrf_dataset_user_index(const IsrfDataset *ds, int64_t user_id)
{
	return isrf_id_index(ds->user_ids, ds->n_users, user_id);
}

int32_t
isrf_dataset_item_index(const IsrfDataset *ds, int64_t item_id)
{
	return isrf_id_index(ds->item_ids, ds->n_items, item_id);
}
