#!/bin/bash
# QEMU SIGKILLed at every stage of a vhost-user session, 100 times against one vhostd (tap, 2 queue pairs;
# per 100: 40 early, 30 connect, 15 rings, 15 traffic):
#   early    a random 0-0.4 s after QEMU starts: before, during or just after the vhost-user handshake
#   connect  as soon as vhostd counts the connection (feature negotiation, memory table under way)
#   rings    as soon as the first vring is started (the guest driver is still setting up the others)
#   traffic  with both queue pairs' workers moving an iperf3 --bidir stream in the guest
# After each kill vhostd must be back to its idle fds, threads and guest memory mappings (/proc), show no
# front-end, and take the next VM; traffic cycles prove the next connection carries frames.
# VHOSTD_KILL_CYCLES overrides the count. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd jq iperf3

CYCLES=${VHOSTD_KILL_CYCLES:-100}
HOST_IP=10.79.1.1
GUEST_IP=10.79.1.2
netns_create NS
SOCK=$E2E_TMP/vm.sock CTL=$E2E_TMP/vm.ctl
vhostd_start VD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2
e2e_wait_for 10 ip -n "$NS" link show vtap0 >/dev/null 2>&1 || e2e_fail "vhostd did not create vtap0"
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
idle=$(proc_snapshot "$VD")
e2e_log "vhostd idle: fds threads memfd-maps = $idle"

json() { vhostctl_json "$CTL"; }
connected() { [ "$(json | jq -r '.ports[0].connected')" = true ]; }
connections() { json | jq -r '.ports[0].connections'; }
any_vring_started() { json | jq -e '[.ports[0].vrings[]? | select(.started)] | length > 0' >/dev/null; }
# both_pairs_moving N: every vring of both queue pairs has carried at least N frames
both_pairs_moving() { json | jq -e --argjson n "$1" '[.ports[0].vrings[] | select(.frames >= $n)] | length == 4' >/dev/null; }
idle_again() { [ "$(proc_snapshot "$VD")" = "$idle" ]; }

declare -A killed=([early]=0 [connect]=0 [rings]=0 [traffic]=0) secs=([early]=0 [connect]=0 [rings]=0 [traffic]=0)
# Per 20 cycles: 8 early, 6 connect, 3 rings, 3 traffic (the last two need a ~5 s TCG boot each).
phases=(early connect early rings connect early traffic connect early rings
        early connect traffic early connect rings early connect traffic early)
start=$(date +%s)
for ((i = 1; i <= CYCLES; i++)); do
    phase=${phases[(i - 1) % ${#phases[@]}]}
    name=c$i cmd="sleep 600" ips= t0=$(date +%s%N)
    if [ "$phase" = traffic ]; then
        port=$((5300 + i))
        e2e_spawn ips --log "$E2E_TMP/iperf3-s.log" ip netns exec "$NS" iperf3 -s -1 -p "$port"
        netns_wait_listen "$NS" "$port" 10 || e2e_fail "cycle $i: iperf3 server did not listen"
        # 8 streams each way: 16 flows per direction, so the hashes reach both queue pairs
        cmd="iperf3 -c $HOST_IP -p $port -t 600 -P 8 --bidir >/dev/null"
    fi
    conns_before=$(connections)
    vm_add_vhost_user_nic "$SOCK" 2
    vm_start "$name" vm_ip="$GUEST_IP/24" vm_queues=2 --cmd "$cmd"
    case $phase in
    early) sleep "0.$((RANDOM % 5))" ;;
    connect) e2e_wait_for 30 connected || e2e_fail "cycle $i: QEMU did not connect" ;;
    rings) e2e_wait_for 60 any_vring_started || e2e_fail "cycle $i: no vring started" ;;
    traffic)
        vm_wait_marker "$name" 'VM-NET-UP' 60 || e2e_fail "cycle $i: guest network did not come up"
        e2e_wait_for 60 both_pairs_moving 200 ||
            e2e_fail "cycle $i: traffic not flowing on both queue pairs: $(json | jq -c '[.ports[0].vrings[].frames]')"
        ;;
    esac
    during=$(proc_snapshot "$VD")
    kill -9 "${VM_PID[$name]}"
    wait "${VM_PID[$name]}" 2>/dev/null || true
    VM_PID[$name]=
    [ -z "$ips" ] || e2e_kill "$ips" 2
    e2e_wait_for 10 idle_again ||
        e2e_fail "cycle $i ($phase): vhostd fds/threads/memfd-maps $(proc_snapshot "$VD") after QEMU SIGKILL, idle $idle"
    e2e_wait_for 5 eval '! connected' || e2e_fail "cycle $i ($phase): vhostd still shows a front-end"
    kill -0 "$VD" 2>/dev/null || e2e_fail "cycle $i ($phase): vhostd died"
    killed[$phase]=$((killed[$phase] + 1)) secs[$phase]=$((secs[$phase] + ($(date +%s%N) - t0) / 1000000))
    e2e_vlog "cycle $i $phase: during $during, after $(proc_snapshot "$VD"), connections $conns_before -> $(connections)"
    rm -rf "${VM_DIR[$name]}"
    unset "VM_LOG[$name]" "VM_DIR[$name]" # a failure dumps the serial logs of live VMs only
done
total=$(connections)
per=
for p in early connect rings traffic; do per+=" $p ${killed[$p]} (${secs[$p]} ms),"; done
e2e_log "$CYCLES QEMU kills in $(($(date +%s) - start)) s:${per%,}; vhostd took $total connections, idle $(proc_snapshot "$VD")"
# Every kill from 'connect' on happened on a counted connection; early kills may precede connect().
((total >= CYCLES - killed[early])) || e2e_fail "vhostd counted $total connections for $CYCLES VMs"
e2e_pass "$CYCLES QEMU SIGKILLs: vhostd back to idle fds/threads/mappings every time and took the next VM"
