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

/* The pure parts of the above, for unit tests. The boot GDT: null, 32-bit
 * code, 64-bit code, flat data, then a 16-byte TSS descriptor (VMX needs a
 * usable TR). Linux's 64-bit entry wants __BOOT_CS 0x10 and __BOOT_DS 0x18. */
#define REGS_SEL_CODE32     0x08
#define REGS_SEL_CODE64     0x10
#define REGS_SEL_DATA       0x18
#define REGS_SEL_TSS        0x20
#define REGS_GDT_ENTRIES    6

struct kvm_sregs;
struct kvm_segment;

/* An 8-byte segment descriptor: access byte (P, DPL, S, type), flags nibble (G, D/B, L, AVL). */
uint64_t regs_gdt_entry(uint8_t access, uint8_t flags, uint32_t base, uint32_t limit);
void regs_boot_gdt(uint64_t gdt[REGS_GDT_ENTRIES]);
/* The KVM view of descriptor `desc` loaded through `selector`. */
void regs_segment_from_desc(uint64_t desc, uint16_t selector, struct kvm_segment *seg);
/* Sets segments, GDTR/IDTR, CR0/CR3/CR4 and EFER for entering in `mode`; other fields untouched. */
void regs_boot_sregs(struct kvm_sregs *s, enum boot_entry_mode mode);
/* LVT LINT0 = ExtINT, LINT1 = NMI in a KVM_GET_LAPIC register page (1 KiB). */
void regs_lapic_set_lint(void *apic_regs);

#endif
