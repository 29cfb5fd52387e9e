/*
 * serve/tune.c
 *	  The generative head's place in the served list, chosen on validation
 *	  (see serve.h): the weight of its beam bonus.  Every evaluated user's
 *	  served score after the train input (the terms fitted on the train
 *	  split, as evaluation does), the beam's candidates at the default width,
 *	  and the rank of the validation target under each weight of a grid that
 *	  starts at 0 (no beam: the served list is the ranking score's top k and
 *	  serving skips the beam search).
 */
#include "serve/serve_internal.h"

#include "eval/metrics.h"

#include <math.h>
#include <string.h>

/* users encoded and searched at once */
#define TUNE_BATCH 64

/* the grid of the beam bonus's weight (0 first: ties keep the beam out) */
static const float tune_beam_grid[] = {0.0f, 0.1f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f};
#define TUNE_N_BEAM ((int) (sizeof(tune_beam_grid) / sizeof(tune_beam_grid[0])))

/* The body of isrf_serve_tune over an open session. */
static IsrfStatus
tune_beam(IsrfEnv *env, IsrfServeSession *ss, IsrfModel *m, IsrfMetrics *acc)
{
	IsrfScorer *sc = isrf_genrec_scorer(ss->s);
	IsrfGenrecSession *s = ss->s;
	const IsrfDataset *ds = &sc->view;
	int32_t		width = ISRF_BEAM_WIDTH_DEFAULT,
				C = isrf_genrec_width(s),
				users[TUNE_BATCH],
				lens[TUNE_BATCH],
				target[TUNE_BATCH],
				found[TUNE_BATCH],
				nb = 0,
				u,
				i,
				w,
				q,
				rank,
				rank0;
	const int32_t *hist[TUNE_BATCH];
	float	   *h = isrf_alloc(env, (size_t) TUNE_BATCH * C * 4),
			   *base = isrf_alloc(env, (size_t) m->n_items * 4 + 4),
			   *score = isrf_alloc(env, (size_t) m->n_items * 4 + 4),
			   *logp = isrf_alloc(env, (size_t) TUNE_BATCH * width * 4);
	int32_t    *items = isrf_alloc(env, (size_t) TUNE_BATCH * width * 4);
	IsrfStatus	st = ISRF_OK;

	if (!h || !base || !score || !logp || !items)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (u = 0; u <= m->n_users && st == ISRF_OK; u++)
	{
		if (u < m->n_users && ds->evaluated[u])
		{
			users[nb] = u;
			hist[nb] = m->seq + m->seq_ptr[u];
			target[nb] = isrf_eval_input(ds, u, ISRF_TARGET_VALIDATION, &lens[nb]);
			nb++;
		}
		if (nb < TUNE_BATCH && !(u == m->n_users && nb > 0))
			continue;
		if ((st = isrf_poll(env)) != ISRF_OK ||
			(st = isrf_genrec_encode(s, nb, users, hist, lens, h)) != ISRF_OK ||
			(st = isrf_serve_beam(env, ss, width, nb, h, hist, lens, items, logp, found)) != ISRF_OK)
			goto done;
		for (i = 0; i < nb; i++)
		{
			if ((st = isrf_genrec_dense_scores(s, 1, h + (size_t) i * C, base)) != ISRF_OK ||
				(st = isrf_scorer_add(sc, users[i], hist[i], lens[i], m->n_items, NULL, false, base)) != ISRF_OK)
				goto done;
			for (q = 0; q < lens[i]; q++)
				base[hist[i][q]] = NAN;
			for (w = 0, rank0 = -1; w < TUNE_N_BEAM; w++)
			{
				int32_t		list[10],
							n_list;
				float		list_sc[10];

				/* the beam found nothing: every weight serves the list of weight 0 */
				if (w > 0 && found[i] == 0)
				{
					isrf_metrics_add(&acc[w], rank0);
					continue;
				}
				memcpy(score, base, (size_t) m->n_items * 4);
				isrf_serve_beam_bonus(tune_beam_grid[w], found[i], items + (size_t) i * width,
									  logp + (size_t) i * width, score);
				/* the served list (the rerank network's order, where it has one) */
				if ((st = isrf_serve_list(env, ss, sc, h + (size_t) i * C, users[i], hist[i], lens[i], score,
										  10, list, list_sc, &n_list)) != ISRF_OK)
					goto done;
				rank = isrf_rank_in_list(list, n_list, target[i]);
				rank0 = w == 0 ? rank : rank0;
				isrf_metrics_add(&acc[w], rank);
			}
		}
		nb = 0;
	}

done:
	isrf_free(env, h);
	isrf_free(env, base);
	isrf_free(env, score);
	isrf_free(env, logp);
	isrf_free(env, items);
	return st;
}

IsrfStatus
isrf_serve_tune(IsrfEnv *env, IsrfBackend *be, IsrfModel *m)
{
	IsrfServeSession *ss;
	IsrfMetrics acc[TUNE_N_BEAM],
				best_m,
				none_m;
	int32_t		w,
				best = 0;
	IsrfStatus	st;

	m->genrec.weights.beam = 0.0f;
	if (m->genrec.params == NULL || m->genrec.levels < 1 || !m->genrec.cfg.use_generative)
		return ISRF_OK;
	if (m->genrec.cfg.beam_weight >= 0.0f)
	{
		/* the configuration fixes it */
		m->genrec.weights.beam = m->genrec.cfg.beam_weight;
		return ISRF_OK;
	}
	memset(acc, 0, sizeof(acc));
	ISRF_TRY(isrf_serve_session_open_eval(env, be, m, &ss));
	st = ss->have_trie ? tune_beam(env, ss, m, acc) : ISRF_OK;
	isrf_serve_session_close(ss);
	ISRF_TRY(st);
	for (w = 1; w < TUNE_N_BEAM; w++)
		if (acc[w].ndcg10 > acc[best].ndcg10)
			best = w;
	m->genrec.weights.beam = tune_beam_grid[best];
	best_m = isrf_metrics_mean(&acc[best]);
	none_m = isrf_metrics_mean(&acc[0]);
	if (acc[0].users > 0)
		isrf_log(env, "isrf: beam bonus weight %g: served validation HR@10 %.4f NDCG@10 %.4f "
				 "(without the beam %.4f / %.4f, %lld users)", (double) m->genrec.weights.beam,
				 best_m.hr10, best_m.ndcg10, none_m.hr10, none_m.ndcg10, (long long) acc[0].users);
	return ISRF_OK;
}
