#!/bin/bash
# Socket activation as vhostd@.socket/vhostd@.service do it, with systemd-socket-activate standing in for systemd:
# two VM instances, each with its own listening socket(s), configuration and vhostd process, started by their
# first connection. Checks:
#   - before the first connection no vhostd runs (the activator process is still systemd-socket-activate and has no
#     children), and connecting to one instance does not start the other;
#   - the first connection execs vhostd in place (same PID, as systemd's LISTEN_PID requires), vhostd answers
#     GET_FEATURES on the inherited socket, and each instance's vhostctl shows its own ports;
#   - fd_name maps sockets to ports by name, not by position (vm2 passes "mgmt:data" to ports listed data, mgmt);
#   - sd_notify: READY=1 and STATUS= only after activation, WATCHDOG=1 while running, STOPPING=1 on SIGTERM;
#   - SIGTERM: exit 0, and the inherited socket files stay (they belong to the activator, as to systemd).
# Needs: systemd-socket-activate (Debian package systemd), jq, a C compiler if build/tests/vu_ping is not built.
# No root needed (loopback ports). Exit 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/common.sh"

command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed (Debian package systemd)"
command -v jq >/dev/null || skip "jq not installed"
[ -x "$VHOSTD" ] && [ -x "$VHOSTCTL" ] || skip "$VHOSTD or $VHOSTCTL not built (run make)"

test_tmpdir activation

VU_PING=$O/tests/vu_ping
if [ ! -x "$VU_PING" ]; then
    command -v "${CC:-cc}" >/dev/null || skip "$VU_PING not built and no C compiler"
    VU_PING=$T/vu_ping
    "${CC:-cc}" -std=gnu11 -O2 -o "$VU_PING" "$ROOT/tests/integration/vu_ping.c" || fail "cannot build vu_ping"
fi

# What a pid runs: its executable when readable, else its comm. vhostd clears its dumpable flag, which makes
# /proc/PID/exe readable by root only; comm stays readable (truncated to 15 characters).
exe_of() { readlink "/proc/$1/exe" 2>/dev/null || cat "/proc/$1/comm" 2>/dev/null; }
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr -s ' \n' ' '; }
VHOSTD_COMM=$(basename "$VHOSTD" | cut -c1-15)
is_vhostd() {
    local exe
    exe=$(exe_of "$1")
    [ "$exe" = "$(readlink -f "$VHOSTD")" ] || [ "$exe" = "$VHOSTD_COMM" ]
}
not_activated() { # PID NAME: the activator still waits, and nothing runs below it
    local exe
    exe=$(exe_of "$1")
    kill -0 "$1" 2>/dev/null || fail "$2: the activator (pid $1) died"
    [[ $exe = */systemd-socket-activate || $exe = systemd-socket- ]] ||
        fail "$2: pid $1 is $exe before any connection, not the activator"
    [ -z "$(children_of "$1" | tr -d ' ')" ] || fail "$2: the activator has children before any connection: $(children_of "$1")"
}

# --- vm1: one port, with sd_notify and the watchdog, as Type=notify + WatchdogSec= would give it ---------------
cat >"$T/vm1.conf" <<EOF
[global]
control_socket = $T/vm1.ctl
[port net0]
fd_name = net0
backend = loopback
queues = 2
EOF
# --- vm2: two ports; the activator passes them as "mgmt:data", the configuration lists data first ------------
cat >"$T/vm2.conf" <<EOF
[global]
control_socket = $T/vm2.ctl
[port data]
fd_name = data
backend = loopback
queues = 1
[port mgmt]
fd_name = mgmt
backend = loopback
queues = 1
EOF
for vm in vm1 vm2; do
    "$VHOSTD" --check-config "$T/$vm.conf" >/dev/null || fail "$vm.conf does not pass --check-config"
done

"$VU_PING" --notify "$T/vm1.notify" 30000 >"$T/vm1-notify.out" 2>"$T/vm1-notify.log" &
NOTIFY_PID=$!
PIDS+=("$NOTIFY_PID")
wait_for 5 test -S "$T/vm1.notify" || fail "notify listener did not bind $T/vm1.notify"

systemd-socket-activate -l "$T/vm1.sock" --fdname=net0 \
    -E NOTIFY_SOCKET="$T/vm1.notify" -E WATCHDOG_USEC=200000 \
    "$VHOSTD" --config "$T/vm1.conf" >"$T/vm1.log" 2>&1 &
VM1=$!
PIDS+=("$VM1")
systemd-socket-activate -l "$T/vm2-mgmt.sock" -l "$T/vm2-data.sock" --fdname=mgmt:data \
    "$VHOSTD" --config "$T/vm2.conf" >"$T/vm2.log" 2>&1 &
VM2=$!
PIDS+=("$VM2")

for s in vm1.sock vm2-mgmt.sock vm2-data.sock; do
    wait_for 5 test -S "$T/$s" || fail "the activator did not create $T/$s"
done
sleep 0.3 # give a wrongly eager activator time to show itself
not_activated "$VM1" vm1
not_activated "$VM2" vm2
[ ! -e "$T/vm1.ctl" ] && [ ! -e "$T/vm2.ctl" ] || fail "a control socket exists before activation"
[ ! -s "$T/vm1-notify.out" ] || fail "notifications before activation: $(cat "$T/vm1-notify.out")"
ok "both instances listen, no vhostd running yet (pids $VM1 $VM2 are systemd-socket-activate, no children)"

# --- activate vm1 ------------------------------------------------------------------------------------------------
f1=$("$VU_PING" "$T/vm1.sock" 5000) || fail "vm1 did not answer GET_FEATURES"
wait_for 5 is_vhostd "$VM1" || fail "vm1: pid $VM1 is $(exe_of "$VM1") after the first connection, not vhostd"
ok "vm1 activated by its first connection: pid $VM1 is now vhostd, GET_FEATURES = $f1"
not_activated "$VM2" vm2
ok "vm2 still not activated"

wait_for 5 grep -qx 'READY=1' "$T/vm1-notify.out" || fail "vm1 sent no READY=1"
grep -q '^STATUS=1 port ready' "$T/vm1-notify.out" || fail "vm1 sent no STATUS=: $(cat "$T/vm1-notify.out")"
wait_for 5 grep -qx 'WATCHDOG=1' "$T/vm1-notify.out" || fail "vm1 sent no WATCHDOG=1 (WATCHDOG_USEC=200000)"
ok "vm1 notified READY=1, STATUS= and WATCHDOG=1"

wait_for 5 test -S "$T/vm1.ctl" || fail "vm1 control socket missing"
j1=$("$VHOSTCTL" -s "$T/vm1.ctl" --json) || fail "vhostctl on vm1 failed"
echo "$j1" | jq -e '.ports | length == 1 and .[0].name == "net0" and .[0].backend == "loopback"
    and .[0].queue_pairs == 2 and .[0].connections == 1' >/dev/null ||
    fail "vm1 vhostctl --json unexpected: $j1"
"$VHOSTCTL" -s "$T/vm1.ctl" | grep -q '^port net0: loopback' || fail "vm1 vhostctl text does not show port net0"
ok "vm1 vhostctl shows port net0 (2 queue pairs, 1 connection)"

# --- activate vm2 through its second socket: the one named "data" -----------------------------------------------
f2=$("$VU_PING" "$T/vm2-data.sock" 5000) || fail "vm2 did not answer GET_FEATURES on vm2-data.sock"
wait_for 5 is_vhostd "$VM2" || fail "vm2: pid $VM2 is $(exe_of "$VM2") after the first connection, not vhostd"
[ "$VM1" != "$VM2" ] && is_vhostd "$VM1" || fail "vm1 no longer runs vhostd"
ok "vm2 activated by a connection to its data socket: pid $VM2 is vhostd, GET_FEATURES = $f2"

wait_for 5 test -S "$T/vm2.ctl" || fail "vm2 control socket missing"
conns() { "$VHOSTCTL" -s "$T/vm2.ctl" --json | jq -r '[.ports[] | "\(.name)=\(.connections)"] | join(" ")'; }
c=$(conns)
[ "$c" = "data=1 mgmt=0" ] || fail "vm2: the connection to vm2-data.sock reached the wrong port: $c"
"$VU_PING" "$T/vm2-mgmt.sock" 5000 >/dev/null || fail "vm2 did not answer on vm2-mgmt.sock"
wait_for 5 test "$(conns)" = "data=1 mgmt=1" || fail "vm2: after a connection to vm2-mgmt.sock: $(conns)"
ok "vm2: fd_name maps mgmt:data to the right ports whatever their order ($(conns))"

# Each instance sees only its own ports.
"$VHOSTCTL" -s "$T/vm1.ctl" --json | jq -e '[.ports[].name] == ["net0"]' >/dev/null || fail "vm1 lists foreign ports"
"$VHOSTCTL" -s "$T/vm2.ctl" --json | jq -e '[.ports[].name] == ["data", "mgmt"]' >/dev/null ||
    fail "vm2 lists unexpected ports"
ok "two vhostd processes ($VM1, $VM2), each with its own ports"

# --- stop ----------------------------------------------------------------------------------------------------------
for vm in 1 2; do
    pid_var=VM$vm
    pid=${!pid_var}
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    [ $rc -eq 0 ] || fail "vm$vm: vhostd exited $rc on SIGTERM"
done
PIDS=("$NOTIFY_PID")
wait "$NOTIFY_PID" || fail "vm1 sent no STOPPING=1 on SIGTERM"
PIDS=()
grep -q '^STATUS=stopping' "$T/vm1-notify.out" || fail "no STATUS=stopping"
for s in vm1.sock vm2-mgmt.sock vm2-data.sock; do
    [ -S "$T/$s" ] || fail "vhostd removed the inherited socket $s (it belongs to the activator)"
done
[ ! -e "$T/vm1.ctl" ] && [ ! -e "$T/vm2.ctl" ] || fail "control sockets left behind"
ok "SIGTERM: both exit 0, STOPPING=1 sent, inherited sockets left in place, control sockets removed"
echo "PASS"
exit 0
