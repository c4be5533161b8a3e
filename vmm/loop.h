/* The event loop: one io_uring per loop. The main thread runs one; I/O
 * threads may run more. Everything registered on a loop runs on its thread.
 *
 * Where io_uring_setup fails with ENOSYS, EPERM or EACCES (old kernels,
 * kernel.io_uring_disabled, Docker's default seccomp profile) or the ring
 * cannot poll, loop_new falls back to an epoll backend behind this same API:
 * fd watches are edge-triggered epoll (like multishot poll), and
 * loop_readv/writev/fsync/fallocate are done by up to 4 worker threads whose
 * completions come back through an eventfd, so callbacks still run on the
 * loop thread, never inside the submitting call. One info line per process
 * says so. VMM_LOOP_BACKEND=epoll forces it (test-only). */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct loop;

/* revents are poll(2) bits (POLLIN, POLLOUT, POLLHUP, POLLERR). */
typedef void (*loop_fd_fn)(void *opaque, int fd, uint32_t revents);
typedef void (*loop_call_fn)(void *opaque);

struct loop *loop_new(GError **err);
void loop_free(struct loop *l);

/* Watches fd for `events` (POLLIN and/or POLLOUT) until loop_remove_fd.
 * Returns 0 or -errno. One watch per fd. Loop thread only. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *opaque);
/* Changes the events of an existing watch. Loop thread only. */
int loop_modify_fd(struct loop *l, int fd, uint32_t events);
int loop_remove_fd(struct loop *l, int fd);

/* Runs fn(opaque) on the loop thread. Safe from any thread. */
void loop_call(struct loop *l, loop_call_fn fn, void *opaque);

/* Runs fn(opaque) on the loop's thread and returns once it has run: at
 * once when the caller is that thread or no thread runs the loop now,
 * else through loop_call, blocking the caller meanwhile. For work that must
 * happen on the loop that owns a device (creating and destroying a device
 * pinned to an I/O thread) from a thread that must wait for it. The loop's
 * thread must not be waiting for the caller. */
void loop_call_wait(struct loop *l, loop_call_fn fn, void *opaque);
/* True on the thread running loop_run, or while no thread runs it. */
bool loop_on_thread(struct loop *l);

/* Runs the calls queued with loop_call so far, and those they queue in
 * turn (at most 64 rounds, so a call that keeps re-queueing itself cannot
 * hang the caller), then the after-batch hooks, on the caller's thread,
 * which must be the loop's while loop_run is not running. For teardown: a stopped VM's devices may still
 * have deferred work queued that must run before they are freed. */
void loop_run_calls(struct loop *l);

/* ---- timers (timerfd on the loop) ---- */

struct loop_timer;
/* A disarmed timer whose expiry runs fn(opaque) on the loop thread. Loop
 * thread only, like everything below. NULL with *err on failure. */
struct loop_timer *loop_timer_new(struct loop *l, loop_call_fn fn, void *opaque, GError **err);
/* First expiry after ns nanoseconds (CLOCK_MONOTONIC), then every period_ns
 * (0: once). ns == 0 disarms. Re-arming replaces the previous setting. Expiries
 * that pile up while the loop is busy run fn once. Returns 0 or -errno. */
int loop_timer_arm(struct loop_timer *t, uint64_t ns, uint64_t period_ns);
void loop_timer_free(struct loop_timer *t);

/* ---- asynchronous file I/O (io_uring SQEs on the loop's ring) ----
 *
 * fn(opaque, res) runs on the loop thread once the operation completed:
 * res is what the syscall returns (bytes transferred, 0) or -errno. It is
 * never called from inside the submitting call. The iovec array and the
 * buffers must stay valid until fn runs. Submissions are batched: they reach
 * the kernel when the loop next waits, or at loop_flush. Each returns 0 or
 * -errno (nothing was queued; fn will not run). Reads and writes may be short:
 * the caller resubmits the rest. */
typedef void (*loop_io_fn)(void *opaque, int res);
int loop_readv(struct loop *l, int fd, const struct iovec *iov, unsigned n, uint64_t off,
               loop_io_fn fn, void *opaque);
int loop_writev(struct loop *l, int fd, const struct iovec *iov, unsigned n, uint64_t off,
                loop_io_fn fn, void *opaque);
/* datasync: fdatasync, else fsync. */
int loop_fsync(struct loop *l, int fd, bool datasync, loop_io_fn fn, void *opaque);
/* fallocate(2) mode bits (FALLOC_FL_*). */
int loop_fallocate(struct loop *l, int fd, int mode, uint64_t off, uint64_t len,
                   loop_io_fn fn, void *opaque);
/* Does the kernel's io_uring take this IORING_OP_* opcode? On the epoll
 * backend: true for READV, WRITEV, FSYNC and FALLOCATE (worker threads). */
bool loop_supports_op(struct loop *l, int opcode);
/* False on the epoll backend (see loop_new). */
bool loop_uses_io_uring(struct loop *l);
/* Hands queued submissions to the kernel now. */
void loop_flush(struct loop *l);
/* Submitted operations whose fn has not run yet. */
unsigned loop_io_pending(struct loop *l);

/* Runs fn(opaque) once the completions and wake-ups ready now have all been
 * dispatched, before the loop waits again: for work that batches over them
 * (one interrupt for many completed requests). The caller avoids queueing
 * the same hook twice; _cancel drops queued ones (an owner going away).
 * Loop thread only. */
void loop_after_batch(struct loop *l, loop_call_fn fn, void *opaque);
void loop_after_batch_cancel(struct loop *l, loop_call_fn fn, void *opaque);

/* Waits for at least one completion or wake-up and dispatches what is ready;
 * may be called from a callback (e.g. to drain I/O before a snapshot).
 * Returns 0 or -errno. */
int loop_run_once(struct loop *l);

/* Runs until loop_quit. Returns 0 or -errno on a fatal ring error. */
int loop_run(struct loop *l);
/* Safe from any thread. */
void loop_quit(struct loop *l);

#endif
