#include "devices/virtio/virtio.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/state.h"

#define VIRTIO_STATE_VERSION 1

static struct virtio_queue *queue_get(struct virtio_device *vdev, unsigned qi)
{
    if (qi >= vdev->num_queues || vdev->queues[qi].max_size == 0)
        return NULL;
    return &vdev->queues[qi];
}

static uint8_t status_load(struct virtio_device *vdev)
{
    return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

static bool queue_live(const struct virtio_queue *q)
{
    return __atomic_load_n(&q->enabled, __ATOMIC_ACQUIRE);
}

static void queue_clear(struct virtio_queue *q)
{
    __atomic_store_n(&q->enabled, false, __ATOMIC_RELEASE);
    virtq_disable(&q->vq);
    q->size = q->max_size;
    q->desc = q->avail = q->used = 0;
    q->vector = VIRTIO_NO_VECTOR;
}

void virtio_device_init(struct virtio_device *vdev, uint16_t device_id,
                        const struct virtio_device_ops *ops, void *opaque,
                        struct guest_memory *gm, struct loop *loop, uint64_t features,
                        uint32_t config_size, unsigned num_queues)
{
    memset(vdev, 0, sizeof(*vdev));
    vdev->device_id = device_id;
    vdev->ops = ops;
    vdev->opaque = opaque;
    vdev->gm = gm;
    vdev->loop = loop;
    vdev->device_features = features | VIRTIO_CORE_FEATURES;
    vdev->config_size = config_size;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    g_mutex_init(&vdev->lock);
    vdev->num_queues = MIN(num_queues, VIRTIO_MAX_QUEUES);
    vdev->queues = g_new0(struct virtio_queue, vdev->num_queues);
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        struct virtio_queue *q = &vdev->queues[i];
        q->vdev = vdev;
        q->index = i;
        q->kick_fd = -1;
        virtq_init(&q->vq, gm);
        queue_clear(q);
    }
}

void virtio_queue_init(struct virtio_device *vdev, unsigned qi, uint16_t max_size,
                       virtio_queue_fn handler)
{
    g_assert(qi < vdev->num_queues && virtq_size_valid(max_size));
    struct virtio_queue *q = &vdev->queues[qi];
    q->max_size = max_size;
    q->size = max_size;
    q->handler = handler;
}

void virtio_device_destroy(struct virtio_device *vdev)
{
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        virtio_queue_set_kick_fd(vdev, i, -1);
        virtq_disable(&vdev->queues[i].vq);
    }
    g_free(vdev->queues);
    g_mutex_clear(&vdev->lock);
    memset(vdev, 0, sizeof(*vdev));
}

void virtio_set_transport(struct virtio_device *vdev, const struct virtio_transport *t)
{
    vdev->transport = *t;
}

/* ---- interrupts ---- */

static void interrupt_driver(struct virtio_device *vdev, uint8_t isr_bit, uint16_t vector)
{
    __atomic_fetch_or(&vdev->isr, isr_bit, __ATOMIC_RELEASE);
    if (vdev->transport.interrupt)
        vdev->transport.interrupt(vdev->transport.opaque, vector);
}

void virtio_notify_queue(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (q && queue_live(q) && virtq_should_notify(&q->vq))
        interrupt_driver(vdev, VIRTIO_ISR_QUEUE, __atomic_load_n(&q->vector, __ATOMIC_RELAXED));
}

void virtio_config_changed(struct virtio_device *vdev)
{
    __atomic_fetch_add(&vdev->config_generation, 1, __ATOMIC_RELEASE);
    if (status_load(vdev) & VIRTIO_STATUS_DRIVER_OK)
        interrupt_driver(vdev, VIRTIO_ISR_CONFIG, __atomic_load_n(&vdev->config_vector, __ATOMIC_RELAXED));
}

void virtio_device_error(struct virtio_device *vdev, unsigned qi, int err)
{
    uint8_t old = __atomic_fetch_or(&vdev->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);
    if (!__atomic_exchange_n(&vdev->error_logged, true, __ATOMIC_RELAXED))
        log_warn("%s: the guest driver broke virtqueue %u (%s); the device stops until the guest resets it",
                 vdev->ops->name, qi, virtq_strerror(err));
    /* 2.1.2: with DRIVER_OK set, NEEDS_RESET comes with a config change
     * notification so the driver notices. */
    if (!(old & VIRTIO_STATUS_NEEDS_RESET) && (old & VIRTIO_STATUS_DRIVER_OK))
        interrupt_driver(vdev, VIRTIO_ISR_CONFIG, __atomic_load_n(&vdev->config_vector, __ATOMIC_RELAXED));
}

uint8_t virtio_read_isr(struct virtio_device *vdev)
{
    return __atomic_exchange_n(&vdev->isr, 0, __ATOMIC_ACQ_REL);
}

/* ---- queue processing (loop thread) ---- */

void virtio_queue_run(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    uint8_t st = status_load(vdev);
    if (!q || !q->handler || !(st & VIRTIO_STATUS_DRIVER_OK) || (st & VIRTIO_STATUS_NEEDS_RESET))
        return;
    if (!queue_live(q))
        return;
    int r = q->handler(vdev, qi);
    if (r < 0)
        virtio_device_error(vdev, qi, r);
}

static void on_kick(void *opaque, int fd, uint32_t revents)
{
    struct virtio_queue *q = opaque;
    uint64_t n;
    /* Drain first: a kick that lands while the handler runs re-arms the fd
     * and gets its own pass. */
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("%s: queue %u: reading its kick eventfd: %s", q->vdev->ops->name, q->index,
                 g_strerror(errno));
    virtio_queue_run(q->vdev, q->index);
}

int virtio_queue_set_kick_fd(struct virtio_device *vdev, unsigned qi, int fd)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (!q || !vdev->loop)
        return fd < 0 ? 0 : -EINVAL;
    if (q->kick_fd >= 0) {
        loop_remove_fd(vdev->loop, q->kick_fd);
        q->kick_fd = -1;
    }
    if (fd < 0)
        return 0;
    int r = loop_add_fd(vdev->loop, fd, POLLIN, on_kick, q);
    if (r == 0)
        q->kick_fd = fd;
    return r;
}

static void notify_on_loop(void *opaque)
{
    struct virtio_queue *q = opaque;
    virtio_queue_run(q->vdev, q->index);
}

void virtio_queue_notify(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (!q)
        return;
    if (vdev->loop)
        loop_call(vdev->loop, notify_on_loop, q);
    else
        virtio_queue_run(vdev, qi);
}

void virtio_queue_defer(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (q && vdev->loop)
        loop_call(vdev->loop, notify_on_loop, q);
}

int virtio_queue_drain(struct virtio_device *vdev, unsigned qi, virtio_chain_fn fn)
{
    struct virtqueue *vq = virtio_vq(vdev, qi);
    struct virtq_chain c;
    unsigned budget = vq->size;
    bool notify = false;
    int r = 0;
    do {
        virtq_disable_notify(vq);
        while (budget && (r = virtq_pop(vq, &c)) > 0) {
            budget--;
            int done = fn(vdev, qi, &c);
            if (done < 0)
                return done;
            if (done == VIRTIO_CHAIN_PUSHED)
                notify = true;
            else if (done == VIRTIO_CHAIN_HOLD) {
                if (notify)
                    virtio_notify_queue(vdev, qi);
                return 0;
            }
        }
        if (!budget) {
            if (notify)
                virtio_notify_queue(vdev, qi);
            virtio_queue_defer(vdev, qi);
            return 0;
        }
        if (r < 0)
            return r;
    } while (virtq_enable_notify(vq));
    if (notify)
        virtio_notify_queue(vdev, qi);
    return 0;
}

/* Buffers made available before DRIVER_OK got no kick that counted. */
static void run_all_on_loop(void *opaque)
{
    struct virtio_device *vdev = opaque;
    for (unsigned i = 0; i < vdev->num_queues; i++)
        virtio_queue_run(vdev, i);
}

/* ---- features and status ---- */

uint32_t virtio_get_device_features(struct virtio_device *vdev, uint32_t sel)
{
    return sel < 2 ? (uint32_t)(vdev->device_features >> (32 * sel)) : 0;
}

uint32_t virtio_get_driver_features(struct virtio_device *vdev, uint32_t sel)
{
    g_mutex_lock(&vdev->lock);
    uint32_t v = sel < 2 ? (uint32_t)(vdev->driver_features >> (32 * sel)) : 0;
    g_mutex_unlock(&vdev->lock);
    return v;
}

void virtio_set_driver_features(struct virtio_device *vdev, uint32_t sel, uint32_t val)
{
    g_mutex_lock(&vdev->lock);
    if (sel < 2 && !(vdev->status & VIRTIO_STATUS_FEATURES_OK) && !vdev->reset_pending) {
        uint64_t mask = 0xffffffffULL << (32 * sel);
        vdev->driver_features = (vdev->driver_features & ~mask) | ((uint64_t)val << (32 * sel));
    }
    g_mutex_unlock(&vdev->lock);
}

uint8_t virtio_get_status(struct virtio_device *vdev)
{
    return status_load(vdev);
}

/* The registers back to their state after virtio_device_init. Lock held. */
static void registers_reset(struct virtio_device *vdev)
{
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        queue_clear(&vdev->queues[i]);
        __atomic_store_n(&vdev->queues[i].reset_state, VIRTIO_QUEUE_RESET_NONE, __ATOMIC_RELEASE);
    }
    vdev->driver_features = 0;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    __atomic_store_n(&vdev->isr, 0, __ATOMIC_RELAXED);
}

static void device_reset(struct virtio_device *vdev)
{
    g_mutex_lock(&vdev->lock);
    if (vdev->ops->reset)
        vdev->ops->reset(vdev);
    registers_reset(vdev);
    __atomic_store_n(&vdev->status, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&vdev->reset_pending, false, __ATOMIC_RELEASE);
    g_mutex_unlock(&vdev->lock);
}

static void reset_on_loop(void *opaque)
{
    device_reset(opaque);
}

static bool features_acceptable(struct virtio_device *vdev)
{
    uint64_t f = vdev->driver_features;
    if (f & ~vdev->device_features)
        return false;
    /* Modern only: a driver that does not accept VERSION_1 is legacy. */
    if (!(f & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
        return false;
    return !vdev->ops->features_ok || vdev->ops->features_ok(vdev, f);
}

void virtio_set_status(struct virtio_device *vdev, uint8_t val)
{
    g_mutex_lock(&vdev->lock);
    if (vdev->reset_pending) {
        g_mutex_unlock(&vdev->lock);
        return;
    }
    if (val == 0 && status_load(vdev) == 0) {
        /* Nothing ran since the last reset (no DRIVER_OK, no live queue),
         * so there is nothing for the loop to stop: only what the driver
         * wrote meanwhile is cleared, now. Deferring this one would let the
         * status read 0 while the driver's next writes are still dropped. */
        registers_reset(vdev);
        g_mutex_unlock(&vdev->lock);
        return;
    }
    if (val == 0) {
        vdev->reset_pending = true;
        g_mutex_unlock(&vdev->lock);
        if (vdev->loop)
            loop_call(vdev->loop, reset_on_loop, vdev);
        else
            device_reset(vdev);
        return;
    }

    uint8_t old = status_load(vdev);
    /* The driver never clears a bit except by reset (2.1.1), and
     * NEEDS_RESET is the device's to set. */
    uint8_t add = val & ~old & ~VIRTIO_STATUS_NEEDS_RESET;
    if ((add & VIRTIO_STATUS_FEATURES_OK) &&
        (!(old & VIRTIO_STATUS_DRIVER) || !features_acceptable(vdev)))
        add &= ~VIRTIO_STATUS_FEATURES_OK;
    if ((add & VIRTIO_STATUS_DRIVER_OK) && !((old | add) & VIRTIO_STATUS_FEATURES_OK))
        add &= ~VIRTIO_STATUS_DRIVER_OK;
    __atomic_fetch_or(&vdev->status, add, __ATOMIC_ACQ_REL);
    g_mutex_unlock(&vdev->lock);

    if (add & VIRTIO_STATUS_DRIVER_OK) {
        if (vdev->loop)
            loop_call(vdev->loop, run_all_on_loop, vdev);
        else
            run_all_on_loop(vdev);
    }
}

/* ---- config space ---- */

uint32_t virtio_config_generation(struct virtio_device *vdev)
{
    return __atomic_load_n(&vdev->config_generation, __ATOMIC_ACQUIRE);
}

void virtio_config_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    memset(buf, 0, len);
    if (off >= vdev->config_size || !vdev->ops->config_read)
        return;
    len = MIN(len, vdev->config_size - off);
    g_mutex_lock(&vdev->lock);
    vdev->ops->config_read(vdev, off, buf, len);
    g_mutex_unlock(&vdev->lock);
}

void virtio_config_write(struct virtio_device *vdev, uint32_t off, const void *buf, uint32_t len)
{
    if (off >= vdev->config_size || !vdev->ops->config_write)
        return;
    len = MIN(len, vdev->config_size - off);
    g_mutex_lock(&vdev->lock);
    vdev->ops->config_write(vdev, off, buf, len);
    g_mutex_unlock(&vdev->lock);
}

uint16_t virtio_get_config_vector(struct virtio_device *vdev)
{
    return __atomic_load_n(&vdev->config_vector, __ATOMIC_RELAXED);
}

void virtio_set_config_vector(struct virtio_device *vdev, uint16_t vector)
{
    __atomic_store_n(&vdev->config_vector, vector, __ATOMIC_RELAXED);
}

/* ---- queue registers ---- */

uint16_t virtio_queue_get_max_size(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    return q ? q->max_size : 0;
}

#define QUEUE_GETTER(type, field)                                              \
    type virtio_queue_get_##field(struct virtio_device *vdev, unsigned qi)     \
    {                                                                          \
        struct virtio_queue *q = queue_get(vdev, qi);                          \
        if (!q)                                                                \
            return 0;                                                          \
        g_mutex_lock(&vdev->lock);                                             \
        type v = q->field;                                                     \
        g_mutex_unlock(&vdev->lock);                                           \
        return v;                                                              \
    }

/* Writes to a live queue's layout are ignored: the loop is using it. */
#define QUEUE_SETTER(type, field)                                              \
    void virtio_queue_set_##field(struct virtio_device *vdev, unsigned qi, type v) \
    {                                                                          \
        struct virtio_queue *q = queue_get(vdev, qi);                          \
        if (!q)                                                                \
            return;                                                            \
        g_mutex_lock(&vdev->lock);                                             \
        if (!queue_live(q))                                                    \
            q->field = v;                                                      \
        g_mutex_unlock(&vdev->lock);                                           \
    }

QUEUE_GETTER(uint16_t, size)
QUEUE_GETTER(uint64_t, desc)
QUEUE_GETTER(uint64_t, avail)
QUEUE_GETTER(uint64_t, used)
QUEUE_GETTER(uint16_t, vector)
QUEUE_SETTER(uint64_t, desc)
QUEUE_SETTER(uint64_t, avail)
QUEUE_SETTER(uint64_t, used)

void virtio_queue_set_size(struct virtio_device *vdev, unsigned qi, uint16_t size)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (!q)
        return;
    /* Any value is kept (the driver reads back what it wrote); a bad one is
     * refused when the queue is enabled. */
    g_mutex_lock(&vdev->lock);
    if (!queue_live(q))
        q->size = size;
    g_mutex_unlock(&vdev->lock);
}

void virtio_queue_set_vector(struct virtio_device *vdev, unsigned qi, uint16_t vector)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (q)
        __atomic_store_n(&q->vector, vector, __ATOMIC_RELAXED);
}

bool virtio_queue_get_enable(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    return q && queue_live(q);
}

int virtio_queue_enable(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (!q)
        return -EINVAL;
    g_mutex_lock(&vdev->lock);
    uint8_t st = status_load(vdev);
    int r = 0;
    if (queue_live(q) || vdev->reset_pending || q->reset_state == VIRTIO_QUEUE_RESET_PENDING) {
        r = queue_live(q) ? 0 : -EBUSY;
    } else if (!(st & VIRTIO_STATUS_FEATURES_OK) ||
               ((st & VIRTIO_STATUS_DRIVER_OK) && !virtio_has_feature(vdev, VIRTIO_F_RING_RESET))) {
        r = -EPERM;
    } else {
        q->vq.event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
        q->vq.indirect = virtio_has_feature(vdev, VIRTIO_F_INDIRECT_DESC);
        r = q->size > q->max_size ? -EINVAL : virtq_enable(&q->vq, q->size, q->desc, q->avail, q->used, 0, 0);
        if (r == 0) {
            __atomic_store_n(&q->reset_state, VIRTIO_QUEUE_RESET_NONE, __ATOMIC_RELAXED);
            __atomic_store_n(&q->enabled, true, __ATOMIC_RELEASE);
        }
    }
    g_mutex_unlock(&vdev->lock);
    if (r == -EINVAL || r == -EFAULT)
        virtio_device_error(vdev, qi, r);
    return r;
}

static void queue_reset_on_loop(void *opaque)
{
    struct virtio_queue *q = opaque;
    g_mutex_lock(&q->vdev->lock);
    if (q->vdev->ops->queue_reset)
        q->vdev->ops->queue_reset(q->vdev, q->index);
    queue_clear(q);
    __atomic_store_n(&q->reset_state, VIRTIO_QUEUE_RESET_NONE, __ATOMIC_RELEASE);
    g_mutex_unlock(&q->vdev->lock);
}

void virtio_queue_reset(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    if (!q || !virtio_has_feature(vdev, VIRTIO_F_RING_RESET))
        return;
    g_mutex_lock(&vdev->lock);
    bool start = q->reset_state != VIRTIO_QUEUE_RESET_PENDING && !vdev->reset_pending;
    if (start)
        __atomic_store_n(&q->reset_state, VIRTIO_QUEUE_RESET_PENDING, __ATOMIC_RELAXED);
    g_mutex_unlock(&vdev->lock);
    if (!start)
        return;
    if (vdev->loop)
        loop_call(vdev->loop, queue_reset_on_loop, q);
    else
        queue_reset_on_loop(q);
}

bool virtio_queue_get_reset(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_queue *q = queue_get(vdev, qi);
    return q && __atomic_load_n(&q->reset_state, __ATOMIC_ACQUIRE) == VIRTIO_QUEUE_RESET_PENDING;
}

/* ---- save / load ---- */

int virtio_device_save(struct virtio_device *vdev, struct state_writer *w)
{
    if (vdev->ops->quiesce)
        vdev->ops->quiesce(vdev);
    state_begin_section(w, "virtio", VIRTIO_STATE_VERSION);
    state_put_u16(w, vdev->device_id);
    state_put_u32(w, vdev->num_queues);
    state_put_u64(w, vdev->device_features);
    state_put_u64(w, vdev->driver_features);
    state_put_u8(w, vdev->status);
    state_put_u8(w, vdev->isr);
    state_put_u32(w, vdev->config_generation);
    state_put_u16(w, vdev->config_vector);
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        const struct virtio_queue *q = &vdev->queues[i];
        state_put_u16(w, q->max_size);
        state_put_u16(w, q->size);
        state_put_u64(w, q->desc);
        state_put_u64(w, q->avail);
        state_put_u64(w, q->used);
        state_put_u16(w, q->vector);
        state_put_u8(w, q->enabled);
        state_put_u16(w, q->vq.last_avail_idx);
        state_put_u16(w, q->vq.used_idx);
    }
    state_end_section(w);
    return vdev->ops->save ? vdev->ops->save(vdev, w) : 0;
}

struct saved_queue {
    uint16_t max_size, size, vector, last_avail_idx, used_idx;
    uint64_t desc, avail, used;
    uint8_t enabled;
};

static int load_fail(GError **err, const char *name, const char *what)
{
    g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s state: %s; the snapshot does not fit this device",
                name, what);
    return -EINVAL;
}

int virtio_device_load(struct virtio_device *vdev, struct state_reader *r, GError **err)
{
    const char *name = vdev->ops->name;
    uint32_t version, nq = 0, gen = 0;
    uint16_t id = 0, cvec = 0;
    uint64_t devf = 0, drvf = 0;
    uint8_t status = 0, isr = 0;
    if (state_open_section(r, "virtio", VIRTIO_STATE_VERSION, &version, err) < 0)
        return -EINVAL;
    state_get_u16(r, &id);
    state_get_u32(r, &nq);
    state_get_u64(r, &devf);
    state_get_u64(r, &drvf);
    state_get_u8(r, &status);
    state_get_u8(r, &isr);
    state_get_u32(r, &gen);
    state_get_u16(r, &cvec);
    if (id != vdev->device_id || nq != vdev->num_queues)
        return load_fail(err, name, "another device type or queue count");
    if (devf != vdev->device_features || (drvf & ~devf))
        return load_fail(err, name, "features differ");

    g_autofree struct saved_queue *sq = g_new0(struct saved_queue, nq);
    for (unsigned i = 0; i < nq; i++) {
        state_get_u16(r, &sq[i].max_size);
        state_get_u16(r, &sq[i].size);
        state_get_u64(r, &sq[i].desc);
        state_get_u64(r, &sq[i].avail);
        state_get_u64(r, &sq[i].used);
        state_get_u16(r, &sq[i].vector);
        state_get_u8(r, &sq[i].enabled);
        state_get_u16(r, &sq[i].last_avail_idx);
        if (state_get_u16(r, &sq[i].used_idx) < 0)
            break;
    }
    if (state_close_section(r, err) < 0)
        return -EINVAL;

    /* Check every live queue against guest RAM before touching anything. */
    struct virtqueue probe;
    virtq_init(&probe, vdev->gm);
    for (unsigned i = 0; i < nq; i++) {
        if (sq[i].max_size != vdev->queues[i].max_size)
            return load_fail(err, name, "queue sizes differ");
        if (!sq[i].enabled)
            continue;
        int e = sq[i].size <= sq[i].max_size
                    ? virtq_enable(&probe, sq[i].size, sq[i].desc, sq[i].avail, sq[i].used, 0, 0)
                    : -EINVAL;
        virtq_disable(&probe);
        if (e < 0)
            return load_fail(err, name, "a live queue lies outside guest RAM or is malformed");
    }
    if (vdev->ops->load) {
        int e = vdev->ops->load(vdev, r);
        if (e < 0)
            return load_fail(err, name, "its device section does not load");
    }

    g_mutex_lock(&vdev->lock);
    vdev->driver_features = drvf;
    vdev->isr = isr;
    vdev->config_generation = gen;
    vdev->config_vector = cvec;
    vdev->reset_pending = false;
    for (unsigned i = 0; i < nq; i++) {
        struct virtio_queue *q = &vdev->queues[i];
        queue_clear(q);
        q->reset_state = VIRTIO_QUEUE_RESET_NONE;
        q->size = sq[i].size;
        q->desc = sq[i].desc;
        q->avail = sq[i].avail;
        q->used = sq[i].used;
        q->vector = sq[i].vector;
        if (sq[i].enabled) {
            q->vq.event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
            q->vq.indirect = virtio_has_feature(vdev, VIRTIO_F_INDIRECT_DESC);
            virtq_enable(&q->vq, q->size, q->desc, q->avail, q->used, sq[i].last_avail_idx, sq[i].used_idx);
            q->enabled = true;
        }
    }
    __atomic_store_n(&vdev->status, status, __ATOMIC_RELEASE);
    g_mutex_unlock(&vdev->lock);
    return 0;
}
