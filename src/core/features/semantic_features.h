/*
 * features/semantic_features.h
 *	  Item and user semantic features: the item and user text of a corpus
 *	  featurized together (TF-IDF, text.h), reduced by one PCA (pca.h) to d_m
 *	  so items and described users live in one space, and user features for
 *	  users without a description derived from their TRAIN items only.
 */
#ifndef ISRF_SEMANTIC_H
#define ISRF_SEMANTIC_H

#include "data/corpus.h"
#include "features/pca.h"
#include "features/text.h"

typedef struct IsrfSemanticConfig
{
	int32_t		dm;				/* feature dimension (default 128) */
	IsrfTextConfig text;		/* featurizer settings (text.h defaults) */
	IsrfPcaConfig pca;			/* sketch settings; pca.k is replaced by dm */
	bool		use_user_text;	/* featurize user descriptions (default true) */

	/*
	 * Precomputed item embeddings in place of the featurizer: host
	 * n_items x embedding_dim, row = dataset item index; a row holding any
	 * NaN or infinity is "missing" (a zero feature).  They are PCA'd to dm
	 * like the text.  User descriptions cannot be placed in an embedding
	 * space we did not compute, so with item embeddings alone every user's
	 * feature comes from history and the user text is counted as ignored.
	 */
	const float *item_embeddings;
	int32_t		embedding_dim;

	/*
	 * Embeddings of the user descriptions in the items' embedding space
	 * (same model, same dimension), n_users x embedding_dim by dataset user
	 * index, NaN rows missing; NULL: none.  With use_user_text they join the
	 * items in one PCA, as described users do with text.
	 */
	const float *user_embeddings;
} IsrfSemanticConfig;

void		isrf_semantic_config_default(IsrfSemanticConfig *cfg);

/* Where a user's feature came from. */
typedef enum IsrfUserFeatureSource
{
	ISRF_USER_FEATURE_NONE = 0, /* no description, no train item with a feature */
	ISRF_USER_FEATURE_DESCRIPTION,
	ISRF_USER_FEATURE_HISTORY
} IsrfUserFeatureSource;

typedef struct IsrfSemantic
{
	int32_t		n_items;
	int32_t		n_users;
	int32_t		dm;
	float	   *item;			/* [n_items x dm], zero row = no feature */
	float	   *user;			/* [n_users x dm], zero row = no feature */
	IsrfCsr		item_text;		/* n_items x hash_dim: each item's L2-normalised
								 * TF-IDF row (the PCA's input; empty rows for
								 * items without text); no rows (NULL rowptr)
								 * when the features came from embeddings */
	uint8_t    *user_source;	/* [n_users] IsrfUserFeatureSource */

	int32_t		n_items_with_text;	/* (or with an embedding) */
	int32_t		n_users_with_description;
	int32_t		n_users_from_history;
	int32_t		n_users_without;
	int64_t		n_unknown_item_text;	/* pieces whose item id is unknown */
	int64_t		n_unknown_user_text;	/* pieces whose user id is unknown */
	int64_t		n_ignored_user_text;	/* user pieces not used (embeddings, switched off) */
	double		explained;		/* sum of the dm component variances */

	double		t_featurize;	/* seconds per stage */
	double		t_pca;
	double		t_users;
} IsrfSemantic;

/*
 * Build the features of every dataset item (catalogue included) and user.
 * Text pieces with unknown ids are counted and skipped, never fatal.
 */
IsrfStatus	isrf_semantic_build(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
								const IsrfDataset *ds, const IsrfSemanticConfig *cfg,
								IsrfSemantic *out);

void		isrf_semantic_free(IsrfEnv *env, IsrfSemantic *s);

#endif							/* ISRF_SEMANTIC_H */
