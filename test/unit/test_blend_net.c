/*
 * test_blend_net.c
 *	  Unit tests of model/blend_net.c: the forward pass against a hand
 *	  computation, the explicit backward pass against central differences of
 *	  the list loss, and the fit: kept on lists whose target follows an
 *	  interaction of two inputs that no weighted sum can express (and then
 *	  better on lists it never saw), left out on lists whose target is
 *	  independent of the inputs, deterministic, and empty on degenerate data.
 */
#include "model/blend_net.h"
#include "eval/metrics.h"
#include "unit.h"

#include <string.h>

#define NF ISRF_BLEND_N_FEATURES
#define NH ISRF_BLEND_HIDDEN

static IsrfEnv env;

/* A network with every parameter drawn from the seed. */
static void
random_net(IsrfBlendNet *net, unsigned long long seed)
{
	int			f,
				h;

	for (f = 0; f < NF; f++)
	{
		net->mean[f] = 0.3f * unit_rand_uniform(&seed);
		net->inv_sd[f] = 1.0f + 0.5f * unit_rand_uniform(&seed);
	}
	for (h = 0; h < NH; h++)
	{
		for (f = 0; f < NF; f++)
			net->w1[h][f] = unit_rand_uniform(&seed);
		net->b1[h] = 0.5f * unit_rand_uniform(&seed);
		net->w2[h] = unit_rand_uniform(&seed);
	}
}

static void
test_forward(void)
{
	IsrfBlendNet net;
	float		x[NF];
	double		want = 0.0;
	int			f,
				h;

	memset(&net, 0, sizeof(net));
	for (f = 0; f < NF; f++)
		x[f] = (float) (f + 1);
	CHECK(!isrf_blend_net_active(&net) && isrf_blend_net_forward(&net, x) == 0.0);
	random_net(&net, 3);
	CHECK(isrf_blend_net_active(&net) && isrf_blend_net_finite(&net));
	for (h = 0; h < NH; h++)
	{
		double		a = net.b1[h];

		for (f = 0; f < NF; f++)
			a += (double) net.w1[h][f] * ((double) x[f] - net.mean[f]) * net.inv_sd[f];
		want += net.w2[h] * tanh(a);
	}
	CHECK_NEAR(isrf_blend_net_forward(&net, x), want, 1e-9);
	/* an input read with inv_sd 0 does not matter */
	net.inv_sd[2] = 0.0f;
	{
		double		a = isrf_blend_net_forward(&net, x);

		x[2] = 1e6f;
		CHECK(isrf_blend_net_forward(&net, x) == a);
		/* nor does an infinite or NaN value there (a hostile model's words) */
		x[2] = INFINITY;
		CHECK(isrf_blend_net_forward(&net, x) == a);
		x[2] = NAN;
		CHECK(isrf_blend_net_forward(&net, x) == a);
	}
	net.b1[1] = NAN;
	CHECK(!isrf_blend_net_finite(&net));
}

/* Lists of n_cand candidates with random inputs in [-1, 1]. */
typedef struct Lists
{
	int32_t		n,
				n_cand;
	float	   *x;
	double	   *base;
	int32_t    *target;
} Lists;

/*
 * Draw n lists; the target of each is the candidate with the largest
 * 3 * x0 * x1 + noise (interaction true) or a uniform pick (false); base is
 * 0.5 * x2, a weighted sum that knows nothing of the target either way.
 */
static void
make_lists(Lists *l, int32_t n, int32_t n_cand, bool interaction, unsigned long long seed)
{
	int32_t		i,
				c,
				f;

	l->n = n;
	l->n_cand = n_cand;
	l->x = malloc(sizeof(float) * n * n_cand * NF);
	l->base = malloc(sizeof(double) * n * n_cand);
	l->target = malloc(sizeof(int32_t) * n);
	for (i = 0; i < n; i++)
	{
		double		best = -INFINITY;

		for (c = 0; c < n_cand; c++)
		{
			float	   *x = l->x + ((size_t) i * n_cand + c) * NF;
			double		u;

			for (f = 0; f < NF; f++)
				x[f] = unit_rand_uniform(&seed);
			l->base[(size_t) i * n_cand + c] = 0.5 * x[2];
			u = interaction ? 3.0 * x[0] * x[1] + 0.3 * unit_rand_uniform(&seed) : unit_rand_uniform(&seed);
			if (u > best)
			{
				best = u;
				l->target[i] = c;
			}
		}
	}
}

static void
free_lists(Lists *l)
{
	free(l->x);
	free(l->base);
	free(l->target);
}

static IsrfBlendData
lists_data(const Lists *l)
{
	IsrfBlendData d;

	d.n_lists = l->n;
	d.n_cand = l->n_cand;
	d.x = l->x;
	d.base = l->base;
	d.target = l->target;
	return d;
}

/* The explicit gradient against central differences of the list loss. */
static void
test_gradient(void)
{
	Lists		l;
	IsrfBlendData d;
	IsrfBlendNet net,
				g,
				dummy;
	double	   *scratch;
	float	   *p = &net.w1[0][0];
	const float *pg = &g.w1[0][0];
	int			np = NH * NF + 2 * NH,
				k,
				worst_k = -1;
	double		worst = 0.0;

	make_lists(&l, 3, 7, true, 5);
	d = lists_data(&l);
	scratch = malloc(sizeof(double) * ISRF_BLEND_SCRATCH(7));
	random_net(&net, 9);
	memset(&g, 0, sizeof(g));
	memset(&dummy, 0, sizeof(dummy));
	(void) isrf_blend_net_list_grad(&net, &d, 1, scratch, &g);
	for (k = 0; k < np; k++)
	{
		float		keep = p[k];
		double		lp,
					lm,
					num;

		p[k] = keep + 1e-3f;
		lp = isrf_blend_net_list_grad(&net, &d, 1, scratch, &dummy);
		p[k] = keep - 1e-3f;
		lm = isrf_blend_net_list_grad(&net, &d, 1, scratch, &dummy);
		p[k] = keep;
		num = (lp - lm) / ((double) (keep + 1e-3f) - (double) (keep - 1e-3f));
		if (fabs(num - pg[k]) > worst)
		{
			worst = fabs(num - pg[k]);
			worst_k = k;
		}
	}
	CHECK_MSG(worst < 2e-4, "parameter %d: gradient off by %g", worst_k, worst);
	/* the loss is the target's -log share */
	{
		IsrfBlendNet zero;
		double		loss;

		memset(&zero, 0, sizeof(zero));
		loss = isrf_blend_net_list_grad(&zero, &d, 0, scratch, &dummy);
		{
			double		z = 0.0;
			int32_t		c;

			for (c = 0; c < 7; c++)
				z += exp(l.base[c]);
			CHECK_NEAR(loss, log(z) - l.base[l.target[0]], 1e-12);
		}
	}
	free(scratch);
	free_lists(&l);
}

/* Held-out NDCG@10 of lists under base, or base + net. */
static double
lists_ndcg(const Lists *l, const IsrfBlendNet *net)
{
	IsrfMetrics acc;
	double	   *sc = malloc(sizeof(double) * l->n_cand);
	int32_t		i,
				c;

	memset(&acc, 0, sizeof(acc));
	for (i = 0; i < l->n; i++)
	{
		for (c = 0; c < l->n_cand; c++)
		{
			size_t		k = (size_t) i * l->n_cand + c;

			sc[c] = l->base[k] + (net ? isrf_blend_net_forward(net, l->x + k * NF) : 0.0);
		}
		isrf_metrics_add(&acc, isrf_direct_rank(sc, NULL, l->n_cand, l->target[i], false));
	}
	free(sc);
	return isrf_metrics_mean(&acc).ndcg10;
}

static void
test_fit(void)
{
	Lists		fit,
				fresh,
				noise;
	IsrfBlendData d;
	IsrfBlendNet net,
				again;
	IsrfBlendReport rep;
	double		before,
				after;

	/* the target follows x0 * x1: kept, and better on lists it never saw */
	make_lists(&fit, 1500, 20, true, 21);
	make_lists(&fresh, 400, 20, true, 22);
	d = lists_data(&fit);
	CHECK(isrf_blend_net_fit(&env, &d, 30, &net, &rep) == ISRF_OK);
	CHECK_MSG(rep.epochs >= 1 && rep.epochs <= 30 && rep.epochs == rep.best_epoch, "epochs %d", rep.epochs);
	CHECK(isrf_blend_net_active(&net) && isrf_blend_net_finite(&net));
	CHECK_MSG(rep.held_net_ndcg10 > rep.held_sum_ndcg10 + 0.2, "held out %.4f vs %.4f",
			  rep.held_net_ndcg10, rep.held_sum_ndcg10);
	CHECK_NEAR(rep.held_gain, rep.held_net_ndcg10 - rep.held_sum_ndcg10, 1e-9);
	CHECK(rep.held_gain > 2.0 * rep.held_gain_se && rep.held_gain_se > 0.0);
	before = lists_ndcg(&fresh, NULL);
	after = lists_ndcg(&fresh, &net);
	CHECK_MSG(after > before + 0.2, "fresh lists: NDCG@10 %.4f with, %.4f without", after, before);
	/* the standardisation is of the inputs it was fitted on (uniform on [-1, 1]) */
	CHECK(fabsf(net.mean[0]) < 0.05f && fabsf(net.inv_sd[0] - 1.732f) < 0.1f);

	/* deterministic */
	CHECK(isrf_blend_net_fit(&env, &d, 30, &again, &rep) == ISRF_OK);
	CHECK(memcmp(&net, &again, sizeof(net)) == 0);

	/* a target independent of the inputs: left out (all zero), its gain within the noise */
	make_lists(&noise, 600, 20, false, 23);
	d = lists_data(&noise);
	CHECK(isrf_blend_net_fit(&env, &d, 5, &net, &rep) == ISRF_OK);
	CHECK_MSG(rep.epochs == 0 && !isrf_blend_net_active(&net), "kept for %d epochs on noise (%.4f vs %.4f)",
			  rep.epochs, rep.held_net_ndcg10, rep.held_sum_ndcg10);
	CHECK(rep.held_gain <= 2.0 * rep.held_gain_se);

	/* nothing to judge by: one list, one candidate, no epochs */
	d = lists_data(&fit);
	d.n_lists = 1;
	CHECK(isrf_blend_net_fit(&env, &d, 10, &net, &rep) == ISRF_OK && !isrf_blend_net_active(&net));
	d.n_lists = 1500;
	d.n_cand = 1;
	CHECK(isrf_blend_net_fit(&env, &d, 10, &net, &rep) == ISRF_OK && !isrf_blend_net_active(&net));
	d = lists_data(&fit);
	CHECK(isrf_blend_net_fit(&env, &d, 0, &net, &rep) == ISRF_OK && !isrf_blend_net_active(&net));
	/* a target outside its list is refused */
	fit.target[7] = 20;
	CHECK(isrf_blend_net_fit(&env, &d, 10, &net, &rep) == ISRF_ERR_INVALID && !isrf_blend_net_active(&net));
	fit.target[7] = -1;
	CHECK(isrf_blend_net_fit(&env, &d, 10, &net, &rep) == ISRF_ERR_INVALID);
	free_lists(&fit);
	free_lists(&fresh);
	free_lists(&noise);
}

int
main(void)
{
	isrf_env_init_malloc(&env);
	test_forward();
	test_gradient();
	test_fit();
	UNIT_END("test_blend_net");
}
