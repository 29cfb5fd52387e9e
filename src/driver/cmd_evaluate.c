/*
 * cmd_evaluate.c
 *	  isrf_driver evaluate MODEL_FILE [--device D] [--retune on|off]
 *	  [--beam-weight W] [--without prior|group|text|net|relations|rerank] [--baselines on|off]
 *	  [--lists FILE]: the isrf_evaluate
 *	  table of a saved model (the same code as the SQL function: the isrf rows
 *	  are the served lists), optionally after choosing the ranking score's
 *	  weights on validation again with this build's scorer (--without: with
 *	  the prior's terms, the group term, the text term, the blend network,
 *	  its relations inputs or the rerank network left out, as
 *	  use_prior=false, use_group_score=false, use_text_score=false,
 *	  use_blend_net=false, use_relations=false or use_rerank_net=false
 *	  would train them), and with the
 *	  served sequential-task lists written as user_id,rank,item_id for
 *	  ../shared/tools/referee.py score.  driver_evaluate is also what train
 *	  prints.
 *
 *	  isrf_driver recommend MODEL_FILE --lists FILE [--k 10] [--device D]
 *	  [--retune on|off] [--weights served|train]:
 *	  what isrf_recommend serves every user of a saved model (its whole
 *	  stored history read and excluded), as user_id,rank,item_id: with a
 *	  model trained on a copy of a data set whose last items were withheld
 *	  (../shared/tools/heldout.py), referee.py score measures what users
 *	  are served.  --weights train serves the train-split weights instead of
 *	  the refit ones (what the refit is worth, on one model).
 */
#include "commands.h"
#include "eval/evaluate.h"
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the served lists as CSV with external ids. */
typedef struct EvalLists
{
	FILE	   *f;
	const IsrfModel *m;
} EvalLists;

static void
evaluate_list(void *arg, int32_t user, int32_t n, const int32_t *items)
{
	EvalLists  *l = arg;
	int32_t		i;

	for (i = 0; i < n; i++)
		fprintf(l->f, "%lld,%d,%lld\n", (long long) l->m->user_ids[user], i + 1,
				(long long) l->m->item_ids[items[i]]);
}

int
driver_evaluate(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, bool baselines,
				const char *lists)
{
	IsrfServeSession *ss;
	IsrfEvalOptions opt;
	IsrfEvalRow *rows = NULL;
	EvalLists	el;
	int32_t		n_rows = 0,
				i;
	double		te = isrf_now();
	IsrfStatus	st;

	memset(&opt, 0, sizeof(opt));
	memset(&el, 0, sizeof(el));
	opt.skip_lightgcn = !baselines;
	if (lists)
	{
		el.f = fopen(lists, "w");
		el.m = m;
		if (el.f == NULL)
		{
			fprintf(stderr, "isrf_driver: cannot write \"%s\"\n", lists);
			return 1;
		}
		fprintf(el.f, "user_id,rank,item_id\n");
		opt.list_hook = evaluate_list;
		opt.hook_arg = &el;
	}
	/* the train-split weights: the test items are unseen */
	if ((st = isrf_serve_session_open_eval(env, be, m, &ss)) == ISRF_OK)
	{
		st = isrf_evaluate_model(env, ss, &opt, &rows, &n_rows);
		isrf_serve_session_close(ss);
	}
	if (el.f && fclose(el.f) != 0 && st == ISRF_OK)
	{
		fprintf(stderr, "isrf_driver: cannot write \"%s\"\n", lists);
		st = ISRF_ERR_IO;
	}
	if (st != ISRF_OK)
	{
		isrf_free(env, rows);
		return driver_report(env, "evaluate");
	}
	printf("\ntest (leak-free, served lists), evaluated in %.1f s\n", isrf_now() - te);
	printf("%-11s %-11s %8s %8s %8s %8s %7s\n", "task", "method", "HR@5", "NDCG@5", "HR@10", "NDCG@10", "users");
	for (i = 0; i < n_rows; i++)
		printf("%-11s %-11s %8.4f %8.4f %8.4f %8.4f %7d\n", rows[i].task, rows[i].method,
			   rows[i].hr5, rows[i].ndcg5, rows[i].hr10, rows[i].ndcg10, rows[i].users);
	fflush(stdout);
	isrf_free(env, rows);
	return 0;
}

/* Choose the score weights on validation again with this build's scorer, then the beam's. */
static int
evaluate_retune(IsrfEnv *env, IsrfBackend *be, IsrfModel *m)
{
	IsrfGenrecData gd;

	isrf_model_genrec_data(m, &gd);
	if (isrf_genrec_retune(env, be, &gd, &m->genrec) != ISRF_OK ||
		isrf_serve_tune(env, be, m) != ISRF_OK)
		return driver_report(env, "retune");
	return 0;
}

int
driver_cmd_evaluate(int argc, char **argv)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;
	IsrfModel	m;
	const char *file = NULL,
			   *device = "auto",
			   *lists = NULL;
	bool		retune = false,
				baselines = true,
				no_prior = false,
				no_group = false,
				no_text = false,
				no_net = false,
				no_rel = false,
				no_rerank = false;
	double		beam_weight = -1.0;
	int			i,
				rc = 1;

	driver_env_init(&env);
	memset(&m, 0, sizeof(m));
	for (i = 1; i < argc; i++)
	{
		const char *a = NULL,
				   *v = NULL;
		int			kind = driver_next_arg(argc, argv, &i, &file, &a, &v);

		if (kind < 0)
			return 2;
		if (kind == 0)
			continue;
		if (strcmp(a, "--device") == 0)
			device = v;
		else if (strcmp(a, "--lists") == 0)
			lists = v;
		else if (strcmp(a, "--retune") == 0 && (strcmp(v, "on") == 0 || strcmp(v, "off") == 0))
			retune = strcmp(v, "on") == 0;
		else if (strcmp(a, "--baselines") == 0 && (strcmp(v, "on") == 0 || strcmp(v, "off") == 0))
			baselines = strcmp(v, "on") == 0;
		else if (strcmp(a, "--beam-weight") == 0)
			beam_weight = atof(v);
		else if (strcmp(a, "--without") == 0 && strcmp(v, "prior") == 0)
			no_prior = true;
		else if (strcmp(a, "--without") == 0 && strcmp(v, "group") == 0)
			no_group = retune = true;
		else if (strcmp(a, "--without") == 0 && strcmp(v, "text") == 0)
			no_text = retune = true;
		else if (strcmp(a, "--without") == 0 && strcmp(v, "net") == 0)
			no_net = retune = true;
		else if (strcmp(a, "--without") == 0 && strcmp(v, "relations") == 0)
			no_rel = retune = true;
		else if (strcmp(a, "--without") == 0 && strcmp(v, "rerank") == 0)
			no_rerank = retune = true;
		else
		{
			fprintf(stderr, "isrf_driver: evaluate: bad option %s %s\n", a, v);
			return 2;
		}
	}
	if (file == NULL)
	{
		fprintf(stderr, "usage: isrf_driver evaluate MODEL_FILE [--device D] [--retune on|off] "
				"[--beam-weight W] [--without prior|group|text|net|relations|rerank] [--baselines on|off] [--lists FILE]\n");
		return 2;
	}
	if (driver_load_model(&env, file, &m) != 0)
		return 1;
	if (driver_open_backend(&env, device, &be) != ISRF_OK)
	{
		driver_report(&env, "backend");
		goto out;
	}
	if (no_group)
		m.genrec.cfg.use_group_score = false;
	if (no_text)
		m.genrec.cfg.use_text_score = false;
	if (no_net)
		m.genrec.cfg.use_blend_net = false;
	if (no_rel)
		m.genrec.cfg.use_relations = false;
	if (no_rerank)
		m.genrec.cfg.use_rerank_net = false;
	if (no_prior && m.genrec.params)
	{
		/* what use_prior=false trains: no terms beside the dense logit */
		memset(&m.genrec.weights, 0, sizeof(m.genrec.weights));
		m.genrec.cfg.use_prior = false;
		retune = false;
		if (isrf_serve_tune(&env, be, &m) != ISRF_OK)
		{
			driver_report(&env, "retune");
			goto out;
		}
	}
	if (retune && m.genrec.params && evaluate_retune(&env, be, &m) != 0)
		goto out;
	if (beam_weight >= 0.0)
		m.genrec.weights.beam = (float) beam_weight;
	printf("score weights: prior %g group %g text %g, direct: prior %g pop %g recent %g content %g group %g text %g, beam %g; "
		   "blend network %s, rerank network %s\n",
		   (double) m.genrec.weights.prior, (double) m.genrec.weights.group,
		   (double) m.genrec.weights.text, (double) m.genrec.weights.prior_direct,
		   (double) m.genrec.weights.pop_direct, (double) m.genrec.weights.recent_direct,
		   (double) m.genrec.weights.content_direct,
		   (double) m.genrec.weights.group_direct, (double) m.genrec.weights.text_direct,
		   (double) m.genrec.weights.beam, isrf_blend_net_active(&m.genrec.weights.net) ? "kept" : "none",
		   isrf_blend_net_active(&m.genrec.weights.rerank) ? "kept" : "none");
	rc = driver_evaluate(&env, be, &m, baselines, lists);

out:
	isrf_model_free(&env, &m);
	isrf_backend_close(be);
	return rc;
}

/* Serve every user of m, k items each, and write the lists. */
static int
evaluate_recommend_all(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, int32_t k,
					   const char *lists, bool train_weights)
{
	IsrfServeSession *ss;
	EvalLists	el;
	IsrfRecRequest req[64];
	IsrfRecResult res[64];
	int32_t    *items = isrf_alloc(env, sizeof(int32_t) * 64 * (size_t) k);
	float	   *scores = isrf_alloc(env, sizeof(float) * 64 * (size_t) k);
	int32_t		u,
				i,
				nb = 0;
	double		t0 = isrf_now();
	IsrfStatus	st;

	el.m = m;
	el.f = fopen(lists, "w");
	if (el.f == NULL || items == NULL || scores == NULL)
	{
		fprintf(stderr, "isrf_driver: cannot write \"%s\"\n", lists);
		if (el.f)
			fclose(el.f);
		return 1;
	}
	fprintf(el.f, "user_id,rank,item_id\n");
	if ((st = train_weights ? isrf_serve_session_open_eval(env, be, m, &ss) :
		 isrf_serve_session_open(env, be, m, &ss)) != ISRF_OK)
	{
		fclose(el.f);
		return driver_report(env, "recommend");
	}
	for (u = 0; u <= m->n_users && st == ISRF_OK; u++)
	{
		if (u < m->n_users)
		{
			memset(&req[nb], 0, sizeof(req[nb]));
			req[nb].user = u;
			req[nb].k = k;
			res[nb].items = items + (size_t) nb * k;
			res[nb].scores = scores + (size_t) nb * k;
			nb++;
		}
		if (nb == 64 || (u == m->n_users && nb > 0))
		{
			if ((st = isrf_serve_recommend(env, ss, nb, req, res)) != ISRF_OK)
				break;
			for (i = 0; i < nb; i++)
				evaluate_list(&el, req[i].user, res[i].count, res[i].items);
			nb = 0;
		}
	}
	isrf_serve_session_close(ss);
	if (fclose(el.f) != 0 && st == ISRF_OK)
		st = isrf_fail(env, ISRF_ERR_IO, "cannot write \"%s\"", lists);
	isrf_free(env, items);
	isrf_free(env, scores);
	if (st != ISRF_OK)
		return driver_report(env, "recommend");
	printf("served %d users in %.1f s (%.2f ms each)\n", m->n_users, isrf_now() - t0,
		   1000.0 * (isrf_now() - t0) / (m->n_users ? m->n_users : 1));
	return 0;
}

int
driver_cmd_recommend(int argc, char **argv)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;
	IsrfModel	m;
	const char *file = NULL,
			   *device = "auto",
			   *lists = NULL;
	int32_t		k = 10;
	bool		retune = false,
				train_weights = false;
	int			i,
				rc = 1;

	driver_env_init(&env);
	memset(&m, 0, sizeof(m));
	for (i = 1; i < argc; i++)
	{
		const char *a = NULL,
				   *v = NULL;
		int			kind = driver_next_arg(argc, argv, &i, &file, &a, &v);

		if (kind < 0)
			return 2;
		if (kind == 0)
			continue;
		if (strcmp(a, "--device") == 0)
			device = v;
		else if (strcmp(a, "--lists") == 0)
			lists = v;
		else if (strcmp(a, "--retune") == 0 && (strcmp(v, "on") == 0 || strcmp(v, "off") == 0))
			retune = strcmp(v, "on") == 0;
		else if (strcmp(a, "--weights") == 0 && (strcmp(v, "served") == 0 || strcmp(v, "train") == 0))
			train_weights = strcmp(v, "train") == 0;
		else if (strcmp(a, "--k") == 0)
		{
			if (!driver_int_arg("k", v, 1, 100000, &k))
				return 2;
		}
		else
		{
			fprintf(stderr, "isrf_driver: recommend: bad option %s %s\n", a, v);
			return 2;
		}
	}
	if (file == NULL || lists == NULL)
	{
		fprintf(stderr, "usage: isrf_driver recommend MODEL_FILE --lists FILE [--k 10] [--device D] [--retune on|off] [--weights served|train]\n");
		return 2;
	}
	if (driver_load_model(&env, file, &m) != 0)
		return 1;
	if (driver_open_backend(&env, device, &be) != ISRF_OK)
		driver_report(&env, "backend");
	else if (!retune || !m.genrec.params || evaluate_retune(&env, be, &m) == 0)
		rc = evaluate_recommend_all(&env, be, &m, k, lists, train_weights);
	isrf_model_free(&env, &m);
	isrf_backend_close(be);
	return rc;
}
