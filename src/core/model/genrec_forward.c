/*
 * model/genrec_forward.c
 *	  Forward and backward of the generative model over a training batch:
 *	  the item token table, the causal explicit and group interests, the
 *	  transformer, the dense head, the code decoder and the alignment losses
 *	  (see genrec.h for the model).
 */
#include "model/genrec_internal.h"

#include "nn/layers.h"

#include <math.h>
#include <string.h>

/* Item token table = E + adapter(feat) + words W_w + alpha * iexp W_e^T. */
IsrfStatus
isrf_gr_table_forward(IsrfGenrecSession *s)
{
	IsrfBackend *be = s->be;
	const GrLayout *l = &s->lay;
	float	   *p = s->p;
	size_t		n = (size_t) s->ni * s->C;

	if (s->cfg.use_adapter)
	{
		ISRF_TRY(isrf_nn_linear_forward(be, s->a1, s->feat_s, p + l->ad_w1, p + l->ad_b1,
										s->ni, s->dm, s->C));
		ISRF_TRY(isrf_nn_gelu_forward(be, s->g1, s->a1, n));
		ISRF_TRY(isrf_nn_linear_forward(be, s->table, s->g1, p + l->ad_w2, p + l->ad_b2,
										s->ni, s->C, s->C));
		ISRF_TRY(be->axpby(be, n, 1.0f, p + l->item_emb, 1.0f, s->table));
	}
	else
		ISRF_TRY(be->copy(be, s->table, p + l->item_emb, n * 4));
	if (s->n_words > 0)
		ISRF_TRY(be->spmm(be, s->words, s->C, 1.0f, p + l->word_emb, 1.0f, s->table));
	if (s->cfg.use_explicit && s->cfg.alpha != 0.0f)
		ISRF_TRY(be->gemm(be, false, true, s->ni, s->C, s->dm, s->cfg.alpha, s->iexp_s, s->dm,
						  p + l->ex_w, s->dm, 1.0f, s->table, s->C));
	s->table_h_ok = false;		/* copied when a candidate list asks for it */
	return ISRF_OK;
}

/* Gradient of the table into E, the word embeddings, the adapter and W_e. */
static IsrfStatus
gr_table_backward(IsrfGenrecSession *s)
{
	IsrfBackend *be = s->be;
	const GrLayout *l = &s->lay;
	float	   *p = s->p,
			   *g = s->gp;
	size_t		n = (size_t) s->ni * s->C;

	ISRF_TRY(isrf_nn_accumulate(be, g + l->item_emb, s->dtable, n));
	if (s->n_words > 0)
		ISRF_TRY(be->spmm(be, s->words_t, s->C, 1.0f, s->dtable, 1.0f, g + l->word_emb));
	if (s->cfg.use_explicit && s->cfg.alpha != 0.0f)
		ISRF_TRY(be->gemm(be, true, false, s->C, s->dm, s->ni, s->cfg.alpha, s->dtable, s->C,
						  s->iexp_s, s->dm, 1.0f, g + l->ex_w, s->dm));
	if (s->cfg.use_adapter)
	{
		ISRF_TRY(be->mem_zero(be, s->dg1, n * 4));
		ISRF_TRY(be->mem_zero(be, s->da1, n * 4));
		ISRF_TRY(isrf_nn_linear_backward(be, s->dg1, g + l->ad_w2, g + l->ad_b2, s->dtable,
										 s->g1, p + l->ad_w2, s->ni, s->C, s->C));
		ISRF_TRY(isrf_nn_gelu_backward(be, s->da1, s->a1, s->dg1, n));
		ISRF_TRY(isrf_nn_linear_backward(be, NULL, g + l->ad_w1, g + l->ad_b1, s->da1,
										 s->feat_s, p + l->ad_w1, s->ni, s->dm, s->C));
	}
	return ISRF_OK;
}

/*
 * Group interests of nq queries: qf[i] (a user's feature at some point of
 * its history, any length) is compared by cosine with every user's feature,
 * qself[i] (-1: none) left out; out[i] = the similarity-weighted mean of the
 * group vectors h_v of the top group_k users of positive similarity (zero
 * when there is none).  qf and qself hold GR_QBLOCK rows.  All of it is host
 * memory and runs on the host backend: the users' features and group
 * vectors are host arrays, and the answer feeds host-built batches.
 */
static IsrfStatus
gr_group_query(IsrfGenrecSession *s, int32_t nq, float *out)
{
	IsrfBackend *be = s->hb;
	size_t		dm = (size_t) s->dm;
	int32_t		nu = s->d->n_users,
				kk = s->group_k + 1,
				i,
				j;

	ISRF_TRY(be->row_normalize(be, nq, s->dm, s->qf));
	ISRF_TRY(be->gemm(be, false, true, nq, nu, s->dm, 1.0f, s->qf, s->dm, s->ufeat_n, s->dm,
					  0.0f, s->qscore, nu));
	ISRF_TRY(be->topk_rows(be, nq, nu, s->qscore, nu, kk, false, 0, s->qidx, s->qval));
	for (i = 0; i < nq; i++)
	{
		float	   *o = out + (size_t) i * dm;
		double		wsum = 0.0;
		int32_t		taken = 0;
		size_t		c;

		memset(o, 0, dm * 4);
		for (j = 0; j < kk && taken < s->group_k; j++)
		{
			int32_t		v = s->qidx[(size_t) i * kk + j];
			float		w = s->qval[(size_t) i * kk + j];
			const float *h;

			if (v < 0 || !(w > 0.0f))
				break;
			if (v == s->qself[i])
				continue;
			h = s->ugrp_s + (size_t) v * dm;
			for (c = 0; c < dm; c++)
				o[c] += w * h[c];
			wsum += w;
			taken++;
		}
		if (wsum > 0.0)
			for (c = 0; c < dm; c++)
				o[c] = (float) (o[c] / wsum);
	}
	return ISRF_OK;
}

/*
 * Group interest after reading hist[0..len) for user `self` (-1: none):
 * the query is the mean feature of those items.  n rows, out[n x dm].
 */
IsrfStatus
isrf_gr_group_rows(IsrfGenrecSession *s, int32_t n, const int32_t *self,
			  const int32_t *const *hist, const int32_t *len, float *out)
{
	const float *feat = s->d->item_feat;
	size_t		dm = (size_t) s->dm;
	int32_t		i,
				j;

	for (i = 0; i < n; i += GR_QBLOCK)
	{
		int32_t		b = n - i < GR_QBLOCK ? n - i : GR_QBLOCK;

		memset(s->qf, 0, (size_t) b * dm * 4);
		for (j = 0; j < b; j++)
		{
			int32_t		q;
			size_t		c;

			s->qself[j] = self[i + j];
			for (q = 0; q < len[i + j]; q++)
				for (c = 0; c < dm; c++)
					s->qf[(size_t) j * dm + c] += feat[(size_t) hist[i + j][q] * dm + c];
		}
		ISRF_TRY(gr_group_query(s, b, out + (size_t) i * dm));
	}
	return ISRF_OK;
}

/*
 * A training row of user u: the last max_len + 1 train items, all but the
 * last as inputs.  Returns the number of inputs; *off gets the position of
 * the first input in the user's history.
 */
static int32_t
gr_train_inputs(const IsrfGenrecSession *s, int32_t u, int32_t *off)
{
	int32_t		nt = s->d->n_train[u],
				w = nt < s->cfg.max_len + 1 ? nt : s->cfg.max_len + 1;

	*off = nt - w;
	return w > 1 ? w - 1 : 0;
}

/* Free the training cache (below); the next training batch builds it again. */
void
isrf_gr_drop_train_cache(IsrfGenrecSession *s)
{
	isrf_free(s->env, s->gcache);
	isrf_free(s->env, s->gptr);
	s->gcache = NULL;
	s->gptr = NULL;
}

/*
 * The training cache: the group interest after every input position of
 * every user's training row (the query at position t reads the items 0..t
 * of the user's history, the user itself left out), so that every target
 * is predicted
 * from the group of users it resembled at that moment and not from a
 * neighbourhood chosen with the target already in the user's feature.
 */
static IsrfStatus
gr_group_cache(IsrfGenrecSession *s)
{
	const IsrfGenrecData *d = s->d;
	size_t		dm = (size_t) s->dm;
	int64_t		rows = 0,
				done = 0;
	int32_t		u,
				t,
				off,
				nb = 0;
	float	   *acc;
	IsrfStatus	st = ISRF_OK;

	s->gptr = isrf_alloc(s->env, ((size_t) d->n_users + 1) * 8);
	if (s->gptr == NULL)
		return ISRF_ERR_NOMEM;
	for (u = 0; u < d->n_users; u++)
	{
		s->gptr[u] = rows;
		rows += gr_train_inputs(s, u, &off);
	}
	s->gptr[d->n_users] = rows;
	s->gcache = isrf_alloc(s->env, (size_t) rows * dm * 4 + 4);
	acc = isrf_alloc(s->env, dm * 4);
	if (s->gcache == NULL || acc == NULL)
	{
		isrf_free(s->env, acc);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < d->n_users && st == ISRF_OK; u++)
	{
		const int32_t *seq = d->seq + d->seq_ptr[u];
		int32_t		n_in = gr_train_inputs(s, u, &off),
					end = off + n_in;	/* positions off .. end-1 are inputs */

		memset(acc, 0, dm * 4);
		for (t = 0; t < end; t++)
		{
			size_t		c;

			for (c = 0; c < dm; c++)
				acc[c] += d->item_feat[(size_t) seq[t] * dm + c];
			if (t < off)
				continue;		/* before the row: only in the mean */
			memcpy(s->qf + (size_t) nb * dm, acc, dm * 4);
			s->qself[nb] = u;
			if (++nb == GR_QBLOCK)
			{
				if ((st = isrf_poll(s->env)) != ISRF_OK ||
					(st = gr_group_query(s, nb, s->gcache + (size_t) done * dm)) != ISRF_OK)
					break;
				done += nb;
				nb = 0;
			}
		}
	}
	if (st == ISRF_OK && nb > 0)
		st = gr_group_query(s, nb, s->gcache + (size_t) done * dm);
	isrf_free(s->env, acc);
	return st;
}

/*
 * Explicit-interest inputs of the B x T slots: after reading items 0..j of
 * its row, a slot gets sum of their LightGCN item vectors / sqrt(j + 1) (the
 * propagation a user with those items would get), zero on padding; then
 * pu = W_u ue + b_u.
 */
static IsrfStatus
gr_explicit_inputs(IsrfGenrecSession *s, int32_t B, int32_t T,
				   const int32_t *const *hist, const int32_t *len)
{
	size_t		dm = (size_t) s->dm;
	int32_t		r,
				j;

	memset(s->ue_h, 0, (size_t) B * T * dm * 4);
	for (r = 0; r < B; r++)
	{
		int32_t		t0 = T - len[r];
		float	   *prev = NULL;

		for (j = 0; j < len[r]; j++)
		{
			float	   *e = s->ue_h + ((size_t) r * T + t0 + j) * dm;
			const float *iv = s->iexp_h + (size_t) hist[r][j] * dm;
			float		a = (float) sqrt((double) j / (double) (j + 1)),
						b = (float) (1.0 / sqrt((double) (j + 1)));
			size_t		c;

			/* e_j = (sum_{q<=j} v_q) / sqrt(j + 1), from e_{j-1} */
			for (c = 0; c < dm; c++)
				e[c] = (prev ? a * prev[c] : 0.0f) + b * iv[c];
			prev = e;
		}
	}
	ISRF_TRY(s->be->upload(s->be, s->ue, s->ue_h, (size_t) B * T * dm * 4));
	return isrf_nn_linear_forward(s->be, s->pu, s->ue, s->p + s->lay.pu_w, s->p + s->lay.pu_b,
								  B * T, s->dm, s->C);
}

/*
 * Build the inputs of B rows (items hist[r][0..len[r])), run the
 * transformer.  Rows are left-padded to the longest; the last token of row r
 * sits at column T-1.  *T_out gets T.  hl gets the last hidden state of each
 * row, before the group interest is added (the callers add it).
 */
IsrfStatus
isrf_gr_forward_rows(IsrfGenrecSession *s, int32_t B, const int32_t *const *hist,
				const int32_t *len, bool train, uint64_t seed, int32_t *T_out)
{
	IsrfBackend *be = s->be;
	size_t		C = (size_t) s->C;
	int32_t		T = 1,
				r,
				j;

	for (r = 0; r < B; r++)
	{
		if (len[r] > s->cfg.max_len)
			return isrf_fail(s->env, ISRF_ERR_INTERNAL, "history of %d items exceeds max_len", len[r]);
		if (len[r] > T)
			T = len[r];
	}
	ISRF_TRY(isrf_gr_reserve_batch(s, B, T));
	for (r = 0; r < B; r++)
	{
		int32_t		t0 = T - len[r];

		s->last_slot[r] = r * T + T - 1;
		for (j = 0; j < t0; j++)
		{
			s->pos[r * T + j] = ISRF_TF_POS_PAD;
			s->slot_item[r * T + j] = -1;
		}
		for (j = 0; j < len[r]; j++)
		{
			int32_t		it = hist[r][j];
			size_t		slot = (size_t) r * T + t0 + j;

			if (it < 0 || it >= s->ni)
				return isrf_fail(s->env, ISRF_ERR_INVALID, "item index %d out of range", it);
			s->pos[slot] = j;
			s->slot_item[slot] = it;
		}
	}
	isrf_nn_mask_left_padded(s->valid, len, B, T);
	ISRF_TRY(be->upload(be, s->slot_item_d, s->slot_item, (size_t) B * T * 4));
	ISRF_TRY(be->upload(be, s->valid_d, s->valid, (size_t) B * T));
	ISRF_TRY(be->upload(be, s->last_slot_d, s->last_slot, (size_t) B * 4));
	/* token = item row of the table (+ explicit interest), zero on padding */
	ISRF_TRY(be->gather_rows(be, s->x, s->slot_item_d, B * T, s->table, s->C, false));
	if (s->cfg.use_explicit)
	{
		ISRF_TRY(gr_explicit_inputs(s, B, T, hist, len));
		ISRF_TRY(isrf_nn_accumulate(be, s->x, s->pu, (size_t) B * T * C));
		ISRF_TRY(be->mask_rows(be, s->x, s->valid_d, B * T, s->C));
	}
	ISRF_TRY(isrf_tf_add_positions(s->tf, s->x, s->pos, B * T));
	ISRF_TRY(isrf_tf_forward(s->tf, s->x, s->valid, B, T, train, seed));
	ISRF_TRY(be->gather_rows(be, s->hl, s->last_slot_d, B, s->tf->hidden, s->C, false));
	*T_out = T;
	return ISRF_OK;
}

/*
 * z = H + sum_{j<level} cemb_j[cid_j] for P rows: H is backend memory, or
 * (hrows) host rows, staged through z; cid_d holds the codes level-major
 * (level j at cid_d + j * P).
 */
IsrfStatus
isrf_gr_code_input(IsrfGenrecSession *s, int32_t level, int32_t P, const float *const *hrows,
			  const float *H, float *z)
{
	IsrfBackend *be = s->be;
	size_t		C = (size_t) s->C;
	int32_t		i,
				j;

	if (hrows)
	{
		float	   *stage = isrf_alloc(s->env, (size_t) P * C * 4 + 4);
		IsrfStatus	st;

		if (stage == NULL)
			return ISRF_ERR_NOMEM;
		for (i = 0; i < P; i++)
			memcpy(stage + (size_t) i * C, hrows[i], C * 4);
		st = be->upload(be, z, stage, (size_t) P * C * 4);
		isrf_free(s->env, stage);
		ISRF_TRY(st);
	}
	else
		ISRF_TRY(be->copy(be, z, H, (size_t) P * C * 4));
	for (j = 0; j < level; j++)
		ISRF_TRY(be->gather_rows(be, z, s->cid_d + (size_t) j * P, P,
								 s->p + s->lay.cemb[j], s->C, true));
	return ISRF_OK;
}

/* Upload the first levels rows of s->cid (level-major, levels x P) into cid_d. */
IsrfStatus
isrf_gr_upload_codes(IsrfGenrecSession *s, int32_t P, int32_t levels)
{
	if (levels < 1 || P < 1)
		return ISRF_OK;
	return s->be->upload(s->be, s->cid_d, s->cid, (size_t) P * levels * 4);
}


static IsrfStatus gr_train_batch_inner(IsrfGenrecSession *s, int32_t B, const int32_t *users,
										uint64_t seed, const int32_t **hist, int32_t *lens,
										double *loss_out);

/*
 * One training step's loss and gradients over a batch of users (rows).
 * Gradients are accumulated into s->gp, tf->grads (zeroed by the caller).
 */
IsrfStatus
isrf_gr_train_batch(IsrfGenrecSession *s, int32_t B, const int32_t *users, uint64_t seed,
			   double *loss_out)
{
	IsrfEnv    *env = s->env;
	const int32_t **hist;
	int32_t    *lens;
	IsrfStatus	st;

	hist = isrf_alloc(env, sizeof(*hist) * (size_t) B);
	lens = isrf_alloc(env, sizeof(*lens) * (size_t) B);
	if (hist == NULL || lens == NULL)
	{
		isrf_free(env, hist);
		isrf_free(env, lens);
		return ISRF_ERR_NOMEM;
	}
	st = gr_train_batch_inner(s, B, users, seed, hist, lens, loss_out);
	isrf_free(env, hist);
	isrf_free(env, lens);
	return st;
}

/* Sum of the first n per-row losses of the last softmax_ce, in row order. */
static IsrfStatus
gr_loss_sum(IsrfGenrecSession *s, int32_t n, double *total)
{
	int32_t		q;

	ISRF_TRY(s->be->download(s->be, s->row_loss_h, s->row_loss, (size_t) n * 4));
	*total = 0.0;
	for (q = 0; q < n; q++)
		*total += (double) s->row_loss_h[q];
	return ISRF_OK;
}

/*
 * The alignment losses on the host: InfoNCE(h_last, g_u) and
 * InfoNCE(g_u, stop-grad e_u), with g_u / e_u the projected group / explicit
 * interest at each row's last position and h_last its hidden state before
 * the group joins it.  B x C rows come down, their gradients go back up into
 * dhl and dlg (zero when no loss is on).
 */
static IsrfStatus
gr_alignment(IsrfGenrecSession *s, int32_t B, double *loss)
{
	IsrfBackend *be = s->be,
			   *hb = s->hb;
	const IsrfGenrecConfig *cfg = &s->cfg;
	size_t		bc = (size_t) B * s->C;
	float		il;

	if (!s->gcache || !cfg->use_align || !(cfg->lambda1 > 0.0f || cfg->lambda2 > 0.0f))
	{
		ISRF_TRY(be->mem_zero(be, s->dhl, bc * 4));
		return be->mem_zero(be, s->dlg, bc * 4);
	}
	memset(s->dhl_h, 0, bc * 4);
	memset(s->dlg_h, 0, bc * 4);
	ISRF_TRY(be->gather_rows(be, s->lg, s->row_last_d, B, s->pgP, s->C, false));
	ISRF_TRY(be->download(be, s->lg_h, s->lg, bc * 4));
	isrf_nn_l2norm_forward(s->nb, s->norm_b, s->lg_h, B, s->C);
	memset(s->dnb, 0, bc * 4);
	if (cfg->lambda2 > 0.0f)
	{
		ISRF_TRY(be->download(be, s->hl_h, s->hl, bc * 4));
		isrf_nn_l2norm_forward(s->na, s->norm_a, s->hl_h, B, s->C);
		memset(s->dna, 0, bc * 4);
		ISRF_TRY(isrf_nn_infonce(hb, s->na, s->nb, B, s->C, cfg->tau, true, cfg->lambda2,
								 &il, s->dna, s->dnb));
		*loss += cfg->lambda2 * il;
		isrf_nn_l2norm_backward(s->dhl_h, s->dna, s->na, s->norm_a, B, s->C);
	}
	if (cfg->lambda1 > 0.0f && cfg->use_explicit)
	{
		ISRF_TRY(be->gather_rows(be, s->lu, s->last_slot_d, B, s->pu, s->C, false));
		ISRF_TRY(be->download(be, s->lu_h, s->lu, bc * 4));
		isrf_nn_l2norm_forward(s->nc, s->norm_c, s->lu_h, B, s->C);
		ISRF_TRY(isrf_nn_infonce(hb, s->nb, s->nc, B, s->C, cfg->tau, true, cfg->lambda1,
								 &il, s->dnb, NULL));
		*loss += cfg->lambda1 * il;
	}
	isrf_nn_l2norm_backward(s->dlg_h, s->dnb, s->nb, s->norm_b, B, s->C);
	ISRF_TRY(be->upload(be, s->dhl, s->dhl_h, bc * 4));
	return be->upload(be, s->dlg, s->dlg_h, bc * 4);
}

/* The body of gr_train_batch with its row arrays supplied. */
static IsrfStatus
gr_train_batch_inner(IsrfGenrecSession *s, int32_t B, const int32_t *users, uint64_t seed,
					 const int32_t **hist, int32_t *lens, double *loss_out)
{
	IsrfBackend *be = s->be;
	const IsrfGenrecData *d = s->d;
	const GrLayout *l = &s->lay;
	const IsrfGenrecConfig *cfg = &s->cfg;
	size_t		C = (size_t) s->C;
	int32_t		T,
				P = 0,
				r,
				j,
				lev;
	double		loss = 0.0,
				part;

	ISRF_TRY(isrf_gr_table_forward(s));
	if (s->ufeat_n && s->gcache == NULL)
		ISRF_TRY(gr_group_cache(s));
	for (r = 0; r < B; r++)
	{
		int32_t		off;

		lens[r] = gr_train_inputs(s, users[r], &off);	/* targets: the next items */
		hist[r] = d->seq + d->seq_ptr[users[r]] + off;
		P += lens[r];
	}
	ISRF_TRY(isrf_gr_forward_rows(s, B, hist, lens, true, seed, &T));
	ISRF_TRY(isrf_gr_reserve_targets(s, P));

	/* the target positions: slots, next items, group interests (host) */
	P = 0;
	for (r = 0; r < B; r++)
	{
		int32_t		u = users[r];

		for (j = 0; j < lens[r]; j++)
		{
			s->tslot[P] = r * T + (T - lens[r] + j);
			s->tgt[P] = hist[r][j + 1];
			if (s->gcache)
				memcpy(s->ugP_h + (size_t) P * s->dm,
					   s->gcache + (size_t) (s->gptr[u] + j) * s->dm, (size_t) s->dm * 4);
			P++;
		}
		s->row_last[r] = P - 1;
	}
	ISRF_TRY(be->upload(be, s->tslot_d, s->tslot, (size_t) P * 4));
	ISRF_TRY(be->upload(be, s->tgt_d, s->tgt, (size_t) P * 4));
	ISRF_TRY(be->upload(be, s->row_last_d, s->row_last, (size_t) B * 4));
	ISRF_TRY(be->gather_rows(be, s->H, s->tslot_d, P, s->tf->hidden, s->C, false));
	/* the group interest at each position joins the hidden state */
	if (s->gcache)
	{
		ISRF_TRY(be->upload(be, s->ugP, s->ugP_h, (size_t) P * s->dm * 4));
		ISRF_TRY(isrf_nn_linear_forward(be, s->pgP, s->ugP, s->p + l->pg_w, s->p + l->pg_b,
										P, s->dm, s->C));
		ISRF_TRY(isrf_nn_accumulate(be, s->H, s->pgP, (size_t) P * C));
	}
	ISRF_TRY(be->mem_zero(be, s->dH, (size_t) P * C * 4));
	ISRF_TRY(be->mem_zero(be, s->dtable, (size_t) s->ni * C * 4));

	/* dense head, tied to the token table, in chunks of rows */
	for (j = 0; j < P; j += s->chunk)
	{
		int32_t		n = P - j < s->chunk ? P - j : s->chunk;

		ISRF_TRY(be->gemm(be, false, true, n, s->ni, s->C, 1.0f, s->H + (size_t) j * C, s->C,
						  s->table, s->C, 0.0f, s->logits, s->ni));
		ISRF_TRY(be->softmax_ce(be, s->logits, s->ni, s->tgt_d + j, n, s->ni, 1.0f / (float) P,
								s->row_loss, s->logits));
		ISRF_TRY(gr_loss_sum(s, n, &part));
		loss += part / P;
		ISRF_TRY(be->gemm(be, false, false, n, s->C, s->ni, 1.0f, s->logits, s->ni,
						  s->table, s->C, 1.0f, s->dH + (size_t) j * C, s->C));
		ISRF_TRY(be->gemm(be, true, false, s->ni, s->C, n, 1.0f, s->logits, s->ni,
						  s->H + (size_t) j * C, s->C, 1.0f, s->dtable, s->C));
	}

	/* generative head: teacher-forced code decoder */
	if (cfg->use_generative && s->levels > 0 && cfg->gen_weight > 0.0f)
	{
		for (j = 0; j < P; j++)
			for (lev = 0; lev < s->levels; lev++)
				s->cid[(size_t) lev * P + j] = s->codes[(size_t) s->tgt[j] * s->levels + lev];
		ISRF_TRY(isrf_gr_upload_codes(s, P, s->levels));
		for (lev = 0; lev < s->levels; lev++)
		{
			int32_t		K = s->ks[lev],
						i;
			const int32_t *tg = s->cid_d + (size_t) lev * P;

			ISRF_TRY(isrf_gr_code_input(s, lev, P, NULL, s->H, s->z));
			ISRF_TRY(be->mem_zero(be, s->dz, (size_t) P * C * 4));
			for (i = 0; i < P; i += s->chunk)
			{
				int32_t		n = P - i < s->chunk ? P - i : s->chunk;
				float		gs = cfg->gen_weight * (float) n / (float) P;

				ISRF_TRY(isrf_nn_linear_forward(be, s->logits, s->z + (size_t) i * C,
												s->p + l->dec_w[lev], s->p + l->dec_b[lev],
												n, s->C, K));
				/* the mean over the chunk's n rows, weighted n / P */
				ISRF_TRY(be->softmax_ce(be, s->logits, K, tg + i, n, K, gs / (float) n,
										s->row_loss, s->logits));
				ISRF_TRY(gr_loss_sum(s, n, &part));
				loss += cfg->gen_weight * (float) (part / n) * (double) n / P;
				ISRF_TRY(isrf_nn_linear_backward(be, s->dz + (size_t) i * C, s->gp + l->dec_w[lev],
												 s->gp + l->dec_b[lev], s->logits,
												 s->z + (size_t) i * C, s->p + l->dec_w[lev],
												 n, s->C, K));
			}
			ISRF_TRY(isrf_nn_accumulate(be, s->dH, s->dz, (size_t) P * C));
			for (i = 0; i < lev; i++)
				ISRF_TRY(be->scatter_add_rows(be, s->gp + l->cemb[i], s->cid_d + (size_t) i * P, P,
											  s->dz, s->C));
		}
	}

	ISRF_TRY(gr_alignment(s, B, &loss));

	/* the group projection: its share of dH plus the alignment's */
	if (s->gcache)
	{
		ISRF_TRY(be->copy(be, s->dpgP, s->dH, (size_t) P * C * 4));
		ISRF_TRY(be->scatter_add_rows(be, s->dpgP, s->row_last_d, B, s->dlg, s->C));
		ISRF_TRY(isrf_nn_linear_backward(be, NULL, s->gp + l->pg_w, s->gp + l->pg_b, s->dpgP,
										 s->ugP, s->p + l->pg_w, P, s->dm, s->C));
	}

	/* back through the transformer */
	ISRF_TRY(be->mem_zero(be, s->dhid, (size_t) B * T * C * 4));
	ISRF_TRY(be->scatter_add_rows(be, s->dhid, s->tslot_d, P, s->dH, s->C));
	ISRF_TRY(be->scatter_add_rows(be, s->dhid, s->last_slot_d, B, s->dhl, s->C));
	ISRF_TRY(isrf_tf_backward(s->tf, s->dhid, s->dx));
	ISRF_TRY(isrf_tf_add_positions_backward(s->tf, s->dx, s->pos, B * T));
	ISRF_TRY(isrf_nn_embedding_backward(be, s->dtable, s->slot_item_d, B * T, s->dx, s->C));
	if (cfg->use_explicit)
	{
		/* the explicit input was added on item slots only */
		ISRF_TRY(be->copy(be, s->dpu, s->dx, (size_t) B * T * C * 4));
		ISRF_TRY(be->mask_rows(be, s->dpu, s->valid_d, B * T, s->C));
		ISRF_TRY(isrf_nn_linear_backward(be, NULL, s->gp + l->pu_w, s->gp + l->pu_b, s->dpu,
										 s->ue, s->p + l->pu_w, B * T, s->dm, s->C));
	}
	ISRF_TRY(gr_table_backward(s));
	*loss_out = loss;
	return ISRF_OK;
}
