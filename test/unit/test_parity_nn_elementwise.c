/*
 * test_parity_nn_elementwise.c
 *	  GPU-vs-CPU parity of the element-wise operations of the backend table
 *	  and the bias helpers of a linear layer: mem_zero and copy at unaligned
 *	  offsets, rows_set with colsum_acc (empty, one row, 12800 rows), add
 *	  (out separate or aliasing either input), GELU forward and backward
 *	  (special values, in place) and dropout (p = 0 and p > 0, in place,
 *	  extreme seeds).  parity_nn.h says how the parity tests run.
 *
 * Tolerances ("scale" as in parity_nn.h):
 *
 *	bitwise: mem_zero, copy, rows_set, add, dropout at p = 0 and the zero
 *		pattern of dropout at p > 0
 *	colsum_acc: 1e-5 sqrt(n + 1) (|acc0| + sum |x|) over the n rows
 *	gelu_forward: 1e-6 max(1, |x|); gelu_backward: 2e-6 (1 + |x| k (1 +
 *		3 c x^2)) |dout| + 1e-6 |dx0|.  The reference has its own tanh
 *		(absolute error below 2e-7), the device has tanhf; the derivative
 *		multiplies tanh's error by up to |x| du/dx.  A fast-math tanh
 *		(2^-11) fails, as it should.
 *	dropout (kept elements): 1e-6 relative to the terms (one or two
 *		roundings, FMA contraction on the device)
 */
#define PARITY_NAME "test_parity_nn_elementwise"
#include "parity_nn.h"
#include "nn/layers.h"					/* isrf_nn_hash64 */

#define PARITY_GOLDEN 0x9E3779B97F4A7C15ULL
#define PARITY_GELU_K 0.7978845608028654	/* sqrt(2 / pi) */
#define PARITY_GELU_C 0.044715
/* ---- mem_zero, copy ----------------------------------------------------- */

/* mem_zero and copy of bytes at unaligned offsets, against memset / memcpy. */
static void
check_zero_copy_case(size_t bytes, size_t off)
{
	size_t		total = off + bytes + 9,
				soff = off + 3;
	unsigned char *init = rand_bytes(total),
			   *src = rand_bytes(total),
			   *want_z = xmalloc(total),
			   *want_c = xmalloc(total);
	void	   *rz[3],
			   *rc[3];
	IsrfStatus	sz[3],
				sc[3];
	char		what[96];
	int			t;

	snprintf(what, sizeof(what), "mem_zero/copy %zu bytes at +%zu", bytes, off);
	memcpy(want_z, init, total);
	memset(want_z + off, 0, bytes);
	memcpy(want_c, init, total);
	memcpy(want_c + off, src + soff, bytes);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		unsigned char *d = to_backend(b, init, total);
		unsigned char *s = to_backend(b, src, total);

		sz[t] = finish(b, b->mem_zero(b, d + off, bytes));
		rz[t] = from_backend(b, d, total);
		upload(b, d, init, total);
		sc[t] = finish(b, b->copy(b, d + off, s + soff, bytes));
		rc[t] = from_backend(b, d, total);
		b->mem_free(b, d);
		b->mem_free(b, s);
	}
	check_status(what, sz);
	check_status(what, sc);
	check_bytes(what, "mem_zero", "memset", want_z, "cpu", rz[0], total);
	check_bytes(what, "mem_zero", "cpu", rz[0], gpu_label, rz[1], total);
	check_repeat(what, "mem_zero", rz[1], rz[2], total);
	check_bytes(what, "copy", "memcpy", want_c, "cpu", rc[0], total);
	check_bytes(what, "copy", "cpu", rc[0], gpu_label, rc[1], total);
	check_repeat(what, "copy", rc[1], rc[2], total);
	free(init);
	free(src);
	free(want_z);
	free(want_c);
	free3(rz);
	free3(rc);
}

static void
test_zero_copy(void)
{
	if (!NEED(mem_zero) || !NEED(copy))
		return;
	check_zero_copy_case(0, 0);
	check_zero_copy_case(1, 0);
	check_zero_copy_case(3, 1);
	check_zero_copy_case(4, 4);
	check_zero_copy_case(4099 * 4 + 3, 1);
	check_zero_copy_case((4 << 20) + 5, 4);
}

/* ---- rows_set, colsum_acc, add ------------------------------------------ */

/* rows_set (bitwise, against the host) and colsum_acc on n x d. */
static void
check_rows_colsum_case(int n, int d)
{
	size_t		nd = (size_t) n * d;
	float	   *row = rand_floats(d, 1.0f),
			   *y0 = rand_floats(nd, 1.0f),
			   *x = rand_floats(nd, 1.0f),
			   *acc0 = rand_floats(d, 2.0f),
			   *want = xmalloc(sizeof(float) * nd);
	float	   *ry[3],
			   *ra[3];
	IsrfStatus	sy[3],
				sa[3];
	Cmp			cs;
	char		what[64];
	int			t,
				i,
				j;

	snprintf(what, sizeof(what), "rows_set/colsum_acc %dx%d", n, d);
	for (i = 0; i < n; i++)
		memcpy(want + (size_t) i * d, row, sizeof(float) * d);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dy = to_backend(b, y0, sizeof(float) * nd);
		float	   *dr = to_backend(b, row, sizeof(float) * d);
		float	   *dx = to_backend(b, x, sizeof(float) * nd);
		float	   *da = to_backend(b, acc0, sizeof(float) * d);

		sy[t] = finish(b, b->rows_set(b, dy, dr, n, d));
		sa[t] = finish(b, b->colsum_acc(b, da, dx, n, d));
		ry[t] = from_backend(b, dy, sizeof(float) * nd);
		ra[t] = from_backend(b, da, sizeof(float) * d);
		b->mem_free(b, dy);
		b->mem_free(b, dr);
		b->mem_free(b, dx);
		b->mem_free(b, da);
	}
	check_status(what, sy);
	check_status(what, sa);
	check_bytes(what, "rows_set", "host", want, "cpu", ry[0], sizeof(float) * nd);
	check_bytes(what, "rows_set", "cpu", ry[0], gpu_label, ry[1], sizeof(float) * nd);
	check_repeat(what, "rows_set", ry[1], ry[2], sizeof(float) * nd);
	cmp_init(&cs);
	for (j = 0; j < d; j++)
	{
		double		scale = fabs(acc0[j]);

		for (i = 0; i < n; i++)
			scale += fabs(x[(size_t) i * d + j]);
		cmp_float(&cs, j, ra[0][j], ra[1][j], 1e-5 * sqrt(n + 1.0) * scale);
	}
	cmp_report(&cs, what, "colsum_acc");
	check_repeat(what, "colsum_acc", ra[1], ra[2], sizeof(float) * d);
	free(row);
	free(y0);
	free(x);
	free(acc0);
	free(want);
	free3((void **) ry);
	free3((void **) ra);
}

/* out = a + b with out separate (alias 0), out = a (1) or out = b (2). */
static void
check_add_case(size_t n, int alias)
{
	float	   *a = rand_floats(n, 3.0f),
			   *bv = rand_floats(n, 1.0f),
			   *o0 = rand_floats(n, 1.0f),
			   *want = xmalloc(sizeof(float) * n);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[64];
	size_t		i;
	int			t;

	snprintf(what, sizeof(what), "add n=%zu alias %d", n, alias);
	for (i = 0; i < n; i++)
		want[i] = a[i] + bv[i];
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *da = to_backend(b, a, sizeof(float) * n);
		float	   *db = to_backend(b, bv, sizeof(float) * n);
		float	   *dout = alias == 1 ? da : alias == 2 ? db : to_backend(b, o0, sizeof(float) * n);

		st[t] = finish(b, b->add(b, n, da, db, dout));
		res[t] = from_backend(b, dout, sizeof(float) * n);
		if (alias == 0)
			b->mem_free(b, dout);
		b->mem_free(b, da);
		b->mem_free(b, db);
	}
	check_status(what, st);
	check_bytes(what, "out", "host", want, "cpu", res[0], sizeof(float) * n);
	check_bytes(what, "out", "cpu", res[0], gpu_label, res[1], sizeof(float) * n);
	check_repeat(what, "out", res[1], res[2], sizeof(float) * n);
	free(a);
	free(bv);
	free(o0);
	free(want);
	free3((void **) res);
}

static void
test_rows_colsum_add(void)
{
	if (NEED(rows_set) && NEED(colsum_acc))
	{
		check_rows_colsum_case(0, 7);
		check_rows_colsum_case(5, 0);
		check_rows_colsum_case(1, 1);
		check_rows_colsum_case(3, 33);
		check_rows_colsum_case(257, 5);
		check_rows_colsum_case(1000, 3);
		check_rows_colsum_case(12800, 64);
	}
	if (NEED(add))
	{
		check_add_case(0, 0);
		check_add_case(1, 0);
		check_add_case(7, 1);
		check_add_case(4097, 2);
		check_add_case(1000003, 0);
		check_add_case(1000003, 1);
	}
}

/* ---- gelu ----------------------------------------------------------------- */

/* Values in (-4, 4) with special ones sprinkled in (zeros, tiny, saturated). */
static float *
gelu_input(size_t n)
{
	static const float special[] = {0.0f, -0.0f, 1e-20f, -1e-20f, 3.0f, -3.0f,
		10.0f, -10.0f, 20.0f, -20.0f, 100.0f, -100.0f, 0.5f, -0.5f};
	float	   *x = rand_floats(n, 4.0f);
	size_t		i;

	for (i = 0; i < n; i += 17)
		x[i] = special[(i / 17) % (sizeof(special) / sizeof(special[0]))];
	return x;
}

/* gelu forward (out separate or aliasing x) and backward on n elements. */
static void
check_gelu_case(size_t n, bool alias)
{
	float	   *x = gelu_input(n),
			   *o0 = rand_floats(n, 1.0f),
			   *dout = rand_floats(n, 1.0f),
			   *dx0 = rand_floats(n, 1.0f);
	float	   *fo[3],
			   *bo[3];
	IsrfStatus	sf[3],
				sb[3];
	Cmp			cf,
				cb;
	char		what[64];
	size_t		i;
	int			t;

	snprintf(what, sizeof(what), "gelu n=%zu%s", n, alias ? " in place" : "");
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * n);
		float	   *dout_f = alias ? dx : to_backend(b, o0, sizeof(float) * n);
		float	   *dg = to_backend(b, dout, sizeof(float) * n);
		float	   *dacc = to_backend(b, dx0, sizeof(float) * n);

		/* backward first: in place, forward overwrites x */
		sb[t] = finish(b, b->gelu_backward(b, dacc, dx, dg, n));
		sf[t] = finish(b, b->gelu_forward(b, dout_f, dx, n));
		fo[t] = from_backend(b, dout_f, sizeof(float) * n);
		bo[t] = from_backend(b, dacc, sizeof(float) * n);
		if (!alias)
			b->mem_free(b, dout_f);
		b->mem_free(b, dx);
		b->mem_free(b, dg);
		b->mem_free(b, dacc);
	}
	check_status(what, sf);
	check_status(what, sb);
	cmp_init(&cf);
	cmp_init(&cb);
	for (i = 0; i < n; i++)
	{
		double		ax = fabs(x[i]);
		double		du = 1.0 + ax * PARITY_GELU_K * (1.0 + 3.0 * PARITY_GELU_C * ax * ax);

		cmp_float(&cf, i, fo[0][i], fo[1][i], 1e-6 * (ax > 1.0 ? ax : 1.0));
		cmp_float(&cb, i, bo[0][i], bo[1][i], 2e-6 * du * fabs(dout[i]) + 1e-6 * fabs(dx0[i]));
	}
	cmp_report(&cf, what, "forward");
	cmp_report(&cb, what, "backward");
	check_repeat(what, "forward", fo[1], fo[2], sizeof(float) * n);
	check_repeat(what, "backward", bo[1], bo[2], sizeof(float) * n);
	free(x);
	free(o0);
	free(dout);
	free(dx0);
	free3((void **) fo);
	free3((void **) bo);
}

static void
test_gelu(void)
{
	if (!NEED(gelu_forward) || !NEED(gelu_backward))
		return;
	check_gelu_case(0, false);
	check_gelu_case(1, false);
	check_gelu_case(3, true);
	check_gelu_case(4, false);
	check_gelu_case(5, false);
	check_gelu_case(4099, true);
	check_gelu_case(1000003, false);
}

/* ---- dropout -------------------------------------------------------------- */

/* The keep decision of the contract (backend.h), computed here. */
static bool
dropout_keep(uint64_t s, size_t i, float p)
{
	uint32_t	thr = (uint32_t) ((double) p * 16777216.0);

	return (uint32_t) (isrf_nn_hash64(s + PARITY_GOLDEN * (i + 1)) >> 40) >= thr;
}

/* Dropout forward (separate or in place) and backward on n elements. */
static void
check_dropout_case(size_t n, float p, uint64_t s, bool alias)
{
	float	   *x = rand_floats(n, 2.0f),
			   *o0 = rand_floats(n, 1.0f),
			   *dout = rand_floats(n, 1.0f),
			   *dx0 = rand_floats(n, 1.0f);
	float	   *fo[3],
			   *bo[3];
	IsrfStatus	sf[3],
				sb[3];
	Cmp			pat_ref,
				pat,
				val,
				bpat_ref,
				bpat,
				bval;
	float		scale = 1.0f / (1.0f - p);
	char		what[96];
	size_t		i;
	int			t;

	snprintf(what, sizeof(what), "dropout n=%zu p=%g seed %llu%s", n, p,
			 (unsigned long long) s, alias ? " in place" : "");
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * n);
		float	   *dout_f = alias ? dx : to_backend(b, o0, sizeof(float) * n);
		float	   *dg = to_backend(b, dout, sizeof(float) * n);
		float	   *dacc = to_backend(b, dx0, sizeof(float) * n);

		sf[t] = finish(b, b->dropout_forward(b, dout_f, dx, n, p, s));
		sb[t] = finish(b, b->dropout_backward(b, dacc, dg, n, p, s));
		fo[t] = from_backend(b, dout_f, sizeof(float) * n);
		bo[t] = from_backend(b, dacc, sizeof(float) * n);
		if (!alias)
			b->mem_free(b, dout_f);
		b->mem_free(b, dx);
		b->mem_free(b, dg);
		b->mem_free(b, dacc);
	}
	check_status(what, sf);
	check_status(what, sb);
	cmp_init(&pat_ref);
	cmp_init(&pat);
	cmp_init(&val);
	cmp_init(&bpat_ref);
	cmp_init(&bpat);
	cmp_init(&bval);
	for (i = 0; i < n; i++)
	{
		bool		keep = dropout_keep(s, i, p);
		float		kept = x[i] * scale;	/* never 0: |x| >= 2^-23 */

		if (p == 0.0f)
		{
			/* a copy and a plain add: bitwise */
			cmp_exact(&pat_ref, i, x[i], fo[0][i]);
			cmp_exact(&val, i, fo[0][i], fo[1][i]);
			cmp_exact(&bpat_ref, i, dx0[i] + dout[i], bo[0][i]);
			cmp_exact(&bval, i, bo[0][i], bo[1][i]);
			continue;
		}
		/* the zero pattern is the contract's mask, on both sides */
		cmp_exact(&pat_ref, i, keep ? 1.0f : 0.0f, fo[0][i] != 0.0f ? 1.0f : 0.0f);
		cmp_exact(&pat, i, fo[0][i] != 0.0f ? 1.0f : 0.0f, fo[1][i] != 0.0f ? 1.0f : 0.0f);
		if (keep)
		{
			cmp_float(&val, i, fo[0][i], fo[1][i], 1e-6 * fabs(kept));
			cmp_float(&bval, i, bo[0][i], bo[1][i],
					  1e-6 * (fabs(dx0[i]) + 2.0 * fabs(dout[i] * scale)));
		}
		else
		{
			/* dropped: dx keeps its value exactly */
			cmp_exact(&bpat_ref, i, dx0[i], bo[0][i]);
			cmp_exact(&bpat, i, dx0[i], bo[1][i]);
		}
	}
	cmp_report_ref(&pat_ref, what, p == 0.0f ? "forward copies" : "forward mask");
	cmp_report(&pat, what, "forward zero pattern");
	cmp_report(&val, what, "forward values");
	cmp_report_ref(&bpat_ref, what, p == 0.0f ? "backward adds" : "backward dropped elements");
	cmp_report(&bpat, what, "backward dropped elements");
	cmp_report(&bval, what, "backward values");
	check_repeat(what, "forward", fo[1], fo[2], sizeof(float) * n);
	check_repeat(what, "backward", bo[1], bo[2], sizeof(float) * n);
	free(x);
	free(o0);
	free(dout);
	free(dx0);
	free3((void **) fo);
	free3((void **) bo);
}

static void
test_dropout(void)
{
	if (!NEED(dropout_forward) || !NEED(dropout_backward))
		return;
	check_dropout_case(0, 0.1f, 1, false);
	check_dropout_case(1, 0.1f, 7, false);
	check_dropout_case(5, 0.0f, 7, false);
	check_dropout_case(5, 0.0f, 7, true);
	check_dropout_case(4099, 0.1f, 0, true);
	check_dropout_case(1000003, 0.0f, 42, false);
	check_dropout_case(1000003, 0.1f, 42, false);
	check_dropout_case(1000003, 0.1f, UINT64_MAX, true);
	check_dropout_case(65537, 0.5f, 123456789, false);
	check_dropout_case(65537, 0.95f, 99, false);
}

/* ---- bad shapes ------------------------------------------------------------ */

static void
refusals(IsrfBackend *b, float *f)
{
	if (b->rows_set)
	{
		expect_invalid(b, b->rows_set(b, f, f, -1, 2), "rows_set n=-1");
		expect_invalid(b, b->rows_set(b, f, f, 2, -1), "rows_set d=-1");
	}
	if (b->colsum_acc)
	{
		expect_invalid(b, b->colsum_acc(b, f, f, -1, 2), "colsum_acc n=-1");
		expect_invalid(b, b->colsum_acc(b, f, f, 2, -1), "colsum_acc d=-1");
	}
}

int
main(void)
{
	if (!parity_nn_open())
		return 0;
	test_zero_copy();
	test_rows_colsum_add();
	test_gelu();
	test_dropout();
	parity_nn_refusals(refusals);
	parity_nn_close();
	UNIT_END(PARITY_NAME);
}
