#!/bin/sh
# Disassembles vmm's ACPI tables with iasl (Debian acpica-tools) for several
# vCPU configurations, with and without the PCI host bridge (MCFG, PCI0), and fails on any iasl error or warning. The DSDT is then
# recompiled without optimizations and must give back the very same AML bytes,
# and the disassembly must show the devices and CPUs we emitted.
# (iasl cannot disassemble a binary RSDP; test_acpi checks the RSDP.)
#
#   iasl-check.sh PATH/TO/acpi-dump
set -u
dump=$1
if ! command -v iasl >/dev/null 2>&1; then
    echo "iasl not found: install acpica-tools"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

fail() {
    echo "FAIL [$cfg]: $*"
    failed=1
    cfg_failed=1
}

# Runs iasl in $dir; fails (showing the output) on a non-zero status or any
# error/warning/remark other than the "0 Errors, 0 Warnings, 0 Remarks" summary.
run_iasl() {
    if ! (cd "$dir" && iasl "$@") >"$dir/iasl.out" 2>&1; then
        fail "iasl $* exited with an error:"
        cat "$dir/iasl.out"
        return
    fi
    if grep -v '0 Errors, 0 Warnings, 0 Remarks' "$dir/iasl.out" | grep -Eiq 'error|warning|remark'; then
        fail "iasl $* reported problems:"
        cat "$dir/iasl.out"
    fi
}

expect() {     # expect FILE COUNT PATTERN: PATTERN (fixed string) occurs on COUNT lines
    n=$(grep -cF -- "$3" "$dir/$1")
    [ "$n" -eq "$2" ] || fail "$1: expected $2 lines with '$3', found $n"
}

check() {      # check BOOT MAX SERIAL(0/1) [PCI(0/1), default 1] [HOTPLUG-MASK NR-SLOTS]
    boot=$1 max=$2 serial=$3 pci=${4:-1} hpmask=${5:-} nslots=${6:-31}
    [ "$pci" = 1 ] || nslots=0
    cfg="cpus=$boot max=$max serial=$serial pci=$pci hotplug=${hpmask:-default}"
    cfg_failed=0
    dir="$work/$boot-$max-$serial-$pci-$hpmask"
    args="--cpus $boot --max-cpus $max"
    [ "$serial" = 1 ] || args="$args --no-serial"
    [ "$pci" = 1 ] || args="$args --no-pci"
    [ -z "$hpmask" ] || args="$args --hotplug-slots $hpmask"
    tables="xsdt facp apic dsdt"
    [ "$pci" = 0 ] || tables="$tables mcfg"
    dats=$(for t in $tables; do printf '%s.dat ' "$t"; done)
    # shellcheck disable=SC2086
    if ! "$dump" $args "$dir"; then
        fail "acpi-dump $args failed"
        return
    fi
    for t in $tables; do
        [ -s "$dir/$t.dat" ] || fail "acpi-dump wrote no $t.dat"
    done
    [ "$pci" = 1 ] || [ ! -e "$dir/mcfg.dat" ] || fail "acpi-dump wrote an MCFG with --no-pci"
    # shellcheck disable=SC2086
    run_iasl -d $dats
    run_iasl -e xsdt.dat facp.dat apic.dat -d dsdt.dat
    run_iasl -oa -p recompiled dsdt.dsl
    tail -c +37 "$dir/dsdt.dat" >"$dir/ours.body"
    tail -c +37 "$dir/recompiled.aml" >"$dir/iasl.body" 2>/dev/null
    cmp "$dir/ours.body" "$dir/iasl.body" || fail "DSDT recompiled by iasl -oa differs from ours (header aside)"

    expect facp.dsl 1 'Hardware Reduced (V5) : 1'
    expect facp.dsl 1 'Control Method Power Button (V1) : 1'
    expect facp.dsl 1 'Reset Register Supported (V2) : 1'
    expect facp.dsl 1 'FADT Minor Revision : 03'
    expect facp.dsl 3 'Space ID : 01 [SystemIO]'
    expect apic.dsl "$max" '[Processor Local APIC]'
    expect apic.dsl "$boot" 'Processor Enabled : 1'
    expect apic.dsl "$((max - boot))" 'Runtime Online Capable : 1'
    expect apic.dsl 1 '[I/O APIC]'
    expect apic.dsl 1 '[Interrupt Source Override]'
    expect apic.dsl 1 '[Local APIC NMI]'
    expect xsdt.dsl $((2 + pci)) 'ACPI Table Address'
    expect dsdt.dsl "$serial" 'Device (COM1)'
    expect dsdt.dsl "$serial" 'EisaId ("PNP0501")'
    expect dsdt.dsl 1 'Device (RTC)'
    expect dsdt.dsl 1 'EisaId ("PNP0B00")'
    expect dsdt.dsl 0 'Device (KBD)'
    expect dsdt.dsl 0 'EisaId ("PNP0303")'
    expect dsdt.dsl 1 'Device (PWRB)'
    expect dsdt.dsl 1 'EisaId ("PNP0C0C")'
    expect dsdt.dsl 1 'Device (GED0)'
    expect dsdt.dsl 1 'Name (_HID, "ACPI0013"'
    expect dsdt.dsl 1 'Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )'
    expect dsdt.dsl 1 'OperationRegion (GDST, SystemIO, 0x0604, 0x04)'
    expect dsdt.dsl 1 'Method (_EVT, 1, Serialized)'
    expect dsdt.dsl 1 'Notify (\_SB.PWRB, 0x80)'
    expect dsdt.dsl 1 'Name (\_S5, Package (0x04)'
    cpuhp=0
    [ "$max" -le "$boot" ] || cpuhp=1
    expect dsdt.dsl $((cpuhp * max)) 'Name (_HID, "ACPI0007"'
    expect dsdt.dsl $((cpuhp * max)) 'Name (_MAT, Buffer (0x08)'
    expect dsdt.dsl $((cpuhp * (max - boot))) 'CEJM ('
    expect dsdt.dsl "$cpuhp" 'OperationRegion (CPHR, SystemIO, 0x0CD8, 0x20)'
    expect dsdt.dsl "$cpuhp" 'Method (CSCN, 0, Serialized)'
    expect dsdt.dsl "$cpuhp" '\_SB.CSCN ()'
    [ "$cpuhp" = 0 ] || expect dsdt.dsl 1 "Device (C$(printf %03X $((max - 1))))"
    expect dsdt.dsl "$pci" 'Device (PCI0)'
    expect dsdt.dsl "$pci" 'EisaId ("PNP0A08")'
    expect dsdt.dsl "$pci" 'Name (_CID, EisaId ("PNP0A03")'
    expect dsdt.dsl "$pci" 'Name (_SEG, Zero)'
    expect dsdt.dsl "$pci" 'Name (_BBN, Zero)'
    expect dsdt.dsl "$pci" 'WordBusNumber (ResourceProducer'
    expect dsdt.dsl "$pci" 'WordIO (ResourceProducer'
    expect dsdt.dsl "$pci" 'DWordMemory (ResourceProducer'
    expect dsdt.dsl "$pci" 'QWordMemory (ResourceProducer'
    expect dsdt.dsl "$pci" '0xC0000000,         // Range Minimum'
    expect dsdt.dsl "$pci" '0x0000000100000000, // Range Minimum'
    expect dsdt.dsl "$pci" 'Method (_OSC, 4, NotSerialized)'
    expect dsdt.dsl "$pci" 'ToUUID ("33db4d5b-1ff7-401c-9657-7441c03dd766")'
    hp=0
    [ "$nslots" = 0 ] || hp=1
    expect dsdt.dsl "$hp" 'OperationRegion (PCST, SystemIO, 0x0AE0, 0x20)'
    expect dsdt.dsl "$hp" 'Field (PCST, DWordAcc, NoLock, WriteAsZeros)'
    expect dsdt.dsl "$hp" 'Method (PCNT, 0, Serialized)'
    expect dsdt.dsl "$hp" 'DVNT (PCIU, One)'
    expect dsdt.dsl "$hp" 'DVNT (PCID, 0x03)'
    expect dsdt.dsl "$hp" '\_SB.PCI0.PCNT ()'
    expect dsdt.dsl "$nslots" 'Name (_SUN, '
    # _EJ0: one per PCI slot and per hot-pluggable CPU
    expect dsdt.dsl $((nslots + cpuhp * (max - boot))) 'Method (_EJ0, 1, NotSerialized)'
    expect dsdt.dsl "$nslots" '\_SB.PCI0.B0EJ = 0x'
    expect dsdt.dsl "$nslots" 'Notify (S'
    if [ "$pci" = 1 ]; then
        expect mcfg.dsl 1 'Base Address : 00000000E0000000'
        expect mcfg.dsl 1 'Segment Group Number : 0000'
        expect mcfg.dsl 1 'Start Bus Number : 00'
        expect mcfg.dsl 1 'End Bus Number : 00'
    fi
    [ "$cfg_failed" = 1 ] || echo "ok [$cfg]"
}

check 1 1 1
check 2 2 1
check 4 8 0
check 255 255 1
check 1 255 1
check 2 2 1 0
check 1 1 1 1 0x1c 3
check 1 1 1 1 0 0
exit $failed
