/*
 * backend.h
 *	  The compute backend interface: a table of function pointers that the
 *	  engine calls for every heavy operation.
 *
 * Two implementations exist: the CPU backend (cpu_backend.c, OpenBLAS plus
 * plain loops; it is the reference) and the CUDA backend (cuda/, cuBLAS,
 * cuSPARSE and kernels, built into a separate shared library that is loaded
 * with dlopen only where a GPU is used).  Pointers passed to the operations
 * are backend memory (from mem_alloc); on the CPU backend that is host memory.
 *
 * Dense matrices are row-major with an explicit leading dimension.  Every
 * operation returns an IsrfStatus and records failures in b->env.
 */
#ifndef ISRF_BACKEND_H
#define ISRF_BACKEND_H

#include "csr.h"

/* Bumped whenever the table below changes shape. */
#define ISRF_BACKEND_ABI 1

/* Entry point that the CUDA library exports (see cuda/). */
#define ISRF_CUDA_ENTRY "isrf_cuda_backend_create"

typedef enum IsrfDevicePref
{
	ISRF_DEVICE_AUTO = 0,		/* CUDA where a device answers, else CPU */
	ISRF_DEVICE_CPU,
	ISRF_DEVICE_CUDA
} IsrfDevicePref;

typedef struct IsrfBackend IsrfBackend;
typedef struct IsrfDevCsr IsrfDevCsr;	/* opaque, backend-owned */

struct IsrfBackend
{
	int			abi;			/* ISRF_BACKEND_ABI */
	const char *name;			/* "cpu" or "cuda" */
	IsrfEnv    *env;
	void	   *impl;			/* backend private state */

	/* Releases every allocation the backend still holds, then itself. */
	void		(*destroy) (IsrfBackend *b);

	/* One line for humans: device name, memory, library versions. */
	IsrfStatus	(*describe) (IsrfBackend *b, char *buf, size_t len);

	/* Backend memory.  mem_alloc zero-fills. */
	IsrfStatus	(*mem_alloc) (IsrfBackend *b, size_t bytes, void **out);
	void		(*mem_free) (IsrfBackend *b, void *ptr);
	IsrfStatus	(*upload) (IsrfBackend *b, void *dst, const void *src, size_t bytes);
	IsrfStatus	(*download) (IsrfBackend *b, void *dst, const void *src, size_t bytes);
	IsrfStatus	(*sync) (IsrfBackend *b);

	/* C[m,n] = alpha * op(A) * op(B) + beta * C */
	IsrfStatus	(*gemm) (IsrfBackend *b, bool trans_a, bool trans_b,
						 int m, int n, int k, float alpha,
						 const float *a, int lda, const float *bm, int ldb,
						 float beta, float *c, int ldc);

	/* Sparse matrices live on the backend once created from a host CSR. */
	IsrfStatus	(*csr_create) (IsrfBackend *b, const IsrfCsr *host, IsrfDevCsr **out);
	void		(*csr_destroy) (IsrfBackend *b, IsrfDevCsr *m);

	/* Y[n_rows,d] = alpha * S * X[n_cols,d] + beta * Y (contiguous, ld = d) */
	IsrfStatus	(*spmm) (IsrfBackend *b, const IsrfDevCsr *s, int d, float alpha,
						 const float *x, float beta, float *y);

	/* y[i] = alpha * x[i] + beta * y[i], i < n */
	IsrfStatus	(*axpby) (IsrfBackend *b, size_t n, float alpha, const float *x,
						  float beta, float *y);

	/* Scale each row of X[m,d] (contiguous) to unit L2 norm; zero rows stay zero. */
	IsrfStatus	(*row_normalize) (IsrfBackend *b, int m, int d, float *x);

	/*
	 * Row-wise top-k of X[m,n] (leading dimension ld): for each row the k
	 * largest values, descending, ties broken by the lower column.  When
	 * exclude_diag, column (row + diag_offset) is skipped, so a block of rows
	 * starting at global row r0 excludes itself with diag_offset = r0.  NaN
	 * never wins.  Rows with fewer than k candidates pad with idx -1 and val
	 * -INFINITY.  idx and val are backend memory of m*k entries.
	 */
	IsrfStatus	(*topk_rows) (IsrfBackend *b, int m, int n, const float *x, int ld,
							  int k, bool exclude_diag, int64_t diag_offset,
							  int32_t *idx, float *val);
};

/* Signature of ISRF_CUDA_ENTRY in the CUDA library. */
typedef IsrfStatus (*IsrfCudaEntry) (IsrfEnv *env, int abi, IsrfBackend **out);

/* Threads of the CPU backend's BLAS (no effect without OpenBLAS). */
void		isrf_cpu_set_threads(int n);

/* The CPU backend; fails only when memory runs out. */
IsrfStatus	isrf_cpu_backend_create(IsrfEnv *env, IsrfBackend **out);

/*
 * Open a backend by preference.  cuda_library is the path of the CUDA
 * backend's shared library.  AUTO falls back to the CPU quietly (the reason
 * goes to env->log); CUDA fails with ISRF_ERR_UNAVAILABLE when no device
 * answers.
 */
IsrfStatus	isrf_backend_open(IsrfEnv *env, IsrfDevicePref pref,
							  const char *cuda_library, IsrfBackend **out);

/* Destroy a backend; NULL is ignored. */
void		isrf_backend_close(IsrfBackend *b);

/* "auto" / "cpu" / "cuda" -> pref; false on anything else. */
bool		isrf_device_pref_parse(const char *s, IsrfDevicePref *out);

/*
 * Run fn(arg) with every signal blocked in the calling thread, so that any
 * thread the callee starts (BLAS pools, CUDA) inherits a full mask and
 * signals keep going to the main thread only.
 */
IsrfStatus	isrf_with_signals_blocked(IsrfStatus (*fn) (void *arg), void *arg);

/*
 * Plain CPU reference for the row-wise top-k contract above, on host
 * memory; the CPU backend uses it and parity tests compare against it.
 */
void		isrf_topk_rows_ref(int m, int n, const float *x, int ld, int k,
							   bool exclude_diag, int64_t diag_offset,
							   int32_t *idx, float *val);

#endif							/* ISRF_BACKEND_H */
