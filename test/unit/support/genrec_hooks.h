/*
 * test/unit/support/genrec_hooks.h
 *	  What only tests ask of the generative model: a training session over
 *	  given weights, the loss of one batch with its gradients, and the
 *	  weights and gradients of each named tensor.  Linked into the unit
 *	  tests only, never into the extension or the driver.
 */
#ifndef ISRF_GENREC_HOOKS_H
#define ISRF_GENREC_HOOKS_H

#include "model/genrec.h"

/* A training session over d with g's configuration, codes and weights. */
IsrfStatus	isrf_genrec_test_session(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
									 const IsrfGenrec *g, IsrfGenrecSession **out);

/*
 * Zero the gradients, then compute the loss of one training batch (users
 * with at least two train items) and its gradients, as a training step does.
 */
IsrfStatus	isrf_genrec_test_loss(IsrfGenrecSession *s, int32_t n_users, const int32_t *users,
								  uint64_t seed, double *loss);

/*
 * A named tensor of the weights ("item_emb", "ad_w1", "ad_b1", "ad_w2",
 * "ad_b2", "ex_w", "pu_w", "pu_b", "pg_w", "pg_b", "cemb0", "dec_w0",
 * "dec_b0", ..., "word_emb" or "tf" for the transformer block): pointers to its weights
 * and gradients and its length; false when there is no such tensor.
 */
bool		isrf_genrec_test_tensor(IsrfGenrecSession *s, const char *name, float **w,
									float **g, size_t *n);

/*
 * The item token table (n_items x d_model) recomputed from the session's
 * current weights, into host memory.
 */
IsrfStatus	isrf_genrec_test_table(IsrfGenrecSession *s, float *out);

#endif							/* ISRF_GENREC_HOOKS_H */
