/* virtio-mem (VIRTIO 1.2, 5.15): memory hotplug by blocks. The device
 * manages a region of guest-physical address space above RAM (the hotplug
 * region of struct guest_memory); the host asks the guest for an amount of
 * memory (requested_size), the guest picks blocks and sends PLUG / UNPLUG /
 * UNPLUG_ALL / STATE requests on the one guest-request queue. Plugged
 * blocks are ordinary RAM to the guest; unplugged ones are given back to the
 * host (guest_memory_set_plugged) and refused to every device access.
 *
 * Shrinking is cooperative: a lower requested_size asks the guest to
 * unplug; which blocks it frees is the guest's choice, and what it cannot
 * free stays plugged.
 *
 * The plug state lives in guest_memory (its plugged bitmap); this device
 * keeps the sizes. A device reset (status 0) changes no block (5.15.5.1);
 * a guest reset rebuilds the VM, whose new region starts all unplugged.
 * VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE is offered (the driver promises not
 * to read unplugged memory); a driver that does not take it works too.
 *
 * Threading: requests run on the device's loop; config reads come from vCPU
 * threads; virtio_mem_set_requested from the control socket's thread. The
 * sizes change under vdev.lock. */
#ifndef DEVICES_VIRTIO_MEM_H
#define DEVICES_VIRTIO_MEM_H

#include "devices/virtio/virtio.h"

#define VIRTIO_ID_MEM 24

#define VIRTIO_MEM_F_ACPI_PXM               0
#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE 1

#define VIRTIO_MEM_REQ_PLUG       0
#define VIRTIO_MEM_REQ_UNPLUG     1
#define VIRTIO_MEM_REQ_UNPLUG_ALL 2
#define VIRTIO_MEM_REQ_STATE      3

#define VIRTIO_MEM_RESP_ACK   0
#define VIRTIO_MEM_RESP_NACK  1
#define VIRTIO_MEM_RESP_BUSY  2
#define VIRTIO_MEM_RESP_ERROR 3

#define VIRTIO_MEM_STATE_PLUGGED   0
#define VIRTIO_MEM_STATE_UNPLUGGED 1
#define VIRTIO_MEM_STATE_MIXED     2

/* struct virtio_mem_req is 24 bytes (le16 type, 3 x le16 padding, le64
 * addr, le16 nb_blocks, 3 x le16 padding); struct virtio_mem_resp 10
 * (le16 type, 3 x le16 padding, le16 state). */
#define VIRTIO_MEM_REQ_SIZE  24
#define VIRTIO_MEM_RESP_SIZE 10

/* Config space (5.15.4), all little-endian and read-only. */
#define VIRTIO_MEM_CFG_BLOCK_SIZE   0
#define VIRTIO_MEM_CFG_NODE_ID      8
#define VIRTIO_MEM_CFG_ADDR         16
#define VIRTIO_MEM_CFG_REGION_SIZE  24
#define VIRTIO_MEM_CFG_USABLE_SIZE  32
#define VIRTIO_MEM_CFG_PLUGGED_SIZE 40
#define VIRTIO_MEM_CFG_REQUESTED    48
#define VIRTIO_MEM_CONFIG_SIZE      56

#define VIRTIO_MEM_QUEUE_SIZE 128
/* The usable region runs this far past requested_size (rounded to blocks,
 * at most the region): room for the driver to choose blocks, e.g. two of
 * Linux's 128 MiB memory blocks. */
#define VIRTIO_MEM_USABLE_EXTENT (256ULL << 20)

struct virtio_mem;
/* plugged_size changed (after a run of requests). Loop thread. */
typedef void (*virtio_mem_size_fn)(void *opaque, struct virtio_mem *m, uint64_t plugged_size);

struct virtio_mem {
    struct virtio_device vdev;
    char *id;
    uint64_t addr, region_size, block_size;
    /* under vdev.lock */
    uint64_t usable_region_size, plugged_size, requested_size;
    virtio_mem_size_fn size_changed;
    void *size_opaque;
    bool warned;
};

/* The device for gm's hotplug region (which must exist), asking for
 * `requested` bytes from the start. */
struct virtio_mem *virtio_mem_new(struct guest_memory *gm, struct loop *loop, const char *id, uint64_t requested);
void virtio_mem_free(struct virtio_mem *m);
void virtio_mem_set_size_cb(struct virtio_mem *m, virtio_mem_size_fn fn, void *opaque);
/* A new requested_size (a multiple of the block size, at most the region):
 * grows the usable region to cover it and tells the driver (config change).
 * 0, or -EINVAL when it is out of range. Any thread. */
int virtio_mem_set_requested(struct virtio_mem *m, uint64_t size);
uint64_t virtio_mem_requested(struct virtio_mem *m);
uint64_t virtio_mem_plugged(struct virtio_mem *m);

#endif
