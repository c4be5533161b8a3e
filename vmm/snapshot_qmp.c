/* The snapshot QMP command (its own file: the unit tests that stub the QMP
 * server link snapshot.c without it). */
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/snapshot.h"

static JsonNode *cmd_snapshot(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "dir", NULL };
    const char *dir = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "dir", true, &dir, err))
        return NULL;
    g_autoptr(GError) e = NULL;
    if (snapshot_save(ctx->opaque, dir, &e) < 0)
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC, e->message);
    return NULL;
}

void snapshot_qmp_register(struct qmp_server *s, struct machine *m)
{
    qmp_register(s, "x-vmm-snapshot", cmd_snapshot, m, 0);
}
