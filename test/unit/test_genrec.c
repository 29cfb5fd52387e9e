/*
 * test_genrec.c
 *	  The generative recommender: finite-difference gradient checks of every
 *	  part (adapter, LightGCN item projection, interest projections, code
 *	  decoder, tied dense head, InfoNCE wiring, transformer) on a tiny model,
 *	  ablation switches, no leak of user-level vectors, determinism, overfitting a tiny
 *	  synthetic data set, and the inference pieces against the training code.
 */
#include "model/genrec.h"
#include "train/config.h"
#include "support/genrec_hooks.h"
#include "nn/layers.h"
#include "data/synthetic.h"
#include "unit.h"
#include "genrec_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
tiny_config(IsrfGenrecConfig *c)
{
	IsrfTrainConfig defaults;

	isrf_train_config_default(&defaults);
	*c = defaults.gen;
	c->d_model = 8;
	c->tf_layers = 1;
	c->n_heads = 2;
	c->max_len = 6;
	c->batch_size = 8;
	c->epochs = 0;
	c->refit_epochs = 0;		/* check_refit turns it on */
	c->dropout = 0.0f;
	c->semid_levels = 2;
	c->semid_codebook = 4;
	c->lambda1 = 0.5f;
	c->lambda2 = 0.5f;
	c->use_explicit = true;	/* every part on (both off by default) */
	c->use_group_interest = true;
	c->tau = 0.5f;
	c->use_prior = false;
	c->seed = 7;
}

/*
 * Central differences of the batch loss against the analytic gradient for a
 * few coordinates of each named tensor.
 */
static void
check_gradients(IsrfEnv *env, IsrfBackend *be, TestData *t, const IsrfGenrecConfig *cfg,
				const char *label)
{
	static const char *names[] = {"item_emb", "ad_w1", "ad_b1", "ad_w2", "ad_b2", "ex_w",
		"pu_w", "pu_b", "pg_w", "pg_b", "cemb0", "cemb1", "dec_w0", "dec_w1", "dec_w2",
	"dec_b2", "word_emb", "tf", NULL};
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	int32_t		users[8];
	int32_t		nb = 0,
				u,
				k;
	double		base;
	unsigned long long rs = 99;

	CHECK(isrf_genrec_train(env, be, &t->d, cfg, NULL, NULL, &g) == ISRF_OK);
	/* move the weights off their initial values so every path carries signal */
	{
		size_t		i;

		for (i = 0; i < g.n_params; i++)
			g.params[i] += 0.1f * unit_rand_uniform(&rs);
		for (i = 0; i < g.n_tf_params; i++)
			g.tf_params[i] += 0.05f * unit_rand_uniform(&rs);
	}
	CHECK(isrf_genrec_test_session(env, be, &t->d, &g, &s) == ISRF_OK);
	for (u = 0; u < t->d.n_users && nb < 8; u++)
		if (t->d.n_train[u] >= 2)
			users[nb++] = u;
	CHECK(isrf_genrec_test_loss(s, nb, users, 5, &base) == ISRF_OK);
	CHECK(isfinite(base) && base > 0.0);
	for (k = 0; names[k]; k++)
	{
		float	   *w,
				   *gr;
		size_t		n,
					j;
		float	   *ana;
		int			bad = 0,
					tried = 0;
		double		worst = 0.0;

		if (!isrf_genrec_test_tensor(s, names[k], &w, &gr, &n))
			continue;
		ana = malloc(sizeof(float) * n);
		CHECK(isrf_genrec_test_loss(s, nb, users, 5, &base) == ISRF_OK);
		memcpy(ana, gr, sizeof(float) * n);
		for (j = 0; j < n && tried < 12; j += 1 + n / 12)
		{
			float		keep = w[j],
						h = 1e-2f;
			double		lp,
						lm,
						fd,
						err;

			w[j] = keep + h;
			CHECK(isrf_genrec_test_loss(s, nb, users, 5, &lp) == ISRF_OK);
			w[j] = keep - h;
			CHECK(isrf_genrec_test_loss(s, nb, users, 5, &lm) == ISRF_OK);
			w[j] = keep;
			fd = (lp - lm) / (2.0 * h);
			err = fabs(fd - ana[j]);
			if (err > worst)
				worst = err;
			if (err > 2e-3 + 3e-2 * fabs(fd))
				bad++;
			tried++;
		}
		CHECK_MSG(bad == 0, "%s: gradient of %s off in %d of %d coordinates (worst %g)",
				  label, names[k], bad, tried, worst);
		free(ana);
	}
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, &g);
}

/*
 * lambda1 = InfoNCE(g_u, stop-grad e_u): switching it on changes the group
 * projection's gradient and leaves the explicit projection's alone.
 */
static void
check_stop_gradient(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfGenrecSession *s0 = NULL,
			   *s1 = NULL;
	int32_t		users[4] = {0, 1, 2, 3};
	double		l0,
				l1;
	float	   *w,
			   *g0,
			   *g1;
	size_t		n,
				n1;

	tiny_config(&c);
	c.lambda1 = 0.0f;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(isrf_genrec_test_session(env, be, &t->d, &g, &s0) == ISRF_OK);
	g.cfg.lambda1 = 0.5f;
	CHECK(isrf_genrec_test_session(env, be, &t->d, &g, &s1) == ISRF_OK);
	CHECK(isrf_genrec_test_loss(s0, 4, users, 1, &l0) == ISRF_OK);
	CHECK(isrf_genrec_test_loss(s1, 4, users, 1, &l1) == ISRF_OK);
	CHECK(l1 > l0);
	CHECK(isrf_genrec_test_tensor(s0, "pu_w", &w, &g0, &n) && isrf_genrec_test_tensor(s1, "pu_w", &w, &g1, &n1));
	CHECK(n == n1 && memcmp(g0, g1, n * 4) == 0);
	CHECK(isrf_genrec_test_tensor(s0, "pg_w", &w, &g0, &n) && isrf_genrec_test_tensor(s1, "pg_w", &w, &g1, &n1));
	CHECK(unit_max_abs_diff(g0, g1, n) > 1e-6);
	isrf_genrec_session_close(s0);
	isrf_genrec_session_close(s1);
	isrf_genrec_free(env, &g);
}

/* Every coordinate of a tensor's gradient is exactly zero. */
static bool
grad_all_zero(IsrfGenrecSession *s, const char *name)
{
	float	   *w,
			   *g;
	size_t		n,
				i;

	if (!isrf_genrec_test_tensor(s, name, &w, &g, &n))
		return true;
	for (i = 0; i < n; i++)
		if (g[i] != 0.0f)
			return false;
	return true;
}

/* Switched-off parts get no gradient; switched-on parts do. */
static void
check_switches(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	int32_t		users[4] = {0, 1, 2, 3};
	double		loss;

	tiny_config(&c);
	c.use_group_interest = false;
	c.use_adapter = false;
	c.use_generative = false;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(g.levels == 0 && g.codes == NULL);
	CHECK(isrf_genrec_test_session(env, be, &t->d, &g, &s) == ISRF_OK);
	CHECK(isrf_genrec_test_loss(s, 4, users, 1, &loss) == ISRF_OK);
	CHECK(grad_all_zero(s, "pg_w") && grad_all_zero(s, "ad_w1") && grad_all_zero(s, "ad_w2"));
	CHECK(!grad_all_zero(s, "item_emb") && !grad_all_zero(s, "pu_w") && !grad_all_zero(s, "ex_w"));
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, &g);

	/* without the alignment the group projection still learns through the fused state */
	tiny_config(&c);
	c.use_explicit = false;
	c.lambda1 = 0.0f;
	c.lambda2 = 0.0f;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(isrf_genrec_test_session(env, be, &t->d, &g, &s) == ISRF_OK);
	CHECK(isrf_genrec_test_loss(s, 4, users, 1, &loss) == ISRF_OK);
	CHECK(grad_all_zero(s, "pu_w") && grad_all_zero(s, "ex_w"));
	CHECK(!grad_all_zero(s, "pg_w") && !grad_all_zero(s, "dec_w0") && !grad_all_zero(s, "cemb0"));
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, &g);
}

/* Inference pieces agree with each other and with plain references. */
static void
check_inference(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	float		h[2 * 8],
				all[2 * 64],
				cs[3];
	int32_t		users[2] = {0, 3},
				lens[2],
				cand[3] = {2, -1, 5},
				ranks[2],
				tg[2],
				nin[2],
				i,
				j;
	const int32_t *hist[2];

	tiny_config(&c);
	c.epochs = 2;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(g.epochs_run >= 1 && g.best_epoch >= 1);
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	for (i = 0; i < 2; i++)
	{
		hist[i] = t->seq + t->seq_ptr[users[i]];
		lens[i] = t->n_train[users[i]];
		nin[i] = lens[i];
		tg[i] = hist[i][lens[i]];
	}
	CHECK(isrf_genrec_encode(s, 2, users, hist, lens, h) == ISRF_OK);
	CHECK(isrf_genrec_dense_scores(s, 2, h, all) == ISRF_OK);
	CHECK(isrf_genrec_dense_candidates(s, h + 8, 3, cand, cs) == ISRF_OK);
	CHECK_NEAR(cs[0], all[t->d.n_items + 2], 1e-5);
	CHECK(isnan(cs[1]));
	CHECK_NEAR(cs[2], all[t->d.n_items + 5], 1e-5);
	/* encoding one user alone gives the same state as in a batch */
	{
		float		h1[8];

		CHECK(isrf_genrec_encode(s, 1, users + 1, hist + 1, lens + 1, h1) == ISRF_OK);
		CHECK(unit_max_abs_diff(h1, h + 8, 8) < 1e-5);
	}
	/* rank_targets against a plain count over the dense scores */
	CHECK(isrf_genrec_rank_targets(s, 2, users, nin, tg, ranks) == ISRF_OK);
	for (i = 0; i < 2; i++)
	{
		const float *sc = all + (size_t) i * t->d.n_items;
		int32_t		r = 0,
					q;

		for (j = 0; j < t->d.n_items; j++)
		{
			bool		inhist = false;

			for (q = 0; q < nin[i]; q++)
				inhist |= hist[i][q] == j;
			if (!inhist && (sc[j] > sc[tg[i]] || (sc[j] == sc[tg[i]] && j < tg[i])))
				r++;
		}
		CHECK_MSG(ranks[i] == r, "rank %d vs %d", ranks[i], r);
	}
	/* code log-probabilities are normalised */
	{
		const float *rows[2] = {h, h + 8};
		int32_t		prefix[2] = {0, 1};
		float		lp[2 * 64];
		double		sum = 0.0;

		CHECK(isrf_genrec_code_logp(s, 1, 2, rows, prefix, lp) == ISRF_OK);
		for (j = 0; j < g.codebook_sizes[1]; j++)
			sum += exp(lp[g.codebook_sizes[1] + j]);
		CHECK_NEAR(sum, 1.0, 1e-4);
		CHECK(isrf_genrec_code_logp(s, g.levels, 2, rows, prefix, lp) == ISRF_ERR_INVALID);
	}
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, &g);
}

/*
 * No user-level vector computed from all train items reaches the model: the
 * state after a history does not move when the user's own feature, explicit
 * vector or group vector change (the group interest leaves the user out and
 * queries with the history), but does when a neighbour's group vector does.
 */
static void
check_no_leak(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	float		h0[8],
				h1[8],
				h2[8];
	int32_t		u = 1,
				len = 3,
				v,
				dm = t->d.dm,
				j;
	const int32_t *hist = t->seq + t->seq_ptr[u];
	float	   *save = malloc(sizeof(float) * 3 * dm);

	tiny_config(&c);
	c.epochs = 1;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, h0) == ISRF_OK);
	isrf_genrec_session_close(s);
	memcpy(save, t->user_feat + (size_t) u * dm, sizeof(float) * dm);
	memcpy(save + dm, t->user_exp + (size_t) u * dm, sizeof(float) * dm);
	memcpy(save + 2 * dm, t->user_grp + (size_t) u * dm, sizeof(float) * dm);
	for (j = 0; j < dm; j++)
	{
		t->user_feat[(size_t) u * dm + j] = 10.0f * (j + 1);
		t->user_exp[(size_t) u * dm + j] = -7.0f;
		t->user_grp[(size_t) u * dm + j] = 5.0f;
	}
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, h1) == ISRF_OK);
	isrf_genrec_session_close(s);
	CHECK(memcmp(h0, h1, sizeof(h0)) == 0);
	memcpy(t->user_feat + (size_t) u * dm, save, sizeof(float) * dm);
	memcpy(t->user_exp + (size_t) u * dm, save + dm, sizeof(float) * dm);
	memcpy(t->user_grp + (size_t) u * dm, save + 2 * dm, sizeof(float) * dm);
	/* every other user's group vector moved: the state moves */
	for (v = 0; v < t->d.n_users; v++)
		if (v != u)
			for (j = 0; j < dm; j++)
				t->user_grp[(size_t) v * dm + j] += 1.0f;
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, h2) == ISRF_OK);
	isrf_genrec_session_close(s);
	CHECK(unit_max_abs_diff(h0, h2, 8) > 1e-4);
	for (v = 0; v < t->d.n_users; v++)
		if (v != u)
			for (j = 0; j < dm; j++)
				t->user_grp[(size_t) v * dm + j] -= 1.0f;
	isrf_genrec_free(env, &g);
	free(save);
}

/*
 * The transition prior: beta comes from the grid, and the ranking score of
 * rank_targets is the dense score plus what prior_add adds.
 */
static void
check_prior(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	float		h[8],
				all[64],
				plain[64];
	int32_t		u = 2,
				len,
				tg,
				rank,
				r = 0,
				j,
				q;
	const int32_t *hist;

	tiny_config(&c);
	c.epochs = 2;
	c.use_prior = true;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(g.weights.prior == 0.0f ||
		  (g.weights.prior >= 1.0f && g.weights.prior <= 256.0f &&
		   exp2f(roundf(log2f(g.weights.prior))) == g.weights.prior));
	g.weights.prior = 4.0f;		/* make sure the prior is exercised */
	memset(&g.weights.net, 0, sizeof(g.weights.net));
	g.weights.prior_direct = 0.0f;
	g.weights.pop_direct = 0.0f;
	g.weights.recent_direct = 0.0f;
	g.weights.content_direct = 0.0f;
	g.weights.text = 0.0f;
	g.weights.text_direct = 0.0f;
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	hist = t->seq + t->seq_ptr[u];
	len = t->n_train[u];
	tg = hist[len];
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, h) == ISRF_OK);
	CHECK(isrf_genrec_dense_scores(s, 1, h, plain) == ISRF_OK);
	memcpy(all, plain, sizeof(float) * t->d.n_items);
	CHECK(isrf_genrec_score_terms(s, -1, hist, len, t->d.n_items, NULL, false, all) == ISRF_OK);
	/* the prior is a transition score: the item after the last input item gains */
	CHECK(unit_max_abs_diff(all, plain, t->d.n_items) > 0.0);
	CHECK(isrf_genrec_rank_targets(s, 1, &u, &len, &tg, &rank) == ISRF_OK);
	for (j = 0; j < t->d.n_items; j++)
	{
		bool		inhist = false;

		for (q = 0; q < len; q++)
			inhist |= hist[q] == j;
		if (!inhist && (all[j] > all[tg] || (all[j] == all[tg] && j < tg)))
			r++;
	}
	CHECK_MSG(rank == r, "rank %d vs %d", rank, r);
	/* candidates get the same addition */
	{
		int32_t		cand[3] = {tg, -1, 0};
		float		cs[3];

		CHECK(isrf_genrec_dense_candidates(s, h, 3, cand, cs) == ISRF_OK);
		CHECK(isrf_genrec_score_terms(s, -1, hist, len, 3, cand, false, cs) == ISRF_OK);
		CHECK_NEAR(cs[0], all[tg], 1e-5);
		CHECK(isnan(cs[1]));
		CHECK_NEAR(cs[2], all[0], 1e-5);
		/* the direct beta (0 here) leaves the dense scores alone */
		CHECK(isrf_genrec_dense_candidates(s, h, 3, cand, cs) == ISRF_OK);
		CHECK(isrf_genrec_score_terms(s, -1, hist, len, 3, cand, true, cs) == ISRF_OK);
		CHECK(cs[0] == plain[tg] || fabsf(cs[0] - plain[tg]) < 1e-5);
	}
	isrf_genrec_session_close(s);

	/*
	 * the direct terms: gamma * log(1 + train count) + rho * log(1 + sum of
	 * ISRF_RECENT_DECAY^(steps from the train history's end)) + delta *
	 * cosine(profile, item)
	 */
	g.weights.prior = 0.0f;
	/* full ranking adds the group's term, zero for a user the model does not know */
	g.weights.group = 1.0f;
	g.weights.prior_direct = 0.0f;
	g.weights.pop_direct = 0.5f;
	g.weights.recent_direct = 0.75f;
	g.weights.content_direct = 2.0f;
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	{
		int32_t		cand[2] = {tg, 7};
		float		cs[2],
					base[2],
					full[2];
		double		prof[6] = {0},
					pn = 0.0,
					rec[2];
		int32_t		k,
					dm = t->d.dm;

		CHECK(isrf_genrec_dense_candidates(s, h, 2, cand, base) == ISRF_OK);
		memcpy(cs, base, sizeof(cs));
		CHECK(isrf_genrec_score_terms(s, -1, hist, len, 2, cand, true, cs) == ISRF_OK);
		for (q = 0; q < len; q++)
		{
			const float *x = t->item_exp + (size_t) hist[q] * dm;
			double		nx = 0.0;

			for (k = 0; k < dm; k++)
				nx += (double) x[k] * x[k];
			for (k = 0; k < dm; k++)
				prof[k] += x[k] / sqrt(nx);
		}
		for (k = 0; k < dm; k++)
			pn += prof[k] * prof[k];
		for (j = 0; j < 2; j++)
		{
			const float *x = t->item_exp + (size_t) cand[j] * dm;
			double		nx = 0.0,
						dot = 0.0,
						recent = 0.0;
			int32_t		cnt = 0,
						uu,
						pp;

			for (k = 0; k < dm; k++)
			{
				nx += (double) x[k] * x[k];
				dot += prof[k] * x[k];
			}
			for (uu = 0; uu < t->d.n_users; uu++)
				for (pp = 0; pp < t->n_train[uu]; pp++)
					if (t->seq[t->seq_ptr[uu] + pp] == cand[j])
					{
						cnt++;
						recent += pow(ISRF_RECENT_DECAY, t->n_train[uu] - 1 - pp);
					}
			/*
			 * in this data both candidates are in some train history before
			 * its last item, so recent(i) differs from the count's log
			 */
			CHECK(recent > 0.0 && recent < (double) cnt);
			CHECK_NEAR(cs[j] - base[j], 0.5 * log1p((double) cnt) + 0.75 * log1p(recent) +
					   2.0 * dot / sqrt(nx * pn), 1e-4);
			rec[j] = log1p(recent);
		}
		/* none of them is a term of full ranking (which runs for the group's weight) */
		memcpy(full, base, sizeof(full));
		CHECK(isrf_genrec_score_terms(s, -1, hist, len, 2, cand, false, full) == ISRF_OK);
		CHECK(full[0] == base[0] && full[1] == base[1]);
		isrf_genrec_session_close(s);

		/* recent popularity alone is added too */
		g.weights.pop_direct = 0.0f;
		g.weights.content_direct = 0.0f;
		CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
		memcpy(cs, base, sizeof(cs));
		CHECK(isrf_genrec_score_terms(s, -1, hist, len, 2, cand, true, cs) == ISRF_OK);
		for (j = 0; j < 2; j++)
			CHECK_NEAR(cs[j] - base[j], 0.75 * rec[j], 1e-5);
	}
	isrf_genrec_session_close(s);

	/*
	 * the text term: the cosine between the candidate's semantic feature and
	 * the recent items' (the j-th most recent weighted ISRF_TEXT_DECAY^j),
	 * the same on candidate lists and in full ranking
	 */
	g.weights.prior = 0.0f;
	g.weights.pop_direct = 0.0f;
	g.weights.recent_direct = 0.0f;
	g.weights.content_direct = 0.0f;
	g.weights.text = 1.5f;
	g.weights.text_direct = 1.5f;
	CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
	{
		int32_t		cand[3] = {tg, 7, -1};
		float		cs[3],
					base[3];
		double		prof[6] = {0},
					pn = 0.0,
					w = 1.0;
		int32_t		k,
					dm = t->d.dm;

		CHECK(dm <= 6);
		CHECK(isrf_genrec_dense_candidates(s, h, 3, cand, base) == ISRF_OK);
		memcpy(cs, base, sizeof(cs));
		CHECK(isrf_genrec_score_terms(s, -1, hist, len, 3, cand, true, cs) == ISRF_OK);
		for (q = len - 1; q >= 0 && q >= len - ISRF_TEXT_WINDOW; q--)
		{
			const float *x = t->d.item_feat + (size_t) hist[q] * dm;
			double		nx = 0.0;

			for (k = 0; k < dm; k++)
				nx += (double) x[k] * x[k];
			for (k = 0; k < dm; k++)
				prof[k] += w * x[k] / sqrt(nx);
			w *= ISRF_TEXT_DECAY;
		}
		for (k = 0; k < dm; k++)
			pn += prof[k] * prof[k];
		for (j = 0; j < 2; j++)
		{
			const float *x = t->d.item_feat + (size_t) cand[j] * dm;
			double		nx = 0.0,
						dot = 0.0;

			for (k = 0; k < dm; k++)
			{
				nx += (double) x[k] * x[k];
				dot += prof[k] * x[k];
			}
			CHECK_NEAR(cs[j] - base[j], 1.5 * dot / sqrt(nx * pn), 1e-4);
			/* full ranking adds the same */
			memcpy(all, plain, sizeof(float) * t->d.n_items);
			CHECK(isrf_genrec_score_terms(s, -1, hist, len, t->d.n_items, NULL, false, all) == ISRF_OK);
			CHECK_NEAR(all[cand[j]] - plain[cand[j]], 1.5 * dot / sqrt(nx * pn), 1e-4);
		}
		CHECK(isnan(cs[2]));
	}
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, &g);
}

/*
 * The blend network on candidate lists: what serving adds is net(x) of the
 * terms as the weights' choice computes them to fit it (the scorer's own
 * functions, one by one), beside the weighted sum, for a user the model
 * knows (the group term counts) and one it does not; full ranking does not
 * get it.
 */
/*
 * Word embeddings (use_word_emb): the vocabulary is the text's used
 * columns; their gradient passes the finite-difference check with every
 * other part; each item's token gains its row, scaled to unit length, times
 * the words' embeddings (the table with and without them); an item without
 * words gains nothing; without text or with the key off there are none.
 */
static void
check_word_emb(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfCsr		txt;
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	int32_t		ni = t->d.n_items,
				used = 0,
				bad = 0,
				i,
				p,
				k;
	int32_t    *word;
	float	   *with,
			   *without,
			   *wr,
			   *w,
			   *gr;
	size_t		n = 0,
				C;
	unsigned long long rs = 5;

	test_data_text(ni, &txt);
	word = malloc(sizeof(int32_t) * (txt.n_cols + 1));
	for (k = 0; k < txt.n_cols; k++)
		word[k] = -1;
	for (p = 0; p < txt.nnz; p++)
		word[txt.col[p]] = 0;
	for (k = 0; k < txt.n_cols; k++)
		if (word[k] == 0)
			word[k] = used++;
	t->d.item_text = &txt;
	tiny_config(&c);
	c.lambda1 = 0.0f;
	c.use_word_emb = true;
	check_gradients(env, be, t, &c, "word embeddings");
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK_MSG(g.n_words == used, "%d words, the text uses %d", g.n_words, used);
	CHECK(isrf_genrec_test_session(env, be, &t->d, &g, &s) == ISRF_OK);
	CHECK(isrf_genrec_test_tensor(s, "word_emb", &w, &gr, &n) && n == (size_t) used * c.d_model);
	C = (size_t) c.d_model;
	for (k = 0; (size_t) k < n; k++)
		w[k] = (float) unit_rand_uniform(&rs);
	wr = malloc(sizeof(float) * n);
	memcpy(wr, w, sizeof(float) * n);
	with = malloc(sizeof(float) * ni * C);
	without = malloc(sizeof(float) * ni * C);
	CHECK(isrf_genrec_test_table(s, with) == ISRF_OK);
	memset(w, 0, sizeof(float) * n);
	CHECK(isrf_genrec_test_table(s, without) == ISRF_OK);
	for (i = 0; i < ni; i++)
	{
		double		ss = 0.0;

		for (p = txt.rowptr[i]; p < txt.rowptr[i + 1]; p++)
			ss += (double) txt.val[p] * txt.val[p];
		for (k = 0; (size_t) k < C; k++)
		{
			double		e = 0.0,
						got = (double) with[i * C + k] - without[i * C + k];

			for (p = txt.rowptr[i]; p < txt.rowptr[i + 1]; p++)
				e += txt.val[p] / sqrt(ss) * wr[(size_t) word[txt.col[p]] * C + k];
			if (fabs(got - e) > 1e-5 || (txt.rowptr[i] == txt.rowptr[i + 1] && got != 0.0))
				bad++;
		}
	}
	CHECK_MSG(bad == 0, "word embeddings: %d table entries are not the words' weighted mean", bad);
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, &g);
	t->d.item_text = NULL;
	/* without text, or with the key off, there are none */
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(g.n_words == 0);
	isrf_genrec_free(env, &g);
	t->d.item_text = &txt;
	c.use_word_emb = false;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	CHECK(g.n_words == 0);
	isrf_genrec_free(env, &g);
	t->d.item_text = NULL;
	free(word);
	free(wr);
	free(with);
	free(without);
	test_data_text_free(&txt);
}

/* The dot product of rows a and b of m (dense, by brute force). */
static double
text_dot(const IsrfCsr *m, int32_t a, int32_t b)
{
	double		s = 0.0;
	int32_t		p,
				q;

	for (p = m->rowptr[a]; p < m->rowptr[a + 1]; p++)
		for (q = m->rowptr[b]; q < m->rowptr[b + 1]; q++)
			if (m->col[p] == m->col[q])
				s += (double) m->val[p] * m->val[q];
	return s;
}

/*
 * The relations (scorer.h) against their definitions computed by brute
 * force from the histories and the text rows, for every user's train
 * history and every item, unknown ones included; read in blocks after one
 * preparation they are the same.
 */
static void
check_relations(IsrfEnv *env, TestData *t)
{
	IsrfScorer	scr;
	IsrfCsr		txt;
	int32_t		ni = t->d.n_items,
				nc = ni + 3,
			   *cand = malloc(sizeof(int32_t) * (ni + 3)),
			   *pop = calloc(ni, sizeof(int32_t)),
				u,
				i;
	float	   *buf = malloc(sizeof(float) * 8 * (ni + 3));
	IsrfRelations rel = {buf, buf + nc, buf + 2 * nc, buf + 3 * nc},
				rel2 = {buf + 4 * nc, buf + 5 * nc, buf + 6 * nc, buf + 7 * nc};
	int32_t		n_knn = 0,
				n_lex = 0;

	test_data_text(ni, &txt);
	for (i = 0; i < ni; i++)
		cand[i] = i;
	cand[ni] = -1;
	cand[ni + 1] = ni;
	cand[ni + 2] = 3;
	for (u = 0; u < t->d.n_users; u++)
		for (i = 0; i < t->n_train[u]; i++)
			pop[t->seq[t->seq_ptr[u] + i]]++;
	isrf_scorer_init(&scr, env, t->d.n_users, ni, t->d.dm, t->seq_ptr, t->seq, t->n_train,
					 t->item_exp, t->item_feat, &txt, NULL, NULL);
	CHECK(isrf_scorer_fit(&scr) == ISRF_OK);
	for (u = 0; u < t->d.n_users; u++)
	{
		const int32_t *h = t->seq + t->seq_ptr[u];
		int32_t		len = t->n_train[u] + 1;	/* the validation item too */

		CHECK(isrf_scorer_relations(&scr, h, len, nc, cand, &rel) == ISRF_OK);
		for (i = 0; i < nc; i++)
		{
			int32_t		b = cand[i],
						k,
						v,
						j;
			double		kmax = 0.0,
						lmax = 0.0,
						pdot = 0.0,
						pnorm2 = 0.0,
						w = 1.0;

			if (b < 0 || b >= ni)
			{
				CHECK(rel.knn_max[i] == 0.0f && rel.lex_profile[i] == 0.0f &&
					  rel.lex_last[i] == 0.0f && rel.lex_max[i] == 0.0f);
				continue;
			}
			/* co(a, b): users whose train items (all within the window) hold both */
			for (k = 0; k < len; k++)
			{
				int32_t		a = h[k],
							co = 0;

				if (a == b || pop[a] == 0)
					continue;
				for (v = 0; v < t->d.n_users; v++)
				{
					bool		ha = false,
								hb = false;

					for (j = 0; j < t->n_train[v]; j++)
					{
						ha |= t->seq[t->seq_ptr[v] + j] == a;
						hb |= t->seq[t->seq_ptr[v] + j] == b;
					}
					co += ha && hb;
				}
				if (co > 0 && co / sqrt((double) pop[a] * pop[b]) > kmax)
					kmax = co / sqrt((double) pop[a] * pop[b]);
			}
			CHECK_NEAR(rel.knn_max[i], kmax, 1e-6);
			n_knn += kmax > 0.0;
			/* the words: most recent first */
			for (k = len - 1; k >= 0; k--, w *= ISRF_TEXT_DECAY)
			{
				double		d = text_dot(&txt, h[k], b);

				if (d > lmax)
					lmax = d;
				pdot += w * d;
			}
			{
				double		w1 = 1.0,
							w2;

				for (k = len - 1; k >= 0; k--, w1 *= ISRF_TEXT_DECAY)
					for (j = len - 1, w2 = 1.0; j >= 0; j--, w2 *= ISRF_TEXT_DECAY)
						pnorm2 += w1 * w2 * text_dot(&txt, h[k], h[j]);
			}
			CHECK_NEAR(rel.lex_last[i], text_dot(&txt, h[len - 1], b), 1e-6);
			CHECK_NEAR(rel.lex_max[i], lmax, 1e-6);
			CHECK_NEAR(rel.lex_profile[i], pnorm2 > 0.0 ? pdot / sqrt(pnorm2) : 0.0, 1e-5);
			n_lex += lmax > 0.0;
		}
		/* prepared once, read in two blocks: the same */
		CHECK(isrf_scorer_relations_begin(&scr, h, len) == ISRF_OK);
		isrf_scorer_relations_get(&scr, 7, cand, &rel2);
		isrf_scorer_relations_get(&scr, nc - 7, cand + 7,
								  &(IsrfRelations) {rel2.knn_max + 7, rel2.lex_profile + 7,
													rel2.lex_last + 7, rel2.lex_max + 7});
		isrf_scorer_relations_end(&scr);
		CHECK(memcmp(rel.knn_max, rel2.knn_max, sizeof(float) * 4 * nc) == 0);
	}
	CHECK_MSG(n_knn > 10 && n_lex > 10, "%d co-occurring, %d sharing words", n_knn, n_lex);
	/* an empty history relates to nothing; without text, no lexical relations */
	CHECK(isrf_scorer_relations(&scr, t->seq, 0, nc, cand, &rel) == ISRF_OK);
	for (i = 0; i < 4 * nc; i++)
		CHECK(buf[i] == 0.0f);
	isrf_scorer_free(&scr);
	isrf_scorer_init(&scr, env, t->d.n_users, ni, t->d.dm, t->seq_ptr, t->seq, t->n_train,
					 t->item_exp, t->item_feat, NULL, NULL, NULL);
	CHECK(isrf_scorer_fit(&scr) == ISRF_OK);
	CHECK(isrf_scorer_relations(&scr, t->seq, t->n_train[0] + 1, nc, cand, &rel) == ISRF_OK);
	for (i = nc; i < 4 * nc; i++)
		CHECK(buf[i] == 0.0f);
	isrf_scorer_free(&scr);
	test_data_text_free(&txt);
	free(cand);
	free(pop);
	free(buf);
}

static void
check_blend_net(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	IsrfGenrecSession *s = NULL;
	IsrfScorer *scr;
	float		h[8];
	int32_t		users[2] = {2, -1},
				cand[4] = {0, 7, -1, 3},
				len,
				r,
				j,
				f,
				k;
	const int32_t *hist;
	unsigned long long rs = 11;
	IsrfCsr		grp;
	int32_t    *grp_ptr,
				grp_col[2] = {0, 1};
	float		grp_val[2] = {1.0f, 0.5f};
	IsrfCsr		txt;
	int32_t		rel_seen = 0,
				lex_seen = 0;

	tiny_config(&c);
	c.epochs = 2;
	c.use_prior = true;
	test_data_text(t->d.n_items, &txt);
	t->d.item_text = &txt;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &g) == ISRF_OK);
	/* a network with every weight set, and a weighted sum beside it */
	for (f = 0; f < ISRF_BLEND_N_FEATURES; f++)
	{
		g.weights.net.mean[f] = 0.1f * (float) f;
		g.weights.net.inv_sd[f] = 0.5f + 0.1f * (float) f;
	}
	for (k = 0; k < ISRF_BLEND_HIDDEN; k++)
	{
		for (f = 0; f < ISRF_BLEND_N_FEATURES; f++)
			g.weights.net.w1[k][f] = unit_rand_uniform(&rs);
		g.weights.net.b1[k] = 0.2f * unit_rand_uniform(&rs);
		g.weights.net.w2[k] = unit_rand_uniform(&rs);
	}
	g.weights.prior_direct = 2.0f;
	g.weights.prior_knn_direct = 0.5f;
	g.weights.pop_direct = 0.5f;
	g.weights.recent_direct = 0.0f;
	g.weights.content_direct = 1.0f;
	g.weights.group_direct = 1.0f;
	g.weights.text_direct = 0.5f;
	CHECK(isrf_blend_net_active(&g.weights.net) && isrf_blend_net_finite(&g.weights.net));
	/* a group graph: user 2's neighbours are users 0 and 1 */
	grp_ptr = calloc(t->d.n_users + 1, sizeof(int32_t));
	for (j = 3; j <= t->d.n_users; j++)
		grp_ptr[j] = 2;
	grp.n_rows = grp.n_cols = t->d.n_users;
	grp.nnz = 2;
	grp.rowptr = grp_ptr;
	grp.col = grp_col;
	grp.val = grp_val;
	t->d.group = &grp;
	/* a candidate user 0 bought last: the group votes for it */
	cand[3] = t->seq[t->seq_ptr[0] + t->n_train[0] - 1];
	hist = t->seq + t->seq_ptr[2];
	len = t->n_train[2];
	for (r = 0; r < 2; r++)
	{
		IsrfBlendNet net = g.weights.net;
		float		base[4],
					sum[4],
					with[4],
					full[4],
					full0[4],
					content[4],
					text[4],
					kmax[4],
					lprof[4],
					llast[4],
					lmax[4],
					adj[4],
					adj_in_place[4],
					xin[4 * ISRF_BLEND_N_FEATURES];
		IsrfRelations rel = {kmax, lprof, llast, lmax};
		double		group_seen = 0.0;

		/* the scores without the network, then with it */
		memset(&g.weights.net, 0, sizeof(g.weights.net));
		CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
		CHECK(isrf_genrec_encode(s, 1, &users[0], &hist, &len, h) == ISRF_OK);
		CHECK(isrf_genrec_dense_candidates(s, h, 4, cand, base) == ISRF_OK);
		memcpy(sum, base, sizeof(sum));
		CHECK(isrf_genrec_score_terms(s, users[r], hist, len, 4, cand, true, sum) == ISRF_OK);
		memcpy(full0, base, sizeof(full0));
		CHECK(isrf_genrec_score_terms(s, users[r], hist, len, 4, cand, false, full0) == ISRF_OK);
		isrf_genrec_session_close(s);
		g.weights.net = net;
		/* and a rerank network of the opposite output (scorer.h) */
		g.weights.rerank = net;
		for (j = 0; j < ISRF_BLEND_HIDDEN; j++)
			g.weights.rerank.w2[j] = -net.w2[j];
		CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
		CHECK(isrf_scorer_rerank(isrf_genrec_scorer(s), users[r], hist, len, 4, cand, base, adj) == ISRF_OK);
		/* the same outputs written over the dense logits they read */
		memcpy(adj_in_place, base, sizeof(base));
		CHECK(isrf_scorer_rerank(isrf_genrec_scorer(s), users[r], hist, len, 4, cand, adj_in_place,
								 adj_in_place) == ISRF_OK);
		CHECK(memcmp(adj_in_place, adj, sizeof(adj)) == 0);
		/* the inputs the rerank network's fit reads (model/scorer_tune.c) */
		CHECK(isrf_scorer_net_inputs(isrf_genrec_scorer(s), users[r], hist, len, 4, cand, base, xin) == ISRF_OK);
		memcpy(with, base, sizeof(with));
		CHECK(isrf_genrec_score_terms(s, users[r], hist, len, 4, cand, true, with) == ISRF_OK);
		memcpy(full, base, sizeof(full));
		CHECK(isrf_genrec_score_terms(s, users[r], hist, len, 4, cand, false, full) == ISRF_OK);
		/* the terms, as model/scorer_tune.c reads them */
		scr = isrf_genrec_scorer(s);
		CHECK(isrf_scorer_fit(scr) == ISRF_OK);
		CHECK(isrf_scorer_prior_all(scr, hist, len, 0.0f) == ISRF_OK);
		isrf_scorer_content(scr, hist, len, 4, cand, content);
		isrf_scorer_text(scr, hist, len, 4, cand, text);
		CHECK(isrf_scorer_relations(scr, hist, len, 4, cand, &rel) == ISRF_OK);
		isrf_scorer_group(scr, users[r]);
		for (j = 0; j < 4; j++)
		{
			float		x[ISRF_BLEND_N_FEATURES];
			int32_t		it = cand[j];

			if (it < 0)
			{
				CHECK(isnan(with[j]) && isnan(sum[j]) && adj[j] == 0.0f);
				for (f = 0; f < ISRF_BLEND_N_FEATURES; f++)
					CHECK(xin[j * ISRF_BLEND_N_FEATURES + f] == 0.0f);
				continue;
			}
			x[ISRF_BLEND_DENSE] = base[j];
			x[ISRF_BLEND_MARKOV] = (float) scr->pmk[it];
			x[ISRF_BLEND_KNN] = (float) scr->pkn[it];
			x[ISRF_BLEND_POP] = log1pf((float) scr->prior.pop[it]);
			x[ISRF_BLEND_RECENT] = scr->recent[it];
			x[ISRF_BLEND_CONTENT] = content[j];
			x[ISRF_BLEND_GROUP] = scr->gsc[it];
			x[ISRF_BLEND_TEXT] = text[j];
			x[ISRF_BLEND_KNN_MAX] = kmax[j];
			x[ISRF_BLEND_LEX_PROFILE] = lprof[j];
			x[ISRF_BLEND_LEX_LAST] = llast[j];
			x[ISRF_BLEND_LEX_MAX] = lmax[j];
			group_seen += x[ISRF_BLEND_GROUP];
			rel_seen += kmax[j] > 0.0f ? 1 : 0;
			lex_seen += lprof[j] > 0.0f && lmax[j] > 0.0f ? 1 : 0;
			CHECK_NEAR(with[j] - sum[j], isrf_blend_net_forward(&net, x), 1e-4);
			/* the rerank network reads the same inputs, which its fit reads */
			CHECK_NEAR(adj[j], -isrf_blend_net_forward(&net, x), 1e-4);
			for (f = 0; f < ISRF_BLEND_N_FEATURES; f++)
				CHECK_MSG(xin[j * ISRF_BLEND_N_FEATURES + f] == x[f], "input %d of candidate %d: %g, %g", f, j,
						  (double) xin[j * ISRF_BLEND_N_FEATURES + f], (double) x[f]);
			/* and it does add something */
			CHECK(fabs(isrf_blend_net_forward(&net, x)) > 1e-6);
			/* the full-ranking weights on a list: no network */
			CHECK(full[j] == full0[j]);
		}
		/* the known user's neighbours vote for some candidate; the unknown has none */
		CHECK(r == 0 ? group_seen > 0.0 : group_seen == 0.0);
		isrf_scorer_group_clear(scr);
		isrf_genrec_session_close(s);
		memset(&g.weights.rerank, 0, sizeof(g.weights.rerank));
	}
	/* full ranking is the same with and without the network */
	{
		float	   *a = malloc(sizeof(float) * t->d.n_items),
				   *b = malloc(sizeof(float) * t->d.n_items);
		IsrfBlendNet net = g.weights.net;

		g.weights.prior = 2.0f;
		g.weights.group = 1.0f;
		CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
		CHECK(isrf_genrec_encode(s, 1, &users[0], &hist, &len, h) == ISRF_OK);
		CHECK(isrf_genrec_dense_scores(s, 1, h, a) == ISRF_OK);
		CHECK(isrf_genrec_score_terms(s, users[0], hist, len, t->d.n_items, NULL, false, a) == ISRF_OK);
		isrf_genrec_session_close(s);
		memset(&g.weights.net, 0, sizeof(g.weights.net));
		CHECK(isrf_genrec_session_open(env, be, &g, &t->d, &s) == ISRF_OK);
		CHECK(isrf_genrec_dense_scores(s, 1, h, b) == ISRF_OK);
		CHECK(isrf_genrec_score_terms(s, users[0], hist, len, t->d.n_items, NULL, false, b) == ISRF_OK);
		isrf_genrec_session_close(s);
		CHECK(memcmp(a, b, sizeof(float) * t->d.n_items) == 0);
		g.weights.net = net;
		free(a);
		free(b);
	}
	/* the relations took part: some candidate co-occurs with the history, shares words with it */
	CHECK_MSG(rel_seen > 0 && lex_seen > 0, "co-occurring %d, sharing words %d", rel_seen, lex_seen);
	t->d.group = NULL;
	t->d.item_text = NULL;
	free(grp_ptr);
	test_data_text_free(&txt);
	isrf_genrec_free(env, &g);
}

/* Two trainings with one seed are bitwise identical; another seed is not. */
static void
check_determinism(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	a,
				b,
				x;

	tiny_config(&c);
	c.epochs = 3;
	c.dropout = 0.2f;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &a) == ISRF_OK);
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &b) == ISRF_OK);
	CHECK(a.n_params == b.n_params && memcmp(a.params, b.params, a.n_params * 4) == 0);
	CHECK(memcmp(a.tf_params, b.tf_params, a.n_tf_params * 4) == 0);
	CHECK(memcmp(a.codes, b.codes, (size_t) a.n_items * a.levels * 4) == 0);
	c.seed = 8;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &x) == ISRF_OK);
	CHECK(memcmp(a.params, x.params, a.n_params * 4) != 0);
	/* a deep copy is equal */
	{
		IsrfGenrec	cp;

		CHECK(isrf_genrec_copy(env, &a, &cp) == ISRF_OK);
		CHECK(memcmp(cp.params, a.params, a.n_params * 4) == 0 && cp.params != a.params);
		isrf_genrec_free(env, &cp);
	}
	isrf_genrec_free(env, &a);
	isrf_genrec_free(env, &b);
	isrf_genrec_free(env, &x);
}

/* What the epoch hook saw of a training with a refit. */
typedef struct RefitLog
{
	int32_t		n_fit,
				n_weights,
				n_refit,
				bad;			/* reports out of order or malformed */
	double		last_fit_eta,
				last_refit_eta;
	int32_t		stop_at_refit;	/* > 0: fail on this refit epoch */
} RefitLog;

static IsrfStatus
refit_hook(void *arg, const IsrfEpochReport *r)
{
	RefitLog   *l = arg;

	if (r->weights)
	{
		/* once, after the fit's epochs, before the refit's, with the kept epoch's figures */
		l->bad += r->refit || l->n_weights > 0 || l->n_refit > 0 || r->epoch != l->n_fit ||
			r->best_epoch < 1 || r->best_epoch > r->epoch || !(r->val_hr10 >= 0.0) ||
			!(r->val_ndcg10 >= 0.0) || !isnan(r->loss) || !(r->elapsed > 0.0) || !(r->eta > 0.0);
		l->n_weights++;
		return ISRF_OK;
	}
	if (!r->refit)
	{
		l->bad += l->n_weights > 0 || l->n_refit > 0 || r->epoch != l->n_fit + 1 || isnan(r->val_hr10);
		l->n_fit++;
		l->last_fit_eta = r->eta;
		return ISRF_OK;
	}
	l->bad += l->n_weights != 1 || r->epoch != l->n_refit + 1 || r->epochs != 2 || !isnan(r->val_hr10) ||
		!isnan(r->val_ndcg10) || !(r->loss > 0.0) || r->eta < 0.0;
	l->n_refit++;
	l->last_refit_eta = r->eta;
	return l->n_refit == l->stop_at_refit ? ISRF_ERR_CANCELLED : ISRF_OK;
}

/*
 * The refit: the model keeps the weights of the same training without it as
 * its train-split weights (what evaluation opens), bitwise, and serves
 * others; refit runs are deterministic and survive a deep copy.
 */
static void
check_refit(IsrfEnv *env, IsrfBackend *be, TestData *t)
{
	IsrfGenrecConfig c;
	IsrfGenrec	a,
				b,
				b2;
	IsrfGenrecSession *s;
	RefitLog	log;
	float		ha[8],
				he[8],
				hs[8];
	int32_t		u = 1,
				len = 3;
	const int32_t *hist = t->seq + t->seq_ptr[u];

	memset(&log, 0, sizeof(log));
	tiny_config(&c);
	c.epochs = 2;
	c.use_prior = true;			/* the weights' choice between fit and refit */
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &a) == ISRF_OK);
	CHECK(a.eval_params == NULL && a.eval_tf_params == NULL);
	c.refit_epochs = 2;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &b) == ISRF_OK);
	CHECK(b.eval_params != NULL && b.eval_tf_params != NULL);
	CHECK(b.best_epoch == a.best_epoch && b.n_params == a.n_params);
	CHECK(memcmp(b.eval_params, a.params, a.n_params * 4) == 0);
	CHECK(memcmp(b.eval_tf_params, a.tf_params, a.n_tf_params * 4) == 0);
	CHECK(memcmp(b.params, a.params, a.n_params * 4) != 0);
	CHECK(memcmp(b.tf_params, a.tf_params, a.n_tf_params * 4) != 0);
	/* evaluation's session reads the train-split weights, serving the refit ones */
	CHECK(isrf_genrec_session_open(env, be, &a, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, ha) == ISRF_OK);
	isrf_genrec_session_close(s);
	CHECK(isrf_genrec_session_open_eval(env, be, &b, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, he) == ISRF_OK);
	isrf_genrec_session_close(s);
	CHECK(isrf_genrec_session_open(env, be, &b, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, hs) == ISRF_OK);
	isrf_genrec_session_close(s);
	CHECK(memcmp(ha, he, sizeof(ha)) == 0);
	CHECK(unit_max_abs_diff(ha, hs, 8) > 1e-6);
	/* without a refit, _open_eval is _open */
	CHECK(isrf_genrec_session_open_eval(env, be, &a, &t->d, &s) == ISRF_OK);
	CHECK(isrf_genrec_encode(s, 1, &u, &hist, &len, he) == ISRF_OK);
	isrf_genrec_session_close(s);
	CHECK(memcmp(ha, he, sizeof(ha)) == 0);
	/*
	 * deterministic (with the epoch hook, which sees the fit's epochs, the
	 * weights' choice, then the refit's, without validation figures), and a
	 * deep copy carries both weight sets
	 */
	CHECK(isrf_genrec_train(env, be, &t->d, &c, refit_hook, &log, &b2) == ISRF_OK);
	CHECK(memcmp(b2.params, b.params, b.n_params * 4) == 0);
	CHECK_MSG(log.bad == 0 && log.n_fit == b.epochs_run && log.n_weights == 1 &&
			  log.n_refit == 2, "%d malformed, %d fit, %d weights and %d refit reports", log.bad, log.n_fit,
			  log.n_weights, log.n_refit);
	CHECK(log.last_fit_eta > 0.0 && log.last_refit_eta == 0.0);
	isrf_genrec_free(env, &b2);
	CHECK(isrf_genrec_copy(env, &b, &b2) == ISRF_OK);
	CHECK(b2.eval_params != b.eval_params && memcmp(b2.eval_params, b.eval_params, b.n_params * 4) == 0);
	CHECK(memcmp(b2.eval_tf_params, b.eval_tf_params, b.n_tf_params * 4) == 0);
	isrf_genrec_free(env, &b2);
	/* a hook that stops during the refit stops the training with its status */
	memset(&log, 0, sizeof(log));
	log.stop_at_refit = 1;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, refit_hook, &log, &b2) == ISRF_ERR_CANCELLED);
	CHECK(log.n_refit == 1);
	/* a negative count is refused */
	c.refit_epochs = -1;
	CHECK(isrf_genrec_train(env, be, &t->d, &c, NULL, NULL, &b2) == ISRF_ERR_INVALID);
	isrf_genrec_free(env, &a);
	isrf_genrec_free(env, &b);
}

static IsrfStatus
epoch_hook(void *arg, const IsrfEpochReport *r)
{
	double	   *last = arg;

	if (r->weights)
		return ISRF_OK;			/* no epoch of its own */
	if (r->epoch == 1)
		last[0] = r->loss;
	last[1] = r->loss;
	last[2] = r->val_hr10;
	last[3] = r->epoch;
	last[4] = r->eta;
	return ISRF_OK;
}

/*
 * Replace t's random histories by the synthetic ones of sd (rows by user, in
 * order; a repeated item once), the last two items of each held out.
 */
static void
test_data_synth(TestData *t, const IsrfSynthData *sd, int32_t n_users)
{
	int64_t		r;
	int32_t		u,
				p = 0;

	free(t->seq);
	t->seq = malloc(sizeof(int32_t) * (size_t) sd->n_rows);
	for (u = 0; u < n_users; u++)
	{
		t->seq_ptr[u] = p;
		for (r = 0; r < sd->n_rows; r++)
			if (sd->user_id[r] == u + 1)
			{
				int32_t		it = (int32_t) sd->item_id[r] - 1,
							q;
				bool		dup = false;

				for (q = t->seq_ptr[u]; q < p; q++)
					dup |= t->seq[q] == it;
				if (!dup)
					t->seq[p++] = it;
			}
		t->n_train[u] = p - t->seq_ptr[u] >= 3 ? p - t->seq_ptr[u] - 2 : p - t->seq_ptr[u];
	}
	t->seq_ptr[n_users] = p;
	t->d.seq = t->seq;
}

/*
 * A tiny synthetic data set with planted group orders: the model must learn
 * it (training loss falls a lot, validation hit rate far above chance).
 */
static void
check_overfit(IsrfEnv *env, IsrfBackend *be)
{
	IsrfSynthConfig sc = {.n_users = 120, .n_items = 40, .n_groups = 4, .per_user = 8, .seed = 3};
	IsrfSynthData sd;
	TestData	t;
	IsrfGenrecConfig c;
	IsrfGenrec	g;
	double		last[5] = {0, 0, 0};

	CHECK(isrf_synth_generate(env, &sc, &sd) == ISRF_OK);
	test_data_random(&t, sc.n_users, sc.n_items, 8, 11);
	test_data_synth(&t, &sd, sc.n_users);
	tiny_config(&c);
	c.d_model = 16;
	c.epochs = 40;
	c.patience = 40;
	c.lr = 5e-3f;
	c.dropout = 0.0f;
	c.batch_size = 32;
	CHECK(isrf_genrec_train(env, be, &t.d, &c, epoch_hook, last, &g) == ISRF_OK);
	CHECK_MSG(last[1] < 0.6 * last[0], "loss %g -> %g", last[0], last[1]);
	CHECK_MSG(g.best_val_hr10 > 0.6, "validation HR@10 %g (chance 10/40)", g.best_val_hr10);
	/* the hook saw every epoch run; nothing blew up */
	CHECK(last[3] == g.epochs_run && (g.epochs_run == c.epochs ? last[4] == 0.0 : last[4] >= 0.0));
	CHECK(g.nonfinite_steps == 0);
	isrf_genrec_free(env, &g);
	test_data_free(&t);
	isrf_synth_free(env, &sd);
}

/* the rerank network's fit line of a training's log, kept by rerank_log */
static char rerank_line[1024];

static void
rerank_log(void *ctx, const char *msg)
{
	(void) ctx;
	if (strstr(msg, "rerank network (full ranking)") != NULL)
		snprintf(rerank_line, sizeof(rerank_line), "%s", msg);
}

/*
 * The rerank network's fit runs where a catalogue is larger than its window
 * (the other tests' are not): windows that hold the validation target are
 * found and fitted on, and two trainings give the same network.
 */
static void
check_rerank_fit(IsrfEnv *env, IsrfBackend *be)
{
	IsrfSynthConfig sc = {.n_users = 400, .n_items = 300, .n_groups = 6, .per_user = 10, .seed = 5};
	IsrfSynthData sd;
	TestData	t;
	IsrfGenrecConfig c;
	IsrfGenrec	g1,
				g2;
	void		(*keep_log) (void *, const char *) = env->log;
	int32_t		found = 0,
				users = 0;
	const char *at;

	CHECK(isrf_synth_generate(env, &sc, &sd) == ISRF_OK);
	test_data_random(&t, sc.n_users, sc.n_items, 8, 13);
	test_data_synth(&t, &sd, sc.n_users);
	tiny_config(&c);
	c.epochs = 3;
	c.use_prior = true;
	c.use_rerank_net = true;
	env->log = rerank_log;
	rerank_line[0] = '\0';
	CHECK(isrf_genrec_train(env, be, &t.d, &c, NULL, NULL, &g1) == ISRF_OK);
	at = strstr(rerank_line, "among the best");
	CHECK_MSG(at != NULL && sscanf(at, "among the best %*d for %d of %d users", &found, &users) == 2,
			  "no rerank fit in the log: \"%s\"", rerank_line);
	CHECK_MSG(found > 1 && found < users && users > 0, "windows %d of %d users", found, users);
	CHECK(isrf_genrec_train(env, be, &t.d, &c, NULL, NULL, &g2) == ISRF_OK);
	env->log = keep_log;
	CHECK(memcmp(&g1.weights.rerank, &g2.weights.rerank, sizeof(IsrfBlendNet)) == 0);
	CHECK(isrf_blend_net_finite(&g1.weights.rerank));
	isrf_genrec_free(env, &g1);
	isrf_genrec_free(env, &g2);
	test_data_free(&t);
	isrf_synth_free(env, &sd);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;
	TestData	t;
	IsrfGenrecConfig c;

	isrf_env_init_malloc(&env);
	CHECK(isrf_cpu_backend_create(&env, &be) == ISRF_OK);
	test_data_random(&t, 12, 20, 6, 1);

	/* configuration checks */
	tiny_config(&c);
	CHECK(isrf_genrec_config_check(&env, &c) == ISRF_OK);
	c.n_heads = 3;
	CHECK(isrf_genrec_config_check(&env, &c) == ISRF_ERR_INVALID);
	CHECK(strstr(env.errmsg, "n_heads") != NULL);

	/*
	 * The whole model, every part on.  lambda1 is checked apart: its
	 * explicit side is under stop-gradient, which finite differences of
	 * W_u would see through.
	 */
	tiny_config(&c);
	c.lambda1 = 0.0f;
	check_gradients(&env, be, &t, &c, "full");
	tiny_config(&c);
	c.lambda2 = 0.0f;
	c.use_explicit = false;
	check_gradients(&env, be, &t, &c, "lambda1 only (group side)");
	check_stop_gradient(&env, be, &t);
	/* the parts one at a time */
	tiny_config(&c);
	c.lambda1 = c.lambda2 = 0.0f;
	c.use_group_interest = false;
	c.use_explicit = false;
	c.use_generative = false;
	check_gradients(&env, be, &t, &c, "adapter + dense head only");
	tiny_config(&c);
	c.use_adapter = false;
	c.gen_weight = 0.0f;
	c.lambda1 = 0.0f;
	check_gradients(&env, be, &t, &c, "interests + InfoNCE");
	tiny_config(&c);
	c.lambda1 = c.lambda2 = 0.0f;
	c.use_group_interest = false;
	c.use_explicit = false;
	c.use_adapter = false;
	check_gradients(&env, be, &t, &c, "code decoder");

	check_word_emb(&env, be, &t);
	check_switches(&env, be, &t);
	check_inference(&env, be, &t);
	check_no_leak(&env, be, &t);
	check_prior(&env, be, &t);
	check_relations(&env, &t);
	check_blend_net(&env, be, &t);
	check_rerank_fit(&env, be);
	check_determinism(&env, be, &t);
	check_refit(&env, be, &t);
	check_overfit(&env, be);

	test_data_free(&t);
	isrf_backend_close(be);
	UNIT_END("test_genrec");
}
