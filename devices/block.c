#include "devices/block.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#define POOL_THREADS 4
#define AIO_DEPTH 256
#define ZERO_CHUNK (1024 * 1024)

enum req_op { REQ_READ, REQ_WRITE, REQ_FLUSH, REQ_DISCARD, REQ_WRITE_ZEROES };
/* The one syscall a request is waiting for. */
enum prim { PRIM_READV, PRIM_WRITEV, PRIM_FSYNC, PRIM_FALLOCATE };
/* Write-zeroes tries these in order until one is supported. */
enum wz_step { WZ_PUNCH, WZ_ZERO_RANGE, WZ_WRITE };

struct block_req {
    struct block_backend *bb;
    enum req_op op;
    uint64_t off, len, done;
    struct iovec *iov;          /* the caller's buffers (a copy of the array) */
    unsigned niov;
    struct iovec *view;         /* what is still to transfer */
    unsigned nview;
    void *bounce;               /* aligned copy for O_DIRECT, or NULL */
    enum wz_step wz;
    block_done_fn fn;
    void *opaque;

    /* The pending syscall. */
    enum prim prim;
    int fmode;
    uint64_t foff, flen;
    int res;                    /* pool and deferred results */
    struct iocb iocb;           /* native */
};

struct block_backend {
    struct loop *loop;
    char *path;
    int fd;
    bool readonly;
    bool direct;
    enum block_aio engine;
    uint64_t size;
    uint32_t sector_size;
    uint32_t mem_align;         /* O_DIRECT buffer alignment */
    unsigned phys_exp;
    unsigned inflight;
    bool uring_fallocate;       /* the loop's io_uring takes IORING_OP_FALLOCATE */

    GThreadPool *pool;          /* created on first use */

    io_context_t aio;
    int aio_efd;
    bool aio_fdsync_bad;        /* the kernel refused IOCB_CMD_FDSYNC: pool */
    GQueue aio_wait;            /* requests io_submit had no room for */

    void *zeroes;               /* ZERO_CHUNK zero bytes, aligned; on first use */
};

const char *block_aio_name(enum block_aio aio)
{
    switch (aio) {
    case BLOCK_AIO_IO_URING: return "io_uring";
    case BLOCK_AIO_NATIVE: return "native";
    case BLOCK_AIO_THREADS: return "threads";
    }
    return "?";
}

uint64_t block_size(const struct block_backend *bb) { return bb->size; }
uint32_t block_sector_size(const struct block_backend *bb) { return bb->sector_size; }
unsigned block_physical_exp(const struct block_backend *bb) { return bb->phys_exp; }
bool block_readonly(const struct block_backend *bb) { return bb->readonly; }
enum block_aio block_engine(const struct block_backend *bb) { return bb->engine; }
unsigned block_inflight(const struct block_backend *bb) { return bb->inflight; }

/* ---- completion ---- */

static void req_finish(struct block_req *r, int res)
{
    struct block_backend *bb = r->bb;
    if (res == 0 && r->bounce && r->op == REQ_READ) {
        uint64_t pos = 0;
        for (unsigned i = 0; i < r->niov; i++) {
            memcpy(r->iov[i].iov_base, (uint8_t *)r->bounce + pos, r->iov[i].iov_len);
            pos += r->iov[i].iov_len;
        }
    }
    block_done_fn fn = r->fn;
    void *opaque = r->opaque;
    free(r->bounce);
    g_free(r->iov);
    g_free(r->view);
    g_free(r);
    bb->inflight--;
    fn(opaque, res);
}

static void submit(struct block_req *r);
static void prim_done(struct block_req *r, int res);

static void deferred_done(void *opaque)
{
    struct block_req *r = opaque;
    prim_done(r, r->res);
}

/* A result known at submission time still arrives from the loop, never
 * from inside the caller's submit. */
static void defer(struct block_req *r, int res)
{
    r->res = res;
    loop_call(r->bb->loop, deferred_done, r);
}

/* ---- worker pool ---- */

static void pool_work(gpointer data, gpointer user)
{
    struct block_req *r = data;
    struct block_backend *bb = r->bb;
    ssize_t n;
    switch (r->prim) {
    case PRIM_READV: n = preadv(bb->fd, r->view, (int)r->nview, (off_t)(r->off + r->done)); break;
    case PRIM_WRITEV: n = pwritev(bb->fd, r->view, (int)r->nview, (off_t)(r->off + r->done)); break;
    case PRIM_FSYNC: n = fdatasync(bb->fd); break;
    case PRIM_FALLOCATE: n = fallocate(bb->fd, r->fmode, (off_t)r->foff, (off_t)r->flen); break;
    default: n = -1; errno = EINVAL; break;
    }
    r->res = n < 0 ? -errno : (int)n;
    loop_call(bb->loop, deferred_done, r);
}

static void pool_submit(struct block_req *r)
{
    struct block_backend *bb = r->bb;
    if (!bb->pool) {
        GError *err = NULL;
        bb->pool = g_thread_pool_new(pool_work, NULL, POOL_THREADS, FALSE, &err);
        if (!bb->pool) {
            log_warn("disk %s: cannot start I/O threads: %s", bb->path, err->message);
            g_error_free(err);
            defer(r, -ENOMEM);
            return;
        }
    }
    g_thread_pool_push(bb->pool, r, NULL);
}

/* ---- native (libaio) ---- */

static bool aio_try_submit(struct block_req *r)
{
    struct block_backend *bb = r->bb;
    struct iocb *cb = &r->iocb;
    switch (r->prim) {
    case PRIM_READV: io_prep_preadv(cb, bb->fd, r->view, (int)r->nview, (long long)(r->off + r->done)); break;
    case PRIM_WRITEV: io_prep_pwritev(cb, bb->fd, r->view, (int)r->nview, (long long)(r->off + r->done)); break;
    case PRIM_FSYNC: io_prep_fdsync(cb, bb->fd); break;
    default: g_assert_not_reached();
    }
    io_set_eventfd(cb, bb->aio_efd);
    cb->data = r;
    int n = io_submit(bb->aio, 1, &cb);
    if (n == -EAGAIN)
        return false;
    if (n < 0)
        defer(r, n);
    return true;
}

static void aio_ready(void *opaque, int fd, uint32_t revents)
{
    struct block_backend *bb = opaque;
    uint64_t cnt;
    if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
        return;
    struct io_event ev[64];
    struct timespec zero = { 0, 0 };
    int n;
    do {
        n = io_getevents(bb->aio, 0, 64, ev, &zero);
        for (int i = 0; i < n; i++) {
            struct block_req *r = ev[i].data;
            long res = (long)ev[i].res;
            if (r->prim == PRIM_FSYNC && res == -EINVAL && !bb->aio_fdsync_bad) {
                bb->aio_fdsync_bad = true;
                pool_submit(r);
                continue;
            }
            prim_done(r, res < INT32_MIN ? -EIO : (int)MIN(res, (long)INT32_MAX));
        }
    } while (n == 64);
    while (!g_queue_is_empty(&bb->aio_wait)) {
        struct block_req *r = g_queue_peek_head(&bb->aio_wait);
        if (!aio_try_submit(r))
            break;
        g_queue_pop_head(&bb->aio_wait);
    }
}

static int aio_setup(struct block_backend *bb)
{
    bb->aio_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (bb->aio_efd < 0)
        return -errno;
    int r = io_setup(AIO_DEPTH, &bb->aio);
    if (r == 0)
        r = loop_add_fd(bb->loop, bb->aio_efd, POLLIN, aio_ready, bb);
    if (r < 0) {
        if (bb->aio)
            io_destroy(bb->aio);
        bb->aio = NULL;
        close(bb->aio_efd);
        bb->aio_efd = -1;
    }
    return r;
}

static void aio_submit(struct block_req *r)
{
    struct block_backend *bb = r->bb;
    if ((r->prim == PRIM_FSYNC && bb->aio_fdsync_bad) || r->prim == PRIM_FALLOCATE) {
        pool_submit(r);
        return;
    }
    if (!g_queue_is_empty(&bb->aio_wait) || !aio_try_submit(r))
        g_queue_push_tail(&bb->aio_wait, r);
}

/* ---- io_uring (the loop's ring) ---- */

static void uring_done(void *opaque, int res)
{
    prim_done(opaque, res);
}

static void uring_submit(struct block_req *r)
{
    struct block_backend *bb = r->bb;
    uint64_t pos = r->off + r->done;
    int e;
    switch (r->prim) {
    case PRIM_READV: e = loop_readv(bb->loop, bb->fd, r->view, r->nview, pos, uring_done, r); break;
    case PRIM_WRITEV: e = loop_writev(bb->loop, bb->fd, r->view, r->nview, pos, uring_done, r); break;
    case PRIM_FSYNC: e = loop_fsync(bb->loop, bb->fd, true, uring_done, r); break;
    case PRIM_FALLOCATE:
        if (!bb->uring_fallocate) {
            pool_submit(r);
            return;
        }
        e = loop_fallocate(bb->loop, bb->fd, r->fmode, r->foff, r->flen, uring_done, r);
        break;
    default: e = -EINVAL; break;
    }
    if (e < 0)
        defer(r, e);
}

static void engine_submit(struct block_req *r)
{
    switch (r->bb->engine) {
    case BLOCK_AIO_IO_URING: uring_submit(r); break;
    case BLOCK_AIO_NATIVE: aio_submit(r); break;
    case BLOCK_AIO_THREADS: pool_submit(r); break;
    }
}

/* ---- the request state machine ---- */

/* r->view = what of the buffers is left after r->done bytes. */
static void make_view(struct block_req *r)
{
    if (r->bounce) {
        r->view[0] = (struct iovec){ (uint8_t *)r->bounce + r->done, r->len - r->done };
        r->nview = 1;
        return;
    }
    uint64_t skip = r->done;
    r->nview = 0;
    for (unsigned i = 0; i < r->niov; i++) {
        if (skip >= r->iov[i].iov_len) {
            skip -= r->iov[i].iov_len;
            continue;
        }
        r->view[r->nview++] = (struct iovec){ (uint8_t *)r->iov[i].iov_base + skip,
                                              r->iov[i].iov_len - skip };
        skip = 0;
    }
}

static void submit(struct block_req *r)
{
    struct block_backend *bb = r->bb;
    switch (r->op) {
    case REQ_READ:
    case REQ_WRITE:
        make_view(r);
        r->prim = r->op == REQ_READ ? PRIM_READV : PRIM_WRITEV;
        break;
    case REQ_FLUSH:
        r->prim = PRIM_FSYNC;
        break;
    case REQ_DISCARD:
        r->prim = PRIM_FALLOCATE;
        r->fmode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        r->foff = r->off;
        r->flen = r->len;
        break;
    case REQ_WRITE_ZEROES:
        if (r->wz == WZ_WRITE) {
            uint64_t chunk = MIN(r->len - r->done, (uint64_t)ZERO_CHUNK);
            r->view[0] = (struct iovec){ bb->zeroes, chunk };
            r->nview = 1;
            r->prim = PRIM_WRITEV;
        } else {
            r->prim = PRIM_FALLOCATE;
            r->fmode = r->wz == WZ_PUNCH ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                                         : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
            r->foff = r->off;
            r->flen = r->len;
        }
        break;
    }
    engine_submit(r);
}

static bool unsupported(int res)
{
    return res == -EOPNOTSUPP || res == -ENOSYS || res == -ENOTTY;
}

static void prim_done(struct block_req *r, int res)
{
    struct block_backend *bb = r->bb;
    switch (r->op) {
    case REQ_READ:
    case REQ_WRITE:
        if (res <= 0) {
            req_finish(r, res < 0 ? res : -EIO);    /* 0: past the end of the file */
            return;
        }
        r->done += (uint64_t)res;
        if (r->done < r->len)
            submit(r);
        else
            req_finish(r, 0);
        return;
    case REQ_FLUSH:
        req_finish(r, res < 0 ? res : 0);
        return;
    case REQ_DISCARD:
        req_finish(r, res < 0 && !unsupported(res) && res != -EINVAL ? res : 0);
        return;
    case REQ_WRITE_ZEROES:
        if (r->wz == WZ_WRITE) {
            if (res <= 0) {
                req_finish(r, res < 0 ? res : -EIO);
                return;
            }
            r->done += (uint64_t)res;
        } else if (res == 0) {
            req_finish(r, 0);
            return;
        } else if (!unsupported(res) && res != -EINVAL) {
            req_finish(r, res);
            return;
        } else {
            r->wz++;
            if (r->wz == WZ_WRITE && !bb->zeroes) {
                if (posix_memalign(&bb->zeroes, MAX(bb->mem_align, 4096u), ZERO_CHUNK)) {
                    bb->zeroes = NULL;
                    req_finish(r, -ENOMEM);
                    return;
                }
                memset(bb->zeroes, 0, ZERO_CHUNK);
            }
        }
        if (r->wz == WZ_WRITE && r->done >= r->len)
            req_finish(r, 0);
        else
            submit(r);
        return;
    }
}

static struct block_req *req_new(struct block_backend *bb, enum req_op op, uint64_t off, uint64_t len,
                                 block_done_fn fn, void *opaque)
{
    struct block_req *r = g_new0(struct block_req, 1);
    *r = (struct block_req){ .bb = bb, .op = op, .off = off, .len = len, .fn = fn, .opaque = opaque };
    return r;
}

static void finish_ok(void *opaque)
{
    req_finish(opaque, 0);
}

static void start(struct block_req *r)
{
    r->bb->inflight++;
    if (!r->view)
        r->view = g_new(struct iovec, 1);
    if (r->len == 0 && r->op != REQ_FLUSH) {
        loop_call(r->bb->loop, finish_ok, r);   /* nothing to move */
        return;
    }
    submit(r);
}

static bool aligned(const struct block_backend *bb, const struct iovec *iov, unsigned n)
{
    if (!bb->direct)
        return true;
    for (unsigned i = 0; i < n; i++)
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) % bb->mem_align)
            return false;
    return true;
}

static int rw(struct block_backend *bb, enum req_op op, uint64_t off, const struct iovec *iov, unsigned n,
              block_done_fn fn, void *opaque)
{
    if (op == REQ_WRITE && bb->readonly)
        return -EROFS;
    if (n > IOV_MAX)
        return -EINVAL;
    uint64_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += iov[i].iov_len;
    struct block_req *r = req_new(bb, op, off, len, fn, opaque);
    r->iov = g_memdup2(iov, sizeof(*iov) * n);
    r->niov = n;
    if (!aligned(bb, iov, n)) {
        if (posix_memalign(&r->bounce, bb->mem_align, MAX(len, 1))) {
            g_free(r->iov);
            g_free(r);
            return -ENOMEM;
        }
        if (op == REQ_WRITE) {
            uint64_t pos = 0;
            for (unsigned i = 0; i < n; i++) {
                memcpy((uint8_t *)r->bounce + pos, iov[i].iov_base, iov[i].iov_len);
                pos += iov[i].iov_len;
            }
        }
    }
    r->view = g_new(struct iovec, MAX(n, 1u));
    start(r);
    return 0;
}

int block_readv(struct block_backend *bb, uint64_t off, const struct iovec *iov, unsigned n,
                block_done_fn fn, void *opaque)
{
    return rw(bb, REQ_READ, off, iov, n, fn, opaque);
}

int block_writev(struct block_backend *bb, uint64_t off, const struct iovec *iov, unsigned n,
                 block_done_fn fn, void *opaque)
{
    return rw(bb, REQ_WRITE, off, iov, n, fn, opaque);
}

int block_flush(struct block_backend *bb, block_done_fn fn, void *opaque)
{
    start(req_new(bb, REQ_FLUSH, 0, 0, fn, opaque));
    return 0;
}

int block_discard(struct block_backend *bb, uint64_t off, uint64_t len, block_done_fn fn, void *opaque)
{
    if (bb->readonly)
        return -EROFS;
    start(req_new(bb, REQ_DISCARD, off, len, fn, opaque));
    return 0;
}

int block_write_zeroes(struct block_backend *bb, uint64_t off, uint64_t len, bool unmap,
                       block_done_fn fn, void *opaque)
{
    if (bb->readonly)
        return -EROFS;
    struct block_req *r = req_new(bb, REQ_WRITE_ZEROES, off, len, fn, opaque);
    r->wz = unmap ? WZ_PUNCH : WZ_ZERO_RANGE;
    start(r);
    return 0;
}

void block_drain(struct block_backend *bb)
{
    while (bb->inflight)
        if (loop_run_once(bb->loop) < 0)
            break;
}

/* ---- open/close ---- */

static void fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void fail(GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, msg);
}

static unsigned log2_floor(uint64_t v)
{
    unsigned e = 0;
    while (v > 1) {
        v >>= 1;
        e++;
    }
    return e;
}

struct block_backend *block_open(const struct block_options *o, struct loop *loop, GError **err)
{
    int flags = O_CLOEXEC | (o->readonly ? O_RDONLY : O_RDWR) | (o->cache == BLOCK_CACHE_NONE ? O_DIRECT : 0);
    int fd = open(o->path, flags);
    if (fd < 0) {
        int e = errno;
        if (e == EINVAL && (flags & O_DIRECT))
            fail(err, "--disk %s: the file system does not support O_DIRECT (cache=none); use cache=writeback",
                 o->path);
        else if (!o->readonly && (e == EACCES || e == EROFS || e == EPERM))
            fail(err, "--disk %s: %s; give readonly=on to use it read-only", o->path, g_strerror(e));
        else
            fail(err, "--disk %s: %s", o->path, g_strerror(e));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        fail(err, "--disk %s: not a regular file or a block device", o->path);
        close(fd);
        return NULL;
    }
    struct block_backend *bb = g_new0(struct block_backend, 1);
    *bb = (struct block_backend){ .loop = loop, .path = g_strdup(o->path), .fd = fd, .readonly = o->readonly,
                                  .direct = o->cache == BLOCK_CACHE_NONE, .engine = o->aio,
                                  .aio_efd = -1, .mem_align = 1 };
    g_queue_init(&bb->aio_wait);
    uint32_t logical = 512, physical = st.st_blksize > 0 ? (uint32_t)st.st_blksize : 4096;
    if (S_ISBLK(st.st_mode)) {
        int ls = 0;
        unsigned int ps = 0;
        uint64_t size = 0;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
            fail(err, "--disk %s: cannot read the block device's size: %s", o->path, g_strerror(errno));
            block_close(bb);
            return NULL;
        }
        bb->size = size;
        if (ioctl(fd, BLKSSZGET, &ls) == 0 && ls >= 512)
            logical = (uint32_t)ls;
        if (ioctl(fd, BLKPBSZGET, &ps) == 0 && ps >= logical)
            physical = ps;
    } else {
        bb->size = (uint64_t)st.st_size;
    }
    if (bb->direct) {
        struct statx stx;
        uint32_t off_align = 512;
        bb->mem_align = 512;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
            stx.stx_dio_offset_align) {
            off_align = stx.stx_dio_offset_align;
            bb->mem_align = MAX(stx.stx_dio_mem_align, 1u);
        }
        logical = MAX(logical, off_align);
    }
    if (logical > 4096 || (logical & (logical - 1))) {
        fail(err, "--disk %s: a logical block size of %u bytes is not supported", o->path, logical);
        block_close(bb);
        return NULL;
    }
    bb->sector_size = logical;
    bb->phys_exp = MIN(log2_floor(MAX(physical, logical) / logical), 15u);
    bb->size -= bb->size % logical;
    bb->uring_fallocate = loop_supports_op(loop, IORING_OP_FALLOCATE);

    if (bb->engine == BLOCK_AIO_IO_URING && !loop_uses_io_uring(loop)) {
        /* libaio needs no io_uring and no extra threads (the epoll loop's
         * workers would do one syscall per request) */
        log_warn("disk %s: aio=io_uring is unavailable (io_uring is disabled or blocked here); using aio=native",
                 o->path);
        bb->engine = BLOCK_AIO_NATIVE;
    } else if (bb->engine == BLOCK_AIO_IO_URING &&
        !(loop_supports_op(loop, IORING_OP_READV) && loop_supports_op(loop, IORING_OP_WRITEV) &&
          loop_supports_op(loop, IORING_OP_FSYNC))) {
        log_warn("disk %s: this kernel's io_uring cannot read and write files; using aio=native", o->path);
        bb->engine = BLOCK_AIO_NATIVE;
    }
    if (bb->engine == BLOCK_AIO_NATIVE) {
        int r = aio_setup(bb);
        if (r < 0) {
            log_warn("disk %s: Linux AIO is unavailable (%s); using aio=threads", o->path, g_strerror(-r));
            bb->engine = BLOCK_AIO_THREADS;
        }
    }
    return bb;
}

void block_close(struct block_backend *bb)
{
    if (!bb)
        return;
    block_drain(bb);
    if (bb->pool)
        g_thread_pool_free(bb->pool, FALSE, TRUE);
    if (bb->aio_efd >= 0) {
        loop_remove_fd(bb->loop, bb->aio_efd);
        close(bb->aio_efd);
    }
    if (bb->aio)
        io_destroy(bb->aio);
    close(bb->fd);
    free(bb->zeroes);
    g_free(bb->path);
    g_free(bb);
}
