/*
 * cuda_nn_layernorm.cu
 *	  LayerNorm forward and backward of the backend table on the GPU, and the
 *	  deterministic column sums over rows that its dw / db share with
 *	  colsum_acc (a linear layer's bias gradient).
 *
 * Row statistics: one warp per row, sums in double like the CPU, reduced by
 * a fixed-order butterfly.  Column sums go over rows in ascending order, in
 * one or two levels (see cuda_nn.cu), never with atomics.
 */
#include <math.h>

#include "cuda_nn_internal.h"

extern "C"
{
#include "nn/layers.h"					/* ISRF_NN_LN_EPS */
}

#define CUDA_NN_COL_CHUNK_MIN 256	/* rows per partial of a column sum */

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
 * Host side
 * ------------------------------------------------------------------- */

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

/* LayerNorm and colsum_acc into the table (cuda_nn_install). */
void
cuda_nn_install_layernorm(IsrfBackend *b)
{
	b->colsum_acc = cuda_nn_colsum_acc;
	b->layernorm_forward = cuda_nn_layernorm_forward;
	b->layernorm_backward = cuda_nn_layernorm_backward;
}
