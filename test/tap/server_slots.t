#!/usr/bin/env bash
# TAP: a request slot of the model server comes back whatever its backend
# does — cancelled (statement_timeout) before the server took the request,
# while it computes or after it replied, terminated while it waits — so
# serving never wedges, in this database or another (issue 11, finding 2);
# and a server that fails to start is forgotten: the call says so at once
# (or answers in-process, isrf.server_fallback) and the next call starts a
# new one (finding 6).  Run by test/run_tests.sh (prove) with the throwaway
# cluster's PGHOST, PGPORT, ISRF_USER, ISRF_CLUSTER, ISRF_PG_BIN.
set -u
DB=isrf_slots
. "$(dirname "$0")/serving.sh"
DB2=isrf_slots2
DB3=isrf_slots3
stopped=
tap_cleanup_more() {
    [ -n "$stopped" ] && kill -CONT "$stopped" 2>/dev/null
    psql -X -q -d postgres -c "ALTER DATABASE $DB3 ALLOW_CONNECTIONS true" >/dev/null 2>&1
}
tap_start 18 $DB $DB2 $DB3

make_db $DB
make_db $DB2
served; ok $? "a model is served"
served $DB2; ok $? "a model is served in a second database"
pid=$(server_pid)

# --- the server stopped: 140 requests time out, more than there are slots --
kill -STOP "$pid"; stopped=$pid
for s in 1 2; do
    for i in $(seq 1 70); do
        echo "SELECT count(*) FROM isrf_recommend($(( (i * 7 + s) % 150 + 1 )), 200);"
    done | PGOPTIONS="-c statement_timeout=100" psql -X -At -d $DB >/dev/null 2>"$work/timeout.$s" &
done
wait
is "$(cat "$work"/timeout.* | grep -c 'canceling statement due to statement timeout')" 140 \
   "140 requests posted to a stopped server are cancelled by statement_timeout"
is "$(busy_slots)" 0 "... and each gave its slot back at once, the server still stopped"

# a backend terminated while it waits gives its slot back too
psql -X -At -d $DB -c "SELECT count(*) FROM isrf_recommend(3, 5)" >/dev/null 2>&1 &
waiter=$!
until_sql 10 "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'
                AND query LIKE '%isrf_recommend(3, 5)%' AND pid <> pg_backend_pid()" 1
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%isrf_recommend(3, 5)%'
    AND pid <> pg_backend_pid()" >/dev/null
wait $waiter
until_true 5 slots_free; ok $? "a backend terminated while its request waits gives the slot back"
kill -CONT "$pid"; stopped=

served; ok $? "the server, continued, answers again"
served $DB2; ok $? "... and so does the second database's"

# --- 8 sessions x 40 requests with a 15 ms timeout: cancelled in every state -
for s in $(seq 1 8); do
    for i in $(seq 1 40); do
        echo "SELECT count(*) FROM isrf_recommend($(( (i * 13 + s * 5) % 150 + 1 )), 200);"
    done | PGOPTIONS="-c statement_timeout=15" psql -X -At -d $DB >"$work/storm.$s" 2>&1 &
done
wait
answered=$(cat "$work"/storm.* | grep -cx '[0-9]*')
cancelled=$(cat "$work"/storm.* | grep -c 'canceling statement due to statement timeout')
is "$((answered + cancelled))" 320 "320 requests with a 15 ms timeout: each answered or cancelled ($answered answered, $cancelled cancelled)"
until_true 5 slots_free; ok $? "no slot is left busy"
served; ok $? "the server answers afterwards"
served $DB2; ok $? "... and the second database's"

# --- clients terminated mid-stream, whatever state their request is in ----
for s in $(seq 1 8); do
    (for i in $(seq 1 400); do echo "SELECT count(*) FROM isrf_recommend($(( (i + s) % 150 + 1 )), 200);"; done |
        psql -X -At -d $DB >/dev/null 2>&1) &
done
sleep 2
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()
    AND backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null
wait
until_true 5 slots_free; ok $? "8 clients terminated mid-stream leave no slot busy"
served; ok $? "... and the server answers"

# --- finding 6: a server that cannot start is forgotten --------------------
make_db $DB3
served $DB3 || true
psql -X -At -v ON_ERROR_STOP=0 -d $DB3 >"$work/start.out" 2>&1 <<SQL
\set VERBOSITY sqlstate
-- this session stays connected; the server may not connect
SELECT pg_terminate_backend(pid) FROM isrf_status() WHERE database = current_database();
DO \$\$ BEGIN
    WHILE EXISTS (SELECT FROM isrf_status() WHERE database = current_database()) LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
END \$\$;
\\! psql -X -q -d postgres -c 'ALTER DATABASE $DB3 ALLOW_CONNECTIONS false'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM isrf_recommend(1, 5);
SELECT 'secs ' || round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 1);
SELECT 'starting ' || count(*) FROM isrf_status() WHERE database = current_database();
SET isrf.server_fallback = in_process;
SELECT 'in_process ' || count(*) FROM isrf_recommend(1, 5);
RESET isrf.server_fallback;
\\! psql -X -q -d postgres -c 'ALTER DATABASE $DB3 ALLOW_CONNECTIONS true'
SELECT 'again ' || count(*) FROM isrf_recommend(1, 5);
SQL
grep -q '^ERROR:  08006' "$work/start.out"; ok $? "a server that cannot connect: the call fails with 08006"
secs=$(sed -n 's/^secs //p' "$work/start.out")
awk -v s="${secs:-99}" 'BEGIN { exit !(s < 3) }'; ok $? "... at once (${secs:-?} s), not after waiting for it"
is "$(sed -n 's/^starting //p' "$work/start.out")" 0 "... and its entry is forgotten (isrf_status shows none)"
is "$(sed -n 's/^in_process //p' "$work/start.out")" 5 "with isrf.server_fallback = in_process the session answers itself"
is "$(sed -n 's/^again //p' "$work/start.out")" 5 "connections allowed again: the next call starts a server that answers"
[ $failed = 0 ] || sed 's/^/# /' "$work/start.out"
exit $((failed > 0))
