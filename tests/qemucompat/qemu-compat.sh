#!/bin/bash
# vmm as libvirt runs it (libvirt-contract.md §3.1, §4.2, §5): the capability
# probe (-machine none ... -daemonize) and a launch with libvirt's argv and an
# inherited monitor socket, driven with qmp-client.
#   probe: the parent exits 0 with the socket already listening; the pidfile
#   names the daemon; the daemon holds none of the parent's stdio (a pipe on
#   stdout/stderr gets EOF: libvirt reads to EOF); the contract's probe
#   transcript gets the replies libvirt needs (never DeviceNotFound from
#   qom-list-properties, CommandNotFound for query-tpm-models, no tcg-accel);
#   SIGTERM ends it and removes socket and pidfile; an error in the daemon
#   reaches the parent's stderr and exit status.
#   launch: libvirt's post-launch sequence, the pty from query-chardev carries
#   the guest's serial output, devices sit at the addr= given, stop/cont
#   events, reconnect queries; SIGTERM → SHUTDOWN host-signal, exit 0;
#   -no-shutdown keeps vmm after a guest power-off until system_reset + cont.
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: qemu-compat.sh VMM IMAGE_DIR SOURCE_ROOT QMP_CLIENT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") images=$2 srcroot=$3 client=$(readlink -f "$4")
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-qc.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -f "$tmp/qmp.pid" ] && kill -KILL "$(cat "$tmp/qmp.pid")" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
# ---- the probe ----
sock=$tmp/qmp.monitor pidf=$tmp/qmp.pid
timeout 20 "$vmm" -S -no-user-config -nodefaults -nographic -machine none,accel=kvm:tcg \
    -qmp "unix:$sock,server=on,wait=off" -pidfile "$pidf" -daemonize 2> >(cat > "$tmp/probe.err") | cat > "$tmp/probe.out"
st=("${PIPESTATUS[@]}")
listening=no; [ -S "$sock" ] && listening=yes
ok "probe: the parent exits 0, stdout pipe at EOF, the socket listens as it exits" \
    "$([ "${st[0]}" = 0 ] && [ "${st[1]}" = 0 ] && [ $listening = yes ] ||
       echo "status ${st[*]}, socket $listening; stderr: $(cat "$tmp/probe.err")")"
dpid=$(cat "$pidf" 2>/dev/null)
ok "probe: the pidfile names the running daemon" \
    "$([ -n "$dpid" ] && [ "$(readlink "/proc/$dpid/exe")" = "$vmm" ] || echo "pidfile: '$dpid'")"
fds=$(for f in 0 1 2; do readlink "/proc/$dpid/fd/$f"; done | sort -u)
ok "probe: the daemon's stdio is /dev/null" "$([ "$fds" = /dev/null ] || echo "fds 0-2: $fds")"
ok "probe: the daemon is in a session of its own" \
    "$([ "$(ps -o sid= -p "$dpid" | tr -d ' ')" = "$dpid" ] || echo "sid $(ps -o sid= -p "$dpid")")"

cat > "$tmp/probe.script" <<'EOF'
{"execute": "qmp_capabilities", "id": "libvirt-1"}
{"execute": "query-version", "id": "libvirt-2"}
{"execute": "query-target", "id": "libvirt-3"}
{"execute": "query-qmp-schema", "id": "libvirt-4"}
{"execute": "query-commands", "id": "libvirt-5"}
{"execute": "query-kvm", "id": "libvirt-6"}
{"execute": "qom-list-types", "id": "libvirt-7"}
{"execute": "device-list-properties", "arguments": {"typename": "virtio-blk-pci"}, "id": "libvirt-8"}
{"execute": "device-list-properties", "arguments": {"typename": "PIIX4_PM"}, "id": "libvirt-9"}
{"execute": "qom-list-properties", "arguments": {"typename": "memory-backend-file"}, "id": "libvirt-10"}
{"execute": "qom-list-properties", "arguments": {"typename": "max-x86_64-cpu"}, "id": "libvirt-11"}
{"execute": "query-machines", "id": "libvirt-12"}
{"execute": "qom-list-properties", "arguments": {"typename": "none-machine"}, "id": "libvirt-13"}
{"execute": "query-cpu-definitions", "id": "libvirt-14"}
{"execute": "query-tpm-models", "id": "libvirt-15"}
{"execute": "query-command-line-options", "id": "libvirt-16"}
{"execute": "query-migrate-capabilities", "id": "libvirt-17"}
EOF
timeout 30 "$client" "$sock" < "$tmp/probe.script" > "$tmp/probe.transcript" 2>&1
t=$tmp/probe.transcript
want() {   # want ID REGEX: the reply with that id matches
    local line
    line=$(grep -F "\"id\": \"$1\"" "$t")
    [[ "$line" =~ $2 ]] || echo "$1: $line"
}
problems=$(
    head -n 1 "$t" | grep -q '^{"QMP": ' || echo "no greeting: $(head -n 1 "$t")"
    grep -q NO-CRLF "$t" && echo "a message without CRLF"
    want libvirt-1 '"return": \{\}'
    want libvirt-2 '"package": "vmm-.*"major": 7|"major": 7.*"package": "vmm-'
    want libvirt-3 '"return": \{"arch": "x86_64"\}'
    want libvirt-4 '"return": \[\]'
    want libvirt-6 '"enabled": true.*"present": true'
    want libvirt-7 '"isa-serial".*"max-x86_64-cpu"'
    want libvirt-8 '"class": "DeviceNotFound"'
    want libvirt-9 '"disable_s3".*"disable_s4"'
    want libvirt-10 '"return": \[\]'
    want libvirt-11 '"name": "migratable", "type": "bool"'
    want libvirt-12 '"name": "pc-i440fx-7.2", "alias": "pc", "is-default": true'
    want libvirt-13 '"return": \[\]'
    want libvirt-14 '"name": "host".*"name": "max"'
    want libvirt-15 '"class": "CommandNotFound"'
    want libvirt-16 '"return": \[\]'
    want libvirt-17 '"return": \[\]'
    grep -F '"id": "libvirt-7"' "$t" | grep -q tcg-accel && echo "qom-list-types lists tcg-accel (a second probe)"
    grep -F '"id": "libvirt-12"' "$t" | grep -q default-ram-id && echo "query-machines has default-ram-id"
    for c in query-tpm-models query-cpu-model-expansion set-action; do
        grep -F '"id": "libvirt-5"' "$t" | grep -q "\"$c\"" && echo "query-commands lists $c"
    done
    for c in query-cpu-definitions query-chardev qom-list qom-get query-jobs migrate-set-capabilities \
             query-named-block-nodes query-status; do
        grep -F '"id": "libvirt-5"' "$t" | grep -q "\"$c\"" || echo "query-commands lacks $c"
    done
)
ok "probe: the contract's transcript gets libvirt's replies" "$problems${problems:+$'\n'$(cat "$t")}"

# A second connection, as libvirt's next probe would not make but a
# reconnect does: greeted again.
printf '%s\n' '{"execute": "qmp_capabilities"}' | timeout 20 "$client" "$sock" > "$tmp/probe2" 2>&1
ok "probe: a second connection is greeted" "$(grep -q '^{"QMP"' "$tmp/probe2" || cat "$tmp/probe2")"

kill -TERM "$dpid"
wait_gone "$dpid" && gone=yes || gone=no
ok "probe: SIGTERM ends the daemon, socket and pidfile removed" \
    "$([ $gone = yes ] && [ ! -e "$sock" ] && [ ! -e "$pidf" ] || echo "gone $gone; $(ls "$tmp")")"

timeout 20 "$vmm" -S -no-user-config -nodefaults -machine none,accel=kvm:tcg \
    -qmp "unix:$tmp/nodir/q.sock,server=on,wait=off" -pidfile "$tmp/p2.pid" -daemonize > "$tmp/e.out" 2> "$tmp/e.err"
est=$?
ok "probe: a daemon error reaches the parent (one line, exit 2, no pidfile)" \
    "$([ $est = 2 ] && [ "$(wc -l < "$tmp/e.err")" = 1 ] && grep -q "nodir/q.sock" "$tmp/e.err" && [ ! -e "$tmp/p2.pid" ] ||
       echo "status $est; $(cat "$tmp/e.err")")"

# ---- a launch with libvirt's argv ----
truncate -s 1M "$tmp/disk.raw"
# A client that stays connected (stdin held open) and prints every event
# until vmm closes the connection: hold SOCK OUT.
hold() {
    ( echo $BASHPID > "$2.holder"; printf '%s\n' '{"execute": "qmp_capabilities"}'; exec sleep 60 ) 2>/dev/null |
        timeout 70 "$client" "$1" > "$2" 2>&1 &
}
unhold() { kill "$(cat "$1.holder")" 2>/dev/null; }
launch() {   # launch SOCK EXTRA... : libvirt's §4.2 argv (run in the background: it execs vmm)
    local s=$1
    shift
    exec "$client" --listen-fd 3 "$s" "$vmm" -name guest=qc,debug-threads=on -S \
        -object "secret,id=masterKey0,format=raw,file=$tmp/master-key.aes" \
        -machine pc-i440fx-7.2,usb=off,dump-guest-core=off -accel kvm -cpu host,migratable=on -m 64 \
        -overcommit mem-lock=off -smp 2,sockets=2,cores=1,threads=1 -uuid 978c6af3-b5f0-4591-a637-630869349030 \
        -display none -no-user-config -nodefaults -chardev socket,id=charmonitor,fd=3,server=on,wait=off \
        -mon chardev=charmonitor,id=monitor,mode=control -rtc base=utc -boot strict=on -append console=ttyS0 \
        -chardev pty,id=charserial0 -device isa-serial,chardev=charserial0,id=serial0,index=0 \
        -audiodev '{"id":"audio1","driver":"none"}' -msg timestamp=on "$@"
}
launch "$tmp/mon.sock" -no-shutdown -kernel "$images/lifecycle.elf" \
    -blockdev "{\"driver\":\"file\",\"filename\":\"$tmp/disk.raw\",\"aio\":\"threads\",\"node-name\":\"libvirt-1-storage\",\"cache\":{\"direct\":false,\"no-flush\":false},\"auto-read-only\":true,\"discard\":\"unmap\"}" \
    -blockdev '{"node-name":"libvirt-1-format","read-only":false,"driver":"raw","file":"libvirt-1-storage"}' \
    -device virtio-blk-pci,bus=pci.0,addr=0x5,drive=libvirt-1-format,id=virtio-disk0,bootindex=1,write-cache=on \
    2> "$tmp/launch.err" &
vpid=$!; pids+=($vpid)
wait_path "$tmp/mon.sock"
cat > "$tmp/launch.script" <<'EOF'
{"execute": "qmp_capabilities", "id": "libvirt-1"}
{"execute": "query-migrate-capabilities", "id": "libvirt-2"}
{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "events", "state": true}]}, "id": "libvirt-3"}
{"execute": "query-chardev", "id": "libvirt-4"}
{"execute": "query-cpus-fast", "id": "libvirt-5"}
{"execute": "qom-list", "arguments": {"path": "/machine/unattached/device[0]"}, "id": "libvirt-6"}
{"execute": "query-named-block-nodes", "id": "libvirt-7"}
{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}, "id": "libvirt-8"}
{"execute": "query-block", "id": "libvirt-9"}
{"execute": "query-pci", "id": "libvirt-10"}
{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "postcopy-ram", "state": true}]}, "id": "libvirt-11"}
{"execute": "query-status", "id": "libvirt-12"}
{"execute": "query-jobs", "id": "libvirt-13"}
{"execute": "qom-get", "arguments": {"path": "/machine/unattached/device[0]", "property": "migratable"}, "id": "libvirt-14"}
{"execute": "qom-get", "arguments": {"path": "/machine/unattached/device[0]", "property": "nope"}, "id": "libvirt-15"}
{"execute": "blockdev-del", "arguments": {"node-name": "libvirt-1-format"}, "id": "libvirt-16"}
{"execute": "blockdev-del", "arguments": {"node-name": "libvirt-1-storage"}, "id": "libvirt-17"}
{"execute": "qom-get", "arguments": {"path": "/machine/peripheral/virtio-disk0", "property": "drive"}, "id": "libvirt-18"}
{"execute": "netdev_del", "arguments": {"id": "hostnet0"}, "id": "libvirt-19"}
EOF
timeout 30 "$client" "$tmp/mon.sock" < "$tmp/launch.script" > "$tmp/launch.transcript" 2>&1
t=$tmp/launch.transcript
pty=$(grep -F '"id": "libvirt-4"' "$t" | grep -oE '"pty:/dev/pts/[0-9]+"' | tr -d '"' | sed 's/^pty://')
problems=$(
    want libvirt-3 '"return": \{\}'
    [ -n "$pty" ] && [ -c "$pty" ] || echo "query-chardev: no pty for charserial0"
    want libvirt-4 '"label": "charserial0"'
    want libvirt-5 '"thread-id": [0-9]+.*"cpu-index": 0.*"cpu-index": 1'
    want libvirt-6 '"return": \['
    # the -blockdev nodes, newest first, in QEMU 7.2's shape (cache.direct
    # and aio as given: threads, no O_DIRECT)
    want libvirt-7 '"return": \[\{"iops_rd": 0, "detect_zeroes": "off", "image": \{"virtual-size": 1048576, "filename": "[^"]*/disk.raw", "format": "raw", "actual-size": [0-9]+, "dirty-flag": false\}, "iops_wr": 0, "ro": false, "node-name": "libvirt-1-format", "backing_file_depth": 0, "drv": "raw", .*"cache": \{"no-flush": false, "direct": false, "writeback": true\}, "file": "[^"]*/disk.raw"\}, \{.*"format": "file".*"node-name": "libvirt-1-storage", "backing_file_depth": 0, "drv": "file", .*\}\]'
    want libvirt-8 '"name": "virtio-disk0", "type": "child<virtio-blk-pci>"'
    want libvirt-8 '"name": "serial0", "type": "child<isa-serial>"'
    want libvirt-9 "\"filename\": \"$tmp/disk.raw\""
    want libvirt-9 '"node-name": "libvirt-1-format"'
    # QEMU 7.2's refusals for nodes a device (or another node) still uses
    want libvirt-16 '"error": \{"class": "GenericError", "desc": "Node libvirt-1-format is in use"\}'
    want libvirt-17 '"error": \{"class": "GenericError", "desc": "Block device libvirt-1-storage is in use"\}'
    want libvirt-18 '"return": "libvirt-1-format"'
    want libvirt-19 '"error": \{"class": "DeviceNotFound", "desc": "Device .hostnet0. not found"\}'
    want libvirt-10 '"slot": 5, "class_info": \{"class": 256|"qdev_id": "virtio-disk0", "slot": 5'
    want libvirt-11 '"class": "GenericError"'
    want libvirt-12 '"status": "prelaunch"'
    want libvirt-13 '"return": \[\]'
    want libvirt-14 '"return": true'
    want libvirt-15 '"class": "GenericError"'
)
ok "launch: libvirt's post-launch and reconnect queries" "$problems${problems:+$'\n'$(cat "$t")}"

# The guest's serial through the pty (raw, as QEMU leaves it), after cont.
[ -n "$pty" ] && (exec timeout 20 head -c 2000 < "$pty" > "$tmp/pty.out") &
rpid=$!
printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "cont", "id": "c1"}' \
    | timeout 20 "$client" "$tmp/mon.sock" > "$tmp/cont.out" 2>&1
ok "launch: cont → RESUME, then {}" \
    "$(grep -A1 '"event": "RESUME"' "$tmp/cont.out" | grep -q '"id": "c1"' || cat "$tmp/cont.out")"
i=0; while ! grep -q 'count 3' "$tmp/pty.out" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
kill "$rpid" 2>/dev/null
ok "launch: the guest's serial output arrives on the pty" \
    "$(grep -q 'lifecycle guest up' "$tmp/pty.out" && grep -q 'count 3' "$tmp/pty.out" || echo "pty $pty: $(head -c 300 "$tmp/pty.out")")"

printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "stop", "id": "s"}' \
    '{"execute": "query-status", "id": "q1"}' '{"execute": "cont", "id": "c"}' '{"execute": "query-status", "id": "q2"}' \
    | timeout 20 "$client" "$tmp/mon.sock" > "$tmp/sr.out" 2>&1
ok "launch: stop → STOP + paused, cont → RESUME + running" \
    "$(grep -q '"event": "STOP"' "$tmp/sr.out" && grep -F '"id": "q1"' "$tmp/sr.out" | grep -q '"status": "paused"' &&
       grep -q '"event": "RESUME"' "$tmp/sr.out" && grep -F '"id": "q2"' "$tmp/sr.out" | grep -q '"status": "running"' ||
       cat "$tmp/sr.out")"

# -no-shutdown: the power button makes the guest power off; vmm stays.
printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "system_powerdown"}' \
    | timeout 20 "$client" "$tmp/mon.sock" > "$tmp/pd.out" 2>&1
i=0
while [ $i -lt 200 ]; do
    printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "query-status", "id": "qs"}' \
        | timeout 20 "$client" "$tmp/mon.sock" > "$tmp/qs.out" 2>&1
    grep -q '"status": "shutdown"' "$tmp/qs.out" && break
    sleep 0.1; i=$((i + 1))
done
ok "-no-shutdown: after the guest powered off vmm stays, state shutdown" \
    "$(grep -q '"status": "shutdown"' "$tmp/qs.out" && kill -0 $vpid 2>/dev/null || { cat "$tmp/qs.out"; tail -3 "$tmp/launch.err"; })"
printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "cont", "id": "c0"}' '{"execute": "system_reset", "id": "r"}' \
    '{"execute": "query-status", "id": "q3"}' '{"execute": "cont", "id": "c"}' '{"execute": "query-status", "id": "q4"}' \
    | timeout 20 "$client" "$tmp/mon.sock" > "$tmp/rs.out" 2>&1
ok "-no-shutdown: cont refused, system_reset → RESET + prelaunch, cont → RESUME + running" \
    "$(grep -F '"id": "c0"' "$tmp/rs.out" | grep -q GenericError && grep -q '"event": "RESET"' "$tmp/rs.out" &&
       grep -F '"id": "q3"' "$tmp/rs.out" | grep -q '"status": "prelaunch"' && grep -q '"event": "RESUME"' "$tmp/rs.out" &&
       grep -F '"id": "q4"' "$tmp/rs.out" | grep -q '"status": "running"' || cat "$tmp/rs.out")"

# libvirt's destroy: SIGTERM → SHUTDOWN host-signal to a connected client, exit 0.
hold "$tmp/mon.sock" "$tmp/term.out"
i=0; while ! grep -q '"return"' "$tmp/term.out" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM $vpid
wait_exit $vpid
unhold "$tmp/term.out"
i=0; while ! grep -q 'host-signal' "$tmp/term.out" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ok "SIGTERM → SHUTDOWN host-signal, exit 0" \
    "$([ "$st" = 0 ] && grep -q '"reason": "host-signal"' "$tmp/term.out" || echo "status $st; $(cat "$tmp/term.out")")"

# Without -no-shutdown (and with -no-reboot) a guest power-off ends vmm: exit 0.
launch "$tmp/mon2.sock" -no-reboot -kernel "$images/poweroff.elf" 2> "$tmp/l2.err" &
vpid=$!; pids+=($vpid)
wait_path "$tmp/mon2.sock"
hold "$tmp/mon2.sock" "$tmp/l2.out"
i=0; while ! grep -q '"return"' "$tmp/l2.out" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "cont"}' | timeout 20 "$client" "$tmp/mon2.sock" > /dev/null 2>&1
wait_exit $vpid
unhold "$tmp/l2.out"
i=0; while ! grep -q 'guest-shutdown' "$tmp/l2.out" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ok "without -no-shutdown a guest power-off ends vmm (exit 0)" \
    "$([ "$st" = 0 ] && grep -q '"reason": "guest-shutdown"' "$tmp/l2.out" || { echo "status $st"; cat "$tmp/l2.out" "$tmp/l2.err"; })"

tap_done
