#!/bin/bash
# The cost of live migration's dirty log: frames/s through vhostd's loopback port with the log off and on
# (the front-end, build/tests/loop_rate, starts logging as QEMU does when a migration begins), 64-byte frames,
# 1 queue pair, vhostd on CPU 0 and the front-end on CPU 1, alternating off/on RUNS times in one run.
# Prints median [min..max] Mpps of each and the ratio log/off; appends CSV rows to bench/results/dirty_log.csv.
# Target (issue #13): logging on costs at most 15 %. Usage: bench/dirty_log.sh [RUNS=3] [SECONDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-3}
. bench/stats.sh
O=${O:-build}
[ -x "$O/vhostd" ] && [ -x "$O/tests/loop_rate" ] || make -s "$O/vhostd" "$O/tests/loop_rate"
mkdir -p bench/results
CSV=bench/results/dirty_log.csv
[ -f "$CSV" ] || echo "date,mode,run,mpps,marks" >"$CSV"
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T=$(mktemp -d)
VPID=
cleanup() {
    [ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

taskset -c 0 "$O/vhostd" -s "$T/loop.sock" -b loopback >"$T/vhostd.log" 2>&1 </dev/null &
VPID=$!
for _ in $(seq 50); do [ -S "$T/loop.sock" ] && break; sleep 0.1; done
declare -A R=([off]="" [log]="")
for run in $(seq "$RUNS"); do
    for mode in off log; do
        out=$(taskset -c 1 "$O/tests/loop_rate" "$T/loop.sock" "$SECS" "$mode") || {
            echo "loop_rate $mode failed"
            exit 1
        }
        read -r _ mpps _ _ _ _ _ marks <<<"$out"
        R[$mode]+="$mpps "
        echo "$STAMP,$mode,$run,$mpps,$marks" >>"$CSV"
        printf 'run %d %-3s %s Mpps (%s pages marked)\n' "$run" "$mode" "$mpps" "$marks"
    done
done
read -r om omin omax < <(stats "${R[off]}")
read -r lm lmin lmax < <(stats "${R[log]}")
echo
echo "vhost-user loop, 64 B, 1 queue pair, median [min..max] of $RUNS runs:"
echo "  logging off: $om [$omin..$omax] Mpps"
echo "  logging on:  $lm [$lmin..$lmax] Mpps"
echo "  ratio on/off: $(ratio "$lm" "$om") (target >= 0.85)"
