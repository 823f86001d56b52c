#!/bin/bash
# Port faults under a running guest: the tap set down by the operator (traffic resumes when it is set up
# again), then deleted (vhostd creates it again, as at start-up, and brings it up; the operator re-adds the
# address). vhostd logs each fault once and keeps the guest's frames waiting meanwhile.
# Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd jq

HOST_IP=10.82.0.1
GUEST_IP=10.82.0.2
SOCK=$E2E_TMP/vhost.sock
CTL=$E2E_TMP/vhostd.ctl
LOG=$E2E_TMP/vhostd-VHOSTD.log

netns_create NS
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
vm_add_vhost_user_nic "$SOCK" 1
# The guest keeps sending, so its tx queue meets the fault.
vm_start g1 vm_ip="$GUEST_IP/24" --cmd "ping -i 0.2 -W 1 $HOST_IP >/dev/null 2>&1 & sleep 600"
vm_wait_marker g1 'VM-NET-UP' 60 || e2e_fail "guest network did not come up"
ping_ok() { e2e_wait_for "$1" ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null; }
ping_ok 30 || e2e_fail "no traffic at start"

ip -n "$NS" link set vtap0 down
sleep 2
ip -n "$NS" link set vtap0 up
ping_ok 20 || e2e_fail "traffic did not resume after the tap came back up"
e2e_log "tap down/up: traffic resumed"

ip -n "$NS" link del vtap0
e2e_wait_for 10 ip -n "$NS" link show vtap0 up >/dev/null 2>&1 || e2e_fail "vhostd did not bring the deleted tap back"
ip -n "$NS" addr add "$HOST_IP/24" dev vtap0
ping_ok 20 || e2e_fail "traffic did not resume after the tap was deleted"
e2e_log "tap deleted: vhostd re-created it, traffic resumed"

faults=$(grep -c 'port fault' "$LOG" || true)
backs=$(grep -c 'port is back' "$LOG" || true)
grep -E 'port fault|port is back' "$LOG" | sed 's/^/    /'
[ "$faults" -ge 2 ] && [ "$faults" -le 3 ] || e2e_fail "expected each fault logged once, got $faults lines"
[ "$backs" -ge 2 ] || e2e_fail "recovery not logged"
J=$(vhostctl_json "$CTL")
[ "$(echo "$J" | jq '[.ports[0].vrings[] | select(.broken)] | length')" = 0 ] || e2e_fail "a vring broke"
kill -0 "$VHOSTD" || e2e_fail "vhostd died"
e2e_pass "tap down/up and delete/re-create: logged once each, traffic resumed"
