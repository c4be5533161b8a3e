#!/bin/bash
# vmm's SIGUSR1 state report against a live guest: spin.elf on 2 vCPUs
# (vCPU 0 prints, then halts with interrupts off; vCPU 1 is never started).
# Each SIGUSR1 must give, for each vCPU, the KVM-counter line from the loop
# thread and the register line from the vCPU's own thread, with the MP
# states the guest is known to be in; the guest must keep running (a second
# report comes) and SIGTERM must still stop vmm with status 0. Emits TAP;
# skips where /dev/kvm cannot run a VM (the lab runs vmm there instead).
#
# usage: state_report.sh VMM IMAGE_DIR SOURCE_ROOT
set -u
vmm=$(readlink -f "$1") images=$2 srcroot=$3
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-state.XXXXXX")
trap 'kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
n=0 failed=0
check() {
    n=$((n + 1))
    if grep -qE -- "$2" "$3"; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        echo "#   no line of $(basename "$3") matches /$2/"
        sed 's/^/#   | /' "$3"
        failed=$((failed + 1))
    fi
}
# Waits up to 30 s for N lines matching ERE in FILE.
# A file the backgrounded vmm's redirection has not created yet counts as 0
# lines (it ended the wait at once, and the signal could beat vmm's handler).
wait_lines() {
    local i=0 c
    while c=$(grep -cE -- "$2" "$3" 2>/dev/null); [ "${c:-0}" -lt "$1" ] && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
}

echo "1..10"
"$vmm" --kernel "$images/spin.elf" --cpus 2 --memory 64M > "$tmp/out" 2> "$tmp/err" &
pid=$!
wait_lines 1 'halting forever' "$tmp/out"
kill -USR1 "$pid"
wait_lines 4 '^vmm: state: vCPU' "$tmp/err"
# KVM's non-zero counters: vCPU 0 has exited (its I/O), vCPU 1 never ran.
stats='.* exits=[1-9][0-9]* .*halt_exits=[1-9]'
check "vCPU 0: counters from the loop thread" "^vmm: state: vCPU 0: thread [0-9]+, exits to vmm [0-9]+, KVM counters: $stats" "$tmp/err"
check "vCPU 1: counters from the loop thread, no exit" "^vmm: state: vCPU 1: thread [0-9]+, exits to vmm 0, KVM counters:" "$tmp/err"
grep '^vmm: state: vCPU 1: thread' "$tmp/err" | head -1 | grep -cE ' (exits|halt_exits)=' > "$tmp/v1exits"
check "vCPU 1: KVM counted no exit for it (zero counters are left out)" '^0$' "$tmp/v1exits"
check "vCPU 0: its own thread reports it halted, no NMI pending" \
    '^vmm: state: vCPU 0: rip=0x[0-9a-f]+ rsp=0x[0-9a-f]+ rflags=0x[0-9a-f]+ cpl=0 .*mp_state=halted nmi\(pending=0 injected=0 masked=0\)' \
    "$tmp/err"
rflags=$(sed -n 's/^vmm: state: vCPU 0: .*rflags=\(0x[0-9a-f]*\).*/\1/p' "$tmp/err" | head -1)
echo "IF=$(( (${rflags:-0x200} >> 9) & 1 ))" > "$tmp/if"
check "vCPU 0: RFLAGS.IF is clear (spin.elf halts with interrupts off)" '^IF=0$' "$tmp/if"
check "vCPU 1: never started: uninitialized at the reset vector" \
    '^vmm: state: vCPU 1: rip=0xfff0 .*mp_state=uninitialized' "$tmp/err"
kill -USR1 "$pid"
wait_lines 8 '^vmm: state: vCPU' "$tmp/err"
check "a second report: 8 state lines" '^' <(grep -c '^vmm: state: vCPU' "$tmp/err" | grep -x 8)
kill -0 "$pid" 2>/dev/null && echo running > "$tmp/alive"
check "vmm and its guest still run after the reports" '^running$' "$tmp/alive"
kill -TERM "$pid"
wait "$pid"
st=$?
echo "$st" > "$tmp/status"
check "SIGTERM still stops vmm with status 0" '^0$' "$tmp/status"
check "nothing but state lines on stderr" '^0$' <(grep -vc '^vmm: state: ' "$tmp/err")
exit $((failed > 0))
