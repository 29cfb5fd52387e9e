/*
 * cmd_stages.c
 *	  isrf_driver stages DIR: runs the data and graph stages of training
 *	  once (load, featurize, PCA, user features, group graph, both
 *	  normalisations, LightGCN forward and backward over both graphs) and
 *	  prints one line per stage: its time and a figure that would look wrong
 *	  if the stage were.
 */
#include "commands.h"
#include "graph/lightgcn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/*
 * max_i |sum_j S_ij sqrt(d_j) - sqrt(d_i)|: zero for any D^-1/2 A D^-1/2,
 * whatever the weights (sqdeg holds sqrt(d)).
 */
static double
stages_norm_residual(const IsrfCsr *s, const float *sqdeg)
{
	double		worst = 0;
	int32_t		i,
				p;

	for (i = 0; i < s->n_rows; i++)
	{
		double		acc = 0;

		if (sqdeg[i] == 0.0f)
			continue;
		for (p = s->rowptr[i]; p < s->rowptr[i + 1]; p++)
			acc += (double) s->val[p] * sqdeg[s->col[p]];
		if (fabs(acc - sqdeg[i]) > worst)
			worst = fabs(acc - sqdeg[i]);
	}
	return worst;
}

static double
stages_dot(const float *a, const float *b, size_t n)
{
	double		s = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		s += (double) a[i] * b[i];
	return s;
}

/*
 * Forward and backward LightGCN over s from host e0 (n x d); prints a line
 * with both times and the adjoint check <F x, F x> vs <x, F^T F x>.
 */
static IsrfStatus
stages_lightgcn(IsrfEnv *env, IsrfBackend *be, const char *label, const IsrfCsr *s,
				const float *e0, int32_t n, int32_t d, int32_t layers, double *total)
{
	size_t		len = (size_t) n * d,
				bytes = sizeof(float) * (len ? len : 1);
	IsrfDevCsr *ds = NULL;
	float	   *dx = NULL,
			   *dy = NULL,
			   *dz = NULL;
	float	   *hy = NULL,
			   *hz = NULL;
	IsrfLightGcn g;
	IsrfStatus	st;
	double		t0,
				t_up,
				t_fwd,
				t_bwd;

	memset(&g, 0, sizeof(g));
	t0 = isrf_now();
	if ((st = be->csr_create(be, s, &ds)) != ISRF_OK ||
		(st = be->mem_alloc(be, bytes, (void **) &dx)) != ISRF_OK ||
		(st = be->mem_alloc(be, bytes, (void **) &dy)) != ISRF_OK ||
		(st = be->mem_alloc(be, bytes, (void **) &dz)) != ISRF_OK ||
		(st = be->upload(be, dx, e0, sizeof(float) * len)) != ISRF_OK ||
		(st = isrf_lightgcn_init(env, be, ds, n, d, layers, &g)) != ISRF_OK ||
		(st = be->sync(be)) != ISRF_OK)
		goto done;
	t_up = isrf_now() - t0;
	t0 = isrf_now();
	if ((st = isrf_lightgcn_forward(&g, dx, dy)) != ISRF_OK || (st = be->sync(be)) != ISRF_OK)
		goto done;
	t_fwd = isrf_now() - t0;
	t0 = isrf_now();
	if ((st = isrf_lightgcn_backward(&g, dy, dz)) != ISRF_OK || (st = be->sync(be)) != ISRF_OK)
		goto done;
	t_bwd = isrf_now() - t0;
	hy = isrf_alloc(env, bytes);
	hz = isrf_alloc(env, bytes);
	if (!hy || !hz)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if ((st = be->download(be, hy, dy, sizeof(float) * len)) != ISRF_OK ||
		(st = be->download(be, hz, dz, sizeof(float) * len)) != ISRF_OK)
		goto done;
	{
		double		lhs = stages_dot(hy, hy, len),
					rhs = stages_dot(e0, hz, len),
					n0 = sqrt(stages_dot(e0, e0, len));

		printf("%-15s %8.3f s  %d x %d, %d layers: upload %.3f s, forward %.3f s, "
			   "backward %.3f s; |E_out|/|E0| %.3f, adjoint rel. err %.1e\n",
			   label, t_up + t_fwd + t_bwd, n, d, layers, t_up, t_fwd, t_bwd,
			   n0 > 0 ? sqrt(lhs) / n0 : 0.0,
			   fabs(lhs - rhs) / (fabs(lhs) > 0 ? fabs(lhs) : 1.0));
	}
	*total += t_up + t_fwd + t_bwd;

done:
	isrf_lightgcn_free(&g);
	if (dx)
		be->mem_free(be, dx);
	if (dy)
		be->mem_free(be, dy);
	if (dz)
		be->mem_free(be, dz);
	if (ds)
		be->csr_destroy(be, ds);
	isrf_free(env, hy);
	isrf_free(env, hz);
	return st;
}

/* Everything after loading; split out so that cleanup stays in one place. */
static IsrfStatus
stages_run(IsrfEnv *env, IsrfBackend *be, const DriverOpts *o, DriverData *dd,
		   double *total)
{
	IsrfDataset *ds = &dd->ds;
	IsrfSemantic *sem = &dd->sem;
	IsrfGroupGraphConfig kcfg;
	IsrfCsr		knn,
				gnorm,
				ui;
	float	   *sq = NULL,
			   *e0 = NULL;
	IsrfStatus	st;
	double		t0,
				t;
	int32_t		i,
				full = 0;
	double		sim_sum = 0;
	int32_t		n_nodes = ds->n_users + ds->n_items;

	memset(&knn, 0, sizeof(knn));
	memset(&gnorm, 0, sizeof(gnorm));
	memset(&ui, 0, sizeof(ui));

	/* group graph */
	driver_knn_config(o, &kcfg);
	t0 = isrf_now();
	if ((st = isrf_group_graph_build(env, be, sem->user, ds->n_users, sem->dm, &kcfg, &knn)) != ISRF_OK)
		goto done;
	t = isrf_now() - t0;
	*total += t;
	for (i = 0; i < ds->n_users; i++)
		full += (knn.rowptr[i + 1] - knn.rowptr[i]) == o->k;
	for (i = 0; i < knn.nnz; i++)
		sim_sum += knn.val[i];
	printf("%-15s %8.3f s  K=%d: %d edges, %.1f%% users with K neighbours, mean similarity %.4f\n",
		   "group-knn", t, o->k, knn.nnz,
		   ds->n_users ? 100.0 * full / ds->n_users : 0.0,
		   knn.nnz ? sim_sum / knn.nnz : 0.0);

	t0 = isrf_now();
	if ((st = isrf_group_graph_normalize(env, &knn, &gnorm)) != ISRF_OK)
		goto done;
	t = isrf_now() - t0;
	*total += t;
	sq = isrf_alloc(env, sizeof(float) * ((size_t) n_nodes + 1));
	if (sq == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	/* the self-loop makes S_ii = 1/d_i */
	for (i = 0; i < gnorm.n_rows; i++)
	{
		int32_t		p;

		sq[i] = 0.0f;
		for (p = gnorm.rowptr[i]; p < gnorm.rowptr[i + 1]; p++)
			if (gnorm.col[p] == i)
				sq[i] = (float) (1.0 / sqrt(gnorm.val[p]));
	}
	printf("%-15s %8.3f s  symmetrised + self-loops: %d entries, normalisation residual %.1e\n",
		   "group-norm", t, gnorm.nnz, stages_norm_residual(&gnorm, sq));

	t0 = isrf_now();
	if ((st = isrf_lightgcn_bipartite(env, ds, &ui)) != ISRF_OK)
		goto done;
	t = isrf_now() - t0;
	*total += t;
	for (i = 0; i < ui.n_rows; i++)
		sq[i] = (float) sqrt((double) (ui.rowptr[i + 1] - ui.rowptr[i]));
	printf("%-15s %8.3f s  %d nodes, %d entries (= 2 x %lld train interactions), residual %.1e\n",
		   "ui-graph", t, ui.n_rows, ui.nnz, (long long) ds->n_train_interactions,
		   stages_norm_residual(&ui, sq));

	/* LightGCN over both graphs, from the semantic features */
	e0 = isrf_alloc(env, sizeof(float) * ((size_t) n_nodes * sem->dm + 1));
	if (e0 == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	memcpy(e0, sem->user, sizeof(float) * (size_t) ds->n_users * sem->dm);
	memcpy(e0 + (size_t) ds->n_users * sem->dm, sem->item,
		   sizeof(float) * (size_t) ds->n_items * sem->dm);
	if ((st = stages_lightgcn(env, be, "lightgcn-ui", &ui, e0, n_nodes, sem->dm,
							  o->layers, total)) != ISRF_OK)
		goto done;
	st = stages_lightgcn(env, be, "lightgcn-group", &gnorm, sem->user, ds->n_users,
						 sem->dm, o->layers, total);

done:
	isrf_csr_free(env, &knn);
	isrf_csr_free(env, &gnorm);
	isrf_csr_free(env, &ui);
	isrf_free(env, sq);
	isrf_free(env, e0);
	return st;
}

int
driver_cmd_stages(int argc, char **argv)
{
	DriverOpts	o;
	IsrfEnv		env;
	IsrfBackend *be;
	DriverData	dd;
	IsrfSemantic *sem;
	IsrfStatus	st;
	int			rc;
	double		total = 0;

	if ((rc = driver_start(argc, argv, "stages", true, &o, &env, &be, &dd)) >= 0)
		return rc;
	sem = &dd.sem;
	printf("%-15s %8.3f s  %d users, %d items (%lld catalogue), %lld interactions, "
		   "%lld train, %d evaluated, %lld duplicates, %lld rows skipped\n",
		   "load", dd.t_load, dd.ds.n_users, dd.ds.n_items,
		   (long long) dd.dd.corpus.n_catalogue, (long long) dd.ds.n_interactions,
		   (long long) dd.ds.n_train_interactions, dd.ds.n_evaluated,
		   (long long) dd.ds.n_duplicates,
		   (long long) (dd.dd.n_skipped_null + dd.dd.n_skipped_unknown_item));
	printf("%-15s %8.3f s  %lld item pieces, %lld user pieces (%s); %d items with text, "
		   "%d users with descriptions, unknown ids %lld/%lld\n",
		   "featurize", sem->t_featurize, (long long) dd.dd.corpus.n_item_text,
		   (long long) dd.dd.corpus.n_user_text, dd.dd.text_columns,
		   sem->n_items_with_text, sem->n_users_with_description,
		   (long long) sem->n_unknown_item_text, (long long) sem->n_unknown_user_text);
	printf("%-15s %8.3f s  d_m=%d, explained variance (sum) %.4g\n",
		   "pca", sem->t_pca, sem->dm, sem->explained);
	printf("%-15s %8.3f s  %d from descriptions, %d from train history, %d without\n",
		   "user-features", sem->t_users, sem->n_users_with_description,
		   sem->n_users_from_history, sem->n_users_without);
	total = dd.t_load + sem->t_featurize + sem->t_pca + sem->t_users;

	st = stages_run(&env, be, &o, &dd, &total);
	driver_data_free(&env, &dd);
	isrf_backend_close(be);
	if (st != ISRF_OK)
		return driver_report(&env, "stages");
	printf("%-15s %8.3f s\n", "total", total);
	return 0;
}
