#!/usr/bin/env bash
# bench/bench_fresh.sh [NAME] [CONFIG_JSON]: what reading the history at
# request time is worth.  The database holds each user's interactions but
# the last two; CALL isrf_train; then every user's list is served twice:
#
#   frozen  isrf_recommend(u, 10) before anything changes: the history the
#           model was trained on;
#   fresh   after one statement inserts each user's second-to-last item,
#           without retraining: isrf_recommend reads it.
#
# Both are scored by ../shared/tools/referee.py against each user's last
# item, beside referee.py's baselines on the fresh information (everything
# but the last item).  NAME defaults to beauty.  ISRF_KEEP=1 keeps the lists.
set -euo pipefail
. "$(dirname "$0")/../test/lib.sh"
name=${1:-beauty}
config=${2:-'{}'}
src="$ISRF_ROOT/../shared/data/$name"
tools="$ISRF_ROOT/../shared/tools"

isrf_bench_cluster

# all but the last two of each user, and the second-to-last items apart
python3 "$tools/heldout.py" "$src" "$ISRF_WORK/minus1" >/dev/null
python3 "$tools/heldout.py" "$ISRF_WORK/minus1" "$ISRF_WORK/minus2" >/dev/null
python3 - "$ISRF_WORK/minus1" "$ISRF_WORK/minus2" "$ISRF_WORK/second_last.csv" <<'PY'
import csv, os, sys
a, b, out = sys.argv[1:]
name = "interactions.csv" if os.path.exists(f"{a}/interactions.csv") else "ratings.csv"
with open(f"{b}/{name}") as f:
    kept = {tuple(r.values()) for r in csv.DictReader(f)}
with open(f"{a}/{name}") as f, open(out, "w", newline="") as g:
    r = csv.DictReader(f)
    w = csv.DictWriter(g, fieldnames=r.fieldnames, lineterminator="\n")
    w.writeheader()
    for row in r:
        if tuple(row.values()) not in kept:
            w.writerow(row)
PY
bash "$ISRF_ROOT/bench/load_dataset.sh" "$name" "$ISRF_WORK/minus2" >/dev/null
t0=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL isrf_train('$name', '$config')"
echo "== $name without each user's last two: CALL isrf_train took $(( $(date +%s) - t0 )) s"

serve_all() {   # FILE
    psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT u.user_id, r.rank, r.item_id FROM (SELECT DISTINCT user_id FROM $name.reviews) u, LATERAL isrf_recommend(u.user_id, 10) r ORDER BY 1, 2) TO '$1' CSV HEADER"
}
t0=$(date +%s)
serve_all "$ISRF_WORK/frozen.csv"
echo "frozen: every user served in $(( $(date +%s) - t0 )) s"

# one statement: each user's second-to-last item arrives
cols=$(head -1 "$ISRF_WORK/second_last.csv")
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE arriving AS SELECT * FROM $name.reviews LIMIT 0;
\\copy arriving ($cols) FROM '$ISRF_WORK/second_last.csv' CSV HEADER
INSERT INTO $name.reviews SELECT * FROM arriving;
SQL
t0=$(date +%s)
serve_all "$ISRF_WORK/fresh.csv"
echo "fresh: every user served in $(( $(date +%s) - t0 )) s"

echo "frozen history (as trained), scored by referee.py against each user's last item:"
python3 "$tools/referee.py" score "$src" "$ISRF_WORK/frozen.csv"
echo "fresh history (the second-to-last items inserted, no retraining):"
python3 "$tools/referee.py" score "$src" "$ISRF_WORK/fresh.csv"
echo "referee.py baselines on the fresh information:"
python3 "$tools/referee.py" baselines-heldout "$src" | awk 'NR <= 2'
isrf_cluster_stop
trap - EXIT
