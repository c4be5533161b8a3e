#!/bin/bash
# 100 CPU hotplug cycles over QMP with vmmctl, against guest-tests/cpuhp in
# serve mode (it starts every CPU plugged in with INIT/SIPI and ejects every
# CPU the host asks to remove): first one CPU plugged in while the VM is
# paused, then 100 cycles, each `vmmctl add-cpu --id c1` then
# `vmmctl remove-cpu c1 --wait` (until DEVICE_DELETED). Checks that every
# cycle's CPU booted and left, that vmm's open fds (sockets aside) and
# threads are the same after cycle 100 as after cycle 10 and there are two
# KVM vCPU fds throughout (the unplugged vCPU's fd is kept and reused, its
# thread joined), that its RSS grew by less than 1 MiB meanwhile,
# that query-cpus-fast shows the boot CPU alone at the end, and that quit
# ends vmm with 0. Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: cpuhp_cycles.sh VMM VMMCTL IMAGE_DIR SOURCE_ROOT
set -u
vmm=$(readlink -f "$1") vmmctl=$(readlink -f "$2") images=$(readlink -f "$3") srcroot=$4
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
cycles=100
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-cpuhp.XXXXXX")
pid=
trap 'kill -KILL $pid 2>/dev/null; rm -rf "$tmp"' EXIT
sock=$tmp/qmp.sock out=$tmp/out
n=0
check() {    # DESC COND...
    local desc=$1; shift
    n=$((n + 1))
    if "$@"; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc"
        tail -n 15 "$out" | sed 's/^/#   serial: /'
    fi
}
ctl() { "$vmmctl" -s "$sock" --timeout 30 "$@"; }
# Open fds other than sockets (a vmmctl that just left may not be closed
# yet on vmm's side), and the KVM vCPU fds among them.
fds() { for f in /proc/$pid/fd/*; do readlink "$f"; done | grep -vc '^socket:'; }
vcpu_fds() { for f in /proc/$pid/fd/*; do readlink "$f"; done | grep -c '^anon_inode:kvm-vcpu:'; }
threads() { ls "/proc/$pid/task" | wc -l; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

echo "1..8"
: > "$out"
"$vmm" --kernel "$images/cpuhp.elf" --cpus boot=1,max=2 --memory 64M --test-exit \
    --cmdline "boot=1 max=2 serve=1" --qmp "unix:$sock,server=on,wait=off" > "$out" 2>&1 &
pid=$!
i=0
while ! grep -q '# cpuhp: serving' "$out" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check "the guest serves CPU hotplug" grep -q '# cpuhp: serving' "$out"

# One CPU plugged in while the VM is paused: its thread parks with the
# others (the guest sees nothing) and runs from cont on.
ctl pause > /dev/null
ctl add-cpu --id p1 > /dev/null
pst=$(ctl status)
sleep 0.5
quiet=$(grep -c '# cpuhp: CPU 1 up' "$out")
ctl resume > /dev/null
ctl remove-cpu p1 --wait > /dev/null
pres=$?
check "add-cpu while paused: status '$pst', the guest saw it only after resume ($quiet before), removed ($pres)" \
    [ "$pst" = paused -a "$quiet" = 0 -a "$pres" = 0 ]

bad=
for ((c = 1; c <= cycles; c++)); do
    ctl add-cpu --id c1 > /dev/null || { bad=$c; break; }
    ctl remove-cpu c1 --wait > /dev/null || { bad=$c; break; }
    if [ $c = 10 ]; then fds10=$(fds) thr10=$(threads) rss10=$(rss); fi
    if [ $c = 1 ]; then vfds1=$(vcpu_fds); fi
done
check "$cycles add-cpu / remove-cpu --wait cycles (first failure: ${bad:-none})" [ -z "$bad" ]
# the guest prints its line after the eject that vmm's DEVICE_DELETED follows
i=0
while ! grep -q "# cpuhp: CPU 1 ejected ($((cycles + 1)))" "$out" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
ups=$(($(grep -c '# cpuhp: CPU 1 up' "$out") - 1)) ejects=$(($(grep -c '# cpuhp: CPU 1 ejected' "$out") - 1))
nostart=$(grep -c 'did not start' "$out")
check "the guest started the CPU $ups times (failed $nostart times) and ejected it $ejects times" \
    [ "$ups" = $cycles -a "$ejects" = $cycles -a "$nostart" = 0 ]
fds100=$(fds) thr100=$(threads) rss100=$(rss) vfds100=$(vcpu_fds)
check "open fds (no sockets) after cycle 10 and after cycle $cycles: $fds10 and $fds100; KVM vCPU fds after cycles 1 and $cycles: $vfds1 and $vfds100 (the unplugged one kept)" \
    [ "$fds10" = "$fds100" -a "$vfds1" = 2 -a "$vfds100" = 2 ]
check "threads after cycle 10 and after cycle $cycles: $thr10 and $thr100" [ "$thr10" = "$thr100" ]
check "VmRSS after cycle 10 and after cycle $cycles: $rss10 and $rss100 KiB (less than 1 MiB more)" \
    [ $((rss100 - rss10)) -lt 1024 ]
cpus=$(ctl --json qmp query-cpus-fast | grep -o '"cpu-index"' | wc -l)
ctl quit > /dev/null
wait $pid
st=$?
pid=
check "query-cpus-fast shows $cpus CPU at the end; quit: vmm exited $st" [ "$cpus" = 1 -a "$st" = 0 ]
