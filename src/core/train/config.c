/*
 * train/config.c
 *	  The table of configuration keys and what it drives: defaults, parsing
 *	  and validation, the effective configuration, the README table (see
 *	  config.h).
 */
#include "train/config.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(IsrfTrainConfig, field)
#define GEN "epochs>0"

/*
 * The keys, in the order README lists them.  needs: the switches that must
 * be on (and numbers that must be positive) for the key to change anything.
 */
static const IsrfConfigKey config_keys[] = {
	{"model", ISRF_KEY_NAME, 0, 0, 0, 0, false, NULL, "the dataset name",
	"name of the model the new version belongs to (a model belongs to one dataset)"},
	{"dm", ISRF_KEY_INT, F(dm), 2, 1024, 128, false, NULL, NULL,
	"dimension of the item semantic features (randomized PCA of the text features)"},
	{"hash_dim", ISRF_KEY_INT, F(hash_dim), 1024, 1 << 24, 1 << 18, true, "use_text", NULL,
	"hashed vocabulary of the text featurizer (power of two)"},
	{"min_df", ISRF_KEY_INT, F(min_df), 1, 1000000, 2, false, "use_text", NULL,
	"featurizer: drop terms found in fewer items or users"},
	{"use_text", ISRF_KEY_BOOL, F(use_text), 0, 1, 1, false, NULL, NULL,
		"semantic features from text (or from the first `real[]` column of the items table, "
	"which replaces the text when present); false gives every item a zero feature"},
	{"use_llm_embeddings", ISRF_KEY_BOOL, F(use_llm_embeddings), 0, 1, 0, false, "use_text", NULL,
		"item and user features from the LLM endpoint's embeddings of the same texts (`isrf.llm_embedding_model`, "
	"cached) instead of the built-in featurizer; PostgreSQL only (see LLM reasoning)"},
	{"use_user_text", ISRF_KEY_BOOL, F(use_user_text), 0, 1, 1, false, NULL, NULL,
	"user features from user descriptions where present (else from history)"},
	{"use_group", ISRF_KEY_BOOL, F(use_group), 0, 1, 1, false, NULL, NULL,
	"build the group graph (top-K semantic user neighbours) for the analyst functions and the group interests"},
	{"group_k", ISRF_KEY_INT, F(group_k), 1, 1000, 50, false, "use_group", NULL,
	"neighbours per user in the group graph"},
	{"group_threshold", ISRF_KEY_FLOAT, F(group_threshold), -1, 1, -1, false, "use_group", NULL,
	"minimum cosine similarity of a neighbour"},
	{"layers", ISRF_KEY_INT, F(layers), 0, 8, 3, false, NULL, NULL,
	"LightGCN layers, both graphs"},
	{"seed", ISRF_KEY_SEED, F(seed), 0, 0, 1, false, NULL, NULL,
	"seed of every random choice (training is deterministic on each device; CPU and GPU agree to rounding)"},
	{"d_model", ISRF_KEY_INT, F(gen.d_model), 2, 1024, 64, false, GEN, NULL,
	"width of the transformer over the user's history"},
	{"tf_layers", ISRF_KEY_INT, F(gen.tf_layers), 1, 16, 2, false, GEN, NULL,
	"transformer blocks (pre-LayerNorm, causal)"},
	{"n_heads", ISRF_KEY_INT, F(gen.n_heads), 1, 64, 2, false, GEN, NULL,
	"attention heads (must divide `d_model`)"},
	{"max_len", ISRF_KEY_INT, F(gen.max_len), 1, 4096, 50, false, GEN, NULL,
	"most recent history items read per user"},
	{"batch_size", ISRF_KEY_INT, F(gen.batch_size), 0, 65536, 0, false, GEN, "0 (auto)",
	"users per optimizer step; 0: a sixteenth of the users who train, between 32 and 256 (a small data set gets more steps per epoch)"},
	{"epochs", ISRF_KEY_INT, F(gen.epochs), 0, 10000, 30, false, NULL, NULL,
	"most epochs; training stops early on validation NDCG@10 (0: no generative model)"},
	{"patience", ISRF_KEY_INT, F(gen.patience), 1, 10000, 5, false, GEN, NULL,
	"epochs without a validation gain before stopping"},
	{"refit_epochs", ISRF_KEY_INT, F(gen.refit_epochs), 0, 1000, 2, false, GEN, NULL,
	"then epochs on every user's whole history (the validation and test items too) at a tenth of the peak learning rate, for serving: the model serves these weights, while isrf_evaluate and every choice made on validation use the weights before them (0: no refit)"},
	{"lr", ISRF_KEY_FLOAT, F(gen.lr), 0, 0.5, 0, false, GEN, "0 (auto)",
	"peak AdamW learning rate (warm-up, cosine decay); 0: 1e-3 x sqrt(users per step / 64), the square-root scaling rule of Adam (0.002 at the 256 users per step of a large data set)"},
	{"dropout", ISRF_KEY_FLOAT, F(gen.dropout), 0, 0.95, 0.5, false, GEN, NULL,
	"dropout on inputs and residual branches"},
	{"weight_decay", ISRF_KEY_FLOAT, F(gen.weight_decay), 0, 10, 0, false, GEN, NULL,
	"AdamW decoupled weight decay (matrices only)"},
	{"clip", ISRF_KEY_FLOAT, F(gen.clip), 0, 1e6, 1, false, GEN, NULL,
	"global gradient-norm clip"},
	{"ema", ISRF_KEY_FLOAT, F(gen.ema), 0, 0.9999, 0.99, false, GEN, NULL,
	"decay of an exponential moving average of the weights, which validation judges and the model keeps (0: the weights as trained)"},
	{"use_group_interest", ISRF_KEY_BOOL, F(gen.use_group_interest), 0, 1, 0, false, GEN ",use_group", NULL,
	"the group interest joins the hidden state at every position (off by default: see below)"},
	{"use_explicit", ISRF_KEY_BOOL, F(gen.use_explicit), 0, 1, 0, false, GEN, NULL,
	"explicit-interest input at every position and the LightGCN item vector in each token (off by default: see below)"},
	{"use_align", ISRF_KEY_BOOL, F(gen.use_align), 0, 1, 1, false, GEN ",use_group_interest", NULL,
	"the two InfoNCE alignment losses"},
	{"lambda1", ISRF_KEY_FLOAT, F(gen.lambda1), 0, 100, 0.1, false, GEN ",use_group_interest,use_align,use_explicit", NULL,
	"weight of InfoNCE(group interest, stop-grad explicit interest): individual guides group"},
	{"lambda2", ISRF_KEY_FLOAT, F(gen.lambda2), 0, 100, 0.1, false, GEN ",use_group_interest,use_align", NULL,
	"weight of InfoNCE(final hidden state, group interest): group enhances individual"},
	{"tau", ISRF_KEY_FLOAT, F(gen.tau), 1e-4, 100, 0.1, false, GEN ",use_group_interest,use_align", NULL,
	"InfoNCE temperature"},
	{"alpha", ISRF_KEY_FLOAT, F(gen.alpha), -100, 100, 1, false, GEN ",use_explicit", NULL,
	"weight of the LightGCN item vector in each item token"},
	{"use_adapter", ISRF_KEY_BOOL, F(gen.use_adapter), 0, 1, 1, false, GEN ",use_text", NULL,
	"the adapter (a two-layer MLP) of the item's semantic feature in each item token"},
	{"use_word_emb", ISRF_KEY_BOOL, F(gen.use_word_emb), 0, 1, 1, false, GEN ",use_text", NULL,
	"learned embeddings of the items' words (the TF-IDF rows' terms, attributes included) added to each item's token and so to the tied dense head: items with few interactions share what their words learned"},
	{"use_generative", ISRF_KEY_BOOL, F(gen.use_generative), 0, 1, 1, false, GEN, NULL,
	"train and serve the semantic-ID decoder (beam search); false: dense head only"},
	{"gen_weight", ISRF_KEY_FLOAT, F(gen.gen_weight), 0, 100, 0.3, false, GEN ",use_generative", NULL,
	"weight of the semantic-ID generation loss beside the dense item loss"},
	{"semid_levels", ISRF_KEY_INT, F(gen.semid_levels), 1, ISRF_GENREC_MAX_LEVELS - 1, 3, false, GEN ",use_generative", NULL,
	"residual k-means levels of the semantic IDs (plus a de-dup code)"},
	{"semid_codebook", ISRF_KEY_INT, F(gen.semid_codebook), 2, 65536, 256, false, GEN ",use_generative", NULL,
	"codes per level"},
	{"beam_weight", ISRF_KEY_FLOAT, F(gen.beam_weight), -1, 100, -1, false, GEN ",use_generative", "chosen",
	"weight of the generative head's beam bonus in the served score (items its constrained beam search finds get their code log-probability above the lowest found); -1: chosen on validation from 0 to 4, where 0 leaves the beam out of serving"},
	{"use_group_score", ISRF_KEY_BOOL, F(gen.use_group_score), 0, 1, 1, false, GEN ",use_prior,use_group", NULL,
	"the group interest as a score term: the user's neighbours in the group graph vote for their recent items, weights chosen on validation (0 allowed)"},
	{"use_text_score", ISRF_KEY_BOOL, F(gen.use_text_score), 0, 1, 1, false, GEN ",use_prior,use_text", NULL,
	"the semantic features as a score term: the cosine between an item's text and the user's recent items' text, weights chosen on validation (0 allowed)"},
	{"use_blend_net", ISRF_KEY_BOOL, F(gen.use_blend_net), 0, 1, 1, false, GEN ",use_prior", NULL,
	"a small network over the candidate lists' score terms (isrf_rank, the direct task), fitted on the validation lists after their weights and kept only where it improves validation lists it was not fitted on"},
	{"use_relations", ISRF_KEY_BOOL, F(gen.use_relations), 0, 1, 1, false, GEN ",use_prior", NULL,
	"the blend network and the rerank network also read the candidate's relations to the history: its largest item-kNN similarity to any of the last 50 items, and the lexical cosines of its text's words (TF-IDF, before the PCA) with the recent items' (with use_text_score)"},
	{"use_rerank_net", ISRF_KEY_BOOL, F(gen.use_rerank_net), 0, 1, 1, false, GEN ",use_prior", NULL,
	"full ranking (isrf_recommend, the sequential task) reorders the ranking score's best 100 items by a small network over the same inputs as the blend network's, fitted on the validation targets that reach those 100 and kept only where it improves validation users it was not fitted on"},
	{"use_prior", ISRF_KEY_BOOL, F(gen.use_prior), 0, 1, 1, false, GEN, NULL,
	"add the ranking score's terms beside the dense logit (train-only Markov + item-kNN transition score; for candidate lists also popularity, recent popularity and the profile cosine), their weights chosen on validation (0 allowed)"},
	{"eval_users", ISRF_KEY_INT, F(gen.eval_users), 0, INT32_MAX, 0, false, GEN, NULL,
	"validation users per early-stopping evaluation (0: all)"},
};

#undef F
#undef GEN

#define CONFIG_N_KEYS ((int) (sizeof(config_keys) / sizeof(config_keys[0])))

const IsrfConfigKey *
isrf_config_keys(int *n)
{
	*n = CONFIG_N_KEYS;
	return config_keys;
}

const IsrfConfigKey *
isrf_config_key(const char *name)
{
	int			i;

	for (i = 0; name && i < CONFIG_N_KEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* The field of key k in cfg. */
static void *
config_field(const IsrfConfigKey *k, const IsrfTrainConfig *cfg)
{
	return (char *) cfg + k->offset;
}

/* The value of a number or switch key as a double. */
static double
config_value(const IsrfConfigKey *k, const IsrfTrainConfig *cfg)
{
	const void *f = config_field(k, cfg);

	switch (k->type)
	{
		case ISRF_KEY_INT:
			return *(const int32_t *) f;
		case ISRF_KEY_FLOAT:
			return *(const float *) f;
		case ISRF_KEY_BOOL:
			return *(const bool *) f ? 1.0 : 0.0;
		case ISRF_KEY_SEED:
			return (double) *(const uint64_t *) f;
		case ISRF_KEY_NAME:
			break;
	}
	return 0.0;
}

void
isrf_train_config_default(IsrfTrainConfig *cfg)
{
	int			i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < CONFIG_N_KEYS; i++)
	{
		const IsrfConfigKey *k = &config_keys[i];
		void	   *f = config_field(k, cfg);

		switch (k->type)
		{
			case ISRF_KEY_INT:
				*(int32_t *) f = (int32_t) k->def;
				break;
			case ISRF_KEY_FLOAT:
				*(float *) f = (float) k->def;
				break;
			case ISRF_KEY_BOOL:
				*(bool *) f = k->def != 0.0;
				break;
			case ISRF_KEY_SEED:
				*(uint64_t *) f = (uint64_t) k->def;
				break;
			case ISRF_KEY_NAME:
				break;
		}
	}
	cfg->gen.seed = cfg->seed;
}

/* Parse text into key k's field, checking type and range. */
static IsrfStatus
config_set(IsrfEnv *env, const IsrfConfigKey *k, const char *value, IsrfTrainConfig *cfg)
{
	void	   *f = config_field(k, cfg);
	char	   *end;

	errno = 0;
	switch (k->type)
	{
		case ISRF_KEY_NAME:
			if (value[0] == '\0')
				return isrf_fail(env, ISRF_ERR_INVALID, "config key \"%s\" must not be empty", k->name);
			return ISRF_OK;
		case ISRF_KEY_BOOL:
			if (strcmp(value, "true") == 0 || strcmp(value, "on") == 0 || strcmp(value, "1") == 0)
				*(bool *) f = true;
			else if (strcmp(value, "false") == 0 || strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
				*(bool *) f = false;
			else
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "config key \"%s\" must be true or false, not \"%s\"", k->name, value);
			return ISRF_OK;
		case ISRF_KEY_INT:
			{
				long		v = strtol(value, &end, 10);

				if (errno || end == value || *end != '\0' || v < (long) k->lo || v > (long) k->hi)
					return isrf_fail(env, ISRF_ERR_INVALID,
									 "config key \"%s\" must be an integer between %ld and %ld, not \"%s\"",
									 k->name, (long) k->lo, (long) k->hi, value);
				if (k->pow2 && (v & (v - 1)))
					return isrf_fail(env, ISRF_ERR_INVALID,
									 "config key \"%s\" must be a power of two, not %ld", k->name, v);
				*(int32_t *) f = (int32_t) v;
				return ISRF_OK;
			}
		case ISRF_KEY_FLOAT:
			{
				double		v = strtod(value, &end);

				if (errno || end == value || *end != '\0' || !(v >= k->lo && v <= k->hi))
					return isrf_fail(env, ISRF_ERR_INVALID,
									 "config key \"%s\" must be a number between %g and %g, not \"%s\"",
									 k->name, k->lo, k->hi, value);
				*(float *) f = (float) v;
				return ISRF_OK;
			}
		case ISRF_KEY_SEED:
			{
				long long	v = strtoll(value, &end, 10);

				if (errno || end == value || *end != '\0' || v < 0)
					return isrf_fail(env, ISRF_ERR_INVALID,
									 "config key \"%s\" must be a non-negative integer, not \"%s\"",
									 k->name, value);
				*(uint64_t *) f = (uint64_t) v;
				return ISRF_OK;
			}
	}
	return ISRF_ERR_INTERNAL;
}

/*
 * The first of k's needs that cfg does not meet, as "without use_x" or
 * "with epochs 0", into why; false when every need is met.
 */
static bool
config_unmet(const IsrfConfigKey *k, const IsrfTrainConfig *cfg, char *why, size_t len)
{
	const char *p = k->needs;

	while (p && *p)
	{
		char		name[64];
		size_t		n = strcspn(p, ",>");
		bool		positive = p[n] == '>';
		const IsrfConfigKey *dep;

		snprintf(name, sizeof(name), "%.*s", (int) (n < sizeof(name) ? n : sizeof(name) - 1), p);
		dep = isrf_config_key(name);
		if (dep != NULL && !(config_value(dep, cfg) > 0.0))
		{
			if (positive)
				snprintf(why, len, "with %s %g", name, config_value(dep, cfg));
			else
				snprintf(why, len, "without %s", name);
			return true;
		}
		p += n;
		if (positive)
			p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	return false;
}

bool
isrf_config_key_effective(const IsrfConfigKey *k, const IsrfTrainConfig *cfg)
{
	char		why[96];

	return !config_unmet(k, cfg, why, sizeof(why));
}

/* The names of every key, for the message about an unknown one. */
static void
config_known(char *buf, size_t len)
{
	size_t		off = 0;
	int			i;

	buf[0] = '\0';
	for (i = 0; i < CONFIG_N_KEYS && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%s", i ? ", " : "", config_keys[i].name);
}

/* The body of isrf_train_config_parse; given[] marks the keys set. */
static IsrfStatus
config_parse(IsrfEnv *env, int n, const char *const *keys, const char *const *values,
			 IsrfTrainConfig *cfg, bool *given)
{
	bool		changed = true;
	char		why[96];
	int			i;

	for (i = 0; i < n; i++)
	{
		const IsrfConfigKey *k = isrf_config_key(keys[i]);

		if (keys[i] == NULL || values[i] == NULL)
			return isrf_fail(env, ISRF_ERR_INVALID, "config key \"%s\" must not be null",
							 keys[i] ? keys[i] : "");
		if (k == NULL)
		{
			char		known[1024];

			config_known(known, sizeof(known));
			return isrf_fail(env, ISRF_ERR_INVALID, "unknown config key \"%s\" (known: %s)", keys[i], known);
		}
		if (given[k - config_keys])
			return isrf_fail(env, ISRF_ERR_INVALID, "config key \"%s\" is given twice", k->name);
		given[k - config_keys] = true;
		ISRF_TRY(config_set(env, k, values[i], cfg));
	}
	cfg->gen.seed = cfg->seed;
	if (cfg->gen.d_model % cfg->gen.n_heads != 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "config keys \"n_heads\" and \"d_model\": n_heads (%d) must divide d_model (%d)",
						 cfg->gen.n_heads, cfg->gen.d_model);
	if (cfg->gen.batch_size == 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "config key \"batch_size\" must be 0 (auto) or at least 2, not 1");
	/* switches left at their default whose needs are not met are off */
	while (changed)
	{
		changed = false;
		for (i = 0; i < CONFIG_N_KEYS; i++)
		{
			const IsrfConfigKey *k = &config_keys[i];

			if (k->type == ISRF_KEY_BOOL && !given[i] && *(bool *) config_field(k, cfg) &&
				config_unmet(k, cfg, why, sizeof(why)))
			{
				*(bool *) config_field(k, cfg) = false;
				changed = true;
			}
		}
	}
	for (i = 0; i < CONFIG_N_KEYS; i++)
		if (given[i] && config_unmet(&config_keys[i], cfg, why, sizeof(why)))
			return isrf_fail(env, ISRF_ERR_INVALID, "config key \"%s\" has no effect %s",
							 config_keys[i].name, why);
	return ISRF_OK;
}

IsrfStatus
isrf_train_config_parse(IsrfEnv *env, int n, const char *const *keys, const char *const *values,
						IsrfTrainConfig *cfg)
{
	bool		given[CONFIG_N_KEYS];
	IsrfStatus	st;

	memset(given, 0, sizeof(given));
	isrf_train_config_default(cfg);
	if (n < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "negative number of config keys");
	st = config_parse(env, n, keys, values, cfg, given);
	if (st != ISRF_OK)
		isrf_train_config_default(cfg);
	return st;
}

/* The shortest text that reads back as the same float. */
static void
config_float_text(float v, char *buf, size_t len)
{
	int			prec;

	for (prec = 6; prec < 9; prec++)
	{
		snprintf(buf, len, "%.*g", prec, (double) v);
		if (strtof(buf, NULL) == v)
			return;
	}
	snprintf(buf, len, "%.9g", (double) v);
}

/* The value of key k in cfg as text (JSON). */
static void
config_value_text(const IsrfConfigKey *k, const IsrfTrainConfig *cfg, char *buf, size_t len)
{
	const void *f = config_field(k, cfg);

	switch (k->type)
	{
		case ISRF_KEY_INT:
			snprintf(buf, len, "%d", *(const int32_t *) f);
			break;
		case ISRF_KEY_FLOAT:
			config_float_text(*(const float *) f, buf, len);
			break;
		case ISRF_KEY_BOOL:
			snprintf(buf, len, "%s", *(const bool *) f ? "true" : "false");
			break;
		case ISRF_KEY_SEED:
			snprintf(buf, len, "%llu", (unsigned long long) *(const uint64_t *) f);
			break;
		case ISRF_KEY_NAME:
			buf[0] = '\0';
			break;
	}
}

/* Append to buf (len bytes, off used) like snprintf; returns the new offset (may pass len). */
static size_t
config_append(char *buf, size_t len, size_t off, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

static size_t
config_append(char *buf, size_t len, size_t off, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(off < len ? buf + off : NULL, off < len ? len - off : 0, fmt, ap);
	va_end(ap);
	return off + (n > 0 ? (size_t) n : 0);
}

size_t
isrf_train_config_json(const IsrfTrainConfig *cfg, char *buf, size_t len)
{
	size_t		off = 0;
	bool		first = true;
	int			i;

	if (len > 0)
		buf[0] = '\0';
	off = config_append(buf, len, off, "{");
	for (i = 0; i < CONFIG_N_KEYS; i++)
	{
		const IsrfConfigKey *k = &config_keys[i];
		char		v[64];

		if (k->type == ISRF_KEY_NAME || !isrf_config_key_effective(k, cfg))
			continue;
		config_value_text(k, cfg, v, sizeof(v));
		off = config_append(buf, len, off, "%s\"%s\": %s", first ? "" : ", ", k->name, v);
		first = false;
	}
	off = config_append(buf, len, off, "}");
	if (len > 0 && off >= len)
		buf[len - 1] = '\0';
	return off + 1;
}

size_t
isrf_train_config_text(const IsrfTrainConfig *cfg, char *buf, size_t len)
{
	size_t		off = 0;
	int			i;

	if (len > 0)
		buf[0] = '\0';
	for (i = 0; i < CONFIG_N_KEYS; i++)
	{
		const IsrfConfigKey *k = &config_keys[i];
		char		v[64];

		if (k->type == ISRF_KEY_NAME)
			continue;
		config_value_text(k, cfg, v, sizeof(v));
		off = config_append(buf, len, off, "%s=%s\n", k->name, v);
	}
	if (len > 0 && off >= len)
		buf[len - 1] = '\0';
	return off + 1;
}

IsrfStatus
isrf_train_config_from_text(IsrfEnv *env, const char *text, size_t len, IsrfTrainConfig *cfg)
{
	size_t		p = 0;

	isrf_train_config_default(cfg);
	while (p < len)
	{
		char		line[256];
		size_t		n = 0;
		char	   *eq;
		const IsrfConfigKey *k;

		while (p < len && text[p] != '\n' && n < sizeof(line) - 1)
			line[n++] = text[p++];
		line[n] = '\0';
		if (p < len && text[p] != '\n')
			return isrf_fail(env, ISRF_ERR_CORRUPT, "the stored configuration is damaged (a line too long)");
		p++;
		if (n == 0)
			continue;
		eq = strchr(line, '=');
		if (eq == NULL)
			return isrf_fail(env, ISRF_ERR_CORRUPT, "the stored configuration is damaged (\"%.40s\")", line);
		*eq = '\0';
		k = isrf_config_key(line);
		if (k == NULL || k->type == ISRF_KEY_NAME)
			continue;			/* a key of another build */
		if (config_set(env, k, eq + 1, cfg) != ISRF_OK)
			return isrf_fail(env, ISRF_ERR_CORRUPT, "the stored configuration is damaged: %s", env->errmsg);
	}
	cfg->gen.seed = cfg->seed;
	if (cfg->gen.n_heads < 1 || cfg->gen.d_model % cfg->gen.n_heads != 0)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "the stored configuration is damaged (n_heads, d_model)");
	return ISRF_OK;
}

size_t
isrf_config_markdown(char *buf, size_t len)
{
	IsrfTrainConfig def;
	size_t		off = 0;
	int			i;

	isrf_train_config_default(&def);
	if (len > 0)
		buf[0] = '\0';
	off = config_append(buf, len, off, "| key | default | meaning |\n|---|---|---|\n");
	for (i = 0; i < CONFIG_N_KEYS; i++)
	{
		const IsrfConfigKey *k = &config_keys[i];
		char		v[64];
		const char *p = k->needs;

		if (k->def_doc)
			snprintf(v, sizeof(v), "%s", k->def_doc);
		else
			config_value_text(k, &def, v, sizeof(v));
		off = config_append(buf, len, off, "| `%s` | %s | %s", k->name, v, k->doc);
		/* the needs, in words */
		for (; p && *p;)
		{
			size_t		n = strcspn(p, ",>");
			bool		positive = p[n] == '>';

			off = config_append(buf, len, off, "%s`%.*s`%s", p == k->needs ? "; needs " : ", ",
								(int) n, p, positive ? " > 0" : "");
			p += n;
			if (positive)
				p += strcspn(p, ",");
			if (*p == ',')
				p++;
		}
		off = config_append(buf, len, off, " |\n");
	}
	if (len > 0 && off >= len)
		buf[len - 1] = '\0';
	return off + 1;
}
