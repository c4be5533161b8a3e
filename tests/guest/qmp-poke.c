/* qmp-poke SOCKET [STEP...]: a scripted QMP client for tests (static, so it
 * also runs in the lab's L1). Connects to SOCKET (retrying while the VMM
 * starts), reads the greeting, negotiates, then runs the steps in order:
 *   wait:FILE:TEXT   waits until FILE contains TEXT (e.g. a guest's serial
 *                    output saying it is ready for the next step)
 *   JSON             sends the command and waits for its reply
 * Every line the VMM sends (greeting, replies, events) goes to stdout as it
 * arrives. After the steps it keeps reading until the VMM closes the socket.
 * Exits 0 at EOF, 1 when a step cannot be done, and after 60 s whatever
 * happens (SIGALRM). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];
static size_t have;

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

/* Reads one line (printed). 0, or -1 at EOF. *is_reply: a "return" or
 * "error" line, not an event or the greeting. */
static int read_line(int fd, bool *is_reply)
{
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t len = (size_t)(nl - buf) + 1;
            fwrite(buf, 1, len, stdout);
            fflush(stdout);
            *is_reply = len > 10 && (strncmp(buf, "{\"return\"", 9) == 0 || strncmp(buf, "{\"error\"", 8) == 0);
            memmove(buf, buf + len, have - len);
            have -= len;
            return 0;
        }
        if (have == sizeof(buf))
            have = 0;   /* an absurd line: dropped */
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
}

static int command(int fd, const char *json)
{
    if (write_all(fd, json, strlen(json)) < 0 || write_all(fd, "\n", 1) < 0)
        return -1;
    bool reply = false;
    while (!reply)
        if (read_line(fd, &reply) < 0)
            return -1;
    return 0;
}

static bool file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    static char content[1 << 20];
    size_t n = fread(content, 1, sizeof(content) - 1, f);
    fclose(f);
    content[n] = 0;
    return strstr(content, text) != NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: qmp-poke SOCKET [wait:FILE:TEXT | JSON]...\n");
        return 2;
    }
    alarm(60);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, argv[1]);
    int fd = -1;
    for (int i = 0; i < 3000; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    if (fd < 0) {
        fprintf(stderr, "qmp-poke: cannot connect to %s\n", argv[1]);
        return 1;
    }
    bool reply;
    if (read_line(fd, &reply) < 0 || command(fd, "{\"execute\": \"qmp_capabilities\"}") < 0)
        return 1;
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "wait:", 5) == 0) {
            char *spec = argv[i] + 5, *colon = strchr(spec, ':');
            if (!colon)
                return 2;
            *colon = 0;
            /* Events are printed meanwhile; the VMM going away ends the wait. */
            while (!file_has(spec, colon + 1)) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 20) > 0 && read_line(fd, &reply) < 0) {
                    fprintf(stderr, "qmp-poke: the VMM closed the socket before %s had '%s'\n", spec, colon + 1);
                    return 1;
                }
            }
        } else if (command(fd, argv[i]) < 0) {
            return 1;
        }
    }
    while (read_line(fd, &reply) == 0)
        ;
    return 0;
}
