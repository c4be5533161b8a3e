#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "vmm/bus.h"
#include "vmm/state.h"

struct fake_machine {
    unsigned poweroffs, resets, others;
};

static void fake_request(void *opaque, enum machine_request req, int arg)
{
    struct fake_machine *m = opaque;
    if (req == MACHINE_POWEROFF)
        m->poweroffs++;
    else if (req == MACHINE_RESET)
        m->resets++;
    else
        m->others++;
}

struct fake_irq {
    unsigned raises, lowers;
    unsigned last_gsi;
    bool level;
};

static void fake_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    __atomic_fetch_add(level ? &f->raises : &f->lowers, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&f->last_gsi, gsi, __ATOMIC_RELAXED);
    __atomic_store_n(&f->level, level, __ATOMIC_RELAXED);
}

struct fixture {
    struct bus pio;
    struct fake_machine machine;
    struct fake_irq irq;
    struct acpi_pm *pm;
    struct device dev;
};

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);
    bus_init(&f->pio, "pio");
    struct irq_line irq = { fake_set, &f->irq, IRQ_ACPI_GED };
    struct machine_ctl ctl = { fake_request, &f->machine };
    f->pm = acpi_pm_create(&f->pio, irq, ctl);
    assert_non_null(f->pm);
    f->dev = acpi_pm_device(f->pm);
    assert_non_null(f->dev.ops);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->dev.ops)
        f->dev.ops->destroy(f->dev.dev);
    bus_destroy(&f->pio);
    g_free(f);
    return 0;
}

static void out8(struct fixture *f, uint16_t port, uint8_t v)
{
    assert_true(bus_write(&f->pio, port, &v, 1));
}

static uint32_t in32(struct fixture *f, uint16_t port)
{
    uint32_t v = 0xdeadbeef;
    assert_true(bus_read(&f->pio, port, &v, 4));
    return v;
}

static void test_s5_powers_off(void **state)
{
    struct fixture *f = *state;
    out8(f, PORT_ACPI_SLEEP_CTL, (uint8_t)(ACPI_S5_SLP_TYP << 2));     /* no SLP_EN */
    assert_int_equal(f->machine.poweroffs, 0);
    out8(f, PORT_ACPI_SLEEP_CTL, (uint8_t)((ACPI_S5_SLP_TYP << 2) | 0x20));
    assert_int_equal(f->machine.poweroffs, 1);
    assert_int_equal(f->machine.resets + f->machine.others, 0);
}

static void test_other_sleep_types_ignored(void **state)
{
    struct fixture *f = *state;
    for (unsigned typ = 0; typ < 8; typ++)
        if (typ != ACPI_S5_SLP_TYP)
            out8(f, PORT_ACPI_SLEEP_CTL, (uint8_t)((typ << 2) | 0x20));
    out8(f, PORT_ACPI_SLEEP_STS, 0x80);
    assert_int_equal(f->machine.poweroffs + f->machine.resets + f->machine.others, 0);
    uint8_t v = 0xff;
    assert_true(bus_read(&f->pio, PORT_ACPI_SLEEP_CTL, &v, 1));
    assert_int_equal(v, 0);
}

static void test_reset_register(void **state)
{
    struct fixture *f = *state;
    out8(f, PORT_ACPI_RESET, ACPI_RESET_VALUE + 1);
    assert_int_equal(f->machine.resets, 0);
    out8(f, PORT_ACPI_RESET, ACPI_RESET_VALUE);
    assert_int_equal(f->machine.resets, 1);
    assert_int_equal(f->machine.poweroffs, 0);
}

static void test_ged_event_pulses_and_read_clears(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(in32(f, PORT_ACPI_GED), 0);

    acpi_pm_ged_event(f->pm, 0);        /* nothing to signal */
    assert_int_equal(f->irq.raises, 0);

    acpi_pm_ged_event(f->pm, GED_EVENT_POWER_BUTTON);
    assert_int_equal(f->irq.raises, 1);
    assert_int_equal(f->irq.lowers, 1);
    assert_int_equal(f->irq.last_gsi, IRQ_ACPI_GED);
    assert_false(f->irq.level);         /* pulsed, not held */

    assert_int_equal(in32(f, PORT_ACPI_GED), GED_EVENT_POWER_BUTTON);
    assert_int_equal(in32(f, PORT_ACPI_GED), 0);

    /* Events latch until read; writes do not clear them. */
    acpi_pm_ged_event(f->pm, 1u << 0);
    acpi_pm_ged_event(f->pm, 1u << 9);
    uint32_t w = 0xffffffff;
    assert_true(bus_write(&f->pio, PORT_ACPI_GED, &w, 4));
    assert_int_equal(f->irq.raises, 3);

    /* A byte read returns and clears only the byte it returns. */
    uint8_t b = 0;
    assert_true(bus_read(&f->pio, PORT_ACPI_GED, &b, 1));
    assert_int_equal(b, 0x01);
    assert_true(bus_read(&f->pio, PORT_ACPI_GED + 1, &b, 1));
    assert_int_equal(b, 0x02);
    assert_int_equal(in32(f, PORT_ACPI_GED), 0);
}

static void test_ged_read_beyond_register(void **state)
{
    struct fixture *f = *state;
    acpi_pm_ged_event(f->pm, 0x80000000u);
    /* A 4-byte read at the last byte: byte 3, then zeros, never garbage. */
    uint32_t v = 0xdeadbeef;
    assert_true(bus_read(&f->pio, PORT_ACPI_GED + 3, &v, 4));
    assert_int_equal(v, 0x80);
    assert_int_equal(in32(f, PORT_ACPI_GED), 0);
}

struct setter {
    struct acpi_pm *pm;
    uint32_t bit;
};

static void *set_bit(void *opaque)
{
    struct setter *s = opaque;
    acpi_pm_ged_event(s->pm, s->bit);
    return NULL;
}

static void test_ged_events_from_threads(void **state)
{
    struct fixture *f = *state;
    enum { N = 32 };
    pthread_t th[N];
    struct setter s[N];
    for (unsigned i = 0; i < N; i++) {
        s[i] = (struct setter){ f->pm, 1u << i };
        assert_int_equal(pthread_create(&th[i], NULL, set_bit, &s[i]), 0);
    }
    /* Read while the threads run: each bit must come out exactly once. */
    uint32_t seen = 0;
    for (unsigned i = 0; i < N; i++) {
        uint32_t v = in32(f, PORT_ACPI_GED);
        assert_int_equal(v & seen, 0);
        seen |= v;
    }
    for (unsigned i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    uint32_t v = in32(f, PORT_ACPI_GED);
    assert_int_equal(v & seen, 0);
    seen |= v;
    assert_int_equal(seen, 0xffffffffu);
    assert_int_equal(f->irq.raises, N);
}

static void test_reset_clears_events(void **state)
{
    struct fixture *f = *state;
    acpi_pm_ged_event(f->pm, GED_EVENT_POWER_BUTTON);
    f->dev.ops->reset(f->dev.dev);
    assert_int_equal(in32(f, PORT_ACPI_GED), 0);
}

static GBytes *save(struct fixture *f)
{
    struct state_writer *w = state_writer_new();
    assert_int_equal(f->dev.ops->save(f->dev.dev, w), 0);
    return state_writer_finish(w);
}

static int load(struct fixture *f, GBytes *stream)
{
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(stream, &err);
    assert_non_null(r);
    int ret = f->dev.ops->load(f->dev.dev, r);
    state_reader_free(r);
    return ret;
}

static void test_save_load_round_trip(void **state)
{
    struct fixture *f = *state;
    acpi_pm_ged_event(f->pm, 0x5);
    g_autoptr(GBytes) s = save(f);
    assert_int_equal(in32(f, PORT_ACPI_GED), 0x5);     /* saving does not consume */

    /* A second device on its own bus takes the state over. */
    struct fixture *g = NULL;
    setup((void **)&g);
    assert_int_equal(load(g, s), 0);
    assert_int_equal(in32(g, PORT_ACPI_GED), 0x5);
    assert_int_equal(in32(g, PORT_ACPI_GED), 0);
    teardown((void **)&g);
}

static GBytes *section(const char *name, uint32_t version, bool extra_byte)
{
    struct state_writer *w = state_writer_new();
    state_begin_section(w, name, version);
    state_put_u32(w, 0x7);
    if (extra_byte)
        state_put_u8(w, 0);
    state_end_section(w);
    return state_writer_finish(w);
}

static void test_load_refuses_bad_sections(void **state)
{
    struct fixture *f = *state;
    acpi_pm_ged_event(f->pm, 0x10);
    g_autoptr(GBytes) newer = section("acpi_pm", 2, false);
    g_autoptr(GBytes) other = section("serial", 1, false);
    g_autoptr(GBytes) longer = section("acpi_pm", 1, true);
    assert_int_equal(load(f, newer), -EINVAL);
    assert_int_equal(load(f, other), -EINVAL);
    assert_int_equal(load(f, longer), -EINVAL);

    struct state_writer *w = state_writer_new();
    state_begin_section(w, "acpi_pm", 1);
    state_put_u16(w, 1);                /* too short for the u32 */
    state_end_section(w);
    g_autoptr(GBytes) shorter = state_writer_finish(w);
    assert_int_equal(load(f, shorter), -EINVAL);

    /* Nothing was applied. */
    assert_int_equal(in32(f, PORT_ACPI_GED), 0x10);

    g_autoptr(GBytes) good = section("acpi_pm", 1, false);
    assert_int_equal(load(f, good), 0);
    assert_int_equal(in32(f, PORT_ACPI_GED), 0x7);
}

static void test_destroy_unregisters(void **state)
{
    struct fixture *f = *state;
    f->dev.ops->destroy(f->dev.dev);
    f->dev.ops = NULL;
    uint8_t v;
    assert_false(bus_read(&f->pio, PORT_ACPI_SLEEP_CTL, &v, 1));
    assert_false(bus_read(&f->pio, PORT_ACPI_RESET, &v, 1));
    assert_false(bus_read(&f->pio, PORT_ACPI_GED, &v, 1));
}

static const struct bus_ops dummy_ops;

static void test_create_fails_cleanly_on_conflict(void **state)
{
    struct bus pio;
    bus_init(&pio, "pio");
    assert_int_equal(bus_register(&pio, PORT_ACPI_RESET, 1, &dummy_ops, NULL, "other"), 0);
    struct acpi_pm *pm = acpi_pm_create(&pio, (struct irq_line){ 0 }, (struct machine_ctl){ 0 });
    assert_null(pm);
    assert_int_equal(pio.nr, 1);        /* the ranges it had taken were given back */
    assert_null(acpi_pm_device(NULL).ops);
    bus_destroy(&pio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_s5_powers_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_sleep_types_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ged_event_pulses_and_read_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ged_read_beyond_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ged_events_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_clears_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_bad_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_unregisters, setup, teardown),
        cmocka_unit_test(test_create_fails_cleanly_on_conflict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
