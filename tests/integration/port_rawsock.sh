#!/bin/bash
# port_rawsock.sh - the rawsock port (AF_PACKET, TPACKET_V3 rx ring, sendmmsg) on a veth in a private network
# namespace (see port_lib.sh), with dpdk-testpmd (virtio-user, 2 queue pairs) and the test front-end
# port_vnet_check as the guest:
#   - guest -> port: testpmd txonly on both queue pairs (64- and 1514-byte frames, vhostd under --seccomp); the
#     far end receives every frame testpmd sent;
#   - port -> guest: 16 UDP flows from the far end (pktsend, 64 and 1514 bytes); testpmd rxonly receives them
#     all, on both queue pairs (hash fanout), and none of the guest's own frames come back
#     (PACKET_IGNORE_OUTGOING);
#   - offloads (1 queue pair): TCP GSO frames reach a guest that acked GUEST_TSO4 whole, with a header that
#     completes to the right checksum; a guest without offloads gets them cut into MSS segments (TCP, and UDP
#     GSO) with complete checksums and a zero header; partial checksums are passed on or completed; a TSO frame
#     from the guest leaves as segments the far end's TCP accepts (the far end checks checksums: rx offload off,
#     and a control with wrong checksums shows it does);
#   - bad configuration: no such interface, MTU above the interface's: vhostd exits 1 with the reason.
# Exit 0 pass, 1 fail, 77 skip (not root, no dpdk-testpmd...).
set -u
. "$(dirname "$0")/port_lib.sh"

port_init rawsock

# ---- counts with testpmd, 2 queue pairs; the data path under vhostd's seccomp filter ----
vhostd_start mq -b rawsock -i "$VP" -q 2 --seccomp || die "vhostd did not start"
guest_to_port "guest->port (2 queue pairs)" 2
port_to_guest "port->guest (2 queue pairs)" 100000 100000
guest_to_port "guest->port, full-size frames" 1 1514
port_to_guest "port->guest, full-size frames" 50000 50000 1 1514
stalled_guest "port->guest, guest stalled" 150000 300000
# The far end saw nothing but what testpmd sent, and the guest nothing but what pktsend sent: our own frames
# do not come back (checked by the exact counts above). One more look at the port counters:
log "port $VP: rx $(link_stat "$VP" rx_packets) tx $(link_stat "$VP" tx_packets) frames"
vhostd_stop

# ---- offloads, 1 queue pair, with the checking front-end ----
# check_rx WHAT EXPECTED MSS OFFLOAD PKTSEND_ARGS...: port_vnet_check receives EXPECTED frames while pktsend sends.
check_rx() {
    local what=$1 expected=$2 mss=$3 mode=$4 out i cpid
    shift 4
    out=$T/check.out
    "$O/tests/port_vnet_check" rx "$SOCK" "$expected" "$mss" $mode >"$out" 2>&1 &
    cpid=$!
    PIDS+=("$cpid")
    for i in $(seq 100); do grep -q '^ready' "$out" && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    local args=() a prev=
    for a in "$@"; do
        [ "$prev" = -r ] && a=$(tsan_rate "$a")
        args+=("$a")
        prev=$a
    done
    nsx "$PKTSEND" -i "$VF" "${args[@]}" >/dev/null || bad "$what: pktsend failed"
    wait "$cpid"
    local rc=$?
    forget_pid "$cpid"
    if [ $rc -eq 0 ]; then
        ok "$what: $(tail -n1 "$out")"
    else
        bad "$what: $(tail -n 6 "$out" | tr '\n' ' ')"
    fi
}

vhostd_start off -b rawsock -i "$VP" -q 1 -o offloads=yes || die "vhostd did not start"
check_rx "TCP GSO to a guest with GUEST_TSO4" 200 1448 offload -n 200 -r 2000 -t -g 1448 -s 14480
check_rx "TCP GSO to a guest without offloads (segmented)" 2000 1448 none -n 200 -r 2000 -t -g 1448 -s 14480
check_rx "UDP GSO to a guest without offloads (segmented)" 1600 1000 none -n 200 -r 2000 -g 1000 -s 8000
check_rx "UDP GSO to a guest with GUEST_TSO4 (segmented: no USO)" 1600 1000 offload -n 200 -r 2000 -g 1000 -s 8000
check_rx "partial UDP checksums to a guest with GUEST_CSUM" 1000 1000 offload -n 1000 -r 5000 -c -s 1000
check_rx "partial TCP checksums to a guest without offloads (completed)" 1000 1000 none -n 1000 -r 5000 -t -c -s 1000
check_rx "complete checksums to a guest without offloads" 1000 1000 none -n 1000 -r 5000 -s 1000

# A TSO frame from the guest: the kernel segments it (the port end's tx checksum offload off) and the far end
# verifies every checksum.
far_checks_csum
guest_tcp_out "TSO from the guest" 100 1000 10000
vhostd_stop

# ---- bad configuration ----
expect_open_error "no such interface" "No such device" -b rawsock -i nosuch$$
expect_open_error "MTU above the interface's" "Message too long" -b rawsock -i "$VP" -o mtu=9000

port_finish
