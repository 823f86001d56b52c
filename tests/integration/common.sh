# Sourced by the integration shell tests (not executable, so run-tests.sh does not run it).
# Gives ROOT, O, VHOSTD, VHOSTCTL; skip/fail/ok; test_tmpdir NAME (sets T, removed at exit); PIDS, every
# process in it stopped (TERM, then KILL) at exit; cleanup_extra, a hook the test may define; dump_logs;
# wait_for SECONDS COMMAND...
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=${O:-build}
[[ $O = /* ]] || O=$ROOT/$O
VHOSTD=${VHOSTD_BIN:-$O/vhostd}
VHOSTCTL=${VHOSTCTL_BIN:-$O/vhostctl}
T=
PIDS=()

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; dump_logs; exit 1; }
ok() { echo "ok: $*"; }
cleanup_extra() { :; }

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    cleanup_extra
    [ -n "$T" ] && rm -rf "$T"
}

test_tmpdir() {
    T=$(mktemp -d "/tmp/vhostd-$1.XXXXXX") || exit 1
    trap cleanup EXIT
    trap 'exit 1' INT TERM HUP
}

dump_logs() {
    local f
    for f in "$T"/*.log; do
        [ -e "$f" ] || continue
        echo "--- $f"
        tail -n 30 "$f"
    done
}

# wait_for SECONDS COMMAND...: polls COMMAND every 50 ms.
wait_for() {
    local n=$(($1 * 20))
    shift
    while ((n-- > 0)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}
