#!/bin/sh
# The lab suite inside L1 (busybox sh): runs every case of ./cases and prints
# "@@start NAME L1_UPTIME" as a case starts (so the host knows which case
# was running if L1 dies, and when, against L1's kernel timestamps), each
# output line as "@@out NAME LINE", then "@@case NAME STATUS SECONDS".
# Files beside it: bzImage, vmlinux, initrd.gz, nested.gz, fio.img when a
# case uses it (see run-lab-tests).
# shellcheck disable=SC1091,SC2317 # ./cases calls the lab_* functions
cd "$(dirname "$0")" || exit 1
cat initrd.gz nested.gz > ninitrd.gz
# A heartbeat on the console while cases run, so that the host can tell a
# hung L1 (silence) from a long, quiet case without waiting out the longest
# case timeout.
(while sleep 20; do echo "@@alive"; done) &
alive=$!

subst() {
    printf '%s' "$1" | sed -e "s|@BZ@|$PWD/bzImage|g" -e "s|@PVH@|$PWD/vmlinux|g" \
        -e "s|@NINITRD@|$PWD/ninitrd.gz|g" -e "s|@FIOIMG@|$PWD/fio.img|g" -e "s|@INITRD@|$PWD/initrd.gz|g" -e "s|@TIME@|$(date +%s)|g"
}

# Waits for the case's vmm ($pid) for at most $2 seconds, typing the case's
# answers ($1, "N:TEXT" words) on the console fifo (fd 3) when the Nth
# "LAB end" shows. A vmm still running at the deadline is a hang: before
# killing it, print its VM's KVM counters twice, 2 s apart, so the report
# tells a guest halted for good (a lost interrupt) from one that spins.
drive() {
    sent=0
    deadline=$(awk -v a="$t0" -v t="$2" 'BEGIN {printf "%d", a + t}')
    while kill -0 "$pid" 2>/dev/null; do
        ends=$(tr -d '\r' < out | grep -c '^LAB end$')
        for a in $1; do
            n=${a%%:*} text=${a#*:}
            if [ "$n" -gt "$sent" ] && [ "$ends" -ge "$n" ]; then
                echo "$text" >&3
                sent=$n
            fi
        done
        read -r now _ < /proc/uptime
        if [ "${now%.*}" -ge "$deadline" ]; then
            hang_report > hang
            # shellcheck disable=SC2046 # one word per pid
            kill -KILL $(pidof vmm) 2>/dev/null
            break
        fi
        sleep 0.2
    done
}

hang_report() {
    v=$(pidof vmm | cut -d' ' -f1)
    echo "HANG: still running after $tmo s; its VM's KVM counters, vmm's threads and vCPUs, 2 s apart:"
    grep -q debugfs /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug
    for snap in 1 2; do
        for d in /sys/kernel/debug/kvm/*-*; do
            [ -d "$d" ] || continue
            echo "HANG $snap: $(cd "$d" && for f in exits halt_exits halt_wakeup io_exits mmio_exits irq_exits \
                irq_injections irq_window_exits nmi_injections signal_exits; do
                [ -f $f ] && printf '%s=%s ' $f "$(cat $f)"; done)"
        done
        # Where each vmm thread is: state, CPU time in ticks, the kernel
        # function it sleeps in and its system call (16 0xFD 0xae80 is
        # ioctl KVM_RUN; "running" is user space).
        for t in "/proc/$v/task/"*; do
            # shellcheck disable=SC2046 # the fields after "(comm) "
            set -- $(sed 's/^.*) //' "$t/stat" 2>/dev/null)
            [ $# -ge 37 ] || continue
            st=$1 ut=${12} stt=${13} cpu=${37}
            echo "HANG $snap thread $(cat "$t/comm") tid=${t##*/} state=$st utime=$ut stime=$stt cpu=$cpu" \
                "wchan=$(cat "$t/wchan" 2>/dev/null) syscall=$(cut -d' ' -f1-3 "$t/syscall" 2>/dev/null)"
        done
        # vmm prints each vCPU's KVM counters, then each vCPU thread its
        # registers and pending events (vmm --help, SIGUSR1), into out.
        kill -USR1 "$v" 2>/dev/null
        [ $snap = 1 ] && sleep 2
    done
    sleep 1
}

report() {
    tr -d '\r' < out | cat - hang 2>/dev/null | sed "s/^/@@out $1 /"
    rm -f hang
    echo "@@case $1 $2 $(awk -v a="$t0" '{printf "%.1f", $1 - a}' /proc/uptime)"
}

# Pass 1 collects the answers, which follow their case in ./cases.
: > answers.list
lab_case() { :; }
lab_cmd() { :; }
lab_expect() { :; }
lab_count() { :; }
lab_range() { :; }
lab_answer() { echo "$1 $2:$3" >> answers.list; }
. ./cases

lab_answer() { :; }
selected() { echo "$1" | grep -qE -f only; }
lab_case() {
    selected "$1" || return 0
    name=$1 tmo=$3
    shift 3
    args=
    for a in "$@"; do
        args="$args '$(subst "$a" | sed "s/'/'\\\\''/g")'"
    done
    t0=$(cut -d' ' -f1 /proc/uptime)
    echo "@@start $name $t0"
    rm -f in && mkfifo in
    eval "vmm $args" < in > out 2>&1 &
    pid=$!
    exec 3> in
    drive "$(awk -v n="$name" '$1 == n {print $2}' answers.list)" "$tmo"
    wait "$pid"
    rc=$?
    exec 3>&-
    report "$name" "$rc"
}
lab_cmd() {
    selected "$1" || return 0
    name=$1
    t0=$(cut -d' ' -f1 /proc/uptime)
    echo "@@start $name $t0"
    timeout -s KILL "$3" sh -c "$(subst "$4")" < /dev/null > out 2>&1
    report "$name" "$?"
}
. ./cases
kill "$alive" 2>/dev/null
