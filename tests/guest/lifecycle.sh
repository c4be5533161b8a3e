#!/bin/bash
# VM lifecycle under QMP, driven with vmmctl against guest-tests/lifecycle
# (prints "# lifecycle guest up" once per boot, then "count 1", "count 2"...
# forever; powers off when its GED handler sees the power-button bit):
#   - stop/cont: while paused not one byte more of guest output; afterwards
#     the counter goes on from where it stopped, every value once and in
#     order (also over 20 back-to-back stop/cont pairs); query-status follows
#   - -S: nothing runs before cont; query-cpus-fast's thread-ids are vmm's
#     vCPU threads (/proc/PID/task/TID/comm)
#   - system_reset: the guest boots again (its banner twice, the counter from
#     1); while paused, the rebuilt VM stays stopped (prelaunch, as QEMU)
#   - system_powerdown: the GED interrupt carries the power-button bit, the
#     guest powers off, vmm exits 0
#   - guest reset: RESET guest-reset; with --reboot exit SHUTDOWN guest-reset
#     and status 4; SIGTERM: SHUTDOWN host-signal and status 0
# and each run's whole QMP event transcript (a vmmctl events watcher that
# connected first: --qmp ...,wait=on holds the guest until it has). Last, one
# sequence of commands runs on vmm and on QEMU 7.2 (microvm, the oracle):
# the replies, the event transcripts and the boots must be the same. Emits
# TAP; skips where /dev/kvm cannot run a VM.
#
# usage: lifecycle.sh VMM VMMCTL IMAGE_DIR SOURCE_ROOT
set -u
TAP_TAIL=15
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1") vmmctl=$(readlink -f "$2") images=$(readlink -f "$3") srcroot=$4
if ! why=$("$srcroot/tools/kvm-check"); then
    echo "1..0 # SKIP $why"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmm-lifecycle.XXXXXX")
pid= wpid=
trap 'kill -KILL $pid $wpid 2>/dev/null; rm -rf "$tmp"' EXIT
sock=$tmp/qmp.sock esock=$tmp/events.sock   # commands; the event watcher
# Waits up to 30 s for a line matching ERE in FILE (a missing one fails the
# check that follows, it does not hang the test).
wait_line() {
    local i=0
    while ! grep -qaE -- "$1" "$2" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
}
ctl() { "$vmmctl" -s "$sock" --timeout 20 "$@"; }
json() { ctl --json qmp "$@"; }
# Starts vmm (or, with "qemu IMAGE", QEMU) on IMAGE with extra args and two
# QMP sockets: $esock for the event watcher (wait=on: no guest before it
# connects, so it sees every event) and $sock for the commands.
start() {
    local image=$1 engine=vmm; shift
    rm -f "$sock" "$esock" "$tmp"/out "$tmp"/err "$tmp"/events
    if [ "$image" = qemu ]; then
        # the oracle: QEMU's microvm
        engine=qemu image=$1; shift
        qemu-system-x86_64 -M microvm,rtc=on -enable-kvm -m 64 -nodefaults -nographic -serial stdio -L "$tmp/fw" \
            -kernel "$images/$image" -qmp "unix:$esock,server=on,wait=on" -qmp "unix:$sock,server=on,wait=off" "$@" \
            > "$tmp/out" 2> "$tmp/err" < /dev/null &
    else
        "$vmm" --kernel "$images/$image" --memory 64M --serial stdio --qmp "unix:$esock,server=on,wait=on" \
            --qmp "unix:$sock,server=on,wait=off" "$@" > "$tmp/out" 2> "$tmp/err" < /dev/null &
    fi
    pid=$!
    local i=0
    while [ ! -S "$esock" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    # The watcher, connected before any command: vmm has accepted it (two
    # listeners and one client socket); QEMU makes the second socket only
    # once the first has its client (wait=on), and serves one client a
    # socket. A connect between the engine's bind and listen is refused:
    # then the watcher ends at once and goes again.
    local tries=0
    while :; do
        # shellcheck disable=SC2086  # WATCH_FIRST: a command word, or none
        "$vmmctl" -s "$esock" --json --timeout 120 events ${WATCH_FIRST:-} > "$tmp/events" 2> "$tmp/events.err" &
        wpid=$!
        i=0
        while kill -0 "$wpid" 2>/dev/null && ! watching $engine && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        watching $engine && break
        tries=$((tries + 1))
        [ $tries -lt 20 ] || break
        sleep 0.1
    done
}
# The watcher is in: accepted, or it has events already (a guest that
# ends at once may take vmm away before the accept is seen; going again
# then would lose them).
watching() {
    accepted "$1" || [ -s "$tmp/events" ]
}
accepted() {
    if [ "$1" = vmm ]; then
        [ "$(ls -l "/proc/$pid/fd" 2>/dev/null | grep -c 'socket:')" -ge 3 ]
    else
        [ -S "$sock" ]
    fi
}
# Waits for vmm; its status in $status.
finish() {
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    status=$?
    wait "$wpid" 2>/dev/null
    pid= wpid=
}
# The events of the transcript, as "NAME DATA" lines without timestamps.
transcript() {
    sed -E 's/^\{"timestamp":\{[^}]*\},"event":"([A-Z_]+)"(,"data":(.*))?\}$/\1 \3/; s/ $//' "$tmp/events"
}
# The guest's complete lines, with each reboot's banner on a line of its
# own: a reset can cut the line being printed ("count 4# lifecycle guest
# up"), and the end of the VM the last one ("count ").
norm() {
    if [ -s "$tmp/out" ] && [ "$(tail -c 1 "$tmp/out" | od -An -tx1 | tr -d ' ')" != 0a ]; then
        sed '$d' "$tmp/out"
    else
        cat "$tmp/out"
    fi | sed -E 's/^.+(# lifecycle guest up)$/\1/'
}
banners() { norm | grep -c '^# lifecycle guest up'; }
wait_banner_count() {   # N COUNT: the Nth boot has printed "count COUNT"
    local i=0
    while [ -z "$(norm | awk -v n="$1" -v c="count $2" '/^# lifecycle guest up/ { b++ } b == n && $0 == c')" ] &&
        [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
}
# "ok" when the counts after each banner run 1, 2, 3... without a gap or a
# repeat; else the first offending line.
counts_in_order() {
    awk '/^# lifecycle guest up/ { want = 1; next }
         /^count / { if ($2 != want) { print "line " NR ": " $0 " (expected count " want ")"; bad = 1; exit }
                     want++ }
         END { if (!bad) print "ok" }' <(norm)
}
last_count() { grep -a '^count [0-9]*$' "$tmp/out" | tail -n 1 | cut -d' ' -f2; }

echo "1..32"

# ---- stop / cont ----
start lifecycle.elf --cpus 2
wait_line '^count 3$' "$tmp/out"
check "the guest counts" grep -q '^count 3$' "$tmp/out" -- "$tmp/out" "$tmp/err"
check "query-status: running" [ "$(json query-status)" = '{"status":"running","singlestep":false,"running":true}' ]
ctl pause
size1=$(stat -c %s "$tmp/out")
check "query-status after stop: paused" [ "$(ctl status)" = paused ]
sleep 1     # an observation window: a paused guest prints nothing, however long we wait
size2=$(stat -c %s "$tmp/out")
check "not one byte of guest output while paused ($size1 bytes)" [ "$size1" = "$size2" ] -- "$tmp/out"
ctl pause   # idempotent: no second STOP
paused_at=$(last_count)
ctl resume
wait_line "^count $((paused_at + 5))\$" "$tmp/out"
check "after cont the counter goes on past $paused_at" grep -q "^count $((paused_at + 5))\$" "$tmp/out" -- "$tmp/out"
ctl resume  # running: nothing, no event
for i in $(seq 20); do ctl pause && ctl resume || break; done
last=$(last_count)
wait_line "^count $((last + 3))\$" "$tmp/out"
check "20 back-to-back stop/cont pairs: the guest still counts (past $last)" \
    grep -q "^count $((last + 3))\$" "$tmp/out" -- "$tmp/out"
kill -TERM "$pid"
finish
check "SIGTERM: status 0" [ "$status" = 0 ] -- "$tmp/err"
r=$(counts_in_order)
check "every count once and in order across the pauses ($r)" [ "$r" = ok ] -- "$tmp/out"
{ echo "STOP"; echo "RESUME"; for i in $(seq 20); do echo STOP; echo RESUME; done
  echo 'SHUTDOWN {"guest":false,"reason":"host-signal"}'; } > "$tmp/want"
transcript > "$tmp/got"
check "events: STOP, RESUME, 20 x (STOP, RESUME), SHUTDOWN host-signal; none for the repeated stop and cont" \
    cmp -s "$tmp/want" "$tmp/got" -- "$tmp/got" "$tmp/events.err"

# ---- -S, query-cpus-fast ----
start lifecycle.elf --cpus 2 -S
i=0; while [ "$(ctl status 2>/dev/null)" != prelaunch ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "-S: query-status prelaunch" [ "$(json query-status)" = '{"status":"prelaunch","singlestep":false,"running":false}' ]
sleep 0.5   # observation window: nothing may run before cont
check "-S: no guest output before cont" [ ! -s "$tmp/out" ] -- "$tmp/out"
json query-cpus-fast > "$tmp/cpus"
tids_ok=yes
for idx in 0 1; do
    tid=$(grep -oE "\{\"thread-id\":[0-9]+,\"props\":\{\"core-id\":$idx,\"thread-id\":0,\"socket-id\":0\},\"qom-path\":\"/machine/unattached/device\[$idx\]\",\"cpu-index\":$idx,\"target\":\"x86_64\"\}" \
        "$tmp/cpus" | sed -E 's/^\{"thread-id":([0-9]+).*/\1/')
    [ -n "$tid" ] && [ "$(cat "/proc/$pid/task/$tid/comm" 2>/dev/null)" = "vcpu$idx" ] || tids_ok=no
done
check "query-cpus-fast: 2 entries whose thread-ids are vmm's threads vcpu0 and vcpu1" [ $tids_ok = yes ] -- "$tmp/cpus"
ctl resume
wait_line '^count 3$' "$tmp/out"
check "-S: cont starts the guest" grep -q '^count 3$' "$tmp/out" -- "$tmp/out" "$tmp/err"

# ---- system_reset, running and paused ----
ctl reset
wait_banner_count 2 3
check "system_reset: the guest boots again and counts from 1" \
    [ "$(banners)" = 2 ] -- "$tmp/out" "$tmp/err"
check "query-status after system_reset: running" [ "$(ctl status)" = running ]
ctl pause
ctl reset
i=0; while ! grep -q '"RESET"' <(grep -n . "$tmp/events" | tail -n 1) && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "system_reset while paused: prelaunch (as QEMU)" [ "$(ctl status)" = prelaunch ]
size1=$(stat -c %s "$tmp/out")
sleep 0.5   # observation window
check "system_reset while paused: the rebuilt VM does not run" [ "$size1" = "$(stat -c %s "$tmp/out")" ] -- "$tmp/out"
ctl resume
i=0; while [ "$(banners)" != 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check "cont after it: a third boot" [ "$(banners)" = 3 ] -- "$tmp/out"

# ---- system_powerdown ----
wait_banner_count 3 2
ctl powerdown
finish
check "system_powerdown: the guest's GED handler saw the power-button bit" \
    grep -q '^# GED interrupt 1: events 0x1$' "$tmp/out" -- "$tmp/out"
check "system_powerdown: the guest powered off, vmm exit status 0 (got $status)" [ "$status" = 0 ] -- "$tmp/err"
r=$(counts_in_order)
check "every count once and in order in each of the 3 boots ($r)" [ "$r" = ok ] -- "$tmp/out"
cat > "$tmp/want" <<'EOF'
RESUME
RESET {"guest":false,"reason":"host-qmp-system-reset"}
STOP
RESET {"guest":false,"reason":"host-qmp-system-reset"}
RESUME
POWERDOWN
SHUTDOWN {"guest":true,"reason":"guest-shutdown"}
EOF
transcript > "$tmp/got"
check "events: RESUME, RESET, STOP, RESET (host-qmp-system-reset), RESUME, POWERDOWN, SHUTDOWN guest-shutdown" \
    cmp -s "$tmp/want" "$tmp/got" -- "$tmp/got" "$tmp/events.err"

# ---- guest reset ----
# This guest resets at once, so its events would beat a watcher that is
# connected but not yet through qmp_capabilities (events go only to
# negotiated clients; wait=on waits for the connection alone): it starts
# paused and the watcher itself sends cont, after its negotiation.
WATCH_FIRST=cont start reboot.elf --cmdline via=acpi --reboot exit --paused
finish
check "guest reset with --reboot exit: status 4 (got $status)" [ "$status" = 4 ] -- "$tmp/err"
transcript > "$tmp/got"
check "events: RESUME, SHUTDOWN guest-reset" \
    [ "$(tr '\n' ';' < "$tmp/got")" = 'RESUME;SHUTDOWN {"guest":true,"reason":"guest-reset"};' ] -- "$tmp/got"
start reboot.elf --cmdline via=acpi
i=0; while [ "$(grep -c '"RESET"' "$tmp/events" 2>/dev/null)" -lt 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
ctl pause
ctl status > "$tmp/st"
kill -TERM "$pid"
finish
check "a paused reset loop stays paused (prelaunch or paused)" grep -qxE 'prelaunch|paused' "$tmp/st" -- "$tmp/st"
transcript | sort | uniq -c | sed -E 's/^ *//' > "$tmp/got"
check "events: RESET guest-reset at every guest reset, one STOP, SHUTDOWN host-signal" \
    grep -qE '^[0-9]+ RESET \{"guest":true,"reason":"guest-reset"\}$' "$tmp/got" -- "$tmp/got"
others=$(grep -v 'RESET {"guest":true,"reason":"guest-reset"}' "$tmp/got" | tr '\n' ';')
check "guest reset loop: exactly one STOP and one SHUTDOWN host-signal besides" \
    [ "$others" = '1 SHUTDOWN {"guest":false,"reason":"host-signal"};1 STOP;' ] -- "$tmp/got"
check "guest reset loop: SIGTERM while paused: status 0 (got $status)" [ "$status" = 0 ] -- "$tmp/err"
# ---- stop/cont racing guest resets ----
# 30 stop/cont pairs against a guest that resets as fast as it boots: each
# is answered and acts on the VM of the moment (a reset while stopped keeps
# the rebuilt VM stopped), and SIGTERM still ends it. (A stop landing in the
# microseconds between a reset request and the loop handling it, where
# vm_pause must count the ended threads as parked, is not reliably hit.)
start reboot.elf --cmdline via=acpi --cpus 2
i=0; while [ "$(grep -c '"RESET"' "$tmp/events" 2>/dev/null)" -lt 1 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
pairs=0
for i in $(seq 30); do ctl pause && ctl resume || break; pairs=$i; done
kill -TERM "$pid"
finish
check "30 stop/cont pairs racing guest resets all answered ($pairs), SIGTERM status 0 (got $status)" \
    [ "$pairs/$status" = 30/0 ] -- "$tmp/err" "$tmp/events.err"
transcript | grep -v '^RESET {"guest":true,"reason":"guest-reset"}$' | sort | uniq -c | sed -E 's/^ *//' > "$tmp/got"
check "... and the events: 30 STOP, 30 RESUME, SHUTDOWN host-signal besides the resets" \
    [ "$(tr '\n' ';' < "$tmp/got")" = '30 RESUME;1 SHUTDOWN {"guest":false,"reason":"host-signal"};30 STOP;' ] -- "$tmp/got"

# ---- the oracle: one sequence on vmm and on QEMU 7.2 ----
# -S, cont, stop twice, cont twice, system_reset running, then paused, cont,
# quit: every reply and the whole event transcript must be QEMU's.
sequence() {    # ENGINE: vmm or qemu; leaves replies, transcript, status in $tmp/seq-ENGINE.*
    local e=$1
    if [ "$e" = qemu ]; then start qemu lifecycle.elf -smp 2,sockets=1,cores=2 -S; else start lifecycle.elf --cpus 2 -S; fi
    {
        json query-status
        json cont
        wait_banner_count 1 3
        json stop; json stop; json query-status
        json cont; json cont
        wait_banner_count 1 6
        json system_reset
        wait_banner_count 2 2
        json stop; json system_reset
        i=0; while [ "$(ctl status)" != prelaunch ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        json query-status
        json cont
        wait_banner_count 3 2
        json query-status
        json quit
    } > "$tmp/seq-$e.replies" 2>&1
    finish
    cp "$tmp/err" "$tmp/seq-$e.err"
    cp "$tmp/events.err" "$tmp/seq-$e.events.err"
    echo "status $status, boots $(banners)" >> "$tmp/seq-$e.replies"
    transcript > "$tmp/seq-$e.events"
}
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -e /usr/share/qemu/bios-microvm.bin ]; then
    for t in 1 2; do n=$((n + 1)); echo "ok $n # SKIP QEMU (qemu-system-x86_64 with bios-microvm.bin) is not installed"; done
else
    mkdir -p "$tmp/fw"
    cp -L /usr/share/qemu/bios-microvm.bin "$tmp/fw/"
    sequence vmm
    sequence qemu
    check "the same replies as QEMU 7.2 to -S, cont, stop, stop, cont, cont, system_reset, stop, system_reset, cont, quit" \
        cmp -s "$tmp/seq-vmm.replies" "$tmp/seq-qemu.replies" -- "$tmp/seq-vmm.replies" "$tmp/seq-qemu.replies" \
        "$tmp/seq-qemu.err" "$tmp/seq-qemu.events.err"
    check "the same QMP event transcript as QEMU 7.2 for that sequence" \
        cmp -s "$tmp/seq-vmm.events" "$tmp/seq-qemu.events" -- "$tmp/seq-vmm.events" "$tmp/seq-qemu.events"
fi
exit $((failed > 0))
