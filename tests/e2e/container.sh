# shellcheck shell=bash
# container.sh - sourced by the e2e tests that run vhostd under a real systemd: systemd 252 as PID 1 of a
# systemd-nspawn container whose root is built from Debian packages (tests/e2e/mkroot.sh, cached in
# ~/.cache/vhostd-root), with vhostd installed as a package would install it. /run/vhostd of the container is a
# host directory ($RUNDIR), so front-ends (a test front-end, QEMU) run on the host.
#
# Needs lib.sh sourced, E2E_TMP set (as T), VHOSTD and VHOSTCTL (binaries under test). In order:
#   ct_root                  the container root (sets ROOT)
#   ct_layout CONF           what gets installed ($T/dest), with CONF as /etc/vhostd/vm1.conf ("": none yet)
#   ct_boot [NSPAWN_ARGS]    boots it (sets NAME, CPID, RUNDIR); stopped at exit
#   ct_install               installs, as a package's maintainer scripts would
# then cx CMD... runs a command in it, fail MSG fails with the service's journal, show UNIT PROP, wait_prop,
# vhostd_pids, install_tree DIR.

# --- the container root: Debian minbase + systemd + what the binary under test links to ----------------------
ct_root() {
    local pkgs=() lib p t
    while read -r lib; do
        [[ $lib = "not found" ]] && e2e_fail "ldd $VHOSTD: a library is not found on the host"
        p=$(dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null || dpkg-query -S "$lib" 2>/dev/null) ||
            e2e_fail "no Debian package ships $lib (needed by $VHOSTD)"
        pkgs+=("${p%%:*}")
    done < <(ldd "$VHOSTD" | awk '/=>/ { print ($3 == "not" ? "not found" : $3) }')
    t=$SECONDS
    "$E2E_DIR/mkroot.sh" "" "${pkgs[@]}" || e2e_fail "building the container root failed (tests/e2e/mkroot.sh)"
    ROOT=${VHOSTD_ROOT_CACHE:-$HOME/.cache/vhostd-root}/root
    e2e_log "container root $ROOT ready in $((SECONDS - t)) s (packages for vhostd: ${pkgs[*]})"
}

# --- what gets installed: the layout of "make install PREFIX=/usr" ----------------------------------------------
ct_layout() { # CONF
    local U
    D=$T/dest
    U=$(cd "$E2E_DIR/../../systemd" && pwd)
    install -D -m 0755 "$VHOSTD" "$D/usr/sbin/vhostd"
    install -D -m 0755 "$VHOSTCTL" "$D/usr/bin/vhostctl"
    install -D -m 0644 "$U/vhostd@.service" "$D/lib/systemd/system/vhostd@.service"
    install -D -m 0644 "$U/vhostd@.socket" "$D/lib/systemd/system/vhostd@.socket"
    install -D -m 0644 "$U/vhostd.sysusers" "$D/usr/lib/sysusers.d/vhostd.conf"
    install -D -m 0644 "$U/vhostd.tmpfiles" "$D/usr/lib/tmpfiles.d/vhostd.conf"
    mkdir -p "$D/etc/vhostd"
    [[ -z $1 ]] || printf '%s\n' "$1" >"$D/etc/vhostd/vm1.conf"
    grep -q '^ExecStart=/usr/sbin/vhostd ' "$D/lib/systemd/system/vhostd@.service" ||
        e2e_fail "vhostd@.service: ExecStart= does not run /usr/sbin/vhostd"
    mkdir -p "$T/dropin"
    # A sanitizer build (make sanitize): LeakSanitizer stops the process's threads with ptrace at exit, which the
    # unit's SystemCallFilter= forbids (and vhostd is not dumpable), so it ends every clean stop with "LeakSanitizer
    # has encountered a fatal error" and exit 1. Leak checking stays with the tests that run vhostd outside this
    # sandbox; here ASan and UBSan still check everything else. A template drop-in, so it outlives the one above.
    if ldd "$VHOSTD" | grep -q 'libasan'; then
        mkdir -p "$T/dropin/etc/systemd/system/vhostd@.service.d"
        printf '# e2e test: LeakSanitizer cannot work under SystemCallFilter= (no ptrace)\n[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' \
            >"$T/dropin/etc/systemd/system/vhostd@.service.d/60-test-sanitizer.conf"
    fi
}

# --- boot ----------------------------------------------------------------------------------------------------------
NSPAWN_PID=
CPID=
stop_container() {
    [[ -n $NSPAWN_PID ]] || return 0
    if kill -0 "$NSPAWN_PID" 2>/dev/null && [[ -n $CPID ]]; then
        # vhostd's log, where the exit trap of lib.sh looks for sanitizer reports (make sanitize)
        timeout 10 nsenter -t "$CPID" -m -u -i -p -- journalctl --no-pager -o cat -u vhostd@vm1.service \
            >"$E2E_TMP/vhostd-vm1.log" 2>&1
        timeout 10 nsenter -t "$CPID" -m -u -i -p -- systemctl poweroff >/dev/null 2>&1
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
    fi
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
        e2e_log "container did not power off; killing systemd-nspawn $NSPAWN_PID"
        kill -TERM "$NSPAWN_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        # its PID 1 (our grandchild) takes the whole container with it
        [[ -n $CPID ]] && kill -KILL "$CPID" 2>/dev/null
        kill -KILL "$NSPAWN_PID" 2>/dev/null
    fi
    wait "$NSPAWN_PID" 2>/dev/null
    rm -rf "/run/systemd/nspawn/propagate/$NAME"
    NSPAWN_PID=
}

cx() { nsenter -t "$CPID" -m -u -i -p -- "$@"; }
# fail with the service's journal and the container's console
fail() {
    {
        echo "--- journal of vhostd@vm1 (container $NAME)"
        timeout 10 nsenter -t "$CPID" -m -u -i -p -- journalctl --no-pager -n 40 -u vhostd@vm1.service -u vhostd@vm1.socket
        echo "--- systemd-nspawn output"
        tail -n 15 "$T/nspawn.log"
    } >&2 2>/dev/null
    e2e_fail "$*"
}

ct_boot() { # [NSPAWN_ARGS...]
    local t state c
    RUNDIR=$T/run-vhostd # /run/vhostd of the container
    mkdir -p "$RUNDIR"
    NAME=vhostd-t$$-$(printf '%04x' $RANDOM)
    e2e_on_exit stop_container
    systemd-nspawn -D "$ROOT" --volatile=overlay --boot --register=no --keep-unit --console=passive -M "$NAME" \
        --bind="$RUNDIR:/run/vhostd" --capability=CAP_NET_ADMIN,CAP_BPF,CAP_IPC_LOCK "$@" >"$T/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    t=$SECONDS
    for _ in $(seq 200); do
        for c in $(cat /proc/"$NSPAWN_PID"/task/*/children 2>/dev/null); do
            [[ $(cat "/proc/$c/comm" 2>/dev/null) = systemd ]] && CPID=$c
        done
        [[ -n $CPID ]] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $CPID ]] || { tail -n 20 "$T/nspawn.log" >&2; e2e_fail "systemd-nspawn started no systemd as PID 1"; }
    # systemctl answers once PID 1 has its private socket; then --wait blocks until start-up is over
    for _ in $(seq 300); do
        state=$(cx systemctl is-system-running 2>&1) && break
        [[ $state = initializing || $state = starting || $state = degraded ]] && break
        sleep 0.1
    done
    state=$(timeout 60 nsenter -t "$CPID" -m -u -i -p -- systemctl is-system-running --wait 2>&1)
    case $state in
    running) ;;
    degraded) e2e_log "container is degraded; failed units: $(cx systemctl list-units --failed --plain --no-legend | awk '{print $1}' | xargs)" ;;
    *) fail "systemd in the container did not come up: is-system-running says '$state'" ;;
    esac
    e2e_log "container $NAME up: systemd PID 1 is host pid $CPID, $state after $((SECONDS - t)) s"
}

# install_tree DIR: DIR's files into the container's /. Not "tar -c ." (that would set the mode of / too), and
# --keep-directory-symlink, or tar would replace the /lib -> usr/lib symlink of the merged-/usr root by a directory.
install_tree() {
    (cd "$1" && tar -c -- *) | cx tar -C / -x --no-same-owner --keep-directory-symlink --no-overwrite-dir
}

# --- install, as a package's maintainer scripts would ------------------------------------------------------------
ct_install() {
    install_tree "$D" || fail "cannot copy vhostd and its units into the container"
    cx systemd-sysusers || fail "systemd-sysusers failed on vhostd.sysusers"
    cx systemd-tmpfiles --create /usr/lib/tmpfiles.d/vhostd.conf || fail "systemd-tmpfiles --create failed"
    cx systemctl daemon-reload || fail "daemon-reload failed"
    VH_UID=$(cx id -u vhostd) && VH_GID=$(cx id -g vhostd) || fail "systemd-sysusers did not create the user vhostd"
    local out
    if [[ -e $D/etc/vhostd/vm1.conf ]]; then
        out=$(cx vhostd --check-config /etc/vhostd/vm1.conf 2>&1) || fail "vhostd --check-config in the container: $out"
    fi
    ! cx ldd /usr/sbin/vhostd | grep -q 'not found' || fail "vhostd misses libraries in the container: $(cx ldd /usr/sbin/vhostd)"
    if [[ -n $(ls -A "$T/dropin") ]]; then
        install_tree "$T/dropin" && cx systemctl daemon-reload || fail "cannot add the test drop-ins"
    fi
}

show() { # UNIT PROP: the property's value
    cx systemctl show -P "$2" "$1"
}
vhostd_pids() { # vhostd processes in the container (its own pid namespace)
    cx sh -c 'for f in /proc/[0-9]*/comm; do read -r c <"$f" 2>/dev/null && [ "$c" = vhostd ] && { p=${f%/comm}; echo "${p#/proc/}"; }; done' 2>/dev/null | xargs
}
wait_prop() { # SECONDS UNIT PROP VALUE
    local n=$(($1 * 10))
    while ((n-- > 0)); do
        [[ $(show "$2" "$3") = "$4" ]] && return 0
        sleep 0.1
    done
    return 1
}

