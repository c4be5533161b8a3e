/* vCPU state in the stream (vmm/cpu_state.c) over fake data: every record
 * round-trips byte for byte, and a reader refuses unknown, duplicated,
 * missing, wrongly sized and truncated records and a newer section. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vmm/cpu_state.h"
#include "vmm/state.h"

static void fill(void *p, size_t n, uint32_t seed)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16);
    }
}

/* Every record filled with distinct bytes; xsave (or fpu) and nested as asked. */
static void fake(struct cpu_state *s, bool xsave, bool nested, uint32_t nr_msrs)
{
    memset(s, 0, sizeof(*s));
    fill(&s->regs, sizeof(s->regs), 1);
    fill(&s->sregs, sizeof(s->sregs), 2);
    if (xsave) {
        s->xsave_size = 4096 + 1024;
        s->xsave = g_malloc(s->xsave_size);
        fill(s->xsave, s->xsave_size, 3);
    } else {
        fill(&s->fpu, sizeof(s->fpu), 4);
    }
    s->has_xcrs = true;
    fill(&s->xcrs, sizeof(s->xcrs), 5);
    s->nr_msrs = nr_msrs;
    s->msrs = g_new0(struct kvm_msr_entry, MAX(nr_msrs, 1u));
    for (uint32_t i = 0; i < nr_msrs; i++)
        s->msrs[i] = (struct kvm_msr_entry){ .index = 0xc0000080u + i, .data = 0x1111111111111111ull * (i + 1) };
    fill(&s->events, sizeof(s->events), 6);
    s->has_debugregs = true;
    fill(&s->debugregs, sizeof(s->debugregs), 7);
    fill(&s->lapic, sizeof(s->lapic), 8);
    s->mp.mp_state = KVM_MP_STATE_HALTED;
    if (nested) {
        s->nested_size = sizeof(struct kvm_nested_state) + 256;
        s->nested = g_malloc0(s->nested_size);
        fill(s->nested + sizeof(struct kvm_nested_state), 256, 9);
        struct kvm_nested_state *ns = (void *)s->nested;
        ns->format = KVM_STATE_NESTED_FORMAT_SVM;
        ns->size = s->nested_size;
    }
}

static void assert_same(const struct cpu_state *a, const struct cpu_state *b)
{
    assert_memory_equal(&a->regs, &b->regs, sizeof(a->regs));
    assert_memory_equal(&a->sregs, &b->sregs, sizeof(a->sregs));
    assert_int_equal(a->xsave_size, b->xsave_size);
    if (a->xsave_size)
        assert_memory_equal(a->xsave, b->xsave, a->xsave_size);
    else
        assert_memory_equal(&a->fpu, &b->fpu, sizeof(a->fpu));
    assert_int_equal(a->has_xcrs, b->has_xcrs);
    assert_memory_equal(&a->xcrs, &b->xcrs, sizeof(a->xcrs));
    assert_int_equal(a->nr_msrs, b->nr_msrs);
    if (a->nr_msrs)
        assert_memory_equal(a->msrs, b->msrs, a->nr_msrs * sizeof(struct kvm_msr_entry));
    assert_memory_equal(&a->events, &b->events, sizeof(a->events));
    assert_int_equal(a->has_debugregs, b->has_debugregs);
    assert_memory_equal(&a->debugregs, &b->debugregs, sizeof(a->debugregs));
    assert_memory_equal(&a->lapic, &b->lapic, sizeof(a->lapic));
    assert_int_equal(a->mp.mp_state, b->mp.mp_state);
    assert_int_equal(a->nested_size, b->nested_size);
    if (a->nested_size)
        assert_memory_equal(a->nested, b->nested, a->nested_size);
}

static void round_trip(bool xsave, bool nested, uint32_t nr_msrs)
{
    struct cpu_state a, b;
    fake(&a, xsave, nested, nr_msrs);
    struct state_writer *w = state_writer_new();
    cpu_state_save(w, 3, &a);
    cpu_state_save(w, 4, &a);
    g_autoptr(GBytes) s = state_writer_finish(w);
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_non_null(r);
    unsigned index = 99;
    assert_int_equal(cpu_state_load(r, &index, &b, &err), 0);
    assert_null(err);
    assert_int_equal(index, 3);
    assert_same(&a, &b);
    cpu_state_clear(&b);
    assert_int_equal(cpu_state_load(r, &index, &b, &err), 0);
    assert_int_equal(index, 4);
    assert_same(&a, &b);
    assert_true(state_reader_at_end(r));
    cpu_state_clear(&b);
    cpu_state_clear(&a);
    state_reader_free(r);
}

static void test_round_trip_xsave_nested(void **state) { round_trip(true, true, 40); }
static void test_round_trip_fpu(void **state) { round_trip(false, false, 3); }
static void test_round_trip_no_msrs(void **state) { round_trip(true, false, 0); }

/* A hand-made "vcpu" section: index, then records given as (tag, len, fill). */
struct rec {
    uint16_t tag;
    uint32_t len;
};

static GBytes *forge(uint32_t version, const struct rec *recs, unsigned n, bool end)
{
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "vcpu", version);
    state_put_u32(w, 0);
    for (unsigned i = 0; i < n; i++) {
        state_put_u16(w, recs[i].tag);
        state_put_u32(w, recs[i].len);
        g_autofree uint8_t *p = g_malloc0(recs[i].len + 1);
        if (recs[i].tag == 11 && recs[i].len >= sizeof(struct kvm_nested_state))
            ((struct kvm_nested_state *)p)->size = recs[i].len;
        state_put_bytes(w, p, recs[i].len);
    }
    if (end)
        state_put_u16(w, 0);
    state_end_section(w);
    return state_writer_finish(w);
}

#define R_REGS { 1, sizeof(struct kvm_regs) }
#define R_SREGS { 2, sizeof(struct kvm_sregs) }
#define R_XSAVE { 3, 4096 }
#define R_FPU { 4, sizeof(struct kvm_fpu) }
#define R_MSRS { 6, 2 * sizeof(struct kvm_msr_entry) }
#define R_EVENTS { 7, sizeof(struct kvm_vcpu_events) }
#define R_LAPIC { 9, sizeof(struct kvm_lapic_state) }
#define R_MP { 10, sizeof(struct kvm_mp_state) }

static void expect_refused(GBytes *s, const char *needle)
{
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_non_null(r);
    struct cpu_state cs;
    unsigned index;
    assert_int_equal(cpu_state_load(r, &index, &cs, &err), -1);
    cpu_state_clear(&cs);
    assert_non_null(err);
    if (!strstr(err->message, needle))
        fail_msg("\"%s\" does not mention \"%s\"", err->message, needle);
    state_reader_free(r);
}

static void test_minimal_loads(void **state)
{
    const struct rec recs[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s = forge(1, recs, G_N_ELEMENTS(recs), true);
    struct state_reader *r = state_reader_new(s, NULL);
    struct cpu_state cs;
    unsigned index = 7;
    assert_int_equal(cpu_state_load(r, &index, &cs, NULL), 0);
    assert_int_equal(index, 0);
    assert_int_equal(cs.nr_msrs, 2);
    assert_false(cs.has_xcrs);
    assert_false(cs.has_debugregs);
    assert_int_equal(cs.xsave_size, 0);
    cpu_state_clear(&cs);
    state_reader_free(r);
}

static void test_unknown_record(void **state)
{
    const struct rec recs[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP, { 12, 8 } };
    g_autoptr(GBytes) s = forge(1, recs, G_N_ELEMENTS(recs), true);
    expect_refused(s, "unknown record");
}

static void test_duplicate_record(void **state)
{
    const struct rec recs[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP, R_REGS };
    g_autoptr(GBytes) s = forge(1, recs, G_N_ELEMENTS(recs), true);
    expect_refused(s, "twice");
}

static void test_missing_record(void **state)
{
    const struct rec no_lapic[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_MP };
    g_autoptr(GBytes) s1 = forge(1, no_lapic, G_N_ELEMENTS(no_lapic), true);
    expect_refused(s1, "mandatory");
    const struct rec no_fpu[] = { R_REGS, R_SREGS, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s2 = forge(1, no_fpu, G_N_ELEMENTS(no_fpu), true);
    expect_refused(s2, "mandatory");
    const struct rec both[] = { R_REGS, R_SREGS, R_FPU, R_XSAVE, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s3 = forge(1, both, G_N_ELEMENTS(both), true);
    expect_refused(s3, "mandatory");
}

static void test_wrong_sizes(void **state)
{
    const struct rec short_regs[] = { { 1, sizeof(struct kvm_regs) - 8 }, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s1 = forge(1, short_regs, G_N_ELEMENTS(short_regs), true);
    expect_refused(s1, "wrong size");
    const struct rec odd_msrs[] = { R_REGS, R_SREGS, R_FPU, { 6, 20 }, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s2 = forge(1, odd_msrs, G_N_ELEMENTS(odd_msrs), true);
    expect_refused(s2, "MSR");
    const struct rec tiny_xsave[] = { R_REGS, R_SREGS, { 3, 512 }, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s3 = forge(1, tiny_xsave, G_N_ELEMENTS(tiny_xsave), true);
    expect_refused(s3, "XSAVE");
    const struct rec tiny_nested[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP, { 11, 16 } };
    g_autoptr(GBytes) s4 = forge(1, tiny_nested, G_N_ELEMENTS(tiny_nested), true);
    expect_refused(s4, "nested");
}

static void test_no_end_marker(void **state)
{
    const struct rec recs[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s = forge(1, recs, G_N_ELEMENTS(recs), false);
    expect_refused(s, "truncated");
}

static void test_newer_version(void **state)
{
    const struct rec recs[] = { R_REGS, R_SREGS, R_FPU, R_MSRS, R_EVENTS, R_LAPIC, R_MP };
    g_autoptr(GBytes) s = forge(CPU_STATE_VERSION + 1, recs, G_N_ELEMENTS(recs), true);
    expect_refused(s, "newer");
}

static void test_other_section(void **state)
{
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "kvmclock", 1);
    state_put_u64(w, 5);
    state_end_section(w);
    g_autoptr(GBytes) s = state_writer_finish(w);
    expect_refused(s, "expected section 'vcpu'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_xsave_nested),
        cmocka_unit_test(test_round_trip_fpu),
        cmocka_unit_test(test_round_trip_no_msrs),
        cmocka_unit_test(test_minimal_loads),
        cmocka_unit_test(test_unknown_record),
        cmocka_unit_test(test_duplicate_record),
        cmocka_unit_test(test_missing_record),
        cmocka_unit_test(test_wrong_sizes),
        cmocka_unit_test(test_no_end_marker),
        cmocka_unit_test(test_newer_version),
        cmocka_unit_test(test_other_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
