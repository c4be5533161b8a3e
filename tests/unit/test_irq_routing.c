#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/device.h"
#include "devices/ioapic.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"

#define MAX_ENTRIES 2048

struct fake {
    unsigned commits;
    unsigned nr;
    struct kvm_irq_routing_entry e[MAX_ENTRIES];
    int fail_with;              /* next set_routing fails with this (negative) */
    int irqfd_fd, irqfd_gsi, irqfd_calls;
    bool irqfd_assign;
    struct irq_msi_msg sent[16];
    unsigned nsent;
};

static int fake_set_routing(void *opaque, const struct kvm_irq_routing *t)
{
    struct fake *f = opaque;
    if (f->fail_with) {
        int r = f->fail_with;
        f->fail_with = 0;
        return r;
    }
    assert_true(t->nr <= MAX_ENTRIES);
    f->commits++;
    f->nr = t->nr;
    memcpy(f->e, t->entries, t->nr * sizeof(t->entries[0]));
    return 0;
}

static int fake_irqfd(void *opaque, int fd, unsigned gsi, bool assign)
{
    struct fake *f = opaque;
    f->irqfd_calls++;
    f->irqfd_fd = fd;
    f->irqfd_gsi = (int)gsi;
    f->irqfd_assign = assign;
    return 0;
}

static int fake_signal_msi(void *opaque, const struct irq_msi_msg *m)
{
    struct fake *f = opaque;
    assert_true(f->nsent < 16);
    f->sent[f->nsent++] = *m;
    return 0;
}

static struct irq_routing *make(struct fake *f, bool split)
{
    memset(f, 0, sizeof(*f));
    struct irq_routing *r = irq_routing_create(-1, split);
    struct irq_routing_backend be = { fake_set_routing, fake_irqfd, fake_signal_msi, f };
    irq_routing_set_backend(r, &be);
    return r;
}

/* The committed entry for gsi of the given type, or NULL. */
static const struct kvm_irq_routing_entry *find(const struct fake *f, unsigned gsi, uint32_t type)
{
    for (unsigned i = 0; i < f->nr; i++)
        if (f->e[i].gsi == gsi && f->e[i].type == type)
            return &f->e[i];
    return NULL;
}

static void assert_msi(const struct fake *f, unsigned gsi, uint64_t addr, uint32_t data)
{
    const struct kvm_irq_routing_entry *e = find(f, gsi, KVM_IRQ_ROUTING_MSI);
    assert_non_null(e);
    assert_int_equal(e->u.msi.address_lo, (uint32_t)addr);
    assert_int_equal(e->u.msi.address_hi, (uint32_t)(addr >> 32));
    assert_int_equal(e->u.msi.data, data);
}

static void set_all_pins(struct irq_routing *r, uint32_t data_base)
{
    struct irq_msi_msg m[IOAPIC_NUM_PINS];
    for (unsigned i = 0; i < IOAPIC_NUM_PINS; i++)
        m[i] = (struct irq_msi_msg){ 0xfee00000u, data_base + i };
    assert_int_equal(irq_routing_set_pins(r, m, IOAPIC_NUM_PINS), 0);
}

static void test_pins_are_msi_routes(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, true);
    set_all_pins(r, 0x30);
    assert_int_equal(f.nr, IOAPIC_NUM_PINS);
    for (unsigned i = 0; i < IOAPIC_NUM_PINS; i++)
        assert_msi(&f, i, 0xfee00000u, 0x30 + i);
    struct irq_msi_msg one = { 0xfee01000u, 0x8041 };
    assert_int_equal(irq_routing_set_pin(r, 7, &one), 0);
    assert_msi(&f, 7, 0xfee01000u, 0x8041);
    assert_int_equal(irq_routing_set_pin(r, IOAPIC_NUM_PINS, &one), -EINVAL);
    irq_routing_destroy(r);
}

/* KVM_SET_GSI_ROUTING replaces the whole table: changing one kind of route
 * must carry the other along. */
static void test_msi_and_pins_coexist(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, true);
    set_all_pins(r, 0x30);
    int a = irq_routing_msi_alloc(r), b = irq_routing_msi_alloc(r);
    assert_int_equal(a, IOAPIC_NUM_PINS);
    assert_int_equal(b, IOAPIC_NUM_PINS + 1);
    unsigned commits = f.commits;
    struct irq_msi_msg m = { 0xfee02000u, 0x51 };
    assert_int_equal(irq_routing_msi_set(r, (unsigned)b, &m), 0);
    assert_int_equal(f.commits, commits + 1);
    assert_int_equal(f.nr, IOAPIC_NUM_PINS + 1);    /* a has no route yet */
    assert_msi(&f, (unsigned)b, 0xfee02000u, 0x51);
    assert_msi(&f, 3, 0xfee00000u, 0x33);
    assert_null(find(&f, (unsigned)a, KVM_IRQ_ROUTING_MSI));

    /* The same message again is not a new table. */
    assert_int_equal(irq_routing_msi_set(r, (unsigned)b, &m), 0);
    assert_int_equal(f.commits, commits + 1);

    set_all_pins(r, 0x60);
    assert_msi(&f, (unsigned)b, 0xfee02000u, 0x51);
    assert_msi(&f, 3, 0xfee00000u, 0x63);
    assert_int_equal(irq_routing_nr_routes(r), IOAPIC_NUM_PINS + 1);

    irq_routing_msi_free(r, (unsigned)b);
    assert_null(find(&f, (unsigned)b, KVM_IRQ_ROUTING_MSI));
    assert_int_equal(f.nr, IOAPIC_NUM_PINS);
    assert_int_equal(irq_routing_msi_set(r, (unsigned)b, &m), -EINVAL);    /* freed */
    assert_int_equal(irq_routing_msi_alloc(r), b);                         /* and reused */
    assert_int_equal(irq_routing_msi_set(r, 5, &m), -EINVAL);              /* a pin is not an MSI GSI */
    irq_routing_destroy(r);
}

static void test_alloc_exhaustion(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, true);
    for (unsigned i = IOAPIC_NUM_PINS; i < IRQ_ROUTING_MAX_GSI; i++)
        assert_int_equal(irq_routing_msi_alloc(r), (int)i);
    assert_int_equal(irq_routing_msi_alloc(r), -ENOSPC);
    irq_routing_msi_free(r, 100);
    assert_int_equal(irq_routing_msi_alloc(r), 100);
    irq_routing_destroy(r);
}

static void test_in_kernel_irqchip_routes(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, false);
    struct irq_msi_msg m = { 0xfee00000u, 0x41 };
    assert_int_equal(irq_routing_set_pin(r, 1, &m), -EINVAL);
    int g = irq_routing_msi_alloc(r);
    assert_int_equal(irq_routing_msi_set(r, (unsigned)g, &m), 0);
    assert_int_equal(f.nr, 16 + IOAPIC_NUM_PINS + 1);
    const struct kvm_irq_routing_entry *e = find(&f, 10, KVM_IRQ_ROUTING_IRQCHIP);
    assert_non_null(e);
    assert_true(e->u.irqchip.irqchip == KVM_IRQCHIP_PIC_SLAVE || e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC);
    unsigned pic = 0, ioapic = 0;
    for (unsigned i = 0; i < f.nr; i++) {
        if (f.e[i].type != KVM_IRQ_ROUTING_IRQCHIP)
            continue;
        if (f.e[i].u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
            assert_int_equal(f.e[i].u.irqchip.pin, f.e[i].gsi);
            ioapic++;
        } else {
            assert_true(f.e[i].gsi < 16);
            assert_int_equal(f.e[i].u.irqchip.pin, f.e[i].gsi % 8);
            pic++;
        }
    }
    assert_int_equal(pic, 16);
    assert_int_equal(ioapic, IOAPIC_NUM_PINS);
    assert_msi(&f, (unsigned)g, 0xfee00000u, 0x41);
    irq_routing_destroy(r);
}

static void test_backend_failure_reported(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, true);
    set_all_pins(r, 0x30);
    int g = irq_routing_msi_alloc(r);
    f.fail_with = -ENOMEM;
    struct irq_msi_msg m = { 0xfee00000u, 0x41 };
    assert_int_equal(irq_routing_msi_set(r, (unsigned)g, &m), -ENOMEM);
    assert_int_equal(irq_routing_nr_routes(r), IOAPIC_NUM_PINS);
    irq_routing_destroy(r);
}

static void test_irqfd_and_signal(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, true);
    assert_int_equal(irq_routing_irqfd_attach(r, 9, 30), 0);
    assert_int_equal(f.irqfd_fd, 9);
    assert_int_equal(f.irqfd_gsi, 30);
    assert_true(f.irqfd_assign);
    assert_int_equal(irq_routing_irqfd_detach(r, 9, 30), 0);
    assert_false(f.irqfd_assign);
    assert_int_equal(irq_routing_irqfd_attach(r, -1, 30), -EINVAL);
    assert_int_equal(irq_routing_irqfd_attach(r, 9, IRQ_ROUTING_MAX_GSI), -EINVAL);
    assert_int_equal(f.irqfd_calls, 2);
    struct irq_msi_msg m = { 0xfee00000u, 0x99 };
    assert_int_equal(irq_routing_signal_msi(r, &m), 0);
    assert_int_equal(f.nsent, 1);
    assert_int_equal(f.sent[0].data, 0x99);
    irq_routing_destroy(r);
}

/* The IOAPIC no longer talks to KVM itself: its redirection entries land in
 * irq_routing's table and its MSIs leave through irq_routing. */
static void test_ioapic_uses_routing(void **state)
{
    struct fake f;
    struct irq_routing *r = make(&f, true);
    struct bus bus;
    bus_init(&bus, "mmio");
    struct ioapic *io = ioapic_create(r, &bus, LAYOUT_IOAPIC_ADDR);
    assert_non_null(io);
    assert_int_equal(f.nr, IOAPIC_NUM_PINS);      /* reset commits all pins */
    int g = irq_routing_msi_alloc(r);
    struct irq_msi_msg m = { 0xfee00000u, 0x77 };
    assert_int_equal(irq_routing_msi_set(r, (unsigned)g, &m), 0);

    /* Pin 4: vector 0x45, level, destination APIC 2, unmasked. */
    uint32_t sel = 0x11 + 2 * 4, hi = 2u << 24, lo = 0x45 | (1u << 15);
    assert_true(bus_write(&bus, LAYOUT_IOAPIC_ADDR, &sel, 4));
    assert_true(bus_write(&bus, LAYOUT_IOAPIC_ADDR + 0x10, &hi, 4));
    sel = 0x10 + 2 * 4;
    assert_true(bus_write(&bus, LAYOUT_IOAPIC_ADDR, &sel, 4));
    assert_true(bus_write(&bus, LAYOUT_IOAPIC_ADDR + 0x10, &lo, 4));
    assert_msi(&f, 4, 0xfee02000u, 0x45 | (1u << 15) | (1u << 14));
    assert_msi(&f, (unsigned)g, 0xfee00000u, 0x77);   /* the MSI route survived */

    ioapic_set_irq(io, 4, true);
    assert_int_equal(f.nsent, 1);
    assert_int_equal(f.sent[0].data & 0xff, 0x45);
    assert_int_equal(f.sent[0].addr, 0xfee02000u);

    struct device d = ioapic_device(io);
    d.ops->destroy(d.dev);
    bus_destroy(&bus);
    irq_routing_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pins_are_msi_routes),
        cmocka_unit_test(test_msi_and_pins_coexist),
        cmocka_unit_test(test_alloc_exhaustion),
        cmocka_unit_test(test_in_kernel_irqchip_routes),
        cmocka_unit_test(test_backend_failure_reported),
        cmocka_unit_test(test_irqfd_and_signal),
        cmocka_unit_test(test_ioapic_uses_routing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
