/* virtio-blk (VIRTIO 1.2, 5.2) over a struct block_backend.
 *
 * Requests: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES (one segment per
 * request). Features: SIZE_MAX, SEG_MAX, BLK_SIZE, TOPOLOGY, FLUSH, MQ, and
 * RO on a read-only disk, DISCARD and WRITE_ZEROES on a writable one.
 *
 * Everything in a request is untrusted. A chain without a 16-byte readable
 * header or without a writable status byte cannot be answered: the device
 * marks itself broken (NEEDS_RESET). Anything else wrong (sectors past the
 * end, a length that is not whole sectors, data buffers of the wrong
 * direction, a write to a read-only disk, bad discard segments) completes
 * the request with IOERR or UNSUPP.
 *
 * Requests run asynchronously: each popped chain is copied and handed to
 * the backend; its completion (on the loop thread) writes the status and
 * puts the chain on the used ring; the driver is interrupted once per queue
 * after the loop dispatched every completion that was ready
 * (loop_after_batch), not once per request.
 *
 * Reset: host I/O cannot be recalled, so a device or queue reset does not
 * wait for it; the completions of requests from before the reset are
 * dropped (never put on a ring of the new driver session).
 * Save: in-flight requests are drained (completed and put on the used
 * ring) before the rings are saved (ops->quiesce), so nothing is in flight
 * in a snapshot and load has nothing to re-queue. */
#ifndef DEVICES_VIRTIO_BLK_H
#define DEVICES_VIRTIO_BLK_H

#include "devices/block.h"
#include "devices/virtio/virtio.h"

/* Device feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX      1
#define VIRTIO_BLK_F_SEG_MAX       2
#define VIRTIO_BLK_F_RO            5
#define VIRTIO_BLK_F_BLK_SIZE      6
#define VIRTIO_BLK_F_FLUSH         9
#define VIRTIO_BLK_F_TOPOLOGY      10
#define VIRTIO_BLK_F_MQ            12
#define VIRTIO_BLK_F_DISCARD       13
#define VIRTIO_BLK_F_WRITE_ZEROES  14

/* Request types and statuses (5.2.6). */
#define VIRTIO_BLK_T_IN            0
#define VIRTIO_BLK_T_OUT           1
#define VIRTIO_BLK_T_FLUSH         4
#define VIRTIO_BLK_T_GET_ID        8
#define VIRTIO_BLK_T_DISCARD       11
#define VIRTIO_BLK_T_WRITE_ZEROES  13
#define VIRTIO_BLK_S_OK            0
#define VIRTIO_BLK_S_IOERR         1
#define VIRTIO_BLK_S_UNSUPP        2
#define VIRTIO_BLK_WZ_FLAG_UNMAP   1

#define VIRTIO_BLK_ID_BYTES        20
#define VIRTIO_BLK_SECTOR          512
#define VIRTIO_BLK_QUEUE_SIZE      256
#define VIRTIO_BLK_SIZE_MAX        (1024 * 1024)
#define VIRTIO_BLK_SEG_MAX         (VIRTIO_BLK_QUEUE_SIZE - 2)
#define VIRTIO_BLK_MAX_QUEUES      64
/* Discard and write-zeroes: one segment of at most 4 GiB - 512 per request. */
#define VIRTIO_BLK_MAX_DWZ_SECTORS 0x7fffffu

/* Config space offsets (5.2.4). */
#define VIRTIO_BLK_CFG_CAPACITY    0
#define VIRTIO_BLK_CFG_SIZE_MAX    8
#define VIRTIO_BLK_CFG_SEG_MAX     12
#define VIRTIO_BLK_CFG_BLK_SIZE    20
#define VIRTIO_BLK_CFG_PHYS_EXP    24
#define VIRTIO_BLK_CFG_MIN_IO      26
#define VIRTIO_BLK_CFG_OPT_IO      28
#define VIRTIO_BLK_CFG_WRITEBACK   32
#define VIRTIO_BLK_CFG_NUM_QUEUES  34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG     40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN       44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS      48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG          52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP        56
#define VIRTIO_BLK_CONFIG_SIZE             60

struct virtio_blk_params {
    struct block_options disk;
    unsigned num_queues;        /* 0 means 1 */
    const char *serial;         /* GET_ID; at most 20 bytes, NULL: empty */
};

struct virtio_blk_req;

struct virtio_blk {
    struct virtio_device vdev;
    struct block_backend *bb;
    uint64_t capacity;          /* 512-byte sectors */
    uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
    char serial[VIRTIO_BLK_ID_BYTES];
    uint32_t *epoch;            /* per queue: bumped by resets, stale completions are dropped */
    bool *notify_pending;       /* per queue: completions pushed since the last interrupt decision */
    bool notify_scheduled;      /* the loop's after-batch hook is queued */
};

/* Opens the disk; NULL with *err (one line) when it cannot. */
struct virtio_blk *virtio_blk_new(struct guest_memory *gm, struct loop *loop,
                                  const struct virtio_blk_params *p, GError **err);
/* Waits for in-flight I/O, then frees. Loop thread. */
void virtio_blk_free(struct virtio_blk *blk);

#endif
