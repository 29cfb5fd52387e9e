#!/usr/bin/env bash
# TAP: what users are served beats Markov + item-kNN on the same information.
# MovieLens 100K with each user's last rating withheld from the database
# (../shared/tools/heldout.py), CALL isrf_train with the default
# configuration, isrf_recommend(u, 10) for every user, the lists scored by
# ../shared/tools/referee.py against the withheld items, beside referee.py's
# Markov + item-kNN trained on the same rows.  Run by test/run_tests.sh
# (prove) with the throwaway cluster's PGHOST, PGPORT; ISRF_DATA_DIR names
# the data sets.
set -u
n=0
failed=0
ok() {   # ok CONDITION-EXIT-CODE DESCRIPTION
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${ISRF_DATA_DIR:-$here/../shared/data}
tools=$data/../tools
work=$(mktemp -d /tmp/isrf-quality.XXXXXX)
trap 'rm -rf "$work"' EXIT
q() { psql -X -At -v ON_ERROR_STOP=1 -d isrf_quality -c "$1" 2>&1; }
echo "1..8"

python3 "$tools/heldout.py" "$data/ml100k" "$work/ml100k" >/dev/null
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS isrf_quality" -c "CREATE DATABASE isrf_quality" >/dev/null 2>&1
q "CREATE EXTENSION isrf" >/dev/null
PGDATABASE=isrf_quality bash "$here/bench/load_dataset.sh" ml100k_ho "$work/ml100k" >/dev/null 2>&1
q "SET client_min_messages = warning; CALL isrf_train('ml100k_ho')" >/dev/null
[ "$(q "SELECT count(*) FROM isrf.models WHERE name = 'ml100k_ho' AND deployed")" = 1 ]
ok $? "the default model is trained on ml100k with each user's last rating withheld"

q "\\copy (SELECT u.user_id, r.rank, r.item_id FROM (SELECT DISTINCT user_id FROM ml100k_ho.reviews) u, LATERAL isrf_recommend(u.user_id, 10) r ORDER BY 1, 2) TO '$work/served.csv' CSV HEADER" >/dev/null
[ "$(($(wc -l <"$work/served.csv") - 1))" = 9430 ]
ok $? "isrf_recommend served 10 items to each of the 943 users"

# {'HR5': .., 'N5': .., 'HR10': x, 'N10': y} ...
served=$(python3 "$tools/referee.py" score "$data/ml100k" "$work/served.csv")
baseline=$(python3 "$tools/referee.py" baselines-heldout "$data/ml100k" | grep '^markov')
field() { echo "$1" | sed -E "s/.*'$2': ([0-9.]+).*/\1/"; }
echo "# served (isrf_recommend): $served"
echo "# Markov + item-kNN, same information: $baseline"
awk -v a="$(field "$served" HR10)" -v b="$(field "$baseline" HR10)" 'BEGIN { exit !(a > b) }'
ok $? "served HR@10 $(field "$served" HR10) above Markov + item-kNN's $(field "$baseline" HR10)"
awk -v a="$(field "$served" N10)" -v b="$(field "$baseline" N10)" 'BEGIN { exit !(a > b) }'
ok $? "served NDCG@10 $(field "$served" N10) above Markov + item-kNN's $(field "$baseline" N10)"

# the served order through SQL, past the rerank network's window of 100 (where a model keeps one;
# ml100k's default model does not -- test_serve checks the window's order -- but keeps the beam's bonus)
rerank=$(q "SELECT metrics->'score_weights'->>'rerank_net' FROM isrf.models WHERE name = 'ml100k_ho' AND deployed")
echo "# rerank network kept: $rerank"
rises=$(q "SELECT count(*) FROM (SELECT r.score, lag(r.score) OVER (PARTITION BY u ORDER BY r.rank) AS prev FROM generate_series(1, 40) u, LATERAL isrf_recommend(u, 150) r) x WHERE score > prev")
[ "$rises" = 0 ]
ok $? "scores never rise down lists of 150 (rises: $rises)"
differ=$(q "SELECT count(*) FROM (SELECT u, r.rank, r.item_id FROM generate_series(1, 40) u, LATERAL isrf_recommend(u, 150) r WHERE r.rank <= 10 EXCEPT SELECT u, r.rank, r.item_id FROM generate_series(1, 40) u, LATERAL isrf_recommend(u, 10) r) x")
[ "$differ" = 0 ]
ok $? "the first 10 of a list of 150 are the list of 10 (differences: $differ)"

# the standalone driver (a bench tool) on the model CALL isrf_train stored: its rank and
# recommend commands run isrf_rank's and isrf_recommend's code in-process and must give
# what SQL gives -- the direct task of bench/direct_tasks.py for every user, scored in SQL
# and by the driver, and the served lists, scored by the referee
q "SELECT encode(string_agg(c.data, ''::bytea ORDER BY c.seq), 'base64') FROM isrf.model_chunks c JOIN isrf.models m USING (name, version) WHERE m.name = 'ml100k_ho' AND m.deployed" | base64 -d >"$work/m.bin"
python3 "$here/bench/direct_tasks.py" "$data/ml100k" "$work/direct.csv" >/dev/null
q "CREATE TABLE direct_task (user_id bigint, target bigint, cand bigint[])" >/dev/null
q "\\copy direct_task FROM '$work/direct.csv' CSV" >/dev/null
sql_direct=$(q "SELECT round(avg((r.rank <= 10)::int), 4) || ' ' || round(avg(CASE WHEN r.rank <= 10 THEN 1 / log(2, r.rank + 1) ELSE 0 END), 4) FROM direct_task d, LATERAL isrf_rank(d.user_id, d.cand, 'ml100k_ho') r WHERE r.item_id = d.target")
drv_direct=$("$here/build/isrf_driver" rank "$work/m.bin" --tasks "$work/direct.csv" 2>/dev/null |
    sed -nE 's/.*HR@10 ([0-9.]+) NDCG@10 ([0-9.]+).*/\1 \2/p')
echo "# direct task, HR@10 NDCG@10: isrf_rank through SQL $sql_direct, isrf_driver rank $drv_direct"
[ -n "$drv_direct" ] && [ "$sql_direct" = "$drv_direct" ]
ok $? "isrf_driver rank scores the direct task as isrf_rank does ($drv_direct)"
"$here/build/isrf_driver" recommend "$work/m.bin" --lists "$work/drv_served.csv" >/dev/null 2>&1
drv_served=$(python3 "$tools/referee.py" score "$data/ml100k" "$work/drv_served.csv")
echo "# isrf_driver recommend: $drv_served"
[ "$(field "$drv_served" HR10) $(field "$drv_served" N10)" = "$(field "$served" HR10) $(field "$served" N10)" ]
ok $? "isrf_driver recommend serves what isrf_recommend serves (HR@10 $(field "$drv_served" HR10))"

psql -X -q -d postgres -c "DROP DATABASE isrf_quality WITH (FORCE)" >/dev/null 2>&1
exit $((failed > 0))
