# TAP output for the shell tests, sourced by them:
#   . "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
#
#   ok DESC [REASON]             ok when REASON is empty; else not ok, with
#                                REASON's lines as diagnostics
#   check DESC CMD... [-- FILE...]
#                                ok when CMD succeeds; else not ok, with the
#                                last TAP_TAIL (8) lines of each FILE
#   pass DESC, fail DESC [FILE...]
#   skip DESC                    one check skipped, with the reason
#   skip_all REASON              the whole test skipped (plan 1..0), exits 0
#   tap_done                     the plan 1..N; returns 1 if any check failed
#
# and the bounded waits the tests share (each returns non-zero on timeout
# rather than hanging the test):
#   wait_path PATH [TENTHS]      PATH exists (default 20 s)
#   wait_sock PATH [TENTHS]      PATH is a socket (default 30 s)
#   wait_gone PID [TENTHS]       PID (not necessarily a child) is gone (20 s)
#   wait_exit PID [TENTHS]       our child PID ended, its status in $st
#                                ("hung" and killed after the time, 20 s)
#
# $testlib is this directory, which also holds with-tap (a program with a
# new tap open on a given fd, as libvirt starts its emulator).
n=0 failed=0
TAP_TAIL=${TAP_TAIL:-8}
testlib=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")   # this directory: with-tap...

ok() {
    n=$((n + 1))
    if [ -z "${2:-}" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        printf '%s\n' "$2" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
}
pass() { ok "$1"; }
fail() {
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    local f
    for f in "$@"; do [ -e "$f" ] && tail -n "$TAP_TAIL" "$f" | sed "s|^|#   $(basename "$f"): |"; done
    return 0
}
check() {
    local desc=$1; shift
    local files=() cmd=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do cmd+=("$1"); shift; done
    [ $# -gt 0 ] && { shift; files=("$@"); }
    if "${cmd[@]}"; then pass "$desc"; else fail "$desc" "${files[@]}"; fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
skip_all() { echo "1..0 # SKIP $1"; exit 0; }
tap_done() { echo "1..$n"; [ "$failed" = 0 ]; }

wait_path() {
    local i=0
    while [ ! -e "$1" ] && [ $i -lt "${2:-200}" ]; do sleep 0.1; i=$((i + 1)); done
    [ -e "$1" ]
}
wait_sock() {
    local i=0
    while [ ! -S "$1" ] && [ $i -lt "${2:-300}" ]; do sleep 0.1; i=$((i + 1)); done
    [ -S "$1" ]
}
wait_gone() {
    local i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt "${2:-200}" ]; do sleep 0.1; i=$((i + 1)); done
    ! kill -0 "$1" 2>/dev/null
}
wait_exit() {
    local i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt "${2:-200}" ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$1" 2>/dev/null; then st=hung; kill -KILL "$1"; wait "$1" 2>/dev/null; return 1; fi
    wait "$1"
    st=$?
    return 0
}
