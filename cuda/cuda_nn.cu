/*
 * cuda_nn.cu
 *	  The neural-network operations of the backend table (ABI 2) on the GPU,
 *	  so that the transformer's tensors never leave the device: what they
 *	  share with the CPU backend, the work space they use, and the filling
 *	  of the table.  The kernels live by family:
 *
 *	  cuda_nn_elementwise.cu	mem_zero, copy, rows_set, add, GELU, dropout,
 *								mask_rows, gather_rows
 *	  cuda_nn_gemm.cu			gemm_batched (the products of attention)
 *	  cuda_nn_layernorm.cu		LayerNorm and the column sums (colsum_acc)
 *	  cuda_nn_softmax.cu		attention softmax, softmax cross-entropy
 *	  cuda_nn_scatter.cu		scatter_add_rows (sort-based, no atomics)
 *	  cuda_nn_optimizer.cu		AdamW, sumsq (gradient-norm clipping)
 *	  cuda_nn_internal.h		what they share: warp and block reductions,
 *								launch helpers, the work space
 *
 * The CPU backend's plain loops are the reference; these files follow them
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
 *    the CPU's result (a sort of the ids, then one thread per run and
 *    column; cuda_nn_scatter.cu says how).
 *
 * Every operation is enqueued on impl->stream; only sumsq, which returns a
 * host value, waits for it.  Work space (column-sum partials, sort keys,
 * sumsq partials) comes from one grow-only device buffer (CudaImpl.scratch,
 * cuda_nn_scratch below); growing it, which is rare, waits for the stream
 * before freeing the old one.
 */
#include "cuda_nn_internal.h"

/*
 * Work space of at least bytes, from the grow-only buffer.  Growing waits
 * for the stream (kernels enqueued earlier may still use the old buffer),
 * frees it and allocates half as much again as asked, rounded to 1 MiB, so
 * growth, and with it this wait, is rare.
 */
IsrfStatus
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

/* Called by isrf_cuda_backend_create once the device is open. */
void
cuda_nn_install(IsrfBackend *b)
{
	cuda_nn_install_elementwise(b);
	cuda_nn_install_gemm(b);
	cuda_nn_install_layernorm(b);
	cuda_nn_install_softmax(b);
	cuda_nn_install_scatter(b);
	cuda_nn_install_optimizer(b);
}
