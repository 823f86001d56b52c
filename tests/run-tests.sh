#!/bin/bash
# Runs vhostd's tests: unit (cmocka binaries), integration (real vhostd driven by the test front-end,
# dpdk-testpmd, ports in network namespaces), e2e (real QEMU guests). Usage: run-tests.sh [unit] [integration] [e2e]
# Each test: exit 0 pass, 77 skip (with its reason on the last line), anything else fails.
# The last line is "N passed, N failed, N skipped".
# In CI (CI=true or CI=1) a skip fails the run: a skipped test is a missing install step, and must not hide
# behind a green run.
set -u
cd "$(dirname "$0")/.."
O=${O:-build}
export O VHOSTD_BIN=${VHOSTD_BIN:-$PWD/$O/vhostd} VHOSTCTL_BIN=${VHOSTCTL_BIN:-$PWD/$O/vhostctl}
SUITES=("$@")
[ ${#SUITES[@]} -eq 0 ] && SUITES=(unit integration e2e)
LOGDIR=$O/test-logs
mkdir -p "$LOGDIR"
TIMEOUT=${VHOSTD_TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
failed=()

run_one() {
    local name=$1; shift
    local log=$LOGDIR/${name//\//_}.log start rc
    start=$(date +%s.%N)
    timeout -k 10 "$TIMEOUT" "$@" >"$log" 2>&1 </dev/null
    rc=$?
    local secs
    secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
    case $rc in
    0) pass=$((pass + 1)); printf 'PASS  %-36s %6ss\n' "$name" "$secs" ;;
    77) skip=$((skip + 1)); printf 'SKIP  %-36s %6ss  %s\n' "$name" "$secs" "$(grep -v '^\s*$' "$log" | tail -n1)" ;;
    *) fail=$((fail + 1)); failed+=("$name")
       printf 'FAIL  %-36s %6ss  (exit %d, log %s)\n' "$name" "$secs" "$rc" "$log"
       # The reason first: a failing test's dump of logs can push its FAIL line out of the tail.
       grep -a -m 3 '^FAIL' "$log" | sed 's/^/    > /'
       tail -n 40 "$log" | sed 's/^/    | /' ;;
    esac
}

for suite in "${SUITES[@]}"; do
    echo "== $suite"
    case $suite in
    unit)
        for t in "$O"/tests/test_*; do
            [ -x "$t" ] && run_one "unit/${t##*/}" "$t"
        done ;;
    integration)
        for t in "$O"/tests/integ_*; do
            [ -x "$t" ] && run_one "integration/${t##*/}" "$t"
        done
        for t in tests/integration/*.sh; do
            [ -x "$t" ] || continue
            if [ -n "${VHOSTD_TSAN:-}" ] && grep -q 'tsan: skip' "$t"; then continue; fi
            run_one "integration/${t##*/}" "$t"
        done ;;
    e2e)
        for t in tests/e2e/*.sh; do
            case ${t##*/} in lib.sh | container.sh | mkguest.sh | mkroot.sh | demo.sh | selftest_*) continue ;; esac
            [ -x "$t" ] && run_one "e2e/${t##*/}" "$t"
        done ;;
    *) echo "unknown suite $suite (unit, integration, e2e)"; exit 2 ;;
    esac
done
echo
[ $fail -gt 0 ] && echo "failed: ${failed[*]}"
case ${CI:-} in
true | 1)
    if [ $skip -gt 0 ]; then
        echo "CI: $skip test(s) skipped; in CI a skip fails the run (see the SKIP lines above for what was missing)"
        fail=$((fail + skip))
        skip=0
    fi ;;
esac
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
