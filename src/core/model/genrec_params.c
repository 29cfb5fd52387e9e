/*
 * model/genrec_params.c
 *	  The weights of the generative model outside the transformer: their
 *	  layout in one block, their initialisation, which get weight decay, and
 *	  the trained model's host copy (see genrec.h for what each tensor is).
 */
#include "model/genrec_internal.h"

#include "nn/layers.h"

#include <math.h>
#include <string.h>

/* Lay the non-transformer tensors out one after another. */
void
isrf_gr_layout(GrLayout *l, int32_t C, int32_t ni, int32_t dm, int32_t levels, const int32_t *ks,
			   int32_t n_words)
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
	/* last, so that a model without word embeddings keeps its layout */
	GR_PUT(word_emb, (size_t) n_words * C);
#undef GR_PUT
	l->total = o;
}

size_t
isrf_genrec_param_count(const IsrfGenrecConfig *cfg, int32_t n_items, int32_t dm,
						int32_t levels, const int32_t *codebook_sizes, int32_t n_words)
{
	GrLayout	l;

	isrf_gr_layout(&l, cfg->d_model, n_items, dm, levels, codebook_sizes, n_words);
	return l.total;
}

/* Transformer configuration of a genrec configuration. */
void
isrf_gr_tf_config(const IsrfGenrecConfig *c, IsrfTfConfig *t)
{
	memset(t, 0, sizeof(*t));
	t->n_layers = c->tf_layers;
	t->d_model = c->d_model;
	t->n_heads = c->n_heads;
	t->d_ff = 4 * c->d_model;
	t->max_len = c->max_len;
	t->n_prefix = 0;
	t->dropout = c->dropout;
}

/* Fresh weights: small normals, biases zero (see genrec.h for the parts). */
IsrfStatus
isrf_gr_init_params(IsrfGenrecSession *s)
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
	isrf_nn_init_normal(p + l->word_emb, (size_t) s->n_words * C, 0.05f, isrf_nn_key(seed, 1, 6));
	st = s->be->upload(s->be, s->p, p, l->total * 4);
	isrf_free(s->env, p);
	return st;
}

/* Weight decay applies to the matrices, not embeddings or biases. */
void
isrf_gr_decay_mask(const IsrfGenrecSession *s, uint8_t *mask)
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

void
isrf_genrec_free(IsrfEnv *env, IsrfGenrec *g)
{
	isrf_free(env, g->codes);
	isrf_free(env, g->params);
	isrf_free(env, g->tf_params);
	isrf_free(env, g->eval_params);
	isrf_free(env, g->eval_tf_params);
	memset(g, 0, sizeof(*g));
}

IsrfStatus
isrf_genrec_copy(IsrfEnv *env, const IsrfGenrec *src, IsrfGenrec *dst)
{
	size_t		nc = (size_t) src->n_items * src->levels;
	bool		refit = src->eval_params != NULL;

	*dst = *src;
	dst->codes = isrf_alloc(env, nc * 4 + 4);
	dst->params = isrf_alloc(env, src->n_params * 4 + 4);
	dst->tf_params = isrf_alloc(env, src->n_tf_params * 4 + 4);
	dst->eval_params = refit ? isrf_alloc(env, src->n_params * 4 + 4) : NULL;
	dst->eval_tf_params = refit ? isrf_alloc(env, src->n_tf_params * 4 + 4) : NULL;
	if (!dst->codes || !dst->params || !dst->tf_params ||
		(refit && (!dst->eval_params || !dst->eval_tf_params)))
	{
		isrf_genrec_free(env, dst);
		return ISRF_ERR_NOMEM;
	}
	if (nc)
		memcpy(dst->codes, src->codes, nc * 4);
	memcpy(dst->params, src->params, src->n_params * 4);
	memcpy(dst->tf_params, src->tf_params, src->n_tf_params * 4);
	if (refit)
	{
		memcpy(dst->eval_params, src->eval_params, src->n_params * 4);
		memcpy(dst->eval_tf_params, src->eval_tf_params, src->n_tf_params * 4);
	}
	return ISRF_OK;
}

/* Copy the session's weights into out's host arrays. */
IsrfStatus
isrf_gr_weights_out(IsrfGenrecSession *s, IsrfGenrec *out)
{
	ISRF_TRY(s->be->download(s->be, out->params, s->p, s->lay.total * 4));
	return s->be->download(s->be, out->tf_params, s->tf->params, s->tf->n_params * 4);
}
