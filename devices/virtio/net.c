#include "devices/virtio/net.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/state.h"

#define NET_STATE_VERSION 1

static unsigned ctrl_queue(const struct virtio_net *net)
{
    return 2 * net->max_pairs;
}

static void put16(uint8_t *p, uint16_t v)
{
    v = GUINT16_TO_LE(v);
    memcpy(p, &v, 2);
}

/* ---- receive ---- */

static void on_tap_readable(void *opaque, int fd, uint32_t revents);

static void poll_start(struct virtio_net_pair *pp)
{
    struct loop *l = pp->net->vdev.loop;
    if (pp->polling || !l)
        return;
    if (loop_add_fd(l, pp->fd, POLLIN, on_tap_readable, pp) == 0)
        pp->polling = true;
}

static void poll_stop(struct virtio_net_pair *pp)
{
    struct loop *l = pp->net->vdev.loop;
    if (!pp->polling || !l)
        return;
    loop_remove_fd(l, pp->fd);
    pp->polling = false;
}

/* Is pair pp's receive queue live (what virtio_queue_run checks) and the
 * pair in use? */
static bool rx_live(struct virtio_net_pair *pp)
{
    struct virtio_net *net = pp->net;
    uint8_t st = virtio_get_status(&net->vdev);
    return (st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET) &&
           virtio_queue_get_enable(&net->vdev, 2 * pp->index) && pp->index < net->curr_pairs;
}

static void on_tap_readable(void *opaque, int fd, uint32_t revents)
{
    struct virtio_net_pair *pp = opaque;
    if (!rx_live(pp)) {
        poll_stop(pp);
        return;
    }
    virtio_queue_run(&pp->net->vdev, 2 * pp->index);
}

/* Puts the frame in pp->buf into the guest's receive queue. Returns 1 when
 * it was delivered (or dropped: it can never fit), 0 when the guest has no
 * buffers for it now (nothing consumed), -errno for a hostile chain. */
static int rx_deliver(struct virtio_net *net, struct virtio_net_pair *pp, struct virtqueue *vq)
{
    size_t len = pp->pending;
    struct virtq_chain c;
    int r;
    if (!virtio_has_feature(&net->vdev, VIRTIO_NET_F_MRG_RXBUF)) {
        r = virtq_pop(vq, &c);
        if (r <= 0)
            return r;
        if (c.n_out || c.in_len < VIRTIO_NET_HDR_LEN)
            return -EINVAL;
        if (c.in_len < len) {
            /* The driver's buffers are too small for this frame (5.1.6.3.1
             * wants room for the largest one it negotiated): drop it. */
            virtq_unpop(vq);
            net->stats.rx_dropped++;
            return 1;
        }
        put16(pp->buf + 10, 1);     /* num_buffers (5.1.6.4) */
        virtq_chain_write(vq, &c, 0, pp->buf, len);
        virtq_push(vq, &c, (uint32_t)len);
        net->stats.rx_frames++;
        return 1;
    }
    size_t off = 0;
    uint16_t k = 0;
    while (off < len) {
        r = virtq_pop(vq, &c);
        if (r <= 0) {
            /* Not enough buffers for the whole frame: give back what was
             * taken (none of it is published) and wait for more. */
            for (uint16_t i = 0; i < k; i++)
                virtq_unpop(vq);
            return r;
        }
        if (c.n_out || c.in_len < (k == 0 ? VIRTIO_NET_HDR_LEN : 1))
            return -EINVAL;
        size_t n = MIN((size_t)c.in_len, len - off);
        virtq_chain_write(vq, &c, 0, pp->buf + off, n);
        if (k == 0) {
            /* bufs is overwritten by the next pop; num_buffers goes here last. */
            pp->first_chain = c;
            memcpy(pp->first, c.bufs, sizeof(*c.bufs) * (c.n_in));
            pp->first_chain.bufs = pp->first;
        }
        virtq_fill(vq, &c, (uint32_t)n, k);
        k++;
        off += n;
    }
    uint8_t nb[2];
    put16(nb, k);
    virtq_chain_write(vq, &pp->first_chain, 10, nb, 2);
    virtq_flush(vq, k);
    net->stats.rx_frames++;
    return 1;
}

static int rx_handle(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_net *net = vdev->opaque;
    struct virtio_net_pair *pp = &net->pairs[qi / 2];
    struct virtqueue *vq = virtio_vq(vdev, qi);
    if (pp->index >= net->curr_pairs)
        return 0;
    unsigned budget = VIRTIO_NET_RX_BUDGET;
    bool delivered = false;
    virtq_disable_notify(vq);
    for (;;) {
        if (!pp->pending) {
            if (!budget) {
                /* More may be waiting; the rest after the loop's other work. */
                virtio_queue_defer(vdev, qi);
                break;
            }
            ssize_t n = read(pp->fd, pp->buf, VIRTIO_NET_RX_BUF);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                if (errno != EAGAIN && !pp->read_error_logged) {
                    pp->read_error_logged = true;
                    log_warn("virtio-net: tap %s queue %u: read: %s", net->tap->name, pp->index,
                             g_strerror(errno));
                }
                /* EAGAIN: wait for the tap. Another error: the next kick
                 * or readiness tries again. */
                if (errno == EAGAIN)
                    poll_start(pp);
                else
                    poll_stop(pp);
                break;
            }
            budget--;
            if ((size_t)n <= VIRTIO_NET_HDR_LEN) {
                net->stats.rx_dropped++;
                continue;
            }
            pp->pending = (size_t)n;
        }
        int r = rx_deliver(net, pp, vq);
        if (r < 0)
            return r;
        if (r == 0) {
            /* No room: ask for a kick when the driver adds buffers (past
             * those already there, which may be too few for a merged
             * frame), and stop reading the tap meanwhile. */
            if (virtq_enable_notify_more(vq)) {
                virtq_disable_notify(vq);
                continue;
            }
            poll_stop(pp);
            break;
        }
        pp->pending = 0;
        delivered = true;
    }
    if (delivered)
        virtio_notify_queue(vdev, qi);
    return 0;
}

/* ---- transmit ---- */

/* May this header go to the tap under the negotiated features? */
static bool tx_header_ok(struct virtio_net *net, const uint8_t *h)
{
    struct virtio_device *v = &net->vdev;
    if ((h[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !virtio_has_feature(v, VIRTIO_NET_F_CSUM))
        return false;
    uint8_t gso = h[1];
    if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !virtio_has_feature(v, VIRTIO_NET_F_HOST_ECN))
        return false;
    switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
    case VIRTIO_NET_HDR_GSO_NONE:
        return !(gso & VIRTIO_NET_HDR_GSO_ECN);
    case VIRTIO_NET_HDR_GSO_TCPV4:
        return virtio_has_feature(v, VIRTIO_NET_F_HOST_TSO4);
    case VIRTIO_NET_HDR_GSO_TCPV6:
        return virtio_has_feature(v, VIRTIO_NET_F_HOST_TSO6);
    default:
        return false;
    }
}

static void tx_one(struct virtio_net *net, struct virtio_net_pair *pp, const struct virtq_chain *c)
{
    uint8_t h[VIRTIO_NET_HDR_LEN];
    virtq_chain_read(c, 0, h, sizeof(h));
    if (!tx_header_ok(net, h)) {
        net->stats.tx_dropped++;
        return;
    }
    for (unsigned i = 0; i < c->n_out; i++)
        net->iov[i] = (struct iovec){ c->bufs[i].hva, c->bufs[i].len };
    ssize_t n;
    do
        n = writev(pp->fd, net->iov, (int)c->n_out);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        /* A full tap queue (EAGAIN) drops, as a wire would; anything
         * else is the frame's fault (the tap checks the header too). */
        net->stats.tx_dropped++;
        if (errno != EAGAIN && !net->tx_error_logged) {
            net->tx_error_logged = true;
            log_info("virtio-net: tap %s: a transmitted frame was refused: %s", net->tap->name, g_strerror(errno));
        }
        return;
    }
    net->stats.tx_frames++;
}

static int tx_chain(struct virtio_device *vdev, unsigned qi, struct virtq_chain *c)
{
    struct virtio_net *net = vdev->opaque;
    struct virtio_net_pair *pp = &net->pairs[qi / 2];
    /* 5.1.6.2: header + frame, device-readable only. */
    if (c->out_len < VIRTIO_NET_HDR_LEN || c->n_in)
        return -EINVAL;
    if (pp->index < net->curr_pairs)
        tx_one(net, pp, c);
    else
        net->stats.tx_dropped++;
    virtq_push(virtio_vq(vdev, qi), c, 0);
    return VIRTIO_CHAIN_PUSHED;
}

static int tx_handle(struct virtio_device *vdev, unsigned qi)
{
    return virtio_queue_drain(vdev, qi, tx_chain);
}

/* ---- control ---- */

static unsigned guest_offloads_to_tap(uint64_t f)
{
    unsigned t = 0;
    if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)) {
        t |= TAP_OFFLOAD_CSUM;
        if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4))
            t |= TAP_OFFLOAD_TSO4;
        if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6))
            t |= TAP_OFFLOAD_TSO6;
        if ((t & (TAP_OFFLOAD_TSO4 | TAP_OFFLOAD_TSO6)) && (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN)))
            t |= TAP_OFFLOAD_ECN;
    }
    return t;
}

#define GUEST_OFFLOAD_BITS (VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) | \
                            VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) | \
                            VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO))

static void apply_offloads(struct virtio_net *net, unsigned tap_flags)
{
    int r = tap_set_offload(net->tap, tap_flags);
    if (r < 0) {
        log_warn("virtio-net: tap %s: TUNSETOFFLOAD 0x%x: %s; the tap keeps its previous offloads",
                 net->tap->name, tap_flags, g_strerror(-r));
        return;
    }
    net->offloads = tap_flags;
}

/* Makes pairs [0, n) the active ones. Loop thread. */
static void set_pairs(struct virtio_net *net, unsigned n)
{
    for (unsigned i = 0; i < net->max_pairs; i++) {
        struct virtio_net_pair *pp = &net->pairs[i];
        int r = tap_set_queue_enabled(net->tap, i, i < n);
        if (r < 0)
            log_warn("virtio-net: tap %s: queue %u: TUNSETQUEUE: %s", net->tap->name, i, g_strerror(-r));
        if (i >= n) {
            poll_stop(pp);
            pp->pending = 0;
        }
    }
    unsigned old = net->curr_pairs;
    net->curr_pairs = n;
    /* Newly active pairs start receiving (and transmitting what waits). */
    for (unsigned i = old; i < n; i++) {
        virtio_queue_defer(&net->vdev, 2 * i);
        virtio_queue_defer(&net->vdev, 2 * i + 1);
    }
}

static uint8_t ctrl_command(struct virtio_net *net, const struct virtq_chain *c)
{
    struct virtio_device *v = &net->vdev;
    uint8_t cmd[2];
    virtq_chain_read(c, 0, cmd, 2);
    uint64_t dlen = c->out_len - 2;
    switch (cmd[0]) {
    case VIRTIO_NET_CTRL_RX: {
        if (!virtio_has_feature(v, VIRTIO_NET_F_CTRL_RX) || dlen != 1 || cmd[1] > VIRTIO_NET_CTRL_RX_ALLMULTI)
            return VIRTIO_NET_ERR;
        uint8_t on;
        virtq_chain_read(c, 2, &on, 1);
        if (cmd[1] == VIRTIO_NET_CTRL_RX_PROMISC)
            net->promisc = !!on;
        else
            net->allmulti = !!on;
        return VIRTIO_NET_OK;
    }
    case VIRTIO_NET_CTRL_MAC: {
        if (!virtio_has_feature(v, VIRTIO_NET_F_CTRL_RX) || cmd[1] != VIRTIO_NET_CTRL_MAC_TABLE_SET)
            return VIRTIO_NET_ERR;
        /* Two tables, unicast then multicast: le32 entries + 6 bytes each. */
        uint64_t off = 2;
        for (int t = 0; t < 2; t++) {
            uint32_t entries;
            if (virtq_chain_read(c, off, &entries, 4) != 4)
                return VIRTIO_NET_ERR;
            off += 4 + 6ULL * GUINT32_FROM_LE(entries);
            if (off > c->out_len)
                return VIRTIO_NET_ERR;
        }
        return off == c->out_len ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
    }
    case VIRTIO_NET_CTRL_MQ: {
        uint16_t n;
        if (!virtio_has_feature(v, VIRTIO_NET_F_MQ) || cmd[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || dlen != 2)
            return VIRTIO_NET_ERR;
        virtq_chain_read(c, 2, &n, 2);
        n = GUINT16_FROM_LE(n);
        if (n < 1 || n > net->max_pairs)
            return VIRTIO_NET_ERR;
        set_pairs(net, n);
        return VIRTIO_NET_OK;
    }
    case VIRTIO_NET_CTRL_ANNOUNCE:
        /* 5.1.6.5.4: the ack clears S_ANNOUNCE before the buffer is used. */
        if (!virtio_has_feature(v, VIRTIO_NET_F_GUEST_ANNOUNCE) || cmd[1] != VIRTIO_NET_CTRL_ANNOUNCE_ACK || dlen)
            return VIRTIO_NET_ERR;
        if (__atomic_exchange_n(&net->announce, false, __ATOMIC_ACQ_REL)) {
            net->stats.announce_acks++;
            log_info("virtio-net: tap %s: the guest sent its gratuitous packets (ANNOUNCE_ACK)", net->tap->name);
        }
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS: {
        uint64_t f;
        if (!virtio_has_feature(v, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) ||
            cmd[1] != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || dlen != 8)
            return VIRTIO_NET_ERR;
        virtq_chain_read(c, 2, &f, 8);
        f = GUINT64_FROM_LE(f);
        /* 5.1.6.5.6.2: only offloads that were negotiated. */
        if (f & ~(v->driver_features & GUEST_OFFLOAD_BITS))
            return VIRTIO_NET_ERR;
        apply_offloads(net, guest_offloads_to_tap(f));
        return VIRTIO_NET_OK;
    }
    default:
        return VIRTIO_NET_ERR;
    }
}

static int ctrl_chain(struct virtio_device *vdev, unsigned qi, struct virtq_chain *c)
{
    struct virtio_net *net = vdev->opaque;
    struct virtqueue *vq = virtio_vq(vdev, qi);
    /* 5.1.6.5: class and command readable, the ack writable. */
    if (c->out_len < 2 || c->in_len < 1)
        return -EINVAL;
    uint8_t ack = ctrl_command(net, c);
    virtq_chain_write(vq, c, 0, &ack, 1);
    virtq_push(vq, c, 1);
    return VIRTIO_CHAIN_PUSHED;
}

static int ctrl_handle(struct virtio_device *vdev, unsigned qi)
{
    return virtio_queue_drain(vdev, qi, ctrl_chain);
}

/* ---- device ops ---- */

static void net_config_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    struct virtio_net *net = vdev->opaque;
    uint8_t c[VIRTIO_NET_CONFIG_SIZE];
    memcpy(c, net->config, sizeof(c));
    if (__atomic_load_n(&net->announce, __ATOMIC_ACQUIRE))
        put16(c + VIRTIO_NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
    memcpy(buf, c + off, len);
}

#define HAS(f, b) (((f) >> (b)) & 1)

/* 5.1.3.1: the feature dependencies. Accepted features set the tap's
 * offloads (what the driver can take in). vCPU thread, lock held. */
static bool net_features_ok(struct virtio_device *vdev, uint64_t f)
{
    struct virtio_net *net = vdev->opaque;
    if ((HAS(f, VIRTIO_NET_F_GUEST_TSO4) || HAS(f, VIRTIO_NET_F_GUEST_TSO6)) && !HAS(f, VIRTIO_NET_F_GUEST_CSUM))
        return false;
    if (HAS(f, VIRTIO_NET_F_GUEST_ECN) && !HAS(f, VIRTIO_NET_F_GUEST_TSO4) && !HAS(f, VIRTIO_NET_F_GUEST_TSO6))
        return false;
    if ((HAS(f, VIRTIO_NET_F_HOST_TSO4) || HAS(f, VIRTIO_NET_F_HOST_TSO6)) && !HAS(f, VIRTIO_NET_F_CSUM))
        return false;
    if (HAS(f, VIRTIO_NET_F_HOST_ECN) && !HAS(f, VIRTIO_NET_F_HOST_TSO4) && !HAS(f, VIRTIO_NET_F_HOST_TSO6))
        return false;
    if ((HAS(f, VIRTIO_NET_F_CTRL_RX) || HAS(f, VIRTIO_NET_F_MQ) || HAS(f, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) ||
         HAS(f, VIRTIO_NET_F_GUEST_ANNOUNCE)) &&
        !HAS(f, VIRTIO_NET_F_CTRL_VQ))
        return false;
    apply_offloads(net, guest_offloads_to_tap(f));
    return true;
}

static void net_reset(struct virtio_device *vdev)
{
    struct virtio_net *net = vdev->opaque;
    for (unsigned i = 0; i < net->max_pairs; i++) {
        poll_stop(&net->pairs[i]);
        net->pairs[i].pending = 0;
    }
    net->curr_pairs = 0;
    set_pairs(net, 1);
    apply_offloads(net, 0);
    net->promisc = net->allmulti = 0;
    __atomic_store_n(&net->announce, false, __ATOMIC_RELEASE);
}

static void net_queue_reset(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_net *net = vdev->opaque;
    if (qi < 2 * net->max_pairs && qi % 2 == 0)
        poll_stop(&net->pairs[qi / 2]);
}

static int net_save(struct virtio_device *vdev, struct state_writer *w)
{
    struct virtio_net *net = vdev->opaque;
    state_begin_section(w, "virtio-net", NET_STATE_VERSION);
    state_put_bytes(w, net->mac, 6);
    state_put_u16(w, (uint16_t)net->curr_pairs);
    state_put_u32(w, net->offloads);
    state_put_u8(w, net->promisc);
    state_put_u8(w, net->allmulti);
    state_end_section(w);
    return 0;
}

/* A RARP request (RFC 903: ARP's format with ethertype 0x8035, opcode 3)
 * from `mac` about itself, to everyone, padded to the 60-byte minimum
 * frame, behind a zero virtio-net header: what switches learn the sender's
 * port from. */
static size_t rarp_frame(uint8_t *p, const uint8_t mac[6])
{
    memset(p, 0, VIRTIO_NET_HDR_LEN + 60);
    uint8_t *e = p + VIRTIO_NET_HDR_LEN;
    memset(e, 0xff, 6);                 /* destination: broadcast */
    memcpy(e + 6, mac, 6);
    e[12] = 0x80, e[13] = 0x35;         /* ethertype RARP */
    uint8_t *a = e + 14;
    a[1] = 1;                           /* hardware: Ethernet */
    a[2] = 0x08;                        /* protocol: IPv4 */
    a[4] = 6, a[5] = 4;                 /* address lengths */
    a[7] = 3;                           /* reverse request */
    memcpy(a + 8, mac, 6);              /* sender hardware address; sender IP 0 */
    memcpy(a + 18, mac, 6);             /* target hardware address; target IP 0 */
    return VIRTIO_NET_HDR_LEN + 60;
}

void virtio_net_announce(struct virtio_net *net)
{
    struct virtio_device *v = &net->vdev;
    uint8_t f[VIRTIO_NET_HDR_LEN + 60];
    size_t n = rarp_frame(f, net->mac);
    ssize_t w;
    do
        w = write(net->pairs[0].fd, f, n);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)n)
        net->stats.rarps++;
    else
        log_info("virtio-net: tap %s: the RARP announce was not sent: %s", net->tap->name,
                 w < 0 ? g_strerror(errno) : "short write");
    uint8_t st = virtio_get_status(v);
    if (!(st & VIRTIO_STATUS_DRIVER_OK) || (st & VIRTIO_STATUS_NEEDS_RESET) ||
        !virtio_has_feature(v, VIRTIO_NET_F_GUEST_ANNOUNCE))
        return;
    __atomic_store_n(&net->announce, true, __ATOMIC_RELEASE);
    net->stats.announces++;
    virtio_config_changed(v);
}

static void resume_on_loop(void *opaque)
{
    struct virtio_net *net = opaque;
    /* The load is complete (features, status, the irqchip the config
     * interrupt goes to): tell the network where the guest is now. */
    virtio_net_announce(net);
    for (unsigned i = 0; i < net->curr_pairs; i++) {
        virtio_queue_run(&net->vdev, 2 * i);
        virtio_queue_run(&net->vdev, 2 * i + 1);
    }
}

static int net_load(struct virtio_device *vdev, struct state_reader *r)
{
    struct virtio_net *net = vdev->opaque;
    uint8_t mac[6], promisc = 0, allmulti = 0;
    uint16_t pairs = 0;
    uint32_t offloads = 0;
    if (state_open_section(r, "virtio-net", NET_STATE_VERSION, NULL, NULL) < 0 || state_get_bytes(r, mac, 6) < 0 ||
        state_get_u16(r, &pairs) < 0 || state_get_u32(r, &offloads) < 0 || state_get_u8(r, &promisc) < 0 ||
        state_get_u8(r, &allmulti) < 0 || state_close_section(r, NULL) < 0)
        return -EINVAL;
    /* The guest knows its MAC from config space. */
    if (memcmp(mac, net->mac, 6) != 0) {
        log_error("virtio-net: the saved MAC differs from this NIC's");
        return -EINVAL;
    }
    if (pairs < 1 || pairs > net->max_pairs || (offloads & ~0xfu))
        return -EINVAL;
    for (unsigned i = 0; i < net->max_pairs; i++) {
        poll_stop(&net->pairs[i]);
        net->pairs[i].pending = 0;
    }
    net->curr_pairs = 0;
    set_pairs(net, pairs);
    apply_offloads(net, offloads);
    net->promisc = promisc;
    net->allmulti = allmulti;
    /* The queues are live once the core has loaded its part. */
    if (vdev->loop)
        loop_call(vdev->loop, resume_on_loop, net);
    return 0;
}

static const struct virtio_device_ops net_ops = {
    .name = "virtio-net",
    .config_read = net_config_read,
    .features_ok = net_features_ok,
    .reset = net_reset,
    .queue_reset = net_queue_reset,
    .save = net_save,
    .load = net_load,
};

void virtio_net_mac_from_seed(const char *seed, uint8_t mac[6])
{
    g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(ck, (const guchar *)seed, (gssize)strlen(seed));
    uint8_t d[32];
    gsize dl = sizeof(d);
    g_checksum_get_digest(ck, d, &dl);
    memcpy(mac, d, 6);
    mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02);     /* locally administered, unicast */
}

struct virtio_net *virtio_net_new(struct guest_memory *gm, struct loop *loop, const struct virtio_net_params *p)
{
    struct virtio_net *net = g_new0(struct virtio_net, 1);
    net->tap = p->tap;
    net->max_pairs = p->tap->nr_fds;
    memcpy(net->mac, p->mac, 6);
    net->pairs = g_new0(struct virtio_net_pair, net->max_pairs);
    net->iov = g_new(struct iovec, VIRTIO_NET_QUEUE_SIZE);
    for (unsigned i = 0; i < net->max_pairs; i++) {
        struct virtio_net_pair *pp = &net->pairs[i];
        pp->net = net;
        pp->index = i;
        pp->fd = p->tap->fds[i];
        pp->buf = g_malloc(VIRTIO_NET_RX_BUF);
        pp->first = g_new(struct virtq_buf, VIRTIO_NET_QUEUE_SIZE);
    }
    uint8_t *c = net->config;
    memcpy(c + VIRTIO_NET_CFG_MAC, net->mac, 6);
    put16(c + VIRTIO_NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP);
    put16(c + VIRTIO_NET_CFG_MAX_PAIRS, (uint16_t)net->max_pairs);
    put16(c + VIRTIO_NET_CFG_MTU, (uint16_t)MIN(p->tap->mtu, 65535u));

    uint64_t f = VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
                 VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | VIRTIO_BIT(VIRTIO_NET_F_MTU) |
                 VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
                 VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) |
                 VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
                 VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |
                 VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) |
                 VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);
    if (net->max_pairs > 1)
        f |= VIRTIO_BIT(VIRTIO_NET_F_MQ);
    /* A backend that takes only complete frames (user networking): the
     * guest checksums and segments itself. */
    if (p->tap->complete_frames)
        f &= ~(VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
               VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN));
    virtio_device_init(&net->vdev, VIRTIO_ID_NET, &net_ops, net, gm, loop, f, VIRTIO_NET_CONFIG_SIZE,
                       2 * net->max_pairs + 1);
    for (unsigned i = 0; i < net->max_pairs; i++) {
        virtio_queue_init(&net->vdev, 2 * i, VIRTIO_NET_QUEUE_SIZE, rx_handle);
        virtio_queue_init(&net->vdev, 2 * i + 1, VIRTIO_NET_QUEUE_SIZE, tx_handle);
    }
    virtio_queue_init(&net->vdev, ctrl_queue(net), VIRTIO_NET_CTRL_QUEUE_SIZE, ctrl_handle);
    /* The tap outlives resets: start from its power-on state. */
    net->curr_pairs = 0;
    set_pairs(net, 1);
    apply_offloads(net, 0);
    return net;
}

void virtio_net_free(struct virtio_net *net)
{
    if (!net)
        return;
    for (unsigned i = 0; i < net->max_pairs; i++)
        poll_stop(&net->pairs[i]);
    virtio_device_destroy(&net->vdev);
    for (unsigned i = 0; i < net->max_pairs; i++) {
        g_free(net->pairs[i].buf);
        g_free(net->pairs[i].first);
    }
    g_free(net->pairs);
    g_free(net->iov);
    g_free(net);
}
