#!/bin/bash
# mkguest.sh [CACHE_DIR] - build the minimal e2e test guest from Debian packages.
#
# Outputs (cached; rebuilt only when missing or older than this script):
#   CACHE_DIR/vmlinuz          Debian cloud kernel (linux-image-*-cloud-amd64)
#   CACHE_DIR/initrd.img       gzip'd newc cpio: busybox-static, virtio-net
#                              modules, iperf3, ethtool (+ their libraries), /init
#   CACHE_DIR/kernel-version
# CACHE_DIR defaults to ${VHOSTD_GUEST_CACHE:-$HOME/.cache/vhostd-guest}.
#
# Missing host tools are installed with apt-get (root only). The kernel and,
# when the host busybox is not static, busybox-static are fetched with
# `apt-get download` and unpacked with `dpkg -x` (nothing installed for them).
#
# The guest's /init is configured through kernel command line variables
# (unknown key=value pairs become environment variables of /init):
#   vm_ip=A.B.C.D/N    address for eth0 (vm_ip1 for eth1, ...)
#   vm_mtu=N           MTU of eth0 (vm_mtu1 ...)
#   vm_queues=N        `ethtool -L eth0 combined N` when N > 1 (vm_queues1 ...)
#   vm_gw=A.B.C.D      default route
#   vm_link_wait=S     seconds to wait for carrier on configured NICs (default 5)
#   vm_cmd=SNIPPET     shell snippet to run (no spaces; use vm_cmd64 instead)
#   vm_cmd64=BASE64    base64 of the shell snippet to run
# Serial console markers printed by /init:
#   VM-BOOTED uptime=<s>       userspace reached
#   VM-NET-UP                  NICs configured
#   VM-CMD-EXIT=<rc>           command finished (then the guest powers off)
#   VM-IDLE                    no command given: guest stays up (sleeps)
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
CACHE_DIR=${1:-${VHOSTD_GUEST_CACHE:-$HOME/.cache/vhostd-guest}}
MODULES="virtio_pci virtio_net"      # roots; dependencies resolved via modinfo
BINARIES="iperf3 ethtool"

log() { echo "mkguest: $*" >&2; }
die() { echo "mkguest: ERROR: $*" >&2; exit 1; }

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(readlink -f "$CACHE_DIR")

up_to_date() {
    [[ -s $CACHE_DIR/vmlinuz && -s $CACHE_DIR/initrd.img &&
       $CACHE_DIR/vmlinuz -nt $SCRIPT && $CACHE_DIR/initrd.img -nt $SCRIPT ]]
}

# Serialize concurrent builds (several tests may start at once).
exec 9>"$CACHE_DIR/.lock"
flock 9
if up_to_date && [[ ${VHOSTD_GUEST_REBUILD:-0} != 1 ]]; then
    log "up to date: $CACHE_DIR/vmlinuz $CACHE_DIR/initrd.img"
    exit 0
fi

# ---------------------------------------------------------------- host tools
declare -A TOOL_PKG=(
    [qemu-system-x86_64]=qemu-system-x86 [iperf3]=iperf3 [ethtool]=ethtool
    [cpio]=cpio [modinfo]=kmod [ip]=iproute2 [readelf]=binutils [gzip]=gzip
    [dpkg-deb]=dpkg [ldd]=libc-bin [flock]=util-linux
)
missing=()
for t in "${!TOOL_PKG[@]}"; do
    PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 || missing+=("${TOOL_PKG[$t]}")
done
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "missing packages (${missing[*]}); run as root or install them"
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; } ||
        die "apt-get install ${missing[*]} failed"
fi
export PATH=$PATH:/usr/sbin:/sbin

# apt-get download PKG into $CACHE_DIR/debs (cached), prints the .deb path.
DEBS=$CACHE_DIR/debs
mkdir -p "$DEBS"
apt_download() {
    local pkg=$1 f opts=()
    f=$(ls "$DEBS/${pkg}_"*.deb 2>/dev/null | tail -n1 || true)
    if [[ -z $f ]]; then
        [[ $(id -u) == 0 ]] && opts=(-o APT::Sandbox::User=root)
        [[ $pkg == linux-image-* ]] && rm -f "$DEBS"/linux-image-*.deb   # drop superseded kernels
        ( cd "$DEBS" && apt-get "${opts[@]}" -q download "$pkg" >&2 ) ||
        { [[ $(id -u) == 0 ]] && apt-get update >&2 &&
          ( cd "$DEBS" && apt-get "${opts[@]}" -q download "$pkg" >&2 ); } ||
            die "apt-get download $pkg failed"
        f=$(ls "$DEBS/${pkg}_"*.deb | tail -n1)
    fi
    echo "$f"
}

# ---------------------------------------------------------------- kernel
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       awk '$1 ~ /Depends:/ && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')
if [[ -z $kpkg && $(id -u) == 0 ]]; then
    apt-get update >&2 || true
    kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
           awk '$1 ~ /Depends:/ && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')
fi
[[ -n $kpkg ]] || die "cannot resolve linux-image-cloud-amd64 (apt-get update?)"
log "kernel package: $kpkg"
kdeb=$(apt_download "$kpkg")

WORK=$(mktemp -d "$CACHE_DIR/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
dpkg -x "$kdeb" "$WORK/kernel"
kver=$(ls "$WORK/kernel/lib/modules" | head -n1)
[[ -n $kver && -f $WORK/kernel/boot/vmlinuz-$kver ]] || die "unexpected layout in $kdeb"
MODDIR=$WORK/kernel/lib/modules/$kver

# ---------------------------------------------------------------- busybox
is_static() { ! readelf -d "$1" 2>/dev/null | grep -q NEEDED; }
BUSYBOX=
for b in /bin/busybox /usr/bin/busybox; do
    if [[ -x $b ]] && is_static "$b"; then BUSYBOX=$b; break; fi
done
if [[ -z $BUSYBOX ]]; then
    bdeb=$(apt_download busybox-static)
    dpkg -x "$bdeb" "$WORK/bb"
    for b in "$WORK"/bb/bin/busybox "$WORK"/bb/usr/bin/busybox; do
        [[ -x $b ]] && BUSYBOX=$b && break
    done
    if [[ -z $BUSYBOX ]] || ! is_static "$BUSYBOX"; then die "no static busybox in $bdeb"; fi
fi
log "busybox: $BUSYBOX"

# ---------------------------------------------------------------- rootfs
R=$WORK/root
mkdir -p "$R"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$R"/{dev,proc,sys,tmp,run,root,etc,mnt}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"
ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
chmod 1777 "$R/tmp"
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true   # root only; /init copes
cp "$BUSYBOX" "$R/usr/bin/busybox"
while read -r app; do
    app=${app#/}
    case $app in usr/*) ;; *) app=usr/$app ;; esac   # merged-/usr layout
    [[ -e $R/$app || -L $R/$app ]] || ln -s /usr/bin/busybox "$R/$app"
done < <("$BUSYBOX" --list-full)
[[ -e $R/usr/bin/sh ]] || ln -s busybox "$R/usr/bin/sh"

# Binaries and, recursively, their shared libraries (ldd resolves NEEDED
# transitively; the loader itself is the line without "=>").
copy_file() {   # copy_file SRC DEST_ABS_PATH (symlinks resolved)
    local dst=$R/${2#/}
    mkdir -p "$(dirname "$dst")"
    [[ -e $dst ]] || cp -L "$1" "$dst"
}
for bin in $BINARIES; do
    p=$(command -v "$bin") || die "$bin not found"
    copy_file "$p" "/usr/bin/$bin"
    while read -r lib; do
        [[ -n $lib ]] && copy_file "$lib" "$lib"
    done < <(ldd "$p" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done
chroot_ok=1
# sanity: every NEEDED of every copied ELF exists somewhere in the rootfs
for f in $(for b in $BINARIES; do echo "$R/usr/bin/$b"; done) \
         $(find "$R/usr/lib" "$R/usr/lib64" -type f -name '*.so*'); do
    for n in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\].*/\1/p'); do
        find "$R/usr/lib" "$R/usr/lib64" -name "$n" | grep -q . || { log "missing $n for $f"; chroot_ok=0; }
    done
done
((chroot_ok)) || die "library closure incomplete"

# Kernel modules: depth-first over modinfo depends= gives a valid load order.
declare -A MSEEN=()
MORDER=()
modpath() {
    local f
    f=$(find "$MODDIR/kernel" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" -o -name "$1.ko.gz" | head -n1)
    [[ -n $f ]] || die "module $1 not found in $kpkg"
    echo "$f"
}
visit() {
    local m=$1 d f
    [[ -n ${MSEEN[$m]:-} ]] && return
    MSEEN[$m]=1
    f=$(modpath "$m")
    for d in $(modinfo -F depends "$f" | tr ',' ' '); do visit "$d"; done
    MORDER+=("$m")
}
for m in $MODULES; do visit "$m"; done
mkdir -p "$R/lib/modules"
for m in "${MORDER[@]}"; do
    f=$(modpath "$m")
    case $f in
        *.ko.xz)  xz -dc "$f" > "$R/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" > "$R/lib/modules/$m.ko" ;;
        *.ko.gz)  gzip -dc "$f" > "$R/lib/modules/$m.ko" ;;
        *)        cp "$f" "$R/lib/modules/$m.ko" ;;
    esac
done
printf '%s\n' "${MORDER[@]}" > "$R/lib/modules/order"
log "modules: ${MORDER[*]}"

cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
echo 'root:x:0:' > "$R/etc/group"
printf '127.0.0.1 localhost\n' > "$R/etc/hosts"

cat > "$R/init" <<'INIT'
#!/bin/sh
# vhostd e2e guest init (generated by tests/e2e/mkguest.sh)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# the initramfs may lack a /dev/console node (built without root): reopen
[ -c /dev/console ] && exec 0</dev/console 1>/dev/console 2>&1
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
echo "VM-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"

die_off() {
    sleep 0.2          # let the UART drain
    poweroff -f; sleep 2; reboot -f
}

for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" || echo "VM-WARN insmod $m failed"
done
ip link set lo up

cfg_nic() {   # cfg_nic IFNAME IP MTU QUEUES
    local dev=$1 ipa=$2 mtu=$3 q=$4 i=0
    while [ ! -e /sys/class/net/$dev ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    [ -e /sys/class/net/$dev ] || { echo "VM-WARN no $dev"; return 1; }
    [ -n "$mtu" ] && ip link set "$dev" mtu "$mtu"
    if [ -n "$q" ] && [ "$q" -gt 1 ]; then
        ethtool -L "$dev" combined "$q" || echo "VM-WARN ethtool -L $dev combined $q failed"
    fi
    ip link set "$dev" up
    [ -n "$ipa" ] && ip addr add "$ipa" dev "$dev"
    i=0
    while [ "$(cat /sys/class/net/$dev/carrier 2>/dev/null)" != 1 ] &&
          [ $i -lt $(( ${vm_link_wait:-5} * 10 )) ]; do sleep 0.1; i=$((i+1)); done
    echo "VM-LINK $dev carrier=$(cat /sys/class/net/$dev/carrier 2>/dev/null)"
}
n=0
while [ $n -lt 8 ]; do
    sfx=$n; [ $n = 0 ] && sfx=
    eval "ipa=\${vm_ip$sfx:-} mtu=\${vm_mtu$sfx:-} q=\${vm_queues$sfx:-}"
    [ -n "$ipa$mtu$q" ] && cfg_nic "eth$n" "$ipa" "$mtu" "$q"
    n=$((n+1))
done
[ -n "${vm_gw:-}" ] && ip route add default via "$vm_gw"
echo "VM-NET-UP"

cmd=
if [ -n "${vm_cmd64:-}" ]; then
    cmd=$(echo "$vm_cmd64" | base64 -d) || { echo "VM-WARN bad vm_cmd64"; cmd=false; }
elif [ -n "${vm_cmd:-}" ]; then
    cmd=$vm_cmd
fi
if [ -z "$cmd" ]; then
    echo "VM-IDLE"
    while :; do sleep 3600; done
fi
cd /
sh -c "$cmd" </dev/null
rc=$?
echo "VM-CMD-EXIT=$rc"
die_off
INIT
chmod 755 "$R/init"

# ---------------------------------------------------------------- outputs
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 ) |
    gzip -6 > "$WORK/initrd.img"
cp "$WORK/kernel/boot/vmlinuz-$kver" "$WORK/vmlinuz"
mv -f "$WORK/vmlinuz" "$CACHE_DIR/vmlinuz"
mv -f "$WORK/initrd.img" "$CACHE_DIR/initrd.img"
echo "$kver" > "$CACHE_DIR/kernel-version"
log "built $CACHE_DIR/vmlinuz ($kver) and $CACHE_DIR/initrd.img ($(du -h "$CACHE_DIR/initrd.img" | cut -f1))"
