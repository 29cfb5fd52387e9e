#!/usr/bin/env bash
# bench/bench_compare.sh OLD_REV NEW_REV [DATA_DIR] [CONFIG_JSON]: serving
# latency of two revisions of isrf in one run, on the same machine, data and
# configuration.  Each revision is checked out into a scratch worktree, built,
# installed into a private copy of PostgreSQL (ISRF_PREFIX) and run on a
# throwaway cluster of its own, one after the other:
#   - CALL isrf_train (default: beauty, 1 epoch: latency does not depend on
#     the weights);
#   - isrf_rank for 2,000 users x 100 candidates (one query, wall time);
#   - isrf_recommend(u, 10) p50 / p99 for random users, pgbench for a fixed
#     time (SECONDS, default 20) at 1, 8 and 32 clients, through the model
#     server and in-process (isrf.device = cpu).
# Prints one table at the end.  Uses the usual test helpers (test/lib.sh).
set -euo pipefail
. "$(dirname "$0")/../test/lib.sh"
old=${1:?usage: bench_compare.sh OLD_REV NEW_REV [DATA_DIR] [CONFIG_JSON]}
new=${2:?usage: bench_compare.sh OLD_REV NEW_REV [DATA_DIR] [CONFIG_JSON]}
data=${3:-$ISRF_ROOT/../shared/data/beauty}
config=${4:-'{"epochs": 1}'}
name=$(basename "$data")

isrf_workdir
isrf_install_deps
results="$ISRF_WORK/results.txt"
: >"$results"

# p50 / p99 of pgbench's per-transaction log (column 3: latency in us)
percentiles() {
    cat "$ISRF_WORK"/pgbench_log.* | awk '{print $3}' | sort -n | awk '
        { v[NR] = $1 } END { printf "%.2f / %.2f", v[int(NR * 0.50)] / 1000, v[int(NR * 0.99)] / 1000 }'
    rm -f "$ISRF_WORK"/pgbench_log.*
}
latency() {   # clients [PGOPTIONS]
    local clients=$1; shift
    (cd "$ISRF_WORK" && PGOPTIONS="$*" pgbench -n -c "$clients" -j "$clients" -T "${SECONDS_EACH:-20}" \
        -f "$ISRF_WORK/rec.sql" --log --log-prefix=pgbench_log bench >/dev/null)
    percentiles
}

bench_rev() {   # REV
    local rev=$1 wt short t0 t1 rank_s
    short=$(git -C "$ISRF_ROOT" rev-parse --short "$rev")
    wt="$ISRF_WORK/src-$short"
    git -C "$ISRF_ROOT" worktree add --detach -f "$wt" "$rev" >/dev/null 2>&1
    isrf_log "revision $short: build and install"
    make -C "$wt" -j"$(nproc)" PG_CONFIG=/usr/lib/postgresql/$ISRF_PG_VERSION/bin/pg_config USE_CUDA=0 \
        >"$ISRF_WORK/build-$short.log" 2>&1
    make -C "$wt" -j"$(nproc)" tools USE_CUDA=0 >>"$ISRF_WORK/build-$short.log" 2>&1
    ISRF_PREFIX="$ISRF_WORK/prefix-$short"
    isrf_private_postgres
    make -C "$wt" install PG_CONFIG=/usr/lib/postgresql/$ISRF_PG_VERSION/bin/pg_config USE_CUDA=0 \
        DESTDIR="$ISRF_PREFIX" >>"$ISRF_WORK/build-$short.log" 2>&1
    isrf_cluster_start
    createdb bench
    export PGDATABASE=bench
    bash "$ISRF_ROOT/bench/load_dataset.sh" "$name" "$data" >/dev/null
    isrf_log "revision $short: train $config"
    psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL isrf_train('$name', '$config')"

    # isrf_rank: 2,000 users x 100 candidates drawn deterministically from the catalogue
    psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE rank_work AS
SELECT u.user_id,
       (SELECT array_agg(i.item_id) FROM (SELECT item_id FROM isrf.model_interactions
                                            WHERE model = '$name' GROUP BY item_id
                                            ORDER BY hashint8(item_id * 7919 + u.user_id) LIMIT 100) i) AS cand
  FROM (SELECT DISTINCT user_id FROM isrf.model_interactions WHERE model = '$name'
         ORDER BY user_id LIMIT 2000) u;
SQL
    psql -X -q -c "SELECT count(*) FROM isrf_rank(1, (SELECT cand FROM rank_work LIMIT 1))" >/dev/null
    t0=$(date +%s.%N)
    psql -X -q -At -c "SELECT count(*) FROM rank_work w, LATERAL isrf_rank(w.user_id, w.cand) r" >/dev/null
    t1=$(date +%s.%N)
    rank_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

    max_user=$(psql -X -At -c "SELECT max(user_id) FROM isrf.model_interactions")
    printf '\\set u random(1, %s)\nSELECT * FROM isrf_recommend(:u, 10);\n' "$max_user" >"$ISRF_WORK/rec.sql"
    psql -X -q -c "SELECT count(*) FROM isrf_recommend(1, 10)" >/dev/null
    printf '%-10s %10s s   %-13s %-13s %-13s %-13s %-13s %-13s\n' "$short" "$rank_s" \
        "$(latency 1)" "$(latency 8)" "$(latency 32)" \
        "$(latency 1 -c isrf.device=cpu)" "$(latency 8 -c isrf.device=cpu)" "$(latency 32 -c isrf.device=cpu)" >>"$results"
    isrf_cluster_stop_keep
    git -C "$ISRF_ROOT" worktree remove --force "$wt" >/dev/null 2>&1 || true
}

# stop the cluster but keep the scratch directory (more revisions follow)
isrf_cluster_stop_keep() {
    isrf_run_as "$ISRF_USER" "$ISRF_PG_BIN/pg_ctl" -D "$ISRF_CLUSTER/data" -m fast -w stop >/dev/null || true
    rm -rf "$ISRF_CLUSTER"
    trap - EXIT
}

bench_rev "$old"
bench_rev "$new"
echo
echo "$name, $config, $(nproc) CPU cores; isrf_recommend(u, 10) p50 / p99 in ms"
printf '%-10s %12s   %-13s %-13s %-13s %-13s %-13s %-13s\n' "revision" "rank 2000x100" \
    "server 1" "server 8" "server 32" "in-proc 1" "in-proc 8" "in-proc 32"
cat "$results"
[ -n "${ISRF_KEEP:-}" ] || rm -rf "$ISRF_WORK"
