/*
 * cuda_nn_optimizer.cu
 *	  The optimizer's operations of the backend table on the GPU: one AdamW
 *	  step (rounded step by step like isrf_adamw_step, so bitwise the CPU's)
 *	  and sumsq, the sum of squares in double for gradient-norm clipping (two
 *	  fixed levels of block sums, so the same bits on every run).
 */
#include <stdint.h>

#include "cuda_nn_internal.h"

#define CUDA_NN_RED_THREADS 256 /* sumsq */
#define CUDA_NN_SUMSQ_PER_THREAD 8
#define CUDA_NN_SUMSQ_MAX_BLOCKS 1024

/* ---------------------------------------------------------------------
 * AdamW
 * ------------------------------------------------------------------- */

/* One AdamW update, rounded step by step like isrf_adamw_step. */
static __global__ void
cuda_nn_adamw_kernel(float *params, const float *grads, float *mo, float *vo,
					 const uint8_t *decay, size_t n, float lr, float b1,
					 float omb1, float b2, float omb2, float eps, float lw,
					 float c1, float c2)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < n; i += step)
	{
		float		g = grads[i];
		float		m = __fadd_rn(__fmul_rn(b1, mo[i]), __fmul_rn(omb1, g));
		float		v = __fadd_rn(__fmul_rn(b2, vo[i]), __fmul_rn(__fmul_rn(omb2, g), g));
		float		p = params[i];
		float		upd;

		mo[i] = m;
		vo[i] = v;
		if (decay == NULL || decay[i])
			p = __fsub_rn(p, __fmul_rn(lw, p));
		upd = __fdiv_rn(__fmul_rn(lr, __fmul_rn(m, c1)),
						__fadd_rn(__fsqrt_rn(__fmul_rn(v, c2)), eps));
		params[i] = __fsub_rn(p, upd);
	}
}

/* ---------------------------------------------------------------------
 * sumsq: two fixed levels of double sums
 * ------------------------------------------------------------------- */

/* Block b sums squares of x[b*len .. (b+1)*len) into part[b]. */
static __global__ void
__launch_bounds__(CUDA_NN_RED_THREADS)
cuda_nn_sumsq_part_kernel(const float *x, size_t n, size_t len, double *part)
{
	__shared__ double sh[CUDA_NN_RED_THREADS / 32];
	size_t		lo = (size_t) blockIdx.x * len;
	size_t		hi = lo + len < n ? lo + len : n;
	size_t		i;
	double		s = 0.0;

	for (i = lo + threadIdx.x; i < hi; i += CUDA_NN_RED_THREADS)
	{
		double		v = x[i];

		s += v * v;				/* exact product: FMA or not, same bits */
	}
	s = cuda_nn_block_sum<CUDA_NN_RED_THREADS>(s, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = s;
}

/* One block: *out = sum of part[0 .. nb) in a fixed order. */
static __global__ void
__launch_bounds__(CUDA_NN_RED_THREADS)
cuda_nn_sumsq_final_kernel(const double *part, unsigned int nb, double *out)
{
	__shared__ double sh[CUDA_NN_RED_THREADS / 32];
	double		s = 0.0;
	unsigned int i;

	for (i = threadIdx.x; i < nb; i += CUDA_NN_RED_THREADS)
		s += part[i];
	s = cuda_nn_block_sum<CUDA_NN_RED_THREADS>(s, sh);
	if (threadIdx.x == 0)
		*out = s;
}

/* ---------------------------------------------------------------------
 * Host side
 * ------------------------------------------------------------------- */

/*
 * The scalar factors (lr * wd, 1 - b1, 1 - b2) are formed here in float as
 * the CPU forms them; the kernel then follows isrf_adamw_step step by step.
 */
static IsrfStatus
cuda_nn_adamw_step(IsrfBackend *b, float *params, const float *grads,
				   float *m, float *v, const uint8_t *decay, size_t n,
				   float lr, float b1, float b2, float eps, float wd,
				   float c1, float c2)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n == 0)
		return ISRF_OK;
	cuda_nn_adamw_kernel<<<cuda_ew_blocks(n, CUDA_EW_THREADS), CUDA_EW_THREADS, 0,
		impl->stream>>>(params, grads, m, v, decay, n, lr, b1, 1.0f - b1, b2,
						1.0f - b2, eps, lr * wd, c1, c2);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/*
 * Gradient-norm clipping needs the value on the host, so this is the one
 * operation that waits for the stream.  Blocks sum fixed contiguous ranges
 * (a function of n alone), one block sums the block results.
 */
static IsrfStatus
cuda_nn_sumsq(IsrfBackend *b, const float *x, size_t n, double *out)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		per_block = (size_t) CUDA_NN_RED_THREADS * CUDA_NN_SUMSQ_PER_THREAD;
	size_t		nb = (n + per_block - 1) / per_block,
				len;
	double	   *part;
	double		host = 0.0;

	*out = 0.0;
	if (n == 0)
		return ISRF_OK;
	if (nb > CUDA_NN_SUMSQ_MAX_BLOCKS)
		nb = CUDA_NN_SUMSQ_MAX_BLOCKS;
	len = (n + nb - 1) / nb;
	ISRF_TRY(cuda_nn_scratch(b, sizeof(double) * (nb + 1), (void **) &part));
	cuda_nn_sumsq_part_kernel<<<(unsigned int) nb, CUDA_NN_RED_THREADS, 0, impl->stream>>>
		(x, n, len, part);
	CUDA_RT(b->env, cudaGetLastError());
	cuda_nn_sumsq_final_kernel<<<1, CUDA_NN_RED_THREADS, 0, impl->stream>>>
		(part, (unsigned int) nb, part + nb);
	CUDA_RT(b->env, cudaGetLastError());
	CUDA_RT(b->env, cudaMemcpyAsync(&host, part + nb, sizeof(double),
									cudaMemcpyDeviceToHost, impl->stream));
	CUDA_RT(b->env, cudaStreamSynchronize(impl->stream));
	*out = host;
	return ISRF_OK;
}

/* AdamW and sumsq into the table (cuda_nn_install). */
void
cuda_nn_install_optimizer(IsrfBackend *b)
{
	b->adamw_step = cuda_nn_adamw_step;
	b->sumsq = cuda_nn_sumsq;
}
