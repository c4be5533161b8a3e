/* struct virtio_device: what every virtio device shares, independent of the
 * transport (VIRTIO 1.2 chapters 2 and 3): feature negotiation, the device
 * status state machine and reset, config space with its generation counter,
 * per-queue state, interrupts, save/load.
 *
 * A transport (virtio-pci modern; virtio-mmio later) owns the registers and
 * only translates accesses into the virtio_* calls below; the device type
 * (rng, blk, net, console) supplies struct virtio_device_ops and one handler
 * per queue.
 *
 * Threading:
 *  - Register accesses (the "transport" calls) come from vCPU threads. They
 *    serialise on vdev->lock, which the queue fast path never takes.
 *  - Queue processing runs on vdev->loop's thread only, never on a vCPU
 *    thread: the transport binds an ioeventfd per queue and hands it over with
 *    virtio_queue_set_kick_fd; a kick wakes the loop, which calls the queue's
 *    handler. virtio_queue_notify is for transports without ioeventfd and also
 *    defers to the loop.
 *  - What the loop reads is published before it is used: a queue's rings are
 *    validated and cached before `enabled` is set (release), the handler runs
 *    only when DRIVER_OK and `enabled` are seen (acquire), and the driver may
 *    not change a live queue. Device reset (status 0) and queue reset
 *    (RING_RESET) run on the loop thread; until they finish the status /
 *    queue_reset registers read back non-zero (4.1.4.3.2: the driver waits
 *    for 0). A reset written while the status
 *    is already 0 (drivers reset first thing at probe) is done at once: the
 *    device has not run since its last reset.
 *  - With vdev->loop == NULL (unit tests) everything runs synchronously on
 *    the caller's thread. */
#ifndef DEVICES_VIRTIO_VIRTIO_H
#define DEVICES_VIRTIO_VIRTIO_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"

struct guest_memory;
struct loop;
struct state_writer;
struct state_reader;

/* Device IDs (5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4

/* Reserved feature bits (6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_F_RING_RESET    40
#define VIRTIO_BIT(b) (1ULL << (b))
/* What the core implements and offers on behalf of every device. */
#define VIRTIO_CORE_FEATURES (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | \
                              VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_RING_RESET))

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE  1
#define VIRTIO_STATUS_DRIVER       2
#define VIRTIO_STATUS_DRIVER_OK    4
#define VIRTIO_STATUS_FEATURES_OK  8
#define VIRTIO_STATUS_NEEDS_RESET  64
#define VIRTIO_STATUS_FAILED       128

/* ISR status bits (4.1.4.5): what a line-based interrupt was for. */
#define VIRTIO_ISR_QUEUE  1
#define VIRTIO_ISR_CONFIG 2

/* "No vector": the transport falls back to its line interrupt (INTx). */
#define VIRTIO_NO_VECTOR 0xffff
#define VIRTIO_MAX_QUEUES 1024

struct virtio_device;

/* Drains queue `qi`: pops, processes and pushes chains, then calls
 * virtio_notify_queue. Returns 0, or a negative errno when the guest broke
 * the rules (the core then sets NEEDS_RESET). Runs on the loop thread. */
typedef int (*virtio_queue_fn)(struct virtio_device *vdev, unsigned qi);

struct virtio_device_ops {
    const char *name;       /* "virtio-rng": in logs and the device's state section */
    /* Device config space; offsets and lengths are already bounded by
     * config_size. NULL read means zeros, NULL write means read-only. */
    void (*config_read)(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len);
    void (*config_write)(struct virtio_device *vdev, uint32_t off, const void *buf, uint32_t len);
    /* Optional: refuse a feature combination at FEATURES_OK (return false). */
    bool (*features_ok)(struct virtio_device *vdev, uint64_t features);
    /* Back to power-on state, dropping in-flight work. Loop thread, with
     * vdev->lock held: no transport-side virtio_* calls from here. */
    void (*reset)(struct virtio_device *vdev);
    /* Optional: drop queue qi's in-flight work (RING_RESET). Loop thread. */
    void (*queue_reset)(struct virtio_device *vdev, unsigned qi);
    /* Optional: finish what is in flight (I/O the host still owes the
     * guest) so the saved rings are complete. virtio_device_save calls it
     * first. Loop thread. */
    void (*quiesce)(struct virtio_device *vdev);
    /* Optional: a section of its own after the core's. 0 or -errno. */
    int (*save)(struct virtio_device *vdev, struct state_writer *w);
    int (*load)(struct virtio_device *vdev, struct state_reader *r);
};

/* Supplied by the transport: raise `vector` (a queue's or the config
 * vector; VIRTIO_NO_VECTOR when the driver assigned none). The ISR bits are
 * already set. Called from the loop thread, or for config changes from
 * whichever thread changed the config. */
struct virtio_transport {
    void (*interrupt)(void *opaque, uint16_t vector);
    void *opaque;
};

/* RING_RESET progress of one queue. */
enum virtio_queue_reset_state {
    VIRTIO_QUEUE_RESET_NONE,
    VIRTIO_QUEUE_RESET_PENDING,     /* waiting for the loop thread: queue_reset reads 1 */
};

struct virtio_queue {
    struct virtio_device *vdev;
    unsigned index;
    uint16_t max_size;      /* 0: the queue does not exist */
    uint16_t size;          /* driver-written; starts at max_size */
    uint64_t desc, avail, used;
    uint16_t vector;
    bool enabled;           /* atomic: vq is live */
    uint8_t reset_state;    /* atomic: enum virtio_queue_reset_state */
    struct virtqueue vq;
    virtio_queue_fn handler;
    int kick_fd;
};

struct virtio_device {
    uint16_t device_id;
    const struct virtio_device_ops *ops;
    void *opaque;                       /* the device type's own state */
    struct guest_memory *gm;
    struct loop *loop;
    struct virtio_transport transport;
    GMutex lock;                        /* transport calls (control plane) */

    uint64_t device_features;
    uint64_t driver_features;
    uint8_t status;                     /* atomic */
    bool reset_pending;                 /* atomic */
    uint8_t isr;                        /* atomic */
    uint32_t config_generation;         /* atomic */
    uint32_t config_size;
    uint16_t config_vector;
    bool error_logged;

    unsigned num_queues;
    struct virtio_queue *queues;
};

/* Sets up the common part. `features` are the device-type bits; the core
 * adds VIRTIO_CORE_FEATURES. loop may be NULL (synchronous, for tests). */
void virtio_device_init(struct virtio_device *vdev, uint16_t device_id,
                        const struct virtio_device_ops *ops, void *opaque,
                        struct guest_memory *gm, struct loop *loop, uint64_t features,
                        uint32_t config_size, unsigned num_queues);
/* Queue qi exists, with at most max_size entries (a power of 2). */
void virtio_queue_init(struct virtio_device *vdev, unsigned qi, uint16_t max_size,
                       virtio_queue_fn handler);
/* On the loop thread, after the transport stopped calling in: deferred
 * work (resets, notifies) is queued with loop_call, so destroying from a
 * loop_call of its own runs after all of it. */
void virtio_device_destroy(struct virtio_device *vdev);
void virtio_set_transport(struct virtio_device *vdev, const struct virtio_transport *t);

/* ---- transport side (register accesses; any thread) ---- */

/* 32-bit windows of the 64-bit feature words; sel > 1 reads 0 / is ignored. */
uint32_t virtio_get_device_features(struct virtio_device *vdev, uint32_t sel);
uint32_t virtio_get_driver_features(struct virtio_device *vdev, uint32_t sel);
/* Ignored once FEATURES_OK is set (the set was already accepted). */
void virtio_set_driver_features(struct virtio_device *vdev, uint32_t sel, uint32_t val);

uint8_t virtio_get_status(struct virtio_device *vdev);
/* 0 resets; FEATURES_OK is only taken when the driver's features are a
 * subset of the offer, include VERSION_1 and the device agrees; DRIVER_OK
 * only after FEATURES_OK. A refused bit simply does not read back. */
void virtio_set_status(struct virtio_device *vdev, uint8_t status);
/* Reads and clears the ISR (line-interrupt transports). */
uint8_t virtio_read_isr(struct virtio_device *vdev);

uint32_t virtio_config_generation(struct virtio_device *vdev);
/* Out-of-range bytes read as 0 and writes to them are dropped. */
void virtio_config_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len);
void virtio_config_write(struct virtio_device *vdev, uint32_t off, const void *buf, uint32_t len);
uint16_t virtio_get_config_vector(struct virtio_device *vdev);
void virtio_set_config_vector(struct virtio_device *vdev, uint16_t vector);

/* Per-queue registers. qi >= num_queues or a queue without max_size reads
 * as absent (max size 0) and ignores writes. The size and the addresses
 * can only change while the queue is disabled. */
uint16_t virtio_queue_get_max_size(struct virtio_device *vdev, unsigned qi);
uint16_t virtio_queue_get_size(struct virtio_device *vdev, unsigned qi);
void virtio_queue_set_size(struct virtio_device *vdev, unsigned qi, uint16_t size);
uint64_t virtio_queue_get_desc(struct virtio_device *vdev, unsigned qi);
uint64_t virtio_queue_get_avail(struct virtio_device *vdev, unsigned qi);
uint64_t virtio_queue_get_used(struct virtio_device *vdev, unsigned qi);
void virtio_queue_set_desc(struct virtio_device *vdev, unsigned qi, uint64_t gpa);
void virtio_queue_set_avail(struct virtio_device *vdev, unsigned qi, uint64_t gpa);
void virtio_queue_set_used(struct virtio_device *vdev, unsigned qi, uint64_t gpa);
uint16_t virtio_queue_get_vector(struct virtio_device *vdev, unsigned qi);
void virtio_queue_set_vector(struct virtio_device *vdev, unsigned qi, uint16_t vector);
bool virtio_queue_get_enable(struct virtio_device *vdev, unsigned qi);
/* queue_enable = 1: accepted after FEATURES_OK and before DRIVER_OK (or at
 * any time after a RING_RESET). Checks size, alignment and that the rings
 * lie in guest RAM; a bad setup sets NEEDS_RESET. Returns 0 or -errno. */
int virtio_queue_enable(struct virtio_device *vdev, unsigned qi);
/* RING_RESET (2.6.1): the queue goes back to its initial state on the loop
 * thread. virtio_queue_get_reset is the queue_reset register: it reads true
 * while the reset is under way and false once it is done, when queue_enable
 * reads 0 too (4.1.4.3.2; Linux and QEMU: the driver waits for 0). */
void virtio_queue_reset(struct virtio_device *vdev, unsigned qi);
bool virtio_queue_get_reset(struct virtio_device *vdev, unsigned qi);
/* A kick without ioeventfd: runs the handler on the loop thread. */
void virtio_queue_notify(struct virtio_device *vdev, unsigned qi);
/* Watches `fd` (an eventfd the transport bound with KVM_IOEVENTFD) on the
 * loop; each kick drains it and runs the handler. -1 unbinds. Call on the
 * loop thread. The fd stays the transport's. Returns 0 or -errno. */
int virtio_queue_set_kick_fd(struct virtio_device *vdev, unsigned qi, int fd);

/* ---- device side (loop thread) ---- */

static inline bool virtio_has_feature(const struct virtio_device *vdev, unsigned bit)
{
    return (vdev->driver_features >> bit) & 1;
}

static inline struct virtqueue *virtio_vq(struct virtio_device *vdev, unsigned qi)
{
    return &vdev->queues[qi].vq;
}

/* Interrupts the driver for queue qi if the suppression rules let it. */
void virtio_notify_queue(struct virtio_device *vdev, unsigned qi);
/* The device changed its config: bumps the generation, interrupts. */
void virtio_config_changed(struct virtio_device *vdev);
/* The guest broke the rules on queue qi (err: -errno): NEEDS_RESET, a
 * config interrupt, and the device's queues stop until the driver resets it.
 * One log line per device for the VMM's lifetime: a guest that breaks and
 * resets in a loop cannot flood the host's log. */
void virtio_device_error(struct virtio_device *vdev, unsigned qi, int err);
/* For a handler that stops after a bounded amount of work so that one busy
 * guest queue cannot starve the rest of the loop: runs the handler again
 * after what the loop has ready. Without a loop (tests) the caller kicks. */
void virtio_queue_defer(struct virtio_device *vdev, unsigned qi);
/* Runs queue qi's handler now if the device is live (what a kick does). */
void virtio_queue_run(struct virtio_device *vdev, unsigned qi);

/* What a virtio_queue_drain callback did with the chain it was given. */
enum virtio_chain_done {
    VIRTIO_CHAIN_PUSHED,    /* answered and pushed onto the used ring */
    VIRTIO_CHAIN_LATER,     /* kept (a copy): it is pushed when it completes */
    VIRTIO_CHAIN_HOLD,      /* kept, and the queue waits for it: stop draining */
};
/* Processes one popped chain: a virtio_chain_done, or a negative errno when
 * the chain breaks the device's protocol (the drain stops and returns it). */
typedef int (*virtio_chain_fn)(struct virtio_device *vdev, unsigned qi, struct virtq_chain *chain);

/* The queue-drain skeleton every handler shares: with driver notifications
 * suppressed (virtq_disable_notify), pops chains and hands each to fn, at
 * most one ring's worth (vq->size) per call so that a guest refilling as fast
 * as we drain cannot starve the loop: past that, notifies and defers the
 * rest (virtio_queue_defer). When the ring is empty it re-enables
 * notifications and drains again if buffers arrived meanwhile (the EVENT_IDX
 * race, virtq_enable_notify). Then virtio_notify_queue if a chain was pushed
 * (a run that pushed nothing has nothing to signal: virtq_should_notify would
 * say no), also when fn answers VIRTIO_CHAIN_HOLD, which ends the drain with
 * notifications left suppressed (the device runs the queue again when the
 * held chain is done). Returns 0, or the negative errno of virtq_pop or fn
 * (nothing notified). */
int virtio_queue_drain(struct virtio_device *vdev, unsigned qi, virtio_chain_fn fn);

/* Save/load of the core state (a "virtio" section) followed by the device
 * type's own section. Call with the VM paused and the loop idle. Load checks
 * everything, including that every live queue's rings still lie in guest
 * RAM, before it changes anything. 0 or -errno (-EINVAL with *err). */
int virtio_device_save(struct virtio_device *vdev, struct state_writer *w);
int virtio_device_load(struct virtio_device *vdev, struct state_reader *r, GError **err);

#endif
