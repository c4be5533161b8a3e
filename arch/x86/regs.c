#include "arch/x86/regs.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define CR0_PE      (1ULL << 0)
#define CR0_ET      (1ULL << 4)
#define CR0_PG      (1ULL << 31)
#define CR4_PAE     (1ULL << 5)
#define EFER_LME    (1ULL << 8)
#define EFER_LMA    (1ULL << 10)

#define ACCESS_CODE     0x9b    /* present, DPL 0, code, execute/read, accessed */
#define ACCESS_DATA     0x93    /* present, DPL 0, data, read/write, accessed */
#define ACCESS_TSS      0x8b    /* present, DPL 0, system, busy 32/64-bit TSS */
#define FLAGS_32        0xc     /* 4 KiB granularity, 32-bit default size */
#define FLAGS_64        0xa     /* 4 KiB granularity, long mode */
#define TSS_LIMIT       0x67

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_PS  (1ULL << 7)
#define PD_PAGES 4              /* 4 x 512 x 2 MiB = 4 GiB */

#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_MTRR_DEF_TYPE       0x2ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MISC_ENABLE_FAST_STRING 0x1
#define MTRR_DEF_ENABLE_WB      0x806   /* MTRRs enabled, default type write-back */

#define APIC_LVT_LINT0          0x350
#define APIC_LVT_LINT1          0x360
#define APIC_DELIVERY_MASK      0x700
#define APIC_DELIVERY_NMI       0x400
#define APIC_DELIVERY_EXTINT    0x700

uint64_t regs_gdt_entry(uint8_t access, uint8_t flags, uint32_t base, uint32_t limit)
{
    return (uint64_t)(limit & 0xffff) | ((uint64_t)(base & 0xffffff) << 16) | ((uint64_t)access << 40) |
           ((uint64_t)((limit >> 16) & 0xf) << 48) | ((uint64_t)(flags & 0xf) << 52) |
           ((uint64_t)(base >> 24) << 56);
}

void regs_boot_gdt(uint64_t gdt[REGS_GDT_ENTRIES])
{
    memset(gdt, 0, REGS_GDT_ENTRIES * sizeof(gdt[0]));
    gdt[REGS_SEL_CODE32 / 8] = regs_gdt_entry(ACCESS_CODE, FLAGS_32, 0, 0xfffff);
    gdt[REGS_SEL_CODE64 / 8] = regs_gdt_entry(ACCESS_CODE, FLAGS_64, 0, 0xfffff);
    gdt[REGS_SEL_DATA / 8] = regs_gdt_entry(ACCESS_DATA, FLAGS_32, 0, 0xfffff);
    /* The upper half of the 16-byte long-mode TSS descriptor (base 63:32) stays zero. */
    gdt[REGS_SEL_TSS / 8] = regs_gdt_entry(ACCESS_TSS, 0, 0, TSS_LIMIT);
}

void regs_segment_from_desc(uint64_t desc, uint16_t selector, struct kvm_segment *seg)
{
    uint32_t limit = (uint32_t)((desc & 0xffff) | (((desc >> 48) & 0xf) << 16));
    uint8_t access = (uint8_t)(desc >> 40);
    uint8_t flags = (uint8_t)((desc >> 52) & 0xf);
    *seg = (struct kvm_segment){
        .base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24),
        .limit = (flags & 0x8) ? (limit << 12) | 0xfff : limit,
        .selector = selector,
        .type = access & 0xf,
        .s = (access >> 4) & 1,
        .dpl = (access >> 5) & 3,
        .present = (access >> 7) & 1,
        .avl = flags & 1,
        .l = (flags >> 1) & 1,
        .db = (flags >> 2) & 1,
        .g = (flags >> 3) & 1,
    };
}

void regs_boot_sregs(struct kvm_sregs *s, enum boot_entry_mode mode)
{
    uint64_t gdt[REGS_GDT_ENTRIES];
    regs_boot_gdt(gdt);
    uint16_t cs = mode == BOOT_ENTRY_LINUX64 ? REGS_SEL_CODE64 : REGS_SEL_CODE32;
    regs_segment_from_desc(gdt[cs / 8], cs, &s->cs);
    regs_segment_from_desc(gdt[REGS_SEL_DATA / 8], REGS_SEL_DATA, &s->ds);
    s->es = s->fs = s->gs = s->ss = s->ds;
    regs_segment_from_desc(gdt[REGS_SEL_TSS / 8], REGS_SEL_TSS, &s->tr);
    s->gdt.base = LAYOUT_GDT_ADDR;
    s->gdt.limit = sizeof(gdt) - 1;
    s->idt.base = 0;
    s->idt.limit = 0;
    /* Written whole, not OR-ed: the reset value has CD|NW, which would leave caching off. */
    if (mode == BOOT_ENTRY_LINUX64) {
        s->cr0 = CR0_PE | CR0_ET | CR0_PG;
        s->cr3 = LAYOUT_PML4_ADDR;
        s->cr4 = CR4_PAE;
        s->efer = EFER_LME | EFER_LMA;
    } else {
        s->cr0 = CR0_PE | CR0_ET;
        s->cr3 = 0;
        s->cr4 = 0;
        s->efer = 0;
    }
}

int regs_write_boot_tables(struct guest_memory *gm, enum boot_entry_mode mode)
{
    uint64_t gdt[REGS_GDT_ENTRIES];
    regs_boot_gdt(gdt);
    if (guest_memory_write(gm, LAYOUT_GDT_ADDR, gdt, sizeof(gdt)) < 0)
        return -EFAULT;
    if (mode != BOOT_ENTRY_LINUX64)
        return 0;

    uint64_t pml4[512] = { LAYOUT_PDPT_ADDR | PTE_P | PTE_RW };
    uint64_t pdpt[512] = { 0 };
    for (unsigned i = 0; i < PD_PAGES; i++)
        pdpt[i] = (LAYOUT_PD_ADDR + i * GUEST_PAGE_SIZE) | PTE_P | PTE_RW;
    g_autofree uint64_t *pd = g_new(uint64_t, 512 * PD_PAGES);
    for (uint64_t i = 0; i < 512 * PD_PAGES; i++)
        pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
    if (guest_memory_write(gm, LAYOUT_PML4_ADDR, pml4, sizeof(pml4)) < 0 ||
        guest_memory_write(gm, LAYOUT_PDPT_ADDR, pdpt, sizeof(pdpt)) < 0 ||
        guest_memory_write(gm, LAYOUT_PD_ADDR, pd, 512 * PD_PAGES * sizeof(*pd)) < 0)
        return -EFAULT;
    return 0;
}

static int ioctl_fail(GError **err, const char *what)
{
    int e = errno;
    g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "%s: %s", what, g_strerror(e));
    return -1;
}

int regs_setup_bsp(int vcpu_fd, const struct boot_entry *e, GError **err)
{
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return ioctl_fail(err, "KVM_GET_SREGS");
    regs_boot_sregs(&sregs, e->mode);
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
        return ioctl_fail(err, "KVM_SET_SREGS");

    struct kvm_regs regs = { .rflags = 2, .rip = e->rip, .rsp = LAYOUT_BOOT_STACK_TOP };
    if (e->mode == BOOT_ENTRY_LINUX64)
        regs.rsi = e->arg;
    else
        regs.rbx = e->arg;
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
        return ioctl_fail(err, "KVM_SET_REGS");
    return 0;
}

static const struct {
    uint32_t index;
    uint64_t value;
    const char *name;
} boot_msrs[] = {
    { MSR_IA32_SYSENTER_CS, 0, "IA32_SYSENTER_CS" },
    { MSR_IA32_SYSENTER_ESP, 0, "IA32_SYSENTER_ESP" },
    { MSR_IA32_SYSENTER_EIP, 0, "IA32_SYSENTER_EIP" },
    { MSR_STAR, 0, "STAR" },
    { MSR_LSTAR, 0, "LSTAR" },
    { MSR_CSTAR, 0, "CSTAR" },
    { MSR_SYSCALL_MASK, 0, "SYSCALL_MASK" },
    { MSR_KERNEL_GS_BASE, 0, "KERNEL_GS_BASE" },
    { MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING, "IA32_MISC_ENABLE" },
    { MSR_MTRR_DEF_TYPE, MTRR_DEF_ENABLE_WB, "MTRRdefType" },
};

static int set_msrs(int vcpu_fd, GError **err)
{
    const unsigned n = G_N_ELEMENTS(boot_msrs);
    g_autofree struct kvm_msrs *m = g_malloc0(sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    m->nmsrs = n;
    for (unsigned i = 0; i < n; i++)
        m->entries[i] = (struct kvm_msr_entry){ .index = boot_msrs[i].index, .data = boot_msrs[i].value };
    int r = ioctl(vcpu_fd, KVM_SET_MSRS, m);
    if (r < 0)
        return ioctl_fail(err, "KVM_SET_MSRS");
    if ((unsigned)r < n) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "KVM_SET_MSRS: KVM refused MSR %s (0x%x)",
                    boot_msrs[r].name, boot_msrs[r].index);
        return -1;
    }
    return 0;
}

void regs_lapic_set_lint(void *apic_regs)
{
    uint8_t *p = apic_regs;
    uint32_t v;
    memcpy(&v, p + APIC_LVT_LINT0, sizeof(v));
    v = (v & ~APIC_DELIVERY_MASK) | APIC_DELIVERY_EXTINT;
    memcpy(p + APIC_LVT_LINT0, &v, sizeof(v));
    memcpy(&v, p + APIC_LVT_LINT1, sizeof(v));
    v = (v & ~APIC_DELIVERY_MASK) | APIC_DELIVERY_NMI;
    memcpy(p + APIC_LVT_LINT1, &v, sizeof(v));
}

int regs_setup_common(int vcpu_fd, GError **err)
{
    if (set_msrs(vcpu_fd, err) < 0)
        return -1;
    struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
    if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
        return ioctl_fail(err, "KVM_SET_FPU");
    struct kvm_lapic_state lapic;
    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
        return ioctl_fail(err, "KVM_GET_LAPIC");
    regs_lapic_set_lint(lapic.regs);
    if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
        return ioctl_fail(err, "KVM_SET_LAPIC");
    return 0;
}
