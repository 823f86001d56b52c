#!/bin/bash
# make demo: install what is missing, build, start vhostd with a tap port (config below, from
# config/examples/tap.conf's shape), boot a small Debian guest through it, and show what happened:
# negotiated features, ping, iperf3 both ways, per-queue counters. Needs root (tap, namespaces).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates a tap device and a network namespace)"; exit 1; }
tests/install-deps.sh >/dev/null
make -s
. tests/e2e/lib.sh
e2e_init

HOST_IP=10.90.0.1
GUEST_IP=10.90.0.2
CONF=$E2E_TMP/demo.conf
CTL=$E2E_TMP/demo.ctl
cat >"$CONF" <<CONF
[global]
log_level = info
control_socket = $CTL

[port net0]
socket = $E2E_TMP/demo-net0.sock
backend = tap
ifname = vtap-demo
queues = 2
mac = 52:54:00:de:00:01
CONF
echo "== config ($CONF)"; grep -v '^$' "$CONF" | sed 's/^/   /'

netns_create NS demo
echo "== starting vhostd in network namespace $NS"
vhostd_start VHOSTD "$CTL" --netns "$NS" --config "$CONF"
netns_set_ip "$NS" vtap-demo "$HOST_IP/24"
sed 's/^/   /' "$E2E_TMP/vhostd-VHOSTD.log"
e2e_spawn IPERF_PID --log "$E2E_TMP/iperf3-server.log" ip netns exec "$NS" iperf3 -s -B "$HOST_IP"
netns_wait_listen "$NS" 5201 10 || e2e_fail "iperf3 server did not start"

echo "== booting the guest (QEMU $(qemu-system-x86_64 --version | head -n1 | grep -oE '[0-9]+\.[0-9.]+' | head -n1), $(vm_accel_args | tr -s ' ')) with a vhost-user NIC, 2 queue pairs"
vm_add_vhost_user_nic "$E2E_TMP/demo-net0.sock" 2 52:54:00:de:00:01
vm_start demo --smp 2 vm_ip="$GUEST_IP/24" vm_queues=2 \
    --cmd "echo '== guest: ping the host'; ping -c 3 $HOST_IP && echo '== guest: iperf3 guest->host' && iperf3 -c $HOST_IP -t 3 -P 2 && echo '== guest: iperf3 host->guest' && iperf3 -c $HOST_IP -t 3 -P 2 -R"
vm_wait_boot demo 60 || e2e_fail "guest did not boot"
echo "   guest userspace after ${VM_BOOT_S[demo]} s"
vm_wait_marker demo 'VM-NET-UP' 30 || e2e_fail "guest network did not come up"
echo "== negotiated with QEMU"
"$VHOSTCTL_BIN" -s "$CTL" | grep -E 'features|port' | sed 's/^/   /'
vm_wait_cmd demo 120 || e2e_fail "guest command failed (rc=${VM_RC:-none})"
grep -aE '^== guest|packets transmitted|round-trip|SUM.*(sender|receiver)' "$(vm_log demo)" | sed 's/^/   /'
echo "== per-queue counters (vhostctl -s $CTL)"
"$VHOSTCTL_BIN" -s "$CTL" | grep vring | sed 's/^/   /'
echo "== tap vtap-demo: $(link_stat "$NS" vtap-demo rx_packets) frames from the guest, $(link_stat "$NS" vtap-demo tx_packets) to it"
vm_wait_exit demo 15 || true
echo "== done: everything was started by this script and is cleaned up now"
