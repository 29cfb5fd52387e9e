/*
 * features/semantic_features.c
 *	  The semantic-feature pipeline: text (or precomputed embeddings) ->
 *	  PCA -> item features; user descriptions through the same projection;
 *	  history means for users without one.
 *
 * Items and users are featurized in ONE corpus (doc = item index, or
 * n_items + user index), so they share the vocabulary, the idf weights and
 * the PCA basis.  Only documents that have text take part in the PCA fit: a
 * document with no text would pull the mean towards zero, and it gets a
 * zero feature anyway (no feature, rather than "minus the mean").
 */
#include "features/semantic_features.h"

#include <math.h>
#include <string.h>

void
isrf_semantic_config_default(IsrfSemanticConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dm = 128;
	isrf_text_config_default(&cfg->text);
	isrf_pca_config_default(&cfg->pca);
	cfg->use_user_text = true;
	cfg->item_embeddings = NULL;
	cfg->embedding_dim = 0;
	cfg->user_embeddings = NULL;
}

void
isrf_semantic_free(IsrfEnv *env, IsrfSemantic *s)
{
	isrf_free(env, s->item);
	isrf_free(env, s->user);
	isrf_free(env, s->user_source);
	isrf_csr_free(env, &s->item_text);
	memset(s, 0, sizeof(*s));
}

/* Sum of the explained variances PCA reported (a sanity figure). */
static double
semantic_sum(const float *v, int32_t n)
{
	double		s = 0;
	int32_t		i;

	for (i = 0; i < n; i++)
		s += v[i];
	return s;
}

/*
 * out = the first n_rows rows of x (a copy), their columns renumbered to
 * the ones they use (in order, so rows stay ascending): the hashed
 * vocabulary may be 1 << 24 wide, the items' words are far fewer, and
 * whoever reads the rows sizes a column table by it.  No rows (NULL
 * rowptr) when the items have no word.
 */
static IsrfStatus
semantic_csr_head(IsrfEnv *env, const IsrfCsr *x, int32_t n_rows, IsrfCsr *out)
{
	int32_t		nnz = x->rowptr[n_rows],
				n_used = 0,
				c,
				p;
	int32_t    *map;

	memset(out, 0, sizeof(*out));
	if (nnz == 0)
		return ISRF_OK;
	map = isrf_calloc(env, (size_t) x->n_cols + 1, sizeof(int32_t));
	if (map == NULL)
		return ISRF_ERR_NOMEM;
	for (p = 0; p < nnz; p++)
		map[x->col[p]] = 1;
	for (c = 0; c < x->n_cols; c++)
		map[c] = map[c] ? n_used++ : -1;
	if (isrf_csr_alloc(env, n_rows, n_used, nnz, out) != ISRF_OK)
	{
		isrf_free(env, map);
		return ISRF_ERR_NOMEM;
	}
	memcpy(out->rowptr, x->rowptr, sizeof(int32_t) * ((size_t) n_rows + 1));
	for (p = 0; p < nnz; p++)
		out->col[p] = map[x->col[p]];
	memcpy(out->val, x->val, sizeof(float) * (size_t) nnz);
	isrf_free(env, map);
	return ISRF_OK;
}

/*
 * Featurize item and user text together, PCA the documents that have any
 * term, and scatter the projections into out->item and out->user.
 */
static IsrfStatus
semantic_from_text(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
				   const IsrfDataset *ds, const IsrfSemanticConfig *cfg,
				   IsrfSemantic *out)
{
	int32_t		n_items = ds->n_items,
				n_users = ds->n_users,
				dm = cfg->dm;
	int64_t		n_docs64 = (int64_t) n_items + (cfg->use_user_text ? n_users : 0);
	int32_t		n_docs,
				n_kept = 0,
				r;
	IsrfTextFeaturizer *f = NULL;
	IsrfCsr		x;
	IsrfCsr		xc;
	int32_t    *kept = NULL;	/* compact row -> document */
	float	   *proj = NULL,
			   *explained = NULL;
	IsrfPcaConfig pcfg = cfg->pca;
	IsrfStatus	st;
	int64_t		i;
	double		t0 = isrf_now();

	memset(&x, 0, sizeof(x));
	if (n_docs64 > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "too many items and users to featurize (%lld)", (long long) n_docs64);
	n_docs = (int32_t) n_docs64;
	ISRF_TRY(isrf_text_begin(env, &cfg->text, n_docs, &f));
	for (i = 0; i < corpus->n_item_text; i++)
	{
		const IsrfTextPiece *p = &corpus->item_text[i];
		int32_t		doc = isrf_dataset_item_index(ds, p->id);

		if ((i & 4095) == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto fail_featurizer;
		if (doc < 0)
		{
			out->n_unknown_item_text++;
			continue;
		}
		if ((st = isrf_text_add(f, doc, p->text, p->len, p->weight)) != ISRF_OK)
			goto fail_featurizer;
	}
	for (i = 0; i < corpus->n_user_text; i++)
	{
		const IsrfTextPiece *p = &corpus->user_text[i];
		int32_t		u = isrf_dataset_user_index(ds, p->id);

		if ((i & 4095) == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto fail_featurizer;
		if (u < 0)
		{
			out->n_unknown_user_text++;
			continue;
		}
		if (!cfg->use_user_text)
		{
			out->n_ignored_user_text++;
			continue;
		}
		if ((st = isrf_text_add(f, n_items + u, p->text, p->len, p->weight)) != ISRF_OK)
			goto fail_featurizer;
	}
	st = isrf_text_finish(f, &x);
	f = NULL;
	if (st != ISRF_OK)
		return st;
	out->t_featurize = isrf_now() - t0;
	/* the items' rows, kept for the lexical terms of the score (model/scorer.h) */
	if ((st = semantic_csr_head(env, &x, n_items, &out->item_text)) != ISRF_OK)
	{
		isrf_csr_free(env, &x);
		return st;
	}

	/*
	 * Dropping empty rows changes only the row pointers: an empty row owns
	 * no entry, so the column and value arrays are shared as they are.
	 */
	t0 = isrf_now();
	kept = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_docs + 1));
	memset(&xc, 0, sizeof(xc));
	xc.rowptr = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_docs + 1));
	if (!kept || !xc.rowptr)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	xc.rowptr[0] = 0;
	for (r = 0; r < n_docs; r++)
		if (x.rowptr[r + 1] > x.rowptr[r])
		{
			kept[n_kept++] = r;
			xc.rowptr[n_kept] = x.rowptr[r + 1];
		}
	xc.n_rows = n_kept;
	xc.n_cols = x.n_cols;
	xc.nnz = x.nnz;
	xc.col = x.col;
	xc.val = x.val;
	if (n_kept > 0)
	{
		pcfg.k = dm;
		proj = isrf_alloc(env, sizeof(float) * (size_t) n_kept * dm);
		explained = isrf_calloc(env, (size_t) dm, sizeof(float));
		if (!proj || !explained)
		{
			st = ISRF_ERR_NOMEM;
			goto done;
		}
		if ((st = isrf_pca_sparse(env, be, &xc, &pcfg, proj, explained)) != ISRF_OK)
			goto done;
		out->explained = semantic_sum(explained, dm);
	}
	for (r = 0; r < n_kept; r++)
	{
		int32_t		doc = kept[r];
		float	   *dst;

		if (doc < n_items)
		{
			dst = out->item + (size_t) doc * dm;
			out->n_items_with_text++;
		}
		else
		{
			int32_t		u = doc - n_items;

			dst = out->user + (size_t) u * dm;
			out->user_source[u] = ISRF_USER_FEATURE_DESCRIPTION;
			out->n_users_with_description++;
		}
		memcpy(dst, proj + (size_t) r * dm, sizeof(float) * dm);
	}
	out->t_pca = isrf_now() - t0;
	st = ISRF_OK;

done:
	isrf_free(env, xc.rowptr);
	isrf_free(env, kept);
	isrf_free(env, proj);
	isrf_free(env, explained);
	isrf_csr_free(env, &x);
	return st;

fail_featurizer:
	isrf_text_abort(f);
	return st;
}

/* Whether an embedding row is present (every value finite). */
static bool
semantic_row_present(const float *row, int32_t e)
{
	int32_t		j;

	for (j = 0; j < e; j++)
		if (!isfinite(row[j]))
			return false;
	return true;
}

/*
 * PCA the embedding rows that are present -- items, and the users' when
 * given -- into out->item and out->user.
 */
static IsrfStatus
semantic_from_embeddings(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
						 const IsrfDataset *ds, const IsrfSemanticConfig *cfg,
						 IsrfSemantic *out)
{
	bool		with_users = cfg->user_embeddings != NULL && cfg->use_user_text;
	int32_t		n_items = ds->n_items,
				n_users = with_users ? ds->n_users : 0,
				e = cfg->embedding_dim,
				dm = cfg->dm,
				n_kept = 0,
				n_kept_items,
				i;
	int32_t    *kept = NULL;
	float	   *dense = NULL,
			   *proj = NULL,
			   *explained = NULL;
	IsrfPcaConfig pcfg = cfg->pca;
	IsrfStatus	st = ISRF_OK;
	int64_t		p;
	double		t0 = isrf_now();

	if (e < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "item embeddings need a positive dimension (got %d)", e);
	/* ids are still checked so that the counts mean the same thing */
	for (p = 0; p < corpus->n_user_text; p++)
	{
		if (isrf_dataset_user_index(ds, corpus->user_text[p].id) < 0)
			out->n_unknown_user_text++;
		else if (!with_users)
			out->n_ignored_user_text++;
	}
	for (p = 0; p < corpus->n_item_text; p++)
		if (isrf_dataset_item_index(ds, corpus->item_text[p].id) < 0)
			out->n_unknown_item_text++;

	/* rows kept: items first, then users */
	kept = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_items + n_users + 1));
	dense = isrf_alloc(env, sizeof(float) * (((size_t) n_items + n_users) * e + 1));
	if (!kept || !dense)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n_items; i++)
	{
		const float *row = cfg->item_embeddings + (size_t) i * e;

		if (semantic_row_present(row, e))
		{
			memcpy(dense + (size_t) n_kept * e, row, sizeof(float) * e);
			kept[n_kept++] = i;
		}
	}
	n_kept_items = n_kept;
	for (i = 0; i < n_users; i++)
	{
		const float *row = cfg->user_embeddings + (size_t) i * e;

		if (semantic_row_present(row, e))
		{
			memcpy(dense + (size_t) n_kept * e, row, sizeof(float) * e);
			kept[n_kept++] = i;
		}
	}
	out->t_featurize = isrf_now() - t0;
	t0 = isrf_now();
	if (n_kept > 0)
	{
		pcfg.k = dm;
		proj = isrf_alloc(env, sizeof(float) * (size_t) n_kept * dm);
		explained = isrf_calloc(env, (size_t) dm, sizeof(float));
		if (!proj || !explained)
		{
			st = ISRF_ERR_NOMEM;
			goto done;
		}
		if ((st = isrf_pca_dense(env, be, dense, n_kept, e, &pcfg, proj, explained)) != ISRF_OK)
			goto done;
		out->explained = semantic_sum(explained, dm);
		for (i = 0; i < n_kept_items; i++)
			memcpy(out->item + (size_t) kept[i] * dm, proj + (size_t) i * dm,
				   sizeof(float) * dm);
		for (i = n_kept_items; i < n_kept; i++)
		{
			memcpy(out->user + (size_t) kept[i] * dm, proj + (size_t) i * dm,
				   sizeof(float) * dm);
			out->user_source[kept[i]] = ISRF_USER_FEATURE_DESCRIPTION;
			out->n_users_with_description++;
		}
	}
	out->n_items_with_text = n_kept_items;
	out->t_pca = isrf_now() - t0;

done:
	isrf_free(env, kept);
	isrf_free(env, dense);
	isrf_free(env, proj);
	isrf_free(env, explained);
	return st;
}

/*
 * Users without a description: the mean feature of their TRAIN items that
 * have a feature.  Validation and test items never count (no leak).
 */
static IsrfStatus
semantic_users_from_history(IsrfEnv *env, const IsrfDataset *ds, IsrfSemantic *out)
{
	int32_t		dm = out->dm,
				u;
	double	   *acc = isrf_alloc(env, sizeof(double) * (size_t) dm);
	bool	   *has = isrf_calloc(env, (size_t) ds->n_items + 1, sizeof(bool));
	IsrfStatus	st = ISRF_OK;
	int32_t		i;

	if (!acc || !has)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < ds->n_items; i++)
	{
		const float *row = out->item + (size_t) i * dm;
		int32_t		j;

		for (j = 0; j < dm && !has[i]; j++)
			has[i] = row[j] != 0.0f;
	}
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];
		int32_t		t,
					j,
					cnt = 0;
		float	   *dst = out->user + (size_t) u * dm;

		if ((u & 4095) == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		if (out->user_source[u] == ISRF_USER_FEATURE_DESCRIPTION)
			continue;
		memset(acc, 0, sizeof(double) * dm);
		for (t = 0; t < ds->n_train[u]; t++)
		{
			const float *row = out->item + (size_t) h[t] * dm;

			if (!has[h[t]])
				continue;
			for (j = 0; j < dm; j++)
				acc[j] += row[j];
			cnt++;
		}
		if (cnt == 0)
		{
			out->n_users_without++;
			continue;
		}
		for (j = 0; j < dm; j++)
			dst[j] = (float) (acc[j] / cnt);
		out->user_source[u] = ISRF_USER_FEATURE_HISTORY;
		out->n_users_from_history++;
	}

done:
	isrf_free(env, acc);
	isrf_free(env, has);
	return st;
}

IsrfStatus
isrf_semantic_build(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
					const IsrfDataset *ds, const IsrfSemanticConfig *cfg,
					IsrfSemantic *out)
{
	IsrfStatus	st;
	double		t0;

	memset(out, 0, sizeof(*out));
	if (cfg->dm < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "semantic feature dimension must be positive (got %d)", cfg->dm);
	out->n_items = ds->n_items;
	out->n_users = ds->n_users;
	out->dm = cfg->dm;
	out->item = isrf_calloc(env, (size_t) ds->n_items * cfg->dm + 1, sizeof(float));
	out->user = isrf_calloc(env, (size_t) ds->n_users * cfg->dm + 1, sizeof(float));
	out->user_source = isrf_calloc(env, (size_t) ds->n_users + 1, 1);
	if (!out->item || !out->user || !out->user_source)
	{
		isrf_semantic_free(env, out);
		return ISRF_ERR_NOMEM;
	}
	if (cfg->item_embeddings)
		st = semantic_from_embeddings(env, be, corpus, ds, cfg, out);
	else
		st = semantic_from_text(env, be, corpus, ds, cfg, out);
	if (st == ISRF_OK)
	{
		t0 = isrf_now();
		st = semantic_users_from_history(env, ds, out);
		out->t_users = isrf_now() - t0;
	}
	if (st != ISRF_OK)
	{
		/* keep the message: free only */
		IsrfSemantic tmp = *out;

		isrf_semantic_free(env, &tmp);
		memset(out, 0, sizeof(*out));
	}
	return st;
}
