/* AML builder (ACPI 6.x chapter 20): a tree of terms that mirrors ASL.
 *
 * Every constructor returns a new node. Operators take ownership of their
 * operand nodes, and aml_append() takes ownership of the child it appends, so
 * a definition block reads like the ASL it stands for:
 *
 *     struct aml *m = aml_method("_STA", 0, AML_NOT_SERIALIZED);
 *     aml_append(m, aml_return(aml_int(0x0f)));
 *     aml_append(dev, m);
 *
 * Blocks (scope, device, method, if, else, while, field, package, resource
 * template) get their PkgLength when they are appended or serialized, so they
 * can be filled in any order. Names are ASL-style strings: "\\_SB.PCI0.S08_",
 * "^PWRB", "GED0"; segments shorter than four characters are padded with '_'.
 * Malformed names are programming errors and abort (g_error), since every
 * name here is a compile-time constant or built from a bounded number. */
#ifndef ARCH_X86_AML_H
#define ARCH_X86_AML_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml;

/* PkgLength of a package whose contents (after the PkgLength) are
 * `payload` bytes long: appends 1 to 4 bytes. Returns false (appending
 * nothing) when the package would exceed the 2^28-1 byte limit. */
bool aml_put_pkglength(GByteArray *out, size_t payload);
/* Appends a NameString for an ASL path (root '\\', '^' prefixes, dotted segments). */
void aml_put_namestring(GByteArray *out, const char *path);
/* The 32-bit compressed EISA ID of "PNP0501"-style strings (3 letters, 4 hex digits). */
uint32_t aml_eisaid_value(const char *id);

/* Serializes the node (consumed) and appends its bytes. */
void aml_serialize(GByteArray *out, struct aml *a);
/* Frees a node that will not be appended (error paths). */
void aml_free(struct aml *a);
/* Appends child (consumed) to a block, or to an aml_list(). */
void aml_append(struct aml *parent, struct aml *child);

/* A bare list of terms: the top of a definition block. */
struct aml *aml_list(void);

/* Data */
struct aml *aml_int(uint64_t v);           /* Zero, One, Ones or the smallest prefix */
struct aml *aml_zero(void);
struct aml *aml_one(void);
struct aml *aml_ones(void);
struct aml *aml_byte(uint8_t v);           /* always BytePrefix, etc. */
struct aml *aml_word(uint16_t v);
struct aml *aml_dword(uint32_t v);
struct aml *aml_qword(uint64_t v);
struct aml *aml_string(const char *s);
struct aml *aml_eisaid(const char *id);    /* DWordConst of aml_eisaid_value() */
struct aml *aml_buffer(const void *data, size_t len);
struct aml *aml_package(void);             /* elements by aml_append; at most 255 */

/* Names and arguments */
struct aml *aml_name(const char *path);    /* a reference to a named object */
struct aml *aml_local(unsigned n);         /* Local0..Local7 */
struct aml *aml_arg(unsigned n);           /* Arg0..Arg6 */
/* Invokes a method: args is a NULL-terminated list of nodes (consumed). */
struct aml *aml_call(const char *path, ...) G_GNUC_NULL_TERMINATED;

/* Namespace */
struct aml *aml_scope(const char *path);
struct aml *aml_device(const char *name);
struct aml *aml_name_decl(const char *name, struct aml *value);
enum aml_serialize { AML_NOT_SERIALIZED, AML_SERIALIZED };
struct aml *aml_method(const char *name, unsigned nargs, enum aml_serialize ser);
struct aml *aml_mutex(const char *name, unsigned sync_level);

/* Regions and fields */
enum aml_region_space { AML_SYSTEM_MEMORY = 0, AML_SYSTEM_IO = 1 };
struct aml *aml_opregion(const char *name, enum aml_region_space space, uint64_t offset, uint64_t len);
enum aml_access { AML_ANY_ACC = 0, AML_BYTE_ACC = 1, AML_WORD_ACC = 2, AML_DWORD_ACC = 3,
                  AML_QWORD_ACC = 4, AML_BUFFER_ACC = 5 };
enum aml_lock { AML_NOLOCK = 0, AML_LOCK = 1 };
enum aml_update { AML_PRESERVE = 0, AML_WRITE_AS_ONES = 1, AML_WRITE_AS_ZEROS = 2 };
struct aml *aml_field(const char *region, enum aml_access acc, enum aml_lock lock, enum aml_update upd);
struct aml *aml_named_field(const char *name, unsigned bits);  /* append to an aml_field */
struct aml *aml_reserved_field(unsigned bits);                 /* skips bits in a field */

/* Statements */
struct aml *aml_return(struct aml *v);
struct aml *aml_if(struct aml *predicate);
struct aml *aml_else(void);                /* append right after its aml_if */
struct aml *aml_while(struct aml *predicate);
struct aml *aml_break(void);
struct aml *aml_store(struct aml *src, struct aml *dst);
struct aml *aml_notify(struct aml *object, struct aml *value);
struct aml *aml_acquire(struct aml *mutex, uint16_t timeout_ms);  /* 0xffff: forever */
struct aml *aml_release(struct aml *mutex);
struct aml *aml_sleep(struct aml *ms);
struct aml *aml_increment(struct aml *target);
struct aml *aml_decrement(struct aml *target);

/* Expressions. `target` may be NULL (result only returned). */
struct aml *aml_add(struct aml *a, struct aml *b, struct aml *target);
struct aml *aml_subtract(struct aml *a, struct aml *b, struct aml *target);
struct aml *aml_and(struct aml *a, struct aml *b, struct aml *target);
struct aml *aml_or(struct aml *a, struct aml *b, struct aml *target);
struct aml *aml_shiftleft(struct aml *a, struct aml *count, struct aml *target);
struct aml *aml_shiftright(struct aml *a, struct aml *count, struct aml *target);
struct aml *aml_index(struct aml *obj, struct aml *index, struct aml *target);
struct aml *aml_derefof(struct aml *ref);
struct aml *aml_sizeof(struct aml *obj);
/* CreateDWordField / CreateQWordField (Buffer, ByteIndex, Name) */
struct aml *aml_create_dword_field(struct aml *buf, struct aml *byte_index, const char *name);
struct aml *aml_create_qword_field(struct aml *buf, struct aml *byte_index, const char *name);
struct aml *aml_land(struct aml *a, struct aml *b);
struct aml *aml_lor(struct aml *a, struct aml *b);
struct aml *aml_lnot(struct aml *a);
struct aml *aml_lequal(struct aml *a, struct aml *b);
struct aml *aml_lless(struct aml *a, struct aml *b);
struct aml *aml_lgreater(struct aml *a, struct aml *b);

/* Resource templates (ACPI 6.x section 6.4): a Buffer ending in an end tag. */
struct aml *aml_resource_template(void);
struct aml *aml_io(uint16_t min, uint16_t max, uint8_t align, uint8_t len);  /* 16-bit decode */
struct aml *aml_irq_noflags(unsigned irq);                                  /* IRQ 0..15, edge high */
enum aml_irq_flags {
    AML_IRQ_LEVEL = 0, AML_IRQ_EDGE = 1 << 1,
    AML_IRQ_ACTIVE_HIGH = 0, AML_IRQ_ACTIVE_LOW = 1 << 2,
    AML_IRQ_EXCLUSIVE = 0, AML_IRQ_SHARED = 1 << 3,
};
struct aml *aml_ext_irq(uint32_t irq, unsigned flags);  /* Interrupt(ResourceConsumer, ...) */
struct aml *aml_memory32_fixed(uint32_t base, uint32_t len, bool writable);
/* Address space descriptors as a bridge's _CRS produces them (ResourceProducer,
 * PosDecode, MinFixed, MaxFixed, granularity 0, no translation), covering
 * [min, max]; the length field is max - min + 1 in the descriptor's width. */
struct aml *aml_word_bus_number(uint16_t min, uint16_t max);
struct aml *aml_word_io(uint16_t min, uint16_t max);                        /* EntireRange */
struct aml *aml_dword_memory(uint32_t min, uint32_t max, bool cacheable);   /* ReadWrite */
struct aml *aml_qword_memory(uint64_t min, uint64_t max, bool cacheable);   /* ReadWrite */

#endif
