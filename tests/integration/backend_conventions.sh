#!/bin/bash
# QEMU's conventions for vhost-user back-end programs (docs/interop/vhost-user.rst, "Backend program conventions"):
#   - --print-capabilities prints one JSON document (type "net") and exits 0, ignoring every other option;
#   - what it says is what a front-end is offered: GET_FEATURES on a loopback port (1 and 2 queue pairs) and on a tap
#     port (root) equals the base features, plus MQ with queue pairs > 1, plus the kind's offloads;
#   - --socket-path PATH is --socket PATH; --fd FDNUM serves a listening socket handed over (two front-ends in turn)
#     and a connected one (one front-end; vhostd exits 0 when it hangs up); --fd with --socket-path is refused;
#   - the descriptor config/qemu/50-vhostd-net.json.in (installed to /usr/share/qemu/vhost-user/) is type "net" and
#     names the binary.
# Needs jq; the tap part needs root. Exit 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/common.sh"

command -v jq >/dev/null || skip "jq not installed"
[ -x "$VHOSTD" ] || skip "$VHOSTD not built (run make)"
VU_PING=$O/tests/vu_ping
[ -x "$VU_PING" ] || skip "$VU_PING not built (run make tests)"
test_tmpdir conventions

# --- capabilities --------------------------------------------------------------------------------------------------
caps=$("$VHOSTD" --print-capabilities --backend nosuchkind --socket /nonexistent/x) ||
    fail "--print-capabilities exited $? (other options must be ignored)"
jq -e '.type == "net" and (.port_kinds | length) >= 4 and .max_queue_pairs >= 1' >/dev/null <<<"$caps" ||
    fail "capabilities are not the expected JSON: $caps"
for k in loopback tap rawsock afxdp; do
    jq -e --arg k "$k" '.port_kinds | map(.kind) | index($k) != null' >/dev/null <<<"$caps" ||
        fail "capabilities do not list port kind $k"
done
ok "--print-capabilities: JSON, type net, $(jq -r '.port_kinds | map(.kind) | join(" ")' <<<"$caps")"

hex() { printf '0x%x' "$1"; }
base=$(jq -r .virtio_features_mask <<<"$caps")
mq=$(jq -r .virtio_features_if_multiqueue_mask <<<"$caps")
offloads() { jq -r --arg k "$1" '.port_kinds[] | select(.kind == $k) | .offloads_mask' <<<"$caps"; }

# offered_on KIND QUEUES [vhostd options...]: GET_FEATURES from a fresh vhostd with that port (run through
# ${RUN_IN[@]}, e.g. inside a network namespace).
RUN_IN=()
offered_on() {
    local kind=$1 q=$2 sock=$T/$1-$2.sock f
    shift 2
    "${RUN_IN[@]}" "$VHOSTD" -b "$kind" -q "$q" -s "$sock" "$@" >"$T/vhostd-$kind-$q.log" 2>&1 </dev/null &
    local pid=$!
    PIDS+=("$pid")
    wait_for 10 test -S "$sock" || fail "vhostd ($kind, $q queue pairs) did not listen"
    f=$("$VU_PING" "$sock") || fail "no GET_FEATURES reply from the $kind port"
    kill "$pid"
    wait "$pid" 2>/dev/null
    echo "$f"
}

got=$(offered_on loopback 1)
want=$(hex $((base | $(offloads loopback))))
[ "$got" = "$want" ] || fail "loopback, 1 queue pair: offered $got, capabilities say $want"
got=$(offered_on loopback 2)
want=$(hex $((base | mq | $(offloads loopback))))
[ "$got" = "$want" ] || fail "loopback, 2 queue pairs: offered $got, capabilities say $want"
ok "loopback port offers exactly what the capabilities say (1 and 2 queue pairs: $got)"

# --- --socket-path and --fd ------------------------------------------------------------------------------------------
"$VHOSTD" --socket-path "$T/sp.sock" >"$T/vhostd-sp.log" 2>&1 </dev/null &
PIDS+=($!)
wait_for 10 test -S "$T/sp.sock" || fail "--socket-path: vhostd did not listen on $T/sp.sock"
"$VU_PING" "$T/sp.sock" >/dev/null || fail "--socket-path: no GET_FEATURES reply"
ok "--socket-path PATH listens on PATH"

"$VU_PING" --listen "$T/fd.sock" "$VHOSTD" --fd 3 -q 2 >"$T/vhostd-fd-listen.log" 2>&1 </dev/null &
PIDS+=($!)
wait_for 10 grep -q ready "$T/vhostd-fd-listen.log" || fail "--fd (listening): vhostd did not start"
for i in 1 2; do
    got=$("$VU_PING" "$T/fd.sock") || fail "--fd (listening): front-end $i got no reply"
done
[ "$got" = "$(hex $((base | mq)))" ] || fail "--fd (listening): offered $got"
grep -q "listening on an inherited socket" "$T/vhostd-fd-listen.log" || fail "--fd (listening): no log line for it"
ok "--fd with a listening socket serves front-ends in turn"

"$VU_PING" --pair "$VHOSTD" --fd 3 >"$T/vhostd-fd-pair.log" 2>&1 </dev/null ||
    fail "--fd (connected): no reply, or vhostd did not exit 0 after the front-end hung up"
grep -q "handed-over connection ended" "$T/vhostd-fd-pair.log" || fail "--fd (connected): no log line for the end"
ok "--fd with a connected socket: one front-end, then vhostd exits 0"

if "$VHOSTD" --fd 3 --socket-path "$T/x.sock" 3</dev/null >"$T/both.log" 2>&1; then
    fail "--fd with --socket-path was accepted"
fi
grep -q "exclude each other" "$T/both.log" || fail "--fd with --socket-path: no clear error: $(cat "$T/both.log")"
"$VHOSTD" --fd 3 3</dev/null >"$T/notsock.log" 2>&1 && fail "--fd on a non-socket was accepted"
grep -q "not an open socket" "$T/notsock.log" || fail "--fd on a non-socket: no clear error: $(cat "$T/notsock.log")"
ok "--fd with --socket-path, and --fd on a file, are refused with a clear error"

# --- the descriptor QEMU and libvirt look for -------------------------------------------------------------------------
desc=$ROOT/config/qemu/50-vhostd-net.json.in
if [ -e "$desc" ]; then
    sed 's|@SBINDIR@|/usr/sbin|g' "$desc" | jq -e '.type == "net" and .binary == "/usr/sbin/vhostd"' >/dev/null ||
        fail "$desc is not a vhost-user descriptor of type net for /usr/sbin/vhostd"
    ok "descriptor: type net, binary /usr/sbin/vhostd"
else
    fail "$desc missing"
fi

# --- the tap port (root), in a namespace of its own so that its tap goes away with it --------------------------------
[ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ] || skip "tap part needs root and /dev/net/tun; everything before it passed"
NS=conv-$$
cleanup_extra() { ip netns del "$NS" 2>/dev/null; }
ip netns add "$NS" || fail "cannot create a network namespace"
RUN_IN=(ip netns exec "$NS")
got=$(offered_on tap 2 -i vtap-conv) || exit 1
all=$((base | mq | $(offloads tap)))
[ $((got & ~all)) -eq 0 ] || fail "tap port offers $got, more than the capabilities' $(hex $all)"
# Which offloads a tap takes depends on the kernel (UFO): the base and MQ must be there.
[ $((got & (base | mq))) -eq $((base | mq)) ] || fail "tap port offers $got, less than the base and MQ"
ok "tap port offers $got, within the capabilities ($(hex $all))"
echo "PASS"
