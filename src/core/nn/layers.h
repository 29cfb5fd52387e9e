/*
 * nn/layers.h
 *	  Neural-network layers with explicit forward and backward passes, in the
 *	  style of llm.c: no autograd, every layer takes its input, output and
 *	  gradient buffers from the caller.
 *
 * Conventions shared by every layer:
 * - Tensors are dense row-major float arrays; "N" rows of width "C".
 * - Backward functions ACCUMULATE (+=) into every gradient buffer they are
 *   given (inputs and parameters alike), so that a tensor feeding several
 *   consumers (residual streams, tied weights) just receives each share.
 *   The caller zeroes gradients before a step.  A NULL gradient pointer means
 *   "not needed" (stop-gradient) and is skipped.  The one exception is
 *   isrf_nn_softmax_ce, which WRITES the gradient of its logits.
 * - Every function that takes a backend runs on that backend's operations
 *   (backend.h: gemm and the neural-network ops), so its pointers, index
 *   arrays included, are backend memory and the tensors stay on the device.
 *   The few functions that take no backend (softmax cross-entropy with
 *   candidate masks, L2 normalisation, and InfoNCE's loops) are host
 *   reference code for small tensors; they need host memory
 *   (isrf_nn_backend_host_ok says whether a backend's memory is).
 * - Everything is deterministic; dropout masks come from a counter-based
 *   hash of (seed, element index), so backward regenerates the mask that
 *   forward used instead of storing it.
 */
#ifndef ISRF_NN_H
#define ISRF_NN_H

#include "compute/backend.h"

/* targets below zero are ignored by the cross-entropy losses */
#define ISRF_NN_IGNORE (-1)

/* epsilon of LayerNorm (as in PyTorch / GPT-2) */
#define ISRF_NN_LN_EPS 1e-5f

/* True when the layers below can run on this backend's memory. */
bool		isrf_nn_backend_host_ok(const IsrfBackend *be);

/* ---- deterministic randomness ---------------------------------------- */

/*
 * splitmix64 finaliser: a well-mixed 64-bit hash of x.  Inline: dropout
 * draws one per element.
 */
static inline uint64_t
isrf_nn_hash64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/*
 * Element i of the counter-based stream keyed by seed (splitmix64 order):
 * the normal initialiser and the dropout masks draw from it.
 */
static inline uint64_t
isrf_nn_stream(uint64_t seed, uint64_t i)
{
	return isrf_nn_hash64(seed + 0x9E3779B97F4A7C15ULL * (i + 1));
}

/* Derive a stream key from a seed and two small integers (step, site, ...). */
uint64_t	isrf_nn_key(uint64_t seed, uint64_t a, uint64_t b);

/* Fill host w[n] with N(0, std^2) numbers, counter-based on seed. */
void		isrf_nn_init_normal(float *w, size_t n, float std, uint64_t seed);

/* ---- embedding lookup ------------------------------------------------- */

/*
 * out[i,:] = table[ids[i],:] for i < n; a negative id (padding) gives a zero
 * row.  On a host backend an id >= n_rows fails; a device backend cannot
 * look at the ids, so the caller checks them before uploading.
 */
IsrfStatus	isrf_nn_embedding_forward(IsrfBackend *be, float *out, const int32_t *ids,
									  int n, const float *table, int n_rows, int d);

/* dtable[ids[i],:] += dout[i,:] (scatter-add); negative ids are skipped. */
IsrfStatus	isrf_nn_embedding_backward(IsrfBackend *be, float *dtable, const int32_t *ids,
									   int n, const float *dout, int d);

/* ---- linear ----------------------------------------------------------- */

/*
 * y[N,out] = x[N,in] W^T + b with W[out,in] (PyTorch layout) and b[out]
 * (b may be NULL).
 */
IsrfStatus	isrf_nn_linear_forward(IsrfBackend *be, float *y, const float *x,
								   const float *w, const float *b,
								   int n, int in, int out);

/* dx += dy W, dW += dy^T x, db += colsum(dy); any of dx, dw, db may be NULL. */
IsrfStatus	isrf_nn_linear_backward(IsrfBackend *be, float *dx, float *dw, float *db,
									const float *dy, const float *x, const float *w,
									int n, int in, int out);

/* ---- LayerNorm -------------------------------------------------------- */

/*
 * out = (x - mean) * rstd * w + b per row of x[N,C]; mean[N] and rstd[N] are
 * cached for backward.  out may not alias x.
 */
IsrfStatus	isrf_nn_layernorm_forward(IsrfBackend *be, float *out, float *mean, float *rstd,
									  const float *x, const float *w, const float *b,
									  int n, int c);

IsrfStatus	isrf_nn_layernorm_backward(IsrfBackend *be, float *dx, float *dw, float *db,
									   const float *dout, const float *x,
									   const float *w, const float *mean,
									   const float *rstd, int n, int c);

/* ---- GELU (tanh approximation) --------------------------------------- */

/* out[i] = gelu(x[i]); out may alias x only if backward is not needed. */
IsrfStatus	isrf_nn_gelu_forward(IsrfBackend *be, float *out, const float *x, size_t n);

/* dx += gelu'(x) * dout */
IsrfStatus	isrf_nn_gelu_backward(IsrfBackend *be, float *dx, const float *x,
								  const float *dout, size_t n);

/* ---- residual add ------------------------------------------------------ */

/* out = a + b (out may alias a or b). Backward: isrf_nn_accumulate twice. */
IsrfStatus	isrf_nn_residual_forward(IsrfBackend *be, float *out, const float *a,
									 const float *b, size_t n);

/* dst += src */
IsrfStatus	isrf_nn_accumulate(IsrfBackend *be, float *dst, const float *src, size_t n);

/* ---- dropout ----------------------------------------------------------- */

/*
 * Inverted dropout: out[i] = keep(seed, i) ? x[i] / (1 - p) : 0.  The mask is
 * a hash of (seed, i), so the same seed replays it in backward.  out may
 * alias x.  p == 0 copies; p must be in [0, 1).
 */
IsrfStatus	isrf_nn_dropout_forward(IsrfBackend *be, float *out, const float *x, size_t n,
									float p, uint64_t seed);

/* dx += keep(seed, i) ? dout[i] / (1 - p) : 0 */
IsrfStatus	isrf_nn_dropout_backward(IsrfBackend *be, float *dx, const float *dout, size_t n,
									 float p, uint64_t seed);

/* ---- causal multi-head self-attention ---------------------------------- */

/*
 * qkv[B,T,3C] holds per position the query, key and value (C each, head h
 * at columns h*hs .. h*hs+hs-1 of each, hs = C / n_heads).  valid[B,T]
 * (NULL: all valid) marks real tokens: a valid query at t attends to the
 * valid keys s <= t; an invalid (padding) query gets a zero output and no
 * gradient.  Left padding, prefix tokens and gaps are all just patterns of
 * valid.
 *
 * out[B,T,C] receives the concatenated heads (before the output
 * projection); att[B,H,T,T] caches the attention probabilities for
 * backward.  The scores are computed for all (sequence, head) pairs at once
 * with gemm_batched.
 */
IsrfStatus	isrf_nn_attention_forward(IsrfBackend *be, float *out, float *att,
									  const float *qkv, const uint8_t *valid,
									  int b, int t, int c, int n_heads);

/* dqkv += d(out)/d(qkv) . dout; scratch is B*H*T*T floats of backend memory. */
IsrfStatus	isrf_nn_attention_backward(IsrfBackend *be, float *dqkv, float *scratch,
									   const float *dout, const float *qkv,
									   const float *att, int b, int t, int c,
									   int n_heads);

/*
 * valid[b*T + t] = 1 for the last lens[b] positions of each row (left
 * padding); host memory.
 */
void		isrf_nn_mask_left_padded(uint8_t *valid, const int32_t *lens, int b, int t);

/* ---- softmax cross-entropy -------------------------------------------- */

/*
 * Mean softmax cross-entropy of logits[N,V] (leading dimension ldl >= V)
 * against targets[N]; negative targets are ignored (ISRF_NN_IGNORE).
 *
 * cand, when not NULL, restricts the softmax to candidate classes: class j
 * of row i is a candidate when cand[i * cand_ld + j] != 0 (cand_ld = 0 shares
 * one row of V flags among all rows).  A target that is not a candidate, or
 * is >= V, is an error.
 *
 * *loss gets the mean over counted rows (0 when none), *count (may be NULL)
 * their number.  When dlogits (leading dimension ldl) is not NULL it is
 * WRITTEN with grad_scale * d(mean loss)/d(logits); ignored rows and
 * non-candidates get 0.  dlogits may alias logits.
 */
IsrfStatus	isrf_nn_softmax_ce(IsrfEnv *env, const float *logits, int ldl,
							   const int32_t *targets, int n, int v,
							   const uint8_t *cand, int cand_ld,
							   float grad_scale, float *loss, int *count,
							   float *dlogits);

/* ---- L2 normalisation -------------------------------------------------- */

/* y = x / max(||x||, 1e-12) per row of x[N,d]; norms[N] cached (y may alias x). */
void		isrf_nn_l2norm_forward(float *y, float *norms, const float *x, int n, int d);

/* dx += (dy - y (y . dy)) / norm per row */
void		isrf_nn_l2norm_backward(float *dx, const float *dy, const float *y,
									const float *norms, int n, int d);

/* ---- InfoNCE ------------------------------------------------------------ */

/*
 * In-batch InfoNCE between rows of a[N,d] and b[N,d] (both already L2
 * normalised): logits S = a b^T / tau, the positive of row i is column i and
 * every other row of the batch is a negative.  loss = mean_i CE(S[i,:], i);
 * when symmetric, the average of that and the column direction
 * mean_j CE(S[:,j], j).
 *
 * The gradient of grad_scale * loss is ACCUMULATED into da and db; pass NULL
 * for a side that is under stop-gradient.  Needs N >= 1, tau > 0.
 */
IsrfStatus	isrf_nn_infonce(IsrfBackend *be, const float *a, const float *b,
							int n, int d, float tau, bool symmetric,
							float grad_scale, float *loss, float *da, float *db);

#endif							/* ISRF_NN_H */
