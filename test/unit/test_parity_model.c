/*
 * test_parity_model.c
 *	  GPU-vs-CPU parity of whole models: the transformer's forward and
 *	  backward, one training step of the generative model (loss and the
 *	  gradient of every tensor), its inference (encoding, dense scores, code
 *	  log-probabilities), and a short training run, on the CUDA backend
 *	  against the CPU backend (the reference).  CUDA runs are repeated and
 *	  must agree bitwise (determinism).  test_parity and test_parity_nn_* check
 *	  the single operations; this test checks that they are wired together
 *	  the same way on both backends.
 *
 * The CUDA library is $ISRF_CUDA_LIBRARY or ISRF_BUILD_DIR/isrf_cuda.so.
 * Without a device the test prints "test_parity_model: SKIP: <reason>".
 * With ISRF_PARITY_SELF=1 a second CPU backend stands in for CUDA, so the
 * test itself runs (and must agree bitwise) on machines without a GPU; it
 * is renamed so that the generative model treats it as a device and takes
 * the code paths a GPU takes (host staging, downloads, an own host backend).
 *
 * Tolerances (float32, cuBLAS with TF32 off, reductions in another order):
 *	transformer hidden, dinput	|gpu - cpu| <= 1e-4 * (1 + |cpu|)
 *	parameter gradients		max |gpu - cpu| <= 1e-3 * (max |cpu| + 1e-3) per tensor
 *	training-step loss		relative 1e-5
 *	inference scores, log-probabilities	|gpu - cpu| <= 1e-4 * (1 + |cpu|)
 *	after two epochs of training	validation NDCG@10 within 0.02, the tuned
 *					prior weights equal, weights
 *					within 5e-2 (dropout masks are identical, but
 *					rounding differences grow over steps)
 */
#define PARITY_NAME "test_parity_model"
#include "parity.h"
#include "model/genrec.h"
#include "train/config.h"
#include "support/genrec_hooks.h"
#include "genrec_data.h"
#include "nn/transformer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>


/* ---- helpers ---------------------------------------------------------- */

/* Largest |a - b| / (1 + |b|) (NaN counts as infinite). */
static double
rel_diff(const float *a, const float *b, size_t n)
{
	double		worst = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - (double) b[i]) / (1.0 + fabs((double) b[i]));

		if (d != d)
			return INFINITY;
		if (d > worst)
			worst = d;
	}
	return worst;
}

static double
max_abs(const float *a, size_t n)
{
	double		m = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
		if (fabs((double) a[i]) > m)
			m = fabs((double) a[i]);
	return m;
}

/* ---- transformer ------------------------------------------------------- */

typedef struct TfRun
{
	float	   *hidden;			/* host copies */
	float	   *dinput;
	float	   *grads;
	size_t		n_params;
} TfRun;

/* One forward + backward of a fresh transformer on b; results on the host. */
static void
tf_run(IsrfBackend *b, const IsrfTfConfig *cfg, int B, int T, const float *x,
	   const uint8_t *valid, const int32_t *pos, const float *dh, TfRun *out)
{
	IsrfTransformer *tf = NULL;
	size_t		n = (size_t) B * T * cfg->d_model;
	float	   *dx = to_backend(b, x, sizeof(float) * n),
			   *ddh = to_backend(b, dh, sizeof(float) * n),
			   *din = to_backend(b, x, sizeof(float) * n);

	CHECK(isrf_tf_create(b, cfg, 77, &tf) == ISRF_OK);
	if (tf == NULL)
		exit(2);
	CHECK(isrf_tf_add_positions(tf, dx, pos, B * T) == ISRF_OK);
	CHECK(isrf_tf_forward(tf, dx, valid, B, T, true, 4242) == ISRF_OK);
	out->hidden = from_backend(b, tf->hidden, sizeof(float) * n);
	CHECK(isrf_tf_zero_grad(tf) == ISRF_OK);
	CHECK(isrf_tf_backward(tf, ddh, din) == ISRF_OK);
	CHECK(isrf_tf_add_positions_backward(tf, din, pos, B * T) == ISRF_OK);
	out->dinput = from_backend(b, din, sizeof(float) * n);
	out->grads = from_backend(b, tf->grads, sizeof(float) * tf->n_params);
	out->n_params = tf->n_params;
	isrf_tf_destroy(tf);
	b->mem_free(b, dx);
	b->mem_free(b, ddh);
	b->mem_free(b, din);
}

static void
tf_run_free(TfRun *r)
{
	free(r->hidden);
	free(r->dinput);
	free(r->grads);
}

static void
test_transformer(void)
{
	IsrfTfConfig cfg = {.n_layers = 2,.d_model = 64,.n_heads = 2,.d_ff = 256,
	.max_len = 50,.n_prefix = 0,.dropout = 0.1f};
	int			B = 16,
				T = 37,
				i,
				j;
	size_t		n = (size_t) B * T * cfg.d_model;
	float	   *x = xmalloc(sizeof(float) * n),
			   *dh = xmalloc(sizeof(float) * n);
	uint8_t    *valid = xmalloc((size_t) B * T);
	int32_t    *pos = xmalloc(sizeof(int32_t) * B * T),
			   *lens = xmalloc(sizeof(int32_t) * B);
	unsigned long long rs = 99;
	TfRun		c,
				g,
				g2;
	double		gd,
				worst = 0.0;

	for (i = 0; (size_t) i < n; i++)
	{
		x[i] = unit_rand_uniform(&rs);
		dh[i] = unit_rand_uniform(&rs);
	}
	for (i = 0; i < B; i++)
		lens[i] = i == 0 ? T : 1 + (int32_t) (unit_rand_next(&rs) % T);
	isrf_nn_mask_left_padded(valid, lens, B, T);
	for (i = 0; i < B; i++)
		for (j = 0; j < T; j++)
			pos[i * T + j] = valid[i * T + j] ? j - (T - lens[i]) : ISRF_TF_POS_PAD;

	tf_run(cpu, &cfg, B, T, x, valid, pos, dh, &c);
	tf_run(gpu, &cfg, B, T, x, valid, pos, dh, &g);
	tf_run(gpu, &cfg, B, T, x, valid, pos, dh, &g2);
	CHECK_MSG(rel_diff(g.hidden, c.hidden, n) <= 1e-4, "transformer hidden differs by %g",
			  rel_diff(g.hidden, c.hidden, n));
	CHECK_MSG(rel_diff(g.dinput, c.dinput, n) <= 1e-4, "transformer dinput differs by %g",
			  rel_diff(g.dinput, c.dinput, n));
	gd = unit_max_abs_diff(g.grads, c.grads, c.n_params);
	CHECK_MSG(gd <= 1e-3 * (max_abs(c.grads, c.n_params) + 1e-3),
			  "transformer grads differ by %g (max %g)", gd, max_abs(c.grads, c.n_params));
	CHECK_MSG(memcmp(g.hidden, g2.hidden, sizeof(float) * n) == 0 &&
			  memcmp(g.grads, g2.grads, sizeof(float) * c.n_params) == 0 &&
			  memcmp(g.dinput, g2.dinput, sizeof(float) * n) == 0,
			  "transformer on %s is not bitwise repeatable", gpu->name);
	/* padding rows: exactly zero on both */
	for (i = 0; i < B * T; i++)
		if (!valid[i])
			worst += max_abs(g.hidden + (size_t) i * cfg.d_model, cfg.d_model) +
				max_abs(g.dinput + (size_t) i * cfg.d_model, cfg.d_model);
	CHECK_MSG(worst == 0.0, "padding rows are not zero on %s", gpu->name);
	printf("transformer: hidden %.2e, dinput %.2e, grads %.2e (B=%d T=%d C=%d L=%d)\n",
		   rel_diff(g.hidden, c.hidden, n), rel_diff(g.dinput, c.dinput, n), gd, B, T,
		   cfg.d_model, cfg.n_layers);
	tf_run_free(&c);
	tf_run_free(&g);
	tf_run_free(&g2);
	free(x);
	free(dh);
	free(valid);
	free(pos);
	free(lens);
}

/* ---- generative model ---------------------------------------------------- */

static void
model_config(IsrfGenrecConfig *c)
{
	IsrfTrainConfig defaults;

	isrf_train_config_default(&defaults);
	*c = defaults.gen;
	c->d_model = 32;
	c->tf_layers = 2;
	c->n_heads = 2;
	c->max_len = 8;
	c->batch_size = 16;
	c->epochs = 0;
	c->dropout = 0.1f;
	c->semid_levels = 2;
	c->semid_codebook = 8;
	c->lambda1 = 0.5f;
	c->lambda2 = 0.5f;
	c->use_explicit = true;		/* every part on */
	c->use_group_interest = true;
	c->use_word_emb = true;		/* over test_data_text's words */
	c->tau = 0.5f;
	c->use_prior = false;
}

/* Names of every tensor of the model (isrf_genrec_test_tensor). */
static const char *const tensor_names[] = {
	"tf", "item_emb", "ad_w1", "ad_b1", "ad_w2", "ad_b2", "ex_w", "pu_w", "pu_b",
	"pg_w", "pg_b", "cemb0", "cemb1", "cemb2", "dec_w0", "dec_w1", "dec_w2",
	"dec_b0", "dec_b1", "dec_b2", "word_emb"
};

/* Loss and gradients of one training step on b; gradients as host copies. */
static double
step_run(IsrfBackend *b, TestData *t, const IsrfGenrec *g, const int32_t *users, int n,
		 float **grads, size_t *sizes)
{
	IsrfGenrecSession *s = NULL;
	double		loss = NAN;
	size_t		k;

	CHECK(isrf_genrec_test_session(&env, b, &t->d, g, &s) == ISRF_OK);
	if (s == NULL)
		exit(2);
	CHECK(isrf_genrec_test_loss(s, n, users, 31337, &loss) == ISRF_OK);
	for (k = 0; k < sizeof(tensor_names) / sizeof(tensor_names[0]); k++)
	{
		float	   *w,
				   *gr;

		grads[k] = NULL;
		sizes[k] = 0;
		if (isrf_genrec_test_tensor(s, tensor_names[k], &w, &gr, &sizes[k]))
			grads[k] = from_backend(b, gr, sizeof(float) * sizes[k]);
	}
	isrf_genrec_session_close(s);
	return loss;
}

static void
test_train_step(TestData *t, const IsrfGenrec *g)
{
	enum
	{
		NT = sizeof(tensor_names) / sizeof(tensor_names[0])
	};
	float	   *gc[NT],
			   *gg[NT],
			   *gg2[NT];
	size_t		sc[NT],
				sg[NT],
				sg2[NT],
				k;
	int32_t		users[24];
	double		lc,
				lg,
				lg2;
	int			i,
				n = 0;

	for (i = 0; i < t->d.n_users && n < 24; i++)
		if (t->d.n_train[i] >= 2)
			users[n++] = i;
	lc = step_run(cpu, t, g, users, n, gc, sc);
	lg = step_run(gpu, t, g, users, n, gg, sg);
	lg2 = step_run(gpu, t, g, users, n, gg2, sg2);
	CHECK_MSG(fabs(lg - lc) <= 1e-5 * fabs(lc), "training-step loss %.9g vs %.9g", lg, lc);
	CHECK_MSG(lg == lg2, "training-step loss on %s not repeatable: %.9g vs %.9g", gpu->name, lg, lg2);
	printf("training step: loss cpu %.7f %s %.7f\n", lc, gpu->name, lg);
	for (k = 0; k < NT; k++)
	{
		double		d,
					m;

		if (gc[k] == NULL)
			continue;
		CHECK(gg[k] != NULL && sg[k] == sc[k]);
		if (gg[k] == NULL || sg[k] != sc[k])
			continue;
		d = unit_max_abs_diff(gg[k], gc[k], sc[k]);
		m = max_abs(gc[k], sc[k]);
		CHECK_MSG(d <= 1e-3 * (m + 1e-3), "gradient of %s differs by %g (max %g)",
				  tensor_names[k], d, m);
		CHECK_MSG(memcmp(gg[k], gg2[k], sizeof(float) * sc[k]) == 0,
				  "gradient of %s on %s is not repeatable", tensor_names[k], gpu->name);
		printf("  grad %-9s max %.3e diff %.3e\n", tensor_names[k], m, d);
	}
	for (k = 0; k < NT; k++)
	{
		free(gc[k]);
		free(gg[k]);
		free(gg2[k]);
	}
}

/* Encodings, dense scores and level-0/1 code log-probabilities on b. */
static void
infer_run(IsrfBackend *b, TestData *t, const IsrfGenrec *g, int n, float **h,
		  float **scores, float **lp0, float **lp1)
{
	IsrfGenrecSession *s = NULL;
	int32_t    *users = xmalloc(sizeof(int32_t) * n),
			   *lens = xmalloc(sizeof(int32_t) * n),
			   *prefix = xmalloc(sizeof(int32_t) * n);
	const int32_t **hist = xmalloc(sizeof(*hist) * n);
	const float **rows = xmalloc(sizeof(*rows) * n);
	int			i,
				C = g->cfg.d_model;

	CHECK(isrf_genrec_session_open(&env, b, g, &t->d, &s) == ISRF_OK);
	if (s == NULL)
		exit(2);
	for (i = 0; i < n; i++)
	{
		users[i] = i;
		hist[i] = t->d.seq + t->d.seq_ptr[i];
		lens[i] = t->d.n_train[i];
		prefix[i] = i % g->codebook_sizes[0];
	}
	*h = xmalloc(sizeof(float) * n * C);
	*scores = xmalloc(sizeof(float) * n * t->d.n_items);
	*lp0 = xmalloc(sizeof(float) * n * g->codebook_sizes[0]);
	*lp1 = xmalloc(sizeof(float) * n * g->codebook_sizes[1]);
	CHECK(isrf_genrec_encode(s, n, users, hist, lens, *h) == ISRF_OK);
	CHECK(isrf_genrec_dense_scores(s, n, *h, *scores) == ISRF_OK);
	for (i = 0; i < n; i++)
		rows[i] = *h + (size_t) i * C;
	CHECK(isrf_genrec_code_logp(s, 0, n, rows, NULL, *lp0) == ISRF_OK);
	CHECK(isrf_genrec_code_logp(s, 1, n, rows, prefix, *lp1) == ISRF_OK);
	isrf_genrec_session_close(s);
	free(users);
	free(lens);
	free(prefix);
	free(hist);
	free(rows);
}

static void
test_inference(TestData *t, const IsrfGenrec *g)
{
	int			n = t->d.n_users < 40 ? t->d.n_users : 40;
	float	   *hc,
			   *sc,
			   *a0,
			   *a1,
			   *hg,
			   *sg,
			   *b0,
			   *b1;
	size_t		C = (size_t) g->cfg.d_model;

	infer_run(cpu, t, g, n, &hc, &sc, &a0, &a1);
	infer_run(gpu, t, g, n, &hg, &sg, &b0, &b1);
	CHECK_MSG(rel_diff(hg, hc, n * C) <= 1e-4, "encodings differ by %g", rel_diff(hg, hc, n * C));
	CHECK_MSG(rel_diff(sg, sc, (size_t) n * t->d.n_items) <= 1e-4, "dense scores differ by %g",
			  rel_diff(sg, sc, (size_t) n * t->d.n_items));
	CHECK_MSG(rel_diff(b0, a0, (size_t) n * g->codebook_sizes[0]) <= 1e-4 &&
			  rel_diff(b1, a1, (size_t) n * g->codebook_sizes[1]) <= 1e-4,
			  "code log-probabilities differ by %g / %g",
			  rel_diff(b0, a0, (size_t) n * g->codebook_sizes[0]),
			  rel_diff(b1, a1, (size_t) n * g->codebook_sizes[1]));
	printf("inference: encodings %.2e, dense scores %.2e, code log-p %.2e / %.2e\n",
		   rel_diff(hg, hc, n * C), rel_diff(sg, sc, (size_t) n * t->d.n_items),
		   rel_diff(b0, a0, (size_t) n * g->codebook_sizes[0]),
		   rel_diff(b1, a1, (size_t) n * g->codebook_sizes[1]));
	free(hc);
	free(sc);
	free(a0);
	free(a1);
	free(hg);
	free(sg);
	free(b0);
	free(b1);
}

static void
test_training(TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	gc,
				gg,
				gg2;
	double		wd;

	model_config(&c);
	c.epochs = 2;
	c.patience = 2;
	c.use_prior = true;			/* the tuning scores candidate lists too */
	CHECK(isrf_genrec_train(&env, cpu, &t->d, &c, NULL, NULL, &gc) == ISRF_OK);
	CHECK(isrf_genrec_train(&env, gpu, &t->d, &c, NULL, NULL, &gg) == ISRF_OK);
	CHECK(isrf_genrec_train(&env, gpu, &t->d, &c, NULL, NULL, &gg2) == ISRF_OK);
	if (gc.params == NULL || gg.params == NULL || gg2.params == NULL)
		return;
	CHECK_MSG(fabs(gg.best_val_ndcg10 - gc.best_val_ndcg10) <= 0.02,
			  "validation NDCG@10 %g on %s vs %g", gg.best_val_ndcg10, gpu->name, gc.best_val_ndcg10);
	CHECK_MSG(gg.weights.prior == gc.weights.prior && gg.weights.prior_direct == gc.weights.prior_direct,
			  "tuned prior weights %g / %g on %s vs %g / %g", gg.weights.prior, gg.weights.prior_direct,
			  gpu->name, gc.weights.prior, gc.weights.prior_direct);
	wd = unit_max_abs_diff(gg.params, gc.params, gc.n_params);
	CHECK_MSG(wd <= 5e-2, "weights after training differ by %g", wd);
	CHECK_MSG(gg.n_params == gg2.n_params &&
			  memcmp(gg.params, gg2.params, sizeof(float) * gg.n_params) == 0 &&
			  memcmp(gg.tf_params, gg2.tf_params, sizeof(float) * gg.n_tf_params) == 0,
			  "training on %s is not bitwise repeatable", gpu->name);
	printf("training (2 epochs): val NDCG@10 cpu %.4f %s %.4f, max weight diff %.2e\n",
		   gc.best_val_ndcg10, gpu->name, gg.best_val_ndcg10, wd);
	isrf_genrec_free(&env, &gc);
	isrf_genrec_free(&env, &gg);
	isrf_genrec_free(&env, &gg2);
}

static void
test_genrec(void)
{
	TestData	t;
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfCsr		txt;

	test_data_random(&t, 64, 50, 16, 5);
	test_data_text(t.d.n_items, &txt);
	t.d.item_text = &txt;
	model_config(&c);
	/* epochs 0: the initial weights, built on the reference */
	CHECK(isrf_genrec_train(&env, cpu, &t.d, &c, NULL, NULL, &g) == ISRF_OK);
	if (g.params == NULL)
		exit(2);
	test_train_step(&t, &g);
	test_inference(&t, &g);
	isrf_genrec_free(&env, &g);
	test_training(&t);
	test_data_free(&t);
	test_data_text_free(&txt);
}

int
main(void)
{
	bool		self_mode = parity_self_mode();
	char		desc[512];

	if (!parity_open(self_mode))
		return 0;
	if (self_mode)
	{
		/* not named "cpu": the model takes its device paths (staging, downloads) */
		gpu->name = "cpu-as-device";
		printf("test_parity_model: ISRF_PARITY_SELF: a second CPU backend stands in for CUDA\n");
	}
	CHECK(gpu->describe(gpu, desc, sizeof(desc)) == ISRF_OK);
	printf("backend: %s\n", desc);
	test_transformer();
	test_genrec();
	isrf_backend_close(gpu);
	isrf_backend_close(cpu);
	UNIT_END("test_parity_model");
}
