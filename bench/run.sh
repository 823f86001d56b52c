#!/bin/bash
# make bench: every benchmark, each printing vhostd against a peer measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (taps, namespaces, hugepages)"; exit 1; }
tests/install-deps.sh >/dev/null
RUNS=${RUNS:-3}
bench/iperf_tap.sh "$RUNS" 5
