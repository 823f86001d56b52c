#!/bin/bash
# Integrity through every port kind, both directions: FRAMES (default 10^6) frames of 60..1514 bytes,
# each with a sequence number and a payload checksum; none may be corrupted, duplicated or lost.
# loopback (guest -> vhostd -> guest; split rings, then packed rings of 200), tap (io_uring sends, then where
# io_uring is filtered out: the port must say so and send frame by frame), rawsock and afxdp (skb mode)
# on a veth pair in a namespace this test creates. Exit 0 pass, 1 fail, 77 skip.
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
VHOSTD=${VHOSTD_BIN:-$PWD/$O/vhostd}
TOOL=$PWD/$O/tests/integrity
FRAMES=${FRAMES:-1000000}
# ThreadSanitizer slows the daemon ~5x: a tenth of the frames still exercises every path.
[ -n "${VHOSTD_TSAN:-}" ] && FRAMES=${FRAMES_TSAN:-100000}
[[ $VHOSTD == */build-asan/* ]] && FRAMES=${FRAMES_ASAN:-500000} # CI's hour: the normal build's run has 10^6
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (tap, veth, network namespaces)"; exit 77; }
[ -x "$TOOL" ] || { echo "no $TOOL (make tests)"; exit 1; }

TMP=$(mktemp -d)
NS=vhint-$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

fail=0
run_case() { # name vhostd-args... -- integrity-args...   (WRAP: a command vhostd runs under)
    local name=$1; shift
    local vargs=() iargs=()
    while [ "$1" != -- ]; do vargs+=("$1"); shift; done; shift
    iargs=("$@")
    local sock=$TMP/$name.sock log=$TMP/$name.log
    ip netns exec "$NS" ${WRAP:-} "$VHOSTD" -s "$sock" "${vargs[@]}" >"$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
    if ! [ -S "$sock" ]; then
        echo "$name: vhostd did not start:"; cat "$log"; fail=1; return
    fi
    # Ports that need the link up for the kernel to pass frames.
    for dev in vtap0 ia ib; do ip -n "$NS" link set "$dev" up 2>/dev/null; done
    echo "== $name"
    if ! ip netns exec "$NS" "$TOOL" --socket "$sock" --frames "$FRAMES" "${iargs[@]}"; then
        fail=1; echo "vhostd log:"; tail -n 20 "$log"
    fi
    kill "$pid"; wait "$pid" 2>/dev/null
    grep -E 'AddressSanitizer|runtime error|ThreadSanitizer' "$log" && fail=1
    LAST_LOG=$log
}

run_case loopback -b loopback -- --loopback
run_case loopback-packed -b loopback -- --loopback --packed --ring 200
run_case tap -b tap -i vtap0 -- --ifname vtap0
if grep -q 'sends frame by frame' "$LAST_LOG"; then
    echo "tap: io_uring was not used here: $(grep 'frame by frame' "$LAST_LOG")"; fail=1
fi
WRAP=$PWD/$O/tests/no_io_uring run_case tap-no-io_uring -b tap -i vtap0 -- --ifname vtap0
if ! grep -q 'io_uring is not available here (disabled or filtered): the tap sends frame by frame' "$LAST_LOG"; then
    echo "tap-no-io_uring: no warning that the port sends frame by frame:"; cat "$LAST_LOG"; fail=1
fi
ip -n "$NS" link add ia type veth peer name ib
run_case rawsock -b rawsock -i ia -- --ifname ib
run_case afxdp-skb -b afxdp -i ia -o xdp_mode=skb -- --ifname ib
[ $fail -eq 0 ] && echo "integrity: all port kinds intact" || echo "integrity: FAILED"
exit $fail
