#include "vmm/options.h"

#include <errno.h>
#include <string.h>

#include <json-glib/json-glib.h>

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

static void add_pair(GPtrArray *a, const char *key, const char *value)
{
    struct opt_pair *o = g_new0(struct opt_pair, 1);
    o->key = g_strdup(key);
    o->value = g_strdup(value);
    g_ptr_array_add(a, o);
}

/* A JSON object as dotted key=value pairs ({"cache": {"direct": true}} →
 * cache.direct=on), as QEMU's keyval flattens them. */
static int flatten_json(JsonObject *o, const char *prefix, GPtrArray *out, GError **err)
{
    g_autoptr(GList) members = json_object_get_members(o);
    for (GList *l = members; l; l = l->next) {
        const char *name = l->data;
        g_autofree char *key = prefix ? g_strdup_printf("%s.%s", prefix, name) : g_strdup(name);
        JsonNode *n = json_object_get_member(o, name);
        if (JSON_NODE_HOLDS_OBJECT(n)) {
            if (flatten_json(json_node_get_object(n), key, out, err) < 0)
                return -1;
            continue;
        }
        if (JSON_NODE_HOLDS_ARRAY(n)) {
            /* QEMU's String lists (-netdev user's hostfwd): [{"str": "..."}, ...] or ["...", ...], one
             * key=value each, in order. */
            JsonArray *a = json_node_get_array(n);
            for (guint i = 0; i < json_array_get_length(a); i++) {
                JsonNode *e = json_array_get_element(a, i);
                if (JSON_NODE_HOLDS_OBJECT(e) && json_object_get_size(json_node_get_object(e)) == 1 &&
                    json_object_has_member(json_node_get_object(e), "str"))
                    e = json_object_get_member(json_node_get_object(e), "str");
                if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING)
                    return config_fail(err, "'%s': only lists of strings ({\"str\": ...}) are supported here", key);
                add_pair(out, key, json_node_get_string(e));
            }
            continue;
        }
        if (!JSON_NODE_HOLDS_VALUE(n))
            return config_fail(err, "'%s': null is not supported here", key);
        GType t = json_node_get_value_type(n);
        g_autofree char *v = NULL;
        if (t == G_TYPE_STRING)
            v = g_strdup(json_node_get_string(n));
        else if (t == G_TYPE_BOOLEAN)
            v = g_strdup(json_node_get_boolean(n) ? "on" : "off");
        else if (t == G_TYPE_INT64)
            v = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
        else
            v = g_strdup_printf("%g", json_node_get_double(n));
        add_pair(out, key, v);
    }
    return 0;
}

GPtrArray *opts_parse_any(const char *opt, const char *arg, const char *implied_key, GError **err)
{
    if (arg[0] == '{') {
        g_autoptr(JsonParser) p = json_parser_new();
        GError *e = NULL;
        if (!json_parser_load_from_data(p, arg, -1, &e)) {
            config_fail(err, "%s: not valid JSON: %s", opt, e->message);
            g_error_free(e);
            return NULL;
        }
        JsonNode *root = json_parser_get_root(p);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
            config_fail(err, "%s: the JSON form must be an object", opt);
            return NULL;
        }
        GPtrArray *out = g_ptr_array_new_with_free_func(pair_free);
        if (flatten_json(json_node_get_object(root), NULL, out, err) < 0) {
            g_prefix_error(err, "%s: ", opt);
            g_ptr_array_unref(out);
            return NULL;
        }
        return out;
    }
    GPtrArray *out = opts_parse(arg, implied_key, err);
    if (!out)
        g_prefix_error(err, "%s: ", opt);
    return out;
}

const char *opts_get(GPtrArray *pairs, const char *key)
{
    const char *v = NULL;
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        if (strcmp(o->key, key) == 0)
            v = o->value ? o->value : "";
    }
    return v;
}

int opts_get_bool(const char *opt, GPtrArray *pairs, const char *key, bool *out, GError **err)
{
    const char *v = opts_get(pairs, key);
    if (!v)
        return 0;
    if (opts_parse_bool(v, out) < 0)
        return config_fail(err, "%s: %s=%s: expected on or off", opt, key, v);
    return 0;
}

