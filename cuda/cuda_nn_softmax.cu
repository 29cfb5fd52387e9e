/*
 * cuda_nn_softmax.cu
 *	  The softmaxes of the backend table on the GPU: the masked causal
 *	  attention softmax (forward and backward, one warp per row of a t x t
 *	  matrix) and softmax cross-entropy with its gradient (one block per row,
 *	  for vocabularies of tens of thousands of classes).
 *
 * Maxima and sums are fixed-order warp and block reductions; expf/logf are
 * CUDA's, so these match the CPU to rounding, not bitwise (see cuda_nn.cu).
 */
#include <math.h>
#include <stdint.h>

#include "cuda_nn_internal.h"

#define CUDA_NN_CE_THREADS 512	/* softmax cross-entropy, one block per row */

/* ---------------------------------------------------------------------
 * Attention softmax: one warp per row of a t x t matrix
 * ------------------------------------------------------------------- */

/*
 * Masked causal softmax in place.  Row "row" of the stacked matrices is
 * query r = row % t of matrix row / t, whose sequence is matrix / n_heads.
 * Every lane rewrites only the columns it read, so no barrier is needed
 * between the passes.
 */
static __global__ void
__launch_bounds__(CUDA_NN_ROW_WARPS * 32)
cuda_nn_attn_softmax_kernel(float *s, const uint8_t *valid, int n_heads,
							int t, size_t rows)
{
	const int	lane = threadIdx.x & 31;
	size_t		row = (size_t) blockIdx.x * CUDA_NN_ROW_WARPS + (threadIdx.x >> 5);
	size_t		step = (size_t) gridDim.x * CUDA_NN_ROW_WARPS;

	for (; row < rows; row += step)
	{
		size_t		mat = row / t;
		int			r = (int) (row % t);
		const uint8_t *vq = valid ? valid + (mat / n_heads) * t : NULL;
		float	   *sr = s + row * t;
		float		mx = -INFINITY,
					sum = 0.0f,
					inv;
		int			j;

		if (vq && !vq[r])
		{
			/* a padding query: the whole row is 0 (uniform in the warp) */
			for (j = lane; j < t; j += 32)
				sr[j] = 0.0f;
			continue;
		}
		for (j = lane; j <= r; j += 32)
			if ((!vq || vq[j]) && sr[j] > mx)
				mx = sr[j];
		mx = cuda_nn_warp_max(mx);
		for (j = lane; j <= r; j += 32)
		{
			if (!vq || vq[j])
			{
				float		e = expf(__fsub_rn(sr[j], mx));

				sr[j] = e;
				sum = __fadd_rn(sum, e);
			}
			else
				sr[j] = 0.0f;
		}
		/* key r itself is valid, so sum >= 1 */
		inv = __fdiv_rn(1.0f, cuda_nn_warp_sum(sum));
		for (j = lane; j <= r; j += 32)
			sr[j] = __fmul_rn(sr[j], inv);
		for (j = r + 1 + lane; j < t; j += 32)
			sr[j] = 0.0f;
	}
}

/* ds = p (ds - rowdot(p, ds)) on the causal part, 0 above it; warp per row */
static __global__ void
__launch_bounds__(CUDA_NN_ROW_WARPS * 32)
cuda_nn_attn_softmax_backward_kernel(float *ds, const float *p, int t, size_t rows)
{
	const int	lane = threadIdx.x & 31;
	size_t		row = (size_t) blockIdx.x * CUDA_NN_ROW_WARPS + (threadIdx.x >> 5);
	size_t		step = (size_t) gridDim.x * CUDA_NN_ROW_WARPS;

	for (; row < rows; row += step)
	{
		int			r = (int) (row % t);
		const float *pr = p + row * t;
		float	   *dr = ds + row * t;
		float		dot = 0.0f;
		int			j;

		for (j = lane; j <= r; j += 32)
			dot = __fadd_rn(dot, __fmul_rn(pr[j], dr[j]));
		dot = cuda_nn_warp_sum(dot);
		for (j = lane; j <= r; j += 32)
			dr[j] = __fmul_rn(pr[j], __fsub_rn(dr[j], dot));
		for (j = r + 1 + lane; j < t; j += 32)
			dr[j] = 0.0f;
	}
}

/* ---------------------------------------------------------------------
 * Softmax cross-entropy: one block per row
 * ------------------------------------------------------------------- */

/*
 * Row i: max, sum of exp(l - max) (block reductions in a fixed order), the
 * loss, then the gradient written in place of the row when asked.  dlogits
 * may alias logits: the target logit is read before the first barrier and
 * every thread rewrites only the columns it read.  A target outside
 * [0, v) ignores the row (the whole block returns together).
 */
static __global__ void
__launch_bounds__(CUDA_NN_CE_THREADS)
cuda_nn_softmax_ce_kernel(const float *logits, int ld, const int32_t *targets,
						  int v, float grad_scale, float *row_loss,
						  float *dlogits)
{
	__shared__ float sh[CUDA_NN_CE_THREADS / 32];
	const int	tid = threadIdx.x;
	size_t		i = blockIdx.x;
	const float *li = logits + i * ld;
	float	   *gi = dlogits ? dlogits + i * ld : NULL;
	int32_t		y = targets[i];
	float		ly,
				mx = -INFINITY,
				sum = 0.0f;
	int			j;

	if (y < 0 || y >= v)
	{
		if (tid == 0 && row_loss)
			row_loss[i] = 0.0f;
		if (gi)
			for (j = tid; j < v; j += CUDA_NN_CE_THREADS)
				gi[j] = 0.0f;
		return;
	}
	ly = li[y];
	for (j = tid; j < v; j += CUDA_NN_CE_THREADS)
		mx = li[j] > mx ? li[j] : mx;
	mx = cuda_nn_block_max<CUDA_NN_CE_THREADS>(mx, sh);
	for (j = tid; j < v; j += CUDA_NN_CE_THREADS)
		sum = __fadd_rn(sum, expf(__fsub_rn(li[j], mx)));
	sum = cuda_nn_block_sum<CUDA_NN_CE_THREADS>(sum, sh);
	if (tid == 0 && row_loss)
		row_loss[i] = __fsub_rn(__fadd_rn(logf(sum), mx), ly);
	if (gi)
	{
		float		inv = __fdiv_rn(grad_scale, sum);

		for (j = tid; j < v; j += CUDA_NN_CE_THREADS)
		{
			float		g = __fmul_rn(expf(__fsub_rn(li[j], mx)), inv);

			gi[j] = (j == y) ? __fsub_rn(g, grad_scale) : g;
		}
	}
}

/* ---------------------------------------------------------------------
 * Host side
 * ------------------------------------------------------------------- */

/* one warp per query row of every (sequence, head) matrix */
static IsrfStatus
cuda_nn_attn_softmax_forward(IsrfBackend *b, float *s, const uint8_t *valid,
							 int n_seq, int n_heads, int t)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		rows = (size_t) n_seq * n_heads * t;

	if (n_seq < 0 || n_heads < 0 || t < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "attn_softmax_forward: negative shape (%d sequences, %d heads, t=%d)",
						 n_seq, n_heads, t);
	if (rows == 0)
		return ISRF_OK;
	cuda_nn_attn_softmax_kernel<<<cuda_nn_row_blocks(rows), CUDA_NN_ROW_WARPS * 32, 0,
		impl->stream>>>(s, valid, n_heads, t, rows);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

static IsrfStatus
cuda_nn_attn_softmax_backward(IsrfBackend *b, float *ds, const float *p,
							  int n_mat, int t)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		rows = (size_t) n_mat * t;

	if (n_mat < 0 || t < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "attn_softmax_backward: negative shape (%d matrices, t=%d)",
						 n_mat, t);
	if (rows == 0)
		return ISRF_OK;
	cuda_nn_attn_softmax_backward_kernel<<<cuda_nn_row_blocks(rows),
		CUDA_NN_ROW_WARPS * 32, 0, impl->stream>>>(ds, p, t, rows);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* one block per row: vocabularies of tens of thousands of columns */
static IsrfStatus
cuda_nn_softmax_ce(IsrfBackend *b, const float *logits, int ld,
				   const int32_t *targets, int n, int v, float grad_scale,
				   float *row_loss, float *dlogits)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	/* the same checks as the CPU backend: a row needs at least one class */
	if (n < 0 || v <= 0 || ld < v)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "softmax_ce: bad shape (n=%d, v=%d, ld=%d; v must be positive, ld >= v)",
						 n, v, ld);
	if (n == 0)
		return ISRF_OK;
	cuda_nn_softmax_ce_kernel<<<(unsigned int) n, CUDA_NN_CE_THREADS, 0, impl->stream>>>
		(logits, ld, targets, v, grad_scale, row_loss, dlogits);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* The softmaxes into the table (cuda_nn_install). */
void
cuda_nn_install_softmax(IsrfBackend *b)
{
	b->attn_softmax_forward = cuda_nn_attn_softmax_forward;
	b->attn_softmax_backward = cuda_nn_attn_softmax_backward;
	b->softmax_ce = cuda_nn_softmax_ce;
}
