#include "arch/x86/aml.h"

#include <stdarg.h>
#include <string.h>

/* Opcodes, ACPI 6.x section 20.3 */
#define ZERO_OP         0x00
#define ONE_OP          0x01
#define NAME_OP         0x08
#define BYTE_PREFIX     0x0a
#define WORD_PREFIX     0x0b
#define DWORD_PREFIX    0x0c
#define STRING_PREFIX   0x0d
#define QWORD_PREFIX    0x0e
#define SCOPE_OP        0x10
#define BUFFER_OP       0x11
#define PACKAGE_OP      0x12
#define VAR_PACKAGE_OP  0x13
#define METHOD_OP       0x14
#define DUAL_NAME       0x2e
#define MULTI_NAME      0x2f
#define EXT_PREFIX      0x5b
#define ROOT_CHAR       0x5c
#define PARENT_CHAR     0x5e
#define LOCAL0_OP       0x60
#define ARG0_OP         0x68
#define STORE_OP        0x70
#define ADD_OP          0x72
#define SUBTRACT_OP     0x74
#define INCREMENT_OP    0x75
#define DECREMENT_OP    0x76
#define SHIFT_LEFT_OP   0x79
#define SHIFT_RIGHT_OP  0x7a
#define AND_OP          0x7b
#define OR_OP           0x7d
#define DEREF_OF_OP     0x83
#define NOTIFY_OP       0x86
#define CREATE_DWORD_FIELD_OP 0x8a
#define CREATE_QWORD_FIELD_OP 0x8f
#define SIZE_OF_OP      0x87
#define INDEX_OP        0x88
#define LAND_OP         0x90
#define LOR_OP          0x91
#define LNOT_OP         0x92
#define LEQUAL_OP       0x93
#define LGREATER_OP     0x94
#define LLESS_OP        0x95
#define IF_OP           0xa0
#define ELSE_OP         0xa1
#define WHILE_OP        0xa2
#define RETURN_OP       0xa4
#define BREAK_OP        0xa5
#define ONES_OP         0xff
/* after EXT_PREFIX */
#define MUTEX_OP        0x01
#define SLEEP_OP        0x22
#define ACQUIRE_OP      0x23
#define RELEASE_OP      0x27
#define OPREGION_OP     0x80
#define FIELD_OP        0x81
#define DEVICE_OP       0x82

#define PKGLENGTH_MAX   ((1u << 28) - 1)

enum aml_kind {
    KIND_TERM,          /* body only */
    KIND_LIST,          /* body only; a container */
    KIND_BLOCK,         /* head, PkgLength, body */
    KIND_PACKAGE,       /* head, PkgLength, NumElements, body */
    KIND_BUFFER,        /* BufferOp, PkgLength, BufferSize, body */
    KIND_RESOURCES,     /* as KIND_BUFFER, plus the end tag */
};

struct aml {
    enum aml_kind kind;
    uint8_t head[2];
    unsigned head_len;
    GByteArray *body;
    unsigned count;     /* package elements */
};

static struct aml *node_new(enum aml_kind kind)
{
    struct aml *a = g_new0(struct aml, 1);
    a->kind = kind;
    a->body = g_byte_array_new();
    return a;
}

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_le(GByteArray *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        put_u8(b, (uint8_t)(v >> (8 * i)));
}

/* Appends a node's bytes, then frees it. */
static void put_node(GByteArray *b, struct aml *a)
{
    if (a)
        aml_serialize(b, a);
}

void aml_free(struct aml *a)
{
    if (!a)
        return;
    g_byte_array_unref(a->body);
    g_free(a);
}

/* PkgLength (20.2.4): bits 7-6 of the lead byte count the bytes that follow;
 * with followers, the lead byte keeps only 4 value bits. The encoded value
 * includes the PkgLength bytes themselves. */
bool aml_put_pkglength(GByteArray *out, size_t payload)
{
    static const size_t limit[4] = { 1u << 6, 1u << 12, 1u << 20, 1u << 28 };
    for (unsigned n = 1; n <= 4; n++) {
        if (payload + n >= limit[n - 1])
            continue;
        size_t v = payload + n;
        if (n == 1) {
            put_u8(out, (uint8_t)v);
        } else {
            put_u8(out, (uint8_t)(((n - 1) << 6) | (v & 0x0f)));
            for (unsigned i = 1; i < n; i++)
                put_u8(out, (uint8_t)(v >> (4 + 8 * (i - 1))));
        }
        return true;
    }
    return false;
}

/* A field element's length is a bit count in PkgLength form, not counting itself. */
static void put_field_bits(GByteArray *out, unsigned bits)
{
    if (bits < (1u << 6)) {
        put_u8(out, (uint8_t)bits);
        return;
    }
    unsigned n = bits < (1u << 12) ? 2 : bits < (1u << 20) ? 3 : 4;
    put_u8(out, (uint8_t)(((n - 1) << 6) | (bits & 0x0f)));
    for (unsigned i = 1; i < n; i++)
        put_u8(out, (uint8_t)(bits >> (4 + 8 * (i - 1))));
}

static bool is_lead_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_lead_char(c) || (c >= '0' && c <= '9');
}

static void put_nameseg(GByteArray *out, const char *seg, size_t len, const char *path)
{
    if (len == 0 || len > 4 || !is_lead_char(seg[0]))
        g_error("AML: bad name segment in \"%s\"", path);
    char s[4] = { '_', '_', '_', '_' };
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(seg[i]))
            g_error("AML: bad character in name \"%s\"", path);
        s[i] = seg[i];
    }
    g_byte_array_append(out, (const guint8 *)s, 4);
}

void aml_put_namestring(GByteArray *out, const char *path)
{
    const char *p = path;
    if (*p == '\\') {
        put_u8(out, ROOT_CHAR);
        p++;
    } else {
        while (*p == '^') {
            put_u8(out, PARENT_CHAR);
            p++;
        }
    }
    if (*p == '\0') {
        put_u8(out, ZERO_OP);   /* NullName */
        return;
    }
    g_auto(GStrv) segs = g_strsplit(p, ".", -1);
    guint n = g_strv_length(segs);
    if (n > 255)
        g_error("AML: too many segments in \"%s\"", path);
    if (n == 2) {
        put_u8(out, DUAL_NAME);
    } else if (n > 2) {
        put_u8(out, MULTI_NAME);
        put_u8(out, (uint8_t)n);
    }
    for (guint i = 0; i < n; i++)
        put_nameseg(out, segs[i], strlen(segs[i]), path);
}

static unsigned hex_digit(char c, const char *id)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'A' && c <= 'F')
        return (unsigned)(c - 'A' + 10);
    g_error("AML: bad EISA ID \"%s\"", id);
}

/* EISA ID (ACPI 6.x 19.6.35): three letters in 5 bits each, then four hex
 * digits, stored big-endian as the bytes of a little-endian DWord. */
uint32_t aml_eisaid_value(const char *id)
{
    if (strlen(id) != 7)
        g_error("AML: bad EISA ID \"%s\"", id);
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            g_error("AML: bad EISA ID \"%s\"", id);
        v = (v << 5) | (uint32_t)(id[i] - 'A' + 1);
    }
    for (int i = 3; i < 7; i++)
        v = (v << 4) | hex_digit(id[i], id);
    return GUINT32_SWAP_LE_BE(v);
}

void aml_serialize(GByteArray *out, struct aml *a)
{
    GByteArray *body = a->body;
    switch (a->kind) {
    case KIND_TERM:
    case KIND_LIST:
        g_byte_array_append(out, body->data, body->len);
        break;
    case KIND_BLOCK:
        g_byte_array_append(out, a->head, a->head_len);
        if (!aml_put_pkglength(out, body->len))
            g_error("AML: block too large");
        g_byte_array_append(out, body->data, body->len);
        break;
    case KIND_PACKAGE: {
        g_autoptr(GByteArray) count = g_byte_array_new();
        if (a->count <= 255)
            put_u8(count, (uint8_t)a->count);
        else
            put_node(count, aml_int(a->count));
        put_u8(out, a->count <= 255 ? PACKAGE_OP : VAR_PACKAGE_OP);
        if (!aml_put_pkglength(out, count->len + body->len))
            g_error("AML: package too large");
        g_byte_array_append(out, count->data, count->len);
        g_byte_array_append(out, body->data, body->len);
        break;
    }
    case KIND_RESOURCES:
    case KIND_BUFFER: {
        if (a->kind == KIND_RESOURCES) {
            /* End tag: small item 0xF, length 1; checksum 0 means "not checked". */
            put_u8(body, 0x79);
            put_u8(body, 0x00);
        }
        g_autoptr(GByteArray) size = g_byte_array_new();
        put_node(size, aml_int(body->len));
        put_u8(out, BUFFER_OP);
        if (!aml_put_pkglength(out, size->len + body->len))
            g_error("AML: buffer too large");
        g_byte_array_append(out, size->data, size->len);
        g_byte_array_append(out, body->data, body->len);
        break;
    }
    }
    aml_free(a);
}

void aml_append(struct aml *parent, struct aml *child)
{
    if (parent->kind == KIND_TERM || parent->kind == KIND_BUFFER)
        g_error("AML: appending to a term that is not a container");
    if (parent->kind == KIND_PACKAGE)
        parent->count++;
    aml_serialize(parent->body, child);
}

struct aml *aml_list(void)
{
    return node_new(KIND_LIST);
}

static struct aml *term_bytes(const uint8_t *p, size_t n)
{
    struct aml *a = node_new(KIND_TERM);
    g_byte_array_append(a->body, p, n);
    return a;
}

static struct aml *term_op(uint8_t op)
{
    return term_bytes(&op, 1);
}

static struct aml *term_ext_op(uint8_t op)
{
    const uint8_t b[2] = { EXT_PREFIX, op };
    return term_bytes(b, 2);
}

static struct aml *block_new(const uint8_t *head, unsigned head_len)
{
    struct aml *a = node_new(KIND_BLOCK);
    memcpy(a->head, head, head_len);
    a->head_len = head_len;
    return a;
}

static struct aml *prefixed(uint8_t prefix, uint64_t v, unsigned n)
{
    struct aml *a = term_op(prefix);
    put_le(a->body, v, n);
    return a;
}

struct aml *aml_zero(void) { return term_op(ZERO_OP); }
struct aml *aml_one(void) { return term_op(ONE_OP); }
struct aml *aml_ones(void) { return term_op(ONES_OP); }
struct aml *aml_byte(uint8_t v) { return prefixed(BYTE_PREFIX, v, 1); }
struct aml *aml_word(uint16_t v) { return prefixed(WORD_PREFIX, v, 2); }
struct aml *aml_dword(uint32_t v) { return prefixed(DWORD_PREFIX, v, 4); }
struct aml *aml_qword(uint64_t v) { return prefixed(QWORD_PREFIX, v, 8); }

struct aml *aml_int(uint64_t v)
{
    if (v == 0)
        return aml_zero();
    if (v == 1)
        return aml_one();
    if (v == UINT64_MAX)
        return aml_ones();
    if (v <= UINT8_MAX)
        return aml_byte((uint8_t)v);
    if (v <= UINT16_MAX)
        return aml_word((uint16_t)v);
    if (v <= UINT32_MAX)
        return aml_dword((uint32_t)v);
    return aml_qword(v);
}

struct aml *aml_string(const char *s)
{
    struct aml *a = term_op(STRING_PREFIX);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p > 0x7f)
            g_error("AML: string is not ASCII: \"%s\"", s);
    g_byte_array_append(a->body, (const guint8 *)s, strlen(s) + 1);
    return a;
}

struct aml *aml_eisaid(const char *id)
{
    return aml_dword(aml_eisaid_value(id));
}

struct aml *aml_buffer(const void *data, size_t len)
{
    struct aml *a = node_new(KIND_BUFFER);
    g_byte_array_append(a->body, data, len);
    return a;
}

struct aml *aml_package(void)
{
    return node_new(KIND_PACKAGE);
}

struct aml *aml_name(const char *path)
{
    struct aml *a = node_new(KIND_TERM);
    aml_put_namestring(a->body, path);
    return a;
}

struct aml *aml_local(unsigned n)
{
    if (n > 7)
        g_error("AML: Local%u does not exist", n);
    return term_op((uint8_t)(LOCAL0_OP + n));
}

struct aml *aml_arg(unsigned n)
{
    if (n > 6)
        g_error("AML: Arg%u does not exist", n);
    return term_op((uint8_t)(ARG0_OP + n));
}

struct aml *aml_call(const char *path, ...)
{
    struct aml *a = aml_name(path);
    va_list ap;
    va_start(ap, path);
    for (struct aml *arg; (arg = va_arg(ap, struct aml *));)
        put_node(a->body, arg);
    va_end(ap);
    return a;
}

struct aml *aml_scope(const char *path)
{
    struct aml *a = block_new((const uint8_t[]){ SCOPE_OP }, 1);
    aml_put_namestring(a->body, path);
    return a;
}

struct aml *aml_device(const char *name)
{
    struct aml *a = block_new((const uint8_t[]){ EXT_PREFIX, DEVICE_OP }, 2);
    aml_put_namestring(a->body, name);
    return a;
}

struct aml *aml_name_decl(const char *name, struct aml *value)
{
    struct aml *a = term_op(NAME_OP);
    aml_put_namestring(a->body, name);
    put_node(a->body, value);
    return a;
}

struct aml *aml_method(const char *name, unsigned nargs, enum aml_serialize ser)
{
    if (nargs > 7)
        g_error("AML: method %s cannot take %u arguments", name, nargs);
    struct aml *a = block_new((const uint8_t[]){ METHOD_OP }, 1);
    aml_put_namestring(a->body, name);
    put_u8(a->body, (uint8_t)(nargs | (ser == AML_SERIALIZED ? 1u << 3 : 0)));
    return a;
}

struct aml *aml_mutex(const char *name, unsigned sync_level)
{
    struct aml *a = term_ext_op(MUTEX_OP);
    aml_put_namestring(a->body, name);
    put_u8(a->body, (uint8_t)(sync_level & 0x0f));
    return a;
}

struct aml *aml_opregion(const char *name, enum aml_region_space space, uint64_t offset, uint64_t len)
{
    struct aml *a = term_ext_op(OPREGION_OP);
    aml_put_namestring(a->body, name);
    put_u8(a->body, (uint8_t)space);
    put_node(a->body, aml_int(offset));
    put_node(a->body, aml_int(len));
    return a;
}

struct aml *aml_field(const char *region, enum aml_access acc, enum aml_lock lock, enum aml_update upd)
{
    struct aml *a = block_new((const uint8_t[]){ EXT_PREFIX, FIELD_OP }, 2);
    aml_put_namestring(a->body, region);
    put_u8(a->body, (uint8_t)(acc | (lock << 4) | (upd << 5)));
    return a;
}

struct aml *aml_named_field(const char *name, unsigned bits)
{
    if (strchr(name, '.') || name[0] == '\\' || name[0] == '^')
        g_error("AML: field name \"%s\" must be a single segment", name);
    struct aml *a = node_new(KIND_TERM);
    put_nameseg(a->body, name, strlen(name), name);
    put_field_bits(a->body, bits);
    return a;
}

struct aml *aml_reserved_field(unsigned bits)
{
    struct aml *a = term_op(0x00);
    put_field_bits(a->body, bits);
    return a;
}

static struct aml *op1(uint8_t op, struct aml *x)
{
    struct aml *a = term_op(op);
    put_node(a->body, x);
    return a;
}

static struct aml *op2(uint8_t op, struct aml *x, struct aml *y)
{
    struct aml *a = op1(op, x);
    put_node(a->body, y);
    return a;
}

/* Operators with a Target: a missing target is the NullName. */
static struct aml *op2_target(uint8_t op, struct aml *x, struct aml *y, struct aml *target)
{
    struct aml *a = op2(op, x, y);
    if (target)
        put_node(a->body, target);
    else
        put_u8(a->body, ZERO_OP);
    return a;
}

static struct aml *block_pred(uint8_t op, struct aml *predicate)
{
    struct aml *a = block_new(&op, 1);
    put_node(a->body, predicate);
    return a;
}

struct aml *aml_return(struct aml *v) { return op1(RETURN_OP, v); }
struct aml *aml_if(struct aml *predicate) { return block_pred(IF_OP, predicate); }
struct aml *aml_else(void) { return block_new((const uint8_t[]){ ELSE_OP }, 1); }
struct aml *aml_while(struct aml *predicate) { return block_pred(WHILE_OP, predicate); }
struct aml *aml_break(void) { return term_op(BREAK_OP); }
struct aml *aml_store(struct aml *src, struct aml *dst) { return op2(STORE_OP, src, dst); }
struct aml *aml_notify(struct aml *obj, struct aml *value) { return op2(NOTIFY_OP, obj, value); }
struct aml *aml_increment(struct aml *target) { return op1(INCREMENT_OP, target); }
struct aml *aml_decrement(struct aml *target) { return op1(DECREMENT_OP, target); }

struct aml *aml_acquire(struct aml *mutex, uint16_t timeout_ms)
{
    struct aml *a = term_ext_op(ACQUIRE_OP);
    put_node(a->body, mutex);
    put_le(a->body, timeout_ms, 2);
    return a;
}

struct aml *aml_release(struct aml *mutex)
{
    struct aml *a = term_ext_op(RELEASE_OP);
    put_node(a->body, mutex);
    return a;
}

struct aml *aml_sleep(struct aml *ms)
{
    struct aml *a = term_ext_op(SLEEP_OP);
    put_node(a->body, ms);
    return a;
}

struct aml *aml_add(struct aml *a, struct aml *b, struct aml *t) { return op2_target(ADD_OP, a, b, t); }
struct aml *aml_subtract(struct aml *a, struct aml *b, struct aml *t) { return op2_target(SUBTRACT_OP, a, b, t); }
struct aml *aml_and(struct aml *a, struct aml *b, struct aml *t) { return op2_target(AND_OP, a, b, t); }
struct aml *aml_or(struct aml *a, struct aml *b, struct aml *t) { return op2_target(OR_OP, a, b, t); }
struct aml *aml_shiftleft(struct aml *a, struct aml *n, struct aml *t) { return op2_target(SHIFT_LEFT_OP, a, n, t); }
struct aml *aml_shiftright(struct aml *a, struct aml *n, struct aml *t) { return op2_target(SHIFT_RIGHT_OP, a, n, t); }
struct aml *aml_index(struct aml *o, struct aml *i, struct aml *t) { return op2_target(INDEX_OP, o, i, t); }
struct aml *aml_derefof(struct aml *ref) { return op1(DEREF_OF_OP, ref); }
struct aml *aml_sizeof(struct aml *obj) { return op1(SIZE_OF_OP, obj); }
struct aml *aml_land(struct aml *a, struct aml *b) { return op2(LAND_OP, a, b); }

static struct aml *create_field(uint8_t op, struct aml *buf, struct aml *byte_index, const char *name)
{
    struct aml *a = op2(op, buf, byte_index);
    aml_put_namestring(a->body, name);
    return a;
}

struct aml *aml_create_dword_field(struct aml *buf, struct aml *byte_index, const char *name)
{
    return create_field(CREATE_DWORD_FIELD_OP, buf, byte_index, name);
}

struct aml *aml_create_qword_field(struct aml *buf, struct aml *byte_index, const char *name)
{
    return create_field(CREATE_QWORD_FIELD_OP, buf, byte_index, name);
}
struct aml *aml_lor(struct aml *a, struct aml *b) { return op2(LOR_OP, a, b); }
struct aml *aml_lnot(struct aml *a) { return op1(LNOT_OP, a); }
struct aml *aml_lequal(struct aml *a, struct aml *b) { return op2(LEQUAL_OP, a, b); }
struct aml *aml_lless(struct aml *a, struct aml *b) { return op2(LLESS_OP, a, b); }
struct aml *aml_lgreater(struct aml *a, struct aml *b) { return op2(LGREATER_OP, a, b); }

struct aml *aml_resource_template(void)
{
    return node_new(KIND_RESOURCES);
}

/* Small item: I/O port descriptor (6.4.2.5), 16-bit decode. */
struct aml *aml_io(uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    struct aml *a = node_new(KIND_TERM);
    put_u8(a->body, 0x47);
    put_u8(a->body, 0x01);
    put_le(a->body, min, 2);
    put_le(a->body, max, 2);
    put_u8(a->body, align);
    put_u8(a->body, len);
    return a;
}

/* Small item: IRQ descriptor without flags (6.4.2.1): edge, active high. */
struct aml *aml_irq_noflags(unsigned irq)
{
    if (irq > 15)
        g_error("AML: IRQ descriptor cannot name IRQ %u", irq);
    struct aml *a = node_new(KIND_TERM);
    put_u8(a->body, 0x22);
    put_le(a->body, 1u << irq, 2);
    return a;
}

/* Large item: Extended Interrupt descriptor (6.4.3.6), one interrupt, consumer. */
struct aml *aml_ext_irq(uint32_t irq, unsigned flags)
{
    struct aml *a = node_new(KIND_TERM);
    put_u8(a->body, 0x89);
    put_le(a->body, 6, 2);
    put_u8(a->body, (uint8_t)(0x01 | (flags & 0x1e)));
    put_u8(a->body, 1);
    put_le(a->body, irq, 4);
    return a;
}

/* Large item: 32-bit fixed memory range descriptor (6.4.3.4). */
struct aml *aml_memory32_fixed(uint32_t base, uint32_t len, bool writable)
{
    struct aml *a = node_new(KIND_TERM);
    put_u8(a->body, 0x86);
    put_le(a->body, 9, 2);
    put_u8(a->body, writable ? 1 : 0);
    put_le(a->body, base, 4);
    put_le(a->body, len, 4);
    return a;
}

/* Large items: Word (0x88), DWord (0x87), QWord (0x8a) address space
 * descriptors (6.4.3.5): type, general flags, type-specific flags, then
 * granularity, min, max, translation offset, length in the item's width. */
#define ADDR_TYPE_MEMORY    0
#define ADDR_TYPE_IO        1
#define ADDR_TYPE_BUS       2
#define ADDR_MIN_MAX_FIXED  0x0c    /* _MIF | _MAF; producer, positive decode */

static struct aml *address_space(uint8_t tag, unsigned width, uint8_t type, uint8_t type_flags,
                                 uint64_t min, uint64_t max)
{
    struct aml *a = node_new(KIND_TERM);
    put_u8(a->body, tag);
    put_le(a->body, 3 + 5 * width, 2);
    put_u8(a->body, type);
    put_u8(a->body, ADDR_MIN_MAX_FIXED);
    put_u8(a->body, type_flags);
    put_le(a->body, 0, width);
    put_le(a->body, min, width);
    put_le(a->body, max, width);
    put_le(a->body, 0, width);
    put_le(a->body, max - min + 1, width);
    return a;
}

struct aml *aml_word_bus_number(uint16_t min, uint16_t max)
{
    return address_space(0x88, 2, ADDR_TYPE_BUS, 0, min, max);
}

struct aml *aml_word_io(uint16_t min, uint16_t max)
{
    return address_space(0x88, 2, ADDR_TYPE_IO, 0x03, min, max);
}

/* Memory type-specific flags: bit 0 read-write, bits 2:1 cacheability. */
struct aml *aml_dword_memory(uint32_t min, uint32_t max, bool cacheable)
{
    return address_space(0x87, 4, ADDR_TYPE_MEMORY, cacheable ? 0x03 : 0x01, min, max);
}

struct aml *aml_qword_memory(uint64_t min, uint64_t max, bool cacheable)
{
    return address_space(0x8a, 8, ADDR_TYPE_MEMORY, cacheable ? 0x03 : 0x01, min, max);
}
