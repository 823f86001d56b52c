#!/bin/bash
# port_too_big.sh - one policy, every port kind: a frame from the port larger than the guest's receive buffers is
# dropped and counted as "too big" (vhostctl drop_too_big), never truncated, and the queue goes on.
# For tap (a tap device vhostd creates), rawsock and afxdp (skb and native mode) on a veth in a private network
# namespace (see port_lib.sh): a guest without MRG_RXBUF posts 1 KiB buffers (port_vnet_check small); the far
# end sends 1500-byte and 600-byte UDP frames in turn. Every 600-byte frame must arrive whole and checked, no
# other frame arrive, and vhostd count exactly the 1500-byte ones as too big (and no other drop).
# Exit 0 pass, 1 fail, 77 skip.
set -u
. "$(dirname "$0")/port_lib.sh"

port_init too_big
# One queue each way: vhostd serves one queue pair, and in native XDP mode a veth steers a flow to rx queue
# 1 as well, where no AF_XDP socket of ours is bound.
ip -n "$NS" link del "$VP"
ip -n "$NS" link add "$VP" type veth peer name "$VF" && ip -n "$NS" link set "$VP" up && ip -n "$NS" link set "$VF" up ||
    die "cannot create a single-queue veth pair"
BUF=1024 # header included: frames of up to 1012 bytes fit
ROUNDS=3 PER=40

# too_big WHAT IFNAME VHOSTD_ARGS...: the check above, frames sent out of IFNAME in the namespace.
too_big() {
    local what=$1 ifname=$2 out cpid i small=$((ROUNDS * PER)) tb drops kd
    shift 2
    vhostd_start "${what//[^a-zA-Z0-9]/_}" "$@" || { bad "$what: vhostd did not start"; return; }
    out=$T/small.out
    "$O/tests/port_vnet_check" small "$SOCK" "$small" "$BUF" >"$out" 2>&1 &
    cpid=$!
    PIDS+=("$cpid")
    for i in $(seq 100); do grep -q '^ready' "$out" && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    grep -q '^ready' "$out" || { bad "$what: front-end not ready: $(tr '\n' ' ' <"$out")"; stop_pid "$cpid"; vhostd_stop; return; }
    ip -n "$NS" link set "$ifname" up
    for i in $(seq "$ROUNDS"); do
        nsx "$PKTSEND" -i "$ifname" -n "$PER" -r 2000 -s 1500 -f 4 >/dev/null || bad "$what: pktsend (1500 bytes) failed"
        nsx "$PKTSEND" -i "$ifname" -n "$PER" -r 2000 -s 600 -f 4 >/dev/null || bad "$what: pktsend (600 bytes) failed"
    done
    for i in $(seq 150); do grep -q '^result:' "$out" && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    sleep 0.3
    tb=$(vstat drop_too_big 0) drops=$(vstat drops 0) kd=$(port_json kernel_drops)
    stop_pid "$cpid"
    log "$what: $(grep '^received' "$out"); vhostd counts $tb too big, $drops drops, kernel drops ${kd:-none}"
    if ! grep -q '^result: pass' "$out"; then
        bad "$what: the guest did not get the $small frames that fit, whole: $(tail -n 6 "$out" | tr '\n' ' ')"
    elif [ "$tb" -ne "$small" ] || [ "$drops" -ne "$small" ]; then
        bad "$what: $tb counted too big and $drops dropped, expected $small of each"
    else
        ok "$what: $small frames that fit delivered whole, $tb too big dropped and counted"
    fi
    vhostd_stop
}

too_big "tap" "vtb$$" -b tap -i "vtb$$" -q 1
too_big "rawsock" "$VF" -b rawsock -i "$VP" -q 1
too_big "afxdp skb mode" "$VF" -b afxdp -i "$VP" -q 1 -o xdp_mode=skb
too_big "afxdp native mode" "$VF" -b afxdp -i "$VP" -q 1 -o xdp_mode=native
port_finish
