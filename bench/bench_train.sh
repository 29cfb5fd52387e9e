#!/bin/bash
# bench_train.sh: train the default configuration on Amazon Beauty with the
# standalone driver and print per-epoch progress, the training wall time and
# the isrf_evaluate table (all methods, both tasks).
#
#   bench/bench_train.sh [DATA_DIR] [extra driver options, e.g. --config epochs=5]
#
# DATA_DIR defaults to ../shared/data/beauty next to the repository.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$here/../shared/data/beauty}"
shift || true
driver="$here/build/isrf_driver"
if [ ! -x "$driver" ] || [ -n "$(find "$here/src" -newer "$driver" -name '*.[ch]' 2>/dev/null | head -1)" ]; then
	make -C "$here" -s build/isrf_driver >&2
fi
echo "== isrf_driver train $data (default configuration) $*"
start=$(date +%s)
"$driver" train "$data" --device "${ISRF_DEVICE:-cpu}" "$@"
echo "== wall time $(( $(date +%s) - start )) s"
