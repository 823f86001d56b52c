# shellcheck shell=bash disable=SC2034,SC2054
# tests/e2e/lib.sh - helpers for vhostd end-to-end tests. Source it from bash:
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_init                      # root + guest build + temp dir + exit trap
#   netns_create NS               # $NS = fresh namespace, deleted on exit
#   vm_add_vhost_user_nic /run/x.sock 2
#   vm_start vm1 --cmd 'ping -c3 10.0.0.1' vm_ip=10.0.0.2/24 vm_queues=2
#   vm_wait_cmd vm1 120 || e2e_fail "guest command failed (rc=$VM_RC)"
#   e2e_pass
#
# Everything started through these helpers (VMs, e2e_spawn processes,
# namespaces, veths) is stopped/removed by PID/name on every exit path (EXIT,
# INT, TERM, HUP), in reverse order of creation.
# Exit codes: 0 pass, 1 fail, 77 skip.
#
# Environment knobs:
#   VHOSTD_GUEST_CACHE   guest cache dir (default ~/.cache/vhostd-guest)
#   VHOSTD_E2E_ACCEL     QEMU accel args override, e.g. "-accel kvm -cpu host"
#   VHOSTD_E2E_KEEP=1    keep $E2E_TMP (logs) after the test
#   VHOSTD_E2E_VERBOSE=1 log helper actions

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_TMP=
GUEST_KERNEL=
GUEST_INITRD=
VM_RC=
declare -gA VM_PID=() VM_LOG=() VM_DIR=() VM_MON=() VM_T0=() VM_BOOT_S=() VM_BOOT_GUEST_S=()
declare -ga _E2E_CLEANUP=()
declare -ga _VM_PENDING=()        # QEMU args for NICs of the next vm_start
declare -ga _VM_PENDING_SOCKS=()  # server-mode sockets QEMU leaves behind
_VM_NIC_N=0
_E2E_NS_N=0
_E2E_CLEANED=0

# ------------------------------------------------------------------ basics
e2e_log()  { echo "[e2e $(date +%T)] $*" >&2; }
e2e_vlog() { [[ ${VHOSTD_E2E_VERBOSE:-0} == 1 ]] && e2e_log "$@"; return 0; }
e2e_skip() { echo "SKIP: $*" >&2; exit 77; }
e2e_fail() { echo "FAIL: $*" >&2; exit 1; }
e2e_pass() { echo "PASS${1:+: $*}" >&2; exit 0; }

# e2e_on_exit CMD [ARGS...]: run CMD at exit (LIFO). Arguments are quoted.
e2e_on_exit() { _E2E_CLEANUP+=("$(printf '%q ' "$@")"); }

_e2e_cleanup() {
    local rc=$? i n
    ((_E2E_CLEANED)) && return
    _E2E_CLEANED=1
    trap - EXIT INT TERM HUP
    set +e
    if ((rc != 0 && rc != 77)); then
        # a test that traps ERR into E2E_LAST_ERR: what failed when set -e ended it without a FAIL line
        [[ -z ${E2E_LAST_ERR:-} ]] || echo "e2e: the last command that failed: $E2E_LAST_ERR" >&2
        for n in "${!VM_LOG[@]}"; do vm_dump_log "$n" 30; done
    fi
    for ((i = ${#_E2E_CLEANUP[@]} - 1; i >= 0; i--)); do
        e2e_vlog "cleanup: ${_E2E_CLEANUP[i]}"
        eval "${_E2E_CLEANUP[i]}" >/dev/null 2>&1
    done
    # vhostd stopped above: a sanitizer report in any of its logs fails the test.
    if [[ -n $E2E_TMP ]] && grep -lE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' \
        "$E2E_TMP"/vhostd-*.log >/dev/null 2>&1; then
        echo "FAIL: sanitizer report in the vhostd log:" >&2
        grep -hE -A20 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$E2E_TMP"/vhostd-*.log | head -40 >&2
        rc=1
    fi
    if [[ -n $E2E_TMP && -d $E2E_TMP ]]; then
        if [[ ${VHOSTD_E2E_KEEP:-0} == 1 ]]; then
            echo "e2e: kept $E2E_TMP" >&2
        else
            rm -rf "$E2E_TMP"
        fi
    fi
    exit "$rc"
}

e2e_require_root() { [[ $(id -u) == 0 ]] || e2e_skip "needs root (namespaces, taps, apt)"; }
e2e_require_tun()  { [[ -c /dev/net/tun ]] || e2e_skip "no /dev/net/tun"; }
e2e_require_cmd()  { local c; for c; do command -v "$c" >/dev/null 2>&1 || e2e_skip "missing command: $c"; done; }

# e2e_init: skip unless root; create $E2E_TMP; install the exit trap; build
# (or reuse) the guest via mkguest.sh -> $GUEST_KERNEL, $GUEST_INITRD;
# skip if qemu-system-x86_64 is still unavailable.
e2e_init() {
    e2e_require_root
    export PATH=$PATH:/usr/sbin:/sbin
    E2E_TMP=$(mktemp -d /tmp/vhostd-e2e.XXXXXX)
    trap _e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    local cache=${VHOSTD_GUEST_CACHE:-$HOME/.cache/vhostd-guest}
    "$E2E_DIR/mkguest.sh" "$cache" || e2e_fail "guest build failed (tests/e2e/mkguest.sh)"
    GUEST_KERNEL=$cache/vmlinuz
    GUEST_INITRD=$cache/initrd.img
    command -v qemu-system-x86_64 >/dev/null 2>&1 || e2e_skip "qemu-system-x86_64 not installed"
    e2e_require_cmd ip
}

# _e2e_alive PID: true if PID exists and is not a zombie.
_e2e_alive() {
    local st
    [[ -r /proc/$1/stat ]] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# e2e_kill PID [TIMEOUT_S=5]: SIGTERM, wait, then SIGKILL. Reaps our children.
e2e_kill() {
    local pid=$1 t=${2:-5} i
    [[ -n $pid ]] || return 0
    if _e2e_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < t * 10; i++)); do _e2e_alive "$pid" || break; sleep 0.1; done
        if _e2e_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null
            for ((i = 0; i < 30; i++)); do _e2e_alive "$pid" || break; sleep 0.1; done
        fi
    fi
    wait "$pid" 2>/dev/null || true # its exit status is not ours: callers run under set -e
    return 0
}

# e2e_spawn VAR [--log FILE] CMD [ARGS...]: run CMD in the background
# (stdout+stderr to FILE, default $E2E_TMP/<cmd>.<n>.log), set VAR to its PID,
# kill it at exit. To run inside a namespace: e2e_spawn VAR ip netns exec NS CMD
# (ip netns exec execs, so the PID is CMD's own).
e2e_spawn() {
    local __var=$1 __log=
    shift
    if [[ $1 == --log ]]; then __log=$2; shift 2; fi
    [[ -n $__log ]] || __log=$E2E_TMP/$(basename "$1").$RANDOM.log
    "$@" </dev/null >"$__log" 2>&1 &
    local __pid=$!
    printf -v "$__var" '%s' "$__pid"
    e2e_on_exit e2e_kill "$__pid"
    e2e_vlog "spawned $__pid: $* (log $__log)"
}

# e2e_wait_for TIMEOUT_S CMD [ARGS...]: poll CMD every 0.1 s until it succeeds.
e2e_wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

# ------------------------------------------------------------------ netns
# netns_create VAR [PREFIX=vhe2e]: create a uniquely named namespace with lo
# up, store its name in VAR, delete it at exit.
netns_create() {
    local __var=$1 __pfx=${2:-vhe2e} __ns
    while :; do
        _E2E_NS_N=$((_E2E_NS_N + 1))
        __ns=$__pfx-$$-$_E2E_NS_N
        [[ -e /run/netns/$__ns ]] || break
    done
    ip netns add "$__ns" || e2e_fail "ip netns add $__ns"
    e2e_on_exit ip netns del "$__ns"
    ip -n "$__ns" link set lo up
    printf -v "$__var" '%s' "$__ns"
    e2e_vlog "netns $__ns"
}
netns_del()  { ip netns del "$1" 2>/dev/null; return 0; }
netns_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# netns_set_ip NS IF [CIDR]: add address (if given) and bring IF up.
netns_set_ip() {
    local ns=$1 dev=$2 cidr=${3:-}
    [[ -n $cidr ]] && { ip -n "$ns" addr add "$cidr" dev "$dev" || return 1; }
    ip -n "$ns" link set "$dev" up
}

# netns_add_tap NS TAP [CIDR] [multi_queue]: persistent tap created inside NS
# (goes away with NS). QEMU must run in NS to open it: vm_start --netns NS.
netns_add_tap() {
    local ns=$1 tap=$2 cidr=${3:-} mq=${4:-}
    ip -n "$ns" tuntap add dev "$tap" mode tap ${mq:+multi_queue} || return 1
    netns_set_ip "$ns" "$tap" "$cidr"
}

# netns_move_link NS IF [CIDR]: move IF from the current namespace into NS.
netns_move_link() {
    ip link set "$2" netns "$1" || return 1
    netns_set_ip "$1" "$2" "${3:-}"
}

# netns_add_veth NS_A IF_A NS_B IF_B [QUEUES=1]: veth pair, each end created
# directly in its namespace ("" = the current one), both ends up. Removed at
# exit (with the namespace, or explicitly when an end is in the current one).
netns_add_veth() {
    local nsa=$1 ifa=$2 nsb=$3 ifb=$4 q=${5:-1}
    ip link add "$ifa" ${nsa:+netns "$nsa"} numtxqueues "$q" numrxqueues "$q" type veth \
        peer name "$ifb" ${nsb:+netns "$nsb"} numtxqueues "$q" numrxqueues "$q" || return 1
    if [[ -z $nsa ]]; then e2e_on_exit ip link del "$ifa"
    elif [[ -z $nsb ]]; then e2e_on_exit ip link del "$ifb"; fi
    if [[ -n $nsa ]]; then ip -n "$nsa" link set "$ifa" up; else ip link set "$ifa" up; fi
    if [[ -n $nsb ]]; then ip -n "$nsb" link set "$ifb" up; else ip link set "$ifb" up; fi
}

# netns_wait_listen NS PORT [TIMEOUT_S=10] [tcp|udp]: wait for a listener.
netns_wait_listen() {
    local ns=$1 port=$2 t=${3:-10} proto=${4:-tcp} flag=-ltn
    [[ $proto == udp ]] && flag=-lun
    e2e_wait_for "$t" _e2e_listening "$ns" "$flag" "$port"
}
_e2e_listening() { ip netns exec "$1" ss -H "$2" "sport = :$3" 2>/dev/null | grep -q .; }

# ------------------------------------------------------------------ VMs
# vm_accel_args: prints the accel args: KVM when usable and not PVM (PVM
# hosts only run PVM guest kernels), else multi-threaded TCG.
vm_accel_args() {
    if [[ -n ${VHOSTD_E2E_ACCEL:-} ]]; then echo "$VHOSTD_E2E_ACCEL"
    elif [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then echo "-accel kvm -cpu host"
    else echo "-accel tcg,thread=multi"; fi
}

_vm_mac() { printf '52:54:00:%02x:%02x:%02x' $(($$ & 255)) $((($$ >> 8) & 255)) $((_VM_NIC_N & 255)); }

# vm_reset: drop NICs/args queued for the next vm_start.
vm_reset() { _VM_PENDING=(); _VM_PENDING_SOCKS=(); }

# vm_add_vhost_user_nic SOCK [QUEUES=1] [MAC=auto] [CHARDEV_OPTS] [DEVICE_OPTS]
#   Queue a vhost-user virtio-net NIC for the next vm_start. CHARDEV_OPTS is
#   appended to the socket chardev, e.g. "server=on" (QEMU listens; it still
#   waits for the back-end before the guest runs) or "reconnect=1" (QEMU is
#   the client and reconnects when the back-end restarts). Default: client,
#   no reconnect. Uses vectors=0 (INTx): QEMU 7.2 TCG crashes with MSI-X here.
vm_add_vhost_user_nic() {
    local sock=$1 q=${2:-1} mac=${3:-} copts=${4:-} devopts=${5:-} n=$_VM_NIC_N
    [[ -n $mac ]] || mac=$(_VM_NIC_N=$n _vm_mac)
    _VM_PENDING+=(-chardev "socket,id=c$n,path=$sock${copts:+,$copts}"
                  -netdev "vhost-user,id=n$n,chardev=c$n,queues=$q"
                  -device "virtio-net-pci,netdev=n$n,mq=on,vectors=0,romfile=,mac=$mac${devopts:+,$devopts}")
    [[ $copts == *server=on* ]] && _VM_PENDING_SOCKS+=("$sock")
    _VM_NIC_N=$((n + 1))
}

# vm_add_tap_nic TAP [QUEUES=1] [MAC=auto]: queue a QEMU tap NIC (QEMU's own
# virtio-net datapath, vhost=off) for baselines. The tap must exist in the
# namespace QEMU runs in (netns_add_tap NS TAP ... multi_queue for QUEUES>1).
vm_add_tap_nic() {
    local tap=$1 q=${2:-1} mac=${3:-} n=$_VM_NIC_N mq=
    [[ -n $mac ]] || mac=$(_VM_NIC_N=$n _vm_mac)
    ((q > 1)) && mq=",mq=on,vectors=$((2 * q + 2))"
    _VM_PENDING+=(-netdev "tap,id=n$n,ifname=$tap,script=no,downscript=no,vhost=off,queues=$q"
                  -device "virtio-net-pci,netdev=n$n,romfile=,mac=$mac$mq")
    _VM_NIC_N=$((n + 1))
}

# vm_add_args ARGS...: raw extra QEMU args for the next vm_start.
vm_add_args() { _VM_PENDING+=("$@"); }

# vm_start NAME [--netns NS] [--smp N=1] [--mem MB=512] [--dimm-slots N --maxmem MB]
#          [--cmd SNIPPET] [--append STR] [--] [KEY=VAL ...]
#   Boot the guest with the queued NICs (then cleared). --cmd is passed as
#   vm_cmd64 (base64); KEY=VAL go on the kernel command line (vm_ip=,
#   vm_mtu=, vm_queues=, vm_ip1=, vm_gw=, vm_link_wait=; see mkguest.sh).
#   --dimm-slots/--maxmem: room for memory hot-plugged later (pc-dimm).
#   Sets VM_PID[NAME], VM_LOG[NAME] (serial console), VM_DIR[NAME],
#   VM_MON[NAME] (HMP monitor unix socket), VM_T0[NAME] (start, epoch s).
#   The VM is stopped at exit. Returns at once; use vm_wait_marker/vm_wait_cmd.
vm_start() {
    local name=$1 ns='' smp=1 mem=512 slots='' maxmem='' cmd='' append='' kv=()
    shift
    while (($#)); do
        case $1 in
            --netns) ns=$2; shift 2 ;;
            --smp) smp=$2; shift 2 ;;
            --mem) mem=$2; shift 2 ;;
            --dimm-slots) slots=$2; shift 2 ;;
            --maxmem) maxmem=$2; shift 2 ;;
            --cmd) cmd=$2; shift 2 ;;
            --append) append=$2; shift 2 ;;
            --) shift; kv+=("$@"); break ;;
            *) kv+=("$1"); shift ;;
        esac
    done
    [[ -n $E2E_TMP ]] || e2e_fail "vm_start before e2e_init"
    [[ -z ${VM_PID[$name]:-} ]] || e2e_fail "vm $name already started"
    local dir=$E2E_TMP/vm-$name
    mkdir -p "$dir"
    local cl="console=ttyS0 quiet panic=-1 $append ${kv[*]}"
    [[ -n $cmd ]] && cl+=" vm_cmd64=$(printf '%s' "$cmd" | base64 -w0)"
    ((${#cl} < 2000)) || e2e_fail "kernel command line too long (${#cl})"
    local -a q
    # shellcheck disable=SC2207
    q=(qemu-system-x86_64 -name "$name" -nodefaults -no-user-config -display none
       $(vm_accel_args) -machine pc -smp "$smp" -m "${mem}M${slots:+,slots=$slots,maxmem=${maxmem}M}"
       -object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem
       -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" -append "$cl"
       -serial "file:$dir/serial.log" -monitor "unix:$dir/mon.sock,server=on,wait=off"
       -no-reboot "${_VM_PENDING[@]}")
    [[ -f /usr/share/qemu/qboot.rom ]] && q+=(-bios /usr/share/qemu/qboot.rom)
    [[ -n $ns ]] && q=(ip netns exec "$ns" "${q[@]}")
    printf '%q ' "${q[@]}" >"$dir/cmdline"; echo >>"$dir/cmdline"
    : >"$dir/serial.log"
    VM_T0[$name]=$(date +%s.%N)
    "${q[@]}" </dev/null >"$dir/qemu.log" 2>&1 &
    VM_PID[$name]=$!
    VM_LOG[$name]=$dir/serial.log
    VM_DIR[$name]=$dir
    VM_MON[$name]=$dir/mon.sock
    local s
    for s in "${_VM_PENDING_SOCKS[@]}"; do e2e_on_exit rm -f "$s"; done
    e2e_on_exit vm_stop "$name"
    e2e_vlog "vm $name pid ${VM_PID[$name]}: $(cat "$dir/cmdline")"
    vm_reset
}

vm_log() { echo "${VM_LOG[$1]}"; }

# vm_dump_log NAME [LINES=40]: tail of the serial log and QEMU's stderr.
vm_dump_log() {
    local d=${VM_DIR[$1]:-}
    [[ -n $d ]] || return 0
    echo "----- vm $1 serial (last ${2:-40} lines) -----" >&2
    tail -n "${2:-40}" "$d/serial.log" >&2 2>/dev/null
    if [[ -s $d/qemu.log ]]; then echo "----- vm $1 qemu stderr -----" >&2; tail -n 20 "$d/qemu.log" >&2; fi
    echo "-----" >&2
}

# vm_wait_marker NAME ERE [TIMEOUT_S=60]: wait for a serial log line matching
# ERE. Returns 0 found, 1 timeout, 2 QEMU exited without it.
vm_wait_marker() {
    local name=$1 re=$2 t=${3:-60} log=${VM_LOG[$1]} pid=${VM_PID[$1]} i
    for ((i = 0; i < t * 10; i++)); do
        grep -aEq -- "$re" "$log" 2>/dev/null && return 0
        if ! _e2e_alive "$pid"; then
            grep -aEq -- "$re" "$log" 2>/dev/null && return 0
            e2e_log "vm $name: QEMU exited while waiting for /$re/"
            return 2
        fi
        sleep 0.1
    done
    e2e_log "vm $name: timeout (${t}s) waiting for /$re/"
    return 1
}

# vm_wait_cmd NAME [TIMEOUT_S=120]: wait for the guest command to finish;
# sets VM_RC to its exit code (empty if it never finished). Returns 0 iff
# the command exited 0.
vm_wait_cmd() {
    VM_RC=
    vm_wait_marker "$1" '^VM-CMD-EXIT=[0-9]+' "${2:-120}" || return 1
    VM_RC=$(vm_cmd_rc "$1")
    [[ $VM_RC == 0 ]]
}

# vm_cmd_rc NAME: print the guest command's exit code (from the serial log).
vm_cmd_rc() { grep -aoE '^VM-CMD-EXIT=[0-9]+' "${VM_LOG[$1]}" | tail -n1 | cut -d= -f2; }

# vm_wait_boot NAME [TIMEOUT_S=60]: wait until the guest's /init runs
# (VM-BOOTED); sets VM_BOOT_S[NAME] = host seconds since vm_start (0.1 s
# resolution) and VM_BOOT_GUEST_S[NAME] = guest uptime at that point.
vm_wait_boot() {
    vm_wait_marker "$1" '^VM-BOOTED' "${2:-60}" || return
    VM_BOOT_S[$1]=$(awk -v a="${VM_T0[$1]}" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
    VM_BOOT_GUEST_S[$1]=$(grep -a -m1 '^VM-BOOTED' "${VM_LOG[$1]}" | sed 's/.*uptime=//; s/\r//')
}

# vm_wait_exit NAME [TIMEOUT_S=30]: wait for QEMU to exit by itself.
vm_wait_exit() {
    e2e_wait_for "${2:-30}" eval "! _e2e_alive ${VM_PID[$1]}" || return 1
    wait "${VM_PID[$1]}" 2>/dev/null
    return 0
}

# vm_stop NAME: stop QEMU by PID (SIGTERM, then SIGKILL). The name can then
# be reused by vm_start (its logs are overwritten).
vm_stop() {
    local pid=${VM_PID[$1]:-}
    [[ -n $pid ]] || return 0
    e2e_kill "$pid" 5
    VM_PID[$1]=
}

# ---- vhostd helpers ----
VHOSTD_BIN=${VHOSTD_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/vhostd}
VHOSTCTL_BIN=${VHOSTCTL_BIN:-$(dirname "$VHOSTD_BIN")/vhostctl}

# vhostd_start VAR CTL [--netns NS] ARGS... : starts vhostd with control socket CTL; VAR gets its PID.
vhostd_start() {
    local var=$1 ctl=$2; shift 2
    local ns=""
    if [ "${1:-}" = --netns ]; then ns=$2; shift 2; fi
    [ -x "$VHOSTD_BIN" ] || e2e_fail "no vhostd binary at $VHOSTD_BIN (run make)"
    local log="$E2E_TMP/vhostd-$var.log"
    if [ -n "$ns" ]; then
        e2e_spawn "$var" --log "$log" ip netns exec "$ns" "$VHOSTD_BIN" -C "$ctl" "$@"
    else
        e2e_spawn "$var" --log "$log" "$VHOSTD_BIN" -C "$ctl" "$@"
    fi
    e2e_wait_for 10 test -S "$ctl" || { cat "$log" >&2; e2e_fail "vhostd did not start"; }
}

# vhostctl_json CTL : vhostd's state as JSON
vhostctl_json() { "$VHOSTCTL_BIN" -s "$1" --json; }

# vring_counter CTL VRING FIELD : one counter of one vring of the first port
vring_counter() { vhostctl_json "$1" | jq -r ".ports[0].vrings[$2].$3"; }

# link_stat NS IF NAME : /sys/class/net/IF/statistics/NAME inside NS
link_stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

# proc_snapshot PID : "fds threads maps-of-memfd" of a process, to compare before/after
proc_snapshot() {
    local pid=$1
    echo "$(ls /proc/"$pid"/fd | wc -l) $(ls /proc/"$pid"/task | wc -l) $(grep -c memfd /proc/"$pid"/maps)"
}
