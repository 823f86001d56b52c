#!/bin/bash
# selftest_qemu_tap.sh - prove the e2e guest and lib.sh work, using QEMU's own
# tap networking (no vhostd involved).
#
# A fresh namespace holds tap vt0 (10.77.0.1/24) and an iperf3 server; QEMU
# runs in that namespace, the guest (10.77.0.2/24) pings the host 3 times and
# runs a 3 s iperf3 client. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd iperf3 ss

HOST_IP=10.77.0.1
GUEST_IP=10.77.0.2

netns_create NS
netns_add_tap "$NS" vt0 "$HOST_IP/24" || e2e_fail "cannot create tap in $NS"

e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" \
    ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

vm_add_tap_nic vt0
vm_start g1 --netns "$NS" vm_ip="$GUEST_IP/24" \
    --cmd "ping -c 3 -W 2 $HOST_IP && iperf3 -c $HOST_IP -t 3"

vm_wait_boot g1 60 || e2e_fail "guest did not boot"
e2e_log "guest userspace after ${VM_BOOT_S[g1]} s (guest uptime ${VM_BOOT_GUEST_S[g1]} s, $(vm_accel_args))"

if ! vm_wait_cmd g1 90; then
    e2e_fail "guest command failed (rc=${VM_RC:-none}), see serial log above"
fi
LOG=$(vm_log g1)
grep -aq '3 packets transmitted, 3 packets received' "$LOG" || e2e_fail "ping did not get 3 replies"
rx=$(grep -a 'receiver' "$LOG" | tail -n1) || true
[[ -n $rx ]] || e2e_fail "no iperf3 receiver summary"
e2e_log "iperf3 guest->host: $(echo "$rx" | grep -oE '[0-9.]+ [KMG]?bits/sec')"
vm_wait_exit g1 15 || e2e_fail "guest did not power off"
e2e_pass "guest boot ${VM_BOOT_S[g1]} s, ping + iperf3 over QEMU tap"
