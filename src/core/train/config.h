/*
 * train/config.h
 *	  The configuration of a training run, and the one table of its keys:
 *	  name, type, range, default, the field it sets, what it needs to have an
 *	  effect, and what it means.  The table drives parsing and validation
 *	  (after every key has been read, so no check depends on key order),
 *	  the effective configuration stored with each model version, and the
 *	  README's table of keys (a unit test fails when the two disagree).
 *
 * A key that the rest of the configuration makes ineffective is refused,
 * naming why (e.g. lambda1 without use_group_interest); a switch left at its
 * default whose needs are not met is off in the effective configuration.
 */
#ifndef ISRF_CONFIG_H
#define ISRF_CONFIG_H

#include "model/genrec.h"

/* Training configuration; every field is set by the key of its name. */
typedef struct IsrfTrainConfig
{
	int32_t		dm;				/* semantic feature dimension (PCA) */
	int32_t		hash_dim;		/* hashed vocabulary of the featurizer */
	int32_t		min_df;			/* featurizer: minimum document frequency */
	bool		use_text;		/* semantic features from text (else zero) */
	bool		use_llm_embeddings; /* the text embedded by the LLM endpoint
									 * (the PostgreSQL glue fetches them) */
	bool		use_user_text;	/* user descriptions (else history means) */
	bool		use_group;		/* the group graph */
	int32_t		group_k;		/* neighbours per user */
	float		group_threshold;	/* minimum cosine of a neighbour */
	int32_t		layers;			/* LightGCN layers, both graphs */
	uint64_t	seed;
	IsrfGenrecConfig gen;		/* the generative model (genrec.h); gen.epochs
								 * 0 = stop after LightGCN */
} IsrfTrainConfig;

typedef enum IsrfKeyType
{
	ISRF_KEY_INT,
	ISRF_KEY_FLOAT,
	ISRF_KEY_BOOL,
	ISRF_KEY_SEED,				/* uint64, non-negative */
	ISRF_KEY_NAME				/* text handled by the caller (no field) */
} IsrfKeyType;

/* One configuration key. */
typedef struct IsrfConfigKey
{
	const char *name;
	IsrfKeyType type;
	size_t		offset;			/* of the field in IsrfTrainConfig */
	double		lo;				/* range of numbers */
	double		hi;
	double		def;			/* default (0 / 1 for switches) */
	bool		pow2;			/* must be a power of two */
	const char *needs;			/* "a,b>0": switches that must be on and
								 * numbers that must be positive for the key
								 * to have an effect; NULL: always */
	const char *def_doc;		/* the default as README says it, or NULL */
	const char *doc;			/* what it means */
} IsrfConfigKey;

/* The table, in README order; *n gets its length. */
const IsrfConfigKey *isrf_config_keys(int *n);

/* The key of that name, or NULL. */
const IsrfConfigKey *isrf_config_key(const char *name);

/* Every field at its key's default. */
void		isrf_train_config_default(IsrfTrainConfig *cfg);

/*
 * Parse n (key, value) pairs given as text ("true"/"false"/"on"/"off"/
 * "1"/"0" for switches) over the defaults, then validate the whole: each
 * key known and given once, each value in range, n_heads dividing d_model,
 * no key made ineffective by the others.  A NAME key (model) is accepted
 * and left to the caller.  On failure *cfg is the defaults and the message
 * names the key.
 */
IsrfStatus	isrf_train_config_parse(IsrfEnv *env, int n, const char *const *keys,
									const char *const *values, IsrfTrainConfig *cfg);

/* Whether key k has an effect under cfg (its needs are met). */
bool		isrf_config_key_effective(const IsrfConfigKey *k, const IsrfTrainConfig *cfg);

/*
 * The effective configuration as a JSON object: every key that has an
 * effect under cfg, with its value (NAME keys left out).  Returns the length
 * it needs; writes at most len bytes, NUL-terminated.
 */
size_t		isrf_train_config_json(const IsrfTrainConfig *cfg, char *buf, size_t len);

/*
 * Every key's value as "key=value" lines (NAME keys left out), for the
 * model file: what a model was trained with, independent of the struct's
 * layout.  Returns the length it needs; writes at most len bytes,
 * NUL-terminated.
 */
size_t		isrf_train_config_text(const IsrfTrainConfig *cfg, char *buf, size_t len);

/*
 * Read such lines back over the defaults: every value checked against its
 * key's type and range (ISRF_ERR_CORRUPT naming it when it is not), keys
 * this build does not know ignored.
 */
IsrfStatus	isrf_train_config_from_text(IsrfEnv *env, const char *text, size_t len,
										IsrfTrainConfig *cfg);

/*
 * The README's table of keys (Markdown, a row per key, header included).
 * Returns the length it needs; writes at most len bytes, NUL-terminated.
 */
size_t		isrf_config_markdown(char *buf, size_t len);

#endif							/* ISRF_CONFIG_H */
