#!/bin/bash
# Bad input on vmm's command line and host: every case must give exactly one
# line on stderr, nothing on stdout, the documented exit status (2 for
# configuration, 10 for host problems; see vmm --help), no crash, and leave
# the directory it ran in as empty as it found it. Emits TAP.
#
# usage: bad_input.sh VMM SOURCE_ROOT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1")
srcroot=$2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-cli.XXXXXX")
trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
chmod 755 "$tmp"        # the unprivileged cases must reach the files in it
files=$tmp/files
mkdir -m 755 "$files"

# Little-endian integers as raw bytes.
le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))"; }
le32() { le16 $(($1 & 65535)); le16 $(($1 >> 16 & 65535)); }
le64() { le32 $(($1 & 0xffffffff)); le32 $(($1 >> 32 & 0xffffffff)); }

# A minimal PVH kernel: an ELF64 loaded at 1 MiB whose XEN_ELFNOTE_PHYS32_ENTRY
# note points at 32-bit code that writes 'X' to COM1 and 0 to port 0xf4. It
# gets every case that is about something other than the kernel past the
# kernel check. With a second argument "nonote", the PT_NOTE header is left out.
mk_pvh_elf() {
    local base=$((0x100000)) note=176 code=196 size=204 phnum=2
    [ "${2:-}" = nonote ] && phnum=1
    {
        printf '\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00'
        le16 2; le16 0x3e; le32 1; le64 $((base + code)); le64 64; le64 0
        le32 0; le16 64; le16 56; le16 $phnum; le16 64; le16 0; le16 0
        # PT_LOAD: the whole file at 1 MiB
        le32 1; le32 5; le64 0; le64 $base; le64 $base; le64 $size; le64 $size; le64 4096
        # PT_NOTE
        le32 4; le32 4; le64 $note; le64 $((base + note)); le64 $((base + note)); le64 20; le64 20; le64 4
        le32 4; le32 4; le32 18; printf 'Xen\0'; le32 $((base + code))
        # mov dx,0x3f8; mov al,'X'; out dx,al; xor eax,eax; out 0xf4,al; hlt
        printf '\x66\xba\xf8\x03\xb0\x58\xee\x31\xc0\xe6\xf4\xf4'
    } > "$1"
}

# A 4 KiB bzImage prefix: Debian's own kernel when tools/lab/fetch-kernel has
# cached it, else a setup header (boot protocol 2.15, 64-bit entry) whose
# syssize promises far more than 4 KiB.
mk_truncated_bzimage() {
    local real
    real=$(ls "${VMM_LAB_CACHE:-$srcroot/build/lab-cache}"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
    if [ -n "$real" ] && [ -r "$real" ]; then
        head -c 4096 "$real" > "$1"
        return
    fi
    head -c 4096 /dev/zero > "$1"
    {
        # setup_sects, root_flags, syssize (16-byte units), ram_size, vid_mode,
        # root_dev, boot_flag, jump, header, version
        printf '\x1e'; le16 0; le32 $((0x100000 / 16)); le16 0; le16 0xffff; le16 0
        le16 0xaa55; printf '\xeb\x66HdrS'; le16 0x020f
    } | dd of="$1" bs=1 seek=$((0x1f1)) conv=notrunc status=none
    printf '\x01' | dd of="$1" bs=1 seek=$((0x211)) conv=notrunc status=none   # loadflags: LOADED_HIGH
    le16 1 | dd of="$1" bs=1 seek=$((0x236)) conv=notrunc status=none           # xloadflags: XLF_KERNEL_64
}

mk_pvh_elf "$files/pvh.elf"
mk_pvh_elf "$files/no-note.elf" nonote
good=$files/pvh.elf
head -c 65536 /dev/urandom > "$files/garbage"
printf 'this is not a kernel\nbut a text file\n' > "$files/text"
: > "$files/empty"
mk_truncated_bzimage "$files/short-bzimage"
mkdir "$files/dir"
printf 'secret' > "$files/private" && chmod 600 "$files/private"
printf 'initrd' > "$files/initrd"

# Takes the file's owner out of the picture: as root (who reads anything), the
# cases drop to nobody; anyone else runs them directly on a mode 000 file.
as_other=()
if [ "$(id -u)" != 0 ]; then
    chmod 000 "$files/private"
else
    as_other=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    "${as_other[@]}" test -x "$vmm" -a -r "$good" 2>/dev/null || as_other=(unreachable)
fi

# check NAME STATUS PATTERN [VAR=VALUE...] -- ARGS... (this test's own check,
# not tap.sh's)
# Runs vmm with ARGS in an empty directory; PATTERN is an extended regex that
# the one stderr line must match (it names the option or path at fault).
check() {
    local name=$1 want=$2 pat=$3
    shift 3
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local run=$tmp/run out=$tmp/out err=$tmp/err prefix=()
    [ "${envs[0]:-}" = AS_OTHER ] && { prefix=("${as_other[@]}"); envs=("${envs[@]:1}"); }
    if [ "${prefix[0]:-}" = unreachable ]; then
        n=$((n + 1))
        echo "ok $n - $name # SKIP uid 65534 cannot reach $vmm"
        return
    fi
    rm -rf "$run" && mkdir -m 777 "$run"
    (cd "$run" && ulimit -c unlimited 2>/dev/null
     exec env "${envs[@]}" timeout -k 5 20 "${prefix[@]}" "$vmm" "$@") </dev/null >"$out" 2>"$err"
    local st=$? problems=""
    local lines
    lines=$(wc -l < "$err")
    [ "$st" = "$want" ] || problems+="exit status $st, expected $want"$'\n'
    [ "$st" -lt 124 ] || problems+="vmm crashed or hung (status $st)"$'\n'
    [ "$lines" = 1 ] && [ "$(tail -c 1 "$err" | od -An -c | tr -d ' ')" = '\n' ] ||
        problems+="stderr has $lines lines, expected exactly one"$'\n'
    grep -Eq -- "$pat" "$err" || problems+="stderr does not match /$pat/"$'\n'
    [ ! -s "$out" ] || problems+="stdout is not empty"$'\n'
    [ -z "$(ls -A "$run")" ] || problems+="left files behind: $(ls -A "$run" | tr '\n' ' ')"$'\n'
    [ -z "$problems" ] || problems+="command: vmm $*"$'\n'"stderr: $(head -c 2000 "$err")"
    ok "$name" "${problems%$'\n'}"
    [ -n "$problems" ] || echo "# $(head -c 300 "$err")"
}

f=$files
# Missing or unusable images.
check "no --kernel" 2 'kernel' -- --memory 64M
check "nonexistent kernel" 2 "$f/nope" -- --kernel "$f/nope"
check "unreadable kernel" 2 "$f/private" AS_OTHER -- --kernel "$f/private"
check "kernel is a directory" 2 "$f/dir" -- --kernel "$f/dir"
check "nonexistent initrd" 2 "$f/nope" -- --kernel "$good" --initrd "$f/nope"
check "unreadable initrd" 2 "$f/private" AS_OTHER -- --kernel "$good" --initrd "$f/private"
check "initrd is a directory" 2 "$f/dir" -- --kernel "$good" --initrd "$f/dir"
check "garbage kernel" 2 "$f/garbage" -- --kernel "$f/garbage"
check "text file as kernel" 2 "$f/text" -- --kernel "$f/text"
check "empty kernel" 2 "$f/empty" -- --kernel "$f/empty"
check "truncated bzImage" 2 "$f/short-bzimage.*truncated" -- --kernel "$f/short-bzimage"
check "host ELF program (/bin/true)" 2 "/bin/true" -- --kernel /bin/true
check "ELF without a PVH note" 2 "no-note.elf.*(PVH|note|NOTE)" -- --kernel "$f/no-note.elf"
check "bad kernel does not create the serial file" 2 "$f/garbage" -- --kernel "$f/garbage" --serial file=out.log

# Memory.
check "--memory 0" 2 '--memory' -- --kernel "$good" --memory 0
check "--memory 5T" 2 '--memory' -- --kernel "$good" --memory 5T
check "--memory 12Q" 2 '--memory' -- --kernel "$good" --memory 12Q
check "--memory -1" 2 '--memory' -- --kernel "$good" --memory -1
check "--memory ''" 2 '--memory' -- --kernel "$good" --memory ''
check "--memory hugepages=maybe" 2 'hugepages' -- --kernel "$good" --memory size=1G,hugepages=maybe
check "--memory 3M" 2 '--memory' -- --kernel "$good" --memory 3M
check "--memory =1G (empty key)" 2 '--memory' -- --kernel "$good" --memory =1G
check "--memory hotplug_size not a block multiple" 2 '--memory.*hotplug_size.*multiple' -- --kernel "$good" --memory size=64M,hotplug_size=5M
check "--memory hotplug_block not a power of two" 2 '--memory.*hotplug_block' -- --kernel "$good" --memory size=64M,hotplug_size=96M,hotplug_block=3M
check "--memory hotplug_block too small" 2 '--memory.*hotplug_block' -- --kernel "$good" --memory size=64M,hotplug_size=64M,hotplug_block=1M
check "--memory requested_size above hotplug_size" 2 '--memory.*requested_size.*above' -- --kernel "$good" --memory size=64M,hotplug_size=64M,requested_size=128M
check "--memory requested_size without hotplug_size" 2 '--memory.*requested_size' -- --kernel "$good" --memory size=64M,requested_size=2M
check "--memory hotplug_size with hugepages" 2 '--memory.*hugepages' -- --kernel "$good" --memory size=64M,hugepages=on,hotplug_size=64M
check "--memory hotplug_size=junk" 2 '--memory.*hotplug_size' -- --kernel "$good" --memory size=64M,hotplug_size=lots

# vCPUs.
check "--cpus 0" 2 '--cpus' -- --kernel "$good" --cpus 0
check "--cpus 300" 2 '--cpus' -- --kernel "$good" --cpus 300
check "--cpus boot=4,max=2" 2 '--cpus' -- --kernel "$good" --cpus boot=4,max=2
check "--cpus two" 2 '--cpus' -- --kernel "$good" --cpus two
check "--cpus ''" 2 '--cpus' -- --kernel "$good" --cpus ''
check "--cpus max=" 2 '--cpus' -- --kernel "$good" --cpus boot=1,max=

# The command line itself.
check "unknown option" 2 '--frobnicate' -- --kernel "$good" --frobnicate
check "option missing its value" 2 '--memory' -- --kernel "$good" --memory
check "stray positional argument" 2 'stray' -- --kernel "$good" stray
check "--serial bogus" 2 '--serial' -- --kernel "$good" --serial bogus

# virtio-net: the backend (tap= or fd=, not both), its keys, and a tap that cannot be opened.
check "--net ''" 2 '--net: empty' -- --kernel "$good" --net ''
check "--net without a backend" 2 '--net: no backend' -- --kernel "$good" --net mac=52:54:00:12:34:56
check "--net tap= and fd=" 2 '--net: give tap= or fd=' -- --kernel "$good" --net tap=t0,fd=5
check "--net tap=a/b" 2 "--net tap: 'a/b'" -- --kernel "$good" --net tap=a/b
check "--net tap name too long" 2 '--net tap:' -- --kernel "$good" --net tap=abcdefghijklmnop
check "--net mac=zz" 2 "--net mac: 'zz'" -- --kernel "$good" --net tap=t0,mac=zz
check "--net multicast mac" 2 '--net mac: .*multicast' -- --kernel "$good" --net tap=t0,mac=01:00:5e:00:00:01
check "--net num_queues=0" 2 '--net num_queues' -- --kernel "$good" --net tap=t0,num_queues=0
check "--net num_queues=17" 2 '--net num_queues' -- --kernel "$good" --net tap=t0,num_queues=17
check "--net fd=2" 2 "--net fd: '2'" -- --kernel "$good" --net fd=2
check "--net fd= with num_queues=2" 2 '--net fd=9: num_queues' -- --kernel "$good" --net fd=9,num_queues=2
check "--net unknown key" 2 "--net: unknown key 'vhost'" -- --kernel "$good" --net tap=t0,vhost=on
check "--net the same tap twice" 2 '--net tap=t0: the tap is given twice' -- --kernel "$good" --net tap=t0 --net tap=t0
check "--net id used twice" 2 "--net: id 'n' is used by two" -- --kernel "$good" --net tap=t0,id=n --net tap=t1,id=n
# --net user (slirp): its keys and values; a forwarded port already in use.
check "--net user,smb=" 2 "--net user: smb= is not supported by vmm's user networking" -- --kernel "$good" --net user,smb=/tmp
check "--net user,num_queues=2" 2 "--net user: unknown key 'num_queues'" -- --kernel "$good" --net user,num_queues=2
check "--net user,net=/33" 2 "--net user net=10.0.2.0/33: not ADDR" -- --kernel "$good" --net user,net=10.0.2.0/33
check "--net user,net= with host bits" 2 "--net user net=10.0.2.1/24: the address has host bits set" -- \
    --kernel "$good" --net user,net=10.0.2.1/24
check "--net user,host= outside" 2 "--net user: host=10.0.3.2 is not a host address of the network 10.0.2.0/24" -- \
    --kernel "$good" --net user,host=10.0.3.2
check "--net user,dns= = host" 2 "--net user: host=, dns= and dhcpstart= must be three different" -- \
    --kernel "$good" --net user,dns=10.0.2.2
check "--net user,hostfwd= bad port" 2 "--net user hostfwd=tcp::x-:22: host port 'x'" -- \
    --kernel "$good" --net user,hostfwd=tcp::x-:22
check "--net user,hostfwd= bad protocol" 2 "--net user hostfwd=sctp::22-:22: protocol 'sctp'" -- \
    --kernel "$good" --net user,hostfwd=sctp::22-:22
check "--net user,hostfwd= no guest port" 2 "--net user hostfwd=tcp::2222: not " -- \
    --kernel "$good" --net user,hostfwd=tcp::2222
check "--net user,restrict=maybe" 2 "--net user restrict=maybe: not on or off" -- --kernel "$good" --net user,restrict=maybe
check "--net user,ipv4=off,ipv6=off" 2 "--net user: ipv4=off and ipv6=off" -- --kernel "$good" --net user,ipv4=off,ipv6=off
# a port something listens on already (a listener this script starts)
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' \
    > "$tmp/busy.out" 2>/dev/null &
busy_pid=$!
for _ in $(seq 50); do [ -s "$tmp/busy.out" ] && break; sleep 0.1; done
busy=$(head -n 1 "$tmp/busy.out")
check "--net user,hostfwd= port in use" 2 "--net net0: user networking: hostfwd tcp 127.0.0.1:${busy:-?}: cannot listen" -- \
    --kernel "$good" --net user,hostfwd=tcp:127.0.0.1:${busy:-1}-:22
kill "$busy_pid" 2>/dev/null
wait "$busy_pid" 2>/dev/null
check "--net fd not open" 2 '--net net0: fd=9 is not an open file descriptor' -- --kernel "$good" --net fd=9
exec 7<"$f/initrd"
check "--net fd not a tap" 2 '--net net0: fd=7 is not a tap' -- --kernel "$good" --net fd=7
exec 7<&-
check "--net tap without permission" 2 '--net net0: tap vmmclinope: .*(/dev/net/tun|CAP_NET_ADMIN)' AS_OTHER -- \
    --kernel "$good" --net tap=vmmclinope

# virtio-console: the backends, and stdio for only one of it and the 16550.
check "--console bogus" 2 "--console: 'bogus'" -- --kernel "$good" --console bogus
check "--console socket= empty" 2 '--console' -- --kernel "$good" --console socket=
check "--console stdio with --serial's default stdio" 2 '--console stdio.*--serial' -- \
    --kernel "$good" --console stdio
check "--console stdio with --serial stdio" 2 '--console stdio.*--serial' -- \
    --kernel "$good" --console stdio --serial stdio
check "--console and --serial on one file" 2 "--console.*same path" -- \
    --kernel "$good" --console file=out.log --serial file=out.log
echo x > "$f/regular"
check "--console socket on a regular file" 2 "--console.*$f/regular.*not a socket" -- \
    --kernel "$good" --serial off --console socket="$f/regular"
check "--console socket in a missing directory" 2 "--console.*$f/nodir/c.sock" -- \
    --kernel "$good" --serial off --console socket="$f/nodir/c.sock"
check "--reboot sometimes" 2 '--reboot' -- --kernel "$good" --reboot sometimes
check "--cpu-model pentium" 2 '--cpu-model' -- --kernel "$good" --cpu-model pentium
check "--log-level loud" 2 '--log-level' -- --kernel "$good" --log-level loud

# Disks.
head -c 1048576 /dev/zero > "$f/disk.img"
chmod 644 "$f/disk.img"
check "--disk nonexistent" 2 "--disk $f/nope.*No such file" -- --kernel "$good" --disk "$f/nope"
check "--disk a directory" 2 "--disk $f/dir.*not a regular file" -- --kernel "$good" --disk "$f/dir"
check "--disk ''" 2 '--disk' -- --kernel "$good" --disk ''
check "--disk without path" 2 '--disk.*path' -- --kernel "$good" --disk readonly=on
check "--disk aio=posix" 2 '--disk aio.*posix' -- --kernel "$good" --disk path="$f/disk.img",aio=posix
check "--disk cache=unsafe" 2 '--disk cache.*unsafe' -- --kernel "$good" --disk path="$f/disk.img",cache=unsafe
check "--disk readonly=maybe" 2 '--disk readonly' -- --kernel "$good" --disk path="$f/disk.img",readonly=maybe
check "--disk num_queues=0" 2 '--disk num_queues' -- --kernel "$good" --disk path="$f/disk.img",num_queues=0
check "--disk num_queues=65" 2 '--disk num_queues' -- --kernel "$good" --disk path="$f/disk.img",num_queues=65
check "--disk num_queues=two" 2 '--disk num_queues' -- --kernel "$good" --disk path="$f/disk.img",num_queues=two
check "--disk serial too long" 2 '--disk serial' -- --kernel "$good" \
    --disk path="$f/disk.img",serial=123456789012345678901
check "--disk unknown key" 2 "--disk.*'format'" -- --kernel "$good" --disk path="$f/disk.img",format=raw
check "--disk same id twice" 2 "--disk.*'d0'" -- --kernel "$good" \
    --disk path="$f/disk.img",id=d0 --disk path="$f/disk.img",id=d0
check "--disk iothread that does not exist" 2 "--disk.*iothread 'io9'.*--object iothread,id=io9" -- \
    --kernel "$good" --disk path="$f/disk.img",iothread=io9
check "--object of an unknown type" 2 "--object: 'secret' is not a known object type" -- \
    --kernel "$good" --object secret,id=s0
check "--object iothread without id" 2 '--object iothread: no id' -- --kernel "$good" --object iothread
check "--object iothread id twice" 2 "--object iothread: id 'a'" -- \
    --kernel "$good" --object iothread,id=a --object iothread,id=a
check "--disk not writable without readonly=on" 2 "$f/disk.img.*readonly=on" AS_OTHER -- \
    --kernel "$good" --disk "$f/disk.img"

# The QMP control socket and the VM's identity.
long=$(printf 'x%.0s' $(seq 1 120))
check "--paused without --qmp" 2 "--paused: .*no --qmp" -- --kernel "$good" --paused
check "-S without --qmp" 2 "--paused: .*no --qmp" -- --kernel "$good" -S
check "--qmp without unix:" 2 "--qmp /tmp/q.sock: give unix:PATH" -- --kernel "$good" --qmp /tmp/q.sock
check "--qmp unix: without a path" 2 '--qmp unix:: no path' -- --kernel "$good" --qmp unix:
check "--qmp path too long" 2 '--qmp unix:.*at most 107' -- --kernel "$good" --qmp "unix:/tmp/$long"
check "--qmp in a missing directory" 2 "--qmp unix:$f/nodir/q.sock: the directory $f/nodir does not exist" -- \
    --kernel "$good" --qmp "unix:$f/nodir/q.sock"
check "--qmp on a regular file" 2 "--qmp unix:$f/text: exists and is not a socket" -- --kernel "$good" --qmp "unix:$f/text"
check "--qmp unknown key" 2 "--qmp: unknown key 'mode'" -- --kernel "$good" --qmp unix:q.sock,mode=control
check "--qmp server=off" 2 '--qmp server=off' -- --kernel "$good" --qmp unix:q.sock,server=off
check "--qmp wait=maybe" 2 '--qmp wait=maybe' -- --kernel "$good" --qmp unix:q.sock,wait=maybe
check "--qmp same path twice" 2 '--qmp unix:q.sock: the path is given twice' -- \
    --kernel "$good" --qmp unix:q.sock --qmp unix:q.sock,wait=off
check "--qmp fd=abc" 2 '--qmp fd=abc: not a file descriptor number' -- --kernel "$good" --qmp fd=abc
check "--qmp fd not open" 2 '--qmp fd=77: the fd is not open' -- --kernel "$good" --qmp fd=77
exec 7<"$f/text"
check "--qmp fd not a socket" 2 '--qmp fd=7: not a socket' -- --kernel "$good" --qmp fd=7
exec 7<&-
check "--uuid not a UUID" 2 "--uuid: '1234' is not a UUID" -- --kernel "$good" --uuid 1234
check "--uuid with a bad digit" 2 "--uuid: .* is not a UUID" -- --kernel "$good" \
    --uuid 978c6af3-b5f0-4591-a637-63086934903g

# --restore (a good snapshot needs KVM: tests/guest/snapshot.sh; test_snapshot
# has every broken snapshot directory).
check "--restore of a missing directory" 2 "--restore $f/nosnap: not a directory" -- --restore "$f/nosnap"
check "--restore of a directory without state" 2 "--restore $f: .*state.*No such file" -- --restore "$f"
check "--restore with --cpus" 2 "--cpus: the machine comes from the snapshot with --restore" -- \
    --restore "$f" --cpus 2
check "--restore with --disk" 2 "--disk: the machine comes from the snapshot" -- --disk "$f/text" --restore "$f"
check "--restore with --memory" 2 "--memory: the machine comes from the snapshot" -- --memory 64M --restore "$f"
check "--restore without a value" 2 "option --restore needs a value" -- --restore
check "--incoming with a bad URI" 2 "--incoming http://x: give tcp:HOST:PORT or unix:PATH" -- --incoming http://x
check "--incoming tcp without a port" 2 "--incoming tcp:localhost: give tcp:HOST:PORT" -- --incoming tcp:localhost
check "--incoming with --restore" 2 "--incoming: the machine comes from --restore already" -- \
    --restore "$f" --incoming tcp:127.0.0.1:4444
check "--incoming defer without --qmp" 2 "--incoming defer: the URI comes with QMP migrate-incoming, and there is no --qmp" -- --incoming defer
check "--incoming with --kernel" 2 "--kernel: the machine comes from the migration source" -- \
    --kernel "$good" --incoming tcp:127.0.0.1:4444
# (a closed fd once went unnoticed until the source came: the destination
# listened on for ever)
check "--incoming with --net fd= not open" 2 "--net lan: fd=70 is not an open file descriptor" -- \
    --incoming tcp:127.0.0.1:0 --net fd=70,id=lan
check "--restore with --net fd= not open" 2 "--net net0: fd=70 is not an open file descriptor" -- \
    --restore "$f" --net fd=70

# The QEMU-style front end (libvirt's argv): one line naming the option, exit 2.
q=(-name guest=t -S -machine pc-i440fx-7.2,usb=off -accel kvm -m 64 -nodefaults -kernel "$good")
check "QEMU: -no-acpi refused" 2 '^vmm: error: -no-acpi: .*ACPI-only' -- "${q[@]}" -no-acpi
check "QEMU: -netdev user,smb= refused" 2 '^vmm: error: -netdev user,id=hostnet0: smb= is not supported' -- \
    "${q[@]}" -netdev user,id=hostnet0,smb=/tmp -device virtio-net-pci,netdev=hostnet0,id=net0
check "QEMU: -netdev user,guestfwd= refused" 2 '^vmm: error: -netdev user,id=n: guestfwd= is not supported' -- \
    "${q[@]}" -netdev user,id=n,guestfwd=tcp:10.0.2.100:1234-cmd:cat -device virtio-net-pci,netdev=n,id=net0
check "QEMU: -netdev user JSON, bad hostfwd" 2 "^vmm: error: -netdev user,id=n hostfwd=tcp::22: not" -- \
    "${q[@]}" -netdev '{"type":"user","id":"n","hostfwd":[{"str":"tcp::22"}]}' -device virtio-net-pci,netdev=n,id=net0
check "QEMU: -netdev user nobody uses" 2 '^vmm: error: -netdev user,id=n: no NIC uses it' -- \
    "${q[@]}" -netdev user,id=n
check "QEMU: -netdev socket refused" 2 '^vmm: error: -netdev socket: vmm supports only tap .* and user' -- \
    "${q[@]}" -netdev socket,id=n,listen=:1234
check "QEMU: q35 refused" 2 "^vmm: error: -machine q35: vmm offers the machine 'pc'" -- "${q[@]}" -machine q35
check "QEMU: unknown device" 2 "^vmm: error: -device e1000: device type 'e1000' is not supported" -- \
    "${q[@]}" -device e1000,id=n
check "QEMU: unknown option" 2 '^vmm: error: -vnc: option not supported by vmm' -- "${q[@]}" -vnc :0
check "QEMU: unknown key" 2 '^vmm: error: -machine pc: usb=on is not supported' -- "${q[@]}" -machine pc,usb=on
check "QEMU: bad JSON" 2 '^vmm: error: -blockdev: not valid JSON' -- "${q[@]}" -blockdev '{"driver":'
check "QEMU: qcow2 refused" 2 "^vmm: error: -blockdev q: driver 'qcow2'" -- "${q[@]}" \
    -blockdev '{"driver":"qcow2","node-name":"q","file":"s"}'
check "QEMU: missing value" 2 '^vmm: error: -kernel: needs a value' -- "${q[@]}" -kernel
check "QEMU: no kernel" 2 '^vmm: error: no -kernel' -- -name guest=t -machine pc -m 64
check "QEMU: nonexistent kernel (native checks)" 2 "$f/nope" -- -name guest=t -machine pc -kernel "$f/nope"
check "QEMU: monitor fd not open" 2 '--qmp fd=77: the fd is not open' -- "${q[@]}" \
    -chardev socket,id=charmonitor,fd=77,server=on,wait=off -mon chardev=charmonitor,id=monitor,mode=control

# The host: vmm finds KVM through VMM_KVM_DEVICE (default /dev/kvm).
check "no KVM device" 10 '/nonexistent.*(kvm|KVM)' VMM_KVM_DEVICE=/nonexistent -- \
    --kernel "$good" --serial file=out.log
check "not a KVM device" 10 '/dev/null.*not a KVM device' VMM_KVM_DEVICE=/dev/null -- --kernel "$good"
check "KVM device not accessible" 10 "$f/private.*(group|root)" AS_OTHER VMM_KVM_DEVICE="$f/private" -- \
    --kernel "$good"

tap_done
