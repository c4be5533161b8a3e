#include "vmm/bus.h"

#include <errno.h>
#include <glib.h>
#include <sched.h>
#include <string.h>

void bus_init(struct bus *b, const char *name)
{
    memset(b, 0, sizeof(*b));
    b->name = name;
    pthread_mutex_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
    g_free(b->ranges);
    pthread_mutex_destroy(&b->lock);
    memset(b, 0, sizeof(*b));
}

/* Index of the first range whose end is above addr (ranges are sorted). */
static unsigned lower_bound(const struct bus *b, uint64_t addr)
{
    unsigned lo = 0, hi = b->nr;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &b->ranges[mid];
        if (r->base + r->len <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops, void *opaque,
                 const char *name)
{
    if (len == 0 || base + len < base)
        return -EINVAL;
    pthread_mutex_lock(&b->lock);
    unsigned i = lower_bound(b, base);
    if (i < b->nr && b->ranges[i].base < base + len) {
        pthread_mutex_unlock(&b->lock);
        return -EEXIST;
    }
    if (b->nr == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->ranges = g_renew(struct bus_range, b->ranges, b->cap);
    }
    memmove(&b->ranges[i + 1], &b->ranges[i], (b->nr - i) * sizeof(*b->ranges));
    b->ranges[i] = (struct bus_range){ base, len, ops, opaque, name };
    b->nr++;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int bus_unregister(struct bus *b, uint64_t base)
{
    pthread_mutex_lock(&b->lock);
    unsigned i = lower_bound(b, base);
    if (i >= b->nr || b->ranges[i].base != base) {
        pthread_mutex_unlock(&b->lock);
        return -ENOENT;
    }
    memmove(&b->ranges[i], &b->ranges[i + 1], (b->nr - i - 1) * sizeof(*b->ranges));
    b->nr--;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static bool lookup(struct bus *b, uint64_t addr, struct bus_range *out)
{
    pthread_mutex_lock(&b->lock);
    unsigned i = lower_bound(b, addr);
    bool found = i < b->nr && b->ranges[i].base <= addr;
    if (found)
        *out = b->ranges[i];
    pthread_mutex_unlock(&b->lock);
    return found;
}

static unsigned enter(struct bus *b)
{
    unsigned idx = __atomic_load_n(&b->epoch, __ATOMIC_SEQ_CST) & 1;
    __atomic_fetch_add(&b->active[idx], 1, __ATOMIC_SEQ_CST);
    return idx;
}

static void leave(struct bus *b, unsigned idx)
{
    __atomic_fetch_sub(&b->active[idx], 1, __ATOMIC_RELEASE);
}

bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned size)
{
    struct bus_range r;
    unsigned idx = enter(b);
    if (!lookup(b, addr, &r) || !r.ops->read) {
        leave(b, idx);
        memset(data, 0xff, size);
        return false;
    }
    r.ops->read(r.opaque, addr - r.base, data, size);
    leave(b, idx);
    return true;
}

bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned size)
{
    struct bus_range r;
    unsigned idx = enter(b);
    bool found = lookup(b, addr, &r) && r.ops->write;
    if (found)
        r.ops->write(r.opaque, addr - r.base, data, size);
    leave(b, idx);
    return found;
}

/* A dispatch that read the old epoch before the flip but counted itself
 * after the wait began is counted in the old counter and waited for; one
 * that counted itself after the wait ended did its lookup after the
 * unregister (which preceded the flip), so it cannot reach the old range. */
void bus_synchronize(struct bus *b)
{
    unsigned old = __atomic_fetch_add(&b->epoch, 1, __ATOMIC_SEQ_CST) & 1;
    while (__atomic_load_n(&b->active[old], __ATOMIC_ACQUIRE) != 0)
        sched_yield();
}
