#include "vmm/qmp_cmds.h"

#include <stdio.h>

#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"

/* {"name": NAME} with --name, else {} (QEMU's query-name). */
static JsonNode *cmd_query_name(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonObject *o = json_object_new();
    if (m->cfg->name)
        json_object_set_string_member(o, "name", m->cfg->name);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static JsonNode *cmd_query_uuid(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "UUID", m->cfg->uuid);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

/* SHUTDOWN {"guest": false, "reason": "host-qmp-quit"} goes out at once
 * (machine_shutdown; before the reply, as QEMU), the guest stops and vmm
 * exits 0; the reply queued now gets its last write in qmp_server_free at
 * the latest. */
static JsonNode *cmd_quit(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    machine_shutdown(m, "host-qmp-quit");
    return NULL;
}

static void emit_to_qmp(struct machine *m, const char *name, JsonNode *data)
{
    qmp_emit_event(m->qmp, name, data);
}

void qmp_cmds_qmp_register(struct qmp_server *s, struct machine *m)
{
    qmp_register(s, "query-name", cmd_query_name, m, 0);
    qmp_register(s, "query-uuid", cmd_query_uuid, m, 0);
    qmp_register(s, "quit", cmd_quit, m, 0);
    if (!m->emit_event)
        m->emit_event = emit_to_qmp;
}

int qmp_cmds_listen(struct machine *m)
{
    for (unsigned i = 0; i < m->cfg->nr_qmp; i++) {
        const struct qmp_endpoint *ep = &m->cfg->qmp[i];
        g_autoptr(GError) err = NULL;
        if (qmp_server_add_endpoint(m->qmp, ep, &err) < 0) {
            if (ep->path)
                log_error("--qmp unix:%s: %s", ep->path, err->message);
            else
                log_error("--qmp fd=%d: %s", ep->fd, err->message);
            return VMM_EXIT_CONFIG;
        }
        if (ep->wait && ep->path)
            fprintf(stderr, "vmm: waiting for a QMP connection on unix:%s\n", ep->path);
        else if (ep->wait)
            fprintf(stderr, "vmm: waiting for a QMP connection on fd %d\n", ep->fd);
    }
    while (qmp_server_waiting(m->qmp) && m->state != RUN_STATE_SHUTDOWN)
        if (loop_run_once(m->loop) < 0)
            return VMM_EXIT_HOST;
    return 0;
}
