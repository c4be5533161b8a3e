/* struct bus: range registration, dispatch with offsets, and re-entrancy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "vmm/bus.h"

struct dev {
    unsigned id;
    unsigned reads, writes;
    uint64_t last_offset;
    unsigned last_size;
    uint64_t last_value;
};

static void dev_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    struct dev *d = opaque;
    d->reads++;
    d->last_offset = offset;
    d->last_size = size;
    uint64_t v = ((uint64_t)d->id << 32) | offset;
    memcpy(data, &v, size);
}

static void dev_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct dev *d = opaque;
    d->writes++;
    d->last_offset = offset;
    d->last_size = size;
    d->last_value = 0;
    memcpy(&d->last_value, data, size);
}

static const struct bus_ops dev_ops = { .read = dev_read, .write = dev_write };
static const struct bus_ops write_only_ops = { .write = dev_write };

static void test_dispatch_and_boundaries(void **state)
{
    struct bus b;
    bus_init(&b, "pio");
    struct dev a = { .id = 1 }, c = { .id = 2 };
    assert_int_equal(bus_register(&b, 0x3f8, 8, &dev_ops, &a, "com1"), 0);
    assert_int_equal(bus_register(&b, 0x60, 1, &dev_ops, &c, "kbd"), 0);

    uint64_t v = 0;
    assert_true(bus_read(&b, 0x3f8, &v, 1));
    assert_int_equal(a.last_offset, 0);
    assert_int_equal(v, 0x00);
    assert_true(bus_read(&b, 0x3ff, &v, 1));
    assert_int_equal(a.last_offset, 7);
    assert_int_equal(a.last_size, 1);
    assert_int_equal(v & 0xff, 7);
    assert_true(bus_read(&b, 0x60, &v, 4));
    assert_int_equal(c.reads, 1);
    assert_int_equal(c.last_size, 4);
    assert_int_equal(v & 0xffffffff, 0);

    uint32_t w = 0xcafe;
    assert_true(bus_write(&b, 0x3fc, &w, 2));
    assert_int_equal(a.writes, 1);
    assert_int_equal(a.last_offset, 4);
    assert_int_equal(a.last_value, 0xcafe);

    /* Just outside each range. */
    assert_false(bus_read(&b, 0x3f7, &v, 1));
    assert_false(bus_read(&b, 0x400, &v, 1));
    assert_false(bus_read(&b, 0x5f, &v, 1));
    assert_false(bus_read(&b, 0x61, &v, 1));
    assert_false(bus_write(&b, 0x400, &w, 1));
    assert_int_equal(a.reads, 2);
    assert_int_equal(a.writes, 1);
    assert_int_equal(c.reads, 1);
    bus_destroy(&b);
}

static void test_unhandled_reads_all_ones(void **state)
{
    struct bus b;
    bus_init(&b, "mmio");
    struct dev a = { .id = 1 };
    static const unsigned sizes[] = { 1, 2, 4, 8 };
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        uint8_t buf[9];
        memset(buf, 0x5a, sizeof(buf));
        assert_false(bus_read(&b, 0x1000, buf, sizes[i]));
        for (unsigned k = 0; k < sizes[i]; k++)
            assert_int_equal(buf[k], 0xff);
        assert_int_equal(buf[sizes[i]], 0x5a);     /* not one byte more */
    }
    /* A range without a read callback reads as all ones too. */
    assert_int_equal(bus_register(&b, 0x2000, 0x10, &write_only_ops, &a, "wo"), 0);
    uint32_t v = 0;
    assert_false(bus_read(&b, 0x2004, &v, 4));
    assert_int_equal(v, 0xffffffff);
    assert_true(bus_write(&b, 0x2004, &v, 4));
    assert_int_equal(a.writes, 1);
    bus_destroy(&b);
}

static void test_overlap_and_invalid(void **state)
{
    struct bus b;
    bus_init(&b, "mmio");
    struct dev a = { .id = 1 };
    assert_int_equal(bus_register(&b, 0x1000, 0x100, &dev_ops, &a, "a"), 0);
    assert_int_equal(bus_register(&b, 0x1000, 0x100, &dev_ops, &a, "same"), -EEXIST);
    assert_int_equal(bus_register(&b, 0x10ff, 1, &dev_ops, &a, "last byte"), -EEXIST);
    assert_int_equal(bus_register(&b, 0xfff, 2, &dev_ops, &a, "first byte"), -EEXIST);
    assert_int_equal(bus_register(&b, 0x1080, 0x10, &dev_ops, &a, "inside"), -EEXIST);
    assert_int_equal(bus_register(&b, 0x0, 0x10000, &dev_ops, &a, "around"), -EEXIST);
    assert_int_equal(bus_register(&b, 0x1100, 0x100, &dev_ops, &a, "after"), 0);
    assert_int_equal(bus_register(&b, 0xf00, 0x100, &dev_ops, &a, "before"), 0);
    assert_int_equal(bus_register(&b, 0x2000, 0, &dev_ops, &a, "empty"), -EINVAL);
    assert_int_equal(bus_register(&b, UINT64_MAX - 1, 4, &dev_ops, &a, "wraps"), -EINVAL);
    assert_int_equal(bus_register(&b, UINT64_MAX - 0xf, 0xf, &dev_ops, &a, "top"), 0);
    uint8_t v;
    assert_true(bus_read(&b, UINT64_MAX - 1, &v, 1));
    assert_int_equal(a.last_offset, 0xe);
    assert_false(bus_read(&b, UINT64_MAX, &v, 1));
    bus_destroy(&b);
}

static void test_unregister(void **state)
{
    struct bus b;
    bus_init(&b, "pio");
    struct dev a = { .id = 1 }, c = { .id = 2 };
    assert_int_equal(bus_register(&b, 0x70, 2, &dev_ops, &a, "rtc"), 0);
    assert_int_equal(bus_register(&b, 0x72, 2, &dev_ops, &c, "next"), 0);
    assert_int_equal(bus_unregister(&b, 0x71), -ENOENT);   /* not a base */
    assert_int_equal(bus_unregister(&b, 0x80), -ENOENT);
    assert_int_equal(bus_unregister(&b, 0x70), 0);
    assert_int_equal(bus_unregister(&b, 0x70), -ENOENT);
    uint8_t v;
    assert_false(bus_read(&b, 0x70, &v, 1));
    assert_int_equal(a.reads, 0);
    assert_true(bus_read(&b, 0x72, &v, 1));
    assert_int_equal(c.reads, 1);
    /* The freed space can be taken again, by a differently sized range. */
    assert_int_equal(bus_register(&b, 0x6f, 3, &dev_ops, &c, "moved"), 0);
    assert_true(bus_read(&b, 0x71, &v, 1));
    assert_int_equal(c.last_offset, 2);
    bus_destroy(&b);
}

static void test_many_ranges(void **state)
{
    struct bus b;
    bus_init(&b, "mmio");
    enum { N = 200 };
    static struct dev devs[N];
    /* Registered in a scrambled order to exercise sorted insertion. */
    for (unsigned k = 0; k < N; k++) {
        unsigned i = (k * 37) % N;
        devs[i] = (struct dev){ .id = i };
        assert_int_equal(bus_register(&b, 0x10000 + i * 0x100, 0x80, &dev_ops, &devs[i], "d"), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        uint64_t v = 0;
        assert_true(bus_read(&b, 0x10000 + i * 0x100 + 0x7f, &v, 8));
        assert_int_equal(v >> 32, i);
        assert_int_equal(v & 0xffffffff, 0x7f);
        assert_false(bus_read(&b, 0x10000 + i * 0x100 + 0x80, &v, 1));    /* gap after each */
    }
    for (unsigned i = 0; i < N; i += 2)
        assert_int_equal(bus_unregister(&b, 0x10000 + i * 0x100), 0);
    for (unsigned i = 0; i < N; i++) {
        uint8_t v;
        assert_int_equal(bus_read(&b, 0x10000 + i * 0x100, &v, 1), i % 2 == 1);
    }
    bus_destroy(&b);
}

/* A device that moves itself during its own callback, as a BAR write does. */
struct mover {
    struct bus *bus;
    uint64_t base;
    int reg_result, unreg_result;
};

static void mover_write(void *opaque, uint64_t offset, const void *data, unsigned size);
static const struct bus_ops mover_ops = { .write = mover_write };

static void mover_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct mover *m = opaque;
    uint64_t new_base = 0;
    memcpy(&new_base, data, size);
    m->unreg_result = bus_unregister(m->bus, m->base);
    m->reg_result = bus_register(m->bus, new_base, 0x10, &mover_ops, m, "mover");
    m->base = new_base;
}

static void test_callback_registers_ranges(void **state)
{
    struct bus b;
    bus_init(&b, "mmio");
    struct mover m = { .bus = &b, .base = 0x1000, .reg_result = 1, .unreg_result = 1 };
    assert_int_equal(bus_register(&b, 0x1000, 0x10, &mover_ops, &m, "mover"), 0);
    uint64_t to = 0x8000;
    assert_true(bus_write(&b, 0x1004, &to, 8));
    assert_int_equal(m.unreg_result, 0);
    assert_int_equal(m.reg_result, 0);
    assert_false(bus_write(&b, 0x1004, &to, 8));
    to = 0x9000;
    assert_true(bus_write(&b, 0x8000, &to, 8));
    assert_int_equal(m.base, 0x9000);
    bus_destroy(&b);
}

/* bus_synchronize waits for a callback that started before the unregister
 * and is still running, and not for dispatches that start afterwards. */
struct blocker {
    GMutex lock;
    GCond cond;
    bool inside, release;
    struct bus *bus;
    bool synced;
};

static void blocking_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct blocker *b = opaque;
    g_mutex_lock(&b->lock);
    b->inside = true;
    g_cond_broadcast(&b->cond);
    while (!b->release)
        g_cond_wait(&b->cond, &b->lock);
    g_mutex_unlock(&b->lock);
}

static const struct bus_ops blocking_ops = { .write = blocking_write };

static gpointer writer_thread(gpointer opaque)
{
    struct blocker *b = opaque;
    uint8_t v = 1;
    bus_write(b->bus, 0x100, &v, 1);
    return NULL;
}

static gpointer sync_thread(gpointer opaque)
{
    struct blocker *b = opaque;
    bus_synchronize(b->bus);
    __atomic_store_n(&b->synced, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_synchronize_waits_for_callbacks(void **state)
{
    struct bus bus;
    bus_init(&bus, "test");
    struct blocker b = { .bus = &bus };
    g_mutex_init(&b.lock);
    g_cond_init(&b.cond);
    assert_int_equal(bus_register(&bus, 0x100, 4, &blocking_ops, &b, "blocker"), 0);
    bus_synchronize(&bus);      /* nothing in flight: returns at once */

    GThread *w = g_thread_new("writer", writer_thread, &b);
    g_mutex_lock(&b.lock);
    while (!b.inside)
        g_cond_wait(&b.cond, &b.lock);
    g_mutex_unlock(&b.lock);

    assert_int_equal(bus_unregister(&bus, 0x100), 0);
    GThread *s = g_thread_new("sync", sync_thread, &b);
    /* New dispatches neither reach the device nor hold synchronize up. */
    uint8_t v = 2;
    assert_false(bus_write(&bus, 0x100, &v, 1));
    g_usleep(50000);
    assert_false(__atomic_load_n(&b.synced, __ATOMIC_SEQ_CST));

    g_mutex_lock(&b.lock);
    b.release = true;
    g_cond_broadcast(&b.cond);
    g_mutex_unlock(&b.lock);
    g_thread_join(s);
    assert_true(b.synced);
    g_thread_join(w);
    bus_synchronize(&bus);
    g_mutex_clear(&b.lock);
    g_cond_clear(&b.cond);
    bus_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_and_boundaries),
        cmocka_unit_test(test_unhandled_reads_all_ones),
        cmocka_unit_test(test_overlap_and_invalid),
        cmocka_unit_test(test_unregister),
        cmocka_unit_test(test_many_ranges),
        cmocka_unit_test(test_callback_registers_ranges),
        cmocka_unit_test(test_synchronize_waits_for_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
