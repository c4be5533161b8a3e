/* lifecycle: the guest end of tests/guest/lifecycle.sh (QMP stop/cont,
 * --paused, system_reset, system_powerdown). Says it is up (once per boot),
 * then counts: "count N" for N = 1, 2, 3... one line about every 2^24 TSC
 * cycles, forever. The GED interrupt (IRQ 5, edge, active high: the DSDT's
 * GED0, the MADT's overrides if any) is routed to a vector through the
 * IOAPIC; its handler reads the GED event register (port 0x604, read clears)
 * as the DSDT's _EVT does. When the power-button bit is set the guest says
 * so and powers off through ACPI S5, as a Linux guest's button driver would
 * make it do. */
#include "rt.h"

#define VEC                 0x45
#define IRQ_GED             5
#define PORT_GED            0x604
#define GED_POWER_BUTTON    (1u << 0)
#define REG_VER             0x01
#define REG_REDIR           0x10
#define RTE_LEVEL           (1u << 15)
#define RTE_LOW             (1u << 13)

static uint64_t ioapic_addr;
static volatile uint32_t ged_events;
static volatile unsigned ged_irqs;

static uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(ioapic_addr, reg);
    return mmio_read32(ioapic_addr + 0x10);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(ioapic_addr, reg);
    mmio_write32(ioapic_addr + 0x10, v);
}

static void on_ged(struct irq_frame *f)
{
    ged_events |= inl(PORT_GED);
    ged_irqs++;
    apic_eoi();
}

/* The IOAPIC pin of ISA IRQ `irq` per the MADT (override or identity), and
 * its RTE polarity/trigger bits. */
static bool route(unsigned irq, unsigned *pin, uint32_t *rte_bits)
{
    const struct acpi_header *m = acpi_find("APIC", 0);
    if (!m)
        return false;
    const uint8_t *p0 = (const uint8_t *)m + sizeof(*m) + 8, *end = (const uint8_t *)m + m->length;
    uint32_t gsi = irq;
    uint16_t flags = 0;
    for (const uint8_t *p = p0; p + 2 <= end && p[1] >= 2 && p + p[1] <= end; p += p[1])
        if (p[0] == 2 && p[1] >= 10 && p[3] == irq) {
            memcpy(&gsi, p + 4, 4);
            memcpy(&flags, p + 8, 2);
        }
    *rte_bits = ((flags & 3) == 3 ? RTE_LOW : 0) | (((flags >> 2) & 3) == 3 ? RTE_LEVEL : 0);
    for (const uint8_t *p = p0; p + 2 <= end && p[1] >= 2 && p + p[1] <= end; p += p[1]) {
        if (p[0] != 1 || p[1] < 12)
            continue;
        uint32_t addr, base;
        memcpy(&addr, p + 4, 4);
        memcpy(&base, p + 8, 4);
        ioapic_addr = addr;
        uint32_t pins = ((ioapic_read(REG_VER) >> 16) & 0xff) + 1;
        if (gsi >= base && gsi < base + pins) {
            *pin = gsi - base;
            return true;
        }
    }
    return false;
}

int main(void)
{
    printf("# lifecycle guest up\n");
    unsigned pin;
    uint32_t bits;
    if (route(IRQ_GED, &pin, &bits)) {
        apic_enable();
        irq_set_handler(VEC, on_ged);
        ioapic_write(REG_REDIR + 2 * pin + 1, (uint32_t)apic_id() << 24);
        ioapic_write(REG_REDIR + 2 * pin, VEC | bits);
        printf("# GED: IRQ %u on IOAPIC pin %u, vector 0x%x\n", IRQ_GED, pin, VEC);
        irq_enable();
    } else {
        printf("# GED: no IOAPIC route for IRQ %u\n", IRQ_GED);
    }
    for (uint64_t n = 1;; n++) {
        printf("count %lu\n", n);
        uint64_t t0 = rdtsc();
        while (rdtsc() - t0 < (1ull << 24))
            cpu_relax();
        if (ged_irqs) {
            irq_disable();
            uint32_t ev = ged_events;
            printf("# GED interrupt %u: events 0x%x\n", ged_irqs, ev);
            ged_irqs = 0;
            ged_events = 0;
            irq_enable();
            if (ev & GED_POWER_BUTTON) {
                printf("# power button: powering off\n");
                power_off();
                printf("# still running after the S5 request\n");
            }
        }
    }
}
