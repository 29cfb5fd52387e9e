/*
 * cuda_nn_elementwise.cu
 *	  The element-wise operations of the backend table on the GPU: mem_zero
 *	  and copy on the stream, rows_set, add, GELU forward and backward (with
 *	  the CPU's own polynomial tanh), dropout (a counter-based mask, so
 *	  backward needs nothing stored), mask_rows and gather_rows.
 *
 * Every product and sum is spelled with __fmul_rn/__fadd_rn/... in the
 * order the CPU source evaluates it, so that each result is bitwise the CPU
 * backend's (see cuda_nn.cu).  The kernels are grid-stride loops.
 */
#include <math.h>
#include <stdint.h>

#include "cuda_nn_internal.h"

#define CUDA_NN_GOLDEN 0x9E3779B97F4A7C15ULL
#define CUDA_NN_GELU_K 0.7978845608028654f	/* sqrt(2 / pi) */
#define CUDA_NN_GELU_C 0.044715f
#define CUDA_NN_EXP_SHIFTER 12582912.0f /* 1.5 * 2^23 */
#define CUDA_NN_EXP_LOWEST 0xC2AE0000u	/* bits of -87.0f */

/* ---------------------------------------------------------------------
 * Device helpers
 * ------------------------------------------------------------------- */

/* splitmix64 finaliser, the same as isrf_nn_hash64 (dropout masks). */
static __device__ __forceinline__ uint64_t
cuda_nn_hash64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/*
 * The CPU's GELU tanh (nn_tanh1), operation for operation with explicit
 * rounding, so that GPU and CPU give the same bits: tanh(u) = sign(u)
 * (1 - e) / (1 + e), e = exp(-2|u|), exp by the 1.5 * 2^23 rounding trick,
 * a Cody-Waite split of ln 2 and a degree-6 polynomial.
 */
static __device__ __forceinline__ float
cuda_nn_tanh(float u)
{
	uint32_t	ub = __float_as_uint(u);
	uint32_t	sign = ub & 0x80000000u;
	uint32_t	xb,
				tb;
	float		x,
				t,
				k,
				r,
				p,
				e,
				res;
	int32_t		ki;

	x = __fmul_rn(__uint_as_float(ub & 0x7fffffffu), -2.0f);
	/* x <= 0, so a larger bit pattern is a more negative number */
	xb = __float_as_uint(x);
	xb = xb < CUDA_NN_EXP_LOWEST ? xb : CUDA_NN_EXP_LOWEST;
	x = __uint_as_float(xb);
	t = __fadd_rn(__fmul_rn(x, 1.44269504f), CUDA_NN_EXP_SHIFTER);
	k = __fsub_rn(t, CUDA_NN_EXP_SHIFTER);
	ki = (int32_t) (__float_as_uint(t) - 0x4B400000u);
	r = __fsub_rn(x, __fmul_rn(k, 0.693145752f));
	r = __fsub_rn(r, __fmul_rn(k, 1.42860677e-6f));
	/* Horner, innermost first, as NN_EXP_POLY nests it */
	p = __fadd_rn(0.00833336543f, __fmul_rn(r, 0.00138882315f));
	p = __fadd_rn(0.0416666418f, __fmul_rn(r, p));
	p = __fadd_rn(0.166666672f, __fmul_rn(r, p));
	p = __fadd_rn(0.5f, __fmul_rn(r, p));
	p = __fadd_rn(1.0f, __fmul_rn(r, p));
	p = __fadd_rn(1.0f, __fmul_rn(r, p));
	tb = (uint32_t) (ki + 127) << 23;
	e = __fmul_rn(p, __uint_as_float(tb));
	res = __fdiv_rn(__fsub_rn(1.0f, e), __fadd_rn(1.0f, e));
	return __uint_as_float(__float_as_uint(res) | sign);
}

/* u = K (x + C x^3), grouped as the CPU source groups it */
static __device__ __forceinline__ float
cuda_nn_gelu_arg(float x)
{
	float		c3 = __fmul_rn(__fmul_rn(__fmul_rn(CUDA_NN_GELU_C, x), x), x);

	return __fmul_rn(CUDA_NN_GELU_K, __fadd_rn(x, c3));
}

/* ---------------------------------------------------------------------
 * Element-wise kernels (grid-stride loops)
 * ------------------------------------------------------------------- */

static __global__ void
cuda_nn_rows_set_kernel(float *y, const float *row, size_t total, int d)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < total; i += step)
		y[i] = row[i % d];
}

/* out may alias a or bv: no __restrict__ */
static __global__ void
cuda_nn_add_kernel(size_t n, const float *a, const float *bv, float *out)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < n; i += step)
		out[i] = __fadd_rn(a[i], bv[i]);
}

static __global__ void
cuda_nn_gelu_forward_kernel(float *out, const float *x, size_t n)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < n; i += step)
	{
		float		xi = x[i];
		float		th = cuda_nn_tanh(cuda_nn_gelu_arg(xi));

		out[i] = __fmul_rn(__fmul_rn(0.5f, xi), __fadd_rn(1.0f, th));
	}
}

static __global__ void
cuda_nn_gelu_backward_kernel(float *dx, const float *x, const float *dout, size_t n)
{
	const float c3 = __fmul_rn(3.0f, CUDA_NN_GELU_C);
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < n; i += step)
	{
		float		xi = x[i];
		float		th = cuda_nn_tanh(cuda_nn_gelu_arg(xi));
		float		du = __fmul_rn(CUDA_NN_GELU_K,
								   __fadd_rn(1.0f, __fmul_rn(__fmul_rn(c3, xi), xi)));
		float		g = __fadd_rn(__fmul_rn(0.5f, __fadd_rn(1.0f, th)),
								  __fmul_rn(__fmul_rn(__fmul_rn(0.5f, xi),
													  __fsub_rn(1.0f, __fmul_rn(th, th))),
											du));

		dx[i] = __fadd_rn(dx[i], __fmul_rn(g, dout[i]));
	}
}

/* forward (accumulate false): out = keep ? x * scale : 0, out may alias x;
 * backward (accumulate true): out += keep ? x * scale : 0 */
static __global__ void
cuda_nn_dropout_kernel(float *out, const float *x, size_t n, uint32_t thr,
					   float scale, uint64_t seed, bool accumulate)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < n; i += step)
	{
		bool		keep = (uint32_t) (cuda_nn_hash64(seed + CUDA_NN_GOLDEN * ((uint64_t) i + 1)) >> 40) >= thr;

		if (!accumulate)
			out[i] = keep ? __fmul_rn(x[i], scale) : 0.0f;
		else if (keep)
			out[i] = __fadd_rn(out[i], __fmul_rn(x[i], scale));
	}
}

static __global__ void
cuda_nn_mask_rows_kernel(float *x, const uint8_t *valid, size_t total, int d)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < total; i += step)
		if (valid[i / d] == 0)
			x[i] = 0.0f;
}

static __global__ void
cuda_nn_gather_rows_kernel(float *out, const int32_t *ids, const float *table,
						   size_t total, int d, bool accumulate)
{
	size_t		i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; i < total; i += step)
	{
		int32_t		id = ids[i / d];

		if (id < 0)
		{
			if (!accumulate)
				out[i] = 0.0f;
		}
		else
		{
			float		t = table[(size_t) id * d + i % d];

			out[i] = accumulate ? __fadd_rn(out[i], t) : t;
		}
	}
}

/* ---------------------------------------------------------------------
 * Host side
 * ------------------------------------------------------------------- */

/* memset on the stream: the cheapest way to clear gradients in place */
static IsrfStatus
cuda_nn_mem_zero(IsrfBackend *b, void *ptr, size_t bytes)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (bytes == 0)
		return ISRF_OK;
	CUDA_RT(b->env, cudaMemsetAsync(ptr, 0, bytes, impl->stream));
	return ISRF_OK;
}

/* stream-ordered device copy, so it needs no synchronisation */
static IsrfStatus
cuda_nn_copy(IsrfBackend *b, void *dst, const void *src, size_t bytes)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (bytes == 0 || dst == src)
		return ISRF_OK;
	CUDA_RT(b->env, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
									impl->stream));
	return ISRF_OK;
}

/* bias rows before a linear layer's gemm accumulates onto them */
static IsrfStatus
cuda_nn_rows_set(IsrfBackend *b, float *y, const float *row, int n, int d)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		total = (size_t) n * d;

	if (n < 0 || d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "rows_set: negative shape (n=%d, d=%d)", n, d);
	if (total == 0)
		return ISRF_OK;
	cuda_nn_rows_set_kernel<<<cuda_ew_blocks(total, CUDA_EW_THREADS),
		CUDA_EW_THREADS, 0, impl->stream>>>(y, row, total, d);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* residual connections and gradient sums; rounded like the CPU */
static IsrfStatus
cuda_nn_add(IsrfBackend *b, size_t n, const float *a, const float *bv, float *out)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n == 0)
		return ISRF_OK;
	cuda_nn_add_kernel<<<cuda_ew_blocks(n, CUDA_EW_THREADS), CUDA_EW_THREADS, 0,
		impl->stream>>>(n, a, bv, out);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* GELU with the CPU's own tanh, so both backends give the same bits */
static IsrfStatus
cuda_nn_gelu_forward(IsrfBackend *b, float *out, const float *x, size_t n)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n == 0)
		return ISRF_OK;
	cuda_nn_gelu_forward_kernel<<<cuda_ew_blocks(n, CUDA_EW_THREADS), CUDA_EW_THREADS,
		0, impl->stream>>>(out, x, n);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

static IsrfStatus
cuda_nn_gelu_backward(IsrfBackend *b, float *dx, const float *x,
					  const float *dout, size_t n)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n == 0)
		return ISRF_OK;
	cuda_nn_gelu_backward_kernel<<<cuda_ew_blocks(n, CUDA_EW_THREADS), CUDA_EW_THREADS,
		0, impl->stream>>>(dx, x, dout, n);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/*
 * Dropout threshold and scale are computed here in the CPU's float/double
 * arithmetic; the kernel regenerates the counter-based mask, so backward
 * needs nothing stored.
 */
static IsrfStatus
cuda_nn_dropout(IsrfBackend *b, const char *what, float *out, const float *x,
				size_t n, float p, uint64_t seed, bool accumulate)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	uint32_t	thr;
	float		scale;

	if (!(p >= 0.0f && p < 1.0f))
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "%s: probability %g is outside [0, 1)", what, (double) p);
	if (n == 0)
		return ISRF_OK;
	if (p == 0.0f)
	{
		if (accumulate)
			return cuda_nn_add(b, n, out, x, out);
		if (out != x)
			return cuda_nn_copy(b, out, x, sizeof(float) * n);
		return ISRF_OK;
	}
	thr = (uint32_t) ((double) p * 16777216.0);
	scale = 1.0f / (1.0f - p);
	cuda_nn_dropout_kernel<<<cuda_ew_blocks(n, CUDA_EW_THREADS), CUDA_EW_THREADS, 0,
		impl->stream>>>(out, x, n, thr, scale, seed, accumulate);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

static IsrfStatus
cuda_nn_dropout_forward(IsrfBackend *b, float *out, const float *x, size_t n,
						float p, uint64_t seed)
{
	return cuda_nn_dropout(b, "dropout_forward", out, x, n, p, seed, false);
}

static IsrfStatus
cuda_nn_dropout_backward(IsrfBackend *b, float *dx, const float *dout, size_t n,
						 float p, uint64_t seed)
{
	return cuda_nn_dropout(b, "dropout_backward", dx, dout, n, p, seed, true);
}

/* zero the rows of padding positions */
static IsrfStatus
cuda_nn_mask_rows(IsrfBackend *b, float *x, const uint8_t *valid, int n, int d)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		total = (size_t) n * d;

	if (n < 0 || d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "mask_rows: negative shape (n=%d, d=%d)", n, d);
	if (total == 0)
		return ISRF_OK;
	cuda_nn_mask_rows_kernel<<<cuda_ew_blocks(total, CUDA_EW_THREADS), CUDA_EW_THREADS,
		0, impl->stream>>>(x, valid, total, d);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* embedding lookup; ids were validated by the caller */
static IsrfStatus
cuda_nn_gather_rows(IsrfBackend *b, float *out, const int32_t *ids, int n,
					const float *table, int d, bool accumulate)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		total = (size_t) n * d;

	if (n < 0 || d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "gather_rows: negative shape (n=%d, d=%d)", n, d);
	if (total == 0)
		return ISRF_OK;
	cuda_nn_gather_rows_kernel<<<cuda_ew_blocks(total, CUDA_EW_THREADS), CUDA_EW_THREADS,
		0, impl->stream>>>(out, ids, table, total, d, accumulate);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* The element-wise operations into the table (cuda_nn_install). */
void
cuda_nn_install_elementwise(IsrfBackend *b)
{
	b->mem_zero = cuda_nn_mem_zero;
	b->copy = cuda_nn_copy;
	b->rows_set = cuda_nn_rows_set;
	b->add = cuda_nn_add;
	b->gelu_forward = cuda_nn_gelu_forward;
	b->gelu_backward = cuda_nn_gelu_backward;
	b->dropout_forward = cuda_nn_dropout_forward;
	b->dropout_backward = cuda_nn_dropout_backward;
	b->mask_rows = cuda_nn_mask_rows;
	b->gather_rows = cuda_nn_gather_rows;
}
