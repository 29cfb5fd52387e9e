#!/usr/bin/env bash
# bench/fuzz.sh SECONDS [TARGET...]: run each libFuzzer harness of test/fuzz
# (built by `make fuzz`: clang, -fsanitize=fuzzer,address,undefined) for
# SECONDS, starting from its seed corpus in test/fuzz/corpus, and report the
# executions and crashes of each.  Inputs the run found go to a scratch
# corpus (ISRF_FUZZ_WORK, default a fresh directory under /tmp, kept), crash
# reproducers to its crashes/ folder.  Ends with "fuzz: N passed, N failed"
# (a target passes when it ran and found nothing); exits 0 when all passed
# (or, with a SKIP line, when clang's libFuzzer is not installed), 1 when a
# target crashed.
#
#   bash bench/fuzz.sh 3600                 # an hour per target
#   bash bench/fuzz.sh 10 fuzz_csv          # one target
#   ./build/fuzz/fuzz_model CRASH-FILE      # replay a reproducer
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:?usage: bench/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} = 0 ] && targets=(fuzz_model fuzz_model_struct fuzz_csv fuzz_config)

# clang with libFuzzer's runtime (Debian: clang and libclang-rt-dev)
if ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void) d; (void) n; return 0; }' |
     "${FUZZ_CC:-clang}" -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
    echo "SKIP fuzz: clang with libFuzzer (-fsanitize=fuzzer) is not installed"
    echo "fuzz: 0 passed, 0 failed"
    exit 0
fi
make -C "$root" -s fuzz >/dev/null || { echo "fuzz: build failed"; echo "fuzz: 0 passed, 1 failed"; exit 1; }

work=${ISRF_FUZZ_WORK:-$(mktemp -d /tmp/isrf-fuzz.XXXXXX)}
mkdir -p "$work/crashes"
passed=0
failed=0
printf '%-20s %10s %12s %10s %8s %8s\n' target seconds executions exec/s corpus crashes
for t in "${targets[@]}"; do
    seeds=$root/test/fuzz/corpus/${t#fuzz_}
    opts=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$work/crashes/$t-")
    [ "$t" = fuzz_config ] && opts+=(-dict="$root/test/fuzz/config.dict")
    mkdir -p "$work/corpus/$t"
    before=$(ls "$work/crashes" | grep -c "^$t-")
    start=$(date +%s)
    "$root/build/fuzz/$t" "${opts[@]}" "$work/corpus/$t" "$seeds" >"$work/$t.log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
    crashes=$(( $(ls "$work/crashes" | grep -c "^$t-") - before ))
    corpus=$(ls "$work/corpus/$t" | wc -l)
    printf '%-20s %10s %12s %10s %8s %8s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
    if [ "$rc" = 0 ] && [ "$crashes" = 0 ] && [ -n "$execs" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "  $t failed (exit $rc); its log: $work/$t.log"
        grep -E "ERROR: |SUMMARY: |runtime error|fuzz: |Test unit written" "$work/$t.log" | head -8 | sed 's/^/    /'
    fi
done
echo "scratch corpus and crashes: $work"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
