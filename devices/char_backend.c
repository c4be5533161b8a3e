#include "devices/char_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#define ESCAPE_CHAR 0x01    /* Ctrl-A, as in QEMU */
#define READ_CHUNK  256

struct char_backend {
    int in_fd, out_fd;
    bool own_in, own_out;
    int pty_slave_fd;       /* held open so the master never sees a hangup */
    char *pty_path;
    bool escapes;
    bool saw_escape;        /* loop thread */

    pthread_mutex_t out_lock;

    /* Loop-thread state: whether in_fd is watched, and whether it hit EOF. */
    struct loop *loop;
    bool watching;
    bool in_done;
    void (*quit_fn)(void *opaque);
    void *quit_opaque;

    pthread_mutex_t fe_lock;    /* held across frontend callbacks */
    struct char_frontend fe;
    bool has_fe;

    int resume_queued;      /* atomic: a resume call is pending on the loop */
    int refs;               /* atomic: the owner plus each pending loop call */
};

/* The terminal state to put back, global because restoring must also work
 * from atexit and from fatal-signal handlers. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_is_raw;

static void tty_restore(void)
{
    if (tty_is_raw) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tty);
        tty_is_raw = 0;
    }
}

static void tty_fatal_signal(int sig)
{
    tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Raw input so that every key (Ctrl-C included) reaches the guest, but output
 * processing stays on: the terminal is shared with vmm's own messages. */
static void tty_make_raw(void)
{
    static bool hooks_installed;
    struct termios t;
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t) < 0)
        return;
    saved_tty = t;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0)
        return;
    tty_is_raw = 1;
    if (!hooks_installed) {
        hooks_installed = true;
        atexit(tty_restore);
        static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
        for (size_t i = 0; i < G_N_ELEMENTS(fatal); i++)
            signal(fatal[i], tty_fatal_signal);
    }
}

static struct char_backend *backend_new(int in_fd, int out_fd)
{
    struct char_backend *be = g_new0(struct char_backend, 1);
    be->in_fd = in_fd;
    be->out_fd = out_fd;
    be->pty_slave_fd = -1;
    be->refs = 1;
    pthread_mutex_init(&be->out_lock, NULL);
    pthread_mutex_init(&be->fe_lock, NULL);
    return be;
}

static void backend_unref(struct char_backend *be)
{
    if (__atomic_sub_fetch(&be->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (be->own_in && be->in_fd >= 0)
        close(be->in_fd);
    if (be->own_out && be->out_fd >= 0 && be->out_fd != be->in_fd)
        close(be->out_fd);
    if (be->pty_slave_fd >= 0)
        close(be->pty_slave_fd);
    g_free(be->pty_path);
    pthread_mutex_destroy(&be->out_lock);
    pthread_mutex_destroy(&be->fe_lock);
    g_free(be);
}

struct char_backend *char_backend_open_fds(int in_fd, int out_fd, bool escapes)
{
    struct char_backend *be = backend_new(in_fd, out_fd);
    be->own_in = be->own_out = true;
    be->escapes = escapes;
    return be;
}

static struct char_backend *open_pty(GError **err)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    char name[128];
    struct termios t;
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0 ||
        tcgetattr(m, &t) < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot create a pty: %s (is /dev/pts mounted?)", g_strerror(errno));
        if (m >= 0)
            close(m);
        return NULL;
    }
    cfmakeraw(&t);
    tcsetattr(m, TCSANOW, &t);
    struct char_backend *be = backend_new(m, m);
    be->own_in = be->own_out = true;
    be->pty_path = g_strdup(name);
    be->pty_slave_fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    return be;
}

struct char_backend *char_backend_open(enum serial_mode mode, const char *path, GError **err)
{
    switch (mode) {
    case SERIAL_OFF:
        return backend_new(-1, -1);
    case SERIAL_STDIO: {
        /* A closed stdin reads as immediate EOF instead of a stale fd. */
        int in = fcntl(STDIN_FILENO, F_GETFD) < 0 ? -1 : STDIN_FILENO;
        struct char_backend *be = backend_new(in, STDOUT_FILENO);
        if (in >= 0 && isatty(in)) {
            be->escapes = true;
            tty_make_raw();
        }
        return be;
    }
    case SERIAL_PTY:
        return open_pty(err);
    case SERIAL_FILE: {
        int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (fd < 0) {
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(path ? errno : ENOENT),
                        "cannot create output file '%s': %s; give a writable path", path ? path : "",
                        path ? g_strerror(errno) : "no path given");
            return NULL;
        }
        struct char_backend *be = backend_new(-1, fd);
        be->own_out = true;
        return be;
    }
    }
    g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "unknown serial mode %d", (int)mode);
    return NULL;
}

static void on_input(void *opaque, int fd, uint32_t revents);

static void stop_watching(struct char_backend *be)
{
    if (be->watching) {
        loop_remove_fd(be->loop, be->in_fd);
        be->watching = false;
    }
}

/* Loop thread: watches in_fd when there is somewhere for input to go. */
static void start_watching(struct char_backend *be)
{
    if (be->watching || !be->loop || be->in_fd < 0 || be->in_done)
        return;
    pthread_mutex_lock(&be->fe_lock);
    bool has_fe = be->has_fe;
    pthread_mutex_unlock(&be->fe_lock);
    if (!has_fe)
        return;
    int r = loop_add_fd(be->loop, be->in_fd, POLLIN, on_input, be);
    if (r < 0) {
        log_warn("serial input disabled: cannot watch fd %d: %s", be->in_fd, g_strerror(-r));
        be->in_done = true;
        return;
    }
    be->watching = true;
}

static void resume_fn(void *opaque)
{
    struct char_backend *be = opaque;
    __atomic_store_n(&be->resume_queued, 0, __ATOMIC_RELEASE);
    if (be->loop)
        start_watching(be);
    backend_unref(be);
}

static void queue_resume(struct char_backend *be)
{
    if (!be->loop || __atomic_exchange_n(&be->resume_queued, 1, __ATOMIC_ACQ_REL))
        return;
    __atomic_add_fetch(&be->refs, 1, __ATOMIC_ACQ_REL);
    loop_call(be->loop, resume_fn, be);
}

/* Strips the Ctrl-A commands out of buf in place; returns the bytes left.
 * Sets *quit when Ctrl-A x was typed (the rest of buf is then dropped). */
static size_t filter_escapes(struct char_backend *be, uint8_t *buf, size_t n, bool *quit)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        if (!be->saw_escape) {
            if (c == ESCAPE_CHAR)
                be->saw_escape = true;
            else
                buf[out++] = c;
            continue;
        }
        be->saw_escape = false;
        if (c == ESCAPE_CHAR) {
            buf[out++] = c;
        } else if (c == 'x' || c == 'X') {
            *quit = true;
            return out;
        } else if (c == 'h' || c == 'H' || c == '?') {
            static const char help[] = "\r\nC-a x  quit vmm\r\nC-a C-a  send C-a\r\n";
            if (write(STDERR_FILENO, help, sizeof(help) - 1) < 0)
                break;
        }
    }
    return out;
}

/* Reads one chunk the frontend has room for and hands it over. Returns
 * false when reading should stop for now (no room, nothing there, EOF). */
static bool read_chunk(struct char_backend *be, int fd)
{
    uint8_t buf[READ_CHUNK];

    pthread_mutex_lock(&be->fe_lock);
    size_t room = be->has_fe ? be->fe.can_receive(be->fe.opaque) : 0;
    pthread_mutex_unlock(&be->fe_lock);
    if (room == 0) {
        /* Resumed by char_backend_accept_input or a new frontend. */
        stop_watching(be);
        return false;
    }
    ssize_t n = read(fd, buf, MIN(room, sizeof(buf)));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n <= 0) {
        /* EOF, a hung-up terminal, or an fd that cannot be read: stop for good. */
        if (n < 0)
            log_debug("serial input stopped: %s", g_strerror(errno));
        stop_watching(be);
        be->in_done = true;
        return false;
    }
    bool quit = false;
    size_t len = be->escapes ? filter_escapes(be, buf, (size_t)n, &quit) : (size_t)n;
    if (len > 0) {
        pthread_mutex_lock(&be->fe_lock);
        if (be->has_fe)
            be->fe.receive(be->fe.opaque, buf, len);
        pthread_mutex_unlock(&be->fe_lock);
    }
    if (quit && be->quit_fn) {
        be->quit_fn(be->quit_opaque);
        return false;
    }
    return true;
}

/* Drains what the frontend can take: a poll completion is not repeated for
 * data (or a hangup) that was already there, so leftovers must be read now,
 * or the watch dropped until the frontend has room. */
static void on_input(void *opaque, int fd, uint32_t revents)
{
    struct char_backend *be = opaque;
    while (read_chunk(be, fd) && be->watching) {
        /* stdin may be a blocking fd we must not make non-blocking (the
         * terminal's file description is shared): only read what is there. */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0)
            break;
    }
}

void char_backend_attach(struct char_backend *be, struct loop *l, void (*quit_fn)(void *opaque),
                         void *quit_opaque)
{
    be->loop = l;
    be->quit_fn = quit_fn;
    be->quit_opaque = quit_opaque;
    start_watching(be);
}

void char_backend_set_frontend(struct char_backend *be, const struct char_frontend *fe)
{
    pthread_mutex_lock(&be->fe_lock);
    be->has_fe = fe != NULL;
    if (fe)
        be->fe = *fe;
    pthread_mutex_unlock(&be->fe_lock);
    if (fe)
        queue_resume(be);
}

void char_backend_accept_input(struct char_backend *be)
{
    queue_resume(be);
}

void char_backend_write(struct char_backend *be, const uint8_t *buf, size_t len)
{
    if (be->out_fd < 0)
        return;
    pthread_mutex_lock(&be->out_lock);
    while (len > 0) {
        ssize_t n = write(be->out_fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && be->pty_slave_fd < 0) {
            /* stdio or a file that came to us non-blocking (the flag lives on
             * the shared open file, set by whoever else uses it): guest output
             * is not ours to drop, so wait for the reader as a blocking fd would. */
            struct pollfd pfd = { .fd = be->out_fd, .events = POLLOUT };
            if (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
                continue;
        }
        if (n <= 0)
            break;  /* full pty nobody reads, or a broken output: the rest is dropped */
        buf += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&be->out_lock);
}

const char *char_backend_pty_path(const struct char_backend *be)
{
    return be->pty_path;
}

void char_backend_close(struct char_backend *be)
{
    if (!be)
        return;
    if (be->loop)
        stop_watching(be);
    be->loop = NULL;
    if (be->in_fd == STDIN_FILENO)
        tty_restore();
    backend_unref(be);
}
