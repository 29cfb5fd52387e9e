/*
 * test_parity.c
 *	  GPU-vs-CPU parity of the compute backends: every operation of the CUDA
 *	  backend is compared with the CPU backend (the reference) on random data
 *	  of several shapes, CUDA runs are checked to be bitwise repeatable, error
 *	  paths must return their codes, and a second create/destroy cycle must
 *	  work after a backend was destroyed holding memory.  Timings of the heavy
 *	  operations on both backends are printed for the notes.
 *
 * The CUDA library is $ISRF_CUDA_LIBRARY or ISRF_BUILD_DIR/isrf_cuda.so;
 * $ISRF_PARITY_GEMM_N changes the size of the timed GEMM (default 4096).
 * Where it cannot be opened (no library, no driver, no device) the test
 * prints "test_parity: SKIP: <reason>" and passes with nothing counted.
 *
 * Tolerances (float32 data, double references are not needed: the CPU
 * backend is the reference):
 *	gemm	|gpu - cpu| <= 1e-5 * sqrt(k) * (|alpha| sum_p |a_ip b_pj| + |beta c_ij|)
 *	spmm	|gpu - cpu| <= 1e-5 * sqrt(row nnz + 1) * (sum |alpha s x| + |beta y|)
 *	axpby	|gpu - cpu| <= 1e-6 * (|alpha x| + |beta y|)  (bitwise in practice)
 *	row_normalize  |gpu - cpu| <= 1e-6
 *	topk_rows	exact: same indices, bitwise same values
 */
#define PARITY_NAME "test_parity"
#include "parity.h"

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

static unsigned long long seed = 20260101ULL;

/* ---- helpers ---------------------------------------------------------- */

static float *
rand_floats(size_t n)
{
	float	   *p = xmalloc(sizeof(float) * n);
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = unit_rand_uniform(&seed);
	return p;
}

static double
elapsed_since(double t0)
{
	return isrf_now() - t0;
}

/* ---- gemm ------------------------------------------------------------- */

/* Run one gemm on a backend from host data; returns the host result. */
static float *
run_gemm(IsrfBackend *b, bool ta, bool tb, int m, int n, int k, float alpha,
		 const float *a, int lda, const float *bm, int ldb, float beta,
		 const float *c, int ldc, size_t a_len, size_t b_len, size_t c_len,
		 IsrfStatus *st)
{
	float	   *da = to_backend(b, a, sizeof(float) * a_len);
	float	   *db = to_backend(b, bm, sizeof(float) * b_len);
	float	   *dc = to_backend(b, c, sizeof(float) * c_len);
	float	   *out;

	*st = b->gemm(b, ta, tb, m, n, k, alpha, da, lda, db, ldb, beta, dc, ldc);
	if (*st == ISRF_OK)
		*st = b->sync(b);
	out = from_backend(b, dc, sizeof(float) * c_len);
	b->mem_free(b, da);
	b->mem_free(b, db);
	b->mem_free(b, dc);
	return out;
}

static void
check_gemm_case(bool ta, bool tb, int m, int n, int k, float alpha, float beta,
				int pad)
{
	/* BLAS wants leading dimensions of at least 1 even when k is 0 */
	int			lda = (ta ? m : k) + pad > 0 ? (ta ? m : k) + pad : 1,
				ldb = (tb ? k : n) + pad > 0 ? (tb ? k : n) + pad : 1,
				ldc = n + pad;
	size_t		a_len = (size_t) (ta ? k : m) * lda,
				b_len = (size_t) (tb ? n : k) * ldb,
				c_len = (size_t) m * ldc;
	float	   *a = rand_floats(a_len),
			   *bm = rand_floats(b_len),
			   *c = rand_floats(c_len);
	float	   *rc,
			   *rg,
			   *rg2;
	IsrfStatus	sc,
				sg,
				sg2;
	double		worst = 0.0;
	int			bad = 0,
				i,
				j,
				p;

	rc = run_gemm(cpu, ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc,
				  a_len, b_len, c_len, &sc);
	rg = run_gemm(gpu, ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc,
				  a_len, b_len, c_len, &sg);
	rg2 = run_gemm(gpu, ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc,
				   a_len, b_len, c_len, &sg2);
	CHECK_MSG(sc == ISRF_OK && sg == ISRF_OK && sg2 == ISRF_OK,
			  "gemm %dx%dx%d status cpu %d gpu %d: %s", m, n, k, sc, sg, env.errmsg);
	for (i = 0; i < m; i++)
		for (j = 0; j < n; j++)
		{
			double		scale = fabs((double) beta * c[(size_t) i * ldc + j]);
			double		d,
						tol;

			for (p = 0; p < k; p++)
			{
				double		av = ta ? a[(size_t) p * lda + i] : a[(size_t) i * lda + p];
				double		bv = tb ? bm[(size_t) j * ldb + p] : bm[(size_t) p * ldb + j];

				scale += fabs(alpha * av * bv);
			}
			d = fabs((double) rg[(size_t) i * ldc + j] - rc[(size_t) i * ldc + j]);
			tol = 1e-5 * sqrt((double) (k > 1 ? k : 1)) * scale + 1e-30;
			if (!(d <= tol))
				bad++;
			if (d / (scale + 1e-30) > worst)
				worst = d / (scale + 1e-30);
		}
	CHECK_MSG(bad == 0, "gemm ta=%d tb=%d %dx%dx%d pad %d: %d elements out of tolerance, "
			  "worst relative %g", ta, tb, m, n, k, pad, bad, worst);
	/* the padding columns of C must not be touched */
	for (i = 0; i < m; i++)
		for (j = n; j < ldc; j++)
			if (rg[(size_t) i * ldc + j] != c[(size_t) i * ldc + j])
				bad = -1;
	CHECK_MSG(bad != -1, "gemm %dx%dx%d wrote outside the n columns of C", m, n, k);
	CHECK_MSG(memcmp(rg, rg2, sizeof(float) * c_len) == 0,
			  "gemm %dx%dx%d: two CUDA runs differ", m, n, k);
	free(a);
	free(bm);
	free(c);
	free(rc);
	free(rg);
	free(rg2);
}

static void
test_gemm(void)
{
	static const int shapes[][3] = {
		{1, 1, 1}, {37, 29, 53}, {64, 64, 64}, {129, 3, 257}, {5, 300, 2},
		{255, 257, 33}, {0, 5, 7}, {5, 0, 7}, {7, 5, 0}
	};
	size_t		s;
	int			ta,
				tb;

	for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (ta = 0; ta < 2; ta++)
			for (tb = 0; tb < 2; tb++)
				check_gemm_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
								0.75f, (s % 2) ? 0.0f : -1.5f, (int) (s % 3));
	/* alpha = 0 leaves beta*C */
	check_gemm_case(false, false, 17, 19, 23, 0.0f, 2.0f, 1);
}

/* ---- spmm ------------------------------------------------------------- */

/* Random n_rows x n_cols CSR; every third row is empty when sparse_rows. */
static void
make_csr(int n_rows, int n_cols, int per_row, bool empty_rows, IsrfCsr *out)
{
	int64_t		cap = (int64_t) n_rows * per_row,
				n = 0;
	int32_t    *rows = xmalloc(sizeof(int32_t) * (size_t) (cap ? cap : 1));
	int32_t    *cols = xmalloc(sizeof(int32_t) * (size_t) (cap ? cap : 1));
	float	   *vals = xmalloc(sizeof(float) * (size_t) (cap ? cap : 1));
	int			r,
				e;

	for (r = 0; r < n_rows; r++)
	{
		if (empty_rows && r % 3 == 1)
			continue;
		for (e = 0; e < per_row && n_cols > 0; e++)
		{
			rows[n] = r;
			cols[n] = (int32_t) (unit_rand_next(&seed) % (unsigned) n_cols);
			vals[n] = unit_rand_uniform(&seed);
			n++;
		}
	}
	if (isrf_csr_from_coo(&env, n_rows, n_cols, n, rows, cols, vals, out) != ISRF_OK)
	{
		fprintf(stderr, "test_parity: isrf_csr_from_coo: %s\n", env.errmsg);
		exit(2);
	}
	free(rows);
	free(cols);
	free(vals);
}

static float *
run_spmm(IsrfBackend *b, const IsrfCsr *s, int d, float alpha, const float *x,
		 float beta, const float *y, IsrfStatus *st, double *secs)
{
	IsrfDevCsr *ds = NULL;
	size_t		xl = (size_t) s->n_cols * d,
				yl = (size_t) s->n_rows * d;
	float	   *dx = to_backend(b, x, sizeof(float) * xl);
	float	   *dy = to_backend(b, y, sizeof(float) * yl);
	float	   *out;
	double		t0;

	*st = b->csr_create(b, s, &ds);
	if (*st == ISRF_OK && secs)
	{
		/* when timing, a first call sizes the cached buffer (use beta = 0) */
		*st = b->spmm(b, ds, d, alpha, dx, beta, dy);
		if (*st == ISRF_OK)
			*st = b->sync(b);
	}
	t0 = isrf_now();
	if (*st == ISRF_OK)
		*st = b->spmm(b, ds, d, alpha, dx, beta, dy);
	if (*st == ISRF_OK)
		*st = b->sync(b);
	if (secs)
		*secs = elapsed_since(t0);
	out = from_backend(b, dy, sizeof(float) * yl);
	if (ds)
		b->csr_destroy(b, ds);
	b->mem_free(b, dx);
	b->mem_free(b, dy);
	return out;
}

static void
check_spmm_case(int n_rows, int n_cols, int per_row, bool empty_rows, int d,
				float alpha, float beta, bool nan_y)
{
	IsrfCsr		s;
	float	   *x,
			   *y,
			   *rc,
			   *rg,
			   *rg2;
	IsrfStatus	sc,
				sg,
				sg2;
	int			bad = 0,
				r,
				j;
	int32_t		p;

	make_csr(n_rows, n_cols, per_row, empty_rows, &s);
	x = rand_floats((size_t) n_cols * d);
	y = rand_floats((size_t) n_rows * d);
	if (nan_y && (size_t) n_rows * d > 0)
		y[0] = NAN;				/* beta = 0 must not propagate it */
	rc = run_spmm(cpu, &s, d, alpha, x, beta, y, &sc, NULL);
	rg = run_spmm(gpu, &s, d, alpha, x, beta, y, &sg, NULL);
	rg2 = run_spmm(gpu, &s, d, alpha, x, beta, y, &sg2, NULL);
	CHECK_MSG(sc == ISRF_OK && sg == ISRF_OK && sg2 == ISRF_OK,
			  "spmm %dx%d d=%d status cpu %d gpu %d: %s", n_rows, n_cols, d, sc, sg, env.errmsg);
	for (r = 0; r < n_rows; r++)
		for (j = 0; j < d; j++)
		{
			double		scale = (beta == 0.0f) ? 0.0 : fabs((double) beta * y[(size_t) r * d + j]);
			double		dd;
			int32_t		len = s.rowptr[r + 1] - s.rowptr[r];

			for (p = s.rowptr[r]; p < s.rowptr[r + 1]; p++)
				scale += fabs((double) alpha * s.val[p] * x[(size_t) s.col[p] * d + j]);
			dd = fabs((double) rg[(size_t) r * d + j] - rc[(size_t) r * d + j]);
			if (!(dd <= 1e-5 * sqrt((double) len + 1.0) * scale + 1e-30))
				bad++;
		}
	CHECK_MSG(bad == 0, "spmm %dx%d nnz %d d=%d alpha %g beta %g: %d elements out of tolerance",
			  n_rows, n_cols, s.nnz, d, alpha, beta, bad);
	CHECK_MSG(memcmp(rg, rg2, sizeof(float) * (size_t) n_rows * d) == 0,
			  "spmm %dx%d d=%d: two CUDA runs differ", n_rows, n_cols, d);
	isrf_csr_free(&env, &s);
	free(x);
	free(y);
	free(rc);
	free(rg);
	free(rg2);
}

static void
test_spmm(void)
{
	check_spmm_case(5, 7, 3, true, 4, 1.0f, 0.0f, true);
	check_spmm_case(5, 7, 3, true, 4, 0.5f, 2.0f, false);
	check_spmm_case(0, 7, 3, false, 4, 1.0f, 0.0f, false);		/* no rows */
	check_spmm_case(6, 9, 0, false, 5, 1.0f, 0.5f, false);		/* no entries */
	check_spmm_case(6, 9, 0, false, 5, 1.0f, 0.0f, true);
	check_spmm_case(40, 30, 4, true, 0, 1.0f, 0.0f, false);	/* d = 0 */
	check_spmm_case(1000, 800, 7, true, 1, -1.0f, 1.0f, false);
	check_spmm_case(1000, 800, 7, true, 33, 1.0f, 0.0f, false);
	check_spmm_case(3001, 2003, 12, false, 64, 0.25f, -0.5f, false);
	check_spmm_case(257, 100000, 40, true, 65, 1.0f, 1.0f, false);
}

/* ---- top-k ------------------------------------------------------------ */

static float *
topk_data(int m, int n, int ld, int levels)
{
	float	   *x = xmalloc(sizeof(float) * ((size_t) m * ld + 1));
	size_t		i;

	for (i = 0; i < (size_t) m * ld; i++)
	{
		unsigned long long u = unit_rand_next(&seed);

		if (levels > 0)			/* few distinct values: many ties */
			x[i] = (float) (int) (u % (unsigned) levels) - levels / 2;
		else
			x[i] = unit_rand_uniform(&seed);
		switch (u >> 58)
		{
			case 0:
				x[i] = NAN;
				break;
			case 1:
				x[i] = -0.0f;
				break;
			case 2:
				x[i] = 0.0f;
				break;
			case 3:
				x[i] = -INFINITY;
				break;
			case 4:
				x[i] = INFINITY;
				break;
			default:
				break;
		}
		if ((int) (i % ld) >= n)
			x[i] = 1e30f;		/* padding past n must never be picked */
	}
	return x;
}

static IsrfStatus
run_topk(IsrfBackend *b, int m, int n, const float *x, int ld, int k,
		 bool excl, int64_t off, int32_t **idx, float **val, double *secs)
{
	size_t		xl = (size_t) m * ld;
	float	   *dx = to_backend(b, x, sizeof(float) * xl);
	int32_t    *di = NULL;
	float	   *dv = NULL;
	IsrfStatus	st;
	double		t0;

	if (b->mem_alloc(b, sizeof(int32_t) * (size_t) m * k, (void **) &di) != ISRF_OK ||
		b->mem_alloc(b, sizeof(float) * (size_t) m * k, (void **) &dv) != ISRF_OK)
	{
		fprintf(stderr, "test_parity: topk alloc: %s\n", env.errmsg);
		exit(2);
	}
	t0 = isrf_now();
	st = b->topk_rows(b, m, n, dx, ld, k, excl, off, di, dv);
	if (st == ISRF_OK)
		st = b->sync(b);
	if (secs)
		*secs = elapsed_since(t0);
	*idx = from_backend(b, di, sizeof(int32_t) * (size_t) m * k);
	*val = from_backend(b, dv, sizeof(float) * (size_t) m * k);
	b->mem_free(b, dx);
	b->mem_free(b, di);
	b->mem_free(b, dv);
	return st;
}

static void
check_topk_case(int m, int n, int pad, int k, bool excl, int64_t off, int levels)
{
	int			ld = n + pad;
	float	   *x = topk_data(m, n, ld, levels);
	int32_t    *ic,
			   *ig,
			   *ig2;
	float	   *vc,
			   *vg,
			   *vg2;
	IsrfStatus	sc,
				sg,
				sg2;
	size_t		mk = (size_t) m * k,
				i,
				first_bad = SIZE_MAX;

	sc = run_topk(cpu, m, n, x, ld, k, excl, off, &ic, &vc, NULL);
	sg = run_topk(gpu, m, n, x, ld, k, excl, off, &ig, &vg, NULL);
	sg2 = run_topk(gpu, m, n, x, ld, k, excl, off, &ig2, &vg2, NULL);
	CHECK_MSG(sc == ISRF_OK && sg == ISRF_OK && sg2 == ISRF_OK,
			  "topk m=%d n=%d k=%d status cpu %d gpu %d: %s", m, n, k, sc, sg, env.errmsg);
	for (i = 0; i < mk && first_bad == SIZE_MAX; i++)
		if (ic[i] != ig[i] || memcmp(&vc[i], &vg[i], sizeof(float)) != 0)
			first_bad = i;
	CHECK_MSG(first_bad == SIZE_MAX,
			  "topk m=%d n=%d ld=%d k=%d excl=%d off=%lld levels=%d: first difference "
			  "at row %zu rank %zu: cpu (%d, %g) gpu (%d, %g)",
			  m, n, ld, k, excl, (long long) off, levels,
			  first_bad / (k ? k : 1), first_bad % (k ? k : 1),
			  first_bad < mk ? ic[first_bad] : 0, first_bad < mk ? vc[first_bad] : 0.0,
			  first_bad < mk ? ig[first_bad] : 0, first_bad < mk ? vg[first_bad] : 0.0);
	CHECK_MSG(memcmp(ig, ig2, sizeof(int32_t) * mk) == 0 &&
			  memcmp(vg, vg2, sizeof(float) * mk) == 0,
			  "topk m=%d n=%d k=%d: two CUDA runs differ", m, n, k);
	free(x);
	free(ic);
	free(ig);
	free(ig2);
	free(vc);
	free(vg);
	free(vg2);
}

static void
test_topk(void)
{
	check_topk_case(3, 5, 0, 8, false, 0, 0);		/* k > n: padding */
	check_topk_case(4, 6, 2, 3, true, 0, 3);
	check_topk_case(7, 50, 3, 10, true, 100, 4);	/* block of global rows */
	check_topk_case(7, 50, 0, 10, true, -3, 0);
	check_topk_case(1, 1, 0, 1, false, 0, 0);
	check_topk_case(0, 10, 0, 5, false, 0, 0);		/* m = 0 */
	check_topk_case(5, 0, 0, 4, false, 0, 0);		/* n = 0 */
	check_topk_case(5, 10, 0, 0, false, 0, 0);		/* k = 0 */
	check_topk_case(64, 1000, 1, 20, true, 0, 0);
	check_topk_case(64, 1000, 1, 20, true, 0, 5);	/* heavy ties */
	check_topk_case(33, 4097, 0, 100, false, 0, 2);
	check_topk_case(16, 50000, 0, 1024, true, 5, 0);
	check_topk_case(8, 3000, 0, 1000, false, 0, 40);
	check_topk_case(4, 2000, 0, 3000, true, 0, 0);	/* k > n, large k */
	check_topk_case(2, 1000003, 0, 100, true, 0, 0);	/* long rows */
	check_topk_case(2, 1000003, 0, 64, false, 0, 7);
}

/* ---- element-wise ----------------------------------------------------- */

static void
check_axpby_case(size_t n, float alpha, float beta)
{
	float	   *x = rand_floats(n),
			   *y = rand_floats(n);
	float	   *res[3];
	IsrfBackend *bs[3] = {cpu, gpu, gpu};
	int			bad = 0,
				t;
	size_t		i;

	if (beta == 0.0f && n > 0)
		y[n / 2] = NAN;			/* ignored when beta == 0, as on the CPU */
	for (t = 0; t < 3; t++)
	{
		float	   *dx = to_backend(bs[t], x, sizeof(float) * n);
		float	   *dy = to_backend(bs[t], y, sizeof(float) * n);
		IsrfStatus	st = bs[t]->axpby(bs[t], n, alpha, dx, beta, dy);

		CHECK_MSG(st == ISRF_OK, "axpby on %s: %s", bs[t]->name, env.errmsg);
		res[t] = from_backend(bs[t], dy, sizeof(float) * n);
		bs[t]->mem_free(bs[t], dx);
		bs[t]->mem_free(bs[t], dy);
	}
	for (i = 0; i < n; i++)
	{
		double		tol = 1e-6 * (fabs((double) alpha * x[i]) +
								  (beta == 0.0f ? 0.0 : fabs((double) beta * y[i])));

		if (!(fabs((double) res[1][i] - res[0][i]) <= tol))
			bad++;
	}
	CHECK_MSG(bad == 0, "axpby n=%zu alpha %g beta %g: %d out of tolerance", n, alpha, beta, bad);
	CHECK_MSG(memcmp(res[1], res[2], sizeof(float) * n) == 0, "axpby: two CUDA runs differ");
	free(x);
	free(y);
	for (t = 0; t < 3; t++)
		free(res[t]);
}

static void
check_normalize_case(int m, int d)
{
	float	   *x = rand_floats((size_t) m * d);
	float	   *res[3];
	IsrfBackend *bs[3] = {cpu, gpu, gpu};
	int			r,
				t;

	for (r = 0; r < m; r += 5)	/* zero rows stay zero */
		memset(x + (size_t) r * d, 0, sizeof(float) * d);
	for (t = 0; t < 3; t++)
	{
		float	   *dx = to_backend(bs[t], x, sizeof(float) * m * d);
		IsrfStatus	st = bs[t]->row_normalize(bs[t], m, d, dx);

		CHECK_MSG(st == ISRF_OK, "row_normalize on %s: %s", bs[t]->name, env.errmsg);
		res[t] = from_backend(bs[t], dx, sizeof(float) * m * d);
		bs[t]->mem_free(bs[t], dx);
	}
	CHECK_MSG(unit_max_abs_diff(res[0], res[1], (size_t) m * d) <= 1e-6,
			  "row_normalize %dx%d: diff %g", m, d,
			  unit_max_abs_diff(res[0], res[1], (size_t) m * d));
	CHECK_MSG(memcmp(res[1], res[2], sizeof(float) * m * d) == 0,
			  "row_normalize: two CUDA runs differ");
	free(x);
	for (t = 0; t < 3; t++)
		free(res[t]);
}

static void
test_elementwise(void)
{
	check_axpby_case(0, 1.0f, 1.0f);
	check_axpby_case(1, 2.0f, 3.0f);
	check_axpby_case(1000003, 0.3f, -1.7f);
	check_axpby_case(4097, -2.5f, 0.0f);
	check_normalize_case(0, 8);
	check_normalize_case(7, 0);
	check_normalize_case(1000, 64);
	check_normalize_case(13, 33);
	check_normalize_case(3, 100000);
}

/* ---- memory, errors, life cycle ---------------------------------------- */

static void
test_memory_and_errors(const char *lib)
{
	void	   *p = NULL;
	unsigned char *back;
	size_t		i;
	bool		zero = true;
	float		dummy[4] = {0};
	IsrfDevCsr *ds = NULL;
	IsrfCsr		s;

	/* mem_alloc zero-fills and is aligned at least like the CPU backend */
	CHECK(gpu->mem_alloc(gpu, 1 << 20, &p) == ISRF_OK);
	CHECK(((uintptr_t) p % 64) == 0);
	back = from_backend(gpu, p, 1 << 20);
	for (i = 0; i < (1 << 20); i++)
		if (back[i] != 0)
			zero = false;
	CHECK_MSG(zero, "CUDA mem_alloc did not zero-fill");
	free(back);
	gpu->mem_free(gpu, p);
	gpu->mem_free(gpu, NULL);

	/* bad arguments are ISRF_ERR_INVALID with a message, nothing launched */
	env.errmsg[0] = '\0';
	CHECK(gpu->gemm(gpu, false, false, -1, 2, 2, 1.0f, dummy, 2, dummy, 2, 0.0f, dummy, 2) == ISRF_ERR_INVALID);
	CHECK(strstr(env.errmsg, "gemm") != NULL);
	CHECK(gpu->gemm(gpu, false, false, 2, 2, 2, 1.0f, dummy, 1, dummy, 2, 0.0f, dummy, 2) == ISRF_ERR_INVALID);
	CHECK(gpu->topk_rows(gpu, 2, 4, dummy, 3, 1, false, 0, NULL, NULL) == ISRF_ERR_INVALID);
	CHECK(gpu->topk_rows(gpu, 1, 4, dummy, 4, (1 << 20) + 1, false, 0, NULL, NULL) == ISRF_ERR_INVALID);
	CHECK(strstr(env.errmsg, "k=") != NULL);
	CHECK(gpu->row_normalize(gpu, -1, 4, dummy) == ISRF_ERR_INVALID);
	{
		int32_t		rows[] = {0, 1};
		int32_t		cols[] = {0, 2};

		CHECK(isrf_csr_from_coo(&env, 2, 3, 2, rows, cols, NULL, &s) == ISRF_OK);
		s.col[1] = 7;			/* corrupt it: the backend must refuse */
		CHECK(gpu->csr_create(gpu, &s, &ds) == ISRF_ERR_INVALID);
		CHECK(strstr(env.errmsg, "column 7") != NULL);
		s.col[1] = 2;
		CHECK(gpu->csr_create(gpu, &s, &ds) == ISRF_OK);
		CHECK(gpu->spmm(gpu, ds, -1, 1.0f, dummy, 0.0f, dummy) == ISRF_ERR_INVALID);
		isrf_csr_free(&env, &s);
	}

	/* a wrong ABI is refused as unavailable */
	{
		void	   *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
		IsrfCudaEntry entry = h ? (IsrfCudaEntry) dlsym(h, ISRF_CUDA_ENTRY) : NULL;
		IsrfBackend *other = NULL;

		CHECK(entry != NULL);
		if (entry)
		{
			CHECK(entry(&env, ISRF_BACKEND_ABI + 1, &other) == ISRF_ERR_UNAVAILABLE);
			CHECK(other == NULL && strstr(env.errmsg, "ABI") != NULL);
		}
	}

	/* leave memory and a sparse matrix behind: destroy must release them */
	CHECK(gpu->mem_alloc(gpu, 64 << 20, &p) == ISRF_OK);
	CHECK(gpu->mem_alloc(gpu, 123, &p) == ISRF_OK);
	isrf_backend_close(gpu);
	gpu = NULL;
}

static void
test_second_cycle(const char *lib)
{
	int			cycle;

	for (cycle = 0; cycle < 2; cycle++)
	{
		IsrfBackend *b = NULL;
		IsrfStatus	st = isrf_backend_open(&env, ISRF_DEVICE_CUDA, lib, &b);
		float		x[6] = {3, 4, 0, 0, 1, 0};
		float	   *dx,
				   *back;

		CHECK_MSG(st == ISRF_OK, "re-opening the CUDA backend (cycle %d): %s", cycle, env.errmsg);
		if (st != ISRF_OK)
			return;
		dx = to_backend(b, x, sizeof(x));
		CHECK(b->row_normalize(b, 3, 2, dx) == ISRF_OK);
		back = from_backend(b, dx, sizeof(x));
		CHECK_NEAR(back[0], 0.6, 1e-6);
		CHECK_NEAR(back[1], 0.8, 1e-6);
		CHECK(back[2] == 0.0f && back[4] == 1.0f);
		free(back);
		isrf_backend_close(b);
	}
	/* the main backend is used for the timings below */
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CUDA, lib, &gpu) == ISRF_OK);
}

/* ---- timings ---------------------------------------------------------- */

static double
time_gemm(IsrfBackend *b, int nn, const float *a, float **result)
{
	size_t		len = (size_t) nn * nn;
	float	   *da = to_backend(b, a, sizeof(float) * len);
	float	   *db = to_backend(b, a, sizeof(float) * len);
	float	   *dc = NULL;
	double		t0,
				secs;

	CHECK(b->mem_alloc(b, sizeof(float) * len, (void **) &dc) == ISRF_OK);
	/* warm-up on the GPU: library initialisation and kernel selection */
	if (b == gpu)
	{
		CHECK(b->gemm(b, false, false, nn, nn, nn, 1.0f, da, nn, db, nn, 0.0f, dc, nn) == ISRF_OK);
		CHECK(b->sync(b) == ISRF_OK);
	}
	t0 = isrf_now();
	CHECK(b->gemm(b, false, true, nn, nn, nn, 1.0f, da, nn, db, nn, 0.0f, dc, nn) == ISRF_OK);
	CHECK(b->sync(b) == ISRF_OK);
	secs = elapsed_since(t0);
	*result = from_backend(b, dc, sizeof(float) * len);
	b->mem_free(b, da);
	b->mem_free(b, db);
	b->mem_free(b, dc);
	return secs;
}

static void
timings(void)
{
	const char *env_n = getenv("ISRF_PARITY_GEMM_N");	/* default 4096 */
	int			nn = env_n ? atoi(env_n) : 4096;
	float	   *gc,
			   *gg;
	double		tc,
				tg,
				num = 0,
				den = 0;
	size_t		i;

	float	   *a;

	if (nn < 1)
		nn = 4096;
	a = rand_floats((size_t) nn * nn);
	tc = time_gemm(cpu, nn, a, &gc);
	tg = time_gemm(gpu, nn, a, &gg);
	free(a);
	for (i = 0; i < (size_t) nn * nn; i++)
	{
		num += ((double) gc[i] - gg[i]) * ((double) gc[i] - gg[i]);
		den += (double) gc[i] * gc[i];
	}
	/* Frobenius relative error, the same 1e-5*sqrt(k) budget */
	CHECK_MSG(sqrt(num / den) <= 1e-5 * sqrt((double) nn),
			  "gemm %d^3 relative Frobenius error %g", nn, sqrt(num / den));
	printf("timing: gemm %d^3 (A*B^T): cpu %.3f s (%.1f GFLOP/s), cuda %.4f s (%.1f GFLOP/s)\n",
		   nn, tc, 2.0 * nn * nn * nn / tc / 1e9, tg, 2.0 * nn * nn * nn / tg / 1e9);
	free(gc);
	free(gg);

	{
		IsrfCsr		s;
		int			d = 64;
		float	   *x,
				   *y,
				   *rc,
				   *rg;
		IsrfStatus	st;
		double		sc,
					sg;

		make_csr(200000, 100000, 25, false, &s);
		x = rand_floats((size_t) s.n_cols * d);
		y = rand_floats((size_t) s.n_rows * d);
		rc = run_spmm(cpu, &s, d, 1.0f, x, 0.0f, y, &st, &sc);
		CHECK(st == ISRF_OK);
		rg = run_spmm(gpu, &s, d, 1.0f, x, 0.0f, y, &st, &sg);
		CHECK(st == ISRF_OK);
		CHECK_MSG(unit_max_abs_diff(rc, rg, (size_t) s.n_rows * d) <= 1e-4,
				  "spmm timing case: diff %g", unit_max_abs_diff(rc, rg, (size_t) s.n_rows * d));
		printf("timing: spmm %dx%d nnz %d d=%d: cpu %.4f s, cuda %.5f s (second call)\n",
			   s.n_rows, s.n_cols, s.nnz, d, sc, sg);
		isrf_csr_free(&env, &s);
		free(x);
		free(y);
		free(rc);
		free(rg);
	}
	{
		int			m = 1024,
					n = 50000,
					k = 100;
		float	   *x = topk_data(m, n, n, 0);
		int32_t    *ic,
				   *ig;
		float	   *vc,
				   *vg;
		double		sc,
					sg;

		CHECK(run_topk(cpu, m, n, x, n, k, true, 0, &ic, &vc, &sc) == ISRF_OK);
		CHECK(run_topk(gpu, m, n, x, n, k, true, 0, &ig, &vg, &sg) == ISRF_OK);
		CHECK_MSG(memcmp(ic, ig, sizeof(int32_t) * (size_t) m * k) == 0,
				  "topk timing case differs from the CPU");
		printf("timing: topk %dx%d k=%d: cpu %.4f s, cuda %.5f s\n", m, n, k, sc, sg);
		free(x);
		free(ic);
		free(ig);
		free(vc);
		free(vg);
	}
}

int
main(void)
{
	const char *lib = parity_cuda_library();
	char		desc[512];

	if (!parity_open(false))
		return 0;
	CHECK(strcmp(gpu->name, "cuda") == 0 && gpu->abi == ISRF_BACKEND_ABI);
	CHECK(gpu->describe(gpu, desc, sizeof(desc)) == ISRF_OK);
	printf("backend: %s\n", desc);
	CHECK(cpu->describe(cpu, desc, sizeof(desc)) == ISRF_OK);
	printf("reference: %s\n", desc);

	test_gemm();
	test_spmm();
	test_topk();
	test_elementwise();
	test_memory_and_errors(lib);
	test_second_cycle(lib);
	if (gpu)
	{
		timings();
		isrf_backend_close(gpu);
	}
	isrf_backend_close(cpu);
	UNIT_END("test_parity");
}
