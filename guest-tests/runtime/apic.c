#include "rt.h"

#define MSR_APIC_BASE       0x1b
#define APIC_BASE_ENABLE    (1ull << 11)
#define APIC_SVR_ENABLE     0x100
#define APIC_SPURIOUS_VEC   0xff
#define ICR_PENDING         (1u << 12)

uint64_t apic_base(void)
{
    return rdmsr(MSR_APIC_BASE) & 0xfffff000ull;
}

uint32_t apic_read(uint32_t reg)
{
    return mmio_read32(apic_base() + reg);
}

void apic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(apic_base() + reg, v);
}

static void spurious(struct irq_frame *f)
{
    (void)f;
}

void apic_enable(void)
{
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE);
    irq_set_handler(APIC_SPURIOUS_VEC, spurious);
    apic_write(APIC_SVR, APIC_SVR_ENABLE | APIC_SPURIOUS_VEC);
}

uint8_t apic_id(void)
{
    return (uint8_t)(apic_read(APIC_ID) >> 24);
}

void apic_eoi(void)
{
    apic_write(APIC_EOI, 0);
}

void apic_send_ipi(uint8_t dest, uint32_t icr_lo)
{
    apic_write(APIC_ICR_HI, (uint32_t)dest << 24);
    apic_write(APIC_ICR_LO, icr_lo);
    while (apic_read(APIC_ICR_LO) & ICR_PENDING)
        cpu_relax();
}
