#!/bin/bash
# A real QEMU guest through vhostd's AF_PACKET port and AF_XDP port (skb and native mode, copy), each bound to
# one end of a veth pair whose far end is in a network namespace this test creates: ping both ways, iperf3
# TCP both ways, 2 queue pairs. Then AF_XDP at MTU 9000 (multi-buffer), skb and native: the guest's MTU is
# 9000, the host pings it with 8972-byte payloads and DF set, iperf3 both ways (the guest sends TSO frames
# that vhostd cuts into 9000-byte segments). Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_cmd iperf3 jq ethtool

HOST_IP=10.83.0.1
GUEST_IP=10.83.0.2
netns_create NS
# Both ends in NS: vhostd binds vp0, the host side (iperf3 server) is vf0.
ip -n "$NS" link add vp0 numtxqueues 2 numrxqueues 2 type veth peer name vf0 numtxqueues 2 numrxqueues 2
ip -n "$NS" link set vp0 up
netns_set_ip "$NS" vf0 "$HOST_IP/24"
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

run() { # name vhostd-args... (GUEST_MTU: the guest's MTU, when set)
    local name=$1; shift
    local sock=$E2E_TMP/$name.sock ctl=$E2E_TMP/$name.ctl
    vhostd_start "V_$name" "$ctl" --netns "$NS" -s "$sock" -i vp0 -q 2 "$@"
    vm_add_vhost_user_nic "$sock" 2
    vm_start "$name" --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 ${GUEST_MTU:+vm_mtu=$GUEST_MTU} \
        --cmd "ping -c 3 -W 2 $HOST_IP && iperf3 -c $HOST_IP -t 3 -P 2 && iperf3 -c $HOST_IP -t 3 -P 2 -R"
    vm_wait_marker "$name" 'VM-NET-UP' 60 || e2e_fail "$name: guest network did not come up"
    e2e_wait_for 20 ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null ||
        e2e_fail "$name: host cannot ping the guest"
    if [ -n "${GUEST_MTU:-}" ]; then
        ip netns exec "$NS" ping -c 3 -W 2 -M do -s $((GUEST_MTU - 28)) "$GUEST_IP" >/dev/null ||
            e2e_fail "$name: $GUEST_MTU-byte pings with DF set do not get through"
        e2e_log "$name: $GUEST_MTU-byte pings with DF set answered"
    fi
    vm_wait_cmd "$name" 120 || e2e_fail "$name: guest command failed (rc=${VM_RC:-none})"
    local log sums j
    log=$(vm_log "$name")
    grep -aq '3 packets transmitted, 3 packets received' "$log" || e2e_fail "$name: guest ping failed"
    mapfile -t sums < <(grep -a 'SUM.*receiver' "$log")
    [ ${#sums[@]} -ge 2 ] || e2e_fail "$name: missing iperf3 summaries"
    e2e_log "$name: iperf3 guest->host $(echo "${sums[0]}" | grep -oE '[0-9.]+ [KMG]?bits/sec'), host->guest $(echo "${sums[1]}" | grep -oE '[0-9.]+ [KMG]?bits/sec')"
    e2e_kill "$(eval echo "\$V_$name")"
    vm_stop "$name"
}

# AF_PACKET with vnet headers: the veth's TSO/checksum offloads stay on.
run rawsock -b rawsock
# AF_XDP carries no offload state: the far end must hand over whole frames with full checksums.
ip netns exec "$NS" ethtool -K vf0 tx off tso off gso off gro off >/dev/null
ip netns exec "$NS" ethtool -K vp0 tx off tso off gso off gro off >/dev/null
run afxdp_skb -b afxdp -o xdp_mode=skb
run afxdp_native -b afxdp -o xdp_mode=native
# Jumbo frames through AF_XDP multi-buffer.
ip -n "$NS" link set vp0 mtu 9000
ip -n "$NS" link set vf0 mtu 9000
GUEST_MTU=9000 run afxdp_skb_mtu9000 -b afxdp -o xdp_mode=skb -o mtu=9000
GUEST_MTU=9000 run afxdp_native_mtu9000 -b afxdp -o xdp_mode=native -o mtu=9000
e2e_pass "rawsock, afxdp skb and afxdp native (MTU 1500 and 9000): ping both ways, iperf3 both ways, 2 queue pairs"
