/*
 * serve/serve.h
 *	  What the SQL functions and the model server ask of a trained model,
 *	  through one serving session per (process, model version): top-k
 *	  recommendations by constrained beam search rescored by the ranking
 *	  score, and exact scores of a candidate list.  Deterministic: the same
 *	  model and request give the same answer, bit for bit, on one backend.
 */
#ifndef ISRF_SERVE_H
#define ISRF_SERVE_H

#include "compute/backend.h"
#include "model/model.h"

/* Width of the constrained beam search when a request names none. */
#define ISRF_BEAM_WIDTH_DEFAULT 20

/*
 * A serving session: what answering from one model on one backend needs
 * (weights on the device, the item token table, the trie of codes, the
 * scorer's prior, popularity), prepared once for every later call.  env
 * owns the session's memory and must outlive it; the model too.
 */
typedef struct IsrfServeSession IsrfServeSession;

IsrfStatus	isrf_serve_session_open(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
									IsrfServeSession **out);

/*
 * The same over the model's train-split weights, for evaluation and for
 * choices made on validation: they differ from the served ones where a refit
 * on whole histories followed training (refit_epochs), which saw the test
 * and validation items.
 */
IsrfStatus	isrf_serve_session_open_eval(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m,
										 IsrfServeSession **out);
void		isrf_serve_session_close(IsrfServeSession *ss);

/* The model and the backend of a session. */
const IsrfModel *isrf_serve_session_model(const IsrfServeSession *ss);
IsrfBackend *isrf_serve_session_backend(const IsrfServeSession *ss);

typedef struct IsrfRecRequest
{
	int32_t		user;			/* model user index, or -1: a user the model does not know */
	int32_t		k;				/* items wanted, >= 1 */
	int32_t		beam_width;		/* of the beam search; 0: ISRF_BEAM_WIDTH_DEFAULT */
	const int32_t *hist;		/* the history the answer follows (item indices,
								 * oldest first), or NULL: the user's stored
								 * history (all splits) */
	int32_t		len;
} IsrfRecRequest;

typedef struct IsrfRecResult
{
	int32_t    *items;			/* [k] item indices, best first (caller's memory) */
	float	   *scores;			/* [k] */
	int32_t		count;			/* how many were filled: min(k, items not in the history) */
	bool		cold_start;		/* the answer did not come from the user's history */
} IsrfRecResult;

/*
 * What the ranking score's other terms are fitted on (scorer.h): every
 * interaction the model knows (serving), or only the train split (the
 * protocol of evaluation, which must not see the targets).
 */
typedef enum IsrfServeScope
{
	ISRF_SCOPE_ALL = 0,
	ISRF_SCOPE_TRAIN_SPLIT
} IsrfServeScope;

/*
 * Recommend for a batch of requests at once (the server drains all pending
 * requests into one call); env is for this call's scratch.  Every result is
 * a real item, none from the history, no duplicates.  A request with no
 * history (an unknown user without one, or a model without a generative
 * part) gets the most popular items of late (recent popularity over every
 * interaction the model knows, session.c; the train split in an evaluation
 * session), its history excluded, marked cold_start.
 */
IsrfStatus	isrf_serve_recommend(IsrfEnv *env, IsrfServeSession *ss, int32_t n,
								 const IsrfRecRequest *req, IsrfRecResult *res);

/* The same code with the terms fitted as scope says (evaluation: the train split). */
IsrfStatus	isrf_serve_recommend_scope(IsrfEnv *env, IsrfServeSession *ss, IsrfServeScope scope,
									   int32_t n, const IsrfRecRequest *req, IsrfRecResult *res);

/*
 * Exact scores of candidate items after a history (the paper's direct
 * recommendation): scores[i] for cand[i]; a candidate of -1 (unknown item)
 * gets NaN.  hist NULL: user's stored history; user -1 without a history
 * (or a model without a generative part) scores by the same recent
 * popularity.
 */
IsrfStatus	isrf_serve_rank(IsrfEnv *env, IsrfServeSession *ss, int32_t user,
							const int32_t *hist, int32_t len, int32_t n_cand,
							const int32_t *cand, float *scores);
IsrfStatus	isrf_serve_rank_scope(IsrfEnv *env, IsrfServeSession *ss, IsrfServeScope scope,
								  int32_t user, const int32_t *hist, int32_t len, int32_t n_cand,
								  const int32_t *cand, float *scores);

/*
 * The generative head's candidates: constrained beam search of the given
 * width for n hidden states h (host, n x C) after histories hist[i][0 ..
 * lens[i]) (excluded); request i's items and log-probabilities go to
 * items/logp + i * width, found[i] of them.  Needs a model with a trie.
 */
IsrfStatus	isrf_serve_beam(IsrfEnv *env, IsrfServeSession *ss, int32_t width, int32_t n,
							const float *h, const int32_t *const *hist, const int32_t *lens,
							int32_t *items, float *logp, int32_t *found);

/*
 * Add the beam's bonus to score[]: each found item gets weight times its
 * log-probability above the lowest found (so every other item gets 0);
 * items whose score is NaN (excluded) stay NaN.
 */
void		isrf_serve_beam_bonus(float weight, int32_t found, const int32_t *items,
								  const float *logp, float *score);

/*
 * The served list of one known user from row, the ranking score of every
 * item after hist[0..len) (NaN where excluded, the beam's bonus added):
 * its k best into items / scores (*count of them), best first.  Where the
 * scorer's rerank network is active (scorer.h), the row's best
 * ISRF_RERANK_DEPTH come first, reordered by score + net(x) (h is the
 * user's hidden state, whose dense logits the network reads), their score
 * raised by the network's output less its least over them, so that the
 * scores never rise down the list; then the rest by score.  row is changed.
 */
IsrfStatus	isrf_serve_list(IsrfEnv *env, IsrfServeSession *ss, IsrfScorer *sc, const float *h,
							int32_t user, const int32_t *hist, int32_t len, float *row, int32_t k,
							int32_t *items, float *scores, int32_t *count);

/*
 * adj[i] = the rerank network's output for cand[i] (-1: 0) of a known user
 * after hist[0..len), h its hidden state (the pieces of isrf_serve_list, for
 * serve/tune.c, which scores one user's windows under several beam weights):
 * 0 where the scorer has no active network; bounded to +-1e6.
 */
IsrfStatus	isrf_serve_rerank_outputs(IsrfServeSession *ss, IsrfScorer *sc, const float *h, int32_t user,
									  const int32_t *hist, int32_t len, int32_t n, const int32_t *cand,
									  float *adj);

/*
 * The first k of a window win[0..n) (n <= ISRF_RERANK_DEPTH, scores base)
 * reordered by base + adj - min adj, ties to the lower item, into items /
 * scores (*count of them).
 */
void		isrf_serve_reorder(int32_t n, const int32_t *win, const float *base, const float *adj, int32_t k,
							   int32_t *items, float *scores, int32_t *count);

/*
 * The group of a request (serve/group.c): the model's users other than user
 * (-1: none) most similar by cosine to the request's semantic feature -- a
 * known user's own where it came from their description (or there is no
 * history), else the mean feature of hist -- the k best of positive
 * similarity, most similar first: users/sims get *count of them.
 */
IsrfStatus	isrf_serve_group(IsrfEnv *env, IsrfServeSession *ss, int32_t user,
							 const int32_t *hist, int32_t len, int32_t k, int32_t *users,
							 float *sims, int32_t *count);

/*
 * The group's interests: items the n_group users of group (similarities
 * sims) touched that hist does not hold; support = how many of them touched
 * it, score = their share of the group's similarity; best score first, then
 * support, then item.  The k best into items/support/scores, *count of them.
 */
IsrfStatus	isrf_serve_group_interests(IsrfEnv *env, IsrfServeSession *ss, int32_t n_group,
									   const int32_t *group, const float *sims,
									   const int32_t *hist, int32_t len, int32_t k,
									   int32_t *items, int32_t *support, float *scores,
									   int32_t *count);

/*
 * Choose on the validation targets the weight of the generative head's beam
 * bonus in the served score (m->genrec.weights.beam, from a grid starting at
 * 0; 0 without a generative head): part of training (serve/tune.c).
 */
IsrfStatus	isrf_serve_tune(IsrfEnv *env, IsrfBackend *be, IsrfModel *m);

/*
 * The generative session under a serving session (NULL when the model has
 * no generative part): evaluation scores through it.
 */
IsrfGenrecSession *isrf_serve_session_genrec(const IsrfServeSession *ss);

#endif							/* ISRF_SERVE_H */
