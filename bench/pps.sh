#!/bin/bash
# Frames per second through the back-end: vhostd against dpdk-testpmd as the vhost-user back-end, same run,
# same pinning, same front-end, alternating, RUNS times each.
#
#   guest stand-in   dpdk-testpmd + virtio-user (queue_size=1024), interactive, driven through a FIFO: one
#                    front-end per back-end instance; per cell "set fwd txonly" (guest->port), "rxonly"
#                    (port->guest) or "io" + "start tx_first" (loop); "show port stats" at the window's edges
#   back-end         vhostd -b KIND, or dpdk-testpmd --forward-mode=io between net_vhost and the matching PMD:
#                    tap: net_tap; rawsock: net_af_packet; afxdp: net_af_xdp; loopback: net_vhost alone
#                    (--port-topology=loop sends every frame back where it came from); null: net_null (discards
#                    what it is sent, makes frames of the cell's size as fast as they are taken), vhostd's null
#                    port (the same, frame_len = the cell's size): the vhost-user path alone, one way at a time
#   port side        veth pair pp0 (back-end namespace) / pf0 (far namespace); tap ports are bridged to pp0.
#                    guest->port counts pf0's rx_packets over the window; port->guest frames come from
#                    build/tests/pktsend (tests/integration/pktsend.c) on pf0 and are counted by the front-end.
#                    null has no port side: guest->port counts the frames the front-end got onto its tx ring
#                    (TX-packets: no more than the back-end takes off), port->guest what it received.
#
# CPU budget (2 cores): core 1 = the guest (front-end testpmd: main lcore and forwarding lcore both mapped
# to CPU 1). Core 0 = the host: the back-end under test (vhostd: taskset + cpus=0 for its workers; testpmd:
# --lcores 0@0,1@0), the kernel's veth/bridge/tap/XDP work, and for port->guest the pktsend source, unpaced
# unless PPS_RATE is set. A busy-polling peer shares core 0 with the source through the scheduler; vhostd
# sleeps when idle. The source's offered rate is saved in the CSV so a source-bound figure shows as such.
#
# Why queue_size=1024: with 256, any pause of the front-end (this machine is shared) fills the guest's rx ring
# and testpmd's io forwarding drops what it cannot place (vhostd waits instead), so the peer lost ~40% at
# 0.1 Mpps. Everything else is each program's default.
#
# Port ceiling (guest->port cells of the plain 1-queue-pair tap, rawsock and afxdp groups): in every run, before
# the back-ends, pktsend alone on CPU 0 writes the cell's frames straight into the port the way that back-end
# does (tap: writes into the tap, bridged to pp0, a batch per io_uring submission (-u); rawsock: sendmmsg on pp0 with qdisc
# bypass (-B); afxdp: an AF_XDP socket on pp0 in the group's XDP mode, copy, need_wakeup (-X)), counted at
# pf0 as the cells are. Each back-end's figure is then also shown as a share of that ceiling.
#
# Output: a table (median [min..max] Mpps of RUNS runs, ratio vhostd/peer), bench/results/pps.csv (one row per
# run, appended), bench/results/pps.png (gnuplot), each ring layout against split (per back-end, same run),
# per-instance resources (RSS, CPU s per Mframe, idle CPU), ping RTT through the tap port (front-end in
# icmpecho mode), and how much CPU other processes took during the windows (the figures mean little when
# that is high).
#
# Usage: bench/pps.sh [RUNS=3] [SECS=2]
# Env:   PPS_GROUPS   groups to run (default: every group below)
#        PPS_RATE     pace pktsend to this many frames/s (default 0: as fast as it can)
#        PPS_PERF=1   perf record vhostd during run 1 of each cell; flat profile in bench/results/perf-*.txt
#        PPS_WARM     seconds of traffic before the window (default 1)
#        PPS_RESULTS  where the CSVs, chart and profiles go (default bench/results; a smoke test can point it
#                     elsewhere to leave the recorded results alone)
set -eEuo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-2}
WARM=${PPS_WARM:-1}
RATE=${PPS_RATE:-0}
# group = kind:queues:xdp_mode:cells[:flags], cell = dir/size[@rate] (dir: g2p guest->port, p2g port->guest,
# loop). @rate paces a port->guest cell's source: frames/s, or "half": half the peer's median on the same
# unpaced cell of the plain group (kind, queues, mode, no flags), which must come earlier in the list.
# flags (comma-separated):
#   nopeer: DPDK 22.11 net_af_xdp sizes itself from the "combined" channel count, which veth does not report
#           (it has separate rx/tx channels), so it refuses queue_count=2 here: afxdp with 2 queue pairs is
#           vhostd alone; with jumbo in native mode, libxdp's xsk program (not frags-aware) is refused by the
#           kernel on a veth at MTU 9000, so the peer cannot start;
#   busy:   vhostd busy-polls its rings for 1 ms after the last frame (-o busy_poll_us=1000), as the peer
#           always does; the groups without it show vhostd in its default mode (interrupt-driven, polling
#           adaptively for up to 100 us while work comes back at once);
#   interrupt: vhostd with adaptive polling off (-o adaptive_poll=no): sleeps at once after the last frame.
#   nouring: tap sends frame by frame (-o io_uring=no) instead of a burst per io_uring submission (the default).
#   sweep:  the group offers port->guest load in steps (@rate cells): delivered and loss per step, a chart
#           (pps-sweep.png); does the delivered rate level off, or fall, as the offered load grows?
#   nobusypoll: afxdp without preferred busy polling (-o busy_poll=no), which native mode uses by default (the
#           worker runs the device's NAPI, vhostd defers its interrupts): what the default gains under overload;
#   jumbo:  MTU 9000 on the veth pair and vhostd -o mtu=9000 (afxdp: multi-buffer, a frame over several UMEM
#           frames); the front-end sends a cell larger than its 2 KiB mbufs as a chain of them (set txpkts
#           2048,...). The peer runs too: what it carries at that size is measured, not assumed.
#   half:   the group's cells run at half the peer's maximum (@half): CPU seconds per million frames below
#           saturation, where a busy-polling peer spins anyway.
#   packed, inorder: the ring layout the front-end asks for (virtio-user packed_vq=1, in_order=1; both: packed
#           and in order). Without them it asks for split rings without IN_ORDER (packed_vq=0,in_order=0:
#           virtio-user's own default is in_order=1). What each back-end negotiated is read from it (vhostctl;
#           testpmd's vhost log), saved in the CSV, and a cell that got another layout is flagged.
ALL_GROUPS="loopback:1::loop/64,loop/1500 \
null:1::g2p/64,p2g/64 \
null:1::g2p/1500,p2g/1500 \
loopback:1::loop/64,loop/1500:inorder \
loopback:1::loop/64,loop/1500:packed \
loopback:1::loop/64,loop/1500:packed,inorder \
tap:1::g2p/64,g2p/1500,p2g/64,p2g/1500 \
tap:1::p2g/64@half:half \
tap:1::g2p/64,g2p/1500:nouring \
rawsock:1::g2p/64,g2p/1500,p2g/64,p2g/1500 \
rawsock:1::p2g/64@250000,p2g/64@500000,p2g/64@1000000,p2g/64@2000000:sweep \
rawsock:1::p2g/64@half,p2g/1500@half:half \
afxdp:1:skb:g2p/64,g2p/1500,p2g/64,p2g/1500 \
afxdp:1:skb:p2g/64@250000,p2g/64@500000,p2g/64@1000000,p2g/64@2000000:sweep \
afxdp:1:skb:p2g/64@half:half \
afxdp:1:skb:g2p/64,p2g/64:inorder \
afxdp:1:skb:g2p/64,p2g/64:packed \
afxdp:1:skb:g2p/64,p2g/64:packed,inorder \
afxdp:1:native:g2p/64,g2p/1500,p2g/64,p2g/1500 \
afxdp:1:native:p2g/64@250000,p2g/64@500000,p2g/64@1000000,p2g/64@2000000:sweep \
afxdp:1:native:p2g/64@250000,p2g/64@500000,p2g/64@1000000,p2g/64@2000000:sweep,nobusypoll \
afxdp:1:skb:g2p/9014:jumbo \
afxdp:1:native:g2p/9014:jumbo,nopeer \
tap:2::g2p/64,g2p/1500,p2g/64,p2g/1500 \
rawsock:2::g2p/64,g2p/1500,p2g/64,p2g/1500 \
afxdp:2:skb:g2p/64,g2p/1500,p2g/64,p2g/1500:nopeer \
afxdp:2:native:g2p/64,g2p/1500,p2g/64,p2g/1500:nopeer \
loopback:1::loop/64,loop/1500:busy \
tap:1::g2p/64,p2g/64:busy \
rawsock:1::g2p/64,p2g/64:busy \
afxdp:1:skb:g2p/64,p2g/64:busy"
GROUPS_SEL=${PPS_GROUPS:-$ALL_GROUPS}

. tests/e2e/lib.sh
. bench/stats.sh
median() { stats "$1" | cut -d' ' -f1; }

# ------------------------------------------------------------------ set-up (no guest image needed)
e2e_require_root
export PATH=$PATH:/usr/sbin:/sbin
e2e_require_tun
e2e_require_cmd dpdk-testpmd ip jq taskset bridge xdp-loader cc
E2E_TMP=$(mktemp -d /tmp/vhostd-pps.XXXXXX)
# set -e ending the bench without a FAIL line: the cleanup names the command and line.
trap 'E2E_LAST_ERR="line $LINENO: $BASH_COMMAND (exit $?)"' ERR
trap _e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
[ -x "$VHOSTD_BIN" ] && [ -x "$VHOSTCTL_BIN" ] || e2e_fail "build vhostd first (make)"
[ "$(nproc)" -ge 2 ] || e2e_skip "needs 2 CPUs"
if ! command -v gnuplot >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
        e2e_log "gnuplot-nox not installable: no chart"
fi
RES=${PPS_RESULTS:-bench/results}
mkdir -p build/bench "$RES"
make -s build/tests/pktsend >/dev/null || e2e_fail "pktsend build (make build/tests/pktsend)"
PKTSEND=("$PWD/build/tests/pktsend" -P -b 64) # one prebuilt batch of 64 frames, sent over and over
XSK_PROG=$(dpkg -L libxdp1 2>/dev/null | grep -m1 '/xsk_def_xdp_prog\.o$' || true)

# layout: the ring layout the front-end asked for (split, split-inorder, packed, packed-inorder); negotiated:
# the one the back-end negotiated (from its feature bits 34 and 35), "?" if it could not be read. Files
# written before these two columns existed get them added to the header; their rows leave them empty.
CSV=$RES/pps.csv
CSV_HEAD=date,path,dir,size,queues,backend,run,mpps,offered_mpps,cpu_s_per_mframe,load1,others_cpu_pct
[ -f "$CSV" ] || echo "$CSV_HEAD" >"$CSV"
[ "$(head -n 1 "$CSV")" != "$CSV_HEAD" ] || sed -i '1s/$/,layout,negotiated/' "$CSV"
RESCSV=$RES/pps_resources.csv
[ -f "$RESCSV" ] || echo "date,group,backend,run,vmrss_kb,rssanon_kb,rssshmem_kb,idle_cpu_pct" >"$RESCSV"
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
PFX=vhpps$$   # DPDK --file-prefix stem
HZ=$(getconf CLK_TCK)
FAR_MAC=02:00:00:00:00:01   # destination of pktsend frames: nobody's, so bridges flood it and stacks ignore it
LOADS=()                  # load average samples, to tell the reader how busy the machine was
OTHERS_ALL=() OTHERS_NAMES=()  # CPU percent other processes took during each window, and who

netns_create NSB ppsb
netns_create NSF ppsf
for ns in "$NSB" "$NSF"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
netns_add_veth "$NSB" pp0 "$NSF" pf0 2
ip -n "$NSB" link add pbr0 type bridge stp_state 0 forward_delay 0
ip -n "$NSB" link set pbr0 up
e2e_on_exit rm -rf "/var/run/dpdk/${PFX}fe" "/var/run/dpdk/${PFX}be"
# Short-lived processes are tracked here rather than with e2e_spawn, which keeps every PID until exit.
declare -A LIVE=()
spawn() {
    local __v=$1 __log=$2
    shift 2
    : >"$__log"
    "$@" </dev/null >"$__log" 2>&1 &
    printf -v "$__v" '%s' "$!"
    LIVE[$!]=1
}
stop_pid() { [ -n "${1:-}" ] || return 0; e2e_kill "$1"; unset "LIVE[$1]"; }
kill_live() { local p; for p in "${!LIVE[@]}"; do e2e_kill "$p"; done; }
e2e_on_exit kill_live

# ------------------------------------------------------------------ helpers
# half_rate CELL: half the peer's median so far on CELL, in frames/s.
half_rate() {
    [ -n "${VAL[$1,peer]:-}" ] || e2e_fail "@half: no peer figure for $1 yet (its plain group must come first)"
    awk -v m="$(median "${VAL[$1,peer]}")" 'BEGIN { printf "%.0f", m * 1e6 / 2 }'
}

# ceiling SIZE: MPPS = what pktsend alone on CPU 0 puts through the group's port into pf0 (see the header).
ceiling() {
    local size=$1 args=(-i pp0) spid slog=$E2E_TMP/ceiling.log r0 r1 t0 t1
    case $KIND in
        rawsock) args+=(-B) ;;
        afxdp) args+=(-X "$XM") ;;
        tap)
            ip -n "$NSB" tuntap add dev ptap0 mode tap
            ip -n "$NSB" link set ptap0 master pbr0 up
            ip -n "$NSB" link set pp0 master pbr0 up
            args=(-i ptap0 -u) ;;
    esac
    spawn spid "$slog" taskset -c 0 ip netns exec "$NSB" "${PKTSEND[@]}" "${args[@]}" -s "$size" \
        -T "$(awk -v a="$WARM" -v b="$SECS" 'BEGIN{print a + b + 1}')" -d "$FAR_MAC" -f 64
    sleep "$WARM"
    r0=$(far_rx) t0=$(now)
    sleep "$SECS"
    r1=$(far_rx) t1=$(now)
    _e2e_alive "$spid" || e2e_fail "ceiling $KIND $size B: pktsend ended early: $(tail -3 "$slog")"
    stop_pid "$spid"
    if [ "$KIND" = tap ]; then
        ip -n "$NSB" link del ptap0
        ip -n "$NSB" link set pp0 nomaster
    fi
    MPPS=$(awk -v f="$((r1 - r0))" -v x="$t0" -v y="$t1" 'BEGIN{printf "%.4f", f / (y - x) / 1e6}')
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# proc_snap FILE: "pid ticks ppid comm" of every process, to see how much CPU other processes took.
proc_snap() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
        i = index($0, " ("); j = 0; for (k = length($0); k > 0; k--) if (substr($0, k, 2) == ") ") { j = k; break }
        if (!i || !j) next
        comm = substr($0, i + 2, j - i - 2); gsub(/[^A-Za-z0-9_.:\/-]/, "_", comm)
        split(substr($0, j + 2), f, " ")
        print substr($0, 1, i - 1), f[12] + f[13], f[2], comm }' >"$1"
}

# others_pct SNAP0 SNAP1 SECONDS OUR_PIDS...: OTHERS = CPU percent (of one CPU; 2 CPUs = 200) used during the
# window by processes that are not ours and not kernel threads; OTHERS_TOP = the three biggest, by name.
others_pct() {
    local s0=$1 s1=$2 dt=$3
    shift 3
    read -r OTHERS OTHERS_TOP < <(awk -v ours=" $* $$ " -v hz="$HZ" -v dt="$dt" '
        NR == FNR { a[$1] = $2; next }
        { if (index(ours, " " $1 " ") || $1 == 2 || $3 == 2) next
          d = $2 - (($1 in a) ? a[$1] : 0); if (d <= 0) next
          s += d; by[$4] += d }
        END { top = ""
              for (n = 0; n < 3; n++) { best = ""; for (c in by) if (best == "" || by[c] > by[best]) best = c
                                         if (best == "") break
                                         top = top (top == "" ? "" : ",") best ":" int(by[best] / hz / dt * 100 + 0.5) "%"
                                         delete by[best] }
              printf "%.0f %s\n", s / hz / dt * 100, (top == "" ? "-" : top) }' "$s0" "$s1")
}
now() { date +%s.%N; }
far_rx() { link_stat "$NSF" pf0 rx_packets; }
far_rx_bytes() { link_stat "$NSF" pf0 rx_bytes; }

# pmd_wait_rm PREFIX: DPDK leaves its runtime dir behind; remove ours.
dpdk_rm() { rm -rf "/var/run/dpdk/$1"; }

# xdp_off: detach whatever XDP program is left on pp0.
xdp_off() {
    ip -n "$NSB" link set pp0 xdpgeneric off 2>/dev/null || true
    ip -n "$NSB" link set pp0 xdpdrv off 2>/dev/null || true
}

# be_start KIND QUEUES XDPMODE vhostd|peer SOCK: start the back-end on CPU 0; sets BE_PID, BE_LOG.
# An AF_XDP socket is released some time after its owner exits, and binding the same queue meanwhile fails
# with EBUSY: when the back-end dies that way, wait and try again (counted in BE_RETRIES).
BE_RETRIES=0
be_start() {
    local _
    for _ in 1 2 3 4 5; do
        be_start_once "$@" && return 0
        grep -aqiE 'busy|EBUSY' "$BE_LOG" || break
        BE_RETRIES=$((BE_RETRIES + 1))
        e2e_log "$4 $1: port busy (the previous AF_XDP socket is still being released), retrying: $(tail -1 "$BE_LOG")"
        sleep 1
    done
    tail -20 "$BE_LOG" >&2
    e2e_fail "$4 $1: did not start"
}

be_sock_or_dead() { [ -S "$1" ] || ! _e2e_alive "$BE_PID"; }

be_start_once() {
    local kind=$1 q=$2 xm=$3 who=$4 sock=$5 i
    BE_LOG=$E2E_TMP/be-$who-$kind-$q$xm.$RUN.log
    rm -f "$sock"
    if [ "$who" = vhostd ]; then
        local args=(-s "$sock" -C "$E2E_TMP/ctl" -b "$kind" -q "$q" -o cpus=0)
        [ -n "$BUSY" ] && args+=(-o busy_poll_us=1000)
        [ -n "$INTR" ] && args+=(-o adaptive_poll=no)
        [ -n "$NOURING" ] && args+=(-o io_uring=no)
        [ -n "$JUMBO" ] && args+=(-o mtu=9000)
        [ -n "$NOBUSYPOLL" ] && args+=(-o busy_poll=no)
        case $kind in
            tap) args+=(-i ptap0) ;;
            rawsock) args+=(-i pp0) ;;
            afxdp) args+=(-i pp0 -o "xdp_mode=$xm") ;;
            null) args+=(-o "frame_len=$NULL_SIZE") ;;
        esac
        rm -f "$E2E_TMP/ctl"
        spawn BE_PID "$BE_LOG" taskset -c 0 ip netns exec "$NSB" "$VHOSTD_BIN" "${args[@]}"
    else
        local vdev=()
        case $kind in
            loopback) ;;
            null) vdev=(--vdev "net_null0,size=$NULL_SIZE") ;;
            tap) vdev=(--vdev "net_tap0,iface=ptap0") ;;
            rawsock) vdev=(--vdev "net_af_packet0,iface=pp0,qpairs=$q,framecnt=2048") ;;
            afxdp)
                # net_af_xdp (DPDK 22.11) lets the kernel pick the XDP mode, which on veth is native. Load libxdp's
                # default xsk program in the wanted mode first: libxdp finds it and only fills its xsks_map.
                [ -n "$XSK_PROG" ] || e2e_fail "no xsk_def_xdp_prog.o (libxdp1)"
                ip netns exec "$NSB" xdp-loader load -m "$xm" pp0 "$XSK_PROG" >/dev/null 2>&1 ||
                    e2e_fail "xdp-loader load -m $xm pp0"
                vdev=(--vdev "net_af_xdp0,iface=pp0,start_queue=0,queue_count=$q") ;;
        esac
        local topo=()
        [ "$kind" = loopback ] && topo=(--port-topology=loop)
        spawn BE_PID "$BE_LOG" taskset -c 0 ip netns exec "$NSB" dpdk-testpmd --lcores '0@0,1@0' \
            --main-lcore 0 --no-huge -m 256 --no-pci --file-prefix="${PFX}be" --log-level=lib.vhost.config:info \
            --vdev "net_vhost0,iface=$sock,queues=$q" "${vdev[@]}" -- --total-num-mbufs=16384 \
            --disable-link-check --forward-mode=io "${topo[@]}" --rxq="$q" --txq="$q" --nb-cores=1 \
            --auto-start --stats-period 3600
    fi
    e2e_wait_for 30 be_sock_or_dead "$sock" || true
    if ! [ -S "$sock" ] || ! _e2e_alive "$BE_PID"; then
        stop_pid "$BE_PID"
        dpdk_rm "${PFX}be"
        [ "$kind" = afxdp ] && xdp_off
        return 1
    fi
    if grep -aqE 'probe failed|Failed to init|Cannot init|Fail to start port' "$BE_LOG"; then
        if grep -aqiE 'busy' "$BE_LOG"; then
            stop_pid "$BE_PID"
            dpdk_rm "${PFX}be"
            [ "$kind" = afxdp ] && xdp_off
            return 1
        fi
        grep -aE 'probe failed|Failed|Fail|larger than' "$BE_LOG" | head -5 >&2
        e2e_fail "$who $kind: a port failed (log above)"
    fi
    if [ "$kind" = tap ]; then
        e2e_wait_for 10 eval "ip -n $NSB link show ptap0 >/dev/null 2>&1" || e2e_fail "$who: no ptap0"
        ip -n "$NSB" link set ptap0 master pbr0 up
        ip -n "$NSB" link set pp0 master pbr0 up
    fi
}

be_stop() {
    stop_pid "$BE_PID"
    dpdk_rm "${PFX}be"
    [ "$1" = afxdp ] && xdp_off
    ip -n "$NSB" link set pp0 nomaster 2>/dev/null || true
    BE_PID=
}

# fe_open QUEUES SOCK: the front-end on CPU 1, interactive (-i), its commands written into a FIFO (FE_FD);
# connected and idle when this returns. One front-end serves every cell of a back-end instance: no restart
# per cell, and counters are read on demand ("show port stats") at the edges of the window. It asks for the
# group's ring layout (PACKED, INORDER).
fe_open() {
    local q=$1 sock=$2 fifo=$E2E_TMP/fe.in
    local fe_vdev="net_virtio_user0,path=$sock,queues=$q,queue_size=1024,packed_vq=$PACKED,in_order=$INORDER"
    FE_LOG=$E2E_TMP/fe.$RANDOM.log
    rm -f "$fifo"
    mkfifo "$fifo"
    : >"$FE_LOG"
    # stdbuf: testpmd's output goes to a file; line-buffer it so that answers can be read at once.
    taskset -c 1 stdbuf -oL dpdk-testpmd --lcores '0@1,1@1' --main-lcore 0 --no-huge -m 256 --no-pci \
        --file-prefix="${PFX}fe" --vdev "$fe_vdev" \
        -- -i --total-num-mbufs=16384 --disable-link-check --rxq="$q" --txq="$q" --nb-cores=1 \
        "--eth-peer=0,$FAR_MAC" <"$fifo" >"$FE_LOG" 2>&1 &
    FE_PID=$!
    LIVE[$FE_PID]=1
    exec {FE_FD}>"$fifo"
    e2e_wait_for 20 grep -aq 'testpmd>' "$FE_LOG" || { tail -20 "$FE_LOG" >&2; e2e_fail "front-end did not start"; }
}

fe_cmd() { local c; for c; do echo "$c" >&"$FE_FD"; done; }

# layout_name PACKED INORDER (0/1 each): split, split-inorder, packed or packed-inorder.
layout_name() { echo "$( (($1)) && echo packed || echo split)$( (($2)) && echo -inorder)"; }

# be_features WHO: the feature bits the back-end negotiated with the front-end, in hex, or nothing.
# vhostd: vhostctl; testpmd: its vhost library logs "negotiated Virtio features: 0x..." (lib.vhost.config).
be_features() {
    if [ "$1" = vhostd ]; then
        "$VHOSTCTL_BIN" -s "$E2E_TMP/ctl" --json 2>/dev/null | grep -o '"features":"0x[0-9a-f]*"' | head -n 1 | cut -d'"' -f4
    else
        grep -aoE 'negotiated Virtio features: 0x[0-9a-f]+' "$BE_LOG" | tail -n 1 | awk '{print $4}'
    fi
}

# be_layout WHO: NEG = the ring layout the back-end negotiated (VIRTIO_F_RING_PACKED = bit 34,
# VIRTIO_F_IN_ORDER = bit 35), "?" if it cannot be read; logs it, loudly when it is not the one asked for.
be_layout() {
    local f='' i
    for ((i = 0; i < 50; i++)); do f=$(be_features "$1") && [ -n "$f" ] && break; sleep 0.1; done
    if [ -n "$f" ]; then NEG=$(layout_name $(((f >> 34) & 1)) $(((f >> 35) & 1))); else NEG='?'; fi
    if [ "$NEG" = "$LAYOUT" ]; then
        e2e_log "$1 $GNAME: features ${f:-?}: $NEG negotiated"
    else
        e2e_log "$1 $GNAME: features ${f:-?}: NOT NEGOTIATED as asked: front-end asked for $LAYOUT, back-end has $NEG"
    fi
}

fe_close() {
    fe_cmd stop quit
    exec {FE_FD}>&-
    e2e_wait_for 5 eval "! _e2e_alive $FE_PID" || true
    stop_pid "$FE_PID"
    dpdk_rm "${PFX}fe"
    FE_PID=
}

# fe_rx: FE_RX, FE_TX = the front-end's RX-packets and TX-packets (port 0, all queues) now; FE_T = when read.
FE_RE='RX-packets: +[0-9]+ +RX-missed'
FE_TX_RE='TX-packets: +[0-9]+ +TX-errors'
fe_rx() {
    local n0 i t
    # The TX line comes after the RX line: wait for both of this answer, not a half-written one.
    n0=$(grep -acE "$FE_TX_RE" "$FE_LOG" || true)
    t=$(now)
    fe_cmd "show port stats 0"
    for ((i = 0; i < 500; i++)); do
        (($(grep -acE "$FE_TX_RE" "$FE_LOG" || true) > n0)) && break
        sleep 0.01
    done
    FE_T=$(awk -v a="$t" -v b="$(now)" 'BEGIN{printf "%.6f", (a + b) / 2}')
    FE_RX=$(grep -aoE "$FE_RE" "$FE_LOG" | tail -1 | awk '{print $2}') || true
    FE_TX=$(grep -aoE "$FE_TX_RE" "$FE_LOG" | tail -1 | awk '{print $2}') || true
    [ -n "$FE_RX" ] || { tail -5 "$FE_LOG" >&2; e2e_fail "front-end (pid $FE_PID$(_e2e_alive "$FE_PID" || echo ', gone')) gave no port stats"; }
}

# count_frames: COUNT = the frames the cell counts now (see the header), COUNT_T = when they were counted.
count_frames() {
    if [ "$dir" = g2p ] && [ "$KIND" != null ]; then
        COUNT=$(far_rx) COUNT_T=$(now) COUNT_B=$(far_rx_bytes)
    else
        fe_rx
        COUNT=$FE_RX COUNT_T=$FE_T
        if [ "$dir" = g2p ]; then COUNT=$FE_TX; fi
    fi
}

# txpkts SIZE: testpmd's segment list for a frame of SIZE bytes: 2 KiB mbufs chained for a larger one.
txpkts() {
    local s=$1 out=''
    while ((s > 2048)); do out+=2048, s=$((s - 2048)); done
    echo "$out$s"
}

# measure DIR SIZE Q WHO: one figure; sets MPPS, OFFERED, CPUPM (back-end CPU s per million frames).
measure() {
    local dir=$1 size=$2 q=$3 who=$4 t0 t1 c0 c1 r0 r1 b0 b1 spid='' perfpid='' slog frames pps
    OFFERED=
    case $dir in
        g2p) fe_cmd "set txpkts $(txpkts "$size")" "set fwd txonly" start ;;
        p2g) fe_cmd "set fwd rxonly" start
             if [ "$KIND" != null ]; then # the null port is its own source
                 slog=$E2E_TMP/pktsend.$RANDOM.log
                 # afxdp native, 1 queue pair: only veth rx queue 0 has a socket. The veth hands a frame to the
                 # peer's rx queue of the tx queue it left by: with qdisc bypass, the sending CPU's (0).
                 local src_args=()
                 [ "$KIND/$XM/$q" = afxdp/native/1 ] && src_args=(-B)
                 spawn spid "$slog" taskset -c 0 ip netns exec "$NSF" "${PKTSEND[@]}" "${src_args[@]}" -i pf0 -s "$size" \
                     -T "$(awk -v a="$WARM" -v b="$SECS" 'BEGIN{print a + b + 1}')" -r "$CELL_RATE" -d "$FAR_MAC" -f 64
             fi ;;
        loop) fe_cmd "set txpkts $(txpkts "$size")" "set fwd io" "start tx_first" ;;
    esac
    sleep "$WARM"
    if [ "${PPS_PERF:-0}" = 1 ] && [ "$who" = vhostd ] && [ "$RUN" = 1 ]; then
        PERF_OUT=$E2E_TMP/perf-$CELL.data
        spawn perfpid "$E2E_TMP/perf.log" perf record -F 1999 -o "$PERF_OUT" -p "$BE_PID" -- sleep "$SECS"
    fi
    proc_snap "$E2E_TMP/snap0"
    c0=$(cpu_ticks "$BE_PID")
    COUNT_B=0
    count_frames
    r0=$COUNT t0=$COUNT_T b0=$COUNT_B
    sleep "$SECS"
    count_frames
    r1=$COUNT t1=$COUNT_T b1=$COUNT_B
    c1=$(cpu_ticks "$BE_PID")
    proc_snap "$E2E_TMP/snap1"
    others_pct "$E2E_TMP/snap0" "$E2E_TMP/snap1" "$(awk -v x="$t0" -v y="$t1" 'BEGIN{print y - x}')" \
        "$BE_PID" "$FE_PID" "$spid" "$perfpid"
    OTHERS_ALL+=("$OTHERS")
    [ "$OTHERS_TOP" = - ] || OTHERS_NAMES+=("$OTHERS_TOP")
    frames=$((r1 - r0))
    pps=$(awk -v f="$frames" -v x="$t0" -v y="$t1" 'BEGIN{printf "%.0f", f / (y - x)}')
    CPUPM=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v f="$frames" 'BEGIN{ if (f > 0) printf "%.3f", c / hz / (f / 1e6); else print "nan" }')
    MPPS=$(awk -v p="$pps" 'BEGIN{printf "%.4f", p / 1e6}')
    # guest->port: the far end's bytes per frame, to see that the frames are the cell's size (+ 4 for a VLAN-less
    # FCS-less veth: equal), e.g. that the front-end did build the chained frames asked for.
    FRAME_B=
    if [ "$dir" = g2p ] && [ "$KIND" != null ] && ((frames > 0)); then
        FRAME_B=$(((b1 - b0) / frames))
        ((FRAME_B == size)) || e2e_log "$who $GNAME g2p $size B: frames at the far end are $FRAME_B bytes on average"
    fi
    if [ -n "$spid" ]; then
        stop_pid "$spid"
        OFFERED=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' "$slog" | awk '{printf "%.4f", $1 / 1e6}')
    fi
    if [ -n "$perfpid" ]; then
        e2e_wait_for 10 eval "! _e2e_alive $perfpid" || true
        stop_pid "$perfpid"
        perf report -i "$PERF_OUT" --no-children --sort comm,dso,sym --stdio 2>/dev/null | grep -v '^$' |
            grep -E '^ +[0-9]' | head -40 >"$RES/perf-$CELL.txt" || true
    fi
    # Resident memory while the front-end is connected (its guest memory is mapped): keep the largest.
    local rss anon shm
    rss=$(mem_kb "$BE_PID" VmRSS) anon=$(mem_kb "$BE_PID" RssAnon) shm=$(mem_kb "$BE_PID" RssShmem)
    if ((rss > I_RSS)); then I_RSS=$rss; fi
    if ((anon > I_ANON)); then I_ANON=$anon; fi
    if ((shm > I_SHM)); then I_SHM=$shm; fi
    # Stop, then drain what is still in flight (loop frames circulate) so the next cell starts empty.
    fe_cmd stop "set fwd rxonly" start
    sleep 0.3
    fe_cmd stop
    LOAD1=$(cut -d' ' -f1 /proc/loadavg)
    LOADS+=("$LOAD1")
}

# idle_cpu: IDLE_PCT = back-end CPU percent over 2 s with the front-end connected and not forwarding.
idle_cpu() {
    local c0 c1
    c0=$(cpu_ticks "$BE_PID")
    sleep 2
    c1=$(cpu_ticks "$BE_PID")
    IDLE_PCT=$(awk -v c="$((c1 - c0))" -v hz="$HZ" 'BEGIN{printf "%.1f", c / hz / 2 * 100}')
}

# mem_kb PID FIELD: a line of /proc/PID/status in kB.
mem_kb() { awk -v f="$2:" '$1 == f {v = $2} END {print v + 0}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ping_rtt: RTT = "min median max" (us) of 50 pings, 10 ms apart, from the back-end namespace through the
# bridge and the tap port to the front-end in icmpecho mode (it answers ARP and ICMP echo for any address),
# and RTT_LOAD the same while pktsend sends PING_LOAD_PPS 64-byte frames/s (default 50000, within what both
# back-ends carry) the same way, to the guest, which drops them.
# The median, not the mean: on a shared machine a single stall of the front-end's CPU holds several replies.
PING_LOAD_PPS=${PING_LOAD_PPS:-50000}
PING=(ping)
command -v ping >/dev/null 2>&1 || PING=(busybox ping)
ping_rtt() {
    local out
    fe_cmd "set fwd icmpecho" start
    ip -n "$NSB" addr add 10.90.0.1/24 dev pbr0
    # A few pings first: ARP resolution (slow through the peer, hundreds of ms) stays out of the figure.
    ip netns exec "$NSB" "${PING[@]}" -q -c 3 -i 0.2 -W 2 10.90.0.2 >/dev/null 2>&1 || true
    RTT=$(ping_50)
    local lpid=''
    spawn lpid "$E2E_TMP/pktsend.load.log" taskset -c 0 ip netns exec "$NSF" "${PKTSEND[@]}" -i pf0 -s 64 -T 5 \
        -r "$PING_LOAD_PPS" -d "$FAR_MAC" -f 64
    sleep 0.5
    RTT_LOAD=$(ping_50)
    stop_pid "$lpid"
    ip -n "$NSB" addr flush dev pbr0
    fe_cmd stop
}

# ping_50: "min median max" (us) of 50 pings through the tap port.
ping_50() {
    local out r
    out=$(ip netns exec "$NSB" "${PING[@]}" -c 50 -i 0.01 -W 1 10.90.0.2 2>&1 | grep -o 'time=[0-9.]*' | cut -d= -f2) || true
    r=$(printf '%s\n' $out | sort -g | awk 'NF {a[++n] = $1 * 1000}
        END { if (n) printf "%.0f %.0f %.0f", a[1], (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2, a[n] }')
    [ -n "$r" ] || { e2e_log "ping through the tap port got no reply" >&2; r="nan nan nan"; }
    echo "$r"
}

# parse_group GROUP: sets KIND Q XM CELLSPEC, NOPEER and BUSY (1 or empty), PACKED and INORDER (0 or 1),
# LAYOUT (their name) and GNAME, the group's name in the output (-LAYOUT appended unless split).
parse_group() {
    local flags
    IFS=: read -r KIND Q XM CELLSPEC flags <<<"$1"
    GFLAGS=$flags
    NOPEER='' BUSY='' INTR='' NOURING='' JUMBO='' NOBUSYPOLL='' PACKED=0 INORDER=0
    NULL_SIZE=${CELLSPEC%%,*}
    NULL_SIZE=${NULL_SIZE#*/} # null: the port makes frames of one size, the first cell's
    [[ ,$flags, == *,nopeer,* ]] && NOPEER=1
    [[ ,$flags, == *,busy,* ]] && BUSY=1
    [[ ,$flags, == *,interrupt,* ]] && INTR=1
    [[ ,$flags, == *,nouring,* ]] && NOURING=1
    [[ ,$flags, == *,jumbo,* ]] && JUMBO=1
    [[ ,$flags, == *,nobusypoll,* ]] && NOBUSYPOLL=1
    [[ ,$flags, == *,packed,* ]] && PACKED=1
    [[ ,$flags, == *,inorder,* ]] && INORDER=1
    LAYOUT=$(layout_name "$PACKED" "$INORDER")
    PLAIN=$KIND${XM:+-$XM}-q$Q # the plain group's name: where @half finds the peer's maximum
    GNAME=$PLAIN${BUSY:+-busy}${INTR:+-interrupt}${NOURING:+-nouring}${JUMBO:+-mtu9000}${NOBUSYPOLL:+-nobusypoll}
    [[ ,$flags, == *,sweep,* ]] && GNAME+=-sweep
    [[ ,$flags, == *,half,* ]] && GNAME+=-half
    [ "$LAYOUT" = split ] || GNAME+=-$LAYOUT
}

declare -A VAL=() OFF=() CPU=() IDLE=() RSS=() ANON=() SHM=() RTTS=() NEGS=() GLAYOUT=()
CELLS=()

# ------------------------------------------------------------------ the runs
for g in $GROUPS_SEL; do
    parse_group "$g"
    IFS=, read -r -a GCELLS <<<"$CELLSPEC"
    if [ -n "$NOPEER" ] && [ -n "$JUMBO" ]; then
        e2e_log "group $GNAME: no dpdk-testpmd peer (libxdp's xsk program, which net_af_xdp uses, is not frags-aware: the kernel refuses it on a veth in native mode at MTU 9000)"
    elif [ -n "$NOPEER" ]; then
        e2e_log "group $GNAME: no dpdk-testpmd peer (net_af_xdp needs combined channels; veth has none)"
    fi
    for c in "${GCELLS[@]}"; do CELLS+=("$GNAME/$c"); done
    GLAYOUT[$GNAME]=$LAYOUT
    e2e_log "group $GNAME: ${GCELLS[*]}"
    mtu=1500
    [ -n "$JUMBO" ] && mtu=9000
    ip -n "$NSB" link set pp0 mtu $mtu
    ip -n "$NSF" link set pf0 mtu $mtu
    for RUN in $(seq 1 "$RUNS"); do
        order="vhostd peer"
        ((RUN % 2 == 0)) && order="peer vhostd"
        [ -n "$NOPEER" ] && order=vhostd
        if [ -z "$GFLAGS" ] && [ "$Q" = 1 ] && [[ " tap rawsock afxdp " == *" $KIND "* ]]; then
            for c in "${GCELLS[@]}"; do
                [ "${c%/*}" = g2p ] || continue
                ceiling "${c#*/}"
                VAL[$GNAME/$c,ceiling]+="$MPPS "
                echo "$STAMP,$GNAME,g2p,${c#*/},$Q,ceiling,$RUN,$MPPS,,,$(cut -d' ' -f1 /proc/loadavg),,$LAYOUT," >>"$CSV"
                e2e_log "run $RUN ceiling $GNAME g2p ${c#*/} B: $MPPS Mpps (pktsend alone into the port)"
            done
        fi
        for who in $order; do
            SOCK=$E2E_TMP/$who.sock
            be_start "$KIND" "$Q" "$XM" "$who" "$SOCK"
            I_RSS=0 I_ANON=0 I_SHM=0
            fe_open "$Q" "$SOCK"
            be_layout "$who"
            [[ " ${NEGS[$GNAME,$who]:-} " == *" $NEG "* ]] || NEGS[$GNAME,$who]+="$NEG "
            if [ "$RUN" = 1 ] && [ "$Q" = 1 ]; then
                idle_cpu
                IDLE[$GNAME,$who]=$IDLE_PCT
            fi
            for c in "${GCELLS[@]}"; do
                dir=${c%/*} size=${c#*/} CELL_RATE=$RATE
                if [[ $size == *@* ]]; then
                    CELL_RATE=${size#*@} size=${size%@*}
                    [ "$CELL_RATE" != half ] || CELL_RATE=$(half_rate "$PLAIN/$dir/$size")
                fi
                CELL=$GNAME-$dir-${c#*/}
                measure "$dir" "$size" "$Q" "$who"
                key=$GNAME/$c,$who
                VAL[$key]+="$MPPS " CPU[$key]+="$CPUPM " OFF[$key]+="${OFFERED:-} "
                echo "$STAMP,$GNAME,$dir,$size,$Q,$who,$RUN,$MPPS,${OFFERED:-},$CPUPM,$LOAD1,$OTHERS,$LAYOUT,$NEG" >>"$CSV"
                e2e_log "run $RUN $who $GNAME $dir $size B: $MPPS Mpps${OFFERED:+ (offered $OFFERED)}, $CPUPM CPU s/Mframe; others ${OTHERS}% ($OTHERS_TOP)"
            done
            if [ "$KIND" = tap ] && [ "$Q" = 1 ]; then
                ping_rtt
                read -r a b c <<<"$RTT"
                RTTS[$who,min]+="$a " RTTS[$who,avg]+="$b " RTTS[$who,max]+="$c "
                read -r a b c <<<"$RTT_LOAD"
                RTTS[$who,lmin]+="$a " RTTS[$who,lavg]+="$b " RTTS[$who,lmax]+="$c "
            fi
            RSS[$GNAME,$who]+="$I_RSS " ANON[$GNAME,$who]+="$I_ANON " SHM[$GNAME,$who]+="$I_SHM "
            echo "$STAMP,$GNAME,$who,$RUN,$I_RSS,$I_ANON,$I_SHM,${IDLE[$GNAME,$who]:-}" >>"$RESCSV"
            fe_close
            be_stop "$KIND"
        done
    done
done

# ------------------------------------------------------------------ report
imedian() { stats "$1" | awk '{printf "%.0f", $1}'; }
# stats3 "v1 v2 ...": median min max with 3 decimals
stats3() {
    printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {
        if (NR == 0) { print "nan nan nan"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f\n", m, a[1], a[NR] }'
}
PLOT=$E2E_TMP/plot.dat
: >"$PLOT"
echo
echo "Frames/s through the back-end, $RUNS runs x ${SECS}s (after ${WARM}s warm-up), Mpps median [min..max]"
echo "front-end: testpmd virtio-user on CPU 1; back-end + host kernel + port->guest source on CPU 0"
printf '%-36s %-24s %-24s %-6s %-8s %-8s %-13s %s\n' path vhostd peer ratio v-cpu/M p-cpu/M 'offered(v/p)' \
    'negotiated(v/p)'
# negotiated GROUP WHO: the layouts the back-end negotiated over the runs, "!" after one that was not asked for.
negotiated() {
    local n out=''
    for n in ${NEGS[$1,$2]:--}; do out+="${out:+,}$n"; [ "$n" = "${GLAYOUT[$1]}" ] || [ "$n" = - ] || out+='!'; done
    echo "$out"
}
# layout_ok GROUP WHO: every run of WHO negotiated the group's layout.
layout_ok() { [ "${NEGS[$1,$2]:-}" = "${GLAYOUT[$1]} " ]; }
for cell in "${CELLS[@]}"; do
    read -r vm vmin vmax < <(stats3 "${VAL[$cell,vhostd]}")
    read -r pm pmin pmax < <(stats3 "${VAL[$cell,peer]:-}")
    vc=$(median "${CPU[$cell,vhostd]}") pc=$(median "${CPU[$cell,peer]:-}")
    off=""
    if [ -n "$(echo "${OFF[$cell,vhostd]}" | tr -d ' ')" ]; then
        off="$(stats3 "${OFF[$cell,vhostd]}" | cut -d' ' -f1)/$(stats3 "${OFF[$cell,peer]:-}" | cut -d' ' -f1)"
    fi
    peercol="$pm [$pmin..$pmax]"
    [ -n "${VAL[$cell,peer]:-}" ] || peercol="n/a (no peer)" pm=0 pmin=0 pmax=0
    g=${cell%%/*}
    printf '%-36s %-24s %-24s %-6s %-8s %-8s %-13s %s\n' "$cell" "$vm [$vmin..$vmax]" "$peercol" \
        "$(ratio "$vm" "$pm")" "$vc" "$pc" "${off:--}" "$(negotiated "$g" vhostd)/$(negotiated "$g" peer)"
    echo "\"$cell\" $vm $vmin $vmax $pm $pmin $pmax" >>"$PLOT"
done
echo "(v-cpu/M, p-cpu/M: back-end CPU seconds per million frames; offered: pktsend Mpps, port->guest only;"
echo " negotiated: the ring layout each back-end negotiated, '!' when not the one the front-end asked for)"
# The port's ceiling, and each back-end's share of it.
CROWS=()
for cell in "${CELLS[@]}"; do
    [ -n "${VAL[$cell,ceiling]:-}" ] || continue
    read -r cm cmin cmax < <(stats3 "${VAL[$cell,ceiling]}")
    vm=$(median "${VAL[$cell,vhostd]}") pm=$(median "${VAL[$cell,peer]:-}")
    CROWS+=("$(printf '%-36s %-24s %-10s %-10s' "$cell" "$cm [$cmin..$cmax]" \
        "$(awk -v v="$vm" -v c="$cm" 'BEGIN{printf "%.0f%%", 100 * v / c}')" \
        "$(awk -v v="${pm:-0}" -v c="$cm" 'BEGIN{ if (v > 0) printf "%.0f%%", 100 * v / c; else print "-" }')")")
done
if [ "${#CROWS[@]}" -gt 0 ]; then
    echo
    echo "Port ceiling: pktsend alone on CPU 0 writing into the port as the back-end does (Mpps), and each back-end's"
    echo "median as a share of the ceiling's median:"
    printf '%-36s %-24s %-10s %-10s\n' path ceiling vhostd peer
    printf '%s\n' "${CROWS[@]}"
fi
# afxdp guest->port with large frames in Gbit/s (frame bytes x frames/s), 1500 bytes and jumbo.
gbit() { awk -v m="$1" -v s="$2" 'BEGIN{printf "%.2f", m * s * 8 / 1000}'; }
GROWS=()
for cell in "${CELLS[@]}"; do
    [[ $cell == afxdp-*/g2p/* ]] && ((${cell##*/} >= 1500)) || continue
    vm=$(median "${VAL[$cell,vhostd]}") pcol=n/a
    [ -z "${VAL[$cell,peer]:-}" ] || pcol=$(gbit "$(median "${VAL[$cell,peer]}")" "${cell##*/}")
    GROWS+=("$(printf '%-36s %-10s %-10s' "$cell" "$(gbit "$vm" "${cell##*/}")" "$pcol")")
done
if [ "${#GROWS[@]}" -gt 0 ]; then
    echo
    echo "afxdp guest->port, Gbit/s of Ethernet frames (median Mpps x frame bytes; mtu9000: MTU 9000, multi-buffer):"
    printf '%-36s %-10s %-10s\n' path vhostd peer
    printf '%s\n' "${GROWS[@]}"
fi
# Offered load in steps (sweep groups): delivered and loss, per back-end; and a chart of delivered against offered.
SWEEP=$E2E_TMP/sweep.dat
: >"$SWEEP"
SROWS=()
for cell in "${CELLS[@]}"; do
    [[ ${cell%%/*} == *-sweep && $cell == *@* ]] || continue
    row=$(printf '%-40s' "$cell")
    line="${cell%%/*} ${cell##*@}"
    for who in vhostd peer; do
        d=$(median "${VAL[$cell,$who]:-}") o=$(median "${OFF[$cell,$who]:-}")
        if [ -z "${VAL[$cell,$who]:-}" ]; then row+=$(printf ' %-26s' n/a); line+=" nan"; continue; fi
        row+=$(printf ' %-26s' "$(awk -v d="$d" -v o="$o" 'BEGIN { printf "%.3f of %.3f (loss %.1f%%)", d, o, (o > 0 ? 100 * (1 - d / o) : 0) }')")
        line+=" $d"
    done
    SROWS+=("$row")
    echo "$line" >>"$SWEEP"
done
if [ "${#SROWS[@]}" -gt 0 ]; then
    echo
    echo "Offered load in steps, port->guest (source on CPU 0 with the back-end): Mpps delivered of Mpps offered"
    echo "(the source's own measured rate), median of the runs; loss = 1 - delivered/offered:"
    printf '%-40s %-26s %-26s\n' 'path@offered frames/s' vhostd peer
    printf '%s\n' "${SROWS[@]}"
fi
# CPU below saturation (half groups): CPU seconds per million frames at the same offered load.
HROWS=()
for cell in "${CELLS[@]}"; do
    [[ ${cell%%/*} == *-half ]] || continue
    vc=$(median "${CPU[$cell,vhostd]:-}") pc=$(median "${CPU[$cell,peer]:-}")
    HROWS+=("$(printf '%-36s %-12s %-10s %-10s %-10s %s' "$cell" "$(stats3 "${OFF[$cell,vhostd]:-}" | cut -d' ' -f1)" \
        "$(stats3 "${VAL[$cell,vhostd]:-}" | cut -d' ' -f1)" "$vc" "$pc" "$(ratio "$vc" "$pc")")")
done
if [ "${#HROWS[@]}" -gt 0 ]; then
    echo
    echo "At half the peer's maximum (the peer's median on the unpaced cell, halved): CPU s per million frames"
    printf '%-36s %-12s %-10s %-10s %-10s %s\n' path offered delivered v-cpu/M p-cpu/M vhostd/peer
    printf '%s\n' "${HROWS[@]}"
fi
# Each layout against split on the same path, per back-end: only where that back-end negotiated both as asked.
LROWS=()
for cell in "${CELLS[@]}"; do
    g=${cell%%/*} l=${GLAYOUT[${cell%%/*}]}
    base=${g%-"$l"}          # the split group of the same path, and its cell
    bcell=$base/${cell#*/}
    [ "$l" != split ] && [ -n "${VAL[$bcell,vhostd]:-}" ] || continue
    row=$(printf '%-36s' "$cell")
    for who in vhostd peer; do
        if [ -z "${VAL[$cell,$who]:-}" ] || [ -z "${VAL[$bcell,$who]:-}" ]; then r=n/a
        elif layout_ok "$g" "$who" && layout_ok "$base" "$who"; then
            r=$(ratio "$(stats3 "${VAL[$cell,$who]}" | cut -d' ' -f1)" "$(stats3 "${VAL[$bcell,$who]}" | cut -d' ' -f1)")
        else r="- (not negotiated: $(negotiated "$g" "$who"))"; fi
        row+=$(printf ' %-32s' "$r")
    done
    LROWS+=("$row")
done
if [ "${#LROWS[@]}" -gt 0 ]; then
    echo
    echo "Ring layout against split rings, same path and run (ratio of the medians):"
    printf '%-36s %-32s %-32s\n' path vhostd peer
    printf '%s\n' "${LROWS[@]}"
fi
echo
echo "Per back-end instance (median over runs): RSS after traffic, idle CPU with a front-end connected"
printf '%-28s %-8s %10s %10s %10s %8s\n' group backend VmRSS_kB RssAnon RssShmem idle%
for g in $GROUPS_SEL; do
    parse_group "$g"
    for who in vhostd peer; do
        [ -n "$NOPEER" ] && [ $who = peer ] && continue
        printf '%-28s %-8s %10s %10s %10s %8s\n' "$GNAME" "$who" "$(imedian "${RSS[$GNAME,$who]}")" \
            "$(imedian "${ANON[$GNAME,$who]}")" "$(imedian "${SHM[$GNAME,$who]}")" "${IDLE[$GNAME,$who]:--}"
    done
done
echo "(vhostd RssShmem = the front-end's guest memory, a shared memfd it maps, counted in VmRSS, and for afxdp also"
echo " its UMEM, a memfd too (bench/afxdp_mem.sh tells them apart); its other memory is RssAnon. testpmd's RssShmem is mostly its own 256 MB --no-huge memfd plus the guest's pages it touched.)"
if [ -n "${RTTS[vhostd,avg]:-}" ]; then
    echo
    echo "ping RTT through the tap port (bridge -> tap -> back-end -> testpmd icmpecho), 50 pings 10 ms apart,"
    echo "us, median over runs of each run's min / median / max:"
    for who in vhostd peer; do
        printf '  %-8s %s / %s / %s   with %s frames/s to the guest: %s / %s / %s\n' "$who" \
            "$(imedian "${RTTS[$who,min]}")" "$(imedian "${RTTS[$who,avg]}")" "$(imedian "${RTTS[$who,max]}")" \
            "$PING_LOAD_PPS" "$(imedian "${RTTS[$who,lmin]}")" "$(imedian "${RTTS[$who,lavg]}")" \
            "$(imedian "${RTTS[$who,lmax]}")"
    done
fi
echo
[ "$BE_RETRIES" -eq 0 ] || echo "back-end starts retried after EBUSY (AF_XDP queue still held by the previous socket): $BE_RETRIES"
echo "machine load average during the runs: median $(median "${LOADS[*]}"), max $(printf '%s\n' "${LOADS[@]}" | sort -g | tail -1) (2 CPUs)"
read -r om omin omax < <(stats "${OTHERS_ALL[*]}")
echo "CPU taken by processes outside this benchmark during the windows (100 = one of the 2 CPUs):"
echo "  median ${om}%, min ${omin}%, max ${omax}%; most often: $(printf '%s\n' "${OTHERS_NAMES[@]:-}" | tr ',' '\n' |
    sed 's/:.*//' | grep -v '^$' | sort | uniq -c | sort -rn | head -4 | awk '{printf "%s%s (%d windows)", (NR > 1 ? ", " : ""), $2, $1}')"

if command -v gnuplot >/dev/null 2>&1; then
    gnuplot <<EOF || e2e_log "gnuplot failed"
set terminal pngcairo size 1400,700 noenhanced
set output "$RES/pps.png"
set title "vhostd vs dpdk-testpmd back-end, Mpps (median, bars: min..max), $RUNS runs, $STAMP"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set ylabel "Mpps"
set xtics rotate by -35 font ",9"
set key top right
set bmargin 9
set rmargin 8
set grid ytics
plot "$PLOT" using 2:3:4:xtic(1) title "vhostd", "" using 5:6:7 title "dpdk-testpmd"
EOF
    [ -f "$RES/pps.png" ] && e2e_log "chart: $RES/pps.png"
    if [ -s "$SWEEP" ]; then
        plots=()
        for g in $(awk '{ print $1 }' "$SWEEP" | sort -u); do
            plots+=("\"< grep '^$g ' $SWEEP\" using (\$2/1e6):3 with linespoints lw 2 title \"vhostd $g\"")
            plots+=("\"< grep '^$g ' $SWEEP\" using (\$2/1e6):4 with linespoints lw 2 dt 2 title \"dpdk-testpmd $g\"")
        done
        gnuplot <<EOF || e2e_log "gnuplot (sweep) failed"
set terminal pngcairo size 1000,600 noenhanced
set output "$RES/pps-sweep.png"
set title "port->guest under growing offered load, median of $RUNS runs, $STAMP"
set xlabel "offered Mpps (the source's target)"
set ylabel "delivered Mpps"
set grid
set key top left
plot $(IFS=,; echo "${plots[*]}")
EOF
        [ -f "$RES/pps-sweep.png" ] && e2e_log "chart: $RES/pps-sweep.png"
    fi
fi
e2e_pass "pps bench done; CSV in $CSV"
