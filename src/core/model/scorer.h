/*
 * model/scorer.h
 *	  The ranking score of the generative model, written once for serving,
 *	  evaluation and training's own validation: the dense head's logit plus
 *	  weighted terms that do not need the transformer.
 *
 *	  full ranking (isrf_recommend, the sequential task):
 *	    score(i) = dense(i) + prior * (markov(i) + prior_knn * knn(i)) + group * group(i)
 *	             + text * text(i)
 *	  candidate lists (isrf_rank, the direct task):
 *	    score(i) = dense(i) + prior_direct * (markov(i) + prior_knn_direct * knn(i))
 *	             + pop_direct * log(1 + train count of i)
 *	             + recent_direct * recent(i)
 *	             + content_direct * cosine(history profile, LightGCN vector of i)
 *	             + group_direct * group(i) + text_direct * text(i)
 *	             + net(the terms above)
 *
 * markov and knn are the two parts of the Markov + item-kNN score of
 * eval/baselines.h (first-order transitions out of the last 5 items, and
 * their co-occurrence similarities; the baseline weighs them 1 and 0.5);
 * recent(i) is popularity as of the users' latest interactions:
 * log(1 + sum over the histories the prior is fitted on of
 * ISRF_RECENT_DECAY^(steps from the history's end)), so an item bought
 * last by many counts more than one bought long ago by as many (what
 * the candidate lists' targets, each a user's next item, are drawn
 * from); the history profile is the normalised mean of the unit
 * LightGCN vectors of the input items.  group(i) is ISRF's implicit group
 * interest as a score: the user's neighbours in the group graph (top-K
 * cosine of user semantic features), each with its similarity, vote for
 * their ISRF_GROUP_WINDOW most recent items (0.9^j for the j-th most
 * recent), normalised by the total similarity; a user the model does not
 * know has no group (0).  text(i) is the cosine between item i's semantic
 * feature (its catalogue text and description) and the user's text
 * profile: the unit features of the ISRF_TEXT_WINDOW most recent items,
 * the j-th most recent weighted ISRF_TEXT_DECAY^j.  The weights are chosen on the
 * validation targets after training (model/scorer_tune.c) from grids that
 * include 0, and stored with the model.
 */
#ifndef ISRF_SCORER_H
#define ISRF_SCORER_H

#include "data/dataset.h"
#include "base/csr.h"
#include "eval/baselines.h"
#include "model/blend_net.h"

/* The weights of the ranking score's terms beside the dense logit. */
typedef struct IsrfScoreWeights
{
	float		prior;			/* Markov + item-kNN, full ranking */
	float		prior_knn;		/* the item-kNN part's weight in it */
	float		prior_direct;	/* Markov + item-kNN, candidate lists */
	float		prior_knn_direct;	/* the item-kNN part's weight in it */
	float		pop_direct;		/* log(1 + train count), candidate lists */
	float		recent_direct;	/* recent(i), candidate lists */
	float		content_direct; /* profile cosine, candidate lists */
	float		beam;			/* the generative head's bonus, full ranking
								 * (serve/recommend.c) */
	float		group;			/* the group's recent items, full ranking */
	float		group_direct;	/* the same, candidate lists */
	float		text;			/* the recent items' text similarity, full
								 * ranking */
	float		text_direct;	/* the same, candidate lists */
	IsrfBlendNet net;			/* over the terms, candidate lists */
	IsrfBlendNet rerank;		/* over the same terms, full ranking's best
								 * ISRF_RERANK_DEPTH (serve/recommend.c) */
} IsrfScoreWeights;

/* the full ranking's best items the rerank network reorders */
#define ISRF_RERANK_DEPTH 100

/* neighbour items that vote in group(i), and their decay */
#define ISRF_GROUP_WINDOW 20
#define ISRF_GROUP_DECAY 0.9

/* a history's interactions count ISRF_RECENT_DECAY^(steps from its end) in recent(i) */
#define ISRF_RECENT_DECAY 0.5

/* history items, most recent first, whose text the text term reads, and their decay */
#define ISRF_TEXT_WINDOW 20
#define ISRF_TEXT_DECAY 0.8

/*
 * What the terms need, built from the train split on first use: the
 * transition prior, the unit LightGCN item vectors, and scratch.
 */
typedef struct IsrfScorer
{
	IsrfEnv    *env;
	int32_t		n_items;
	int32_t		dm;
	IsrfScoreWeights w;
	/* the data (not owned) */
	int32_t		n_users;
	const int32_t *seq_ptr;
	const int32_t *seq;
	const int32_t *n_train;		/* the interactions the prior is fitted on:
								 * the first n_train[u] of each history */
	int32_t    *all_len;		/* owned: whole histories, when asked for */
	const float *item_explicit; /* [n_items x dm] or NULL */
	const float *item_feat;		/* [n_items x dm] semantic features or NULL */
	const IsrfCsr *group;		/* each user's neighbours (NULL: no group term) */
	const IsrfCsr *item_text;	/* the items' TF-IDF rows (NULL: no lexical
								 * relations) */
	/* fitted by isrf_scorer_fit */
	bool		fitted;
	IsrfDataset view;			/* the train split, for eval/baselines.h */
	IsrfBaselines prior;
	double	   *psc;			/* [n_items] prior scores of the last history */
	double	   *pmk;			/* [n_items] its Markov part */
	double	   *pkn;			/* [n_items] its item-kNN part */
	float	   *iexp_n;			/* [n_items x dm] unit LightGCN item vectors */
	float	   *profile;		/* [dm] */
	float	   *content;		/* [n_items] */
	float	   *recent;			/* [n_items] recent(i) */
	float	   *ifeat_n;		/* [n_items x dm] unit semantic features */
	float	   *ifeat_t;		/* [dm x n_items] the same, transposed */
	float	   *tprof;			/* [dm] the recent items' text profile */
	float	   *text;			/* [n_items] text(i) of the last history */
	float	   *gsc;			/* [n_items] group(i) of the last user, zero
								 * where not touched */
	int32_t    *gtouch;			/* [n_items] items gsc holds */
	int32_t		n_gtouch;
	/* the relations of one history (model/scorer_relations.c) */
	float	   *rel_knn;		/* [n_items] knn_max, zero where not touched */
	int32_t    *rel_touch;		/* [n_items] items rel_knn holds */
	int32_t		n_rel_touch;
	int32_t    *lex_slot;		/* [item_text columns] a column's row of
								 * lex_rows, -1 where not touched */
	int32_t    *lex_cols;		/* the columns that have a row */
	float	   *lex_rows;		/* [n_lex_cols x (ISRF_TEXT_WINDOW + 1)] the
								 * window items' weights in them, then the
								 * profile's */
	int32_t		n_lex_cols;
	int32_t		lex_cap;		/* rows lex_cols and lex_rows have room for */
	int32_t		n_lex_items;	/* window items read */
	double		lex_norm;		/* the profile's length */
} IsrfScorer;

/*
 * The relations of candidates to a history: inputs of the blend network
 * only (blend_net.h), each 0 where it has nothing to read.
 *   knn_max: the largest item-kNN similarity co(a, i) / sqrt(deg a * deg i)
 *     (eval/baselines.h) over the history's last ISRF_KNN_WINDOW items a,
 *     where the prior's kNN part sums over the last 5 only;
 *   lex_profile: the cosine between item i's TF-IDF row (its text's words,
 *     catalogue attributes included, before the PCA that makes text(i))
 *     and the profile of the ISRF_TEXT_WINDOW most recent items' rows, the
 *     j-th most recent weighted ISRF_TEXT_DECAY^j;
 *   lex_last: the cosine with the last item's row;
 *   lex_max: the largest cosine with one of those items' rows.
 * The words are what the PCA loses: a brand or a shade name shared by
 * few items.
 */
typedef struct IsrfRelations
{
	float	   *knn_max;
	float	   *lex_profile;
	float	   *lex_last;
	float	   *lex_max;			/* each [n] */
} IsrfRelations;

/*
 * Point a scorer at its data (nothing is allocated until it is fitted).
 * The prior and popularity come from the first n_train[u] items of each
 * history (the train split: evaluation and training's own validation), or,
 * with n_train NULL, from whole histories (serving: everything the model
 * knows, as a database that withholds nothing would).
 */
void		isrf_scorer_init(IsrfScorer *sc, IsrfEnv *env, int32_t n_users, int32_t n_items,
							 int32_t dm, const int32_t *seq_ptr, const int32_t *seq,
							 const int32_t *n_train, const float *item_explicit,
							 const float *item_feat, const IsrfCsr *item_text,
							 const IsrfCsr *group, const IsrfScoreWeights *w);

/*
 * sum[i] = the sum over the first lens[u] items of each history (lens NULL:
 * whole histories) of ISRF_RECENT_DECAY^(steps from that prefix's end)
 * where item i stands: recent popularity, recent(i) before its log (also
 * the cold-start order of serve/session.c).  sum has n_items entries.
 */
void		isrf_recent_popularity(int32_t n_users, int32_t n_items, const int32_t *seq_ptr,
								   const int32_t *seq, const int32_t *lens, double *sum);

/* Fit the prior and the unit item vectors (once; later calls do nothing). */
IsrfStatus	isrf_scorer_fit(IsrfScorer *sc);

void		isrf_scorer_free(IsrfScorer *sc);

/*
 * The prior's parts of every item after hist[0..len) into sc->pmk / sc->pkn,
 * and sc->psc[i] = pmk[i] + knn_weight * pkn[i].
 */
IsrfStatus	isrf_scorer_prior_all(IsrfScorer *sc, const int32_t *hist, int32_t len,
								  float knn_weight);

/*
 * out[i] = cosine between the history profile of hist[0..len) and the
 * LightGCN vector of cand[i] (0 for -1 or a zero profile).
 */
void		isrf_scorer_content(IsrfScorer *sc, const int32_t *hist, int32_t len, int32_t n,
								const int32_t *cand, float *out);

/*
 * text(i) of every item after hist[0..len) into sc->text (all 0 without
 * semantic features).
 */
void		isrf_scorer_text_all(IsrfScorer *sc, const int32_t *hist, int32_t len);

/*
 * out[i] = text(cand[i]) after hist[0..len) (0 for -1).
 */
void		isrf_scorer_text(IsrfScorer *sc, const int32_t *hist, int32_t len, int32_t n,
							 const int32_t *cand, float *out);

/*
 * The relations (IsrfRelations) of cand[0..n) to hist[0..len) into
 * rel->...[0..n) (-1 or an unknown item: zeros).  The scorer is fitted.
 * isrf_scorer_relations_begin prepares a history (a pass over its items'
 * co-occurrences and words), isrf_scorer_relations_get reads candidates
 * after it as often as asked, isrf_scorer_relations_end clears it;
 * isrf_scorer_relations is the three at once.
 */
IsrfStatus	isrf_scorer_relations(IsrfScorer *sc, const int32_t *hist, int32_t len, int32_t n,
								  const int32_t *cand, const IsrfRelations *rel);
IsrfStatus	isrf_scorer_relations_begin(IsrfScorer *sc, const int32_t *hist, int32_t len);
void		isrf_scorer_relations_get(const IsrfScorer *sc, int32_t n, const int32_t *cand,
									  const IsrfRelations *rel);
void		isrf_scorer_relations_end(IsrfScorer *sc);

/*
 * group(i) of user u (-1: none) into sc->gsc (the items it touches listed in
 * sc->gtouch); isrf_scorer_group_clear zeroes it again.
 */
void		isrf_scorer_group(IsrfScorer *sc, int32_t user);
void		isrf_scorer_group_clear(IsrfScorer *sc);

/*
 * Add the weighted terms to dense scores: of cand[0..n) (cand NULL: of all
 * items, scores has n_items entries) for user (-1: a user the model does not
 * know) after hist[0..len); direct picks the candidate-list weights.
 * Candidates of -1 are left alone.  Nothing is added when every weight is 0.
 */
IsrfStatus	isrf_scorer_add(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len,
							int32_t n, const int32_t *cand, bool direct, float *scores);

/*
 * x[i * ISRF_BLEND_N_FEATURES + f] = input f of the networks (blend_net.h)
 * for cand[i] after hist[0..len) of user, dense[i] its dense logit: what
 * they read when they score (rows of -1 or an unknown item: zeros).
 */
IsrfStatus	isrf_scorer_net_inputs(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len,
								   int32_t n, const int32_t *cand, const float *dense, float *x);

/*
 * out[i] = the rerank network's output (sc->w.rerank; 0 where it is not
 * active) for cand[i] after hist[0..len) of user, dense[i] its dense
 * logit (out may be dense): the network reads the blend network's inputs
 * (blend_net.h), as the fit read them (model/scorer_tune.c).  Candidates
 * of -1 get 0.
 */
IsrfStatus	isrf_scorer_rerank(IsrfScorer *sc, int32_t user, const int32_t *hist, int32_t len,
							   int32_t n, const int32_t *cand, const float *dense, float *out);

/*
 * isrf_scorer_add of full ranking (cand NULL, not direct) for n users at
 * once: scores[r * n_items ..] of users[r] after hist[r][0..lens[r]).  The
 * same sums as row by row, with the text term of many users computed in one
 * pass over the item features.
 */
IsrfStatus	isrf_scorer_add_rows(IsrfScorer *sc, int32_t n, const int32_t *users,
								 const int32_t *const *hist, const int32_t *lens, float *scores);

#endif							/* ISRF_SCORER_H */
