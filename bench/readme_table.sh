#!/bin/bash
# Writes the README's performance tables from one run of the benchmarks (the newest, or the stamp given):
# median of the runs per cell, vhostd against its peer, from bench/results/pps.csv and iperf_tap.csv.
# Replaces what stands between the "bench:pps" and "bench:iperf" markers in README.md, so that the README
# never mixes runs. Usage: bench/readme_table.sh [PPS_STAMP] [IPERF_STAMP]
# PPS_CSV and IPERF_CSV name other files (e.g. a smoke test's).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
PPS=${PPS_CSV:-bench/results/pps.csv} IPERF=${IPERF_CSV:-bench/results/iperf_tap.csv}
pstamp=${1:-$(tail -n 1 "$PPS" | cut -d, -f1)}
istamp=${2:-$(tail -n 1 "$IPERF" | cut -d, -f1)}

# cell PATH DIR SIZE BACKEND: "MEDIAN NEG" over the runs of one cell, or nothing. NEG is "-" when every run's
# back-end negotiated the ring layout the front-end asked for (columns 13 and 14; rows from before they
# existed have neither and count as asked), else the layouts it negotiated instead, e.g. "split".
cell() {
    awk -F, -v st="$pstamp" -v p="$1" -v d="$2" -v s="$3" -v b="$4" \
        '$1 == st && $2 == p && $3 == d && $4 == s && $6 == b { print $8, ($14 == "" || $14 == $13 ? "-" : $14) }' "$PPS" |
        sort -g | awk '{ v[NR] = $1; if ($2 != "-" && !index("/" neg "/", "/" $2 "/")) neg = neg (neg == "" ? "" : "/") $2 }
            END { if (NR) printf "%.3f %s\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), (neg == "" ? "-" : neg) }'
}
# shown MEDIAN NEG: the median, marked when the layout was not negotiated.
shown() { if [ "$2" = - ]; then printf '%s' "$1"; else printf '%s (NOT negotiated: got %s)' "$1" "$2"; fi; }
pair() { # path dir size: "v vs p = r x", or "v Mpps (vhostd alone)", or empty
    local v='' vn p='' pn
    read -r v vn < <(cell "$1" "$2" "$3" vhostd) || true
    read -r p pn < <(cell "$1" "$2" "$3" peer) || true
    [ -n "$v" ] || return 0
    if [ -n "$p" ]; then
        printf '%s vs %s = %sx' "$(shown "$v" "$vn")" "$(shown "$p" "$pn")" "$(ratio "$v" "$p")"
    else
        printf '%s (vhostd alone)' "$(shown "$v" "$vn")"
    fi
    # The port's ceiling (pps.sh measures it for the 1-queue-pair guest->port cells): vhostd's share of it.
    local c=''
    case $1 in *-q1 | *-q1-*) read -r c _ < <(cell "${1%%-q1*}-q1" "$2" "$3" ceiling) || true ;; esac
    [ -z "$c" ] || awk -v v="$v" -v c="$c" 'BEGIN { printf " (%.0f %% of the port ceiling, %.3f)", 100 * v / c, c }'
}
# label KIND DIR: the README's name for a path.
label() {
    local l="$1 ${2/g2p/guest->port}"
    l=${l/p2g/port->guest}
    l=${l/loopback loop/vhost-user loop (no port)}
    echo "${l/null /vhost-user (null port) }"
}

pps_table() {
    echo "| path | 64 B, 1 queue pair | 1500 B | 64 B, vhostd busy-polling | 64 B, 2 queue pairs | 1500 B, 2 queue pairs |"
    echo "|---|---|---|---|---|---|"
    local kind dir
    for kind in tap rawsock afxdp-skb afxdp-native loopback null; do
        for dir in g2p p2g loop; do
            [ -n "$(cell "$kind-q1" "$dir" 64 vhostd)" ] || continue
            echo "| $(label "$kind" "$dir") | $(pair "$kind-q1" "$dir" 64) | $(pair "$kind-q1" "$dir" 1500) | $(pair "$kind-q1-busy" "$dir" 64) | $(pair "$kind-q2" "$dir" 64) | $(pair "$kind-q2" "$dir" 1500) |"
        done
    done
    layout_table
    echo
    echo "Port ceiling: pktsend alone on the back-end's CPU writing the same frames straight into the port the way the"
    echo "back-end does (tap writes, AF_PACKET sendmmsg with qdisc bypass, an AF_XDP socket in the same mode)."
    echo "Mpps, median of $(awk -F, -v st="$pstamp" '$1 == st { print $7 }' "$PPS" | sort -n | tail -1) runs, all from the run of $pstamp (\`$PPS\`); the"
    echo "other processes on the machine took a median $(awk -F, -v st="$pstamp" '$1 == st { print $12 }' "$PPS" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }') % of a CPU during the windows."
    if awk -F, -v st="$pstamp" '$1 == st && $13 == "" { f = 1 } END { exit !f }' "$PPS"; then
        echo "This run predates the CSV's layout columns: its front-end left virtio-user's in_order at its default (1),"
        echo "so on these rows the peer negotiated IN_ORDER (split + in-order rings) and vhostd, which did not offer it, did not."
    fi
}

# vs_split V VNEG SPLIT SPLITNEG: V against the same back-end's split figure of the same run, when both were
# negotiated as asked.
vs_split() {
    [ -n "$1" ] && [ -n "$3" ] || return 0
    if [ "$2" = - ] && [ "$4" = - ]; then printf '%sx' "$(ratio "$1" "$3")"; else printf 'n/a (not negotiated)'; fi
}

# The ring layouts (group flags packed, inorder) beside split, on each path that has any, with each one's
# ratio to split per back-end.
LAYOUTS="split split-inorder packed packed-inorder"
layout_table() {
    local kind dir size l path v vn p pn sv svn sp spn header=
    for kind in tap rawsock afxdp-skb afxdp-native loopback; do
        for dir in g2p p2g loop; do
            for size in 64 1500; do
                [ -n "$(for l in ${LAYOUTS#split }; do cell "$kind-q1-$l" "$dir" "$size" vhostd; done)" ] || continue
                if [ -z "$header" ]; then
                    header=1
                    echo
                    echo "| path | ring layout | vhostd | peer | vhostd/peer | vhostd: layout/split | peer: layout/split |"
                    echo "|---|---|---|---|---|---|---|"
                fi
                sv='' svn=- sp='' spn=-
                for l in $LAYOUTS; do
                    path=$kind-q1
                    [ "$l" = split ] || path+=-$l
                    v='' vn=- p='' pn=-
                    read -r v vn < <(cell "$path" "$dir" "$size" vhostd) || true
                    read -r p pn < <(cell "$path" "$dir" "$size" peer) || true
                    [ -n "$v$p" ] || continue
                    [ "$l" != split ] || { sv=$v svn=$vn sp=$p spn=$pn; }
                    echo "| $(label "$kind" "$dir"), $size B | $l | $(shown "${v:-?}" "$vn") | $(shown "${p:-?}" "$pn") |" \
                        "$( [ -n "$v" ] && [ -n "$p" ] && printf '%sx' "$(ratio "$v" "$p")") |" \
                        "$( [ "$l" = split ] || vs_split "$v" "$vn" "$sv" "$svn") |" \
                        "$( [ "$l" = split ] || vs_split "$p" "$pn" "$sp" "$spn") |"
                done
            done
        done
    done
    [ -z "$header" ] || printf '\n%s\n%s\n' "(ring layout: what the front-end asked for, virtio-user packed_vq / in_order; a figure marked NOT" \
        "negotiated was measured with the layout the back-end negotiated instead, and has no ratio to split)"
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
