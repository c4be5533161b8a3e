/* Fuzz target: the QMP server's framing, parser and dispatcher. The input is
 * the byte stream one client sends: its first byte picks how it is cut into
 * reads (0: one read; n: reads of 1 + n % 97 bytes), the rest is the stream.
 * It runs on a fresh server (1 KiB input bound, so the oversize path is
 * reached) with the built-in commands and one taking every kind of argument.
 * After each read, everything the server wrote must be whole messages, each
 * ending in "\r\n", each a JSON object with "QMP", "return", "error" or
 * "event" (plus "id" / "timestamp") and error classes from QEMU's set. A
 * dropped client must see its connection closed. ASan and UBSan catch the
 * rest. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_qmp.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/qmp.h"

#define check(c) do { if (!(c)) { fprintf(stderr, "fuzz_qmp: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static struct loop *loop;

static JsonNode *cmd_args(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    (void)ctx;
    static const char *const known[] = { "s", "i", "b", "emit", NULL };
    if (!qmp_args_check(args, known, err))
        return NULL;
    const char *s = "";
    int64_t i = 0;
    bool b = false;
    if (!qmp_arg_str(args, "s", true, &s, err) || !qmp_arg_int(args, "i", false, &i, err) ||
        !qmp_arg_bool(args, "b", false, &b, err))
        return NULL;
    bool emit = false;
    if (!qmp_arg_bool(args, "emit", false, &emit, err))
        return NULL;
    if (emit)
        qmp_emit_event(ctx->server, "X_EVENT", NULL);
    if (b) {
        g_set_error(err, QMP_ERROR, (int)(i & 7) % 5, "asked to fail");
        return NULL;
    }
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, s);
    return n;
}

/* Checks one message the server wrote (without its "\r\n"). */
static void check_msg(const char *m, size_t len)
{
    check(memchr(m, '\n', len) == NULL && memchr(m, '\r', len) == NULL);
    g_autoptr(JsonParser) p = json_parser_new();
    check(json_parser_load_from_data(p, m, (gssize)len, NULL));
    JsonNode *root = json_parser_get_root(p);
    check(root && JSON_NODE_HOLDS_OBJECT(root));
    JsonObject *o = json_node_get_object(root);
    unsigned kinds = json_object_has_member(o, "QMP") + json_object_has_member(o, "return") +
                     json_object_has_member(o, "error") + json_object_has_member(o, "event");
    check(kinds == 1);
    GList *members = json_object_get_members(o);
    for (GList *l = members; l; l = l->next)
        check(!strcmp(l->data, "QMP") || !strcmp(l->data, "return") || !strcmp(l->data, "error") ||
              !strcmp(l->data, "event") || !strcmp(l->data, "id") || !strcmp(l->data, "timestamp") ||
              !strcmp(l->data, "data"));
    g_list_free(members);
    if (json_object_has_member(o, "error")) {
        JsonObject *e = json_object_get_object_member(o, "error");
        check(e && json_object_get_size(e) == 2);
        const char *cls = json_object_get_string_member_with_default(e, "class", "");
        check(!strcmp(cls, "GenericError") || !strcmp(cls, "CommandNotFound") || !strcmp(cls, "DeviceNotFound") ||
              !strcmp(cls, "DeviceNotActive") || !strcmp(cls, "KVMMissingCap"));
        check(json_object_get_string_member_with_default(e, "desc", NULL) != NULL);
    }
}

/* Reads what the server wrote so far; whole messages are checked, a partial
 * one stays in *pend. */
static void drain(int fd, GString *pend)
{
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        g_string_append_len(pend, buf, n);
    char *start = pend->str, *nl;
    while ((nl = memchr(start, '\n', pend->len - (size_t)(start - pend->str)))) {
        check(nl > start && nl[-1] == '\r');
        check_msg(start, (size_t)(nl - 1 - start));
        start = nl + 1;
    }
    g_string_erase(pend, 0, (gssize)(start - pend->str));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop) {
        log_threshold = LOG_ERROR;
        loop = loop_new(NULL);
        check(loop);
    }
    struct qmp_server *s = qmp_server_new(loop);
    qmp_server_set_limits(s, 1024, 1 << 20);
    qmp_register(s, "x-args", cmd_args, NULL, 0);
    qmp_register(s, "x-pre", cmd_args, NULL, QMP_CMD_PRE_CAPS);
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int big = 1 << 22;
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    struct qmp_client *c = qmp_server_add_client(s, sv[1]);
    check(c);
    GString *pend = g_string_new(NULL);
    drain(sv[0], pend);
    size_t chunk = size && data[0] ? 1 + (size_t)data[0] % 97 : size;
    const uint8_t *p = size ? data + 1 : data;
    size_t left = size ? size - 1 : 0;
    bool alive = true;
    while (left && alive) {
        size_t n = MIN(chunk ? chunk : left, left);
        alive = qmp_server_feed(c, p, n) == 0;
        p += n;
        left -= n;
        drain(sv[0], pend);
    }
    if (!alive) {
        /* Dropped: the server closed its end (output still queued then is
         * lost, so pend may hold the start of a message). */
        char b;
        check(recv(sv[0], &b, 1, MSG_DONTWAIT) == 0);
        check(qmp_server_nr_clients(s) == 0);
    }
    qmp_server_free(s);
    close(sv[0]);
    g_string_free(pend, TRUE);
    return 0;
}
