#!/bin/bash
# A real QEMU guest through vhostd's tap port: ping both ways, iperf3 TCP both ways with TSO in use,
# 2 queue pairs both carrying traffic. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd iperf3 jq

HOST_IP=10.78.0.1
GUEST_IP=10.78.0.2
SOCK=$E2E_TMP/vhost.sock
CTL=$E2E_TMP/vhostd.ctl

netns_create NS
# Runs as nobody under the seccomp allow-list: the tap is opened before the drop.
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2 -u nobody --seccomp
netns_set_ip "$NS" vtap0 "$HOST_IP/24"

e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

# The guest pings us, then after the host pings it, runs iperf3 both ways with 4 streams.
vm_add_vhost_user_nic "$SOCK" 2
vm_start g1 --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 \
    --cmd "taskset -c 0 ping -c 3 -W 2 $HOST_IP && taskset -c 1 ping -c 3 -W 2 $HOST_IP && sleep 4 && iperf3 -c $HOST_IP -t 4 -P 4 && iperf3 -c $HOST_IP -t 4 -P 4 -R && echo TRAFFIC-DONE && sleep 5"
vm_wait_boot g1 60 || e2e_fail "guest did not boot"
vm_wait_marker g1 'VM-NET-UP' 30 || e2e_fail "guest network did not come up"
e2e_wait_for 20 ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null || e2e_fail "host cannot ping the guest"
ip netns exec "$NS" busybox ping -c 3 -W 2 "$GUEST_IP" | tail -n 2

# vhostd's counters are the connection's: read them while the guest is still up (it powers off after its command).
vm_wait_marker g1 '^TRAFFIC-DONE' 150 || e2e_fail "guest traffic did not finish: $(vm_cmd_rc g1)"
J=$(vhostctl_json "$CTL")
vm_wait_cmd g1 30 || e2e_fail "guest command failed (rc=${VM_RC:-none})"
LOG=$(vm_log g1)
grep -aq '3 packets transmitted, 3 packets received' "$LOG" || e2e_fail "guest ping did not get 3 replies"
mapfile -t sums < <(grep -a 'SUM.*receiver' "$LOG")
[ ${#sums[@]} -ge 2 ] || e2e_fail "missing iperf3 summaries"
e2e_log "iperf3 guest->host: $(echo "${sums[0]}" | grep -oE '[0-9.]+ [KMG]?bits/sec')"
e2e_log "iperf3 host->guest: $(echo "${sums[1]}" | grep -oE '[0-9.]+ [KMG]?bits/sec')"

# TSO both ways: average frame on the tap larger than the 1500-byte MTU.
rxp=$(link_stat "$NS" vtap0 rx_packets) rxb=$(link_stat "$NS" vtap0 rx_bytes)
txp=$(link_stat "$NS" vtap0 tx_packets) txb=$(link_stat "$NS" vtap0 tx_bytes)
e2e_log "tap: guest->host $rxp frames avg $((rxb / rxp)) B; host->guest $txp frames avg $((txb / txp)) B"
[ $((rxb / rxp)) -gt 1514 ] || e2e_fail "guest->host frames are not TSO-sized"
[ $((txb / txp)) -gt 1514 ] || e2e_fail "host->guest frames are not GSO-sized"

echo "$J" | jq -c '.ports[0] | {features, vrings: [.vrings[] | {index, frames, drops, broken}]}'
feat=$(echo "$J" | jq -r '.ports[0].features')
(( (feat >> 11) & 1 )) || e2e_fail "HOST_TSO4 not negotiated ($feat)"
(( (feat >> 7) & 1 )) || e2e_fail "GUEST_TSO4 not negotiated ($feat)"
for v in 0 1 2 3; do
    f=$(echo "$J" | jq -r ".ports[0].vrings[$v].frames")
    [ "$f" -gt 0 ] || e2e_fail "vring $v carried no frames: both queue pairs should"
    [ "$(echo "$J" | jq -r ".ports[0].vrings[$v].broken")" = false ] || e2e_fail "vring $v broken"
done
vm_wait_exit g1 15 || e2e_fail "guest did not power off"
e2e_pass "ping both ways, iperf3 both ways with TSO, traffic on 2 queue pairs"
