/* struct virtio_device over a fake guest memory, driven the way a transport
 * will drive it: feature negotiation and FEATURES_OK refusal, the status
 * state machine and reset, queue setup checks, config space and generation,
 * interrupts through a fake transport, NEEDS_RESET on a hostile ring,
 * RING_RESET, virtio-rng end to end (also through a real loop and an
 * eventfd kick) and save/load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/rng.h"
#include "devices/virtio/virtio.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define MIB (1ULL << 20)
#define RAM (16 * MIB)
#define QSZ 16
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000

struct fx {
    struct guest_memory gm;
    struct virtio_rng *rng;
    struct virtio_device *vdev;
    uint16_t avail_idx;
    unsigned irqs;
    uint16_t last_vector;
    struct loop *loop;
};

static void fake_interrupt(void *opaque, uint16_t vector)
{
    struct fx *f = opaque;
    f->irqs++;
    f->last_vector = vector;
    if (f->loop)
        loop_quit(f->loop);
}

static void attach(struct fx *f, struct loop *loop)
{
    f->loop = loop;
    f->rng = virtio_rng_new(&f->gm, loop);
    f->vdev = &f->rng->vdev;
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = fake_interrupt, .opaque = f });
}

static int setup(void **state)
{
    struct fx *f = g_new0(struct fx, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&f->gm, RAM, false, false, &err) < 0)
        fail_msg("%s", err->message);
    attach(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    virtio_rng_free(f->rng);
    guest_memory_destroy(&f->gm);
    g_free(f);
    return 0;
}

static uint8_t *hva(struct fx *f, uint64_t gpa)
{
    return f->gm.base + gpa;
}

static void put_desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *d = hva(f, DESC + 16ULL * i);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void make_avail(struct fx *f, uint16_t head)
{
    memcpy(hva(f, AVAIL + 4 + 2 * (f->avail_idx % QSZ)), &head, 2);
    f->avail_idx++;
    memcpy(hva(f, AVAIL + 2), &f->avail_idx, 2);
}

static uint16_t used_idx(struct fx *f)
{
    uint16_t v;
    memcpy(&v, hva(f, USED + 2), 2);
    return v;
}

static uint32_t used_len(struct fx *f, unsigned slot)
{
    uint32_t v;
    memcpy(&v, hva(f, USED + 8 + 8 * slot), 4);
    return v;
}

static uint64_t offered(struct virtio_device *vdev)
{
    return virtio_get_device_features(vdev, 0) | (uint64_t)virtio_get_device_features(vdev, 1) << 32;
}

static void set_driver_features(struct virtio_device *vdev, uint64_t f)
{
    virtio_set_driver_features(vdev, 0, (uint32_t)f);
    virtio_set_driver_features(vdev, 1, (uint32_t)(f >> 32));
}

/* The driver's side of 3.1.1, up to and including FEATURES_OK. */
static bool negotiate(struct virtio_device *vdev, uint64_t features)
{
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    set_driver_features(vdev, features);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return virtio_get_status(vdev) & VIRTIO_STATUS_FEATURES_OK;
}

static void setup_queue(struct fx *f, uint16_t vector)
{
    virtio_queue_set_size(f->vdev, 0, QSZ);
    virtio_queue_set_desc(f->vdev, 0, DESC);
    virtio_queue_set_avail(f->vdev, 0, AVAIL);
    virtio_queue_set_used(f->vdev, 0, USED);
    virtio_queue_set_vector(f->vdev, 0, vector);
    assert_int_equal(virtio_queue_enable(f->vdev, 0), 0);
}

static void driver_ok(struct virtio_device *vdev)
{
    virtio_set_status(vdev, virtio_get_status(vdev) | VIRTIO_STATUS_DRIVER_OK);
}

static void bring_up(struct fx *f, uint64_t features)
{
    assert_true(negotiate(f->vdev, features));
    virtio_set_config_vector(f->vdev, 7);
    setup_queue(f, 3);
    driver_ok(f->vdev);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_DRIVER_OK);
}

#define V1 VIRTIO_BIT(VIRTIO_F_VERSION_1)

/* ---- features and status ---- */

static void test_offer(void **state)
{
    struct fx *f = *state;
    uint64_t o = offered(f->vdev);
    assert_true(o & V1);
    assert_true(o & VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    assert_true(o & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
    assert_true(o & VIRTIO_BIT(VIRTIO_F_RING_RESET));
    assert_int_equal(virtio_get_device_features(f->vdev, 2), 0);
    assert_int_equal(f->vdev->device_id, VIRTIO_ID_RNG);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 0), VIRTIO_RNG_QUEUE_SIZE);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 1), 0);
    assert_int_equal(virtio_get_status(f->vdev), 0);
}

static void test_features_ok(void **state)
{
    struct fx *f = *state;
    uint64_t want = V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    assert_true(negotiate(f->vdev, want));
    assert_int_equal(virtio_get_driver_features(f->vdev, 0), (uint32_t)want);
    assert_int_equal(virtio_get_driver_features(f->vdev, 1), 1);
    /* Accepted features are frozen. */
    set_driver_features(f->vdev, V1);
    assert_int_equal(virtio_get_driver_features(f->vdev, 0), (uint32_t)want);
    assert_true(virtio_has_feature(f->vdev, VIRTIO_F_EVENT_IDX));
}

static void test_features_refused_not_offered(void **state)
{
    struct fx *f = *state;
    assert_false(negotiate(f->vdev, V1 | VIRTIO_BIT(50)));
    assert_int_equal(virtio_get_status(f->vdev), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    /* The driver may fix its set and try again. */
    set_driver_features(f->vdev, V1);
    virtio_set_status(f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_FEATURES_OK);
}

static void test_features_refused_legacy(void **state)
{
    struct fx *f = *state;
    assert_false(negotiate(f->vdev, VIRTIO_BIT(VIRTIO_F_EVENT_IDX)));
}

static void test_features_ok_needs_driver(void **state)
{
    struct fx *f = *state;
    set_driver_features(f->vdev, V1);
    virtio_set_status(f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_FEATURES_OK);
    assert_int_equal(virtio_get_status(f->vdev), VIRTIO_STATUS_ACKNOWLEDGE);
}

static void test_driver_ok_needs_features_ok(void **state)
{
    struct fx *f = *state;
    virtio_set_status(f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(virtio_get_status(f->vdev), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
}

static void test_status_bits_stick(void **state)
{
    struct fx *f = *state;
    assert_true(negotiate(f->vdev, V1));
    /* Clearing bits is not a thing a driver can do, nor setting NEEDS_RESET. */
    virtio_set_status(f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(virtio_get_status(f->vdev),
                     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_set_status(f->vdev, virtio_get_status(f->vdev) | VIRTIO_STATUS_FAILED);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_FAILED);
}

static void test_queue_enable_rules(void **state)
{
    struct fx *f = *state;
    virtio_queue_set_desc(f->vdev, 0, DESC);
    virtio_queue_set_avail(f->vdev, 0, AVAIL);
    virtio_queue_set_used(f->vdev, 0, USED);
    assert_int_equal(virtio_queue_enable(f->vdev, 0), -EPERM);      /* before FEATURES_OK */
    assert_false(virtio_queue_get_enable(f->vdev, 0));
    assert_true(negotiate(f->vdev, V1));
    assert_int_equal(virtio_queue_enable(f->vdev, 5), -EINVAL);     /* no such queue */
    virtio_queue_set_size(f->vdev, 0, QSZ);
    assert_int_equal(virtio_queue_get_size(f->vdev, 0), QSZ);
    assert_int_equal(virtio_queue_enable(f->vdev, 0), 0);
    assert_true(virtio_queue_get_enable(f->vdev, 0));
    /* A live queue's layout cannot move under the loop. */
    virtio_queue_set_desc(f->vdev, 0, 0x5000);
    virtio_queue_set_size(f->vdev, 0, 2);
    assert_int_equal(virtio_queue_get_desc(f->vdev, 0), DESC);
    assert_int_equal(virtio_queue_get_size(f->vdev, 0), QSZ);
    assert_int_equal(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_queue_enable_after_driver_ok(void **state)
{
    struct fx *f = *state;
    assert_true(negotiate(f->vdev, V1));
    driver_ok(f->vdev);
    virtio_queue_set_desc(f->vdev, 0, DESC);
    assert_int_equal(virtio_queue_enable(f->vdev, 0), -EPERM);
}

static void test_queue_enable_bad_setup(void **state)
{
    struct fx *f = *state;
    assert_true(negotiate(f->vdev, V1));
    virtio_queue_set_size(f->vdev, 0, 12);                           /* not a power of 2 */
    virtio_queue_set_desc(f->vdev, 0, DESC);
    virtio_queue_set_avail(f->vdev, 0, AVAIL);
    virtio_queue_set_used(f->vdev, 0, USED);
    assert_int_equal(virtio_queue_enable(f->vdev, 0), -EINVAL);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_false(virtio_queue_get_enable(f->vdev, 0));

    virtio_set_status(f->vdev, 0);
    assert_true(negotiate(f->vdev, V1));
    virtio_queue_set_size(f->vdev, 0, 512);                          /* above max */
    virtio_queue_set_used(f->vdev, 0, USED);
    assert_int_equal(virtio_queue_enable(f->vdev, 0), -EINVAL);

    virtio_set_status(f->vdev, 0);
    assert_true(negotiate(f->vdev, V1));
    virtio_queue_set_size(f->vdev, 0, QSZ);
    virtio_queue_set_desc(f->vdev, 0, DESC);
    virtio_queue_set_avail(f->vdev, 0, AVAIL);
    virtio_queue_set_used(f->vdev, 0, RAM + 0x1000);                 /* outside RAM */
    assert_int_equal(virtio_queue_enable(f->vdev, 0), -EFAULT);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_reset(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    virtio_set_status(f->vdev, 0);
    assert_int_equal(virtio_get_status(f->vdev), 0);
    assert_int_equal(virtio_get_driver_features(f->vdev, 0), 0);
    assert_int_equal(virtio_get_driver_features(f->vdev, 1), 0);
    assert_false(virtio_queue_get_enable(f->vdev, 0));
    assert_int_equal(virtio_queue_get_size(f->vdev, 0), VIRTIO_RNG_QUEUE_SIZE);
    assert_int_equal(virtio_queue_get_desc(f->vdev, 0), 0);
    assert_int_equal(virtio_queue_get_vector(f->vdev, 0), VIRTIO_NO_VECTOR);
    assert_int_equal(virtio_get_config_vector(f->vdev), VIRTIO_NO_VECTOR);
    assert_int_equal(virtio_read_isr(f->vdev), 0);
    /* And the device comes back up from scratch. */
    f->avail_idx = 0;
    memset(hva(f, AVAIL), 0, 0x2000);
    bring_up(f, V1);
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 1);
}

/* ---- config space, interrupts ---- */

struct cfgdev {
    struct virtio_device vdev;
    uint8_t cfg[8];
};

static void cfg_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    struct cfgdev *d = vdev->opaque;
    memcpy(buf, d->cfg + off, len);
}

static void cfg_write(struct virtio_device *vdev, uint32_t off, const void *buf, uint32_t len)
{
    struct cfgdev *d = vdev->opaque;
    memcpy(d->cfg + off, buf, len);
}

static const struct virtio_device_ops cfg_ops = { .name = "cfgdev", .config_read = cfg_read,
                                                  .config_write = cfg_write };

static void test_config_space(void **state)
{
    struct fx *f = *state;
    struct cfgdev d = { .cfg = { 1, 2, 3, 4, 5, 6, 7, 8 } };
    virtio_device_init(&d.vdev, VIRTIO_ID_CONSOLE, &cfg_ops, &d, &f->gm, NULL, 0, sizeof(d.cfg), 0);
    virtio_set_transport(&d.vdev, &(struct virtio_transport){ .interrupt = fake_interrupt, .opaque = f });
    uint8_t buf[8];
    virtio_config_read(&d.vdev, 6, buf, 4);             /* straddles the end */
    assert_memory_equal(buf, ((uint8_t[]){ 7, 8, 0, 0 }), 4);
    virtio_config_read(&d.vdev, 0xffffffff, buf, 4);
    assert_memory_equal(buf, ((uint8_t[]){ 0, 0, 0, 0 }), 4);
    virtio_config_write(&d.vdev, 7, "\xaa\xbb", 2);
    assert_int_equal(d.cfg[7], 0xaa);
    virtio_config_write(&d.vdev, 8, "\xcc", 1);          /* dropped */

    uint32_t gen = virtio_config_generation(&d.vdev);
    virtio_config_changed(&d.vdev);                     /* before DRIVER_OK: no interrupt */
    assert_int_equal(virtio_config_generation(&d.vdev), gen + 1);
    assert_int_equal(f->irqs, 0);
    assert_true(negotiate(&d.vdev, V1));
    virtio_set_config_vector(&d.vdev, 9);
    driver_ok(&d.vdev);
    virtio_config_changed(&d.vdev);
    assert_int_equal(virtio_config_generation(&d.vdev), gen + 2);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(f->last_vector, 9);
    assert_int_equal(virtio_read_isr(&d.vdev), VIRTIO_ISR_CONFIG);
    assert_int_equal(virtio_read_isr(&d.vdev), 0);
    virtio_device_destroy(&d.vdev);
}

/* ---- virtio_queue_drain, the skeleton of every queue handler ---- */

/* A device whose one queue answers each chain with the next entry of a
 * script (a virtio_chain_done or -errno; VIRTIO_CHAIN_PUSHED once the
 * script ends), pushing the PUSHED ones. */
struct draindev {
    struct virtio_device vdev;
    const int *script;
    unsigned n_script, calls;
};

static int drain_chain(struct virtio_device *vdev, unsigned qi, struct virtq_chain *c)
{
    struct draindev *d = vdev->opaque;
    int r = d->calls < d->n_script ? d->script[d->calls] : VIRTIO_CHAIN_PUSHED;
    d->calls++;
    if (r == VIRTIO_CHAIN_PUSHED)
        virtq_push(virtio_vq(vdev, qi), c, 0);
    return r;
}

static int drain_handle(struct virtio_device *vdev, unsigned qi)
{
    return virtio_queue_drain(vdev, qi, drain_chain);
}

static const struct virtio_device_ops drain_ops = { .name = "draindev" };

static void drain_up(struct fx *f, struct draindev *d, const int *script, unsigned n)
{
    *d = (struct draindev){ .script = script, .n_script = n };
    virtio_device_init(&d->vdev, VIRTIO_ID_RNG, &drain_ops, d, &f->gm, NULL, 0, 0, 1);
    virtio_queue_init(&d->vdev, 0, QSZ, drain_handle);
    virtio_set_transport(&d->vdev, &(struct virtio_transport){ .interrupt = fake_interrupt, .opaque = f });
    f->vdev = &d->vdev;
    bring_up(f, V1);
    for (unsigned i = 0; i < QSZ; i++)
        put_desc(f, i, BUF + 0x100ULL * i, 16, VIRTQ_DESC_F_WRITE, 0);
}

static uint16_t used_flags(struct fx *f)
{
    uint16_t v;
    memcpy(&v, hva(f, USED), 2);
    return v;
}

/* Chains kept for later are not pushed, and without a push there is no
 * interrupt. */
static void test_drain_later(void **state)
{
    struct fx *f = *state;
    static const int later[] = { VIRTIO_CHAIN_LATER, VIRTIO_CHAIN_LATER };
    struct draindev d;
    drain_up(f, &d, later, 2);
    make_avail(f, 0);
    make_avail(f, 1);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(d.calls, 2);
    assert_int_equal(used_idx(f), 0);
    assert_int_equal(f->irqs, 0);
    assert_int_equal(used_flags(f), 0);         /* notifications on again */
    virtio_device_destroy(&d.vdev);
}

/* HOLD ends the drain after that chain: what was pushed before it is
 * signalled, the chains after it stay in the ring, and notifications stay
 * suppressed until the device runs the queue again. */
static void test_drain_hold(void **state)
{
    struct fx *f = *state;
    static const int hold[] = { VIRTIO_CHAIN_PUSHED, VIRTIO_CHAIN_HOLD };
    struct draindev d;
    drain_up(f, &d, hold, 2);
    for (uint16_t i = 0; i < 4; i++)
        make_avail(f, i);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(d.calls, 2);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(used_flags(f), VIRTQ_USED_F_NO_NOTIFY);
    virtio_queue_run(f->vdev, 0);               /* the held chain is done */
    assert_int_equal(d.calls, 4);
    assert_int_equal(used_idx(f), 3);
    assert_int_equal(f->irqs, 2);
    assert_int_equal(used_flags(f), 0);
    virtio_device_destroy(&d.vdev);
}

/* One ring's worth per run: a full ring is drained, signalled and the rest
 * deferred with notifications still suppressed; the next run finds the ring
 * empty and turns them on again. */
static void test_drain_budget(void **state)
{
    struct fx *f = *state;
    struct draindev d;
    drain_up(f, &d, NULL, 0);
    for (uint16_t i = 0; i < QSZ; i++)
        make_avail(f, i);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(d.calls, QSZ);
    assert_int_equal(used_idx(f), QSZ);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(used_flags(f), VIRTQ_USED_F_NO_NOTIFY);
    virtio_queue_run(f->vdev, 0);
    assert_int_equal(d.calls, QSZ);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(used_flags(f), 0);
    virtio_device_destroy(&d.vdev);
}

/* A chain the device refuses breaks the device: NEEDS_RESET and the config
 * interrupt, no queue interrupt for what was pushed before it. */
static void test_drain_error(void **state)
{
    struct fx *f = *state;
    static const int bad[] = { VIRTIO_CHAIN_PUSHED, -EPROTO };
    struct draindev d;
    drain_up(f, &d, bad, 2);
    for (uint16_t i = 0; i < 3; i++)
        make_avail(f, i);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(d.calls, 2);
    assert_int_equal(used_idx(f), 1);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(f->last_vector, 7);        /* the config vector */
    virtio_device_destroy(&d.vdev);
}

/* ---- virtio-rng end to end ---- */

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void test_rng(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1);
    put_desc(f, 0, BUF, 32, VIRTQ_DESC_F_WRITE, 0);                  /* one buffer */
    put_desc(f, 1, BUF + 0x1000, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    put_desc(f, 2, BUF + 0x2000, 16, VIRTQ_DESC_F_WRITE, 0);         /* split in two */
    put_desc(f, 3, BUF + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);          /* short */
    make_avail(f, 0);
    make_avail(f, 1);
    make_avail(f, 3);
    assert_int_equal(f->irqs, 0);
    virtio_queue_notify(f->vdev, 0);

    assert_int_equal(used_idx(f), 3);
    assert_int_equal(used_len(f, 0), 32);
    assert_int_equal(used_len(f, 1), 32);
    assert_int_equal(used_len(f, 2), 1);
    /* 32 random bytes are all zero with probability 2^-256. */
    assert_false(all_zero(hva(f, BUF), 32));
    assert_false(all_zero(hva(f, BUF + 0x1000), 16));
    assert_false(all_zero(hva(f, BUF + 0x2000), 16));
    assert_true(all_zero(hva(f, BUF + 0x3001), 64));                 /* nothing past the buffer */
    for (uint64_t a = BUF; a <= BUF + 0x3000; a += 0x1000)
        assert_true(guest_memory_page_dirty(&f->gm, a));
    assert_true(guest_memory_page_dirty(&f->gm, USED));
    assert_false(guest_memory_page_dirty(&f->gm, BUF + 0x4000));
    assert_int_equal(f->irqs, 1);
    assert_int_equal(f->last_vector, 3);
    assert_int_equal(virtio_read_isr(f->vdev), VIRTIO_ISR_QUEUE);
}

static void test_rng_caps_request(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1);
    put_desc(f, 0, BUF, VIRTIO_RNG_MAX_REQUEST + 4096, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_len(f, 0), VIRTIO_RNG_MAX_REQUEST);
    assert_true(guest_memory_page_dirty(&f->gm, BUF + VIRTIO_RNG_MAX_REQUEST - 1));
    assert_false(guest_memory_page_dirty(&f->gm, BUF + VIRTIO_RNG_MAX_REQUEST));
}

static void test_rng_event_idx(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(f->irqs, 1);
    /* The device asks to be kicked at the next avail entry. */
    uint16_t avail_event;
    memcpy(&avail_event, hva(f, USED + 4 + 8 * QSZ), 2);
    assert_int_equal(avail_event, 1);
    /* used_event = 5: two more completions do not interrupt. */
    uint16_t ue = 5;
    memcpy(hva(f, AVAIL + 4 + 2 * QSZ), &ue, 2);
    make_avail(f, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 3);
    assert_int_equal(f->irqs, 1);
}

/* A hostile ring breaks this device only: NEEDS_RESET, a config interrupt,
 * no more processing until reset, then it works again. */
static void test_rng_hostile(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1);
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);   /* loop */
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_true(f->vdev->error_logged);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(f->last_vector, 7);
    assert_int_equal(virtio_read_isr(f->vdev), VIRTIO_ISR_CONFIG);
    assert_int_equal(used_idx(f), 0);

    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);                     /* fixed, but too late */
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 0);
    assert_int_equal(f->irqs, 1);

    virtio_set_status(f->vdev, 0);
    assert_int_equal(virtio_get_status(f->vdev), 0);
    assert_true(f->vdev->error_logged);      /* a reset does not re-arm the log line */
    memset(hva(f, AVAIL), 0, 0x2000);
    f->avail_idx = 0;
    bring_up(f, V1);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_rng_readable_buffer(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1);
    put_desc(f, 0, BUF, 8, 0, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_true(all_zero(hva(f, BUF), 8));
    assert_int_equal(used_idx(f), 0);
}

static void test_ring_reset(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1 | VIRTIO_BIT(VIRTIO_F_RING_RESET));
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 1);

    assert_false(virtio_queue_get_reset(f->vdev, 0));
    virtio_queue_reset(f->vdev, 0);
    /* Done (synchronously here): queue_reset and queue_enable read 0. */
    assert_false(virtio_queue_get_reset(f->vdev, 0));
    assert_false(virtio_queue_get_enable(f->vdev, 0));
    assert_int_equal(virtio_queue_get_desc(f->vdev, 0), 0);
    assert_int_equal(virtio_queue_get_vector(f->vdev, 0), VIRTIO_NO_VECTOR);
    /* Re-enabled while DRIVER_OK, with fresh rings. */
    memset(hva(f, AVAIL), 0, 0x2000);
    f->avail_idx = 0;
    setup_queue(f, 3);
    assert_false(virtio_queue_get_reset(f->vdev, 0));
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_ring_reset_not_negotiated(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1);
    virtio_queue_reset(f->vdev, 0);
    assert_true(virtio_queue_get_enable(f->vdev, 0));
}

/* ---- the loop: kicks by eventfd, reset completes on the loop ---- */

static void quit_on_loop(void *opaque)
{
    loop_quit(opaque);
}

static void test_loop_kick_and_reset(void **state)
{
    struct fx *f = *state;
    g_autoptr(GError) err = NULL;
    struct loop *loop = loop_new(&err);
    assert_non_null(loop);
    virtio_rng_free(f->rng);
    attach(f, loop);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(efd >= 0);
    assert_int_equal(virtio_queue_set_kick_fd(f->vdev, 0, efd), 0);

    assert_true(negotiate(f->vdev, V1));
    setup_queue(f, 3);
    driver_ok(f->vdev);
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
    /* fake_interrupt quits the loop once the used ring is updated. */
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(f->irqs, 1);

    /* The reset is the loop's to do; until then status reads non-zero and
     * the driver cannot start over. */
    uint8_t before = virtio_get_status(f->vdev);
    virtio_set_status(f->vdev, 0);
    assert_int_equal(virtio_get_status(f->vdev), before);
    virtio_set_status(f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_FAILED);
    assert_int_equal(virtio_get_status(f->vdev), before);
    loop_call(loop, quit_on_loop, loop);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(virtio_get_status(f->vdev), 0);

    /* A reset while the status already reads 0 (a driver's first act at
     * probe) is immediate, without the loop: the driver sees 0 at once, so
     * its next writes must not be dropped as "during a reset". */
    virtio_set_config_vector(f->vdev, 5);
    virtio_set_status(f->vdev, 0);
    assert_int_equal(virtio_get_config_vector(f->vdev), VIRTIO_NO_VECTOR);
    virtio_set_status(f->vdev, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(virtio_get_status(f->vdev), VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(f->vdev, 0);
    assert_int_equal(virtio_get_status(f->vdev), VIRTIO_STATUS_ACKNOWLEDGE);
    loop_call(loop, quit_on_loop, loop);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(virtio_get_status(f->vdev), 0);

    /* RING_RESET too: queue_reset reads 1 while pending, 0 once done (what
     * Linux's vp_modern_set_queue_reset waits for, then queue_enable 0). */
    memset(hva(f, AVAIL), 0, 0x2000);
    f->avail_idx = 0;
    assert_true(negotiate(f->vdev, V1 | VIRTIO_BIT(VIRTIO_F_RING_RESET)));
    setup_queue(f, 3);
    driver_ok(f->vdev);
    virtio_queue_reset(f->vdev, 0);
    assert_true(virtio_queue_get_reset(f->vdev, 0));
    assert_true(virtio_queue_get_enable(f->vdev, 0));
    assert_int_equal(virtio_queue_enable(f->vdev, 0), 0);          /* still live: no-op */
    loop_call(loop, quit_on_loop, loop);
    assert_int_equal(loop_run(loop), 0);
    assert_false(virtio_queue_get_reset(f->vdev, 0));
    assert_false(virtio_queue_get_enable(f->vdev, 0));

    assert_int_equal(virtio_queue_set_kick_fd(f->vdev, 0, -1), 0);
    close(efd);
    virtio_rng_free(f->rng);
    f->rng = NULL;
    loop_free(loop);
}

/* ---- a driver on another thread: the ring protocol under real concurrency ----
 *
 * A driver thread keeps the queue full of 8-byte requests, kicking only when
 * avail_event says so and sleeping on an "irq" eventfd only after arming
 * used_event and re-checking, as a Linux driver with EVENT_IDX does. The
 * device runs on the loop thread. A lost kick or a lost interrupt (a missing
 * fence on either side) hangs the test, which meson's timeout reports. */

#define STRESS_REQUESTS 20000

struct stress {
    struct fx *f;
    struct loop *loop;
    int kick_fd, irq_fd;
    unsigned completed;
    bool bad_id;
};

static void stress_interrupt(void *opaque, uint16_t vector)
{
    struct stress *st = opaque;
    uint64_t one = 1;
    if (write(st->irq_fd, &one, sizeof(one)) != sizeof(one))
        st->bad_id = true;
}

static uint16_t ring_load16(struct fx *f, uint64_t gpa)
{
    return __atomic_load_n((uint16_t *)hva(f, gpa), __ATOMIC_ACQUIRE);
}

static void ring_store16(struct fx *f, uint64_t gpa, uint16_t v)
{
    __atomic_store_n((uint16_t *)hva(f, gpa), v, __ATOMIC_RELEASE);
}

static void *stress_driver(void *opaque)
{
    struct stress *st = opaque;
    struct fx *f = st->f;
    bool busy[QSZ] = { 0 };
    unsigned submitted = 0, in_flight = 0;
    uint16_t avail = 0, seen_used = 0;
    while (st->completed < STRESS_REQUESTS) {
        uint16_t old = avail;
        for (uint16_t head = 0; head < QSZ && submitted < STRESS_REQUESTS; head++) {
            if (busy[head])
                continue;
            busy[head] = true;
            put_desc(f, head, BUF + 64ULL * head, 8, VIRTQ_DESC_F_WRITE, 0);
            memcpy(hva(f, AVAIL + 4 + 2 * (avail % QSZ)), &head, 2);
            avail++;
            submitted++;
            in_flight++;
        }
        if (avail != old) {
            ring_store16(f, AVAIL + 2, avail);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (virtq_need_event(ring_load16(f, USED + 4 + 8 * QSZ), avail, old)) {
                uint64_t one = 1;
                if (write(st->kick_fd, &one, sizeof(one)) != sizeof(one))
                    st->bad_id = true;
            }
        }
        for (;;) {
            uint16_t used = ring_load16(f, USED + 2);
            while (seen_used != used) {
                uint32_t id;
                memcpy(&id, hva(f, USED + 4 + 8 * (seen_used % QSZ)), 4);
                if (id >= QSZ || !busy[id])
                    st->bad_id = true;
                else
                    busy[id] = false;
                seen_used++;
                in_flight--;
                st->completed++;
            }
            if (in_flight < QSZ || st->completed == STRESS_REQUESTS)
                break;
            /* Full ring: ask for an interrupt at the next completion, then
             * check once more before sleeping. */
            ring_store16(f, AVAIL + 4 + 2 * QSZ, seen_used);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (ring_load16(f, USED + 2) != seen_used)
                continue;
            uint64_t n;
            if (read(st->irq_fd, &n, sizeof(n)) != sizeof(n))
                st->bad_id = true;
        }
    }
    loop_quit(st->loop);
    return NULL;
}

static void test_concurrent_driver(void **state)
{
    struct fx *f = *state;
    g_autoptr(GError) err = NULL;
    struct stress st = { .f = f, .loop = loop_new(&err) };
    assert_non_null(st.loop);
    virtio_rng_free(f->rng);
    attach(f, st.loop);
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = stress_interrupt, .opaque = &st });
    st.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st.irq_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(st.kick_fd >= 0 && st.irq_fd >= 0);
    assert_int_equal(virtio_queue_set_kick_fd(f->vdev, 0, st.kick_fd), 0);
    assert_true(negotiate(f->vdev, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX)));
    setup_queue(f, 0);
    driver_ok(f->vdev);

    pthread_t driver;
    assert_int_equal(pthread_create(&driver, NULL, stress_driver, &st), 0);
    assert_int_equal(loop_run(st.loop), 0);
    pthread_join(driver, NULL);

    assert_int_equal(st.completed, STRESS_REQUESTS);
    assert_false(st.bad_id);
    assert_int_equal(used_idx(f), (uint16_t)STRESS_REQUESTS);
    assert_int_equal(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET, 0);

    virtio_queue_set_kick_fd(f->vdev, 0, -1);
    close(st.kick_fd);
    close(st.irq_fd);
    virtio_rng_free(f->rng);
    f->rng = NULL;
    loop_free(st.loop);
}

/* ---- save / load ---- */

static GBytes *save(struct virtio_device *vdev)
{
    struct state_writer *w = state_writer_new();
    assert_int_equal(virtio_device_save(vdev, w), 0);
    return state_writer_finish(w);
}

static int load(struct virtio_device *vdev, GBytes *b, GError **err)
{
    struct state_reader *r = state_reader_new(b, err);
    assert_non_null(r);
    int ret = virtio_device_load(vdev, r, err);
    if (ret == 0)
        assert_true(state_reader_at_end(r));
    state_reader_free(r);
    return ret;
}

static void test_save_load(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    make_avail(f, 0);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(used_idx(f), 2);
    virtio_config_changed(f->vdev);
    g_autoptr(GBytes) b = save(f->vdev);

    struct virtio_rng *dst = virtio_rng_new(&f->gm, NULL);
    g_autoptr(GError) err = NULL;
    assert_int_equal(load(&dst->vdev, b, &err), 0);
    struct virtio_device *d = &dst->vdev;
    assert_int_equal(virtio_get_status(d), virtio_get_status(f->vdev));
    assert_int_equal(d->driver_features, f->vdev->driver_features);
    assert_int_equal(virtio_config_generation(d), virtio_config_generation(f->vdev));
    assert_int_equal(virtio_get_config_vector(d), 7);
    assert_true(virtio_queue_get_enable(d, 0));
    assert_int_equal(virtio_queue_get_size(d, 0), QSZ);
    assert_int_equal(virtio_queue_get_desc(d, 0), DESC);
    assert_int_equal(virtio_queue_get_avail(d, 0), AVAIL);
    assert_int_equal(virtio_queue_get_used(d, 0), USED);
    assert_int_equal(virtio_queue_get_vector(d, 0), 3);
    assert_true(virtio_vq(d, 0)->event_idx);
    assert_int_equal(virtio_vq(d, 0)->last_avail_idx, 2);
    assert_int_equal(virtio_vq(d, 0)->used_idx, 2);

    /* The restored device carries on where the saved one stopped. */
    virtio_set_transport(d, &(struct virtio_transport){ .interrupt = fake_interrupt, .opaque = f });
    make_avail(f, 0);
    virtio_queue_notify(d, 0);
    assert_int_equal(used_idx(f), 3);
    assert_int_equal(used_len(f, 2), 8);

    /* And it saves what it loaded. */
    g_autoptr(GBytes) b2 = save(d);
    struct virtio_rng *again = virtio_rng_new(&f->gm, NULL);
    assert_int_equal(load(&again->vdev, b2, &err), 0);
    assert_int_equal(virtio_vq(&again->vdev, 0)->used_idx, 3);
    virtio_rng_free(again);
    virtio_rng_free(dst);
}

static void test_load_refuses(void **state)
{
    struct fx *f = *state;
    bring_up(f, V1);
    g_autoptr(GBytes) b = save(f->vdev);

    /* Another device type. */
    struct cfgdev other;
    virtio_device_init(&other.vdev, VIRTIO_ID_CONSOLE, &cfg_ops, &other, &f->gm, NULL, 0, 8, 1);
    virtio_queue_init(&other.vdev, 0, VIRTIO_RNG_QUEUE_SIZE, NULL);
    g_autoptr(GError) err = NULL;
    assert_int_equal(load(&other.vdev, b, &err), -EINVAL);
    assert_non_null(err);
    assert_int_equal(virtio_get_status(&other.vdev), 0);
    virtio_device_destroy(&other.vdev);

    /* Smaller RAM: the live queue's rings would lie outside it. Nothing
     * may change on the refusing device. */
    struct guest_memory small;
    g_clear_error(&err);
    assert_int_equal(guest_memory_create(&small, 0x2000, false, false, &err), 0);
    struct virtio_rng *dst = virtio_rng_new(&small, NULL);
    assert_int_equal(load(&dst->vdev, b, &err), -EINVAL);
    assert_non_null(strstr(err->message, "virtio-rng"));
    assert_int_equal(virtio_get_status(&dst->vdev), 0);
    assert_false(virtio_queue_get_enable(&dst->vdev, 0));
    assert_int_equal(dst->vdev.driver_features, 0);
    virtio_rng_free(dst);
    guest_memory_destroy(&small);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_offer),
        T(test_features_ok),
        T(test_features_refused_not_offered),
        T(test_features_refused_legacy),
        T(test_features_ok_needs_driver),
        T(test_driver_ok_needs_features_ok),
        T(test_status_bits_stick),
        T(test_queue_enable_rules),
        T(test_queue_enable_after_driver_ok),
        T(test_queue_enable_bad_setup),
        T(test_reset),
        T(test_config_space),
        T(test_drain_later),
        T(test_drain_hold),
        T(test_drain_budget),
        T(test_drain_error),
        T(test_rng),
        T(test_rng_caps_request),
        T(test_rng_event_idx),
        T(test_rng_hostile),
        T(test_rng_readable_buffer),
        T(test_ring_reset),
        T(test_ring_reset_not_negotiated),
        T(test_loop_kick_and_reset),
        T(test_concurrent_driver),
        T(test_save_load),
        T(test_load_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
