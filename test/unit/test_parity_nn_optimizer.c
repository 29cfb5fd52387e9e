/*
 * test_parity_nn_optimizer.c
 *	  GPU-vs-CPU parity of the optimizer's operations: adamw_step (with and
 *	  without a decay mask, parameters that never had a gradient, late
 *	  steps) and sumsq (the gradient norm; up to a million values, and
 *	  values whose squares overflow float).  parity_nn.h says how the parity
 *	  tests run.
 *
 * Tolerances:
 *
 *	adamw_step: 1e-6 relative to the terms (one or two roundings, FMA
 *		contraction on the device)
 *	sumsq: 1e-12 sqrt(n + 1) relative (sums in double; a float square
 *		fails on the small and the huge cases)
 */
#define PARITY_NAME "test_parity_nn_optimizer"
#include "parity_nn.h"

/* ---- AdamW, sumsq ---------------------------------------------------------- */

/* One AdamW step of n parameters at step number step, decay mask or NULL. */
static void
check_adamw_case(size_t n, int step, float lr, float wd, bool with_mask)
{
	const float b1 = 0.9f,
				b2 = 0.999f,
				eps = 1e-8f;
	float		c1 = (float) (1.0 / (1.0 - pow(b1, (double) step))),
				c2 = (float) (1.0 / (1.0 - pow(b2, (double) step)));
	float	   *p0 = rand_floats(n, 1.0f),
			   *g = rand_floats(n, 0.01f),
			   *m0 = rand_floats(n, 0.01f),
			   *v0 = rand_floats(n, 0.01f);
	uint8_t    *mask = with_mask ? xmalloc(n ? n : 1) : NULL;
	float	   *rp[3],
			   *rm[3],
			   *rv[3];
	IsrfStatus	st[3];
	Cmp			cp,
				cm,
				cv;
	char		what[96];
	size_t		i;
	int			t;

	for (i = 0; i < n; i++)
	{
		v0[i] = (i % 13 == 5) ? 0.0f : v0[i] * v0[i];
		if (i % 7 == 3)
			g[i] = 0.0f;
		if (i % 13 == 5)
		{
			/* no gradient ever: m = v = 0, only the decay moves it */
			g[i] = 0.0f;
			m0[i] = 0.0f;
		}
		if (mask)
			mask[i] = (uint8_t) rand_below(3);
	}
	snprintf(what, sizeof(what), "adamw_step n=%zu step %d lr %g wd %g decay %s", n, step,
			 lr, wd, with_mask ? "mask" : "NULL");
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dp = to_backend(b, p0, sizeof(float) * n);
		float	   *dg = to_backend(b, g, sizeof(float) * n);
		float	   *dm = to_backend(b, m0, sizeof(float) * n);
		float	   *dv = to_backend(b, v0, sizeof(float) * n);
		uint8_t    *dk = mask ? to_backend(b, mask, n) : NULL;

		st[t] = finish(b, b->adamw_step(b, dp, dg, dm, dv, dk, n, lr, b1, b2, eps, wd, c1, c2));
		rp[t] = from_backend(b, dp, sizeof(float) * n);
		rm[t] = from_backend(b, dm, sizeof(float) * n);
		rv[t] = from_backend(b, dv, sizeof(float) * n);
		b->mem_free(b, dp);
		b->mem_free(b, dg);
		b->mem_free(b, dm);
		b->mem_free(b, dv);
		if (dk)
			b->mem_free(b, dk);
	}
	check_status(what, st);
	cmp_init(&cp);
	cmp_init(&cm);
	cmp_init(&cv);
	for (i = 0; i < n; i++)
	{
		double		ms = fabs((double) b1 * m0[i]) + fabs((1.0 - b1) * g[i]),
					vs = fabs((double) b2 * v0[i]) + fabs((1.0 - b2) * g[i] * g[i]),
					den = sqrt((double) rv[0][i] * c2) + eps;

		cmp_float(&cm, i, rm[0][i], rm[1][i], 1e-6 * ms);
		cmp_float(&cv, i, rv[0][i], rv[1][i], 1e-6 * vs);
		cmp_float(&cp, i, rp[0][i], rp[1][i], 2e-6 * (fabs(p0[i]) + lr * c1 * ms / den));
	}
	cmp_report(&cp, what, "params");
	cmp_report(&cm, what, "m");
	cmp_report(&cv, what, "v");
	check_repeat(what, "params", rp[1], rp[2], sizeof(float) * n);
	check_repeat(what, "m", rm[1], rm[2], sizeof(float) * n);
	check_repeat(what, "v", rv[1], rv[2], sizeof(float) * n);
	free(p0);
	free(g);
	free(m0);
	free(v0);
	free(mask);
	free3((void **) rp);
	free3((void **) rm);
	free3((void **) rv);
}

/* sumsq of n values of magnitude up to scale. */
static void
check_sumsq_case(size_t n, float scale)
{
	float	   *x = rand_floats(n, scale);
	double		res[3],
				tol;
	IsrfStatus	st[3];
	char		what[64];
	int			t;

	snprintf(what, sizeof(what), "sumsq n=%zu scale %g", n, scale);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * n);

		res[t] = -1.0;
		st[t] = finish(b, b->sumsq(b, dx, n, &res[t]));
		b->mem_free(b, dx);
	}
	check_status(what, st);
	tol = self_mode ? 0.0 : 1e-12 * sqrt(n + 1.0) * res[0];
	CHECK_MSG(fabs(res[1] - res[0]) <= tol && isfinite(res[1]),
			  "%s: cpu %.17g, %s %.17g (tol %.3g)", what, res[0], gpu_label, res[1], tol);
	CHECK_MSG(memcmp(&res[1], &res[2], sizeof(double)) == 0, "%s: two %s runs differ",
			  what, gpu_label);
	free(x);
}

static void
test_adamw_sumsq(void)
{
	if (NEED(adamw_step))
	{
		check_adamw_case(0, 1, 1e-3f, 0.01f, false);
		check_adamw_case(1, 1, 1e-3f, 0.01f, false);
		check_adamw_case(7, 1, 1e-3f, 0.01f, true);
		check_adamw_case(4099, 10, 3e-4f, 0.0f, true);
		check_adamw_case(1000003, 1, 1e-3f, 0.01f, false);
		check_adamw_case(1000003, 1000, 1e-3f, 0.1f, true);
	}
	if (NEED(sumsq))
	{
		check_sumsq_case(0, 1.0f);
		check_sumsq_case(1, 1.0f);
		check_sumsq_case(7, 3.0f);
		check_sumsq_case(4099, 1.0f);
		check_sumsq_case(1000003, 1.0f);
		check_sumsq_case(1000, 1e20f);	/* squares overflow float, not double */
	}
}

int
main(void)
{
	if (!parity_nn_open())
		return 0;
	test_adamw_sumsq();
	parity_nn_close();
	UNIT_END(PARITY_NAME);
}
