/* console-echo SOCKET: the host end of the virtio_console guest test.
 * Connects to a console's unix socket (retrying while the VMM is starting),
 * and answers every line it reads with "echo: <line>". Exits at EOF, or
 * after 60 s whatever happens. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: console-echo SOCKET\n");
        return 2;
    }
    alarm(60);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, argv[1]);
    int fd = -1;
    for (int i = 0; i < 3000; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    if (fd < 0) {
        fprintf(stderr, "console-echo: cannot connect to %s\n", argv[1]);
        return 1;
    }
    static char line[65536];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, line + len, sizeof(line) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        len += (size_t)n;
        char *nl;
        while ((nl = memchr(line, '\n', len))) {
            size_t l = (size_t)(nl - line) + 1;
            if (write_all(fd, "echo: ", 6) < 0 || write_all(fd, line, l) < 0)
                return 0;
            memmove(line, line + l, len - l);
            len -= l;
        }
        if (len == sizeof(line))
            len = 0;
    }
}
