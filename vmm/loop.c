#include "vmm/loop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
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

/* One submitted I/O operation. Its CQE's user_data is the pointer with bit
 * 0 set, which tells it from a struct watch (both are at least 8-aligned). */
struct loop_op {
    loop_io_fn fn;
    void *opaque;
    struct loop_op *prev, *next;    /* l->ops: in flight, freed by loop_free */
    /* epoll backend: what the worker does, and its result */
    int kind, fd, mode;
    const struct iovec *iov;
    unsigned niov;
    uint64_t off, len;
    int res;
};
enum { OP_READV, OP_WRITEV, OP_FSYNC, OP_FDATASYNC, OP_FALLOCATE };
#define OP_TAG 1ULL

struct loop {
    bool epoll;                     /* the epoll backend (io_uring unavailable) */
    int epfd;                       /* epoll: the epoll instance */
    int done_fd;                    /* epoll: eventfd the workers signal completions on */
    GThreadPool *pool;              /* epoll: the workers doing loop_readv & co. */
    pthread_mutex_t done_lock;
    GPtrArray *done;                /* epoll: completed struct loop_op*, under done_lock */
    unsigned depth;                 /* epoll: nesting of loop_run_once */
    GPtrArray *graveyard;           /* epoll: removed watches, freed at depth 0 */
    GPtrArray *always;              /* epoll: watches on fds epoll refuses (regular files,
                                     * /dev/null): always ready, as poll(2) says */
    struct io_uring ring;
    struct io_uring_probe *probe;   /* NULL: the kernel cannot tell; assume all */
    struct loop_op *ops;
    unsigned nr_ops;
    GHashTable *watches;        /* fd → struct watch*, live ones only */
    GHashTable *dying;          /* removed watches whose last CQE has not come yet */
    int wake_fd;                /* eventfd: loop_call and loop_quit */
    pthread_mutex_t calls_lock;
    GArray *calls;              /* struct pending_call */
    GArray *after;              /* struct pending_call: loop_after_batch */
    bool quit;
    bool running;               /* atomic: loop_run is running on `thread` */
    pthread_t thread;
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
    if (l->epoll) {
        /* Edge-triggered, like io_uring's multishot poll: a callback drains
         * its fd; a fresh watch reports what is ready already. POLL* and
         * EPOLL* bits have the same values. */
        struct epoll_event ev = { .events = w->events | EPOLLET, .data.ptr = w };
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0)
            return 0;
        if (errno != EPERM)
            return -errno;
        g_ptr_array_add(l->always, w);
        return 0;
    }
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_multishot(sqe, w->fd, w->events);
    io_uring_sqe_set_data(sqe, w);
    return 0;
}

static void wake_fn(void *opaque, int fd, uint32_t revents);
static void done_fn(void *opaque, int fd, uint32_t revents);
static void worker(gpointer data, gpointer user_data);

/* Sets up the epoll backend; why: what made io_uring unusable. */
static bool epoll_init(struct loop *l, const char *why, GError **err)
{
    static gsize logged;
    if (g_once_init_enter(&logged)) {
        log_info("io_uring unavailable (%s): event loop on epoll, disk I/O on worker threads", why);
        g_once_init_leave(&logged, 1);
    }
    l->epoll = true;
    l->done_fd = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot create the epoll event loop: %s",
                    g_strerror(errno));
        return false;
    }
    l->done = g_ptr_array_new();
    l->graveyard = g_ptr_array_new_with_free_func(g_free);
    l->always = g_ptr_array_new();
    pthread_mutex_init(&l->done_lock, NULL);
    l->pool = g_thread_pool_new(worker, l, 4, FALSE, NULL);
    return true;
}

struct loop *loop_new(GError **err)
{
    struct loop *l = g_new0(struct loop, 1);
    l->wake_fd = -1;
    l->done_fd = -1;
    l->epfd = -1;
    /* VMM_LOOP_BACKEND=epoll: test-only, forces the fallback on a host
     * whose io_uring works (the unit tests run both backends). */
    const char *force = getenv("VMM_LOOP_BACKEND");
    int r = force && strcmp(force, "epoll") == 0 ? -ENOSYS : io_uring_queue_init(LOOP_RING_ENTRIES, &l->ring, 0);
    char *why = NULL;
    if (r == -ENOSYS || r == -EPERM || r == -EACCES) {
        why = force && strcmp(force, "epoll") == 0 ? g_strdup("VMM_LOOP_BACKEND=epoll")
                                                   : g_strdup_printf("io_uring_setup: %s", g_strerror(-r));
    } else if (r < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-r),
                    "cannot create the io_uring event loop: %s", g_strerror(-r));
        g_free(l);
        return NULL;
    } else {
        l->probe = io_uring_get_probe_ring(&l->ring);
        if (l->probe && !io_uring_opcode_supported(l->probe, IORING_OP_POLL_ADD)) {
            why = g_strdup("this kernel's io_uring cannot poll");
            io_uring_free_probe(l->probe);
            l->probe = NULL;
            io_uring_queue_exit(&l->ring);
        }
    }
    if (why) {
        bool ok = epoll_init(l, why, err);
        g_free(why);
        if (!ok) {
            g_free(l);
            return NULL;
        }
    }
    l->watches = g_hash_table_new(g_direct_hash, g_direct_equal);
    l->dying = g_hash_table_new_full(g_direct_hash, g_direct_equal, g_free, NULL);
    l->calls = g_array_new(FALSE, FALSE, sizeof(struct pending_call));
    l->after = g_array_new(FALSE, FALSE, sizeof(struct pending_call));
    pthread_mutex_init(&l->calls_lock, NULL);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0 || loop_add_fd(l, l->wake_fd, POLLIN, wake_fn, l) < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot set up the event loop wake-up: %s",
                    g_strerror(errno));
        loop_free(l);
        return NULL;
    }
    if (l->epoll) {
        l->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->done_fd < 0 || loop_add_fd(l, l->done_fd, POLLIN, done_fn, l) < 0) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot set up the I/O completion eventfd: %s",
                        g_strerror(errno));
            loop_free(l);
            return NULL;
        }
    }
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->epoll) {
        /* the workers finish what they hold; their completions are dropped */
        g_thread_pool_free(l->pool, FALSE, TRUE);
        close(l->epfd);
        if (l->done_fd >= 0)
            close(l->done_fd);
        g_ptr_array_free(l->done, TRUE);
        g_ptr_array_free(l->graveyard, TRUE);
        g_ptr_array_free(l->always, TRUE);
        pthread_mutex_destroy(&l->done_lock);
    } else {
        io_uring_queue_exit(&l->ring);
    }
    while (l->ops) {
        struct loop_op *op = l->ops;
        l->ops = op->next;
        g_free(op);
    }
    if (l->probe)
        io_uring_free_probe(l->probe);
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
    g_array_free(l->after, TRUE);
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
    if (!l->epoll)
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
    if (l->epoll) {
        /* an event for it may be in the batch being dispatched: freed
         * once no loop_run_once is dispatching */
        int r = g_ptr_array_remove(l->always, w) || epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : -errno;
        g_ptr_array_add(l->graveyard, w);
        if (!l->depth)
            g_ptr_array_set_size(l->graveyard, 0);
        return r == -EBADF ? 0 : r;
    }
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
    if (l->epoll) {
        struct epoll_event ev = { .events = events | EPOLLET, .data.ptr = w };
        if (!g_ptr_array_find(l->always, w, NULL) && epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
            return -errno;
        w->events = events;
        return 0;
    }
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

void loop_after_batch(struct loop *l, loop_call_fn fn, void *opaque)
{
    struct pending_call c = { fn, opaque };
    g_array_append_val(l->after, c);
}

void loop_after_batch_cancel(struct loop *l, loop_call_fn fn, void *opaque)
{
    for (guint i = l->after->len; i-- > 0;) {
        struct pending_call *c = &g_array_index(l->after, struct pending_call, i);
        if (c->fn == fn && c->opaque == opaque)
            g_array_remove_index(l->after, i);
    }
}

/* Runs the after-batch hooks, and those they add (bounded like run_calls). */
static void run_after(struct loop *l)
{
    for (unsigned round = 0; round < 64 && l->after->len; round++) {
        GArray *after = l->after;
        l->after = g_array_new(FALSE, FALSE, sizeof(struct pending_call));
        for (guint i = 0; i < after->len; i++) {
            struct pending_call *c = &g_array_index(after, struct pending_call, i);
            c->fn(c->opaque);
        }
        g_array_free(after, TRUE);
    }
}

void loop_run_calls(struct loop *l)
{
    for (unsigned round = 0; round < 64 && run_calls(l); round++)
        ;
    run_after(l);
}

static void dispatch_op(struct loop *l, struct loop_op *op, int res)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        l->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    l->nr_ops--;
    loop_io_fn fn = op->fn;
    void *opaque = op->opaque;
    g_free(op);
    fn(opaque, res);
}

static void dispatch(struct loop *l, uint64_t data, int res, uint32_t flags)
{
    if (data & OP_TAG) {
        dispatch_op(l, (struct loop_op *)(uintptr_t)(data & ~OP_TAG), res);
        return;
    }
    struct watch *w = (struct watch *)(uintptr_t)data;
    if (!w)
        return;     /* completion of a poll_remove */
    bool more = flags & IORING_CQE_F_MORE;
    if (w->removed) {
        if (!more)
            g_hash_table_remove(l->dying, w);   /* frees it */
        return;
    }
    if (res >= 0)
        w->fn(w->opaque, w->fd, (uint32_t)res);
    else if (res != -ECANCELED)
        log_warn("poll on fd %d failed: %s", w->fd, g_strerror(-res));
    /* The callback may have removed the watch; a multishot poll that ended
     * (overflow, or a kernel that does not keep it armed) is re-armed. */
    if (!more && !w->removed) {
        if (res >= 0 && arm(l, w) == 0)
            return;
        g_hash_table_remove(l->watches, GINT_TO_POINTER(w->fd));
        g_free(w);
    } else if (!more) {
        g_hash_table_remove(l->dying, w);
    }
}

static int epoll_run_once(struct loop *l)
{
    struct epoll_event evs[64];
    int n = epoll_wait(l->epfd, evs, G_N_ELEMENTS(evs), l->always->len ? 0 : -1);
    if (n < 0 && errno != EINTR) {
        int r = -errno;
        log_error("event loop: epoll_wait: %s", g_strerror(-r));
        return r;
    }
    l->depth++;
    for (int i = 0; i < n; i++) {
        struct watch *w = evs[i].data.ptr;
        if (!w->removed)
            w->fn(w->opaque, w->fd, evs[i].events & (POLLIN | POLLOUT | POLLERR | POLLHUP | POLLPRI));
    }
    if (l->always->len) {
        GPtrArray *always = g_ptr_array_copy(l->always, NULL, NULL);
        for (guint i = 0; i < always->len; i++) {
            struct watch *w = g_ptr_array_index(always, i);
            if (!w->removed)
                w->fn(w->opaque, w->fd, w->events & (POLLIN | POLLOUT));
        }
        g_ptr_array_free(always, TRUE);
    }
    l->depth--;
    if (!l->depth)
        g_ptr_array_set_size(l->graveyard, 0);
    run_after(l);
    return 0;
}

int loop_run_once(struct loop *l)
{
    if (l->epoll)
        return epoll_run_once(l);
    int r = io_uring_submit_and_wait(&l->ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
        log_error("event loop: io_uring_submit_and_wait: %s", g_strerror(-r));
        return r;
    }
    /* Each CQE is consumed before its callback runs, so a callback may wait
     * on the loop itself (loop_run_once) without seeing it again. */
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&l->ring, &cqe) == 0) {
        uint64_t data = cqe->user_data;
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&l->ring, cqe);
        dispatch(l, data, res, flags);
    }
    run_after(l);
    return 0;
}

int loop_run(struct loop *l)
{
    l->thread = pthread_self();
    __atomic_store_n(&l->running, true, __ATOMIC_RELEASE);
    /* Each quit is used up by the run it ends, so a quit from another thread
     * that lands before this run starts still ends it instead of being lost. */
    int r = 0;
    while (!__atomic_exchange_n(&l->quit, false, __ATOMIC_ACQ_REL)) {
        r = loop_run_once(l);
        if (r < 0)
            break;
    }
    __atomic_store_n(&l->running, false, __ATOMIC_RELEASE);
    return r;
}

struct call_wait {
    loop_call_fn fn;
    void *opaque;
    GMutex lock;
    GCond cond;
    bool done;
};

static void call_wait_fn(void *opaque)
{
    struct call_wait *w = opaque;
    w->fn(w->opaque);
    g_mutex_lock(&w->lock);
    w->done = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

bool loop_on_thread(struct loop *l)
{
    return !__atomic_load_n(&l->running, __ATOMIC_ACQUIRE) || pthread_equal(l->thread, pthread_self());
}

void loop_call_wait(struct loop *l, loop_call_fn fn, void *opaque)
{
    if (loop_on_thread(l)) {
        fn(opaque);
        return;
    }
    struct call_wait w = { .fn = fn, .opaque = opaque };
    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);
    loop_call(l, call_wait_fn, &w);
    g_mutex_lock(&w.lock);
    while (!w.done)
        g_cond_wait(&w.cond, &w.lock);
    g_mutex_unlock(&w.lock);
    g_cond_clear(&w.cond);
    g_mutex_clear(&w.lock);
}

/* ---- asynchronous I/O ---- */

static struct loop_op *op_new(struct loop *l, loop_io_fn fn, void *opaque)
{
    struct loop_op *op = g_new0(struct loop_op, 1);
    *op = (struct loop_op){ .fn = fn, .opaque = opaque, .next = l->ops };
    if (l->ops)
        l->ops->prev = op;
    l->ops = op;
    l->nr_ops++;
    return op;
}

/* epoll backend: a worker thread does the syscall and posts the op back to
 * the loop thread through done_fd. */
static void worker(gpointer data, gpointer user_data)
{
    struct loop_op *op = data;
    struct loop *l = user_data;
    ssize_t r;
    switch (op->kind) {
    case OP_READV: r = preadv(op->fd, op->iov, (int)op->niov, (off_t)op->off); break;
    case OP_WRITEV: r = pwritev(op->fd, op->iov, (int)op->niov, (off_t)op->off); break;
    case OP_FSYNC: r = fsync(op->fd); break;
    case OP_FDATASYNC: r = fdatasync(op->fd); break;
    default: r = fallocate(op->fd, op->mode, (off_t)op->off, (off_t)op->len); break;
    }
    op->res = r < 0 ? -errno : (int)r;
    pthread_mutex_lock(&l->done_lock);
    g_ptr_array_add(l->done, op);
    pthread_mutex_unlock(&l->done_lock);
    uint64_t one = 1;
    if (write(l->done_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("event loop: I/O completion wake-up failed: %s", g_strerror(errno));
}

static void done_fn(void *opaque, int fd, uint32_t revents)
{
    struct loop *l = opaque;
    (void)revents;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("event loop: I/O completion read failed: %s", g_strerror(errno));
    pthread_mutex_lock(&l->done_lock);
    GPtrArray *done = l->done;
    l->done = g_ptr_array_new();
    pthread_mutex_unlock(&l->done_lock);
    for (guint i = 0; i < done->len; i++) {
        struct loop_op *op = g_ptr_array_index(done, i);
        dispatch_op(l, op, op->res);
    }
    g_ptr_array_free(done, TRUE);
}

static int pool_push(struct loop *l, struct loop_op op)
{
    struct loop_op *p = op_new(l, op.fn, op.opaque);
    p->kind = op.kind;
    p->fd = op.fd;
    p->mode = op.mode;
    p->iov = op.iov;
    p->niov = op.niov;
    p->off = op.off;
    p->len = op.len;
    g_thread_pool_push(l->pool, p, NULL);
    return 0;
}

/* Ties a prepared SQE to a new op (after the prep helper, which clears
 * user_data). */
static void op_attach(struct loop *l, struct io_uring_sqe *sqe, loop_io_fn fn, void *opaque)
{
    struct loop_op *op = op_new(l, fn, opaque);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | OP_TAG);
}

int loop_readv(struct loop *l, int fd, const struct iovec *iov, unsigned n, uint64_t off,
               loop_io_fn fn, void *opaque)
{
    if (l->epoll)
        return pool_push(l, (struct loop_op){ .fn = fn, .opaque = opaque, .kind = OP_READV, .fd = fd, .iov = iov, .niov = n, .off = off });
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_readv(sqe, fd, iov, n, off);
    op_attach(l, sqe, fn, opaque);
    return 0;
}

int loop_writev(struct loop *l, int fd, const struct iovec *iov, unsigned n, uint64_t off,
                loop_io_fn fn, void *opaque)
{
    if (l->epoll)
        return pool_push(l, (struct loop_op){ .fn = fn, .opaque = opaque, .kind = OP_WRITEV, .fd = fd, .iov = iov, .niov = n, .off = off });
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_writev(sqe, fd, iov, n, off);
    op_attach(l, sqe, fn, opaque);
    return 0;
}

int loop_fsync(struct loop *l, int fd, bool datasync, loop_io_fn fn, void *opaque)
{
    if (l->epoll)
        return pool_push(l, (struct loop_op){ .fn = fn, .opaque = opaque, .kind = datasync ? OP_FDATASYNC : OP_FSYNC, .fd = fd });
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    op_attach(l, sqe, fn, opaque);
    return 0;
}

int loop_fallocate(struct loop *l, int fd, int mode, uint64_t off, uint64_t len,
                   loop_io_fn fn, void *opaque)
{
    if (l->epoll)
        return pool_push(l, (struct loop_op){ .fn = fn, .opaque = opaque, .kind = OP_FALLOCATE, .fd = fd, .mode = mode, .off = off, .len = len });
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_fallocate(sqe, fd, mode, (off_t)off, (off_t)len);
    op_attach(l, sqe, fn, opaque);
    return 0;
}

bool loop_supports_op(struct loop *l, int opcode)
{
    if (l->epoll)   /* the workers do these four */
        return opcode == IORING_OP_READV || opcode == IORING_OP_WRITEV || opcode == IORING_OP_FSYNC ||
               opcode == IORING_OP_FALLOCATE;
    return !l->probe || io_uring_opcode_supported(l->probe, opcode);
}

bool loop_uses_io_uring(struct loop *l)
{
    return !l->epoll;
}

void loop_flush(struct loop *l)
{
    if (l->epoll)
        return;     /* the workers have them already */
    io_uring_submit(&l->ring);
}

unsigned loop_io_pending(struct loop *l)
{
    return l->nr_ops;
}

/* ---- timers ---- */

struct loop_timer {
    struct loop *loop;
    int fd;
    loop_call_fn fn;
    void *opaque;
};

static void timer_fired(void *opaque, int fd, uint32_t revents)
{
    struct loop_timer *t = opaque;
    uint64_t n;
    /* EAGAIN: re-armed or disarmed after the expiry was polled; not an expiry. */
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return;
    t->fn(t->opaque);
}

struct loop_timer *loop_timer_new(struct loop *l, loop_call_fn fn, void *opaque, GError **err)
{
    struct loop_timer *t = g_new0(struct loop_timer, 1);
    *t = (struct loop_timer){ .loop = l, .fn = fn, .opaque = opaque };
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    int r = t->fd < 0 ? -errno : loop_add_fd(l, t->fd, POLLIN, timer_fired, t);
    if (r < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-r), "cannot create a timer: %s",
                    g_strerror(-r));
        if (t->fd >= 0)
            close(t->fd);
        g_free(t);
        return NULL;
    }
    return t;
}

int loop_timer_arm(struct loop_timer *t, uint64_t ns, uint64_t period_ns)
{
    struct itimerspec its = {
        .it_value = { .tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000) },
        .it_interval = { .tv_sec = (time_t)(period_ns / 1000000000),
                         .tv_nsec = (long)(period_ns % 1000000000) },
    };
    if (!ns)
        its.it_interval = (struct timespec){ 0, 0 };
    return timerfd_settime(t->fd, 0, &its, NULL) < 0 ? -errno : 0;
}

void loop_timer_free(struct loop_timer *t)
{
    if (!t)
        return;
    loop_remove_fd(t->loop, t->fd);
    close(t->fd);
    g_free(t);
}
