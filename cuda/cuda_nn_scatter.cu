/*
 * cuda_nn_scatter.cu
 *	  scatter_add_rows of the backend table on the GPU (the embedding
 *	  gradient), bitwise the CPU's result and without atomics.
 *
 * Each table row's contributions are applied one after the other in
 * ascending source index, like the CPU loop: the pairs (id, i) are sorted
 * as unique 64-bit keys (bitonic tiles in shared memory, then merge passes
 * between the two halves of the work space), and one thread per (run of
 * equal ids, column) walks its run.  A few source rows need no sort.  The
 * sort is our own rather than CUB's: CUB's host templates would be exported
 * from the library as weak and GNU-unique symbols, and this one is small.
 */
#include <stdint.h>

#include "cuda_nn_internal.h"

#define CUDA_NN_SCATTER_SMALL 32	/* scatter_add_rows without sorting */
#define CUDA_NN_SORT_TILE 2048	/* keys sorted per block in shared memory */
#define CUDA_NN_SORT_THREADS 512

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
 * Host side
 * ------------------------------------------------------------------- */

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

/* scatter_add_rows into the table (cuda_nn_install). */
void
cuda_nn_install_scatter(IsrfBackend *b)
{
	b->scatter_add_rows = cuda_nn_scatter_add_rows;
}
