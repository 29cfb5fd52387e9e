/*
 * model/blend_net.h
 *	  The candidate lists' blend network: a one-hidden-layer network over the
 *	  terms of a candidate's direct-task score (scorer.h), added to their
 *	  weighted sum, so that the score can use what a sum cannot (a transition
 *	  that counts more for a rare item than for a popular one, say).
 *
 *	    net(x) = sum_h w2[h] * tanh(b1[h] + sum_f w1[h][f] * (x[f] - mean[f]) * inv_sd[f])
 *
 *	  x is the candidate's terms in the order of IsrfBlendFeature.  It is
 *	  fitted after the weights of the sum, on the validation direct task, by
 *	  the lists' softmax cross-entropy (the target against its list), and
 *	  joins the score only when it improves NDCG@10 on validation lists it
 *	  was not fitted on, by more than their noise (isrf_blend_net_fit).  All zero (w2 zero) adds
 *	  nothing: the state of a model trained without it or before it.
 */
#ifndef ISRF_BLEND_NET_H
#define ISRF_BLEND_NET_H

#include "base/env.h"

#include <stdbool.h>
#include <stdint.h>

/* The inputs, each a term of the direct-task score (scorer.h). */
typedef enum IsrfBlendFeature
{
	ISRF_BLEND_DENSE = 0,		/* the dense head's logit */
	ISRF_BLEND_MARKOV,			/* the prior's Markov part */
	ISRF_BLEND_KNN,				/* the prior's item-kNN part */
	ISRF_BLEND_POP,				/* log(1 + train count) */
	ISRF_BLEND_RECENT,			/* recent(i) */
	ISRF_BLEND_CONTENT,			/* the profile cosine */
	ISRF_BLEND_GROUP,			/* group(i) */
	ISRF_BLEND_TEXT,			/* text(i) */
	ISRF_BLEND_KNN_MAX,			/* the relations (isrf_scorer_relations): the */
	ISRF_BLEND_LEX_PROFILE,		/* closest co-occurrence, the lexical */
	ISRF_BLEND_LEX_LAST,		/* cosines with the recent items' profile and */
	ISRF_BLEND_LEX_MAX,			/* the last item, the closest lexical cosine */
	ISRF_BLEND_N_FEATURES
} IsrfBlendFeature;

/* the inputs of the first networks (the terms up to ISRF_BLEND_TEXT) */
#define ISRF_BLEND_N_FEATURES_V1 8

#define ISRF_BLEND_HIDDEN 16

typedef struct IsrfBlendNet
{
	float		mean[ISRF_BLEND_N_FEATURES];	/* the inputs' standardisation */
	float		inv_sd[ISRF_BLEND_N_FEATURES];	/* 0 for an input that never varied */
	float		w1[ISRF_BLEND_HIDDEN][ISRF_BLEND_N_FEATURES];
	float		b1[ISRF_BLEND_HIDDEN];
	float		w2[ISRF_BLEND_HIDDEN];
} IsrfBlendNet;

#define ISRF_BLEND_NET_FLOATS ((int) (sizeof(IsrfBlendNet) / sizeof(float)))
/* a first network's floats: the same fields over ISRF_BLEND_N_FEATURES_V1 inputs */
#define ISRF_BLEND_NET_FLOATS_V1 \
	(2 * ISRF_BLEND_N_FEATURES_V1 + ISRF_BLEND_HIDDEN * (ISRF_BLEND_N_FEATURES_V1 + 2))

/*
 * A first network's floats v1[ISRF_BLEND_NET_FLOATS_V1] (a model of a build
 * before the relations) as a network of today's inputs that ignores the
 * newer ones: the same output for every input.
 */
void		isrf_blend_net_from_v1(const float *v1, IsrfBlendNet *net);

/* True when the network adds something (some output weight is not 0). */
bool		isrf_blend_net_active(const IsrfBlendNet *net);

/* True when every parameter is finite. */
bool		isrf_blend_net_finite(const IsrfBlendNet *net);

/* net(x) of one candidate's terms x[ISRF_BLEND_N_FEATURES]. */
double		isrf_blend_net_forward(const IsrfBlendNet *net, const float *x);

/*
 * The validation lists a network is fitted on: n_lists lists of n_cand
 * candidates, x[(l * n_cand + c) * ISRF_BLEND_N_FEATURES + f] the terms,
 * base[l * n_cand + c] the weighted sum's score, target[l] the target's
 * position in list l.
 */
typedef struct IsrfBlendData
{
	int32_t		n_lists;
	int32_t		n_cand;
	const float *x;
	const double *base;
	const int32_t *target;
} IsrfBlendData;

/* doubles of scratch isrf_blend_net_list_grad needs for lists of n_cand */
#define ISRF_BLEND_SCRATCH(n_cand) ((size_t) (n_cand) * (1 + ISRF_BLEND_HIDDEN + ISRF_BLEND_N_FEATURES) + 1)

/*
 * The softmax cross-entropy of list l of d under base + net (the target's
 * -log share of its list), returned, and its gradient with respect to the
 * network's weights (w1, b1, w2; not the standardisation) added into
 * *grad: the fit's explicit backward pass.
 */
double		isrf_blend_net_list_grad(const IsrfBlendNet *net, const IsrfBlendData *d, int32_t l,
									 double *scratch, IsrfBlendNet *grad);

/* What isrf_blend_net_fit found (NDCG@10 / HR@10 of the held-out lists). */
typedef struct IsrfBlendReport
{
	int32_t		epochs;			/* of the kept fit, 0 when not kept */
	int32_t		best_epoch;		/* the best on the held-out lists */
	double		held_sum_hr10,	/* the weighted sum alone */
				held_sum_ndcg10,
				held_net_hr10,	/* with the network at its best epoch */
				held_net_ndcg10,
				held_gain,		/* the network's mean gain in NDCG@10 there */
				held_gain_se;	/* and its standard error */
} IsrfBlendReport;

/*
 * Fit a network on the lists: on the even lists for up to max_epochs
 * epochs, scoring the odd ones after each; when the best of those beats the
 * weighted sum alone on the odd lists' NDCG@10 by more than twice the
 * standard error of the lists' gains, again on every list for that many
 * epochs into *out; otherwise *out is all zero.  Deterministic
 * (seeded initialisation and order, one thread).  Polls env for
 * cancellation.
 */
IsrfStatus	isrf_blend_net_fit(IsrfEnv *env, const IsrfBlendData *d, int32_t max_epochs,
							   IsrfBlendNet *out, IsrfBlendReport *rep);

#endif							/* ISRF_BLEND_NET_H */
