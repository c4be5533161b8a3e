#include "devices/virtio/mem.h"

#include <errno.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define MEM_STATE_VERSION 1

static uint64_t le64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);       /* x86: little-endian already */
    return v;
}

static uint64_t usable_for(const struct virtio_mem *m, uint64_t requested)
{
    uint64_t want = requested + VIRTIO_MEM_USABLE_EXTENT;
    want = (want + m->block_size - 1) & ~(m->block_size - 1);
    return MIN(want, m->region_size);
}

static void mem_config_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    struct virtio_mem *m = vdev->opaque;
    uint64_t cfg[VIRTIO_MEM_CONFIG_SIZE / 8] = {
        m->block_size, 0 /* node_id, padding */, m->addr, m->region_size,
        m->usable_region_size, m->plugged_size, m->requested_size,
    };
    memcpy(buf, (uint8_t *)cfg + off, len);
}

/* Is [addr, addr + nb blocks) whole blocks inside the usable region? */
static bool range_ok(const struct virtio_mem *m, uint64_t addr, uint16_t nb)
{
    if (!nb || addr < m->addr || (addr - m->addr) % m->block_size)
        return false;
    uint64_t off = addr - m->addr, len = (uint64_t)nb * m->block_size;
    return off < m->usable_region_size && len <= m->usable_region_size - off;
}

static void warn_once(struct virtio_mem *m, const char *what, int err)
{
    if (!m->warned) {
        m->warned = true;
        log_warn("virtio-mem %s: %s: %s", m->id, what, g_strerror(-err));
    }
}

/* One request; returns the response type, *state for STATE. Loop thread,
 * vdev.lock held. */
static uint16_t mem_request(struct virtio_mem *m, const uint8_t *req, uint16_t *state)
{
    struct guest_memory *gm = m->vdev.gm;
    uint16_t type, nb;
    memcpy(&type, req, 2);
    uint64_t addr = le64_at(req + 8);
    memcpy(&nb, req + 16, 2);
    uint64_t len = (uint64_t)nb * m->block_size;

    switch (type) {
    case VIRTIO_MEM_REQ_PLUG:
        if (!range_ok(m, addr, nb))
            return VIRTIO_MEM_RESP_ERROR;
        if (m->plugged_size + len > m->requested_size)
            return VIRTIO_MEM_RESP_NACK;
        if (guest_memory_count_plugged(gm, addr, len) != 0)
            return VIRTIO_MEM_RESP_ERROR;
        guest_memory_set_plugged(gm, addr, len, true);
        m->plugged_size += len;
        return VIRTIO_MEM_RESP_ACK;
    case VIRTIO_MEM_REQ_UNPLUG: {
        if (!range_ok(m, addr, nb) || guest_memory_count_plugged(gm, addr, len) != nb)
            return VIRTIO_MEM_RESP_ERROR;
        /* Unplugged whatever the discard says: the block is the guest's no more. */
        int r = guest_memory_set_plugged(gm, addr, len, false);
        if (r < 0)
            warn_once(m, "cannot give unplugged memory back to the host", r);
        m->plugged_size -= len;
        return VIRTIO_MEM_RESP_ACK;
    }
    case VIRTIO_MEM_REQ_UNPLUG_ALL: {
        int r = guest_memory_set_plugged(gm, m->addr, m->region_size, false);
        if (r < 0)
            warn_once(m, "cannot give unplugged memory back to the host", r);
        m->plugged_size = 0;
        /* The one time the usable region may shrink, without a notification. */
        m->usable_region_size = usable_for(m, m->requested_size);
        return VIRTIO_MEM_RESP_ACK;
    }
    case VIRTIO_MEM_REQ_STATE: {
        if (!range_ok(m, addr, nb))
            return VIRTIO_MEM_RESP_ERROR;
        uint64_t n = guest_memory_count_plugged(gm, addr, len);
        *state = n == nb ? VIRTIO_MEM_STATE_PLUGGED : n == 0 ? VIRTIO_MEM_STATE_UNPLUGGED : VIRTIO_MEM_STATE_MIXED;
        return VIRTIO_MEM_RESP_ACK;
    }
    default:
        return VIRTIO_MEM_RESP_ERROR;
    }
}

static int mem_handle(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_mem *m = vdev->opaque;
    struct virtqueue *vq = virtio_vq(vdev, qi);
    struct virtq_chain c;
    /* One ring's worth per run, then the loop's other work. */
    unsigned budget = vq->size;
    int r = 0;
    g_mutex_lock(&vdev->lock);
    uint64_t before = m->plugged_size;
    g_mutex_unlock(&vdev->lock);
    do {
        virtq_disable_notify(vq);
        while (budget && (r = virtq_pop(vq, &c)) > 0) {
            budget--;
            uint8_t req[VIRTIO_MEM_REQ_SIZE], resp[VIRTIO_MEM_RESP_SIZE] = { 0 };
            /* A request without its 24 bytes or room for the 10-byte answer
             * is a broken driver, not a bad request: NEEDS_RESET. */
            if (c.out_len < sizeof(req) || c.in_len < sizeof(resp)) {
                r = -EINVAL;
                break;
            }
            virtq_chain_read(&c, 0, req, sizeof(req));
            uint16_t state = 0;
            g_mutex_lock(&vdev->lock);
            uint16_t type = mem_request(m, req, &state);
            g_mutex_unlock(&vdev->lock);
            memcpy(resp, &type, 2);
            memcpy(resp + 8, &state, 2);
            virtq_chain_write(vq, &c, 0, resp, sizeof(resp));
            virtq_push(vq, &c, sizeof(resp));
        }
        if (r < 0 || !budget)
            break;
    } while (virtq_enable_notify(vq));
    g_mutex_lock(&vdev->lock);
    uint64_t after = m->plugged_size;
    g_mutex_unlock(&vdev->lock);
    if (after != before && m->size_changed)
        m->size_changed(m->size_opaque, m, after);
    if (r < 0)
        return r;
    virtio_notify_queue(vdev, qi);
    if (!budget)
        virtio_queue_defer(vdev, qi);
    return 0;
}

static int mem_save(struct virtio_device *vdev, struct state_writer *w)
{
    struct virtio_mem *m = vdev->opaque;
    uint64_t blocks = m->region_size / m->block_size;
    state_begin_section(w, "virtio-mem", MEM_STATE_VERSION);
    state_put_u64(w, m->addr);
    state_put_u64(w, m->region_size);
    state_put_u64(w, m->block_size);
    state_put_u64(w, m->usable_region_size);
    state_put_u64(w, m->requested_size);
    /* One byte per block: plugged or not (the sizes follow from it). */
    for (uint64_t b = 0; b < blocks; b++)
        state_put_u8(w, guest_memory_count_plugged(vdev->gm, m->addr + b * m->block_size, m->block_size) != 0);
    state_end_section(w);
    return 0;
}

static int mem_load(struct virtio_device *vdev, struct state_reader *r)
{
    struct virtio_mem *m = vdev->opaque;
    uint64_t addr = 0, region = 0, block = 0, usable = 0, requested = 0;
    if (state_open_section(r, "virtio-mem", MEM_STATE_VERSION, NULL, NULL) < 0)
        return -EINVAL;
    state_get_u64(r, &addr);
    state_get_u64(r, &region);
    state_get_u64(r, &block);
    state_get_u64(r, &usable);
    if (state_get_u64(r, &requested) < 0 || addr != m->addr || region != m->region_size || block != m->block_size ||
        usable > region || usable % block || requested > usable || requested % block)
        return -EINVAL;
    uint64_t blocks = region / block;
    g_autofree uint8_t *plugged = g_malloc(blocks);
    if (state_get_bytes(r, plugged, blocks) < 0 || state_close_section(r, NULL) < 0)
        return -EINVAL;
    uint64_t size = 0;
    for (uint64_t b = 0; b < blocks; b++) {
        if (plugged[b] > 1 || (plugged[b] && b * block >= usable))
            return -EINVAL;
        size += plugged[b] * block;
    }
    g_mutex_lock(&vdev->lock);
    for (uint64_t b = 0; b < blocks; b++)
        guest_memory_set_plugged(vdev->gm, addr + b * block, block, plugged[b]);
    m->usable_region_size = usable;
    m->requested_size = requested;
    m->plugged_size = size;
    g_mutex_unlock(&vdev->lock);
    return 0;
}

static const struct virtio_device_ops mem_ops = {
    .name = "virtio-mem",
    .config_read = mem_config_read,
    .save = mem_save,
    .load = mem_load,
};

struct virtio_mem *virtio_mem_new(struct guest_memory *gm, struct loop *loop, const char *id, uint64_t requested)
{
    const struct guest_region *hp = guest_memory_hotplug_region(gm);
    g_assert(hp);
    struct virtio_mem *m = g_new0(struct virtio_mem, 1);
    m->id = g_strdup(id);
    m->addr = hp->gpa;
    m->region_size = hp->size;
    m->block_size = hp->block_size;
    m->requested_size = MIN(requested, hp->size) & ~(m->block_size - 1);
    m->usable_region_size = usable_for(m, m->requested_size);
    virtio_device_init(&m->vdev, VIRTIO_ID_MEM, &mem_ops, m, gm, loop,
                       VIRTIO_BIT(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE), VIRTIO_MEM_CONFIG_SIZE, 1);
    virtio_queue_init(&m->vdev, 0, VIRTIO_MEM_QUEUE_SIZE, mem_handle);
    return m;
}

void virtio_mem_free(struct virtio_mem *m)
{
    if (!m)
        return;
    virtio_device_destroy(&m->vdev);
    g_free(m->id);
    g_free(m);
}

void virtio_mem_set_size_cb(struct virtio_mem *m, virtio_mem_size_fn fn, void *opaque)
{
    m->size_changed = fn;
    m->size_opaque = opaque;
}

int virtio_mem_set_requested(struct virtio_mem *m, uint64_t size)
{
    if (size > m->region_size || size % m->block_size)
        return -EINVAL;
    g_mutex_lock(&m->vdev.lock);
    m->requested_size = size;
    m->usable_region_size = MAX(m->usable_region_size, usable_for(m, size));
    g_mutex_unlock(&m->vdev.lock);
    /* Even when nothing changed: a driver that gave up may try again. */
    virtio_config_changed(&m->vdev);
    return 0;
}

uint64_t virtio_mem_requested(struct virtio_mem *m)
{
    g_mutex_lock(&m->vdev.lock);
    uint64_t v = m->requested_size;
    g_mutex_unlock(&m->vdev.lock);
    return v;
}

uint64_t virtio_mem_plugged(struct virtio_mem *m)
{
    g_mutex_lock(&m->vdev.lock);
    uint64_t v = m->plugged_size;
    g_mutex_unlock(&m->vdev.lock);
    return v;
}
