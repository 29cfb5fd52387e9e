#!/usr/bin/env bash
# TAP: what held up in issue 11, kept so — 8 clients served through
# redeploys without one failure; a cancelled training leaves the deployed
# version deployed and served; a second training of a model that is being
# trained is refused.  Run by test/run_tests.sh (prove) with the throwaway
# cluster's PGHOST, PGPORT, ISRF_USER, ISRF_CLUSTER, ISRF_PG_BIN.
set -u
DB=isrf_redeploy
. "$(dirname "$0")/serving.sh"
tap_start 10 $DB

make_db $DB
served; ok $? "a model is served"

# --- 8 clients (isrf_recommend and isrf_rank) while the model is retrained twice
cat >"$work/mix.pgb" <<'EOF'
\set u random(1, 160)
\set r random(1, 4)
SELECT isrf_bench.call(CASE WHEN :r = 1 THEN 'rank' ELSE 'recommend' END, :u, CASE WHEN :r = 1 THEN 20 ELSE 10 END, 70);
EOF
(cd "$work" && PGOPTIONS="$PGOPTIONS -c statement_timeout=10000" pgbench -n -c 8 -j 2 -T 7 -f mix.pgb $DB >pgbench.out 2>&1) &
bench=$!
sleep 1
q "CALL isrf_train('srv', '{\"group_k\": 5, \"dm\": 8, \"epochs\": 2}')" >/dev/null
sleep 1
q "CALL isrf_train('srv', '{\"group_k\": 6, \"dm\": 8, \"epochs\": 2}')" >/dev/null
wait $bench
ok $? "pgbench ran to its end"
done_tx=$(sed -n 's/^number of transactions actually processed: //p' "$work/pgbench.out")
is "$(q "SELECT count(*) FROM isrf_bench.failures") $(q "SELECT count(*) FROM isrf_bench.cancels")" \
   "0 0" "8 clients through two redeploys: $done_tx requests, none failed or cancelled"
q "SELECT * FROM isrf_bench.failures" | sed 's/^/# /'
is "$(q "SELECT version FROM isrf.models WHERE name = 'srv' AND deployed")" 3 "the third version is deployed"
served
q "SELECT models FROM isrf_status() WHERE database = current_database()" | grep -q "srv v3"
ok $? "... and it is the one the server serves"

# --- a cancelled training leaves the deployed version in place ------------
slow='{"epochs": 600, "patience": 600, "batch_size": 16}'   # long enough to be stopped (60 epochs took about 2 s)
q "CALL isrf_train('srv', '$slow')" >/dev/null 2>&1 &
trainer=$!
until_sql 60 "SELECT count(*) FROM isrf.training_progress WHERE model = 'srv' AND stage = 'train'" 1
out=$(psql -X -At -d $DB -v VERBOSITY=sqlstate -c "CALL isrf_train('srv')" 2>&1)
is "$out" "ERROR:  55P03" "a second training of a model that is being trained is refused (55P03)"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL isrf_train(''srv''%' AND pid <> pg_backend_pid()" >/dev/null
wait $trainer
is "$(q "SELECT status FROM isrf.models WHERE name = 'srv' ORDER BY version DESC LIMIT 1")" cancelled \
   "a training cancelled mid-way is marked cancelled"
is "$(q "SELECT version FROM isrf.models WHERE name = 'srv' AND deployed")" 3 "... and the version deployed before stays deployed"
served; ok $? "... and served"
out=$(psql -X -At -d $DB -c "SET statement_timeout = '2s'" -c "CALL isrf_train('srv', '$slow')" 2>&1)
echo "$out" | grep -q "statement timeout" &&
    [ "$(q "SELECT version FROM isrf.models WHERE name = 'srv' AND deployed")" = 3 ] && served
ok $? "a training stopped by statement_timeout likewise leaves version 3 deployed and served"
exit $((failed > 0))
