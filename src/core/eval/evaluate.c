/*
 * eval/evaluate.c
 *	  The isrf_evaluate table: the model through its serving session beside
 *	  the baselines, computed by the same code on the model's own split
 *	  (DESIGN.md section 7).
 */
#include "eval/evaluate.h"

#include "eval/baseline_lightgcn.h"
#include "eval/baselines.h"
#include "eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* requests served at once, and the list length HR/NDCG@10 need */
#define EVALUATE_BATCH 64
#define EVALUATE_K 10

static void
evaluate_row(IsrfEvalRow *r, const char *task, const char *method, const IsrfMetrics *mt)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->task, sizeof(r->task), "%s", task);
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->hr5 = mt->hr5;
	r->ndcg5 = mt->ndcg5;
	r->hr10 = mt->hr10;
	r->ndcg10 = mt->ndcg10;
	r->users = (int32_t) mt->users;
}

/*
 * The isrf rows, by the code that serves: the sequential task asks
 * isrf_serve_recommend for each evaluated user's top 10 after the history
 * before the test item, the direct task isrf_serve_rank for the candidates;
 * both with the ranking score's terms fitted on the train split only.
 */
static IsrfStatus
evaluate_isrf(IsrfEnv *env, IsrfServeSession *ss, const IsrfEvalOptions *opt,
			  const IsrfDataset *ds, const IsrfDirectTask *dt, IsrfMetrics *seq, IsrfMetrics *dir)
{
	const IsrfModel *m = isrf_serve_session_model(ss);
	IsrfRecRequest req[EVALUATE_BATCH];
	IsrfRecResult res[EVALUATE_BATCH];
	int32_t		items[EVALUATE_BATCH][EVALUATE_K],
				target[EVALUATE_BATCH];
	float		scores[EVALUATE_BATCH][EVALUATE_K],
			   *fs = NULL;
	double	   *sc = NULL;
	int32_t		u,
				i,
				j,
				nb = 0;
	IsrfStatus	st = ISRF_OK;

	memset(seq, 0, sizeof(*seq));
	memset(dir, 0, sizeof(*dir));
	fs = isrf_alloc(env, (size_t) dt->n_cand * 4 + 4);
	sc = isrf_alloc(env, (size_t) dt->n_cand * 8 + 8);
	if (!fs || !sc)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (u = 0; u <= m->n_users; u++)
	{
		if (u < m->n_users && ds->evaluated[u])
		{
			memset(&req[nb], 0, sizeof(req[nb]));
			req[nb].user = u;
			req[nb].k = EVALUATE_K;
			req[nb].beam_width = opt ? opt->beam_width : 0;
			req[nb].hist = m->seq + m->seq_ptr[u];
			target[nb] = isrf_eval_input(ds, u, ISRF_TARGET_TEST, &req[nb].len);
			res[nb].items = items[nb];
			res[nb].scores = scores[nb];
			nb++;
		}
		if (nb == EVALUATE_BATCH || (u == m->n_users && nb > 0))
		{
			if ((st = isrf_serve_recommend_scope(env, ss, ISRF_SCOPE_TRAIN_SPLIT, nb, req, res)) != ISRF_OK)
				goto done;
			for (i = 0; i < nb; i++)
			{
				isrf_metrics_add(seq, isrf_rank_in_list(res[i].items, res[i].count, target[i]));
				if (opt && opt->list_hook)
					opt->list_hook(opt->hook_arg, req[i].user, res[i].count, res[i].items);
			}
			nb = 0;
		}
	}
	*seq = isrf_metrics_mean(seq);

	for (i = 0; i < dt->n_users; i++)
	{
		const int32_t *cand = dt->cand + (size_t) i * dt->n_cand;
		int32_t		len;

		if (i % 256 == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		u = dt->user[i];
		(void) isrf_eval_input(ds, u, dt->target, &len);
		if ((st = isrf_serve_rank_scope(env, ss, ISRF_SCOPE_TRAIN_SPLIT, u, m->seq + m->seq_ptr[u], len,
										dt->n_cand, cand, fs)) != ISRF_OK)
			goto done;
		for (j = 0; j < dt->n_cand; j++)
			sc[j] = fs[j];
		isrf_metrics_add(dir, isrf_direct_rank(sc, NULL, dt->n_cand, dt->target_pos[i], false));
	}
	*dir = isrf_metrics_mean(dir);

done:
	isrf_free(env, fs);
	isrf_free(env, sc);
	return st;
}

/* The lightgcn rows: BPR-trained LightGCN, dot-product scores. */
static IsrfStatus
evaluate_lightgcn(IsrfEnv *env, IsrfBackend *be, const IsrfDataset *ds,
				const IsrfDirectTask *dt, uint64_t seed, IsrfMetrics *seq, IsrfMetrics *dir)
{
	IsrfLgcnBprConfig lc;
	IsrfLgcnBpr lg;
	float	   *all = NULL;
	double	   *sc = NULL;
	int32_t		i,
				j;
	IsrfStatus	st;

	memset(dir, 0, sizeof(*dir));
	isrf_lgcn_bpr_config_default(&lc);
	lc.seed = seed;
	/* its own defaults: the budget it was designed with, early stopping on validation */
	ISRF_TRY(isrf_lgcn_bpr_train(env, be, ds, &lc, &lg));
	if ((st = isrf_lgcn_bpr_evaluate(env, be, &lg, ds, ISRF_TARGET_TEST, seq)) != ISRF_OK)
		goto done;
	all = isrf_alloc(env, (size_t) ds->n_items * 4 + 4);
	sc = isrf_alloc(env, (size_t) dt->n_cand * 8 + 8);
	if (!all || !sc)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < dt->n_users; i++)
	{
		const int32_t *cand = dt->cand + (size_t) i * dt->n_cand;

		if (!isrf_lgcn_bpr_score(&lg, dt->user[i], all))
			return isrf_fail(env, ISRF_ERR_INTERNAL, "LightGCN baseline lost user %d", dt->user[i]);
		for (j = 0; j < dt->n_cand; j++)
			sc[j] = all[cand[j]];
		isrf_metrics_add(dir, isrf_direct_rank(sc, NULL, dt->n_cand, dt->target_pos[i], false));
	}
	*dir = isrf_metrics_mean(dir);

done:
	isrf_free(env, all);
	isrf_free(env, sc);
	isrf_lgcn_bpr_free(env, &lg);
	return st;
}

IsrfStatus
isrf_evaluate_model(IsrfEnv *env, IsrfServeSession *ss, const IsrfEvalOptions *opt,
					IsrfEvalRow **rows, int32_t *n_rows)
{
	const IsrfModel *m = isrf_serve_session_model(ss);
	IsrfBackend *be = isrf_serve_session_backend(ss);
	IsrfDataset ds;
	IsrfDirectTask dt;
	IsrfBaselines bl;
	IsrfBaselineEval be_out;
	IsrfMetrics s_isrf,
				d_isrf,
				s_lg,
				d_lg;
	IsrfEvalRow *r = NULL;
	IsrfStatus	st;
	int32_t		k = 0,
				n_neg;
	bool		have_isrf = isrf_serve_session_genrec(ss) != NULL;

	*rows = NULL;
	*n_rows = 0;
	memset(&dt, 0, sizeof(dt));
	memset(&bl, 0, sizeof(bl));
	if ((st = isrf_dataset_view(env, m->n_users, m->n_items, m->seq_ptr, m->seq, m->n_train, &ds)) != ISRF_OK)
		goto done;
	if (ds.n_evaluated == 0)
	{
		st = isrf_fail(env, ISRF_ERR_INVALID, "no user has the three interactions evaluation needs");
		goto done;
	}
	/* 99 negatives, or as many as every user can have in a small catalogue */
	n_neg = isrf_direct_negatives(&ds);
	if (n_neg < 1)
	{
		st = isrf_fail(env, ISRF_ERR_INVALID, "the catalogue of %d items is too small for the direct task",
					   m->n_items);
		goto done;
	}
	if ((st = isrf_direct_task_build(env, &ds, ISRF_TARGET_TEST, ISRF_DIRECT_SEED,
									 n_neg, 0, &dt)) != ISRF_OK ||
		(st = isrf_baselines_fit(env, &ds, &bl)) != ISRF_OK ||
		(st = isrf_baselines_evaluate(env, &bl, &ds, ISRF_TARGET_TEST, &dt, false, &be_out)) != ISRF_OK)
		goto done;
	if (have_isrf && (st = evaluate_isrf(env, ss, opt, &ds, &dt, &s_isrf, &d_isrf)) != ISRF_OK)
		goto done;
	if ((!opt || !opt->skip_lightgcn) &&
		(st = evaluate_lightgcn(env, be, &ds, &dt, m->cfg.seed, &s_lg, &d_lg)) != ISRF_OK)
		goto done;
	r = isrf_calloc(env, 8, sizeof(*r));
	if (r == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if (have_isrf)
		evaluate_row(&r[k++], "sequential", "isrf", &s_isrf);
	evaluate_row(&r[k++], "sequential", "popularity", &be_out.sequential[ISRF_BASELINE_POPULARITY]);
	evaluate_row(&r[k++], "sequential", "markov_knn", &be_out.sequential[ISRF_BASELINE_MARKOV_KNN]);
	if (!opt || !opt->skip_lightgcn)
		evaluate_row(&r[k++], "sequential", "lightgcn", &s_lg);
	if (have_isrf)
		evaluate_row(&r[k++], "direct", "isrf", &d_isrf);
	evaluate_row(&r[k++], "direct", "popularity", &be_out.direct[ISRF_BASELINE_POPULARITY]);
	evaluate_row(&r[k++], "direct", "markov_knn", &be_out.direct[ISRF_BASELINE_MARKOV_KNN]);
	if (!opt || !opt->skip_lightgcn)
		evaluate_row(&r[k++], "direct", "lightgcn", &d_lg);
	*rows = r;
	*n_rows = k;

done:
	isrf_direct_task_free(env, &dt);
	isrf_baselines_free(env, &bl);
	isrf_dataset_view_free(env, &ds);
	return st;
}
