/* Host side of a character device (the 16550, virtio-console): stdio, a
 * pty, a file, a unix socket server, or nothing. Output may be written
 * synchronously from any thread (char_backend_write) or asynchronously on
 * the loop thread (char_backend_write_iov); input is read on the loop
 * thread and handed to the frontend.
 *
 * A socket (SERIAL_SOCKET) listens at its path (a stale socket there is
 * replaced; the path is removed at close) and serves one client at a time:
 * the next one waits in the listen backlog until the current one leaves.
 * Output while no client is connected is dropped, as on a pty nobody reads. */
#ifndef DEVICES_CHAR_BACKEND_H
#define DEVICES_CHAR_BACKEND_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/config.h"

struct loop;
struct char_backend;

struct char_frontend {
    /* How many bytes the frontend can take now (0 = stop reading the host fd). */
    size_t (*can_receive)(void *opaque);
    void (*receive)(void *opaque, const uint8_t *buf, size_t len);
    void *opaque;
};

/* mode/path as in struct vm_config. For SERIAL_STDIO on a terminal, the
 * terminal goes raw until char_backend_close, and Ctrl-A x ends vmm
 * (quit_fn is called on the loop thread). */
struct char_backend *char_backend_open(enum serial_mode mode, const char *path, GError **err);
/* A backend on caller-given fds (-1 for none), which it then owns and closes;
 * escapes enables the Ctrl-A commands. For tests and future socket backends. */
struct char_backend *char_backend_open_fds(int in_fd, int out_fd, bool escapes);
/* Starts reading host input on loop l (main thread, once). */
void char_backend_attach(struct char_backend *be, struct loop *l, void (*quit_fn)(void *opaque),
                         void *quit_opaque);
/* The device that receives input from now on; NULL detaches it (input is then
 * left unread). The backend outlives devices: a reset makes a new frontend.
 * The frontend's callbacks run on the loop thread under a backend lock, so
 * after this returns the old frontend is never called again; they must not
 * call char_backend_set_frontend themselves. */
void char_backend_set_frontend(struct char_backend *be, const struct char_frontend *fe);
/* The frontend calls this when it can receive again after can_receive said 0. */
void char_backend_accept_input(struct char_backend *be);
/* Any thread. A pty's output is non-blocking: what a pty nobody reads cannot
 * take is dropped. stdout stays blocking (its file description is shared
 * with the shell), so a stdout pipe nobody drains stalls the writer. */
void char_backend_write(struct char_backend *be, const uint8_t *buf, size_t len);
/* Asynchronous output, loop thread only. Writes (a copy of) iov in order
 * after the writes queued before it.
 * Returns 0 when it is already done, or 1 when done(opaque) will run on the
 * loop thread once it is. "Done" means written, except where output may be
 * dropped: a pty that cannot take it, a socket without a client or whose
 * client left, an output error. On stdio, a file or a socket's client a
 * slow reader is waited for, never dropped: the caller holds back further
 * output until done, which is its backpressure. */
typedef void (*char_write_done_fn)(void *opaque);
int char_backend_write_iov(struct char_backend *be, const struct iovec *iov, unsigned n,
                           char_write_done_fn done, void *opaque);
/* The writes queued with this opaque finish without calling done (the
 * frontend is going away). Their bytes may still be written: a write the
 * kernel has started is not recalled. Loop thread. */
void char_backend_write_cancel(struct char_backend *be, void *opaque);
/* False while a socket has no client. */
bool char_backend_connected(const struct char_backend *be);
/* The terminal's size when the output is a terminal (stdio on a tty, a
 * pty once its user set a size); false otherwise. */
bool char_backend_winsize(const struct char_backend *be, uint16_t *cols, uint16_t *rows);
/* The pty slave path (SERIAL_PTY), else NULL. */
const char *char_backend_pty_path(const struct char_backend *be);
void char_backend_close(struct char_backend *be);

#endif
