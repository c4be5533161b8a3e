#!/bin/bash
# vmm --help documents every long option the parser accepts (read from the
# longopts table in vmm/config.c, so a new undocumented option fails here),
# and --help / --version exit 0. Emits TAP.
#
# usage: help.sh VMM CONFIG_C
set -u
vmm=$(readlink -f "$1")
config_c=$2
n=0
failed=0
report() {
    n=$((n + 1))
    if [ -z "$2" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        printf '%s\n' "$2" | sed "s|^|# $1: |" >&2
        failed=$((failed + 1))
    fi
}

help=$("$vmm" --help 2>/tmp/vmm-help-err.$$)
st=$?
err=$(cat /tmp/vmm-help-err.$$)
rm -f /tmp/vmm-help-err.$$
report "--help exits 0 and writes nothing on stderr" \
    "$([ "$st" = 0 ] || echo "exit status $st")$([ -z "$err" ] || echo "stderr: $err")"

opts=$(sed -n '/longopts\[\] = {/,/};/p' "$config_c" | grep -o '{ *"[a-z0-9-]*"' | grep -o '[a-z0-9-]*')
report "the longopts table in vmm/config.c was found" "$([ -n "$opts" ] || echo "no options read from $config_c")"
for o in $opts; do
    report "--help documents --$o" \
        "$(grep -qE -- "--$o([^a-z0-9-]|\$)" <<<"$help" || echo "--$o is accepted but not in vmm --help")"
done

ver=$("$vmm" --version 2>&1)
st=$?
report "--version exits 0 and prints a version" \
    "$([ "$st" = 0 ] || echo "exit status $st")$(grep -qE '^vmm [0-9]+\.[0-9]+\.[0-9]+' <<<"$ver" || echo "printed: $ver")"

echo "1..$n"
[ "$failed" = 0 ]
