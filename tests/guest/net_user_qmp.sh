#!/bin/bash
# User networking over QMP and its refusals, on a live guest (spin.elf) with
# --net user: netdev_add type user (hostfwd as QEMU's [{"str": ...}]) and a
# NIC on it with device_add; netdev_add with a key vmm does not implement, or
# a forwarded port already in use, refused with one GenericError line;
# x-vmm-snapshot and migrate of the paused VM refused naming the user NIC, and
# the VM still answers after. The forwarded port of the --net user backend
# listens (a host connect succeeds). Emits TAP; skips where /dev/kvm cannot
# run a VM.
#
# usage: net_user_qmp.sh VMM IMAGE_DIR SOURCE_ROOT QMP_CLIENT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") images=$2 srcroot=$3 client=$(readlink -f "$4")
why=$("$srcroot/tools/kvm-check") || skip_all "$why"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-netuser.XXXXXX")
vpid=
trap '[ -n "$vpid" ] && kill -KILL "$vpid" 2>/dev/null; rm -rf "$tmp"' EXIT
# A free TCP port on 127.0.0.1 (the kernel's pick; closed again at once).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
qmp() {     # commands... (each a JSON line); prints the replies
    { echo '{"execute": "qmp_capabilities"}'; printf '%s\n' "$@"; } | "$client" "$tmp/qmp.sock" 2>&1
}

p1=$(free_port) p2=$(free_port)
"$vmm" --kernel "$images/spin.elf" --memory 64M --serial off --net "user,id=u0,hostfwd=tcp:127.0.0.1:$p1-:22" \
    --qmp "unix:$tmp/qmp.sock,server=on,wait=off" 2> "$tmp/vmm.err" &
vpid=$!
wait_sock "$tmp/qmp.sock"
ok "vmm runs with --net user and its hostfwd port listens" "$([ -S "$tmp/qmp.sock" ] &&
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5).close()' "$p1" 2>&1 ||
    { echo "no socket or no listener on $p1"; cat "$tmp/vmm.err"; })"

r=$(qmp "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"user\", \"id\": \"hn1\", \"net\": \"10.0.5.0/24\", \"hostfwd\": [{\"str\": \"tcp:127.0.0.1:$p2-:80\"}]}}" \
    '{"execute": "device_add", "arguments": {"driver": "virtio-net-pci", "netdev": "hn1", "id": "nic1"}}' \
    '{"execute": "qom-get", "arguments": {"path": "/machine/peripheral/nic1", "property": "netdev"}}')
ok "netdev_add type user with hostfwd, then device_add of a NIC on it" "$([ "$(grep -c '"return": {}' <<< "$r")" -ge 3 ] &&
    grep -q '"return": "hn1"' <<< "$r" &&
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5).close()' "$p2" 2>&1 ||
    echo "$r")"

r=$(qmp '{"execute": "netdev_add", "arguments": {"type": "user", "id": "hn2", "smb": "/srv"}}')
ok "netdev_add type user with smb: refused by name" "$(grep -q '"desc": "netdev .hn2. (user): smb= is not supported by vmm' <<< "$r" ||
    echo "$r")"

r=$(qmp '{"execute": "netdev_add", "arguments": {"type": "user", "id": "hn4", "hostfwd": [{"str": {}}]}}')
ok "netdev_add type user with a hostfwd str that is not a string: refused, nothing on stderr" \
    "$(grep -q '"desc": "Parameter .hostfwd. expects a list of' <<< "$r" && ! grep -q CRITICAL "$tmp/vmm.err" ||
    { echo "$r"; cat "$tmp/vmm.err"; })"

r=$(qmp "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"user\", \"id\": \"hn3\", \"hostfwd\": [{\"str\": \"tcp:127.0.0.1:$p1-:22\"}]}}")
ok "netdev_add type user on a forwarded port in use: refused" "$(grep -q "\"desc\": \"user networking: hostfwd tcp 127.0.0.1:$p1: cannot listen" <<< "$r" ||
    echo "$r")"

r=$(qmp '{"execute": "stop"}' "{\"execute\": \"x-vmm-snapshot\", \"arguments\": {\"dir\": \"$tmp/snap\"}}")
ok "x-vmm-snapshot with a user NIC: refused naming it" "$(grep -q '"desc": "NIC u0 is on user networking (slirp), whose connections vmm does not save' <<< "$r" &&
    [ ! -e "$tmp/snap/state" ] || echo "$r")"

r=$(qmp '{"execute": "migrate", "arguments": {"uri": "tcp:127.0.0.1:1"}}')
ok "migrate with a user NIC: refused naming it" "$(grep -q '"desc": "NIC u0 is on user networking (slirp).*cannot migrate' <<< "$r" ||
    echo "$r")"

r=$(qmp '{"execute": "query-status"}' '{"execute": "quit"}')
wait_exit "$vpid"
vpid=
ok "the VM still answers (paused) and quits with status 0" "$(grep -q '"status": "paused"' <<< "$r" && [ "$st" = 0 ] ||
    { echo "status $st"; echo "$r"; cat "$tmp/vmm.err"; })"
tap_done
