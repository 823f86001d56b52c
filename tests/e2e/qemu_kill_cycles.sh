#!/bin/bash
# QEMU SIGKILLed at every stage of a vhost-user session, 100 times against one vhostd (tap, 2 queue pairs;
# per 100: 40 early, 30 connect, 15 rings, 15 traffic), then 12 more with vhostd as the client of a QEMU server:
#   early    a random 0-0.4 s after QEMU starts: before, during or just after the vhost-user handshake
#   connect  as soon as vhostd counts the connection (feature negotiation, memory table under way)
#   rings    as soon as the first vring is started (the guest driver is still setting up the others)
#   traffic  with both queue pairs' workers moving an iperf3 --bidir stream in the guest
# vhostd runs under its seccomp allow-list (and as nobody when it is the server), as in production: every
# clean-up path must stay within it.
# After each kill vhostd must be back to its idle fds, threads and guest memory mappings (/proc), show no
# front-end, and take the next VM; traffic cycles prove the next connection carries frames.
# VHOSTD_KILL_CYCLES and VHOSTD_KILL_CLIENT_CYCLES override the counts. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd jq iperf3

# Half as many under ASan (about twice as slow): the normal build's run has the full count, and CI's hour is short.
[[ $VHOSTD_BIN == */build-asan/* ]] && CYCLES=${VHOSTD_KILL_CYCLES:-50}
CYCLES=${CYCLES:-${VHOSTD_KILL_CYCLES:-100}}
CLIENT_CYCLES=${VHOSTD_KILL_CLIENT_CYCLES:-12}
HOST_IP=10.79.1.1
GUEST_IP=10.79.1.2
netns_create NS

json() { vhostctl_json "$CTL"; }
connected() { [ "$(json | jq -r '.ports[0].connected')" = true ]; }
connections() { json | jq -r '.ports[0].connections'; }
any_vring_started() { json | jq -e '[.ports[0].vrings[]? | select(.started)] | length > 0' >/dev/null; }
# both_pairs_moving N: every vring of both queue pairs has carried at least N frames
both_pairs_moving() { json | jq -e --argjson n "$1" '[.ports[0].vrings[] | select(.frames >= $n)] | length == 4' >/dev/null; }
idle_again() { [ "$(proc_snapshot "$VD")" = "$idle" ]; }

# start_vhostd NAME ARGS...: vhostd on tap vtap0 (2 queue pairs) with seccomp; sets VD, CTL, idle.
start_vhostd() {
    local name=$1
    shift
    CTL=$E2E_TMP/$name.ctl
    vhostd_start "$name" "$CTL" --netns "$NS" -b tap -i vtap0 -q 2 --seccomp "$@"
    VD=${!name}
    e2e_wait_for 10 ip -n "$NS" link show vtap0 >/dev/null 2>&1 || e2e_fail "vhostd did not create vtap0"
    ip -n "$NS" addr replace "$HOST_IP/24" dev vtap0
    ip -n "$NS" link set vtap0 up
    idle=$(proc_snapshot "$VD")
    e2e_log "vhostd $name idle: fds threads memfd-maps = $idle"
}

declare -A killed=([early]=0 [connect]=0 [rings]=0 [traffic]=0) msecs=([early]=0 [connect]=0 [rings]=0 [traffic]=0)
N=0

# kill_cycle PHASE SOCK [CHARDEV_OPTS]: one VM on SOCK, SIGKILLed at PHASE; vhostd must come back to idle.
kill_cycle() {
    local phase=$1 sock=$2 copts=${3:-} name cmd="sleep 600" ips='' port during t0
    N=$((N + 1))
    name=c$N t0=$(date +%s%N)
    if [ "$phase" = traffic ]; then
        port=$((5300 + N))
        e2e_spawn ips --log "$E2E_TMP/iperf3-s.log" ip netns exec "$NS" iperf3 -s -1 -p "$port"
        netns_wait_listen "$NS" "$port" 10 || e2e_fail "cycle $N: iperf3 server did not listen"
        # 8 streams each way: 16 flows per direction, so the hashes reach both queue pairs
        cmd="iperf3 -c $HOST_IP -p $port -t 600 -P 8 --bidir >/dev/null"
    fi
    vm_add_vhost_user_nic "$sock" 2 "" "$copts"
    vm_start "$name" vm_ip="$GUEST_IP/24" vm_queues=2 --cmd "$cmd"
    case $phase in
    early) sleep "0.$((RANDOM % 5))" ;;
    connect) e2e_wait_for 30 connected || e2e_fail "cycle $N: QEMU and vhostd did not connect" ;;
    rings) e2e_wait_for 60 any_vring_started || e2e_fail "cycle $N: no vring started" ;;
    traffic)
        vm_wait_marker "$name" 'VM-NET-UP' 60 || e2e_fail "cycle $N: guest network did not come up"
        e2e_wait_for 60 both_pairs_moving 200 ||
            e2e_fail "cycle $N: traffic not flowing on both queue pairs: $(json | jq -c '[.ports[0].vrings[].frames]')"
        ;;
    esac
    during=$(proc_snapshot "$VD")
    kill -9 "${VM_PID[$name]}"
    wait "${VM_PID[$name]}" 2>/dev/null || true
    VM_PID[$name]=
    [ -z "$ips" ] || e2e_kill "$ips" 2
    e2e_wait_for 10 idle_again ||
        e2e_fail "cycle $N ($phase): vhostd fds/threads/memfd-maps $(proc_snapshot "$VD") after QEMU SIGKILL, idle $idle"
    e2e_wait_for 5 eval '! connected' || e2e_fail "cycle $N ($phase): vhostd still shows a front-end"
    kill -0 "$VD" 2>/dev/null || e2e_fail "cycle $N ($phase): vhostd died"
    killed[$phase]=$((killed[$phase] + 1)) msecs[$phase]=$((msecs[$phase] + ($(date +%s%N) - t0) / 1000000))
    e2e_vlog "cycle $N $phase: during $during, after $(proc_snapshot "$VD"), connections $(connections)"
    rm -rf "${VM_DIR[$name]}"
    unset "VM_LOG[$name]" "VM_DIR[$name]" # a failure dumps the serial logs of live VMs only
}

summary() {
    local p per=
    for p in early connect rings traffic; do per+=" $p ${killed[$p]} (${msecs[$p]} ms),"; done
    e2e_log "$1:${per%,}; vhostd took $(connections) connections, idle $(proc_snapshot "$VD")"
    for p in early connect rings traffic; do killed[$p]=0 msecs[$p]=0; done
}

# ---- vhostd the server, QEMU the client ----
start_vhostd server -s "$E2E_TMP/vm.sock" -u nobody
# Per 20 cycles: 8 early, 6 connect, 3 rings, 3 traffic (the last two need a ~5 s TCG boot each).
phases=(early connect early rings connect early traffic connect early rings
        early connect traffic early connect rings early connect traffic early)
start=$(date +%s)
for ((i = 0; i < CYCLES; i++)); do kill_cycle "${phases[i % ${#phases[@]}]}" "$E2E_TMP/vm.sock"; done
early=${killed[early]}
summary "$CYCLES QEMU kills in $(($(date +%s) - start)) s, vhostd the server"
# Every kill from 'connect' on happened on a counted connection; early kills may precede connect().
(($(connections) >= CYCLES - early)) || e2e_fail "vhostd counted $(connections) connections for $CYCLES VMs"
e2e_kill "$VD"

# ---- vhostd the client (--client), QEMU the server: vhostd connects again to each new QEMU ----
# As root: connecting needs write access to the socket QEMU creates (root's, in our private directory).
start_vhostd client -s "$E2E_TMP/qemu.sock" --client
phases=(connect rings traffic early)
start=$(date +%s)
for ((i = 0; i < CLIENT_CYCLES; i++)); do kill_cycle "${phases[i % ${#phases[@]}]}" "$E2E_TMP/qemu.sock" server=on; done
summary "$CLIENT_CYCLES QEMU kills in $(($(date +%s) - start)) s, vhostd the client"
e2e_pass "$CYCLES + $CLIENT_CYCLES QEMU SIGKILLs: vhostd back to idle fds/threads/mappings every time and took the next VM"
