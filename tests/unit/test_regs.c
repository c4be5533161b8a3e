/* Boot GDT, identity page tables, entry segment/control registers and the
 * LAPIC LINT setup: the pure parts of arch/x86/regs.c, no KVM needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <linux/kvm.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "vmm/memory.h"

static void test_gdt_entry_encoding(void **state)
{
    /* The well-known flat descriptors, written out by hand from the SDM layout. */
    uint64_t gdt[REGS_GDT_ENTRIES];
    regs_boot_gdt(gdt);
    assert_int_equal(gdt[0], 0);
    assert_int_equal(gdt[REGS_SEL_CODE32 / 8], 0x00cf9b000000ffffULL);
    assert_int_equal(gdt[REGS_SEL_CODE64 / 8], 0x00af9b000000ffffULL);
    assert_int_equal(gdt[REGS_SEL_DATA / 8], 0x00cf93000000ffffULL);
    assert_int_equal(gdt[REGS_SEL_TSS / 8], 0x00008b0000000067ULL);
    assert_int_equal(gdt[REGS_SEL_TSS / 8 + 1], 0);
    /* Base and limit bits land in their split fields. */
    assert_int_equal(regs_gdt_entry(0x93, 0x4, 0x12345678, 0xabcde), 0x124a93345678bcdeULL);
}

static void test_gdt_decodes(void **state)
{
    uint64_t gdt[REGS_GDT_ENTRIES];
    regs_boot_gdt(gdt);
    struct kvm_segment s;

    regs_segment_from_desc(gdt[REGS_SEL_CODE64 / 8], REGS_SEL_CODE64, &s);
    assert_int_equal(s.base, 0);
    assert_int_equal(s.limit, 0xffffffff);
    assert_int_equal(s.type, 0xb);
    assert_int_equal(s.s, 1);
    assert_int_equal(s.present, 1);
    assert_int_equal(s.dpl, 0);
    assert_int_equal(s.l, 1);
    assert_int_equal(s.db, 0);          /* L=1 requires D=0 */
    assert_int_equal(s.g, 1);

    regs_segment_from_desc(gdt[REGS_SEL_CODE32 / 8], REGS_SEL_CODE32, &s);
    assert_int_equal(s.limit, 0xffffffff);
    assert_int_equal(s.type, 0xb);
    assert_int_equal(s.l, 0);
    assert_int_equal(s.db, 1);

    regs_segment_from_desc(gdt[REGS_SEL_DATA / 8], REGS_SEL_DATA, &s);
    assert_int_equal(s.limit, 0xffffffff);
    assert_int_equal(s.type, 0x3);      /* read/write, accessed */
    assert_int_equal(s.s, 1);
    assert_int_equal(s.db, 1);

    regs_segment_from_desc(gdt[REGS_SEL_TSS / 8], REGS_SEL_TSS, &s);
    assert_int_equal(s.type, 0xb);      /* busy TSS: what VMX wants in TR */
    assert_int_equal(s.s, 0);
    assert_int_equal(s.present, 1);
    assert_int_equal(s.limit, 0x67);
    assert_int_equal(s.g, 0);
    assert_int_equal(s.selector, REGS_SEL_TSS);
}

static void test_sregs_linux64(void **state)
{
    struct kvm_sregs s;
    memset(&s, 0xff, sizeof(s));
    s.cr0 = 0x60000010;                 /* reset value: CD|NW|ET */
    regs_boot_sregs(&s, BOOT_ENTRY_LINUX64);
    assert_int_equal(s.cr0, 0x80000011);
    assert_int_equal(s.cr4, 0x20);
    assert_int_equal(s.efer, 0x500);
    assert_int_equal(s.cr3, LAYOUT_PML4_ADDR);
    assert_int_equal(s.cs.selector, 0x10);
    assert_int_equal(s.cs.l, 1);
    assert_int_equal(s.cs.present, 1);
    const struct kvm_segment *data[] = { &s.ds, &s.es, &s.fs, &s.gs, &s.ss };
    for (unsigned i = 0; i < G_N_ELEMENTS(data); i++) {
        assert_int_equal(data[i]->selector, 0x18);
        assert_int_equal(data[i]->base, 0);
        assert_int_equal(data[i]->limit, 0xffffffff);
        assert_int_equal(data[i]->type, 3);
        assert_int_equal(data[i]->unusable, 0);
    }
    assert_int_equal(s.tr.selector, 0x20);
    assert_int_equal(s.tr.type, 0xb);
    assert_int_equal(s.gdt.base, LAYOUT_GDT_ADDR);
    assert_int_equal(s.gdt.limit, REGS_GDT_ENTRIES * 8 - 1);
}

static void test_sregs_pvh32(void **state)
{
    struct kvm_sregs s;
    memset(&s, 0, sizeof(s));
    s.cr0 = 0x60000010;
    s.efer = 0x500;
    regs_boot_sregs(&s, BOOT_ENTRY_PVH32);
    assert_int_equal(s.cr0, 0x11);      /* PE|ET, paging off, caches on */
    assert_int_equal(s.cr4, 0);
    assert_int_equal(s.efer, 0);
    assert_int_equal(s.cs.selector, 0x08);
    assert_int_equal(s.cs.base, 0);
    assert_int_equal(s.cs.limit, 0xffffffff);
    assert_int_equal(s.cs.db, 1);
    assert_int_equal(s.cs.l, 0);
    assert_int_equal(s.ss.selector, 0x18);
    assert_int_equal(s.ss.db, 1);
    assert_int_equal(s.tr.base, 0);     /* PVH ABI: TR base 0, limit 0x67 */
    assert_int_equal(s.tr.limit, 0x67);
    assert_int_equal(s.tr.type, 0xb);
}

/* Walks the tables in guest memory the way the MMU would (2 MiB leaves). */
static uint64_t translate(struct guest_memory *gm, uint64_t va)
{
    uint64_t e;
    assert_int_equal(guest_memory_read(gm, LAYOUT_PML4_ADDR + ((va >> 39) & 511) * 8, &e, 8), 0);
    assert_true(e & 1);
    assert_int_equal(e & 2, 2);
    assert_int_equal(guest_memory_read(gm, (e & ~0xfffULL) + ((va >> 30) & 511) * 8, &e, 8), 0);
    assert_true(e & 1);
    assert_false(e & 0x80);
    assert_int_equal(guest_memory_read(gm, (e & ~0xfffULL) + ((va >> 21) & 511) * 8, &e, 8), 0);
    assert_true(e & 1);
    assert_true(e & 0x80);              /* 2 MiB page */
    return (e & ~0x1fffffULL & ((1ULL << 52) - 1)) | (va & 0x1fffff);
}

static void test_page_tables_identity(void **state)
{
    struct guest_memory gm;
    assert_int_equal(guest_memory_create(&gm, 64 << 20, false, false, NULL), 0);
    assert_int_equal(regs_write_boot_tables(&gm, BOOT_ENTRY_LINUX64), 0);
    const uint64_t vas[] = { 0, 0x1000, 0x100200, 0x12345678, 0xbfffffff, 0xc0000000, 0xfee00000,
                             0xffffffff };
    for (unsigned i = 0; i < G_N_ELEMENTS(vas); i++)
        assert_int_equal(translate(&gm, vas[i]), vas[i]);
    /* Every one of the 2048 PDEs, and nothing mapped at 4 GiB and above. */
    for (uint64_t va = 0; va < LAYOUT_4GIB; va += 1 << 21)
        assert_int_equal(translate(&gm, va + 0x1234), va + 0x1234);
    uint64_t e;
    assert_int_equal(guest_memory_read(&gm, LAYOUT_PDPT_ADDR + 4 * 8, &e, 8), 0);
    assert_int_equal(e, 0);
    assert_int_equal(guest_memory_read(&gm, LAYOUT_PML4_ADDR + 8, &e, 8), 0);
    assert_int_equal(e, 0);

    uint64_t want[REGS_GDT_ENTRIES], got[REGS_GDT_ENTRIES];
    regs_boot_gdt(want);
    assert_int_equal(guest_memory_read(&gm, LAYOUT_GDT_ADDR, got, sizeof(got)), 0);
    assert_memory_equal(got, want, sizeof(got));
    guest_memory_destroy(&gm);
}

static void test_pvh_tables_gdt_only(void **state)
{
    struct guest_memory gm;
    assert_int_equal(guest_memory_create(&gm, 64 << 20, false, false, NULL), 0);
    assert_int_equal(regs_write_boot_tables(&gm, BOOT_ENTRY_PVH32), 0);
    uint64_t e;
    assert_int_equal(guest_memory_read(&gm, LAYOUT_GDT_ADDR + REGS_SEL_CODE32, &e, 8), 0);
    assert_int_equal(e, 0x00cf9b000000ffffULL);
    assert_int_equal(guest_memory_read(&gm, LAYOUT_PML4_ADDR, &e, 8), 0);
    assert_int_equal(e, 0);             /* paging is off: no tables */
    guest_memory_destroy(&gm);
}

static void test_lapic_lint(void **state)
{
    struct kvm_lapic_state l;
    memset(&l, 0, sizeof(l));
    uint32_t masked = 0x10000 | 0x200;  /* masked, SMI: the delivery mode must be replaced */
    memcpy(l.regs + 0x350, &masked, 4);
    memcpy(l.regs + 0x360, &masked, 4);
    regs_lapic_set_lint(l.regs);
    uint32_t v;
    memcpy(&v, l.regs + 0x350, 4);
    assert_int_equal(v, 0x10700);       /* ExtINT */
    memcpy(&v, l.regs + 0x360, 4);
    assert_int_equal(v, 0x10400);       /* NMI */
    memcpy(&v, l.regs + 0x370, 4);
    assert_int_equal(v, 0);             /* LVT Error untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gdt_entry_encoding),
        cmocka_unit_test(test_gdt_decodes),
        cmocka_unit_test(test_sregs_linux64),
        cmocka_unit_test(test_sregs_pvh32),
        cmocka_unit_test(test_page_tables_identity),
        cmocka_unit_test(test_pvh_tables_gdt_only),
        cmocka_unit_test(test_lapic_lint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
