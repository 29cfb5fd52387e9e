/*
 * test_serve.c
 *	  Serving a trained model: recommendations are real, unseen, distinct
 *	  items (also when k exceeds the catalogue), unknown users get the
 *	  popular items marked cold start, candidate ranking gives the dense
 *	  head's scores with NaN for unknown items, repeated calls and a saved and
 *	  reloaded model answer bit for bit the same, and the evaluation table has
 *	  every task and method with sane values.
 */
#include "train/pipeline.h"
#include "eval/evaluate.h"
#include "serve/serve.h"
#include "serve/serve_internal.h"
#include "data/synthetic.h"
#include "model/model_file.h"
#include "support/model_edit.h"
#include "support/synth_corpus.h"
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a list longer than the rerank network's window */
#define RERANK_K (ISRF_RERANK_DEPTH + 50)

/* in user u's whole history? */
static bool
in_history(const IsrfModel *m, int32_t u, int32_t item)
{
	int32_t		p;

	for (p = m->seq_ptr[u]; p < m->seq_ptr[u + 1]; p++)
		if (m->seq[p] == item)
			return true;
	return false;
}

/* The invariants every answer must keep. */
static void
check_result(const IsrfModel *m, const IsrfRecRequest *rq, const IsrfRecResult *rs)
{
	int32_t		i,
				j,
				avail = m->n_items,
				bad = 0;

	if (rq->user >= 0)
		avail -= m->seq_ptr[rq->user + 1] - m->seq_ptr[rq->user];
	CHECK_MSG(rs->count == (rq->k < avail ? rq->k : avail), "user %d k %d: count %d of %d available",
			  rq->user, rq->k, rs->count, avail);
	for (i = 0; i < rs->count; i++)
	{
		if (rs->items[i] < 0 || rs->items[i] >= m->n_items)
			bad++;
		else if (rq->user >= 0 && in_history(m, rq->user, rs->items[i]))
			bad++;
		for (j = 0; j < i; j++)
			if (rs->items[j] == rs->items[i])
				bad++;
		if (!isfinite(rs->scores[i]))
			bad++;
	}
	CHECK_MSG(bad == 0, "user %d: %d bad entries", rq->user, bad);
}

/*
 * Users served together (more than one block of rows, histories of many
 * lengths, every full-ranking term on) get what each gets alone: the same
 * list, the same scores to rounding.  Not to the bit: a BLAS may round a
 * row of a product otherwise depending on how many rows the product has
 * (OpenBLAS 0.3.21 does from 4 rows at an inner dimension of 64), and a
 * batch's products have more rows than one user's.
 */
static void
check_batch_alone(IsrfEnv *env, IsrfBackend *be, IsrfModel *m)
{
	enum
	{
		N = 40, K = 10
	};
	IsrfScoreWeights keep = m->genrec.weights;
	IsrfServeSession *ss;
	IsrfRecRequest req[N];
	IsrfRecResult res[N],
				one;
	int32_t		items[N][K],
				items1[K];
	float		scores[N][K],
				scores1[K];
	int32_t		i,
				bad = 0;

	m->genrec.weights.prior = 2.0f;
	m->genrec.weights.group = 1.0f;
	m->genrec.weights.text = 0.5f;
	CHECK(isrf_serve_session_open(env, be, m, &ss) == ISRF_OK);
	for (i = 0; i < N; i++)
	{
		req[i] = (IsrfRecRequest) {(i * 7) % m->n_users, K, 5, NULL, 0};
		res[i] = (IsrfRecResult) {items[i], scores[i], 0, false};
	}
	CHECK(isrf_serve_recommend(env, ss, N, req, res) == ISRF_OK);
	for (i = 0; i < N; i++)
	{
		one = (IsrfRecResult) {items1, scores1, 0, false};
		CHECK(isrf_serve_recommend(env, ss, 1, &req[i], &one) == ISRF_OK);
		bad += one.count != res[i].count || res[i].count != K ||
			memcmp(items1, items[i], sizeof(int32_t) * K) != 0 ||
			unit_max_abs_diff(scores1, scores[i], K) > 1e-5 * fabs(scores1[0]);
	}
	CHECK_MSG(bad == 0, "%d of %d users served otherwise alone than in a batch", bad, N);
	/*
	 * the scorer's terms for many users at once are, bit for bit, those of
	 * each alone: a known user, one with no history, one the model does not
	 * know, and more rows than one pass of the text term takes
	 */
	{
		IsrfScorer *sc = &ss->scorer;
		int32_t		ni = m->n_items,
					nr = 20,
					users[20],
					lens[20],
					r;
		const int32_t *hist[20];
		float	   *a = malloc(sizeof(float) * (size_t) nr * ni),
				   *b = malloc(sizeof(float) * (size_t) nr * ni);
		uint32_t	x = 12345;

		for (r = 0; r < nr; r++)
		{
			users[r] = r == 1 ? -1 : (r * 13) % m->n_users;
			hist[r] = ss->gd.seq + ss->gd.seq_ptr[users[r] < 0 ? 0 : users[r]];
			lens[r] = r == 2 ? 0 : ss->gd.seq_ptr[(users[r] < 0 ? 0 : users[r]) + 1] -
				ss->gd.seq_ptr[users[r] < 0 ? 0 : users[r]];
		}
		for (i = 0; i < nr * ni; i++)
		{
			x = x * 1664525u + 1013904223u;
			a[i] = b[i] = (float) (x >> 8) / (float) (1u << 24);
		}
		CHECK(isrf_scorer_add_rows(sc, nr, users, hist, lens, a) == ISRF_OK);
		for (r = 0; r < nr; r++)
			CHECK(isrf_scorer_add(sc, users[r], hist[r], lens[r], ni, NULL, false,
								  b + (size_t) r * ni) == ISRF_OK);
		CHECK(memcmp(a, b, sizeof(float) * (size_t) nr * ni) == 0);
		free(a);
		free(b);
	}
	isrf_serve_session_close(ss);
	m->genrec.weights = keep;
}

/*
 * Random input and output weights (the output's scaled by w2_scale) over
 * inputs of unit spread: a network that adds something to every score.
 */
static void
serve_random_net(IsrfBlendNet *net, unsigned long long *rs, float w2_scale)
{
	int32_t		k,
				f;

	for (k = 0; k < ISRF_BLEND_HIDDEN; k++)
	{
		for (f = 0; f < ISRF_BLEND_N_FEATURES; f++)
			net->w1[k][f] = unit_rand_uniform(rs);
		net->w2[k] = w2_scale * unit_rand_uniform(rs);
	}
	for (f = 0; f < ISRF_BLEND_N_FEATURES; f++)
		net->inv_sd[f] = 1.0f;
}

/*
 * The rerank network on a catalogue larger than its window: a served list
 * of more than ISRF_RERANK_DEPTH items is the window's items, reordered,
 * then the others in the order they have without the network; the scores
 * never rise; the first 10 of it are the list of 10.
 */
static void
check_rerank_window(IsrfEnv *env, IsrfBackend *be)
{
	static const char *const keys[] = {"dm", "group_k", "d_model", "epochs", "batch_size"};
	static const char *const values[] = {"8", "5", "8", "1", "64"};
	IsrfTestCorpus tc = {.sc = {200, 320, 4, 10, 9}};
	IsrfTrainConfig cfg;
	IsrfModel	m;
	IsrfServeSession *ss;
	int32_t		ia[RERANK_K],
				ib[RERANK_K],
				ic[10],
				u,
				i,
				j,
				depth = ISRF_RERANK_DEPTH;
	float		sa[RERANK_K],
				sb[RERANK_K],
				sc10[10];
	unsigned long long rs = 17;

	CHECK(isrf_test_corpus_build(env, &tc) == ISRF_OK);
	CHECK(isrf_train_config_parse(env, 5, keys, values, &cfg) == ISRF_OK);
	CHECK(isrf_train(env, be, &tc.corpus, &cfg, NULL, &m) == ISRF_OK);
	CHECK(m.n_items > RERANK_K + 20);
	memset(&m.genrec.weights.rerank, 0, sizeof(m.genrec.weights.rerank));
	serve_random_net(&m.genrec.weights.rerank, &rs, 4.0f);
	for (u = 0; u < 3; u++)
	{
		IsrfRecRequest rq = {u * 31, RERANK_K, 0, NULL, 0};
		IsrfRecResult ra = {ia, sa, 0, false},
					rb = {ib, sb, 0, false},
					rc = {ic, sc10, 0, false};
		IsrfBlendNet net = m.genrec.weights.rerank;
		bool		moved = false;

		memset(&m.genrec.weights.rerank, 0, sizeof(net));
		CHECK(isrf_serve_session_open(env, be, &m, &ss) == ISRF_OK);
		CHECK(isrf_serve_recommend(env, ss, 1, &rq, &ra) == ISRF_OK);
		isrf_serve_session_close(ss);
		m.genrec.weights.rerank = net;
		CHECK(isrf_serve_session_open(env, be, &m, &ss) == ISRF_OK);
		CHECK(isrf_serve_recommend(env, ss, 1, &rq, &rb) == ISRF_OK);
		rq.k = 10;
		CHECK(isrf_serve_recommend(env, ss, 1, &rq, &rc) == ISRF_OK);
		isrf_serve_session_close(ss);
		CHECK_MSG(ra.count == RERANK_K && rb.count == RERANK_K && !rb.cold_start, "%d %d", ra.count, rb.count);
		for (i = 0; i < depth; i++)
		{
			bool		in = false;

			for (j = 0; j < depth; j++)
				in = in || ib[i] == ia[j];
			CHECK_MSG(in, "user %d: item %d of the reordered window is not among the best %d", rq.user, ib[i], depth);
			moved = moved || ib[i] != ia[i];
		}
		CHECK_MSG(moved, "user %d: the rerank network moved nothing", rq.user);
		CHECK_MSG(memcmp(ia + depth, ib + depth, sizeof(int32_t) * (RERANK_K - depth)) == 0,
				  "user %d: the items after the window moved", rq.user);
		for (i = 1; i < rb.count; i++)
			CHECK_MSG(sb[i] <= sb[i - 1], "user %d: score %d rises: %g after %g", rq.user, i, (double) sb[i],
					  (double) sb[i - 1]);
		/* the window's scores rose by at least 0, the rest are as they were */
		CHECK(sb[depth - 1] >= sa[depth - 1] && memcmp(sa + depth, sb + depth, sizeof(float) * (RERANK_K - depth)) == 0);
		CHECK(rc.count == 10 && memcmp(ic, ib, sizeof(ic)) == 0 && memcmp(sc10, sb, sizeof(sc10)) == 0);
	}
	isrf_model_free(env, &m);
	isrf_test_corpus_free(env, &tc);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;
	IsrfTestCorpus tc = {.sc = {300, 80, 4, 10, 5}};
	IsrfTrainConfig cfg;
	IsrfServeSession *ss,
			   *ss2;
	IsrfModel	m,
				m2;
	IsrfRecRequest req[6];
	IsrfRecResult res[6],
				res2[6];
	int32_t		items[6][200],
				items2[6][200];
	float		scores[6][200],
				scores2[6][200];
	int32_t		i,
				j;

	isrf_env_init_malloc(&env);
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CPU, NULL, &be) == ISRF_OK);
	CHECK(isrf_test_corpus_build(&env, &tc) == ISRF_OK);
	{
		static const char *const keys[] = {"dm", "group_k", "d_model", "epochs", "batch_size",
		"semid_codebook", "lr"};
		static const char *const values[] = {"16", "10", "16", "8", "64", "8", "0.005"};

		CHECK(isrf_train_config_parse(&env, 7, keys, values, &cfg) == ISRF_OK);
	}
	CHECK(isrf_train(&env, be, &tc.corpus, &cfg, NULL, &m) == ISRF_OK);
	CHECK(m.genrec.params != NULL && m.genrec.epochs_run >= 1);
	CHECK(isrf_serve_session_open(&env, be, &m, &ss) == ISRF_OK);

	/* known users with small and large k, an unknown user, k beyond the catalogue */
	req[0] = (IsrfRecRequest) {0, 10, 5, NULL, 0};
	req[1] = (IsrfRecRequest) {7, 1, 5, NULL, 0};
	req[2] = (IsrfRecRequest) {-1, 10, 5, NULL, 0};
	req[3] = (IsrfRecRequest) {12, 200, 5, NULL, 0};
	req[4] = (IsrfRecRequest) {-1, 200, 5, NULL, 0};
	req[5] = (IsrfRecRequest) {299, 3, 5, NULL, 0};
	for (i = 0; i < 6; i++)
	{
		res[i] = (IsrfRecResult) {items[i], scores[i], 0, false};
		res2[i] = (IsrfRecResult) {items2[i], scores2[i], 0, false};
	}
	CHECK_MSG(isrf_serve_recommend(&env, ss, 6, req, res) == ISRF_OK, "%s", env.errmsg);
	for (i = 0; i < 6; i++)
		check_result(&m, &req[i], &res[i]);
	CHECK(!res[0].cold_start && !res[1].cold_start && !res[3].cold_start);
	CHECK(res[2].cold_start && res[4].cold_start);
	/* cold start = recent popularity order: never increasing down the list */
	for (j = 1; j < res[4].count; j++)
		CHECK(res[4].scores[j] <= res[4].scores[j - 1]);
	/*
	 * and it is recent popularity, recounted: every interaction the model
	 * knows, 0.5^(steps from its history's end); the top item beats every
	 * other item of the catalogue
	 */
	{
		double	   *rp = calloc(m.n_items, sizeof(double));
		int32_t		uu,
					pp,
					best = 0;

		for (uu = 0; uu < m.n_users; uu++)
		{
			int32_t		len = m.seq_ptr[uu + 1] - m.seq_ptr[uu];

			for (pp = 0; pp < len; pp++)
				rp[m.seq[m.seq_ptr[uu] + pp]] += pow(ISRF_RECENT_DECAY, len - 1 - pp);
		}
		for (j = 1; j < m.n_items; j++)
			if (rp[j] > rp[best])
				best = j;
		CHECK_MSG(res[4].items[0] == best, "top %d vs %d", res[4].items[0], best);
		for (j = 0; j < res[4].count; j++)
			CHECK_NEAR(res[4].scores[j], rp[res[4].items[j]], 1e-4 * (1.0 + rp[res[4].items[j]]));
		/* not plain counts: some item's recent popularity is not a whole number */
		CHECK(res[4].scores[0] != floorf(res[4].scores[0]) || res[4].scores[1] != floorf(res[4].scores[1]));
		free(rp);
	}
	/* the known users' lists are best first by the dense head, after the beam */
	CHECK(res[0].scores[0] >= res[0].scores[res[0].count - 1]);

	/* repeated call: bit for bit the same */
	CHECK(isrf_serve_recommend(&env, ss, 6, req, res2) == ISRF_OK);
	for (i = 0; i < 6; i++)
		CHECK(res2[i].count == res[i].count &&
			  memcmp(items[i], items2[i], sizeof(int32_t) * res[i].count) == 0 &&
			  memcmp(scores[i], scores2[i], sizeof(float) * res[i].count) == 0);
	/* one request alone answers as it did in the batch */
	CHECK(isrf_serve_recommend(&env, ss, 1, &req[3], &res2[3]) == ISRF_OK);
	CHECK(memcmp(items[3], items2[3], sizeof(int32_t) * res[3].count) == 0);
	check_batch_alone(&env, be, &m);

	/* bad requests */
	{
		IsrfRecRequest bad = {0, 0, 0, NULL, 0};

		CHECK(isrf_serve_recommend(&env, ss, 1, &bad, res2) == ISRF_ERR_INVALID);
		bad = (IsrfRecRequest) {m.n_users, 5, 0, NULL, 0};
		CHECK(isrf_serve_recommend(&env, ss, 1, &bad, res2) == ISRF_ERR_INVALID);
	}

	/* rank: dense scores, NaN for unknown, popularity for unknown users */
	{
		int32_t		cand[5] = {3, -1, res[0].items[0], 40, 79};
		float		sc[5],
					sc2[5];

		IsrfScoreWeights keep = m.genrec.weights;

		/* with the full-ranking weights, rank scores as recommend does */
		m.genrec.weights.prior_direct = m.genrec.weights.prior;
		m.genrec.weights.pop_direct = 0.0f;
		m.genrec.weights.recent_direct = 0.0f;
		m.genrec.weights.content_direct = 0.0f;
		m.genrec.weights.group_direct = m.genrec.weights.group;
		m.genrec.weights.text_direct = m.genrec.weights.text;
		m.genrec.weights.prior_knn_direct = m.genrec.weights.prior_knn;
		memset(&m.genrec.weights.net, 0, sizeof(m.genrec.weights.net));
		CHECK(isrf_serve_session_open(&env, be, &m, &ss2) == ISRF_OK);
		CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 5, cand, sc) == ISRF_OK);
		CHECK_NEAR(sc[2], res[0].scores[0], 1e-4);
		isrf_serve_session_close(ss2);
		m.genrec.weights = keep;
		CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, 5, cand, sc) == ISRF_OK);
		CHECK(isnan(sc[1]) && isfinite(sc[0]) && isfinite(sc[2]) && isfinite(sc[4]));
		CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, 5, cand, sc2) == ISRF_OK);
		CHECK(memcmp(sc, sc2, sizeof(float)) == 0 && memcmp(sc + 2, sc2 + 2, 3 * sizeof(float)) == 0);
		CHECK(isrf_serve_rank(&env, ss, -1, NULL, 0, 5, cand, sc) == ISRF_OK);
		CHECK(isnan(sc[1]) && sc[0] >= 0.0f);
		/* an unknown user's candidates score their recent popularity, as the cold-start list shows it */
		for (j = 0; j < res[4].count; j++)
			if (res[4].items[j] == cand[2])
				CHECK(sc[2] == res[4].scores[j]);
		CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, 0, cand, sc) == ISRF_OK);
		cand[0] = m.n_items;
		CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, 5, cand, sc) == ISRF_ERR_INVALID);
		/* more candidates than the catalogue has items (unknown ids map to -1) */
		{
			int32_t		nc = m.n_items * 3,
						q;
			int32_t    *many = malloc(sizeof(int32_t) * nc);
			float	   *msc = malloc(sizeof(float) * nc);

			for (q = 0; q < nc; q++)
				many[q] = q < m.n_items ? q : -1;
			CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, nc, many, msc) == ISRF_OK);
			CHECK(isfinite(msc[0]) && isnan(msc[nc - 1]));
			free(many);
			free(msc);
		}
		/* an explicit history: the stored one gives the same scores */
		{
			const int32_t *h0 = m.seq + m.seq_ptr[0];
			int32_t		l0 = m.seq_ptr[1] - m.seq_ptr[0];
			int32_t		bad_hist[2] = {0, m.n_items};

			cand[0] = 3;
			CHECK(isrf_serve_rank(&env, ss, 0, h0, l0, 5, cand, sc2) == ISRF_OK);
			CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, 5, cand, sc) == ISRF_OK);
			CHECK(memcmp(sc, sc2, sizeof(float)) == 0);
			CHECK(isrf_serve_rank(&env, ss, -1, bad_hist, 2, 5, cand, sc) == ISRF_ERR_INVALID);
		}
	}

	/* save and load: the same answers */
	{
		uint8_t    *buf;
		size_t		len;

		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_OK);
		CHECK(m2.genrec.params != NULL && m2.genrec.n_params == m.genrec.n_params);
		CHECK(isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_OK);
		CHECK(isrf_serve_recommend(&env, ss2, 6, req, res2) == ISRF_OK);
		isrf_serve_session_close(ss2);
		for (i = 0; i < 6; i++)
			CHECK(memcmp(items[i], items2[i], sizeof(int32_t) * res[i].count) == 0 &&
				  memcmp(scores[i], scores2[i], sizeof(float) * res[i].count) == 0);
		/* a damaged weight section is caught */
		buf[len - 100] ^= 0x55;
		CHECK(isrf_model_load(&env, buf, len, &m2) != ISRF_OK);
		isrf_free(&env, buf);
	}

	/*
	 * the word embeddings (on by default, over the corpus' text) travel in
	 * the weights; a header whose vocabulary does not match the weights' size,
	 * or is larger than the text's columns, is damage, and weights of the
	 * right size for a vocabulary the items' text does not have are refused
	 * when a session opens
	 */
	{
		uint8_t    *buf;
		size_t		len,
					C = (size_t) m.genrec.cfg.d_model;
		IsrfGenrec	keep = m.genrec;

		CHECK(m.genrec.n_words > 1 && m.genrec.n_words <= m.item_text.n_cols);
		m.genrec.n_words--;
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
		CHECK_MSG(strstr(env.errmsg, "word embeddings") != NULL, "%s", env.errmsg);
		isrf_free(&env, buf);
		m.genrec.n_words = m.item_text.n_cols + 1;
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
		CHECK_MSG(strstr(env.errmsg, "word embeddings") != NULL, "%s", env.errmsg);
		isrf_free(&env, buf);
		/* one word fewer, weights cut to fit: not the items' words, damage */
		m.genrec.n_words = keep.n_words - 1;
		m.genrec.n_params -= C;
		m.genrec.eval_params = NULL;
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
		CHECK_MSG(strstr(env.errmsg, "word embeddings") != NULL, "%s", env.errmsg);
		isrf_free(&env, buf);
		/* word embeddings in a model whose configuration has them off: damage */
		m.genrec = keep;
		m.genrec.eval_params = NULL;
		m.cfg.gen.use_word_emb = false;
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
		m.cfg.gen.use_word_emb = true;
		isrf_free(&env, buf);
		m.genrec = keep;
	}

	/*
	 * a blend network travels with the model: the same candidate scores after
	 * loading, none where it was not kept; a non-finite one is damage
	 */
	{
		IsrfScoreWeights keep = m.genrec.weights;
		int32_t		cand[4] = {3, 40, -1, 79},
					f,
					k;
		float		sa[4],
					sb[4],
					sn[4];
		uint8_t    *buf;
		size_t		len;
		unsigned long long rs = 5;

		memset(&m.genrec.weights.net, 0, sizeof(m.genrec.weights.net));
		CHECK(isrf_serve_session_open(&env, be, &m, &ss2) == ISRF_OK);
		CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, sn) == ISRF_OK);
		isrf_serve_session_close(ss2);
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_OK);
		CHECK(!isrf_blend_net_active(&m2.genrec.weights.net));
		isrf_model_free(&env, &m2);
		isrf_free(&env, buf);
		serve_random_net(&m.genrec.weights.net, &rs, 1.0f);
		CHECK(isrf_serve_session_open(&env, be, &m, &ss2) == ISRF_OK);
		CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, sa) == ISRF_OK);
		isrf_serve_session_close(ss2);
		CHECK(sa[0] != sn[0] && sa[1] != sn[1] && isnan(sa[2]));
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_OK);
		CHECK(memcmp(&m2.genrec.weights.net, &m.genrec.weights.net, sizeof(IsrfBlendNet)) == 0);
		CHECK(isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_OK);
		CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, sb) == ISRF_OK);
		isrf_serve_session_close(ss2);
		CHECK(memcmp(sa, sb, 2 * sizeof(float)) == 0 && sa[3] == sb[3]);
		/* the items' words travel too, and the network reads them */
		CHECK(m.item_text.rowptr != NULL && m2.item_text.nnz == m.item_text.nnz &&
			  m2.item_text.n_cols == m.item_text.n_cols &&
			  memcmp(m2.item_text.rowptr, m.item_text.rowptr, sizeof(int32_t) * (m.n_items + 1)) == 0 &&
			  memcmp(m2.item_text.col, m.item_text.col, sizeof(int32_t) * m.item_text.nnz) == 0 &&
			  memcmp(m2.item_text.val, m.item_text.val, sizeof(float) * m.item_text.nnz) == 0);
		{
			IsrfCsr		words = m2.item_text;
			float		sw[4],
						sr[4];
			int32_t		nw = m2.genrec.n_words;
			size_t		np = m2.genrec.n_params;

			/*
			 * the word embeddings need the words: without them (a model cut
			 * to its layout before the embeddings, which come last) the
			 * scores still move with the words
			 */
			m2.genrec.n_words = 0;
			m2.genrec.n_params -= (size_t) nw * m2.genrec.cfg.d_model;
			CHECK(isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_OK);
			CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, sr) == ISRF_OK);
			isrf_serve_session_close(ss2);
			m2.item_text.rowptr = NULL;
			CHECK(isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_OK);
			CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, sw) == ISRF_OK);
			isrf_serve_session_close(ss2);
			m2.genrec.n_words = nw;
			m2.genrec.n_params = np;
			CHECK_MSG(sw[0] != sr[0] || sw[1] != sr[1] || sw[3] != sr[3], "the words changed no score");
			/* with its embeddings a model needs its words */
			CHECK(nw > 0 && isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_ERR_CORRUPT);
			CHECK(strstr(env.errmsg, "no item words") != NULL);
			m2.item_text = words;
		}
		isrf_model_free(&env, &m2);
		isrf_free(&env, buf);

		/*
		 * a model of a build before the relations stored a network of 8
		 * inputs (section GNET): it loads as a network that ignores the
		 * newer inputs, with the same scores
		 */
		{
			IsrfBlendNet old = m.genrec.weights.net;
			IsrfTestSections secs;
			IsrfTestSection *sec;
			float		v1[ISRF_BLEND_NET_FLOATS_V1],
						so[4];
			int			q = 0;

			for (f = ISRF_BLEND_N_FEATURES_V1; f < ISRF_BLEND_N_FEATURES; f++)
			{
				m.genrec.weights.net.mean[f] = 0.0f;
				m.genrec.weights.net.inv_sd[f] = 0.0f;
				for (k = 0; k < ISRF_BLEND_HIDDEN; k++)
					m.genrec.weights.net.w1[k][f] = 0.0f;
			}
			for (f = 0; f < ISRF_BLEND_N_FEATURES_V1; f++)
				v1[q++] = m.genrec.weights.net.mean[f];
			for (f = 0; f < ISRF_BLEND_N_FEATURES_V1; f++)
				v1[q++] = m.genrec.weights.net.inv_sd[f];
			for (k = 0; k < ISRF_BLEND_HIDDEN; k++)
				for (f = 0; f < ISRF_BLEND_N_FEATURES_V1; f++)
					v1[q++] = m.genrec.weights.net.w1[k][f];
			for (k = 0; k < ISRF_BLEND_HIDDEN; k++)
				v1[q++] = m.genrec.weights.net.b1[k];
			for (k = 0; k < ISRF_BLEND_HIDDEN; k++)
				v1[q++] = m.genrec.weights.net.w2[k];
			CHECK(q == ISRF_BLEND_NET_FLOATS_V1);
			CHECK(isrf_serve_session_open(&env, be, &m, &ss2) == ISRF_OK);
			CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, so) == ISRF_OK);
			isrf_serve_session_close(ss2);
			CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
			CHECK(isrf_test_sections_split(&env, buf, len, &secs) == ISRF_OK);
			isrf_free(&env, buf);
			sec = isrf_test_section(&secs, ISRF_TAG('G', 'N', 'E', '2'));
			CHECK(sec != NULL);
			sec->tag = ISRF_TAG('G', 'N', 'E', 'T');
			isrf_test_section_resize(sec, sizeof(v1));
			memcpy(sec->data, v1, sizeof(v1));
			CHECK(isrf_test_sections_join(&env, &secs, &buf, &len) == ISRF_OK);
			isrf_test_sections_free(&secs);
			CHECK_MSG(isrf_model_load(&env, buf, len, &m2) == ISRF_OK, "%s", env.errmsg);
			CHECK(memcmp(&m2.genrec.weights.net, &m.genrec.weights.net, sizeof(IsrfBlendNet)) == 0);
			CHECK(isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_OK);
			CHECK(isrf_serve_rank(&env, ss2, 0, NULL, 0, 4, cand, sb) == ISRF_OK);
			isrf_serve_session_close(ss2);
			CHECK(memcmp(so, sb, 2 * sizeof(float)) == 0 && so[3] == sb[3]);
			isrf_model_free(&env, &m2);
			isrf_free(&env, buf);
			m.genrec.weights.net = old;
		}
		m.genrec.weights.net.b1[3] = NAN;
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
		CHECK(strstr(env.errmsg, "blend network") != NULL);
		isrf_free(&env, buf);
		m.genrec.weights = keep;
	}

	/*
	 * a rerank network (its order: check_rerank_window) changes the lists,
	 * travels with the model, serves the same lists after loading, and one
	 * that is not finite, adds nothing or is cut short is damage
	 */
	{
		IsrfScoreWeights keep = m.genrec.weights;
		int32_t		ia[RERANK_K],
					ib[RERANK_K];
		float		sa[RERANK_K],
					sb[RERANK_K];
		IsrfRecRequest rq = {1, RERANK_K, 0, NULL, 0};
		IsrfRecResult ra = {ia, sa, 0, false},
					rb = {ib, sb, 0, false};
		unsigned long long rs = 11;
		uint8_t    *buf;
		size_t		len;

		memset(&m.genrec.weights.rerank, 0, sizeof(m.genrec.weights.rerank));
		CHECK(isrf_serve_session_open(&env, be, &m, &ss2) == ISRF_OK);
		CHECK(isrf_serve_recommend(&env, ss2, 1, &rq, &ra) == ISRF_OK);
		isrf_serve_session_close(ss2);
		serve_random_net(&m.genrec.weights.rerank, &rs, 4.0f);
		CHECK(isrf_serve_session_open(&env, be, &m, &ss2) == ISRF_OK);
		CHECK(isrf_serve_recommend(&env, ss2, 1, &rq, &rb) == ISRF_OK);
		isrf_serve_session_close(ss2);
		CHECK(ra.count == rb.count && ra.count > 10 && !rb.cold_start);
		CHECK_MSG(memcmp(ia, ib, sizeof(int32_t) * rb.count) != 0, "the rerank network moved nothing");
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_OK);
		isrf_free(&env, buf);
		CHECK(memcmp(&m2.genrec.weights.rerank, &m.genrec.weights.rerank, sizeof(IsrfBlendNet)) == 0);
		CHECK(isrf_serve_session_open(&env, be, &m2, &ss2) == ISRF_OK);
		CHECK(isrf_serve_recommend(&env, ss2, 1, &rq, &ra) == ISRF_OK);
		isrf_serve_session_close(ss2);
		CHECK(ra.count == rb.count && memcmp(ia, ib, sizeof(int32_t) * rb.count) == 0);
		isrf_model_free(&env, &m2);
		/* a section that adds nothing or of another size is damage; a model without one has none */
		{
			IsrfTestSections secs;
			IsrfTestSection *sec;
			int			variant;

			for (variant = 0; variant < 3; variant++)
			{
				CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
				CHECK(isrf_test_sections_split(&env, buf, len, &secs) == ISRF_OK);
				isrf_free(&env, buf);
				sec = isrf_test_section(&secs, ISRF_TAG('G', 'R', 'R', 'K'));
				CHECK(sec != NULL && sec->len == sizeof(IsrfBlendNet));
				if (variant == 0)
					memset(sec->data, 0, sec->len);
				else if (variant == 1)
					isrf_test_section_resize(sec, sec->len - 4);
				else
					sec->dropped = true;
				CHECK(isrf_test_sections_join(&env, &secs, &buf, &len) == ISRF_OK);
				isrf_test_sections_free(&secs);
				if (variant < 2)
					CHECK_MSG(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT, "variant %d", variant);
				else
				{
					CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_OK);
					CHECK(!isrf_blend_net_active(&m2.genrec.weights.rerank));
					isrf_model_free(&env, &m2);
				}
				isrf_free(&env, buf);
			}
		}
		m.genrec.weights.rerank.w2[5] = INFINITY;
		CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
		CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
		CHECK(strstr(env.errmsg, "rerank network") != NULL);
		isrf_free(&env, buf);
		m.genrec.weights = keep;
	}

	/* the evaluation table */
	{
		IsrfEvalRow *rows;
		int32_t		n;
		static const char *methods[] = {"isrf", "popularity", "markov_knn", "lightgcn"};
		int			found = 0;

		CHECK_MSG(isrf_evaluate_model(&env, ss, NULL, &rows, &n) == ISRF_OK, "%s", env.errmsg);
		CHECK(n == 8);
		for (i = 0; i < n; i++)
		{
			for (j = 0; j < 4; j++)
				if (strcmp(rows[i].method, methods[j]) == 0)
					found++;
			CHECK(strcmp(rows[i].task, "sequential") == 0 || strcmp(rows[i].task, "direct") == 0);
			CHECK(rows[i].users == m.stats.n_evaluated_users);
			CHECK(rows[i].hr5 <= rows[i].hr10 && rows[i].ndcg5 <= rows[i].ndcg10 &&
				  rows[i].ndcg10 <= rows[i].hr10 && rows[i].hr10 <= 1.0 && rows[i].hr10 >= 0.0);
			printf("  %-10s %-10s HR@10 %.4f NDCG@10 %.4f\n", rows[i].task, rows[i].method,
				   rows[i].hr10, rows[i].ndcg10);
		}
		CHECK(found == 8);
		/* planted group orders: the model must beat popularity by far */
		CHECK(rows[0].hr10 > rows[1].hr10 + 0.1);
		isrf_free(&env, rows);
	}

	isrf_serve_session_close(ss);
	isrf_model_free(&env, &m2);
	isrf_model_free(&env, &m);
	isrf_test_corpus_free(&env, &tc);
	check_rerank_window(&env, be);
	isrf_backend_close(be);
	UNIT_END("test_serve");
}
