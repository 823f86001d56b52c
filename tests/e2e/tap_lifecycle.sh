#!/bin/bash
# vhostd restarted under a running QEMU, both ways round, and a QEMU killed with SIGKILL:
#  1. vhostd as server, QEMU chardev reconnect=1: kill -9 vhostd, start it again, traffic resumes.
#  2. vhostd as client (--client), QEMU server=on: restart vhostd, traffic resumes.
#  3. QEMU SIGKILLed: vhostd frees fds, threads and guest mappings, then serves the next VM.
# Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd jq

HOST_IP=10.79.0.1
GUEST_IP=10.79.0.2
netns_create NS

# host_ping: the host reaches the guest through vhostd (both directions of the data path).
host_ping() { e2e_wait_for "${1:-30}" ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null; }
tap_ip() { e2e_wait_for 10 ip -n "$NS" link show vtap0 >/dev/null 2>&1 && netns_set_ip "$NS" vtap0 "$HOST_IP/24"; }

# ---- 1. server mode, vhostd crashes and comes back ----
SOCK=$E2E_TMP/s1.sock CTL=$E2E_TMP/s1.ctl
vhostd_start V1 "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0
tap_ip
vm_add_vhost_user_nic "$SOCK" 1 "" reconnect=1
vm_start g1 vm_ip="$GUEST_IP/24" --cmd "sleep 600"
vm_wait_marker g1 'VM-NET-UP' 60 || e2e_fail "guest 1 network did not come up"
host_ping 30 || e2e_fail "no traffic before the restart"
kill -9 "$V1"; wait "$V1" 2>/dev/null || true
rm -f "$CTL"
e2e_log "vhostd killed; starting it again"
vhostd_start V1b "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0
tap_ip
host_ping 40 || e2e_fail "traffic did not resume after vhostd came back (server mode, QEMU reconnect=1)"
e2e_log "case 1: traffic resumed after a vhostd crash (server mode)"
e2e_kill "$V1b"
vm_stop g1

# ---- 2. client mode: QEMU is the server ----
SOCK=$E2E_TMP/s2.sock CTL=$E2E_TMP/s2.ctl
vm_add_vhost_user_nic "$SOCK" 1 "" server=on
vm_start g2 vm_ip="$GUEST_IP/24" --cmd "sleep 600"
e2e_wait_for 20 test -S "$SOCK" || e2e_fail "QEMU did not create its server socket"
vhostd_start V2 "$CTL" --netns "$NS" -s "$SOCK" --client -b tap -i vtap0
tap_ip
vm_wait_marker g2 'VM-NET-UP' 60 || e2e_fail "guest 2 network did not come up"
host_ping 30 || e2e_fail "no traffic in client mode"
e2e_kill "$V2"
rm -f "$CTL"
vhostd_start V2b "$CTL" --netns "$NS" -s "$SOCK" --client -b tap -i vtap0
tap_ip
host_ping 40 || e2e_fail "traffic did not resume after vhostd restarted (client mode, QEMU server=on)"
e2e_log "case 2: traffic resumed after a vhostd restart (client mode)"
e2e_kill "$V2b"
vm_stop g2

# ---- 3. QEMU killed: vhostd cleans up and serves the next VM ----
SOCK=$E2E_TMP/s3.sock CTL=$E2E_TMP/s3.ctl
vhostd_start V3 "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2
tap_ip
before=$(proc_snapshot "$V3")
for round in 1 2; do
    # Each guest has its own MAC: the host must not keep sending to the last one's (a stale neighbour
    # entry took about 50 s to be found out here).
    ip -n "$NS" neigh flush dev vtap0
    vm_add_vhost_user_nic "$SOCK" 2
    vm_start "k$round" --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 --cmd "sleep 600"
    vm_wait_marker "k$round" 'VM-NET-UP' 60 || e2e_fail "guest k$round network did not come up"
    host_ping 30 || e2e_fail "no traffic with guest k$round"
    during=$(proc_snapshot "$V3")
    kill -9 "${VM_PID[k$round]}"
    wait "${VM_PID[k$round]}" 2>/dev/null || true
    e2e_wait_for 10 eval '[ "$(proc_snapshot "$V3")" = "$before" ]' ||
        e2e_fail "after QEMU SIGKILL: fds/threads/memfd maps $(proc_snapshot "$V3"), before the VM $before"
    e2e_log "round $round: vhostd fds/threads/maps before $before, with VM $during, after kill -9 $(proc_snapshot "$V3")"
    [ "$(vhostctl_json "$CTL" | jq -r '.ports[0].connected')" = false ] || e2e_fail "vhostd still shows a front-end"
done
kill -0 "$V3" || e2e_fail "vhostd died"
e2e_pass "restart in server and client mode, QEMU SIGKILL cleanup"
