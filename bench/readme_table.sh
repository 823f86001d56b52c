#!/bin/bash
# Writes the README's performance tables from one run of the benchmarks (the newest, or the stamp given):
# median of the runs per cell, vhostd against its peer, from bench/results/pps.csv and iperf_tap.csv.
# Replaces what stands between the "bench:pps" and "bench:iperf" markers in README.md, so that the README
# never mixes runs. Usage: bench/readme_table.sh [PPS_STAMP] [IPERF_STAMP]
set -euo pipefail
cd "$(dirname "$0")/.."
PPS=bench/results/pps.csv IPERF=bench/results/iperf_tap.csv
pstamp=${1:-$(tail -n 1 "$PPS" | cut -d, -f1)}
istamp=${2:-$(tail -n 1 "$IPERF" | cut -d, -f1)}

# median of the runs of one cell: path dir size backend
cell() {
    awk -F, -v st="$pstamp" -v p="$1" -v d="$2" -v s="$3" -v b="$4" \
        '$1 == st && $2 == p && $3 == d && $4 == s && $6 == b { print $8 }' "$PPS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.3f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
pair() { # path dir size: "v vs p = r x", or "v Mpps (vhostd alone)", or empty
    local v p
    v=$(cell "$1" "$2" "$3" vhostd)
    p=$(cell "$1" "$2" "$3" peer)
    [ -n "$v" ] || return 0
    if [ -n "$p" ]; then
        awk -v v="$v" -v p="$p" 'BEGIN { printf "%s vs %s = %.2fx", v, p, (p > 0 ? v / p : 0) }'
    else
        printf '%s (vhostd alone)' "$v"
    fi
}

pps_table() {
    echo "| path | 64 B, 1 queue pair | 1500 B | 64 B, vhostd busy-polling | 64 B, 2 queue pairs | 1500 B, 2 queue pairs |"
    echo "|---|---|---|---|---|---|"
    local kind dir label
    for kind in tap rawsock afxdp-skb afxdp-native loopback; do
        for dir in g2p p2g loop; do
            [ -n "$(cell "$kind-q1" "$dir" 64 vhostd)" ] || continue
            label="$kind ${dir/g2p/guest->port}"
            label=${label/p2g/port->guest}
            label=${label/loopback loop/vhost-user loop (no port)}
            echo "| $label | $(pair "$kind-q1" "$dir" 64) | $(pair "$kind-q1" "$dir" 1500) | $(pair "$kind-q1-busy" "$dir" 64) | $(pair "$kind-q2" "$dir" 64) | $(pair "$kind-q2" "$dir" 1500) |"
        done
    done
    echo
    echo "Mpps, median of $(awk -F, -v st="$pstamp" '$1 == st { print $7 }' "$PPS" | sort -n | tail -1) runs, all from the run of $pstamp (\`bench/results/pps.csv\`); the"
    echo "other processes on the machine took a median $(awk -F, -v st="$pstamp" '$1 == st { print $12 }' "$PPS" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }') % of a CPU during the windows."
}

iperf_line() {
    local d v q
    for d in guest-\>host host-\>guest; do
        v=$(awk -F, -v st="$istamp" -v d="$d" '$1 == st && $2 == "vhostd" && $3 == d { print $5 }' "$IPERF" | sort -g |
            awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }')
        q=$(awk -F, -v st="$istamp" -v d="$d" '$1 == st && $2 == "qemu-tap" && $3 == d { print $5 }' "$IPERF" | sort -g |
            awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }')
        [ -n "$v" ] && [ -n "$q" ] || continue
        awk -v v="$v" -v q="$q" -v d="$d" 'BEGIN { printf "- %s: **%s vs %s Gbit/s = %.2fx**\n", d, v, q, v / q }'
    done
    echo
    echo "(median of the runs of $istamp, \`bench/results/iperf_tap.csv\`)"
}

replace() { # MARKER CONTENT-FILE
    awk -v m="$1" -v f="$2" '
        $0 == "<!-- " m ":start -->" { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == "<!-- " m ":end -->" { skip = 0 }
        !skip { print }' README.md >README.md.new
    mv README.md.new README.md
}

grep -q '<!-- bench:pps:start -->' README.md || { echo "README.md has no bench:pps markers"; exit 1; }
tmp=$(mktemp)
pps_table >"$tmp"
replace bench:pps "$tmp"
iperf_line >"$tmp"
replace bench:iperf "$tmp"
rm -f "$tmp"
echo "README.md: tables from pps run $pstamp and iperf run $istamp"
