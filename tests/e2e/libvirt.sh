#!/bin/bash
# A guest started by libvirt (not by our own QEMU command line) on vhostd's tap port:
# config/examples/libvirt-vhostuser.xml (memfd shared memory, vhostuser interface in client mode with
# reconnect, 2 queue pairs, vectors=0 through <qemu:override>) as a transient domain; ping both ways,
# iperf3 both ways; what virsh reports for the interface; vhostd's counters on both queue pairs;
# vhostd restarted under the running domain (QEMU reconnects); virsh destroy. Exit 0 pass, 1 fail, 77 skip.
#
# The test runs its own libvirtd, as root, in a private mount namespace: a tmpfs on /run, and
# /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt bound to
# directories under $E2E_TMP. A libvirtd already running on the machine is neither seen nor disturbed
# (libvirt's paths are compiled in; two daemons on the same /run/libvirt would fight over
# /run/libvirt/qemu/driver.pid), and nothing is left behind in those directories. Its qemu.conf is
# Debian's default except: no cgroups (the host's cgroup tree stays untouched), QEMU's output to a
# file (no virtlogd). QEMU still runs as libvirt-qemu with dynamic_ownership, as on a real host: vhostd
# hands it the socket with socket_owner/socket_mode, since libvirt does not relabel vhost-user sockets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

e2e_init
e2e_require_tun
e2e_require_cmd libvirtd virsh unshare iperf3 jq
QEMU_USER=libvirt-qemu
id "$QEMU_USER" >/dev/null 2>&1 || e2e_skip "no user $QEMU_USER (install libvirt-daemon-system)"
QEMU_GROUP=$(id -gn "$QEMU_USER")
for d in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    [ -d $d ] || e2e_skip "no $d (install libvirt-daemon-system)"
done

HOST_IP=10.84.0.1
GUEST_IP=10.84.0.2
DOM=vhostd-e2e-$$
MAC=52:54:00:$(printf '%02x:%02x' $(($$ & 255)) $((($$ >> 8) & 255))):01
TEMPLATE=$E2E_DIR/../../config/examples/libvirt-vhostuser.xml
LV=$E2E_TMP/libvirt       # libvirtd's private directories
VM=$E2E_TMP/vm            # what QEMU (user libvirt-qemu) opens: kernel, initrd, console log, socket
SOCK=$VM/vhost.sock
CTL=$E2E_TMP/vhostd.ctl
export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$LV/run/libvirt-sock"

# QEMU runs as libvirt-qemu: it must be able to reach $VM (search only on the way down).
chmod 0711 "$E2E_TMP"
mkdir -m 0711 "$VM"
mkdir -p "$LV"/{etc,run,lib,cache,log}
# libvirt chowns the kernel and initrd to libvirt-qemu while the domain runs: use copies, not the
# shared guest cache.
cp "$GUEST_KERNEL" "$VM/vmlinuz"
cp "$GUEST_INITRD" "$VM/initrd.img"

cat >"$LV/etc/libvirtd.conf" <<'EOF'
# Only root reaches this daemon (socket mode 0700), so no authentication on top.
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
EOF
cat >"$LV/etc/qemu.conf" <<'EOF'
# Debian's defaults (user libvirt-qemu, dynamic_ownership = 1, security driver probed) except:
# QEMU's stdout/stderr to /var/log/libvirt/qemu/NAME.log without virtlogd,
stdio_handler = "file"
# and no cgroups, so that the host's cgroup tree is left alone.
cgroup_controllers = [ ]
EOF

# ---- libvirtd
# `ip netns exec`-style: unshare and sh exec, so the PID is libvirtd's own; stopped by PID at exit.
# Its transient domain outlives it, so the domain is destroyed first (registered after, runs before).
e2e_spawn LIBVIRTD --log "$E2E_TMP/libvirtd.log" unshare --mount --propagation private sh -ec '
    LV=$1
    mount -t tmpfs -o mode=0755 vhostd-e2e-run /run
    mkdir /run/libvirt
    mount --bind "$LV/run" /run/libvirt
    mount --bind "$LV/etc" /etc/libvirt
    mount --bind "$LV/lib" /var/lib/libvirt
    mount --bind "$LV/cache" /var/cache/libvirt
    mount --bind "$LV/log" /var/log/libvirt
    exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid' libvirtd "$LV"
t0=$(date +%s.%N)
lv_up() { _e2e_alive "$LIBVIRTD" || { cat "$E2E_TMP/libvirtd.log" >&2; e2e_fail "libvirtd exited"; }
          virsh version >/dev/null 2>&1; }
e2e_wait_for 60 lv_up || { cat "$E2E_TMP/libvirtd.log" >&2; e2e_fail "libvirtd did not answer within 60 s"; }
e2e_log "libvirtd $LIBVIRTD up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s:" \
    "$(virsh version | grep -E 'Running hypervisor|Using library' | tr -s ' ' | paste -sd ';')"

# ---- vhostd: tap port in a namespace, server mode, 2 queue pairs; the socket handed to QEMU's user.
netns_create NS
vhostd_start VHOSTD "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2 -u nobody --seccomp \
    -o socket_mode=0660 -o socket_owner="$QEMU_USER:$QEMU_GROUP"
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_log "socket: $(stat -c '%A %U:%G' "$SOCK")"
# One iperf3 server per direction: a client that connects while the server still closes the previous
# test can get "unable to receive control message: Connection reset by peer" (seen 1 run in 14 here).
for port in 5201 5202; do
    e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server-$port.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP" -p $port
    netns_wait_listen "$NS" $port 10 || e2e_fail "iperf3 server on port $port did not start"
done

# ---- the domain
# The guest pings the host from each vCPU (the guest's XPS sends from CPU n on queue n, and iperf3 runs on
# one CPU: without the pinned pings queue pair 1 carried nothing in half the runs), runs iperf3 both ways,
# says VM-TRAFFIC-DONE and stays up for the checks.
GCMD="taskset -c 0 ping -c 3 -W 2 $HOST_IP && taskset -c 1 ping -c 3 -W 2 $HOST_IP && iperf3 -c $HOST_IP -t 3 -P 4 && iperf3 -c $HOST_IP -p 5202 -t 3 -P 4 -R"
GCMD="$GCMD; echo VM-TRAFFIC-DONE=\$?; sleep 600"
CMDLINE="console=ttyS0 quiet panic=-1 vm_ip=$GUEST_IP/24 vm_queues=2 vm_cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
BIOS=/usr/share/qemu/qboot.rom
sed -e "s|@NAME@|$DOM|; s|@KERNEL@|$VM/vmlinuz|; s|@INITRD@|$VM/initrd.img|" \
    -e "s|@CMDLINE@|$CMDLINE|; s|@MAC@|$MAC|; s|@SOCKET@|$SOCK|; s|@SERIAL_LOG@|$VM/serial.log|" \
    -e "s|@BIOS@|$BIOS|" "$TEMPLATE" >"$VM/domain.xml"
[ -f $BIOS ] || sed -i '/<loader /d' "$VM/domain.xml"
left=$(grep -o '@[A-Z_]*@' "$VM/domain.xml" | grep -vx '@PLACEHOLDERS@' || true)
[ -z "$left" ] || e2e_fail "placeholders left in the domain XML: $left"
: >"$VM/serial.log"

# The lib's vm_wait_* helpers read these; vm_dump_log shows the console and libvirt's QEMU log on failure.
VM_LOG[g1]=$VM/serial.log
VM_DIR[g1]=$VM
ln -s "$LV/log/qemu/$DOM.log" "$VM/qemu.log"
# destroy_domain: virsh destroy, then QEMU by its PID if libvirt could not (libvirtd gone or hung).
destroy_domain() {
    local pidf=$LV/run/qemu/$DOM.pid pid=
    [ -s "$pidf" ] && pid=$(cat "$pidf")
    timeout 30 virsh destroy "$DOM" >/dev/null 2>&1 || true
    [ -n "$pid" ] && e2e_kill "$pid" 5
    return 0
}
e2e_on_exit destroy_domain
VM_T0[g1]=$(date +%s.%N)
# With reconnect, a QEMU that cannot connect (socket permissions) waits forever instead of failing.
timeout 60 virsh create "$VM/domain.xml" || { tail -n 20 "$E2E_TMP/libvirtd.log" >&2; e2e_fail "virsh create failed"; }
VM_PID[g1]=$(cat "$LV/run/qemu/$DOM.pid")
e2e_log "domain $DOM: QEMU pid ${VM_PID[g1]}, user $(ps -o user:16= -p "${VM_PID[g1]}")"

vm_wait_boot g1 60 || e2e_fail "guest did not boot"
e2e_log "guest booted after ${VM_BOOT_S[g1]} s"
vm_wait_marker g1 'VM-NET-UP' 30 || e2e_fail "guest network did not come up"
e2e_wait_for 20 ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null || e2e_fail "host cannot ping the guest"
ip netns exec "$NS" busybox ping -c 3 -W 2 "$GUEST_IP" | tail -n 2
vm_wait_marker g1 '^VM-TRAFFIC-DONE=' 90 || e2e_fail "guest traffic did not finish"
LOG=$(vm_log g1)
grep -aq '^VM-TRAFFIC-DONE=0' "$LOG" || e2e_fail "guest ping or iperf3 failed ($(grep -a '^VM-TRAFFIC-DONE=' "$LOG"))"
grep -aq '3 packets transmitted, 3 packets received' "$LOG" || e2e_fail "guest ping did not get 3 replies"
mapfile -t sums < <(grep -a 'SUM.*receiver' "$LOG")
[ ${#sums[@]} -ge 2 ] || e2e_fail "missing iperf3 summaries"
e2e_log "iperf3 guest->host: $(echo "${sums[0]}" | grep -oE '[0-9.]+ [KMG]?bits/sec')"
e2e_log "iperf3 host->guest: $(echo "${sums[1]}" | grep -oE '[0-9.]+ [KMG]?bits/sec')"

# ---- what libvirt says about the interface
IFL=$(virsh domiflist "$DOM") || e2e_fail "virsh domiflist failed"
echo "$IFL"
echo "$IFL" | awk -v s="$SOCK" -v m="$MAC" '$2 == "vhostuser" && $3 == s && $4 == "virtio" && $5 == m {f = 1}
                                            END {exit !f}' ||
    e2e_fail "domiflist does not show the vhostuser interface on $SOCK with MAC $MAC"
[ "$(virsh domif-getlink "$DOM" "$MAC" | awk '{print $2}')" = up ] || e2e_fail "domif-getlink: link not up"
# libvirt 9.0 reads a vhostuser interface's counters only from Open vSwitch (ovs-vsctl ... list
# Interface), so for any other back-end domifstat fails with "Interface not found"; vhostctl has them.
if st=$(virsh domifstat "$DOM" "$MAC" 2>&1); then
    echo "$st"
    echo "$st" | awk '$2 == "rx_packets" && $3 > 0 {r = 1} $2 == "tx_packets" && $3 > 0 {t = 1} END {exit !(r && t)}' ||
        e2e_fail "domifstat shows no traffic"
elif echo "$st" | grep -q 'Interface not found'; then
    e2e_log "domifstat $MAC: $(echo "$st" | tr '\n' ' ')(libvirt asks Open vSwitch for vhostuser counters)"
else
    e2e_fail "domifstat: $st"
fi

# ---- vhostd's view: MQ negotiated, frames on all four vrings
J=$(vhostctl_json "$CTL")
echo "$J" | jq -c '.ports[0] | {connected, queue_pairs, features, protocol_features,
                               vrings: [.vrings[] | {index, frames, drops, broken}]}'
[ "$(echo "$J" | jq -r '.ports[0].connected')" = true ] || e2e_fail "vhostd: front-end not connected"
[ "$(echo "$J" | jq -r '.ports[0].queue_pairs')" = 2 ] || e2e_fail "vhostd: not 2 queue pairs"
feat=$(echo "$J" | jq -r '.ports[0].features')
pfeat=$(echo "$J" | jq -r '.ports[0].protocol_features')
(( (feat >> 22) & 1 )) || e2e_fail "VIRTIO_NET_F_MQ not negotiated ($feat)"
(( pfeat & 1 )) || e2e_fail "VHOST_USER_PROTOCOL_F_MQ not negotiated ($pfeat)"
for v in 0 1 2 3; do
    f=$(echo "$J" | jq -r ".ports[0].vrings[$v].frames")
    [ "$f" -gt 0 ] || e2e_fail "vring $v carried no frames: both queue pairs should"
    [ "$(echo "$J" | jq -r ".ports[0].vrings[$v].broken")" = false ] || e2e_fail "vring $v broken"
done

# ---- <reconnect>: vhostd restarted (an upgrade) under the running domain; traffic resumes.
e2e_kill "$VHOSTD"
rm -f "$CTL"
t0=$(date +%s.%N)
vhostd_start VHOSTD2 "$CTL" --netns "$NS" -s "$SOCK" -b tap -i vtap0 -q 2 -u nobody --seccomp \
    -o socket_mode=0660 -o socket_owner="$QEMU_USER:$QEMU_GROUP"
netns_set_ip "$NS" vtap0 "$HOST_IP/24"
e2e_wait_for 40 ip netns exec "$NS" busybox ping -c 1 -W 1 "$GUEST_IP" >/dev/null ||
    e2e_fail "no traffic after vhostd restarted (QEMU did not reconnect?)"
e2e_log "vhostd restarted: guest reachable again after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s"
[ "$(vhostctl_json "$CTL" | jq -r '.ports[0].connections')" = 1 ] || e2e_fail "restarted vhostd: not 1 connection"

# ---- teardown through libvirt: the domain goes away and vhostd sees the front-end leave.
virsh destroy "$DOM" >/dev/null || e2e_fail "virsh destroy failed"
vm_wait_exit g1 15 || e2e_fail "QEMU still running after virsh destroy"
doms=$(virsh list --all --name)
[[ $'\n'$doms$'\n' != *$'\n'$DOM$'\n'* ]] || e2e_fail "domain $DOM still listed after destroy"
e2e_wait_for 10 eval '[ "$(vhostctl_json "$CTL" | jq -r ".ports[0].connected")" = false ]' ||
    e2e_fail "vhostd did not see the front-end go"
_e2e_alive "$VHOSTD2" || e2e_fail "vhostd exited"
e2e_pass "libvirt domain on vhostd: ping and iperf3 both ways, 2 queue pairs with MQ, reconnect after a vhostd restart"
