/*
 * cmd_knn_ref.c
 *	  isrf_driver knn-reference DIR: the plain reference for the group
 *	  graph -- the full cosine matrix of all user pairs with ONE GEMM, then a
 *	  top-K per row -- timed against the blockwise isrf_group_graph_build and
 *	  compared with it row by row.  Needs n^2 floats of (device) memory,
 *	  which is exactly what the blockwise build avoids.
 */
#include "commands.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct KnnRef
{
	int32_t		nz;				/* users with a nonzero feature */
	int32_t		k;
	int32_t    *map;			/* compact -> user */
	int32_t    *idx;			/* nz x k, compact indices */
	float	   *val;
	double		t_gemm;
	double		t_topk;
	double		t_total;
} KnnRef;

/* All pairs at once: one gemm into an nz x nz matrix, then topk_rows. */
static IsrfStatus
knnref_build(IsrfEnv *env, IsrfBackend *be, const float *x, int32_t n, int32_t d,
			 int32_t k, KnnRef *r)
{
	float	   *stage = NULL,
			   *dx = NULL,
			   *dscore = NULL,
			   *dval = NULL;
	int32_t    *didx = NULL;
	IsrfStatus	st = ISRF_OK;
	int32_t		i;
	double		t0 = isrf_now(),
				t1;

	memset(r, 0, sizeof(*r));
	r->map = isrf_alloc(env, sizeof(int32_t) * ((size_t) n + 1));
	stage = isrf_alloc(env, sizeof(float) * ((size_t) n * d + 1));
	if (!r->map || !stage)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n; i++)
	{
		int32_t		j;
		bool		nonzero = false;

		for (j = 0; j < d; j++)
			nonzero |= x[(size_t) i * d + j] != 0.0f;
		if (nonzero)
		{
			memcpy(stage + (size_t) r->nz * d, x + (size_t) i * d, sizeof(float) * d);
			r->map[r->nz++] = i;
		}
	}
	r->k = k < r->nz - 1 ? k : (r->nz > 0 ? r->nz - 1 : 0);
	if (r->k == 0)
		goto done;
	r->idx = isrf_alloc(env, sizeof(int32_t) * (size_t) r->nz * r->k);
	r->val = isrf_alloc(env, sizeof(float) * (size_t) r->nz * r->k);
	if (!r->idx || !r->val)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if ((st = be->mem_alloc(be, sizeof(float) * (size_t) r->nz * d, (void **) &dx)) != ISRF_OK ||
		(st = be->mem_alloc(be, sizeof(float) * (size_t) r->nz * r->nz, (void **) &dscore)) != ISRF_OK ||
		(st = be->mem_alloc(be, sizeof(float) * (size_t) r->nz * r->k, (void **) &dval)) != ISRF_OK ||
		(st = be->mem_alloc(be, sizeof(int32_t) * (size_t) r->nz * r->k, (void **) &didx)) != ISRF_OK ||
		(st = be->upload(be, dx, stage, sizeof(float) * (size_t) r->nz * d)) != ISRF_OK ||
		(st = be->row_normalize(be, r->nz, d, dx)) != ISRF_OK ||
		(st = be->sync(be)) != ISRF_OK)
		goto done;
	t1 = isrf_now();
	if ((st = be->gemm(be, false, true, r->nz, r->nz, d, 1.0f, dx, d, dx, d, 0.0f,
					   dscore, r->nz)) != ISRF_OK ||
		(st = be->sync(be)) != ISRF_OK)
		goto done;
	r->t_gemm = isrf_now() - t1;
	t1 = isrf_now();
	if ((st = be->topk_rows(be, r->nz, r->nz, dscore, r->nz, r->k, true, 0, didx, dval)) != ISRF_OK ||
		(st = be->download(be, r->idx, didx, sizeof(int32_t) * (size_t) r->nz * r->k)) != ISRF_OK ||
		(st = be->download(be, r->val, dval, sizeof(float) * (size_t) r->nz * r->k)) != ISRF_OK)
		goto done;
	r->t_topk = isrf_now() - t1;

done:
	r->t_total = isrf_now() - t0;
	isrf_free(env, stage);
	if (dx)
		be->mem_free(be, dx);
	if (dscore)
		be->mem_free(be, dscore);
	if (dval)
		be->mem_free(be, dval);
	if (didx)
		be->mem_free(be, didx);
	return st;
}

static void
knnref_free(IsrfEnv *env, KnnRef *r)
{
	isrf_free(env, r->map);
	isrf_free(env, r->idx);
	isrf_free(env, r->val);
	memset(r, 0, sizeof(*r));
}

/* Row-by-row comparison; prints the agreement figures. */
static void
knnref_compare(const IsrfCsr *g, const KnnRef *r, float thr)
{
	int32_t		i,
				same_rows = 0,
				same_sets = 0,
				rows = 0;
	int64_t		missing = 0;
	double		worst = 0;

	for (i = 0; i < r->nz; i++)
	{
		int32_t		u = r->map[i],
					lo = g->rowptr[u],
					len = g->rowptr[u + 1] - lo,
					rlen = 0,
					j,
					q;
		bool		same = true;

		while (rlen < r->k && r->idx[(size_t) i * r->k + rlen] >= 0 &&
			   r->val[(size_t) i * r->k + rlen] >= thr)
			rlen++;
		rows++;
		if (rlen != len)
			same = false;
		for (j = 0; j < rlen; j++)
		{
			int32_t		c = r->map[r->idx[(size_t) i * r->k + j]];
			float		v = r->val[(size_t) i * r->k + j];
			bool		found = false;

			if (j < len && g->col[lo + j] != c)
				same = false;
			for (q = 0; q < len; q++)
				if (g->col[lo + q] == c)
				{
					found = true;
					if (fabs(g->val[lo + q] - v) > worst)
						worst = fabs(g->val[lo + q] - v);
				}
			missing += !found;
		}
		same_rows += same;
		same_sets += (rlen == len);
	}
	printf("agreement: %d/%d rows identical (order included), %lld reference neighbours "
		   "missing from the blockwise graph, max |similarity diff| %.2e\n",
		   same_rows, rows, (long long) missing, worst);
	(void) same_sets;
}

int
driver_cmd_knn_reference(int argc, char **argv)
{
	DriverOpts	o;
	IsrfEnv		env;
	IsrfBackend *be;
	DriverData	dd;
	IsrfGroupGraphConfig kcfg;
	IsrfCsr		g;
	KnnRef		ref;
	IsrfStatus	st;
	int			rc;
	double		t0,
				t_block;

	if ((rc = driver_start(argc, argv, "knn-reference", true, &o, &env, &be, &dd)) >= 0)
		return rc;

	driver_knn_config(&o, &kcfg);
	t0 = isrf_now();
	st = isrf_group_graph_build(&env, be, dd.sem.user, dd.ds.n_users, dd.sem.dm, &kcfg, &g);
	t_block = isrf_now() - t0;
	if (st != ISRF_OK)
		goto fail;
	printf("knn-blockwise   %8.3f s  %d users, K=%d, %d edges\n",
		   t_block, dd.ds.n_users, o.k, g.nnz);
	st = knnref_build(&env, be, dd.sem.user, dd.ds.n_users, dd.sem.dm, o.k, &ref);
	if (st != ISRF_OK)
	{
		isrf_csr_free(&env, &g);
		knnref_free(&env, &ref);
		goto fail;
	}
	printf("knn-reference   %8.3f s  gemm %.3f s, top-k %.3f s, score matrix %.0f MiB\n",
		   ref.t_total, ref.t_gemm, ref.t_topk,
		   (double) ref.nz * ref.nz * sizeof(float) / (1 << 20));
	printf("ratio           reference / blockwise = %.2f\n",
		   t_block > 0 ? ref.t_total / t_block : 0.0);
	knnref_compare(&g, &ref, o.threshold);
	isrf_csr_free(&env, &g);
	knnref_free(&env, &ref);
	driver_data_free(&env, &dd);
	isrf_backend_close(be);
	return 0;

fail:
	driver_data_free(&env, &dd);
	isrf_backend_close(be);
	return driver_report(&env, "knn-reference");
}
