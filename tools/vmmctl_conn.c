/* vmmctl: the QMP connection and what every command shares (vmmctl.h). */
#include "vmmctl.h"

/* ---- errors ---- */

__attribute__((noreturn, format(printf, 2, 3)))
void die(int code, const char *fmt, ...)
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

/* ---- options ---- */

const char *opt_socket = NULL;
bool opt_json = false;
double opt_timeout = DEFAULT_TIMEOUT;
bool opt_timeout_set = false;

int64_t deadline_after(double secs)
{
    return g_get_monotonic_time() + (int64_t)(secs * 1e6);
}

char *fmt_secs(double s)
{
    return g_strdup_printf("%g", s);
}

/* ---- small JSON helpers ---- */

char *node_to_string(JsonNode *n)
{
    if (!n)
        return g_strdup("{}");
    return json_to_string(n, FALSE);
}

JsonObject *obj_of(JsonNode *n)
{
    return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

JsonArray *arr_of(JsonNode *n)
{
    return n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
}

JsonNode *member(JsonObject *o, const char *key)
{
    return o ? json_object_get_member(o, key) : NULL;
}

const char *str_member(JsonObject *o, const char *key)
{
    JsonNode *n = member(o, key);
    return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ?
           json_node_get_string(n) : NULL;
}

/* A scalar member as text ("" when missing). */
char *scalar_text(JsonObject *o, const char *key)
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

bool int_member(JsonObject *o, const char *key, int64_t *out)
{
    JsonNode *n = member(o, key);
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return false;
    *out = json_node_get_int(n);
    return true;
}

/* Builds an object node from alternating key, value-node pairs ending with
 * NULL; a NULL value node leaves the key out. */
JsonNode *obj_new(const char *key, ...)
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

JsonNode *jstr(const char *s)
{
    return s ? json_node_init_string(json_node_alloc(), s) : NULL;
}

JsonNode *jint(int64_t v)
{
    return json_node_init_int(json_node_alloc(), v);
}

JsonNode *jbool(bool v)
{
    return json_node_init_boolean(json_node_alloc(), v);
}

void print_json(JsonNode *n)
{
    char *s = node_to_string(n);
    printf("%s\n", s);
    g_free(s);
}

/* ---- the connection ---- */

bool conn_eof_ok;        /* migrate: the source exits once done; EOF is an answer */
bool conn_eof_seen;

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

void reply_clear(struct reply *r)
{
    if (r->ret)
        json_node_unref(r->ret);
    g_free(r->err_class);
    g_free(r->err_desc);
    memset(r, 0, sizeof *r);
}

bool is_command_not_found(const struct reply *r)
{
    return r->err_class && !strcmp(r->err_class, "CommandNotFound");
}

/* Runs cmd with args (an object node or NULL; not taken). Returns false with
 * r->err_* set when the VM answered with an error; exits on timeout or a lost
 * connection. */
bool conn_execute(struct conn *c, const char *cmd, JsonNode *args, struct reply *r)
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
void die_reply(const char *what, const struct reply *r)
{
    if (opt_json)
        print_json(obj_new("error", obj_new("class", jstr(r->err_class), "desc", jstr(r->err_desc), NULL), NULL));
    if (what)
        die(EXIT_QMP_ERROR, "%s: %s", what, r->err_desc);
    die(EXIT_QMP_ERROR, "%s", r->err_desc);
}

/* Runs cmd and returns its value, exiting 1 on a QMP error. */
JsonNode *execute_or_die(struct conn *c, const char *cmd, JsonNode *args)
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

void conn_ensure(struct conn *c)
{
    if (c->fd < 0)
        conn_open(c);
}

/* ---- per-command arguments ---- */

/* Parses argv (the words after COMMAND) against opts (ending with a NULL
 * name): options anywhere, "--" ends them. */
void parse_cmd_args(const char *cmd, int argc, char **argv, struct copt *opts, struct cargs *out)
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

void want_pos(const char *cmd, struct cargs *a, unsigned min, unsigned max, const char *what)
{
    if (a->pos->len < min)
        usage_error("%s: missing argument (usage: vmmctl %s %s)", cmd, cmd, what);
    if (a->pos->len > max)
        usage_error("%s: unexpected argument '%s' (usage: vmmctl %s%s%s)", cmd,
                    (const char *)a->pos->pdata[max], cmd, *what ? " " : "", what);
}

const char *pos(struct cargs *a, unsigned i)
{
    return i < a->pos->len ? a->pos->pdata[i] : NULL;
}

/* A QMP/QOM id: what QEMU's id_wellformed accepts (a letter, then letters,
 * digits, '-', '.', '_'). */
void check_id(const char *cmd, const char *id)
{
    bool ok = g_ascii_isalpha(id[0]);
    for (const char *p = id; ok && *p; p++)
        ok = g_ascii_isalnum(*p) || *p == '-' || *p == '.' || *p == '_';
    if (!ok)
        usage_error("%s: bad id '%s' (a letter, then letters, digits, '-', '.', '_')", cmd, id);
}

JsonNode *parse_json_args(const char *cmd, const char *text)
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

struct table *table_new(unsigned ncols, ...)
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
void table_add(struct table *t, ...)
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

void table_print(struct table *t, const char *indent)
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
enum read_status next_event(struct conn *c, int64_t deadline, JsonNode **out)
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

void print_event(JsonNode *ev)
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
JsonNode *wait_for_event(struct conn *c, const char *name, GPtrArray *matches, int64_t deadline)
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

