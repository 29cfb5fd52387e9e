/*
 * model/model.h
 *	  A trained model in memory: its configuration, id maps and histories,
 *	  semantic features, the group graph and the interest vectors; and its
 *	  serialized form (model_file.h sections).
 */
#ifndef ISRF_MODEL_H
#define ISRF_MODEL_H

#include "base/csr.h"
#include "data/dataset.h"
#include "model/genrec.h"
#include "train/config.h"

typedef struct IsrfModelStats
{
	int32_t		n_users;
	int32_t		n_items;
	int64_t		n_interactions;
	int64_t		n_train_interactions;
	int32_t		n_evaluated_users;
	int32_t		n_items_with_text;
	int32_t		n_users_with_description;
	int32_t		n_users_from_history;
	int32_t		n_users_without_feature;
	int64_t		n_group_edges;
	double		mean_neighbour_similarity;
	double		explained_variance;
	double		t_split;		/* seconds per stage */
	double		t_features;
	double		t_group_graph;
	double		t_lightgcn;
	double		t_train;		/* generative model (semantic IDs + training) */
} IsrfModelStats;

typedef struct IsrfModel
{
	IsrfTrainConfig cfg;
	IsrfModelStats stats;
	int32_t		n_users;
	int32_t		n_items;
	int32_t		dm;
	int64_t    *user_ids;		/* [n_users] ascending */
	int64_t    *item_ids;		/* [n_items] ascending */
	int32_t    *seq_ptr;		/* [n_users + 1] full histories */
	int32_t    *seq;			/* item indices */
	int32_t    *n_train;		/* [n_users] train prefix length */
	float	   *item_feat;		/* [n_items x dm] frozen semantic features */
	IsrfCsr		item_text;		/* n_items x hash_dim TF-IDF rows of the
								 * items' text (semantic_features.h), for the
								 * score's lexical terms; no rows (NULL
								 * rowptr) for features from embeddings and
								 * models before it */
	float	   *user_feat;		/* [n_users x dm] user semantic features */
	uint8_t    *user_source;	/* [n_users] where each came from
								 * (IsrfUserFeatureSource of
								 * features/semantic_features.h) */
	IsrfCsr		group;			/* kNN graph: row = neighbours by similarity desc */
	float	   *user_explicit;	/* [n_users x dm] LightGCN over user-item graph */
	float	   *item_explicit;	/* [n_items x dm] */
	float	   *user_group;		/* [n_users x dm] LightGCN over group graph (h_u) */
	IsrfGenrec	genrec;			/* generative model; params NULL when not trained */
} IsrfModel;

/* The model's arrays as the generative model reads them. */
void		isrf_model_genrec_data(const IsrfModel *m, IsrfGenrecData *d);

void		isrf_model_free(IsrfEnv *env, IsrfModel *m);

/* Serialize to one buffer (allocated through env). */
IsrfStatus	isrf_model_save(IsrfEnv *env, const IsrfModel *m, uint8_t **buf, size_t *len);

/* Validate and copy a serialized model; corrupt input is ISRF_ERR_CORRUPT. */
IsrfStatus	isrf_model_load(IsrfEnv *env, const uint8_t *buf, size_t len, IsrfModel *out);

/* Dense index of an external user id, or -1. */
int32_t		isrf_model_user_index(const IsrfModel *m, int64_t user_id);

/* Dense index of an external item id, or -1. */
int32_t		isrf_model_item_index(const IsrfModel *m, int64_t item_id);

/* The stats as a JSON object (for isrf.models.metrics); NUL-terminated. */
void		isrf_model_stats_json(const IsrfModel *m, char *buf, size_t len);

#endif							/* ISRF_MODEL_H */
