/*
 * cuda_backend.cu
 *	  The CUDA backend: the IsrfBackend table of src/core/backend.h on cuBLAS,
 *	  cuSPARSE and a few kernels, built by nvcc into build/isrf_cuda.so.
 *
 * How it is loaded.  isrf.so and the driver never link CUDA: backend.c
 * dlopen()s this library RTLD_LOCAL, with every signal blocked, and calls
 * isrf_cuda_backend_create (ISRF_CUDA_ENTRY).  Because the engine's symbols
 * may not be visible from here, this file calls nothing from src/core/ C files: it
 * includes the headers for types only, allocates host structs with
 * env->alloc/env->free, and records failures in env->status/env->errmsg
 * itself (cuda_fail).  The CUDA runtime is linked statically, so the only
 * run-time needs are the driver (libcuda) and cuBLAS/cuSPARSE.
 *
 * Failure policy.  create() answers ISRF_ERR_UNAVAILABLE for a wrong ABI and
 * for any failure to reach a device (no driver, no device, context or
 * library handle creation failing), which is how isrf.device=auto falls back
 * to the CPU quietly.  After that, every CUDA/cuBLAS/cuSPARSE status is
 * checked and a failure is ISRF_ERR_DEVICE naming the API call and its error
 * string; bad arguments are ISRF_ERR_INVALID before anything is launched.
 *
 * Memory.  Plain cudaMalloc, never managed memory.  Every device allocation
 * (the caller's, sparse matrices, SpMM work buffers) is recorded in a hash
 * table keyed by address, so destroy() releases whatever is left: the
 * PostgreSQL glue calls it from PG_FINALLY after an error.
 *
 * Numerics and determinism.
 *  - gemm: cublasSgemm with CUBLAS_DEFAULT_MATH, which for FP32 never uses
 *    TF32 tensor cores (TF32 needs CUBLAS_TF32_TENSOR_OP_MATH), and atomics
 *    disallowed; the row-major product is computed as the column-major
 *    C^T = op(B)^T op(A)^T by swapping the operands.  With one handle on one
 *    stream cuBLAS is bitwise reproducible run to run on the same GPU.
 *  - spmm: cusparseSpMM, CSR with 32-bit indices, row-major dense operands,
 *    CUSPARSE_SPMM_CSR_ALG3: the cuSPARSE documentation lists COO_ALG2,
 *    CSR_ALG3 and BLOCKED_ELL_ALG1 (with opA non-transposed) as the SpMM
 *    algorithms with bit-wise deterministic results.  Should a cuSPARSE build
 *    refuse ALG3 for a shape (CUSPARSE_STATUS_NOT_SUPPORTED), a plain
 *    deterministic row kernel of our own is used instead, never a
 *    non-deterministic algorithm.  The work buffer is cached per matrix.
 *  - topk_rows: one thread block per row; a 4-pass radix select over an
 *    order-preserving 32-bit key finds the k-th best value, the winners are
 *    gathered (ties at the threshold by ascending column, through a block
 *    scan) and sorted in shared memory by a bitonic sort on (key desc, column
 *    asc).  The order is total, so the result is exactly that of
 *    isrf_topk_rows_ref.  k is limited by shared memory: next_pow2(k) * 8
 *    bytes must fit the device's opt-in per-block limit (k <= 16384 on an
 *    A100 or H100, 4096 on a GPU with only 48 KB per block); a larger k is
 *    ISRF_ERR_INVALID with the limit in the message, and describe() says it.
 *    Launch errors are checked after each kernel; execution errors surface
 *    at the next sync/download, as usual for asynchronous work.
 *  - axpby uses __fmul_rn/__fadd_rn so that no FMA is contracted and the
 *    result is bitwise that of the CPU loop; row_normalize sums squares in
 *    double like the CPU (one warp per row, fixed reduction order).
 *
 * The neural-network operations of backend ABI 2 (LayerNorm, GELU, dropout,
 * attention softmax, cross-entropy, AdamW, ...) live in cuda_nn.cu; what the
 * two files share (CudaImpl, the failure helpers and macros, device
 * allocation) is in cuda_internal.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"
#include "isrf_hd.h"

#define CUDA_TOPK_THREADS 256
#define CUDA_NORM_WARPS 8
#define CUDA_SPMM_THREADS 256

struct IsrfDevCsr
{
	int32_t		n_rows;
	int32_t		n_cols;
	int32_t		nnz;
	int32_t    *rowptr;			/* device, tracked */
	int32_t    *col;			/* device, tracked */
	float	   *val;			/* device, tracked */
	cusparseSpMatDescr_t mat;	/* NULL when empty (no cuSPARSE call then) */
	void	   *buf;			/* cached SpMM work buffer, tracked */
	size_t		buf_size;
	bool		use_fallback;	/* cuSPARSE refused ALG3 for this matrix */
	IsrfDevCsr *prev;
	IsrfDevCsr *next;
};

/* ---------------------------------------------------------------------
 * Status and host memory helpers (nothing from the src/core C files may be called)
 * ------------------------------------------------------------------- */

/* Record a failure in env like isrf_fail and return st. */
IsrfStatus
cuda_fail(IsrfEnv *env, IsrfStatus st, const char *fmt,...)
{
	va_list		ap;

	env->status = st;
	va_start(ap, fmt);
	vsnprintf(env->errmsg, sizeof(env->errmsg), fmt, ap);
	va_end(ap);
	return st;
}

/* Zeroed host memory through env; records ISRF_ERR_NOMEM on failure. */
void *
cuda_host_calloc(IsrfEnv *env, size_t bytes)
{
	void	   *p;

	if (bytes == 0)
		bytes = 1;
	p = env->alloc(env->ctx, bytes);
	if (p == NULL)
	{
		cuda_fail(env, ISRF_ERR_NOMEM,
				  "out of memory allocating %zu bytes for the CUDA backend", bytes);
		return NULL;
	}
	memset(p, 0, bytes);
	return p;
}

void
cuda_host_free(IsrfEnv *env, void *p)
{
	if (p)
		env->free(env->ctx, p);
}

/* A CUDA runtime failure as ISRF_ERR_DEVICE, naming the call. */
IsrfStatus
cuda_rt_fail(IsrfEnv *env, const char *what, cudaError_t e)
{
	return cuda_fail(env, ISRF_ERR_DEVICE, "CUDA error in %s: %s (%s)",
					 what, cudaGetErrorString(e), cudaGetErrorName(e));
}

IsrfStatus
cuda_blas_fail(IsrfEnv *env, const char *what, cublasStatus_t s)
{
	return cuda_fail(env, ISRF_ERR_DEVICE, "cuBLAS error in %s: %s",
					 what, cublasGetStatusString(s));
}

IsrfStatus
cuda_sparse_fail(IsrfEnv *env, const char *what, cusparseStatus_t s)
{
	return cuda_fail(env, ISRF_ERR_DEVICE, "cuSPARSE error in %s: %s",
					 what, cusparseGetErrorString(s));
}

/* ---------------------------------------------------------------------
 * Allocation table
 * ------------------------------------------------------------------- */

static size_t
cuda_alloc_hash(const void *p, size_t cap)
{
	uint64_t	h = (uint64_t) (uintptr_t) p;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t) h & (cap - 1);
}

/* Insert without growing; the caller guarantees a free slot. */
static void
cuda_alloc_put(CudaAllocTable *t, void *p, size_t bytes)
{
	size_t		i = cuda_alloc_hash(p, t->cap);

	while (t->keys[i] != NULL)
		i = (i + 1) & (t->cap - 1);
	t->keys[i] = p;
	t->sizes[i] = bytes;
}

/* Make room for one more entry (load factor at most 1/2). */
static IsrfStatus
cuda_alloc_reserve(IsrfEnv *env, CudaAllocTable *t)
{
	CudaAllocTable old = *t;
	size_t		ncap,
				i;

	if ((t->count + 1) * 2 <= t->cap)
		return ISRF_OK;
	ncap = t->cap ? t->cap * 2 : 64;
	t->keys = (void **) cuda_host_calloc(env, ncap * sizeof(void *));
	t->sizes = t->keys ? (size_t *) cuda_host_calloc(env, ncap * sizeof(size_t)) : NULL;
	if (t->sizes == NULL)
	{
		cuda_host_free(env, t->keys);
		*t = old;
		return ISRF_ERR_NOMEM;
	}
	t->cap = ncap;
	for (i = 0; i < old.cap; i++)
		if (old.keys[i])
			cuda_alloc_put(t, old.keys[i], old.sizes[i]);
	cuda_host_free(env, old.keys);
	cuda_host_free(env, old.sizes);
	return ISRF_OK;
}

/* Remove p; false if it was never allocated here. */
static bool
cuda_alloc_remove(CudaAllocTable *t, void *p, size_t *bytes)
{
	size_t		i,
				j;

	if (t->cap == 0)
		return false;
	i = cuda_alloc_hash(p, t->cap);
	while (t->keys[i] != p)
	{
		if (t->keys[i] == NULL)
			return false;
		i = (i + 1) & (t->cap - 1);
	}
	*bytes = t->sizes[i];
	t->keys[i] = NULL;
	t->count--;
	t->bytes -= *bytes;

	/* backward-shift deletion keeps every probe chain unbroken */
	j = i;
	for (;;)
	{
		size_t		home;

		j = (j + 1) & (t->cap - 1);
		if (t->keys[j] == NULL)
			break;
		home = cuda_alloc_hash(t->keys[j], t->cap);
		/* move j back to i unless its home lies cyclically in (i, j] */
		if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j))
		{
			t->keys[i] = t->keys[j];
			t->sizes[i] = t->sizes[j];
			t->keys[j] = NULL;
			i = j;
		}
	}
	return true;
}

/* cudaMalloc + zero fill, recorded for destroy(). */
IsrfStatus
cuda_dev_alloc(IsrfBackend *b, size_t bytes, void **out)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	void	   *p = NULL;
	cudaError_t e;

	*out = NULL;
	if (bytes == 0)
		bytes = 1;				/* a distinct, freeable pointer like the CPU */
	if (cuda_alloc_reserve(b->env, &impl->allocs) != ISRF_OK)
		return ISRF_ERR_NOMEM;
	e = cudaMalloc(&p, bytes);
	if (e == cudaErrorMemoryAllocation)
	{
		(void) cudaGetLastError();	/* not sticky: clear it */
		return cuda_fail(b->env, ISRF_ERR_NOMEM,
						 "out of GPU memory allocating %zu bytes (%zu bytes held by isrf)",
						 bytes, impl->allocs.bytes);
	}
	if (e != cudaSuccess)
		return cuda_rt_fail(b->env, "cudaMalloc", e);
	e = cudaMemsetAsync(p, 0, bytes, impl->stream);
	if (e != cudaSuccess)
	{
		cudaFree(p);
		return cuda_rt_fail(b->env, "cudaMemsetAsync", e);
	}
	cuda_alloc_put(&impl->allocs, p, bytes);
	impl->allocs.count++;
	impl->allocs.bytes += bytes;
	*out = p;
	return ISRF_OK;
}

void
cuda_dev_free(IsrfBackend *b, void *p)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		bytes;

	if (p == NULL)
		return;
	/* a pointer we never handed out is left alone rather than crash */
	if (!cuda_alloc_remove(&impl->allocs, p, &bytes))
		return;
	/* cudaFree waits for work still using p; a failure leaves nothing to do */
	(void) cudaFree(p);
}

/* ---------------------------------------------------------------------
 * Kernels
 * ------------------------------------------------------------------- */

/* y = alpha*x + beta*y, rounded like the CPU loop (no contraction to FMA) */
static __global__ void
cuda_axpby_kernel(size_t n, float alpha, const float *__restrict__ x,
				  float beta, float *__restrict__ y)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	if (beta == 0.0f)
		for (; i < n; i += step)
			y[i] = __fmul_rn(alpha, x[i]);
	else
		for (; i < n; i += step)
			y[i] = __fadd_rn(__fmul_rn(alpha, x[i]), __fmul_rn(beta, y[i]));
}

/* C[r, c] *= beta for a strided m x n block; beta == 0 writes zeros */
static __global__ void
cuda_scale2d_kernel(int m, int n, float beta, float *c, int ldc)
{
	size_t		total = (size_t) m * n;
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < total; i += step)
	{
		float	   *p = c + (i / n) * (size_t) ldc + (i % n);

		*p = (beta == 0.0f) ? 0.0f : __fmul_rn(beta, *p);
	}
}

/* One warp per row: scale to unit L2 norm, squares summed in double. */
static __global__ void
cuda_row_normalize_kernel(int m, int d, float *x)
{
	int			lane = threadIdx.x & 31;
	int64_t		r = (int64_t) blockIdx.x * CUDA_NORM_WARPS + (threadIdx.x >> 5);
	float	   *row;
	double		ss = 0.0;
	int			j;

	if (r >= m)
		return;					/* whole warps leave together */
	row = x + (size_t) r * d;
	for (j = lane; j < d; j += 32)
		ss += (double) row[j] * row[j];
	for (j = 16; j > 0; j >>= 1)
		ss += __shfl_xor_sync(0xffffffffu, ss, j);
	if (ss > 0.0)
	{
		float		inv = (float) (1.0 / sqrt(ss));

		for (j = lane; j < d; j += 32)
			row[j] *= inv;
	}
}

/*
 * Deterministic CSR x dense product, used only where cuSPARSE refuses its
 * deterministic algorithm: thread (r, j) sums row r in column order.
 */
static __global__ void
cuda_spmm_rows_kernel(int n_rows, int d, const int32_t *__restrict__ rowptr,
					  const int32_t *__restrict__ col,
					  const float *__restrict__ val, float alpha,
					  const float *__restrict__ x, float beta, float *y)
{
	size_t		total = (size_t) n_rows * d;
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < total; i += step)
	{
		size_t		r = i / d,
					j = i % d;
		float		acc = 0.0f;
		int32_t		p;

		for (p = rowptr[r]; p < rowptr[r + 1]; p++)
			acc = fmaf(val[p], x[(size_t) col[p] * d + j], acc);
		y[i] = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * y[i];
	}
}

/*
 * Row-wise top-k, one block per row (see the file header).  Dynamic shared
 * memory holds pow2 >= k (key, column) slots.
 */
static __global__ void
__launch_bounds__(CUDA_TOPK_THREADS)
cuda_topk_kernel(int n, const float *__restrict__ x, int ld, int k, int pow2,
				 bool exclude_diag, int64_t diag_offset,
				 int32_t *__restrict__ idx, float *__restrict__ val)
{
	extern __shared__ uint32_t topk_smem[];
	uint32_t   *skey = topk_smem;
	int32_t    *scol = (int32_t *) (topk_smem + pow2);
	__shared__ uint32_t hist[256];
	__shared__ uint32_t warp_cnt[CUDA_TOPK_THREADS / 32];
	__shared__ uint32_t s_prefix;
	__shared__ uint32_t s_remaining;
	__shared__ uint32_t s_total;
	__shared__ uint32_t s_gt_fill;
	const int	tid = threadIdx.x;
	const int	lane = tid & 31;
	const int	warp = tid >> 5;
	const int64_t r = blockIdx.x;
	const float *row = x + (size_t) r * ld;
	uint32_t	prefix = 0,
				mask = 0,
				remaining,
				total,
				taken;
	int			pass,
				i;

	for (i = tid; i < pow2; i += CUDA_TOPK_THREADS)
	{
		skey[i] = ISRF_HD_KEY_NONE;
		scol[i] = INT32_MAX;
	}

	/*
	 * Radix select, most significant byte first: find the key T of the k-th
	 * best candidate and how many candidates equal to T are still needed
	 * ("remaining") after all those strictly better than T.
	 */
	for (pass = 0; pass < 4; pass++)
	{
		int			shift = 24 - 8 * pass;
		int			c;

		for (i = tid; i < 256; i += CUDA_TOPK_THREADS)
			hist[i] = 0;
		__syncthreads();
		for (c = tid; c < n; c += CUDA_TOPK_THREADS)
		{
			float		v = row[c];
			uint32_t	key;

			if (!isrf_hd_topk_candidate(v, c, r, exclude_diag, diag_offset))
				continue;
			key = isrf_hd_float_key(v);
			if ((key & mask) == prefix)
				atomicAdd(&hist[(key >> shift) & 0xFFu], 1u);
		}
		__syncthreads();
		if (tid == 0)
		{
			if (pass == 0)
			{
				uint32_t	cnt = 0;

				for (i = 0; i < 256; i++)
					cnt += hist[i];
				s_total = cnt;
				/* everything fits: take all candidates, no threshold */
				s_remaining = (cnt <= (uint32_t) k) ? 0u : (uint32_t) k;
				s_prefix = 0;
			}
			if (s_remaining > 0)
			{
				uint32_t	need = s_remaining,
							acc = 0;
				int			dgt;

				/* invariant: the keys matching prefix number >= need */
				for (dgt = 255; dgt > 0; dgt--)
				{
					if (acc + hist[dgt] >= need)
						break;
					acc += hist[dgt];
				}
				s_remaining = need - acc;
				s_prefix = s_prefix | ((uint32_t) dgt << shift);
			}
			s_gt_fill = 0;
		}
		__syncthreads();
		remaining = s_remaining;
		if (remaining == 0)
			break;				/* uniform: every thread read the same value */
		prefix = s_prefix;
		mask |= 0xFFu << shift;
	}
	total = s_total;

	/*
	 * Gather: candidates strictly better than T anywhere (their slot order
	 * does not matter, the sort below fixes it), and the first "remaining"
	 * candidates equal to T in column order, ranked by a block scan.  With
	 * remaining == 0 there is no threshold and every candidate is better.
	 */
	{
		uint32_t	n_gt = (remaining == 0) ? total : (uint32_t) k - remaining;
		uint32_t	eq_base = 0;
		int			start;

		for (start = 0; start < n; start += CUDA_TOPK_THREADS)
		{
			int			c = start + tid;
			bool		cand = false,
						eq = false;
			uint32_t	key = ISRF_HD_KEY_NONE;
			uint32_t	ballot,
						before = 0,
						tile = 0;
			int			w;

			if (c < n)
			{
				float		v = row[c];

				cand = isrf_hd_topk_candidate(v, c, r, exclude_diag, diag_offset);
				if (cand)
					key = isrf_hd_float_key(v);
			}
			if (cand && (remaining == 0 || key > prefix))
			{
				uint32_t	slot = atomicAdd(&s_gt_fill, 1u);

				skey[slot] = key;
				scol[slot] = c;
			}
			eq = cand && remaining > 0 && key == prefix;
			ballot = __ballot_sync(0xffffffffu, eq);
			if (lane == 0)
				warp_cnt[warp] = __popc(ballot);
			__syncthreads();
			for (w = 0; w < CUDA_TOPK_THREADS / 32; w++)
			{
				if (w < warp)
					before += warp_cnt[w];
				tile += warp_cnt[w];
			}
			if (eq)
			{
				uint32_t	rank = eq_base + before +
					__popc(ballot & ((1u << lane) - 1u));

				if (rank < remaining)
				{
					skey[n_gt + rank] = key;
					scol[n_gt + rank] = c;
				}
			}
			eq_base += tile;
			__syncthreads();	/* warp_cnt is rewritten next tile */
		}
		taken = (remaining == 0) ? total : (uint32_t) k;
	}
	__syncthreads();

	/* Bitonic sort of the pow2 slots, best first; empty slots sort last. */
	{
		int			size,
					stride;

		for (size = 2; size <= pow2; size <<= 1)
			for (stride = size >> 1; stride > 0; stride >>= 1)
			{
				for (i = tid; i < pow2; i += CUDA_TOPK_THREADS)
				{
					int			j = i ^ stride;

					if (j > i)
					{
						uint32_t	ki = skey[i],
									kj = skey[j];
						int32_t		ci = scol[i],
									cj = scol[j];
						bool		swap = ((i & size) == 0)
							? isrf_hd_topk_before(kj, cj, ki, ci)
							: isrf_hd_topk_before(ki, ci, kj, cj);

						if (swap)
						{
							skey[i] = kj;
							skey[j] = ki;
							scol[i] = cj;
							scol[j] = ci;
						}
					}
				}
				__syncthreads();
			}
	}

	for (i = tid; i < k; i += CUDA_TOPK_THREADS)
	{
		size_t		o = (size_t) r * k + i;

		if ((uint32_t) i < taken)
		{
			int32_t		c = scol[i];

			idx[o] = c;
			val[o] = row[c];	/* the original value: -0.0 stays -0.0 */
		}
		else
		{
			idx[o] = -1;
			val[o] = -INFINITY;
		}
	}
}

/* ---------------------------------------------------------------------
 * Backend operations
 * ------------------------------------------------------------------- */

static IsrfStatus
cuda_mem_alloc(IsrfBackend *b, size_t bytes, void **out)
{
	return cuda_dev_alloc(b, bytes, out);
}

static void
cuda_mem_free(IsrfBackend *b, void *ptr)
{
	cuda_dev_free(b, ptr);
}

static IsrfStatus
cuda_upload(IsrfBackend *b, void *dst, const void *src, size_t bytes)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (bytes == 0)
		return ISRF_OK;
	CUDA_RT(b->env, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, impl->stream));
	/* the caller may reuse or free its host buffer as soon as we return */
	CUDA_RT(b->env, cudaStreamSynchronize(impl->stream));
	return ISRF_OK;
}

static IsrfStatus
cuda_download(IsrfBackend *b, void *dst, const void *src, size_t bytes)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (bytes == 0)
		return ISRF_OK;
	CUDA_RT(b->env, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, impl->stream));
	CUDA_RT(b->env, cudaStreamSynchronize(impl->stream));
	return ISRF_OK;
}

static IsrfStatus
cuda_sync(IsrfBackend *b)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	CUDA_RT(b->env, cudaStreamSynchronize(impl->stream));
	return ISRF_OK;
}

static IsrfStatus
cuda_describe(IsrfBackend *b, char *buf, size_t len)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	int			drv = 0,
				rt = 0,
				blas_v = 0,
				sparse_v = 0;
	size_t		free_b = 0,
				total_b = 0;

	CUDA_RT(b->env, cudaDriverGetVersion(&drv));
	CUDA_RT(b->env, cudaRuntimeGetVersion(&rt));
	CUDA_RT(b->env, cudaMemGetInfo(&free_b, &total_b));
	CUDA_BLAS(b->env, cublasGetVersion(impl->blas, &blas_v));
	CUDA_SPARSE(b->env, cusparseGetVersion(impl->sparse, &sparse_v));
	snprintf(buf, len,
			 "cuda: %s (sm_%d%d, %d SMs, %.1f GiB, %.1f GiB free), driver %d.%d, "
			 "runtime %d.%d, cuBLAS %d.%d.%d, cuSPARSE %d.%d.%d, top-k k<=%d",
			 impl->devname, impl->cc_major, impl->cc_minor, impl->sms,
			 total_b / 1073741824.0, free_b / 1073741824.0,
			 drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10,
			 blas_v / 10000, (blas_v / 100) % 100, blas_v % 100,
			 sparse_v / 1000, (sparse_v / 100) % 10, sparse_v % 100,
			 impl->topk_k_max);
	return ISRF_OK;
}

static IsrfStatus
cuda_gemm(IsrfBackend *b, bool trans_a, bool trans_b, int m, int n, int k,
		  float alpha, const float *a, int lda, const float *bm, int ldb,
		  float beta, float *c, int ldc)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	int			need_lda = trans_a ? m : k,
				need_ldb = trans_b ? k : n;

	if (m < 0 || n < 0 || k < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gemm: negative dimension (m=%d, n=%d, k=%d)", m, n, k);
	if (m == 0 || n == 0)
		return ISRF_OK;
	if (ldc < n)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gemm: ldc=%d is less than n=%d", ldc, n);
	if (k == 0 || alpha == 0.0f)
	{
		/* C = beta*C; cuBLAS would insist on leading dimensions of A and B */
		cuda_scale2d_kernel<<<cuda_ew_blocks((size_t) m * n, CUDA_EW_THREADS),
			CUDA_EW_THREADS, 0, impl->stream>>>(m, n, beta, c, ldc);
		CUDA_RT(b->env, cudaGetLastError());
		return ISRF_OK;
	}
	if (lda < need_lda || ldb < need_ldb)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gemm: leading dimension too small (lda=%d needs %d, ldb=%d needs %d)",
						 lda, need_lda, ldb, need_ldb);
	/* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
	CUDA_BLAS(b->env, cublasSgemm(impl->blas,
								  trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
								  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
								  n, m, k, &alpha, bm, ldb, a, lda,
								  &beta, c, ldc));
	return ISRF_OK;
}

/* Unlink and release one sparse matrix (descriptor, arrays, buffer). */
static void
cuda_csr_release(IsrfBackend *b, IsrfDevCsr *s)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (s->mat)
		(void) cusparseDestroySpMat(s->mat);
	cuda_dev_free(b, s->rowptr);
	cuda_dev_free(b, s->col);
	cuda_dev_free(b, s->val);
	cuda_dev_free(b, s->buf);
	if (s->prev)
		s->prev->next = s->next;
	else if (impl->csr_list == s)
		impl->csr_list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	cuda_host_free(b->env, s);
}

static IsrfStatus
cuda_csr_create(IsrfBackend *b, const IsrfCsr *host, IsrfDevCsr **out)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	IsrfDevCsr *s;
	IsrfStatus	st;
	int32_t		r,
				p;

	*out = NULL;
	if (host->n_rows < 0 || host->n_cols < 0 || host->nnz < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "csr_create: negative size (%d x %d, nnz %d)",
						 host->n_rows, host->n_cols, host->nnz);
	/* a bad index would fault inside cuSPARSE and poison the context */
	if (host->rowptr[0] != 0 || host->rowptr[host->n_rows] != host->nnz)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "csr_create: row pointers run from %d to %d, expected 0 to nnz=%d",
						 host->rowptr[0], host->rowptr[host->n_rows], host->nnz);
	for (r = 0; r < host->n_rows; r++)
	{
		if (host->rowptr[r + 1] < host->rowptr[r])
			return cuda_fail(b->env, ISRF_ERR_INVALID,
							 "csr_create: row pointers decrease at row %d", r);
		for (p = host->rowptr[r]; p < host->rowptr[r + 1]; p++)
			if (host->col[p] < 0 || host->col[p] >= host->n_cols)
				return cuda_fail(b->env, ISRF_ERR_INVALID,
								 "csr_create: column %d in row %d outside 0..%d",
								 host->col[p], r, host->n_cols - 1);
	}

	s = (IsrfDevCsr *) cuda_host_calloc(b->env, sizeof(IsrfDevCsr));
	if (s == NULL)
		return ISRF_ERR_NOMEM;
	s->n_rows = host->n_rows;
	s->n_cols = host->n_cols;
	s->nnz = host->nnz;
	s->next = impl->csr_list;
	if (impl->csr_list)
		impl->csr_list->prev = s;
	impl->csr_list = s;

	st = cuda_dev_alloc(b, sizeof(int32_t) * ((size_t) s->n_rows + 1), (void **) &s->rowptr);
	if (st == ISRF_OK)
		st = cuda_dev_alloc(b, sizeof(int32_t) * (size_t) s->nnz, (void **) &s->col);
	if (st == ISRF_OK)
		st = cuda_dev_alloc(b, sizeof(float) * (size_t) s->nnz, (void **) &s->val);
	if (st == ISRF_OK)
		st = cuda_upload(b, s->rowptr, host->rowptr, sizeof(int32_t) * ((size_t) s->n_rows + 1));
	if (st == ISRF_OK)
		st = cuda_upload(b, s->col, host->col, sizeof(int32_t) * (size_t) s->nnz);
	if (st == ISRF_OK)
		st = cuda_upload(b, s->val, host->val, sizeof(float) * (size_t) s->nnz);
	if (st == ISRF_OK && s->n_rows > 0 && s->n_cols > 0 && s->nnz > 0)
	{
		cusparseStatus_t ss;

		ss = cusparseCreateCsr(&s->mat, s->n_rows, s->n_cols, s->nnz,
							   s->rowptr, s->col, s->val,
							   CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
							   CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F);
		if (ss != CUSPARSE_STATUS_SUCCESS)
		{
			s->mat = NULL;
			st = cuda_sparse_fail(b->env, "cusparseCreateCsr", ss);
		}
	}
	if (st != ISRF_OK)
	{
		cuda_csr_release(b, s);
		return st;
	}
	*out = s;
	return ISRF_OK;
}

static void
cuda_csr_destroy(IsrfBackend *b, IsrfDevCsr *m)
{
	if (m)
		cuda_csr_release(b, m);
}

/* Y = alpha*S*X + beta*Y through cuSPARSE (ALG3) with the cached buffer. */
static IsrfStatus
cuda_spmm_cusparse(IsrfBackend *b, IsrfDevCsr *s, int d, float alpha,
				   const float *x, float beta, float *y, bool *refused)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	cusparseConstDnMatDescr_t mx = NULL;
	cusparseDnMatDescr_t my = NULL;
	cusparseStatus_t ss;
	size_t		need = 0;
	IsrfStatus	st = ISRF_OK;
	const char *what = "cusparseCreateConstDnMat";

	*refused = false;
	ss = cusparseCreateConstDnMat(&mx, s->n_cols, d, d, x, CUDA_R_32F, CUSPARSE_ORDER_ROW);
	if (ss == CUSPARSE_STATUS_SUCCESS)
	{
		what = "cusparseCreateDnMat";
		ss = cusparseCreateDnMat(&my, s->n_rows, d, d, y, CUDA_R_32F, CUSPARSE_ORDER_ROW);
	}
	if (ss == CUSPARSE_STATUS_SUCCESS)
	{
		what = "cusparseSpMM_bufferSize";
		ss = cusparseSpMM_bufferSize(impl->sparse, CUSPARSE_OPERATION_NON_TRANSPOSE,
									 CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, s->mat,
									 mx, &beta, my, CUDA_R_32F,
									 CUSPARSE_SPMM_CSR_ALG3, &need);
	}
	if (ss == CUSPARSE_STATUS_SUCCESS && (s->buf == NULL || need > s->buf_size))
	{
		cuda_dev_free(b, s->buf);
		s->buf = NULL;
		s->buf_size = 0;
		st = cuda_dev_alloc(b, need, &s->buf);
		if (st == ISRF_OK)
			s->buf_size = need;
	}
	if (ss == CUSPARSE_STATUS_SUCCESS && st == ISRF_OK)
	{
		what = "cusparseSpMM";
		ss = cusparseSpMM(impl->sparse, CUSPARSE_OPERATION_NON_TRANSPOSE,
						  CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, s->mat, mx,
						  &beta, my, CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG3, s->buf);
	}
	if (st == ISRF_OK && ss == CUSPARSE_STATUS_NOT_SUPPORTED)
		*refused = true;
	else if (st == ISRF_OK && ss != CUSPARSE_STATUS_SUCCESS)
		st = cuda_sparse_fail(b->env, what, ss);
	if (my)
		(void) cusparseDestroyDnMat(my);
	if (mx)
		(void) cusparseDestroyDnMat(mx);
	return st;
}

static IsrfStatus
cuda_spmm(IsrfBackend *b, const IsrfDevCsr *sc, int d, float alpha,
		  const float *x, float beta, float *y)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	IsrfDevCsr *s = (IsrfDevCsr *) sc;	/* the buffer cache is mutable state */

	if (d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID, "spmm: negative width %d", d);
	if (s->n_rows == 0 || d == 0)
		return ISRF_OK;
	if (beta == 0.0f)
	{
		/* like the CPU, beta == 0 ignores whatever Y held (NaN included) */
		CUDA_RT(b->env, cudaMemsetAsync(y, 0, sizeof(float) * (size_t) s->n_rows * d,
										impl->stream));
	}
	if (s->mat == NULL)
	{
		/* no entries: Y = beta*Y */
		if (beta != 0.0f)
		{
			cuda_scale2d_kernel<<<cuda_ew_blocks((size_t) s->n_rows * d, CUDA_EW_THREADS),
				CUDA_EW_THREADS, 0, impl->stream>>>(s->n_rows, d, beta, y, d);
			CUDA_RT(b->env, cudaGetLastError());
		}
		return ISRF_OK;
	}
	if (!s->use_fallback)
	{
		bool		refused;

		ISRF_TRY(cuda_spmm_cusparse(b, s, d, alpha, x, beta, y, &refused));
		if (!refused)
			return ISRF_OK;
		s->use_fallback = true;
	}
	cuda_spmm_rows_kernel<<<cuda_ew_blocks((size_t) s->n_rows * d, CUDA_SPMM_THREADS),
		CUDA_SPMM_THREADS, 0, impl->stream>>>(s->n_rows, d, s->rowptr, s->col, s->val,
											  alpha, x, beta, y);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

static IsrfStatus
cuda_axpby(IsrfBackend *b, size_t n, float alpha, const float *x, float beta,
		   float *y)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n == 0)
		return ISRF_OK;
	cuda_axpby_kernel<<<cuda_ew_blocks(n, CUDA_EW_THREADS), CUDA_EW_THREADS, 0,
		impl->stream>>>(n, alpha, x, beta, y);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

static IsrfStatus
cuda_row_normalize(IsrfBackend *b, int m, int d, float *x)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	unsigned int blocks;

	if (m < 0 || d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "row_normalize: negative shape (m=%d, d=%d)", m, d);
	if (m == 0 || d == 0)
		return ISRF_OK;
	blocks = (unsigned int) (((size_t) m + CUDA_NORM_WARPS - 1) / CUDA_NORM_WARPS);
	cuda_row_normalize_kernel<<<blocks, CUDA_NORM_WARPS * 32, 0, impl->stream>>>(m, d, x);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

static IsrfStatus
cuda_topk_rows(IsrfBackend *b, int m, int n, const float *x, int ld, int k,
			   bool exclude_diag, int64_t diag_offset, int32_t *idx, float *val)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	int			pow2 = 1;
	size_t		smem;

	if (m < 0 || n < 0 || k < 0 || ld < n)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "topk_rows: bad shape (m=%d, n=%d, ld=%d, k=%d)", m, n, ld, k);
	if (k > impl->topk_k_max)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "topk_rows: k=%d is more than the CUDA backend supports on this device (%d)",
						 k, impl->topk_k_max);
	if (m == 0 || k == 0)
		return ISRF_OK;
	while (pow2 < k)
		pow2 <<= 1;
	smem = (size_t) pow2 * (sizeof(uint32_t) + sizeof(int32_t));
	if (smem > 48 * 1024)
		CUDA_RT(b->env, cudaFuncSetAttribute(cuda_topk_kernel,
											 cudaFuncAttributeMaxDynamicSharedMemorySize,
											 (int) smem));
	cuda_topk_kernel<<<(unsigned int) m, CUDA_TOPK_THREADS, smem, impl->stream>>>
		(n, x, ld, k, pow2, exclude_diag, diag_offset, idx, val);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* ---------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------- */

/* Release everything the backend holds; safe on a half-built backend. */
static void
cuda_release_all(IsrfBackend *b)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	IsrfEnv    *env = b->env;
	size_t		i;

	if (impl == NULL)
	{
		cuda_host_free(env, b);
		return;
	}
	if (impl->stream)
		(void) cudaStreamSynchronize(impl->stream);
	while (impl->csr_list)
		cuda_csr_release(b, impl->csr_list);
	for (i = 0; i < impl->allocs.cap; i++)
		if (impl->allocs.keys[i])
			(void) cudaFree(impl->allocs.keys[i]);
	cuda_host_free(env, impl->allocs.keys);
	cuda_host_free(env, impl->allocs.sizes);
	if (impl->sparse)
		(void) cusparseDestroy(impl->sparse);
	if (impl->blas)
		(void) cublasDestroy(impl->blas);
	if (impl->stream)
		(void) cudaStreamDestroy(impl->stream);
	cuda_host_free(env, impl);
	cuda_host_free(env, b);
}

static void
cuda_destroy(IsrfBackend *b)
{
	if (b)
		cuda_release_all(b);
}

/* Device set-up; every failure here means "no usable device". */
static IsrfStatus
cuda_open_device(IsrfBackend *b)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	IsrfEnv    *env = b->env;
	cudaDeviceProp prop;
	cudaFuncAttributes fattr;
	cudaError_t e;
	cublasStatus_t bs;
	cusparseStatus_t ss;
	int			count = 0;
	size_t		avail;

	e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess)
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE, "no CUDA device: %s",
						 cudaGetErrorString(e));
	if (count == 0)
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE, "no CUDA device: none visible");
	impl->device = 0;
	if ((e = cudaSetDevice(impl->device)) != cudaSuccess ||
		(e = cudaFree(0)) != cudaSuccess ||		/* creates the context now */
		(e = cudaGetDeviceProperties(&prop, impl->device)) != cudaSuccess ||
		(e = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking)) != cudaSuccess ||
		(e = cudaFuncGetAttributes(&fattr, cuda_topk_kernel)) != cudaSuccess)
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE,
						 "CUDA device %d could not be initialised: %s",
						 impl->device, cudaGetErrorString(e));
	snprintf(impl->devname, sizeof(impl->devname), "%s", prop.name);
	impl->cc_major = prop.major;
	impl->cc_minor = prop.minor;
	impl->sms = prop.multiProcessorCount;
	impl->total_mem = prop.totalGlobalMem;

	/* largest power of two k whose (key, column) slots fit shared memory */
	avail = prop.sharedMemPerBlockOptin > fattr.sharedSizeBytes
		? prop.sharedMemPerBlockOptin - fattr.sharedSizeBytes : 0;
	impl->topk_k_max = 1;
	while ((size_t) impl->topk_k_max * 2 * 8 <= avail && impl->topk_k_max < (1 << 20))
		impl->topk_k_max *= 2;
	impl->topk_smem_max = avail;

	if ((bs = cublasCreate(&impl->blas)) != CUBLAS_STATUS_SUCCESS)
	{
		impl->blas = NULL;
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE, "cuBLAS could not be initialised: %s",
						 cublasGetStatusString(bs));
	}
	if ((bs = cublasSetStream(impl->blas, impl->stream)) != CUBLAS_STATUS_SUCCESS ||
		(bs = cublasSetMathMode(impl->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS ||
		(bs = cublasSetAtomicsMode(impl->blas, CUBLAS_ATOMICS_NOT_ALLOWED)) != CUBLAS_STATUS_SUCCESS ||
		(bs = cublasSetPointerMode(impl->blas, CUBLAS_POINTER_MODE_HOST)) != CUBLAS_STATUS_SUCCESS)
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE, "cuBLAS could not be configured: %s",
						 cublasGetStatusString(bs));
	if ((ss = cusparseCreate(&impl->sparse)) != CUSPARSE_STATUS_SUCCESS)
	{
		impl->sparse = NULL;
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE, "cuSPARSE could not be initialised: %s",
						 cusparseGetErrorString(ss));
	}
	if ((ss = cusparseSetStream(impl->sparse, impl->stream)) != CUSPARSE_STATUS_SUCCESS ||
		(ss = cusparseSetPointerMode(impl->sparse, CUSPARSE_POINTER_MODE_HOST)) != CUSPARSE_STATUS_SUCCESS)
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE, "cuSPARSE could not be configured: %s",
						 cusparseGetErrorString(ss));
	return ISRF_OK;
}

extern "C" __attribute__((visibility("default"))) IsrfStatus
isrf_cuda_backend_create(IsrfEnv *env, int abi, IsrfBackend **out)
{
	IsrfBackend *b;
	CudaImpl   *impl;
	IsrfStatus	st;

	*out = NULL;
	if (abi != ISRF_BACKEND_ABI)
		return cuda_fail(env, ISRF_ERR_UNAVAILABLE,
						 "CUDA backend library was built for backend ABI %d, the engine uses %d",
						 ISRF_BACKEND_ABI, abi);
	b = (IsrfBackend *) cuda_host_calloc(env, sizeof(IsrfBackend));
	if (b == NULL)
		return ISRF_ERR_NOMEM;
	impl = (CudaImpl *) cuda_host_calloc(env, sizeof(CudaImpl));
	if (impl == NULL)
	{
		cuda_host_free(env, b);
		return ISRF_ERR_NOMEM;
	}
	b->abi = ISRF_BACKEND_ABI;
	b->name = "cuda";
	b->env = env;
	b->impl = impl;
	st = cuda_open_device(b);
	if (st != ISRF_OK)
	{
		cuda_release_all(b);
		return st;
	}
	b->destroy = cuda_destroy;
	b->describe = cuda_describe;
	b->mem_alloc = cuda_mem_alloc;
	b->mem_free = cuda_mem_free;
	b->upload = cuda_upload;
	b->download = cuda_download;
	b->sync = cuda_sync;
	b->gemm = cuda_gemm;
	b->csr_create = cuda_csr_create;
	b->csr_destroy = cuda_csr_destroy;
	b->spmm = cuda_spmm;
	b->axpby = cuda_axpby;
	b->row_normalize = cuda_row_normalize;
	b->topk_rows = cuda_topk_rows;
	cuda_nn_install(b);
	*out = b;
	return ISRF_OK;
}
