#!/bin/bash
# Memory hotplug under traffic (issue #13): a TCG guest on vhostd's tap port gets 16 pc-dimm DIMMs
# (memory-backend-memfd, share=on, 128 MiB each) hot-plugged through QMP while the host sends TCP into it
# (iperf3, the direction in which vhostd writes guest memory). QEMU hands each DIMM to vhostd
# (ADD_MEM_REG, or a new SET_MEM_TABLE); the guest onlines them (memhp_default_state=online).
# Checks:
#   - every device_add succeeds (QEMU refuses one when the back-end has no free memory slot) and vhostctl
#     shows 16 more regions and 2 GiB more guest memory, while the vrings stay unbroken;
#   - the iperf3 run across the hotplug ends without error and no 1-second interval is empty;
#   - the guest sees the memory (MemTotal grows by 2 GiB), fills most of its RAM (a tmpfs file of 1900 MiB,
#     so that what it allocates next, receive buffers included, mostly lies in the new DIMMs), and a second
#     iperf3 run each way then passes;
#   - vhostd logs no error and the port is back to idle after the guest is gone.
# Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIMMS=16 DIMM_MIB=128 BASE_MIB=256
IPERF_S=${VHOSTD_HOTPLUG_IPERF_S:-24}

e2e_init
e2e_require_tun
e2e_require_cmd iperf3 jq busybox

QMP_BIN=$(dirname "$VHOSTD_BIN")/tests/qmp
[ -x "$QMP_BIN" ] || e2e_fail "no QMP client at $QMP_BIN (run make tests)"

HOST_IP=10.79.0.1
GUEST_IP=10.79.0.2
SOCK=$E2E_TMP/vhost.sock
CTL=$E2E_TMP/vhostd.ctl
QMP=$E2E_TMP/qmp.sock
qmp() { "$QMP_BIN" -t 20 "$QMP" "$@"; }
port() { vhostctl_json "$CTL" | jq -r ".ports[0].$1"; }

netns_create NS
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 1
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

# The guest: an iperf3 server; once the new memory is online, fills its RAM and runs iperf3 both ways.
total_kib=$(((BASE_MIB + DIMMS * DIMM_MIB) * 1024))
GUEST_CMD=$(cat <<EOF
iperf3 -s >/dev/null 2>&1 &
echo VM-IPERF-READY
i=0
while [ \$i -lt 300 ]; do
    t=\$(awk '/MemTotal/ { print \$2 }' /proc/meminfo)
    [ \$t -gt $((total_kib - 262144)) ] && break
    sleep 1; i=\$((i + 1))
done
echo VM-MEMTOTAL=\$t
mkdir -p /fill && mount -t tmpfs -o size=1900m tmpfs /fill && dd if=/dev/zero of=/fill/f bs=1M count=1900 2>/dev/null
echo VM-FILLED \$(awk '/MemFree/ { print \$2 }' /proc/meminfo) kB free
sleep 1
iperf3 -c $HOST_IP -t 4 && iperf3 -c $HOST_IP -t 4 -R && echo VM-TRAFFIC-AFTER-OK
EOF
)
vm_add_vhost_user_nic "$SOCK" 1
vm_add_args -qmp "unix:$QMP,server=on,wait=off"
vm_start g1 --mem "$BASE_MIB" --dimm-slots "$DIMMS" --maxmem $((BASE_MIB + DIMMS * DIMM_MIB)) \
    --append memhp_default_state=online --cmd "$GUEST_CMD" vm_ip="$GUEST_IP/24"
vm_wait_boot g1 90 || e2e_fail "guest did not boot"
vm_wait_marker g1 '^VM-IPERF-READY' 60 || e2e_fail "guest network did not come up"
e2e_wait_for 20 ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null || e2e_fail "host cannot ping the guest"

regions0=$(port mem_regions) bytes0=$(port mem_bytes)
e2e_log "before: $regions0 regions, $((bytes0 >> 20)) MiB of guest memory mapped"

J=$E2E_TMP/iperf.json
e2e_spawn IPC_PID --log "$E2E_TMP/iperf3-client.log" ip netns exec "$NS" \
    iperf3 -c "$GUEST_IP" -t "$IPERF_S" -i 1 -J --logfile "$J"
sleep 3
for i in $(seq "$DIMMS"); do
    r=$(qmp "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":\"memory-backend-memfd\",\"id\":\"hm$i\",\"size\":$((DIMM_MIB << 20)),\"share\":true}}" \
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\",\"id\":\"dimm$i\",\"memdev\":\"hm$i\"}}") ||
        e2e_fail "DIMM $i: QEMU refused the hotplug: $(echo "$r" | jq -rc '.error // empty' | head -c 400)"
    sleep 0.5
done
e2e_log "$DIMMS DIMMs of $DIMM_MIB MiB plugged"
e2e_wait_for 20 eval '[ "$(port mem_regions)" -ge $((regions0 + DIMMS)) ]' ||
    e2e_fail "vhostctl shows $(port mem_regions) regions after the hotplug, expected $((regions0 + DIMMS))"
regions1=$(port mem_regions) bytes1=$(port mem_bytes)
e2e_log "after: $regions1 regions, $((bytes1 >> 20)) MiB"
[ $((bytes1 - bytes0)) -eq $((DIMMS * DIMM_MIB << 20)) ] ||
    e2e_fail "guest memory grew by $(((bytes1 - bytes0) >> 20)) MiB in vhostd, expected $((DIMMS * DIMM_MIB))"
vhostctl_json "$CTL" | jq -e '[.ports[0].vrings[] | select(.broken)] | length == 0' >/dev/null ||
    e2e_fail "a vring broke during the hotplug: $(vhostctl_json "$CTL" | jq -c '.ports[0].vrings')"

# The run across the hotplug: no error, no empty second.
e2e_wait_for $((IPERF_S + 30)) eval '! _e2e_alive $IPC_PID' || e2e_fail "iperf3 did not finish"
wait "$IPC_PID" 2>/dev/null && rc=0 || rc=$?
[ "$rc" = 0 ] || e2e_fail "iperf3 across the hotplug failed (exit $rc): $(jq -r '.error // empty' "$J" 2>/dev/null | head -c 300)"
empty=$(jq '[.intervals[].sum.bytes | select(. == 0)] | length' "$J")
[ "$empty" = 0 ] || e2e_fail "iperf3 moved nothing in $empty of its 1-second intervals during the hotplug"
e2e_log "iperf3 host->guest across the hotplug: $(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$J") Mbit/s, min $(jq '[.intervals[].sum.bits_per_second] | min / 1e6 | floor' "$J") Mbit/s in a second"

vm_wait_marker g1 '^VM-MEMTOTAL=' 120 || e2e_fail "the guest printed no MemTotal"
memtotal=$(grep -ao '^VM-MEMTOTAL=[0-9]*' "$(vm_log g1)" | cut -d= -f2)
[ "$memtotal" -gt $((total_kib - 262144)) ] ||
    e2e_fail "the guest sees $((memtotal >> 10)) MiB, not the $((total_kib >> 10)) MiB it has after the hotplug"
vm_wait_marker g1 '^VM-FILLED' 120 || e2e_fail "the guest did not fill its memory"
vm_wait_cmd g1 120 || e2e_fail "guest traffic after the hotplug failed (rc=${VM_RC:-none}): $(grep -a 'iperf3:' "$(vm_log g1)" | head -n 3)"
grep -aq '^VM-TRAFFIC-AFTER-OK' "$(vm_log g1)" || e2e_fail "no traffic after the hotplug"
e2e_log "guest: MemTotal $((memtotal >> 10)) MiB, $(grep -ao '^VM-FILLED.*' "$(vm_log g1)")"

vm_wait_exit g1 30 || e2e_fail "guest did not power off"
e2e_wait_for 10 eval '[ "$(port connected)" = false ]' || e2e_fail "the port still shows a front-end after the guest left"
left=$(vhostctl_json "$CTL" | jq -r '.ports[0].mem_regions // 0')
[ "$left" = 0 ] || e2e_fail "vhostd still maps $left regions after the guest left"
if grep -aiE 'error|broken' "$E2E_TMP/vhostd-VHOSTD.log" | grep -v 'connection closed'; then
    e2e_fail "vhostd logged errors (above)"
fi
e2e_pass "$DIMMS DIMMs hot-plugged under iperf3: $regions0 -> $regions1 regions, traffic without a gap, and through the new memory after"
