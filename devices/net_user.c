#include "devices/net_user.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "devices/tap.h"
#include "vmm/log.h"
#include "vmm/loop.h"

/* ---- options ---- */

void net_user_opts_init(struct net_user_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ipv4 = o->ipv6 = true;
}

void net_user_opts_clear(struct net_user_opts *o)
{
    if (!o)
        return;
    g_free(o->hostname);
    g_free(o->domainname);
    o->hostname = o->domainname = NULL;
}

struct net_user_opts *net_user_opts_dup(const struct net_user_opts *o)
{
    struct net_user_opts *d = g_new(struct net_user_opts, 1);
    *d = *o;
    d->hostname = g_strdup(o->hostname);
    d->domainname = g_strdup(o->domainname);
    return d;
}

GQuark net_user_error_quark(void)
{
    return g_quark_from_static_string("net-user-error");
}

static int fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int fail(GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *m = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(err, NET_USER_ERROR, 0, m);
    return -1;
}

static bool parse_ip4(const char *s, struct in_addr *a)
{
    return *s && inet_pton(AF_INET, s, a) == 1;
}

static bool parse_port(const char *s, bool zero_ok, uint16_t *port)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!g_ascii_isdigit(s[0]) || *end || errno || v > 65535 || (!zero_ok && v == 0))
        return false;
    *port = (uint16_t)v;
    return true;
}

/* [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport (QEMU's hostfwd=). */
static int parse_hostfwd(struct net_user_opts *o, const char *what, const char *v, GError **err)
{
    if (o->nr_fwd >= NET_USER_MAX_FWD)
        return fail(err, "%s: at most %d hostfwd= rules", what, NET_USER_MAX_FWD);
    struct net_user_fwd f = { 0 };
    g_auto(GStrv) sides = g_strsplit(v, "-", 2);
    g_auto(GStrv) h = sides[0] && sides[1] ? g_strsplit(sides[0], ":", 3) : NULL;
    g_auto(GStrv) g = h ? g_strsplit(sides[1], ":", 2) : NULL;
    if (!h || g_strv_length(h) != 3 || g_strv_length(g) != 2)
        return fail(err, "%s hostfwd=%s: not [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport", what, v);
    if (strcmp(h[0], "udp") == 0)
        f.udp = true;
    else if (*h[0] && strcmp(h[0], "tcp") != 0)
        return fail(err, "%s hostfwd=%s: protocol '%s' is not tcp or udp", what, v, h[0]);
    if (*h[1] && !parse_ip4(h[1], &f.haddr))
        return fail(err, "%s hostfwd=%s: host address '%s' is not an IPv4 address", what, v, h[1]);
    if (!parse_port(h[2], true, &f.hport))
        return fail(err, "%s hostfwd=%s: host port '%s' is not a number from 0 to 65535", what, v, h[2]);
    if (*g[0] && !parse_ip4(g[0], &f.gaddr))
        return fail(err, "%s hostfwd=%s: guest address '%s' is not an IPv4 address", what, v, g[0]);
    if (!parse_port(g[1], false, &f.gport))
        return fail(err, "%s hostfwd=%s: guest port '%s' is not a number from 1 to 65535", what, v, g[1]);
    o->fwd[o->nr_fwd++] = f;
    return 0;
}

/* QEMU -netdev user options vmm does not implement: refused by name. */
static const char *const unsupported[] = {
    "smb", "smbserver", "tftp", "bootfile", "tftp-server-name", "guestfwd", "dnssearch", "domainname6",
    "ipv6-net", "ipv6-prefix", "ipv6-prefixlen", "ipv6-host", "ipv6-dns", "vlan", NULL,
};

int net_user_opt(struct net_user_opts *o, const char *what, const char *key, const char *value, GError **err)
{
    for (const char *const *u = unsupported; *u; u++)
        if (strcmp(key, *u) == 0)
            return fail(err, "%s: %s= is not supported by vmm's user networking (supported: " NET_USER_KEYS ")",
                        what, key);
    if (strcmp(key, "net") == 0) {
        g_auto(GStrv) p = g_strsplit(value, "/", 2);
        uint32_t mask = 0xffffff00u;    /* QEMU: no mask means /24 */
        if (!p[0] || !parse_ip4(p[0], &o->net))
            return fail(err, "%s net=%s: not ADDR[/BITS] like 10.0.2.0/24", what, value);
        if (p[1]) {
            struct in_addr m;
            char *end;
            unsigned long bits = strtoul(p[1], &end, 10);
            if (g_ascii_isdigit(p[1][0]) && !*end && bits <= 32) {
                mask = bits ? 0xffffffffu << (32 - bits) : 0;
            } else if (parse_ip4(p[1], &m)) {
                mask = ntohl(m.s_addr);
                if ((~mask) & (~mask + 1))
                    return fail(err, "%s net=%s: %s is not a contiguous netmask", what, value, p[1]);
            } else {
                return fail(err, "%s net=%s: not ADDR[/BITS] like 10.0.2.0/24", what, value);
            }
        }
        if (mask == 0 || (~mask) < 3)
            return fail(err, "%s net=%s: the network must be /1 to /30", what, value);
        o->mask.s_addr = htonl(mask);
        if (o->net.s_addr & ~o->mask.s_addr)
            return fail(err, "%s net=%s: the address has host bits set", what, value);
        o->net_set = true;
        return 1;
    }
    struct in_addr *a = NULL;
    bool *set = NULL;
    if (strcmp(key, "host") == 0)
        a = &o->host, set = &o->host_set;
    else if (strcmp(key, "dns") == 0)
        a = &o->dns, set = &o->dns_set;
    else if (strcmp(key, "dhcpstart") == 0)
        a = &o->dhcp, set = &o->dhcp_set;
    if (a) {
        if (!parse_ip4(value, a))
            return fail(err, "%s %s=%s: not an IPv4 address", what, key, value);
        *set = true;
        return 1;
    }
    if (strcmp(key, "hostfwd") == 0)
        return parse_hostfwd(o, what, value, err) < 0 ? -1 : 1;
    bool *b = strcmp(key, "restrict") == 0 ? &o->restricted
              : strcmp(key, "ipv4") == 0   ? &o->ipv4
              : strcmp(key, "ipv6") == 0   ? &o->ipv6
                                           : NULL;
    if (b) {
        /* QEMU's restrict= takes y/yes/n/no too. */
        if (strcmp(value, "on") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "y") == 0 ||
            strcmp(value, "true") == 0)
            *b = true;
        else if (strcmp(value, "off") == 0 || strcmp(value, "no") == 0 || strcmp(value, "n") == 0 ||
                 strcmp(value, "false") == 0)
            *b = false;
        else
            return fail(err, "%s %s=%s: not on or off", what, key, value);
        return 1;
    }
    char **s = strcmp(key, "hostname") == 0 ? &o->hostname : strcmp(key, "domainname") == 0 ? &o->domainname : NULL;
    if (s) {
        if (!*value || strlen(value) > 255)
            return fail(err, "%s %s=: 1 to 255 bytes", what, key);
        g_free(*s);
        *s = g_strdup(value);
        return 1;
    }
    return 0;
}

int net_user_opts_finish(struct net_user_opts *o, const char *what, GError **err)
{
    if (!o->ipv4 && !o->ipv6)
        return fail(err, "%s: ipv4=off and ipv6=off leave the guest no network", what);
    if (!o->net_set) {
        inet_pton(AF_INET, "10.0.2.0", &o->net);
        o->mask.s_addr = htonl(0xffffff00u);
    }
    uint32_t net = ntohl(o->net.s_addr), mask = ntohl(o->mask.s_addr);
    if (!o->host_set)
        o->host.s_addr = htonl(net | 2);
    if (!o->dns_set)
        o->dns.s_addr = htonl(net | 3);
    if (!o->dhcp_set)
        o->dhcp.s_addr = htonl(net | 15);
    struct { const char *key; struct in_addr a; } k[] = { { "host", o->host }, { "dns", o->dns },
                                                          { "dhcpstart", o->dhcp } };
    char nb[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &o->net, nb, sizeof(nb));
    for (unsigned i = 0; i < 3; i++) {
        uint32_t v = ntohl(k[i].a.s_addr);
        char ab[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &k[i].a, ab, sizeof(ab));
        if ((v & mask) != net || (v & ~mask) == 0 || (v & ~mask) == ~mask)
            return fail(err, "%s: %s=%s is not a host address of the network %s/%d", what, k[i].key, ab, nb,
                        32 - __builtin_ctz(mask));
    }
    if (o->host.s_addr == o->dns.s_addr || o->host.s_addr == o->dhcp.s_addr || o->dns.s_addr == o->dhcp.s_addr)
        return fail(err, "%s: host=, dns= and dhcpstart= must be three different addresses", what);
    for (unsigned i = 0; i < o->nr_fwd; i++) {
        struct in_addr g = o->fwd[i].gaddr.s_addr ? o->fwd[i].gaddr : o->dhcp;
        if ((ntohl(g.s_addr) & mask) != net)
            return fail(err, "%s: hostfwd guest address %s is outside the network %s/%d", what, inet_ntoa(g), nb,
                        32 - __builtin_ctz(mask));
    }
    return 0;
}

/* ---- the backend ---- */

#define NU_BUF (TAP_VNET_HDR_LEN + 65536)
#define NU_BUDGET 64        /* frames from the guest per run */
#define NU_ROUNDS 16        /* fill/poll rounds per run before the rest is deferred */

struct nu_timer {
    struct net_user *nu;
    SlirpTimerCb cb;
    void *cb_opaque;
    int64_t expire_ms;      /* -1: disarmed */
    struct loop_timer *lt;  /* while attached */
};

struct nu_pollfd {
    int fd;
    int events;             /* SLIRP_POLL_* */
    int revents;
};

struct net_user {
    char *id;
    Slirp *slirp;
    struct tap *tap;
    int fd;                 /* our end of the socketpair */
    int peer;               /* virtio-net's end (tap->fds[0]) */
    int epfd;               /* slirp's sockets, level-triggered */
    struct loop *loop;
    struct loop_timer *poll_timer;  /* slirp's timeout */
    struct loop_timer *kick_timer;  /* work for a later loop iteration */
    bool run_queued;
    GArray *pfds;           /* struct nu_pollfd, from the last fill */
    GHashTable *in_ep;      /* fd -> epoll events registered in epfd */
    GPtrArray *timers;      /* struct nu_timer * */
    uint8_t *buf;
    struct net_user_stats stats;
    bool guest_error_logged, send_error_logged;
};

static GPtrArray *all;      /* every open struct net_user (main loop thread) */

static void nu_run(void *opaque);
static void kick(struct net_user *nu);

static void schedule_run(struct net_user *nu)
{
    if (!nu->loop || nu->run_queued)
        return;
    nu->run_queued = true;
    loop_after_batch(nu->loop, nu_run, nu);
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct net_user *nu = opaque;
    uint8_t hdr[TAP_VNET_HDR_LEN] = { 0 };
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)buf, len } };
    ssize_t n;
    do
        n = writev(nu->fd, iov, 2);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        /* The guest does not read (full socket): dropped, as on a wire;
         * slirp's TCP retransmits. */
        nu->stats.dropped++;
        if (errno != EAGAIN && errno != ENOBUFS && !nu->send_error_logged) {
            nu->send_error_logged = true;
            log_warn("net user %s: a frame to the guest was lost: %s", nu->id, g_strerror(errno));
        }
    } else {
        nu->stats.from_slirp++;
    }
    return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
    struct net_user *nu = opaque;
    if (!nu->guest_error_logged) {
        nu->guest_error_logged = true;
        log_info("net user %s: the guest sent something slirp refused: %s (said once)", nu->id, msg);
    }
}

static int64_t cb_clock_get_ns(void *opaque)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void timer_fired(void *opaque)
{
    struct nu_timer *t = opaque;
    t->expire_ms = -1;
    t->cb(t->cb_opaque);
    schedule_run(t->nu);
}

static void timer_arm(struct nu_timer *t)
{
    if (!t->lt)
        return;
    if (t->expire_ms < 0) {
        loop_timer_arm(t->lt, 0, 0);
        return;
    }
    int64_t d = t->expire_ms * 1000000 - cb_clock_get_ns(NULL);
    loop_timer_arm(t->lt, (uint64_t)MAX(d, 1), 0);
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    struct net_user *nu = opaque;
    struct nu_timer *t = g_new0(struct nu_timer, 1);
    *t = (struct nu_timer){ .nu = nu, .cb = cb, .cb_opaque = cb_opaque, .expire_ms = -1 };
    if (nu->loop)
        t->lt = loop_timer_new(nu->loop, timer_fired, t, NULL);
    g_ptr_array_add(nu->timers, t);
    return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
    struct net_user *nu = opaque;
    struct nu_timer *t = timer;
    if (!t)
        return;
    loop_timer_free(t->lt);
    g_ptr_array_remove(nu->timers, t);
    g_free(t);
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    struct nu_timer *t = timer;
    t->expire_ms = expire_ms;
    timer_arm(t);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
}

static void cb_notify(void *opaque)
{
    schedule_run(opaque);
}

static const SlirpCb callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_new = cb_timer_new,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
};

/* ---- polling slirp's sockets ---- */

static int cb_add_poll(int fd, int events, void *opaque)
{
    struct net_user *nu = opaque;
    struct nu_pollfd p = { fd, events, 0 };
    g_array_append_val(nu->pfds, p);
    return (int)nu->pfds->len - 1;
}

static int cb_get_revents(int idx, void *opaque)
{
    struct net_user *nu = opaque;
    if (idx < 0 || (guint)idx >= nu->pfds->len)
        return 0;
    return g_array_index(nu->pfds, struct nu_pollfd, idx).revents;
}

static uint32_t to_epoll(int ev)
{
    return (ev & SLIRP_POLL_IN ? EPOLLIN : 0) | (ev & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
           (ev & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int from_epoll(uint32_t ev)
{
    return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
           (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
           (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

/* Makes epfd watch exactly the fds of the last fill. A registered fd is
 * re-registered every time (EPOLL_CTL_MOD, or ADD when the kernel dropped it):
 * slirp may have closed it and got the same number for a new socket. */
static void sync_epoll(struct net_user *nu)
{
    g_autoptr(GHashTable) now = g_hash_table_new(NULL, NULL);
    for (guint i = 0; i < nu->pfds->len; i++) {
        struct nu_pollfd *p = &g_array_index(nu->pfds, struct nu_pollfd, i);
        uint32_t ev = to_epoll(p->events) |
                      GPOINTER_TO_UINT(g_hash_table_lookup(now, GINT_TO_POINTER(p->fd)));
        g_hash_table_insert(now, GINT_TO_POINTER(p->fd), GUINT_TO_POINTER(ev));
    }
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, nu->in_ep);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (!g_hash_table_contains(now, k)) {
            epoll_ctl(nu->epfd, EPOLL_CTL_DEL, GPOINTER_TO_INT(k), NULL);
            g_hash_table_iter_remove(&it);
        }
    g_hash_table_iter_init(&it, now);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        int fd = GPOINTER_TO_INT(k);
        struct epoll_event e = { .events = GPOINTER_TO_UINT(v), .data.fd = fd };
        bool known = g_hash_table_contains(nu->in_ep, k);
        int r = epoll_ctl(nu->epfd, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e);
        if (r < 0 && (errno == ENOENT || errno == EEXIST))
            r = epoll_ctl(nu->epfd, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e);
        if (r == 0)
            g_hash_table_insert(nu->in_ep, k, v);
    }
}

/* Sets the revents of the last fill from what is ready now. Returns how many
 * fds are ready, or -1. */
static int ready_now(struct net_user *nu)
{
    struct epoll_event ev[64];
    int n = epoll_wait(nu->epfd, ev, G_N_ELEMENTS(ev), 0);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++)
        for (guint j = 0; j < nu->pfds->len; j++) {
            struct nu_pollfd *p = &g_array_index(nu->pfds, struct nu_pollfd, j);
            if (p->fd == ev[i].data.fd)
                p->revents = from_epoll(ev[i].events) & (p->events | SLIRP_POLL_ERR | SLIRP_POLL_HUP);
        }
    return n;
}

static void nu_run(void *opaque)
{
    struct net_user *nu = opaque;
    nu->run_queued = false;
    if (!nu->loop)
        return;
    for (unsigned round = 0; round < NU_ROUNDS; round++) {
        uint32_t timeout = UINT32_MAX;
        g_array_set_size(nu->pfds, 0);
        slirp_pollfds_fill(nu->slirp, &timeout, cb_add_poll, nu);
        sync_epoll(nu);
        int n = ready_now(nu);
        if (round > 0 && n == 0) {
            /* Nothing ready: wait for the epoll fd, or slirp's timeout. */
            uint64_t ns = timeout == UINT32_MAX ? 0 : (uint64_t)MAX(timeout, 1u) * 1000000;
            loop_timer_arm(nu->poll_timer, ns, 0);
            return;
        }
        /* The first round always polls: it runs slirp's own timers. */
        slirp_pollfds_poll(nu->slirp, n < 0, cb_get_revents, nu);
    }
    kick(nu);               /* still busy: the rest after the loop's other work */
}

static void on_ready(void *opaque, int fd, uint32_t revents)
{
    schedule_run(opaque);
}

static void drain_guest(void *opaque);

static void on_poll_timer(void *opaque)
{
    schedule_run(opaque);
}

/* Work for a later loop iteration, behind the loop's other work: a 1 ns
 * timer (which, unlike loop_call, goes away with nu). Frames from the guest
 * and a slirp round. */
static void on_kick(void *opaque)
{
    drain_guest(opaque);
}

static void kick(struct net_user *nu)
{
    loop_timer_arm(nu->kick_timer, 1, 0);
}

/* Frames from the guest (virtio-net wrote them to the socketpair). */
static void on_guest_frames(void *opaque, int fd, uint32_t revents)
{
    drain_guest(opaque);
}

static void drain_guest(void *opaque)
{
    struct net_user *nu = opaque;
    if (!nu->loop)
        return;
    for (unsigned i = 0; i < NU_BUDGET; i++) {
        ssize_t n = recv(nu->fd, nu->buf, NU_BUF, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        /* virtio-net offered no CSUM/TSO (complete_frames): a header asking
         * for either is the guest's mistake. */
        if (n <= TAP_VNET_HDR_LEN || nu->buf[0] != 0 || nu->buf[1] != 0) {
            nu->stats.dropped++;
            continue;
        }
        nu->stats.to_slirp++;
        slirp_input(nu->slirp, nu->buf + TAP_VNET_HDR_LEN, (int)(n - TAP_VNET_HDR_LEN));
        if (i == NU_BUDGET - 1)
            kick(nu);       /* more may wait: after the loop's other work */
    }
    schedule_run(nu);
}

void net_user_attach(struct tap *t, struct loop *l)
{
    struct net_user *nu = t ? t->backend : NULL;
    if (!nu || nu->loop == l)
        return;
    g_return_if_fail(!nu->loop);
    g_autoptr(GError) e = NULL;
    nu->poll_timer = loop_timer_new(l, on_poll_timer, nu, &e);
    nu->kick_timer = nu->poll_timer ? loop_timer_new(l, on_kick, nu, &e) : NULL;
    if (!nu->kick_timer || loop_add_fd(l, nu->epfd, POLLIN, on_ready, nu) < 0) {
        log_error("net user %s: cannot watch slirp's sockets: %s", nu->id, e ? e->message : "loop_add_fd failed");
        loop_timer_free(nu->poll_timer);
        loop_timer_free(nu->kick_timer);
        nu->poll_timer = nu->kick_timer = NULL;
        return;
    }
    loop_add_fd(l, nu->fd, POLLIN, on_guest_frames, nu);
    nu->loop = l;
    for (guint i = 0; i < nu->timers->len; i++) {
        struct nu_timer *tm = nu->timers->pdata[i];
        tm->lt = loop_timer_new(l, timer_fired, tm, NULL);
        timer_arm(tm);
    }
    kick(nu);
}

static void detach(struct net_user *nu)
{
    struct loop *l = nu->loop;
    if (!l)
        return;
    if (nu->run_queued)
        loop_after_batch_cancel(l, nu_run, nu);
    nu->run_queued = false;
    loop_remove_fd(l, nu->epfd);
    loop_remove_fd(l, nu->fd);
    loop_timer_free(nu->poll_timer);
    loop_timer_free(nu->kick_timer);
    nu->poll_timer = nu->kick_timer = NULL;
    for (guint i = 0; i < nu->timers->len; i++) {
        struct nu_timer *tm = nu->timers->pdata[i];
        loop_timer_free(tm->lt);
        tm->lt = NULL;
    }
    nu->loop = NULL;
}

void net_user_detach_loop(struct loop *l)
{
    for (guint i = 0; all && i < all->len; i++) {
        struct net_user *nu = all->pdata[i];
        if (nu->loop == l)
            detach(nu);
    }
}

static void nu_free(struct tap *t)
{
    struct net_user *nu = t->backend;
    if (!nu)
        return;
    detach(nu);
    if (nu->slirp)
        slirp_cleanup(nu->slirp);   /* frees its timers through cb_timer_free */
    for (guint i = 0; i < nu->timers->len; i++)
        g_free(nu->timers->pdata[i]);
    g_ptr_array_free(nu->timers, TRUE);
    if (all)
        g_ptr_array_remove(all, nu);
    if (nu->epfd >= 0)
        close(nu->epfd);
    if (nu->fd >= 0)
        close(nu->fd);
    if (nu->peer >= 0)
        close(nu->peer);
    g_array_free(nu->pfds, TRUE);
    g_hash_table_destroy(nu->in_ep);
    g_free(nu->buf);
    g_free(nu->id);
    g_free(nu);
    t->backend = NULL;
}

void net_user_get_stats(const struct tap *t, struct net_user_stats *s)
{
    const struct net_user *nu = t ? t->backend : NULL;
    *s = nu ? nu->stats : (struct net_user_stats){ 0 };
}

struct tap *net_user_open(const struct net_user_opts *o, const char *id, GError **err)
{
    struct net_user *nu = g_new0(struct net_user, 1);
    nu->id = g_strdup(id);
    nu->fd = nu->peer = nu->epfd = -1;
    nu->pfds = g_array_new(FALSE, FALSE, sizeof(struct nu_pollfd));
    nu->in_ep = g_hash_table_new(NULL, NULL);
    nu->timers = g_ptr_array_new();
    nu->buf = g_malloc(NU_BUF);
    struct tap fake = { .backend = nu };
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        fail(err, "user networking: socketpair: %s", g_strerror(errno));
        nu_free(&fake);
        return NULL;
    }
    nu->fd = sv[0];
    nu->peer = sv[1];
    int sz = 1 << 20;
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    nu->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (nu->epfd < 0) {
        fail(err, "user networking: epoll_create1: %s", g_strerror(errno));
        nu_free(&fake);
        return NULL;
    }
    SlirpConfig cfg = {
        .version = 4,
        .restricted = o->restricted,
        .in_enabled = o->ipv4,
        .vnetwork = o->net,
        .vnetmask = o->mask,
        .vhost = o->host,
        .in6_enabled = o->ipv6,
        .vprefix_len = 64,
        .vhostname = o->hostname,
        .vdhcp_start = o->dhcp,
        .vnameserver = o->dns,
        .vdomainname = o->domainname,
    };
    /* QEMU's IPv6 defaults: fec0::/64, the host ::2, DNS ::3. */
    inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
    inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
    inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
    nu->slirp = slirp_new(&cfg, &callbacks, nu);
    if (!nu->slirp) {
        fail(err, "user networking: libslirp refused the configuration");
        nu_free(&fake);
        return NULL;
    }
    for (unsigned i = 0; i < o->nr_fwd; i++) {
        const struct net_user_fwd *f = &o->fwd[i];
        struct in_addr g = f->gaddr.s_addr ? f->gaddr : o->dhcp;
        if (slirp_add_hostfwd(nu->slirp, f->udp, f->haddr, f->hport, g, f->gport) < 0) {
            int e = errno;
            char hb[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &f->haddr, hb, sizeof(hb));
            fail(err, "user networking: hostfwd %s %s:%u: cannot listen on the host port%s%s", f->udp ? "udp" : "tcp",
                 f->haddr.s_addr ? hb : "*", f->hport, e ? ": " : " (in use?)", e ? g_strerror(e) : "");
            nu_free(&fake);
            return NULL;
        }
    }
    struct tap *t = tap_from_socket(&nu->peer, 1);
    t->owns_fds = false;        /* nu closes both ends */
    t->complete_frames = true;
    t->backend = nu;
    t->release = nu_free;
    g_strlcpy(t->name, "user", sizeof(t->name));
    nu->tap = t;
    if (!all)
        all = g_ptr_array_new();
    g_ptr_array_add(all, nu);
    return t;
}
