/*
 * train/pipeline.c
 *	  The stage sequence of training (see pipeline.h); the configuration is
 *	  train/config.c's.
 */
#include "train/pipeline.h"

#include "model/genrec.h"
#include "graph/group_graph.h"
#include "graph/lightgcn.h"
#include "serve/serve.h"
#include "features/semantic_features.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Call the hook if there is one. */
static IsrfStatus
pipeline_stage(const IsrfTrainHooks *hooks, IsrfEnv *env, const char *stage)
{
	isrf_log(env, "isrf: stage %s", stage);
	return hooks && hooks->stage ? hooks->stage(hooks->arg, stage) : ISRF_OK;
}

/* Copy the dataset's id maps and histories into the model. */
static IsrfStatus
pipeline_take_dataset(IsrfEnv *env, const IsrfDataset *ds, IsrfModel *m)
{
	size_t		nu = (size_t) ds->n_users,
				ni = (size_t) ds->n_items,
				nseq = (size_t) ds->seq_ptr[nu];

	m->n_users = ds->n_users;
	m->n_items = ds->n_items;
	m->user_ids = isrf_alloc(env, nu * 8 + 8);
	m->item_ids = isrf_alloc(env, ni * 8 + 8);
	m->seq_ptr = isrf_alloc(env, (nu + 1) * 4);
	m->seq = isrf_alloc(env, nseq * 4 + 4);
	m->n_train = isrf_alloc(env, nu * 4 + 4);
	if (!m->user_ids || !m->item_ids || !m->seq_ptr || !m->seq || !m->n_train)
		return ISRF_ERR_NOMEM;
	memcpy(m->user_ids, ds->user_ids, nu * 8);
	memcpy(m->item_ids, ds->item_ids, ni * 8);
	memcpy(m->seq_ptr, ds->seq_ptr, (nu + 1) * 4);
	memcpy(m->seq, ds->seq, nseq * 4);
	memcpy(m->n_train, ds->n_train, nu * 4);
	m->stats.n_users = ds->n_users;
	m->stats.n_items = ds->n_items;
	m->stats.n_interactions = ds->n_interactions;
	m->stats.n_train_interactions = ds->n_train_interactions;
	m->stats.n_evaluated_users = ds->n_evaluated;
	return ISRF_OK;
}

/* LightGCN forward over a host graph: out (host, n x d) from e0 (host). */
static IsrfStatus
pipeline_propagate(IsrfEnv *env, IsrfBackend *be, const IsrfCsr *s, const float *e0,
				   int32_t n, int32_t d, int32_t layers, float *out)
{
	size_t		bytes = sizeof(float) * (size_t) n * d;
	IsrfDevCsr *ds = NULL;
	float	   *dx = NULL,
			   *dy = NULL;
	IsrfLightGcn g;
	IsrfStatus	st;

	memset(&g, 0, sizeof(g));
	if (n == 0)
		return ISRF_OK;
	if ((st = be->csr_create(be, s, &ds)) == ISRF_OK &&
		(st = be->mem_alloc(be, bytes, (void **) &dx)) == ISRF_OK &&
		(st = be->mem_alloc(be, bytes, (void **) &dy)) == ISRF_OK &&
		(st = be->upload(be, dx, e0, bytes)) == ISRF_OK &&
		(st = isrf_lightgcn_init(env, be, ds, n, d, layers, &g)) == ISRF_OK &&
		(st = isrf_lightgcn_forward(&g, dx, dy)) == ISRF_OK)
		st = be->download(be, out, dy, bytes);
	isrf_lightgcn_free(&g);
	if (dx)
		be->mem_free(be, dx);
	if (dy)
		be->mem_free(be, dy);
	if (ds)
		be->csr_destroy(be, ds);
	return st;
}

/*
 * Rows of precomputed embeddings (row r of id ids[r]) placed by dataset
 * item (or user) index, NaN rows for those without one; NULL when out of
 * memory.
 */
static float *
pipeline_rows_by_index(IsrfEnv *env, const IsrfDataset *ds, bool users, int32_t dim,
					   const int64_t *ids, const float *rows, int64_t count)
{
	size_t		n = (size_t) (users ? ds->n_users : ds->n_items);
	float	   *out = isrf_alloc(env, n * (size_t) dim * 4 + 4);
	int64_t		r;
	size_t		j;

	if (out == NULL)
		return NULL;
	for (j = 0; j < n * (size_t) dim; j++)
		out[j] = NAN;
	for (r = 0; r < count; r++)
	{
		int32_t		at = users ? isrf_dataset_user_index(ds, ids[r]) : isrf_dataset_item_index(ds, ids[r]);

		if (at >= 0)
			memcpy(out + (size_t) at * dim, rows + (size_t) r * dim, sizeof(float) * (size_t) dim);
	}
	return out;
}

/* The stages after the split; ds and sem are the caller's to free. */
static IsrfStatus
pipeline_run(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
			 const IsrfTrainConfig *cfg, const IsrfTrainHooks *hooks,
			 IsrfDataset *ds, IsrfSemantic *sem, IsrfModel *m)
{
	IsrfSemanticConfig scfg;
	IsrfGroupGraphConfig kcfg;
	IsrfCsr		gnorm,
				ui;
	float	   *e0 = NULL,
			   *e_out = NULL;
	IsrfStatus	st;
	double		t0;
	int64_t		p;
	size_t		nu,
				ni,
				dm;
	IsrfCorpus	text_corpus = *corpus;

	memset(&gnorm, 0, sizeof(gnorm));
	memset(&ui, 0, sizeof(ui));

	/* split */
	ISRF_TRY(pipeline_stage(hooks, env, "split"));
	t0 = isrf_now();
	ISRF_TRY(isrf_dataset_build(env, &corpus->rows, corpus->catalogue_ids, corpus->n_catalogue, ds));
	if (ds->n_users == 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "the dataset has no interactions to train on");
	ISRF_TRY(pipeline_take_dataset(env, ds, m));
	m->stats.t_split = isrf_now() - t0;
	nu = (size_t) ds->n_users;
	ni = (size_t) ds->n_items;

	/* semantic features of items and users */
	ISRF_TRY(pipeline_stage(hooks, env, "features"));
	t0 = isrf_now();
	isrf_semantic_config_default(&scfg);
	scfg.dm = cfg->dm;
	scfg.text.hash_dim = cfg->hash_dim;
	scfg.text.min_df = cfg->min_df;
	scfg.pca.seed = cfg->seed;
	scfg.use_user_text = cfg->use_user_text;
	if (!cfg->use_text)
		text_corpus.n_item_text = text_corpus.n_user_text = 0;
	if (cfg->use_text && corpus->n_embeddings > 0)
	{
		/* precomputed embeddings by dataset index; items (users) without one: NaN rows */
		float	   *emb = pipeline_rows_by_index(env, ds, false, corpus->embedding_dim,
												 corpus->embedding_ids, corpus->embeddings,
												 corpus->n_embeddings);
		float	   *uemb = NULL;
		IsrfStatus	st;

		if (emb == NULL)
			return ISRF_ERR_NOMEM;
		if (corpus->n_user_embeddings > 0)
		{
			uemb = pipeline_rows_by_index(env, ds, true, corpus->embedding_dim,
										  corpus->user_embedding_ids, corpus->user_embeddings,
										  corpus->n_user_embeddings);
			if (uemb == NULL)
			{
				isrf_free(env, emb);
				return ISRF_ERR_NOMEM;
			}
		}
		scfg.item_embeddings = emb;
		scfg.user_embeddings = uemb;
		scfg.embedding_dim = corpus->embedding_dim;
		st = isrf_semantic_build(env, be, &text_corpus, ds, &scfg, sem);
		isrf_free(env, emb);
		isrf_free(env, uemb);
		ISRF_TRY(st);
	}
	else
		ISRF_TRY(isrf_semantic_build(env, be, &text_corpus, ds, &scfg, sem));
	m->dm = sem->dm;
	dm = (size_t) sem->dm;
	m->item_feat = isrf_alloc(env, ni * dm * 4 + 4);
	m->user_feat = isrf_alloc(env, nu * dm * 4 + 4);
	m->user_source = isrf_alloc(env, nu + 1);
	if (!m->item_feat || !m->user_feat || !m->user_source)
		return ISRF_ERR_NOMEM;
	memcpy(m->item_feat, sem->item, ni * dm * 4);
	memcpy(m->user_feat, sem->user, nu * dm * 4);
	memcpy(m->user_source, sem->user_source, nu);
	/* the items' TF-IDF rows change hands */
	m->item_text = sem->item_text;
	memset(&sem->item_text, 0, sizeof(sem->item_text));
	m->stats.n_items_with_text = sem->n_items_with_text;
	m->stats.n_users_with_description = sem->n_users_with_description;
	m->stats.n_users_from_history = sem->n_users_from_history;
	m->stats.n_users_without_feature = sem->n_users_without;
	m->stats.explained_variance = sem->explained;
	m->stats.t_features = isrf_now() - t0;

	/* group graph: top-K cosine neighbours of the user features */
	ISRF_TRY(pipeline_stage(hooks, env, "group_graph"));
	t0 = isrf_now();
	if (cfg->use_group)
	{
		isrf_group_graph_config_default(&kcfg);
		kcfg.k = cfg->group_k;
		if (cfg->group_threshold > -1.0f)
			kcfg.min_similarity = cfg->group_threshold;
		ISRF_TRY(isrf_group_graph_build(env, be, sem->user, ds->n_users, sem->dm, &kcfg, &m->group));
	}
	else
		ISRF_TRY(isrf_csr_alloc(env, ds->n_users, ds->n_users, 0, &m->group));
	m->stats.n_group_edges = m->group.nnz;
	for (p = 0; p < m->group.nnz; p++)
		m->stats.mean_neighbour_similarity += m->group.val[p];
	if (m->group.nnz)
		m->stats.mean_neighbour_similarity /= m->group.nnz;
	m->stats.t_group_graph = isrf_now() - t0;

	/* LightGCN: explicit interests over the user-item graph, group over the kNN graph */
	ISRF_TRY(pipeline_stage(hooks, env, "lightgcn"));
	t0 = isrf_now();
	m->user_explicit = isrf_alloc(env, nu * dm * 4 + 4);
	m->item_explicit = isrf_alloc(env, ni * dm * 4 + 4);
	m->user_group = isrf_alloc(env, nu * dm * 4 + 4);
	e0 = isrf_alloc(env, (nu + ni) * dm * 4 + 4);
	e_out = isrf_alloc(env, (nu + ni) * dm * 4 + 4);
	if (!m->user_explicit || !m->item_explicit || !m->user_group || !e0 || !e_out)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	memcpy(e0, sem->user, nu * dm * 4);
	memcpy(e0 + nu * dm, sem->item, ni * dm * 4);
	if ((st = isrf_lightgcn_bipartite(env, ds, &ui)) != ISRF_OK ||
		(st = pipeline_propagate(env, be, &ui, e0, ds->n_users + ds->n_items, sem->dm,
								 cfg->layers, e_out)) != ISRF_OK)
		goto done;
	memcpy(m->user_explicit, e_out, nu * dm * 4);
	memcpy(m->item_explicit, e_out + nu * dm, ni * dm * 4);
	if ((st = isrf_group_graph_normalize(env, &m->group, &gnorm)) != ISRF_OK ||
		(st = pipeline_propagate(env, be, &gnorm, sem->user, ds->n_users, sem->dm,
								 cfg->layers, m->user_group)) != ISRF_OK)
		goto done;
	m->stats.t_lightgcn = isrf_now() - t0;

	/* the generative model: semantic IDs, then the transformer and its heads */
	if (cfg->gen.epochs > 0)
	{
		IsrfGenrecConfig gc = cfg->gen;
		IsrfGenrecData gd;
		int32_t		u,
					learnable = 0;

		for (u = 0; u < m->n_users; u++)
			learnable += m->n_train[u] >= 2;
		if (learnable == 0)
		{
			/* nothing to learn a sequence from: serve by popularity */
			isrf_log(env, "isrf: no user has two train interactions; the generative model is skipped");
			st = pipeline_stage(hooks, env, "done");
			goto done;
		}

		if ((st = pipeline_stage(hooks, env, "train")) != ISRF_OK)
			goto done;
		t0 = isrf_now();
		gc.seed = cfg->seed;
		isrf_model_genrec_data(m, &gd);
		if ((st = isrf_genrec_train(env, be, &gd, &gc, hooks ? hooks->epoch : NULL,
									hooks ? hooks->arg : NULL, &m->genrec)) != ISRF_OK ||
			(st = isrf_serve_tune(env, be, m)) != ISRF_OK)
			goto done;
		m->stats.t_train = isrf_now() - t0;
	}
	st = pipeline_stage(hooks, env, "done");

done:
	isrf_csr_free(env, &gnorm);
	isrf_csr_free(env, &ui);
	isrf_free(env, e0);
	isrf_free(env, e_out);
	return st;
}

IsrfStatus
isrf_train(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
		   const IsrfTrainConfig *cfg, const IsrfTrainHooks *hooks, IsrfModel *out)
{
	IsrfDataset ds;
	IsrfSemantic sem;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	memset(&ds, 0, sizeof(ds));
	memset(&sem, 0, sizeof(sem));
	out->cfg = *cfg;
	st = pipeline_run(env, be, corpus, cfg, hooks, &ds, &sem, out);
	isrf_semantic_free(env, &sem);
	isrf_dataset_free(env, &ds);
	if (st != ISRF_OK)
		isrf_model_free(env, out);
	return st;
}
