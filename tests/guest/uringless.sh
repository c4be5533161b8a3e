#!/bin/bash
# vmm where io_uring is unavailable (tests/guest/no-uring: io_uring_setup
# fails with ENOSYS, as under Docker's default seccomp profile): the
# freestanding virtio_blk guest (the guest tier's virtio-blk-pvh case: write,
# read back, flush, discard, write-zeroes, get-id) passes on the epoll event
# loop with the default aio=io_uring disk falling back to aio=native, the
# image holds what the guest wrote, and the two fallback lines appear once
# each (the loop's is an info line: --log-level info). Then the same with aio=threads (no fallback line for that disk), and
# the launcher itself is checked: without it the same vmm uses io_uring.
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: uringless.sh VMM IMAGE_DIR SOURCE_ROOT NO_URING
set -u
vmm=$(readlink -f "$1") images=$2 srcroot=$3 nouring=$(readlink -f "$4")
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-uringless.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() {    # description, then a command that must succeed
    n=$((n + 1))
    local d=$1; shift
    if "$@"; then
        echo "ok $n - $d"
    else
        echo "not ok $n - $d"
        for f in "$tmp"/err "$tmp"/out; do [ -f "$f" ] && tail -n 20 "$f" | sed "s|^|#   $(basename "$f"): |"; done
        failed=$((failed + 1))
    fi
}
newdisk() {
    dd if=/dev/zero of="$tmp/disk.img" bs=1024 count=1024 2>/dev/null
    printf 'VMMDISK0' | dd of="$tmp/disk.img" conv=notrunc 2>/dev/null
}
run() {    # runs vmm (under $wrap) with the virtio_blk guest and the disk options $1; sets $st
    newdisk
    timeout -s KILL 60 $wrap "$vmm" --kernel "$images/virtio_blk.elf" --cpus 1 --memory 128M --serial stdio \
        --test-exit --reboot exit --log-level info --disk "path=$tmp/disk.img,serial=vmm-blk-test$1" --cmdline quiet \
        </dev/null >"$tmp/out" 2>"$tmp/err"
    st=$?
}
count() { grep -cE -- "$1" "$tmp/err"; }
pattern_ok() {
    local i=0
    while [ $i -lt 256 ]; do printf 'vmm-blk-pattern\n'; i=$((i + 1)); done > "$tmp/pattern.exp"
    [ "$(head -c 8 "$tmp/disk.img")" = VMMDISK0 ] &&
        dd if="$tmp/disk.img" bs=512 skip=8 count=8 2>/dev/null | cmp -s - "$tmp/pattern.exp"
}
loopline='io_uring unavailable \(io_uring_setup: Function not implemented\): event loop on epoll, disk I/O on worker threads'
diskline="disk $tmp/disk.img: aio=io_uring is unavailable .*; using aio=native"

echo "1..9"
wrap=$nouring
run ""
ok "default disk, no io_uring: the guest's virtio-blk tests all pass (status 1, was $st)" [ "$st" = 1 ]
ok "the image holds the marker and the guest's pattern" pattern_ok
ok "one line says the loop is on epoll" [ "$(count "$loopline")" = 1 ]
ok "one line names the disk falling back to aio=native" [ "$(count "$diskline")" = 1 ]
ok "the guest reported no failed test" [ "$(grep -c '^not ok' "$tmp/out")" = 0 ]
run ",aio=threads"
ok "aio=threads, no io_uring: passes (status 1, was $st)" [ "$st" = 1 ]
ok "aio=threads: no disk fallback line, the loop line once" \
    [ "$(count 'aio=io_uring is unavailable')" = 0 -a "$(count "$loopline")" = 1 ]
wrap=
run ""
ok "without no-uring: passes on io_uring (status 1, was $st)" [ "$st" = 1 ]
ok "without no-uring: no fallback line" [ "$(count 'io_uring unavailable|aio=io_uring is unavailable')" = 0 ]
[ $failed = 0 ]
