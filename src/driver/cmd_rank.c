/*
 * cmd_rank.c
 *	  isrf_driver rank MODEL_FILE --tasks FILE [--device D]
 *	  [--weights served|train] [--terms all|train] [--without net]: the
 *	  direct task as a user of
 *	  isrf_rank meets it.  FILE holds one line per user,
 *	  user_id,target_item_id,"{item_id,item_id,...}" (bench/direct_tasks.py
 *	  writes referee.py's draw: a withheld item among 99 the user never
 *	  touched); each list is scored by the code isrf_rank runs (the user's
 *	  stored history, the served weights unless --weights train) and the
 *	  target's rank gives HR@5 / NDCG@5 / HR@10 / NDCG@10.  A candidate the
 *	  model does not know scores NaN and ranks last, as in isrf_rank.
 *	  --without net serves the same model with its blend network left out
 *	  (the weighted sum alone), so one model shows what the network adds;
 *	  --terms train scores with the terms beside the dense logit fitted on
 *	  the train split (as isrf_evaluate does) instead of every interaction
 *	  the model knows (as serving does).
 */
#include "commands.h"
#include "eval/metrics.h"
#include "serve/serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Parse one task line into *user, *target and cand[0..*n) (at most max);
 * false when it is malformed.
 */
static bool
rank_parse_line(char *line, int64_t *user, int64_t *target, int64_t *cand, int32_t max, int32_t *n)
{
	char	   *p = line,
			   *end;

	errno = 0;
	*user = strtoll(p, &end, 10);
	if (end == p || *end != ',')
		return false;
	p = end + 1;
	*target = strtoll(p, &end, 10);
	if (end == p || strncmp(end, ",\"{", 3) != 0)
		return false;
	p = end + 3;
	*n = 0;
	while (*p != '}')
	{
		if (*n == max)
			return false;
		cand[(*n)++] = strtoll(p, &end, 10);
		if (end == p || (*end != ',' && *end != '}'))
			return false;
		p = *end == ',' ? end + 1 : end;
	}
	return errno == 0 && strncmp(p, "}\"", 2) == 0;
}

#define RANK_MAX_CAND 10000

int
driver_cmd_rank(int argc, char **argv)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;
	IsrfServeSession *ss = NULL;
	IsrfModel	m;
	IsrfMetrics acc;
	const char *file = NULL,
			   *tasks = NULL,
			   *device = "auto";
	bool		train_weights = false,
				train_terms = false,
				no_net = false;
	int64_t    *cid = NULL;
	int32_t    *cand = NULL;
	float	   *score = NULL;
	double	   *dscore = NULL;
	char	   *line = NULL;
	size_t		cap = 0;
	FILE	   *f = NULL;
	int32_t		i,
				skipped = 0,
				lineno = 0;
	int			rc = 1;

	driver_env_init(&env);
	memset(&m, 0, sizeof(m));
	memset(&acc, 0, sizeof(acc));
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
		else if (strcmp(a, "--tasks") == 0)
			tasks = v;
		else if (strcmp(a, "--weights") == 0 && (strcmp(v, "served") == 0 || strcmp(v, "train") == 0))
			train_weights = strcmp(v, "train") == 0;
		else if (strcmp(a, "--terms") == 0 && (strcmp(v, "all") == 0 || strcmp(v, "train") == 0))
			train_terms = strcmp(v, "train") == 0;
		else if (strcmp(a, "--without") == 0 && strcmp(v, "net") == 0)
			no_net = true;
		else
		{
			fprintf(stderr, "isrf_driver: rank: bad option %s %s\n", a, v);
			return 2;
		}
	}
	if (file == NULL || tasks == NULL)
	{
		fprintf(stderr, "usage: isrf_driver rank MODEL_FILE --tasks FILE [--device D] [--weights served|train] "
				"[--terms all|train] [--without net]\n");
		return 2;
	}
	if (driver_load_model(&env, file, &m) != 0)
		return 1;
	if (no_net)
		memset(&m.genrec.weights.net, 0, sizeof(m.genrec.weights.net));
	cid = malloc(sizeof(int64_t) * RANK_MAX_CAND);
	cand = malloc(sizeof(int32_t) * RANK_MAX_CAND);
	score = malloc(sizeof(float) * RANK_MAX_CAND);
	dscore = malloc(sizeof(double) * RANK_MAX_CAND);
	if (!cid || !cand || !score || !dscore)
	{
		fprintf(stderr, "isrf_driver: out of memory\n");
		goto out;
	}
	if ((f = fopen(tasks, "r")) == NULL)
	{
		fprintf(stderr, "isrf_driver: cannot read \"%s\"\n", tasks);
		goto out;
	}
	if (driver_open_backend(&env, device, &be) != ISRF_OK)
	{
		driver_report(&env, "backend");
		goto out;
	}
	if ((train_weights ? isrf_serve_session_open_eval(&env, be, &m, &ss) :
		 isrf_serve_session_open(&env, be, &m, &ss)) != ISRF_OK)
	{
		driver_report(&env, "rank");
		goto out;
	}
	while (getline(&line, &cap, f) > 0)
	{
		int64_t		user,
					target;
		int32_t		n,
					u,
					c,
					tpos = -1;

		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;			/* a blank line */
		if (!rank_parse_line(line, &user, &target, cid, RANK_MAX_CAND, &n) || n < 1)
		{
			fprintf(stderr, "isrf_driver: %s:%d: not user_id,target,\"{items}\"\n", tasks, lineno);
			goto out;
		}
		if ((u = isrf_model_user_index(&m, user)) < 0)
		{
			skipped++;
			continue;
		}
		for (c = 0; c < n; c++)
		{
			cand[c] = isrf_model_item_index(&m, cid[c]);
			if (cid[c] == target && tpos < 0)
				tpos = c;
		}
		if (tpos < 0)
		{
			fprintf(stderr, "isrf_driver: %s:%d: the target is not among the candidates\n", tasks, lineno);
			goto out;
		}
		if (isrf_serve_rank_scope(&env, ss, train_terms ? ISRF_SCOPE_TRAIN_SPLIT : ISRF_SCOPE_ALL, u, NULL, 0,
								  n, cand, score) != ISRF_OK)
		{
			driver_report(&env, "rank");
			goto out;
		}
		for (c = 0; c < n; c++)
			dscore[c] = score[c];
		/* a NaN target (an unknown item) ranks last; ties count against it */
		isrf_metrics_add(&acc, isrf_direct_rank(dscore, NULL, n, tpos, false));
	}
	{
		IsrfMetrics r = isrf_metrics_mean(&acc);

		printf("direct task through isrf_rank's code (%s weights, terms of %s%s): %lld users (%d not in the model, skipped)\n",
			   train_weights ? "train-split" : "served", train_terms ? "the train split" : "every interaction",
			   no_net ? ", without the blend network" : "",
			   (long long) r.users, skipped);
		printf("HR@5 %.4f NDCG@5 %.4f HR@10 %.4f NDCG@10 %.4f\n", r.hr5, r.ndcg5, r.hr10, r.ndcg10);
	}
	rc = 0;

out:
	if (ss)
		isrf_serve_session_close(ss);
	if (f)
		fclose(f);
	free(line);
	free(cid);
	free(cand);
	free(score);
	free(dscore);
	isrf_model_free(&env, &m);
	isrf_backend_close(be);
	return rc;
}
