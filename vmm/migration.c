#include "vmm/migration.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/snapshot.h"
#include "vmm/state.h"

#define MAGIC "VMMMIGR1"
#define STATE_MAX (256u << 20)
#define ANSWER_TIMEOUT_MS 120000

struct migrate_stats {
    bool done;
    const char *status;         /* QEMU's MigrationStatus words */
    uint64_t total_ms, downtime_ms, transferred, total, normal, duplicate;
    double mbps;
};
static struct migrate_stats stats;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* tcp:HOST:PORT (HOST may be [v6]) or unix:PATH into a sockaddr list. */
static int resolve(const char *uri, bool passive, struct addrinfo **out, struct sockaddr_un *un, GError **err)
{
    *out = NULL;
    if (g_str_has_prefix(uri, "unix:")) {
        const char *path = uri + 5;
        if (!*path || strlen(path) >= sizeof(un->sun_path)) {
            g_set_error(err, CONFIG_ERROR, 0, "%s: a unix socket path of 1-%zu bytes is needed", uri,
                        sizeof(un->sun_path) - 1);
            return -1;
        }
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, path);
        return 0;
    }
    if (!g_str_has_prefix(uri, "tcp:")) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: give tcp:HOST:PORT or unix:PATH", uri);
        return -1;
    }
    const char *hp = uri + 4;
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || !colon[1]) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: give tcp:HOST:PORT", uri);
        return -1;
    }
    g_autofree char *host = g_strndup(hp, (gsize)(colon - hp));
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = passive ? AI_PASSIVE : 0 };
    int r = getaddrinfo(host, colon + 1, &hints, out);
    if (r != 0) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s", uri, gai_strerror(r));
        return -1;
    }
    return 0;
}

int migration_check_uri(const char *uri, GError **err)
{
    struct addrinfo *ai;
    struct sockaddr_un un;
    if (resolve(uri, true, &ai, &un, err) < 0)
        return -1;
    if (ai)
        freeaddrinfo(ai);
    return 0;
}

static int listen_accept(const char *uri, GError **err)
{
    struct addrinfo *ai;
    struct sockaddr_un un;
    if (resolve(uri, true, &ai, &un, err) < 0) {
        g_prefix_error(err, "--incoming ");
        return -1;
    }
    int fd = -1, e = 0;
    if (!ai) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        unlink(un.sun_path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(fd, 1) < 0) {
            e = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
    } else {
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            int one = 1;
            if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1) == 0)
                break;
            e = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(ai);
    }
    if (fd < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "--incoming %s: cannot listen: %s", uri, g_strerror(e));
        return -1;
    }
    log_info("incoming: waiting for the source on %s", uri);
    int c;
    do
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    while (c < 0 && errno == EINTR);
    e = errno;
    close(fd);
    if (!ai)
        unlink(un.sun_path);
    if (c < 0)
        g_set_error(err, CONFIG_ERROR, 0, "--incoming %s: accept: %s", uri, g_strerror(e));
    return c;
}

static int read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t k = read(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

struct snapshot_restore *migration_incoming(const char *uri, struct vm_config *c, GError **err)
{
    int fd = listen_accept(uri, err);
    if (fd < 0)
        return NULL;
    g_autofree char *what = g_strdup_printf("--incoming %s", uri);
    char magic[8];
    uint64_t len;
    if (read_full(fd, magic, sizeof(magic)) < 0 || memcmp(magic, MAGIC, sizeof(magic)) != 0 ||
        read_full(fd, &len, sizeof(len)) < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: not a vmm migration stream (or the connection ended)", what);
        close(fd);
        return NULL;
    }
    len = GUINT64_FROM_LE(len);
    if (len > STATE_MAX) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: corrupted stream (state of %" G_GUINT64_FORMAT " bytes)", what, len);
        close(fd);
        return NULL;
    }
    uint8_t *buf = g_malloc(len ? len : 1);
    if (read_full(fd, buf, len) < 0) {
        g_free(buf);
        g_set_error(err, CONFIG_ERROR, 0, "%s: the connection ended in the middle of the state", what);
        close(fd);
        return NULL;
    }
    g_autoptr(GBytes) stream = g_bytes_new_take(buf, len);
    struct snapshot_restore *s = snapshot_restore_from_stream(stream, c, what, err);
    if (!s) {
        g_autofree char *line = g_strdup_printf("ERR %s\n", (*err)->message);
        write_all_stream(fd, line, strlen(line));
        close(fd);
        return NULL;
    }
    snapshot_restore_set_socket(s, fd);
    return s;
}

static int connect_to(const char *uri, GError **err)
{
    struct addrinfo *ai;
    struct sockaddr_un un;
    g_autoptr(GError) e = NULL;
    if (resolve(uri, false, &ai, &un, &e) < 0) {
        g_set_error_literal(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, e->message);
        return -1;
    }
    int fd = -1, en = 0;
    if (!ai) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
            en = errno;
            close(fd);
            fd = -1;
        }
    } else {
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
                break;
            en = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(ai);
    }
    if (fd < 0)
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot connect to %s: %s", uri, g_strerror(en));
    return fd;
}

static void emit_status(struct machine *m, const char *status)
{
    stats.status = status;
    if (!m->emit_event)
        return;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "status", status);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "MIGRATION", n);
}

/* RAM as runs of non-zero pages, then the end marker. */
static int send_ram(int fd, const struct guest_memory *gm)
{
    uint64_t npages = gm->ram_size / GUEST_PAGE_SIZE, run = 0;
    bool in_run = false;
    for (uint64_t pg = 0; pg <= npages; pg++) {
        bool data = pg < npages && !snapshot_page_zero(gm->base + pg * GUEST_PAGE_SIZE);
        if (pg < npages)
            data ? stats.normal++ : stats.duplicate++;
        if (data && !in_run) {
            run = pg;
            in_run = true;
        } else if (!data && in_run) {
            uint64_t hdr[2] = { GUINT64_TO_LE(run * GUEST_PAGE_SIZE), GUINT64_TO_LE((pg - run) * GUEST_PAGE_SIZE) };
            if (write_all_stream(fd, hdr, sizeof(hdr)) < 0 ||
                write_all_stream(fd, gm->base + run * GUEST_PAGE_SIZE, (pg - run) * GUEST_PAGE_SIZE) < 0)
                return -1;
            stats.transferred += sizeof(hdr) + (pg - run) * GUEST_PAGE_SIZE;
            in_run = false;
        }
    }
    uint64_t end[2] = { UINT64_MAX, 0 };
    stats.transferred += sizeof(end);
    return write_all_stream(fd, end, sizeof(end));
}

/* The destination's one line, within the timeout. */
static int read_answer(int fd, char *buf, size_t cap, unsigned timeout_ms)
{
    size_t have = 0;
    uint64_t deadline = now_ms() + timeout_ms;
    while (have + 1 < cap) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        uint64_t now = now_ms();
        if (now >= deadline)
            return -1;
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = read(fd, buf + have, 1);
        if (k <= 0)
            return -1;
        if (buf[have] == '\n')
            break;
        have++;
    }
    buf[have] = 0;
    return 0;
}

int migration_migrate(struct machine *m, const char *uri, GError **err)
{
    if (!m->vm_live || m->state == RUN_STATE_SHUTDOWN || m->state == RUN_STATE_INTERNAL_ERROR) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "the VM is not running");
        return -1;
    }
    memset(&stats, 0, sizeof(stats));
    uint64_t t0 = now_ms();
    emit_status(m, "setup");
    int fd = connect_to(uri, err);
    if (fd < 0) {
        emit_status(m, "failed");
        stats.done = true;
        return -1;
    }
    bool was_running = m->state == RUN_STATE_RUNNING;
    emit_status(m, "active");
    uint64_t t_stop = now_ms();
    machine_pause(m);
    stats.total = m->vm.mem.ram_size;
    GBytes *stream = snapshot_state_stream(m, err);
    int ret = -1;
    char answer[512] = "";
    if (stream) {
        gsize n;
        const void *p = g_bytes_get_data(stream, &n);
        uint64_t len = GUINT64_TO_LE((uint64_t)n);
        if (write_all_stream(fd, MAGIC, 8) < 0 || write_all_stream(fd, &len, sizeof(len)) < 0 ||
            write_all_stream(fd, p, n) < 0 || send_ram(fd, &m->vm.mem) < 0) {
            /* A destination that refused the machine said why before it hung up. */
            int e = errno;
            if (read_answer(fd, answer, sizeof(answer), 1000) == 0 && g_str_has_prefix(answer, "ERR "))
                g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "migration to %s: the destination refused: %s",
                            uri, answer + 4);
            else
                g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "migration to %s: sending failed: %s", uri,
                            g_strerror(e));
        } else if (read_answer(fd, answer, sizeof(answer), ANSWER_TIMEOUT_MS) < 0) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                        "migration to %s: no answer from the destination (it went away or took too long)", uri);
        } else if (strcmp(answer, "OK") != 0) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "migration to %s: the destination refused: %s", uri,
                        g_str_has_prefix(answer, "ERR ") ? answer + 4 : answer);
        } else {
            ret = 0;
        }
        stats.transferred += 16 + n;
        g_bytes_unref(stream);
    }
    close(fd);
    uint64_t t1 = now_ms();
    stats.total_ms = t1 - t0;
    stats.downtime_ms = t1 - t_stop;
    stats.mbps = stats.total_ms ? (double)stats.transferred * 8 / 1e6 / ((double)stats.total_ms / 1000) : 0;
    stats.done = true;
    if (ret < 0) {
        emit_status(m, "failed");
        log_warn("%s", (*err)->message);
        /* The source goes on as it was. */
        if (was_running)
            machine_resume(m, NULL);
        return -1;
    }
    emit_status(m, "completed");
    log_info("migration to %s completed: %" G_GUINT64_FORMAT " bytes in %" G_GUINT64_FORMAT " ms", uri,
             stats.transferred, stats.total_ms);
    /* The guest runs at the destination now: this process ends (exit 0). */
    m->state = RUN_STATE_SHUTDOWN;
    vm_request_stop(&m->vm, VM_STOP_SIGNAL, 0);
    return 0;
}

/* ---- QMP ---- */

static JsonNode *cmd_migrate(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "uri", "blk", "inc", "detach", "resume", NULL };
    const char *uri = NULL;
    bool blk = false, inc = false, resume = false, detach = false;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "uri", true, &uri, err) ||
        !qmp_arg_bool(args, "blk", false, &blk, err) || !qmp_arg_bool(args, "inc", false, &inc, err) ||
        !qmp_arg_bool(args, "resume", false, &resume, err) || !qmp_arg_bool(args, "detach", false, &detach, err))
        return NULL;
    if (blk || inc || resume) {
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC,
                            "blk, inc and resume are not supported (disks are shared storage)");
        return NULL;
    }
    g_autoptr(GError) e = NULL;
    if (migration_migrate(ctx->opaque, uri, &e) < 0)
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC, e->message);
    return NULL;
}

static JsonNode *cmd_query_migrate(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    JsonObject *o = json_object_new();
    if (stats.status) {
        json_object_set_string_member(o, "status", stats.status);
        if (stats.done) {
            json_object_set_int_member(o, "total-time", (gint64)stats.total_ms);
            json_object_set_int_member(o, "downtime", (gint64)stats.downtime_ms);
        }
        JsonObject *ram = json_object_new();
        json_object_set_int_member(ram, "transferred", (gint64)stats.transferred);
        json_object_set_int_member(ram, "remaining", 0);
        json_object_set_int_member(ram, "total", (gint64)stats.total);
        json_object_set_int_member(ram, "duplicate", (gint64)stats.duplicate);
        json_object_set_int_member(ram, "normal", (gint64)stats.normal);
        json_object_set_int_member(ram, "normal-bytes", (gint64)(stats.normal * GUEST_PAGE_SIZE));
        json_object_set_double_member(ram, "mbps", stats.mbps);
        json_object_set_int_member(ram, "dirty-sync-count", 1);
        json_object_set_object_member(o, "ram", ram);
    }
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

void migration_qmp_register(struct qmp_server *s, struct machine *m)
{
    qmp_register(s, "migrate", cmd_migrate, m, 0);
    qmp_register(s, "query-migrate", cmd_query_migrate, m, 0);
}
