#include "devices/virtio/console.h"

#include <errno.h>
#include <string.h>

#include "devices/char_backend.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/state.h"

#define CONSOLE_STATE_VERSION 1

static bool device_live(struct virtio_console *con, unsigned qi)
{
    uint8_t st = __atomic_load_n(&con->vdev.status, __ATOMIC_ACQUIRE);
    return (st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET) &&
           virtio_queue_get_enable(&con->vdev, qi);
}

/* ---- transmitq: guest → host ---- */

static void tx_done(void *opaque)
{
    struct virtio_console *con = opaque;
    struct virtq_chain *c = con->tx_chain;
    con->tx_chain = NULL;
    if (c && device_live(con, VIRTIO_CONSOLE_TXQ)) {
        virtq_push(virtio_vq(&con->vdev, VIRTIO_CONSOLE_TXQ), c, 0);
        virtio_notify_queue(&con->vdev, VIRTIO_CONSOLE_TXQ);
    }
    g_free(c);
    virtio_queue_run(&con->vdev, VIRTIO_CONSOLE_TXQ);
}

static int tx_chain(struct virtio_device *vdev, unsigned qi, struct virtq_chain *c)
{
    struct virtio_console *con = vdev->opaque;
    /* 5.3.6.1: the transmitq holds device-readable buffers only. */
    if (c->n_in)
        return -EINVAL;
    struct iovec iov[c->n_out ? c->n_out : 1];
    for (unsigned i = 0; i < c->n_out; i++)
        iov[i] = (struct iovec){ c->bufs[i].hva, c->bufs[i].len };
    if (char_backend_write_iov(con->be, iov, c->n_out, tx_done, con) == 0) {
        virtq_push(virtio_vq(vdev, qi), c, 0);
        return VIRTIO_CHAIN_PUSHED;
    }
    /* Held until written; the guest waits meanwhile. */
    con->tx_chain = virtq_chain_dup(c);
    return VIRTIO_CHAIN_HOLD;
}

static int tx_handle(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_console *con = vdev->opaque;
    if (con->tx_chain)
        return 0;       /* tx_done runs us again */
    return virtio_queue_drain(vdev, qi, tx_chain);
}

/* ---- receiveq: host → guest (backend callbacks, loop thread) ---- */

/* Pops the next receive chain; NULL when there is none or the guest broke
 * the queue (the device is then broken). */
static bool rx_pop(struct virtio_console *con, struct virtq_chain *c)
{
    if (!device_live(con, VIRTIO_CONSOLE_RXQ))
        return false;
    struct virtqueue *vq = virtio_vq(&con->vdev, VIRTIO_CONSOLE_RXQ);
    int r = virtq_pop(vq, c);
    if (r > 0 && c->n_out)
        r = -EINVAL;    /* 5.3.6.1: device-writable buffers only */
    if (r < 0)
        virtio_device_error(&con->vdev, VIRTIO_CONSOLE_RXQ, r);
    return r > 0;
}

static size_t rx_can_receive(void *opaque)
{
    struct virtio_console *con = opaque;
    struct virtqueue *vq = virtio_vq(&con->vdev, VIRTIO_CONSOLE_RXQ);
    struct virtq_chain c;
    bool got = rx_pop(con, &c);
    /* Out of buffers: ask for a kick when the driver adds one (with
     * EVENT_IDX, avail_event must say where we stopped, or the driver may
     * never kick again), then look once more for one added meanwhile. */
    if (!got && device_live(con, VIRTIO_CONSOLE_RXQ) && virtq_enable_notify(vq))
        got = rx_pop(con, &c);
    if (!got) {
        con->rx_blocked = true;
        return 0;
    }
    virtq_unpop(vq);
    return (size_t)c.in_len;
}

static void rx_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct virtio_console *con = opaque;
    struct virtqueue *vq = virtio_vq(&con->vdev, VIRTIO_CONSOLE_RXQ);
    struct virtq_chain c;
    /* can_receive just saw this chain; a guest that rewrote it meanwhile
     * gets what still fits. */
    if (!rx_pop(con, &c))
        return;
    size_t n = virtq_chain_write(vq, &c, 0, buf, len);
    virtq_push(vq, &c, (uint32_t)n);
    virtio_notify_queue(&con->vdev, VIRTIO_CONSOLE_RXQ);
}

/* A kick on the receiveq: new buffers, so input may flow again. */
static int rx_handle(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_console *con = vdev->opaque;
    if (con->rx_blocked) {
        con->rx_blocked = false;
        char_backend_accept_input(con->be);
    }
    return 0;
}

/* ---- device ops ---- */

static void console_config_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    struct virtio_console *con = vdev->opaque;
    memcpy(buf, con->config + off, len);
}

static void drop_tx(struct virtio_console *con)
{
    char_backend_write_cancel(con->be, con);
    g_clear_pointer(&con->tx_chain, g_free);
}

static void console_reset(struct virtio_device *vdev)
{
    drop_tx(vdev->opaque);
}

static void console_queue_reset(struct virtio_device *vdev, unsigned qi)
{
    if (qi == VIRTIO_CONSOLE_TXQ)
        drop_tx(vdev->opaque);
}

/* A write in flight finishes (or is dropped by its backend) before the
 * rings are saved, so no chain is held in a snapshot. */
static void console_quiesce(struct virtio_device *vdev)
{
    struct virtio_console *con = vdev->opaque;
    while (con->tx_chain && vdev->loop && loop_run_once(vdev->loop) == 0)
        ;
}

static int console_save(struct virtio_device *vdev, struct state_writer *w)
{
    struct virtio_console *con = vdev->opaque;
    state_begin_section(w, "virtio-console", CONSOLE_STATE_VERSION);
    state_put_bytes(w, con->config, sizeof(con->config));
    state_end_section(w);
    return 0;
}

static int console_load(struct virtio_device *vdev, struct state_reader *r)
{
    struct virtio_console *con = vdev->opaque;
    uint32_t version;
    uint8_t cfg[VIRTIO_CONSOLE_CONFIG_SIZE];
    if (state_open_section(r, "virtio-console", CONSOLE_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    state_get_bytes(r, cfg, sizeof(cfg));
    if (state_close_section(r, NULL) < 0)
        return -EINVAL;
    memcpy(con->config, cfg, sizeof(cfg));
    drop_tx(con);
    /* Whatever the guest posted before the snapshot may take input now. */
    con->rx_blocked = false;
    char_backend_accept_input(con->be);
    return 0;
}

static const struct virtio_device_ops console_ops = {
    .name = "virtio-console",
    .config_read = console_config_read,
    .reset = console_reset,
    .queue_reset = console_queue_reset,
    .quiesce = console_quiesce,
    .save = console_save,
    .load = console_load,
};

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

struct virtio_console *virtio_console_new(struct guest_memory *gm, struct loop *loop, struct char_backend *be,
                                          uint16_t cols, uint16_t rows)
{
    struct virtio_console *con = g_new0(struct virtio_console, 1);
    con->be = be;
    uint64_t features = cols && rows ? VIRTIO_BIT(VIRTIO_CONSOLE_F_SIZE) : 0;
    put_le16(con->config + VIRTIO_CONSOLE_CFG_COLS, cols);
    put_le16(con->config + VIRTIO_CONSOLE_CFG_ROWS, rows);
    con->config[VIRTIO_CONSOLE_CFG_MAX_PORTS] = 1;
    virtio_device_init(&con->vdev, VIRTIO_ID_CONSOLE, &console_ops, con, gm, loop, features,
                       VIRTIO_CONSOLE_CONFIG_SIZE, 2);
    virtio_queue_init(&con->vdev, VIRTIO_CONSOLE_RXQ, VIRTIO_CONSOLE_QUEUE_SIZE, rx_handle);
    virtio_queue_init(&con->vdev, VIRTIO_CONSOLE_TXQ, VIRTIO_CONSOLE_QUEUE_SIZE, tx_handle);
    con->rx_blocked = true;
    struct char_frontend fe = { rx_can_receive, rx_receive, con };
    char_backend_set_frontend(be, &fe);
    return con;
}

void virtio_console_resize(struct virtio_console *con, uint16_t cols, uint16_t rows)
{
    if (!(con->vdev.device_features & VIRTIO_BIT(VIRTIO_CONSOLE_F_SIZE)) || !cols || !rows)
        return;
    uint8_t size[4];
    put_le16(size, cols);
    put_le16(size + 2, rows);
    g_mutex_lock(&con->vdev.lock);
    bool changed = memcmp(con->config + VIRTIO_CONSOLE_CFG_COLS, size, sizeof(size)) != 0;
    memcpy(con->config + VIRTIO_CONSOLE_CFG_COLS, size, sizeof(size));
    g_mutex_unlock(&con->vdev.lock);
    if (changed)
        virtio_config_changed(&con->vdev);
}

void virtio_console_free(struct virtio_console *con)
{
    if (!con)
        return;
    char_backend_set_frontend(con->be, NULL);
    drop_tx(con);
    virtio_device_destroy(&con->vdev);
    g_free(con);
}
