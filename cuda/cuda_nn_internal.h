/*
 * cuda_nn_internal.h
 *	  What the files of the neural-network operations (cuda/cuda_nn*.cu)
 *	  share: the fixed-order warp and block reductions, the launch rule of
 *	  the warp-per-row kernels, the grow-only work space, and each file's
 *	  part of the backend table.
 *
 * The reductions are device functions inlined into every file that uses
 * them (static __forceinline__ in this header), so no relocatable device
 * code is needed and each kernel compiles as it did in one file.
 * cuda_nn.cu says what the GPU and the CPU backend are expected to share.
 * The header is C++ (nvcc) only.
 */
#ifndef ISRF_CUDA_NN_INTERNAL_H
#define ISRF_CUDA_NN_INTERNAL_H

#include "cuda_internal.h"

#define CUDA_NN_ROW_WARPS 8		/* warp-per-row kernels: 256 threads */

#define CUDA_NN_FULL_MASK 0xffffffffu

/*
 * Sum over a warp by a butterfly.  Each step adds two equal partials in the
 * two lanes' opposite orders, and float addition is commutative, so every
 * lane ends with the same bits: the reduction order is fixed.
 */
template <typename T>
static __device__ __forceinline__ T
cuda_nn_warp_sum(T v)
{
	int			o;

	for (o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(CUDA_NN_FULL_MASK, v, o);
	return v;
}

/*
 * Maximum over a warp, ignoring NaN like the CPU's "a > m" scan; lane 0's
 * value is broadcast so that -0.0 / +0.0 ties cannot leave lanes disagreeing.
 */
static __device__ __forceinline__ float
cuda_nn_warp_max(float v)
{
	int			o;

	for (o = 16; o > 0; o >>= 1)
	{
		float		w = __shfl_xor_sync(CUDA_NN_FULL_MASK, v, o);

		v = w > v ? w : v;
	}
	return __shfl_sync(CUDA_NN_FULL_MASK, v, 0);
}

/*
 * Block-wide sum for NT threads: warp butterflies, then every thread adds
 * the warp results in warp order (all threads get the same bits).  sh holds
 * NT / 32 entries; the trailing barrier lets the caller reuse it at once.
 */
template <int NT, typename T>
static __device__ __forceinline__ T
cuda_nn_block_sum(T v, T *sh)
{
	const int	lane = threadIdx.x & 31;
	const int	warp = threadIdx.x >> 5;
	T			s;
	int			w;

	v = cuda_nn_warp_sum(v);
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	s = sh[0];
	for (w = 1; w < NT / 32; w++)
		s += sh[w];
	__syncthreads();
	return s;
}

/* Block-wide maximum, like cuda_nn_block_sum. */
template <int NT>
static __device__ __forceinline__ float
cuda_nn_block_max(float v, float *sh)
{
	const int	lane = threadIdx.x & 31;
	const int	warp = threadIdx.x >> 5;
	float		m;
	int			w;

	v = cuda_nn_warp_max(v);
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	m = sh[0];
	for (w = 1; w < NT / 32; w++)
		m = sh[w] > m ? sh[w] : m;
	__syncthreads();
	return m;
}

/* Blocks for the warp-per-row kernels (one warp per row, grid-stride). */
static inline unsigned int
cuda_nn_row_blocks(size_t rows)
{
	return cuda_ew_blocks(rows, CUDA_NN_ROW_WARPS);
}

/*
 * Work space of at least bytes from the grow-only device buffer
 * (CudaImpl.scratch; cuda_nn.cu).  Valid until the next call: operations run
 * in stream order, so one buffer serves them all.
 */
CUDA_HIDDEN IsrfStatus cuda_nn_scratch(IsrfBackend *b, size_t bytes, void **out);

/* Each file fills in its operations; cuda_nn_install calls them all. */
CUDA_HIDDEN void cuda_nn_install_elementwise(IsrfBackend *b);	/* cuda_nn_elementwise.cu */
CUDA_HIDDEN void cuda_nn_install_gemm(IsrfBackend *b);	/* cuda_nn_gemm.cu */
CUDA_HIDDEN void cuda_nn_install_layernorm(IsrfBackend *b);	/* cuda_nn_layernorm.cu */
CUDA_HIDDEN void cuda_nn_install_softmax(IsrfBackend *b);	/* cuda_nn_softmax.cu */
CUDA_HIDDEN void cuda_nn_install_scatter(IsrfBackend *b);	/* cuda_nn_scatter.cu */
CUDA_HIDDEN void cuda_nn_install_optimizer(IsrfBackend *b);	/* cuda_nn_optimizer.cu */

#endif							/* ISRF_CUDA_NN_INTERNAL_H */
