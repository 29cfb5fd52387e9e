#!/usr/bin/env bash
# test/demo.sh: the demo (README.md).  Like test/run_tests.sh it installs what
# it needs, builds, installs and starts a throwaway cluster; then it does what
# a new user would: create the extension, generate a synthetic dataset with
# planted groups, train, recommend, look at group neighbours and interests;
# then load MovieLens 100K from ../shared/data (if present), train and
# evaluate it beside the baselines.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ISRF_ROOT"

isrf_workdir
isrf_install_deps
isrf_build_install
isrf_cluster_start
createdb demo
export PGDATABASE=demo
data_dir=${ISRF_DATA_DIR:-$ISRF_ROOT/../shared/data}

run_sql() { printf '\n=> %s\n' "$1"; psql -X -v ON_ERROR_STOP=1 -c "$1"; }

run_sql "CREATE EXTENSION isrf"
run_sql "SELECT * FROM isrf.backend_info()"
run_sql "SELECT isrf.create_synthetic_dataset('demo_synth', users => 2000, items => 500, groups => 8, per_user => 15, seed => 42)"
run_sql "SELECT * FROM isrf.dataset_stats('demo_synth')"
run_sql "CALL isrf_train('demo_synth', '{\"epochs\": 5}')"
run_sql "SELECT name, version, status, deployed, metrics->'seconds' AS seconds FROM isrf.models"
run_sql "SELECT * FROM isrf_recommend(42, 10)"
run_sql "SELECT * FROM isrf_recommend(999999, 3)"
run_sql "SELECT * FROM isrf_rank(42, ARRAY[1, 2, 3, 4, 5])"
run_sql "SELECT * FROM isrf_group_neighbours(42, 5)"
run_sql "SELECT * FROM isrf_group_interests(42, 5)"
run_sql "SELECT * FROM isrf_status()"
if [ -d "$data_dir/ml100k" ]; then
    printf '\n=> bench/load_dataset.sh ml100k %s\n' "$data_dir/ml100k"
    bash bench/load_dataset.sh ml100k "$data_dir/ml100k" | tail -4
    run_sql "CALL isrf_train('ml100k')"
    run_sql "SELECT * FROM isrf_recommend(1, 10, 'ml100k')"
    run_sql "SELECT * FROM isrf_evaluate('ml100k') ORDER BY task, method"
fi
run_sql "SELECT name, reviews, items, order_column FROM isrf.datasets ORDER BY name"
isrf_cluster_stop
trap - EXIT
echo "demo finished"
