/* IOAPIC (82093AA-compatible, 24 pins, version 0x20) in userspace, for KVM's
 * split irqchip: the LAPICs are in the kernel, the IOAPIC here. A pin that
 * fires becomes an MSI (KVM_SIGNAL_MSI) built from its redirection entry;
 * every redirection entry is also mirrored into KVM's GSI routing (through
 * irq_routing, gsi = pin) so that KVM exits with KVM_EXIT_IOAPIC_EOI for
 * level-triggered vectors. */
#ifndef DEVICES_IOAPIC_H
#define DEVICES_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"

struct bus;
struct ioapic;
struct irq_routing;

/* routing may be NULL in unit tests: MSIs then go to msi_hook only. */
struct ioapic *ioapic_create(struct irq_routing *routing, struct bus *mmio, uint64_t base);
void ioapic_set_msi_hook(struct ioapic *io, void (*hook)(void *opaque, uint64_t addr, uint32_t data),
                         void *opaque);
/* Any thread. */
void ioapic_set_irq(struct ioapic *io, unsigned pin, bool level);
/* From a vCPU thread on KVM_EXIT_IOAPIC_EOI. */
void ioapic_eoi(struct ioapic *io, uint8_t vector);
struct device ioapic_device(struct ioapic *io);

#endif
