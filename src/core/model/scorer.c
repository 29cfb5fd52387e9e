/*
 * model/scorer.c
 *	  The ranking score's terms beside the dense logit (see scorer.h).
 */
#include "model/scorer.h"

#include <math.h>
#include <string.h>

/* items per block of the text term over the catalogue */
#define SCORER_TEXT_BLOCK 256
/* users whose text terms one pass over the catalogue computes */
#define SCORER_TEXT_ROWS 16
/* candidates whose relations the blend network reads at a time */
#define SCORER_NET_BLOCK 256

void
isrf_scorer_init(IsrfScorer *sc, IsrfEnv *env, int32_t n_users, int32_t n_items, int32_t dm,
				 const int32_t *seq_ptr, const int32_t *seq, const int32_t *n_train,
				 const float *item_explicit, const float *item_feat, const IsrfCsr *item_text,
				 const IsrfCsr *group, const IsrfScoreWeights *w)
{
	memset(sc, 0, sizeof(*sc));
	sc->env = env;
	sc->n_users = n_users;
	sc->n_items = n_items;
	sc->dm = dm;
	sc->seq_ptr = seq_ptr;
	sc->seq = seq;
	sc->n_train = n_train;
	sc->item_explicit = item_explicit;
	sc->item_feat = item_feat;
	sc->item_text = item_text && item_text->n_rows == n_items && item_text->rowptr ? item_text : NULL;
	sc->group = group && group->n_rows == n_users && group->nnz > 0 ? group : NULL;
	if (w)
		sc->w = *w;
}

void
isrf_recent_popularity(int32_t n_users, int32_t n_items, const int32_t *seq_ptr, const int32_t *seq,
					   const int32_t *lens, double *sum)
{
	int32_t		u,
				j;

	memset(sum, 0, (size_t) n_items * sizeof(double));
	for (u = 0; u < n_users; u++)
	{
		const int32_t *h = seq + seq_ptr[u];
		int32_t		len = lens ? lens[u] : seq_ptr[u + 1] - seq_ptr[u];
		double		w = 1.0;

		for (j = len - 1; j >= 0 && w > 0.0; j--, w *= ISRF_RECENT_DECAY)
			if (h[j] >= 0 && h[j] < n_items)
				sum[h[j]] += w;
	}
}

/* recent(i) of every item (scorer.h) from the histories the prior is fitted on, the first lens[u] items of each. */
static IsrfStatus
scorer_recent(IsrfScorer *sc, const int32_t *lens)
{
	double	   *sum = isrf_alloc(sc->env, (size_t) sc->n_items * 8 + 8);
	int32_t		j;

	if (sum == NULL)
		return ISRF_ERR_NOMEM;
	isrf_recent_popularity(sc->n_users, sc->n_items, sc->seq_ptr, sc->seq, lens, sum);
	for (j = 0; j < sc->n_items; j++)
		sc->recent[j] = (float) log1p(sum[j]);
	isrf_free(sc->env, sum);
	return ISRF_OK;
}

/* y = x / |x| (zeros for a zero or missing x). */
static void
scorer_unit(const float *x, int32_t dm, float *y)
{
	double		ss = 0.0;
	int32_t		j;

	for (j = 0; j < dm; j++)
		ss += x ? (double) x[j] * x[j] : 0.0;
	for (j = 0; j < dm; j++)
		y[j] = ss > 0.0 ? (float) (x[j] / sqrt(ss)) : 0.0f;
}

IsrfStatus
isrf_scorer_fit(IsrfScorer *sc)
{
	IsrfEnv    *env = sc->env;
	int32_t		p,
				dm = sc->dm;

	if (sc->fitted)
		return ISRF_OK;
	if (sc->n_train == NULL)
	{
		int32_t		u;

		/* whole histories */
		isrf_free(env, sc->all_len);
		sc->all_len = isrf_alloc(env, (size_t) sc->n_users * 4 + 4);
		if (sc->all_len == NULL)
			return ISRF_ERR_NOMEM;
		for (u = 0; u < sc->n_users; u++)
			sc->all_len[u] = sc->seq_ptr[u + 1] - sc->seq_ptr[u];
	}
	isrf_dataset_view_free(env, &sc->view);
	ISRF_TRY(isrf_dataset_view(env, sc->n_users, sc->n_items, sc->seq_ptr, sc->seq,
							   sc->n_train ? sc->n_train : sc->all_len, &sc->view));
	/* a fit that failed half way may have left arrays behind */
	isrf_free(env, sc->psc);
	isrf_free(env, sc->pmk);
	isrf_free(env, sc->pkn);
	isrf_free(env, sc->iexp_n);
	isrf_free(env, sc->profile);
	isrf_free(env, sc->content);
	isrf_free(env, sc->recent);
	isrf_free(env, sc->gsc);
	isrf_free(env, sc->gtouch);
	isrf_free(env, sc->ifeat_n);
	isrf_free(env, sc->ifeat_t);
	isrf_free(env, sc->tprof);
	isrf_free(env, sc->text);
	sc->psc = isrf_alloc(env, (size_t) sc->n_items * 8 + 8);
	sc->pmk = isrf_alloc(env, (size_t) sc->n_items * 8 + 8);
	sc->pkn = isrf_alloc(env, (size_t) sc->n_items * 8 + 8);
	sc->iexp_n = isrf_alloc(env, (size_t) sc->n_items * dm * 4 + 4);
	sc->profile = isrf_alloc(env, (size_t) dm * 4 + 4);
	sc->content = isrf_alloc(env, (size_t) sc->n_items * 4 + 4);
	sc->recent = isrf_alloc(env, (size_t) sc->n_items * 4 + 4);
	sc->gsc = isrf_calloc(env, (size_t) sc->n_items + 1, 4);
	sc->gtouch = isrf_alloc(env, (size_t) sc->n_items * 4 + 4);
	sc->ifeat_n = isrf_alloc(env, (size_t) sc->n_items * dm * 4 + 4);
	sc->ifeat_t = isrf_alloc(env, (size_t) sc->n_items * dm * 4 + 4);
	sc->tprof = isrf_alloc(env, (size_t) dm * 4 + 4);
	sc->text = isrf_alloc(env, (size_t) sc->n_items * 4 + 4);
	sc->n_gtouch = 0;
	if (!sc->psc || !sc->pmk || !sc->pkn || !sc->iexp_n || !sc->profile || !sc->content ||
		!sc->recent || !sc->gsc || !sc->gtouch || !sc->ifeat_n || !sc->ifeat_t || !sc->tprof || !sc->text)
		return ISRF_ERR_NOMEM;
	/* unit LightGCN item vectors (content term) and semantic features (text term) */
	for (p = 0; p < sc->n_items; p++)
	{
		scorer_unit(sc->item_explicit ? sc->item_explicit + (size_t) p * dm : NULL, dm,
					sc->iexp_n + (size_t) p * dm);
		scorer_unit(sc->item_feat ? sc->item_feat + (size_t) p * dm : NULL, dm,
					sc->ifeat_n + (size_t) p * dm);
	}
	for (p = 0; p < sc->n_items; p++)
	{
		int32_t		j;

		for (j = 0; j < dm; j++)
			sc->ifeat_t[(size_t) j * sc->n_items + p] = sc->ifeat_n[(size_t) p * dm + j];
	}
	ISRF_TRY(scorer_recent(sc, sc->n_train ? sc->n_train : sc->all_len));
	ISRF_TRY(isrf_baselines_fit(env, &sc->view, &sc->prior));
	sc->fitted = true;
	return ISRF_OK;
}

void
isrf_scorer_free(IsrfScorer *sc)
{
	IsrfEnv    *env = sc->env;

	if (env == NULL)
		return;
	if (sc->fitted)
		isrf_baselines_free(env, &sc->prior);
	isrf_dataset_view_free(env, &sc->view);
	isrf_free(env, sc->all_len);
	isrf_free(env, sc->psc);
	isrf_free(env, sc->pmk);
	isrf_free(env, sc->pkn);
	isrf_free(env, sc->iexp_n);
	isrf_free(env, sc->profile);
	isrf_free(env, sc->content);
	isrf_free(env, sc->recent);
	isrf_free(env, sc->gsc);
	isrf_free(env, sc->gtouch);
	isrf_free(env, sc->ifeat_n);
	isrf_free(env, sc->ifeat_t);
	isrf_free(env, sc->tprof);
	isrf_free(env, sc->text);
	isrf_free(env, sc->rel_knn);
	isrf_free(env, sc->rel_touch);
	isrf_free(env, sc->lex_slot);
	isrf_free(env, sc->lex_cols);
	isrf_free(env, sc->lex_rows);
	memset(sc, 0, sizeof(*sc));
}

IsrfStatus
isrf_scorer_prior_all(IsrfScorer *sc, const int32_t *hist, int32_t len, float knn_weight)
{
	int32_t		i;

	ISRF_TRY(isrf_baselines_markov_parts(sc->env, &sc->prior, hist, len, sc->pmk, sc->pkn));
	for (i = 0; i < sc->n_items; i++)
		sc->psc[i] = sc->pmk[i] + (double) knn_weight * sc->pkn[i];
	return ISRF_OK;
}

/*
 * prof = the normalised weighted sum of the unit rows of the window most
 * recent items of hist[0..len), the j-th most recent weighted decay^j;
 * false when it is zero.
 */
static bool
scorer_profile(const IsrfScorer *sc, const float *rows, const int32_t *hist, int32_t len,
			   int32_t window, double decay, float *prof)
{
	int32_t		dm = sc->dm,
				i,
				j;
	double		w = 1.0,
				ss = 0.0;

	memset(prof, 0, (size_t) dm * 4);
	for (i = len - 1; i >= 0 && i >= len - window; i--)
	{
		const float *e;

		if (hist[i] < 0 || hist[i] >= sc->n_items)
			continue;
		e = rows + (size_t) hist[i] * dm;
		for (j = 0; j < dm; j++)
			prof[j] += (float) (w * e[j]);
		w *= decay;
	}
	for (j = 0; j < dm; j++)
		ss += (double) prof[j] * prof[j];
	for (j = 0; j < dm; j++)
		prof[j] = ss > 0.0 ? (float) (prof[j] / sqrt(ss)) : 0.0f;
	return ss > 0.0;
}

/* The dot product of prof with item it's row of rows (0 for an unknown item). */
static float
scorer_dot(const IsrfScorer *sc, const float *rows, const float *prof, int32_t it)
{
	const float *e;
	float		acc = 0.0f;
	int32_t		j;

	if (it < 0 || it >= sc->n_items)
		return 0.0f;
	e = rows + (size_t) it * sc->dm;
	for (j = 0; j < sc->dm; j++)
		acc += prof[j] * e[j];
	return acc;
}

/* The content term's profile: the mean of every history item's unit LightGCN vector. */
static void
scorer_content_profile(IsrfScorer *sc, const int32_t *hist, int32_t len)
{
	scorer_profile(sc, sc->iexp_n, hist, len, len, 1.0, sc->profile);
}

/* The text term's profile (scorer.h). */
static bool
scorer_text_profile(IsrfScorer *sc, const int32_t *hist, int32_t len)
{
	return scorer_profile(sc, sc->ifeat_n, hist, len, ISRF_TEXT_WINDOW, ISRF_TEXT_DECAY, sc->tprof);
}

/* out[i] = the dot product of prof with candidate i's row of table. */
static void
scorer_dots(const IsrfScorer *sc, const float *table, const float *prof, int32_t n,
			const int32_t *cand, float *out)
{
	int32_t		i;

	for (i = 0; i < n; i++)
		out[i] = scorer_dot(sc, table, prof, cand[i]);
}

void
isrf_scorer_content(IsrfScorer *sc, const int32_t *hist, int32_t len, int32_t n,
					const int32_t *cand, float *out)
{
	scorer_content_profile(sc, hist, len);
	scorer_dots(sc, sc->iexp_n, sc->profile, n, cand, out);
}

/*
 * out[r * n_items + i] (+)= scale * (prof[r] . unit feature of item i) for
 * the n <= SCORER_TEXT_ROWS profiles prof[r * dm ..]: the transposed feature
 * table read once for all of them, a block of SCORER_TEXT_BLOCK items at a
 * time in a local accumulator, so the block stays in L1 and the fixed-length
 * inner loop vectorises.  Each item sums its dimensions in order, as a plain
 * loop would, whatever n is.  add false stores the sums (scale 1).
 */
static void
scorer_text_rows(const IsrfScorer *sc, int32_t n, const float *prof, float scale, bool add,
				 float *out)
{
	int32_t		i,
				i0,
				j,
				r;

	for (i0 = 0; i0 < sc->n_items; i0 += SCORER_TEXT_BLOCK)
	{
		float		acc[SCORER_TEXT_ROWS][SCORER_TEXT_BLOCK];
		int32_t		nb = sc->n_items - i0 < SCORER_TEXT_BLOCK ? sc->n_items - i0 : SCORER_TEXT_BLOCK;

		memset(acc, 0, sizeof(float) * SCORER_TEXT_BLOCK * (size_t) n);
		for (j = 0; j < sc->dm; j++)
		{
			const float *restrict col = sc->ifeat_t + (size_t) j * sc->n_items + i0;

			for (r = 0; r < n; r++)
			{
				float		w = prof[(size_t) r * sc->dm + j];
				float	   *restrict a = acc[r];

				if (w == 0.0f)
					continue;
				if (nb == SCORER_TEXT_BLOCK)
					for (i = 0; i < SCORER_TEXT_BLOCK; i++)
						a[i] += w * col[i];
				else
					for (i = 0; i < nb; i++)
						a[i] += w * col[i];
			}
		}
		for (r = 0; r < n; r++)
		{
			float	   *o = out + (size_t) r * sc->n_items + i0;

			if (add)
				for (i = 0; i < nb; i++)
					o[i] += scale * acc[r][i];
			else
				memcpy(o, acc[r], (size_t) nb * 4);
		}
	}
}

void
isrf_scorer_text_all(IsrfScorer *sc, const int32_t *hist, int32_t len)
{
	if (!scorer_text_profile(sc, hist, len))
	{
		memset(sc->text, 0, (size_t) sc->n_items * 4);
		return;
	}
	scorer_text_rows(sc, 1, sc->tprof, 1.0f, false, sc->text);
}

void
isrf_scorer_text(IsrfScorer *sc, const int32_t *hist, int32_t len, int32_t n,
				 const int32_t *cand, float *out)
{
	scorer_text_profile(sc, hist, len);
	scorer_dots(sc, sc->ifeat_n, sc->tprof, n, cand, out);
}

void
isrf_scorer_group(IsrfScorer *sc, int32_t user)
{
	const IsrfCsr *g = sc->group;
	const int32_t *len = sc->n_train ? sc->n_train : sc->all_len;
	double		total = 0.0;
	int32_t		p,
				q;

	isrf_scorer_group_clear(sc);
	if (g == NULL || user < 0 || user >= sc->n_users || !sc->fitted)
		return;
	for (p = g->rowptr[user]; p < g->rowptr[user + 1]; p++)
		if (g->val[p] > 0.0f)
			total += g->val[p];
	if (!(total > 0.0))
		return;
	for (p = g->rowptr[user]; p < g->rowptr[user + 1]; p++)
	{
		int32_t		v = g->col[p];
		const int32_t *h = sc->seq + sc->seq_ptr[v];
		float		w = g->val[p];
		double		decay = 1.0;

		if (!(w > 0.0f) || v < 0 || v >= sc->n_users)
			continue;
		/* v's most recent known items first */
		for (q = len[v] - 1; q >= 0 && q >= len[v] - ISRF_GROUP_WINDOW; q--)
		{
			int32_t		it = h[q];

			if (sc->gsc[it] == 0.0f)
				sc->gtouch[sc->n_gtouch++] = it;
			sc->gsc[it] += (float) (w * decay / total);
			decay *= ISRF_GROUP_DECAY;
		}
	}
}

void
isrf_scorer_group_clear(IsrfScorer *sc)
{
	int32_t		i;

	for (i = 0; i < sc->n_gtouch; i++)
		sc->gsc[sc->gtouch[i]] = 0.0f;
	sc->n_gtouch = 0;
}

/* True when the weights of the task add nothing to the dense scores. */
static bool
scorer_nothing_to_add(const IsrfScorer *sc, bool direct)
{
	if (direct)
		return sc->w.prior_direct == 0.0f && sc->w.pop_direct == 0.0f &&
			sc->w.recent_direct == 0.0f && sc->w.content_direct == 0.0f && sc->w.group_direct == 0.0f &&
			sc->w.text_direct == 0.0f && !isrf_blend_net_active(&sc->w.net);
	return sc->w.prior == 0.0f && sc->w.group == 0.0f && sc->w.text == 0.0f;
}

/*
 * Prepare the inputs of the networks (blend_net.h) after hist[0..len) of
 * user: the prior (with the candidate lists' kNN part), the profiles, the
 * group term, the relations.  The scorer is fitted.  It leaves the prior
 * and the group term filled (scorer_add_rest reads them; the caller clears
 * the group); scorer_net_end ends it.
 */
static IsrfStatus
scorer_net_begin(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len, bool *has_text)
{
	ISRF_TRY(isrf_scorer_prior_all(sc, hist, len, sc->w.prior_knn_direct));
	scorer_content_profile(sc, hist, len);
	*has_text = scorer_text_profile(sc, hist, len);
	isrf_scorer_group(sc, user);
	return isrf_scorer_relations_begin(sc, hist, len);
}

/*
 * x[i * ISRF_BLEND_N_FEATURES + f] = input f of ids[i], dense[i] its dense
 * logit, for nb <= SCORER_NET_BLOCK items after scorer_net_begin: the
 * direct task's terms, as model/scorer_tune.c computes them to fit the
 * blend network.  Rows of -1 or an unknown item are left alone.
 */
static void
scorer_net_block(IsrfScorer *sc, bool has_text, int32_t nb, const int32_t *ids, const float *dense,
				 float *x)
{
	float		kmax[SCORER_NET_BLOCK],
				lprof[SCORER_NET_BLOCK],
				llast[SCORER_NET_BLOCK],
				lmax[SCORER_NET_BLOCK];
	IsrfRelations rel = {kmax, lprof, llast, lmax};
	int32_t		i;

	isrf_scorer_relations_get(sc, nb, ids, &rel);
	for (i = 0; i < nb; i++)
	{
		int32_t		it = ids[i];
		float	   *xi = x + (size_t) i * ISRF_BLEND_N_FEATURES;

		if (it < 0 || it >= sc->n_items)
			continue;
		xi[ISRF_BLEND_DENSE] = dense[i];
		xi[ISRF_BLEND_MARKOV] = (float) sc->pmk[it];
		xi[ISRF_BLEND_KNN] = (float) sc->pkn[it];
		xi[ISRF_BLEND_POP] = log1pf((float) sc->prior.pop[it]);
		xi[ISRF_BLEND_RECENT] = sc->recent[it];
		xi[ISRF_BLEND_CONTENT] = scorer_dot(sc, sc->iexp_n, sc->profile, it);
		xi[ISRF_BLEND_GROUP] = sc->gsc[it];
		xi[ISRF_BLEND_TEXT] = has_text ? scorer_dot(sc, sc->ifeat_n, sc->tprof, it) : 0.0f;
		xi[ISRF_BLEND_KNN_MAX] = kmax[i];
		xi[ISRF_BLEND_LEX_PROFILE] = lprof[i];
		xi[ISRF_BLEND_LEX_LAST] = llast[i];
		xi[ISRF_BLEND_LEX_MAX] = lmax[i];
	}
}

/*
 * out[i] += net(x) of cand[i] (cand NULL: item i), or with replace out[i] =
 * net(x) (0 for -1), dense[i] its dense logit (out may be dense: each is
 * read before it is written), a block of candidates at a time (no buffer
 * sized by the list).  The scorer is fitted; without replace candidates of
 * -1 are left alone.  As scorer_net_begin, it leaves the prior and the
 * user's group term filled.
 */
static IsrfStatus
scorer_add_net(IsrfScorer *sc, const IsrfBlendNet *net, int32_t user, const int32_t *hist, int32_t len,
			   int32_t n, const int32_t *cand, const float *dense, bool replace, float *out)
{
	bool		has_text;
	int32_t		ni = sc->n_items,
				total = cand ? n : ni,
				i0,
				i;

	ISRF_TRY(scorer_net_begin(sc, user, hist, len, &has_text));
	for (i0 = 0; i0 < total; i0 += SCORER_NET_BLOCK)
	{
		int32_t		nb = total - i0 < SCORER_NET_BLOCK ? total - i0 : SCORER_NET_BLOCK,
					ids[SCORER_NET_BLOCK];
		float		x[SCORER_NET_BLOCK * ISRF_BLEND_N_FEATURES];

		for (i = 0; i < nb; i++)
			ids[i] = cand ? cand[i0 + i] : i0 + i;
		scorer_net_block(sc, has_text, nb, ids, dense + i0, x);
		for (i = 0; i < nb; i++)
		{
			float		base = replace ? 0.0f : out[i0 + i];

			if (ids[i] >= 0 && ids[i] < ni)
				out[i0 + i] = base + (float) isrf_blend_net_forward(net, x + (size_t) i * ISRF_BLEND_N_FEATURES);
			else
				out[i0 + i] = base;
		}
	}
	isrf_scorer_relations_end(sc);
	return ISRF_OK;
}

/*
 * Every term but the text's, added after it (isrf_scorer_add); the scorer is
 * fitted.  prepared: scorer_add_net has filled the prior and the group term
 * of this history and user.
 */
static IsrfStatus
scorer_add_rest(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len, int32_t n,
				const int32_t *cand, bool direct, bool prepared, float *scores)
{
	float		beta = direct ? sc->w.prior_direct : sc->w.prior,
				gamma = direct ? sc->w.pop_direct : 0.0f,
				rho = direct ? sc->w.recent_direct : 0.0f,
				delta = direct ? sc->w.content_direct : 0.0f,
				eta = direct ? sc->w.group_direct : sc->w.group;
	int32_t		ni = sc->n_items,
				i;

	if (eta != 0.0f)
	{
		if (!prepared)
			isrf_scorer_group(sc, user);
		for (i = 0; i < (cand ? n : ni); i++)
		{
			int32_t		it = cand ? cand[i] : i;

			if (it >= 0 && it < ni)
				scores[i] += eta * sc->gsc[it];
		}
		isrf_scorer_group_clear(sc);
	}
	if (delta != 0.0f)
	{
		/* no buffer sized by the catalogue: a candidate list may be longer */
		scorer_content_profile(sc, hist, len);
		for (i = 0; i < (cand ? n : ni); i++)
			scores[i] += delta * scorer_dot(sc, sc->iexp_n, sc->profile, cand ? cand[i] : i);
	}
	if (gamma != 0.0f || rho != 0.0f)
		for (i = 0; i < (cand ? n : ni); i++)
		{
			int32_t		it = cand ? cand[i] : i;

			if (it < 0 || it >= ni)
				continue;
			/* one addition a term: the sums of a weight left at 0 stay as they were */
			if (gamma != 0.0f)
				scores[i] += gamma * log1pf((float) sc->prior.pop[it]);
			if (rho != 0.0f)
				scores[i] += rho * sc->recent[it];
		}
	if (beta == 0.0f)
		return ISRF_OK;
	if (!prepared)
		ISRF_TRY(isrf_scorer_prior_all(sc, hist, len, direct ? sc->w.prior_knn_direct : sc->w.prior_knn));
	for (i = 0; i < (cand ? n : ni); i++)
	{
		int32_t		it = cand ? cand[i] : i;

		if (it >= 0 && it < ni)
			scores[i] += beta * (float) sc->psc[it];
	}
	return ISRF_OK;
}

IsrfStatus
isrf_scorer_add(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len, int32_t n,
				const int32_t *cand, bool direct, float *scores)
{
	float		theta = direct ? sc->w.text_direct : sc->w.text;
	bool		net = direct && isrf_blend_net_active(&sc->w.net);
	int32_t		i;
	IsrfStatus	st;

	if (scorer_nothing_to_add(sc, direct))
		return ISRF_OK;
	ISRF_TRY(isrf_scorer_fit(sc));
	/* first, while the scores are the dense logits the network reads */
	if (net && (st = scorer_add_net(sc, &sc->w.net, user, hist, len, n, cand, scores, false, scores)) != ISRF_OK)
	{
		isrf_scorer_group_clear(sc);
		return st;
	}
	if (theta != 0.0f && cand == NULL)
	{
		/* a zero profile adds zeros, as in isrf_scorer_add_rows */
		scorer_text_profile(sc, hist, len);
		scorer_text_rows(sc, 1, sc->tprof, theta, true, scores);
	}
	else if (theta != 0.0f && scorer_text_profile(sc, hist, len))
		for (i = 0; i < n; i++)
			scores[i] += theta * scorer_dot(sc, sc->ifeat_n, sc->tprof, cand[i]);
	st = scorer_add_rest(sc, user, hist, len, n, cand, direct, net, scores);
	isrf_scorer_group_clear(sc);
	return st;
}

IsrfStatus
isrf_scorer_net_inputs(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len, int32_t n,
					   const int32_t *cand, const float *dense, float *x)
{
	bool		has_text;
	int32_t		i0;
	IsrfStatus	st;

	if (n <= 0)
		return ISRF_OK;
	memset(x, 0, (size_t) n * ISRF_BLEND_N_FEATURES * sizeof(float));
	ISRF_TRY(isrf_scorer_fit(sc));
	if ((st = scorer_net_begin(sc, user, hist, len, &has_text)) == ISRF_OK)
	{
		for (i0 = 0; i0 < n; i0 += SCORER_NET_BLOCK)
			scorer_net_block(sc, has_text, n - i0 < SCORER_NET_BLOCK ? n - i0 : SCORER_NET_BLOCK, cand + i0,
							 dense + i0, x + (size_t) i0 * ISRF_BLEND_N_FEATURES);
		isrf_scorer_relations_end(sc);
	}
	isrf_scorer_group_clear(sc);
	return st;
}

IsrfStatus
isrf_scorer_rerank(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len, int32_t n,
				   const int32_t *cand, const float *dense, float *out)
{
	IsrfStatus	st;

	if (n <= 0)
		return ISRF_OK;
	if (!isrf_blend_net_active(&sc->w.rerank))
	{
		memset(out, 0, (size_t) n * sizeof(float));
		return ISRF_OK;
	}
	ISRF_TRY(isrf_scorer_fit(sc));
	st = scorer_add_net(sc, &sc->w.rerank, user, hist, len, n, cand, dense, true, out);
	isrf_scorer_group_clear(sc);
	return st;
}

IsrfStatus
isrf_scorer_add_rows(IsrfScorer *sc, int32_t n, const int32_t *users, const int32_t *const *hist,
					 const int32_t *lens, float *scores)
{
	IsrfEnv    *env = sc->env;
	float	   *prof = NULL;
	int32_t		r,
				r0;

	if (scorer_nothing_to_add(sc, false))
		return ISRF_OK;
	ISRF_TRY(isrf_scorer_fit(sc));
	if (sc->w.text != 0.0f)
	{
		prof = isrf_alloc(env, (size_t) SCORER_TEXT_ROWS * sc->dm * 4 + 4);
		if (prof == NULL)
			return ISRF_ERR_NOMEM;
		for (r0 = 0; r0 < n; r0 += SCORER_TEXT_ROWS)
		{
			int32_t		nr = n - r0 < SCORER_TEXT_ROWS ? n - r0 : SCORER_TEXT_ROWS;

			/* a zero profile adds zeros, as in isrf_scorer_add */
			for (r = 0; r < nr; r++)
				scorer_profile(sc, sc->ifeat_n, hist[r0 + r], lens[r0 + r], ISRF_TEXT_WINDOW,
							   ISRF_TEXT_DECAY, prof + (size_t) r * sc->dm);
			scorer_text_rows(sc, nr, prof, sc->w.text, true, scores + (size_t) r0 * sc->n_items);
		}
		isrf_free(env, prof);
	}
	for (r = 0; r < n; r++)
		ISRF_TRY(scorer_add_rest(sc, users[r], hist[r], lens[r], sc->n_items, NULL, false, false,
								 scores + (size_t) r * sc->n_items));
	return ISRF_OK;
}
