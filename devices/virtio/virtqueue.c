#include "devices/virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "vmm/memory.h"

/* Memory ordering. The guest driver and this device share the rings without
 * locks, running on different CPUs:
 *  - avail->idx is loaded with acquire: the driver writes the ring entry and
 *    the descriptors before it publishes the new idx (with a write barrier),
 *    so everything we read after the load must not be satisfied earlier.
 *  - used->idx is stored with release: the used element and the data we put
 *    in the guest's buffers must be visible before the driver sees the idx.
 *  - Both sides then read what the other published (we store used->idx and
 *    read used_event/flags; the driver stores used_event and reads used->idx;
 *    the same with avail->idx and avail_event). That is store-then-load,
 *    which only a full fence orders; without it both sides can miss each
 *    other's update and an interrupt or a kick is lost for good. */

#define DESC_SIZE 16

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

uint64_t virtq_desc_bytes(uint16_t size)
{
    return (uint64_t)DESC_SIZE * size;
}

/* flags, idx, ring[size], used_event */
uint64_t virtq_avail_bytes(uint16_t size)
{
    return 6 + 2ULL * size;
}

/* flags, idx, ring[size] of {id, len}, avail_event */
uint64_t virtq_used_bytes(uint16_t size)
{
    return 6 + 8ULL * size;
}

bool virtq_size_valid(uint32_t size)
{
    return size >= 1 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) == 0;
}

void virtq_init(struct virtqueue *q, struct guest_memory *gm)
{
    memset(q, 0, sizeof(*q));
    q->gm = gm;
}

void virtq_disable(struct virtqueue *q)
{
    struct guest_memory *gm = q->gm;
    g_free(q->bufs);
    virtq_init(q, gm);
}

int virtq_enable(struct virtqueue *q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
                 uint16_t last_avail_idx, uint16_t used_idx)
{
    bool event_idx = q->event_idx, indirect = q->indirect;
    virtq_disable(q);
    q->event_idx = event_idx;
    q->indirect = indirect;
    if (!virtq_size_valid(size))
        return -EINVAL;
    if (desc % VIRTQ_DESC_ALIGN || avail % VIRTQ_AVAIL_ALIGN || used % VIRTQ_USED_ALIGN)
        return -EINVAL;
    uint8_t *d = guest_memory_ptr(q->gm, desc, virtq_desc_bytes(size));
    uint8_t *a = guest_memory_ptr(q->gm, avail, virtq_avail_bytes(size));
    uint8_t *u = guest_memory_ptr(q->gm, used, virtq_used_bytes(size));
    if (!d || !a || !u)
        return -EFAULT;
    q->size = size;
    q->desc_gpa = desc;
    q->avail_gpa = avail;
    q->used_gpa = used;
    q->desc = d;
    q->avail = a;
    q->used = u;
    q->last_avail_idx = last_avail_idx;
    q->used_idx = used_idx;
    q->signalled_used = used_idx;
    q->signalled_used_valid = false;
    q->bufs = g_new(struct virtq_buf, size);
    q->ready = true;
    return 0;
}

static uint16_t load_acquire16(const uint8_t *p)
{
    return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static uint16_t load16(const uint8_t *p)
{
    return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static void store16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static void store32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

/* One copy of the descriptor: the guest may rewrite it while we look, and a
 * second read could see different values than the ones we checked. */
static void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
    struct desc raw;
    memcpy(&raw, table + (uint64_t)i * DESC_SIZE, DESC_SIZE);
    d->addr = le64toh(raw.addr);
    d->len = le32toh(raw.len);
    d->flags = le16toh(raw.flags);
    d->next = le16toh(raw.next);
}

static uint16_t avail_idx(const struct virtqueue *q)
{
    return load_acquire16(q->avail + 2);
}

int virtq_pop(struct virtqueue *q, struct virtq_chain *chain)
{
    if (!q->ready)
        return 0;
    uint16_t pending = (uint16_t)(avail_idx(q) - q->last_avail_idx);
    if (pending == 0)
        return 0;
    if (pending > q->size)
        return -EINVAL;

    uint16_t head = load16(q->avail + 4 + 2 * (q->last_avail_idx & (q->size - 1)));
    if (head >= q->size)
        return -EINVAL;

    const uint8_t *table = q->desc;
    uint32_t table_len = q->size;
    uint32_t i = head;
    bool indirect = false, seen_write = false;
    unsigned n = 0, n_out = 0;
    uint64_t out_len = 0, in_len = 0;

    /* Each pass either records a buffer (at most q->size of them, the
     * longest chain a driver may build, indirect entries included) or
     * enters the one allowed indirect table: the walk always ends. */
    for (;;) {
        struct desc d;
        read_desc(table, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (indirect || !q->indirect || (d.flags & VIRTQ_DESC_F_NEXT))
                return -EINVAL;
            if (d.len == 0 || d.len % DESC_SIZE)
                return -EINVAL;
            table = guest_memory_ptr(q->gm, d.addr, d.len);
            if (!table)
                return -EFAULT;
            table_len = d.len / DESC_SIZE;
            indirect = true;
            i = 0;
            continue;
        }
        if (n >= q->size)
            return -ELOOP;
        if (d.len == 0)
            return -EINVAL;
        uint8_t *hva = guest_memory_ptr(q->gm, d.addr, d.len);
        if (!hva)
            return -EFAULT;
        if (d.flags & VIRTQ_DESC_F_WRITE) {
            seen_write = true;
            in_len += d.len;
            if (in_len > UINT32_MAX)
                return -EINVAL;
        } else {
            if (seen_write)
                return -EINVAL;
            out_len += d.len;
            n_out++;
        }
        q->bufs[n++] = (struct virtq_buf){ .hva = hva, .gpa = d.addr, .len = d.len };
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            break;
        if (d.next >= table_len)
            return -EINVAL;
        i = d.next;
    }

    q->last_avail_idx++;
    *chain = (struct virtq_chain){
        .head = head, .n_out = n_out, .n_in = n - n_out,
        .out_len = out_len, .in_len = in_len, .bufs = q->bufs,
    };
    return 1;
}

void virtq_unpop(struct virtqueue *q)
{
    q->last_avail_idx--;
}

struct virtq_chain *virtq_chain_dup(const struct virtq_chain *chain)
{
    size_t n = chain->n_out + chain->n_in;
    struct virtq_chain *c = g_malloc(sizeof(*c) + n * sizeof(struct virtq_buf));
    *c = *chain;
    c->bufs = (struct virtq_buf *)(c + 1);
    memcpy(c->bufs, chain->bufs, n * sizeof(struct virtq_buf));
    return c;
}

size_t virtq_chain_write(struct virtqueue *q, const struct virtq_chain *chain, size_t off,
                         const void *data, size_t len)
{
    const uint8_t *src = data;
    size_t done = 0;
    for (unsigned i = chain->n_out; i < chain->n_out + chain->n_in && done < len; i++) {
        const struct virtq_buf *b = &chain->bufs[i];
        if (off >= b->len) {
            off -= b->len;
            continue;
        }
        size_t n = MIN(b->len - off, len - done);
        memcpy(b->hva + off, src + done, n);
        guest_memory_mark_dirty(q->gm, b->gpa + off, n);
        done += n;
        off = 0;
    }
    return done;
}

size_t virtq_chain_read(const struct virtq_chain *chain, size_t off, void *data, size_t len)
{
    uint8_t *dst = data;
    size_t done = 0;
    for (unsigned i = 0; i < chain->n_out && done < len; i++) {
        const struct virtq_buf *b = &chain->bufs[i];
        if (off >= b->len) {
            off -= b->len;
            continue;
        }
        size_t n = MIN(b->len - off, len - done);
        memcpy(dst + done, b->hva + off, n);
        done += n;
        off = 0;
    }
    return done;
}

static void mark_written(struct virtqueue *q, const struct virtq_chain *chain, uint32_t len)
{
    for (unsigned i = chain->n_out; i < chain->n_out + chain->n_in && len; i++) {
        const struct virtq_buf *b = &chain->bufs[i];
        uint32_t n = MIN(b->len, len);
        guest_memory_mark_dirty(q->gm, b->gpa, n);
        len -= n;
    }
}

void virtq_fill(struct virtqueue *q, const struct virtq_chain *chain, uint32_t len, uint16_t pos)
{
    if (!q->ready)
        return;
    if (len > chain->in_len)
        len = (uint32_t)chain->in_len;
    mark_written(q, chain, len);

    uint32_t slot = (uint16_t)(q->used_idx + pos) & (q->size - 1);
    uint8_t *elem = q->used + 4 + 8 * slot;
    store32(elem, chain->head);
    store32(elem + 4, len);
    guest_memory_mark_dirty(q->gm, q->used_gpa + 4 + 8 * slot, 8);
}

void virtq_flush(struct virtqueue *q, uint16_t count)
{
    if (!q->ready || !count)
        return;
    q->used_idx += count;
    __atomic_store_n((uint16_t *)(q->used + 2), htole16(q->used_idx), __ATOMIC_RELEASE);
    guest_memory_mark_dirty(q->gm, q->used_gpa + 2, 2);
}

void virtq_push(struct virtqueue *q, const struct virtq_chain *chain, uint32_t len)
{
    virtq_fill(q, chain, len, 0);
    virtq_flush(q, 1);
}

bool virtq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

bool virtq_should_notify(struct virtqueue *q)
{
    if (!q->ready)
        return false;
    uint16_t old = q->signalled_used;
    bool valid = q->signalled_used_valid;
    q->signalled_used = q->used_idx;
    q->signalled_used_valid = true;
    if (old == q->used_idx)
        return false;       /* nothing pushed since the last decision */

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!q->event_idx)
        return !(load16(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    /* Without a valid mark (fresh enable, restore) we cannot tell whether
     * the driver is waiting: notify, a spurious interrupt is harmless. */
    if (!valid)
        return true;
    uint16_t used_event = load16(q->avail + 4 + 2ULL * q->size);
    return virtq_need_event(used_event, q->used_idx, old);
}

void virtq_disable_notify(struct virtqueue *q)
{
    if (!q->ready || q->event_idx)
        return;     /* with EVENT_IDX the driver kicks only past avail_event, left as is */
    store16(q->used, VIRTQ_USED_F_NO_NOTIFY);
    guest_memory_mark_dirty(q->gm, q->used_gpa, 2);
}

bool virtq_enable_notify(struct virtqueue *q)
{
    if (!q->ready)
        return false;
    if (q->event_idx) {
        store16(q->used + 4 + 8ULL * q->size, q->last_avail_idx);
        guest_memory_mark_dirty(q->gm, q->used_gpa + 4 + 8ULL * q->size, 2);
    } else {
        store16(q->used, 0);
        guest_memory_mark_dirty(q->gm, q->used_gpa, 2);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return avail_idx(q) != q->last_avail_idx;
}

bool virtq_enable_notify_more(struct virtqueue *q)
{
    if (!q->ready)
        return false;
    uint16_t seen = avail_idx(q);
    if (q->event_idx) {
        store16(q->used + 4 + 8ULL * q->size, seen);
        guest_memory_mark_dirty(q->gm, q->used_gpa + 4 + 8ULL * q->size, 2);
    } else {
        store16(q->used, 0);
        guest_memory_mark_dirty(q->gm, q->used_gpa, 2);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return avail_idx(q) != seen;
}

const char *virtq_strerror(int err)
{
    switch (err) {
    case -ELOOP:
        return "a descriptor chain longer than the queue (a loop?)";
    case -EFAULT:
        return "a ring, table or buffer outside guest RAM";
    case -EINVAL:
        return "a malformed ring index or descriptor";
    case -EPROTO:
        return "a request without the header or status buffer its device type needs";
    default:
        return g_strerror(-err);
    }
}
