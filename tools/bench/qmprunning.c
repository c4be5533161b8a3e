/* qmprunning: runs a VMM and reports how long it took, from exec, until its
 * QMP monitor says the guest is running: the same measure for vmm --restore
 * and for QEMU -incoming (whose monitor answers "inmigrate" while it loads).
 *
 *   qmprunning [-t SECS] SOCKET -- COMMAND [ARG]...
 *       connects to the unix socket SOCKET as soon as it exists, sends
 *       qmp_capabilities, then query-status every 0.5 ms until the answer has
 *       "running": true (if the answer is "paused", as QEMU's is once it has
 *       loaded a VM that was saved stopped, it sends cont, once); prints "RUNNING_MS CONNECT_MS" (exec to that answer,
 *       exec to the connection), then kills COMMAND (SIGKILL) and reaps it.
 *       Exit 1, with the reason on stderr, when COMMAND exits first or after
 *       SECS (default 60).
 *
 * The clock starts just before fork(). COMMAND's stdin is /dev/null, its
 * stdout and stderr are this program's. Built by tools/bench/snapshot. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static double t0, deadline;
static pid_t pid;
static char buf[65536];
static size_t have;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *why)
{
    fprintf(stderr, "qmprunning: %s\n", why);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    exit(1);
}

static void check_child(void)
{
    int ws;
    if (waitpid(pid, &ws, WNOHANG) == pid) {
        pid = 0;
        die("the command exited before its guest was running");
    }
    if (now_ms() > deadline)
        die("timed out");
}

/* One line (one QMP message) into out, without its "\r\n". */
static void read_line(int fd, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t n = (size_t)(nl - buf);
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(out, buf, c);
            out[c] = 0;
            memmove(buf, nl + 1, have - n - 1);
            have -= n + 1;
            return;
        }
        if (have == sizeof(buf))
            die("a QMP message longer than 64 KiB");
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR)
            die("poll failed");
        if (r > 0) {
            ssize_t n = read(fd, buf + have, sizeof(buf) - have);
            if (n == 0)
                die("the monitor closed the connection");
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                die("reading the monitor failed");
            if (n > 0)
                have += (size_t)n;
        }
        check_child();
    }
}

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    if (write(fd, s, n) != (ssize_t)n)
        die("writing to the monitor failed");
}

/* Sends a command; returns its reply line (events before it are skipped). */
static void command(int fd, const char *cmd, char *out, size_t cap)
{
    send_str(fd, cmd);
    do
        read_line(fd, out, cap);
    while (!strstr(out, "\"return\"") && !strstr(out, "\"error\""));
}

int main(int argc, char **argv)
{
    long timeout_s = 60;
    int opt;
    while ((opt = getopt(argc, argv, "+t:")) != -1) {
        if (opt != 't')
            goto usage;
        timeout_s = strtol(optarg, NULL, 10);
    }
    if (optind + 1 >= argc || timeout_s <= 0)
        goto usage;
    const char *path = argv[optind++];
    if (strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc)
        goto usage;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "qmprunning: socket path too long: %s\n", path);
        return 2;
    }
    strcpy(sa.sun_path, path);
    unlink(path);

    t0 = now_ms();
    deadline = t0 + timeout_s * 1e3;
    pid = fork();
    if (pid < 0) {
        perror("qmprunning: fork");
        return 1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0)
            _exit(127);
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "qmprunning: %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }

    int fd;
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket failed");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        close(fd);
        check_child();
        usleep(200);
    }
    double connected = now_ms();
    char line[4096];
    read_line(fd, line, sizeof(line));        /* the greeting */
    if (!strstr(line, "\"QMP\""))
        die("no QMP greeting");
    command(fd, "{\"execute\":\"qmp_capabilities\"}\r\n", line, sizeof(line));
    bool cont = false;
    for (;;) {
        command(fd, "{\"execute\":\"query-status\"}\r\n", line, sizeof(line));
        if (strstr(line, "\"running\": true"))
            break;
        if (!strstr(line, "\"return\""))
            die("query-status failed");
        if (!cont && strstr(line, "\"status\": \"paused\"")) {
            /* QEMU restores the saved run state: a VM saved stopped is
             * paused once loaded. */
            command(fd, "{\"execute\":\"cont\"}\r\n", line, sizeof(line));
            if (!strstr(line, "\"return\""))
                die("cont failed");
            cont = true;
            continue;
        }
        usleep(500);
        check_child();
    }
    double running = now_ms();
    printf("%.3f %.3f\n", running - t0, connected - t0);
    fflush(stdout);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;

usage:
    fprintf(stderr, "usage: qmprunning [-t SECS] SOCKET -- COMMAND [ARG]...\n");
    return 2;
}
