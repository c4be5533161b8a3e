/* Split virtqueues (VIRTIO 1.2, 2.7), device side, over struct guest_memory.
 *
 * Everything in the rings is written by the guest and is untrusted: each
 * descriptor is copied once out of guest memory and only the copy is used,
 * every index and address is bounded, and any violation makes the pop/push
 * return a negative errno which the device turns into DEVICE_NEEDS_RESET.
 * Nothing here touches memory outside guest RAM whatever the rings hold.
 *
 * Threading: one queue is processed by one thread (its loop thread). The
 * guest runs concurrently on other CPUs; the comments on the ring accesses in
 * virtqueue.c say which memory orders that needs and why.
 *
 * Packed virtqueues (VIRTIO_F_RING_PACKED) are not implemented. */
#ifndef DEVICES_VIRTIO_VIRTQUEUE_H
#define DEVICES_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

#define VIRTQ_MAX_SIZE 32768

/* Descriptor flags (2.7.5). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
/* avail->flags / used->flags (2.7.6, 2.7.8). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

/* Ring alignment the driver must honour (2.7, table "Virtqueue Part Alignment"). */
#define VIRTQ_DESC_ALIGN  16
#define VIRTQ_AVAIL_ALIGN 2
#define VIRTQ_USED_ALIGN  4

/* One guest buffer of a chain, already translated: host pointer plus the
 * guest address it came from (for dirty marking and diagnostics). */
struct virtq_buf {
    uint8_t *hva;
    uint64_t gpa;
    uint32_t len;
};

/* A popped descriptor chain. bufs[0, n_out) are device-readable, then
 * bufs[n_out, n_out + n_in) are device-writable. The array is owned by the
 * queue and is overwritten by the next pop: a device that keeps chains in
 * flight across pops copies them with virtq_chain_dup. */
struct virtq_chain {
    uint16_t head;
    unsigned n_out;
    unsigned n_in;
    uint64_t out_len;       /* sum of readable lengths */
    uint64_t in_len;        /* sum of writable lengths, <= UINT32_MAX */
    struct virtq_buf *bufs;
};

struct virtqueue {
    struct guest_memory *gm;
    uint16_t size;
    bool event_idx;         /* VIRTIO_F_EVENT_IDX negotiated */
    bool indirect;          /* VIRTIO_F_INDIRECT_DESC negotiated */
    bool ready;             /* virtq_enable succeeded */
    uint64_t desc_gpa, avail_gpa, used_gpa;

    /* Host pointers to the three parts, valid while ready. Guest RAM is
     * mapped once for the VM's lifetime, so they stay valid. */
    uint8_t *desc;
    uint8_t *avail;
    uint8_t *used;

    uint16_t last_avail_idx;    /* next avail entry to pop */
    uint16_t used_idx;          /* next used entry to fill (our copy of used->idx) */
    uint16_t signalled_used;    /* used_idx at the last notify decision */
    bool signalled_used_valid;  /* false after enable/restore: the next decision notifies */

    struct virtq_buf *bufs;     /* size entries: a chain is never longer (2.7.5.3.1) */
};

/* Byte sizes of the three parts for a queue of `size` entries. */
uint64_t virtq_desc_bytes(uint16_t size);
uint64_t virtq_avail_bytes(uint16_t size);
uint64_t virtq_used_bytes(uint16_t size);

/* A valid queue size: a power of 2 in [1, VIRTQ_MAX_SIZE]. */
bool virtq_size_valid(uint32_t size);

void virtq_init(struct virtqueue *q, struct guest_memory *gm);
/* Checks size, alignment and that each part lies inside guest RAM, then
 * caches the host pointers and starts at the indexes given (0 on a fresh
 * enable; the saved ones on restore). Returns 0, -EINVAL (bad size or
 * alignment) or -EFAULT (outside RAM); the queue stays disabled on error. */
int virtq_enable(struct virtqueue *q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
                 uint16_t last_avail_idx, uint16_t used_idx);
/* Back to the state after virtq_init (keeps gm). */
void virtq_disable(struct virtqueue *q);

/* Pops the next available chain. Returns 1 with *chain filled, 0 when the
 * ring is empty, or a negative errno when the guest broke the rules:
 * -EINVAL  avail idx more than `size` ahead, head or next index >= size,
 *          a readable buffer after a writable one, INDIRECT with NEXT,
 *          indirect inside indirect, INDIRECT not negotiated, an indirect
 *          table whose length is 0 or not a multiple of 16, a zero-length
 *          buffer, writable lengths summing past 4 GiB - 1;
 * -ELOOP   the chain is longer than the queue size (a loop);
 * -EFAULT  a buffer or indirect table not entirely inside guest RAM.
 * After an error the queue is unusable until the device is reset. */
int virtq_pop(struct virtqueue *q, struct virtq_chain *chain);

/* Returns the last popped chain, unconsumed, to the ring (e.g. a device that
 * cannot take it now). Only valid right after a successful pop; called k
 * times it returns the k chains popped last (none of them pushed). */
void virtq_unpop(struct virtqueue *q);

/* A copy of the chain with its own bufs array; g_free() it (one block). */
struct virtq_chain *virtq_chain_dup(const struct virtq_chain *chain);

/* Copies up to len bytes into the chain's writable buffers from offset `off`
 * of the writable part; returns the number of bytes copied. Marks dirty. */
size_t virtq_chain_write(struct virtqueue *q, const struct virtq_chain *chain, size_t off,
                         const void *data, size_t len);
/* Copies up to len bytes out of the readable buffers from offset `off`;
 * returns the number copied. */
size_t virtq_chain_read(const struct virtq_chain *chain, size_t off, void *data, size_t len);

/* Puts the chain on the used ring saying `len` bytes were written into its
 * writable part (clamped to in_len), marks the used ring and those bytes
 * dirty (so a device writing through bufs[].hva cannot forget), then
 * publishes the new used idx. chain->bufs must still describe this chain. */
void virtq_push(struct virtqueue *q, const struct virtq_chain *chain, uint32_t len);

/* The same in two steps, for a device that hands several chains back at
 * once (virtio-net's mergeable receive buffers, where the driver must see
 * all of a packet's buffers together): virtq_fill writes the used element
 * `pos` places after the published used idx without publishing it;
 * virtq_flush publishes `count` filled elements. Chains popped and not
 * filled may be returned with virtq_unpop (once per chain, newest first). */
void virtq_fill(struct virtqueue *q, const struct virtq_chain *chain, uint32_t len, uint16_t pos);
void virtq_flush(struct virtqueue *q, uint16_t count);

/* Should the driver be interrupted for what was pushed since the last call?
 * EVENT_IDX: the used_event rule (2.7.7.2); otherwise avail->flags
 * NO_INTERRUPT. Updates the "last signalled" mark. */
bool virtq_should_notify(struct virtqueue *q);

/* Driver-to-device notification suppression while a device drains the
 * queue: disable before popping, enable when done. virtq_enable_notify
 * returns true when new buffers arrived meanwhile (pop again). */
void virtq_disable_notify(struct virtqueue *q);
bool virtq_enable_notify(struct virtqueue *q);

/* For a device that saw buffers but not enough of them (virtio-net's
 * mergeable receive buffers): asks for a kick when the driver adds more than
 * are available now (EVENT_IDX: avail_event = the current avail idx) and
 * returns true when some were added meanwhile (look again). */
bool virtq_enable_notify_more(struct virtqueue *q);

/* What a virtq_pop error means, for the one log line. */
const char *virtq_strerror(int err);

/* The EVENT_IDX comparison: has new_idx moved past event_idx since old_idx?
 * All arithmetic modulo 2^16. */
bool virtq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx);

#endif
