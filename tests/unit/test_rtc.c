#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "devices/rtc.h"
#include "vmm/bus.h"
#include "vmm/state.h"

struct fixture {
    struct bus bus;
    struct rtc *rtc;
};

static uint8_t cmos_read(struct bus *b, uint8_t idx)
{
    uint8_t v = idx;
    assert_true(bus_write(b, 0x70, &v, 1));
    assert_true(bus_read(b, 0x71, &v, 1));
    return v;
}

static void cmos_write(struct bus *b, uint8_t idx, uint8_t val)
{
    assert_true(bus_write(b, 0x70, &idx, 1));
    assert_true(bus_write(b, 0x71, &val, 1));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    bus_init(&f->bus, "pio");
    f->rtc = rtc_create(&f->bus, (struct irq_line){ 0 });
    assert_non_null(f->rtc);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct device d = rtc_device(f->rtc);
    d.ops->destroy(d.dev);
    bus_destroy(&f->bus);
    free(f);
    return 0;
}

static int from_bcd(uint8_t v)
{
    return (v >> 4) * 10 + (v & 0xf);
}

/* Reads the clock the way Linux does: again if the seconds moved meanwhile. */
static time_t read_clock(struct bus *b, bool *pm_seen)
{
    for (;;) {
        uint8_t sec = cmos_read(b, 0x00);
        uint8_t min = cmos_read(b, 0x02), hour = cmos_read(b, 0x04), mday = cmos_read(b, 0x07);
        uint8_t mon = cmos_read(b, 0x08), year = cmos_read(b, 0x09), cent = cmos_read(b, 0x32);
        if (cmos_read(b, 0x00) != sec)
            continue;
        uint8_t regb = cmos_read(b, 0x0b);
        bool bcd = !(regb & 0x04);
#define D(x) (bcd ? from_bcd(x) : (x))
        int h = D(hour & 0x7f);
        if (!(regb & 0x02)) {
            if (pm_seen)
                *pm_seen = hour & 0x80;
            h = h % 12 + ((hour & 0x80) ? 12 : 0);
        }
        struct tm tm = { .tm_sec = D(sec), .tm_min = D(min), .tm_hour = h, .tm_mday = D(mday),
                         .tm_mon = D(mon) - 1, .tm_year = D(cent) * 100 + D(year) - 1900 };
#undef D
        return timegm(&tm);
    }
}

static void assert_near_host(time_t t)
{
    time_t now = time(NULL);
    assert_true(t >= now - 2 && t <= now + 2);
}

static void test_time_bcd_24h(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cmos_read(&f->bus, 0x0b), 0x02);    /* BCD, 24-hour */
    assert_near_host(read_clock(&f->bus, NULL));
}

static void test_time_binary(void **state)
{
    struct fixture *f = *state;
    cmos_write(&f->bus, 0x0b, 0x06);
    assert_near_host(read_clock(&f->bus, NULL));
}

static void test_time_12h(void **state)
{
    struct fixture *f = *state;
    cmos_write(&f->bus, 0x0b, 0x00);
    bool pm = false;
    time_t t = read_clock(&f->bus, &pm);
    assert_near_host(t);
    struct tm tm;
    gmtime_r(&t, &tm);
    assert_int_equal(pm, tm.tm_hour >= 12);
}

static void test_set_freezes_and_write_moves_clock(void **state)
{
    struct fixture *f = *state;
    cmos_write(&f->bus, 0x0b, 0x82);        /* SET, BCD, 24h */
    cmos_write(&f->bus, 0x00, 0x58);
    cmos_write(&f->bus, 0x02, 0x59);
    cmos_write(&f->bus, 0x04, 0x23);
    cmos_write(&f->bus, 0x07, 0x31);
    cmos_write(&f->bus, 0x08, 0x12);
    cmos_write(&f->bus, 0x09, 0x99);
    cmos_write(&f->bus, 0x32, 0x20);
    /* Frozen: reads give back exactly what was written. */
    assert_int_equal(cmos_read(&f->bus, 0x00), 0x58);
    assert_int_equal(cmos_read(&f->bus, 0x09), 0x99);
    assert_int_equal(cmos_read(&f->bus, 0x0a) & 0x80, 0);  /* no update in progress while SET */
    struct tm want = { .tm_sec = 58, .tm_min = 59, .tm_hour = 23, .tm_mday = 31, .tm_mon = 11,
                       .tm_year = 2099 - 1900 };
    time_t w = timegm(&want);

    cmos_write(&f->bus, 0x0b, 0x02);        /* runs again from the written time */
    time_t t = read_clock(&f->bus, NULL);
    assert_true(t >= w && t <= w + 2);
    /* It keeps running: once the seconds move it is past the written time. */
    uint8_t s0 = cmos_read(&f->bus, 0x00);
    while (cmos_read(&f->bus, 0x00) == s0)
        ;
    assert_true(read_clock(&f->bus, NULL) > w);
}

static void test_binary_write_while_running(void **state)
{
    struct fixture *f = *state;
    cmos_write(&f->bus, 0x0b, 0x06);        /* binary, 24h */
    cmos_write(&f->bus, 0x09, 42);          /* year 2042 (century stays 20) */
    time_t t = read_clock(&f->bus, NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    assert_int_equal(tm.tm_year + 1900, 2042);
    assert_int_equal(cmos_read(&f->bus, 0x09), 42);
}

static void test_registers_c_d_a(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cmos_read(&f->bus, 0x0d), 0x80);      /* valid RAM and time */
    cmos_write(&f->bus, 0x0d, 0x00);
    assert_int_equal(cmos_read(&f->bus, 0x0d), 0x80);
    cmos_write(&f->bus, 0x0a, 0xa6);
    assert_int_equal(cmos_read(&f->bus, 0x0a) & 0x7f, 0x26);   /* UIP is not writable */

    /* C reports an update when the seconds moved, and reading clears it. */
    uint8_t s0 = cmos_read(&f->bus, 0x00);
    cmos_read(&f->bus, 0x0c);
    while (cmos_read(&f->bus, 0x00) == s0)
        ;
    assert_int_equal(cmos_read(&f->bus, 0x0c) & 0x10, 0x10);
    uint8_t s1 = cmos_read(&f->bus, 0x00);
    uint8_t c = cmos_read(&f->bus, 0x0c);
    if (cmos_read(&f->bus, 0x00) == s1)
        assert_int_equal(c, 0);
}

static void test_cmos_ram_and_nmi_bit(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0x0e; i < 0x80; i++)
        if (i != 0x32)
            cmos_write(&f->bus, (uint8_t)i, (uint8_t)(i * 3 + 1));
    cmos_write(&f->bus, 0x01, 0x11);    /* alarm registers are plain storage */
    for (unsigned i = 0x0e; i < 0x80; i++)
        if (i != 0x32)
            assert_int_equal(cmos_read(&f->bus, (uint8_t)i), (uint8_t)(i * 3 + 1));
    assert_int_equal(cmos_read(&f->bus, 0x01), 0x11);
    assert_int_equal(cmos_read(&f->bus, 0x80 | 0x0d), 0x80);   /* bit 7 only masks NMI */
    assert_int_equal(cmos_read(&f->bus, 0x80 | 0x20), (uint8_t)(0x20 * 3 + 1));
}

static void test_garbage_time_writes_are_harmless(void **state)
{
    struct fixture *f = *state;
    for (unsigned v = 0; v < 256; v++) {
        for (uint8_t reg = 0; reg < 10; reg++)
            cmos_write(&f->bus, reg, (uint8_t)v);
        cmos_write(&f->bus, 0x32, (uint8_t)v);
        cmos_write(&f->bus, 0x0b, (uint8_t)(v & 0x7f));
    }
    cmos_write(&f->bus, 0x0b, 0x02);
    (void)read_clock(&f->bus, NULL);
}

static void test_save_load(void **state)
{
    struct fixture *f = *state;
    cmos_write(&f->bus, 0x0b, 0x82);
    cmos_write(&f->bus, 0x09, 0x77);
    cmos_write(&f->bus, 0x0b, 0x02);
    cmos_write(&f->bus, 0x40, 0xab);
    struct state_writer *w = state_writer_new();
    struct device d = rtc_device(f->rtc);
    assert_int_equal(d.ops->save(d.dev, w), 0);
    GBytes *blob = state_writer_finish(w);

    struct bus b2;
    bus_init(&b2, "pio");
    struct rtc *r2 = rtc_create(&b2, (struct irq_line){ 0 });
    struct state_reader *rd = state_reader_new(blob, NULL);
    struct device d2 = rtc_device(r2);
    assert_int_equal(d2.ops->load(d2.dev, rd), 0);
    assert_true(state_reader_at_end(rd));
    state_reader_free(rd);
    assert_int_equal(cmos_read(&b2, 0x40), 0xab);
    time_t a = read_clock(&f->bus, NULL), b = read_clock(&b2, NULL);
    assert_true(b >= a - 1 && b <= a + 1);      /* the offset travelled */
    assert_int_equal(cmos_read(&b2, 0x09), 0x77);

    d2.ops->destroy(d2.dev);
    bus_destroy(&b2);
    g_bytes_unref(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_time_bcd_24h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_12h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_freezes_and_write_moves_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_write_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registers_c_d_a, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmos_ram_and_nmi_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_time_writes_are_harmless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
