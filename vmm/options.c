#include "vmm/options.h"

#include <errno.h>
#include <string.h>

#include "vmm/config.h"

static void pair_free(gpointer p)
{
    struct opt_pair *o = p;
    g_free(o->key);
    g_free(o->value);
    g_free(o);
}

/* Reads up to an unescaped ',' (a doubled ",," is a literal comma). */
static char *take_item(const char **sp)
{
    GString *out = g_string_new(NULL);
    const char *s = *sp;
    while (*s) {
        if (*s == ',') {
            if (s[1] == ',') {
                g_string_append_c(out, ',');
                s += 2;
                continue;
            }
            s++;
            break;
        }
        g_string_append_c(out, *s++);
    }
    *sp = s;
    return g_string_free(out, FALSE);
}

GPtrArray *opts_parse(const char *s, const char *implied_key, GError **err)
{
    GPtrArray *pairs = g_ptr_array_new_with_free_func(pair_free);
    bool first = true;
    while (*s) {
        g_autofree char *item = take_item(&s);
        struct opt_pair *o = g_new0(struct opt_pair, 1);
        char *eq = strchr(item, '=');
        if (eq) {
            o->key = g_strndup(item, (gsize)(eq - item));
            o->value = g_strdup(eq + 1);
        } else if (first && implied_key) {
            o->key = g_strdup(implied_key);
            o->value = g_strdup(item);
        } else {
            o->key = g_strdup(item);
        }
        first = false;
        if (o->key[0] == '\0') {
            g_set_error(err, CONFIG_ERROR, 0, "empty key in '%s'", item);
            pair_free(o);
            g_ptr_array_unref(pairs);
            return NULL;
        }
        g_ptr_array_add(pairs, o);
    }
    return pairs;
}

int opts_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "1" };
    static const char *const no[] = { "off", "no", "false", "0" };
    if (!v)
        return -EINVAL;
    for (size_t i = 0; i < 4; i++) {
        if (g_ascii_strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (g_ascii_strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}
