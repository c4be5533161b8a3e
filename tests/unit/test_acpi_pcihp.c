/* The ACPI PCI hotplug controller's registers and the AML that drives them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pcihp.h"
#include "devices/acpi_pm.h"
#include "vmm/bus.h"
#include "vmm/state.h"

struct fake_irq {
    unsigned raises;
};

static void fake_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    if (level)
        f->raises++;
}

static void fake_request(void *opaque, enum machine_request req, int arg)
{
}

struct fixture {
    struct bus pio;
    struct fake_irq irq;
    struct acpi_pm *pm;
    struct acpi_pcihp *hp;
    unsigned ejected[32];
    unsigned nr_ejects;
};

static void on_eject(void *opaque, unsigned slot)
{
    struct fixture *f = opaque;
    f->ejected[slot]++;
    f->nr_ejects++;
}

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);
    bus_init(&f->pio, "pio");
    struct irq_line irq = { fake_set, &f->irq, IRQ_ACPI_GED };
    struct machine_ctl ctl = { fake_request, NULL };
    f->pm = acpi_pm_create(&f->pio, irq, ctl);
    struct acpi_pcihp_ops ops = { on_eject, f };
    f->hp = acpi_pcihp_create(&f->pio, PORT_PCI_HOTPLUG, f->pm, &ops);
    assert_non_null(f->hp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct device d = acpi_pcihp_device(f->hp);
    d.ops->destroy(d.dev);
    d = acpi_pm_device(f->pm);
    d.ops->destroy(d.dev);
    assert_int_equal(f->pio.nr, 0);
    bus_destroy(&f->pio);
    g_free(f);
    return 0;
}

static uint32_t rd(struct fixture *f, unsigned off, unsigned size)
{
    uint32_t v = 0;
    assert_true(bus_read(&f->pio, PORT_PCI_HOTPLUG + off, &v, size));
    return v;
}

static void wr(struct fixture *f, unsigned off, uint32_t v, unsigned size)
{
    assert_true(bus_write(&f->pio, PORT_PCI_HOTPLUG + off, &v, size));
}

static uint32_t ged(struct fixture *f)
{
    uint32_t v = 0;
    bus_read(&f->pio, PORT_ACPI_GED, &v, 4);
    return v;
}

static void test_plug_sets_up_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 0);
    acpi_pcihp_plugged(f->hp, 5, true);
    assert_int_equal(f->irq.raises, 1);
    assert_int_equal(ged(f), GED_EVENT_PCI_HOTPLUG);
    assert_int_equal(rd(f, ACPI_PCIHP_REMOVABLE, 4), 1u << 5);
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 1u << 5);
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 0);      /* reading cleared it */
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 0);
}

static void test_boot_device_not_notified(void **state)
{
    struct fixture *f = *state;
    acpi_pcihp_plugged(f->hp, 3, false);
    assert_int_equal(f->irq.raises, 0);
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 0);
    assert_int_equal(rd(f, ACPI_PCIHP_REMOVABLE, 4), 1u << 3);
}

/* A byte read clears only the bits it returned. */
static void test_narrow_read_clears_its_bytes(void **state)
{
    struct fixture *f = *state;
    acpi_pcihp_plugged(f->hp, 2, true);
    acpi_pcihp_plugged(f->hp, 9, true);
    assert_int_equal(rd(f, ACPI_PCIHP_UP + 1, 1), 1u << 1);    /* slot 9: bit 1 of byte 1 */
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 1u << 2);
}

static void test_unplug_request_and_eject(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 6), -ENODEV);
    assert_int_equal(f->irq.raises, 0);
    acpi_pcihp_plugged(f->hp, 6, false);
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 6), 0);
    assert_int_equal(f->irq.raises, 1);
    assert_int_equal(ged(f), GED_EVENT_PCI_HOTPLUG);
    /* Sticky until ejected; a repeated request notifies again. */
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 1u << 6);
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 1u << 6);
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 6), 0);
    assert_int_equal(f->irq.raises, 2);
    assert_int_equal(f->nr_ejects, 0);

    wr(f, ACPI_PCIHP_EJECT, 1u << 6, 4);
    assert_int_equal(f->ejected[6], 1);
    assert_int_equal(f->nr_ejects, 1);
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 0);
    assert_int_equal(rd(f, ACPI_PCIHP_REMOVABLE, 4), 0);
    /* A second eject of the same slot finds nothing to eject. */
    wr(f, ACPI_PCIHP_EJECT, 1u << 6, 4);
    assert_int_equal(f->nr_ejects, 1);
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 6), -ENODEV);
}

/* The guest may eject without being asked (Linux's sysfs slot power), but
 * only removable slots: never slot 0, never a slot vmm did not mark. */
static void test_eject_only_removable(void **state)
{
    struct fixture *f = *state;
    acpi_pcihp_plugged(f->hp, 4, false);
    wr(f, ACPI_PCIHP_EJECT, 0xffffffffu, 4);
    assert_int_equal(f->nr_ejects, 1);
    assert_int_equal(f->ejected[4], 1);
    assert_int_equal(f->ejected[0], 0);
    /* Byte writes reach the slots of their byte. */
    acpi_pcihp_plugged(f->hp, 17, false);
    wr(f, ACPI_PCIHP_EJECT + 2, 1u << 1, 1);
    assert_int_equal(f->ejected[17], 1);
    assert_int_equal(f->nr_ejects, 2);
}

static void test_other_registers_inert(void **state)
{
    struct fixture *f = *state;
    acpi_pcihp_plugged(f->hp, 7, true);
    wr(f, ACPI_PCIHP_UP, 0, 4);
    wr(f, ACPI_PCIHP_DOWN, 0xffffffffu, 4);
    wr(f, ACPI_PCIHP_REMOVABLE, 0, 4);
    assert_int_equal(rd(f, ACPI_PCIHP_REMOVABLE, 4), 1u << 7);
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 0);
    assert_int_equal(rd(f, 0x10, 4), 0);
    assert_int_equal(rd(f, 0x1c, 4), 0);
    assert_int_equal(f->nr_ejects, 0);
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 0), -ENODEV);
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 32), -ENODEV);
}

static void test_reset_and_state(void **state)
{
    struct fixture *f = *state;
    acpi_pcihp_plugged(f->hp, 8, true);
    acpi_pcihp_plugged(f->hp, 9, false);
    assert_int_equal(acpi_pcihp_request_unplug(f->hp, 9), 0);

    struct state_writer *w = state_writer_new();
    struct device d = acpi_pcihp_device(f->hp);
    assert_int_equal(d.ops->save(d.dev, w), 0);
    d.ops->reset(d.dev);
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 0);
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 0);
    assert_int_equal(rd(f, ACPI_PCIHP_REMOVABLE, 4), (1u << 8) | (1u << 9));

    g_autoptr(GBytes) stream = state_writer_finish(w);
    struct state_reader *r = state_reader_new(stream, NULL);
    assert_non_null(r);
    assert_int_equal(d.ops->load(d.dev, r), 0);
    assert_int_equal(rd(f, ACPI_PCIHP_DOWN, 4), 1u << 9);
    assert_int_equal(rd(f, ACPI_PCIHP_UP, 4), 1u << 8);
    state_reader_free(r);
}

/* ---- AML ---- */

static const uint8_t *find(const GByteArray *t, const void *pat, size_t n, size_t from)
{
    if (from > t->len)
        return NULL;
    return memmem(t->data + from, t->len - from, pat, n);
}

static unsigned count(const GByteArray *t, const void *pat, size_t n)
{
    unsigned c = 0;
    for (const uint8_t *p = find(t, pat, n, 0); p; p = find(t, pat, n, (size_t)(p - t->data) + 1))
        c++;
    return c;
}

static GByteArray *tables(uint32_t slots)
{
    struct acpi_config c = { .nr_cpus_boot = 1, .nr_cpus_max = 1, .pci = true,
                             .pci_mmio64_base = LAYOUT_4GIB, .pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE,
                             .pci_hotplug_slots = slots };
    return acpi_build_tables(&c, LAYOUT_ACPI_START);
}

static void test_aml_slots(void **state)
{
    g_autoptr(GByteArray) t = tables((1u << 3) | (1u << 0x1f) | 1u /* slot 0 is never described */);
    /* OperationRegion (PCST, SystemIO, 0x0AE0, 0x20) */
    static const uint8_t region[] = { 0x5b, 0x80, 'P', 'C', 'S', 'T', 0x01, 0x0b, 0xe0, 0x0a, 0x0a, 0x20 };
    assert_non_null(find(t, region, sizeof(region), 0));
    /* Name (_ADR, 0x00030000) Name (_SUN, 3) in Device (S03_) */
    static const uint8_t s03[] = { 'S', '0', '3', '_', 0x08, '_', 'A', 'D', 'R', 0x0c, 0x00, 0x00, 0x03, 0x00,
                                   0x08, '_', 'S', 'U', 'N', 0x0a, 0x03 };
    assert_non_null(find(t, s03, sizeof(s03), 0));
    /* _EJ0 of S1F: Store (0x80000000, \_SB.PCI0.B0EJ) */
    static const uint8_t ej1f[] = { 0x70, 0x0c, 0x00, 0x00, 0x00, 0x80, 0x5c, 0x2f, 0x03, '_', 'S', 'B', '_',
                                    'P', 'C', 'I', '0', 'B', '0', 'E', 'J' };
    assert_non_null(find(t, ej1f, sizeof(ej1f), 0));
    /* Notify (S03_, Arg1) in DVNT; no slot 0 */
    static const uint8_t notify3[] = { 0x86, 'S', '0', '3', '_', 0x69 };
    assert_int_equal(count(t, notify3, sizeof(notify3)), 1);
    assert_int_equal(count(t, "_EJ0", 4), 2);
    assert_int_equal(count(t, "S00_", 4), 0);
    /* The GED's _EVT calls \_SB.PCI0.PCNT */
    static const uint8_t call[] = { 0x5c, 0x2f, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'P', 'C', 'N', 'T' };
    assert_int_equal(count(t, call, sizeof(call)), 1);
    /* PCNT: DVNT (PCIU, One); DVNT (PCID, 3) */
    static const uint8_t up[] = { 'D', 'V', 'N', 'T', 'P', 'C', 'I', 'U', 0x01 };
    static const uint8_t down[] = { 'D', 'V', 'N', 'T', 'P', 'C', 'I', 'D', 0x0a, 0x03 };
    assert_int_equal(count(t, up, sizeof(up)), 1);
    assert_int_equal(count(t, down, sizeof(down)), 1);
}

static void test_aml_no_slots(void **state)
{
    g_autoptr(GByteArray) t = tables(0);
    assert_null(find(t, "PCST", 4, 0));
    assert_null(find(t, "PCNT", 4, 0));
    assert_null(find(t, "_EJ0", 4, 0));
    g_autoptr(GByteArray) all = tables(ACPI_PCIHP_ALL_SLOTS);
    assert_int_equal(count(all, "_EJ0", 4), 31);
    assert_int_equal(count(all, "_SUN", 4), 31);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plug_sets_up_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_device_not_notified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrow_read_clears_its_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplug_request_and_eject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eject_only_removable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_registers_inert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_and_state, setup, teardown),
        cmocka_unit_test(test_aml_slots),
        cmocka_unit_test(test_aml_no_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
