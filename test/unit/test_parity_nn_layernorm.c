/*
 * test_parity_nn_layernorm.c
 *	  GPU-vs-CPU parity of LayerNorm forward and backward: empty, one row,
 *	  one column, widths that are not multiples of 4 or 32, up to 4099
 *	  columns and 1000 rows, rows centred, offset, constant, large and small,
 *	  and each pattern of NULL gradients (dx, dw, db), then a timing of
 *	  forward + backward on 12800 x 64.  parity_nn.h says how the parity
 *	  tests run.
 *
 * Tolerances ("scale" as in parity_nn.h):
 *
 *	layernorm_forward: mean 1e-5 sqrt(c) mean|x|; rstd 1e-5 sqrt(c) rstd
 *		(1 + mean^2 rstd^2) (a one-pass variance may lose that much to
 *		cancellation on offset rows); out 1e-5 sqrt(c) ((|x| + |mean|) rstd
 *		|w| + |b|)
 *	layernorm_backward: dx 1e-5 sqrt(c) (rstd (|g w| + mean|g w| + |xhat|
 *		mean|g w xhat|) + |dx0|) from the same mean and rstd on both sides;
 *		dw and db as column sums over the n rows, 1e-5 sqrt(n + 1) (|acc0|
 *		+ sum of the terms' absolute values); a NULL gradient leaves the
 *		buffer the test holds untouched (bitwise)
 */
#define PARITY_NAME "test_parity_nn_layernorm"
#include "parity_nn.h"

/* ---- layernorm ------------------------------------------------------------ */

/*
 * Rows of several kinds when mixed: centred, offset by 3, constant, large
 * (1000) and small (1e-3) values.
 */
static float *
ln_input(int n, int c, bool mixed)
{
	float	   *x = rand_floats((size_t) n * c, 1.0f);
	int			i,
				j;

	for (i = 0; mixed && i < n; i++)
	{
		float	   *xi = x + (size_t) i * c;

		for (j = 0; j < c; j++)
			switch (i % 5)
			{
				case 1:
					xi[j] += 3.0f;
					break;
				case 2:
					xi[j] = xi[0];
					break;
				case 3:
					xi[j] *= 1000.0f;
					break;
				case 4:
					xi[j] *= 1e-3f;
					break;
				default:
					break;
			}
	}
	return x;
}

/* LayerNorm forward on b; out starts as out0 (it must be overwritten). */
static IsrfStatus
run_ln_forward(IsrfBackend *b, const float *x, const float *w, const float *bias,
			   const float *out0, int n, int c, float **out, float **mean, float **rstd)
{
	size_t		nc = (size_t) n * c;
	float	   *dx = to_backend(b, x, sizeof(float) * nc);
	float	   *dw = to_backend(b, w, sizeof(float) * c);
	float	   *db = to_backend(b, bias, sizeof(float) * c);
	float	   *dout = to_backend(b, out0, sizeof(float) * nc);
	float	   *dm = dev_alloc(b, sizeof(float) * n);
	float	   *dr = dev_alloc(b, sizeof(float) * n);
	IsrfStatus	st;

	st = finish(b, b->layernorm_forward(b, dout, dm, dr, dx, dw, db, n, c));
	*out = from_backend(b, dout, sizeof(float) * nc);
	*mean = from_backend(b, dm, sizeof(float) * n);
	*rstd = from_backend(b, dr, sizeof(float) * n);
	b->mem_free(b, dx);
	b->mem_free(b, dw);
	b->mem_free(b, db);
	b->mem_free(b, dout);
	b->mem_free(b, dm);
	b->mem_free(b, dr);
	return st;
}

/* Forward results of the device (g) against the reference (r). */
static void
check_ln_forward(const char *what, const float *x, const float *w, const float *bias,
				 int n, int c, const float *out_r, const float *mean_r, const float *rstd_r,
				 const float *out_g, const float *mean_g, const float *rstd_g)
{
	Cmp			cm,
				cr,
				co;
	double		sc = sqrt((double) c);
	int			i,
				j;

	cmp_init(&cm);
	cmp_init(&cr);
	cmp_init(&co);
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * c;
		double		m = mean_r[i],
					r = rstd_r[i],
					abs_sum = 0.0;

		for (j = 0; j < c; j++)
			abs_sum += fabs(xi[j]);
		cmp_float(&cm, i, mean_r[i], mean_g[i], 1e-5 * sc * abs_sum / c + 1e-30);
		cmp_float(&cr, i, rstd_r[i], rstd_g[i], 1e-5 * sc * r * (1.0 + m * m * r * r));
		for (j = 0; j < c; j++)
		{
			size_t		e = (size_t) i * c + j;

			cmp_float(&co, e, out_r[e], out_g[e],
					  1e-5 * sc * ((fabs(xi[j]) + fabs(m)) * r * fabs(w[j]) + fabs(bias[j])) + 1e-30);
		}
	}
	cmp_report(&cm, what, "mean");
	cmp_report(&cr, what, "rstd");
	cmp_report(&co, what, "out");
}

/* LayerNorm backward on b; which bit 1: dx, 2: dw, 4: db (others NULL). */
static IsrfStatus
run_ln_backward(IsrfBackend *b, int which, const float *dx0, const float *dw0,
				const float *db0, const float *dout, const float *x, const float *w,
				const float *mean, const float *rstd, int n, int c,
				float **dx, float **dw, float **db, double *secs)
{
	size_t		nc = (size_t) n * c;
	float	   *ddx = to_backend(b, dx0, sizeof(float) * nc);
	float	   *ddw = to_backend(b, dw0, sizeof(float) * c);
	float	   *ddb = to_backend(b, db0, sizeof(float) * c);
	float	   *dg = to_backend(b, dout, sizeof(float) * nc);
	float	   *dxx = to_backend(b, x, sizeof(float) * nc);
	float	   *dww = to_backend(b, w, sizeof(float) * c);
	float	   *dm = to_backend(b, mean, sizeof(float) * n);
	float	   *dr = to_backend(b, rstd, sizeof(float) * n);
	IsrfStatus	st;
	double		t0;

	t0 = isrf_now();
	st = finish(b, b->layernorm_backward(b, (which & 1) ? ddx : NULL, (which & 2) ? ddw : NULL,
										 (which & 4) ? ddb : NULL, dg, dxx, dww, dm, dr, n, c));
	if (secs)
		*secs = isrf_now() - t0;
	*dx = from_backend(b, ddx, sizeof(float) * nc);
	*dw = from_backend(b, ddw, sizeof(float) * c);
	*db = from_backend(b, ddb, sizeof(float) * c);
	b->mem_free(b, ddx);
	b->mem_free(b, ddw);
	b->mem_free(b, ddb);
	b->mem_free(b, dg);
	b->mem_free(b, dxx);
	b->mem_free(b, dww);
	b->mem_free(b, dm);
	b->mem_free(b, dr);
	return st;
}

/* Backward results of the device (g) against the reference (r). */
static void
check_ln_backward(const char *what, int which, const float *dx0, const float *dw0,
				  const float *db0, const float *dout, const float *x, const float *w,
				  const float *mean, const float *rstd, int n, int c,
				  const float *dx_r, const float *dw_r, const float *db_r,
				  const float *dx_g, const float *dw_g, const float *db_g)
{
	Cmp			cx,
				cw,
				cb;
	double	   *sw = calloc(c, sizeof(double)),
			   *sb = calloc(c, sizeof(double));
	double		sc = sqrt((double) c),
				sn = sqrt(n + 1.0);
	int			i,
				j;

	cmp_init(&cx);
	cmp_init(&cw);
	cmp_init(&cb);
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * c,
				   *gi = dout + (size_t) i * c;
		double		r = rstd[i],
					a1 = 0.0,
					a2 = 0.0;

		for (j = 0; j < c; j++)
		{
			double		xhat = ((double) xi[j] - mean[i]) * r;

			a1 += fabs((double) gi[j] * w[j]);
			a2 += fabs((double) gi[j] * w[j] * xhat);
			sw[j] += fabs(gi[j] * xhat);
			sb[j] += fabs(gi[j]);
		}
		a1 /= c;
		a2 /= c;
		for (j = 0; j < c && (which & 1); j++)
		{
			size_t		e = (size_t) i * c + j;
			double		xhat = ((double) xi[j] - mean[i]) * r;

			cmp_float(&cx, e, dx_r[e], dx_g[e],
					  1e-5 * sc * (r * (fabs((double) gi[j] * w[j]) + a1 + fabs(xhat) * a2) +
								   fabs(dx0[e])) + 1e-30);
		}
	}
	/* a gradient passed as NULL: the buffer the test holds stays as it was */
	for (j = 0; j < c; j++)
	{
		if (which & 2)
			cmp_float(&cw, j, dw_r[j], dw_g[j], 1e-5 * sn * (fabs(dw0[j]) + sw[j]) + 1e-30);
		else
			cmp_exact(&cw, j, dw0[j], dw_g[j]);
		if (which & 4)
			cmp_float(&cb, j, db_r[j], db_g[j], 1e-5 * sn * (fabs(db0[j]) + sb[j]) + 1e-30);
		else
			cmp_exact(&cb, j, db0[j], db_g[j]);
	}
	if (!(which & 1))
	{
		size_t		e;

		for (e = 0; e < (size_t) n * c; e++)
			cmp_exact(&cx, e, dx0[e], dx_g[e]);
	}
	cmp_report(&cx, what, (which & 1) ? "dx" : "dx (NULL: untouched)");
	cmp_report(&cw, what, (which & 2) ? "dw" : "dw (NULL: untouched)");
	cmp_report(&cb, what, (which & 4) ? "db" : "db (NULL: untouched)");
	free(sw);
	free(sb);
}

/* Forward and backward (with each pattern of NULL gradients) on n x c. */
static void
check_layernorm_case(int n, int c, bool mixed)
{
	size_t		nc = (size_t) n * c;
	float	   *x = ln_input(n, c, mixed),
			   *w = rand_floats(c, 1.0f),
			   *bias = rand_floats(c, 1.0f),
			   *out0 = rand_floats(nc, 1.0f),
			   *dout = rand_floats(nc, 1.0f),
			   *dx0 = rand_floats(nc, 1.0f),
			   *dw0 = rand_floats(c, 1.0f),
			   *db0 = rand_floats(c, 1.0f);
	float	   *out[3],
			   *mean[3],
			   *rstd[3];
	IsrfStatus	st[3];
	static const int patterns[] = {7, 1, 6, 0};
	char		what[96];
	size_t		pi;
	int			t,
				j;

	for (j = 0; j < c; j++)
		w[j] += w[j] >= 0.0f ? 0.5f : -0.5f;
	snprintf(what, sizeof(what), "layernorm_forward %dx%d%s", n, c, mixed ? " mixed rows" : "");
	for (t = 0; t < 3; t++)
		st[t] = run_ln_forward(runner(t), x, w, bias, out0, n, c, &out[t], &mean[t], &rstd[t]);
	check_status(what, st);
	check_ln_forward(what, x, w, bias, n, c, out[0], mean[0], rstd[0], out[1], mean[1], rstd[1]);
	check_repeat(what, "out", out[1], out[2], sizeof(float) * nc);
	check_repeat(what, "mean", mean[1], mean[2], sizeof(float) * n);
	check_repeat(what, "rstd", rstd[1], rstd[2], sizeof(float) * n);

	/* backward from the reference's statistics on both sides */
	for (pi = 0; pi < sizeof(patterns) / sizeof(patterns[0]); pi++)
	{
		float	   *dx[3],
				   *dw[3],
				   *db[3];

		snprintf(what, sizeof(what), "layernorm_backward %dx%d%s grads %s%s%s", n, c,
				 mixed ? " mixed rows" : "", (patterns[pi] & 1) ? "dx " : "",
				 (patterns[pi] & 2) ? "dw " : "", (patterns[pi] & 4) ? "db" : "");
		for (t = 0; t < 3; t++)
			st[t] = run_ln_backward(runner(t), patterns[pi], dx0, dw0, db0, dout, x, w,
									mean[0], rstd[0], n, c, &dx[t], &dw[t], &db[t], NULL);
		check_status(what, st);
		check_ln_backward(what, patterns[pi], dx0, dw0, db0, dout, x, w, mean[0], rstd[0],
						  n, c, dx[0], dw[0], db[0], dx[1], dw[1], db[1]);
		check_repeat(what, "dx", dx[1], dx[2], sizeof(float) * nc);
		check_repeat(what, "dw", dw[1], dw[2], sizeof(float) * c);
		check_repeat(what, "db", db[1], db[2], sizeof(float) * c);
		free3((void **) dx);
		free3((void **) dw);
		free3((void **) db);
	}
	free(x);
	free(w);
	free(bias);
	free(out0);
	free(dout);
	free(dx0);
	free(dw0);
	free(db0);
	free3((void **) out);
	free3((void **) mean);
	free3((void **) rstd);
}

static void
test_layernorm(void)
{
	if (!NEED(layernorm_forward) || !NEED(layernorm_backward))
		return;
	check_layernorm_case(0, 5, false);
	check_layernorm_case(1, 1, false);
	check_layernorm_case(1, 7, false);
	check_layernorm_case(3, 33, true);
	check_layernorm_case(64, 64, false);
	check_layernorm_case(257, 100, true);
	check_layernorm_case(1000, 64, true);
	check_layernorm_case(200, 768, true);
	check_layernorm_case(5, 4099, true);
}

/* ---- bad shapes ------------------------------------------------------------ */

static void
refusals(IsrfBackend *b, float *f)
{
	if (b->layernorm_forward)
	{
		expect_invalid(b, b->layernorm_forward(b, f, f, f, f, f, f, -1, 4), "layernorm_forward n=-1");
		expect_invalid(b, b->layernorm_forward(b, f, f, f, f, f, f, 2, -1), "layernorm_forward c=-1");
	}
	if (b->layernorm_backward)
	{
		expect_invalid(b, b->layernorm_backward(b, f, f, f, f, f, f, f, f, -1, 4), "layernorm_backward n=-1");
		expect_invalid(b, b->layernorm_backward(b, f, f, f, f, f, f, f, f, 2, -1), "layernorm_backward c=-1");
	}
}

/* ---- timing ---------------------------------------------------------------- */

/* LayerNorm forward + backward on n x c; returns seconds (after a warm-up). */
static double
time_layernorm(IsrfBackend *b, const float *x, const float *w, const float *bias,
			   const float *dout, int n, int c, float **out, float **dx)
{
	size_t		nc = (size_t) n * c;
	float	   *dxx = to_backend(b, x, sizeof(float) * nc);
	float	   *dw = to_backend(b, w, sizeof(float) * c);
	float	   *db = to_backend(b, bias, sizeof(float) * c);
	float	   *dg = to_backend(b, dout, sizeof(float) * nc);
	float	   *dout_f = dev_alloc(b, sizeof(float) * nc);
	float	   *dm = dev_alloc(b, sizeof(float) * n);
	float	   *dr = dev_alloc(b, sizeof(float) * n);
	float	   *gx = dev_alloc(b, sizeof(float) * nc);
	float	   *gw = dev_alloc(b, sizeof(float) * c);
	float	   *gb = dev_alloc(b, sizeof(float) * c);
	double		t0,
				secs = 0.0;
	int			rep;

	for (rep = 0; rep < 2; rep++)
	{
		IsrfStatus	st;

		/* the second pass is timed; gradients start from zero in each */
		CHECK(b->mem_zero(b, gx, sizeof(float) * nc) == ISRF_OK);
		CHECK(b->mem_zero(b, gw, sizeof(float) * c) == ISRF_OK);
		CHECK(b->mem_zero(b, gb, sizeof(float) * c) == ISRF_OK);
		CHECK(b->sync(b) == ISRF_OK);
		t0 = isrf_now();
		st = b->layernorm_forward(b, dout_f, dm, dr, dxx, dw, db, n, c);
		if (st == ISRF_OK)
			st = b->layernorm_backward(b, gx, gw, gb, dg, dxx, dw, dm, dr, n, c);
		st = finish(b, st);
		secs = isrf_now() - t0;
		CHECK_MSG(st == ISRF_OK, "layernorm timing on %s: %s", b->name, env.errmsg);
	}
	*out = from_backend(b, dout_f, sizeof(float) * nc);
	*dx = from_backend(b, gx, sizeof(float) * nc);
	b->mem_free(b, dxx);
	b->mem_free(b, dw);
	b->mem_free(b, db);
	b->mem_free(b, dg);
	b->mem_free(b, dout_f);
	b->mem_free(b, dm);
	b->mem_free(b, dr);
	b->mem_free(b, gx);
	b->mem_free(b, gw);
	b->mem_free(b, gb);
	return secs;
}

static void
timings(void)
{
	if (cpu->layernorm_forward && gpu->layernorm_forward &&
		cpu->layernorm_backward && gpu->layernorm_backward && cpu->mem_zero && gpu->mem_zero)
	{
		int			n = 12800,
					c = 64;
		size_t		nc = (size_t) n * c;
		float	   *x = ln_input(n, c, false),
				   *w = rand_floats(c, 1.0f),
				   *bias = rand_floats(c, 1.0f),
				   *dout = rand_floats(nc, 1.0f);
		float	   *oc,
				   *og,
				   *xc,
				   *xg;
		double		sc,
					sg;

		sc = time_layernorm(cpu, x, w, bias, dout, n, c, &oc, &xc);
		sg = time_layernorm(gpu, x, w, bias, dout, n, c, &og, &xg);
		CHECK_MSG(unit_max_abs_diff(oc, og, nc) <= (self_mode ? 0.0 : 1e-4) &&
				  unit_max_abs_diff(xc, xg, nc) <= (self_mode ? 0.0 : 1e-3),
				  "layernorm timing case: out diff %g, dx diff %g",
				  unit_max_abs_diff(oc, og, nc), unit_max_abs_diff(xc, xg, nc));
		printf("timing: layernorm fwd+bwd %dx%d: cpu %.4f s, %s %.5f s\n", n, c, sc, gpu_label, sg);
		free(x);
		free(w);
		free(bias);
		free(dout);
		free(oc);
		free(og);
		free(xc);
		free(xg);
	}
}

int
main(void)
{
	if (!parity_nn_open())
		return 0;
	test_layernorm();
	parity_nn_refusals(refusals);
	timings();
	parity_nn_close();
	UNIT_END(PARITY_NAME);
}
