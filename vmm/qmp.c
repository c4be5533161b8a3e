/* The QMP server: listeners, clients, framing, the dispatcher, events.
 *
 * Framing follows QEMU's json-streamer: the byte stream is cut into JSON
 * values by counting braces and brackets outside strings, so input may end
 * in "\n", "\r\n" or nothing at all, and several objects may come in one
 * read or one object over many. Each value is then parsed with json-glib and
 * dispatched. Output is written with QEMU's spacing ({"a": 1, "b": [2, 3]})
 * and every message ends in "\r\n" (libvirt splits on it).
 *
 * Every socket is non-blocking. A client's output waits in its own queue
 * (a POLLOUT watch while it is not empty); a client whose queue or input
 * buffer grows past a bound is dropped, never waited for. */
#include "vmm/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#ifndef VMM_VERSION
#define VMM_VERSION "0.0.0"
#endif

G_DEFINE_QUARK(vmm-qmp-error-quark, qmp_error)

struct qmp_command {
    char *name;
    qmp_cmd_fn fn;
    void *opaque;
    unsigned flags;
};

struct qmp_listener {
    struct qmp_server *s;
    int fd;
    char *path;                 /* made by us: unlinked at free when still ours */
    dev_t dev;
    ino_t ino;
    bool wait;
    unsigned accepted;          /* connections accepted so far */
};

/* The framer's state between reads. */
struct qmp_framer {
    GString *buf;               /* bytes of the value being collected */
    int depth;                  /* open braces + brackets */
    char quote;                 /* inside a string: its quote ('"' or '\''), else 0 */
    bool escape;                /* the previous byte was a backslash inside a string */
    bool scalar;                /* collecting a bare word at depth 0 */
};

struct qmp_client {
    struct qmp_server *s;
    struct qmp_listener *l;     /* NULL for an adopted connected fd */
    int fd;
    bool negotiated;
    bool dead;                  /* dropped: fd closed, out of the server's list */
    unsigned busy;              /* inside a callback on the stack: free later */
    struct qmp_framer fr;
    GByteArray *out;
    size_t out_off;
    bool pollout;
    bool resume_queued;         /* a loop_call continues reading (holds a busy count) */
    bool eof;                   /* it half-closed: no more input; dropped once its output is out */
    GArray *rx_fds;             /* int: fds that came with the last read that had any (SCM_RIGHTS) */
    GHashTable *named_fds;      /* getfd: name → fd (GINT_TO_POINTER) */
};

#define QMP_MAX_RX_FDS 16

struct qmp_server {
    struct loop *loop;
    GPtrArray *cmds;            /* struct qmp_command *, in registration order */
    GPtrArray *listeners;
    GPtrArray *clients;
    size_t in_limit;
    size_t out_limit;
    unsigned dispatch_depth;
};

#define QMP_IN_LIMIT_DEFAULT (1u << 20)
#define QMP_OUT_LIMIT_DEFAULT (4u << 20)
#define QMP_MAX_NESTING 1024

static const char *const error_class_names[] = {
    [QMP_ERR_GENERIC] = "GenericError",
    [QMP_ERR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QMP_ERR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [QMP_ERR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [QMP_ERR_KVM_MISSING_CAP] = "KVMMissingCap",
};

static void client_drop(struct qmp_client *c, const char *why);
static void qmp_register_builtins(struct qmp_server *s);
static JsonNode *greeting(void);

static void client_set_pollout(struct qmp_client *c, bool on)
{
    if (c->pollout == on)
        return;
    c->pollout = on;
    loop_modify_fd(c->s->loop, c->fd, (c->eof ? 0 : POLLIN) | (on ? POLLOUT : 0));
}

/* Writes what the queue holds until the socket would block. */
static void client_flush(struct qmp_client *c)
{
    while (!c->dead && c->out_off < c->out->len) {
        ssize_t n = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            client_drop(c, g_strerror(errno));
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->dead)
        return;
    if (c->out_off == c->out->len) {
        g_byte_array_set_size(c->out, 0);
        c->out_off = 0;
        if (c->eof) {
            client_drop(c, "closed the connection");
            return;
        }
        client_set_pollout(c, false);
    } else {
        if (c->out_off >= 65536) {
            g_byte_array_remove_range(c->out, 0, (guint)c->out_off);
            c->out_off = 0;
        }
        client_set_pollout(c, true);
    }
}

/* Queues one message (node as JSON + "\r\n") and writes what it can. */
static void client_send(struct qmp_client *c, JsonNode *msg)
{
    if (c->dead)
        return;
    g_autofree char *text = qmp_to_json(msg);
    size_t len = strlen(text);
    if (c->out->len - c->out_off + len + 2 > c->s->out_limit) {
        client_drop(c, "it does not read its replies (output queue full)");
        return;
    }
    g_byte_array_append(c->out, (const guint8 *)text, (guint)len);
    g_byte_array_append(c->out, (const guint8 *)"\r\n", 2);
    client_flush(c);
}

static JsonNode *error_node(enum qmp_error_class cls, const char *desc)
{
    JsonObject *e = json_object_new();
    json_object_set_string_member(e, "class",
                                  (unsigned)cls < G_N_ELEMENTS(error_class_names) && error_class_names[cls]
                                      ? error_class_names[cls] : "GenericError");
    json_object_set_string_member(e, "desc", desc);
    JsonObject *o = json_object_new();
    json_object_set_object_member(o, "error", e);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

/* QEMU's member order: "id" before "error", "return" before "id". */
static void send_error(struct qmp_client *c, enum qmp_error_class cls, const char *desc, JsonNode *id)
{
    JsonNode *e = error_node(cls, desc);
    JsonObject *o = json_object_new();
    if (id)
        json_object_set_member(o, "id", json_node_copy(id));
    json_object_set_member(o, "error", json_object_dup_member(json_node_get_object(e), "error"));
    json_node_unref(e);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    client_send(c, n);
    json_node_unref(n);
}

/* ---------------------------------------------------------------- clients */

static void close_rx_fds(struct qmp_client *c)
{
    for (guint i = 0; i < c->rx_fds->len; i++)
        close(g_array_index(c->rx_fds, int, i));
    g_array_set_size(c->rx_fds, 0);
}

static void close_named_fd(gpointer fd)
{
    close(GPOINTER_TO_INT(fd));
}

static void client_free(struct qmp_client *c)
{
    close_rx_fds(c);
    g_array_unref(c->rx_fds);
    g_hash_table_destroy(c->named_fds);
    g_string_free(c->fr.buf, TRUE);
    g_byte_array_unref(c->out);
    g_free(c);
}

static void client_drop(struct qmp_client *c, const char *why)
{
    if (c->dead)
        return;
    log_info("qmp: client %d dropped: %s", c->fd, why);
    c->dead = true;
    loop_remove_fd(c->s->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    close_rx_fds(c);
    g_hash_table_remove_all(c->named_fds);
    g_ptr_array_remove(c->s->clients, c);
    if (!c->busy)
        client_free(c);
}

static JsonNode *greeting(void)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "QMP");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "version");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "qemu");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "micro");
    json_builder_add_int_value(b, QMP_QEMU_MICRO);
    json_builder_set_member_name(b, "minor");
    json_builder_add_int_value(b, QMP_QEMU_MINOR);
    json_builder_set_member_name(b, "major");
    json_builder_add_int_value(b, QMP_QEMU_MAJOR);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "package");
    json_builder_add_string_value(b, "vmm-" VMM_VERSION);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_array(b);
    json_builder_add_string_value(b, "oob");
    json_builder_end_array(b);
    json_builder_end_object(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static void on_client_io(void *opaque, int fd, uint32_t revents);

struct qmp_client *qmp_server_add_client(struct qmp_server *s, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct qmp_client *c = g_new0(struct qmp_client, 1);
    c->s = s;
    c->fd = fd;
    c->fr.buf = g_string_new(NULL);
    c->out = g_byte_array_new();
    c->rx_fds = g_array_new(FALSE, FALSE, sizeof(int));
    c->named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_named_fd);
    int r = loop_add_fd(s->loop, fd, POLLIN, on_client_io, c);
    if (r < 0) {
        log_warn("qmp: cannot watch a new connection: %s", g_strerror(-r));
        close(fd);
        client_free(c);
        return NULL;
    }
    g_ptr_array_add(s->clients, c);
    JsonNode *g = greeting();
    c->busy++;      /* a failed write drops c: free it here, not under us */
    client_send(c, g);
    json_node_unref(g);
    if (--c->busy == 0 && c->dead) {
        client_free(c);
        return NULL;
    }
    return c;
}

bool qmp_client_negotiated(const struct qmp_client *c)
{
    return c->negotiated;
}

/* ---------------------------------------------------------------- dispatch */

static struct qmp_command *find_command(struct qmp_server *s, const char *name)
{
    for (guint i = 0; i < s->cmds->len; i++) {
        struct qmp_command *cmd = s->cmds->pdata[i];
        if (strcmp(cmd->name, name) == 0)
            return cmd;
    }
    return NULL;
}

static void dispatch_checked(struct qmp_client *c, JsonObject *req, JsonNode *id)
{
    const char *name = NULL;
    bool oob = false;
    JsonObject *args = NULL;
    GList *members = json_object_get_members(req);
    for (GList *m = members; m; m = m->next) {
        const char *k = m->data;
        JsonNode *v = json_object_get_member(req, k);
        if (strcmp(k, "execute") == 0 || strcmp(k, "exec-oob") == 0) {
            if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
                g_autofree char *d = g_strdup_printf("QMP input member '%s' must be a string", k);
                g_list_free(members);
                send_error(c, QMP_ERR_GENERIC, d, id);
                return;
            }
            if (strcmp(k, "exec-oob") == 0)
                oob = true;
        } else if (strcmp(k, "arguments") == 0) {
            if (!JSON_NODE_HOLDS_OBJECT(v)) {
                g_list_free(members);
                send_error(c, QMP_ERR_GENERIC, "QMP input member 'arguments' must be an object", id);
                return;
            }
            args = json_node_get_object(v);
        } else if (strcmp(k, "id") != 0 && strcmp(k, "control") != 0) {
            g_autofree char *d = g_strdup_printf("QMP input member '%s' is unexpected", k);
            g_list_free(members);
            send_error(c, QMP_ERR_GENERIC, d, id);
            return;
        }
    }
    g_list_free(members);
    bool has_exec = json_object_has_member(req, "execute");
    bool has_oob = json_object_has_member(req, "exec-oob");
    if (has_exec && has_oob) {
        send_error(c, QMP_ERR_GENERIC, "QMP input member 'execute' clashes with 'exec-oob'", id);
        return;
    }
    if (!has_exec && !has_oob) {
        send_error(c, QMP_ERR_GENERIC, "QMP input lacks member 'execute'", id);
        return;
    }
    name = json_object_get_string_member(req, has_exec ? "execute" : "exec-oob");

    struct qmp_command *cmd = find_command(c->s, name);
    if (!cmd || (!c->negotiated && !(cmd->flags & QMP_CMD_PRE_CAPS))) {
        if (!c->negotiated) {
            send_error(c, QMP_ERR_COMMAND_NOT_FOUND, "Expecting capabilities negotiation with 'qmp_capabilities'", id);
        } else {
            g_autofree char *d = g_strdup_printf("The command %s has not been found", name);
            send_error(c, QMP_ERR_COMMAND_NOT_FOUND, d, id);
        }
        return;
    }
    if (oob) {
        g_autofree char *d = g_strdup_printf("The command %s does not support OOB", name);
        send_error(c, QMP_ERR_GENERIC, d, id);
        return;
    }

    JsonObject *empty = NULL;
    if (!args)
        args = empty = json_object_new();
    struct qmp_cmd_ctx ctx = { .server = c->s, .client = c, .opaque = cmd->opaque };
    GError *err = NULL;
    JsonNode *ret = cmd->fn(&ctx, args, &err);
    if (empty)
        json_object_unref(empty);
    if (c->dead) {
        if (ret)
            json_node_unref(ret);
        g_clear_error(&err);
        return;
    }
    if (err) {
        if (ret)
            json_node_unref(ret);
        enum qmp_error_class cls = err->domain == QMP_ERROR ? (enum qmp_error_class)err->code : QMP_ERR_GENERIC;
        send_error(c, cls, err->message, id);
        g_error_free(err);
        return;
    }
    if (!ret) {
        ret = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(ret, json_object_new());
    }
    JsonObject *o = json_object_new();
    json_object_set_member(o, "return", ret);
    if (id)
        json_object_set_member(o, "id", json_node_copy(id));
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    client_send(c, n);
    json_node_unref(n);
}

/* json-glib's message without its "<data>:1:7: Parse error: " prefix. */
static const char *parse_error_text(const char *m)
{
    const char *p = strstr(m, "Parse error: ");
    return p ? p + strlen("Parse error: ") : m;
}

/* One complete JSON value (or a bare word) from the framer. */
static void handle_value(struct qmp_client *c, const char *text, size_t len, bool bare)
{
    g_autoptr(JsonParser) p = json_parser_new_immutable();
    GError *err = NULL;
    if (!json_parser_load_from_data(p, text, (gssize)len, &err)) {
        /* A bare word that is no JSON value: QEMU's words for it. */
        g_autofree char *d = bare ? g_strdup_printf("JSON parse error, invalid keyword '%.*s'", (int)MIN(len, 64), text)
                                  : g_strdup_printf("JSON parse error, %s", parse_error_text(err->message));
        g_error_free(err);
        send_error(c, QMP_ERR_GENERIC, d, NULL);
        return;
    }
    JsonNode *root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        if (!root)
            return;     /* nothing but whitespace */
        send_error(c, QMP_ERR_GENERIC, "QMP input must be a JSON object", NULL);
        return;
    }
    JsonObject *req = json_node_get_object(root);
    dispatch_checked(c, req, json_object_get_member(req, "id"));
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool is_delim(char ch)
{
    return is_ws(ch) || ch == '{' || ch == '}' || ch == '[' || ch == ']' || ch == '"' || ch == '\'' ||
           ch == ',' || ch == ':';
}

/* Feeds bytes to the framer; each complete value goes to handle_value.
 * Stops early when the client is dropped. */
static void client_feed(struct qmp_client *c, const char *data, size_t len)
{
    struct qmp_framer *f = &c->fr;
    for (size_t i = 0; i < len && !c->dead; i++) {
        char ch = data[i];
        if (f->scalar) {
            if (!is_delim(ch)) {
                g_string_append_c(f->buf, ch);
                goto check_size;
            }
            /* The bare word ends before this byte. */
            f->scalar = false;
            handle_value(c, f->buf->str, f->buf->len, true);
            g_string_truncate(f->buf, 0);
            if (c->dead)
                return;
        }
        if (f->quote) {
            g_string_append_c(f->buf, ch);
            if (f->escape)
                f->escape = false;
            else if (ch == '\\')
                f->escape = true;
            else if (ch == f->quote) {
                f->quote = 0;
                if (f->depth == 0) {
                    handle_value(c, f->buf->str, f->buf->len, false);
                    g_string_truncate(f->buf, 0);
                }
            }
            goto check_size;
        }
        if (f->depth == 0 && is_ws(ch))
            continue;
        g_string_append_c(f->buf, ch);
        switch (ch) {
        case '"':
        case '\'':
            f->quote = ch;
            break;
        case '{':
        case '[':
            if (++f->depth > QMP_MAX_NESTING) {
                send_error(c, QMP_ERR_GENERIC, "JSON parse error, nesting too deep; closing the connection", NULL);
                client_drop(c, "JSON nested too deep");
                return;
            }
            break;
        case '}':
        case ']':
            if (f->depth == 0) {
                /* A closing bracket with nothing open: an error of its own. */
                g_string_truncate(f->buf, 0);
                send_error(c, QMP_ERR_GENERIC, "JSON parse error, expecting value", NULL);
                break;
            }
            if (--f->depth == 0) {
                handle_value(c, f->buf->str, f->buf->len, false);
                g_string_truncate(f->buf, 0);
            }
            break;
        default:
            if (f->depth == 0) {
                if (ch == ',' || ch == ':') {
                    g_string_truncate(f->buf, 0);
                    send_error(c, QMP_ERR_GENERIC, "JSON parse error, expecting value", NULL);
                } else
                    f->scalar = true;
            }
            break;
        }
check_size:
        if (f->buf->len > c->s->in_limit) {
            g_autofree char *d = g_strdup_printf("JSON input exceeds %zu bytes without a complete object; "
                                                 "closing the connection", c->s->in_limit);
            send_error(c, QMP_ERR_GENERIC, d, NULL);
            client_drop(c, "input too large");
            return;
        }
    }
}

/* End of input: a bare word at the very end is complete. */
static void client_feed_eof(struct qmp_client *c)
{
    struct qmp_framer *f = &c->fr;
    if (f->scalar && !c->dead) {
        f->scalar = false;
        handle_value(c, f->buf->str, f->buf->len, true);
        g_string_truncate(f->buf, 0);
    }
}

/* File descriptors that came with a read (SCM_RIGHTS, e.g. libvirt's tap
 * fd with getfd) replace those of an earlier read no command took, as
 * QEMU's socket chardev does. More than QMP_MAX_RX_FDS: the rest cut off by
 * the kernel (MSG_CTRUNC closes them). */
static void take_rx_fds(struct qmp_client *c, struct msghdr *mh)
{
    bool first = true;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        if (first) {
            close_rx_fds(c);
            first = false;
        }
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            g_array_append_val(c->rx_fds, fd);
        }
    }
}

int qmp_client_take_fd(struct qmp_client *c)
{
    if (!c || !c->rx_fds->len)
        return -1;
    int fd = g_array_index(c->rx_fds, int, 0);
    g_array_remove_index(c->rx_fds, 0);
    return fd;
}

int qmp_client_take_named_fd(struct qmp_client *c, const char *name)
{
    gpointer key, val;
    if (!c || !g_hash_table_lookup_extended(c->named_fds, name, &key, &val))
        return -1;
    g_hash_table_steal(c->named_fds, name);
    g_free(key);
    return GPOINTER_TO_INT(val);
}

/* Reads until the socket has nothing more (the loop's fd watches are
 * multishot polls: they report new readiness, not data left unread), at
 * most QMP_READS_PER_ROUND reads per round so one busy client cannot hold
 * the main loop; past that the rest is read in a loop_call. */
#define QMP_READS_PER_ROUND 64

static void client_resume(void *opaque);

static void client_read(struct qmp_client *c)
{
    for (int i = 0; i < QMP_READS_PER_ROUND; i++) {
        if (c->dead || c->eof)
            return;
        char buf[16384];
        union {
            char b[CMSG_SPACE(QMP_MAX_RX_FDS * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n > 0) {
            take_rx_fds(c, &mh);
            client_feed(c, buf, (size_t)n);
            continue;
        }
        if (n == 0) {
            /* Its half-close (socat at the end of its input): the replies
             * still queued go out first, then the connection is closed. */
            take_rx_fds(c, &mh);
            client_feed_eof(c);
            if (!c->dead) {
                c->eof = true;
                if (c->pollout)
                    loop_modify_fd(c->s->loop, c->fd, POLLOUT);
                client_flush(c);
            }
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            client_drop(c, g_strerror(errno));
        return;
    }
    if (!c->dead && !c->resume_queued) {
        c->resume_queued = true;
        c->busy++;
        loop_call(c->s->loop, client_resume, c);
    }
}

static void client_resume(void *opaque)
{
    struct qmp_client *c = opaque;
    c->resume_queued = false;
    client_read(c);
    if (--c->busy == 0 && c->dead)
        client_free(c);
}

static void on_client_io(void *opaque, int fd, uint32_t revents)
{
    struct qmp_client *c = opaque;
    (void)fd;
    c->busy++;
    if (revents & POLLOUT)
        client_flush(c);
    if (!c->dead && (revents & (POLLHUP | POLLERR)) && c->eof)
        client_drop(c, "gone");     /* it will not read the rest either */
    if (!c->dead && !c->eof && (revents & (POLLIN | POLLHUP | POLLERR)))
        client_read(c);
    if (--c->busy == 0 && c->dead)
        client_free(c);
}

int qmp_server_feed(struct qmp_client *c, const void *data, size_t len)
{
    c->busy++;
    client_feed(c, data, len);
    bool dead = c->dead;
    if (--c->busy == 0 && dead)
        client_free(c);
    return dead ? -1 : 0;
}

/* ---------------------------------------------------------------- listeners */

static void on_accept(void *opaque, int fd, uint32_t revents)
{
    struct qmp_listener *l = opaque;
    (void)revents;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_warn("qmp: accept on %s: %s", l->path ? l->path : "an inherited socket", g_strerror(errno));
            return;
        }
        l->accepted++;
        struct qmp_client *c = qmp_server_add_client(l->s, cfd);
        if (c)
            c->l = l;
    }
}

static int add_listener(struct qmp_server *s, int fd, const char *path, bool wait, GError **err)
{
    struct qmp_listener *l = g_new0(struct qmp_listener, 1);
    l->s = s;
    l->fd = fd;
    l->wait = wait;
    if (path) {
        struct stat st;
        l->path = g_strdup(path);
        if (stat(path, &st) == 0) {
            l->dev = st.st_dev;
            l->ino = st.st_ino;
        }
    }
    int r = loop_add_fd(s->loop, fd, POLLIN, on_accept, l);
    if (r < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "cannot watch the socket: %s", g_strerror(-r));
        g_free(l->path);
        g_free(l);
        return -1;
    }
    g_ptr_array_add(s->listeners, l);
    return 0;
}

static int listen_unix(struct qmp_server *s, const struct qmp_endpoint *ep, GError **err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(ep->path) >= sizeof(sa.sun_path)) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "%s: the path is longer than %zu bytes", ep->path,
                    sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, ep->path);
    struct stat st;
    if (lstat(ep->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "%s: exists and is not a socket; give another path",
                        ep->path);
            return -1;
        }
        /* A socket file: stale when nobody listens on it any more. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int cr = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
            int e = errno;
            close(probe);
            if (cr == 0) {
                g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "%s: another process listens on it", ep->path);
                return -1;
            }
            if (e == ECONNREFUSED)
                unlink(ep->path);
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "socket: %s", g_strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "%s: %s", ep->path, g_strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 16) < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "%s: listen: %s", ep->path, g_strerror(errno));
        close(fd);
        unlink(ep->path);
        return -1;
    }
    if (add_listener(s, fd, ep->path, ep->wait, err) < 0) {
        close(fd);
        unlink(ep->path);
        return -1;
    }
    return 0;
}

int qmp_server_add_endpoint(struct qmp_server *s, const struct qmp_endpoint *ep, GError **err)
{
    if (ep->path)
        return listen_unix(s, ep, err);
    struct stat st;
    if (fstat(ep->fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "fd %d is not a socket", ep->fd);
        return -1;
    }
    int acc = 0;
    socklen_t al = sizeof(acc);
    if (getsockopt(ep->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "fd %d: %s", ep->fd, g_strerror(errno));
        return -1;
    }
    int fl = fcntl(ep->fd, F_GETFL);
    if (fl >= 0)
        fcntl(ep->fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(ep->fd, F_SETFD, FD_CLOEXEC);
    if (acc)
        return add_listener(s, ep->fd, NULL, ep->wait, err);
    /* A connected socket: one client, greeted now. */
    if (!qmp_server_add_client(s, ep->fd)) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "fd %d: the connection failed at once", ep->fd);
        return -1;
    }
    return 0;
}

bool qmp_server_waiting(const struct qmp_server *s)
{
    for (guint i = 0; i < s->listeners->len; i++) {
        const struct qmp_listener *l = s->listeners->pdata[i];
        if (l->wait && l->accepted == 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- server */

struct qmp_server *qmp_server_new(struct loop *loop)
{
    struct qmp_server *s = g_new0(struct qmp_server, 1);
    s->loop = loop;
    s->cmds = g_ptr_array_new();
    s->listeners = g_ptr_array_new();
    s->clients = g_ptr_array_new();
    s->in_limit = QMP_IN_LIMIT_DEFAULT;
    s->out_limit = QMP_OUT_LIMIT_DEFAULT;
    qmp_register_builtins(s);
    return s;
}

void qmp_server_set_limits(struct qmp_server *s, size_t in_limit, size_t out_limit)
{
    s->in_limit = in_limit;
    s->out_limit = out_limit;
}

void qmp_server_free(struct qmp_server *s)
{
    if (!s)
        return;
    /* A last chance for replies already queued (quit's), without waiting. */
    while (s->clients->len) {
        struct qmp_client *c = s->clients->pdata[s->clients->len - 1];
        c->busy++;
        client_flush(c);
        client_drop(c, "vmm is exiting");     /* nothing when the flush dropped it */
        if (--c->busy == 0)
            client_free(c);
    }
    for (guint i = 0; i < s->listeners->len; i++) {
        struct qmp_listener *l = s->listeners->pdata[i];
        loop_remove_fd(s->loop, l->fd);
        close(l->fd);
        if (l->path) {
            struct stat st;
            if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
                unlink(l->path);
            g_free(l->path);
        }
        g_free(l);
    }
    for (guint i = 0; i < s->cmds->len; i++) {
        struct qmp_command *cmd = s->cmds->pdata[i];
        g_free(cmd->name);
        g_free(cmd);
    }
    g_ptr_array_free(s->cmds, TRUE);
    g_ptr_array_free(s->listeners, TRUE);
    g_ptr_array_free(s->clients, TRUE);
    g_free(s);
}

void qmp_register(struct qmp_server *s, const char *name, qmp_cmd_fn fn, void *opaque, unsigned flags)
{
    struct qmp_command *cmd = find_command(s, name);
    if (!cmd) {
        cmd = g_new0(struct qmp_command, 1);
        cmd->name = g_strdup(name);
        g_ptr_array_add(s->cmds, cmd);
    }
    cmd->fn = fn;
    cmd->opaque = opaque;
    cmd->flags = flags;
}

void qmp_foreach_command(struct qmp_server *s, void (*fn)(const char *name, void *opaque), void *opaque)
{
    for (guint i = 0; i < s->cmds->len; i++)
        fn(((struct qmp_command *)s->cmds->pdata[i])->name, opaque);
}

JsonNode *qmp_timestamp_now(void)
{
    gint64 us = g_get_real_time();
    JsonObject *o = json_object_new();
    json_object_set_int_member(o, "seconds", us / G_USEC_PER_SEC);
    json_object_set_int_member(o, "microseconds", us % G_USEC_PER_SEC);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

void qmp_emit_event(struct qmp_server *s, const char *name, JsonNode *data)
{
    if (!s) {
        if (data)
            json_node_unref(data);
        return;
    }
    JsonObject *o = json_object_new();
    json_object_set_member(o, "timestamp", qmp_timestamp_now());
    json_object_set_string_member(o, "event", name);
    if (data)
        json_object_set_member(o, "data", data);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    /* Dropping a client removes it from the array: walk a copy. */
    g_autoptr(GPtrArray) snap = g_ptr_array_new();
    for (guint i = 0; i < s->clients->len; i++) {
        struct qmp_client *c = s->clients->pdata[i];
        if (c->negotiated) {
            c->busy++;
            g_ptr_array_add(snap, c);
        }
    }
    for (guint i = 0; i < snap->len; i++)
        client_send(snap->pdata[i], n);
    for (guint i = 0; i < snap->len; i++) {
        struct qmp_client *c = snap->pdata[i];
        if (--c->busy == 0 && c->dead)
            client_free(c);
    }
    json_node_unref(n);
}

unsigned qmp_server_nr_clients(const struct qmp_server *s)
{
    return s->clients->len;
}

/* ---------------------------------------------------------------- built-in commands */

static JsonNode *cmd_qmp_capabilities(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "enable", NULL };
    if (!qmp_args_check(args, known, err))
        return NULL;
    JsonNode *en = json_object_get_member(args, "enable");
    if (en) {
        if (!JSON_NODE_HOLDS_ARRAY(en)) {
            g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Invalid parameter type for 'enable', expected: array");
            return NULL;
        }
        JsonArray *a = json_node_get_array(en);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonNode *v = json_array_get_element(a, i);
            if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
                g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC,
                            "Invalid parameter type for 'enable[%u]', expected: string", i);
                return NULL;
            }
            /* "oob" is offered in the greeting; no command of vmm runs
             * out of band, so enabling it changes nothing else. */
            if (strcmp(json_node_get_string(v), "oob") != 0) {
                g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter 'enable' does not accept value '%s'",
                            json_node_get_string(v));
                return NULL;
            }
        }
    }
    if (ctx->client->negotiated) {
        g_set_error(err, QMP_ERROR, QMP_ERR_COMMAND_NOT_FOUND,
                    "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    ctx->client->negotiated = true;
    return NULL;
}

static JsonNode *cmd_query_version(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    (void)ctx;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonNode *g = greeting();
    JsonObject *qmp = json_object_get_object_member(json_node_get_object(g), "QMP");
    JsonNode *v = json_object_dup_member(qmp, "version");
    json_node_unref(g);
    return v;
}

static JsonNode *cmd_query_commands(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonArray *a = json_array_new();
    for (guint i = 0; i < ctx->server->cmds->len; i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", ((struct qmp_command *)ctx->server->cmds->pdata[i])->name);
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

/* getfd {"fdname": NAME}: the fd that came with this command (SCM_RIGHTS)
 * under NAME, for a later command of the same connection (netdev_add
 * fd=NAME...); a NAME in use is replaced. QEMU's words for its errors. */
static JsonNode *cmd_getfd(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "fdname", NULL };
    const char *name = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "fdname", true, &name, err))
        return NULL;
    int fd = qmp_client_take_fd(ctx->client);
    if (fd < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_ascii_isdigit(name[0])) {
        close(fd);
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter 'fdname' expects a name not starting with a digit");
        return NULL;
    }
    g_hash_table_insert(ctx->client->named_fds, g_strdup(name), GINT_TO_POINTER(fd));
    return NULL;
}

static JsonNode *cmd_closefd(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "fdname", NULL };
    const char *name = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "fdname", true, &name, err))
        return NULL;
    if (!g_hash_table_remove(ctx->client->named_fds, name)) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "File descriptor named '%s' not found", name);
        return NULL;
    }
    return NULL;
}

static void qmp_register_builtins(struct qmp_server *s)
{
    qmp_register(s, "qmp_capabilities", cmd_qmp_capabilities, NULL, QMP_CMD_PRE_CAPS);
    qmp_register(s, "query-version", cmd_query_version, NULL, 0);
    qmp_register(s, "query-commands", cmd_query_commands, NULL, 0);
    qmp_register(s, "getfd", cmd_getfd, NULL, 0);
    qmp_register(s, "closefd", cmd_closefd, NULL, 0);
}
