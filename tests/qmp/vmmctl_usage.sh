#!/bin/bash
# vmmctl without a VM: --help documents every command of its table and the
# exit codes; usage errors are one line and exit 2 before any connection;
# a missing socket, a peer that is not QMP, one that says nothing and one
# that hangs up mid-command give 3, 4, 3 — never a hang. Fake peers are small
# python3 unix-socket servers. Emits TAP.
#
# usage: vmmctl_usage.sh VMMCTL VMMCTL_C
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
unset VMMCTL_SOCKET
vmmctl=$(readlink -f "$1")
src=$2
dir=$(mktemp -d /tmp/vmmctl-usage.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

run() {
    out=$("$vmmctl" "$@" 2>"$dir/err")
    st=$?
    err=$(cat "$dir/err")
}
expect() {
    [ "$st" = "$1" ] || echo "exit status $st, want $1 (stdout: $out) (stderr: $err)"
}
one_line() {   # stderr is exactly one line starting "vmmctl: "
    [ "$(wc -l <<<"$err")" = 1 ] && [[ "$err" == "vmmctl: "* ]] || echo "stderr not one 'vmmctl: ' line: '$err'"
}

run --help
ok "--help exits 0, stdout only" "$(expect 0)$([ -z "$err" ] || echo "stderr '$err'")"
help=$out
cmds=$(sed -n '/commands\[\] = {/,/^};/p' "$src" | grep -oE '^ *\{ "[a-z-]+"' | grep -oE '[a-z-]+' | sort -u)
ok "the command table in vmmctl.c was found" "$([ "$(wc -w <<<"$cmds")" -ge 10 ] || echo "read: $cmds")"
for c in $cmds; do
    ok "--help documents $c" "$(grep -qE "(^|[ |])$c( |$)" <<<"$help" || echo "$c is a command but not in --help")"
done
for code in 0 1 2 3 4 5; do
    ok "--help documents exit code $code" "$(grep -qE "^  $code  " <<<"$help" || echo "no '  $code  ' line")"
done
run --version
ok "--version" "$(expect 0)$(grep -qE '^vmmctl [0-9]+\.[0-9]+\.[0-9]+$' <<<"$out" || echo "printed '$out'")"

# Usage errors: exit 2, one line, and no connection is tried (the socket
# does not exist, which would be 3).
nosock=$dir/none.sock
while IFS='|' read -r what args; do
    eval "set -- $args"
    run "$@"
    ok "usage error: $what" "$(expect 2)$(one_line)"
done <<EOF
no command|-s $nosock
no socket|status
unknown command|-s $nosock frobnicate
unknown global option|-s $nosock --frob status
unknown command option|-s $nosock status --id x
extra argument|-s $nosock status now
add-disk without PATH|-s $nosock add-disk
add-disk --id without a value|-s $nosock add-disk /x --id
add-disk with a bad id|-s $nosock add-disk /x --id 9bad
add-net with a bad MAC|-s $nosock add-net tap0 --mac 52:54:00
remove-device without ID|-s $nosock remove-device
resize-memory with a bad SIZE|-s $nosock resize-memory 12X
resize-memory without SIZE|-s $nosock resize-memory
events --count 0|-s $nosock events --count 0
wait-event without NAME|-s $nosock wait-event
wait-event --match without =|-s $nosock wait-event STOP --match device
qmp without COMMAND|-s $nosock qmp
qmp with JSON-ARGS that are not JSON|-s $nosock qmp query-status '{bad'
qmp with JSON-ARGS that are not an object|-s $nosock qmp query-status '[1]'
--timeout 0|-s $nosock --timeout 0 status
--timeout abc|-s $nosock --timeout abc status
-s without a path|status -s
EOF

run -s "$nosock" status
ok "a socket that does not exist: exit 3" \
    "$(expect 3)$(one_line)$(grep -q "cannot connect to $nosock" <<<"$err" || echo "stderr '$err'")"
VMMCTL_SOCKET=$nosock run status
ok "VMMCTL_SOCKET is the default socket" "$(expect 3)$(grep -q "cannot connect to $nosock" <<<"$err" || echo "stderr '$err'")"

# fake peers: MODE garbage (greets with non-JSON), silent (accepts, says
# nothing), hangup (greets, negotiates, closes on the next command)
peer() {
    python3 - "$1" "$2" <<'PY' &
import socket, sys, os
mode, path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(4)
while True:
    c, _ = s.accept()
    if mode == "garbage":
        c.sendall(b"hello, this is not QMP\r\n")
    elif mode == "hangup":
        c.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        f = c.makefile("rb")
        f.readline()
        c.sendall(b'{"return": {}}\r\n')
        f.readline()
        c.shutdown(socket.SHUT_RDWR)
        c.close()
        continue
    elif mode == "silent":
        pass
    pending = c   # keep it open
PY
    pids+=($!)
    for _ in $(seq 100); do [ -S "$2" ] && break; sleep 0.05; done
}
peer garbage "$dir/garbage.sock"
peer silent "$dir/silent.sock"
peer hangup "$dir/hangup.sock"

run -s "$dir/garbage.sock" --timeout 5 status
ok "a peer that does not speak QMP: exit 3" \
    "$(expect 3)$(one_line)$(grep -q 'not a QMP message' <<<"$err" || echo "stderr '$err'")"
run -s "$dir/silent.sock" --timeout 0.5 status
ok "a peer that never greets: exit 4 after --timeout" \
    "$(expect 4)$(one_line)$(grep -q 'no QMP greeting within 0.5 s' <<<"$err" || echo "stderr '$err'")"
run -s "$dir/hangup.sock" --timeout 5 status
ok "a peer that hangs up mid-command: exit 3" \
    "$(expect 3)$(one_line)$(grep -q 'connection lost while waiting for the reply to query-status' <<<"$err" || echo "stderr '$err'")"

tap_done
