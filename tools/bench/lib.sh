# shellcheck shell=bash
# Shared by tools/bench/startup and tools/bench/rss (sourced, bash): builds the
# firstbyte helper and runs measure.sh here when /dev/kvm works, else in ONE
# lab L1 VM with vmm, QEMU (and its libraries and firmware), the helper and
# the guest copied in, so that the two are still measured side by side.
set -euo pipefail
bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$bench/../.." && pwd)
build=${VMM_BUILD:-$src/build}     # VMM_BUILD: another build directory

bench_fail() {
    echo "bench: $*" >&2
    exit 1
}

# bench_run MODE RUNS GUEST
bench_run() {
    local mode=$1 runs=$2 guest=$3 vmm=$build/vmm/vmm qemu why
    [ -x "$vmm" ] || bench_fail "$vmm is not built; run tools/setup first"
    [ -f "$guest" ] || bench_fail "guest $guest is missing; run tools/setup first, or give one with -k"
    qemu=$(command -v qemu-system-x86_64) ||
        bench_fail "qemu-system-x86_64 is missing; tools/setup installs it (qemu-system-x86)"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-bench.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp/l1"
    cc -O2 -static -std=gnu11 -Wall -Wextra -o "$tmp/l1/firstbyte" "$bench/firstbyte.c" ||
        bench_fail "cannot build tools/bench/firstbyte.c (cc -static needs libc6-dev)"
    if why=$("$src/tools/kvm-check"); then
        VMM=$vmm QEMU=$qemu FIRSTBYTE=$tmp/l1/firstbyte GUEST=$guest WHERE="on this host's /dev/kvm" \
            sh "$bench/measure.sh" "$mode" "$runs"
        return
    fi
    echo "bench: this host has no usable /dev/kvm ($why); running the whole bench in one lab L1 VM"
    cp "$bench/measure.sh" "$tmp/l1/"
    cp "$guest" "$tmp/l1/$(basename "$guest")"
    mkdir "$tmp/l1/qemu-fw"
    cp -L /usr/share/qemu/*.bin /usr/share/qemu/*.rom "$tmp/l1/qemu-fw/"
    cat > "$tmp/l1/run.sh" <<RUN
VMM=/usr/bin/vmm QEMU=/usr/bin/qemu-system-x86_64 FIRSTBYTE=/work/firstbyte GUEST=/work/$(basename "$guest") \\
    QEMU_FW=/work/qemu-fw WHERE="in the lab L1 VM: nested KVM (kvm_amd) on a QEMU TCG host, so figures are far slower than bare metal" \\
    sh /work/measure.sh $mode $runs
RUN
    "$src/tools/lab/l1-run" -b "$vmm" -b "$qemu" -m 2048 -t 3600 "$tmp/l1"
}

# bench_main MODE DEFAULT_RUNS DEFAULT_GUEST "$@": parses -n RUNS and -k KERNEL.
bench_main() {
    local mode=$1 runs=$2 guest=$3 o
    shift 3
    while getopts n:k: o; do
        case $o in
            n) runs=$OPTARG ;;
            k) guest=$OPTARG ;;
            *) echo "usage: tools/bench/$mode [-n RUNS] [-k KERNEL]" >&2; exit 2 ;;
        esac
    done
    [[ $runs =~ ^[1-9][0-9]*$ ]] || bench_fail "-n: '$runs' is not a positive number"
    bench_run "$mode" "$runs" "$(readlink -f "$guest")"
}
