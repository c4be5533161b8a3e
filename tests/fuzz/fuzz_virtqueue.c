/* Fuzz target: arbitrary bytes as guest memory plus a ring setup, fed to
 * the split-virtqueue pop/push path, to virtio-rng on the virtio core, and to
 * virtio-blk's request path over a 64 KiB image file (io_uring through a
 * real loop), to virtio-console's receive or transmit path over pipes, and
 * to virtio-net's receive, transmit or control path over a socket pair, and
 * to virtio-mem's requests over a hotplug region.
 * Whatever the bytes, nothing may crash, every popped buffer must lie inside
 * guest RAM, the image never grows, every request the device took
 * completes, the console writes no more than the guest gave it, and
 * virtio-net sends one frame per transmitted chain and delivers or drops
 * no more frames than the host sent, virtio-mem's plugged_size is always
 * what its blocks say, never above requested_size, kept by a device reset
 * and by save/load; a
 * violated invariant aborts so the fuzzer reports it.
 *
 * Input: a 16-byte header (struct fuzz_hdr), then guest memory from GPA 0.
 * Built as a libFuzzer target with clang (-Dfuzz=true), and as a plain
 * program with replay.c for the default suite (see README.md here). */
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "devices/char_backend.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/console.h"
#include "devices/virtio/mem.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtqueue.h"
#include "tests/fuzz/fuzz_virtqueue.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/state.h"

static struct guest_memory gm;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_chain(const struct virtqueue *q, const struct virtq_chain *c)
{
    unsigned n = c->n_out + c->n_in;
    uint64_t out = 0, in = 0;
    check(n >= 1 && n <= q->size);
    for (unsigned i = 0; i < n; i++) {
        const struct virtq_buf *b = &c->bufs[i];
        check(b->len > 0);
        check(b->gpa < FUZZ_RAM && b->len <= FUZZ_RAM - b->gpa);
        check(b->hva == gm.base + b->gpa);
        if (i < c->n_out)
            out += b->len;
        else
            in += b->len;
    }
    check(out == c->out_len && in == c->in_len && in <= UINT32_MAX);
}

static void run_queue(const struct fuzz_hdr *h)
{
    struct virtqueue q;
    virtq_init(&q, &gm);
    q.event_idx = h->mode & FUZZ_EVENT_IDX;
    q.indirect = h->mode & FUZZ_INDIRECT;
    if (virtq_enable(&q, h->size, h->desc, h->avail, h->used, h->last_avail, h->used_idx) < 0)
        return;
    static uint8_t scratch[FUZZ_RAM];
    uint32_t seed = h->seed;
    virtq_disable_notify(&q);
    for (unsigned i = 0; i < (unsigned)q.size + 2; i++) {
        struct virtq_chain c;
        uint16_t used_before = q.used_idx;
        int r = virtq_pop(&q, &c);
        if (r <= 0)
            break;
        check_chain(&q, &c);
        if (seed & 1) {
            virtq_unpop(&q);
            check(virtq_pop(&q, &c) == 1);
            check_chain(&q, &c);
        }
        size_t got = virtq_chain_read(&c, seed % 7, scratch, sizeof(scratch));
        check(got <= c.out_len);
        size_t put = virtq_chain_write(&q, &c, seed % 5, scratch, MIN(got, (size_t)(seed & 0xfff)));
        check(put <= c.in_len);
        virtq_push(&q, &c, seed * 2654435761u);
        check(q.used_idx == (uint16_t)(used_before + 1));
        virtq_should_notify(&q);
        seed = seed * 1103515245u + 12345u;
    }
    virtq_enable_notify(&q);
    virtq_should_notify(&q);
    virtq_disable(&q);
}

static void run_rng(const struct fuzz_hdr *h)
{
    struct virtio_rng *rng = virtio_rng_new(&gm, NULL);
    struct virtio_device *v = &rng->vdev;
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1);
    if (h->mode & FUZZ_EVENT_IDX)
        features |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    if (h->mode & FUZZ_INDIRECT)
        features |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)features);
    virtio_set_driver_features(v, 1, (uint32_t)(features >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, 0, h->size);
    virtio_queue_set_desc(v, 0, h->desc);
    virtio_queue_set_avail(v, 0, h->avail);
    virtio_queue_set_used(v, 0, h->used);
    int enabled = virtio_queue_enable(v, 0);
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    virtio_queue_notify(v, 0);
    virtio_queue_notify(v, 0);
    check(enabled == 0 || (virtio_get_status(v) & VIRTIO_STATUS_NEEDS_RESET));

    /* What a broken device saves must load (or be refused) cleanly too. */
    struct state_writer *w = state_writer_new();
    check(virtio_device_save(v, w) == 0);
    GBytes *b = state_writer_finish(w);
    struct state_reader *r = state_reader_new(b, NULL);
    check(r != NULL);
    struct virtio_rng *copy = virtio_rng_new(&gm, NULL);
    check(virtio_device_load(&copy->vdev, r, NULL) == 0);
    check(virtio_get_status(&copy->vdev) == virtio_get_status(v));
    state_reader_free(r);
    g_bytes_unref(b);
    virtio_rng_free(copy);

    virtio_set_status(v, 0);
    check(virtio_get_status(v) == 0);
    virtio_rng_free(rng);
}

static struct loop *blk_loop;
static char blk_path[64];

static void run_blk(const struct fuzz_hdr *h)
{
    if (!blk_loop) {
        blk_loop = loop_new(NULL);
        check(blk_loop != NULL);
        snprintf(blk_path, sizeof(blk_path), "/tmp/vmm-fuzz-blk.%d", (int)getpid());
    }
    int fd = open(blk_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    check(fd >= 0 && ftruncate(fd, FUZZ_BLK_SECTORS * 512) == 0);
    struct virtio_blk_params p = { .disk.path = blk_path, .serial = "fuzz" };
    struct virtio_blk *blk = virtio_blk_new(&gm, blk_loop, &p, NULL);
    unlink(blk_path);
    check(blk != NULL);
    struct virtio_device *v = &blk->vdev;
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
    if (h->seed & 2)
        features |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    if (h->mode & FUZZ_EVENT_IDX)
        features |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    if (h->mode & FUZZ_INDIRECT)
        features |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)features);
    virtio_set_driver_features(v, 1, (uint32_t)(features >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, 0, h->size);
    virtio_queue_set_desc(v, 0, h->desc);
    virtio_queue_set_avail(v, 0, h->avail);
    virtio_queue_set_used(v, 0, h->used);
    int enabled = virtio_queue_enable(v, 0);
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    loop_run_calls(blk_loop);
    virtio_queue_run(v, 0);
    check(enabled == 0 || (virtio_get_status(v) & VIRTIO_STATUS_NEEDS_RESET));
    /* Everything taken completes (a request lost in the backend hangs here,
     * and the fuzzer's timeout reports it). */
    while (block_inflight(blk->bb))
        check(loop_run_once(blk_loop) == 0);
    loop_run_calls(blk_loop);
    struct stat st;
    check(fstat(fd, &st) == 0 && st.st_size == FUZZ_BLK_SECTORS * 512);
    close(fd);
    virtio_set_status(v, 0);
    loop_run_calls(blk_loop);
    check(virtio_get_status(v) == 0);
    virtio_blk_free(blk);
    loop_run_calls(blk_loop);
}

static struct loop *con_loop;

static size_t drain(int fd)
{
    static uint8_t buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    return total;
}

static int unread(int fd)
{
    int n = 0;
    check(ioctl(fd, FIONREAD, &n) == 0);
    return n;
}

static void run_console(const struct fuzz_hdr *h)
{
    if (!con_loop) {
        con_loop = loop_new(NULL);
        check(con_loop != NULL);
    }
    bool rx = h->seed & 1;
    unsigned qi = rx ? VIRTIO_CONSOLE_RXQ : VIRTIO_CONSOLE_TXQ;
    int in[2], out[2];
    check(pipe2(in, O_NONBLOCK | O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    struct char_backend *be = char_backend_open_fds(in[0], out[1], false);
    char_backend_attach(be, con_loop, NULL, NULL);
    struct virtio_console *con = virtio_console_new(&gm, con_loop, be, 80, 25);
    struct virtio_device *v = &con->vdev;
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1);
    if (h->mode & FUZZ_EVENT_IDX)
        features |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    if (h->mode & FUZZ_INDIRECT)
        features |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)features);
    virtio_set_driver_features(v, 1, (uint32_t)(features >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, qi, h->size);
    virtio_queue_set_desc(v, qi, h->desc);
    virtio_queue_set_avail(v, qi, h->avail);
    virtio_queue_set_used(v, qi, h->used);
    int enabled = virtio_queue_enable(v, qi);
    if (rx) {
        /* Host input of a length the seed picks. */
        static uint8_t bytes[4096];
        memset(bytes, 'i', sizeof(bytes));
        check(write(in[1], bytes, 1 + h->seed % sizeof(bytes)) > 0);
    }
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    loop_run_calls(con_loop);
    virtio_queue_run(v, qi);
    check(enabled == 0 || (virtio_get_status(v) & VIRTIO_STATUS_NEEDS_RESET));
    size_t written = 0;
    if (rx) {
        /* Input flows until it is all in the guest, the guest has no buffer
         * left, or the device broke. */
        while (unread(in[0]) > 0 && !con->rx_blocked && !(virtio_get_status(v) & VIRTIO_STATUS_NEEDS_RESET))
            check(loop_run_once(con_loop) == 0);
    } else {
        /* Every chain taken is written (the reader drains the pipe). */
        while (con->tx_chain) {
            written += drain(out[0]);
            check(loop_run_once(con_loop) == 0);
        }
        loop_run_calls(con_loop);
    }
    written += drain(out[0]);
    /* Never more than the guest's RAM per chain it could have offered. */
    check(written <= (size_t)FUZZ_RAM * (h->size ? h->size : 1));
    virtio_set_status(v, 0);
    loop_run_calls(con_loop);
    check(virtio_get_status(v) == 0);
    virtio_console_free(con);
    loop_run_calls(con_loop);
    char_backend_close(be);
    close(in[1]);
    close(out[0]);
}


static void run_net(const struct fuzz_hdr *h)
{
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    struct tap *t = tap_from_socket(&sv[0], 1);
    struct virtio_net_params p = { .tap = t, .mac = { 2, 0, 0, 0, 0, 1 } };
    struct virtio_net *net = virtio_net_new(&gm, NULL, &p);
    struct virtio_device *v = &net->vdev;
    unsigned which = h->seed % 3, qi = which;       /* rx 0, tx 1, control 2 */
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) |
                        VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) | VIRTIO_BIT(VIRTIO_NET_F_CSUM) |
                        VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
                        VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
    if (h->seed & 4)
        features |= VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    if (h->mode & FUZZ_EVENT_IDX)
        features |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    if (h->mode & FUZZ_INDIRECT)
        features |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)features);
    virtio_set_driver_features(v, 1, (uint32_t)(features >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    check(virtio_get_status(v) & VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, qi, h->size);
    virtio_queue_set_desc(v, qi, h->desc);
    virtio_queue_set_avail(v, qi, h->avail);
    virtio_queue_set_used(v, qi, h->used);
    int enabled = virtio_queue_enable(v, qi);
    unsigned sent = 0;
    if (which == 0) {
        /* Frames from the host, of lengths the seed picks (some runts). */
        static uint8_t frame[4096];
        memset(frame, 'f', sizeof(frame));
        for (unsigned i = 0; i < 1u + (h->seed >> 3) % 4u; i++) {
            size_t len = 1 + (h->seed * 31u + i * 977u) % sizeof(frame);
            check(send(sv[1], frame, len, 0) == (ssize_t)len);
            sent++;
        }
    }
    /* Without a loop, DRIVER_OK runs the queues at once; run once more as a
     * kick would. */
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    virtio_queue_run(v, qi);
    check(enabled == 0 || (virtio_get_status(v) & VIRTIO_STATUS_NEEDS_RESET));
    if (which == 0)
        check(net->stats.rx_frames + net->stats.rx_dropped + (net->pairs[0].pending ? 1 : 0) <= sent);
    if (which == 1) {
        /* One message per frame transmitted, each with its header. */
        static uint8_t buf[1 << 17];
        unsigned got = 0;
        ssize_t r;
        while ((r = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
            check(r >= VIRTIO_NET_HDR_LEN);
            got++;
        }
        check(got == net->stats.tx_frames);
    }
    check(net->curr_pairs == 1 && net->offloads == (net->offloads & (TAP_OFFLOAD_CSUM)));
    virtio_set_status(v, 0);
    check(virtio_get_status(v) == 0 && net->offloads == 0 && net->pairs[0].pending == 0);
    virtio_net_free(net);
    tap_close(t);
    close(sv[0]);
    close(sv[1]);
}

static uint64_t mem_cfg(struct virtio_device *v, uint32_t off)
{
    uint64_t x = 0;
    virtio_config_read(v, off, &x, 8);
    return x;
}

/* plugged_size agrees with the region's blocks, within requested_size and
 * the usable region, which is block-aligned and within the region. */
static uint64_t mem_check(struct virtio_mem *m)
{
    uint64_t blocks = guest_memory_count_plugged(&gm, FUZZ_MEM_BASE, FUZZ_MEM_BLOCKS * FUZZ_MEM_BLOCK);
    uint64_t plugged = mem_cfg(&m->vdev, VIRTIO_MEM_CFG_PLUGGED_SIZE);
    uint64_t usable = mem_cfg(&m->vdev, VIRTIO_MEM_CFG_USABLE_SIZE);
    check(plugged == blocks * FUZZ_MEM_BLOCK && plugged == virtio_mem_plugged(m));
    check(plugged <= virtio_mem_requested(m));
    check(usable % FUZZ_MEM_BLOCK == 0 && usable <= FUZZ_MEM_BLOCKS * FUZZ_MEM_BLOCK &&
          usable >= virtio_mem_requested(m));
    check(guest_memory_count_plugged(&gm, FUZZ_MEM_BASE + usable, FUZZ_MEM_BLOCKS * FUZZ_MEM_BLOCK - usable) == 0 ||
          usable == FUZZ_MEM_BLOCKS * FUZZ_MEM_BLOCK);
    return plugged;
}

static void run_mem(const struct fuzz_hdr *h)
{
    struct virtio_mem *m = virtio_mem_new(&gm, NULL, "fuzz", (h->seed % 33) * FUZZ_MEM_BLOCK);
    struct virtio_device *v = &m->vdev;
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE);
    if (h->mode & FUZZ_EVENT_IDX)
        features |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    if (h->mode & FUZZ_INDIRECT)
        features |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)features);
    virtio_set_driver_features(v, 1, (uint32_t)(features >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, 0, h->size);
    virtio_queue_set_desc(v, 0, h->desc);
    virtio_queue_set_avail(v, 0, h->avail);
    virtio_queue_set_used(v, 0, h->used);
    int enabled = virtio_queue_enable(v, 0);
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    virtio_queue_notify(v, 0);
    check(enabled == 0 || (virtio_get_status(v) & VIRTIO_STATUS_NEEDS_RESET));
    uint64_t plugged = mem_check(m);
    /* A lower request does not unplug anything by itself. */
    check(virtio_mem_set_requested(m, plugged / 2 & ~(FUZZ_MEM_BLOCK - 1)) == 0);
    virtio_queue_notify(v, 0);
    check(virtio_mem_plugged(m) <= plugged);
    plugged = virtio_mem_plugged(m);

    struct state_writer *w = state_writer_new();
    check(virtio_device_save(v, w) == 0);
    GBytes *b = state_writer_finish(w);
    struct virtio_mem *copy = virtio_mem_new(&gm, NULL, "copy", 0);
    struct state_reader *r = state_reader_new(b, NULL);
    check(r != NULL && virtio_device_load(&copy->vdev, r, NULL) == 0);
    check(virtio_mem_plugged(copy) == plugged);
    state_reader_free(r);
    g_bytes_unref(b);
    virtio_mem_free(copy);

    virtio_set_status(v, 0);
    check(virtio_get_status(v) == 0 && virtio_mem_plugged(m) == plugged);
    virtio_mem_free(m);
    /* The next input starts with nothing plugged (and other modes' chains
     * can never reach the region). */
    check(guest_memory_set_plugged(&gm, FUZZ_MEM_BASE, FUZZ_MEM_BLOCKS * FUZZ_MEM_BLOCK, false) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!gm.base) {
        log_threshold = LOG_ERROR;      /* a broken ring is the expected case: no line per input */
        if (guest_memory_create(&gm, FUZZ_RAM, false, false, NULL) < 0 ||
            guest_memory_add_hotplug(&gm, FUZZ_MEM_BASE, FUZZ_MEM_BLOCKS * FUZZ_MEM_BLOCK, FUZZ_MEM_BLOCK, NULL) < 0)
            abort();
    }
    struct fuzz_hdr h = { 0 };
    memcpy(&h, data, MIN(size, sizeof(h)));
    size_t n = size > sizeof(h) ? MIN(size - sizeof(h), (size_t)FUZZ_RAM) : 0;
    if (n)
        memcpy(gm.base, data + sizeof(h), n);
    memset(gm.base + n, 0, FUZZ_RAM - n);
    if (h.mode & FUZZ_BLK)
        run_blk(&h);
    else if (h.mode & FUZZ_CONSOLE)
        run_console(&h);
    else if (h.mode & FUZZ_NET)
        run_net(&h);
    else if (h.mode & FUZZ_MEM)
        run_mem(&h);
    else if (h.mode & FUZZ_DEVICE)
        run_rng(&h);
    else
        run_queue(&h);
    return 0;
}
