#include "devices/virtio/rng.h"

#include <errno.h>
#include <sys/random.h>

#include "vmm/log.h"

/* Fills len bytes; returns how many it got. getrandom only blocks before
 * the host's entropy pool is first initialised, i.e. never once booted. */
static size_t fill_random(uint8_t *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(p + done, len - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_warn("virtio-rng: getrandom: %s", g_strerror(errno));
            break;
        }
        done += (size_t)n;
    }
    return done;
}

static int rng_fill_chain(struct virtqueue *vq, const struct virtq_chain *c)
{
    /* 5.4.6.1: the driver offers only device-writable buffers. */
    if (c->n_out || !c->n_in)
        return -EINVAL;
    uint64_t want = MIN(c->in_len, VIRTIO_RNG_MAX_REQUEST), done = 0;
    for (unsigned i = 0; i < c->n_in && done < want; i++) {
        const struct virtq_buf *b = &c->bufs[c->n_out + i];
        size_t n = (size_t)MIN((uint64_t)b->len, want - done);
        size_t got = fill_random(b->hva, n);
        done += got;
        if (got < n)
            break;
    }
    /* virtq_push marks the `done` bytes dirty along with the used ring. */
    virtq_push(vq, c, (uint32_t)done);
    return 0;
}

static int rng_chain(struct virtio_device *vdev, unsigned qi, struct virtq_chain *c)
{
    int r = rng_fill_chain(virtio_vq(vdev, qi), c);
    return r < 0 ? r : VIRTIO_CHAIN_PUSHED;
}

static int rng_handle(struct virtio_device *vdev, unsigned qi)
{
    return virtio_queue_drain(vdev, qi, rng_chain);
}

static const struct virtio_device_ops rng_ops = {
    .name = "virtio-rng",
};

struct virtio_rng *virtio_rng_new(struct guest_memory *gm, struct loop *loop)
{
    struct virtio_rng *rng = g_new0(struct virtio_rng, 1);
    virtio_device_init(&rng->vdev, VIRTIO_ID_RNG, &rng_ops, rng, gm, loop, 0, 0, 1);
    virtio_queue_init(&rng->vdev, 0, VIRTIO_RNG_QUEUE_SIZE, rng_handle);
    return rng;
}

void virtio_rng_free(struct virtio_rng *rng)
{
    if (!rng)
        return;
    virtio_device_destroy(&rng->vdev);
    g_free(rng);
}
