#include "devices/virtio/blk.h"

#include <errno.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/state.h"

#define BLK_STATE_VERSION 1
#define HDR_BYTES 16
#define SEG_BYTES 16

struct virtio_blk_req {
    struct virtio_blk *blk;
    unsigned qi;
    uint32_t epoch;
    struct virtq_chain *chain;
    struct iovec iov[];
};

/* iov = bytes [start, start + len) of the chain's readable (or writable)
 * part. Returns the number of entries; they cover len bytes when the part
 * is long enough (the callers check lengths first). */
static unsigned chain_iov(const struct virtq_chain *c, bool writable, uint64_t start, uint64_t len,
                          struct iovec *iov)
{
    unsigned first = writable ? c->n_out : 0, n = writable ? c->n_in : c->n_out, k = 0;
    for (unsigned i = first; i < first + n && len; i++) {
        const struct virtq_buf *b = &c->bufs[i];
        if (start >= b->len) {
            start -= b->len;
            continue;
        }
        uint64_t take = MIN((uint64_t)b->len - start, len);
        iov[k++] = (struct iovec){ b->hva + start, (size_t)take };
        len -= take;
        start = 0;
    }
    return k;
}

/* The status byte is the last writable byte (5.2.6); the whole writable
 * part is reported as used, which also marks it dirty. */
static void complete(struct virtio_blk *blk, unsigned qi, const struct virtq_chain *c, uint8_t status)
{
    struct virtqueue *vq = virtio_vq(&blk->vdev, qi);
    virtq_chain_write(vq, c, c->in_len - 1, &status, 1);
    virtq_push(vq, c, (uint32_t)c->in_len);
}

static void flush_notify(void *opaque)
{
    struct virtio_blk *blk = opaque;
    blk->notify_scheduled = false;
    for (unsigned i = 0; i < blk->vdev.num_queues; i++)
        if (blk->notify_pending[i]) {
            blk->notify_pending[i] = false;
            virtio_notify_queue(&blk->vdev, i);
        }
}

static void req_done(void *opaque, int res)
{
    struct virtio_blk_req *r = opaque;
    struct virtio_blk *blk = r->blk;
    uint8_t st = __atomic_load_n(&blk->vdev.status, __ATOMIC_ACQUIRE);
    /* A reset since the request was popped: its ring belongs to a new
     * driver session (or none), so the completion goes nowhere. */
    if (r->epoch == blk->epoch[r->qi] && (st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET)) {
        complete(blk, r->qi, r->chain, res == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
        blk->notify_pending[r->qi] = true;
        if (!blk->notify_scheduled) {
            blk->notify_scheduled = true;
            loop_after_batch(blk->vdev.loop, flush_notify, blk);
        }
    }
    g_free(r->chain);
    g_free(r);
}

static bool range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t nsect)
{
    return sector <= blk->capacity && nsect <= blk->capacity - sector;
}

/* Starts one request. Returns the status to complete it with now, or -1
 * when it went to the backend. */
static int start_request(struct virtio_blk *blk, unsigned qi, const struct virtq_chain *c)
{
    uint8_t hdr[HDR_BYTES];
    virtq_chain_read(c, 0, hdr, sizeof(hdr));
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    type = GUINT32_FROM_LE(type);
    sector = GUINT64_FROM_LE(sector);

    uint64_t out_data = c->out_len - HDR_BYTES, in_data = c->in_len - 1;
    struct virtio_blk_req *r = NULL;
    int e;
    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool in = type == VIRTIO_BLK_T_IN;
        uint64_t len = in ? in_data : out_data;
        /* Data only in the direction of the transfer. */
        if ((in ? out_data : in_data) != 0 || len % VIRTIO_BLK_SECTOR ||
            len > (uint64_t)VIRTIO_BLK_SIZE_MAX * VIRTIO_BLK_SEG_MAX ||
            !range_ok(blk, sector, len / VIRTIO_BLK_SECTOR))
            return VIRTIO_BLK_S_IOERR;
        if (!in && block_readonly(blk->bb))
            return VIRTIO_BLK_S_IOERR;
        r = g_malloc(sizeof(*r) + sizeof(struct iovec) * (c->n_out + c->n_in));
        unsigned n = chain_iov(c, in, in ? 0 : HDR_BYTES, len, r->iov);
        r->chain = virtq_chain_dup(c);
        r->blk = blk;
        r->qi = qi;
        r->epoch = blk->epoch[qi];
        uint64_t off = sector * VIRTIO_BLK_SECTOR;
        e = in ? block_readv(blk->bb, off, r->iov, n, req_done, r)
               : block_writev(blk->bb, off, r->iov, n, req_done, r);
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        r = g_new(struct virtio_blk_req, 1);
        r->chain = virtq_chain_dup(c);
        r->blk = blk;
        r->qi = qi;
        r->epoch = blk->epoch[qi];
        e = block_flush(blk->bb, req_done, r);
        break;
    case VIRTIO_BLK_T_GET_ID: {
        struct virtqueue *vq = virtio_vq(&blk->vdev, qi);
        size_t n = (size_t)MIN(in_data, (uint64_t)VIRTIO_BLK_ID_BYTES);
        virtq_chain_write(vq, c, 0, blk->serial, n);
        return VIRTIO_BLK_S_OK;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        bool discard = type == VIRTIO_BLK_T_DISCARD;
        if (!virtio_has_feature(&blk->vdev, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
            return VIRTIO_BLK_S_UNSUPP;
        if (out_data != SEG_BYTES || in_data != 0)
            return VIRTIO_BLK_S_IOERR;
        uint8_t seg[SEG_BYTES];
        virtq_chain_read(c, HDR_BYTES, seg, sizeof(seg));
        uint64_t ssec;
        uint32_t nsec, flags;
        memcpy(&ssec, seg, 8);
        memcpy(&nsec, seg + 8, 4);
        memcpy(&flags, seg + 12, 4);
        ssec = GUINT64_FROM_LE(ssec);
        nsec = GUINT32_FROM_LE(nsec);
        flags = GUINT32_FROM_LE(flags);
        /* 5.2.6.2: unknown flags, and unmap on a discard, are UNSUPP. */
        if (flags & ~(discard ? 0u : (uint32_t)VIRTIO_BLK_WZ_FLAG_UNMAP))
            return VIRTIO_BLK_S_UNSUPP;
        if (nsec > VIRTIO_BLK_MAX_DWZ_SECTORS || !range_ok(blk, ssec, nsec))
            return VIRTIO_BLK_S_IOERR;
        r = g_new(struct virtio_blk_req, 1);
        r->chain = virtq_chain_dup(c);
        r->blk = blk;
        r->qi = qi;
        r->epoch = blk->epoch[qi];
        uint64_t off = ssec * VIRTIO_BLK_SECTOR, len = (uint64_t)nsec * VIRTIO_BLK_SECTOR;
        e = discard ? block_discard(blk->bb, off, len, req_done, r)
                    : block_write_zeroes(blk->bb, off, len, flags & VIRTIO_BLK_WZ_FLAG_UNMAP, req_done, r);
        break;
    }
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
    if (e < 0) {
        g_free(r->chain);
        g_free(r);
        return VIRTIO_BLK_S_IOERR;
    }
    return -1;
}

static int blk_chain(struct virtio_device *vdev, unsigned qi, struct virtq_chain *c)
{
    struct virtio_blk *blk = vdev->opaque;
    /* Without a readable header and a writable status byte there is no way
     * to answer: the driver broke the protocol. */
    if (c->out_len < HDR_BYTES || c->in_len < 1)
        return -EPROTO;
    int st = start_request(blk, qi, c);
    if (st < 0)
        return VIRTIO_CHAIN_LATER;
    complete(blk, qi, c, (uint8_t)st);
    return VIRTIO_CHAIN_PUSHED;
}

static int blk_handle(struct virtio_device *vdev, unsigned qi)
{
    return virtio_queue_drain(vdev, qi, blk_chain);
}

static void blk_config_read(struct virtio_device *vdev, uint32_t off, void *buf, uint32_t len)
{
    struct virtio_blk *blk = vdev->opaque;
    memcpy(buf, blk->config + off, len);
}

static void blk_reset(struct virtio_device *vdev)
{
    struct virtio_blk *blk = vdev->opaque;
    for (unsigned i = 0; i < vdev->num_queues; i++)
        blk->epoch[i]++;
}

static void blk_queue_reset(struct virtio_device *vdev, unsigned qi)
{
    struct virtio_blk *blk = vdev->opaque;
    blk->epoch[qi]++;
}

static void blk_quiesce(struct virtio_device *vdev)
{
    struct virtio_blk *blk = vdev->opaque;
    block_drain(blk->bb);
}

static int blk_save(struct virtio_device *vdev, struct state_writer *w)
{
    struct virtio_blk *blk = vdev->opaque;
    state_begin_section(w, "virtio-blk", BLK_STATE_VERSION);
    state_put_u64(w, blk->capacity);
    state_end_section(w);
    return 0;
}

static int blk_load(struct virtio_device *vdev, struct state_reader *r)
{
    struct virtio_blk *blk = vdev->opaque;
    uint64_t cap;
    if (state_open_section(r, "virtio-blk", BLK_STATE_VERSION, NULL, NULL) < 0 || state_get_u64(r, &cap) < 0 ||
        state_close_section(r, NULL) < 0)
        return -EINVAL;
    /* The guest sized its disk from the saved capacity. */
    if (cap != blk->capacity) {
        log_error("virtio-blk: the disk has %" G_GUINT64_FORMAT " sectors, the saved state %" G_GUINT64_FORMAT,
                  blk->capacity, cap);
        return -EINVAL;
    }
    return 0;
}

static const struct virtio_device_ops blk_ops = {
    .name = "virtio-blk",
    .config_read = blk_config_read,
    .reset = blk_reset,
    .queue_reset = blk_queue_reset,
    .quiesce = blk_quiesce,
    .save = blk_save,
    .load = blk_load,
};

static void put32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, 4);
}

static void build_config(struct virtio_blk *blk, unsigned nq)
{
    uint8_t *c = blk->config;
    uint64_t cap = GUINT64_TO_LE(blk->capacity);
    uint32_t ss = block_sector_size(blk->bb);
    memcpy(c + VIRTIO_BLK_CFG_CAPACITY, &cap, 8);
    put32(c + VIRTIO_BLK_CFG_SIZE_MAX, VIRTIO_BLK_SIZE_MAX);
    put32(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX);
    put32(c + VIRTIO_BLK_CFG_BLK_SIZE, ss);
    c[VIRTIO_BLK_CFG_PHYS_EXP] = (uint8_t)block_physical_exp(blk->bb);
    uint16_t min_io = GUINT16_TO_LE(1), q = GUINT16_TO_LE((uint16_t)nq);
    memcpy(c + VIRTIO_BLK_CFG_MIN_IO, &min_io, 2);
    memcpy(c + VIRTIO_BLK_CFG_NUM_QUEUES, &q, 2);
    put32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DWZ_SECTORS);
    put32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1);
    put32(c + VIRTIO_BLK_CFG_DISCARD_ALIGN, ss / VIRTIO_BLK_SECTOR);
    put32(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_DWZ_SECTORS);
    put32(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, 1);
    c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
}

struct virtio_blk *virtio_blk_new(struct guest_memory *gm, struct loop *loop,
                                  const struct virtio_blk_params *p, GError **err)
{
    unsigned nq = p->num_queues ? p->num_queues : 1;
    if (nq > VIRTIO_BLK_MAX_QUEUES) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "--disk %s: num_queues=%u is more than %u",
                    p->disk.path, nq, VIRTIO_BLK_MAX_QUEUES);
        return NULL;
    }
    if (p->serial && strlen(p->serial) > VIRTIO_BLK_ID_BYTES) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "--disk %s: serial '%s' is longer than %d bytes",
                    p->disk.path, p->serial, VIRTIO_BLK_ID_BYTES);
        return NULL;
    }
    struct block_backend *bb = block_open(&p->disk, loop, err);
    if (!bb)
        return NULL;
    struct virtio_blk *blk = g_new0(struct virtio_blk, 1);
    blk->bb = bb;
    blk->capacity = block_size(bb) / VIRTIO_BLK_SECTOR;
    blk->epoch = g_new0(uint32_t, nq);
    blk->notify_pending = g_new0(bool, nq);
    if (p->serial)
        memcpy(blk->serial, p->serial, strlen(p->serial));
    build_config(blk, nq);
    uint64_t f = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
                 VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
                 VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_MQ);
    if (block_readonly(bb))
        f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
    else
        f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    virtio_device_init(&blk->vdev, VIRTIO_ID_BLOCK, &blk_ops, blk, gm, loop, f, VIRTIO_BLK_CONFIG_SIZE, nq);
    for (unsigned i = 0; i < nq; i++)
        virtio_queue_init(&blk->vdev, i, VIRTIO_BLK_QUEUE_SIZE, blk_handle);
    return blk;
}

void virtio_blk_free(struct virtio_blk *blk)
{
    if (!blk)
        return;
    /* Completions still run (and find the device live or reset) before
     * anything they use is freed. */
    block_close(blk->bb);
    if (blk->notify_scheduled)
        loop_after_batch_cancel(blk->vdev.loop, flush_notify, blk);
    virtio_device_destroy(&blk->vdev);
    g_free(blk->epoch);
    g_free(blk->notify_pending);
    g_free(blk);
}
