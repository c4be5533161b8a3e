#!/bin/sh
# The lab suite's libvirt case, run by runner.sh inside L1 (busybox sh, root,
# no systemd, no D-Bus): Debian's libvirtd (which run-lab-tests put into L1
# with its QEMU driver module and data files, l1-run -f) drives vmm as the
# <emulator> of a domain that boots the lab's L2 (Debian's kernel, the
# busybox initramfs, lab=powerdown) by direct kernel boot; virsh shutdown
# must reach Linux's ACPI power button driver, and L2 then powers off.
#
# libvirtd is set up as libvirt-contract.md §1 says and
# tests/integration/libvirt.sh does on a KVM host: a libvirt-qemu user,
# qemu.conf with user root, no cgroups, no namespaces, stdio_handler file;
# here also no socket authentication (polkit needs D-Bus, which L1 lacks).
# L2's serial port is a file chardev: libvirt 9.0 opens the file itself and
# hands it to vmm as -add-fd set=N,fd=M with -chardev path=/dev/fdset/N.
#
# Prints "LAB key=value" lines (run-lab-tests checks them against ./cases):
# each step's status and its seconds under L1's TCG (LAB secs_STEP=S), L2's
# console lines as "LAB l2 LINE", the domain's final state and reason, and
# whether a vmm process is left. Every virsh call is bounded by timeout.
#
# usage: libvirt-l1.sh KERNEL INITRD    (runner.sh's @BZ@ and @INITRD@)
kernel=$1 initrd=$2
vmm=$(command -v vmm)
con=/tmp/lv-l2.console
dom=lablv

now() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
V() { timeout "${T:-120}" virsh -q -c qemu:///system "$@"; }
# waits up to $1 s for the command after it to succeed
wait_for() {
    n=$(($1 * 5)); shift
    while ! "$@"; do
        n=$((n - 1)); [ $n -gt 0 ] || return 1
        sleep 0.2
    done
}
lvlog() { grep -E ': error : ' /var/log/libvirt/libvirtd.log 2>/dev/null | tail -n "${1:-8}" | sed 's/^/LAB libvirtd_log /'; }
finish() {
    [ -f "$con" ] && tr -d '\r' < "$con" | sed 's/^/LAB l2 /'
    [ -f "/var/log/libvirt/qemu/$dom.log" ] && grep -v '^[0-9-]* [0-9:.+]*: \(starting up\|Domain id\)' \
        "/var/log/libvirt/qemu/$dom.log" | grep -E '^vmm|error|warn' | sed 's/^/LAB qemu_log /'
    # shellcheck disable=SC2046 # one word per pid
    kill -KILL $(pidof vmm) 2>/dev/null
    if [ -f /run/libvirtd-lab.pid ]; then
        lv=$(cat /run/libvirtd-lab.pid)
        kill "$lv" 2>/dev/null
        wait_for 20 sh -c "! kill -0 $lv 2>/dev/null" || kill -KILL "$lv" 2>/dev/null
    fi
}

# ---- a private libvirtd (contract §1) ----
mkdir -p /etc/libvirt /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu /run/libvirt/qemu
# libvirtd listens in /run/libvirt, virsh looks in /var/run/libvirt
[ -e /var/run ] || ln -s /run /var/run
export LC_ALL=C
printf 'root:x:0:0:root:/root:/bin/sh\nlibvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/bin/false\n' > /etc/passwd
printf 'root:x:0:\nlibvirt-qemu:x:64055:\n' > /etc/group
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
auth_unix_ro = "none"
auth_unix_rw = "none"
log_filters = "1:qemu 1:libvirt 3:conf 1:util.command 3:util 3:object 3:json 3:event 3:rpc 3:remote 3:access 3:cpu 3:security 3:storage 3:network 3:nodedev 3:secret"
log_outputs = "1:file:/var/log/libvirt/libvirtd.log"
EOF

t=$(now)
/usr/sbin/libvirtd -d -p /run/libvirtd-lab.pid > /tmp/libvirtd.err 2>&1
echo "LAB libvirtd_status=$?"
wait_for 120 test -S /run/libvirt/libvirt-sock
T=60 V list --all > /tmp/lv-version 2>&1
st=$?
echo "LAB libvirtd_up=$st"
echo "LAB secs_libvirtd=$(secs "$t")"
if [ $st != 0 ]; then
    sed 's/^/LAB libvirtd_err /' /tmp/libvirtd.err /tmp/lv-version
    lvlog 20
    finish
    exit 1
fi

# ---- the capability probe (vmm -machine none ... -daemonize) ----
t=$(now)
T=180 V domcapabilities --emulatorbin "$vmm" --virttype kvm --arch x86_64 > /tmp/lv-caps.xml 2> /tmp/lv-caps.err
echo "LAB domcaps_status=$?"
echo "LAB secs_probe=$(secs "$t")"
grep -q '<domain>kvm</domain>' /tmp/lv-caps.xml && echo "LAB domcaps_kvm=1"
sed 's/^/LAB domcaps_err /' /tmp/lv-caps.err
# the probe's daemon has gone (libvirt ends it with SIGTERM)
wait_for 10 sh -c '! pidof vmm > /dev/null'
echo "LAB probe_vmm_left=$(pidof vmm || echo none)"

# ---- a persistent domain: direct kernel boot of the lab's L2 ----
cat > /tmp/lv-dom.xml <<EOF
<domain type='kvm'>
  <name>$dom</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
    <initrd>$initrd</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 lab=powerdown</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>$vmm</emulator>
    <serial type='file'><source path='$con' append='on'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
# libvirt opens the file (O_APPEND) and hands it to vmm with -add-fd: what
# is in it stays
echo "L1 wrote this first" > "$con"
V define /tmp/lv-dom.xml > /tmp/lv-define 2>&1
echo "LAB define_status=$?"
sed 's/^/LAB define_err /' /tmp/lv-define | grep -v 'defined from'
t=$(now)
V start "$dom" > /tmp/lv-start 2>&1
st=$?
echo "LAB start_status=$st"
echo "LAB secs_start=$(secs "$t")"
if [ $st != 0 ]; then
    sed 's/^/LAB start_err /' /tmp/lv-start
    lvlog
    finish
    exit 1
fi
echo "LAB state_started=$(V domstate "$dom" | head -n 1)"
# L2 is up when its /init, acting as acpid, reads the power button's evdev
# device (lab=powerdown in tools/lab/l2-init)
# shellcheck disable=SC2317 # called through wait_for
ready() { grep -q 'LAB powerdown_ready' "$con" 2>/dev/null; }
wait_for 300 ready
echo "LAB l2_ready=$(ready && echo 1 || echo 0)"
echo "LAB secs_l2_boot=$(secs "$t")"

# ---- virsh shutdown: ACPI power button (QMP system_powerdown) ----
t=$(now)
V shutdown "$dom" > /tmp/lv-shutdown 2>&1
echo "LAB shutdown_status=$?"
# shellcheck disable=SC2317 # called through wait_for
off() { [ "$(T=30 V domstate "$dom" 2>/dev/null | head -n 1)" = "shut off" ]; }
wait_for 180 off
echo "LAB secs_shutdown=$(secs "$t")"
end=$(V domstate --reason "$dom" 2>&1 | head -n 1)
echo "LAB state_end=$end"
[ "$end" = "shut off (shutdown)" ] || lvlog
wait_for 10 sh -c '! pidof vmm > /dev/null'
echo "LAB vmm_left=$(pidof vmm || echo none)"
T=30 V undefine "$dom" > /dev/null 2>&1
echo "LAB undefine_status=$?"
finish
exit 0
