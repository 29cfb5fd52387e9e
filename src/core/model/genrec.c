/*
 * model/genrec.c
 *	  The generative recommender: parameters, forward and backward of the
 *	  whole model, the training loop with early stopping, and inference
 *	  (see genrec.h for the model).
 *
 * Everything runs through one IsrfGenrecSession, which holds the weights in
 * backend memory, the item token table and grown-on-demand batch buffers;
 * training adds gradients and optimizer state to it.  Every tensor of the
 * model lives in backend memory and every step of forward and backward runs
 * on the backend's operations, so the same code trains on the CPU and on a
 * GPU.  What stays on the host: building a batch (which items, positions and
 * targets: small index arrays, uploaded), the group-interest queries (run
 * on a CPU backend, s->hb, against host copies of the users' features), the
 * alignment losses (B x C rows, downloaded, computed by the host reference
 * in nn.c and their gradients uploaded), and the transition prior.
 */
#include "model/genrec.h"

#include "eval/baselines.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "model/semantic_ids.h"
#include "nn/transformer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* batches whose users are sorted by length together */
#define GR_BUCKET 32
/* rows of the dense logits computed at once (bounds the logits buffer) */
#define GR_CHUNK 2048
/* group-interest queries scored against all users at once */
#define GR_QBLOCK 256
/* neighbours of a group-interest query when the data names none */
#define GR_GROUP_K 50

/* Offsets (in floats) of each tensor in the non-transformer block. */
typedef struct GrLayout
{
	size_t		item_emb,
				ad_w1,
				ad_b1,
				ad_w2,
				ad_b2,
				ex_w,
				pu_w,
				pu_b,
				pg_w,
				pg_b;
	size_t		cemb[ISRF_GENREC_MAX_LEVELS];
	size_t		dec_w[ISRF_GENREC_MAX_LEVELS];
	size_t		dec_b[ISRF_GENREC_MAX_LEVELS];
	size_t		total;
} GrLayout;

struct IsrfGenrecSession
{
	IsrfEnv    *env;
	IsrfBackend *be;
	IsrfBackend *hb;			/* host backend: be itself, or an own CPU one */
	bool		own_hb;
	const IsrfGenrecData *d;
	IsrfGenrecConfig cfg;
	int32_t		C,
				ni,
				dm,
				levels;
	int32_t		ks[ISRF_GENREC_MAX_LEVELS];
	float		scale[4];
	const int32_t *codes;		/* [ni x levels], not owned */
	GrLayout	lay;
	bool		train;

	float	   *p;				/* lay.total params */
	float	   *gp;				/* grads (training) */
	IsrfTransformer *tf;

	/* item token table */
	float	   *feat_s;			/* ni x dm scaled features */
	float	   *iexp_s;			/* ni x dm scaled LightGCN item vectors */
	float	   *iexp_h;			/* the same on the host (explicit inputs) */
	float	   *table_h;		/* host copy of table (device backends) */
	bool		table_h_ok;		/* table_h matches table */
	float	   *a1,
			   *g1,
			   *table;			/* ni x C */
	float	   *dtable,
			   *dg1,
			   *da1;			/* training */

	/* batch buffers, grown on demand */
	int32_t		cap_rows;		/* B */
	int32_t		cap_bt;			/* B*T */
	int32_t		cap_p;			/* target positions */
	float	   *x,
			   *dx,
			   *dhid;			/* bt x C */
	int32_t    *pos;			/* bt, host (the transformer uploads it) */
	int32_t    *slot_item,
			   *slot_item_d;	/* bt, host and backend */
	uint8_t    *valid,
			   *valid_d;		/* bt, host and backend */
	float	   *ue,
			   *ue_h;			/* bt x dm explicit-interest inputs */
	float	   *pu,
			   *dpu;			/* bt x C their projections */
	float	   *ug,
			   *ug_h;			/* B x dm group interests (inference) */
	float	   *lu,
			   *lg,
			   *dlg;			/* B x C last explicit / group projections */
	float	   *hl,
			   *dhl;			/* B x C last hidden state and its gradient */
	int32_t    *last_slot,
			   *last_slot_d;	/* B: slot of the row's last token */
	/* the alignment losses, on the host (B x C, B) */
	float	   *hl_h,
			   *lg_h,
			   *lu_h,
			   *dhl_h,
			   *dlg_h,
			   *na,
			   *nb,
			   *nc,
			   *dna,
			   *dnb,
			   *norm_a,
			   *norm_b,
			   *norm_c;
	int32_t    *row_last,		/* B: index of the row's last target */
			   *row_last_d;
	float	   *H,
			   *dH,
			   *z,
			   *dz,
			   *pgP,
			   *dpgP;			/* P x C */
	float	   *ugP,
			   *ugP_h;			/* P x dm group interests of the targets */
	int32_t    *tgt,
			   *tgt_d,
			   *tslot,
			   *tslot_d;		/* P, host and backend */
	int32_t    *cid,
			   *cid_d;			/* levels x P (level-major), host and backend */
	float	   *logits;			/* GR_CHUNK x max(ni, K) */
	float	   *logits_h;		/* host copy of logits (device backends) */
	float	   *hq;				/* GR_CHUNK x C queries uploaded for scoring */
	float	   *row_loss,
			   *row_loss_h;		/* GR_CHUNK per-row losses */
	int32_t		logits_cols;

	/* group interests: neighbours among all users' features */
	int32_t		group_k;
	float	   *ufeat_n;		/* n_users x dm unit user features (host) */
	float	   *ugrp_s;			/* n_users x dm scaled group vectors h_u */
	float	   *qf,
			   *qscore,
			   *qval;			/* GR_QBLOCK x dm, x n_users, x (k + 1) */
	int32_t    *qidx,
			   *qself;
	float	   *gcache;			/* training: the group interest after each
								 * train position of each user */
	int64_t    *gptr;			/* [n_users + 1] rows of gcache */

	/* transition prior (when prior_weight != 0 or while tuning it) */
	float		prior_weight;
	float		prior_weight_direct;
	float		pop_weight_direct;
	float		content_weight_direct;
	float	   *iexp_n;			/* ni x dm unit LightGCN item vectors (host) */
	float	   *profile;		/* dm */
	float	   *content;		/* ni: cosine of the candidates */
	bool		have_prior;
	IsrfBaselines prior;
	IsrfDataset prior_ds;		/* a view of d for baselines.h */
	int32_t    *all_items;		/* 0 .. ni-1 */
	double	   *psc,
			   *ptie;			/* ni */
};

void
isrf_genrec_config_default(IsrfGenrecConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->d_model = 64;
	cfg->n_layers = 2;
	cfg->n_heads = 2;
	cfg->max_len = 50;
	cfg->batch_size = 256;
	cfg->epochs = 30;
	cfg->patience = 5;
	cfg->lr = 1e-3f;
	cfg->dropout = 0.5f;
	cfg->weight_decay = 0.0f;
	cfg->clip = 1.0f;
	cfg->lambda1 = 0.1f;
	cfg->lambda2 = 0.1f;
	cfg->tau = 0.1f;
	cfg->alpha = 1.0f;
	cfg->gen_weight = 0.3f;
	cfg->use_generative = true;
	cfg->use_group = false;
	cfg->use_explicit = false;
	cfg->use_semantic = true;
	cfg->use_prior = true;
	cfg->semid_levels = 3;
	cfg->semid_codebook = 256;
	cfg->eval_users = 0;
	cfg->seed = 1;
}

IsrfStatus
isrf_genrec_config_check(IsrfEnv *env, const IsrfGenrecConfig *c)
{
	if (c->d_model < 2 || c->d_model > 1024)
		return isrf_fail(env, ISRF_ERR_INVALID, "d_model must be in 2..1024 (got %d)", c->d_model);
	if (c->n_heads < 1 || c->d_model % c->n_heads)
		return isrf_fail(env, ISRF_ERR_INVALID, "n_heads must divide d_model (got %d heads for %d)",
						 c->n_heads, c->d_model);
	if (c->n_layers < 1 || c->n_layers > 16)
		return isrf_fail(env, ISRF_ERR_INVALID, "n_layers must be in 1..16 (got %d)", c->n_layers);
	if (c->max_len < 1 || c->max_len > 4096)
		return isrf_fail(env, ISRF_ERR_INVALID, "max_len must be in 1..4096 (got %d)", c->max_len);
	if (c->batch_size < 2 || c->batch_size > 65536)
		return isrf_fail(env, ISRF_ERR_INVALID, "batch_size must be in 2..65536 (got %d)", c->batch_size);
	if (c->epochs < 0 || c->patience < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "epochs must be >= 0 and patience >= 1 (got %d, %d)",
						 c->epochs, c->patience);
	if (!(c->lr > 0.0f && c->lr < 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "lr must be in (0, 1) (got %g)", (double) c->lr);
	if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "dropout must be in [0, 1) (got %g)", (double) c->dropout);
	if (!(c->weight_decay >= 0.0f) || !(c->clip >= 0.0f) || !(c->lambda1 >= 0.0f) ||
		!(c->lambda2 >= 0.0f) || !(c->gen_weight >= 0.0f) || !isfinite(c->alpha))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "weight_decay, clip, lambda1, lambda2 and gen_weight must be >= 0 and alpha finite");
	if (!(c->tau > 0.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "tau must be > 0 (got %g)", (double) c->tau);
	if (c->semid_levels < 1 || c->semid_levels > ISRF_GENREC_MAX_LEVELS - 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "semid_levels must be in 1..%d (got %d)",
						 ISRF_GENREC_MAX_LEVELS - 1, c->semid_levels);
	if (c->semid_codebook < 2 || c->semid_codebook > 65536)
		return isrf_fail(env, ISRF_ERR_INVALID, "semid_codebook must be in 2..65536 (got %d)",
						 c->semid_codebook);
	if (c->eval_users < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "eval_users must be >= 0 (got %d)", c->eval_users);
	return ISRF_OK;
}

/* Lay the non-transformer tensors out one after another. */
static void
gr_layout(GrLayout *l, int32_t C, int32_t ni, int32_t dm, int32_t levels, const int32_t *ks)
{
	size_t		o = 0;
	int32_t		j;

	memset(l, 0, sizeof(*l));
#define GR_PUT(field, n) do { l->field = o; o += (size_t) (n); } while (0)
	GR_PUT(item_emb, (size_t) ni * C);
	GR_PUT(ad_w1, (size_t) C * dm);
	GR_PUT(ad_b1, C);
	GR_PUT(ad_w2, (size_t) C * C);
	GR_PUT(ad_b2, C);
	GR_PUT(ex_w, (size_t) C * dm);
	GR_PUT(pu_w, (size_t) C * dm);
	GR_PUT(pu_b, C);
	GR_PUT(pg_w, (size_t) C * dm);
	GR_PUT(pg_b, C);
	for (j = 0; j < levels; j++)
	{
		GR_PUT(cemb[j], (size_t) ks[j] * C);
		GR_PUT(dec_w[j], (size_t) ks[j] * C);
		GR_PUT(dec_b[j], ks[j]);
	}
#undef GR_PUT
	l->total = o;
}

size_t
isrf_genrec_param_count(const IsrfGenrecConfig *cfg, int32_t n_items, int32_t dm,
						int32_t levels, const int32_t *codebook_sizes)
{
	GrLayout	l;

	gr_layout(&l, cfg->d_model, n_items, dm, levels, codebook_sizes);
	return l.total;
}

/* Transformer configuration of a genrec configuration. */
static void
gr_tf_config(const IsrfGenrecConfig *c, IsrfTfConfig *t)
{
	memset(t, 0, sizeof(*t));
	t->n_layers = c->n_layers;
	t->d_model = c->d_model;
	t->n_heads = c->n_heads;
	t->d_ff = 4 * c->d_model;
	t->max_len = c->max_len;
	t->n_prefix = 0;
	t->dropout = c->dropout;
}

/* Backend allocation that records failure; *p stays NULL on failure. */
static IsrfStatus
gr_mem(IsrfBackend *be, void **p, size_t bytes)
{
	return be->mem_alloc(be, bytes ? bytes : 4, p);
}

static void
gr_mem_free(IsrfBackend *be, void **p)
{
	if (*p)
		be->mem_free(be, *p);
	*p = NULL;
}

/* Host allocation that records failure; *p stays NULL on failure. */
static IsrfStatus
gr_host(IsrfEnv *env, void **p, size_t bytes)
{
	*p = isrf_alloc(env, bytes ? bytes : 4);
	return *p ? ISRF_OK : ISRF_ERR_NOMEM;
}

static void
gr_host_free(IsrfEnv *env, void **p)
{
	isrf_free(env, *p);
	*p = NULL;
}

/* Release the batch buffers. */
static void
gr_free_batch(IsrfGenrecSession *s)
{
	IsrfBackend *be = s->be;
	IsrfEnv    *env = s->env;
	void	  **dev[] = {
		(void **) &s->x, (void **) &s->dx, (void **) &s->dhid, (void **) &s->slot_item_d,
		(void **) &s->valid_d, (void **) &s->ue, (void **) &s->pu, (void **) &s->dpu,
		(void **) &s->ug, (void **) &s->lu, (void **) &s->lg, (void **) &s->dlg,
		(void **) &s->hl, (void **) &s->dhl, (void **) &s->last_slot_d, (void **) &s->row_last_d
	};
	void	  **host[] = {
		(void **) &s->pos, (void **) &s->slot_item, (void **) &s->valid, (void **) &s->ue_h,
		(void **) &s->ug_h, (void **) &s->last_slot, (void **) &s->hl_h, (void **) &s->lg_h,
		(void **) &s->lu_h, (void **) &s->dhl_h, (void **) &s->dlg_h, (void **) &s->na,
		(void **) &s->nb, (void **) &s->nc, (void **) &s->dna, (void **) &s->dnb,
		(void **) &s->norm_a, (void **) &s->norm_b, (void **) &s->norm_c, (void **) &s->row_last
	};
	size_t		i;

	for (i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
		gr_mem_free(be, dev[i]);
	for (i = 0; i < sizeof(host) / sizeof(host[0]); i++)
		gr_host_free(env, host[i]);
	s->cap_rows = s->cap_bt = 0;
}

static void
gr_free_targets(IsrfGenrecSession *s)
{
	gr_mem_free(s->be, (void **) &s->H);
	gr_mem_free(s->be, (void **) &s->dH);
	gr_mem_free(s->be, (void **) &s->z);
	gr_mem_free(s->be, (void **) &s->dz);
	gr_mem_free(s->be, (void **) &s->pgP);
	gr_mem_free(s->be, (void **) &s->dpgP);
	gr_mem_free(s->be, (void **) &s->ugP);
	gr_mem_free(s->be, (void **) &s->tgt_d);
	gr_mem_free(s->be, (void **) &s->tslot_d);
	gr_mem_free(s->be, (void **) &s->cid_d);
	gr_host_free(s->env, (void **) &s->ugP_h);
	gr_host_free(s->env, (void **) &s->tgt);
	gr_host_free(s->env, (void **) &s->tslot);
	gr_host_free(s->env, (void **) &s->cid);
	s->cap_p = 0;
}

/* Make room for B rows of T tokens. */
static IsrfStatus
gr_reserve_batch(IsrfGenrecSession *s, int32_t B, int32_t T)
{
	IsrfBackend *be = s->be;
	IsrfEnv    *env = s->env;
	size_t		C = (size_t) s->C,
				dm = (size_t) s->dm,
				b,
				bt;

	if (B <= s->cap_rows && B * T <= s->cap_bt)
		return ISRF_OK;
	gr_free_batch(s);
	b = (size_t) B;
	bt = (size_t) B * T;
	ISRF_TRY(gr_mem(be, (void **) &s->x, bt * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dx, bt * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dhid, bt * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->pos, bt * 4));
	ISRF_TRY(gr_host(env, (void **) &s->slot_item, bt * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->slot_item_d, bt * 4));
	ISRF_TRY(gr_host(env, (void **) &s->valid, bt));
	ISRF_TRY(gr_mem(be, (void **) &s->valid_d, bt));
	if (s->cfg.use_explicit)
	{
		ISRF_TRY(gr_mem(be, (void **) &s->ue, bt * dm * 4));
		ISRF_TRY(gr_host(env, (void **) &s->ue_h, bt * dm * 4));
		ISRF_TRY(gr_mem(be, (void **) &s->pu, bt * C * 4));
		ISRF_TRY(gr_mem(be, (void **) &s->dpu, bt * C * 4));
		ISRF_TRY(gr_mem(be, (void **) &s->lu, b * C * 4));
	}
	if (s->ufeat_n)
	{
		ISRF_TRY(gr_mem(be, (void **) &s->ug, b * dm * 4));
		ISRF_TRY(gr_host(env, (void **) &s->ug_h, b * dm * 4));
	}
	ISRF_TRY(gr_mem(be, (void **) &s->lg, b * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dlg, b * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->hl, b * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dhl, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->last_slot, b * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->last_slot_d, b * 4));
	ISRF_TRY(gr_host(env, (void **) &s->hl_h, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->lg_h, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->lu_h, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->dhl_h, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->dlg_h, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->na, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->nb, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->nc, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->dna, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->dnb, b * C * 4));
	ISRF_TRY(gr_host(env, (void **) &s->norm_a, b * 4));
	ISRF_TRY(gr_host(env, (void **) &s->norm_b, b * 4));
	ISRF_TRY(gr_host(env, (void **) &s->norm_c, b * 4));
	ISRF_TRY(gr_host(env, (void **) &s->row_last, b * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->row_last_d, b * 4));
	s->cap_rows = B;
	s->cap_bt = B * T;
	return ISRF_OK;
}

/* Make room for P target positions. */
static IsrfStatus
gr_reserve_targets(IsrfGenrecSession *s, int32_t P)
{
	IsrfBackend *be = s->be;
	IsrfEnv    *env = s->env;
	size_t		C = (size_t) s->C,
				p = (size_t) P,
				lv = (size_t) (s->levels > 0 ? s->levels : 1);

	if (P <= s->cap_p)
		return ISRF_OK;
	gr_free_targets(s);
	ISRF_TRY(gr_mem(be, (void **) &s->H, p * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dH, p * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->z, p * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dz, p * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->pgP, p * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->dpgP, p * C * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->ugP, p * (size_t) s->dm * 4));
	ISRF_TRY(gr_host(env, (void **) &s->ugP_h, p * (size_t) s->dm * 4));
	ISRF_TRY(gr_host(env, (void **) &s->tgt, p * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->tgt_d, p * 4));
	ISRF_TRY(gr_host(env, (void **) &s->tslot, p * 4));
	ISRF_TRY(gr_mem(be, (void **) &s->tslot_d, p * 4));
	ISRF_TRY(gr_host(env, (void **) &s->cid, p * 4 * lv));
	ISRF_TRY(gr_mem(be, (void **) &s->cid_d, p * 4 * lv));
	s->cap_p = P;
	return ISRF_OK;
}

void
isrf_genrec_session_close(IsrfGenrecSession *s)
{
	IsrfBackend *be;

	if (s == NULL)
		return;
	be = s->be;
	gr_free_batch(s);
	gr_free_targets(s);
	gr_mem_free(be, (void **) &s->p);
	gr_mem_free(be, (void **) &s->gp);
	gr_mem_free(be, (void **) &s->feat_s);
	gr_mem_free(be, (void **) &s->iexp_s);
	gr_mem_free(be, (void **) &s->a1);
	gr_mem_free(be, (void **) &s->g1);
	gr_mem_free(be, (void **) &s->table);
	gr_mem_free(be, (void **) &s->dtable);
	gr_mem_free(be, (void **) &s->dg1);
	gr_mem_free(be, (void **) &s->da1);
	gr_mem_free(be, (void **) &s->logits);
	gr_mem_free(be, (void **) &s->hq);
	gr_mem_free(be, (void **) &s->row_loss);
	isrf_free(s->env, s->row_loss_h);
	isrf_free(s->env, s->logits_h);
	isrf_free(s->env, s->iexp_h);
	isrf_free(s->env, s->table_h);
	if (s->hb)
	{
		gr_mem_free(s->hb, (void **) &s->qf);
		gr_mem_free(s->hb, (void **) &s->qscore);
		gr_mem_free(s->hb, (void **) &s->qval);
		gr_mem_free(s->hb, (void **) &s->qidx);
		gr_mem_free(s->hb, (void **) &s->qself);
	}
	isrf_free(s->env, s->ufeat_n);
	isrf_free(s->env, s->ugrp_s);
	isrf_free(s->env, s->gcache);
	isrf_free(s->env, s->gptr);
	if (s->have_prior)
		isrf_baselines_free(s->env, &s->prior);
	isrf_free(s->env, s->prior_ds.evaluated);
	isrf_free(s->env, s->prior_ds.item_train_count);
	isrf_free(s->env, s->all_items);
	isrf_free(s->env, s->iexp_n);
	isrf_free(s->env, s->profile);
	isrf_free(s->env, s->content);
	isrf_free(s->env, s->psc);
	isrf_free(s->env, s->ptie);
	isrf_tf_destroy(s->tf);
	if (s->own_hb)
		isrf_backend_close(s->hb);
	isrf_free(s->env, s);
}

/* RMS of the entries of x[n] (1 when zero, so scaling leaves zeros alone). */
static float
gr_rms(const float *x, size_t n)
{
	double		ss = 0.0;
	size_t		i;

	if (x == NULL || n == 0)
		return 1.0f;
	for (i = 0; i < n; i++)
		ss += (double) x[i] * x[i];
	ss = sqrt(ss / (double) n);
	return ss > 1e-12 ? (float) ss : 1.0f;
}

/*
 * Open a session with the given sizes; weights are left zero for the caller
 * to initialise or upload.
 */
static IsrfStatus
gr_session_create(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecConfig *cfg,
				  const IsrfGenrecData *d, int32_t levels, const int32_t *ks,
				  const int32_t *codes, const float *scale, bool train,
				  IsrfGenrecSession **out)
{
	IsrfGenrecSession *s;
	IsrfTfConfig tcfg;
	size_t		ni = (size_t) d->n_items,
				dm = (size_t) d->dm,
				C = (size_t) cfg->d_model,
				i;
	IsrfStatus	st;

	*out = NULL;
	ISRF_TRY(isrf_genrec_config_check(env, cfg));
	if (d->n_items < 1 || d->dm < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "the generative model needs items and features (got %d items, dm %d)",
						 d->n_items, d->dm);
	s = isrf_calloc(env, 1, sizeof(*s));
	if (s == NULL)
		return ISRF_ERR_NOMEM;
	s->env = env;
	s->be = be;
	s->hb = be;
	if (!isrf_nn_backend_host_ok(be))
	{
		if ((st = isrf_cpu_backend_create(env, &s->hb)) != ISRF_OK)
		{
			s->hb = NULL;
			goto fail;
		}
		s->own_hb = true;
	}
	s->d = d;
	s->cfg = *cfg;
	s->C = cfg->d_model;
	s->ni = d->n_items;
	s->dm = d->dm;
	s->levels = levels;
	memcpy(s->ks, ks, sizeof(int32_t) * (size_t) levels);
	memcpy(s->scale, scale, sizeof(s->scale));
	s->codes = codes;
	s->train = train;
	gr_layout(&s->lay, s->C, s->ni, s->dm, levels, ks);
	gr_tf_config(cfg, &tcfg);

#define GR_A(ptr, bytes) do { if ((st = gr_mem(be, (void **) &(ptr), (bytes))) != ISRF_OK) goto fail; } while (0)
	GR_A(s->p, s->lay.total * 4);
	GR_A(s->feat_s, ni * dm * 4);
	GR_A(s->iexp_s, ni * dm * 4);
	GR_A(s->a1, ni * C * 4);
	GR_A(s->g1, ni * C * 4);
	GR_A(s->table, ni * C * 4);
	s->logits_cols = s->ni;
	for (i = 0; i < (size_t) levels; i++)
		if (ks[i] > s->logits_cols)
			s->logits_cols = ks[i];
	GR_A(s->logits, (size_t) GR_CHUNK * s->logits_cols * 4);
	GR_A(s->hq, (size_t) GR_CHUNK * C * 4);
	GR_A(s->row_loss, (size_t) GR_CHUNK * 4);
	if ((st = gr_host(env, (void **) &s->row_loss_h, (size_t) GR_CHUNK * 4)) != ISRF_OK ||
		(!isrf_nn_backend_host_ok(be) &&
		 ((st = gr_host(env, (void **) &s->logits_h, (size_t) GR_CHUNK * s->logits_cols * 4)) != ISRF_OK ||
		  (st = gr_host(env, (void **) &s->table_h, ni * C * 4)) != ISRF_OK)))
		goto fail;
	if (train)
	{
		GR_A(s->gp, s->lay.total * 4);
		GR_A(s->dtable, ni * C * 4);
		GR_A(s->dg1, ni * C * 4);
		GR_A(s->da1, ni * C * 4);
	}
#undef GR_A
#define GR_A2(ptr, bytes) do { if ((st = gr_mem(s->hb, (void **) &(ptr), (bytes))) != ISRF_OK) goto fail; } while (0)
	if ((st = isrf_tf_create(be, &tcfg, isrf_nn_key(cfg->seed, 11, 0), &s->tf)) != ISRF_OK)
		goto fail;
	/* scaled copies of the frozen inputs: host arrays to backend memory */
	{
		float	   *tmp = isrf_alloc(env, ni * dm * 4 + 4);

		if (tmp == NULL)
		{
			st = ISRF_ERR_NOMEM;
			goto fail;
		}
		for (i = 0; i < ni * dm; i++)
			tmp[i] = d->item_feat ? d->item_feat[i] * scale[0] : 0.0f;
		st = be->upload(be, s->feat_s, tmp, ni * dm * 4);
		for (i = 0; st == ISRF_OK && i < ni * dm; i++)
			tmp[i] = d->item_explicit ? d->item_explicit[i] * scale[1] : 0.0f;
		if (st == ISRF_OK)
			st = be->upload(be, s->iexp_s, tmp, ni * dm * 4);
		if (st == ISRF_OK && cfg->use_explicit)
		{
			s->iexp_h = tmp;	/* kept: the explicit inputs are built on the host */
			tmp = NULL;
		}
		isrf_free(env, tmp);
		if (st != ISRF_OK)
			goto fail;
	}
	if (cfg->use_group && d->user_feat && d->user_group && d->n_users > 1)
	{
		size_t		nu = (size_t) d->n_users;
		int32_t		kk;

		s->group_k = d->group_k > 0 ? d->group_k : GR_GROUP_K;
		if (s->group_k > d->n_users - 1)
			s->group_k = d->n_users - 1;
		kk = s->group_k + 1;
		s->ufeat_n = isrf_alloc(env, nu * dm * 4 + 4);
		s->ugrp_s = isrf_alloc(env, nu * dm * 4 + 4);
		if (!s->ufeat_n || !s->ugrp_s)
		{
			st = ISRF_ERR_NOMEM;
			goto fail;
		}
		memcpy(s->ufeat_n, d->user_feat, nu * dm * 4);
		if ((st = s->hb->row_normalize(s->hb, d->n_users, d->dm, s->ufeat_n)) != ISRF_OK)
			goto fail;
		for (i = 0; i < nu * dm; i++)
			s->ugrp_s[i] = d->user_group[i] * scale[3];
		GR_A2(s->qf, (size_t) GR_QBLOCK * dm * 4);
		GR_A2(s->qscore, (size_t) GR_QBLOCK * nu * 4);
		GR_A2(s->qval, (size_t) GR_QBLOCK * kk * 4);
		GR_A2(s->qidx, (size_t) GR_QBLOCK * kk * 4);
		GR_A2(s->qself, (size_t) GR_QBLOCK * 4);
	}
	*out = s;
	return ISRF_OK;
#undef GR_A2

fail:
	isrf_genrec_session_close(s);
	return st;
}

/* Item token table = E + adapter(feat) + alpha * iexp W_e^T. */
static IsrfStatus
gr_table_forward(IsrfGenrecSession *s)
{
	IsrfBackend *be = s->be;
	const GrLayout *l = &s->lay;
	float	   *p = s->p;
	size_t		n = (size_t) s->ni * s->C;

	if (s->cfg.use_semantic)
	{
		ISRF_TRY(isrf_nn_linear_forward(be, s->a1, s->feat_s, p + l->ad_w1, p + l->ad_b1,
										s->ni, s->dm, s->C));
		ISRF_TRY(isrf_nn_gelu_forward(be, s->g1, s->a1, n));
		ISRF_TRY(isrf_nn_linear_forward(be, s->table, s->g1, p + l->ad_w2, p + l->ad_b2,
										s->ni, s->C, s->C));
		ISRF_TRY(be->axpby(be, n, 1.0f, p + l->item_emb, 1.0f, s->table));
	}
	else
		ISRF_TRY(be->copy(be, s->table, p + l->item_emb, n * 4));
	if (s->cfg.use_explicit && s->cfg.alpha != 0.0f)
		ISRF_TRY(be->gemm(be, false, true, s->ni, s->C, s->dm, s->cfg.alpha, s->iexp_s, s->dm,
						  p + l->ex_w, s->dm, 1.0f, s->table, s->C));
	s->table_h_ok = false;		/* copied when a candidate list asks for it */
	return ISRF_OK;
}

/* Gradient of the table into E, the adapter and W_e. */
static IsrfStatus
gr_table_backward(IsrfGenrecSession *s)
{
	IsrfBackend *be = s->be;
	const GrLayout *l = &s->lay;
	float	   *p = s->p,
			   *g = s->gp;
	size_t		n = (size_t) s->ni * s->C;

	ISRF_TRY(isrf_nn_accumulate(be, g + l->item_emb, s->dtable, n));
	if (s->cfg.use_explicit && s->cfg.alpha != 0.0f)
		ISRF_TRY(be->gemm(be, true, false, s->C, s->dm, s->ni, s->cfg.alpha, s->dtable, s->C,
						  s->iexp_s, s->dm, 1.0f, g + l->ex_w, s->dm));
	if (s->cfg.use_semantic)
	{
		ISRF_TRY(be->mem_zero(be, s->dg1, n * 4));
		ISRF_TRY(be->mem_zero(be, s->da1, n * 4));
		ISRF_TRY(isrf_nn_linear_backward(be, s->dg1, g + l->ad_w2, g + l->ad_b2, s->dtable,
										 s->g1, p + l->ad_w2, s->ni, s->C, s->C));
		ISRF_TRY(isrf_nn_gelu_backward(be, s->da1, s->a1, s->dg1, n));
		ISRF_TRY(isrf_nn_linear_backward(be, NULL, g + l->ad_w1, g + l->ad_b1, s->da1,
										 s->feat_s, p + l->ad_w1, s->ni, s->dm, s->C));
	}
	return ISRF_OK;
}

/*
 * Group interests of nq queries: qf[i] (a user's feature at some point of
 * its history, any length) is compared by cosine with every user's feature,
 * qself[i] (-1: none) left out; out[i] = the similarity-weighted mean of the
 * group vectors h_v of the top group_k users of positive similarity (zero
 * when there is none).  qf and qself hold GR_QBLOCK rows.  All of it is host
 * memory and runs on the host backend: the users' features and group
 * vectors are host arrays, and the answer feeds host-built batches.
 */
static IsrfStatus
gr_group_query(IsrfGenrecSession *s, int32_t nq, float *out)
{
	IsrfBackend *be = s->hb;
	size_t		dm = (size_t) s->dm;
	int32_t		nu = s->d->n_users,
				kk = s->group_k + 1,
				i,
				j;

	ISRF_TRY(be->row_normalize(be, nq, s->dm, s->qf));
	ISRF_TRY(be->gemm(be, false, true, nq, nu, s->dm, 1.0f, s->qf, s->dm, s->ufeat_n, s->dm,
					  0.0f, s->qscore, nu));
	ISRF_TRY(be->topk_rows(be, nq, nu, s->qscore, nu, kk, false, 0, s->qidx, s->qval));
	for (i = 0; i < nq; i++)
	{
		float	   *o = out + (size_t) i * dm;
		double		wsum = 0.0;
		int32_t		taken = 0;
		size_t		c;

		memset(o, 0, dm * 4);
		for (j = 0; j < kk && taken < s->group_k; j++)
		{
			int32_t		v = s->qidx[(size_t) i * kk + j];
			float		w = s->qval[(size_t) i * kk + j];
			const float *h;

			if (v < 0 || !(w > 0.0f))
				break;
			if (v == s->qself[i])
				continue;
			h = s->ugrp_s + (size_t) v * dm;
			for (c = 0; c < dm; c++)
				o[c] += w * h[c];
			wsum += w;
			taken++;
		}
		if (wsum > 0.0)
			for (c = 0; c < dm; c++)
				o[c] = (float) (o[c] / wsum);
	}
	return ISRF_OK;
}

/*
 * Group interest after reading hist[0..len) for user `self` (-1: none):
 * the query is the mean feature of those items.  n rows, out[n x dm].
 */
static IsrfStatus
gr_group_rows(IsrfGenrecSession *s, int32_t n, const int32_t *self,
			  const int32_t *const *hist, const int32_t *len, float *out)
{
	const float *feat = s->d->item_feat;
	size_t		dm = (size_t) s->dm;
	int32_t		i,
				j;

	for (i = 0; i < n; i += GR_QBLOCK)
	{
		int32_t		b = n - i < GR_QBLOCK ? n - i : GR_QBLOCK;

		memset(s->qf, 0, (size_t) b * dm * 4);
		for (j = 0; j < b; j++)
		{
			int32_t		q;
			size_t		c;

			s->qself[j] = self[i + j];
			for (q = 0; q < len[i + j]; q++)
				for (c = 0; c < dm; c++)
					s->qf[(size_t) j * dm + c] += feat[(size_t) hist[i + j][q] * dm + c];
		}
		ISRF_TRY(gr_group_query(s, b, out + (size_t) i * dm));
	}
	return ISRF_OK;
}

/*
 * A training row of user u: the last max_len + 1 train items, all but the
 * last as inputs.  Returns the number of inputs; *off gets the position of
 * the first input in the user's history.
 */
static int32_t
gr_train_inputs(const IsrfGenrecSession *s, int32_t u, int32_t *off)
{
	int32_t		nt = s->d->n_train[u],
				w = nt < s->cfg.max_len + 1 ? nt : s->cfg.max_len + 1;

	*off = nt - w;
	return w > 1 ? w - 1 : 0;
}

/*
 * The training cache: the group interest after every input position of
 * every user's training row (the query at position t reads the items 0..t
 * of the user's history, the user itself left out), so that every target
 * is predicted
 * from the group of users it resembled at that moment and not from a
 * neighbourhood chosen with the target already in the user's feature.
 */
static IsrfStatus
gr_group_cache(IsrfGenrecSession *s)
{
	const IsrfGenrecData *d = s->d;
	size_t		dm = (size_t) s->dm;
	int64_t		rows = 0,
				done = 0;
	int32_t		u,
				t,
				off,
				nb = 0;
	float	   *acc;
	IsrfStatus	st = ISRF_OK;

	s->gptr = isrf_alloc(s->env, ((size_t) d->n_users + 1) * 8);
	if (s->gptr == NULL)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < d->n_users; u++)
	{
		s->gptr[u] = rows;
		rows += gr_train_inputs(s, u, &off);
	}
	s->gptr[d->n_users] = rows;
	s->gcache = isrf_alloc(s->env, (size_t) rows * dm * 4 + 4);
	acc = isrf_alloc(s->env, dm * 4);
	if (s->gcache == NULL || acc == NULL)
	{
		isrf_free(s->env, acc);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < d->n_users && st == ISRF_OK; u++)
	{
		const int32_t *seq = d->seq + d->seq_ptr[u];
		int32_t		n_in = gr_train_inputs(s, u, &off),
					end = off + n_in;	/* positions off .. end-1 are inputs */

		memset(acc, 0, dm * 4);
		for (t = 0; t < end; t++)
		{
			size_t		c;

			for (c = 0; c < dm; c++)
				acc[c] += d->item_feat[(size_t) seq[t] * dm + c];
			if (t < off)
				continue;		/* before the row: only in the mean */
			memcpy(s->qf + (size_t) nb * dm, acc, dm * 4);
			s->qself[nb] = u;
			if (++nb == GR_QBLOCK)
			{
				if ((st = isrf_poll(s->env)) != ISRF_OK ||
					(st = gr_group_query(s, nb, s->gcache + (size_t) done * dm)) != ISRF_OK)
					break;
				done += nb;
				nb = 0;
			}
		}
	}
	if (st == ISRF_OK && nb > 0)
		st = gr_group_query(s, nb, s->gcache + (size_t) done * dm);
	isrf_free(s->env, acc);
	return st;
}

/*
 * Explicit-interest inputs of the B x T slots: after reading items 0..j of
 * its row, a slot gets sum of their LightGCN item vectors / sqrt(j + 1) (the
 * propagation a user with those items would get), zero on padding; then
 * pu = W_u ue + b_u.
 */
static IsrfStatus
gr_explicit_inputs(IsrfGenrecSession *s, int32_t B, int32_t T,
				   const int32_t *const *hist, const int32_t *len)
{
	size_t		dm = (size_t) s->dm;
	int32_t		r,
				j;

	memset(s->ue_h, 0, (size_t) B * T * dm * 4);
	for (r = 0; r < B; r++)
	{
		int32_t		t0 = T - len[r];
		float	   *prev = NULL;

		for (j = 0; j < len[r]; j++)
		{
			float	   *e = s->ue_h + ((size_t) r * T + t0 + j) * dm;
			const float *iv = s->iexp_h + (size_t) hist[r][j] * dm;
			float		a = (float) sqrt((double) j / (double) (j + 1)),
						b = (float) (1.0 / sqrt((double) (j + 1)));
			size_t		c;

			/* e_j = (sum_{q<=j} v_q) / sqrt(j + 1), from e_{j-1} */
			for (c = 0; c < dm; c++)
				e[c] = (prev ? a * prev[c] : 0.0f) + b * iv[c];
			prev = e;
		}
	}
	ISRF_TRY(s->be->upload(s->be, s->ue, s->ue_h, (size_t) B * T * dm * 4));
	return isrf_nn_linear_forward(s->be, s->pu, s->ue, s->p + s->lay.pu_w, s->p + s->lay.pu_b,
								  B * T, s->dm, s->C);
}

/*
 * Build the inputs of B rows (items hist[r][0..len[r])), run the
 * transformer.  Rows are left-padded to the longest; the last token of row r
 * sits at column T-1.  *T_out gets T.  hl gets the last hidden state of each
 * row, before the group interest is added (the callers add it).
 */
static IsrfStatus
gr_forward_rows(IsrfGenrecSession *s, int32_t B, const int32_t *const *hist,
				const int32_t *len, bool train, uint64_t seed, int32_t *T_out)
{
	IsrfBackend *be = s->be;
	size_t		C = (size_t) s->C;
	int32_t		T = 1,
				r,
				j;

	for (r = 0; r < B; r++)
	{
		if (len[r] > s->cfg.max_len)
			return isrf_fail(s->env, ISRF_ERR_INTERNAL, "history of %d items exceeds max_len", len[r]);
		if (len[r] > T)
			T = len[r];
	}
	ISRF_TRY(gr_reserve_batch(s, B, T));
	for (r = 0; r < B; r++)
	{
		int32_t		t0 = T - len[r];

		s->last_slot[r] = r * T + T - 1;
		for (j = 0; j < t0; j++)
		{
			s->pos[r * T + j] = ISRF_TF_POS_PAD;
			s->slot_item[r * T + j] = -1;
		}
		for (j = 0; j < len[r]; j++)
		{
			int32_t		it = hist[r][j];
			size_t		slot = (size_t) r * T + t0 + j;

			if (it < 0 || it >= s->ni)
				return isrf_fail(s->env, ISRF_ERR_INVALID, "item index %d out of range", it);
			s->pos[slot] = j;
			s->slot_item[slot] = it;
		}
	}
	isrf_nn_mask_left_padded(s->valid, len, B, T);
	ISRF_TRY(be->upload(be, s->slot_item_d, s->slot_item, (size_t) B * T * 4));
	ISRF_TRY(be->upload(be, s->valid_d, s->valid, (size_t) B * T));
	ISRF_TRY(be->upload(be, s->last_slot_d, s->last_slot, (size_t) B * 4));
	/* token = item row of the table (+ explicit interest), zero on padding */
	ISRF_TRY(be->gather_rows(be, s->x, s->slot_item_d, B * T, s->table, s->C, false));
	if (s->cfg.use_explicit)
	{
		ISRF_TRY(gr_explicit_inputs(s, B, T, hist, len));
		ISRF_TRY(isrf_nn_accumulate(be, s->x, s->pu, (size_t) B * T * C));
		ISRF_TRY(be->mask_rows(be, s->x, s->valid_d, B * T, s->C));
	}
	ISRF_TRY(isrf_tf_add_positions(s->tf, s->x, s->pos, B * T));
	ISRF_TRY(isrf_tf_forward(s->tf, s->x, s->valid, B, T, train, seed));
	ISRF_TRY(be->gather_rows(be, s->hl, s->last_slot_d, B, s->tf->hidden, s->C, false));
	*T_out = T;
	return ISRF_OK;
}

/*
 * z = H + sum_{j<level} cemb_j[cid_j] for P rows: H is backend memory, or
 * (hrows) host rows, staged through z; cid_d holds the codes level-major
 * (level j at cid_d + j * P).
 */
static IsrfStatus
gr_code_input(IsrfGenrecSession *s, int32_t level, int32_t P, const float *const *hrows,
			  const float *H, float *z)
{
	IsrfBackend *be = s->be;
	size_t		C = (size_t) s->C;
	int32_t		i,
				j;

	if (hrows)
	{
		float	   *stage = isrf_alloc(s->env, (size_t) P * C * 4 + 4);
		IsrfStatus	st;

		if (stage == NULL)
			return ISRF_ERR_NOMEM;
		for (i = 0; i < P; i++)
			memcpy(stage + (size_t) i * C, hrows[i], C * 4);
		st = be->upload(be, z, stage, (size_t) P * C * 4);
		isrf_free(s->env, stage);
		ISRF_TRY(st);
	}
	else
		ISRF_TRY(be->copy(be, z, H, (size_t) P * C * 4));
	for (j = 0; j < level; j++)
		ISRF_TRY(be->gather_rows(be, z, s->cid_d + (size_t) j * P, P,
								 s->p + s->lay.cemb[j], s->C, true));
	return ISRF_OK;
}

/* Upload the first levels rows of s->cid (level-major, levels x P) into cid_d. */
static IsrfStatus
gr_upload_codes(IsrfGenrecSession *s, int32_t P, int32_t levels)
{
	if (levels < 1 || P < 1)
		return ISRF_OK;
	return s->be->upload(s->be, s->cid_d, s->cid, (size_t) P * levels * 4);
}


static IsrfStatus gr_train_batch_inner(IsrfGenrecSession *s, int32_t B, const int32_t *users,
										uint64_t seed, const int32_t **hist, int32_t *lens,
										double *loss_out);

/*
 * One training step's loss and gradients over a batch of users (rows).
 * Gradients are accumulated into s->gp, tf->grads (zeroed by the caller).
 */
static IsrfStatus
gr_train_batch(IsrfGenrecSession *s, int32_t B, const int32_t *users, uint64_t seed,
			   double *loss_out)
{
	IsrfEnv    *env = s->env;
	const int32_t **hist;
	int32_t    *lens;
	IsrfStatus	st;

	hist = isrf_alloc(env, sizeof(*hist) * (size_t) B);
	lens = isrf_alloc(env, sizeof(*lens) * (size_t) B);
	if (hist == NULL || lens == NULL)
	{
		isrf_free(env, hist);
		isrf_free(env, lens);
		return ISRF_ERR_NOMEM;
	}
	st = gr_train_batch_inner(s, B, users, seed, hist, lens, loss_out);
	isrf_free(env, hist);
	isrf_free(env, lens);
	return st;
}

/* Sum of the first n per-row losses of the last softmax_ce, in row order. */
static IsrfStatus
gr_loss_sum(IsrfGenrecSession *s, int32_t n, double *total)
{
	int32_t		q;

	ISRF_TRY(s->be->download(s->be, s->row_loss_h, s->row_loss, (size_t) n * 4));
	*total = 0.0;
	for (q = 0; q < n; q++)
		*total += (double) s->row_loss_h[q];
	return ISRF_OK;
}

/*
 * The alignment losses on the host: InfoNCE(h_last, g_u) and
 * InfoNCE(g_u, stop-grad e_u), with g_u / e_u the projected group / explicit
 * interest at each row's last position and h_last its hidden state before
 * the group joins it.  B x C rows come down, their gradients go back up into
 * dhl and dlg (zero when no loss is on).
 */
static IsrfStatus
gr_alignment(IsrfGenrecSession *s, int32_t B, double *loss)
{
	IsrfBackend *be = s->be,
			   *hb = s->hb;
	const IsrfGenrecConfig *cfg = &s->cfg;
	size_t		bc = (size_t) B * s->C;
	float		il;

	if (!s->gcache || !(cfg->lambda1 > 0.0f || cfg->lambda2 > 0.0f))
	{
		ISRF_TRY(be->mem_zero(be, s->dhl, bc * 4));
		return be->mem_zero(be, s->dlg, bc * 4);
	}
	memset(s->dhl_h, 0, bc * 4);
	memset(s->dlg_h, 0, bc * 4);
	ISRF_TRY(be->gather_rows(be, s->lg, s->row_last_d, B, s->pgP, s->C, false));
	ISRF_TRY(be->download(be, s->lg_h, s->lg, bc * 4));
	isrf_nn_l2norm_forward(s->nb, s->norm_b, s->lg_h, B, s->C);
	memset(s->dnb, 0, bc * 4);
	if (cfg->lambda2 > 0.0f)
	{
		ISRF_TRY(be->download(be, s->hl_h, s->hl, bc * 4));
		isrf_nn_l2norm_forward(s->na, s->norm_a, s->hl_h, B, s->C);
		memset(s->dna, 0, bc * 4);
		ISRF_TRY(isrf_nn_infonce(hb, s->na, s->nb, B, s->C, cfg->tau, true, cfg->lambda2,
								 &il, s->dna, s->dnb));
		*loss += cfg->lambda2 * il;
		isrf_nn_l2norm_backward(s->dhl_h, s->dna, s->na, s->norm_a, B, s->C);
	}
	if (cfg->lambda1 > 0.0f && cfg->use_explicit)
	{
		ISRF_TRY(be->gather_rows(be, s->lu, s->last_slot_d, B, s->pu, s->C, false));
		ISRF_TRY(be->download(be, s->lu_h, s->lu, bc * 4));
		isrf_nn_l2norm_forward(s->nc, s->norm_c, s->lu_h, B, s->C);
		ISRF_TRY(isrf_nn_infonce(hb, s->nb, s->nc, B, s->C, cfg->tau, true, cfg->lambda1,
								 &il, s->dnb, NULL));
		*loss += cfg->lambda1 * il;
	}
	isrf_nn_l2norm_backward(s->dlg_h, s->dnb, s->nb, s->norm_b, B, s->C);
	ISRF_TRY(be->upload(be, s->dhl, s->dhl_h, bc * 4));
	return be->upload(be, s->dlg, s->dlg_h, bc * 4);
}

/* The body of gr_train_batch with its row arrays supplied. */
static IsrfStatus
gr_train_batch_inner(IsrfGenrecSession *s, int32_t B, const int32_t *users, uint64_t seed,
					 const int32_t **hist, int32_t *lens, double *loss_out)
{
	IsrfBackend *be = s->be;
	const IsrfGenrecData *d = s->d;
	const GrLayout *l = &s->lay;
	const IsrfGenrecConfig *cfg = &s->cfg;
	size_t		C = (size_t) s->C;
	int32_t		T,
				P = 0,
				r,
				j,
				lev;
	double		loss = 0.0,
				part;

	ISRF_TRY(gr_table_forward(s));
	if (s->ufeat_n && s->gcache == NULL)
		ISRF_TRY(gr_group_cache(s));
	for (r = 0; r < B; r++)
	{
		int32_t		off;

		lens[r] = gr_train_inputs(s, users[r], &off);	/* targets: the next items */
		hist[r] = d->seq + d->seq_ptr[users[r]] + off;
		P += lens[r];
	}
	ISRF_TRY(gr_forward_rows(s, B, hist, lens, true, seed, &T));
	ISRF_TRY(gr_reserve_targets(s, P));

	/* the target positions: slots, next items, group interests (host) */
	P = 0;
	for (r = 0; r < B; r++)
	{
		int32_t		u = users[r];

		for (j = 0; j < lens[r]; j++)
		{
			s->tslot[P] = r * T + (T - lens[r] + j);
			s->tgt[P] = hist[r][j + 1];
			if (s->gcache)
				memcpy(s->ugP_h + (size_t) P * s->dm,
					   s->gcache + (size_t) (s->gptr[u] + j) * s->dm, (size_t) s->dm * 4);
			P++;
		}
		s->row_last[r] = P - 1;
	}
	ISRF_TRY(be->upload(be, s->tslot_d, s->tslot, (size_t) P * 4));
	ISRF_TRY(be->upload(be, s->tgt_d, s->tgt, (size_t) P * 4));
	ISRF_TRY(be->upload(be, s->row_last_d, s->row_last, (size_t) B * 4));
	ISRF_TRY(be->gather_rows(be, s->H, s->tslot_d, P, s->tf->hidden, s->C, false));
	/* the group interest at each position joins the hidden state */
	if (s->gcache)
	{
		ISRF_TRY(be->upload(be, s->ugP, s->ugP_h, (size_t) P * s->dm * 4));
		ISRF_TRY(isrf_nn_linear_forward(be, s->pgP, s->ugP, s->p + l->pg_w, s->p + l->pg_b,
										P, s->dm, s->C));
		ISRF_TRY(isrf_nn_accumulate(be, s->H, s->pgP, (size_t) P * C));
	}
	ISRF_TRY(be->mem_zero(be, s->dH, (size_t) P * C * 4));
	ISRF_TRY(be->mem_zero(be, s->dtable, (size_t) s->ni * C * 4));

	/* dense head, tied to the token table, in chunks of rows */
	for (j = 0; j < P; j += GR_CHUNK)
	{
		int32_t		n = P - j < GR_CHUNK ? P - j : GR_CHUNK;

		ISRF_TRY(be->gemm(be, false, true, n, s->ni, s->C, 1.0f, s->H + (size_t) j * C, s->C,
						  s->table, s->C, 0.0f, s->logits, s->ni));
		ISRF_TRY(be->softmax_ce(be, s->logits, s->ni, s->tgt_d + j, n, s->ni, 1.0f / (float) P,
								s->row_loss, s->logits));
		ISRF_TRY(gr_loss_sum(s, n, &part));
		loss += part / P;
		ISRF_TRY(be->gemm(be, false, false, n, s->C, s->ni, 1.0f, s->logits, s->ni,
						  s->table, s->C, 1.0f, s->dH + (size_t) j * C, s->C));
		ISRF_TRY(be->gemm(be, true, false, s->ni, s->C, n, 1.0f, s->logits, s->ni,
						  s->H + (size_t) j * C, s->C, 1.0f, s->dtable, s->C));
	}

	/* generative head: teacher-forced code decoder */
	if (cfg->use_generative && s->levels > 0 && cfg->gen_weight > 0.0f)
	{
		for (j = 0; j < P; j++)
			for (lev = 0; lev < s->levels; lev++)
				s->cid[(size_t) lev * P + j] = s->codes[(size_t) s->tgt[j] * s->levels + lev];
		ISRF_TRY(gr_upload_codes(s, P, s->levels));
		for (lev = 0; lev < s->levels; lev++)
		{
			int32_t		K = s->ks[lev],
						i;
			const int32_t *tg = s->cid_d + (size_t) lev * P;

			ISRF_TRY(gr_code_input(s, lev, P, NULL, s->H, s->z));
			ISRF_TRY(be->mem_zero(be, s->dz, (size_t) P * C * 4));
			for (i = 0; i < P; i += GR_CHUNK)
			{
				int32_t		n = P - i < GR_CHUNK ? P - i : GR_CHUNK;
				float		gs = cfg->gen_weight * (float) n / (float) P;

				ISRF_TRY(isrf_nn_linear_forward(be, s->logits, s->z + (size_t) i * C,
												s->p + l->dec_w[lev], s->p + l->dec_b[lev],
												n, s->C, K));
				/* the mean over the chunk's n rows, weighted n / P */
				ISRF_TRY(be->softmax_ce(be, s->logits, K, tg + i, n, K, gs / (float) n,
										s->row_loss, s->logits));
				ISRF_TRY(gr_loss_sum(s, n, &part));
				loss += cfg->gen_weight * (float) (part / n) * (double) n / P;
				ISRF_TRY(isrf_nn_linear_backward(be, s->dz + (size_t) i * C, s->gp + l->dec_w[lev],
												 s->gp + l->dec_b[lev], s->logits,
												 s->z + (size_t) i * C, s->p + l->dec_w[lev],
												 n, s->C, K));
			}
			ISRF_TRY(isrf_nn_accumulate(be, s->dH, s->dz, (size_t) P * C));
			for (i = 0; i < lev; i++)
				ISRF_TRY(be->scatter_add_rows(be, s->gp + l->cemb[i], s->cid_d + (size_t) i * P, P,
											  s->dz, s->C));
		}
	}

	ISRF_TRY(gr_alignment(s, B, &loss));

	/* the group projection: its share of dH plus the alignment's */
	if (s->gcache)
	{
		ISRF_TRY(be->copy(be, s->dpgP, s->dH, (size_t) P * C * 4));
		ISRF_TRY(be->scatter_add_rows(be, s->dpgP, s->row_last_d, B, s->dlg, s->C));
		ISRF_TRY(isrf_nn_linear_backward(be, NULL, s->gp + l->pg_w, s->gp + l->pg_b, s->dpgP,
										 s->ugP, s->p + l->pg_w, P, s->dm, s->C));
	}

	/* back through the transformer */
	ISRF_TRY(be->mem_zero(be, s->dhid, (size_t) B * T * C * 4));
	ISRF_TRY(be->scatter_add_rows(be, s->dhid, s->tslot_d, P, s->dH, s->C));
	ISRF_TRY(be->scatter_add_rows(be, s->dhid, s->last_slot_d, B, s->dhl, s->C));
	ISRF_TRY(isrf_tf_backward(s->tf, s->dhid, s->dx));
	ISRF_TRY(isrf_tf_add_positions_backward(s->tf, s->dx, s->pos, B * T));
	ISRF_TRY(isrf_nn_embedding_backward(be, s->dtable, s->slot_item_d, B * T, s->dx, s->C));
	if (cfg->use_explicit)
	{
		/* the explicit input was added on item slots only */
		ISRF_TRY(be->copy(be, s->dpu, s->dx, (size_t) B * T * C * 4));
		ISRF_TRY(be->mask_rows(be, s->dpu, s->valid_d, B * T, s->C));
		ISRF_TRY(isrf_nn_linear_backward(be, NULL, s->gp + l->pu_w, s->gp + l->pu_b, s->dpu,
										 s->ue, s->p + l->pu_w, B * T, s->dm, s->C));
	}
	ISRF_TRY(gr_table_backward(s));
	*loss_out = loss;
	return ISRF_OK;
}

/* Fresh weights: small normals, biases zero (see genrec.h for the parts). */
static IsrfStatus
gr_init_params(IsrfGenrecSession *s)
{
	const GrLayout *l = &s->lay;
	float	   *p = isrf_alloc(s->env, l->total * 4 + 4);
	uint64_t	seed = s->cfg.seed;
	size_t		C = (size_t) s->C,
				dm = (size_t) s->dm;
	int32_t		j;
	IsrfStatus	st;

	if (p == NULL)
		return ISRF_ERR_NOMEM;
	memset(p, 0, l->total * 4);
	isrf_nn_init_normal(p + l->item_emb, (size_t) s->ni * C, 0.05f, isrf_nn_key(seed, 1, 0));
	isrf_nn_init_normal(p + l->ad_w1, C * dm, 1.0f / sqrtf((float) dm), isrf_nn_key(seed, 1, 1));
	isrf_nn_init_normal(p + l->ad_w2, C * C, 0.02f, isrf_nn_key(seed, 1, 2));
	isrf_nn_init_normal(p + l->ex_w, C * dm, 0.01f, isrf_nn_key(seed, 1, 3));
	isrf_nn_init_normal(p + l->pu_w, C * dm, 0.02f, isrf_nn_key(seed, 1, 4));
	isrf_nn_init_normal(p + l->pg_w, C * dm, 0.02f, isrf_nn_key(seed, 1, 5));
	for (j = 0; j < s->levels; j++)
	{
		isrf_nn_init_normal(p + l->cemb[j], (size_t) s->ks[j] * C, 0.02f, isrf_nn_key(seed, 2, (uint64_t) j));
		isrf_nn_init_normal(p + l->dec_w[j], (size_t) s->ks[j] * C, 0.02f, isrf_nn_key(seed, 3, (uint64_t) j));
	}
	st = s->be->upload(s->be, s->p, p, l->total * 4);
	isrf_free(s->env, p);
	return st;
}

/* Weight decay applies to the matrices, not embeddings or biases. */
static void
gr_decay_mask(const IsrfGenrecSession *s, uint8_t *mask)
{
	const GrLayout *l = &s->lay;
	size_t		C = (size_t) s->C,
				dm = (size_t) s->dm;
	int32_t		j;

	memset(mask, 0, l->total);
	memset(mask + l->ad_w1, 1, C * dm);
	memset(mask + l->ad_w2, 1, C * C);
	memset(mask + l->ex_w, 1, C * dm);
	memset(mask + l->pu_w, 1, C * dm);
	memset(mask + l->pg_w, 1, C * dm);
	for (j = 0; j < s->levels; j++)
		memset(mask + l->dec_w[j], 1, (size_t) s->ks[j] * C);
}

/* Fit the transition prior on the train split of the session's data. */
static IsrfStatus
gr_prior_fit(IsrfGenrecSession *s)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	IsrfDataset *ds = &s->prior_ds;
	int32_t		u,
				p;

	if (s->have_prior)
		return ISRF_OK;
	memset(ds, 0, sizeof(*ds));
	ds->n_users = d->n_users;
	ds->n_items = d->n_items;
	ds->seq_ptr = (int32_t *) d->seq_ptr;
	ds->seq = (int32_t *) d->seq;
	ds->n_train = (int32_t *) d->n_train;
	ds->evaluated = isrf_calloc(env, (size_t) d->n_users + 1, sizeof(bool));
	ds->item_train_count = isrf_calloc(env, (size_t) d->n_items + 1, 4);
	s->all_items = isrf_alloc(env, (size_t) d->n_items * 4 + 4);
	s->psc = isrf_alloc(env, (size_t) d->n_items * 8 + 8);
	s->ptie = isrf_alloc(env, (size_t) d->n_items * 8 + 8);
	if (!ds->evaluated || !ds->item_train_count || !s->all_items || !s->psc || !s->ptie)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < d->n_users; u++)
	{
		int32_t		len = d->seq_ptr[u + 1] - d->seq_ptr[u];

		ds->evaluated[u] = len >= 3 && d->n_train[u] == len - 2;
		ds->n_evaluated += ds->evaluated[u];
		ds->n_interactions += len;
		ds->n_train_interactions += d->n_train[u];
		for (p = 0; p < d->n_train[u]; p++)
			ds->item_train_count[d->seq[d->seq_ptr[u] + p]]++;
	}
	for (p = 0; p < d->n_items; p++)
		s->all_items[p] = p;
	/* unit LightGCN item vectors for the content term */
	s->iexp_n = isrf_alloc(env, (size_t) d->n_items * d->dm * 4 + 4);
	s->profile = isrf_alloc(env, (size_t) d->dm * 4 + 4);
	s->content = isrf_alloc(env, (size_t) d->n_items * 4 + 4);
	if (!s->iexp_n || !s->profile || !s->content)
		return ISRF_ERR_NOMEM;
	for (p = 0; p < d->n_items; p++)
	{
		const float *x = d->item_explicit ? d->item_explicit + (size_t) p * d->dm : NULL;
		float	   *y = s->iexp_n + (size_t) p * d->dm;
		double		ss = 0.0;
		int32_t		j;

		for (j = 0; j < d->dm; j++)
			ss += x ? (double) x[j] * x[j] : 0.0;
		for (j = 0; j < d->dm; j++)
			y[j] = ss > 0.0 ? (float) (x[j] / sqrt(ss)) : 0.0f;
	}
	ISRF_TRY(isrf_baselines_fit(env, ds, &s->prior));
	s->have_prior = true;
	return ISRF_OK;
}

/*
 * content[i] = cosine between the mean unit LightGCN vector of the input
 * items and candidate cand[i] (0 for -1 or a zero profile).
 */
static void
gr_content(IsrfGenrecSession *s, const int32_t *hist, int32_t len, int32_t n,
		   const int32_t *cand, float *content)
{
	int32_t		dm = s->dm,
				i,
				j;
	double		ss = 0.0;

	memset(s->profile, 0, (size_t) dm * 4);
	for (i = 0; i < len; i++)
		for (j = 0; j < dm; j++)
			s->profile[j] += s->iexp_n[(size_t) hist[i] * dm + j];
	for (j = 0; j < dm; j++)
		ss += (double) s->profile[j] * s->profile[j];
	for (j = 0; j < dm; j++)
		s->profile[j] = ss > 0.0 ? (float) (s->profile[j] / sqrt(ss)) : 0.0f;
	for (i = 0; i < n; i++)
	{
		const float *e;
		float		acc = 0.0f;

		if (cand[i] < 0 || cand[i] >= s->ni)
		{
			content[i] = 0.0f;
			continue;
		}
		e = s->iexp_n + (size_t) cand[i] * dm;
		for (j = 0; j < dm; j++)
			acc += s->profile[j] * e[j];
		content[i] = acc;
	}
}

/* psc[j] = prior score of every item for an input history. */
static IsrfStatus
gr_prior_all(IsrfGenrecSession *s, const int32_t *hist, int32_t len)
{
	return isrf_baselines_score(s->env, &s->prior, ISRF_BASELINE_MARKOV_KNN, hist, len,
								s->all_items, s->ni, s->psc, s->ptie);
}

IsrfStatus
isrf_genrec_prior_add(IsrfGenrecSession *s, const int32_t *hist, int32_t len,
					  int32_t n, const int32_t *cand, bool direct, float *scores)
{
	float		beta = direct ? s->prior_weight_direct : s->prior_weight,
				gamma = direct ? s->pop_weight_direct : 0.0f,
				delta = direct ? s->content_weight_direct : 0.0f;
	int32_t		i;

	if (beta == 0.0f && gamma == 0.0f && delta == 0.0f)
		return ISRF_OK;
	ISRF_TRY(gr_prior_fit(s));
	if (delta != 0.0f)
	{
		gr_content(s, hist, len, cand ? n : s->ni, cand ? cand : s->all_items, s->content);
		for (i = 0; i < (cand ? n : s->ni); i++)
			scores[i] += delta * s->content[i];
	}
	if (gamma != 0.0f && cand != NULL)
		for (i = 0; i < n; i++)
			if (cand[i] >= 0 && cand[i] < s->ni)
				scores[i] += gamma * log1pf((float) s->prior.pop[cand[i]]);
	if (gamma != 0.0f && cand == NULL)
		for (i = 0; i < s->ni; i++)
			scores[i] += gamma * log1pf((float) s->prior.pop[i]);
	if (beta == 0.0f)
		return ISRF_OK;
	ISRF_TRY(gr_prior_all(s, hist, len));
	if (cand == NULL)
	{
		for (i = 0; i < s->ni; i++)
			scores[i] += beta * (float) s->psc[i];
	}
	else
		for (i = 0; i < n; i++)
			if (cand[i] >= 0 && cand[i] < s->ni)
				scores[i] += beta * (float) s->psc[cand[i]];
	return ISRF_OK;
}

int32_t
isrf_genrec_width(const IsrfGenrecSession *s)
{
	return s->C;
}

/* Encode up to cap_rows users at a time into h (host). */
static IsrfStatus
gr_encode(IsrfGenrecSession *s, int32_t n, const int32_t *users, const int32_t *const *hist,
		  const int32_t *hist_len, float *h)
{
	const int32_t *rows[256];
	int32_t		lens[256];
	int32_t		i,
				j,
				T;

	for (i = 0; i < n; i += 256)
	{
		int32_t		b = n - i < 256 ? n - i : 256;

		for (j = 0; j < b; j++)
		{
			int32_t		L = hist_len[i + j];

			if (L < 0)
				return isrf_fail(s->env, ISRF_ERR_INVALID, "negative history length %d", L);
			lens[j] = L < s->cfg.max_len ? L : s->cfg.max_len;
			rows[j] = hist[i + j] + (L - lens[j]);
		}
		ISRF_TRY(gr_forward_rows(s, b, rows, lens, false, 0, &T));
		if (s->ufeat_n)
		{
			/* the group interest after the whole given history */
			ISRF_TRY(gr_group_rows(s, b, users + i, hist + i, hist_len + i, s->ug_h));
			ISRF_TRY(s->be->upload(s->be, s->ug, s->ug_h, (size_t) b * s->dm * 4));
			ISRF_TRY(isrf_nn_linear_forward(s->be, s->lg, s->ug, s->p + s->lay.pg_w,
											s->p + s->lay.pg_b, b, s->dm, s->C));
			ISRF_TRY(isrf_nn_accumulate(s->be, s->hl, s->lg, (size_t) b * s->C));
		}
		ISRF_TRY(s->be->download(s->be, h + (size_t) i * s->C, s->hl, (size_t) b * s->C * 4));
	}
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_encode(IsrfGenrecSession *s, int32_t n, const int32_t *users,
				   const int32_t *const *hist, const int32_t *hist_len, float *h)
{
	int32_t		i;

	for (i = 0; i < n; i++)
		if (users[i] >= s->d->n_users)
			return isrf_fail(s->env, ISRF_ERR_INVALID, "user index %d out of range", users[i]);
	return gr_encode(s, n, users, hist, hist_len, h);
}

/*
 * Dense scores of b <= GR_CHUNK host rows h against every item, into host
 * memory: *out points at s->logits on a host backend, else at its
 * downloaded copy.
 */
static IsrfStatus
gr_dense_chunk(IsrfGenrecSession *s, int32_t b, const float *h, float **out)
{
	IsrfBackend *be = s->be;
	size_t		bytes = (size_t) b * s->ni * 4;

	ISRF_TRY(be->upload(be, s->hq, h, (size_t) b * s->C * 4));
	ISRF_TRY(be->gemm(be, false, true, b, s->ni, s->C, 1.0f, s->hq, s->C,
					  s->table, s->C, 0.0f, s->logits, s->ni));
	if (s->logits_h == NULL)
	{
		*out = s->logits;
		return ISRF_OK;
	}
	*out = s->logits_h;
	return be->download(be, s->logits_h, s->logits, bytes);
}

IsrfStatus
isrf_genrec_dense_scores(IsrfGenrecSession *s, int32_t n, const float *h, float *scores)
{
	int32_t		i;

	for (i = 0; i < n; i += GR_CHUNK)
	{
		int32_t		b = n - i < GR_CHUNK ? n - i : GR_CHUNK;
		float	   *sc;

		ISRF_TRY(gr_dense_chunk(s, b, h + (size_t) i * s->C, &sc));
		memcpy(scores + (size_t) i * s->ni, sc, (size_t) b * s->ni * 4);
	}
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_dense_candidates(IsrfGenrecSession *s, const float *h, int32_t n_cand,
							 const int32_t *cand, float *scores)
{
	int32_t		i,
				c;

	/* a few dot products: on the host, from a copy of the table */
	if (s->table_h && !s->table_h_ok)
	{
		ISRF_TRY(s->be->download(s->be, s->table_h, s->table, (size_t) s->ni * s->C * 4));
		s->table_h_ok = true;
	}
	for (i = 0; i < n_cand; i++)
	{
		const float *e;
		double		acc = 0.0;

		if (cand[i] < 0 || cand[i] >= s->ni)
		{
			scores[i] = NAN;
			continue;
		}
		e = (s->table_h ? s->table_h : s->table) + (size_t) cand[i] * s->C;
		for (c = 0; c < s->C; c++)
			acc += (double) h[c] * e[c];
		scores[i] = (float) acc;
	}
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_code_logp(IsrfGenrecSession *s, int32_t level, int32_t n,
					  const float *const *h_rows, const int32_t *prefix, float *logp)
{
	int32_t		K,
				i,
				j;

	if (level < 0 || level >= s->levels)
		return isrf_fail(s->env, ISRF_ERR_INVALID, "code level %d out of range 0..%d", level, s->levels - 1);
	K = s->ks[level];
	if (n > GR_CHUNK)
	{
		for (i = 0; i < n; i += GR_CHUNK)
			ISRF_TRY(isrf_genrec_code_logp(s, level, n - i < GR_CHUNK ? n - i : GR_CHUNK,
										   h_rows + i, prefix + (size_t) i * level,
										   logp + (size_t) i * K));
		return ISRF_OK;
	}
	ISRF_TRY(gr_reserve_targets(s, n));
	for (j = 0; j < level; j++)
		for (i = 0; i < n; i++)
			s->cid[(size_t) j * n + i] = prefix[(size_t) i * level + j];
	ISRF_TRY(gr_upload_codes(s, n, level));
	ISRF_TRY(gr_code_input(s, level, n, h_rows, NULL, s->z));
	ISRF_TRY(isrf_nn_linear_forward(s->be, s->logits, s->z, s->p + s->lay.dec_w[level],
									s->p + s->lay.dec_b[level], n, s->C, K));
	ISRF_TRY(s->be->download(s->be, logp, s->logits, (size_t) n * K * 4));
	for (i = 0; i < n; i++)
	{
		float	   *row = logp + (size_t) i * K;
		float		mx = row[0];
		double		sum = 0.0;
		float		lse;

		for (j = 1; j < K; j++)
			if (row[j] > mx)
				mx = row[j];
		for (j = 0; j < K; j++)
			sum += exp((double) (row[j] - mx));
		lse = mx + (float) log(sum);
		for (j = 0; j < K; j++)
			row[j] -= lse;
	}
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_rank_targets(IsrfGenrecSession *s, int32_t n, const int32_t *users,
						 const int32_t *n_input, const int32_t *target, int32_t *ranks)
{
	const IsrfGenrecData *d = s->d;
	const int32_t *hist[256];
	float	   *h,
			   *scores;
	int32_t		i,
				j;
	IsrfStatus	st = ISRF_OK;

	h = isrf_alloc(s->env, (size_t) 256 * s->C * 4);
	if (h == NULL)
		return ISRF_ERR_NOMEM;
	for (i = 0; i < n && st == ISRF_OK; i += 256)
	{
		int32_t		b = n - i < 256 ? n - i : 256;

		if ((st = isrf_poll(s->env)) != ISRF_OK)
			break;
		for (j = 0; j < b; j++)
			hist[j] = d->seq + d->seq_ptr[users[i + j]];
		if ((st = gr_encode(s, b, users + i, hist, n_input + i, h)) != ISRF_OK)
			break;
		if ((st = gr_dense_chunk(s, b, h, &scores)) != ISRF_OK)
			break;
		for (j = 0; j < b; j++)
		{
			float	   *sc = scores + (size_t) j * s->ni;
			int32_t		t = target[i + j],
						q,
						r = 0;
			float		st_;

			if (s->prior_weight != 0.0f &&
				(st = isrf_genrec_prior_add(s, hist[j], n_input[i + j], s->ni, NULL, false, sc)) != ISRF_OK)
				break;
			for (q = 0; q < n_input[i + j]; q++)
				sc[hist[j][q]] = NAN;
			st_ = sc[t];
			if (isnan(st_))
			{
				ranks[i + j] = -1;
				continue;
			}
			for (q = 0; q < s->ni; q++)
				if (sc[q] > st_ || (sc[q] == st_ && q < t))
					r++;
			ranks[i + j] = r;
		}
	}
	isrf_free(s->env, h);
	return st;
}

void
isrf_genrec_free(IsrfEnv *env, IsrfGenrec *g)
{
	isrf_free(env, g->codes);
	isrf_free(env, g->params);
	isrf_free(env, g->tf_params);
	memset(g, 0, sizeof(*g));
}

IsrfStatus
isrf_genrec_copy(IsrfEnv *env, const IsrfGenrec *src, IsrfGenrec *dst)
{
	size_t		nc = (size_t) src->n_items * src->levels;

	*dst = *src;
	dst->codes = isrf_alloc(env, nc * 4 + 4);
	dst->params = isrf_alloc(env, src->n_params * 4 + 4);
	dst->tf_params = isrf_alloc(env, src->n_tf_params * 4 + 4);
	if (!dst->codes || !dst->params || !dst->tf_params)
	{
		isrf_free(env, dst->codes);
		isrf_free(env, dst->params);
		isrf_free(env, dst->tf_params);
		memset(dst, 0, sizeof(*dst));
		return ISRF_ERR_NOMEM;
	}
	if (nc)
		memcpy(dst->codes, src->codes, nc * 4);
	memcpy(dst->params, src->params, src->n_params * 4);
	memcpy(dst->tf_params, src->tf_params, src->n_tf_params * 4);
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_trie(IsrfEnv *env, const IsrfGenrec *g, IsrfTrie *out)
{
	if (g->levels < 1 || g->codes == NULL)
		return isrf_fail(env, ISRF_ERR_INVALID, "the model has no generative head (use_generative was off)");
	return isrf_trie_build(env, g->codes, g->n_items, g->levels, g->codebook_sizes, out);
}

IsrfStatus
isrf_genrec_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfGenrec *g,
						 const IsrfGenrecData *d, IsrfGenrecSession **out)
{
	IsrfGenrecSession *s;
	IsrfStatus	st;

	*out = NULL;
	if (g->params == NULL || g->n_items != d->n_items || g->dm != d->dm)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "the generative model does not fit its data (%d items, dm %d vs %d, %d)",
						 g->n_items, g->dm, d->n_items, d->dm);
	ISRF_TRY(gr_session_create(env, be, &g->cfg, d, g->levels, g->codebook_sizes, g->codes,
							   g->scale, false, &s));
	s->prior_weight = g->prior_weight;
	s->prior_weight_direct = g->prior_weight_direct;
	s->pop_weight_direct = g->pop_weight_direct;
	s->content_weight_direct = g->content_weight_direct;
	if (s->lay.total != g->n_params || s->tf->n_params != g->n_tf_params)
	{
		isrf_genrec_session_close(s);
		return isrf_fail(env, ISRF_ERR_CORRUPT, "the generative model's weights have the wrong size");
	}
	if ((st = be->upload(be, s->p, g->params, g->n_params * 4)) != ISRF_OK ||
		(st = be->upload(be, s->tf->params, g->tf_params, g->n_tf_params * 4)) != ISRF_OK ||
		(st = gr_table_forward(s)) != ISRF_OK)
	{
		isrf_genrec_session_close(s);
		return st;
	}
	*out = s;
	return ISRF_OK;
}

/* Copy the session's weights into out's host arrays. */
static IsrfStatus
gr_weights_out(IsrfGenrecSession *s, IsrfGenrec *out)
{
	ISRF_TRY(s->be->download(s->be, out->params, s->p, s->lay.total * 4));
	return s->be->download(s->be, out->tf_params, s->tf->params, s->tf->n_params * 4);
}

/* Stable sort of users[0..n) by key[user] (merge sort through tmp). */
static void
gr_sort_by_length(int32_t *users, int32_t n, const int32_t *key, int32_t *tmp)
{
	int32_t		w;

	for (w = 1; w < n; w *= 2)
	{
		int32_t		lo;

		for (lo = 0; lo < n; lo += 2 * w)
		{
			int32_t		mid = lo + w < n ? lo + w : n,
						hi = lo + 2 * w < n ? lo + 2 * w : n,
						a = lo,
						b = mid,
						k = lo;

			while (a < mid && b < hi)
				tmp[k++] = key[users[b]] < key[users[a]] ? users[b++] : users[a++];
			while (a < mid)
				tmp[k++] = users[a++];
			while (b < hi)
				tmp[k++] = users[b++];
		}
		memcpy(users, tmp, (size_t) n * 4);
	}
}

/*
 * Order the validation users by input length so the encoder batches pad
 * little (metrics are sums, so order does not matter).  scratch has n ints.
 */
static void
gr_sort_val(int32_t *vu, int32_t *vin, int32_t *vt, int32_t n, int32_t *tmp, int32_t *scratch)
{
	int32_t		i;

	/* sort positions by their input length, then permute the three arrays */
	for (i = 0; i < n; i++)
		scratch[i] = i;
	gr_sort_by_length(scratch, n, vin, tmp);
	for (i = 0; i < n; i++)
		tmp[i] = vu[scratch[i]];
	memcpy(vu, tmp, (size_t) n * 4);
	for (i = 0; i < n; i++)
		tmp[i] = vt[scratch[i]];
	memcpy(vt, tmp, (size_t) n * 4);
	for (i = 0; i < n; i++)
		tmp[i] = vin[scratch[i]];
	memcpy(vin, tmp, (size_t) n * 4);
}

/* Validation users (evaluated: history >= 3, train = all but the last two). */
static int32_t
gr_val_users(const IsrfGenrecData *d, const IsrfGenrecConfig *cfg, int32_t *users,
			 int32_t *n_input, int32_t *target)
{
	int32_t		u,
				n = 0,
				total = 0,
				stride;

	for (u = 0; u < d->n_users; u++)
	{
		int32_t		len = d->seq_ptr[u + 1] - d->seq_ptr[u];

		if (len >= 3 && d->n_train[u] == len - 2)
			total++;
	}
	stride = (cfg->eval_users > 0 && total > cfg->eval_users) ? (total + cfg->eval_users - 1) / cfg->eval_users : 1;
	total = 0;
	for (u = 0; u < d->n_users; u++)
	{
		int32_t		len = d->seq_ptr[u + 1] - d->seq_ptr[u];

		if (len >= 3 && d->n_train[u] == len - 2)
		{
			if (total++ % stride)
				continue;
			users[n] = u;
			n_input[n] = d->n_train[u];
			target[n] = d->seq[d->seq_ptr[u] + d->n_train[u]];
			n++;
		}
	}
	return n;
}

/* The training loop proper; s is a training session with its weights set. */
static IsrfStatus
gr_fit(IsrfGenrecSession *s, IsrfGenrecEpochHook hook, void *hook_arg, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	IsrfBackend *be = s->be;
	const IsrfGenrecData *d = s->d;
	const IsrfGenrecConfig *cfg = &s->cfg;
	IsrfAdamW	o1,
				o2;
	uint8_t    *mask1 = NULL,
			   *mask2 = NULL;
	int32_t    *order = NULL,
			   *tmp = NULL,
			   *border = NULL,
			   *vu = NULL,
			   *vin = NULL,
			   *vt = NULL,
			   *vr = NULL;
	int32_t		n_tr = 0,
				n_val,
				n_batches,
				bidx,
				u,
				epoch,
				bad = 0;
	int64_t		step = 0,
				spe,
				total;
	double		best = -1.0,
				t_start = isrf_now();
	IsrfStatus	st = ISRF_OK;

	memset(&o1, 0, sizeof(o1));
	memset(&o2, 0, sizeof(o2));
	order = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	tmp = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	border = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vu = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vin = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vt = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vr = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	mask1 = isrf_alloc(env, s->lay.total + 1);
	mask2 = isrf_alloc(env, s->tf->n_params + 1);
	if (!order || !tmp || !border || !vu || !vin || !vt || !vr || !mask1 || !mask2)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (u = 0; u < d->n_users; u++)
		if (d->n_train[u] >= 2)
			order[n_tr++] = u;
	if (n_tr == 0)
	{
		st = isrf_fail(env, ISRF_ERR_INVALID, "no user has two train interactions to learn from");
		goto done;
	}
	n_val = gr_val_users(d, cfg, vu, vin, vt);
	gr_sort_val(vu, vin, vt, n_val, tmp, vr);
	gr_decay_mask(s, mask1);
	isrf_tf_decay_mask(s->tf, mask2);
	if ((st = isrf_adamw_init(be, &o1, s->lay.total, 0.9f, 0.98f, 1e-8f, cfg->weight_decay, mask1)) != ISRF_OK ||
		(st = isrf_adamw_init(be, &o2, s->tf->n_params, 0.9f, 0.98f, 1e-8f, cfg->weight_decay, mask2)) != ISRF_OK)
		goto done;
	spe = (n_tr + cfg->batch_size - 1) / cfg->batch_size;
	n_batches = (int32_t) spe;
	total = spe * cfg->epochs;

	/* best weights so far live in out */
	if ((st = gr_weights_out(s, out)) != ISRF_OK)
		goto done;
	for (epoch = 1; epoch <= cfg->epochs; epoch++)
	{
		double		t0 = isrf_now(),
					ep_loss = 0.0,
					hr = 0.0,
					nd = 0.0;
		int32_t		i,
					nb = 0;

		/* a seeded shuffle of the training users */
		for (i = n_tr - 1; i > 0; i--)
		{
			int32_t		j = (int32_t) (isrf_nn_hash64(isrf_nn_key(cfg->seed, 100 + (uint64_t) epoch, (uint64_t) i)) % (uint64_t) (i + 1)),
						t = order[i];

			order[i] = order[j];
			order[j] = t;
		}

		/*
		 * Bucket by length: sort runs of GR_BUCKET batches by train length so
		 * a batch pads little, then visit the batches in a shuffled order.
		 */
		for (i = 0; i < n_tr; i += GR_BUCKET * cfg->batch_size)
		{
			int32_t		n = n_tr - i < GR_BUCKET * cfg->batch_size ? n_tr - i : GR_BUCKET * cfg->batch_size;

			gr_sort_by_length(order + i, n, d->n_train, tmp);
		}
		for (i = 0; i < n_batches; i++)
			border[i] = i;
		for (i = n_batches - 1; i > 0; i--)
		{
			int32_t		j = (int32_t) (isrf_nn_hash64(isrf_nn_key(cfg->seed, 300 + (uint64_t) epoch, (uint64_t) i)) % (uint64_t) (i + 1)),
						t = border[i];

			border[i] = border[j];
			border[j] = t;
		}
		for (bidx = 0; bidx < n_batches; bidx++)
		{
			int32_t		first = border[bidx] * cfg->batch_size;
			int32_t		b = n_tr - first < cfg->batch_size ? n_tr - first : cfg->batch_size;
			double		bl;
			float	   *garr[2];
			size_t		gsz[2];
			float		norm,
						lr;

			if ((st = isrf_poll(env)) != ISRF_OK)
				goto done;
			if ((st = be->mem_zero(be, s->gp, s->lay.total * 4)) != ISRF_OK ||
				(st = isrf_tf_zero_grad(s->tf)) != ISRF_OK)
				goto done;
			if ((st = gr_train_batch(s, b, order + first, isrf_nn_key(cfg->seed, 200 + (uint64_t) epoch, (uint64_t) bidx), &bl)) != ISRF_OK)
				goto done;
			garr[0] = s->gp;
			garr[1] = s->tf->grads;
			gsz[0] = s->lay.total;
			gsz[1] = s->tf->n_params;
			if ((st = isrf_grad_clip(be, garr, gsz, 2, cfg->clip, &norm)) != ISRF_OK)
				goto done;
			step++;
			if (!isfinite(norm))
				continue;		/* skip a step that blew up rather than poison the weights */
			lr = isrf_lr_schedule(cfg->lr, step, spe < 100 ? spe : 100, total, 0.1f);
			if ((st = isrf_adamw_step(&o1, s->p, s->gp, lr)) != ISRF_OK ||
				(st = isrf_adamw_step(&o2, s->tf->params, s->tf->grads, lr)) != ISRF_OK)
				goto done;
			ep_loss += bl;
			nb++;
		}
		/* validation: full ranking with the dense head */
		if ((st = gr_table_forward(s)) != ISRF_OK ||
			(st = isrf_genrec_rank_targets(s, n_val, vu, vin, vt, vr)) != ISRF_OK)
			goto done;
		for (i = 0; i < n_val; i++)
		{
			if (vr[i] >= 0 && vr[i] < 10)
			{
				hr += 1.0;
				nd += 1.0 / log2((double) vr[i] + 2.0);
			}
		}
		if (n_val > 0)
		{
			hr /= n_val;
			nd /= n_val;
		}
		out->epochs_run = epoch;
		if (hook)
			hook(hook_arg, epoch, nb ? ep_loss / nb : 0.0, hr, nd, isrf_now() - t0);
		isrf_log(env, "isrf: epoch %d loss %.4f val HR@10 %.4f NDCG@10 %.4f (%.1f s)",
				 epoch, nb ? ep_loss / nb : 0.0, hr, nd, isrf_now() - t0);
		if (nd > best)
		{
			best = nd;
			bad = 0;
			out->best_epoch = epoch;
			out->best_val_hr10 = hr;
			out->best_val_ndcg10 = nd;
			if ((st = gr_weights_out(s, out)) != ISRF_OK)
				goto done;
		}
		else if (++bad >= cfg->patience)
			break;
	}
	out->t_train = isrf_now() - t_start;

done:
	isrf_adamw_free(&o1);
	isrf_adamw_free(&o2);
	isrf_free(env, order);
	isrf_free(env, tmp);
	isrf_free(env, border);
	isrf_free(env, vu);
	isrf_free(env, vin);
	isrf_free(env, vt);
	isrf_free(env, vr);
	isrf_free(env, mask1);
	isrf_free(env, mask2);
	return st;
}

/* the grid beta is chosen from (0 keeps the dense head alone) */
static const float gr_prior_grid[] = {0.0f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f, 128.0f, 256.0f};
#define GR_N_PRIOR ((int) (sizeof(gr_prior_grid) / sizeof(gr_prior_grid[0])))
/* the grid of gamma, the popularity weight of candidate lists */
static const float gr_pop_grid[] = {0.0f, 0.5f, 1.0f, 2.0f, 4.0f};
#define GR_N_POP ((int) (sizeof(gr_pop_grid) / sizeof(gr_pop_grid[0])))
/* the grid of delta, the weight of the explicit-interest cosine */
static const float gr_content_grid[] = {0.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f};
#define GR_N_CONTENT ((int) (sizeof(gr_content_grid) / sizeof(gr_content_grid[0])))

/*
 * beta for candidate lists: the validation direct task (the validation
 * target and 99 untouched items, as metrics.h draws them for the test).
 */
static IsrfStatus
gr_tune_prior_direct(IsrfGenrecSession *s, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	IsrfDirectTask dt;
	const int32_t *hist[256];
	int32_t		lens[256];
	float	   *h = NULL,
			   *cs = NULL;
	double	   *sc = NULL,
				nd[GR_N_PRIOR][GR_N_POP][GR_N_CONTENT],
				hr[GR_N_PRIOR][GR_N_POP][GR_N_CONTENT];
	int32_t		u,
				longest = 0,
				n_neg,
				i,
				j,
				b,
				gi,
				c,
				ci,
				best = 0,
				bestg = 0,
				bestc = 0;
	float		ct[512];
	IsrfStatus	st;

	memset(&dt, 0, sizeof(dt));
	memset(nd, 0, sizeof(nd));
	memset(hr, 0, sizeof(hr));
	for (u = 0; u < d->n_users; u++)
		if (d->seq_ptr[u + 1] - d->seq_ptr[u] > longest)
			longest = d->seq_ptr[u + 1] - d->seq_ptr[u];
	n_neg = s->ni - longest < ISRF_DIRECT_NEGATIVES ? s->ni - longest : ISRF_DIRECT_NEGATIVES;
	if (n_neg < 1 || s->prior_ds.n_evaluated == 0)
		return ISRF_OK;
	ISRF_TRY(isrf_direct_task_build(env, &s->prior_ds, ISRF_TARGET_VALIDATION, ISRF_DIRECT_SEED,
									n_neg, 0, &dt));
	if (dt.n_cand > (int32_t) (sizeof(ct) / sizeof(ct[0])))
	{
		isrf_direct_task_free(env, &dt);
		return isrf_fail(env, ISRF_ERR_INTERNAL, "too many direct candidates (%d)", dt.n_cand);
	}
	h = isrf_alloc(env, (size_t) 256 * s->C * 4);
	cs = isrf_alloc(env, (size_t) dt.n_cand * 4);
	sc = isrf_alloc(env, (size_t) dt.n_cand * 8);
	if (!h || !cs || !sc)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < dt.n_users; i += 256)
	{
		int32_t		nb = dt.n_users - i < 256 ? dt.n_users - i : 256;

		if ((st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
		{
			hist[j] = d->seq + d->seq_ptr[dt.user[i + j]];
			lens[j] = d->n_train[dt.user[i + j]];
		}
		if ((st = gr_encode(s, nb, dt.user + i, hist, lens, h)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
		{
			const int32_t *cand = dt.cand + (size_t) (i + j) * dt.n_cand;

			if ((st = isrf_genrec_dense_candidates(s, h + (size_t) j * s->C, dt.n_cand, cand, cs)) != ISRF_OK ||
				(st = gr_prior_all(s, hist[j], lens[j])) != ISRF_OK)
				goto done;
			gr_content(s, hist[j], lens[j], dt.n_cand, cand, ct);
			for (b = 0; b < GR_N_PRIOR; b++)
				for (gi = 0; gi < GR_N_POP; gi++)
					for (ci = 0; ci < GR_N_CONTENT; ci++)
					{
						int32_t		r;

						for (c = 0; c < dt.n_cand; c++)
							sc[c] = cs[c] + gr_prior_grid[b] * (float) s->psc[cand[c]] +
								gr_pop_grid[gi] * log1pf((float) s->prior.pop[cand[c]]) +
								gr_content_grid[ci] * ct[c];
						r = isrf_direct_rank(sc, NULL, dt.n_cand, dt.target_pos[i + j], false);
						if (r >= 0 && r < 10)
						{
							hr[b][gi][ci] += 1.0;
							nd[b][gi][ci] += 1.0 / log2((double) r + 2.0);
						}
					}
		}
	}
	for (b = 0; b < GR_N_PRIOR; b++)
		for (gi = 0; gi < GR_N_POP; gi++)
			for (ci = 0; ci < GR_N_CONTENT; ci++)
				if (nd[b][gi][ci] > nd[best][bestg][bestc])
				{
					best = b;
					bestg = gi;
					bestc = ci;
				}
	out->prior_weight_direct = gr_prior_grid[best];
	out->pop_weight_direct = gr_pop_grid[bestg];
	out->content_weight_direct = gr_content_grid[bestc];
	s->prior_weight_direct = out->prior_weight_direct;
	s->pop_weight_direct = out->pop_weight_direct;
	s->content_weight_direct = out->content_weight_direct;
	if (dt.n_users > 0)
		isrf_log(env, "isrf: transition prior (direct task): beta %g gamma %g delta %g, validation HR@10 %.4f NDCG@10 %.4f "
				 "(dense head alone %.4f / %.4f)", (double) out->prior_weight_direct,
				 (double) out->pop_weight_direct, (double) out->content_weight_direct,
				 hr[best][bestg][bestc] / dt.n_users, nd[best][bestg][bestc] / dt.n_users,
				 hr[0][0][0] / dt.n_users, nd[0][0][0] / dt.n_users);
	st = ISRF_OK;

done:
	isrf_direct_task_free(env, &dt);
	isrf_free(env, h);
	isrf_free(env, cs);
	isrf_free(env, sc);
	return st;
}

/*
 * Choose beta on the validation targets with the trained weights (already
 * in the session): the grid value with the best NDCG@10 (ties: smaller).
 */
static IsrfStatus
gr_tune_prior(IsrfGenrecSession *s, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	int32_t    *vu = NULL,
			   *vin = NULL,
			   *vt = NULL;
	const int32_t *hist[256];
	float	   *h = NULL;
	double		nd[GR_N_PRIOR],
				hr[GR_N_PRIOR];
	int32_t		n,
				i,
				j,
				b,
				best = 0;
	IsrfStatus	st = ISRF_OK;

	memset(nd, 0, sizeof(nd));
	memset(hr, 0, sizeof(hr));
	vu = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vin = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vt = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	h = isrf_alloc(env, (size_t) 256 * s->C * 4);
	if (!vu || !vin || !vt || !h)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if ((st = gr_prior_fit(s)) != ISRF_OK || (st = gr_table_forward(s)) != ISRF_OK)
		goto done;
	n = gr_val_users(d, &s->cfg, vu, vin, vt);
	for (i = 0; i < n; i += 256)
	{
		int32_t		nb = n - i < 256 ? n - i : 256;

		if ((st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
			hist[j] = d->seq + d->seq_ptr[vu[i + j]];
		if ((st = gr_encode(s, nb, vu + i, hist, vin + i, h)) != ISRF_OK ||
			(st = s->be->gemm(s->be, false, true, nb, s->ni, s->C, 1.0f, h, s->C, s->table, s->C,
							  0.0f, s->logits, s->ni)) != ISRF_OK)
			goto done;
		for (j = 0; j < nb; j++)
		{
			float	   *sc = s->logits + (size_t) j * s->ni;
			int32_t		t = vt[i + j],
						q;

			if ((st = gr_prior_all(s, hist[j], vin[i + j])) != ISRF_OK)
				goto done;
			for (q = 0; q < vin[i + j]; q++)
				sc[hist[j][q]] = NAN;
			for (b = 0; b < GR_N_PRIOR; b++)
			{
				float		beta = gr_prior_grid[b],
							st_ = sc[t] + beta * (float) s->psc[t];
				int32_t		r = 0;

				for (q = 0; q < s->ni && r < 10; q++)
				{
					float		v = sc[q] + beta * (float) s->psc[q];

					if (v > st_ || (v == st_ && q < t))
						r++;
				}
				if (r < 10)
				{
					hr[b] += 1.0;
					nd[b] += 1.0 / log2((double) r + 2.0);
				}
			}
		}
	}
	if ((st = gr_tune_prior_direct(s, out)) != ISRF_OK)
		goto done;
	for (b = 1; b < GR_N_PRIOR; b++)
		if (nd[b] > nd[best])
			best = b;
	out->prior_weight = gr_prior_grid[best];
	s->prior_weight = out->prior_weight;
	if (n > 0)
	{
		isrf_log(env, "isrf: transition prior: beta %g, validation HR@10 %.4f NDCG@10 %.4f "
				 "(dense head alone %.4f / %.4f)", (double) out->prior_weight,
				 hr[best] / n, nd[best] / n, hr[0] / n, nd[0] / n);
		out->best_val_hr10 = hr[best] / n;
		out->best_val_ndcg10 = nd[best] / n;
	}

done:
	isrf_free(env, vu);
	isrf_free(env, vin);
	isrf_free(env, vt);
	isrf_free(env, h);
	return st;
}

IsrfStatus
isrf_genrec_train(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
				  const IsrfGenrecConfig *cfg, IsrfGenrecEpochHook hook, void *hook_arg,
				  IsrfGenrec *out)
{
	IsrfGenrecSession *s = NULL;
	IsrfSemIds	ids;
	IsrfStatus	st;
	size_t		ni = (size_t) d->n_items,
				dm = (size_t) d->dm;

	memset(out, 0, sizeof(*out));
	memset(&ids, 0, sizeof(ids));
	ISRF_TRY(isrf_genrec_config_check(env, cfg));
	if (d->n_items < 1 || d->n_users < 1 || d->dm < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "the generative model needs users, items and features (got %d, %d, dm %d)",
						 d->n_users, d->n_items, d->dm);
	out->cfg = *cfg;
	out->n_items = d->n_items;
	out->dm = d->dm;
	out->scale[0] = 1.0f / gr_rms(d->item_feat, ni * dm);
	out->scale[1] = 1.0f / gr_rms(d->item_explicit, ni * dm);
	out->scale[2] = 1.0f / gr_rms(d->user_explicit, (size_t) d->n_users * dm);
	out->scale[3] = 1.0f / gr_rms(d->user_group, (size_t) d->n_users * dm);
	if (cfg->use_generative)
	{
		IsrfSemIdConfig sc;
		int32_t		j;

		isrf_semid_config_default(&sc);
		sc.levels = cfg->semid_levels;
		sc.codebook_size = cfg->semid_codebook;
		sc.kmeans.seed = cfg->seed;
		if ((st = isrf_semid_build(env, be, d->item_feat, d->n_items, d->dm, &sc, &ids)) != ISRF_OK)
			goto fail;
		out->levels = ids.levels + 1;
		for (j = 0; j < out->levels; j++)
			out->codebook_sizes[j] = ids.codebook_sizes[j];
		out->codes = isrf_alloc(env, ni * (size_t) out->levels * 4 + 4);
		if (out->codes == NULL)
		{
			st = ISRF_ERR_NOMEM;
			goto fail;
		}
		memcpy(out->codes, ids.codes, ni * (size_t) out->levels * 4);
		isrf_semid_free(env, &ids);
	}
	if ((st = gr_session_create(env, be, cfg, d, out->levels, out->codebook_sizes, out->codes,
								out->scale, true, &s)) != ISRF_OK)
		goto fail;
	out->n_params = s->lay.total;
	out->n_tf_params = s->tf->n_params;
	out->params = isrf_alloc(env, out->n_params * 4 + 4);
	out->tf_params = isrf_alloc(env, out->n_tf_params * 4 + 4);
	if (!out->params || !out->tf_params)
	{
		st = ISRF_ERR_NOMEM;
		goto fail;
	}
	if ((st = gr_init_params(s)) != ISRF_OK)
		goto fail;
	if (cfg->epochs > 0)
		st = gr_fit(s, hook, hook_arg, out);
	if (st == ISRF_OK && cfg->epochs > 0 && cfg->use_prior)
	{
		/* the kept (best) weights back into the session, then beta */
		if ((st = be->upload(be, s->p, out->params, s->lay.total * 4)) == ISRF_OK &&
			(st = be->upload(be, s->tf->params, out->tf_params, s->tf->n_params * 4)) == ISRF_OK)
			st = gr_tune_prior(s, out);
	}
	else if (st == ISRF_OK)
		st = gr_weights_out(s, out);
	if (st != ISRF_OK)
		goto fail;
	isrf_genrec_session_close(s);
	return ISRF_OK;

fail:
	isrf_semid_free(env, &ids);
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, out);
	return st;
}

IsrfStatus
isrf_genrec_test_session(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
						 const IsrfGenrec *g, IsrfGenrecSession **out)
{
	IsrfGenrecSession *s;
	IsrfStatus	st;

	ISRF_TRY(gr_session_create(env, be, &g->cfg, d, g->levels, g->codebook_sizes, g->codes,
							   g->scale, true, &s));
	if (s->lay.total != g->n_params || s->tf->n_params != g->n_tf_params ||
		(st = be->upload(be, s->p, g->params, g->n_params * 4)) != ISRF_OK ||
		(st = be->upload(be, s->tf->params, g->tf_params, g->n_tf_params * 4)) != ISRF_OK)
	{
		isrf_genrec_session_close(s);
		return isrf_fail(env, ISRF_ERR_INVALID, "weights do not fit the test session");
	}
	*out = s;
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_test_loss(IsrfGenrecSession *s, int32_t n_users, const int32_t *users,
					  uint64_t seed, double *loss)
{
	ISRF_TRY(s->be->mem_zero(s->be, s->gp, s->lay.total * 4));
	ISRF_TRY(isrf_tf_zero_grad(s->tf));
	return gr_train_batch(s, n_users, users, seed, loss);
}

bool
isrf_genrec_test_tensor(IsrfGenrecSession *s, const char *name, float **w, float **g, size_t *n)
{
	const GrLayout *l = &s->lay;
	size_t		C = (size_t) s->C,
				dm = (size_t) s->dm,
				off;
	int32_t		j;

	if (strcmp(name, "tf") == 0)
	{
		*w = s->tf->params;
		*g = s->tf->grads;
		*n = s->tf->n_params;
		return true;
	}
#define GR_T(nm, field, len) \
	if (strcmp(name, nm) == 0) { off = l->field; *n = (len); goto found; }
	GR_T("item_emb", item_emb, (size_t) s->ni * C);
	GR_T("ad_w1", ad_w1, C * dm);
	GR_T("ad_b1", ad_b1, C);
	GR_T("ad_w2", ad_w2, C * C);
	GR_T("ad_b2", ad_b2, C);
	GR_T("ex_w", ex_w, C * dm);
	GR_T("pu_w", pu_w, C * dm);
	GR_T("pu_b", pu_b, C);
	GR_T("pg_w", pg_w, C * dm);
	GR_T("pg_b", pg_b, C);
#undef GR_T
	for (j = 0; j < s->levels; j++)
	{
		char		nm[32];

		snprintf(nm, sizeof(nm), "cemb%d", j);
		if (strcmp(name, nm) == 0)
		{
			off = l->cemb[j];
			*n = (size_t) s->ks[j] * C;
			goto found;
		}
		snprintf(nm, sizeof(nm), "dec_w%d", j);
		if (strcmp(name, nm) == 0)
		{
			off = l->dec_w[j];
			*n = (size_t) s->ks[j] * C;
			goto found;
		}
		snprintf(nm, sizeof(nm), "dec_b%d", j);
		if (strcmp(name, nm) == 0)
		{
			off = l->dec_b[j];
			*n = (size_t) s->ks[j];
			goto found;
		}
	}
	return false;

found:
	*w = s->p + off;
	*g = s->gp + off;
	return true;
}
