# Measures vmm and QEMU side by side; run by tools/bench/startup and
# tools/bench/rss on this host or in the lab L1 VM, so it is plain POSIX sh
# (L1 has only busybox).
#
# usage: sh measure.sh startup|rss RUNS
# env:   VMM QEMU FIRSTBYTE GUEST WHERE, QEMU_FW (a -L firmware directory, optional)
set -u
mode=$1
runs=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fw=""
[ -n "${QEMU_FW:-}" ] && fw="-L $QEMU_FW"

# The same guest, memory and vCPU count for both; QEMU as a microvm, the
# closest thing it has to vmm's platform.
vmm_cmd() {
    echo "$VMM --kernel $GUEST --memory $1 --test-exit"
}
qemu_cmd() {
    echo "$QEMU -M microvm -enable-kvm -nodefaults -nographic -serial stdio -device isa-debug-exit,iobase=0xf4 -m $1 -kernel $GUEST $fw"
}

# Prints "median min max" of the numbers in file $1 (one a line).
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}

fail() {
    echo "bench: $*" >&2
    exit 1
}

startup() {
    for i in $(seq "$runs"); do
        # Interleaved, so that a slow spell of the host hits both alike.
        for v in vmm qemu; do
            # shellcheck disable=SC2046
            out=$("$FIRSTBYTE" -t 120 -- $(${v}_cmd 128M) 2>"$tmp/err") ||
                fail "$v printed nothing on serial (run $i: $out): $(${v}_cmd 128M): $(cat "$tmp/err")"
            set -- $out
            [ "$3" != -1 ] || fail "$v did not exit within 120 s: $(${v}_cmd 128M)"
            # 0 is a powered-off guest, odd a debug-exit; anything else is a failed run.
            [ "$3" = 0 ] || [ $(($3 % 2)) = 1 ] && [ "$3" -lt 128 ] ||
                fail "$v exited with status $3 (run $i): $(${v}_cmd 128M): $(cat "$tmp/err")"
            echo "$1" >> "$tmp/$v.first"
            echo "$2" >> "$tmp/$v.exit"
            echo "$3" > "$tmp/$v.status"
        done
    done
    echo "startup: $(basename "$GUEST"), 128 MiB, 1 vCPU; $runs runs each, interleaved; $WHERE"
    echo "  vmm:  $(vmm_cmd 128M)"
    echo "  qemu: $(qemu_cmd 128M)"
    printf '%-10s %-28s %-28s %s\n' "" "exec -> first serial byte" "exec -> exit" "exit status"
    for v in vmm qemu; do
        # shellcheck disable=SC2046  # split "median min max" into $1 $2 $3
        set -- $(stats "$tmp/$v.first")
        a="$1 ms ($2 - $3)"
        # shellcheck disable=SC2046  # split "median min max" into $1 $2 $3
        set -- $(stats "$tmp/$v.exit")
        printf '%-10s %-28s %-28s %s\n' "$v" "$a" "$1 ms ($2 - $3)" "$(cat "$tmp/$v.status")"
    done
    fv=$(stats "$tmp/vmm.first" | cut -d' ' -f1)
    fq=$(stats "$tmp/qemu.first" | cut -d' ' -f1)
    ev=$(stats "$tmp/vmm.exit" | cut -d' ' -f1)
    eq=$(stats "$tmp/qemu.exit" | cut -d' ' -f1)
    printf '%-10s %-28s %s\n' "qemu/vmm" "$(awk "BEGIN { printf \"%.2fx\", $fq / $fv }")" \
        "$(awk "BEGIN { printf \"%.2fx\", $eq / $ev }")"
    echo "(median (min - max) of $runs)"
}

rss() {
    for i in $(seq "$runs"); do
        for v in vmm qemu; do
            # shellcheck disable=SC2046
            out=$("$FIRSTBYTE" -r 1000 -t 120 -- $(${v}_cmd 256M) 2>"$tmp/err") ||
                fail "$v printed nothing on serial (run $i: $out): $(${v}_cmd 256M): $(cat "$tmp/err")"
            set -- $out
            [ "$2" -gt 0 ] && [ "$3" -gt 0 ] || fail "$v exited before its memory was sampled (run $i)"
            echo "$2" >> "$tmp/$v.rss"
            echo "$3" >> "$tmp/$v.pss"
        done
    done
    echo "rss: $(basename "$GUEST"), 256 MiB, 1 vCPU, sampled 1 s after the first serial byte; $runs runs each; $WHERE"
    echo "  vmm:  $(vmm_cmd 256M)"
    echo "  qemu: $(qemu_cmd 256M)"
    printf '%-10s %-24s %s\n' "" "VmRSS (MiB)" "Pss (MiB)"
    for v in vmm qemu; do
        r=$(stats "$tmp/$v.rss" | awk '{ printf "%.1f (%.1f - %.1f)", $1 / 1024, $2 / 1024, $3 / 1024 }')
        p=$(stats "$tmp/$v.pss" | awk '{ printf "%.1f (%.1f - %.1f)", $1 / 1024, $2 / 1024, $3 / 1024 }')
        printf '%-10s %-24s %s\n' "$v" "$r" "$p"
    done
    echo "(median (min - max) of $runs; the kernel sums VmRSS lazily, so it can trail Pss slightly)"
}

case $mode in
    startup) startup ;;
    rss) rss ;;
    *) fail "unknown mode $mode" ;;
esac
