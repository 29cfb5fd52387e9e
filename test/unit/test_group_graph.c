/*
 * test_group_graph.c
 *	  Unit tests of the group graph: blockwise top-K cosine neighbours
 *	  against an all-pairs double-precision reference (self and zero vectors
 *	  excluded, block size irrelevant, thresholds, negative similarities), and
 *	  the symmetric normalisation (max symmetrisation, self-loops, exact
 *	  symmetry, D^1/2 1 as the eigenvector of eigenvalue 1).
 */
#include "graph/group_graph.h"
#include "unit.h"

#include <string.h>

/* double-precision cosine of rows a and b */
static double
ref_cos(const float *x, int d, int a, int b)
{
	double		s = 0,
				na = 0,
				nb = 0;
	int			j;

	for (j = 0; j < d; j++)
	{
		s += (double) x[a * d + j] * x[b * d + j];
		na += (double) x[a * d + j] * x[a * d + j];
		nb += (double) x[b * d + j] * x[b * d + j];
	}
	return s / sqrt(na * nb);
}

static bool
is_zero_row(const float *x, int d, int i)
{
	int			j;

	for (j = 0; j < d; j++)
		if (x[i * d + j] != 0.0f)
			return false;
	return true;
}

/* check graph g against the all-pairs reference, with top-k k */
static void
check_against_ref(const IsrfCsr *g, const float *x, int n, int d, int k, float thr)
{
	int			i,
				bad_val = 0,
				bad_order = 0,
				bad_missing = 0,
				bad_count = 0,
				bad_member = 0;
	int			n_valid = 0;

	for (i = 0; i < n; i++)
		n_valid += !is_zero_row(x, d, i);
	CHECK(g->n_rows == n && g->n_cols == n);
	for (i = 0; i < n; i++)
	{
		int			lo = g->rowptr[i],
					hi = g->rowptr[i + 1],
					p,
					j;
		double		kth = INFINITY;
		int			expect;

		if (is_zero_row(x, d, i))
		{
			bad_count += (hi != lo);
			continue;
		}
		expect = k < n_valid - 1 ? k : n_valid - 1;
		if (thr == -INFINITY)
			bad_count += (hi - lo != expect);
		else
			bad_count += (hi - lo > expect);
		for (p = lo; p < hi; p++)
		{
			int			c = g->col[p];

			if (c == i || c < 0 || c >= n || is_zero_row(x, d, c))
			{
				bad_member++;
				continue;
			}
			if (fabs(ref_cos(x, d, i, c) - g->val[p]) > 1e-5)
				bad_val++;
			if (p > lo && g->val[p] > g->val[p - 1])
				bad_order++;
			if (g->val[p] < thr)
				bad_member++;
			if (g->val[p] < kth)
				kth = g->val[p];
		}
		/* nobody left out may beat the worst kept one (beyond rounding) */
		for (j = 0; j < n; j++)
		{
			bool		kept = false;
			double		s;

			if (j == i || is_zero_row(x, d, j))
				continue;
			for (p = lo; p < hi; p++)
				kept |= (g->col[p] == j);
			if (kept)
				continue;
			s = ref_cos(x, d, i, j);
			if ((hi - lo == expect && s > kth + 1e-5) ||
				(hi - lo < expect && s >= thr + 1e-5))
				bad_missing++;
		}
	}
	CHECK_MSG(bad_count == 0, "%d rows with the wrong count", bad_count);
	CHECK_MSG(bad_member == 0, "%d bad members", bad_member);
	CHECK_MSG(bad_val == 0, "%d wrong similarities", bad_val);
	CHECK_MSG(bad_order == 0, "%d order violations", bad_order);
	CHECK_MSG(bad_missing == 0, "%d better candidates missed", bad_missing);
}

static void
test_random(IsrfEnv *env, IsrfBackend *be)
{
	unsigned long long seed = 7;
	int			n = 300,
				d = 16,
				i;
	float	   *x = malloc(sizeof(float) * n * d);
	IsrfGroupGraphConfig cfg;
	IsrfCsr		g1,
				g2,
				g3;

	for (i = 0; i < n * d; i++)
		x[i] = unit_rand_uniform(&seed);
	/* users without features */
	for (i = 0; i < d; i++)
		x[5 * d + i] = x[77 * d + i] = x[299 * d + i] = 0.0f;

	isrf_group_graph_config_default(&cfg);
	CHECK(cfg.k == 50);
	cfg.k = 7;
	cfg.block_rows = 64;		/* several blocks, the last one short */
	CHECK(isrf_group_graph_build(env, be, x, n, d, &cfg, &g1) == ISRF_OK);
	check_against_ref(&g1, x, n, d, 7, -INFINITY);
	CHECK(g1.nnz == (n - 3) * 7);

	/* one block gives the same graph */
	cfg.block_rows = 0;
	CHECK(isrf_group_graph_build(env, be, x, n, d, &cfg, &g2) == ISRF_OK);
	CHECK(g2.nnz == g1.nnz);
	CHECK(memcmp(g1.rowptr, g2.rowptr, sizeof(int32_t) * (n + 1)) == 0);
	CHECK(memcmp(g1.col, g2.col, sizeof(int32_t) * g1.nnz) == 0);
	CHECK(unit_max_abs_diff(g1.val, g2.val, g1.nnz) < 1e-6);

	/* threshold: a prefix of each unthresholded row */
	cfg.min_similarity = 0.45f;
	cfg.block_rows = 100;
	CHECK(isrf_group_graph_build(env, be, x, n, d, &cfg, &g3) == ISRF_OK);
	check_against_ref(&g3, x, n, d, 7, 0.45f);
	{
		int			bad = 0,
					short_rows = 0;

		for (i = 0; i < n; i++)
		{
			int			len = g3.rowptr[i + 1] - g3.rowptr[i];

			short_rows += len < g1.rowptr[i + 1] - g1.rowptr[i];
			if (memcmp(g3.col + g3.rowptr[i], g1.col + g1.rowptr[i], sizeof(int32_t) * len) != 0)
				bad++;
		}
		CHECK(bad == 0);
		CHECK(short_rows > 0);	/* the threshold did bite */
	}

	/* normalisation of a real graph */
	{
		IsrfCsr		s;
		int			asym = 0,
					unsorted = 0,
					p,
					q;
		double		worst = 0;
		double	   *deg = calloc(n, sizeof(double));
		float	   *sq = malloc(sizeof(float) * n),
				   *y = malloc(sizeof(float) * n);

		CHECK(isrf_group_graph_normalize(env, &g1, &s) == ISRF_OK);
		for (i = 0; i < n; i++)
			for (p = s.rowptr[i]; p < s.rowptr[i + 1]; p++)
			{
				int			j = s.col[p];
				bool		found = false;

				if (p > s.rowptr[i] && s.col[p] <= s.col[p - 1])
					unsorted++;
				for (q = s.rowptr[j]; q < s.rowptr[j + 1]; q++)
					if (s.col[q] == i)
					{
						found = true;
						asym += (s.val[q] != s.val[p]);
					}
				asym += !found;
			}
		CHECK_MSG(asym == 0, "%d asymmetric entries", asym);
		CHECK(unsorted == 0);
		/* A's degree: recover from the knn graph directly */
		for (i = 0; i < n; i++)
		{
			deg[i] += 1.0;
			for (p = g1.rowptr[i]; p < g1.rowptr[i + 1]; p++)
			{
				int			j = g1.col[p];
				bool		back = false;
				double		v = g1.val[p] > 0 ? g1.val[p] : 0;

				for (q = g1.rowptr[j]; q < g1.rowptr[j + 1]; q++)
					if (g1.col[q] == i)
						back = true;
				/* a mutual edge is counted once from each side below */
				if (back)
				{
					double		vb = 0;

					for (q = g1.rowptr[j]; q < g1.rowptr[j + 1]; q++)
						if (g1.col[q] == i)
							vb = g1.val[q] > 0 ? g1.val[q] : 0;
					deg[i] += (v > vb ? v : vb) / 2;
					deg[j] += (v > vb ? v : vb) / 2;
				}
				else
				{
					deg[i] += v;
					deg[j] += v;
				}
			}
		}
		for (i = 0; i < n; i++)
			sq[i] = (float) sqrt(deg[i]);
		isrf_csr_spmm_ref(&s, 1, 1.0f, sq, 0.0f, y);
		for (i = 0; i < n; i++)
			if (fabs(y[i] - sq[i]) > worst)
				worst = fabs(y[i] - sq[i]);
		CHECK_MSG(worst < 1e-4, "S D^1/2 1 != D^1/2 1: %g", worst);
		/* the zero users keep exactly their self-loop, weight 1 */
		CHECK(s.rowptr[6] - s.rowptr[5] == 1 && s.col[s.rowptr[5]] == 5 &&
			  s.val[s.rowptr[5]] == 1.0f);
		isrf_csr_free(env, &s);
		free(deg);
		free(sq);
		free(y);
	}
	isrf_csr_free(env, &g1);
	isrf_csr_free(env, &g2);
	isrf_csr_free(env, &g3);
	free(x);
}

static void
test_small_cases(IsrfEnv *env, IsrfBackend *be)
{
	/* 0 points right, 1 and 2 left: every similarity of 0 is negative */
	float		x[] = {1, 0, -1, 0.1f, -1, -0.3f, 0, 0};
	IsrfGroupGraphConfig cfg;
	IsrfCsr		g;

	isrf_group_graph_config_default(&cfg);
	cfg.k = 10;					/* more than there are users */
	CHECK(isrf_group_graph_build(env, be, x, 4, 2, &cfg, &g) == ISRF_OK);
	CHECK(g.nnz == 6);
	CHECK(g.rowptr[1] - g.rowptr[0] == 2);
	/* negative neighbours are kept, best (least negative) first */
	CHECK(g.col[0] == 2 && g.col[1] == 1);
	CHECK_NEAR(g.val[0], -1 / sqrt(1.09), 1e-6);
	CHECK_NEAR(g.val[1], -1 / sqrt(1.01), 1e-6);
	CHECK(g.val[0] < 0 && g.val[1] < g.val[0]);
	CHECK(g.rowptr[4] - g.rowptr[3] == 0);	/* the zero user */
	isrf_csr_free(env, &g);

	cfg.min_similarity = 0.0f;
	CHECK(isrf_group_graph_build(env, be, x, 4, 2, &cfg, &g) == ISRF_OK);
	CHECK(g.nnz == 2);			/* only 1 <-> 2 survive */
	CHECK(g.rowptr[1] == 0 && g.col[0] == 2 && g.col[1] == 1);
	isrf_csr_free(env, &g);

	/* k = 0 and an empty input give empty graphs */
	cfg.k = 0;
	CHECK(isrf_group_graph_build(env, be, x, 4, 2, &cfg, &g) == ISRF_OK);
	CHECK(g.nnz == 0 && g.rowptr[4] == 0);
	isrf_csr_free(env, &g);
	cfg.k = 3;
	CHECK(isrf_group_graph_build(env, be, x, 0, 2, &cfg, &g) == ISRF_OK);
	CHECK(g.nnz == 0 && g.n_rows == 0);
	isrf_csr_free(env, &g);

	/* bad input is refused with a message */
	x[3] = NAN;
	CHECK(isrf_group_graph_build(env, be, x, 4, 2, &cfg, &g) == ISRF_ERR_INVALID);
	CHECK(strstr(env->errmsg, "row 1") != NULL);
	x[3] = 0.1f;
	cfg.k = -1;
	CHECK(isrf_group_graph_build(env, be, x, 4, 2, &cfg, &g) == ISRF_ERR_INVALID);
}

static void
test_normalize_exact(IsrfEnv *env)
{
	/* 0->1 (.5), 1->0 (.6), 2->0 (.8) one-sided, 3->0 (-.2) negative */
	int32_t		rowptr[] = {0, 1, 2, 3, 4};
	int32_t		col[] = {1, 0, 0, 0};
	float		val[] = {0.5f, 0.6f, 0.8f, -0.2f};
	IsrfCsr		g = {4, 4, 4, rowptr, col, val};
	IsrfCsr		s;
	double		deg[4] = {1 + 0.6 + 0.8, 1 + 0.6, 1 + 0.8, 1};
	float		dense[16] = {0};
	float		a[16] = {1, 0.6f, 0.8f, 0, 0.6f, 1, 0, 0, 0.8f, 0, 1, 0, 0, 0, 0, 1};
	int			i,
				j,
				p;
	double		worst = 0;

	CHECK(isrf_group_graph_normalize(env, &g, &s) == ISRF_OK);
	CHECK(s.nnz == 8);			/* 4 self-loops + 2 undirected edges */
	for (i = 0; i < 4; i++)
		for (p = s.rowptr[i]; p < s.rowptr[i + 1]; p++)
			dense[i * 4 + s.col[p]] = s.val[p];
	for (i = 0; i < 4; i++)
		for (j = 0; j < 4; j++)
		{
			double		e = a[i * 4 + j] / sqrt(deg[i] * deg[j]);

			if (fabs(e - dense[i * 4 + j]) > worst)
				worst = fabs(e - dense[i * 4 + j]);
		}
	CHECK_MSG(worst < 1e-6, "normalised adjacency off by %g", worst);
	isrf_csr_free(env, &s);

	col[0] = 7;
	CHECK(isrf_group_graph_normalize(env, &g, &s) == ISRF_ERR_INVALID);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;

	isrf_env_init_malloc(&env);
	if (isrf_cpu_backend_create(&env, &be) != ISRF_OK)
		return 1;
	test_random(&env, be);
	test_small_cases(&env, be);
	test_normalize_exact(&env);
	isrf_backend_close(be);
	UNIT_END("test_group_graph");
}
