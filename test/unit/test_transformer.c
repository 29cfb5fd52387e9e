/*
 * test_transformer.c
 *	  Unit tests of the causal transformer (transformer.c) with a dense CE
 *	  head: finite-difference gradient check of the whole stack (positions,
 *	  blocks, final LayerNorm, head, input), padding and causal masks,
 *	  bitwise determinism, batch independence, a tiny model that must learn
 *	  to shift a sequence, and a timing of the size the real model uses.
 */
#include "nn/transformer.h"
#include "nn/optim.h"
#include "unit.h"

#include <string.h>

static IsrfEnv env;
static IsrfBackend *be;
static unsigned long long rng = 2024;

/* ---- the gradient check ------------------------------------------------------ */

#define GB 2
#define GT 5
#define GC 8
#define GV 5

typedef struct
{
	IsrfTransformer *tf;
	float		x_raw[GB * GT * GC];
	float		x[GB * GT * GC];
	int32_t		pos[GB * GT];
	uint8_t		valid[GB * GT];
	int32_t		tg[GB * GT];
	float		wh[GV * GC];
	float		bh[GV];
	float		logits[GB * GT * GV];
	uint64_t	seed;
} Chain;

/* raw input -> + positions -> transformer -> linear head -> mean CE */
static double
chain_loss(Chain *c)
{
	float		loss = NAN;

	memcpy(c->x, c->x_raw, sizeof(c->x));
	if (isrf_tf_add_positions(c->tf, c->x, c->pos, GB * GT) != ISRF_OK ||
		isrf_tf_forward(c->tf, c->x, c->valid, GB, GT, true, c->seed) != ISRF_OK ||
		isrf_nn_linear_forward(be, c->logits, c->tf->hidden, c->wh, c->bh, GB * GT, GC, GV) != ISRF_OK ||
		isrf_nn_softmax_ce(&env, c->logits, GV, c->tg, GB * GT, GV, NULL, 0, 1.0f,
						   &loss, NULL, NULL) != ISRF_OK)
		return NAN;
	return loss;
}

/* Analytic gradients of chain_loss into tf->grads, dwh, dbh, dx_raw. */
static void
chain_backward(Chain *c, float *dwh, float *dbh, float *dx_raw)
{
	float		dlogits[GB * GT * GV];
	float		dhidden[GB * GT * GC];
	float		loss;

	chain_loss(c);
	isrf_tf_zero_grad(c->tf);
	memset(dhidden, 0, sizeof(dhidden));
	CHECK(isrf_nn_softmax_ce(&env, c->logits, GV, c->tg, GB * GT, GV, NULL, 0, 1.0f,
							 &loss, NULL, dlogits) == ISRF_OK);
	CHECK(isrf_nn_linear_backward(be, dhidden, dwh, dbh, dlogits, c->tf->hidden, c->wh,
								  GB * GT, GC, GV) == ISRF_OK);
	CHECK(isrf_tf_backward(c->tf, dhidden, dx_raw) == ISRF_OK);
	isrf_tf_add_positions_backward(c->tf, dx_raw, c->pos, GB * GT);
}

/* Central differences against grad over x[n]; returns entries off. */
static int
chain_fd(const char *what, Chain *c, float *x, const float *grad, size_t n,
		 float h, double atol, double rtol)
{
	size_t		i,
				bad = 0,
				wi = 0;
	double		worst = 0.0,
				wnum = 0.0,
				gmax = 0.0;

	for (i = 0; i < n; i++)
	{
		float		save = x[i],
					xp = save + h,
					xm = save - h;
		double		lp,
					lm,
					num,
					err;

		x[i] = xp;
		lp = chain_loss(c);
		x[i] = xm;
		lm = chain_loss(c);
		x[i] = save;
		num = (lp - lm) / ((double) xp - (double) xm);
		err = fabs(num - grad[i]);
		if (!(err <= atol + rtol * fabs(num)))
			bad++;
		if (err > worst || err != err)
		{
			worst = err;
			wi = i;
			wnum = num;
		}
		if (fabs(num) > gmax)
			gmax = fabs(num);
	}
	CHECK_MSG(bad == 0, "%s: %zu of %zu off; worst |a-n| %g at %zu (analytic %g, numeric %g)",
			  what, bad, n, worst, wi, (double) grad[wi], wnum);
	CHECK_MSG(gmax > 1e-3, "%s: gradient is all but zero (max %g): the check proves nothing", what, gmax);
	return (int) bad;
}

static void
test_gradcheck(void)
{
	IsrfTfConfig cfg = {2, GC, 2, 16, 6, 2, 0.1f};
	Chain	   *c = calloc(1, sizeof(Chain));
	float	   *host_params;
	float		dwh[GV * GC],
				dbh[GV],
				dx[GB * GT * GC];
	float	   *grads;
	int32_t		pos[GB * GT] = {ISRF_TF_POS_PAD, ISRF_TF_POS_PREFIX(0), 0, 1, 2,
	ISRF_TF_POS_PREFIX(0), ISRF_TF_POS_PREFIX(1), 0, 1, 2};
	uint8_t		valid[GB * GT] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	size_t		i,
				n;
	int			ok;

	CHECK(isrf_tf_create(be, &cfg, 5, &c->tf) == ISRF_OK);
	n = c->tf->n_params;
	CHECK(n == 6 * 8 + 2 * 8 + 2 * (16 + 3 * 64 + 24 + 64 + 8 + 16 + 128 + 16 + 128 + 8) + 16);
	/*
	 * GPT-2 initial weights are tiny (0.02): widen them so every path
	 * carries a gradient worth checking, LayerNorm gains around 1.
	 */
	host_params = c->tf->params;
	for (i = 0; i < n; i++)
		host_params[i] += 0.4f * unit_rand_uniform(&rng);
	memcpy(c->pos, pos, sizeof(pos));
	memcpy(c->valid, valid, sizeof(valid));
	for (i = 0; i < GB * GT * GC; i++)
		c->x_raw[i] = unit_rand_uniform(&rng);
	for (i = 0; i < GV * GC; i++)
		c->wh[i] = unit_rand_uniform(&rng);
	for (i = 0; i < GV; i++)
		c->bh[i] = 0.1f * unit_rand_uniform(&rng);
	for (i = 0; i < GB * GT; i++)
		c->tg[i] = valid[i] ? (int32_t) (unit_rand_next(&rng) % GV) : ISRF_NN_IGNORE;
	c->seed = 99;

	memset(dwh, 0, sizeof(dwh));
	memset(dbh, 0, sizeof(dbh));
	chain_backward(c, dwh, dbh, dx);
	grads = malloc(sizeof(float) * n);
	memcpy(grads, c->tf->grads, sizeof(float) * n);

	/*
	 * Step 1e-2, pass when |a - n| <= 1e-3 + 2e-2 |n|: the loss is a mean
	 * over 9 rows of float32 work, so its noise is ~1e-6 and truncation
	 * (h^2 f''') stays below 1e-4 at this scale.
	 */
	chain_fd("transformer params (all)", c, c->tf->params, grads, n, 1e-2f, 1e-3, 2e-2);
	chain_fd("head weight", c, c->wh, dwh, GV * GC, 1e-2f, 1e-3, 2e-2);
	chain_fd("head bias", c, c->bh, dbh, GV, 1e-2f, 1e-3, 2e-2);
	chain_fd("input", c, c->x_raw, dx, GB * GT * GC, 1e-2f, 1e-3, 2e-2);

	/* the padded slot: no gradient at all, and no effect on the loss */
	ok = 1;
	for (i = 0; i < GC; i++)
		ok &= dx[i] == 0.0f;
	CHECK_MSG(ok, "padded input position received gradient");
	{
		double		l0 = chain_loss(c),
					l1;
		float		hid[GB * GT * GC];

		memcpy(hid, c->tf->hidden, sizeof(hid));
		for (i = 0; i < GC; i++)
			c->x_raw[i] += 5.0f;
		l1 = chain_loss(c);
		CHECK(l0 == l1);
		CHECK(memcmp(hid, c->tf->hidden, sizeof(hid)) == 0);
		/* and the parameter gradients do not move either */
		chain_backward(c, dwh, dbh, dx);
		CHECK(memcmp(grads, c->tf->grads, sizeof(float) * n) == 0);
	}
	/* gradient reaches the prefix types and the used positions only */
	CHECK(fabsf(c->tf->g.wpre[0]) > 0.0f && fabsf(c->tf->g.wpre[8]) > 0.0f);
	ok = 1;
	for (i = 3 * GC; i < 6 * GC; i++)
		ok &= c->tf->g.wpe[i] == 0.0f;
	CHECK_MSG(ok, "unused positions 3..5 received gradient");

	/* bad positions are refused */
	{
		int32_t		badpos[1] = {6};
		int32_t		badpre[1] = {ISRF_TF_POS_PREFIX(2)};

		CHECK(isrf_tf_add_positions(c->tf, c->x, badpos, 1) == ISRF_ERR_INVALID);
		CHECK(isrf_tf_add_positions(c->tf, c->x, badpre, 1) == ISRF_ERR_INVALID);
		CHECK(isrf_tf_forward(c->tf, c->x, NULL, 1, 7, false, 0) == ISRF_ERR_INVALID);
	}
	free(grads);
	isrf_tf_destroy(c->tf);
	free(c);
}

/* ---- masks, causality, batching --------------------------------------------------- */

static void
test_masks_and_causality(void)
{
	IsrfTfConfig cfg = {2, 16, 4, 32, 8, 0, 0.0f};
	IsrfTransformer *tf;
	int			B = 3,
				T = 6,
				C = 16;
	size_t		n = (size_t) B * T * C;
	float	   *x = malloc(sizeof(float) * n),
			   *h0 = malloc(sizeof(float) * n),
			   *single = malloc(sizeof(float) * T * C);
	int32_t		lens[3] = {6, 3, 1};
	uint8_t		valid[18];
	int			t;
	size_t		i;
	bool		differs;

	CHECK(isrf_tf_create(be, &cfg, 11, &tf) == ISRF_OK);
	for (i = 0; i < tf->n_params; i++)
		tf->params[i] += 0.2f * unit_rand_uniform(&rng);
	for (i = 0; i < n; i++)
		x[i] = unit_rand_uniform(&rng);
	isrf_nn_mask_left_padded(valid, lens, B, T);
	CHECK(isrf_tf_forward(tf, x, valid, B, T, false, 0) == ISRF_OK);
	memcpy(h0, tf->hidden, sizeof(float) * n);

	/* padded rows come out zero */
	differs = false;
	for (i = (size_t) 1 * T * C; i < (size_t) (1 * T + 3) * C; i++)
		differs |= h0[i] != 0.0f;
	CHECK_MSG(!differs, "hidden state at padding is not zero");

	/* causal: changing sequence 0 at t changes rows >= t only, bitwise */
	for (t = 0; t < T; t++)
	{
		bool		before_same = true,
					at_changed = false,
					others_same;

		for (i = 0; i < (size_t) C; i++)
			x[(size_t) t * C + i] += 0.25f;
		CHECK(isrf_tf_forward(tf, x, valid, B, T, false, 0) == ISRF_OK);
		before_same = memcmp(tf->hidden, h0, sizeof(float) * t * C) == 0;
		for (i = (size_t) t * C; i < (size_t) T * C; i++)
			at_changed |= tf->hidden[i] != h0[i];
		others_same = memcmp(tf->hidden + T * C, h0 + T * C, sizeof(float) * 2 * T * C) == 0;
		CHECK_MSG(before_same && at_changed && others_same,
				  "causality at t=%d: before %d, at/after %d, other rows %d",
				  t, before_same, at_changed, others_same);
		memcpy(h0, tf->hidden, sizeof(float) * n);
	}

	/* a sequence alone gives the same states as inside the batch */
	CHECK(isrf_tf_forward(tf, x + T * C, valid + T, 1, T, false, 0) == ISRF_OK);
	memcpy(single, tf->hidden, sizeof(float) * T * C);
	CHECK_MSG(unit_max_abs_diff(single, h0 + T * C, (size_t) T * C) < 1e-5,
			  "batch of one differs by %g", unit_max_abs_diff(single, h0 + T * C, (size_t) T * C));
	/* and a larger batch after a smaller one regrows the buffers */
	CHECK(isrf_tf_forward(tf, x, valid, B, T, false, 0) == ISRF_OK);
	CHECK(memcmp(tf->hidden, h0, sizeof(float) * n) == 0);

	/* dropout only in training mode, and it changes the result */
	tf->cfg.dropout = 0.2f;
	CHECK(isrf_tf_forward(tf, x, valid, B, T, false, 3) == ISRF_OK);
	CHECK(memcmp(tf->hidden, h0, sizeof(float) * n) == 0);
	CHECK(isrf_tf_forward(tf, x, valid, B, T, true, 3) == ISRF_OK);
	CHECK(memcmp(tf->hidden, h0, sizeof(float) * n) != 0);

	isrf_tf_destroy(tf);
	free(x);
	free(h0);
	free(single);
}

/* ---- the shift task -------------------------------------------------------------- */

#define SV 10
#define ST 10

typedef struct
{
	IsrfTransformer *tf;
	float	   *emb,
			   *demb,
			   *wh,
			   *dwh,
			   *bh,
			   *dbh;
	IsrfAdamW	opt_tf,
				opt_emb,
				opt_head;
	int			C;
} ShiftModel;

/*
 * A batch of random symbol sequences, left padded to ST, lengths 5..10.
 * The target at each position is the previous symbol (the first is
 * ignored), so the model must learn to attend one step back.
 */
static void
shift_batch(unsigned long long *st, int B, int32_t *ids, int32_t *pos, uint8_t *valid,
			int32_t *tg)
{
	int			b,
				t;

	for (b = 0; b < B; b++)
	{
		int			len = 5 + (int) (unit_rand_next(st) % 6);
		int			start = ST - len;

		for (t = 0; t < ST; t++)
		{
			int			k = b * ST + t;

			valid[k] = t >= start;
			ids[k] = valid[k] ? (int32_t) (unit_rand_next(st) % SV) : -1;
			pos[k] = valid[k] ? t - start : ISRF_TF_POS_PAD;
			tg[k] = (valid[k] && t > start) ? ids[k - 1] : ISRF_NN_IGNORE;
		}
	}
}

/* Loss (and, when train, one AdamW step) on a batch; *acc gets accuracy. */
static IsrfStatus
shift_step(ShiftModel *m, int B, const int32_t *ids, const int32_t *pos,
		   const uint8_t *valid, const int32_t *tg, bool train, uint64_t seed,
		   float lr, float *loss, double *acc)
{
	int			C = m->C,
				N = B * ST;
	float	   *x = calloc((size_t) N * C, sizeof(float));
	float	   *logits = calloc((size_t) N * SV, sizeof(float));
	float	   *dh = calloc((size_t) N * C, sizeof(float));
	int			i,
				j,
				hit = 0,
				cnt = 0;

	ISRF_TRY(isrf_nn_embedding_forward(be, x, ids, N, m->emb, SV, C));
	ISRF_TRY(isrf_tf_add_positions(m->tf, x, pos, N));
	ISRF_TRY(isrf_tf_forward(m->tf, x, valid, B, ST, train, seed));
	ISRF_TRY(isrf_nn_linear_forward(be, logits, m->tf->hidden, m->wh, m->bh, N, C, SV));
	for (i = 0; i < N; i++)
	{
		int			best = 0;

		if (tg[i] < 0)
			continue;
		for (j = 1; j < SV; j++)
			if (logits[i * SV + j] > logits[i * SV + best])
				best = j;
		hit += best == tg[i];
		cnt++;
	}
	*acc = (double) hit / cnt;
	ISRF_TRY(isrf_nn_softmax_ce(&env, logits, SV, tg, N, SV, NULL, 0, 1.0f, loss, NULL,
								train ? logits : NULL));
	if (train)
	{
		float	   *arrs[3] = {m->tf->grads, m->demb, m->dwh};
		size_t		sizes[3] = {m->tf->n_params, (size_t) SV * C, (size_t) SV * C};

		isrf_tf_zero_grad(m->tf);
		memset(m->demb, 0, sizeof(float) * SV * C);
		memset(m->dwh, 0, sizeof(float) * SV * C);
		memset(m->dbh, 0, sizeof(float) * SV);
		ISRF_TRY(isrf_nn_linear_backward(be, dh, m->dwh, m->dbh, logits, m->tf->hidden,
										 m->wh, N, C, SV));
		ISRF_TRY(isrf_tf_backward(m->tf, dh, x));
		isrf_tf_add_positions_backward(m->tf, x, pos, N);
		isrf_nn_embedding_backward(be, m->demb, ids, N, x, C);
		{
			float		norm;

			ISRF_TRY(isrf_grad_clip(be, arrs, sizes, 3, 1.0f, &norm));
		}
		ISRF_TRY(isrf_adamw_step(&m->opt_tf, m->tf->params, m->tf->grads, lr));
		ISRF_TRY(isrf_adamw_step(&m->opt_emb, m->emb, m->demb, lr));
		ISRF_TRY(isrf_adamw_step(&m->opt_head, m->wh, m->dwh, lr));
		/* the head bias shares the head's optimizer settings but not its array */
		for (j = 0; j < SV; j++)
			m->bh[j] -= lr * m->dbh[j];
	}
	free(x);
	free(logits);
	free(dh);
	return ISRF_OK;
}

static void
shift_model_init(ShiftModel *m, uint64_t seed, float dropout)
{
	IsrfTfConfig cfg = {2, 32, 2, 64, ST, 0, dropout};
	uint8_t    *mask;

	memset(m, 0, sizeof(*m));
	m->C = 32;
	CHECK(isrf_tf_create(be, &cfg, seed, &m->tf) == ISRF_OK);
	m->emb = malloc(sizeof(float) * SV * 32);
	m->demb = malloc(sizeof(float) * SV * 32);
	m->wh = malloc(sizeof(float) * SV * 32);
	m->dwh = malloc(sizeof(float) * SV * 32);
	m->bh = calloc(SV, sizeof(float));
	m->dbh = calloc(SV, sizeof(float));
	isrf_nn_init_normal(m->emb, SV * 32, 0.5f, isrf_nn_key(seed, 1, 0));
	isrf_nn_init_normal(m->wh, SV * 32, 0.2f, isrf_nn_key(seed, 2, 0));
	mask = malloc(m->tf->n_params);
	isrf_tf_decay_mask(m->tf, mask);
	CHECK(isrf_adamw_init(be, &m->opt_tf, m->tf->n_params, 0.9f, 0.98f, 1e-8f, 0.01f, mask) == ISRF_OK);
	CHECK(isrf_adamw_init(be, &m->opt_emb, SV * 32, 0.9f, 0.98f, 1e-8f, 0.0f, NULL) == ISRF_OK);
	CHECK(isrf_adamw_init(be, &m->opt_head, SV * 32, 0.9f, 0.98f, 1e-8f, 0.01f, NULL) == ISRF_OK);
	free(mask);
}

static void
shift_model_free(ShiftModel *m)
{
	isrf_adamw_free(&m->opt_tf);
	isrf_adamw_free(&m->opt_emb);
	isrf_adamw_free(&m->opt_head);
	isrf_tf_destroy(m->tf);
	free(m->emb);
	free(m->demb);
	free(m->wh);
	free(m->dwh);
	free(m->bh);
	free(m->dbh);
}

/* Train for steps on fresh batches (dropout as configured); returns the last loss. */
static float
shift_train(ShiftModel *m, int steps, int B, unsigned long long data_seed)
{
	int32_t    *ids = malloc(sizeof(int32_t) * B * ST),
			   *pos = malloc(sizeof(int32_t) * B * ST),
			   *tg = malloc(sizeof(int32_t) * B * ST);
	uint8_t    *valid = malloc(B * ST);
	float		loss = NAN;
	double		acc;
	int			s;

	for (s = 0; s < steps; s++)
	{
		float		lr = isrf_lr_schedule(3e-3f, s, 20, steps, 0.1f);

		shift_batch(&data_seed, B, ids, pos, valid, tg);
		if (shift_step(m, B, ids, pos, valid, tg, true, 1000 + s, lr, &loss, &acc) != ISRF_OK)
		{
			CHECK_MSG(0, "training step failed: %s", env.errmsg);
			break;
		}
	}
	free(ids);
	free(pos);
	free(tg);
	free(valid);
	return loss;
}

static void
test_shift_task(void)
{
	ShiftModel	m;
	int			B = 32,
				EB = 128;
	int32_t    *ids = malloc(sizeof(int32_t) * EB * ST),
			   *pos = malloc(sizeof(int32_t) * EB * ST),
			   *tg = malloc(sizeof(int32_t) * EB * ST);
	uint8_t    *valid = malloc(EB * ST);
	unsigned long long eval_seed = 777;
	float		loss0,
				loss;
	double		acc0,
				acc;
	double		t0 = isrf_now();

	shift_model_init(&m, 42, 0.0f);
	shift_batch(&eval_seed, EB, ids, pos, valid, tg);
	CHECK(shift_step(&m, EB, ids, pos, valid, tg, false, 0, 0, &loss0, &acc0) == ISRF_OK);
	shift_train(&m, 400, B, 1);
	CHECK(shift_step(&m, EB, ids, pos, valid, tg, false, 0, 0, &loss, &acc) == ISRF_OK);
	printf("shift task: held-out loss %.3f -> %.4f, accuracy %.3f -> %.4f after 400 steps (%.2f s)\n",
		   loss0, loss, acc0, acc, isrf_now() - t0);
	CHECK_MSG(acc >= 0.99, "shift task accuracy %.4f < 0.99", acc);
	CHECK_MSG(loss < 0.1f, "shift task loss %.4f >= 0.1", (double) loss);
	CHECK(loss0 > 2.0f);
	shift_model_free(&m);
	free(ids);
	free(pos);
	free(tg);
	free(valid);
}

/* ---- determinism ------------------------------------------------------------------ */

static void
test_determinism(void)
{
	ShiftModel	a,
				b,
				c;

	shift_model_init(&a, 7, 0.1f);
	shift_model_init(&b, 7, 0.1f);
	shift_model_init(&c, 8, 0.1f);
	CHECK(memcmp(a.tf->params, b.tf->params, sizeof(float) * a.tf->n_params) == 0);
	CHECK(memcmp(a.tf->params, c.tf->params, sizeof(float) * a.tf->n_params) != 0);
	shift_train(&a, 20, 16, 5);
	shift_train(&b, 20, 16, 5);
	CHECK_MSG(memcmp(a.tf->params, b.tf->params, sizeof(float) * a.tf->n_params) == 0,
			  "two identical training runs differ");
	CHECK(memcmp(a.emb, b.emb, sizeof(float) * SV * 32) == 0);
	CHECK(memcmp(a.opt_tf.v, b.opt_tf.v, sizeof(float) * a.tf->n_params) == 0);
	/* a different data order gives different weights */
	shift_train(&c, 20, 16, 6);
	CHECK(memcmp(a.emb, c.emb, sizeof(float) * SV * 32) != 0);
	shift_model_free(&a);
	shift_model_free(&b);
	shift_model_free(&c);
}

/* ---- config checks and decay mask --------------------------------------------- */

static void
test_config(void)
{
	IsrfTfConfig cfg = {2, 64, 3, 256, 20, 2, 0.1f};
	IsrfTransformer *tf = NULL;
	uint8_t    *mask;
	size_t		i,
				decayed = 0;

	CHECK(isrf_tf_create(be, &cfg, 1, &tf) == ISRF_ERR_INVALID);
	CHECK(strstr(env.errmsg, "n_heads") != NULL);
	CHECK(tf == NULL);
	cfg.n_heads = 2;
	cfg.dropout = 1.0f;
	CHECK(isrf_tf_config_check(&env, &cfg) == ISRF_ERR_INVALID);
	cfg.dropout = 0.1f;
	CHECK(isrf_tf_create(be, &cfg, 1, &tf) == ISRF_OK);
	mask = malloc(tf->n_params);
	isrf_tf_decay_mask(tf, mask);
	for (i = 0; i < tf->n_params; i++)
		decayed += mask[i];
	CHECK(decayed == 2 * (3 * 64 * 64 + 64 * 64 + 2 * 256 * 64));
	CHECK(mask[tf->p.layers[1].fc2_w - tf->params] == 1);
	CHECK(mask[tf->p.layers[1].fc2_b - tf->params] == 0);
	CHECK(mask[tf->p.layers[0].ln1_w - tf->params] == 0);
	CHECK(tf->p.lnf_b + 64 == tf->params + tf->n_params);
	CHECK(tf->p.lnf_w[3] == 1.0f && tf->p.layers[1].ln2_b[5] == 0.0f);
	free(mask);
	isrf_tf_destroy(tf);
}

/* ---- timing ------------------------------------------------------------------------ */

static void
test_timing(void)
{
	IsrfTfConfig cfg = {2, 64, 2, 256, 20, 2, 0.1f};
	IsrfTransformer *tf;
	int			B = 256,
				T = 20,
				C = 64,
				it,
				iters = 3;
	size_t		n = (size_t) B * T * C,
				i;
	float	   *x = malloc(sizeof(float) * n),
			   *dh = malloc(sizeof(float) * n),
			   *dx = malloc(sizeof(float) * n);
	int32_t    *lens = malloc(sizeof(int32_t) * B);
	uint8_t    *valid = malloc((size_t) B * T);
	double		t0,
				fwd = 0.0,
				bwd = 0.0;

	CHECK(isrf_tf_create(be, &cfg, 3, &tf) == ISRF_OK);
	for (i = 0; i < n; i++)
	{
		x[i] = unit_rand_uniform(&rng);
		dh[i] = 1e-3f * unit_rand_uniform(&rng);
	}
	for (i = 0; i < (size_t) B; i++)
		lens[i] = 3 + (int32_t) (unit_rand_next(&rng) % 18);
	isrf_nn_mask_left_padded(valid, lens, B, T);
	for (it = 0; it <= iters; it++)
	{
		t0 = isrf_now();
		CHECK(isrf_tf_forward(tf, x, valid, B, T, true, (uint64_t) it) == ISRF_OK);
		if (it > 0)
			fwd += isrf_now() - t0;
		t0 = isrf_now();
		isrf_tf_zero_grad(tf);
		CHECK(isrf_tf_backward(tf, dh, dx) == ISRF_OK);
		if (it > 0)
			bwd += isrf_now() - t0;
	}
	{
		char		desc[256];

		be->describe(be, desc, sizeof(desc));
		printf("timing (%s): B=256 T=20 d=64 L=2 H=2 F=256: forward %.1f ms, backward %.1f ms, total %.1f ms per step (mean of %d)\n",
			   desc, 1e3 * fwd / iters, 1e3 * bwd / iters, 1e3 * (fwd + bwd) / iters, iters);
	}
	isrf_tf_destroy(tf);
	free(x);
	free(dh);
	free(dx);
	free(lens);
	free(valid);
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
	test_config();
	test_gradcheck();
	test_masks_and_causality();
	test_determinism();
	test_shift_task();
	test_timing();
	isrf_backend_close(be);
	UNIT_END("test_transformer");
}
