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
#include <stdio.h>
#include <string.h>

/* users encoded and searched at once */
#define TUNE_BATCH 64

/* the grid of the beam bonus's weight (0 first: ties keep the beam out) */
static const float tune_beam_grid[] = {0.0f, 0.1f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f};
#define TUNE_N_BEAM ((int) (sizeof(tune_beam_grid) / sizeof(tune_beam_grid[0])))

/*
 * adj_of[i] = the rerank network's output of every item i any beam
 * weight's window can hold -- the best ISRF_RERANK_DEPTH of base and the
 * beam's found items: the bonus is never negative and raises no other item,
 * so every window is among them -- computed once for all the weights.
 */
static IsrfStatus
tune_window_pool(IsrfServeSession *ss, IsrfScorer *sc, const float *h, int32_t user, const int32_t *hist,
				 int32_t len, const float *base, int32_t found, const int32_t *items, float *adj_of)
{
	int32_t		ids[ISRF_RERANK_DEPTH + ISRF_BEAM_WIDTH_DEFAULT];
	float		adj[ISRF_RERANK_DEPTH + ISRF_BEAM_WIDTH_DEFAULT];
	int32_t		i,
				j,
				c = 0;

	isrf_topk_excluding(base, ss->m->n_items, NULL, 0, ISRF_RERANK_DEPTH, ids, NULL);
	while (c < ISRF_RERANK_DEPTH && ids[c] >= 0)
		c++;
	for (i = 0; i < found && i < ISRF_BEAM_WIDTH_DEFAULT; i++)
	{
		bool		in = isnan(base[items[i]]);

		for (j = 0; j < c && !in; j++)
			in = ids[j] == items[i];
		if (!in)
			ids[c++] = items[i];
	}
	ISRF_TRY(isrf_serve_rerank_outputs(ss, sc, h, user, hist, len, c, ids, adj));
	for (i = 0; i < c; i++)
		adj_of[ids[i]] = adj[i];
	return ISRF_OK;
}

/*
 * The served list of 10 under one beam weight (score: base with its bonus)
 * where a rerank network reorders the window: isrf_serve_list's window and
 * order, with the network's outputs from tune_window_pool.
 */
static void
tune_window_list(const float *score, int32_t n_items, const float *adj_of, int32_t *list, int32_t *n_list)
{
	int32_t		win[ISRF_RERANK_DEPTH],
				nw = 0;
	float		wbase[ISRF_RERANK_DEPTH],
				wadj[ISRF_RERANK_DEPTH],
				list_sc[10];

	isrf_topk_excluding(score, n_items, NULL, 0, ISRF_RERANK_DEPTH, win, wbase);
	for (; nw < ISRF_RERANK_DEPTH && win[nw] >= 0; nw++)
		wadj[nw] = adj_of[win[nw]];
	isrf_serve_reorder(nw, win, wbase, wadj, 10, list, list_sc, n_list);
}

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
	bool		rerank = isrf_blend_net_active(&sc->w.rerank);
	float	   *adj_of = rerank ? isrf_alloc(env, (size_t) m->n_items * 4 + 4) : NULL;
	IsrfStatus	st = ISRF_OK;

	if (!h || !base || !score || !logp || !items || (rerank && !adj_of))
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
			if (rerank &&
				(st = tune_window_pool(ss, sc, h + (size_t) i * C, users[i], hist[i], lens[i], base, found[i],
									   items + (size_t) i * width, adj_of)) != ISRF_OK)
				goto done;
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
				if (rerank)
					tune_window_list(score, m->n_items, adj_of, list, &n_list);
				else if ((st = isrf_serve_list(env, ss, sc, h + (size_t) i * C, users[i], hist[i], lens[i],
											   score, 10, list, list_sc, &n_list)) != ISRF_OK)
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
	isrf_free(env, adj_of);
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
	if (acc[0].users > 0)
	{
		char		grid[512];
		size_t		off = 0;

		for (w = 0; w < TUNE_N_BEAM && off < sizeof(grid); w++)
		{
			IsrfMetrics mw = isrf_metrics_mean(&acc[w]);

			off += (size_t) snprintf(grid + off, sizeof(grid) - off, "%s%g: %.4f / %.4f", w ? ", " : "",
									 (double) tune_beam_grid[w], mw.hr10, mw.ndcg10);
		}
		isrf_log(env, "isrf: served validation HR@10 / NDCG@10 by beam weight: %s", grid);
	}
	return ISRF_OK;
}
