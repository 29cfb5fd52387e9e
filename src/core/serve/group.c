/*
 * serve/group.c
 *	  The group of a request and its interests, for the analyst functions
 *	  (isrf_group_neighbours, isrf_group_interests), from the history as it
 *	  is now: the model's users most similar to the request's semantic
 *	  feature, and the items they touched that the request's history has not.
 *
 * A request's feature is what training would give it today: a known user's
 * own feature where it came from their description, else the mean semantic
 * feature of the history (what training builds a user's feature from when
 * there is no description); so a user the model has never seen has a group
 * as soon as one of their items is known.
 */
#include "serve/serve_internal.h"

#include "features/semantic_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Unit-length copies of the users' features, made on first use. */
static IsrfStatus
group_prepare(IsrfServeSession *ss)
{
	const IsrfModel *m = ss->m;
	int32_t		u,
				j;

	if (ss->ufeat_n)
		return ISRF_OK;
	ss->ufeat_n = isrf_alloc(ss->env, (size_t) m->n_users * m->dm * 4 + 4);
	if (ss->ufeat_n == NULL)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < m->n_users; u++)
	{
		const float *x = m->user_feat + (size_t) u * m->dm;
		float	   *y = ss->ufeat_n + (size_t) u * m->dm;
		double		ss2 = 0.0;

		for (j = 0; j < m->dm; j++)
			ss2 += (double) x[j] * x[j];
		for (j = 0; j < m->dm; j++)
			y[j] = ss2 > 0.0 ? (float) (x[j] / sqrt(ss2)) : 0.0f;
	}
	return ISRF_OK;
}

/* Similarity order: higher first, then the lower user index. */
typedef struct GroupCand
{
	float		sim;
	int32_t		user;
} GroupCand;

static int
group_cand_cmp(const void *a, const void *b)
{
	const GroupCand *x = a,
			   *y = b;

	if (x->sim != y->sim)
		return x->sim > y->sim ? -1 : 1;
	return (x->user > y->user) - (x->user < y->user);
}

IsrfStatus
isrf_serve_group(IsrfEnv *env, IsrfServeSession *ss, int32_t user, const int32_t *hist,
				 int32_t len, int32_t k, int32_t *users, float *sims, int32_t *count)
{
	const IsrfModel *m = ss->m;
	float	   *q = NULL;
	GroupCand  *c = NULL;
	double		norm = 0.0;
	int32_t		n = 0,
				u,
				i,
				j;
	IsrfStatus	st = ISRF_OK;

	*count = 0;
	if (k < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "k must be at least 1 (got %d)", k);
	if (user < -1 || user >= m->n_users || len < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "user index %d is not a user of the model", user);
	ISRF_TRY(group_prepare(ss));
	q = isrf_calloc(env, (size_t) m->dm + 1, 4);
	c = isrf_alloc(env, sizeof(GroupCand) * ((size_t) m->n_users + 1));
	if (!q || !c)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	/* the request's feature */
	if (user >= 0 && (m->user_source[user] == ISRF_USER_FEATURE_DESCRIPTION || len == 0))
		memcpy(q, m->user_feat + (size_t) user * m->dm, (size_t) m->dm * 4);
	else
		for (i = 0; i < len; i++)
		{
			if (hist[i] < 0 || hist[i] >= m->n_items)
			{
				st = isrf_fail(env, ISRF_ERR_INVALID, "history item index %d is not an item of the model", hist[i]);
				goto done;
			}
			for (j = 0; j < m->dm; j++)
				q[j] += m->item_feat[(size_t) hist[i] * m->dm + j];
		}
	for (j = 0; j < m->dm; j++)
		norm += (double) q[j] * q[j];
	if (!(norm > 0.0))
		goto done;				/* no feature: no group */
	for (u = 0; u < m->n_users; u++)
	{
		const float *y = ss->ufeat_n + (size_t) u * m->dm;
		double		dot = 0.0;

		if (u == user)
			continue;
		if (u % 4096 == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (j = 0; j < m->dm; j++)
			dot += (double) q[j] * y[j];
		dot /= sqrt(norm);
		if (dot > 0.0 && dot >= m->cfg.group_threshold)
		{
			c[n].sim = (float) dot;
			c[n].user = u;
			n++;
		}
	}
	qsort(c, (size_t) n, sizeof(GroupCand), group_cand_cmp);
	for (i = 0; i < n && i < k; i++)
	{
		users[i] = c[i].user;
		sims[i] = c[i].sim;
	}
	*count = i;

done:
	isrf_free(env, q);
	isrf_free(env, c);
	return st;
}

/* Item order of group interests: score, then support, then the lower item. */
typedef struct GroupItem
{
	float		score;
	int32_t		support;
	int32_t		item;
} GroupItem;

static int
group_item_cmp(const void *a, const void *b)
{
	const GroupItem *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->support != y->support)
		return x->support > y->support ? -1 : 1;
	return (x->item > y->item) - (x->item < y->item);
}

IsrfStatus
isrf_serve_group_interests(IsrfEnv *env, IsrfServeSession *ss, int32_t n_group,
						   const int32_t *group, const float *sims, const int32_t *hist,
						   int32_t len, int32_t k, int32_t *items, int32_t *support,
						   float *scores, int32_t *count)
{
	const IsrfModel *m = ss->m;
	float	   *mass = isrf_calloc(env, (size_t) m->n_items + 1, 4);
	int32_t    *votes = isrf_calloc(env, (size_t) m->n_items + 1, 4);
	int32_t    *last = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	GroupItem  *gi = NULL;
	double		total = 0.0;
	int32_t		i,
				p,
				n = 0;
	IsrfStatus	st = ISRF_OK;

	*count = 0;
	if (!mass || !votes || !last)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	memset(last, 0xff, (size_t) m->n_items * 4);
	for (i = 0; i < n_group; i++)
	{
		int32_t		v = group[i];

		if (v < 0 || v >= m->n_users || !(sims[i] > 0.0f))
			continue;
		total += sims[i];
		for (p = m->seq_ptr[v]; p < m->seq_ptr[v + 1]; p++)
		{
			int32_t		it = m->seq[p];

			if (last[it] == i)
				continue;		/* once per neighbour */
			last[it] = i;
			mass[it] += sims[i];
			votes[it]++;
		}
	}
	for (i = 0; i < len; i++)
		if (hist[i] >= 0 && hist[i] < m->n_items)
			votes[hist[i]] = 0;	/* the request's own items */
	gi = isrf_alloc(env, sizeof(GroupItem) * ((size_t) m->n_items + 1));
	if (gi == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < m->n_items; i++)
		if (votes[i] > 0)
		{
			gi[n].score = total > 0.0 ? (float) (mass[i] / total) : 0.0f;
			gi[n].support = votes[i];
			gi[n].item = i;
			n++;
		}
	qsort(gi, (size_t) n, sizeof(GroupItem), group_item_cmp);
	for (i = 0; i < n && i < k; i++)
	{
		items[i] = gi[i].item;
		support[i] = gi[i].support;
		scores[i] = gi[i].score;
	}
	*count = i;

done:
	isrf_free(env, mass);
	isrf_free(env, votes);
	isrf_free(env, last);
	isrf_free(env, gi);
	return st;
}
