#!/bin/bash
# vhostctl upgrade under a real QEMU guest (issue #16): a guest with 2 queue pairs runs iperf3 (TCP, 2 streams,
# one report a second) while the host pings it 200 times a second, and vhostd is upgraded UPGRADES (20) times in a row,
# alternating the normal and the ASan build, on a tap port, then an AF_PACKET port and an AF_XDP port (skb mode) on
# a veth. After each upgrade the old process is gone and the new one holds the fds, threads and guest mappings the
# first one held.
# At the end: the guest's eth0 carrier_changes unchanged, iperf3 finished without error and never had a second
# without traffic, no ping lost, vhostd never saw the front-end disconnect. Prints the longest gap
# between two ping replies. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd iperf3 jq ping

UPGRADES=${UPGRADES:-20}
HOST_IP=10.84.0.1
GUEST_IP=10.84.0.2
IPERF_S=${IPERF_S:-60}

# The other build to alternate with: ASan when this is the normal one, and the other way round.
if [[ $VHOSTD_BIN == */build-asan/* ]]; then
    ALT_O=build
    ALT_FLAGS=()
else
    ALT_O=build-asan
    ALT_FLAGS=(EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -O1"
               EXTRA_LDFLAGS="-fsanitize=address,undefined")
fi
ROOT=$(cd "$E2E_DIR/../.." && pwd)
make -s -C "$ROOT" O="$ALT_O" "${ALT_FLAGS[@]}" "$ALT_O/vhostd" >/dev/null || e2e_fail "cannot build $ALT_O/vhostd"
BINS=("$ROOT/$ALT_O/vhostd" "$(readlink -f "$VHOSTD_BIN")")
# The serving vhostd changes pid with each upgrade: stop whichever serves at the end.
CURRENT=$E2E_TMP/current.pid
stop_current() { [ -s "$CURRENT" ] && kill "$(cat "$CURRENT")" 2>/dev/null; return 0; }
e2e_on_exit stop_current

netns_create NS
ip -n "$NS" link add vp0 numtxqueues 2 numrxqueues 2 type veth peer name vf0 numtxqueues 2 numrxqueues 2
ip -n "$NS" link set vp0 up
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

# snapshot PID: proc_snapshot without the fds of BPF objects: an adopted afxdp port holds only its XSKMAP, a fresh
# one also libxdp's program objects (program, BTF, data map); the sockets, eventfds and memfds must all match.
snapshot() {
    local pid=$1 bpf f t m
    bpf=$(for fd in /proc/"$pid"/fd/*; do readlink "$fd"; done 2>/dev/null | grep -c 'anon_inode:\(bpf\|btf\)')
    read -r f t m <<<"$(proc_snapshot "$pid")"
    echo "$((f - bpf)) $t $m"
}

run() { # name host-interface vhostd-args...
    local name=$1 hostif=$2; shift 2
    local sock=$E2E_TMP/$name.sock ctl=$E2E_TMP/$name.ctl pid first now out old log
    vhostd_start "V_$name" "$ctl" --netns "$NS" -s "$sock" -q 2 "$@"
    pid=$(eval echo "\$V_$name")
    [ "$hostif" = vtap0 ] && e2e_wait_for 10 ip -n "$NS" link show vtap0 >/dev/null 2>&1
    ip -n "$NS" addr flush dev "$hostif"
    netns_set_ip "$NS" "$hostif" "$HOST_IP/24"
    vm_add_vhost_user_nic "$sock" 2
    vm_start "$name" --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 \
        --cmd "echo CARRIER-BEFORE=\$(cat /sys/class/net/eth0/carrier_changes); iperf3 -c $HOST_IP -t $IPERF_S -P 2 -i 1 --forceflush; rc=\$?; echo CARRIER-AFTER=\$(cat /sys/class/net/eth0/carrier_changes); echo IPERF-RC=\$rc"
    vm_wait_marker "$name" 'VM-NET-UP' 90 || e2e_fail "$name: guest network did not come up"
    vm_wait_marker "$name" 'SUM.*sec' 60 || e2e_fail "$name: iperf3 did not start"
    first=$(snapshot "$pid")
    # 200 pings a second, each reply timestamped; by count, so the last ones are waited for.
    e2e_spawn PING_PID --log "$E2E_TMP/$name-ping.log" ip netns exec "$NS" ping -i 0.005 -D -c $(((IPERF_S - 30) * 200)) "$GUEST_IP"
    sleep 2
    for n in $(seq "$UPGRADES"); do
        old=$pid
        out=$("$VHOSTCTL_BIN" -s "$ctl" upgrade "${BINS[$((n % 2))]}" 2>&1) || e2e_fail "$name: upgrade $n: $out"
        pid=$(sed -n 's/^upgraded: vhostd pid \([0-9]*\) .*/\1/p' <<<"$out")
        [ -n "$pid" ] || e2e_fail "$name: upgrade $n: unexpected answer: $out"
        echo "$pid" >"$CURRENT"
        e2e_wait_for 5 eval '[ ! -e /proc/'"$old"' ] || grep -q "^State:[[:space:]]*Z" /proc/'"$old"'/status' ||
            e2e_fail "$name: old vhostd $old still runs"
        e2e_wait_for 5 eval '[ "$(snapshot '"$pid"')" = "$first" ]' ||
            e2e_fail "$name: after upgrade $n (to ${BINS[$((n % 2))]}) fds/threads/memfd maps $(snapshot "$pid"), a fresh one had $first"
        sleep 0.5
    done
    e2e_log "$name: $UPGRADES upgrades done; vhostd is pid $pid"
    wait "$PING_PID" || true
    # While iperf3 still runs: the guest powers off when it ends, and then the connection ends for good.
    local vlog
    vlog=$(cat "$E2E_TMP/vhostd-V_$name.log")
    vm_wait_marker "$name" '^IPERF-RC=' $((IPERF_S + 60)) || e2e_fail "$name: iperf3 did not finish"
    log=$(vm_log "$name")
    grep -aq '^IPERF-RC=0' "$log" || e2e_fail "$name: iperf3 failed: $(grep -a 'iperf3: error' "$log" | head -n 2)"
    local before after zero loss gap pause
    before=$(grep -aoE '^CARRIER-BEFORE=[0-9]+' "$log" | cut -d= -f2)
    after=$(grep -aoE '^CARRIER-AFTER=[0-9]+' "$log" | cut -d= -f2)
    [ -n "$before" ] && [ "$before" = "$after" ] || e2e_fail "$name: guest carrier_changes $before -> $after"
    zero=$(grep -aE '^\[SUM\] +[0-9.]+-[0-9.]+ +sec .* 0\.00 bits/sec' "$log" | head -n 3 || true)
    [ -z "$zero" ] || e2e_fail "$name: iperf3 had seconds without traffic: $zero"
    loss=$(grep -oE '[0-9.]+% packet loss' "$E2E_TMP/$name-ping.log" | head -n 1)
    # One ping (of 12000) was seen lost once (rawsock, guest under iperf3 load); more is a failure, any is reported.
    # afxdp: its rx ring overflows now and then under iperf3 on these 2 saturated CPUs, upgrades or not (0.1-0.7 %
    # of pings, one at a time, spread over the run): up to 1 % is allowed, but never 3 in a row (15 ms: an
    # upgrade's pause that lost what waited would lose a run).
    local sent got allowed=1 run
    [ "$name" = afxdp ] && allowed=$(((IPERF_S - 30) * 2))
    sent=$(grep -oE '^[0-9]+ packets transmitted' "$E2E_TMP/$name-ping.log" | grep -oE '^[0-9]+')
    got=$(grep -oE '[0-9]+ received' "$E2E_TMP/$name-ping.log" | grep -oE '^[0-9]+')
    [ -n "$sent" ] && [ -n "$got" ] && [ $((sent - got)) -le "$allowed" ] || e2e_fail "$name: pings: ${loss:-no summary}"
    run=$(grep -oE 'icmp_seq=[0-9]+' "$E2E_TMP/$name-ping.log" | cut -d= -f2 |
        awk 'NR > 1 && $1 - p - 1 > r { r = $1 - p - 1 } { p = $1 } END { print r + 0 }')
    [ "$run" -le 2 ] || e2e_fail "$name: $run pings in a row were lost (${loss:-})"
    gap=$(grep -aoE '^\[[0-9.]+\]' "$E2E_TMP/$name-ping.log" | tr -d '[]' |
        awk 'NR > 1 && $1 - p > g { g = $1 - p } { p = $1 } END { printf "%.0f", g * 1000 }')
    pause=$(sed -n 's/.*the rings run again \([0-9.]*\) ms after.*/\1/p' "$E2E_TMP/vhostd-V_$name.log" | sort -g | tail -n 1)
    e2e_log "$name: longest pause of the rings in an upgrade ${pause:-?} ms; carrier_changes $before -> $after, $(grep -a 'SUM.*sender' "$log" | grep -oE '[0-9.]+ [KMG]?bits/sec' | head -n 1) guest->host, pings $(grep -oE '[0-9]+ packets transmitted' "$E2E_TMP/$name-ping.log") $loss, longest gap between replies ${gap:-?} ms"
    grep -aq 'front-end disconnected\|closing the connection' <<<"$vlog" &&
        e2e_fail "$name: vhostd saw the connection end while the guest ran"
    grep -aE 'AddressSanitizer|runtime error' "$E2E_TMP/vhostd-V_$name.log" && e2e_fail "$name: sanitizer report"
    kill "$pid"
    : >"$CURRENT"
    e2e_wait_for 10 eval '! kill -0 '"$pid"' 2>/dev/null' || e2e_fail "$name: vhostd did not stop"
    vm_stop "$name"
}

# The ASan build's run (CI's sanitize stage) does tap only: the normal build's run alternates with ASan already.
DEFAULT_KINDS="tap rawsock afxdp"
[[ $VHOSTD_BIN == */build-asan/* ]] && DEFAULT_KINDS=tap
for kind in ${KINDS:-$DEFAULT_KINDS}; do
    case $kind in
    tap) run tap vtap0 -b tap -i vtap0 ;;
    rawsock) run rawsock vf0 -b rawsock -i vp0 ;;
    afxdp) # AF_XDP carries no offload state: the far end must send whole frames with full checksums.
        ip netns exec "$NS" ethtool -K vf0 tx off tso off gso off gro off >/dev/null
        ip netns exec "$NS" ethtool -K vp0 tx off tso off gso off gro off >/dev/null
        run afxdp vf0 -b afxdp -i vp0 -o xdp_mode=skb ;;
    esac
done
e2e_pass "$UPGRADES upgrades (normal and ASan builds alternating) under iperf3 and 200 pings/s, ports: ${KINDS:-$DEFAULT_KINDS}, 2 queue pairs: no carrier change, no loss (afxdp: see above), no reconnect"
