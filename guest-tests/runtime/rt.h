/* The guest-test runtime: what a freestanding test guest can use.
 *
 * A guest defines main(); the runtime has already normalised its boot
 * protocol into boot_info, set up the IDT, and runs in 64-bit mode with
 * 0..4 GiB identity-mapped (2 MiB pages). Everything talks to the machine
 * through port I/O and MMIO; no SSE/AVX anywhere (guests may run in KVM's
 * instruction emulator). */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- boot ---- */

enum boot_proto {
    BOOT_PVH = 1,       /* ELF PVH note: 32-bit entry, EBX = hvm_start_info */
    BOOT_LINUX64 = 2,   /* bzImage 64-bit entry (+0x200), RSI = boot_params */
    BOOT_LINUX32 = 3,   /* bzImage through our real-mode setup (QEMU), 32-bit entry */
};

#define MEM_RAM      1
#define MEM_MAX      32

struct mem_region {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

struct boot_info {
    enum boot_proto proto;
    const char *cmdline;            /* never NULL */
    unsigned nr_mem;
    struct mem_region mem[MEM_MAX];
    bool mem_truncated;             /* the loader gave more than MEM_MAX entries */
    uint64_t rsdp;                  /* 0 if none was found */
    bool rsdp_from_loader;          /* false: found by scanning 0xE0000..0xFFFFF */
};

extern struct boot_info boot_info;
const char *boot_proto_name(enum boot_proto p);
uint64_t boot_ram_total(void);
/* The highest page below the EBDA that is RAM in the map and holds nothing
 * the loader gave us (command line, boot structures): room for an AP's
 * real-mode trampoline. 0 if there is none. */
uint64_t boot_free_low_page(void);
int main(void);

/* ---- port I/O, MMIO, CPU ---- */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)(uintptr_t)a; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" :: "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti;hlt: an interrupt pending since before the sti still wakes the hlt. */
static inline void irq_wait(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }
__attribute__((noreturn)) void halt_forever(void);

/* ---- strings ---- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* ---- serial console (COM1) ---- */

void serial_putc(char c);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* ---- cmdline: space-separated key=value words ---- */

/* Copies the value of key into buf (NUL-terminated); false if key is absent. */
bool cmdline_get(const char *key, char *buf, size_t len);
/* Decimal value of key; def when absent or not a number. */
uint64_t cmdline_get_u64(const char *key, uint64_t def);
bool cmdline_has(const char *key);

/* ---- TAP on serial, result through the debug-exit port ---- */

void plan(unsigned n);
bool ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* How many ok() tests failed so far. */
unsigned failures(void);
/* Writes 0 to port 0xf4 if every planned test passed, else 1. */
__attribute__((noreturn)) void done(void);
/* (v << 1) | 1 becomes the VMM's exit status. */
__attribute__((noreturn)) void debug_exit(uint8_t v);

/* ---- ACPI ---- */

struct acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
} __attribute__((packed));

struct acpi_gas {
    uint8_t space_id;       /* 0 memory, 1 I/O port */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_MEMORY 0
#define ACPI_GAS_IO     1

/* FADT fields beyond the header, by offset from the table start */
#define FADT_DSDT           40
#define FADT_FLAGS          112
#define FADT_RESET_REG      116
#define FADT_RESET_VALUE    128
#define FADT_X_DSDT         140
#define FADT_SLEEP_CTL      244
#define FADT_SLEEP_STS      256
#define FADT_FLAG_HW_REDUCED (1u << 20)
#define FADT_FLAG_RESET_REG  (1u << 10)

bool acpi_checksum_ok(const void *p, uint32_t len);
/* The RSDP (validated), or NULL. */
const uint8_t *acpi_rsdp(void);
/* nth table with this signature from the XSDT (or RSDT), or NULL. "DSDT" is
 * found through the FADT. Tables whose length is implausible are skipped. */
const struct acpi_header *acpi_find(const char *sig, unsigned nth);
/* Number of XSDT/RSDT entries; *is_xsdt says which root table was used. */
unsigned acpi_root_entries(bool *is_xsdt);
const struct acpi_header *acpi_root_entry(unsigned i);
/* Value of SLP_TYPa in the DSDT's \_S5 package, or -1. */
int acpi_s5_slp_typ(void);
/* Enabled processor-local APIC IDs from the MADT; returns how many (<= max). */
unsigned acpi_madt_cpus(uint8_t *ids, unsigned max);
uint64_t acpi_gas_read(const struct acpi_gas *g);
void acpi_gas_write(const struct acpi_gas *g, uint64_t v);

/* ---- power ---- */

/* ACPI S5 through the FADT sleep control register; returns only on failure. */
void power_off(void);
/* i8042 pulse-reset (0xFE to port 0x64); returns only on failure. */
void reset_i8042(void);
/* FADT reset register; returns only on failure. */
void reset_acpi(void);
/* Busy-waits roughly 2^shift TSC cycles: only for "should never get here". */
void spin_cycles(unsigned shift);

/* ---- interrupts ---- */

struct irq_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*irq_handler_fn)(struct irq_frame *f);
void idt_init(void);
/* Unhandled vectors print the frame and fail the test. */
void irq_set_handler(uint8_t vector, irq_handler_fn fn);

/* ---- local APIC (xAPIC, MMIO) ---- */

#define APIC_ID         0x020
#define APIC_VERSION    0x030
#define APIC_EOI        0x0b0
#define APIC_SVR        0x0f0
#define APIC_ICR_LO     0x300
#define APIC_ICR_HI     0x310
#define APIC_LVT_TIMER  0x320
#define APIC_TIMER_INIT 0x380
#define APIC_TIMER_CUR  0x390
#define APIC_TIMER_DIV  0x3e0

#define APIC_LVT_MASKED   (1u << 16)
#define APIC_TIMER_PERIODIC (1u << 17)

uint64_t apic_base(void);
void apic_enable(void);
uint32_t apic_read(uint32_t reg);
void apic_write(uint32_t reg, uint32_t v);
uint8_t apic_id(void);
void apic_eoi(void);
/* Sends an IPI (ICR low word) to an APIC ID and waits until it is delivered. */
void apic_send_ipi(uint8_t dest, uint32_t icr_lo);

/* ---- PCI: bus 0 through ECAM (runtime/pcicfg.c) ---- */

#define PCI_CAP_VENDOR  0x09
#define PCI_CAP_MSIX    0x11

/* Finds ECAM through the MCFG, else the DSDT's _CBA (QEMU's microvm);
 * false if there is neither. Call first. */
bool pci_init(void);
uint64_t pci_ecam(void);
uint32_t pci_read32(unsigned devfn, unsigned off);
uint16_t pci_read16(unsigned devfn, unsigned off);
uint8_t pci_read8(unsigned devfn, unsigned off);
void pci_write32(unsigned devfn, unsigned off, uint32_t v);
void pci_write16(unsigned devfn, unsigned off, uint16_t v);
void pci_write8(unsigned devfn, unsigned off, uint8_t v);
/* devfn of the first function on bus 0 with this vendor:device, or -1. */
int pci_find(uint16_t vendor, uint16_t device);
/* Offset of the first capability with `id` after `after` (0: from the
 * start), walking the list loop-safely; 0 when there is none. */
unsigned pci_find_cap(unsigned devfn, uint8_t id, unsigned after);
/* Where memory BAR `bar` decodes (64-bit BARs whole), after giving every
 * memory BAR of the function an address below 4 GiB that this guest maps:
 * a BAR nobody assigned (QEMU's microvm has no firmware that enumerates
 * PCIe) or one above 4 GiB is placed in the DSDT's 32-bit PCI window, top
 * down. Memory decode and bus mastering are switched on. 0 on failure. */
uint64_t pci_bar(unsigned devfn, unsigned bar);
/* The first 32-bit memory window of the DSDT's resource templates
 * (DWordMemory) below 4 GiB; false if none. */
bool acpi_pci_window32(uint64_t *base, uint64_t *size);

/* ---- SMP support from the entry code ---- */

/* Real-mode trampoline (copy it to a page below 1 MiB, start an AP with a
 * SIPI whose vector is that page number); the AP arrives in ap_main() in
 * long mode with its own stack. */
extern const uint8_t ap_trampoline_start[], ap_trampoline_end[];
#define AP_MAX 64
void ap_main(void);
/* Each AP start takes the next of AP_MAX stacks; a test that starts APs
 * again after the earlier ones are gone (CPU hotplug) may set it back to 0. */
extern volatile uint32_t ap_stack_next;

#endif
