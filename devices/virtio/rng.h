/* virtio-rng (VIRTIO 1.2, 5.4): one request queue; each writable buffer the
 * driver offers comes back filled with bytes from getrandom(2). No config
 * space, no feature bits of its own, no state beyond the core's. */
#ifndef DEVICES_VIRTIO_RNG_H
#define DEVICES_VIRTIO_RNG_H

#include "devices/virtio/virtio.h"

#define VIRTIO_RNG_QUEUE_SIZE 256
/* A request gets at most this many bytes ("it MAY use less than the entire
 * buffer length"), so one chain cannot hold the loop for long. */
#define VIRTIO_RNG_MAX_REQUEST 65536

struct virtio_rng {
    struct virtio_device vdev;
};

struct virtio_rng *virtio_rng_new(struct guest_memory *gm, struct loop *loop);
void virtio_rng_free(struct virtio_rng *rng);

#endif
