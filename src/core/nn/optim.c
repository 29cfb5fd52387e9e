/*
 * nn/optim.c
 *	  AdamW, gradient clipping and the learning-rate schedule (see optim.h).
 */
#include "nn/optim.h"

#include <math.h>
#include <string.h>

IsrfStatus
isrf_adamw_init(IsrfBackend *be, IsrfAdamW *opt, size_t n, float beta1,
				float beta2, float eps, float weight_decay,
				const uint8_t *decay_mask)
{
	IsrfStatus	st;

	memset(opt, 0, sizeof(*opt));
	opt->be = be;
	if (!(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f))
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "AdamW betas must be in [0, 1) (got %g, %g)",
						 (double) beta1, (double) beta2);
	if (!(eps > 0.0f) || !(weight_decay >= 0.0f))
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "AdamW needs eps > 0 and weight_decay >= 0 (got %g, %g)",
						 (double) eps, (double) weight_decay);
	opt->n = n;
	opt->beta1 = beta1;
	opt->beta2 = beta2;
	opt->eps = eps;
	opt->weight_decay = weight_decay;
	st = be->mem_alloc(be, sizeof(float) * (n ? n : 1), (void **) &opt->m);
	if (st == ISRF_OK)
		st = be->mem_alloc(be, sizeof(float) * (n ? n : 1), (void **) &opt->v);
	if (st == ISRF_OK && decay_mask)
	{
		st = be->mem_alloc(be, n ? n : 1, (void **) &opt->decay);
		if (st == ISRF_OK && n)
			st = be->upload(be, opt->decay, decay_mask, n);
	}
	if (st != ISRF_OK)
		isrf_adamw_free(opt);
	return st;
}

void
isrf_adamw_free(IsrfAdamW *opt)
{
	if (opt->be == NULL)
		return;
	if (opt->m)
		opt->be->mem_free(opt->be, opt->m);
	if (opt->v)
		opt->be->mem_free(opt->be, opt->v);
	if (opt->decay)
		opt->be->mem_free(opt->be, opt->decay);
	opt->m = opt->v = NULL;
	opt->decay = NULL;
}

IsrfStatus
isrf_adamw_step(IsrfAdamW *opt, float *params, const float *grads, float lr)
{
	float		b1 = opt->beta1,
				b2 = opt->beta2;
	float		c1,
				c2;

	if (opt->m == NULL)
		return isrf_fail(opt->be->env, ISRF_ERR_INTERNAL, "AdamW step on a freed optimizer");
	opt->step++;
	c1 = (float) (1.0 / (1.0 - pow(b1, (double) opt->step)));
	c2 = (float) (1.0 / (1.0 - pow(b2, (double) opt->step)));
	return opt->be->adamw_step(opt->be, params, grads, opt->m, opt->v, opt->decay, opt->n,
							   lr, b1, b2, opt->eps, opt->weight_decay, c1, c2);
}

IsrfStatus
isrf_grad_clip(IsrfBackend *be, float *const *grads, const size_t *sizes, int n_arrays,
			   float max_norm, float *norm_out)
{
	double		ss = 0.0,
				norm;
	int			a;

	for (a = 0; a < n_arrays; a++)
	{
		double		part;

		ISRF_TRY(be->sumsq(be, grads[a], sizes[a], &part));
		ss += part;
	}
	norm = sqrt(ss);
	if (max_norm > 0.0f && isfinite(norm) && norm > max_norm)
	{
		float		s = (float) (max_norm / norm);

		/* y = 0 x + s y: a scale through the backend's axpby */
		for (a = 0; a < n_arrays; a++)
			ISRF_TRY(be->axpby(be, sizes[a], 0.0f, grads[a], s, grads[a]));
	}
	*norm_out = (float) norm;
	return ISRF_OK;
}

float
isrf_lr_schedule(float base, int64_t step, int64_t warmup, int64_t total,
				 float min_ratio)
{
	double		frac;

	if (warmup > 0 && step < warmup)
		return base * (float) (step + 1) / (float) warmup;
	if (total <= warmup || step >= total)
		return step >= total && total > warmup ? base * min_ratio : base;
	frac = (double) (step - warmup) / (double) (total - warmup);
	return base * (float) (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + cos(M_PI * frac)));
}
