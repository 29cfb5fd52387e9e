#!/bin/bash
# bench_gpu.sh: everything the GPU machine should run, in two steps.
#
#   bench/bench_gpu.sh bundle      here (Debian): build the CUDA library, the
#                                  driver and the tests, and copy the shared
#                                  libraries they need that the GPU machine
#                                  lacks (libstemmer, OpenBLAS) into
#                                  build/gpu_libs.
#   bench/bench_gpu.sh run [DATA]  on the GPU machine (the device tool, carrying
#                                  build/): the parity tests, then the
#                                  default and the larger configuration trained
#                                  on the GPU with the standalone driver.
#
# DATA defaults to ../shared/data/beauty.  ISRF_GPU_LARGE overrides the larger
# configuration (driver --config options).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-run}"
shift || true

if [ "$cmd" = bundle ]; then
	make -C "$here" -s all build/isrf_driver
	make -C "$here" -s tools
	mkdir -p "$here/build/gpu_libs"
	for lib in libstemmer.so.0d libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
		src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
		[ -n "$src" ] && cp -L "$src" "$here/build/gpu_libs/$lib"
	done
	ls -la "$here/build/gpu_libs"
	exit 0
fi

data="${1:-$here/../shared/data/beauty}"
export LD_LIBRARY_PATH="$here/build/gpu_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ISRF_BLAS_LIBRARY="$here/build/gpu_libs/libopenblas.so.0"
export ISRF_CUDA_LIBRARY="$here/build/isrf_cuda.so"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
for t in test_parity test_parity_nn_elementwise test_parity_nn_gemm test_parity_nn_layernorm \
	test_parity_nn_softmax test_parity_nn_embedding test_parity_nn_optimizer test_parity_model; do
	echo "== $t"
	"$here/build/test/$t" || echo "$t: exit $?"
done
large="${ISRF_GPU_LARGE:---config d_model=128 --config tf_layers=4 --config n_heads=4 --config max_len=50}"
echo "== default configuration on the GPU"
start=$(date +%s)
"$here/build/isrf_driver" train "$data" --device cuda --evaluate on
echo "== wall time $(( $(date +%s) - start )) s"
echo "== larger configuration on the GPU: $large"
start=$(date +%s)
# shellcheck disable=SC2086
"$here/build/isrf_driver" train "$data" --device cuda --evaluate on $large
echo "== wall time $(( $(date +%s) - start )) s"
