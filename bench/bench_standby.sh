#!/usr/bin/env bash
# bench/bench_standby.sh [SECONDS] [CLIENTS] [ROUNDS]: read scaling with hot
# standbys.
# Builds and installs isrf (into ISRF_PREFIX when set, as test/run_tests.sh
# does), starts a primary and two hot standbys on loopback (pg_basebackup
# -R, fsync off), trains a model on a synthetic data set (2,000 users, 500
# items) on the primary, and runs pgbench with isrf_recommend(u, 10) for
# random users for a fixed time (SECONDS, default 20) with CLIENTS clients
# in all (default 6), spread evenly over
#   1. the primary alone,
#   2. the primary and one standby,
#   3. the primary and both standbys,
# each node answering through its own model server; the three one after
# the other, ROUNDS times (default 1: on a machine others use too, rounds
# show how much the figures move).  Prints one table: transactions per
# second (all nodes together) and the p50 / p99 latency of every
# transaction.  All nodes share this machine's cores.
set -euo pipefail
. "$(dirname "$0")/../test/lib.sh"
secs=${1:-20}
clients=${2:-6}
rounds=${3:-1}

isrf_workdir
isrf_install_deps
isrf_build_install
ISRF_USER=$(isrf_cluster_user)
export ISRF_USER ISRF_PG_BIN
NODES_DIR=$ISRF_WORK/nodes
. "$ISRF_ROOT/test/tap/nodes.sh"
nodes_setup
chmod 755 "$ISRF_WORK"
cleanup() {
    nodes_stop_all
    [ -n "${ISRF_KEEP:-}" ] || rm -rf "$ISRF_WORK"
}
trap cleanup EXIT
DB=isrf_bench

isrf_log "a primary and two standbys"
node_primary primary
nq primary postgres "CREATE DATABASE $DB" >/dev/null
nq primary $DB "CREATE EXTENSION isrf" >/dev/null
nq primary $DB "SELECT isrf.create_synthetic_dataset('bench', users => 2000, items => 500, groups => 8, per_user => 12)" >/dev/null
isrf_log "training on the primary"
nq primary $DB "CALL isrf_train('bench', '{\"epochs\": 2}')" >/dev/null
node_standby standby1 primary
node_standby standby2 primary
lsn=$(nq primary postgres "SELECT pg_current_wal_lsn()")
node_caught_up standby1 "$lsn"
node_caught_up standby2 "$lsn"
for node in primary standby1 standby2; do   # each server loads the model before the clock runs
    nq $node $DB "SELECT count(*) FROM generate_series(1, 20) u, isrf_recommend(u, 10)" >/dev/null
done

cat >"$ISRF_WORK/rec.sql" <<'SQL'
\set u random(1, 2000)
SELECT * FROM isrf_recommend(:u, 10);
SQL
chmod 644 "$ISRF_WORK/rec.sql"

# run NODE...: CLIENTS clients spread over the nodes for SECS seconds, all
# at once; prints "tps p50 p99"
run() {
    local k=$# i=0 node c tps=0 pids=()
    rm -f "$ISRF_WORK"/log.* "$ISRF_WORK"/out.*
    for node in "$@"; do
        c=$(( clients / k + (i < clients % k ? 1 : 0) ))
        (cd "$ISRF_WORK" && pgbench -n -h "$NODES_DIR" -p "$(node_port "$node")" -U postgres \
            -c "$c" -j "$c" -T "$secs" -f rec.sql --log --log-prefix="log.$node" $DB \
            >"out.$node" 2>&1) &
        pids+=($!)
        i=$((i + 1))
    done
    wait "${pids[@]}"
    for node in "$@"; do
        tps=$(awk -v t="$tps" '/^tps = / { t += $3 } END { print t }' "$ISRF_WORK/out.$node")
    done
    cat "$ISRF_WORK"/log.* | awk '{ print $3 }' | sort -n | awk -v tps="$tps" '
        { v[NR] = $1 } END { printf "%8.1f %9.2f %9.2f %9d\n", tps, v[int(NR * 0.50) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000, NR }'
}

results="$ISRF_WORK/results.txt"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
printf '%-5s %-30s %8s %9s %9s %9s\n' round "nodes ($clients clients in all)" "tps" "p50 ms" "p99 ms" "requests" >"$results"
for r in $(seq 1 "$rounds"); do
    isrf_log "round $r: pgbench on the primary alone, then with one and two standbys"
    printf '%-5s %-30s %s\n' "$r" "primary" "$(run primary)" >>"$results"
    printf '%-5s %-30s %s\n' "$r" "primary + 1 standby" "$(run primary standby1)" >>"$results"
    printf '%-5s %-30s %s\n' "$r" "primary + 2 standbys" "$(run primary standby1 standby2)" >>"$results"
done
for node in primary standby1 standby2; do
    echo "$node: $(nq $node $DB "SELECT node || ', server pid ' || pid || ', ' || requests || ' requests, ' ||
        batches || ' batches, largest ' || max_batch FROM isrf_status() WHERE database = current_database()")"
done
echo "machine: $(nproc) cores; ${secs} s per row; load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$results"
