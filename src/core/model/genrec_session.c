/*
 * model/genrec_session.c
 *	  A session of the generative model on a backend: its weights, the frozen
 *	  inputs of the item token table, the group-interest search, the scorer,
 *	  and the batch buffers that grow on demand (see genrec_internal.h).
 */
#include "model/genrec_internal.h"

#include "nn/layers.h"

#include <math.h>
#include <string.h>

/* Backend allocation that records failure; *p stays NULL on failure. */
IsrfStatus
isrf_gr_mem(IsrfBackend *be, void **p, size_t bytes)
{
	return be->mem_alloc(be, bytes ? bytes : 4, p);
}

void
isrf_gr_mem_free(IsrfBackend *be, void **p)
{
	if (*p)
		be->mem_free(be, *p);
	*p = NULL;
}

/* Host allocation that records failure; *p stays NULL on failure. */
IsrfStatus
isrf_gr_host(IsrfEnv *env, void **p, size_t bytes)
{
	*p = isrf_alloc(env, bytes ? bytes : 4);
	return *p ? ISRF_OK : ISRF_ERR_NOMEM;
}

void
isrf_gr_host_free(IsrfEnv *env, void **p)
{
	isrf_free(env, *p);
	*p = NULL;
}

/* Release the batch buffers. */
static void
gr_free_batch(IsrfGenrecSession *s)
{
	IsrfBackend *be = s->be;
	IsrfEnv    *env = s->env;
	void	  **dev[] = {
		(void **) &s->x, (void **) &s->dx, (void **) &s->dhid, (void **) &s->slot_item_d,
		(void **) &s->valid_d, (void **) &s->ue, (void **) &s->pu, (void **) &s->dpu,
		(void **) &s->ug, (void **) &s->lu, (void **) &s->lg, (void **) &s->dlg,
		(void **) &s->hl, (void **) &s->dhl, (void **) &s->last_slot_d, (void **) &s->row_last_d
	};
	void	  **host[] = {
		(void **) &s->pos, (void **) &s->slot_item, (void **) &s->valid, (void **) &s->ue_h,
		(void **) &s->ug_h, (void **) &s->last_slot, (void **) &s->hl_h, (void **) &s->lg_h,
		(void **) &s->lu_h, (void **) &s->dhl_h, (void **) &s->dlg_h, (void **) &s->na,
		(void **) &s->nb, (void **) &s->nc, (void **) &s->dna, (void **) &s->dnb,
		(void **) &s->norm_a, (void **) &s->norm_b, (void **) &s->norm_c, (void **) &s->row_last
	};
	size_t		i;

	for (i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
		isrf_gr_mem_free(be, dev[i]);
	for (i = 0; i < sizeof(host) / sizeof(host[0]); i++)
		isrf_gr_host_free(env, host[i]);
	s->cap_rows = s->cap_bt = 0;
}

static void
gr_free_targets(IsrfGenrecSession *s)
{
	isrf_gr_mem_free(s->be, (void **) &s->H);
	isrf_gr_mem_free(s->be, (void **) &s->dH);
	isrf_gr_mem_free(s->be, (void **) &s->z);
	isrf_gr_mem_free(s->be, (void **) &s->dz);
	isrf_gr_mem_free(s->be, (void **) &s->pgP);
	isrf_gr_mem_free(s->be, (void **) &s->dpgP);
	isrf_gr_mem_free(s->be, (void **) &s->ugP);
	isrf_gr_mem_free(s->be, (void **) &s->tgt_d);
	isrf_gr_mem_free(s->be, (void **) &s->tslot_d);
	isrf_gr_mem_free(s->be, (void **) &s->cid_d);
	isrf_gr_host_free(s->env, (void **) &s->ugP_h);
	isrf_gr_host_free(s->env, (void **) &s->tgt);
	isrf_gr_host_free(s->env, (void **) &s->tslot);
	isrf_gr_host_free(s->env, (void **) &s->cid);
	s->cap_p = 0;
}

/* Make room for B rows of T tokens. */
IsrfStatus
isrf_gr_reserve_batch(IsrfGenrecSession *s, int32_t B, int32_t T)
{
	IsrfBackend *be = s->be;
	IsrfEnv    *env = s->env;
	size_t		C = (size_t) s->C,
				dm = (size_t) s->dm,
				b,
				bt;

	if (B <= s->cap_rows && B * T <= s->cap_bt)
		return ISRF_OK;
	gr_free_batch(s);
	b = (size_t) B;
	bt = (size_t) B * T;
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->x, bt * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dx, bt * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dhid, bt * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->pos, bt * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->slot_item, bt * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->slot_item_d, bt * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->valid, bt));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->valid_d, bt));
	if (s->cfg.use_explicit)
	{
		ISRF_TRY(isrf_gr_mem(be, (void **) &s->ue, bt * dm * 4));
		ISRF_TRY(isrf_gr_host(env, (void **) &s->ue_h, bt * dm * 4));
		ISRF_TRY(isrf_gr_mem(be, (void **) &s->pu, bt * C * 4));
		ISRF_TRY(isrf_gr_mem(be, (void **) &s->dpu, bt * C * 4));
		ISRF_TRY(isrf_gr_mem(be, (void **) &s->lu, b * C * 4));
	}
	if (s->ufeat_n)
	{
		ISRF_TRY(isrf_gr_mem(be, (void **) &s->ug, b * dm * 4));
		ISRF_TRY(isrf_gr_host(env, (void **) &s->ug_h, b * dm * 4));
	}
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->lg, b * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dlg, b * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->hl, b * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dhl, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->last_slot, b * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->last_slot_d, b * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->hl_h, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->lg_h, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->lu_h, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->dhl_h, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->dlg_h, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->na, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->nb, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->nc, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->dna, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->dnb, b * C * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->norm_a, b * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->norm_b, b * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->norm_c, b * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->row_last, b * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->row_last_d, b * 4));
	s->cap_rows = B;
	s->cap_bt = B * T;
	return ISRF_OK;
}

/* Make room for P target positions. */
IsrfStatus
isrf_gr_reserve_targets(IsrfGenrecSession *s, int32_t P)
{
	IsrfBackend *be = s->be;
	IsrfEnv    *env = s->env;
	size_t		C = (size_t) s->C,
				p = (size_t) P,
				lv = (size_t) (s->levels > 0 ? s->levels : 1);

	if (P <= s->cap_p)
		return ISRF_OK;
	gr_free_targets(s);
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->H, p * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dH, p * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->z, p * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dz, p * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->pgP, p * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->dpgP, p * C * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->ugP, p * (size_t) s->dm * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->ugP_h, p * (size_t) s->dm * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->tgt, p * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->tgt_d, p * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->tslot, p * 4));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->tslot_d, p * 4));
	ISRF_TRY(isrf_gr_host(env, (void **) &s->cid, p * 4 * lv));
	ISRF_TRY(isrf_gr_mem(be, (void **) &s->cid_d, p * 4 * lv));
	s->cap_p = P;
	return ISRF_OK;
}

void
isrf_genrec_session_close(IsrfGenrecSession *s)
{
	IsrfBackend *be;

	if (s == NULL)
		return;
	be = s->be;
	gr_free_batch(s);
	gr_free_targets(s);
	isrf_gr_mem_free(be, (void **) &s->p);
	isrf_gr_mem_free(be, (void **) &s->gp);
	isrf_gr_mem_free(be, (void **) &s->feat_s);
	isrf_gr_mem_free(be, (void **) &s->iexp_s);
	isrf_gr_mem_free(be, (void **) &s->a1);
	isrf_gr_mem_free(be, (void **) &s->g1);
	isrf_gr_mem_free(be, (void **) &s->table);
	isrf_gr_mem_free(be, (void **) &s->dtable);
	isrf_gr_mem_free(be, (void **) &s->dg1);
	isrf_gr_mem_free(be, (void **) &s->da1);
	isrf_gr_mem_free(be, (void **) &s->logits);
	isrf_gr_mem_free(be, (void **) &s->hq);
	isrf_gr_mem_free(be, (void **) &s->row_loss);
	isrf_free(s->env, s->row_loss_h);
	isrf_free(s->env, s->logits_h);
	isrf_free(s->env, s->iexp_h);
	isrf_free(s->env, s->table_h);
	if (s->hb)
	{
		isrf_gr_mem_free(s->hb, (void **) &s->qf);
		isrf_gr_mem_free(s->hb, (void **) &s->qscore);
		isrf_gr_mem_free(s->hb, (void **) &s->qval);
		isrf_gr_mem_free(s->hb, (void **) &s->qidx);
		isrf_gr_mem_free(s->hb, (void **) &s->qself);
	}
	isrf_free(s->env, s->ufeat_n);
	isrf_free(s->env, s->ugrp_s);
	isrf_gr_drop_train_cache(s);
	isrf_scorer_free(&s->scorer);
	if (s->words)
		be->csr_destroy(be, s->words);
	if (s->words_t)
		be->csr_destroy(be, s->words_t);
	isrf_tf_destroy(s->tf);
	if (s->own_hb)
		isrf_backend_close(s->hb);
	isrf_free(s->env, s);
}

/* RMS of the entries of x[n] (1 when zero, so scaling leaves zeros alone). */
float
isrf_gr_rms(const float *x, size_t n)
{
	double		ss = 0.0;
	size_t		i;

	if (x == NULL || n == 0)
		return 1.0f;
	for (i = 0; i < n; i++)
		ss += (double) x[i] * x[i];
	ss = sqrt(ss / (double) n);
	return ss > 1e-12 ? (float) ss : 1.0f;
}

/* Entry p of the items' TF-IDF rows holds a word. */
static inline bool
gr_word_entry(const IsrfCsr *t, int32_t p)
{
	return t->val[p] != 0.0f && t->col[p] >= 0 && t->col[p] < t->n_cols;
}

/*
 * The word embeddings' vocabulary: the columns of the items' TF-IDF rows
 * that hold a word of some item (0 without word embeddings or text).
 */
IsrfStatus
isrf_gr_word_count(IsrfEnv *env, const IsrfGenrecConfig *cfg, const IsrfGenrecData *d,
				   int32_t *out)
{
	const IsrfCsr *t = d->item_text;
	int32_t    *map;

	*out = 0;
	if (!cfg->use_word_emb || t == NULL || t->nnz == 0 || t->n_rows != d->n_items)
		return ISRF_OK;
	if ((map = isrf_alloc(env, ((size_t) t->n_cols + 1) * 4)) == NULL)
		return ISRF_ERR_NOMEM;
	*out = isrf_csr_column_map(t, map);
	isrf_free(env, map);
	return ISRF_OK;
}

/*
 * The items' words as backend matrices: rows of the TF-IDF matrix with its
 * used columns numbered 0 .. n_words-1 in column order and each row scaled
 * to unit length (an item's word vector is the weighted mean of its words'
 * embeddings), and, for training, the transpose, which carries the table's
 * gradient back to the words.
 */
static IsrfStatus
gr_words_create(IsrfGenrecSession *s)
{
	const IsrfCsr *t = s->d->item_text;
	IsrfEnv    *env = s->env;
	int32_t    *map = NULL,
			   *rows = NULL,
			   *cols = NULL;
	float	   *vals = NULL;
	IsrfCsr		w,
				wt;
	int32_t		n,
				r,
				p;
	int64_t		k = 0;
	IsrfStatus	st = ISRF_ERR_NOMEM;

	memset(&w, 0, sizeof(w));
	memset(&wt, 0, sizeof(wt));
	if (t == NULL || t->n_rows != s->ni)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "the model has word embeddings but no item words");
	map = isrf_alloc(env, ((size_t) t->n_cols + 1) * 4);
	rows = isrf_alloc(env, ((size_t) t->nnz + 1) * 4);
	cols = isrf_alloc(env, ((size_t) t->nnz + 1) * 4);
	vals = isrf_alloc(env, ((size_t) t->nnz + 1) * 4);
	if (!map || !rows || !cols || !vals)
		goto done;
	if ((n = isrf_csr_column_map(t, map)) != s->n_words)
	{
		st = isrf_fail(env, ISRF_ERR_CORRUPT, "the model's word embeddings have %d words, its items %d",
					   s->n_words, n);
		goto done;
	}
	for (r = 0; r < t->n_rows; r++)
	{
		double		ss = 0.0;
		int64_t		k0 = k;

		for (p = t->rowptr[r]; p < t->rowptr[r + 1]; p++)
			if (gr_word_entry(t, p))
			{
				rows[k] = r;
				cols[k] = map[t->col[p]];
				vals[k] = t->val[p];
				ss += (double) t->val[p] * t->val[p];
				k++;
			}
		for (; k0 < k && ss > 0.0; k0++)
			vals[k0] = (float) (vals[k0] / sqrt(ss));
	}
	/* the transpose only carries gradients: training sessions alone need it */
	if ((st = isrf_csr_from_coo(env, s->ni, n, k, rows, cols, vals, &w)) != ISRF_OK ||
		(st = s->be->csr_create(s->be, &w, &s->words)) != ISRF_OK ||
		(s->train &&
		 ((st = isrf_csr_from_coo(env, n, s->ni, k, cols, rows, vals, &wt)) != ISRF_OK ||
		  (st = s->be->csr_create(s->be, &wt, &s->words_t)) != ISRF_OK)))
		goto done;
	st = ISRF_OK;

done:
	isrf_csr_free(env, &w);
	isrf_csr_free(env, &wt);
	isrf_free(env, map);
	isrf_free(env, rows);
	isrf_free(env, cols);
	isrf_free(env, vals);
	return st;
}

/*
 * Open a session with the given sizes; weights are left zero for the caller
 * to initialise or upload.
 */
IsrfStatus
isrf_gr_session_create(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecConfig *cfg,
					   const IsrfGenrecData *d, int32_t levels, const int32_t *ks,
					   const int32_t *codes, const float *scale,
					   const IsrfScoreWeights *weights, int32_t n_words, bool train,
					   IsrfGenrecSession **out)
{
	IsrfGenrecSession *s;
	IsrfTfConfig tcfg;
	size_t		ni = (size_t) d->n_items,
				dm = (size_t) d->dm,
				C = (size_t) cfg->d_model,
				i;
	IsrfStatus	st;

	*out = NULL;
	ISRF_TRY(isrf_genrec_config_check(env, cfg));
	if (d->n_items < 1 || d->dm < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "the generative model needs items and features (got %d items, dm %d)",
						 d->n_items, d->dm);
	s = isrf_calloc(env, 1, sizeof(*s));
	if (s == NULL)
		return ISRF_ERR_NOMEM;
	s->env = env;
	s->be = be;
	s->hb = be;
	if (!isrf_nn_backend_host_ok(be))
	{
		if ((st = isrf_cpu_backend_create(env, &s->hb)) != ISRF_OK)
		{
			s->hb = NULL;
			goto fail;
		}
		s->own_hb = true;
	}
	s->d = d;
	isrf_scorer_init(&s->scorer, env, d->n_users, d->n_items, d->dm, d->seq_ptr, d->seq,
					 d->n_train, d->item_explicit, d->item_feat, d->item_text, d->group, weights);
	s->cfg = *cfg;
	s->C = cfg->d_model;
	s->ni = d->n_items;
	s->dm = d->dm;
	s->levels = levels;
	memcpy(s->ks, ks, sizeof(int32_t) * (size_t) levels);
	memcpy(s->scale, scale, sizeof(s->scale));
	s->codes = codes;
	s->train = train;
	s->n_words = n_words;
	isrf_gr_layout(&s->lay, s->C, s->ni, s->dm, levels, ks, n_words);
	isrf_gr_tf_config(cfg, &tcfg);

#define GR_A(ptr, bytes) do { if ((st = isrf_gr_mem(be, (void **) &(ptr), (bytes))) != ISRF_OK) goto fail; } while (0)
	GR_A(s->p, s->lay.total * 4);
	GR_A(s->feat_s, ni * dm * 4);
	GR_A(s->iexp_s, ni * dm * 4);
	GR_A(s->a1, ni * C * 4);
	GR_A(s->g1, ni * C * 4);
	GR_A(s->table, ni * C * 4);
	s->logits_cols = s->ni;
	for (i = 0; i < (size_t) levels; i++)
		if (ks[i] > s->logits_cols)
			s->logits_cols = ks[i];
	s->chunk = train ? GR_CHUNK : GR_CHUNK_SERVE;
	GR_A(s->logits, (size_t) s->chunk * s->logits_cols * 4);
	GR_A(s->hq, (size_t) s->chunk * C * 4);
	GR_A(s->row_loss, (size_t) s->chunk * 4);
	if ((st = isrf_gr_host(env, (void **) &s->row_loss_h, (size_t) s->chunk * 4)) != ISRF_OK ||
		(!isrf_nn_backend_host_ok(be) &&
		 ((st = isrf_gr_host(env, (void **) &s->logits_h, (size_t) s->chunk * s->logits_cols * 4)) != ISRF_OK ||
		  (st = isrf_gr_host(env, (void **) &s->table_h, ni * C * 4)) != ISRF_OK)))
		goto fail;
	if (train)
	{
		GR_A(s->gp, s->lay.total * 4);
		GR_A(s->dtable, ni * C * 4);
		GR_A(s->dg1, ni * C * 4);
		GR_A(s->da1, ni * C * 4);
	}
#undef GR_A
#define GR_A2(ptr, bytes) do { if ((st = isrf_gr_mem(s->hb, (void **) &(ptr), (bytes))) != ISRF_OK) goto fail; } while (0)
	if ((st = isrf_tf_create(be, &tcfg, isrf_nn_key(cfg->seed, 11, 0), &s->tf)) != ISRF_OK)
		goto fail;
	if (n_words > 0 && (st = gr_words_create(s)) != ISRF_OK)
		goto fail;
	/* scaled copies of the frozen inputs: host arrays to backend memory */
	{
		float	   *tmp = isrf_alloc(env, ni * dm * 4 + 4);

		if (tmp == NULL)
		{
			st = ISRF_ERR_NOMEM;
			goto fail;
		}
		for (i = 0; i < ni * dm; i++)
			tmp[i] = d->item_feat ? d->item_feat[i] * scale[0] : 0.0f;
		st = be->upload(be, s->feat_s, tmp, ni * dm * 4);
		for (i = 0; st == ISRF_OK && i < ni * dm; i++)
			tmp[i] = d->item_explicit ? d->item_explicit[i] * scale[1] : 0.0f;
		if (st == ISRF_OK)
			st = be->upload(be, s->iexp_s, tmp, ni * dm * 4);
		if (st == ISRF_OK && cfg->use_explicit)
		{
			s->iexp_h = tmp;	/* kept: the explicit inputs are built on the host */
			tmp = NULL;
		}
		isrf_free(env, tmp);
		if (st != ISRF_OK)
			goto fail;
	}
	if (cfg->use_group_interest && d->user_feat && d->user_group && d->n_users > 1)
	{
		size_t		nu = (size_t) d->n_users;
		int32_t		kk;

		s->group_k = d->group_k > 0 ? d->group_k : GR_GROUP_K;
		if (s->group_k > d->n_users - 1)
			s->group_k = d->n_users - 1;
		kk = s->group_k + 1;
		s->ufeat_n = isrf_alloc(env, nu * dm * 4 + 4);
		s->ugrp_s = isrf_alloc(env, nu * dm * 4 + 4);
		if (!s->ufeat_n || !s->ugrp_s)
		{
			st = ISRF_ERR_NOMEM;
			goto fail;
		}
		memcpy(s->ufeat_n, d->user_feat, nu * dm * 4);
		if ((st = s->hb->row_normalize(s->hb, d->n_users, d->dm, s->ufeat_n)) != ISRF_OK)
			goto fail;
		for (i = 0; i < nu * dm; i++)
			s->ugrp_s[i] = d->user_group[i] * scale[3];
		GR_A2(s->qf, (size_t) GR_QBLOCK * dm * 4);
		GR_A2(s->qscore, (size_t) GR_QBLOCK * nu * 4);
		GR_A2(s->qval, (size_t) GR_QBLOCK * kk * 4);
		GR_A2(s->qidx, (size_t) GR_QBLOCK * kk * 4);
		GR_A2(s->qself, (size_t) GR_QBLOCK * 4);
	}
	*out = s;
	return ISRF_OK;
#undef GR_A2

fail:
	isrf_genrec_session_close(s);
	return st;
}

/*
 * Open an inference session over g with its served weights or (eval) its
 * train-split weights, which are the same unless a refit followed training.
 */
static IsrfStatus
gr_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfGenrec *g,
				const IsrfGenrecData *d, bool eval, IsrfGenrecSession **out)
{
	IsrfGenrecSession *s;
	const float *params = eval && g->eval_params ? g->eval_params : g->params,
			   *tf_params = eval && g->eval_tf_params ? g->eval_tf_params : g->tf_params;
	IsrfStatus	st;

	*out = NULL;
	if (g->params == NULL || g->n_items != d->n_items || g->dm != d->dm)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "the generative model does not fit its data (%d items, dm %d vs %d, %d)",
						 g->n_items, g->dm, d->n_items, d->dm);
	ISRF_TRY(isrf_gr_session_create(env, be, &g->cfg, d, g->levels, g->codebook_sizes, g->codes,
									g->scale, &g->weights, g->n_words, false, &s));
	if (s->lay.total != g->n_params || s->tf->n_params != g->n_tf_params)
	{
		isrf_genrec_session_close(s);
		return isrf_fail(env, ISRF_ERR_CORRUPT, "the generative model's weights have the wrong size");
	}
	/* everything a call needs is prepared here, none of it on first use */
	if ((st = be->upload(be, s->p, params, g->n_params * 4)) != ISRF_OK ||
		(st = be->upload(be, s->tf->params, tf_params, g->n_tf_params * 4)) != ISRF_OK ||
		(st = isrf_gr_table_forward(s)) != ISRF_OK ||
		(st = isrf_scorer_fit(&s->scorer)) != ISRF_OK)
	{
		isrf_genrec_session_close(s);
		return st;
	}
	*out = s;
	return ISRF_OK;
}

IsrfStatus
isrf_genrec_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfGenrec *g,
						 const IsrfGenrecData *d, IsrfGenrecSession **out)
{
	return gr_session_open(env, be, g, d, false, out);
}

IsrfStatus
isrf_genrec_session_open_eval(IsrfEnv *env, IsrfBackend *be, const IsrfGenrec *g,
							  const IsrfGenrecData *d, IsrfGenrecSession **out)
{
	return gr_session_open(env, be, g, d, true, out);
}

int32_t
isrf_genrec_width(const IsrfGenrecSession *s)
{
	return s->C;
}
