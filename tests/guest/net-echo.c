/* net-echo PORT: the host end of the virtio_net guest test. A UDP server on
 * PORT (any address; the runner starts it inside the case's network
 * namespace) that answers every datagram with "echo: " + the datagram, to
 * its sender. Exits after 60 s whatever happens. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
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
