#!/bin/bash
# Offloads follow the guest: a virtio-net device with guest_csum/guest_tso4/guest_tso6=off must never
# be handed GSO or partial-checksum frames, so the tap builds none toward it (frames <= 1514 bytes),
# while TCP still works. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd iperf3 jq

HOST_IP=10.81.0.1
GUEST_IP=10.81.0.2
SOCK=$E2E_TMP/vhost.sock
CTL=$E2E_TMP/vhostd.ctl

netns_create NS
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

vm_add_vhost_user_nic "$SOCK" 1 "" "" guest_csum=off,guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off
vm_start g1 vm_ip="$GUEST_IP/24" --cmd "sleep 3 && iperf3 -c $HOST_IP -t 3 -R"
vm_wait_marker g1 'VM-NET-UP' 60 || e2e_fail "guest network did not come up"
feat=$(vhostctl_json "$CTL" | jq -r '.ports[0].features') # while the guest is still connected
vm_wait_cmd g1 90 || e2e_fail "guest command failed (rc=${VM_RC:-none})"
sum=$(grep -a 'receiver' "$(vm_log g1)" | tail -n1)
e2e_log "iperf3 host->guest without guest offloads: $(echo "$sum" | grep -oE '[0-9.]+ [KMG]?bits/sec')"
(( ((feat >> 1) & 1) == 0 && ((feat >> 7) & 1) == 0 )) || e2e_fail "guest offloads negotiated anyway ($feat)"
txp=$(link_stat "$NS" vtap0 tx_packets) txb=$(link_stat "$NS" vtap0 tx_bytes)
e2e_log "tap sent $txp frames toward the guest, average $((txb / txp)) bytes"
[ "$txp" -gt 1000 ] || e2e_fail "too little traffic to judge"
[ $((txb / txp)) -le 1514 ] || e2e_fail "GSO frames reached a guest that refused them"
e2e_pass "no GSO toward a guest without offloads; TCP works"
