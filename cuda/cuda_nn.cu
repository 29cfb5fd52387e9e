/*
 * cuda_nn.cu
 *	  The neural-network operations of the backend table (ABI 2) on the GPU:
 *	  the kernels behind LayerNorm, GELU, dropout, the attention softmax,
 *	  softmax cross-entropy, embedding gather/scatter, AdamW and the rest, so
 *	  that the transformer's tensors never leave the device.
 *
 * The CPU backend's plain loops are the reference; this file follows them
 * operation by operation.  What the two backends are expected to share:
 *
 *  - Element-wise arithmetic (add, GELU with its own polynomial tanh,
 *    dropout, AdamW, the per-element parts of LayerNorm and the softmaxes)
 *    spells every product and sum with __fmul_rn/__fadd_rn/..., in the
 *    order the C source evaluates it, so that nvcc never contracts a pair
 *    into an FMA the CPU (plain x86-64, no FMA) does not use.  Where no
 *    reduction and no libm call is involved the result is bitwise the CPU's.
 *  - expf/logf are CUDA's (within 2 ulp), not glibc's: the softmaxes and the
 *    cross-entropy loss differ from the CPU at the level of rounding.
 *  - Reductions run in a fixed order that does not depend on timing, the
 *    device or the launch: per-lane strided partials combined by a shuffle
 *    butterfly (whose result is the same in every lane, as float addition
 *    is commutative), then warp partials summed in warp order.  No
 *    floating-point atomics anywhere, so two runs on one device agree
 *    bitwise.  The order differs from the CPU's single sequential loop, so
 *    row statistics match the CPU to rounding only.
 *  - Column sums (colsum_acc, LayerNorm dw/db) go over rows in ascending
 *    order: one thread per column when the rows fit one chunk (then bitwise
 *    the CPU loop), else per-chunk partials in ascending rows followed by an
 *    ascending sum of the partials into the accumulator.
 *  - scatter_add_rows applies each table row's contributions one after the
 *    other in ascending source index, like the CPU loop, so it is bitwise
 *    the CPU's result: the pairs (id, i) are sorted as unique 64-bit keys
 *    (bitonic tiles in shared memory, then merge passes), and one thread per
 *    (run of equal ids, column) walks its run.  The sort is our own rather
 *    than CUB's: CUB's host templates would be exported from the library as
 *    weak and GNU-unique symbols, and this one is small.
 *
 * Every operation is enqueued on impl->stream; only sumsq, which returns a
 * host value, waits for it.  Work space (column-sum partials, sort keys,
 * sumsq partials) comes from one grow-only device buffer (CudaImpl.scratch);
 * growing it, which is rare, waits for the stream before freeing the old
 * one.
 */
#include <math.h>
#include <stdint.h>

#include "cuda_internal.h"

extern "C"
{
#include "nn/layers.h"					/* ISRF_NN_LN_EPS */
}

#define CUDA_NN_ROW_WARPS 8		/* warp-per-row kernels: 256 threads */
#define CUDA_NN_CE_THREADS 512	/* softmax cross-entropy, one block per row */
#define CUDA_NN_RED_THREADS 256 /* sumsq */
#define CUDA_NN_SUMSQ_PER_THREAD 8
#define CUDA_NN_SUMSQ_MAX_BLOCKS 1024
#define CUDA_NN_COL_CHUNK_MIN 256	/* rows per partial of a column sum */
#define CUDA_NN_SCATTER_SMALL 32	/* scatter_add_rows without sorting */
#define CUDA_NN_SORT_TILE 2048	/* keys sorted per block in shared memory */
#define CUDA_NN_SORT_THREADS 512

#define CUDA_NN_GOLDEN 0x9E3779B97F4A7C15ULL
#define CUDA_NN_GELU_K 0.7978845608028654f	/* sqrt(2 / pi) */
#define CUDA_NN_GELU_C 0.044715f
#define CUDA_NN_EXP_SHIFTER 12582912.0f /* 1.5 * 2^23 */
#define CUDA_NN_EXP_LOWEST 0xC2AE0000u	/* bits of -87.0f */

#define CUDA_NN_FULL_MASK 0xffffffffu

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

/* ---------------------------------------------------------------------
 * Element-wise kernels (grid-stride loops)
 * ------------------------------------------------------------------- */

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
 * LayerNorm: one warp per row for the row statistics
 * ------------------------------------------------------------------- */

/*
 * Forward, one warp per row (warp-uniform row loop, so the shuffles stay
 * convergent).  Sums in double like the CPU, then the CPU's float
 * arithmetic for mean, rstd and the output.
 */
static __global__ void
__launch_bounds__(CUDA_NN_ROW_WARPS * 32)
cuda_nn_layernorm_forward_kernel(float *out, float *mean, float *rstd,
								 const float *x, const float *w,
								 const float *bias, int n, int c)
{
	const int	lane = threadIdx.x & 31;
	size_t		row = (size_t) blockIdx.x * CUDA_NN_ROW_WARPS + (threadIdx.x >> 5);
	size_t		step = (size_t) gridDim.x * CUDA_NN_ROW_WARPS;

	for (; row < (size_t) n; row += step)
	{
		const float *xi = x + row * c;
		float	   *oi = out + row * c;
		double		s = 0.0,
					v = 0.0;
		float		m,
					r;
		int			j;

		for (j = lane; j < c; j += 32)
			s += xi[j];
		s = cuda_nn_warp_sum(s);
		m = (float) (s / c);
		for (j = lane; j < c; j += 32)
		{
			float		dxj = __fsub_rn(xi[j], m);

			v += (double) dxj * dxj;	/* exact product: FMA or not, same bits */
		}
		v = cuda_nn_warp_sum(v);
		r = (float) (1.0 / sqrt(v / c + (double) ISRF_NN_LN_EPS));
		for (j = lane; j < c; j += 32)
			oi[j] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xi[j], m), r), w[j]), bias[j]);
		if (lane == 0)
		{
			mean[row] = m;
			rstd[row] = r;
		}
	}
}

/* dx += rstd (dout w - mean(dout w) - xhat mean(dout w xhat)), warp per row */
static __global__ void
__launch_bounds__(CUDA_NN_ROW_WARPS * 32)
cuda_nn_layernorm_dx_kernel(float *dx, const float *dout, const float *x,
							const float *w, const float *mean,
							const float *rstd, int n, int c)
{
	const int	lane = threadIdx.x & 31;
	size_t		row = (size_t) blockIdx.x * CUDA_NN_ROW_WARPS + (threadIdx.x >> 5);
	size_t		step = (size_t) gridDim.x * CUDA_NN_ROW_WARPS;

	for (; row < (size_t) n; row += step)
	{
		const float *xi = x + row * c;
		const float *gi = dout + row * c;
		float	   *di = dx + row * c;
		float		m = mean[row],
					r = rstd[row];
		float		sum_g = 0.0f,
					sum_gx = 0.0f;
		int			j;

		for (j = lane; j < c; j += 32)
		{
			float		xhat = __fmul_rn(__fsub_rn(xi[j], m), r);
			float		dn = __fmul_rn(gi[j], w[j]);

			sum_g = __fadd_rn(sum_g, dn);
			sum_gx = __fadd_rn(sum_gx, __fmul_rn(dn, xhat));
		}
		sum_g = __fdiv_rn(cuda_nn_warp_sum(sum_g), (float) c);
		sum_gx = __fdiv_rn(cuda_nn_warp_sum(sum_gx), (float) c);
		for (j = lane; j < c; j += 32)
		{
			float		xhat = __fmul_rn(__fsub_rn(xi[j], m), r);
			float		t = __fsub_rn(__fsub_rn(__fmul_rn(gi[j], w[j]), sum_g),
									  __fmul_rn(xhat, sum_gx));

			di[j] = __fadd_rn(di[j], __fmul_rn(r, t));
		}
	}
}

/* ---------------------------------------------------------------------
 * Column sums over rows, ascending (colsum_acc, LayerNorm dw / db)
 *
 * Term of row i, column j: g[i,j] into db, g[i,j] * xhat[i,j] into dw
 * (xhat = (x - mean[i]) * rstd[i]); colsum_acc is the db half alone.
 * ------------------------------------------------------------------- */

/* xhat for dw, rounded like the CPU */
static __device__ __forceinline__ float
cuda_nn_xhat(const float *x, const float *mean, const float *rstd, size_t i,
			 int d, int j)
{
	return __fmul_rn(__fsub_rn(x[i * d + j], mean[i]), rstd[i]);
}

/* All rows in one chunk: one thread per column runs the CPU's own loop. */
static __global__ void
cuda_nn_colred_direct_kernel(float *dw, float *db, const float *g,
							 const float *x, const float *mean,
							 const float *rstd, int n, int d)
{
	int			j = blockIdx.x * blockDim.x + threadIdx.x;
	float		aw,
				ab;
	size_t		i;

	if (j >= d)
		return;
	aw = dw ? dw[j] : 0.0f;
	ab = db ? db[j] : 0.0f;
	for (i = 0; i < (size_t) n; i++)
	{
		float		gij = g[i * d + j];

		if (db)
			ab = __fadd_rn(ab, gij);
		if (dw)
			aw = __fadd_rn(aw, __fmul_rn(gij, cuda_nn_xhat(x, mean, rstd, i, d, j)));
	}
	if (dw)
		dw[j] = aw;
	if (db)
		db[j] = ab;
}

/*
 * First level: thread (chunk, j) sums rows chunk*len .. +len-1 of column j
 * in ascending order into partial[chunk * d + j].  Adjacent threads take
 * adjacent columns, so every row is read coalesced.
 */
static __global__ void
cuda_nn_colred_part_kernel(float *pw, float *pb, const float *g,
						   const float *x, const float *mean,
						   const float *rstd, int n, int d, size_t len,
						   size_t total)
{
	size_t		t = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; t < total; t += step)
	{
		int			j = (int) (t % d);
		size_t		i = (t / d) * len,
					end = i + len < (size_t) n ? i + len : (size_t) n;
		float		sw = 0.0f,
					sb = 0.0f;

		for (; i < end; i++)
		{
			float		gij = g[i * d + j];

			if (pb)
				sb = __fadd_rn(sb, gij);
			if (pw)
				sw = __fadd_rn(sw, __fmul_rn(gij, cuda_nn_xhat(x, mean, rstd, i, d, j)));
		}
		if (pw)
			pw[t] = sw;
		if (pb)
			pb[t] = sb;
	}
}

/* Second level: acc[j] += partials of column j, chunk by chunk ascending. */
static __global__ void
cuda_nn_colred_final_kernel(float *dw, float *db, const float *pw,
							const float *pb, size_t n_chunks, int d)
{
	int			j = blockIdx.x * blockDim.x + threadIdx.x;
	float		aw,
				ab;
	size_t		ch;

	if (j >= d)
		return;
	aw = dw ? dw[j] : 0.0f;
	ab = db ? db[j] : 0.0f;
	for (ch = 0; ch < n_chunks; ch++)
	{
		if (dw)
			aw = __fadd_rn(aw, pw[ch * d + j]);
		if (db)
			ab = __fadd_rn(ab, pb[ch * d + j]);
	}
	if (dw)
		dw[j] = aw;
	if (db)
		db[j] = ab;
}

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
 * scatter_add_rows
 * ------------------------------------------------------------------- */

/*
 * Few source rows: thread j walks i ascending over column j, so each table
 * element receives its contributions in ascending i without any sort.
 */
static __global__ void
cuda_nn_scatter_small_kernel(float *table, const int32_t *ids, int n,
							 const float *src, int d)
{
	int			j = blockIdx.x * blockDim.x + threadIdx.x;
	int			i;

	if (j >= d)
		return;
	for (i = 0; i < n; i++)
	{
		int32_t		id = ids[i];
		float	   *t;

		if (id < 0)
			continue;
		t = table + (size_t) id * d + j;
		*t = __fadd_rn(*t, src[(size_t) i * d + j]);
	}
}

/*
 * Sort key of source row i: the id with its sign bit flipped (so unsigned
 * order is signed order) above i.  Keys are unique, so sorting them is
 * stable by construction, and none equals UINT64_MAX (i < 2^31), which
 * pads the last tile.
 */
static __device__ __forceinline__ uint64_t
cuda_nn_scatter_key(int32_t id, int i)
{
	return ((uint64_t) ((uint32_t) id ^ 0x80000000u) << 32) | (uint32_t) i;
}

static __device__ __forceinline__ int32_t
cuda_nn_scatter_key_id(uint64_t key)
{
	return (int32_t) ((uint32_t) (key >> 32) ^ 0x80000000u);
}

/* Build the keys of one tile and bitonic-sort it in shared memory. */
static __global__ void
__launch_bounds__(CUDA_NN_SORT_THREADS)
cuda_nn_sort_tiles_kernel(const int32_t *ids, int n, uint64_t *out)
{
	__shared__ uint64_t sk[CUDA_NN_SORT_TILE];
	const int	tid = threadIdx.x;
	size_t		base = (size_t) blockIdx.x * CUDA_NN_SORT_TILE;
	int			size,
				stride,
				e;

	for (e = tid; e < CUDA_NN_SORT_TILE; e += CUDA_NN_SORT_THREADS)
	{
		size_t		i = base + e;

		sk[e] = i < (size_t) n ? cuda_nn_scatter_key(ids[i], (int) i) : UINT64_MAX;
	}
	__syncthreads();
	for (size = 2; size <= CUDA_NN_SORT_TILE; size <<= 1)
		for (stride = size >> 1; stride > 0; stride >>= 1)
		{
			for (e = tid; e < CUDA_NN_SORT_TILE; e += CUDA_NN_SORT_THREADS)
			{
				int			q = e ^ stride;

				if (q > e)
				{
					uint64_t	a = sk[e],
								c = sk[q];

					/* ascending where (e & size) == 0: all of the last stage */
					if ((a > c) == ((e & size) == 0))
					{
						sk[e] = c;
						sk[q] = a;
					}
				}
			}
			__syncthreads();
		}
	for (e = tid; e < CUDA_NN_SORT_TILE; e += CUDA_NN_SORT_THREADS)
		if (base + e < (size_t) n)
			out[base + e] = sk[e];
}

/* Number of keys of sorted run[0 .. len) below key. */
static __device__ __forceinline__ size_t
cuda_nn_lower_bound(const uint64_t *run, size_t len, uint64_t key)
{
	size_t		lo = 0,
				hi = len;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (run[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * One merge pass: sorted runs of w keys are merged pairwise.  A key's
 * place is its rank in its own run plus the number of smaller keys in the
 * other run (keys are unique, so no tie needs breaking).
 */
static __global__ void
cuda_nn_merge_pass_kernel(const uint64_t *in, uint64_t *out, int n, size_t w)
{
	size_t		p = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; p < (size_t) n; p += step)
	{
		size_t		a0 = (p / (2 * w)) * (2 * w);
		size_t		a1 = a0 + w < (size_t) n ? a0 + w : (size_t) n;
		size_t		b1 = a1 + w < (size_t) n ? a1 + w : (size_t) n;
		uint64_t	key = in[p];
		size_t		pos;

		if (p < a1)
			pos = (p - a0) + cuda_nn_lower_bound(in + a1, b1 - a1, key);
		else
			pos = (p - a1) + cuda_nn_lower_bound(in + a0, a1 - a0, key);
		out[a0 + pos] = key;
	}
}

/*
 * After the sort: the thread of (k, j) where position k starts a run of
 * equal non-negative ids adds the run's source rows to column j of that
 * table row, in sorted order, i.e. ascending i; the other threads have
 * nothing to do.  Adjacent threads take adjacent columns of one position.
 */
static __global__ void
cuda_nn_scatter_runs_kernel(float *table, const uint64_t *keys, int n,
							const float *src, int d, size_t total)
{
	size_t		t = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
	size_t		step = (size_t) gridDim.x * blockDim.x;

	for (; t < total; t += step)
	{
		int			k = (int) (t / d);
		int			j = (int) (t % d);
		int32_t		id = cuda_nn_scatter_key_id(keys[k]);
		float	   *dst;
		float		acc;

		if (id < 0 || (k > 0 && cuda_nn_scatter_key_id(keys[k - 1]) == id))
			continue;
		dst = table + (size_t) id * d + j;
		acc = *dst;
		for (; k < n && cuda_nn_scatter_key_id(keys[k]) == id; k++)
			acc = __fadd_rn(acc, src[(size_t) (uint32_t) keys[k] * d + j]);
		*dst = acc;
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
 * Work space of at least bytes, from the grow-only buffer.  Growing waits
 * for the stream (kernels enqueued earlier may still use the old buffer),
 * frees it and allocates half as much again as asked, rounded to 1 MiB, so
 * growth, and with it this wait, is rare.
 */
static IsrfStatus
cuda_nn_scratch(IsrfBackend *b, size_t bytes, void **out)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	*out = NULL;
	if (impl->scratch == NULL || bytes > impl->scratch_bytes)
	{
		size_t		want = bytes + bytes / 2;

		want = (want + ((size_t) 1 << 20) - 1) & ~(((size_t) 1 << 20) - 1);
		if (impl->scratch)
			CUDA_RT(b->env, cudaStreamSynchronize(impl->stream));
		cuda_dev_free(b, impl->scratch);
		impl->scratch = NULL;
		impl->scratch_bytes = 0;
		ISRF_TRY(cuda_dev_alloc(b, want, &impl->scratch));
		impl->scratch_bytes = want;
	}
	*out = impl->scratch;
	return ISRF_OK;
}

/* Blocks for the warp-per-row kernels (one warp per row, grid-stride). */
static unsigned int
cuda_nn_row_blocks(size_t rows)
{
	return cuda_ew_blocks(rows, CUDA_NN_ROW_WARPS);
}

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

/*
 * acc[j] += sum_i g[i,j] and/or acc_w[j] += sum_i g[i,j] xhat[i,j], rows
 * ascending: one pass when the rows fit one chunk, else chunk partials in
 * the scratch buffer and an ascending sum of them.  The chunk length is a
 * power of two >= sqrt(n) (at least CUDA_NN_COL_CHUNK_MIN), a function of n
 * alone, so the rounding never depends on the device.
 */
static IsrfStatus
cuda_nn_colred(IsrfBackend *b, float *dw, float *db, const float *g,
			   const float *x, const float *mean, const float *rstd, int n, int d)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		len = CUDA_NN_COL_CHUNK_MIN,
				n_chunks,
				per;
	unsigned int cols_blocks = (unsigned int) (((size_t) d + CUDA_EW_THREADS - 1) / CUDA_EW_THREADS);
	float	   *buf,
			   *pw,
			   *pb;

	while (len * len < (size_t) n)
		len *= 2;
	n_chunks = ((size_t) n + len - 1) / len;
	if (n_chunks <= 1)
	{
		cuda_nn_colred_direct_kernel<<<cols_blocks, CUDA_EW_THREADS, 0, impl->stream>>>
			(dw, db, g, x, mean, rstd, n, d);
		CUDA_RT(b->env, cudaGetLastError());
		return ISRF_OK;
	}
	per = n_chunks * d;
	ISRF_TRY(cuda_nn_scratch(b, sizeof(float) * per * ((dw && db) ? 2 : 1), (void **) &buf));
	pw = dw ? buf : NULL;
	pb = db ? (dw ? buf + per : buf) : NULL;
	cuda_nn_colred_part_kernel<<<cuda_ew_blocks(per, CUDA_EW_THREADS), CUDA_EW_THREADS,
		0, impl->stream>>>(pw, pb, g, x, mean, rstd, n, d, len, per);
	CUDA_RT(b->env, cudaGetLastError());
	cuda_nn_colred_final_kernel<<<cols_blocks, CUDA_EW_THREADS, 0, impl->stream>>>
		(dw, db, pw, pb, n_chunks, d);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* a linear layer's bias gradient: deterministic column sums */
static IsrfStatus
cuda_nn_colsum_acc(IsrfBackend *b, float *acc, const float *x, int n, int d)
{
	if (n < 0 || d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "colsum_acc: negative shape (n=%d, d=%d)", n, d);
	if (n == 0 || d == 0)
		return ISRF_OK;
	return cuda_nn_colred(b, NULL, acc, x, NULL, NULL, NULL, n, d);
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

/* warp per row; like the CPU backend, a row needs at least one column */
static IsrfStatus
cuda_nn_layernorm_forward(IsrfBackend *b, float *out, float *mean, float *rstd,
						  const float *x, const float *w, const float *bias,
						  int n, int c)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n < 0 || c <= 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "layernorm_forward: bad shape (n=%d, c=%d; c must be positive)", n, c);
	if (n == 0)
		return ISRF_OK;
	cuda_nn_layernorm_forward_kernel<<<cuda_nn_row_blocks((size_t) n),
		CUDA_NN_ROW_WARPS * 32, 0, impl->stream>>>(out, mean, rstd, x, w, bias, n, c);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
}

/* dx row by row (warp per row); dw / db as ascending column sums */
static IsrfStatus
cuda_nn_layernorm_backward(IsrfBackend *b, float *dx, float *dw, float *db,
						   const float *dout, const float *x, const float *w,
						   const float *mean, const float *rstd, int n, int c)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;

	if (n < 0 || c <= 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "layernorm_backward: bad shape (n=%d, c=%d; c must be positive)", n, c);
	if (n == 0)
		return ISRF_OK;
	if (dx)
	{
		cuda_nn_layernorm_dx_kernel<<<cuda_nn_row_blocks((size_t) n),
			CUDA_NN_ROW_WARPS * 32, 0, impl->stream>>>(dx, dout, x, w, mean, rstd, n, c);
		CUDA_RT(b->env, cudaGetLastError());
	}
	if (dw || db)
		ISRF_TRY(cuda_nn_colred(b, dw, db, dout, x, mean, rstd, n, c));
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

/*
 * The embedding gradient without atomics.  A few rows: thread per column in
 * row order.  Otherwise the (id, i) keys are sorted (tiles, then merge
 * passes between two halves of the scratch buffer), which groups each
 * table row's contributions in ascending i, and one thread per (run,
 * column) adds them in that order.
 */
static IsrfStatus
cuda_nn_scatter_add_rows(IsrfBackend *b, float *table, const int32_t *ids,
						 int n, const float *src, int d)
{
	CudaImpl   *impl = (CudaImpl *) b->impl;
	size_t		tiles,
				w;
	uint64_t   *buf,
			   *cur,
			   *other;

	if (n < 0 || d < 0)
		return cuda_fail(b->env, ISRF_ERR_INVALID,
						 "scatter_add_rows: negative shape (n=%d, d=%d)", n, d);
	if (n == 0 || d == 0)
		return ISRF_OK;
	if (n <= CUDA_NN_SCATTER_SMALL)
	{
		cuda_nn_scatter_small_kernel<<<(unsigned int) (((size_t) d + CUDA_EW_THREADS - 1) / CUDA_EW_THREADS),
			CUDA_EW_THREADS, 0, impl->stream>>>(table, ids, n, src, d);
		CUDA_RT(b->env, cudaGetLastError());
		return ISRF_OK;
	}

	ISRF_TRY(cuda_nn_scratch(b, sizeof(uint64_t) * 2 * (size_t) n, (void **) &buf));
	cur = buf;
	other = buf + n;
	tiles = ((size_t) n + CUDA_NN_SORT_TILE - 1) / CUDA_NN_SORT_TILE;
	cuda_nn_sort_tiles_kernel<<<(unsigned int) tiles, CUDA_NN_SORT_THREADS, 0,
		impl->stream>>>(ids, n, cur);
	CUDA_RT(b->env, cudaGetLastError());
	for (w = CUDA_NN_SORT_TILE; w < (size_t) n; w *= 2)
	{
		uint64_t   *t;

		cuda_nn_merge_pass_kernel<<<cuda_ew_blocks((size_t) n, CUDA_EW_THREADS),
			CUDA_EW_THREADS, 0, impl->stream>>>(cur, other, n, w);
		CUDA_RT(b->env, cudaGetLastError());
		t = cur;
		cur = other;
		other = t;
	}
	cuda_nn_scatter_runs_kernel<<<cuda_ew_blocks((size_t) n * d, CUDA_EW_THREADS),
		CUDA_EW_THREADS, 0, impl->stream>>>(table, cur, n, src, d, (size_t) n * d);
	CUDA_RT(b->env, cudaGetLastError());
	return ISRF_OK;
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

/* Called by isrf_cuda_backend_create once the device is open. */
void
cuda_nn_install(IsrfBackend *b)
{
	b->mem_zero = cuda_nn_mem_zero;
	b->copy = cuda_nn_copy;
	b->gemm_batched = cuda_nn_gemm_batched;
	b->rows_set = cuda_nn_rows_set;
	b->colsum_acc = cuda_nn_colsum_acc;
	b->add = cuda_nn_add;
	b->layernorm_forward = cuda_nn_layernorm_forward;
	b->layernorm_backward = cuda_nn_layernorm_backward;
	b->gelu_forward = cuda_nn_gelu_forward;
	b->gelu_backward = cuda_nn_gelu_backward;
	b->dropout_forward = cuda_nn_dropout_forward;
	b->dropout_backward = cuda_nn_dropout_backward;
	b->attn_softmax_forward = cuda_nn_attn_softmax_forward;
	b->attn_softmax_backward = cuda_nn_attn_softmax_backward;
	b->softmax_ce = cuda_nn_softmax_ce;
	b->gather_rows = cuda_nn_gather_rows;
	b->scatter_add_rows = cuda_nn_scatter_add_rows;
	b->mask_rows = cuda_nn_mask_rows;
	b->adamw_step = cuda_nn_adamw_step;
	b->sumsq = cuda_nn_sumsq;
}
