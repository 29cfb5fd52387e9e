#!/usr/bin/env bash
# bench/bench_quality.sh NAME [CONFIG_JSON]: what users of isrf are served, on a
# real data set of ../shared/data (beauty, ml100k, goodreads), through SQL on a
# throwaway cluster, in one run:
#
#   standard split: CALL isrf_train on the whole data set, then isrf_evaluate()
#     -- its isrf rows are isrf_recommend's lists (sequential task) and
#     isrf_rank's scores (direct task) on the test split, beside the baselines;
#   held out: each user's last interaction withheld from the database
#     (../shared/tools/heldout.py), CALL isrf_train, isrf_recommend(u, 10) for
#     every user, the lists scored by ../shared/tools/referee.py against the
#     withheld items, beside referee.py's baselines on the same information;
#     and the direct task through isrf_rank: the withheld item among 99 items
#     the user never touched, referee.py's draw (seed 20261122, its first
#     2,000 users), scored in SQL.
#
# Prints the training times, both tables and the served figures.  ISRF_KEEP=1
# keeps the scratch directory (lists, logs).
set -euo pipefail
. "$(dirname "$0")/../test/lib.sh"
name=${1:?usage: bench_quality.sh NAME [CONFIG_JSON]}
config=${2:-'{}'}
src="$ISRF_ROOT/../shared/data/$name"
tools="$ISRF_ROOT/../shared/tools"

isrf_bench_cluster
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- standard split ---------------------------------------------------------
bash "$ISRF_ROOT/bench/load_dataset.sh" "$name" "$src" >/dev/null
t0=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL isrf_train('$name', '$config')"
t1=$(date +%s.%N)
echo "== $name, standard split: CALL isrf_train('$name', '$config') took $(seconds "$t0" "$t1") s"
psql -X -c "SELECT config, metrics->'score_weights' AS score_weights, metrics->>'best_epoch' AS best_epoch,
                   metrics->>'val_hr10' AS val_hr10, metrics->>'val_ndcg10' AS val_ndcg10
              FROM isrf.models WHERE name = '$name' AND deployed"
t0=$(date +%s.%N)
psql -X -c "SELECT task, method, round(hr_5::numeric, 4) AS hr_5, round(ndcg_5::numeric, 4) AS ndcg_5,
                   round(hr_10::numeric, 4) AS hr_10, round(ndcg_10::numeric, 4) AS ndcg_10, users
              FROM isrf_evaluate('$name') ORDER BY task DESC, method = 'isrf' DESC, method"
t1=$(date +%s.%N)
echo "isrf_evaluate took $(seconds "$t0" "$t1") s"

# --- held out -----------------------------------------------------------------
python3 "$tools/heldout.py" "$src" "$ISRF_WORK/heldout" >/dev/null
bash "$ISRF_ROOT/bench/load_dataset.sh" "${name}_ho" "$ISRF_WORK/heldout" >/dev/null
t0=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL isrf_train('${name}_ho', '$config')"
t1=$(date +%s.%N)
echo "== $name, held out: CALL isrf_train('${name}_ho', '$config') took $(seconds "$t0" "$t1") s"
t0=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT u.user_id, r.rank, r.item_id FROM (SELECT DISTINCT user_id FROM isrf.model_interactions WHERE model = '${name}_ho') u, LATERAL isrf_recommend(u.user_id, 10, '${name}_ho') r ORDER BY 1, 2) TO '$ISRF_WORK/served.csv' CSV HEADER"
t1=$(date +%s.%N)
n_users=$(($(wc -l <"$ISRF_WORK/served.csv") / 10))
echo "isrf_recommend(u, 10) for every user: $(seconds "$t0" "$t1") s"
echo "served (isrf_recommend), scored by referee.py:"
python3 "$tools/referee.py" score "$src" "$ISRF_WORK/served.csv"
echo "referee.py baselines on the same information:"
python3 "$tools/referee.py" baselines-heldout "$src"

# the direct task: referee.py's draw of 99 untouched items, through isrf_rank
python3 "$ISRF_ROOT/bench/direct_tasks.py" "$src" "$ISRF_WORK/direct.csv" 2000
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE direct_task (user_id bigint, target bigint, cand bigint[]);
\\copy direct_task FROM '$ISRF_WORK/direct.csv' CSV
SELECT count(*) AS users,
       round(avg((r.rank <= 5)::int), 4) AS hr_5,
       round(avg(CASE WHEN r.rank <= 5 THEN 1 / log(2, r.rank + 1) ELSE 0 END), 4) AS ndcg_5,
       round(avg((r.rank <= 10)::int), 4) AS hr_10,
       round(avg(CASE WHEN r.rank <= 10 THEN 1 / log(2, r.rank + 1) ELSE 0 END), 4) AS ndcg_10
  FROM direct_task d, LATERAL isrf_rank(d.user_id, d.cand, '${name}_ho') r
 WHERE r.item_id = d.target;
SQL
echo "(direct task above: isrf_rank, the withheld item among 99 untouched items, referee.py's 2,000 users)"
isrf_cluster_stop
trap - EXIT
