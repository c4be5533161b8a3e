/* struct bus: address range → device dispatch, one for port I/O and one for MMIO.
 *
 * Lookups take the bus lock only long enough to copy the matching entry; the
 * device callback runs without it, so a callback may itself register or
 * unregister ranges (a BAR moving) without deadlock. A device whose range is
 * unregistered must stay alive until no vCPU can still be inside its
 * callback: callers unregister with vCPUs paused, or call bus_synchronize
 * after unregistering and free after it returned (hot-unplug does).
 *
 * bus_synchronize is an epoch scheme (like SRCU): each dispatch counts
 * itself in the counter of the epoch it started in; synchronize starts a
 * new epoch and waits until the old one's counter drains. Dispatches that
 * start after the flip see the unregistered map, so it never waits for
 * them. */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
    /* offset is relative to the registered base; size is 1, 2, 4 or 8.
     * read must fill all `size` bytes of data (little-endian). */
    void (*read)(void *opaque, uint64_t offset, void *data, unsigned size);
    void (*write)(void *opaque, uint64_t offset, const void *data, unsigned size);
};

struct bus_range {
    uint64_t base;
    uint64_t len;
    const struct bus_ops *ops;
    void *opaque;
    const char *name;
};

struct bus {
    const char *name;       /* "pio" or "mmio", for messages */
    pthread_mutex_t lock;
    struct bus_range *ranges;   /* sorted by base, non-overlapping */
    unsigned nr, cap;
    unsigned epoch;             /* atomic; its parity picks the counter below */
    unsigned active[2];         /* atomic; dispatches in progress per epoch parity */
};

void bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);
/* Returns 0, -EEXIST when the range overlaps a registered one, -EINVAL for len 0 or wrap. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops, void *opaque,
                 const char *name);
/* Returns 0 or -ENOENT when no range starts at base. */
int bus_unregister(struct bus *b, uint64_t base);
/* Return false when nothing is registered at addr; reads then yield all ones. */
bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned size);
bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned size);
/* Returns once every dispatch that could have found a range unregistered
 * before this call has left its callback. Never from inside a callback
 * (it would wait for itself). */
void bus_synchronize(struct bus *b);

#endif
