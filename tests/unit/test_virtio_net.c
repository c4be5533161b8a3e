/* virtio-net over fake guest memory, driven as a driver would, with its
 * tap replaced by SOCK_SEQPACKET socket pairs (frames keep their
 * boundaries; the test holds the "wire" end) and, where the test runs as
 * root, a real tap: config space and features, the feature dependencies,
 * transmit (header and frame reach the wire, offloads that were not
 * negotiated are dropped), receive with and without MRG_RXBUF (num_buffers,
 * frames spread over chains and published together, too-small chains,
 * waiting for buffers), the control queue (RX mode, MAC table, MQ pairs,
 * guest offloads), hostile chains (the device breaks, nothing else), save
 * and load, and on a real tap: TUNSETOFFLOAD following the negotiated
 * features and frames both ways through the kernel. No loop: queues run
 * synchronously on kicks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/fake_driver.h"
#include "devices/virtio/net.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define MIB (1ULL << 20)
#define RAM (16 * MIB)
#define QSZ 64
#define MAXQ 5
#define BUF 0x200000ULL         /* buffers, 64 KiB apart per slot */
#define SLOT(i) (BUF + 0x10000ULL * (i))

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct fx {
    struct guest_memory gm;
    struct loop *loop;          /* NULL: queues run synchronously */
    struct tap *tap;
    struct virtio_net *net;
    struct virtio_device *vdev;
    int wire[4];                /* our ends of the socket pairs */
    int devfd[4];
    unsigned pairs;
    unsigned nq;
    struct fake_driver drv;
    unsigned interrupts;
};

static void count_interrupt(void *opaque, uint16_t vector)
{
    struct fx *f = opaque;
    f->interrupts++;
}

static uint8_t *hva(struct fx *f, uint64_t gpa)
{
    return f->gm.base + gpa;
}

static void make_net(struct fx *f)
{
    struct virtio_net_params p = { .tap = f->tap };
    memcpy(p.mac, MAC, 6);
    f->net = virtio_net_new(&f->gm, f->loop, &p);
    f->vdev = &f->net->vdev;
    f->nq = f->vdev->num_queues;
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = count_interrupt, .opaque = f });
}

static int setup_pairs(void **state, unsigned pairs)
{
    struct fx *f = g_new0(struct fx, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&f->gm, RAM, false, false, &err) < 0)
        fail_msg("%s", err->message);
    f->drv = (struct fake_driver){ .ram = f->gm.base, .qsz = QSZ };
    f->pairs = pairs;
    for (unsigned i = 0; i < pairs; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
        f->devfd[i] = sv[0];
        f->wire[i] = sv[1];
    }
    f->tap = tap_from_socket(f->devfd, pairs);
    make_net(f);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_pairs(state, 1); }
static int setup_loop(void **state)
{
    setup_pairs(state, 1);
    struct fx *f = *state;
    virtio_net_free(f->net);
    g_autoptr(GError) err = NULL;
    f->loop = loop_new(&err);
    assert_non_null(f->loop);
    make_net(f);
    return 0;
}
static int setup_mq(void **state) { return setup_pairs(state, 2); }

static int teardown(void **state)
{
    struct fx *f = *state;
    virtio_net_free(f->net);
    if (f->loop) {
        loop_run_calls(f->loop);
        loop_free(f->loop);
    }
    tap_close(f->tap);
    for (unsigned i = 0; i < f->pairs; i++) {
        close(f->wire[i]);
        close(f->devfd[i]);     /* tap_from_socket does not own them */
    }
    guest_memory_destroy(&f->gm);
    g_free(f);
    return 0;
}

/* ---- the driver's side ---- */

static uint64_t offered(struct virtio_device *vdev)
{
    return virtio_get_device_features(vdev, 0) | (uint64_t)virtio_get_device_features(vdev, 1) << 32;
}

static bool negotiate(struct fx *f, uint64_t feat)
{
    struct virtio_device *v = f->vdev;
    virtio_set_status(v, 0);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)feat);
    virtio_set_driver_features(v, 1, (uint32_t)(feat >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return virtio_get_status(v) & VIRTIO_STATUS_FEATURES_OK;
}

/* Negotiates feat (VERSION_1 added; EVENT_IDX left out) and starts every queue. */
static void bring_up(struct fx *f, uint64_t feat)
{
    struct virtio_device *v = f->vdev;
    assert_true(negotiate(f, feat | VIRTIO_BIT(VIRTIO_F_VERSION_1)));
    for (unsigned q = 0; q < f->nq; q++) {
        memset(hva(f, FAKE_DESC(q)), 0, 0x3000);
        virtio_queue_set_size(v, q, QSZ);
        virtio_queue_set_desc(v, q, FAKE_DESC(q));
        virtio_queue_set_avail(v, q, FAKE_AVAIL(q));
        virtio_queue_set_used(v, q, FAKE_USED(q));
        assert_int_equal(virtio_queue_enable(v, q), 0);
        f->drv.avail_idx[q] = 0;
        f->drv.next_desc[q] = 0;
    }
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    assert_true(virtio_get_status(v) & VIRTIO_STATUS_DRIVER_OK);
}

static bool broken(struct fx *f)
{
    return virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET;
}

/* A frame: header (flags, gso) + `len` bytes of pattern `seed`. */
static size_t make_frame(uint8_t *p, size_t len, uint8_t seed, uint8_t flags, uint8_t gso)
{
    memset(p, 0, VIRTIO_NET_HDR_LEN);
    p[0] = flags;
    p[1] = gso;
    for (size_t i = 0; i < len; i++)
        p[VIRTIO_NET_HDR_LEN + i] = (uint8_t)(seed + i * 7);
    return VIRTIO_NET_HDR_LEN + len;
}

static ssize_t wire_recv(struct fx *f, unsigned pair, uint8_t *buf, size_t len)
{
    return recv(f->wire[pair], buf, len, MSG_DONTWAIT);
}

#define BASE_F (VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ))

/* ---- tests ---- */

static void test_config_and_features(void **state)
{
    struct fx *f = *state;
    assert_int_equal(f->vdev->device_id, VIRTIO_ID_NET);
    assert_int_equal(f->nq, 3);
    uint64_t o = offered(f->vdev);
    const unsigned want[] = { VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
                              VIRTIO_NET_F_MTU, VIRTIO_NET_F_MAC, VIRTIO_NET_F_GUEST_TSO4,
                              VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_HOST_TSO4,
                              VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_MRG_RXBUF,
                              VIRTIO_NET_F_STATUS, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX,
                              VIRTIO_NET_F_GUEST_ANNOUNCE };
    uint64_t w = VIRTIO_CORE_FEATURES;
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++)
        w |= VIRTIO_BIT(want[i]);
    assert_int_equal(o, w);         /* no MQ with one pair, no UFO */
    uint8_t mac[6];
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_MAC, mac, 6);
    assert_memory_equal(mac, MAC, 6);
    uint16_t v;
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_STATUS, &v, 2);
    assert_int_equal(v, VIRTIO_NET_S_LINK_UP);
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_MAX_PAIRS, &v, 2);
    assert_int_equal(v, 1);
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_MTU, &v, 2);
    assert_int_equal(v, 1500);
    /* Read-only. */
    uint8_t junk[6] = { 1, 2, 3, 4, 5, 6 };
    virtio_config_write(f->vdev, 0, junk, 6);
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_MAC, mac, 6);
    assert_memory_equal(mac, MAC, 6);
}

static void test_mq_config(void **state)
{
    struct fx *f = *state;
    assert_int_equal(f->nq, 5);
    assert_true(offered(f->vdev) & VIRTIO_BIT(VIRTIO_NET_F_MQ));
    uint16_t v;
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_MAX_PAIRS, &v, 2);
    assert_int_equal(v, 2);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 4), VIRTIO_NET_CTRL_QUEUE_SIZE);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 5), 0);
}

/* 5.1.3.1: each offload needs what it builds on. */
static void test_feature_dependencies(void **state)
{
    struct fx *f = *state;
    uint64_t v1 = VIRTIO_BIT(VIRTIO_F_VERSION_1);
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4)));
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6)));
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN)));
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN)));
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX)));
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE)));
    assert_false(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)));
    assert_true(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
                                 VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN)));
    assert_int_equal(f->net->offloads, TAP_OFFLOAD_CSUM | TAP_OFFLOAD_TSO4 | TAP_OFFLOAD_ECN);
    assert_true(negotiate(f, v1 | VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
                                 VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) |
                                 VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX)));
    assert_int_equal(f->net->offloads, 0);
}

/* A frame split over three readable buffers (header split too) reaches
 * the wire as one message, header first. */
static void test_tx(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    uint8_t *p = hva(f, SLOT(0));
    size_t n = make_frame(p, 1000, 3, 0, 0);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), 5, false }, { SLOT(0) + 5, 300, false }, { SLOT(0) + 305, (uint32_t)(n - 305), false } }, 3);
    virtio_queue_notify(f->vdev, 1);
    assert_int_equal(fake_used_idx(&f->drv, 1), 1);
    assert_int_equal(fake_used_len(&f->drv, 1, 0), 0);
    uint8_t got[2048];
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), n);
    assert_memory_equal(got, p, n);
    assert_int_equal(f->net->stats.tx_frames, 1);
    assert_true(f->interrupts > 0);
    assert_false(broken(f));
}

/* Offloads the driver did not negotiate are not passed on: the frame is
 * dropped and its chain still used. With them negotiated it goes out. */
static void test_tx_offload_not_negotiated(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    uint8_t got[2048];
    size_t n = make_frame(hva(f, SLOT(0)), 100, 1, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), (uint32_t)n, false } }, 1);
    n = make_frame(hva(f, SLOT(1)), 100, 1, 0, VIRTIO_NET_HDR_GSO_TCPV4);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(1), (uint32_t)n, false } }, 1);
    n = make_frame(hva(f, SLOT(2)), 100, 1, 0, 0x55);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(2), (uint32_t)n, false } }, 1);
    virtio_queue_notify(f->vdev, 1);
    assert_int_equal(fake_used_idx(&f->drv, 1), 3);
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), -1);
    assert_int_equal(f->net->stats.tx_dropped, 3);

    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4));
    n = make_frame(hva(f, SLOT(0)), 100, 1, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), (uint32_t)n, false } }, 1);
    virtio_queue_notify(f->vdev, 1);
    assert_int_equal(fake_used_idx(&f->drv, 1), 1);
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), n);
    assert_int_equal(got[1], VIRTIO_NET_HDR_GSO_TCPV4);
}

static void test_tx_hostile_short(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), VIRTIO_NET_HDR_LEN - 1, false } }, 1);
    virtio_queue_notify(f->vdev, 1);
    assert_true(broken(f));
    uint8_t got[64];
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), -1);
    /* Reset and bring up again: the device works. */
    bring_up(f, BASE_F);
    assert_false(broken(f));
    size_t n = make_frame(hva(f, SLOT(0)), 20, 1, 0, 0);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), (uint32_t)n, false } }, 1);
    virtio_queue_notify(f->vdev, 1);
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), n);
}

static void test_tx_hostile_writable(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), 100, false }, { SLOT(1), 100, true } }, 2);
    virtio_queue_notify(f->vdev, 1);
    assert_true(broken(f));
}

/* Without MRG_RXBUF: one chain per frame, num_buffers 1. */
static void test_rx_single(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    uint8_t frame[2048];
    size_t n = make_frame(frame, 1000, 9, VIRTIO_NET_HDR_F_DATA_VALID, 0);
    frame[10] = 0x77;   /* whatever the tap leaves there, the device writes 1 */
    memset(hva(f, SLOT(0)), 0xee, 2048);
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 10, true }, { SLOT(0) + 10, 1516, true } }, 2);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
    assert_int_equal(fake_used_len(&f->drv, 0, 0), n);
    uint8_t *g = hva(f, SLOT(0));
    assert_int_equal(g[0], VIRTIO_NET_HDR_F_DATA_VALID);
    assert_int_equal(g[10] | g[11] << 8, 1);
    assert_memory_equal(g + VIRTIO_NET_HDR_LEN, frame + VIRTIO_NET_HDR_LEN, n - VIRTIO_NET_HDR_LEN);
    assert_int_equal(g[n], 0xee);
    assert_int_equal(f->net->stats.rx_frames, 1);
}

/* A frame bigger than the chain is dropped and the chain kept for the
 * next frame that fits. */
static void test_rx_too_big(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    uint8_t frame[4096];
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 1526, true } }, 1);
    size_t big = make_frame(frame, 3000, 1, 0, 0);
    assert_int_equal(send(f->wire[0], frame, big, 0), big);
    size_t small = make_frame(frame, 60, 2, 0, 0);
    assert_int_equal(send(f->wire[0], frame, small, 0), small);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
    assert_int_equal(fake_used_len(&f->drv, 0, 0), small);
    assert_memory_equal(hva(f, SLOT(0)) + VIRTIO_NET_HDR_LEN, frame + VIRTIO_NET_HDR_LEN, 60);
    assert_int_equal(f->net->stats.rx_dropped, 1);
    assert_false(broken(f));
}

/* No buffers: the frame waits (nothing lost, nothing used) until the
 * driver posts one and kicks. */
static void test_rx_waits_for_buffers(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    uint8_t frame[256];
    size_t n = make_frame(frame, 100, 4, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 0);
    assert_int_equal(f->net->pairs[0].pending, n);
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 1526, true } }, 1);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
    assert_int_equal(fake_used_len(&f->drv, 0, 0), n);
    assert_memory_equal(hva(f, SLOT(0)) + VIRTIO_NET_HDR_LEN, frame + VIRTIO_NET_HDR_LEN, 100);
}

/* MRG_RXBUF: a 4000-byte frame over 1500-byte chains takes three of them,
 * num_buffers 3 in the first, published at once; a fourth chain stays. */
static void test_rx_mergeable(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    for (unsigned i = 0; i < 4; i++)
        fake_post(&f->drv, 0, (struct seg[]){ { SLOT(i), 1500, true } }, 1);
    static uint8_t frame[8192];
    size_t n = make_frame(frame, 4000 - VIRTIO_NET_HDR_LEN, 5, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 3);
    assert_int_equal(fake_used_len(&f->drv, 0, 0), 1500);
    assert_int_equal(fake_used_len(&f->drv, 0, 1), 1500);
    assert_int_equal(fake_used_len(&f->drv, 0, 2), 1000);
    assert_int_equal(fake_used_id(&f->drv, 0, 1), 1);
    uint8_t *g = hva(f, SLOT(0));
    assert_int_equal(g[10] | g[11] << 8, 3);
    assert_memory_equal(g + VIRTIO_NET_HDR_LEN, frame + VIRTIO_NET_HDR_LEN, 1500 - VIRTIO_NET_HDR_LEN);
    assert_memory_equal(hva(f, SLOT(1)), frame + 1500, 1500);
    assert_memory_equal(hva(f, SLOT(2)), frame + 3000, 1000);
    /* A small one takes the fourth chain. */
    n = make_frame(frame, 50, 6, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 4);
    assert_int_equal(fake_used_id(&f->drv, 0, 3), 3);
    assert_int_equal(hva(f, SLOT(3))[10], 1);
}

/* MRG_RXBUF with too few buffers for the frame: nothing is published; the
 * chains are taken again, with more, once the driver adds buffers. */
static void test_rx_mergeable_partial(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 1500, true } }, 1);
    static uint8_t frame[8192];
    size_t n = make_frame(frame, 2500, 8, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 0);
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(1), 1500, true } }, 1);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 2);
    assert_int_equal(fake_used_id(&f->drv, 0, 0), 0);
    assert_int_equal(fake_used_len(&f->drv, 0, 1), n - 1500);
    assert_int_equal(hva(f, SLOT(0))[10], 2);
    assert_memory_equal(hva(f, SLOT(1)), frame + 1500, n - 1500);
}

static void test_rx_hostile_readable(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 100, false }, { SLOT(1), 1526, true } }, 2);
    uint8_t frame[256];
    size_t n = make_frame(frame, 100, 4, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_true(broken(f));
    assert_int_equal(fake_used_idx(&f->drv, 0), 0);
}

static void test_rx_hostile_tiny_mergeable(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 4, true } }, 1);
    uint8_t frame[256];
    size_t n = make_frame(frame, 100, 4, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_true(broken(f));
}

/* A descriptor pointing outside guest RAM breaks the device (the core's
 * checks), and the other device state is untouched. */
static void test_rx_hostile_outside_ram(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    fake_post(&f->drv, 0, (struct seg[]){ { RAM - 16, 1526, true } }, 1);
    uint8_t frame[256];
    size_t n = make_frame(frame, 100, 4, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_true(broken(f));
}

/* Sends one control command; returns the ack byte. */
static uint8_t ctrl(struct fx *f, uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
    unsigned q = f->nq - 1;
    uint8_t *p = hva(f, SLOT(10));
    p[0] = cls;
    p[1] = cmd;
    memcpy(p + 2, data, len);
    uint8_t *ack = hva(f, SLOT(11));
    *ack = 0xee;
    uint16_t before = fake_used_idx(&f->drv, q);
    fake_post(&f->drv, q, (struct seg[]){ { SLOT(10), 2 + len, false }, { SLOT(11), 1, true } }, 2);
    virtio_queue_notify(f->vdev, q);
    assert_int_equal(fake_used_idx(&f->drv, q), before + 1);
    return *ack;
}

static void test_ctrl(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
                    VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
    uint8_t on = 1;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK);
    assert_int_equal(f->net->promisc, 1);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1), VIRTIO_NET_OK);
    assert_int_equal(f->net->allmulti, 1);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, 2, &on, 1), VIRTIO_NET_ERR);     /* RX_EXTRA not offered */
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, "\1\1", 2), VIRTIO_NET_ERR);
    /* MAC table: one unicast, two multicast entries. */
    uint8_t tbl[4 + 6 + 4 + 12] = { 1, 0, 0, 0 };
    tbl[10] = 2;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, sizeof(tbl)), VIRTIO_NET_OK);
    tbl[10] = 3;    /* claims more entries than sent */
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, sizeof(tbl)), VIRTIO_NET_ERR);
    /* MQ not negotiated. */
    uint16_t pairs = 1;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_ERR);
    /* Guest offloads: only negotiated ones. */
    uint64_t off = VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, &off, 8), VIRTIO_NET_OK);
    assert_int_equal(f->net->offloads, TAP_OFFLOAD_CSUM);
    off = 0;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, &off, 8), VIRTIO_NET_OK);
    assert_int_equal(f->net->offloads, 0);
    off = VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, &off, 8), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, 99, 0, NULL, 0), VIRTIO_NET_ERR);
    assert_false(broken(f));
    /* A reset forgets the RX mode. */
    bring_up(f, BASE_F);
    assert_int_equal(f->net->promisc, 0);
}

static void test_ctrl_hostile(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    fake_post(&f->drv, 2, (struct seg[]){ { SLOT(10), 2, false } }, 1);      /* no ack buffer */
    virtio_queue_notify(f->vdev, 2);
    assert_true(broken(f));
}

/* Two pairs: only pair 0 runs until VQ_PAIRS_SET 2; then frames on the
 * second tap queue reach receiveq2 and transmitq2 goes to the second fd. */
static void test_mq(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MQ));
    assert_int_equal(f->net->curr_pairs, 1);
    uint8_t frame[256], got[256];
    size_t n = make_frame(frame, 80, 2, 0, 0);
    fake_post(&f->drv, 2, (struct seg[]){ { SLOT(0), 1526, true } }, 1);
    assert_int_equal(send(f->wire[1], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 2);
    assert_int_equal(fake_used_idx(&f->drv, 2), 0);
    uint16_t pairs = 3;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_ERR);
    pairs = 0;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_ERR);
    pairs = 2;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_OK);
    assert_int_equal(f->net->curr_pairs, 2);
    virtio_queue_notify(f->vdev, 2);
    assert_int_equal(fake_used_idx(&f->drv, 2), 1);
    assert_int_equal(fake_used_len(&f->drv, 2, 0), n);
    size_t m = make_frame(hva(f, SLOT(1)), 40, 7, 0, 0);
    fake_post(&f->drv, 3, (struct seg[]){ { SLOT(1), (uint32_t)m, false } }, 1);
    virtio_queue_notify(f->vdev, 3);
    assert_int_equal(wire_recv(f, 1, got, sizeof(got)), m);
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), -1);
    /* A reset goes back to one pair. */
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MQ));
    assert_int_equal(f->net->curr_pairs, 1);
}

static void test_save_load(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX));
    uint16_t pairs = 2;
    uint8_t on = 1;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_OK);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK);
    struct state_writer *w = state_writer_new();
    assert_int_equal(virtio_device_save(f->vdev, w), 0);
    GBytes *snap = state_writer_finish(w);

    /* A fresh device on the same taps takes it and runs. */
    struct virtio_net *old = f->net;
    make_net(f);
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(snap, &err);
    assert_non_null(r);
    assert_int_equal(virtio_device_load(f->vdev, r, &err), 0);
    state_reader_free(r);
    assert_int_equal(f->net->curr_pairs, 2);
    assert_int_equal(f->net->promisc, 1);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_DRIVER_OK);
    size_t m = make_frame(hva(f, SLOT(1)), 40, 7, 0, 0);
    fake_post(&f->drv, 3, (struct seg[]){ { SLOT(1), (uint32_t)m, false } }, 1);
    virtio_queue_notify(f->vdev, 3);
    uint8_t got[256];
    assert_int_equal(wire_recv(f, 1, got, sizeof(got)), m);

    /* Another MAC: refused. */
    virtio_net_free(f->net);
    struct virtio_net_params p = { .tap = f->tap, .mac = { 2, 0, 0, 0, 0, 1 } };
    f->net = virtio_net_new(&f->gm, NULL, &p);
    f->vdev = &f->net->vdev;
    r = state_reader_new(snap, &err);
    g_clear_error(&err);
    assert_int_equal(virtio_device_load(f->vdev, r, &err), -EINVAL);
    assert_non_null(err);
    state_reader_free(r);
    assert_false(virtio_get_status(f->vdev) & VIRTIO_STATUS_DRIVER_OK);
    virtio_net_free(old);
    g_bytes_unref(snap);
}

static uint16_t status(struct fx *f)
{
    uint16_t v;
    virtio_config_read(f->vdev, VIRTIO_NET_CFG_STATUS, &v, 2);
    return v;
}

/* Takes the next frame off pair 0's wire and checks that it is vmm's RARP
 * announce: a zero header, broadcast from the NIC's MAC, ethertype 0x8035,
 * Ethernet/IPv4 reverse request about that MAC, 60 bytes. */
static void expect_rarp(struct fx *f)
{
    uint8_t got[256];
    assert_int_equal(wire_recv(f, 0, got, sizeof(got)), VIRTIO_NET_HDR_LEN + 60);
    static const uint8_t zero[VIRTIO_NET_HDR_LEN], bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t arp[8] = { 0, 1, 8, 0, 6, 4, 0, 3 };
    const uint8_t *e = got + VIRTIO_NET_HDR_LEN;
    assert_memory_equal(got, zero, VIRTIO_NET_HDR_LEN);
    assert_memory_equal(e, bcast, 6);
    assert_memory_equal(e + 6, MAC, 6);
    assert_int_equal(e[12] << 8 | e[13], 0x8035);
    assert_memory_equal(e + 14, arp, 8);
    assert_memory_equal(e + 22, MAC, 6);
    assert_memory_equal(e + 32, MAC, 6);
}

/* 5.1.6.5.4 and QEMU's announce after a load: a RARP on the tap always; with
 * GUEST_ANNOUNCE negotiated also S_ANNOUNCE in the status and a config
 * interrupt, until the driver's ANNOUNCE_ACK (nothing else) clears it. */
static void test_announce(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE));
    virtio_read_isr(f->vdev);
    unsigned irqs = f->interrupts;
    uint32_t gen = virtio_config_generation(f->vdev);
    virtio_net_announce(f->net);
    expect_rarp(f);
    assert_int_equal(wire_recv(f, 0, (uint8_t[256]){ 0 }, 256), -1);      /* one frame */
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
    assert_int_equal(f->interrupts, irqs + 1);
    assert_int_equal(virtio_read_isr(f->vdev), VIRTIO_ISR_CONFIG);
    assert_int_not_equal(virtio_config_generation(f->vdev), gen);
    /* Malformed acks are refused and leave the bit set. */
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, "x", 1), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, 1, NULL, 0), VIRTIO_NET_ERR);
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0), VIRTIO_NET_OK);
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP);
    assert_int_equal(f->net->stats.announces, 1);
    assert_int_equal(f->net->stats.announce_acks, 1);
    assert_int_equal(f->net->stats.rarps, 1);
    /* An ack with nothing to acknowledge is harmless. */
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0), VIRTIO_NET_OK);
    assert_int_equal(f->net->stats.announce_acks, 1);
    /* A reset forgets a pending announce. */
    virtio_net_announce(f->net);
    expect_rarp(f);
    assert_true(status(f) & VIRTIO_NET_S_ANNOUNCE);
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE));
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP);

    /* A driver without GUEST_ANNOUNCE: the RARP only, no bit, no interrupt,
     * and the ack is not a command it may send. */
    bring_up(f, BASE_F);
    irqs = f->interrupts;
    virtio_net_announce(f->net);
    expect_rarp(f);
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP);
    assert_int_equal(f->interrupts, irqs);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0), VIRTIO_NET_ERR);
    /* A device the driver has not started: the RARP still goes out. */
    virtio_set_status(f->vdev, 0);
    virtio_net_announce(f->net);
    expect_rarp(f);
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP);
    assert_false(broken(f));
}

/* A load announces by itself, on the loop once the load is complete (the
 * features and status it checks are the core's, loaded after the device
 * section): nothing before the loop runs, then the RARP, the bit and the
 * config interrupt. */
static void test_announce_after_load(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE));
    loop_run_calls(f->loop);
    struct state_writer *w = state_writer_new();
    assert_int_equal(virtio_device_save(f->vdev, w), 0);
    GBytes *snap = state_writer_finish(w);
    struct virtio_net *old = f->net;
    make_net(f);
    unsigned irqs = f->interrupts;
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(snap, &err);
    assert_non_null(r);
    assert_int_equal(virtio_device_load(f->vdev, r, &err), 0);
    state_reader_free(r);
    assert_int_equal(wire_recv(f, 0, (uint8_t[256]){ 0 }, 256), -1);
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP);
    loop_run_calls(f->loop);
    expect_rarp(f);
    assert_int_equal(status(f), VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
    assert_int_equal(f->interrupts, irqs + 1);
    assert_int_equal(virtio_read_isr(f->vdev) & VIRTIO_ISR_CONFIG, VIRTIO_ISR_CONFIG);
    virtio_net_free(old);
    g_bytes_unref(snap);
}

/* Runs the loop until queue q has `want` used elements (bounded by the
 * loop's own wake-ups: each iteration handles at least one event). */
static void loop_until_used(struct fx *f, unsigned q, uint16_t want)
{
    for (int i = 0; i < 1000 && fake_used_idx(&f->drv, q) != want; i++)
        assert_int_equal(loop_run_once(f->loop), 0);
    assert_int_equal(fake_used_idx(&f->drv, q), want);
}

/* On a loop, receive is driven by the tap's readiness: a frame arriving
 * with buffers posted is delivered without any kick; with none left the
 * tap is no longer polled (the frame waits) and the driver's kick resumes. */
static void test_rx_readiness(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    loop_run_calls(f->loop);                /* DRIVER_OK runs every queue once */
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 1526, true } }, 1);
    virtio_queue_notify(f->vdev, 0);
    loop_run_calls(f->loop);
    assert_true(f->net->pairs[0].polling);
    uint8_t frame[256];
    size_t n = make_frame(frame, 100, 1, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    loop_until_used(f, 0, 1);               /* no kick: the tap's readiness */
    assert_int_equal(fake_used_len(&f->drv, 0, 0), n);

    /* No buffers left: the next frame waits, the tap is not polled. */
    n = make_frame(frame, 120, 2, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    for (int i = 0; i < 20 && f->net->pairs[0].polling; i++)
        assert_int_equal(loop_run_once(f->loop), 0);
    assert_false(f->net->pairs[0].polling);
    assert_int_equal(f->net->pairs[0].pending, n);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
    /* A buffer and a kick: delivered, and polling again. */
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(1), 1526, true } }, 1);
    virtio_queue_notify(f->vdev, 0);
    loop_until_used(f, 0, 2);
    assert_int_equal(fake_used_len(&f->drv, 0, 1), n);
    assert_memory_equal(hva(f, SLOT(1)) + VIRTIO_NET_HDR_LEN, frame + VIRTIO_NET_HDR_LEN, 120);
    assert_true(f->net->pairs[0].polling);
    /* A reset stops polling. */
    virtio_set_status(f->vdev, 0);
    loop_run_calls(f->loop);
    assert_false(f->net->pairs[0].polling);
}

/* One receive run reads at most VIRTIO_NET_RX_BUDGET frames from the tap
 * and defers the rest behind the loop's other work; all arrive in order in
 * the end. (The ring holds fewer chains than the budget, so the first
 * frames are runts shorter than the header, dropped but counted.) */
static void test_rx_budget(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F);
    loop_run_calls(f->loop);
    const unsigned runts = 10, total = QSZ - 4;
    for (unsigned i = 0; i < total; i++)
        fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0) + 256ULL * i, 256, true } }, 1);
    uint8_t frame[128] = { 0 };
    for (unsigned i = 0; i < runts; i++)
        assert_int_equal(send(f->wire[0], frame, 5, 0), 5);
    for (unsigned i = 0; i < total; i++) {
        size_t n = make_frame(frame, 60, (uint8_t)i, 0, 0);
        assert_int_equal(send(f->wire[0], frame, n, 0), n);
    }
    virtio_queue_run(f->vdev, 0);           /* one run, as one kick or wake-up does */
    assert_int_equal(fake_used_idx(&f->drv, 0), VIRTIO_NET_RX_BUDGET - runts);
    assert_int_equal(f->net->stats.rx_dropped, runts);
    loop_until_used(f, 0, (uint16_t)total);
    for (unsigned i = 0; i < total; i++)
        assert_int_equal(hva(f, SLOT(0) + 256ULL * fake_used_id(&f->drv, 0, i))[VIRTIO_NET_HDR_LEN], (uint8_t)i);
}

/* With EVENT_IDX, a merged frame that needs more buffers than there are
 * asks for a kick at the next buffer added (avail_event = avail idx, not
 * the first unused one, which the driver has already passed). */
static void test_rx_mergeable_event_idx(void **state)
{
    struct fx *f = *state;
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(0), 1500, true } }, 1);
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(1), 1500, true } }, 1);
    static uint8_t frame[8192];
    size_t n = make_frame(frame, 4000, 8, 0, 0);
    assert_int_equal(send(f->wire[0], frame, n, 0), n);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 0);
    uint16_t avail_event;
    memcpy(&avail_event, hva(f, FAKE_USED(0) + 4 + 8 * QSZ), 2);
    assert_int_equal(avail_event, 2);
    fake_post(&f->drv, 0, (struct seg[]){ { SLOT(2), 1500, true } }, 1);
    virtio_queue_notify(f->vdev, 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 3);
    assert_int_equal(hva(f, SLOT(0))[10], 3);
}

static void test_mac_from_seed(void **state)
{
    uint8_t a[6], b[6], c[6];
    virtio_net_mac_from_seed("vm/net0", a);
    virtio_net_mac_from_seed("vm/net0", b);
    virtio_net_mac_from_seed("vm/net1", c);
    assert_memory_equal(a, b, 6);
    assert_memory_not_equal(a, c, 6);
    assert_int_equal(a[0] & 3, 2);      /* locally administered, unicast */
    assert_int_equal(c[0] & 3, 2);
}

/* ---- a real tap (root only) ---- */

struct tapfx {
    struct fx f;
    char name[16];
    int pkt;                    /* AF_PACKET socket bound to the tap */
    int ifindex;
};

static int ctl_sock(void)
{
    return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static int setup_tap(void **state)
{
    struct tapfx *t = g_new0(struct tapfx, 1);
    struct fx *f = &t->f;
    g_autoptr(GError) err = NULL;
    snprintf(t->name, sizeof(t->name), "vmmut%d", (int)getpid() % 100000);
    f->tap = tap_open(t->name, 1, &err);
    if (!f->tap) {
        g_free(t);
        *state = NULL;
        print_message("skipping the real-tap test: %s\n", err->message);
        return 0;
    }
    assert_int_equal(guest_memory_create(&f->gm, RAM, false, false, &err), 0);
    f->drv = (struct fake_driver){ .ram = f->gm.base, .qsz = QSZ };
    make_net(f);
    int s = ctl_sock();
    struct ifreq ifr = { 0 };
    g_strlcpy(ifr.ifr_name, t->name, IFNAMSIZ);
    assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    assert_int_equal(ioctl(s, SIOCGIFINDEX, &ifr), 0);
    t->ifindex = ifr.ifr_ifindex;
    close(s);
    t->pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    assert_true(t->pkt >= 0);
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = t->ifindex };
    assert_int_equal(bind(t->pkt, (struct sockaddr *)&sll, sizeof(sll)), 0);
    *state = t;
    return 0;
}

static int teardown_tap(void **state)
{
    struct tapfx *t = *state;
    if (!t)
        return 0;
    virtio_net_free(t->f.net);
    tap_close(t->f.tap);        /* a tap vmm created goes with its last fd */
    close(t->pkt);
    guest_memory_destroy(&t->f.gm);
    g_free(t);
    return 0;
}

static int tap_tso(const char *name)
{
    int s = ctl_sock();
    struct ethtool_value ev = { .cmd = ETHTOOL_GTSO };
    struct ifreq ifr = { 0 };
    g_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
    ifr.ifr_data = (void *)&ev;
    int r = ioctl(s, SIOCETHTOOL, &ifr);
    close(s);
    assert_int_equal(r, 0);
    return (int)ev.data;
}

/* Ethernet frame: broadcast dst, our MAC, an unused ethertype, payload. */
static size_t eth_frame(uint8_t *p, size_t payload, uint8_t seed)
{
    memset(p, 0xff, 6);
    memcpy(p + 6, MAC, 6);
    p[12] = 0x88;
    p[13] = 0xb5;       /* local experimental ethertype */
    for (size_t i = 0; i < payload; i++)
        p[14 + i] = (uint8_t)(seed ^ i);
    return 14 + payload;
}

static void test_real_tap(void **state)
{
    struct tapfx *t = *state;
    if (!t) {
        skip();
        return;
    }
    struct fx *f = &t->f;
    /* Offloads follow the guest's features, and a reset clears them. */
    assert_int_equal(tap_tso(t->name), 0);
    bring_up(f, BASE_F | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
                    VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6));
    assert_int_equal(f->net->offloads, TAP_OFFLOAD_CSUM | TAP_OFFLOAD_TSO4 | TAP_OFFLOAD_TSO6);
    assert_int_equal(tap_tso(t->name), 1);
    bring_up(f, BASE_F);
    assert_int_equal(tap_tso(t->name), 0);

    /* Guest → tap: an AF_PACKET socket on the interface sees the frame
     * (the kernel also sends its own IPv6 chatter: skip that). */
    uint8_t *p = hva(f, SLOT(0));
    memset(p, 0, VIRTIO_NET_HDR_LEN);
    size_t n = eth_frame(p + VIRTIO_NET_HDR_LEN, 200, 0x5a);
    fake_post(&f->drv, 1, (struct seg[]){ { SLOT(0), (uint32_t)(VIRTIO_NET_HDR_LEN + n), false } }, 1);
    virtio_queue_notify(f->vdev, 1);
    assert_int_equal(f->net->stats.tx_frames, 1);
    uint8_t got[2048];
    bool seen = false;
    for (int tries = 0; tries < 50 && !seen; tries++) {
        struct pollfd pfd = { t->pkt, POLLIN, 0 };
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        ssize_t r = recv(t->pkt, got, sizeof(got), 0);
        seen = r == (ssize_t)n && memcmp(got, p + VIRTIO_NET_HDR_LEN, n) == 0;
    }
    assert_true(seen);

    /* Tap → guest: a frame sent on the interface arrives with a header. */
    uint8_t out[512];
    size_t m = eth_frame(out, 300, 0x33);
    for (unsigned i = 0; i < 8; i++)
        fake_post(&f->drv, 0, (struct seg[]){ { SLOT(1 + i), 1526, true } }, 1);
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = t->ifindex, .sll_halen = 6 };
    memset(sll.sll_addr, 0xff, 6);
    assert_int_equal(sendto(t->pkt, out, m, 0, (struct sockaddr *)&sll, sizeof(sll)), (ssize_t)m);
    seen = false;
    for (int tries = 0; tries < 200 && !seen; tries++) {
        uint16_t before = fake_used_idx(&f->drv, 0);
        virtio_queue_notify(f->vdev, 0);
        for (uint16_t i = before; i < fake_used_idx(&f->drv, 0); i++) {
            uint8_t *g = hva(f, SLOT(1 + fake_used_id(&f->drv, 0, i)));
            seen |= fake_used_len(&f->drv, 0, i) == VIRTIO_NET_HDR_LEN + m &&
                    memcmp(g + VIRTIO_NET_HDR_LEN, out, m) == 0 && (g[10] | g[11] << 8) == 1;
        }
        if (!seen)
            g_usleep(10000);
    }
    assert_true(seen);
    assert_false(broken(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_and_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mq_config, setup_mq, teardown),
        cmocka_unit_test_setup_teardown(test_feature_dependencies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_offload_not_negotiated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_hostile_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_hostile_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_mergeable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_mergeable_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_hostile_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_hostile_tiny_mergeable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_hostile_outside_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mq, setup_mq, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup_mq, teardown),
        cmocka_unit_test_setup_teardown(test_announce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announce_after_load, setup_loop, teardown),
        cmocka_unit_test_setup_teardown(test_rx_readiness, setup_loop, teardown),
        cmocka_unit_test_setup_teardown(test_rx_budget, setup_loop, teardown),
        cmocka_unit_test_setup_teardown(test_rx_mergeable_event_idx, setup, teardown),
        cmocka_unit_test(test_mac_from_seed),
        cmocka_unit_test_setup_teardown(test_real_tap, setup_tap, teardown_tap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
