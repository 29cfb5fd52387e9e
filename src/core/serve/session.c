/*
 * serve/session.c
 *	  A serving session (see serve.h): prepared once per model version and
 *	  backend, then shared by every recommendation and ranking call.
 */
#include "serve/serve_internal.h"

#include <string.h>

/* Popularity order of the items by train counts (desc, then index). */
static IsrfStatus
session_popularity(IsrfEnv *env, const IsrfModel *m, int32_t **count_out, int32_t **order_out)
{
	int32_t    *cnt = isrf_calloc(env, (size_t) m->n_items + 1, 4);
	int32_t    *ord = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	int32_t    *tmp = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	int32_t		u,
				i,
				w;

	if (!cnt || !ord || !tmp)
	{
		isrf_free(env, cnt);
		isrf_free(env, ord);
		isrf_free(env, tmp);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < m->n_users; u++)
		for (i = 0; i < m->n_train[u]; i++)
			cnt[m->seq[m->seq_ptr[u] + i]]++;
	for (i = 0; i < m->n_items; i++)
		ord[i] = i;
	/* stable merge sort by count descending keeps ties in index order */
	for (w = 1; w < m->n_items; w *= 2)
	{
		int32_t		lo;

		for (lo = 0; lo < m->n_items; lo += 2 * w)
		{
			int32_t		mid = lo + w < m->n_items ? lo + w : m->n_items,
						hi = lo + 2 * w < m->n_items ? lo + 2 * w : m->n_items,
						a = lo,
						b = mid,
						k = lo;

			while (a < mid && b < hi)
				tmp[k++] = cnt[ord[b]] > cnt[ord[a]] ? ord[b++] : ord[a++];
			while (a < mid)
				tmp[k++] = ord[a++];
			while (b < hi)
				tmp[k++] = ord[b++];
		}
		memcpy(ord, tmp, (size_t) m->n_items * 4);
	}
	isrf_free(env, tmp);
	*count_out = cnt;
	*order_out = ord;
	return ISRF_OK;
}

/* A session over m with its served weights or (eval) its train-split weights. */
static IsrfStatus
session_open(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, bool eval, IsrfServeSession **out)
{
	IsrfServeSession *ss = isrf_calloc(env, 1, sizeof(IsrfServeSession));
	IsrfStatus	st;

	*out = NULL;
	if (ss == NULL)
		return ISRF_ERR_NOMEM;
	ss->env = env;
	ss->be = be;
	ss->m = m;
	st = session_popularity(env, m, &ss->cnt, &ss->ord);
	if (st == ISRF_OK && m->genrec.params != NULL)
	{
		isrf_model_genrec_data(m, &ss->gd);
		st = eval ? isrf_genrec_session_open_eval(env, be, &m->genrec, &ss->gd, &ss->s) :
			isrf_genrec_session_open(env, be, &m->genrec, &ss->gd, &ss->s);
		if (st == ISRF_OK)
		{
			isrf_scorer_init(&ss->scorer, env, m->n_users, m->n_items, m->dm, m->seq_ptr, m->seq,
							 NULL, m->item_explicit, m->item_feat, &m->group, &m->genrec.weights);
			st = isrf_scorer_fit(&ss->scorer);
		}
		if (st == ISRF_OK && m->genrec.levels > 0 && m->genrec.cfg.use_generative)
		{
			st = isrf_genrec_trie(env, &m->genrec, &ss->trie);
			ss->have_trie = st == ISRF_OK;
		}
	}
	if (st != ISRF_OK)
	{
		isrf_serve_session_close(ss);
		return st;
	}
	*out = ss;
	return ISRF_OK;
}

IsrfStatus
isrf_serve_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, IsrfServeSession **out)
{
	return session_open(env, be, m, false, out);
}

IsrfStatus
isrf_serve_session_open_eval(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
							 IsrfServeSession **out)
{
	return session_open(env, be, m, true, out);
}

void
isrf_serve_session_close(IsrfServeSession *ss)
{
	if (ss == NULL)
		return;
	if (ss->have_trie)
		isrf_trie_free(ss->env, &ss->trie);
	isrf_scorer_free(&ss->scorer);
	isrf_free(ss->env, ss->ufeat_n);
	isrf_genrec_session_close(ss->s);
	isrf_free(ss->env, ss->cnt);
	isrf_free(ss->env, ss->ord);
	isrf_free(ss->env, ss);
}

const IsrfModel *
isrf_serve_session_model(const IsrfServeSession *ss)
{
	return ss->m;
}

IsrfBackend *
isrf_serve_session_backend(const IsrfServeSession *ss)
{
	return ss->be;
}

IsrfGenrecSession *
isrf_serve_session_genrec(const IsrfServeSession *ss)
{
	return ss->s;
}
