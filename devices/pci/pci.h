/* A PCI function: its 4 KiB configuration space (PCI Local Bus 3.0 type-0
 * header, PCIe extended space above 0x100), BARs and capability list.
 *
 * A device model embeds a struct pci_device (or owns one), fills it with
 * pci_device_init / pci_device_add_bar / pci_device_add_cap, optionally adds
 * MSI-X (devices/pci/msix.h), then hands it to pci_host_add_device.
 *
 * Guest config writes go through per-byte masks: wmask bits are writable,
 * w1cmask bits are cleared by writing 1 (status register), everything else
 * is read-only. The generic code owns the command register and the BARs: when
 * the guest moves a BAR or toggles memory/IO decode, the BAR's bus range is
 * unregistered and re-registered and ops->bar_map tells the device where the
 * BAR now lives (so it can move its ioeventfds). A BAR the guest places
 * outside the host's windows or over another device is left unmapped
 * (logged once) and reported to bar_map as PCI_BAR_UNMAPPED.
 *
 * A device can bind an eventfd to a range of a BAR (pci_device_add_ioeventfd,
 * e.g. a virtio queue's notify register): the PCI layer keeps it registered
 * with KVM (KVM_IOEVENTFD) at wherever the BAR decodes, moving it with the
 * BAR and dropping it while decode is off, so guest writes there signal the
 * eventfd without a VM exit to userspace. Without KVM (no ioeventfd ops on
 * the host, or the assignment failed) the writes reach bar_write as usual.
 *
 * Locking: config accesses are serialized by the host's config lock;
 * config_read, config_write and bar_map run with it held and must not issue
 * config accesses through the host. bar_read/bar_write run on vCPU threads
 * with no PCI lock held. */
#ifndef DEVICES_PCI_PCI_H
#define DEVICES_PCI_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_CFG_SIZE            4096
#define PCI_CFG_LEGACY_SIZE     256     /* reachable through 0xCF8/0xCFC */
#define PCI_NUM_BARS            6
#define PCI_BAR_UNMAPPED        UINT64_MAX

/* Type-0 header registers (PCI Local Bus 3.0 section 6.1) */
#define PCI_CFG_VENDOR_ID       0x00
#define PCI_CFG_DEVICE_ID       0x02
#define PCI_CFG_COMMAND         0x04
#define PCI_CFG_STATUS          0x06
#define PCI_CFG_REVISION        0x08
#define PCI_CFG_CLASS_PROG      0x09    /* prog-if, subclass, class: 3 bytes */
#define PCI_CFG_CACHE_LINE      0x0c
#define PCI_CFG_LATENCY         0x0d
#define PCI_CFG_HEADER_TYPE     0x0e
#define PCI_CFG_BAR0            0x10
#define PCI_CFG_SUBSYS_VENDOR   0x2c
#define PCI_CFG_SUBSYS_ID       0x2e
#define PCI_CFG_CAP_PTR         0x34
#define PCI_CFG_INT_LINE        0x3c
#define PCI_CFG_INT_PIN         0x3d
#define PCI_CFG_CAP_START       0x40    /* first byte after the header */

#define PCI_CMD_IO              (1u << 0)
#define PCI_CMD_MEMORY          (1u << 1)
#define PCI_CMD_BUS_MASTER      (1u << 2)
#define PCI_CMD_PARITY          (1u << 6)
#define PCI_CMD_SERR            (1u << 8)
#define PCI_CMD_INTX_DISABLE    (1u << 10)
#define PCI_STATUS_CAP_LIST     (1u << 4)

#define PCI_BAR_F_IO            0x1u
#define PCI_BAR_F_MEM64         0x4u
#define PCI_BAR_F_PREFETCH      0x8u

#define PCI_CAP_ID_VENDOR       0x09
#define PCI_CAP_ID_PCIE         0x10
#define PCI_CAP_ID_MSIX         0x11

enum pci_bar_type {
    PCI_BAR_NONE,
    PCI_BAR_MEM32,
    PCI_BAR_MEM64,      /* takes this BAR slot and the next */
    PCI_BAR_IO,
};

struct pci_device;
struct pci_host;
struct msix;

struct pci_device_ops {
    /* An access inside BAR `bar` at `off` from its base; size 1, 2, 4 or 8.
     * read must fill all `size` bytes. MSI-X table/PBA accesses never reach
     * here. */
    void (*bar_read)(struct pci_device *d, unsigned bar, uint64_t off, void *data, unsigned size);
    void (*bar_write)(struct pci_device *d, unsigned bar, uint64_t off, const void *data, unsigned size);
    /* Optional: BAR `bar` now decodes at `addr` (PCI_BAR_UNMAPPED: nowhere).
     * Called after the bus range moved, only when the address changed. */
    void (*bar_map)(struct pci_device *d, unsigned bar, uint64_t addr);
    /* Optional: a guest read of [off, off+size) in config space; `val` is
     * what the generic code would return; the result is returned instead. */
    uint32_t (*config_read)(struct pci_device *d, unsigned off, unsigned size, uint32_t val);
    /* Optional: after a guest write to [off, off+size) was applied through
     * the masks (val is what the guest wrote). */
    void (*config_write)(struct pci_device *d, unsigned off, unsigned size, uint32_t val);
    /* Optional: the machine reset; the config space is back at its
     * power-on contents and every BAR already unmapped. */
    void (*reset)(struct pci_device *d);
};

struct pci_bar {
    uint64_t size;              /* power of two; 0: unused */
    enum pci_bar_type type;
    bool prefetch;
    uint64_t mapped;            /* bus base now registered, or PCI_BAR_UNMAPPED */
    bool refused_logged;
    struct pci_device *dev;     /* back pointers: the bus callbacks' opaque is the bar */
    unsigned index;
};

struct pci_ioeventfd {
    unsigned bar;
    uint64_t off;               /* from the BAR's base */
    unsigned len;               /* 0: any access width (KVM_CAP_IOEVENTFD_ANY_LENGTH) */
    int fd;
    uint64_t addr;              /* where it is assigned now, or PCI_BAR_UNMAPPED */
};

struct pci_device {
    const char *name;
    const struct pci_device_ops *ops;
    void *opaque;               /* for the device model */
    uint8_t cfg[PCI_CFG_SIZE];
    uint8_t wmask[PCI_CFG_SIZE];
    uint8_t w1cmask[PCI_CFG_SIZE];
    uint8_t cfg_reset[PCI_CFG_SIZE];    /* power-on contents, taken when added to a host */
    struct pci_bar bar[PCI_NUM_BARS];
    unsigned cap_last;          /* offset of the last capability, 0: none */
    unsigned cap_free;          /* first free byte for the next capability */
    struct msix *msix;
    struct pci_ioeventfd *ioeventfds;
    unsigned nr_ioeventfds;
    struct pci_host *host;      /* set by pci_host_add_device */
    unsigned devfn;
};

/* class_code: base class << 16 | subclass << 8 | prog-if. */
void pci_device_init(struct pci_device *d, const char *name, const struct pci_device_ops *ops, void *opaque,
                     uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision);
void pci_device_set_subsystem(struct pci_device *d, uint16_t vendor, uint16_t id);
/* Declares BAR `bar` of `size` bytes (power of two; at least 16 for memory,
 * 4 for I/O, at most 256 for I/O). A 64-bit BAR also uses slot bar+1.
 * Returns 0 or -EINVAL. Before pci_host_add_device only. */
int pci_device_add_bar(struct pci_device *d, unsigned bar, enum pci_bar_type type, bool prefetch, uint64_t size);
/* Appends a capability of `len` bytes (id and next pointer included) to the
 * list, 4-byte aligned below 0x100, read-only until the caller opens bits
 * with pci_cfg_set_wmask. Returns its offset or -ENOSPC. */
int pci_device_add_cap(struct pci_device *d, uint8_t id, unsigned len);
/* Offset of the first capability with `id` (walking the list as a guest
 * does, loop-safe), or 0. */
unsigned pci_device_find_cap(const struct pci_device *d, uint8_t id);
/* Where BAR `bar` decodes now, or PCI_BAR_UNMAPPED. */
uint64_t pci_device_bar_addr(const struct pci_device *d, unsigned bar);

/* Binds eventfd `fd` to [off, off + len) of BAR `bar` (memory or I/O).
 * Any thread but not from config_read/config_write/bar_map (they run under
 * the lock this takes). Returns 0 or -EINVAL (no such BAR, range outside
 * it, len not 0/1/2/4/8, fd bound already). The fd stays the caller's. */
int pci_device_add_ioeventfd(struct pci_device *d, unsigned bar, uint64_t off, unsigned len, int fd);
/* Unbinds it (deassigned from KVM first). Returns 0 or -ENOENT. */
int pci_device_remove_ioeventfd(struct pci_device *d, int fd);

/* Raw little-endian config access for the device model (no masks, no side
 * effects); off + size must be within the 4 KiB. */
void pci_cfg_set(struct pci_device *d, unsigned off, uint32_t v, unsigned size);
uint32_t pci_cfg_get(const struct pci_device *d, unsigned off, unsigned size);
void pci_cfg_set_wmask(struct pci_device *d, unsigned off, uint32_t mask, unsigned size);
void pci_cfg_set_w1cmask(struct pci_device *d, unsigned off, uint32_t mask, unsigned size);

/* A guest config access (the host's ECAM and CF8/CFC handlers call these
 * with its config lock held). size 1, 2 or 4; off + size <= PCI_CFG_SIZE. */
uint32_t pci_config_read(struct pci_device *d, unsigned off, unsigned size);
void pci_config_write(struct pci_device *d, unsigned off, unsigned size, uint32_t val);

/* Maps and unmaps BARs as command and BAR registers say; used by the host
 * after a reset or load. */
void pci_device_update_mappings(struct pci_device *d);
/* Unmaps every BAR and puts the config space back to its power-on contents. */
void pci_device_reset(struct pci_device *d);

#endif
