#!/bin/bash
# selftest_vhost_user_testpmd.sh - prove lib.sh's vhost-user NIC arguments
# (memfd share=on, vectors=0, mq, reconnect) with DPDK's dpdk-testpmd as the
# vhost-user back-end instead of vhostd: testpmd (vhost-user server, 2 queues)
# forwards between the guest and a DPDK tap dt0 (10.77.0.1/24) in a fresh
# namespace. The guest (2 vCPUs, 2 queue pairs) pings and runs iperf3.
# Exit 0 pass, 1 fail, 77 skip (no dpdk-testpmd).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd dpdk-testpmd iperf3 ss

HOST_IP=10.77.0.1
GUEST_IP=10.77.0.2
SOCK=$E2E_TMP/vhost-user.sock

netns_create NS
# Non-interactive testpmd: without -i and --stats-period it waits for Enter
# and exits at once on stdin EOF. SIGTERM (e2e_kill) stops it. Its runtime
# dir is removed after it is killed (cleanup runs in reverse order).
e2e_on_exit rm -rf "/var/run/dpdk/vhe2e$$"
e2e_spawn TESTPMD --log "$E2E_TMP/testpmd.log" \
    ip netns exec "$NS" dpdk-testpmd -l 0-1 --no-huge -m 256 --no-pci \
    --file-prefix="vhe2e$$" --vdev "net_vhost0,iface=$SOCK,queues=2" \
    --vdev net_tap0,iface=dt0 -- --total-num-mbufs=16384 --disable-link-check \
    --forward-mode=io --auto-start --stats-period 3600 --rxq=2 --txq=2
e2e_wait_for 30 test -S "$SOCK" || e2e_fail "testpmd did not create $SOCK (see $E2E_TMP/testpmd.log)"
e2e_wait_for 10 eval "ip -n $NS link show dt0 >/dev/null 2>&1" || e2e_fail "no dt0"
netns_set_ip "$NS" dt0 "$HOST_IP/24"

e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" \
    ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

vm_add_vhost_user_nic "$SOCK" 2 "" reconnect=1
vm_start g1 --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 \
    --cmd "ping -c 3 -W 2 $HOST_IP && iperf3 -c $HOST_IP -t 2 -P 2"
vm_wait_boot g1 60 || e2e_fail "guest did not boot"
e2e_log "guest userspace after ${VM_BOOT_S[g1]} s (guest uptime ${VM_BOOT_GUEST_S[g1]} s)"
vm_wait_cmd g1 90 || e2e_fail "guest command failed (rc=${VM_RC:-none})"
rx=$(grep -a 'SUM.*receiver' "$(vm_log g1)" | tail -n1) || true
[[ -n $rx ]] || e2e_fail "no iperf3 receiver summary"
e2e_log "iperf3 guest->host via testpmd: $(echo "$rx" | grep -oE '[0-9.]+ [KMG]?bits/sec')"
vm_wait_exit g1 15 || e2e_fail "guest did not power off"
e2e_pass "vhost-user (testpmd) ping + iperf3"
