#!/bin/bash
# mkroot.sh [CACHE_DIR] [PACKAGE...] - build the Debian root that tests/e2e/systemd_units.sh boots with
# systemd-nspawn (systemd as PID 1 of a container), from Debian packages.
#
# Output (cached; rebuilt only when missing, older than this script, or lacking one of the PACKAGEs):
#   CACHE_DIR/root       debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,PACKAGE... bookworm
#   CACHE_DIR/packages   the packages asked for (sorted, one a line): what the cached root was built with
# CACHE_DIR defaults to ${VHOSTD_ROOT_CACHE:-$HOME/.cache/vhostd-root} (as the e2e guest sits in
# ~/.cache/vhostd-guest). PACKAGEs are what the vhostd binary under test needs at run time (the test derives them
# from ldd). The mirror is the first Debian one in /etc/apt/sources.list*, else deb.debian.org.
# Nothing inside the root is changed after the build: the test boots it with --volatile=overlay and binds in the
# binary, the units and the configuration. Needs root and debootstrap. VHOSTD_ROOT_REBUILD=1 forces a rebuild.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
CACHE_DIR=${1:-${VHOSTD_ROOT_CACHE:-$HOME/.cache/vhostd-root}}
shift || true
BASE_PKGS=(systemd systemd-sysv dbus)
SUITE=bookworm

log() { echo "mkroot: $*" >&2; }
die() { echo "mkroot: ERROR: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap)"
export PATH=$PATH:/usr/sbin:/sbin
command -v debootstrap >/dev/null || die "debootstrap not installed (tests/install-deps.sh installs it)"

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(readlink -f "$CACHE_DIR")
WANT=$(printf '%s\n' "${BASE_PKGS[@]}" "$@" | sort -u)

up_to_date() {
    [[ -x $CACHE_DIR/root/lib/systemd/systemd && -s $CACHE_DIR/packages && $CACHE_DIR/packages -nt $SCRIPT ]] ||
        return 1
    # every package wanted now was in the build
    [[ -z $(comm -23 <(echo "$WANT") <(sort -u "$CACHE_DIR/packages")) ]]
}

# Serialize concurrent builds.
exec 9>"$CACHE_DIR/.lock"
flock 9
if up_to_date && [[ ${VHOSTD_ROOT_REBUILD:-0} != 1 ]]; then
    log "up to date: $CACHE_DIR/root"
    exit 0
fi

mirror=$(grep -hsoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources | head -n1 | tr -d ' ') || true
mirror=${mirror:-http://deb.debian.org/debian}
# Keep the packages of an earlier build: the union, so that switching between builds does not rebuild each time.
[[ -s $CACHE_DIR/packages ]] && WANT=$(sort -u <(echo "$WANT") "$CACHE_DIR/packages")

WORK=$(mktemp -d "$CACHE_DIR/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "debootstrap $SUITE from $mirror with: $(echo $WANT)"
debootstrap --variant=minbase --include="$(echo $WANT | tr ' ' ,)" "$SUITE" "$WORK/root" "$mirror" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
# Smaller and faster to boot: no package lists or caches, a fixed machine id is set by nspawn anyway.
rm -rf "$WORK/root/var/cache/apt/archives/"*.deb "$WORK/root/var/lib/apt/lists/"*
: >"$WORK/root/etc/machine-id"
echo "$WANT" >"$WORK/packages"
rm -rf "$CACHE_DIR/root" "$CACHE_DIR/packages"
mv "$WORK/root" "$CACHE_DIR/root"
mv "$WORK/packages" "$CACHE_DIR/packages"
log "built $CACHE_DIR/root ($(du -sh "$CACHE_DIR/root" | cut -f1))"
