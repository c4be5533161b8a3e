/* firstbyte: runs a VMM with its stdout (the guest's serial port) on a pipe
 * and reports how long the guest took to say something.
 *
 *   firstbyte [-t SECS] -- COMMAND [ARG]...
 *       prints "FIRST_MS EXIT_MS STATUS": exec to the first byte on stdout,
 *       exec to exit, and the exit status (128+N for signal N, -1 for a
 *       timeout after SECS, default 60).
 *   firstbyte -r DELAY_MS [-t SECS] -- COMMAND [ARG]...
 *       DELAY_MS after the first byte, reads the command's VmRSS and Pss
 *       (/proc/PID/status, smaps_rollup), prints "FIRST_MS RSS_KIB PSS_KIB",
 *       then stops it with SIGTERM (SIGKILL a second later).
 *
 * The clock starts just before fork(); fork of this small process costs far
 * less than the resolution that matters here. Built static so that it runs
 * unchanged in the lab's L1 VM. Guest output is drained and discarded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long proc_field_kib(pid_t pid, const char *file, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static int status_of(int ws)
{
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Reads and discards what is on fd; returns bytes read, 0 at EOF. */
static ssize_t drain(int fd)
{
    char buf[4096];
    ssize_t r;
    do
        r = read(fd, buf, sizeof(buf));
    while (r < 0 && errno == EINTR);
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: firstbyte [-r DELAY_MS] [-t SECS] -- COMMAND [ARG]...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long delay_ms = -1, timeout_s = 60;
    int opt;
    while ((opt = getopt(argc, argv, "r:t:")) != -1) {
        switch (opt) {
        case 'r': delay_ms = strtol(optarg, NULL, 10); break;
        case 't': timeout_s = strtol(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (optind >= argc || timeout_s <= 0)
        usage();

    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("firstbyte: pipe");
        return 1;
    }
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("firstbyte: fork");
        return 1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0)
            _exit(127);
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "firstbyte: %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);

    double first = -1, deadline = t0 + timeout_s * 1e3;
    bool eof = false;
    long rss = -1, pss = -1;
    while (!eof) {
        double now = now_ms();
        double until = deadline;
        if (first >= 0 && delay_ms >= 0 && first + delay_ms < until)
            until = first + delay_ms;
        if (now >= until)
            break;
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        int r = poll(&pfd, 1, (int)(until - now) + 1);
        if (r < 0 && errno != EINTR) {
            perror("firstbyte: poll");
            break;
        }
        if (r > 0) {
            ssize_t n = drain(p[0]);
            if (n > 0 && first < 0)
                first = now_ms();
            eof = n == 0;
        }
    }
    if (delay_ms >= 0 && first >= 0 && !eof) {
        rss = proc_field_kib(pid, "status", "VmRSS");
        pss = proc_field_kib(pid, "smaps_rollup", "Pss");
    }

    int ws, status;
    if (eof) {
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
            ;
        status = status_of(ws);
    } else {
        /* Timed out, or the RSS sample is taken: stop the command. */
        kill(pid, SIGTERM);
        double kill_at = now_ms() + 1000;
        while (waitpid(pid, &ws, WNOHANG) == 0) {
            if (now_ms() > kill_at)
                kill(pid, SIGKILL);
            if (drain(p[0]) <= 0)
                usleep(10000);
        }
        status = delay_ms >= 0 ? status_of(ws) : -1;
    }
    double end = now_ms();

    if (delay_ms >= 0)
        printf("%.3f %ld %ld\n", first >= 0 ? first - t0 : -1.0, rss, pss);
    else
        printf("%.3f %.3f %d\n", first >= 0 ? first - t0 : -1.0, end - t0, status);
    return first >= 0 ? 0 : 1;
}
