#!/bin/bash
# port_faults.sh - port faults on rawsock and afxdp ports (a veth in a private network namespace, see port_lib.sh)
# with dpdk-testpmd (virtio-user) as the guest, for each of: rawsock with one queue pair as user nobody under
# --seccomp (its socket is bound again: no privilege needed), rawsock with two (the fanout group's sockets are
# made anew), afxdp in skb and in native mode with two:
#   - the link set down and up while the guest sends: logged, counted, traffic resumes;
#   - the veth pair deleted while the guest sends (for AF_XDP the kernel unbinds the socket: ENXIO on the next
#     kick, nothing on poll) and created again under the same names: vhostd notices at once (rtnetlink),
#     holds the guest's frames, re-attaches every queue pair to the new interface (afxdp: a new socket on the
#     UMEM registered again, the XDP program loaded again) and reports the port back;
#   - then every frame counts again in both directions, with no broken vring, and vhostd holds as many fds
#     and threads as before the faults;
#   - the pair deleted and created again while no front-end is connected: the next guest's traffic flows.
# And where re-attaching needs a privilege vhostd dropped (rawsock, two queue pairs, as nobody): the port stays
# down with that reason logged, and vhostd goes on.
# Exit 0 pass, 1 fail, 77 skip.
set -u
. "$(dirname "$0")/port_lib.sh"

port_init faults

# Under ThreadSanitizer, pipes are left out: its symbolizer (started for a suppressed report) talks over two.
fd_list() {
    ls -l "/proc/$VPID/fd" | awk 'NR > 1 { print $NF }' | { if [ -n "${VHOSTD_TSAN:-}" ]; then grep -v '^pipe:'; else cat; fi; } | sort
}
fd_count() { fd_list | wc -l; }
thread_count() { ls "/proc/$VPID/task" | wc -l; }

# wait_port_down true|false SECONDS
wait_port_down() {
    local i
    for i in $(seq $(($2 * 10))); do
        [ "$(port_json port_down)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# sending WHAT CMD...: testpmd txonly runs (both queue pairs) while CMD makes the fault.
sending() {
    local what=$1
    shift
    testpmd_start txonly || { bad "$what: testpmd"; return 1; }
    tp_cmd start
    sleep 0.5
    "$@"
    sleep 0.5
    testpmd_stop_fwd || bad "$what: no statistics from testpmd"
    testpmd_quit
}

link_down_up() {
    ip -n "$NS" link set "$VP" down
    wait_port_down true 5 || bad "$WHAT: link down not noticed"
    sleep 0.5
    ip -n "$NS" link set "$VP" up
    wait_port_down false 5 || bad "$WHAT: not back after link up"
}

delete_recreate() {
    ip -n "$NS" link del "$VF" # takes $VP with it
    wait_port_down true 5 || bad "$WHAT: the deleted interface was not noticed"
    sleep 1
    veth_create || die "cannot create the veth pair again"
    wait_port_down false 10 || bad "$WHAT: not back after the interface was created again: $(grep -E 'port (fault|still)' "$VLOG" | tail -n1)"
}

# fault_cycle WHAT QUEUE_PAIRS BOTH_QUEUES_RECEIVE(1|0) VHOSTD_ARGS...
fault_cycle() {
    WHAT=$1
    local nq=$2 both=$3 fds0 thr0 faults recov i
    shift 3
    TP_QUEUES=$nq
    vhostd_start "${WHAT//[^a-zA-Z0-9]/_}" -i "$VP" -q "$nq" "$@" || { bad "$WHAT: vhostd did not start"; return; }
    fds0=$(fd_count) thr0=$(thread_count)
    fd_list >"$T/fds.before"

    sending "$WHAT: link down/up" link_down_up
    sending "$WHAT: pair deleted" delete_recreate
    grep -E 'port (fault|is back|still)' "$VLOG" | sed 's/^/    | /'
    guest_to_port "$WHAT: guest->port after the faults" 1
    port_to_guest "$WHAT: port->guest after the faults" 20000 20000 "$both"

    ip -n "$NS" link del "$VF"
    sleep 0.5
    veth_create || die "cannot create the veth pair again"
    port_to_guest "$WHAT: port->guest, pair re-created with no front-end" 20000 20000 "$both"
    guest_to_port "$WHAT: guest->port, pair re-created with no front-end" 1

    faults=$(port_json port_faults) recov=$(port_json port_recoveries)
    if [ "$faults" -lt $((2 * nq)) ] || [ "$recov" != "$faults" ]; then
        bad "$WHAT: $faults port faults and $recov recoveries counted, expected at least $((2 * nq)), all recovered"
    else
        ok "$WHAT: $faults port faults counted, $recov recovered"
    fi
    [ "$(grep -c 'port fault' "$VLOG")" -ge 2 ] && [ "$(grep -c 'port is back' "$VLOG")" -ge 2 ] ||
        bad "$WHAT: faults and recoveries not logged"
    # The last front-end's fds go when vhostd has seen it leave; ThreadSanitizer starts a thread of its own.
    for i in $(seq 50); do
        [ "$(port_json connected)" = false ] && [ "$(fd_count)" = "$fds0" ] && break
        sleep 0.1
    done
    [ -n "${VHOSTD_TSAN:-}" ] && [ "$(thread_count)" = $((thr0 + 1)) ] && thr0=$((thr0 + 1))
    if [ "$(fd_count)" != "$fds0" ] || [ "$(thread_count)" != "$thr0" ]; then
        bad "$WHAT: $(fd_count) fds and $(thread_count) threads after the faults, $fds0 and $thr0 before"
        fd_list | diff "$T/fds.before" - | sed 's/^/    /'
    fi
    vhostd_stop
}

# ONLY=PATTERN: run the cases whose name matches (when debugging).
case_wanted() { [[ -z ${ONLY:-} || $1 == *$ONLY* ]]; }
# Generic XDP on a veth sees every frame on queue 0: only native mode spreads port->guest over both pairs.
case_wanted "rawsock, 1" && fault_cycle "rawsock, 1 queue pair, nobody, seccomp" 1 0 -b rawsock -u nobody --seccomp
case_wanted "rawsock, 2" && fault_cycle "rawsock, 2 queue pairs, seccomp" 2 1 -b rawsock --seccomp
case_wanted "afxdp skb" && fault_cycle "afxdp skb" 2 0 -b afxdp -o xdp_mode=skb
case_wanted "afxdp native" && fault_cycle "afxdp native" 2 1 -b afxdp -o xdp_mode=native

# ---- re-attaching needs CAP_NET_RAW, which nobody lacks: the port stays down, saying why ----
WHAT="rawsock, 2 queue pairs, nobody"
TP_QUEUES=2
if ! case_wanted "$WHAT"; then
    :
elif vhostd_start nobody2 -b rawsock -i "$VP" -q 2 -u nobody; then
    testpmd_start txonly || bad "$WHAT: testpmd"
    tp_cmd start
    ip -n "$NS" link del "$VF"
    wait_port_down true 5 || bad "$WHAT: the deleted interface was not noticed"
    veth_create || die "cannot create the veth pair again"
    for i in $(seq 50); do grep -q 'port still down: Operation not permitted' "$VLOG" && break; sleep 0.1; done
    if grep -q 'port still down: Operation not permitted' "$VLOG" && [ "$(port_json port_down)" = true ] &&
        kill -0 "$VPID"; then
        ok "$WHAT: $(grep -m1 'port still down: Operation not permitted' "$VLOG" | sed 's/^<[0-9]>//')"
    else
        bad "$WHAT: expected the port down for want of permission"
    fi
    testpmd_stop_fwd
    testpmd_quit
    vhostd_stop
else
    bad "$WHAT: vhostd did not start"
fi

port_finish
