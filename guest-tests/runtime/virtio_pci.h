/* A minimal virtio-pci modern driver (VIRTIO 1.2, 4.1) for guest tests:
 * finds a device on bus 0 through ECAM, walks its vendor capabilities,
 * negotiates features, sets up split virtqueues in memory the test gives it,
 * and runs them by polling or with MSI-X. Identity-mapped guests only
 * (guest physical == virtual). Every wait is bounded: a device that never
 * answers fails the test instead of hanging it. */
#ifndef GUEST_VIRTIO_PCI_H
#define GUEST_VIRTIO_PCI_H

#include "rt.h"

#define VIRTIO_PCI_VENDOR       0x1af4
#define VIRTIO_PCI_DEVICE(type) (0x1040 + (type))
#define VIRTIO_TYPE_NET         1
#define VIRTIO_TYPE_BLOCK       2
#define VIRTIO_TYPE_CONSOLE     3
#define VIRTIO_TYPE_RNG         4

#define VIRTIO_F_INDIRECT_DESC  28
#define VIRTIO_F_EVENT_IDX      29
#define VIRTIO_F_VERSION_1      32
#define VIRTIO_F_RING_RESET     40

#define VIRTIO_ACKNOWLEDGE      1
#define VIRTIO_DRIVER           2
#define VIRTIO_DRIVER_OK        4
#define VIRTIO_FEATURES_OK      8
#define VIRTIO_NEEDS_RESET      64
#define VIRTIO_FAILED           128
#define VIRTIO_NO_VECTOR        0xffff

/* Capability cfg_type (4.1.4) and struct virtio_pci_common_cfg (4.1.4.3). */
#define VIRTIO_CAP_COMMON       1
#define VIRTIO_CAP_NOTIFY       2
#define VIRTIO_CAP_ISR          3
#define VIRTIO_CAP_DEVICE       4
#define VIRTIO_CAP_PCI_CFG      5
#define VC_DFSELECT             0x00
#define VC_DF                   0x04
#define VC_GFSELECT             0x08
#define VC_GF                   0x0c
#define VC_MSIX                 0x10
#define VC_NUMQ                 0x12
#define VC_STATUS               0x14
#define VC_CFGGEN               0x15
#define VC_Q_SELECT             0x16
#define VC_Q_SIZE               0x18
#define VC_Q_MSIX               0x1a
#define VC_Q_ENABLE             0x1c
#define VC_Q_NOFF               0x1e
#define VC_Q_DESC               0x20
#define VC_Q_AVAIL              0x28
#define VC_Q_USED               0x30
#define VC_Q_RESET              0x3a

#define VIRTQ_F_NEXT            1
#define VIRTQ_F_WRITE           2

struct virtio_dev {
    unsigned devfn;
    uint64_t common, isr, device, notify;   /* guest-physical addresses of the structures */
    uint32_t notify_mult;
    uint32_t device_len;
    unsigned pcicfg_cap;                    /* config offset of the PCI_CFG window, 0: none */
    unsigned msix_cap;                      /* 0: no MSI-X */
    uint64_t msix_table;
    unsigned msix_size;
};

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq {
    struct virtio_dev *dev;
    unsigned index;
    uint16_t size;
    struct virtq_desc *desc;
    volatile uint16_t *avail;               /* flags, idx, ring[size], used_event */
    volatile uint8_t *used;                 /* flags, idx, ring[size] of {u32 id, u32 len}, avail_event */
    uint16_t avail_idx, last_used;
    uint16_t free_head, num_free;
    uint64_t notify_addr;
};

/* One buffer of a chain. */
struct virtq_sg {
    void *addr;
    uint32_t len;
};

/* Finds the first device of `type` on bus 0, maps its BARs and reads its
 * capabilities; false (with a diag line) when it is not there or lacks a
 * COMMON, NOTIFY or ISR capability. */
bool virtio_open(struct virtio_dev *d, uint16_t type);
/* The same for the virtio device at bus 0 devfn (several of one type). */
bool virtio_open_at(struct virtio_dev *d, unsigned devfn);

uint8_t virtio_status(struct virtio_dev *d);
/* Writes 0 and waits until the status reads 0 (4.1.4.3.2); false on timeout. */
bool virtio_reset(struct virtio_dev *d);
uint64_t virtio_device_features(struct virtio_dev *d);
/* ACKNOWLEDGE, DRIVER, the driver features, FEATURES_OK; true when
 * FEATURES_OK reads back (the device took the set). */
bool virtio_negotiate(struct virtio_dev *d, uint64_t features);
void virtio_driver_ok(struct virtio_dev *d);
uint16_t virtio_num_queues(struct virtio_dev *d);
/* Reads the ISR (and so clears it). */
uint8_t virtio_isr(struct virtio_dev *d);
/* Device config, re-read until config_generation is stable (4.1.4.3.1). */
void virtio_config_read(struct virtio_dev *d, unsigned off, void *buf, unsigned len);

/* MSI-X: entry `entry` delivers LAPIC vector `vector` to this CPU, unmasked. */
bool virtio_msix_route(struct virtio_dev *d, unsigned entry, uint8_t vector);
void virtio_msix_enable(struct virtio_dev *d, bool on);
/* Assigns the config vector; returns what reads back. */
uint16_t virtio_set_config_vector(struct virtio_dev *d, uint16_t vector);

/* Bytes of queue memory (4 KiB aligned) virtq_setup needs for `size`. */
unsigned virtq_mem_size(uint16_t size);
/* Sets up queue `index` with `size` entries, or the device's maximum if
 * that is smaller (0: the maximum), in `mem` (zeroed here; at least
 * virtq_mem_size of the size used), with MSI-X `vector` (VIRTIO_NO_VECTOR
 * to poll), and enables it. False when the queue does not exist or does not
 * enable; *vector_out (if not NULL) is what the vector reads back as. */
bool virtq_setup(struct virtq *q, struct virtio_dev *d, unsigned index, uint16_t size, void *mem, uint16_t vector,
                 uint16_t *vector_out);
/* Adds a chain of n_out device-readable then n_in device-writable buffers
 * and makes it available (no kick). Returns its head, or -1 if it does not fit. */
int virtq_add(struct virtq *q, const struct virtq_sg *sg, unsigned n_out, unsigned n_in);
void virtq_kick(struct virtq *q);
/* Takes the next used element, if any, and frees its descriptors. */
bool virtq_get_used(struct virtq *q, uint16_t *head, uint32_t *len);
/* Polls for the next used element, bounded; false on timeout. */
bool virtq_wait_used(struct virtq *q, uint16_t *head, uint32_t *len);

#endif
