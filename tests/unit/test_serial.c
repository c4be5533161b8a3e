#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/char_backend.h"
#include "devices/serial.h"
#include "vmm/bus.h"
#include "vmm/loop.h"
#include "vmm/state.h"

#define BASE 0x3f8
#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct fake_irq {
    int calls;
    bool level;
    struct loop *quit_on_raise;
};

static void fake_irq_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    assert_int_equal(gsi, 4);
    f->calls++;
    f->level = level;
    if (level && f->quit_on_raise)
        loop_quit(f->quit_on_raise);
}

struct fixture {
    struct bus bus;
    struct fake_irq irq;
    int out_r;              /* what the guest transmitted */
    int in_w;               /* what the host types */
    struct char_backend *be;
    struct serial *s;
    struct loop *loop;
};

static void outb(struct fixture *f, unsigned reg, uint8_t v)
{
    assert_true(bus_write(&f->bus, BASE + reg, &v, 1));
}

static uint8_t inb(struct fixture *f, unsigned reg)
{
    uint8_t v;
    assert_true(bus_read(&f->bus, BASE + reg, &v, 1));
    return v;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int out[2], in[2];
    assert_int_equal(pipe2(out, O_NONBLOCK), 0);
    assert_int_equal(pipe2(in, O_NONBLOCK), 0);
    f->out_r = out[0];
    f->in_w = in[1];
    bus_init(&f->bus, "pio");
    f->be = char_backend_open_fds(in[0], out[1], false);
    struct irq_line line = { fake_irq_set, &f->irq, 4 };
    f->s = serial_create(&f->bus, BASE, line, f->be);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct device d = serial_device(f->s);
    d.ops->destroy(d.dev);
    char_backend_close(f->be);
    if (f->loop)
        loop_free(f->loop);
    bus_destroy(&f->bus);
    close(f->out_r);
    close(f->in_w);
    free(f);
    return 0;
}

static void test_thr_reaches_backend(void **state)
{
    struct fixture *f = *state;
    const char *msg = "hello\n";
    for (const char *p = msg; *p; p++)
        outb(f, THR, (uint8_t)*p);
    char buf[32] = { 0 };
    assert_int_equal(read(f->out_r, buf, sizeof(buf)), strlen(msg));
    assert_string_equal(buf, msg);
    /* Transmission is immediate: the transmitter always looks empty. */
    assert_int_equal(inb(f, LSR), 0x60);
}

static void test_dlab_divisor(void **state)
{
    struct fixture *f = *state;
    outb(f, IER, 0x05);
    outb(f, LCR, 0x83);
    outb(f, THR, 0x34);         /* DLL */
    outb(f, IER, 0x12);         /* DLM */
    assert_int_equal(inb(f, THR), 0x34);
    assert_int_equal(inb(f, IER), 0x12);
    outb(f, LCR, 0x03);
    assert_int_equal(inb(f, IER), 0x05);
    assert_int_equal(inb(f, LCR), 0x03);
    char buf[4];
    assert_int_equal(read(f->out_r, buf, sizeof(buf)), -1);    /* DLL write sent nothing */
    outb(f, LCR, 0x80);
    assert_int_equal(inb(f, THR), 0x34);
    assert_int_equal(inb(f, IER), 0x12);
}

static void test_scratch_and_ier_mask(void **state)
{
    struct fixture *f = *state;
    outb(f, SCR, 0xa5);
    assert_int_equal(inb(f, SCR), 0xa5);
    outb(f, IER, 0xff);
    assert_int_equal(inb(f, IER), 0x0f);
}

static void test_thre_interrupt(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x08);             /* OUT2 */
    assert_int_equal(f->irq.calls, 0);
    assert_int_equal(inb(f, IIR), 0x01);

    outb(f, IER, 0x02);             /* newly enabled with THR empty: fires */
    assert_int_equal(f->irq.calls, 1);
    assert_true(f->irq.level);
    assert_int_equal(inb(f, IIR), 0x02);
    assert_false(f->irq.level);     /* reading IIR with THRE as source clears it */
    assert_int_equal(inb(f, IIR), 0x01);

    outb(f, IER, 0x02);             /* already enabled: no new edge */
    assert_int_equal(inb(f, IIR), 0x01);
    assert_false(f->irq.level);

    outb(f, THR, 'x');              /* sent at once; THR empty again */
    assert_true(f->irq.level);
    assert_int_equal(inb(f, IIR), 0x02);

    outb(f, IER, 0x00);
    outb(f, IER, 0x02);             /* re-enabled: fires again (Linux's THRE test) */
    assert_true(f->irq.level);
    outb(f, IER, 0x00);             /* disabling drops the line */
    assert_false(f->irq.level);
    int calls = f->irq.calls;
    outb(f, SCR, 1);
    assert_int_equal(f->irq.calls, calls);  /* only changes reach the line */
}

static void test_out2_gates_irq(void **state)
{
    struct fixture *f = *state;
    outb(f, IER, 0x02);
    assert_int_equal(inb(f, IIR) & 0x0f, 0x02);    /* pending ... */
    outb(f, IER, 0x00);
    outb(f, IER, 0x02);
    assert_int_equal(f->irq.calls, 0);              /* ... but OUT2 is clear */
    outb(f, MCR, 0x08);
    assert_int_equal(f->irq.calls, 1);
    assert_true(f->irq.level);
    outb(f, MCR, 0x00);
    assert_int_equal(f->irq.calls, 2);
    assert_false(f->irq.level);
}

static void test_fifo_iir_bits(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(inb(f, IIR) & 0xc0, 0x00);
    outb(f, FCR, 0x01);
    assert_int_equal(inb(f, IIR) & 0xc0, 0xc0);
    outb(f, FCR, 0x00);
    assert_int_equal(inb(f, IIR) & 0xc0, 0x00);
}

static void test_loopback_modem_lines(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(inb(f, MSR) & 0xf0, 0xb0);     /* CTS DSR DCD from a present host */
    outb(f, MCR, 0x10 | 0x0a);                      /* Linux's autodetect probe */
    assert_int_equal(inb(f, MSR) & 0xf0, 0x90);
    outb(f, MCR, 0x10 | 0x01 | 0x04);               /* DTR, OUT1 */
    uint8_t msr = inb(f, MSR);
    assert_int_equal(msr & 0xf0, 0x60);             /* DSR, RI */
    assert_int_equal(msr & 0x0b, 0x0b);             /* CTS, DSR and DCD changed */
    assert_int_equal(inb(f, MSR) & 0x0f, 0);        /* read clears the deltas */
    outb(f, MCR, 0x10);                             /* RI falls */
    assert_int_equal(inb(f, MSR) & 0x04, 0x04);     /* trailing edge of RI */
}

static void test_loopback_data_and_priorities(void **state)
{
    struct fixture *f = *state;
    outb(f, FCR, 0x01);
    outb(f, MCR, 0x10 | 0x08);      /* loopback, OUT2 (DCD on, CTS and DSR fall) */
    outb(f, IER, 0x0f);
    for (int i = 0; i < 17; i++)
        outb(f, THR, (uint8_t)('a' + i));
    char buf[4];
    assert_int_equal(read(f->out_r, buf, sizeof(buf)), -1);    /* nothing left the UART */
    assert_true(f->irq.level);

    assert_int_equal(inb(f, IIR), 0xc6);                    /* overrun outranks the rest */
    assert_int_equal(inb(f, LSR) & 0x03, 0x03);             /* DR and OE; read clears OE */
    assert_int_equal(inb(f, LSR) & 0x03, 0x01);
    assert_int_equal(inb(f, IIR), 0xc4);                    /* then received data */
    for (int i = 0; i < 16; i++)
        assert_int_equal(inb(f, THR), 'a' + i);             /* oldest first; the 17th was lost */
    assert_int_equal(inb(f, LSR) & 0x01, 0);
    assert_int_equal(inb(f, IIR), 0xc2);                    /* then THRE, cleared by this read */
    assert_int_equal(inb(f, IIR), 0xc0);                    /* then modem status */
    assert_true(f->irq.level);
    inb(f, MSR);
    assert_int_equal(inb(f, IIR), 0xc1);
    assert_false(f->irq.level);
}

static void test_rx_without_fifo_holds_one(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x10);
    outb(f, THR, '1');
    outb(f, THR, '2');
    assert_int_equal(inb(f, LSR) & 0x03, 0x03);
    assert_int_equal(inb(f, THR), '1');
    assert_int_equal(inb(f, LSR) & 0x01, 0);
}

static void test_rx_timeout_below_trigger(void **state)
{
    struct fixture *f = *state;
    outb(f, FCR, 0x81);             /* FIFO, trigger level 8 */
    outb(f, MCR, 0x10);
    outb(f, IER, 0x01);
    outb(f, THR, 'z');
    assert_int_equal(inb(f, IIR), 0xcc);    /* below the trigger: character timeout */
    for (int i = 0; i < 7; i++)
        outb(f, THR, 'z');
    assert_int_equal(inb(f, IIR), 0xc4);
    outb(f, FCR, 0x83);             /* clear RX */
    assert_int_equal(inb(f, LSR) & 0x01, 0);
    assert_int_equal(inb(f, IIR), 0xc1);
}

static void start_loop(struct fixture *f)
{
    f->loop = loop_new(NULL);
    assert_non_null(f->loop);
    f->irq.quit_on_raise = f->loop;
    char_backend_attach(f->be, f->loop, NULL, NULL);
}

static void test_host_input_fills_fifo_with_flow_control(void **state)
{
    struct fixture *f = *state;
    start_loop(f);
    outb(f, FCR, 0x01);
    outb(f, MCR, 0x08);
    outb(f, IER, 0x01);
    char in[20];
    for (int i = 0; i < 20; i++)
        in[i] = (char)('A' + i);
    assert_int_equal(write(f->in_w, in, sizeof(in)), sizeof(in));

    assert_int_equal(loop_run(f->loop), 0);     /* until the IRQ rises */
    assert_true(f->irq.level);
    assert_int_equal(inb(f, IIR), 0xc4);
    /* The backend never offers more than fits: 16 in, none lost. */
    for (int i = 0; i < 16; i++)
        assert_int_equal(inb(f, THR), 'A' + i);
    assert_int_equal(inb(f, LSR) & 0x03, 0);
    assert_false(f->irq.level);

    assert_int_equal(loop_run(f->loop), 0);     /* the rest, after the guest made room */
    for (int i = 16; i < 20; i++)
        assert_int_equal(inb(f, THR), 'A' + i);
    assert_int_equal(inb(f, LSR) & 0x03, 0);
}

static GBytes *save(struct serial *s)
{
    struct state_writer *w = state_writer_new();
    struct device d = serial_device(s);
    assert_int_equal(d.ops->save(d.dev, w), 0);
    return state_writer_finish(w);
}

static void test_save_load_round_trip(void **state)
{
    struct fixture *f = *state;
    outb(f, FCR, 0x41);
    outb(f, LCR, 0x80);
    outb(f, THR, 0x01);
    outb(f, LCR, 0x1b);
    outb(f, SCR, 0x5a);
    outb(f, MCR, 0x18);
    outb(f, THR, 'p');
    outb(f, THR, 'q');
    outb(f, IER, 0x05);
    GBytes *blob = save(f->s);

    struct bus bus2;
    bus_init(&bus2, "pio");
    struct fake_irq irq2 = { 0 };
    struct irq_line line = { fake_irq_set, &irq2, 4 };
    struct serial *s2 = serial_create(&bus2, BASE, line, NULL);
    struct state_reader *r = state_reader_new(blob, NULL);
    assert_non_null(r);
    struct device d2 = serial_device(s2);
    assert_int_equal(d2.ops->load(d2.dev, r), 0);
    assert_true(state_reader_at_end(r));
    state_reader_free(r);

    for (unsigned reg = 1; reg < 8; reg++) {
        uint8_t a, b;
        bus_read(&f->bus, BASE + reg, &a, 1);
        bus_read(&bus2, BASE + reg, &b, 1);
        assert_int_equal(a, b);
    }
    assert_true(irq2.level);            /* pending RX data with OUT2 set */
    uint8_t v;
    bus_read(&bus2, BASE + THR, &v, 1);
    assert_int_equal(v, 'p');
    bus_read(&bus2, BASE + THR, &v, 1);
    assert_int_equal(v, 'q');

    d2.ops->destroy(d2.dev);
    bus_destroy(&bus2);
    g_bytes_unref(blob);
}

static void test_load_rejects_bad_fifo_count(void **state)
{
    struct fixture *f = *state;
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "serial", 1);
    state_put_u16(w, BASE);
    for (int i = 0; i < 7; i++)
        state_put_u8(w, 0);
    state_put_u16(w, 1);
    state_put_u8(w, 0);
    state_put_u8(w, 0);
    state_put_u8(w, 200);       /* more than the FIFO holds */
    state_end_section(w);
    GBytes *blob = state_writer_finish(w);
    struct state_reader *r = state_reader_new(blob, NULL);
    struct device d = serial_device(f->s);
    assert_int_equal(d.ops->load(d.dev, r), -EINVAL);
    state_reader_free(r);
    g_bytes_unref(blob);
}

static void test_any_access_is_harmless(void **state)
{
    struct fixture *f = *state;
    static const unsigned sizes[] = { 1, 2, 4 };
    for (unsigned reg = 0; reg < 8; reg++)
        for (unsigned v = 0; v < 256; v++)
            for (unsigned k = 0; k < 3; k++) {
                uint32_t in = v * 0x01010101u, out;
                if (reg == MCR)
                    in &= ~0x10u;       /* keep transmitting: the pipe drops nothing it cannot hold */
                bus_write(&f->bus, BASE + reg, &in, sizes[k]);
                bus_read(&f->bus, BASE + (reg * 7 + v) % 8, &out, sizes[k]);
            }
    struct device d = serial_device(f->s);
    d.ops->reset(d.dev);
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(inb(f, IIR), 0x01);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_thr_reaches_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlab_divisor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scratch_and_ier_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out2_gates_irq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_iir_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_modem_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_data_and_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_without_fifo_holds_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_timeout_below_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_input_fills_fifo_with_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_rejects_bad_fifo_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_access_is_harmless, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
