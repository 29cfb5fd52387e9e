/*
 * eval/baseline_lightgcn.h
 *	  The "lightgcn" baseline of isrf_evaluate: LightGCN alone (He et al.
 *	  2020), trained with the BPR loss on the train split and early-stopped
 *	  on the validation split.
 *
 * Every user and item has a trainable ID embedding (the ego embedding E0).
 * They are propagated over the symmetric normalised train user-item graph
 * (lightgcn.h) and the layers averaged; the score of (u, i) is the dot
 * product of the propagated embeddings.  Each step draws a batch of train
 * pairs (u, i), one negative j per pair, uniform over the items u never
 * touched in train, and minimises
 *
 *	  mean over the batch of softplus(-(e_u . e_i - e_u . e_j))
 *	  + reg * 1/2 (|e0_u|^2 + |e0_i|^2 + |e0_j|^2) / batch
 *
 * (the L2 term on the ego embeddings of the batch, as in the reference
 * implementation) with Adam.  After every eval_every epochs the full-ranking
 * NDCG@10 of the validation target (train history excluded) is measured;
 * training stops after patience evaluations without improvement and keeps
 * the best embeddings.  Everything is deterministic given the seed.
 *
 * Propagation and scoring run on the backend (spmm, gemm); the per-pair
 * BPR gradients and the Adam update are light host loops.
 */
#ifndef ISRF_LGCN_BPR_H
#define ISRF_LGCN_BPR_H

#include "graph/lightgcn.h"
#include "eval/metrics.h"

typedef struct IsrfLgcnBprConfig
{
	int32_t		dim;			/* embedding width (64) */
	int32_t		layers;			/* propagation layers, layer mean (3) */
	/*
	 * Adam learning rate (1e-2).  The reference implementation's 1e-3
	 * needs hundreds of epochs; 1e-2 reaches the same validation NDCG within
	 * the few minutes a baseline may take on beauty.
	 */
	float		lr;
	float		reg;			/* L2 on the batch's ego embeddings (1e-4) */
	float		init_std;		/* N(0, init_std^2) initial embeddings (0.1) */
	int32_t		batch;			/* train pairs per step (2048) */
	int32_t		max_epochs;		/* passes over the train pairs (40) */
	int32_t		eval_every;		/* epochs between validations (1) */
	int32_t		patience;		/* validations without improvement before stopping (5) */
	double		max_seconds;	/* stop after the first validation past this; 0 = no limit */
	uint64_t	seed;			/* initialisation, shuffles and negatives (1) */
} IsrfLgcnBprConfig;

void		isrf_lgcn_bpr_config_default(IsrfLgcnBprConfig *cfg);

/* Checks ranges, with messages naming the bad field and value. */
IsrfStatus	isrf_lgcn_bpr_config_check(IsrfEnv *env, const IsrfLgcnBprConfig *cfg);

/* A trained model: the best propagated embeddings, on the host. */
typedef struct IsrfLgcnBpr
{
	int32_t		n_users;
	int32_t		n_items;
	int32_t		dim;
	float	   *user_emb;		/* [n_users * dim] */
	float	   *item_emb;		/* [n_items * dim] */

	/* how training went */
	int32_t		epochs;			/* epochs run */
	int32_t		best_epoch;		/* epoch (1-based) of the kept embeddings; 0 = initial */
	double		best_val_ndcg10;	/* validation NDCG@10 of the kept embeddings */
	double		first_loss;		/* mean BPR + reg loss of the first epoch */
	double		last_loss;		/* the same of the last epoch */
	double		seconds;		/* wall time of isrf_lgcn_bpr_train */
} IsrfLgcnBpr;

/*
 * Train on the train split of ds (only its n_train prefixes feed the graph,
 * the pairs and the negatives; validation items only decide when to stop).
 * Progress lines go to env->log.  On failure nothing is left allocated.
 */
IsrfStatus	isrf_lgcn_bpr_train(IsrfEnv *env, IsrfBackend *be, const IsrfDataset *ds,
								const IsrfLgcnBprConfig *cfg, IsrfLgcnBpr *out);

/*
 * scores[i] = user . item i for every item (n_items entries, host memory).
 * Returns false, leaving scores alone, when user is not an index of the
 * model (the caller falls back to popularity).
 */
bool		isrf_lgcn_bpr_score(const IsrfLgcnBpr *m, int32_t user, float *scores);

/*
 * Full-ranking HR/NDCG@5/10 of the target for every evaluated user of ds
 * (the data set the model was trained on), the input history excluded,
 * scored on the backend.  out holds means.
 */
IsrfStatus	isrf_lgcn_bpr_evaluate(IsrfEnv *env, IsrfBackend *be, const IsrfLgcnBpr *m,
								   const IsrfDataset *ds, IsrfTarget target,
								   IsrfMetrics *out);

void		isrf_lgcn_bpr_free(IsrfEnv *env, IsrfLgcnBpr *m);

/*
 * The training objective on explicit triples, for tests and checks: the
 * loss above (mean BPR plus reg term) of the n triples (u, i, j) (triples
 * holds 3n user and item indices) for ego embeddings e0 (host,
 * (n_users + n_items) x dim, users first), over the bipartite graph s
 * (isrf_lightgcn_bipartite, on be).  grad (host, same shape, may be NULL)
 * receives d loss / d e0, through the LightGCN backward.  Training uses the
 * same code.
 */
IsrfStatus	isrf_lgcn_bpr_objective(IsrfEnv *env, IsrfBackend *be, const IsrfDevCsr *s,
									int32_t n_users, int32_t n_items, int32_t dim,
									int32_t layers, float reg, const float *e0,
									int32_t n, const int32_t *triples,
									double *loss, float *grad);

#endif							/* ISRF_LGCN_BPR_H */
