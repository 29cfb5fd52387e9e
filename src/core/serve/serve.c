/*
 * serve/serve.c
 *	  Serving a trained model (see serve.h): recommendations by constrained
 *	  beam search over the semantic-ID trie with the code decoder as the step,
 *	  rescored by the dense head; exact dense scores of candidates; and the
 *	  isrf_evaluate table beside the baselines.
 *
 * Inputs: a known user's whole history (all splits) is what the model reads
 * and what is excluded from the answer.  For evaluation the input is the
 * history before the test item (DESIGN.md section 7).  The isrf rows of the
 * evaluation rank by the model's ranking score (genrec.h: the dense head's
 * logit plus beta times the transition prior, beta chosen on validation):
 * full ranking over every item for the sequential task, the candidates'
 * scores for the direct task.  Recommendations take the beam's items,
 * order them by the same score and fill from the full ranking.
 */
#include "serve/serve.h"

#include "eval/baselines.h"
#include "model/genrec.h"
#include "eval/baseline_lightgcn.h"
#include "eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/*
 * the LightGCN baseline trains for at most this many epochs inside evaluate
 * (an epoch cap, not a time cap, so the table is reproducible)
 */
#define SERVE_LGCN_EPOCHS 20

void
isrf_serve_config_default(IsrfServeConfig *cfg)
{
	cfg->beam_width = 20;
}

/* Popularity order of the items by train counts (desc, then index). */
static IsrfStatus
serve_popularity(IsrfEnv *env, const IsrfModel *m, int32_t **count_out, int32_t **order_out)
{
	int32_t    *cnt = isrf_calloc(env, (size_t) m->n_items + 1, 4);
	int32_t    *ord = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	int32_t    *tmp = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	int32_t		u,
				i,
				w;

	if (!cnt || !ord || !tmp)
	{
		isrf_free(env, cnt);
		isrf_free(env, ord);
		isrf_free(env, tmp);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < m->n_users; u++)
		for (i = 0; i < m->n_train[u]; i++)
			cnt[m->seq[m->seq_ptr[u] + i]]++;
	for (i = 0; i < m->n_items; i++)
		ord[i] = i;
	/* stable merge sort by count descending keeps ties in index order */
	for (w = 1; w < m->n_items; w *= 2)
	{
		int32_t		lo;

		for (lo = 0; lo < m->n_items; lo += 2 * w)
		{
			int32_t		mid = lo + w < m->n_items ? lo + w : m->n_items,
						hi = lo + 2 * w < m->n_items ? lo + 2 * w : m->n_items,
						a = lo,
						b = mid,
						k = lo;

			while (a < mid && b < hi)
				tmp[k++] = cnt[ord[b]] > cnt[ord[a]] ? ord[b++] : ord[a++];
			while (a < mid)
				tmp[k++] = ord[a++];
			while (b < hi)
				tmp[k++] = ord[b++];
		}
		memcpy(ord, tmp, (size_t) m->n_items * 4);
	}
	isrf_free(env, tmp);
	*count_out = cnt;
	*order_out = ord;
	return ISRF_OK;
}

/* State the beam step needs: the session and each request's hidden state. */
typedef struct ServeBeam
{
	IsrfGenrecSession *s;
	const float *h;				/* n_requests x C */
	const float **rows;			/* scratch: one pointer per beam */
	int32_t		cap;
} ServeBeam;

static IsrfStatus
serve_beam_step(void *arg, int level, int n_beams, const int32_t *beam_request,
				const int32_t *prefix_codes, float *logp)
{
	ServeBeam  *sb = arg;
	int32_t		C = isrf_genrec_width(sb->s),
				i;

	if (n_beams > sb->cap)
		return ISRF_ERR_INTERNAL;
	for (i = 0; i < n_beams; i++)
		sb->rows[i] = sb->h + (size_t) beam_request[i] * C;
	return isrf_genrec_code_logp(sb->s, level, n_beams, sb->rows, prefix_codes, logp);
}

/* Check the requests before doing anything. */
static IsrfStatus
serve_check_requests(IsrfEnv *env, const IsrfModel *m, int32_t n, const IsrfRecRequest *req)
{
	int32_t		i;

	if (n < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "negative number of requests (%d)", n);
	for (i = 0; i < n; i++)
	{
		if (req[i].k < 1)
			return isrf_fail(env, ISRF_ERR_INVALID, "k must be at least 1 (got %d)", req[i].k);
		if (req[i].user < -1 || req[i].user >= m->n_users)
			return isrf_fail(env, ISRF_ERR_INVALID, "user index %d is not a user of the model", req[i].user);
	}
	return ISRF_OK;
}

/* Unknown user (or no generative model): the most popular items. */
static void
serve_popular(const IsrfModel *m, const int32_t *cnt, const int32_t *ord,
			  const uint8_t *seen, const IsrfRecRequest *rq, IsrfRecResult *rs)
{
	int32_t		i,
				c = 0;

	for (i = 0; i < m->n_items && c < rq->k; i++)
	{
		if (seen && seen[ord[i]])
			continue;
		rs->items[c] = ord[i];
		rs->scores[c] = (float) cnt[ord[i]];
		c++;
	}
	rs->count = c;
}

/* Serve the known users of a batch with the model (idx lists them). */
static IsrfStatus
serve_known(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, const IsrfServeConfig *cfg,
			int32_t nk, const int32_t *idx, const IsrfRecRequest *req, IsrfRecResult *res,
			IsrfGenrecSession *s, uint8_t *seen, float *dense)
{
	IsrfTrie	trie;
	IsrfBeamRequest *br = NULL;
	int32_t    *users = NULL,
			   *lens = NULL,
			   *bi = NULL,
			   *bc = NULL,
			   *chosen = NULL;
	const int32_t **hist = NULL;
	float	   *h = NULL,
			   *bs = NULL;
	ServeBeam	sb;
	int32_t		C = isrf_genrec_width(s),
				width = cfg && cfg->beam_width > 0 ? cfg->beam_width : 20,
				total = 0,
				i;
	IsrfStatus	st = ISRF_OK;

	(void) be;
	memset(&trie, 0, sizeof(trie));
	memset(&sb, 0, sizeof(sb));
	users = isrf_alloc(env, (size_t) nk * 4 + 4);
	lens = isrf_alloc(env, (size_t) nk * 4 + 4);
	hist = isrf_alloc(env, (size_t) nk * sizeof(*hist) + 8);
	h = isrf_alloc(env, (size_t) nk * C * 4 + 4);
	br = isrf_calloc(env, (size_t) nk + 1, sizeof(*br));
	if (!users || !lens || !hist || !h || !br)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < nk; i++)
	{
		int32_t		u = req[idx[i]].user;

		users[i] = u;
		hist[i] = m->seq + m->seq_ptr[u];
		lens[i] = m->seq_ptr[u + 1] - m->seq_ptr[u];
	}
	if ((st = isrf_genrec_encode(s, nk, users, hist, lens, h)) != ISRF_OK)
		goto done;

	/* constrained beam search over the codes, the history excluded */
	if (m->genrec.levels > 0 && m->genrec.cfg.use_generative)
	{
		for (i = 0; i < nk; i++)
		{
			int32_t		avail = m->n_items - lens[i],
						want = req[idx[i]].k > width ? req[idx[i]].k : width;

			br[i].exclude = hist[i];
			br[i].n_exclude = lens[i];
			br[i].n_results = want < avail ? want : (avail > 0 ? avail : 0);
			total += br[i].n_results;
		}
		sb.s = s;
		sb.h = h;
		sb.cap = total + nk * width + 1;
		sb.rows = isrf_alloc(env, sizeof(*sb.rows) * (size_t) sb.cap);
		bi = isrf_alloc(env, (size_t) total * 4 + 4);
		bs = isrf_alloc(env, (size_t) total * 4 + 4);
		bc = isrf_alloc(env, (size_t) nk * 4 + 4);
		if (!sb.rows || !bi || !bs || !bc)
		{
			st = ISRF_ERR_NOMEM;
			goto done;
		}
		if ((st = isrf_genrec_trie(env, &m->genrec, &trie)) != ISRF_OK ||
			(st = isrf_beam_search(env, &trie, width, serve_beam_step, &sb, nk, br, bi, bs, bc)) != ISRF_OK)
			goto done;
	}

	/* rescore the beam with the dense head; fill from the dense ranking */
	chosen = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
	if (chosen == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0, total = 0; i < nk; i++)
	{
		const IsrfRecRequest *rq = &req[idx[i]];
		IsrfRecResult *rs = &res[idx[i]];
		int32_t		nb = bi ? bc[i] : 0,
					c = 0,
					q;
		const int32_t *items = bi ? bi + total : NULL;

		if (bi)
			total += br[i].n_results;
		if ((st = isrf_poll(env)) != ISRF_OK)
			goto done;
		if ((st = isrf_genrec_dense_scores(s, 1, h + (size_t) i * C, dense)) != ISRF_OK ||
			(st = isrf_genrec_score_terms(s, hist[i], lens[i], m->n_items, NULL, false, dense)) != ISRF_OK)
			goto done;
		for (q = 0; q < lens[i]; q++)
			seen[hist[i][q]] = 1;
		/* the beam's items, best dense score first (ties: lower index) */
		for (q = 0; q < nb; q++)
		{
			int32_t		it = items[q],
						p;

			if (it < 0 || seen[it])
				continue;
			for (p = c; p > 0 && (dense[chosen[p - 1]] < dense[it] ||
								  (dense[chosen[p - 1]] == dense[it] && chosen[p - 1] > it)); p--)
				chosen[p] = chosen[p - 1];
			chosen[p] = it;
			seen[it] = 1;
			c++;
		}
		if (c > rq->k)
		{
			for (q = rq->k; q < c; q++)
				seen[chosen[q]] = 0;
			c = rq->k;
		}
		for (q = 0; q < c; q++)
		{
			rs->items[q] = chosen[q];
			rs->scores[q] = dense[chosen[q]];
		}
		/* fill: the best remaining items by dense score */
		while (c < rq->k)
		{
			int32_t		best = -1;

			for (q = 0; q < m->n_items; q++)
				if (!seen[q] && !isnan(dense[q]) &&
					(best < 0 || dense[q] > dense[best]))
					best = q;
			if (best < 0)
				break;
			seen[best] = 1;
			rs->items[c] = best;
			rs->scores[c] = dense[best];
			c++;
		}
		rs->count = c;
		rs->cold_start = false;
		/* clear the marks for the next request */
		for (q = 0; q < lens[i]; q++)
			seen[hist[i][q]] = 0;
		for (q = 0; q < c; q++)
			seen[rs->items[q]] = 0;
	}

done:
	isrf_trie_free(env, &trie);
	isrf_free(env, users);
	isrf_free(env, lens);
	isrf_free(env, hist);
	isrf_free(env, h);
	isrf_free(env, br);
	isrf_free(env, sb.rows);
	isrf_free(env, bi);
	isrf_free(env, bs);
	isrf_free(env, bc);
	isrf_free(env, chosen);
	return st;
}

/* What recommending from one model on one backend needs, prepared once. */
struct IsrfServeSession
{
	IsrfEnv    *env;			/* owns everything below */
	IsrfBackend *be;
	const IsrfModel *m;
	int32_t    *cnt;			/* train popularity and its order */
	int32_t    *ord;
	IsrfGenrecData gd;			/* the genrec session points at it */
	IsrfGenrecSession *s;		/* weights on the device, item table, prior; NULL without a model */
};

IsrfStatus
isrf_serve_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, IsrfServeSession **out)
{
	IsrfServeSession *ss = isrf_calloc(env, 1, sizeof(IsrfServeSession));
	IsrfStatus	st;

	*out = NULL;
	if (ss == NULL)
		return ISRF_ERR_NOMEM;
	ss->env = env;
	ss->be = be;
	ss->m = m;
	st = serve_popularity(env, m, &ss->cnt, &ss->ord);
	if (st == ISRF_OK && m->genrec.params != NULL)
	{
		isrf_model_genrec_data(m, &ss->gd);
		st = isrf_genrec_session_open(env, be, &m->genrec, &ss->gd, &ss->s);
	}
	if (st != ISRF_OK)
	{
		isrf_serve_session_close(ss);
		return st;
	}
	*out = ss;
	return ISRF_OK;
}

void
isrf_serve_session_close(IsrfServeSession *ss)
{
	if (ss == NULL)
		return;
	isrf_genrec_session_close(ss->s);
	isrf_free(ss->env, ss->cnt);
	isrf_free(ss->env, ss->ord);
	isrf_free(ss->env, ss);
}

IsrfStatus
isrf_serve_recommend_session(IsrfEnv *env, IsrfServeSession *ss, const IsrfServeConfig *cfg,
							 int32_t n, const IsrfRecRequest *req, IsrfRecResult *res)
{
	const IsrfModel *m = ss->m;
	int32_t    *idx = NULL;
	uint8_t    *seen = NULL;
	float	   *dense = NULL;
	int32_t		nk = 0,
				i;
	IsrfStatus	st;

	ISRF_TRY(serve_check_requests(env, m, n, req));
	if (n == 0)
		return ISRF_OK;
	seen = isrf_calloc(env, (size_t) m->n_items + 1, 1);
	idx = isrf_alloc(env, (size_t) n * 4 + 4);
	if (!seen || !idx)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n; i++)
	{
		res[i].count = 0;
		res[i].cold_start = true;
		if (req[i].user >= 0 && ss->s != NULL)
			idx[nk++] = i;
		else if (req[i].user >= 0)
		{
			/* no generative model: popularity, the history still excluded */
			int32_t		u = req[i].user,
						q;

			for (q = m->seq_ptr[u]; q < m->seq_ptr[u + 1]; q++)
				seen[m->seq[q]] = 1;
			serve_popular(m, ss->cnt, ss->ord, seen, &req[i], &res[i]);
			for (q = m->seq_ptr[u]; q < m->seq_ptr[u + 1]; q++)
				seen[m->seq[q]] = 0;
		}
		else
			serve_popular(m, ss->cnt, ss->ord, NULL, &req[i], &res[i]);
	}
	st = ISRF_OK;
	if (nk > 0)
	{
		dense = isrf_alloc(env, (size_t) m->n_items * 4 + 4);
		if (dense == NULL)
			st = ISRF_ERR_NOMEM;
		else
			st = serve_known(env, ss->be, m, cfg, nk, idx, req, res, ss->s, seen, dense);
	}

done:
	isrf_free(env, idx);
	isrf_free(env, seen);
	isrf_free(env, dense);
	return st;
}

IsrfStatus
isrf_serve_recommend(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
					 const IsrfServeConfig *cfg, int32_t n, const IsrfRecRequest *req,
					 IsrfRecResult *res)
{
	IsrfServeSession *ss;
	IsrfStatus	st;

	ISRF_TRY(serve_check_requests(env, m, n, req));
	if (n == 0)
		return ISRF_OK;
	ISRF_TRY(isrf_serve_session_open(env, be, m, &ss));
	st = isrf_serve_recommend_session(env, ss, cfg, n, req, res);
	isrf_serve_session_close(ss);
	return st;
}

IsrfStatus
isrf_serve_rank(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, int32_t user,
				int32_t n_cand, const int32_t *cand, float *scores)
{
	IsrfGenrecSession *s = NULL;
	IsrfGenrecData gd;
	int32_t		i;
	IsrfStatus	st;

	if (n_cand < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "negative number of candidates (%d)", n_cand);
	if (user < -1 || user >= m->n_users)
		return isrf_fail(env, ISRF_ERR_INVALID, "user index %d is not a user of the model", user);
	for (i = 0; i < n_cand; i++)
		if (cand[i] < -1 || cand[i] >= m->n_items)
			return isrf_fail(env, ISRF_ERR_INVALID, "candidate item index %d is not an item of the model", cand[i]);
	if (n_cand == 0)
		return ISRF_OK;
	if (user < 0 || m->genrec.params == NULL)
	{
		int32_t    *cnt,
				   *ord;

		ISRF_TRY(serve_popularity(env, m, &cnt, &ord));
		for (i = 0; i < n_cand; i++)
			scores[i] = cand[i] < 0 ? NAN : (float) cnt[cand[i]];
		isrf_free(env, cnt);
		isrf_free(env, ord);
		return ISRF_OK;
	}
	isrf_model_genrec_data(m, &gd);
	ISRF_TRY(isrf_genrec_session_open(env, be, &m->genrec, &gd, &s));
	{
		float	   *h = isrf_alloc(env, (size_t) isrf_genrec_width(s) * 4);
		const int32_t *hist = m->seq + m->seq_ptr[user];
		int32_t		len = m->seq_ptr[user + 1] - m->seq_ptr[user];

		if (h == NULL)
			st = ISRF_ERR_NOMEM;
		else if ((st = isrf_genrec_encode(s, 1, &user, &hist, &len, h)) == ISRF_OK &&
				 (st = isrf_genrec_dense_candidates(s, h, n_cand, cand, scores)) == ISRF_OK)
			st = isrf_genrec_score_terms(s, hist, len, n_cand, cand, true, scores);
		isrf_free(env, h);
	}
	isrf_genrec_session_close(s);
	return st;
}

/* A dataset view of the model's split, for metrics.h and baselines.h. */
static IsrfStatus
serve_dataset_view(IsrfEnv *env, const IsrfModel *m, IsrfDataset *ds)
{
	int32_t		u,
				p;

	memset(ds, 0, sizeof(*ds));
	ds->n_users = m->n_users;
	ds->n_items = m->n_items;
	ds->user_ids = m->user_ids;
	ds->item_ids = m->item_ids;
	ds->seq_ptr = m->seq_ptr;
	ds->seq = m->seq;
	ds->n_train = m->n_train;
	ds->evaluated = isrf_calloc(env, (size_t) m->n_users + 1, sizeof(bool));
	ds->item_train_count = isrf_calloc(env, (size_t) m->n_items + 1, 4);
	if (!ds->evaluated || !ds->item_train_count)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < m->n_users; u++)
	{
		int32_t		len = m->seq_ptr[u + 1] - m->seq_ptr[u];

		ds->evaluated[u] = len >= 3 && m->n_train[u] == len - 2;
		ds->n_evaluated += ds->evaluated[u];
		ds->n_interactions += len;
		ds->n_train_interactions += m->n_train[u];
		for (p = 0; p < m->n_train[u]; p++)
			ds->item_train_count[m->seq[m->seq_ptr[u] + p]]++;
	}
	return ISRF_OK;
}

static void
serve_row(IsrfEvalRow *r, const char *task, const char *method, const IsrfMetrics *mt)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->task, sizeof(r->task), "%s", task);
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->hr5 = mt->hr5;
	r->ndcg5 = mt->ndcg5;
	r->hr10 = mt->hr10;
	r->ndcg10 = mt->ndcg10;
	r->users = (int32_t) mt->users;
}

/* The isrf rows: dense-head full ranking and direct candidates. */
static IsrfStatus
serve_eval_isrf(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, const IsrfDataset *ds,
				const IsrfDirectTask *dt, IsrfMetrics *seq, IsrfMetrics *dir)
{
	IsrfGenrecSession *s = NULL;
	IsrfGenrecData gd;
	int32_t    *users = NULL,
			   *nin = NULL,
			   *tgt = NULL,
			   *ranks = NULL;
	float	   *h = NULL,
			   *fs = NULL;
	double	   *sc = NULL;
	int32_t		n = 0,
				u,
				i,
				j;
	IsrfStatus	st;

	memset(seq, 0, sizeof(*seq));
	memset(dir, 0, sizeof(*dir));
	isrf_model_genrec_data(m, &gd);
	ISRF_TRY(isrf_genrec_session_open(env, be, &m->genrec, &gd, &s));
	users = isrf_alloc(env, (size_t) m->n_users * 4 + 4);
	nin = isrf_alloc(env, (size_t) m->n_users * 4 + 4);
	tgt = isrf_alloc(env, (size_t) m->n_users * 4 + 4);
	ranks = isrf_alloc(env, (size_t) m->n_users * 4 + 4);
	h = isrf_alloc(env, (size_t) isrf_genrec_width(s) * 4);
	fs = isrf_alloc(env, (size_t) dt->n_cand * 4 + 4);
	sc = isrf_alloc(env, (size_t) dt->n_cand * 8 + 8);
	if (!users || !nin || !tgt || !ranks || !h || !fs || !sc)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (u = 0; u < m->n_users; u++)
		if (ds->evaluated[u])
		{
			users[n] = u;
			tgt[n] = isrf_eval_input(ds, u, ISRF_TARGET_TEST, &nin[n]);
			n++;
		}
	if ((st = isrf_genrec_rank_targets(s, n, users, nin, tgt, ranks)) != ISRF_OK)
		goto done;
	for (i = 0; i < n; i++)
		isrf_metrics_add(seq, ranks[i]);
	*seq = isrf_metrics_mean(seq);

	for (i = 0; i < dt->n_users; i++)
	{
		const int32_t *cand = dt->cand + (size_t) i * dt->n_cand;
		const int32_t *hist;
		int32_t		len;

		if (i % 256 == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		u = dt->user[i];
		(void) isrf_eval_input(ds, u, dt->target, &len);
		hist = m->seq + m->seq_ptr[u];
		if ((st = isrf_genrec_encode(s, 1, &u, &hist, &len, h)) != ISRF_OK ||
			(st = isrf_genrec_dense_candidates(s, h, dt->n_cand, cand, fs)) != ISRF_OK ||
			(st = isrf_genrec_score_terms(s, hist, len, dt->n_cand, cand, true, fs)) != ISRF_OK)
			goto done;
		for (j = 0; j < dt->n_cand; j++)
			sc[j] = fs[j];
		isrf_metrics_add(dir, isrf_direct_rank(sc, NULL, dt->n_cand, dt->target_pos[i], false));
	}
	*dir = isrf_metrics_mean(dir);

done:
	isrf_genrec_session_close(s);
	isrf_free(env, users);
	isrf_free(env, nin);
	isrf_free(env, tgt);
	isrf_free(env, ranks);
	isrf_free(env, h);
	isrf_free(env, fs);
	isrf_free(env, sc);
	return st;
}

/* The lightgcn rows: BPR-trained LightGCN, dot-product scores. */
static IsrfStatus
serve_eval_lgcn(IsrfEnv *env, IsrfBackend *be, const IsrfDataset *ds,
				const IsrfDirectTask *dt, uint64_t seed, IsrfMetrics *seq, IsrfMetrics *dir)
{
	IsrfLgcnBprConfig lc;
	IsrfLgcnBpr lg;
	float	   *all = NULL;
	double	   *sc = NULL;
	int32_t		i,
				j;
	IsrfStatus	st;

	memset(dir, 0, sizeof(*dir));
	isrf_lgcn_bpr_config_default(&lc);
	lc.seed = seed;
	lc.max_epochs = SERVE_LGCN_EPOCHS;
	lc.max_seconds = 0.0;
	ISRF_TRY(isrf_lgcn_bpr_train(env, be, ds, &lc, &lg));
	if ((st = isrf_lgcn_bpr_evaluate(env, be, &lg, ds, ISRF_TARGET_TEST, seq)) != ISRF_OK)
		goto done;
	all = isrf_alloc(env, (size_t) ds->n_items * 4 + 4);
	sc = isrf_alloc(env, (size_t) dt->n_cand * 8 + 8);
	if (!all || !sc)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < dt->n_users; i++)
	{
		const int32_t *cand = dt->cand + (size_t) i * dt->n_cand;

		if (!isrf_lgcn_bpr_score(&lg, dt->user[i], all))
			return isrf_fail(env, ISRF_ERR_INTERNAL, "LightGCN baseline lost user %d", dt->user[i]);
		for (j = 0; j < dt->n_cand; j++)
			sc[j] = all[cand[j]];
		isrf_metrics_add(dir, isrf_direct_rank(sc, NULL, dt->n_cand, dt->target_pos[i], false));
	}
	*dir = isrf_metrics_mean(dir);

done:
	isrf_free(env, all);
	isrf_free(env, sc);
	isrf_lgcn_bpr_free(env, &lg);
	return st;
}

IsrfStatus
isrf_serve_evaluate(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
					IsrfEvalRow **rows, int32_t *n_rows)
{
	IsrfDataset ds;
	IsrfDirectTask dt;
	IsrfBaselines bl;
	IsrfBaselineEval be_out;
	IsrfMetrics s_isrf,
				d_isrf,
				s_lg,
				d_lg;
	IsrfEvalRow *r = NULL;
	IsrfStatus	st;
	int32_t		k = 0,
				n_neg;
	bool		have_isrf = m->genrec.params != NULL;

	*rows = NULL;
	*n_rows = 0;
	memset(&dt, 0, sizeof(dt));
	memset(&bl, 0, sizeof(bl));
	if ((st = serve_dataset_view(env, m, &ds)) != ISRF_OK)
		goto done;
	if (ds.n_evaluated == 0)
	{
		st = isrf_fail(env, ISRF_ERR_INVALID, "no user has the three interactions evaluation needs");
		goto done;
	}
	/*
	 * 99 negatives as the protocol says; a catalogue too small for that
	 * (tests, toy data) gets as many as every user can have.
	 */
	{
		int32_t		u,
					longest = 0;

		for (u = 0; u < m->n_users; u++)
			if (m->seq_ptr[u + 1] - m->seq_ptr[u] > longest)
				longest = m->seq_ptr[u + 1] - m->seq_ptr[u];
		n_neg = m->n_items - longest < ISRF_DIRECT_NEGATIVES ? m->n_items - longest : ISRF_DIRECT_NEGATIVES;
		if (n_neg < 1)
		{
			st = isrf_fail(env, ISRF_ERR_INVALID, "the catalogue of %d items is too small for the direct task",
						   m->n_items);
			goto done;
		}
	}
	if ((st = isrf_direct_task_build(env, &ds, ISRF_TARGET_TEST, ISRF_DIRECT_SEED,
									 n_neg, 0, &dt)) != ISRF_OK ||
		(st = isrf_baselines_fit(env, &ds, &bl)) != ISRF_OK ||
		(st = isrf_baselines_evaluate(env, &bl, &ds, ISRF_TARGET_TEST, &dt, false, &be_out)) != ISRF_OK)
		goto done;
	if (have_isrf && (st = serve_eval_isrf(env, be, m, &ds, &dt, &s_isrf, &d_isrf)) != ISRF_OK)
		goto done;
	if ((st = serve_eval_lgcn(env, be, &ds, &dt, m->cfg.seed, &s_lg, &d_lg)) != ISRF_OK)
		goto done;
	r = isrf_calloc(env, 8, sizeof(*r));
	if (r == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if (have_isrf)
		serve_row(&r[k++], "sequential", "isrf", &s_isrf);
	serve_row(&r[k++], "sequential", "popularity", &be_out.sequential[ISRF_BASELINE_POPULARITY]);
	serve_row(&r[k++], "sequential", "markov_knn", &be_out.sequential[ISRF_BASELINE_MARKOV_KNN]);
	serve_row(&r[k++], "sequential", "lightgcn", &s_lg);
	if (have_isrf)
		serve_row(&r[k++], "direct", "isrf", &d_isrf);
	serve_row(&r[k++], "direct", "popularity", &be_out.direct[ISRF_BASELINE_POPULARITY]);
	serve_row(&r[k++], "direct", "markov_knn", &be_out.direct[ISRF_BASELINE_MARKOV_KNN]);
	serve_row(&r[k++], "direct", "lightgcn", &d_lg);
	*rows = r;
	*n_rows = k;

done:
	isrf_direct_task_free(env, &dt);
	isrf_baselines_free(env, &bl);
	isrf_free(env, ds.evaluated);
	isrf_free(env, ds.item_train_count);
	return st;
}
