/* net-echo PORT: the host end of the virtio_net guest test. A UDP server on
 * PORT (any address; the runner starts it inside the case's network
 * namespace) that answers every datagram with "echo: " + the datagram, to
 * its sender. Exits after 60 s whatever happens.
 *
 * net-echo tcp-hello PORT [FILE TEXT]: the host end of the net_user fwd=1
 * case: waits until FILE (the guest's serial output) contains TEXT, connects
 * to 127.0.0.1:PORT (a VMM's hostfwd; retried until it listens), sends
 * "hello from the host\n" and prints what comes back until EOF. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Does file f contain text t (now)? */
static int file_has(const char *f, const char *t)
{
    static char buf[1 << 16];
    FILE *fp = fopen(f, "r");
    if (!fp)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strstr(buf, t) != NULL;
}

static int tcp_hello(const char *port, const char *file, const char *text)
{
    for (int i = 0; file && i < 400 && !file_has(file, text); i++)
        usleep(100000);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = -1;
    for (int i = 0; i < 400; i++) {     /* the VMM is starting: 40 s at most */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        close(fd);
        fd = -1;
        usleep(100000);
    }
    if (fd < 0) {
        perror("net-echo: connect");
        return 1;
    }
    static const char hello[] = "hello from the host\n";
    if (write(fd, hello, sizeof(hello) - 1) != (ssize_t)sizeof(hello) - 1) {
        perror("net-echo: write");
        return 1;
    }
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            fwrite(buf, 1, (size_t)n, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 3 || argc == 5) && strcmp(argv[1], "tcp-hello") == 0) {
        alarm(60);
        return tcp_hello(argv[2], argc == 5 ? argv[3] : NULL, argc == 5 ? argv[4] : NULL);
    }
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: net-echo PORT\n");
        return 2;
    }
    alarm(60);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("net-echo: bind");
        return 1;
    }
    static char in[65536], out[65536 + 6];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 1;
        memcpy(out, "echo: ", 6);
        memcpy(out + 6, in, (size_t)n);
        sendto(fd, out, (size_t)n + 6, 0, (struct sockaddr *)&from, fl);
    }
}
