/* The versioned state stream: round trips and every refusal the header promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vmm/state.h"

/* CRC-32 (IEEE 802.3, reflected, as zlib): lets a test forge a stream whose
 * checksum is right, so that a refusal is for the reason under test. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

static GBytes *reseal(GByteArray *b)
{
    uint32_t crc = crc32_ieee(b->data, b->len - 4);
    for (int i = 0; i < 4; i++)
        b->data[b->len - 4 + i] = (uint8_t)(crc >> (8 * i));
    return g_byte_array_free_to_bytes(b);
}

static GByteArray *mutable_copy(GBytes *s)
{
    gsize n;
    const uint8_t *p = g_bytes_get_data(s, &n);
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, p, (guint)n);
    return b;
}

static const uint8_t blob[] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f };

/* Two sections: "cpu" v2 with every type, "dev" v1 with one u32. */
static GBytes *sample(void)
{
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "cpu", 2);
    state_put_u8(w, 0xa5);
    state_put_u16(w, 0xbeef);
    state_put_u32(w, 0xdeadbeef);
    state_put_u64(w, 0x0123456789abcdefULL);
    state_put_bytes(w, blob, sizeof(blob));
    state_put_u64(w, UINT64_MAX);
    state_put_bytes(w, blob, 0);
    state_put_u8(w, 0);
    state_end_section(w);
    state_begin_section(w, "dev", 1);
    state_put_u32(w, 7);
    state_end_section(w);
    return state_writer_finish(w);
}

static void expect_reader_error(GBytes *s, const char *needle)
{
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_null(r);
    assert_non_null(err);
    if (!strstr(err->message, needle))
        fail_msg("\"%s\" does not mention \"%s\"", err->message, needle);
}

static void test_round_trip(void **state)
{
    g_autoptr(GBytes) s = sample();
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_non_null(r);
    assert_false(state_reader_at_end(r));

    uint32_t ver = 0;
    assert_int_equal(state_open_section(r, "cpu", 5, &ver, &err), 0);
    assert_int_equal(ver, 2);
    assert_false(state_reader_at_end(r));
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint8_t buf[sizeof(blob)];
    assert_int_equal(state_get_u8(r, &u8), 0);
    assert_int_equal(u8, 0xa5);
    assert_int_equal(state_get_u16(r, &u16), 0);
    assert_int_equal(u16, 0xbeef);
    assert_int_equal(state_get_u32(r, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(state_get_u64(r, &u64), 0);
    assert_true(u64 == 0x0123456789abcdefULL);
    assert_int_equal(state_get_bytes(r, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, blob, sizeof(blob));
    assert_int_equal(state_get_u64(r, &u64), 0);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(state_get_bytes(r, buf, 0), 0);
    assert_int_equal(state_get_u8(r, &u8), 0);
    assert_int_equal(u8, 0);
    assert_int_equal(state_close_section(r, &err), 0);
    assert_false(state_reader_at_end(r));

    assert_int_equal(state_open_section(r, "dev", 1, NULL, &err), 0);
    assert_int_equal(state_get_u32(r, &u32), 0);
    assert_int_equal(u32, 7);
    assert_int_equal(state_close_section(r, &err), 0);
    assert_true(state_reader_at_end(r));
    assert_null(err);

    /* Past the end: the next section is reported missing. */
    assert_int_equal(state_open_section(r, "more", 1, NULL, &err), -1);
    assert_non_null(strstr(err->message, "more"));
    state_reader_free(r);
}

static void test_layout_little_endian(void **state)
{
    g_autoptr(GBytes) s = sample();
    gsize n;
    const uint8_t *p = g_bytes_get_data(s, &n);
    static const uint8_t head[] = { 'V', 'M', 'M', 'S', 'T', 'A', 'T', 'E', 1, 0, 0, 0,   /* format 1 */
                                    3, 0, 'c', 'p', 'u', 2, 0, 0, 0 };                   /* "cpu" v2 */
    assert_true(n > sizeof(head) + 8);
    assert_memory_equal(p, head, sizeof(head));
    uint64_t plen = 0;
    for (int i = 0; i < 8; i++)
        plen |= (uint64_t)p[sizeof(head) + i] << (8 * i);
    assert_int_equal(plen, 1 + 2 + 4 + 8 + sizeof(blob) + 8 + 0 + 1);
    static const uint8_t payload[] = { 0xa5, 0xef, 0xbe, 0xef, 0xbe, 0xad, 0xde };
    assert_memory_equal(p + sizeof(head) + 8, payload, sizeof(payload));
    assert_int_equal(p[n - 6], 0xff);   /* end marker */
    assert_int_equal(p[n - 5], 0xff);
    uint32_t crc = (uint32_t)p[n - 4] | (uint32_t)p[n - 3] << 8 | (uint32_t)p[n - 2] << 16 |
                   (uint32_t)p[n - 1] << 24;
    assert_int_equal(crc, crc32_ieee(p, n - 4));
}

static void test_empty_stream(void **state)
{
    g_autoptr(GBytes) s = state_writer_finish(state_writer_new());
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_non_null(r);
    assert_true(state_reader_at_end(r));
    assert_int_equal(state_open_section(r, "cpu", 1, NULL, &err), -1);
    assert_non_null(err);
    state_reader_free(r);
}

static void test_bad_magic(void **state)
{
    g_autoptr(GBytes) s = sample();
    GByteArray *b = mutable_copy(s);
    b->data[0] = 'X';
    g_autoptr(GBytes) bad = reseal(b);
    expect_reader_error(bad, "magic");
    g_autoptr(GBytes) junk = g_bytes_new_static("hello", 5);
    expect_reader_error(junk, "magic");
}

static void test_newer_format(void **state)
{
    g_autoptr(GBytes) s = sample();
    GByteArray *b = mutable_copy(s);
    b->data[8] = STATE_FORMAT_VERSION + 1;
    g_autoptr(GBytes) bad = reseal(b);
    expect_reader_error(bad, "newer");
}

static void test_corrupted_byte(void **state)
{
    g_autoptr(GBytes) s = sample();
    gsize n = g_bytes_get_size(s);
    /* Any single flipped byte after the header, the CRC included. */
    for (gsize i = 12; i < n; i++) {
        GByteArray *b = mutable_copy(s);
        b->data[i] ^= 0x10;
        g_autoptr(GBytes) bad = g_byte_array_free_to_bytes(b);
        expect_reader_error(bad, "checksum");
    }
}

static void test_truncated(void **state)
{
    g_autoptr(GBytes) s = sample();
    gsize n = g_bytes_get_size(s);
    for (gsize len = 0; len < n; len++) {
        g_autoptr(GBytes) cut = g_bytes_new_from_bytes(s, 0, len);
        g_autoptr(GError) err = NULL;
        struct state_reader *r = state_reader_new(cut, &err);
        if (r)
            fail_msg("a stream cut to %zu of %zu bytes was accepted", len, n);
        assert_non_null(err);
    }
}

/* A well-sealed stream whose "cpu" section claims more payload than there is. */
static void test_section_longer_than_stream(void **state)
{
    g_autoptr(GBytes) s = sample();
    GByteArray *b = mutable_copy(s);
    b->data[12 + 2 + 3 + 4 + 7] = 0x01;     /* top byte of the u64 payload length */
    g_autoptr(GBytes) bad = reseal(b);
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(bad, &err);
    assert_non_null(r);
    assert_int_equal(state_open_section(r, "cpu", 2, NULL, &err), -1);
    assert_non_null(strstr(err->message, "truncated"));
    state_reader_free(r);
}

static void test_unexpected_section(void **state)
{
    g_autoptr(GBytes) s = sample();
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_int_equal(state_open_section(r, "dev", 1, NULL, &err), -1);
    assert_non_null(strstr(err->message, "'dev'"));
    assert_non_null(strstr(err->message, "'cpu'"));
    g_clear_error(&err);
    assert_int_equal(state_open_section(r, "cp", 2, NULL, &err), -1);     /* a prefix is not a match */
    g_clear_error(&err);
    assert_int_equal(state_open_section(r, "cpux", 2, NULL, &err), -1);
    g_clear_error(&err);
    /* A refused open leaves the reader where it was. */
    assert_int_equal(state_open_section(r, "cpu", 2, NULL, &err), 0);
    state_reader_free(r);
}

static void test_newer_section_version(void **state)
{
    g_autoptr(GBytes) s = sample();
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_int_equal(state_open_section(r, "cpu", 1, NULL, &err), -1);
    assert_non_null(strstr(err->message, "version 2"));
    state_reader_free(r);
}

static void test_under_read(void **state)
{
    g_autoptr(GBytes) s = sample();
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_int_equal(state_open_section(r, "cpu", 2, NULL, &err), 0);
    uint8_t u8;
    assert_int_equal(state_get_u8(r, &u8), 0);
    assert_int_equal(state_close_section(r, &err), -1);
    assert_non_null(strstr(err->message, "did not expect"));
    g_clear_error(&err);
    assert_false(state_reader_at_end(r));
    state_reader_free(r);
}

static void test_over_read(void **state)
{
    g_autoptr(GBytes) s = sample();
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    assert_int_equal(state_open_section(r, "cpu", 2, NULL, &err), 0);
    assert_int_equal(state_close_section(r, &err), -1);   /* nothing read yet */
    g_clear_error(&err);
    uint8_t big[64];
    assert_int_equal(state_get_bytes(r, big, sizeof(big)), -1);   /* longer than the payload */
    /* The reader stays failed, even for a read that would fit. */
    uint8_t u8;
    assert_int_equal(state_get_u8(r, &u8), -1);
    assert_int_equal(state_close_section(r, &err), -1);
    assert_non_null(strstr(err->message, "shorter"));
    g_clear_error(&err);
    assert_int_equal(state_open_section(r, "dev", 1, NULL, &err), -1);
    g_clear_error(&err);
    assert_false(state_reader_at_end(r));
    state_reader_free(r);

    /* Over-reading the last section does not run into the end marker. */
    r = state_reader_new(s, &err);
    assert_int_equal(state_open_section(r, "cpu", 2, NULL, &err), 0);
    assert_int_equal(state_get_bytes(r, big, 1 + 2 + 4 + 8 + sizeof(blob) + 8 + 1), 0);
    assert_int_equal(state_close_section(r, &err), 0);
    assert_int_equal(state_open_section(r, "dev", 1, NULL, &err), 0);
    uint64_t u64;
    assert_int_equal(state_get_u64(r, &u64), -1);
    assert_int_equal(state_close_section(r, &err), -1);
    assert_false(state_reader_at_end(r));
    state_reader_free(r);
}

static void test_reads_outside_sections(void **state)
{
    g_autoptr(GBytes) s = sample();
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(s, &err);
    uint32_t u32;
    assert_int_equal(state_get_u32(r, &u32), -1);      /* no section open */
    assert_int_equal(state_close_section(r, &err), -1);
    g_clear_error(&err);
    state_reader_free(r);

    r = state_reader_new(s, &err);
    assert_int_equal(state_open_section(r, "cpu", 2, NULL, &err), 0);
    assert_int_equal(state_open_section(r, "dev", 1, NULL, &err), -1);   /* nested */
    state_reader_free(r);
}

/* Strings: NULL, empty, text and a NUL-free byte run survive; a length
 * above the reader's bound, a NUL inside and a short payload are refused. */
static void test_strings(void **state)
{
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "s", 1);
    state_put_str(w, NULL);
    state_put_str(w, "");
    state_put_str(w, "disk0 /tmp/x.img");
    state_put_str(w, "0123456789");
    state_end_section(w);
    g_autoptr(GBytes) s = state_writer_finish(w);
    struct state_reader *r = state_reader_new(s, NULL);
    char *a = (char *)1, *b = NULL, *c = NULL, *d = NULL;
    assert_int_equal(state_open_section(r, "s", 1, NULL, NULL), 0);
    assert_int_equal(state_get_str(r, &a, 100), 0);
    assert_null(a);
    assert_int_equal(state_get_str(r, &b, 100), 0);
    assert_string_equal(b, "");
    assert_int_equal(state_get_str(r, &c, 100), 0);
    assert_string_equal(c, "disk0 /tmp/x.img");
    assert_int_equal(state_get_str(r, &d, 9), -1);      /* 10 bytes, bound 9 */
    assert_null(d);
    assert_int_equal(state_close_section(r, NULL), -1); /* the reader stays failed */
    g_free(b);
    g_free(c);
    state_reader_free(r);

    /* A NUL inside, and a length past the section. */
    w = state_writer_new();
    state_begin_section(w, "s", 1);
    state_put_u32(w, 3);
    state_put_bytes(w, "a\0b", 3);
    state_put_u32(w, 50);
    state_end_section(w);
    g_autoptr(GBytes) s2 = state_writer_finish(w);
    r = state_reader_new(s2, NULL);
    assert_int_equal(state_open_section(r, "s", 1, NULL, NULL), 0);
    assert_int_equal(state_get_str(r, &a, 100), -1);
    assert_null(a);
    state_reader_free(r);
    r = state_reader_new(s2, NULL);
    assert_int_equal(state_open_section(r, "s", 1, NULL, NULL), 0);
    uint8_t skip[7];
    assert_int_equal(state_get_bytes(r, skip, 7), 0);
    assert_int_equal(state_get_str(r, &a, 100), -1);    /* 50 bytes promised, none there */
    assert_null(a);
    state_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout_little_endian),
        cmocka_unit_test(test_empty_stream),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_newer_format),
        cmocka_unit_test(test_corrupted_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_section_longer_than_stream),
        cmocka_unit_test(test_unexpected_section),
        cmocka_unit_test(test_newer_section_version),
        cmocka_unit_test(test_under_read),
        cmocka_unit_test(test_over_read),
        cmocka_unit_test(test_reads_outside_sections),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
