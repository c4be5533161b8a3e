#include "vmm/state.h"

#include <string.h>

static const char magic[8] = { 'V', 'M', 'M', 'S', 'T', 'A', 'T', 'E' };
#define END_MARKER 0xffffu     /* a name length no section can have */
#define NAME_MAX_LEN 255u

struct state_writer {
    GByteArray *buf;
    gsize section_len_at;   /* offset of the open section's u64 length, or 0 */
};

struct state_reader {
    GBytes *stream;
    const uint8_t *p;
    gsize len;              /* of the stream minus the trailing CRC */
    gsize pos;
    gsize section_end;      /* 0 when no section is open */
    gboolean failed;
};

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, gsize n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void put_le(GByteArray *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    g_byte_array_append(b, tmp, n);
}

struct state_writer *state_writer_new(void)
{
    struct state_writer *w = g_new0(struct state_writer, 1);
    w->buf = g_byte_array_new();
    g_byte_array_append(w->buf, (const guint8 *)magic, sizeof(magic));
    put_le(w->buf, STATE_FORMAT_VERSION, 4);
    return w;
}

void state_writer_free(struct state_writer *w)
{
    if (!w)
        return;
    g_byte_array_unref(w->buf);
    g_free(w);
}

void state_begin_section(struct state_writer *w, const char *name, uint32_t version)
{
    g_assert(w->section_len_at == 0);
    gsize n = strlen(name);
    g_assert(n > 0 && n <= NAME_MAX_LEN);
    put_le(w->buf, n, 2);
    g_byte_array_append(w->buf, (const guint8 *)name, (guint)n);
    put_le(w->buf, version, 4);
    w->section_len_at = w->buf->len;
    put_le(w->buf, 0, 8);
}

void state_end_section(struct state_writer *w)
{
    g_assert(w->section_len_at != 0);
    uint64_t len = w->buf->len - w->section_len_at - 8;
    for (unsigned i = 0; i < 8; i++)
        w->buf->data[w->section_len_at + i] = (uint8_t)(len >> (8 * i));
    w->section_len_at = 0;
}

void state_put_u8(struct state_writer *w, uint8_t v) { put_le(w->buf, v, 1); }
void state_put_u16(struct state_writer *w, uint16_t v) { put_le(w->buf, v, 2); }
void state_put_u32(struct state_writer *w, uint32_t v) { put_le(w->buf, v, 4); }
void state_put_u64(struct state_writer *w, uint64_t v) { put_le(w->buf, v, 8); }

void state_put_bytes(struct state_writer *w, const void *p, size_t len)
{
    g_byte_array_append(w->buf, p, (guint)len);
}

void state_put_str(struct state_writer *w, const char *s)
{
    if (!s) {
        put_le(w->buf, 0xffffffffu, 4);
        return;
    }
    size_t n = strlen(s);
    g_assert(n < 0xffffffffu);
    put_le(w->buf, n, 4);
    g_byte_array_append(w->buf, (const guint8 *)s, (guint)n);
}

GBytes *state_writer_finish(struct state_writer *w)
{
    g_assert(w->section_len_at == 0);
    put_le(w->buf, END_MARKER, 2);
    put_le(w->buf, crc32_update(0, w->buf->data, w->buf->len), 4);
    GBytes *out = g_byte_array_free_to_bytes(w->buf);
    g_free(w);
    return out;
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

struct state_reader *state_reader_new(GBytes *stream, GError **err)
{
    gsize n;
    const uint8_t *p = g_bytes_get_data(stream, &n);
    if (n < sizeof(magic) + 4 + 2 + 4 || memcmp(p, magic, sizeof(magic)) != 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "not a vmm state stream (bad magic or too short)");
        return NULL;
    }
    uint32_t ver = (uint32_t)get_le(p + sizeof(magic), 4);
    if (ver > STATE_FORMAT_VERSION) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "state stream format %u is newer than this vmm understands (%u)", ver, STATE_FORMAT_VERSION);
        return NULL;
    }
    uint32_t want = (uint32_t)get_le(p + n - 4, 4);
    if (crc32_update(0, p, n - 4) != want) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state stream checksum mismatch (corrupted)");
        return NULL;
    }
    struct state_reader *r = g_new0(struct state_reader, 1);
    r->stream = g_bytes_ref(stream);
    r->p = p;
    r->len = n - 4;
    r->pos = sizeof(magic) + 4;
    return r;
}

void state_reader_free(struct state_reader *r)
{
    if (!r)
        return;
    g_bytes_unref(r->stream);
    g_free(r);
}

int state_open_section(struct state_reader *r, const char *name, uint32_t max_version, uint32_t *version,
                       GError **err)
{
    if (r->section_end != 0 || r->failed) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: section '%s' opened out of order", name);
        return -1;
    }
    if (r->len - r->pos < 2) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: truncated before section '%s'", name);
        return -1;
    }
    uint64_t nlen = get_le(r->p + r->pos, 2);
    if (nlen == END_MARKER) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: section '%s' missing (stream ends)", name);
        return -1;
    }
    if (nlen == 0 || nlen > NAME_MAX_LEN || r->len - r->pos < 2 + nlen + 4 + 8) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: malformed section header before '%s'", name);
        return -1;
    }
    const char *found = (const char *)r->p + r->pos + 2;
    if (nlen != strlen(name) || memcmp(found, name, nlen) != 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "state: expected section '%s', found '%.*s' (a section this vmm does not know, or a "
                    "snapshot of another machine)", name,
                    (int)nlen, found);
        return -1;
    }
    gsize at = r->pos + 2 + nlen;
    uint32_t ver = (uint32_t)get_le(r->p + at, 4);
    uint64_t plen = get_le(r->p + at + 4, 8);
    at += 12;
    if (ver > max_version) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "state: section '%s' version %u is newer than this vmm understands (%u)", name, ver,
                    max_version);
        return -1;
    }
    if (plen > r->len - at) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: section '%s' is truncated", name);
        return -1;
    }
    r->pos = at;
    r->section_end = at + plen;
    if (version)
        *version = ver;
    return 0;
}

int state_close_section(struct state_reader *r, GError **err)
{
    if (r->section_end == 0 || r->failed || r->pos != r->section_end) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    r->failed ? "state: a section was shorter than its reader expected"
                              : "state: a section has data its reader did not expect");
        return -1;
    }
    r->section_end = 0;
    return 0;
}

static const uint8_t *take(struct state_reader *r, size_t n)
{
    if (r->failed || r->section_end == 0 || r->section_end - r->pos < n) {
        r->failed = TRUE;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

#define GETTER(name, type, n)                                   \
    int name(struct state_reader *r, type *v)                   \
    {                                                           \
        const uint8_t *p = take(r, n);                          \
        if (!p)                                                 \
            return -1;                                          \
        *v = (type)get_le(p, n);                                \
        return 0;                                               \
    }
GETTER(state_get_u8, uint8_t, 1)
GETTER(state_get_u16, uint16_t, 2)
GETTER(state_get_u32, uint32_t, 4)
GETTER(state_get_u64, uint64_t, 8)

int state_get_bytes(struct state_reader *r, void *out, size_t len)
{
    const uint8_t *p = take(r, len);
    if (!p)
        return -1;
    memcpy(out, p, len);
    return 0;
}

gboolean state_reader_at_end(struct state_reader *r)
{
    return r->section_end == 0 && !r->failed && r->len - r->pos == 2 && get_le(r->p + r->pos, 2) == END_MARKER;
}

int state_get_str(struct state_reader *r, char **s, size_t max_len)
{
    uint32_t n;
    *s = NULL;
    if (state_get_u32(r, &n) < 0)
        return -1;
    if (n == 0xffffffffu)
        return 0;
    if (n > max_len) {
        r->failed = TRUE;
        return -1;
    }
    const uint8_t *p = take(r, n);
    if (!p || memchr(p, 0, n)) {
        r->failed = TRUE;
        return -1;
    }
    *s = g_strndup((const char *)p, n);
    return 0;
}
