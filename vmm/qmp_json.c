/* The JSON side of QMP that needs no server: the serializer that writes
 * QEMU's exact bytes (qmp_to_json) and the typed argument helpers with
 * QEMU's error words (qmp_arg_*, qmp_args_check). See qmp.h. */
#include "vmm/qmp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- output */

static void put_string(GString *o, const char *s)
{
    g_string_append_c(o, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        switch (c) {
        case '"': g_string_append(o, "\\\""); p++; continue;
        case '\\': g_string_append(o, "\\\\"); p++; continue;
        case '\b': g_string_append(o, "\\b"); p++; continue;
        case '\f': g_string_append(o, "\\f"); p++; continue;
        case '\n': g_string_append(o, "\\n"); p++; continue;
        case '\r': g_string_append(o, "\\r"); p++; continue;
        case '\t': g_string_append(o, "\\t"); p++; continue;
        }
        if (c < 0x20 || c == 0x7f) {
            g_string_append_printf(o, "\\u%04X", c);
            p++;
            continue;
        }
        if (c < 0x80) {
            g_string_append_c(o, (char)c);
            p++;
            continue;
        }
        /* Non-ASCII as \uXXXX (surrogate pairs above the BMP), as QEMU
         * does; json-glib strings are valid UTF-8. */
        gunichar u = g_utf8_get_char_validated((const char *)p, -1);
        if (u == (gunichar)-1 || u == (gunichar)-2) {
            g_string_append(o, "\\uFFFD");
            p++;
            continue;
        }
        if (u >= 0x10000) {
            u -= 0x10000;
            g_string_append_printf(o, "\\u%04X\\u%04X", 0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff));
        } else
            g_string_append_printf(o, "\\u%04X", u);
        p = (const unsigned char *)g_utf8_next_char(p);
    }
    g_string_append_c(o, '"');
}

/* Writes node as QEMU's compact JSON: ", " between members, ": " after keys. */
static void put_node(GString *o, JsonNode *n)
{
    if (!n || JSON_NODE_HOLDS_NULL(n)) {
        g_string_append(o, "null");
        return;
    }
    switch (json_node_get_node_type(n)) {
    case JSON_NODE_OBJECT: {
        JsonObject *obj = json_node_get_object(n);
        GList *members = json_object_get_members(obj);
        g_string_append_c(o, '{');
        for (GList *m = members; m; m = m->next) {
            if (m != members)
                g_string_append(o, ", ");
            put_string(o, m->data);
            g_string_append(o, ": ");
            put_node(o, json_object_get_member(obj, m->data));
        }
        g_string_append_c(o, '}');
        g_list_free(members);
        return;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(n);
        g_string_append_c(o, '[');
        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (i)
                g_string_append(o, ", ");
            put_node(o, json_array_get_element(a, i));
        }
        g_string_append_c(o, ']');
        return;
    }
    case JSON_NODE_VALUE:
        switch (json_node_get_value_type(n)) {
        case G_TYPE_INT64:
            g_string_append_printf(o, "%" G_GINT64_FORMAT, json_node_get_int(n));
            return;
        case G_TYPE_DOUBLE: {
            char b[G_ASCII_DTOSTR_BUF_SIZE];
            double d = json_node_get_double(n);
            if (!isfinite(d)) {
                g_string_append(o, "null");
                return;
            }
            g_ascii_dtostr(b, sizeof(b), d);
            g_string_append(o, b);
            return;
        }
        case G_TYPE_BOOLEAN:
            g_string_append(o, json_node_get_boolean(n) ? "true" : "false");
            return;
        case G_TYPE_STRING:
            put_string(o, json_node_get_string(n));
            return;
        default:
            g_string_append(o, "null");
            return;
        }
    case JSON_NODE_NULL:
        g_string_append(o, "null");
        return;
    }
}

char *qmp_to_json(JsonNode *n)
{
    GString *o = g_string_new(NULL);
    put_node(o, n);
    return g_string_free(o, FALSE);
}

/* ---------------------------------------------------------------- arguments */

static bool arg_get(JsonObject *args, const char *key, bool required, JsonNode **out, GError **err)
{
    JsonNode *n = args ? json_object_get_member(args, key) : NULL;
    if (!n) {
        if (required) {
            g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter '%s' is missing", key);
            return false;
        }
        *out = NULL;
        return true;
    }
    *out = n;
    return true;
}

static bool arg_type_error(const char *key, const char *type, GError **err)
{
    g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Invalid parameter type for '%s', expected: %s", key, type);
    return false;
}

bool qmp_arg_str(JsonObject *args, const char *key, bool required, const char **out, GError **err)
{
    JsonNode *n;
    if (!arg_get(args, key, required, &n, err))
        return false;
    if (!n)
        return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        return arg_type_error(key, "string", err);
    *out = json_node_get_string(n);
    return true;
}

bool qmp_arg_int(JsonObject *args, const char *key, bool required, int64_t *out, GError **err)
{
    JsonNode *n;
    if (!arg_get(args, key, required, &n, err))
        return false;
    if (!n)
        return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return arg_type_error(key, "integer", err);
    *out = json_node_get_int(n);
    return true;
}

bool qmp_arg_bool(JsonObject *args, const char *key, bool required, bool *out, GError **err)
{
    JsonNode *n;
    if (!arg_get(args, key, required, &n, err))
        return false;
    if (!n)
        return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        return arg_type_error(key, "boolean", err);
    *out = json_node_get_boolean(n);
    return true;
}

bool qmp_args_check(JsonObject *args, const char *const *known, GError **err)
{
    if (!args)
        return true;
    GList *members = json_object_get_members(args);
    for (GList *m = members; m; m = m->next) {
        bool ok = false;
        for (const char *const *k = known; k && *k && !ok; k++)
            ok = strcmp(*k, m->data) == 0;
        if (!ok) {
            g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter '%s' is unexpected", (const char *)m->data);
            g_list_free(members);
            return false;
        }
    }
    g_list_free(members);
    return true;
}

