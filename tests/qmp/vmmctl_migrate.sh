#!/bin/bash
# vmmctl migrate between two vmm processes on this host (unix sockets): the
# snapshot guest (a counter on its serial port) moves and counts on; plain
# progress lines when stdout is not a terminal, --json lines, a destination
# that refuses (exit 1, the reason on one line, the source runs on), and
# --timeout against a peer that never reads (migrate_cancel, then exit 4).
# Emits TAP; skips where /dev/kvm cannot run a VM.
#
# usage: vmmctl_migrate.sh VMM VMMCTL IMAGE_DIR SOURCE_ROOT
set -u
vmm=$(readlink -f "$1") vmmctl=$(readlink -f "$2") images=$(readlink -f "$3") srcroot=$4
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
n=0 failed=0
dir=$(mktemp -d /tmp/vmmctl-mig.XXXXXX)
src= dst= peer=
trap 'kill -KILL $src $dst $peer 2>/dev/null; rm -rf "$dir"' EXIT
check() {
    local desc=$1; shift
    n=$((n + 1))
    if "$@"; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; failed=$((failed + 1))
        echo "# stdout: $(head -c 2000 "$dir/out" | tr '\r' '|')"; echo "# stderr: $(cat "$dir/err")"
    fi
}
wait_sock() { local i=0; while [ ! -S "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; }
counts() { grep -a -c '^count ' "$@" 2>/dev/null | awk -F: '{ s += $NF } END { print s + 0 }'; }
wait_counts() {
    local want=$1 i=0; shift
    while [ "$(cat "$@" 2>/dev/null | grep -a -c '^count ')" -lt "$want" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
}
start_src() {
    rm -f "$dir/s.sock"
    "$vmm" --kernel "$images/snapshot.elf" --memory 32M --serial "file=$dir/src-$1" --qmp "unix:$dir/s.sock" \
        2> "$dir/src-$1.err" < /dev/null &
    src=$!
    wait_sock "$dir/s.sock"
    wait_counts 2 "$dir/src-$1"
}
start_dst() {       # TAG [OPTIONS...]
    local tag=$1; shift
    rm -f "$dir/d.sock" "$dir/mig.sock"
    "$vmm" --incoming "unix:$dir/mig.sock" "$@" --serial "file=$dir/dst-$tag" --qmp "unix:$dir/d.sock" \
        2> "$dir/dst-$tag.err" < /dev/null &
    dst=$!
    wait_sock "$dir/mig.sock"
}
reap() {
    local i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null; wait "$1"; status=$?
}
run() { "$vmmctl" -s "$dir/s.sock" "$@" > "$dir/out" 2> "$dir/err"; st=$?; }

# 1. plain lines (stdout is a file), completed
start_src plain
start_dst plain
run migrate "unix:$dir/mig.sock"
reap "$src"; src=
wait_counts $(($(counts "$dir/src-plain") + 2)) "$dir/src-plain" "$dir/dst-plain"
check "completed: exit 0, progress lines (status, pass, sent, remaining, MiB/s) without \\r, last 'completed', source exit 0" \
    eval '[ "$st" = 0 ] && [ "$status" = 0 ] && [ ! -s "$dir/err" ] && ! grep -q $'"'"'\r'"'"' "$dir/out" &&
          grep -qE "^migrate: (setup|active), pass [0-9]+, sent [0-9.]+ MiB, remaining [0-9.]+ MiB, [0-9.]+ MiB/s$" "$dir/out" &&
          [ "$(tail -n 1 "$dir/out")" = "migrate: completed to unix:$dir/mig.sock" ]'
check "completed: the destination counts on from the source, running" \
    eval 'cat "$dir/src-plain" "$dir/dst-plain" | grep -a "^count " | awk "{ if (\$2 != NR) exit 1 }" &&
          [ "$(grep -a -c "^count " "$dir/dst-plain")" -ge 2 ] &&
          "$vmmctl" -s "$dir/d.sock" status | grep -q running'
kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=

# 2. --json
start_src json
start_dst json
run --json migrate "unix:$dir/mig.sock"
reap "$src"; src=
check "--json: exit 0, every line one JSON object, query-migrate ones then {\"status\": \"completed\"}" \
    eval '[ "$st" = 0 ] && python3 -c "
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1])]
assert len(ls) >= 2 and all(\"ram\" in l for l in ls[:-1]) and ls[-1] == {\"status\": \"completed\"}, ls
" "$dir/out"'
kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=

# 2b. on a terminal (script(1) gives it a pty): redrawn in place
if command -v script > /dev/null; then
    start_src tty
    start_dst tty
    script -qec "$vmmctl -s $dir/s.sock migrate unix:$dir/mig.sock" /dev/null > "$dir/out" 2> "$dir/err"
    st=$?
    reap "$src"; src=
    check "on a terminal: exit 0, the progress line redrawn in place (\\r ... ESC[K), then 'completed' on its own line" \
        eval '[ "$st" = 0 ] && grep -q $'"'"'\rmigrate: [a-z]*, pass [0-9]*, sent .*MiB/s\e\[K'"'"' "$dir/out" &&
              grep -q "^migrate: completed to unix:" <(tr -d "\r" < "$dir/out" | sed "s/\x1b\[K/\n/g")'
    kill -KILL "$dst"; wait "$dst" 2>/dev/null; dst=
else
    n=$((n + 1)); echo "ok $n - on a terminal # SKIP no script(1)"
fi

# 3. the destination refuses (another CPU model)
start_src refuse
start_dst refuse --cpu-model baseline
run migrate "unix:$dir/mig.sock"
reap "$dst"; dst=
c0=$(counts "$dir/src-refuse")
wait_counts $((c0 + 1)) "$dir/src-refuse"
check "refused: exit 1, one line 'migration failed: the destination refused: ... CPU model ...', the source runs on" \
    eval '[ "$st" = 1 ] && [ "$(wc -l < "$dir/err")" = 1 ] &&
          grep -q "^vmmctl: migration failed: the destination refused: .*the source.s CPU model is host" "$dir/err" &&
          kill -0 "$src" && "$vmmctl" -s "$dir/s.sock" status | grep -q running &&
          [ "$(counts "$dir/src-refuse")" -gt "$c0" ]'

# 4. --timeout: a peer that accepts and never reads
rm -f "$dir/fake.sock"
python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); time.sleep(60)" "$dir/fake.sock" &
peer=$!
wait_sock "$dir/fake.sock"
run --timeout 2 migrate "unix:$dir/fake.sock"
c0=$(counts "$dir/src-refuse")
wait_counts $((c0 + 1)) "$dir/src-refuse"
check "--timeout 2 against a peer that never reads: migrate_cancel sent, exit 4, one line; cancelled, the source runs on" \
    eval '[ "$st" = 4 ] && [ "$(wc -l < "$dir/err")" = 1 ] &&
          grep -q "not over after 2 s: cancelled, the source runs on" "$dir/err" &&
          "$vmmctl" -s "$dir/s.sock" qmp query-migrate | grep -q "\"status\":\"cancelled\"" &&
          "$vmmctl" -s "$dir/s.sock" status | grep -q running && [ "$(counts "$dir/src-refuse")" -gt "$c0" ]'

echo "1..$n"
[ "$failed" = 0 ]
