/* The event loop (io_uring, or the epoll fallback under
 * VMM_LOOP_BACKEND=epoll: meson runs this program both ways): fd readiness, cross-thread calls and quit, and
 * watches changed from inside callbacks, timers, and asynchronous file I/O
 * (vectored read/write at an offset, fsync, fallocate) with completions on
 * the loop thread. No test waits on a clock: each one
 * ends by loop_quit, and a hang is caught by meson's test timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "vmm/loop.h"

struct ctx {
    struct loop *loop;
    int fd, fd2;
    unsigned calls, calls2;
    uint32_t revents;
    int last_fd;
    pthread_t thread;
    GMutex lock;
    GCond cond;
    bool running;
};

static int setup(void **state)
{
    struct ctx *c = g_new0(struct ctx, 1);
    g_autoptr(GError) err = NULL;
    c->loop = loop_new(&err);
    if (!c->loop)
        fail_msg("%s", err->message);
    c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->fd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(c->fd >= 0 && c->fd2 >= 0);
    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    loop_free(c->loop);
    close(c->fd);
    close(c->fd2);
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->cond);
    g_free(c);
    return 0;
}

static void kick(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static uint64_t drain(int fd)
{
    uint64_t n = 0;
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return 0;
    return n;
}

static void on_ready_quit(void *opaque, int fd, uint32_t revents)
{
    struct ctx *c = opaque;
    c->calls++;
    c->revents = revents;
    c->last_fd = fd;
    drain(fd);
    loop_quit(c->loop);
}

static void test_eventfd_readiness(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(loop_add_fd(c->loop, c->fd, POLLIN, on_ready_quit, c), 0);
    assert_int_equal(loop_add_fd(c->loop, c->fd, POLLIN, on_ready_quit, c), -EEXIST);
    kick(c->fd);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 1);
    assert_int_equal(c->last_fd, c->fd);
    assert_true(c->revents & POLLIN);

    /* The watch stays armed: a second kick, a second call. */
    kick(c->fd);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 2);
    assert_int_equal(loop_remove_fd(c->loop, c->fd), 0);
    assert_int_equal(loop_remove_fd(c->loop, c->fd), -ENOENT);
}

static void record_thread_and_quit(void *opaque)
{
    struct ctx *c = opaque;
    c->calls++;
    c->thread = pthread_self();
    loop_quit(c->loop);
}

static void count_call(void *opaque)
{
    struct ctx *c = opaque;
    assert_int_equal(c->calls, c->calls2);  /* in order, one at a time */
    c->calls2++;
    c->calls++;
}

static void *caller_thread(void *opaque)
{
    struct ctx *c = opaque;
    for (int i = 0; i < 100; i++)
        loop_call(c->loop, count_call, c);
    loop_call(c->loop, record_thread_and_quit, c);
    return NULL;
}

static void test_call_from_other_thread(void **state)
{
    struct ctx *c = *state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, caller_thread, c), 0);
    assert_int_equal(loop_run(c->loop), 0);
    pthread_join(t, NULL);
    assert_int_equal(c->calls, 101);
    assert_int_equal(c->calls2, 100);
    assert_true(pthread_equal(c->thread, pthread_self()));
}

static void mark_running(void *opaque)
{
    struct ctx *c = opaque;
    g_mutex_lock(&c->lock);
    c->running = true;
    g_cond_signal(&c->cond);
    g_mutex_unlock(&c->lock);
}

/* Quits a loop that is known to be inside loop_run. */
static void *quitter_thread(void *opaque)
{
    struct ctx *c = opaque;
    loop_call(c->loop, mark_running, c);
    g_mutex_lock(&c->lock);
    while (!c->running)
        g_cond_wait(&c->cond, &c->lock);
    g_mutex_unlock(&c->lock);
    loop_quit(c->loop);
    return NULL;
}

static void test_quit_from_other_thread(void **state)
{
    struct ctx *c = *state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, quitter_thread, c), 0);
    assert_int_equal(loop_run(c->loop), 0);
    pthread_join(t, NULL);
    assert_true(c->running);
}

static void *early_quitter(void *opaque)
{
    loop_quit(opaque);
    return NULL;
}

/* A quit that lands before loop_run starts is not lost, and is used up. */
static void test_quit_before_run(void **state)
{
    struct ctx *c = *state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, early_quitter, c->loop), 0);
    pthread_join(t, NULL);
    assert_int_equal(loop_run(c->loop), 0);
    /* The next run needs a quit of its own. */
    assert_int_equal(loop_add_fd(c->loop, c->fd, POLLIN, on_ready_quit, c), 0);
    kick(c->fd);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 1);
}

/* Removes its own watch, leaves the eventfd readable and kicks it again:
 * a watch that survived removal would be called again. */
static void on_ready_remove_self(void *opaque, int fd, uint32_t revents)
{
    struct ctx *c = opaque;
    c->calls++;
    assert_int_equal(loop_remove_fd(c->loop, fd), 0);
    kick(fd);
    kick(c->fd2);
}

/* Lets the loop go round a few times before quitting. */
static void on_fd2_rounds(void *opaque, int fd, uint32_t revents)
{
    struct ctx *c = opaque;
    drain(fd);
    if (++c->calls2 < 5)
        kick(fd);
    else
        loop_quit(c->loop);
}

static void test_remove_in_own_callback(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(loop_add_fd(c->loop, c->fd, POLLIN, on_ready_remove_self, c), 0);
    assert_int_equal(loop_add_fd(c->loop, c->fd2, POLLIN, on_fd2_rounds, c), 0);
    kick(c->fd);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 1);
    assert_int_equal(c->calls2, 5);

    /* The fd can be watched again, and the new watch works. */
    assert_int_equal(loop_add_fd(c->loop, c->fd, POLLIN, on_ready_quit, c), 0);
    assert_int_equal(loop_run(c->loop), 0);     /* fd is still readable */
    assert_int_equal(c->calls, 2);
    assert_int_equal(c->last_fd, c->fd);
}

static void on_pipe(void *opaque, int fd, uint32_t revents)
{
    struct ctx *c = opaque;
    c->calls++;
    c->revents = revents;
    assert_int_equal(loop_remove_fd(c->loop, fd), 0);
    loop_quit(c->loop);
}

static void quit_loop(void *opaque)
{
    loop_quit(((struct ctx *)opaque)->loop);
}

static void test_modify_fd(void **state)
{
    struct ctx *c = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* The write end of an empty pipe is writable, never readable. */
    assert_int_equal(loop_add_fd(c->loop, p[1], POLLIN, on_pipe, c), 0);
    loop_call(c->loop, quit_loop, c);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 0);

    assert_int_equal(loop_modify_fd(c->loop, p[1], POLLIN), 0);    /* unchanged */
    assert_int_equal(loop_modify_fd(c->loop, p[1], POLLOUT), 0);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 1);
    assert_true(c->revents & POLLOUT);
    assert_false(c->revents & POLLIN);
    assert_int_equal(loop_modify_fd(c->loop, p[1], POLLIN), -ENOENT);
    close(p[0]);
    close(p[1]);
}

static void tally_call(void *opaque)
{
    struct ctx *c = opaque;
    c->calls++;
}

/* Queues a count, then itself again until calls2 reaches 3. */
static void chain_call(void *opaque)
{
    struct ctx *c = opaque;
    loop_call(c->loop, tally_call, c);
    if (++c->calls2 < 3)
        loop_call(c->loop, chain_call, c);
}

static void forever_call(void *opaque)
{
    struct ctx *c = opaque;
    c->calls2++;
    loop_call(c->loop, forever_call, c);
}

/* Teardown's flush: what was queued runs, and what that queued, without
 * loop_run; a call that always re-queues itself is cut off. */
static void test_run_calls(void **state)
{
    struct ctx *c = *state;
    loop_call(c->loop, tally_call, c);
    loop_call(c->loop, chain_call, c);
    loop_run_calls(c->loop);
    assert_int_equal(c->calls, 4);
    assert_int_equal(c->calls2, 3);
    loop_run_calls(c->loop);
    assert_int_equal(c->calls, 4);
    c->calls2 = 0;
    loop_call(c->loop, forever_call, c);
    loop_run_calls(c->loop);
    assert_int_equal(c->calls2, 64);
}

/* ---- timers ---- */

struct tctx {
    struct loop *loop;
    unsigned fired, fired2;
    unsigned quit_after;
    struct loop_timer *t;
};

/* Quits the loop at the quit_after-th expiry, and disarms the timer given
 * in t->t there: loop_quit takes effect after the batch of completions
 * being dispatched, which on a loaded host can hold the periodic timer's
 * next expiry too, and a disarmed timer never calls back. */
static void on_timer(void *opaque)
{
    struct tctx *t = opaque;
    if (++t->fired == t->quit_after) {
        if (t->t)
            loop_timer_arm(t->t, 0, 0);
        loop_quit(t->loop);
    }
}

static void on_timer2_quit(void *opaque)
{
    struct tctx *t = opaque;
    t->fired2++;
    loop_quit(t->loop);
}

static void test_timer_once_and_periodic(void **state)
{
    struct ctx *c = *state;
    struct tctx t = { .loop = c->loop, .quit_after = 1 };
    g_autoptr(GError) err = NULL;
    struct loop_timer *timer = loop_timer_new(c->loop, on_timer, &t, &err);
    assert_non_null(timer);
    assert_int_equal(loop_timer_arm(timer, 1000000, 0), 0);
    assert_int_equal(t.fired, 0);       /* never from inside arm */
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(t.fired, 1);

    /* Periodic: keeps firing until disarmed. */
    t.quit_after = 4;
    t.t = timer;
    assert_int_equal(loop_timer_arm(timer, 100000, 100000), 0);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(t.fired, 4);
    assert_int_equal(loop_timer_arm(timer, 0, 0), 0);
    loop_timer_free(timer);
}

/* A timer disarmed (or re-armed far away) before the loop saw its expiry
 * never runs: a second timer ends the run and the first has not fired. */
static void test_timer_disarm_and_rearm(void **state)
{
    struct ctx *c = *state;
    struct tctx t = { .loop = c->loop, .quit_after = 1 };
    g_autoptr(GError) err = NULL;
    struct loop_timer *a = loop_timer_new(c->loop, on_timer, &t, &err);
    struct loop_timer *b = loop_timer_new(c->loop, on_timer, &t, &err);
    struct loop_timer *end = loop_timer_new(c->loop, on_timer2_quit, &t, &err);
    assert_true(a && b && end);
    assert_int_equal(loop_timer_arm(a, 1, 0), 0);
    assert_int_equal(loop_timer_arm(b, 1, 0), 0);
    usleep(2000);                               /* both have expired in the kernel */
    assert_int_equal(loop_timer_arm(a, 0, 0), 0);
    assert_int_equal(loop_timer_arm(b, 3600ULL * 1000000000, 0), 0);
    assert_int_equal(loop_timer_arm(end, 1000000, 0), 0);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(t.fired2, 1);
    assert_int_equal(t.fired, 0);
    loop_timer_free(a);
    loop_timer_free(b);
    loop_timer_free(end);
}

/* A freed timer never calls back, even with an expiry already pending. */
static void test_timer_free_pending(void **state)
{
    struct ctx *c = *state;
    struct tctx t = { .loop = c->loop, .quit_after = 1 };
    g_autoptr(GError) err = NULL;
    struct loop_timer *a = loop_timer_new(c->loop, on_timer, &t, &err);
    struct loop_timer *end = loop_timer_new(c->loop, on_timer2_quit, &t, &err);
    assert_int_equal(loop_timer_arm(a, 1, 0), 0);
    usleep(2000);
    loop_timer_free(a);
    assert_int_equal(loop_timer_arm(end, 1000000, 0), 0);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(t.fired, 0);
    loop_timer_free(end);
}

/* ---- asynchronous I/O ---- */

struct io {
    struct loop *loop;
    int res[64];
    unsigned done;
    unsigned quit_at;
    pthread_t thread;
};

static void on_io(void *opaque, int res)
{
    struct io *io = opaque;
    assert_true(io->done < G_N_ELEMENTS(io->res));
    io->res[io->done++] = res;
    io->thread = pthread_self();
    if (io->done == io->quit_at)
        loop_quit(io->loop);
}

static int tmpfile_fd(void)
{
    char path[] = "/tmp/vmm-test-loop.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static void run_until(struct io *io, unsigned n)
{
    io->quit_at = n;
    if (io->done < n)
        assert_int_equal(loop_run(io->loop), 0);
    assert_int_equal(io->done, n);
}

static void test_io_readv_writev(void **state)
{
    struct ctx *c = *state;
    struct io io = { .loop = c->loop };
    int fd = tmpfile_fd();
    char a[100], b[3000];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    struct iovec w[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
    assert_int_equal(loop_writev(c->loop, fd, w, 2, 5000, on_io, &io), 0);
    assert_int_equal(io.done, 0);   /* never from inside the submission */
    run_until(&io, 1);
    assert_int_equal(io.res[0], 3100);
    assert_true(pthread_equal(io.thread, pthread_self()));

    char check[3100];
    assert_int_equal(pread(fd, check, sizeof(check), 5000), 3100);
    assert_memory_equal(check, a, 100);
    assert_memory_equal(check + 100, b, 3000);

    /* Read it back into three differently sized buffers at an offset. */
    char r1[50], r2[60], r3[4000];
    memset(r3, 'x', sizeof(r3));
    struct iovec r[3] = { { r1, sizeof(r1) }, { r2, sizeof(r2) }, { r3, sizeof(r3) } };
    assert_int_equal(loop_readv(c->loop, fd, r, 3, 5000, on_io, &io), 0);
    run_until(&io, 2);
    assert_int_equal(io.res[1], 3100);     /* short: the file ends at 8100 */
    assert_memory_equal(r1, a, 50);
    assert_memory_equal(r2, a, 50);
    assert_int_equal(r2[50], 'b');
    assert_int_equal(r3[0], 'b');
    assert_int_equal(r3[2989], 'b');
    assert_int_equal(r3[2990], 'x');

    /* The hole before 5000 reads as zeroes. */
    char z[16];
    memset(z, 1, sizeof(z));
    struct iovec zv = { z, sizeof(z) };
    assert_int_equal(loop_readv(c->loop, fd, &zv, 1, 0, on_io, &io), 0);
    run_until(&io, 3);
    assert_int_equal(io.res[2], 16);
    for (unsigned i = 0; i < sizeof(z); i++)
        assert_int_equal(z[i], 0);
    close(fd);
}

static void test_io_errors(void **state)
{
    struct ctx *c = *state;
    struct io io = { .loop = c->loop };
    char buf[16] = { 0 };
    struct iovec v = { buf, sizeof(buf) };
    /* A bad fd, a write to a read-only fd, fallocate on a read-only fd. */
    assert_int_equal(loop_readv(c->loop, -1, &v, 1, 0, on_io, &io), 0);
    int ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    assert_int_equal(loop_writev(c->loop, ro, &v, 1, 0, on_io, &io), 0);
    assert_int_equal(loop_fallocate(c->loop, ro, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096,
                                    on_io, &io), 0);
    assert_int_equal(loop_io_pending(c->loop), 3);
    run_until(&io, 3);
    assert_int_equal(loop_io_pending(c->loop), 0);
    assert_int_equal(io.res[0], -EBADF);
    assert_int_equal(io.res[1], -EBADF);
    assert_int_equal(io.res[2], -EBADF);
    close(ro);
}

static void test_io_fsync_fallocate(void **state)
{
    struct ctx *c = *state;
    struct io io = { .loop = c->loop };
    int fd = tmpfile_fd();
    static char data[65536];
    memset(data, 0x5a, sizeof(data));
    assert_int_equal(pwrite(fd, data, sizeof(data), 0), sizeof(data));
    assert_int_equal(loop_fsync(c->loop, fd, false, on_io, &io), 0);
    assert_int_equal(loop_fsync(c->loop, fd, true, on_io, &io), 0);
    run_until(&io, 2);
    assert_int_equal(io.res[0], 0);
    assert_int_equal(io.res[1], 0);

    /* Punch a hole in the middle (size kept), then zero a range past the end
     * with KEEP_SIZE off: the file grows, the zeroed range reads 0. */
    assert_int_equal(loop_fallocate(c->loop, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                    8192, 8192, on_io, &io), 0);
    run_until(&io, 3);
    assert_int_equal(io.res[2], 0);
    char back[65536];
    assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
    for (unsigned i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], i >= 8192 && i < 16384 ? 0 : 0x5a);
    assert_int_equal(lseek(fd, 0, SEEK_END), 65536);

    if (loop_supports_op(c->loop, IORING_OP_FALLOCATE)) {
        assert_int_equal(loop_fallocate(c->loop, fd, FALLOC_FL_ZERO_RANGE, 60000, 10000, on_io, &io), 0);
        run_until(&io, 4);
        assert_int_equal(io.res[3], 0);
        assert_int_equal(lseek(fd, 0, SEEK_END), 70000);
        assert_int_equal(pread(fd, back, 10000, 60000), 10000);
        for (unsigned i = 0; i < 10000; i++)
            assert_int_equal(back[i], 0);
    }
    close(fd);
}

/* More operations than the ring has entries, queued at once: all complete,
 * each exactly once, with its own result. */
struct many {
    struct loop *loop;
    unsigned done;
    unsigned seen[1000];
    char buf[1000][8];
    struct iovec iov[1000];
};

static struct many *many_ctx;

static void on_many_done(void *opaque, int res)
{
    unsigned *slot = opaque;
    (*slot)++;
    assert_int_equal(res, 8);
    if (++many_ctx->done == 1000)
        loop_quit(many_ctx->loop);
}

static void test_io_many(void **state)
{
    struct ctx *c = *state;
    struct many *m = g_new0(struct many, 1);
    many_ctx = m;
    m->loop = c->loop;
    int fd = tmpfile_fd();
    for (unsigned i = 0; i < 1000; i++) {
        memcpy(m->buf[i], &i, sizeof(i));
        memset(m->buf[i] + 4, 0xee, 4);
        m->iov[i] = (struct iovec){ m->buf[i], 8 };
        assert_int_equal(loop_writev(c->loop, fd, &m->iov[i], 1, 8ULL * i, on_many_done, &m->seen[i]), 0);
    }
    assert_int_equal(loop_io_pending(c->loop), 1000);
    assert_int_equal(loop_run(c->loop), 0);
    for (unsigned i = 0; i < 1000; i++) {
        assert_int_equal(m->seen[i], 1);
        unsigned v;
        assert_int_equal(pread(fd, &v, sizeof(v), 8ULL * i), sizeof(v));
        assert_int_equal(v, i);
    }
    close(fd);
    g_free(m);
}

/* A completion callback that waits for another operation with
 * loop_run_once (what a drain before a snapshot does): the nested wait sees
 * each completion once, and the outer dispatch goes on correctly after. */
struct nest {
    struct loop *loop;
    int fd;
    char buf[4];
    struct iovec iov;
    unsigned inner, outer, other;
};

static void on_inner(void *opaque, int res)
{
    struct nest *n = opaque;
    assert_int_equal(res, 4);
    n->inner++;
}

static void on_other(void *opaque, int res)
{
    struct nest *n = opaque;
    n->other++;
    if (n->outer && n->inner && n->other == 2)
        loop_quit(n->loop);
}

static void on_outer(void *opaque, int res)
{
    struct nest *n = opaque;
    n->outer++;
    assert_int_equal(loop_writev(n->loop, n->fd, &n->iov, 1, 0, on_inner, n), 0);
    while (!n->inner)
        assert_int_equal(loop_run_once(n->loop), 0);
    assert_int_equal(n->inner, 1);
    if (n->other == 2)
        loop_quit(n->loop);
}

static void test_io_nested_wait(void **state)
{
    struct ctx *c = *state;
    struct nest n = { .loop = c->loop, .fd = tmpfile_fd(), .buf = "abcd" };
    n.iov = (struct iovec){ n.buf, 4 };
    assert_int_equal(loop_fsync(c->loop, n.fd, false, on_other, &n), 0);
    assert_int_equal(loop_fsync(c->loop, n.fd, true, on_outer, &n), 0);
    assert_int_equal(loop_fsync(c->loop, n.fd, false, on_other, &n), 0);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(n.outer, 1);
    assert_int_equal(n.inner, 1);
    assert_int_equal(n.other, 2);
    close(n.fd);
}

/* loop_free with operations still in flight: no callback, nothing leaked
 * that ASan/valgrind would flag, no crash. */
static void never_called(void *opaque, int res)
{
    fail_msg("callback after loop_free");
}

static void test_io_free_in_flight(void **state)
{
    struct ctx *c = *state;
    static char buf[4096];
    struct iovec v = { buf, sizeof(buf) };
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* A read from an empty pipe never completes. */
    assert_int_equal(loop_readv(c->loop, p[0], &v, 1, (uint64_t)-1, never_called, NULL), 0);
    loop_flush(c->loop);
    assert_int_equal(loop_io_pending(c->loop), 1);
    loop_free(c->loop);
    c->loop = loop_new(NULL);
    close(p[0]);
    close(p[1]);
}

/* After-batch hooks run once everything ready has been dispatched: five
 * calls queued together all run before the hook one of them added; a
 * cancelled hook never runs; loop_run_calls runs them too. */
struct after {
    struct loop *loop;
    unsigned calls, hook_saw, hooks, cancelled;
};

static void after_hook(void *opaque)
{
    struct after *a = opaque;
    a->hooks++;
    a->hook_saw = a->calls;
    loop_quit(a->loop);
}

static void cancelled_hook(void *opaque)
{
    ((struct after *)opaque)->cancelled++;
}

static void call_then_hook(void *opaque)
{
    struct after *a = opaque;
    if (a->calls++ == 0) {
        loop_after_batch(a->loop, after_hook, a);
        loop_after_batch(a->loop, cancelled_hook, a);
    }
    if (a->calls == 3)
        loop_after_batch_cancel(a->loop, cancelled_hook, a);
}

static void test_after_batch(void **state)
{
    struct ctx *c = *state;
    struct after a = { .loop = c->loop };
    for (int i = 0; i < 5; i++)
        loop_call(c->loop, call_then_hook, &a);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(a.hooks, 1);
    assert_int_equal(a.hook_saw, 5);
    assert_int_equal(a.cancelled, 0);

    a.calls = 0;
    loop_call(c->loop, call_then_hook, &a);
    loop_run_calls(c->loop);
    assert_int_equal(a.hooks, 2);
    assert_int_equal(a.hook_saw, 1);
    assert_int_equal(a.cancelled, 1);       /* not cancelled this time: calls stopped at 1 */
}

/* The backend is the one asked for: VMM_LOOP_BACKEND=epoll (how meson's
 * test_loop_epoll runs this program) gives the epoll fallback, else io_uring
 * on this host; so each run of the tests above proves one backend. */
static void test_backend(void **state)
{
    struct ctx *c = *state;
    const char *b = getenv("VMM_LOOP_BACKEND");
    bool epoll = b && strcmp(b, "epoll") == 0;
    assert_int_equal(loop_uses_io_uring(c->loop), !epoll);
    assert_true(loop_supports_op(c->loop, IORING_OP_READV));
    assert_true(loop_supports_op(c->loop, IORING_OP_WRITEV));
}

static void devnull_ready(void *opaque, int fd, uint32_t revents)
{
    struct ctx *c = opaque;
    c->calls++;
    c->revents = revents;
    loop_remove_fd(c->loop, fd);
    loop_quit(c->loop);
}

/* A watch on a file poll(2) calls always ready (/dev/null: stdin under the
 * test runners; epoll refuses such fds with EPERM) reports POLLIN. */
static void test_watch_devnull(void **state)
{
    struct ctx *c = *state;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(loop_add_fd(c->loop, fd, POLLIN, devnull_ready, c), 0);
    assert_int_equal(c->calls, 0);
    assert_int_equal(loop_run(c->loop), 0);
    assert_int_equal(c->calls, 1);
    assert_true(c->revents & POLLIN);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_eventfd_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_from_other_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_from_other_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_before_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_in_own_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modify_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_once_and_periodic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_disarm_and_rearm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_free_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_readv_writev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_fsync_fallocate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_nested_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_devnull, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
