#!/bin/sh
# The mignet lab case, in L1 (busybox sh, iproute2's ip): live migration of
# a Linux L2 with a disk and a NIC between two vmm processes in two network
# namespaces ("hosts" A and B), while a process in L2 streams a counter over
# one TCP connection to a peer in L1's own namespace.
#
#   L1 root ns:  br0 10.0.9.1 -- vA ====veth==== eth0 -- brA 10.0.9.11 -- lab0 (tap, vmm A)
#                             -- vB ====veth==== eth0 -- brB 10.0.9.12 -- lab0 (tap, vmm B)
#
# Each namespace has a persistent tap called lab0 (the same name, so the
# source's --net tap=lab0 is valid at the destination) on a bridge that has
# a veth to br0; vmm opens the existing tap. L2 is 10.0.9.2. The migration
# stream goes from A to B over the veths (tcp:10.0.9.12:4444). The peer
# (busybox nc -l on 10.0.9.1:5000) stamps every line with L1's uptime; once
# the destination has run a while, it asks L2 to finish over the same
# connection. Printed (LAB lines): both vmm's outputs (L2's console, vmm's
# info lines: the source's downtime, the destination's ANNOUNCE_ACK), the
# counters the peer got (gap-free or not, "end" or not), the largest gap
# between two arrivals and the counter after it, L1's TCP reset counters,
# and the marker lines L1 finds in the disk image after the destination
# exited. The namespaces' holders are `unshare -n sleep`, entered with
# busybox nsenter (no mounts needed).
#
# usage: sh mignet.sh VMMCTL BZIMAGE INITRD  (in the runner's directory)
set -u
ctl=$1 bz=$2 initrd=$3
# iproute2's (l1-run puts it there); a plain "ip" is busybox's applet, which
# busybox sh runs in preference to PATH
IP=${MIGNET_IP:-/usr/bin/ip}
say() { echo "LAB $*"; }
up() { read -r t _ < /proc/uptime; echo "$t"; }
lines() { c=$(grep -c '^[0-9.]* n ' peer.log 2>/dev/null); echo "${c:-0}"; }
# waits up to $2 tenths of a second for the command $1 to succeed
waitfor() { i=0; while ! eval "$1" && [ $i -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done; }
resets() {
    awk '/^Tcp:/ { if (!h) { for (i = 2; i <= NF; i++) k[i] = $i; h = 1 } else
        for (i = 2; i <= NF; i++) if (k[i] == "EstabResets") print $i }' /proc/net/snmp
}
# The port br0 forwards MAC $1 to (its fdb, struct __fdb_entry: 16 bytes,
# the MAC then the port number), as the name of that port.
fdb() {
    p=$(od -An -v -tx1 -w16 /sys/class/net/br0/brforward |
        awk -v m="$1" '$1 ":" $2 ":" $3 ":" $4 ":" $5 ":" $6 == m { print $7 + 0; exit }')
    for h in vA vB; do [ "$(($(cat /sys/class/net/$h/brport/port_no)))" = "${p:-x}" ] && echo $h && return; done
    echo none
}
mac=52:54:00:12:34:60
ha='' hb='' v='' d='' nc='' peer=''
cleanup() {
    # shellcheck disable=SC2086 # the pids that were started
    kill -KILL $v $d $nc $peer 2>/dev/null
    kill $ha $hb 2>/dev/null
    $IP link del br0 2>/dev/null
    exec 7>&- 2>/dev/null
    rm -f ctl.fifo peer.fifo mn.sock
}
trap cleanup EXIT

$IP link add vA type veth peer name vA1 2>/dev/null && $IP link del vA ||
    { say "mig_setup=no veth pairs here ($($IP -V 2>&1 | head -n 1))"; exit 1; }
$IP link add br0 type bridge && $IP addr add 10.0.9.1/24 dev br0 && $IP link set br0 up ||
    { say "mig_setup=br0 failed"; exit 1; }
for h in A B; do
    unshare -n sleep 100000 &
    pid=$!
    [ $h = A ] && ha=$pid || hb=$pid
    waitfor "[ \"\$(readlink /proc/$pid/ns/net)\" != \"\$(readlink /proc/self/ns/net)\" ]" 50
    $IP link add v$h type veth peer name eth0 netns "$pid" && $IP link set v$h master br0 up &&
        nsenter -t "$pid" -n sh -c "$IP link set lo up && $IP link add br$h type bridge &&
            $IP link set eth0 master br$h up && $IP tuntap add dev lab0 mode tap && $IP link set lab0 master br$h up &&
            $IP link set br$h up && $IP addr add 10.0.9.1$([ $h = A ] && echo 1 || echo 2)/24 dev br$h" ||
        { say "mig_setup=host $h failed"; exit 1; }
done
say "mig_setup=ok"

# The peer: nc's input is a fifo L1 holds open (fd 7) to say "finish"; what
# it receives goes through another to the loop that stamps each line.
rm -f ctl.fifo peer.fifo peer.log && mkfifo ctl.fifo peer.fifo
r0=$(resets)
nc -l -p 5000 < ctl.fifo > peer.fifo &
nc=$!
while read -r tag n; do read -r t _ < /proc/uptime; echo "$t $tag $n"; done < peer.fifo > peer.log &
peer=$!
exec 7> ctl.fifo

dd if=/dev/zero of=mn.img bs=1M count=64 2>/dev/null
rm -f mn.sock
nsenter -t "$ha" -n vmm --kernel "$bz" --initrd "$initrd" --cpus 2 --memory 256M --log-level info \
    --cmdline 'console=ttyS0 quiet panic=-1 lab=mignet' --disk path=mn.img \
    --net tap=lab0,mac=$mac --qmp unix:mn.sock > mn1.out 2>&1 &
v=$!
nsenter -t "$hb" -n vmm --incoming tcp:10.0.9.12:4444 --log-level info > mn2.out 2>&1 &
d=$!

# L2 streams; some 2 s of it before the move (up to 5 min for L2's boot)
waitfor '[ "$(lines)" -ge 40 ]' 3000
c0=$(lines)
# the destination listens (4444 = 0x115C, state 0A) in B
waitfor "nsenter -t $hb -n grep -q ':115C 00000000:0000 0A' /proc/net/tcp" 100
t0=$(up)
"$ctl" -s mn.sock --timeout 120 migrate tcp:10.0.9.12:4444
rc=$?
say "migrate_status=$rc"
t1=$(up)
# a failed migration: the destination waits for nothing now
[ $rc = 0 ] || kill -KILL "$d"
wait "$v"
say "source_status=$?"
v=
c1=$(lines)
say "fdb_after_move=$(fdb $mac)"
say "migrate_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
# the guest runs on at B: 2 s more of counters, then the peer says finish
waitfor "[ \$(lines) -ge $((c1 + 40)) ]" 600
c2=$(lines)
echo finish >&7
wait "$d"
say "dest_status=$?"
d=
exec 7>&-
wait "$nc"
say "peer_nc=$?"
wait "$peer"
nc='' peer=''
say "peer_lines_before=$c0"
say "peer_lines_during=$((c1 - c0))"
say "peer_lines_after=$((c2 - c1))"
cat mn1.out mn2.out | tr -d '\r' | grep -a -E '^(LAB|vmm)'
# every counter once, in order, from 1, and "end N" after N
awk '$2 == "n" { if ($3 != last + 1) bad++; last = $3 }
     $2 == "end" { e = ($3 == last) }
     END { printf "LAB peer_counters=%d out_of_order=%d end=%d\n", last, bad, e }' peer.log
# the largest gap between two arrivals, and the counter that ended it
awk '$2 == "n" { if (p != "" && $1 - p > g) { g = $1 - p; at = $3 } p = $1 }
     END { printf "LAB peer_max_gap_ms=%d at_counter=%d\n", g * 1000, at }' peer.log
say "l1_estab_resets=$(($(resets) - r0))"
sent=$(tr -d '\r' < mn2.out | sed -n 's/^LAB mig_sent=//p')
got=$(awk '$2 == "n" { last = $3 } END { print last + 0 }' peer.log)
host=$(grep -a -c 'mig-line [0-9]\{6\}' mn.img)
say "host_lines=$host"
# what L2 says it sent, what the peer got and the lines in the image agree
[ -n "$sent" ] && [ "$sent" = "$got" ] && say "peer_got_all_sent"
[ -n "$sent" ] && [ "$sent" = "$host" ] && say "host_lines_are_sent"
rm -f mn.img mn1.out mn2.out peer.log
