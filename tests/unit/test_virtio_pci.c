/* The virtio-pci modern transport from the driver's side: config space
 * identity and the capability list, common configuration semantics (feature
 * select windows, queue select, size/enable rules, 64-bit addresses in
 * halves), notify offsets and the per-queue ioeventfds (a kick through the
 * eventfd runs the queue on the loop thread, not the caller's), ISR
 * read-to-clear, MSI-X vector assignment and delivery through irqfds,
 * VIRTIO_NO_VECTOR, device reset and re-initialisation, RING_RESET, the
 * PCI_CFG access window, bad access widths, random accesses, save/load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define ECAM    0xe0000000ull
#define MMIO32  0xc0000000ull
#define RAM     (16ull << 20)
#define SLOT    4
#define DEVFN   (SLOT << 3)
#define QSZ     16
#define DESC    0x1000
#define AVAIL   0x2000
#define USED    0x3000
#define BUF     0x10000
#define V1      VIRTIO_BIT(VIRTIO_F_VERSION_1)
#define NQ      3           /* the test device: queues 0 and 2 exist, 1 does not */
#define TEST_ID 42

/* ---- a virtio device with a config space and three queue slots ---- */

struct tdev {
    struct virtio_device vdev;
    uint8_t cfg[8];
    unsigned runs[NQ];
    pthread_t ran_on;
};

static void tdev_cfg_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    memcpy(buf, ((struct tdev *)vdev->opaque)->cfg + off, len);
}

static void tdev_cfg_write(struct virtio_device *vdev, uint32_t off, const void *buf, uint32_t len)
{
    memcpy(((struct tdev *)vdev->opaque)->cfg + off, buf, len);
}

/* Fills every writable buffer with 0xa5 and hands it back. */
static int tdev_handle(struct virtio_device *vdev, unsigned qi)
{
    struct tdev *t = vdev->opaque;
    struct virtqueue *vq = virtio_vq(vdev, qi);
    struct virtq_chain c;
    int r;
    t->runs[qi]++;
    t->ran_on = pthread_self();
    while ((r = virtq_pop(vq, &c)) > 0) {
        uint8_t fill[64];
        memset(fill, 0xa5, sizeof(fill));
        size_t n = virtq_chain_write(vq, &c, 0, fill, MIN(c.in_len, sizeof(fill)));
        virtq_push(vq, &c, (uint32_t)n);
    }
    virtio_notify_queue(vdev, qi);
    return r;
}

static const struct virtio_device_ops tdev_ops = {
    .name = "tdev", .config_read = tdev_cfg_read, .config_write = tdev_cfg_write,
};

static struct tdev *tdev_new(struct guest_memory *gm, struct loop *loop)
{
    struct tdev *t = g_new0(struct tdev, 1);
    virtio_device_init(&t->vdev, TEST_ID, &tdev_ops, t, gm, loop, 0, sizeof(t->cfg), NQ);
    virtio_queue_init(&t->vdev, 0, QSZ, tdev_handle);
    virtio_queue_init(&t->vdev, 2, 8, tdev_handle);
    memcpy(t->cfg, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
    return t;
}

static void tdev_release(struct virtio_device *vdev)
{
    struct tdev *t = vdev->opaque;
    virtio_device_destroy(vdev);
    g_free(t);
}

/* ---- fixture: host bridge, fake KVM routing, guest RAM ---- */

struct ioev {
    uint64_t addr;
    unsigned len;
    int fd;
    bool assigned;
};

struct fx {
    struct bus pio, mmio;
    struct pci_host *host;
    struct irq_routing *routing;
    struct guest_memory gm;
    struct loop *loop;
    struct tdev *t;
    struct virtio_pci *vp;
    uint64_t bar;
    /* what the fake KVM saw */
    int irqfd_fd[IRQ_ROUTING_MAX_GSI];
    bool irqfd_attached[IRQ_ROUTING_MAX_GSI];
    struct kvm_irq_routing_entry routes[IRQ_ROUTING_MAX_GSI + 64];
    unsigned nroutes;
    unsigned nsent;
    struct ioev ioev[8];
    unsigned nioev;
    uint16_t avail_idx;
};

static int fake_set_routing(void *opaque, const struct kvm_irq_routing *t)
{
    struct fx *f = opaque;
    f->nroutes = t->nr;
    memcpy(f->routes, t->entries, t->nr * sizeof(t->entries[0]));
    return 0;
}

static int fake_irqfd(void *opaque, int fd, unsigned gsi, bool assign)
{
    struct fx *f = opaque;
    f->irqfd_attached[gsi] = assign;
    f->irqfd_fd[gsi] = fd;
    return 0;
}

static int fake_signal_msi(void *opaque, const struct irq_msi_msg *m)
{
    struct fx *f = opaque;
    f->nsent++;
    return 0;
}

static int fake_ioeventfd(void *opaque, bool pio, uint64_t addr, unsigned len, int fd, bool assign)
{
    struct fx *f = opaque;
    for (unsigned i = 0; i < f->nioev; i++)
        if (f->ioev[i].fd == fd) {
            f->ioev[i] = (struct ioev){ addr, len, fd, assign };
            return 0;
        }
    assert_true(f->nioev < G_N_ELEMENTS(f->ioev));
    f->ioev[f->nioev++] = (struct ioev){ addr, len, fd, assign };
    return 0;
}

static void cfg_wr(struct fx *f, unsigned off, uint32_t v, unsigned size)
{
    assert_true(bus_write(&f->mmio, ECAM + ((uint64_t)DEVFN << 12) + off, &v, size));
}

static uint32_t cfg_rd(struct fx *f, unsigned off, unsigned size)
{
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, ECAM + ((uint64_t)DEVFN << 12) + off, &v, size));
    return v;
}

static uint64_t rd(struct fx *f, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    assert_true(bus_read(&f->mmio, f->bar + off, &v, size));
    return v;
}

static void wr(struct fx *f, uint64_t off, unsigned size, uint64_t v)
{
    assert_true(bus_write(&f->mmio, f->bar + off, &v, size));
}

#define C(reg) (VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_##reg)

static void plug(struct fx *f, struct loop *loop, struct virtio_device *vdev, void (*release)(struct virtio_device *))
{
    struct virtio_pci_params p = { .id = "vp-test", .slot = SLOT, .release = release };
    g_autoptr(GError) err = NULL;
    f->vp = virtio_pci_create(f->host, f->routing, vdev, &p, &err);
    if (!f->vp)
        fail_msg("%s", err->message);
    f->bar = cfg_rd(f, PCI_CFG_BAR0, 4) & ~0xfull;
    cfg_wr(f, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER, 2);
}

static int setup_with(void **state, bool with_loop)
{
    struct fx *f = g_new0(struct fx, 1);
    bus_init(&f->pio, "pio");
    bus_init(&f->mmio, "mmio");
    struct pci_host_config c = {
        .ecam = { ECAM, 1ull << 28 }, .mmio32 = { MMIO32, 0x20000000 }, .io = { 0x1000, 0xf000 },
    };
    f->host = pci_host_create(&f->pio, &f->mmio, &c);
    assert_non_null(f->host);
    struct pci_ioeventfd_ops ioev = { fake_ioeventfd, f };
    pci_host_set_ioeventfd_ops(f->host, &ioev);
    f->routing = irq_routing_create(-1, true);
    struct irq_routing_backend be = { fake_set_routing, fake_irqfd, fake_signal_msi, f };
    irq_routing_set_backend(f->routing, &be);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&f->gm, RAM, false, false, &err) < 0)
        fail_msg("%s", err->message);
    if (with_loop) {
        f->loop = loop_new(&err);
        assert_non_null(f->loop);
    }
    f->t = tdev_new(&f->gm, f->loop);
    plug(f, f->loop, &f->t->vdev, tdev_release);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, false);
}

static int setup_loop(void **state)
{
    return setup_with(state, true);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->loop)
        loop_run_calls(f->loop);
    virtio_pci_destroy(f->vp);
    struct device d = pci_host_device(f->host);
    d.ops->destroy(d.dev);
    irq_routing_destroy(f->routing);
    loop_free(f->loop);
    guest_memory_destroy(&f->gm);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    g_free(f);
    return 0;
}

/* Finds the vendor capability of cfg_type `type`: its config offset or 0. */
static unsigned find_vcap(struct fx *f, unsigned type)
{
    unsigned cap = cfg_rd(f, PCI_CFG_CAP_PTR, 1) & ~3u;
    for (unsigned n = 0; cap && n < 48; n++) {
        if (cfg_rd(f, cap, 1) == PCI_CAP_ID_VENDOR && cfg_rd(f, cap + 3, 1) == type)
            return cap;
        cap = cfg_rd(f, cap + 1, 1) & ~3u;
    }
    return 0;
}

static void negotiate(struct fx *f, uint64_t features)
{
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(f, C(GFSELECT), 4, 0);
    wr(f, C(GF), 4, (uint32_t)features);
    wr(f, C(GFSELECT), 4, 1);
    wr(f, C(GF), 4, (uint32_t)(features >> 32));
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_true(rd(f, C(STATUS), 1) & VIRTIO_STATUS_FEATURES_OK);
}

static void setup_queue(struct fx *f, unsigned q, uint16_t vector)
{
    wr(f, C(Q_SELECT), 2, q);
    wr(f, C(Q_SIZE), 2, 8);
    wr(f, C(Q_DESC), 4, DESC);
    wr(f, C(Q_DESC) + 4, 4, 0);
    wr(f, C(Q_AVAIL), 8, AVAIL);
    wr(f, C(Q_USED), 4, USED);
    wr(f, C(Q_USED) + 4, 4, 0);
    wr(f, C(Q_MSIX), 2, vector);
    wr(f, C(Q_ENABLE), 2, 1);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 1);
}

static void driver_ok(struct fx *f)
{
    wr(f, C(STATUS), 1, rd(f, C(STATUS), 1) | VIRTIO_STATUS_DRIVER_OK);
}

static void offer_buffer(struct fx *f)
{
    uint8_t *d = f->gm.base + DESC;
    uint64_t addr = BUF;
    uint32_t len = 16;
    uint16_t flags = VIRTQ_DESC_F_WRITE, next = 0, head = 0;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    memcpy(f->gm.base + AVAIL + 4 + 2 * (f->avail_idx % 8), &head, 2);
    f->avail_idx++;
    memcpy(f->gm.base + AVAIL + 2, &f->avail_idx, 2);
}

static uint16_t used_idx(struct fx *f)
{
    uint16_t v;
    memcpy(&v, f->gm.base + USED + 2, 2);
    return v;
}

static void msix_enable(struct fx *f)
{
    unsigned cap = pci_device_find_cap(virtio_pci_function(f->vp), PCI_CAP_ID_MSIX);
    cfg_wr(f, cap + 2, 0x8000, 2);
}

static void msix_program(struct fx *f, unsigned vec, bool masked)
{
    uint64_t e = VIRTIO_PCI_MSIX_OFF + 16ull * vec;
    wr(f, e, 4, 0xfee00000u);
    wr(f, e + 4, 4, 0);
    wr(f, e + 8, 4, 0x40 + vec);
    wr(f, e + 12, 4, masked);
}

/* The GSI whose irqfd is `fd`, or -1. */
static int gsi_of_irqfd(struct fx *f, int fd)
{
    for (unsigned g = 0; g < IRQ_ROUTING_MAX_GSI; g++)
        if (f->irqfd_attached[g] && f->irqfd_fd[g] == fd)
            return (int)g;
    return -1;
}

/* How many times the vector's irqfd was written since the last call. */
static uint64_t irqfd_count(struct fx *f, unsigned vec)
{
    int fd = msix_vector_irqfd(virtio_pci_function(f->vp)->msix, vec);
    assert_true(fd >= 0);
    uint64_t n = 0;
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        n = 0;
    return n;
}

/* ---- identity and capabilities ---- */

static void test_identity(void **state)
{
    struct fx *f = *state;
    assert_int_equal(cfg_rd(f, PCI_CFG_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(cfg_rd(f, PCI_CFG_DEVICE_ID, 2), 0x1040 + TEST_ID);
    assert_int_equal(cfg_rd(f, PCI_CFG_REVISION, 1), 1);
    assert_int_equal(cfg_rd(f, PCI_CFG_SUBSYS_VENDOR, 2), 0x1af4);
    assert_int_equal(cfg_rd(f, PCI_CFG_SUBSYS_ID, 2), TEST_ID);
    assert_int_equal(cfg_rd(f, PCI_CFG_CLASS_PROG, 4) & 0xffffff, 0xff0000);
    assert_int_equal(cfg_rd(f, PCI_CFG_INT_PIN, 1), 0);       /* no INTx */
    assert_true(cfg_rd(f, PCI_CFG_STATUS, 2) & PCI_STATUS_CAP_LIST);
    /* BAR0: 32-bit non-prefetchable memory, 32 KiB for 4 vectors. */
    cfg_wr(f, PCI_CFG_COMMAND, 0, 2);
    cfg_wr(f, PCI_CFG_BAR0, 0xffffffffu, 4);
    assert_int_equal(cfg_rd(f, PCI_CFG_BAR0, 4), 0xffff8000u);
    cfg_wr(f, PCI_CFG_BAR0, (uint32_t)f->bar, 4);
    for (unsigned b = 1; b < PCI_NUM_BARS; b++)
        assert_int_equal(cfg_rd(f, PCI_CFG_BAR0 + 4 * b, 4), 0);

    /* Class per device type. */
    struct virtio_rng *rng = virtio_rng_new(&f->gm, NULL);
    struct virtio_pci_params p = { .slot = -1 };
    struct virtio_pci *vp = virtio_pci_create(f->host, f->routing, &rng->vdev, &p, NULL);
    assert_non_null(vp);
    struct pci_device *d = virtio_pci_function(vp);
    assert_int_equal(pci_cfg_get(d, PCI_CFG_DEVICE_ID, 2), 0x1044);
    assert_int_equal(pci_cfg_get(d, PCI_CFG_CLASS_PROG, 3), 0xff0000);
    assert_int_equal(d->devfn, 1 << 3);          /* the first free slot */
    assert_string_equal(virtio_pci_device(vp).id, "virtio-rng");
    virtio_pci_destroy(vp);
    virtio_rng_free(rng);
}

static void test_capabilities(void **state)
{
    struct fx *f = *state;
    static const struct { unsigned type, off, len, caplen; } want[] = {
        { VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, 0x3c, 16 },
        { VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, 16 },
        { VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, NQ * 4, 20 },
        { VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, 8, 16 },
        { VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        unsigned cap = find_vcap(f, want[i].type);
        assert_true(cap >= 0x40 && cap + want[i].caplen <= 0x100);
        assert_int_equal(cfg_rd(f, cap + 2, 1), want[i].caplen);
        assert_int_equal(cfg_rd(f, cap + 4, 1), 0);                 /* BAR0 */
        assert_int_equal(cfg_rd(f, cap + 8, 4), want[i].off);
        assert_int_equal(cfg_rd(f, cap + 12, 4), want[i].len);
        /* Read-only, except the PCI_CFG window's bar/offset/length/data. */
        cfg_wr(f, cap + 8, 0x12345678, 4);
        if (want[i].type != VIRTIO_PCI_CAP_PCI_CFG)
            assert_int_equal(cfg_rd(f, cap + 8, 4), want[i].off);
    }
    assert_int_equal(cfg_rd(f, find_vcap(f, VIRTIO_PCI_CAP_NOTIFY_CFG) + 16, 4), VIRTIO_PCI_NOTIFY_MULT);
    unsigned mcap = pci_device_find_cap(virtio_pci_function(f->vp), PCI_CAP_ID_MSIX);
    assert_int_not_equal(mcap, 0);
    assert_int_equal(cfg_rd(f, mcap + 2, 2) & 0x7ff, NQ);           /* NQ + 1 vectors */
    assert_int_equal(cfg_rd(f, mcap + 4, 4), VIRTIO_PCI_MSIX_OFF | 0);
    assert_int_equal(cfg_rd(f, mcap + 8, 4), (VIRTIO_PCI_MSIX_OFF + 0x1000) | 0);

    /* A device without config space has no DEVICE_CFG capability. */
    struct virtio_rng *rng = virtio_rng_new(&f->gm, NULL);
    struct virtio_pci_params p = { .slot = 9 };
    struct virtio_pci *vp = virtio_pci_create(f->host, f->routing, &rng->vdev, &p, NULL);
    assert_non_null(vp);
    struct pci_device *d = virtio_pci_function(vp);
    unsigned cap = pci_cfg_get(d, PCI_CFG_CAP_PTR, 1), types = 0;
    for (; cap; cap = pci_cfg_get(d, cap + 1, 1))
        if (pci_cfg_get(d, cap, 1) == PCI_CAP_ID_VENDOR)
            types |= 1u << pci_cfg_get(d, cap + 3, 1);
    assert_int_equal(types, 1u << 1 | 1u << 2 | 1u << 3 | 1u << 5);
    /* Slot 9 was asked for; slot 9 again is refused with a message. */
    assert_int_equal(d->devfn, 9 << 3);
    struct virtio_rng *rng2 = virtio_rng_new(&f->gm, NULL);
    g_autoptr(GError) err = NULL;
    assert_null(virtio_pci_create(f->host, f->routing, &rng2->vdev, &p, &err));
    assert_non_null(strstr(err->message, "slot 9"));
    virtio_rng_free(rng2);
    virtio_pci_destroy(vp);
    virtio_rng_free(rng);
}

/* ---- common configuration ---- */

static void test_feature_windows(void **state)
{
    struct fx *f = *state;
    uint64_t offer = VIRTIO_CORE_FEATURES;
    assert_int_equal(rd(f, C(DF), 4), (uint32_t)offer);
    wr(f, C(DFSELECT), 4, 1);
    assert_int_equal(rd(f, C(DFSELECT), 4), 1);
    assert_int_equal(rd(f, C(DF), 4), (uint32_t)(offer >> 32));
    wr(f, C(DFSELECT), 4, 2);
    assert_int_equal(rd(f, C(DF), 4), 0);
    wr(f, C(DFSELECT), 4, 0xffffffffu);
    assert_int_equal(rd(f, C(DF), 4), 0);
    wr(f, C(DF), 4, 0);                                     /* read-only */
    wr(f, C(DFSELECT), 4, 0);
    assert_int_equal(rd(f, C(DF), 4), (uint32_t)offer);

    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(f, C(GFSELECT), 4, 1);
    wr(f, C(GF), 4, 1);                                     /* VERSION_1 */
    wr(f, C(GFSELECT), 4, 0);
    wr(f, C(GF), 4, 1u << VIRTIO_F_EVENT_IDX);
    wr(f, C(GFSELECT), 4, 7);
    wr(f, C(GF), 4, 0xffffffffu);                           /* beyond the 64 bits: dropped */
    assert_int_equal(rd(f, C(GF), 4), 0);
    wr(f, C(GFSELECT), 4, 1);
    assert_int_equal(rd(f, C(GF), 4), 1);
    wr(f, C(GFSELECT), 4, 0);
    assert_int_equal(rd(f, C(GF), 4), 1u << VIRTIO_F_EVENT_IDX);
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_true(rd(f, C(STATUS), 1) & VIRTIO_STATUS_FEATURES_OK);
    assert_true(virtio_has_feature(&f->t->vdev, VIRTIO_F_EVENT_IDX));
    /* Frozen once accepted. */
    wr(f, C(GF), 4, 0);
    assert_int_equal(rd(f, C(GF), 4), 1u << VIRTIO_F_EVENT_IDX);

    /* A set without VERSION_1 is refused: FEATURES_OK does not read back. */
    wr(f, C(STATUS), 1, 0);
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(f, C(GF), 4, 1u << VIRTIO_F_EVENT_IDX);
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_int_equal(rd(f, C(STATUS), 1), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
}

static void test_queue_registers(void **state)
{
    struct fx *f = *state;
    assert_int_equal(rd(f, C(NUMQ), 2), NQ);
    wr(f, C(NUMQ), 2, 77);
    assert_int_equal(rd(f, C(NUMQ), 2), NQ);
    /* Queue 0 and 2 exist (max sizes 16 and 8); 1 and anything past NQ do not. */
    static const struct { unsigned q, size, noff; } qs[] = { { 0, QSZ, 0 }, { 1, 0, 0 }, { 2, 8, 2 }, { 3, 0, 0 },
                                                             { 0xffff, 0, 0 } };
    for (unsigned i = 0; i < G_N_ELEMENTS(qs); i++) {
        wr(f, C(Q_SELECT), 2, qs[i].q);
        assert_int_equal(rd(f, C(Q_SELECT), 2), qs[i].q);
        assert_int_equal(rd(f, C(Q_SIZE), 2), qs[i].size);
        assert_int_equal(rd(f, C(Q_NOFF), 2), qs[i].noff);
        assert_int_equal(rd(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
        assert_int_equal(rd(f, C(Q_ENABLE), 2), 0);
        assert_int_equal(rd(f, C(Q_NDATA), 2), 0);
        /* Writes to a queue that does not exist go nowhere. */
        if (!qs[i].size) {
            wr(f, C(Q_SIZE), 2, 4);
            wr(f, C(Q_DESC), 8, 0x5000);
            assert_int_equal(rd(f, C(Q_SIZE), 2), 0);
            assert_int_equal(rd(f, C(Q_DESC), 8), 0);
        }
    }

    /* 64-bit addresses: whole, or in 32-bit halves in either order. */
    wr(f, C(Q_SELECT), 2, 2);
    wr(f, C(Q_DESC) + 4, 4, 0x12);
    wr(f, C(Q_DESC), 4, 0x345000);
    assert_int_equal(rd(f, C(Q_DESC), 8), 0x1200345000ull);
    assert_int_equal(rd(f, C(Q_DESC), 4), 0x345000);
    assert_int_equal(rd(f, C(Q_DESC) + 4, 4), 0x12);
    wr(f, C(Q_AVAIL), 8, 0xabcdef001000ull);
    assert_int_equal(rd(f, C(Q_AVAIL) + 4, 4), 0xabcd);
    assert_int_equal(rd(f, C(Q_AVAIL), 4), 0xef001000u);
    /* The driver may shrink the size; the value reads back. */
    wr(f, C(Q_SIZE), 2, 4);
    assert_int_equal(rd(f, C(Q_SIZE), 2), 4);
    wr(f, C(Q_SELECT), 2, 0);
    assert_int_equal(rd(f, C(Q_SIZE), 2), QSZ);             /* per queue */

    /* Enable is refused before FEATURES_OK. */
    wr(f, C(Q_ENABLE), 2, 1);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 0);
    negotiate(f, V1);
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    assert_int_equal(rd(f, C(Q_SIZE), 2), 8);
    /* A live queue's layout cannot change; writing 0 to queue_enable does nothing. */
    wr(f, C(Q_SIZE), 2, 2);
    wr(f, C(Q_DESC), 4, 0x7000);
    wr(f, C(Q_ENABLE), 2, 0);
    assert_int_equal(rd(f, C(Q_SIZE), 2), 8);
    assert_int_equal(rd(f, C(Q_DESC), 8), DESC);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 1);
    /* A bad setup (size not a power of 2) breaks the device, not vmm. */
    setup_queue(f, 2, VIRTIO_NO_VECTOR);
    wr(f, C(STATUS), 1, 0);
    negotiate(f, V1);
    wr(f, C(Q_SELECT), 2, 2);
    wr(f, C(Q_SIZE), 2, 6);
    wr(f, C(Q_ENABLE), 2, 1);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 0);
    assert_true(rd(f, C(STATUS), 1) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_device_config(void **state)
{
    struct fx *f = *state;
    uint64_t d = VIRTIO_PCI_DEVICE_OFF;
    assert_int_equal(rd(f, d, 4), 0x44332211);
    assert_int_equal(rd(f, d + 4, 2), 0x6655);
    assert_int_equal(rd(f, d + 7, 1), 0x88);
    wr(f, d + 2, 2, 0xbeef);
    assert_int_equal(f->t->cfg[2], 0xef);
    assert_int_equal(f->t->cfg[3], 0xbe);
    assert_int_equal(rd(f, d + 8, 4), 0);                   /* past config_size */
    wr(f, d + 12, 4, 0xffffffff);
    /* 64-bit and misaligned accesses are not carried out. */
    assert_int_equal(rd(f, d, 8), 0);
    assert_int_equal(rd(f, d + 1, 2), 0);
    wr(f, d + 4, 8, 0);
    wr(f, d + 1, 4, 0);
    assert_memory_equal(f->t->cfg, "\x11\x22\xef\xbe\x55\x66\x77\x88", 8);
    /* The generation follows the device's changes. */
    uint8_t gen = (uint8_t)rd(f, C(CFGGEN), 1);
    virtio_config_changed(&f->t->vdev);
    assert_int_equal(rd(f, C(CFGGEN), 1), (uint8_t)(gen + 1));
    wr(f, C(CFGGEN), 1, 0);
    assert_int_equal(rd(f, C(CFGGEN), 1), (uint8_t)(gen + 1));
}

/* ---- notify, ISR, MSI-X ---- */

static void test_notify_and_isr(void **state)
{
    struct fx *f = *state;
    /* Without a loop there are no kick eventfds: a notify write is the kick. */
    assert_int_equal(f->nioev, 0);
    negotiate(f, V1);
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    driver_ok(f);
    unsigned runs = f->t->runs[0];
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF + 4 * 0, 2, 0);
    assert_int_equal(f->t->runs[0], runs + 1);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(f->gm.base[BUF], 0xa5);
    /* NO_VECTOR: no MSI-X message, only the ISR queue bit; read clears it. */
    assert_int_equal(f->nsent, 0);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF, 1), 0);
    /* Config change: bit 1. A 4-byte read of the ISR is not an ISR read. */
    virtio_config_changed(&f->t->vdev);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF, 4), 0);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF + 1, 1), 0);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
    wr(f, VIRTIO_PCI_ISR_OFF, 1, 0xff);                     /* read-only */
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF, 1), 0);

    /* Each queue at notify_off * multiplier; bad notify writes do nothing. */
    unsigned r0 = f->t->runs[0], r2 = f->t->runs[2];
    wr(f, VIRTIO_PCI_NOTIFY_OFF + 4 * 2, 2, 2);             /* queue 2: not enabled, no run */
    wr(f, VIRTIO_PCI_NOTIFY_OFF + 4 * 1, 2, 1);             /* queue 1 does not exist */
    wr(f, VIRTIO_PCI_NOTIFY_OFF + 4 * NQ, 2, NQ);           /* past the last queue */
    wr(f, VIRTIO_PCI_NOTIFY_OFF + 2, 2, 0);                 /* misaligned */
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 1, 0);                     /* byte */
    assert_int_equal(f->t->runs[0], r0);
    assert_int_equal(f->t->runs[2], r2);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 4, 0);                     /* 32-bit (NOTIFICATION_DATA style) is a kick */
    assert_int_equal(f->t->runs[0], r0 + 1);
    assert_int_equal(rd(f, VIRTIO_PCI_NOTIFY_OFF, 2), 0);
}

static void test_msix_vectors(void **state)
{
    struct fx *f = *state;
    /* Valid vectors are 0..NQ; anything else reads back NO_VECTOR. */
    wr(f, C(MSIX), 2, NQ);
    assert_int_equal(rd(f, C(MSIX), 2), NQ);
    wr(f, C(MSIX), 2, NQ + 1);
    assert_int_equal(rd(f, C(MSIX), 2), VIRTIO_NO_VECTOR);
    wr(f, C(Q_SELECT), 2, 2);
    wr(f, C(Q_MSIX), 2, 1);
    assert_int_equal(rd(f, C(Q_MSIX), 2), 1);
    wr(f, C(Q_MSIX), 2, 0x8000);
    assert_int_equal(rd(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
    wr(f, C(Q_SELECT), 2, 1);                               /* no such queue */
    wr(f, C(Q_MSIX), 2, 1);
    assert_int_equal(rd(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);

    negotiate(f, V1);
    wr(f, C(MSIX), 2, 0);
    setup_queue(f, 0, 1);
    driver_ok(f);
    /* Each assigned vector has an irqfd routed to a GSI of its own. */
    msix_program(f, 0, false);
    msix_program(f, 1, false);
    msix_enable(f);
    int fd0 = msix_vector_irqfd(virtio_pci_function(f->vp)->msix, 0);
    int fd1 = msix_vector_irqfd(virtio_pci_function(f->vp)->msix, 1);
    int g0 = gsi_of_irqfd(f, fd0), g1 = gsi_of_irqfd(f, fd1);
    assert_true(g0 >= 0 && g1 >= 0 && g0 != g1);

    /* A used buffer: queue 0's vector, through its irqfd (not signal_msi). */
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(irqfd_count(f, 1), 1);
    assert_int_equal(irqfd_count(f, 0), 0);
    assert_int_equal(f->nsent, 0);
    /* A config change: the config vector. */
    virtio_config_changed(&f->t->vdev);
    assert_int_equal(irqfd_count(f, 0), 1);
    assert_int_equal(irqfd_count(f, 1), 0);

    /* Masked: held in the PBA, delivered on unmask (KVM_SIGNAL_MSI). */
    msix_program(f, 1, true);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    uint64_t pba = rd(f, VIRTIO_PCI_MSIX_OFF + 0x1000, 8);
    assert_int_equal(pba, 1u << 1);
    msix_program(f, 1, false);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(rd(f, VIRTIO_PCI_MSIX_OFF + 0x1000, 8), 0);

    /* Back to NO_VECTOR: nothing is raised. */
    wr(f, C(Q_SELECT), 2, 0);
    wr(f, C(Q_MSIX), 2, VIRTIO_NO_VECTOR);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(used_idx(f), 3);
    assert_int_equal(irqfd_count(f, 1), 0);
    assert_int_equal(f->nsent, 1);
}

/* Without irq routing, vectors go through msix_notify (PBA while masked). */
static void test_msix_without_routing(void **state)
{
    struct fx *f = *state;
    struct virtio_rng *rng = virtio_rng_new(&f->gm, NULL);
    struct virtio_pci_params p = { .slot = 7 };
    struct virtio_pci *vp = virtio_pci_create(f->host, NULL, &rng->vdev, &p, NULL);
    assert_non_null(vp);
    struct virtio_device *vdev = &rng->vdev;
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(vdev, 1, 1);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_set_config_vector(vdev, 1);
    virtio_config_changed(vdev);        /* not DRIVER_OK yet: no interrupt */
    virtio_set_status(vdev, virtio_get_status(vdev) | VIRTIO_STATUS_DRIVER_OK);
    virtio_config_changed(vdev);
    assert_true(msix_vector_pending(virtio_pci_function(vp)->msix, 1));
    assert_false(msix_vector_pending(virtio_pci_function(vp)->msix, 0));
    virtio_pci_destroy(vp);
    virtio_rng_free(rng);
}

/* ---- reset ---- */

static void test_reset_and_reinit(void **state)
{
    struct fx *f = *state;
    negotiate(f, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    wr(f, C(MSIX), 2, 0);
    setup_queue(f, 0, 1);
    driver_ok(f);
    wr(f, C(DFSELECT), 4, 1);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(used_idx(f), 1);

    wr(f, C(STATUS), 1, 0);
    assert_int_equal(rd(f, C(STATUS), 1), 0);
    assert_int_equal(rd(f, C(DFSELECT), 4), 0);
    assert_int_equal(rd(f, C(Q_SELECT), 2), 0);
    assert_int_equal(rd(f, C(GF), 4), 0);
    assert_int_equal(rd(f, C(MSIX), 2), VIRTIO_NO_VECTOR);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 0);
    assert_int_equal(rd(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
    assert_int_equal(rd(f, C(Q_SIZE), 2), QSZ);
    assert_int_equal(rd(f, C(Q_DESC), 8), 0);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF, 1), 0);

    /* A kick after reset does nothing; the device comes back up from scratch. */
    unsigned runs = f->t->runs[0];
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(f->t->runs[0], runs);
    memset(f->gm.base + AVAIL, 0, 0x2000);
    f->avail_idx = 0;
    negotiate(f, V1);
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    driver_ok(f);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(used_idx(f), 1);

    /* The machine reset through the host bridge resets the device too. */
    struct device h = pci_host_device(f->host);
    h.ops->reset(h.dev);
    assert_int_equal(virtio_get_status(&f->t->vdev), 0);
    assert_int_equal(cfg_rd(f, PCI_CFG_COMMAND, 2), 0);
}

static void test_ring_reset(void **state)
{
    struct fx *f = *state;
    negotiate(f, V1 | VIRTIO_BIT(VIRTIO_F_RING_RESET));
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    driver_ok(f);
    wr(f, C(Q_SELECT), 2, 0);
    assert_int_equal(rd(f, C(Q_RESET), 2), 0);
    wr(f, C(Q_RESET), 2, 1);
    /* Done at once without a loop: queue_reset and queue_enable read 0. */
    assert_int_equal(rd(f, C(Q_RESET), 2), 0);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 0);
    assert_int_equal(rd(f, C(Q_DESC), 8), 0);
    /* Re-enabled after DRIVER_OK, as RING_RESET allows. */
    memset(f->gm.base + AVAIL, 0, 0x2000);
    f->avail_idx = 0;
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    assert_int_equal(rd(f, C(Q_RESET), 2), 0);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(used_idx(f), 1);
    /* Without RING_RESET negotiated the register does nothing. */
    wr(f, C(STATUS), 1, 0);
    negotiate(f, V1);
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    wr(f, C(Q_RESET), 2, 1);
    assert_int_equal(rd(f, C(Q_RESET), 2), 0);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 1);
}

/* ---- bad accesses ---- */

static void test_bad_widths(void **state)
{
    struct fx *f = *state;
    /* 32-bit fields read with other widths give 0 and change nothing. */
    wr(f, C(DFSELECT), 4, 1);
    assert_int_equal(rd(f, C(DFSELECT), 2), 0);
    assert_int_equal(rd(f, C(DFSELECT), 1), 0);
    assert_int_equal(rd(f, C(DFSELECT), 8), 0);
    assert_int_equal(rd(f, C(DF), 2), 0);
    wr(f, C(DFSELECT), 2, 0);
    assert_int_equal(rd(f, C(DFSELECT), 4), 1);
    /* Status is a byte: a 16- or 32-bit write is not a status write (nor a reset). */
    wr(f, C(STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(f, C(STATUS), 2, 0);
    wr(f, C(STATUS), 4, 0);
    assert_int_equal(rd(f, C(STATUS), 1), VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(rd(f, C(STATUS), 2), 0);
    /* 16-bit fields: byte or dword accesses, or straddling two fields. */
    wr(f, C(Q_SELECT), 1, 2);
    wr(f, C(Q_SELECT) - 1, 2, 0x0200);
    assert_int_equal(rd(f, C(Q_SELECT), 2), 0);
    assert_int_equal(rd(f, C(NUMQ), 4), 0);
    assert_int_equal(rd(f, C(NUMQ) + 1, 2), 0);
    /* 64-bit fields: not at an odd offset, not 16-bit. */
    wr(f, C(Q_DESC) + 2, 4, 0x1000);
    wr(f, C(Q_DESC), 2, 0x1000);
    wr(f, C(Q_DESC) + 4, 8, 0x1000);
    assert_int_equal(rd(f, C(Q_DESC), 8), 0);
    /* Past the structure, in the holes of the BAR, past the notify area. */
    assert_int_equal(rd(f, VIRTIO_PCI_COMMON_LEN, 4), 0);
    assert_int_equal(rd(f, 0xffc, 4), 0);
    wr(f, 0xffc, 4, 0xffffffff);
    assert_int_equal(rd(f, VIRTIO_PCI_NOTIFY_OFF + 0x800, 4), 0);
    wr(f, VIRTIO_PCI_NOTIFY_OFF + 0xffc, 4, 0);
    assert_int_equal(rd(f, VIRTIO_PCI_ISR_OFF + 0xfff, 1), 0);
    /* Nothing above changed the device. */
    assert_int_equal(rd(f, C(STATUS), 1), VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(rd(f, C(Q_SELECT), 2), 0);
}

/* Seeded random accesses of any width to any offset of the BAR and of
 * config space: nothing crashes, and the device can still be reset and
 * brought up afterwards. */
static void test_random_accesses(void **state)
{
    struct fx *f = *state;
    GRand *rnd = g_rand_new_with_seed(4242);
    static const unsigned sizes[] = { 1, 2, 4, 8 };
    for (unsigned i = 0; i < 20000; i++) {
        unsigned size = sizes[g_rand_int_range(rnd, 0, 4)];
        uint64_t off = (uint64_t)g_rand_int_range(rnd, 0, 0x8000 - 8);
        if (g_rand_boolean(rnd))
            off &= ~0xfffull | 0x3f;                        /* mostly the interesting first bytes of a page */
        uint64_t v = (uint64_t)g_rand_int(rnd) << 32 | g_rand_int(rnd);
        if (g_rand_int_range(rnd, 0, 4) == 0)
            v &= 0x3;
        if (off >= VIRTIO_PCI_MSIX_OFF)
            continue;                                       /* the MSI-X table has tests of its own */
        if (g_rand_boolean(rnd))
            wr(f, off, size, v);
        else
            (void)rd(f, off, size);
        if (i % 64 == 0) {
            unsigned coff = 0x40 + (unsigned)g_rand_int_range(rnd, 0, 0xc0);
            unsigned csize = sizes[g_rand_int_range(rnd, 0, 3)];
            coff &= ~(csize - 1);
            if (g_rand_boolean(rnd))
                cfg_wr(f, coff, (uint32_t)v, csize);
            else
                (void)cfg_rd(f, coff, csize);
        }
    }
    g_rand_free(rnd);
    cfg_wr(f, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER, 2);
    wr(f, C(STATUS), 1, 0);
    assert_int_equal(rd(f, C(STATUS), 1), 0);
    memset(f->gm.base, 0, 0x20000);
    f->avail_idx = 0;
    negotiate(f, V1);
    setup_queue(f, 0, VIRTIO_NO_VECTOR);
    driver_ok(f);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(used_idx(f), 1);
}

/* ---- PCI configuration access window ---- */

static void test_pci_cfg_window(void **state)
{
    struct fx *f = *state;
    unsigned cap = find_vcap(f, VIRTIO_PCI_CAP_PCI_CFG);
    assert_int_not_equal(cap, 0);
    /* Read num_queues through the window. */
    cfg_wr(f, cap + 4, 0, 1);
    cfg_wr(f, cap + 8, C(NUMQ), 4);
    cfg_wr(f, cap + 12, 2, 4);
    assert_int_equal(cfg_rd(f, cap + 16, 2), NQ);
    /* Write the status byte through it; the BAR sees it. */
    cfg_wr(f, cap + 8, C(STATUS), 4);
    cfg_wr(f, cap + 12, 1, 4);
    cfg_wr(f, cap + 16, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    assert_int_equal(rd(f, C(STATUS), 1), VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(cfg_rd(f, cap + 16, 1), VIRTIO_STATUS_ACKNOWLEDGE);
    /* A 32-bit feature window, with decode off: the window does not need the BAR mapped. */
    cfg_wr(f, PCI_CFG_COMMAND, 0, 2);
    cfg_wr(f, cap + 8, C(DF), 4);
    cfg_wr(f, cap + 12, 4, 4);
    assert_int_equal(cfg_rd(f, cap + 16, 4), (uint32_t)VIRTIO_CORE_FEATURES);
    /* The MSI-X table through the window. */
    cfg_wr(f, cap + 8, VIRTIO_PCI_MSIX_OFF + 8, 4);
    cfg_wr(f, cap + 16, 0x4455, 4);
    assert_int_equal(cfg_rd(f, cap + 16, 4), 0x4455);
    cfg_wr(f, PCI_CFG_COMMAND, PCI_CMD_MEMORY, 2);
    assert_int_equal(rd(f, VIRTIO_PCI_MSIX_OFF + 8, 4), 0x4455);
    /* Lengths other than 1/2/4, misaligned offsets, other BARs, offsets past
     * the BAR: not carried out. */
    static const struct { unsigned bar; uint32_t off, len; } bad[] = {
        { 0, C(STATUS), 3 }, { 0, C(STATUS), 8 }, { 0, C(STATUS), 0 }, { 0, C(NUMQ) + 1, 2 },
        { 1, C(STATUS), 1 }, { 5, C(STATUS), 1 }, { 0, 0x8000, 1 }, { 0, 0xfffffffc, 4 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        cfg_wr(f, cap + 4, bad[i].bar, 1);
        cfg_wr(f, cap + 8, bad[i].off, 4);
        cfg_wr(f, cap + 12, bad[i].len, 4);
        cfg_wr(f, cap + 16, 0, 4);
        assert_int_equal(cfg_rd(f, cap + 16, 4), 0);    /* what was written, untouched */
        assert_int_equal(rd(f, C(STATUS), 1), VIRTIO_STATUS_ACKNOWLEDGE);
    }
}

/* ---- ioeventfds and the loop ---- */

static void quit_on_loop(void *opaque)
{
    loop_quit(opaque);
}

static void test_kick_by_ioeventfd(void **state)
{
    struct fx *f = *state;
    /* One eventfd per existing queue, at notify_off * 4, any length, placed
     * where BAR0 decodes. */
    assert_int_equal(f->nioev, 2);
    int kick0 = -1;
    for (unsigned i = 0; i < f->nioev; i++) {
        assert_true(f->ioev[i].assigned);
        assert_int_equal(f->ioev[i].len, 0);
        assert_true(f->ioev[i].addr == f->bar + VIRTIO_PCI_NOTIFY_OFF ||
                    f->ioev[i].addr == f->bar + VIRTIO_PCI_NOTIFY_OFF + 8);
        if (f->ioev[i].addr == f->bar + VIRTIO_PCI_NOTIFY_OFF)
            kick0 = f->ioev[i].fd;
    }
    assert_true(kick0 >= 0);
    /* Moving the BAR moves them. */
    cfg_wr(f, PCI_CFG_COMMAND, 0, 2);
    for (unsigned i = 0; i < f->nioev; i++)
        assert_false(f->ioev[i].assigned);
    f->bar += 0x100000;
    cfg_wr(f, PCI_CFG_BAR0, (uint32_t)f->bar, 4);
    cfg_wr(f, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER, 2);
    for (unsigned i = 0; i < f->nioev; i++)
        assert_true(f->ioev[i].assigned && f->ioev[i].addr >= f->bar + VIRTIO_PCI_NOTIFY_OFF);

    negotiate(f, V1);
    wr(f, C(MSIX), 2, 0);
    setup_queue(f, 0, 1);
    msix_program(f, 1, false);
    msix_enable(f);
    loop_call(f->loop, quit_on_loop, f->loop);
    assert_int_equal(loop_run(f->loop), 0);      /* DRIVER_OK below runs queues on the loop */
    driver_ok(f);
    offer_buffer(f);
    /* What KVM does on the guest's notify write: signal the eventfd. The
     * queue runs on the loop, whose thread is this one only while loop_run
     * runs; the interrupt comes out through vector 1's irqfd. */
    uint64_t one = 1;
    assert_int_equal(write(kick0, &one, sizeof(one)), sizeof(one));
    unsigned runs = f->t->runs[0];
    int irq = msix_vector_irqfd(virtio_pci_function(f->vp)->msix, 1);
    while (used_idx(f) != 1) {
        loop_call(f->loop, quit_on_loop, f->loop);
        assert_int_equal(loop_run(f->loop), 0);
    }
    assert_true(f->t->runs[0] > runs);
    struct pollfd p = { .fd = irq, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_int_equal(irqfd_count(f, 1), 1);
    /* The notify register itself did not run it on this thread: a write that
     * reaches vmm is deferred to the loop as well, and with an ioeventfd
     * bound there it says so (once) at log level info. */
    runs = f->t->runs[0];
    offer_buffer(f);
    char logname[] = "/tmp/test_virtio_pci.XXXXXX";
    int logfd = mkstemp(logname), saved = dup(2);
    assert_true(logfd >= 0 && saved >= 0);
    unlink(logname);
    dup2(logfd, 2);
    enum log_level old_level = log_threshold;
    log_threshold = LOG_INFO;
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    log_threshold = old_level;
    dup2(saved, 2);
    close(saved);
    char logbuf[512] = { 0 };
    assert_true(pread(logfd, logbuf, sizeof(logbuf) - 1, 0) > 0);
    close(logfd);
    const char *hit = strstr(logbuf, "queue 0 kick reached vmm instead of its ioeventfd");
    assert_non_null(hit);
    assert_null(strstr(strchr(hit, '\n'), "instead of its ioeventfd"));     /* once */
    assert_int_equal(f->t->runs[0], runs);
    loop_call(f->loop, quit_on_loop, f->loop);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->t->runs[0], runs + 2);      /* one run per notify write */
    assert_int_equal(used_idx(f), 2);
}

/* ---- save / load ---- */

static void test_save_load(void **state)
{
    struct fx *f = *state;
    negotiate(f, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    wr(f, C(MSIX), 2, 2);
    setup_queue(f, 0, 1);
    driver_ok(f);
    msix_program(f, 1, false);
    wr(f, C(DFSELECT), 4, 1);
    wr(f, C(GFSELECT), 4, 1);
    wr(f, C(Q_SELECT), 2, 2);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);

    struct state_writer *w = state_writer_new();
    struct device dev = virtio_pci_device(f->vp);
    assert_int_equal(dev.ops->save(dev.dev, w), 0);
    g_autoptr(GBytes) stream = state_writer_finish(w);

    /* A fresh function in the same slot takes it all back. */
    virtio_pci_destroy(f->vp);
    f->t = tdev_new(&f->gm, NULL);
    plug(f, NULL, &f->t->vdev, tdev_release);
    assert_int_equal(rd(f, C(STATUS), 1), 0);
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(stream, &err);
    assert_non_null(r);
    dev = virtio_pci_device(f->vp);
    assert_int_equal(dev.ops->load(dev.dev, r), 0);
    assert_true(state_reader_at_end(r));
    state_reader_free(r);
    assert_int_equal(rd(f, C(STATUS), 1), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                              VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(rd(f, C(DFSELECT), 4), 1);
    assert_int_equal(rd(f, C(GF), 4), 1);
    assert_int_equal(rd(f, C(Q_SELECT), 2), 2);
    assert_int_equal(rd(f, C(MSIX), 2), 2);
    wr(f, C(Q_SELECT), 2, 0);
    assert_int_equal(rd(f, C(Q_MSIX), 2), 1);
    assert_int_equal(rd(f, C(Q_ENABLE), 2), 1);
    assert_int_equal(rd(f, VIRTIO_PCI_MSIX_OFF + 16 + 8, 4), 0x41);
    /* The queue carries on where it was, with its vector's irqfd. */
    msix_enable(f);
    offer_buffer(f);
    wr(f, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_int_equal(used_idx(f), 2);
    assert_int_equal(irqfd_count(f, 1), 1);

    /* A device with the same queue count but another type refuses the
     * stream at its virtio section, after the MSI-X one: nothing of it stays. */
    r = state_reader_new(stream, &err);
    assert_non_null(r);
    struct tdev *other = g_new0(struct tdev, 1);
    virtio_device_init(&other->vdev, TEST_ID + 1, &tdev_ops, other, &f->gm, NULL, 0, 8, NQ);
    virtio_queue_init(&other->vdev, 0, QSZ, tdev_handle);
    virtio_queue_init(&other->vdev, 2, 8, tdev_handle);
    struct virtio_pci_params p = { .slot = 6 };
    struct virtio_pci *vp = virtio_pci_create(f->host, f->routing, &other->vdev, &p, NULL);
    assert_non_null(vp);
    struct pci_device *od = virtio_pci_function(vp);
    uint32_t before[4 * (NQ + 1)];
    for (unsigned i = 0; i < 4 * (NQ + 1); i++)
        assert_true(msix_bar_read(od->msix, 0, VIRTIO_PCI_MSIX_OFF + 4 * i, &before[i], 4));
    dev = virtio_pci_device(vp);
    assert_int_not_equal(dev.ops->load(dev.dev, r), 0);
    state_reader_free(r);
    for (unsigned i = 0; i < 4 * (NQ + 1); i++) {
        uint32_t v = 0;
        assert_true(msix_bar_read(od->msix, 0, VIRTIO_PCI_MSIX_OFF + 4 * i, &v, 4));
        assert_int_equal(v, before[i]);
    }
    assert_int_equal(virtio_get_status(&other->vdev), 0);
    virtio_pci_destroy(vp);
    tdev_release(&other->vdev);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_identity),
        T(test_capabilities),
        T(test_feature_windows),
        T(test_queue_registers),
        T(test_device_config),
        T(test_notify_and_isr),
        T(test_msix_vectors),
        T(test_msix_without_routing),
        T(test_reset_and_reinit),
        T(test_ring_reset),
        T(test_bad_widths),
        T(test_random_accesses),
        T(test_pci_cfg_window),
        cmocka_unit_test_setup_teardown(test_kick_by_ioeventfd, setup_loop, teardown),
        T(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
