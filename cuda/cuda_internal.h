/*
 * cuda_internal.h
 *	  What the translation units of the CUDA backend share: the private state
 *	  behind IsrfBackend.impl, the failure helpers and the status-checking
 *	  macros, device allocation, and the grid-size rule of the element-wise
 *	  kernels.
 *
 * Everything declared here is defined once (in cuda_backend.cu unless noted)
 * and has hidden visibility, so that the library still exports nothing but
 * ISRF_CUDA_ENTRY.  The header is C++ (nvcc) only.
 */
#ifndef ISRF_CUDA_INTERNAL_H
#define ISRF_CUDA_INTERNAL_H

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cusparse.h>

extern "C"
{
#include "compute/backend.h"
}

/* shared by the library's own functions: never exported */
#define CUDA_HIDDEN __attribute__((visibility("hidden")))

#define CUDA_EW_THREADS 256

/* Device allocations, an open-addressing table keyed by address. */
typedef struct CudaAllocTable
{
	void	  **keys;			/* NULL = empty slot */
	size_t	   *sizes;
	size_t		cap;			/* power of two, or 0 */
	size_t		count;
	size_t		bytes;			/* live device bytes, for describe() */
} CudaAllocTable;

typedef struct CudaImpl
{
	int			device;
	cudaStream_t stream;
	cublasHandle_t blas;
	cusparseHandle_t sparse;
	CudaAllocTable allocs;
	IsrfDevCsr *csr_list;		/* live sparse matrices */
	size_t		topk_smem_max;	/* dynamic shared memory the top-k may use */
	int			topk_k_max;
	char		devname[256];
	int			cc_major;
	int			cc_minor;
	int			sms;
	size_t		total_mem;

	/*
	 * Work space of the neural-network operations (cuda_nn.cu): one
	 * grow-only device buffer, tracked in allocs like any other allocation.
	 * Operations run in stream order, so one buffer serves them all.
	 */
	void	   *scratch;
	size_t		scratch_bytes;
} CudaImpl;

/* Record a failure in env like isrf_fail and return st. */
CUDA_HIDDEN IsrfStatus cuda_fail(IsrfEnv *env, IsrfStatus st, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Zeroed host memory through env; records ISRF_ERR_NOMEM on failure. */
CUDA_HIDDEN void *cuda_host_calloc(IsrfEnv *env, size_t bytes);
CUDA_HIDDEN void cuda_host_free(IsrfEnv *env, void *p);

/* Library failures as ISRF_ERR_DEVICE, naming the call. */
CUDA_HIDDEN IsrfStatus cuda_rt_fail(IsrfEnv *env, const char *what, cudaError_t e);
CUDA_HIDDEN IsrfStatus cuda_blas_fail(IsrfEnv *env, const char *what, cublasStatus_t s);
CUDA_HIDDEN IsrfStatus cuda_sparse_fail(IsrfEnv *env, const char *what, cusparseStatus_t s);

/* cudaMalloc + zero fill, recorded for destroy(); and its release. */
CUDA_HIDDEN IsrfStatus cuda_dev_alloc(IsrfBackend *b, size_t bytes, void **out);
CUDA_HIDDEN void cuda_dev_free(IsrfBackend *b, void *p);

/* Fill in the neural-network operations of the table (cuda_nn.cu). */
CUDA_HIDDEN void cuda_nn_install(IsrfBackend *b);

#define CUDA_RT(env, call) \
	do { \
		cudaError_t cuda_e_ = (call); \
		if (cuda_e_ != cudaSuccess) \
			return cuda_rt_fail((env), #call, cuda_e_); \
	} while (0)

#define CUDA_BLAS(env, call) \
	do { \
		cublasStatus_t cuda_s_ = (call); \
		if (cuda_s_ != CUBLAS_STATUS_SUCCESS) \
			return cuda_blas_fail((env), #call, cuda_s_); \
	} while (0)

#define CUDA_SPARSE(env, call) \
	do { \
		cusparseStatus_t cuda_s_ = (call); \
		if (cuda_s_ != CUSPARSE_STATUS_SUCCESS) \
			return cuda_sparse_fail((env), #call, cuda_s_); \
	} while (0)

/*
 * Grid size for grid-stride element-wise kernels: enough blocks to cover n,
 * at least one (a launch of zero blocks is an error), capped so that huge n
 * loops inside the kernel instead of overflowing the grid.
 */
static inline unsigned int
cuda_ew_blocks(size_t n, int threads)
{
	size_t		b = (n + threads - 1) / threads;

	if (b < 1)
		b = 1;
	if (b > 65535u * 16u)
		b = 65535u * 16u;
	return (unsigned int) b;
}

#endif							/* ISRF_CUDA_INTERNAL_H */
