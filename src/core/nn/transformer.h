/*
 * nn/transformer.h
 *	  The causal transformer backbone of the generative model: pre-LayerNorm
 *	  blocks (attention and GELU MLP, each with a residual and dropout), a
 *	  final LayerNorm, explicit forward and backward over a batch B x T of
 *	  input vectors.
 *
 * The caller builds the token inputs (ID embedding + adapter(semantic) +
 * alpha * LightGCN ...) as a [B,T,C] array; isrf_tf_add_positions adds the
 * learned position / prefix-type embeddings kept in the parameter block.
 *
 * Parameters live in one contiguous float array (tf->params) with a gradient
 * array of the same layout (tf->grads), so that checkpoints, the optimizer
 * and gradient clipping see a single vector.  Layout, in this order:
 *
 *	 wpe	[max_len, C]	position embeddings
 *	 wpre	[n_prefix, C]	prefix-token type embeddings
 *	 per layer l = 0 .. n_layers-1, contiguous:
 *	   ln1_w [C], ln1_b [C]
 *	   qkv_w [3C, C], qkv_b [3C]		(rows: query, key, value)
 *	   proj_w [C, C], proj_b [C]
 *	   ln2_w [C], ln2_b [C]
 *	   fc_w [F, C], fc_b [F]
 *	   fc2_w [C, F], fc2_b [C]
 *	 lnf_w	[C], lnf_b [C]
 *
 * Linear weights are [out, in] (y = x W^T + b).  Activations are sized for
 * the largest B*T seen so far and reused.  All pointers in IsrfTransformer
 * are backend memory and every layer runs on the backend's operations, so
 * the whole forward and backward stay on the device (CPU or CUDA); only the
 * small index arrays (positions, the valid mask) come from the host.
 */
#ifndef ISRF_TRANSFORMER_H
#define ISRF_TRANSFORMER_H

#include "nn/layers.h"

typedef struct IsrfTfConfig
{
	int			n_layers;
	int			d_model;		/* C */
	int			n_heads;		/* divides d_model */
	int			d_ff;			/* F, width of the MLP */
	int			max_len;		/* rows of the position table; T <= max_len */
	int			n_prefix;		/* prefix-token types (user, group, ...) */
	float		dropout;		/* residual / embedding dropout, [0, 1) */
} IsrfTfConfig;

/* Views of one layer's tensors inside a parameter (or gradient) block. */
typedef struct IsrfTfLayer
{
	float	   *ln1_w,
			   *ln1_b,
			   *qkv_w,
			   *qkv_b,
			   *proj_w,
			   *proj_b,
			   *ln2_w,
			   *ln2_b,
			   *fc_w,
			   *fc_b,
			   *fc2_w,
			   *fc2_b;
} IsrfTfLayer;

/* Views of a whole block. */
typedef struct IsrfTfView
{
	float	   *wpe;
	float	   *wpre;
	IsrfTfLayer *layers;		/* n_layers */
	float	   *lnf_w;
	float	   *lnf_b;
} IsrfTfView;

typedef struct IsrfTfActs IsrfTfActs;	/* private: cached activations */

typedef struct IsrfTransformer
{
	IsrfTfConfig cfg;
	IsrfBackend *be;
	size_t		n_params;
	float	   *params;			/* n_params */
	float	   *grads;			/* n_params, same layout */
	IsrfTfView	p;				/* views into params */
	IsrfTfView	g;				/* views into grads */

	/* set by the last forward */
	int			B,
				T;
	const float *hidden;		/* [B,T,C] final hidden states, zero at padding */
	IsrfTfActs *acts;
} IsrfTransformer;

/* Position ids for isrf_tf_add_positions: prefix type j, and padding. */
#define ISRF_TF_POS_PAD (-1)
#define ISRF_TF_POS_PREFIX(j) (-2 - (j))

/* Check a config; the message names the bad field. */
IsrfStatus	isrf_tf_config_check(IsrfEnv *env, const IsrfTfConfig *cfg);

/* Number of floats in the parameter block of cfg (cfg must be valid). */
size_t		isrf_tf_param_count(const IsrfTfConfig *cfg);

/*
 * Create a transformer on be with parameters initialised from seed
 * (GPT-2 style: N(0, 0.02), output projections N(0, 0.02 / sqrt(2 L)),
 * LayerNorm 1/0, biases 0) and gradients zeroed.
 */
IsrfStatus	isrf_tf_create(IsrfBackend *be, const IsrfTfConfig *cfg, uint64_t seed,
						   IsrfTransformer **out);

/* Release everything; NULL is ignored. */
void		isrf_tf_destroy(IsrfTransformer *tf);

/* Zero the gradient block. */
IsrfStatus	isrf_tf_zero_grad(IsrfTransformer *tf);

/*
 * mask[i] = 1 where parameter i takes weight decay (the four matrices of
 * each layer), 0 for LayerNorm, biases and embeddings.  mask has n_params
 * bytes of host memory.
 */
void		isrf_tf_decay_mask(const IsrfTransformer *tf, uint8_t *mask);

/*
 * x[i,:] += wpe[pos[i]] for pos[i] >= 0, += wpre[j] for
 * pos[i] == ISRF_TF_POS_PREFIX(j), nothing for ISRF_TF_POS_PAD.
 * Fails on a position >= max_len or a prefix type >= n_prefix.  x is
 * backend memory, pos host memory.
 */
IsrfStatus	isrf_tf_add_positions(IsrfTransformer *tf, float *x, const int32_t *pos,
								  int n);

/* Gradient of the above: scatter-adds dx rows into the wpe / wpre grads. */
IsrfStatus	isrf_tf_add_positions_backward(IsrfTransformer *tf, const float *dx,
										   const int32_t *pos, int n);

/*
 * Forward over input[B,T,C] with valid[B,T] (host memory, NULL: all valid;
 * see isrf_nn_attention_forward).  train enables dropout, whose masks derive
 * from dropout_seed (use a new seed per step).  On success tf->hidden points
 * at the final hidden states [B,T,C] (after the final LayerNorm), zero at
 * invalid positions, valid until the next forward.  input is not modified
 * and is not needed by backward.
 */
IsrfStatus	isrf_tf_forward(IsrfTransformer *tf, const float *input,
							const uint8_t *valid, int B, int T, bool train,
							uint64_t dropout_seed);

/*
 * Backward of the last forward given dhidden[B,T,C] (rows at invalid
 * positions are ignored).  Parameter gradients ACCUMULATE into tf->grads;
 * dinput[B,T,C] (may be NULL) is WRITTEN with the gradient with respect to
 * the input, exactly zero at invalid positions.
 */
IsrfStatus	isrf_tf_backward(IsrfTransformer *tf, const float *dhidden, float *dinput);

#endif							/* ISRF_TRANSFORMER_H */
