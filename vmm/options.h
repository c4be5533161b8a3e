/* Parsing of "key=value,key=value" option strings (QEMU style: ",," is a
 * literal comma inside a value; a leading bare word is the implied key). */
#ifndef VMM_OPTIONS_H
#define VMM_OPTIONS_H

#include <glib.h>
#include <stdbool.h>

struct opt_pair {
    char *key;
    char *value;    /* NULL when the item had no '=' */
};

/* Splits s into pairs. implied_key, when non-NULL, names a first item that
 * has no '=' (e.g. "512M" in "--memory 512M,hugepages=on" → size=512M).
 * Returns a GPtrArray of struct opt_pair* (free with g_ptr_array_unref), or
 * NULL with *err set. */
GPtrArray *opts_parse(const char *s, const char *implied_key, GError **err);

/* Parses on/off/yes/no/true/false/1/0. Returns 0 or -EINVAL. */
int opts_parse_bool(const char *v, bool *out);

/* An option's argument in either of QEMU's forms: key=value pairs as
 * opts_parse does, or, starting with '{', a JSON object flattened into
 * dotted pairs ({"cache": {"direct": true}} -> cache.direct=on; a list of
 * strings, [{"str": ...}] or [...], one pair each, in order). Errors are
 * one line prefixed with opt. */
GPtrArray *opts_parse_any(const char *opt, const char *arg, const char *implied_key, GError **err);

/* The value of the last pair named key ("" for a bare key), or NULL. */
const char *opts_get(GPtrArray *pairs, const char *key);

/* key's value as on/off into *out, left alone when key is absent; a value
 * that is not a boolean is one line naming opt and key. */
int opts_get_bool(const char *opt, GPtrArray *pairs, const char *key, bool *out, GError **err);

#endif
