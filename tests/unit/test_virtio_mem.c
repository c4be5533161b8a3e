/* virtio-mem over real guest memory with a hotplug region and no loop
 * (requests run synchronously on a notify): the config layout, PLUG /
 * UNPLUG / UNPLUG_ALL / STATE with every validation rule of 5.15.6 (ACK,
 * NACK, ERROR), hostile chains (NEEDS_RESET, nothing else), the plugged
 * bitmap as device accesses see it (refused in unplugged blocks), the
 * discard (a block plugged again reads zero; RSS goes down), requested_size
 * changes (config interrupt, usable region grows, never shrinks but by
 * UNPLUG_ALL), a device reset that keeps the blocks, and save/load. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "devices/virtio/mem.h"
#include "tests/unit/fake_driver.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define MIB (1ULL << 20)
#define RAM (16 * MIB)
#define HP_SIZE (512 * MIB)
#define BLK (2 * MIB)
#define QSZ 16
#define REQ_GPA  0x20000ULL     /* request buffers */
#define RESP_GPA 0x30000ULL

struct fx {
    struct guest_memory gm;
    struct virtio_mem *m;
    struct virtio_device *vdev;
    struct fake_driver drv;
    unsigned irqs;
    uint64_t base;
    unsigned size_events;
    uint64_t last_event;
};

/* Config interrupts only: the config vector is 0, the queue's 1. */
static void count_interrupt(void *opaque, uint16_t vector)
{
    struct fx *f = opaque;
    f->irqs += vector == 0;
}

static void on_size(void *opaque, struct virtio_mem *m, uint64_t plugged)
{
    struct fx *f = opaque;
    f->size_events++;
    f->last_event = plugged;
}

static int setup_backing(void **state, bool shared)
{
    struct fx *f = g_new0(struct fx, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&f->gm, RAM, false, shared, &err) < 0)
        fail_msg("%s", err->message);
    f->base = guest_memory_hotplug_base(RAM);
    if (guest_memory_add_hotplug(&f->gm, f->base, HP_SIZE, BLK, &err) < 0)
        fail_msg("%s", err->message);
    f->drv = (struct fake_driver){ .ram = f->gm.base, .qsz = QSZ };
    f->m = virtio_mem_new(&f->gm, NULL, "vmem0", 0);
    f->vdev = &f->m->vdev;
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = count_interrupt, .opaque = f });
    virtio_mem_set_size_cb(f->m, on_size, f);
    *state = f;
    return 0;
}

static int setup(void **s) { return setup_backing(s, false); }
static int setup_shared(void **s) { return setup_backing(s, true); }

static int teardown(void **state)
{
    struct fx *f = *state;
    virtio_mem_free(f->m);
    guest_memory_destroy(&f->gm);
    g_free(f);
    return 0;
}

static uint64_t cfg64(struct fx *f, uint32_t off)
{
    uint64_t v = 0;
    virtio_config_read(f->vdev, off, &v, 8);
    return v;
}

static void bring_up(struct fx *f)
{
    struct virtio_device *v = f->vdev;
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, VIRTIO_BIT(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE));
    virtio_set_driver_features(v, 1, 1);   /* VERSION_1 */
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_true(virtio_get_status(v) & VIRTIO_STATUS_FEATURES_OK);
    memset(f->gm.base + FAKE_DESC(0), 0, 0x3000);
    virtio_queue_set_size(v, 0, QSZ);
    virtio_queue_set_desc(v, 0, FAKE_DESC(0));
    virtio_queue_set_avail(v, 0, FAKE_AVAIL(0));
    virtio_queue_set_used(v, 0, FAKE_USED(0));
    virtio_set_config_vector(v, 0);
    virtio_queue_set_vector(v, 0, 1);
    assert_int_equal(virtio_queue_enable(v, 0), 0);
    f->drv.avail_idx[0] = f->drv.next_desc[0] = 0;
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
}

static bool broken(struct fx *f)
{
    return virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET;
}

/* Sends one request; returns the response type, *state the STATE answer. */
static uint16_t request(struct fx *f, uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
    uint8_t req[VIRTIO_MEM_REQ_SIZE] = { 0 };
    memcpy(req, &type, 2);
    memcpy(req + 8, &addr, 8);
    memcpy(req + 16, &nb, 2);
    memcpy(f->gm.base + REQ_GPA, req, sizeof(req));
    memset(f->gm.base + RESP_GPA, 0xee, VIRTIO_MEM_RESP_SIZE);
    uint16_t before = fake_used_idx(&f->drv, 0);
    struct seg s[2] = { { REQ_GPA, VIRTIO_MEM_REQ_SIZE, false }, { RESP_GPA, VIRTIO_MEM_RESP_SIZE, true } };
    fake_post(&f->drv, 0, s, 2);
    virtio_queue_notify(f->vdev, 0);
    assert_false(broken(f));
    assert_int_equal(fake_used_idx(&f->drv, 0), (uint16_t)(before + 1));
    assert_int_equal(fake_used_len(&f->drv, 0, before), VIRTIO_MEM_RESP_SIZE);
    uint16_t resp, st;
    memcpy(&resp, f->gm.base + RESP_GPA, 2);
    memcpy(&st, f->gm.base + RESP_GPA + 8, 2);
    if (state)
        *state = st;
    return resp;
}

static void test_config_layout(void **state)
{
    struct fx *f = *state;
    assert_int_equal(f->vdev->device_id, 24);
    assert_int_equal(f->vdev->config_size, 56);
    assert_int_equal(cfg64(f, 0), BLK);
    uint16_t node = 0xffff;
    virtio_config_read(f->vdev, 8, &node, 2);
    assert_int_equal(node, 0);
    assert_int_equal(cfg64(f, 16), f->base);
    assert_int_equal(f->base, LAYOUT_4GIB);   /* 16 MiB of RAM: the first 1 GiB boundary at or above 4 GiB */
    assert_int_equal(cfg64(f, 24), HP_SIZE);
    assert_int_equal(cfg64(f, 32), VIRTIO_MEM_USABLE_EXTENT);   /* requested 0 + the extent */
    assert_int_equal(cfg64(f, 40), 0);
    assert_int_equal(cfg64(f, 48), 0);
    /* read-only: a write changes nothing */
    uint64_t junk = 0x1234;
    virtio_config_write(f->vdev, 48, &junk, 8);
    assert_int_equal(cfg64(f, 48), 0);
    /* offered: UNPLUGGED_INACCESSIBLE, not ACPI_PXM (no NUMA) */
    uint32_t feat = virtio_get_device_features(f->vdev, 0);
    assert_true(feat & (1u << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE));
    assert_false(feat & (1u << VIRTIO_MEM_F_ACPI_PXM));
}

static void test_region_placement(void **state)
{
    (void)state;
    /* Above RAM that goes past 4 GiB: the next 1 GiB boundary. */
    assert_int_equal(guest_memory_hotplug_base(3ULL << 30), LAYOUT_4GIB);
    assert_int_equal(guest_memory_hotplug_base((3ULL << 30) + MIB), LAYOUT_4GIB + (1ULL << 30));
    assert_int_equal(guest_memory_hotplug_base(8ULL << 30), LAYOUT_4GIB + (5ULL << 30));
}

/* The region is no RAM in e820 (the guest learns of it from the device). */
static void test_not_in_e820(void **state)
{
    struct fx *f = *state;
    struct e820_range map[E820_MAX_ENTRIES];
    unsigned n = e820_build(&f->gm, map);
    for (unsigned i = 0; i < n; i++)
        assert_true(map[i].addr + map[i].size <= f->base || map[i].addr >= f->base + HP_SIZE);
}

static void test_plug_unplug(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    /* Nothing requested: a plug is refused (NACK) */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base, 1, NULL), VIRTIO_MEM_RESP_NACK);
    unsigned irqs = f->irqs;
    assert_int_equal(virtio_mem_set_requested(f->m, 8 * MIB), 0);
    assert_int_equal(f->irqs, irqs + 1);       /* config change interrupt */
    assert_int_equal(cfg64(f, 48), 8 * MIB);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base, 3, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(cfg64(f, 40), 6 * MIB);
    assert_int_equal(f->size_events, 1);
    assert_int_equal(f->last_event, 6 * MIB);
    /* 2 more would go past 8 MiB: NACK, and nothing changes */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + 3 * BLK, 2, NULL), VIRTIO_MEM_RESP_NACK);
    assert_int_equal(cfg64(f, 40), 6 * MIB);
    assert_int_equal(f->size_events, 1);
    /* a block that is plugged already: ERROR */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + 2 * BLK, 1, NULL), VIRTIO_MEM_RESP_ERROR);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + 3 * BLK, 1, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(cfg64(f, 40), 8 * MIB);

    uint16_t st = 0xff;
    assert_int_equal(request(f, VIRTIO_MEM_REQ_STATE, f->base, 4, &st), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(st, VIRTIO_MEM_STATE_PLUGGED);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_STATE, f->base + 2 * BLK, 4, &st), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(st, VIRTIO_MEM_STATE_MIXED);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_STATE, f->base + 4 * BLK, 4, &st), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(st, VIRTIO_MEM_STATE_UNPLUGGED);

    /* devices reach plugged memory, not unplugged memory */
    uint32_t v = 0xabcd1234;
    assert_int_equal(guest_memory_write(&f->gm, f->base + 4 * BLK - 4, &v, 4), 0);
    assert_int_equal(guest_memory_write(&f->gm, f->base + 4 * BLK - 2, &v, 4), -EFAULT);   /* straddles */
    assert_int_equal(guest_memory_write(&f->gm, f->base + 4 * BLK, &v, 4), -EFAULT);
    assert_null(guest_memory_ptr(&f->gm, f->base + 5 * BLK, 1));
    assert_true(guest_memory_page_dirty(&f->gm, f->base + 4 * BLK - 4));

    /* unplug one block; part of it unplugged already: ERROR */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG, f->base + 3 * BLK, 2, NULL), VIRTIO_MEM_RESP_ERROR);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG, f->base + 3 * BLK, 1, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(cfg64(f, 40), 6 * MIB);
    assert_int_equal(f->last_event, 6 * MIB);
    assert_int_equal(guest_memory_read(&f->gm, f->base + 4 * BLK - 4, &v, 4), -EFAULT);
    /* plugged again it reads zero: the pages went back to the host */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + 3 * BLK, 1, NULL), VIRTIO_MEM_RESP_ACK);
    v = 1;
    assert_int_equal(guest_memory_read(&f->gm, f->base + 4 * BLK - 4, &v, 4), 0);
    assert_int_equal(v, 0);

    /* UNPLUG_ALL: plugged 0, no config interrupt */
    irqs = f->irqs;
    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(cfg64(f, 40), 0);
    assert_int_equal(f->irqs, irqs);
    assert_int_equal(guest_memory_count_plugged(&f->gm, f->base, HP_SIZE), 0);
    assert_int_equal(f->last_event, 0);
}

/* Every malformed request is answered ERROR and the device stays up. */
static void test_bad_requests(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(virtio_mem_set_requested(f->m, 64 * MIB), 0);
    uint64_t usable = cfg64(f, 32);
    assert_int_equal(usable, 64 * MIB + VIRTIO_MEM_USABLE_EXTENT);
    const struct { uint16_t type; uint64_t addr; uint16_t nb; } bad[] = {
        { VIRTIO_MEM_REQ_PLUG, f->base + 4096, 1 },             /* misaligned */
        { VIRTIO_MEM_REQ_PLUG, f->base, 0 },                    /* no blocks */
        { VIRTIO_MEM_REQ_PLUG, f->base - BLK, 1 },              /* below the region */
        { VIRTIO_MEM_REQ_PLUG, 0, 1 },                          /* ordinary RAM */
        { VIRTIO_MEM_REQ_PLUG, f->base + usable - BLK, 2 },     /* past the usable region */
        { VIRTIO_MEM_REQ_PLUG, f->base + usable, 1 },
        { VIRTIO_MEM_REQ_PLUG, f->base + HP_SIZE, 1 },          /* past the region */
        { VIRTIO_MEM_REQ_PLUG, ~0ULL & ~(BLK - 1), 65535 },     /* wraps */
        { VIRTIO_MEM_REQ_UNPLUG, f->base, 1 },                  /* not plugged */
        { VIRTIO_MEM_REQ_UNPLUG, f->base + 4096, 1 },
        { VIRTIO_MEM_REQ_UNPLUG, f->base, 0 },
        { VIRTIO_MEM_REQ_STATE, f->base + usable, 1 },
        { VIRTIO_MEM_REQ_STATE, f->base, 0 },
        { VIRTIO_MEM_REQ_STATE, f->base + 1, 1 },
        { 4, f->base, 1 },                                      /* unknown type */
        { 0xffff, 0, 0 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++)
        assert_int_equal(request(f, bad[i].type, bad[i].addr, bad[i].nb, NULL), VIRTIO_MEM_RESP_ERROR);
    assert_int_equal(cfg64(f, 40), 0);
    assert_int_equal(f->size_events, 0);
    /* the last block of the usable region plugs fine */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + usable - BLK, 1, NULL), VIRTIO_MEM_RESP_ACK);
}

/* Chains too short for a request or its answer break the device (NEEDS_RESET);
 * nothing is plugged, and after a reset it works again. */
static void test_hostile_chains(void **state)
{
    struct fx *f = *state;
    const struct seg cases[][2] = {
        { { REQ_GPA, VIRTIO_MEM_REQ_SIZE - 1, false }, { RESP_GPA, VIRTIO_MEM_RESP_SIZE, true } },
        { { REQ_GPA, VIRTIO_MEM_REQ_SIZE, false }, { RESP_GPA, VIRTIO_MEM_RESP_SIZE - 1, true } },
        { { REQ_GPA, VIRTIO_MEM_REQ_SIZE, false }, { REQ_GPA, VIRTIO_MEM_REQ_SIZE, false } },
        { { RESP_GPA, VIRTIO_MEM_RESP_SIZE, true }, { RESP_GPA, VIRTIO_MEM_RESP_SIZE, true } },
        /* the response buffer in the unplugged hotplug region */
        { { REQ_GPA, VIRTIO_MEM_REQ_SIZE, false }, { 0, VIRTIO_MEM_RESP_SIZE, true } },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        bring_up(f);
        assert_int_equal(virtio_mem_set_requested(f->m, 8 * MIB), 0);
        uint8_t req[VIRTIO_MEM_REQ_SIZE] = { 0 };   /* PLUG */
        uint64_t addr = f->base;
        uint16_t nb = 1;
        memcpy(req + 8, &addr, 8);
        memcpy(req + 16, &nb, 2);
        memcpy(f->gm.base + REQ_GPA, req, sizeof(req));
        struct seg s[2] = { cases[i][0], cases[i][1] };
        if (i == 4)
            s[1].gpa = f->base + 8 * BLK;
        fake_post(&f->drv, 0, s, 2);
        virtio_queue_notify(f->vdev, 0);
        assert_true(broken(f));
        assert_int_equal(cfg64(f, 40), 0);
        virtio_set_status(f->vdev, 0);
        assert_int_equal(virtio_get_status(f->vdev), 0);
    }
    bring_up(f);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base, 1, NULL), VIRTIO_MEM_RESP_ACK);
}

/* requested_size: grows the usable region, never shrinks it (but by
 * UNPLUG_ALL); out-of-range values are refused; a device reset keeps the
 * plugged blocks (5.15.5.1). */
static void test_requested_and_reset(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(virtio_mem_set_requested(f->m, HP_SIZE + BLK), -EINVAL);
    assert_int_equal(virtio_mem_set_requested(f->m, BLK + 4096), -EINVAL);
    assert_int_equal(virtio_mem_set_requested(f->m, HP_SIZE), 0);
    assert_int_equal(cfg64(f, 32), HP_SIZE);   /* capped at the region */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + HP_SIZE - 4 * BLK, 4, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(virtio_mem_set_requested(f->m, 4 * MIB), 0);
    assert_int_equal(cfg64(f, 32), HP_SIZE);   /* no shrinking */
    assert_int_equal(cfg64(f, 48), 4 * MIB);
    assert_int_equal(virtio_mem_requested(f->m), 4 * MIB);
    /* more plugged than requested: a plug is NACKed, an unplug taken */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base, 1, NULL), VIRTIO_MEM_RESP_NACK);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG, f->base + HP_SIZE - 4 * BLK, 2, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(virtio_mem_plugged(f->m), 4 * MIB);

    /* device reset: the blocks stay plugged */
    virtio_set_status(f->vdev, 0);
    assert_int_equal(cfg64(f, 40), 4 * MIB);
    assert_int_equal(guest_memory_count_plugged(&f->gm, f->base + HP_SIZE - 2 * BLK, 2 * BLK), 2);
    bring_up(f);
    uint16_t st;
    assert_int_equal(request(f, VIRTIO_MEM_REQ_STATE, f->base + HP_SIZE - 2 * BLK, 2, &st), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(st, VIRTIO_MEM_STATE_PLUGGED);
    /* UNPLUG_ALL shrinks the usable region to what the request needs */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(cfg64(f, 32), 4 * MIB + VIRTIO_MEM_USABLE_EXTENT);
    /* and a block out there is now outside it */
    assert_int_equal(request(f, VIRTIO_MEM_REQ_STATE, f->base + HP_SIZE - 2 * BLK, 2, &st), VIRTIO_MEM_RESP_ERROR);
}

/* How many of the n pages at p are resident (mincore). */
static unsigned resident(const void *p, size_t len)
{
    unsigned char vec[64];
    size_t pages = len / 4096;
    assert_true(pages <= sizeof(vec));
    assert_int_equal(mincore((void *)p, len, vec), 0);
    unsigned n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

/* Unplugged blocks go back to the host: anonymous pages dropped
 * (MADV_DONTNEED), or the memfd's pages punched out with shared=on. */
static void test_discard(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(virtio_mem_set_requested(f->m, 2 * BLK), 0);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + 2 * BLK, 2, NULL), VIRTIO_MEM_RESP_ACK);
    const struct guest_region *hp = guest_memory_hotplug_region(&f->gm);
    uint8_t *p = hp->hva + 2 * BLK;
    assert_int_equal(resident(p, 64 * 4096), 0);
    memset(p, 0x5a, 64 * 4096);                    /* the guest uses it */
    memset(p + BLK, 0x5a, 64 * 4096);
    assert_int_equal(resident(p, 64 * 4096), 64);
    if (f->gm.memfd >= 0) {
        uint8_t b = 0;
        assert_int_equal(pread(f->gm.memfd, &b, 1, (off_t)(hp->fd_offset + 2 * BLK + 5)), 1);
        assert_int_equal(b, 0x5a);                 /* the memfd's tail is the region */
    }
    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG, f->base + 2 * BLK, 1, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(resident(p, 64 * 4096), 0);
    assert_int_equal(resident(p + BLK, 64 * 4096), 64);   /* the block still plugged keeps its pages */
    assert_int_equal(p[BLK + 7], 0x5a);
    if (f->gm.memfd >= 0) {
        uint8_t b = 1;
        assert_int_equal(pread(f->gm.memfd, &b, 1, (off_t)(hp->fd_offset + 2 * BLK + 5)), 1);
        assert_int_equal(b, 0);
    }
    assert_int_equal(p[5], 0);
}

/* The plugged blocks and sizes survive save/load into a fresh device; a
 * stream whose geometry differs is refused. */
static void test_save_load(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(virtio_mem_set_requested(f->m, 16 * MIB), 0);
    assert_int_equal(request(f, VIRTIO_MEM_REQ_PLUG, f->base + 10 * BLK, 3, NULL), VIRTIO_MEM_RESP_ACK);
    struct state_writer *w = state_writer_new();
    assert_int_equal(virtio_device_save(f->vdev, w), 0);
    GBytes *snap = state_writer_finish(w);

    assert_int_equal(request(f, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(virtio_mem_set_requested(f->m, 0), 0);
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(snap, &err);
    assert_non_null(r);
    assert_int_equal(virtio_device_load(f->vdev, r, &err), 0);
    state_reader_free(r);
    assert_int_equal(cfg64(f, 40), 6 * MIB);
    assert_int_equal(cfg64(f, 48), 16 * MIB);
    assert_int_equal(guest_memory_count_plugged(&f->gm, f->base + 10 * BLK, 3 * BLK), 3);
    assert_int_equal(guest_memory_count_plugged(&f->gm, f->base, HP_SIZE), 3);
    uint16_t st;
    assert_int_equal(request(f, VIRTIO_MEM_REQ_STATE, f->base + 10 * BLK, 3, &st), VIRTIO_MEM_RESP_ACK);
    assert_int_equal(st, VIRTIO_MEM_STATE_PLUGGED);

    /* another device geometry: refused, nothing changed */
    struct guest_memory gm2;
    assert_int_equal(guest_memory_create(&gm2, RAM, false, false, NULL), 0);
    assert_int_equal(guest_memory_add_hotplug(&gm2, f->base, HP_SIZE / 2, BLK, NULL), 0);
    struct virtio_mem *m2 = virtio_mem_new(&gm2, NULL, "other", 0);
    r = state_reader_new(snap, &err);
    assert_non_null(r);
    assert_int_not_equal(virtio_device_load(&m2->vdev, r, &err), 0);
    state_reader_free(r);
    assert_int_equal(guest_memory_count_plugged(&gm2, f->base, HP_SIZE / 2), 0);
    virtio_mem_free(m2);
    guest_memory_destroy(&gm2);
    g_bytes_unref(snap);
}

/* guest_memory_set_plugged takes whole blocks of the hotplug region only. */
static void test_memory_api(void **state)
{
    struct fx *f = *state;
    assert_int_equal(guest_memory_set_plugged(&f->gm, f->base + 4096, BLK, true), -EINVAL);
    assert_int_equal(guest_memory_set_plugged(&f->gm, f->base, BLK + 4096, true), -EINVAL);
    assert_int_equal(guest_memory_set_plugged(&f->gm, f->base, HP_SIZE + BLK, true), -EINVAL);
    assert_int_equal(guest_memory_set_plugged(&f->gm, 0, BLK, true), -EINVAL);
    assert_int_equal(guest_memory_set_plugged(&f->gm, f->base, 0, true), -EINVAL);
    assert_int_equal(guest_memory_set_plugged(&f->gm, f->base + HP_SIZE - BLK, BLK, true), 0);
    assert_int_equal(guest_memory_count_plugged(&f->gm, f->base, HP_SIZE), 1);
    /* a second hotplug region, or one not block-aligned, is refused */
    assert_int_equal(guest_memory_add_hotplug(&f->gm, f->base + HP_SIZE, BLK, BLK, NULL), -1);
    struct guest_memory gm2;
    assert_int_equal(guest_memory_create(&gm2, RAM, false, false, NULL), 0);
    assert_int_equal(guest_memory_add_hotplug(&gm2, f->base + 4096, 4 * BLK, BLK, NULL), -1);
    assert_int_equal(guest_memory_add_hotplug(&gm2, f->base, 3 * BLK + 4096, BLK, NULL), -1);
    assert_int_equal(guest_memory_add_hotplug(&gm2, f->base, 4 * BLK, 3 * MIB, NULL), -1);
    assert_null(guest_memory_hotplug_region(&gm2));
    guest_memory_destroy(&gm2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_layout, setup, teardown),
        cmocka_unit_test(test_region_placement),
        cmocka_unit_test_setup_teardown(test_not_in_e820, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plug_unplug, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requested_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup_shared, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_api, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
