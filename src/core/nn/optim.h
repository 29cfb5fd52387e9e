/*
 * nn/optim.h
 *	  AdamW with decoupled weight decay, global-norm gradient clipping and a
 *	  warmup + cosine learning-rate schedule.
 *
 * Parameters, gradients and optimizer state are backend memory; the update
 * and the norm run on the backend's adamw_step and sumsq.
 * One IsrfAdamW covers one contiguous parameter array; a model with several
 * arrays (transformer block, embedding tables, adapter) keeps one each and
 * clips them together with isrf_grad_clip.
 */
#ifndef ISRF_OPTIM_H
#define ISRF_OPTIM_H

#include "compute/backend.h"

typedef struct IsrfAdamW
{
	IsrfBackend *be;
	size_t		n;
	float	   *m;				/* first moments, backend memory */
	float	   *v;				/* second moments, backend memory */
	uint8_t    *decay;			/* own copy of the decay mask (backend
								 * memory), or NULL = all */
	int64_t		step;			/* updates done so far */
	float		beta1;
	float		beta2;
	float		eps;
	float		weight_decay;
} IsrfAdamW;

/*
 * Set up opt for n parameters.  decay_mask (n bytes, host memory, copied;
 * NULL = every parameter decays) marks the parameters that take weight
 * decay: LayerNorm gains, biases and the like should have 0.
 */
IsrfStatus	isrf_adamw_init(IsrfBackend *be, IsrfAdamW *opt, size_t n,
							float beta1, float beta2, float eps,
							float weight_decay, const uint8_t *decay_mask);

/* Release the state; safe on a zeroed or already freed opt. */
void		isrf_adamw_free(IsrfAdamW *opt);

/*
 * One update with learning rate lr (bias-corrected Adam, then
 * p -= lr * weight_decay * p for decayed parameters, as in PyTorch AdamW).
 */
IsrfStatus	isrf_adamw_step(IsrfAdamW *opt, float *params, const float *grads, float lr);

/*
 * Global-norm clipping over n_arrays gradient arrays (backend memory): when
 * the joint L2 norm exceeds max_norm (> 0), every array is scaled by
 * max_norm / norm; max_norm <= 0 only measures.  *norm_out gets the norm
 * before clipping; a non-finite norm is reported without scaling so the
 * caller can skip the step.
 */
IsrfStatus	isrf_grad_clip(IsrfBackend *be, float *const *grads, const size_t *sizes,
						   int n_arrays, float max_norm, float *norm_out);

/*
 * Linear warmup over warmup steps to base, then cosine decay to
 * base * min_ratio at step total (and flat after).
 */
float		isrf_lr_schedule(float base, int64_t step, int64_t warmup, int64_t total,
							 float min_ratio);

#endif							/* ISRF_OPTIM_H */
