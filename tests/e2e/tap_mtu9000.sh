#!/bin/bash
# Jumbo frames: tap MTU 9000 set by vhostd, guest MTU 9000, 8000-byte pings both ways travel as single
# frames (no IP fragmentation), and TCP works. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd iperf3

HOST_IP=10.80.0.1
GUEST_IP=10.80.0.2
SOCK=$E2E_TMP/vhost.sock
CTL=$E2E_TMP/vhostd.ctl

netns_create NS
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -o mtu=9000
[ "$(ip -n "$NS" -o link show vtap0 | grep -o 'mtu [0-9]*')" = "mtu 9000" ] || e2e_fail "vhostd did not set the tap MTU"
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

vm_add_vhost_user_nic "$SOCK" 1
vm_start g1 vm_ip="$GUEST_IP/24" vm_mtu=9000 \
    --cmd "ping -c 3 -s 8000 -W 2 $HOST_IP && sleep 8 && iperf3 -c $HOST_IP -t 2"
vm_wait_marker g1 'VM-NET-UP' 60 || e2e_fail "guest network did not come up"
vm_wait_marker g1 '3 packets transmitted' 30 || e2e_fail "guest ping did not finish"
e2e_wait_for 20 ip netns exec "$NS" busybox ping -c 1 -W 1 -s 8000 "$GUEST_IP" >/dev/null || e2e_fail "host cannot ping the guest with 8000 bytes"
# The guest's replies cross vhostd guest->host: 3 replies must be 3 frames of ~8 KB, not fragments.
rxp0=$(link_stat "$NS" vtap0 rx_packets) rxb0=$(link_stat "$NS" vtap0 rx_bytes)
ip netns exec "$NS" busybox ping -c 3 -W 2 -s 8000 "$GUEST_IP" | tail -n 2
rxp=$(($(link_stat "$NS" vtap0 rx_packets) - rxp0)) rxb=$(($(link_stat "$NS" vtap0 rx_bytes) - rxb0))
e2e_log "during the host's 3 pings the tap received $rxp frames, $rxb bytes"
# Fragmented, 3 replies would be 18 frames; allow a few small ARP/ND frames besides the 3.
[ "$rxp" -ge 3 ] && [ "$rxp" -le 8 ] && [ "$rxb" -gt 24000 ] || e2e_fail "8000-byte replies did not arrive as single frames"
vm_wait_cmd g1 90 || e2e_fail "guest command failed (rc=${VM_RC:-none})"
grep -aq '3 packets transmitted, 3 packets received' "$(vm_log g1)" || e2e_fail "guest 8000-byte ping failed"
e2e_pass "MTU 9000: 8000-byte pings both ways unfragmented, iperf3 ok"
