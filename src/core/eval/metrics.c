/*
 * eval/metrics.c
 *	  HR/NDCG, full-ranking top-k and the direct task's candidates (see
 *	  metrics.h).  The candidate draw uses a Mersenne Twister seeded exactly
 *	  as Python's random.Random(int) so that it agrees with referee.py.
 */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double
isrf_hr_at(int32_t rank, int32_t k)
{
	return rank >= 0 && rank < k ? 1.0 : 0.0;
}

double
isrf_ndcg_at(int32_t rank, int32_t k)
{
	return rank >= 0 && rank < k ? 1.0 / log2((double) rank + 2.0) : 0.0;
}

int32_t
isrf_full_rank(const float *score, int32_t n, int32_t target, int32_t cap)
{
	float		t = score[target];
	int32_t		q,
				r = 0;

	if (isnan(t))
		return -1;
	for (q = 0; q < n && (cap <= 0 || r < cap); q++)
		if (score[q] > t || (score[q] == t && q < target))
			r++;
	return r;
}

int32_t
isrf_full_rank_blend(const float *a, const double *b, float wb, int32_t n, int32_t target,
					 int32_t cap)
{
	float		t = a[target] + wb * (float) b[target];
	int32_t		q,
				r = 0;

	if (isnan(t))
		return -1;
	for (q = 0; q < n && (cap <= 0 || r < cap); q++)
	{
		float		v = a[q] + wb * (float) b[q];

		if (v > t || (v == t && q < target))
			r++;
	}
	return r;
}

int32_t
isrf_full_rank_blend2(const float *a, const double *b, float wb, const float *g, float wg,
					  int32_t n, int32_t target, int32_t cap)
{
	float		t = a[target] + wb * (float) b[target] + wg * g[target];
	int32_t		q,
				r = 0;

	if (isnan(t))
		return -1;
	for (q = 0; q < n && (cap <= 0 || r < cap); q++)
	{
		float		v = a[q] + wb * (float) b[q] + wg * g[q];

		if (v > t || (v == t && q < target))
			r++;
	}
	return r;
}

int32_t
isrf_rank_in_list(const int32_t *list, int32_t n, int32_t target)
{
	int32_t		i;

	for (i = 0; i < n; i++)
		if (list[i] == target)
			return i;
	return -1;
}

void
isrf_metrics_add(IsrfMetrics *acc, int32_t rank)
{
	acc->users++;
	acc->hr5 += isrf_hr_at(rank, 5);
	acc->ndcg5 += isrf_ndcg_at(rank, 5);
	acc->hr10 += isrf_hr_at(rank, 10);
	acc->ndcg10 += isrf_ndcg_at(rank, 10);
}

IsrfMetrics
isrf_metrics_mean(const IsrfMetrics *acc)
{
	IsrfMetrics m = *acc;

	if (acc->users > 0)
	{
		m.hr5 /= (double) acc->users;
		m.ndcg5 /= (double) acc->users;
		m.hr10 /= (double) acc->users;
		m.ndcg10 /= (double) acc->users;
	}
	return m;
}

int32_t
isrf_eval_input(const IsrfDataset *ds, int32_t u, IsrfTarget target, int32_t *n_input)
{
	int32_t		len = isrf_dataset_len(ds, u);
	int32_t		t = target == ISRF_TARGET_TEST ? len - 1 : len - 2;

	*n_input = t;
	return ds->seq[ds->seq_ptr[u] + t];
}

void
isrf_topk_excluding(const float *score, int32_t n_items, const int32_t *exclude,
					int32_t n_exclude, int32_t k, int32_t *out_idx, float *out_score)
{
	int32_t		have = 0;
	int32_t		i,
				j;
	float		dummy;

	if (k <= 0)
		return;
	for (i = 0; i < n_items; i++)
	{
		float		s = score[i];
		int32_t		pos;

		if (isnan(s) || (have == k && !(s > score[out_idx[k - 1]])))
			continue;
		if (isrf_rank_in_list(exclude, n_exclude, i) >= 0)
			continue;
		/* items come in ascending order, so an equal score stays behind */
		pos = have < k ? have : k - 1;
		while (pos > 0 && score[out_idx[pos - 1]] < s)
		{
			out_idx[pos] = out_idx[pos - 1];
			pos--;
		}
		out_idx[pos] = i;
		if (have < k)
			have++;
	}
	for (j = 0; j < k; j++)
	{
		float	   *dst = out_score ? &out_score[j] : &dummy;

		if (j < have)
			*dst = score[out_idx[j]];
		else
		{
			out_idx[j] = -1;
			*dst = -INFINITY;
		}
	}
}

int32_t
isrf_direct_rank(const double *score, const double *tie_score, int32_t n,
				 int32_t target_pos, bool ties_to_target)
{
	double		t = score[target_pos];
	double		tt = tie_score ? tie_score[target_pos] : 0.0;
	int32_t		rank = 0;
	int32_t		i;

	if (isnan(t))
		return n - 1;
	for (i = 0; i < n; i++)
	{
		double		ti = tie_score ? tie_score[i] : 0.0;

		if (score[i] > t ||
			(score[i] == t && (ti > tt ||
							   (ti == tt && !ties_to_target && i < target_pos))))
			rank++;
	}
	return rank;
}

/* ---- Python's Mersenne Twister (random.Random), for referee parity ---- */

#define MT_N 624
#define MT_M 397

typedef struct MtState
{
	uint32_t	mt[MT_N];
	int			mti;
} MtState;

static void
mt_init_genrand(MtState *st, uint32_t s)
{
	int			i;

	st->mt[0] = s;
	for (i = 1; i < MT_N; i++)
		st->mt[i] = 1812433253U * (st->mt[i - 1] ^ (st->mt[i - 1] >> 30)) + (uint32_t) i;
	st->mti = MT_N;
}

/* random.Random(seed) for a non-negative integer seed below 2^64 */
static void
mt_seed(MtState *st, uint64_t seed)
{
	uint32_t	key[2] = {(uint32_t) seed, (uint32_t) (seed >> 32)};
	int			len = key[1] ? 2 : 1;
	int			i = 1,
				j = 0,
				k;

	mt_init_genrand(st, 19650218U);
	for (k = MT_N > len ? MT_N : len; k; k--)
	{
		st->mt[i] = (st->mt[i] ^ ((st->mt[i - 1] ^ (st->mt[i - 1] >> 30)) * 1664525U)) +
			key[j] + (uint32_t) j;
		i++;
		j++;
		if (i >= MT_N)
		{
			st->mt[0] = st->mt[MT_N - 1];
			i = 1;
		}
		if (j >= len)
			j = 0;
	}
	for (k = MT_N - 1; k; k--)
	{
		st->mt[i] = (st->mt[i] ^ ((st->mt[i - 1] ^ (st->mt[i - 1] >> 30)) * 1566083941U)) -
			(uint32_t) i;
		i++;
		if (i >= MT_N)
		{
			st->mt[0] = st->mt[MT_N - 1];
			i = 1;
		}
	}
	st->mt[0] = 0x80000000U;
}

static uint32_t
mt_next(MtState *st)
{
	static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
	uint32_t	y;
	int			kk;

	if (st->mti >= MT_N)
	{
		for (kk = 0; kk < MT_N - MT_M; kk++)
		{
			y = (st->mt[kk] & 0x80000000U) | (st->mt[kk + 1] & 0x7fffffffU);
			st->mt[kk] = st->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1U];
		}
		for (; kk < MT_N - 1; kk++)
		{
			y = (st->mt[kk] & 0x80000000U) | (st->mt[kk + 1] & 0x7fffffffU);
			st->mt[kk] = st->mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1U];
		}
		y = (st->mt[MT_N - 1] & 0x80000000U) | (st->mt[0] & 0x7fffffffU);
		st->mt[MT_N - 1] = st->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1U];
		st->mti = 0;
	}
	y = st->mt[st->mti++];
	y ^= (y >> 11);
	y ^= (y << 7) & 0x9d2c5680U;
	y ^= (y << 15) & 0xefc60000U;
	y ^= (y >> 18);
	return y;
}

/* random._randbelow(n) for 0 < n < 2^31: rejection on n.bit_length() bits */
static int32_t
mt_below(MtState *st, int32_t n)
{
	int			bits = 0;
	uint32_t	r;

	while (bits < 32 && ((uint32_t) n >> bits) != 0)
		bits++;
	do
		r = mt_next(st) >> (32 - bits);
	while (r >= (uint32_t) n);
	return (int32_t) r;
}

/* random.shuffle(x) */
static void
mt_shuffle(MtState *st, int32_t *x, int32_t n)
{
	int32_t		i;

	for (i = n - 1; i >= 1; i--)
	{
		int32_t		j = mt_below(st, i + 1);
		int32_t		tmp = x[i];

		x[i] = x[j];
		x[j] = tmp;
	}
}

static int
metrics_cmp_int32(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a;
	int32_t		y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

/* The body of isrf_direct_task_build; the caller frees out and mark. */
static IsrfStatus
metrics_direct_draw(IsrfEnv *env, const IsrfDataset *ds, uint64_t seed,
					int32_t n_negatives, int32_t max_users, IsrfDirectTask *out,
					int32_t **mark_out)
{
	MtState		st;
	int32_t    *mark;
	int32_t		n_users = 0;
	int32_t		u,
				s;

	if (n_negatives < 0 || max_users < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "direct task needs non-negative sizes, not %d negatives and %d users",
						 n_negatives, max_users);
	out->n_cand = n_negatives + 1;
	out->user = isrf_alloc(env, sizeof(int32_t) * (size_t) (ds->n_evaluated + 1));
	*mark_out = mark = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(int32_t));
	if (!out->user || !mark)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < ds->n_users; u++)
		if (ds->evaluated[u])
			out->user[n_users++] = u;

	mt_seed(&st, seed);
	mt_shuffle(&st, out->user, n_users);
	if (max_users > 0 && max_users < n_users)
		n_users = max_users;
	out->n_users = n_users;
	out->cand = isrf_alloc(env, sizeof(int32_t) * (size_t) n_users * (size_t) out->n_cand + 1);
	out->target_pos = isrf_alloc(env, sizeof(int32_t) * (size_t) (n_users + 1));
	if (!out->cand || !out->target_pos)
		return ISRF_ERR_NOMEM;

	for (s = 0; s < n_users; s++)
	{
		int32_t		uu = out->user[s];
		const int32_t *hist = ds->seq + ds->seq_ptr[uu];
		int32_t		len = isrf_dataset_len(ds, uu);
		int32_t    *row = out->cand + (size_t) s * out->n_cand;
		int32_t		seen_stamp = 2 * s + 1;
		int32_t		neg_stamp = 2 * s + 2;
		int32_t		n_input;
		int32_t		j,
					got = 0;

		if ((s & 255) == 0)
			ISRF_TRY(isrf_poll(env));
		if (ds->n_items - len < n_negatives)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "direct task: user %lld touched %d of %d items, fewer than %d are left as negatives",
							 (long long) ds->user_ids[uu], len, ds->n_items, n_negatives);
		for (j = 0; j < len; j++)
			mark[hist[j]] = seen_stamp;
		row[0] = isrf_eval_input(ds, uu, out->target, &n_input);
		while (got < n_negatives)
		{
			int32_t		x = mt_below(&st, ds->n_items);

			if (mark[x] == seen_stamp || mark[x] == neg_stamp)
				continue;
			mark[x] = neg_stamp;
			row[1 + got++] = x;
		}
		qsort(row + 1, (size_t) n_negatives, sizeof(int32_t), metrics_cmp_int32);
		mt_shuffle(&st, row, out->n_cand);
		out->target_pos[s] = isrf_rank_in_list(row, out->n_cand,
											   hist[len - (out->target == ISRF_TARGET_TEST ? 1 : 2)]);
	}
	return ISRF_OK;
}

int32_t
isrf_direct_negatives(const IsrfDataset *ds)
{
	int32_t		u,
				longest = 0;

	for (u = 0; u < ds->n_users; u++)
		if (isrf_dataset_len(ds, u) > longest)
			longest = isrf_dataset_len(ds, u);
	return ds->n_items - longest < ISRF_DIRECT_NEGATIVES ? ds->n_items - longest : ISRF_DIRECT_NEGATIVES;
}

IsrfStatus
isrf_direct_task_build(IsrfEnv *env, const IsrfDataset *ds, IsrfTarget target,
					   uint64_t seed, int32_t n_negatives, int32_t max_users,
					   IsrfDirectTask *out)
{
	int32_t    *mark = NULL;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	out->target = target;
	st = metrics_direct_draw(env, ds, seed, n_negatives, max_users, out, &mark);
	isrf_free(env, mark);
	if (st != ISRF_OK)
		isrf_direct_task_free(env, out);
	return st;
}

void
isrf_direct_task_free(IsrfEnv *env, IsrfDirectTask *t)
{
	isrf_free(env, t->user);
	isrf_free(env, t->cand);
	isrf_free(env, t->target_pos);
	memset(t, 0, sizeof(*t));
}
