/* The x86 guest physical memory map, port map and interrupt map: one place.
 *
 * Guest physical memory:
 *   0x0000_0000 .. 0x0009_FBFF  RAM (boot structures below, then free low RAM)
 *   0x0009_FC00 .. 0x000F_FFFF  reserved (EBDA, legacy VGA/ROM hole); ACPI tables live
 *                                 at 0xE0000 so that a guest scanning for the RSDP finds it;
 *                                 a reset stub sits at the reset vector 0xFFFF0
 *   0x0010_0000 .. low_end      RAM (kernel loaded at 1 MiB)
 *   0xC000_0000 .. 0xFFFF_FFFF  32-bit hole: PCI MMIO window, ECAM, IOAPIC, LAPIC
 *   0x1_0000_0000 ..            RAM above 4 GiB when the guest has more than fits below
 *   hotplug base ..             the virtio-mem region (--memory hotplug_size=): at the first
 *                                 1 GiB boundary at or above 4 GiB and the end of RAM, never in
 *                                 e820 (the guest learns of it from the device); its own KVM slot
 *   mmio64 base ..              the 64-bit PCI window: the first 1 GiB boundary above RAM and
 *                                 the hotplug region (vm.c pci_mmio64_base), 64 GiB long
 */
#ifndef ARCH_X86_LAYOUT_H
#define ARCH_X86_LAYOUT_H

#define LAYOUT_GDT_ADDR         0x0500ULL   /* boot GDT (4 entries) */
#define LAYOUT_PML4_ADDR        0x1000ULL   /* identity page tables for 64-bit entry */
#define LAYOUT_PDPT_ADDR        0x2000ULL
#define LAYOUT_PD_ADDR          0x3000ULL   /* 4 pages of 2 MiB PDEs: maps 0..4 GiB */
#define LAYOUT_ZERO_PAGE_ADDR   0x7000ULL   /* Linux boot_params, or PVH hvm_start_info */
#define LAYOUT_PVH_MEMMAP_ADDR  0x8000ULL   /* PVH memory map entries */
#define LAYOUT_PVH_MODLIST_ADDR 0x9000ULL   /* PVH module list (initrd) */
#define LAYOUT_BOOT_STACK_TOP   0x1f000ULL
#define LAYOUT_CMDLINE_ADDR     0x20000ULL
#define LAYOUT_CMDLINE_MAX      0x10000ULL  /* bytes, including the NUL */

#define LAYOUT_EBDA_START       0x9fc00ULL  /* end of usable low RAM */
#define LAYOUT_ACPI_START       0xe0000ULL  /* RSDP first, then the other tables */
#define LAYOUT_ACPI_END         0xffff0ULL  /* the reset vector follows */
#define LAYOUT_RESET_VECTOR     0xffff0ULL  /* F000:FFF0; firmware/reset_vector.c */
#define LAYOUT_HIGH_RAM_START   0x100000ULL /* 1 MiB */
#define LAYOUT_KERNEL_ADDR      0x100000ULL /* bzImage protected-mode code */

#define LAYOUT_MEM_32BIT_GAP    0xc0000000ULL  /* RAM below this, hole above */
#define LAYOUT_PCI_MMIO32_START 0xc0000000ULL
#define LAYOUT_PCI_MMIO32_SIZE  0x20000000ULL
#define LAYOUT_PCIE_ECAM_START  0xe0000000ULL
/* ECAM for bus 0 only: every device sits on the root bus (no bridges), and
 * the MCFG's end bus is what Linux takes as the last bus to probe for peer
 * host bridges (pcibios_fixup_peer_bridges, through CF8/CFC: 16k exits, some
 * 0.75 s of an L2 boot with 256 buses). */
#define LAYOUT_PCIE_ECAM_SIZE   0x100000ULL    /* 1 bus */
#define LAYOUT_IOAPIC_ADDR      0xfec00000ULL
#define LAYOUT_IOAPIC_SIZE      0x1000ULL
#define LAYOUT_LAPIC_ADDR       0xfee00000ULL
#define LAYOUT_4GIB             0x100000000ULL
/* The 64-bit PCI MMIO window (64-bit BARs) starts at the first 1 GiB
 * boundary above RAM and above 4 GiB; 64 GiB stays below a 40-bit
 * physical address space for any RAM size (plus hotplug_size) up to
 * 1 TiB - 70 GiB. */
#define LAYOUT_PCI_MMIO64_ALIGN 0x40000000ULL
/* The virtio-mem hotplug region starts 1 GiB-aligned: a multiple of Linux's
 * x86 memory block size (128 MiB; up to 1 GiB on large machines), which
 * Linux's virtio_mem adds and removes memory in, so no block is lost at the
 * start. guest_memory_hotplug_base() computes it from the RAM size. */
#define LAYOUT_HOTPLUG_ALIGN    0x40000000ULL
#define LAYOUT_PCI_MMIO64_SIZE  0x1000000000ULL

/* I/O ports */
#define LAYOUT_PCI_IO_START     0x1000      /* I/O BAR window: 0x1000..0xFFFF */
#define LAYOUT_PCI_IO_SIZE      0xf000
#define PORT_I8042_DATA         0x60
#define PORT_I8042_CMD          0x64
#define PORT_RTC                0x70        /* 0x70 index, 0x71 data */
#define PORT_DEBUG_EXIT         0xf4        /* QEMU isa-debug-exit compatible */
#define PORT_COM1               0x3f8
#define PORT_ACPI_SLEEP_CTL     0x600       /* FADT SLEEP_CONTROL_REG (1 byte) */
#define PORT_ACPI_SLEEP_STS     0x601       /* FADT SLEEP_STATUS_REG (1 byte) */
#define PORT_ACPI_RESET         0x602       /* FADT RESET_REG (1 byte) */
#define PORT_ACPI_GED           0x604       /* GED event selector (4 bytes, read clears) */
/* Hotplug controllers (issue 5), described in the DSDT and signalled by the GED */
#define PORT_PCI_HOTPLUG        0x0ae0      /* PCI hotplug controller of bus 0 (0x20 bytes) */
#define PORT_PCI_HOTPLUG_LEN    0x20
#define PORT_CPU_HOTPLUG        0x0cd8      /* CPU hotplug controller (0x20 bytes) */
#define PORT_CPU_HOTPLUG_LEN    0x20
#define ACPI_RESET_VALUE        0x01
#define ACPI_S5_SLP_TYP         5           /* SLP_TYP our \_S5 package advertises */

/* Interrupt lines (GSIs on the IOAPIC; ISA IRQs map 1:1) */
#define IRQ_I8042_KBD           1
#define IRQ_COM1                4
#define IRQ_ACPI_GED            5
#define IRQ_RTC                 8
#define IOAPIC_NUM_PINS         24
#define IOAPIC_ID               0           /* its own ID space; QEMU also uses 0 */

/* GED event bits (read from PORT_ACPI_GED) */
#define GED_EVENT_POWER_BUTTON  (1u << 0)
#define GED_EVENT_PCI_HOTPLUG   (1u << 1)   /* the PCI hotplug controller has news */
#define GED_EVENT_CPU_HOTPLUG   (1u << 2)   /* the CPU hotplug controller has news */

#endif
