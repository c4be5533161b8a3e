#!/bin/bash
# vmmctl against vmm's own QMP server, with a live guest (spin.elf: one line,
# then a halted vCPU, no ACPI handling, so it releases nothing). The same
# commands as vmmctl_qemu.sh runs against QEMU: lifecycle, info, raw qmp,
# events on a second socket, virtio-mem resize, and the hotplug commands.
# remove-cpu --wait also runs against guest-tests/cpuhp, which ejects.
# A command whose QMP side vmm does not have yet (checked in query-commands)
# is a named SKIP that says which part of issue 5 is missing, never a pass.
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: vmmctl_vmm.sh VMM VMMCTL IMAGE_DIR SOURCE_ROOT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") vmmctl=$(readlink -f "$2") images=$(readlink -f "$3") srcroot=$4
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi

dir=$(mktemp -d /tmp/vmmctl-vmm.XXXXXX)
vpid=
cleanup() {
    [ -n "$vpid" ] && kill -KILL "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
A=$dir/a.sock
B=$dir/b.sock
truncate -s 8M "$dir/disk0.img"

run() {
    out=$("$vmmctl" "$@" 2>"$dir/err")
    st=$?
    err=$(cat "$dir/err")
}
expect() {
    [ "$st" = "$1" ] || echo "exit status $st, want $1 (stdout: $out) (stderr: $err)"
}
json_get() {
    python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($1)" "$out" 2>&1
}

"$vmm" --kernel "$images/spin.elf" --memory size=64M,hotplug_size=64M --cpus boot=1,max=2 --paused \
    --name vmmctl-test --serial file="$dir/serial" \
    --qmp "unix:$A" --qmp "unix:$B" >"$dir/vmm.out" 2>"$dir/vmm.err" </dev/null &
vpid=$!
for _ in $(seq 200); do
    [ -S "$A" ] && [ -S "$B" ] && break
    kill -0 "$vpid" 2>/dev/null || break
    sleep 0.1
done
if ! [ -S "$A" ] || ! [ -S "$B" ]; then
    ok "vmm listens on its two --qmp sockets" "no sockets; vmm stderr: $(cat "$dir/vmm.err")"
    echo "1..$n"
    exit 1
fi

# what this vmm implements
run -s "$A" --json qmp query-commands
cmds=$(json_get '" ".join(sorted(c["name"] for c in j))')
has() { for c in "$@"; do [[ " $cmds " == *" $c "* ]] || return 1; done; }
missing() { local m=; for c in "$@"; do [[ " $cmds " == *" $c "* ]] || m="$m $c"; done; echo "${m# }"; }
ok "query-commands lists the lifecycle commands" "$(expect 0)$(has stop cont query-status || echo "got: $cmds")"

run -s "$A" status
ok "status of a --paused vmm is prelaunch" "$(expect 0)$([ "$out" = prelaunch ] || echo "printed '$out'")"

run -s "$A" --json status
ok "--json status is the raw query-status return" \
    "$(expect 0)$([ "$(json_get 'j["status"], j["running"]')" = "prelaunch False" ] || echo "printed '$out'")"

run -s "$A" wait-event RESUME cont
ok "wait-event RESUME cont: prints the RESUME event" \
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

"$vmmctl" -s "$B" --timeout 10 events --count 2 >"$dir/events.out" 2>"$dir/events.err" &
epid=$!
for _ in $(seq 50); do      # until the watcher on B has negotiated and seen 2
    kill -0 "$epid" 2>/dev/null || break
    "$vmmctl" -s "$A" pause && "$vmmctl" -s "$A" resume
    sleep 0.2
done
wait "$epid"
est=$?
ok "events on the second socket see the STOP/RESUME caused on the first" \
    "$([ "$est" = 0 ] || echo "exit status $est: $(cat "$dir/events.err")")$(grep -qE ' (STOP|RESUME)$' "$dir/events.out" && [ "$(wc -l <"$dir/events.out")" = 2 ] || echo "printed '$(cat "$dir/events.out")'")"

run -s "$A" --timeout 0.5 wait-event NO_SUCH_EVENT
ok "wait-event without the event: exit 4 after --timeout" \
    "$(expect 4)$([ "$err" = "vmmctl: no NO_SUCH_EVENT event within 0.5 s" ] || echo "stderr '$err'")"

run -s "$A" qmp query-name
ok "qmp query-name prints the return as JSON" \
    "$(expect 0)$([ "$(json_get 'j["name"]')" = vmmctl-test ] || echo "printed '$out'")"
run -s "$A" qmp no-such-command
ok "qmp of an unknown command: exit 1, QEMU's desc on one line" \
    "$(expect 1)$([ "$err" = "vmmctl: The command no-such-command has not been found" ] || echo "stderr '$err'")"
run -s "$A" --json qmp no-such-command
ok "--json qmp of an unknown command prints the error object" \
    "$(expect 1)$([ "$(json_get 'j["error"]["class"]')" = CommandNotFound ] || echo "printed '$out'")"

run -s "$A" info
ok "info prints version, name, status, cpus, block and pci" \
    "$(expect 0)$(for k in '^version +[0-9]+\.[0-9]+\.[0-9]+' '^name +vmmctl-test$' '^uuid ' '^status +running$' '^cpus +1$' '^block$' '^pci$' '00:00\.0'; do grep -qE "$k" <<<"$out" || echo "no '$k' in: $out"; done)$(grep 'not supported' <<<"$out")"
run -s "$A" --json info
ok "--json info: every query answered (no error member)" \
    "$(expect 0)$([ "$(json_get '[k for k in sorted(j) if isinstance(j[k], dict) and "error" in j[k]]')" = "[]" ] || echo "printed '$out'")"

# virtio-mem (--memory hotplug_size=64M: vmem0)
if has qom-set qom-list; then
    run -s "$A" resize-memory 4M
    ok "resize-memory picks vmem0 from qom-list /machine/peripheral" \
        "$(expect 0)$(grep -q '^vmem0: requested-size 4 MiB' <<<"$out" || echo "printed '$out'")"
    run -s "$A" qmp qom-get '{"path": "/machine/peripheral/vmem0", "property": "requested-size"}'
    ok "requested-size is 4 MiB" "$(expect 0)$([ "$out" = 4194304 ] || echo "printed '$out'")"
    run -s "$A" resize-memory 3M
    ok "resize-memory to a size vmm refuses: exit 1, its desc" \
        "$(expect 1)$(grep -q "multiples of 'block-size'" <<<"$err" || echo "stderr '$err'")"
run -s "$A" --timeout 1 resize-memory 8M --wait
ok "resize-memory --wait with a guest that plugs nothing: exit 4, what is plugged" \
    "$(expect 4)$([ "$err" = "vmmctl: vmem0: the guest has 0 B plugged, not 8 MiB, after 1 s (requested-size stays 8 MiB)" ] || echo "stderr '$err'")"
run -s "$A" resize-memory 0 --wait
ok "resize-memory 0 --wait with nothing plugged: done at once" \
    "$(expect 0)$([ "$out" = "vmem0: 0 B plugged" ] || echo "printed '$out'")"
else
    skip "resize-memory: vmm has no $(missing qom-set qom-list) (issue 5, memory hotplug: virtio-mem over QMP)"
fi

# PCI hotplug: a disk, then a device_del nobody answers (spin.elf ignores ACPI)
if has blockdev-add device_add device_del; then
    run -s "$A" add-disk "$dir/disk0.img" --id d0
    ok "add-disk --id d0" "$(expect 0)$([ "$out" = "added disk d0: $dir/disk0.img" ] || echo "printed '$out'")"
    run -s "$A" --json qmp query-pci
    ok "d0 is in query-pci" "$(expect 0)$(grep -q '"qdev_id":"d0"' <<<"$out" || echo "printed '$out'")"
    run -s "$A" add-disk "$dir/disk0.img" --id d0
    ok "add-disk of a duplicate id: exit 1, one line" "$(expect 1)$([ "$(wc -l <<<"$err")" = 1 ] || echo "stderr '$err'")"
    run -s "$A" add-disk "$dir/missing.img" --id d9
    ok "add-disk of a path that does not exist: exit 1" "$(expect 1)"
    run -s "$A" --timeout 1 remove-device d0 --wait
    ok "remove-device --wait of a disk the guest does not release: exit 5, the clear error" \
        "$(expect 5)$([ "$err" = "vmmctl: guest did not release d0 within 1 s; the device stays" ] || echo "stderr '$err'")"
    run -s "$A" info
    ok "after the refused removal vmm runs, d0 still there" \
        "$(expect 0)$(grep -qE '^status +running$' <<<"$out" && grep -qE ' d0( |$)' <<<"$out" || echo "printed '$out'")"
else
    skip "add-disk/remove-device: vmm has no $(missing blockdev-add device_add device_del) (issue 5, PCI hotplug: device_add/device_del of virtio-blk)"
fi
if has netdev_add device_add; then
    if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then
        run -s "$A" add-net vmmctl-v$$ --id n0 --mac 52:54:00:12:34:57
        ok "add-net (a tap vmm opens by name)" "$(expect 0)"
    else
        skip "add-net: needs root and /dev/net/tun"
    fi
else
    skip "add-net: vmm has no $(missing netdev_add device_add) (issue 5, PCI hotplug: device_add of virtio-net)"
fi

# CPU hotplug: --cpus boot=1,max=2
if has query-hotpluggable-cpus device_add device_del; then
    run -s "$A" add-cpu --id c1
    ok "add-cpu --id c1 takes the free slot" "$(expect 0)$(grep -q '^added CPU c1 (' <<<"$out" || echo "printed '$out'")"
    run -s "$A" --json qmp query-cpus-fast
    ok "query-cpus-fast lists 2 CPUs" "$(expect 0)$([ "$(json_get 'len(j)')" = 2 ] || echo "printed '$out'")"
    run -s "$A" add-cpu
    ok "add-cpu with no free slot: exit 1" \
        "$(expect 1)$([ "$err" = "vmmctl: add-cpu: no free CPU slot (all 2 hotpluggable CPUs are present)" ] || echo "stderr '$err'")"
    run -s "$A" --timeout 1 remove-cpu c1 --wait
    ok "remove-cpu --wait of a CPU the guest does not eject: exit 5" \
        "$(expect 5)$([ "$err" = "vmmctl: guest did not release c1 within 1 s; the device stays" ] || echo "stderr '$err'")"
else
    skip "add-cpu/remove-cpu: vmm has no $(missing query-hotpluggable-cpus device_add device_del) (issue 5, CPU hotplug)"
fi

run -s "$A" wait-event RESET system_reset
ok "reset: wait-event RESET system_reset" "$(expect 0)$(grep -q ' RESET {"guest":false' <<<"$out" || echo "printed '$out'")"
run -s "$A" wait-event POWERDOWN system_powerdown
ok "powerdown: POWERDOWN (the guest ignores the button)" "$(expect 0)$(grep -q ' POWERDOWN$' <<<"$out" || echo "printed '$out'")"
run -s "$A" status
ok "still running after the ignored power button" "$(expect 0)$([ "$out" = running ] || echo "printed '$out'")"

run -s "$A" quit
ok "quit exits 0" "$(expect 0)"
for _ in $(seq 200); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
wait "$vpid"
vst=$?
vpid=
ok "vmm exits 0 after quit" "$([ "$vst" = 0 ] || echo "status $vst: $(cat "$dir/vmm.err")")"
run -s "$A" status
ok "status after quit: exit 3" "$(expect 3)$(grep -q '^vmmctl: cannot connect to ' <<<"$err" || echo "stderr '$err'")"

# The --wait success path on a guest that does eject: guest-tests/cpuhp
# (boot=1 max=2 add=1) says when it is ready for the add and the remove,
# acknowledges both through vmm's CPU hotplug controller, and checks that the
# CPU starts again when plugged back; --test-exit: 1 when all its checks pass.
wait_out() {   # up to 60 s for a line in the guest's serial output
    for _ in $(seq 600); do grep -q "$1" "$dir/cpuhp.out" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
if ! has query-hotpluggable-cpus device_add device_del; then
    skip "remove-cpu --wait on a guest that ejects: vmm has no $(missing query-hotpluggable-cpus device_add device_del) (issue 5, CPU hotplug)"
elif [ ! -f "$images/cpuhp.elf" ]; then
    skip "remove-cpu --wait on a guest that ejects: no $images/cpuhp.elf"
else
    C=$dir/c.sock
    "$vmm" --kernel "$images/cpuhp.elf" --cpus boot=1,max=2 --memory 128M --serial file="$dir/cpuhp.out" \
        --test-exit --cmdline "boot=1 max=2 add=1" --qmp "unix:$C" >/dev/null 2>"$dir/cpuhp.err" </dev/null &
    vpid=$!
    wait_out "^# cpuhp: ready for add"
    run -s "$C" add-cpu --id cpu1
    ok "cpuhp guest: add-cpu --id cpu1" "$(expect 0)$(grep -q '^added CPU cpu1 (' <<<"$out" || echo "printed '$out'")"
    wait_out "^# cpuhp: ready for remove"
    run -s "$C" --timeout 60 remove-cpu cpu1 --wait
    ok "cpuhp guest: remove-cpu --wait returns once the guest has ejected the CPU" \
        "$(expect 0)$([ "$out" = "removed cpu1" ] || echo "printed '$out'")"
    wait_out "^# cpuhp: ejected"
    run -s "$C" add-cpu --id cpu1
    ok "cpuhp guest: add-cpu of the same slot again" "$(expect 0)"
    for _ in $(seq 600); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vpid" 2>/dev/null
    wait "$vpid"
    vst=$?
    vpid=
    ok "cpuhp guest: every check of the guest passed (test-exit 1)" \
        "$([ "$vst" = 1 ] || echo "vmm status $vst")$(grep '^not ok' "$dir/cpuhp.out")"
fi

# The same for a disk: guest-tests/pcihp (cycles=1) waits for a disk in a
# hotplug slot, reads "VMMHP0001" from its sector 0, and ejects it once
# device_del asks; --test-exit 1 when all its checks pass.
if ! has blockdev-add device_add device_del; then
    skip "remove-device --wait on a guest that ejects: vmm has no $(missing blockdev-add device_add device_del) (issue 5, PCI hotplug)"
elif [ ! -f "$images/pcihp.elf" ]; then
    skip "remove-device --wait on a guest that ejects: no $images/pcihp.elf"
else
    P=$dir/p.sock
    truncate -s 1M "$dir/hp.img"
    printf 'VMMHP0001' | dd of="$dir/hp.img" conv=notrunc 2>/dev/null
    "$vmm" --kernel "$images/pcihp.elf" --memory 64M --serial file="$dir/pcihp.out" --test-exit --reboot exit \
        --cmdline "cycles=1" --qmp "unix:$P" >/dev/null 2>"$dir/pcihp.err" </dev/null &
    vpid=$!
    for _ in $(seq 600); do grep -q "^# ready for hotplug" "$dir/pcihp.out" 2>/dev/null && break; sleep 0.1; done
    run -s "$P" add-disk "$dir/hp.img" --id hd
    ok "pcihp guest: add-disk --id hd" "$(expect 0)"
    run -s "$P" --timeout 60 remove-device hd --wait
    ok "pcihp guest: remove-device --wait returns once the guest has ejected the disk, its node deleted" \
        "$(expect 0)$([ "$out" = "removed hd and block node hd" ] || echo "printed '$out'")"
    for _ in $(seq 600); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vpid" 2>/dev/null
    wait "$vpid"
    vst=$?
    vpid=
    ok "pcihp guest: every check of the guest passed (test-exit 1)" \
        "$([ "$vst" = 1 ] || echo "vmm status $vst: $(tail -3 "$dir/pcihp.err")")$(grep '^not ok' "$dir/pcihp.out")"
fi

tap_done
