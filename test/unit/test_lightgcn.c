/*
 * test_lightgcn.c
 *	  Unit tests of LightGCN: the train-only bipartite adjacency (exact
 *	  values, symmetry, D^1/2 1 eigenvector), forward propagation against a
 *	  dense double-precision reference, and backward through the adjoint
 *	  identity <F(x), y> = <x, F^T(y)> and finite differences.
 */
#include "graph/lightgcn.h"
#include "unit.h"

#include <string.h>

/* A dataset built by hand (dataset.c is not needed to test the graph). */
typedef struct TestDs
{
	IsrfDataset ds;
	int32_t		seq_ptr[64];
	int32_t		seq[512];
	int32_t		n_train[64];
	bool		evaluated[64];
} TestDs;

static void
small_dataset(TestDs *t)
{
	/* u0: 0 1 | 2 3 (valid, test); u1: 1 2 (too short, all train); u2: 3 | 0 2 */
	static const int32_t hist[] = {0, 1, 2, 3, 1, 2, 3, 0, 2};

	memset(t, 0, sizeof(*t));
	t->ds.n_users = 3;
	t->ds.n_items = 5;			/* item 4: catalogue only */
	memcpy(t->seq, hist, sizeof(hist));
	t->seq_ptr[0] = 0;
	t->seq_ptr[1] = 4;
	t->seq_ptr[2] = 6;
	t->seq_ptr[3] = 9;
	t->n_train[0] = 2;
	t->n_train[1] = 2;
	t->n_train[2] = 1;
	t->ds.seq_ptr = t->seq_ptr;
	t->ds.seq = t->seq;
	t->ds.n_train = t->n_train;
	t->ds.evaluated = t->evaluated;
}

static void
random_dataset(TestDs *t, int nu, int ni, unsigned long long *seed)
{
	int			u,
				w = 0;

	memset(t, 0, sizeof(*t));
	t->ds.n_users = nu;
	t->ds.n_items = ni;
	for (u = 0; u < nu; u++)
	{
		int			len = 1 + (int) (unit_rand_next(seed) % 7),
					j;

		t->seq_ptr[u] = w;
		for (j = 0; j < len; j++)
		{
			int32_t		it = (int32_t) (unit_rand_next(seed) % ni);
			int			q;
			bool		dup = false;

			for (q = t->seq_ptr[u]; q < w; q++)
				dup |= t->seq[q] == it;
			if (!dup)
				t->seq[w++] = it;
		}
		len = w - t->seq_ptr[u];
		t->n_train[u] = len >= 3 ? len - 2 : len;
	}
	t->seq_ptr[nu] = w;
	t->ds.seq_ptr = t->seq_ptr;
	t->ds.seq = t->seq;
	t->ds.n_train = t->n_train;
	t->ds.evaluated = t->evaluated;
}

static void
to_dense(const IsrfCsr *s, double *a)
{
	int			i,
				p;

	memset(a, 0, sizeof(double) * s->n_rows * s->n_cols);
	for (i = 0; i < s->n_rows; i++)
		for (p = s->rowptr[i]; p < s->rowptr[i + 1]; p++)
			a[i * s->n_cols + s->col[p]] += s->val[p];
}

static void
test_bipartite_exact(IsrfEnv *env)
{
	TestDs		t;
	IsrfCsr		s;
	double		a[64];
	/* node degrees: users 2,2,1; items 0..4: 1,2,1,1,0 */
	double		deg[8] = {2, 2, 1, 1, 2, 1, 1, 0};
	int			edges[][2] = {{0, 3}, {0, 4}, {1, 4}, {1, 5}, {2, 6}};
	int			i,
				j,
				e;
	double		worst = 0;

	small_dataset(&t);
	CHECK(isrf_lightgcn_bipartite(env, &t.ds, &s) == ISRF_OK);
	CHECK(s.n_rows == 8 && s.n_cols == 8 && s.nnz == 10);
	to_dense(&s, a);
	for (i = 0; i < 8; i++)
		for (j = 0; j < 8; j++)
		{
			double		e_ = 0;

			for (e = 0; e < 5; e++)
				if ((edges[e][0] == i && edges[e][1] == j) ||
					(edges[e][0] == j && edges[e][1] == i))
					e_ = 1.0 / sqrt(deg[i] * deg[j]);
			if (fabs(e_ - a[i * 8 + j]) > worst)
				worst = fabs(e_ - a[i * 8 + j]);
		}
	CHECK_MSG(worst < 1e-7, "bipartite adjacency off by %g", worst);
	/* validation and test items of u0 (items 2, 3) are not edges */
	CHECK(a[0 * 8 + 3 + 2] == 0 && a[0 * 8 + 3 + 3] == 0);
	/* the catalogue-only item has an empty row */
	CHECK(s.rowptr[8] - s.rowptr[7] == 0);
	isrf_csr_free(env, &s);
}

static void
test_bipartite_random(IsrfEnv *env, TestDs *t, IsrfCsr *s)
{
	int			n,
				i,
				p,
				q,
				asym = 0;
	double		worst = 0;
	float	   *sq,
			   *y;

	CHECK(isrf_lightgcn_bipartite(env, &t->ds, s) == ISRF_OK);
	n = s->n_rows;
	sq = malloc(sizeof(float) * n);
	y = malloc(sizeof(float) * n);
	for (i = 0; i < n; i++)
	{
		sq[i] = (float) sqrt((double) (s->rowptr[i + 1] - s->rowptr[i]));
		for (p = s->rowptr[i]; p < s->rowptr[i + 1]; p++)
		{
			int			j = s->col[p];
			bool		found = false;

			for (q = s->rowptr[j]; q < s->rowptr[j + 1]; q++)
				if (s->col[q] == i)
				{
					found = true;
					asym += s->val[q] != s->val[p];
				}
			asym += !found;
			/* bipartite: users only link to items */
			asym += (i < t->ds.n_users) == (j < t->ds.n_users);
		}
	}
	CHECK_MSG(asym == 0, "%d asymmetric or same-side entries", asym);
	/* S D^1/2 1 = D^1/2 1: each row of D^-1/2 A sums to 1 */
	isrf_csr_spmm_ref(s, 1, 1.0f, sq, 0.0f, y);
	for (i = 0; i < n; i++)
		if (fabs(y[i] - sq[i]) > worst)
			worst = fabs(y[i] - sq[i]);
	CHECK_MSG(worst < 1e-5, "row sums off by %g", worst);
	free(sq);
	free(y);
}

static double
dot(const float *a, const float *b, size_t n)
{
	double		s = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		s += (double) a[i] * b[i];
	return s;
}

static void
test_propagation(IsrfEnv *env, IsrfBackend *be, const IsrfCsr *s)
{
	int			n = s->n_rows,
				d = 5,
				layers = 3,
				i,
				j,
				l,
				r;
	size_t		len = (size_t) n * d;
	unsigned long long seed = 99;
	double	   *a = malloc(sizeof(double) * n * n),
			   *cur = malloc(sizeof(double) * len),
			   *nxt = malloc(sizeof(double) * len),
			   *ref = malloc(sizeof(double) * len);
	float	   *hx = malloc(sizeof(float) * len),
			   *hy = malloc(sizeof(float) * len),
			   *hout = malloc(sizeof(float) * len),
			   *hback = malloc(sizeof(float) * len);
	float	   *dx,
			   *dy,
			   *dout;
	IsrfDevCsr *ds;
	IsrfLightGcn g;
	double		worst = 0;

	for (i = 0; i < (int) len; i++)
	{
		hx[i] = unit_rand_uniform(&seed);
		hy[i] = unit_rand_uniform(&seed);
	}
	CHECK(be->csr_create(be, s, &ds) == ISRF_OK);
	CHECK(be->mem_alloc(be, sizeof(float) * len, (void **) &dx) == ISRF_OK);
	CHECK(be->mem_alloc(be, sizeof(float) * len, (void **) &dy) == ISRF_OK);
	CHECK(be->mem_alloc(be, sizeof(float) * len, (void **) &dout) == ISRF_OK);
	be->upload(be, dx, hx, sizeof(float) * len);
	be->upload(be, dy, hy, sizeof(float) * len);
	CHECK(isrf_lightgcn_init(env, be, ds, n, d, layers, &g) == ISRF_OK);

	/* forward vs dense reference */
	to_dense(s, a);
	for (i = 0; i < (int) len; i++)
		ref[i] = cur[i] = hx[i];
	for (l = 1; l <= layers; l++)
	{
		for (r = 0; r < n; r++)
			for (j = 0; j < d; j++)
			{
				double		acc = 0;

				for (i = 0; i < n; i++)
					acc += a[r * n + i] * cur[i * d + j];
				nxt[r * d + j] = acc;
			}
		for (i = 0; i < (int) len; i++)
		{
			cur[i] = nxt[i];
			ref[i] += cur[i];
		}
	}
	/* poison the output: forward must overwrite, not accumulate */
	for (i = 0; i < (int) len; i++)
		hout[i] = NAN;
	be->upload(be, dout, hout, sizeof(float) * len);
	CHECK(isrf_lightgcn_forward(&g, dx, dout) == ISRF_OK);
	be->download(be, hout, dout, sizeof(float) * len);
	for (i = 0; i < (int) len; i++)
	{
		double		e = fabs(ref[i] / (layers + 1) - hout[i]);

		if (!(e <= worst))
			worst = e;
	}
	CHECK_MSG(worst < 1e-5, "forward off by %g", worst);

	/* adjoint identity <F(x), y> = <x, F^T(y)> */
	CHECK(isrf_lightgcn_backward(&g, dy, dout) == ISRF_OK);
	be->download(be, hback, dout, sizeof(float) * len);
	{
		double		lhs = dot(hout, hy, len),
					rhs = dot(hx, hback, len);

		CHECK_MSG(fabs(lhs - rhs) < 1e-4 * (1 + fabs(lhs)), "<F x, y> %.8g vs <x, F^T y> %.8g", lhs, rhs);
	}

	/* finite differences of loss(x) = <F(x), y> at a few coordinates */
	{
		int			probes[] = {0, 3, (int) len / 2, (int) len - 1};
		float		h = 1e-2f;
		int			pi;
		double		fd_worst = 0;

		for (pi = 0; pi < 4; pi++)
		{
			int			c = probes[pi];
			float		keep = hx[c];
			double		lp,
						lm;

			hx[c] = keep + h;
			be->upload(be, dx, hx, sizeof(float) * len);
			isrf_lightgcn_forward(&g, dx, dout);
			be->download(be, hout, dout, sizeof(float) * len);
			lp = dot(hout, hy, len);
			hx[c] = keep - h;
			be->upload(be, dx, hx, sizeof(float) * len);
			isrf_lightgcn_forward(&g, dx, dout);
			be->download(be, hout, dout, sizeof(float) * len);
			lm = dot(hout, hy, len);
			hx[c] = keep;
			if (fabs((lp - lm) / (2 * h) - hback[c]) > fd_worst)
				fd_worst = fabs((lp - lm) / (2 * h) - hback[c]);
		}
		CHECK_MSG(fd_worst < 2e-3, "finite differences off by %g", fd_worst);
	}

	/* overlapping buffers are refused */
	CHECK(isrf_lightgcn_forward(&g, dx, dx) == ISRF_ERR_INVALID);
	CHECK(isrf_lightgcn_forward(&g, dx, dx + 1) == ISRF_ERR_INVALID);
	isrf_lightgcn_free(&g);

	/* zero layers: the identity */
	CHECK(isrf_lightgcn_init(env, be, ds, n, d, 0, &g) == ISRF_OK);
	be->upload(be, dx, hx, sizeof(float) * len);
	CHECK(isrf_lightgcn_forward(&g, dx, dout) == ISRF_OK);
	be->download(be, hout, dout, sizeof(float) * len);
	CHECK(memcmp(hout, hx, sizeof(float) * len) == 0);
	isrf_lightgcn_free(&g);
	CHECK(isrf_lightgcn_init(env, be, ds, n, d, -1, &g) == ISRF_ERR_INVALID);

	be->mem_free(be, dx);
	be->mem_free(be, dy);
	be->mem_free(be, dout);
	be->csr_destroy(be, ds);
	free(a);
	free(cur);
	free(nxt);
	free(ref);
	free(hx);
	free(hy);
	free(hout);
	free(hback);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;
	TestDs		t;
	IsrfCsr		s;
	unsigned long long seed = 5;

	isrf_env_init_malloc(&env);
	if (isrf_cpu_backend_create(&env, &be) != ISRF_OK)
		return 1;
	test_bipartite_exact(&env);
	random_dataset(&t, 40, 30, &seed);
	test_bipartite_random(&env, &t, &s);
	test_propagation(&env, be, &s);
	isrf_csr_free(&env, &s);
	isrf_backend_close(be);
	UNIT_END("test_lightgcn");
}
