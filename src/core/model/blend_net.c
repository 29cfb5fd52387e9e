/*
 * model/blend_net.c
 *	  The candidate lists' blend network (blend_net.h): its forward pass and
 *	  its fit on validation lists by the lists' softmax cross-entropy, with
 *	  an explicit backward pass and Adam.  The network is small (12 inputs,
 *	  16 hidden units), so this is plain host code on every backend.
 */
#include "model/blend_net.h"

#include "eval/metrics.h"
#include "nn/layers.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define NF ISRF_BLEND_N_FEATURES
#define NH ISRF_BLEND_HIDDEN

/* lists a step of the fit averages its gradient over */
#define BLEND_BATCH 64
/*
 * Adam's step and moments, and the L2 penalty on the weights.  The step was
 * chosen on Beauty's held-out validation half (NDCG@10 0.4719 at 0.01, 0.4740
 * at 0.003, 0.4717 at 0.001; batches of 32 0.4733; an L2 of 1e-3 0.4721)
 */
#define BLEND_LR 0.003
#define BLEND_BETA1 0.9
#define BLEND_BETA2 0.999
#define BLEND_EPS 1e-8
#define BLEND_L2 1e-4
#define BLEND_SEED 0x626c656e646e6574ULL	/* "blendnet" */

/* the fit's Adam treats w1, b1 and w2 as one run of floats: they must be adjacent */
_Static_assert(offsetof(IsrfBlendNet, b1) == offsetof(IsrfBlendNet, w1) + sizeof(((IsrfBlendNet *) 0)->w1) &&
			   offsetof(IsrfBlendNet, w2) == offsetof(IsrfBlendNet, b1) + sizeof(((IsrfBlendNet *) 0)->b1) &&
			   sizeof(IsrfBlendNet) == offsetof(IsrfBlendNet, w2) + sizeof(((IsrfBlendNet *) 0)->w2),
			   "IsrfBlendNet's weights are not one run of floats");

bool
isrf_blend_net_active(const IsrfBlendNet *net)
{
	int			h;

	for (h = 0; h < NH; h++)
		if (net->w2[h] != 0.0f)
			return true;
	return false;
}

bool
isrf_blend_net_finite(const IsrfBlendNet *net)
{
	const float *p = (const float *) net;
	int			i;

	for (i = 0; i < ISRF_BLEND_NET_FLOATS; i++)
		if (!isfinite(p[i]))
			return false;
	return true;
}

void
isrf_blend_net_from_v1(const float *v1, IsrfBlendNet *net)
{
	const int	nf1 = ISRF_BLEND_N_FEATURES_V1;
	int			f,
				h;

	memset(net, 0, sizeof(*net));
	for (f = 0; f < nf1; f++)
	{
		net->mean[f] = v1[f];
		net->inv_sd[f] = v1[nf1 + f];
	}
	for (h = 0; h < NH; h++)
		for (f = 0; f < nf1; f++)
			net->w1[h][f] = v1[2 * nf1 + h * nf1 + f];
	for (h = 0; h < NH; h++)
	{
		net->b1[h] = v1[2 * nf1 + NH * nf1 + h];
		net->w2[h] = v1[2 * nf1 + NH * nf1 + NH + h];
	}
}

/* The standardised inputs z of x, and the hidden units' tanh into t. */
static void
blend_hidden(const IsrfBlendNet *net, const float *x, double *z, double *t)
{
	int			f,
				h;

	/* an input that never varied is ignored, whatever it holds now */
	for (f = 0; f < NF; f++)
		z[f] = net->inv_sd[f] == 0.0f || !isfinite(x[f]) ? 0.0 : ((double) x[f] - net->mean[f]) * net->inv_sd[f];
	for (h = 0; h < NH; h++)
	{
		double		a = net->b1[h];

		for (f = 0; f < NF; f++)
			a += (double) net->w1[h][f] * z[f];
		t[h] = tanh(a);
	}
}

double
isrf_blend_net_forward(const IsrfBlendNet *net, const float *x)
{
	double		z[NF],
				t[NH],
				out = 0.0;
	int			h;

	blend_hidden(net, x, z, t);
	for (h = 0; h < NH; h++)
		out += net->w2[h] * t[h];
	return out;
}

/* The inputs' mean and 1 / standard deviation over every candidate of the lists. */
static void
blend_standardise(const IsrfBlendData *d, IsrfBlendNet *net)
{
	size_t		n = (size_t) d->n_lists * d->n_cand,
				i;
	int			f;

	for (f = 0; f < NF; f++)
	{
		double		s = 0.0,
					s2 = 0.0,
					mu,
					var;

		for (i = 0; i < n; i++)
			s += d->x[i * NF + f];
		mu = n ? s / (double) n : 0.0;
		for (i = 0; i < n; i++)
		{
			double		e = d->x[i * NF + f] - mu;

			s2 += e * e;
		}
		var = n ? s2 / (double) n : 0.0;
		net->mean[f] = (float) mu;
		/* an input that never varied (a term switched off) reads 0 */
		net->inv_sd[f] = var > 1e-12 ? (float) (1.0 / sqrt(var)) : 0.0f;
	}
}

/* A fresh network: seeded hidden weights, zero output (it starts as the sum). */
static void
blend_init(IsrfBlendNet *net)
{
	memset(net->w1, 0, sizeof(net->w1));
	memset(net->b1, 0, sizeof(net->b1));
	memset(net->w2, 0, sizeof(net->w2));
	isrf_nn_init_normal(&net->w1[0][0], (size_t) NH * NF, (float) (1.0 / sqrt((double) NF)), BLEND_SEED);
}

double
isrf_blend_net_list_grad(const IsrfBlendNet *net, const IsrfBlendData *d, int32_t l, double *scratch,
						 IsrfBlendNet *grad)
{
	size_t		off = (size_t) l * d->n_cand;
	double	   *sc = scratch,
			   *tt = scratch + d->n_cand,
			   *zz = tt + (size_t) d->n_cand * NH,
				mx = -INFINITY,
				sum = 0.0;
	int32_t		c;
	int			f,
				h;

	for (c = 0; c < d->n_cand; c++)
	{
		double	   *t = tt + (size_t) c * NH;

		blend_hidden(net, d->x + (off + c) * NF, zz + (size_t) c * NF, t);
		sc[c] = d->base[off + c];
		for (h = 0; h < NH; h++)
			sc[c] += net->w2[h] * t[h];
		if (sc[c] > mx)
			mx = sc[c];
	}
	for (c = 0; c < d->n_cand; c++)
		sum += exp(sc[c] - mx);
	for (c = 0; c < d->n_cand; c++)
	{
		/* dloss / dscore of candidate c: its softmax share less the target's indicator */
		double		gs = exp(sc[c] - mx) / sum - (c == d->target[l] ? 1.0 : 0.0);
		const double *t = tt + (size_t) c * NH;
		const double *z = zz + (size_t) c * NF;

		for (h = 0; h < NH; h++)
		{
			double		ga = gs * net->w2[h] * (1.0 - t[h] * t[h]);

			grad->w2[h] += (float) (gs * t[h]);
			grad->b1[h] += (float) ga;
			for (f = 0; f < NF; f++)
				grad->w1[h][f] += (float) (ga * z[f]);
		}
	}
	return mx + log(sum) - sc[d->target[l]];
}

/* How the sum alone and the sum with the network rank held-out lists. */
typedef struct BlendJudged
{
	IsrfMetrics sum,			/* HR@10, NDCG@10 ... of the weighted sum alone */
				net;			/* and with the network */
	double		gain,			/* the mean gain in NDCG@10, list by list */
				gain_se;		/* and its standard error */
} BlendJudged;

/* The lists l = first, first + stride, ... judged in one pass; sc is n_cand scratch. */
static BlendJudged
blend_judge(const IsrfBlendNet *net, const IsrfBlendData *d, int32_t first, int32_t stride, double *sc)
{
	BlendJudged j;
	IsrfMetrics sum,
				with;
	double		s = 0.0,
				s2 = 0.0;
	int64_t		n = 0;
	int32_t		l,
				c;

	memset(&sum, 0, sizeof(sum));
	memset(&with, 0, sizeof(with));
	for (l = first; l < d->n_lists; l += stride)
	{
		size_t		off = (size_t) l * d->n_cand;
		int32_t		r0 = isrf_direct_rank(d->base + off, NULL, d->n_cand, d->target[l], false),
					r1;
		double		diff;

		for (c = 0; c < d->n_cand; c++)
			sc[c] = d->base[off + c] + isrf_blend_net_forward(net, d->x + (off + c) * NF);
		r1 = isrf_direct_rank(sc, NULL, d->n_cand, d->target[l], false);
		isrf_metrics_add(&sum, r0);
		isrf_metrics_add(&with, r1);
		diff = isrf_ndcg_at(r1, 10) - isrf_ndcg_at(r0, 10);
		s += diff;
		s2 += diff * diff;
		n++;
	}
	j.sum = isrf_metrics_mean(&sum);
	j.net = isrf_metrics_mean(&with);
	j.gain = n ? s / (double) n : 0.0;
	j.gain_se = n > 1 ? sqrt(fmax(s2 / (double) n - j.gain * j.gain, 0.0) / (double) (n - 1)) : INFINITY;
	return j;
}

/*
 * Fit net (standardised already) for epochs passes over the lists
 * l = first, first + stride, ...; with held >= 0, the lists
 * held, held + stride, ... are judged after each epoch, and the best
 * epoch (by the network's NDCG@10 there) and its judgement go to
 * *best_epoch and *best.
 */
static IsrfStatus
blend_train(IsrfEnv *env, const IsrfBlendData *d, int32_t first, int32_t stride, int32_t held,
			int32_t epochs, IsrfBlendNet *net, int32_t *best_epoch, BlendJudged *best)
{
	IsrfBlendNet g,
				m1,
				m2;
	float	   *pn = &net->w1[0][0],
			   *pg = &g.w1[0][0],
			   *p1 = &m1.w1[0][0],
			   *p2 = &m2.w1[0][0];
	int			np = (int) ((sizeof(net->w1) + sizeof(net->b1) + sizeof(net->w2)) / sizeof(float));
	int32_t		n_fit = d->n_lists > first ? (d->n_lists - first + stride - 1) / stride : 0,
			   *order = NULL;
	double	   *scratch = NULL;
	int64_t		step = 0;
	int32_t		e,
				i,
				k;
	IsrfStatus	st = ISRF_OK;

	memset(&m1, 0, sizeof(m1));
	memset(&m2, 0, sizeof(m2));
	order = isrf_alloc(env, (size_t) n_fit * 4 + 4);
	scratch = isrf_alloc(env, ISRF_BLEND_SCRATCH(d->n_cand) * 8);
	if (!order || !scratch)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n_fit; i++)
		order[i] = first + i * stride;
	for (e = 1; e <= epochs; e++)
	{
		/* a seeded shuffle of the lists each epoch */
		for (i = n_fit - 1; i > 0; i--)
		{
			int32_t		j = (int32_t) (isrf_nn_stream(BLEND_SEED + (uint64_t) e, (uint64_t) i) % (uint64_t) (i + 1)),
						tmp = order[i];

			order[i] = order[j];
			order[j] = tmp;
		}
		for (i = 0; i < n_fit; i += BLEND_BATCH)
		{
			int32_t		nb = n_fit - i < BLEND_BATCH ? n_fit - i : BLEND_BATCH;
			double		c1,
						c2;

			if ((i / BLEND_BATCH) % 16 == 0 && (st = isrf_poll(env)) != ISRF_OK)
				goto done;
			memset(&g, 0, sizeof(g));
			for (k = 0; k < nb; k++)
				(void) isrf_blend_net_list_grad(net, d, order[i + k], scratch, &g);
			step++;
			c1 = 1.0 - pow(BLEND_BETA1, (double) step);
			c2 = 1.0 - pow(BLEND_BETA2, (double) step);
			for (k = 0; k < np; k++)
			{
				double		gk = pg[k] / nb + 2.0 * BLEND_L2 * pn[k];

				p1[k] = (float) (BLEND_BETA1 * p1[k] + (1.0 - BLEND_BETA1) * gk);
				p2[k] = (float) (BLEND_BETA2 * p2[k] + (1.0 - BLEND_BETA2) * gk * gk);
				pn[k] -= (float) (BLEND_LR * (p1[k] / c1) / (sqrt(p2[k] / c2) + BLEND_EPS));
			}
		}
		if (held >= 0)
		{
			BlendJudged j = blend_judge(net, d, held, stride, scratch);

			if (*best_epoch == 0 || j.net.ndcg10 > best->net.ndcg10)
			{
				*best_epoch = e;
				*best = j;
			}
		}
	}

done:
	isrf_free(env, order);
	isrf_free(env, scratch);
	return st;
}

IsrfStatus
isrf_blend_net_fit(IsrfEnv *env, const IsrfBlendData *d, int32_t max_epochs, IsrfBlendNet *out,
				   IsrfBlendReport *rep)
{
	IsrfBlendNet net;
	BlendJudged best;
	int32_t		best_epoch = 0,
				l;

	memset(out, 0, sizeof(*out));
	memset(rep, 0, sizeof(*rep));
	memset(&best, 0, sizeof(best));
	/* two lists at least: one to fit on, one to judge by */
	if (d->n_lists < 2 || d->n_cand < 2 || max_epochs < 1)
		return ISRF_OK;
	for (l = 0; l < d->n_lists; l++)
		if (d->target[l] < 0 || d->target[l] >= d->n_cand)
			return isrf_fail(env, ISRF_ERR_INVALID, "blend network: list %d has its target at %d of %d",
							 l, d->target[l], d->n_cand);

	/*
	 * how long to fit, judged on the lists it is not fitted on; kept only
	 * where its gain there is more than twice its standard error, so that
	 * noise (and the choice of the best epoch on those lists) does not
	 * bring it in
	 */
	memset(&net, 0, sizeof(net));
	blend_standardise(d, &net);
	blend_init(&net);
	ISRF_TRY(blend_train(env, d, 0, 2, 1, max_epochs, &net, &best_epoch, &best));
	rep->best_epoch = best_epoch;
	rep->held_sum_hr10 = best.sum.hr10;
	rep->held_sum_ndcg10 = best.sum.ndcg10;
	rep->held_net_hr10 = best.net.hr10;
	rep->held_net_ndcg10 = best.net.ndcg10;
	rep->held_gain = best.gain;
	rep->held_gain_se = best.gain_se;
	if (!(rep->held_gain > 2.0 * rep->held_gain_se))
		return ISRF_OK;

	/* then on every list for that long */
	memset(&net, 0, sizeof(net));
	blend_standardise(d, &net);
	blend_init(&net);
	ISRF_TRY(blend_train(env, d, 0, 1, -1, best_epoch, &net, NULL, NULL));
	if (!isrf_blend_net_finite(&net))
		return ISRF_OK;
	*out = net;
	rep->epochs = best_epoch;
	return ISRF_OK;
}
