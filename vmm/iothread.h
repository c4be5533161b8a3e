/* I/O threads (--object iothread,id=NAME): each is one more event loop
 * (one io_uring) running on a thread of its own, for the devices pinned to
 * it (a disk's iothread=NAME): their queue kicks, request processing and
 * completions run there instead of on the main loop.
 *
 * I/O threads are process-wide and outlive guest resets: they are created
 * before the first VM and freed after the last. A device pinned to one is
 * created and destroyed on its thread (loop_call_wait), since a loop's fd
 * watches and ring belong to its thread. */
#ifndef VMM_IOTHREAD_H
#define VMM_IOTHREAD_H

#include <glib.h>
#include <pthread.h>

struct iothread;
struct loop;

/* Starts thread "iothread-<id>" (the name cut to 15 bytes) running a new
 * loop, and registers it under id. NULL with *err when the id is taken or
 * the loop or thread cannot be made. */
struct iothread *iothread_new(const char *id, GError **err);
/* The registered I/O thread `id`, or NULL. */
struct iothread *iothread_find(const char *id);
struct loop *iothread_loop(struct iothread *t);
pthread_t iothread_thread(struct iothread *t);
/* Stops the loop, joins the thread, frees the loop (with nothing left on
 * it) and unregisters. */
void iothread_free(struct iothread *t);
void iothread_free_all(void);

#endif
