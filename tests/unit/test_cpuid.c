/* CPUID policy over fake KVM_GET_SUPPORTED_CPUID tables shaped like an AMD
 * EPYC (Zen 3) host and an Intel Xeon (Ice Lake) host. Bit positions are
 * spelled out here from the Intel SDM / AMD APM, not taken from cpuid.c.
 *
 * When /dev/kvm is KVM, test_kvm_accepts_tables also hands the built tables
 * to it with KVM_SET_CPUID2 and reads them back; elsewhere it is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"

#define B(n) (1u << (n))
#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

struct fake {
    struct kvm_cpuid2 *c;
    const char *name;
};

static struct kvm_cpuid2 *table_new(const struct kvm_cpuid_entry2 *e, size_t n)
{
    struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(*e));
    c->nent = (uint32_t)n;
    memcpy(c->entries, e, n * sizeof(*e));
    return c;
}

/* "AuthenticAMD" = EBX "Auth", EDX "enti", ECX "cAMD" */
static struct kvm_cpuid2 *fake_amd_epyc(void)
{
    static const struct kvm_cpuid_entry2 e[] = {
        { .function = 0, .eax = 0x10, .ebx = 0x68747541, .ecx = 0x444d4163, .edx = 0x69746e65 },
        { .function = 1, .eax = 0x00a00f11, .ebx = 0x00400800,
          .ecx = B(0) | B(1) | B(3) | B(9) | B(12) | B(13) | B(19) | B(20) | B(21) | B(22) | B(23) | B(24) |
                 B(25) | B(26) | B(28) | B(29) | B(30),
          .edx = 0x078bfbff },    /* KVM does not report HTT */
        { .function = 5, .eax = 0x40, .ebx = 0x40, .ecx = 3, .edx = 0x11 },
        { .function = 6, .eax = 4 },
        { .function = 7, .index = 0, .flags = IDX,
          .ebx = B(0) | B(3) | B(5) | B(7) | B(8) | B(9) | B(10) | B(18) | B(19) | B(20) | B(23) | B(24) |
                 B(29),
          .ecx = B(2) | B(3) | B(9) | B(10) | B(22),
          .edx = B(4) | B(26) | B(27) | B(29) | B(31) },
        { .function = 0xd, .index = 0, .flags = IDX, .eax = 0x7, .ebx = 0x340, .ecx = 0x340 },
        { .function = 0xd, .index = 1, .flags = IDX, .eax = 0xf },
        { .function = 0xd, .index = 2, .flags = IDX, .eax = 0x100, .ebx = 0x240 },
        { .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b, .ecx = 0x564b4d56, .edx = 0x4d },
        { .function = 0x40000001, .eax = 0x01007afb },
        { .function = 0x80000000, .eax = 0x80000021, .ebx = 0x68747541, .ecx = 0x444d4163, .edx = 0x69746e65 },
        { .function = 0x80000001, .eax = 0x00a00f11,
          .ecx = B(0) | B(2) | B(3) | B(4) | B(5) | B(6) | B(7) | B(8) | B(9) | B(22) | B(23),
          .edx = 0x2fd3fbff },
        { .function = 0x80000005, .eax = 0xff40ff40, .ebx = 0xff40ff40, .ecx = 0x20080140, .edx = 0x20080140 },
        { .function = 0x80000006, .eax = 0x48002200, .ebx = 0x68004200, .ecx = 0x02006140, .edx = 0x08009140 },
        { .function = 0x80000007, .edx = B(8) },
        { .function = 0x80000008, .eax = 0x3030, .ebx = B(0) | B(9) | B(12) | B(14) | B(15) | B(24),
          .ecx = 0x707f },
        { .function = 0x8000000a, .eax = 1, .ebx = 0x8000, .edx = 0x1ebfbcff },
        { .function = 0x8000001d, .index = 0, .flags = IDX, .eax = 0x00004121, .ebx = 0x01c0003f, .ecx = 0x3f },
        { .function = 0x8000001d, .index = 1, .flags = IDX, .eax = 0x00004122, .ebx = 0x01c0003f, .ecx = 0x3f },
        { .function = 0x8000001d, .index = 2, .flags = IDX, .eax = 0x00004143, .ebx = 0x01c0003f, .ecx = 0x3ff },
        { .function = 0x8000001d, .index = 3, .flags = IDX, .eax = 0x0003c163, .ebx = 0x03c0003f, .ecx = 0x7fff },
        { .function = 0x8000001d, .index = 4, .flags = IDX },
        { .function = 0x8000001e, .eax = 0x7e, .ebx = 0x013f, .ecx = 0 },
        { .function = 0x8000001f, .eax = 0x1007f, .ebx = 0x173 },
        { .function = 0x80000021, .eax = B(0) | B(2) | B(6) },
    };
    return table_new(e, G_N_ELEMENTS(e));
}

/* "GenuineIntel" = EBX "Genu", EDX "ineI", ECX "ntel" */
static struct kvm_cpuid2 *fake_intel_xeon(void)
{
    static const struct kvm_cpuid_entry2 e[] = {
        { .function = 0, .eax = 0x1b, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
        { .function = 1, .eax = 0x000606a6, .ebx = 0x00200800,
          .ecx = B(0) | B(1) | B(5) | B(9) | B(12) | B(13) | B(17) | B(19) | B(20) | B(21) | B(22) | B(23) |
                 B(24) | B(25) | B(26) | B(28) | B(29) | B(30),
          .edx = 0x0f8bfbff },
        { .function = 4, .index = 0, .flags = IDX, .eax = 0x1c004121, .ebx = 0x02c0003f, .ecx = 0x3f },
        { .function = 4, .index = 1, .flags = IDX, .eax = 0x1c004122, .ebx = 0x01c0003f, .ecx = 0x3f },
        { .function = 4, .index = 2, .flags = IDX, .eax = 0x1c004143, .ebx = 0x03c0003f, .ecx = 0x3ff },
        { .function = 4, .index = 3, .flags = IDX, .eax = 0x1c03c163, .ebx = 0x0280003f, .ecx = 0xdfff },
        { .function = 4, .index = 4, .flags = IDX },
        { .function = 6, .eax = 4 },
        { .function = 7, .index = 0, .flags = IDX, .eax = 1,
          .ebx = 0xf3bfbfbf,    /* AVX2, AVX-512F/DQ/CD/BW/VL, SHA, SGX, PT, ... */
          .ecx = B(1) | B(2) | B(3) | B(4) | B(5) | B(6) | B(8) | B(9) | B(10) | B(11) | B(12) | B(14) |
                 B(16) | B(22) | B(30),
          .edx = B(4) | B(10) | B(22) | B(24) | B(25) | B(26) | B(27) | B(28) | B(29) | B(31) },
        { .function = 7, .index = 1, .flags = IDX, .eax = B(4) | B(5) },
        { .function = 0xb, .index = 0, .flags = IDX, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 0x4c },
        { .function = 0xb, .index = 1, .flags = IDX, .eax = 7, .ebx = 64, .ecx = 0x201, .edx = 0x4c },
        { .function = 0xd, .index = 0, .flags = IDX, .eax = 0x2e7, .ebx = 0xa88, .ecx = 0xa88 },
        { .function = 0xd, .index = 1, .flags = IDX, .eax = 0xf },
        { .function = 0xd, .index = 2, .flags = IDX, .eax = 0x100, .ebx = 0x240 },
        { .function = 0xd, .index = 5, .flags = IDX, .eax = 0x40, .ebx = 0x440 },
        { .function = 0x12, .index = 0, .flags = IDX, .eax = 1 },
        { .function = 0x14, .index = 0, .flags = IDX, .eax = 1, .ebx = 0xf },
        { .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b, .ecx = 0x564b4d56, .edx = 0x4d },
        { .function = 0x40000001, .eax = 0x01007afb, .edx = B(0) },
        { .function = 0x80000000, .eax = 0x80000008 },
        { .function = 0x80000001, .ecx = B(0) | B(5) | B(8), .edx = B(11) | B(20) | B(26) | B(27) | B(29) },
        { .function = 0x80000006, .ecx = 0x05007040 },
        { .function = 0x80000007, .edx = B(8) },
        { .function = 0x80000008, .eax = 0x3030, .ebx = B(9) },
    };
    return table_new(e, G_N_ELEMENTS(e));
}

static struct kvm_cpuid_entry2 *get(struct kvm_cpuid2 *c, uint32_t f, uint32_t i)
{
    struct kvm_cpuid_entry2 *e = cpuid_find(c, f, i);
    if (!e)
        fail_msg("leaf 0x%x.%u missing", f, i);
    return e;
}

static unsigned bits_for(unsigned n)
{
    switch (n) {
    case 1: return 0;
    case 2: return 1;
    case 4: return 2;
    case 255: return 8;
    }
    fail_msg("no expected shift for %u", n);
    return 0;
}

static void check_topology_leaf(struct kvm_cpuid2 *c, uint32_t leaf, unsigned index, unsigned nr)
{
    struct kvm_cpuid_entry2 *smt = get(c, leaf, 0), *core = get(c, leaf, 1), *end = get(c, leaf, 2);
    assert_true(smt->flags & IDX);
    assert_int_equal(smt->eax & 0x1f, 0);
    assert_int_equal(smt->ebx & 0xffff, 1);
    assert_int_equal(smt->ecx & 0xffff, 0x100);         /* level 0, type SMT */
    assert_int_equal(smt->edx, index);
    assert_int_equal(core->eax & 0x1f, bits_for(nr));
    assert_int_equal(core->ebx & 0xffff, nr);
    assert_int_equal(core->ecx & 0xffff, 0x201);        /* level 1, type Core */
    assert_int_equal(core->edx, index);
    assert_int_equal((end->ecx >> 8) & 0xff, 0);        /* invalid level ends the list */
    assert_int_equal(end->ecx & 0xff, 2);
    assert_int_equal(end->ebx & 0xffff, 0);
    assert_int_equal(end->edx, index);
}

static void check_topology(struct kvm_cpuid2 *sup, bool amd, unsigned index, unsigned nr)
{
    for (int m = CPU_MODEL_HOST; m <= CPU_MODEL_BASELINE; m++) {
        g_autofree struct kvm_cpuid2 *c = cpuid_build(sup, m, index, nr);
        struct kvm_cpuid_entry2 *l1 = get(c, 1, 0);
        assert_int_equal(l1->ebx >> 24, index);
        assert_int_equal((l1->ebx >> 16) & 0xff, nr);
        assert_int_equal((l1->ebx >> 8) & 0xff, 8);     /* CLFLUSH line size kept */
        assert_int_equal(!!(l1->edx & B(28)), nr > 1);  /* HTT */
        assert_true(get(c, 0, 0)->eax >= 0x1f);
        check_topology_leaf(c, 0xb, index, nr);
        check_topology_leaf(c, 0x1f, index, nr);
        assert_null(cpuid_find(c, 0xb, 3));
        struct kvm_cpuid_entry2 *e1 = get(c, 0x80000001, 0);
        if (amd) {
            struct kvm_cpuid_entry2 *e8 = get(c, 0x80000008, 0), *e1e = get(c, 0x8000001e, 0);
            assert_int_equal(e8->ecx & 0xff, nr - 1);
            assert_int_equal((e8->ecx >> 12) & 0xf, bits_for(nr));
            assert_int_equal(e1e->eax, index);
            assert_int_equal(e1e->ebx & 0xff, index);
            assert_int_equal((e1e->ebx >> 8) & 0xff, 0);    /* 1 thread per core */
            assert_int_equal(e1e->ecx & 0x7ff, 0);          /* node 0 of 1 */
            assert_int_equal(!!(e1->ecx & B(1)), nr > 1);   /* CmpLegacy */
            assert_true(get(c, 0x80000000, 0)->eax >= 0x8000001e);
            assert_int_equal((get(c, 0x8000001d, 3)->eax >> 14) & 0xfff, nr - 1);    /* L3 shared by all */
            assert_int_equal((get(c, 0x8000001d, 2)->eax >> 14) & 0xfff, 0);         /* L2 private */
        } else {
            assert_false(e1->ecx & B(1));
            for (uint32_t i = 0; i < 5; i++) {
                struct kvm_cpuid_entry2 *l4 = get(c, 4, i);
                assert_int_equal(l4->eax >> 26, MIN(nr, 64u) - 1);
            }
            assert_int_equal((get(c, 4, 1)->eax >> 14) & 0xfff, 0);
            assert_int_equal((get(c, 4, 3)->eax >> 14) & 0xfff, nr - 1);
            assert_int_equal(get(c, 4, 0)->eax & 0x1f, 1);   /* cache type kept */
        }
    }
}

static struct kvm_cpuid2 *all_ones(struct kvm_cpuid2 *sup);

/* The plain fakes have HTT and CmpLegacy clear, the all-ones ones have them
 * set: both directions are covered. */
static void test_topology(void **state)
{
    static const unsigned nrs[] = { 1, 2, 4, 255 };
    g_autofree struct kvm_cpuid2 *amd = fake_amd_epyc();
    g_autofree struct kvm_cpuid2 *intel = fake_intel_xeon();
    g_autofree struct kvm_cpuid2 *amd1 = all_ones(fake_amd_epyc());
    g_autofree struct kvm_cpuid2 *intel1 = all_ones(fake_intel_xeon());
    for (size_t k = 0; k < G_N_ELEMENTS(nrs); k++) {
        unsigned nr = nrs[k];
        unsigned idx[] = { 0, nr / 2, nr - 1 };
        for (size_t j = 0; j < G_N_ELEMENTS(idx); j++) {
            check_topology(amd, true, idx[j], nr);
            check_topology(intel, false, idx[j], nr);
            check_topology(amd1, true, idx[j], nr);
            check_topology(intel1, false, idx[j], nr);
        }
    }
}

static void test_hypervisor_and_pv_leaves(void **state)
{
    struct kvm_cpuid2 *sups[] = { fake_amd_epyc(), fake_intel_xeon() };
    for (size_t k = 0; k < 2; k++) {
        for (int m = CPU_MODEL_HOST; m <= CPU_MODEL_BASELINE; m++) {
            g_autofree struct kvm_cpuid2 *c = cpuid_build(sups[k], m, 0, 2);
            assert_true(get(c, 1, 0)->ecx & B(31));
            struct kvm_cpuid_entry2 *sig = get(c, 0x40000000, 0);
            char s[12];
            memcpy(s, &sig->ebx, 4);
            memcpy(s + 4, &sig->ecx, 4);
            memcpy(s + 8, &sig->edx, 4);
            assert_memory_equal(s, "KVMKVMKVM\0\0\0", 12);
            assert_int_equal(sig->eax, 0x40000001);
            /* The fake's PV features (clocksource2, async PF, steal time,
             * PV EOI, PV unhalt, ...) pass through; the realtime hint does not. */
            struct kvm_cpuid_entry2 *feat = get(c, 0x40000001, 0);
            assert_int_equal(feat->eax, 0x01007afb);
            assert_int_equal(feat->edx & B(0), 0);
            assert_null(cpuid_find(c, 0x40000002, 0));
        }
        g_free(sups[k]);
    }
}

static void test_pv_leaves_added_when_absent(void **state)
{
    static const struct kvm_cpuid_entry2 e[] = {
        { .function = 0, .eax = 1, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
        { .function = 1, .ecx = B(0) },
    };
    g_autofree struct kvm_cpuid2 *sup = table_new(e, G_N_ELEMENTS(e));
    g_autofree struct kvm_cpuid2 *c = cpuid_build(sup, CPU_MODEL_HOST, 0, 1);
    assert_int_equal(get(c, 0x40000000, 0)->eax, 0x40000001);
    assert_int_equal(get(c, 0x40000001, 0)->eax, 0);
    assert_int_equal(get(c, 0, 0)->eax, 0x1f);
    check_topology_leaf(c, 0xb, 0, 1);
}

/* nested=on passes SVM (and its leaf) or VMX through, and only what KVM
 * offers; cpuid_hide_nested takes them away again. */
static void test_nested_exposed(void **state)
{
    struct kvm_cpuid2 *amd = fake_amd_epyc(), *intel = fake_intel_xeon();
    g_autofree struct kvm_cpuid2 *a = cpuid_build_nested(amd, CPU_MODEL_HOST, 0, 2, true);
    assert_true(get(a, 0x80000001, 0)->ecx & B(2));
    assert_int_equal(get(a, 0x8000000a, 0)->edx, get(amd, 0x8000000a, 0)->edx);
    assert_true(get(a, 0x80000000, 0)->eax >= 0x8000000a);
    g_autofree struct kvm_cpuid2 *i = cpuid_build_nested(intel, CPU_MODEL_HOST, 0, 2, true);
    assert_true(get(i, 1, 0)->ecx & B(5));
    assert_true(cpuid_host_nests(amd) && cpuid_host_nests(intel));
    cpuid_hide_nested(amd);
    cpuid_hide_nested(intel);
    assert_false(cpuid_host_nests(amd) || cpuid_host_nests(intel));
    g_autofree struct kvm_cpuid2 *a2 = cpuid_build_nested(amd, CPU_MODEL_HOST, 0, 2, true);
    assert_false(get(a2, 0x80000001, 0)->ecx & B(2));
    g_free(amd);
    g_free(intel);
    (void)state;
}

static void test_vmx_svm_hidden(void **state)
{
    struct kvm_cpuid2 *sups[] = { fake_amd_epyc(), fake_intel_xeon() };
    assert_true(get(sups[0], 0x80000001, 0)->ecx & B(2));
    assert_true(get(sups[1], 1, 0)->ecx & B(5));
    for (size_t k = 0; k < 2; k++) {
        for (int m = CPU_MODEL_HOST; m <= CPU_MODEL_BASELINE; m++) {
            g_autofree struct kvm_cpuid2 *c = cpuid_build(sups[k], m, 1, 4);
            assert_false(get(c, 1, 0)->ecx & B(5));
            assert_false(get(c, 0x80000001, 0)->ecx & B(2));
            assert_false(get(c, 1, 0)->ecx & B(3));     /* MONITOR */
            assert_null(cpuid_find(c, 0x8000000a, 0));  /* SVM features */
            assert_null(cpuid_find(c, 0x12, 0));        /* SGX */
            assert_null(cpuid_find(c, 0x14, 0));        /* Intel PT */
            assert_false(get(c, 7, 0)->ebx & (B(2) | B(25)));
        }
        g_free(sups[k]);
    }
}

/* Every register of a leaf that baseline may keep, with everything set, so
 * that what survives is decided by the policy alone. */
static struct kvm_cpuid2 *all_ones(struct kvm_cpuid2 *sup)
{
    static const uint32_t leaves[] = { 1, 7, 0x80000001 };
    for (size_t i = 0; i < G_N_ELEMENTS(leaves); i++) {
        struct kvm_cpuid_entry2 *e = get(sup, leaves[i], 0);
        e->ecx = e->edx = 0xffffffff;
        if (leaves[i] == 7)
            e->ebx = 0xffffffff;
    }
    return sup;
}

static void check_baseline(struct kvm_cpuid2 *c)
{
    static const struct { const char *name; uint32_t bit; } l1_hidden[] = {
        { "SSE3", B(0) }, { "PCLMULQDQ", B(1) }, { "SSSE3", B(9) }, { "FMA", B(12) },
        { "CMPXCHG16B", B(13) }, { "SSE4.1", B(19) }, { "SSE4.2", B(20) }, { "MOVBE", B(22) },
        { "POPCNT", B(23) }, { "AES", B(25) }, { "XSAVE", B(26) }, { "OSXSAVE", B(27) }, { "AVX", B(28) },
        { "F16C", B(29) }, { "RDRAND", B(30) }, { "VMX", B(5) }, { "MONITOR", B(3) },
    };
    static const struct { const char *name; uint32_t bit; } e1_hidden[] = {
        { "ABM/LZCNT", B(5) }, { "SSE4A", B(6) }, { "XOP", B(11) }, { "FMA4", B(16) }, { "TBM", B(21) },
        { "SVM", B(2) },
    };
    struct kvm_cpuid_entry2 *l1 = get(c, 1, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(l1_hidden); i++)
        if (l1->ecx & l1_hidden[i].bit)
            fail_msg("baseline leaf 1 ECX still has %s", l1_hidden[i].name);
    struct kvm_cpuid_entry2 *e1 = get(c, 0x80000001, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(e1_hidden); i++)
        if (e1->ecx & e1_hidden[i].bit)
            fail_msg("baseline leaf 0x80000001 ECX still has %s", e1_hidden[i].name);

    /* Leaf 7: FSGSBASE, SMEP, ERMS, SMAP in EBX; no AVX2 (5), AVX-512F (16),
     * RDSEED (18), SHA (29), no ECX at all; EDX only speculation control. */
    struct kvm_cpuid_entry2 *l7 = get(c, 7, 0);
    assert_int_equal(l7->ebx & ~(B(0) | B(7) | B(9) | B(20)), 0);
    assert_int_equal(l7->ecx, 0);
    assert_int_equal(l7->edx & ~(B(10) | B(26) | B(27) | B(28) | B(29) | B(31)), 0);
    assert_int_equal(l7->eax, 0);
    assert_null(cpuid_find(c, 7, 1));

    for (uint32_t i = 0; i < 64; i++)
        assert_null(cpuid_find(c, 0xd, i));

    /* Internal consistency: max-leaf values cover exactly what is there. */
    uint32_t max_basic = get(c, 0, 0)->eax, max_ext = get(c, 0x80000000, 0)->eax;
    bool basic_top = false, ext_top = false;
    for (uint32_t i = 0; i < c->nent; i++) {
        uint32_t f = c->entries[i].function;
        if (f < 0x40000000) {
            assert_true(f <= max_basic);
            basic_top |= f == max_basic;
        } else if (f >= 0x80000000) {
            assert_true(f <= max_ext);
            ext_top |= f == max_ext;
        }
    }
    assert_true(basic_top && ext_top);
}

static void test_baseline_masks(void **state)
{
    struct kvm_cpuid2 *sups[] = { fake_amd_epyc(), fake_intel_xeon(), all_ones(fake_amd_epyc()),
                                  all_ones(fake_intel_xeon()) };
    for (size_t k = 0; k < G_N_ELEMENTS(sups); k++) {
        for (unsigned idx = 0; idx < 4; idx++) {
            g_autofree struct kvm_cpuid2 *c = cpuid_build(sups[k], CPU_MODEL_BASELINE, idx, 4);
            check_baseline(c);
            if (k >= 2) {
                /* ... and the kept bits really are kept. */
                struct kvm_cpuid_entry2 *l7 = get(c, 7, 0);
                assert_int_equal(l7->ebx, B(0) | B(7) | B(9) | B(20));
                assert_true(l7->edx & B(26));
                assert_true(get(c, 1, 0)->ecx & B(21));     /* x2APIC */
                assert_true(get(c, 0x80000001, 0)->ecx & B(0)); /* LAHF/SAHF */
            }
        }
        g_free(sups[k]);
    }
}

static void test_host_keeps_avx(void **state)
{
    struct kvm_cpuid2 *sups[] = { fake_amd_epyc(), fake_intel_xeon() };
    for (size_t k = 0; k < 2; k++) {
        g_autofree struct kvm_cpuid2 *c = cpuid_build(sups[k], CPU_MODEL_HOST, 0, 2);
        struct kvm_cpuid_entry2 *l1 = get(c, 1, 0);
        assert_int_equal(l1->ecx & (B(26) | B(28) | B(12) | B(13) | B(20)), B(26) | B(28) | B(12) | B(13) | B(20));
        assert_true(get(c, 7, 0)->ebx & B(5));          /* AVX2 */
        assert_true(get(c, 7, 0)->ebx & B(29));         /* SHA */
        assert_non_null(cpuid_find(c, 0xd, 0));
        assert_non_null(cpuid_find(c, 0xd, 1));
        assert_int_equal(get(c, 0xd, 2)->eax, 0x100);   /* AVX state size */
        if (k == 1) {
            assert_true(get(c, 7, 0)->ebx & B(16));     /* AVX-512F */
            assert_non_null(cpuid_find(c, 7, 1));
            /* AMX needs XSTATE permission vmm does not request. */
            assert_false(get(c, 7, 0)->edx & (B(22) | B(24) | B(25)));
        }
        g_free(sups[k]);
    }
}

static void test_input_unmodified(void **state)
{
    struct kvm_cpuid2 *sups[] = { fake_amd_epyc(), fake_intel_xeon() };
    for (size_t k = 0; k < 2; k++) {
        size_t sz = sizeof(*sups[k]) + sups[k]->nent * sizeof(sups[k]->entries[0]);
        g_autofree void *copy = g_memdup2(sups[k], sz);
        for (int m = CPU_MODEL_HOST; m <= CPU_MODEL_BASELINE; m++) {
            g_autofree struct kvm_cpuid2 *c = cpuid_build(sups[k], m, 3, 4);
            assert_ptr_not_equal(c, sups[k]);
        }
        assert_memory_equal(copy, sups[k], sz);
        g_free(sups[k]);
    }
}

static void test_find(void **state)
{
    static const struct kvm_cpuid_entry2 e[] = {
        { .function = 1, .eax = 11 },
        { .function = 4, .index = 0, .flags = IDX, .eax = 40 },
        { .function = 4, .index = 1, .flags = IDX, .eax = 41 },
    };
    g_autofree struct kvm_cpuid2 *c = table_new(e, G_N_ELEMENTS(e));
    assert_int_equal(cpuid_find(c, 4, 1)->eax, 41);
    assert_int_equal(cpuid_find(c, 4, 0)->eax, 40);
    assert_null(cpuid_find(c, 4, 2));
    assert_int_equal(cpuid_find(c, 1, 0)->eax, 11);
    assert_int_equal(cpuid_find(c, 1, 5)->eax, 11);    /* index ignored where not significant */
    assert_null(cpuid_find(c, 2, 0));
}

/* cpuid_added_features names the bits KVM shows beyond vmm's table, per
 * register, and ignores the ones KVM keeps in step with guest state. */
static void test_added_features(void **state)
{
    static const struct kvm_cpuid_entry2 set_e[] = {
        { .function = 1, .ecx = B(13) | B(31), .edx = B(0) },
        { .function = 7, .index = 0, .flags = IDX, .ebx = B(3) },
    };
    static const struct kvm_cpuid_entry2 same_e[] = {
        { .function = 1, .ecx = B(13) | B(31) | B(27), .edx = B(0) | B(9) },   /* OSXSAVE, APIC: run time */
        { .function = 7, .index = 0, .flags = IDX, .ebx = B(3) },
        { .function = 0x40000100, .eax = 1 },                                 /* a leaf KVM added */
    };
    static const struct kvm_cpuid_entry2 more_e[] = {
        { .function = 1, .ecx = B(0) | B(13) | B(28) | B(31), .edx = B(0) },
        { .function = 7, .index = 0, .flags = IDX, .ebx = B(3) | B(5) },
        { .function = 0x80000001, .edx = B(29) },
    };
    g_autofree struct kvm_cpuid2 *set = table_new(set_e, G_N_ELEMENTS(set_e));
    g_autofree struct kvm_cpuid2 *same = table_new(same_e, G_N_ELEMENTS(same_e));
    g_autofree struct kvm_cpuid2 *more = table_new(more_e, G_N_ELEMENTS(more_e));
    assert_null(cpuid_added_features(set, same));
    assert_null(cpuid_added_features(set, set));
    g_autofree char *d = cpuid_added_features(set, more);
    assert_string_equal(d, "1.ECX 0x10000001, 7.0.EBX 0x20, 0x80000001.EDX 0x20000000");
}

/* vCPU i's table is vCPU 0's with APIC ID i: what a restored machine gives
 * each vCPU from the one table its source saved. */
static void test_set_apic_id(void **state)
{
    struct kvm_cpuid2 *(*fakes[])(void) = { fake_amd_epyc, fake_intel_xeon };
    for (size_t f = 0; f < G_N_ELEMENTS(fakes); f++) {
        g_autofree struct kvm_cpuid2 *sup = fakes[f]();
        static const unsigned nrs[] = { 1, 4, 255 };
        for (size_t k = 0; k < G_N_ELEMENTS(nrs); k++)
            for (int m = CPU_MODEL_HOST; m <= CPU_MODEL_BASELINE; m++)
                for (unsigned idx = 0; idx < nrs[k]; idx += idx < 5 ? 1 : 50) {
                    g_autofree struct kvm_cpuid2 *want = cpuid_build(sup, m, idx, nrs[k]);
                    g_autofree struct kvm_cpuid2 *got = cpuid_build(sup, m, 0, nrs[k]);
                    cpuid_set_apic_id(got, idx);
                    assert_int_equal(got->nent, want->nent);
                    for (uint32_t i = 0; i < want->nent; i++)
                        if (memcmp(&got->entries[i], &want->entries[i], sizeof(want->entries[i])))
                            fail_msg("fake %zu, vCPU %u of %u: leaf 0x%x.%u differs", f, idx, nrs[k],
                                     want->entries[i].function, want->entries[i].index);
                }
    }
}

/* The destination's check: every feature bit the source's guest saw must be
 * one this host can give; one line names what is missing. */
static void test_missing_features(void **state)
{
    g_autofree struct kvm_cpuid2 *sup = fake_intel_xeon();
    g_autofree struct kvm_cpuid2 *host = cpuid_build(sup, CPU_MODEL_HOST, 0, 4);
    g_autofree struct kvm_cpuid2 *base = cpuid_build(sup, CPU_MODEL_BASELINE, 0, 4);
    /* the same host, or a guest with fewer features: nothing missing */
    assert_null(cpuid_missing_features(host, host));
    assert_null(cpuid_missing_features(base, host));
    /* a host model guest on a host that gives only the baseline */
    g_autofree char *m = cpuid_missing_features(host, base);
    assert_non_null(m);
    assert_non_null(strstr(m, "leaf 0x1 ECX bits "));
    assert_null(strchr(m, '\n'));

    /* one bit less on this host, by the debugging knob */
    g_autofree struct kvm_cpuid2 *sup2 = fake_intel_xeon();
    g_autoptr(GError) err = NULL;
    assert_int_equal(cpuid_debug_hide(sup2, "0x80000001.edx=0x8000000,7.0.ebx=0x200", &err), 0);
    g_autofree struct kvm_cpuid2 *less = cpuid_build(sup2, CPU_MODEL_HOST, 0, 4);
    g_autofree char *m2 = cpuid_missing_features(host, less);
    if (cpuid_find(host, 0x80000001, 0)->edx & B(27) && cpuid_find(host, 7, 0)->ebx & B(9))
        assert_string_equal(m2, "leaf 0x7.0 EBX bit 9, leaf 0x80000001 EDX bit 27");
    else
        fail_msg("the fake Xeon lacks RDTSCP or ERMS");
    assert_null(cpuid_missing_features(less, host));

    /* bits KVM keeps in step with the guest, or vmm's topology: not features */
    g_autofree struct kvm_cpuid2 *osx = cpuid_build(sup, CPU_MODEL_HOST, 0, 4);
    cpuid_find(osx, 1, 0)->ecx |= B(27);
    cpuid_find(osx, 7, 0)->ecx |= B(4);
    g_autofree struct kvm_cpuid2 *one = cpuid_build(sup, CPU_MODEL_HOST, 0, 1);
    assert_null(cpuid_missing_features(osx, one));

    /* another vendor */
    g_autofree struct kvm_cpuid2 *amd_sup = fake_amd_epyc();
    g_autofree struct kvm_cpuid2 *amd = cpuid_build(amd_sup, CPU_MODEL_BASELINE, 0, 4);
    g_autofree char *v = cpuid_missing_features(base, amd);
    assert_string_equal(v, "vendor GenuineIntel, this host AuthenticAMD");

    /* a leaf this host does not have at all counts as all zeros */
    g_autofree struct kvm_cpuid2 *nod = cpuid_build(sup, CPU_MODEL_BASELINE, 0, 4);
    g_autofree char *d = cpuid_missing_features(host, nod);
    assert_non_null(strstr(d, "leaf 0xd.0 EAX bits"));
}

static void test_debug_hide_refusals(void **state)
{
    static const char *const bad[] = { "", "1", "1.ecx", "1.ecx=", "1.efx=1", "1.ecx=zz", "x.ecx=1",
                                       "1.ecx=0x100000000", "1.0.ecx=1,", "1.ecx=1 " };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree struct kvm_cpuid2 *sup = fake_intel_xeon();
        g_autoptr(GError) err = NULL;
        if (cpuid_debug_hide(sup, bad[i], &err) == 0)
            fail_msg("'%s' was taken", bad[i]);
        assert_non_null(strstr(err->message, "VMM_DEBUG_CPUID_HIDE"));
    }
    g_autofree struct kvm_cpuid2 *sup = fake_intel_xeon();
    g_autoptr(GError) err = NULL;
    uint32_t before = cpuid_find(sup, 1, 0)->ecx;
    assert_int_equal(cpuid_debug_hide(sup, "1.ecx=0x3", &err), 0);
    assert_int_equal(cpuid_find(sup, 1, 0)->ecx, before & ~3u);
}

/* A real KVM must accept every table we build. */
static void test_kvm_accepts_tables(void **state)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        skip();
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        close(kvm);     /* something at /dev/kvm, but not KVM */
        skip();
    }
    g_autoptr(GError) err = NULL;
    g_autofree struct kvm_cpuid2 *sup = cpuid_get_supported(kvm, &err);
    assert_non_null(sup);
    print_message("KVM_GET_SUPPORTED_CPUID: %u entries\n", sup->nent);
    static const unsigned cases[][2] = { { 0, 1 }, { 0, 4 }, { 1, 4 }, { 3, 4 }, { 254, 255 } };
    for (int m = CPU_MODEL_HOST; m <= CPU_MODEL_BASELINE; m++) {
        for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
            unsigned idx = cases[k][0], nr = cases[k][1];
            int vm = ioctl(kvm, KVM_CREATE_VM, 0);
            assert_true(vm >= 0);
            int vcpu = ioctl(vm, KVM_CREATE_VCPU, idx);
            assert_true(vcpu >= 0);
            g_autofree struct kvm_cpuid2 *c = cpuid_build(sup, m, idx, nr);
            if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0)
                fail_msg("KVM_SET_CPUID2 (%s, vCPU %u of %u, %u entries): %s",
                         m == CPU_MODEL_HOST ? "host" : "baseline", idx, nr, c->nent, g_strerror(errno));
            /* Read back what KVM kept. A KVM may add leaves of its own, so
             * the buffer has room; it may also force feature bits on (a
             * kvm_pvm host shows its CPU's SSE3..AVX): cpuid_added_features
             * must name exactly those, and vmm warns with its answer. */
            const unsigned room = c->nent + 64;
            g_autofree struct kvm_cpuid2 *back = g_malloc0(sizeof(*back) + room * sizeof(back->entries[0]));
            back->nent = room;
            if (ioctl(vcpu, KVM_GET_CPUID2, back) < 0)
                fail_msg("KVM_GET_CPUID2: %s", g_strerror(errno));
            g_autofree char *forced = cpuid_added_features(c, back);
            uint32_t forced1 = cpuid_find(back, 1, 0)->ecx & ~cpuid_find(c, 1, 0)->ecx & ~B(27);
            assert_true((forced1 != 0) == (forced != NULL && strstr(forced, "1.ECX") != NULL));
            if (forced)
                print_message("KVM forces on: %s\n", forced);
            assert_int_equal(cpuid_find(back, 1, 0)->ebx >> 24, idx);
            assert_int_equal(cpuid_find(back, 0xb, 1)->ebx & 0xffff, nr);
            assert_false(cpuid_find(back, 1, 0)->ecx & B(5));
            assert_false(cpuid_find(back, 0x80000001, 0)->ecx & B(2));
            if (m == CPU_MODEL_BASELINE) {
                if (!(forced1 & B(26)))     /* XSAVE state only where KVM forces XSAVE on */
                    assert_null(cpuid_find(back, 0xd, 0));
                assert_false(cpuid_find(back, 1, 0)->ecx & B(28) & ~forced1);
            }
            print_message("%s vCPU %u/%u: KVM_SET_CPUID2 accepted %u entries\n",
                          m == CPU_MODEL_HOST ? "host" : "baseline", idx, nr, c->nent);
            close(vcpu);
            close(vm);
        }
    }
    close(kvm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology),
        cmocka_unit_test(test_hypervisor_and_pv_leaves),
        cmocka_unit_test(test_pv_leaves_added_when_absent),
        cmocka_unit_test(test_vmx_svm_hidden),
        cmocka_unit_test(test_nested_exposed),
        cmocka_unit_test(test_baseline_masks),
        cmocka_unit_test(test_host_keeps_avx),
        cmocka_unit_test(test_input_unmodified),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_added_features),
        cmocka_unit_test(test_set_apic_id),
        cmocka_unit_test(test_missing_features),
        cmocka_unit_test(test_debug_hide_refusals),
        cmocka_unit_test(test_kvm_accepts_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
