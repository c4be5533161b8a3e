/* Host side of a character device (serial port, later virtio-console):
 * stdio, a pty, a file, or nothing. Output may be written from any thread;
 * input is read on the loop thread and handed to the frontend. */
#ifndef DEVICES_CHAR_BACKEND_H
#define DEVICES_CHAR_BACKEND_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* The pty slave path (SERIAL_PTY), else NULL. */
const char *char_backend_pty_path(const struct char_backend *be);
void char_backend_close(struct char_backend *be);

#endif
