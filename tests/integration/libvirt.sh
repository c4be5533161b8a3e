#!/bin/bash
# libvirt drives vmm as its QEMU (issue 6; libvirt-contract.md). Starts a
# private libvirtd as the contract's §1 says (root, qemu.conf with
# user=root, no cgroups, no namespaces, stdio_handler=file, a libvirt-qemu
# user) inside a mount namespace of its own: /etc/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt, /run/libvirt, /etc/passwd and
# /etc/group are private copies, so nothing of the host's changes and all of
# it is gone when the test ends. Then:
#   - virsh domcapabilities --emulatorbin VMM: kvm, the pc machine,
#     host-passthrough;
#   - a transient domain: direct kernel boot of guest-tests/lifecycle (a
#     counter on COM1), a virtio disk at the PCI slot libvirt chose, a pty
#     serial: running; its serial read through the pty virsh ttyconsole
#     names and through virsh console; the disk (and an ethernet NIC
#     where /dev/net/tun exists) at the PCI slots libvirt chose; suspend/resume (domstate follows the events);
#     virsh reboot (power off, system_reset, cont); libvirtd killed
#     and started again keeps the VM running and managed; virsh shutdown
#     (ACPI power button: the guest powers off) ends the domain;
#   - again, with a file serial (libvirt's -add-fd: the guest's output
#     follows what the file held) and an ethernet NIC hot-plugged (the plug
#     only), then virsh destroy ends it;
#   - attach-device / detach-device of a virtio disk on guest-tests/pcihp,
#     which ejects it: DEVICE_DELETED takes it out of libvirt's live XML;
#   - detach-device of a disk and an ethernet NIC given at launch on pcihp's
#     devices mode (it drives them and releases each on the eject request):
#     DEVICE_DELETED, then blockdev-del of the -blockdev nodes / netdev_del
#     of the -netdev succeed (vmm's replies read from libvirtd's debug log),
#     query-named-block-nodes before and after; then an ethernet NIC
#     attached (the guest reads its MAC) and detached the same way;
#   - setvcpus --live 2, 1, 2 on guest-tests/cpuhp (serve=1: it starts and
#     ejects CPUs as asked): device_add / device_del of a vCPU
#     (hotpluggable-cpus), DEVICE_DELETED after the guest's eject;
#   - no vmm process left behind after each scenario.
# Every libvirt call (virsh, libvirtd -d, virt-install, lv-api) is bounded
# (timeout); a hang fails the case instead of the run. Emits TAP; skips without root, libvirtd/virsh or a usable
# /dev/kvm. tools/packages.txt has the packages.
#
# With LV_API (tests/integration/lv-api.c), the same through libvirt's C API
# (create, suspend/resume, vCPU threads, shutdown), each call bounded.
#
# usage: libvirt.sh VMM IMAGE_DIR SOURCE_ROOT [LV_API]
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") images=$(readlink -f "$2") srcroot=$(readlink -f "$3") lvapi=${4:+$(readlink -f "$4")}

if [ -z "${VMM_LIBVIRT_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (libvirtd's system instance)"; exit 0; }
    for b in libvirtd virsh unshare; do
        command -v $b > /dev/null || { echo "1..0 # SKIP $b is not installed (tools/packages.txt)"; exit 0; }
    done
    if ! why=$("$srcroot/tools/kvm-check"); then
        echo "1..0 # SKIP $why"
        exit 0
    fi
    exec env VMM_LIBVIRT_NS=1 unshare -m --propagation private "$0" "$@"
fi

priv=$(mktemp -d "${TMPDIR:-/tmp}/vmm-libvirt.XXXXXX")
chmod 755 "$priv"
lvpid=
# The vmm processes running this binary now (pid list).
vmm_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$vmm" ] && echo "${p#/proc/}"
    done
}
before=$(vmm_pids | sort)
stop_libvirtd() {
    [ -n "$lvpid" ] && kill "$lvpid" 2>/dev/null
    local i=0
    while [ -n "$lvpid" ] && kill -0 "$lvpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -n "$lvpid" ] && kill -KILL "$lvpid" 2>/dev/null
    lvpid=
}
cleanup() {
    # Domains first (their vmm processes), then the daemon.
    for d in $(timeout 20 virsh -c qemu:///system list --name 2>/dev/null); do
        timeout 20 virsh -c qemu:///system destroy "$d" > /dev/null 2>&1
    done
    stop_libvirtd
    for p in $(comm -13 <(echo "$before") <(vmm_pids | sort)); do kill -KILL "$p" 2>/dev/null; done
    for d in /run/libvirt /var/log/libvirt /var/cache/libvirt /var/lib/libvirt /etc/libvirt /etc/group /etc/passwd; do
        umount "$d" 2>/dev/null
    done
    rm -rf "$priv"
}
trap cleanup EXIT

# ---- a private libvirtd (contract §1) ----
for d in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt; do
    mkdir -p "$priv$d"
    [ -d "$d" ] || mkdir -p "$d"
    mount --bind "$priv$d" "$d" || { echo "1..0 # SKIP cannot bind-mount over $d"; exit 0; }
done
cp /etc/passwd "$priv/passwd"; cp /etc/group "$priv/group"
# Debian's libvirt resolves its QEMU user before reading qemu.conf (§1.2).
grep -q '^libvirt-qemu:' "$priv/group" || echo 'libvirt-qemu:x:64055:' >> "$priv/group"
grep -q '^libvirt-qemu:' "$priv/passwd" ||
    echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> "$priv/passwd"
mount --bind "$priv/passwd" /etc/passwd && mount --bind "$priv/group" /etc/group
mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu /run/libvirt/qemu
cat > /etc/libvirt/qemu.conf <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
cat > /etc/libvirt/libvirtd.conf <<'EOF'
log_filters = "1:qemu 1:libvirt 3:conf 1:util.command 3:util 3:object 3:json 3:event 3:rpc 3:remote 3:access 3:cpu 3:security 3:storage 3:network 3:nodedev 3:secret"
log_outputs = "1:file:/var/log/libvirt/libvirtd-debug.log"
EOF
V() { timeout "${T:-60}" virsh -q -c qemu:///system "$@"; }
start_libvirtd() {
    timeout 60 libvirtd -d -p /run/libvirtd-vmm-test.pid 2> "$priv/libvirtd.err" || return 1
    local i=0
    while [ ! -S /run/libvirt/libvirt-sock ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    lvpid=$(cat /run/libvirtd-vmm-test.pid 2>/dev/null)
    T=30 V version > /dev/null 2>&1
}
if ! start_libvirtd; then
    ok "libvirtd starts (private instance)" "$(cat "$priv/libvirtd.err"; tail -5 /var/log/libvirt/libvirtd-debug.log 2>/dev/null)"
    echo "1..$n"
    exit 1
fi
ok "libvirtd starts (private instance)" ""
# The daemon's log of a failed step, for the TAP comment.
lvlog() { grep -E "error|Failed|failed" /var/log/libvirt/libvirtd-debug.log 2>/dev/null | tail -n "${1:-5}"; }
# What vmm told libvirtd, read from libvirtd's debug log from line $logmark
# on (set before the step).
# mon_reply CMD [ARGS_SUBSTRING]: the reply libvirtd got to its last CMD.
lvdebug=/var/log/libvirt/libvirtd-debug.log
mon_reply() {
    tail -n "+$logmark" "$lvdebug" > "$priv/logtail"
    python3 - "$1" "${2:-}" "$priv/logtail" <<'PY'
import json, re, sys
cmd, sub, log = sys.argv[1:4]
want, replies = None, {}
for line in open(log, errors="replace"):
    m = re.search(r"QEMU_MONITOR_SEND_MSG: mon=\S+ msg=(\{.*\})", line)
    if m:
        try:
            o = json.loads(m.group(1))
        except ValueError:
            continue
        if o.get("execute") == cmd and sub in json.dumps(o.get("arguments", {})):
            want = o.get("id")
        continue
    m = re.search(r"QEMU_MONITOR_RECV_REPLY: mon=\S+ reply=(\{.*\})", line)
    if m:
        try:
            o = json.loads(m.group(1))
        except ValueError:
            continue
        replies[o.get("id")] = m.group(1)
print(replies.get(want, "(no reply)") if want else "(no %s %s sent)" % (cmd, sub))
PY
}
# seen_deleted ID: libvirtd received DEVICE_DELETED for device ID.
seen_deleted() {
    tail -n "+$logmark" "$lvdebug" | grep 'QEMU_MONITOR_RECV_EVENT' | grep '"DEVICE_DELETED"' |
        grep -q "\"device\": *\"$1\""
}
wait_in() {   # wait_in FILE TEXT: up to 60 s
    local i=0
    while ! grep -qF "$2" "$1" && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    grep -qF "$2" "$1"
}
no_vmm_left() {
    local left i=0
    while :; do
        left=$(comm -13 <(echo "$before") <(vmm_pids | sort))
        [ -z "$left" ] || [ $i -ge 100 ] && break
        sleep 0.1; i=$((i + 1))
    done
    ok "$1: no vmm process left behind" "${left:+still running: $left}"
}

# ---- capabilities ----
V domcapabilities --emulatorbin "$vmm" --virttype kvm --arch x86_64 > "$priv/domcaps.xml" 2> "$priv/domcaps.err"
st=$?
problems=$(
    [ $st = 0 ] || echo "virsh status $st: $(cat "$priv/domcaps.err")"
    grep -q '<domain>kvm</domain>' "$priv/domcaps.xml" || echo "no <domain>kvm</domain>"
    grep -q '<machine>pc-i440fx-7.2</machine>' "$priv/domcaps.xml" || echo "no pc-i440fx-7.2 machine"
    grep -q "<mode name='host-passthrough' supported='yes'>" "$priv/domcaps.xml" || echo "no host-passthrough"
    grep -q "<enum name='hostPassthroughMigratable'>" "$priv/domcaps.xml" || echo "no hostPassthroughMigratable"
)
ok "domcapabilities --emulatorbin vmm: kvm, pc-i440fx-7.2, host-passthrough" \
    "$problems${problems:+$'\n'$(head -c 1500 "$priv/domcaps.xml"; lvlog)}"
no_vmm_left "probe"

# ---- a domain ----
truncate -s 1M "$priv/disk.raw"
# An ethernet NIC (libvirt makes the tap and passes its fd) where the host has
# /dev/net/tun.
nic=
[ -c /dev/net/tun ] && nic="    <interface type='ethernet'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>"
# and a user-mode NIC (libvirt: -netdev user; vmm's slirp backend), which needs nothing of the host
usernic="    <interface type='user'><mac address='52:54:00:12:34:58'/><model type='virtio'/></interface>"
pty_serial="    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>"
domxml() {   # domxml NAME [SERIAL_XML]: a pty serial unless given
    cat <<EOF
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$images/lifecycle.elf</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>$vmm</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source file='$priv/disk.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>
$nic
$usernic
${2:-$pty_serial}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}
# guestxml NAME VCPU_XML KERNEL CMDLINE [DEVICES_XML]: a 64 MiB pc domain
# booting guest-tests' KERNEL with CMDLINE, a pty serial, DEVICES_XML added
# (the hotplug and CPU domains; domxml is the lifecycle one).
guestxml() {
    cat <<EOF
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  $2
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>$images/$3</kernel><cmdline>$4</cmdline></os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>$vmm</emulator>
    ${5:-}
    <serial type='pty'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}
state() { V domstate "$1" 2>&1 | head -n 1; }
wait_state() {   # wait_state DOM WANT: up to 20 s
    local i=0 s
    while [ $i -lt 200 ]; do
        s=$(state "$1")
        [ "$s" = "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "$s"
    return 1
}
gone() {   # the transient domain has ended (up to 20 s)
    local i=0
    while V dominfo "$1" > /dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    ! V dominfo "$1" > /dev/null 2>&1
}
# create_read DOM XML CREATE_OUT PTY_OUT: virsh create of XML (its output in
# CREATE_OUT), waits until DOM runs, and copies its pty serial into PTY_OUT
# in the background (up to 120 s); the reader's pid in $reader (empty when
# DOM has no pty).
create_read() {
    V create "$2" > "$3" 2>&1
    wait_state "$1" running > /dev/null
    local pty
    pty=$(V ttyconsole "$1" 2>/dev/null)
    : > "$4"
    reader=
    if [ -n "$pty" ]; then
        timeout 120 cat < "$pty" > "$4" 2>/dev/null &
        reader=$!
    fi
}

domxml vmm1 > "$priv/vmm1.xml"
V create "$priv/vmm1.xml" > "$priv/create.out" 2>&1
st=$?
ok "virsh create: the domain runs" \
    "$([ $st = 0 ] && wait_state vmm1 running > /dev/null || { cat "$priv/create.out"; tail -5 /var/log/libvirt/qemu/vmm1.log; lvlog; })"
# The devices sit where libvirt put them (its live XML against vmm's query-pci).
V dumpxml vmm1 > "$priv/live.xml" 2>/dev/null
T=20 V qemu-monitor-command vmm1 '{"execute": "query-pci"}' > "$priv/pci.json" 2>&1
problems=$(python3 - "$priv/live.xml" "$priv/pci.json" 2> "$priv/slots" <<'PY'
import json, re, sys
xml = open(sys.argv[1]).read()
pci = json.load(open(sys.argv[2]))
slots = {d["qdev_id"]: d["slot"] for b in pci["return"] for d in b["devices"]}
want = {}
for m in re.finditer(r"<(disk|interface)\b(.*?)</\1>", xml, re.S):
    body = m.group(2)
    alias = re.search(r"<alias name='([^']+)'", body)
    addr = re.search(r"<address type='pci'[^>]*slot='(0x[0-9a-f]+)'", body)
    if alias and addr:
        want[alias.group(1)] = int(addr.group(1), 16)
if not want:
    print("no PCI devices in the live XML")
print("# " + ", ".join(f"{k} in slot {v}" for k, v in want.items()), file=sys.stderr)
for k, v in want.items():
    if slots.get(k) != v:
        print(f"{k}: libvirt slot {v}, vmm slot {slots.get(k)}")
PY
)
ok "devices at the PCI slots libvirt chose (live XML = query-pci)" "$problems${problems:+$'\n'$(cat "$priv/pci.json")}"
cat "$priv/slots"
pty=$(V ttyconsole vmm1 2>/dev/null)
out=
if [ -n "$pty" ] && [ -c "$pty" ]; then
    timeout 20 head -c 300 < "$pty" > "$priv/pty.out" 2>/dev/null
    out=$(cat "$priv/pty.out")
fi
ok "the guest's serial output through the pty libvirt reports" \
    "$([[ "$out" == *count* ]] || echo "pty '$pty': $(printf '%s' "$out" | head -c 200)")"

# virsh console: libvirtd itself opens the pty (a terminal for virsh from script(1)).
if command -v script > /dev/null; then
    sleep 8 | timeout 15 script -qfec "virsh -c qemu:///system console vmm1 --force" /dev/null > "$priv/console.out" 2>&1
    ok "virsh console shows the guest's serial output" \
        "$(grep -q 'count [0-9]' "$priv/console.out" || head -c 300 "$priv/console.out")"
fi
V suspend vmm1 > /dev/null 2>&1
s1=$(state vmm1)
V resume vmm1 > /dev/null 2>&1
s2=$(state vmm1)
ok "suspend → paused, resume → running" "$([ "$s1" = paused ] && [ "$s2" = running ] || echo "after suspend '$s1', after resume '$s2'")"

# libvirtd restart: it reconnects (greeting, query-status, query-jobs,
# qom-list...) and keeps the VM (contract §5.3).
vpid=$(cat /run/libvirt/qemu/vmm1.pid 2>/dev/null)
stop_libvirtd
start_libvirtd
ok "libvirtd restarted: the VM is still running and managed" \
    "$(kill -0 "$vpid" 2>/dev/null && [ "$(state vmm1)" = running ] || { echo "vmm pid $vpid, state $(state vmm1)"; lvlog; })"

# virsh reboot: system_powerdown, the guest powers off (SHUTDOWN; vmm stays:
# -no-shutdown), system_reset + cont: it boots again (a second banner).
timeout 30 head -c 100000 < "$pty" > "$priv/reboot.pty" 2>/dev/null &
rdpid=$!
V reboot vmm1 > "$priv/reboot.out" 2>&1
st=$?
i=0; while [ "$(grep -c 'lifecycle guest up' "$priv/reboot.pty")" -lt 1 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
kill $rdpid 2>/dev/null
ok "virsh reboot: power off, system_reset, cont; the guest boots again" \
    "$([ $st = 0 ] && grep -q 'lifecycle guest up' "$priv/reboot.pty" && wait_state vmm1 running > /dev/null ||
       { cat "$priv/reboot.out"; state vmm1; tail -c 300 "$priv/reboot.pty"; lvlog; })"

V shutdown vmm1 > "$priv/shutdown.out" 2>&1
ok "virsh shutdown: the guest powers off through ACPI and the domain ends" \
    "$(gone vmm1 || { cat "$priv/shutdown.out"; state vmm1; tail -3 /var/log/libvirt/qemu/vmm1.log; })"
no_vmm_left "shutdown"

# This one's serial is a file: libvirt opens it (append='on': O_APPEND) and
# hands it over as -add-fd set=N,fd=M with -chardev file,path=/dev/fdset/N.
echo "written before the domain" > "$priv/vmm2.serial"
domxml vmm2 "    <serial type='file'><source path='$priv/vmm2.serial' append='on'/><target port='0'/></serial>" \
    > "$priv/vmm2.xml"
V create "$priv/vmm2.xml" > "$priv/create2.out" 2>&1
wait_state vmm2 running > /dev/null
i=0; while ! grep -q 'count [0-9]' "$priv/vmm2.serial" && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
ok "a file serial (libvirt's -add-fd): the guest's output follows what the file held" \
    "$([ "$(head -n 1 "$priv/vmm2.serial")" = "written before the domain" ] && grep -q 'count [0-9]' "$priv/vmm2.serial" ||
       { cat "$priv/create2.out"; head -c 300 "$priv/vmm2.serial"; grep -E 'add-fd|chardev|vmm:' /var/log/libvirt/qemu/vmm2.log; })"
# NIC hotplug: libvirt makes a tap and passes its fd with getfd (SCM_RIGHTS),
# then netdev_add and device_add (contract §5.2). The lifecycle guest does
# not eject, so only the plug is checked here.
if [ -n "$nic" ]; then
    cat > "$priv/hotnic.xml" <<EOF
<interface type='ethernet'><mac address='52:54:00:ab:cd:ef'/><model type='virtio'/></interface>
EOF
    V attach-device vmm2 "$priv/hotnic.xml" --live > "$priv/attachnic.out" 2>&1
    st=$?
    T=20 V qemu-monitor-command vmm2 '{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}}' > "$priv/qomnic" 2>&1
    ok "attach-device of an ethernet NIC: tap fd over getfd, netdev_add, device_add" \
        "$([ $st = 0 ] && V dumpxml vmm2 | grep -q "52:54:00:ab:cd:ef" && grep -q 'net1' "$priv/qomnic" ||
           { cat "$priv/attachnic.out" "$priv/qomnic"; grep -E "getfd|netdev_add|tapfd" /var/log/libvirt/libvirtd-debug.log | cut -c1-400 | tail -16 | head -8; })"
fi
V destroy vmm2 > "$priv/destroy.out" 2>&1
st=$?
ok "virsh destroy ends the domain" "$([ $st = 0 ] && gone vmm2 || cat "$priv/destroy.out")"
no_vmm_left "destroy"

# ---- disk hotplug: attach-device / detach-device ----
# guest-tests/pcihp (cycles=1) waits for a disk in a hot-plug slot, reads
# its sector 0 ("VMMHP0001"), and ejects it when asked: libvirt's
# blockdev-add, blockdev-add, device_add, then device_del, DEVICE_DELETED,
# blockdev-del, blockdev-del (contract §5.2).
guestxml vmm3 "<vcpu>1</vcpu>" pcihp.elf "cycles=1" > "$priv/vmm3.xml"
printf 'VMMHP0001' > "$priv/hot.raw"
truncate -s 1M "$priv/hot.raw"
cat > "$priv/hotdisk.xml" <<EOF
<disk type='file' device='disk'>
  <driver name='qemu' type='raw'/>
  <source file='$priv/hot.raw'/>
  <target dev='vdb' bus='virtio'/>
</disk>
EOF
create_read vmm3 "$priv/vmm3.xml" "$priv/create3.out" "$priv/hp.pty"
hppid=$reader
wait_line() {   # wait_line REGEX: up to 60 s on the guest's serial
    local i=0
    while ! grep -q "$1" "$priv/hp.pty" && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    grep -q "$1" "$priv/hp.pty"
}
wait_line 'ready for hotplug'
V attach-device vmm3 "$priv/hotdisk.xml" --live > "$priv/attach.out" 2>&1
st=$?
V dumpxml vmm3 > "$priv/live3.xml" 2>/dev/null
T=20 V qemu-monitor-command vmm3 '{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}}' > "$priv/qom3" 2>&1
ok "attach-device: a virtio disk plugged (live XML, qom-list)" \
    "$([ $st = 0 ] && grep -q "dev='vdb'" "$priv/live3.xml" && grep -q 'virtio-disk1' "$priv/qom3" ||
       { cat "$priv/attach.out" "$priv/qom3"; lvlog; })"
logmark=$(($(wc -l < "$lvdebug") + 1))
V detach-device vmm3 "$priv/hotdisk.xml" --live > "$priv/detach.out" 2>&1
st=$?
wait_line 'cycle 1 ejected'
gone_vdb=no
for i in $(seq 1 100); do
    V dumpxml vmm3 2>/dev/null | grep -q "dev='vdb'" || { gone_vdb=yes; break; }
    sleep 0.1
done
T=20 V qemu-monitor-command vmm3 '{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}}' > "$priv/qom3b" 2>&1
ok "detach-device: the guest ejects, DEVICE_DELETED, the disk leaves libvirt's live XML and qom-list" \
    "$([ $st = 0 ] && [ $gone_vdb = yes ] && grep -q 'cycle 1 ejected' "$priv/hp.pty" && ! grep -q 'virtio-disk1' "$priv/qom3b" &&
       seen_deleted virtio-disk1 && [[ "$(mon_reply blockdev-del format)" == *'"return": {}'* ]] ||
       { echo "detach status $st, gone from XML: $gone_vdb"; cat "$priv/detach.out" "$priv/qom3b"; tail -5 "$priv/hp.pty"; lvlog; })"
[ -n "$hppid" ] && kill $hppid 2>/dev/null
V destroy vmm3 > /dev/null 2>&1
gone vmm3
no_vmm_left "hotplug"

# ---- detach-device of a disk and a NIC given at launch ----
# libvirt's detach: device_del, DEVICE_DELETED (after the guest released and
# ejected the device), then blockdev-del of the disk's -blockdev nodes
# (libvirt-N-format, libvirt-N-storage) / netdev_del of the NIC's -netdev
# (hostnetN) (contract §5.2). guest-tests/pcihp's devices=K mode drives
# every virtio disk and NIC from power-on and releases each on the eject
# request. What vmm answered each step is read from libvirtd's debug log
# (mon_reply, seen_deleted). After them a NIC is attached and detached again.
truncate -s 1M "$priv/bt.raw"
bootnic=
ndev=1
if [ -n "$nic" ]; then
    bootnic="<interface type='ethernet'><mac address='52:54:00:12:34:57'/><model type='virtio'/></interface>"
    ndev=3     # the disk, the NIC, a NIC attached later
fi
guestxml vmm5 "<vcpu>1</vcpu>" pcihp.elf "devices=$ndev" "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$priv/bt.raw'/><target dev='vda' bus='virtio'/></disk>
    $bootnic" > "$priv/vmm5.xml"
create_read vmm5 "$priv/vmm5.xml" "$priv/create5.out" "$priv/bt.pty"
btpid=$reader
wait_in "$priv/bt.pty" 'ready for unplug'
T=20 V qemu-monitor-command vmm5 '{"execute": "query-named-block-nodes"}' > "$priv/nodes5a" 2>&1
ok "a disk given at launch: query-named-block-nodes lists its -blockdev nodes" \
    "$(grep -q 'libvirt-[0-9]*-format' "$priv/nodes5a" && grep -q 'libvirt-[0-9]*-storage' "$priv/nodes5a" ||
       { cat "$priv/create5.out" "$priv/nodes5a"; tail -5 "$priv/bt.pty"; })"
cat > "$priv/btdisk.xml" <<EOF
<disk type='file' device='disk'>
  <driver name='qemu' type='raw'/>
  <source file='$priv/bt.raw'/>
  <target dev='vda' bus='virtio'/>
</disk>
EOF
logmark=$(($(wc -l < "$lvdebug") + 1))
V detach-device vmm5 "$priv/btdisk.xml" --live > "$priv/btdetach.out" 2>&1
st=$?
wait_in "$priv/bt.pty" 'ejected (blk)'
gone_vda=no
for i in $(seq 1 100); do
    V dumpxml vmm5 2>/dev/null | grep -q "dev='vda'" || { gone_vda=yes; break; }
    sleep 0.1
done
T=20 V qemu-monitor-command vmm5 '{"execute": "query-named-block-nodes"}' > "$priv/nodes5b" 2>&1
T=20 V qemu-monitor-command vmm5 '{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}}' > "$priv/qom5" 2>&1
fmt=$(mon_reply blockdev-del format) sto=$(mon_reply blockdev-del storage)
ok "detach-device of the disk given at launch: the guest releases it, DEVICE_DELETED, blockdev-del of its -blockdev nodes succeeds" \
    "$([ $st = 0 ] && [ $gone_vda = yes ] && grep -q 'ejected (blk)' "$priv/bt.pty" && seen_deleted virtio-disk0 &&
       [[ "$fmt" == *'"return": {}'* ]] && [[ "$sto" == *'"return": {}'* ]] && grep -q '"return":\[\]' "$priv/nodes5b" &&
       ! grep -q virtio-disk0 "$priv/qom5" ||
       { echo "detach status $st, gone from XML: $gone_vda; blockdev-del format: $fmt; storage: $sto"
         cat "$priv/btdetach.out" "$priv/nodes5b" "$priv/qom5"; tail -5 "$priv/bt.pty"; lvlog; })"
if [ -n "$nic" ]; then
    echo "<interface type='ethernet'><mac address='52:54:00:12:34:57'/><model type='virtio'/></interface>" > "$priv/btnic.xml"
    logmark=$(($(wc -l < "$lvdebug") + 1))
    V detach-device vmm5 "$priv/btnic.xml" --live > "$priv/btdetachnic.out" 2>&1
    st=$?
    wait_in "$priv/bt.pty" 'ejected (net 52:54:00:12:34:57)'
    gone_nic=no
    for i in $(seq 1 100); do
        V dumpxml vmm5 2>/dev/null | grep -q "52:54:00:12:34:57" || { gone_nic=yes; break; }
        sleep 0.1
    done
    T=20 V qemu-monitor-command vmm5 '{"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}}' > "$priv/qom5n" 2>&1
    nd=$(mon_reply netdev_del hostnet)
    ok "detach-device of the NIC given at launch: the guest releases it, DEVICE_DELETED, netdev_del of its -netdev succeeds" \
        "$([ $st = 0 ] && [ $gone_nic = yes ] && grep -q 'ejected (net 52:54:00:12:34:57)' "$priv/bt.pty" &&
           seen_deleted net0 && [[ "$nd" == *'"return": {}'* ]] && ! grep -q '"net0"' "$priv/qom5n" ||
           { echo "detach status $st, gone from XML: $gone_nic; netdev_del: $nd"
             cat "$priv/btdetachnic.out" "$priv/qom5n"; tail -5 "$priv/bt.pty"; lvlog; })"
fi
if [ -n "$nic" ]; then
    echo "<interface type='ethernet'><mac address='52:54:00:ab:cd:01'/><model type='virtio'/></interface>" > "$priv/hotnic5.xml"
    V attach-device vmm5 "$priv/hotnic5.xml" --live > "$priv/attach5.out" 2>&1
    ast=$?
    wait_in "$priv/bt.pty" 'up (net 52:54:00:ab:cd:01)'
    alias5=$(V dumpxml vmm5 2>/dev/null | tr -d '\n' | grep -o "<mac address='52:54:00:ab:cd:01'/>.*" |
             grep -o "<alias name='[^']*'" | head -n 1 | cut -d"'" -f2)
    logmark=$(($(wc -l < "$lvdebug") + 1))
    V detach-device vmm5 "$priv/hotnic5.xml" --live > "$priv/detach5.out" 2>&1
    st=$?
    wait_in "$priv/bt.pty" 'ejected (net 52:54:00:ab:cd:01)'
    gone_nic=no
    for i in $(seq 1 100); do
        V dumpxml vmm5 2>/dev/null | grep -q "52:54:00:ab:cd:01" || { gone_nic=yes; break; }
        sleep 0.1
    done
    nd=$(mon_reply netdev_del hostnet)
    ok "attach-device then detach-device of an ethernet NIC: the guest drives it (its MAC), releases it, DEVICE_DELETED, netdev_del succeeds" \
        "$([ $ast = 0 ] && [ $st = 0 ] && [ -n "$alias5" ] && grep -q 'up (net 52:54:00:ab:cd:01)' "$priv/bt.pty" &&
           grep -q 'ejected (net 52:54:00:ab:cd:01)' "$priv/bt.pty" && [ $gone_nic = yes ] && seen_deleted "$alias5" &&
           [[ "$nd" == *'"return": {}'* ]] ||
           { echo "attach $ast, detach $st, alias '$alias5', gone from XML: $gone_nic; netdev_del: $nd"
             cat "$priv/attach5.out" "$priv/detach5.out"; tail -5 "$priv/bt.pty"; lvlog; })"
fi
ok "the guest saw every device it was given go (pcihp devices=$ndev)" \
    "$(wait_in "$priv/bt.pty" "$ndev of $ndev devices released" || tail -8 "$priv/bt.pty")"
[ -n "$btpid" ] && kill $btpid 2>/dev/null
V destroy vmm5 > /dev/null 2>&1
gone vmm5
no_vmm_left "detach of devices given at launch"

# ---- setvcpus --live: CPU hotplug through device_add / device_del ----
# query-machines says hotpluggable-cpus for pc: libvirt launches with
# -smp 1,maxcpus=2, reads query-hotpluggable-cpus, plugs the second vCPU
# with device_add host-x86_64-cpu (its props from that list) and removes it
# with device_del, waiting for DEVICE_DELETED. guest-tests/cpuhp's serve=1
# mode starts every CPU plugged in (INIT/SIPI) and ejects every CPU the host
# asks to remove.
guestxml vmm6 "<vcpu current='1'>2</vcpu>" cpuhp.elf "boot=1 max=2 serve=1" > "$priv/vmm6.xml"
create_read vmm6 "$priv/vmm6.xml" "$priv/create6.out" "$priv/cpu.pty"
cppid=$reader
wait_in "$priv/cpu.pty" '# cpuhp: serving'
c0=$(V vcpucount vmm6 --live --active 2>&1)
logmark=$(($(wc -l < "$lvdebug") + 1))
V setvcpus vmm6 2 --live > "$priv/setvcpus.out" 2>&1
st=$?
wait_in "$priv/cpu.pty" '# cpuhp: CPU 1 up (1)'
c1=$(V vcpucount vmm6 --live --active 2>&1)
T=20 V qemu-monitor-command vmm6 '{"execute": "query-cpus-fast"}' > "$priv/cpus6" 2>&1
da=$(mon_reply device_add x86_64-cpu)
ok "setvcpus --live 2: libvirt plugs a vCPU with device_add (hotpluggable-cpus), the guest starts it" \
    "$([ "$c0" = 1 ] && [ $st = 0 ] && [ "$c1" = 2 ] && [[ "$da" == *'"return": {}'* ]] &&
       grep -q '"cpu-index":1' "$priv/cpus6" && grep -q 'CPU 1 up (1)' "$priv/cpu.pty" ||
       { echo "vcpucount before '$c0', after '$c1', setvcpus status $st, device_add: $da"
         cat "$priv/create6.out" "$priv/setvcpus.out" "$priv/cpus6"; tail -3 "$priv/cpu.pty"; lvlog; })"
logmark=$(($(wc -l < "$lvdebug") + 1))
V setvcpus vmm6 1 --live > "$priv/setvcpus1.out" 2>&1
st=$?
wait_in "$priv/cpu.pty" '# cpuhp: CPU 1 ejected (1)'
c2=$(V vcpucount vmm6 --live --active 2>&1)
dd=$(mon_reply device_del vcpu)
ok "setvcpus --live 1: libvirt's device_del, the guest ejects the vCPU, DEVICE_DELETED, one vCPU left" \
    "$([ $st = 0 ] && [ "$c2" = 1 ] && [[ "$dd" == *'"return": {}'* ]] && seen_deleted vcpu1 &&
       grep -q 'CPU 1 ejected (1)' "$priv/cpu.pty" ||
       { echo "setvcpus status $st, vcpucount after '$c2', device_del: $dd"
         cat "$priv/setvcpus1.out"; tail -3 "$priv/cpu.pty"; lvlog; })"
V setvcpus vmm6 2 --live > "$priv/setvcpus2.out" 2>&1
st=$?
wait_in "$priv/cpu.pty" '# cpuhp: CPU 1 up (2)'
c3=$(V vcpucount vmm6 --live --active 2>&1)
ok "setvcpus --live 2 again: the same vCPU plugged in and started a second time" \
    "$([ $st = 0 ] && [ "$c3" = 2 ] && grep -q 'CPU 1 up (2)' "$priv/cpu.pty" ||
       { echo "setvcpus status $st, vcpucount after '$c3'"; cat "$priv/setvcpus2.out"; tail -3 "$priv/cpu.pty"; lvlog; })"
[ -n "$cppid" ] && kill $cppid 2>/dev/null
V destroy vmm6 > /dev/null 2>&1
gone vmm6
no_vmm_left "setvcpus"

# ---- the same through libvirt's C API ----
if [ -n "$lvapi" ]; then
    timeout 300 "$lvapi" "$vmm" "$images/lifecycle.elf" > "$priv/lvapi.out" 2>&1
    st=$?
    while IFS= read -r line; do
        case $line in
        "ok - "*) n=$((n + 1)); echo "ok $n - ${line#ok - }" ;;
        "not ok - "*) n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - ${line#not ok - }" ;;
        *) echo "# $line" ;;
        esac
    done < "$priv/lvapi.out"
    ok "lv-api exits 0" "$([ $st = 0 ] || echo "status $st")"
    no_vmm_left "lv-api"
fi

# ---- vmm as libvirt's default emulator: virt-install (contract §7) ----
# libvirtd's default x86_64 emulator is the first qemu-system-x86_64 in its
# PATH: a link to vmm in a directory put first (what meson's
# -Dqemu_compat_link=true installs).
if command -v virt-install > /dev/null; then
    mkdir -p "$priv/bin"
    ln -s "$vmm" "$priv/bin/qemu-system-x86_64"
    stop_libvirtd
    PATH=$priv/bin:$PATH start_libvirtd
    V capabilities > "$priv/caps.xml" 2>&1
    ok "vmm as the default emulator: virsh capabilities names the link" \
        "$(grep -q "<emulator>$priv/bin/qemu-system-x86_64</emulator>" "$priv/caps.xml" ||
           { grep -n emulator "$priv/caps.xml" | head -3; lvlog; })"
    truncate -s 1M "$priv/vi.raw"
    T=120 timeout 120 virt-install --connect qemu:///system --name vmm4 --memory 64 --vcpus 2 \
        --boot "kernel=$images/lifecycle.elf,kernel_args=console=ttyS0" --import \
        --disk "path=$priv/vi.raw,bus=virtio,format=raw" ${nic:+--network type=ethernet,model=virtio} \
        --graphics none --console pty,target_type=serial --osinfo detect=off,require=off \
        --controller usb,model=none --memballoon none --noautoconsole > "$priv/vi.out" 2>&1
    st=$?
    ok "virt-install with vmm as the default emulator: the domain runs" \
        "$([ $st = 0 ] && wait_state vmm4 running > /dev/null ||
           { echo "status $st"; tail -5 "$priv/vi.out"; tail -3 /var/log/libvirt/qemu/vmm4.log; lvlog; })"
    V dumpxml vmm4 > "$priv/vi.xml" 2>/dev/null
    grep -E "<cpu mode|<emulator>" "$priv/vi.xml" | sed 's/^ */# /'
    V destroy vmm4 > /dev/null 2>&1
    V undefine vmm4 > /dev/null 2>&1
    no_vmm_left "virt-install"
else
    n=$((n + 1)); echo "ok $n - virt-install # SKIP virtinst is not installed"
fi

tap_done
