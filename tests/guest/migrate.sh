#!/bin/bash
# Migration between two vmm processes on this host (guest-tests/snapshot: a
# round counter that stamps and verifies every page from 16 MiB up, a
# periodic LAPIC timer, a virtio-blk disk written, read back and flushed each
# round; the disk is shared storage, the same file for both):
#   - over TCP (loopback), over a unix socket, and between two network
#     namespaces joined by a veth pair (two "hosts"; root only; there the
#     guest also has a NIC on a persistent tap of the same name in each
#     namespace, on a bridge): `migrate` returns {}, the
#     source sends MIGRATION setup, active, completed and exits 0; the
#     destination (--incoming) runs on: the serial output of both joined is
#     one consecutive count, every page verifies, the timer ticks on, the
#     disk keeps working; in the namespaces the destination's bridge has
#     learnt the guest's MAC on its tap's port, though this guest never sends
#     a frame: vmm's RARP announce after the load;
#   - live: RAM goes while the guest runs and keeps writing pages (pre-copy
#     with KVM's dirty log); pages it wrote after they were sent must arrive
#     again, or the destination's next round finds a stale page and FAILs;
#   - failures leave the source running unchanged: nobody listening
#     (MIGRATION failed, the count goes on), a destination that refuses the
#     machine (its --serial takes the port away: error-desc with its
#     reason), a peer that takes part of the stream and hangs up, and
#     migrate_cancel while the source is stuck sending to a peer that never
#     reads (MIGRATION cancelled); migrate-set-parameters downtime-limit;
#   - a destination fed garbage or a stream cut short: exit 2, one line;
#   - QMP answers while the destination reads RAM (plain and defer); the
#     guest keeps its source's CPUID, and a destination whose KVM lacks a
#     bit the guest has refuses (CPU model mismatch); a NIC on an inherited
#     fd moves to the destination's own --net fd= (root); virtio-mem with
#     blocks plugged; the PCI/CPU hotplug state with an eject pending.
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: migrate.sh VMM IMAGE_DIR SOURCE_ROOT QMP_CLIENT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") images=$(readlink -f "$2") srcroot=$3 qmpc=$(readlink -f "$4")
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-migrate.XXXXXX")
src= dst= fake=
trap 'kill -KILL $src $dst $fake 2>/dev/null; [ -n "${VMM_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
count_lines() { cat "$@" 2>/dev/null | grep -a -c '^count '; }
# Waits up to 60 s until the joined FILES have at least N count lines.
wait_counts() {
    local want=$1 i=0; shift
    while [ "$(count_lines "$@")" -lt "$want" ] && [ $i -lt 600 ]; do
        cat "$@" 2>/dev/null | grep -q FAIL && return
        sleep 0.1; i=$((i + 1))
    done
}
qmp() {
    local sock=$1; shift
    { echo '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"; } | "$qmpc" "$sock" 2>&1 | tail -n +3
}
# mig_run SOCK PID COMMAND...: runs the commands on one connection and holds
# it (its events come on it) until the migration has ended (query-migrate on
# a second connection says completed, failed or cancelled, or the source
# PID is gone), then asks query-migrate and query-status on it (if the
# source still runs). query-migrate is asked only once every command has
# its reply: before vmm has read the migrate, it tells of the one before
# (a source that failed once says "failed" until the next one starts).
mig_run() {
    local sock=$1 pid=$2 out=$tmp/mig_run.out; shift 2
    local want=$(($# + 1))
    : > "$out"
    {
        echo '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"
        local i=0 st
        while [ "$(grep -cE '^\{"(return|error)"' "$out")" -lt $want ] && [ $i -lt 600 ] &&
            kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
        i=0
        while [ $i -lt 600 ] && kill -0 "$pid" 2>/dev/null; do
            st=$(qmp "$sock" '{"execute":"query-migrate"}' | grep -o '"status": "[a-z]*"' | head -n 1)
            case $st in *completed*|*failed*|*cancelled*) break ;; esac
            sleep 0.1; i=$((i + 1))
        done
        # (a source that has exited gets nothing more: its events are read)
        kill -0 "$pid" 2>/dev/null && { echo '{"execute":"query-migrate"}'; echo '{"execute":"query-status"}'; }
    } | "$qmpc" "$sock" 2>&1 | tee "$out" | tail -n +3
}
consecutive() {
    cat "$@" | grep -a '^count ' | awk '{ if ($2 != NR) { print "line " NR ": " $0; bad = 1; exit } } END { exit bad }'
}
last_count() { cat "$@" | grep -a '^count ' | tail -n 1 | awk '{ print $2 }'; }
last_ticks() { cat "$@" | grep -a '^count ' | tail -n 1 | awk '{ print $4 }'; }
# A free TCP port in $p: one that binds now, on every address, below the
# kernel's ephemeral range (so no outgoing connection takes it meanwhile),
# and that this script has not handed out before (a listener may still
# hold it, or its socket linger); ports were once taken from a counter
# without checking, and one in use made a case flake.
used_ports=" "
newport() {
    p=$(python3 -c '
import random, socket, sys
lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
top = lo if lo > 12000 else 65535
used = set(sys.argv[1].split())
for _ in range(1000):
    q = random.randrange(10000, top)
    if str(q) in used or (lo <= q <= hi):
        continue
    s = socket.socket()
    try:
        s.bind(("", q))
    except OSError:
        continue
    finally:
        s.close()
    print(q)
    break' "$used_ports")
    [ -n "$p" ] || { echo "Bail out! no free TCP port found"; exit 1; }
    used_ports="$used_ports$p "
}
# Waits up to 30 s until something listens on URI (tcp:HOST:PORT in the
# namespace of the optional ip-netns-exec prefix that follows, or unix:PATH).
wait_listen() {
    local uri=$1 i=0; shift
    while [ $i -lt 300 ]; do
        case $uri in
            unix:*) [ -S "${uri#unix:}" ] && return ;;
            tcp:*) [ -n "$("$@" ss -Hltn "sport = :${uri##*:}" 2>/dev/null)" ] && return ;;
        esac
        sleep 0.1; i=$((i + 1))
    done
}
# Waits for vmm PID to end (30 s); its status in $status.
reap() {
    local i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null
    wait "$1"
    status=$?
}

disk=$tmp/disk.img
head -c 1M /dev/zero > "$disk"
# start_src TAG: a source vmm on the snapshot guest, 2 rounds done.
start_src() {
    rm -f "$tmp/s.sock"
    "${src_ns[@]}" "$vmm" --kernel "$images/snapshot.elf" --memory 32M --disk "$disk" "${src_net[@]}" \
        --serial "file=$tmp/src-$1" --qmp "unix:$tmp/s.sock" 2> "$tmp/src-$1.err" < /dev/null &
    src=$!
    wait_sock "$tmp/s.sock"
    wait_counts 2 "$tmp/src-$1"
}

# Two "hosts": network namespaces joined by a veth pair (root only).
nsa=vmm-mig-a.$$ nsb=vmm-mig-b.$$ net=10.$((100 + RANDOM % 100)).$((RANDOM % 250)) netns_ok=
netns_cleanup() { ip netns del "$nsa" 2>/dev/null; ip netns del "$nsb" 2>/dev/null; }
trap 'kill -KILL $src $dst $fake 2>/dev/null; netns_cleanup; [ -n "${VMM_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
if [ "$(id -u)" = 0 ] && ip netns add "$nsa" 2>/dev/null && ip netns add "$nsb" 2>/dev/null &&
    ip link add vmmmiga$$ netns "$nsa" type veth peer name vmmmigb$$ netns "$nsb" 2>/dev/null &&
    ip -n "$nsa" addr add "$net.1/24" dev vmmmiga$$ && ip -n "$nsb" addr add "$net.2/24" dev vmmmigb$$ &&
    ip -n "$nsa" link set vmmmiga$$ up && ip -n "$nsb" link set vmmmigb$$ up &&
    ip -n "$nsa" link set lo up && ip -n "$nsb" link set lo up; then
    netns_ok=1
    # each with a persistent tap vmmmigt (the name the source's --net gives
    # the destination) on a bridge
    for ns in "$nsa" "$nsb"; do
        ip -n "$ns" link add vmmmigbr type bridge && ip -n "$ns" tuntap add dev vmmmigt mode tap &&
            ip -n "$ns" link set vmmmigt master vmmmigbr up && ip -n "$ns" link set vmmmigbr up || netns_ok=
    done
fi
mig_mac=52:54:00:6d:69:67
# The port name bridge vmmmigbr in namespace $1 forwards $mig_mac to (its
# fdb: 16-byte struct __fdb_entry, the MAC then the port number), or none.
fdb_port() {
    local p
    p=$(ip netns exec "$1" od -An -v -tx1 -w16 /sys/class/net/vmmmigbr/brforward |
        awk -v m="$mig_mac" '$1 ":" $2 ":" $3 ":" $4 ":" $5 ":" $6 == m { print $7 + 0; exit }')
    [ "$(( $(ip netns exec "$1" cat /sys/class/net/vmmmigt/brport/port_no) ))" = "${p:-x}" ] && echo vmmmigt || echo none
}
src_ns=() dst_ns=() src_net=()
for how in tcp unix netns; do
    src_ns=() dst_ns=() src_net=()
    case $how in
        tcp) newport; uri=tcp:127.0.0.1:$p ;;
        unix) uri=unix:$tmp/mig.sock ;;
        netns)
            if [ -z "$netns_ok" ]; then
                n=$((n + 1)); echo "ok $n - netns: two network namespaces and a veth pair # SKIP needs root and ip netns"
                continue
            fi
            src_ns=(ip netns exec "$nsa") dst_ns=(ip netns exec "$nsb") src_net=(--net "tap=vmmmigt,mac=$mig_mac")
            newport; uri=tcp:$net.2:$p ;;
    esac
    start_src $how
    # (unix: the destination also names what the source must be, and it is)
    expect=(); [ $how = unix ] && expect=(--cpu-model host --memory 32M)
    "${dst_ns[@]}" "$vmm" --incoming "$uri" "${expect[@]}" --serial "file=$tmp/dst-$how" --qmp "unix:$tmp/d.sock" \
        2> "$tmp/dst-$how.err" < /dev/null &
    dst=$!
    wait_listen "$uri" "${dst_ns[@]}"
    [ $how = netns ] && fdb_before=$(fdb_port "$nsb")
    r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"$uri\"}}")
    reap "$src"; src=
    ev=$(grep '"MIGRATION"' <<<"$r" | grep -o '"status": "[a-z]*"' | tr '\n' ' ')
    check "$how: migrate returns {}, MIGRATION setup, active, completed, the source exits 0" \
        eval '[ "$status" = 0 ] && grep -q "^{\"return\": {}}" <<<"$r" &&
              [ "$ev" = "\"status\": \"setup\" \"status\": \"active\" \"status\": \"completed\" " ]' \
        -- <(echo "$r") "$tmp/src-$how.err"
    before=$(last_count "$tmp/src-$how")
    wait_counts $((before + 2)) "$tmp/src-$how" "$tmp/dst-$how"
    check "$how: the destination goes on from $before: consecutive, every page verified, no second boot" \
        eval 'consecutive "$tmp/src-$how" "$tmp/dst-$how" && ! grep -q -e FAIL -e "guest up" "$tmp/dst-$how" &&
              [ "$(last_count "$tmp/src-$how" "$tmp/dst-$how")" -ge $((before + 2)) ]' \
        -- "$tmp/dst-$how" "$tmp/dst-$how.err"
    check "$how: the timer ticks on and the disk keeps working at the destination" \
        eval '[ "$(last_ticks "$tmp/src-$how" "$tmp/dst-$how")" -gt "$(last_ticks "$tmp/src-$how")" ] &&
              cat "$tmp/src-$how" "$tmp/dst-$how" | grep -a "^count " | awk "\$2 != \$6 { exit 1 }"' \
        -- "$tmp/dst-$how"
    r=$(qmp "$tmp/d.sock" '{"execute":"query-status"}')
    check "$how: the destination says running, logs no error or warning" \
        eval 'grep -q "\"status\": \"running\"" <<<"$r" && ! grep -qE "error|warn" "$tmp/dst-$how.err"' \
        -- <(echo "$r") "$tmp/dst-$how.err"
    if [ $how = netns ]; then
        check "netns: the destination's bridge learnt the guest's MAC on its tap (vmm's RARP; it was $fdb_before there)" \
            eval '[ "$fdb_before" = none ] && [ "$(fdb_port "$nsb")" = vmmmigt ]' -- "$tmp/dst-$how.err"
    fi
    kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=
done

# --incoming defer: QMP first (inmigrate), migrate-incoming listens without
# blocking QMP, then the migration as above.
start_src defer
rm -f "$tmp/dd.sock"
"$vmm" --incoming defer --serial "file=$tmp/dst-defer" --qmp "unix:$tmp/dd.sock" 2> "$tmp/dst-defer.err" < /dev/null &
dst=$!
wait_sock "$tmp/dd.sock"
r=$(qmp "$tmp/dd.sock" '{"execute":"query-status"}' \
        "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"dn\",\"filename\":\"$disk\"}}" \
        '{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","id":"dd","drive":"dn"}}' \
        '{"execute":"device_del","arguments":{"id":"dd"}}' \
        "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-defer.sock\"}}")
wait_listen "unix:$tmp/mig-defer.sock"
# (the machine and its devices come from the source: a device_add before
# the stream once went into the config the stream replaces, {} to the
# client, and the migration then failed on a NIC/disk the source lacks)
check "defer: device_add and device_del refused while the incoming migration is pending" \
    eval '[ "$(grep -c "\"desc\": \"device_[a-z]* is not possible while an incoming migration is pending" <<<"$r")" = 2 ]' \
    -- <(echo "$r")
r2=$(qmp "$tmp/dd.sock" '{"execute":"query-status"}' \
        "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-defer2.sock\"}}")
check "defer: query-status inmigrate, migrate-incoming {}, QMP answers while it listens (inmigrate), a second one refused" \
    eval 'grep -q "\"status\": \"inmigrate\", \"singlestep\": false, \"running\": false" <<<"$r" &&
          grep -q "^{\"return\": {}}" <<<"$r" && [ -S "$tmp/mig-defer.sock" ] &&
          grep -q "\"status\": \"inmigrate\"" <<<"$r2" &&
          grep -q "\"desc\": \"The incoming migration has already been started\"" <<<"$r2"' \
    -- <(echo "$r"; echo "$r2") "$tmp/dst-defer.err"
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$tmp/mig-defer.sock\"}}")
reap "$src"; src=
before=$(last_count "$tmp/src-defer")
wait_counts $((before + 2)) "$tmp/src-defer" "$tmp/dst-defer"
r2=$(qmp "$tmp/dd.sock" '{"execute":"query-status"}')
check "defer: the source completes and exits 0, the destination goes on from $before, consecutive, running" \
    eval '[ "$status" = 0 ] && grep -q "MIGRATION.*completed" <<<"$r" &&
          consecutive "$tmp/src-defer" "$tmp/dst-defer" && ! grep -q -e FAIL -e "guest up" "$tmp/dst-defer" &&
          grep -q "\"status\": \"running\"" <<<"$r2" && ! grep -qE "error|warn" "$tmp/dst-defer.err"' \
    -- <(echo "$r"; echo "$r2") "$tmp/dst-defer" "$tmp/dst-defer.err"
kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=
# defer, stop before the source: QEMU's "no autostart" (qmp_stop while
# inmigrate), the VM stays paused once in (vmm ran it regardless); cont starts it
start_src dstop
rm -f "$tmp/ds.sock"
"$vmm" --incoming defer --serial "file=$tmp/dst-dstop" --qmp "unix:$tmp/ds.sock" 2> "$tmp/dst-dstop.err" < /dev/null &
dst=$!
wait_sock "$tmp/ds.sock"
qmp "$tmp/ds.sock" '{"execute":"stop"}' \
    "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-ds.sock\"}}" > /dev/null
wait_listen "unix:$tmp/mig-ds.sock"
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$tmp/mig-ds.sock\"}}")
reap "$src"; src=
r2=$(qmp "$tmp/ds.sock" '{"execute":"query-status"}')
before=$(last_count "$tmp/src-dstop")
r3=$(qmp "$tmp/ds.sock" '{"execute":"cont"}' '{"execute":"query-status"}')
wait_counts $((before + 2)) "$tmp/src-dstop" "$tmp/dst-dstop"
check "defer: stop before the source: completed, the destination stays paused (running false), cont runs it on from $before" \
    eval '[ "$status" = 0 ] && grep -q "MIGRATION.*completed" <<<"$r" && grep -q "\"running\": false" <<<"$r2" &&
          grep -q "\"status\": \"running\"" <<<"$r3" && consecutive "$tmp/src-dstop" "$tmp/dst-dstop" &&
          [ "$(last_count "$tmp/src-dstop" "$tmp/dst-dstop")" -ge $((before + 2)) ]' \
    -- <(echo "$r"; echo "$r2"; echo "$r3") "$tmp/dst-dstop" "$tmp/dst-dstop.err"
kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=
# defer, migrate-incoming on a unix socket, then quit before any source:
# exit 0 and the socket's path is gone (it was left behind)
rm -f "$tmp/dq.sock"
"$vmm" --incoming defer --serial off --qmp "unix:$tmp/dq.sock" 2> "$tmp/dst-dq.err" < /dev/null &
dst=$!
wait_sock "$tmp/dq.sock"
r=$(qmp "$tmp/dq.sock" "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-dq.sock\"}}")
listened=$([ -S "$tmp/mig-dq.sock" ] && echo yes)
qmp "$tmp/dq.sock" '{"execute":"quit"}' > /dev/null
reap "$dst"; dst=
check "defer: quit while migrate-incoming listens on unix:PATH: exit 0, PATH removed" \
    eval '[ "$listened" = yes ] && [ "$status" = 0 ] && [ ! -e "$tmp/mig-dq.sock" ] && [ ! -s "$tmp/dst-dq.err" ]' \
    -- <(echo "$r") "$tmp/dst-dq.err"
# --incoming URI (not defer) while no source has come: QMP answers
# (inmigrate, as QEMU), and SIGTERM ends it, exit 0, the socket's path
# removed (vmm used to block in accept before QMP was up: killed with 143,
# PATH left behind)
rm -f "$tmp/pt.sock"
"$vmm" --incoming "unix:$tmp/mig-pt.sock" --serial off --qmp "unix:$tmp/pt.sock" 2> "$tmp/dst-pt.err" < /dev/null &
dst=$!
wait_sock "$tmp/pt.sock"
r=$(qmp "$tmp/pt.sock" '{"execute":"query-status"}' "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-pt2.sock\"}}")
listened=$([ -S "$tmp/mig-pt.sock" ] && echo yes)
kill -TERM "$dst"
reap "$dst"; dst=
check "--incoming unix:PATH before any source: query-status inmigrate, migrate-incoming refused (already started), SIGTERM: exit 0, PATH removed" \
    eval '[ "$listened" = yes ] && grep -q "\"status\": \"inmigrate\"" <<<"$r" &&
          grep -q "The incoming migration has already been started" <<<"$r" &&
          [ "$status" = 0 ] && [ ! -e "$tmp/mig-pt.sock" ] && [ ! -e "$tmp/mig-pt2.sock" ] && [ ! -s "$tmp/dst-pt.err" ]' \
    -- <(echo "$r") "$tmp/dst-pt.err"

# QMP answers while a migration comes in (RAM is read on a thread of its
# own, for --incoming URI and for defer + migrate-incoming alike): a
# recorder takes the start of a real source's stream (the config and the
# first RAM run's header and a page of it), a replayer feeds it to the
# destination and then holds the connection without sending more, so the
# destination sits in the middle of RAM. query-status (inmigrate) and
# query-migrate (active) must answer; quit then ends it, exit 0, and the
# peer is told why.
src_ns=() dst_ns=()
start_src rec
newport
python3 -c '
import socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); s.settimeout(60)
c, _ = s.accept()    # (bounded: a source that never comes fails the case, not hangs the test)
c.settimeout(60)
def take(n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k: raise SystemExit("short")
        b += k
    return b
head = take(16); n = struct.unpack("<Q", head[8:])[0]
out = head + take(n) + take(16) + take(4096)
open(sys.argv[2], "wb").write(out); c.close()' "$p" "$tmp/stream-start" &
fake=$!
wait_listen "tcp:127.0.0.1:$p"
mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}" > /dev/null
wait "$fake"; fake=
kill -KILL "$src"; wait "$src" 2>/dev/null; src=
# replay SOCKPATH: feeds the recorded start to a unix socket, prints what
# comes back, holds the connection 60 s at most.
replay() {
    python3 -c '
import socket, sys
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
c.sendall(open(sys.argv[2], "rb").read()); c.settimeout(60)
try:
    print(c.recv(4096).decode(errors="replace").strip())
except socket.timeout:
    pass' "$1" "$tmp/stream-start" > "$tmp/replay.out" &
    fake=$!
}
qmp_bounded() {
    local sock=$1; shift
    { echo '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"; } | timeout 20 "$qmpc" "$sock" 2>&1 | tail -n +3
}
for how in plain defer; do
    rm -f "$tmp/di.sock" "$tmp/mig-in.sock"
    if [ $how = plain ]; then
        "$vmm" --incoming "unix:$tmp/mig-in.sock" --serial "file=$tmp/dst-in" --qmp "unix:$tmp/di.sock" \
            2> "$tmp/dst-in.err" < /dev/null &
        dst=$!
        wait_listen "unix:$tmp/mig-in.sock"
        replay "$tmp/mig-in.sock"
        wait_sock "$tmp/di.sock"
    else
        "$vmm" --incoming defer --serial "file=$tmp/dst-in" --qmp "unix:$tmp/di.sock" 2> "$tmp/dst-in.err" < /dev/null &
        dst=$!
        wait_sock "$tmp/di.sock"
        qmp "$tmp/di.sock" "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-in.sock\"}}" > /dev/null
        wait_listen "unix:$tmp/mig-in.sock"
        replay "$tmp/mig-in.sock"
    fi
    # (until the replayer's bytes are in, query-migrate may say nothing yet)
    i=0
    while ! qmp_bounded "$tmp/di.sock" '{"execute":"query-migrate"}' | grep -q '"status": "active"' && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    r=$(qmp_bounded "$tmp/di.sock" '{"execute":"query-status"}' '{"execute":"query-migrate"}' \
            "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$tmp/mig-in2.sock\"}}")
    r2=$(qmp_bounded "$tmp/di.sock" '{"execute":"quit"}')
    reap "$dst"; dst=
    wait "$fake"; fake=
    check "$how: QMP answers in the middle of an incoming RAM stream (inmigrate, query-migrate active, migrate-incoming refused); quit: exit 0, the source is told" \
        eval 'grep -q "\"status\": \"inmigrate\"" <<<"$r" && grep -q "^{\"return\": {\"status\": \"active\"}}" <<<"$r" &&
              grep -q "already been started" <<<"$r" && grep -q "^{\"return\": {}}" <<<"$r2" && [ "$status" = 0 ] &&
              grep -q "^ERR the destination was told to quit" "$tmp/replay.out" && [ ! -s "$tmp/dst-in" ]' \
        -- <(echo "$r"; echo "$r2") "$tmp/dst-in.err" "$tmp/replay.out"
done

# The guest keeps its source's CPUID: a source whose KVM lacks SYSCALL (the
# debugging knob) migrates to a destination that has it; the guest's
# CPUID 0x8000_0001 EDX reads the same after the move.
rm -f "$tmp/s.sock"
VMM_DEBUG_CPUID_HIDE=0x80000001.edx=0x800 "$vmm" --kernel "$images/snapshot.elf" --memory 32M --disk "$disk" \
    --serial "file=$tmp/src-cpuid" --qmp "unix:$tmp/s.sock" 2> "$tmp/src-cpuid.err" < /dev/null &
src=$!
wait_sock "$tmp/s.sock"
wait_counts 2 "$tmp/src-cpuid"
newport
"$vmm" --incoming "tcp:127.0.0.1:$p" --serial "file=$tmp/dst-cpuid" --qmp "unix:$tmp/d.sock" 2> "$tmp/dst-cpuid.err" \
    < /dev/null &
dst=$!
wait_listen "tcp:127.0.0.1:$p"
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}")
reap "$src"; src=
before=$(last_count "$tmp/src-cpuid")
wait_counts $((before + 2)) "$tmp/src-cpuid" "$tmp/dst-cpuid"
ext1d() { grep -a '^count ' "$@" | awk '{ print $8 }' | sort -u | tr '\n' ' '; }
src_ext=$(ext1d "$tmp/src-cpuid") dst_ext=$(ext1d "$tmp/dst-cpuid")
check "the guest keeps its source's CPUID: 0x80000001.EDX $src_ext (no SYSCALL) before and after the move (this host has it)" \
    eval '[ "$status" = 0 ] && [ -n "$src_ext" ] && [ "$src_ext" = "$dst_ext" ] &&
          [ $(( 0x${src_ext% } & 0x800 )) = 0 ] && consecutive "$tmp/src-cpuid" "$tmp/dst-cpuid" &&
          ! grep -q -e FAIL -e "guest up" "$tmp/dst-cpuid"' \
    -- <(echo "$r") "$tmp/dst-cpuid" "$tmp/dst-cpuid.err"
kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=

# A NIC on an inherited fd (--net fd=N, libvirt's way): the stream carries
# the NIC's config and device state, never the fd; the destination is
# started with its own --net fd=M,id=ID (root: the taps are made here, each
# handed to vmm as an open fd, as libvirt does). Without one it refuses the
# source before RAM (exit 2, one line; the source runs on); with one the
# guest moves, the NIC sits on the destination's fd (its fdinfo names the
# destination's tap) and announces the source's MAC there (a RARP).
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then
    ts=vmmfs$$ td=vmmfd$$ mac=52:54:00:fd:00:01
    rm -f "$tmp/s.sock"
    "$testlib/with-tap" "$ts" 5 "$vmm" --kernel "$images/snapshot.elf" --memory 32M --net "fd=5,id=lan,mac=$mac" \
        --serial "file=$tmp/src-fd" --qmp "unix:$tmp/s.sock" 2> "$tmp/src-fd.err" < /dev/null &
    src=$!
    wait_sock "$tmp/s.sock"
    wait_counts 2 "$tmp/src-fd"
    newport
    "$vmm" --incoming "tcp:127.0.0.1:$p" --serial "file=$tmp/dst-fd0" 2> "$tmp/dst-fd0.err" < /dev/null &
    dst=$!
    wait_listen "tcp:127.0.0.1:$p"
    r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}")
    reap "$dst"; dst=
    c0=$(count_lines "$tmp/src-fd")
    wait_counts $((c0 + 1)) "$tmp/src-fd"
    check "fd NIC, a destination without --net for it: exit 2, one line naming the NIC; MIGRATION failed, the source runs on" \
        eval '[ "$status" = 2 ] && [ "$(wc -l < "$tmp/dst-fd0.err")" = 1 ] &&
              grep -q "NIC lan was on an inherited fd (fd=), which does not travel: give it one here, --net fd=N,id=lan" "$tmp/dst-fd0.err" &&
              grep -q "MIGRATION.*failed" <<<"$r" && grep -q "\"status\": \"running\"" <<<"$r" &&
              [ "$(count_lines "$tmp/src-fd")" -gt "$c0" ] && consecutive "$tmp/src-fd"' -- <(echo "$r") "$tmp/dst-fd0.err"
    newport
    rm -f "$tmp/d.sock"
    "$testlib/with-tap" "$td" 7 "$vmm" --incoming "tcp:127.0.0.1:$p" --net fd=7,id=lan --serial "file=$tmp/dst-fd" \
        --qmp "unix:$tmp/d.sock" 2> "$tmp/dst-fd.err" < /dev/null &
    dst=$!
    wait_listen "tcp:127.0.0.1:$p"
    # the destination's tap, watched for the announce from the source's MAC
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind((sys.argv[1], 0)); s.settimeout(60)
open(sys.argv[3], "w").close()
want = bytes.fromhex(sys.argv[2].replace(":", ""))
try:
    while True:
        f = s.recv(2048)
        if f[6:12] == want:
            print("RARP from", sys.argv[2]); break
except socket.timeout:
    print("no RARP")' "$td" "$mac" "$tmp/rarp.bound" > "$tmp/rarp.out" &
    fake=$!
    # (a RARP before the watcher is bound would be missed: wait for it; a
    # fixed 0.5 s was not always enough on a loaded host)
    i=0; while [ ! -e "$tmp/rarp.bound" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}")
    reap "$src"; src=
    before=$(last_count "$tmp/src-fd")
    wait_counts $((before + 2)) "$tmp/src-fd" "$tmp/dst-fd"
    wait "$fake"; fake=
    check "fd NIC, destination --net fd=7,id=lan: completed, the guest counts on, the NIC on fd 7 (tap $td), RARP from $mac there" \
        eval '[ "$status" = 0 ] && grep -q "MIGRATION.*completed" <<<"$r" && consecutive "$tmp/src-fd" "$tmp/dst-fd" &&
              [ "$(last_count "$tmp/src-fd" "$tmp/dst-fd")" -ge $((before + 2)) ] &&
              grep -q "^iff:[[:space:]]*$td\$" /proc/$dst/fdinfo/7 && grep -q "RARP from $mac" "$tmp/rarp.out" &&
              ! grep -qE "error|warn" "$tmp/dst-fd.err"' \
        -- <(echo "$r") "$tmp/dst-fd.err" "$tmp/rarp.out"
    kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=
else
    for t in "without --net for it" "with --net fd=M"; do
        n=$((n + 1)); echo "ok $n - fd NIC, a destination $t # SKIP needs root and /dev/net/tun"
    done
fi

# virtio-mem: the virtio_mem guest plugs 32 MiB of its 256 MiB hotplug
# region, writes a pattern there and waits for a resize; it migrates then,
# and at the destination the resize reaches it, it plugs 64 MiB more, finds
# its pattern intact (the plugged blocks' RAM came along) and ends with
# every check passed.
rm -f "$tmp/s.sock" "$tmp/d.sock" "$tmp/mig-mem.sock"
"$vmm" --kernel "$images/virtio_mem.elf" --memory size=128M,hotplug_size=256M,requested_size=32M --test-exit \
    --cmdline "region_mib=256 req_mib=32 next_mib=96" --serial "file=$tmp/src-mem" --qmp "unix:$tmp/s.sock" \
    2> "$tmp/src-mem.err" < /dev/null &
src=$!
wait_sock "$tmp/s.sock"
i=0; while ! grep -q "# vmem: ready for resize" "$tmp/src-mem" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
"$vmm" --incoming "unix:$tmp/mig-mem.sock" --serial "file=$tmp/dst-mem" --qmp "unix:$tmp/d.sock" 2> "$tmp/dst-mem.err" \
    < /dev/null &
dst=$!
wait_listen "unix:$tmp/mig-mem.sock"
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$tmp/mig-mem.sock\"}}")
reap "$src"; src=
wait_sock "$tmp/d.sock"
r2=$(qmp "$tmp/d.sock" '{"execute":"query-memory-devices"}' \
    '{"execute":"qom-set","arguments":{"path":"/machine/peripheral/vmem0","property":"requested-size","value":100663296}}')
reap "$dst"; dst=
check "virtio-mem: migrated with 32 MiB plugged; at the destination the resize reaches the guest, its pattern intact, every check passed (exit 1)" \
    eval 'grep -q "MIGRATION.*completed" <<<"$r" && grep -q "\"size\": 33554432" <<<"$r2" &&
          grep -q "^ok .*patterns intact (0 words differ)" "$tmp/dst-mem" && ! grep -q "^not ok" "$tmp/src-mem" "$tmp/dst-mem" &&
          [ "$status" = 1 ]' -- <(echo "$r"; echo "$r2") "$tmp/dst-mem" "$tmp/dst-mem.err"

# The hotplug controllers' state moves too: the pcihp guest (devices=1) gets
# a disk hot-plugged in slot 7 over node hpn and a CPU hot-added; paused,
# device_del of the disk (the eject request pending in PCID) and migrate.
# The destination has cpu1 and the disk in slot 7 over hpn, runs the guest,
# which sees the pending request and ejects slot 7: DEVICE_DELETED hp1
# there, and the guest ends with every check passed.
wait_text() {   # FILE TEXT: up to 60 s
    local i=0
    while ! grep -qa -- "$2" "$1" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
}
head -c 1M /dev/zero > "$tmp/hp0.img"
head -c 1M /dev/zero > "$tmp/hp1.img"
rm -f "$tmp/s.sock" "$tmp/d.sock" "$tmp/mig-hp.sock"
"$vmm" --kernel "$images/pcihp.elf" --memory 64M --cpus boot=1,max=2 --test-exit --disk "path=$tmp/hp0.img,id=bdisk0" \
    --cmdline devices=1 --serial "file=$tmp/src-hp" --qmp "unix:$tmp/s.sock" 2> "$tmp/src-hp.err" < /dev/null &
src=$!
wait_sock "$tmp/s.sock"
wait_text "$tmp/src-hp" "# ready for unplug"
r=$(qmp "$tmp/s.sock" \
    "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"hpn\",\"filename\":\"$tmp/hp1.img\"}}" \
    '{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"hpn","id":"hp1","addr":"0x7"}}' \
    '{"execute":"device_add","arguments":{"driver":"host-x86_64-cpu","id":"cpu1","socket-id":0,"core-id":1,"thread-id":0}}')
wait_text "$tmp/src-hp" "# slot 7 up (blk)"
r=$r$'\n'$(qmp "$tmp/s.sock" '{"execute":"stop"}' '{"execute":"device_del","arguments":{"id":"hp1"}}')
"$vmm" --incoming "unix:$tmp/mig-hp.sock" --paused --serial "file=$tmp/dst-hp" --qmp "unix:$tmp/d.sock" \
    2> "$tmp/dst-hp.err" < /dev/null &
dst=$!
wait_listen "unix:$tmp/mig-hp.sock"
r2=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$tmp/mig-hp.sock\"}}")
reap "$src"; src=
wait_sock "$tmp/d.sock"
i=0; while ! qmp "$tmp/d.sock" '{"execute":"query-status"}' | grep -q prelaunch && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
r3=$(qmp "$tmp/d.sock" '{"execute":"query-hotpluggable-cpus"}' '{"execute":"query-pci"}' '{"execute":"query-named-block-nodes"}')
{ echo '{"execute":"qmp_capabilities"}'; echo '{"execute":"cont"}'
  i=0; while kill -0 "$dst" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; } |
    "$qmpc" "$tmp/d.sock" > "$tmp/ev-hp" 2>&1
reap "$dst"; dst=
check "hotplug state migrates: cpu1 and disk hp1 (slot 7, node hpn) at the destination, the pending eject completes there (DEVICE_DELETED hp1), every guest check passed" \
    eval '[ "$(grep -c "^{\"return\": {}}" <<<"$r")" = 5 ] && grep -q "MIGRATION.*completed" <<<"$r2" &&
          grep -q "\"qom-path\": \"/machine/peripheral/cpu1\"" <<<"$r3" && grep -q "\"slot\": 7" <<<"$r3" &&
          grep -q "\"qdev_id\": \"hp1\"" <<<"$r3" && grep -q "\"node-name\": \"hpn\"" <<<"$r3" &&
          grep -q "# slot 7 ejected (blk)" "$tmp/dst-hp" && grep -q "\"DEVICE_DELETED\".*\"device\": \"hp1\"" "$tmp/ev-hp" &&
          ! grep -q "^not ok" "$tmp/src-hp" "$tmp/dst-hp" && [ "$status" = 1 ]' \
    -- <(echo "$r"; echo "$r2"; echo "$r3") "$tmp/dst-hp" "$tmp/ev-hp" "$tmp/dst-hp.err"

# --- failures: the source runs on ---
src_ns=() dst_ns=()
start_src fail
newport
r=$(qmp "$tmp/s.sock" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}" \
        '{"execute":"query-migrate"}' '{"execute":"query-status"}')
c0=$(count_lines "$tmp/src-fail")
wait_counts $((c0 + 1)) "$tmp/src-fail"
check "nobody listening: an error, MIGRATION failed, query-migrate failed, still running and counting" \
    eval 'grep -q "\"error\".*cannot connect" <<<"$r" && grep -q "MIGRATION.*failed" <<<"$r" &&
          grep -q "\"return\": {\"status\": \"failed\"" <<<"$r" && grep -q "\"status\": \"running\"" <<<"$r" &&
          [ "$(count_lines "$tmp/src-fail")" -gt "$c0" ]' -- <(echo "$r") "$tmp/src-fail"

newport
"$vmm" --incoming "tcp:127.0.0.1:$p" --serial off 2> "$tmp/dst-refuse.err" < /dev/null &
dst=$!
wait_listen "tcp:127.0.0.1:$p"
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}")
reap "$dst"; dst=
c0=$(count_lines "$tmp/src-fail")
wait_counts $((c0 + 1)) "$tmp/src-fail"
check "a destination that refuses the machine: exit 2 there; MIGRATION failed, error-desc with its reason, running" \
    eval '[ "$status" = 2 ] && grep -q "MIGRATION.*failed" <<<"$r" &&
          grep -q "\"error-desc\": \"the destination refused: .*has a serial port" <<<"$r" &&
          grep -q "\"status\": \"running\"" <<<"$r" && [ "$(count_lines "$tmp/src-fail")" -gt "$c0" ] &&
          consecutive "$tmp/src-fail"' -- <(echo "$r") "$tmp/dst-refuse.err"

# mismatch OPTIONS WANT [ENV]: a destination started with OPTIONS (and the
# environment variable ENV) refuses the source (host CPU model, 32M) on its
# config, before RAM: exit 2, one line.
mismatch() {
    newport
    env ${3:-} "$vmm" --incoming "tcp:127.0.0.1:$p" --serial "file=$tmp/dst-mm.out" $1 2> "$tmp/dst-mm.err" < /dev/null &
    dst=$!
    wait_listen "tcp:127.0.0.1:$p"
    r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}")
    reap "$dst"; dst=
    c0=$(count_lines "$tmp/src-fail")
    wait_counts $((c0 + 1)) "$tmp/src-fail"
    mm_want=$2
    check "destination ${3:-$1}, source host/32M: exit 2, one line naming it; MIGRATION failed with it, the source runs on" \
        eval '[ "$status" = 2 ] && [ "$(wc -l < "$tmp/dst-mm.err")" = 1 ] && grep -q -- "$mm_want" "$tmp/dst-mm.err" &&
              grep -q "MIGRATION.*failed" <<<"$r" && grep -q "\"error-desc\": \"the destination refused: .*$mm_want" <<<"$r" &&
              grep -q "\"status\": \"running\"" <<<"$r" && [ "$(count_lines "$tmp/src-fail")" -gt "$c0" ] &&
              consecutive "$tmp/src-fail"' -- <(echo "$r") "$tmp/dst-mm.err"
}
mismatch "--cpu-model baseline" "the source's CPU model is host, this destination was started with --cpu-model baseline"
mismatch "--memory 64M" "the source's memory is 32 MiB, this destination was started with --memory 64M"
# A destination host whose KVM lacks a CPUID feature the source's guest has
# (SYSCALL, made absent there by the debugging knob): a CPU model mismatch.
mismatch "" "CPU model mismatch: the guest has CPUID leaf 0x80000001 EDX bit 11, which this host's KVM cannot give" \
    VMM_DEBUG_CPUID_HIDE=0x80000001.edx=0x800

# fake_peer PORT BYTES: accepts one connection, reads BYTES (-1: none, and
# holds it open 30 s) and hangs up.
fake_peer() {
    python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); want = int(sys.argv[2]); got = 0
if want < 0:
    time.sleep(30)
while got < want:
    b = c.recv(65536)
    if not b: break
    got += len(b)
c.close()' "$1" "$2" &
    fake=$!
    wait_listen "tcp:127.0.0.1:$1"
}
# Ends the fake peer (it may wait for a connection that never came).
end_fake() { kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null; fake=; }
newport
fake_peer "$p" $((100 * 1024))
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}")
end_fake
c0=$(count_lines "$tmp/src-fail")
wait_counts $((c0 + 1)) "$tmp/src-fail"
check "a peer that hangs up mid-stream: MIGRATION failed, the source counts on, every page still verifies" \
    eval 'grep -q "MIGRATION.*failed" <<<"$r" && grep -q "\"status\": \"running\"" <<<"$r" &&
          [ "$(count_lines "$tmp/src-fail")" -gt "$c0" ] && consecutive "$tmp/src-fail" && ! grep -q FAIL "$tmp/src-fail"' \
    -- <(echo "$r") "$tmp/src-fail"

# A peer that never reads: the source is stuck sending until migrate_cancel.
newport
fake_peer "$p" -1
r=$(mig_run "$tmp/s.sock" "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$p\"}}" \
        '{"execute":"query-migrate"}' '{"execute":"migrate_cancel"}')
end_fake
c0=$(count_lines "$tmp/src-fail")
wait_counts $((c0 + 1)) "$tmp/src-fail"
check "migrate_cancel while sending: active, then MIGRATION cancelled, the source counts on unchanged" \
    eval 'grep -q "\"return\": {\"status\": \"active\"" <<<"$r" && grep -q "MIGRATION.*cancelled" <<<"$r" &&
          grep -q "\"return\": {\"status\": \"cancelled\"" <<<"$r" && grep -q "\"status\": \"running\"" <<<"$r" &&
          [ "$(count_lines "$tmp/src-fail")" -gt "$c0" ] && consecutive "$tmp/src-fail" && ! grep -q FAIL "$tmp/src-fail"' \
    -- <(echo "$r") "$tmp/src-fail"
r=$(qmp "$tmp/s.sock" '{"execute":"migrate-set-parameters","arguments":{"downtime-limit":50}}' \
        '{"execute":"migrate-set-parameters","arguments":{"downtime-limit":-1}}')
check "migrate-set-parameters downtime-limit: 50 taken, -1 refused" \
    eval '[ "$(head -n 1 <<<"$r")" = "{\"return\": {}}" ] && grep -q "\"error\".*downtime_limit" <<<"$r"' -- <(echo "$r")
kill -KILL "$src"; wait "$src" 2>/dev/null; src=

# --- a destination fed garbage or a cut stream ---
dest_gets() {
    local desc=$1 want=$2 feed=$3 p
    newport
    "$vmm" --incoming "tcp:127.0.0.1:$p" --serial "file=$tmp/bout" 2> "$tmp/berr" < /dev/null &
    dst=$!
    wait_listen "tcp:127.0.0.1:$p"
    python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(bytes.fromhex(sys.argv[2])); c.close()' "$p" "$feed"
    reap "$dst"; dst=
    check "$desc: the destination exits 2 with one line ($want)" \
        eval '[ "$status" = 2 ] && [ "$(wc -l < "$tmp/berr")" = 1 ] && grep -qE -- "$want" "$tmp/berr" && [ ! -s "$tmp/bout" ]' \
        -- "$tmp/berr"
}
dest_gets "garbage" "not a vmm migration stream" "$(printf 'GET / HTTP/1.0\r\n\r\n' | od -An -tx1 | tr -d ' \n')"
# magic, a length of 1000, then 10 bytes of it
dest_gets "a stream cut in the state" "ended in the middle of the state" \
    "$(printf VMMMIGR1 | od -An -tx1 | tr -d ' \n')e8030000000000000102030405060708090a"
dest_gets "a state that is not one" "not a vmm state stream" \
    "$(printf VMMMIGR1 | od -An -tx1 | tr -d ' \n')10000000000000000102030405060708090a0b0c0d0e0f10"
check "--incoming with --kernel: exit 2, one line" \
    eval '"$vmm" --incoming tcp:127.0.0.1:1 --kernel /dev/null 2> "$tmp/berr"; [ $? = 2 ] && [ "$(wc -l < "$tmp/berr")" = 1 ] &&
          grep -q -- "--kernel: the machine comes from the migration source" "$tmp/berr"' -- "$tmp/berr"
check "--incoming with --memory beyond a size: exit 2, one line" \
    eval '"$vmm" --incoming tcp:127.0.0.1:1 --memory size=64M,hugepages=on 2> "$tmp/berr"; [ $? = 2 ] &&
          [ "$(wc -l < "$tmp/berr")" = 1 ] && grep -q -- "--memory: with --incoming only a size" "$tmp/berr"' -- "$tmp/berr"

tap_done
