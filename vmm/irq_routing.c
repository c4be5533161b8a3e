#include "vmm/irq_routing.h"

#include <errno.h>
#include <glib.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "vmm/log.h"

#define NR_PIC_PINS 16
#define NR_MSI_GSI  (IRQ_ROUTING_MAX_GSI - IOAPIC_NUM_PINS)

struct irq_routing {
    int vm_fd;
    bool split;
    struct irq_routing_backend be;

    /* Held across the backend's calls so tables reach KVM in the order the
     * changes were made. */
    pthread_mutex_t lock;
    struct irq_msi_msg pins[IOAPIC_NUM_PINS];
    bool allocated[NR_MSI_GSI];
    bool routed[NR_MSI_GSI];
    struct irq_msi_msg msi[NR_MSI_GSI];
    unsigned nr_committed;
};

static int kvm_set_routing(void *opaque, const struct kvm_irq_routing *table)
{
    struct irq_routing *r = opaque;
    return ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, table) < 0 ? -errno : 0;
}

static int kvm_irqfd(void *opaque, int fd, unsigned gsi, bool assign)
{
    struct irq_routing *r = opaque;
    struct kvm_irqfd req = { .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
    return ioctl(r->vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

static int kvm_signal_msi(void *opaque, const struct irq_msi_msg *msg)
{
    struct irq_routing *r = opaque;
    struct kvm_msi msi = { .address_lo = (uint32_t)msg->addr, .address_hi = (uint32_t)(msg->addr >> 32),
                           .data = msg->data };
    /* KVM returns > 0 when delivered and 0 when the guest's LAPIC state
     * blocked it: neither is an error of ours. */
    return ioctl(r->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

struct irq_routing *irq_routing_create(int vm_fd, bool split)
{
    struct irq_routing *r = g_new0(struct irq_routing, 1);
    r->vm_fd = vm_fd;
    r->split = split;
    r->be = (struct irq_routing_backend){ kvm_set_routing, kvm_irqfd, kvm_signal_msi, r };
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void irq_routing_set_backend(struct irq_routing *r, const struct irq_routing_backend *be)
{
    pthread_mutex_lock(&r->lock);
    r->be = *be;
    pthread_mutex_unlock(&r->lock);
}

void irq_routing_destroy(struct irq_routing *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    g_free(r);
}

static struct kvm_irq_routing_entry msi_entry(unsigned gsi, const struct irq_msi_msg *m)
{
    return (struct kvm_irq_routing_entry){
        .gsi = gsi,
        .type = KVM_IRQ_ROUTING_MSI,
        .u.msi = { .address_lo = (uint32_t)m->addr, .address_hi = (uint32_t)(m->addr >> 32), .data = m->data },
    };
}

static struct kvm_irq_routing_entry chip_entry(unsigned gsi, unsigned chip, unsigned pin)
{
    return (struct kvm_irq_routing_entry){
        .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP, .u.irqchip = { .irqchip = chip, .pin = pin },
    };
}

static int commit_locked(struct irq_routing *r)
{
    unsigned max = NR_PIC_PINS + IOAPIC_NUM_PINS + NR_MSI_GSI;
    g_autofree struct kvm_irq_routing *t =
        g_malloc0(sizeof(*t) + max * sizeof(struct kvm_irq_routing_entry));
    unsigned n = 0;
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
        if (r->split) {
            t->entries[n++] = msi_entry(pin, &r->pins[pin]);
            continue;
        }
        /* KVM's own default table for KVM_CREATE_IRQCHIP, which ours replaces. */
        if (pin < NR_PIC_PINS)
            t->entries[n++] = chip_entry(pin, pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, pin % 8);
        t->entries[n++] = chip_entry(pin, KVM_IRQCHIP_IOAPIC, pin);
    }
    for (unsigned i = 0; i < NR_MSI_GSI; i++)
        if (r->routed[i])
            t->entries[n++] = msi_entry(IOAPIC_NUM_PINS + i, &r->msi[i]);
    t->nr = n;
    int ret = r->be.set_routing ? r->be.set_routing(r->be.opaque, t) : 0;
    if (ret < 0) {
        log_warn("KVM_SET_GSI_ROUTING (%u routes): %s", n, g_strerror(-ret));
        return ret;
    }
    r->nr_committed = n;
    return 0;
}

int irq_routing_set_pins(struct irq_routing *r, const struct irq_msi_msg *msgs, unsigned n)
{
    if (!r->split || n > IOAPIC_NUM_PINS)
        return -EINVAL;
    pthread_mutex_lock(&r->lock);
    memcpy(r->pins, msgs, n * sizeof(*msgs));
    int ret = commit_locked(r);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int irq_routing_set_pin(struct irq_routing *r, unsigned pin, const struct irq_msi_msg *msg)
{
    if (!r->split || pin >= IOAPIC_NUM_PINS)
        return -EINVAL;
    pthread_mutex_lock(&r->lock);
    r->pins[pin] = *msg;
    int ret = commit_locked(r);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

static bool msi_gsi_valid(struct irq_routing *r, unsigned gsi)
{
    return gsi >= IOAPIC_NUM_PINS && gsi < IRQ_ROUTING_MAX_GSI && r->allocated[gsi - IOAPIC_NUM_PINS];
}

int irq_routing_msi_alloc(struct irq_routing *r)
{
    int gsi = -ENOSPC;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < NR_MSI_GSI; i++)
        if (!r->allocated[i]) {
            r->allocated[i] = true;
            gsi = (int)(IOAPIC_NUM_PINS + i);
            break;
        }
    pthread_mutex_unlock(&r->lock);
    return gsi;
}

int irq_routing_msi_set(struct irq_routing *r, unsigned gsi, const struct irq_msi_msg *msg)
{
    pthread_mutex_lock(&r->lock);
    int ret = -EINVAL;
    if (msi_gsi_valid(r, gsi)) {
        unsigned i = gsi - IOAPIC_NUM_PINS;
        bool same = r->routed[i] && r->msi[i].addr == msg->addr && r->msi[i].data == msg->data;
        r->routed[i] = true;
        r->msi[i] = *msg;
        ret = same ? 0 : commit_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

void irq_routing_msi_free(struct irq_routing *r, unsigned gsi)
{
    pthread_mutex_lock(&r->lock);
    if (msi_gsi_valid(r, gsi)) {
        unsigned i = gsi - IOAPIC_NUM_PINS;
        bool was_routed = r->routed[i];
        r->allocated[i] = false;
        r->routed[i] = false;
        if (was_routed)
            commit_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
}

static int irqfd(struct irq_routing *r, int fd, unsigned gsi, bool assign)
{
    if (fd < 0 || gsi >= IRQ_ROUTING_MAX_GSI)
        return -EINVAL;
    pthread_mutex_lock(&r->lock);
    int ret = r->be.irqfd ? r->be.irqfd(r->be.opaque, fd, gsi, assign) : 0;
    pthread_mutex_unlock(&r->lock);
    if (ret < 0)
        log_warn("KVM_IRQFD (%s gsi %u): %s", assign ? "attach" : "detach", gsi, g_strerror(-ret));
    return ret;
}

int irq_routing_irqfd_attach(struct irq_routing *r, int fd, unsigned gsi)
{
    return irqfd(r, fd, gsi, true);
}

int irq_routing_irqfd_detach(struct irq_routing *r, int fd, unsigned gsi)
{
    return irqfd(r, fd, gsi, false);
}

int irq_routing_signal_msi(struct irq_routing *r, const struct irq_msi_msg *msg)
{
    /* No lock: KVM_SIGNAL_MSI does not touch the routing table. */
    int ret = r->be.signal_msi ? r->be.signal_msi(r->be.opaque, msg) : 0;
    if (ret < 0)
        log_warn("KVM_SIGNAL_MSI (vector %u): %s", msg->data & 0xff, g_strerror(-ret));
    return ret;
}

unsigned irq_routing_nr_routes(struct irq_routing *r)
{
    pthread_mutex_lock(&r->lock);
    unsigned n = r->nr_committed;
    pthread_mutex_unlock(&r->lock);
    return n;
}
