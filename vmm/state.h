/* Versioned, tagged state stream: used by snapshot, restore and migration.
 *
 * Stream: magic "VMMSTATE", u32 format version, then sections, then an end
 * marker and a CRC32 of everything before it. A section is: u16 name length,
 * name, u32 section version, u64 payload length, payload. Values are
 * little-endian. A reader refuses unknown magic, a newer format, a bad
 * checksum, a section version newer than it knows, and a section whose
 * payload is not consumed exactly. */
#ifndef VMM_STATE_H
#define VMM_STATE_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_FORMAT_VERSION 1

struct state_writer;
struct state_reader;

struct state_writer *state_writer_new(void);
void state_writer_free(struct state_writer *w);
void state_begin_section(struct state_writer *w, const char *name, uint32_t version);
void state_end_section(struct state_writer *w);
void state_put_u8(struct state_writer *w, uint8_t v);
void state_put_u16(struct state_writer *w, uint16_t v);
void state_put_u32(struct state_writer *w, uint32_t v);
void state_put_u64(struct state_writer *w, uint64_t v);
void state_put_bytes(struct state_writer *w, const void *p, size_t len);
/* A string (NULL allowed): u32 length (0xffffffff for NULL), then the bytes. */
void state_put_str(struct state_writer *w, const char *s);
/* Ends the stream (end marker + checksum) and returns it; w is freed. */
GBytes *state_writer_finish(struct state_writer *w);

/* Checks magic, format version and checksum. NULL with *err on failure. */
struct state_reader *state_reader_new(GBytes *stream, GError **err);
void state_reader_free(struct state_reader *r);
/* Moves to the next section, which must be called `name` with a version
 * <= max_version. Returns 0, or -1 with *err naming what was found instead. */
int state_open_section(struct state_reader *r, const char *name, uint32_t max_version,
                       uint32_t *version, GError **err);
/* -1 with *err unless the section payload was consumed exactly. */
int state_close_section(struct state_reader *r, GError **err);
/* Getters return 0, or -1 when the section payload is exhausted (the reader
 * then stays failed: every later get fails too, so a load can check once). */
int state_get_u8(struct state_reader *r, uint8_t *v);
int state_get_u16(struct state_reader *r, uint16_t *v);
int state_get_u32(struct state_reader *r, uint32_t *v);
int state_get_u64(struct state_reader *r, uint64_t *v);
int state_get_bytes(struct state_reader *r, void *p, size_t len);
/* A string written by state_put_str: *s is a new string (g_free) or NULL. A
 * string with a NUL inside or longer than max_len fails like a short read. */
int state_get_str(struct state_reader *r, char **s, size_t max_len);
/* True when every section has been read and the end marker is next. */
gboolean state_reader_at_end(struct state_reader *r);

#endif
