/*
 * model/genrec_infer.c
 *	  Inference with a trained generative model: the hidden state after a
 *	  history, dense scores of every item or of candidates, the code
 *	  decoder's log-probabilities for the beam search, and the full-ranking
 *	  rank of targets that validation and evaluation use.
 */
#include "model/genrec_internal.h"

#include "eval/metrics.h"
#include "nn/layers.h"

#include <math.h>
#include <string.h>

/* The length of a history the encoder reads: its most recent max_len items. */
static inline int32_t
gr_capped(int32_t len, int32_t max_len)
{
	return len < max_len ? len : max_len;
}

/*
 * Encode n users into h (host), the users of equal (max_len-capped) history
 * length together, up to 256 at a time: a forward pass is padded to its
 * longest history, so grouping by length wastes no work on padding, and a
 * user's state does not depend on the longest history it was batched with
 * (it may still round differently with the number of rows of the products,
 * as a BLAS may).
 */
IsrfStatus
isrf_gr_encode(IsrfGenrecSession *s, int32_t n, const int32_t *users, const int32_t *const *hist,
		  const int32_t *hist_len, float *h)
{
	const int32_t *rows[256],
			   *bhist[256];
	int32_t		lens[256],
				busers[256],
				blen[256];
	int32_t    *order = NULL,
			   *start = NULL;
	float	   *hb = NULL;
	int32_t		max_len = s->cfg.max_len,
				a,
				b,
				j,
				T;
	IsrfStatus	st = ISRF_OK;

	for (j = 0; j < n; j++)
		if (hist_len[j] < 0)
			return isrf_fail(s->env, ISRF_ERR_INVALID, "negative history length %d", hist_len[j]);
	order = isrf_alloc(s->env, (size_t) n * 4 + 4);
	start = isrf_calloc(s->env, (size_t) max_len + 2, 4);
	hb = isrf_alloc(s->env, (size_t) 256 * s->C * 4);
	if (!order || !start || !hb)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	/* a stable counting sort of the users by capped length */
	for (j = 0; j < n; j++)
		start[gr_capped(hist_len[j], max_len) + 1]++;
	for (j = 1; j <= max_len + 1; j++)
		start[j] += start[j - 1];
	for (j = 0; j < n; j++)
		order[start[gr_capped(hist_len[j], max_len)]++] = j;
	for (a = 0; a < n; a = b)
	{
		int32_t		L = gr_capped(hist_len[order[a]], max_len);

		for (b = a; b < n && b - a < 256 && gr_capped(hist_len[order[b]], max_len) == L; b++)
		{
			int32_t		u = order[b];

			busers[b - a] = users[u];
			bhist[b - a] = hist[u];
			blen[b - a] = hist_len[u];
			lens[b - a] = L;
			rows[b - a] = hist[u] + (hist_len[u] - L);
		}
		if ((st = isrf_gr_forward_rows(s, b - a, rows, lens, false, 0, &T)) != ISRF_OK)
			goto done;
		if (s->ufeat_n)
		{
			/* the group interest after the whole given history */
			if ((st = isrf_gr_group_rows(s, b - a, busers, bhist, blen, s->ug_h)) != ISRF_OK ||
				(st = s->be->upload(s->be, s->ug, s->ug_h, (size_t) (b - a) * s->dm * 4)) != ISRF_OK ||
				(st = isrf_nn_linear_forward(s->be, s->lg, s->ug, s->p + s->lay.pg_w,
											 s->p + s->lay.pg_b, b - a, s->dm, s->C)) != ISRF_OK ||
				(st = isrf_nn_accumulate(s->be, s->hl, s->lg, (size_t) (b - a) * s->C)) != ISRF_OK)
				goto done;
		}
		if ((st = s->be->download(s->be, hb, s->hl, (size_t) (b - a) * s->C * 4)) != ISRF_OK)
			goto done;
		for (j = a; j < b; j++)
			memcpy(h + (size_t) order[j] * s->C, hb + (size_t) (j - a) * s->C, (size_t) s->C * 4);
	}

done:
	isrf_free(s->env, order);
	isrf_free(s->env, start);
	isrf_free(s->env, hb);
	return st;
}

IsrfStatus
isrf_genrec_encode(IsrfGenrecSession *s, int32_t n, const int32_t *users,
				   const int32_t *const *hist, const int32_t *hist_len, float *h)
{
	int32_t		i;

	for (i = 0; i < n; i++)
		if (users[i] >= s->d->n_users)
			return isrf_fail(s->env, ISRF_ERR_INVALID, "user index %d out of range", users[i]);
	return isrf_gr_encode(s, n, users, hist, hist_len, h);
}

/*
 * Dense scores of b <= s->chunk host rows h against every item, into host
 * memory: *out points at s->logits on a host backend, else at its
 * downloaded copy.
 */
IsrfStatus
isrf_gr_dense_chunk(IsrfGenrecSession *s, int32_t b, const float *h, float **out)
{
	IsrfBackend *be = s->be;
	size_t		bytes = (size_t) b * s->ni * 4;

	if (b < 0 || b > s->chunk)
		return isrf_fail(s->env, ISRF_ERR_INTERNAL, "dense scores of %d rows at once (at most %d)",
						 b, s->chunk);
	ISRF_TRY(be->upload(be, s->hq, h, (size_t) b * s->C * 4));
	ISRF_TRY(be->gemm(be, false, true, b, s->ni, s->C, 1.0f, s->hq, s->C,
					  s->table, s->C, 0.0f, s->logits, s->ni));
	if (s->logits_h == NULL)
	{
		*out = s->logits;
		return ISRF_OK;
	}
	*out = s->logits_h;
	return be->download(be, s->logits_h, s->logits, bytes);
}

IsrfStatus
isrf_genrec_dense_scores(IsrfGenrecSession *s, int32_t n, const float *h, float *scores)
{
	int32_t		i;

	for (i = 0; i < n; i += s->chunk)
	{
		int32_t		b = n - i < s->chunk ? n - i : s->chunk;
		float	   *sc;

		ISRF_TRY(isrf_gr_dense_chunk(s, b, h + (size_t) i * s->C, &sc));
		memcpy(scores + (size_t) i * s->ni, sc, (size_t) b * s->ni * 4);
	}
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_dense_candidates(IsrfGenrecSession *s, const float *h, int32_t n_cand,
							 const int32_t *cand, float *scores)
{
	int32_t		i,
				c;

	/* a few dot products: on the host, from a copy of the table */
	if (s->table_h && !s->table_h_ok)
	{
		ISRF_TRY(s->be->download(s->be, s->table_h, s->table, (size_t) s->ni * s->C * 4));
		s->table_h_ok = true;
	}
	for (i = 0; i < n_cand; i++)
	{
		const float *e;
		double		acc = 0.0;

		if (cand[i] < 0 || cand[i] >= s->ni)
		{
			scores[i] = NAN;
			continue;
		}
		e = (s->table_h ? s->table_h : s->table) + (size_t) cand[i] * s->C;
		for (c = 0; c < s->C; c++)
			acc += (double) h[c] * e[c];
		scores[i] = (float) acc;
	}
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_code_logp(IsrfGenrecSession *s, int32_t level, int32_t n,
					  const float *const *h_rows, const int32_t *prefix, float *logp)
{
	int32_t		K,
				i,
				j;

	if (level < 0 || level >= s->levels)
		return isrf_fail(s->env, ISRF_ERR_INVALID, "code level %d out of range 0..%d", level, s->levels - 1);
	K = s->ks[level];
	if (n > s->chunk)
	{
		for (i = 0; i < n; i += s->chunk)
			ISRF_TRY(isrf_genrec_code_logp(s, level, n - i < s->chunk ? n - i : s->chunk,
										   h_rows + i, prefix + (size_t) i * level,
										   logp + (size_t) i * K));
		return ISRF_OK;
	}
	ISRF_TRY(isrf_gr_reserve_targets(s, n));
	for (j = 0; j < level; j++)
		for (i = 0; i < n; i++)
			s->cid[(size_t) j * n + i] = prefix[(size_t) i * level + j];
	ISRF_TRY(isrf_gr_upload_codes(s, n, level));
	ISRF_TRY(isrf_gr_code_input(s, level, n, h_rows, NULL, s->z));
	ISRF_TRY(isrf_nn_linear_forward(s->be, s->logits, s->z, s->p + s->lay.dec_w[level],
									s->p + s->lay.dec_b[level], n, s->C, K));
	ISRF_TRY(s->be->download(s->be, logp, s->logits, (size_t) n * K * 4));
	for (i = 0; i < n; i++)
	{
		float	   *row = logp + (size_t) i * K;
		float		mx = row[0];
		double		sum = 0.0;
		float		lse;

		for (j = 1; j < K; j++)
			if (row[j] > mx)
				mx = row[j];
		for (j = 0; j < K; j++)
			sum += exp((double) (row[j] - mx));
		lse = mx + (float) log(sum);
		for (j = 0; j < K; j++)
			row[j] -= lse;
	}
	return ISRF_OK;
}

IsrfScorer *
isrf_genrec_scorer(IsrfGenrecSession *s)
{
	return &s->scorer;
}

IsrfStatus
isrf_genrec_score_terms(IsrfGenrecSession *s, int32_t user, const int32_t *hist, int32_t len,
						int32_t n, const int32_t *cand, bool direct, float *scores)
{
	return isrf_scorer_add(&s->scorer, user, hist, len, n, cand, direct, scores);
}

IsrfStatus
isrf_genrec_rank_targets(IsrfGenrecSession *s, int32_t n, const int32_t *users,
						 const int32_t *n_input, const int32_t *target, int32_t *ranks)
{
	const IsrfGenrecData *d = s->d;
	const int32_t *hist[256];
	float	   *h,
			   *scores;
	int32_t		i,
				j;
	IsrfStatus	st = ISRF_OK;

	h = isrf_alloc(s->env, (size_t) 256 * s->C * 4);
	if (h == NULL)
		return ISRF_ERR_NOMEM;
	for (i = 0; i < n && st == ISRF_OK; i += 256)
	{
		int32_t		b = n - i < 256 ? n - i : 256;

		if ((st = isrf_poll(s->env)) != ISRF_OK)
			break;
		for (j = 0; j < b; j++)
			hist[j] = d->seq + d->seq_ptr[users[i + j]];
		if ((st = isrf_gr_encode(s, b, users + i, hist, n_input + i, h)) != ISRF_OK)
			break;
		if ((st = isrf_gr_dense_chunk(s, b, h, &scores)) != ISRF_OK)
			break;
		for (j = 0; j < b; j++)
		{
			float	   *sc = scores + (size_t) j * s->ni;
			int32_t		q;

			if (s->scorer.w.prior != 0.0f &&
				(st = isrf_genrec_score_terms(s, users[i + j], hist[j], n_input[i + j], s->ni, NULL, false, sc)) != ISRF_OK)
				break;
			for (q = 0; q < n_input[i + j]; q++)
				sc[hist[j][q]] = NAN;
			ranks[i + j] = isrf_full_rank(sc, s->ni, target[i + j], 0);
		}
	}
	isrf_free(s->env, h);
	return st;
}

IsrfStatus
isrf_genrec_trie(IsrfEnv *env, const IsrfGenrec *g, IsrfTrie *out)
{
	if (g->levels < 1 || g->codes == NULL)
		return isrf_fail(env, ISRF_ERR_INVALID, "the model has no generative head (use_generative was off)");
	return isrf_trie_build(env, g->codes, g->n_items, g->levels, g->codebook_sizes, out);
}
