#!/usr/bin/env bash
# TAP: when the model server exits under load — terminated, after a device
# error, killed with SIGKILL — no waiting backend hangs: a request it was
# answering fails at once with 08006 (or is answered in-process,
# isrf.server_fallback), one it had not taken goes to the next server,
# which the request starts (issue 11, finding 3).  Run by
# test/run_tests.sh (prove) with the throwaway cluster's PGHOST, PGPORT,
# ISRF_USER, ISRF_CLUSTER, ISRF_PG_BIN.
set -u
DB=isrf_exit
. "$(dirname "$0")/serving.sh"
tap_start 16 $DB

make_db $DB
served; ok $? "a model is served"
pid1=$(server_pid)

# --- pg_terminate_backend of the server during an 8-client pgbench run ----
cat >"$work/rec.pgb" <<'EOF'
\set u random(1, 150)
SELECT isrf_bench.call('recommend', :u, 10);
EOF
(cd "$work" && PGOPTIONS="$PGOPTIONS -c statement_timeout=10000" pgbench -n -c 8 -j 2 -T 6 -f rec.pgb -l --log-prefix=pgb $DB >pgbench.out 2>&1) &
bench=$!
sleep 2
kill_at=$(q "SELECT extract(epoch FROM clock_timestamp()) FROM isrf_status(), pg_terminate_backend(pid)
             WHERE database = current_database()")
wait $bench
ok $? "pgbench ran to its end (no client aborted)"
# every request in flight at the kill ended within a second of it
read -r spanning max_wait <<<"$(cat "$work"/pgb.* | awk -v k="$kill_at" '
    { end = $5 + $6 / 1e6; start = end - $3 / 1e6
      if (start <= k && end >= k) { c++; if (end - k > m) m = end - k } }
    END { printf "%d %.3f\n", c, m }')"
[ "${spanning:-0}" -ge 1 ] && awk -v m="${max_wait:-99}" 'BEGIN { exit !(m < 1.0) }'
ok $? "the $spanning requests in flight when the server was terminated all ended within 1 s (longest ${max_wait} s past the kill)"
is "$(q "SELECT count(*) FILTER (WHERE sqlstate <> '08006') FROM isrf_bench.failures")" 0 \
   "the requests that failed failed with 08006 ($(q "SELECT count(*) FROM isrf_bench.failures") of them)"
after=$(cat "$work"/pgb.* | awk -v k="$kill_at" '$5 + $6 / 1e6 > k + 1 { c++ } END { print c + 0 }')
[ "$after" -gt 0 ]; ok $? "requests were answered again within a second of the kill ($after after it)"
pid2=$(server_pid)
[ -n "$pid2" ] && [ "$pid2" != "$pid1" ]; ok $? "a new server took over ($pid2), started by the waiting requests"

# --- a device error: the server answers 08006 and exits ----------------------
gcc -shared -fPIC -O1 -Wall -Wextra -Werror -I"$root/src/core" -DFAULT_PID_FILE="\"$work/fault_pid\"" \
    -o "$work/fault.so" "$root/test/tap/fault_backend.c"
ok $? "the fault-injecting backend builds"
q "ALTER DATABASE $DB SET isrf.device = 'cuda'" >/dev/null
q "ALTER DATABASE $DB SET isrf.cuda_library = '$work/fault.so'" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM isrf_status() WHERE database = current_database()" >/dev/null
until_true 5 no_server
served; ok $? "a server on the fault-injecting backend answers"
is "$(q "SELECT device FROM isrf_status() WHERE database = current_database()")" \
   "fault-injecting CPU backend (test)" "... which is the one it runs on"
pid3=$(server_pid)
echo "$pid3" >"$work/fault_pid"
t0=$(now)
out=$(psql -X -At -d $DB -v VERBOSITY=verbose -c "SET statement_timeout = '10s'" \
      -c "SELECT count(*) FROM isrf_recommend(2, 5)" 2>&1)
secs=$(since "$t0")
echo "$out" | grep -q "08006.*exited while answering" && echo "$out" | grep -q "injected device fault"
ok $? "a device error in the server: the request fails with 08006, the device's message in the detail"
awk -v s="$secs" 'BEGIN { exit !(s < 2) }'; ok $? "... at once (${secs} s)"
until_sql 5 "SELECT count(*) FROM isrf_status() WHERE pid = $pid3" 0
served; ok $? "the next request starts a new server, which answers"
[ "$(server_pid)" != "$pid3" ]; ok $? "... a new process ($(server_pid))"
server_pid >"$work/fault_pid"
is "$(psql -X -At -q -d $DB -c "SET isrf.server_fallback = in_process" -c "SET statement_timeout = '10s'" \
      -c "SELECT count(*) FROM isrf_recommend(2, 5)" 2>&1)" 5 \
   "with isrf.server_fallback = in_process a device error in the server is answered in-process"
rm -f "$work/fault_pid"
q "ALTER DATABASE $DB RESET isrf.device" >/dev/null
q "ALTER DATABASE $DB RESET isrf.cuda_library" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM isrf_status() WHERE database = current_database()" >/dev/null
until_true 5 no_server

# --- kill -9: the postmaster restarts the cluster; answers again, models intact
served
pid4=$(server_pid)
kill -9 "$pid4"
t0=$(now)
until_true 30 served
ok $? "after kill -9 of the server (a cluster restart) requests are answered again ($(since "$t0") s)"
is "$(q "SELECT model_name || ' v' || version FROM isrf.model_check('srv')")" "srv v1" "... and the stored model is intact"
exit $((failed > 0))
