#!/usr/bin/env bash
# TAP: the model server survives what operators do to it — its process
# killed, the whole cluster restarted — and starts with the cluster for the
# databases in isrf.server_databases.  Run by test/run_tests.sh (prove) with
# the throwaway cluster's PGHOST, PGPORT, ISRF_USER, ISRF_CLUSTER, ISRF_PG_BIN.
set -u
. "$(dirname "$0")/tap.sh"
q() { psql -X -At -v ON_ERROR_STOP=1 -d isrf_srv -c "$1" 2>&1; }
restart() {
    runuser -u "$ISRF_USER" -- "$ISRF_PG_BIN/pg_ctl" -D "$ISRF_CLUSTER/data" -m fast -w restart \
        -l "$ISRF_CLUSTER/server.log" >/dev/null
}
served() {   # the server answers for user 1 with 5 items
    [ "$(q "SELECT count(*) FROM isrf_recommend(1, 5)")" = 5 ]
}
echo "1..8"

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS isrf_srv" -c "CREATE DATABASE isrf_srv" >/dev/null 2>&1
q "CREATE EXTENSION isrf" >/dev/null
q "SELECT isrf.create_synthetic_dataset('srv', users => 150, items => 60, groups => 3, per_user => 8)" >/dev/null
q "SET client_min_messages = warning; CALL isrf_train('srv', '{\"group_k\": 5, \"dm\": 8}')" >/dev/null
served; ok $? "a model is trained and served"
pid1=$(q "SELECT pid FROM isrf_status() WHERE database = 'isrf_srv'")
[ -n "$pid1" ]; ok $? "the model server of the database is running (pid $pid1)"

# kill the server process: the next request is answered by a new one
q "SELECT pg_terminate_backend($pid1)" >/dev/null
sleep 2
served; ok $? "requests are answered after the server process was terminated"
pid2=$(q "SELECT pid FROM isrf_status() WHERE database = 'isrf_srv'")
[ -n "$pid2" ] && [ "$pid2" != "$pid1" ]; ok $? "a new server process took over ($pid2)"

# restart the cluster: models persist and are served again
restart
served; ok $? "the deployed model is served after a cluster restart"

# servers named in isrf.server_databases start with the cluster
q "ALTER SYSTEM SET isrf.server_databases = 'isrf_srv'" >/dev/null
restart
for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -n "$(q "SELECT pid FROM isrf_status() WHERE database = 'isrf_srv' AND pid IS NOT NULL")" ] && break
    sleep 1
done
[ -n "$(q "SELECT pid FROM isrf_status() WHERE database = 'isrf_srv' AND pid IS NOT NULL")" ]
ok $? "isrf.server_databases starts the server with the cluster, before any request"
served; ok $? "the preloaded server answers"

q "ALTER SYSTEM RESET isrf.server_databases" >/dev/null
restart
q "SELECT isrf.drop_dataset('srv', cascade => true)" >/dev/null
[ "$(q "SELECT count(*) FROM isrf.models")" = 0 ]; ok $? "cleaned up"
psql -X -q -d postgres -c "DROP DATABASE isrf_srv WITH (FORCE)" >/dev/null 2>&1
exit $((failed > 0))
