#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "devices/i8042.h"
#include "vmm/bus.h"
#include "vmm/state.h"

struct fixture {
    struct bus bus;
    struct i8042 *k;
    int resets;
    int other_requests;
};

static void fake_request(void *opaque, enum machine_request req, int arg)
{
    struct fixture *f = opaque;
    if (req == MACHINE_RESET)
        f->resets++;
    else
        f->other_requests++;
}

static void out(struct fixture *f, uint16_t port, uint8_t v)
{
    assert_true(bus_write(&f->bus, port, &v, 1));
}

static uint8_t in(struct fixture *f, uint16_t port)
{
    uint8_t v;
    assert_true(bus_read(&f->bus, port, &v, 1));
    return v;
}

/* Polls the way Linux's i8042_command does: wait for OBF, then read. */
static uint8_t read_reply(struct fixture *f)
{
    assert_true(in(f, 0x64) & 0x01);
    return in(f, 0x60);
}

static void assert_empty(struct fixture *f)
{
    assert_false(in(f, 0x64) & 0x01);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    bus_init(&f->bus, "pio");
    f->k = i8042_create(&f->bus, (struct machine_ctl){ fake_request, f });
    assert_non_null(f->k);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct device d = i8042_device(f->k);
    d.ops->destroy(d.dev);
    bus_destroy(&f->bus);
    free(f);
    return 0;
}

static void test_status_and_self_tests(void **state)
{
    struct fixture *f = *state;
    uint8_t st = in(f, 0x64);
    assert_int_equal(st & 0x03, 0);     /* nothing to read, input buffer never full */
    assert_true(st & 0x04);             /* system flag: POST done */
    out(f, 0x64, 0xaa);
    assert_true(in(f, 0x64) & 0x08);    /* last write was a command */
    assert_int_equal(read_reply(f), 0x55);
    assert_empty(f);
    out(f, 0x64, 0xab);
    assert_int_equal(read_reply(f), 0x00);
    out(f, 0x64, 0xa9);
    assert_int_equal(read_reply(f), 0x00);
    assert_empty(f);
    assert_int_equal(f->resets, 0);
}

static void test_command_byte(void **state)
{
    struct fixture *f = *state;
    out(f, 0x64, 0x60);
    out(f, 0x60, 0x61);
    assert_false(in(f, 0x64) & 0x08);
    out(f, 0x64, 0x20);
    assert_int_equal(read_reply(f), 0x61);
    out(f, 0x64, 0xa7);                 /* aux disable sets bit 5 ... */
    out(f, 0x64, 0xad);                 /* ... keyboard disable bit 4 */
    out(f, 0x64, 0x20);
    assert_int_equal(read_reply(f), 0x71);
    out(f, 0x64, 0xa8);
    out(f, 0x64, 0xae);
    out(f, 0x64, 0x20);
    assert_int_equal(read_reply(f), 0x41);
    /* The command byte's system flag shows in the status register. */
    out(f, 0x64, 0x60);
    out(f, 0x60, 0x00);
    assert_false(in(f, 0x64) & 0x04);
}

static void test_pulse_reset(void **state)
{
    struct fixture *f = *state;
    out(f, 0x64, 0xfe);
    assert_int_equal(f->resets, 1);
    out(f, 0x64, 0xff);                 /* pulses nothing */
    assert_int_equal(f->resets, 1);
    out(f, 0x64, 0xf0);                 /* pulses bits 0-3, the reset line among them */
    assert_int_equal(f->resets, 2);
    assert_int_equal(f->other_requests, 0);
}

static void test_output_port_reset(void **state)
{
    struct fixture *f = *state;
    out(f, 0x64, 0xd0);
    uint8_t port = read_reply(f);
    assert_int_equal(port & 0x03, 0x03);     /* not in reset, A20 on */
    out(f, 0x64, 0xd1);
    out(f, 0x60, 0x03);
    assert_int_equal(f->resets, 0);
    out(f, 0x64, 0xd1);
    out(f, 0x60, 0x02);                     /* bit 0 low: reset */
    assert_int_equal(f->resets, 1);
}

static void test_keyboard_replies(void **state)
{
    struct fixture *f = *state;
    out(f, 0x60, 0xff);
    assert_int_equal(read_reply(f), 0xfa);
    assert_int_equal(read_reply(f), 0xaa);
    assert_empty(f);
    out(f, 0x60, 0xf2);
    assert_int_equal(read_reply(f), 0xfa);
    assert_int_equal(read_reply(f), 0xab);
    assert_int_equal(read_reply(f), 0x83);
    out(f, 0x60, 0xed);                     /* LEDs take a parameter, each acked */
    assert_int_equal(read_reply(f), 0xfa);
    out(f, 0x60, 0x07);
    assert_int_equal(read_reply(f), 0xfa);
    assert_empty(f);
    out(f, 0x60, 0xf4);
    assert_int_equal(read_reply(f), 0xfa);
    assert_empty(f);
}

static void test_aux_loop_marks_aux_data(void **state)
{
    struct fixture *f = *state;
    out(f, 0x64, 0xd3);
    out(f, 0x60, 0x5a);
    assert_int_equal(in(f, 0x64) & 0x21, 0x21);
    assert_int_equal(in(f, 0x60), 0x5a);
    out(f, 0x64, 0xd2);
    out(f, 0x60, 0x77);
    assert_int_equal(in(f, 0x64) & 0x21, 0x01);
    assert_int_equal(in(f, 0x60), 0x77);
    out(f, 0x64, 0xd4);                     /* to the (absent) mouse: swallowed */
    out(f, 0x60, 0xf2);
    assert_empty(f);
}

static void test_queue_is_bounded(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 100; i++)
        out(f, 0x60, 0xf2);
    int n = 0;
    while (in(f, 0x64) & 0x01) {
        in(f, 0x60);
        assert_true(++n <= 16);
    }
    assert_int_equal(n, 16);
}

static void test_save_load(void **state)
{
    struct fixture *f = *state;
    out(f, 0x64, 0x60);
    out(f, 0x60, 0x25);
    out(f, 0x60, 0xf2);
    assert_int_equal(in(f, 0x60), 0xfa);
    struct state_writer *w = state_writer_new();
    struct device d = i8042_device(f->k);
    assert_int_equal(d.ops->save(d.dev, w), 0);
    GBytes *blob = state_writer_finish(w);

    struct fixture f2 = { 0 };
    bus_init(&f2.bus, "pio");
    f2.k = i8042_create(&f2.bus, (struct machine_ctl){ fake_request, &f2 });
    struct state_reader *r = state_reader_new(blob, NULL);
    struct device d2 = i8042_device(f2.k);
    assert_int_equal(d2.ops->load(d2.dev, r), 0);
    assert_true(state_reader_at_end(r));
    state_reader_free(r);
    assert_int_equal(read_reply(&f2), 0xab);
    assert_int_equal(read_reply(&f2), 0x83);
    assert_empty(&f2);
    out(&f2, 0x64, 0x20);
    assert_int_equal(read_reply(&f2), 0x25);

    d2.ops->destroy(d2.dev);
    bus_destroy(&f2.bus);
    g_bytes_unref(blob);
}

static void test_reset_clears_queue(void **state)
{
    struct fixture *f = *state;
    out(f, 0x60, 0xff);
    struct device d = i8042_device(f->k);
    d.ops->reset(d.dev);
    assert_empty(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_and_self_tests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pulse_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_port_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyboard_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aux_loop_marks_aux_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_clears_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
