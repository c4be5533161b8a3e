/* The event loop: one io_uring per loop. The main thread runs one; I/O
 * threads may run more. Everything registered on a loop runs on its thread. */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <glib.h>
#include <stdint.h>

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

/* Runs the calls queued with loop_call so far, and those they queue in
 * turn (at most 64 rounds, so a call that keeps re-queueing itself cannot
 * hang the caller), on the caller's thread, which must be the loop's while
 * loop_run is not running. For teardown: a stopped VM's devices may still
 * have deferred work queued that must run before they are freed. */
void loop_run_calls(struct loop *l);

/* Runs until loop_quit. Returns 0 or -errno on a fatal ring error. */
int loop_run(struct loop *l);
/* Safe from any thread. */
void loop_quit(struct loop *l);

#endif
