/*
 * cuda_nn_gemm.cu
 *	  gemm_batched of the backend table on the GPU: a grid of products (the
 *	  sequences and heads of attention) as strided-batched cuBLAS calls, and
 *	  the kernel that scales C where there is nothing to multiply.
 */
#include "cuda_nn_internal.h"

/* C_oi *= beta for every product of a batch (beta == 0 writes zeros) */
static __global__ void
cuda_nn_scale_batched_kernel(int m, int n, float beta, float *c, int ldc,
							 size_t sc_outer, size_t sc_inner, int n_inner,
							 size_t total)
{
	size_t		per = (size_t) m * n;
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < total; i += step)
	{
		size_t		bi = i / per,
					e = i % per;
		float	   *p = c + (bi / n_inner) * sc_outer + (bi % n_inner) * sc_inner +
			(e / n) * (size_t) ldc + e % n;

		*p = (beta == 0.0f) ? 0.0f : __fmul_rn(beta, *p);
	}
}

/*
 * A grid of products as strided-batched cuBLAS calls: the larger of the two
 * grid dimensions is the batch, the smaller one (heads, usually) is looped
 * on the host, so there are few calls and no pointer arrays to upload.
 * The row-major to column-major mapping is that of cuda_gemm; the handle's
 * math mode (no TF32) and atomics setting apply unchanged.
 */
static IsrfStatus
cuda_nn_gemm_batched(IsrfBackend *b, bool trans_a, bool trans_b,
					 int m, int n, int k, float alpha,
					 const float *a, int lda, size_t sa_outer, size_t sa_inner,
					 const float *bm, int ldb, size_t sb_outer, size_t sb_inner,
					 float beta, float *c, int ldc, size_t sc_outer, size_t sc_inner,
					 int n_outer, int n_inner)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	int			need_lda = trans_a ? m : k,
				need_ldb = trans_b ? k : n;
	bool		batch_outer = n_outer >= n_inner;
	int			batch = batch_outer ? n_outer : n_inner,
				loops = batch_outer ? n_inner : n_outer,
				l;
	size_t		sa_b = batch_outer ? sa_outer : sa_inner,
				sb_b = batch_outer ? sb_outer : sb_inner,
				sc_b = batch_outer ? sc_outer : sc_inner,
				sa_l = batch_outer ? sa_inner : sa_outer,
				sb_l = batch_outer ? sb_inner : sb_outer,
				sc_l = batch_outer ? sc_inner : sc_outer;

	if (m < 0 || n < 0 || k < 0 || n_outer < 0 || n_inner < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gemm_batched: negative dimension (m=%d, n=%d, k=%d, %d x %d products)",
						 m, n, k, n_outer, n_inner);
	if (m == 0 || n == 0 || n_outer == 0 || n_inner == 0)
		return ISRF_OK;
	if (ldc < n)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gemm_batched: ldc=%d is less than n=%d", ldc, n);
	if (k == 0 || alpha == 0.0f)
	{
		size_t		total = (size_t) n_outer * n_inner * m * n;

		/* C = beta C; cuBLAS would insist on leading dimensions of A and B */
		cuda_nn_scale_batched_kernel<<<cuda_ew_blocks(total, CUDA_EW_THREADS),
			CUDA_EW_THREADS, 0, impl->stream>>>(m, n, beta, c, ldc, sc_outer,
												sc_inner, n_inner, total);
		CUDA_RT(b->env, cudaGetLastError());
		return ISRF_OK;
	}
	if (lda < need_lda || ldb < need_ldb)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gemm_batched: leading dimension too small (lda=%d needs %d, ldb=%d needs %d)",
						 lda, need_lda, ldb, need_ldb);
	for (l = 0; l < loops; l++)
	{
		/* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
		CUDA_BLAS(b->env, cublasSgemmStridedBatched(impl->blas,
													trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
													trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
													n, m, k, &alpha,
													bm + (size_t) l * sb_l, ldb, (long long) sb_b,
													a + (size_t) l * sa_l, lda, (long long) sa_b,
													&beta,
													c + (size_t) l * sc_l, ldc, (long long) sc_b,
													batch));
	}
	return ISRF_OK;
}

/* gemm_batched into the table (cuda_nn_install). */
void
cuda_nn_install_gemm(IsrfBackend *b)
{
	b->gemm_batched = cuda_nn_gemm_batched;
}
