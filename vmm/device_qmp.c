#include "vmm/device_qmp.h"

#include "vmm/machine.h"
#include "vmm/qmp.h"

/* The kinds, in registration order; one process has one machine and one
 * server, so the registry is the process's. */
static GPtrArray *kinds;

bool device_qmp_id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0]))
        return false;
    for (const char *p = id + 1; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_')
            return false;
    return true;
}

static const struct device_qmp_kind *owner(struct machine *m, const char *id)
{
    for (guint i = 0; kinds && i < kinds->len; i++) {
        const struct device_qmp_kind *k = g_ptr_array_index(kinds, i);
        if (k->owns && k->owns(m, id))
            return k;
    }
    return NULL;
}

/* While an incoming migration is pending (--incoming: waiting for the
 * source, or its RAM coming in) the machine and its devices are the
 * source's, which the stream brings: a device added or removed here would
 * go into a config the stream replaces, or under a VM not yet loaded. */
static bool refused_inmigrate(struct machine *m, const char *cmd, GError **err)
{
    if (m->state != RUN_STATE_INMIGRATE)
        return false;
    g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC,
                "%s is not possible while an incoming migration is pending: the devices come from the source", cmd);
    return true;
}

static JsonNode *cmd_device_add(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    const char *driver = NULL, *id = NULL;
    if (!qmp_arg_str(args, "driver", true, &driver, err) || refused_inmigrate(m, "device_add", err))
        return NULL;
    const struct device_qmp_kind *kind = NULL;
    for (guint i = 0; kinds && i < kinds->len && !kind; i++) {
        const struct device_qmp_kind *k = g_ptr_array_index(kinds, i);
        if (k->takes(m, driver))
            kind = k;
    }
    if (!kind) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "'%s' is not a valid device model name", driver);
        return NULL;
    }
    if (!qmp_arg_str(args, "id", false, &id, err))
        return NULL;
    if (id && !device_qmp_id_wellformed(id)) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter 'id' expects an identifier");
        return NULL;
    }
    if (id && owner(m, id)) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Duplicate device ID '%s'", id);
        return NULL;
    }
    kind->add(m, driver, args, err);    /* NULL: {} or, with *err, the error */
    return NULL;
}

static JsonNode *cmd_device_del(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    static const char *const known[] = { "id", NULL };
    const char *id = NULL;
    if (!qmp_arg_str(args, "id", true, &id, err) || !qmp_args_check(args, known, err) ||
        refused_inmigrate(m, "device_del", err))
        return NULL;
    const struct device_qmp_kind *kind = owner(m, id);
    if (!kind) {
        g_set_error(err, QMP_ERROR, QMP_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", id);
        return NULL;
    }
    kind->del(m, id, err);
    return NULL;
}

void device_qmp_register_kind(struct qmp_server *s, struct machine *m, const struct device_qmp_kind *kind)
{
    if (!kinds)
        kinds = g_ptr_array_new();
    bool known = false;
    for (guint i = 0; i < kinds->len; i++)
        known |= g_ptr_array_index(kinds, i) == kind;
    if (!known)
        g_ptr_array_add(kinds, (gpointer)kind);
    /* qmp_register replaces: registering again is harmless. */
    qmp_register(s, "device_add", cmd_device_add, m, 0);
    qmp_register(s, "device_del", cmd_device_del, m, 0);
}
