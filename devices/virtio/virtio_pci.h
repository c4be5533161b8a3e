/* virtio-pci modern transport (VIRTIO 1.2, 4.1): puts a struct virtio_device
 * on the PCI bus as a modern-only function.
 *
 * Identity: vendor 0x1af4, device 0x1040 + virtio device ID, revision 1,
 * subsystem 0x1af4:<virtio device ID>, a class per device type. No INTx pin:
 * interrupts are MSI-X only (a driver that leaves MSI-X off or assigns
 * VIRTIO_NO_VECTOR polls the ISR or the used ring).
 *
 * One 32-bit non-prefetchable memory BAR (BAR0) holds everything, one 4 KiB
 * page per structure:
 *
 *   0x0000  COMMON_CFG  struct virtio_pci_common_cfg (4.1.4.3), 0x3c bytes
 *   0x1000  ISR_CFG     one byte, read-to-clear
 *   0x2000  DEVICE_CFG  the device's config space (cap only if it has one)
 *   0x3000  NOTIFY_CFG  queue i at 0x3000 + 4 * i (notify_off_multiplier 4)
 *   0x4000  MSI-X table, num_queues + 1 vectors; the PBA on the next page
 *
 * plus a VIRTIO_PCI_CAP_PCI_CFG window in config space (4.1.4.9). Every
 * register is accessed at its natural width (4.1.3.1; the 64-bit queue
 * addresses as one 8-byte or two 4-byte accesses); anything else is ignored
 * (reads give 0) and logged once per device.
 *
 * Kicks: each queue's notify address has an eventfd bound with
 * pci_device_add_ioeventfd (KVM_IOEVENTFD, any width) and handed to the core
 * with virtio_queue_set_kick_fd, so a kick wakes the device's loop and never
 * runs device code on a vCPU thread. A notify write that still reaches vmm
 * (no KVM, ioeventfd refused) is passed on with virtio_queue_notify.
 *
 * Interrupts: a vector gets its irqfd (msix_vector_irqfd) when the driver
 * assigns it; raising it is then one eventfd write from the loop thread, and
 * KVM injects it. Without irq routing (tests) it goes through msix_notify.
 *
 * Threading: virtio_pci_create and the device's destroy run on vdev->loop's
 * thread (vm creation and teardown do). BAR and config accesses come from
 * vCPU threads and serialise on the transport's lock. */
#ifndef DEVICES_VIRTIO_VIRTIO_PCI_H
#define DEVICES_VIRTIO_VIRTIO_PCI_H

#include <glib.h>

#include "devices/device.h"
#include "devices/virtio/virtio.h"

struct pci_host;
struct pci_device;
struct irq_routing;
struct virtio_pci;

#define VIRTIO_PCI_VENDOR_ID        0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE   0x1040
#define VIRTIO_PCI_REVISION         1

/* Vendor capability cfg_type (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG   1
#define VIRTIO_PCI_CAP_NOTIFY_CFG   2
#define VIRTIO_PCI_CAP_ISR_CFG      3
#define VIRTIO_PCI_CAP_DEVICE_CFG   4
#define VIRTIO_PCI_CAP_PCI_CFG      5

/* BAR0 layout. */
#define VIRTIO_PCI_BAR              0
#define VIRTIO_PCI_COMMON_OFF       0x0000
#define VIRTIO_PCI_COMMON_LEN       0x3c
#define VIRTIO_PCI_ISR_OFF          0x1000
#define VIRTIO_PCI_DEVICE_OFF       0x2000
#define VIRTIO_PCI_NOTIFY_OFF       0x3000
#define VIRTIO_PCI_NOTIFY_MULT      4
#define VIRTIO_PCI_MSIX_OFF         0x4000
#define VIRTIO_PCI_REGION_SIZE      0x1000

/* struct virtio_pci_common_cfg offsets (4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT  0x00
#define VIRTIO_PCI_COMMON_DF        0x04
#define VIRTIO_PCI_COMMON_GFSELECT  0x08
#define VIRTIO_PCI_COMMON_GF        0x0c
#define VIRTIO_PCI_COMMON_MSIX      0x10
#define VIRTIO_PCI_COMMON_NUMQ      0x12
#define VIRTIO_PCI_COMMON_STATUS    0x14
#define VIRTIO_PCI_COMMON_CFGGEN    0x15
#define VIRTIO_PCI_COMMON_Q_SELECT  0x16
#define VIRTIO_PCI_COMMON_Q_SIZE    0x18
#define VIRTIO_PCI_COMMON_Q_MSIX    0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE  0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF    0x1e
#define VIRTIO_PCI_COMMON_Q_DESC    0x20
#define VIRTIO_PCI_COMMON_Q_AVAIL   0x28
#define VIRTIO_PCI_COMMON_Q_USED    0x30
#define VIRTIO_PCI_COMMON_Q_NDATA   0x38
#define VIRTIO_PCI_COMMON_Q_RESET   0x3a

struct virtio_pci_params {
    const char *id;     /* the struct device id, e.g. "virtio-rng" or the user's id=; copied */
    int slot;           /* 1..31, or -1: the first free device number on bus 0 */
    bool hotplug;       /* plugged into a running VM: BARs left for the guest to assign */
    /* Frees the device model once the function is gone (the device's
     * destroy calls it); NULL: the caller frees vdev after virtio_pci_destroy. */
    void (*release)(struct virtio_device *vdev);
};

/* Puts vdev (initialised, queues declared, vdev->loop set unless a test
 * runs everything synchronously) on `host`, and installs itself as vdev's
 * transport. routing may be NULL (tests: interrupts through msix_notify).
 * Returns NULL with *err set when the bus has no free slot or room in its
 * windows. */
struct virtio_pci *virtio_pci_create(struct pci_host *host, struct irq_routing *routing,
                                     struct virtio_device *vdev, const struct virtio_pci_params *p,
                                     GError **err);
/* Unplugs the function, unbinds its kick eventfds and frees the transport,
 * then calls p->release(vdev). Loop thread, vCPUs stopped, with nothing
 * left queued for the loop (see loop_run_calls). */
void virtio_pci_destroy(struct virtio_pci *vp);
/* For vm->devices: save/load (transport, MSI-X table, then the virtio core
 * and device sections) and destroy (virtio_pci_destroy). The function's
 * reset comes from the host bridge, which resets every function. */
struct device virtio_pci_device(struct virtio_pci *vp);
/* The PCI function (tests, diagnostics). */
struct pci_device *virtio_pci_function(struct virtio_pci *vp);

#endif
