#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/char_backend.h"
#include "vmm/loop.h"

/* A frontend that takes `room` bytes at a time and stops the loop when it
 * has `want` bytes, or when it refused input. */
struct fake_fe {
    struct loop *loop;
    size_t room;
    uint8_t got[256];
    size_t ngot, want;
    int refusals;
    int quits;
};

static size_t fe_can_receive(void *opaque)
{
    struct fake_fe *fe = opaque;
    if (fe->room == 0) {
        fe->refusals++;
        loop_quit(fe->loop);
    }
    return fe->room;
}

static void fe_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct fake_fe *fe = opaque;
    assert_true(len <= fe->room);
    assert_true(fe->ngot + len <= sizeof(fe->got));
    memcpy(fe->got + fe->ngot, buf, len);
    fe->ngot += len;
    if (fe->ngot >= fe->want)
        loop_quit(fe->loop);
}

static void on_quit(void *opaque)
{
    struct fake_fe *fe = opaque;
    fe->quits++;
    loop_quit(fe->loop);
}

struct fixture {
    struct loop *loop;
    int in_w, out_r;
    int in_r;           /* the backend's end, to check what it left unread */
    struct char_backend *be;
    struct fake_fe fe;
};

static struct fixture *make(bool escapes)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_NONBLOCK), 0);
    assert_int_equal(pipe2(out, O_NONBLOCK), 0);
    f->in_r = in[0];
    f->in_w = in[1];
    f->out_r = out[0];
    f->loop = loop_new(NULL);
    assert_non_null(f->loop);
    f->be = char_backend_open_fds(in[0], out[1], escapes);
    f->fe.loop = f->loop;
    f->fe.room = 64;
    f->fe.want = 1;
    struct char_frontend cfe = { fe_can_receive, fe_receive, &f->fe };
    char_backend_set_frontend(f->be, &cfe);
    char_backend_attach(f->be, f->loop, on_quit, &f->fe);
    return f;
}

static int setup(void **state)
{
    *state = make(false);
    return 0;
}

static int setup_escapes(void **state)
{
    *state = make(true);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char_backend_close(f->be);
    loop_free(f->loop);
    close(f->in_w);
    close(f->out_r);
    free(f);
    return 0;
}

static void type(struct fixture *f, const char *s, size_t n)
{
    assert_int_equal(write(f->in_w, s, n), (ssize_t)n);
}

static int unread(struct fixture *f)
{
    int n = -1;
    assert_int_equal(ioctl(f->in_r, FIONREAD, &n), 0);
    return n;
}

/* Whether the backend still watches its input fd: the loop allows one watch per fd. */
static bool backend_watching(struct fixture *f)
{
    int r = loop_add_fd(f->loop, f->in_r, POLLIN, NULL, NULL);
    if (r == 0)
        loop_remove_fd(f->loop, f->in_r);
    return r == -EEXIST;
}

static void test_output(void **state)
{
    struct fixture *f = *state;
    char_backend_write(f->be, (const uint8_t *)"abc", 3);
    char buf[8] = { 0 };
    assert_int_equal(read(f->out_r, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "abc");
}

struct slow_reader {
    int fd;
    size_t got;
    bool intact;
};

static void *drain_slowly(void *opaque)
{
    struct slow_reader *r = opaque;
    uint8_t buf[4096];
    struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
    while (poll(&pfd, 1, 2000) > 0) {
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            r->intact &= buf[i] == (uint8_t)(r->got + (size_t)i);
        r->got += (size_t)n;
        usleep(200);
    }
    return NULL;
}

static void test_output_waits_for_slow_reader(void **state)
{
    struct fixture *f = *state;
    /* stdio that arrives non-blocking (the flag is shared with whoever else
     * holds the open file): guest output must wait for the reader, not be lost. */
    static uint8_t big[1 << 20];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    struct slow_reader r = { .fd = f->out_r, .intact = true };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drain_slowly, &r), 0);
    char_backend_write(f->be, big, sizeof(big));
    pthread_join(t, NULL);
    assert_int_equal(r.got, sizeof(big));
    assert_true(r.intact);
}

static void test_input(void **state)
{
    struct fixture *f = *state;
    f->fe.want = 5;
    type(f, "hello", 5);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.ngot, 5);
    assert_memory_equal(f->fe.got, "hello", 5);
    assert_int_equal(unread(f), 0);
}

static void *accept_from_thread(void *opaque)
{
    char_backend_accept_input(opaque);
    return NULL;
}

static void test_flow_control(void **state)
{
    struct fixture *f = *state;
    f->fe.room = 0;
    type(f, "abcde", 5);
    assert_int_equal(loop_run(f->loop), 0);     /* until the frontend refuses */
    assert_int_equal(f->fe.refusals, 1);
    assert_int_equal(f->fe.ngot, 0);
    assert_int_equal(unread(f), 5);             /* nothing was taken */
    assert_false(backend_watching(f));          /* and it stopped polling */

    /* Room for 2 at a time appears; the frontend says so from a vCPU-like
     * thread. What is already there arrives without more host input. */
    f->fe.room = 2;
    f->fe.want = 5;
    pthread_t t;
    pthread_create(&t, NULL, accept_from_thread, f->be);
    pthread_join(t, NULL);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.ngot, 5);            /* fe_receive checked each chunk fits */
    assert_memory_equal(f->fe.got, "abcde", 5);
    assert_int_equal(unread(f), 0);
    assert_true(backend_watching(f));
}

static void test_detached_frontend_leaves_input(void **state)
{
    struct fixture *f = *state;
    char_backend_set_frontend(f->be, NULL);
    f->fe.room = 0;     /* would count a refusal if it were still asked */
    type(f, "zz", 2);
    loop_call(f->loop, (loop_call_fn)loop_quit, f->loop);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.refusals + (int)f->fe.ngot, 0);
    assert_int_equal(unread(f), 2);
}

static void test_eof_stops_reading(void **state)
{
    struct fixture *f = *state;
    f->fe.want = 2;
    type(f, "ok", 2);
    close(f->in_w);
    f->in_w = -1;
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.ngot, 2);
    assert_false(backend_watching(f));          /* no busy loop on a hung-up pipe */
}

static void test_escape_quit(void **state)
{
    struct fixture *f = *state;
    f->fe.want = 100;
    type(f, "ab\x01xcd", 6);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.quits, 1);
    assert_int_equal(f->fe.ngot, 2);            /* what came before; not the command */
    assert_memory_equal(f->fe.got, "ab", 2);
}

static void test_escape_literal_and_split(void **state)
{
    struct fixture *f = *state;
    f->fe.want = 3;
    /* Ctrl-A Ctrl-A sends one Ctrl-A; the last Ctrl-A waits for the next read. */
    type(f, "a\x01\x01" "b\x01", 5);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.ngot, 3);
    assert_memory_equal(f->fe.got, "a\x01" "b", 3);
    f->fe.want = 100;
    type(f, "x", 1);                            /* completes the Ctrl-A x */
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.quits, 1);
    assert_int_equal(f->fe.ngot, 3);
}

static void test_no_escapes_when_disabled(void **state)
{
    struct fixture *f = *state;
    f->fe.want = 2;
    type(f, "\x01x", 2);
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->fe.quits, 0);
    assert_memory_equal(f->fe.got, "\x01x", 2);
}

static void test_file_mode(void **state)
{
    char dir[] = "/tmp/test_char_backend.XXXXXX";
    assert_non_null(mkdtemp(dir));
    g_autofree char *path = g_build_filename(dir, "out.log", NULL);
    GError *err = NULL;
    mode_t old_umask = umask(022);
    struct char_backend *be = char_backend_open(SERIAL_FILE, path, &err);
    umask(old_umask);
    assert_non_null(be);
    assert_null(char_backend_pty_path(be));
    char_backend_write(be, (const uint8_t *)"log", 3);
    char_backend_close(be);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(st.st_size, 3);
    unlink(path);

    g_autofree char *bad = g_build_filename(dir, "missing", "out.log", NULL);
    assert_null(char_backend_open(SERIAL_FILE, bad, &err));
    assert_non_null(err);
    assert_non_null(strstr(err->message, bad));
    assert_null(strchr(err->message, '\n'));
    g_error_free(err);
    rmdir(dir);
}

/* file=/dev/fd/N: the inherited fd as it is (libvirt's -add-fd file, opened
 * O_APPEND): what was in the file stays, output goes after it, and the fd
 * itself stays open for its owner; an fd open read-only or not at all is
 * refused with one line. */
static void test_file_inherited_fd(void **state)
{
    (void)state;
    char path[] = "/tmp/test_char_backend_fd.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd > 2);
    assert_int_equal(write(fd, "old\n", 4), 4);
    close(fd);
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd > 2);
    g_autofree char *name = g_strdup_printf("/dev/fd/%d", fd);
    GError *err = NULL;
    struct char_backend *be = char_backend_open(SERIAL_FILE, name, &err);
    assert_non_null(be);
    char_backend_write(be, (const uint8_t *)"new", 3);
    char_backend_close(be);
    assert_true(fcntl(fd, F_GETFD) >= 0);
    gchar *got = NULL;
    assert_true(g_file_get_contents(path, &got, NULL, NULL));
    assert_string_equal(got, "old\nnew");
    g_free(got);
    close(fd);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    g_free(name);
    name = g_strdup_printf("/dev/fd/%d", fd);
    assert_null(char_backend_open(SERIAL_FILE, name, &err));
    assert_non_null(strstr(err->message, "reading only"));
    assert_null(strchr(err->message, '\n'));
    g_clear_error(&err);
    close(fd);
    assert_null(char_backend_open(SERIAL_FILE, name, &err));
    assert_non_null(strstr(err->message, "not open"));
    g_clear_error(&err);
    unlink(path);
}

static void test_pty_mode(void **state)
{
    GError *err = NULL;
    struct char_backend *be = char_backend_open(SERIAL_PTY, NULL, &err);
    if (!be) {
        print_message("SKIP: no pty can be opened here (%s)\n", err->message);
        g_error_free(err);
        skip();
    }
    const char *p = char_backend_pty_path(be);
    assert_non_null(p);
    assert_true(g_str_has_prefix(p, "/dev/pts/"));
    int s = open(p, O_RDWR | O_NOCTTY | O_NONBLOCK);
    assert_true(s >= 0);
    char_backend_write(be, (const uint8_t *)"hi\n", 3);
    char buf[8] = { 0 };
    assert_int_equal(read(s, buf, sizeof(buf)), 3);     /* raw: no \r added */
    assert_memory_equal(buf, "hi\n", 3);
    close(s);
    static uint8_t big[1 << 20];
    char_backend_write(be, big, sizeof(big));           /* nobody reads: returns anyway */
    char_backend_close(be);
}

static int sock_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return c;
}

static int done_calls;
static void count_done(void *opaque)
{
    done_calls++;
}

/* Writes through the asynchronous path and runs the loop until it is done. */
static void write_async(struct loop *l, struct char_backend *be, const char *s)
{
    struct iovec iov = { (void *)s, strlen(s) };
    int before = done_calls;
    if (char_backend_write_iov(be, &iov, 1, count_done, NULL) == 1)
        while (done_calls == before)
            assert_int_equal(loop_run_once(l), 0);
}

/* A unix socket server: output while nobody is connected is dropped; a
 * client gets output and sends input; the next client waits until the
 * first leaves, then is served; the path goes away at close. A regular
 * file at the path is refused; a stale socket is replaced. */
static void test_socket_mode(void **state)
{
    char dir[] = "/tmp/test_char_backend.XXXXXX";
    assert_non_null(mkdtemp(dir));
    g_autofree char *path = g_build_filename(dir, "console.sock", NULL);
    GError *err = NULL;
    assert_int_equal(g_file_set_contents(path, "x", 1, NULL), TRUE);
    assert_null(char_backend_open(SERIAL_SOCKET, path, &err));
    assert_non_null(strstr(err->message, "not a socket"));
    g_clear_error(&err);
    unlink(path);

    struct loop *l = loop_new(NULL);
    struct char_backend *be = char_backend_open(SERIAL_SOCKET, path, &err);
    assert_non_null(be);
    struct fake_fe fe = { .loop = l, .room = 64, .want = 3 };
    struct char_frontend cfe = { fe_can_receive, fe_receive, &fe };
    char_backend_set_frontend(be, &cfe);
    char_backend_attach(be, l, NULL, NULL);
    loop_run_calls(l);
    assert_false(char_backend_connected(be));
    struct iovec iov = { "lost", 4 };
    assert_int_equal(char_backend_write_iov(be, &iov, 1, count_done, NULL), 0);

    int c1 = sock_connect(path);
    while (!char_backend_connected(be))
        assert_int_equal(loop_run_once(l), 0);
    write_async(l, be, "out1");
    char buf[16] = { 0 };
    assert_int_equal(read(c1, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "out1", 4);       /* "lost" never came */
    assert_int_equal(write(c1, "in1", 3), 3);
    loop_run(l);
    assert_int_equal(fe.ngot, 3);
    assert_memory_equal(fe.got, "in1", 3);

    /* A second client waits in the backlog while the first is served. */
    int c2 = sock_connect(path);
    assert_int_equal(write(c2, "in2", 3), 3);
    write_async(l, be, "out2");
    assert_int_equal(read(c1, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "out2", 4);
    assert_int_equal(fe.ngot, 3);
    close(c1);
    fe.want = 6;
    loop_run(l);
    assert_int_equal(fe.ngot, 6);
    assert_memory_equal(fe.got + 3, "in2", 3);
    write_async(l, be, "out3");
    assert_int_equal(read(c2, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "out3", 4);
    close(c2);
    char_backend_close(be);
    loop_free(l);
    assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

    /* A socket left behind by a vmm that died is replaced. */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(stale);
    be = char_backend_open(SERIAL_SOCKET, path, &err);
    assert_non_null(be);
    char_backend_close(be);
    rmdir(dir);
}

/* The asynchronous path on a pipe: writes come out in order, each done
 * once; a cancelled one finishes without its callback. */
static void test_write_iov_order_and_cancel(void **state)
{
    struct fixture *f = *state;
    int before = done_calls;
    struct iovec a[2] = { { "ab", 2 }, { "cd", 2 } }, b = { "ef", 2 }, c = { "gh", 2 };
    int ra = char_backend_write_iov(f->be, a, 2, count_done, f);
    int rb = char_backend_write_iov(f->be, &b, 1, count_done, NULL);
    int rc = char_backend_write_iov(f->be, &c, 1, count_done, f);
    assert_int_equal(ra, 1);
    assert_int_equal(rb, 1);
    assert_int_equal(rc, 1);
    char_backend_write_cancel(f->be, f);
    char buf[16] = { 0 };
    size_t got = 0;
    while (got < 6) {
        ssize_t n = read(f->out_r, buf + got, sizeof(buf) - got);
        if (n > 0)
            got += (size_t)n;
        else
            assert_int_equal(loop_run_once(f->loop), 0);
    }
    assert_memory_equal(buf, "abcdefgh", 6);
    while (done_calls == before)
        assert_int_equal(loop_run_once(f->loop), 0);
    loop_run_calls(f->loop);
    assert_int_equal(done_calls, before + 1);   /* only b's */
}

/* Closing writes out what was queued, even a write not yet submitted. */
static void test_close_flushes(void **state)
{
    struct fixture *f = *state;
    struct iovec a = { "first ", 6 }, b = { "second", 6 };
    assert_int_equal(char_backend_write_iov(f->be, &a, 1, count_done, f), 1);
    assert_int_equal(char_backend_write_iov(f->be, &b, 1, count_done, f), 1);
    char_backend_write_cancel(f->be, f);
    char_backend_close(f->be);
    f->be = NULL;
    char buf[16] = { 0 };
    assert_int_equal(read(f->out_r, buf, sizeof(buf)), 12);
    assert_memory_equal(buf, "first second", 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_waits_for_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detached_frontend_leaves_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_stops_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escape_quit, setup_escapes, teardown),
        cmocka_unit_test_setup_teardown(test_escape_literal_and_split, setup_escapes, teardown),
        cmocka_unit_test_setup_teardown(test_no_escapes_when_disabled, setup, teardown),
        cmocka_unit_test(test_file_mode),
        cmocka_unit_test(test_file_inherited_fd),
        cmocka_unit_test(test_pty_mode),
        cmocka_unit_test(test_socket_mode),
        cmocka_unit_test_setup_teardown(test_write_iov_order_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
