/*
 * cmd_baselines.c
 *	  "isrf_driver baselines DIR": the reference baselines (popularity,
 *	  Markov + item-kNN) on the leak-free split of a CSV data directory,
 *	  sequential (full ranking) and direct (1 + 99 candidates) tasks, with
 *	  HR@5/NDCG@5/HR@10/NDCG@10 and timings; optionally the top-10 lists as a
 *	  user_id,rank,item_id CSV that ../shared/tools/referee.py can score.
 */
#include "eval/baselines.h"
#include "data/datadir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			driver_cmd_baselines(int argc, char **argv);

static void
cb_log(void *ctx, const char *msg)
{
	(void) ctx;
	fprintf(stderr, "isrf_driver: %s\n", msg);
}

static int
cb_usage(void)
{
	fprintf(stderr,
			"usage: isrf_driver baselines DIR [options]\n"
			"  --target test|validation   held-out item to predict (test)\n"
			"  --direct-users N           direct task on the first N shuffled users,\n"
			"                             0 = every evaluated user (0; referee.py uses 2000)\n"
			"  --ties fair|target         direct-task full ties: by candidate order (fair)\n"
			"                             or in the target's favour, as referee.py (target)\n"
			"  --seed N                   direct-task seed (20261122, referee.py's)\n"
			"  --predictions FILE         write top-10 lists as user_id,rank,item_id\n"
			"  --method popularity|markov_knn   method of --predictions (markov_knn)\n");
	return 2;
}

static int
cb_fail(IsrfEnv *env, const char *what)
{
	fprintf(stderr, "isrf_driver: %s: %s (%s)\n", what,
			env->errmsg[0] ? env->errmsg : "failed", isrf_status_name(env->status));
	return 1;
}

/* Top-10 lists of every evaluated user for the target, as CSV. */
static IsrfStatus
cb_write_predictions(IsrfEnv *env, IsrfBaselines *b, const IsrfDataset *ds,
					 IsrfBaselineMethod m, IsrfTarget target, const char *path)
{
	FILE	   *f = fopen(path, "w");
	int32_t		top[10];
	int32_t		u,
				j;
	IsrfStatus	st = ISRF_OK;

	if (f == NULL)
		return isrf_fail(env, ISRF_ERR_IO, "could not create \"%s\": %s", path, strerror(errno));
	fprintf(f, "user_id,rank,item_id\n");
	for (u = 0; u < ds->n_users && st == ISRF_OK; u++)
	{
		int32_t		n_input;

		if (!ds->evaluated[u])
			continue;
		(void) isrf_eval_input(ds, u, target, &n_input);
		st = isrf_baselines_recommend(env, b, m, ds->seq + ds->seq_ptr[u], n_input,
									  10, top, NULL);
		for (j = 0; j < 10 && st == ISRF_OK; j++)
			if (top[j] >= 0)
				fprintf(f, "%lld,%d,%lld\n", (long long) ds->user_ids[u], j + 1,
						(long long) ds->item_ids[top[j]]);
	}
	if (fclose(f) != 0 && st == ISRF_OK)
		st = isrf_fail(env, ISRF_ERR_IO, "could not write \"%s\": %s", path, strerror(errno));
	return st;
}

static void
cb_print(const char *task, IsrfBaselineMethod m, const IsrfMetrics *r)
{
	printf("%-11s %-11s %7.4f %7.4f %7.4f %7.4f %7lld\n", task, isrf_baseline_name(m),
		   r->hr5, r->ndcg5, r->hr10, r->ndcg10, (long long) r->users);
}

int
driver_cmd_baselines(int argc, char **argv)
{
	IsrfEnv		env;
	IsrfDataDir dd;
	IsrfDataset ds;
	IsrfBaselines bl;
	IsrfDirectTask dt;
	IsrfBaselineEval ev;
	const char *dir = NULL;
	const char *pred_path = NULL;
	IsrfTarget	target = ISRF_TARGET_TEST;
	IsrfBaselineMethod pred_method = ISRF_BASELINE_MARKOV_KNN;
	bool		ties_to_target = false;
	long long	direct_users = 0;
	unsigned long long seed = ISRF_DIRECT_SEED;
	double		t0,
				t_load,
				t_split,
				t_fit,
				t_draw,
				t_eval,
				t_pred = 0.0;
	int			i,
				m,
				rc = 0;

	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char	   *end;

		if (a[0] != '-' || a[1] != '-')
		{
			if (dir)
				return cb_usage();
			dir = a;
			continue;
		}
		if (v == NULL)
			return cb_usage();
		i++;
		errno = 0;
		if (strcmp(a, "--target") == 0 && strcmp(v, "test") == 0)
			target = ISRF_TARGET_TEST;
		else if (strcmp(a, "--target") == 0 && strcmp(v, "validation") == 0)
			target = ISRF_TARGET_VALIDATION;
		else if (strcmp(a, "--ties") == 0 && (strcmp(v, "fair") == 0 || strcmp(v, "target") == 0))
			ties_to_target = strcmp(v, "target") == 0;
		else if (strcmp(a, "--direct-users") == 0)
		{
			direct_users = strtoll(v, &end, 10);
			if (errno || *end || end == v || direct_users < 0 || direct_users > INT32_MAX)
				return cb_usage();
		}
		else if (strcmp(a, "--seed") == 0)
		{
			seed = strtoull(v, &end, 10);
			if (errno || *end || end == v || v[0] == '-')
				return cb_usage();
		}
		else if (strcmp(a, "--predictions") == 0)
			pred_path = v;
		else if (strcmp(a, "--method") == 0 && strcmp(v, "popularity") == 0)
			pred_method = ISRF_BASELINE_POPULARITY;
		else if (strcmp(a, "--method") == 0 && strcmp(v, "markov_knn") == 0)
			pred_method = ISRF_BASELINE_MARKOV_KNN;
		else
		{
			fprintf(stderr, "isrf_driver: baselines: bad option %s %s\n", a, v);
			return cb_usage();
		}
	}
	if (dir == NULL)
		return cb_usage();

	isrf_env_init_malloc(&env);
	env.log = cb_log;

	t0 = isrf_now();
	if (isrf_datadir_load(&env, dir, NULL, &dd) != ISRF_OK)
		return cb_fail(&env, "loading the data directory");
	t_load = isrf_now() - t0;

	t0 = isrf_now();
	if (isrf_dataset_build(&env, &dd.corpus.rows, dd.corpus.catalogue_ids,
						   dd.corpus.n_catalogue, &ds) != ISRF_OK)
	{
		isrf_datadir_free(&env, &dd);
		return cb_fail(&env, "building the dataset");
	}
	t_split = isrf_now() - t0;
	isrf_datadir_free(&env, &dd);

	t0 = isrf_now();
	if (isrf_baselines_fit(&env, &ds, &bl) != ISRF_OK)
	{
		isrf_dataset_free(&env, &ds);
		return cb_fail(&env, "fitting the baselines");
	}
	t_fit = isrf_now() - t0;

	t0 = isrf_now();
	if (isrf_direct_task_build(&env, &ds, target, seed, ISRF_DIRECT_NEGATIVES,
							   (int32_t) direct_users, &dt) != ISRF_OK)
	{
		rc = cb_fail(&env, "drawing the direct-task candidates");
		goto out_bl;
	}
	t_draw = isrf_now() - t0;

	t0 = isrf_now();
	if (isrf_baselines_evaluate(&env, &bl, &ds, target, &dt, ties_to_target, &ev) != ISRF_OK)
	{
		rc = cb_fail(&env, "evaluating the baselines");
		goto out_dt;
	}
	t_eval = isrf_now() - t0;

	if (pred_path)
	{
		t0 = isrf_now();
		if (cb_write_predictions(&env, &bl, &ds, pred_method, target, pred_path) != ISRF_OK)
		{
			rc = cb_fail(&env, "writing predictions");
			goto out_dt;
		}
		t_pred = isrf_now() - t0;
	}

	printf("dataset %s: %d users (%d evaluated), %d items, %lld interactions "
		   "(%lld train, %lld duplicates dropped); target %s\n",
		   dir, ds.n_users, ds.n_evaluated, ds.n_items, (long long) ds.n_interactions,
		   (long long) ds.n_train_interactions, (long long) ds.n_duplicates,
		   target == ISRF_TARGET_TEST ? "test" : "validation");
	printf("%-11s %-11s %7s %7s %7s %7s %7s\n", "task", "method", "HR@5", "NDCG@5",
		   "HR@10", "NDCG@10", "users");
	for (m = 0; m < ISRF_N_BASELINES; m++)
		cb_print("sequential", (IsrfBaselineMethod) m, &ev.sequential[m]);
	for (m = 0; m < ISRF_N_BASELINES; m++)
		cb_print("direct", (IsrfBaselineMethod) m, &ev.direct[m]);
	printf("direct task: %d negatives per user, seed %llu, ties %s\n",
		   ISRF_DIRECT_NEGATIVES, seed, ties_to_target ? "to the target" : "by candidate order");
	printf("seconds: load %.3f, split %.3f, fit %.3f, draw %.3f, evaluate %.3f",
		   t_load, t_split, t_fit, t_draw, t_eval);
	if (pred_path)
		printf(", predictions %.3f (%s -> %s)", t_pred, isrf_baseline_name(pred_method),
			   pred_path);
	printf("\n");

out_dt:
	isrf_direct_task_free(&env, &dt);
out_bl:
	isrf_baselines_free(&env, &bl);
	isrf_dataset_free(&env, &ds);
	return rc;
}
