/*
 * eval/baseline_lightgcn.c
 *	  The LightGCN + BPR baseline (see lgcn_bpr.h): training loop, negative
 *	  sampling, validation early stopping and full-ranking scoring.
 *
 * Memory layout.  The ego embeddings, their gradient and the Adam state
 * live in host-addressable memory (the Adam update is a host loop), while
 * propagation and scoring run on the backend.  On the CPU backend both are
 * the same memory and nothing is copied; on a device backend each step
 * uploads E0, propagates, downloads the propagated E for the per-pair BPR
 * gradient, uploads that gradient, propagates it back and downloads dE0.
 * The graph is small (beauty: 34k nodes), so those copies are cheap next to
 * the sparse products.
 */
#include "eval/baseline_lightgcn.h"

#include "nn/layers.h"
#include "nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LGCN_BPR_TOPK 10
#define LGCN_BPR_ADAM_BETA1 0.9f
#define LGCN_BPR_ADAM_BETA2 0.999f
#define LGCN_BPR_ADAM_EPS 1e-8f
/* score rows per gemm block when ranking: bounds the block to ~64 MB */
#define LGCN_BPR_SCORE_FLOATS (16 * 1024 * 1024)

/* Buffers of one objective evaluation over the whole graph. */
typedef struct LgcnBprWork
{
	IsrfEnv    *env;
	IsrfBackend *be;			/* propagation */
	IsrfBackend *hb;			/* host-addressable: parameters, Adam */
	IsrfBackend *own_hb;		/* hb when created here (be is a device) */
	IsrfLightGcn gcn;
	int32_t		n_users;
	int32_t		n_items;
	int32_t		n;				/* n_users + n_items */
	int32_t		dim;
	float		reg;

	/* hb memory */
	float	   *e0;				/* ego embeddings (the parameters) */
	float	   *g0;				/* d loss / d e0 */
	float	   *e;				/* propagated embeddings */
	float	   *de;				/* d loss / d e */

	/* be memory; the same pointers as above when hb == be */
	float	   *d_e0;
	float	   *d_g0;
	float	   *d_e;
	float	   *d_de;
} LgcnBprWork;

void
isrf_lgcn_bpr_config_default(IsrfLgcnBprConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dim = 64;
	cfg->layers = 3;
	cfg->lr = 1e-2f;
	cfg->reg = 1e-4f;
	cfg->init_std = 0.1f;
	cfg->batch = 2048;
	cfg->max_epochs = 40;
	cfg->eval_every = 1;
	cfg->patience = 5;
	cfg->max_seconds = 0.0;
	cfg->seed = 1;
}

IsrfStatus
isrf_lgcn_bpr_config_check(IsrfEnv *env, const IsrfLgcnBprConfig *cfg)
{
	if (cfg->dim < 1 || cfg->dim > 4096)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn dim must be between 1 and 4096, not %d", cfg->dim);
	if (cfg->layers < 0 || cfg->layers > 16)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn layers must be between 0 and 16, not %d", cfg->layers);
	if (!(cfg->lr > 0.0f && cfg->lr <= 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn lr must be in (0, 1], not %g", (double) cfg->lr);
	if (!(cfg->reg >= 0.0f && cfg->reg <= 1e3f))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn reg must be in [0, 1000], not %g", (double) cfg->reg);
	if (!(cfg->init_std > 0.0f && cfg->init_std <= 10.0f))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn init_std must be in (0, 10], not %g", (double) cfg->init_std);
	if (cfg->batch < 1 || cfg->batch > (1 << 24))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn batch must be between 1 and %d, not %d", 1 << 24, cfg->batch);
	if (cfg->max_epochs < 0 || cfg->max_epochs > 100000)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn max_epochs must be between 0 and 100000, not %d",
						 cfg->max_epochs);
	if (cfg->eval_every < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn eval_every must be at least 1, not %d", cfg->eval_every);
	if (cfg->patience < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn patience must be at least 1, not %d", cfg->patience);
	if (!(cfg->max_seconds >= 0.0))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn max_seconds must be >= 0, not %g", cfg->max_seconds);
	return ISRF_OK;
}

/* splitmix64 step: the one random stream of a training run */
static uint64_t
lgcn_bpr_rand(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) for 0 < n < 2^31 (multiply-shift; bias below 2^-32). */
static int32_t
lgcn_bpr_below(uint64_t *state, int32_t n)
{
	return (int32_t) (((lgcn_bpr_rand(state) >> 32) * (uint64_t) n) >> 32);
}

/* Copy between host and backend memory, skipping the aliased case. */
static IsrfStatus
lgcn_bpr_upload(IsrfBackend *be, void *dst, const void *src, size_t bytes)
{
	return dst == src ? ISRF_OK : be->upload(be, dst, src, bytes);
}

static IsrfStatus
lgcn_bpr_download(IsrfBackend *be, void *dst, const void *src, size_t bytes)
{
	return dst == src ? ISRF_OK : be->download(be, dst, src, bytes);
}

static void
lgcn_bpr_work_free(LgcnBprWork *w)
{
	float	  **hosts[] = {&w->e0, &w->g0, &w->e, &w->de};
	float	  **devs[] = {&w->d_e0, &w->d_g0, &w->d_e, &w->d_de};
	int			i;

	if (w->be == NULL)
		return;
	isrf_lightgcn_free(&w->gcn);
	for (i = 0; i < 4; i++)
	{
		if (*devs[i] && *devs[i] != *hosts[i])
			w->be->mem_free(w->be, *devs[i]);
		if (*hosts[i])
			w->hb->mem_free(w->hb, *hosts[i]);
		*devs[i] = *hosts[i] = NULL;
	}
	if (w->own_hb)
		isrf_backend_close(w->own_hb);
	memset(w, 0, sizeof(*w));
}

/*
 * Set up the buffers of the objective over graph s (n_users + n_items
 * square, on be).  e0 is left zero.
 */
static IsrfStatus
lgcn_bpr_work_init(IsrfEnv *env, IsrfBackend *be, const IsrfDevCsr *s,
				   int32_t n_users, int32_t n_items, int32_t dim, int32_t layers,
				   float reg, LgcnBprWork *w)
{
	float	  **hosts[] = {&w->e0, &w->g0, &w->e, &w->de};
	float	  **devs[] = {&w->d_e0, &w->d_g0, &w->d_e, &w->d_de};
	size_t		bytes;
	IsrfStatus	st;
	int			i;

	memset(w, 0, sizeof(*w));
	if (n_users < 0 || n_items < 0 || (int64_t) n_users + n_items > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn: bad graph size (%d users, %d items)", n_users, n_items);
	w->env = env;
	w->be = be;
	w->n_users = n_users;
	w->n_items = n_items;
	w->n = n_users + n_items;
	w->dim = dim;
	w->reg = reg;
	if (isrf_nn_backend_host_ok(be))
		w->hb = be;
	else
	{
		st = isrf_cpu_backend_create(env, &w->own_hb);
		if (st != ISRF_OK)
		{
			w->be = NULL;
			return st;
		}
		w->hb = w->own_hb;
	}
	bytes = sizeof(float) * ((size_t) w->n * dim + 1);
	st = isrf_lightgcn_init(env, be, s, w->n, dim, layers, &w->gcn);
	for (i = 0; i < 4 && st == ISRF_OK; i++)
	{
		st = w->hb->mem_alloc(w->hb, bytes, (void **) hosts[i]);
		if (st == ISRF_OK)
		{
			if (w->hb == be)
				*devs[i] = *hosts[i];
			else
				st = be->mem_alloc(be, bytes, (void **) devs[i]);
		}
	}
	if (st != ISRF_OK)
		lgcn_bpr_work_free(w);
	return st;
}

/* Propagate the current e0 into d_e (backend memory). */
static IsrfStatus
lgcn_bpr_propagate(LgcnBprWork *w)
{
	size_t		bytes = sizeof(float) * (size_t) w->n * w->dim;

	ISRF_TRY(lgcn_bpr_upload(w->be, w->d_e0, w->e0, bytes));
	return isrf_lightgcn_forward(&w->gcn, w->d_e0, w->d_e);
}

/* log(1 + exp(x)) without overflow */
static double
lgcn_bpr_softplus(double x)
{
	return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/*
 * The objective of n triples at the current e0: *bpr (mean BPR loss) and
 * *l2 (the reg term), and its gradient in g0.
 */
static IsrfStatus
lgcn_bpr_loss_grad(LgcnBprWork *w, const int32_t *triples, int32_t n,
				   double *bpr, double *l2)
{
	size_t		len = (size_t) w->n * w->dim;
	size_t		bytes = sizeof(float) * len;
	int32_t		d = w->dim;
	double		sum_bpr = 0.0,
				sum_sq = 0.0;
	float		inv_n = n > 0 ? 1.0f / (float) n : 0.0f;
	float		rs = w->reg * inv_n;
	int32_t		t;

	ISRF_TRY(lgcn_bpr_propagate(w));
	ISRF_TRY(lgcn_bpr_download(w->be, w->e, w->d_e, bytes));
	memset(w->de, 0, bytes);
	for (t = 0; t < n; t++)
	{
		const float *eu = w->e + (size_t) triples[3 * t] * d;
		const float *ei = w->e + ((size_t) w->n_users + triples[3 * t + 1]) * d;
		const float *ej = w->e + ((size_t) w->n_users + triples[3 * t + 2]) * d;
		float	   *du = w->de + (size_t) triples[3 * t] * d;
		float	   *di = w->de + ((size_t) w->n_users + triples[3 * t + 1]) * d;
		float	   *dj = w->de + ((size_t) w->n_users + triples[3 * t + 2]) * d;
		double		x = 0.0;
		float		g;
		int32_t		k;

		for (k = 0; k < d; k++)
			x += (double) eu[k] * ((double) ei[k] - (double) ej[k]);
		sum_bpr += lgcn_bpr_softplus(-x);
		/* d softplus(-x) / dx = -sigmoid(-x), averaged over the batch */
		g = (float) (-1.0 / (1.0 + exp(x))) * inv_n;
		for (k = 0; k < d; k++)
		{
			float		u = eu[k];

			du[k] += g * (ei[k] - ej[k]);
			di[k] += g * u;
			dj[k] -= g * u;
		}
	}
	ISRF_TRY(lgcn_bpr_upload(w->be, w->d_de, w->de, bytes));
	ISRF_TRY(isrf_lightgcn_backward(&w->gcn, w->d_de, w->d_g0));
	ISRF_TRY(lgcn_bpr_download(w->be, w->g0, w->d_g0, bytes));

	/* the L2 term touches only the ego rows of the batch, once per occurrence */
	for (t = 0; t < 3 * n; t++)
	{
		int64_t		row = (t % 3 == 0) ? triples[t] : (int64_t) w->n_users + triples[t];
		const float *p = w->e0 + (size_t) row * d;
		float	   *gp = w->g0 + (size_t) row * d;
		int32_t		k;

		for (k = 0; k < d; k++)
		{
			sum_sq += (double) p[k] * p[k];
			gp[k] += rs * p[k];
		}
	}
	*bpr = n > 0 ? sum_bpr / n : 0.0;
	*l2 = n > 0 ? 0.5 * (double) w->reg * sum_sq / n : 0.0;
	return ISRF_OK;
}

IsrfStatus
isrf_lgcn_bpr_objective(IsrfEnv *env, IsrfBackend *be, const IsrfDevCsr *s,
						int32_t n_users, int32_t n_items, int32_t dim,
						int32_t layers, float reg, const float *e0,
						int32_t n, const int32_t *triples,
						double *loss, float *grad)
{
	LgcnBprWork w;
	double		bpr = 0.0,
				l2 = 0.0;
	IsrfStatus	st;
	int32_t		t;

	if (dim < 1 || layers < 0 || n < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn objective: bad dim %d, layers %d or triple count %d",
						 dim, layers, n);
	for (t = 0; t < n; t++)
	{
		int32_t		u = triples[3 * t],
					i = triples[3 * t + 1],
					j = triples[3 * t + 2];

		if (u < 0 || u >= n_users || i < 0 || i >= n_items || j < 0 || j >= n_items)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "lightgcn objective: triple %d (%d, %d, %d) is out of range (%d users, %d items)",
							 t, u, i, j, n_users, n_items);
	}
	ISRF_TRY(lgcn_bpr_work_init(env, be, s, n_users, n_items, dim, layers, reg, &w));
	memcpy(w.e0, e0, sizeof(float) * (size_t) w.n * dim);
	st = lgcn_bpr_loss_grad(&w, triples, n, &bpr, &l2);
	if (st == ISRF_OK)
	{
		*loss = bpr + l2;
		if (grad)
			memcpy(grad, w.g0, sizeof(float) * (size_t) w.n * dim);
	}
	lgcn_bpr_work_free(&w);
	return st;
}

/*
 * Full-ranking metrics of the target for every evaluated user, from
 * propagated user rows d_users and item rows d_items (backend memory).
 */
static IsrfStatus
lgcn_bpr_rank(IsrfEnv *env, IsrfBackend *be, const float *d_users,
			  const float *d_items, int32_t dim, const IsrfDataset *ds,
			  IsrfTarget target, IsrfMetrics *out)
{
	int32_t		n_items = ds->n_items;
	int32_t		block;
	float	   *d_sc = NULL,
			   *h_sc = NULL;
	bool		alias = isrf_nn_backend_host_ok(be);
	IsrfMetrics acc;
	IsrfStatus	st;
	int32_t		u0;

	memset(&acc, 0, sizeof(acc));
	memset(out, 0, sizeof(*out));
	if (ds->n_users == 0 || n_items == 0 || ds->n_evaluated == 0)
		return ISRF_OK;
	block = LGCN_BPR_SCORE_FLOATS / n_items;
	if (block < 1)
		block = 1;
	if (block > 1024)
		block = 1024;
	if (block > ds->n_users)
		block = ds->n_users;
	st = be->mem_alloc(be, sizeof(float) * (size_t) block * n_items, (void **) &d_sc);
	if (st != ISRF_OK)
		return st;
	if (alias)
		h_sc = d_sc;
	else if ((h_sc = isrf_alloc(env, sizeof(float) * (size_t) block * n_items)) == NULL)
		st = ISRF_ERR_NOMEM;

	for (u0 = 0; u0 < ds->n_users && st == ISRF_OK; u0 += block)
	{
		int32_t		rows = ds->n_users - u0 < block ? ds->n_users - u0 : block;
		bool		any = false;
		int32_t		u;

		for (u = u0; u < u0 + rows; u++)
			any |= ds->evaluated[u];
		if (!any)
			continue;
		if ((st = isrf_poll(env)) != ISRF_OK)
			break;
		st = be->gemm(be, false, true, rows, n_items, dim, 1.0f,
					  d_users + (size_t) u0 * dim, dim, d_items, dim,
					  0.0f, d_sc, n_items);
		if (st == ISRF_OK && !alias)
			st = be->download(be, h_sc, d_sc, sizeof(float) * (size_t) rows * n_items);
		for (u = u0; u < u0 + rows && st == ISRF_OK; u++)
		{
			int32_t		top[LGCN_BPR_TOPK];
			int32_t		n_in,
						tgt;

			if (!ds->evaluated[u])
				continue;
			tgt = isrf_eval_input(ds, u, target, &n_in);
			isrf_topk_excluding(h_sc + (size_t) (u - u0) * n_items, n_items,
								ds->seq + ds->seq_ptr[u], n_in, LGCN_BPR_TOPK, top, NULL);
			isrf_metrics_add(&acc, isrf_rank_in_list(top, LGCN_BPR_TOPK, tgt));
		}
	}
	if (!alias)
		isrf_free(env, h_sc);
	be->mem_free(be, d_sc);
	if (st == ISRF_OK)
		*out = isrf_metrics_mean(&acc);
	return st;
}

/* Train pairs, each user's sorted train items, and what training needs. */
typedef struct LgcnBprPairs
{
	int64_t		n;
	int32_t    *user;			/* [n] */
	int32_t    *item;			/* [n] */
	int32_t    *order;			/* [n] shuffled pair indices */
	int32_t    *tr_ptr;			/* [n_users + 1] */
	int32_t    *tr_item;		/* sorted train items per user */
} LgcnBprPairs;

static void
lgcn_bpr_pairs_free(IsrfEnv *env, LgcnBprPairs *p)
{
	isrf_free(env, p->user);
	isrf_free(env, p->item);
	isrf_free(env, p->order);
	isrf_free(env, p->tr_ptr);
	isrf_free(env, p->tr_item);
	memset(p, 0, sizeof(*p));
}

static int
lgcn_bpr_cmp_int32(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a,
				y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

/*
 * Collect the train pairs.  A user who touched every item in train has no
 * negative to draw, so that user's pairs are left out.
 */
static IsrfStatus
lgcn_bpr_pairs_build(IsrfEnv *env, const IsrfDataset *ds, LgcnBprPairs *p)
{
	int64_t		total = 0,
				w = 0;
	int32_t		u;

	memset(p, 0, sizeof(*p));
	for (u = 0; u < ds->n_users; u++)
		total += ds->n_train[u];
	if (total > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn: %lld train interactions, more than 2^31-1",
						 (long long) total);
	p->user = isrf_alloc(env, sizeof(int32_t) * (size_t) (total + 1));
	p->item = isrf_alloc(env, sizeof(int32_t) * (size_t) (total + 1));
	p->order = isrf_alloc(env, sizeof(int32_t) * (size_t) (total + 1));
	p->tr_ptr = isrf_alloc(env, sizeof(int32_t) * ((size_t) ds->n_users + 1));
	p->tr_item = isrf_alloc(env, sizeof(int32_t) * (size_t) (total + 1));
	if (!p->user || !p->item || !p->order || !p->tr_ptr || !p->tr_item)
	{
		lgcn_bpr_pairs_free(env, p);
		return ISRF_ERR_NOMEM;
	}
	p->tr_ptr[0] = 0;
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];
		int32_t		nt = ds->n_train[u],
					t;

		memcpy(p->tr_item + p->tr_ptr[u], h, sizeof(int32_t) * (size_t) nt);
		qsort(p->tr_item + p->tr_ptr[u], (size_t) nt, sizeof(int32_t), lgcn_bpr_cmp_int32);
		p->tr_ptr[u + 1] = p->tr_ptr[u] + nt;
		if (nt >= ds->n_items)
			continue;
		for (t = 0; t < nt; t++)
		{
			p->user[w] = u;
			p->item[w] = h[t];
			p->order[w] = (int32_t) w;
			w++;
		}
	}
	p->n = w;
	return ISRF_OK;
}

/* True when item is among u's train items. */
static bool
lgcn_bpr_in_train(const LgcnBprPairs *p, int32_t u, int32_t item)
{
	int32_t		lo = p->tr_ptr[u],
				hi = p->tr_ptr[u + 1];

	while (lo < hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (p->tr_item[mid] < item)
			lo = mid + 1;
		else if (p->tr_item[mid] > item)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* Fisher-Yates over the pair order. */
static void
lgcn_bpr_shuffle(LgcnBprPairs *p, uint64_t *rng)
{
	int64_t		i;

	for (i = p->n - 1; i > 0; i--)
	{
		int32_t		j = lgcn_bpr_below(rng, (int32_t) (i + 1));
		int32_t		tmp = p->order[i];

		p->order[i] = p->order[j];
		p->order[j] = tmp;
	}
}

/* Validate the current e0; keep its propagated embeddings when best. */
static IsrfStatus
lgcn_bpr_validate(LgcnBprWork *w, const IsrfDataset *ds, int32_t epoch,
				  float *best, IsrfLgcnBpr *out, double *ndcg)
{
	IsrfMetrics m;

	ISRF_TRY(lgcn_bpr_propagate(w));
	ISRF_TRY(lgcn_bpr_rank(w->env, w->be, w->d_e, w->d_e + (size_t) w->n_users * w->dim,
						   w->dim, ds, ISRF_TARGET_VALIDATION, &m));
	*ndcg = m.ndcg10;
	if (epoch == 0 || m.ndcg10 > out->best_val_ndcg10)
	{
		out->best_val_ndcg10 = m.ndcg10;
		out->best_epoch = epoch;
		ISRF_TRY(w->be->download(w->be, best, w->d_e,
								 sizeof(float) * (size_t) w->n * w->dim));
	}
	return ISRF_OK;
}

/* The training loop proper, on prepared work, pairs and optimizer. */
static IsrfStatus
lgcn_bpr_loop(LgcnBprWork *w, IsrfAdamW *opt, LgcnBprPairs *p, const IsrfDataset *ds,
			  const IsrfLgcnBprConfig *cfg, float *best, int32_t *triples,
			  double t0, IsrfLgcnBpr *out)
{
	IsrfEnv    *env = w->env;
	uint64_t	rng = isrf_nn_key(cfg->seed, 0x6c67636eULL, 2);
	bool		validate = ds->n_evaluated > 0;
	int32_t		bad = 0;
	int32_t		epoch;
	double		ndcg = 0.0;

	if (validate)
	{
		ISRF_TRY(lgcn_bpr_validate(w, ds, 0, best, out, &ndcg));
		isrf_log(env, "lightgcn: %d users, %d items, %lld train pairs; initial validation NDCG@10 %.4f",
				 w->n_users, w->n_items, (long long) p->n, ndcg);
	}
	for (epoch = 1; epoch <= cfg->max_epochs; epoch++)
	{
		double		sum_loss = 0.0;
		int64_t		steps = 0,
					b0;

		lgcn_bpr_shuffle(p, &rng);
		for (b0 = 0; b0 < p->n; b0 += cfg->batch)
		{
			int32_t		nb = (int32_t) (p->n - b0 < cfg->batch ? p->n - b0 : cfg->batch);
			double		bpr,
						l2;
			int32_t		t;

			ISRF_TRY(isrf_poll(env));
			for (t = 0; t < nb; t++)
			{
				int32_t		k = p->order[b0 + t];
				int32_t		u = p->user[k],
							j;

				/* at least one item is untouched (pairs_build), so this ends */
				do
					j = lgcn_bpr_below(&rng, w->n_items);
				while (lgcn_bpr_in_train(p, u, j));
				triples[3 * t] = u;
				triples[3 * t + 1] = p->item[k];
				triples[3 * t + 2] = j;
			}
			ISRF_TRY(lgcn_bpr_loss_grad(w, triples, nb, &bpr, &l2));
			ISRF_TRY(isrf_adamw_step(opt, w->e0, w->g0, cfg->lr));
			sum_loss += bpr + l2;
			steps++;
		}
		out->epochs = epoch;
		out->last_loss = steps ? sum_loss / steps : 0.0;
		if (epoch == 1)
			out->first_loss = out->last_loss;
		if (!isfinite(out->last_loss))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "lightgcn: the loss diverged at epoch %d (lr %g is too high?)",
							 epoch, (double) cfg->lr);
		if (validate && (epoch % cfg->eval_every == 0 || epoch == cfg->max_epochs))
		{
			double		prev = out->best_val_ndcg10;
			bool		over_time;

			ISRF_TRY(lgcn_bpr_validate(w, ds, epoch, best, out, &ndcg));
			bad = ndcg > prev ? 0 : bad + 1;
			over_time = cfg->max_seconds > 0.0 && isrf_now() - t0 > cfg->max_seconds;
			isrf_log(env, "lightgcn: epoch %d loss %.5f validation NDCG@10 %.4f (best %.4f at epoch %d) %.1f s",
					 epoch, out->last_loss, ndcg, out->best_val_ndcg10, out->best_epoch,
					 isrf_now() - t0);
			if (bad >= cfg->patience || over_time)
				break;
		}
		else if (!validate)
			isrf_log(env, "lightgcn: epoch %d loss %.5f %.1f s",
					 epoch, out->last_loss, isrf_now() - t0);
	}

	/* without a validation split the last embeddings are the answer */
	if (!validate)
	{
		ISRF_TRY(lgcn_bpr_propagate(w));
		ISRF_TRY(w->be->download(w->be, best, w->d_e,
								 sizeof(float) * (size_t) w->n * w->dim));
		out->best_epoch = out->epochs;
	}
	return ISRF_OK;
}

IsrfStatus
isrf_lgcn_bpr_train(IsrfEnv *env, IsrfBackend *be, const IsrfDataset *ds,
					const IsrfLgcnBprConfig *cfg, IsrfLgcnBpr *out)
{
	double		t0 = isrf_now();
	IsrfCsr		graph;
	IsrfDevCsr *s = NULL;
	LgcnBprWork w;
	LgcnBprPairs pairs;
	IsrfAdamW	opt;
	float	   *best = NULL;
	int32_t    *triples = NULL;
	size_t		len;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	memset(&w, 0, sizeof(w));
	memset(&opt, 0, sizeof(opt));
	ISRF_TRY(isrf_lgcn_bpr_config_check(env, cfg));
	if (ds->n_users < 1 || ds->n_items < 2)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn needs at least one user and two items (got %d users, %d items)",
						 ds->n_users, ds->n_items);
	ISRF_TRY(lgcn_bpr_pairs_build(env, ds, &pairs));
	if (pairs.n == 0)
	{
		lgcn_bpr_pairs_free(env, &pairs);
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn: no train interaction has a negative item to contrast with");
	}

	st = isrf_lightgcn_bipartite(env, ds, &graph);
	if (st == ISRF_OK)
	{
		st = be->csr_create(be, &graph, &s);
		isrf_csr_free(env, &graph);
	}
	if (st == ISRF_OK)
		st = lgcn_bpr_work_init(env, be, s, ds->n_users, ds->n_items, cfg->dim,
								cfg->layers, cfg->reg, &w);
	len = (size_t) w.n * cfg->dim;
	if (st == ISRF_OK)
		st = isrf_adamw_init(w.hb, &opt, len, LGCN_BPR_ADAM_BETA1, LGCN_BPR_ADAM_BETA2,
							 LGCN_BPR_ADAM_EPS, 0.0f, NULL);
	if (st == ISRF_OK)
	{
		best = isrf_alloc(env, sizeof(float) * (len + 1));
		triples = isrf_alloc(env, sizeof(int32_t) * 3 * (size_t) cfg->batch);
		out->user_emb = isrf_alloc(env, sizeof(float) * ((size_t) ds->n_users * cfg->dim));
		out->item_emb = isrf_alloc(env, sizeof(float) * ((size_t) ds->n_items * cfg->dim));
		if (!best || !triples || !out->user_emb || !out->item_emb)
			st = ISRF_ERR_NOMEM;
	}
	if (st == ISRF_OK)
	{
		isrf_nn_init_normal(w.e0, len, cfg->init_std, isrf_nn_key(cfg->seed, 0x6c67636eULL, 1));
		st = lgcn_bpr_loop(&w, &opt, &pairs, ds, cfg, best, triples, t0, out);
	}
	if (st == ISRF_OK)
	{
		out->n_users = ds->n_users;
		out->n_items = ds->n_items;
		out->dim = cfg->dim;
		memcpy(out->user_emb, best, sizeof(float) * (size_t) ds->n_users * cfg->dim);
		memcpy(out->item_emb, best + (size_t) ds->n_users * cfg->dim,
			   sizeof(float) * (size_t) ds->n_items * cfg->dim);
		out->seconds = isrf_now() - t0;
		isrf_log(env, "lightgcn: kept epoch %d of %d (validation NDCG@10 %.4f), %.1f s",
				 out->best_epoch, out->epochs, out->best_val_ndcg10, out->seconds);
	}

	isrf_adamw_free(&opt);
	lgcn_bpr_work_free(&w);
	if (s)
		be->csr_destroy(be, s);
	lgcn_bpr_pairs_free(env, &pairs);
	isrf_free(env, best);
	isrf_free(env, triples);
	if (st != ISRF_OK)
		isrf_lgcn_bpr_free(env, out);
	return st;
}

bool
isrf_lgcn_bpr_score(const IsrfLgcnBpr *m, int32_t user, float *scores)
{
	const float *eu;
	int32_t		i;

	if (m->user_emb == NULL || user < 0 || user >= m->n_users)
		return false;
	eu = m->user_emb + (size_t) user * m->dim;
	for (i = 0; i < m->n_items; i++)
	{
		const float *ei = m->item_emb + (size_t) i * m->dim;
		float		s = 0.0f;
		int32_t		k;

		for (k = 0; k < m->dim; k++)
			s += eu[k] * ei[k];
		scores[i] = s;
	}
	return true;
}

IsrfStatus
isrf_lgcn_bpr_evaluate(IsrfEnv *env, IsrfBackend *be, const IsrfLgcnBpr *m,
					   const IsrfDataset *ds, IsrfTarget target, IsrfMetrics *out)
{
	size_t		ub = sizeof(float) * ((size_t) m->n_users * m->dim + 1),
				ib = sizeof(float) * ((size_t) m->n_items * m->dim + 1);
	float	   *d_u = NULL,
			   *d_i = NULL;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	if (m->n_users != ds->n_users || m->n_items != ds->n_items)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "lightgcn model has %d users and %d items but the data set %d and %d",
						 m->n_users, m->n_items, ds->n_users, ds->n_items);
	st = be->mem_alloc(be, ub, (void **) &d_u);
	if (st == ISRF_OK)
		st = be->mem_alloc(be, ib, (void **) &d_i);
	if (st == ISRF_OK)
		st = be->upload(be, d_u, m->user_emb, ub - sizeof(float));
	if (st == ISRF_OK)
		st = be->upload(be, d_i, m->item_emb, ib - sizeof(float));
	if (st == ISRF_OK)
		st = lgcn_bpr_rank(env, be, d_u, d_i, m->dim, ds, target, out);
	if (d_u)
		be->mem_free(be, d_u);
	if (d_i)
		be->mem_free(be, d_i);
	return st;
}

void
isrf_lgcn_bpr_free(IsrfEnv *env, IsrfLgcnBpr *m)
{
	isrf_free(env, m->user_emb);
	isrf_free(env, m->item_emb);
	memset(m, 0, sizeof(*m));
}
