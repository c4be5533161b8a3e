/* The io_uring event loop: fd readiness, cross-thread calls and quit, and
 * watches changed from inside callbacks. No test waits on a clock: each one
 * ends by loop_quit, and a hang is caught by meson's test timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
