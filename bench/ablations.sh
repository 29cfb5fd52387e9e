#!/bin/bash
# ablations.sh: train the default model and its variants (with the group
# interest, with it but no alignment losses, with the explicit interest,
# without semantic features) on beauty and goodreads and print one table.
#
#   bench/ablations.sh [DATA_ROOT] [extra driver options for every run]
#
# DATA_ROOT defaults to ../shared/data next to the repository.  By default
# the table holds the VALIDATION figures each training prints (full ranking
# of the validation item, train prefix as input): the dense head alone, the
# model's ranking score (dense + tuned transition prior) and the direct task
# with that score.  With EVALUATE=on every run also computes the full
# isrf_evaluate table (test target; it retrains the LightGCN baseline, some
# minutes more per run) and the test rows of isrf are printed too.  Each
# run's output is kept in $OUT_DIR (default /tmp/isrf_ablations).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${1:-$here/../shared/data}"
shift || true
out="${OUT_DIR:-/tmp/isrf_ablations}"
evaluate="${EVALUATE:-off}"
datasets="${DATASETS:-beauty goodreads}"
mkdir -p "$out"
driver="${DRIVER:-$here/build/isrf_driver}"
if [ -z "${DRIVER:-}" ] && { [ ! -x "$driver" ] || [ -n "$(find "$here/src" -newer "$driver" -name '*.[ch]' 2>/dev/null | head -1)" ]; }; then
	make -C "$here" -s build/isrf_driver >&2
fi

variants=(
	"default|"
	"group|--config use_group_interest=true"
	"group_no_al|--config use_group_interest=true --config use_align=false"
	"explicit|--config use_explicit=true"
	"no_text|--config use_text=false"
)
printf '%-10s %-11s | %-15s | %-15s | %-15s | %6s %5s\n' "" "" "val dense head" "val isrf score" "val direct" "train" ""
printf '%-10s %-11s | %7s %7s | %7s %7s | %7s %7s | %6s %5s\n' dataset variant HR@10 NDCG@10 HR@10 NDCG@10 HR@10 NDCG@10 secs beta
for ds in $datasets; do
	for v in "${variants[@]}"; do
		name="${v%%|*}"
		opts="${v#*|}"
		log="$out/${ds}_${name}.txt"
		err="$out/${ds}_${name}.err"
		# shellcheck disable=SC2086
		"$driver" train "$root/$ds" --device "${ISRF_DEVICE:-cpu}" --evaluate "$evaluate" $opts "$@" >"$log" 2>"$err"
		# "transition prior: beta B, validation HR@10 X NDCG@10 Y (dense head alone A / C)"
		seqline=$(grep 'transition prior: beta' "$err" | tail -1 | tr -d ',()')
		dirline=$(grep 'transition prior (direct task)' "$err" | tail -1 | tr -d ',()')
		secs=$(awk '/^training wall time/ { print $4 }' "$log")
		echo "$seqline" | awk -v ds="$ds" -v name="$name" -v dl="$dirline" -v secs="$secs" '{
			for (i = 1; i <= NF; i++) {
				if ($i == "beta") beta = $(i + 1)
				if ($i == "HR@10") hr = $(i + 1)
				if ($i == "NDCG@10") nd = $(i + 1)
				if ($i == "alone") { dhr = $(i + 1); dnd = $(i + 3) }
			}
			n = split(dl, f, " ")
			for (i = 1; i <= n; i++) {
				if (f[i] == "HR@10") xhr = f[i + 1]
				if (f[i] == "NDCG@10") xnd = f[i + 1]
			}
			printf "%-10s %-11s | %7s %7s | %7s %7s | %7s %7s | %6.0f %5s\n", ds, name, dhr, dnd, hr, nd, xhr, xnd, secs, beta
		}'
		if [ "$evaluate" = on ]; then
			awk -v ds="$ds" -v name="$name" '$2 == "isrf" { printf "    test %-10s %-9s %-10s HR@10 %s NDCG@10 %s\n", ds, name, $1, $5, $6 }' "$log"
		fi
	done
done
