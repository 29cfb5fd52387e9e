#!/usr/bin/env bash
# test/run_tests.sh: the one test command (README.md).  On a fresh Debian 12
# machine it installs what it needs, builds and installs isrf (and its CUDA
# library where nvcc exists), runs the C unit tests, starts a throwaway
# cluster with isrf preloaded, runs pg_regress and pgTAP against it, stops it,
# and ends with a line "isrf: N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ISRF_ROOT"

isrf_workdir
isrf_install_deps || exit 1
t0=$(date +%s)
isrf_build_install || { echo "isrf: 0 passed, 1 failed"; exit 1; }
isrf_log "build and install took $(( $(date +%s) - t0 )) s"

passed=0
failed=0

# --- C unit tests of src/core (no PostgreSQL) -----------------------------
export ISRF_DATA_DIR=${ISRF_DATA_DIR:-$ISRF_ROOT/../shared/data}
export ISRF_CUDA_LIBRARY=${ISRF_CUDA_LIBRARY:-$ISRF_ROOT/build/isrf_cuda.so}
# run_unit LABEL COMMAND...: run one test binary (or script), add its summary
# line ("name: N passed, N failed") to the totals
run_unit() {
    local label=$1 out rc line p f
    shift
    out=$("$@" 2>&1); rc=$?
    echo "$out" | grep -E "^FAIL|SKIP|^not ok| failed \(exit" || true
    line=$(echo "$out" | grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' | tail -1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    if [ -z "$line" ]; then
        echo "unit $label: no summary line (exit $rc)"; echo "$out" | tail -5; f=1; p=0
    elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1
    fi
    printf 'unit %-32s %s\n' "$label" "${line#*: }"
    passed=$((passed + p)); failed=$((failed + f))
}
for t in "$ISRF_ROOT"/build/test/test_*; do
    [ -x "$t" ] || continue
    run_unit "$(basename "$t")" "$t"
done
# The GPU parity tests skip without a device; their CPU-vs-CPU mode checks
# the tests themselves (and the model's device code paths) here too: the
# neural-network operations (one test_parity_nn_* per family) and the model.
for t in test_parity_nn_elementwise test_parity_nn_gemm test_parity_nn_layernorm \
         test_parity_nn_softmax test_parity_nn_embedding test_parity_nn_optimizer \
         test_parity_model; do
    [ -x "$ISRF_ROOT/build/test/$t" ] || continue
    ISRF_PARITY_SELF=1 run_unit "$t(self)" "$ISRF_ROOT/build/test/$t"
done

# --- fuzzing: a few seconds per libFuzzer harness (bench/fuzz.sh) ----------
# Built with clang (-fsanitize=fuzzer,address,undefined); SKIP without it.
ISRF_FUZZ_WORK=$ISRF_WORK/fuzz run_unit "fuzz (${ISRF_FUZZ_SECONDS:-5} s per harness)" \
    bash "$ISRF_ROOT/bench/fuzz.sh" "${ISRF_FUZZ_SECONDS:-5}"

# --- pg_regress and pgTAP against a throwaway cluster ----------------------
isrf_cluster_start || { echo "isrf: $passed passed, $((failed + 1)) failed"; exit 1; }

regress_out="$ISRF_WORK/regress.out"
mkdir -p "$ISRF_WORK/regress"
make -C "$ISRF_ROOT" installcheck PG_CONFIG="/usr/lib/postgresql/$ISRF_PG_VERSION/bin/pg_config" \
    REGRESS_OPTS="--load-extension=isrf --host=$PGHOST --port=$PGPORT --user=postgres --outputdir=$ISRF_WORK/regress" \
    >"$regress_out" 2>&1
grep -E '^(ok|not ok|test |     |#)' "$regress_out" | grep -vE '^\s*$' | sed 's/^/  /' | head -80
if [ -f "$ISRF_WORK/regress/regression.diffs" ]; then
    head -150 "$ISRF_WORK/regress/regression.diffs"
fi
r_total=$(grep -cE '^(ok|not ok) |^test .* \.\.\. (ok|FAILED)|^     [a-z_]+ +\.\.\. (ok|FAILED)' "$regress_out" || true)
r_failed=$(grep -cE '^not ok |FAILED' "$regress_out" || true)
if [ "$r_total" = 0 ]; then r_failed=1; cat "$regress_out" | tail -20; fi
passed=$((passed + r_total - r_failed)); failed=$((failed + r_failed))
isrf_log "pg_regress: $((r_total - r_failed)) passed, $r_failed failed"

psql -q -X -d postgres -c "CREATE DATABASE isrf_tap" >/dev/null
psql -q -X -d isrf_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION isrf" >/dev/null
if [ -d "$ISRF_DATA_DIR/ml100k" ]; then
    PGDATABASE=isrf_tap bash "$ISRF_ROOT/bench/load_dataset.sh" ml100k "$ISRF_DATA_DIR/ml100k" >/dev/null
else
    echo "warning: $ISRF_DATA_DIR/ml100k not found; the real-data pgTAP test will fail"
fi
# Add up a prove / pg_prove summary: "Tests=N" and its failures.
tap_count() {
    local out=$1 total failed_n
    total=$(grep -E '^Files=' "$out" | sed -E 's/.*Tests=([0-9]+).*/\1/')
    failed_n=$(grep -E '^Failed [0-9]+/[0-9]+ subtests' "$out" | sed -E 's/^Failed ([0-9]+)\/.*/\1/' | awk '{s+=$1} END {print s+0}')
    if ! grep -q '^Result: PASS' "$out" && [ "${failed_n:-0}" = 0 ]; then failed_n=1; fi
    passed=$((passed + ${total:-0} - failed_n)); failed=$((failed + failed_n))
}

tap_out="$ISRF_WORK/tap.out"
ISRF_DATA_DIR="$ISRF_DATA_DIR" pg_prove -d isrf_tap --ext .sql -r "$ISRF_ROOT/test/pgtap" >"$tap_out" 2>&1
tail -30 "$tap_out"
tap_count "$tap_out"

# TAP tests that stop and restart the server (bash scripts speaking TAP)
export ISRF_USER ISRF_CLUSTER ISRF_PG_BIN
srv_out="$ISRF_WORK/tap_server.out"
prove --exec bash "$ISRF_ROOT"/test/tap/*.t >"$srv_out" 2>&1
tail -15 "$srv_out"
tap_count "$srv_out"

# The model server under load for 2 minutes (bench/load.sh): 64 clients,
# cancellations, a redeploy every 30 s of a model of synthetic data (quick
# to train), a SIGTERM and a SIGKILL of the server;
# each of its checks counts (no request hung, only those in flight at a
# kill failed, ...).
ISRF_LOAD_WORK=$ISRF_WORK/load run_unit "load (64 clients, ${ISRF_LOAD_SECONDS:-120} s)" \
    bash "$ISRF_ROOT/bench/load.sh" --seconds "${ISRF_LOAD_SECONDS:-120}" --kills 1 --redeploy-every 30 \
        --dataset synthetic

# No process of the cluster crashed during the tests (server_exit.t and the
# load test kill the model server with SIGKILL on purpose: signal 9 is
# expected).
crashes=$(grep -E "terminated by signal [0-9]+|PANIC:" "$ISRF_CLUSTER/server.log" | grep -v "terminated by signal 9:")
if [ -z "$crashes" ]; then
    echo "ok - no process of the cluster crashed (server log)"; passed=$((passed + 1))
else
    echo "not ok - a process of the cluster crashed:"; echo "$crashes" | head -20; failed=$((failed + 1))
fi

isrf_cluster_stop
trap - EXIT
echo "isrf: $passed passed, $failed failed"
[ "$failed" = 0 ]
