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

#endif
