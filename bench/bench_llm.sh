#!/usr/bin/env bash
# bench/bench_llm.sh [DELAY_MS]: throughput of the LLM description jobs
# (isrf.describe_items) against the mock server test/llm_mock.py, on a
# throwaway cluster (like test/demo.sh), with 1, 8 and 32 requests in
# flight: rows per second, first with every request taking DELAY_MS (default
# 200, a fast local LLM) against the ideal concurrency / (3 x delay), then
# with an instant server, which shows what the client, the worker and the
# row writes cost by themselves.
set -euo pipefail
. "$(dirname "$0")/../test/lib.sh"
delay=${1:-200}

isrf_bench_cluster
export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -c "CREATE EXTENSION isrf" \
     -c "SELECT isrf.create_synthetic_dataset('llm', users => 100, items => 3000, groups => 8)" \
     -c "ALTER DATABASE bench SET isrf.llm_model = 'mock'" >/dev/null

mock_pid=
start_mock() {   # start_mock DELAY_MS
    [ -n "$mock_pid" ] && { kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true; }
    rm -f "$ISRF_WORK/port"
    python3 "$ISRF_ROOT/test/llm_mock.py" --port 0 --port-file "$ISRF_WORK/port" --delay-ms "$1" \
        2>>"$ISRF_WORK/mock.log" &
    mock_pid=$!
    for _ in $(seq 1 100); do [ -s "$ISRF_WORK/port" ] && break; sleep 0.05; done
    psql -X -q -c "ALTER SYSTEM SET isrf.llm_endpoint = 'http://127.0.0.1:$(cat "$ISRF_WORK/port")/v1'" \
         -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}
trap '[ -n "$mock_pid" ] && kill "$mock_pid"; isrf_cluster_stop' EXIT

run=0
# job CONCURRENCY ROWS DELAY_MS: describe ROWS items into a fresh table, print a line
job() {
    local c=$1 rows=$2 d=$3 id state
    run=$((run + 1))
    id=$(psql -X -At -c "SELECT isrf.describe_items('llm', '{\"table\": \"llm.bench_$run\", \"concurrency\": $c, \"limit\": $rows}')")
    while :; do
        state=$(psql -X -At -c "SELECT state FROM isrf.llm_jobs WHERE id = $id")
        case "$state" in queued|running) sleep 0.2 ;; *) break ;; esac
    done
    psql -X -At -F ' ' -c "SELECT done, failed, requests, round(extract(epoch FROM finished_at - started_at)::numeric, 2), round(rate::numeric, 1)
                             FROM isrf.llm_jobs WHERE id = $id" |
    while read -r done failed requests secs rate; do
        if [ "$d" -gt 0 ]; then
            ideal=$(awk -v c="$c" -v d="$d" 'BEGIN { printf "%.1f", c * 1000 / (3 * d) }')
            eff=$(awk -v r="$rate" -v i="$ideal" 'BEGIN { printf "%.0f%%", 100 * r / i }')
        else
            ideal=-; eff=-
        fi
        printf '%-6s %11s %6s %6s %8s %9s %9s %10s %6s\n' "$state" "$c" "$done" "$failed" "$requests" "$secs" "$rate" "$ideal" "$eff"
    done
}

header() { printf '%-6s %11s %6s %6s %8s %9s %9s %10s %6s\n' state concurrency rows failed requests seconds "rows/s" "ideal" "share"; }

echo "== server latency ${delay} ms per request (3 requests per item)"
start_mock "$delay"
header
job 1 20 "$delay"
job 8 150 "$delay"
job 32 600 "$delay"

echo "== instant server (the client, the worker and the writes alone)"
start_mock 0
header
job 1 500 0
job 8 1000 0
job 32 1000 0
