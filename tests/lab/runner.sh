#!/bin/sh
# The lab suite inside L1 (busybox sh): runs every case of ./cases and prints
# each output line as "@@out NAME LINE", then "@@case NAME STATUS SECONDS".
# Files beside it: bzImage, vmlinux, initrd.gz, nested.gz (see run-lab-tests).
cd "$(dirname "$0")" || exit 1
cat initrd.gz nested.gz > ninitrd.gz

subst() {
    printf '%s' "$1" | sed -e "s|@BZ@|$PWD/bzImage|g" -e "s|@PVH@|$PWD/vmlinux|g" \
        -e "s|@NINITRD@|$PWD/ninitrd.gz|g" -e "s|@INITRD@|$PWD/initrd.gz|g" -e "s|@TIME@|$(date +%s)|g"
}

# Waits for the case's process ($pid), typing the case's answers ("N:TEXT"
# words) on the console fifo (fd 3) when the Nth "LAB end" shows.
drive() {
    sent=0
    while kill -0 "$pid" 2>/dev/null; do
        ends=$(tr -d '\r' < out | grep -c '^LAB end$')
        for a in $1; do
            n=${a%%:*} text=${a#*:}
            if [ "$n" -gt "$sent" ] && [ "$ends" -ge "$n" ]; then
                echo "$text" >&3
                sent=$n
            fi
        done
        sleep 0.2
    done
}

report() {
    tr -d '\r' < out | sed "s/^/@@out $1 /"
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
    rm -f in && mkfifo in
    t0=$(cut -d' ' -f1 /proc/uptime)
    eval "timeout -s KILL $tmo vmm $args" < in > out 2>&1 &
    pid=$!
    exec 3> in
    drive "$(awk -v n="$name" '$1 == n {print $2}' answers.list)"
    wait "$pid"
    rc=$?
    exec 3>&-
    report "$name" "$rc"
}
lab_cmd() {
    selected "$1" || return 0
    name=$1
    t0=$(cut -d' ' -f1 /proc/uptime)
    timeout -s KILL "$3" sh -c "$(subst "$4")" < /dev/null > out 2>&1
    report "$name" "$?"
}
. ./cases
