#!/bin/bash
# vmm's QMP socket end to end, with QEMU 7.2 as the oracle: vmm runs a live
# guest (spin.elf, which idles after one line) with --qmp; qmp-client (a
# small C client) plays transcripts. Checks: the greeting with "\r\n",
# the negotiation gate, query-version/name/uuid, error replies, id echo,
# two clients at once, query-commands, quit → SHUTDOWN, exit 0 and the
# socket file gone; --qmp fd=N on an inherited listening socket (libvirt's
# way), which vmm must not unlink; garbage and a 2 MB object on other
# clients change nothing for the rest; wait=on starts the guest only after a
# client connected. The same transcript runs against qemu-system-x86_64
# (-machine none, same -name/-uuid), and both must match once the
# timestamps, the package string and the micro version are masked.
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: qmp-e2e.sh VMM IMAGE_DIR SOURCE_ROOT QMP_CLIENT
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") images=$2 srcroot=$3 client=$(readlink -f "$4")
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-qmp.XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
mask() {
    sed -E -e 's/"seconds": [0-9]+, "microseconds": [0-9]+/"seconds": S, "microseconds": U/' \
        -e 's/"package": "[^"]*"/"package": P/' -e 's/"micro": [0-9]+/"micro": M/'
}
uuid=978c6af3-b5f0-4591-a637-630869349030

# The transcript both engines get (QEMU has every command in it).
cat > "$tmp/script" <<'EOF'
{"execute": "query-version", "id": 1}
{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}
{"execute": "qmp_capabilities"}
{"execute": "query-version", "id": "v"}
{"execute":"query-name","id":{"nested":[1,2]}}
{"execute": "query-uuid"}
{"execute": "query-version", "arguments": {"x": 1}}
{"execute": "no-such-command", "id": 7}
{"execute": "query-name", "bogus": 1}
{"id": 8}
[1, 2]
{"execute": "query-uuid", "arguments": 3}
{"execute": "quit", "id": "bye"}
EOF

echo "1..19"
"$vmm" --kernel "$images/spin.elf" --memory 64M --serial file="$tmp/serial" --name e2e --uuid "$uuid" \
    --qmp "unix:$tmp/vmm.sock" --qmp "unix:$tmp/second.sock,server=on,wait=off" 2> "$tmp/vmm.err" &
vpid=$!; pids+=($vpid)
wait_path "$tmp/vmm.sock"
ok "vmm listens on both --qmp sockets" "$([ -S "$tmp/vmm.sock" ] && [ -S "$tmp/second.sock" ] || echo "no sockets; stderr: $(cat "$tmp/vmm.err")")"

# A second client, negotiated, stays connected for the whole run and must
# see the SHUTDOWN event of the first one's quit.
mkfifo "$tmp/hold"
{ echo '{"execute": "qmp_capabilities"}'; cat "$tmp/hold"; } | "$client" "$tmp/second.sock" > "$tmp/second.out" 2>&1 &
cpid=$!; pids+=($cpid)
exec 9> "$tmp/hold"

# A second vmm on a socket the first one listens on: one line, exit 2, and
# the first one's socket stays.
"$vmm" --kernel "$images/spin.elf" --memory 64M --serial off --qmp "unix:$tmp/vmm.sock" > "$tmp/b.out" 2> "$tmp/b.err"
bst=$?
ok "a second vmm on a socket in use: exit 2, one line naming --qmp" "$([ $bst = 2 ] && [ "$(wc -l < "$tmp/b.err")" = 1 ] &&
    grep -q -- "--qmp unix:$tmp/vmm.sock: .*another process listens on it" "$tmp/b.err" && [ -S "$tmp/vmm.sock" ] ||
    { echo "status $bst"; cat "$tmp/b.err"; ls -l "$tmp"; })"

# Garbage and oversized input on clients of their own: each gets error lines
# and is dropped (or closes), and vmm serves the rest as before.
head -c 65536 /dev/urandom > "$tmp/garbage"
"$client" --raw "$tmp/vmm.sock" < "$tmp/garbage" > "$tmp/garbage.out" 2>&1
gst=$?
{ printf '{"execute": "qmp_capabilities", "id": "'; head -c 2000000 /dev/zero | tr '\0' x; } > "$tmp/big"
"$client" --raw "$tmp/vmm.sock" < "$tmp/big" > "$tmp/big.out" 2>&1
bst2=$?
ok "garbage and a 2 MB object: error lines, then the connection ends" "$([ $gst = 0 ] && [ $bst2 = 0 ] &&
    grep -q '"class": "GenericError"' "$tmp/garbage.out" &&
    grep -qF 'JSON input exceeds 1048576 bytes without a complete object; closing the connection' "$tmp/big.out" &&
    kill -0 $vpid || { echo "client status $gst / $bst2"; head -c 600 "$tmp/garbage.out"; tail -n 2 "$tmp/big.out"; })"

# query-commands on its own client: the server's commands are all listed.
printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "query-commands"}' | "$client" "$tmp/vmm.sock" \
    > "$tmp/cmds.out" 2>&1
missing=
for c in qmp_capabilities query-version query-commands query-name query-uuid quit; do
    grep -q "{\"name\": \"$c\"}" "$tmp/cmds.out" || missing+=" $c"
done
ok "query-commands lists the server's commands" "$([ -z "$missing" ] || echo "missing:$missing"; [ -z "$missing" ] || cat "$tmp/cmds.out")"

# The guest is up before quit (so "the guest ran" below does not race it).
i=0; while ! grep -q 'halting forever' "$tmp/serial" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
"$client" "$tmp/vmm.sock" < "$tmp/script" > "$tmp/vmm.out" 2> "$tmp/client.err"
cst=$?
wait_exit $vpid
exec 9>&-
wait_exit $cpid

ok "the transcript ran to the end (client status 0)" "$([ $cst = 0 ] || { echo "status $cst"; cat "$tmp/client.err"; })"
ok "every message ends in \\r\\n" "$(grep -h '^NO-CRLF' "$tmp/vmm.out" "$tmp/cmds.out" "$tmp/second.out")"
greet='{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "vmm-[0-9.]+"}, "capabilities": \["oob"\]}}'
ok "greeting" "$(head -n 1 "$tmp/vmm.out" | grep -Ev "^$greet\$")"
ok "a command before qmp_capabilities: CommandNotFound with the id" \
    "$(sed -n 2p "$tmp/vmm.out" | grep -vFx '{"id": 1, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with '"'"'qmp_capabilities'"'"'"}}')"
ok "query-uuid gives --uuid" "$(grep -qF "{\"return\": {\"UUID\": \"$uuid\"}}" "$tmp/vmm.out" || echo "not in: $(cat "$tmp/vmm.out")")"
ok "query-name gives --name, id echoed" "$(grep -qF '{"return": {"name": "e2e"}, "id": {"nested": [1, 2]}}' "$tmp/vmm.out" || echo "not in: $(cat "$tmp/vmm.out")")"
ok "quit: SHUTDOWN host-qmp-quit then the reply" "$(tail -n 2 "$tmp/vmm.out" | mask | diff - <(printf '%s\n' \
    '{"timestamp": {"seconds": S, "microseconds": U}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}' \
    '{"return": {}, "id": "bye"}'))"
ok "vmm exits 0 after quit" "$([ "$st" = 0 ] || echo "status $st; stderr: $(cat "$tmp/vmm.err")")" 2>/dev/null
ok "the other client got SHUTDOWN" "$(grep -q '"event": "SHUTDOWN"' "$tmp/second.out" || cat "$tmp/second.out")"
ok "both socket files are gone" "$(ls "$tmp"/*.sock 2>/dev/null)"
ok "the guest ran" "$(grep -q 'halting forever' "$tmp/serial" || echo "serial: $(cat "$tmp/serial")")"

# libvirt's way: an inherited listening socket as fd 3 (and wait=on).
"$client" --listen-fd 3 "$tmp/lib.sock" "$vmm" --kernel "$images/spin.elf" --memory 64M \
    --serial file="$tmp/serial2" --qmp fd=3,wait=on 2> "$tmp/vmm2.err" &
vpid=$!; pids+=($vpid)
wait_path "$tmp/lib.sock"
i=0; while ! grep -q 'waiting for a QMP connection' "$tmp/vmm2.err" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
# A vmm that ignored wait=on would have printed the guest's line by now: the
# guest needs well under a second (the sleep only gives a broken vmm time to
# show it; a correct one passes whatever the timing).
sleep 1
before=$(cat "$tmp/serial2" 2>/dev/null)
printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "quit"}' | "$client" "$tmp/lib.sock" > "$tmp/lib.out" 2>&1
wait_exit $vpid
ok "fd=3,wait=on: greeting, quit, exit 0" "$([ "$st" = 0 ] && grep -q '"reason": "host-qmp-quit"' "$tmp/lib.out" || { echo "status $st"; cat "$tmp/lib.out" "$tmp/vmm2.err"; })"
ok "fd=3,wait=on: no guest output before a client connected" "$([ -z "$before" ] || echo "serial before: $before")"
ok "fd=3: vmm left the socket file it did not create" "$([ -S "$tmp/lib.sock" ] || echo "gone")"

# The oracle: the same transcript against QEMU 7.2.
if ! command -v qemu-system-x86_64 > /dev/null; then
    echo "ok $((n + 1)) - QEMU 7.2 gives the same transcript # SKIP qemu-system-x86_64 is not installed"
    n=$((n + 1))
else
    qemu-system-x86_64 -machine none -display none -nodefaults -name e2e -uuid "$uuid" \
        -qmp "unix:$tmp/qemu.sock,server=on,wait=off" > "$tmp/qemu.err" 2>&1 &
    qpid=$!; pids+=($qpid)
    wait_path "$tmp/qemu.sock"
    "$client" "$tmp/qemu.sock" < "$tmp/script" > "$tmp/qemu.out" 2>&1
    wait_exit $qpid
    ok "QEMU 7.2 gives the same transcript" "$(diff <(mask < "$tmp/qemu.out") <(mask < "$tmp/vmm.out"))"
fi
[ "$n" = 19 ] || { echo "not ok $((n + 1)) - the plan said 19 tests, ran $n"; exit 1; }
[ "$failed" = 0 ]
