/* I/O threads: a registered thread running its own loop; loop_call_wait
 * runs work on it from another thread (and inline on its own); and a virtio
 * device created on an I/O thread's loop runs its queue handler there when
 * the queue's kick eventfd fires, never on the thread that kicked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "vmm/iothread.h"
#include "vmm/loop.h"
#include "vmm/memory.h"

#define QSZ 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000

static void test_registry_and_name(void **state)
{
    g_autoptr(GError) err = NULL;
    struct iothread *t = iothread_new("io0", &err);
    assert_non_null(t);
    assert_ptr_equal(iothread_find("io0"), t);
    assert_null(iothread_find("io1"));
    assert_null(iothread_new("io0", &err));
    assert_non_null(strstr(err->message, "io0"));
    char name[16] = "";
    assert_int_equal(pthread_getname_np(iothread_thread(t), name, sizeof(name)), 0);
    assert_string_equal(name, "iothread-io0");
    struct iothread *u = iothread_new("a-rather-long-name", NULL);
    assert_non_null(u);
    assert_int_equal(pthread_getname_np(iothread_thread(u), name, sizeof(name)), 0);
    assert_string_equal(name, "iothread-a-rath");
    iothread_free_all();
    assert_null(iothread_find("io0"));
}

struct where {
    struct loop *loop;
    pthread_t thread;
    int calls;
    bool nested_inline;
};

static void nested_fn(void *opaque)
{
    struct where *w = opaque;
    w->nested_inline = pthread_equal(pthread_self(), w->thread);
}

static void record_fn(void *opaque)
{
    struct where *w = opaque;
    w->thread = pthread_self();
    w->calls++;
    /* On its own thread it runs inline (no deadlock). */
    loop_call_wait(w->loop, nested_fn, w);
}

static void test_call_wait(void **state)
{
    struct iothread *t = iothread_new("io0", NULL);
    struct where w = { .loop = iothread_loop(t) };
    assert_false(loop_on_thread(w.loop));
    loop_call_wait(w.loop, record_fn, &w);
    assert_int_equal(w.calls, 1);
    assert_true(pthread_equal(w.thread, iothread_thread(t)));
    assert_false(pthread_equal(w.thread, pthread_self()));
    assert_true(w.nested_inline);

    /* A loop nobody runs: inline on the caller. */
    struct loop *idle = loop_new(NULL);
    struct where v = { .loop = idle };
    assert_true(loop_on_thread(idle));
    loop_call_wait(idle, record_fn, &v);
    assert_true(pthread_equal(v.thread, pthread_self()));
    loop_free(idle);
    iothread_free(t);
}

/* ---- a virtio device pinned to an I/O thread ---- */

struct pinned {
    struct guest_memory gm;
    struct virtio_device vdev;
    struct loop *loop;
    int kick_fd;
    GMutex lock;
    GCond cond;
    int handled;
    pthread_t handler_thread;
    int set_fd_ret;
};

static int handler(struct virtio_device *vdev, unsigned qi)
{
    struct pinned *p = vdev->opaque;
    g_mutex_lock(&p->lock);
    p->handler_thread = pthread_self();
    p->handled++;
    g_cond_signal(&p->cond);
    g_mutex_unlock(&p->lock);
    return 0;
}

static const struct virtio_device_ops test_ops = { .name = "virtio-test" };

static void create_fn(void *opaque)
{
    struct pinned *p = opaque;
    virtio_device_init(&p->vdev, VIRTIO_ID_RNG, &test_ops, p, &p->gm, p->loop, 0, 0, 1);
    virtio_queue_init(&p->vdev, 0, QSZ, handler);
    p->set_fd_ret = virtio_queue_set_kick_fd(&p->vdev, 0, p->kick_fd);
}

static void destroy_fn(void *opaque)
{
    struct pinned *p = opaque;
    virtio_device_destroy(&p->vdev);
}

static void test_queue_handler_on_iothread(void **state)
{
    struct pinned p = { .kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
    g_mutex_init(&p.lock);
    g_cond_init(&p.cond);
    assert_true(p.kick_fd >= 0);
    assert_int_equal(guest_memory_create(&p.gm, 1 << 20, false, false, NULL), 0);
    struct iothread *t = iothread_new("blkio", NULL);
    p.loop = iothread_loop(t);
    loop_call_wait(p.loop, create_fn, &p);
    assert_int_equal(p.set_fd_ret, 0);

    /* The driver's side, from this thread, as a vCPU would. */
    struct virtio_device *v = &p.vdev;
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 1, 1);    /* VERSION_1 */
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, 0, QSZ);
    virtio_queue_set_desc(v, 0, DESC);
    virtio_queue_set_avail(v, 0, AVAIL);
    virtio_queue_set_used(v, 0, USED);
    assert_int_equal(virtio_queue_enable(v, 0), 0);
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);

    /* DRIVER_OK runs every queue once on the device's loop; then a kick. */
    g_mutex_lock(&p.lock);
    while (p.handled < 1)
        g_cond_wait(&p.cond, &p.lock);
    int before = p.handled;
    g_mutex_unlock(&p.lock);
    uint64_t one = 1;
    assert_int_equal(write(p.kick_fd, &one, sizeof(one)), sizeof(one));
    g_mutex_lock(&p.lock);
    while (p.handled == before)
        g_cond_wait(&p.cond, &p.lock);
    pthread_t where = p.handler_thread;
    g_mutex_unlock(&p.lock);
    assert_true(pthread_equal(where, iothread_thread(t)));
    assert_false(pthread_equal(where, pthread_self()));
    char name[16] = "";
    pthread_getname_np(where, name, sizeof(name));
    assert_string_equal(name, "iothread-blkio");

    loop_call_wait(p.loop, destroy_fn, &p);
    iothread_free(t);
    close(p.kick_fd);
    guest_memory_destroy(&p.gm);
    g_cond_clear(&p.cond);
    g_mutex_clear(&p.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_and_name),
        cmocka_unit_test(test_call_wait),
        cmocka_unit_test(test_queue_handler_on_iothread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
