#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/aml.h"

/* Serializes a node and compares its bytes with the expected ones. */
static void expect_bytes(struct aml *a, const uint8_t *want, size_t n)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    aml_serialize(b, a);
    if (b->len != n || memcmp(b->data, want, n) != 0) {
        for (guint i = 0; i < b->len; i++)
            print_message("%02x%s", b->data[i], i + 1 == b->len ? "\n" : " ");
    }
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

#define EXPECT(node, ...)                                                   \
    do {                                                                    \
        static const uint8_t want_[] = { __VA_ARGS__ };                     \
        expect_bytes((node), want_, sizeof(want_));                         \
    } while (0)

static void expect_pkglength(size_t payload, const uint8_t *want, size_t n)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    assert_true(aml_put_pkglength(b, payload));
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_pkglength_boundaries(void **state)
{
    /* Encoded value = payload + the PkgLength bytes themselves. */
    expect_pkglength(0, (const uint8_t[]){ 0x01 }, 1);
    expect_pkglength(62, (const uint8_t[]){ 0x3f }, 1);             /* 63: last 1-byte value */
    expect_pkglength(63, (const uint8_t[]){ 0x41, 0x04 }, 2);       /* 64 does not fit: 65 in 2 */
    expect_pkglength(4093, (const uint8_t[]){ 0x4f, 0xff }, 2);     /* 4095: last 2-byte value */
    expect_pkglength(4094, (const uint8_t[]){ 0x81, 0x00, 0x01 }, 3); /* 4096 does not fit: 4097 in 3 */
    expect_pkglength((1u << 20) - 4, (const uint8_t[]){ 0x8f, 0xff, 0xff }, 3);
    expect_pkglength((1u << 20) - 3, (const uint8_t[]){ 0xc1, 0x00, 0x00, 0x01 }, 4);
    expect_pkglength((1u << 28) - 5, (const uint8_t[]){ 0xcf, 0xff, 0xff, 0xff }, 4);

    g_autoptr(GByteArray) b = g_byte_array_new();
    assert_false(aml_put_pkglength(b, (1u << 28) - 4));
    assert_int_equal(b->len, 0);
}

static void test_pkglength_in_blocks(void **state)
{
    /* A 300-byte buffer: BufferSize WordConst (3 bytes) + 300 = 303 payload. */
    uint8_t data[300];
    memset(data, 0xab, sizeof(data));
    g_autoptr(GByteArray) b = g_byte_array_new();
    aml_serialize(b, aml_buffer(data, sizeof(data)));
    assert_int_equal(b->len, 1 + 2 + 3 + 300);
    const uint8_t head[] = { 0x11, 0x41, 0x13, 0x0b, 0x2c, 0x01 };   /* 305 = 0x131 */
    assert_memory_equal(b->data, head, sizeof(head));

    /* A scope whose contents are exactly 62 bytes keeps a 1-byte PkgLength;
     * one byte more needs two. "\_SB" is 5 bytes, each Name(Xnnn, Zero) 6. */
    for (int extra = 0; extra <= 1; extra++) {
        struct aml *s = aml_scope("\\_SB");
        char name[5];
        for (int i = 0; i < 9; i++) {
            g_snprintf(name, sizeof(name), "N%03d", i);
            aml_append(s, aml_name_decl(name, aml_zero()));
        }
        aml_append(s, aml_string(extra ? "ab" : "a"));  /* 59 + 3 or 4 bytes: 62 or 63 */
        g_autoptr(GByteArray) o = g_byte_array_new();
        aml_serialize(o, s);
        assert_int_equal(o->data[0], 0x10);
        if (!extra) {
            assert_int_equal(o->len, 1 + 1 + 62);
            assert_int_equal(o->data[1], 63);
        } else {
            assert_int_equal(o->len, 1 + 2 + 63);
            assert_int_equal(o->data[1], 0x40 | (65 & 0x0f));
            assert_int_equal(o->data[2], 65 >> 4);
        }
    }
}

static void test_integers(void **state)
{
    EXPECT(aml_int(0), 0x00);
    EXPECT(aml_int(1), 0x01);
    EXPECT(aml_int(UINT64_MAX), 0xff);
    EXPECT(aml_int(2), 0x0a, 0x02);
    EXPECT(aml_int(0xff), 0x0a, 0xff);
    EXPECT(aml_int(0x100), 0x0b, 0x00, 0x01);
    EXPECT(aml_int(0xffff), 0x0b, 0xff, 0xff);
    EXPECT(aml_int(0x10000), 0x0c, 0x00, 0x00, 0x01, 0x00);
    EXPECT(aml_int(0xffffffff), 0x0c, 0xff, 0xff, 0xff, 0xff);
    EXPECT(aml_int(0x100000000ull), 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00);
    EXPECT(aml_int(0xfffffffffffffffeull), 0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    /* Explicit widths keep their prefix even for small values. */
    EXPECT(aml_byte(0), 0x0a, 0x00);
    EXPECT(aml_word(1), 0x0b, 0x01, 0x00);
    EXPECT(aml_dword(0x12345678), 0x0c, 0x78, 0x56, 0x34, 0x12);
    EXPECT(aml_qword(2), 0x0e, 0x02, 0, 0, 0, 0, 0, 0, 0);
    EXPECT(aml_zero(), 0x00);
    EXPECT(aml_one(), 0x01);
    EXPECT(aml_ones(), 0xff);
}

static void test_eisaid_and_strings(void **state)
{
    assert_int_equal(aml_eisaid_value("PNP0501"), 0x0105d041);
    assert_int_equal(aml_eisaid_value("PNP0C0C"), 0x0c0cd041);
    assert_int_equal(aml_eisaid_value("PNP0B00"), 0x000bd041);
    EXPECT(aml_eisaid("PNP0303"), 0x0c, 0x41, 0xd0, 0x03, 0x03);
    /* ACPI0013 is not an EISA ID (4 letters): it is a string _HID. */
    EXPECT(aml_string("ACPI0013"), 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00);
    EXPECT(aml_string(""), 0x0d, 0x00);
}

static void test_names(void **state)
{
    EXPECT(aml_name("RTC"), 'R', 'T', 'C', '_');
    EXPECT(aml_name("A"), 'A', '_', '_', '_');
    EXPECT(aml_name("_S5"), '_', 'S', '5', '_');
    EXPECT(aml_name("\\_SB.PWRB"), 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B');
    EXPECT(aml_name("\\_SB.PCI0.S08"), 0x5c, 0x2f, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'S', '0',
           '8', '_');
    EXPECT(aml_name("^^PWRB"), 0x5e, 0x5e, 'P', 'W', 'R', 'B');
    EXPECT(aml_name("\\"), 0x5c, 0x00);
    EXPECT(aml_local(0), 0x60);
    EXPECT(aml_local(7), 0x67);
    EXPECT(aml_arg(0), 0x68);
    EXPECT(aml_arg(6), 0x6e);
    EXPECT(aml_call("MTHD", aml_int(5), aml_one(), NULL), 'M', 'T', 'H', 'D', 0x0a, 0x05, 0x01);
    EXPECT(aml_call("\\_SB.CPUS.CSCN", NULL), 0x5c, 0x2f, 0x03, '_', 'S', 'B', '_', 'C', 'P', 'U', 'S', 'C',
           'S', 'C', 'N');
}

static void test_small_method(void **state)
{
    struct aml *m = aml_method("_STA", 0, AML_NOT_SERIALIZED);
    aml_append(m, aml_return(aml_int(0x0f)));
    EXPECT(m, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);

    /* The GED's _EVT, byte for byte as iasl -oa compiles the ASL:
     *   Method (_EVT, 1, Serialized) { Local0 = GDAT
     *     If ((Local0 & One)) { Notify (\_SB.PWRB, 0x80) } } */
    m = aml_method("_EVT", 1, AML_SERIALIZED);
    aml_append(m, aml_store(aml_name("GDAT"), aml_local(0)));
    struct aml *i = aml_if(aml_and(aml_local(0), aml_one(), NULL));
    aml_append(i, aml_notify(aml_name("\\_SB.PWRB"), aml_int(0x80)));
    aml_append(m, i);
    EXPECT(m, 0x14, 0x1f, '_', 'E', 'V', 'T', 0x09, 0x70, 'G', 'D', 'A', 'T', 0x60, 0xa0, 0x12, 0x7b, 0x60,
           0x01, 0x00, 0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80);

    /* Method (M7, 7, Serialized) flags: 7 args | serialized bit 3 */
    EXPECT(aml_method("M7", 7, AML_SERIALIZED), 0x14, 0x06, 'M', '7', '_', '_', 0x0f);
}

static void test_control_flow(void **state)
{
    struct aml *l = aml_list();
    struct aml *i = aml_if(aml_lequal(aml_arg(0), aml_int(5)));
    aml_append(i, aml_return(aml_one()));
    aml_append(l, i);
    struct aml *e = aml_else();
    aml_append(e, aml_return(aml_zero()));
    aml_append(l, e);
    EXPECT(l, 0xa0, 0x07, 0x93, 0x68, 0x0a, 0x05, 0xa4, 0x01, 0xa1, 0x03, 0xa4, 0x00);

    struct aml *w = aml_while(aml_lless(aml_local(0), aml_int(4)));
    aml_append(w, aml_increment(aml_local(0)));
    aml_append(w, aml_break());
    EXPECT(w, 0xa2, 0x08, 0x95, 0x60, 0x0a, 0x04, 0x75, 0x60, 0xa5);

    EXPECT(aml_land(aml_one(), aml_lnot(aml_zero())), 0x90, 0x01, 0x92, 0x00);
    EXPECT(aml_lor(aml_lgreater(aml_arg(1), aml_zero()), aml_one()), 0x91, 0x94, 0x69, 0x00, 0x01);
    EXPECT(aml_or(aml_local(1), aml_int(2), aml_local(1)), 0x7d, 0x61, 0x0a, 0x02, 0x61);
    EXPECT(aml_add(aml_local(1), aml_one(), NULL), 0x72, 0x61, 0x01, 0x00);
    EXPECT(aml_subtract(aml_local(1), aml_one(), aml_local(2)), 0x74, 0x61, 0x01, 0x62);
    EXPECT(aml_shiftleft(aml_one(), aml_arg(0), NULL), 0x79, 0x01, 0x68, 0x00);
    EXPECT(aml_shiftright(aml_arg(0), aml_int(3), NULL), 0x7a, 0x68, 0x0a, 0x03, 0x00);
    EXPECT(aml_derefof(aml_index(aml_arg(0), aml_zero(), NULL)), 0x83, 0x88, 0x68, 0x00, 0x00);
    EXPECT(aml_sizeof(aml_arg(0)), 0x87, 0x68);
    EXPECT(aml_decrement(aml_local(3)), 0x76, 0x63);
    EXPECT(aml_create_dword_field(aml_arg(0), aml_int(4), "DW1"), 0x8a, 0x68, 0x0a, 0x04, 'D', 'W', '1', '_');
    EXPECT(aml_create_qword_field(aml_arg(0), aml_int(8), "QW1"), 0x8f, 0x68, 0x0a, 0x08, 'Q', 'W', '1', '_');
}

static void test_namespace_objects(void **state)
{
    EXPECT(aml_opregion("GDST", AML_SYSTEM_IO, 0x604, 4), 0x5b, 0x80, 'G', 'D', 'S', 'T', 0x01, 0x0b, 0x04,
           0x06, 0x0a, 0x04);
    EXPECT(aml_opregion("MEM", AML_SYSTEM_MEMORY, 0xfed00000, 0x100), 0x5b, 0x80, 'M', 'E', 'M', '_', 0x00,
           0x0c, 0x00, 0x00, 0xd0, 0xfe, 0x0b, 0x00, 0x01);

    struct aml *f = aml_field("GDST", AML_DWORD_ACC, AML_NOLOCK, AML_PRESERVE);
    aml_append(f, aml_named_field("GDAT", 32));
    EXPECT(f, 0x5b, 0x81, 0x0b, 'G', 'D', 'S', 'T', 0x03, 'G', 'D', 'A', 'T', 0x20);

    /* Flags: ByteAcc | Lock << 4 | WriteAsZeros << 5; a reserved gap; a
     * 64-bit field needs a 2-byte bit count. */
    f = aml_field("PRST", AML_BYTE_ACC, AML_LOCK, AML_WRITE_AS_ZEROS);
    aml_append(f, aml_reserved_field(8));
    aml_append(f, aml_named_field("CINS", 1));
    aml_append(f, aml_named_field("WIDE", 64));
    EXPECT(f, 0x5b, 0x81, 0x13, 'P', 'R', 'S', 'T', 0x51, 0x00, 0x08, 'C', 'I', 'N', 'S', 0x01, 'W', 'I', 'D',
           'E', 0x40, 0x04);

    struct aml *d = aml_device("PWRB");
    aml_append(d, aml_name_decl("_HID", aml_eisaid("PNP0C0C")));
    EXPECT(d, 0x5b, 0x82, 0x0f, 'P', 'W', 'R', 'B', 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c);

    struct aml *p = aml_package();
    aml_append(p, aml_int(5));
    for (int k = 0; k < 3; k++)
        aml_append(p, aml_zero());
    EXPECT(aml_name_decl("\\_S5", p), 0x08, 0x5c, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00,
           0x00, 0x00);

    EXPECT(aml_mutex("MLCK", 0), 0x5b, 0x01, 'M', 'L', 'C', 'K', 0x00);
    EXPECT(aml_acquire(aml_name("MLCK"), 0xffff), 0x5b, 0x23, 'M', 'L', 'C', 'K', 0xff, 0xff);
    EXPECT(aml_release(aml_name("MLCK")), 0x5b, 0x27, 'M', 'L', 'C', 'K');
    EXPECT(aml_sleep(aml_int(10)), 0x5b, 0x22, 0x0a, 0x0a);
}

static void test_var_package(void **state)
{
    /* More than 255 elements: VarPackageOp with a TermArg count. */
    struct aml *p = aml_package();
    for (int k = 0; k < 256; k++)
        aml_append(p, aml_zero());
    g_autoptr(GByteArray) b = g_byte_array_new();
    aml_serialize(b, p);
    /* 0x13, PkgLength (2 bytes), WordConst 256 (3 bytes), 256 zeros */
    assert_int_equal(b->len, 1 + 2 + 3 + 256);
    size_t v = 2 + 3 + 256;
    const uint8_t head[] = { 0x13, (uint8_t)(0x40 | (v & 0x0f)), (uint8_t)(v >> 4), 0x0b, 0x00, 0x01 };
    assert_memory_equal(b->data, head, sizeof(head));
}

static void test_resource_templates(void **state)
{
    struct aml *r = aml_resource_template();
    aml_append(r, aml_io(0x3f8, 0x3f8, 1, 8));
    aml_append(r, aml_irq_noflags(4));
    EXPECT(r, 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79,
           0x00);

    r = aml_resource_template();
    aml_append(r, aml_ext_irq(5, AML_IRQ_EDGE | AML_IRQ_ACTIVE_HIGH | AML_IRQ_EXCLUSIVE));
    EXPECT(r, 0x11, 0x0e, 0x0a, 0x0b, 0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, 0x79, 0x00);

    /* Level, active low, shared: flags consumer | low | shared = 0x0d */
    r = aml_resource_template();
    aml_append(r, aml_ext_irq(0x20, AML_IRQ_LEVEL | AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED));
    EXPECT(r, 0x11, 0x0e, 0x0a, 0x0b, 0x89, 0x06, 0x00, 0x0d, 0x01, 0x20, 0x00, 0x00, 0x00, 0x79, 0x00);

    r = aml_resource_template();
    aml_append(r, aml_memory32_fixed(0xfec00000, 0x1000, true));
    EXPECT(r, 0x11, 0x11, 0x0a, 0x0e, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xc0, 0xfe, 0x00, 0x10, 0x00, 0x00,
           0x79, 0x00);

    /* Bridge windows, byte for byte as iasl compiles WordBusNumber, WordIO,
     * DWordMemory and QWordMemory (producer, MinFixed, MaxFixed, PosDecode). */
    EXPECT(aml_word_bus_number(0, 0xff), 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00,
           0x00, 0x00, 0x00, 0x01);
    EXPECT(aml_word_io(0x0d00, 0xffff), 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff,
           0x00, 0x00, 0x00, 0xf3);
    EXPECT(aml_dword_memory(0xc0000000, 0xdfffffff, false), 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,
           0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20);
    EXPECT(aml_qword_memory(0x8000000000ull, 0xffffffffffull, true), 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03,
           0, 0, 0, 0, 0, 0, 0, 0,
           0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
           0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
           0, 0, 0, 0, 0, 0, 0, 0,
           0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00);

    /* An empty template is just the end tag. */
    EXPECT(aml_resource_template(), 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkglength_boundaries),
        cmocka_unit_test(test_pkglength_in_blocks),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_eisaid_and_strings),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_small_method),
        cmocka_unit_test(test_control_flow),
        cmocka_unit_test(test_namespace_objects),
        cmocka_unit_test(test_var_package),
        cmocka_unit_test(test_resource_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
