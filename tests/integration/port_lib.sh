# port_lib.sh - shared by tests/integration/port_*.sh (sourced, not run): a veth pair in a private network
# namespace, vhostd on its port end, dpdk-testpmd (virtio-user) or the test front-ends as the guest, and
# counters to compare. Everything we start is stopped by PID; the namespace, its veths and our files go away
# on every exit path.
#
# Traffic stays inside the namespace: the port end ($VP) and the far end ($VF) are both in $NS, IPv6 is off
# there (no router/neighbour chatter), and the far end is where frames for the guest come from
# (build/tests/pktsend) and where frames from the guest are counted (/sys/class/net/$VF/statistics).

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PKTSEND=$O/tests/pktsend

NS=vhport$$
VP=vhp$$ # port end: vhostd binds here
VF=vhf$$ # far end
TPMD_PREFIX=vhport$$
_CLEANUP=()
failures=0

log() { echo "$*"; }
die() { echo "FAIL: $*"; exit 1; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

# on_exit COMMAND: run at exit (after our processes are stopped), last registered first.
on_exit() { _CLEANUP+=("$*"); }

cleanup_extra() {
    local i
    for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${_CLEANUP[$i]}" >/dev/null 2>&1
    done
    ip netns del "$NS" 2>/dev/null
    rm -rf "/var/run/dpdk/$TPMD_PREFIX"
}

# Forgets a PID we stopped ourselves.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local rc=$?
    forget_pid "$pid"
    return $rc
}

# port_init NAME: checks what the tests need (skipping otherwise), makes $T and the namespace with the veth pair.
port_init() {
    [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, AF_PACKET, AF_XDP)"
    [ -x "$VHOSTD" ] && [ -x "$VHOSTCTL" ] || skip "$VHOSTD or $VHOSTCTL not built (run make)"
    local c
    for c in ip ethtool jq setpriv stdbuf dpdk-testpmd; do
        command -v "$c" >/dev/null || skip "$c not installed"
    done
    if [ ! -x "$PKTSEND" ] || [ ! -x "$O/tests/port_vnet_check" ] || [ ! -x "$O/tests/xskmap_pin" ] ||
        [ ! -x "$O/tests/integrity" ]; then
        make -s -C "$ROOT" O="$O" "$O/tests/pktsend" "$O/tests/port_vnet_check" "$O/tests/xskmap_pin" \
            "$O/tests/integrity" >/dev/null ||
            die "cannot build the test helpers"
    fi
    test_tmpdir "$1"
    chmod 755 "$T"
    ip netns add "$NS" || skip "cannot create a network namespace"
    ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$NS" link set lo up
    veth_create || die "cannot create the veth pair"
}

# veth_create: the veth pair $VP/$VF in $NS, 2 queues each, both up (again, after a test deleted it).
veth_create() {
    ip -n "$NS" link add "$VP" numtxqueues 2 numrxqueues 2 type veth peer name "$VF" numtxqueues 2 numrxqueues 2 &&
        ip -n "$NS" link set "$VP" up && ip -n "$NS" link set "$VF" up || return 1
    VF_MAC=$(ip netns exec "$NS" cat "/sys/class/net/$VF/address")
}

nsx() { ip netns exec "$NS" "$@"; }

# tsan_rate PPS: the rate to offer vhostd; under ThreadSanitizer the daemon runs several times slower, and a
# port's rx ring overflows while it catches up: a tenth.
tsan_rate() { if [ -n "${VHOSTD_TSAN:-}" ]; then echo $(($1 / 10)); else echo "$1"; fi; }
link_stat() { ip netns exec "$NS" cat "/sys/class/net/$1/statistics/$2"; }

# snmp PROTO FIELD: a counter of /proc/net/snmp in the namespace (e.g. snmp Tcp InCsumErrors).
snmp() {
    ip netns exec "$NS" awk -v p="$1:" -v f="$2" '$1 == p { if (!n) { for (i = 2; i <= NF; i++) if ($i == f) c = i; n = 1 } else print $c }' /proc/net/snmp
}

# far_checks_csum: from here on the far end verifies every TCP checksum (its rx checksum offload off, an address
# to receive on) and the port end offloads none (tx checksum offload off), so what the port sends is checked as
# sent; a control (10 frames with wrong checksums sent straight from the port end) proves the far end counts
# them. Sets FAR_IP and GUEST_IP.
far_checks_csum() {
    local e0 e1
    nsx ethtool -K "$VP" tx off >/dev/null 2>&1 || bad "ethtool -K $VP tx off"
    nsx ethtool -K "$VF" rx off >/dev/null 2>&1 || bad "ethtool -K $VF rx off"
    FAR_IP=10.199.$(($$ % 250)).1 GUEST_IP=10.199.$(($$ % 250)).2
    ip -n "$NS" addr add "$FAR_IP/24" dev "$VF"
    ip -n "$NS" neigh replace "$GUEST_IP" lladdr 52:54:00:12:34:56 dev "$VF"
    e0=$(snmp Tcp InCsumErrors)
    nsx "$PKTSEND" -i "$VP" -n 10 -t -x -s 200 -S "$GUEST_IP" -D "$FAR_IP" -d "$VF_MAC" >/dev/null
    sleep 0.2
    e1=$(snmp Tcp InCsumErrors)
    [ $((e1 - e0)) -eq 10 ] || bad "control: the far end counted $((e1 - e0)) of 10 bad TCP checksums; it does not check them"
}

# guest_tcp_out WHAT COUNT MSS PAYLOAD: port_vnet_check, as a guest that acked CSUM and HOST_TSO4, sends COUNT
# TCP frames of PAYLOAD bytes with partial checksums (TSO with gso_size MSS when PAYLOAD > MSS) on $SOCK; the
# far end (far_checks_csum first) must take every segment with a good checksum.
guest_tcp_out() {
    local what=$1 count=$2 mss=$3 payload=$4 rx0 in0 e0 out rx in err segs
    segs=$((count * ((payload + mss - 1) / mss)))
    rx0=$(link_stat "$VF" rx_packets) in0=$(snmp Tcp InSegs) e0=$(snmp Tcp InCsumErrors)
    out=$("$O/tests/port_vnet_check" tx "$SOCK" "$count" "$mss" "$payload" "$VF_MAC" "$GUEST_IP" "$FAR_IP" 2>&1) ||
        bad "$what: $out"
    sleep 0.5
    rx=$(($(link_stat "$VF" rx_packets) - rx0)) in=$(($(snmp Tcp InSegs) - in0)) err=$(($(snmp Tcp InCsumErrors) - e0))
    log "$what: $out; far end received $rx frames, TCP took $in segments, $err checksum errors"
    if [ "$rx" -ne "$segs" ] || [ "$in" -ne "$segs" ] || [ "$err" -ne 0 ]; then
        bad "$what: expected $segs segments with good checksums"
    else
        ok "$what: $count frames of $payload bytes left as $segs good segments"
    fi
}

# vhostd_start TAG ARGS...: vhostd in the namespace, on $T/TAG.sock with control socket $T/TAG.ctl; waits until it
# answers. Sets VPID, SOCK, CTL. Returns 1 (and prints the log) when it exits instead.
vhostd_start() {
    local tag=$1 i
    shift
    SOCK=$T/$tag.sock CTL=$T/$tag.ctl VLOG=$T/$tag.vhostd.log
    rm -f "$SOCK" "$CTL"
    _FAIL_AT_START=$failures
    ip netns exec "$NS" "$VHOSTD" -s "$SOCK" -C "$CTL" "$@" >"$VLOG" 2>&1 </dev/null &
    VPID=$!
    PIDS+=("$VPID")
    for i in $(seq 100); do
        "$VHOSTCTL" -s "$CTL" >/dev/null 2>&1 && return 0
        kill -0 "$VPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "vhostd $* did not start:"
    sed 's/^/    | /' "$VLOG"
    stop_pid "$VPID"
    return 1
}

# vhostd_stop: SIGTERM; vhostd must exit 0 (a seccomp violation at shutdown is SIGSYS, exit 159).
vhostd_stop() {
    stop_pid "$VPID"
    local rc=$?
    [ $rc -eq 0 ] || bad "vhostd exited with status $rc after SIGTERM"
    if [ "$failures" -gt "${_FAIL_AT_START:-0}" ]; then
        echo "vhostd's log:"
        tail -n 30 "$VLOG" | sed 's/^/    | /'
    fi
    if grep -qE 'Sanitizer|runtime error' "$VLOG"; then
        bad "vhostd reported: $(grep -E 'Sanitizer|runtime error' "$VLOG" | head -n1)"
    fi
    return $rc
}

# vstat FIELD VRING...: the sum of a per-vring counter (vhostctl --json) over the listed vrings.
vstat() {
    local field=$1 js
    shift
    js=$("$VHOSTCTL" -s "$CTL" --json) || { echo -1; return; }
    local idx
    idx=$(printf '%s,' "$@")
    jq -r --argjson idx "[${idx%,}]" "[.ports[0].vrings[] | select(.index as \$i | any(\$idx[]; . == \$i)) | .$field] | add // 0" <<<"$js"
}

# testpmd_start MODE [EXTRA...]: dpdk-testpmd as the guest (virtio-user, $TP_QUEUES queue pairs) on $SOCK, interactive
# with its commands written to a FIFO, so forwarding can be stopped (and counted) while the device is still attached.
TP_QUEUES=2
testpmd_start() {
    local mode=$1 i
    shift
    TP_IN=$T/testpmd.in TP_LOG=$T/testpmd.$mode.log
    rm -f "$TP_IN"
    mkfifo -m 600 "$TP_IN" || die "mkfifo"
    # stdbuf: testpmd's statistics must reach the log while it runs.
    ip netns exec "$NS" stdbuf -oL -eL dpdk-testpmd -l 0-1 --no-huge -m 256 --no-pci --file-prefix="$TPMD_PREFIX" \
        --vdev="net_virtio_user0,path=$SOCK,queues=$TP_QUEUES" -- -i --total-num-mbufs=16384 --rxq=$TP_QUEUES --txq=$TP_QUEUES --nb-cores=1 \
        --forward-mode="$mode" --disable-link-check "$@" <"$TP_IN" >"$TP_LOG" 2>&1 &
    TPPID=$!
    PIDS+=("$TPPID")
    exec {TP_FD}>"$TP_IN"
    for i in $(seq 300); do
        if grep -q 'Port 0: ' "$TP_LOG" && grep -q '^Done' "$TP_LOG" &&
            [ "$("$VHOSTCTL" -s "$CTL" --json 2>/dev/null | jq '[.ports[0].vrings[] | select(.started and .enabled)] | length')" = $((2 * TP_QUEUES)) ]; then
            return 0
        fi
        kill -0 "$TPPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "dpdk-testpmd did not start:"
    tail -n 20 "$TP_LOG" | sed 's/^/    | /'
    return 1
}

tp_cmd() { echo "$*" >&"$TP_FD"; }

# testpmd_stop_fwd: stops forwarding and sets TP_RX, TP_TX (accumulated forward statistics).
testpmd_stop_fwd() {
    local i n
    n=$(grep -c 'Accumulated forward statistics' "$TP_LOG")
    tp_cmd stop
    for i in $(seq 100); do
        [ "$(grep -c 'Accumulated forward statistics' "$TP_LOG")" -gt "$n" ] && break
        sleep 0.1
    done
    sleep 0.2
    TP_RX=$(grep -A1 'Accumulated forward statistics' "$TP_LOG" | tail -n1 | awk '{print $2}')
    TP_TX=$(grep -A2 'Accumulated forward statistics' "$TP_LOG" | tail -n1 | awk '{print $2}')
    [ -n "$TP_RX" ] && [ -n "$TP_TX" ]
}

testpmd_quit() {
    tp_cmd quit
    local i
    for i in $(seq 50); do kill -0 "$TPPID" 2>/dev/null || break; sleep 0.1; done
    exec {TP_FD}>&-
    stop_pid "$TPPID"
    rm -f "$TP_IN"
}

# guest_to_port WHAT SECONDS [FRAME_BYTES]: testpmd txonly (64-byte frames by default, both queue pairs) for
# SECONDS; every frame testpmd counts as sent must reach the far end, less those vhostd counts as dropped.
guest_to_port() {
    local what=$1 secs=$2 size=${3:-64} before after far drops f1 f3
    testpmd_start txonly --txpkts="$size" || { bad "$what: testpmd"; return 1; }
    before=$(link_stat "$VF" rx_packets)
    tp_cmd start
    sleep "$secs"
    testpmd_stop_fwd || { bad "$what: no statistics from testpmd"; testpmd_quit; return 1; }
    sleep 0.5 # vhostd finishes what is left in the rings
    after=$(link_stat "$VF" rx_packets)
    drops=$(vstat drops 1 3)
    f1=$(vstat frames 1) f3=$(vstat frames 3)
    testpmd_quit
    far=$((after - before))
    log "$what: testpmd sent $TP_TX $size-byte frames, vhostd took $f1 + $f3 (queue pairs 0 + 1) and dropped $drops, far end received $far"
    if [ "$TP_TX" -le 0 ]; then
        bad "$what: testpmd sent nothing"
    elif [ "$far" -ne $((TP_TX - drops)) ]; then
        bad "$what: far end received $far, expected $((TP_TX - drops))"
    elif [ "$f1" -le 0 ] || { [ "$TP_QUEUES" -gt 1 ] && [ "$f3" -le 0 ]; }; then
        bad "$what: one queue pair carried nothing ($f1, $f3)"
    else
        ok "$what: $far frames"
    fi
}

# port_to_guest WHAT COUNT PPS [BOTH_QUEUES(1|0)] [FRAME_BYTES]: pktsend COUNT UDP frames (64 bytes by default) in
# 16 flows from the far end at PPS; testpmd rxonly must count them all. With BOTH_QUEUES=1 both queue pairs must
# have carried some.
# On a loaded 2-core host testpmd's polling thread can stall for half a second; the port's kernel ring (rawsock:
# 4 MiB per queue; afxdp: 1024 rx frames of the UMEM per queue) then overflows and the kernel drops what it cannot hold. Such a
# shortfall is retried once at a quarter of the rate, and only a second one fails; a shortfall that the kernel's
# and vhostd's drop counters do not account for fails at once.
port_to_guest() {
    local what=$1 count=$2 pps=$3 both=${4:-1} size=${5:-64} try
    pps=$(tsan_rate "$pps")
    for try in 1 2; do
        _port_to_guest_once "$what" "$count" "$pps" "$size" || return
        if [ $((TP_RX + LOST_COUNTED)) -ne "$count" ]; then
            bad "$what: $((count - TP_RX - LOST_COUNTED)) of $count frames lost without being counted"
            return
        fi
        if [ "$TP_RX" -eq "$count" ] || [ $try = 2 ]; then
            break
        fi
        log "$what: $((count - TP_RX)) of $count frames lost; once more at $((pps / 4))/s"
        pps=$((pps / 4))
    done
    if [ "$TP_RX" -ne "$count" ]; then
        bad "$what: testpmd received $TP_RX of $count"
    elif [ "$both" = 1 ] && { [ "$R0" -le 0 ] || [ "$R2" -le 0 ]; }; then
        bad "$what: one queue pair carried nothing ($R0, $R2)"
    else
        ok "$what: $TP_RX frames"
    fi
}

_port_to_guest_once() {
    local what=$1 count=$2 pps=$3 size=$4 pdrop kdrop vdrop
    testpmd_start rxonly || { bad "$what: testpmd"; return 1; }
    tp_cmd start
    sleep 0.5
    pdrop=$(link_stat "$VP" rx_dropped) kdrop=$(port_json kernel_drops)
    nsx "$PKTSEND" -i "$VF" -n "$count" -r "$pps" -s "$size" -f 16 >/dev/null || bad "$what: pktsend failed"
    sleep 1
    testpmd_stop_fwd || { bad "$what: no statistics from testpmd"; testpmd_quit; return 1; }
    R0=$(vstat frames 0) R2=$(vstat frames 2) vdrop=$(vstat drops 0 2)
    pdrop=$(($(link_stat "$VP" rx_dropped) - pdrop)) kdrop=$(($(port_json kernel_drops) - kdrop))
    testpmd_quit
    LOST_COUNTED=$(lost_counted "$pdrop" "$kdrop" "$vdrop")
    log "$what: far end sent $count $size-byte frames at $pps/s, vhostd delivered $R0 + $R2 (queue pairs 0 + 1), testpmd received $TP_RX; dropped by the port $pdrop, the kernel $kdrop (receive ring full), vhostd $vdrop"
}

# port_json FIELD: a field of the first port in vhostctl --json.
port_json() { "$VHOSTCTL" -s "$CTL" --json | jq -r ".ports[0].$1"; }

# PORT_RX_DROPPED_HAS_KERNEL=1: the interface's rx_dropped already counts the kernel's socket drops (native XDP
# on veth counts a failed redirect to a full AF_XDP socket as its own rx drop).
PORT_RX_DROPPED_HAS_KERNEL=0

# lost_counted PORT_RX_DROPPED KERNEL_DROPS VHOSTD_DROPS: frames lost and counted somewhere, each once.
lost_counted() {
    if [ "$PORT_RX_DROPPED_HAS_KERNEL" = 1 ]; then echo $(($1 + $3)); else echo $(($1 + $2 + $3)); fi
}

# stalled_guest WHAT COUNT PPS: the guest stops taking frames (testpmd attached, forwarding not started) while
# the far end sends COUNT 64-byte frames at PPS, then starts again (--no-flush-rx: testpmd would otherwise discard
# what waits in its rings at start). The port's kernel ring overflows: those frames must show in vhostctl's
# kernel_drops, and every other frame must reach the guest once it resumes.
stalled_guest() {
    local what=$1 count=$2 pps=$3 k0 k1 d pdrop p0 n prev=-1 still=0 i
    testpmd_start rxonly --no-flush-rx || { bad "$what: testpmd"; return 1; }
    k0=$(port_json kernel_drops) p0=$(link_stat "$VP" rx_dropped)
    nsx "$PKTSEND" -i "$VF" -n "$count" -r "$(tsan_rate "$pps")" -s 64 -f 16 >/dev/null || bad "$what: pktsend failed"
    tp_cmd start
    # Until vhostd has delivered every frame the kernel kept (nothing arrives any more, so the drop counts are
    # final), or its count stood still for 3 s.
    for i in $(seq 100); do
        sleep 0.3
        n=$(vstat frames 0 2) k1=$(port_json kernel_drops) d=$(vstat drops 0 2) pdrop=$(($(link_stat "$VP" rx_dropped) - p0))
        [ $((n + $(lost_counted "$pdrop" $((k1 - k0)) "$d"))) -ge "$count" ] && break
        if [ "$n" = "$prev" ]; then still=$((still + 1)); else still=0; fi
        [ $still -ge 10 ] && break
        prev=$n
    done
    sleep 0.3 # testpmd polls what vhostd delivered last
    testpmd_stop_fwd || { bad "$what: no statistics from testpmd"; testpmd_quit; return 1; }
    k1=$(port_json kernel_drops) d=$(vstat drops 0 2) pdrop=$(($(link_stat "$VP" rx_dropped) - p0))
    testpmd_quit
    "$VHOSTCTL" -s "$CTL" | grep -q "^  $k1 frames dropped by the kernel before the port took them" ||
        bad "$what: the text output does not show $k1 kernel drops: $("$VHOSTCTL" -s "$CTL" | head -n 3)"
    log "$what: far end sent $count, testpmd received $TP_RX, kernel dropped $((k1 - k0)) (vhostctl kernel_drops), vhostd dropped $d, the port's own rx drops $pdrop"
    if [ $((k1 - k0)) -le 0 ]; then
        bad "$what: no kernel drops counted, though the guest took nothing for a while"
    elif [ $((TP_RX + $(lost_counted "$pdrop" $((k1 - k0)) "$d"))) -ne "$count" ]; then
        bad "$what: $TP_RX received + $((k1 - k0)) kernel drops + $d vhostd drops + $pdrop port drops != $count sent"
    else
        ok "$what: every frame received or counted as a kernel drop"
    fi
}

# expect_open_error WHAT MESSAGE VHOSTD_ARGS...: vhostd must exit 1 within 10 s, without crashing, naming MESSAGE.
expect_open_error() {
    local what=$1 msg=$2 out rc
    shift 2
    out=$(timeout -k 2 10 ip netns exec "$NS" "$VHOSTD" -s "$T/bad.sock" "$@" 2>&1 </dev/null)
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        bad "$what: vhostd hung"
    elif [ $rc -ne 1 ]; then
        bad "$what: exit $rc, expected 1: $out"
    elif grep -qE 'Sanitizer|runtime error|Segmentation|Aborted' <<<"$out"; then
        bad "$what: crash report: $out"
    elif ! grep -q -- "$msg" <<<"$out"; then
        bad "$what: message does not say \"$msg\": $out"
    elif [ -e "$T/bad.sock" ]; then
        bad "$what: socket file left behind"
    else
        ok "$what: $(grep -m1 -- "$msg" <<<"$out" | sed 's/^<[0-9]>//')"
    fi
}

port_finish() {
    if [ "$failures" -gt 0 ]; then
        echo "$failures check(s) failed"
        exit 1
    fi
    echo "all checks passed"
    exit 0
}
