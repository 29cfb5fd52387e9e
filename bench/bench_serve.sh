#!/usr/bin/env bash
# bench/bench_serve.sh [DATA_DIR] [CONFIG_JSON]: the whole product on a real
# data set, through SQL, on a throwaway cluster (like test/demo.sh): load,
# CALL isrf_train with the default configuration (or CONFIG_JSON), then the
# latency of isrf_recommend(u, 10) over 1,000 random users -- through the
# model server, with 1 and 8 concurrent clients, and in-process
# (isrf.device = cpu) -- as p50 / p99, and the time of isrf_evaluate().
set -euo pipefail
. "$(dirname "$0")/../test/lib.sh"
data=${1:-$ISRF_ROOT/../shared/data/beauty}
config=${2:-'{}'}
name=$(basename "$data")

isrf_bench_cluster

bash "$ISRF_ROOT/bench/load_dataset.sh" "$name" "$data" | tail -3

t0=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 -c "CALL isrf_train('$name', '$config')"
t1=$(date +%s.%N)
echo "train: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
psql -X -c "SELECT version, metrics->'seconds' AS seconds, metrics->>'model_bytes' AS bytes FROM isrf.models WHERE deployed"

n_users=$(psql -X -At -c "SELECT count(DISTINCT user_id) FROM isrf.model_interactions")
max_user=$(psql -X -At -c "SELECT max(user_id) FROM isrf.model_interactions")
cat >"$ISRF_WORK/rec.sql" <<SQL
\set u random(1, $max_user)
SELECT * FROM isrf_recommend(:u, 10);
SQL

# p50 / p99 of pgbench's per-transaction log (column 3: latency in us)
percentiles() {
    cat "$ISRF_WORK"/pgbench_log.* | awk '{print $3}' | sort -n | awk '
        { v[NR] = $1 } END { printf "n=%d p50 %.2f ms p99 %.2f ms\n", NR,
          v[int(NR * 0.50)] / 1000, v[int(NR * 0.99)] / 1000 }'
    rm -f "$ISRF_WORK"/pgbench_log.*
}
run() {   # label clients options
    local label=$1 clients=$2; shift 2
    (cd "$ISRF_WORK" && PGOPTIONS="$*" pgbench -n -c "$clients" -j "$clients" -t $((1000 / clients)) \
        -f "$ISRF_WORK/rec.sql" --log --log-prefix=pgbench_log bench >/dev/null)
    echo "$label: $(percentiles)"
}
# warm the model server (it loads the model on its first request)
psql -X -q -c "SELECT count(*) FROM isrf_recommend(1, 10)" >/dev/null
run "isrf_recommend(u, 10), model server, 1 client " 1
run "isrf_recommend(u, 10), model server, 8 clients" 8
psql -X -c "SELECT database, device, models, requests, batches, max_batch, mean_latency_ms, max_latency_ms FROM isrf_status()"
run "isrf_recommend(u, 10), in-process (cpu), 1 client" 1 "-c isrf.device=cpu"

t0=$(date +%s.%N)
psql -X -c "SELECT * FROM isrf_evaluate() ORDER BY task, method"
t1=$(date +%s.%N)
echo "isrf_evaluate: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s for $n_users users"
isrf_cluster_stop
trap - EXIT
