/* struct block_backend: the host side of a disk (a raw image file or a block
 * device) with asynchronous requests whose completions run on a loop thread.
 *
 * Engines, chosen per disk:
 *  - io_uring (default): SQEs on the loop's own ring (loop_readv & co.);
 *  - native: Linux AIO (libaio) with an eventfd watched by the loop;
 *  - threads: a small pool of worker threads doing plain syscalls.
 * What an engine cannot do on this kernel goes to the worker pool (fallocate
 * under native; any opcode the kernel's io_uring lacks); an io_uring without
 * readv/writev makes the disk fall back to native with one log line.
 *
 * cache=none opens with O_DIRECT: guest buffers whose address or length is
 * not aligned to what the file system wants for direct I/O go through an
 * aligned bounce buffer; offsets and total lengths must be multiples of
 * block_sector_size (the device model advertises it as the guest's block
 * size), else the request fails with -EINVAL.
 *
 * A request completes exactly once with 0 (everything transferred) or
 * -errno; short transfers are continued internally. Everything here runs on
 * the loop's thread except the pool's syscalls. */
#ifndef DEVICES_BLOCK_H
#define DEVICES_BLOCK_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct loop;
struct block_backend;

enum block_aio { BLOCK_AIO_IO_URING, BLOCK_AIO_NATIVE, BLOCK_AIO_THREADS };
enum block_cache { BLOCK_CACHE_WRITEBACK, BLOCK_CACHE_NONE };

struct block_options {
    const char *path;
    bool readonly;
    enum block_aio aio;
    enum block_cache cache;
};

typedef void (*block_done_fn)(void *opaque, int res);

/* Opens path; NULL with *err (one line naming the disk and the fix). */
struct block_backend *block_open(const struct block_options *o, struct loop *loop, GError **err);
/* Waits for what is in flight (their callbacks run), then closes. */
void block_close(struct block_backend *bb);

uint64_t block_size(const struct block_backend *bb);       /* bytes */
/* Logical block size: 512, or what O_DIRECT on this file needs. */
uint32_t block_sector_size(const struct block_backend *bb);
/* log2(physical block / logical block), for the guest's topology. */
unsigned block_physical_exp(const struct block_backend *bb);
bool block_readonly(const struct block_backend *bb);
enum block_aio block_engine(const struct block_backend *bb);  /* after any fallback */
const char *block_aio_name(enum block_aio aio);

/* iov (copied) describes n buffers that stay valid until fn runs. Return 0,
 * or -errno without calling fn (-EROFS on a read-only disk, -ENOMEM). */
int block_readv(struct block_backend *bb, uint64_t off, const struct iovec *iov, unsigned n,
                block_done_fn fn, void *opaque);
int block_writev(struct block_backend *bb, uint64_t off, const struct iovec *iov, unsigned n,
                 block_done_fn fn, void *opaque);
/* fdatasync: what the guest wrote before is on stable storage. */
int block_flush(struct block_backend *bb, block_done_fn fn, void *opaque);
/* Deallocates (PUNCH_HOLE|KEEP_SIZE); a file system that cannot still
 * completes with 0: discard is a hint. */
int block_discard(struct block_backend *bb, uint64_t off, uint64_t len, block_done_fn fn, void *opaque);
/* The range reads as zeroes afterwards: ZERO_RANGE (PUNCH_HOLE first when
 * unmap), else by writing zeroes. */
int block_write_zeroes(struct block_backend *bb, uint64_t off, uint64_t len, bool unmap,
                       block_done_fn fn, void *opaque);

/* Requests whose callback has not run yet. */
unsigned block_inflight(const struct block_backend *bb);
/* Runs the loop (nested, loop_run_once) until nothing is in flight. Loop
 * thread; for save and teardown. */
void block_drain(struct block_backend *bb);

#endif
