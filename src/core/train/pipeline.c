/*
 * train/pipeline.c
 *	  The training configuration (defaults, keys, validation) and the stage
 *	  sequence of training (see pipeline.h).
 */
#include "train/pipeline.h"

#include "model/genrec.h"
#include "graph/group_graph.h"
#include "graph/lightgcn.h"
#include "features/semantic_features.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
isrf_train_config_default(IsrfTrainConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dm = 128;
	cfg->hash_dim = 1 << 18;
	cfg->min_df = 2;
	cfg->use_text = true;
	cfg->use_user_text = true;
	cfg->use_group = true;
	cfg->group_k = 50;
	cfg->group_threshold = -1.0f;
	cfg->layers = 3;
	cfg->seed = 1;
	isrf_genrec_config_default(&cfg->gen);
}

/* Parse a float in [lo, hi] or fail naming the key. */
static IsrfStatus
config_float(IsrfEnv *env, const char *key, const char *value, double lo, double hi, float *out)
{
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(value, &end);
	if (errno || end == value || *end != '\0' || !(v >= lo && v <= hi))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "config key \"%s\" must be a number between %g and %g, not \"%s\"",
						 key, lo, hi, value);
	*out = (float) v;
	return ISRF_OK;
}

/* Parse an integer in [lo, hi] or fail naming the key. */
static IsrfStatus
config_int(IsrfEnv *env, const char *key, const char *value, long lo, long hi, int32_t *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno || end == value || *end != '\0' || v < lo || v > hi)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "config key \"%s\" must be an integer between %ld and %ld, not \"%s\"",
						 key, lo, hi, value);
	*out = (int32_t) v;
	return ISRF_OK;
}

static IsrfStatus config_bool(IsrfEnv *env, const char *key, const char *value, bool *out);

/* The generative model's keys; *found false when key is none of them. */
static IsrfStatus
config_gen(IsrfEnv *env, IsrfGenrecConfig *g, const char *key, const char *value, bool *found)
{
	IsrfStatus	st = ISRF_OK;
	IsrfGenrecConfig keep = *g;

	*found = true;
	if (strcmp(key, "d_model") == 0)
		st = config_int(env, key, value, 2, 1024, &g->d_model);
	else if (strcmp(key, "tf_layers") == 0)
		st = config_int(env, key, value, 1, 16, &g->n_layers);
	else if (strcmp(key, "n_heads") == 0)
		st = config_int(env, key, value, 1, 64, &g->n_heads);
	else if (strcmp(key, "max_len") == 0)
		st = config_int(env, key, value, 1, 4096, &g->max_len);
	else if (strcmp(key, "batch_size") == 0)
		st = config_int(env, key, value, 2, 65536, &g->batch_size);
	else if (strcmp(key, "epochs") == 0)
		st = config_int(env, key, value, 0, 10000, &g->epochs);
	else if (strcmp(key, "patience") == 0)
		st = config_int(env, key, value, 1, 10000, &g->patience);
	else if (strcmp(key, "semid_levels") == 0)
		st = config_int(env, key, value, 1, ISRF_GENREC_MAX_LEVELS - 1, &g->semid_levels);
	else if (strcmp(key, "semid_codebook") == 0)
		st = config_int(env, key, value, 2, 65536, &g->semid_codebook);
	else if (strcmp(key, "eval_users") == 0)
		st = config_int(env, key, value, 0, INT32_MAX, &g->eval_users);
	else if (strcmp(key, "lr") == 0)
		st = config_float(env, key, value, 1e-7, 0.5, &g->lr);
	else if (strcmp(key, "dropout") == 0)
		st = config_float(env, key, value, 0.0, 0.95, &g->dropout);
	else if (strcmp(key, "weight_decay") == 0)
		st = config_float(env, key, value, 0.0, 10.0, &g->weight_decay);
	else if (strcmp(key, "clip") == 0)
		st = config_float(env, key, value, 0.0, 1e6, &g->clip);
	else if (strcmp(key, "lambda1") == 0)
		st = config_float(env, key, value, 0.0, 100.0, &g->lambda1);
	else if (strcmp(key, "lambda2") == 0)
		st = config_float(env, key, value, 0.0, 100.0, &g->lambda2);
	else if (strcmp(key, "tau") == 0)
		st = config_float(env, key, value, 1e-4, 100.0, &g->tau);
	else if (strcmp(key, "alpha") == 0)
		st = config_float(env, key, value, -100.0, 100.0, &g->alpha);
	else if (strcmp(key, "gen_weight") == 0)
		st = config_float(env, key, value, 0.0, 100.0, &g->gen_weight);
	else if (strcmp(key, "use_generative") == 0)
		st = config_bool(env, key, value, &g->use_generative);
	else if (strcmp(key, "use_prior") == 0)
		st = config_bool(env, key, value, &g->use_prior);
	else if (strcmp(key, "use_explicit") == 0)
		st = config_bool(env, key, value, &g->use_explicit);
	else if (strcmp(key, "use_group_interest") == 0)
		st = config_bool(env, key, value, &g->use_group);
	else if (strcmp(key, "use_align") == 0)
	{
		bool		on;

		st = config_bool(env, key, value, &on);
		if (st == ISRF_OK && !on)
			g->lambda1 = g->lambda2 = 0.0f;
	}
	else
		*found = false;
	if (st == ISRF_OK && *found && g->d_model % g->n_heads != 0)
		st = isrf_fail(env, ISRF_ERR_INVALID,
					   "config key \"%s\": n_heads (%d) must divide d_model (%d)",
					   key, g->n_heads, g->d_model);
	if (st != ISRF_OK)
		*g = keep;				/* a rejected value leaves the config as it was */
	return st;
}

static IsrfStatus
config_bool(IsrfEnv *env, const char *key, const char *value, bool *out)
{
	if (strcmp(value, "true") == 0 || strcmp(value, "on") == 0 || strcmp(value, "1") == 0)
		*out = true;
	else if (strcmp(value, "false") == 0 || strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
		*out = false;
	else
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "config key \"%s\" must be true or false, not \"%s\"", key, value);
	return ISRF_OK;
}

IsrfStatus
isrf_train_config_set(IsrfEnv *env, IsrfTrainConfig *cfg, const char *key, const char *value)
{
	if (key == NULL || value == NULL)
		return isrf_fail(env, ISRF_ERR_INVALID, "config key \"%s\" must not be null", key ? key : "");
	{
		bool		found;
		IsrfStatus	st = config_gen(env, &cfg->gen, key, value, &found);

		if (found)
			return st;
	}
	if (strcmp(key, "dm") == 0)
		return config_int(env, key, value, 2, 1024, &cfg->dm);
	if (strcmp(key, "hash_dim") == 0)
	{
		ISRF_TRY(config_int(env, key, value, 1024, 1 << 24, &cfg->hash_dim));
		if (cfg->hash_dim & (cfg->hash_dim - 1))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "config key \"hash_dim\" must be a power of two, not %d", cfg->hash_dim);
		return ISRF_OK;
	}
	if (strcmp(key, "min_df") == 0)
		return config_int(env, key, value, 1, 1000000, &cfg->min_df);
	if (strcmp(key, "use_text") == 0)
		return config_bool(env, key, value, &cfg->use_text);
	if (strcmp(key, "use_user_text") == 0)
		return config_bool(env, key, value, &cfg->use_user_text);
	if (strcmp(key, "use_group") == 0)
		return config_bool(env, key, value, &cfg->use_group);
	if (strcmp(key, "group_k") == 0)
		return config_int(env, key, value, 1, 1000, &cfg->group_k);
	if (strcmp(key, "layers") == 0)
		return config_int(env, key, value, 0, 8, &cfg->layers);
	if (strcmp(key, "group_threshold") == 0)
	{
		char	   *end;
		double		v;

		errno = 0;
		v = strtod(value, &end);
		if (errno || end == value || *end != '\0' || !(v >= -1.0 && v <= 1.0))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "config key \"group_threshold\" must be a number between -1 and 1, not \"%s\"",
							 value);
		cfg->group_threshold = (float) v;
		return ISRF_OK;
	}
	if (strcmp(key, "seed") == 0)
	{
		char	   *end;
		long long	v;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno || end == value || *end != '\0' || v < 0)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "config key \"seed\" must be a non-negative integer, not \"%s\"", value);
		cfg->seed = (uint64_t) v;
		return ISRF_OK;
	}
	return isrf_fail(env, ISRF_ERR_INVALID,
					 "unknown config key \"%s\" (known: dm, hash_dim, min_df, use_text, "
					 "use_user_text, use_group, group_k, group_threshold, layers, seed, "
					 "d_model, tf_layers, n_heads, max_len, batch_size, epochs, patience, lr, "
					 "dropout, weight_decay, clip, lambda1, lambda2, tau, alpha, gen_weight, "
					 "use_generative, use_explicit, use_group_interest, use_align, use_prior, semid_levels, semid_codebook, "
					 "eval_users)", key);
}

/* Call the hook if there is one. */
static IsrfStatus
pipeline_stage(IsrfStageHook hook, void *arg, IsrfEnv *env, const char *stage)
{
	isrf_log(env, "isrf: stage %s", stage);
	return hook ? hook(arg, stage) : ISRF_OK;
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

/* The stages after the split; ds and sem are the caller's to free. */
static IsrfStatus
pipeline_run(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
			 const IsrfTrainConfig *cfg, IsrfStageHook hook, void *hook_arg,
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
	ISRF_TRY(pipeline_stage(hook, hook_arg, env, "split"));
	t0 = isrf_now();
	ISRF_TRY(isrf_dataset_build(env, &corpus->rows, corpus->catalogue_ids, corpus->n_catalogue, ds));
	if (ds->n_users == 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "the dataset has no interactions to train on");
	ISRF_TRY(pipeline_take_dataset(env, ds, m));
	m->stats.t_split = isrf_now() - t0;
	nu = (size_t) ds->n_users;
	ni = (size_t) ds->n_items;

	/* semantic features of items and users */
	ISRF_TRY(pipeline_stage(hook, hook_arg, env, "features"));
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
		/* precomputed embeddings by dataset item index; items without one: NaN rows */
		float	   *emb = isrf_alloc(env, ni * (size_t) corpus->embedding_dim * 4 + 4);
		int64_t		r;
		size_t		j;
		IsrfStatus	st;

		if (emb == NULL)
			return ISRF_ERR_NOMEM;
		for (j = 0; j < ni * (size_t) corpus->embedding_dim; j++)
			emb[j] = NAN;
		for (r = 0; r < corpus->n_embeddings; r++)
		{
			int32_t		it = isrf_dataset_item_index(ds, corpus->embedding_ids[r]);

			if (it >= 0)
				memcpy(emb + (size_t) it * corpus->embedding_dim,
					   corpus->embeddings + (size_t) r * corpus->embedding_dim,
					   sizeof(float) * (size_t) corpus->embedding_dim);
		}
		scfg.item_embeddings = emb;
		scfg.embedding_dim = corpus->embedding_dim;
		st = isrf_semantic_build(env, be, &text_corpus, ds, &scfg, sem);
		isrf_free(env, emb);
		ISRF_TRY(st);
	}
	else
		ISRF_TRY(isrf_semantic_build(env, be, &text_corpus, ds, &scfg, sem));
	m->dm = sem->dm;
	dm = (size_t) sem->dm;
	m->item_feat = isrf_alloc(env, ni * dm * 4 + 4);
	m->user_feat = isrf_alloc(env, nu * dm * 4 + 4);
	if (!m->item_feat || !m->user_feat)
		return ISRF_ERR_NOMEM;
	memcpy(m->item_feat, sem->item, ni * dm * 4);
	memcpy(m->user_feat, sem->user, nu * dm * 4);
	m->stats.n_items_with_text = sem->n_items_with_text;
	m->stats.n_users_with_description = sem->n_users_with_description;
	m->stats.n_users_from_history = sem->n_users_from_history;
	m->stats.n_users_without_feature = sem->n_users_without;
	m->stats.explained_variance = sem->explained;
	m->stats.t_features = isrf_now() - t0;

	/* group graph: top-K cosine neighbours of the user features */
	ISRF_TRY(pipeline_stage(hook, hook_arg, env, "group_graph"));
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
	ISRF_TRY(pipeline_stage(hook, hook_arg, env, "lightgcn"));
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
			st = pipeline_stage(hook, hook_arg, env, "done");
			goto done;
		}

		if ((st = pipeline_stage(hook, hook_arg, env, "train")) != ISRF_OK)
			goto done;
		t0 = isrf_now();
		gc.use_group = gc.use_group && cfg->use_group;
		gc.use_semantic = gc.use_semantic && cfg->use_text;
		gc.seed = cfg->seed;
		isrf_model_genrec_data(m, &gd);
		if ((st = isrf_genrec_train(env, be, &gd, &gc, NULL, NULL, &m->genrec)) != ISRF_OK)
			goto done;
		m->stats.t_train = isrf_now() - t0;
	}
	st = pipeline_stage(hook, hook_arg, env, "done");

done:
	isrf_csr_free(env, &gnorm);
	isrf_csr_free(env, &ui);
	isrf_free(env, e0);
	isrf_free(env, e_out);
	return st;
}

IsrfStatus
isrf_train(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
		   const IsrfTrainConfig *cfg, IsrfStageHook hook, void *hook_arg,
		   IsrfModel *out)
{
	IsrfDataset ds;
	IsrfSemantic sem;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	memset(&ds, 0, sizeof(ds));
	memset(&sem, 0, sizeof(sem));
	out->cfg = *cfg;
	st = pipeline_run(env, be, corpus, cfg, hook, hook_arg, &ds, &sem, out);
	isrf_semantic_free(env, &sem);
	isrf_dataset_free(env, &ds);
	if (st != ISRF_OK)
		isrf_model_free(env, out);
	return st;
}
