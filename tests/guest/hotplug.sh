#!/bin/bash
# ACPI PCI hotplug end to end: the pcihp guest (guest-tests/pcihp.c) under
# vmm with a QMP socket, and qmp-hotplug (tests/guest/qmp-hotplug.c) driving
# CYCLES add/remove cycles of a virtio-blk disk plus the error cases. The
# guest sees each disk appear (PCIU, GED), reads it, ejects it on request;
# the driver sees DEVICE_DELETED only after that and checks vmm's fd count
# and RSS stay flat; vmm must keep running until the guest's debug-exit
# (status 1: every guest test passed). Then a disk hot-added to a guest
# that resets must be there from the start of the next boot (the machine's
# config). Then the pcihp guest's devices mode (root: a network namespace
# of its own, where vmm creates the taps): a disk and a NIC given at launch
# (--disk id=bdisk0, --net id=bnet0) are unplugged like hot-added ones
# (device_del, the guest releases and ejects, DEVICE_DELETED, blockdev-del /
# netdev_del of the node / netdev named by their ids), and a NIC is
# hot-added (netdev_add, device_add) and hot-unplugged the same way. vmm
# only: QEMU's microvm has no ACPI PCI hotplug. Emits TAP; skips where
# /dev/kvm cannot run a VM.
#
# usage: hotplug.sh VMM IMAGE_DIR SOURCE_ROOT QMP_HOTPLUG [CYCLES]
set -u
vmm=$(readlink -f "$1") images=$2 srcroot=$3 driver=$4 cycles=${5:-${HOTPLUG_CYCLES:-100}}
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-hotplug.XXXXXX")
pid= watchdog=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; disarm_watchdog; rm -rf "$tmp"' EXIT
# arm_watchdog SECONDS: SIGKILL to vmm ($pid) after SECONDS unless disarm_watchdog
# comes first. Its sleep ends with it: a plain (sleep N; kill ...) & left the sleep
# running for minutes after each run, and on an early exit the watchdog
# itself, which then killed whatever process had that PID by then.
arm_watchdog() {
    (trap 'kill "$s" 2>/dev/null; exit 0' TERM
     sleep "$1" & s=$!
     wait "$s" && kill -KILL "$pid") >/dev/null 2>&1 &
    watchdog=$!
}
disarm_watchdog() { [ -z "$watchdog" ] || { kill "$watchdog" 2>/dev/null; wait "$watchdog" 2>/dev/null; watchdog=; }; }
# drive SECONDS DRIVER-ARGS...: the QMP driver against the vmm in $pid, which
# gets SIGTERM 5 s after a driver failure; vmm's status in $rc; all of it
# under a SECONDS watchdog.
drive() {
    arm_watchdog "$1"
    shift
    "$driver" "$@"
    [ $? = 0 ] || { sleep 5; kill -TERM "$pid" 2>/dev/null; }
    wait "$pid"
    rc=$?
    pid=
    disarm_watchdog
}
# relay_guest LAST [SKIP_ERE]: the guest's TAP lines in $tmp/out (those
# matching SKIP_ERE left out), numbered on from $n, then "not ok" for each
# one missing up to LAST.
relay_guest() {
    local line
    while read -r line; do
        case "$line" in
        "ok "*|"not ok "*)
            n=$((n + 1))
            echo "$line" | sed -E "s/^(not )?ok [0-9]+/\\1ok $n - guest:/; s/- guest: -/- guest:/" ;;
        "#"*) echo "$line" ;;
        esac
    done < <(tr -d '\r' < "$tmp/out" | grep -E '^(ok|not ok|#)' | grep -vE "${2:-^$}")
    while [ $n -lt "$1" ]; do n=$((n + 1)); echo "not ok $n - guest: no result (see vmm's output below)"; done
}
# the driver: 1 + 7 error cases + 4 in cycle 1 + 3; the guest: 4; vmm's status: 1; the reset: 1;
# devices given at launch and a NIC: the driver 18, the guest 4, vmm's status 1
echo "1..44"
dd if=/dev/zero of="$tmp/disk.img" bs=1024 count=1024 2>/dev/null
"$vmm" --kernel "$images/pcihp.elf" --memory 64M --serial stdio --test-exit --reboot exit --object iothread,id=io0 \
    --qmp "unix:$tmp/qmp.sock" --cmdline "cycles=$cycles final=1" </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
# (not holding our stdout: a pipe reading this script's TAP would wait for it)
drive 600 "$tmp/qmp.sock" "$pid" "$tmp" "$cycles" 1
# The guest's TAP lines, renumbered after the driver's 15.
n=15
relay_guest 19 '^# cycle [0-9]* ejected'
if [ "$rc" = 1 ]; then
    echo "ok 20 - vmm ran the guest to its end: debug-exit 0 (status 1)"
else
    echo "not ok 20 - vmm exited with status $rc, not 1"
    sed 's/^/#   out| /' "$tmp/out" | tail -20
    sed 's/^/#   err| /' "$tmp/err" | tail -20
fi

# A hot-added disk survives a guest reset.
dd if=/dev/zero of="$tmp/disk.img" bs=1024 count=1024 2>/dev/null
rm -f "$tmp/qmp.sock"
"$vmm" --kernel "$images/pcihp.elf" --memory 64M --serial stdio --test-exit \
    --qmp "unix:$tmp/qmp.sock" --cmdline "reset=1 cycles=0" </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
arm_watchdog 120
"$driver" "$tmp/qmp.sock" "$pid" "$tmp" 0 1 >"$tmp/driver.out" 2>&1
wait "$pid"
rc=$?
pid=
disarm_watchdog
if [ "$rc" = 1 ] && grep -q '^ok 2 - after the reset the hot-added disk' "$tmp/out" &&
        grep -q '^# resetting with the hot-added disk in place' "$tmp/out"; then
    echo "ok 21 - a disk hot-added at addr 0x7 is in slot 7 from the start of the boot after a guest reset"
else
    echo "not ok 21 - the hot-added disk after a reset (vmm status $rc)"
    sed 's/^/#   out| /' "$tmp/out" | tail -20
    sed 's/^/#   driver| /' "$tmp/driver.out" | tail -20
fi

# Devices given at launch, and a NIC hot-added, all unplugged (root: vmm in a
# network namespace of its own creates the taps).
if [ "$(id -u)" != 0 ] || ! unshare -n true 2>/dev/null; then
    for i in $(seq 22 44); do echo "ok $i - # SKIP devices given at launch: needs root (a network namespace for the taps)"; done
    exit 0
fi
dd if=/dev/zero of="$tmp/disk.img" bs=1024 count=1024 2>/dev/null
rm -f "$tmp/qmp.sock"
unshare -n "$vmm" --kernel "$images/pcihp.elf" --memory 64M --serial stdio --test-exit \
    --disk "path=$tmp/disk.img,id=bdisk0" --net tap=vmmhp0,id=bnet0,mac=52:54:00:00:00:b0 \
    --qmp "unix:$tmp/qmp.sock" --cmdline "devices=3" </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
drive 300 "$tmp/qmp.sock" "$pid" "$tmp" devices 22
n=39
relay_guest 43
if [ "$rc" = 1 ]; then
    echo "ok 44 - vmm ran the devices guest to its end: debug-exit 0 (status 1)"
else
    echo "not ok 44 - vmm exited with status $rc, not 1"
    sed 's/^/#   out| /' "$tmp/out" | tail -20
    sed 's/^/#   err| /' "$tmp/err" | tail -20
fi
