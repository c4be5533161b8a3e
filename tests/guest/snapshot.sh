#!/bin/bash
# Snapshot and restore on a live guest (guest-tests/snapshot: a round
# counter that stamps and verifies every page from 16 MiB up, a periodic
# LAPIC timer, a virtio-blk disk written, read back and flushed each round):
#   - x-vmm-snapshot is refused while the VM runs; after QMP stop it writes
#     DIR/state and DIR/memory (the RAM size exactly); cont then runs the
#     source on;
#   - vmm is killed (SIGKILL); vmm --restore DIR goes on: the serial output of
#     both processes joined is one run, "count 1, 2, ..." consecutive (not
#     from 1 again, no second boot banner), every page verifies for two
#     more rounds (the guest prints FAIL and stops otherwise), the timer
#     ticks keep rising, the disk keeps working and holds the last round's
#     stamp in its sector;
#   - a restored VM snapshotted again (into the same directory, whose memory
#     file it has mapped) and restored once more goes on the same way;
#   - --restore --paused waits in prelaunch until cont;
#   - broken snapshots: a flipped byte in the state, a truncated state, a
#     memory file cut short, none at all, a missing disk → exit 2 with one
#     line on stderr, before any guest code runs.
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: snapshot.sh VMM IMAGE_DIR SOURCE_ROOT QMP_CLIENT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") images=$(readlink -f "$2") srcroot=$3 qmpc=$(readlink -f "$4")
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-snapshot.XXXXXX")
pid=
trap 'kill -KILL $pid 2>/dev/null; [ -n "${VMM_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
# Waits up to 60 s until FILE has at least N complete "count" lines.
wait_counts() {
    local i=0
    while [ "$(cat "$2" 2>/dev/null | grep -c '^count ')" -lt "$1" ] && [ $i -lt 600 ]; do
        grep -q FAIL "$2" 2>/dev/null && return
        kill -0 "$pid" 2>/dev/null || return
        sleep 0.1; i=$((i + 1))
    done
}
# qmp SOCKET COMMAND-JSON...: the replies (after the greeting and the
# capabilities reply), one per line.
qmp() {
    local sock=$1; shift
    { echo '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"; } | "$qmpc" "$sock" 2>&1 | tail -n +3 |
        grep -v '"event"'
}
# The count lines of the joined serial output: consecutive from 1?
consecutive() {
    cat "$@" | grep -a '^count ' | awk '{ if ($2 != NR) { print "line " NR ": " $0; bad = 1; exit } } END { exit bad }'
}
last_count() { cat "$@" | grep -a '^count ' | tail -n 1 | awk '{ print $2 }'; }
last_ticks() { cat "$@" | grep -a '^count ' | tail -n 1 | awk '{ print $4 }'; }
# The stamp the guest wrote in sector (R % 64) in round R: "PANSPANS", R % 64, R.
disk_has_round() {
    python3 - "$1" "$2" <<'EOF'
import struct, sys
r = int(sys.argv[2])
with open(sys.argv[1], 'rb') as f:
    f.seek((r % 64) * 512)
    magic, sector, rnd = struct.unpack('<QQQ', f.read(24))
sys.exit(0 if (magic, sector, rnd) == (0x534e4150534e4150, r % 64, r) else 1)
EOF
}

disk=$tmp/disk.img
head -c 1M /dev/zero > "$disk"
snap=$tmp/snap
sock=$tmp/q1.sock

"$vmm" --kernel "$images/snapshot.elf" --memory 32M --disk "$disk" --serial "file=$tmp/out1" \
    --qmp "unix:$sock" 2> "$tmp/err1" < /dev/null &
pid=$!
wait_sock "$sock"
wait_counts 2 "$tmp/out1"
check "the guest runs its rounds (2 counted, no FAIL)" \
    eval '[ "$(grep -c "^count " "$tmp/out1")" -ge 2 ] && ! grep -q FAIL "$tmp/out1"' -- "$tmp/out1" "$tmp/err1"

r=$(qmp "$sock" "{\"execute\":\"x-vmm-snapshot\",\"arguments\":{\"dir\":\"$snap\"}}")
check "x-vmm-snapshot while running is refused (stop first)" \
    eval 'grep -q "\"error\".*must be paused" <<<"$r" && [ ! -e "$snap/state" ]' -- <(echo "$r")

r=$(qmp "$sock" '{"execute":"stop"}' "{\"execute\":\"x-vmm-snapshot\",\"arguments\":{\"dir\":\"$snap\"}}")
check "stop + x-vmm-snapshot: two empty returns" eval '[ "$(grep -c "^{\"return\": {}}" <<<"$r")" = 2 ]' -- <(echo "$r")
check "DIR/state and DIR/memory (32 MiB exactly), no .tmp left" \
    eval '[ -s "$snap/state" ] && [ "$(stat -c %s "$snap/memory")" = $((32 << 20)) ] && ! ls "$snap" | grep -q tmp'
before=$(last_count "$tmp/out1")
# The source goes on after its snapshot (cont); what it does from here is
# not in the snapshot, and its output is set aside.
cp "$tmp/out1" "$tmp/out1.at-snapshot"
qmp "$sock" '{"execute":"cont"}' > /dev/null
wait_counts $((before + 1)) "$tmp/out1"
check "the source goes on after the snapshot (cont)" \
    eval 'consecutive "$tmp/out1" && [ "$(last_count "$tmp/out1")" -gt "$before" ]' -- "$tmp/out1"
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
mv "$tmp/out1.at-snapshot" "$tmp/out1"

# --- restore ---
sock2=$tmp/q2.sock
"$vmm" --restore "$snap" --serial "file=$tmp/out2" --qmp "unix:$sock2" 2> "$tmp/err2" < /dev/null &
pid=$!
wait_counts 3 "$tmp/out2"
check "restored: the count goes on from $before (consecutive over both processes, not from 1)" \
    eval 'consecutive "$tmp/out1" "$tmp/out2" && [ "$(last_count "$tmp/out1" "$tmp/out2")" -ge $((before + 3)) ]' \
    -- "$tmp/out2" "$tmp/err2"
check "restored: no second boot, every page verified in the rounds after (no FAIL)" \
    eval '! grep -q "snapshot guest up" "$tmp/out2" && ! grep -q FAIL "$tmp/out2"' -- "$tmp/out2"
t1=$(last_ticks "$tmp/out1")
t2=$(last_ticks "$tmp/out1" "$tmp/out2")
check "restored: the LAPIC timer keeps ticking ($t1 before, $t2 now)" eval '[ "$t2" -gt "$t1" ]' -- "$tmp/out2"
last=$(last_count "$tmp/out1" "$tmp/out2")
check "restored: the disk keeps working (blk rounds = rounds; sector of round $last holds its stamp)" \
    eval 'cat "$tmp/out1" "$tmp/out2" | grep -a "^count " | awk "\$2 != \$6 { exit 1 }" && disk_has_round "$disk" "$last"' \
    -- "$tmp/out2"
check "restored: no error or warning from vmm" eval '! grep -qE "error|warn" "$tmp/err2"' -- "$tmp/err2"

# --- snapshot the restored VM into the same directory, restore again ---
r=$(qmp "$sock2" '{"execute":"stop"}' "{\"execute\":\"x-vmm-snapshot\",\"arguments\":{\"dir\":\"$snap\"}}")
check "the restored VM snapshots again over its own memory file" \
    eval '[ "$(grep -c "^{\"return\": {}}" <<<"$r")" = 2 ]' -- <(echo "$r") "$tmp/err2"
before=$(last_count "$tmp/out1" "$tmp/out2")
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
cp -r --sparse=always "$snap" "$tmp/snap-copy"     # for the failure cases below
sock3=$tmp/q3.sock
"$vmm" --restore "$snap" --paused --serial "file=$tmp/out3" --qmp "unix:$sock3" 2> "$tmp/err3" < /dev/null &
pid=$!
wait_sock "$sock3"
sleep 1
r=$(qmp "$sock3" '{"execute":"query-status"}')
check "--restore --paused: prelaunch, not a byte of guest output" \
    eval 'grep -q "\"status\": \"prelaunch\"" <<<"$r" && [ ! -s "$tmp/out3" ]' -- <(echo "$r") "$tmp/out3"
qmp "$sock3" '{"execute":"cont"}' > /dev/null
wait_counts 2 "$tmp/out3"
check "second restore after cont: consecutive from $before, every page verified" \
    eval 'consecutive "$tmp/out1" "$tmp/out2" "$tmp/out3" && ! grep -q FAIL "$tmp/out3" &&
          [ "$(last_count "$tmp/out1" "$tmp/out2" "$tmp/out3")" -ge $((before + 2)) ]' -- "$tmp/out3" "$tmp/err3"
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=

# --- broken snapshots: exit 2, one line, no guest code ---
broken() {
    local desc=$1 dir=$2 want=$3
    shift 3
    rm -f "$tmp/bout" "$tmp/berr"
    "$vmm" --restore "$dir" --serial "file=$tmp/bout" "$@" 2> "$tmp/berr" < /dev/null
    local st=$?
    check "$desc: exit 2, one line ($want), no guest output" \
        eval '[ $st = 2 ] && [ "$(wc -l < "$tmp/berr")" = 1 ] && grep -qE -- "$want" "$tmp/berr" && [ ! -s "$tmp/bout" ]' \
        -- "$tmp/berr"
}
b=$tmp/b
reset_b() { rm -rf "$b"; cp -r --sparse=always "$tmp/snap-copy" "$b"; }
reset_b
python3 -c "import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[len(d)//2]^=1; open(p,'wb').write(d)" "$b/state"
broken "a flipped bit in the state" "$b" "checksum"
reset_b
truncate -s 1000 "$b/state"
broken "a truncated state" "$b" "corrupted|bad magic"
reset_b
truncate -s $((16 << 20)) "$b/memory"
broken "a memory file of half the size" "$b" "16777216 bytes, the snapshot's RAM is 33554432"
reset_b
rm "$b/memory"
broken "no memory file" "$b" "memory: No such file"
reset_b
mv "$disk" "$disk.away"
broken "the disk gone" "$b" "disk.img"
mv "$disk.away" "$disk"
# a host whose KVM lacks a feature the saved guest has (SYSCALL, hidden by
# the debugging knob): a CPU model mismatch, before anything is built
VMM_DEBUG_CPUID_HIDE=0x80000001.edx=0x800 broken "a host without a CPUID feature the guest has" "$b" \
    "CPU model mismatch: the guest has CPUID leaf 0x80000001 EDX bit 11, which this host's KVM cannot give"
broken "--restore --net with mac=" "$b" "--net lan: with --restore only a new backend \(tap=NAME or fd=N\) and id=" \
    --net fd=3,id=lan,mac=52:54:00:00:00:01

# --- a NIC on an inherited fd (libvirt's way): --restore DIR --net fd=M,id=ID
# gives the saved NIC its new backend (root: the taps are made here) ---
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then
    fsnap=$tmp/fsnap
    rm -f "$tmp/qf.sock"
    "$testlib/with-tap" vmmsf$$ 5 "$vmm" --kernel "$images/snapshot.elf" --memory 32M --net fd=5,id=lan \
        --serial "file=$tmp/outf1" --qmp "unix:$tmp/qf.sock" 2> "$tmp/errf1" < /dev/null &
    pid=$!
    wait_sock "$tmp/qf.sock"
    wait_counts 2 "$tmp/outf1"
    r=$(qmp "$tmp/qf.sock" '{"execute":"stop"}' "{\"execute\":\"x-vmm-snapshot\",\"arguments\":{\"dir\":\"$fsnap\"}}")
    kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
    check "a VM with --net fd=5: x-vmm-snapshot {}" eval '[ "$(grep -c "^{\"return\": {}}" <<<"$r")" = 2 ]' \
        -- <(echo "$r") "$tmp/errf1"
    broken "--restore of an fd NIC without --net for it" "$fsnap" \
        "NIC lan was on an inherited fd \(fd=\), which does not travel: give it one here, --net fd=N,id=lan"
    broken "--restore --net id=other" "$fsnap" "--net id=other: the saved machine has no NIC of that id \(its NICs: lan\)" \
        --net tap=vmmx$$,id=other
    before=$(last_count "$tmp/outf1")
    "$testlib/with-tap" vmmrf$$ 7 "$vmm" --restore "$fsnap" --net fd=7,id=lan --serial "file=$tmp/outf2" 2> "$tmp/errf2" < /dev/null &
    pid=$!
    wait_counts 2 "$tmp/outf2"
    check "--restore DIR --net fd=7,id=lan: the count goes on from $before, the NIC on fd 7 (tap vmmrf$$)" \
        eval 'consecutive "$tmp/outf1" "$tmp/outf2" && ! grep -q FAIL "$tmp/outf2" &&
              grep -q "^iff:[[:space:]]*vmmrf$$\$" /proc/$pid/fdinfo/7 && ! grep -qE "error|warn" "$tmp/errf2"' \
        -- "$tmp/outf2" "$tmp/errf2"
    kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
else
    for t in "snapshot" "restore without --net" "restore --net id=other" "restore --net fd=7"; do
        n=$((n + 1)); echo "ok $n - fd NIC: $t # SKIP needs root and /dev/net/tun"
    done
fi

broken "--restore with --kernel" "$b" "--kernel: the machine comes from the snapshot" --kernel /dev/null

# --- the hotplug controllers' state: the pcihp guest (devices=1: it drives
# the disks it has, takes hot-added ones into use and ejects on request)
# gets a disk hot-plugged in slot 7 over a named block node and a CPU
# hot-added; then, paused, device_del of the disk (the eject request is
# pending in PCID: the guest cannot act on it) and the snapshot. The
# restored VM has the CPU (present, its id) and the disk in slot 7 over its
# node; once it runs the guest sees the pending request, ejects slot 7, and
# vmm says DEVICE_DELETED; the guest ends with every check passed ---
wait_text() {   # FILE TEXT: up to 60 s
    local i=0
    while ! grep -qa -- "$2" "$1" 2>/dev/null && [ $i -lt 600 ]; do
        kill -0 "$pid" 2>/dev/null || return; sleep 0.1; i=$((i + 1)); done
}
head -c 1M /dev/zero > "$tmp/hp0.img"
head -c 1M /dev/zero > "$tmp/hp1.img"
hsnap=$tmp/hsnap
rm -f "$tmp/qh.sock"
"$vmm" --kernel "$images/pcihp.elf" --memory 64M --cpus boot=1,max=2 --test-exit --disk "path=$tmp/hp0.img,id=bdisk0" \
    --cmdline devices=1 --serial "file=$tmp/outh1" --qmp "unix:$tmp/qh.sock" 2> "$tmp/errh1" < /dev/null &
pid=$!
wait_sock "$tmp/qh.sock"
wait_text "$tmp/outh1" "# ready for unplug"
r=$(qmp "$tmp/qh.sock" \
    "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"hpn\",\"filename\":\"$tmp/hp1.img\"}}" \
    '{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"hpn","id":"hp1","addr":"0x7"}}' \
    '{"execute":"device_add","arguments":{"driver":"host-x86_64-cpu","id":"cpu1","socket-id":0,"core-id":1,"thread-id":0}}')
wait_text "$tmp/outh1" "# slot 7 up (blk)"
r2=$(qmp "$tmp/qh.sock" '{"execute":"stop"}' '{"execute":"device_del","arguments":{"id":"hp1"}}' \
    "{\"execute\":\"x-vmm-snapshot\",\"arguments\":{\"dir\":\"$hsnap\"}}")
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
check "hotplug: disk hp1 in slot 7 and CPU cpu1 added, the guest took the disk; paused, device_del and the snapshot {}" \
    eval '[ "$(grep -c "^{\"return\": {}}" <<<"$r")" = 3 ] && grep -q "# slot 7 up (blk)" "$tmp/outh1" &&
          [ "$(grep -c "^{\"return\": {}}" <<<"$r2")" = 3 ]' -- <(echo "$r"; echo "$r2") "$tmp/outh1" "$tmp/errh1"
rm -f "$tmp/qh2.sock"
"$vmm" --restore "$hsnap" --paused --serial "file=$tmp/outh2" --qmp "unix:$tmp/qh2.sock" 2> "$tmp/errh2" < /dev/null &
pid=$!
wait_sock "$tmp/qh2.sock"
r=$(qmp "$tmp/qh2.sock" '{"execute":"query-hotpluggable-cpus"}' '{"execute":"query-pci"}' \
    '{"execute":"query-named-block-nodes"}')
# one connection held until vmm ends: cont, then its events
{ echo '{"execute":"qmp_capabilities"}'; echo '{"execute":"cont"}'
  i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; } |
    "$qmpc" "$tmp/qh2.sock" > "$tmp/evh2" 2>&1
# (a guest still running after those 60 s fails the check, status 137,
# instead of holding the test until meson's timeout)
kill -KILL "$pid" 2>/dev/null; wait "$pid"; st=$?; pid=
check "hotplug, restored: cpu1 present, the disk in slot 7 over node hpn" \
    eval 'grep -q "\"qom-path\": \"/machine/peripheral/cpu1\"" <<<"$r" && grep -q "\"slot\": 7" <<<"$r" &&
          grep -q "\"qdev_id\": \"hp1\"" <<<"$r" && grep -q "\"node-name\": \"hpn\"" <<<"$r"' -- <(echo "$r") "$tmp/errh2"
check "hotplug, restored: the pending eject completes (guest ejects slot 7, DEVICE_DELETED hp1), every guest check passed" \
    eval 'grep -q "# slot 7 ejected (blk)" "$tmp/outh2" && grep -q "\"DEVICE_DELETED\".*\"device\": \"hp1\"" "$tmp/evh2" &&
          ! grep -q "^not ok" "$tmp/outh1" "$tmp/outh2" && [ "$(grep -c "^ok" "$tmp/outh1" "$tmp/outh2" | awk -F: "{ s += \$2 } END { print s }")" = 4 ] &&
          [ "$st" = 1 ]' -- "$tmp/outh2" "$tmp/evh2" "$tmp/errh2"

# --- virtio-mem: the virtio_mem guest plugs 32 MiB of a 256 MiB hotplug
# region and writes a pattern over it, then waits for the host to raise
# requested-size. Snapshot there: the memory file holds RAM and, after it,
# the plugged blocks' data and nothing of the unplugged ones; the restored
# guest gets the resize, plugs 64 MiB more, finds its pattern intact, goes
# through its unplug/plug checks and ends with every check passed ---
vm_opts=(--kernel "$images/virtio_mem.elf" --memory size=128M,hotplug_size=256M,requested_size=32M --test-exit
         --cmdline "region_mib=256 req_mib=32 next_mib=96")
msnap=$tmp/msnap
rm -f "$tmp/qm.sock"
"$vmm" "${vm_opts[@]}" --serial "file=$tmp/outm1" --qmp "unix:$tmp/qm.sock" 2> "$tmp/errm1" < /dev/null &
pid=$!
wait_sock "$tmp/qm.sock"
wait_text "$tmp/outm1" "# vmem: ready for resize"
r=$(qmp "$tmp/qm.sock" '{"execute":"stop"}' "{\"execute\":\"x-vmm-snapshot\",\"arguments\":{\"dir\":\"$msnap\"}}")
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
# bytes of data (not holes) in the memory file from OFFSET on
data_from() {
    python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); end = os.fstat(fd).st_size; off = int(sys.argv[2]); n = 0
while off < end:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE); n += h - d; off = h
print(n)' "$1" "$2"
}
hp_data=$(data_from "$msnap/memory" $((128 << 20)))
check "virtio-mem: x-vmm-snapshot {}; the memory file is RAM + the hotplug region (384 MiB), after RAM exactly the 2 MiB the guest wrote (a word every 64 KiB of the plugged 32 MiB)" \
    eval '[ "$(grep -c "^{\"return\": {}}" <<<"$r")" = 2 ] && [ "$(stat -c %s "$msnap/memory")" = $((384 << 20)) ] &&
          [ "$hp_data" = $((2 << 20)) ]' -- <(echo "$r"; echo "data after RAM: $hp_data") "$tmp/errm1"
rm -f "$tmp/qm2.sock"
"$vmm" --restore "$msnap" --serial "file=$tmp/outm2" --qmp "unix:$tmp/qm2.sock" 2> "$tmp/errm2" < /dev/null &
pid=$!
wait_sock "$tmp/qm2.sock"
r=$(qmp "$tmp/qm2.sock" '{"execute":"query-memory-devices"}' \
    '{"execute":"qom-set","arguments":{"path":"/machine/peripheral/vmem0","property":"requested-size","value":100663296}}')
i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$pid" 2>/dev/null; wait "$pid"; st=$?; pid=
check "virtio-mem, restored: 32 MiB plugged, the resize reaches the guest, its pattern intact, every check passed (exit 1)" \
    eval 'grep -q "\"size\": 33554432" <<<"$r" && grep -q "^ok .*patterns intact (0 words differ)" "$tmp/outm2" &&
          ! grep -q "^not ok" "$tmp/outm1" "$tmp/outm2" && ! grep -q "guest up\|^1\.\." "$tmp/outm2" && [ "$st" = 1 ]' \
    -- <(echo "$r") "$tmp/outm2" "$tmp/errm2"

tap_done
