#!/bin/bash
# port_afxdp.sh - the afxdp port (one AF_XDP socket per queue pair, all on one shared UMEM, copy mode) on a veth
# created with 2 rx and 2 tx queues in a private network namespace (see port_lib.sh), with dpdk-testpmd
# (virtio-user, 2 queue pairs) as the guest. For each of skb (generic) mode, native (driver) mode, auto mode, and a pinned XSKMAP of
# our own program (xsks_map: vhostd runs without CAP_BPF, CAP_SYS_ADMIN and CAP_NET_ADMIN, and under --seccomp):
#   - guest -> port: testpmd txonly on both queue pairs; the far end receives every frame testpmd sent
#     (64-byte frames; 1514 bytes too in native mode, with busy_poll);
#   - port -> guest: 16 UDP flows from the far end (pktsend); testpmd rxonly receives them all. In native mode
#     both queue pairs carry some. In skb mode a veth hands every frame to generic XDP as rx queue 0, so only
#     queue pair 0 receives there (a property of veth, not of vhostd).
#   - the XDP program is attached in the mode asked for while vhostd runs, and gone after it exits.
# Integrity on the shared UMEM (build/tests/integrity --queues 2, 60..1514-byte frames with a sequence number and
# a checksum): in native mode every queue pair carries frames both ways (the host sends each lane from its own
# CPU, so it reaches the veth queue of that queue pair), in skb mode both tx queues (rx is queue 0 only there);
# none is lost, duplicated or corrupted. The UMEM is one memfd mapping of 2 x 1280 frames of 2 KiB, all resident.
# Jumbo frames (multi-buffer): at MTU 9000, frames of 60..9014 bytes both ways in skb and native mode, to a guest
# with one buffer per frame and to one with 1536-byte mergeable buffers; none lost, duplicated or corrupted.
# Offloads from the guest (skb and native, 1 queue pair, port_vnet_check as the guest): 200 frames with partial
# TCP checksums (to the kernel in AF_XDP TX metadata, which vhostd must say it uses on Linux >= 6.8) and 100 TSO
# frames of 10000 bytes; the far end's TCP must take 200 and 1000 segments with good checksums (its rx checksum
# offload off; a control shows it counts bad ones); the same at MTU 9000 with 8000-byte frames and TSO frames
# of 15000 bytes cut into 8960-byte segments.
# Bad configuration: no such interface, MTU above the interface's or above 9000 (MTU 9000 opens with 2048- and
# 4096-byte UMEM frames), a NIC queue the veth does not have, zero-copy on a veth, no permission: vhostd exits 1
# naming the reason.
# Exit 0 pass, 1 fail, 77 skip (not root, no dpdk-testpmd...).
set -u
. "$(dirname "$0")/port_lib.sh"

port_init afxdp

# xdp_attached: "generic", "native" or "none" for the port end.
xdp_attached() {
    local l
    l=$(ip -n "$NS" -d link show "$VP")
    if grep -q 'xdpgeneric' <<<"$l"; then echo generic
    elif grep -qE '(^| )xdp( |/)|prog/xdp' <<<"$l"; then echo native
    else echo none; fi
}

# run_mode WHAT EXPECTED_XDP RX_BOTH VHOSTD_ARGS...
run_mode() {
    local what=$1 want=$2 both=$3 got
    shift 3
    PORT_RX_DROPPED_HAS_KERNEL=0
    [ "$want" = native ] && PORT_RX_DROPPED_HAS_KERNEL=1
    vhostd_start "${what//[^a-zA-Z0-9]/_}" -b afxdp -i "$VP" -q 2 "$@" || { bad "$what: vhostd did not start"; return; }
    got=$(xdp_attached)
    if [ "$got" = "$want" ]; then ok "$what: XDP program attached ($got)"; else bad "$what: XDP attached: $got, expected $want"; fi
    guest_to_port "$what guest->port" 2
    port_to_guest "$what port->guest" 20000 10000 "$both"
    stalled_guest "$what port->guest, guest stalled" 20000 100000
    vhostd_stop
    got=$(xdp_attached)
    if [ "$own_prog" = 1 ] || [ "$got" = none ]; then ok "$what: XDP program after exit: $got"; else bad "$what: XDP program left attached ($got)"; fi
}

# umem_check WHAT QUEUE_PAIRS FRAME_SIZE: vhostd maps one UMEM memfd of QUEUE_PAIRS slices of 1280 frames.
umem_check() {
    local what=$1 want=$(($2 * 1280 * $3 / 1024)) n rss
    n=$(grep -c 'vhostd-afxdp-umem' "/proc/$VPID/maps")
    rss=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {m = index($0, "vhostd-afxdp-umem") > 0} m && $1 == "Rss:" {s += $2} END {print s + 0}' "/proc/$VPID/smaps")
    if [ "$n" = 1 ] && [ "$rss" = "$want" ]; then
        ok "$what: one UMEM mapping, $rss kB resident"
    else
        bad "$what: UMEM mappings: $n, resident $rss kB, expected 1 and $want kB"
    fi
}

# integrity_check WHAT FRAMES INTEGRITY_ARGS...: frames of 60..1514 bytes both ways through the running vhostd.
integrity_check() {
    local what=$1 frames=$2 out
    shift 2
    [ -n "${VHOSTD_TSAN:-}" ] && frames=$((frames / 10))
    if out=$(nsx "$O/tests/integrity" --socket "$SOCK" --ifname "$VF" --frames "$frames" "$@" 2>&1); then
        ok "$what: every frame intact"
        sed 's/^/    /' <<<"$out"
    else
        bad "$what: $(tr '\n' ' ' <<<"$out")"
    fi
}

own_prog=0
# Two queue pairs on one UMEM, native mode: both directions on each queue pair, every frame checked.
vhostd_start integrity_native -b afxdp -i "$VP" -q 2 -o xdp_mode=native || bad "integrity, native: vhostd did not start"
umem_check "native, 2 queue pairs" 2 2048
integrity_check "native, 2 queue pairs on one UMEM" 200000 --queues 2 --every-queue
vhostd_stop
vhostd_start integrity_skb -b afxdp -i "$VP" -q 2 -o xdp_mode=skb || bad "integrity, skb: vhostd did not start"
integrity_check "skb, 2 queue pairs on one UMEM" 100000 --queues 2
vhostd_stop
# 4096-byte frames: a UMEM of twice the size, and frames of up to 3000 bytes intact.
ip -n "$NS" link set "$VP" mtu 3000
ip -n "$NS" link set "$VF" mtu 3000
vhostd_start integrity_4k -b afxdp -i "$VP" -q 2 -o xdp_mode=native -o frame_size=4096 -o mtu=3000 ||
    bad "integrity, 4096-byte frames: vhostd did not start"
umem_check "native, 4096-byte frames" 2 4096
integrity_check "native, 4096-byte frames" 50000 --queues 2 --every-queue --max-size 3014
vhostd_stop
ip -n "$NS" link set "$VP" mtu 1500
ip -n "$NS" link set "$VF" mtu 1500

# Jumbo frames (multi-buffer AF_XDP, Linux >= 6.6): MTU 9000 on both veth ends, frames of 60..9014 bytes both
# ways in skb and native mode, spread over several 4096-byte UMEM frames; the guest with one large buffer per
# frame (mergeable rx buffers not negotiated), and with 1536-byte mergeable buffers (a frame over several).
kernel_at_least() { printf '%s\n%s\n' "$1" "$(uname -r)" | sort -V -C; }
ip -n "$NS" link set "$VP" mtu 9000
ip -n "$NS" link set "$VF" mtu 9000
for m in skb native; do
    every=()
    [ $m = native ] && every=(--every-queue)
    vhostd_start "jumbo_$m" -b afxdp -i "$VP" -q 2 -o xdp_mode=$m -o mtu=9000 || { bad "MTU 9000, $m: vhostd did not start"; continue; }
    if grep -q 'multi-buffer: frames up to MTU 9000' "$VLOG"; then
        ok "MTU 9000, $m: vhostd says it uses multi-buffer"
    elif kernel_at_least 6.6; then
        bad "MTU 9000, $m: no multi-buffer on Linux $(uname -r): $(grep 'afxdp port' "$VLOG")"
    fi
    integrity_check "$m, MTU 9000, one buffer per frame (no mergeable buffers)" 20000 --queues 2 --max-size 9014 \
        --no-mrg "${every[@]}"
    integrity_check "$m, MTU 9000, 1536-byte mergeable buffers" 20000 --queues 2 --max-size 9014 --rx-buf 1536 \
        "${every[@]}"
    vhostd_stop
done
ip -n "$NS" link set "$VP" mtu 1500
ip -n "$NS" link set "$VF" mtu 1500

run_mode skb generic 0 -o xdp_mode=skb
run_mode native native 1 -o xdp_mode=native
# Preferred busy polling, native mode's default: the workers run the port end's NAPI, which vhostd tells to
# defer its interrupts while it runs (2 polls, 200 us, as the kernel reports it) and gives back what it had when
# it stops. GRO on the port end gives the veth a NAPI of its own that outlives the XDP program, so that the
# restore can be seen. Full-size frames both ways meanwhile. busy_poll = no, and skb mode, leave it alone.
napis() { nsx "$O/tests/napi_show" "$VP" 2>&1; }
# deferring NAPIS: some NAPI listed, every one with vhostd's deferral (2 polls, 200 us).
deferring() { [ -n "$1" ] && ! grep -v ' defer 2 gro 200000 ' <<<"$1" | grep -q .; }
PORT_RX_DROPPED_HAS_KERNEL=1
nsx ethtool -K "$VP" gro on >/dev/null
napi_before=$(napis)
vhostd_start big -b afxdp -i "$VP" -q 2 -o xdp_mode=native || bad "busy polling: vhostd did not start"
napi_during=$(napis)
if grep -q 'preferred busy polling, interrupts deferred' "$VLOG" && deferring "$napi_during"; then
    ok "native: busy polling by default, the NAPI deferring interrupts: $(tr '\n' ' ' <<<"$napi_during")"
elif kernel_at_least 6.13; then
    bad "native: no interrupt deferral on Linux $(uname -r): NAPIs: $(tr '\n' ' ' <<<"$napi_during"); $(grep 'afxdp port' "$VLOG")"
fi
guest_to_port "native, busy polling: guest->port, full-size frames" 1 1514
port_to_guest "native, busy polling: port->guest, full-size frames" 20000 10000 1 1514
vhostd_stop
napi_after=$(napis)
if [ "$napi_after" = "$napi_before" ]; then
    ok "native: the NAPI's settings given back when vhostd stopped ($(tr '\n' ' ' <<<"$napi_after"))"
else
    bad "native: NAPI settings before vhostd: $(tr '\n' ' ' <<<"$napi_before"), after: $(tr '\n' ' ' <<<"$napi_after")"
fi
# The same with vhostd's privileges dropped (user nobody, seccomp), stopped and killed: its restorer, a child
# forked before the drop that keeps CAP_NET_ADMIN and holds nothing but its pipe (fds 0-3), gives the settings
# back when vhostd closes the port or dies. The XDP program, which an unprivileged or dead vhostd cannot
# detach, is unloaded by hand.
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null); [ -n "$s" ] && [[ $s != Z* ]]; }
for how in stopped killed; do
    vhostd_start "restorer_$how" -b afxdp -i "$VP" -q 2 -o xdp_mode=native --user nobody --seccomp ||
        { bad "privileges dropped: vhostd did not start"; continue; }
    rpid=$(ps -o pid=,comm= --ppid "$VPID" | awk '$2 == "vhostd-napi" {print $1}')
    rfds=$([ -n "$rpid" ] && ls "/proc/$rpid/fd" | wc -l)
    napi_during=$(napis)
    if [ -n "$rpid" ] && [ "$rfds" = 4 ] && grep -q 'running as user nobody' "$VLOG" && deferring "$napi_during"; then
        ok "privileges dropped: NAPIs deferring ($(tr '\n' ' ' <<<"$napi_during")), restorer $rpid holds $rfds fds"
    elif kernel_at_least 6.13; then
        bad "privileges dropped: restorer '${rpid:-none}' with ${rfds:-no} fds, NAPIs $(tr '\n' ' ' <<<"$napi_during"); $(grep -E 'afxdp port|running as' "$VLOG")"
    fi
    if [ $how = killed ]; then
        kill -KILL "$VPID"
        wait "$VPID" 2>/dev/null
    else
        vhostd_stop
    fi
    for _ in $(seq 50); do
        [ -n "$rpid" ] && alive "$rpid" || break
        sleep 0.1
    done
    napi_after=$(napis)
    if [ "$napi_after" = "$napi_before" ] && ! { [ -n "$rpid" ] && alive "$rpid"; }; then
        ok "privileges dropped, vhostd $how: the NAPI's settings given back, the restorer gone"
    else
        bad "privileges dropped, vhostd $how: NAPIs before $(tr '\n' ' ' <<<"$napi_before"), after $(tr '\n' ' ' <<<"$napi_after"); restorer ${rpid:-none} $( [ -n "$rpid" ] && alive "$rpid" && echo alive)"
    fi
    nsx xdp-loader unload -a "$VP" >/dev/null 2>&1 || ip -n "$NS" link set dev "$VP" xdpdrv off
done
for m in "native -o busy_poll=no" skb; do
    # shellcheck disable=SC2086 # the mode and its options, split on purpose
    vhostd_start nobusy -b afxdp -i "$VP" -q 1 -o xdp_mode=$m || { bad "$m: vhostd did not start"; continue; }
    if grep -q 'busy polling off' "$VLOG" && [ "$(napis)" = "$napi_before" ]; then
        ok "xdp_mode=$m: no busy polling, the NAPI left alone"
    else
        bad "xdp_mode=$m: NAPIs $(napis | tr '\n' ' '); $(grep 'afxdp port' "$VLOG")"
    fi
    vhostd_stop
done
nsx ethtool -K "$VP" gro off >/dev/null
run_mode auto native 1

# Offloads from the guest: partial checksums go to the kernel in AF_XDP TX metadata (Linux >= 6.8; finished in
# software before), TSO frames are cut into segments here; checked by the far end's TCP (one queue pair: the
# guest's frames all leave on it). The port end's tx checksum offload is off, so the kernel computes the
# checksums the metadata asks for before the far end checks them. Then the same at MTU 9000, where a partial
# frame or a segment spans several UMEM frames.
far_checks_csum
# offload_round MTU MSS PAYLOAD TSO_PAYLOAD: partial-checksum and TSO frames from the guest, skb and native mode.
offload_round() {
    local mtu=$1 mss=$2 payload=$3 tso=$4 m
    ip -n "$NS" link set "$VP" mtu "$mtu"
    ip -n "$NS" link set "$VF" mtu "$mtu"
    for m in skb native; do
        vhostd_start "offload_${m}_$mtu" -b afxdp -i "$VP" -q 1 -o xdp_mode=$m -o mtu="$mtu" ||
            { bad "offloads, $m, MTU $mtu: vhostd did not start"; continue; }
        if grep -q 'transmit checksums to the kernel in TX metadata' "$VLOG"; then
            ok "offloads, $m, MTU $mtu: checksums go to the kernel in TX metadata"
        elif kernel_at_least 6.8; then
            bad "offloads, $m, MTU $mtu: no TX metadata on Linux $(uname -r): $(grep 'afxdp port' "$VLOG")"
        fi
        guest_tcp_out "$m, MTU $mtu: partial checksums from the guest" 200 "$mss" "$payload"
        guest_tcp_out "$m, MTU $mtu: TSO from the guest" 100 "$mss" "$tso"
        vhostd_stop
    done
}
offload_round 1500 1000 1000 10000
offload_round 9000 8960 8000 15000
ip -n "$NS" link set "$VP" mtu 1500
ip -n "$NS" link set "$VF" mtu 1500

# Our own program and a pinned XSKMAP: vhostd needs no BPF privilege. bpffs is mounted in a private directory.
mkdir -p "$T/bpffs"
if mount -t bpf bpf "$T/bpffs" 2>/dev/null; then
    on_exit umount "$T/bpffs"
    if out=$(nsx "$O/tests/xskmap_pin" "$VP" "$T/bpffs/xsks_map" skb 2>&1); then
        own_prog=1
        # vhostd as root, minus the capabilities a BPF loader needs (a wrapper, as vhostd_start runs "$VHOSTD").
        real=$VHOSTD
        VHOSTD=$T/vhostd-nobpf
        printf '#!/bin/sh\nexec setpriv --bounding-set -bpf,-sys_admin,-net_admin,-perfmon "%s" "$@"\n' "$real" >"$VHOSTD"
        chmod 755 "$VHOSTD"
        run_mode "xsks_map, no CAP_BPF, seccomp" generic 0 -o xsks_map="$T/bpffs/xsks_map" --seccomp
        # The same without the map: the default program needs the privilege we took away.
        expect_open_error "default program without CAP_BPF/CAP_SYS_ADMIN" "Operation not permitted" -b afxdp -i "$VP" -o xdp_mode=skb
        VHOSTD=$real
        nsx ip link set dev "$VP" xdpgeneric off
        own_prog=0
    else
        bad "cannot set up our own XDP program: $out"
    fi
else
    log "bpffs cannot be mounted here: the xsks_map case is not run"
fi

# ---- bad configuration ----
expect_open_error "no such interface" "No such device" -b afxdp -i nosuch$$
expect_open_error "MTU above the interface's (1500)" "Message too long" -b afxdp -i "$VP" -o mtu=1501
# Multi-buffer carries up to MTU 9000, on an interface that would carry more, with either UMEM frame size.
ip -n "$NS" link set "$VP" mtu 9500
expect_open_error "MTU above 9000" "Message too long" -b afxdp -i "$VP" -o mtu=9001
for fs in 4096 2048; do
    if vhostd_start "mtu_$fs" -b afxdp -i "$VP" -q 1 -o xdp_mode=skb -o frame_size="$fs" -o mtu=9000; then
        ok "MTU 9000 with $fs-byte UMEM frames opens"
        vhostd_stop
    else
        bad "MTU 9000 with $fs-byte UMEM frames does not open"
    fi
done
ip -n "$NS" link set "$VP" mtu 1500
expect_open_error "queue beyond the NIC's (skb)" "Invalid argument" -b afxdp -i "$VP" -q 2 -o start_queue=1 -o xdp_mode=skb
expect_open_error "queue beyond the NIC's (native)" "Invalid argument" -b afxdp -i "$VP" -q 1 -o start_queue=2 -o xdp_mode=native
expect_open_error "zero-copy on a veth" "Operation not supported" -b afxdp -i "$VP" -o zero_copy=yes
real=$VHOSTD
VHOSTD=$T/vhostd-nobody
printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "%s" "$@"\n' "$real" >"$VHOSTD"
chmod 755 "$VHOSTD"
chmod 1777 "$T"
expect_open_error "no permission (uid nobody)" "Operation not permitted" -b afxdp -i "$VP" -o xdp_mode=skb
VHOSTD=$real
got=$(xdp_attached)
[ "$got" = none ] && ok "no XDP program left after the failed opens" || bad "XDP program left after the failed opens ($got)"

port_finish
