/*
 * test_parity_nn_softmax.c
 *	  GPU-vs-CPU parity of the softmaxes: the masked causal attention
 *	  softmax forward and backward (t = 1 to 200, no mask, left padding,
 *	  random gaps, all-invalid sequences, large score ranges) and softmax
 *	  cross-entropy with its gradient (v = 1 to 50000, padded leading
 *	  dimensions, ignored and out-of-range targets, loss only, dlogits
 *	  separate or in place), then timings of both at training sizes.
 *	  parity_nn.h says how the parity tests run.
 *
 * Tolerances:
 *
 *	attn_softmax_forward, softmax_ce: a probability p within p (2e-6
 *		sqrt(keys) + 1e-6 (1 + |s - max| + range)) plus 1e-30: the sum of
 *		the exps in another order, and expf's error, which grows with its
 *		argument (range = max - min over the row); row_loss within 2e-6
 *		sqrt(v) + 1e-6 (2 + range + |max| + |l_target| + log v); dlogits
 *		grad_scale times the probability's bound, plus 1e-6 grad_scale at
 *		the target (where grad_scale is subtracted)
 *	attn_softmax_backward: 1e-5 sqrt(r + 1) p (|ds| + sum_j |p ds|) + 1e-30
 *	bitwise 0 (either sign): masked and future keys of attention, invalid
 *		queries, ignored rows of softmax_ce; padding columns untouched
 */
#define PARITY_NAME "test_parity_nn_softmax"
#include "parity_nn.h"

/* ---- attention softmax ---------------------------------------------------- */

typedef enum
{
	VALID_ALL,					/* valid = NULL */
	VALID_LEFT,					/* left padding; sequence q%4==2 all invalid */
	VALID_GAPS					/* random flags (1 or 2), sequence 0 all invalid */
} ValidKind;

/* valid[n_seq, t] of a kind (NULL for VALID_ALL). */
static uint8_t *
make_valid(int n_seq, int t, ValidKind kind)
{
	uint8_t    *v;
	int			q,
				j;

	if (kind == VALID_ALL)
		return NULL;
	v = xmalloc((size_t) n_seq * t);
	for (q = 0; q < n_seq; q++)
	{
		int			len = (q % 4 == 0) ? t : (q % 4 == 1) ? (t + 1) / 2 : (q % 4 == 2) ? 0 : 1;

		for (j = 0; j < t; j++)
		{
			uint8_t    *f = v + (size_t) q * t + j;

			if (kind == VALID_LEFT)
				*f = j >= t - len ? 1 : 0;
			else
				*f = (q == 0 || rand_below(10) < 3) ? 0 : (uint8_t) (1 + rand_below(2));
		}
	}
	return v;
}

/* attn_softmax_forward on b from scores s0; returns the host probabilities. */
static float *
run_attn_forward(IsrfBackend *b, const float *s0, const uint8_t *valid, int n_seq,
				 int nh, int t, IsrfStatus *st, double *secs)
{
	size_t		len = (size_t) n_seq * nh * t * t;
	float	   *ds = to_backend(b, s0, sizeof(float) * len);
	uint8_t    *dv = valid ? to_backend(b, valid, (size_t) n_seq * t) : NULL;
	float	   *out;
	double		t0;

	if (secs)
	{
		/* a first call for the timing: kernel loading, then fresh scores */
		*st = finish(b, b->attn_softmax_forward(b, ds, dv, n_seq, nh, t));
		upload(b, ds, s0, sizeof(float) * len);
	}
	t0 = isrf_now();
	*st = finish(b, b->attn_softmax_forward(b, ds, dv, n_seq, nh, t));
	if (secs)
		*secs = isrf_now() - t0;
	out = from_backend(b, ds, sizeof(float) * len);
	b->mem_free(b, ds);
	if (dv)
		b->mem_free(b, dv);
	return out;
}

/* Probabilities of the device (g) against the reference (r). */
static void
check_attn_forward(const char *what, const float *s0, const uint8_t *valid, int n_seq,
				   int nh, int t, const float *pr, const float *pg)
{
	Cmp			cp,
				cz;
	int			q,
				h,
				r,
				j;

	cmp_init(&cp);
	cmp_init(&cz);
	for (q = 0; q < n_seq; q++)
		for (h = 0; h < nh; h++)
			for (r = 0; r < t; r++)
			{
				size_t		base = (((size_t) q * nh + h) * t + r) * t;
				const uint8_t *vq = valid ? valid + (size_t) q * t : NULL;
				bool		row_ok = !vq || vq[r];
				double		mx = -INFINITY,
							mn = INFINITY;
				int			keys = 0;

				for (j = 0; j <= r && row_ok; j++)
					if (!vq || vq[j])
					{
						mx = fmax(mx, s0[base + j]);
						mn = fmin(mn, s0[base + j]);
						keys++;
					}
				for (j = 0; j < t; j++)
				{
					size_t		e = base + j;

					if (!row_ok || j > r || (vq && !vq[j]))
						cmp_zero(&cz, e, pr[e], pg[e]);
					else
						cmp_float(&cp, e, pr[e], pg[e],
								  pr[e] * (2e-6 * sqrt((double) keys) +
										   1e-6 * (1.0 + (mx - s0[e]) + (mx - mn))) + 1e-30);
				}
			}
	cmp_report(&cp, what, "probabilities");
	cmp_report(&cz, what, "masked, future and invalid entries are 0");
}

/* attn_softmax_backward on b; returns the host gradient. */
static float *
run_attn_backward(IsrfBackend *b, const float *ds0, const float *p, int n_mat, int t,
				  IsrfStatus *st, double *secs)
{
	size_t		len = (size_t) n_mat * t * t;
	float	   *dds = to_backend(b, ds0, sizeof(float) * len);
	float	   *dp = to_backend(b, p, sizeof(float) * len);
	float	   *out;
	double		t0;

	if (secs)
	{
		*st = finish(b, b->attn_softmax_backward(b, dds, dp, n_mat, t));
		upload(b, dds, ds0, sizeof(float) * len);
	}
	t0 = isrf_now();
	*st = finish(b, b->attn_softmax_backward(b, dds, dp, n_mat, t));
	if (secs)
		*secs = isrf_now() - t0;
	out = from_backend(b, dds, sizeof(float) * len);
	b->mem_free(b, dds);
	b->mem_free(b, dp);
	return out;
}

/* Softmax gradients of the device (g) against the reference (r). */
static void
check_attn_backward(const char *what, const float *ds0, const float *p, int n_mat, int t,
					const float *gr, const float *gg)
{
	Cmp			cg,
				cz;
	int			q,
				r,
				j;

	cmp_init(&cg);
	cmp_init(&cz);
	for (q = 0; q < n_mat; q++)
		for (r = 0; r < t; r++)
		{
			size_t		base = ((size_t) q * t + r) * t;
			double		dot_abs = 0.0;

			for (j = 0; j <= r; j++)
				dot_abs += fabs((double) p[base + j] * ds0[base + j]);
			for (j = 0; j < t; j++)
			{
				size_t		e = base + j;

				if (j > r)
					cmp_zero(&cz, e, gr[e], gg[e]);
				else
					cmp_float(&cg, e, gr[e], gg[e],
							  1e-5 * sqrt(r + 1.0) * p[e] * (fabs(ds0[e]) + dot_abs) + 1e-30);
			}
		}
	cmp_report(&cg, what, "gradient");
	cmp_report(&cz, what, "future entries are 0");
}

/* Forward on random scores, then backward from the reference's probabilities. */
static void
check_attn_case(int n_seq, int nh, int t, ValidKind kind, float score_scale)
{
	size_t		len = (size_t) n_seq * nh * t * t;
	float	   *s0 = rand_floats(len, score_scale),
			   *ds0 = rand_floats(len, 1.0f);
	uint8_t    *valid = make_valid(n_seq, t, kind);
	float	   *pf[3],
			   *gb[3];
	IsrfStatus	st[3];
	char		what[128];
	int			tt;

	snprintf(what, sizeof(what), "attn_softmax_forward %d seq x %d heads t=%d valid %s scores x%g",
			 n_seq, nh, t, kind == VALID_ALL ? "NULL" : kind == VALID_LEFT ? "left-padded" : "gaps",
			 score_scale);
	for (tt = 0; tt < 3; tt++)
		pf[tt] = run_attn_forward(runner(tt), s0, valid, n_seq, nh, t, &st[tt], NULL);
	check_status(what, st);
	check_attn_forward(what, s0, valid, n_seq, nh, t, pf[0], pf[1]);
	check_repeat(what, "probabilities", pf[1], pf[2], sizeof(float) * len);

	snprintf(what, sizeof(what), "attn_softmax_backward %d mat t=%d (valid %s)", n_seq * nh, t,
			 kind == VALID_ALL ? "NULL" : kind == VALID_LEFT ? "left-padded" : "gaps");
	for (tt = 0; tt < 3; tt++)
		gb[tt] = run_attn_backward(runner(tt), ds0, pf[0], n_seq * nh, t, &st[tt], NULL);
	check_status(what, st);
	check_attn_backward(what, ds0, pf[0], n_seq * nh, t, gb[0], gb[1]);
	check_repeat(what, "gradient", gb[1], gb[2], sizeof(float) * len);
	free(s0);
	free(ds0);
	free(valid);
	free3((void **) pf);
	free3((void **) gb);
}

static void
test_attention(void)
{
	if (!NEED(attn_softmax_forward) || !NEED(attn_softmax_backward))
		return;
	check_attn_case(0, 2, 5, VALID_ALL, 3.0f);
	check_attn_case(2, 0, 5, VALID_LEFT, 3.0f);
	check_attn_case(1, 1, 0, VALID_ALL, 3.0f);
	check_attn_case(1, 1, 1, VALID_ALL, 3.0f);
	check_attn_case(4, 1, 1, VALID_LEFT, 3.0f);		/* t = 1, one sequence all invalid */
	check_attn_case(4, 3, 7, VALID_LEFT, 3.0f);
	check_attn_case(5, 2, 33, VALID_GAPS, 3.0f);
	check_attn_case(3, 2, 50, VALID_ALL, 50.0f);	/* exps down to e^-100 */
	check_attn_case(8, 2, 50, VALID_LEFT, 3.0f);
	check_attn_case(4, 4, 200, VALID_LEFT, 3.0f);
	check_attn_case(2, 2, 200, VALID_GAPS, 8.0f);
	check_attn_case(2, 1, 200, VALID_ALL, 3.0f);
}

/* ---- softmax cross-entropy ------------------------------------------------ */

typedef enum
{
	CE_LOSS_ONLY,				/* dlogits = NULL */
	CE_SEPARATE,				/* dlogits its own buffer */
	CE_IN_PLACE					/* dlogits = logits */
} CeMode;

/* softmax_ce on b; *loss gets row_loss[n], *dl the dlogits buffer (n x ld). */
static IsrfStatus
run_ce(IsrfBackend *b, const float *logits, int ld, const int32_t *targets, int n, int v,
	   float gs, CeMode mode, const float *dl0, float **loss, float **dl, double *secs)
{
	size_t		len = (size_t) n * ld;
	float	   *dlog = to_backend(b, logits, sizeof(float) * len);
	int32_t    *dt = to_backend(b, targets, sizeof(int32_t) * n);
	float	   *dloss = dev_alloc(b, sizeof(float) * n);
	float	   *dg = mode == CE_SEPARATE ? to_backend(b, dl0, sizeof(float) * len) :
		mode == CE_IN_PLACE ? dlog : NULL;
	IsrfStatus	st = ISRF_OK;
	double		t0;

	if (secs)
	{
		st = finish(b, b->softmax_ce(b, dlog, ld, dt, n, v, gs, dloss, dg));
		upload(b, dlog, logits, sizeof(float) * len);
	}
	t0 = isrf_now();
	if (st == ISRF_OK)
		st = finish(b, b->softmax_ce(b, dlog, ld, dt, n, v, gs, dloss, dg));
	if (secs)
		*secs = isrf_now() - t0;
	*loss = from_backend(b, dloss, sizeof(float) * n);
	*dl = dg ? from_backend(b, dg, sizeof(float) * len) : NULL;
	b->mem_free(b, dlog);
	b->mem_free(b, dt);
	b->mem_free(b, dloss);
	if (mode == CE_SEPARATE)
		b->mem_free(b, dg);
	return st;
}

/* Loss and gradient of the device (g) against the reference (r). */
static void
check_ce(const char *what, const float *logits, int ld, const int32_t *targets, int n,
		 int v, float gs, const float *dl0, const float *loss_r, const float *loss_g,
		 const float *dl_r, const float *dl_g)
{
	Cmp			cl,
				cg,
				cz,
				cpad;
	double		sv = sqrt((double) v),
				lv = log((double) v);
	int			i,
				j;

	cmp_init(&cl);
	cmp_init(&cg);
	cmp_init(&cz);
	cmp_init(&cpad);
	for (i = 0; i < n; i++)
	{
		const float *li = logits + (size_t) i * ld;
		size_t		base = (size_t) i * ld;
		int32_t		y = targets[i];
		double		mx = -INFINITY,
					mn = INFINITY,
					sum = 0.0;

		if (y < 0)
		{
			cmp_zero(&cz, i, loss_r[i], loss_g[i]);
			for (j = 0; j < v && dl_r; j++)
				cmp_zero(&cz, base + j, dl_r[base + j], dl_g[base + j]);
		}
		else
		{
			for (j = 0; j < v; j++)
			{
				mx = fmax(mx, li[j]);
				mn = fmin(mn, li[j]);
			}
			for (j = 0; j < v; j++)
				sum += exp(li[j] - mx);
			cmp_float(&cl, i, loss_r[i], loss_g[i],
					  2e-6 * sv + 1e-6 * (2.0 + (mx - mn) + fabs(mx) + fabs(li[y]) + lv));
			for (j = 0; j < v && dl_r; j++)
			{
				double		p = exp(li[j] - mx) / sum;
				double		tol = fabs(gs) * (p * (2e-6 * sv + 1e-6 * (1.0 + (mx - li[j]) + (mx - mn))) +
											  (j == y ? 1e-6 : 0.0) + 1e-30);

				cmp_float(&cg, base + j, dl_r[base + j], dl_g[base + j], tol);
			}
		}
		/* the padding columns past v are not written */
		for (j = v; j < ld && dl_r; j++)
			cmp_exact(&cpad, base + j, dl0[base + j], dl_g[base + j]);
	}
	cmp_report(&cl, what, "row_loss");
	if (dl_r)
		cmp_report(&cg, what, "dlogits");
	cmp_report(&cz, what, "ignored rows are 0");
	if (dl_r)
		cmp_report(&cpad, what, "padding columns untouched");
}

/* n rows of v classes (leading dimension v + pad); some targets ignored. */
static void
check_ce_case(int n, int v, int pad, float scale, float gs, CeMode mode, bool all_ignored)
{
	int			ld = v + pad;
	size_t		len = (size_t) n * ld;
	float	   *logits = rand_floats(len, scale),
			   *dl0 = mode == CE_IN_PLACE ? logits : rand_floats(len, 1.0f);
	int32_t    *targets = xmalloc(sizeof(int32_t) * (n > 0 ? n : 1));
	float	   *loss[3],
			   *dl[3];
	IsrfStatus	st[3];
	char		what[128];
	int			i,
				t;

	for (i = 0; i < n; i++)
		targets[i] = all_ignored || i % 5 == 3 ? -1 : i % 11 == 7 ? -7 : rand_below(v);
	if (n > 0 && v > 1 && !all_ignored)
		targets[0] = v - 1;		/* the last class, once */
	snprintf(what, sizeof(what), "softmax_ce %dx%d ld %d logits x%g grad_scale %g %s%s",
			 n, v, ld, scale, gs, mode == CE_LOSS_ONLY ? "loss only" :
			 mode == CE_SEPARATE ? "dlogits" : "dlogits in place",
			 all_ignored ? " all ignored" : "");
	for (t = 0; t < 3; t++)
		st[t] = run_ce(runner(t), logits, ld, targets, n, v, gs, mode, dl0,
					   &loss[t], &dl[t], NULL);
	check_status(what, st);
	check_ce(what, logits, ld, targets, n, v, gs, dl0, loss[0], loss[1], dl[0], dl[1]);
	check_repeat(what, "row_loss", loss[1], loss[2], sizeof(float) * n);
	if (dl[1])
		check_repeat(what, "dlogits", dl[1], dl[2], sizeof(float) * len);
	free(logits);
	if (dl0 != logits)
		free((void *) dl0);
	free(targets);
	free3((void **) loss);
	free3((void **) dl);
}

static void
test_softmax_ce(void)
{
	if (!NEED(softmax_ce))
		return;
	check_ce_case(0, 5, 0, 1.0f, 1.0f, CE_SEPARATE, false);
	check_ce_case(1, 1, 0, 1.0f, 1.0f, CE_SEPARATE, false);		/* v = 1 */
	check_ce_case(6, 1, 3, 1.0f, 0.5f, CE_IN_PLACE, false);
	check_ce_case(5, 7, 3, 1.0f, 1.0f, CE_SEPARATE, false);
	check_ce_case(5, 7, 3, 1.0f, 1.0f, CE_LOSS_ONLY, false);
	check_ce_case(4, 33, 0, 1.0f, 1.0f, CE_SEPARATE, true);
	check_ce_case(64, 1000, 1, 1.0f, 1.0f / 64, CE_SEPARATE, false);
	check_ce_case(64, 1000, 0, 30.0f, 1.0f / 64, CE_IN_PLACE, false);
	check_ce_case(16, 50000, 0, 1.0f, 1.0f / 16, CE_SEPARATE, false);
	check_ce_case(16, 50000, 5, 10.0f, 2.0f, CE_IN_PLACE, false);
	check_ce_case(300, 12101, 0, 3.0f, 1.0f / 300, CE_SEPARATE, false);
	check_ce_case(37, 4097, 2, 1.0f, 1.0f, CE_LOSS_ONLY, false);
}

/* ---- bad shapes ------------------------------------------------------------ */

static void
refusals(IsrfBackend *b, float *f)
{
	uint8_t    *u8 = (uint8_t *) f;
	int32_t    *i32 = (int32_t *) f;

	if (b->attn_softmax_forward)
	{
		expect_invalid(b, b->attn_softmax_forward(b, f, NULL, -1, 1, 2), "attn_softmax_forward n_seq=-1");
		expect_invalid(b, b->attn_softmax_forward(b, f, u8, 1, -1, 2), "attn_softmax_forward n_heads=-1");
		expect_invalid(b, b->attn_softmax_forward(b, f, NULL, 1, 1, -2), "attn_softmax_forward t=-2");
	}
	if (b->attn_softmax_backward)
	{
		expect_invalid(b, b->attn_softmax_backward(b, f, f, -1, 2), "attn_softmax_backward n_mat=-1");
		expect_invalid(b, b->attn_softmax_backward(b, f, f, 1, -1), "attn_softmax_backward t=-1");
	}
	if (b->softmax_ce)
	{
		expect_invalid(b, b->softmax_ce(b, f, 4, i32, -1, 4, 1.0f, f, NULL), "softmax_ce n=-1");
		expect_invalid(b, b->softmax_ce(b, f, 4, i32, 2, -4, 1.0f, f, f), "softmax_ce v=-4");
		expect_invalid(b, b->softmax_ce(b, f, 3, i32, 2, 4, 1.0f, f, f), "softmax_ce ld < v");
	}
}

/* ---- timings --------------------------------------------------------------- */

static void
timings(void)
{
	if (cpu->attn_softmax_forward && gpu->attn_softmax_forward &&
		cpu->attn_softmax_backward && gpu->attn_softmax_backward)
	{
		static const int shapes[][3] = {{256, 2, 50}, {64, 2, 200}};
		size_t		k;

		for (k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++)
		{
			int			n_seq = shapes[k][0],
						nh = shapes[k][1],
						t = shapes[k][2];
			size_t		len = (size_t) n_seq * nh * t * t;
			float	   *s0 = rand_floats(len, 3.0f),
					   *ds0 = rand_floats(len, 1.0f);
			uint8_t    *valid = make_valid(n_seq, t, VALID_LEFT);
			float	   *pc,
					   *pg,
					   *gc,
					   *gg;
			IsrfStatus	st;
			double		fc,
						fg,
						bc,
						bg;
			char		what[96];

			snprintf(what, sizeof(what), "attention softmax timing %dx%dx%d", n_seq, nh, t);
			pc = run_attn_forward(cpu, s0, valid, n_seq, nh, t, &st, &fc);
			CHECK(st == ISRF_OK);
			pg = run_attn_forward(gpu, s0, valid, n_seq, nh, t, &st, &fg);
			CHECK(st == ISRF_OK);
			check_attn_forward(what, s0, valid, n_seq, nh, t, pc, pg);
			gc = run_attn_backward(cpu, ds0, pc, n_seq * nh, t, &st, &bc);
			CHECK(st == ISRF_OK);
			gg = run_attn_backward(gpu, ds0, pc, n_seq * nh, t, &st, &bg);
			CHECK(st == ISRF_OK);
			check_attn_backward(what, ds0, pc, n_seq * nh, t, gc, gg);
			printf("timing: attention softmax %d seq x %d heads x t=%d: forward cpu %.4f s, %s %.5f s; "
				   "backward cpu %.4f s, %s %.5f s\n",
				   n_seq, nh, t, fc, gpu_label, fg, bc, gpu_label, bg);
			free(s0);
			free(ds0);
			free(valid);
			free(pc);
			free(pg);
			free(gc);
			free(gg);
		}
	}
	if (cpu->softmax_ce && gpu->softmax_ce)
	{
		int			n = 2048,
					v = 12101,
					i;
		float	   *logits = rand_floats((size_t) n * v, 3.0f);
		int32_t    *targets = xmalloc(sizeof(int32_t) * n);
		float	   *lc,
				   *lg,
				   *dc,
				   *dg;
		double		sc,
					sg;

		for (i = 0; i < n; i++)
			targets[i] = i % 10 == 9 ? -1 : rand_below(v);
		CHECK(run_ce(cpu, logits, v, targets, n, v, 1.0f / n, CE_SEPARATE, logits, &lc, &dc, &sc) == ISRF_OK);
		CHECK(run_ce(gpu, logits, v, targets, n, v, 1.0f / n, CE_SEPARATE, logits, &lg, &dg, &sg) == ISRF_OK);
		check_ce("softmax_ce timing", logits, v, targets, n, v, 1.0f / n, logits, lc, lg, dc, dg);
		printf("timing: softmax_ce %dx%d with dlogits: cpu %.4f s, %s %.5f s\n",
			   n, v, sc, gpu_label, sg);
		free(logits);
		free(targets);
		free(lc);
		free(lg);
		free(dc);
		free(dg);
	}
}

int
main(void)
{
	if (!parity_nn_open())
		return 0;
	test_attention();
	test_softmax_ce();
	parity_nn_refusals(refusals);
	timings();
	parity_nn_close();
	UNIT_END(PARITY_NAME);
}
