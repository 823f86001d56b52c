#!/bin/bash
# port_afxdp.sh - the afxdp port (one AF_XDP socket and UMEM per queue pair, copy mode) on a veth created with
# 2 rx and 2 tx queues in a private network namespace (see port_lib.sh), with dpdk-testpmd (virtio-user, 2 queue
# pairs) as the guest. For each of skb (generic) mode, native (driver) mode, auto mode, and a pinned XSKMAP of
# our own program (xsks_map: vhostd runs without CAP_BPF, CAP_SYS_ADMIN and CAP_NET_ADMIN, and under --seccomp):
#   - guest -> port: testpmd txonly on both queue pairs; the far end receives every frame testpmd sent
#     (64-byte frames; 1514 bytes too in native mode, with busy_poll);
#   - port -> guest: 16 UDP flows from the far end (pktsend); testpmd rxonly receives them all. In native mode
#     both queue pairs carry some. In skb mode a veth hands every frame to generic XDP as rx queue 0, so only
#     queue pair 0 receives there (a property of veth, not of vhostd).
#   - the XDP program is attached in the mode asked for while vhostd runs, and gone after it exits.
# Bad configuration: no such interface, MTU above the interface's or above what a UMEM frame holds (4096- and
# 2048-byte frames; the largest that fits does open), a NIC queue the veth does not have, zero-copy on a veth,
# no permission: vhostd exits 1 naming the reason.
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

own_prog=0
run_mode skb generic 0 -o xdp_mode=skb
run_mode native native 1 -o xdp_mode=native
# Full-size frames, and busy polling asked of the kernel (SO_PREFER_BUSY_POLL).
PORT_RX_DROPPED_HAS_KERNEL=1
vhostd_start big -b afxdp -i "$VP" -q 2 -o xdp_mode=native -o busy_poll=yes || bad "busy_poll: vhostd did not start"
guest_to_port "native, busy_poll: guest->port, full-size frames" 1 1514
port_to_guest "native, busy_poll: port->guest, full-size frames" 20000 10000 1 1514
vhostd_stop
run_mode auto native 1

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
# The UMEM frame limits (frame_size - 256 - 14 - 4), on an interface that would carry more.
ip -n "$NS" link set "$VP" mtu 4000
expect_open_error "MTU above a 4096-byte UMEM frame" "Message too long" -b afxdp -i "$VP" -o mtu=3823
expect_open_error "MTU above a 2048-byte UMEM frame" "Message too long" -b afxdp -i "$VP" -o frame_size=2048 -o mtu=1775
for m in "4096 3822" "2048 1774"; do
    set -- $m
    if vhostd_start "mtu$2" -b afxdp -i "$VP" -q 1 -o xdp_mode=skb -o frame_size="$1" -o mtu="$2"; then
        ok "MTU $2 with $1-byte UMEM frames opens"
        vhostd_stop
    else
        bad "MTU $2 with $1-byte UMEM frames does not open"
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
