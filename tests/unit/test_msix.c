#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"
#include "vmm/state.h"

#define ECAM     0xe0000000ull
#define MMIO32   0xc0000000ull
#define DEVFN    (2 << 3)
#define NVEC     65
#define TABLE    0x0000u
#define PBA      0x2000u

struct fixture {
    struct bus pio, mmio;
    struct pci_host *host;
    struct irq_routing *routing;
    struct pci_device dev;
    struct msix *msix;
    unsigned cap;
    /* what the fake KVM saw */
    struct irq_msi_msg sent[64];
    unsigned nsent;
    struct kvm_irq_routing_entry routes[IRQ_ROUTING_MAX_GSI + 64];
    unsigned nroutes;
    bool irqfd_attached[IRQ_ROUTING_MAX_GSI];
    int irqfd_fd[IRQ_ROUTING_MAX_GSI];
    uint32_t dev_reads;
};

static int fake_set_routing(void *opaque, const struct kvm_irq_routing *t)
{
    struct fixture *f = opaque;
    f->nroutes = t->nr;
    memcpy(f->routes, t->entries, t->nr * sizeof(t->entries[0]));
    return 0;
}

static int fake_irqfd(void *opaque, int fd, unsigned gsi, bool assign)
{
    struct fixture *f = opaque;
    assert_true(gsi < IRQ_ROUTING_MAX_GSI);
    assert_true(f->irqfd_attached[gsi] != assign);     /* no double attach or detach */
    f->irqfd_attached[gsi] = assign;
    f->irqfd_fd[gsi] = fd;
    return 0;
}

static int fake_signal_msi(void *opaque, const struct irq_msi_msg *m)
{
    struct fixture *f = opaque;
    assert_true(f->nsent < 64);
    f->sent[f->nsent++] = *m;
    return 0;
}

static void dev_bar_read(struct pci_device *d, unsigned bar, uint64_t off, void *data, unsigned size)
{
    struct fixture *f = d->opaque;
    f->dev_reads++;
    memset(data, 0x5a, size);
}

static const struct pci_device_ops dev_ops = { .bar_read = dev_bar_read };

static void cfg_wr(struct fixture *f, unsigned off, uint32_t v, unsigned size)
{
    assert_true(bus_write(&f->mmio, ECAM + ((uint64_t)DEVFN << 12) + off, &v, size));
}

static uint32_t cfg_rd(struct fixture *f, unsigned off, unsigned size)
{
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, ECAM + ((uint64_t)DEVFN << 12) + off, &v, size));
    return v;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    bus_init(&f->pio, "pio");
    bus_init(&f->mmio, "mmio");
    struct pci_host_config c = {
        .ecam = { ECAM, 1ull << 28 }, .mmio32 = { MMIO32, 0x20000000 }, .io = { 0x1000, 0xf000 },
    };
    f->host = pci_host_create(&f->pio, &f->mmio, &c);
    f->routing = irq_routing_create(-1, true);
    struct irq_routing_backend be = { fake_set_routing, fake_irqfd, fake_signal_msi, f };
    irq_routing_set_backend(f->routing, &be);
    pci_device_init(&f->dev, "msixdev", &dev_ops, f, 0x1af4, 0x1041, 0x020000, 1);
    assert_int_equal(pci_device_add_bar(&f->dev, 0, PCI_BAR_MEM32, false, 0x4000), 0);
    f->msix = msix_create(&f->dev, f->routing, NVEC, 0, TABLE, 0, PBA);
    assert_non_null(f->msix);
    assert_int_equal(pci_host_add_device(f->host, &f->dev, 2), DEVFN);
    f->cap = pci_device_find_cap(&f->dev, PCI_CAP_ID_MSIX);
    assert_int_not_equal(f->cap, 0);
    cfg_wr(f, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    msix_destroy(f->msix);
    struct device d = pci_host_device(f->host);
    d.ops->destroy(d.dev);
    irq_routing_destroy(f->routing);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    free(f);
    return 0;
}

static void tbl_wr(struct fixture *f, unsigned vec, unsigned word, uint32_t v)
{
    assert_true(bus_write(&f->mmio, MMIO32 + TABLE + vec * 16 + word * 4, &v, 4));
}

static uint32_t tbl_rd(struct fixture *f, unsigned vec, unsigned word)
{
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, MMIO32 + TABLE + vec * 16 + word * 4, &v, 4));
    return v;
}

static uint64_t pba_rd(struct fixture *f, unsigned qword)
{
    uint64_t v = 0;
    assert_true(bus_read(&f->mmio, MMIO32 + PBA + qword * 8, &v, 8));
    return v;
}

static void program(struct fixture *f, unsigned vec, unsigned dest, uint32_t data)
{
    tbl_wr(f, vec, 0, 0xfee00000u | dest << 12);
    tbl_wr(f, vec, 1, 0);
    tbl_wr(f, vec, 2, data);
}

static void set_control(struct fixture *f, bool enable, bool fmask)
{
    cfg_wr(f, f->cap + 2, (enable ? 0x8000u : 0) | (fmask ? 0x4000u : 0), 2);
}

static const struct kvm_irq_routing_entry *route(struct fixture *f, unsigned gsi)
{
    for (unsigned i = 0; i < f->nroutes; i++)
        if (f->routes[i].gsi == gsi)
            return &f->routes[i];
    return NULL;
}

static void test_capability(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cfg_rd(f, f->cap, 1), PCI_CAP_ID_MSIX);
    assert_int_equal(cfg_rd(f, f->cap + 2, 2), NVEC - 1);
    assert_int_equal(cfg_rd(f, f->cap + 4, 4), TABLE | 0);
    assert_int_equal(cfg_rd(f, f->cap + 8, 4), PBA | 0);
    cfg_wr(f, f->cap + 2, 0xffff, 2);               /* only enable and function mask are writable */
    assert_int_equal(cfg_rd(f, f->cap + 2, 2), 0xc000 | (NVEC - 1));
    assert_true(msix_enabled(f->msix));
    cfg_wr(f, f->cap + 4, 0xffffffff, 4);
    assert_int_equal(cfg_rd(f, f->cap + 4, 4), TABLE);
    assert_int_equal(msix_nr_vectors(f->msix), NVEC);

    /* Invalid layouts are refused. */
    struct pci_device d;
    pci_device_init(&d, "bad", NULL, NULL, 1, 2, 0, 0);
    assert_null(msix_create(&d, NULL, 4, 0, 0, 0, 0x800));                 /* no BAR 0 */
    assert_int_equal(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, false, 0x1000), 0);
    assert_null(msix_create(&d, NULL, 4, 0, 0, 0, 0x20));                  /* PBA inside the table */
    assert_null(msix_create(&d, NULL, 256, 0, 0, 0, 0xff8));               /* table beyond the BAR */
    assert_null(msix_create(&d, NULL, 4, 0, 4, 0, 0x800));                 /* misaligned */
    assert_null(msix_create(&d, NULL, 0, 0, 0, 0, 0x800));
    assert_null(msix_create(&d, NULL, MSIX_MAX_VECTORS + 1, 0, 0, 0, 0x800));
    struct msix *ok = msix_create(&d, NULL, 4, 0, 0, 0, 0x800);
    assert_non_null(ok);
    assert_null(msix_create(&d, NULL, 4, 0, 0, 0, 0x800));                 /* one per function */
    msix_destroy(ok);
}

static void test_table_access(void **state)
{
    struct fixture *f = *state;
    /* Power-on: every vector masked, nothing programmed. */
    for (unsigned v = 0; v < NVEC; v++) {
        assert_int_equal(tbl_rd(f, v, 3), 1);
        assert_int_equal(tbl_rd(f, v, 0), 0);
    }
    program(f, 64, 3, 0x4051);
    assert_int_equal(tbl_rd(f, 64, 0), 0xfee03000u);
    assert_int_equal(tbl_rd(f, 64, 2), 0x4051);
    /* Address bits 1:0 and the reserved control bits are read-only. */
    tbl_wr(f, 64, 0, 0xfee03003u);
    assert_int_equal(tbl_rd(f, 64, 0), 0xfee03000u);
    tbl_wr(f, 64, 3, 0xfffffffe);
    assert_int_equal(tbl_rd(f, 64, 3), 0);
    /* 64-bit accesses see address low and high together. */
    uint64_t q = 0x00000000fee05000ull;
    assert_true(bus_write(&f->mmio, MMIO32 + TABLE + 5 * 16, &q, 8));
    q = 0;
    assert_true(bus_read(&f->mmio, MMIO32 + TABLE + 5 * 16, &q, 8));
    assert_int_equal(q, 0xfee05000ull);
    /* Past the table and the PBA is the device's own register space. */
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, MMIO32 + TABLE + NVEC * 16, &v, 4));
    assert_int_equal(v, 0x5a5a5a5a);
    assert_int_equal(f->dev_reads, 1);
    /* The PBA is read-only; 65 vectors take two qwords. */
    uint64_t ones = ~0ull;
    assert_true(bus_write(&f->mmio, MMIO32 + PBA, &ones, 8));
    assert_int_equal(pba_rd(f, 0), 0);
    assert_int_equal(pba_rd(f, 1), 0);
    assert_int_equal(f->dev_reads, 1);
    assert_true(bus_read(&f->mmio, MMIO32 + PBA + 16, &v, 4));
    assert_int_equal(f->dev_reads, 2);
}

/* A masked vector's interrupt waits in the PBA and leaves on unmask. */
static void test_vector_mask_and_pending(void **state)
{
    struct fixture *f = *state;
    set_control(f, true, false);
    program(f, 3, 1, 0x0041);
    msix_notify(f->msix, 3);
    assert_int_equal(f->nsent, 0);
    assert_true(msix_vector_pending(f->msix, 3));
    assert_int_equal(pba_rd(f, 0), 1ull << 3);

    tbl_wr(f, 3, 3, 0);                              /* unmask */
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].addr, 0xfee01000u);
    assert_int_equal(f->sent[0].data, 0x41);
    assert_int_equal(pba_rd(f, 0), 0);
    assert_false(msix_vector_masked(f->msix, 3));

    msix_notify(f->msix, 3);                         /* unmasked: straight out */
    assert_int_equal(f->nsent, 2);
    tbl_wr(f, 3, 3, 1);
    tbl_wr(f, 3, 3, 0);                              /* nothing pending: nothing sent */
    assert_int_equal(f->nsent, 2);

    /* Vector 64 lives in the PBA's second qword. */
    program(f, 64, 0, 0x0042);
    msix_notify(f->msix, 64);
    assert_int_equal(pba_rd(f, 1), 1);
    msix_notify(f->msix, NVEC);                      /* out of range: ignored */
    assert_int_equal(f->nsent, 2);
}

static void test_function_mask_and_enable(void **state)
{
    struct fixture *f = *state;
    program(f, 0, 0, 0x0030);
    tbl_wr(f, 0, 3, 0);
    msix_notify(f->msix, 0);                         /* MSI-X disabled */
    assert_int_equal(f->nsent, 0);
    assert_true(msix_vector_masked(f->msix, 0));
    set_control(f, true, true);                      /* enabled but function-masked */
    assert_int_equal(f->nsent, 0);
    msix_notify(f->msix, 0);
    assert_int_equal(pba_rd(f, 0), 1);
    set_control(f, true, false);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].data, 0x30);
    assert_int_equal(pba_rd(f, 0), 0);
}

/* Messages that are not LAPIC addresses are never delivered. */
static void test_bad_message(void **state)
{
    struct fixture *f = *state;
    set_control(f, true, false);
    tbl_wr(f, 7, 0, 0x00001000);                     /* RAM */
    tbl_wr(f, 7, 3, 0);
    msix_notify(f->msix, 7);
    assert_int_equal(f->nsent, 0);
    assert_true(msix_vector_pending(f->msix, 7));
    tbl_wr(f, 7, 1, 0x1);                            /* high address bits */
    tbl_wr(f, 7, 0, 0xfee00000u);
    assert_int_equal(f->nsent, 0);
    tbl_wr(f, 7, 1, 0);                              /* now valid: the pending one leaves */
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].addr, 0xfee00000u);
}

/* The irqfd path: a GSI routed to the vector's message, the eventfd attached
 * while the vector is live, detached while masked, the count turned into a
 * pending bit and delivered on unmask, the route following rewrites. */
static void test_irqfd(void **state)
{
    struct fixture *f = *state;
    set_control(f, true, false);
    program(f, 2, 0, 0x0050);
    int fd = msix_vector_irqfd(f->msix, 2);
    assert_true(fd >= 0);
    assert_int_equal(msix_vector_irqfd(f->msix, 2), fd);     /* same one again */
    assert_int_equal(msix_vector_irqfd(f->msix, NVEC), -EINVAL);
    unsigned gsi = IOAPIC_NUM_PINS;                          /* the first MSI GSI */
    assert_false(f->irqfd_attached[gsi]);                    /* masked: not attached, no route needed */

    tbl_wr(f, 2, 3, 0);
    assert_true(f->irqfd_attached[gsi]);
    assert_int_equal(f->irqfd_fd[gsi], fd);
    const struct kvm_irq_routing_entry *e = route(f, gsi);
    assert_non_null(e);
    assert_int_equal(e->type, KVM_IRQ_ROUTING_MSI);
    assert_int_equal(e->u.msi.address_lo, 0xfee00000u);
    assert_int_equal(e->u.msi.data, 0x50);

    /* The guest retargets the live vector: the route follows. */
    tbl_wr(f, 2, 0, 0xfee02000u);
    tbl_wr(f, 2, 2, 0x0051);
    e = route(f, gsi);
    assert_int_equal(e->u.msi.address_lo, 0xfee02000u);
    assert_int_equal(e->u.msi.data, 0x51);

    /* Masked: detached; what the I/O loop signals becomes a pending bit. */
    tbl_wr(f, 2, 3, 1);
    assert_false(f->irqfd_attached[gsi]);
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(pba_rd(f, 0), 1ull << 2);
    assert_int_equal(f->nsent, 0);
    /* A rewrite while masked reaches the route on unmask. */
    tbl_wr(f, 2, 2, 0x0052);
    tbl_wr(f, 2, 3, 0);
    assert_true(f->irqfd_attached[gsi]);
    assert_int_equal(route(f, gsi)->u.msi.data, 0x52);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].data, 0x52);
    assert_int_equal(pba_rd(f, 0), 0);

    /* Disabling MSI-X detaches too; a reset masks and clears everything. */
    set_control(f, false, false);
    assert_false(f->irqfd_attached[gsi]);
    set_control(f, true, false);
    assert_true(f->irqfd_attached[gsi]);
    struct device h = pci_host_device(f->host);
    h.ops->reset(h.dev);
    assert_false(f->irqfd_attached[gsi]);
    assert_false(msix_enabled(f->msix));
    cfg_wr(f, PCI_CFG_COMMAND, PCI_CMD_MEMORY, 2);    /* the reset turned decode off */
    assert_int_equal(tbl_rd(f, 2, 3), 1);
    assert_int_equal(tbl_rd(f, 2, 2), 0);

    /* Destroy frees the route. */
    msix_destroy(f->msix);
    f->msix = NULL;
    assert_null(route(f, gsi));
}

/* The table and pending bits travel with msix_save/load; enable and mask
 * with the host's config space. */
static void test_save_load(void **state)
{
    struct fixture *f = *state;
    set_control(f, true, false);
    program(f, 3, 2, 0x0061);
    msix_notify(f->msix, 3);                         /* masked: pending */
    struct state_writer *w = state_writer_new();
    struct device h = pci_host_device(f->host);
    assert_int_equal(h.ops->save(h.dev, w), 0);
    assert_int_equal(msix_save(f->msix, w), 0);
    g_autoptr(GBytes) b = state_writer_finish(w);

    h.ops->reset(h.dev);
    assert_false(msix_enabled(f->msix));
    assert_false(msix_vector_pending(f->msix, 3));

    struct state_reader *r = state_reader_new(b, NULL);
    assert_non_null(r);
    assert_int_equal(h.ops->load(h.dev, r), 0);
    assert_int_equal(msix_load(f->msix, r), 0);
    state_reader_free(r);
    assert_true(msix_enabled(f->msix));
    assert_true(msix_vector_pending(f->msix, 3));
    assert_int_equal(tbl_rd(f, 3, 0), 0xfee02000u);
    assert_int_equal(tbl_rd(f, 3, 2), 0x61);
    assert_int_equal(f->nsent, 0);
    tbl_wr(f, 3, 3, 0);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].data, 0x61);

    /* A stream for a different vector count is refused. */
    struct pci_device d;
    pci_device_init(&d, "small", NULL, NULL, 1, 2, 0, 0);
    assert_int_equal(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, false, 0x1000), 0);
    struct msix *small = msix_create(&d, NULL, 4, 0, 0, 0, 0x800);
    r = state_reader_new(b, NULL);
    assert_int_equal(h.ops->load(h.dev, r), 0);
    assert_int_equal(msix_load(small, r), -EINVAL);
    state_reader_free(r);
    msix_destroy(small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_mask_and_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_mask_and_enable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_irqfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
