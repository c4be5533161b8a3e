#include <fcntl.h>
#include "vmm/migration.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"
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
    char *error;
    uint64_t t0, t_stop;
    uint64_t total_ms, downtime_ms, transferred, total, normal, duplicate, remaining, dirty_sync_count;
    double mbps;
};
static struct migrate_stats stats;
/* The destination's side of query-migrate (QEMU 7.2 answers its incoming
 * state there): NULL until a stream comes, then "active", "completed" or
 * "failed". Main loop thread. */
static const char *incoming_status;

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

/* A listening socket on uri; *is_unix: unlink its path once done. */
static int listen_on(const char *uri, bool *is_unix, GError **err)
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
    *is_unix = !ai;
    return fd;
}

static const char *cpu_model_name(enum cpu_model m)
{
    return m == CPU_MODEL_BASELINE ? "baseline" : "host";
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

struct snapshot_restore *migration_incoming_fd(int fd, const char *uri, struct vm_config *c, GError **err)
{
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
    int want_cpu = c->expect_cpu_model;
    uint64_t want_mem = c->expect_mem_size;
    struct snapshot_restore *s = snapshot_restore_from_stream(stream, c, what, err);
    /* What this destination was told to expect, checked on the source's
     * config before any RAM or state is taken. */
    if (s && want_cpu >= 0 && (int)c->cpu_model != want_cpu) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: the source's CPU model is %s, this destination was started with "
                    "--cpu-model %s", what, cpu_model_name(c->cpu_model), cpu_model_name((enum cpu_model)want_cpu));
        g_clear_pointer(&s, snapshot_restore_free);
    }
    if (s && want_mem && c->mem_size != want_mem) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: the source's memory is %" G_GUINT64_FORMAT " MiB, this destination "
                    "was started with --memory %" G_GUINT64_FORMAT "M", what, c->mem_size >> 20, want_mem >> 20);
        g_clear_pointer(&s, snapshot_restore_free);
    }
    if (s && snapshot_check_cpuid(c, what, err) < 0)
        g_clear_pointer(&s, snapshot_restore_free);
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

/* ---- the source ---- */

#define MAX_PASSES 30

struct migration {
    struct machine *m;
    char *uri;
    int fd;
    pthread_t thread;
    bool joined;
    GBytes *config;             /* the stream the connection begins with */
    GBytes *state;              /* the full state, taken on the main loop once paused */
    unsigned long *pending[GUEST_MAX_REGIONS];  /* dirty, not sent yet */
    bool paused_by_us;          /* the VM was running when the final stop came */
    volatile bool cancel;
    bool ok;
    char *error;
};

static struct migration *current;       /* main loop thread */
static uint64_t downtime_limit_ms = 300;
static GMutex stats_lock;

static void set_status(struct machine *m, const char *status, bool event)
{
    g_mutex_lock(&stats_lock);
    stats.status = status;
    g_mutex_unlock(&stats_lock);
    if (!event || !m->emit_event)
        return;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "status", status);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "MIGRATION", n);
}

static void add_transferred(uint64_t n)
{
    g_mutex_lock(&stats_lock);
    stats.transferred += n;
    g_mutex_unlock(&stats_lock);
}

static uint64_t transferred(void)
{
    g_mutex_lock(&stats_lock);
    uint64_t t = stats.transferred;
    g_mutex_unlock(&stats_lock);
    return t;
}

/* Whether page pg of region r is in a plugged block (RAM: always). */
static bool page_plugged(const struct guest_region *r, uint64_t pg)
{
    if (!r->plugged)
        return true;
    uint64_t blk = pg * GUEST_PAGE_SIZE / r->block_size;
    return (__atomic_load_n(&r->plugged[blk / (8 * sizeof(long))], __ATOMIC_ACQUIRE) >> (blk % (8 * sizeof(long)))) & 1;
}

/* The pages of `bitmap` (one per region; NULL: every page) as runs; zero
 * pages too unless skip_zero (the first pass only, when the destination's
 * RAM is still all zero). Stream offsets: RAM as the guest sees it from GPA
 * 0, then the hotplug region (virtio-mem) from the end of RAM; its
 * unplugged blocks are never sent (the destination's are unplugged, hence
 * zero, once the device state is in). */
static int send_pages(struct migration *mg, unsigned long *const *bitmap, bool skip_zero)
{
    const struct guest_memory *gm = &mg->m->vm.mem;
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const struct guest_region *r = &gm->regions[i];
        uint64_t npages = r->size / GUEST_PAGE_SIZE, run = 0;
        uint64_t off0 = r->plugged ? gm->ram_size : (uint64_t)(r->hva - gm->base);
        bool in_run = false;
        g_autoptr(zero_scan) zs = skip_zero ? zero_scan_new(gm) : NULL;
        for (uint64_t pg = 0; pg <= npages; pg++) {
            bool send = false;
            if (pg < npages && page_plugged(r, pg)) {
                bool dirty = !bitmap || ((bitmap[i][pg / 64] >> (pg % 64)) & 1);
                send = dirty && !(skip_zero && zero_scan_page(zs, r->hva + pg * GUEST_PAGE_SIZE));
                if (dirty && skip_zero) {
                    g_mutex_lock(&stats_lock);
                    if (send)
                        stats.normal++;
                    else
                        stats.duplicate++;
                    g_mutex_unlock(&stats_lock);
                }
            }
            if (send && !in_run) {
                run = pg;
                in_run = true;
            } else if (!send && in_run) {
                if (mg->cancel)
                    return -1;
                uint64_t bytes = (pg - run) * GUEST_PAGE_SIZE;
                uint64_t hdr[2] = { GUINT64_TO_LE(off0 + run * GUEST_PAGE_SIZE), GUINT64_TO_LE(bytes) };
                if (write_all_stream(mg->fd, hdr, sizeof(hdr)) < 0 ||
                    write_all_stream(mg->fd, r->hva + run * GUEST_PAGE_SIZE, bytes) < 0)
                    return -1;
                add_transferred(sizeof(hdr) + bytes);
                in_run = false;
            }
        }
    }
    return 0;
}

static void pending_or(struct migration *mg, unsigned long *const *bits)
{
    const struct guest_memory *gm = &mg->m->vm.mem;
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        uint64_t nl = (guest_memory_region_pages(gm, i) + 63) / 64;
        for (uint64_t k = 0; k < nl; k++)
            mg->pending[i][k] |= bits[i][k];
    }
}

/* Main loop: the final stop, and the state taken while stopped. */
static void stop_on_loop(void *opaque)
{
    struct migration *mg = opaque;
    struct machine *m = mg->m;
    g_autoptr(GError) e = NULL;
    if (mg->cancel || !m->vm_live)
        return;
    g_mutex_lock(&stats_lock);
    stats.t_stop = now_ms();
    g_mutex_unlock(&stats_lock);
    mg->paused_by_us = m->state == RUN_STATE_RUNNING;
    machine_pause(m);
    mg->state = snapshot_state_stream(m, &e);
    if (!mg->state)
        mg->error = g_strdup(e->message);
}

static void finish_on_loop(void *opaque);

static void fail_with(struct migration *mg, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void fail_with(struct migration *mg, const char *fmt, ...)
{
    if (mg->error)
        return;
    va_list ap;
    va_start(ap, fmt);
    mg->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

static void *migration_thread(void *opaque)
{
    struct migration *mg = opaque;
    struct machine *m = mg->m;
    struct guest_memory *gm = &m->vm.mem;
    int vm_fd = m->vm.vm_fd;
    unsigned long *dirty[GUEST_MAX_REGIONS] = { 0 };
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        uint64_t nl = (guest_memory_region_pages(gm, i) + 63) / 64 + 1;
        dirty[i] = g_new0(unsigned long, nl);
        mg->pending[i] = g_new0(unsigned long, nl);
    }
    gsize n;
    const void *p = g_bytes_get_data(mg->config, &n);
    uint64_t len = GUINT64_TO_LE((uint64_t)n);
    char answer[512] = "";
    int r;
    if (write_all_stream(mg->fd, MAGIC, 8) < 0 || write_all_stream(mg->fd, &len, sizeof(len)) < 0 ||
        write_all_stream(mg->fd, p, n) < 0) {
        fail_with(mg, "sending failed: %s", g_strerror(errno));
        goto out;
    }
    add_transferred(16 + n);
    if ((r = guest_memory_log_dirty(gm, vm_fd, true)) < 0) {
        fail_with(mg, "cannot turn on KVM's dirty log: %s", g_strerror(-r));
        goto out;
    }
    /* Pass 0: all of RAM (zero pages are zero at the destination already). */
    uint64_t t0 = now_ms(), b0 = transferred();
    if (send_pages(mg, NULL, true) < 0) {
        fail_with(mg, mg->cancel ? "cancelled" : "sending failed: %s", g_strerror(errno));
        goto out;
    }
    double bytes_per_ms = (double)(transferred() - b0) / (double)MAX(now_ms() - t0, 1u);
    log_debug("migration: pass 0: %" G_GUINT64_FORMAT " bytes in %" G_GUINT64_FORMAT " ms", transferred() - b0,
              now_ms() - t0);
    /* Then what was written meanwhile, until what is left fits the downtime
     * limit at the rate seen so far, or MAX_PASSES. */
    for (unsigned pass = 1;; pass++) {
        int64_t nd = guest_memory_sync_dirty(gm, vm_fd, dirty);
        if (nd < 0) {
            fail_with(mg, "KVM_GET_DIRTY_LOG: %s", g_strerror((int)-nd));
            goto out;
        }
        g_mutex_lock(&stats_lock);
        stats.dirty_sync_count++;
        stats.remaining = (uint64_t)nd * GUEST_PAGE_SIZE;
        g_mutex_unlock(&stats_lock);
        double eta_ms = (double)nd * GUEST_PAGE_SIZE / MAX(bytes_per_ms, 1.0);
        if (eta_ms <= (double)downtime_limit_ms || pass >= MAX_PASSES || mg->cancel) {
            log_debug("migration: stopping the VM after pass %u: %" G_GINT64_FORMAT " dirty pages, about %.0f ms "
                      "at %.0f bytes/ms", pass - 1, nd, eta_ms, bytes_per_ms);
            pending_or(mg, dirty);
            break;
        }
        uint64_t tp = now_ms(), b = transferred();
        if (send_pages(mg, dirty, false) < 0) {
            fail_with(mg, mg->cancel ? "cancelled" : "sending failed: %s", g_strerror(errno));
            goto out;
        }
        bytes_per_ms = (double)(transferred() - b) / (double)MAX(now_ms() - tp, 1u);
        log_debug("migration: pass %u: %" G_GINT64_FORMAT " dirty pages, %" G_GUINT64_FORMAT " bytes in %"
                  G_GUINT64_FORMAT " ms", pass, nd, transferred() - b, now_ms() - tp);
    }

    /* Stop and copy what is left, then the device state. */
    loop_call_wait(m->loop, stop_on_loop, mg);
    if (mg->cancel) {
        fail_with(mg, "cancelled");
        goto out;
    }
    if (!mg->state) {
        fail_with(mg, "cannot take the VM's state");
        goto out;
    }
    int64_t nd = guest_memory_sync_dirty(gm, vm_fd, dirty);
    if (nd < 0) {
        fail_with(mg, "KVM_GET_DIRTY_LOG: %s", g_strerror((int)-nd));
        goto out;
    }
    pending_or(mg, dirty);
    uint64_t end[2] = { UINT64_MAX, 0 };
    p = g_bytes_get_data(mg->state, &n);
    len = GUINT64_TO_LE((uint64_t)n);
    if (send_pages(mg, mg->pending, false) < 0 || write_all_stream(mg->fd, end, sizeof(end)) < 0 ||
        write_all_stream(mg->fd, &len, sizeof(len)) < 0 || write_all_stream(mg->fd, p, n) < 0) {
        fail_with(mg, mg->cancel ? "cancelled" : "sending failed: %s", g_strerror(errno));
        goto out;
    }
    add_transferred(sizeof(end) + 8 + n);
    if (read_answer(mg->fd, answer, sizeof(answer), ANSWER_TIMEOUT_MS) < 0)
        fail_with(mg, mg->cancel ? "cancelled" : "no answer from the destination (it went away or took too long)");
    else if (strcmp(answer, "OK") != 0)
        fail_with(mg, "the destination refused: %s", g_str_has_prefix(answer, "ERR ") ? answer + 4 : answer);
    else
        mg->ok = true;
out:
    /* A destination that refused the machine said why before it hung up:
     * that beats "broken pipe". */
    if (!mg->ok && !mg->cancel && mg->error && g_str_has_prefix(mg->error, "sending failed") &&
        read_answer(mg->fd, answer, sizeof(answer), 1000) == 0 && g_str_has_prefix(answer, "ERR ")) {
        g_free(mg->error);
        mg->error = g_strdup_printf("the destination refused: %s", answer + 4);
    }
    for (unsigned i = 0; i < GUEST_MAX_REGIONS; i++)
        g_free(dirty[i]);
    loop_call(m->loop, finish_on_loop, mg);
    return NULL;
}

static void migration_free(struct migration *mg)
{
    for (unsigned i = 0; i < GUEST_MAX_REGIONS; i++)
        g_free(mg->pending[i]);
    if (mg->config)
        g_bytes_unref(mg->config);
    if (mg->state)
        g_bytes_unref(mg->state);
    if (mg->fd >= 0)
        close(mg->fd);
    g_free(mg->uri);
    g_free(mg->error);
    g_free(mg);
}

/* Main loop: the thread is done (or was cancelled and joined by
 * stop_for_machine, whose VM is going away). */
static void finish_on_loop(void *opaque)
{
    struct migration *mg = opaque;
    struct machine *m = mg->m;
    if (!mg->joined)
        pthread_join(mg->thread, NULL);
    bool vm_ok = !mg->joined && m->vm_live;
    if (current == mg)
        current = NULL;
    m->migration_stop = NULL;
    uint64_t t1 = now_ms();
    g_mutex_lock(&stats_lock);
    stats.total_ms = t1 - stats.t0;
    stats.downtime_ms = stats.t_stop ? t1 - stats.t_stop : 0;
    stats.mbps = stats.total_ms ? (double)stats.transferred * 8 / 1e6 / ((double)stats.total_ms / 1000) : 0;
    stats.done = true;
    if (mg->ok)
        stats.remaining = 0;
    g_free(stats.error);
    stats.error = g_strdup(mg->error);
    g_mutex_unlock(&stats_lock);
    if (mg->ok && vm_ok) {
        set_status(m, "completed", true);
        log_info("migration to %s completed: %" G_GUINT64_FORMAT " bytes in %" G_GUINT64_FORMAT " ms, downtime %"
                 G_GUINT64_FORMAT " ms", mg->uri, stats.transferred, stats.total_ms, stats.downtime_ms);
        /* The guest runs at the destination now: this process ends (exit 0). */
        m->state = RUN_STATE_SHUTDOWN;
        vm_request_stop(&m->vm, VM_STOP_SIGNAL, 0);
    } else if (!mg->joined) {
        if (vm_ok)
            guest_memory_log_dirty(&m->vm.mem, m->vm.vm_fd, false);
        log_warn("migration to %s: %s", mg->uri, mg->error ? mg->error : "failed");
        set_status(m, mg->cancel ? "cancelled" : "failed", true);
        /* The source goes on as it was. */
        if (mg->paused_by_us && vm_ok && m->state == RUN_STATE_PAUSED)
            machine_resume(m, NULL);
    }
    migration_free(mg);
}

/* The machine is about to destroy the VM (guest poweroff, reset, quit):
 * a migration in flight is cancelled and its thread joined first. */
static void stop_for_machine(struct machine *m)
{
    struct migration *mg = current;
    m->migration_stop = NULL;
    if (!mg)
        return;
    mg->cancel = true;
    shutdown(mg->fd, SHUT_RDWR);
    pthread_join(mg->thread, NULL);
    mg->joined = true;      /* finish_on_loop, queued, only frees it */
    current = NULL;
    set_status(m, "cancelled", true);
}

int migration_migrate(struct machine *m, const char *uri, GError **err)
{
    if (current) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "a migration is already in progress");
        return -1;
    }
    if (!m->vm_live || m->state == RUN_STATE_SHUTDOWN || m->state == RUN_STATE_INTERNAL_ERROR) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "the VM is not running");
        return -1;
    }
    for (unsigned i = 0; i < m->cfg->nr_nets; i++)
        if (config_net_is_user(&m->cfg->nets[i])) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "NIC %s is on user networking (slirp), whose "
                        "connections vmm does not save: a VM with one cannot migrate", m->cfg->nets[i].id);
            return -1;
        }
    g_mutex_lock(&stats_lock);
    g_free(stats.error);
    memset(&stats, 0, sizeof(stats));
    stats.t0 = now_ms();
    stats.total = m->vm.mem.ram_size;
    g_mutex_unlock(&stats_lock);
    set_status(m, "setup", true);
    int fd = connect_to(uri, err);
    if (fd < 0) {
        g_mutex_lock(&stats_lock);
        stats.done = true;
        stats.error = g_strdup((*err)->message);
        g_mutex_unlock(&stats_lock);
        set_status(m, "failed", true);
        return -1;
    }
    struct migration *mg = g_new0(struct migration, 1);
    mg->m = m;
    mg->uri = g_strdup(uri);
    mg->fd = fd;
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "snapshot", SNAPSHOT_VERSION);
    state_put_u64(w, m->vm.mem.ram_size);
    state_put_u32(w, vm_nr_vcpus(&m->vm));
    state_end_section(w);
    snapshot_config_save(w, m->cfg);
    snapshot_cpuid_save(w, m->vm.guest_cpuid);
    mg->config = state_writer_finish(w);
    set_status(m, "active", true);
    int r = pthread_create(&mg->thread, NULL, migration_thread, mg);
    if (r != 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot start the migration thread: %s", g_strerror(r));
        set_status(m, "failed", true);
        migration_free(mg);
        return -1;
    }
    current = mg;
    m->migration_stop = stop_for_machine;
    return 0;
}

int migration_cancel(struct machine *m)
{
    (void)m;
    if (current) {
        current->cancel = true;
        shutdown(current->fd, SHUT_RDWR);
    }
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
    g_mutex_lock(&stats_lock);
    if (stats.status) {
        json_object_set_string_member(o, "status", stats.status);
        uint64_t total = stats.done ? stats.total_ms : now_ms() - stats.t0;
        json_object_set_int_member(o, "total-time", (gint64)total);
        if (stats.done && stats.t_stop)
            json_object_set_int_member(o, "downtime", (gint64)stats.downtime_ms);
        if (stats.error && stats.done && strcmp(stats.status, "completed") != 0)
            json_object_set_string_member(o, "error-desc", stats.error);
        JsonObject *ram = json_object_new();
        json_object_set_int_member(ram, "transferred", (gint64)stats.transferred);
        json_object_set_int_member(ram, "remaining", (gint64)stats.remaining);
        json_object_set_int_member(ram, "total", (gint64)stats.total);
        json_object_set_int_member(ram, "duplicate", (gint64)stats.duplicate);
        json_object_set_int_member(ram, "normal", (gint64)stats.normal);
        json_object_set_int_member(ram, "normal-bytes", (gint64)(stats.normal * GUEST_PAGE_SIZE));
        json_object_set_double_member(ram, "mbps", stats.mbps);
        json_object_set_int_member(ram, "dirty-sync-count", (gint64)stats.dirty_sync_count);
        json_object_set_object_member(o, "ram", ram);
    }
    g_mutex_unlock(&stats_lock);
    /* A destination: its incoming state (QEMU gives only the status). */
    if (!json_object_has_member(o, "status") && incoming_status)
        json_object_set_string_member(o, "status", incoming_status);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static JsonNode *cmd_migrate_cancel(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    migration_cancel(ctx->opaque);
    return NULL;
}

static JsonNode *cmd_migrate_set_parameters(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "downtime-limit", NULL };
    int64_t v = (int64_t)downtime_limit_ms;
    if (!qmp_args_check(args, known, err) || !qmp_arg_int(args, "downtime-limit", false, &v, err))
        return NULL;
    if (v < 0 || v > 2000000) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC,
                    "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000 seconds");
        return NULL;
    }
    downtime_limit_ms = (uint64_t)v;
    return NULL;
}

/* ---- the destination: RAM and state on a thread ---- */


struct incoming_rx {
    struct machine *m;
    GError *err;
    int ret;
    bool done;          /* atomic: the thread is over */
};

static void *incoming_thread(void *opaque)
{
    struct incoming_rx *rx = opaque;
    rx->ret = snapshot_restore_fill_memory(rx->m->restore, &rx->m->vm, &rx->err);
    __atomic_store_n(&rx->done, true, __ATOMIC_RELEASE);
    loop_quit(rx->m->loop);
    return NULL;
}

int migration_incoming_load(struct machine *m, GError **err)
{
    int sock = snapshot_restore_socket(m->restore);
    if (sock >= 0) {
        struct incoming_rx rx = { .m = m };
        pthread_t t;
        int e = pthread_create(&t, NULL, incoming_thread, &rx);
        if (e != 0) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot start the incoming migration thread: %s",
                        g_strerror(e));
            return -1;
        }
        incoming_status = "active";
        m->state = RUN_STATE_INMIGRATE;
        int lr = 0;
        /* The loop also ends for quit and signals (machine_shutdown: state
         * shutdown), and a quit may come twice: look at both each time. */
        while (!__atomic_load_n(&rx.done, __ATOMIC_ACQUIRE) && m->state != RUN_STATE_SHUTDOWN && lr == 0)
            lr = loop_run(m->loop);
        if (!__atomic_load_n(&rx.done, __ATOMIC_ACQUIRE))
            shutdown(sock, SHUT_RD);        /* the thread's read ends now; the answer can still go */
        pthread_join(t, NULL);
        if (m->state == RUN_STATE_SHUTDOWN) {
            g_clear_error(&rx.err);
            incoming_status = "failed";
            return 1;
        }
        m->state = m->cfg->paused ? RUN_STATE_PRELAUNCH : RUN_STATE_RUNNING;
        if (lr < 0 && rx.ret == 0) {
            g_clear_error(&rx.err);
            g_set_error(&rx.err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "the event loop failed: %s", g_strerror(-lr));
            rx.ret = -1;
        }
        if (rx.ret < 0) {
            incoming_status = "failed";
            g_propagate_error(err, rx.err);
            return -1;
        }
    }
    if (snapshot_restore_load(m->restore, &m->vm, err) < 0) {
        if (sock >= 0)
            incoming_status = "failed";
        return -1;
    }
    if (sock >= 0)
        incoming_status = "completed";
    return 0;
}

/* ---- --incoming defer + migrate-incoming ---- */

static struct {
    int listen_fd, fd;
    bool is_unix;
    char *uri;
} deferred = { -1, -1, false, NULL };

static void on_incoming_accept(void *opaque, int fd, uint32_t revents)
{
    struct machine *m = opaque;
    (void)revents;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;         /* EAGAIN and the like: wait for the next one */
    int fl = fcntl(c, F_GETFL);
    if (fl >= 0)
        fcntl(c, F_SETFL, fl & ~O_NONBLOCK);
    loop_remove_fd(m->loop, fd);
    close(fd);
    if (deferred.is_unix)
        unlink(deferred.uri + 5);
    deferred.listen_fd = -1;
    deferred.fd = c;
    loop_quit(m->loop);         /* main() takes it from here */
}

static JsonNode *cmd_migrate_incoming(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    static const char *const known[] = { "uri", NULL };
    const char *uri = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "uri", true, &uri, err))
        return NULL;
    if (m->state != RUN_STATE_INMIGRATE) {
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC,
                            "'-incoming' was not specified on the command line");
        return NULL;
    }
    if (deferred.listen_fd >= 0 || deferred.fd >= 0 || incoming_status) {
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC, "The incoming migration has already been started");
        return NULL;
    }
    g_autoptr(GError) e = NULL;
    if (migration_incoming_listen(m, uri, &e) < 0)
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC, e->message);
    return NULL;
}

int migration_incoming_listen(struct machine *m, const char *uri, GError **err)
{
    int fd = listen_on(uri, &deferred.is_unix, err);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || loop_add_fd(m->loop, fd, POLLIN, on_incoming_accept, m) < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "--incoming %s: cannot watch the socket", uri);
        close(fd);
        if (deferred.is_unix)
            unlink(uri + 5);
        return -1;
    }
    g_free(deferred.uri);
    deferred.uri = g_strdup(uri);
    deferred.listen_fd = fd;
    log_info("incoming: waiting for the source on %s", uri);
    return 0;
}

int migration_incoming_deferred(const char **uri)
{
    *uri = deferred.uri;
    return deferred.fd;
}

void migration_incoming_deferred_abandon(struct machine *m)
{
    if (deferred.listen_fd < 0)
        return;
    loop_remove_fd(m->loop, deferred.listen_fd);
    close(deferred.listen_fd);
    deferred.listen_fd = -1;
    if (deferred.is_unix)
        unlink(deferred.uri + 5);
}

void migration_qmp_register(struct qmp_server *s, struct machine *m)
{
    qmp_register(s, "migrate-incoming", cmd_migrate_incoming, m, 0);
    qmp_register(s, "migrate", cmd_migrate, m, 0);
    qmp_register(s, "query-migrate", cmd_query_migrate, m, 0);
    qmp_register(s, "migrate_cancel", cmd_migrate_cancel, m, 0);
    qmp_register(s, "migrate-set-parameters", cmd_migrate_set_parameters, m, 0);
}
