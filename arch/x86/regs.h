/* vCPU register state for entering a guest: the boot processor's entry
 * (64-bit Linux, 32-bit PVH/multiboot) and the MSR/FPU/LAPIC defaults every
 * vCPU starts with. */
#ifndef ARCH_X86_REGS_H
#define ARCH_X86_REGS_H

#include <glib.h>
#include <stdint.h>

struct guest_memory;

enum boot_entry_mode {
    BOOT_ENTRY_LINUX64,     /* long mode, identity paging, RSI = boot_params */
    BOOT_ENTRY_PVH32,       /* 32-bit protected mode, paging off, EBX = hvm_start_info */
};

struct boot_entry {
    enum boot_entry_mode mode;
    uint64_t rip;
    uint64_t arg;           /* RSI (LINUX64) or RBX (PVH32) */
};

/* Writes the boot GDT (and, for LINUX64, identity page tables for 0..4 GiB)
 * into guest memory. Call once per boot, before regs_setup_bsp. */
int regs_write_boot_tables(struct guest_memory *gm, enum boot_entry_mode mode);
/* Sets RIP/RSP/RSI/RBX/RFLAGS and segment/control registers of the BSP. */
int regs_setup_bsp(int vcpu_fd, const struct boot_entry *e, GError **err);
/* MSRs, FPU (FCW 0x37f, MXCSR 0x1f80) and LAPIC LVT LINT0=ExtINT, LINT1=NMI.
 * Every vCPU, BSP and APs. */
int regs_setup_common(int vcpu_fd, GError **err);

#endif
