/* serialgap: the guest's serial output across a live migration, seen from
 * the host: how long no line came, from the source's last to the
 * destination's first. The same measure for vmm and QEMU, whatever each
 * reports about itself.
 *
 *   serialgap SRC_FIFO SRC_LOG DST_FIFO DST_LOG
 *       reads the FIFOs the source's and the destination's serial ports
 *       write to (it keeps a writer of its own open on each, so that no VMM
 *       opening or closing one ends it), copying what comes to SRC_LOG and
 *       DST_LOG as it comes, until SIGTERM; then prints "GAP_MS PERIOD_MS":
 *       the time from the last line the source finished before the
 *       destination's first to that first line, and the median time between
 *       two of the source's lines (the guest's own pace). Exit 1 without a
 *       line from either side.
 *
 * Times are CLOCK_MONOTONIC when a read returns. Built by tools/bench/migrate. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINES 4096

static volatile sig_atomic_t stop;
static double src_t[MAX_LINES];     /* the source's line ends, in order */
static unsigned n_src;
static double dst_first = -1;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int open_fifo(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    /* our own writer: no EOF when a VMM closes its end, or before it opens */
    if (fd < 0 || open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC) < 0) {
        fprintf(stderr, "serialgap: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "serialgap: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: serialgap SRC_FIFO SRC_LOG DST_FIFO DST_LOG\n");
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct pollfd p[2] = { { .fd = open_fifo(argv[1]), .events = POLLIN },
                           { .fd = open_fifo(argv[3]), .events = POLLIN } };
    int logs[2] = { open_log(argv[2]), open_log(argv[4]) };
    char buf[65536];
    while (!stop) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("serialgap: poll");
            return 2;
        }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n <= 0)
                continue;
            double t = now_ms();
            if (write(logs[i], buf, (size_t)n) != n) {
                perror("serialgap: write");
                return 2;
            }
            if (!memchr(buf, '\n', (size_t)n))
                continue;
            if (i == 1) {
                if (dst_first < 0)
                    dst_first = t;
            } else if (dst_first < 0) {
                /* the source's lines before the destination's first */
                if (n_src == MAX_LINES) {
                    memmove(src_t, src_t + MAX_LINES / 2, sizeof(src_t) / 2);
                    n_src = MAX_LINES / 2;
                }
                src_t[n_src++] = t;
            }
        }
    }
    if (n_src == 0 || dst_first < 0) {
        fprintf(stderr, "serialgap: no line from the %s\n", n_src ? "destination" : "source");
        return 1;
    }
    double period = -1;
    if (n_src >= 2) {
        static double d[MAX_LINES];
        for (unsigned i = 1; i < n_src; i++)
            d[i - 1] = src_t[i] - src_t[i - 1];
        qsort(d, n_src - 1, sizeof(d[0]), cmp_double);
        period = d[(n_src - 2) / 2];
    }
    printf("%.3f %.3f\n", dst_first - src_t[n_src - 1], period);
    return 0;
}
