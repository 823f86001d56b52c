#!/bin/bash
# TCP through a real QEMU guest: vhostd's tap port vs QEMU's own tap back-end (-netdev tap,vhost=off),
# same guest image, same run, alternating, RUNS times each. Prints median [min..max] Gbit/s per
# direction and the ratio vhostd/QEMU; appends CSV rows to bench/results/iperf_tap.csv.
# Usage: bench/iperf_tap.sh [RUNS=3] [SECONDS=5]
set -eEuo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
. tests/e2e/lib.sh
. bench/stats.sh
trap 'E2E_LAST_ERR="line $LINENO: $BASH_COMMAND (exit $?)"' ERR
e2e_init
e2e_require_tun
e2e_require_cmd iperf3

HOST_IP=10.91.0.1
GUEST_IP=10.91.0.2
mkdir -p bench/results
CSV=bench/results/iperf_tap.csv
[ -f "$CSV" ] || echo "date,peer,direction,run,gbits" >"$CSV"
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)

netns_create NS bench
# The guest prints the receiver-side rate of each direction from iperf3's JSON. Each iperf3 is bounded
# (busybox timeout): a client stuck on a lost control connection ends the run instead of the whole bench.
IPERF_T=$((SECS + 20))
GUEST_CMD="sleep 2; timeout $IPERF_T iperf3 -c $HOST_IP -t $SECS -J > /tmp/tx.json && \
timeout $IPERF_T iperf3 -c $HOST_IP -t $SECS -R -J > /tmp/rx.json && \
echo TX=\$(grep -A8 '\"sum_received\"' /tmp/tx.json | grep -m1 bits_per_second | tr -dc 0-9.) && \
echo RX=\$(grep -A8 '\"sum_received\"' /tmp/rx.json | grep -m1 bits_per_second | tr -dc 0-9.)"

# run_guest NAME [NETNS]: sets TX and RX (Gbit/s), or returns 1 after showing the guest's log when the guest
# failed. Not in a subshell: vm_start keeps state.
run_guest() {
    local name=$1 ns=${2:-} log tx rx
    if [ -n "$ns" ]; then vm_start "$name" --netns "$ns" vm_ip="$GUEST_IP/24" --cmd "$GUEST_CMD"
    else vm_start "$name" vm_ip="$GUEST_IP/24" --cmd "$GUEST_CMD"; fi
    if ! vm_wait_cmd "$name" 120; then
        e2e_log "guest $name failed (rc=${VM_RC:-none}); its log:"
        vm_dump_log "$name" 40
        vm_stop "$name"
        return 1
    fi
    log=$(vm_log "$name")
    tx=$(grep -aoE '^TX=[0-9.]+' "$log" | cut -d= -f2)
    rx=$(grep -aoE '^RX=[0-9.]+' "$log" | cut -d= -f2)
    vm_wait_exit "$name" 15 || true
    vm_stop "$name"
    TX=$(ratio "$tx" 1000000000) RX=$(ratio "$rx" 1000000000)
}

declare -A RES=([vhostd,tx]="" [vhostd,rx]="" [qemu,tx]="" [qemu,rx]="")
# iperf_server: a fresh iperf3 server (also after a failed guest run: a server left waiting on a lost client
# stays busy).
IPERF_PID=
iperf_server() {
    [ -z "$IPERF_PID" ] || e2e_kill "$IPERF_PID"
    e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3.log" ip netns exec "$NS" iperf3 -s
    netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"
}
iperf_server
for i in $(seq 1 "$RUNS"); do
    CTL=$E2E_TMP/b$i.ctl SOCK=$E2E_TMP/b$i.sock
    vhostd_start VPID "$CTL" --netns "$NS" -s "$SOCK" -b tap -i btap0
    netns_set_ip "$NS" btap0 "$HOST_IP/24"
    vm_add_vhost_user_nic "$SOCK" 1
    if ! run_guest "v$i"; then # once more on the same vhostd: QEMU reconnects to it
        iperf_server
        vm_add_vhost_user_nic "$SOCK" 1
        run_guest "v$i-again" || e2e_fail "guest v$i failed twice"
    fi
    tx=$TX rx=$RX
    e2e_kill "$VPID"
    RES[vhostd,tx]+="$tx " RES[vhostd,rx]+="$rx "
    printf '%s,vhostd,guest->host,%d,%s\n%s,vhostd,host->guest,%d,%s\n' "$STAMP" "$i" "$tx" "$STAMP" "$i" "$rx" >>"$CSV"
    e2e_log "run $i vhostd tap:   guest->host $tx  host->guest $rx Gbit/s"

    ip -n "$NS" tuntap add dev qtap0 mode tap vnet_hdr
    netns_set_ip "$NS" qtap0 "$HOST_IP/24"
    vm_add_tap_nic qtap0 1
    if ! run_guest "q$i" "$NS"; then
        iperf_server
        vm_add_tap_nic qtap0 1
        run_guest "q$i-again" "$NS" || e2e_fail "guest q$i failed twice"
    fi
    tx=$TX rx=$RX
    ip -n "$NS" link del qtap0
    RES[qemu,tx]+="$tx " RES[qemu,rx]+="$rx "
    printf '%s,qemu-tap,guest->host,%d,%s\n%s,qemu-tap,host->guest,%d,%s\n' "$STAMP" "$i" "$tx" "$STAMP" "$i" "$rx" >>"$CSV"
    e2e_log "run $i QEMU tap:     guest->host $tx  host->guest $rx Gbit/s"
done

echo
echo "iperf3 TCP through a QEMU guest (TCG, 1 vCPU, 1 queue pair), $RUNS runs x ${SECS}s, Gbit/s median [min..max]"
printf '%-12s %-22s %-22s %s\n' direction vhostd-tap qemu-tap,vhost=off ratio
for d in tx rx; do
    read -r vm vmin vmax < <(stats "${RES[vhostd,$d]}")
    read -r qm qmin qmax < <(stats "${RES[qemu,$d]}")
    name="guest->host"; [ $d = rx ] && name="host->guest"
    printf '%-12s %-22s %-22s %s\n' "$name" "$vm [$vmin..$vmax]" "$qm [$qmin..$qmax]" "$(ratio "$vm" "$qm")x"
done
e2e_pass "bench done; CSV in $CSV"
