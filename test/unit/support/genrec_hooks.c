/*
 * test/unit/support/genrec_hooks.c
 *	  The generative model's test hooks (see genrec_hooks.h).
 */
#include "support/genrec_hooks.h"

#include "model/genrec_internal.h"

#include <stdio.h>
#include <string.h>

IsrfStatus
isrf_genrec_test_session(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
						 const IsrfGenrec *g, IsrfGenrecSession **out)
{
	IsrfGenrecSession *s;
	IsrfStatus	st;

	ISRF_TRY(isrf_gr_session_create(env, be, &g->cfg, d, g->levels, g->codebook_sizes, g->codes,
									g->scale, &g->weights, g->n_words, true, &s));
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
	return isrf_gr_train_batch(s, n_users, users, seed, loss);
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
	GR_T("word_emb", word_emb, (size_t) s->n_words * C);
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

IsrfStatus
isrf_genrec_test_table(IsrfGenrecSession *s, float *out)
{
	ISRF_TRY(isrf_gr_table_forward(s));
	return s->be->download(s->be, out, s->table, (size_t) s->ni * s->C * 4);
}
