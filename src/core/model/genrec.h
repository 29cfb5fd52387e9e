/*
 * model/genrec.h
 *	  The generative recommender of DESIGN.md section 5: a causal transformer
 *	  over the user's history with causal explicit and group interests, a semantic-ID
 *	  code decoder (the generative head) and a tied dense item head; its
 *	  training (every position of every train prefix, AdamW, early stopping
 *	  on validation NDCG@10) and the inference pieces that serving uses.
 *	  The code is in genrec_*.c (see genrec_internal.h for which is where).
 *
 * One token per item: ID embedding + adapter(frozen semantic feature, a
 * two-layer GELU MLP) + word embeddings (the item's TF-IDF row, scaled to
 * unit length, times a learned vector per word: n_words of them, the words
 * some item has) + alpha * W_e (LightGCN item vector) + position.  The
 * same item token table is the dense head's output matrix (tied weights).
 *
 * User-level interests, causal so that training never sees its targets:
 * - explicit: each token also gets W_u e_t + b_u, e_t = (sum of the LightGCN
 *   item vectors of the items read so far) / sqrt(count), which is what
 *   LightGCN propagation gives a user with exactly those items;
 * - group: the hidden state at position t gets W_g g_t + b_g, g_t the
 *   similarity-weighted mean of the group vectors h_v (LightGCN over the
 *   group graph) of the group_k users whose features are closest to the
 *   mean feature of the items read so far (the user itself left out).
 * A user vector computed once from all train items (the design's prefix
 * tokens) holds every train target: trained that way the model learns to
 * read the answer off it and fails at validation (HR@10 0.062 against
 * 0.079 without it on Amazon Beauty).  In training the group interests of
 * all train positions are computed once; at inference only the last
 * position's is needed.  The explicit part is off by default: the LightGCN
 * item vectors come from the train graph, where every history item and
 * every train target share the user, so they still carry some of the
 * answer in training (measured: validation NDCG@10 lower with it on).
 *
 * Code decoder: level l reads z_l = h + sum_{j<l} C_j[code_j] (h the final
 * hidden state, C_j an embedding of the level-j code) and scores the level-l
 * codes with a linear classifier; trained by teacher forcing.
 *
 * Losses: dense CE + gen_weight * sum_l CE_l + lambda1 * InfoNCE(g_u,
 * stop-grad e_u) + lambda2 * InfoNCE(h_last, g_u), where g_u / e_u are the
 * projected group / explicit interests at the last position and h_last the
 * hidden state there before g_u joins it; L2-normalised, temperature tau,
 * one row per user in the batch (users are unique within a batch by
 * construction: a batch is a set of users).
 *
 * Ranking score: the dense head's logit plus weighted terms that need no
 * transformer (the transition prior, the group and text terms, and for
 * candidate lists popularity, recent popularity and the profile cosine),
 * written once in scorer.h and chosen on validation
 * after training (scorer_tune.c); with use_prior off every weight is 0 and
 * the ranking is the dense head alone.
 *
 * This file needs nothing from model.h so that model.h can embed an
 * IsrfGenrec; callers pass the model's arrays through IsrfGenrecData.
 */
#ifndef ISRF_GENREC_H
#define ISRF_GENREC_H

#include "base/csr.h"
#include "compute/backend.h"
#include "model/beam_search.h"
#include "model/scorer.h"

#define ISRF_GENREC_MAX_LEVELS 8

/*
 * The generative model's configuration.  The fields are named after the
 * configuration keys that set them (train/config.c holds the keys, their
 * ranges, defaults and dependencies); seed comes from the key of the whole
 * training.
 */
typedef struct IsrfGenrecConfig
{
	int32_t		d_model;		/* C */
	int32_t		tf_layers;		/* transformer blocks */
	int32_t		n_heads;
	int32_t		max_len;		/* history items read */
	int32_t		batch_size;		/* users per step */
	int32_t		epochs;			/* at most; 0 = no generative model */
	int32_t		patience;		/* epochs without validation gain */
	int32_t		refit_epochs;	/* then on whole histories, for serving */
	float		lr;				/* peak AdamW learning rate */
	float		dropout;
	float		weight_decay;	/* on matrices only */
	float		clip;			/* global gradient norm */
	float		ema;			/* decay of the weights' moving average, 0 =
								 * off */
	float		lambda1;		/* InfoNCE(group, stop-grad explicit) */
	float		lambda2;		/* InfoNCE(final hidden, group) */
	float		tau;			/* InfoNCE temperature */
	float		alpha;			/* weight of the LightGCN item vector */
	float		gen_weight;		/* weight of the code CE */
	bool		use_generative; /* code decoder trained and used */
	bool		use_group_interest; /* causal group interest in the hidden state */
	bool		use_align;		/* the InfoNCE alignment losses */
	bool		use_explicit;	/* explicit-interest input and LightGCN item
								 * vector (see the top of this file) */
	bool		use_adapter;	/* adapter(semantic feature) in the token */
	bool		use_word_emb;	/* learned embeddings of the items' words
								 * (their TF-IDF rows) in the token */
	bool		use_prior;		/* the scorer's terms, weights tuned on
								 * validation */
	float		beam_weight;	/* the beam bonus in the served score; < 0:
								 * chosen on validation */
	bool		use_group_score;	/* the group's recent items as a score term */
	bool		use_text_score; /* the recent items' text as a score term */
	bool		use_blend_net;	/* the candidate lists' blend network */
	bool		use_relations;	/* its inputs include the relations (scorer.h) */
	bool		use_rerank_net;	/* full ranking's best reordered by a network */
	int32_t		semid_levels;	/* residual k-means levels */
	int32_t		semid_codebook; /* codes per level */
	int32_t		eval_users;		/* validation users per evaluation, 0 = all */
	uint64_t	seed;
} IsrfGenrecConfig;

/*
 * What the engine itself needs of a configuration to run safely (the
 * configuration keys' own ranges are train/config.c's); the message names
 * the bad field.
 */
IsrfStatus	isrf_genrec_config_check(IsrfEnv *env, const IsrfGenrecConfig *cfg);

/* What the model is trained on (host memory, not owned). */
typedef struct IsrfGenrecData
{
	int32_t		n_users;
	int32_t		n_items;
	int32_t		dm;
	const int32_t *seq_ptr;		/* [n_users + 1] full histories */
	const int32_t *seq;
	const int32_t *n_train;		/* [n_users] train prefix lengths */
	const float *item_feat;		/* [n_items x dm] */
	const IsrfCsr *item_text;	/* the items' TF-IDF rows (NULL: none) */
	const float *item_explicit; /* [n_items x dm] */
	const float *user_explicit; /* [n_users x dm] */
	const float *user_group;	/* [n_users x dm] group vectors h_u */
	const float *user_feat;		/* [n_users x dm] the features the group
								 * graph was built from (NULL: no group
								 * interests) */
	int32_t		group_k;		/* neighbours of a group query (0: 50) */
	const IsrfCsr *group;		/* the group graph (NULL: none) */
} IsrfGenrecData;

/* A trained model: configuration, codes and weights (host memory). */
typedef struct IsrfGenrec
{
	IsrfGenrecConfig cfg;
	int32_t		n_items;
	int32_t		dm;
	int32_t		levels;			/* code columns (semid levels + de-dup) */
	int32_t		codebook_sizes[ISRF_GENREC_MAX_LEVELS];
	float		scale[4];		/* input scales: feat, item_exp, user_exp, group */
	IsrfScoreWeights weights;	/* of the ranking score's terms (scorer.h) */
	int32_t    *codes;			/* [n_items x levels] */
	int32_t		n_words;		/* word embeddings' vocabulary (0: none) */
	size_t		n_params;
	float	   *params;			/* embeddings, adapter, projections, decoder */
	size_t		n_tf_params;
	float	   *tf_params;		/* transformer block (transformer.h layout) */

	/*
	 * The weights as of the train split, where a refit on whole histories
	 * followed (refit_epochs): evaluation and validation use these, serving
	 * uses params / tf_params.  NULL without a refit (then both are one).
	 */
	float	   *eval_params;
	float	   *eval_tf_params;

	/* training record */
	int32_t		epochs_run;
	int32_t		best_epoch;
	double		best_val_hr10;
	double		best_val_ndcg10;
	double		t_train;
	int64_t		nonfinite_steps;	/* steps skipped: the gradient was not finite */
} IsrfGenrec;

/*
 * Where training stands after an epoch: of the training proper, or, with
 * refit set, of the refit on whole histories that follows it (refit_epochs;
 * epoch and epochs then count the refit's, and there is no validation:
 * val_hr10 and val_ndcg10 are NaN).  Once between the two, with weights
 * set, the fit is over and the ranking score's weights are being chosen on
 * validation (use_prior): epoch is the fit's last, the validation figures
 * are the kept epoch's, elapsed is the fit's time, eta the refit's epochs
 * at the fit's mean epoch, and loss and seconds are NaN.
 */
typedef struct IsrfEpochReport
{
	bool		refit;			/* an epoch of the refit */
	bool		weights;		/* the fit is over, the weights' choice begins */
	int32_t		epoch;			/* 1-based */
	int32_t		epochs;			/* at most (early stopping may end sooner) */
	int32_t		best_epoch;
	double		loss;			/* mean training loss of the epoch */
	double		val_hr10;		/* validation, dense head's full ranking */
	double		val_ndcg10;
	double		seconds;		/* of this epoch */
	double		elapsed;		/* since the first epoch (of this phase) began */
	double		eta;			/* estimated seconds of epochs left if every
								 * epoch runs, the refit's included */
	int64_t		nonfinite_steps;	/* skipped so far */
} IsrfEpochReport;

/*
 * Per-epoch progress (may be NULL in isrf_genrec_train); a status other
 * than ISRF_OK stops training with that status.
 */
typedef IsrfStatus (*IsrfGenrecEpochHook) (void *arg, const IsrfEpochReport *r);

/*
 * Build semantic IDs over d->item_feat, then train; out is filled with
 * memory from env (isrf_genrec_free).  Runs on any backend (CPU or CUDA);
 * deterministic given cfg->seed on each, and the two agree to rounding
 * (test_parity_model).
 */
IsrfStatus	isrf_genrec_train(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
							  const IsrfGenrecConfig *cfg, IsrfGenrecEpochHook hook,
							  void *hook_arg, IsrfGenrec *out);

void		isrf_genrec_free(IsrfEnv *env, IsrfGenrec *g);

/*
 * Choose the ranking score's weights of a trained model again on the
 * validation targets, as training does after its last epoch (for trying
 * the scorer on a saved model without training it again).
 */
IsrfStatus	isrf_genrec_retune(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
							   IsrfGenrec *g);

/* Deep copy (for model load/save round trips and tests). */
IsrfStatus	isrf_genrec_copy(IsrfEnv *env, const IsrfGenrec *src, IsrfGenrec *dst);

/* Number of floats of the non-transformer block for these sizes. */
size_t		isrf_genrec_param_count(const IsrfGenrecConfig *cfg, int32_t n_items,
									int32_t dm, int32_t levels,
									const int32_t *codebook_sizes, int32_t n_words);

/* ---- inference --------------------------------------------------------- */

typedef struct IsrfGenrecSession IsrfGenrecSession;

/*
 * Prepare inference: the transformer with g's weights and the item token
 * table.  d supplies the user features and group vectors; it must outlive the
 * session.  _open takes the served weights, _open_eval those of the train
 * split (evaluation and validation; the same unless a refit followed).
 */
IsrfStatus	isrf_genrec_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfGenrec *g,
									 const IsrfGenrecData *d, IsrfGenrecSession **out);
IsrfStatus	isrf_genrec_session_open_eval(IsrfEnv *env, IsrfBackend *be, const IsrfGenrec *g,
										  const IsrfGenrecData *d, IsrfGenrecSession **out);

void		isrf_genrec_session_close(IsrfGenrecSession *s);

/*
 * Final hidden state after reading each history: h[n x C] (host) for user
 * users[i] (or -1: anonymous) with history hist[i][0 .. hist_len[i])
 * (oldest first; only the last max_len items are read).
 */
IsrfStatus	isrf_genrec_encode(IsrfGenrecSession *s, int32_t n, const int32_t *users,
							   const int32_t *const *hist, const int32_t *hist_len,
							   float *h);

/* Dense-head scores of every item: scores[n x n_items] (host) from h[n x C]. */
IsrfStatus	isrf_genrec_dense_scores(IsrfGenrecSession *s, int32_t n, const float *h,
									 float *scores);

/*
 * Add the ranking score's other terms (scorer.h) to dense scores of
 * cand[0..n) (cand NULL: all items, scores has n_items entries) for user
 * (-1: unknown) after the input history hist[0..len); direct picks the
 * weights of candidate lists.
 * -1 candidates are left alone.
 */
IsrfStatus	isrf_genrec_score_terms(IsrfGenrecSession *s, int32_t user, const int32_t *hist,
									int32_t len, int32_t n, const int32_t *cand, bool direct,
									float *scores);

/* Dense-head scores of cand[0..n_cand) for one hidden state; -1 gives NaN. */
IsrfStatus	isrf_genrec_dense_candidates(IsrfGenrecSession *s, const float *h,
										 int32_t n_cand, const int32_t *cand,
										 float *scores);

/*
 * Log-probabilities of the level-`level` code for n beams: h_rows[i] is the
 * hidden state of beam i (host, C floats each), prefix the beams' codes so
 * far (n x level), logp n x codebook_sizes[level] (host).
 */
IsrfStatus	isrf_genrec_code_logp(IsrfGenrecSession *s, int32_t level, int32_t n,
								  const float *const *h_rows, const int32_t *prefix,
								  float *logp);

/* The session's scorer (its terms fitted on the train split). */
IsrfScorer *isrf_genrec_scorer(IsrfGenrecSession *s);

/* d_model of the session (width of the rows of h). */
int32_t		isrf_genrec_width(const IsrfGenrecSession *s);

/* The trie over g's codes. */
IsrfStatus	isrf_genrec_trie(IsrfEnv *env, const IsrfGenrec *g, IsrfTrie *out);

/*
 * Full-ranking rank (0-based, -1 = not ranked) of target[i] for users[i]
 * whose input is the first n_input[i] items of its history: ranking score
 * (dense + beta * prior) over all items, the input excluded, ties to the
 * lower index.
 */
IsrfStatus	isrf_genrec_rank_targets(IsrfGenrecSession *s, int32_t n, const int32_t *users,
									 const int32_t *n_input, const int32_t *target,
									 int32_t *ranks);

#endif							/* ISRF_GENREC_H */
