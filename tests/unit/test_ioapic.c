#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/ioapic.h"
#include "vmm/bus.h"
#include "vmm/state.h"

#define BASE LAYOUT_IOAPIC_ADDR

struct msi {
    uint64_t addr;
    uint32_t data;
};

struct fixture {
    struct bus bus;
    struct ioapic *io;
    struct msi sent[64];
    unsigned nsent;
};

static void hook(void *opaque, uint64_t addr, uint32_t data)
{
    struct fixture *f = opaque;
    assert_true(f->nsent < 64);
    f->sent[f->nsent++] = (struct msi){ addr, data };
}

static void mmio_write32(struct fixture *f, uint64_t off, uint32_t v)
{
    assert_true(bus_write(&f->bus, BASE + off, &v, 4));
}

static uint32_t mmio_read32(struct fixture *f, uint64_t off)
{
    uint32_t v;
    assert_true(bus_read(&f->bus, BASE + off, &v, 4));
    return v;
}

static void reg_write(struct fixture *f, uint8_t reg, uint32_t v)
{
    mmio_write32(f, 0x00, reg);
    mmio_write32(f, 0x10, v);
}

static uint32_t reg_read(struct fixture *f, uint8_t reg)
{
    mmio_write32(f, 0x00, reg);
    return mmio_read32(f, 0x10);
}

static void set_rte(struct fixture *f, unsigned pin, uint64_t rte)
{
    reg_write(f, (uint8_t)(0x11 + 2 * pin), (uint32_t)(rte >> 32));
    reg_write(f, (uint8_t)(0x10 + 2 * pin), (uint32_t)rte);
}

static uint64_t get_rte(struct fixture *f, unsigned pin)
{
    return (uint64_t)reg_read(f, (uint8_t)(0x11 + 2 * pin)) << 32 | reg_read(f, (uint8_t)(0x10 + 2 * pin));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    bus_init(&f->bus, "mmio");
    f->io = ioapic_create(NULL, &f->bus, BASE);
    assert_non_null(f->io);
    ioapic_set_msi_hook(f->io, hook, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct device d = ioapic_device(f->io);
    d.ops->destroy(d.dev);
    bus_destroy(&f->bus);
    free(f);
    return 0;
}

static void test_id_version_and_reset_state(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(reg_read(f, 0x01), 0x00170020);
    assert_int_equal(reg_read(f, 0x00), 0);
    reg_write(f, 0x00, 0xffffffff);
    assert_int_equal(reg_read(f, 0x00), 0x0f000000);    /* only bits 24-27 */
    reg_write(f, 0x01, 0);
    assert_int_equal(reg_read(f, 0x01), 0x00170020);    /* read-only */
    for (unsigned pin = 0; pin < 24; pin++)
        assert_int_equal(get_rte(f, pin), 1u << 16);    /* masked at reset */
    mmio_write32(f, 0x00, 0x13);
    assert_int_equal(mmio_read32(f, 0x00), 0x13);       /* IOREGSEL reads back */
}

static void test_edge_msi_format(void **state)
{
    struct fixture *f = *state;
    /* vector 0x31, lowest priority, logical, destination 0x05 */
    set_rte(f, 4, 0x31 | 1u << 8 | 1u << 11 | (uint64_t)0x05 << 56);
    ioapic_set_irq(f->io, 4, true);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].addr, 0xfee00000u | 0x05 << 12 | 1u << 2);
    assert_int_equal(f->sent[0].data, 0x31 | 1u << 8);
    ioapic_set_irq(f->io, 4, true);         /* no new edge */
    assert_int_equal(f->nsent, 1);
    ioapic_set_irq(f->io, 4, false);
    ioapic_set_irq(f->io, 4, true);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(get_rte(f, 4) & (1u << 14), 0);   /* no Remote IRR for edge */
}

static void test_masked_pin_is_silent(void **state)
{
    struct fixture *f = *state;
    ioapic_set_irq(f->io, 3, true);
    ioapic_set_irq(f->io, 3, false);
    set_rte(f, 3, 0x40 | 1u << 16);
    ioapic_set_irq(f->io, 3, true);
    assert_int_equal(f->nsent, 0);
    ioapic_set_irq(f->io, 3, false);
    set_rte(f, 3, 0x40);                    /* edge unmasked while low: nothing */
    assert_int_equal(f->nsent, 0);
}

static void test_level_remote_irr_and_eoi(void **state)
{
    struct fixture *f = *state;
    set_rte(f, 9, 0x52 | 1u << 15 | (uint64_t)1 << 56);
    ioapic_set_irq(f->io, 9, true);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].addr, 0xfee01000u);
    assert_int_equal(f->sent[0].data, 0x52 | 1u << 14 | 1u << 15);
    assert_true(get_rte(f, 9) & (1u << 14));        /* Remote IRR */

    ioapic_set_irq(f->io, 9, true);                 /* still waiting for EOI */
    assert_int_equal(f->nsent, 1);
    ioapic_eoi(f->io, 0x53);                        /* another vector */
    assert_int_equal(f->nsent, 1);

    ioapic_eoi(f->io, 0x52);                        /* still asserted: again */
    assert_int_equal(f->nsent, 2);
    assert_true(get_rte(f, 9) & (1u << 14));

    ioapic_set_irq(f->io, 9, false);
    ioapic_eoi(f->io, 0x52);
    assert_int_equal(f->nsent, 2);
    assert_false(get_rte(f, 9) & (1u << 14));
}

static void test_eoi_register(void **state)
{
    struct fixture *f = *state;
    set_rte(f, 2, 0x60 | 1u << 15);
    ioapic_set_irq(f->io, 2, true);
    assert_int_equal(f->nsent, 1);
    mmio_write32(f, 0x40, 0x60);
    assert_int_equal(f->nsent, 2);
    ioapic_set_irq(f->io, 2, false);
    mmio_write32(f, 0x40, 0x60);
    assert_false(get_rte(f, 2) & (1u << 14));
}

static void test_unmask_asserted_level_delivers(void **state)
{
    struct fixture *f = *state;
    set_rte(f, 7, 0x70 | 1u << 15 | 1u << 16);
    ioapic_set_irq(f->io, 7, true);
    assert_int_equal(f->nsent, 0);
    set_rte(f, 7, 0x70 | 1u << 15);
    assert_int_equal(f->nsent, 1);
    /* Switching to edge drops a stale Remote IRR. */
    set_rte(f, 7, 0x70);
    assert_false(get_rte(f, 7) & (1u << 14));
}

static void test_remote_irr_not_writable(void **state)
{
    struct fixture *f = *state;
    set_rte(f, 5, 0x80 | 1u << 15 | 1u << 14 | 1u << 12);
    assert_int_equal(get_rte(f, 5), 0x80 | 1u << 15);
}

static void test_out_of_range_accesses_harmless(void **state)
{
    struct fixture *f = *state;
    for (unsigned reg = 0x03; reg < 0x100; reg++) {
        if (reg >= 0x10 && reg < 0x10 + 48)
            continue;
        reg_write(f, (uint8_t)reg, 0xffffffff);
        assert_int_equal(reg_read(f, (uint8_t)reg), 0);
    }
    ioapic_set_irq(f->io, 24, true);
    ioapic_set_irq(f->io, 1000, true);
    uint64_t v = ~0ull;
    for (uint64_t off = 0; off < 0x100; off++) {
        bus_write(&f->bus, BASE + off, &v, 1 + (unsigned)(off % 4));
        bus_read(&f->bus, BASE + off, &v, 8);
    }
    assert_int_equal(f->nsent, 0);
    assert_int_equal(reg_read(f, 0x01), 0x00170020);
}

static void test_byte_access_to_iowin(void **state)
{
    struct fixture *f = *state;
    mmio_write32(f, 0x00, 0x10);
    uint8_t b = 0x44;
    bus_write(&f->bus, BASE + 0x10, &b, 1);
    assert_int_equal(reg_read(f, 0x10), 0x00010044);   /* only the low byte changed */
    mmio_write32(f, 0x00, 0x01);
    bus_read(&f->bus, BASE + 0x12, &b, 1);
    assert_int_equal(b, 0x17);
}

static void test_save_load_round_trip(void **state)
{
    struct fixture *f = *state;
    reg_write(f, 0x00, 0x03000000);
    set_rte(f, 9, 0x52 | 1u << 15);
    set_rte(f, 4, 0x31 | (uint64_t)3 << 56);
    ioapic_set_irq(f->io, 9, true);
    assert_int_equal(f->nsent, 1);

    struct state_writer *w = state_writer_new();
    struct device d = ioapic_device(f->io);
    assert_int_equal(d.ops->save(d.dev, w), 0);
    GBytes *blob = state_writer_finish(w);

    struct fixture f2 = { 0 };
    bus_init(&f2.bus, "mmio");
    struct ioapic *io2 = ioapic_create(NULL, &f2.bus, BASE);
    ioapic_set_msi_hook(io2, hook, &f2);
    struct state_reader *r = state_reader_new(blob, NULL);
    struct device d2 = ioapic_device(io2);
    assert_int_equal(d2.ops->load(d2.dev, r), 0);
    assert_true(state_reader_at_end(r));
    state_reader_free(r);

    for (unsigned reg = 0; reg < 0x40; reg++)
        assert_int_equal(reg_read(&f2, (uint8_t)reg), reg_read(f, (uint8_t)reg));
    /* The loaded Remote IRR and line level carry on: EOI redelivers. */
    ioapic_eoi(io2, 0x52);
    assert_int_equal(f2.nsent, 1);
    assert_int_equal(f2.sent[0].data, 0x52 | 1u << 14 | 1u << 15);

    d2.ops->destroy(d2.dev);
    bus_destroy(&f2.bus);
    g_bytes_unref(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_id_version_and_reset_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge_msi_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_masked_pin_is_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_remote_irr_and_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eoi_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmask_asserted_level_delivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_irr_not_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range_accesses_harmless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_access_to_iowin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
