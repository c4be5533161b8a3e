/* The PCIe host bridge: PCI segment 0, bus 0, reached through an ECAM window
 * (PCIe base spec 7.2.2: one 4 KiB config space per function at
 * base + (bus << 20 | device << 15 | function << 12)) and through the legacy
 * configuration mechanism #1 at 0xCF8 (address) / 0xCFC-0xCFF (data).
 *
 * Function 00.0 is the host bridge itself: vendor 0x1b36 (Red Hat), device
 * 0x0008, class 0x060000. That pair names a generic, quirk-free PCIe host
 * bridge (QEMU's "gpex"); no guest driver binds to it and no Linux quirk keys
 * on it, which is what a virtual host bridge wants. Devices sit on bus 0 as
 * single-function devices in slots 1..31. Every config read of a function
 * that does not exist (or of a bus other than 0) returns all ones.
 *
 * Like a firmware, pci_host_add_device assigns every BAR an address inside
 * the windows (64-bit BARs above RAM, 32-bit below 4 GiB, I/O in the I/O
 * window); the guest may move them, inside the same windows only. */
#ifndef DEVICES_PCI_PCI_HOST_H
#define DEVICES_PCI_PCI_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/pci/pci.h"

struct bus;

#define PCI_HOST_VENDOR_ID      0x1b36
#define PCI_HOST_DEVICE_ID      0x0008
#define PCI_HOST_CLASS          0x060000
#define PCI_CONFIG_ADDR_PORT    0xcf8
#define PCI_CONFIG_DATA_PORT    0xcfc
#define PCI_MAX_SLOTS           32

struct pci_window {
    uint64_t base;
    uint64_t size;      /* 0: no such window */
};

struct pci_host_config {
    struct pci_window ecam;     /* size: 1 MiB per bus, at least one bus */
    struct pci_window mmio32;
    struct pci_window mmio64;
    struct pci_window io;
};

/* How BAR-relative ioeventfds reach KVM; replaceable for tests. set returns
 * 0 or -errno. */
struct pci_ioeventfd_ops {
    int (*set)(void *opaque, bool pio, uint64_t addr, unsigned len, int fd, bool assign);
    void *opaque;
};

struct pci_host *pci_host_create(struct bus *pio, struct bus *mmio, const struct pci_host_config *cfg);
/* Until this is called, ioeventfds are only remembered (writes reach the
 * devices' bar_write). Call before the guest runs. */
void pci_host_set_ioeventfd_ops(struct pci_host *h, const struct pci_ioeventfd_ops *ops);
/* The KVM implementation (KVM_IOEVENTFD); opaque is (void *)(intptr_t)vm_fd. */
int pci_kvm_ioeventfd(void *opaque, bool pio, uint64_t addr, unsigned len, int fd, bool assign);
/* Plugs `d` into `slot` (1..31) or, with slot < 0, the first free one, and
 * assigns its BARs. Returns the devfn or -EBUSY, -ENOSPC (windows full),
 * -EINVAL. */
int pci_host_add_device(struct pci_host *h, struct pci_device *d, int slot);
/* The same; with assign false the BARs stay 0 (unassigned) for the guest to
 * place, as after a hotplug, where no firmware runs. */
int pci_host_plug_device(struct pci_host *h, struct pci_device *d, int slot, bool assign);
/* Unplugs `d` (BARs unmapped, ioeventfds unbound). vCPUs must be paused
 * (see vmm/bus.h). */
void pci_host_remove_device(struct pci_host *h, struct pci_device *d);
struct device pci_host_device(struct pci_host *h);
/* Bit s set: slot s holds a function (bit 0, the bridge, always). */
uint32_t pci_host_slots_used(struct pci_host *h);
/* Function 0 of `slot` (0: the host bridge), or NULL. With the config lock
 * held (pci_host_lock), as for reading the device's config space. */
struct pci_device *pci_host_slot(struct pci_host *h, unsigned slot);

/* For pci.c: the config lock, the ioeventfd ops (NULL: none), the bus a
 * BAR of this kind lives on, and whether
 * [addr, addr + size) lies inside the matching window. */
void pci_host_lock(struct pci_host *h);
void pci_host_unlock(struct pci_host *h);
const struct pci_ioeventfd_ops *pci_host_ioeventfd_ops(const struct pci_host *h);
struct bus *pci_host_bar_bus(struct pci_host *h, enum pci_bar_type type);
bool pci_host_window_contains(const struct pci_host *h, enum pci_bar_type type, uint64_t addr, uint64_t size);

#endif
