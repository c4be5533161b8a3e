/* The QMP server over socket pairs and real unix sockets on a real loop:
 * the greeting, the negotiation gate, id echo, QEMU's error shapes, framing
 * (objects split over writes or several in one, \n, \r\n or nothing after
 * them, braces inside strings), garbage, the input and output bounds that
 * drop a client, clients independent of each other, events only to
 * negotiated clients, the argument helpers, listening sockets (fd=N
 * listening or connected, wait=on, the socket file removed at free).
 *
 * The loop runs one round (loop_run_once) after each write of the test, so
 * nothing waits on a clock; a reply that never comes fails after 10 s of
 * poll (a hang guard, not a threshold). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/loop.h"
#include "vmm/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, " \
                 "\"package\": \"vmm-" VMM_VERSION "\"}, \"capabilities\": [\"oob\"]}}"
#define EXPECTING "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities " \
                  "negotiation with 'qmp_capabilities'\"}}"
#define OK_EMPTY "{\"return\": {}}"

struct t {
    struct loop *loop;
    struct qmp_server *s;
    char dir[64];
};

/* A command with no arguments that returns {}. */
static JsonNode *cmd_nop(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    (void)ctx;
    qmp_args_check(args, NULL, err);
    return NULL;
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    GError *err = NULL;
    t->loop = loop_new(&err);
    assert_non_null(t->loop);
    t->s = qmp_server_new(t->loop);
    qmp_register(t->s, "x-nop", cmd_nop, NULL, 0);
    strcpy(t->dir, "/tmp/vmm-test-qmp.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    qmp_server_free(t->s);
    loop_free(t->loop);
    rmdir(t->dir);
    free(t);
    return 0;
}

/* A connected client: our end of a socket pair, the greeting read. */
static int connect_pair(struct t *t, bool read_greeting);

/* Reads one message (up to "\r\n", which must end it). NULL at EOF. */
static char *read_msg(int fd)
{
    GString *b = g_string_new(NULL);
    for (;;) {
        if (b->len >= 2 && b->str[b->len - 2] == '\r' && b->str[b->len - 1] == '\n') {
            g_string_truncate(b, b->len - 2);
            return g_string_free(b, FALSE);
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 10000);
        assert_int_equal(r, 1);     /* a reply that never came */
        char c;
        ssize_t n = recv(fd, &c, 1, 0);
        if (n == 0) {
            assert_int_equal(b->len, 0);    /* EOF inside a message */
            g_string_free(b, TRUE);
            return NULL;
        }
        assert_int_equal(n, 1);
        g_string_append_c(b, c);
    }
}

static void expect_msg(int fd, const char *want)
{
    char *m = read_msg(fd);
    assert_non_null(m);
    assert_string_equal(m, want);
    g_free(m);
}

/* Nothing more waits to be read. */
static void expect_nothing(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    assert_int_equal(n, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void send_str(struct t *t, int fd, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(fd, s, len, 0), (ssize_t)len);
    assert_int_equal(loop_run_once(t->loop), 0);
}

static int connect_pair(struct t *t, bool read_greeting)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(qmp_server_add_client(t->s, sv[1]));
    if (read_greeting)
        expect_msg(sv[0], GREETING);
    return sv[0];
}

static int negotiated_pair(struct t *t)
{
    int fd = connect_pair(t, true);
    send_str(t, fd, "{\"execute\": \"qmp_capabilities\"}\r\n");
    expect_msg(fd, OK_EMPTY);
    return fd;
}

static void test_greeting(void **state)
{
    struct t *t = *state;
    int fd = connect_pair(t, false);
    /* Exactly the greeting and its \r\n, nothing before it is asked for. */
    char *m = read_msg(fd);
    assert_string_equal(m, GREETING);
    g_free(m);
    expect_nothing(fd);
    assert_int_equal(qmp_server_nr_clients(t->s), 1);
    close(fd);
}

static void test_negotiation_gate(void **state)
{
    struct t *t = *state;
    int fd = connect_pair(t, true);
    send_str(t, fd, "{\"execute\": \"query-version\"}\n");
    expect_msg(fd, EXPECTING);
    /* An unknown command before negotiation: the same words, as QEMU. */
    send_str(t, fd, "{\"execute\": \"no-such-command\"}\n");
    expect_msg(fd, EXPECTING);
    send_str(t, fd, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}\n");
    expect_msg(fd, OK_EMPTY);
    send_str(t, fd, "{\"execute\": \"qmp_capabilities\"}\n");
    expect_msg(fd, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities negotiation is already "
                   "complete, command ignored\"}}");
    send_str(t, fd, "{\"execute\": \"query-version\"}\n");
    expect_msg(fd, "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"vmm-"
                   VMM_VERSION "\"}}");
    send_str(t, fd, "{\"execute\": \"no-such-command\"}\n");
    expect_msg(fd, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command no-such-command has "
                   "not been found\"}}");
    close(fd);
}

static void test_capabilities_args(void **state)
{
    struct t *t = *state;
    int fd = connect_pair(t, true);
    send_str(t, fd, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": \"oob\"}}");
    expect_msg(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'enable', "
                   "expected: array\"}}");
    send_str(t, fd, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"x\"]}}");
    expect_msg(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'enable' does not accept "
                   "value 'x'\"}}");
    send_str(t, fd, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"x\": 1}}");
    expect_msg(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}");
    /* None of those negotiated. */
    send_str(t, fd, "{\"execute\": \"query-version\"}");
    expect_msg(fd, EXPECTING);
    close(fd);
}

static void test_id_echo(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    send_str(t, fd, "{\"execute\": \"x-nop\", \"id\": \"libvirt-7\"}\r\n");
    expect_msg(fd, "{\"return\": {}, \"id\": \"libvirt-7\"}");
    send_str(t, fd, "{\"id\": 42, \"execute\": \"x-nop\"}\r\n");
    expect_msg(fd, "{\"return\": {}, \"id\": 42}");
    send_str(t, fd, "{\"execute\": \"x-nop\", \"id\": {\"a\": [1, 2.5, true, null]}}\r\n");
    expect_msg(fd, "{\"return\": {}, \"id\": {\"a\": [1, 2.5, true, null]}}");
    send_str(t, fd, "{\"execute\": \"x-nop\", \"id\": \"\\u00e9\\n\"}\r\n");
    expect_msg(fd, "{\"return\": {}, \"id\": \"\\u00E9\\n\"}");
    /* On errors too: before "error", as QEMU orders them. */
    send_str(t, fd, "{\"execute\": \"nope\", \"id\": [\"x\"]}\r\n");
    expect_msg(fd, "{\"id\": [\"x\"], \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope "
                   "has not been found\"}}");
    send_str(t, fd, "{\"id\": 5}\r\n");
    expect_msg(fd, "{\"id\": 5, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member "
                   "'execute'\"}}");
    close(fd);
}

#define GENERIC(d) "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" d "\"}}"

static void test_error_shapes(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    static const struct { const char *in, *out; } cases[] = {
        { "[1]\n", GENERIC("QMP input must be a JSON object") },
        { "1\n", GENERIC("QMP input must be a JSON object") },
        { "\"abc\"\n", GENERIC("QMP input must be a JSON object") },
        { "null\n", GENERIC("QMP input must be a JSON object") },
        { "foo\n", GENERIC("JSON parse error, invalid keyword 'foo'") },
        { "}\n", GENERIC("JSON parse error, expecting value") },
        { "{\"execute\": 1}\n", GENERIC("QMP input member 'execute' must be a string") },
        { "{\"arguments\": {}}\n", GENERIC("QMP input lacks member 'execute'") },
        { "{\"execute\": \"x-nop\", \"arguments\": []}\n",
          GENERIC("QMP input member 'arguments' must be an object") },
        { "{\"execute\": \"x-nop\", \"zz\": 1}\n", GENERIC("QMP input member 'zz' is unexpected") },
        { "{\"execute\": \"x-nop\", \"exec-oob\": \"x-nop\"}\n",
          GENERIC("QMP input member 'execute' clashes with 'exec-oob'") },
        { "{\"exec-oob\": \"x-nop\"}\n", GENERIC("The command x-nop does not support OOB") },
        { "{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}\n", GENERIC("Parameter 'x' is unexpected") },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        send_str(t, fd, cases[i].in);
        expect_msg(fd, cases[i].out);
    }
    /* Bad JSON inside an object: a parse error, whatever json-glib calls it. */
    send_str(t, fd, "{\"a\": 1,}\n");
    char *m = read_msg(fd);
    assert_non_null(strstr(m, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, "));
    g_free(m);
    expect_nothing(fd);
    /* The connection still works after all that. */
    send_str(t, fd, "{\"execute\": \"x-nop\"}");
    expect_msg(fd, OK_EMPTY);
    close(fd);
}

static void test_framing(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    /* Several objects in one write, with \n, \r\n and nothing between them. */
    send_str(t, fd, "{\"execute\": \"x-nop\", \"id\": 1}{\"execute\": \"x-nop\", \"id\": 2}\n"
                    "{\"execute\": \"x-nop\", \"id\": 3}\r\n  {\"execute\": \"x-nop\", \"id\": 4}");
    for (int i = 1; i <= 4; i++) {
        g_autofree char *want = g_strdup_printf("{\"return\": {}, \"id\": %d}", i);
        expect_msg(fd, want);
    }
    expect_nothing(fd);
    /* One object a byte at a time: one reply, after its last byte. */
    const char *obj = "{\"execute\": \"x-nop\", \"id\": \"}{\\\"][\"}";
    for (size_t i = 0; obj[i]; i++) {
        char b[2] = { obj[i], 0 };
        if (obj[i + 1])
            expect_nothing(fd);
        send_str(t, fd, b);
    }
    expect_msg(fd, "{\"return\": {}, \"id\": \"}{\\\"][\"}");
    /* A number id split in the middle of the object's members. */
    send_str(t, fd, "{\"execute\": \"x-");
    expect_nothing(fd);
    send_str(t, fd, "nop\", \"id\": [[{}]");
    expect_nothing(fd);
    send_str(t, fd, "]}\r\n");
    expect_msg(fd, "{\"return\": {}, \"id\": [[{}]]}");
    expect_nothing(fd);
    close(fd);
}

static void test_reads_until_empty(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    /* A command behind 60 KB of blank lines, all sent before the server's
     * round: its fd watch reports readiness once, so the server must read
     * until the socket is empty (it reads 16 KiB at a time) to answer in
     * that one round. */
    GString *in = g_string_new(NULL);
    for (int i = 0; i < 60000; i++)
        g_string_append_c(in, i % 2 ? '\n' : ' ');
    g_string_append(in, "{\"execute\": \"x-nop\", \"id\": \"behind\"}");
    assert_int_equal(send(fd, in->str, in->len, 0), (ssize_t)in->len);
    g_string_free(in, TRUE);
    assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(fd, "{\"return\": {}, \"id\": \"behind\"}");
    close(fd);
}

static void test_half_close_gets_every_reply(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    /* 800 commands in one read, then the half-close (socat at the end of
     * its input): far more replies than the socket holds. Every one must
     * arrive, in order, before the server closes: the rest of its queue goes
     * out through POLLOUT after the EOF. alarm() turns a server that stops
     * into a failure. */
    GString *in = g_string_new(NULL);
    for (int i = 0; i < 800; i++)
        g_string_append(in, "{\"execute\":\"x-nop\"}");
    assert_true(in->len < 16384);
    assert_int_equal(send(fd, in->str, in->len, 0), (ssize_t)in->len);
    shutdown(fd, SHUT_WR);
    g_string_free(in, TRUE);
    alarm(30);
    GString *out = g_string_new(NULL);
    for (;;) {
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0) {
            g_string_append_len(out, buf, n);
            continue;
        }
        assert_true(errno == EAGAIN);
        assert_int_equal(loop_run_once(t->loop), 0);
    }
    alarm(0);
    char **lines = g_strsplit(out->str, "\r\n", -1);
    assert_int_equal(g_strv_length(lines), 801);    /* the last one empty */
    for (int i = 0; i < 800; i++)
        assert_string_equal(lines[i], OK_EMPTY);
    g_strfreev(lines);
    g_string_free(out, TRUE);
    assert_int_equal(qmp_server_nr_clients(t->s), 0);
    close(fd);
}

static void test_garbage(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    /* Bytes that are no JSON at all, then a good command: the connection
     * recovers at the next balanced object. */
    send_str(t, fd, "\x01\x02zz\n");
    char *m = read_msg(fd);
    assert_non_null(strstr(m, "JSON parse error"));
    g_free(m);
    send_str(t, fd, "{\"\xff\xfe\": 1}\n");
    m = read_msg(fd);
    assert_non_null(strstr(m, "JSON parse error"));
    g_free(m);
    send_str(t, fd, "]]\n");
    expect_msg(fd, GENERIC("JSON parse error, expecting value"));
    expect_msg(fd, GENERIC("JSON parse error, expecting value"));
    send_str(t, fd, "{\"execute\": \"x-nop\", \"id\": 9}\n");
    expect_msg(fd, "{\"return\": {}, \"id\": 9}");
    assert_int_equal(qmp_server_nr_clients(t->s), 1);
    close(fd);
}

static void test_oversize_dropped(void **state)
{
    struct t *t = *state;
    qmp_server_set_limits(t->s, 4096, 1 << 20);
    int keep = negotiated_pair(t);
    int fd = negotiated_pair(t);
    assert_int_equal(qmp_server_nr_clients(t->s), 2);
    GString *big = g_string_new("{\"execute\": \"x-nop\", \"id\": \"");
    for (int i = 0; i < 5000; i++)
        g_string_append_c(big, 'x');
    assert_int_equal(send(fd, big->str, big->len, 0), (ssize_t)big->len);
    g_string_free(big, TRUE);
    assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(fd, GENERIC("JSON input exceeds 4096 bytes without a complete object; closing the connection"));
    assert_null(read_msg(fd));      /* then EOF */
    assert_int_equal(qmp_server_nr_clients(t->s), 1);
    close(fd);

    /* Nesting deeper than QEMU's 1024 levels: the same. */
    fd = negotiated_pair(t);
    char deep[1100];
    memset(deep, '[', sizeof(deep));
    assert_int_equal(send(fd, deep, sizeof(deep), 0), (ssize_t)sizeof(deep));
    assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(fd, GENERIC("JSON parse error, nesting too deep; closing the connection"));
    assert_null(read_msg(fd));
    assert_int_equal(qmp_server_nr_clients(t->s), 1);
    close(fd);

    /* The other client never noticed. */
    send_str(t, keep, "{\"execute\": \"x-nop\"}");
    expect_msg(keep, OK_EMPTY);
    close(keep);
}

static void test_two_clients_and_events(void **state)
{
    struct t *t = *state;
    int a = negotiated_pair(t);
    int b = connect_pair(t, true);
    /* b is still gated while a runs commands. */
    send_str(t, b, "{\"execute\": \"x-nop\"}");
    expect_msg(b, EXPECTING);
    send_str(t, a, "{\"execute\": \"x-nop\"}");
    expect_msg(a, OK_EMPTY);
    expect_nothing(b);

    JsonObject *d = json_object_new();
    json_object_set_string_member(d, "device", "disk1");
    JsonNode *dn = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(dn, d);
    qmp_emit_event(t->s, "DEVICE_DELETED", dn);
    char *m = read_msg(a);
    int64_t sec, usec;
    char tail[200];
    assert_int_equal(sscanf(m, "{\"timestamp\": {\"seconds\": %" SCNd64 ", \"microseconds\": %" SCNd64 "}, %199[^\n]",
                            &sec, &usec, tail), 3);
    assert_true(sec > 1600000000);
    assert_true(usec >= 0 && usec < 1000000);
    assert_string_equal(tail, "\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"disk1\"}}");
    g_free(m);
    expect_nothing(b);      /* not negotiated: no events */

    /* Without data: no "data" member. */
    qmp_emit_event(t->s, "STOP", NULL);
    m = read_msg(a);
    assert_non_null(strstr(m, "}, \"event\": \"STOP\"}"));
    g_free(m);

    /* b negotiates and from then on gets them too. */
    send_str(t, b, "{\"execute\": \"qmp_capabilities\"}");
    expect_msg(b, OK_EMPTY);
    qmp_emit_event(t->s, "RESUME", NULL);
    m = read_msg(a);
    assert_non_null(strstr(m, "\"event\": \"RESUME\""));
    g_free(m);
    m = read_msg(b);
    assert_non_null(strstr(m, "\"event\": \"RESUME\""));
    g_free(m);
    close(a);
    close(b);
}

static void test_disconnects(void **state)
{
    struct t *t = *state;
    /* A command, then gone before the reply: the write fails, vmm goes on. */
    int fd = negotiated_pair(t);
    assert_int_equal(send(fd, "{\"execute\": \"query-commands\"}", 29, 0), 29);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    assert_int_equal(loop_run_once(t->loop), 0);
    assert_int_equal(qmp_server_nr_clients(t->s), 0);

    /* Half-closed after its command (socat at the end of its input): the
     * reply still comes, then the server closes. */
    fd = negotiated_pair(t);
    const char *cmd = "{\"execute\": \"x-nop\"}";
    assert_int_equal(send(fd, cmd, strlen(cmd), 0), (ssize_t)strlen(cmd));
    shutdown(fd, SHUT_WR);
    while (qmp_server_nr_clients(t->s) > 0)
        assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(fd, OK_EMPTY);
    assert_null(read_msg(fd));
    close(fd);

    /* Gone before its greeting: adopting it fails cleanly (valgrind/ASan
     * runs of this test catch a use of the freed client). */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[0]);
    assert_null(qmp_server_add_client(t->s, sv[1]));
    assert_int_equal(qmp_server_nr_clients(t->s), 0);

    /* A bare word that ends with the input still counts. */
    fd = negotiated_pair(t);
    assert_int_equal(send(fd, "42", 2, 0), 2);
    shutdown(fd, SHUT_WR);
    while (qmp_server_nr_clients(t->s) > 0)
        assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(fd, GENERIC("QMP input must be a JSON object"));
    close(fd);
}

static void test_slow_reader_dropped(void **state)
{
    struct t *t = *state;
    qmp_server_set_limits(t->s, 1 << 20, 256 * 1024);
    int fd = negotiated_pair(t);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* Events pile up while the client reads nothing; emitting never blocks
     * and the client is dropped once 256 KiB wait for it. */
    JsonObject *d = json_object_new();
    GString *pad = g_string_new(NULL);
    for (int i = 0; i < 1000; i++)
        g_string_append_c(pad, 'p');
    json_object_set_string_member(d, "pad", pad->str);
    g_string_free(pad, TRUE);
    JsonNode *dn = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(dn, d);
    int i;
    for (i = 0; i < 10000 && qmp_server_nr_clients(t->s) > 0; i++)
        qmp_emit_event(t->s, "X", json_node_copy(dn));
    json_node_unref(dn);
    assert_int_equal(qmp_server_nr_clients(t->s), 0);
    assert_true(i > 100);       /* the socket buffer and the queue took some first */
    close(fd);
}

static void test_backpressure_in_order(void **state)
{
    struct t *t = *state;
    int fd = negotiated_pair(t);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* 3000 events of ~600 bytes: far more than the socket holds, less than
     * the 4 MiB bound. They wait in the queue, go out as the client reads
     * (POLLOUT), and arrive whole and in order. */
    char pad[500];
    memset(pad, 'q', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = 0;
    for (int i = 0; i < 3000; i++) {
        JsonObject *d = json_object_new();
        json_object_set_int_member(d, "n", i);
        json_object_set_string_member(d, "pad", pad);
        JsonNode *dn = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(dn, d);
        qmp_emit_event(t->s, "SEQ", dn);
    }
    assert_int_equal(qmp_server_nr_clients(t->s), 1);
    GString *in = g_string_new(NULL);
    int next = 0;
    while (next < 3000) {
        char buf[8192];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            assert_true(errno == EAGAIN);
            /* Drained: the server writes more once its POLLOUT fires. */
            assert_int_equal(loop_run_once(t->loop), 0);
            continue;
        }
        assert_true(n > 0);
        g_string_append_len(in, buf, n);
        char *nl;
        while ((nl = strstr(in->str, "\r\n"))) {
            *nl = 0;
            g_autofree char *want = g_strdup_printf("\"event\": \"SEQ\", \"data\": {\"n\": %d, \"pad\": \"%s\"}}",
                                                    next, pad);
            assert_non_null(strstr(in->str, want));
            next++;
            g_string_erase(in, 0, nl + 2 - in->str);
        }
    }
    assert_int_equal(in->len, 0);
    g_string_free(in, TRUE);
    /* Still a working client, its queue empty. */
    send_str(t, fd, "{\"execute\": \"x-nop\"}");
    expect_msg(fd, OK_EMPTY);
    close(fd);
}

/* Sends s with the fds (SCM_RIGHTS on the same sendmsg), runs the loop. */
static void send_with_fds(struct t *t, int fd, const char *s, const int *fds, unsigned nfds)
{
    union {
        char b[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { .iov_base = (void *)s, .iov_len = strlen(s) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = CMSG_SPACE(nfds * sizeof(int)) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)strlen(s));
    assert_int_equal(loop_run_once(t->loop), 0);
}

/* The write end of a pipe is still open somewhere while a read of the read
 * end would block rather than see EOF. */
static bool write_end_open(int rfd)
{
    char c;
    ssize_t n = read(rfd, &c, 1);
    assert_true(n <= 0);
    return n < 0 && errno == EAGAIN;
}

static int taken_fd = -1;

/* x-take {"fdname": NAME}: what a netdev_add fd=NAME does. */
static JsonNode *cmd_take(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    const char *name = NULL;
    if (!qmp_arg_str(args, "fdname", true, &name, err))
        return NULL;
    int fd = qmp_client_take_named_fd(ctx->client, name);
    if (fd < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "no fd '%s'", name);
        return NULL;
    }
    taken_fd = fd;
    return NULL;
}

static void test_fd_passing(void **state)
{
    struct t *t = *state;
    qmp_register(t->s, "x-take", cmd_take, NULL, 0);
    int fd = negotiated_pair(t);
    int p1[2], p2[2], p3[2];
    assert_int_equal(pipe2(p1, O_NONBLOCK), 0);
    assert_int_equal(pipe2(p2, O_NONBLOCK), 0);
    assert_int_equal(pipe2(p3, O_NONBLOCK), 0);

    send_str(t, fd, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"tap0\"}}");
    expect_msg(fd, GENERIC("No file descriptor supplied via SCM_RIGHTS"));
    send_with_fds(t, fd, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"0tap\"}}", &p1[1], 1);
    expect_msg(fd, GENERIC("Parameter 'fdname' expects a name not starting with a digit"));
    close(p1[1]);
    assert_false(write_end_open(p1[0]));    /* the refused fd was closed */

    send_with_fds(t, fd, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"tap0\"}}", &p2[1], 1);
    expect_msg(fd, OK_EMPTY);
    close(p2[1]);
    assert_true(write_end_open(p2[0]));     /* held under tap0 */
    send_str(t, fd, "{\"execute\": \"x-take\", \"arguments\": {\"fdname\": \"tap0\"}}");
    expect_msg(fd, OK_EMPTY);
    assert_true(taken_fd >= 0);
    send_str(t, fd, "{\"execute\": \"x-take\", \"arguments\": {\"fdname\": \"tap0\"}}");
    expect_msg(fd, GENERIC("no fd 'tap0'"));    /* taken once */
    close(taken_fd);
    assert_false(write_end_open(p2[0]));

    send_with_fds(t, fd, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"n\"}}", &p3[1], 1);
    expect_msg(fd, OK_EMPTY);
    close(p3[1]);
    send_str(t, fd, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"n\"}}");
    expect_msg(fd, OK_EMPTY);
    assert_false(write_end_open(p3[0]));
    send_str(t, fd, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"n\"}}");
    expect_msg(fd, GENERIC("File descriptor named 'n' not found"));

    /* Fds nobody took, named or not, go with the connection. */
    int q1[2], q2[2];
    assert_int_equal(pipe2(q1, O_NONBLOCK), 0);
    assert_int_equal(pipe2(q2, O_NONBLOCK), 0);
    send_with_fds(t, fd, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"kept\"}}", &q1[1], 1);
    expect_msg(fd, OK_EMPTY);
    send_with_fds(t, fd, "{\"execute\": \"x-nop\"}", &q2[1], 1);
    expect_msg(fd, OK_EMPTY);
    close(q1[1]);
    close(q2[1]);
    assert_true(write_end_open(q1[0]));
    assert_true(write_end_open(q2[0]));
    close(fd);
    assert_int_equal(loop_run_once(t->loop), 0);
    assert_int_equal(qmp_server_nr_clients(t->s), 0);
    assert_false(write_end_open(q1[0]));
    assert_false(write_end_open(q2[0]));
    int all[] = { p1[0], p2[0], p3[0], q1[0], q2[0] };
    for (unsigned i = 0; i < G_N_ELEMENTS(all); i++)
        close(all[i]);
}

/* A command of a test module: echoes its argument "v" (a string), or fails
 * with the class given in "class". */
static JsonNode *cmd_echo(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    assert_ptr_equal(ctx->opaque, (void *)0x1234);
    static const char *const known[] = { "v", "class", "n", "b", NULL };
    if (!qmp_args_check(args, known, err))
        return NULL;
    int64_t cls = -1;
    if (!qmp_arg_int(args, "class", false, &cls, err))
        return NULL;
    if (cls >= 0) {
        g_set_error(err, QMP_ERROR, (int)cls, "failed as asked");
        return NULL;
    }
    const char *v = NULL;
    if (!qmp_arg_str(args, "v", true, &v, err))
        return NULL;
    bool b = false;
    if (!qmp_arg_bool(args, "b", false, &b, err))
        return NULL;
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, v);
    return n;
}

static void test_registered_command(void **state)
{
    struct t *t = *state;
    qmp_register(t->s, "x-echo", cmd_echo, (void *)0x1234, 0);
    int fd = negotiated_pair(t);
    send_str(t, fd, "{\"execute\": \"x-echo\", \"arguments\": {\"v\": \"hi\"}, \"id\": 1}");
    expect_msg(fd, "{\"return\": \"hi\", \"id\": 1}");
    send_str(t, fd, "{\"execute\": \"x-echo\"}");
    expect_msg(fd, GENERIC("Parameter 'v' is missing"));
    send_str(t, fd, "{\"execute\": \"x-echo\", \"arguments\": {\"v\": 3}}");
    expect_msg(fd, GENERIC("Invalid parameter type for 'v', expected: string"));
    send_str(t, fd, "{\"execute\": \"x-echo\", \"arguments\": {\"v\": \"a\", \"b\": \"yes\"}}");
    expect_msg(fd, GENERIC("Invalid parameter type for 'b', expected: boolean"));
    send_str(t, fd, "{\"execute\": \"x-echo\", \"arguments\": {\"class\": \"1\"}}");
    expect_msg(fd, GENERIC("Invalid parameter type for 'class', expected: integer"));
    send_str(t, fd, "{\"execute\": \"x-echo\", \"arguments\": {\"v\": \"a\", \"w\": 1}}");
    expect_msg(fd, GENERIC("Parameter 'w' is unexpected"));
    static const char *const classes[] = { "GenericError", "CommandNotFound", "DeviceNotFound", "DeviceNotActive",
                                           "KVMMissingCap" };
    for (int c = 0; c < 5; c++) {
        g_autofree char *in = g_strdup_printf("{\"execute\": \"x-echo\", \"arguments\": {\"class\": %d}, \"id\": %d}",
                                              c, c);
        g_autofree char *want = g_strdup_printf("{\"id\": %d, \"error\": {\"class\": \"%s\", \"desc\": \"failed as "
                                                "asked\"}}", c, classes[c]);
        send_str(t, fd, in);
        expect_msg(fd, want);
    }
    /* query-commands lists it with the built-in ones. */
    send_str(t, fd, "{\"execute\": \"query-commands\"}");
    expect_msg(fd, "{\"return\": [{\"name\": \"qmp_capabilities\"}, {\"name\": \"query-version\"}, "
                   "{\"name\": \"query-commands\"}, {\"name\": \"getfd\"}, {\"name\": \"closefd\"}, "
                   "{\"name\": \"x-nop\"}, {\"name\": \"x-echo\"}]}");
    close(fd);
}

static void test_arg_helpers(void **state)
{
    (void)state;
    g_autoptr(JsonParser) p = json_parser_new();
    assert_true(json_parser_load_from_data(p, "{\"s\": \"str\", \"i\": -5, \"b\": true, \"d\": 1.5, \"n\": null}",
                                           -1, NULL));
    JsonObject *a = json_node_get_object(json_parser_get_root(p));
    GError *err = NULL;
    const char *s = "untouched";
    int64_t i = 77;
    bool b = false;
    assert_true(qmp_arg_str(a, "s", true, &s, &err));
    assert_string_equal(s, "str");
    assert_true(qmp_arg_int(a, "i", true, &i, &err));
    assert_int_equal(i, -5);
    assert_true(qmp_arg_bool(a, "b", true, &b, &err));
    assert_true(b);
    /* Optional and missing: true, *out untouched. */
    s = "untouched";
    i = 77;
    assert_true(qmp_arg_str(a, "none", false, &s, &err));
    assert_true(qmp_arg_int(a, "none", false, &i, &err));
    assert_string_equal(s, "untouched");
    assert_int_equal(i, 77);
    assert_null(err);
    static const struct { int kind; const char *key; bool req; const char *msg; } bad[] = {
        { 0, "x", true, "Parameter 'x' is missing" },
        { 1, "x", true, "Parameter 'x' is missing" },
        { 2, "x", true, "Parameter 'x' is missing" },
        { 0, "i", false, "Invalid parameter type for 'i', expected: string" },
        { 0, "n", false, "Invalid parameter type for 'n', expected: string" },
        { 1, "d", true, "Invalid parameter type for 'd', expected: integer" },
        { 1, "s", true, "Invalid parameter type for 's', expected: integer" },
        { 1, "b", true, "Invalid parameter type for 'b', expected: integer" },
        { 2, "i", true, "Invalid parameter type for 'i', expected: boolean" },
        { 2, "s", false, "Invalid parameter type for 's', expected: boolean" },
    };
    for (size_t k = 0; k < G_N_ELEMENTS(bad); k++) {
        bool ok = bad[k].kind == 0   ? qmp_arg_str(a, bad[k].key, bad[k].req, &s, &err)
                  : bad[k].kind == 1 ? qmp_arg_int(a, bad[k].key, bad[k].req, &i, &err)
                                     : qmp_arg_bool(a, bad[k].key, bad[k].req, &b, &err);
        assert_false(ok);
        assert_non_null(err);
        assert_true(g_error_matches(err, QMP_ERROR, QMP_ERR_GENERIC));
        assert_string_equal(err->message, bad[k].msg);
        g_clear_error(&err);
    }
    static const char *const known[] = { "s", "i", "b", "d", "n", NULL };
    assert_true(qmp_args_check(a, known, &err));
    static const char *const fewer[] = { "s", "i", "b", "d", NULL };
    assert_false(qmp_args_check(a, fewer, &err));
    assert_string_equal(err->message, "Parameter 'n' is unexpected");
    g_clear_error(&err);
    assert_false(qmp_args_check(a, NULL, &err));
    g_clear_error(&err);
}

static int connect_path(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void test_unix_listener(void **state)
{
    struct t *t = *state;
    g_autofree char *path = g_strdup_printf("%s/qmp.sock", t->dir);
    g_autofree char *path2 = g_strdup_printf("%s/qmp2.sock", t->dir);
    struct qmp_endpoint ep = { .path = path, .fd = -1, .wait = true };
    struct qmp_endpoint ep2 = { .path = path2, .fd = -1, .wait = false };
    GError *err = NULL;
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep, &err), 0);
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep2, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_true(qmp_server_waiting(t->s));
    /* A connection on the other socket does not end the wait. */
    int c2 = connect_path(path2);
    assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(c2, GREETING);
    assert_true(qmp_server_waiting(t->s));
    int c1 = connect_path(path);
    assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(c1, GREETING);
    assert_false(qmp_server_waiting(t->s));
    /* A path someone listens on is refused; so is one that is no socket. */
    struct qmp_server *other = qmp_server_new(t->loop);
    assert_int_equal(qmp_server_add_endpoint(other, &ep, &err), -1);
    assert_non_null(strstr(err->message, "another process listens on it"));
    g_clear_error(&err);
    g_autofree char *file = g_strdup_printf("%s/file", t->dir);
    close(open(file, O_CREAT | O_WRONLY, 0600));
    struct qmp_endpoint epf = { .path = file, .fd = -1 };
    assert_int_equal(qmp_server_add_endpoint(other, &epf, &err), -1);
    assert_non_null(strstr(err->message, "exists and is not a socket"));
    g_clear_error(&err);
    qmp_server_free(other);
    unlink(file);
    assert_int_equal(stat(path, &st), 0);   /* the failed attempts did not take it away */

    qmp_server_free(t->s);
    t->s = NULL;
    /* Both clients see EOF and both socket files are gone. */
    assert_null(read_msg(c1));
    assert_null(read_msg(c2));
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(stat(path2, &st), -1);
    close(c1);
    close(c2);

    /* A stale socket file (nobody listens) is replaced. */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(stale);
    t->s = qmp_server_new(t->loop);
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep2, &err), 0);
    ep.wait = false;
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep, &err), 0);
    c1 = connect_path(path);
    assert_int_equal(loop_run_once(t->loop), 0);
    expect_msg(c1, GREETING);
    close(c1);
    qmp_server_free(t->s);
    t->s = qmp_server_new(t->loop);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(stat(path2, &st), -1);
}

static void test_fd_endpoints(void **state)
{
    struct t *t = *state;
    GError *err = NULL;
    /* An inherited listening socket (libvirt's -chardev socket,fd=N). */
    g_autofree char *path = g_strdup_printf("%s/lib.sock", t->dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    struct qmp_endpoint ep = { .fd = lfd };
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep, &err), 0);
    /* More than one accept over time (libvirt reconnects). */
    for (int k = 0; k < 3; k++) {
        int c = connect_path(path);
        assert_int_equal(loop_run_once(t->loop), 0);
        expect_msg(c, GREETING);
        close(c);
        assert_int_equal(loop_run_once(t->loop), 0);   /* its EOF */
    }
    assert_int_equal(qmp_server_nr_clients(t->s), 0);
    /* A connected socket: one client, greeted at once. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct qmp_endpoint ep2 = { .fd = sv[1] };
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep2, &err), 0);
    expect_msg(sv[0], GREETING);
    /* Not a socket. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    struct qmp_endpoint ep3 = { .fd = pfd[0] };
    assert_int_equal(qmp_server_add_endpoint(t->s, &ep3, &err), -1);
    assert_non_null(strstr(err->message, "is not a socket"));
    g_clear_error(&err);
    close(pfd[0]);
    close(pfd[1]);
    close(sv[0]);
    qmp_server_free(t->s);      /* closes the adopted fds; the path was not ours */
    t->s = qmp_server_new(t->loop);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    unlink(path);
}

static void test_feed_and_json(void **state)
{
    struct t *t = *state;
    /* qmp_server_feed (the fuzz target's way in) frames like a read. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct qmp_client *c = qmp_server_add_client(t->s, sv[1]);
    expect_msg(sv[0], GREETING);
    const char in[] = "{\"execute\":\"qmp_capabilities\"}{\"execute\":\"x-nop\",\"id\":\"\\ud83d\\ude00\"}";
    assert_int_equal(qmp_server_feed(c, in, sizeof(in) - 1), 0);
    expect_msg(sv[0], OK_EMPTY);
    /* Outside the BMP: a surrogate pair, as QEMU writes it. */
    expect_msg(sv[0], "{\"return\": {}, \"id\": \"\\uD83D\\uDE00\"}");
    close(sv[0]);

    g_autoptr(JsonParser) p = json_parser_new();
    assert_true(json_parser_load_from_data(p, "{\"a\": [1, -2, 0.25, \"x\\u0001\\\"\\\\\"], \"b\": {}, \"c\": false}",
                                           -1, NULL));
    g_autofree char *s = qmp_to_json(json_parser_get_root(p));
    assert_string_equal(s, "{\"a\": [1, -2, 0.25, \"x\\u0001\\\"\\\\\"], \"b\": {}, \"c\": false}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_greeting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negotiation_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capabilities_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_until_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_gets_every_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_clients_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_passing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_command, setup, teardown),
        cmocka_unit_test(test_arg_helpers),
        cmocka_unit_test_setup_teardown(test_unix_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_and_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
