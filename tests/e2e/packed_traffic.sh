#!/bin/bash
# Packed virtqueues with a real guest (issue #14): QEMU's virtio-net-pci with packed=on, 2 queue pairs, through
# vhostd's tap port. VIRTIO_F_RING_PACKED must be negotiated; ping both ways and iperf3 both ways (TSO) carry
# traffic on all 4 vrings with none broken; then vhostd is killed and started again under the running guest
# (QEMU reconnect=1): the restarted vhostd picks the packed rings up from the base QEMU sends (wrap counters in
# bit 15) and traffic resumes, both ways. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd iperf3 jq busybox

HOST_IP=10.81.0.1
GUEST_IP=10.81.0.2
SOCK=$E2E_TMP/vhost.sock
CTL=$E2E_TMP/vhostd.ctl
PACKED_BIT=34

netns_create NS
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

# The guest runs iperf3 both ways, then answers pings until the test is done.
vm_add_vhost_user_nic "$SOCK" 2 "" reconnect=1 packed=on
vm_start g1 --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 \
    --cmd "taskset -c 0 ping -c 3 -W 2 $HOST_IP && taskset -c 1 ping -c 3 -W 2 $HOST_IP && iperf3 -c $HOST_IP -t 4 -P 4 && iperf3 -c $HOST_IP -t 4 -P 4 -R && echo TRAFFIC-DONE && sleep 1000000"
vm_wait_boot g1 60 || e2e_fail "guest did not boot"
vm_wait_marker g1 '^TRAFFIC-DONE' 150 || e2e_fail "guest traffic did not finish: $(grep -a 'iperf3:\|packets' "$(vm_log g1)" | tail -n 3)"
grep -aq '3 packets transmitted, 3 packets received' "$(vm_log g1)" || e2e_fail "guest ping did not get 3 replies"
mapfile -t sums < <(grep -a 'SUM.*receiver' "$(vm_log g1)")
[ ${#sums[@]} -ge 2 ] || e2e_fail "missing iperf3 summaries"
e2e_log "packed rings: iperf3 guest->host $(echo "${sums[0]}" | grep -oE '[0-9.]+ [KMG]?bits/sec'), host->guest $(echo "${sums[1]}" | grep -oE '[0-9.]+ [KMG]?bits/sec')"

J=$(vhostctl_json "$CTL")
feat=$(echo "$J" | jq -r '.ports[0].features')
(((feat >> PACKED_BIT) & 1)) || e2e_fail "VIRTIO_F_RING_PACKED not negotiated (features $feat): QEMU used split rings"
for v in 0 1 2 3; do
    f=$(echo "$J" | jq -r ".ports[0].vrings[$v].frames")
    [ "$f" -gt 0 ] || e2e_fail "vring $v carried no frames: both queue pairs should"
    [ "$(echo "$J" | jq -r ".ports[0].vrings[$v].broken")" = false ] ||
        e2e_fail "vring $v broken: $(echo "$J" | jq -r ".ports[0].vrings[$v].broken_reason")"
done
e2e_log "features $feat; frames per vring: $(echo "$J" | jq -c '[.ports[0].vrings[].frames]')"

# vhostd dies under the running guest and comes back: QEMU reconnects and sends the packed rings' base.
kill -9 "$VHOSTD"
wait "$VHOSTD" 2>/dev/null || true
rm -f "$SOCK" "$CTL"
vhostd_start VHOSTD2 "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_wait_for 60 ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null ||
    e2e_fail "no traffic after vhostd restarted under the guest (packed rings not picked up?): $(vhostctl_json "$CTL" | jq -c '.ports[0].vrings')"
ip netns exec "$NS" busybox ping -c 200 -i 0.01 -W 1 "$GUEST_IP" | tail -n 2 >"$E2E_TMP/ping2.txt"
grep -q ' 0% packet loss' "$E2E_TMP/ping2.txt" || e2e_fail "pings after the restart: $(cat "$E2E_TMP/ping2.txt")"
J=$(vhostctl_json "$CTL")
(((${J:+$(echo "$J" | jq -r '.ports[0].features')} >> PACKED_BIT) & 1)) || e2e_fail "packed rings not negotiated again after the restart"
[ "$(echo "$J" | jq '[.ports[0].vrings[] | select(.broken)] | length')" = 0 ] ||
    e2e_fail "a vring broke after the restart: $(echo "$J" | jq -c '.ports[0].vrings')"
if grep -aE 'error|broken' "$E2E_TMP/vhostd-VHOSTD2.log"; then
    e2e_fail "the restarted vhostd logged errors (above)"
fi
e2e_pass "packed rings, 2 queue pairs: ping and iperf3 both ways, and 200 pings without loss after a vhostd restart under the guest"
