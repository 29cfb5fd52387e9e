/*
 * serve/recommend.c
 *	  Answers from a serving session (see serve.h): recommendations by
 *	  constrained beam search over the semantic-ID trie with the code decoder
 *	  as the step, ordered by the ranking score and filled from its full
 *	  ranking; and exact scores of candidates.
 *
 * Inputs: the history a request names, or a known user's stored history
 * (all splits); it is what the model reads and what is excluded from the
 * answer.  The answer is the k best items of the whole catalogue by the
 * model's ranking score (scorer.h: the dense head's logit plus the weighted
 * terms chosen on validation), to which the generative head adds, where the
 * validation chose a weight for it, a bonus for the items its constrained
 * beam search finds: so the served list is never a subset of the beam's
 * candidates, and the beam runs only where it was shown to help.
 */
#include "serve/serve_internal.h"

#include "eval/metrics.h"
#include "model/genrec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* users whose full scores are computed together, and the most floats their scores take */
#define SERVE_ROWS 16
#define SERVE_SCORE_FLOATS (4 * 1024 * 1024)

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

/* The history a request follows: its own, or its user's stored one. */
static void
serve_history(const IsrfModel *m, const IsrfRecRequest *rq, const int32_t **hist, int32_t *len)
{
	if (rq->hist != NULL || rq->user < 0)
	{
		*hist = rq->hist;
		*len = rq->hist ? rq->len : 0;
	}
	else
	{
		*hist = m->seq + m->seq_ptr[rq->user];
		*len = m->seq_ptr[rq->user + 1] - m->seq_ptr[rq->user];
	}
}

/* Check a history's items and length. */
static IsrfStatus
serve_check_history(IsrfEnv *env, const IsrfModel *m, const int32_t *hist, int32_t len)
{
	int32_t		i;

	if (len < 0 || (len > 0 && hist == NULL))
		return isrf_fail(env, ISRF_ERR_INVALID, "a history of %d items without its items", len);
	for (i = 0; i < len; i++)
		if (hist[i] < 0 || hist[i] >= m->n_items)
			return isrf_fail(env, ISRF_ERR_INVALID, "history item index %d is not an item of the model", hist[i]);
	return ISRF_OK;
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
		if (req[i].beam_width < 0)
			return isrf_fail(env, ISRF_ERR_INVALID, "beam width must not be negative (got %d)", req[i].beam_width);
		if (req[i].user < -1 || req[i].user >= m->n_users)
			return isrf_fail(env, ISRF_ERR_INVALID, "user index %d is not a user of the model", req[i].user);
		if (req[i].hist)
			ISRF_TRY(serve_check_history(env, m, req[i].hist, req[i].len));
	}
	return ISRF_OK;
}

/* The most popular items not marked in seen (may be NULL). */
static void
serve_popular(const IsrfServeSession *ss, const uint8_t *seen, const IsrfRecRequest *rq,
			  IsrfRecResult *rs)
{
	const IsrfModel *m = ss->m;
	int32_t		i,
				c = 0;

	for (i = 0; i < m->n_items && c < rq->k; i++)
	{
		if (seen && seen[ss->ord[i]])
			continue;
		rs->items[c] = ss->ord[i];
		rs->scores[c] = ss->pop[ss->ord[i]];
		c++;
	}
	rs->count = c;
}

/* Order of (score desc, item asc) for the top-k of a whole catalogue. */
typedef struct ServeRanked
{
	float		score;
	int32_t		item;
} ServeRanked;

static int
serve_ranked_cmp(const void *a, const void *b)
{
	const ServeRanked *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return (x->item > y->item) - (x->item < y->item);
}

/*
 * The k best items by score (NaN never chosen), best first, ties to the
 * lower item: the count found.  An insertion top-k for small k, a sort of
 * the scored items when k is a good part of the catalogue.
 */
static IsrfStatus
serve_topk(IsrfEnv *env, const float *score, int32_t n_items, int32_t k, int32_t *items,
		   float *scores, int32_t *count)
{
	int32_t		i,
				c = 0;

	if ((int64_t) k * 16 < n_items)
	{
		isrf_topk_excluding(score, n_items, NULL, 0, k, items, scores);
		while (c < k && items[c] >= 0)
			c++;
		*count = c;
		return ISRF_OK;
	}
	{
		ServeRanked *r = isrf_alloc(env, sizeof(ServeRanked) * (size_t) n_items + 1);

		if (r == NULL)
			return ISRF_ERR_NOMEM;
		for (i = 0; i < n_items; i++)
			if (!isnan(score[i]))
			{
				r[c].score = score[i];
				r[c].item = i;
				c++;
			}
		qsort(r, (size_t) c, sizeof(ServeRanked), serve_ranked_cmp);
		if (c > k)
			c = k;
		for (i = 0; i < c; i++)
		{
			items[i] = r[i].item;
			scores[i] = r[i].score;
		}
		isrf_free(env, r);
	}
	*count = c;
	return ISRF_OK;
}

/* the most a rerank network's output moves an item (a trained one moves a few units) */
#define SERVE_RERANK_BOUND 1e6f

IsrfStatus
isrf_serve_rerank_outputs(IsrfServeSession *ss, IsrfScorer *sc, const float *h, int32_t user,
						  const int32_t *hist, int32_t len, int32_t n, const int32_t *cand, float *adj)
{
	int32_t		i;

	/* the dense logits first, in adj, which the network's outputs replace */
	ISRF_TRY(isrf_genrec_dense_candidates(ss->s, h, n, cand, adj));
	ISRF_TRY(isrf_scorer_rerank(sc, user, hist, len, n, cand, adj, adj));
	for (i = 0; i < n; i++)
	{
		/* finite weights of absurd size could overflow: the order stays defined */
		if (!isfinite(adj[i]))
			adj[i] = 0.0f;
		adj[i] = adj[i] > SERVE_RERANK_BOUND ? SERVE_RERANK_BOUND :
			adj[i] < -SERVE_RERANK_BOUND ? -SERVE_RERANK_BOUND : adj[i];
	}
	return ISRF_OK;
}

void
isrf_serve_reorder(int32_t n, const int32_t *win, const float *base, const float *adj, int32_t k,
				   int32_t *items, float *scores, int32_t *count)
{
	ServeRanked r[ISRF_RERANK_DEPTH];
	float		least = INFINITY;
	int32_t		i;

	n = n < ISRF_RERANK_DEPTH ? n : ISRF_RERANK_DEPTH;
	for (i = 0; i < n; i++)
		least = adj[i] < least ? adj[i] : least;
	for (i = 0; i < n; i++)
	{
		r[i].score = base[i] + (adj[i] - least);
		r[i].item = win[i];
	}
	qsort(r, (size_t) n, sizeof(ServeRanked), serve_ranked_cmp);
	for (i = 0; i < n && i < k; i++)
	{
		items[i] = r[i].item;
		scores[i] = r[i].score;
	}
	*count = i;
}

IsrfStatus
isrf_serve_list(IsrfEnv *env, IsrfServeSession *ss, IsrfScorer *sc, const float *h, int32_t user,
				const int32_t *hist, int32_t len, float *row, int32_t k, int32_t *items, float *scores,
				int32_t *count)
{
	int32_t		ni = ss->m->n_items,
				win[ISRF_RERANK_DEPTH],
				n,
				more,
				i;
	float		base[ISRF_RERANK_DEPTH],
				adj[ISRF_RERANK_DEPTH];

	if (!isrf_blend_net_active(&sc->w.rerank) || k <= 0)
		return serve_topk(env, row, ni, k, items, scores, count);
	ISRF_TRY(serve_topk(env, row, ni, ISRF_RERANK_DEPTH, win, base, &n));
	ISRF_TRY(isrf_serve_rerank_outputs(ss, sc, h, user, hist, len, n, win, adj));
	isrf_serve_reorder(n, win, base, adj, k, items, scores, count);
	if (k <= n)
		return ISRF_OK;
	/* the rest, below the window (whose scores only rose) */
	for (i = 0; i < n; i++)
		row[win[i]] = NAN;
	ISRF_TRY(serve_topk(env, row, ni, k - n, items + n, scores + n, &more));
	*count += more;
	return ISRF_OK;
}

void
isrf_serve_beam_bonus(float weight, int32_t found, const int32_t *items, const float *logp,
					  float *score)
{
	float		lo = INFINITY;
	int32_t		q;

	if (weight == 0.0f)
		return;
	for (q = 0; q < found; q++)
		if (items[q] >= 0 && logp[q] < lo)
			lo = logp[q];
	for (q = 0; q < found; q++)
		if (items[q] >= 0 && !isnan(score[items[q]]))
			score[items[q]] += weight * (logp[q] - lo);
}

IsrfStatus
isrf_serve_beam(IsrfEnv *env, IsrfServeSession *ss, int32_t width, int32_t n, const float *h,
				const int32_t *const *hist, const int32_t *lens, int32_t *items, float *logp,
				int32_t *found)
{
	IsrfBeamRequest *br = NULL;
	ServeBeam	sb;
	int32_t		i;
	IsrfStatus	st;

	memset(&sb, 0, sizeof(sb));
	br = isrf_calloc(env, (size_t) n + 1, sizeof(*br));
	sb.s = ss->s;
	sb.h = h;
	sb.cap = n * 2 * width + 1;
	sb.rows = isrf_alloc(env, sizeof(*sb.rows) * (size_t) sb.cap);
	if (!br || !sb.rows)
	{
		isrf_free(env, br);
		isrf_free(env, sb.rows);
		return ISRF_ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
	{
		int32_t		avail = ss->m->n_items - lens[i];

		br[i].exclude = hist[i];
		br[i].n_exclude = lens[i];
		br[i].n_results = width < avail ? width : (avail > 0 ? avail : 0);
	}
	st = isrf_beam_search(env, &ss->trie, width, serve_beam_step, &sb, n, br, items, logp, found);
	if (st == ISRF_OK)
	{
		/*
		 * The search packs request i's results after those before it
		 * (n_results each, fewer than width when the catalogue left after
		 * the history is smaller): spread them to i * width, last first.
		 */
		size_t		off = 0;
		int32_t		j;

		for (i = 0; i < n; i++)
			off += (size_t) br[i].n_results;
		for (i = n - 1; i >= 0; i--)
		{
			off -= (size_t) br[i].n_results;
			memmove(items + (size_t) i * width, items + off, sizeof(int32_t) * br[i].n_results);
			memmove(logp + (size_t) i * width, logp + off, sizeof(float) * br[i].n_results);
			for (j = br[i].n_results; j < width; j++)
			{
				items[(size_t) i * width + j] = -1;
				logp[(size_t) i * width + j] = -INFINITY;
			}
		}
	}
	isrf_free(env, br);
	isrf_free(env, sb.rows);
	return st;
}

/* users scored together: SERVE_ROWS, fewer where the catalogue is large (or n is small) */
static int32_t
serve_rows(int32_t n_items, int32_t n)
{
	int64_t		rows = SERVE_SCORE_FLOATS / (n_items > 0 ? n_items : 1);

	rows = rows < SERVE_ROWS ? rows : SERVE_ROWS;
	rows = rows < n ? rows : n;
	return rows < 1 ? 1 : (int32_t) rows;
}

/*
 * Serve the requests idx[0..nk) with the model, all with one beam width:
 * the ranking score of every item after the request's history (the dense
 * logit plus the scorer's terms), the history excluded, plus the generative
 * head's beam bonus where its weight is not 0; the k best.
 */
static IsrfStatus
serve_known(IsrfEnv *env, IsrfServeSession *ss, IsrfScorer *sc, int32_t width, int32_t nk,
			const int32_t *idx, const IsrfRecRequest *req, IsrfRecResult *res)
{
	const IsrfModel *m = ss->m;
	IsrfGenrecSession *s = ss->s;
	int32_t    *users = NULL,
			   *lens = NULL,
			   *bi = NULL,
			   *bc = NULL;
	const int32_t **hist = NULL;
	float	   *h = NULL,
			   *bs = NULL,
			   *score = NULL;
	int32_t		C = isrf_genrec_width(s),
				rows = serve_rows(m->n_items, nk),
				i,
				i0;
	bool		beam = ss->have_trie && sc->w.beam != 0.0f;
	IsrfStatus	st = ISRF_OK;

	users = isrf_alloc(env, (size_t) nk * 4 + 4);
	lens = isrf_alloc(env, (size_t) nk * 4 + 4);
	hist = isrf_alloc(env, (size_t) nk * sizeof(*hist) + 8);
	h = isrf_alloc(env, (size_t) nk * C * 4 + 4);
	score = isrf_alloc(env, (size_t) rows * m->n_items * 4 + 4);
	if (!users || !lens || !hist || !h || !score)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < nk; i++)
	{
		users[i] = req[idx[i]].user;
		serve_history(m, &req[idx[i]], &hist[i], &lens[i]);
	}
	if ((st = isrf_genrec_encode(s, nk, users, hist, lens, h)) != ISRF_OK)
		goto done;
	if (beam)
	{
		bi = isrf_alloc(env, (size_t) nk * width * 4 + 4);
		bs = isrf_alloc(env, (size_t) nk * width * 4 + 4);
		bc = isrf_alloc(env, (size_t) nk * 4 + 4);
		if (!bi || !bs || !bc)
		{
			st = ISRF_ERR_NOMEM;
			goto done;
		}
		if ((st = isrf_serve_beam(env, ss, width, nk, h, hist, lens, bi, bs, bc)) != ISRF_OK)
			goto done;
	}
	/* the full scores of up to `rows` users at a time: one pass over the item tables for all */
	for (i0 = 0; i0 < nk; i0 += rows)
	{
		int32_t		nr = nk - i0 < rows ? nk - i0 : rows;

		if ((st = isrf_poll(env)) != ISRF_OK ||
			(st = isrf_genrec_dense_scores(s, nr, h + (size_t) i0 * C, score)) != ISRF_OK ||
			(st = isrf_scorer_add_rows(sc, nr, users + i0, hist + i0, lens + i0, score)) != ISRF_OK)
			goto done;
		for (i = i0; i < i0 + nr; i++)
		{
			const IsrfRecRequest *rq = &req[idx[i]];
			IsrfRecResult *rs = &res[idx[i]];
			float	   *row = score + (size_t) (i - i0) * m->n_items;
			int32_t		q;

			for (q = 0; q < lens[i]; q++)
				row[hist[i][q]] = NAN;
			if (beam)
				isrf_serve_beam_bonus(sc->w.beam, bc[i], bi + (size_t) i * width, bs + (size_t) i * width, row);
			if ((st = isrf_serve_list(env, ss, sc, h + (size_t) i * C, users[i], hist[i], lens[i], row, rq->k,
									  rs->items, rs->scores, &rs->count)) != ISRF_OK)
				goto done;
			rs->cold_start = false;
		}
	}

done:
	isrf_free(env, users);
	isrf_free(env, lens);
	isrf_free(env, hist);
	isrf_free(env, h);
	isrf_free(env, score);
	isrf_free(env, bi);
	isrf_free(env, bs);
	isrf_free(env, bc);
	return st;
}

/* The scorer of a scope. */
static IsrfScorer *
serve_scorer(IsrfServeSession *ss, IsrfServeScope scope)
{
	return scope == ISRF_SCOPE_TRAIN_SPLIT ? isrf_genrec_scorer(ss->s) : &ss->scorer;
}

IsrfStatus
isrf_serve_recommend(IsrfEnv *env, IsrfServeSession *ss, int32_t n, const IsrfRecRequest *req,
					 IsrfRecResult *res)
{
	return isrf_serve_recommend_scope(env, ss, ISRF_SCOPE_ALL, n, req, res);
}

IsrfStatus
isrf_serve_recommend_scope(IsrfEnv *env, IsrfServeSession *ss, IsrfServeScope scope, int32_t n,
						   const IsrfRecRequest *req, IsrfRecResult *res)
{
	const IsrfModel *m = ss->m;
	int32_t    *idx = NULL;
	uint8_t    *seen = NULL,
			   *done = NULL;
	int32_t		i,
				j;
	IsrfStatus	st;

	ISRF_TRY(serve_check_requests(env, m, n, req));
	if (n == 0)
		return ISRF_OK;
	seen = isrf_calloc(env, (size_t) m->n_items + 1, 1);
	done = isrf_calloc(env, (size_t) n + 1, 1);
	idx = isrf_alloc(env, (size_t) n * 4 + 4);
	if (!seen || !done || !idx)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n; i++)
	{
		const int32_t *hist;
		int32_t		len,
					q;

		res[i].count = 0;
		res[i].cold_start = true;
		serve_history(m, &req[i], &hist, &len);
		if (ss->s != NULL && len > 0)
			continue;			/* the model answers */
		/* no model or no history: popularity, the history still excluded */
		for (q = 0; q < len; q++)
			seen[hist[q]] = 1;
		serve_popular(ss, seen, &req[i], &res[i]);
		for (q = 0; q < len; q++)
			seen[hist[q]] = 0;
		done[i] = 1;
	}
	st = ISRF_OK;
	/* one batch per beam width */
	for (i = 0; i < n && st == ISRF_OK; i++)
	{
		int32_t		width = req[i].beam_width > 0 ? req[i].beam_width : ISRF_BEAM_WIDTH_DEFAULT,
					nk = 0;

		if (done[i])
			continue;
		for (j = i; j < n; j++)
			if (!done[j] && (req[j].beam_width > 0 ? req[j].beam_width : ISRF_BEAM_WIDTH_DEFAULT) == width)
			{
				idx[nk++] = j;
				done[j] = 1;
			}
		st = serve_known(env, ss, serve_scorer(ss, scope), width, nk, idx, req, res);
	}

done:
	isrf_free(env, idx);
	isrf_free(env, seen);
	isrf_free(env, done);
	return st;
}

IsrfStatus
isrf_serve_rank(IsrfEnv *env, IsrfServeSession *ss, int32_t user, const int32_t *hist,
				int32_t len, int32_t n_cand, const int32_t *cand, float *scores)
{
	return isrf_serve_rank_scope(env, ss, ISRF_SCOPE_ALL, user, hist, len, n_cand, cand, scores);
}

IsrfStatus
isrf_serve_rank_scope(IsrfEnv *env, IsrfServeSession *ss, IsrfServeScope scope, int32_t user,
					  const int32_t *hist, int32_t len, int32_t n_cand, const int32_t *cand,
					  float *scores)
{
	const IsrfModel *m = ss->m;
	IsrfRecRequest rq;
	int32_t		i;
	IsrfStatus	st;

	if (n_cand < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "negative number of candidates (%d)", n_cand);
	if (user < -1 || user >= m->n_users)
		return isrf_fail(env, ISRF_ERR_INVALID, "user index %d is not a user of the model", user);
	for (i = 0; i < n_cand; i++)
		if (cand[i] < -1 || cand[i] >= m->n_items)
			return isrf_fail(env, ISRF_ERR_INVALID, "candidate item index %d is not an item of the model", cand[i]);
	if (hist)
		ISRF_TRY(serve_check_history(env, m, hist, len));
	if (n_cand == 0)
		return ISRF_OK;
	memset(&rq, 0, sizeof(rq));
	rq.user = user;
	rq.hist = hist;
	rq.len = len;
	serve_history(m, &rq, &hist, &len);
	if (len == 0 || ss->s == NULL)
	{
		for (i = 0; i < n_cand; i++)
			scores[i] = cand[i] < 0 ? NAN : ss->pop[cand[i]];
		return ISRF_OK;
	}
	{
		float	   *h = isrf_alloc(env, (size_t) isrf_genrec_width(ss->s) * 4);

		if (h == NULL)
			return ISRF_ERR_NOMEM;
		if ((st = isrf_genrec_encode(ss->s, 1, &user, &hist, &len, h)) == ISRF_OK &&
			(st = isrf_genrec_dense_candidates(ss->s, h, n_cand, cand, scores)) == ISRF_OK)
			st = isrf_scorer_add(serve_scorer(ss, scope), user, hist, len, n_cand, cand, true, scores);
		isrf_free(env, h);
	}
	return st;
}
