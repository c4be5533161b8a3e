#include "vmm/qom.h"

#include <string.h>

#include "vmm/qmp.h"

struct qom_prop {
    char *path;
    char *type_name;
    char *name;
    char *prop_type;
    qom_get_fn get;
    qom_set_fn set;
    void *opaque;
};

static GPtrArray *props;    /* struct qom_prop */

static void prop_free(void *p)
{
    struct qom_prop *q = p;
    g_free(q->path);
    g_free(q->type_name);
    g_free(q->name);
    g_free(q->prop_type);
    g_free(q);
}

void qom_add(const char *path, const char *type_name, const char *name, const char *prop_type, qom_get_fn get,
             qom_set_fn set, void *opaque)
{
    if (!props)
        props = g_ptr_array_new_with_free_func(prop_free);
    struct qom_prop *q = g_new0(struct qom_prop, 1);
    *q = (struct qom_prop){ g_strdup(path), g_strdup(type_name), g_strdup(name), g_strdup(prop_type), get, set,
                            opaque };
    g_ptr_array_add(props, q);
}

void qom_remove(const char *path)
{
    for (guint i = props ? props->len : 0; i-- > 0;)
        if (strcmp(((struct qom_prop *)props->pdata[i])->path, path) == 0)
            g_ptr_array_remove_index(props, i);
}

/* The property, or NULL with QEMU's error for a path or name that is not there. */
static struct qom_prop *lookup(const char *path, const char *name, GError **err)
{
    struct qom_prop *any = NULL;
    for (guint i = 0; props && i < props->len; i++) {
        struct qom_prop *q = props->pdata[i];
        if (strcmp(q->path, path) != 0)
            continue;
        any = q;
        if (strcmp(q->name, name) == 0)
            return q;
    }
    if (any)
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Property '%s.%s' not found", any->type_name, name);
    else
        g_set_error(err, QMP_ERROR, QMP_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", path);
    return NULL;
}

static JsonNode *cmd_qom_get(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "path", "property", NULL };
    const char *path = NULL, *name = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "path", true, &path, err) ||
        !qmp_arg_str(args, "property", true, &name, err))
        return NULL;
    struct qom_prop *q = lookup(path, name, err);
    return q ? q->get(q->opaque, err) : NULL;
}

static JsonNode *cmd_qom_set(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "path", "property", "value", NULL };
    const char *path = NULL, *name = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "path", true, &path, err) ||
        !qmp_arg_str(args, "property", true, &name, err))
        return NULL;
    JsonNode *value = json_object_get_member(args, "value");
    if (!value) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter 'value' is missing");
        return NULL;
    }
    struct qom_prop *q = lookup(path, name, err);
    if (!q)
        return NULL;
    if (!q->set) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Property '%s.%s' is not writable", q->type_name, name);
        return NULL;
    }
    q->set(q->opaque, value, err);     /* {} on success, else the error */
    return NULL;
}

static void list_add(JsonArray *a, const char *name, const char *type)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "type", type);
    json_array_add_object_element(a, o);
}

/* The properties of `path`, and its children (objects one level below it)
 * as child<TYPE>. */
static JsonNode *cmd_qom_list(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "path", NULL };
    const char *path = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "path", true, &path, err))
        return NULL;
    JsonArray *a = json_array_new();
    g_autoptr(GHashTable) children = g_hash_table_new(g_str_hash, g_str_equal);
    size_t plen = strlen(path);
    bool found = strcmp(path, "/machine") == 0 || strcmp(path, "/machine/peripheral") == 0;
    for (guint i = 0; props && i < props->len; i++) {
        struct qom_prop *q = props->pdata[i];
        if (strcmp(q->path, path) == 0) {
            list_add(a, q->name, q->prop_type);
            found = true;
        } else if (strncmp(q->path, path, plen) == 0 && q->path[plen] == '/' && !strchr(q->path + plen + 1, '/') &&
                   !g_hash_table_contains(children, q->path + plen + 1)) {
            g_hash_table_add(children, q->path + plen + 1);
            g_autofree char *t = g_strdup_printf("child<%s>", q->type_name);
            list_add(a, q->path + plen + 1, t);
            found = true;
        }
    }
    if (!found) {
        json_array_unref(a);
        g_set_error(err, QMP_ERROR, QMP_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", path);
        return NULL;
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

void qom_qmp_register(struct qmp_server *s)
{
    qmp_register(s, "qom-get", cmd_qom_get, NULL, 0);
    qmp_register(s, "qom-set", cmd_qom_set, NULL, 0);
    qmp_register(s, "qom-list", cmd_qom_list, NULL, 0);
}
