/* A tiny QMP client for the end-to-end tests (no python, no socat needed).
 *
 *   qmp-client SOCKET
 *     Connects, prints the greeting, then for each non-empty line of stdin
 *     sends it and prints every message that comes until the reply (a
 *     "return" or "error"), so events before the reply are printed too. At
 *     the end of stdin it prints what still comes until the server closes
 *     the connection (it is half-closed first). Each message is printed on one line without its
 *     "\r\n"; one that did not end in "\r\n" is printed after "NO-CRLF: ".
 *     Exit 0; 3 when the server closed before a reply; 4 after 20 s without
 *     a byte (a hang guard: the test fails, it does not wait forever).
 *
 *   qmp-client --raw SOCKET
 *     Prints the greeting, writes all of stdin as it is (no waiting for
 *     replies), half-closes, and prints what comes until the server closes.
 *
 *   qmp-client --listen-fd N PATH PROGRAM ARGS...
 *     Binds and listens on the unix socket PATH, puts it on fd N, and execs
 *     PROGRAM (how libvirt hands QEMU its monitor: -chardev socket,fd=N). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fd;
static char buf[1 << 20];
static size_t have;

/* One message into out (NUL-terminated). 0, 1 at EOF, exits on a hang. */
static int read_msg(char *out, size_t cap, bool *crlf)
{
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t len = (size_t)(nl - buf) + 1;
            *crlf = len >= 2 && buf[len - 2] == '\r';
            size_t body = len - (*crlf ? 2 : 1);
            if (body >= cap)
                body = cap - 1;
            memcpy(out, buf, body);
            out[body] = 0;
            memmove(buf, buf + len, have - len);
            have -= len;
            return 0;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 20000) != 1) {
            fprintf(stderr, "qmp-client: nothing for 20 s\n");
            exit(4);
        }
        if (have == sizeof(buf)) {
            fprintf(stderr, "qmp-client: a message over 1 MiB\n");
            exit(5);
        }
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (have) {     /* a last message without any newline */
                memcpy(out, buf, have < cap ? have : cap - 1);
                out[have < cap ? have : cap - 1] = 0;
                have = 0;
                *crlf = false;
                return 0;
            }
            return 1;
        }
        have += (size_t)n;
    }
}

static void print_msg(const char *m, bool crlf)
{
    printf("%s%s\n", crlf ? "" : "NO-CRLF: ", m);
    fflush(stdout);
}

static int listen_fd(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: qmp-client --listen-fd N PATH PROGRAM ARGS...\n");
        return 2;
    }
    int n = atoi(argv[2]);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[3]);
    unlink(argv[3]);
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 8) < 0) {
        perror("qmp-client: listen");
        return 2;
    }
    if (s != n && (dup2(s, n) < 0 || close(s) < 0)) {
        perror("qmp-client: dup2");
        return 2;
    }
    execvp(argv[4], argv + 4);
    perror("qmp-client: exec");
    return 127;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--listen-fd") == 0)
        return listen_fd(argc, argv);
    bool raw = argc == 3 && strcmp(argv[1], "--raw") == 0;
    if (raw) {
        argv++;
        argc--;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: qmp-client [--raw] SOCKET < commands\n");
        return 2;
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "qmp-client: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    static char msg[1 << 20];
    bool crlf;
    if (read_msg(msg, sizeof(msg), &crlf))
        return 3;
    print_msg(msg, crlf);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    if (raw) {
        /* The server may drop us before it has read everything (EPIPE). */
        signal(SIGPIPE, SIG_IGN);
        char in[65536];
        size_t n;
        while ((n = fread(in, 1, sizeof(in), stdin)) > 0)
            for (size_t off = 0; off < n;) {
                ssize_t w = write(fd, in + off, n - off);
                if (w < 0)
                    goto done;
                off += (size_t)w;
            }
    }
    while (!raw && (len = getline(&line, &cap, stdin)) > 0) {
        if (len == 1 && line[0] == '\n')
            continue;
        for (ssize_t off = 0; off < len;) {
            ssize_t w = write(fd, line + off, (size_t)(len - off));
            if (w < 0) {
                fprintf(stderr, "qmp-client: write: %s\n", strerror(errno));
                return 3;
            }
            off += w;
        }
        for (;;) {
            if (read_msg(msg, sizeof(msg), &crlf))
                return 3;
            print_msg(msg, crlf);
            if (strncmp(msg, "{\"return\"", 9) == 0 || strncmp(msg, "{\"error\"", 8) == 0 ||
                strncmp(msg, "{\"id\"", 5) == 0)
                break;
        }
    }
done:
    free(line);
    shutdown(fd, SHUT_WR);      /* the server sees the end and closes */
    while (read_msg(msg, sizeof(msg), &crlf) == 0)
        print_msg(msg, crlf);
    return 0;
}
