/* vmmctl: the command-line client of a QMP control socket (vmm's --qmp, or
 * QEMU's -qmp). Speaks plain QMP (QEMU's docs/interop/qmp-spec): reads the
 * greeting, negotiates with qmp_capabilities, sends {"execute", "arguments",
 * "id"} and waits for the "return"/"error" carrying its id, queueing the
 * events that arrive meanwhile. Every wait is bounded by --timeout.
 *
 * Exit codes: 0 ok, 1 the VM answered with a QMP error, 2 usage error,
 * 3 cannot connect / connection lost / not a QMP peer, 4 timeout,
 * 5 remove-device/remove-cpu --wait: the guest did not release the device. */
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    EXIT_OK = 0,
    EXIT_QMP_ERROR = 1,
    EXIT_USAGE = 2,
    EXIT_CONNECTION = 3,
    EXIT_TIMEOUT = 4,
    EXIT_NOT_RELEASED = 5,
};

#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_WAIT_TIMEOUT 30.0
#define MAX_MESSAGE (64u << 20)

static const char usage_text[] =
"usage: vmmctl -s SOCKET [--json] [--timeout SECS] COMMAND [ARGS]\n"
"\n"
"Controls a running vmm (or QEMU) through its QMP socket (vmm --qmp unix:PATH,server=on,wait=off).\n"
"\n"
"Options:\n"
"  -s, --socket PATH   the QMP unix socket (default: $VMMCTL_SOCKET)\n"
"  --json              print the raw QMP return value (one line of JSON) instead of text\n"
"  --timeout SECS      bound on every wait: connecting, each reply, wait-event, events\n"
"                      (default 10; remove-device/remove-cpu --wait default 30)\n"
"  -h, --help          this text\n"
"  --version           print vmmctl's version\n"
"\n"
"Commands:\n"
"  status                          run state: running, paused, prelaunch, shutdown...\n"
"  pause | resume                  stop / cont all vCPUs\n"
"  powerdown                       ACPI power button (system_powerdown)\n"
"  reset                           system_reset\n"
"  quit                            end the VM process\n"
"  info                            version, name, uuid, cpus, block devices, PCI devices\n"
"  add-disk PATH [--id ID] [--readonly] [--bus BUS]\n"
"                                  blockdev-add (raw file, node-name ID) + device_add virtio-blk-pci\n"
"  add-net TAP [--id ID] [--mac MAC] [--bus BUS]\n"
"                                  netdev_add tap (id ID) + device_add virtio-net-pci\n"
"  remove-device ID [--wait]       device_del; --wait: until DEVICE_DELETED, then removes\n"
"                                  the disk's block node / the NIC's netdev\n"
"  add-cpu [--id ID]               device_add of the first free slot of query-hotpluggable-cpus\n"
"  remove-cpu ID [--wait]          device_del of a hot-added CPU\n"
"  resize-memory SIZE [--device ID] [--wait]\n"
"                                  qom-set requested-size of a virtio-mem device (the first one\n"
"                                  in /machine/peripheral unless --device); SIZE: bytes or K/M/G/T;\n"
"                                  --wait: until the guest has plugged/unplugged to SIZE\n"
"                                  (MEMORY_DEVICE_SIZE_CHANGE; default 30 s, then exit 4)\n"
"  events [--count N] [QMP-COMMAND [JSON-ARGS]]\n"
"                                  print events as they arrive, one a line: until N events\n"
"                                  within --timeout (else exit 4); without --count, until\n"
"                                  --timeout if given, else until the VM goes away (exit 0);\n"
"                                  with QMP-COMMAND, run it first on the same connection\n"
"  wait-event NAME [--match KEY=VALUE]... [QMP-COMMAND [JSON-ARGS]]\n"
"                                  wait for event NAME (whose data has KEY=VALUE); with\n"
"                                  QMP-COMMAND, run it first on the same connection, so the\n"
"                                  event it causes cannot be missed\n"
"  migrate URI                     live-migrate the VM to URI (tcp:HOST:PORT, unix:PATH; a vmm\n"
"                                  there started with --incoming): a progress line (sent,\n"
"                                  remaining, MiB/s, pass) redrawn in place on a terminal, one\n"
"                                  line per change otherwise, with --json one query-migrate\n"
"                                  object a line; 0 when completed, 1 when failed or cancelled\n"
"                                  (the reason on one line), 4 when still going after --timeout\n"
"                                  (given; vmmctl then sends migrate_cancel and waits until it\n"
"                                  is cancelled: the source runs on)\n"
"  qmp COMMAND [JSON-ARGS]         run any QMP command, print its return value as JSON\n"
"\n"
"Exit codes:\n"
"  0  ok\n"
"  1  the VM answered with a QMP error (its desc is printed on one line)\n"
"  2  usage error\n"
"  3  cannot connect, connection lost, or the peer does not speak QMP\n"
"  4  timeout (no reply, or no such event, within --timeout; migrate: not over by then)\n"
"  5  remove-device/remove-cpu --wait: the guest did not release the device in time\n"
"     (the device stays)\n";

/* ---- errors ---- */

__attribute__((noreturn, format(printf, 2, 3)))
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("vmmctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

#define usage_error(...) die(EXIT_USAGE, __VA_ARGS__)

/* ---- options ---- */

static const char *opt_socket = NULL;
static bool opt_json = false;
static double opt_timeout = DEFAULT_TIMEOUT;
static bool opt_timeout_set = false;

static int64_t deadline_after(double secs)
{
    return g_get_monotonic_time() + (int64_t)(secs * 1e6);
}

static char *fmt_secs(double s)
{
    return g_strdup_printf("%g", s);
}

/* ---- small JSON helpers ---- */

static char *node_to_string(JsonNode *n)
{
    if (!n)
        return g_strdup("{}");
    return json_to_string(n, FALSE);
}


static JsonObject *obj_of(JsonNode *n)
{
    return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static JsonArray *arr_of(JsonNode *n)
{
    return n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
}

static JsonNode *member(JsonObject *o, const char *key)
{
    return o ? json_object_get_member(o, key) : NULL;
}

static const char *str_member(JsonObject *o, const char *key)
{
    JsonNode *n = member(o, key);
    return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ?
           json_node_get_string(n) : NULL;
}

/* A scalar member as text ("" when missing). */
static char *scalar_text(JsonObject *o, const char *key)
{
    JsonNode *n = member(o, key);
    if (!n || JSON_NODE_HOLDS_NULL(n))
        return g_strdup("");
    if (JSON_NODE_HOLDS_VALUE(n)) {
        GType t = json_node_get_value_type(n);
        if (t == G_TYPE_STRING)
            return g_strdup(json_node_get_string(n));
        if (t == G_TYPE_INT64)
            return g_strdup_printf("%" PRId64, json_node_get_int(n));
        if (t == G_TYPE_BOOLEAN)
            return g_strdup(json_node_get_boolean(n) ? "yes" : "no");
        if (t == G_TYPE_DOUBLE)
            return g_strdup_printf("%g", json_node_get_double(n));
    }
    return json_to_string(n, FALSE);
}

static bool int_member(JsonObject *o, const char *key, int64_t *out)
{
    JsonNode *n = member(o, key);
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return false;
    *out = json_node_get_int(n);
    return true;
}

/* Builds an object node from alternating key, value-node pairs ending with
 * NULL; a NULL value node leaves the key out. */
static JsonNode *obj_new(const char *key, ...)
{
    JsonObject *o = json_object_new();
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k; k = va_arg(ap, const char *)) {
        JsonNode *v = va_arg(ap, JsonNode *);
        if (v)
            json_object_set_member(o, k, v);
    }
    va_end(ap);
    return json_node_init_object(json_node_alloc(), o);
}

static JsonNode *jstr(const char *s)
{
    return s ? json_node_init_string(json_node_alloc(), s) : NULL;
}

static JsonNode *jint(int64_t v)
{
    return json_node_init_int(json_node_alloc(), v);
}

static JsonNode *jbool(bool v)
{
    return json_node_init_boolean(json_node_alloc(), v);
}

static void print_json(JsonNode *n)
{
    char *s = node_to_string(n);
    printf("%s\n", s);
    g_free(s);
}

/* ---- the connection ---- */

struct conn {
    int fd;
    GString *buf;
    GQueue events;          /* JsonNode * of events not consumed yet */
    int64_t next_id;
};

enum read_status { READ_OK, READ_TIMEOUT, READ_EOF };

static bool conn_eof_ok;        /* migrate: the source exits once done; EOF is an answer */
static bool conn_eof_seen;

/* Reads the next QMP message (a JSON object) into *out. Blocks until
 * deadline (< 0: forever). */
static enum read_status conn_read(struct conn *c, int64_t deadline, JsonNode **out)
{
    for (;;) {
        char *nl = memchr(c->buf->str, '\n', c->buf->len);
        if (nl) {
            size_t len = (size_t)(nl - c->buf->str);
            char *line = g_strndup(c->buf->str, len);
            g_string_erase(c->buf, 0, (gssize)len + 1);
            g_strstrip(line);
            if (!*line) {
                g_free(line);
                continue;
            }
            JsonParser *p = json_parser_new();
            GError *err = NULL;
            if (!json_parser_load_from_data(p, line, -1, &err) ||
                !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
                if (strlen(line) > 80)
                    strcpy(line + 77, "...");
                die(EXIT_CONNECTION, "the peer sent something that is not a QMP message: %s", line);
            }
            *out = json_node_copy(json_parser_get_root(p));
            g_object_unref(p);
            g_free(line);
            return READ_OK;
        }
        if (c->buf->len > MAX_MESSAGE)
            die(EXIT_CONNECTION, "the peer sent a message longer than %u MiB", MAX_MESSAGE >> 20);

        int tmo = -1;
        if (deadline >= 0) {
            int64_t left = deadline - g_get_monotonic_time();
            if (left <= 0)
                return READ_TIMEOUT;
            tmo = (int)MIN((left + 999) / 1000, INT32_MAX);
        }
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int r = poll(&pfd, 1, tmo);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die(EXIT_CONNECTION, "poll: %s", g_strerror(errno));
        }
        if (r == 0)
            continue;       /* re-checks the deadline */
        char tmp[65536];
        ssize_t n = read(c->fd, tmp, sizeof tmp);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == ECONNRESET)
                return READ_EOF;
            die(EXIT_CONNECTION, "reading the socket: %s", g_strerror(errno));
        }
        if (n == 0)
            return READ_EOF;
        g_string_append_len(c->buf, tmp, n);
    }
}

static void conn_write(struct conn *c, const char *data, size_t len, int64_t deadline)
{
    while (len) {
        int64_t left = deadline - g_get_monotonic_time();
        if (left <= 0)
            die(EXIT_TIMEOUT, "timed out sending to the socket");
        struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
        int r = poll(&pfd, 1, (int)MIN((left + 999) / 1000, INT32_MAX));
        if (r < 0 && errno != EINTR)
            die(EXIT_CONNECTION, "poll: %s", g_strerror(errno));
        if (r <= 0)
            continue;
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (conn_eof_ok) {
                conn_eof_seen = true;
                return;
            }
            die(EXIT_CONNECTION, "connection lost (%s)", g_strerror(errno));
        }
        data += n;
        len -= (size_t)n;
    }
}

/* The result of one command: either ret (the "return" value) or the error. */
struct reply {
    JsonNode *ret;
    char *err_class;        /* NULL on success */
    char *err_desc;
};

static void reply_clear(struct reply *r)
{
    if (r->ret)
        json_node_unref(r->ret);
    g_free(r->err_class);
    g_free(r->err_desc);
    memset(r, 0, sizeof *r);
}

static bool is_command_not_found(const struct reply *r)
{
    return r->err_class && !strcmp(r->err_class, "CommandNotFound");
}

/* Runs cmd with args (an object node or NULL; not taken). Returns false with
 * r->err_* set when the VM answered with an error; exits on timeout or a lost
 * connection. */
static void conn_ensure(struct conn *c);

static bool conn_execute(struct conn *c, const char *cmd, JsonNode *args, struct reply *r)
{
    conn_ensure(c);
    int64_t deadline = deadline_after(opt_timeout);
    int64_t id = ++c->next_id;
    memset(r, 0, sizeof *r);

    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "execute");
    json_builder_add_string_value(b, cmd);
    if (args) {
        json_builder_set_member_name(b, "arguments");
        json_builder_add_value(b, json_node_copy(args));
    }
    json_builder_set_member_name(b, "id");
    json_builder_add_int_value(b, id);
    json_builder_end_object(b);
    JsonNode *msg = json_builder_get_root(b);
    g_object_unref(b);
    char *text = json_to_string(msg, FALSE);
    json_node_unref(msg);
    char *line = g_strconcat(text, "\r\n", NULL);
    g_free(text);
    conn_write(c, line, strlen(line), deadline);
    g_free(line);

    for (;;) {
        JsonNode *n = NULL;
        enum read_status st = conn_read(c, deadline, &n);
        if (st == READ_TIMEOUT) {
            char *s = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "no reply to %s within %s s", cmd, s);
        }
        if (st == READ_EOF) {
            if (!strcmp(cmd, "quit") || conn_eof_ok) {      /* it may close before replying */
                conn_eof_seen = true;
                return true;
            }
            die(EXIT_CONNECTION, "connection lost while waiting for the reply to %s", cmd);
        }
        JsonObject *o = json_node_get_object(n);
        if (json_object_has_member(o, "event")) {
            g_queue_push_tail(&c->events, n);
            continue;
        }
        if (!json_object_has_member(o, "return") && !json_object_has_member(o, "error")) {
            json_node_unref(n);
            continue;
        }
        JsonNode *idn = json_object_get_member(o, "id");
        if (idn && !(JSON_NODE_HOLDS_VALUE(idn) && json_node_get_value_type(idn) == G_TYPE_INT64 &&
                     json_node_get_int(idn) == id)) {
            json_node_unref(n);         /* an answer to someone else's id */
            continue;
        }
        if (json_object_has_member(o, "return")) {
            r->ret = json_node_copy(json_object_get_member(o, "return"));
            json_node_unref(n);
            return true;
        }
        JsonNode *en = json_object_get_member(o, "error");
        JsonObject *eo = JSON_NODE_HOLDS_OBJECT(en) ? json_node_get_object(en) : NULL;
        const char *cls = eo ? json_object_get_string_member_with_default(eo, "class", NULL) : NULL;
        const char *desc = eo ? json_object_get_string_member_with_default(eo, "desc", NULL) : NULL;
        r->err_class = g_strdup(cls ? cls : "GenericError");
        r->err_desc = g_strdup(desc ? desc : "(error without a description)");
        /* one line, whatever the VM sent */
        for (char *p = r->err_desc; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        json_node_unref(n);
        return false;
    }
}

/* Prints the error of r (and, with --json, the error object on stdout) and
 * exits 1. */
__attribute__((noreturn))
static void die_reply(const char *what, const struct reply *r)
{
    if (opt_json)
        print_json(obj_new("error", obj_new("class", jstr(r->err_class), "desc", jstr(r->err_desc), NULL), NULL));
    if (what)
        die(EXIT_QMP_ERROR, "%s: %s", what, r->err_desc);
    die(EXIT_QMP_ERROR, "%s", r->err_desc);
}

/* Runs cmd and returns its value, exiting 1 on a QMP error. */
static JsonNode *execute_or_die(struct conn *c, const char *cmd, JsonNode *args)
{
    struct reply r;
    if (!conn_execute(c, cmd, args, &r))
        die_reply(cmd, &r);
    return r.ret ? r.ret : json_node_init_object(json_node_alloc(), json_object_new());
}

/* Connects, reads the greeting and negotiates capabilities: done by the
 * first command or event wait, so that a command's usage errors come before
 * (and without) any connection. */
static void conn_open(struct conn *c)
{
    const char *path = opt_socket;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        usage_error("socket path too long (%zu bytes, at most %zu): %s", strlen(path),
                    sizeof sa.sun_path - 1, path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die(EXIT_CONNECTION, "socket: %s", g_strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die(EXIT_CONNECTION, "cannot connect to %s: %s", path, g_strerror(errno));
    c->fd = fd;

    JsonNode *n = NULL;
    enum read_status st = conn_read(c, deadline_after(opt_timeout), &n);
    if (st == READ_TIMEOUT) {
        char *s = fmt_secs(opt_timeout);
        die(EXIT_TIMEOUT, "%s sent no QMP greeting within %s s", path, s);
    }
    if (st == READ_EOF)
        die(EXIT_CONNECTION, "%s closed the connection before its QMP greeting", path);
    if (!json_object_has_member(json_node_get_object(n), "QMP"))
        die(EXIT_CONNECTION, "%s did not greet with a QMP greeting", path);
    json_node_unref(n);

    struct reply r;
    if (!conn_execute(c, "qmp_capabilities", NULL, &r))
        die(EXIT_CONNECTION, "capabilities negotiation failed: %s", r.err_desc);
    reply_clear(&r);
}

static void conn_ensure(struct conn *c)
{
    if (c->fd < 0)
        conn_open(c);
}

/* ---- per-command arguments ---- */

struct copt {
    const char *name;       /* "--id" */
    bool has_arg;
    bool repeat;            /* values collect in vals */
    const char *val;
    bool set;
    GPtrArray *vals;
};

struct cargs {
    GPtrArray *pos;         /* positional arguments */
};

/* Parses argv (the words after COMMAND) against opts (ending with a NULL
 * name): options anywhere, "--" ends them. */
static void parse_cmd_args(const char *cmd, int argc, char **argv, struct copt *opts, struct cargs *out)
{
    out->pos = g_ptr_array_new();
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1] || (a[1] != '-' && !g_ascii_isalpha(a[1]))) {
            g_ptr_array_add(out->pos, (gpointer)a);
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        struct copt *o = opts;
        for (; o && o->name; o++)
            if (strlen(o->name) == nlen && !strncmp(o->name, a, nlen))
                break;
        if (!o || !o->name)
            usage_error("%s: unknown option %.*s (vmmctl --help lists the options)", cmd, (int)nlen, a);
        const char *val = NULL;
        if (o->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                usage_error("%s: %s needs a value", cmd, o->name);
            if (!*val)
                usage_error("%s: %s needs a non-empty value", cmd, o->name);
        } else if (eq) {
            usage_error("%s: %s takes no value", cmd, o->name);
        }
        if (o->repeat) {
            if (!o->vals)
                o->vals = g_ptr_array_new();
            g_ptr_array_add(o->vals, (gpointer)val);
        } else if (o->set) {
            usage_error("%s: %s given twice", cmd, o->name);
        }
        o->set = true;
        o->val = val;
    }
}

static void want_pos(const char *cmd, struct cargs *a, unsigned min, unsigned max, const char *what)
{
    if (a->pos->len < min)
        usage_error("%s: missing argument (usage: vmmctl %s %s)", cmd, cmd, what);
    if (a->pos->len > max)
        usage_error("%s: unexpected argument '%s' (usage: vmmctl %s%s%s)", cmd,
                    (const char *)a->pos->pdata[max], cmd, *what ? " " : "", what);
}

static const char *pos(struct cargs *a, unsigned i)
{
    return i < a->pos->len ? a->pos->pdata[i] : NULL;
}

/* A QMP/QOM id: what QEMU's id_wellformed accepts (a letter, then letters,
 * digits, '-', '.', '_'). */
static void check_id(const char *cmd, const char *id)
{
    bool ok = g_ascii_isalpha(id[0]);
    for (const char *p = id; ok && *p; p++)
        ok = g_ascii_isalnum(*p) || *p == '-' || *p == '.' || *p == '_';
    if (!ok)
        usage_error("%s: bad id '%s' (a letter, then letters, digits, '-', '.', '_')", cmd, id);
}

static JsonNode *parse_json_args(const char *cmd, const char *text)
{
    JsonParser *p = json_parser_new();
    GError *err = NULL;
    if (!json_parser_load_from_data(p, text, -1, &err))
        usage_error("%s: JSON-ARGS is not valid JSON: %s", cmd, err->message);
    JsonNode *root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root))
        usage_error("%s: JSON-ARGS must be a JSON object, e.g. '{\"path\": \"/machine\"}'", cmd);
    JsonNode *n = json_node_copy(root);
    g_object_unref(p);
    return n;
}

/* ---- tables ---- */

struct table {
    unsigned ncols;
    GPtrArray *rows;        /* of char ** (ncols strings) */
};

static struct table *table_new(unsigned ncols, ...)
{
    struct table *t = g_new0(struct table, 1);
    t->ncols = ncols;
    t->rows = g_ptr_array_new();
    char **hdr = g_new0(char *, ncols + 1);
    va_list ap;
    va_start(ap, ncols);
    for (unsigned i = 0; i < ncols; i++)
        hdr[i] = g_strdup(va_arg(ap, const char *));
    va_end(ap);
    g_ptr_array_add(t->rows, hdr);
    return t;
}

/* Adds a row; takes the strings. */
static void table_add(struct table *t, ...)
{
    char **row = g_new0(char *, t->ncols + 1);
    va_list ap;
    va_start(ap, t);
    for (unsigned i = 0; i < t->ncols; i++) {
        char *s = va_arg(ap, char *);
        row[i] = s ? s : g_strdup("");
    }
    va_end(ap);
    g_ptr_array_add(t->rows, row);
}

static void table_print(struct table *t, const char *indent)
{
    unsigned *w = g_new0(unsigned, t->ncols);
    for (unsigned r = 0; r < t->rows->len; r++) {
        char **row = t->rows->pdata[r];
        for (unsigned i = 0; i < t->ncols; i++)
            w[i] = MAX(w[i], (unsigned)g_utf8_strlen(row[i], -1));
    }
    for (unsigned r = 0; r < t->rows->len; r++) {
        char **row = t->rows->pdata[r];
        GString *line = g_string_new(indent);
        for (unsigned i = 0; i < t->ncols; i++) {
            g_string_append(line, row[i]);
            if (i + 1 < t->ncols)
                for (unsigned k = (unsigned)g_utf8_strlen(row[i], -1); k < w[i] + 2; k++)
                    g_string_append_c(line, ' ');
        }
        while (line->len && line->str[line->len - 1] == ' ')
            g_string_truncate(line, line->len - 1);
        printf("%s\n", line->str);
        g_string_free(line, TRUE);
        g_strfreev(row);
    }
    if (t->rows->len == 1)
        printf("%s(none)\n", indent);
    g_ptr_array_free(t->rows, TRUE);
    g_free(w);
    g_free(t);
}

/* ---- events ---- */

/* Takes the next event: a queued one first, then from the socket. */
static enum read_status next_event(struct conn *c, int64_t deadline, JsonNode **out)
{
    conn_ensure(c);
    if (!g_queue_is_empty(&c->events)) {
        *out = g_queue_pop_head(&c->events);
        return READ_OK;
    }
    for (;;) {
        JsonNode *n = NULL;
        enum read_status st = conn_read(c, deadline, &n);
        if (st != READ_OK)
            return st;
        if (json_object_has_member(json_node_get_object(n), "event")) {
            *out = n;
            return READ_OK;
        }
        json_node_unref(n);     /* a stray reply */
    }
}

static void print_event(JsonNode *ev)
{
    if (opt_json) {
        print_json(ev);
    } else {
        JsonObject *o = json_node_get_object(ev);
        JsonObject *ts = obj_of(member(o, "timestamp"));
        int64_t s = 0, us = 0;
        GString *line = g_string_new(NULL);
        if (int_member(ts, "seconds", &s) && int_member(ts, "microseconds", &us)) {
            GDateTime *dt = g_date_time_new_from_unix_utc(s);
            if (dt) {
                char *f = g_date_time_format(dt, "%Y-%m-%d %H:%M:%S");
                g_string_append_printf(line, "%s.%06" PRId64 " ", f, us);
                g_free(f);
                g_date_time_unref(dt);
            }
        }
        const char *name = str_member(o, "event");
        g_string_append(line, name ? name : "?");
        JsonNode *data = member(o, "data");
        if (data) {
            char *d = node_to_string(data);
            g_string_append_printf(line, " %s", d);
            g_free(d);
        }
        printf("%s\n", line->str);
        g_string_free(line, TRUE);
    }
    fflush(stdout);
}

/* Does event ev have name (and every KEY=VALUE of matches in its data)? */
static bool event_matches(JsonNode *ev, const char *name, GPtrArray *matches)
{
    JsonObject *o = json_node_get_object(ev);
    const char *n = str_member(o, "event");
    if (!n || strcmp(n, name))
        return false;
    JsonObject *data = obj_of(member(o, "data"));
    for (unsigned i = 0; matches && i < matches->len; i++) {
        const char *kv = matches->pdata[i];
        const char *eq = strchr(kv, '=');
        char *key = g_strndup(kv, (size_t)(eq - kv));
        char *have = member(data, key) ? scalar_text(data, key) : NULL;
        bool ok = have && !strcmp(have, eq + 1);
        g_free(key);
        g_free(have);
        if (!ok)
            return false;
    }
    return true;
}

/* Waits until an event matching name/matches arrives (queued ones count).
 * Returns it, or NULL on timeout; exits 3 when the connection ends. */
static JsonNode *wait_for_event(struct conn *c, const char *name, GPtrArray *matches, int64_t deadline)
{
    for (;;) {
        JsonNode *ev = NULL;
        enum read_status st = next_event(c, deadline, &ev);
        if (st == READ_TIMEOUT)
            return NULL;
        if (st == READ_EOF)
            die(EXIT_CONNECTION, "connection closed by the VM while waiting for %s", name);
        if (event_matches(ev, name, matches))
            return ev;
        json_node_unref(ev);
    }
}

/* ---- commands ---- */

struct command;
typedef int (*cmd_fn)(struct conn *c, const char *name, int argc, char **argv);

static int cmd_status(struct conn *c, const char *name, int argc, char **argv)
{
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 0, 0, "");
    JsonNode *r = execute_or_die(c, "query-status", NULL);
    if (opt_json) {
        print_json(r);
        return EXIT_OK;
    }
    const char *st = str_member(obj_of(r), "status");
    if (!st)
        die(EXIT_CONNECTION, "query-status returned no status: %s", node_to_string(r));
    printf("%s\n", st);
    return EXIT_OK;
}

/* Commands that map to one argument-less QMP command with an empty return. */
static int cmd_simple(struct conn *c, const char *name, int argc, char **argv)
{
    static const struct { const char *cmd, *qmp; } map[] = {
        { "pause", "stop" }, { "resume", "cont" }, { "powerdown", "system_powerdown" },
        { "reset", "system_reset" }, { "quit", "quit" },
    };
    const char *qmp = NULL;
    for (unsigned i = 0; i < G_N_ELEMENTS(map); i++)
        if (!strcmp(map[i].cmd, name))
            qmp = map[i].qmp;
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 0, 0, "");
    JsonNode *r = execute_or_die(c, qmp, NULL);
    if (opt_json)
        print_json(r);
    return EXIT_OK;
}

static int cmd_qmp(struct conn *c, const char *name, int argc, char **argv)
{
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 1, 2, "COMMAND [JSON-ARGS]");
    JsonNode *args = pos(&a, 1) ? parse_json_args(name, pos(&a, 1)) : NULL;
    struct reply r;
    if (!conn_execute(c, pos(&a, 0), args, &r))
        die_reply(NULL, &r);
    print_json(r.ret);
    return EXIT_OK;
}

static int cmd_events(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--count", .has_arg = true }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 0, 2, "[--count N] [QMP-COMMAND [JSON-ARGS]]");
    int64_t count = -1;
    if (opts[0].set) {
        char *end;
        count = g_ascii_strtoll(opts[0].val, &end, 10);
        if (*end || count <= 0)
            usage_error("%s: --count wants a positive number, not '%s'", name, opts[0].val);
    }
    JsonNode *args = pos(&a, 1) ? parse_json_args(name, pos(&a, 1)) : NULL;
    if (pos(&a, 0)) {
        struct reply r;
        if (!conn_execute(c, pos(&a, 0), args, &r))
            die_reply(pos(&a, 0), &r);
        reply_clear(&r);
    } else {
        conn_ensure(c);
    }
    /* a monitor (no --count, no --timeout) runs until the VM goes away */
    int64_t deadline = opt_timeout_set || count > 0 ? deadline_after(opt_timeout) : -1;
    for (int64_t seen = 0; count < 0 || seen < count; seen++) {
        JsonNode *ev = NULL;
        enum read_status st = next_event(c, deadline, &ev);
        if (st == READ_TIMEOUT) {
            if (count < 0)
                return EXIT_OK;     /* --timeout without --count: watch that long */
            char *s = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "%" PRId64 " of %" PRId64 " events within %s s", seen, count, s);
        }
        if (st == READ_EOF) {
            if (count < 0)
                return EXIT_OK;     /* the monitor saw the VM go */
            die(EXIT_CONNECTION, "connection closed by the VM after %" PRId64 " of %" PRId64 " events",
                seen, count);
        }
        print_event(ev);
        json_node_unref(ev);
    }
    return EXIT_OK;
}

static int cmd_wait_event(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--match", .has_arg = true, .repeat = true }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 3, "NAME [--match KEY=VALUE]... [QMP-COMMAND [JSON-ARGS]]");
    for (unsigned i = 0; opts[0].vals && i < opts[0].vals->len; i++) {
        const char *kv = opts[0].vals->pdata[i];
        if (!strchr(kv, '=') || kv[0] == '=')
            usage_error("%s: --match wants KEY=VALUE, not '%s'", name, kv);
    }
    const char *ev_name = pos(&a, 0);
    JsonNode *args = pos(&a, 2) ? parse_json_args(name, pos(&a, 2)) : NULL;
    if (pos(&a, 1)) {
        struct reply r;
        if (!conn_execute(c, pos(&a, 1), args, &r))
            die_reply(pos(&a, 1), &r);
        reply_clear(&r);
    }
    JsonNode *ev = wait_for_event(c, ev_name, opts[0].vals, deadline_after(opt_timeout));
    if (!ev) {
        char *s = fmt_secs(opt_timeout);
        die(EXIT_TIMEOUT, "no %s event within %s s", ev_name, s);
    }
    print_event(ev);
    return EXIT_OK;
}

/* ---- info ---- */

/* Runs cmd; on error prints "  (desc)" style note under heading and returns
 * NULL. Records the return (or error) in all for --json. */
static JsonNode *info_query(struct conn *c, const char *cmd, JsonObject *all, const char *key)
{
    struct reply r;
    if (!conn_execute(c, cmd, NULL, &r)) {
        if (opt_json) {
            json_object_set_member(all, key, obj_new("error", obj_new("class", jstr(r.err_class),
                                                                      "desc", jstr(r.err_desc), NULL), NULL));
        } else if (is_command_not_found(&r)) {
            printf("%-9s (not supported by this VM: no %s)\n", key, cmd);
        } else {
            printf("%-9s (%s: %s)\n", key, cmd, r.err_desc);
        }
        reply_clear(&r);
        return NULL;
    }
    JsonNode *ret = r.ret ? r.ret : obj_new(NULL);
    if (opt_json)
        json_object_set_member(all, key, json_node_copy(ret));
    return ret;
}

static void info_pci_bus(JsonArray *devs, struct table *t)
{
    for (unsigned i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = obj_of(json_array_get_element(devs, i));
        int64_t bus = 0, slot = 0, fn = 0, ven = 0, dev = 0, cls = 0;
        int_member(d, "bus", &bus);
        int_member(d, "slot", &slot);
        int_member(d, "function", &fn);
        JsonObject *id = obj_of(member(d, "id"));
        int_member(id, "vendor", &ven);
        int_member(id, "device", &dev);
        JsonObject *ci = obj_of(member(d, "class_info"));
        int_member(ci, "class", &cls);
        const char *desc = str_member(ci, "desc");
        table_add(t, g_strdup_printf("%02" PRIx64 ":%02" PRIx64 ".%" PRIx64, bus, slot, fn),
                  g_strdup_printf("%04" PRIx64 ":%04" PRIx64, ven, dev),
                  g_strdup_printf("%04" PRIx64, cls), scalar_text(d, "qdev_id"),
                  g_strdup(desc ? desc : ""));
        JsonObject *br = obj_of(member(d, "pci_bridge"));
        if (br)
            info_pci_bus(arr_of(member(br, "devices")), t);
    }
}

static int cmd_info(struct conn *c, const char *name, int argc, char **argv)
{
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 0, 0, "");
    JsonObject *all = json_object_new();
    JsonNode *n;

    if ((n = info_query(c, "query-version", all, "version"))) {
        JsonObject *v = obj_of(n);
        JsonObject *q = obj_of(member(v, "qemu"));
        int64_t ma = 0, mi = 0, mc = 0;
        int_member(q, "major", &ma);
        int_member(q, "minor", &mi);
        int_member(q, "micro", &mc);
        const char *pkg = str_member(v, "package");
        if (!opt_json)
            printf("%-9s %" PRId64 ".%" PRId64 ".%" PRId64 "%s%s\n", "version", ma, mi, mc,
                   pkg && *pkg ? " " : "", pkg ? pkg : "");
    }
    if ((n = info_query(c, "query-name", all, "name")) && !opt_json) {
        const char *nm = str_member(obj_of(n), "name");
        printf("%-9s %s\n", "name", nm ? nm : "(none)");
    }
    if ((n = info_query(c, "query-uuid", all, "uuid")) && !opt_json) {
        const char *u = str_member(obj_of(n), "UUID");
        printf("%-9s %s\n", "uuid", u ? u : "(none)");
    }
    if ((n = info_query(c, "query-status", all, "status")) && !opt_json) {
        const char *s = str_member(obj_of(n), "status");
        printf("%-9s %s\n", "status", s ? s : "?");
    }
    if ((n = info_query(c, "query-cpus-fast", all, "cpus")) && !opt_json) {
        JsonArray *cpus = arr_of(n);
        printf("cpus      %u\n", cpus ? json_array_get_length(cpus) : 0);
        struct table *t = table_new(4, "INDEX", "THREAD-ID", "PROPS", "QOM-PATH");
        for (unsigned i = 0; cpus && i < json_array_get_length(cpus); i++) {
            JsonObject *cpu = obj_of(json_array_get_element(cpus, i));
            JsonObject *props = obj_of(member(cpu, "props"));
            GString *p = g_string_new(NULL);
            GList *keys = props ? json_object_get_members(props) : NULL;
            for (GList *k = keys; k; k = k->next) {
                char *v = scalar_text(props, k->data);
                g_string_append_printf(p, "%s%s=%s", p->len ? " " : "", (char *)k->data, v);
                g_free(v);
            }
            g_list_free(keys);
            table_add(t, scalar_text(cpu, "cpu-index"), scalar_text(cpu, "thread-id"),
                      g_string_free(p, FALSE), scalar_text(cpu, "qom-path"));
        }
        table_print(t, "  ");
    }
    if ((n = info_query(c, "query-block", all, "block")) && !opt_json) {
        printf("block\n");
        JsonArray *blk = arr_of(n);
        struct table *t = table_new(5, "DEVICE", "NODE", "FORMAT", "RO", "FILE");
        for (unsigned i = 0; blk && i < json_array_get_length(blk); i++) {
            JsonObject *b = obj_of(json_array_get_element(blk, i));
            JsonObject *ins = obj_of(member(b, "inserted"));
            const char *dev = str_member(b, "device");
            const char *qdev = str_member(b, "qdev");
            char *shown = g_strdup(dev && *dev ? dev : qdev ? qdev : "");
            /* /machine/peripheral/ID/virtio-backend: the device's id */
            if (g_str_has_prefix(shown, "/machine/peripheral/")) {
                char *id = g_strdup(shown + strlen("/machine/peripheral/"));
                char *slash = strchr(id, '/');
                if (slash)
                    *slash = 0;
                g_free(shown);
                shown = id;
            }
            table_add(t, shown, scalar_text(ins, "node-name"),
                      scalar_text(ins, "drv"), scalar_text(ins, "ro"),
                      ins ? scalar_text(ins, "file") : g_strdup("(empty)"));
        }
        table_print(t, "  ");
    }
    if ((n = info_query(c, "query-pci", all, "pci")) && !opt_json) {
        printf("pci\n");
        JsonArray *buses = arr_of(n);
        struct table *t = table_new(5, "ADDRESS", "VENDOR:DEV", "CLASS", "ID", "DESCRIPTION");
        for (unsigned i = 0; buses && i < json_array_get_length(buses); i++)
            info_pci_bus(arr_of(member(obj_of(json_array_get_element(buses, i)), "devices")), t);
        table_print(t, "  ");
    }
    if (opt_json)
        print_json(json_node_init_object(json_node_alloc(), all));
    return EXIT_OK;
}

/* ---- hotplug ---- */

/* Adds every qdev_id under a query-pci device list to ids. */
static void collect_pci_ids(JsonArray *devs, GHashTable *ids)
{
    for (unsigned i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = obj_of(json_array_get_element(devs, i));
        const char *id = str_member(d, "qdev_id");
        if (id && *id)
            g_hash_table_add(ids, g_strdup(id));
        JsonObject *br = obj_of(member(d, "pci_bridge"));
        if (br)
            collect_pci_ids(arr_of(member(br, "devices")), ids);
    }
}

/* The first PREFIXn (n = 0, 1...) that no PCI device has as its id, nor a
 * block node as its name. */
static char *free_id(struct conn *c, const char *prefix)
{
    GHashTable *ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    struct reply r;
    if (conn_execute(c, "query-pci", NULL, &r)) {
        JsonArray *buses = arr_of(r.ret);
        for (unsigned i = 0; buses && i < json_array_get_length(buses); i++)
            collect_pci_ids(arr_of(member(obj_of(json_array_get_element(buses, i)), "devices")), ids);
    }
    reply_clear(&r);
    if (conn_execute(c, "query-block", NULL, &r)) {
        JsonArray *blk = arr_of(r.ret);
        for (unsigned i = 0; blk && i < json_array_get_length(blk); i++) {
            const char *nn = str_member(obj_of(member(obj_of(json_array_get_element(blk, i)), "inserted")),
                                        "node-name");
            if (nn)
                g_hash_table_add(ids, g_strdup(nn));
        }
    }
    reply_clear(&r);
    char *id = NULL;
    for (unsigned n = 0;; n++) {
        id = g_strdup_printf("%s%u", prefix, n);
        if (!g_hash_table_contains(ids, id))
            break;
        g_free(id);
    }
    g_hash_table_unref(ids);
    return id;
}

static int cmd_add_disk(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = {
        { .name = "--id", .has_arg = true }, { .name = "--readonly" }, { .name = "--bus", .has_arg = true }, { 0 }
    };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "PATH [--id ID] [--readonly] [--bus BUS]");
    if (opts[0].set)
        check_id(name, opts[0].val);
    /* the VM resolves a relative path against its own directory, not ours */
    char *path = g_canonicalize_filename(pos(&a, 0), NULL);
    bool ro = opts[1].set;
    char *id = opts[0].set ? g_strdup(opts[0].val) : free_id(c, "disk");

    JsonNode *bargs = obj_new("driver", jstr("raw"), "node-name", jstr(id),
                              "file", obj_new("driver", jstr("file"), "filename", jstr(path), NULL),
                              "read-only", jbool(ro), NULL);
    struct reply r;
    if (!conn_execute(c, "blockdev-add", bargs, &r))
        die_reply("blockdev-add", &r);
    reply_clear(&r);
    JsonNode *dargs = obj_new("driver", jstr("virtio-blk-pci"), "drive", jstr(id), "id", jstr(id),
                              "bus", jstr(opts[2].val), NULL);
    if (!conn_execute(c, "device_add", dargs, &r)) {
        struct reply r2;        /* take the block node back; its failure is secondary */
        if (!conn_execute(c, "blockdev-del", obj_new("node-name", jstr(id), NULL), &r2))
            fprintf(stderr, "vmmctl: (and removing block node %s again failed: %s)\n", id, r2.err_desc);
        die_reply("device_add", &r);
    }
    if (opt_json)
        print_json(obj_new("id", jstr(id), "node-name", jstr(id), "filename", jstr(path), "read-only",
                           jbool(ro), NULL));
    else
        printf("added disk %s: %s%s\n", id, path, ro ? " (read-only)" : "");
    return EXIT_OK;
}

static bool valid_mac(const char *m)
{
    if (strlen(m) != 17)
        return false;
    for (int i = 0; i < 17; i++)
        if (i % 3 == 2 ? m[i] != ':' : !g_ascii_isxdigit(m[i]))
            return false;
    return true;
}

static int cmd_add_net(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = {
        { .name = "--id", .has_arg = true }, { .name = "--mac", .has_arg = true },
        { .name = "--bus", .has_arg = true }, { 0 }
    };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "TAP [--id ID] [--mac MAC] [--bus BUS]");
    if (opts[0].set)
        check_id(name, opts[0].val);
    if (opts[1].set && !valid_mac(opts[1].val))
        usage_error("%s: bad MAC '%s' (want xx:xx:xx:xx:xx:xx)", name, opts[1].val);
    const char *tap = pos(&a, 0);
    char *id = opts[0].set ? g_strdup(opts[0].val) : free_id(c, "net");

    JsonNode *nargs = obj_new("type", jstr("tap"), "id", jstr(id), "ifname", jstr(tap),
                              "script", jstr("no"), "downscript", jstr("no"), NULL);
    struct reply r;
    if (!conn_execute(c, "netdev_add", nargs, &r))
        die_reply("netdev_add", &r);
    reply_clear(&r);
    JsonNode *dargs = obj_new("driver", jstr("virtio-net-pci"), "netdev", jstr(id), "id", jstr(id),
                              "mac", jstr(opts[1].val), "bus", jstr(opts[2].val), NULL);
    if (!conn_execute(c, "device_add", dargs, &r)) {
        struct reply r2;
        if (!conn_execute(c, "netdev_del", obj_new("id", jstr(id), NULL), &r2))
            fprintf(stderr, "vmmctl: (and removing netdev %s again failed: %s)\n", id, r2.err_desc);
        die_reply("device_add", &r);
    }
    if (opt_json)
        print_json(obj_new("id", jstr(id), "netdev", jstr(id), "ifname", jstr(tap), "mac", jstr(opts[1].val),
                           NULL));
    else
        printf("added NIC %s on tap %s%s%s\n", id, tap, opts[1].set ? ", MAC " : "",
               opts[1].set ? opts[1].val : "");
    return EXIT_OK;
}

/* The block node a device reads from, from query-block, or NULL: the entry
 * whose qdev is ID, /machine/peripheral/ID or a child of it (virtio-blk's
 * /machine/peripheral/ID/virtio-backend, usb-storage's .../ID.0/legacy[0]). */
static char *device_block_node(struct conn *c, const char *id)
{
    struct reply r;
    char *node = NULL;
    if (!conn_execute(c, "query-block", NULL, &r)) {
        reply_clear(&r);
        return NULL;
    }
    char *path = g_strdup_printf("/machine/peripheral/%s", id);
    char *below = g_strdup_printf("/machine/peripheral/%s/", id);
    JsonArray *blk = arr_of(r.ret);
    for (unsigned i = 0; blk && i < json_array_get_length(blk) && !node; i++) {
        JsonObject *b = obj_of(json_array_get_element(blk, i));
        const char *q = str_member(b, "qdev");
        if (q && (!strcmp(q, id) || !strcmp(q, path) || g_str_has_prefix(q, below))) {
            const char *nn = str_member(obj_of(member(b, "inserted")), "node-name");
            node = nn ? g_strdup(nn) : NULL;
        }
    }
    g_free(path);
    g_free(below);
    reply_clear(&r);
    return node;
}

/* The netdev of a NIC, from qom-get, or NULL. */
static char *device_netdev(struct conn *c, const char *id)
{
    struct reply r;
    char *path = g_strdup_printf("/machine/peripheral/%s", id);
    char *nd = NULL;
    if (conn_execute(c, "qom-get", obj_new("path", jstr(path), "property", jstr("netdev"), NULL), &r) &&
        r.ret && JSON_NODE_HOLDS_VALUE(r.ret) && json_node_get_value_type(r.ret) == G_TYPE_STRING &&
        *json_node_get_string(r.ret))
        nd = g_strdup(json_node_get_string(r.ret));
    reply_clear(&r);
    g_free(path);
    return nd;
}

static int remove_common(struct conn *c, const char *name, int argc, char **argv, bool cpu)
{
    struct copt opts[] = { { .name = "--wait" }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "ID [--wait]");
    const char *id = pos(&a, 0);
    bool wait = opts[0].set;
    char *node = NULL, *netdev = NULL;
    if (wait && !cpu) {
        node = device_block_node(c, id);
        if (!node)
            netdev = device_netdev(c, id);
    }
    struct reply r;
    if (!conn_execute(c, "device_del", obj_new("id", jstr(id), NULL), &r))
        die_reply("device_del", &r);
    reply_clear(&r);
    if (!wait) {
        if (opt_json)
            print_json(obj_new("id", jstr(id), "removed", jbool(false), NULL));
        else
            printf("asked the guest to release %s\n", id);
        return EXIT_OK;
    }
    double secs = opt_timeout_set ? opt_timeout : DEFAULT_WAIT_TIMEOUT;
    GPtrArray *m = g_ptr_array_new();
    char *match = g_strdup_printf("device=%s", id);
    g_ptr_array_add(m, match);
    JsonNode *ev = wait_for_event(c, "DEVICE_DELETED", m, deadline_after(secs));
    if (!ev) {
        char *s = fmt_secs(secs);
        die(EXIT_NOT_RELEASED, "guest did not release %s within %s s; the device stays", id, s);
    }
    /* the backend goes with it */
    if (node) {
        if (!conn_execute(c, "blockdev-del", obj_new("node-name", jstr(node), NULL), &r))
            die_reply("blockdev-del", &r);
        reply_clear(&r);
    }
    if (netdev) {
        if (!conn_execute(c, "netdev_del", obj_new("id", jstr(netdev), NULL), &r))
            die_reply("netdev_del", &r);
        reply_clear(&r);
    }
    if (opt_json)
        print_json(obj_new("id", jstr(id), "removed", jbool(true), "node-name", jstr(node), "netdev",
                           jstr(netdev), NULL));
    else
        printf("removed %s%s%s%s%s\n", id, node ? " and block node " : "", node ? node : "",
               netdev ? " and netdev " : "", netdev ? netdev : "");
    return EXIT_OK;
}

static int cmd_remove_device(struct conn *c, const char *name, int argc, char **argv)
{
    return remove_common(c, name, argc, argv, false);
}

static int cmd_remove_cpu(struct conn *c, const char *name, int argc, char **argv)
{
    return remove_common(c, name, argc, argv, true);
}

static int cmd_add_cpu(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--id", .has_arg = true }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 0, 0, "[--id ID]");
    if (opts[0].set)
        check_id(name, opts[0].val);
    JsonNode *r = execute_or_die(c, "query-hotpluggable-cpus", NULL);
    JsonArray *slots = arr_of(r);
    unsigned n = slots ? json_array_get_length(slots) : 0;
    JsonObject *slot = NULL;
    /* QEMU lists the slots from the highest index down: take the lowest free */
    for (unsigned i = n; i-- > 0;) {
        JsonObject *s = obj_of(json_array_get_element(slots, i));
        if (s && !member(s, "qom-path")) {
            slot = s;
            break;
        }
    }
    if (!slot)
        die(EXIT_QMP_ERROR, "add-cpu: no free CPU slot (all %u hotpluggable CPUs are present)", n);
    const char *type = str_member(slot, "type");
    JsonObject *props = obj_of(member(slot, "props"));
    if (!type || !props)
        die(EXIT_CONNECTION, "add-cpu: query-hotpluggable-cpus gave a slot without type or props");

    GString *pdesc = g_string_new(NULL);
    char *id;
    if (opts[0].set) {
        id = g_strdup(opts[0].val);
    } else {
        GString *g = g_string_new("cpu");
        static const char *const order[] = { "socket-id", "die-id", "cluster-id", "core-id", "thread-id" };
        for (unsigned i = 0; i < G_N_ELEMENTS(order); i++) {
            int64_t v;
            if (int_member(props, order[i], &v))
                g_string_append_printf(g, "-%" PRId64, v);
        }
        id = g_string_free(g, FALSE);
    }
    JsonObject *dargs = json_object_new();
    json_object_set_string_member(dargs, "driver", type);
    json_object_set_string_member(dargs, "id", id);
    GList *keys = json_object_get_members(props);
    for (GList *k = keys; k; k = k->next) {
        json_object_set_member(dargs, k->data, json_node_copy(json_object_get_member(props, k->data)));
        char *v = scalar_text(props, k->data);
        g_string_append_printf(pdesc, "%s%s=%s", pdesc->len ? " " : "", (char *)k->data, v);
        g_free(v);
    }
    g_list_free(keys);
    JsonNode *dn = json_node_init_object(json_node_alloc(), dargs);
    struct reply dr;
    if (!conn_execute(c, "device_add", dn, &dr))
        die_reply("device_add", &dr);
    if (opt_json)
        print_json(obj_new("id", jstr(id), "driver", jstr(type), "props", json_node_copy(member(slot, "props")),
                           NULL));
    else
        printf("added CPU %s (%s)\n", id, pdesc->str);
    return EXIT_OK;
}

/* SIZE: bytes, or a number with K/M/G/T (binary, optional "iB"/"B"). */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!g_ascii_isdigit(s[0]))
        return false;
    uint64_t v = g_ascii_strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    switch (g_ascii_toupper(*end)) {
    case 0: break;
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    case 'B': break;
    default: return false;
    }
    if (shift && (!g_ascii_strcasecmp(end, "iB") || !g_ascii_strcasecmp(end, "B")))
        end += strlen(end);
    else if (!shift && !g_ascii_strcasecmp(end, "B"))
        end++;
    if (*end)
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

static char *human_size(uint64_t v)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;
    while (u + 1 < G_N_ELEMENTS(units) && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    return g_strdup_printf("%" PRIu64 " %s", v, units[u]);
}

/* The "size" (plugged now) of a virtio-mem device, or -1 when qom-get has
 * no answer. */
static int64_t vmem_size(struct conn *c, const char *path)
{
    struct reply r;
    int64_t v = -1;
    if (conn_execute(c, "qom-get", obj_new("path", jstr(path), "property", jstr("size"), NULL), &r) &&
        r.ret && JSON_NODE_HOLDS_VALUE(r.ret) && json_node_get_value_type(r.ret) == G_TYPE_INT64)
        v = json_node_get_int(r.ret);
    reply_clear(&r);
    return v;
}

static int cmd_resize_memory(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--device", .has_arg = true }, { .name = "--wait" }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "SIZE [--device ID] [--wait]");
    uint64_t size;
    if (!parse_size(pos(&a, 0), &size) || size > INT64_MAX)
        usage_error("%s: bad SIZE '%s' (bytes, or a number with K, M, G or T)", name, pos(&a, 0));
    if (opts[0].set)
        check_id(name, opts[0].val);
    char *dev = NULL;
    if (opts[0].set) {
        dev = g_strdup(opts[0].val);
    } else {
        JsonNode *l = execute_or_die(c, "qom-list", obj_new("path", jstr("/machine/peripheral"), NULL));
        JsonArray *props = arr_of(l);
        for (unsigned i = 0; props && i < json_array_get_length(props) && !dev; i++) {
            JsonObject *p = obj_of(json_array_get_element(props, i));
            const char *t = str_member(p, "type");
            const char *n = str_member(p, "name");
            if (t && n && g_str_has_prefix(t, "child<virtio-mem"))
                dev = g_strdup(n);
        }
        if (!dev)
            die(EXIT_QMP_ERROR, "%s: the VM has no virtio-mem device (none in qom-list /machine/peripheral)", name);
    }
    char *path = g_strdup_printf("/machine/peripheral/%s", dev);
    JsonNode *args = obj_new("path", jstr(path), "property", jstr("requested-size"), "value", jint((int64_t)size),
                             NULL);
    struct reply r;
    if (!conn_execute(c, "qom-set", args, &r))
        die_reply("qom-set", &r);
    int64_t plugged = -1;
    if (opts[1].set) {
        /* until the guest has plugged/unplugged to the size: the size now,
         * then MEMORY_DEVICE_SIZE_CHANGE events (queued ones count) */
        double secs = opt_timeout_set ? opt_timeout : DEFAULT_WAIT_TIMEOUT;
        int64_t deadline = deadline_after(secs);
        plugged = vmem_size(c, path);
        while (plugged != (int64_t)size) {
            JsonNode *ev = NULL;
            enum read_status st = next_event(c, deadline, &ev);
            if (st == READ_TIMEOUT) {
                char *s = fmt_secs(secs), *want = human_size(size);
                char *have = plugged >= 0 ? human_size((uint64_t)plugged) : g_strdup("?");
                die(EXIT_TIMEOUT, "%s: the guest has %s plugged, not %s, after %s s (requested-size stays %s)",
                    dev, have, want, s, want);
            }
            if (st == READ_EOF)
                die(EXIT_CONNECTION, "connection closed by the VM while waiting for %s to reach its size", dev);
            JsonObject *o = json_node_get_object(ev);
            JsonObject *d = obj_of(member(o, "data"));
            const char *en = str_member(o, "event"), *id = str_member(d, "id"), *qp = str_member(d, "qom-path");
            int64_t sz;
            if (en && !strcmp(en, "MEMORY_DEVICE_SIZE_CHANGE") &&
                ((id && !strcmp(id, dev)) || (qp && !strcmp(qp, path))) && int_member(d, "size", &sz))
                plugged = sz;
            json_node_unref(ev);
        }
    }
    if (opt_json)
        print_json(obj_new("device", jstr(dev), "requested-size", jint((int64_t)size),
                           "size", plugged >= 0 ? jint(plugged) : NULL, NULL));
    else if (opts[1].set)
        printf("%s: %s plugged\n", dev, human_size(size));
    else
        printf("%s: requested-size %s (the guest plugs/unplugs memory to follow)\n", dev, human_size(size));
    return EXIT_OK;
}

/* ---- migrate ---- */

static double mib(int64_t v)
{
    return (double)v / (1024.0 * 1024.0);
}

/* One line of progress from a query-migrate return. */
static char *migrate_line(JsonObject *q)
{
    JsonObject *ram = obj_of(member(q, "ram"));
    int64_t sent = 0, rem = 0, pass = 0;
    double mbps = 0;
    int_member(ram, "transferred", &sent);
    int_member(ram, "remaining", &rem);
    int_member(ram, "dirty-sync-count", &pass);
    JsonNode *mn = member(ram, "mbps");
    if (mn && JSON_NODE_HOLDS_VALUE(mn))
        mbps = json_node_get_double(mn);
    const char *st = str_member(q, "status");
    return g_strdup_printf("migrate: %s, pass %" G_GINT64_FORMAT ", sent %.1f MiB, remaining %.1f MiB, %.1f MiB/s",
                           st ? st : "?", pass, mib(sent), mib(rem), mbps * 1e6 / 8 / (1024.0 * 1024.0));
}

static bool final_status(const char *st)
{
    return st && (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"));
}

/* migrate --timeout ran out: migrate_cancel, then query-migrate until the
 * migration has ended (cancelled; failed or completed when it ended first),
 * each wait bounded by --timeout as every reply is. Returns that status. */
static char *migrate_cancel_wait(struct conn *c, char **reason)
{
    struct reply r;
    if (!conn_execute(c, "migrate_cancel", NULL, &r))
        die_reply("migrate_cancel", &r);
    reply_clear(&r);
    int64_t deadline = deadline_after(opt_timeout);
    for (;;) {
        if (!conn_execute(c, "query-migrate", NULL, &r))
            die_reply("query-migrate", &r);
        const char *st = r.ret && obj_of(r.ret) ? str_member(obj_of(r.ret), "status") : NULL;
        char *status = final_status(st) ? g_strdup(st) : NULL;
        if (status && str_member(obj_of(r.ret), "error-desc")) {
            g_free(*reason);
            *reason = g_strdup(str_member(obj_of(r.ret), "error-desc"));
        }
        reply_clear(&r);
        if (status)
            return status;
        if (g_get_monotonic_time() >= deadline) {
            char *secs = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "migration not over after --timeout, and still not cancelled %s s after migrate_cancel",
                secs);
        }
        g_usleep(100 * 1000);
    }
}

static int cmd_migrate(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "URI");
    const char *uri = pos(&a, 0);
    if (!g_str_has_prefix(uri, "tcp:") && !g_str_has_prefix(uri, "unix:"))
        usage_error("%s: URI '%s': give tcp:HOST:PORT or unix:PATH", name, uri);
    json_node_unref(execute_or_die(c, "migrate", obj_new("uri", jstr(uri), NULL)));
    bool tty = !opt_json && isatty(STDOUT_FILENO);
    int64_t deadline = opt_timeout_set ? deadline_after(opt_timeout) : -1;
    char *shown = NULL;
    char *status = NULL, *reason = NULL;
    JsonNode *last = NULL;
    conn_eof_ok = true;
    while (!status) {
        /* MIGRATION events say it first (the source exits once completed) */
        JsonNode *ev = NULL;
        while (!status && next_event(c, g_get_monotonic_time(), &ev) == READ_OK) {
            JsonObject *o = json_node_get_object(ev);
            const char *en = str_member(o, "event");
            const char *st = str_member(obj_of(member(o, "data")), "status");
            if (en && !strcmp(en, "MIGRATION") && final_status(st))
                status = g_strdup(st);
            json_node_unref(ev);
        }
        struct reply r;
        if (!conn_eof_seen) {
            if (!conn_execute(c, "query-migrate", NULL, &r))
                die_reply("query-migrate", &r);
            if (r.ret && obj_of(r.ret)) {
                JsonObject *q = obj_of(r.ret);
                const char *st = str_member(q, "status");
                if (!status && final_status(st))
                    status = g_strdup(st);
                if (final_status(st) && str_member(q, "error-desc"))
                    reason = g_strdup(str_member(q, "error-desc"));
                char *line = opt_json ? node_to_string(r.ret) : migrate_line(q);
                if (!shown || strcmp(line, shown) != 0) {
                    if (tty)
                        printf("\r%s\033[K", line);
                    else
                        printf("%s\n", line);
                    fflush(stdout);
                    g_free(shown);
                    shown = line;
                } else {
                    g_free(line);
                }
                if (last)
                    json_node_unref(last);
                last = json_node_copy(r.ret);
            }
            reply_clear(&r);
        }
        if (status)
            break;
        if (conn_eof_seen) {
            /* gone: completed if its MIGRATION event said so (read above) */
            JsonNode *e2 = NULL;
            while (!status && next_event(c, g_get_monotonic_time(), &e2) == READ_OK) {
                JsonObject *o = json_node_get_object(e2);
                const char *st = str_member(obj_of(member(o, "data")), "status");
                if (!g_strcmp0(str_member(o, "event"), "MIGRATION") && final_status(st))
                    status = g_strdup(st);
                json_node_unref(e2);
            }
            if (status)
                break;
            if (tty)
                putchar('\n');
            die(EXIT_CONNECTION, "the VM closed the connection before the migration ended");
        }
        if (deadline >= 0 && g_get_monotonic_time() >= deadline) {
            if (tty)
                putchar('\n');
            status = migrate_cancel_wait(c, &reason);
            if (strcmp(status, "cancelled") != 0)
                break;      /* it ended (completed, failed) before the cancel reached it */
            char *secs = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "migration to %s not over after %s s: cancelled, the source runs on", uri, secs);
        }
        g_usleep(200 * 1000);
    }
    if (tty)
        putchar('\n');
    if (opt_json)
        print_json(obj_new("status", jstr(status), "error-desc", reason ? jstr(reason) : NULL, NULL));
    if (!strcmp(status, "completed")) {
        if (!opt_json)
            printf("migrate: completed to %s\n", uri);
        return EXIT_OK;
    }
    die(EXIT_QMP_ERROR, "migration %s: %s", status, reason ? reason : status);
}

/* ---- main ---- */

static const struct command {
    const char *name;
    cmd_fn fn;
} commands[] = {
    { "status", cmd_status },
    { "pause", cmd_simple },
    { "resume", cmd_simple },
    { "powerdown", cmd_simple },
    { "reset", cmd_simple },
    { "quit", cmd_simple },
    { "info", cmd_info },
    { "add-disk", cmd_add_disk },
    { "add-net", cmd_add_net },
    { "remove-device", cmd_remove_device },
    { "add-cpu", cmd_add_cpu },
    { "remove-cpu", cmd_remove_cpu },
    { "resize-memory", cmd_resize_memory },
    { "events", cmd_events },
    { "wait-event", cmd_wait_event },
    { "migrate", cmd_migrate },
    { "qmp", cmd_qmp },
};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *cmd = NULL;
    GPtrArray *rest = g_ptr_array_new();
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            if (cmd)
                g_ptr_array_add(rest, (gpointer)a);
            only_pos = true;
            continue;
        }
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        if (!only_pos && !strcmp(a, "--version")) {
            printf("vmmctl %s\n", VMM_VERSION);
            return EXIT_OK;
        }
        if (!only_pos && !strcmp(a, "--json")) {
            opt_json = true;
            continue;
        }
        if (!only_pos && (!strcmp(a, "-s") || !strcmp(a, "--socket") || g_str_has_prefix(a, "--socket="))) {
            if (a[1] != '-' || !strchr(a, '=')) {
                if (i + 1 >= argc)
                    usage_error("%s needs a socket path", a);
                opt_socket = argv[++i];
            } else {
                opt_socket = strchr(a, '=') + 1;
            }
            if (!*opt_socket)
                usage_error("empty socket path");
            continue;
        }
        if (!only_pos && (!strcmp(a, "--timeout") || g_str_has_prefix(a, "--timeout="))) {
            const char *v;
            if (strchr(a, '='))
                v = strchr(a, '=') + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                usage_error("--timeout needs a number of seconds");
            char *end;
            double t = g_ascii_strtod(v, &end);
            if (!*v || *end || !(t > 0) || t > 1e6 || isnan(t))
                usage_error("--timeout wants a positive number of seconds, not '%s'", v);
            opt_timeout = t;
            opt_timeout_set = true;
            continue;
        }
        if (!cmd) {
            if (!only_pos && a[0] == '-' && a[1])
                usage_error("unknown option %s (vmmctl --help lists the options)", a);
            cmd = a;
        } else {
            g_ptr_array_add(rest, (gpointer)a);
        }
    }
    if (!cmd)
        usage_error("no command given (vmmctl --help lists them)");
    const struct command *cm = NULL;
    for (unsigned i = 0; i < G_N_ELEMENTS(commands); i++)
        if (!strcmp(commands[i].name, cmd))
            cm = &commands[i];
    if (!cm)
        usage_error("unknown command '%s' (vmmctl --help lists them)", cmd);

    if (!opt_socket)
        opt_socket = g_getenv("VMMCTL_SOCKET");
    if (!opt_socket || !*opt_socket)
        usage_error("no socket: give -s SOCKET (or set VMMCTL_SOCKET)");

    struct conn c = { .fd = -1, .buf = g_string_new(NULL) };
    g_queue_init(&c.events);
    return cm->fn(&c, cmd, (int)rest->len, (char **)rest->pdata);
}
