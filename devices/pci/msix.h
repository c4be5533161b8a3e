/* MSI-X (PCI Local Bus 3.0 section 6.8.2): the capability, the vector table
 * and the pending bit array, inside BARs of the function, delivered through
 * irq_routing.
 *
 * Each vector can get a GSI with an MSI route and an eventfd attached to it
 * with KVM_IRQFD (msix_vector_irqfd): an I/O loop writes that eventfd and KVM
 * injects the interrupt without any vmm code running. The route follows the
 * guest's address/data; while a vector is masked (its own mask bit, the
 * function mask, or MSI-X disabled) the irqfd is detached, so writes to the
 * eventfd only count up; on unmask the count becomes a pending bit and the
 * interrupt is delivered then. msix_notify is the same thing for code that
 * has no eventfd of its own: it delivers now or sets the pending bit. */
#ifndef DEVICES_PCI_MSIX_H
#define DEVICES_PCI_MSIX_H

#include <stdbool.h>
#include <stdint.h>

struct pci_device;
struct irq_routing;
struct state_writer;
struct state_reader;
struct msix;

#define MSIX_MAX_VECTORS        2048
#define MSIX_ENTRY_SIZE         16

/* Adds the capability to `d` (before pci_host_add_device) with the table at
 * table_off in BAR table_bar and the PBA at pba_off in BAR pba_bar (offsets
 * 8-byte aligned, both BARs declared and large enough, table and PBA not
 * overlapping). routing may be NULL in tests that only look at the table.
 * Returns NULL on invalid arguments. */
struct msix *msix_create(struct pci_device *d, struct irq_routing *routing, unsigned nr_vectors,
                         unsigned table_bar, uint32_t table_off, unsigned pba_bar, uint32_t pba_off);
void msix_destroy(struct msix *m);

/* Raises `vector`. Any thread. */
void msix_notify(struct msix *m, unsigned vector);
/* The eventfd that raises `vector` (created, routed and attached on first
 * use; owned by msix). Returns the fd or -errno. */
int msix_vector_irqfd(struct msix *m, unsigned vector);

bool msix_enabled(struct msix *m);
bool msix_vector_masked(struct msix *m, unsigned vector);
bool msix_vector_pending(struct msix *m, unsigned vector);
unsigned msix_nr_vectors(const struct msix *m);

/* For pci.c: handles an access in BAR `bar` at `off` if it falls in the
 * table or the PBA; returns whether it did. */
bool msix_bar_read(struct msix *m, unsigned bar, uint64_t off, void *data, unsigned size);
bool msix_bar_write(struct msix *m, unsigned bar, uint64_t off, const void *data, unsigned size);
/* For pci.c: the guest wrote the capability's message control. */
void msix_control_written(struct msix *m);
/* For pci.c: after a machine reset of the function. */
void msix_reset(struct msix *m);

int msix_save(struct msix *m, struct state_writer *w);
int msix_load(struct msix *m, struct state_reader *r);

#endif
