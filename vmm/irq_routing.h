/* irq_routing: the single owner of KVM's GSI routing table.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so every user of GSI routes
 * (the IOAPIC's 24 pins, MSI-X vectors) goes through here and the table is
 * rebuilt from all of them on every change. GSIs 0..IOAPIC_NUM_PINS-1 are the
 * IOAPIC pins; MSI routes are allocated from IOAPIC_NUM_PINS up.
 *
 * With a split irqchip a pin route is an MSI route built from its redirection
 * entry (KVM then knows which vectors are level-triggered); with KVM's
 * in-kernel irqchip the pins keep KVM's default PIC/IOAPIC routes.
 *
 * Thread-safe; callers may hold their own lock across these calls (the
 * IOAPIC does), but no callback of this module takes a caller's lock. */
#ifndef VMM_IRQ_ROUTING_H
#define VMM_IRQ_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

struct kvm_irq_routing;
struct irq_routing;

#define IRQ_ROUTING_MAX_GSI 1024    /* pins + MSI routes; KVM allows 4096 */

struct irq_msi_msg {
    uint64_t addr;
    uint32_t data;
};

/* The KVM side, replaceable for unit tests. Each returns 0 or -errno. */
struct irq_routing_backend {
    int (*set_routing)(void *opaque, const struct kvm_irq_routing *table);
    int (*irqfd)(void *opaque, int fd, unsigned gsi, bool assign);
    int (*signal_msi)(void *opaque, const struct irq_msi_msg *msg);
    void *opaque;
};

/* vm_fd is used by the default backend (KVM ioctls). split: pins are MSI
 * routes (split irqchip) rather than KVM's in-kernel PIC/IOAPIC routes. */
struct irq_routing *irq_routing_create(int vm_fd, bool split);
/* Replaces the KVM backend; for tests. Call before any other use. */
void irq_routing_set_backend(struct irq_routing *r, const struct irq_routing_backend *be);
void irq_routing_destroy(struct irq_routing *r);

/* Split irqchip only: sets the MSI route of IOAPIC pin `pin` (gsi = pin)
 * and commits the table. Returns 0 or -errno. */
int irq_routing_set_pin(struct irq_routing *r, unsigned pin, const struct irq_msi_msg *msg);
/* Sets all pins at once with one commit (IOAPIC reset and load). */
int irq_routing_set_pins(struct irq_routing *r, const struct irq_msi_msg *msgs, unsigned n);

/* Allocates a GSI for an MSI route (no route until irq_routing_msi_set).
 * Returns the GSI (>= IOAPIC_NUM_PINS) or -ENOSPC. */
int irq_routing_msi_alloc(struct irq_routing *r);
/* Sets (or replaces) the MSI route of an allocated GSI and commits. */
int irq_routing_msi_set(struct irq_routing *r, unsigned gsi, const struct irq_msi_msg *msg);
/* Removes the route and frees the GSI; detach its irqfd first. */
void irq_routing_msi_free(struct irq_routing *r, unsigned gsi);

/* KVM_IRQFD: a write to eventfd `fd` injects `gsi`. Return 0 or -errno. */
int irq_routing_irqfd_attach(struct irq_routing *r, int fd, unsigned gsi);
int irq_routing_irqfd_detach(struct irq_routing *r, int fd, unsigned gsi);
/* KVM_SIGNAL_MSI: delivers one MSI now. Any thread. */
int irq_routing_signal_msi(struct irq_routing *r, const struct irq_msi_msg *msg);

/* Number of routes the last commit handed to the backend (tests, logs). */
unsigned irq_routing_nr_routes(struct irq_routing *r);

#endif
