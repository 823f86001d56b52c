#!/bin/bash
# Configuration and start-up errors, as an operator meets them:
#   - every config/examples/*.conf passes "vhostd --check-config";
#   - a bad configuration (unknown key, bad value, missing socket, key of another backend kind, unknown backend,
#     global key in a port...) exits 2 under both --check-config and --config, with one message naming
#     FILE:LINE and the key;
#   - bad command-line ports exit 2 naming the key;
#   - ports that cannot be opened (rawsock/afxdp on a missing interface, tap on a non-tap interface, a socket path
#     that is a file or in a missing directory, an unknown user) exit 1 with a clear message: no crash, no hang,
#     no socket file left behind.
# Needs nothing but the binaries; no root (every failure here happens before a capability would matter).
# Exit 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/common.sh"
[ -x "$VHOSTD" ] || skip "$VHOSTD not built (run make)"
test_tmpdir config

failures=0
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run EXPECTED_RC DESCRIPTION ARGS...: runs vhostd (10 s at most), keeps its output in $out.
run() {
    local want=$1 what=$2
    shift 2
    out=$(timeout -k 2 10 "$VHOSTD" "$@" 2>&1 </dev/null)
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        bad "$what: vhostd hung (killed after 10 s)"
        return 1
    fi
    if [ $rc -ge 128 ]; then
        bad "$what: vhostd died from signal $((rc - 128)): $out"
        return 1
    fi
    if grep -qE 'Sanitizer|runtime error|Segmentation|Aborted|core dumped' <<<"$out"; then
        bad "$what: crash report in the output: $out"
        return 1
    fi
    if [ $rc -ne "$want" ]; then
        bad "$what: exit $rc, expected $want: $out"
        return 1
    fi
    return 0
}

# --- the shipped examples ----------------------------------------------------------------------------------------
n=0
for f in "$ROOT"/config/examples/*.conf; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    run 0 "example ${f##*/}" --check-config "$f" || continue
    if [[ $out =~ ^"$f: OK, "[0-9]+" port"s?$ ]]; then
        ok "example ${f##*/}: $out"
    else
        bad "example ${f##*/}: unexpected output: $out"
    fi
done
[ $n -gt 0 ] || bad "no config/examples/*.conf found"

# --- bad files -----------------------------------------------------------------------------------------------------
# case NAME LINE KEY FRAGMENT TEXT: TEXT (printf format) must be refused with
#   vhostd: FILE:LINE: key 'KEY': ...FRAGMENT...
case_file() {
    local name=$1 line=$2 key=$3 frag=$4 text=$5 f mode
    f=$T/$name.conf
    # shellcheck disable=SC2059
    printf "$text" >"$f"
    for mode in --check-config --config; do
        run 2 "$name ($mode)" "$mode" "$f" || continue
        if [[ $out != *"$f:$line: key '$key': "*"$frag"* ]]; then
            bad "$name ($mode): expected \"$f:$line: key '$key': ...$frag...\", got: $out"
        elif [ "$(wc -l <<<"$out")" -ne 1 ]; then
            bad "$name ($mode): more than one line of output: $out"
        elif [ $mode = --config ]; then
            ok "$name: ${out#vhostd: "$T"/}"
        fi
    done
}
S='socket = /run/vhostd/t.sock\n'
case_file unknown-key 3 bogus_key 'unknown key in a [port] section' "[port p]\n${S}bogus_key = 1\n"
case_file typo 4 queuess "did you mean 'queues'" "# comment\n[port p]\n${S}queuess = 2\n"
case_file bad-queues 3 queues "'99' is out of range (1..16)" "[port p]\n${S}queues = 99\n"
case_file bad-number 3 burst "'lots' is not a number" "[port p]\n${S}burst = lots\n"
case_file bad-mode 3 socket_mode "is not an octal number" "[port p]\n${S}socket_mode = 0999\n"
case_file bad-mac 3 mac 'is not a MAC address' "[port p]\n${S}mac = 52:54:00:zz:00:01\n"
case_file multicast-mac 3 mac 'multicast' "[port p]\n${S}mac = 01:00:5e:00:00:01\n"
case_file bad-bool 4 promisc 'is not a boolean' "[port p]\n${S}backend = rawsock\npromisc = maybe\nifname = eth0\n"
case_file bad-level 2 log_level 'expected err, warn, info or debug' "[global]\nlog_level = loud\n[port p]\n${S}"
case_file bad-cpus 3 cpus 'backwards' "[port p]\n${S}cpus = 3-1\n"
case_file twice 4 queues 'given twice in this section (first on line 3)' "[port p]\n${S}queues = 1\nqueues = 2\n"
case_file missing-socket 4 socket 'required unless fd_name is given' "[global]\nlog_level = info\n\n[port p]\nbackend = loopback\n"
case_file wrong-kind 4 promisc 'not valid with backend = loopback (only for rawsock)' "[port p]\n${S}backend = loopback\npromisc = yes\n"
case_file wrong-kind-tap 5 xdp_mode 'not valid with backend = tap (only for afxdp)' "[port p]\n${S}backend = tap\nifname = t0\nxdp_mode = skb\n"
case_file unknown-backend 3 backend "unknown backend 'vde'" "[port p]\n${S}backend = vde\n"
case_file missing-ifname 1 ifname 'required with backend = rawsock' "[port p]\n${S}backend = rawsock\n"
case_file global-in-port 3 user 'belongs in [global]' "[port p]\n${S}user = vhostd\n"
case_file port-in-global 2 queues 'belongs in a [port NAME] section' "[global]\nqueues = 2\n[port p]\n${S}"
case_file client-fd-name 4 fd_name 'not valid with mode = client' "[port p]\n${S}mode = client\nfd_name = net0\n"
case_file copy-both 8 zero_copy 'contradicts force_copy' "[port p]\n${S}backend = afxdp\nifname = eth0\nforce_copy = yes\nqueues = 1\nburst = 8\nzero_copy = yes\n"

# Errors about the file as a whole: no line, no key.
printf '[global]\nlog_level = info\n' >"$T/no-port.conf"
if run 2 "no port" --check-config "$T/no-port.conf"; then
    if [[ $out == "vhostd: $T/no-port.conf: no [port NAME] section"* ]]; then
        ok "no port: ${out#vhostd: "$T"/}"
    else
        bad "no port: unexpected message: $out"
    fi
fi
if run 2 "missing file" --check-config "$T/nonexistent.conf"; then
    if [[ $out == "vhostd: $T/nonexistent.conf: cannot open: No such file or directory" ]]; then
        ok "missing file: ${out#vhostd: "$T"/}"
    else
        bad "missing file: unexpected message: $out"
    fi
fi
printf '[port p]\nsocket = /run/vhostd/t.sock\nqueues = 1\x01\n' >"$T/ctrl.conf"
if run 2 "control byte" --check-config "$T/ctrl.conf"; then
    if [[ $out == "vhostd: $T/ctrl.conf:3: "*"control character"* ]]; then
        ok "control byte: ${out#vhostd: "$T"/}"
    else
        bad "control byte: unexpected message: $out"
    fi
fi

# --- bad command lines ---------------------------------------------------------------------------------------------
# case_cli KEY FRAGMENT ARGS...
case_cli() {
    local key=$1 frag=$2
    shift 2
    run 2 "command line $*" "$@" || return
    if [[ $out == "vhostd: key '$key': "*"$frag"* ]]; then
        ok "command line $*: ${out#vhostd: }"
    else
        bad "command line $*: expected \"key '$key': ...$frag...\", got: $out"
    fi
}
case_cli nosuch 'unknown key' -s "$T/s.sock" -o nosuch=1
case_cli backend "unknown backend 'bogus'" -s "$T/s.sock" -b bogus
case_cli queues "'0' is out of range" -s "$T/s.sock" -q 0
case_cli ifname 'required with backend = rawsock' -s "$T/s.sock" -b rawsock
case_cli promisc 'not valid with backend = loopback' -s "$T/s.sock" -o promisc=yes
if run 2 "no port at all"; then
    if [[ $out == *"nothing to do"* ]]; then ok "no port at all: $(head -n1 <<<"$out")"; else bad "no port at all: $out"; fi
fi
if run 2 "--config with --socket" -s "$T/s.sock" --config "$ROOT/config/examples/loopback.conf"; then
    if [[ $out == *"exclude each other"* ]]; then ok "--config with --socket refused"; else bad "--config with --socket: $out"; fi
fi
if run 2 "unknown option" --no-such-option; then
    ok "unknown option refused"
fi

# --- ports that cannot be opened: exit 1, clear message, nothing left behind -------------------------------------
# case_run FRAGMENT ARGS...  (the port's socket is $T/s.sock)
case_run() {
    local frag=$1
    shift
    rm -f "$T/s.sock"
    run 1 "start $*" "$@" || return
    if [[ $out != *"$frag"* ]]; then
        bad "start $*: expected \"$frag\" in: $out"
    elif [ -e "$T/s.sock" ]; then
        bad "start $*: left $T/s.sock behind"
    else
        ok "start $*: $(grep -v '^<6>' <<<"$out" | tail -n1)"
    fi
}
case_run 'cannot open rawsock port nosuchif0 (no such interface): No such device' -s "$T/s.sock" -b rawsock -i nosuchif0
case_run 'cannot open rawsock port nosuchif0 (no such interface): No such device' -s "$T/s.sock" -b rawsock -i nosuchif0 -q 4
case_run 'cannot open afxdp port nosuchif0 (no such interface): ' -s "$T/s.sock" -b afxdp -i nosuchif0
# lo exists and is not a tap: TUNSETIFF refuses it (without root, opening the tap fails earlier: also exit 1).
case_run 'cannot open tap port lo (an interface of that name exists and is not a tap' -s "$T/s.sock" -b tap -i lo
touch "$T/file"
rm -f "$T/s.sock"
if run 1 "socket path is a file" -s "$T/file"; then
    if [[ $out == *"$T/file exists and is not a socket"* ]] && [ -f "$T/file" ]; then
        ok "socket path is a file: refused, file kept"
    else
        bad "socket path is a file: $out"
    fi
fi
case_run "cannot listen on $T/nodir/s.sock: No such file or directory" -s "$T/nodir/s.sock"
case_run "user 'nosuchuser' does not exist" -s "$T/s.sock" -u nosuchuser
case_run "socket_owner: no user 'nosuchuser'" -s "$T/s.sock" -o socket_owner=nosuchuser
printf '[global]\ncontrol_socket = %s/nodir/ctl\n[port p]\nsocket = %s/s.sock\n' "$T" "$T" >"$T/ctl.conf"
case_run "cannot listen on control socket $T/nodir/ctl" --config "$T/ctl.conf"
# A port that only has fd_name (socket activation), started without inherited sockets: there is nothing to listen
# on. LISTEN_PID is not vhostd's pid, so vhostd must ignore these variables, as sd_listen_fds() does.
printf '[port p]\nfd_name = net0\n' >"$T/fd.conf"
out=$(LISTEN_PID=1 LISTEN_FDS=1 LISTEN_FDNAMES=net0 timeout -k 2 3 "$VHOSTD" --config "$T/fd.conf" 2>&1 </dev/null)
rc=$?
if [ $rc -eq 1 ] && [[ $out == *"no inherited socket named 'net0'"* ]]; then
    ok "fd_name without socket activation: $(grep -v '^<6>' <<<"$out" | tail -n1)"
else
    bad "fd_name without socket activation: exit $rc: $out"
fi

echo
if [ $failures -gt 0 ]; then
    echo "FAIL: $failures check(s) failed"
    exit 1
fi
echo "PASS"
exit 0
