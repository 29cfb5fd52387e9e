#!/bin/bash
# bench/ablations.sh [DATA_ROOT]: the ablation table on the TEST split, served
# path: the default model and its variants, each trained by the standalone
# driver (the code CALL isrf_train runs) and evaluated as isrf_evaluate does
# (the isrf rows are the lists isrf_recommend serves and the scores isrf_rank
# gives).  One table per data set (DATASETS, default "beauty goodreads"):
#
#   default          the default configuration
#   no_group         without the group term of the score (use_group_score=false)
#   no_text_score    without the text term of the score (use_text_score=false)
#   no_blend_net     without the candidate lists' blend network (use_blend_net=false)
#   no_relations     the blend network without its relations inputs (use_relations=false)
#   no_rerank_net    full ranking without the rerank network of its best 100 (use_rerank_net=false)
#   group_interest   with the causal group interest in the model and its
#                    alignment losses (use_group_interest=true)
#   no_align         the group interest without the alignment losses
#   no_text          without semantic features (use_text=false)
#   no_adapter       without the adapter of the semantic feature (use_adapter=false)
#   no_word_emb      without the items' word embeddings in the token (use_word_emb=false)
#   no_prior         without the score's terms beside the dense head (use_prior=false)
#   no_beam          the default model served without the beam (beam_weight=0)
#   with_beam        the default model served with the beam bonus at weight 1
#
# no_group, no_text_score, no_blend_net, no_relations, no_rerank_net, no_prior, no_beam and with_beam change only the
# ranking score, not the trained network: they re-evaluate the default run's
# saved model (isrf_driver evaluate --without group|text|net|relations|rerank|prior, --beam-weight; the remaining
# weights chosen on validation again), so they need no training.  --without always
# chooses the weights with the build that runs it, the other variants keep the weights
# their training chose: after a build that changes the ranking score, run with RETUNE=1
# (below) for a table of one build.  Each run's output stays in
# $OUT_DIR (default /tmp/isrf_ablations); VARIANTS limits the variants run;
# EXTRA adds driver options to every training (EXTRA="--config epochs=6" for a
# shorter table, which the header then states); a training whose output is
# already in $OUT_DIR is read again, not repeated (REUSE=0 repeats it);
# RETUNE=1 then evaluates each trained model (and no_beam, with_beam) again
# with its score weights chosen on validation by this build (isrf_driver
# evaluate --retune on), for a table of score terms added since those
# trainings.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${1:-$here/../shared/data}"
out="${OUT_DIR:-/tmp/isrf_ablations}"
datasets="${DATASETS:-beauty goodreads}"
mkdir -p "$out"
driver="${DRIVER:-$here/build/isrf_driver}"
[ -n "${DRIVER:-}" ] || make -C "$here" -s build/isrf_driver >&2

declare -A options=(
	[default]=""
	[group_interest]="--config use_group_interest=true"
	[no_align]="--config use_group_interest=true --config use_align=false"
	[no_text]="--config use_text=false"
	[no_adapter]="--config use_adapter=false"
	[no_word_emb]="--config use_word_emb=false"
)
variants="${VARIANTS:-default no_group no_text_score no_blend_net no_relations no_rerank_net group_interest no_align no_text no_adapter no_word_emb no_prior no_beam with_beam}"

# "sequential  isrf  HR@5 NDCG@5 HR@10 NDCG@10 users" -> "HR@10 NDCG@10"
row() { awk -v t="$2" '$1 == t && $2 == "isrf" { printf "%7s %7s", $5, $6 }' "$1"; }

for ds in $datasets; do
	printf '\n%s (test split, served path%s)\n' "$ds" "${EXTRA:+; every training with $EXTRA}"
	printf '%-15s | %-15s | %-15s | %7s\n' "" "sequential" "direct" "train"
	printf '%-15s | %7s %7s | %7s %7s | %7s\n' variant HR@10 NDCG@10 HR@10 NDCG@10 secs
	for v in $variants; do
		log="$out/${ds}_${v}.txt"
		case "$v" in
			no_group|no_text_score|no_blend_net|no_relations|no_rerank_net|no_prior|no_beam|with_beam)
				[ -f "$out/${ds}_default.bin" ] || { echo "$v needs the default run first" >&2; continue; }
				case "$v" in
					no_group) how=(--without group) ;;
					no_text_score) how=(--without text) ;;
					no_blend_net) how=(--without net) ;;
					no_relations) how=(--without relations) ;;
					no_rerank_net) how=(--without rerank) ;;
					no_prior) how=(--without prior) ;;
					no_beam) how=(--beam-weight 0) ;;
					with_beam) how=(--beam-weight 1) ;;
				esac
				# the beam variants keep the saved weights unless RETUNE=1
				case "$v" in no_beam|with_beam) [ "${RETUNE:-0}" = 1 ] && how+=(--retune on) ;; esac
				"$driver" evaluate "$out/${ds}_default.bin" --device "${ISRF_DEVICE:-cpu}" \
					"${how[@]}" --baselines off >"$log" 2>"$out/${ds}_${v}.err"
				secs=-
				;;
			*)
				if ! { [ "${REUSE:-1}" = 1 ] && [ -f "$out/${ds}_${v}.bin" ] &&
					grep -q '^training wall time' "$log" 2>/dev/null; }; then
					# shellcheck disable=SC2086
					"$driver" train "$root/$ds" --device "${ISRF_DEVICE:-cpu}" --baselines off \
						--save "$out/${ds}_${v}.bin" ${options[$v]} ${EXTRA:-} >"$log" 2>"$out/${ds}_${v}.err"
				fi
				secs=$(awk '/^training wall time/ { print $4 }' "$log")
				if [ "${RETUNE:-0}" = 1 ]; then
					log="$out/${ds}_${v}.retuned.txt"
					"$driver" evaluate "$out/${ds}_${v}.bin" --device "${ISRF_DEVICE:-cpu}" \
						--retune on --baselines off >"$log" 2>"$out/${ds}_${v}.retuned.err"
				fi
				;;
		esac
		printf '%-15s | %s | %s | %7s\n' "$v" "$(row "$log" sequential)" "$(row "$log" direct)" "$secs"
	done
done
