#!/usr/bin/env bash
# bench/load.sh: the model server under load and abuse.  64 clients (by
# default, for 10 minutes) call isrf_recommend and isrf_rank for random
# users (unknown ones included): pgbench clients (through bench/load.sql's
# wrappers, which record errors), and one in eight a psql session whose
# every request has a random statement_timeout of 1 to 50 ms (pgbench
# would give up on a client at its first cancel).  The served model is
# retrained and redeployed every minute; the model server is killed with
# SIGTERM and with SIGKILL (which makes the postmaster restart the cluster,
# so the clients connect again).  Reports requests made, answered,
# cancelled and failed, latency p50 / p99 per call, each kill's recovery
# time, and checks that no request hung past its timeout (10 s of slack)
# and that only requests in flight at a kill failed.
#
#   bash bench/load.sh                          # 64 clients, 600 s, 2 SIGTERM + 2 SIGKILL
#   bash bench/load.sh --seconds 120 --kills 1 --redeploy-every 30 --dataset synthetic
#                                               # the CI version (test/run_tests.sh)
#
# Options: --seconds N, --clients N (>= 8), --kills N (N of each signal),
# --redeploy-every N (seconds), --dataset ml100k|synthetic (default ml100k
# when $ISRF_DATA_DIR/ml100k exists), --db NAME (default isrf_load,
# dropped and created).  Uses the PG* environment of a running cluster
# with isrf preloaded and max_connections >= clients + 10; SIGKILL needs the
# right to signal the server's processes.  Scratch (client logs) in
# ISRF_LOAD_WORK or a fresh /tmp/isrf-load.* (kept).  Ends with
# "load: N passed, N failed", one per check.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=600
clients=64
kills=2
redeploy_every=60
dataset=
db=isrf_load
data_dir=${ISRF_DATA_DIR:-$root/../shared/data}
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --kills) kills=$2; shift 2 ;;
        --redeploy-every) redeploy_every=$2; shift 2 ;;
        --dataset) dataset=$2; shift 2 ;;
        --db) db=$2; shift 2 ;;
        *) echo "usage: bench/load.sh [--seconds N] [--clients N] [--kills N] [--redeploy-every N] [--dataset ml100k|synthetic] [--db NAME]" >&2
           exit 2 ;;
    esac
done
[ "$clients" -ge 8 ] || { echo "load: --clients must be at least 8" >&2; exit 2; }
[ -n "$dataset" ] || { [ -d "$data_dir/ml100k" ] && dataset=ml100k || dataset=synthetic; }
work=${ISRF_LOAD_WORK:-$(mktemp -d /tmp/isrf-load.XXXXXX)}
mkdir -p "$work"
chmod 755 "$work"
export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1" 2>&1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '[%6.1f s] %s\n' "$(since "$t_start")" "$*"; }
passed=0
failed=0
check() {   # check CONDITION-EXIT-CODE DESCRIPTION
    if [ "$1" = 0 ]; then echo "ok - $2"; passed=$((passed + 1)); else echo "not ok - $2"; failed=$((failed + 1)); fi
}

# --- the database, the data, the model ----------------------------------------
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null || exit 1
q "CREATE EXTENSION isrf" >/dev/null
# the first version, and the redeploys' (lighter: on a busy 2-core machine a
# full ml100k training under this load takes minutes, not one)
if [ "$dataset" = ml100k ]; then
    PGDATABASE=$db bash "$root/bench/load_dataset.sh" ml100k "$data_dir/ml100k" >/dev/null || exit 1
    config='{"model": "bench", "epochs": 2}'
    redeploy_config='{"model": "bench", "epochs": 1, "dm": 32, "group_k": 10, "d_model": 16, "tf_layers": 1, "batch_size": 512, "eval_users": 200}'
else
    q "SELECT isrf.create_synthetic_dataset('synthetic', users => 1500, items => 300, groups => 6, per_user => 15)" >/dev/null
    config='{"model": "bench", "epochs": 2, "dm": 32}'
    redeploy_config=$config
fi
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$root/bench/load.sql" >/dev/null || exit 1
t0=$(now)
q "CALL isrf_train('$dataset', '$config')" >/dev/null || { echo "load: training failed"; exit 1; }
train_s=$(since "$t0")
read -r users items <<<"$(q "SELECT users, items FROM isrf.dataset_stats('$dataset')" | tr '|' ' ')"
echo "load: $clients clients for $seconds s on $dataset ($users users, $items items; first training $train_s s)"

# --- clients: pgbench for recommend and rank, psql for short timeouts --------
printf '%s\n' '\set u random(1, :max_user + 50)' \
    "SELECT isrf_bench.call('recommend', :u, 10, 0, 'bench');" >"$work/recommend.pgb"
printf '%s\n' '\set u random(1, :max_user + 50)' \
    "SELECT isrf_bench.call('rank', :u, 100, :max_item, 'bench');" >"$work/rank.pgb"
max_user=$users                  # ids 1..n in both data sets; 50 more are unknown users
max_item=$((items + 50))         # candidates: unknown items included
n_rank=$((clients / 4))
n_cancel=$((clients / 8))
n_rec=$((clients - n_rank - n_cancel))
timeout_ms=5000                  # the pgbench clients' statement_timeout
hang_slack_ms=10000              # a request may overrun its timeout by this much: a hang
                                 # is unbounded, while a backend's first in-process call
                                 # prepares the model with interrupts held (seconds
                                 # when the machine is this busy)

# start_segment N SECONDS: the pgbench runs of segment N, in the background
start_segment() {
    local seg=$1 secs=$2 kind n
    for kind in recommend rank; do
        if [ $kind = recommend ]; then n=$n_rec; else n=$n_rank; fi
        (cd "$work" && PGOPTIONS="$PGOPTIONS -c statement_timeout=$timeout_ms" \
            pgbench -n -c "$n" -j 2 -T "$secs" -f "$kind.pgb" -D max_user="$max_user" -D max_item="$max_item" \
                -l --log-prefix="pgb.$seg.$kind" "$db" >"pgbench.$seg.$kind.out" 2>&1) &
        pids+=($!)
    done
}

# cancel_requests SEED: 1000 requests for psql, each after "SET
# statement_timeout" to 1..50 ms and "\echo T=<ms>" (psql's timing follows)
cancel_requests() {
    awk -v seed="$1" -v mu="$max_user" -v mi="$max_item" -v q="'" 'BEGIN {
        srand(seed); print "\\timing on"
        for (n = 0; n < 1000; n++) {
            t = 1 + int(rand() * 50); u = 1 + int(rand() * (mu + 50))
            printf "SET statement_timeout = %d;\n\\echo T=%d\n", t, t
            if (rand() < 0.25)
                printf "SELECT count(*) FROM isrf_rank(%d, ARRAY(SELECT DISTINCT 1 + floor(random() * %d)::bigint FROM generate_series(1, 100)), %sbench%s);\n", u, mi, q, q
            else
                printf "SELECT count(*) FROM isrf_recommend(%d, 10, %sbench%s);\n", u, q, q
        } }'
}
# cancel_client I: psql sessions of such requests until the end (a new one
# when a session is lost); output to cancel.I.out, errors to cancel.I.err
cancel_client() {
    local i=$1 batch=0
    while awk -v e="$end_at" -v b="$(now)" 'BEGIN { exit !(b < e - 1) }'; do
        batch=$((batch + 1))
        cancel_requests "$i$batch" | psql -X -At -q -d "$db" >>"$work/cancel.$i.out" 2>>"$work/cancel.$i.err" ||
            sleep 0.2
    done
}

# probe SINCE: poll until a request is answered; prints the seconds since SINCE
probe() {
    local t=$1 i
    for i in $(seq 1 1200); do
        [ "$(psql -X -At -q -d "$db" -c "SET statement_timeout = '30s'" \
              -c "SELECT count(*) FROM isrf_recommend(1, 5, 'bench')" 2>/dev/null)" = 5 ] && break
        sleep 0.05
    done
    since "$t"
}
server_pid() { q "SELECT pid FROM isrf_status() WHERE database = current_database() AND pid IS NOT NULL"; }

# --- the run -------------------------------------------------------------------
# events: a SIGTERM and a SIGKILL of the server, kills times each, spread out
events=()
for i in $(seq 0 $((2 * kills - 1))); do
    at=$((seconds * (i + 1) / (2 * kills + 1)))
    if [ $((i % 2)) = 0 ]; then events+=("$at TERM"); else events+=("$at KILL"); fi
done
: >"$work/kills"
: >"$work/redeploys"
t_start=$(now)
end_at=$(awk -v a="$t_start" -v s="$seconds" 'BEGIN { printf "%.3f", a + s }')
seg=1
pids=()
start_segment $seg "$seconds"
cancel_pids=()
for i in $(seq 1 "$n_cancel"); do cancel_client "$i" & cancel_pids+=($!); done
next_redeploy=$redeploy_every
redeploy_pid=
ev=0
while :; do
    elapsed=$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
    [ "$elapsed" -ge "$seconds" ] && break
    if [ -n "$redeploy_pid" ] && ! kill -0 "$redeploy_pid" 2>/dev/null; then
        wait "$redeploy_pid"; redeploy_pid=
    fi
    if [ "$elapsed" -ge "$next_redeploy" ] && [ -z "$redeploy_pid" ]; then
        next_redeploy=$((elapsed + redeploy_every))
        log "redeploy: CALL isrf_train (the served model, a new version)"
        ( t=$(now); out=$(q "CALL isrf_train('$dataset', '$redeploy_config')"); rc=$?
          printf '%s %s %s %s\n' "$t" "$(now)" "$rc" "$(echo "$out" | tr '\n' ' ')" >>"$work/redeploys" ) &
        redeploy_pid=$!
    fi
    if [ $ev -lt ${#events[@]} ] && [ "$elapsed" -ge "${events[$ev]% *}" ]; then
        sig=${events[$ev]#* }
        ev=$((ev + 1))
        pid=$(server_pid)
        if [ -z "$pid" ]; then
            log "no server to kill"
        elif [ "$sig" = TERM ]; then
            kt=$(now); q "SELECT pg_terminate_backend($pid)" >/dev/null
            rec=$(probe "$kt")
            echo "TERM $kt $rec $pid" >>"$work/kills"
            log "SIGTERM to the server (pid $pid, pg_terminate_backend): answered again after $rec s"
        else
            kt=$(now); kill -KILL "$pid"
            rec=$(probe "$kt")
            echo "KILL $kt $rec $pid" >>"$work/kills"
            log "SIGKILL to the server (pid $pid; the cluster restarts): answered again after $rec s"
            # every session was lost: pgbench again for the time left
            wait "${pids[@]}" 2>/dev/null
            left=$(awk -v e="$end_at" -v b="$(now)" 'BEGIN { printf "%d", e - b }')
            if [ "$left" -gt 2 ]; then
                seg=$((seg + 1)); pids=()
                start_segment $seg "$left"
                log "pgbench started again for the $left s left"
            fi
        fi
    fi
    sleep 0.5
done
wait "${pids[@]}" "${cancel_pids[@]}" 2>/dev/null
wall=$(since "$t_start")
log "clients done"
[ -n "$redeploy_pid" ] && wait "$redeploy_pid"

# --- figures -------------------------------------------------------------------
# "call latency_ms timeout_ms" per request: pgbench's per-transaction logs
# (client tx latency_us script epoch_s epoch_us), the psql clients' "T=<ms>"
# lines each followed by the request's "Time: <ms> ms"
for kind in recommend rank; do
    cat "$work"/pgb.*."$kind".* 2>/dev/null | awk -v k="$kind" -v t="$timeout_ms" '{ printf "%s %.3f %d\n", k, $3 / 1000.0, t }'
done >"$work/latencies"
cat "$work"/cancel.*.out 2>/dev/null | awk '/^T=/ { t = substr($0, 3); want = 1; next }
    want && /^Time: / { printf "cancel %s %s\n", $2, t; want = 0 }' >>"$work/latencies"
made=$(wc -l <"$work/latencies")
aborted=$(cat "$work"/pgbench.*.out | grep -cE "client [0-9]+ aborted")
# 57014 is a cancel whatever its words: a statement_timeout can also show as
# "due to user request" (PostgreSQL signals the timeout with SIGINT, and a
# second one may land on the next check); nothing else cancels these clients
cancelled_re="canceling statement due to (statement timeout|user request)"
c_cancels=$(cat "$work"/cancel.*.err 2>/dev/null | grep -cE "$cancelled_re")
c_errors=$(cat "$work"/cancel.*.err 2>/dev/null | grep "ERROR" | grep -vcE "$cancelled_re")
cancels=$(($(q "SELECT count(*) FROM isrf_bench.cancels") + c_cancels))
fails=$(($(q "SELECT count(*) FROM isrf_bench.failures") + c_errors))
pct() {   # pct KIND P: the P-th percentile latency (ms) of KIND
    awk -v k="$1" '$1 == k { print $2 }' "$work/latencies" | sort -g |
        awk -v p="$2" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] }'
}
overrun=$(awk '{ o = $2 - $3; if (o > m) m = o } END { printf "%.0f", m }' "$work/latencies")
echo
echo "requests made:        $made (recommend $(grep -c '^recommend' "$work/latencies"), rank $(grep -c '^rank' "$work/latencies"), with 1-50 ms timeouts $(grep -c '^cancel' "$work/latencies")) in $wall s: $(awk -v n="$made" -v s="$wall" 'BEGIN { printf "%.0f", n / s }')/s"
echo "answered:             $((made - cancels - fails))"
echo "cancelled (timeout):  $cancels"
echo "failed:               $fails (pgbench clients: $(q "SELECT coalesce(string_agg(sqlstate || ' x' || n, ', '), 'none') FROM (SELECT sqlstate, count(*) n FROM isrf_bench.failures GROUP BY 1) s"); psql clients: $c_errors)"
echo "lost in the crash restarts (pgbench clients aborted): $aborted"
printf 'latency ms             p50      p99      max\n'
for kind in recommend rank cancel; do
    printf '  %-18s %8s %8s %8s\n' "$kind" "$(pct $kind 50)" "$(pct $kind 99)" "$(pct $kind 100)"
done
echo "longest past its statement_timeout: $overrun ms"
echo "redeploys:            $(wc -l <"$work/redeploys") ($(awk '$3 == 0 { n++; s += $2 - $1 } END { printf "%d succeeded, mean %.1f s", n, n ? s / n : 0 }' "$work/redeploys")); versions: $(q "SELECT count(*) FROM isrf.models WHERE name = 'bench'")"
while read -r sig kt rec pid; do
    nf=$(q "SELECT count(*) FROM isrf_bench.failures WHERE at >= to_timestamp($kt) AND at < to_timestamp($kt) + interval '2 s'")
    echo "kill:                 SIG$sig at $(awk -v a="$t_start" -v b="$kt" 'BEGIN { printf "%.0f", b - a }') s (server pid $pid): answered again after $rec s; pgbench requests failed: $nf"
done <"$work/kills"
echo "scratch:              $work"
echo

# --- checks --------------------------------------------------------------------
hangs=$(awk -v s="$hang_slack_ms" '$2 > $3 + s { n++ } END { print n + 0 }' "$work/latencies")
check $([ "$hangs" = 0 ]; echo $?) "no request ran more than $hang_slack_ms ms past its statement_timeout: $hangs did (longest $overrun ms)"
# 20 s of slack: the clients' own start and end (64 psql and pgbench
# processes on 2 cores) take seconds more when the machine is busy with
# other work; a client that waits on a hung request overruns by far more
over=$(awk -v w="$wall" -v s="$seconds" -v t="$timeout_ms" 'BEGIN { print (w > s + t / 1000 + 20) }')
check $([ "$over" = 0 ]; echo $?) "the clients ended on time ($wall s for $seconds s): none waited past the end"
# only requests in flight at a SIGTERM may fail, with 08006, within 2 s of it
windows=$(awk '$1 == "TERM" { printf "%s(at >= to_timestamp(%s) AND at < to_timestamp(%s) + interval %s)", sep, $2, $2, "'"'"'2 s'"'"'"; sep = " OR " }' "$work/kills")
unexpected=$(q "SELECT count(*) FROM isrf_bench.failures WHERE NOT (sqlstate = '08006' AND (${windows:-false}))")
expected_errors="$cancelled_re|isrf model server exited while answering|terminating connection because of crash|server closed the connection|connection to server .* failed|the database system is (in recovery mode|starting up|shutting down)"
c_unexpected=$(cat "$work"/cancel.*.err 2>/dev/null | grep "ERROR" | grep -vcE "$expected_errors")
check $([ "$((unexpected + c_unexpected))" = 0 ]; echo $?) \
    "no request failed but those in flight at a kill (08006, or the connection at a crash restart): $unexpected + $c_unexpected others"
if [ "$unexpected" != 0 ]; then
    q "SELECT at, call, sqlstate, message FROM isrf_bench.failures WHERE NOT (sqlstate = '08006' AND (${windows:-false})) LIMIT 10" | sed 's/^/#   /'
fi
cat "$work"/cancel.*.err 2>/dev/null | grep "ERROR" | grep -vE "$expected_errors" | head -10 | sed 's/^/#   /'
n_kills=$(wc -l <"$work/kills")
check $([ "$n_kills" = $((2 * kills)) ]; echo $?) "the server was killed $n_kills times ($kills SIGTERM, $kills SIGKILL)"
slow=$(awk '$3 >= 10 { n++ } END { print n + 0 }' "$work/kills")
check $([ "$slow" = 0 ]; echo $?) "requests were answered again within 10 s of every kill"
bad_redeploys=$(awk '$3 != 0 { n++ } END { print n + 0 }' "$work/redeploys")
lost_redeploys=$(awk '$3 != 0 && !/terminat|server closed|crash|recovery/ { n++ } END { print n + 0 }' "$work/redeploys")
check $([ "$lost_redeploys" = 0 ]; echo $?) "every redeploy succeeded but those cut by a crash restart ($bad_redeploys cut)"
busy=1
for i in $(seq 1 50); do
    [ "$(q "SELECT coalesce(sum(slots), 0) FROM isrf.server_slots() WHERE state <> 'free'")" = 0 ] && { busy=0; break; }
    sleep 0.1
done
check $busy "no request slot was left busy"
[ "$(psql -X -At -q -d "$db" -c "SET statement_timeout = '10s'" -c "SELECT count(*) FROM isrf_recommend(1, 5, 'bench')" 2>/dev/null)" = 5 ]
check $? "the latest version is served afterwards"
echo "load: $passed passed, $failed failed"
[ "$failed" = 0 ]
