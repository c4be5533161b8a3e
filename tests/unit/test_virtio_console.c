/* virtio-console over fake guest memory, a real event loop and a char
 * backend on pipes, driven as a driver would: transmit chains reach the
 * output pipe in order; a full output pipe holds the transmitq back (the
 * chain being written is not used, later ones are not popped) and nothing
 * is lost once the reader drains it; input waits in the host pipe until the
 * guest posts receive buffers and is split over them; hostile chains break
 * the device; a reset with a write in flight; config space and F_SIZE;
 * save/load. Tests wait with loop_run_once, never on a clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/char_backend.h"
#include "tests/unit/fake_driver.h"
#include "devices/virtio/console.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define MIB (1ULL << 20)
#define RAM (16 * MIB)
#define QSZ 16
#define RXQ VIRTIO_CONSOLE_RXQ
#define TXQ VIRTIO_CONSOLE_TXQ
#define DATA 0x100000ULL
#define PIPE_BYTES 4096

struct fx {
    struct guest_memory gm;
    struct loop *loop;
    struct char_backend *be;
    struct virtio_console *con;
    struct virtio_device *vdev;
    int in_w, in_r;             /* host input: the test writes in_w */
    int out_r;                  /* host output: the test reads out_r */
    struct fake_driver drv;
    unsigned irqs;
};

static void count_interrupt(void *opaque, uint16_t vector)
{
    struct fx *f = opaque;
    f->irqs++;
}

static uint8_t *hva(struct fx *f, uint64_t gpa)
{
    return f->gm.base + gpa;
}

static int setup_with(void **state, bool out_nonblock, uint16_t cols, uint16_t rows)
{
    struct fx *f = g_new0(struct fx, 1);
    g_autoptr(GError) err = NULL;
    signal(SIGPIPE, SIG_IGN);
    if (guest_memory_create(&f->gm, RAM, false, false, &err) < 0)
        fail_msg("%s", err->message);
    f->drv = (struct fake_driver){ .ram = f->gm.base, .qsz = QSZ };
    f->loop = loop_new(&err);
    assert_non_null(f->loop);
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    /* One page: a reader that does not drain it stalls the writer soon. */
    assert_true(fcntl(out[1], F_SETPIPE_SZ, PIPE_BYTES) >= PIPE_BYTES);
    if (out_nonblock)
        fcntl(out[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    f->in_r = in[0];
    f->in_w = in[1];
    f->out_r = out[0];
    f->be = char_backend_open_fds(in[0], out[1], false);
    char_backend_attach(f->be, f->loop, NULL, NULL);
    f->con = virtio_console_new(&f->gm, f->loop, f->be, cols, rows);
    f->vdev = &f->con->vdev;
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = count_interrupt, .opaque = f });
    loop_run_calls(f->loop);
    *state = f;
    return 0;
}

static int setup(void **s) { return setup_with(s, false, 0, 0); }
static int setup_nonblock(void **s) { return setup_with(s, true, 0, 0); }
static int setup_size(void **s) { return setup_with(s, false, 132, 43); }

static int teardown(void **state)
{
    struct fx *f = *state;
    virtio_console_free(f->con);
    loop_run_calls(f->loop);
    char_backend_close(f->be);
    loop_free(f->loop);
    close(f->in_w);
    close(f->out_r);
    guest_memory_destroy(&f->gm);
    g_free(f);
    return 0;
}

static uint64_t offered(struct virtio_device *vdev)
{
    return virtio_get_device_features(vdev, 0) | (uint64_t)virtio_get_device_features(vdev, 1) << 32;
}

static void bring_up_with(struct fx *f, bool event_idx)
{
    struct virtio_device *v = f->vdev;
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t feat = offered(v) & ~(event_idx ? 0 : VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    virtio_set_driver_features(v, 0, (uint32_t)feat);
    virtio_set_driver_features(v, 1, (uint32_t)(feat >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_true(virtio_get_status(v) & VIRTIO_STATUS_FEATURES_OK);
    for (unsigned q = 0; q < 2; q++) {
        memset(hva(f, FAKE_DESC(q)), 0, 0x3000);
        virtio_queue_set_size(v, q, QSZ);
        virtio_queue_set_desc(v, q, FAKE_DESC(q));
        virtio_queue_set_avail(v, q, FAKE_AVAIL(q));
        virtio_queue_set_used(v, q, FAKE_USED(q));
        assert_int_equal(virtio_queue_enable(v, q), 0);
        f->drv.avail_idx[q] = f->drv.next_desc[q] = 0;
    }
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    loop_run_calls(f->loop);
}

static void bring_up(struct fx *f)
{
    bring_up_with(f, false);
}

static bool broken(struct fx *f)
{
    return virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET;
}

/* Runs the loop until queue q has used `want` chains or the device broke. */
static void wait_used(struct fx *f, unsigned q, uint16_t want)
{
    while (fake_used_idx(&f->drv, q) != want && !broken(f))
        assert_int_equal(loop_run_once(f->loop), 0);
}

/* Reads exactly len bytes of host output, running the loop while the
 * backend still has to write them. */
static void read_out(struct fx *f, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(f->out_r, buf + got, len - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        assert_true(n < 0 && errno == EAGAIN);
        assert_int_equal(loop_run_once(f->loop), 0);
    }
}

static size_t out_pending(struct fx *f)
{
    int n = 0;
    assert_int_equal(ioctl(f->out_r, FIONREAD, &n), 0);
    return (size_t)n;
}

static size_t in_unread(struct fx *f)
{
    int n = 0;
    assert_int_equal(ioctl(f->in_r, FIONREAD, &n), 0);
    return (size_t)n;
}

/* ---- tests ---- */

static void test_config(void **state)
{
    struct fx *f = *state;
    assert_false(offered(f->vdev) & VIRTIO_BIT(VIRTIO_CONSOLE_F_SIZE));
    assert_false(offered(f->vdev) & VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT));
    assert_int_equal(f->vdev->device_id, VIRTIO_ID_CONSOLE);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, RXQ), VIRTIO_CONSOLE_QUEUE_SIZE);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, TXQ), VIRTIO_CONSOLE_QUEUE_SIZE);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 2), 0);
    uint32_t ports = 0;
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_MAX_PORTS, &ports, 4);
    assert_int_equal(ports, 1);
}

static void test_config_size(void **state)
{
    struct fx *f = *state;
    assert_true(offered(f->vdev) & VIRTIO_BIT(VIRTIO_CONSOLE_F_SIZE));
    uint16_t cols = 0, rows = 0;
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_COLS, &cols, 2);
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_ROWS, &rows, 2);
    assert_int_equal(cols, 132);
    assert_int_equal(rows, 43);
    /* Read-only: a driver write changes nothing. */
    uint16_t v = 7;
    virtio_config_write(f->vdev, VIRTIO_CONSOLE_CFG_COLS, &v, 2);
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_COLS, &cols, 2);
    assert_int_equal(cols, 132);
}

/* A resize reaches config space with a new generation and a config
 * interrupt; without F_SIZE (no terminal) it is ignored. */
static void test_resize(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    uint32_t gen = virtio_config_generation(f->vdev);
    unsigned irqs = f->irqs;
    virtio_console_resize(f->con, 200, 50);
    uint16_t cols = 0, rows = 0;
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_COLS, &cols, 2);
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_ROWS, &rows, 2);
    assert_int_equal(cols, 200);
    assert_int_equal(rows, 50);
    assert_int_not_equal(virtio_config_generation(f->vdev), gen);
    assert_int_equal(f->irqs, irqs + 1);
    assert_true(virtio_read_isr(f->vdev) & VIRTIO_ISR_CONFIG);
    /* The same size again: nothing to tell. */
    virtio_console_resize(f->con, 200, 50);
    assert_int_equal(f->irqs, irqs + 1);
}

static void test_resize_without_size(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    uint32_t gen = virtio_config_generation(f->vdev);
    virtio_console_resize(f->con, 200, 50);
    uint16_t cols = 1;
    virtio_config_read(f->vdev, VIRTIO_CONSOLE_CFG_COLS, &cols, 2);
    assert_int_equal(cols, 0);
    assert_int_equal(virtio_config_generation(f->vdev), gen);
}

/* Chains of one and several buffers come out in order, each used with
 * length 0 (nothing written into them), with an interrupt. */
static void test_tx(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    memcpy(hva(f, DATA), "hello ", 6);
    memcpy(hva(f, DATA + 0x100), "virtio", 6);
    memcpy(hva(f, DATA + 0x200), "-console\n", 9);
    fake_post(&f->drv, TXQ, (struct seg[]){ { DATA, 6, false } }, 1);
    fake_post(&f->drv, TXQ, (struct seg[]){ { DATA + 0x100, 6, false }, { DATA + 0x200, 9, false } }, 2);
    unsigned irqs = f->irqs;
    virtio_queue_notify(f->vdev, TXQ);
    wait_used(f, TXQ, 2);
    assert_false(broken(f));
    uint8_t buf[32] = { 0 };
    read_out(f, buf, 21);
    assert_memory_equal(buf, "hello virtio-console\n", 21);
    assert_int_equal(fake_used_len(&f->drv, TXQ, 0), 0);
    assert_int_equal(fake_used_len(&f->drv, TXQ, 1), 0);
    assert_true(f->irqs > irqs);
    assert_int_equal(out_pending(f), 0);
}

/* The output pipe holds one page and nobody reads it: the first chain
 * fills it, the second is being written (held, not used), the third stays
 * on the avail ring. Draining the pipe lets everything through, intact. */
static void backpressure(struct fx *f)
{
    bring_up(f);
    for (unsigned i = 0; i < 3; i++) {
        memset(hva(f, DATA + i * 0x1000ULL), 'a' + (int)i, PIPE_BYTES);
        fake_post(&f->drv, TXQ, (struct seg[]){ { DATA + i * 0x1000ULL, PIPE_BYTES, false } }, 1);
    }
    virtio_queue_notify(f->vdev, TXQ);
    wait_used(f, TXQ, 1);
    /* The second chain's write is under way once it is held. */
    while (!f->con->tx_chain)
        assert_int_equal(loop_run_once(f->loop), 0);
    loop_run_calls(f->loop);
    assert_int_equal(fake_used_idx(&f->drv, TXQ), 1);
    assert_int_equal(virtio_vq(f->vdev, TXQ)->last_avail_idx, 2);
    assert_int_equal(out_pending(f), PIPE_BYTES);

    static uint8_t buf[3 * PIPE_BYTES];
    read_out(f, buf, sizeof(buf));
    wait_used(f, TXQ, 3);
    for (unsigned i = 0; i < sizeof(buf); i++)
        if (buf[i] != 'a' + i / PIPE_BYTES)
            fail_msg("output byte %u is '%c'", i, buf[i]);
    assert_false(broken(f));
}

static void test_tx_backpressure(void **state)
{
    backpressure(*state);
}

/* The same where the output fd is non-blocking (set by whoever shares it):
 * EAGAIN is waited out, never a reason to drop. */
static void test_tx_backpressure_nonblock(void **state)
{
    backpressure(*state);
}

/* Input stays in the host pipe until the guest posts receive buffers,
 * then fills them in order; the rest waits for the next buffer. */
static void test_rx(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(write(f->in_w, "0123456789", 10), 10);
    loop_run_calls(f->loop);
    assert_int_equal(in_unread(f), 10);

    memset(hva(f, DATA), 0, 64);
    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA, 4, true } }, 1);
    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA + 0x10, 2, true }, { DATA + 0x20, 2, true } }, 2);
    virtio_queue_notify(f->vdev, RXQ);
    wait_used(f, RXQ, 2);
    assert_int_equal(fake_used_len(&f->drv, RXQ, 0), 4);
    assert_int_equal(fake_used_len(&f->drv, RXQ, 1), 4);
    assert_memory_equal(hva(f, DATA), "0123", 4);
    assert_memory_equal(hva(f, DATA + 0x10), "45", 2);
    assert_memory_equal(hva(f, DATA + 0x20), "67", 2);
    loop_run_calls(f->loop);
    assert_int_equal(in_unread(f), 2);

    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA + 0x30, 16, true } }, 1);
    virtio_queue_notify(f->vdev, RXQ);
    wait_used(f, RXQ, 3);
    assert_int_equal(fake_used_len(&f->drv, RXQ, 2), 2);
    assert_memory_equal(hva(f, DATA + 0x30), "89", 2);
    assert_int_equal(in_unread(f), 0);

    /* A buffer posted first, input later. */
    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA + 0x40, 16, true } }, 1);
    virtio_queue_notify(f->vdev, RXQ);
    loop_run_calls(f->loop);
    assert_int_equal(write(f->in_w, "xyz", 3), 3);
    wait_used(f, RXQ, 4);
    assert_int_equal(fake_used_len(&f->drv, RXQ, 3), 3);
    assert_memory_equal(hva(f, DATA + 0x40), "xyz", 3);
    assert_false(broken(f));
}

/* With EVENT_IDX, running out of receive buffers publishes avail_event
 * where the device stopped, so the driver's next buffer is kicked (a stale
 * avail_event would leave input stuck in the host for good). */
static void test_rx_event_idx(void **state)
{
    struct fx *f = *state;
    bring_up_with(f, true);
    assert_true(virtio_has_feature(f->vdev, VIRTIO_F_EVENT_IDX));
    uint16_t *avail_event = (uint16_t *)hva(f, FAKE_USED(RXQ) + 4 + 8 * QSZ);
    assert_int_equal(write(f->in_w, "abcdefghijklmnop", 16), 16);
    for (unsigned round = 1; round <= 3; round++) {
        fake_post(&f->drv, RXQ, (struct seg[]){ { DATA + 0x10 * round, 4, true } }, 1);
        virtio_queue_notify(f->vdev, RXQ);
        wait_used(f, RXQ, (uint16_t)round);
        /* The rest waits: no buffer, and the driver is told to kick for
         * the next one it adds. */
        while (!f->con->rx_blocked)
            assert_int_equal(loop_run_once(f->loop), 0);
        assert_int_equal(*avail_event, round);
        assert_memory_equal(hva(f, DATA + 0x10 * round), &"abcdefghijkl"[4 * (round - 1)], 4);
    }
    assert_int_equal(in_unread(f), 4);
}

/* Input that ends (the writer closed) before the guest posts buffers after
 * DRIVER_OK, with EVENT_IDX, as Linux does. */
static void test_rx_then_eof(void **state)
{
    struct fx *f = *state;
    assert_int_equal(write(f->in_w, "hello-from-L1\n", 14), 14);
    close(f->in_w);
    f->in_w = -1;
    loop_run_calls(f->loop);
    bring_up_with(f, true);
    loop_run_calls(f->loop);
    for (int i = 0; i < 4; i++) {
        fake_post(&f->drv, RXQ, (struct seg[]){ { DATA + 0x100 * i, 256, true } }, 1);
        if (i == 0)
            virtio_queue_notify(f->vdev, RXQ);
    }
    wait_used(f, RXQ, 1);
    assert_int_equal(fake_used_len(&f->drv, RXQ, 0), 14);
    assert_memory_equal(hva(f, DATA), "hello-from-L1\n", 14);
}

/* Before DRIVER_OK nothing is read either. */
static void test_rx_waits_for_driver(void **state)
{
    struct fx *f = *state;
    assert_int_equal(write(f->in_w, "early", 5), 5);
    loop_run_calls(f->loop);
    assert_int_equal(in_unread(f), 5);
    bring_up(f);
    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA, 16, true } }, 1);
    virtio_queue_notify(f->vdev, RXQ);
    wait_used(f, RXQ, 1);
    assert_memory_equal(hva(f, DATA), "early", 5);
}

/* A device-writable buffer in the transmitq breaks the device; nothing is
 * written for it. */
static void test_hostile_tx_writable(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    memcpy(hva(f, DATA), "bad", 3);
    fake_post(&f->drv, TXQ, (struct seg[]){ { DATA, 3, false }, { DATA + 0x10, 8, true } }, 2);
    virtio_queue_notify(f->vdev, TXQ);
    loop_run_calls(f->loop);
    assert_true(broken(f));
    assert_int_equal(fake_used_idx(&f->drv, TXQ), 0);
    assert_int_equal(out_pending(f), 0);
}

/* A device-readable buffer in the receiveq breaks the device when input
 * arrives; the input stays unread. */
static void test_hostile_rx_readable(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA, 8, false } }, 1);
    virtio_queue_notify(f->vdev, RXQ);
    loop_run_calls(f->loop);
    assert_int_equal(write(f->in_w, "in", 2), 2);
    while (!broken(f))
        assert_int_equal(loop_run_once(f->loop), 0);
    assert_int_equal(fake_used_idx(&f->drv, RXQ), 0);
    assert_int_equal(in_unread(f), 2);
}

/* A descriptor loop, and a buffer outside guest RAM, in the transmitq. */
static void test_hostile_tx_loop_and_range(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    fake_put_desc(&f->drv, TXQ, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    fake_put_desc(&f->drv, TXQ, 1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    uint16_t head = 0, idx = 1;
    memcpy(hva(f, FAKE_AVAIL(TXQ) + 4), &head, 2);
    memcpy(hva(f, FAKE_AVAIL(TXQ) + 2), &idx, 2);
    virtio_queue_notify(f->vdev, TXQ);
    loop_run_calls(f->loop);
    assert_true(broken(f));
    assert_int_equal(out_pending(f), 0);

    /* Reset, start again, and give it memory that is not RAM. */
    virtio_set_status(f->vdev, 0);
    loop_run_calls(f->loop);
    assert_int_equal(virtio_get_status(f->vdev), 0);
    bring_up(f);
    fake_post(&f->drv, TXQ, (struct seg[]){ { RAM - 2, 4, false } }, 1);
    virtio_queue_notify(f->vdev, TXQ);
    loop_run_calls(f->loop);
    assert_true(broken(f));
    assert_int_equal(out_pending(f), 0);
}

/* A reset while a chain is being written: the chain never reaches the new
 * session's used ring, the bytes already handed over still come out, and
 * the device works again afterwards. */
static void test_reset_with_write_in_flight(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    for (unsigned i = 0; i < 2; i++) {
        memset(hva(f, DATA + i * 0x1000ULL), 'p' + (int)i, PIPE_BYTES);
        fake_post(&f->drv, TXQ, (struct seg[]){ { DATA + i * 0x1000ULL, PIPE_BYTES, false } }, 1);
    }
    virtio_queue_notify(f->vdev, TXQ);
    wait_used(f, TXQ, 1);
    while (!f->con->tx_chain)
        assert_int_equal(loop_run_once(f->loop), 0);
    virtio_set_status(f->vdev, 0);
    loop_run_calls(f->loop);
    assert_int_equal(virtio_get_status(f->vdev), 0);
    assert_null(f->con->tx_chain);

    static uint8_t buf[2 * PIPE_BYTES];
    read_out(f, buf, sizeof(buf));
    assert_int_equal(buf[0], 'p');
    assert_int_equal(buf[PIPE_BYTES], 'q');
    loop_run_calls(f->loop);

    bring_up(f);
    memcpy(hva(f, DATA), "again\n", 6);
    fake_post(&f->drv, TXQ, (struct seg[]){ { DATA, 6, false } }, 1);
    virtio_queue_notify(f->vdev, TXQ);
    wait_used(f, TXQ, 1);
    read_out(f, buf, 6);
    assert_memory_equal(buf, "again\n", 6);
}

/* Save waits for the write in flight, so the saved rings show it used;
 * the state loads into a fresh device, which carries on. */
static void test_save_load(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    for (unsigned i = 0; i < 2; i++) {
        memset(hva(f, DATA + i * 0x1000ULL), 's' + (int)i, PIPE_BYTES);
        fake_post(&f->drv, TXQ, (struct seg[]){ { DATA + i * 0x1000ULL, PIPE_BYTES, false } }, 1);
    }
    virtio_queue_notify(f->vdev, TXQ);
    wait_used(f, TXQ, 1);
    while (!f->con->tx_chain)
        assert_int_equal(loop_run_once(f->loop), 0);
    /* A reader drains the pipe while save waits. */
    static uint8_t buf[2 * PIPE_BYTES];
    assert_int_equal(read(f->out_r, buf, PIPE_BYTES), PIPE_BYTES);
    struct state_writer *w = state_writer_new();
    assert_int_equal(virtio_device_save(f->vdev, w), 0);
    assert_null(f->con->tx_chain);
    assert_int_equal(fake_used_idx(&f->drv, TXQ), 2);
    g_autoptr(GBytes) bytes = state_writer_finish(w);
    read_out(f, buf + PIPE_BYTES, PIPE_BYTES);
    assert_int_equal(buf[PIPE_BYTES], 't');

    virtio_console_free(f->con);
    loop_run_calls(f->loop);
    f->con = virtio_console_new(&f->gm, f->loop, f->be, 0, 0);
    f->vdev = &f->con->vdev;
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = count_interrupt, .opaque = f });
    g_autoptr(GError) err = NULL;
    struct state_reader *r = state_reader_new(bytes, &err);
    assert_non_null(r);
    assert_int_equal(virtio_device_load(f->vdev, r, &err), 0);
    state_reader_free(r);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_DRIVER_OK);
    memcpy(hva(f, DATA), "after\n", 6);
    fake_post(&f->drv, TXQ, (struct seg[]){ { DATA, 6, false } }, 1);
    virtio_queue_notify(f->vdev, TXQ);
    wait_used(f, TXQ, 3);
    read_out(f, buf, 6);
    assert_memory_equal(buf, "after\n", 6);

    fake_post(&f->drv, RXQ, (struct seg[]){ { DATA + 0x100, 8, true } }, 1);
    virtio_queue_notify(f->vdev, RXQ);
    assert_int_equal(write(f->in_w, "in", 2), 2);
    wait_used(f, RXQ, 1);
    assert_memory_equal(hva(f, DATA + 0x100), "in", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_size, setup_size, teardown),
        cmocka_unit_test_setup_teardown(test_resize, setup_size, teardown),
        cmocka_unit_test_setup_teardown(test_resize_without_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_backpressure_nonblock, setup_nonblock, teardown),
        cmocka_unit_test_setup_teardown(test_rx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_waits_for_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_then_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_tx_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_rx_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_tx_loop_and_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_with_write_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
