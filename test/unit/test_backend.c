/*
 * test_backend.c
 *	  Unit tests of the CPU backend against plain references: GEMM in every
 *	  transpose combination, CSR building and sparse x dense, row-wise top-k
 *	  (ties, NaN, self exclusion, padding), axpby and row normalisation.
 */
#include "compute/backend.h"
#include "unit.h"

#include <string.h>

static void
ref_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
		 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	int			i,
				j,
				p;

	for (i = 0; i < m; i++)
		for (j = 0; j < n; j++)
		{
			double		s = 0.0;

			for (p = 0; p < k; p++)
				s += (double) (ta ? a[p * lda + i] : a[i * lda + p]) *
					(tb ? b[j * ldb + p] : b[p * ldb + j]);
			c[i * ldc + j] = (float) (alpha * s + beta * c[i * ldc + j]);
		}
}

static void
test_gemm(IsrfBackend *be)
{
	unsigned long long seed = 42;
	int			m = 37,
				n = 29,
				k = 53;
	float	   *a = malloc(sizeof(float) * m * k),
			   *b = malloc(sizeof(float) * k * n),
			   *c = malloc(sizeof(float) * m * n),
			   *r = malloc(sizeof(float) * m * n);
	int			ta,
				tb,
				i;

	for (i = 0; i < m * k; i++)
		a[i] = unit_rand_uniform(&seed);
	for (i = 0; i < k * n; i++)
		b[i] = unit_rand_uniform(&seed);
	for (ta = 0; ta < 2; ta++)
		for (tb = 0; tb < 2; tb++)
		{
			for (i = 0; i < m * n; i++)
				c[i] = r[i] = unit_rand_uniform(&seed);
			CHECK(be->gemm(be, ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n,
						   2.0f, c, n) == ISRF_OK);
			ref_gemm(ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n, 2.0f, r, n);
			CHECK_MSG(unit_max_abs_diff(c, r, (size_t) m * n) < 1e-4,
					  "gemm ta=%d tb=%d diff %g", ta, tb,
					  unit_max_abs_diff(c, r, (size_t) m * n));
		}
	CHECK(be->gemm(be, false, false, -1, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1) == ISRF_ERR_INVALID);
	free(a);
	free(b);
	free(c);
	free(r);
}

static void
test_csr(IsrfBackend *be, IsrfEnv *env)
{
	/* 3x4 with a duplicate (0,1) that must be summed, rows given unsorted */
	int32_t		rows[] = {0, 2, 0, 1, 0, 2};
	int32_t		cols[] = {3, 0, 1, 2, 1, 3};
	float		vals[] = {1, 2, 3, 4, 5, 6};
	IsrfCsr		s;
	IsrfDevCsr *ds;
	float		x[4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
	float		y[3 * 2] = {100, 100, 100, 100, 100, 100};

	CHECK(isrf_csr_from_coo(env, 3, 4, 6, rows, cols, vals, &s) == ISRF_OK);
	CHECK(s.nnz == 5);
	CHECK(s.rowptr[0] == 0 && s.rowptr[1] == 2 && s.rowptr[2] == 3 && s.rowptr[3] == 5);
	CHECK(s.col[0] == 1 && s.val[0] == 8.0f && s.col[1] == 3);
	CHECK(be->csr_create(be, &s, &ds) == ISRF_OK);
	CHECK(be->spmm(be, ds, 2, 1.0f, x, 0.5f, y) == ISRF_OK);
	/* row0 = 8*x1 + 1*x3 = (8*3+7, 8*4+8) + 50 */
	CHECK_NEAR(y[0], 24 + 7 + 50, 1e-5);
	CHECK_NEAR(y[1], 32 + 8 + 50, 1e-5);
	CHECK_NEAR(y[2], 4 * 5 + 50, 1e-5);
	CHECK_NEAR(y[4], 2 * 1 + 6 * 7 + 50, 1e-5);
	/* the columns holding an entry (all but 1 here, once its entry is zero), numbered in order */
	{
		int32_t		map[4];

		CHECK(isrf_csr_column_map(&s, map) == 4 && map[0] == 0 && map[3] == 3);
		s.val[0] = 0.0f;		/* (0,1), the only entry of column 1 */
		CHECK(isrf_csr_column_map(&s, map) == 3 && map[0] == 0 && map[1] == -1 && map[2] == 1 &&
			  map[3] == 2);
	}
	be->csr_destroy(be, ds);
	isrf_csr_free(env, &s);

	{
		int32_t		bad_r[] = {3};
		int32_t		bad_c[] = {0};

		CHECK(isrf_csr_from_coo(env, 3, 4, 1, bad_r, bad_c, NULL, &s) == ISRF_ERR_INVALID);
		CHECK(strstr(env->errmsg, "outside") != NULL);
	}
}

static void
test_topk(IsrfBackend *be)
{
	float		x[2 * 6] = {
		0.5f, 0.9f, 0.9f, NAN, 0.1f, 0.7f,
		1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f
	};
	int32_t		idx[2 * 3];
	float		val[2 * 3];
	int32_t		idx8[8];
	float		val8[8];

	CHECK(be->topk_rows(be, 2, 6, x, 6, 3, false, 0, idx, val) == ISRF_OK);
	/* ties at 0.9 go to the lower column; NaN never wins */
	CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 5);
	CHECK(val[0] == 0.9f && val[2] == 0.7f);
	CHECK(idx[3] == 5 && idx[4] == 4 && idx[5] == 3);

	/* a block starting at global row 4 excludes column 4 + r */
	CHECK(be->topk_rows(be, 2, 6, x, 6, 3, true, 4, idx, val) == ISRF_OK);
	CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 5);
	CHECK(idx[3] == 4 && idx[4] == 3 && idx[5] == 2);

	/* more k than candidates pads with -1 / -inf */
	CHECK(be->topk_rows(be, 1, 6, x, 6, 8, false, 0, idx8, val8) == ISRF_OK);
	CHECK(idx8[3] == 0 && idx8[4] == 4 && idx8[5] == -1 && isinf(val8[7]) && val8[7] < 0);
}

static void
test_elementwise(IsrfBackend *be)
{
	float		x[6] = {3, 4, 0, 0, 0, 0};
	float		y[6] = {1, 1, 1, 1, 1, 1};

	CHECK(be->axpby(be, 6, 2.0f, x, 3.0f, y) == ISRF_OK);
	CHECK(y[0] == 9.0f && y[1] == 11.0f && y[5] == 3.0f);
	CHECK(be->row_normalize(be, 2, 3, x) == ISRF_OK);
	CHECK_NEAR(x[0], 0.6, 1e-6);
	CHECK_NEAR(x[1], 0.8, 1e-6);
	CHECK(x[3] == 0.0f && x[4] == 0.0f);
}

static void
test_memory(IsrfBackend *be)
{
	void	   *p,
			   *q;
	float		h[4] = {1, 2, 3, 4},
				back[4];

	CHECK(be->mem_alloc(be, 16, &p) == ISRF_OK);
	CHECK(((uintptr_t) p % 64) == 0);
	CHECK(be->mem_alloc(be, 1 << 20, &q) == ISRF_OK);
	CHECK(be->upload(be, p, h, 16) == ISRF_OK);
	CHECK(be->download(be, back, p, 16) == ISRF_OK);
	CHECK(memcmp(h, back, 16) == 0);
	be->mem_free(be, p);
	/* q is deliberately left for destroy to release */
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;
	IsrfDevicePref pref;
	char		desc[256];

	isrf_env_init_malloc(&env);
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CPU, NULL, &be) == ISRF_OK);
	CHECK(be->describe(be, desc, sizeof(desc)) == ISRF_OK);
	printf("backend: %s\n", desc);
	test_gemm(be);
	test_csr(be, &env);
	test_topk(be);
	test_elementwise(be);
	test_memory(be);
	isrf_backend_close(be);

	/* auto with no CUDA library falls back to the CPU quietly */
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_AUTO, "/nonexistent/isrf_cuda.so", &be) == ISRF_OK);
	CHECK(strcmp(be->name, "cpu") == 0);
	isrf_backend_close(be);
	/* forcing CUDA without it is a clear error */
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CUDA, "/nonexistent/isrf_cuda.so", &be) == ISRF_ERR_UNAVAILABLE);
	CHECK(strstr(env.errmsg, "could not load the CUDA backend") != NULL);

	CHECK(isrf_device_pref_parse("cuda", &pref) && pref == ISRF_DEVICE_CUDA);
	CHECK(!isrf_device_pref_parse("gpu", &pref));
	UNIT_END("test_backend");
}
