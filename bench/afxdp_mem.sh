#!/bin/bash
# Memory of an afxdp instance with 1, 2 and 4 queue pairs (issue #15): vhostd -b afxdp (default auto mode,
# native on veth) on a veth with that many queues in a namespace this script creates, build/tests/fe_hold attached as the
# guest with as many queue pairs (256-entry rings, 256 frames sent on each tx ring), and 5000 frames sent to the
# guest from the far end (pktsend, 16 flows), so every ring has carried traffic. Then, from /proc/PID/status,
# smaps and smaps_rollup of vhostd: RssAnon, RssShmem, and within RssShmem the UMEM (the memfd
# "vhostd-afxdp-umem") and the guest's RAM (fakefe's memfd "fakefe-ram"); Pss; and vhostd's own memory, RssAnon +
# RssShmem - guest RAM (what it costs beside the guest's memory, whichever counter the UMEM lands in).
# Target (issue #15): own memory under 8 MiB with 2 queue pairs.
# Usage: bench/afxdp_mem.sh [QUEUE_PAIRS...] (default 1 2 4); VHOSTD_BIN=... measures another build;
# AFXDP_MEM_ARGS="-o frame_size=4096" adds options to vhostd's command line.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${O:-build}
VHOSTD=${VHOSTD_BIN:-$PWD/$O/vhostd}
QPS=("$@")
[ ${#QPS[@]} -gt 0 ] || QPS=(1 2 4)
[ "$(id -u)" -eq 0 ] || { echo "afxdp_mem: needs root (namespaces, AF_XDP)"; exit 77; }
[ -x "$O/tests/fe_hold" ] && [ -x "$O/tests/pktsend" ] && [ -x "$O/vhostctl" ] ||
    make -s "$O/vhostctl" "$O/tests/fe_hold" "$O/tests/pktsend"
[ -x "$VHOSTD" ] || make -s "$O/vhostd"
T=$(mktemp -d)
NS=amem$$
VPID='' FPID=''
cleanup() {
    local p
    for p in $FPID $VPID; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

kb() { awk -v f="$2:" '$1 == f {v = $2} END {print v + 0}' "$1"; }
# map_rss PID NAME: Rss (kB) of the mappings whose path contains NAME.
map_rss() {
    awk -v n="$2" '/^[0-9a-f]+-[0-9a-f]+ / {m = index($0, n) > 0} m && $1 == "Rss:" {s += $2} END {print s + 0}' \
        "/proc/$1/smaps"
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

echo "afxdp memory, vhostd $("$VHOSTD" --version 2>/dev/null | head -n1) ($VHOSTD${AFXDP_MEM_ARGS:+ $AFXDP_MEM_ARGS}), $(uname -r):"
printf '%-3s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' qp RssAnon RssShmem UMEM guestRAM Pss Pss_Anon Pss_Shm own guest_rx
for q in "${QPS[@]}"; do
    # A veth with as many queues as queue pairs: every flow the far end sends lands on a queue vhostd serves.
    ip -n "$NS" link del am0 2>/dev/null || true
    ip -n "$NS" link add am0 numtxqueues "$q" numrxqueues "$q" type veth peer name am1 numtxqueues "$q" numrxqueues "$q"
    ip -n "$NS" link set am0 up
    ip -n "$NS" link set am1 up
    rm -f "$T/v.sock" "$T/v.ctl"
    # shellcheck disable=SC2086 # AFXDP_MEM_ARGS is split into options on purpose
    ip netns exec "$NS" "$VHOSTD" -s "$T/v.sock" -C "$T/v.ctl" -b afxdp -i am0 -q "$q" ${AFXDP_MEM_ARGS:-} >"$T/vhostd.log" 2>&1 </dev/null &
    VPID=$!
    for _ in $(seq 100); do "$O/vhostctl" -s "$T/v.ctl" >/dev/null 2>&1 && break; sleep 0.1; done
    ip netns exec "$NS" "$O/tests/fe_hold" "$T/v.sock" "$q" 256 >"$T/fe.log" 2>&1 &
    FPID=$!
    for _ in $(seq 100); do grep -q '^ready' "$T/fe.log" && break; sleep 0.1; done
    if ! grep -q '^ready' "$T/fe.log"; then
        echo "qp $q: the front-end did not come up:"
        cat "$T/fe.log" "$T/vhostd.log"
        exit 1
    fi
    ip netns exec "$NS" "$O/tests/pktsend" -i am1 -n 5000 -r 20000 -f 16 >/dev/null
    sleep 1
    st=/proc/$VPID/status roll=/proc/$VPID/smaps_rollup
    anon=$(kb "$st" RssAnon) shm=$(kb "$st" RssShmem) umem=$(map_rss "$VPID" vhostd-afxdp-umem)
    guest=$(map_rss "$VPID" fakefe-ram)
    pss=$(kb "$roll" Pss) pssa=$(kb "$roll" Pss_Anon) psss=$(kb "$roll" Pss_Shmem)
    own=$((anon + shm - guest))
    kill "$FPID"
    wait "$FPID" 2>/dev/null || true
    FPID=
    rx=$(awk '$1 == "received" {print $2}' "$T/fe.log")
    printf '%-3s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' "$q" "$(mib "$anon")" "$(mib "$shm")" "$(mib "$umem")" \
        "$(mib "$guest")" "$(mib "$pss")" "$(mib "$pssa")" "$(mib "$psss")" "$(mib "$own")" "${rx:-?}"
    kill "$VPID"
    wait "$VPID" 2>/dev/null || true
    VPID=
done
echo "(MiB. UMEM and guestRAM: the Rss of those mappings, both within RssShmem; own = RssAnon + RssShmem - guestRAM,"
echo " vhostd's memory beside the guest's; guest_rx: frames the front-end took of the 5000 the far end sent.)"
echo "Target (issue #15): own < 8 MiB with 2 queue pairs."
