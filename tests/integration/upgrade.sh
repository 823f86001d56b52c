#!/bin/bash
# Upgrades under traffic (issue #16). A test front-end (tests/integrity, fakefe) keeps checksummed frames flowing
# while `vhostctl upgrade` hands every port and connection to a new vhostd, UPGRADES times (default 100) per port
# kind (loopback with 2 queue pairs, tap, rawsock on a veth, afxdp with 2 queue pairs on a veth): every frame must arrive once and intact, the connection must never drop, each old process must be gone,
# and the new one must hold the same kinds of fds, threads and shared mappings as the first (a fresh start; looked
# at after every 10th upgrade and the last).
# Then failure injection, under traffic too: a new binary that exits, one that never answers, one that reads
# another state version, one that cannot be executed, and an upgrade by SIGUSR2. After each the old process
# carries on and says why; no frame is lost. Exit 0 pass, 1 fail, 77 skip.
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
VHOSTD=${VHOSTD_BIN:-$PWD/$O/vhostd}
VHOSTCTL=$PWD/$O/vhostctl
TOOL=$PWD/$O/tests/integrity
STATE2=$PWD/$O/tests/vhostd-state2
UPGRADES=${UPGRADES:-100}
[ -n "${VHOSTD_TSAN:-}" ] && UPGRADES=${UPGRADES_TSAN:-20}
# Half under ASan (CI's hour): the normal build's run has the 100.
[[ $VHOSTD == */build-asan/* ]] && UPGRADES=${UPGRADES_ASAN:-50}
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (tap, network namespaces)"; exit 77; }
for f in "$TOOL" "$VHOSTCTL" "$STATE2"; do [ -x "$f" ] || { echo "no $f (make tests)"; exit 1; }; done

TMP=$(mktemp -d)
NS=vhupg-$$
PID=
TOOLPID=
cleanup() {
    [ -n "$TOOLPID" ] && kill "$TOOLPID" 2>/dev/null
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    sleep 0.3
    ip netns del "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

fail=0
bad() { echo "FAIL: $*"; fail=1; }

# What a process holds, by kind: fd targets with numbers and inodes dropped, thread count, shared mappings.
holdings() {
    local p=$1
    {
        for fd in /proc/"$p"/fd/*; do readlink "$fd"; done | sed -E 's/[0-9]+/N/g' | sort | uniq -c
        echo "threads $(awk '/^Threads:/ {print $2}' /proc/"$p"/status)"
        echo "shared mappings $(awk '$2 ~ /s$/' /proc/"$p"/maps | wc -l)"
    } 2>/dev/null
}

# Whether pid $1 runs (an exited process waiting to be reaped by whoever adopted it does not).
running() { [ -e /proc/"$1" ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status 2>/dev/null; }

# One upgrade to binary $1; PID becomes the new process. Returns 1 (with the reason) when it did not happen.
upgrade() {
    local out old=$PID before after
    before=$(frames_total)
    out=$(ip netns exec "$NS" "$VHOSTCTL" -s "$CTL" upgrade "$1" 2>&1) || { echo "$out"; return 1; }
    PID=$(sed -n 's/^upgraded: vhostd pid \([0-9]*\) .*/\1/p' <<<"$out")
    [ -n "$PID" ] || { echo "unexpected answer: $out"; PID=$old; return 1; }
    for _ in $(seq 100); do running "$old" || break; sleep 0.02; done
    if running "$old"; then echo "old vhostd $old still runs after the upgrade"; return 1; fi
    # The counters carry over: the new process starts from the old one's figures, not from 0.
    after=$(frames_total)
    if [ "$after" -lt "$before" ]; then echo "frames counted fell from $before to $after across the upgrade"; return 1; fi
    return 0
}

# Frames counted on every vring so far (vhostctl --prometheus).
frames_total() {
    ip netns exec "$NS" "$VHOSTCTL" -s "$CTL" --prometheus |
        awk '/^vhostd_vring_frames_total/ { s += $NF } END { printf "%d\n", s }'
}

# name queues vhostd-args... -- integrity-args...
run_case() {
    local name=$1 queues=$2; shift 2
    local vargs=() iargs=() n
    while [ "$1" != -- ]; do vargs+=("$1"); shift; done; shift
    iargs=("$@")
    SOCK=$TMP/$name.sock CTL=$TMP/$name.ctl LOG=$TMP/$name.log
    local stop=$TMP/$name.stop
    echo "== $name: $UPGRADES upgrades under traffic"
    ip netns exec "$NS" "$VHOSTD" -s "$SOCK" -C "$CTL" -q "$queues" "${vargs[@]}" >"$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 50); do [ -S "$SOCK" ] && [ -S "$CTL" ] && break; sleep 0.1; done
    for dev in vtap0 ia ib; do ip -n "$NS" link set "$dev" up 2>/dev/null; done
    ip netns exec "$NS" "$TOOL" --socket "$SOCK" --frames 50000000 --queues "$queues" --until "$stop" \
        "${iargs[@]}" >"$TMP/$name.out" 2>&1 &
    TOOLPID=$!
    sleep 1
    local first
    first=$(holdings "$PID")
    local directions=1 per
    [[ " ${iargs[*]} " == *" --ifname "* ]] && directions=2
    per=$((UPGRADES / directions))
    local t0 t1 slowest=0 polls=0 logged
    for d in $(seq "$directions"); do
        for n in $(seq "$per"); do
            t0=$(date +%s%N)
            if ! upgrade "$VHOSTD"; then bad "$name: upgrade $n of direction $d"; break 2; fi
            t1=$(date +%s%N)
            if [ "$name" = afxdp ] && [ "$d$n" = 11 ]; then
                # An adopted AF_XDP port holds the XSKMAP only, not libxdp's program objects (BTF, program,
                # its data map, mapped shared): the same sockets, and from here on the same as this one.
                sleep 0.5
                sockets() { grep -E 'socket|memfd|eventfd' <<<"$1"; }
                [ "$(sockets "$(holdings "$PID")")" = "$(sockets "$first")" ] ||
                    { bad "$name: the first upgraded vhostd holds other sockets than a fresh one";
                      diff <(sockets "$first") <(sockets "$(holdings "$PID")"); break 2; }
                first=$(holdings "$PID")
            fi
            [ $(((t1 - t0) / 1000000)) -gt "$slowest" ] && slowest=$(((t1 - t0) / 1000000))
            # Every 10th (a look takes ~0.3 s) and the last: it finishes starting after it answered.
            [ $((n % 10)) -eq 0 ] || [ "$n" = "$per" ] || continue
            for _ in $(seq 30); do
                now=$(holdings "$PID")
                [ "$now" = "$first" ] && break
                polls=$((polls + 1))
                sleep 0.1
            done
            if [ "$now" != "$first" ]; then
                bad "$name: after upgrade $n the new vhostd holds other things than a fresh one"
                diff <(echo "$first") <(echo "$now"); break 2
            fi
        done
        # Before the test front-end ends (and disconnects): the connection must not have dropped until here.
        [ "$d" = "$directions" ] && logged=$(cat "$LOG")
        touch "$stop"
        for _ in $(seq 600); do [ -e "$stop" ] || break; sleep 0.05; done
    done
    wait "$TOOLPID" || bad "$name: frames lost, duplicated or corrupted across the upgrades"
    TOOLPID=
    cat "$TMP/$name.out"
    grep -q 'front-end disconnected\|closing the connection' <<<"${logged:-}" && bad "$name: the connection dropped"
    grep -E 'AddressSanitizer|runtime error|ThreadSanitizer' "$LOG" && bad "$name: sanitizer report"
    local pause
    pause=$(sed -n 's/.*the rings run again \([0-9.]*\) ms after.*/\1/p' "$LOG" | sort -g | tail -n 1)
    echo "$name: $(grep -c 'serves every port now' "$LOG") upgrades done; longest pause of the rings ${pause:-?} ms;" \
        "slowest upgrade ${slowest} ms (vhostctl upgrade to its answer); $polls looks at a new process before it" \
        "held what the first did"
}

# Stops the serving (upgraded) vhostd with SIGTERM: it must stop as cleanly as one started by hand.
stop_daemon() {
    kill "$PID"; for _ in $(seq 50); do running "$PID" || break; sleep 0.1; done
    grep -q 'signal 15: stopping' "$LOG" || bad "$name: the upgraded vhostd did not stop cleanly on SIGTERM"
    PID=
}

run_case loopback 2 -b loopback -- --loopback
stop_daemon
run_case tap 1 -b tap -i vtap0 -- --ifname vtap0
stop_daemon
ip -n "$NS" link add ia type veth peer name ib
run_case rawsock 1 -b rawsock -i ia -- --ifname ib
stop_daemon
# AF_XDP, 2 queue pairs on one shared UMEM, skb mode (veth): the sockets, rings and UMEM go on in the new process.
ip -n "$NS" link del ia
ip -n "$NS" link add ia numrxqueues 2 numtxqueues 2 type veth peer name ib numrxqueues 2 numtxqueues 2
run_case afxdp 2 -b afxdp -i ia -o xdp_mode=skb -- --ifname ib
stop_daemon

# ---- failure injection, under traffic: the old process must carry on ----
echo "== failures"
name=failures SOCK=$TMP/f.sock CTL=$TMP/f.ctl LOG=$TMP/f.log
ip netns exec "$NS" "$VHOSTD" -s "$SOCK" -C "$CTL" -q 2 -b loopback >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && [ -S "$CTL" ] && break; sleep 0.1; done
ip netns exec "$NS" "$TOOL" --socket "$SOCK" --frames 50000000 --queues 2 --loopback --until "$TMP/f.stop" \
    >"$TMP/f.out" 2>&1 &
TOOLPID=$!
sleep 0.5
printf '#!/bin/sh\nexit 3\n' >"$TMP/exits"
printf '#!/bin/sh\nexec sleep 600\n' >"$TMP/hangs"
printf 'not a program\n' >"$TMP/notexec"
chmod +x "$TMP/exits" "$TMP/hangs"
expect_refusal() { # binary, what the answer must say
    local before=$PID out
    out=$(ip netns exec "$NS" "$VHOSTCTL" -s "$CTL" upgrade "$1" 2>&1) && bad "upgrade to $1 succeeded: $out"
    grep -q -- "$2" <<<"$out" || bad "upgrade to $1: the answer does not say '$2': $out"
    echo "  $(basename "$1"): $out"
    kill -0 "$before" 2>/dev/null || bad "the old vhostd died after a failed upgrade to $1"
}
expect_refusal "$TMP/exits" "exited with status 3"
expect_refusal "$TMP/hangs" "did not say hello"
expect_refusal "$STATE2" "reads state version 2, this one writes version 1"
expect_refusal "$TMP/notexec" "cannot execute"
# SIGUSR2: the binary it was started from.
old=$PID
kill -USR2 "$PID"
for _ in $(seq 100); do grep -q 'SIGUSR2: upgraded' "$LOG" && break; sleep 0.1; done
grep -q 'SIGUSR2: upgraded' "$LOG" || bad "SIGUSR2 did not upgrade"
PID=$(sed -n 's/.*SIGUSR2: upgraded: vhostd pid \([0-9]*\) .*/\1/p' "$LOG" | tail -1)
[ -n "$PID" ] || PID=$old
logged=$(cat "$LOG")
touch "$TMP/f.stop"
wait "$TOOLPID" || bad "failures: frames lost, duplicated or corrupted"
TOOLPID=
cat "$TMP/f.out"
grep -q 'front-end disconnected\|closing the connection' <<<"$logged" && bad "failures: the connection dropped"
grep -E 'AddressSanitizer|runtime error|ThreadSanitizer' "$LOG" && bad "failures: sanitizer report"
stop_daemon

[ $fail -eq 0 ] && echo "upgrade: every frame delivered once across every upgrade; failed upgrades changed nothing" ||
    { echo "upgrade: FAILED"; for l in "$TMP"/*.log; do echo "--- $l"; tail -n 30 "$l"; done; }
exit $fail
