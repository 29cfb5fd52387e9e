/*
 * eval/baselines.c
 *	  Popularity and Markov + item-kNN (see baselines.h): fitting the counts
 *	  on the train split, answering queries and evaluating both.
 */
#include "eval/baselines.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *
isrf_baseline_name(IsrfBaselineMethod m)
{
	switch (m)
	{
		case ISRF_BASELINE_POPULARITY:
			return "popularity";
		case ISRF_BASELINE_MARKOV_KNN:
			return "markov_knn";
		case ISRF_N_BASELINES:
			break;
	}
	return "unknown";
}

static int
bl_cmp_int32(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a;
	int32_t		y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

/* pop_order by a counting sort: count descending, index ascending */
static IsrfStatus
bl_fit_popularity(IsrfEnv *env, const IsrfDataset *ds, IsrfBaselines *b)
{
	int32_t		max = 0;
	int32_t	   *start;
	int32_t		i,
				c;

	b->pop = isrf_alloc(env, sizeof(int32_t) * (size_t) (ds->n_items + 1));
	b->pop_order = isrf_alloc(env, sizeof(int32_t) * (size_t) (ds->n_items + 1));
	if (!b->pop || !b->pop_order)
		return ISRF_ERR_NOMEM;
	for (i = 0; i < ds->n_items; i++)
	{
		b->pop[i] = ds->item_train_count[i];
		if (b->pop[i] > max)
			max = b->pop[i];
	}
	start = isrf_calloc(env, (size_t) max + 2, sizeof(int32_t));
	if (start == NULL)
		return ISRF_ERR_NOMEM;
	/* start[c] = first slot of count c, counts laid out from max down to 0 */
	for (i = 0; i < ds->n_items; i++)
		start[b->pop[i]]++;
	{
		int32_t		pos = 0;

		for (c = max; c >= 0; c--)
		{
			int32_t		n = start[c];

			start[c] = pos;
			pos += n;
		}
	}
	for (i = 0; i < ds->n_items; i++)
		b->pop_order[start[b->pop[i]]++] = i;
	isrf_free(env, start);
	return ISRF_OK;
}

/* Counted transitions between consecutive train items. */
static IsrfStatus
bl_fit_transitions(IsrfEnv *env, const IsrfDataset *ds, IsrfBaselines *b)
{
	int64_t		n_pairs = 0;
	int32_t    *fill;
	int32_t		u,
				a,
				j,
				w = 0;

	b->tr_ptr = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	b->tr_total = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	if (!b->tr_ptr || !b->tr_total)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];

		for (j = 0; j + 1 < ds->n_train[u]; j++)
		{
			b->tr_ptr[h[j] + 1]++;
			n_pairs++;
		}
	}
	for (a = 0; a < ds->n_items; a++)
		b->tr_ptr[a + 1] += b->tr_ptr[a];
	b->tr_col = isrf_alloc(env, sizeof(int32_t) * (size_t) (n_pairs + 1));
	b->tr_cnt = isrf_alloc(env, sizeof(int32_t) * (size_t) (n_pairs + 1));
	fill = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	if (!b->tr_col || !b->tr_cnt || !fill)
	{
		isrf_free(env, fill);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];

		for (j = 0; j + 1 < ds->n_train[u]; j++)
			b->tr_col[b->tr_ptr[h[j]] + fill[h[j]]++] = h[j + 1];
	}
	isrf_free(env, fill);

	/* sort each row and merge repeats into counts, compacting in place */
	for (a = 0; a < ds->n_items; a++)
	{
		int32_t		lo = b->tr_ptr[a];
		int32_t		hi = b->tr_ptr[a + 1];
		int32_t		r;

		if ((a & 1023) == 0)
			ISRF_TRY(isrf_poll(env));
		qsort(b->tr_col + lo, (size_t) (hi - lo), sizeof(int32_t), bl_cmp_int32);
		b->tr_ptr[a] = w;
		for (r = lo; r < hi; r++)
		{
			if (w > b->tr_ptr[a] && b->tr_col[w - 1] == b->tr_col[r])
				b->tr_cnt[w - 1]++;
			else
			{
				b->tr_col[w] = b->tr_col[r];
				b->tr_cnt[w] = 1;
				w++;
			}
		}
		b->tr_total[a] = hi - lo;
	}
	b->tr_ptr[ds->n_items] = w;
	return ISRF_OK;
}

/* Grow the co-occurrence arrays to hold at least need entries. */
static IsrfStatus
bl_co_reserve(IsrfEnv *env, IsrfBaselines *b, int64_t used, int64_t need, int64_t *cap)
{
	int64_t		nc = *cap;
	int32_t    *col,
			   *cnt;

	if (need <= *cap)
		return ISRF_OK;
	while (nc < need)
		nc = nc < 1024 ? 1024 : nc * 2;
	col = isrf_alloc(env, sizeof(int32_t) * (size_t) nc);
	cnt = isrf_alloc(env, sizeof(int32_t) * (size_t) nc);
	if (!col || !cnt)
	{
		isrf_free(env, col);
		isrf_free(env, cnt);
		return ISRF_ERR_NOMEM;
	}
	if (used > 0)
	{
		memcpy(col, b->co_col, sizeof(int32_t) * (size_t) used);
		memcpy(cnt, b->co_cnt, sizeof(int32_t) * (size_t) used);
	}
	isrf_free(env, b->co_col);
	isrf_free(env, b->co_cnt);
	b->co_col = col;
	b->co_cnt = cnt;
	*cap = nc;
	return ISRF_OK;
}

/*
 * co(a, b) = number of users whose last ISRF_KNN_WINDOW train items hold
 * both a and b.  Built row by row through an item -> users index of the
 * windows, so memory follows the distinct pairs, not the pairs per user.
 */
static IsrfStatus
bl_fit_cooccurrence(IsrfEnv *env, const IsrfDataset *ds, IsrfBaselines *b,
					int32_t *win_ptr, int32_t *mark, int32_t *tmp_cnt)
{
	int32_t    *users;
	int64_t		used = 0,
				cap = 0;
	int32_t		u,
				a,
				j;
	IsrfStatus	st = ISRF_OK;

	/* win_ptr: item -> the users whose window holds it */
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];
		int32_t		nt = ds->n_train[u];

		for (j = nt > ISRF_KNN_WINDOW ? nt - ISRF_KNN_WINDOW : 0; j < nt; j++)
			win_ptr[h[j] + 1]++;
	}
	for (a = 0; a < ds->n_items; a++)
		win_ptr[a + 1] += win_ptr[a];
	users = isrf_alloc(env, sizeof(int32_t) * (size_t) (win_ptr[ds->n_items] + 1));
	if (users == NULL)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];
		int32_t		nt = ds->n_train[u];

		for (j = nt > ISRF_KNN_WINDOW ? nt - ISRF_KNN_WINDOW : 0; j < nt; j++)
			users[win_ptr[h[j]] + mark[h[j]]++] = u;
	}
	memset(mark, 0, sizeof(int32_t) * (size_t) ds->n_items);

	b->co_ptr = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int64_t));
	if (b->co_ptr == NULL)
	{
		isrf_free(env, users);
		return ISRF_ERR_NOMEM;
	}
	for (a = 0; a < ds->n_items && st == ISRF_OK; a++)
	{
		int32_t		row_start_len = 0;
		int32_t		r;

		if ((a & 255) == 0 && (st = isrf_poll(env)) != ISRF_OK)
			break;
		b->co_ptr[a] = used;
		for (r = win_ptr[a]; r < win_ptr[a + 1]; r++)
		{
			int32_t		v = users[r];
			const int32_t *h = ds->seq + ds->seq_ptr[v];
			int32_t		nt = ds->n_train[v];

			if ((st = bl_co_reserve(env, b, used + row_start_len, used + row_start_len + ISRF_KNN_WINDOW, &cap)) != ISRF_OK)
				break;
			for (j = nt > ISRF_KNN_WINDOW ? nt - ISRF_KNN_WINDOW : 0; j < nt; j++)
			{
				int32_t		x = h[j];

				if (x == a)
					continue;
				if (mark[x] != a + 1)
				{
					mark[x] = a + 1;
					tmp_cnt[x] = 0;
					b->co_col[used + row_start_len++] = x;
				}
				tmp_cnt[x]++;
			}
		}
		for (r = 0; r < row_start_len; r++)
			b->co_cnt[used + r] = tmp_cnt[b->co_col[used + r]];
		used += row_start_len;
	}
	b->co_ptr[ds->n_items] = used;
	isrf_free(env, users);
	return st;
}

IsrfStatus
isrf_baselines_fit(IsrfEnv *env, const IsrfDataset *ds, IsrfBaselines *out)
{
	int32_t    *win_ptr = NULL,
			   *mark = NULL,
			   *tmp = NULL;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	out->n_items = ds->n_items;
	if ((st = bl_fit_popularity(env, ds, out)) != ISRF_OK ||
		(st = bl_fit_transitions(env, ds, out)) != ISRF_OK)
		goto fail;
	win_ptr = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	mark = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	tmp = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	if (!win_ptr || !mark || !tmp)
	{
		st = ISRF_ERR_NOMEM;
		goto fail;
	}
	st = bl_fit_cooccurrence(env, ds, out, win_ptr, mark, tmp);
	if (st != ISRF_OK)
		goto fail;
	out->score = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(double));
	out->touched = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	out->in_input = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(bool));
	if (!out->score || !out->touched || !out->in_input)
	{
		st = ISRF_ERR_NOMEM;
		goto fail;
	}
	isrf_free(env, win_ptr);
	isrf_free(env, mark);
	isrf_free(env, tmp);
	return ISRF_OK;

fail:
	isrf_free(env, win_ptr);
	isrf_free(env, mark);
	isrf_free(env, tmp);
	isrf_baselines_free(env, out);
	return st;
}

void
isrf_baselines_free(IsrfEnv *env, IsrfBaselines *b)
{
	isrf_free(env, b->pop);
	isrf_free(env, b->pop_order);
	isrf_free(env, b->tr_ptr);
	isrf_free(env, b->tr_col);
	isrf_free(env, b->tr_cnt);
	isrf_free(env, b->tr_total);
	isrf_free(env, b->co_ptr);
	isrf_free(env, b->co_col);
	isrf_free(env, b->co_cnt);
	isrf_free(env, b->score);
	isrf_free(env, b->touched);
	isrf_free(env, b->in_input);
	memset(b, 0, sizeof(*b));
}

static IsrfStatus
bl_check_input(IsrfEnv *env, const IsrfBaselines *b, const int32_t *input, int32_t n)
{
	int32_t		i;

	for (i = 0; i < n; i++)
		if (input[i] < 0 || input[i] >= b->n_items)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "history item index %d is outside 0..%d", input[i], b->n_items - 1);
	return ISRF_OK;
}

static inline void
bl_add(IsrfBaselines *b, int32_t *n_touched, int32_t item, double v)
{
	if (b->score[item] == 0.0)
		b->touched[(*n_touched)++] = item;
	b->score[item] += v;
}

/*
 * The Markov + item-kNN walk over the last ISRF_MARKOV_HISTORY inputs, most
 * recent first, transitions then co-occurrences, in the order of
 * referee.py, so the double sums agree to the last bit.  With markov NULL,
 * the baseline's score (kNN weighted ISRF_KNN_WEIGHT) goes into b->score
 * and the count of items b->touched lists is returned; otherwise the two
 * parts go apart, unweighted, into markov and knn (zeroed by the caller).
 */
static int32_t
bl_markov_walk(IsrfBaselines *b, const int32_t *input, int32_t n, double *markov, double *knn)
{
	int32_t		n_touched = 0;
	int32_t		k;

	for (k = 0; k < ISRF_MARKOV_HISTORY && k < n; k++)
	{
		int32_t		a = input[n - 1 - k];
		double		w = pow(ISRF_MARKOV_DECAY, (double) k);
		double		tot = b->tr_total[a] > 0 ? (double) b->tr_total[a] : 1.0;
		int64_t		r;

		for (r = b->tr_ptr[a]; r < b->tr_ptr[a + 1]; r++)
		{
			double		v = w * (double) b->tr_cnt[r] / tot;

			if (markov)
				markov[b->tr_col[r]] += v;
			else
				bl_add(b, &n_touched, b->tr_col[r], v);
		}
		for (r = b->co_ptr[a]; r < b->co_ptr[a + 1]; r++)
		{
			int32_t		x = b->co_col[r];
			double		norm = sqrt((double) b->pop[a] * (double) b->pop[x]);

			if (knn)
				knn[x] += w * (double) b->co_cnt[r] / norm;
			else
				bl_add(b, &n_touched, x, ISRF_KNN_WEIGHT * w * (double) b->co_cnt[r] / norm);
		}
	}
	return n_touched;
}

IsrfStatus
isrf_baselines_markov_parts(IsrfEnv *env, IsrfBaselines *b, const int32_t *input, int32_t n,
							double *markov, double *knn)
{
	ISRF_TRY(bl_check_input(env, b, input, n));
	memset(markov, 0, sizeof(double) * (size_t) b->n_items);
	memset(knn, 0, sizeof(double) * (size_t) b->n_items);
	(void) bl_markov_walk(b, input, n, markov, knn);
	return ISRF_OK;
}

static void
bl_clear(IsrfBaselines *b, int32_t n_touched, const int32_t *input, int32_t n)
{
	int32_t		i;

	for (i = 0; i < n_touched; i++)
		b->score[b->touched[i]] = 0.0;
	for (i = 0; i < n; i++)
		b->in_input[input[i]] = false;
}

IsrfStatus
isrf_baselines_recommend(IsrfEnv *env, IsrfBaselines *b, IsrfBaselineMethod m,
						 const int32_t *input, int32_t n_input, int32_t k,
						 int32_t *out_items, double *out_score)
{
	int32_t		have = 0;
	int32_t		n_touched = 0;
	int32_t		i;

	ISRF_TRY(bl_check_input(env, b, input, n_input));
	if (k < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "k must not be negative, not %d", k);
	for (i = 0; i < n_input; i++)
		b->in_input[input[i]] = true;

	if (m == ISRF_BASELINE_MARKOV_KNN)
	{
		n_touched = bl_markov_walk(b, input, n_input, NULL, NULL);
		/* insertion into the best k: score descending, then lower index */
		for (i = 0; i < n_touched && k > 0; i++)
		{
			int32_t		x = b->touched[i];
			double		s = b->score[x];
			int32_t		pos;

			if (b->in_input[x])
				continue;
			if (have == k)
			{
				int32_t		last = out_items[k - 1];

				if (s < b->score[last] || (s == b->score[last] && x > last))
					continue;
			}
			pos = have < k ? have : k - 1;
			while (pos > 0 &&
				   (b->score[out_items[pos - 1]] < s ||
					(b->score[out_items[pos - 1]] == s && out_items[pos - 1] > x)))
			{
				out_items[pos] = out_items[pos - 1];
				pos--;
			}
			out_items[pos] = x;
			if (have < k)
				have++;
		}
		if (out_score)
			for (i = 0; i < have; i++)
				out_score[i] = b->score[out_items[i]];
	}

	/* popularity, or the fill after Markov + item-kNN */
	for (i = 0; i < b->n_items && have < k; i++)
	{
		int32_t		x = b->pop_order[i];

		if (b->in_input[x] || (m == ISRF_BASELINE_MARKOV_KNN && b->score[x] != 0.0))
			continue;
		out_items[have] = x;
		if (out_score)
			out_score[have] = m == ISRF_BASELINE_POPULARITY ? (double) b->pop[x] : 0.0;
		have++;
	}
	for (i = have; i < k; i++)
	{
		out_items[i] = -1;
		if (out_score)
			out_score[i] = -INFINITY;
	}
	bl_clear(b, n_touched, input, n_input);
	return ISRF_OK;
}

IsrfStatus
isrf_baselines_score(IsrfEnv *env, IsrfBaselines *b, IsrfBaselineMethod m,
					 const int32_t *input, int32_t n_input, const int32_t *cand,
					 int32_t n, double *score, double *tie)
{
	int32_t		n_touched = 0;
	int32_t		i;

	ISRF_TRY(bl_check_input(env, b, input, n_input));
	ISRF_TRY(bl_check_input(env, b, cand, n));
	if (m == ISRF_BASELINE_MARKOV_KNN)
		n_touched = bl_markov_walk(b, input, n_input, NULL, NULL);
	for (i = 0; i < n; i++)
	{
		tie[i] = (double) b->pop[cand[i]];
		score[i] = m == ISRF_BASELINE_MARKOV_KNN ? b->score[cand[i]] : tie[i];
	}
	bl_clear(b, n_touched, input, 0);
	return ISRF_OK;
}

IsrfStatus
isrf_baselines_evaluate(IsrfEnv *env, IsrfBaselines *b, const IsrfDataset *ds,
						IsrfTarget target, const IsrfDirectTask *direct,
						bool ties_to_target, IsrfBaselineEval *out)
{
	IsrfMetrics seq[ISRF_N_BASELINES];
	IsrfMetrics dir[ISRF_N_BASELINES];
	int32_t		top[10];
	double	   *score = NULL,
			   *tie = NULL;
	int32_t		u,
				s,
				m;

	memset(out, 0, sizeof(*out));
	memset(seq, 0, sizeof(seq));
	memset(dir, 0, sizeof(dir));
	if (direct && direct->target != target)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "direct task was drawn for another target than the one evaluated");
	for (u = 0; u < ds->n_users; u++)
	{
		int32_t		n_input,
					item;

		if (!ds->evaluated[u])
			continue;
		if ((u & 255) == 0)
			ISRF_TRY(isrf_poll(env));
		item = isrf_eval_input(ds, u, target, &n_input);
		for (m = 0; m < ISRF_N_BASELINES; m++)
		{
			ISRF_TRY(isrf_baselines_recommend(env, b, (IsrfBaselineMethod) m,
											  ds->seq + ds->seq_ptr[u], n_input,
											  10, top, NULL));
			isrf_metrics_add(&seq[m], isrf_rank_in_list(top, 10, item));
		}
	}

	if (direct && direct->n_users > 0)
	{
		score = isrf_alloc(env, sizeof(double) * (size_t) direct->n_cand);
		tie = isrf_alloc(env, sizeof(double) * (size_t) direct->n_cand);
		if (!score || !tie)
		{
			isrf_free(env, score);
			isrf_free(env, tie);
			return ISRF_ERR_NOMEM;
		}
		for (s = 0; s < direct->n_users; s++)
		{
			int32_t		uu = direct->user[s];
			int32_t		n_input;
			const int32_t *cand = direct->cand + (size_t) s * direct->n_cand;
			IsrfStatus	st = ISRF_OK;

			if ((s & 255) == 0)
				st = isrf_poll(env);
			(void) isrf_eval_input(ds, uu, target, &n_input);
			for (m = 0; m < ISRF_N_BASELINES && st == ISRF_OK; m++)
			{
				st = isrf_baselines_score(env, b, (IsrfBaselineMethod) m,
										  ds->seq + ds->seq_ptr[uu], n_input,
										  cand, direct->n_cand, score, tie);
				if (st == ISRF_OK)
					isrf_metrics_add(&dir[m],
									 isrf_direct_rank(score, tie, direct->n_cand,
													  direct->target_pos[s],
													  ties_to_target));
			}
			if (st != ISRF_OK)
			{
				isrf_free(env, score);
				isrf_free(env, tie);
				return st;
			}
		}
		isrf_free(env, score);
		isrf_free(env, tie);
	}
	for (m = 0; m < ISRF_N_BASELINES; m++)
	{
		out->sequential[m] = isrf_metrics_mean(&seq[m]);
		out->direct[m] = isrf_metrics_mean(&dir[m]);
	}
	return ISRF_OK;
}
