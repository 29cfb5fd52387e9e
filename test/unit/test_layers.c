/*
 * test_layers.c
 *	  Unit tests of the neural-network layers (nn.c) and the optimizer
 *	  (optim.c).  Every layer's backward is checked against central finite
 *	  differences of a scalar loss L = sum(r * out) with a fixed random r;
 *	  the loss is accumulated in double.  Unless a test says otherwise an
 *	  entry passes when |analytic - numeric| <= FD_ATOL + FD_RTOL * |numeric|
 *	  with step FD_H; float32 forward noise is about 1e-6 / (2 FD_H) = 1e-4.
 */
#include "nn/layers.h"
#include "nn/optim.h"
#include "unit.h"

#include <string.h>

#define FD_H 5e-3f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

static IsrfEnv env;
static IsrfBackend *be;
static unsigned long long rng = 12345;

typedef double (*LossFn) (void *ctx);

static float *
rand_array(size_t n, float scale)
{
	float	   *a = malloc(sizeof(float) * (n ? n : 1));
	size_t		i;

	for (i = 0; i < n; i++)
		a[i] = scale * unit_rand_uniform(&rng);
	return a;
}

static float *
zeros(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

static double
dot_d(const float *a, const float *b, size_t n)
{
	double		s = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
		s += (double) a[i] * b[i];
	return s;
}

/*
 * Compare grad[n] (analytic dL/dx) with central differences of f over x.
 * Returns the number of entries out of tolerance.
 */
static int
fd_check(const char *what, LossFn f, void *ctx, float *x, const float *grad,
		 size_t n, float h, double atol, double rtol)
{
	size_t		i,
				bad = 0,
				worst_i = 0;
	double		worst = 0.0,
				worst_num = 0.0;

	for (i = 0; i < n; i++)
	{
		float		save = x[i];
		double		lp,
					lm,
					num,
					err;
		float		xp = save + h,
					xm = save - h;

		x[i] = xp;
		lp = f(ctx);
		x[i] = xm;
		lm = f(ctx);
		x[i] = save;
		num = (lp - lm) / ((double) xp - (double) xm);
		err = fabs(num - grad[i]);
		if (!(err <= atol + rtol * fabs(num)))
			bad++;
		if (err > worst || err != err)
		{
			worst = err;
			worst_i = i;
			worst_num = num;
		}
	}
	CHECK_MSG(bad == 0, "%s: %zu of %zu entries off; worst |a-n| = %g at %zu (analytic %g, numeric %g)",
			  what, bad, n, worst, worst_i, (double) grad[worst_i], worst_num);
	return (int) bad;
}

/* ---- embedding ------------------------------------------------------------ */

typedef struct
{
	int32_t    *ids;
	int			n,
				rows,
				d;
	float	   *table,
			   *out,
			   *r;
} EmbCtx;

static double
emb_loss(void *p)
{
	EmbCtx	   *c = p;

	isrf_nn_embedding_forward(be, c->out, c->ids, c->n, c->table, c->rows, c->d);
	return dot_d(c->out, c->r, (size_t) c->n * c->d);
}

static void
test_embedding(void)
{
	int32_t		ids[] = {2, 0, -1, 2, 3, 2};
	EmbCtx		c = {ids, 6, 4, 5, NULL, NULL, NULL};
	float	   *dt = zeros(20);
	int32_t		bad_ids[] = {1, 4};

	c.table = rand_array(20, 1.0f);
	c.out = zeros(30);
	c.r = rand_array(30, 1.0f);
	emb_loss(&c);
	CHECK(memcmp(c.out + 0, c.table + 10, 5 * sizeof(float)) == 0);
	CHECK(c.out[10] == 0.0f && c.out[14] == 0.0f);	/* padding row */
	isrf_nn_embedding_backward(be, dt, ids, 6, c.r, 5);
	/* row 2 collects three rows of r; row 1 none */
	CHECK_NEAR(dt[10], c.r[0] + c.r[15] + c.r[25], 1e-6);
	CHECK(dt[5] == 0.0f);
	fd_check("embedding dtable", emb_loss, &c, c.table, dt, 20, FD_H, FD_ATOL, FD_RTOL);
	CHECK(isrf_nn_embedding_forward(be, c.out, bad_ids, 2, c.table, 4, 5) == ISRF_ERR_INVALID);
	CHECK(strstr(env.errmsg, "id 4") != NULL);
	free(c.table);
	free(c.out);
	free(c.r);
	free(dt);
}

/* ---- linear ------------------------------------------------------------------ */

typedef struct
{
	int			n,
				in,
				out;
	float	   *x,
			   *w,
			   *b,
			   *y,
			   *r;
} LinCtx;

static double
lin_loss(void *p)
{
	LinCtx	   *c = p;

	isrf_nn_linear_forward(be, c->y, c->x, c->w, c->b, c->n, c->in, c->out);
	return dot_d(c->y, c->r, (size_t) c->n * c->out);
}

static void
test_linear(void)
{
	LinCtx		c = {5, 7, 6, NULL, NULL, NULL, NULL, NULL};
	float	   *dx = zeros(35),
			   *dw = zeros(42),
			   *db = zeros(6);
	double		ref;
	int			i,
				j;

	c.x = rand_array(35, 1.0f);
	c.w = rand_array(42, 1.0f);
	c.b = rand_array(6, 1.0f);
	c.y = zeros(30);
	c.r = rand_array(30, 1.0f);
	lin_loss(&c);
	/* one output against the definition */
	ref = c.b[4];
	for (j = 0; j < 7; j++)
		ref += (double) c.x[2 * 7 + j] * c.w[4 * 7 + j];
	CHECK_NEAR(c.y[2 * 6 + 4], ref, 1e-5);
	CHECK(isrf_nn_linear_backward(be, dx, dw, db, c.r, c.x, c.w, 5, 7, 6) == ISRF_OK);
	fd_check("linear dx", lin_loss, &c, c.x, dx, 35, FD_H, FD_ATOL, FD_RTOL);
	fd_check("linear dw", lin_loss, &c, c.w, dw, 42, FD_H, FD_ATOL, FD_RTOL);
	fd_check("linear db", lin_loss, &c, c.b, db, 6, FD_H, FD_ATOL, FD_RTOL);

	/* backward accumulates: a second call doubles every gradient */
	{
		float	   *dx2 = malloc(sizeof(float) * 35);

		memcpy(dx2, dx, sizeof(float) * 35);
		isrf_nn_linear_backward(be, dx2, NULL, NULL, c.r, c.x, c.w, 5, 7, 6);
		for (i = 0; i < 35; i++)
			if (fabsf(dx2[i] - 2.0f * dx[i]) > 1e-5f)
				break;
		CHECK_MSG(i == 35, "linear backward did not accumulate at %d", i);
		free(dx2);
	}
	free(c.x);
	free(c.w);
	free(c.b);
	free(c.y);
	free(c.r);
	free(dx);
	free(dw);
	free(db);
}

/* ---- LayerNorm ---------------------------------------------------------------- */

typedef struct
{
	int			n,
				c;
	float	   *x,
			   *w,
			   *b,
			   *out,
			   *mean,
			   *rstd,
			   *r;
} LnCtx;

static double
ln_loss(void *p)
{
	LnCtx	   *c = p;

	isrf_nn_layernorm_forward(be, c->out, c->mean, c->rstd, c->x, c->w, c->b, c->n, c->c);
	return dot_d(c->out, c->r, (size_t) c->n * c->c);
}

static void
test_layernorm(void)
{
	LnCtx		c = {4, 9, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
	float	   *dx = zeros(36),
			   *dw = zeros(9),
			   *db = zeros(9);
	double		m = 0.0,
				v = 0.0;
	int			j;

	c.x = rand_array(36, 2.0f);
	for (j = 0; j < 9; j++)
		c.x[j] += 3.0f;			/* an offset row */
	c.w = rand_array(9, 1.0f);
	c.b = rand_array(9, 1.0f);
	c.out = zeros(36);
	c.mean = zeros(4);
	c.rstd = zeros(4);
	c.r = rand_array(36, 1.0f);
	ln_loss(&c);
	for (j = 0; j < 9; j++)
		m += c.x[9 + j];
	m /= 9;
	for (j = 0; j < 9; j++)
		v += (c.x[9 + j] - m) * (c.x[9 + j] - m);
	v /= 9;
	CHECK_NEAR(c.mean[1], m, 1e-6);
	CHECK_NEAR(c.out[9 + 3], (c.x[12] - m) / sqrt(v + 1e-5) * c.w[3] + c.b[3], 1e-5);
	isrf_nn_layernorm_backward(be, dx, dw, db, c.r, c.x, c.w, c.mean, c.rstd, 4, 9);
	fd_check("layernorm dx", ln_loss, &c, c.x, dx, 36, FD_H, FD_ATOL, FD_RTOL);
	fd_check("layernorm dw", ln_loss, &c, c.w, dw, 9, FD_H, FD_ATOL, FD_RTOL);
	fd_check("layernorm db", ln_loss, &c, c.b, db, 9, FD_H, FD_ATOL, FD_RTOL);
	free(c.x);
	free(c.w);
	free(c.b);
	free(c.out);
	free(c.mean);
	free(c.rstd);
	free(c.r);
	free(dx);
	free(dw);
	free(db);
}

/* ---- GELU, residual, dropout ------------------------------------------------ */

typedef struct
{
	size_t		n;
	float	   *x,
			   *x2,
			   *out,
			   *r;
	int			kind;			/* 0 gelu, 1 residual, 2 dropout */
	float		p;
	uint64_t	seed;
} EwCtx;

static double
ew_loss(void *p)
{
	EwCtx	   *c = p;

	if (c->kind == 0)
		isrf_nn_gelu_forward(be, c->out, c->x, c->n);
	else if (c->kind == 1)
		isrf_nn_residual_forward(be, c->out, c->x, c->x2, c->n);
	else
		isrf_nn_dropout_forward(be, c->out, c->x, c->n, c->p, c->seed);
	return dot_d(c->out, c->r, c->n);
}

static void
test_elementwise(void)
{
	EwCtx		c = {40, NULL, NULL, NULL, NULL, 0, 0.3f, 77};
	float	   *dx = zeros(40),
			   *dx2 = zeros(40);
	size_t		i,
				zero_count;
	float	   *o1,
			   *o2;

	c.x = rand_array(40, 3.0f);
	c.x2 = rand_array(40, 1.0f);
	c.out = zeros(40);
	c.r = rand_array(40, 1.0f);

	/* GELU against the tanh formula and known values */
	ew_loss(&c);
	CHECK_NEAR(c.out[5], 0.5 * c.x[5] * (1.0 + tanh(sqrt(2.0 / M_PI) * (c.x[5] + 0.044715 * pow(c.x[5], 3)))), 1e-6);
	{
		float		xs[3] = {0.0f, 1.0f, -1.0f},
					ys[3];

		isrf_nn_gelu_forward(be, ys, xs, 3);
		CHECK(ys[0] == 0.0f);
		CHECK_NEAR(ys[1], 0.841192, 1e-5);
		CHECK_NEAR(ys[2], -0.158808, 1e-5);
	}
	/* 4-lane and scalar paths agree bitwise; accuracy over a wide range */
	{
		size_t		m = 1003,
					k,
					same = 0;
		float	   *xs = rand_array(m, 12.0f),
				   *ys = zeros(m),
				   *gs = zeros(m),
				   *ones = malloc(sizeof(float) * m);
		double		worst = 0.0,
					worst_g = 0.0;

		for (k = 0; k < m; k++)
			ones[k] = 1.0f;
		isrf_nn_gelu_forward(be, ys, xs, m);
		isrf_nn_gelu_backward(be, gs, xs, ones, m);
		for (k = 0; k < m; k++)
		{
			float		y1,
						g1 = 0.0f,
						one = 1.0f;
			double		xd = xs[k],
						th = tanh(sqrt(2.0 / M_PI) * (xd + 0.044715 * xd * xd * xd)),
						yd = 0.5 * xd * (1.0 + th),
						gd = 0.5 * (1.0 + th) + 0.5 * xd * (1.0 - th * th) *
						sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * xd * xd);

			isrf_nn_gelu_forward(be, &y1, xs + k, 1);
			isrf_nn_gelu_backward(be, &g1, xs + k, &one, 1);
			same += (y1 == ys[k] && g1 == gs[k]);
			worst = fmax(worst, fabs(yd - ys[k]) / fmax(1.0, fabs(xd)));
			worst_g = fmax(worst_g, fabs(gd - gs[k]));
		}
		CHECK_MSG(same == m, "gelu: %zu of %zu entries differ between vector and scalar paths", m - same, m);
		CHECK_MSG(worst < 1e-6, "gelu forward error %g", worst);
		CHECK_MSG(worst_g < 2e-6, "gelu derivative error %g", worst_g);
		free(xs);
		free(ys);
		free(gs);
		free(ones);
	}
	isrf_nn_gelu_backward(be, dx, c.x, c.r, 40);
	fd_check("gelu dx", ew_loss, &c, c.x, dx, 40, FD_H, FD_ATOL, FD_RTOL);

	/* residual */
	c.kind = 1;
	memset(dx, 0, sizeof(float) * 40);
	isrf_nn_accumulate(be, dx, c.r, 40);
	isrf_nn_accumulate(be, dx2, c.r, 40);
	fd_check("residual da", ew_loss, &c, c.x, dx, 40, FD_H, FD_ATOL, FD_RTOL);
	fd_check("residual db", ew_loss, &c, c.x2, dx2, 40, FD_H, FD_ATOL, FD_RTOL);

	/* dropout: gradient, replay, rate, in place */
	c.kind = 2;
	memset(dx, 0, sizeof(float) * 40);
	isrf_nn_dropout_backward(be, dx, c.r, 40, c.p, c.seed);
	fd_check("dropout dx", ew_loss, &c, c.x, dx, 40, FD_H, FD_ATOL, FD_RTOL);
	free(c.x);
	free(c.x2);
	free(c.out);
	free(c.r);
	free(dx);
	free(dx2);

	{
		size_t		n = 100000;
		float	   *x = rand_array(n, 1.0f),
				   *g = zeros(n),
				   *ones = malloc(sizeof(float) * n);

		o1 = zeros(n);
		o2 = malloc(sizeof(float) * n);
		for (i = 0; i < n; i++)
			ones[i] = 1.0f;
		isrf_nn_dropout_forward(be, o1, x, n, 0.25f, 99);
		memcpy(o2, x, sizeof(float) * n);
		isrf_nn_dropout_forward(be, o2, o2, n, 0.25f, 99);	/* in place */
		CHECK(memcmp(o1, o2, sizeof(float) * n) == 0);
		zero_count = 0;
		for (i = 0; i < n; i++)
		{
			if (o1[i] == 0.0f)
				zero_count++;
			else if (fabsf(o1[i] - x[i] / 0.75f) > 1e-6f)
				break;
		}
		CHECK_MSG(i == n, "kept element %zu not scaled by 1/(1-p)", i);
		/* binomial sd is ~137: 5 sd either side */
		CHECK_MSG(zero_count > 24300 && zero_count < 25700, "dropout zeroed %zu of 100000 at p=0.25", zero_count);
		/* backward reuses exactly the forward mask */
		isrf_nn_dropout_backward(be, g, ones, n, 0.25f, 99);
		for (i = 0; i < n; i++)
			if ((g[i] == 0.0f) != (o1[i] == 0.0f && x[i] != 0.0f))
				break;
		CHECK_MSG(i == n, "dropout backward mask differs at %zu", i);
		isrf_nn_dropout_forward(be, o2, x, n, 0.25f, 100);
		CHECK(memcmp(o1, o2, sizeof(float) * n) != 0);
		isrf_nn_dropout_forward(be, o2, x, n, 0.0f, 100);
		CHECK(memcmp(o2, x, sizeof(float) * n) == 0);
		free(x);
		free(g);
		free(ones);
		free(o1);
		free(o2);
	}
}

/* ---- attention ------------------------------------------------------------------ */

typedef struct
{
	int			b,
				t,
				c,
				h;
	float	   *qkv,
			   *out,
			   *att,
			   *r;
	const uint8_t *valid;
} AttCtx;

static double
att_loss(void *p)
{
	AttCtx	   *c = p;

	isrf_nn_attention_forward(be, c->out, c->att, c->qkv, c->valid, c->b, c->t, c->c, c->h);
	return dot_d(c->out, c->r, (size_t) c->b * c->t * c->c);
}

/* Plain reference of one output entry in double. */
static double
att_ref(const AttCtx *c, int bi, int ti, int ci)
{
	int			hs = c->c / c->h,
				hh = ci / hs,
				s,
				j;
	const float *base = c->qkv + (size_t) bi * c->t * 3 * c->c;
	double		w[64],
				mx = -1e300,
				sum = 0.0,
				out = 0.0;

	if (c->valid && !c->valid[bi * c->t + ti])
		return 0.0;
	for (s = 0; s <= ti; s++)
	{
		w[s] = -1e300;
		if (c->valid && !c->valid[bi * c->t + s])
			continue;
		w[s] = 0.0;
		for (j = 0; j < hs; j++)
			w[s] += (double) base[ti * 3 * c->c + hh * hs + j] *
				base[s * 3 * c->c + c->c + hh * hs + j];
		w[s] /= sqrt((double) hs);
		if (w[s] > mx)
			mx = w[s];
	}
	for (s = 0; s <= ti; s++)
		if (w[s] > -1e299)
			sum += exp(w[s] - mx);
	for (s = 0; s <= ti; s++)
		if (w[s] > -1e299)
			out += exp(w[s] - mx) / sum * base[s * 3 * c->c + 2 * c->c + ci];
	return out;
}

static void
test_attention(void)
{
	/* seq 0 left padded by 2; seq 1 prefix, gap, items; seq 2 full */
	uint8_t		valid[] = {0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1};
	AttCtx		c = {3, 5, 8, 2, NULL, NULL, NULL, NULL, valid};
	size_t		nq = 3 * 5 * 24,
				no = 3 * 5 * 8;
	float	   *dqkv = zeros(nq),
			   *scratch = zeros(3 * 2 * 25),
			   *out0 = zeros(no);
	double		worst = 0.0;
	int			bi,
				ti,
				ci,
				i,
				ok;

	c.qkv = rand_array(nq, 1.5f);
	c.out = zeros(no);
	c.att = zeros(3 * 2 * 25);
	c.r = rand_array(no, 1.0f);
	att_loss(&c);
	for (bi = 0; bi < 3; bi++)
		for (ti = 0; ti < 5; ti++)
			for (ci = 0; ci < 8; ci++)
			{
				double		d = fabs(att_ref(&c, bi, ti, ci) - c.out[(bi * 5 + ti) * 8 + ci]);

				if (d > worst)
					worst = d;
			}
	CHECK_MSG(worst < 1e-5, "attention forward differs from reference by %g", worst);
	CHECK(isrf_nn_attention_backward(be, dqkv, scratch, c.r, c.qkv, c.att, 3, 5, 8, 2) == ISRF_OK);
	fd_check("attention dqkv (masked)", att_loss, &c, c.qkv, dqkv, nq, FD_H, FD_ATOL, FD_RTOL);

	/* padded positions: zero output, and no gradient reaches them */
	ok = 1;
	for (bi = 0; bi < 3; bi++)
		for (ti = 0; ti < 5; ti++)
			if (!valid[bi * 5 + ti])
			{
				for (i = 0; i < 8; i++)
					ok &= c.out[(bi * 5 + ti) * 8 + i] == 0.0f;
				for (i = 0; i < 24; i++)
					ok &= dqkv[(bi * 5 + ti) * 24 + i] == 0.0f;
			}
	CHECK_MSG(ok, "padded positions have output or gradient");

	/* causality: changing position 3 of seq 2 leaves outputs 0..2 bitwise equal */
	memcpy(out0, c.out, sizeof(float) * no);
	for (i = 0; i < 24; i++)
		c.qkv[(2 * 5 + 3) * 24 + i] += 0.5f;
	att_loss(&c);
	CHECK(memcmp(out0 + 2 * 5 * 8, c.out + 2 * 5 * 8, sizeof(float) * 3 * 8) == 0);
	CHECK(memcmp(out0 + (2 * 5 + 3) * 8, c.out + (2 * 5 + 3) * 8, sizeof(float) * 8) != 0);
	CHECK(memcmp(out0 + (2 * 5 + 4) * 8, c.out + (2 * 5 + 4) * 8, sizeof(float) * 8) != 0);
	/* masked key: changing seq 1's gap position changes nothing at all */
	memcpy(out0, c.out, sizeof(float) * no);
	for (i = 0; i < 24; i++)
		c.qkv[(1 * 5 + 1) * 24 + i] += 3.0f;
	att_loss(&c);
	CHECK(memcmp(out0, c.out, sizeof(float) * no) == 0);

	/* no mask: full causal attention, gradient check again */
	c.valid = NULL;
	memset(dqkv, 0, sizeof(float) * nq);
	att_loss(&c);
	isrf_nn_attention_backward(be, dqkv, scratch, c.r, c.qkv, c.att, 3, 5, 8, 2);
	fd_check("attention dqkv (no mask)", att_loss, &c, c.qkv, dqkv, nq, FD_H, FD_ATOL, FD_RTOL);

	{
		int32_t		lens[] = {3, 0, 5};
		uint8_t		m[15];
		uint8_t		want[] = {0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

		isrf_nn_mask_left_padded(m, lens, 3, 5);
		CHECK(memcmp(m, want, 15) == 0);
	}
	CHECK(isrf_nn_attention_forward(be, c.out, c.att, c.qkv, NULL, 3, 5, 8, 3) == ISRF_ERR_INVALID);
	free(c.qkv);
	free(c.out);
	free(c.att);
	free(c.r);
	free(dqkv);
	free(scratch);
	free(out0);
}

/* ---- softmax cross-entropy --------------------------------------------------- */

typedef struct
{
	int			n,
				v,
				cand_ld;
	float	   *logits;
	int32_t    *tg;
	const uint8_t *cand;
	float		scale;
} CeCtx;

static double
ce_loss(void *p)
{
	CeCtx	   *c = p;
	float		loss;

	isrf_nn_softmax_ce(&env, c->logits, c->v, c->tg, c->n, c->v, c->cand, c->cand_ld,
					   1.0f, &loss, NULL, NULL);
	return (double) c->scale * loss;
}

/* Mean CE in double, same masking rules. */
static double
ce_ref(const CeCtx *c)
{
	double		tot = 0.0;
	int			cnt = 0,
				i,
				j;

	for (i = 0; i < c->n; i++)
	{
		double		s = 0.0;

		if (c->tg[i] < 0)
			continue;
		for (j = 0; j < c->v; j++)
			if (!c->cand || c->cand[(size_t) i * c->cand_ld + j])
				s += exp((double) c->logits[i * c->v + j]);
		tot += log(s) - c->logits[i * c->v + c->tg[i]];
		cnt++;
	}
	return cnt ? tot / cnt : 0.0;
}

static void
test_softmax_ce(void)
{
	int32_t		tg[] = {3, -1, 0, 6, 2, -1};
	uint8_t		shared[7] = {1, 0, 1, 1, 1, 0, 1};
	uint8_t		rows[6 * 7];
	CeCtx		c = {6, 7, 0, NULL, tg, NULL, 2.5f};
	float	   *g = zeros(42),
			   *copy;
	float		loss;
	int			cnt,
				i,
				j,
				ok;

	c.logits = rand_array(42, 3.0f);
	for (i = 0; i < 42; i++)
		rows[i] = (unit_rand_next(&rng) & 3) != 0;
	for (i = 0; i < 6; i++)
		if (tg[i] >= 0)
			rows[i * 7 + tg[i]] = 1;

	/* plain, shared candidate mask, per-row candidate mask */
	for (int mode = 0; mode < 3; mode++)
	{
		const char *names[] = {"ce dlogits", "ce dlogits (shared candidates)", "ce dlogits (per-row candidates)"};

		c.cand = mode == 0 ? NULL : mode == 1 ? shared : rows;
		c.cand_ld = mode == 2 ? 7 : 0;
		CHECK(isrf_nn_softmax_ce(&env, c.logits, 7, tg, 6, 7, c.cand, c.cand_ld, c.scale,
								 &loss, &cnt, g) == ISRF_OK);
		CHECK(cnt == 4);
		CHECK_NEAR(loss, ce_ref(&c), 1e-5);
		fd_check(names[mode], ce_loss, &c, c.logits, g, 42, FD_H, FD_ATOL, FD_RTOL);
		ok = 1;
		for (i = 0; i < 6; i++)
			for (j = 0; j < 7; j++)
				if (tg[i] < 0 || (c.cand && !c.cand[i * c.cand_ld + j]))
					ok &= g[i * 7 + j] == 0.0f;
		CHECK_MSG(ok, "ignored rows or non-candidates got gradient (mode %d)", mode);
	}

	/* in place: dlogits may alias logits */
	copy = malloc(sizeof(float) * 42);
	memcpy(copy, c.logits, sizeof(float) * 42);
	isrf_nn_softmax_ce(&env, copy, 7, tg, 6, 7, rows, 7, c.scale, &loss, NULL, copy);
	CHECK(memcmp(copy, g, sizeof(float) * 42) == 0);
	free(copy);

	/* big logits stay finite */
	{
		float		big[3] = {1000.0f, 0.0f, -1000.0f};
		int32_t		t1 = 1;

		isrf_nn_softmax_ce(&env, big, 3, &t1, 1, 3, NULL, 0, 1.0f, &loss, NULL, NULL);
		CHECK_NEAR(loss, 1000.0, 1e-3);
	}
	/* errors */
	{
		int32_t		t_bad[] = {7};
		int32_t		t_nc[] = {1};

		CHECK(isrf_nn_softmax_ce(&env, c.logits, 7, t_bad, 1, 7, NULL, 0, 1.0f, &loss, NULL, NULL) == ISRF_ERR_INVALID);
		CHECK(isrf_nn_softmax_ce(&env, c.logits, 7, t_nc, 1, 7, shared, 0, 1.0f, &loss, NULL, NULL) == ISRF_ERR_INVALID);
		CHECK(strstr(env.errmsg, "candidates") != NULL);
	}
	/* every row ignored: zero loss and zero gradient */
	{
		int32_t		none[] = {-1, -1};

		g[0] = 5.0f;
		CHECK(isrf_nn_softmax_ce(&env, c.logits, 7, none, 2, 7, NULL, 0, 1.0f, &loss, &cnt, g) == ISRF_OK);
		CHECK(loss == 0.0f && cnt == 0 && g[0] == 0.0f);
	}
	free(c.logits);
	free(g);
}

/* ---- L2 norm, InfoNCE ------------------------------------------------------------ */

typedef struct
{
	int			n,
				d;
	float	   *x,
			   *y,
			   *norms,
			   *r;
} L2Ctx;

static double
l2_loss(void *p)
{
	L2Ctx	   *c = p;

	isrf_nn_l2norm_forward(c->y, c->norms, c->x, c->n, c->d);
	return dot_d(c->y, c->r, (size_t) c->n * c->d);
}

static void
test_l2norm(void)
{
	L2Ctx		c = {4, 6, NULL, NULL, NULL, NULL};
	float	   *dx = zeros(24);

	c.x = rand_array(24, 2.0f);
	c.y = zeros(24);
	c.norms = zeros(4);
	c.r = rand_array(24, 1.0f);
	l2_loss(&c);
	CHECK_NEAR(dot_d(c.y + 6, c.y + 6, 6), 1.0, 1e-6);
	isrf_nn_l2norm_backward(dx, c.r, c.y, c.norms, 4, 6);
	fd_check("l2norm dx", l2_loss, &c, c.x, dx, 24, FD_H, FD_ATOL, FD_RTOL);
	free(c.x);
	free(c.y);
	free(c.norms);
	free(c.r);
	free(dx);
}

typedef struct
{
	int			n,
				d;
	float	   *a,
			   *b;
	float		tau;
	bool		sym;
} NceCtx;

static double
nce_loss(void *p)
{
	NceCtx	   *c = p;
	float		loss;

	isrf_nn_infonce(be, c->a, c->b, c->n, c->d, c->tau, c->sym, 1.0f, &loss, NULL, NULL);
	return loss;
}

static double
nce_ref(const NceCtx *c)
{
	double		lr = 0.0,
				lc = 0.0;
	int			i,
				j;

	for (i = 0; i < c->n; i++)
	{
		double		sr = 0.0,
					sc = 0.0;

		for (j = 0; j < c->n; j++)
		{
			sr += exp(dot_d(c->a + i * c->d, c->b + j * c->d, c->d) / c->tau);
			sc += exp(dot_d(c->a + j * c->d, c->b + i * c->d, c->d) / c->tau);
		}
		lr += log(sr) - dot_d(c->a + i * c->d, c->b + i * c->d, c->d) / c->tau;
		lc += log(sc) - dot_d(c->a + i * c->d, c->b + i * c->d, c->d) / c->tau;
	}
	return c->sym ? 0.5 * (lr + lc) / c->n : lr / c->n;
}

static void
test_infonce(void)
{
	NceCtx		c = {5, 6, NULL, NULL, 0.1f, false};
	float	   *norms = zeros(5),
			   *da = zeros(30),
			   *db = zeros(30),
			   *db2 = zeros(30);
	float		loss;
	int			sym;

	c.a = rand_array(30, 1.0f);
	c.b = rand_array(30, 1.0f);
	isrf_nn_l2norm_forward(c.a, norms, c.a, 5, 6);
	isrf_nn_l2norm_forward(c.b, norms, c.b, 5, 6);
	for (sym = 0; sym < 2; sym++)
	{
		c.sym = sym;
		memset(da, 0, sizeof(float) * 30);
		memset(db, 0, sizeof(float) * 30);
		CHECK(isrf_nn_infonce(be, c.a, c.b, 5, 6, c.tau, c.sym, 1.0f, &loss, da, db) == ISRF_OK);
		CHECK_NEAR(loss, nce_ref(&c), 1e-4);
		/* logits are x/tau = 10x: a finer step keeps truncation small */
		fd_check(sym ? "infonce da (symmetric)" : "infonce da", nce_loss, &c, c.a, da, 30,
				 1e-3f, 5e-3, FD_RTOL);
		fd_check(sym ? "infonce db (symmetric)" : "infonce db", nce_loss, &c, c.b, db, 30,
				 1e-3f, 5e-3, FD_RTOL);
	}
	/* stop-gradient on a; grad_scale multiplies */
	CHECK(isrf_nn_infonce(be, c.a, c.b, 5, 6, c.tau, true, 2.0f, &loss, NULL, db2) == ISRF_OK);
	CHECK(unit_max_abs_diff(db2, db, 30) > 1e-3);
	for (int i = 0; i < 30; i++)
		db[i] *= 2.0f;
	CHECK_MSG(unit_max_abs_diff(db2, db, 30) < 1e-5, "grad_scale: %g", unit_max_abs_diff(db2, db, 30));
	/* a perfect match with a low temperature has near-zero loss */
	CHECK(isrf_nn_infonce(be, c.a, c.a, 5, 6, 0.01f, false, 1.0f, &loss, NULL, NULL) == ISRF_OK);
	CHECK_MSG(loss < nce_ref(&c), "self-match loss %g", (double) loss);
	CHECK(isrf_nn_infonce(be, c.a, c.b, 5, 6, 0.0f, false, 1.0f, &loss, NULL, NULL) == ISRF_ERR_INVALID);
	free(c.a);
	free(c.b);
	free(norms);
	free(da);
	free(db);
	free(db2);
}

/* ---- optimizer --------------------------------------------------------------------- */

static void
test_adamw(void)
{
	IsrfAdamW	opt;
	float		p[4] = {1.0f, -2.0f, 0.5f, 3.0f};
	float		g[4] = {0.1f, -0.3f, 0.0f, 2.0f};
	uint8_t		mask[4] = {1, 0, 1, 0};
	double		rp[4] = {1.0, -2.0, 0.5, 3.0},
				rm[4] = {0},
				rv[4] = {0};
	double		b1 = 0.9,
				b2 = 0.999,
				eps = 1e-8,
				wd = 0.1,
				lr = 0.01,
				worst = 0.0;
	int			step,
				i;

	CHECK(isrf_adamw_init(be, &opt, 4, 0.9f, 0.999f, 1e-8f, 0.1f, mask) == ISRF_OK);
	mask[0] = 0;				/* the optimizer keeps its own copy */
	for (step = 1; step <= 3; step++)
	{
		CHECK(isrf_adamw_step(&opt, p, g, 0.01f) == ISRF_OK);
		for (i = 0; i < 4; i++)
		{
			rm[i] = b1 * rm[i] + (1 - b1) * g[i];
			rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
			if (i == 0 || i == 2)
				rp[i] -= lr * wd * rp[i];
			rp[i] -= lr * (rm[i] / (1 - pow(b1, step))) /
				(sqrt(rv[i] / (1 - pow(b2, step))) + eps);
		}
		g[1] = -g[1];
	}
	for (i = 0; i < 4; i++)
		worst = fmax(worst, fabs(rp[i] - p[i]));
	CHECK_MSG(worst < 1e-6, "AdamW differs from the reference by %g", worst);
	/* zero gradient: only the decoupled decay moves the parameter */
	CHECK_NEAR(p[2], 0.5 * pow(1 - lr * wd, 3), 1e-7);
	CHECK(opt.step == 3);
	isrf_adamw_free(&opt);
	isrf_adamw_free(&opt);
	CHECK(isrf_adamw_init(be, &opt, 4, 1.0f, 0.999f, 1e-8f, 0.0f, NULL) == ISRF_ERR_INVALID);

	/* clipping */
	{
		float		a[3] = {3.0f, 0.0f, 0.0f},
					b[1] = {4.0f};
		float	   *arrs[2] = {a, b};
		size_t		sizes[2] = {3, 1};
		float		norm;

		CHECK(isrf_grad_clip(be, arrs, sizes, 2, 10.0f, &norm) == ISRF_OK);
		CHECK_NEAR(norm, 5.0, 1e-6);
		CHECK(a[0] == 3.0f && b[0] == 4.0f);
		CHECK(isrf_grad_clip(be, arrs, sizes, 2, 1.0f, &norm) == ISRF_OK);
		CHECK_NEAR(norm, 5.0, 1e-6);
		CHECK_NEAR(a[0], 0.6, 1e-6);
		CHECK_NEAR(b[0], 0.8, 1e-6);
		a[1] = NAN;
		CHECK(isrf_grad_clip(be, arrs, sizes, 2, 1.0f, &norm) == ISRF_OK);
		CHECK(isnan(norm) && a[0] == 0.6f);
	}
	/* schedule */
	CHECK_NEAR(isrf_lr_schedule(1.0f, 0, 10, 110, 0.1f), 0.1, 1e-6);
	CHECK_NEAR(isrf_lr_schedule(1.0f, 9, 10, 110, 0.1f), 1.0, 1e-6);
	CHECK_NEAR(isrf_lr_schedule(1.0f, 10, 10, 110, 0.1f), 1.0, 1e-6);
	CHECK_NEAR(isrf_lr_schedule(1.0f, 60, 10, 110, 0.1f), 0.55, 1e-6);
	CHECK_NEAR(isrf_lr_schedule(1.0f, 500, 10, 110, 0.1f), 0.1, 1e-6);
}

static void
test_init_normal(void)
{
	size_t		n = 200000,
				i;
	float	   *w = malloc(sizeof(float) * n),
			   *w2 = malloc(sizeof(float) * n);
	double		s = 0.0,
				ss = 0.0;

	isrf_nn_init_normal(w, n, 0.5f, 7);
	isrf_nn_init_normal(w2, n, 0.5f, 7);
	CHECK(memcmp(w, w2, sizeof(float) * n) == 0);
	for (i = 0; i < n; i++)
	{
		s += w[i];
		ss += (double) w[i] * w[i];
	}
	CHECK_NEAR(s / n, 0.0, 0.005);
	CHECK_NEAR(sqrt(ss / n), 0.5, 0.005);
	isrf_nn_init_normal(w2, n, 0.5f, 8);
	CHECK(memcmp(w, w2, sizeof(float) * n) != 0);
	CHECK(isrf_nn_key(1, 2, 3) != isrf_nn_key(1, 3, 2));
	free(w);
	free(w2);
}

int
main(void)
{
	isrf_env_init_malloc(&env);
	if (isrf_cpu_backend_create(&env, &be) != ISRF_OK)
	{
		fprintf(stderr, "no CPU backend: %s\n", env.errmsg);
		return 1;
	}
	CHECK(isrf_nn_backend_host_ok(be));
	test_embedding();
	test_linear();
	test_layernorm();
	test_elementwise();
	test_attention();
	test_softmax_ce();
	test_l2norm();
	test_infonce();
	test_adamw();
	test_init_normal();
	isrf_backend_close(be);
	UNIT_END("test_layers");
}
