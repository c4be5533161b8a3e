#include "devices/char_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* How output behaves when the reader is slow: a stream (stdio, a file, the
 * fds of char_backend_open_fds) and a socket's client make the writer wait;
 * a pty drops what does not fit. */
enum backend_kind { KIND_STREAM, KIND_PTY, KIND_SOCKET };

/* One char_backend_write_iov that has not finished. */
struct write_req {
    char_write_done_fn done;    /* NULL: cancelled, finish silently */
    void *opaque;
    unsigned n, first;          /* iov[first, n) is what is left */
    struct iovec iov[];
};

struct char_backend {
    enum backend_kind kind;
    int in_fd, out_fd;          /* a socket's: the client (out_fd a dup), -1 while none */
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

    /* Asynchronous output (loop thread): requests in order; the head is
     * either on the loop's ring (wr_inflight) or waiting for POLLOUT. */
    GQueue writes;
    bool wr_inflight;
    bool wr_polling;

    /* KIND_SOCKET: the listening socket and its path (unlinked at close). */
    int listen_fd;
    char *sock_path;
    bool listening;         /* listen_fd watched on the loop */
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
    be->listen_fd = -1;
    be->refs = 1;
    g_queue_init(&be->writes);
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
    if (be->listen_fd >= 0)
        close(be->listen_fd);
    if (be->sock_path)
        unlink(be->sock_path);
    g_free(be->sock_path);
    g_queue_clear_full(&be->writes, g_free);
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
    be->kind = KIND_PTY;
    be->own_in = be->own_out = true;
    be->pty_path = g_strdup(name);
    be->pty_slave_fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    return be;
}

/* A unix socket server at path: a stale socket there is replaced, anything
 * else is left alone and refused. */
static struct char_backend *open_socket(const char *path, GError **err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    if (!path || !*path || strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "socket path '%s' is empty or longer than %zu bytes; give a shorter path",
                    path ? path : "", sizeof(sa.sun_path) - 1);
        return NULL;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                        "'%s' exists and is not a socket; give another path or remove it", path);
            return NULL;
        }
        unlink(path);
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        int e = errno;
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "cannot listen on socket '%s': %s", path,
                    g_strerror(e));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct char_backend *be = backend_new(-1, -1);
    be->kind = KIND_SOCKET;
    be->listen_fd = fd;
    be->sock_path = g_strdup(path);
    return be;
}

/* N for a path "/dev/fd/N" (decimal, N > 2), else -1. */
static int inherited_fd(const char *path)
{
    if (!path || !g_str_has_prefix(path, "/dev/fd/"))
        return -1;
    const char *n = path + strlen("/dev/fd/");
    char *end;
    errno = 0;
    long v = strtol(n, &end, 10);
    if (!g_ascii_isdigit(n[0]) || *end || errno || v <= 2 || v > INT_MAX)
        return -1;
    return (int)v;
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
        int fd, inherited = inherited_fd(path);
        if (inherited >= 0) {
            /* /dev/fd/N: the inherited fd N as it is (its O_APPEND or
             * offset; no reopen, no truncation), e.g. libvirt's -add-fd */
            int fl = fcntl(inherited, F_GETFL);
            if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) {
                g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_BADF, "cannot write to '%s': fd %d is %s", path,
                            inherited, fl < 0 ? "not open" : "open for reading only");
                return NULL;
            }
            fd = fcntl(inherited, F_DUPFD_CLOEXEC, 3);
        } else {
            fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        }
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
    case SERIAL_SOCKET:
        return open_socket(path, err);
    }
    g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "unknown serial mode %d", (int)mode);
    return NULL;
}

static void on_input(void *opaque, int fd, uint32_t revents);
static void socket_disconnect(struct char_backend *be);

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
        if (be->kind == KIND_SOCKET) {
            socket_disconnect(be);
            return false;
        }
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

/* ---- unix socket server: one client at a time ---- */

static void on_accept(void *opaque, int fd, uint32_t revents);

static void socket_listen(struct char_backend *be)
{
    if (be->listening || !be->loop || be->listen_fd < 0)
        return;
    int r = loop_add_fd(be->loop, be->listen_fd, POLLIN, on_accept, be);
    if (r < 0) {
        log_warn("socket %s: cannot watch for clients: %s", be->sock_path, g_strerror(-r));
        return;
    }
    be->listening = true;
}

/* While a client is connected the next ones wait in the listen backlog. */
static void on_accept(void *opaque, int fd, uint32_t revents)
{
    struct char_backend *be = opaque;
    if (be->in_fd >= 0)
        return;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
        return;
    int out = fcntl(c, F_DUPFD_CLOEXEC, 0);    /* its own watch for POLLOUT */
    if (out < 0) {
        close(c);
        return;
    }
    loop_remove_fd(be->loop, fd);
    be->listening = false;
    pthread_mutex_lock(&be->out_lock);
    be->in_fd = c;
    be->out_fd = out;
    pthread_mutex_unlock(&be->out_lock);
    log_info("socket %s: client connected", be->sock_path);
    start_watching(be);
}

static void write_pump(struct char_backend *be);

static void socket_close_client(struct char_backend *be)
{
    stop_watching(be);
    if (be->wr_polling) {
        loop_remove_fd(be->loop, be->out_fd);
        be->wr_polling = false;
    }
    pthread_mutex_lock(&be->out_lock);
    close(be->in_fd);
    close(be->out_fd);
    be->in_fd = be->out_fd = -1;
    pthread_mutex_unlock(&be->out_lock);
    log_info("socket %s: client disconnected", be->sock_path);
    socket_listen(be);
}

/* The client left (EOF, error): what it was still to be sent is dropped,
 * and the next client is accepted. */
static void socket_disconnect(struct char_backend *be)
{
    if (be->in_fd < 0)
        return;
    socket_close_client(be);
    write_pump(be);
}

void char_backend_attach(struct char_backend *be, struct loop *l, void (*quit_fn)(void *opaque),
                         void *quit_opaque)
{
    be->loop = l;
    be->quit_fn = quit_fn;
    be->quit_opaque = quit_opaque;
    start_watching(be);
    socket_listen(be);
}

bool char_backend_connected(const struct char_backend *be)
{
    return be->kind != KIND_SOCKET || be->in_fd >= 0;
}

/* ---- asynchronous output (loop thread) ---- */

static void write_finish_head(struct char_backend *be)
{
    struct write_req *r = g_queue_pop_head(&be->writes);
    if (!r)
        return;
    char_write_done_fn done = r->done;
    void *opaque = r->opaque;
    g_free(r);
    if (done)
        done(opaque);
}

/* Drops n written bytes off the front of r; true when nothing is left. */
static bool req_advance(struct write_req *r, size_t n)
{
    while (r->first < r->n && n >= r->iov[r->first].iov_len) {
        n -= r->iov[r->first].iov_len;
        r->first++;
    }
    if (r->first < r->n) {
        r->iov[r->first].iov_base = (uint8_t *)r->iov[r->first].iov_base + n;
        r->iov[r->first].iov_len -= n;
    }
    return r->first == r->n;
}

static void on_writable(void *opaque, int fd, uint32_t revents)
{
    struct char_backend *be = opaque;
    loop_remove_fd(be->loop, fd);
    be->wr_polling = false;
    write_pump(be);
}

/* false: the head request cannot wait and is to be dropped. */
static bool wait_writable(struct char_backend *be)
{
    if (loop_add_fd(be->loop, be->out_fd, POLLOUT, on_writable, be) == 0) {
        be->wr_polling = true;
        return true;
    }
    log_warn("cannot wait for output fd %d to drain; output dropped", be->out_fd);
    return false;
}

static void on_write_done(void *opaque, int res)
{
    struct char_backend *be = opaque;
    be->wr_inflight = false;
    struct write_req *r = g_queue_peek_head(&be->writes);
    if (be->loop && r) {
        if (res == -EAGAIN) {
            /* A stream someone else made non-blocking: wait, never drop. */
            if (!wait_writable(be))
                write_finish_head(be);
        } else if (res == -EINTR || (res > 0 && !req_advance(r, (size_t)res))) {
            /* the rest goes in the next write */
        } else {
            if (res < 0)
                log_debug("output write failed: %s; the rest is dropped", g_strerror(-res));
            write_finish_head(be);
        }
        write_pump(be);
    }
    backend_unref(be);
}

/* Moves the head request on as far as it goes now. Returns true when the
 * head finished here (its done is then the caller's to run or not). */
static bool write_step(struct char_backend *be, struct write_req *r)
{
    if (be->out_fd < 0)
        return true;        /* off, or a socket without a client: dropped */
    if (be->kind == KIND_STREAM) {
        /* The loop's ring: stdout may be a blocking fd (shared with the
         * shell, never made non-blocking) and a file write may block. */
        int e = loop_writev(be->loop, be->out_fd, r->iov + r->first, r->n - r->first, (uint64_t)-1,
                            on_write_done, be);
        if (e < 0) {
            log_warn("cannot queue an output write: %s; output dropped", g_strerror(-e));
            return true;
        }
        __atomic_add_fetch(&be->refs, 1, __ATOMIC_ACQ_REL);
        be->wr_inflight = true;
        return false;
    }
    for (;;) {
        struct msghdr mh = { .msg_iov = r->iov + r->first, .msg_iovlen = r->n - r->first };
        ssize_t n = be->kind == KIND_SOCKET ? sendmsg(be->out_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)
                                            : writev(be->out_fd, r->iov + r->first, (int)(r->n - r->first));
        if (n > 0) {
            if (req_advance(r, (size_t)n))
                return true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && be->kind == KIND_SOCKET)
            return !wait_writable(be);
        /* A full pty nobody reads drops the rest; a socket error ends the client. */
        if (be->kind == KIND_SOCKET && n < 0)
            socket_close_client(be);
        return true;
    }
}

static void write_pump(struct char_backend *be)
{
    struct write_req *r;
    while (!be->wr_inflight && !be->wr_polling && (r = g_queue_peek_head(&be->writes))) {
        if (!write_step(be, r))
            return;
        if (g_queue_peek_head(&be->writes) == r)
            write_finish_head(be);
    }
}

int char_backend_write_iov(struct char_backend *be, const struct iovec *iov, unsigned n,
                           char_write_done_fn done, void *opaque)
{
    /* A copy: a write the kernel has started outlives a cancel, and the
     * guest memory the caller's iov points into may be gone by then. */
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += iov[i].iov_len;
    struct write_req *r = g_malloc(sizeof(*r) + sizeof(struct iovec) + total);
    *r = (struct write_req){ .done = done, .opaque = opaque, .n = total > 0 };
    uint8_t *data = (uint8_t *)(r->iov + 1), *p = data;
    for (unsigned i = 0; i < n; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    r->iov[0] = (struct iovec){ data, total };
    if (!be->loop) {
        g_free(r);
        return 0;
    }
    bool idle = g_queue_is_empty(&be->writes);
    g_queue_push_tail(&be->writes, r);
    if (!idle)
        return 1;
    if (r->n == 0 || write_step(be, r)) {
        /* Done at once: the caller carries on without a callback. */
        if (g_queue_peek_head(&be->writes) == r) {
            g_queue_pop_head(&be->writes);
            g_free(r);
        }
        write_pump(be);
        return 0;
    }
    return 1;
}

void char_backend_write_cancel(struct char_backend *be, void *opaque)
{
    for (GList *l = be->writes.head; l; l = l->next) {
        struct write_req *r = l->data;
        if (r->opaque == opaque)
            r->done = NULL;
    }
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

bool char_backend_winsize(const struct char_backend *be, uint16_t *cols, uint16_t *rows)
{
    struct winsize ws;
    if (be->kind == KIND_SOCKET || be->out_fd < 0 || !isatty(be->out_fd) ||
        ioctl(be->out_fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_col || !ws.ws_row)
        return false;
    *cols = ws.ws_col;
    *rows = ws.ws_row;
    return true;
}

const char *char_backend_pty_path(const struct char_backend *be)
{
    return be->pty_path;
}

/* At close, what the guest wrote last still goes out: the write on the ring
 * is waited for (it may not even be submitted yet), the ones behind it are
 * written synchronously. Except to a socket, whose client may never read. */
static void flush_writes(struct char_backend *be)
{
    loop_flush(be->loop);
    while (be->wr_inflight && loop_run_once(be->loop) == 0)
        ;
    struct write_req *r;
    while ((r = g_queue_pop_head(&be->writes))) {
        for (unsigned i = r->first; i < r->n && be->kind != KIND_SOCKET; i++)
            char_backend_write(be, r->iov[i].iov_base, r->iov[i].iov_len);
        g_free(r);
    }
}

void char_backend_close(struct char_backend *be)
{
    if (!be)
        return;
    if (be->loop) {
        if (be->wr_polling)
            loop_remove_fd(be->loop, be->out_fd);
        be->wr_polling = false;
        flush_writes(be);
        stop_watching(be);
        if (be->listening)
            loop_remove_fd(be->loop, be->listen_fd);
        be->listening = false;
        if (be->wr_polling)
            loop_remove_fd(be->loop, be->out_fd);
        be->wr_polling = false;
    }
    be->loop = NULL;
    if (be->in_fd == STDIN_FILENO)
        tty_restore();
    backend_unref(be);
}
