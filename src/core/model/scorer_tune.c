/*
 * model/scorer_tune.c
 *	  The weights of the ranking score (scorer.h), chosen after training on
 *	  the validation targets from fixed grids that include 0: for full
 *	  ranking, the prior's and the group's weights together on the
 *	  validation sequential task; for candidate lists, the prior's,
 *	  popularity's and profile cosine's weights together, then the group's
 *	  and the text's, then recent popularity's with popularity's again, on
 *	  the validation direct task.  Ties keep the smaller weight (grids
 *	  run from 0 outwards, by magnitude), so a term no one can show helps
 *	  stays out; each later stage starts from what the earlier chose and
 *	  moves only on a gain.  Then the candidate lists' blend network is
 *	  fitted on the same lists beside the chosen sum (model/blend_net.h);
 *	  last, full ranking's rerank network on the validation users' best
 *	  ISRF_RERANK_DEPTH items under the chosen weights (scorer.h).
 */
#include "model/genrec_internal.h"

#include "eval/metrics.h"

#include <math.h>
#include <string.h>

/* the grid of the prior's weight (0 keeps the dense head alone) */
static const float tune_prior_grid[] = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 6.0f, 8.0f, 12.0f, 16.0f, 24.0f,
32.0f, 48.0f, 64.0f, 96.0f, 128.0f, 192.0f, 256.0f, 384.0f, 512.0f, 1024.0f};
#define GR_N_PRIOR ((int) (sizeof(tune_prior_grid) / sizeof(tune_prior_grid[0])))
/* the grid of the prior on candidate lists (the coarser, its grid is 4-dimensional) */
static const float tune_prior_direct_grid[] = {0.0f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f,
128.0f, 256.0f, 512.0f, 1024.0f};
#define GR_N_PRIOR_D ((int) (sizeof(tune_prior_direct_grid) / sizeof(tune_prior_direct_grid[0])))
/* the grid of the item-kNN part's weight in the prior (the baseline's is 0.5) */
static const float tune_knn_grid[] = {0.5f, 0.25f, 1.0f, 2.0f};
#define GR_N_KNN ((int) (sizeof(tune_knn_grid) / sizeof(tune_knn_grid[0])))
/* the grid of gamma, the popularity weight of candidate lists */
static const float tune_pop_grid[] = {0.0f, 0.5f, 1.0f, 2.0f, 4.0f};
#define GR_N_POP ((int) (sizeof(tune_pop_grid) / sizeof(tune_pop_grid[0])))
/*
 * the grids of recent popularity's weight and, beside it, of popularity's
 * again, on a grid with negative weights (a trend is recent popularity over
 * popularity); with recent popularity at 0 this re-chooses popularity alone.
 * tune_pop_grid must be part of it: the third stage starts there.
 */
static const float tune_recent_grid[] = {0.0f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f};
#define GR_N_RECENT ((int) (sizeof(tune_recent_grid) / sizeof(tune_recent_grid[0])))
static const float tune_pop_recent_grid[] = {0.0f, 0.5f, -0.5f, 1.0f, -1.0f, 2.0f, -2.0f, 4.0f, -4.0f};
#define GR_N_POP_R ((int) (sizeof(tune_pop_recent_grid) / sizeof(tune_pop_recent_grid[0])))
/* the grid of delta, the weight of the explicit-interest cosine */
static const float tune_content_grid[] = {0.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f};
#define GR_N_CONTENT ((int) (sizeof(tune_content_grid) / sizeof(tune_content_grid[0])))
/* the grid of the group term's weight */
static const float tune_group_grid[] = {0.0f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f};
#define GR_N_GROUP ((int) (sizeof(tune_group_grid) / sizeof(tune_group_grid[0])))
/* the grid of the text term's weight */
static const float tune_text_grid[] = {0.0f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f};
#define GR_N_TEXT ((int) (sizeof(tune_text_grid) / sizeof(tune_text_grid[0])))

/* the most epochs the blend network is fitted for */
#define TUNE_BLEND_EPOCHS 30
/* and the most validation lists (the first ones), which bounds its memory and time */
#define TUNE_BLEND_MAX_LISTS 50000

/* The terms of every user's candidates, kept between the stages of tune_direct. */
typedef struct TuneTerms
{
	float	   *dense,
			   *markov,			/* the prior's two parts */
			   *knn,
			   *pop,
			   *recent,
			   *content,
			   *group,
			   *text,			/* each n_users x n_cand */
			   *knn_max,		/* the relations (scorer.h): blend network */
			   *lex_profile,	/* inputs only */
			   *lex_last,
			   *lex_max;
} TuneTerms;

/* The candidate-list weights being tried (scorer.h's *_direct). */
typedef struct TuneWeights
{
	float		prior,
				knn,			/* the item-kNN part's in the prior */
				pop,
				recent,
				content,
				group,
				text;
} TuneWeights;

/* sc[c] = the blended score of candidate c under the weights w. */
static void
tune_blend(const TuneTerms *t, size_t off, int32_t n, const TuneWeights *w, double *sc)
{
	int32_t		c;

	for (c = 0; c < n; c++)
		sc[c] = t->dense[off + c] + w->prior * (t->markov[off + c] + w->knn * t->knn[off + c]) +
			w->pop * t->pop[off + c] + w->recent * t->recent[off + c] +
			w->content * t->content[off + c] + w->group * t->group[off + c] +
			w->text * t->text[off + c];
}

/*
 * Two of the weights (*wa and *wb, fields of w) over their grids ga[0..na)
 * and gb[0..nb), the others kept, on every user's candidates into
 * acc[a * nb + b]; then *ia, *ib (where the search starts: what the stages
 * before chose) become the pair with the best NDCG@10, the first on ties,
 * and *wa, *wb its weights.
 */
static IsrfStatus
tune_direct_pair(IsrfEnv *env, const TuneTerms *t, const IsrfDirectTask *dt, TuneWeights *w,
				 float *wa, const float *ga, int32_t na, float *wb, const float *gb, int32_t nb,
				 IsrfMetrics *acc, double *sc, int32_t *ia, int32_t *ib)
{
	int32_t		i,
				a,
				b;

	for (i = 0; i < dt->n_users; i++)
	{
		if (i % 256 == 0)
			ISRF_TRY(isrf_poll(env));
		for (a = 0; a < na; a++)
			for (b = 0; b < nb; b++)
			{
				*wa = ga[a];
				*wb = gb[b];
				tune_blend(t, (size_t) i * dt->n_cand, dt->n_cand, w, sc);
				isrf_metrics_add(&acc[a * nb + b], isrf_direct_rank(sc, NULL, dt->n_cand,
																	dt->target_pos[i], false));
			}
	}
	for (a = 0; a < na; a++)
		for (b = 0; b < nb; b++)
			if (acc[a * nb + b].ndcg10 > acc[*ia * nb + *ib].ndcg10)
			{
				*ia = a;
				*ib = b;
			}
	*wa = ga[*ia];
	*wb = gb[*ib];
	return ISRF_OK;
}

/*
 * The blend network over the terms of the validation lists, beside their
 * weighted sum under the chosen weights w, into out->weights.net (all zero
 * where it does not help validation lists it was not fitted on).
 */
static IsrfStatus
tune_blend_net(IsrfGenrecSession *s, const TuneTerms *t, const IsrfDirectTask *dt, const TuneWeights *w,
			   IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	/* a term switched off is no input either (constant 0: the network ignores it) */
	bool		use_group = s->cfg.use_group_score,
				use_text = s->cfg.use_text_score,
				use_rel = s->cfg.use_relations;
	int32_t		n_lists = dt->n_users < TUNE_BLEND_MAX_LISTS ? dt->n_users : TUNE_BLEND_MAX_LISTS;
	size_t		total = (size_t) n_lists * dt->n_cand,
				k;
	float	   *x = isrf_alloc(env, total * ISRF_BLEND_N_FEATURES * 4 + 4);
	double	   *base = isrf_alloc(env, total * 8 + 8);
	IsrfBlendData bd;
	IsrfBlendReport rep;
	double		t0 = isrf_now();
	int32_t		i;
	IsrfStatus	st;

	memset(&out->weights.net, 0, sizeof(out->weights.net));
	if (x == NULL || base == NULL)
	{
		isrf_free(env, x);
		isrf_free(env, base);
		return ISRF_ERR_NOMEM;
	}
	for (i = 0; i < n_lists; i++)
		tune_blend(t, (size_t) i * dt->n_cand, dt->n_cand, w, base + (size_t) i * dt->n_cand);
	for (k = 0; k < total; k++)
	{
		float	   *xk = x + k * ISRF_BLEND_N_FEATURES;

		xk[ISRF_BLEND_DENSE] = t->dense[k];
		xk[ISRF_BLEND_MARKOV] = t->markov[k];
		xk[ISRF_BLEND_KNN] = t->knn[k];
		xk[ISRF_BLEND_POP] = t->pop[k];
		xk[ISRF_BLEND_RECENT] = t->recent[k];
		xk[ISRF_BLEND_CONTENT] = t->content[k];
		xk[ISRF_BLEND_GROUP] = use_group ? t->group[k] : 0.0f;
		xk[ISRF_BLEND_TEXT] = use_text ? t->text[k] : 0.0f;
		xk[ISRF_BLEND_KNN_MAX] = use_rel ? t->knn_max[k] : 0.0f;
		/* the words are text too */
		xk[ISRF_BLEND_LEX_PROFILE] = use_rel && use_text ? t->lex_profile[k] : 0.0f;
		xk[ISRF_BLEND_LEX_LAST] = use_rel && use_text ? t->lex_last[k] : 0.0f;
		xk[ISRF_BLEND_LEX_MAX] = use_rel && use_text ? t->lex_max[k] : 0.0f;
	}
	bd.n_lists = n_lists;
	bd.n_cand = dt->n_cand;
	bd.x = x;
	bd.base = base;
	bd.target = dt->target_pos;
	st = isrf_blend_net_fit(env, &bd, TUNE_BLEND_EPOCHS, &out->weights.net, &rep);
	isrf_free(env, x);
	isrf_free(env, base);
	if (st == ISRF_OK && n_lists > 1)
		isrf_log(env, "isrf: blend network (direct task): %s (best epoch %d of %d); on the half of the validation lists it was not fitted "
				 "on, HR@10 %.4f NDCG@10 %.4f with it at its best epoch, %.4f / %.4f with the weighted sum alone "
				 "(gain %.4f, standard error %.4f); %.1f s",
				 rep.epochs > 0 ? "kept" : "left out", rep.best_epoch, TUNE_BLEND_EPOCHS, rep.held_net_hr10, rep.held_net_ndcg10,
				 rep.held_sum_hr10, rep.held_sum_ndcg10, rep.held_gain, rep.held_gain_se, isrf_now() - t0);
	return st;
}

/*
 * The candidate-list weights: the validation direct task (the validation
 * target and 99 untouched items, as metrics.h draws them for the test).
 */
static IsrfStatus
tune_direct(IsrfGenrecSession *s, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	IsrfScorer *scr = &s->scorer;
	const IsrfGenrecData *d = s->d;
	IsrfDirectTask dt;
	TuneTerms	t;
	TuneWeights w;
	const int32_t *hist[256];
	int32_t		lens[256];
	float	   *h = NULL;
	double	   *sc = NULL;
	IsrfMetrics acc[GR_N_PRIOR_D][GR_N_KNN][GR_N_POP][GR_N_CONTENT],
				accg[GR_N_GROUP * GR_N_TEXT],	/* [group][text] */
				accr[GR_N_RECENT * GR_N_POP_R], /* [recent][popularity] */
				chosen,
				norecent,
				nogroup,
				alone;
	int32_t		n_neg,
				i,
				j,
				b,
				kk,
				gi,
				c,
				ci,
				best = 0,
				bestk = 0,
				bestg = 0,
				bestc = 0,
				bestq = 0,
				bestt = 0,
				bestr = 0,
				bestp,
				n_group = s->cfg.use_group_score ? GR_N_GROUP : 1,
				n_text = s->cfg.use_text_score ? GR_N_TEXT : 1;
	size_t		total;
	IsrfStatus	st;

	memset(&dt, 0, sizeof(dt));
	memset(&t, 0, sizeof(t));
	memset(&w, 0, sizeof(w));
	memset(acc, 0, sizeof(acc));
	memset(accg, 0, sizeof(accg));
	memset(accr, 0, sizeof(accr));
	n_neg = isrf_direct_negatives(&scr->view);
	if (n_neg < 1 || scr->view.n_evaluated == 0)
		return ISRF_OK;
	ISRF_TRY(isrf_direct_task_build(env, &scr->view, ISRF_TARGET_VALIDATION, ISRF_DIRECT_SEED,
									n_neg, 0, &dt));
	total = (size_t) dt.n_users * dt.n_cand;
	h = isrf_alloc(env, (size_t) 256 * s->C * 4);
	sc = isrf_alloc(env, (size_t) dt.n_cand * 8 + 8);
	t.dense = isrf_alloc(env, total * 4 + 4);
	t.markov = isrf_alloc(env, total * 4 + 4);
	t.knn = isrf_alloc(env, total * 4 + 4);
	t.pop = isrf_alloc(env, total * 4 + 4);
	t.recent = isrf_alloc(env, total * 4 + 4);
	t.content = isrf_alloc(env, total * 4 + 4);
	t.group = isrf_alloc(env, total * 4 + 4);
	t.text = isrf_alloc(env, total * 4 + 4);
	t.knn_max = isrf_alloc(env, total * 4 + 4);
	t.lex_profile = isrf_alloc(env, total * 4 + 4);
	t.lex_last = isrf_alloc(env, total * 4 + 4);
	t.lex_max = isrf_alloc(env, total * 4 + 4);
	if (!h || !sc || !t.dense || !t.markov || !t.knn || !t.pop || !t.recent || !t.content || !t.group ||
		!t.text || !t.knn_max || !t.lex_profile || !t.lex_last || !t.lex_max)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	/* every user's terms, once */
	for (i = 0; i < dt.n_users; i += 256)
	{
		int32_t		nb = dt.n_users - i < 256 ? dt.n_users - i : 256;

		if ((st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
		{
			hist[j] = d->seq + d->seq_ptr[dt.user[i + j]];
			lens[j] = d->n_train[dt.user[i + j]];
		}
		if ((st = isrf_gr_encode(s, nb, dt.user + i, hist, lens, h)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
		{
			const int32_t *cand = dt.cand + (size_t) (i + j) * dt.n_cand;
			size_t		off = (size_t) (i + j) * dt.n_cand;
			IsrfRelations rel = {t.knn_max + off, t.lex_profile + off, t.lex_last + off, t.lex_max + off};

			if ((st = isrf_genrec_dense_candidates(s, h + (size_t) j * s->C, dt.n_cand, cand,
												   t.dense + off)) != ISRF_OK ||
				(st = isrf_scorer_prior_all(scr, hist[j], lens[j], 0.0f)) != ISRF_OK ||
				(st = isrf_scorer_relations(scr, hist[j], lens[j], dt.n_cand, cand, &rel)) != ISRF_OK)
				goto done;
			isrf_scorer_content(scr, hist[j], lens[j], dt.n_cand, cand, t.content + off);
			isrf_scorer_text(scr, hist[j], lens[j], dt.n_cand, cand, t.text + off);
			isrf_scorer_group(scr, dt.user[i + j]);
			for (c = 0; c < dt.n_cand; c++)
			{
				t.markov[off + c] = (float) scr->pmk[cand[c]];
				t.knn[off + c] = (float) scr->pkn[cand[c]];
				t.pop[off + c] = log1pf((float) scr->prior.pop[cand[c]]);
				t.recent[off + c] = scr->recent[cand[c]];
				t.group[off + c] = scr->gsc[cand[c]];
			}
			isrf_scorer_group_clear(scr);
		}
	}
	/* the prior, popularity and cosine together, without the group */
	for (i = 0; i < dt.n_users; i++)
	{
		size_t		off = (size_t) i * dt.n_cand;

		if (i % 256 == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (b = 0; b < GR_N_PRIOR_D; b++)
			for (kk = 0; kk < (b == 0 ? 1 : GR_N_KNN); kk++)
				for (gi = 0; gi < GR_N_POP; gi++)
					for (ci = 0; ci < GR_N_CONTENT; ci++)
					{
						w.prior = tune_prior_direct_grid[b];
						w.knn = tune_knn_grid[kk];
						w.pop = tune_pop_grid[gi];
						w.content = tune_content_grid[ci];
						tune_blend(&t, off, dt.n_cand, &w, sc);
						isrf_metrics_add(&acc[b][kk][gi][ci],
										 isrf_direct_rank(sc, NULL, dt.n_cand, dt.target_pos[i], false));
					}
	}
	for (b = 0; b < GR_N_PRIOR_D; b++)
		for (kk = 0; kk < (b == 0 ? 1 : GR_N_KNN); kk++)
			for (gi = 0; gi < GR_N_POP; gi++)
				for (ci = 0; ci < GR_N_CONTENT; ci++)
					if (acc[b][kk][gi][ci].ndcg10 > acc[best][bestk][bestg][bestc].ndcg10)
					{
						best = b;
						bestk = kk;
						bestg = gi;
						bestc = ci;
					}
	/* then the group's and the text's weights beside them */
	w.prior = tune_prior_direct_grid[best];
	w.knn = tune_knn_grid[bestk];
	w.pop = tune_pop_grid[bestg];
	w.content = tune_content_grid[bestc];
	if ((st = tune_direct_pair(env, &t, &dt, &w, &w.group, tune_group_grid, n_group, &w.text,
							   tune_text_grid, n_text, accg, sc, &bestq, &bestt)) != ISRF_OK)
		goto done;

	/*
	 * then recent popularity's weight with popularity's again, the others
	 * kept: it joins only on a gain over what the stages before chose
	 */
	for (bestp = 0; bestp < GR_N_POP_R && tune_pop_recent_grid[bestp] != w.pop; bestp++)
		;
	if (bestp == GR_N_POP_R)
	{
		st = isrf_fail(env, ISRF_ERR_INTERNAL, "popularity weight %g is not on the third stage's grid",
					   (double) w.pop);
		goto done;
	}
	if ((st = tune_direct_pair(env, &t, &dt, &w, &w.recent, tune_recent_grid, GR_N_RECENT, &w.pop,
							   tune_pop_recent_grid, GR_N_POP_R, accr, sc, &bestr,
							   &bestp)) != ISRF_OK)
		goto done;
	out->weights.prior_direct = tune_prior_direct_grid[best];
	out->weights.prior_knn_direct = tune_knn_grid[bestk];
	out->weights.pop_direct = tune_pop_recent_grid[bestp];
	out->weights.recent_direct = tune_recent_grid[bestr];
	out->weights.content_direct = tune_content_grid[bestc];
	out->weights.group_direct = tune_group_grid[bestq];
	out->weights.text_direct = tune_text_grid[bestt];
	scr->w.prior_direct = out->weights.prior_direct;
	scr->w.prior_knn_direct = out->weights.prior_knn_direct;
	scr->w.pop_direct = out->weights.pop_direct;
	scr->w.recent_direct = out->weights.recent_direct;
	scr->w.content_direct = out->weights.content_direct;
	scr->w.group_direct = out->weights.group_direct;
	scr->w.text_direct = out->weights.text_direct;
	memset(&out->weights.net, 0, sizeof(out->weights.net));
	if (s->cfg.use_blend_net && (st = tune_blend_net(s, &t, &dt, &w, out)) != ISRF_OK)
		goto done;
	scr->w.net = out->weights.net;
	chosen = isrf_metrics_mean(&accr[bestr * GR_N_POP_R + bestp]);
	norecent = isrf_metrics_mean(&accg[bestq * n_text + bestt]);
	nogroup = isrf_metrics_mean(&accg[0]);
	alone = isrf_metrics_mean(&acc[0][0][0][0]);
	if (dt.n_users > 0)
		isrf_log(env, "isrf: score weights (direct task): prior %g (kNN part %g) popularity %g recent popularity %g "
				 "cosine %g group %g text %g, validation HR@10 %.4f NDCG@10 %.4f (without recent popularity: "
				 "popularity %g, %.4f / %.4f; without the group, text and recent popularity %.4f / %.4f; "
				 "dense head alone %.4f / %.4f)",
				 (double) out->weights.prior_direct, (double) out->weights.prior_knn_direct,
				 (double) out->weights.pop_direct, (double) out->weights.recent_direct,
				 (double) out->weights.content_direct, (double) out->weights.group_direct,
				 (double) out->weights.text_direct, chosen.hr10, chosen.ndcg10,
				 (double) tune_pop_grid[bestg], norecent.hr10, norecent.ndcg10,
				 nogroup.hr10, nogroup.ndcg10, alone.hr10, alone.ndcg10);
	st = ISRF_OK;

done:
	isrf_direct_task_free(env, &dt);
	isrf_free(env, h);
	isrf_free(env, sc);
	isrf_free(env, t.dense);
	isrf_free(env, t.markov);
	isrf_free(env, t.knn);
	isrf_free(env, t.pop);
	isrf_free(env, t.recent);
	isrf_free(env, t.content);
	isrf_free(env, t.group);
	isrf_free(env, t.text);
	isrf_free(env, t.knn_max);
	isrf_free(env, t.lex_profile);
	isrf_free(env, t.lex_last);
	isrf_free(env, t.lex_max);
	return st;
}

/* The validation users of full ranking and what one pass over them needs. */
typedef struct TuneFull
{
	int32_t		n;				/* users */
	int32_t    *vu,				/* user, input length, target */
			   *vin,
			   *vt;
	float	   *h;				/* a chunk's hidden states */
	double	   *comb;			/* [GR_N_KNN x n_items] the prior per kNN part */
} TuneFull;

/*
 * Validation users f->vu[i0 .. i0 + nb) (nb <= 256) encoded after their
 * inputs: hist[j] their histories, *scores their dense logits (nb rows of
 * s->ni, isrf_gr_dense_chunk's).  Polls for cancellation.
 */
static IsrfStatus
tune_full_chunk(IsrfGenrecSession *s, TuneFull *f, int32_t i0, int32_t nb, const int32_t **hist,
				float **scores)
{
	int32_t		j;

	ISRF_TRY(isrf_poll(s->env));
	for (j = 0; j < nb; j++)
		hist[j] = s->d->seq + s->d->seq_ptr[f->vu[i0 + j]];
	ISRF_TRY(isrf_gr_encode(s, nb, f->vu + i0, hist, f->vin + i0, f->h));
	return isrf_gr_dense_chunk(s, nb, f->h, scores);
}

/*
 * One pass over the validation users' full rankings.  Stage 1 (acc2 NULL)
 * fills acc1[prior][kNN part][group]; stage 2 fills acc2[text][prior] with
 * the kNN part and the group's weight fixed at knn and wg.
 */
static IsrfStatus
tune_full_pass(IsrfGenrecSession *s, TuneFull *f, IsrfMetrics (*acc1)[GR_N_KNN][GR_N_GROUP],
			   IsrfMetrics (*acc2)[GR_N_PRIOR], int32_t knn, float wg)
{
	IsrfScorer *scr = &s->scorer;
	const int32_t *hist[256];
	float	   *scores;
	int32_t		i,
				j,
				b,
				kk,
				g,
				x,
				q,
				n_group = s->cfg.use_group_score ? GR_N_GROUP : 1;

	for (i = 0; i < f->n; i += 256)
	{
		int32_t		nb = f->n - i < 256 ? f->n - i : 256;

		ISRF_TRY(tune_full_chunk(s, f, i, nb, hist, &scores));
		for (j = 0; j < nb; j++)
		{
			float	   *sc = scores + (size_t) j * s->ni;
			int32_t		len = f->vin[i + j],
						target = f->vt[i + j];

			ISRF_TRY(isrf_scorer_prior_all(scr, hist[j], len, 0.0f));
			isrf_scorer_group(scr, f->vu[i + j]);
			for (q = 0; q < len; q++)
				sc[hist[j][q]] = NAN;
			if (acc2 == NULL)
			{
				for (kk = 0; kk < GR_N_KNN; kk++)
					for (q = 0; q < s->ni; q++)
						f->comb[(size_t) kk * s->ni + q] = scr->pmk[q] +
							(double) tune_knn_grid[kk] * scr->pkn[q];
				for (b = 0; b < GR_N_PRIOR; b++)
					for (kk = 0; kk < (b == 0 ? 1 : GR_N_KNN); kk++)
						for (g = 0; g < n_group; g++)
							isrf_metrics_add(&acc1[b][kk][g],
											 isrf_full_rank_blend2(sc, f->comb + (size_t) kk * s->ni,
																   tune_prior_grid[b], scr->gsc,
																   tune_group_grid[g], s->ni, target, 10));
			}
			else
			{
				/* the group joins the dense logit; the text is the third term */
				for (q = 0; q < s->ni; q++)
				{
					f->comb[q] = scr->pmk[q] + (double) tune_knn_grid[knn] * scr->pkn[q];
					sc[q] += wg * scr->gsc[q];
				}
				isrf_scorer_text_all(scr, hist[j], len);
				for (x = 0; x < GR_N_TEXT; x++)
					for (b = 0; b < GR_N_PRIOR; b++)
						isrf_metrics_add(&acc2[x][b],
										 isrf_full_rank_blend2(sc, f->comb, tune_prior_grid[b], scr->text,
															   tune_text_grid[x], s->ni, target, 10));
			}
			isrf_scorer_group_clear(scr);
		}
	}
	return ISRF_OK;
}

/*
 * The validation users' windows (the full ranking's best ISRF_RERANK_DEPTH
 * after the train input, under the chosen weights, best first, as
 * serve/recommend.c picks them -- without the beam's bonus, whose weight
 * serve/tune.c chooses afterwards on the lists served with the network)
 * that hold the validation target, with the rerank network's inputs of
 * their items: what tune_rerank fits on.
 */
typedef struct TuneWindows
{
	int32_t		n_lists;		/* windows kept */
	int32_t		cap;			/* windows x, base and target have room for */
	int32_t		max;			/* the most windows kept */
	float	   *x;				/* [cap x depth x ISRF_BLEND_N_FEATURES] */
	double	   *base;			/* [cap x depth] the ranking score */
	int32_t    *target;			/* [cap] the target's place in its window */
} TuneWindows;

/* win[0..depth) = the best items of full (-inf for the history), best first, ties to the lower item. */
static int32_t
tune_window(const float *full, int32_t ni, int32_t depth, int32_t *win)
{
	int32_t		n = 0,
				q,
				p;

	for (q = 0; q < ni; q++)
	{
		float		v = full[q];

		if (!(v > -INFINITY) || (n == depth && !(v > full[win[depth - 1]])))
			continue;
		p = n < depth ? n++ : depth - 1;
		for (; p > 0 && full[win[p - 1]] < v; p--)
			win[p] = win[p - 1];
		win[p] = q;
	}
	return n;
}

/* Room for twice the windows *tw has room for (at most tw->max): false when out of memory. */
static bool
tune_windows_grow(IsrfEnv *env, TuneWindows *tw)
{
	int32_t		cap = tw->cap == 0 ? 1024 : 2 * tw->cap;
	size_t		per = (size_t) ISRF_RERANK_DEPTH;
	float	   *x;
	double	   *base;
	int32_t    *target;

	cap = cap < tw->max ? cap : tw->max;
	x = isrf_alloc(env, (size_t) cap * per * ISRF_BLEND_N_FEATURES * 4 + 4);
	base = isrf_alloc(env, (size_t) cap * per * 8 + 8);
	target = isrf_alloc(env, (size_t) cap * 4 + 4);
	if (!x || !base || !target)
	{
		isrf_free(env, x);
		isrf_free(env, base);
		isrf_free(env, target);
		return false;
	}
	if (tw->n_lists > 0)
	{
		memcpy(x, tw->x, (size_t) tw->n_lists * per * ISRF_BLEND_N_FEATURES * 4);
		memcpy(base, tw->base, (size_t) tw->n_lists * per * 8);
		memcpy(target, tw->target, (size_t) tw->n_lists * 4);
	}
	isrf_free(env, tw->x);
	isrf_free(env, tw->base);
	isrf_free(env, tw->target);
	tw->x = x;
	tw->base = base;
	tw->target = target;
	tw->cap = cap;
	return true;
}

/* The windows of one pass over the validation users (f) into *tw. */
static IsrfStatus
tune_rerank_windows(IsrfGenrecSession *s, TuneFull *f, float *full, TuneWindows *tw)
{
	IsrfEnv    *env = s->env;
	IsrfScorer *scr = &s->scorer;
	const int32_t *hist[256];
	float	   *scores,
				wdense[ISRF_RERANK_DEPTH];
	int32_t		win[ISRF_RERANK_DEPTH],
				i,
				j,
				q,
				c;
	bool		use_group = s->cfg.use_group_score,
				use_text = s->cfg.use_text_score,
				use_rel = s->cfg.use_relations;

	for (i = 0; i < f->n && tw->n_lists < tw->max; i += 256)
	{
		int32_t		nb = f->n - i < 256 ? f->n - i : 256;

		ISRF_TRY(tune_full_chunk(s, f, i, nb, hist, &scores));
		for (j = 0; j < nb && tw->n_lists < tw->max; j++)
		{
			const float *dense = scores + (size_t) j * s->ni;
			int32_t		len = f->vin[i + j],
						n,
						tp = -1;
			float	   *xl;

			/* the ranking score as serving adds it, in its order (scorer.c: text, group, prior) */
			ISRF_TRY(isrf_scorer_prior_all(scr, hist[j], len, scr->w.prior_knn));
			isrf_scorer_group(scr, f->vu[i + j]);
			if (scr->w.text != 0.0f)
				isrf_scorer_text_all(scr, hist[j], len);
			for (q = 0; q < s->ni; q++)
			{
				full[q] = dense[q];
				if (scr->w.text != 0.0f)
					full[q] += scr->w.text * scr->text[q];
				full[q] += scr->w.group * scr->gsc[q];
				full[q] += scr->w.prior * (float) scr->psc[q];
			}
			isrf_scorer_group_clear(scr);
			for (q = 0; q < len; q++)
				full[hist[j][q]] = -INFINITY;
			n = tune_window(full, s->ni, ISRF_RERANK_DEPTH, win);
			for (c = 0; c < n; c++)
				if (win[c] == f->vt[i + j])
					tp = c;
			if (tp < 0 || n < ISRF_RERANK_DEPTH)
				continue;
			if (tw->n_lists == tw->cap && !tune_windows_grow(env, tw))
				return ISRF_ERR_NOMEM;
			/*
			 * its items' inputs, from the code serving reads them with (the
			 * dense logit as serving computes a candidate's); a term switched
			 * off is no input either (constant 0: the network ignores it)
			 */
			xl = tw->x + (size_t) tw->n_lists * ISRF_RERANK_DEPTH * ISRF_BLEND_N_FEATURES;
			ISRF_TRY(isrf_genrec_dense_candidates(s, f->h + (size_t) j * s->C, n, win, wdense));
			ISRF_TRY(isrf_scorer_net_inputs(scr, f->vu[i + j], hist[j], len, n, win, wdense, xl));
			for (c = 0; c < n; c++)
			{
				float	   *xk = xl + (size_t) c * ISRF_BLEND_N_FEATURES;

				if (!use_group)
					xk[ISRF_BLEND_GROUP] = 0.0f;
				if (!use_text)
					xk[ISRF_BLEND_TEXT] = 0.0f;
				if (!use_rel)
					xk[ISRF_BLEND_KNN_MAX] = 0.0f;
				/* the words are text too */
				if (!use_rel || !use_text)
					xk[ISRF_BLEND_LEX_PROFILE] = xk[ISRF_BLEND_LEX_LAST] = xk[ISRF_BLEND_LEX_MAX] = 0.0f;
				tw->base[(size_t) tw->n_lists * ISRF_RERANK_DEPTH + c] = full[win[c]];
			}
			tw->target[tw->n_lists++] = tp;
		}
	}
	return ISRF_OK;
}

/*
 * The rerank network (scorer.h), fitted on the validation users whose
 * target is among their window's items (the others' served lists it cannot
 * change), into out->weights.rerank: all zero where it does not help
 * windows it was not fitted on (isrf_blend_net_fit).  The scorer's weights
 * of full ranking are chosen.
 */
static IsrfStatus
tune_rerank(IsrfGenrecSession *s, TuneFull *f, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	TuneWindows tw;
	IsrfBlendData bd;
	IsrfBlendReport rep;
	float	   *full = isrf_alloc(env, (size_t) s->ni * 4 + 4);
	double		t0 = isrf_now();
	IsrfStatus	st;

	memset(&out->weights.rerank, 0, sizeof(out->weights.rerank));
	memset(&tw, 0, sizeof(tw));
	tw.max = TUNE_BLEND_MAX_LISTS;
	if (!full)
		st = ISRF_ERR_NOMEM;
	else if ((st = tune_rerank_windows(s, f, full, &tw)) == ISRF_OK && tw.n_lists > 1)
	{
		bd.n_lists = tw.n_lists;
		bd.n_cand = ISRF_RERANK_DEPTH;
		bd.x = tw.x;
		bd.base = tw.base;
		bd.target = tw.target;
		st = isrf_blend_net_fit(env, &bd, TUNE_BLEND_EPOCHS, &out->weights.rerank, &rep);
		if (st == ISRF_OK)
			isrf_log(env, "isrf: rerank network (full ranking): %s (best epoch %d of %d); the validation target is "
					 "among the best %d for %d of %d users (%.4f); on the half of those it was not fitted on, HR@10 "
					 "%.4f NDCG@10 %.4f with it at its best epoch, %.4f / %.4f without (gain %.4f, standard "
					 "error %.4f); %.1f s",
					 rep.epochs > 0 ? "kept" : "left out", rep.best_epoch, TUNE_BLEND_EPOCHS,
					 ISRF_RERANK_DEPTH, tw.n_lists, f->n, f->n > 0 ? (double) tw.n_lists / f->n : 0.0,
					 rep.held_net_hr10, rep.held_net_ndcg10, rep.held_sum_hr10, rep.held_sum_ndcg10,
					 rep.held_gain, rep.held_gain_se, isrf_now() - t0);
	}
	isrf_free(env, full);
	isrf_free(env, tw.x);
	isrf_free(env, tw.base);
	isrf_free(env, tw.target);
	return st;
}

/*
 * Choose the weights on the validation targets with the trained weights
 * (already in the session): full ranking's prior, kNN part and group
 * weights together, then the text's weight with the prior's again (a
 * second pass), then the candidate lists' (tune_direct).
 */
IsrfStatus
isrf_gr_tune_scorer(IsrfGenrecSession *s, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	IsrfScorer *scr = &s->scorer;
	const IsrfGenrecData *d = s->d;
	TuneFull	f;
	IsrfMetrics (*acc)[GR_N_KNN][GR_N_GROUP] = NULL,
				(*acc2)[GR_N_PRIOR] = NULL,
				chosen,
				alone,
				nogroup,
				notext;
	int32_t		b,
				kk,
				g,
				x,
				n_group = s->cfg.use_group_score ? GR_N_GROUP : 1,
				best = 0,
				bestk = 0,
				bestq = 0,
				bestx = 0,
				best0 = 0,
				best0k = 0;
	IsrfStatus	st = ISRF_OK;

	memset(&f, 0, sizeof(f));
	acc = isrf_calloc(env, GR_N_PRIOR, sizeof(*acc));
	acc2 = isrf_calloc(env, GR_N_TEXT, sizeof(*acc2));
	f.comb = isrf_alloc(env, (size_t) GR_N_KNN * s->ni * 8 + 8);
	f.vu = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	f.vin = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	f.vt = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	f.h = isrf_alloc(env, (size_t) 256 * s->C * 4);
	if (!acc || !acc2 || !f.comb || !f.vu || !f.vin || !f.vt || !f.h)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if ((st = isrf_scorer_fit(scr)) != ISRF_OK || (st = isrf_gr_table_forward(s)) != ISRF_OK)
		goto done;
	f.n = isrf_gr_val_users(d, &s->cfg, f.vu, f.vin, f.vt);
	if ((st = tune_full_pass(s, &f, acc, NULL, 0, 0.0f)) != ISRF_OK)
		goto done;
	for (b = 0; b < GR_N_PRIOR; b++)
		for (kk = 0; kk < (b == 0 ? 1 : GR_N_KNN); kk++)
		{
			if (acc[b][kk][0].ndcg10 > acc[best0][best0k][0].ndcg10)
			{
				best0 = b;
				best0k = kk;
			}
			for (g = 0; g < n_group; g++)
				if (acc[b][kk][g].ndcg10 > acc[best][bestk][bestq].ndcg10)
				{
					best = b;
					bestk = kk;
					bestq = g;
				}
		}
	chosen = notext = isrf_metrics_mean(&acc[best][bestk][bestq]);
	if (s->cfg.use_text_score && d->item_feat && f.n > 0)
	{
		int32_t		bestb = best;

		/* the text beside the others; text 0 first, so it joins only on a gain */
		if ((st = tune_full_pass(s, &f, NULL, acc2, bestk, tune_group_grid[bestq])) != ISRF_OK)
			goto done;
		for (x = 0; x < GR_N_TEXT; x++)
			for (b = 0; b < GR_N_PRIOR; b++)
				if (acc2[x][b].ndcg10 > acc2[bestx][bestb].ndcg10)
				{
					bestx = x;
					bestb = b;
				}
		best = bestb;
		chosen = isrf_metrics_mean(&acc2[bestx][best]);
	}
	if ((st = tune_direct(s, out)) != ISRF_OK)
		goto done;
	out->weights.prior = tune_prior_grid[best];
	out->weights.prior_knn = tune_knn_grid[bestk];
	out->weights.group = tune_group_grid[bestq];
	out->weights.text = tune_text_grid[bestx];
	scr->w.prior = out->weights.prior;
	scr->w.prior_knn = out->weights.prior_knn;
	scr->w.group = out->weights.group;
	scr->w.text = out->weights.text;
	memset(&out->weights.rerank, 0, sizeof(out->weights.rerank));
	if (s->cfg.use_rerank_net && f.n > 0 && (st = tune_rerank(s, &f, out)) != ISRF_OK)
		goto done;
	scr->w.rerank = out->weights.rerank;
	alone = isrf_metrics_mean(&acc[0][0][0]);
	nogroup = isrf_metrics_mean(&acc[best0][best0k][0]);
	if (f.n > 0)
	{
		isrf_log(env, "isrf: score weights (full ranking): prior %g (kNN part %g) group %g text %g, validation HR@10 %.4f NDCG@10 %.4f "
				 "(without the text %.4f / %.4f; without the group and text: prior %g (kNN part %g), %.4f / %.4f; dense head alone %.4f / %.4f)",
				 (double) out->weights.prior, (double) out->weights.prior_knn, (double) out->weights.group,
				 (double) out->weights.text, chosen.hr10, chosen.ndcg10, notext.hr10, notext.ndcg10,
				 (double) tune_prior_grid[best0], (double) tune_knn_grid[best0k],
				 nogroup.hr10, nogroup.ndcg10, alone.hr10, alone.ndcg10);
		out->best_val_hr10 = chosen.hr10;
		out->best_val_ndcg10 = chosen.ndcg10;
	}

done:
	isrf_free(env, acc);
	isrf_free(env, acc2);
	isrf_free(env, f.comb);
	isrf_free(env, f.vu);
	isrf_free(env, f.vin);
	isrf_free(env, f.vt);
	isrf_free(env, f.h);
	return st;
}
