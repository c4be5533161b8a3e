#include "devices/ioapic.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"
#include "vmm/state.h"

#define MMIO_IOREGSEL   0x00
#define MMIO_IOWIN      0x10
#define MMIO_EOI        0x40

#define REG_ID          0x00
#define REG_VER         0x01
#define REG_ARB         0x02
#define REG_REDTBL      0x10    /* entry n: low dword 0x10 + 2n, high 0x11 + 2n */

#define IOAPIC_VERSION  0x20
#define VER_VALUE       (((IOAPIC_NUM_PINS - 1) << 16) | IOAPIC_VERSION)

#define RTE_VECTOR      0xffull
#define RTE_DELMODE_SHIFT 8
#define RTE_DELMODE     (7ull << RTE_DELMODE_SHIFT)
#define RTE_DESTMODE    (1ull << 11)
#define RTE_DELIVS      (1ull << 12)
#define RTE_REMOTE_IRR  (1ull << 14)
#define RTE_LEVEL       (1ull << 15)
#define RTE_MASKED      (1ull << 16)
#define RTE_DEST_SHIFT  56
/* Bits the guest may write: all but delivery status and Remote IRR, and the
 * reserved bits 17-55. */
#define RTE_WRITABLE    (0xff000000000000ffull | RTE_DELMODE | RTE_DESTMODE | (1ull << 13) | RTE_LEVEL | \
                         RTE_MASKED)

#define MSI_ADDR_BASE   0xfee00000u
#define MSI_DATA_ASSERT (1u << 14)
#define MSI_DATA_LEVEL  (1u << 15)

#define IOAPIC_STATE_VERSION 1

struct ioapic {
    struct irq_routing *routing;
    struct bus *mmio;
    uint64_t base;
    void (*msi_hook)(void *opaque, uint64_t addr, uint32_t data);
    void *msi_opaque;

    /* Held across MSI delivery and routing updates: both return without
     * waiting for a vCPU, and holding it keeps deliveries and routing updates
     * in the order the guest caused them. */
    pthread_mutex_t lock;
    uint8_t regsel;
    uint32_t id;
    uint64_t rte[IOAPIC_NUM_PINS];
    uint32_t asserted;      /* pin levels, bit per pin */
};

static void rte_to_msi(uint64_t rte, uint64_t *addr, uint32_t *data)
{
    uint32_t dest = (uint32_t)(rte >> RTE_DEST_SHIFT);
    *addr = MSI_ADDR_BASE | dest << 12 | ((rte & RTE_DESTMODE) ? 1u << 2 : 0);
    *data = (uint32_t)(rte & (RTE_VECTOR | RTE_DELMODE));
    if (rte & RTE_LEVEL)
        *data |= MSI_DATA_LEVEL | MSI_DATA_ASSERT;
}

static void send_msi(struct ioapic *io, uint64_t rte)
{
    struct irq_msi_msg m;
    rte_to_msi(rte, &m.addr, &m.data);
    if (io->msi_hook)
        io->msi_hook(io->msi_opaque, m.addr, m.data);
    else if (io->routing)
        irq_routing_signal_msi(io->routing, &m);
}

/* Mirrors the redirection table into KVM's GSI routing (gsi = pin) so that
 * KVM's split irqchip knows which vectors are level-triggered and exits with
 * KVM_EXIT_IOAPIC_EOI for them. irq_routing merges these with the MSI-X
 * routes into the one table KVM has. */
static void sync_routes(struct ioapic *io)
{
    if (!io->routing)
        return;
    struct irq_msi_msg m[IOAPIC_NUM_PINS];
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        rte_to_msi(io->rte[pin], &m[pin].addr, &m[pin].data);
    irq_routing_set_pins(io->routing, m, IOAPIC_NUM_PINS);
}

/* Delivers a level-triggered pin if it is asserted, unmasked and not already
 * waiting for its EOI. */
static void service_level(struct ioapic *io, unsigned pin)
{
    uint64_t rte = io->rte[pin];
    if (!(rte & RTE_LEVEL) || (rte & (RTE_MASKED | RTE_REMOTE_IRR)) || !(io->asserted & (1u << pin)))
        return;
    io->rte[pin] |= RTE_REMOTE_IRR;
    send_msi(io, rte);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, bool level)
{
    if (!io || pin >= IOAPIC_NUM_PINS)
        return;
    pthread_mutex_lock(&io->lock);
    uint32_t bit = 1u << pin;
    bool was = io->asserted & bit;
    if (level)
        io->asserted |= bit;
    else
        io->asserted &= ~bit;
    uint64_t rte = io->rte[pin];
    if (rte & RTE_LEVEL)
        service_level(io, pin);
    else if (level && !was && !(rte & RTE_MASKED))
        send_msi(io, rte);
    pthread_mutex_unlock(&io->lock);
}

static void eoi_locked(struct ioapic *io, uint8_t vector)
{
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
        uint64_t rte = io->rte[pin];
        if ((rte & RTE_LEVEL) && (rte & RTE_REMOTE_IRR) && (rte & RTE_VECTOR) == vector) {
            io->rte[pin] &= ~RTE_REMOTE_IRR;
            service_level(io, pin);
        }
    }
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
    if (!io)
        return;
    pthread_mutex_lock(&io->lock);
    eoi_locked(io, vector);
    pthread_mutex_unlock(&io->lock);
}

static uint32_t reg_read(const struct ioapic *io, uint8_t reg)
{
    switch (reg) {
    case REG_ID:
    case REG_ARB:       /* arbitration ID: the APIC ID after reset */
        return io->id;
    case REG_VER:
        return VER_VALUE;
    default:
        break;
    }
    unsigned pin = (reg - REG_REDTBL) / 2;
    if (reg < REG_REDTBL || pin >= IOAPIC_NUM_PINS)
        return 0;
    uint64_t rte = io->rte[pin];
    return (reg & 1) ? (uint32_t)(rte >> 32) : (uint32_t)rte;
}

static void reg_write(struct ioapic *io, uint8_t reg, uint32_t v)
{
    if (reg == REG_ID) {
        io->id = v & 0x0f000000u;
        return;
    }
    unsigned pin = (reg - REG_REDTBL) / 2;
    if (reg < REG_REDTBL || pin >= IOAPIC_NUM_PINS)
        return;     /* VER, ARB and unknown registers are read-only */
    uint64_t old = io->rte[pin];
    uint64_t val = (reg & 1) ? ((uint64_t)v << 32) | (old & 0xffffffffu) : (old & ~0xffffffffull) | v;
    uint64_t rte = (val & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
    /* Remote IRR means nothing for an edge pin; Linux relies on switching
     * to edge to clear a stuck one. */
    if (!(rte & RTE_LEVEL))
        rte &= ~RTE_REMOTE_IRR;
    io->rte[pin] = rte;
    if (rte != old)
        sync_routes(io);
    service_level(io, pin);
}

/* The registers are 32 bits wide; narrower or offset accesses see a slice. */
static void ioapic_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    struct ioapic *io = opaque;
    uint64_t reg = offset & ~3ull;
    unsigned shift = (unsigned)(offset & 3) * 8;
    uint32_t v = 0;
    pthread_mutex_lock(&io->lock);
    if (reg == MMIO_IOREGSEL)
        v = io->regsel;
    else if (reg == MMIO_IOWIN)
        v = reg_read(io, io->regsel);
    pthread_mutex_unlock(&io->lock);
    uint64_t out = v >> shift;
    memset(data, 0, size);
    memcpy(data, &out, MIN(size, sizeof(out)));
}

static void ioapic_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct ioapic *io = opaque;
    uint64_t reg = offset & ~3ull;
    unsigned shift = (unsigned)(offset & 3) * 8;
    uint64_t in = 0;
    memcpy(&in, data, MIN(size, sizeof(in)));
    uint32_t mask = size >= 4 ? 0xffffffffu : ((1u << (size * 8)) - 1);
    mask <<= shift;
    uint32_t v = (uint32_t)(in << shift);

    pthread_mutex_lock(&io->lock);
    switch (reg) {
    case MMIO_IOREGSEL:
        io->regsel = (uint8_t)((io->regsel & ~mask) | (v & mask));
        break;
    case MMIO_IOWIN:
        reg_write(io, io->regsel, (reg_read(io, io->regsel) & ~mask) | (v & mask));
        break;
    case MMIO_EOI:
        eoi_locked(io, (uint8_t)v);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&io->lock);
}

static const struct bus_ops ioapic_ops = { .read = ioapic_read, .write = ioapic_write };

static void ioapic_reset(void *dev)
{
    struct ioapic *io = dev;
    pthread_mutex_lock(&io->lock);
    io->regsel = 0;
    io->id = (uint32_t)IOAPIC_ID << 24;
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        io->rte[pin] = RTE_MASKED;
    sync_routes(io);
    pthread_mutex_unlock(&io->lock);
}

static int ioapic_save(void *dev, struct state_writer *w)
{
    struct ioapic *io = dev;
    pthread_mutex_lock(&io->lock);
    state_begin_section(w, "ioapic", IOAPIC_STATE_VERSION);
    state_put_u8(w, io->regsel);
    state_put_u32(w, io->id);
    state_put_u32(w, io->asserted);
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        state_put_u64(w, io->rte[pin]);
    state_end_section(w);
    pthread_mutex_unlock(&io->lock);
    return 0;
}

static int ioapic_load(void *dev, struct state_reader *r)
{
    struct ioapic *io = dev;
    uint32_t version, id = 0, asserted = 0;
    uint8_t regsel = 0;
    uint64_t rte[IOAPIC_NUM_PINS] = { 0 };
    if (state_open_section(r, "ioapic", IOAPIC_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    state_get_u8(r, &regsel);
    state_get_u32(r, &id);
    state_get_u32(r, &asserted);
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        state_get_u64(r, &rte[pin]);
    if (state_close_section(r, NULL) < 0)
        return -EINVAL;
    pthread_mutex_lock(&io->lock);
    io->regsel = regsel;
    io->id = id & 0x0f000000u;
    io->asserted = asserted & ((1u << IOAPIC_NUM_PINS) - 1);
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        io->rte[pin] = rte[pin] & (RTE_WRITABLE | RTE_REMOTE_IRR);
    sync_routes(io);
    pthread_mutex_unlock(&io->lock);
    return 0;
}

static void ioapic_destroy(void *dev)
{
    struct ioapic *io = dev;
    bus_unregister(io->mmio, io->base);
    pthread_mutex_destroy(&io->lock);
    g_free(io);
}

static const struct device_ops ioapic_device_ops = {
    .type = "ioapic",
    .reset = ioapic_reset,
    .save = ioapic_save,
    .load = ioapic_load,
    .destroy = ioapic_destroy,
};

struct ioapic *ioapic_create(struct irq_routing *routing, struct bus *mmio, uint64_t base)
{
    struct ioapic *io = g_new0(struct ioapic, 1);
    io->routing = routing;
    io->mmio = mmio;
    io->base = base;
    pthread_mutex_init(&io->lock, NULL);
    ioapic_reset(io);
    if (bus_register(mmio, base, LAYOUT_IOAPIC_SIZE, &ioapic_ops, io, "ioapic") < 0) {
        pthread_mutex_destroy(&io->lock);
        g_free(io);
        return NULL;
    }
    return io;
}

void ioapic_set_msi_hook(struct ioapic *io, void (*hook)(void *opaque, uint64_t addr, uint32_t data),
                         void *opaque)
{
    pthread_mutex_lock(&io->lock);
    io->msi_hook = hook;
    io->msi_opaque = opaque;
    pthread_mutex_unlock(&io->lock);
}

struct device ioapic_device(struct ioapic *io)
{
    if (!io)
        return (struct device){ 0 };
    return (struct device){ .id = "ioapic", .ops = &ioapic_device_ops, .dev = io };
}
