#!/bin/bash
# The Debian package, end to end (root): "make deb", install build/deb/vhostd_*.deb with apt-get, check
# what it installed and what its postinst did, purge it, check that nothing of it is left.
#
# The system is left as found, on every path (trap): the package is purged, and the vhostd user and
# /run/vhostd are removed if this test created them. Refuses to run (FAIL) when a vhostd package is
# already installed or when the package would overwrite a file that is already there (a "make install"
# with PREFIX=/usr, say), rather than replace someone's installation.
#
# Debian policy: a package's system user is not removed on purge (files it owned may remain anywhere).
# The test checks that the user survives the purge, and then removes it itself if it created it.
#
# Run as root: tests/package/deb_check.sh (or make deb-check). Prints PASS or FAIL: reason; exit 0 or 1.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1

T=
INSTALLED=0
USER_EXISTED=1
RUNDIR_EXISTED=1
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

cleanup() {
    local rc=$?
    if [ "$INSTALLED" = 1 ] && dpkg-query -W -f='${db:Status-Status}' vhostd 2>/dev/null | grep -qv '^not-installed$'; then
        echo "cleanup: purging vhostd"
        "${APT[@]}" purge vhostd >"$T/purge-cleanup.log" 2>&1 || { cat "$T/purge-cleanup.log"; rc=1; }
    fi
    if [ "$USER_EXISTED" = 0 ] && getent passwd vhostd >/dev/null; then
        echo "cleanup: removing the vhostd user this test created (the package leaves it, as Debian does)"
        userdel vhostd || rc=1
    fi
    if [ "$USER_EXISTED" = 0 ] && getent group vhostd >/dev/null; then
        groupdel vhostd || rc=1
    fi
    if [ "$RUNDIR_EXISTED" = 0 ] && [ -d /run/vhostd ]; then
        rmdir /run/vhostd || rc=1
    fi
    [ -n "$T" ] && rm -rf "$T"
    exit "$rc"
}

[ "$(id -u)" = 0 ] || fail "needs root (installs and purges a package)"
for t in dpkg-buildpackage dpkg-deb apt-get jq; do
    command -v "$t" >/dev/null || fail "$t missing (tests/install-deps.sh installs it)"
done
if dpkg-query -W -f='${db:Status-Status}' vhostd 2>/dev/null | grep -qv '^not-installed$'; then
    fail "a vhostd package is already installed ($(dpkg-query -W -f='${Version} ${db:Status-Status}' vhostd)); not touching it"
fi

T=$(mktemp -d /tmp/vhostd-deb-check.XXXXXX) || exit 1
getent passwd vhostd >/dev/null || USER_EXISTED=0
[ -e /run/vhostd ] || RUNDIR_EXISTED=0
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- build ----------------------------------------------------------------------------------------------
make --no-print-directory deb >"$T/build.log" 2>&1 || { tail -40 "$T/build.log"; fail "make deb failed"; }
debs=(build/deb/vhostd_*_*.deb)
if [ ${#debs[@]} != 1 ] || [ ! -f "${debs[0]}" ]; then
    fail "expected one build/deb/vhostd_*.deb, got: ${debs[*]}"
fi
DEB=$ROOT/${debs[0]}
VERSION=$(dpkg-deb -f "$DEB" Version)
ok "built ${DEB#"$ROOT"/} (version $VERSION)"
# lintian: no tag at all, informational and pedantic ones included (overrides, if ever needed, are justified
# in debian/vhostd.lintian-overrides).
lintian -I -E --pedantic --fail-on error,warning,info,pedantic build/deb/vhostd_*_amd64.changes >"$T/lintian.log" 2>&1 ||
    { cat "$T/lintian.log"; fail "lintian reports tags"; }
grep -v 'running with root privileges' "$T/lintian.log" | grep -q . && { cat "$T/lintian.log"; fail "lintian reports tags"; }
ok "lintian: no tags"

# What the package contains, and which of those paths exist before it is installed (directories such
# as /usr/share/qemu/vhost-user may; files must not: dpkg would overwrite them and purge would remove them).
dpkg-deb --fsys-tarfile "$DEB" | tar -t | sed 's|^\./|/|; s|/$||; /^$/d' | sort >"$T/contents"
: >"$T/preexisting"
while read -r p; do
    if [ -d "$p" ]; then    # a symlink to a directory too: /lib -> usr/lib on a merged /usr
        echo "$p" >>"$T/preexisting"
    elif [ -e "$p" ] || [ -L "$p" ]; then
        fail "$p already exists and the package would overwrite it (installed by hand? not touching it)"
    fi
done <"$T/contents"

# --- install --------------------------------------------------------------------------------------------
"${APT[@]}" install -s "$DEB" 2>/dev/null | awk '/^Inst /{print $2}' | grep -vx vhostd >"$T/extra" || true
[ -s "$T/extra" ] && echo "note: apt-get also installs (and purge leaves): $(tr '\n' ' ' <"$T/extra")"
INSTALLED=1
"${APT[@]}" install --no-install-recommends "$DEB" >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "apt-get install failed"; }
dpkg-query -W -f='${db:Status-Abbrev}' vhostd | grep -q '^ii' || fail "vhostd not installed after apt-get install"
ok "apt-get install ./${DEB#"$ROOT"/}"

# --- what it installed ----------------------------------------------------------------------------------
out=$(/usr/sbin/vhostd --version 2>&1) || fail "/usr/sbin/vhostd --version failed: $out"
[ "$out" = "vhostd $VERSION" ] || fail "/usr/sbin/vhostd --version says '$out', the package is $VERSION"
ok "vhostd --version: $out"
/usr/bin/vhostctl --help >"$T/vhostctl.help" 2>&1 || fail "/usr/bin/vhostctl --help failed: $(cat "$T/vhostctl.help")"
grep -q '^Usage: vhostctl' "$T/vhostctl.help" || fail "vhostctl --help: unexpected output: $(cat "$T/vhostctl.help")"
ok "vhostctl --help"

dpkg -L vhostd | sort >"$T/list"
expected=(
    /usr/sbin/vhostd
    /usr/bin/vhostctl
    /usr/share/man/man8/vhostd.8.gz
    /usr/share/man/man8/vhostctl.8.gz
    /usr/share/man/man5/vhostd.conf.5.gz
    /lib/systemd/system/vhostd@.service
    /lib/systemd/system/vhostd@.socket
    /usr/lib/sysusers.d/vhostd.conf
    /usr/lib/tmpfiles.d/vhostd.conf
    /usr/share/qemu/vhost-user/50-vhostd-net.json
    /usr/share/doc/vhostd/copyright
    /usr/share/doc/vhostd/changelog.gz
    /etc/vhostd
)
for f in config/examples/*.conf; do expected+=("/usr/share/doc/vhostd/examples/${f##*/}"); done
for f in man/*.[0-9]; do
    p=/usr/share/man/man${f##*.}/${f##*/}.gz
    printf '%s\n' "${expected[@]}" | grep -qxF "$p" || fail "man page $f is not in the expected list (update this test)"
done
for p in "${expected[@]}"; do
    grep -qxF "$p" "$T/list" || fail "$p is not in dpkg -L vhostd"
    [ -e "$p" ] || fail "$p is listed by dpkg -L but missing on disk"
done
for p in /usr/sbin/vhostd /usr/bin/vhostctl; do [ -x "$p" ] || fail "$p is not executable"; done
[ -d /etc/vhostd ] || fail "/etc/vhostd is not a directory"
ok "all ${#expected[@]} expected files are in dpkg -L and on disk"

grep -q '^ExecStart=/usr/sbin/vhostd ' /lib/systemd/system/vhostd@.service \
    || fail "vhostd@.service: ExecStart= does not run /usr/sbin/vhostd"
J=/usr/share/qemu/vhost-user/50-vhostd-net.json
jq -e . "$J" >/dev/null || fail "$J does not parse"
[ "$(jq -r .type "$J")" = net ] || fail "$J: type is '$(jq -r .type "$J")', not net"
[ "$(jq -r .binary "$J")" = /usr/sbin/vhostd ] || fail "$J: binary is '$(jq -r .binary "$J")', not /usr/sbin/vhostd"
jq -e '.description | type == "string" and length > 0' "$J" >/dev/null || fail "$J: no description"
ok "$J: type net, binary /usr/sbin/vhostd"

if command -v man >/dev/null; then
    for m in 8:vhostd 8:vhostctl 5:vhostd.conf; do
        w=$(man -w "${m%%:*}" "${m#*:}" 2>/dev/null) || fail "man -w ${m%%:*} ${m#*:} finds nothing"
        [ "$w" = "/usr/share/man/man${m%%:*}/${m#*:}.${m%%:*}.gz" ] || fail "man -w ${m%%:*} ${m#*:} gives $w"
    done
    ok "man -w finds vhostd(8), vhostctl(8), vhostd.conf(5) under /usr/share/man"
else
    echo "note: man-db not installed; the man pages were checked as files only"
fi

# --- what its postinst did ------------------------------------------------------------------------------
pw=$(getent passwd vhostd) || fail "postinst did not create the vhostd user (systemd-sysusers)"
uid=$(echo "$pw" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "vhostd is not a system user (uid $uid)"
getent group vhostd >/dev/null || fail "postinst did not create the vhostd group"
ok "user vhostd (uid $uid) and group vhostd exist"
if command -v systemd-tmpfiles >/dev/null; then
    [ "$(stat -c '%a %U %G' /run/vhostd 2>/dev/null)" = "755 root root" ] \
        || fail "/run/vhostd is not 0755 root:root after postinst (systemd-tmpfiles): $(stat -c '%a %U %G' /run/vhostd 2>&1)"
    ok "/run/vhostd created by systemd-tmpfiles"
fi
# Template units only: nothing is enabled or started on install.
enabled=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled -name 'vhostd*' 2>/dev/null)
[ -z "$enabled" ] || fail "units enabled on install: $enabled"
ok "no vhostd unit enabled on install"

# --- purge ----------------------------------------------------------------------------------------------
"${APT[@]}" purge vhostd >"$T/purge.log" 2>&1 || { cat "$T/purge.log"; fail "apt-get purge vhostd failed"; }
INSTALLED=0
dpkg-query -W -f='${db:Status-Status}' vhostd 2>/dev/null | grep -qv '^not-installed$' \
    && fail "vhostd still known to dpkg after purge: $(dpkg-query -W -f='${db:Status-Abbrev}' vhostd)"
left=()
created=0
while read -r p; do
    [ "$p" = /. ] && continue
    grep -qxF "$p" "$T/preexisting" && continue
    created=$((created + 1))
    if [ -e "$p" ] || [ -L "$p" ]; then left+=("$p"); fi
done <"$T/list"
[ ${#left[@]} = 0 ] || fail "left after purge: ${left[*]}"
if grep -qxF /etc/vhostd "$T/preexisting"; then
    echo "note: /etc/vhostd existed before the test, so it stays"
elif [ -e /etc/vhostd ]; then
    fail "/etc/vhostd left after purge"
fi
ok "apt-get purge vhostd: none of the $created paths the package created is left (/etc/vhostd included)"
if [ "$USER_EXISTED" = 0 ]; then
    getent passwd vhostd >/dev/null || fail "the vhostd user was removed on purge (Debian keeps system users)"
    ok "user vhostd stays after purge (Debian policy: system users are not removed); this test removes it"
fi

echo "PASS: Debian package vhostd $VERSION builds, installs, works and purges cleanly"
