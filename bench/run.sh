#!/bin/bash
# make bench: every benchmark, each printing vhostd against a peer measured in the same run.
# A failing benchmark does not stop the next one; the exit status is the first failure (77, skip, is not one).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (taps, namespaces, hugepages)"; exit 1; }
tests/install-deps.sh >/dev/null
RUNS=${RUNS:-3}
rc=0
run() {
    local r=0
    "$@" || r=$?
    if [ "$r" -ne 0 ] && [ "$r" -ne 77 ] && [ "$rc" -eq 0 ]; then rc=$r; fi
    return 0
}
run bench/iperf_tap.sh "$RUNS" 5   # TCP through a QEMU guest: vhostd tap vs QEMU's tap
run bench/pps.sh "$RUNS" 2         # frames/s per port kind: vhostd vs dpdk-testpmd, testpmd as the guest
run bench/dirty_log.sh "$RUNS" 3   # the loop with live migration's dirty log on vs off
run bench/afxdp_mem.sh             # afxdp memory (RssAnon, RssShmem, UMEM, Pss) with 1, 2 and 4 queue pairs
# The README's tables from this run only (the chart, bench/results/pps.png, is pps.sh's of this run too).
[ "$rc" -ne 0 ] || run bench/readme_table.sh
exit "$rc"
