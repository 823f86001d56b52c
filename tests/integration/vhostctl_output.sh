#!/bin/bash
# vhostctl against a running vhostd (loopback port, 2 queue pairs, control socket):
#   - text output lists the port; "status" is the default command;
#   - --json is one valid JSON document with the documented keys, and vrings == [] before a front-end;
#   - with a dpdk-testpmd virtio-user front-end (io forwarding, --tx-first, so frames circle through the loopback
#     port), 4 vrings (rx/tx per queue pair) that are started and count frames, in JSON and text;
#   - after the front-end leaves, vrings == [] again and the connection is counted;
#   - an unknown command exits 2, a missing control socket exits 1, each with a clear message.
# Needs jq; the front-end part needs root and dpdk-testpmd (Debian package dpdk), and is skipped (exit 77, after
# the rest passed) without them. Exit 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/common.sh"

command -v jq >/dev/null || skip "jq not installed"
[ -x "$VHOSTD" ] && [ -x "$VHOSTCTL" ] || skip "$VHOSTD or $VHOSTCTL not built (run make)"

DPDK_PREFIX=vhostctl-test-$$
cleanup_extra() { [ "$(id -u)" -ne 0 ] || rm -rf "/var/run/dpdk/$DPDK_PREFIX"; }
test_tmpdir vhostctl

CTL=$T/vhostd.ctl
SOCK=$T/vu.sock
"$VHOSTD" -b loopback -q 2 -s "$SOCK" -C "$CTL" >"$T/vhostd.log" 2>&1 </dev/null &
VHOSTD_PID=$!
PIDS+=("$VHOSTD_PID")
wait_for 10 test -S "$CTL" || fail "vhostd did not create its control socket"
[ "$(stat -c %a "$CTL")" = 600 ] || fail "control socket mode is $(stat -c %a "$CTL"), expected 600"

# --- before a front-end ---------------------------------------------------------------------------------------------
text=$("$VHOSTCTL" -s "$CTL") || fail "vhostctl (text) exited $?"
echo "$text" | sed 's/^/    /'
grep -q "^port net0: loopback, socket $SOCK (server), 2 queue pairs, no front-end, 0 connections$" <<<"$text" ||
    fail "text output does not list the port as expected"
[ "$("$VHOSTCTL" -s "$CTL" status)" = "$text" ] || fail "'vhostctl status' differs from plain 'vhostctl'"
ok "text output lists port net0; 'status' is the default"

json=$("$VHOSTCTL" -s "$CTL" --json) || fail "vhostctl --json exited $?"
jq -e . >/dev/null <<<"$json" || fail "--json output is not JSON: $json"
[ "$("$VHOSTCTL" -s "$CTL" -j)" = "$json" ] || fail "-j differs from --json"
jq -e '(.ports | length) == 1 and (.ports[0] | (.vrings == [] and .connected == false and .connections == 0
        and .name == "net0" and .backend == "loopback" and .ifname == "" and .mode == "server"
        and .queue_pairs == 2 and .kernel_drops == null))' >/dev/null <<<"$json" ||
    fail "unexpected JSON before a front-end: $json"
jq -e --arg s "$SOCK" '.ports[0].socket == $s' >/dev/null <<<"$json" || fail "JSON socket is not $SOCK: $json"
want='["backend","connected","connections","ifname","kernel_drops","mode","name","port_down","port_faults","port_recoveries","queue_pairs","socket","vrings"]'
jq -e --argjson w "$want" '.ports[0] | keys | contains($w)' >/dev/null <<<"$json" ||
    fail "JSON port lacks some of $want: $(jq -c '.ports[0] | keys' <<<"$json")"
ok "--json: valid, keys $(jq -c '.ports[0] | keys' <<<"$json"), vrings == []"

# --- vhostctl's own errors ----------------------------------------------------------------------------------------------
err=$("$VHOSTCTL" -s "$CTL" bogus 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "unknown command: exit $rc, expected 2: $err"
grep -q "unknown command 'bogus'" <<<"$err" || fail "unknown command: unclear message: $err"
ok "unknown command: exit 2 ($(head -n1 <<<"$err"))"

err=$("$VHOSTCTL" --no-such-option 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "unknown option: exit $rc, expected 2: $err"
ok "unknown option: exit 2"

"$VHOSTCTL" --help | grep -q '^Usage: vhostctl' || fail "vhostctl --help prints no usage"

err=$("$VHOSTCTL" -s "$T/missing.ctl" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "missing socket: exit $rc, expected 1: $err"
grep -q "cannot connect to $T/missing.ctl: No such file or directory" <<<"$err" ||
    fail "missing socket: unclear message: $err"
ok "missing control socket: exit 1 ($err)"

: >"$T/not-a-socket"
err=$("$VHOSTCTL" -s "$T/not-a-socket" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "plain file as control socket: exit $rc, expected 1: $err"
ok "plain file as control socket: exit 1 ($err)"

long=$T/$(printf 'x%.0s' $(seq 120))
err=$("$VHOSTCTL" -s "$long" 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "too long socket path: exit $rc, expected 2: $err"
ok "too long socket path: exit 2 ($err)"

# --- with a front-end -----------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "front-end part needs root (dpdk-testpmd); everything before it passed"
command -v dpdk-testpmd >/dev/null || skip "dpdk-testpmd not installed (Debian package dpdk); everything before it passed"

# io forwarding on a single port sends what it receives back out; --tx-first starts the circle, and the loopback
# port returns every frame on the same queue pair. Without hugepages (see docs/test notes).
dpdk-testpmd -l 0-1 --no-huge -m 256 --no-pci --file-prefix="$DPDK_PREFIX" \
    --vdev "net_virtio_user0,path=$SOCK,queues=2" -- \
    --total-num-mbufs=16384 --disable-link-check --forward-mode=io --auto-start --stats-period 3600 \
    --rxq=2 --txq=2 --tx-first >"$T/testpmd.log" 2>&1 </dev/null &
TESTPMD_PID=$!
PIDS+=("$TESTPMD_PID")

all_counting() {
    "$VHOSTCTL" -s "$CTL" --json | jq -e '.ports[0].vrings | length == 4 and all(.frames > 0)' >/dev/null
}
wait_for 30 all_counting || fail "the 4 vrings did not all count frames within 30 s: $("$VHOSTCTL" -s "$CTL" --json)"

json=$("$VHOSTCTL" -s "$CTL" --json) || fail "vhostctl --json exited $?"
jq -e '.ports[0] | .connected == true and .connections == 1 and (.vrings | length) == 4' >/dev/null <<<"$json" ||
    fail "unexpected JSON with a front-end: $json"
jq -e '[.ports[0].vrings[] | [.index, .queue_pair, .direction]] == [[0,0,"rx"],[1,0,"tx"],[2,1,"rx"],[3,1,"tx"]]' \
    >/dev/null <<<"$json" || fail "vring index/queue_pair/direction wrong: $json"
jq -e '.ports[0].vrings | all(.started and .enabled and .size > 0 and .broken == false and .frames > 0
        and .bytes >= .frames * 60)' >/dev/null <<<"$json" || fail "vrings not started/counting: $json"
want='["broken","bytes","calls","direction","drops","enabled","frames","index","kicks","queue_pair","size","started"]'
jq -e --argjson w "$want" '.ports[0].vrings | all(keys | contains($w))' >/dev/null <<<"$json" ||
    fail "a vring lacks some of $want: $json"
jq -e '.ports[0] | (.features | test("^0x[0-9a-f]+$")) and (.mtu | type) == "number"' >/dev/null <<<"$json" ||
    fail "features/mtu missing or malformed: $json"
jq -r '.ports[0].vrings[] | "    vring \(.index) \(.direction) \(.queue_pair): frames \(.frames) bytes \(.bytes) drops \(.drops) kicks \(.kicks)"' <<<"$json"
ok "with a front-end: connected, 4 vrings (rx/tx x 2 queue pairs), all started and counting"

text=$("$VHOSTCTL" -s "$CTL") || fail "vhostctl (text) exited $?"
grep -q "^port net0: loopback, socket $SOCK (server), 2 queue pairs, connected, 1 connection$" <<<"$text" ||
    fail "text output with a front-end: port line unexpected: $text"
n=$(grep -cE '^  vring [0-3] \((rx|tx) [01]\): started .*frames [1-9]' <<<"$text")
[ "$n" -eq 4 ] || fail "text output shows $n counting vrings, expected 4: $text"
ok "text output shows the connection and 4 counting vrings"

# Counters only grow while the front-end runs.
f1=$(jq '[.ports[0].vrings[].frames] | add' <<<"$json")
sleep 0.5
f2=$("$VHOSTCTL" -s "$CTL" --json | jq '[.ports[0].vrings[].frames] | add')
[ "$f2" -gt "$f1" ] || fail "frame counters did not grow: $f1 then $f2"
ok "counters grow ($f1 -> $f2 frames)"

kill -TERM "$TESTPMD_PID"
wait "$TESTPMD_PID"
PIDS=("$VHOSTD_PID")
gone() { "$VHOSTCTL" -s "$CTL" --json | jq -e '.ports[0] | .connected == false and .vrings == []' >/dev/null; }
wait_for 10 gone || fail "after the front-end left: $("$VHOSTCTL" -s "$CTL" --json)"
"$VHOSTCTL" -s "$CTL" --json | jq -e '.ports[0].connections == 1' >/dev/null || fail "connection not counted"
"$VHOSTCTL" -s "$CTL" | grep -q 'no front-end, 1 connection$' || fail "text output after disconnect unexpected"
ok "after the front-end left: not connected, vrings == [], 1 connection counted"

kill -TERM "$VHOSTD_PID"
wait "$VHOSTD_PID"
rc=$?
PIDS=()
[ $rc -eq 0 ] || fail "vhostd exited $rc on SIGTERM"
[ ! -e "$CTL" ] || fail "vhostd left its control socket behind"
err=$("$VHOSTCTL" -s "$CTL" 2>&1)
[ $? -eq 1 ] || fail "vhostctl after vhostd stopped: expected exit 1: $err"
ok "vhostd stopped: control socket removed, vhostctl exits 1"
echo "PASS"
exit 0
