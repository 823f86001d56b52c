#!/bin/bash
# Installs what vhostd needs to build and to run every test and benchmark, on Debian 12. Idempotent; needs root.
# xdp-tools: xdp-loader, for the AF_XDP peer of bench/pps.sh.
# debootstrap, systemd-container: tests/e2e/systemd_units.sh builds a Debian root and boots systemd in it with
# systemd-nspawn.
set -eu
PKGS=(build-essential clang pkg-config bc libev-dev libcmocka-dev libbpf-dev libxdp-dev liburing-dev
      libclang-rt-14-dev clang-format
      iproute2 ethtool iperf3 jq busybox-static cpio kmod iputils-ping
      qemu-system-x86 dpdk-dev systemd systemd-container debootstrap xdp-tools
      libvirt-daemon-system libvirt-clients
      debhelper dpkg-dev lintian fakeroot man-db)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# busybox-static conflicts with busybox; the e2e guest builder fetches it by itself when needed.
if dpkg-query -W -f='${Status}' busybox 2>/dev/null | grep -q 'install ok installed'; then
    missing=("${missing[@]/busybox-static/}")
fi
if [ ${#missing[@]} -gt 0 ] && [ -n "$(echo "${missing[@]}" | tr -d ' ')" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends ${missing[*]}
fi
echo "install-deps: all dependencies present"
