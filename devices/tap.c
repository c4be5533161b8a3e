#include "devices/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* The interface's MTU (SIOCGIFMTU on any socket); 1500 if unknown. */
static unsigned read_mtu(const char *name)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 1500;
    struct ifreq ifr = { 0 };
    g_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
    unsigned mtu = ioctl(s, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0 ? (unsigned)ifr.ifr_mtu : 1500;
    close(s);
    return mtu;
}

static int set_hdr_len(int fd)
{
    int len = TAP_VNET_HDR_LEN;
    return ioctl(fd, TUNSETVNETHDRSZ, &len) < 0 ? -errno : 0;
}

void tap_close(struct tap *t)
{
    if (!t)
        return;
    if (t->release)
        t->release(t);
    if (t->owns_fds)
        for (unsigned i = 0; i < t->nr_fds; i++)
            close(t->fds[i]);
    g_free(t);
}

struct tap *tap_open(const char *name, unsigned queues, GError **err)
{
    if (!*name || strlen(name) >= IFNAMSIZ) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "tap name '%s' is not a network interface name (1 to %d bytes)", name, IFNAMSIZ - 1);
        return NULL;
    }
    if (queues < 1 || queues > TAP_MAX_QUEUES) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "tap %s: %u queues (1 to %d)", name, queues,
                    TAP_MAX_QUEUES);
        return NULL;
    }
    struct tap *t = g_new0(struct tap, 1);
    t->is_tap = true;
    t->owns_fds = true;
    g_strlcpy(t->name, name, sizeof(t->name));
    for (unsigned i = 0; i < queues; i++) {
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            int e = errno;
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "tap %s: cannot open /dev/net/tun: %s%s",
                        name, g_strerror(e),
                        e == EACCES || e == EPERM ? " (needs read/write access to /dev/net/tun)" : "");
            tap_close(t);
            return NULL;
        }
        t->fds[t->nr_fds++] = fd;
        struct ifreq ifr = { 0 };
        g_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (queues > 1 ? IFF_MULTI_QUEUE : 0);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
            int e = errno;
            g_autofree char *why = NULL;
            if (e == EPERM || e == EACCES)
                why = g_strdup_printf("; creating a tap, or attaching to one owned by another user, needs "
                                      "CAP_NET_ADMIN (run as root, or create it first with `ip tuntap add %s "
                                      "mode tap user USER vnet_hdr%s`)",
                                      name, queues > 1 ? " multi_queue" : "");
            else if (e == EINVAL)
                why = g_strdup("; an interface of that name exists with other flags (not a tap, or not "
                               "the queue mode num_queues asks for)");
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "tap %s: TUNSETIFF: %s%s", name,
                        g_strerror(e), why ? why : "");
            tap_close(t);
            return NULL;
        }
        int r = set_hdr_len(fd);
        if (r < 0) {
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-r), "tap %s: TUNSETVNETHDRSZ: %s", name,
                        g_strerror(-r));
            tap_close(t);
            return NULL;
        }
    }
    t->mtu = read_mtu(name);
    return t;
}

struct tap *tap_from_fd(int fd, GError **err)
{
    struct ifreq ifr = { 0 };
    if (fcntl(fd, F_GETFD) < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_BADF, "fd=%d is not an open file descriptor", fd);
        return NULL;
    }
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "fd=%d is not a tap (TUNGETIFF: %s)", fd,
                    g_strerror(errno));
        return NULL;
    }
    if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP || !(ifr.ifr_flags & IFF_VNET_HDR) ||
        !(ifr.ifr_flags & IFF_NO_PI)) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "fd=%d (%s) is not a tap opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR", fd, ifr.ifr_name);
        return NULL;
    }
    int r = set_hdr_len(fd);
    if (r == 0)
        r = set_nonblock(fd);
    if (r < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-r), "fd=%d (%s): %s", fd, ifr.ifr_name,
                    g_strerror(-r));
        return NULL;
    }
    struct tap *t = g_new0(struct tap, 1);
    t->is_tap = true;
    t->owns_fds = true;
    g_strlcpy(t->name, ifr.ifr_name, sizeof(t->name));
    t->fds[0] = fd;
    t->nr_fds = 1;
    t->mtu = read_mtu(t->name);
    return t;
}

struct tap *tap_from_socket(const int *fds, unsigned n)
{
    g_assert(n >= 1 && n <= TAP_MAX_QUEUES);
    struct tap *t = g_new0(struct tap, 1);
    for (unsigned i = 0; i < n; i++) {
        t->fds[i] = fds[i];
        set_nonblock(fds[i]);
    }
    t->nr_fds = n;
    t->mtu = 1500;
    return t;
}

int tap_set_offload(struct tap *t, unsigned flags)
{
    if (!t->is_tap)
        return 0;
    for (unsigned i = 0; i < t->nr_fds; i++)
        if (ioctl(t->fds[i], TUNSETOFFLOAD, (unsigned long)flags) < 0)
            return -errno;
    return 0;
}

int tap_set_queue_enabled(struct tap *t, unsigned i, bool on)
{
    if (!t->is_tap || t->nr_fds < 2 || i >= t->nr_fds)
        return 0;
    struct ifreq ifr = { 0 };
    ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    /* EINVAL: already attached (or detached). */
    if (ioctl(t->fds[i], TUNSETQUEUE, &ifr) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}
