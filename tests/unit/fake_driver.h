/* The driver's side of split virtqueues for the device unit tests
 * (test_virtio_blk, _console, _net): queue q's rings sit at fixed guest
 * addresses (FAKE_DESC/AVAIL/USED), and chains are posted and results read
 * as a driver would, through the host mapping of guest RAM. A test's fixture
 * embeds a struct fake_driver and sets ram and qsz once RAM exists. */
#ifndef TESTS_UNIT_FAKE_DRIVER_H
#define TESTS_UNIT_FAKE_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"

#define FAKE_MAX_QUEUES 8
#define FAKE_DESC(q)    (0x1000 + 0x3000ULL * (q))
#define FAKE_AVAIL(q)   (FAKE_DESC(q) + 0x1000)
#define FAKE_USED(q)    (FAKE_DESC(q) + 0x2000)

/* One buffer of a chain: guest address, length, device-writable or not. */
struct seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

struct fake_driver {
    uint8_t *ram;                           /* host address of guest physical 0 */
    unsigned qsz;                           /* every queue's size */
    uint16_t avail_idx[FAKE_MAX_QUEUES];    /* next avail->idx of each queue */
    uint16_t next_desc[FAKE_MAX_QUEUES];    /* next free descriptor of each queue */
};

static inline void fake_put_desc(struct fake_driver *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
                                 uint16_t flags, uint16_t next)
{
    uint8_t *p = d->ram + FAKE_DESC(q) + 16ULL * i;
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

/* Puts a chain of n buffers on queue q's avail ring (not kicked). */
static inline void fake_post(struct fake_driver *d, unsigned q, const struct seg *s, unsigned n)
{
    uint16_t head = d->next_desc[q];
    for (unsigned i = 0; i < n; i++) {
        uint16_t idx = (uint16_t)((head + i) % d->qsz);
        uint16_t flags = (s[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        fake_put_desc(d, q, idx, s[i].gpa, s[i].len, flags, (uint16_t)((idx + 1) % d->qsz));
    }
    d->next_desc[q] = (uint16_t)((head + n) % d->qsz);
    memcpy(d->ram + FAKE_AVAIL(q) + 4 + 2 * (d->avail_idx[q] % d->qsz), &head, 2);
    d->avail_idx[q]++;
    memcpy(d->ram + FAKE_AVAIL(q) + 2, &d->avail_idx[q], 2);
}

static inline uint16_t fake_used_idx(const struct fake_driver *d, unsigned q)
{
    uint16_t v;
    memcpy(&v, d->ram + FAKE_USED(q) + 2, 2);
    return v;
}

/* The head id and the written length of used ring slot `slot`. */
static inline uint32_t fake_used_id(const struct fake_driver *d, unsigned q, unsigned slot)
{
    uint32_t v;
    memcpy(&v, d->ram + FAKE_USED(q) + 4 + 8 * (slot % d->qsz), 4);
    return v;
}

static inline uint32_t fake_used_len(const struct fake_driver *d, unsigned q, unsigned slot)
{
    uint32_t v;
    memcpy(&v, d->ram + FAKE_USED(q) + 8 + 8 * (slot % d->qsz), 4);
    return v;
}

#endif
