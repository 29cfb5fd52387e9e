/*
 * model/genrec_internal.h
 *	  What the files of the generative model share and nothing else sees:
 *	  the layout of its weights, the session that holds them with its
 *	  buffers, and the functions one file of the model calls in another.
 *
 *	  genrec_params.c    layout of the weights, initialisation, copies
 *	  genrec_session.c   a session: weights, token table and buffers on a backend
 *	  genrec_forward.c   forward and backward of a training batch
 *	  genrec_train.c     the training loop with early stopping
 *	  scorer_tune.c      the score weights chosen on validation
 *	  genrec_infer.c     encoding histories and scoring items for serving
 *
 * Everything runs through one IsrfGenrecSession, which holds the weights in
 * backend memory, the item token table and grown-on-demand batch buffers;
 * training adds gradients and optimizer state to it.  Every tensor of the
 * model lives in backend memory and every step of forward and backward runs
 * on the backend's operations, so the same code trains on the CPU and on a
 * GPU.  What stays on the host: building a batch (which items, positions and
 * targets: small index arrays, uploaded), the group-interest queries (run
 * on a CPU backend, s->hb, against host copies of the users' features), the
 * alignment losses (B x C rows, downloaded, computed by the host reference
 * in nn/layers.c and their gradients uploaded), and the scorer's terms.
 */
#ifndef ISRF_GENREC_INTERNAL_H
#define ISRF_GENREC_INTERNAL_H

#include "model/genrec.h"
#include "model/scorer.h"
#include "nn/transformer.h"

/*
 * rows of the dense logits computed at once (bounds the logits buffer): a
 * training session's, and any other's (serving, evaluation, the weights'
 * choice: their callers score at most 256 users at a time)
 */
#define GR_CHUNK 2048
#define GR_CHUNK_SERVE 256
/* group-interest queries scored against all users at once */
#define GR_QBLOCK 256
/* neighbours of a group-interest query when the data names none */
#define GR_GROUP_K 50

/* Offsets (in floats) of each tensor in the non-transformer block. */
typedef struct GrLayout
{
	size_t		item_emb,
				ad_w1,
				ad_b1,
				ad_w2,
				ad_b2,
				ex_w,
				pu_w,
				pu_b,
				pg_w,
				pg_b;
	size_t		word_emb;		/* n_words x C, last (0 words: empty) */
	size_t		cemb[ISRF_GENREC_MAX_LEVELS];
	size_t		dec_w[ISRF_GENREC_MAX_LEVELS];
	size_t		dec_b[ISRF_GENREC_MAX_LEVELS];
	size_t		total;
} GrLayout;

struct IsrfGenrecSession
{
	IsrfEnv    *env;
	IsrfBackend *be;
	IsrfBackend *hb;			/* host backend: be itself, or an own CPU one */
	bool		own_hb;
	const IsrfGenrecData *d;
	IsrfGenrecConfig cfg;
	int32_t		C,
				ni,
				dm,
				levels;
	int32_t		ks[ISRF_GENREC_MAX_LEVELS];
	float		scale[4];
	const int32_t *codes;		/* [ni x levels], not owned */
	GrLayout	lay;
	bool		train;

	float	   *p;				/* lay.total params */
	float	   *gp;				/* grads (training) */
	IsrfTransformer *tf;

	/* item token table */
	float	   *feat_s;			/* ni x dm scaled features */
	float	   *iexp_s;			/* ni x dm scaled LightGCN item vectors */
	float	   *iexp_h;			/* the same on the host (explicit inputs) */
	float	   *table_h;		/* host copy of table (device backends) */
	bool		table_h_ok;		/* table_h matches table */
	float	   *a1,
			   *g1,
			   *table;			/* ni x C */
	int32_t		n_words;		/* word embeddings (0: none) */
	IsrfDevCsr *words,
			   *words_t;		/* ni x n_words TF-IDF rows, and transposed
								 * (training) */
	float	   *dtable,
			   *dg1,
			   *da1;			/* training */

	/* batch buffers, grown on demand */
	int32_t		cap_rows;		/* B */
	int32_t		cap_bt;			/* B*T */
	int32_t		cap_p;			/* target positions */
	float	   *x,
			   *dx,
			   *dhid;			/* bt x C */
	int32_t    *pos;			/* bt, host (the transformer uploads it) */
	int32_t    *slot_item,
			   *slot_item_d;	/* bt, host and backend */
	uint8_t    *valid,
			   *valid_d;		/* bt, host and backend */
	float	   *ue,
			   *ue_h;			/* bt x dm explicit-interest inputs */
	float	   *pu,
			   *dpu;			/* bt x C their projections */
	float	   *ug,
			   *ug_h;			/* B x dm group interests (inference) */
	float	   *lu,
			   *lg,
			   *dlg;			/* B x C last explicit / group projections */
	float	   *hl,
			   *dhl;			/* B x C last hidden state and its gradient */
	int32_t    *last_slot,
			   *last_slot_d;	/* B: slot of the row's last token */
	/* the alignment losses, on the host (B x C, B) */
	float	   *hl_h,
			   *lg_h,
			   *lu_h,
			   *dhl_h,
			   *dlg_h,
			   *na,
			   *nb,
			   *nc,
			   *dna,
			   *dnb,
			   *norm_a,
			   *norm_b,
			   *norm_c;
	int32_t    *row_last,		/* B: index of the row's last target */
			   *row_last_d;
	float	   *H,
			   *dH,
			   *z,
			   *dz,
			   *pgP,
			   *dpgP;			/* P x C */
	float	   *ugP,
			   *ugP_h;			/* P x dm group interests of the targets */
	int32_t    *tgt,
			   *tgt_d,
			   *tslot,
			   *tslot_d;		/* P, host and backend */
	int32_t    *cid,
			   *cid_d;			/* levels x P (level-major), host and backend */
	int32_t		chunk;			/* GR_CHUNK training, else GR_CHUNK_SERVE */
	float	   *logits;			/* chunk x max(ni, K) */
	float	   *logits_h;		/* host copy of logits (device backends) */
	float	   *hq;				/* chunk x C queries uploaded for scoring */
	float	   *row_loss,
			   *row_loss_h;		/* chunk per-row losses */
	int32_t		logits_cols;

	/* group interests: neighbours among all users' features */
	int32_t		group_k;
	float	   *ufeat_n;		/* n_users x dm unit user features (host) */
	float	   *ugrp_s;			/* n_users x dm scaled group vectors h_u */
	float	   *qf,
			   *qscore,
			   *qval;			/* GR_QBLOCK x dm, x n_users, x (k + 1) */
	int32_t    *qidx,
			   *qself;
	float	   *gcache;			/* training: the group interest after each
								 * train position of each user */
	int64_t    *gptr;			/* [n_users + 1] rows of gcache */

	/* the ranking score's other terms (scorer.h) */
	IsrfScorer	scorer;
};

/* genrec_params.c */
void		isrf_gr_layout(GrLayout *l, int32_t C, int32_t ni, int32_t dm, int32_t levels,
						   const int32_t *ks, int32_t n_words);
void		isrf_gr_tf_config(const IsrfGenrecConfig *c, IsrfTfConfig *t);
IsrfStatus	isrf_gr_init_params(IsrfGenrecSession *s);
void		isrf_gr_decay_mask(const IsrfGenrecSession *s, uint8_t *mask);
IsrfStatus	isrf_gr_weights_out(IsrfGenrecSession *s, IsrfGenrec *out);

/* genrec_session.c */
IsrfStatus	isrf_gr_mem(IsrfBackend *be, void **p, size_t bytes);
void		isrf_gr_mem_free(IsrfBackend *be, void **p);
IsrfStatus	isrf_gr_host(IsrfEnv *env, void **p, size_t bytes);
void		isrf_gr_host_free(IsrfEnv *env, void **p);
IsrfStatus	isrf_gr_reserve_batch(IsrfGenrecSession *s, int32_t B, int32_t T);
IsrfStatus	isrf_gr_reserve_targets(IsrfGenrecSession *s, int32_t P);
float		isrf_gr_rms(const float *x, size_t n);
IsrfStatus	isrf_gr_session_create(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecConfig *cfg,
								   const IsrfGenrecData *d, int32_t levels, const int32_t *ks,
								   const int32_t *codes, const float *scale,
								   const IsrfScoreWeights *weights, int32_t n_words, bool train,
								   IsrfGenrecSession **out);
IsrfStatus	isrf_gr_word_count(IsrfEnv *env, const IsrfGenrecConfig *cfg,
							   const IsrfGenrecData *d, int32_t *out);

/* genrec_forward.c */
IsrfStatus	isrf_gr_table_forward(IsrfGenrecSession *s);
IsrfStatus	isrf_gr_group_rows(IsrfGenrecSession *s, int32_t n, const int32_t *self,
							   const int32_t *const *hist, const int32_t *len, float *out);
IsrfStatus	isrf_gr_forward_rows(IsrfGenrecSession *s, int32_t B, const int32_t *const *hist,
								 const int32_t *len, bool train, uint64_t seed, int32_t *T_out);
IsrfStatus	isrf_gr_code_input(IsrfGenrecSession *s, int32_t level, int32_t P,
							   const float *const *hrows, const float *H, float *z);
IsrfStatus	isrf_gr_upload_codes(IsrfGenrecSession *s, int32_t P, int32_t levels);
IsrfStatus	isrf_gr_train_batch(IsrfGenrecSession *s, int32_t B, const int32_t *users,
								uint64_t seed, double *loss_out);
/* Forget the training cache (built on the next batch, for s->d as it is then). */
void		isrf_gr_drop_train_cache(IsrfGenrecSession *s);

/* genrec_infer.c */
IsrfStatus	isrf_gr_dense_chunk(IsrfGenrecSession *s, int32_t b, const float *h, float **out);
IsrfStatus	isrf_gr_encode(IsrfGenrecSession *s, int32_t n, const int32_t *users,
						   const int32_t *const *hist, const int32_t *hist_len, float *h);

/* genrec_train.c */
int32_t		isrf_gr_val_users(const IsrfGenrecData *d, const IsrfGenrecConfig *cfg,
							  int32_t *users, int32_t *n_input, int32_t *target);

/* scorer_tune.c */
IsrfStatus	isrf_gr_tune_scorer(IsrfGenrecSession *s, IsrfGenrec *out);

#endif							/* ISRF_GENREC_INTERNAL_H */
