/*
 * test_parity_nn_embedding.c
 *	  GPU-vs-CPU parity of the operations on rows of an embedding table:
 *	  gather_rows (overwriting and accumulating), scatter_add_rows (the
 *	  embedding gradient: duplicated and negative ids, thousands of
 *	  contributions to one row, 12101 rows) and mask_rows, then a timing of
 *	  scatter_add_rows on a training batch.  parity_nn.h says how the parity
 *	  tests run.
 *
 * Tolerances ("scale" as in parity_nn.h):
 *
 *	bitwise: gather_rows (one add when accumulating), mask_rows, and the
 *		reference's scatter_add_rows against the plain ascending loop
 *	scatter_add_rows: 1e-5 sqrt(n + 1) (|table0| + sum |src|) over the n
 *		rows that reach an element
 */
#define PARITY_NAME "test_parity_nn_embedding"
#include "parity_nn.h"

/* ---- gather, scatter-add, mask -------------------------------------------- */

/* n ids into rows rows: duplicates, a few negative ones (-1 and others). */
static int32_t *
make_ids(int n, int rows)
{
	int32_t    *ids = xmalloc(sizeof(int32_t) * (n > 0 ? n : 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		int			u = rand_below(10);

		ids[i] = u == 0 ? -1 : u == 1 ? -1 - rand_below(1000) : rand_below(rows);
		if (i > 0 && u == 2)
			ids[i] = ids[i - 1] >= 0 ? ids[i - 1] : 0;	/* adjacent duplicate */
	}
	if (n > 1 && rows > 0)
		ids[n - 1] = ids[0] = rows - 1;
	return ids;
}

/* gather_rows, overwriting and accumulating: bitwise against the host loop. */
static void
check_gather_case(int n, int d, int rows, bool accumulate)
{
	size_t		nd = (size_t) n * d;
	float	   *table = rand_floats((size_t) rows * d, 1.0f),
			   *o0 = rand_floats(nd, 1.0f),
			   *want = xmalloc(sizeof(float) * nd);
	int32_t    *ids = make_ids(n, rows);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[96];
	int			i,
				j,
				t;

	snprintf(what, sizeof(what), "gather_rows %d ids x %d from %d rows%s", n, d, rows,
			 accumulate ? " accumulating" : "");
	for (i = 0; i < n; i++)
		for (j = 0; j < d; j++)
		{
			size_t		e = (size_t) i * d + j;
			float		tv = ids[i] >= 0 ? table[(size_t) ids[i] * d + j] : 0.0f;

			want[e] = accumulate ? (ids[i] >= 0 ? o0[e] + tv : o0[e]) : tv;
		}
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dt = to_backend(b, table, sizeof(float) * rows * d);
		float	   *dout = to_backend(b, o0, sizeof(float) * nd);
		int32_t    *di = to_backend(b, ids, sizeof(int32_t) * n);

		st[t] = finish(b, b->gather_rows(b, dout, di, n, dt, d, accumulate));
		res[t] = from_backend(b, dout, sizeof(float) * nd);
		b->mem_free(b, dt);
		b->mem_free(b, dout);
		b->mem_free(b, di);
	}
	check_status(what, st);
	check_bytes(what, "out", "host", want, "cpu", res[0], sizeof(float) * nd);
	check_bytes(what, "out", "cpu", res[0], gpu_label, res[1], sizeof(float) * nd);
	check_repeat(what, "out", res[1], res[2], sizeof(float) * nd);
	free(table);
	free(o0);
	free(want);
	free(ids);
	free3((void **) res);
}

/* scatter_add_rows on b; returns the host table. */
static float *
run_scatter(IsrfBackend *b, const float *table0, int rows, const int32_t *ids, int n,
			const float *src, int d, IsrfStatus *st, double *secs)
{
	size_t		tl = (size_t) rows * d;
	float	   *dt = to_backend(b, table0, sizeof(float) * tl);
	int32_t    *di = to_backend(b, ids, sizeof(int32_t) * n);
	float	   *ds = to_backend(b, src, sizeof(float) * n * d);
	float	   *out;
	double		t0;

	if (secs)
	{
		*st = finish(b, b->scatter_add_rows(b, dt, di, n, ds, d));
		upload(b, dt, table0, sizeof(float) * tl);
	}
	t0 = isrf_now();
	*st = finish(b, b->scatter_add_rows(b, dt, di, n, ds, d));
	if (secs)
		*secs = isrf_now() - t0;
	out = from_backend(b, dt, sizeof(float) * tl);
	b->mem_free(b, dt);
	b->mem_free(b, di);
	b->mem_free(b, ds);
	return out;
}

/*
 * Scatter-add results of the device (g) against the reference (r); the
 * reference must equal the plain ascending loop bitwise.
 */
static void
check_scatter(const char *what, const float *table0, int rows, const int32_t *ids, int n,
			  const float *src, int d, const float *tr, const float *tg)
{
	size_t		tl = (size_t) rows * d;
	float	   *plain = xmalloc(sizeof(float) * tl);
	double	   *scale = xmalloc(sizeof(double) * tl);
	int		   *cnt = calloc(rows > 0 ? rows : 1, sizeof(int));
	Cmp			c;
	size_t		e;
	int			i,
				j;

	memcpy(plain, table0, sizeof(float) * tl);
	for (e = 0; e < tl; e++)
		scale[e] = fabs(table0[e]);
	for (i = 0; i < n; i++)
	{
		if (ids[i] < 0)
			continue;
		cnt[ids[i]]++;
		for (j = 0; j < d; j++)
		{
			e = (size_t) ids[i] * d + j;
			plain[e] += src[(size_t) i * d + j];
			scale[e] += fabs(src[(size_t) i * d + j]);
		}
	}
	check_bytes(what, "table", "plain loop", plain, "cpu", tr, sizeof(float) * tl);
	cmp_init(&c);
	for (e = 0; e < tl; e++)
		cmp_float(&c, e, tr[e], tg[e], 1e-5 * sqrt(cnt[e / d] + 1.0) * scale[e]);
	cmp_report(&c, what, "table");
	free(plain);
	free(scale);
	free(cnt);
}

/* scatter_add_rows of n rows of d into rows rows. */
static void
check_scatter_case(int n, int d, int rows)
{
	float	   *table0 = rand_floats((size_t) rows * d, 1.0f),
			   *src = rand_floats((size_t) n * d, 1.0f);
	int32_t    *ids = make_ids(n, rows);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[96];
	int			t;

	snprintf(what, sizeof(what), "scatter_add_rows %d ids x %d into %d rows", n, d, rows);
	for (t = 0; t < 3; t++)
		res[t] = run_scatter(runner(t), table0, rows, ids, n, src, d, &st[t], NULL);
	check_status(what, st);
	check_scatter(what, table0, rows, ids, n, src, d, res[0], res[1]);
	check_repeat(what, "table", res[1], res[2], sizeof(float) * rows * d);
	free(table0);
	free(src);
	free(ids);
	free3((void **) res);
}

/* mask_rows with flags 0, 1 and 2 (any non-zero keeps the row). */
static void
check_mask_case(int n, int d)
{
	size_t		nd = (size_t) n * d;
	float	   *x = rand_floats(nd, 1.0f),
			   *want = xmalloc(sizeof(float) * nd);
	uint8_t    *valid = xmalloc(n > 0 ? n : 1);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[64];
	int			i,
				t;

	snprintf(what, sizeof(what), "mask_rows %dx%d", n, d);
	for (i = 0; i < n; i++)
		valid[i] = (uint8_t) rand_below(3);
	if (n > 0)
		valid[0] = 0;
	memcpy(want, x, sizeof(float) * nd);
	for (i = 0; i < n; i++)
		if (!valid[i])
			memset(want + (size_t) i * d, 0, sizeof(float) * d);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * nd);
		uint8_t    *dv = to_backend(b, valid, n);

		st[t] = finish(b, b->mask_rows(b, dx, dv, n, d));
		res[t] = from_backend(b, dx, sizeof(float) * nd);
		b->mem_free(b, dx);
		b->mem_free(b, dv);
	}
	check_status(what, st);
	check_bytes(what, "x", "host", want, "cpu", res[0], sizeof(float) * nd);
	check_bytes(what, "x", "cpu", res[0], gpu_label, res[1], sizeof(float) * nd);
	check_repeat(what, "x", res[1], res[2], sizeof(float) * nd);
	free(x);
	free(want);
	free(valid);
	free3((void **) res);
}

static void
test_rows_ops(void)
{
	if (NEED(gather_rows))
	{
		check_gather_case(0, 4, 3, false);
		check_gather_case(1, 1, 1, false);
		check_gather_case(1, 1, 1, true);
		check_gather_case(7, 33, 5, false);
		check_gather_case(7, 33, 5, true);
		check_gather_case(1000, 64, 12101, false);
		check_gather_case(12800, 3, 50, true);
	}
	if (NEED(scatter_add_rows))
	{
		check_scatter_case(0, 4, 3);
		check_scatter_case(1, 1, 1);
		check_scatter_case(7, 33, 3);
		check_scatter_case(1000, 5, 10);	/* ~90 contributions per row */
		check_scatter_case(5000, 1, 2);		/* thousands per row */
		check_scatter_case(3000, 65, 12101);
	}
	if (NEED(mask_rows))
	{
		check_mask_case(0, 3);
		check_mask_case(1, 1);
		check_mask_case(7, 33);
		check_mask_case(12800, 64);
		check_mask_case(5, 0);
	}
}

/* ---- bad shapes ------------------------------------------------------------ */

static void
refusals(IsrfBackend *b, float *f)
{
	uint8_t    *u8 = (uint8_t *) f;
	int32_t    *i32 = (int32_t *) f;

	if (b->gather_rows)
	{
		expect_invalid(b, b->gather_rows(b, f, i32, -1, f, 2, false), "gather_rows n=-1");
		expect_invalid(b, b->gather_rows(b, f, i32, 2, f, -1, true), "gather_rows d=-1");
	}
	if (b->scatter_add_rows)
	{
		expect_invalid(b, b->scatter_add_rows(b, f, i32, -1, f, 2), "scatter_add_rows n=-1");
		expect_invalid(b, b->scatter_add_rows(b, f, i32, 2, f, -1), "scatter_add_rows d=-1");
	}
	if (b->mask_rows)
	{
		expect_invalid(b, b->mask_rows(b, f, u8, -1, 2), "mask_rows n=-1");
		expect_invalid(b, b->mask_rows(b, f, u8, 2, -1), "mask_rows d=-1");
	}
}

/* ---- timing ---------------------------------------------------------------- */

static void
timings(void)
{
	if (cpu->scatter_add_rows && gpu->scatter_add_rows)
	{
		int			n = 12800,
					d = 64,
					rows = 12101,
					i;
		float	   *table0 = rand_floats((size_t) rows * d, 1.0f),
				   *src = rand_floats((size_t) n * d, 1.0f);
		int32_t    *ids = xmalloc(sizeof(int32_t) * n);
		float	   *tc,
				   *tg;
		IsrfStatus	st;
		double		sc,
					sg;

		/* item ids of a training batch: popular items repeat, some padding */
		for (i = 0; i < n; i++)
			ids[i] = i % 8 == 0 ? -1 : (int32_t) (rand_below(rows) * (double) rand_below(rows) / rows);
		tc = run_scatter(cpu, table0, rows, ids, n, src, d, &st, &sc);
		CHECK(st == ISRF_OK);
		tg = run_scatter(gpu, table0, rows, ids, n, src, d, &st, &sg);
		CHECK(st == ISRF_OK);
		check_scatter("scatter_add_rows timing", table0, rows, ids, n, src, d, tc, tg);
		printf("timing: scatter_add_rows %d x %d into %d rows: cpu %.4f s, %s %.5f s\n",
			   n, d, rows, sc, gpu_label, sg);
		free(table0);
		free(src);
		free(ids);
		free(tc);
		free(tg);
	}
}

int
main(void)
{
	if (!parity_nn_open())
		return 0;
	test_rows_ops();
	parity_nn_refusals(refusals);
	timings();
	parity_nn_close();
	UNIT_END(PARITY_NAME);
}
