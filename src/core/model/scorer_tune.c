/*
 * model/scorer_tune.c
 *	  The weights of the ranking score (scorer.h), chosen after training on
 *	  the validation targets from fixed grids that include 0: the prior's
 *	  weight for full ranking on the validation sequential task, and the
 *	  prior's, popularity's and profile cosine's weights for candidate lists
 *	  on the validation direct task.
 */
#include "model/genrec_internal.h"

#include "eval/metrics.h"

#include <math.h>
#include <string.h>

/* the grid beta is chosen from (0 keeps the dense head alone) */
static const float tune_prior_grid[] = {0.0f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f, 128.0f, 256.0f};
#define GR_N_PRIOR ((int) (sizeof(tune_prior_grid) / sizeof(tune_prior_grid[0])))
/* the grid of gamma, the popularity weight of candidate lists */
static const float tune_pop_grid[] = {0.0f, 0.5f, 1.0f, 2.0f, 4.0f};
#define GR_N_POP ((int) (sizeof(tune_pop_grid) / sizeof(tune_pop_grid[0])))
/* the grid of delta, the weight of the explicit-interest cosine */
static const float tune_content_grid[] = {0.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f};
#define GR_N_CONTENT ((int) (sizeof(tune_content_grid) / sizeof(tune_content_grid[0])))

/*
 * beta for candidate lists: the validation direct task (the validation
 * target and 99 untouched items, as metrics.h draws them for the test).
 */
static IsrfStatus
tune_direct(IsrfGenrecSession *s, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	IsrfDirectTask dt;
	const int32_t *hist[256];
	int32_t		lens[256];
	float	   *h = NULL,
			   *cs = NULL;
	double	   *sc = NULL;
	IsrfMetrics acc[GR_N_PRIOR][GR_N_POP][GR_N_CONTENT],
				chosen,
				alone;
	int32_t		n_neg,
				i,
				j,
				b,
				gi,
				c,
				ci,
				best = 0,
				bestg = 0,
				bestc = 0;
	float		ct[512];
	IsrfStatus	st;

	memset(&dt, 0, sizeof(dt));
	memset(acc, 0, sizeof(acc));
	n_neg = isrf_direct_negatives(&s->scorer.view);
	if (n_neg < 1 || s->scorer.view.n_evaluated == 0)
		return ISRF_OK;
	ISRF_TRY(isrf_direct_task_build(env, &s->scorer.view, ISRF_TARGET_VALIDATION, ISRF_DIRECT_SEED,
									n_neg, 0, &dt));
	if (dt.n_cand > (int32_t) (sizeof(ct) / sizeof(ct[0])))
	{
		isrf_direct_task_free(env, &dt);
		return isrf_fail(env, ISRF_ERR_INTERNAL, "too many direct candidates (%d)", dt.n_cand);
	}
	h = isrf_alloc(env, (size_t) 256 * s->C * 4);
	cs = isrf_alloc(env, (size_t) dt.n_cand * 4);
	sc = isrf_alloc(env, (size_t) dt.n_cand * 8);
	if (!h || !cs || !sc)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
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

			if ((st = isrf_genrec_dense_candidates(s, h + (size_t) j * s->C, dt.n_cand, cand, cs)) != ISRF_OK ||
				(st = isrf_scorer_prior_all(&s->scorer, hist[j], lens[j])) != ISRF_OK)
				goto done;
			isrf_scorer_content(&s->scorer, hist[j], lens[j], dt.n_cand, cand, ct);
			for (b = 0; b < GR_N_PRIOR; b++)
				for (gi = 0; gi < GR_N_POP; gi++)
					for (ci = 0; ci < GR_N_CONTENT; ci++)
					{
						for (c = 0; c < dt.n_cand; c++)
							sc[c] = cs[c] + tune_prior_grid[b] * (float) s->scorer.psc[cand[c]] +
								tune_pop_grid[gi] * log1pf((float) s->scorer.prior.pop[cand[c]]) +
								tune_content_grid[ci] * ct[c];
						isrf_metrics_add(&acc[b][gi][ci],
										 isrf_direct_rank(sc, NULL, dt.n_cand, dt.target_pos[i + j], false));
					}
		}
	}
	for (b = 0; b < GR_N_PRIOR; b++)
		for (gi = 0; gi < GR_N_POP; gi++)
			for (ci = 0; ci < GR_N_CONTENT; ci++)
				if (acc[b][gi][ci].ndcg10 > acc[best][bestg][bestc].ndcg10)
				{
					best = b;
					bestg = gi;
					bestc = ci;
				}
	out->weights.prior_direct = tune_prior_grid[best];
	out->weights.pop_direct = tune_pop_grid[bestg];
	out->weights.content_direct = tune_content_grid[bestc];
	s->scorer.w.prior_direct = out->weights.prior_direct;
	s->scorer.w.pop_direct = out->weights.pop_direct;
	s->scorer.w.content_direct = out->weights.content_direct;
	chosen = isrf_metrics_mean(&acc[best][bestg][bestc]);
	alone = isrf_metrics_mean(&acc[0][0][0]);
	if (dt.n_users > 0)
		isrf_log(env, "isrf: transition prior (direct task): beta %g gamma %g delta %g, validation HR@10 %.4f NDCG@10 %.4f "
				 "(dense head alone %.4f / %.4f)", (double) out->weights.prior_direct,
				 (double) out->weights.pop_direct, (double) out->weights.content_direct,
				 chosen.hr10, chosen.ndcg10, alone.hr10, alone.ndcg10);
	st = ISRF_OK;

done:
	isrf_direct_task_free(env, &dt);
	isrf_free(env, h);
	isrf_free(env, cs);
	isrf_free(env, sc);
	return st;
}

/*
 * Choose beta on the validation targets with the trained weights (already
 * in the session): the grid value with the best NDCG@10 (ties: smaller).
 */
IsrfStatus
isrf_gr_tune_scorer(IsrfGenrecSession *s, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	int32_t    *vu = NULL,
			   *vin = NULL,
			   *vt = NULL;
	const int32_t *hist[256];
	float	   *h = NULL,
			   *scores;
	IsrfMetrics acc[GR_N_PRIOR],
				chosen,
				alone;
	int32_t		n,
				i,
				j,
				b,
				best = 0;
	IsrfStatus	st = ISRF_OK;

	memset(acc, 0, sizeof(acc));
	vu = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vin = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vt = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	h = isrf_alloc(env, (size_t) 256 * s->C * 4);
	if (!vu || !vin || !vt || !h)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if ((st = isrf_scorer_fit(&s->scorer)) != ISRF_OK || (st = isrf_gr_table_forward(s)) != ISRF_OK)
		goto done;
	n = isrf_gr_val_users(d, &s->cfg, vu, vin, vt);
	for (i = 0; i < n; i += 256)
	{
		int32_t		nb = n - i < 256 ? n - i : 256;

		if ((st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
			hist[j] = d->seq + d->seq_ptr[vu[i + j]];
		if ((st = isrf_gr_encode(s, nb, vu + i, hist, vin + i, h)) != ISRF_OK ||
			(st = isrf_gr_dense_chunk(s, nb, h, &scores)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
		{
			float	   *sc = scores + (size_t) j * s->ni;
			int32_t		q;

			if ((st = isrf_scorer_prior_all(&s->scorer, hist[j], vin[i + j])) != ISRF_OK)
				goto done;
			for (q = 0; q < vin[i + j]; q++)
				sc[hist[j][q]] = NAN;
			for (b = 0; b < GR_N_PRIOR; b++)
				isrf_metrics_add(&acc[b], isrf_full_rank_blend(sc, s->scorer.psc, tune_prior_grid[b],
															   s->ni, vt[i + j], 10));
		}
	}
	if ((st = tune_direct(s, out)) != ISRF_OK)
		goto done;
	for (b = 1; b < GR_N_PRIOR; b++)
		if (acc[b].ndcg10 > acc[best].ndcg10)
			best = b;
	out->weights.prior = tune_prior_grid[best];
	s->scorer.w.prior = out->weights.prior;
	chosen = isrf_metrics_mean(&acc[best]);
	alone = isrf_metrics_mean(&acc[0]);
	if (n > 0)
	{
		isrf_log(env, "isrf: transition prior: beta %g, validation HR@10 %.4f NDCG@10 %.4f "
				 "(dense head alone %.4f / %.4f)", (double) out->weights.prior,
				 chosen.hr10, chosen.ndcg10, alone.hr10, alone.ndcg10);
		out->best_val_hr10 = chosen.hr10;
		out->best_val_ndcg10 = chosen.ndcg10;
	}

done:
	isrf_free(env, vu);
	isrf_free(env, vin);
	isrf_free(env, vt);
	isrf_free(env, h);
	return st;
}
