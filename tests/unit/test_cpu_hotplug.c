/* The CPU hotplug controller's registers as the DSDT and a guest use them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/cpu_hotplug.h"
#include "vmm/bus.h"
#include "vmm/state.h"

struct seen {
    unsigned osts;
    unsigned ost_index;
    uint32_t ost_event, ost_status;
    unsigned notifies;
    unsigned ejects;
    unsigned last_eject;
};

static void on_notify(void *opaque)
{
    ((struct seen *)opaque)->notifies++;
}

static void on_ejected(void *opaque, unsigned index)
{
    struct seen *s = opaque;
    s->ejects++;
    s->last_eject = index;
}

static void on_ost(void *opaque, unsigned index, uint32_t event, uint32_t status)
{
    struct seen *s = opaque;
    s->osts++;
    s->ost_index = index;
    s->ost_event = event;
    s->ost_status = status;
}

static struct cpu_hotplug *make(unsigned max, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    struct cpu_hotplug_ops ops = { .notify = on_notify, .ejected = on_ejected, .ost = on_ost, .opaque = s };
    return cpu_hotplug_create(NULL, 0, max, &ops);
}

static void sel(struct cpu_hotplug *h, uint32_t i)
{
    cpu_hotplug_io_write(h, CPUHP_REG_SELECTOR, &i, 4);
}

static uint8_t status(struct cpu_hotplug *h, uint32_t i)
{
    uint8_t v;
    sel(h, i);
    cpu_hotplug_io_read(h, CPUHP_REG_STATUS, &v, 1);
    return v;
}

static void cmd(struct cpu_hotplug *h, uint32_t i, uint8_t v)
{
    sel(h, i);
    cpu_hotplug_io_write(h, CPUHP_REG_STATUS, &v, 1);
}

static void destroy(struct cpu_hotplug *h)
{
    struct device d = cpu_hotplug_device(h);
    d.ops->destroy(d.dev);
}

/* _OST as the DSDT's COSM writes it: selector, event dword, status dword;
 * the status write reports (index, event, status) once and records it;
 * byte-wise writes report at the status's last byte; a selector past the
 * possible CPUs records nothing. */
static void test_ost(void **state)
{
    struct seen s;
    struct cpu_hotplug *h = make(3, &s);
    uint32_t ev, st;
    assert_true(cpu_hotplug_ost(h, 2, &ev, &st));
    assert_int_equal(ev, 0);
    assert_int_equal(st, 0);
    assert_false(cpu_hotplug_ost(h, 3, &ev, &st));

    sel(h, 2);
    uint32_t v = 0x103;
    cpu_hotplug_io_write(h, CPUHP_REG_OST_EVENT, &v, 4);
    assert_int_equal(s.osts, 0);            /* the event alone reports nothing */
    v = 0;
    cpu_hotplug_io_write(h, CPUHP_REG_OST_STATUS, &v, 4);
    assert_int_equal(s.osts, 1);
    assert_int_equal(s.ost_index, 2);
    assert_int_equal(s.ost_event, 0x103);
    assert_int_equal(s.ost_status, 0);
    assert_true(cpu_hotplug_ost(h, 2, &ev, &st));
    assert_int_equal(ev, 0x103);
    assert_int_equal(st, 0);
    uint32_t r;
    cpu_hotplug_io_read(h, CPUHP_REG_OST_EVENT, &r, 4);
    assert_int_equal(r, 0x103);

    /* Byte by byte (a ByteAcc field): reported when byte 3 of the status lands. */
    sel(h, 1);
    const uint8_t evb[4] = { 0x01, 0, 0, 0 }, stb[4] = { 0x81, 0x02, 0, 0 };
    for (unsigned i = 0; i < 4; i++)
        cpu_hotplug_io_write(h, CPUHP_REG_OST_EVENT + i, &evb[i], 1);
    for (unsigned i = 0; i < 3; i++)
        cpu_hotplug_io_write(h, CPUHP_REG_OST_STATUS + i, &stb[i], 1);
    assert_int_equal(s.osts, 1);
    cpu_hotplug_io_write(h, CPUHP_REG_OST_STATUS + 3, &stb[3], 1);
    assert_int_equal(s.osts, 2);
    assert_int_equal(s.ost_index, 1);
    assert_int_equal(s.ost_event, 1);
    assert_int_equal(s.ost_status, 0x281);
    assert_true(cpu_hotplug_ost(h, 2, &ev, &st));  /* CPU 2's record unchanged */
    assert_int_equal(ev, 0x103);

    /* Not a possible CPU: nothing recorded or reported. */
    sel(h, 7);
    v = 3;
    cpu_hotplug_io_write(h, CPUHP_REG_OST_EVENT, &v, 4);
    cpu_hotplug_io_write(h, CPUHP_REG_OST_STATUS, &v, 4);
    assert_int_equal(s.osts, 2);
    /* Nor do OST writes touch the CPUs' status. */
    assert_int_equal(status(h, 0), 0);
    assert_int_equal(s.notifies + s.ejects, 0);
    destroy(h);
}

/* Insert: present with an insert event and one notification; the guest
 * acknowledges the event and the CPU stays present. */
static void test_insert(void **state)
{
    struct seen s;
    struct cpu_hotplug *h = make(3, &s);
    cpu_hotplug_set_present(h, 0);
    assert_int_equal(status(h, 0), CPUHP_STS_ENABLED);
    assert_int_equal(status(h, 1), 0);
    assert_int_equal(s.notifies, 0);

    assert_int_equal(cpu_hotplug_insert(h, 1), 0);
    assert_int_equal(s.notifies, 1);
    assert_int_equal(status(h, 1), CPUHP_STS_ENABLED | CPUHP_STS_INSERT);
    assert_true(cpu_hotplug_present(h, 1));
    assert_int_equal(cpu_hotplug_insert(h, 1), -EEXIST);
    assert_int_equal(cpu_hotplug_insert(h, 3), -EINVAL);
    assert_int_equal(s.notifies, 1);

    cmd(h, 1, CPUHP_STS_INSERT);
    assert_int_equal(status(h, 1), CPUHP_STS_ENABLED);
    assert_int_equal(s.ejects, 0);
    destroy(h);
}

/* Removal: the host's request raises a remove event; the guest's eject
 * makes the CPU absent before the write returns and calls back once. */
static void test_remove_and_eject(void **state)
{
    struct seen s;
    struct cpu_hotplug *h = make(3, &s);
    cpu_hotplug_set_present(h, 0);
    assert_int_equal(cpu_hotplug_request_remove(h, 2), -ENODEV);
    assert_int_equal(cpu_hotplug_request_remove(h, 7), -EINVAL);
    assert_int_equal(cpu_hotplug_insert(h, 2), 0);
    cmd(h, 2, CPUHP_STS_INSERT);
    assert_int_equal(cpu_hotplug_request_remove(h, 2), 0);
    assert_int_equal(s.notifies, 2);
    assert_int_equal(status(h, 2), CPUHP_STS_ENABLED | CPUHP_STS_REMOVE);
    cmd(h, 2, CPUHP_STS_REMOVE);
    assert_int_equal(status(h, 2), CPUHP_STS_ENABLED);
    assert_int_equal(s.ejects, 0);

    cmd(h, 2, CPUHP_CMD_EJECT);
    assert_int_equal(s.ejects, 1);
    assert_int_equal(s.last_eject, 2);
    assert_int_equal(status(h, 2), 0);
    assert_false(cpu_hotplug_present(h, 2));
    /* A second eject of the same CPU does nothing. */
    cmd(h, 2, CPUHP_CMD_EJECT);
    assert_int_equal(s.ejects, 1);
    /* And it can come back. */
    assert_int_equal(cpu_hotplug_insert(h, 2), 0);
    assert_int_equal(status(h, 2), CPUHP_STS_ENABLED | CPUHP_STS_INSERT);
    destroy(h);
}

/* The guest cannot eject what the host did not ask to remove: not the
 * boot CPU, not a hot-added one, not an absent one. */
static void test_eject_needs_request(void **state)
{
    struct seen s;
    struct cpu_hotplug *h = make(4, &s);
    cpu_hotplug_set_present(h, 0);
    assert_int_equal(cpu_hotplug_insert(h, 1), 0);
    cmd(h, 0, CPUHP_CMD_EJECT);
    cmd(h, 1, CPUHP_CMD_EJECT | CPUHP_STS_INSERT);
    cmd(h, 3, CPUHP_CMD_EJECT);
    assert_int_equal(s.ejects, 0);
    assert_int_equal(status(h, 0), CPUHP_STS_ENABLED);
    assert_int_equal(status(h, 1), CPUHP_STS_ENABLED);  /* the acknowledgement in the same write counted */
    assert_int_equal(status(h, 3), 0);
    destroy(h);
}

/* Writing one acknowledgement leaves the other event alone (the DSDT's
 * field is WriteAsZeros, so only the bit written is 1). */
static void test_events_independent(void **state)
{
    struct seen s;
    struct cpu_hotplug *h = make(2, &s);
    assert_int_equal(cpu_hotplug_insert(h, 1), 0);
    assert_int_equal(cpu_hotplug_request_remove(h, 1), 0);
    assert_int_equal(status(h, 1), CPUHP_STS_ENABLED | CPUHP_STS_INSERT | CPUHP_STS_REMOVE);
    cmd(h, 1, CPUHP_STS_INSERT);
    assert_int_equal(status(h, 1), CPUHP_STS_ENABLED | CPUHP_STS_REMOVE);
    cmd(h, 1, CPUHP_STS_ENABLED);   /* read-only bit: no effect */
    assert_int_equal(status(h, 1), CPUHP_STS_ENABLED | CPUHP_STS_REMOVE);
    destroy(h);
}

/* The register window: the selector by bytes (AML ByteAcc writes a dword
 * field a byte at a time) and by a dword, the count, a bad selector, reads
 * beyond the registers. */
static void test_registers(void **state)
{
    struct seen s;
    struct cpu_hotplug *h = make(5, &s);
    cpu_hotplug_set_present(h, 0);
    assert_int_equal(cpu_hotplug_insert(h, 4), 0);
    for (unsigned i = 0; i < 4; i++) {
        uint8_t b = i == 0 ? 4 : 0;
        cpu_hotplug_io_write(h, CPUHP_REG_SELECTOR + i, &b, 1);
    }
    uint32_t v = 0;
    cpu_hotplug_io_read(h, CPUHP_REG_SELECTOR, &v, 4);
    assert_int_equal(v, 4);
    cpu_hotplug_io_read(h, CPUHP_REG_STATUS, &v, 4);
    assert_int_equal(v, CPUHP_STS_ENABLED | CPUHP_STS_INSERT);
    cpu_hotplug_io_read(h, CPUHP_REG_COUNT, &v, 4);
    assert_int_equal(v, 5);
    uint16_t w = 0;
    cpu_hotplug_io_read(h, CPUHP_REG_COUNT + 1, &w, 2);
    assert_int_equal(w, 0);

    /* A selector past the possible CPUs: status reads 0, commands are ignored. */
    sel(h, 0x01000004);
    cpu_hotplug_io_read(h, CPUHP_REG_STATUS, &v, 4);
    assert_int_equal(v, 0);
    uint8_t c = CPUHP_STS_INSERT | CPUHP_CMD_EJECT;
    cpu_hotplug_io_write(h, CPUHP_REG_STATUS, &c, 1);
    assert_int_equal(status(h, 4), CPUHP_STS_ENABLED | CPUHP_STS_INSERT);

    /* Reserved bytes read 0, up to the end of the window and past it. */
    uint8_t buf[8];
    memset(buf, 0xaa, sizeof(buf));
    cpu_hotplug_io_read(h, 0x0c, buf, 8);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(buf[i], 0);
    memset(buf, 0xaa, sizeof(buf));
    cpu_hotplug_io_read(h, 0x1e, buf, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(buf[i], 0);
    destroy(h);
}

/* On the port bus at PORT_CPU_HOTPLUG; the window ends where layout.h says. */
static void test_on_bus(void **state)
{
    struct bus pio;
    bus_init(&pio, "pio");
    struct seen s;
    memset(&s, 0, sizeof(s));
    struct cpu_hotplug_ops ops = { .notify = on_notify, .ejected = on_ejected, .opaque = &s };
    struct cpu_hotplug *h = cpu_hotplug_create(&pio, PORT_CPU_HOTPLUG, 2, &ops);
    assert_non_null(h);
    cpu_hotplug_set_present(h, 1);
    uint32_t one = 1, v = 0;
    assert_true(bus_write(&pio, PORT_CPU_HOTPLUG + CPUHP_REG_SELECTOR, &one, 4));
    assert_true(bus_read(&pio, PORT_CPU_HOTPLUG + CPUHP_REG_STATUS, &v, 1));
    assert_int_equal(v, CPUHP_STS_ENABLED);
    assert_true(bus_read(&pio, PORT_CPU_HOTPLUG + PORT_CPU_HOTPLUG_LEN - 1, &v, 1));
    assert_false(bus_read(&pio, PORT_CPU_HOTPLUG + PORT_CPU_HOTPLUG_LEN, &v, 1));
    /* A second controller cannot take the same ports. */
    assert_null(cpu_hotplug_create(&pio, PORT_CPU_HOTPLUG, 2, &ops));
    destroy(h);
    assert_false(bus_read(&pio, PORT_CPU_HOTPLUG, &v, 1));
    bus_destroy(&pio);
}

/* Save and load carry presence and pending events; a reset clears the events only. */
static void test_save_load_reset(void **state)
{
    struct seen s1, s2;
    struct cpu_hotplug *a = make(3, &s1);
    cpu_hotplug_set_present(a, 0);
    assert_int_equal(cpu_hotplug_insert(a, 2), 0);
    struct state_writer *w = state_writer_new();
    struct device da = cpu_hotplug_device(a);
    assert_int_equal(da.ops->save(da.dev, w), 0);
    GBytes *bytes = state_writer_finish(w);
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(bytes, &err);
    assert_non_null(r);
    struct cpu_hotplug *b = make(3, &s2);
    struct device db = cpu_hotplug_device(b);
    assert_int_equal(db.ops->load(db.dev, r), 0);
    state_reader_free(r);
    assert_int_equal(status(b, 0), CPUHP_STS_ENABLED);
    assert_int_equal(status(b, 2), CPUHP_STS_ENABLED | CPUHP_STS_INSERT);

    /* Into a controller of another size: refused. */
    struct seen s3;
    struct cpu_hotplug *c = make(4, &s3);
    r = state_reader_new(bytes, &err);
    struct device dc = cpu_hotplug_device(c);
    assert_int_equal(dc.ops->load(dc.dev, r), -EINVAL);
    state_reader_free(r);
    g_bytes_unref(bytes);

    db.ops->reset(db.dev);
    assert_int_equal(status(b, 2), CPUHP_STS_ENABLED);
    destroy(a);
    destroy(b);
    destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_ost),
        cmocka_unit_test(test_remove_and_eject),
        cmocka_unit_test(test_eject_needs_request),
        cmocka_unit_test(test_events_independent),
        cmocka_unit_test(test_registers),
        cmocka_unit_test(test_on_bus),
        cmocka_unit_test(test_save_load_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
