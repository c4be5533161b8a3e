#include "vmm/loop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"

#define LOOP_RING_ENTRIES 256

struct watch {
    int fd;
    uint32_t events;
    loop_fd_fn fn;
    void *opaque;
    bool removed;       /* in loop.dying until its last CQE arrives */
};

struct pending_call {
    loop_call_fn fn;
    void *opaque;
};

struct loop {
    struct io_uring ring;
    GHashTable *watches;        /* fd → struct watch*, live ones only */
    GHashTable *dying;          /* removed watches whose last CQE has not come yet */
    int wake_fd;                /* eventfd: loop_call and loop_quit */
    pthread_mutex_t calls_lock;
    GArray *calls;              /* struct pending_call */
    bool quit;
};

static struct io_uring_sqe *get_sqe(struct loop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (!sqe) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

static int arm(struct loop *l, struct watch *w)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_multishot(sqe, w->fd, w->events);
    io_uring_sqe_set_data(sqe, w);
    return 0;
}

static void wake_fn(void *opaque, int fd, uint32_t revents);

struct loop *loop_new(GError **err)
{
    struct loop *l = g_new0(struct loop, 1);
    int r = io_uring_queue_init(LOOP_RING_ENTRIES, &l->ring, 0);
    if (r < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-r),
                    "cannot create the io_uring event loop: %s (is io_uring disabled by "
                    "kernel.io_uring_disabled or a seccomp policy?)", g_strerror(-r));
        g_free(l);
        return NULL;
    }
    l->watches = g_hash_table_new(g_direct_hash, g_direct_equal);
    l->dying = g_hash_table_new_full(g_direct_hash, g_direct_equal, g_free, NULL);
    l->calls = g_array_new(FALSE, FALSE, sizeof(struct pending_call));
    pthread_mutex_init(&l->calls_lock, NULL);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0 || loop_add_fd(l, l->wake_fd, POLLIN, wake_fn, l) < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot set up the event loop wake-up: %s",
                    g_strerror(errno));
        loop_free(l);
        return NULL;
    }
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    io_uring_queue_exit(&l->ring);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, l->watches);
    while (g_hash_table_iter_next(&it, &k, &v))
        g_free(v);
    g_hash_table_destroy(l->watches);
    g_hash_table_destroy(l->dying);     /* the ring is gone: no CQE will come for them */
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    g_array_free(l->calls, TRUE);
    pthread_mutex_destroy(&l->calls_lock);
    g_free(l);
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *opaque)
{
    if (g_hash_table_contains(l->watches, GINT_TO_POINTER(fd)))
        return -EEXIST;
    struct watch *w = g_new0(struct watch, 1);
    *w = (struct watch){ .fd = fd, .events = events, .fn = fn, .opaque = opaque };
    int r = arm(l, w);
    if (r < 0) {
        g_free(w);
        return r;
    }
    g_hash_table_insert(l->watches, GINT_TO_POINTER(fd), w);
    io_uring_submit(&l->ring);
    return 0;
}

int loop_remove_fd(struct loop *l, int fd)
{
    struct watch *w = g_hash_table_lookup(l->watches, GINT_TO_POINTER(fd));
    if (!w)
        return -ENOENT;
    g_hash_table_remove(l->watches, GINT_TO_POINTER(fd));
    w->removed = true;
    g_hash_table_add(l->dying, w);
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)w);
    io_uring_sqe_set_data(sqe, NULL);
    io_uring_submit(&l->ring);
    return 0;
}

int loop_modify_fd(struct loop *l, int fd, uint32_t events)
{
    struct watch *w = g_hash_table_lookup(l->watches, GINT_TO_POINTER(fd));
    if (!w)
        return -ENOENT;
    if (w->events == events)
        return 0;
    loop_fd_fn fn = w->fn;
    void *opaque = w->opaque;
    int r = loop_remove_fd(l, fd);
    return r < 0 ? r : loop_add_fd(l, fd, events, fn, opaque);
}

void loop_call(struct loop *l, loop_call_fn fn, void *opaque)
{
    struct pending_call c = { fn, opaque };
    pthread_mutex_lock(&l->calls_lock);
    g_array_append_val(l->calls, c);
    pthread_mutex_unlock(&l->calls_lock);
    uint64_t one = 1;
    if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("event loop wake-up failed: %s", g_strerror(errno));
}

void loop_quit(struct loop *l)
{
    __atomic_store_n(&l->quit, true, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("event loop wake-up failed: %s", g_strerror(errno));
}

/* Runs what was queued before this call; returns how many ran. */
static unsigned run_calls(struct loop *l)
{
    pthread_mutex_lock(&l->calls_lock);
    GArray *calls = l->calls;
    l->calls = g_array_new(FALSE, FALSE, sizeof(struct pending_call));
    pthread_mutex_unlock(&l->calls_lock);
    for (guint i = 0; i < calls->len; i++) {
        struct pending_call *c = &g_array_index(calls, struct pending_call, i);
        c->fn(c->opaque);
    }
    unsigned n = calls->len;
    g_array_free(calls, TRUE);
    return n;
}

static void wake_fn(void *opaque, int fd, uint32_t revents)
{
    struct loop *l = opaque;
    (void)revents;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("event loop wake-up read failed: %s", g_strerror(errno));
    run_calls(l);
}

void loop_run_calls(struct loop *l)
{
    for (unsigned round = 0; round < 64 && run_calls(l); round++)
        ;
}

static void dispatch(struct loop *l, struct io_uring_cqe *cqe)
{
    struct watch *w = io_uring_cqe_get_data(cqe);
    if (!w)
        return;     /* completion of a poll_remove */
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (w->removed) {
        if (!more)
            g_hash_table_remove(l->dying, w);   /* frees it */
        return;
    }
    if (cqe->res >= 0)
        w->fn(w->opaque, w->fd, (uint32_t)cqe->res);
    else if (cqe->res != -ECANCELED)
        log_warn("poll on fd %d failed: %s", w->fd, g_strerror(-cqe->res));
    /* The callback may have removed the watch; a multishot poll that ended
     * (overflow, or a kernel that does not keep it armed) is re-armed. */
    if (!more && !w->removed) {
        if (cqe->res >= 0 && arm(l, w) == 0)
            return;
        g_hash_table_remove(l->watches, GINT_TO_POINTER(w->fd));
        g_free(w);
    } else if (!more) {
        g_hash_table_remove(l->dying, w);
    }
}

int loop_run(struct loop *l)
{
    /* Each quit is used up by the run it ends, so a quit from another thread
     * that lands before this run starts still ends it instead of being lost. */
    while (!__atomic_exchange_n(&l->quit, false, __ATOMIC_ACQ_REL)) {
        int r = io_uring_submit_and_wait(&l->ring, 1);
        if (r < 0 && r != -EINTR) {
            log_error("event loop: io_uring_submit_and_wait: %s", g_strerror(-r));
            return r;
        }
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe) {
            n++;
            dispatch(l, cqe);
        }
        io_uring_cq_advance(&l->ring, n);
    }
    return 0;
}
