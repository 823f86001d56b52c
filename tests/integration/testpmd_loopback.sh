#!/bin/bash
# testpmd_loopback: dpdk-testpmd (virtio-user, 2 queue pairs, io forwarding) against vhostd's loopback port.
# testpmd sends a first burst on each queue and forwards everything it receives back out; vhostd echoes it.
# After ~5 s: 2 queue pairs negotiated (4 vrings started, MQ feature bit 22), testpmd's TX - RX within the frames
# in flight, more than 100000 frames received, and vhostd's tx and rx vring counters agreeing, with no drops.
# TESTPMD_PACKED=1 (tests/integration/testpmd_packed.sh): testpmd asks for packed virtqueues (packed_vq=1), and
# VIRTIO_F_RING_PACKED (bit 34) must be negotiated; otherwise it must not be. TESTPMD_IN_ORDER=1
# (tests/integration/testpmd_in_order.sh): the same with in_order=1, and VIRTIO_F_IN_ORDER (bit 35) negotiated;
# otherwise testpmd is told in_order=0 (its default is 1) and it must not be.
# Skips (77) without root or dpdk-testpmd. tsan: skip (testpmd busy-polls a core; too slow under TSAN).
set -u
cd "$(dirname "$0")/../.."
VHOSTD_BIN=${VHOSTD_BIN:-$PWD/build/vhostd}
VHOSTCTL_BIN=${VHOSTCTL_BIN:-$(dirname "$VHOSTD_BIN")/vhostctl}
SECONDS_RUN=${TESTPMD_SECONDS:-5}
BURST=32
QUEUES=2
PACKED=${TESTPMD_PACKED:-0}
IN_ORDER=${TESTPMD_IN_ORDER:-0}

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (dpdk-testpmd)"
command -v dpdk-testpmd >/dev/null 2>&1 || skip "dpdk-testpmd not installed (Debian package dpdk)"
[ -x "$VHOSTD_BIN" ] || { echo "FAIL: no vhostd at $VHOSTD_BIN (make first)"; exit 1; }
[ -x "$VHOSTCTL_BIN" ] || { echo "FAIL: no vhostctl at $VHOSTCTL_BIN (make first)"; exit 1; }

dir=$(mktemp -d /tmp/vhostd-testpmd-XXXXXX)
prefix=vhostd-testpmd-$$-${dir##*-}
vpid= tpid=
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

stop_pid() { # pid, seconds: SIGTERM, wait, then SIGKILL; returns the exit status
    local pid=$1 t=$2 i
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 137
    fi
    wait "$pid"
}

cleanup() {
    [ -n "$tpid" ] && kill -KILL "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
    [ -n "$vpid" ] && kill -KILL "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
    rm -rf "/var/run/dpdk/$prefix"
    if [ "$failures" -eq 0 ]; then rm -rf "$dir"; else echo "logs kept in $dir"; fi
}
trap cleanup EXIT

# Per-vring field from `vhostctl --json`: vfield JSON INDEX KEY
vfield() { grep -o "{\"index\":$2,[^}]*}" <<<"$1" | grep -o "\"$3\":[^,}]*" | head -n1 | cut -d: -f2 | tr -d '"'; }
# testpmd's accumulated totals: total RX-packets|TX-packets
total() { sed -n '/Accumulated forward statistics for all ports/,/++++++++++++++++++++++++/p' "$dir/testpmd.log" |
          grep -o "$1: *[0-9]*" | head -n1 | grep -o '[0-9]*$'; }

"$VHOSTD_BIN" -s "$dir/vhost.sock" -b loopback -q $QUEUES -C "$dir/ctl" >"$dir/vhostd.log" 2>&1 &
vpid=$!
for ((i = 0; i < 100; i++)); do
    "$VHOSTCTL_BIN" -s "$dir/ctl" --json >/dev/null 2>&1 && break
    sleep 0.1
done
kill -0 "$vpid" 2>/dev/null || { fail "vhostd did not start"; cat "$dir/vhostd.log"; exit 1; }

dpdk-testpmd -l 0-1 --no-huge -m 256 --no-pci --file-prefix="$prefix" \
    --vdev="net_virtio_user0,path=$dir/vhost.sock,queues=$QUEUES,packed_vq=$PACKED,in_order=$IN_ORDER" -- \
    --total-num-mbufs=16384 --rxq=$QUEUES --txq=$QUEUES --nb-cores=1 --forward-mode=io --tx-first \
    --stats-period 1 --disable-link-check >"$dir/testpmd.log" 2>&1 </dev/null &
tpid=$!
sleep "$SECONDS_RUN"
kill -0 "$tpid" 2>/dev/null || fail "dpdk-testpmd exited early"
json=$("$VHOSTCTL_BIN" -s "$dir/ctl" --json)
stop_pid "$tpid" 10
rc=$?
tpid=
[ $rc -eq 0 ] || fail "dpdk-testpmd exit status $rc after SIGTERM"

# What vhostd negotiated.
features=$(grep -o '"features":"0x[0-9a-f]*"' <<<"$json" | head -n1 | cut -d'"' -f4)
[ -n "$features" ] && [ $(((features >> 22) & 1)) -eq 1 ] || fail "features ${features:-?} lack MQ (bit 22)"
[ -n "$features" ] && [ $(((features >> 34) & 1)) -eq "$PACKED" ] ||
    fail "features ${features:-?}: VIRTIO_F_RING_PACKED (bit 34) is not $PACKED with packed_vq=$PACKED"
[ -n "$features" ] && [ $(((features >> 35) & 1)) -eq "$IN_ORDER" ] ||
    fail "features ${features:-?}: VIRTIO_F_IN_ORDER (bit 35) is not $IN_ORDER with in_order=$IN_ORDER"
echo "features $features: $([ "$PACKED" = 1 ] && echo packed || echo split) virtqueues$([ "$IN_ORDER" = 1 ] && echo ", in order")"
started=0
for ((i = 0; i < 2 * QUEUES; i++)); do
    [ "$(vfield "$json" $i started)" = true ] && [ "$(vfield "$json" $i enabled)" = true ] && started=$((started + 1))
done
[ $started -eq $((2 * QUEUES)) ] || fail "$started vrings started and enabled, expected $((2 * QUEUES))"

# testpmd's totals: every frame it sent came back, except those still in flight.
rx=$(total RX-packets)
tx=$(total TX-packets)
echo "testpmd: RX-packets ${rx:-?} TX-packets ${tx:-?}"
if [ -z "$rx" ] || [ -z "$tx" ]; then
    fail "no forward statistics in testpmd's output"
else
    inflight=$((QUEUES * BURST))
    [ $((tx - rx)) -ge 0 ] && [ $((tx - rx)) -le $inflight ] ||
        fail "TX - RX = $((tx - rx)), outside 0..$inflight (frames in flight)"
    [ "$rx" -gt 100000 ] || fail "only $rx frames received in ${SECONDS_RUN} s"
fi

# vhostd's counters, read while the frames circulated: what came from the tx rings went to the rx rings, but for
# the frames in flight (plus one burst that may pass between the reads of two vrings).
vtx=0 vrx=0 drops=0
for ((q = 0; q < QUEUES; q++)); do
    r=$(vfield "$json" $((2 * q)) frames) t=$(vfield "$json" $((2 * q + 1)) frames)
    vrx=$((vrx + ${r:-0})) vtx=$((vtx + ${t:-0}))
    for i in $((2 * q)) $((2 * q + 1)); do
        drops=$((drops + $(vfield "$json" $i drops)))
        [ "$(vfield "$json" $i broken)" = false ] || fail "vring $i is broken: $(vfield "$json" $i broken_reason)"
    done
    echo "vhostd queue pair $q: tx ring ${t:-?} frames, rx ring ${r:-?} frames"
done
diff=$((vtx - vrx))
[ $diff -ge 0 ] && [ $diff -le $((QUEUES * BURST + BURST)) ] ||
    fail "vhostd took $vtx frames from the tx rings and put $vrx on the rx rings (difference $diff)"
[ $drops -eq 0 ] || fail "vhostd dropped $drops frames"
[ $vrx -gt 100000 ] || fail "vhostd moved only $vrx frames"

# vhostd survives the front-end's exit and stops cleanly.
sleep 0.2
kill -0 "$vpid" 2>/dev/null || fail "vhostd died"
stop_pid "$vpid" 10
rc=$?
vpid=
[ $rc -eq 0 ] || fail "vhostd exit status $rc"
grep -q 'front-end disconnected' "$dir/vhostd.log" || fail "vhostd did not notice testpmd leaving"
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$dir/vhostd.log"; then
    fail "sanitizer report in vhostd's log"
    grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$dir/vhostd.log" | head -40
fi
rm -rf "/var/run/dpdk/$prefix"
[ -e "/var/run/dpdk/$prefix" ] && fail "/var/run/dpdk/$prefix left behind"

if [ $failures -ne 0 ]; then
    echo "--- vhostd log"; tail -n 20 "$dir/vhostd.log"
    echo "--- testpmd log"
    grep -v '^\s*$' "$dir/testpmd.log" | grep -v 'pps\|bps\|####\|statistics for port\|^\[' | tail -n 30
    echo "0 passed, $failures failed"
    exit 1
fi
echo "1 passed, 0 failed"
