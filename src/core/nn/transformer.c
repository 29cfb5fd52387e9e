/*
 * nn/transformer.c
 *	  Forward and backward of the causal pre-LayerNorm transformer (see
 *	  transformer.h for the parameter layout), built from the layers of nn.c.
 */
#include "nn/transformer.h"

#include <math.h>
#include <string.h>

/* Cached activations, per layer arrays of [BT, ...] blocks. */
struct IsrfTfActs
{
	size_t		cap_bt;			/* rows the buffers hold */
	int			cap_t;			/* T the attention buffers hold */
	size_t		cap_att;		/* floats per layer of att */
	uint8_t    *valid;			/* [BT] host copy of the mask (1 = real) */
	uint8_t    *dvalid;			/* [BT] the same in backend memory */
	int32_t    *pos_ids;		/* backend memory: rows of the position table */
	size_t		pos_cap;		/* entries pos_ids holds (kept across growth) */
	bool		has_mask;
	bool		train;
	uint64_t	seed;

	float	   *resid;			/* [L+1][BT,C]: stream entering layer l; [0] = dropped input */
	float	   *ln1;			/* [L][BT,C] */
	float	   *ln1_mean;		/* [L][BT] */
	float	   *ln1_rstd;		/* [L][BT] */
	float	   *qkv;			/* [L][BT,3C] */
	float	   *atty;			/* [L][BT,C] */
	float	   *att;			/* [L][B,H,T,T] */
	float	   *res2;			/* [L][BT,C] */
	float	   *ln2;			/* [L][BT,C] */
	float	   *ln2_mean;		/* [L][BT] */
	float	   *ln2_rstd;		/* [L][BT] */
	float	   *fch;			/* [L][BT,F] before GELU */
	float	   *fchg;			/* [L][BT,F] after GELU */
	float	   *hidden;			/* [BT,C] final LayerNorm output */
	float	   *lnf_mean;		/* [BT] */
	float	   *lnf_rstd;		/* [BT] */

	/* scratch, shared by all layers */
	float	   *tmp;			/* [BT,C] */
	float	   *dres;			/* [BT,C] */
	float	   *dln;			/* [BT,C] */
	float	   *datty;			/* [BT,C] */
	float	   *dqkv;			/* [BT,3C] */
	float	   *dfchg;			/* [BT,F] */
	float	   *dfch;			/* [BT,F] */
	float	   *dscore;			/* [B,H,T,T] */
};

IsrfStatus
isrf_tf_config_check(IsrfEnv *env, const IsrfTfConfig *cfg)
{
	if (cfg->n_layers < 1 || cfg->n_layers > 64)
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer n_layers must be between 1 and 64 (got %d)", cfg->n_layers);
	if (cfg->d_model < 1 || cfg->d_model > 8192)
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer d_model must be between 1 and 8192 (got %d)", cfg->d_model);
	if (cfg->n_heads < 1 || cfg->d_model % cfg->n_heads != 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer n_heads (%d) must be positive and divide d_model (%d)", cfg->n_heads, cfg->d_model);
	if (cfg->d_ff < 1 || cfg->d_ff > 65536)
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer d_ff must be between 1 and 65536 (got %d)", cfg->d_ff);
	if (cfg->max_len < 1 || cfg->max_len > 65536)
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer max_len must be between 1 and 65536 (got %d)", cfg->max_len);
	if (cfg->n_prefix < 0 || cfg->n_prefix > 64)
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer n_prefix must be between 0 and 64 (got %d)", cfg->n_prefix);
	if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "transformer dropout must be in [0, 1) (got %g)", (double) cfg->dropout);
	return ISRF_OK;
}

/* Floats in one layer's block. */
static size_t
tf_layer_size(const IsrfTfConfig *cfg)
{
	size_t		c = cfg->d_model,
				f = cfg->d_ff;

	return 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (f * c + f) + (c * f + c);
}

size_t
isrf_tf_param_count(const IsrfTfConfig *cfg)
{
	size_t		c = cfg->d_model;

	return (size_t) cfg->max_len * c + (size_t) cfg->n_prefix * c +
		(size_t) cfg->n_layers * tf_layer_size(cfg) + 2 * c;
}

/* Point the views of v at the block base, following the documented layout. */
static void
tf_bind_view(const IsrfTfConfig *cfg, float *base, IsrfTfView *v)
{
	size_t		c = cfg->d_model,
				f = cfg->d_ff;
	float	   *p = base;
	int			l;

	v->wpe = p;
	p += (size_t) cfg->max_len * c;
	v->wpre = p;
	p += (size_t) cfg->n_prefix * c;
	for (l = 0; l < cfg->n_layers; l++)
	{
		IsrfTfLayer *ly = &v->layers[l];

		ly->ln1_w = p;
		p += c;
		ly->ln1_b = p;
		p += c;
		ly->qkv_w = p;
		p += 3 * c * c;
		ly->qkv_b = p;
		p += 3 * c;
		ly->proj_w = p;
		p += c * c;
		ly->proj_b = p;
		p += c;
		ly->ln2_w = p;
		p += c;
		ly->ln2_b = p;
		p += c;
		ly->fc_w = p;
		p += f * c;
		ly->fc_b = p;
		p += f;
		ly->fc2_w = p;
		p += c * f;
		ly->fc2_b = p;
		p += c;
	}
	v->lnf_w = p;
	p += c;
	v->lnf_b = p;
}

/* Fill a host image of the parameter block with the initial values. */
static void
tf_init_host(const IsrfTfConfig *cfg, float *host, uint64_t seed)
{
	IsrfTfLayer layers[64];
	IsrfTfView	v;
	size_t		c = cfg->d_model,
				f = cfg->d_ff;
	float		std = 0.02f;
	float		proj_std = 0.02f / sqrtf(2.0f * cfg->n_layers);
	size_t		j;
	int			l;

	memset(host, 0, sizeof(float) * isrf_tf_param_count(cfg));
	v.layers = layers;
	tf_bind_view(cfg, host, &v);
	/* every tensor has its own stream, so the layout could change freely */
	isrf_nn_init_normal(v.wpe, (size_t) cfg->max_len * c, std, isrf_nn_key(seed, 0, 0));
	isrf_nn_init_normal(v.wpre, (size_t) cfg->n_prefix * c, std, isrf_nn_key(seed, 0, 1));
	for (l = 0; l < cfg->n_layers; l++)
	{
		IsrfTfLayer *ly = &layers[l];

		for (j = 0; j < c; j++)
			ly->ln1_w[j] = ly->ln2_w[j] = 1.0f;
		isrf_nn_init_normal(ly->qkv_w, 3 * c * c, std, isrf_nn_key(seed, l + 1, 0));
		isrf_nn_init_normal(ly->proj_w, c * c, proj_std, isrf_nn_key(seed, l + 1, 1));
		isrf_nn_init_normal(ly->fc_w, f * c, std, isrf_nn_key(seed, l + 1, 2));
		isrf_nn_init_normal(ly->fc2_w, c * f, proj_std, isrf_nn_key(seed, l + 1, 3));
	}
	for (j = 0; j < c; j++)
		v.lnf_w[j] = 1.0f;
}

IsrfStatus
isrf_tf_create(IsrfBackend *be, const IsrfTfConfig *cfg, uint64_t seed,
			   IsrfTransformer **out)
{
	IsrfEnv    *env = be->env;
	IsrfTransformer *tf;
	float	   *host;
	IsrfStatus	st;

	*out = NULL;
	ISRF_TRY(isrf_tf_config_check(env, cfg));
	tf = isrf_calloc(env, 1, sizeof(IsrfTransformer));
	if (tf == NULL)
		return ISRF_ERR_NOMEM;
	tf->cfg = *cfg;
	tf->be = be;
	tf->n_params = isrf_tf_param_count(cfg);
	tf->p.layers = isrf_calloc(env, cfg->n_layers, sizeof(IsrfTfLayer));
	tf->g.layers = isrf_calloc(env, cfg->n_layers, sizeof(IsrfTfLayer));
	tf->acts = isrf_calloc(env, 1, sizeof(IsrfTfActs));
	if (tf->p.layers == NULL || tf->g.layers == NULL || tf->acts == NULL)
	{
		isrf_tf_destroy(tf);
		return ISRF_ERR_NOMEM;
	}
	st = be->mem_alloc(be, sizeof(float) * tf->n_params, (void **) &tf->params);
	if (st == ISRF_OK)
		st = be->mem_alloc(be, sizeof(float) * tf->n_params, (void **) &tf->grads);
	if (st != ISRF_OK)
	{
		isrf_tf_destroy(tf);
		return st;
	}
	tf_bind_view(cfg, tf->params, &tf->p);
	tf_bind_view(cfg, tf->grads, &tf->g);

	host = isrf_alloc(env, sizeof(float) * tf->n_params);
	if (host == NULL)
	{
		isrf_tf_destroy(tf);
		return ISRF_ERR_NOMEM;
	}
	tf_init_host(cfg, host, seed);
	st = be->upload(be, tf->params, host, sizeof(float) * tf->n_params);
	isrf_free(env, host);
	if (st != ISRF_OK)
	{
		isrf_tf_destroy(tf);
		return st;
	}
	*out = tf;
	return ISRF_OK;
}

/* Free the activation buffers (not the struct). */
static void
tf_free_acts(IsrfTransformer *tf)
{
	IsrfTfActs *a = tf->acts;
	IsrfBackend *be = tf->be;
	float	  **bufs[] = {
		&a->resid, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty,
		&a->att, &a->res2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch,
		&a->fchg, &a->hidden, &a->lnf_mean, &a->lnf_rstd, &a->tmp, &a->dres,
		&a->dln, &a->datty, &a->dqkv, &a->dfchg, &a->dfch, &a->dscore
	};
	size_t		i;

	for (i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
	{
		be->mem_free(be, *bufs[i]);
		*bufs[i] = NULL;
	}
	be->mem_free(be, a->dvalid);
	a->dvalid = NULL;
	isrf_free(be->env, a->valid);
	a->valid = NULL;
	a->cap_bt = 0;
	a->cap_t = 0;
	a->cap_att = 0;
	tf->hidden = NULL;
}

void
isrf_tf_destroy(IsrfTransformer *tf)
{
	IsrfEnv    *env;

	if (tf == NULL)
		return;
	env = tf->be->env;
	if (tf->acts)
	{
		tf_free_acts(tf);
		if (tf->acts->pos_ids)
			tf->be->mem_free(tf->be, tf->acts->pos_ids);
		isrf_free(env, tf->acts);
	}
	if (tf->params)
		tf->be->mem_free(tf->be, tf->params);
	if (tf->grads)
		tf->be->mem_free(tf->be, tf->grads);
	isrf_free(env, tf->p.layers);
	isrf_free(env, tf->g.layers);
	isrf_free(env, tf);
}

IsrfStatus
isrf_tf_zero_grad(IsrfTransformer *tf)
{
	return tf->be->mem_zero(tf->be, tf->grads, sizeof(float) * tf->n_params);
}

void
isrf_tf_decay_mask(const IsrfTransformer *tf, uint8_t *mask)
{
	const IsrfTfConfig *cfg = &tf->cfg;
	size_t		c = cfg->d_model,
				f = cfg->d_ff;
	int			l;

	memset(mask, 0, tf->n_params);
	for (l = 0; l < cfg->n_layers; l++)
	{
		const IsrfTfLayer *ly = &tf->p.layers[l];

		memset(mask + (ly->qkv_w - tf->params), 1, 3 * c * c);
		memset(mask + (ly->proj_w - tf->params), 1, c * c);
		memset(mask + (ly->fc_w - tf->params), 1, f * c);
		memset(mask + (ly->fc2_w - tf->params), 1, c * f);
	}
}

/*
 * Check host positions and map them to rows of the position block (wpe and
 * wpre are contiguous: prefix type j is row max_len + j, padding is -1),
 * uploaded into acts->pos_ids, which must hold n entries.
 */
static IsrfStatus
tf_position_rows(IsrfTransformer *tf, const int32_t *pos, int n)
{
	IsrfBackend *be = tf->be;
	int32_t    *rows;
	int			i;
	IsrfStatus	st;

	if ((size_t) n > tf->acts->pos_cap)
	{
		be->mem_free(be, tf->acts->pos_ids);
		tf->acts->pos_ids = NULL;
		tf->acts->pos_cap = 0;
		ISRF_TRY(be->mem_alloc(be, sizeof(int32_t) * (size_t) n, (void **) &tf->acts->pos_ids));
		tf->acts->pos_cap = (size_t) n;
	}
	rows = isrf_alloc(be->env, sizeof(int32_t) * (size_t) (n > 0 ? n : 1));
	if (rows == NULL)
		return ISRF_ERR_NOMEM;
	for (i = 0; i < n; i++)
	{
		if (pos[i] >= tf->cfg.max_len)
		{
			isrf_free(be->env, rows);
			return isrf_fail(be->env, ISRF_ERR_INVALID,
							 "position %d at row %d is beyond max_len %d",
							 (int) pos[i], i, tf->cfg.max_len);
		}
		if (pos[i] < ISRF_TF_POS_PAD && -2 - pos[i] >= tf->cfg.n_prefix)
		{
			isrf_free(be->env, rows);
			return isrf_fail(be->env, ISRF_ERR_INVALID,
							 "prefix type %d at row %d is beyond n_prefix %d",
							 (int) (-2 - pos[i]), i, tf->cfg.n_prefix);
		}
		rows[i] = pos[i] >= 0 ? pos[i] : pos[i] == ISRF_TF_POS_PAD ? -1
			: tf->cfg.max_len + (-2 - pos[i]);
	}
	st = be->upload(be, tf->acts->pos_ids, rows, sizeof(int32_t) * (size_t) n);
	isrf_free(be->env, rows);
	return st;
}

IsrfStatus
isrf_tf_add_positions(IsrfTransformer *tf, float *x, const int32_t *pos, int n)
{
	ISRF_TRY(tf_position_rows(tf, pos, n));
	return tf->be->gather_rows(tf->be, x, tf->acts->pos_ids, n, tf->p.wpe, tf->cfg.d_model, true);
}

IsrfStatus
isrf_tf_add_positions_backward(IsrfTransformer *tf, const float *dx,
							   const int32_t *pos, int n)
{
	ISRF_TRY(tf_position_rows(tf, pos, n));
	return tf->be->scatter_add_rows(tf->be, tf->g.wpe, tf->acts->pos_ids, n, dx, tf->cfg.d_model);
}

/* Make sure the activation buffers hold B*T rows of T positions. */
static IsrfStatus
tf_reserve(IsrfTransformer *tf, int B, int T)
{
	IsrfTfActs *a = tf->acts;
	IsrfBackend *be = tf->be;
	size_t		bt = (size_t) B * T,
				c = tf->cfg.d_model,
				f = tf->cfg.d_ff,
				L = tf->cfg.n_layers,
				att = (size_t) B * tf->cfg.n_heads * T * T;
	size_t		i;

	if (bt <= a->cap_bt && T <= a->cap_t && att <= a->cap_att)
		return ISRF_OK;
	/* grow to the larger of old and new in each dimension */
	if (a->cap_bt > bt)
		bt = a->cap_bt;
	if (a->cap_t > T)
		T = a->cap_t;
	if (a->cap_att > att)
		att = a->cap_att;
	tf_free_acts(tf);

	{
		struct
		{
			float	  **ptr;
			size_t		n;
		}			bufs[] = {
			{&a->resid, (L + 1) * bt * c},
			{&a->ln1, L * bt * c},
			{&a->ln1_mean, L * bt},
			{&a->ln1_rstd, L * bt},
			{&a->qkv, L * bt * 3 * c},
			{&a->atty, L * bt * c},
			{&a->att, L * att},
			{&a->res2, L * bt * c},
			{&a->ln2, L * bt * c},
			{&a->ln2_mean, L * bt},
			{&a->ln2_rstd, L * bt},
			{&a->fch, L * bt * f},
			{&a->fchg, L * bt * f},
			{&a->hidden, bt * c},
			{&a->lnf_mean, bt},
			{&a->lnf_rstd, bt},
			{&a->tmp, bt * c},
			{&a->dres, bt * c},
			{&a->dln, bt * c},
			{&a->datty, bt * c},
			{&a->dqkv, bt * 3 * c},
			{&a->dfchg, bt * f},
			{&a->dfch, bt * f},
			{&a->dscore, att},
		};

		for (i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		{
			IsrfStatus	st = be->mem_alloc(be, sizeof(float) * bufs[i].n, (void **) bufs[i].ptr);

			if (st != ISRF_OK)
			{
				tf_free_acts(tf);
				return st;
			}
		}
	}
	a->valid = isrf_alloc(be->env, bt);
	if (a->valid == NULL || be->mem_alloc(be, bt, (void **) &a->dvalid) != ISRF_OK)
	{
		tf_free_acts(tf);
		return a->valid ? be->env->status : ISRF_ERR_NOMEM;
	}
	a->cap_bt = bt;
	a->cap_t = T;
	a->cap_att = att;
	return ISRF_OK;
}

/* Dropout key of a site: 0 = input, 2l+1 = attention branch, 2l+2 = MLP branch. */
static inline uint64_t
tf_drop_key(const IsrfTfActs *a, int site)
{
	return isrf_nn_key(a->seed, (uint64_t) site, 0x7f);
}

IsrfStatus
isrf_tf_forward(IsrfTransformer *tf, const float *input, const uint8_t *valid,
				int B, int T, bool train, uint64_t dropout_seed)
{
	IsrfBackend *be = tf->be;
	IsrfTfActs *a = tf->acts;
	const IsrfTfConfig *cfg = &tf->cfg;
	size_t		c = cfg->d_model,
				f = cfg->d_ff;
	size_t		bt = (size_t) B * T;
	size_t		att_stride = (size_t) B * cfg->n_heads * T * T;
	float		p = train ? cfg->dropout : 0.0f;
	int			l;

	tf->hidden = NULL;
	if (B < 1 || T < 1 || T > cfg->max_len)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "transformer batch must be at least 1 x 1 with T <= max_len %d (got %d x %d)",
						 cfg->max_len, B, T);
	ISRF_TRY(tf_reserve(tf, B, T));
	tf->B = B;
	tf->T = T;
	a->train = train;
	a->seed = dropout_seed;
	a->has_mask = valid != NULL;
	if (valid)
		memcpy(a->valid, valid, bt);
	else
		memset(a->valid, 1, bt);
	ISRF_TRY(be->upload(be, a->dvalid, a->valid, bt));

	ISRF_TRY(isrf_nn_dropout_forward(be, a->resid, input, bt * c, p, tf_drop_key(a, 0)));
	for (l = 0; l < cfg->n_layers; l++)
	{
		const IsrfTfLayer *w = &tf->p.layers[l];
		float	   *res = a->resid + l * bt * c;
		float	   *ln1 = a->ln1 + l * bt * c;
		float	   *qkv = a->qkv + l * bt * 3 * c;
		float	   *atty = a->atty + l * bt * c;
		float	   *res2 = a->res2 + l * bt * c;
		float	   *ln2 = a->ln2 + l * bt * c;
		float	   *fch = a->fch + l * bt * f;
		float	   *fchg = a->fchg + l * bt * f;

		ISRF_TRY(isrf_poll(be->env));
		ISRF_TRY(isrf_nn_layernorm_forward(be, ln1, a->ln1_mean + l * bt, a->ln1_rstd + l * bt,
										   res, w->ln1_w, w->ln1_b, (int) bt, (int) c));
		ISRF_TRY(isrf_nn_linear_forward(be, qkv, ln1, w->qkv_w, w->qkv_b, (int) bt, (int) c, 3 * (int) c));
		ISRF_TRY(isrf_nn_attention_forward(be, atty, a->att + l * att_stride, qkv,
										   a->has_mask ? a->dvalid : NULL,
										   B, T, (int) c, cfg->n_heads));
		ISRF_TRY(isrf_nn_linear_forward(be, a->tmp, atty, w->proj_w, w->proj_b, (int) bt, (int) c, (int) c));
		ISRF_TRY(isrf_nn_dropout_forward(be, a->tmp, a->tmp, bt * c, p, tf_drop_key(a, 2 * l + 1)));
		ISRF_TRY(isrf_nn_residual_forward(be, res2, res, a->tmp, bt * c));

		ISRF_TRY(isrf_nn_layernorm_forward(be, ln2, a->ln2_mean + l * bt, a->ln2_rstd + l * bt,
										   res2, w->ln2_w, w->ln2_b, (int) bt, (int) c));
		ISRF_TRY(isrf_nn_linear_forward(be, fch, ln2, w->fc_w, w->fc_b, (int) bt, (int) c, (int) f));
		ISRF_TRY(isrf_nn_gelu_forward(be, fchg, fch, bt * f));
		ISRF_TRY(isrf_nn_linear_forward(be, a->tmp, fchg, w->fc2_w, w->fc2_b, (int) bt, (int) f, (int) c));
		ISRF_TRY(isrf_nn_dropout_forward(be, a->tmp, a->tmp, bt * c, p, tf_drop_key(a, 2 * l + 2)));
		ISRF_TRY(isrf_nn_residual_forward(be, res + bt * c, res2, a->tmp, bt * c));
	}
	ISRF_TRY(isrf_nn_layernorm_forward(be, a->hidden, a->lnf_mean, a->lnf_rstd,
									   a->resid + cfg->n_layers * bt * c,
									   tf->p.lnf_w, tf->p.lnf_b, (int) bt, (int) c));
	/* padding rows carry whatever the input had: hide them from the heads */
	if (a->has_mask)
		ISRF_TRY(be->mask_rows(be, a->hidden, a->dvalid, (int) bt, (int) c));
	tf->hidden = a->hidden;
	return ISRF_OK;
}

IsrfStatus
isrf_tf_backward(IsrfTransformer *tf, const float *dhidden, float *dinput)
{
	IsrfBackend *be = tf->be;
	IsrfTfActs *a = tf->acts;
	const IsrfTfConfig *cfg = &tf->cfg;
	int			B = tf->B,
				T = tf->T;
	size_t		c = cfg->d_model,
				f = cfg->d_ff;
	size_t		bt = (size_t) B * T;
	size_t		att_stride = (size_t) B * cfg->n_heads * T * T;
	float		p = a->train ? cfg->dropout : 0.0f;
	int			l;

	if (tf->hidden == NULL)
		return isrf_fail(be->env, ISRF_ERR_INTERNAL, "transformer backward without a forward");

	/* gradient of the final LayerNorm, padding rows dropped */
	ISRF_TRY(be->copy(be, a->tmp, dhidden, sizeof(float) * bt * c));
	if (a->has_mask)
		ISRF_TRY(be->mask_rows(be, a->tmp, a->dvalid, (int) bt, (int) c));
	ISRF_TRY(be->mem_zero(be, a->dres, sizeof(float) * bt * c));
	ISRF_TRY(isrf_nn_layernorm_backward(be, a->dres, tf->g.lnf_w, tf->g.lnf_b, a->tmp,
										a->resid + cfg->n_layers * bt * c, tf->p.lnf_w,
										a->lnf_mean, a->lnf_rstd, (int) bt, (int) c));

	for (l = cfg->n_layers - 1; l >= 0; l--)
	{
		const IsrfTfLayer *w = &tf->p.layers[l];
		IsrfTfLayer *g = &tf->g.layers[l];
		float	   *res = a->resid + l * bt * c;
		float	   *ln1 = a->ln1 + l * bt * c;
		float	   *qkv = a->qkv + l * bt * 3 * c;
		float	   *atty = a->atty + l * bt * c;
		float	   *res2 = a->res2 + l * bt * c;
		float	   *ln2 = a->ln2 + l * bt * c;
		float	   *fch = a->fch + l * bt * f;
		float	   *fchg = a->fchg + l * bt * f;

		ISRF_TRY(isrf_poll(be->env));
		/* MLP branch: dres is d(res3); the skip path leaves it as part of d(res2) */
		ISRF_TRY(be->mem_zero(be, a->tmp, sizeof(float) * bt * c));
		ISRF_TRY(isrf_nn_dropout_backward(be, a->tmp, a->dres, bt * c, p, tf_drop_key(a, 2 * l + 2)));
		ISRF_TRY(be->mem_zero(be, a->dfchg, sizeof(float) * bt * f));
		ISRF_TRY(isrf_nn_linear_backward(be, a->dfchg, g->fc2_w, g->fc2_b, a->tmp, fchg,
										 w->fc2_w, (int) bt, (int) f, (int) c));
		ISRF_TRY(be->mem_zero(be, a->dfch, sizeof(float) * bt * f));
		ISRF_TRY(isrf_nn_gelu_backward(be, a->dfch, fch, a->dfchg, bt * f));
		ISRF_TRY(be->mem_zero(be, a->dln, sizeof(float) * bt * c));
		ISRF_TRY(isrf_nn_linear_backward(be, a->dln, g->fc_w, g->fc_b, a->dfch, ln2,
										 w->fc_w, (int) bt, (int) c, (int) f));
		ISRF_TRY(isrf_nn_layernorm_backward(be, a->dres, g->ln2_w, g->ln2_b, a->dln, res2,
											w->ln2_w, a->ln2_mean + l * bt,
											a->ln2_rstd + l * bt, (int) bt, (int) c));

		/* attention branch: dres is now d(res2) */
		ISRF_TRY(be->mem_zero(be, a->tmp, sizeof(float) * bt * c));
		ISRF_TRY(isrf_nn_dropout_backward(be, a->tmp, a->dres, bt * c, p, tf_drop_key(a, 2 * l + 1)));
		ISRF_TRY(be->mem_zero(be, a->datty, sizeof(float) * bt * c));
		ISRF_TRY(isrf_nn_linear_backward(be, a->datty, g->proj_w, g->proj_b, a->tmp, atty,
										 w->proj_w, (int) bt, (int) c, (int) c));
		ISRF_TRY(be->mem_zero(be, a->dqkv, sizeof(float) * bt * 3 * c));
		ISRF_TRY(isrf_nn_attention_backward(be, a->dqkv, a->dscore, a->datty, qkv,
											a->att + l * att_stride, B, T, (int) c,
											cfg->n_heads));
		ISRF_TRY(be->mem_zero(be, a->dln, sizeof(float) * bt * c));
		ISRF_TRY(isrf_nn_linear_backward(be, a->dln, g->qkv_w, g->qkv_b, a->dqkv, ln1,
										 w->qkv_w, (int) bt, (int) c, 3 * (int) c));
		ISRF_TRY(isrf_nn_layernorm_backward(be, a->dres, g->ln1_w, g->ln1_b, a->dln, res,
											w->ln1_w, a->ln1_mean + l * bt,
											a->ln1_rstd + l * bt, (int) bt, (int) c));
	}
	if (dinput)
	{
		ISRF_TRY(be->mem_zero(be, dinput, sizeof(float) * bt * c));
		ISRF_TRY(isrf_nn_dropout_backward(be, dinput, a->dres, bt * c, p, tf_drop_key(a, 0)));
	}
	return ISRF_OK;
}
