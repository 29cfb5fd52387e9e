/*
 * test_pca.c
 *	  Unit tests of randomized PCA against an exact dense eigen-decomposition
 *	  of the covariance matrix computed here in double: explained variances,
 *	  projected scores (and so the subspace and the sign rule), the sparse
 *	  path with empty columns, sparse and dense paths agreeing, determinism,
 *	  k beyond the rank, empty input and argument errors.
 *
 * Tolerances: with well separated leading components, k + 10 directions and
 * 4 power iterations the sketch is exact up to float rounding, so explained
 * variances must match to 1e-3 relative and score columns to a cosine of
 * 0.9999; the sparse and dense paths see the same sketch and must agree to
 * 1e-4 of the largest score.
 */
#include "features/pca.h"
#include "unit.h"

#include <string.h>

/* Symmetric eigen-decomposition (cyclic Jacobi), values descending. */
static void
ref_eigen(double *a, int n, double *w, double *v)
{
	int			sweep,
				p,
				q,
				i;

	for (i = 0; i < n * n; i++)
		v[i] = (i % (n + 1) == 0) ? 1.0 : 0.0;
	for (sweep = 0; sweep < 100; sweep++)
	{
		double		off = 0.0;

		for (p = 0; p < n; p++)
			for (q = p + 1; q < n; q++)
				off += a[p * n + q] * a[p * n + q];
		if (off < 1e-26)
			break;
		for (p = 0; p < n; p++)
			for (q = p + 1; q < n; q++)
			{
				double		theta,
							t,
							c,
							s;

				if (a[p * n + q] == 0.0)
					continue;
				theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
				t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
				c = 1 / sqrt(t * t + 1);
				s = t * c;
				for (i = 0; i < n; i++)
				{
					double		x = a[i * n + p],
								y = a[i * n + q];

					a[i * n + p] = c * x - s * y;
					a[i * n + q] = s * x + c * y;
				}
				for (i = 0; i < n; i++)
				{
					double		x = a[p * n + i],
								y = a[q * n + i];

					a[p * n + i] = c * x - s * y;
					a[q * n + i] = s * x + c * y;
				}
				for (i = 0; i < n; i++)
				{
					double		x = v[i * n + p],
								y = v[i * n + q];

					v[i * n + p] = c * x - s * y;
					v[i * n + q] = s * x + c * y;
				}
			}
	}
	for (i = 0; i < n; i++)
		w[i] = a[i * n + i];
	for (p = 0; p < n; p++)
	{
		int			b = p;

		for (q = p + 1; q < n; q++)
			if (w[q] > w[b])
				b = q;
		if (b != p)
		{
			double		t = w[p];

			w[p] = w[b];
			w[b] = t;
			for (i = 0; i < n; i++)
			{
				t = v[i * n + p];
				v[i * n + p] = v[i * n + b];
				v[i * n + b] = t;
			}
		}
	}
}

/*
 * Exact PCA of dense x (n x m): variances ev[m] and scores s[n x k] on the
 * sign-fixed components (largest-magnitude loading positive).
 */
static void
ref_pca(const float *x, int n, int m, int k, double *ev, double *s)
{
	double	   *mu = calloc(m, sizeof(double)),
			   *c = calloc((size_t) m * m, sizeof(double)),
			   *v = calloc((size_t) m * m, sizeof(double));
	int			i,
				a,
				b,
				j;

	for (i = 0; i < n; i++)
		for (a = 0; a < m; a++)
			mu[a] += x[i * m + a] / (double) n;
	for (i = 0; i < n; i++)
		for (a = 0; a < m; a++)
			for (b = 0; b < m; b++)
				c[a * m + b] += (x[i * m + a] - mu[a]) * (x[i * m + b] - mu[b]) / (n - 1);
	ref_eigen(c, m, ev, v);
	for (j = 0; j < k && j < m; j++)
	{
		int			best = 0;

		for (a = 1; a < m; a++)
			if (fabs(v[a * m + j]) > fabs(v[best * m + j]))
				best = a;
		if (v[best * m + j] < 0)
			for (a = 0; a < m; a++)
				v[a * m + j] = -v[a * m + j];
		for (i = 0; i < n; i++)
		{
			double		sum = 0.0;

			for (a = 0; a < m; a++)
				sum += (x[i * m + a] - mu[a]) * v[a * m + j];
			s[i * k + j] = sum;
		}
	}
	free(mu);
	free(c);
	free(v);
}

/* Cosine between column j of float out and of double ref (both n x k). */
static double
col_cosine(const float *out, const double *ref, int n, int k, int j)
{
	double		d = 0,
				na = 0,
				nb = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		d += out[i * k + j] * ref[i * k + j];
		na += (double) out[i * k + j] * out[i * k + j];
		nb += ref[i * k + j] * ref[i * k + j];
	}
	return (na > 0 && nb > 0) ? d / sqrt(na * nb) : 0.0;
}

/* Low rank plus noise plus a column offset: n x m, rank r scales sc[]. */
static float *
make_lowrank(int n, int m, int r, const double *sc, double noise,
			 unsigned long long seed)
{
	float	   *x = calloc((size_t) n * m, sizeof(float));
	float	   *a = malloc(sizeof(float) * n * r),
			   *b = malloc(sizeof(float) * r * m);
	int			i,
				j,
				q;

	for (i = 0; i < n * r; i++)
		a[i] = unit_rand_uniform(&seed);
	for (i = 0; i < r * m; i++)
		b[i] = unit_rand_uniform(&seed);
	for (i = 0; i < n; i++)
		for (j = 0; j < m; j++)
		{
			double		sum = 3.0 + 0.5 * j;	/* the mean to be removed */

			for (q = 0; q < r; q++)
				sum += sc[q] * a[i * r + q] * b[q * m + j];
			x[i * m + j] = (float) (sum + noise * unit_rand_uniform(&seed));
		}
	free(a);
	free(b);
	return x;
}

/* Check out/ev against the exact PCA for the first kc components. */
static void
check_against_exact(const float *x, int n, int m, int k, int kc,
					const float *out, const float *ev, const char *what)
{
	double	   *rev = calloc(m, sizeof(double));
	double	   *rs = calloc((size_t) n * k, sizeof(double));
	int			j;

	ref_pca(x, n, m, k, rev, rs);
	for (j = 0; j < kc; j++)
	{
		double		cosv = col_cosine(out, rs, n, k, j);

		CHECK_MSG(fabs(ev[j] - rev[j]) <= 1e-3 * rev[j],
				  "%s: variance %d: %g vs exact %g", what, j, ev[j], rev[j]);
		CHECK_MSG(cosv > 0.9999, "%s: component %d cosine %g", what, j, cosv);
	}
	free(rev);
	free(rs);
}

static void
test_dense_lowrank(IsrfEnv *env, IsrfBackend *be)
{
	static const double sc[] = {10.0, 7.0, 5.0, 3.5, 2.0};
	int			n = 300,
				m = 40,
				k = 5,
				i,
				j;
	float	   *x = make_lowrank(n, m, 5, sc, 0.05, 7);
	float	   *out = malloc(sizeof(float) * n * 8),
			   *out2 = malloc(sizeof(float) * n * 8);
	float		ev[8],
				ev2[8];
	IsrfPcaConfig cfg;

	isrf_pca_config_default(&cfg);
	CHECK(cfg.k == 128 && cfg.oversample == 10 && cfg.power_iters == 4 && cfg.seed == 1);
	cfg.k = k;
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out, ev) == ISRF_OK);
	check_against_exact(x, n, m, k, k, out, ev, "dense");

	/* the scores' own variances are the reported ones, columns are centred */
	for (j = 0; j < k; j++)
	{
		double		s = 0,
					ss = 0;

		for (i = 0; i < n; i++)
		{
			s += out[i * k + j];
			ss += (double) out[i * k + j] * out[i * k + j];
		}
		CHECK_MSG(fabs(s / n) < 1e-3 * sqrt(ev[j]), "column %d mean %g", j, s / n);
		CHECK_NEAR(ss / (n - 1), ev[j], 1e-3 * ev[j]);
	}

	/* deterministic: same seed, same bits; another seed, same answer */
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out2, ev2) == ISRF_OK);
	CHECK(memcmp(out, out2, sizeof(float) * n * k) == 0 &&
		  memcmp(ev, ev2, sizeof(float) * k) == 0);
	cfg.seed = 12345;
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out2, ev2) == ISRF_OK);
	check_against_exact(x, n, m, k, k, out2, ev2, "dense seed 12345");
	CHECK(unit_max_abs_diff(out, out2, (size_t) n * k) < 1e-3 * sqrt(ev[0]));

	/* without power iterations the leading components are still close */
	cfg.power_iters = 0;
	cfg.k = 3;
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out2, ev2) == ISRF_OK);
	for (j = 0; j < 3; j++)
		CHECK_NEAR(ev2[j], ev[j], 1e-2 * ev[j]);

	/* k = 8 over rank 5 + noise: the signal components are unchanged */
	cfg.power_iters = 4;
	cfg.seed = 1;
	cfg.k = 8;
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out2, ev2) == ISRF_OK);
	check_against_exact(x, n, m, 8, 5, out2, ev2, "dense k=8");
	CHECK_MSG(ev2[5] > 0.0f && ev2[5] < 1e-2 * ev2[4], "ev5 %g ev4 %g ev0 %g", ev2[5], ev2[4], ev2[0]);
	free(x);
	free(out);
	free(out2);
}

/* Scatter dense x (n x m) into n x wide columns, column j at 7 + 9 j. */
static void
scatter_sparse(IsrfEnv *env, const float *x, int n, int m, int wide, IsrfCsr *out)
{
	int32_t    *rows = malloc(sizeof(int32_t) * n * m),
			   *cols = malloc(sizeof(int32_t) * n * m);
	int			i,
				j,
				c = 0;

	for (i = 0; i < n; i++)
		for (j = 0; j < m; j++)
		{
			rows[c] = i;
			cols[c] = 7 + 9 * j;
			c++;
		}
	CHECK(7 + 9 * (m - 1) < wide);
	CHECK(isrf_csr_from_coo(env, n, wide, (int64_t) n * m, rows, cols, x, out) == ISRF_OK);
	free(rows);
	free(cols);
}

static void
test_sparse(IsrfEnv *env, IsrfBackend *be)
{
	static const double sc[] = {6.0, 4.0, 2.5, 1.5};
	int			n = 250,
				m = 50,
				k = 4,
				i;
	float	   *x = make_lowrank(n, m, 4, sc, 0.05, 99);
	float	   *out = malloc(sizeof(float) * n * k),
			   *outd = malloc(sizeof(float) * n * k),
			   *out2 = malloc(sizeof(float) * n * k);
	float		ev[4],
				evd[4],
				ev2[4];
	double		scale = 0;
	IsrfPcaConfig cfg;
	IsrfCsr		s;

	/* a hashed-vocabulary shape: 50 used columns among 1024 */
	scatter_sparse(env, x, n, m, 1024, &s);
	isrf_pca_config_default(&cfg);
	cfg.k = k;
	CHECK(isrf_pca_sparse(env, be, &s, &cfg, out, ev) == ISRF_OK);
	check_against_exact(x, n, m, k, k, out, ev, "sparse");

	/* the dense path on the same numbers sees the same sketch */
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, outd, evd) == ISRF_OK);
	for (i = 0; i < n * k; i++)
		if (fabs(outd[i]) > scale)
			scale = fabs(outd[i]);
	CHECK_MSG(unit_max_abs_diff(out, outd, (size_t) n * k) < 1e-4 * scale,
			  "sparse vs dense %g (scale %g)", unit_max_abs_diff(out, outd, (size_t) n * k), scale);
	CHECK_MSG(unit_max_abs_diff(ev, evd, 4) < 1e-4 * evd[0], "ev %g", unit_max_abs_diff(ev, evd, 4));

	/* deterministic */
	CHECK(isrf_pca_sparse(env, be, &s, &cfg, out2, ev2) == ISRF_OK);
	CHECK(memcmp(out, out2, sizeof(float) * n * k) == 0 &&
		  memcmp(ev, ev2, sizeof(ev)) == 0);
	isrf_csr_free(env, &s);
	free(x);
	free(out);
	free(outd);
	free(out2);
}

static bool
all_zero(const float *p, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if (p[i] != 0.0f)
			return false;
	return true;
}

static void
test_rank_deficient(IsrfEnv *env, IsrfBackend *be)
{
	static const double sc[] = {3.0, 1.0};
	int			n = 30,
				m = 10,
				k = 6,
				i,
				j;
	float	   *x = make_lowrank(n, m, 2, sc, 0.0, 5);
	float	   *out = malloc(sizeof(float) * n * 10);
	float		ev[10];
	float		small[4 * 6];
	IsrfPcaConfig cfg;
	IsrfCsr		s;

	isrf_pca_config_default(&cfg);
	cfg.k = k;
	/* exact rank 2 after centering: columns 2.. are zero */
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out, ev) == ISRF_OK);
	check_against_exact(x, n, m, k, 2, out, ev, "rank 2");
	for (j = 2; j < k; j++)
	{
		CHECK_MSG(ev[j] == 0.0f, "variance %d is %g", j, ev[j]);
		for (i = 0; i < n; i++)
			if (out[i * k + j] != 0.0f)
				break;
		CHECK_MSG(i == n, "column %d row %d is %g", j, i, i < n ? out[i * k + j] : 0.0);
	}
	scatter_sparse(env, x, n, m, 200, &s);
	CHECK(isrf_pca_sparse(env, be, &s, &cfg, out, ev) == ISRF_OK);
	check_against_exact(x, n, m, k, 2, out, ev, "sparse rank 2");
	CHECK(ev[2] == 0.0f && ev[5] == 0.0f);
	isrf_csr_free(env, &s);

	/* k beyond min(n, m): 4 rows have rank 3 once centred */
	{
		unsigned long long st = 77;

		/* random, so that no two loadings tie for the sign rule */
		for (i = 0; i < 4 * 6; i++)
			small[i] = unit_rand_uniform(&st);
	}
	cfg.k = 10;
	CHECK(isrf_pca_dense(env, be, small, 4, 6, &cfg, out, ev) == ISRF_OK);
	check_against_exact(small, 4, 6, 10, 3, out, ev, "4 x 6");
	CHECK(ev[3] == 0.0f && ev[9] == 0.0f);
	for (i = 0; i < 4; i++)
		CHECK(all_zero(out + i * 10 + 3, 7));
	free(x);
	free(out);
}

static void
test_edges(IsrfEnv *env, IsrfBackend *be)
{
	IsrfPcaConfig cfg;
	IsrfCsr		s;
	float		out[3 * 4],
				ev[4],
				one[5] = {1, 2, 3, 4, 5};
	int			i;

	isrf_pca_config_default(&cfg);
	cfg.k = 4;

	/* no rows */
	CHECK(isrf_csr_alloc(env, 0, 100, 0, &s) == ISRF_OK);
	ev[0] = 1.0f;
	CHECK(isrf_pca_sparse(env, be, &s, &cfg, out, ev) == ISRF_OK && ev[0] == 0.0f);
	isrf_csr_free(env, &s);
	CHECK(isrf_pca_dense(env, be, NULL, 0, 5, &cfg, out, ev) == ISRF_OK);

	/* rows but no entries; a single row */
	CHECK(isrf_csr_alloc(env, 3, 100, 0, &s) == ISRF_OK);
	for (i = 0; i < 12; i++)
		out[i] = 1.0f;
	CHECK(isrf_pca_sparse(env, be, &s, &cfg, out, ev) == ISRF_OK);
	CHECK(all_zero(out, 12) && all_zero(ev, 4));
	isrf_csr_free(env, &s);
	CHECK(isrf_pca_dense(env, be, one, 1, 5, &cfg, out, ev) == ISRF_OK);
	CHECK(all_zero(out, 4) && all_zero(ev, 4));

	/* bad arguments */
	cfg.k = 0;
	CHECK(isrf_pca_dense(env, be, one, 1, 5, &cfg, out, ev) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env->errmsg, "k") != NULL, "%s", env->errmsg);
	cfg.k = 2;
	cfg.power_iters = -1;
	CHECK(isrf_pca_dense(env, be, one, 1, 5, &cfg, out, ev) == ISRF_ERR_INVALID);
	cfg.power_iters = 1;
	one[2] = NAN;
	CHECK(isrf_pca_dense(env, be, one, 1, 5, &cfg, out, ev) == ISRF_ERR_INVALID);
}

/* Large column means (as some embeddings have) cost no accuracy. */
static void
test_dense_offset(IsrfEnv *env, IsrfBackend *be)
{
	static const double sc[] = {5.0, 3.0, 2.0};
	int			n = 200,
				m = 30,
				k = 3,
				i;
	float	   *x = make_lowrank(n, m, 3, sc, 0.05, 11);
	float	   *out = malloc(sizeof(float) * n * k);
	float		ev[3];
	IsrfPcaConfig cfg;

	for (i = 0; i < n * m; i++)
		x[i] += 1000.0f;
	isrf_pca_config_default(&cfg);
	cfg.k = k;
	CHECK(isrf_pca_dense(env, be, x, n, m, &cfg, out, ev) == ISRF_OK);
	check_against_exact(x, n, m, k, k, out, ev, "offset 1000");
	free(x);
	free(out);
}

static bool
test_always_cancelled(void *ctx)
{
	(void) ctx;
	return true;
}

/* A cancel request stops a run and leaves the output zeroed. */
static void
test_cancel(IsrfEnv *env, IsrfBackend *be)
{
	static const double sc[] = {2.0};
	float	   *x = make_lowrank(50, 8, 1, sc, 0.1, 3);
	float		out[50 * 2],
				ev[2];
	IsrfPcaConfig cfg;

	isrf_pca_config_default(&cfg);
	cfg.k = 2;
	env->cancelled = test_always_cancelled;
	CHECK(isrf_pca_dense(env, be, x, 50, 8, &cfg, out, ev) == ISRF_ERR_CANCELLED);
	env->cancelled = NULL;
	CHECK(all_zero(out, 100) && all_zero(ev, 2));
	free(x);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;

	isrf_env_init_malloc(&env);
	if (isrf_cpu_backend_create(&env, &be) != ISRF_OK)
	{
		fprintf(stderr, "no CPU backend: %s\n", env.errmsg);
		return 1;
	}
	test_dense_lowrank(&env, be);
	test_sparse(&env, be);
	test_rank_deficient(&env, be);
	test_edges(&env, be);
	test_dense_offset(&env, be);
	test_cancel(&env, be);
	isrf_backend_close(be);
	UNIT_END("test_pca");
}
