/*
 * serve/session.c
 *	  A serving session (see serve.h): prepared once per model version and
 *	  backend, then shared by every recommendation and ranking call.
 */
#include "serve/serve_internal.h"

#include <string.h>

/*
 * The cold-start answer: every item's recent popularity, the sum over
 * histories of ISRF_RECENT_DECAY^(steps from the history's end) (the
 * scorer's recent(i) before its log), and the items in its order
 * (descending, ties by index).  Counted on every interaction the model
 * knows when serving (the latest matter most to a user with nothing of
 * their own: validation HR@10 of the top 10 for a user with no history,
 * by train-split counts / whole-history counts / this: Beauty 0.0116 /
 * 0.0163 / 0.0211, ml100k 0.0339 / 0.0339 / 0.0467, Goodreads 0.0078 /
 * 0.0087 / 0.0090), on the train split in an evaluation session.
 */
static IsrfStatus
session_popularity(IsrfEnv *env, const IsrfModel *m, bool eval, float **pop_out, int32_t **order_out)
{
	float	   *pop = isrf_calloc(env, (size_t) m->n_items + 1, sizeof(float));
	double	   *acc = isrf_calloc(env, (size_t) m->n_items + 1, sizeof(double));
	int32_t    *ord = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	int32_t    *tmp = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	int32_t		i,
				w;

	if (!pop || !acc || !ord || !tmp)
	{
		isrf_free(env, pop);
		isrf_free(env, acc);
		isrf_free(env, ord);
		isrf_free(env, tmp);
		return ISRF_ERR_NOMEM;
	}
	isrf_recent_popularity(m->n_users, m->n_items, m->seq_ptr, m->seq, eval ? m->n_train : NULL, acc);
	for (i = 0; i < m->n_items; i++)
	{
		pop[i] = (float) acc[i];
		ord[i] = i;
	}
	isrf_free(env, acc);
	/* stable merge sort by recent popularity descending keeps ties in index order */
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
				tmp[k++] = pop[ord[b]] > pop[ord[a]] ? ord[b++] : ord[a++];
			while (a < mid)
				tmp[k++] = ord[a++];
			while (b < hi)
				tmp[k++] = ord[b++];
		}
		memcpy(ord, tmp, (size_t) m->n_items * 4);
	}
	isrf_free(env, tmp);
	*pop_out = pop;
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
	st = session_popularity(env, m, eval, &ss->pop, &ss->ord);
	if (st == ISRF_OK && m->genrec.params != NULL)
	{
		isrf_model_genrec_data(m, &ss->gd);
		st = eval ? isrf_genrec_session_open_eval(env, be, &m->genrec, &ss->gd, &ss->s) :
			isrf_genrec_session_open(env, be, &m->genrec, &ss->gd, &ss->s);
		if (st == ISRF_OK)
		{
			isrf_scorer_init(&ss->scorer, env, m->n_users, m->n_items, m->dm, m->seq_ptr, m->seq,
							 NULL, m->item_explicit, m->item_feat, m->item_text.rowptr ? &m->item_text : NULL,
							 &m->group, &m->genrec.weights);
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
	isrf_free(ss->env, ss->pop);
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
