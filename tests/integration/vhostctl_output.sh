#!/bin/bash
# vhostctl against a running vhostd (loopback port, 2 queue pairs, control socket):
#   - text output lists the port; "status" is the default command;
#   - --json is one valid JSON document with the documented keys, and vrings == [] before a front-end;
#   - --prometheus is valid Prometheus text exposition (HELP and TYPE once per family, before its samples, families
#     contiguous, counters named *_total, well-formed labels and values, no duplicate series, final newline), and
#     has the same series and values as --json (checked with awk and jq, not promtool);
#   - --watch prints a report per interval, ends after --count N or on SIGINT (exit 0);
#   - with a dpdk-testpmd virtio-user front-end (io forwarding, --tx-first, so frames circle through the loopback
#     port), 4 vrings (rx/tx per queue pair) that are started and count frames, in JSON and text; every
#     --prometheus counter lies between the --json answers taken before and after it; --watch --count 2 -i 1
#     shows frames/s > 0 on every vring, in line with the counters' growth;
#   - after the front-end leaves, vrings == [] again and the connection is counted, in JSON and Prometheus;
#   - an unknown command or option, bad --interval/--count, conflicting modes exit 2, a missing control socket
#     exits 1, each with a clear message.
# Needs jq; the front-end part needs root and dpdk-testpmd (Debian package dpdk-dev), and is skipped (exit 77, after
# the rest passed) without them. Exit 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/common.sh"

command -v jq >/dev/null || skip "jq not installed"
[ -x "$VHOSTD" ] && [ -x "$VHOSTCTL" ] || skip "$VHOSTD or $VHOSTCTL not built (run make)"

# prom_check FILE: the Prometheus text exposition format 0.0.4, as node_exporter's textfile collector reads it.
prom_check() {
    if [ ! -s "$1" ] || [ "$(tail -c1 "$1" | od -An -c | tr -d ' ')" != '\n' ]; then
        echo "empty, or no final newline"
        return 1
    fi
    awk '
    function bad(msg) { printf "line %d: %s: %s\n", NR, msg, $0; err = 1; exit 1 }
    /^# HELP / {
        if ($3 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) bad("bad metric name")
        if (help[$3]++) bad("second HELP")
        if ($3 in done || $3 == cur) bad("HELP after the family started")
        if (NF < 4) bad("HELP without text")
        next
    }
    /^# TYPE / {
        if (NF != 4 || ($4 != "counter" && $4 != "gauge")) bad("bad TYPE line")
        if ($3 in type) bad("second TYPE")
        if (!($3 in help)) bad("TYPE without HELP")
        if ($4 == "counter" && $3 !~ /_total$/) bad("counter not named *_total")
        if (cur != "") done[cur] = 1
        type[$3] = $4; cur = $3
        next
    }
    /^#/ { bad("unexpected comment") }
    /^$/ { bad("empty line") }
    {
        if (!match($0, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) bad("no metric name")
        n = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1); labels = ""
        if (!(n in type)) bad("sample before its TYPE")
        if (n != cur) bad("sample outside its family")
        if (substr(rest, 1, 1) == "{") {
            rest = substr(rest, 2)
            while (substr(rest, 1, 1) != "}") {
                if (!match(rest, /^[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\["\\n])*"/)) bad("bad label")
                l = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
                split(l, kv, "=")
                if (kv[1] in seenkey) bad("label twice"); seenkey[kv[1]] = 1
                labels = labels l ","
                if (substr(rest, 1, 1) == ",") rest = substr(rest, 2)
                else if (substr(rest, 1, 1) != "}") bad("bad label separator")
            }
            split("", seenkey)
            rest = substr(rest, 2)
        }
        if (rest !~ /^ (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[-+]Inf)$/) bad("bad value")
        if (type[n] == "counter" && rest ~ /^ -/) bad("negative counter")
        if (seen[n "{" labels]++) bad("duplicate series")
        samples++
    }
    END { if (!err && !samples) { print "no samples"; exit 1 } }
    ' "$1"
}

# The samples of --prometheus (stdin) as "METRIC|PORT|VRING VALUE" lines (VRING "-" for a port), vring labels checked.
prom_lines() {
    awk '!/^#/ {
        port = "?"; vring = "-"
        if (match($0, /port="[^"]*"/)) port = substr($0, RSTART + 6, RLENGTH - 7)
        if (match($0, /vring="[0-9]+"/)) {
            vring = substr($0, RSTART + 7, RLENGTH - 8)
            want = "queue_pair=\"" int(vring / 2) "\",direction=\"" (vring % 2 ? "tx" : "rx") "\""
            if (index($0, want) == 0) { print "BAD vring labels: " $0; next }
        }
        name = $0; sub(/\{.*/, "", name)
        print name "|" port "|" vring " " $NF
    }'
}

# The same from --json (stdin), with the metric names --prometheus uses.
json_lines() {
    jq -r 'def b: if . then 1 else 0 end;
        .ports[] as $p |
        (([["vhostd_port_info", 1], ["vhostd_port_queue_pairs", $p.queue_pairs],
           ["vhostd_port_connected", ($p.connected | b)], ["vhostd_port_connections_total", $p.connections],
           ["vhostd_port_down", ($p.port_down | b)], ["vhostd_port_faults_total", $p.port_faults],
           ["vhostd_port_recoveries_total", $p.port_recoveries],
           ["vhostd_port_mem_regions", ($p.mem_regions // 0)], ["vhostd_port_dirty_logging", (($p.dirty_logging // false) | b)]]
          + (if $p.kernel_drops == null then [] else [["vhostd_port_kernel_drops_total", $p.kernel_drops]] end))[]
         | "\(.[0])|\($p.name)|- \(.[1])"),
        ($p.vrings[] as $v |
         [["started", ($v.started | b)], ["enabled", ($v.enabled | b)], ["broken", ($v.broken | b)],
          ["size", $v.size], ["frames_total", $v.frames], ["bytes_total", $v.bytes], ["drops_total", $v.drops],
          ["drops_too_big_total", $v.drop_too_big], ["drops_port_total", $v.drop_port],
          ["kicks_total", $v.kicks], ["calls_total", $v.calls], ["wait_guest_total", $v.wait_guest],
          ["wait_port_total", $v.wait_port], ["retry_wakeups_total", $v.retry_wakeups]][]
         | "vhostd_vring_\(.[0])|\($p.name)|\($v.index) \(.[1])")'
}

# prom_agrees JSON1 PROM JSON2: --prometheus has the same series as --json, each value between the two --json
# answers taken before and after it (equal when nothing moves: pass the same file twice).
prom_agrees() {
    local a b c
    a=$(json_lines <"$1" | sort) && b=$(prom_lines <"$2" | sort) && c=$(json_lines <"$3" | sort) || return 1
    if grep -q '^BAD' <<<"$b"; then grep '^BAD' <<<"$b"; return 1; fi
    if [ "$(cut -d' ' -f1 <<<"$a")" != "$(cut -d' ' -f1 <<<"$b")" ]; then
        echo "series differ (< json, > prometheus):"
        diff <(cut -d' ' -f1 <<<"$a") <(cut -d' ' -f1 <<<"$b") | head -n 20
        return 1
    fi
    join <(echo "$a") <(echo "$b") | join - <(echo "$c") |
        awk '!($2 <= $3 && $3 <= $4) { print "out of bounds (json before, prometheus, json after): " $0; bad = 1 }
             END { exit bad }'
}

# watch_rows FILE PORT: the vring rows of PORT in --watch output: "VRING DIR QP FRAMES/s Mbit/s".
watch_rows() { awk -v p="$2" '$2 == p && $3 ~ /^[0-9]+$/ { print $3, $4, $5, $6, $7 }' "$1"; }

DPDK_PREFIX=vhostctl-test-$$
cleanup_extra() { [ "$(id -u)" -ne 0 ] || rm -rf "/var/run/dpdk/$DPDK_PREFIX"; }
test_tmpdir vhostctl

CTL=$T/vhostd.ctl
SOCK=$T/vu.sock
"$VHOSTD" -b loopback -q 2 -s "$SOCK" -C "$CTL" >"$T/vhostd.log" 2>&1 </dev/null &
VHOSTD_PID=$!
PIDS+=("$VHOSTD_PID")
wait_for 10 test -S "$CTL" || fail "vhostd did not create its control socket"
[ "$(stat -c %a "$CTL")" = 600 ] || fail "control socket mode is $(stat -c %a "$CTL"), expected 600"

# --- before a front-end ---------------------------------------------------------------------------------------------
text=$("$VHOSTCTL" -s "$CTL") || fail "vhostctl (text) exited $?"
echo "$text" | sed 's/^/    /'
grep -q "^port net0: loopback, socket $SOCK (server), 2 queue pairs, no front-end, 0 connections$" <<<"$text" ||
    fail "text output does not list the port as expected"
[ "$("$VHOSTCTL" -s "$CTL" status)" = "$text" ] || fail "'vhostctl status' differs from plain 'vhostctl'"
ok "text output lists port net0; 'status' is the default"

json=$("$VHOSTCTL" -s "$CTL" --json) || fail "vhostctl --json exited $?"
jq -e . >/dev/null <<<"$json" || fail "--json output is not JSON: $json"
[ "$("$VHOSTCTL" -s "$CTL" -j)" = "$json" ] || fail "-j differs from --json"
jq -e '(.ports | length) == 1 and (.ports[0] | (.vrings == [] and .connected == false and .connections == 0
        and .name == "net0" and .backend == "loopback" and .ifname == "" and .mode == "server"
        and .queue_pairs == 2 and .kernel_drops == null))' >/dev/null <<<"$json" ||
    fail "unexpected JSON before a front-end: $json"
jq -e --arg s "$SOCK" '.ports[0].socket == $s' >/dev/null <<<"$json" || fail "JSON socket is not $SOCK: $json"
want='["backend","connected","connections","ifname","kernel_drops","mode","name","port_down","port_faults","port_recoveries","queue_pairs","socket","vrings"]'
jq -e --argjson w "$want" '.ports[0] | keys | contains($w)' >/dev/null <<<"$json" ||
    fail "JSON port lacks some of $want: $(jq -c '.ports[0] | keys' <<<"$json")"
ok "--json: valid, keys $(jq -c '.ports[0] | keys' <<<"$json"), vrings == []"

"$VHOSTCTL" -s "$CTL" --prometheus >"$T/prom0" || fail "vhostctl --prometheus exited $?"
err=$(prom_check "$T/prom0") || fail "--prometheus is not valid exposition format: $err"
[ "$("$VHOSTCTL" -s "$CTL" -p)" = "$(cat "$T/prom0")" ] || fail "-p differs from --prometheus"
grep -qFx "vhostd_port_info{port=\"net0\",backend=\"loopback\",ifname=\"\",socket=\"$SOCK\",mode=\"server\"} 1" \
    "$T/prom0" || fail "no vhostd_port_info line for net0: $(grep port_info "$T/prom0")"
for m in vhostd_port_connected vhostd_port_connections_total vhostd_port_faults_total vhostd_vring_frames_total \
    vhostd_vring_bytes_total vhostd_vring_drops_total vhostd_vring_kicks_total vhostd_vring_calls_total; do
    grep -q "^# TYPE $m " "$T/prom0" || fail "--prometheus has no family $m"
done
! grep -q '^vhostd_port_kernel_drops_total' "$T/prom0" || fail "kernel_drops for a loopback port (cannot tell)"
"$VHOSTCTL" -s "$CTL" --json >"$T/json0"
err=$(prom_agrees "$T/json0" "$T/prom0" "$T/json0") || fail "--prometheus and --json disagree: $err"
ok "--prometheus: valid exposition format, $(grep -c '^# TYPE' "$T/prom0") families," \
    "the same series and values as --json"

out=$("$VHOSTCTL" -s "$CTL" --watch --count 1 -i 0.2) || fail "vhostctl --watch --count 1 exited $?"
echo "$out" | sed 's/^/    /'
[ "$(grep -c '^TIME ' <<<"$out")" -eq 1 ] || fail "--watch --count 1: not one report: $out"
grep -qE '^[0-9:]{8} +net0 +- +- +- +no front-end$' <<<"$out" || fail "--watch without a front-end: $out"
ok "--watch --count 1 without a front-end: one report, net0 has no front-end"

for args in "--watch -i 0" "--watch -i x" "--watch --count 0" "--watch -c -1" "-i 1" "--count 2" "--json --prometheus" \
    "--json --watch" "--prometheus --watch" "status extra"; do
    # shellcheck disable=SC2086
    err=$("$VHOSTCTL" -s "$CTL" $args 2>&1)
    rc=$?
    [ $rc -eq 2 ] || fail "vhostctl $args: exit $rc, expected 2: $err"
done
ok "bad --interval/--count, --interval/--count without --watch, conflicting modes: exit 2"

# --- vhostctl's own errors ----------------------------------------------------------------------------------------------
err=$("$VHOSTCTL" -s "$CTL" bogus 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "unknown command: exit $rc, expected 2: $err"
grep -q "unknown command 'bogus'" <<<"$err" || fail "unknown command: unclear message: $err"
ok "unknown command: exit 2 ($(head -n1 <<<"$err"))"

err=$("$VHOSTCTL" --no-such-option 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "unknown option: exit $rc, expected 2: $err"
ok "unknown option: exit 2"

"$VHOSTCTL" --help | grep -q '^Usage: vhostctl' || fail "vhostctl --help prints no usage"

err=$("$VHOSTCTL" -s "$T/missing.ctl" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "missing socket: exit $rc, expected 1: $err"
grep -q "cannot connect to $T/missing.ctl: No such file or directory" <<<"$err" ||
    fail "missing socket: unclear message: $err"
ok "missing control socket: exit 1 ($err)"

: >"$T/not-a-socket"
err=$("$VHOSTCTL" -s "$T/not-a-socket" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "plain file as control socket: exit $rc, expected 1: $err"
ok "plain file as control socket: exit 1 ($err)"

long=$T/$(printf 'x%.0s' $(seq 120))
err=$("$VHOSTCTL" -s "$long" 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "too long socket path: exit $rc, expected 2: $err"
ok "too long socket path: exit 2 ($err)"

# --- with a front-end -----------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "front-end part needs root (dpdk-testpmd); everything before it passed"
command -v dpdk-testpmd >/dev/null ||
    skip "dpdk-testpmd not installed (Debian package dpdk-dev); everything before it passed"

# io forwarding on a single port sends what it receives back out; --tx-first starts the circle, and the loopback
# port returns every frame on the same queue pair. Without hugepages (see docs/test notes).
dpdk-testpmd -l 0-1 --no-huge -m 256 --no-pci --file-prefix="$DPDK_PREFIX" \
    --vdev "net_virtio_user0,path=$SOCK,queues=2" -- \
    --total-num-mbufs=16384 --disable-link-check --forward-mode=io --auto-start --stats-period 3600 \
    --rxq=2 --txq=2 --tx-first >"$T/testpmd.log" 2>&1 </dev/null &
TESTPMD_PID=$!
PIDS+=("$TESTPMD_PID")

all_counting() {
    "$VHOSTCTL" -s "$CTL" --json | jq -e '.ports[0].vrings | length == 4 and all(.frames > 0)' >/dev/null
}
wait_for 30 all_counting || fail "the 4 vrings did not all count frames within 30 s: $("$VHOSTCTL" -s "$CTL" --json)"

json=$("$VHOSTCTL" -s "$CTL" --json) || fail "vhostctl --json exited $?"
jq -e '.ports[0] | .connected == true and .connections == 1 and (.vrings | length) == 4' >/dev/null <<<"$json" ||
    fail "unexpected JSON with a front-end: $json"
jq -e '[.ports[0].vrings[] | [.index, .queue_pair, .direction]] == [[0,0,"rx"],[1,0,"tx"],[2,1,"rx"],[3,1,"tx"]]' \
    >/dev/null <<<"$json" || fail "vring index/queue_pair/direction wrong: $json"
jq -e '.ports[0].vrings | all(.started and .enabled and .size > 0 and .broken == false and .frames > 0
        and .bytes >= .frames * 60)' >/dev/null <<<"$json" || fail "vrings not started/counting: $json"
want='["broken","bytes","calls","direction","drops","enabled","frames","index","kicks","queue_pair","size","started"]'
jq -e --argjson w "$want" '.ports[0].vrings | all(keys | contains($w))' >/dev/null <<<"$json" ||
    fail "a vring lacks some of $want: $json"
jq -e '.ports[0] | (.features | test("^0x[0-9a-f]+$")) and (.mtu | type) == "number"' >/dev/null <<<"$json" ||
    fail "features/mtu missing or malformed: $json"
jq -r '.ports[0].vrings[] | "    vring \(.index) \(.direction) \(.queue_pair): frames \(.frames) bytes \(.bytes) drops \(.drops) kicks \(.kicks)"' <<<"$json"
ok "with a front-end: connected, 4 vrings (rx/tx x 2 queue pairs), all started and counting"

text=$("$VHOSTCTL" -s "$CTL") || fail "vhostctl (text) exited $?"
grep -q "^port net0: loopback, socket $SOCK (server), 2 queue pairs, connected, 1 connection$" <<<"$text" ||
    fail "text output with a front-end: port line unexpected: $text"
n=$(grep -cE '^  vring [0-3] \((rx|tx) [01]\): started .*frames [1-9]' <<<"$text")
[ "$n" -eq 4 ] || fail "text output shows $n counting vrings, expected 4: $text"
ok "text output shows the connection and 4 counting vrings"

# Counters only grow while the front-end runs.
f1=$(jq '[.ports[0].vrings[].frames] | add' <<<"$json")
sleep 0.5
f2=$("$VHOSTCTL" -s "$CTL" --json | jq '[.ports[0].vrings[].frames] | add')
[ "$f2" -gt "$f1" ] || fail "frame counters did not grow: $f1 then $f2"
ok "counters grow ($f1 -> $f2 frames)"

"$VHOSTCTL" -s "$CTL" --json >"$T/json1"
"$VHOSTCTL" -s "$CTL" --prometheus >"$T/prom1"
"$VHOSTCTL" -s "$CTL" --json >"$T/json2"
err=$(prom_check "$T/prom1") || fail "--prometheus with a front-end is not valid exposition format: $err"
err=$(prom_agrees "$T/json1" "$T/prom1" "$T/json2") ||
    fail "--prometheus with traffic does not lie between the --json answers around it: $err"
grep -E '^vhostd_vring_frames_total' "$T/prom1" | sed 's/^/    /'
ok "--prometheus with traffic: valid, $(grep -c '^vhostd_vring' "$T/prom1") vring samples," \
    "each between the --json answers around it"

# --watch: per-second rates over 2 intervals of 1 s, against the counters' own growth over the same time.
f1=$("$VHOSTCTL" -s "$CTL" --json | jq '[.ports[0].vrings[].frames] | add')
t1=$(date +%s.%N)
"$VHOSTCTL" -s "$CTL" --watch --count 2 -i 1 >"$T/watch1" || fail "vhostctl --watch --count 2 -i 1 exited $?"
f2=$("$VHOSTCTL" -s "$CTL" --json | jq '[.ports[0].vrings[].frames] | add')
t2=$(date +%s.%N)
sed 's/^/    /' "$T/watch1"
header='^TIME  *PORT  *VRING  *DIR  *QP  *FRAMES/s  *Mbit/s  *DROPS/s  *KDROPS/s  *KICKS/s  *CALLS/s$'
[ "$(grep -c "$header" "$T/watch1")" -eq 2 ] ||
    fail "--watch --count 2: not 2 reports with the documented columns"
rows=$(watch_rows "$T/watch1" net0)
[ "$(wc -l <<<"$rows")" -eq 8 ] || fail "--watch: expected 4 vring rows in each of 2 reports: $rows"
awk '$4 <= 0 || $5 <= 0 { exit 1 }' <<<"$rows" ||
    fail "--watch: a vring shows no frames/s or Mbit/s with traffic: $rows"
awk '!(($1 % 2 == 0 && $2 == "rx" || $1 % 2 == 1 && $2 == "tx") && $3 == int($1 / 2)) { exit 1 }' <<<"$rows" ||
    fail "--watch: vring, direction and queue pair do not match: $rows"
# Each report's sum (the "all" row) against the mean rate from the counters: same order of magnitude.
mean=$(echo "($f2 - $f1) / ($t2 - $t1)" | bc -l)
awk -v m="$mean" '$2 == "net0" && $3 == "all" { n++; if (!($6 > m / 4 && $6 < m * 4)) bad = 1 }
    END { exit !(n == 2 && !bad) }' "$T/watch1" ||
    fail "--watch: the 'all' rows do not match the counters' mean rate of $(printf '%.0f' "$mean") frames/s"
ok "--watch --count 2 -i 1: 2 reports, frames/s > 0 on all 4 vrings," \
    "totals near the counters' $(printf '%.0f' "$mean") frames/s"

"$VHOSTCTL" -s "$CTL" --watch -i 0.2 >"$T/watch2" 2>&1 &
wpid=$!
sleep 1
kill -INT "$wpid"
wait "$wpid"
rc=$?
[ $rc -eq 0 ] || fail "--watch ended by SIGINT: exit $rc, expected 0: $(cat "$T/watch2")"
[ "$(grep -c '^TIME ' "$T/watch2")" -ge 2 ] ||
    fail "--watch -i 0.2 printed fewer than 2 reports in 1 s: $(cat "$T/watch2")"
ok "--watch ends on SIGINT with exit 0 ($(grep -c '^TIME ' "$T/watch2") reports in 1 s at -i 0.2)"

kill -TERM "$TESTPMD_PID"
wait "$TESTPMD_PID"
PIDS=("$VHOSTD_PID")
gone() { "$VHOSTCTL" -s "$CTL" --json | jq -e '.ports[0] | .connected == false and .vrings == []' >/dev/null; }
wait_for 10 gone || fail "after the front-end left: $("$VHOSTCTL" -s "$CTL" --json)"
"$VHOSTCTL" -s "$CTL" --json | jq -e '.ports[0].connections == 1' >/dev/null || fail "connection not counted"
"$VHOSTCTL" -s "$CTL" | grep -q 'no front-end, 1 connection$' || fail "text output after disconnect unexpected"
ok "after the front-end left: not connected, vrings == [], 1 connection counted"
"$VHOSTCTL" -s "$CTL" --json >"$T/json3"
"$VHOSTCTL" -s "$CTL" --prometheus >"$T/prom3"
err=$(prom_check "$T/prom3") || fail "--prometheus after the front-end left is not valid: $err"
err=$(prom_agrees "$T/json3" "$T/prom3" "$T/json3") ||
    fail "--prometheus and --json disagree after the front-end left: $err"
grep -qx 'vhostd_port_connections_total{port="net0"} 1' "$T/prom3" || fail "--prometheus: connection not counted"
! grep -q '^vhostd_vring_' "$T/prom3" || fail "--prometheus still has vring samples after the front-end left"
ok "--prometheus after the front-end left: no vring samples, 1 connection, agrees with --json"

kill -TERM "$VHOSTD_PID"
wait "$VHOSTD_PID"
rc=$?
PIDS=()
[ $rc -eq 0 ] || fail "vhostd exited $rc on SIGTERM"
[ ! -e "$CTL" ] || fail "vhostd left its control socket behind"
err=$("$VHOSTCTL" -s "$CTL" 2>&1)
[ $? -eq 1 ] || fail "vhostctl after vhostd stopped: expected exit 1: $err"
ok "vhostd stopped: control socket removed, vhostctl exits 1"
echo "PASS"
exit 0
