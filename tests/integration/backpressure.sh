#!/bin/bash
# backpressure: every wait of the worker has a wake-up. The test front-end (build/tests/loop_rate) sends 64-byte
# frames through a loopback port as fast as it can and takes them back slower (16 a round against 64 sent), so
# the port's FIFO fills and stays full: the
# worker's tx side keeps waiting for room, which only the receive side makes (the guest's rx kick). Two vhostd
# instances, the default (interrupt) mode and busy_poll_us=1000, 1 queue pair, vhostd on CPU 0 and the front-end
# on CPU 1, alternating, 2 rounds of 2 s each. Checks:
#   - in the default mode the tx ring waited for room (wait_port > 0) and never woke on the retry timer
#     (retry_wakeups == 0): room is noticed through the rx ring's kicks (counted, > 0);
#   - the default mode moves at least 80 % of what busy polling moves (both measured here, the same build,
#     alternating: a ratio, not a time).
# tsan: skip (a throughput ratio says nothing under TSan's 10x slowdown).
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
VHOSTD_BIN=${VHOSTD_BIN:-$PWD/$O/vhostd}
VHOSTCTL_BIN=${VHOSTCTL_BIN:-$(dirname "$VHOSTD_BIN")/vhostctl}
LOOP_RATE=$(dirname "$VHOSTD_BIN")/tests/loop_rate
SECS=2
ROUNDS=2
RX_PER_PUMP=16 # the front-end takes back at most 16 frames per round and sends up to 64: the port fills
[ "$(nproc)" -ge 2 ] || { echo "SKIP: needs 2 CPUs"; exit 77; }
[ -x "$LOOP_RATE" ] || { echo "FAIL: no $LOOP_RATE (make tests)"; exit 1; }
T=$(mktemp -d /tmp/vhostd-backpressure-XXXXXX)
declare -A VPID=()
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
cleanup() {
    for p in "${VPID[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    if [ "$failures" -eq 0 ]; then rm -rf "$T"; else echo "logs kept in $T"; fi
}
trap cleanup EXIT

start() { # mode extra-args...
    local mode=$1
    shift
    taskset -c 0 "$VHOSTD_BIN" -s "$T/$mode.sock" -b loopback -C "$T/$mode.ctl" "$@" >"$T/$mode.log" 2>&1 </dev/null &
    VPID[$mode]=$!
    for _ in $(seq 100); do
        "$VHOSTCTL_BIN" -s "$T/$mode.ctl" --json >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "vhostd ($mode) did not start"
    cat "$T/$mode.log"
    exit 1
}
# A vring's counter in the last default-mode reading: vfield INDEX KEY
vfield() { grep -o "{\"index\":$1,[^}]*}" <<<"$json" | grep -o "\"$2\":[0-9]*" | cut -d: -f2; }

start default
start busy -o busy_poll_us=1000
declare -A MPPS=([default]="" [busy]="")
for round in $(seq "$ROUNDS"); do
    for mode in default busy; do
        taskset -c 1 "$LOOP_RATE" "$T/$mode.sock" "$SECS" off 1 "$RX_PER_PUMP" >"$T/loop_rate.out" 2>&1 &
        lpid=$!
        # The counters belong to the connection: read them near the end of the window, while it lasts.
        sleep "$(awk -v s="$SECS" 'BEGIN { print s - 0.3 }')"
        [ "$mode" = default ] && json=$("$VHOSTCTL_BIN" -s "$T/$mode.ctl" --json)
        wait "$lpid" || { fail "loop_rate ($mode) failed: $(cat "$T/loop_rate.out")"; exit 1; }
        read -r _ mpps _ <"$T/loop_rate.out"
        MPPS[$mode]+="$mpps "
        echo "round $round $mode: $mpps Mpps"
    done
done

wait_port=$(vfield 1 wait_port)
retries=$(vfield 1 retry_wakeups)
rx_kicks=$(vfield 0 kicks)
echo "default mode: tx ring waited for room $wait_port times, woke on the retry timer $retries times; rx kicks $rx_kicks"
[ "${wait_port:-0}" -gt 0 ] || fail "the tx ring never waited for room: no backpressure was made"
[ "${retries:-1}" -eq 0 ] || fail "the worker woke $retries times on its retry timer instead of on a notification"
[ "${rx_kicks:-0}" -gt 0 ] || fail "no rx kick counted"

sum() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.4f", s }' <<<"$1"; }
d=$(sum "${MPPS[default]}")
b=$(sum "${MPPS[busy]}")
ratio=$(awk -v d="$d" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? d / b : 0) }')
echo "default / busy polling: $ratio (sum of $ROUNDS rounds each: $d vs $b Mpps)"
awk -v r="$ratio" 'BEGIN { exit !(r >= 0.8) }' || fail "the default mode moved $ratio of what busy polling moved (< 0.8)"

for mode in default busy; do
    kill "${VPID[$mode]}" && wait "${VPID[$mode]}"
    unset "VPID[$mode]"
    if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/$mode.log"; then
        fail "sanitizer report in vhostd's log ($mode)"
        grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/$mode.log" | head -40
    fi
done
if [ "$failures" -ne 0 ]; then
    echo "0 passed, $failures failed"
    exit 1
fi
echo "1 passed, 0 failed"
