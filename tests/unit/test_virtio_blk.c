/* virtio-blk over fake guest memory, a temporary image file and a real
 * event loop, driven as a driver would: config space and features, every
 * request type on each engine (io_uring, native, threads) and with
 * cache=none (aligned and bounced buffers), read-only refusal, hostile
 * requests (answered with IOERR/UNSUPP, or the device breaks itself),
 * multiqueue, a reset with I/O in flight, and save draining what is in
 * flight. Tests wait for completions with loop_run_once, never on a clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/fake_driver.h"
#include "devices/virtio/blk.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/state.h"

#define MIB (1ULL << 20)
#define RAM (16 * MIB)
#define QSZ 64
#define HDR 0x100000ULL         /* request headers, 64 bytes apart */
#define STATUS 0x110000ULL      /* status bytes, one per request */
#define DATA 0x200000ULL        /* data buffers */
#define DISK_BYTES (1 * MIB)
#define SECTORS (DISK_BYTES / 512)

struct fx {
    struct guest_memory gm;
    struct loop *loop;
    struct virtio_blk *blk;
    struct virtio_device *vdev;
    char path[64];
    int fd;                     /* the image, for checking */
    unsigned nq;
    struct fake_driver drv;
    unsigned nreq;
    enum block_aio aio;
};

static unsigned irqs;

static void count_interrupt(void *opaque, uint16_t vector)
{
    irqs++;
}

static uint8_t *hva(struct fx *f, uint64_t gpa)
{
    return f->gm.base + gpa;
}

static int open_blk(struct fx *f, struct virtio_blk_params *p, GError **err)
{
    p->disk.path = f->path;
    f->blk = virtio_blk_new(&f->gm, f->loop, p, err);
    if (!f->blk)
        return -1;
    f->vdev = &f->blk->vdev;
    f->nq = f->vdev->num_queues;
    virtio_set_transport(f->vdev, &(struct virtio_transport){ .interrupt = count_interrupt });
    return 0;
}

static const char *path_template = "vmm-test-blk.XXXXXX";

static int setup_with(void **state, struct virtio_blk_params p)
{
    struct fx *f = g_new0(struct fx, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&f->gm, RAM, false, false, &err) < 0)
        fail_msg("%s", err->message);
    f->drv = (struct fake_driver){ .ram = f->gm.base, .qsz = QSZ };
    f->loop = loop_new(&err);
    assert_non_null(f->loop);
    /* Not /tmp's tmpfs on every host: O_DIRECT needs a real file system. */
    g_strlcpy(f->path, path_template, sizeof(f->path));
    f->fd = mkstemp(f->path);
    assert_true(f->fd >= 0);
    uint8_t *fill = g_malloc(DISK_BYTES);
    for (unsigned i = 0; i < DISK_BYTES; i++)
        fill[i] = (uint8_t)(i / 512 + 1);       /* each sector tells its number */
    assert_int_equal(pwrite(f->fd, fill, DISK_BYTES, 0), DISK_BYTES);
    g_free(fill);
    f->aio = p.disk.aio;
    if (p.disk.readonly)
        chmod(f->path, 0400);
    if (open_blk(f, &p, &err) < 0)
        fail_msg("%s", err->message);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    virtio_blk_free(f->blk);
    loop_run_calls(f->loop);
    loop_free(f->loop);
    close(f->fd);
    unlink(f->path);
    guest_memory_destroy(&f->gm);
    g_free(f);
    return 0;
}

static int setup_uring(void **s) { return setup_with(s, (struct virtio_blk_params){ .serial = "vmm-serial-0123" }); }
static int setup_native(void **s)
{
    return setup_with(s, (struct virtio_blk_params){ .disk.aio = BLOCK_AIO_NATIVE });
}
static int setup_threads(void **s)
{
    return setup_with(s, (struct virtio_blk_params){ .disk.aio = BLOCK_AIO_THREADS });
}
static int setup_direct(void **s)
{
    return setup_with(s, (struct virtio_blk_params){ .disk.cache = BLOCK_CACHE_NONE });
}
static int setup_direct_threads(void **s)
{
    return setup_with(s, (struct virtio_blk_params){ .disk.cache = BLOCK_CACHE_NONE,
                                                     .disk.aio = BLOCK_AIO_THREADS });
}
static int setup_ro(void **s)
{
    return setup_with(s, (struct virtio_blk_params){ .disk.readonly = true });
}
/* tmpfs: no FALLOC_FL_ZERO_RANGE, so write-zeroes falls back to writing. */
static int setup_shm(void **s, enum block_aio aio)
{
    if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) && access("/dev/shm", W_OK) == 0)
        path_template = "/dev/shm/vmm-test-blk.XXXXXX";
    int r = setup_with(s, (struct virtio_blk_params){ .disk.aio = aio });
    path_template = "vmm-test-blk.XXXXXX";
    return r;
}
static int setup_shm_uring(void **s) { return setup_shm(s, BLOCK_AIO_IO_URING); }
static int setup_shm_native(void **s) { return setup_shm(s, BLOCK_AIO_NATIVE); }
static int setup_shm_threads(void **s) { return setup_shm(s, BLOCK_AIO_THREADS); }
static int setup_mq(void **s)
{
    return setup_with(s, (struct virtio_blk_params){ .num_queues = 4 });
}

/* ---- the driver's side ---- */

static uint64_t offered(struct virtio_device *vdev)
{
    return virtio_get_device_features(vdev, 0) | (uint64_t)virtio_get_device_features(vdev, 1) << 32;
}

static void bring_up(struct fx *f)
{
    struct virtio_device *v = f->vdev;
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t feat = offered(v) & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    virtio_set_driver_features(v, 0, (uint32_t)feat);
    virtio_set_driver_features(v, 1, (uint32_t)(feat >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    assert_true(virtio_get_status(v) & VIRTIO_STATUS_FEATURES_OK);
    for (unsigned q = 0; q < f->nq; q++) {
        memset(hva(f, FAKE_DESC(q)), 0, 0x3000);
        virtio_queue_set_size(v, q, QSZ);
        virtio_queue_set_desc(v, q, FAKE_DESC(q));
        virtio_queue_set_avail(v, q, FAKE_AVAIL(q));
        virtio_queue_set_used(v, q, FAKE_USED(q));
        assert_int_equal(virtio_queue_enable(v, q), 0);
        f->drv.avail_idx[q] = 0;
        f->drv.next_desc[q] = 0;
    }
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    loop_run_calls(f->loop);
}

/* Kicks queue q and runs the loop until `want` chains are used. */
static void kick_wait(struct fx *f, unsigned q, uint16_t want)
{
    virtio_queue_notify(f->vdev, q);
    while (fake_used_idx(&f->drv, q) != want && !(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET))
        assert_int_equal(loop_run_once(f->loop), 0);
}

static uint64_t header(struct fx *f, uint32_t type, uint64_t sector)
{
    uint64_t gpa = HDR + 64ULL * (f->nreq % 1024);
    uint8_t *h = hva(f, gpa);
    memset(h, 0, 16);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    return gpa;
}

/* One request with a single data buffer; returns its status byte. */
static uint8_t request_q(struct fx *f, unsigned q, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                         bool data_write)
{
    uint64_t st = STATUS + (f->nreq % 4096);
    *hva(f, st) = 0xee;
    struct seg s[3] = { { header(f, type, sector), 16, false }, { data, len, data_write }, { st, 1, true } };
    f->nreq++;
    if (len)
        fake_post(&f->drv, q, s, 3);
    else
        fake_post(&f->drv, q, (struct seg[]){ s[0], s[2] }, 2);
    kick_wait(f, q, f->drv.avail_idx[q]);
    return *hva(f, st);
}

static uint8_t request(struct fx *f, uint32_t type, uint64_t sector, uint64_t data, uint32_t len, bool data_write)
{
    return request_q(f, 0, type, sector, data, len, data_write);
}

static uint8_t rd(struct fx *f, uint64_t sector, uint64_t data, uint32_t len)
{
    return request(f, VIRTIO_BLK_T_IN, sector, data, len, true);
}

static uint8_t wr(struct fx *f, uint64_t sector, uint64_t data, uint32_t len)
{
    return request(f, VIRTIO_BLK_T_OUT, sector, data, len, false);
}

static uint8_t dwz(struct fx *f, uint32_t type, uint64_t sector, uint32_t nsect, uint32_t flags)
{
    uint64_t seg = DATA + 0x80000;
    uint8_t *p = hva(f, seg);
    memcpy(p, &sector, 8);
    memcpy(p + 8, &nsect, 4);
    memcpy(p + 12, &flags, 4);
    return request(f, type, 0, seg, 16, false);
}

static void file_read(struct fx *f, uint64_t off, void *buf, size_t len)
{
    assert_int_equal(pread(f->fd, buf, len, (off_t)off), (ssize_t)len);
}

static uint32_t cfg32(struct fx *f, uint32_t off)
{
    uint32_t v;
    virtio_config_read(f->vdev, off, &v, 4);
    return v;
}

/* ---- tests ---- */

static void test_config_and_features(void **state)
{
    struct fx *f = *state;
    uint64_t o = offered(f->vdev);
    assert_int_equal(f->vdev->device_id, VIRTIO_ID_BLOCK);
    for (unsigned b = 0; b < 64; b++) {
        bool want = b == VIRTIO_BLK_F_SIZE_MAX || b == VIRTIO_BLK_F_SEG_MAX || b == VIRTIO_BLK_F_BLK_SIZE ||
                    b == VIRTIO_BLK_F_TOPOLOGY || b == VIRTIO_BLK_F_FLUSH || b == VIRTIO_BLK_F_MQ ||
                    b == VIRTIO_BLK_F_DISCARD || b == VIRTIO_BLK_F_WRITE_ZEROES ||
                    (VIRTIO_CORE_FEATURES >> b & 1);
        if (want != (bool)(o >> b & 1))
            fail_msg("feature bit %u: offered %d", b, (int)(o >> b & 1));
    }
    uint64_t cap;
    virtio_config_read(f->vdev, VIRTIO_BLK_CFG_CAPACITY, &cap, 8);
    assert_int_equal(cap, SECTORS);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_SIZE_MAX), VIRTIO_BLK_SIZE_MAX);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_SEG_MAX), VIRTIO_BLK_SEG_MAX);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    uint16_t nq;
    virtio_config_read(f->vdev, VIRTIO_BLK_CFG_NUM_QUEUES, &nq, 2);
    assert_int_equal(nq, 1);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SEG), 1);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_WZ_SEG), 1);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS), VIRTIO_BLK_MAX_DWZ_SECTORS);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_DISCARD_ALIGN), 1);
    uint8_t unmap;
    virtio_config_read(f->vdev, VIRTIO_BLK_CFG_WZ_MAY_UNMAP, &unmap, 1);
    assert_int_equal(unmap, 1);
    /* Read-only config: a write changes nothing. */
    uint32_t junk = 0xffffffff;
    virtio_config_write(f->vdev, VIRTIO_BLK_CFG_BLK_SIZE, &junk, 4);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    /* Past the end reads 0. */
    assert_int_equal(cfg32(f, VIRTIO_BLK_CONFIG_SIZE), 0);
    assert_int_equal(f->vdev->config_size, VIRTIO_BLK_CONFIG_SIZE);
}

/* Write through two guest buffers, check the file, read back through
 * three other buffers (guest pages dirtied), flush. */
static void test_write_read_flush(void **state)
{
    struct fx *f = *state;
    assert_int_equal(block_engine(f->blk->bb), f->aio);     /* no silent fallback */
    bring_up(f);
    uint8_t *src = hva(f, DATA);
    for (unsigned i = 0; i < 8192; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    uint64_t st1 = STATUS + 100;
    struct seg w[4] = { { header(f, VIRTIO_BLK_T_OUT, 5), 16, false }, { DATA, 4096, false },
                        { DATA + 4096, 4096, false }, { st1, 1, true } };
    fake_post(&f->drv, 0, w, 4);
    kick_wait(f, 0, 1);
    assert_int_equal(*hva(f, st1), VIRTIO_BLK_S_OK);
    assert_int_equal(fake_used_len(&f->drv, 0, 0), 1);
    uint8_t back[8192];
    file_read(f, 5 * 512, back, sizeof(back));
    assert_memory_equal(back, src, 8192);
    /* The sectors around it are untouched. */
    uint8_t edge[2];
    file_read(f, 5 * 512 - 1, edge, 1);
    file_read(f, 5 * 512 + 8192, edge + 1, 1);
    assert_int_equal(edge[0], 5);
    assert_int_equal(edge[1], 5 + 16 + 1);

    uint64_t r0 = DATA + 0x10000, r1 = DATA + 0x20000, r2 = DATA + 0x30000;
    memset(hva(f, r0), 0, 0x30000);
    uint64_t st2 = STATUS + 101;
    struct seg r[5] = { { header(f, VIRTIO_BLK_T_IN, 5), 16, false }, { r0, 512, true }, { r1, 3584, true },
                        { r2, 4096, true }, { st2, 1, true } };
    fake_post(&f->drv, 0, r, 5);
    kick_wait(f, 0, 2);
    assert_int_equal(*hva(f, st2), VIRTIO_BLK_S_OK);
    assert_int_equal(fake_used_len(&f->drv, 0, 1), 8192 + 1);
    assert_memory_equal(hva(f, r0), src, 512);
    assert_memory_equal(hva(f, r1), src + 512, 3584);
    assert_memory_equal(hva(f, r2), src + 4096, 4096);
    assert_true(guest_memory_page_dirty(&f->gm, r1));
    assert_true(guest_memory_page_dirty(&f->gm, r2));
    assert_true(guest_memory_page_dirty(&f->gm, st2));

    /* One completion, one interrupt (no suppression negotiated), raised by
     * the after-batch hook at the end of the loop round that completed it. */
    irqs = 0;
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
    assert_int_equal(irqs, 1);
    /* Last sector of the disk, and a read that ends exactly at the end. */
    assert_int_equal(wr(f, SECTORS - 1, DATA, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(rd(f, SECTORS - 2, DATA + 0x40000, 1024), VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, DATA + 0x40000 + 512), src, 512);
}

/* cache=none: buffers at odd guest addresses go through a bounce buffer;
 * aligned ones go straight to the file. Same data either way. */
static void test_direct_unaligned(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_BLK_SIZE) % 512, 0);
    uint32_t bs = cfg32(f, VIRTIO_BLK_CFG_BLK_SIZE);
    uint64_t odd = DATA + 3;
    for (unsigned i = 0; i < 3 * bs; i++)
        *hva(f, odd + i) = (uint8_t)(i ^ 0x5a);
    uint64_t sect = 8 * bs / 512;
    assert_int_equal(wr(f, sect, odd, 3 * bs), VIRTIO_BLK_S_OK);
    g_autofree uint8_t *back = g_malloc(3 * bs);
    file_read(f, sect * 512, back, 3 * bs);
    assert_memory_equal(back, hva(f, odd), 3 * bs);
    memset(hva(f, DATA + 0x50001), 0, 3 * bs);
    assert_int_equal(rd(f, sect, DATA + 0x50001, 3 * bs), VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, DATA + 0x50001), back, 3 * bs);
    /* Aligned buffer, no bounce. */
    assert_int_equal(rd(f, 0, DATA + 0x60000, bs), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, DATA + 0x60000), 1);
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
}

static void test_get_id(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    memset(hva(f, DATA), 0xff, 32);
    assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true), VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, DATA), "vmm-serial-0123\0\0\0\0\0", 20);
    assert_int_equal(*hva(f, DATA + 20), 0xff);
    /* A shorter buffer gets what fits, nothing past it. */
    memset(hva(f, DATA), 0xff, 32);
    assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA, 4, true), VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, DATA), "vmm-\xff", 5);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void test_discard_write_zeroes(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    struct stat before, after;
    assert_int_equal(fstat(f->fd, &before), 0);
    /* 64 KiB discarded on 4 KiB boundaries: zeroes, same size, fewer blocks. */
    assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 64, 128, 0), VIRTIO_BLK_S_OK);
    uint8_t buf[65536 + 1024];
    file_read(f, 63 * 512, buf, sizeof(buf));
    assert_int_equal(buf[0], 64);
    assert_true(all_zero(buf + 512, 65536));
    assert_int_equal(buf[512 + 65536], 64 + 128 + 1);
    assert_int_equal(fstat(f->fd, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_true(after.st_blocks < before.st_blocks);

    /* Write-zeroes, with and without unmap; odd sector counts. */
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 301, 3, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 401, 17, VIRTIO_BLK_WZ_FLAG_UNMAP), VIRTIO_BLK_S_OK);
    file_read(f, 300 * 512, buf, 5 * 512);
    assert_int_equal(buf[0], (uint8_t)301);
    assert_true(all_zero(buf + 512, 3 * 512));
    assert_int_equal(buf[4 * 512], (uint8_t)305);
    file_read(f, 400 * 512, buf, 19 * 512);
    assert_int_equal(buf[511], (uint8_t)401);
    assert_true(all_zero(buf + 512, 17 * 512));
    assert_int_equal(buf[18 * 512], (uint8_t)419);
    assert_int_equal(fstat(f->fd, &after), 0);
    assert_int_equal(after.st_size, before.st_size);

    /* Flags: unmap on a discard, unknown bits on either are UNSUPP. */
    assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 1, VIRTIO_BLK_WZ_FLAG_UNMAP), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 4), VIRTIO_BLK_S_UNSUPP);
    /* Past the end, and one sector too many. */
    assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, SECTORS, 1, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, SECTORS - 4, 5, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, UINT64_MAX, 2, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, SECTORS - 5, 5, 0), VIRTIO_BLK_S_OK);
    /* Zero sectors is nothing to do. */
    assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 7, 0, 0), VIRTIO_BLK_S_OK);
    /* Two segments (max_discard_seg is 1), or half of one. */
    assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA + 0x80000, 32, false), VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA + 0x80000, 8, false), VIRTIO_BLK_S_IOERR);
    assert_false(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Where the file system has no ZERO_RANGE, write-zeroes writes zeroes (in
 * chunks; here just short of the whole disk) and still leaves the size. */
static void test_write_zeroes_fallback(void **state)
{
    struct fx *f = *state;
    if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 512) == 0 || errno != EOPNOTSUPP)
        skip();     /* this file system zeroes ranges itself: no fallback to test */
    bring_up(f);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 1, SECTORS - 1, 0), VIRTIO_BLK_S_OK);
    g_autofree uint8_t *buf = g_malloc(DISK_BYTES);
    file_read(f, 0, buf, DISK_BYTES);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[511], 1);
    assert_true(all_zero(buf + 512, DISK_BYTES - 512));
    /* With unmap: a punched hole, on tmpfs too. */
    assert_int_equal(wr(f, 10, DATA, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 10, 1, VIRTIO_BLK_WZ_FLAG_UNMAP), VIRTIO_BLK_S_OK);
    file_read(f, 10 * 512, buf, 512);
    assert_true(all_zero(buf, 512));
    struct stat st;
    assert_int_equal(fstat(f->fd, &st), 0);
    assert_int_equal(st.st_size, DISK_BYTES);
}

/* Not negotiated: DISCARD/WRITE_ZEROES are UNSUPP. */
static void test_discard_not_negotiated(void **state)
{
    struct fx *f = *state;
    struct virtio_device *v = f->vdev;
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t feat = VIRTIO_BIT(VIRTIO_F_VERSION_1);
    virtio_set_driver_features(v, 0, (uint32_t)feat);
    virtio_set_driver_features(v, 1, (uint32_t)(feat >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    virtio_queue_set_size(v, 0, QSZ);
    virtio_queue_set_desc(v, 0, FAKE_DESC(0));
    virtio_queue_set_avail(v, 0, FAKE_AVAIL(0));
    virtio_queue_set_used(v, 0, FAKE_USED(0));
    assert_int_equal(virtio_queue_enable(v, 0), 0);
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 1, 0), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_BLK_S_UNSUPP);
    uint8_t b;
    file_read(f, 0, &b, 1);
    assert_int_equal(b, 1);
}

static void test_readonly(void **state)
{
    struct fx *f = *state;
    uint64_t o = offered(f->vdev);
    assert_true(o & VIRTIO_BIT(VIRTIO_BLK_F_RO));
    assert_false(o & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
    assert_false(o & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
    bring_up(f);
    memset(hva(f, DATA), 0xab, 4096);
    assert_int_equal(wr(f, 0, DATA, 4096), VIRTIO_BLK_S_IOERR);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
    uint8_t b[4096];
    file_read(f, 0, b, sizeof(b));
    assert_int_equal(b[0], 1);
    assert_int_equal(b[4095], 8);
    /* Reads and flushes still work. */
    assert_int_equal(rd(f, 0, DATA, 4096), VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, DATA), b, 4096);
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
    assert_false(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Requests a driver should never send: each is answered, the device keeps
 * working, the file is unchanged. */
static void test_hostile_answered(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    memset(hva(f, DATA), 0xcd, 8192);
    assert_int_equal(rd(f, SECTORS, DATA, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(rd(f, SECTORS - 1, DATA, 1024), VIRTIO_BLK_S_IOERR);
    assert_int_equal(wr(f, UINT64_MAX, DATA, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(wr(f, UINT64_MAX / 512 + 1, DATA, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(rd(f, 0, DATA, 100), VIRTIO_BLK_S_IOERR);           /* not whole sectors */
    assert_int_equal(wr(f, 0, DATA, 513), VIRTIO_BLK_S_IOERR);
    /* Data in the wrong direction: a read into device-readable memory, a
     * write whose data is device-writable. */
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, false), VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, DATA, 512, true), VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, 99, 0, DATA, 512, false), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH + 1, 0, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
    /* A read with no data at all is an empty transfer. */
    assert_int_equal(rd(f, 0, 0, 0), VIRTIO_BLK_S_OK);
    uint8_t b[2];
    file_read(f, 0, b, 1);
    file_read(f, DISK_BYTES - 1, b + 1, 1);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[1], (uint8_t)SECTORS);
    assert_false(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(rd(f, 1, DATA, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, DATA), 2);
}

/* Chains that cannot be answered break the device (and only it). */
static void broken_by(struct fx *f, const struct seg *s, unsigned n)
{
    bring_up(f);
    fake_post(&f->drv, 0, s, n);
    kick_wait(f, 0, 1);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(fake_used_idx(&f->drv, 0), 0);
    /* Once reset and set up again it works. */
    virtio_set_status(f->vdev, 0);
    loop_run_calls(f->loop);
    assert_int_equal(virtio_get_status(f->vdev), 0);
    bring_up(f);
    assert_int_equal(rd(f, 2, DATA, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, DATA), 3);
}

static void test_hostile_short_header(void **state)
{
    struct fx *f = *state;
    broken_by(f, (struct seg[]){ { header(f, VIRTIO_BLK_T_IN, 0), 8, false }, { STATUS, 1, true } }, 2);
}

static void test_hostile_writable_header(void **state)
{
    struct fx *f = *state;
    broken_by(f, (struct seg[]){ { header(f, VIRTIO_BLK_T_IN, 0), 16, true }, { STATUS, 1, true } }, 2);
}

static void test_hostile_no_status(void **state)
{
    struct fx *f = *state;
    broken_by(f, (struct seg[]){ { header(f, VIRTIO_BLK_T_OUT, 0), 16, false }, { DATA, 512, false } }, 2);
    uint8_t b;
    file_read(f, 0, &b, 1);
    assert_int_equal(b, 1);
}

static void test_hostile_outside_ram(void **state)
{
    struct fx *f = *state;
    broken_by(f, (struct seg[]){ { header(f, VIRTIO_BLK_T_IN, 0), 16, false }, { RAM - 256, 512, true },
                                 { STATUS, 1, true } }, 3);
}

/* Each queue completes on its own used ring. */
static void test_multiqueue(void **state)
{
    struct fx *f = *state;
    uint16_t nq;
    virtio_config_read(f->vdev, VIRTIO_BLK_CFG_NUM_QUEUES, &nq, 2);
    assert_int_equal(nq, 4);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 3), VIRTIO_BLK_QUEUE_SIZE);
    assert_int_equal(virtio_queue_get_max_size(f->vdev, 4), 0);
    bring_up(f);
    for (unsigned q = 0; q < 4; q++) {
        memset(hva(f, DATA + q * 4096), (int)(0x10 + q), 512);
        assert_int_equal(request_q(f, q, VIRTIO_BLK_T_OUT, 100 + q, DATA + q * 4096, 512, false),
                         VIRTIO_BLK_S_OK);
    }
    for (unsigned q = 0; q < 4; q++) {
        assert_int_equal(fake_used_idx(&f->drv, q), 1);
        uint8_t b;
        file_read(f, (100 + q) * 512, &b, 1);
        assert_int_equal(b, 0x10 + q);
    }
    assert_int_equal(request_q(f, 3, VIRTIO_BLK_T_IN, 100, DATA + 0x10000, 512, true), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, DATA + 0x10000), 0x10);
    assert_int_equal(fake_used_idx(&f->drv, 3), 2);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
}

/* A device reset with a request in flight: the late completion goes to no
 * ring (the new session's used ring stays empty), and the new session works. */
static void test_reset_in_flight(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    uint64_t st = STATUS + 7;
    *hva(f, st) = 0xee;
    fake_post(&f->drv, 0, (struct seg[]){ { header(f, VIRTIO_BLK_T_IN, 3), 16, false }, { DATA, 4096, true },
                               { st, 1, true } }, 3);
    virtio_queue_run(f->vdev, 0);       /* popped and submitted; not completed */
    assert_int_equal(block_inflight(f->blk->bb), 1);
    virtio_set_status(f->vdev, 0);
    loop_run_calls(f->loop);
    assert_int_equal(virtio_get_status(f->vdev), 0);
    bring_up(f);
    while (block_inflight(f->blk->bb))
        assert_int_equal(loop_run_once(f->loop), 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 0);
    assert_int_equal(*hva(f, st), 0xee);
    assert_int_equal(rd(f, 9, DATA, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
    assert_int_equal(*hva(f, DATA), 10);
}

/* Save completes what is in flight first, so the saved used index counts
 * it; the state loads back into a fresh device on the same disk. */
static void test_save_drains(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    uint64_t st = STATUS + 9;
    fake_post(&f->drv, 0, (struct seg[]){ { header(f, VIRTIO_BLK_T_OUT, 3), 16, false }, { DATA, 4096, false },
                               { st, 1, true } }, 3);
    memset(hva(f, DATA), 0x77, 4096);
    virtio_queue_run(f->vdev, 0);
    assert_int_equal(block_inflight(f->blk->bb), 1);
    struct state_writer *w = state_writer_new();
    assert_int_equal(virtio_device_save(f->vdev, w), 0);
    assert_int_equal(block_inflight(f->blk->bb), 0);
    assert_int_equal(fake_used_idx(&f->drv, 0), 1);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    g_autoptr(GBytes) bytes = state_writer_finish(w);

    virtio_blk_free(f->blk);
    g_autoptr(GError) err = NULL;
    struct virtio_blk_params p = { 0 };
    assert_int_equal(open_blk(f, &p, &err), 0);
    struct state_reader *r = state_reader_new(bytes, &err);
    assert_non_null(r);
    assert_int_equal(virtio_device_load(f->vdev, r, &err), 0);
    state_reader_free(r);
    assert_true(virtio_get_status(f->vdev) & VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(f->vdev->queues[0].vq.used_idx, 1);
    assert_int_equal(rd(f, 3, DATA + 0x10000, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, DATA + 0x10000), 0x77);
}

/* Bad disks and parameters: one line naming the disk, no device. */
static void test_open_errors(void **state)
{
    struct fx *f = *state;
    g_autoptr(GError) err = NULL;
    struct virtio_blk_params p = { .disk.path = "/nonexistent/disk.img" };
    assert_null(virtio_blk_new(&f->gm, f->loop, &p, &err));
    assert_non_null(strstr(err->message, "/nonexistent/disk.img"));
    g_clear_error(&err);
    p.disk.path = "/";
    assert_null(virtio_blk_new(&f->gm, f->loop, &p, &err));
    assert_non_null(strstr(err->message, "directory"));
    g_clear_error(&err);
    p = (struct virtio_blk_params){ .disk.path = f->path, .serial = "123456789012345678901" };
    assert_null(virtio_blk_new(&f->gm, f->loop, &p, &err));
    assert_non_null(strstr(err->message, "serial"));
    g_clear_error(&err);
    p = (struct virtio_blk_params){ .disk.path = f->path, .num_queues = VIRTIO_BLK_MAX_QUEUES + 1 };
    assert_null(virtio_blk_new(&f->gm, f->loop, &p, &err));
    assert_non_null(strstr(err->message, "num_queues"));
    g_clear_error(&err);
    if (geteuid() != 0) {
        chmod(f->path, 0400);
        p = (struct virtio_blk_params){ .disk.path = f->path };
        assert_null(virtio_blk_new(&f->gm, f->loop, &p, &err));
        assert_non_null(strstr(err->message, "readonly=on"));
        chmod(f->path, 0600);
    }
    for (unsigned i = 0; err && err->message[i]; i++)
        assert_int_not_equal(err->message[i], '\n');
}

#define ENGINE_TESTS(setup)                                                           \
    cmocka_unit_test_setup_teardown(test_write_read_flush, setup, teardown),         \
    cmocka_unit_test_setup_teardown(test_discard_write_zeroes, setup, teardown),     \
    cmocka_unit_test_setup_teardown(test_hostile_answered, setup, teardown),         \
    cmocka_unit_test_setup_teardown(test_save_drains, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_and_features, setup_uring, teardown),
        ENGINE_TESTS(setup_uring),
        ENGINE_TESTS(setup_native),
        ENGINE_TESTS(setup_threads),
        ENGINE_TESTS(setup_direct),
        /* Not with threads: a worker may finish before the reset is taken. */
        cmocka_unit_test_setup_teardown(test_reset_in_flight, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_reset_in_flight, setup_native, teardown),
        cmocka_unit_test_setup_teardown(test_reset_in_flight, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_direct_unaligned, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_direct_unaligned, setup_direct_threads, teardown),
        cmocka_unit_test_setup_teardown(test_get_id, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_write_zeroes_fallback, setup_shm_uring, teardown),
        cmocka_unit_test_setup_teardown(test_write_zeroes_fallback, setup_shm_native, teardown),
        cmocka_unit_test_setup_teardown(test_write_zeroes_fallback, setup_shm_threads, teardown),
        cmocka_unit_test_setup_teardown(test_discard_not_negotiated, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup_ro, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_short_header, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_writable_header, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_no_status, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_outside_ram, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_multiqueue, setup_mq, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup_uring, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
