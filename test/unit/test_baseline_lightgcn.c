/*
 * test_baseline_lightgcn.c
 *	  Unit tests of the LightGCN + BPR baseline: the objective against a
 *	  dense double-precision reference, its gradient (through the LightGCN
 *	  backward and the L2 term) against central finite differences, and on
 *	  synthetic data with planted groups: the loss falls, HR@10 beats
 *	  popularity clearly, the backend ranking matches a plain host ranking,
 *	  training is deterministic given the seed, and the copying path of a
 *	  device backend gives the same result as the CPU's shared memory.
 */
#include "eval/baselines.h"
#include "eval/baseline_lightgcn.h"
#include "data/synthetic.h"
#include "unit.h"

#include <string.h>

/* A dataset from (user, item) rows given in order, positions 1, 2, ... */
static IsrfStatus
build_dataset(IsrfEnv *env, int n, const int64_t *users, const int64_t *items,
			  IsrfDataset *ds)
{
	IsrfInteractions rows;
	double		order[64];
	int			i;

	for (i = 0; i < n; i++)
		order[i] = i;
	rows.n = n;
	rows.user_id = users;
	rows.item_id = items;
	rows.order = order;
	return isrf_dataset_build(env, &rows, NULL, 0, ds);
}

/* The objective in double with dense propagation: the plain reference. */
static double
reference_loss(const IsrfCsr *s, int n_users, int d, int layers, float reg,
			   const float *e0, int n_trip, const int32_t *trip)
{
	int			n = s->n_rows;
	double	   *cur = calloc((size_t) n * d, sizeof(double));
	double	   *nxt = calloc((size_t) n * d, sizeof(double));
	double	   *e = calloc((size_t) n * d, sizeof(double));
	double		loss = 0.0,
				sq = 0.0;
	int			i,
				k,
				l,
				p,
				t;

	for (i = 0; i < n * d; i++)
		cur[i] = e[i] = e0[i];
	for (l = 1; l <= layers; l++)
	{
		memset(nxt, 0, sizeof(double) * n * d);
		for (i = 0; i < n; i++)
			for (p = s->rowptr[i]; p < s->rowptr[i + 1]; p++)
				for (k = 0; k < d; k++)
					nxt[i * d + k] += s->val[p] * cur[s->col[p] * d + k];
		for (i = 0; i < n * d; i++)
		{
			e[i] += nxt[i];
			cur[i] = nxt[i];
		}
	}
	for (i = 0; i < n * d; i++)
		e[i] /= (layers + 1);
	for (t = 0; t < n_trip; t++)
	{
		int			u = trip[3 * t],
					a = n_users + trip[3 * t + 1],
					b = n_users + trip[3 * t + 2];
		double		x = 0.0;

		for (k = 0; k < d; k++)
		{
			x += e[u * d + k] * (e[a * d + k] - e[b * d + k]);
			sq += (double) e0[u * d + k] * e0[u * d + k] +
				(double) e0[a * d + k] * e0[a * d + k] +
				(double) e0[b * d + k] * e0[b * d + k];
		}
		loss += log1p(exp(-x));
	}
	free(cur);
	free(nxt);
	free(e);
	return loss / n_trip + 0.5 * reg * sq / n_trip;
}

static void
test_objective_gradient(IsrfEnv *env, IsrfBackend *be)
{
	/* 4 users, 6 items; each user's last two items are validation and test */
	static const int64_t users[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4};
	static const int64_t items[] = {10, 11, 12, 13, 14, 11, 12, 15, 10, 13, 14, 15, 10, 11, 12, 14, 15, 10};
	/* (u, i, j): repeated users, items and an item both positive and negative */
	static const int32_t trip[] = {0, 0, 5, 0, 1, 4, 1, 1, 3, 2, 3, 0, 2, 4, 1, 2, 5, 0, 3, 4, 2, 0, 2, 3};
	int			n_trip = 8;
	IsrfDataset ds;
	IsrfCsr		s;
	IsrfDevCsr *ds_csr = NULL;
	const int	d = 3,
				layers = 2;
	const float reg = 0.05f;
	float		e0[64],
				grad[64],
				work[64];
	int			n,
				i,
				bad = 0;
	double		loss = 0.0,
				worst = 0.0;
	unsigned long long seed = 7;

	CHECK(build_dataset(env, 18, users, items, &ds) == ISRF_OK);
	CHECK(ds.n_users == 4 && ds.n_items == 6);
	CHECK(isrf_lightgcn_bipartite(env, &ds, &s) == ISRF_OK);
	CHECK(be->csr_create(be, &s, &ds_csr) == ISRF_OK);
	n = ds.n_users + ds.n_items;
	for (i = 0; i < n * d; i++)
		e0[i] = 0.8f * unit_rand_uniform(&seed);

	CHECK(isrf_lgcn_bpr_objective(env, be, ds_csr, ds.n_users, ds.n_items, d, layers, reg,
								  e0, n_trip, trip, &loss, grad) == ISRF_OK);
	CHECK_NEAR(loss, reference_loss(&s, ds.n_users, d, layers, reg, e0, n_trip, trip), 1e-5);

	/* central differences of the double-precision reference, every coordinate */
	for (i = 0; i < n * d; i++)
	{
		const float h = 1e-3f;
		double		lp,
					lm,
					fd,
					err;

		memcpy(work, e0, sizeof(float) * n * d);
		work[i] = e0[i] + h;
		lp = reference_loss(&s, ds.n_users, d, layers, reg, work, n_trip, trip);
		work[i] = e0[i] - h;
		lm = reference_loss(&s, ds.n_users, d, layers, reg, work, n_trip, trip);
		fd = (lp - lm) / (2.0 * h);
		err = fabs(fd - grad[i]);
		if (err > worst)
			worst = err;
		if (err > 1e-4 + 1e-3 * fabs(fd))
			bad++;
	}
	CHECK_MSG(bad == 0, "%d of %d gradient entries off (worst %g)", bad, n * d, worst);

	/* items that no triple and no neighbour of a triple reaches get no gradient */
	{
		int			nz = 0;

		for (i = 0; i < n * d; i++)
			nz += grad[i] != 0.0f;
		CHECK(nz > n * d / 2);
	}

	/* out-of-range triples are refused with a message */
	{
		int32_t		badt[3] = {0, 6, 1};

		CHECK(isrf_lgcn_bpr_objective(env, be, ds_csr, ds.n_users, ds.n_items, d, layers,
									  reg, e0, 1, badt, &loss, NULL) == ISRF_ERR_INVALID);
		CHECK(strstr(env->errmsg, "out of range") != NULL);
	}
	be->csr_destroy(be, ds_csr);
	isrf_csr_free(env, &s);
	isrf_dataset_free(env, &ds);
}

static void
test_config(IsrfEnv *env)
{
	IsrfLgcnBprConfig cfg;

	isrf_lgcn_bpr_config_default(&cfg);
	CHECK(cfg.dim == 64 && cfg.layers == 3 && cfg.batch == 2048);
	CHECK(cfg.lr == 1e-2f && cfg.reg == 1e-4f && cfg.max_epochs == 40);
	CHECK(isrf_lgcn_bpr_config_check(env, &cfg) == ISRF_OK);
	cfg.lr = 0.0f;
	CHECK(isrf_lgcn_bpr_config_check(env, &cfg) == ISRF_ERR_INVALID);
	CHECK(strstr(env->errmsg, "lr") != NULL);
	isrf_lgcn_bpr_config_default(&cfg);
	cfg.patience = 0;
	CHECK(isrf_lgcn_bpr_config_check(env, &cfg) == ISRF_ERR_INVALID);
	CHECK(strstr(env->errmsg, "patience") != NULL);
}

/* The synthetic data set as a dataset. */
static IsrfStatus
synth_dataset(IsrfEnv *env, IsrfDataset *ds)
{
	IsrfSynthConfig sc = {400, 240, 8, 12, 42};
	IsrfSynthData sd;
	IsrfInteractions rows;
	double	   *order;
	int64_t		i;
	IsrfStatus	st;

	ISRF_TRY(isrf_synth_generate(env, &sc, &sd));
	order = malloc(sizeof(double) * sd.n_rows);
	for (i = 0; i < sd.n_rows; i++)
		order[i] = sd.position[i];
	rows.n = sd.n_rows;
	rows.user_id = sd.user_id;
	rows.item_id = sd.item_id;
	rows.order = order;
	st = isrf_dataset_build(env, &rows, NULL, 0, ds);
	free(order);
	isrf_synth_free(env, &sd);
	return st;
}

/* Full-ranking metrics from isrf_lgcn_bpr_score on the host: the reference. */
static IsrfMetrics
host_rank(const IsrfLgcnBpr *m, const IsrfDataset *ds, IsrfTarget target)
{
	float	   *sc = malloc(sizeof(float) * ds->n_items);
	IsrfMetrics acc;
	int32_t		u;

	memset(&acc, 0, sizeof(acc));
	for (u = 0; u < ds->n_users; u++)
	{
		int32_t		top[10],
					n_in,
					tgt;

		if (!ds->evaluated[u])
			continue;
		tgt = isrf_eval_input(ds, u, target, &n_in);
		isrf_lgcn_bpr_score(m, u, sc);
		isrf_topk_excluding(sc, ds->n_items, ds->seq + ds->seq_ptr[u], n_in, 10, top, NULL);
		isrf_metrics_add(&acc, isrf_rank_in_list(top, 10, tgt));
	}
	free(sc);
	return isrf_metrics_mean(&acc);
}

static void
test_train_synth(IsrfEnv *env, IsrfBackend *be)
{
	IsrfDataset ds;
	IsrfLgcnBprConfig cfg;
	IsrfLgcnBpr m,
				m2,
				m3;
	IsrfMetrics test,
				href,
				val;
	IsrfBaselines bl;
	IsrfBaselineEval be_eval;
	float	   *sc;
	double		t0;

	CHECK(synth_dataset(env, &ds) == ISRF_OK);
	isrf_lgcn_bpr_config_default(&cfg);
	cfg.dim = 32;
	cfg.batch = 512;
	cfg.lr = 1e-2f;
	cfg.max_epochs = 40;
	cfg.patience = 4;
	t0 = isrf_now();
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m) == ISRF_OK);
	printf("synth: %d epochs (best %d), loss %.4f -> %.4f, val NDCG@10 %.4f, %.2f s\n",
		   m.epochs, m.best_epoch, m.first_loss, m.last_loss, m.best_val_ndcg10,
		   isrf_now() - t0);
	CHECK(m.n_users == ds.n_users && m.n_items == ds.n_items && m.dim == 32);
	CHECK(m.epochs >= 1 && m.best_epoch >= 1 && m.best_epoch <= m.epochs);
	CHECK_MSG(m.last_loss < 0.7 * m.first_loss && m.first_loss < 0.7,
			  "loss %g -> %g", m.first_loss, m.last_loss);

	/* the kept embeddings are the ones whose validation score was reported */
	CHECK(isrf_lgcn_bpr_evaluate(env, be, &m, &ds, ISRF_TARGET_VALIDATION, &val) == ISRF_OK);
	CHECK_NEAR(val.ndcg10, m.best_val_ndcg10, 1e-6);

	/* backend ranking (gemm blocks) equals the plain host ranking */
	CHECK(isrf_lgcn_bpr_evaluate(env, be, &m, &ds, ISRF_TARGET_TEST, &test) == ISRF_OK);
	href = host_rank(&m, &ds, ISRF_TARGET_TEST);
	CHECK(test.users == ds.n_evaluated && href.users == test.users);
	CHECK_NEAR(test.hr10, href.hr10, 1e-9);
	CHECK_NEAR(test.ndcg10, href.ndcg10, 1e-6);
	CHECK_NEAR(test.hr5, href.hr5, 1e-9);

	/* planted groups: well above popularity */
	CHECK(isrf_baselines_fit(env, &ds, &bl) == ISRF_OK);
	CHECK(isrf_baselines_evaluate(env, &bl, &ds, ISRF_TARGET_TEST, NULL, false, &be_eval) == ISRF_OK);
	printf("synth test: lightgcn HR@10 %.4f NDCG@10 %.4f, popularity HR@10 %.4f NDCG@10 %.4f\n",
		   test.hr10, test.ndcg10, be_eval.sequential[ISRF_BASELINE_POPULARITY].hr10,
		   be_eval.sequential[ISRF_BASELINE_POPULARITY].ndcg10);
	CHECK_MSG(test.hr10 > 2.0 * be_eval.sequential[ISRF_BASELINE_POPULARITY].hr10 + 0.05,
			  "lightgcn HR@10 %g vs popularity %g", test.hr10,
			  be_eval.sequential[ISRF_BASELINE_POPULARITY].hr10);
	isrf_baselines_free(env, &bl);

	/* scores are the dot products; unknown users are refused */
	sc = malloc(sizeof(float) * ds.n_items);
	CHECK(isrf_lgcn_bpr_score(&m, 3, sc));
	{
		float		dot = 0.0f;
		int			k;

		for (k = 0; k < m.dim; k++)
			dot += m.user_emb[3 * m.dim + k] * m.item_emb[5 * m.dim + k];
		CHECK_NEAR(sc[5], dot, 1e-5);
	}
	CHECK(!isrf_lgcn_bpr_score(&m, -1, sc));
	CHECK(!isrf_lgcn_bpr_score(&m, ds.n_users, sc));
	free(sc);

	/* deterministic given the seed; another seed gives other embeddings */
	cfg.max_epochs = 3;
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m2) == ISRF_OK);
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m3) == ISRF_OK);
	CHECK(memcmp(m2.user_emb, m3.user_emb, sizeof(float) * ds.n_users * m2.dim) == 0);
	CHECK(memcmp(m2.item_emb, m3.item_emb, sizeof(float) * ds.n_items * m2.dim) == 0);
	CHECK(m2.last_loss == m3.last_loss && m2.best_epoch == m3.best_epoch);
	isrf_lgcn_bpr_free(env, &m3);
	cfg.seed = 2;
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m3) == ISRF_OK);
	CHECK(memcmp(m2.user_emb, m3.user_emb, sizeof(float) * ds.n_users * m2.dim) != 0);
	isrf_lgcn_bpr_free(env, &m3);

	/*
	 * The device path: a backend whose memory the engine must not address
	 * directly (the CPU table under another name) copies through a host
	 * backend and must give the same embeddings bit for bit.
	 */
	{
		IsrfBackend dev = *be;

		dev.name = "cpu-as-device";
		cfg.seed = 1;
		CHECK(isrf_lgcn_bpr_train(env, &dev, &ds, &cfg, &m3) == ISRF_OK);
		CHECK(memcmp(m2.user_emb, m3.user_emb, sizeof(float) * ds.n_users * m2.dim) == 0);
		CHECK(memcmp(m2.item_emb, m3.item_emb, sizeof(float) * ds.n_items * m2.dim) == 0);
		CHECK(isrf_lgcn_bpr_evaluate(env, &dev, &m, &ds, ISRF_TARGET_TEST, &href) == ISRF_OK);
		CHECK(href.hr10 == test.hr10 && href.ndcg10 == test.ndcg10);
		isrf_lgcn_bpr_free(env, &m3);
	}

	/* bad configuration is refused before anything is allocated */
	cfg.dim = 0;
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m3) == ISRF_ERR_INVALID);
	CHECK(m3.user_emb == NULL);

	isrf_lgcn_bpr_free(env, &m);
	isrf_lgcn_bpr_free(env, &m2);
	isrf_lgcn_bpr_free(env, &m3);
	isrf_dataset_free(env, &ds);
}

/* Users who touched every item in train have no negative: a clear error. */
static void
test_no_negatives(IsrfEnv *env, IsrfBackend *be)
{
	static const int64_t users[] = {1, 1, 2, 2};
	static const int64_t items[] = {10, 11, 11, 10};
	IsrfDataset ds;
	IsrfLgcnBprConfig cfg;
	IsrfLgcnBpr m;

	CHECK(build_dataset(env, 4, users, items, &ds) == ISRF_OK);
	isrf_lgcn_bpr_config_default(&cfg);
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m) == ISRF_ERR_INVALID);
	CHECK(strstr(env->errmsg, "negative") != NULL);
	isrf_dataset_free(env, &ds);
}

/* Cancellation reaches the training loop. */
static int	cancel_after = 0;

static bool
cancel_soon(void *ctx)
{
	(void) ctx;
	return --cancel_after < 0;
}

static void
test_cancel(IsrfEnv *env, IsrfBackend *be)
{
	IsrfDataset ds;
	IsrfLgcnBprConfig cfg;
	IsrfLgcnBpr m;

	CHECK(synth_dataset(env, &ds) == ISRF_OK);
	isrf_lgcn_bpr_config_default(&cfg);
	cfg.dim = 8;
	cfg.batch = 64;
	cancel_after = 20;
	env->cancelled = cancel_soon;
	CHECK(isrf_lgcn_bpr_train(env, be, &ds, &cfg, &m) == ISRF_ERR_CANCELLED);
	CHECK(m.user_emb == NULL && m.item_emb == NULL);
	env->cancelled = NULL;
	isrf_dataset_free(env, &ds);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;

	isrf_env_init_malloc(&env);
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CPU, NULL, &be) == ISRF_OK);
	test_config(&env);
	test_objective_gradient(&env, be);
	test_train_synth(&env, be);
	test_no_negatives(&env, be);
	test_cancel(&env, be);
	isrf_backend_close(be);
	UNIT_END("test_baseline_lightgcn");
}
