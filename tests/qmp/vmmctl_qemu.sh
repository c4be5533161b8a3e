#!/bin/bash
# vmmctl against QEMU 7.2 (the reference QMP server): lifecycle commands, raw
# qmp, --json output, events, hotplug of a disk/NIC/CPU and virtio-mem resize,
# device_del of a device no guest releases (no OS runs: the guest "refuses"),
# and the exit codes for a QMP error, a lost connection and a timeout.
# QEMU runs with -S (no guest code until cont) and two QMP sockets (QEMU
# serves one client per socket). Emits TAP.
#
# usage: vmmctl_qemu.sh VMMCTL
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmmctl=$(readlink -f "$1")

command -v qemu-system-x86_64 >/dev/null || skip_all "qemu-system-x86_64 is not installed"
accel=tcg
[ -w /dev/kvm ] && accel=kvm

dir=$(mktemp -d /tmp/vmmctl-qemu.XXXXXX)
qpid=
tap=
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
    [ -n "$tap" ] && ip link del "$tap" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

A=$dir/a.sock
B=$dir/b.sock
truncate -s 8M "$dir/disk0.img" "$dir/disk1.img" "$dir/disk2.img"
qemu-system-x86_64 -accel "$accel" -M pc -m 128M,maxmem=1G -smp 1,maxcpus=2 \
    -object memory-backend-ram,id=mem0,size=256M -device virtio-mem-pci,id=vm0,memdev=mem0 \
    -device qemu-xhci,id=xhci -nodefaults -display none -S -name vmmctl-test \
    -qmp "unix:$A,server=on,wait=off" -qmp "unix:$B,server=on,wait=off" \
    >"$dir/qemu.log" 2>&1 &
qpid=$!
for _ in $(seq 100); do
    [ -S "$A" ] && [ -S "$B" ] && break
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.1
done
[ -S "$A" ] && [ -S "$B" ] || skip_all "QEMU did not start: $(tr '\n' ' ' <"$dir/qemu.log")"

# run VAR_PREFIX ARGS...: runs vmmctl, sets out, err, st
run() {
    out=$("$vmmctl" "$@" 2>"$dir/err")
    st=$?
    err=$(cat "$dir/err")
}
expect() {     # expect STATUS: "" when st matches, else a reason
    [ "$st" = "$1" ] || echo "exit status $st, want $1 (stdout: $out) (stderr: $err)"
}
json_get() {   # json_get EXPR: evaluates a python expression on the JSON j=$out
    python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($1)" "$out" 2>&1
}

run -s "$A" status
ok "status of a -S QEMU is prelaunch" "$(expect 0)$([ "$out" = prelaunch ] || echo "printed '$out'")"

run -s "$A" --json status
ok "--json status is the raw query-status return" \
    "$(expect 0)$([ "$(json_get 'j["status"], j["running"]')" = "prelaunch False" ] || echo "printed '$out'")"

run -s "$A" wait-event RESUME cont
ok "wait-event RESUME cont: prints the RESUME event cont caused" \
    "$(expect 0)$(grep -qE '^[0-9-]+ [0-9:.]+ RESUME$' <<<"$out" || echo "printed '$out'")"

run -s "$A" status
ok "status after cont is running" "$(expect 0)$([ "$out" = running ] || echo "printed '$out'")"

run -s "$A" pause
ok "pause prints nothing and exits 0" "$(expect 0)$([ -z "$out$err" ] || echo "printed '$out' '$err'")"
run -s "$A" status
ok "status after pause is paused" "$(expect 0)$([ "$out" = paused ] || echo "printed '$out'")"

run -s "$A" --json --timeout 5 events --count 1 cont
ok "events --count 1 cont: --json prints the RESUME event object" \
    "$(expect 0)$([ "$(json_get 'j["event"], sorted(j["timestamp"])')" = "RESUME ['microseconds', 'seconds']" ] || echo "printed '$out'")"

run -s "$A" resume
ok "resume of a running VM exits 0" "$(expect 0)"

# two clients: the event caused on A reaches the monitor on B
"$vmmctl" -s "$B" --timeout 10 events --count 2 >"$dir/events.out" 2>"$dir/events.err" &
epid=$!
# events are only sent to a client once it has negotiated, and nothing says
# from outside when that is: pause+resume on A until B has printed 2 events.
for _ in $(seq 50); do
    kill -0 "$epid" 2>/dev/null || break
    "$vmmctl" -s "$A" pause && "$vmmctl" -s "$A" resume
    sleep 0.2
done
wait "$epid"
est=$?
ok "events on a second socket see the STOP/RESUME caused on the first" \
    "$([ "$est" = 0 ] || echo "exit status $est: $(cat "$dir/events.err")")$(grep -qE ' (STOP|RESUME)$' "$dir/events.out" && [ "$(wc -l <"$dir/events.out")" = 2 ] || echo "printed '$(cat "$dir/events.out")'")"

run -s "$A" --timeout 0.5 wait-event NO_SUCH_EVENT
ok "wait-event without the event: exit 4 after --timeout, one line" \
    "$(expect 4)$([ "$err" = "vmmctl: no NO_SUCH_EVENT event within 0.5 s" ] || echo "stderr '$err'")"

run -s "$A" qmp query-name
ok "qmp query-name prints the return as JSON" \
    "$(expect 0)$([ "$(json_get 'j["name"]')" = vmmctl-test ] || echo "printed '$out'")"

run -s "$A" qmp qom-list '{"path": "/machine/peripheral"}'
ok "qmp with JSON-ARGS passes the arguments" \
    "$(expect 0)$(grep -q '"vm0"' <<<"$out" || echo "printed '$out'")"

run -s "$A" qmp no-such-command
ok "qmp of an unknown command: exit 1, the VM's desc on one line" \
    "$(expect 1)$([ "$err" = "vmmctl: The command no-such-command has not been found" ] || echo "stderr '$err'")$([ -z "$out" ] || echo "stdout '$out'")"

run -s "$A" --json qmp no-such-command
ok "--json qmp of an unknown command prints the error object" \
    "$(expect 1)$([ "$(json_get 'j["error"]["class"]')" = CommandNotFound ] || echo "printed '$out'")"

run -s "$A" qmp qom-list '{"path": 5}'
ok "a QMP error for a wrong argument type: exit 1" \
    "$(expect 1)$([ "$(wc -l <<<"$err")" = 1 ] || echo "stderr '$err'")"

run -s "$A" info
ok "info prints version, name, cpus, block and pci" \
    "$(expect 0)$(for k in '^version +7\.2\.' '^name +vmmctl-test$' '^uuid ' '^status +running$' '^cpus +1$' '^block$' '^pci$' ' vm0( |$)'; do grep -qE "$k" <<<"$out" || echo "no '$k' in: $out"; done)"

run -s "$A" --json info
ok "--json info is one JSON object with every query" \
    "$(expect 0)$([ "$(json_get 'sorted(j)')" = "['block', 'cpus', 'name', 'pci', 'status', 'uuid', 'version']" ] || echo "printed '$out'")"

# hotplug: a disk
run -s "$A" add-disk "$dir/disk0.img" --id d0
ok "add-disk --id d0: blockdev-add + device_add accepted" \
    "$(expect 0)$([ "$out" = "added disk d0: $dir/disk0.img" ] || echo "printed '$out'")"
run -s "$A" --json qmp query-block
ok "the disk is in query-block as node d0 on device d0" \
    "$(expect 0)$([ "$(json_get '[(b["qdev"], b["inserted"]["node-name"], b["inserted"]["ro"]) for b in j]')" = "[('/machine/peripheral/d0/virtio-backend', 'd0', False)]" ] || echo "printed '$out'")"

run -s "$A" --json add-disk "$dir/disk1.img" --readonly
ok "add-disk --readonly without --id: picks disk0, --json output" \
    "$(expect 0)$([ "$(json_get 'j["id"], j["read-only"]')" = "disk0 True" ] || echo "printed '$out'")"

run -s "$A" add-disk "$dir/disk1.img" --id d0
ok "add-disk of a duplicate id: exit 1 with QEMU's desc" \
    "$(expect 1)$(grep -q "^vmmctl: blockdev-add: Duplicate nodes with node-name='d0'$" <<<"$err" || echo "stderr '$err'")"

run -s "$A" add-disk "$dir/missing.img" --id d9
ok "add-disk of a path that does not exist: exit 1" \
    "$(expect 1)$(grep -q "No such file or directory" <<<"$err" || echo "stderr '$err'")"

run -s "$A" --timeout 1 remove-device d0 --wait
ok "remove-device --wait of a disk no guest releases: exit 5 and the clear error" \
    "$(expect 5)$([ "$err" = "vmmctl: guest did not release d0 within 1 s; the device stays" ] || echo "stderr '$err'")"

run -s "$A" info
ok "after the refused removal the VM runs and d0 is still there" \
    "$(expect 0)$(grep -qE '^status +running$' <<<"$out" && grep -qE ' d0 ' <<<"$out" || echo "printed '$out'")"

# USB devices go at once on device_del (no guest handshake): the --wait path
# that ends in DEVICE_DELETED, and the backend taken away after it
run -s "$A" qmp device_add '{"driver": "usb-kbd", "id": "k0"}'
run -s "$A" --json remove-device k0 --wait
ok "remove-device --wait of a device the VM releases at once: exit 0, removed" \
    "$(expect 0)$([ "$(json_get 'j["id"], j["removed"]')" = "k0 True" ] || echo "printed '$out'")"
run -s "$A" qmp blockdev-add "{\"driver\": \"raw\", \"node-name\": \"u0n\", \"file\": {\"driver\": \"file\", \"filename\": \"$dir/disk2.img\"}}"
run -s "$A" qmp device_add '{"driver": "usb-storage", "drive": "u0n", "id": "u0"}'
ok "a usb-storage device u0 on block node u0n" "$(expect 0)"
run -s "$A" remove-device u0 --wait
ok "remove-device --wait of a disk: DEVICE_DELETED, then its block node is deleted" \
    "$(expect 0)$([ "$out" = "removed u0 and block node u0n" ] || echo "printed '$out'")$("$vmmctl" -s "$A" qmp query-named-block-nodes | grep -q '"u0n"' && echo "node u0n still there")"

run -s "$A" qmp netdev_add '{"type": "user", "id": "un0"}'
run -s "$A" qmp device_add '{"driver": "usb-net", "netdev": "un0", "id": "un"}'
ok "a usb-net device un on netdev un0" "$(expect 0)"
run -s "$A" remove-device un --wait
ok "remove-device --wait of a NIC: DEVICE_DELETED, then its netdev is deleted" \
    "$(expect 0)$([ "$out" = "removed un and netdev un0" ] || echo "printed '$out'")$("$vmmctl" -s "$A" qmp netdev_del '{"id": "un0"}' 2>/dev/null && echo "netdev un0 still there")"

run -s "$A" remove-device nonexistent
ok "remove-device of an unknown id: exit 1" \
    "$(expect 1)$(grep -q "nonexistent" <<<"$err" || echo "stderr '$err'")"

# a NIC needs a tap device (root)
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] && ip tuntap add dev vmmctl-t$$ mode tap 2>/dev/null; then
    tap=vmmctl-t$$
    run -s "$A" add-net "$tap" --id n0 --mac 52:54:00:12:34:56
    ok "add-net: netdev_add tap + device_add virtio-net-pci" \
        "$(expect 0)$([ "$out" = "added NIC n0 on tap $tap, MAC 52:54:00:12:34:56" ] || echo "printed '$out'")"
    run -s "$A" qmp qom-get '{"path": "/machine/peripheral/n0", "property": "mac"}'
    ok "the NIC has the MAC given" "$(expect 0)$([ "$out" = '"52:54:00:12:34:56"' ] || echo "printed '$out'")"
    run -s "$A" add-net "$tap" --id n0
    ok "add-net of a duplicate id: exit 1" "$(expect 1)$([ "$(wc -l <<<"$err")" = 1 ] || echo "stderr '$err'")"
else
    echo "ok $((n + 1)) # SKIP add-net: needs root and /dev/net/tun to make a tap device"
    n=$((n + 1))
fi

# CPU hotplug: maxcpus=2 leaves one slot
run -s "$A" add-cpu
ok "add-cpu takes the free slot" \
    "$(expect 0)$(grep -qE '^added CPU cpu-0-1-0 \(.*core-id=1' <<<"$out" || echo "printed '$out'")"
run -s "$A" --json qmp query-cpus-fast
ok "query-cpus-fast lists 2 CPUs" "$(expect 0)$([ "$(json_get 'len(j)')" = 2 ] || echo "printed '$out'")"
run -s "$A" add-cpu
ok "add-cpu with no free slot: exit 1" \
    "$(expect 1)$([ "$err" = "vmmctl: add-cpu: no free CPU slot (all 2 hotpluggable CPUs are present)" ] || echo "stderr '$err'")"

# virtio-mem
run -s "$A" resize-memory 64M
ok "resize-memory picks the virtio-mem device vm0" \
    "$(expect 0)$(grep -q '^vm0: requested-size 64 MiB' <<<"$out" || echo "printed '$out'")"
run -s "$A" qmp qom-get '{"path": "/machine/peripheral/vm0", "property": "requested-size"}'
ok "requested-size is 64 MiB" "$(expect 0)$([ "$out" = 67108864 ] || echo "printed '$out'")"
run -s "$A" resize-memory 3M --device vm0
ok "resize-memory to a size QEMU refuses: exit 1" "$(expect 1)$(grep -q 'block-size' <<<"$err" || echo "stderr '$err'")"
run -s "$A" --timeout 1 resize-memory 8M --wait
ok "resize-memory --wait with a guest that plugs nothing: exit 4, what is plugged" \
    "$(expect 4)$([ "$err" = "vmmctl: vm0: the guest has 0 B plugged, not 8 MiB, after 1 s (requested-size stays 8 MiB)" ] || echo "stderr '$err'")"
run -s "$A" resize-memory 0 --wait
ok "resize-memory 0 --wait with nothing plugged: done at once" \
    "$(expect 0)$([ "$out" = "vm0: 0 B plugged" ] || echo "printed '$out'")"

run -s "$A" quit
ok "quit exits 0" "$(expect 0)"
wait "$qpid"
qpid=
run -s "$A" status
ok "status after quit: exit 3, cannot connect" \
    "$(expect 3)$(grep -q '^vmmctl: cannot connect to ' <<<"$err" || echo "stderr '$err'")"

# q35: the root bus takes no hotplug, a root port does (--bus)
Q=$dir/q.sock
qemu-system-x86_64 -accel "$accel" -M q35 -m 128M -nodefaults -display none -S \
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1 -qmp "unix:$Q,server=on,wait=off" \
    >"$dir/qemu-q35.log" 2>&1 &
qpid=$!
for _ in $(seq 100); do
    [ -S "$Q" ] && break
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.1
done
run -s "$Q" add-disk "$dir/disk0.img" --id q0
ok "q35: add-disk on the root bus: exit 1, QEMU's reason, the block node taken back" \
    "$(expect 1)$([ "$err" = "vmmctl: device_add: Bus 'pcie.0' does not support hotplugging" ] || echo "stderr '$err'")$("$vmmctl" -s "$Q" qmp query-named-block-nodes | grep -q '"q0"' && echo "node q0 left behind")"
run -s "$Q" add-disk "$dir/disk0.img" --id q0 --bus rp1
ok "q35: add-disk --bus rp1" "$(expect 0)"
run -s "$Q" --timeout 1 remove-device q0 --wait
ok "q35: remove-device --wait with no guest to release it: exit 5" \
    "$(expect 5)$([ "$err" = "vmmctl: guest did not release q0 within 1 s; the device stays" ] || echo "stderr '$err'")"
run -s "$Q" quit
ok "q35: quit" "$(expect 0)"
wait "$qpid"
qpid=

tap_done
