/* ACPI tables, hardware-reduced (FADT flag HW_REDUCED_ACPI): RSDP, XSDT, FADT,
 * MADT, DSDT and, with a PCI host bridge, MCFG. Built once per boot into guest memory at
 * LAYOUT_ACPI_START; the RSDP comes first so that a guest scanning
 * 0xE0000..0xFFFFF finds it, and its address is also handed to the guest
 * through boot_params.acpi_rsdp_addr / hvm_start_info.rsdp_paddr. */
#ifndef ARCH_X86_ACPI_H
#define ARCH_X86_ACPI_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct guest_memory;

struct acpi_config {
    unsigned nr_cpus_boot;      /* enabled LAPIC entries */
    unsigned nr_cpus_max;       /* further entries, online-capable, for hotplug */
    /* nr_cpus_max entries: which CPUs are present now (boot ones and those
     * hot-added before a reset); NULL: the first nr_cpus_boot. With
     * nr_cpus_max > nr_cpus_boot the DSDT describes every possible CPU
     * (ACPI0007) over the CPU hotplug controller at PORT_CPU_HOTPLUG. */
    const bool *cpu_present;
    bool serial;                /* COM1 in the DSDT */
    bool pci;                   /* MCFG and the PCI0 host bridge in the DSDT */
    uint64_t pci_mmio64_base;   /* the 64-bit window in PCI0's _CRS (size 0: none) */
    uint64_t pci_mmio64_size;
    uint32_t pci_hotplug_slots; /* bus 0 slots with an ACPI hotplug Device (devices/acpi_pcihp.h) */
};

/* Builds every table into a buffer that will live at guest address `base`.
 * Pure (unit tests use it): returns the bytes, the RSDP at offset 0. */
GByteArray *acpi_build_tables(const struct acpi_config *c, uint64_t base);

/* Builds and copies the tables into guest memory; *rsdp_gpa gets the RSDP. */
int acpi_install(struct guest_memory *gm, const struct acpi_config *c, uint64_t *rsdp_gpa, GError **err);

#endif
