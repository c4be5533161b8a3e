/* pci-testdev: a PCI function for guest-tests only (vm.c adds it with
 * --test-exit, never otherwise). IDs 0x1b36:0x7e57 (class 0xff0000,
 * "unassigned"); no driver matches them.
 *
 *   BAR0  4 KiB 32-bit memory   0x00 scratch (rw)
 *                               0x04 write N: raise MSI-X vector N (msix_notify)
 *                               0x08 write N: raise vector N through its irqfd (KVM_IRQFD)
 *                               0x0c doorbell: a 4-byte write signals an ioeventfd bound here
 *                               0x10 read: doorbell writes that came by the ioeventfd since
 *                                    the last read
 *                               0x14 read: doorbell writes that came through vmm instead
 *   BAR1  16 bytes I/O          0x00 scratch (rw)
 *   BAR2  16 KiB 64-bit prefetchable memory: MSI-X table (4 vectors) at 0, PBA at 0x800 */
#ifndef DEVICES_PCI_PCI_TESTDEV_H
#define DEVICES_PCI_PCI_TESTDEV_H

#include "devices/device.h"

struct pci_host;
struct irq_routing;

#define PCI_TESTDEV_VENDOR_ID   0x1b36
#define PCI_TESTDEV_DEVICE_ID   0x7e57
#define PCI_TESTDEV_VECTORS     4

/* Returns the device, plugged into the first free slot, or NULL. */
struct device pci_testdev_create(struct pci_host *host, struct irq_routing *routing);

#endif
