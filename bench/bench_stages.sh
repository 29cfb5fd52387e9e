#!/usr/bin/env bash
# bench_stages.sh - time the data and graph stages of training on Amazon
# Beauty with the standalone driver: every stage for K=50 and K=100 (3
# LightGCN layers), then the all-pairs kNN reference against the blockwise
# group graph.  The bar: all stages together under 60 s on a 2-core CPU.
#
#   bench/bench_stages.sh [DATA_DIR] [--device auto|cpu|cuda]
#
# DATA_DIR defaults to ../shared/data/beauty next to the repository.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$here/../shared/data/beauty}"
shift $(( $# > 0 ? 1 : 0 )) || true
device=(--device auto)
if [ $# -ge 2 ] && [ "$1" = "--device" ]; then
	device=(--device "$2")
fi
cols=(--text-columns title,attributes)

cd "$here"
make -s build/isrf_driver
drv="$here/build/isrf_driver"

for k in 50 100; do
	echo "== stages, K=$k, 3 layers ($data)"
	out="$("$drv" stages "$data" "${device[@]}" "${cols[@]}" --k "$k" --layers 3)"
	echo "$out"
	total="$(echo "$out" | awk '$1 == "total" { print $2 }')"
	if awk -v t="$total" 'BEGIN { exit !(t < 60) }'; then
		echo "K=$k: all stages ${total} s (under the 60 s bar)"
	else
		echo "K=$k: all stages ${total} s: OVER the 60 s bar"
	fi
done

echo "== knn-reference, K=50"
"$drv" knn-reference "$data" "${device[@]}" "${cols[@]}" --k 50
