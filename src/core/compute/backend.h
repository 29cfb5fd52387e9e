/*
 * compute/backend.h
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

#include "base/csr.h"

/* Bumped whenever the table below changes shape. */
#define ISRF_BACKEND_ABI 2

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

	/*
	 * ---- neural-network operations (ABI 2) ----
	 *
	 * The layers of nn.h and the transformer run entirely on these, so that
	 * their tensors never leave the device.  The CPU backend's versions
	 * (cpu_nn.c) are the reference: plain loops in a fixed order.  Every
	 * operation is deterministic on every backend: a reduction sums in a
	 * fixed order (no floating-point atomics), so two runs on one device
	 * give bitwise the same result.  "Accumulates" means +=.  Index arrays
	 * (ids, targets, valid, masks) are backend memory like the floats; the
	 * caller validates indices on the host before uploading them.
	 */

	/* ptr[0 .. bytes) = 0 */
	IsrfStatus	(*mem_zero) (IsrfBackend *b, void *ptr, size_t bytes);

	/* dst = src within backend memory (regions do not overlap) */
	IsrfStatus	(*copy) (IsrfBackend *b, void *dst, const void *src, size_t bytes);

	/*
	 * A grid of n_outer x n_inner independent products: for o < n_outer,
	 * i < n_inner, C_oi = alpha op(A_oi) op(B_oi) + beta C_oi, where
	 * A_oi = a + o * sa_outer + i * sa_inner (strides in floats), likewise
	 * B and C; shapes and leading dimensions as in gemm.  Attention uses it
	 * with o = sequence and i = head.
	 */
	IsrfStatus	(*gemm_batched) (IsrfBackend *b, bool trans_a, bool trans_b,
								 int m, int n, int k, float alpha,
								 const float *a, int lda, size_t sa_outer, size_t sa_inner,
								 const float *bm, int ldb, size_t sb_outer, size_t sb_inner,
								 float beta, float *c, int ldc, size_t sc_outer, size_t sc_inner,
								 int n_outer, int n_inner);

	/* y[i,:] = row[:] for i < n (the bias before a linear layer's gemm) */
	IsrfStatus	(*rows_set) (IsrfBackend *b, float *y, const float *row, int n, int d);

	/* acc[j] += sum_i x[i,j], i ascending (a linear layer's bias gradient) */
	IsrfStatus	(*colsum_acc) (IsrfBackend *b, float *acc, const float *x, int n, int d);

	/* out[i] = a[i] + b[i]; out may alias a or b */
	IsrfStatus	(*add) (IsrfBackend *b, size_t n, const float *a, const float *bv, float *out);

	/*
	 * LayerNorm over rows of x[n,c]: out = (x - mean) * rstd * w + bias,
	 * rstd = 1 / sqrt(var + ISRF_NN_LN_EPS) (biased variance); mean[n] and
	 * rstd[n] are written for backward.  out does not alias x.
	 */
	IsrfStatus	(*layernorm_forward) (IsrfBackend *b, float *out, float *mean, float *rstd,
									  const float *x, const float *w, const float *bias,
									  int n, int c);

	/*
	 * Gradient of the above given dout: accumulates into dx[n,c], dw[c] and
	 * db[c]; any of the three may be NULL.  dw / db sum over rows in
	 * ascending order.
	 */
	IsrfStatus	(*layernorm_backward) (IsrfBackend *b, float *dx, float *dw, float *db,
									   const float *dout, const float *x, const float *w,
									   const float *mean, const float *rstd, int n, int c);

	/* out[i] = gelu(x[i]), tanh approximation; out may alias x */
	IsrfStatus	(*gelu_forward) (IsrfBackend *b, float *out, const float *x, size_t n);

	/* dx[i] += gelu'(x[i]) * dout[i] */
	IsrfStatus	(*gelu_backward) (IsrfBackend *b, float *dx, const float *x,
								  const float *dout, size_t n);

	/*
	 * Inverted dropout with the counter-based mask of nn.h: element i is
	 * kept when (isrf_nn_hash64(seed + 0x9E3779B97F4A7C15 * (i + 1)) >> 40)
	 * >= (uint32) (p * 2^24), kept elements are scaled by 1 / (1 - p).
	 * forward: out[i] = keep ? x[i] * scale : 0 (out may alias x; p == 0
	 * copies).  backward: dx[i] += keep ? dout[i] * scale : 0 (p == 0 adds
	 * dout).  0 <= p < 1.
	 */
	IsrfStatus	(*dropout_forward) (IsrfBackend *b, float *out, const float *x, size_t n,
									float p, uint64_t seed);
	IsrfStatus	(*dropout_backward) (IsrfBackend *b, float *dx, const float *dout, size_t n,
									 float p, uint64_t seed);

	/*
	 * Masked causal softmax of attention scores, in place: s holds
	 * n_seq x n_heads matrices of t x t (row = query, column = key); valid
	 * [n_seq, t] (NULL: all valid) marks real tokens.  Row r of sequence q
	 * becomes softmax over the keys j <= r with valid[q, j]; every other
	 * entry, and the whole row when valid[q, r] == 0, becomes 0.
	 */
	IsrfStatus	(*attn_softmax_forward) (IsrfBackend *b, float *s, const uint8_t *valid,
										 int n_seq, int n_heads, int t);

	/*
	 * Its gradient, in place: given the probabilities p and ds = dL/dP for
	 * n_mat matrices of t x t, ds[r, j] = p[r, j] (ds[r, j] - sum_{j' <= r}
	 * p[r, j'] ds[r, j']) for j <= r, and 0 for j > r.
	 */
	IsrfStatus	(*attn_softmax_backward) (IsrfBackend *b, float *ds, const float *p,
										  int n_mat, int t);

	/*
	 * Softmax cross-entropy of rows of logits[n, v] (leading dimension ld)
	 * against targets[n] (< v; negative: ignored).  row_loss[n] gets
	 * logsumexp(row) - row[target] as a float (0 for ignored rows).  When
	 * dlogits (leading dimension ld, may alias logits) is not NULL it is
	 * WRITTEN with grad_scale * (softmax(row) - onehot(target)), computed as
	 * e_j = exp(l_j - max), e_j * (grad_scale / sum_j e_j), then grad_scale
	 * subtracted at the target; ignored rows get 0.
	 */
	IsrfStatus	(*softmax_ce) (IsrfBackend *b, const float *logits, int ld,
							   const int32_t *targets, int n, int v, float grad_scale,
							   float *row_loss, float *dlogits);

	/*
	 * out[i,:] = (accumulate ? out[i,:] : 0) + table[ids[i],:] for i < n;
	 * a negative id contributes nothing (a zero row when not accumulating).
	 */
	IsrfStatus	(*gather_rows) (IsrfBackend *b, float *out, const int32_t *ids, int n,
								const float *table, int d, bool accumulate);

	/*
	 * table[ids[i],:] += src[i,:] for i < n with ids[i] >= 0.  Each row of
	 * table receives its contributions in ascending i, as the plain loop
	 * does, so the result is deterministic.
	 */
	IsrfStatus	(*scatter_add_rows) (IsrfBackend *b, float *table, const int32_t *ids,
									 int n, const float *src, int d);

	/* x[i,:] = 0 for every row i < n with valid[i] == 0 */
	IsrfStatus	(*mask_rows) (IsrfBackend *b, float *x, const uint8_t *valid, int n, int d);

	/*
	 * One AdamW update of n parameters: m = b1 m + (1 - b1) g,
	 * v = b2 v + (1 - b2) g^2, p -= lr * wd * p where decay (NULL: all) is
	 * non-zero, then p -= lr * (m * c1) / (sqrt(v * c2) + eps), with the
	 * bias corrections c1 = 1 / (1 - b1^t), c2 = 1 / (1 - b2^t) given.
	 */
	IsrfStatus	(*adamw_step) (IsrfBackend *b, float *params, const float *grads,
							   float *m, float *v, const uint8_t *decay, size_t n,
							   float lr, float b1, float b2, float eps, float wd,
							   float c1, float c2);

	/* *out (host) = sum_i x[i]^2 in double, in a fixed order */
	IsrfStatus	(*sumsq) (IsrfBackend *b, const float *x, size_t n, double *out);
};

/* Signature of ISRF_CUDA_ENTRY in the CUDA library. */
typedef IsrfStatus (*IsrfCudaEntry) (IsrfEnv *env, int abi, IsrfBackend **out);

/* Threads of the CPU backend's BLAS (no effect without OpenBLAS). */
void		isrf_cpu_set_threads(int n);

/* Fill the neural-network operations of a CPU backend's table (cpu_nn.c). */
void		isrf_cpu_nn_install(IsrfBackend *be);

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
