#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define FADT_FLAG_PWR_BUTTON    (1u << 4)
#define FADT_FLAG_RESET_REG     (1u << 10)
#define FADT_FLAG_HW_REDUCED    (1u << 20)

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

struct parsed {
    const uint8_t *buf;
    size_t len;
    uint64_t base;
    size_t xsdt, fadt, madt, dsdt;  /* offsets */
};

/* Offset of the table a guest pointer names, checked to lie in the buffer
 * with a valid header, checksum and OEM ID. */
static size_t table_at(const struct parsed *p, uint64_t gpa, const char *sig)
{
    assert_true(gpa >= p->base);
    size_t off = gpa - p->base;
    assert_true(off + 36 <= p->len);
    assert_memory_equal(p->buf + off, sig, 4);
    uint32_t len = (uint32_t)le(p->buf + off + 4, 4);
    assert_true(len >= 36 && off + len <= p->len);
    assert_int_equal(sum(p->buf + off, len), 0);
    assert_memory_equal(p->buf + off + 10, "VMMVMM", 6);
    return off;
}

static void parse(struct parsed *p, const GByteArray *t, uint64_t base)
{
    p->buf = t->data;
    p->len = t->len;
    p->base = base;
    assert_true(t->len >= 36);
    assert_true(t->len <= LAYOUT_ACPI_END - LAYOUT_ACPI_START);

    const uint8_t *r = t->data;
    assert_memory_equal(r, "RSD PTR ", 8);
    assert_int_equal(sum(r, 20), 0);
    assert_int_equal(sum(r, 36), 0);
    assert_memory_equal(r + 9, "VMMVMM", 6);
    assert_int_equal(r[15], 2);
    assert_int_equal(le(r + 20, 4), 36);

    p->xsdt = table_at(p, le(r + 24, 8), "XSDT");
    uint32_t xlen = (uint32_t)le(p->buf + p->xsdt + 4, 4);
    assert_int_equal(xlen, 36 + 2 * 8);
    p->fadt = table_at(p, le(p->buf + p->xsdt + 36, 8), "FACP");
    p->madt = table_at(p, le(p->buf + p->xsdt + 44, 8), "APIC");
    p->dsdt = table_at(p, le(p->buf + p->fadt + 140, 8), "DSDT");
    /* RSDP first, then XSDT, FADT, MADT, DSDT, none overlapping. */
    assert_true(p->xsdt >= 36);
    assert_true(p->fadt >= p->xsdt + xlen);
    assert_true(p->madt >= p->fadt + le(p->buf + p->fadt + 4, 4));
    assert_true(p->dsdt >= p->madt + le(p->buf + p->madt + 4, 4));
    assert_int_equal(p->dsdt + le(p->buf + p->dsdt + 4, 4), p->len);
}

static void check_gas_io8(const uint8_t *g, uint16_t port)
{
    assert_int_equal(g[0], 1);     /* SystemIO */
    assert_int_equal(g[1], 8);     /* bit width */
    assert_int_equal(g[2], 0);     /* bit offset */
    assert_int_equal(g[3], 1);     /* byte access */
    assert_int_equal(le(g + 4, 8), port);
}

static void check_fadt(const struct parsed *p)
{
    const uint8_t *f = p->buf + p->fadt;
    assert_int_equal(le(f + 4, 4), 276);
    assert_int_equal(f[8], 6);                      /* revision */
    assert_int_equal(f[131] & 0x0f, 3);             /* minor: ACPI 6.3 */
    uint32_t flags = (uint32_t)le(f + 112, 4);
    assert_true(flags & FADT_FLAG_HW_REDUCED);
    assert_true(flags & FADT_FLAG_RESET_REG);
    assert_true(flags & FADT_FLAG_PWR_BUTTON);
    assert_int_equal(le(f + 109, 2), 0x0004);       /* no VGA, no 8042 (reset only); MSI ok, CMOS RTC present */
    assert_int_equal(le(f + 36, 4), 0);             /* no FACS */
    assert_int_equal(le(f + 132, 8), 0);
    assert_int_equal(le(f + 40, 4), 0);             /* X_DSDT only */
    check_gas_io8(f + 116, PORT_ACPI_RESET);
    assert_int_equal(f[128], ACPI_RESET_VALUE);
    check_gas_io8(f + 244, PORT_ACPI_SLEEP_CTL);
    check_gas_io8(f + 256, PORT_ACPI_SLEEP_STS);
    assert_int_not_equal(le(f + 268, 8), 0);        /* hypervisor vendor identity */
    /* Hardware-reduced: no PM1/GPE/PM timer blocks. */
    for (size_t o = 56; o < 88; o++)
        assert_int_equal(f[o], 0);
    for (size_t o = 148; o < 244; o++)
        assert_int_equal(f[o], 0);
}

static void check_madt_present(const struct parsed *p, const bool *present, unsigned boot, unsigned max)
{
    const uint8_t *m = p->buf + p->madt;
    uint32_t len = (uint32_t)le(m + 4, 4);
    assert_int_equal(m[8], 5);
    assert_int_equal(le(m + 36, 4), LAYOUT_LAPIC_ADDR);
    assert_int_equal(le(m + 40, 4), 0);             /* no PCAT_COMPAT: no 8259 */
    unsigned lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
    size_t o = 44;
    while (o < len) {
        assert_true(o + 2 <= len);
        uint8_t type = m[o], elen = m[o + 1];
        assert_true(elen >= 2 && o + elen <= len);
        switch (type) {
        case 0:
            assert_int_equal(elen, 8);
            assert_int_equal(m[o + 2], lapics);     /* processor UID */
            assert_int_equal(m[o + 3], lapics);     /* APIC ID */
            /* enabled / online-capable */
            assert_int_equal(le(m + o + 4, 4), (present ? present[lapics] : lapics < boot) ? 1 : 2);
            lapics++;
            break;
        case 1:
            assert_int_equal(elen, 12);
            assert_int_equal(m[o + 2], IOAPIC_ID);
            assert_int_equal(le(m + o + 4, 4), LAYOUT_IOAPIC_ADDR);
            assert_int_equal(le(m + o + 8, 4), 0);
            ioapics++;
            break;
        case 2:
            assert_int_equal(elen, 10);
            assert_int_equal(m[o + 2], 0);          /* ISA */
            assert_int_equal(m[o + 3], 0);          /* IRQ0 */
            assert_int_equal(le(m + o + 4, 4), 2);  /* GSI2 */
            assert_int_equal(le(m + o + 8, 2), 0x0005);
            overrides++;
            break;
        case 4:
            assert_int_equal(elen, 6);
            assert_int_equal(m[o + 2], 0xff);       /* all processors */
            assert_int_equal(m[o + 5], 1);          /* LINT1 */
            nmis++;
            break;
        default:
            fail_msg("unexpected MADT entry type %u", type);
        }
        o += elen;
    }
    assert_int_equal(o, len);
    assert_int_equal(lapics, max);
    assert_int_equal(ioapics, 1);
    assert_int_equal(overrides, 1);
    assert_int_equal(nmis, 1);
}

static void check_madt(const struct parsed *p, unsigned boot, unsigned max)
{
    check_madt_present(p, NULL, boot, max);
}

static bool dsdt_has(const struct parsed *p, const char *s)
{
    const uint8_t *d = p->buf + p->dsdt;
    size_t len = le(d + 4, 4);
    return memmem(d + 36, len - 36, s, strlen(s)) != NULL;
}

static void check_dsdt(const struct parsed *p, bool serial)
{
    const uint8_t *d = p->buf + p->dsdt;
    assert_int_equal(d[8], 2);                      /* 64-bit integers */
    assert_int_equal(dsdt_has(p, "COM1"), serial);
    assert_true(dsdt_has(p, "RTC_"));
    assert_false(dsdt_has(p, "KBD_"));               /* the i8042 is not described: reset only */
    assert_true(dsdt_has(p, "PWRB"));
    assert_true(dsdt_has(p, "GED0"));
    assert_true(dsdt_has(p, "ACPI0013"));
    assert_true(dsdt_has(p, "_EVT"));
    assert_true(dsdt_has(p, "\\_S5_"));
}

static void check_config(unsigned boot, unsigned max, bool serial, uint64_t base)
{
    struct acpi_config c = { .nr_cpus_boot = boot, .nr_cpus_max = max, .serial = serial };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, base);
    struct parsed p;
    parse(&p, t, base);
    check_fadt(&p);
    check_madt(&p, boot, max);
    check_dsdt(&p, serial);
}

static void test_cpu_counts(void **state)
{
    static const unsigned cfg[][2] = { { 1, 1 }, { 2, 2 }, { 4, 4 }, { 255, 255 }, { 2, 8 }, { 1, 255 } };
    for (size_t i = 0; i < G_N_ELEMENTS(cfg); i++)
        check_config(cfg[i][0], cfg[i][1], i % 2 == 0, LAYOUT_ACPI_START);
}

static void test_pointers_follow_base(void **state)
{
    struct acpi_config c = { .nr_cpus_boot = 2, .nr_cpus_max = 4, .serial = true };
    g_autoptr(GByteArray) a = acpi_build_tables(&c, LAYOUT_ACPI_START);
    g_autoptr(GByteArray) b = acpi_build_tables(&c, 0x7ff00000);
    struct parsed pa, pb;
    parse(&pa, a, LAYOUT_ACPI_START);
    parse(&pb, b, 0x7ff00000);
    /* Same layout, different absolute pointers. */
    assert_int_equal(a->len, b->len);
    assert_int_equal(pa.xsdt, pb.xsdt);
    assert_int_equal(pa.dsdt, pb.dsdt);
    assert_int_equal(le(b->data + 24, 8), 0x7ff00000 + pb.xsdt);
    assert_memory_equal(a->data + pa.dsdt, b->data + pb.dsdt, le(a->data + pa.dsdt + 4, 4));

    /* Deterministic, padding included: the same config gives the same bytes. */
    g_autoptr(GByteArray) again = acpi_build_tables(&c, LAYOUT_ACPI_START);
    assert_int_equal(again->len, a->len);
    assert_memory_equal(again->data, a->data, a->len);
}

static void test_max_below_boot_counts_boot(void **state)
{
    /* nr_cpus_max 0 (unset) still describes every boot CPU. */
    check_config(3, 3, true, LAYOUT_ACPI_START);
    struct acpi_config c = { .nr_cpus_boot = 3, .nr_cpus_max = 0, .serial = true };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    struct parsed p;
    parse(&p, t, LAYOUT_ACPI_START);
    check_madt(&p, 3, 3);
}

static void test_install(void **state)
{
    struct guest_memory gm;
    g_autoptr(GError) err = NULL;
    assert_int_equal(guest_memory_create(&gm, 2 << 20, false, false, &err), 0);
    struct acpi_config c = { .nr_cpus_boot = 4, .nr_cpus_max = 8, .serial = true };
    uint64_t rsdp = 0;
    assert_int_equal(acpi_install(&gm, &c, &rsdp, &err), 0);
    assert_null(err);
    assert_int_equal(rsdp, LAYOUT_ACPI_START);

    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    g_autofree uint8_t *got = g_malloc(t->len);
    assert_int_equal(guest_memory_read(&gm, LAYOUT_ACPI_START, got, t->len), 0);
    assert_memory_equal(got, t->data, t->len);
    assert_true(guest_memory_page_dirty(&gm, LAYOUT_ACPI_START));
    guest_memory_destroy(&gm);
}

static void test_install_without_ram_fails(void **state)
{
    struct guest_memory gm;
    g_autoptr(GError) err = NULL;
    assert_int_equal(guest_memory_create(&gm, 512 << 10, false, false, &err), 0);
    struct acpi_config c = { .nr_cpus_boot = 1, .nr_cpus_max = 1, .serial = false };
    uint64_t rsdp = 0;
    assert_true(acpi_install(&gm, &c, &rsdp, &err) < 0);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "ACPI"));
    assert_int_equal(rsdp, 0);
    guest_memory_destroy(&gm);
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t len)
{
    return memmem(hay, n, needle, len) != NULL;
}

/* With a PCI host bridge: the XSDT's third entry is an MCFG describing the
 * ECAM, and the DSDT has PCI0 with its windows and _OSC. */
static void test_pci_tables(void **state)
{
    struct acpi_config c = { .nr_cpus_boot = 255, .nr_cpus_max = 255, .serial = true, .pci = true,
                             .pci_mmio64_base = 0x140000000ull, .pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    assert_true(t->len <= LAYOUT_ACPI_END - LAYOUT_ACPI_START);
    struct parsed p = { .buf = t->data, .len = t->len, .base = LAYOUT_ACPI_START };
    p.xsdt = table_at(&p, le(t->data + 24, 8), "XSDT");
    assert_int_equal(le(t->data + p.xsdt + 4, 4), 36 + 3 * 8);
    p.fadt = table_at(&p, le(t->data + p.xsdt + 36, 8), "FACP");
    p.dsdt = table_at(&p, le(t->data + p.fadt + 140, 8), "DSDT");
    size_t mcfg = table_at(&p, le(t->data + p.xsdt + 52, 8), "MCFG");
    const uint8_t *m = t->data + mcfg;
    assert_int_equal(le(m + 4, 4), 60);
    assert_int_equal(m[8], 1);
    assert_int_equal(le(m + 36, 8), 0);                         /* reserved */
    assert_int_equal(le(m + 44, 8), LAYOUT_PCIE_ECAM_START);
    assert_int_equal(le(m + 52, 2), 0);                         /* segment */
    assert_int_equal(m[54], 0);
    assert_int_equal(m[55], 0);     /* end bus: bus 0 only (layout.h says why) */

    const uint8_t *d = t->data + p.dsdt;
    size_t dlen = le(d + 4, 4);
    uint8_t eisa[5] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08 };        /* DWordConst EisaId("PNP0A08") */
    assert_true(contains(d, dlen, "PCI0", 4));
    assert_true(contains(d, dlen, eisa, 5));
    eisa[4] = 0x03;                                             /* PNP0A03 */
    assert_true(contains(d, dlen, eisa, 5));
    static const uint8_t osc_uuid[16] = { 0x5b, 0x4d, 0xdb, 0x33, 0xf7, 0x1f, 0x1c, 0x40,
                                          0x96, 0x57, 0x74, 0x41, 0xc0, 0x3d, 0xd7, 0x66 };
    assert_true(contains(d, dlen, "_OSC", 4));
    assert_true(contains(d, dlen, osc_uuid, 16));
    uint64_t min64 = 0x140000000ull, max64 = min64 + LAYOUT_PCI_MMIO64_SIZE - 1;
    uint32_t min32 = LAYOUT_PCI_MMIO32_START, max32 = LAYOUT_PCI_MMIO32_START + LAYOUT_PCI_MMIO32_SIZE - 1;
    assert_true(contains(d, dlen, &min64, 8));
    assert_true(contains(d, dlen, &max64, 8));
    assert_true(contains(d, dlen, &min32, 4));
    assert_true(contains(d, dlen, &max32, 4));

    /* Without PCI nothing of it is there. */
    c.pci = false;
    g_autoptr(GByteArray) np = acpi_build_tables(&c, LAYOUT_ACPI_START);
    assert_false(contains(np->data, np->len, "MCFG", 4));
    assert_false(contains(np->data, np->len, "PCI0", 4));
}

static unsigned count(const uint8_t *hay, size_t n, const void *needle, size_t len)
{
    unsigned c = 0;
    for (const uint8_t *h = hay; (h = memmem(h, n - (size_t)(h - hay), needle, len)); h++)
        c++;
    return c;
}

static void dsdt_of(const GByteArray *t, const uint8_t **d, size_t *len)
{
    /* XSDT → FADT (its first entry) → X_DSDT, with or without an MCFG. */
    struct parsed p = { .buf = t->data, .len = t->len, .base = LAYOUT_ACPI_START };
    p.xsdt = table_at(&p, le(t->data + 24, 8), "XSDT");
    p.fadt = table_at(&p, le(t->data + p.xsdt + 36, 8), "FACP");
    p.dsdt = table_at(&p, le(t->data + p.fadt + 140, 8), "DSDT");
    *d = t->data + p.dsdt;
    *len = le(*d + 4, 4);
}

/* CPU hotplug: boot=1, max=3. The controller's region and fields, a
 * processor device per possible CPU with its _MAT, _EJ0 on the hot-pluggable
 * ones, and the GED calling the scan. */
static void test_cpu_hotplug_aml(void **state)
{
    struct acpi_config c = { .nr_cpus_boot = 1, .nr_cpus_max = 3, .serial = true, .pci = true };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    const uint8_t *d;
    size_t n;
    dsdt_of(t, &d, &n);
    /* OperationRegion (CPHR, SystemIO, 0x0CD8, 0x20) */
    static const uint8_t region[] = { 0x5b, 0x80, 'C', 'P', 'H', 'R', 0x01, 0x0b, 0xd8, 0x0c, 0x0a, 0x20 };
    assert_int_equal(count(d, n, region, sizeof(region)), 1);
    /* Field (CPHR, ByteAcc, NoLock, WriteAsZeros) { CSEL 32, CPEN 1, CINS 1, CRMV 1, CEJ0 1 } */
    static const uint8_t field[] = { 'C', 'P', 'H', 'R', 0x41, 'C', 'S', 'E', 'L', 0x20, 'C', 'P', 'E', 'N', 0x01,
                                     'C', 'I', 'N', 'S', 0x01, 'C', 'R', 'M', 'V', 0x01, 'C', 'E', 'J', '0', 0x01 };
    assert_int_equal(count(d, n, field, sizeof(field)), 1);
    static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '0', '7', 0 };
    assert_int_equal(count(d, n, hid, sizeof(hid)), 3);
    for (unsigned i = 0; i < 3; i++) {
        /* Device (C00i) ... Name (_UID, i) */
        char name[5];
        g_snprintf(name, sizeof(name), "C%03X", i);
        assert_int_equal(count(d, n, name, 4), 2);  /* the device, and its Notify in CNTF */
        /* Name (_MAT, Buffer (8) { LAPIC entry, UID i, APIC ID i, enabled }) */
        const uint8_t mat[] = { 0x08, '_', 'M', 'A', 'T', 0x11, 0x0b, 0x0a, 0x08,
                                0, 8, (uint8_t)i, (uint8_t)i, 1, 0, 0, 0 };
        assert_int_equal(count(d, n, mat, sizeof(mat)), 1);
    }
    assert_int_equal(count(d, n, "_EJ0", 4), 2);
    /* Field (CPHR, DWordAcc, NoLock, Preserve) { Offset (0x0C), COEV 32, COST 32 }:
     * the OST registers, written as whole dwords. */
    static const uint8_t ost_field[] = { 'C', 'P', 'H', 'R', 0x03, 0x00, 0x40, 0x06,
                                         'C', 'O', 'E', 'V', 0x20, 'C', 'O', 'S', 'T', 0x20 };
    assert_int_equal(count(d, n, ost_field, sizeof(ost_field)), 1);
    /* Every CPU has Method (_OST, 3) { COSM (i, Arg0, Arg1) }. */
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t ost[] = { 0x14, 0x0d + (i > 1), '_', 'O', 'S', 'T', 0x03, 'C', 'O', 'S', 'M',
                                i > 1 ? 0x0a : (uint8_t)i, (uint8_t)i, 0x68, 0x69 };
        size_t len = i > 1 ? sizeof(ost) : sizeof(ost) - 1;
        uint8_t want[sizeof(ost)];
        memcpy(want, ost, 11);
        if (i > 1)
            memcpy(want + 11, ost + 11, 4);
        else {
            want[11] = (uint8_t)i;
            want[12] = 0x68;
            want[13] = 0x69;
        }
        assert_int_equal(count(d, n, want, len), 1);
    }
    assert_int_equal(count(d, n, "_OST", 4), 3);
    /* COSM (index, event, status): CSEL = Arg0, COEV = Arg1, COST = Arg2 under CPLK. */
    static const uint8_t cosm[] = { 0x70, 0x68, 'C', 'S', 'E', 'L', 0x70, 0x69, 'C', 'O', 'E', 'V',
                                    0x70, 0x6a, 'C', 'O', 'S', 'T' };
    assert_int_equal(count(d, n, cosm, sizeof(cosm)), 1);
    /* The GED's _EVT calls \_SB.CSCN when bit 2 is set. */
    static const uint8_t call[] = { 0x5c, 0x2e, '_', 'S', 'B', '_', 'C', 'S', 'C', 'N' };
    assert_int_equal(count(d, n, call, sizeof(call)), 1);
    assert_int_equal(count(d, n, "CSCN", 4), 2);   /* the method and the call */

    /* Without room to grow there is nothing of it. */
    c.nr_cpus_max = 1;
    g_autoptr(GByteArray) none = acpi_build_tables(&c, LAYOUT_ACPI_START);
    dsdt_of(none, &d, &n);
    assert_int_equal(count(d, n, "ACPI0007", 8), 0);
    assert_int_equal(count(d, n, "CPHR", 4), 0);
    assert_int_equal(count(d, n, "CSCN", 4), 0);
}

/* After a reset with CPUs hot-added, the MADT enables exactly the present
 * ones (not the first N) and the DSDT stays the same. */
static void test_cpu_present_mask(void **state)
{
    const bool present[4] = { true, false, true, false };
    struct acpi_config c = { .nr_cpus_boot = 1, .nr_cpus_max = 4, .cpu_present = present, .serial = true };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    struct parsed p;
    parse(&p, t, LAYOUT_ACPI_START);
    check_madt_present(&p, present, 1, 4);
    c.cpu_present = NULL;
    g_autoptr(GByteArray) u = acpi_build_tables(&c, LAYOUT_ACPI_START);
    const uint8_t *d1, *d2;
    size_t n1, n2;
    dsdt_of(t, &d1, &n1);
    dsdt_of(u, &d2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1);
}

/* The largest machine still fits the ACPI window. */
static void test_cpu_hotplug_255_fits(void **state)
{
    struct acpi_config c = { .nr_cpus_boot = 1, .nr_cpus_max = 255, .serial = true, .pci = true,
                             .pci_mmio64_base = 0x140000000ull, .pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    assert_true(t->len <= LAYOUT_ACPI_END - LAYOUT_ACPI_START);
    const uint8_t *d;
    size_t n;
    dsdt_of(t, &d, &n);
    assert_int_equal(count(d, n, "ACPI0007", 8), 255);
    assert_int_equal(count(d, n, "_EJ0", 4), 254);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pci_tables),
        cmocka_unit_test(test_cpu_hotplug_aml),
        cmocka_unit_test(test_cpu_present_mask),
        cmocka_unit_test(test_cpu_hotplug_255_fits),
        cmocka_unit_test(test_cpu_counts),
        cmocka_unit_test(test_pointers_follow_base),
        cmocka_unit_test(test_max_below_boot_counts_boot),
        cmocka_unit_test(test_install),
        cmocka_unit_test(test_install_without_ram_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
