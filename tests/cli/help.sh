#!/bin/bash
# vmm --help documents every long option the parser accepts (read from the
# longopts table in vmm/config.c, so a new undocumented option fails here),
# and --help / --version exit 0. Emits TAP.
#
# usage: help.sh VMM CONFIG_C
set -u
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/tap.sh"
vmm=$(readlink -f "$1")
config_c=$2

help=$("$vmm" --help 2>/tmp/vmm-help-err.$$)
st=$?
err=$(cat /tmp/vmm-help-err.$$)
rm -f /tmp/vmm-help-err.$$
ok "--help exits 0 and writes nothing on stderr" \
    "$([ "$st" = 0 ] || echo "exit status $st")$([ -z "$err" ] || echo "stderr: $err")"

opts=$(sed -n '/longopts\[\] = {/,/};/p' "$config_c" | grep -o '{ *"[a-z0-9-]*"' | grep -o '[a-z0-9-]*')
ok "the longopts table in vmm/config.c was found" "$([ -n "$opts" ] || echo "no options read from $config_c")"
for o in $opts; do
    ok "--help documents --$o" \
        "$(grep -qE -- "--$o([^a-z0-9-]|\$)" <<<"$help" || echo "--$o is accepted but not in vmm --help")"
done

ver=$("$vmm" --version 2>&1)
st=$?
ok "--version exits 0 and prints a version" \
    "$([ "$st" = 0 ] || echo "exit status $st")$(grep -qE '^vmm [0-9]+\.[0-9]+\.[0-9]+' <<<"$ver" || echo "printed: $ver")"

tap_done
