/* ioapic: an ISA interrupt through the IOAPIC the MADT describes. COM1's
 * "transmitter empty" interrupt (IRQ 4, or its MADT override) is routed to a
 * vector on the BSP; it must arrive once per arming, be acknowledged by
 * reading IIR and EOI'd at the LAPIC. */
#include "rt.h"

#define VEC         0x44
#define ROUNDS      5
#define COM1        0x3f8
#define UART_IER    (COM1 + 1)
#define UART_IIR    (COM1 + 2)
#define UART_MCR    (COM1 + 4)
#define IER_ETBEI   0x02
#define MCR_OUT2    0x08
#define IIR_ID_MASK 0x0f
#define IIR_THRE    0x02
#define REG_VER     0x01
#define REG_REDIR   0x10
#define RTE_MASKED  (1u << 16)
#define RTE_LEVEL   (1u << 15)
#define RTE_LOW     (1u << 13)

static uint64_t ioapic_addr;
static volatile unsigned hits, thre_acks;

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

static void on_com1(struct irq_frame *f)
{
    if ((inb(UART_IIR) & IIR_ID_MASK) == IIR_THRE)
        thre_acks++;
    outb(UART_IER, 0);
    hits++;
    apic_eoi();
}

/* MADT: the IOAPIC serving gsi (its address, *base = its first GSI) and the
 * ISA override for irq (*gsi, *flags), if any. */
static bool madt_route(unsigned irq, uint32_t *gsi, uint16_t *flags, uint32_t *base)
{
    const struct acpi_header *m = acpi_find("APIC", 0);
    if (!m)
        return false;
    const uint8_t *p0 = (const uint8_t *)m + sizeof(*m) + 8, *end = (const uint8_t *)m + m->length;
    *gsi = irq;
    *flags = 0;
    for (const uint8_t *p = p0; p + 2 <= end && p[1] >= 2 && p + p[1] <= end; p += p[1])
        if (p[0] == 2 && p[1] >= 10 && p[3] == irq) {
            memcpy(gsi, p + 4, 4);
            memcpy(flags, p + 8, 2);
        }
    for (const uint8_t *p = p0; p + 2 <= end && p[1] >= 2 && p + p[1] <= end; p += p[1]) {
        if (p[0] != 1 || p[1] < 12)
            continue;
        uint32_t addr, b;
        memcpy(&addr, p + 4, 4);
        memcpy(&b, p + 8, 4);
        ioapic_addr = addr;
        uint32_t pins = ((ioapic_read(REG_VER) >> 16) & 0xff) + 1;
        if (*gsi >= b && *gsi < b + pins) {
            *base = b;
            return true;
        }
    }
    return false;
}

int main(void)
{
    uint32_t gsi = 0, base = 0;
    uint16_t flags = 0;

    plan(5);
    bool routed = madt_route(4, &gsi, &flags, &base);
    ok(routed, "MADT: COM1 IRQ 4 is GSI %u on the IOAPIC at 0x%lx (GSI base %u)", gsi, ioapic_addr, base);
    if (!routed)
        done();
    uint32_t ver = ioapic_read(REG_VER);
    ok((ver & 0xff) >= 0x11 && ((ver >> 16) & 0xff) >= 15, "IOAPIC version 0x%x with %u pins", ver & 0xff,
       ((ver >> 16) & 0xff) + 1);

    apic_enable();
    irq_set_handler(VEC, on_com1);
    uint32_t rte = VEC;
    if ((flags & 3) == 3)                   /* polarity: active low */
        rte |= RTE_LOW;
    if (((flags >> 2) & 3) == 3)            /* trigger: level */
        rte |= RTE_LEVEL;
    unsigned pin = gsi - base;
    ioapic_write(REG_REDIR + 2 * pin + 1, (uint32_t)apic_id() << 24);
    ioapic_write(REG_REDIR + 2 * pin, rte);
    ok(ioapic_read(REG_REDIR + 2 * pin) == rte, "redirection entry %u reads back 0x%x", pin, rte);

    outb(UART_MCR, MCR_OUT2 | 0x03);
    unsigned rounds = 0;
    for (; rounds < ROUNDS; rounds++) {
        unsigned before = hits;
        outb(UART_IER, IER_ETBEI);
        /* bounded, so that a lost interrupt fails instead of hanging */
        uint64_t t0 = rdtsc();
        irq_enable();
        while (hits == before && rdtsc() - t0 < (1ull << 34))
            cpu_relax();
        irq_disable();
        if (hits == before)
            break;
    }
    outb(UART_IER, 0);
    ioapic_write(REG_REDIR + 2 * pin, RTE_MASKED | VEC);
    ok(rounds == ROUNDS && hits == ROUNDS, "%u of %u armings delivered one interrupt each (%u in all)", rounds,
       ROUNDS, hits);
    ok(thre_acks == hits, "IIR said THRE for %u of %u", thre_acks, hits);
    done();
}
