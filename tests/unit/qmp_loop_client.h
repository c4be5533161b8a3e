/* The client side of a QMP server that runs on the test's own thread: the
 * tests that talk to vmm's QMP commands through a socket pair (one end the
 * server's client, the other the test's) and turn the main loop by hand.
 * Include after cmocka.h. */
#ifndef TESTS_UNIT_QMP_LOOP_CLIENT_H
#define TESTS_UNIT_QMP_LOOP_CLIENT_H

#include <errno.h>
#include <sys/socket.h>

#include <glib.h>

#include "vmm/loop.h"

/* One message from fd, without its "\r\n": while none is complete the loop
 * runs (replies, event timers). */
static inline char *qmp_loop_read_msg(int fd, struct loop *loop)
{
    GString *b = g_string_new(NULL);
    for (;;) {
        if (b->len >= 2 && b->str[b->len - 2] == '\r' && b->str[b->len - 1] == '\n') {
            g_string_truncate(b, b->len - 2);
            return g_string_free(b, FALSE);
        }
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 1) {
            g_string_append_c(b, c);
            continue;
        }
        assert_true(n < 0 && errno == EAGAIN);
        assert_int_equal(loop_run_once(loop), 0);
    }
}

#endif
